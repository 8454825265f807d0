# Proves: GET /metrics is Prometheus text (API.md) that counts, across
# both workers, every request by route and status, with a latency
# histogram whose buckets add up; the database pool's gauges are those of
# all workers; storage calls are counted by operation and outcome (a
# missing object is a "get" error, a DELETE whose removal fails a
# "delete" error); the clean-up queue shows as storage_gc_pending and its
# retries as storage_gc_total; with the database down /metrics still
# answers (database_up 0); counters survive a reload; HEAD works and other
# methods are 405.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path qw(make_path remove_tree);
use List::Util qw(sum0);
use Modelreg::Harness;

my $h = Modelreg::Harness->new(workers => 2, gc => '1s',
                               db => 'pool=3 queue=64 timeout=3s');
my $root = $h->dir . '/objects';

sub req { 'modelreg_http_requests_total{route="' . $_[0]
          . '",status="' . $_[1] . '"}' }
sub store { 'modelreg_storage_calls_total{op="' . $_[0]
            . '",outcome="' . $_[1] . '"}' }

my $res = $h->get('/metrics');
is($res->{status}, 200, 'GET /metrics');
is($res->{headers}{'content-type'}, 'text/plain; version=0.0.4',
   'Prometheus text format');
like($res->{content}, qr/^# HELP modelreg_http_requests_total .+\n# TYPE modelreg_http_requests_total counter$/m,
     'HELP and TYPE lines');
is($h->head('/metrics')->{status}, 200, 'HEAD /metrics');
is($h->post('/metrics')->{status}, 405, 'POST /metrics: 405');

