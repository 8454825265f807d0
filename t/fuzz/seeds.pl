#!/usr/bin/perl
# Writes the seed corpus of the fuzz targets, t/fuzz/corpus/<name>/, from
# what the registry really reads: the multipart bodies, query strings,
# tokens and JSON bodies of the tests, Geti's answers as
# t/lib/Modelreg/FakeGeti.pm serves them, small ZIPs, and AWS's SigV4
# vectors (../shared/vectors/sigv4, beside the project).  The corpus is
# committed; run this again after changing an input format of a target.
#
# Each target reads numbers (splits, modes) from the end of its input:
# the bytes appended here say which (see each fuzz_<name>.c).
use strict;
use warnings;
use FindBin;
use File::Path qw(make_path remove_tree);
use JSON::PP;
use Digest::SHA qw(sha256_hex sha1_hex);
use IO::Compress::Zip;
use lib "$FindBin::Bin/../lib";
use Modelreg::FakeGeti;

my $dir = "$FindBin::Bin/corpus";
my $J = JSON::PP->new->canonical;

sub put {
    my ($name, $data) = @_;
    make_path("$dir/$name");
    my $f = "$dir/$name/" . substr(sha1_hex($data), 0, 16);
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh $data;
    close $fh;
}

remove_tree($dir);

# ---- multipart: "<Content-Type>\n<body>", then a byte that makes no
# callback refuse (0), or the n-th (0x80 | n), and 8 bytes of split seed

my $zip = '';
{
    my $z = IO::Compress::Zip->new(\$zip, Name => 'model/model.xml',
                                   Time => 1700000000, Minimal => 1) or die;
    $z->print('<net name="m"/>');
    $z->close;
}
my $empty_zip = "PK\x05\x06" . ("\0" x 18);

sub part {
    my ($b, $name, $value, %o) = @_;
    my $h = "--$b\r\nContent-Disposition: form-data; name=\"$name\"";
    $h .= "; filename=\"$o{filename}\"" if defined $o{filename};
    $h .= "; filename*=$o{ext}" if defined $o{ext};
    $h .= "\r\nContent-Type: $o{type}" if $o{type};
    return "$h\r\n\r\n$value\r\n";
}

my $b = 'XyZ0123';
my @mp = (
    [ "multipart/form-data; boundary=$b",
      part($b, 'name', 'resnet') . part($b, 'version', '1')
      . part($b, 'precision', 'FP16') . part($b, 'score', '0.93')
      . part($b, 'labels', '["cat",{"name":"dog"}]')
      . part($b, 'file', $zip, filename => 'm.zip',
             type => 'application/zip') . "--$b--\r\n" ],
    [ "multipart/form-data; charset=utf-8; boundary=\"a b\\\"c\"",
      "preamble\r\n" . part('a b"c', 'name', "x\r\n--a b\"") 
      . part('a b"c', 'file', $empty_zip, filename => 'C:\\dir\\..m.zip',
             ext => "UTF-8''%E2%82%AC.zip") . "--a b\"c-- \r\nepilogue" ],
    [ "Multipart/Form-Data;boundary=b",
      "--b \t\r\ncontent-disposition: FORM-DATA; NAME=v\r\n\r\n1\r\n--b--" ],
    [ "multipart/form-data; boundary=b",
      join('', map { part('b', "f$_", $_) } 1 .. 65) . "--b--\r\n" ],
    [ "multipart/form-data; boundary=b",
      part('b', 'name', 'no close delimiter') ],
    [ "multipart/form-data; boundary=b",
      "--b\r\nContent-Disposition: form-data; name=\"n\"\r\n"
      . ('X-Pad: ' . ('p' x 100) . "\r\n") x 90 . "\r\nv\r\n--b--" ],
    [ "multipart/form-data; boundary=b",
      "--b\r\nContent-Disposition: attachment\r\n\r\nv\r\n--b--" ],
    # a CR in the boundary (not multipart: RFC 2046 allows none)
    [ "multipart/form-data; boundary=\"a\rX\"",
      "--a\rX\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n"
      . "\r\n--a\r\n--a\rXtail\r\n--a\rX--" ],
);
for my $i (0 .. $#mp) {
    my ($ct, $body) = @{ $mp[$i] };
    put('multipart', "$ct\n$body" . "\0" . pack('Q<', $i * 7919));
}
put('multipart', "$mp[0][0]\n$mp[0][1]" . chr(0x82) . pack('Q<', 1));

# ---- form: "<query>\n<page token>"

