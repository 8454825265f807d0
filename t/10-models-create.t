# Proves: POST /models applies API.md's rules 1-7 in order with exact
# statuses and messages; defaults, precision normalisation, size and
# sha256 of the stored bytes; 201 as text with Location, or JSON; file
# names are sanitised; hostile input gets a 4xx or a verbatim round trip,
# never a 5xx, and the server keeps serving.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Encode ();
use IO::Socket::INET;
use Modelreg::Harness;

my $h = Modelreg::Harness->new;
my $json = JSON::PP->new->utf8;
my $zip = Modelreg::Harness::zip_of('model.xml', 'weights' x 50);

sub err {
    my ($res, $status, $detail, $name) = @_;
    is($res->{status}, $status, "$name: $status");
    is($res->{headers}{'content-type'}, 'application/json', "$name: JSON");
    is($res->{content}, $json->encode({ detail => $detail }),
       "$name: detail") or diag $res->{content};
}

sub post_raw {
    my ($body, $ct) = @_;
    return $h->post('/models', { content => $body,
                                 headers => { 'Content-Type' => $ct } });
}

# ---- 201 and the stored model
my $res = $h->register(name => 'resnet', version => '1',
                       file => { value => $zip });
is($res->{status}, 201, 'registered');
is($res->{headers}{'content-type'}, 'text/plain', 'id as text');
my $id = $res->{content};
like($id, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
     'a UUIDv4 id');
like($res->{headers}{location}, qr{/models/\Q$id\E$}, 'Location');

my $m = $h->get("/models/$id")->{json};
is_deeply([ sort keys %$m ],
          [ sort qw(id name target_device created_date last_updated_date
                    precision size version format origin file_url
                    project_id project_name category target_device_type
                    score overview optimization_capabilities labels
                    architecture sha256 file_name) ], 'every field');
is($m->{target_device}, 'CPU', 'default target_device');
is_deeply($m->{precision}, ['fp32'], 'default precision');
is($m->{score}, 0, 'default score');
is_deeply($m->{overview}, {}, 'default overview');
is_deeply($m->{labels}, [], 'default labels');
is($m->{size}, length $zip, 'size of the stored bytes');
is($m->{sha256}, sha256_hex($zip), 'sha256 of the stored bytes');
is($m->{file_name}, 'model.zip', 'file_name');
my $prefix = $h->storage eq 's3' ? 's3://models/' : 'fs:';
like($m->{file_url}, qr{^\Q$prefix$id\E/[0-9a-f]{16}/model\.zip$},
     'file_url names the store and the key');
like($m->{created_date}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC$/,
     'created_date format');
is($m->{last_updated_date}, $m->{created_date},
   'last_updated_date is the registration time');

# raw order of the fields as serialised
my $raw = $h->get("/models/$id")->{content};
my @order = $raw =~ /"(\w+)" : /g;
is_deeply(\@order,
          [ qw(id name target_device created_date last_updated_date
               precision size version format origin file_url project_id
               project_name category target_device_type score overview
               optimization_capabilities labels architecture sha256
               file_name) ], 'field order of API.md');

# JSON with Accept, every optional field, precision lowercased
$res = $h->register(name => 'full', version => '2', precision => 'FP16',
    score => '0.875', target_device => 'GPU', format => 'openvino',
    origin => 'Geti', project_id => 'p1', project_name => 'Proj',
    category => 'Detection', target_device_type => 'dGPU',
    overview => '{"a":1}', optimization_capabilities => '{"q":true}',
    labels => '["cat",{"name":"dog"}]', architecture => 'YOLO',
    created_date => 'yesterday', size => '999',
    id => 'custom_id-0123456789',
    headers => { Accept => 'application/json' });
is($res->{status}, 201, 'registered with every field');
$m = $res->{json};
is($m->{id}, 'custom_id-0123456789', 'supplied id');
is_deeply($m->{precision}, ['fp16'], 'precision lowercased');
is($m->{score}, 0.875, 'score');
is($m->{created_date}, 'yesterday', 'created_date verbatim');
is($m->{size}, length(Modelreg::Harness::zip_of('model.xml', 'x' x 100)),
   'size computed, not taken');