# ---- requests by route and status, from both workers
my $m0 = $h->metrics;
my $id = $h->new_model(name => 'm', version => '1');
$h->get("/models/$id") for 1 .. 20;          # a new connection each
$h->get('/models/0000000000000000000000000000000f') for 1 .. 2;
$h->get('/nowhere');
$h->put('/models');
# a request is counted in its log phase, just after its answer is sent:
# the last one's worker may still be on its way there
my $m1;
my $d = sub { ($m1->{$_[0]} // 0) - ($m0->{$_[0]} // 0) };
$h->wait_for(sub { $m1 = $h->metrics;
                   $d->(req('/models/{id}', 200)) >= 20
                   && $d->(req('/models/{id}', 404)) >= 2
                   && $d->(req('/models', 201)) && $d->(req('/models', 405))
                   && $d->(req('unknown', 404)) && $d->(req('/metrics', 200)) });
is($d->(req('/models/{id}', 200)), 20, '20 GET /models/{id} 200');
is($d->(req('/models/{id}', 404)), 2, '2 of them 404');
is($d->(req('/models', 201)), 1, 'a registration: /models 201');
is($d->(req('/models', 405)), 1, 'PUT /models: 405');
is($d->(req('unknown', 404)), 1, 'an unknown path: route "unknown"');
is($d->(req('/metrics', 200)), 1, 'the previous scrape itself');

# the histogram: cumulative, +Inf is the count, the count is the requests
my @le = map { /le="([^"]+)"/ ? $1 : () }
         grep { /^modelreg_http_request_duration_seconds_bucket\{route="\/models\/\{id\}"/ }
         sort keys %$m1;
my $bucket = sub { $m1->{"modelreg_http_request_duration_seconds_bucket{route=\"/models/{id}\",le=\"$_[0]\"}"} };
my @order = sort { ($a eq '+Inf' ? 1e9 : $a) <=> ($b eq '+Inf' ? 1e9 : $b) } @le;
is(scalar @order, 14, '14 buckets');
is_deeply([ map { $bucket->($_) } @order ],
          [ sort { $a <=> $b } map { $bucket->($_) } @order ],
          'buckets never decrease');
my $count = $m1->{'modelreg_http_request_duration_seconds_count{route="/models/{id}"}'};
is($bucket->('+Inf'), $count, '+Inf equals _count');
is($count, sum0(map { $m1->{$_} } grep { /^modelreg_http_requests_total\{route="\/models\/\{id\}"/ } keys %$m1),
   '_count equals the requests of the route');
ok(defined $m1->{'modelreg_http_request_duration_seconds_sum{route="/models/{id}"}'},
   'and a _sum');

# ---- the pool: both workers' gauges (each publishes within a second)
ok($h->wait_for(sub { $h->metrics->{'modelreg_db_pool_connections{state="size"}'} == 6 }),
   'pool size: 3 connections x 2 workers');
my $m = $h->metrics;
ok($m->{'modelreg_db_pool_connections{state="connected"}'} >= 1,
   'at least one connected');
is($m->{'modelreg_db_pool_waiting'}, 0, 'none waiting');
is($m->{'modelreg_database_up'}, 1, 'database_up 1');

# ---- storage calls
$m0 = $h->metrics;
is($h->get("/models/$id/files")->{status}, 200, 'a download');
my ($key) = $h->psql("SELECT storage_key FROM models WHERE id = '$id'");
my $other = $h->new_model(name => 'gone', version => '1');
my ($okey) = $h->psql("SELECT storage_key FROM models WHERE id = '$other'");
unlink "$root/$okey";
is($h->get("/models/$other/files")->{status}, 503, 'a missing object: 503');
$m1 = $h->metrics;
is($d->(store('get', 'ok')), 1, 'get ok counted');
is($d->(store('get', 'error')), 1, 'get error counted');
is($d->(store('put', 'ok')), 1, 'put ok counted');

# a DELETE whose removal fails: a delete error, the queue grows
$m0 = $m1;
make_path("$root/$okey/blocker");
is($h->delete("/models/$other")->{status}, 204, 'DELETE of a blocked object');
$m1 = $h->metrics;
is($d->(store('delete', 'error')), 1, 'delete error counted');
ok($m1->{modelreg_storage_gc_pending} >= 1, 'storage_gc_pending shows it');
ok($h->wait_for(sub {
       $h->metrics->{'modelreg_storage_gc_total{outcome="failed"}'} >= 1 }),
   'the timer\'s failed retry is counted');
remove_tree("$root/$okey");
$h->psql("UPDATE storage_gc SET next_attempt_at = now()");
ok($h->wait_for(sub { $h->metrics->{modelreg_storage_gc_pending} == 0 }),
   'drained: storage_gc_pending 0');
$m = $h->metrics;
ok($m->{'modelreg_storage_gc_total{outcome="removed"}'} >= 1,
   'and the removal counted');
ok($m->{'modelreg_storage_calls_total{op="delete",outcome="ok"}'} >= 1,
   'as a delete ok');

# ---- readiness checks the store: a "check"
$m0 = $h->metrics;
$h->get('/health/ready');
$m1 = $h->metrics;
is($d->(store('check', 'ok')), 1, 'check ok counted');

# ---- the database down: /metrics still answers
$h->stop_pg;
$res = $h->get('/metrics');
is($res->{status}, 200, 'database down: /metrics answers 200');
like($res->{content}, qr/^modelreg_database_up 0$/m, 'database_up 0');
unlike($res->{content}, qr/^modelreg_storage_gc_pending/m,
       'no backlog gauge it cannot know');
like($res->{content}, qr/^modelreg_http_requests_total\{route="\/models\/\{id\}",status="200"\} \d+$/m,
     'the counters are still there');
$h->get("/models/$id");
ok($h->wait_for(sub { $h->metrics->{req('/models/{id}', 503)} }),
   'the 503 is counted');
$h->start_pg;
ok($h->wait_for(sub { $h->get("/models/$id")->{status} == 200 }),
   'back up');

# ---- a reload keeps the counters
my $before = $h->metrics->{req('/models/{id}', 200)};
$h->reload_nginx;
ok($h->wait_for(sub { $h->metrics->{req('/models/{id}', 200)} >= $before }),
   'counters survive a reload');
ok($h->wait_for(sub { $h->metrics->{'modelreg_db_pool_connections{state="size"}'} == 6 }),
   'the new workers publish their pools');

$h->finish;
done_testing();