put('form', $_) for (
    "name=resnet&precision=FP16&limit=10\n1700000000000000.abcdefghijklmnop",
    "name=res%20net&project_name=%E2%82%AC&category=Detection&architecture=YOLOX&version=1&origin=Geti&project_id=6650a1b2c3d4e5f6a7b8c901&format=openvino&target_device=CPU\n",
    "model_id=abcdefghijklmnop&action=model.create&since=2024-01-01+10%3A00%3A00&limit=1000&page_token=42\n42",
    "limit=0\n", "limit=1001\n", "limit=%2B5\n", "name=%ff\n",
    "foo=1&bar=2&foo=3&=4\n", "%zz&+&a=%41&&b&c=&=d&e=f=g&\n%00%",
    "name=a%25b_c%5C\n1.a b/c?d=e&f#g<>",
);

# ---- token: a token to decode, then the characters of an id (read
# backwards), a byte of its length (16 + n % 113) and 8 bytes of time
# or event id

put('token', $_ . ('a' x 16) . "\0" . pack('Q<', 1700000000000000)) for (
    '1700000000000000.abcdefghijklmnop', '0.0123456789abcdef',
    '9007199254740991.' . ('Z' x 128), '9007199254740992.abcdefghijklmnop',
    '42', '9223372036854775807', '9223372036854775808', '-1', '',
    '01.abcdefghijklmnop', '1.abcdefghijklmno',
);

# ---- events: "<query>\n<notification>\n<cursor>", then 24 bytes of
# the numbers of a cursor to print (lo, hi, last)

put('events', $_ . pack('Q<3', 17, 1187, 42)) for (
    "since=1187&wait=30&action=model.create,alias.set&name=resnet%2050"
    . "&limit=7\n42 model.update resnet 50\n1187",
    "since=100.120.7\n7 geti.sync\n100.120.7",
    "wait=61&limit=0\n8 model.rename x\n3.2.1",
    "action=,model.delete,,&name=%ff\n\n9223372036854775807",
    "b=1&wait=99&a=2&b=3\nx model.create\n9223372036854775808",
    "since=&wait=&action=&name=&limit=\n42\n1.2.3.4",
    "since=-1&since=0\n1  \n007",
);

# ---- validate: the value, then the rule (0 UTF-8, 1 precision, 2 score,
# 3 file name, 4 ZIP media type, 5 ILIKE escape, 6 route and id)

my @v = (
    [ 0, "caf\xc3\xa9 \xf0\x9f\x98\x80" ], [ 0, "\xed\xa0\x80" ],
    [ 0, "\xc0\xaf" ], [ 0, "\xf4\x90\x80\x80" ], [ 0, "a\0b" ],
    [ 1, 'FP16' ], [ 1, 'int4' ], [ 1, 'fp64' ],
    [ 2, ' 0.93 ' ], [ 2, '1e-320' ], [ 2, '1e-400' ], [ 2, '1e400' ],
    [ 2, 'nan' ], [ 2, '0x10' ], [ 2, "\t" ],
    [ 3, 'C:\\Users\\me\\..model.zip' ], [ 3, "../../\x01\x7f.zip" ],
    [ 3, '...' ], [ 3, "\xe2\x82\xac" x 100 ], [ 3, "a\xff.zip" ],
    [ 4, 'application/zip' ], [ 4, 'Application/X-Zip-Compressed; q=1' ],
    [ 4, 'text/plain' ], [ 5, '100%_\\' ],
    [ 6, '/models' ], [ 6, '/models/abcdefghijklmnop/files' ],
    [ 6, '/projects/6650a1b2c3d4e5f6a7b8c901/geti-models/download' ],
    [ 6, '/models//files' ], [ 6, '/health/ready' ], [ 6, '/geti/sync' ],
);
put('validate', $_->[1] . chr($_->[0])) for @v;

# ---- zip: the file's last bytes, then 3 bytes of filler length, a byte
# of flags (1: the filler opens with a local header; 0x0c: a long
# filler) and 4 bytes of split seed

my $commented = $zip;
substr($commented, -2, 2, pack('v', 5));
$commented .= 'hello';
put('zip', $_->[0] . substr(pack('V', $_->[1]), 0, 3)
           . chr($_->[2]) . pack('V', 12345))
    for ([ $zip, 0, 0 ], [ $empty_zip, 0, 0 ], [ $commented, 0, 0 ],
         [ substr($zip, 0, -1), 0, 0 ], [ $empty_zip, 70000, 0x0d ],
         [ "PK\x05\x06" . ("\0" x 16) . pack('v', 65535), 0, 0 ],
         [ "not a zip", 0, 0 ]);

# ---- fields: a body, then 0 (JSON) or 1 (form)