is_deeply($m->{labels}, ['cat', { name => 'dog' }], 'labels');
is_deeply($m->{overview}, { a => 1 }, 'overview');
is($m->{origin}, 'Geti', 'origin');
like($res->{headers}{location}, qr{/models/custom_id-0123456789$},
     'Location with JSON too');

# ---- rule 1: not multipart, malformed
err(post_raw('name=x', 'application/x-www-form-urlencoded'), 400,
    'Malformed multipart body.', 'not multipart');
my ($body, $ct) = Modelreg::Harness::multipart(
    { name => 'name', value => 'x' });
err(post_raw($body, 'multipart/form-data; boundary=other'), 400,
    'Malformed multipart body.', 'wrong boundary');
err(post_raw(substr($body, 0, length($body) - 20), $ct), 400,
    'Malformed multipart body.', 'truncated');
(my $nofinal = $body) =~ s/--\r\n$/\r\n/;
err(post_raw($nofinal, $ct), 400, 'Malformed multipart body.',
    'no final boundary');
err(post_raw('', $ct), 400, 'Malformed multipart body.', 'empty body');
err(post_raw("--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--",
             'multipart/form-data; boundary=x'), 400,
    'Malformed multipart body.', 'a part without a name');

# ---- rule 2: missing fields, in the order file, name, version
err($h->register(file => undef), 422, 'Field required: file, name, version',
    'nothing');
err($h->register(name => 'a'), 422, 'Field required: version', 'no version');
err($h->register(name => '', version => '1'), 422, 'Field required: name',
    'empty name is absent');
err($h->register(file => { filename => undef }, name => 'a', version => '1'),
    422, 'Field required: file', 'a file part without a filename');

# ---- rule 3: unknown keys, even empty, in order; after rule 2
err($h->register(name => 'a', version => '1', zzz => '', aaa => 'v'), 422,
    'Unsupported key(s) found: aaa, zzz', 'unknown keys');
err($h->register(version => '1', zzz => 'v'), 422, 'Field required: name',
    'rule 2 before rule 3');

# ---- rule 4: content type
err($h->register(name => 'a', version => '1',
                 file => { type => 'image/png' }), 422,
    'Unsupported file type found: image/png', 'file type');
err($h->register(name => 'a', version => '1', file => { type => undef }),
    422, 'Unsupported file type found: text/plain',
    'no content type is text/plain');
for my $t (qw(application/zip multipart/x-zip application/zip-compressed
              application/x-zip-compressed application/x-zip
              application/octet-stream)) {
    is($h->register(name => "t-$t", version => '1',
                    file => { type => $t })->{status}, 201, "accepts $t");
}

# ---- rule 5: ZIP signatures
err($h->register(name => 'a', version => '1', file => { value => '' }), 422,
    'Uploaded file is not a ZIP archive.', '0-byte file');
err($h->register(name => 'a', version => '1',
                 file => { value => 'hello world' x 10 }), 422,
    'Uploaded file is not a ZIP archive.', 'not a zip');
err($h->register(name => 'a', version => '1',
                 file => { value => substr($zip, 0, -1) }), 422,
    'Uploaded file is not a ZIP archive.', 'EOCD cut');
is($h->register(name => 'empty-zip', version => '1',
                file => { value => "PK\x05\x06" . ("\0" x 18) })->{status},
   201, 'the empty archive is a ZIP');
err($h->register(name => 'a', version => '1',
                 file => { value => $zip . ('c' x 70000) }), 422,
    'Uploaded file is not a ZIP archive.', 'EOCD not in the last 65,557 bytes');

# ---- rule 6, in order
err($h->register(name => 'a', version => '1', score => 'high',
                 overview => '[]'), 422, 'score must be a number.', 'score');
err($h->register(name => 'a', version => '1', score => 'nan'), 422,
    'score must be a number.', 'score nan');

# score: finite and representable as PostgreSQL's float8 (1e-400 used to
# reach the INSERT after the file was stored: 500); nothing is stored
my @objects = sort $h->objects;
my $events = $h->psql('SELECT count(*) FROM audit_events');
for my $s ('1e400', '-1e400', '1E-400', '-1e-400', '2e-324', '1.8e308',
           'NaN', 'Infinity', '-inf', '0x1p3', '1e', '- 1') {
    err($h->register(name => 'bad-score', version => $s, score => $s), 422,
        'score must be a number.', "score $s");
}
is_deeply([ sort $h->objects ], \@objects, 'bad scores: no object stored');
is($h->psql(q{SELECT count(*) FROM models WHERE name = 'bad-score'}), 0,
   'bad scores: no row');
