# Proves: /health and /health/ready answer as API.md says; unknown routes
# are 404 JSON, wrong methods 405 JSON with Allow (even with a malformed
# id), malformed ids 400; every answer is JSON with X-Request-Id, nginx's
# own error pages included; a location prefix mounts the API below it, an
# exact location (= /metrics) serves its own path, nginx's access rules
# answer JSON.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(location => <<'LOC');
location / { modelreg; client_max_body_size 0; }
location /registry/ { modelreg; }
location /small/ { modelreg; client_max_body_size 10; }
location = /metrics { modelreg; allow 127.0.0.1; deny all; }
location = /audit { modelreg; deny all; }
LOC

sub is_json_answer {
    my ($res, $status, $body, $name) = @_;
    is($res->{status}, $status, "$name: status $status");
    is($res->{headers}{'content-type'}, 'application/json',
       "$name: JSON content type");
    is($res->{content}, $body, "$name: body");
    like($res->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
         "$name: X-Request-Id");
}

is_json_answer($h->get('/health'), 200, '{"status":"ok"}', 'health');
is_json_answer($h->get('/health/ready'), 200,
               '{"status":"ok","database":"ok","storage":"ok"}', 'ready');

# the store stops being writable: not ready, and the answer says which
my $tmp = $h->dir . '/objects/.tmp';
my $mode = (stat $tmp)[2] & 07777;
chmod 0500, $tmp or die $!;
is_json_answer($h->get('/health/ready'), 503,
               '{"status":"unavailable","database":"ok",'
               . '"storage":"unavailable"}', 'ready without storage');
chmod $mode, $tmp or die $!;
is($h->get('/health/ready')->{status}, 200, 'ready with storage back');

my $res = $h->head('/health');
is($res->{status}, 200, 'HEAD /health');
is($res->{content} // '', '', 'HEAD has no body');

is_json_answer($h->get('/nothing/here'), 404, '{"detail":"Not Found"}',
               'unknown route');
is_json_answer($h->get('/models/abcdefghijklmnop/files/x'), 404,
               '{"detail":"Not Found"}', 'too deep');
is_json_answer($h->get('/healthz'), 404, '{"detail":"Not Found"}',
               'prefix of a route is not the route');

my @allow = (
    [ 'DELETE', '/models', 'GET, POST' ],
    [ 'POST', '/models/abcdefghijklmnop', 'GET, PUT, DELETE' ],
    [ 'POST', '/models/bad', 'GET, PUT, DELETE' ],
    [ 'PUT', '/models/abcdefghijklmnop/files', 'GET, HEAD' ],
    [ 'DELETE', '/models/x/files', 'GET, HEAD' ],
    [ 'POST', '/health', 'GET, HEAD' ],
    [ 'POST', '/events', 'GET' ],
);
for my $a (@allow) {
    my ($m, $path, $allow) = @$a;
    my $r = $h->request($m, $path);
    is_json_answer($r, 405, '{"detail":"Method Not Allowed"}', "$m $path");
    is($r->{headers}{allow}, $allow, "$m $path: Allow");
}

is_json_answer($h->get('/models/short'), 400,
               '{"detail":"Invalid format for model ID."}', 'short model id');
is_json_answer($h->get('/models/' . ('a' x 129)), 400,
               '{"detail":"Invalid format for model ID."}', 'long model id');
is_json_answer($h->get('/models/abcdefghijklmno%21/files'), 400,
               '{"detail":"Invalid format for model ID."}', 'bad character');
is_json_answer($h->get('/projects/short'), 400,
               '{"detail":"Invalid format for project ID."}', 'project id');

is_json_answer($h->get('/projects'), 503,
               '{"detail":"Geti integration is not configured."}',
               'Geti routes without Geti');
is_json_answer($h->post('/geti/sync'), 503,
               '{"detail":"Geti integration is not configured."}',
               'Geti sync without Geti');

# mounted below a prefix
is_json_answer($h->get('/registry/health'), 200, '{"status":"ok"}',
               'prefixed health');
is_json_answer($h->get('/registry/nothing'), 404, '{"detail":"Not Found"}',
               'prefixed unknown route');

# an exact location is the whole path: how to guard one route
$res = $h->get('/metrics');
is($res->{status}, 200, 'location = /metrics { modelreg; allow ...; }');
like($res->{content}, qr/^modelreg_http_requests_total/m, 'is /metrics');
is_json_answer($h->get('/audit'), 403, '{"detail":"Forbidden"}',
               'location = /audit { modelreg; deny all; }: 403 JSON');

# nginx's own error page becomes JSON too
is_json_answer($h->post('/small/models', { content => 'x' x 100 }), 413,
               '{"detail":"Request Entity Too Large"}', 'nginx 413');

# a HEAD of an error carries no body
$res = $h->head('/nothing');
is($res->{status}, 404, 'HEAD of an unknown route');
is($res->{content} // '', '', 'without a body');

# keep-alive: several answers on one connection stay well framed
my $ka = HTTP::Tiny->new(keep_alive => 1);
for my $path ('/nothing', '/health', '/models/bad', '/health/ready') {
    my $r = $ka->get($h->url($path));
    $h->openapi_check('GET', $path, $r);
    ok($r->{status} < 500, "keep-alive $path answered $r->{status}");
}

$h->finish;
done_testing();