put('fields', $_ . "\0") for (
    $J->encode({ name => 'resnet', version => 2, score => '0.5',
                 precision => 'FP16', labels => [ 'cat', { n => 1 } ],
                 overview => { a => [ 1, 2 ] },
                 optimization_capabilities => '{"q":true}',
                 id => 'abcdefghijklmnop', unknown => undef }),
    '{"score": 1e-320, "version": -0.5e+3, "name": null}',
    '{"score": 1e400, "labels": "[1]"}', '{"name":"a","name":"b"}',
    '{"n\u0061me": "\u00e9\ud83d\ude00"}', '{"name": "\u0000"}',
    '[1]', '{}', ' {"a":{"b":[{"c":"}"}]}} ',
    '{"labels":' . ('[' x 40) . (']' x 40) . '}',
);
put('fields', $_ . "\1") for (
    'name=resnet&version=1&precision=fp16&score=%201.5&labels=%5B%22a%22%5D',
    'overview=%7B%7D&id=abc&target_device=' . ('x' x 300),
    'name=%C3%A9&name=&size=7&file=x',
);

# ---- sigv4: method, path, query, payload, date, region, service,
# secret, access key, then "name:value" header lines

my $suite = "$FindBin::Bin/../../../shared/vectors/sigv4/aws-sig-v4-test-suite";
my $n = 0;
for my $req (sort glob("$suite/*/*.req $suite/*/*/*.req")) {
    open my $fh, '<:raw', $req or die;
    my $text = do { local $/; <$fh> };
    my ($head, $body) = split /\r?\n\r?\n/, $text, 2;
    my ($line, @h) = split /\r?\n/, $head;
    my ($method, $target) = $line =~ /^(\S+) (.*) HTTP\/1\.1$/ or next;
    my ($path, $query) = split /\?/, $target, 2;
    my ($date) = map { /^x-amz-date:(.*)/i ? $1 : () } @h;
    put('sigv4', join "\n", $method, $path, $query // '',
        sha256_hex($body // ''), $date // '20150830T123600Z', 'us-east-1',
        'service', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'AKIDEXAMPLE',
        @h);
    $n++;
}
die "no SigV4 vectors in $suite\n" unless $n;
put('sigv4', join "\n", 'PUT', '/models/abc/x y+z%.zip', 'partNumber=1&uploadId=a%2Fb',
    'UNSIGNED-PAYLOAD', '20261126T000000Z', 'us-east-1', 's3', 'secret',
    'AKIAIOSFODNN7EXAMPLE', 'Host:127.0.0.1:9000', 'x-amz-date:20261126T000000Z',
    'X-Amz-Content-SHA256:UNSIGNED-PAYLOAD', 'x-amz-meta-a:  b \t c  ');

# ---- geti: JSON documents separated by NUL bytes, then the kind (0 a
# page of projects, 1 a project, 2 model groups, 3 the registry's own
# listing, 4 an import body, 5 a project and a model's details)

my $fx = Modelreg::FakeGeti::fixtures(2);
my %proj = map { $_ => $fx->[0]{$_} } qw(id name creation_time pipeline);
my $g = $fx->[0]{groups}[0];
my $m = $g->{models}[0];
my %groups = (model_groups => [ { id => $g->{id}, name => $g->{name},
    models => [ { map { $_ => $m->{$_} } qw(id name version) } ] } ]);
my $listing = [ { %proj, model_groups => [ { id => $g->{id},
    name => $g->{name}, model_versions => [ { id => $m->{id},
    name => $m->{name}, version => 1, openvino_models => [
        map { { id => $_->{id}, name => $_->{name} } }
        @{ $m->{optimized_models} } ] } ] } ] } ];
my $page = { projects => [ map { my $p = $_;
    { map { $_ => $p->{$_} } qw(id name creation_time pipeline) } } @$fx ],
    project_counts => 2 };

put('geti', $J->encode($page) . chr(0));
put('geti', $J->encode({ projects => [], project_counts => 0 }) . chr(0));
put('geti', $J->encode(\%proj) . chr(1));
put('geti', $J->encode({ %proj, name => '  --Ünïcode Project!! ' }) . chr(1));
put('geti', $J->encode(\%groups) . chr(2));
put('geti', $J->encode($listing) . chr(3));
put('geti', $J->encode({ models => [ map { { id => $_->{id},
    group_id => $g->{id} } } @{ $m->{optimized_models} } ] }) . chr(4));
put('geti', '{"models":[{"id":"a","group_id":"b"},{"id":"a","group_id":"c"}]}'
            . chr(4));
put('geti', $J->encode(\%proj) . "\0" . $J->encode($m) . chr(5));
put('geti', $J->encode({ %proj, name => 'n' x 1100 }) . "\0"
            . $J->encode({ %$m, optimized_models => [ {
                  %{ $m->{optimized_models}[0] }, name => 'x' x 300,
                  performance => { score => 1e-300 } } ] }) . chr(5));

print "seeds written to $dir\n";