is($h->psql('SELECT count(*) FROM audit_events'), $events,
   'bad scores: no audit event');
is_deeply([ $h->temp_files ], [], 'bad scores: no spooled file left');

# what float8 keeps, as PostgreSQL does: denormals, and zero however small
for my $case (['4e-320', 4e-320], ['0e-400', 0], ['-2.5e-308', -2.5e-308],
              ['1.7976931348623157e308', 1.7976931348623157e308]) {
    my ($s, $want) = @$case;
    $res = $h->register(name => 'edge-score', version => $s, score => $s,
                        headers => { Accept => 'application/json' });
    is($res->{status}, 201, "score $s accepted");
    is($res->{json}{score}, $want, "score $s stored");
}

err($h->register(name => 'a', version => '1', overview => '[1]'), 422,
    'overview is not a valid JSON object.', 'overview');
err($h->register(name => 'a', version => '1',
                 optimization_capabilities => '{bad'), 422,
    'optimization_capabilities is not a valid JSON object.', 'capabilities');
err($h->register(name => 'a', version => '1', labels => '{"a":1}'), 422,
    'labels is not a valid list.', 'labels object');
err($h->register(name => 'a', version => '1', labels => '[1, 2]'), 422,
    'labels is not a valid list.', 'labels of numbers');
err($h->register(name => 'a', version => '1', id => 'short'), 400,
    'Invalid format for model ID.', 'id');
err($h->register(name => 'a' x 257, version => '1'), 422,
    'name must be valid UTF-8 of at most 256 bytes.', 'long name');
err($h->register(name => 'a', version => 'v' x 129), 422,
    'version must be valid UTF-8 of at most 128 bytes.', 'long version');
err($h->register(name => "bad\xff\xfe", version => '1'), 422,
    'name must be valid UTF-8 of at most 256 bytes.', 'non-UTF-8 name');
err($h->register(name => 'a', version => '1',
                 architecture => "x\xc0\xaf"), 422,
    'architecture must be valid UTF-8 of at most 256 bytes.',
    'non-UTF-8 field');
err($h->register(name => 'a', version => '1', project_id => 'x' x (2 << 20)),
    422, 'project_id must be valid UTF-8 of at most 256 bytes.',
    '2 MiB field value');

# ---- rule 7
err($h->register(name => 'a', version => '1', precision => 'FP64'), 400,
    'FP64 is not a supported precision.', 'precision echoed as sent');

# ---- verbatim round trips
my $sql = q{x'; DROP TABLE models; --};
$res = $h->register(name => $sql, version => q{1" OR "1"="1},
                    project_name => '100% _match_ \\o/',
                    headers => { Accept => 'application/json' });
is($res->{status}, 201, 'SQL-looking values accepted');
is($res->{json}{name}, $sql, 'stored verbatim');
is($h->get("/models/$res->{json}{id}")->{json}{project_name},
   '100% _match_ \\o/', 'read back verbatim');

my $uni = "mod\x{e8}le-\x{1F600}";
$res = $h->register(name => Encode::encode('UTF-8', $uni), version => '1',
                    headers => { Accept => 'application/json' });
is($res->{json}{name}, $uni, 'UTF-8 name round trip');

# ---- file names
for my $case (['../../x.zip', 'x.zip'], ['C:\\\\dir\\\\y.zip', 'y.zip'],
              ['...', 'model.zip'], ['.hidden.zip', 'hidden.zip']) {
    my ($in, $out) = @$case;
    $res = $h->register(name => "fn-$in", version => '1',
                        file => { filename => $in },
                        headers => { Accept => 'application/json' });
    is($res->{status}, 201, "file name $in accepted");
    is($res->{json}{file_name}, $out, "file name $in stored as $out");
    unlike($res->{json}{file_url}, qr{\.\./}, "no traversal in the key");
}
ok(!-e $h->dir . '/x.zip', 'nothing written outside the store');

# ---- duplicate file part
($body, $ct) = Modelreg::Harness::multipart(
    { name => 'file', filename => 'a.zip', type => 'application/zip',
      value => $zip },
    { name => 'file', filename => 'b.zip', type => 'application/zip',
      value => $zip },
    { name => 'name', value => 'two' }, { name => 'version', value => '1' });
err(post_raw($body, $ct), 422, 'Only one file part is allowed.',
    'two file parts');

# ---- a chunked body (no Content-Length) streams the same way
($body, $ct) = Modelreg::Harness::multipart(
    { name => 'file', filename => 'c.zip', type => 'application/zip',
      value => $zip },
    { name => 'name', value => 'chunked' }, { name => 'version', value => '1' });
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $h->port) or die $!;
print $sock "POST /models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
          . "Accept: application/json\r\n"
          . "Content-Type: $ct\r\nTransfer-Encoding: chunked\r\n\r\n";
