# Proves: GET /projects reads every page of Geti's project list (the fake
# pages by two: five projects take three pages), with each project's model
# groups, model versions and only their OpenVINO optimized models, in
# API.md's shape and order; GET /projects/{id} gives one project; an
# unknown project is 404; a Geti that refuses the token or is down gives
# 503 "Geti unavailable." (the log says which) and the worker goes on
# serving; a slow Geti call does not hold other requests on the worker.
# A worker makes at most 8 Geti calls at once: GET /projects over 40
# projects (81 calls, each slow) never has more than 8 in flight at the
# fake Geti and still answers every project whole, two such requests at
# once too; a client that goes away takes its waiting calls with it (they
# are never made) and frees its slots (the next listing is whole).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(geti => { slow => 6 },
                               geti_params => 'timeout=20s');
my $g = $h->geti;

my $res = $h->get('/projects');
is($res->{status}, 200, 'GET /projects');
my $p = $res->{json};
is(scalar @$p, 5, 'all five projects, across three pages');
is_deeply([ map { $_->{name} } @$p ],
          [ 'Project 1', 'Project 2', 'Project 3', 'Project 4',
            'Slow project' ], 'in Geti\'s order');
my @keys = $res->{content} =~ /^\[\{"(\w+)":.*?,"(\w+)":.*?,"(\w+)":.*?,"(\w+)":/;
is_deeply(\@keys, [qw(id name creation_time model_groups)], 'field order');
is($p->[0]{creation_time}, '2024-01-11T10:21:00.000000+00:00',
   'creation_time verbatim');
my $mv = $p->[0]{model_groups}[0]{model_versions}[0];
is($p->[0]{model_groups}[0]{name}, 'YOLOX-1', 'model group');
is($mv->{version}, 1, 'version as a number');
like($res->{content}, qr/"version":1[,}]/, 'an integer in the JSON');
is_deeply([ map { $_->{name} } @{ $mv->{openvino_models} } ],
          [ 'YOLOX-1 OpenVINO FP16', 'YOLOX-1 OpenVINO INT8' ],
          'only the OpenVINO optimized models');

$res = $h->get('/projects/6650a1b2c3d4e5f6a7b8c903');
is($res->{status}, 200, 'GET /projects/{id}');
is($res->{json}{name}, 'Project 3', 'the project');
is(scalar @{ $res->{json}{model_groups} }, 1, 'with its model groups');

$res = $h->get('/projects/0000000000000000000000ff');
is($res->{status}, 404, 'unknown project: 404');
is($res->{content}, '{"detail":"Project not found."}', 'detail');
is($h->get('/projects/bad')->{content},
   '{"detail":"Invalid format for project ID."}', 'bad project id: 400');

# a slow Geti call holds nothing else: many answers while it is in flight
my $slow = $h->send_raw('GET', '/projects/6650a1b2c3d4e5f6a7b8c905');
my $answered = 0;
for (1 .. 20) {
    $answered++ if $h->get('/health')->{status} == 200;
}
ok(!$h->has_response($slow), 'the slow Geti call is still in flight');
is($answered, 20, 'while it is, the worker answered 20 other requests');
is($h->read_response($slow, 30)->{status}, 200, 'then it answers');

$h->finish;
undef $h;

# the wrong token
my $w = Modelreg::Harness->new(geti => { token => 'right' },
                               geti_use_token => 'wrong');
$res = $w->get('/projects');
is($res->{status}, 503, 'a refused token: 503');
is($res->{content}, '{"detail":"Geti unavailable."}', 'naming Geti');
like($w->error_log, qr/Geti refused the token: GET .*: 401/, 'the log says so');
unlike($w->error_log, qr/wrong|right/, 'without the token');
$w->geti->stop;
$res = $w->get('/projects/6650a1b2c3d4e5f6a7b8c901');
is($res->{status}, 503, 'Geti down: 503');
like($w->error_log, qr/Geti unreachable/, 'the log says it is unreachable');
is($w->get('/health')->{status}, 200, 'still serving');
$w->finish;

# a flaky Geti: two failures of a call are retried, three are not
my $f = Modelreg::Harness->new(geti => { flaky => 2 });
$res = $f->get('/projects');
is($res->{status}, 200, 'two 503s of each call: retried, 200');
is(scalar @{ $res->{json} }, 5, 'the whole listing');
like($f->error_log, qr/Geti GET \S+ failed \(.*503\), retrying/,
     'the log says it retried');
$f->finish;
undef $f;
$f = Modelreg::Harness->new(geti => { flaky => 3 });
$res = $f->get('/projects/6650a1b2c3d4e5f6a7b8c901');
is($res->{status}, 503, 'three 503s: the retries are bounded');
is($res->{content}, '{"detail":"Geti unavailable."}', 'Geti unavailable');
$f->finish;

# ---- at most 8 Geti calls at once per worker, the others wait their turn
# (timeout=60s: two listings, 162 calls of 0.5 s, queue ~10 s, the default
# timeout, which counts the wait; a call that times out is tried again
# while the fake still serves the first try, which it counts as at once)
my $b = Modelreg::Harness->new(geti => { projects => 40, page => 100,
                                         delay => 0.5, slow => 0 },
                               geti_params => 'timeout=60s');
my $bg = $b->geti;
$bg->reset_stats;
$res = $b->get('/projects');
is($res->{status}, 200, '40 projects: 200');
is(scalar @{ $res->{json} }, 40, 'all 40, in one listing');
is(scalar(grep { @{ $_->{model_groups}[0]{model_versions}[0]{openvino_models} }
                 == 2 } @{ $res->{json} }), 40,
   'each with its groups, versions and OpenVINO models');
my $st = $bg->stats;
is($st->{total}, 81, 'one call for the listing, one per project and model');
ok($st->{peak} <= 8, "never more than 8 calls at once (peak $st->{peak})");
ok($st->{peak} > 1, 'and more than one');

$bg->reset_stats;
my @two = $b->parallel(2, 'GET', '/projects', 60);
is_deeply([ map { $_->{status} } @two ], [200, 200], 'two listings at once');
is_deeply([ map { scalar @{ decode_json($_->{content}) } } @two ], [40, 40],
          'both whole');
$st = $bg->stats;
ok($st->{peak} <= 8, "still at most 8 at once, for both (peak $st->{peak})");

# a client that goes away: its request ends, its waiting calls with it
$bg->reset_stats;
my $gone = $b->send_raw('GET', '/projects');
$b->wait_for(sub { $bg->stats->{total} >= 5 }, 20);
close $gone;
ok($b->wait_for(sub { $b->error_log =~ /client prematurely closed/ }, 20),
   'a client that went away ends its request');
ok($b->wait_for(sub { $bg->stats->{now} == 0 }, 20),
   'its calls in flight are dropped');
my $made = $bg->stats->{total};
ok($made < 41, "its waiting calls were never made ($made of 81)");
$res = $b->get('/projects');
is(scalar @{ $res->{json} // [] }, 40,
   'the slots it held are free again: the next listing is whole');
$b->finish;
undef $b;

# not configured
my $n = Modelreg::Harness->new;
is($n->get('/projects')->{content},
   '{"detail":"Geti integration is not configured."}', 'Geti off: 503');
$n->finish;

done_testing();
