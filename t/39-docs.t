# Proves: GET /openapi.json answers openapi/openapi.json byte for byte
# from memory (application/json, X-Request-Id, an ETag that is its
# sha256, 304 for If-None-Match, HEAD, 405 with Allow for other methods)
# and GET /docs the page of openapi/docs.html (text/html, a
# Content-Security-Policy that allows its inline script by hash and
# nothing from elsewhere, every URL in it relative), whose assets the
# static docs/ location serves with their types, at / and under a
# location prefix; every operation of the document reaches its route (no
# 404 "Not Found", no 405); and all of it with PostgreSQL stopped.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256 sha256_hex);
use MIME::Base64 qw(encode_base64);
use JSON::PP;
use HTTP::Tiny;
use Modelreg::Harness;

my $TOP = $Modelreg::Harness::TOP;
my $doc = Modelreg::Harness::slurp("$TOP/openapi/openapi.json");
my $page = Modelreg::Harness::slurp("$TOP/openapi/docs.html");
my $json = JSON::PP->new;

my $h = Modelreg::Harness->new(location =>
    "location / { modelreg; client_max_body_size 0; }\n"
    . "location /registry/ { modelreg; }\n"
    . Modelreg::Harness::docs_location('/registry/docs/'));

my ($script) = $page =~ m{<script>(.*?)</script>}s;
my $hash = encode_base64(sha256($script), '');
my @assets = $page =~ m{\b(?:src|href)="([^"]*)"}g;
# the assets are nginx's static files, no answer of the API: a client of
# their own
my $static = HTTP::Tiny->new;

sub served {
    my ($mount, $db) = @_;
    my $name = ($mount || '/') . " ($db)";

    my $res = $h->get("$mount/openapi.json");
    is($res->{status}, 200, "$name: GET openapi.json 200");
    is($res->{headers}{'content-type'}, 'application/json',
       "$name: application/json");
    ok($res->{content} eq $doc, "$name: openapi/openapi.json byte for byte ("
       . length($doc) . ' bytes)');
    like($res->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
         "$name: X-Request-Id");
    my $etag = $res->{headers}{etag} // '';
    is($etag, '"' . sha256_hex($doc) . '"', "$name: ETag is its sha256");

    $res = $h->get("$mount/openapi.json",
                   { headers => { 'If-None-Match' => $etag } });
    is($res->{status}, 304, "$name: If-None-Match: 304");
    is($res->{content} // '', '', "$name: 304 without a body");
    is($h->get("$mount/openapi.json",
               { headers => { 'If-None-Match' => '"x"' } })->{status},
       200, "$name: another ETag: 200");

    $res = $h->head("$mount/openapi.json");
    is($res->{status}, 200, "$name: HEAD 200");
    is($res->{headers}{'content-length'}, length($doc),
       "$name: HEAD's Content-Length");

    for my $p ('openapi.json', 'docs') {
        for my $m (qw(POST PUT DELETE)) {
            $res = $h->request($m, "$mount/$p");
            is("$res->{status} " . ($res->{headers}{allow} // '-')
               . " $res->{content}",
               '405 GET, HEAD {"detail":"Method Not Allowed"}',
               "$name: $m $p: 405 with Allow");
        }
    }

    $res = $h->get("$mount/docs");
    is($res->{status}, 200, "$name: GET docs 200");
    is($res->{headers}{'content-type'}, 'text/html; charset=utf-8',
       "$name: text/html");
    ok($res->{content} eq $page, "$name: openapi/docs.html");
    is($res->{headers}{etag}, '"' . sha256_hex($page) . '"',
       "$name: the page's ETag");
    my $csp = $res->{headers}{'content-security-policy'} // '';
    like($csp, qr/^default-src 'none'; script-src 'self' 'sha256-\Q$hash\E';/,
         "$name: CSP allows the inline script by its hash, nothing else");
    unlike($csp, qr/https?:|unsafe/, "$name: CSP names no other host");

    for my $a (@assets) {
        my $type = $a =~ /\.css$/ ? 'text/css'
                 : $a =~ /\.js$/ ? 'application/javascript' : 'image/png';
        $res = $static->get($h->url("$mount/$a"));
        is("$res->{status} " . ($res->{headers}{'content-type'} // ''),
           "200 $type", "$name: $a");
    }
}

ok(@assets >= 3 && !grep(m{^/|:|//}, @assets),
   'every URL of the page is relative: ' . join(' ', @assets));
unlike($page, qr{https?://}, 'the page names no other host');

served($_, 'database up') for '', '/registry';

# every operation of the document reaches its route, a valid id in each
# {parameter}; what it then answers is the route's business
my $paths = $json->decode($doc)->{paths};
my @ops;
for my $p (sort keys %$paths) {
    for my $m (grep { /^(get|put|post|delete|patch|head)$/ }
               sort keys %{ $paths->{$p} }) {
        (my $path = $p) =~ s/\{[^}]+\}/abcdefghijklmnop1234/g;
        my $res = $h->request(uc $m, $path);
        push @ops, "$m $p: $res->{status} $res->{content}"
            if $res->{status} == 405
               || ($res->{status} == 404
                   && ($res->{content} // '') eq '{"detail":"Not Found"}');
    }
}
is_deeply(\@ops, [], 'every operation of the document is routed ('
          . scalar(keys %$paths) . ' paths)');

$h->stop_pg;
is($h->get('/health/ready')->{status}, 503, 'PostgreSQL stopped: not ready');
served($_, 'database down') for '', '/registry';

$h->finish;
done_testing;