for (my $off = 0; $off < length $body; $off += 777) {
    my $piece = substr($body, $off, 777);
    printf $sock "%x\r\n%s\r\n", length $piece, $piece;
}
print $sock "0\r\n\r\n";
$h->sent($sock, POST => '/models');
$res = $h->read_response($sock, 30);
is($res->{status}, 201, 'a chunked upload');
like($res->{content}, qr/"sha256" : "\Q${\ sha256_hex($zip)}\E"/,
     'hashed the same');

# ---- limits (API.md "Limits"): at most 64 parts, counted as they arrive
{
    my $b = 'LimitB';
    my $mct = "multipart/form-data; boundary=$b";
    my $part = sub {
        my ($name, $value, $extra) = @_;
        return "--$b\r\nContent-Disposition: form-data; name=\"$name\""
               . ($extra // '') . "\r\n\r\n$value\r\n";
    };
    my $file = $part->('file', $zip, "; filename=\"l.zip\"\r\n"
                                     . "Content-Type: application/zip");
    my $unknown = sub { join '', map { $part->(sprintf('u%02d', $_), 'x') }
                                 1 .. $_[0] };
    my $rows = $h->psql('SELECT count(*) FROM models');
    my $too_many = 'Too many parts: at most 64 are allowed.';

    # 64 parts: the rules as ever (rule 3 names all 61 unknown keys)
    err(post_raw($file . $part->('name', 'lim') . $part->('version', '1')
                 . $unknown->(61) . "--$b--\r\n", $mct),
        422, 'Unsupported key(s) found: '
             . join(', ', map { sprintf 'u%02d', $_ } 1 .. 61),
        '64 parts');
    my $many = $file . $part->('name', 'lim')
             . join('', map { $part->('version', $_) } 1 .. 62);
    $res = post_raw($many . "--$b--\r\n", $mct);
    is($res->{status}, 201, '64 parts of a valid model: 201');
    is($h->get("/models/$res->{content}")->{json}{version}, '62',
       '... the last version given');
    $h->delete("/models/$res->{content}");

    # 65: refused, even when valid or when malformed after the 65th
    err(post_raw($many . $part->('version', '63') . "--$b--\r\n", $mct),
        400, $too_many, '65 parts');
    err(post_raw($many . "--$b\r\nnonsense", $mct), 400, $too_many,
        'malformed in the 65th part');
    err(post_raw($file . $unknown->(63) . "--$b\r\nnonsense", $mct), 400,
        $too_many, 'unknown keys and malformed after 64 parts');

    # malformed before the 65th part: malformed
    err(post_raw($file . "--$b\r\nnonsense\r\n\r\nx\r\n" . $unknown->(100)
                 . "--$b--\r\n", $mct),
        400, 'Malformed multipart body.', 'malformed in part 2 of 102');
    is($h->psql('SELECT count(*) FROM models'), $rows, 'limits: no row');
}

# ---- the server kept serving, no temp file left behind
is($h->get('/health')->{status}, 200, 'still serving');
is_deeply([ $h->temp_files ], [], 'no spooled file left');
like($h->psql('SELECT count(*) FROM models'), qr/^\d+$/, 'database fine');
unlike($h->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the log');

$h->finish;
done_testing();
