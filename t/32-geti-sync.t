# Proves: the periodic Geti sync (sync=1s, projects=) imports every
# OpenVINO model of the configured projects, once: a second run imports
# nothing new; a model deleted after import is not brought back (a
# tombstone), while an explicit import brings it back; GET /geti/sync
# reports the runs in API.md's shape; POST /geti/sync starts a run (202)
# or answers 409 while one runs; during a run that waits on a slow Geti
# the worker goes on answering (counted, not timed); a Geti that is down
# makes runs fail (recorded); a reload in the middle of a run leaves no
# duplicate and the next run proceeds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Modelreg::Harness;

sub pid { sprintf('6650a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub oid { sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $_[1], $_[0]) }

my $h = Modelreg::Harness->new(geti => {}, geti_params =>
    'sync=1s export_timeout=2s projects=' . pid(1) . ',' . pid(3));

sub geti_models { $h->psql("SELECT count(*) FROM models WHERE origin = 'Geti'") }
sub last_run { $h->get('/geti/sync')->{json}{last_run} // {} }

ok($h->wait_for(sub { geti_models() == 4 }, 60),
   'the sync imports the 4 OpenVINO models of the 2 projects');
my $st = $h->get('/geti/sync');
is($st->{status}, 200, 'GET /geti/sync');
is($st->{json}{configured}, JSON::PP::true, 'configured');
is($st->{json}{interval_s}, 1, 'interval_s');
ok(defined $st->{json}{next_run}, 'next_run');
like($st->{content}, qr/^\{"configured" : true, "interval_s" : 1, "running" : \w+, "next_run" : /,
     'field order');

my $first = last_run()->{id};
ok($h->wait_for(sub { (last_run()->{id} // 0) > $first + 1
                      && last_run()->{outcome} ne 'running' }, 30),
   'more runs follow');
my $run = last_run();
is($run->{outcome}, 'ok', 'a later run: ok');
ok($h->metrics->{'modelreg_geti_sync_runs_total{outcome="ok"}'} >= 2,
   '/metrics counts the ok runs');
is($run->{seen}, 4, 'it saw the 4 models');
is($run->{imported}, 0, 'and imported nothing new');
is(geti_models(), 4, 'each model once');
is($h->psql("SELECT count(*) FROM audit_events WHERE action = 'geti.import'"),
   4, 'four imports audited');
ok($h->psql("SELECT count(*) FROM audit_events WHERE action = 'geti.sync'")
   >= 2, 'runs audited');

# a deleted model stays deleted, until asked for
is($h->delete('/models/' . oid(1, 1))->{status}, 204, 'an import deleted');
my $after = last_run()->{id};
ok($h->wait_for(sub { (last_run()->{id} // 0) > $after + 1
                      && last_run()->{outcome} ne 'running' }, 30),
   'runs go on');
is($h->get('/models/' . oid(1, 1))->{status}, 404,
   'the sync did not bring it back');
my $res = $h->post('/projects/' . pid(1) . '/geti-models/download',
    { content => encode_json({ models => [ { id => oid(1, 1),
                                             group_id => '7750a1b2c3d4e5f6a7b8c901' } ] }),
      headers => { 'Content-Type' => 'application/json' } });
is($res->{status}, 201, 'an explicit import brings it back');
$h->finish;
undef $h;

# ---- manual runs, a slow Geti, Geti down, a reload
my $m = Modelreg::Harness->new(geti => { slow => 2 }, geti_params =>
    'export_timeout=10s projects=' . pid(2) . ',' . pid(5));
$h = $m;
$st = $m->get('/geti/sync');
is($st->{json}{interval_s}, undef, 'no interval without sync=');
is($st->{json}{last_run}, undef, 'no run yet');

$res = $m->post('/geti/sync');
is($res->{status}, 202, 'POST /geti/sync: 202');
is($res->{json}{running}, JSON::PP::true, 'running');
is($m->post('/geti/sync')->{status}, 409, 'again while it runs: 409');
is($m->post('/geti/sync')->{content},
   '{"detail":"A Geti sync is already running."}', 'detail');

# the run waits on the slow project: the worker answers meanwhile
my $known = $m->new_model(name => 'local', version => '1');
my $answered = 0;
$answered++ for grep { $_ == 200 }
                map { $m->get("/models/$known")->{status} } 1 .. 20;
is($answered, 20, 'twenty GET /models/{id} answered during the run');
ok(last_run()->{outcome} eq 'running', 'while the run was still running');

ok($m->wait_for(sub { last_run()->{outcome} ne 'running' }, 60),
   'the run ends');
$run = last_run();
is($run->{outcome}, 'partial', 'partial: one export FAILED');
is($m->metrics->{'modelreg_geti_sync_runs_total{outcome="partial"}'}, 1,
   '/metrics counts the partial run');
is($run->{seen}, 4, 'seen 4');
is($run->{imported}, 3, 'imported 3');
is($run->{failed}, 1, 'failed 1');

# a reload in the middle of a run
$m->psql("DELETE FROM models; DELETE FROM geti_tombstones");

is($m->post('/geti/sync')->{status}, 202, 'a run');
$m->reload_nginx;
ok($m->wait_for(sub { $m->post('/geti/sync')->{status} == 202 }, 60),
   'after a reload, the next run proceeds');
ok($m->wait_for(sub { last_run()->{outcome} ne 'running' }, 60),
   'and ends');
# an import the reload cut short (its caller, the old worker, went away)
# is no model, and no half of one: the next run brings it
ok($m->wait_for(sub {
       $m->post('/geti/sync') if last_run()->{outcome} ne 'running';
       $m->psql("SELECT count(*) FROM models") == 3 }, 60),
   'none lost: a later run brings what the reload cut short');
ok($m->wait_for(sub { last_run()->{outcome} ne 'running' }, 60),
   'that run ends');
is($m->psql("SELECT count(*) FROM models"), 3, 'no duplicate');

# Geti down: the run fails, and says so
$m->geti->stop;
is($m->post('/geti/sync')->{status}, 202, 'a run with Geti down');
ok($m->wait_for(sub { last_run()->{outcome} ne 'running' }, 30), 'ends');
is(last_run()->{outcome}, 'failed', 'failed');
like(last_run()->{error}, qr/Geti unavailable/, 'says why');
is($m->get('/health')->{status}, 200, 'still serving');
$m->finish;
undef $m;
undef $h;

# ---- Geti down under a timer: runs fail and back off
my $d = Modelreg::Harness->new(geti => {}, geti_params =>
    'sync=1s projects=' . pid(1));
$d->geti->stop;
ok($d->wait_for(sub {
       my @w = $d->error_log =~ /failed \d+ times in a row, the next run in (\d+) ms/g;
       @w >= 3 }, 40), 'failing runs, logged with their delays');
my @delays = $d->error_log =~ /failed \d+ times in a row, the next run in (\d+) ms/g;
ok($delays[1] > $delays[0] && $delays[2] > $delays[1],
   "each delay longer than the last (@delays[0..2] ms)");
is($d->get('/health')->{status}, 200, 'still serving');
$d->finish;
undef $d;

# ---- two nginx nodes on one database: each model once, no overlap
my $n1 = Modelreg::Harness->new(geti => {}, geti_params =>
    'sync=1s export_timeout=5s projects=' . pid(1) . ',' . pid(3));
my $n2 = Modelreg::Harness->new(pg_of => $n1, geti => {}, geti_params =>
    'sync=1s export_timeout=5s projects=' . pid(1) . ',' . pid(3));
ok($n1->wait_for(sub {
       $n1->psql("SELECT count(*) FROM geti_sync_runs"
                 . " WHERE outcome <> 'running'") >= 6 }, 60),
   'several runs by the two nodes');
is($n1->psql("SELECT count(*) FROM models"), 4, 'each model imported once');
is($n1->psql("SELECT count(*) FROM audit_events WHERE action = 'geti.import'"),
   4, 'four imports, no more');
is($n1->psql("SELECT count(*) FROM geti_sync_runs a JOIN geti_sync_runs b"
             . " ON a.id < b.id AND a.finished > b.started"
             . " WHERE a.error IS DISTINCT FROM 'abandoned'"), 0,
   'runs never overlap');
$n2->finish;
$n1->finish;

done_testing();
