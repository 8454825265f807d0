# Proves: with PostgreSQL stopped under a running nginx, /health/ready
# answers 503 naming the database within the configured timeout while
# /health stays 200 and no worker crashes; once PostgreSQL is back,
# readiness returns to 200 without restarting nginx.  Also: a database
# that never answered (wrong port) is reported the same way, and the
# schema check catches a database without migrations.  A worker that is
# exiting (after a reload) while a request still waits for the pool, when
# the database goes away, backs off like any other instead of
# reconnecting at once again and again until the request's deadline (it
# did: dozens of attempts a second, each a line in the log).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use Modelreg::Harness;

my $down = '{"status":"unavailable","database":"unavailable",'
           . '"storage":"ok"}';

my $h = Modelreg::Harness->new(workers => 2, db => 'pool=2 timeout=2s',
                               client_timeout => 2 + 10);

is($h->get('/health/ready')->{status}, 200, 'ready with the database up');

$h->stop_pg;

for my $i (1 .. 5) {
    my $res = $h->get('/health/ready');
    is($res->{status}, 503, "database down: ready 503 ($i)");
    is($res->{content}, $down, "database down: names the database ($i)");
}
is($h->get('/health')->{status}, 200, 'database down: /health still 200');

$h->start_pg;

my $status = 0;
for (1 .. 100) {
    $status = $h->get('/health/ready')->{status};
    last if $status == 200;
    sleep 0.1;
}
is($status, 200, 'database back: ready 200 without restarting nginx');

# every connection of every worker heals: soon, many answers in a row
# are 200 (a connection of the other worker may still be in its back-off,
# up to 2 s, when the first 200 comes: under load it was, once)
my @s;
ok($h->wait_for(sub { @s = map { $h->get('/health/ready')->{status} } 1 .. 20;
                      !grep { $_ != 200 } @s }, 15),
   'all later readiness checks pass (20 in a row)')
    or diag "@s";

like($h->error_log, qr/modelreg: (cannot connect to the database|database connection lost)/,
     'the error log says why');
$h->finish;

# a database that is not there at all, from the first request on
my $h2 = Modelreg::Harness->new(no_pg => 1,
    database => 'modelreg_database "host=127.0.0.1 port='
                . Modelreg::Harness::free_port()
                . ' dbname=x user=x" pool=2 timeout=1s;');
my $res = $h2->get('/health/ready');
is($res->{status}, 503, 'no database: ready 503');
is($res->{content}, $down, 'no database: names the database');
is($h2->get('/health')->{status}, 200, 'no database: /health 200');
$h2->finish;
undef $h2;

# ---- an exiting worker, a request waiting, the database gone
my $x = Modelreg::Harness->new(workers => 1,
                               db => 'pool=1 queue=8 timeout=20s');
my $id = $x->new_model(name => 'exiting', version => '1');
my $lock = $x->psql_session;
$lock->run("BEGIN; SELECT id FROM models WHERE id = '$id' FOR UPDATE;");
ok($x->wait_for(sub { $x->psql_admin("SELECT count(*) FROM pg_locks"
                      . " WHERE locktype = 'transactionid' AND granted") >= 1 }),
   'a row locked');
my $put = $x->send_raw('PUT', "/models/$id", 'version=2',
    { 'Content-Type' => 'application/x-www-form-urlencoded' });
ok($x->wait_for(sub { $x->psql_admin("SELECT count(*) FROM pg_stat_activity"
                      . " WHERE application_name = 'modelreg'"
                      . " AND wait_event_type = 'Lock'") == 1 }),
   'a PUT holds the only connection, waiting for the lock');
my $list = $x->send_raw('GET', '/models');
sleep 0.5;
ok(!$x->has_response($list), 'a list waits for that connection');
my ($old) = $x->worker_pids;
$x->reload_nginx;
ok($x->wait_for(sub { $x->error_log =~ /\b$old#\d+: gracefully shutting down/ }),
   'the worker is exiting, both requests still in it');
# (killed, not stopped: a fast shutdown ends the lock's holder first, and
# the PUT's UPDATE could then commit before its own backend ends: 200,
# seen once)
$x->kill_pg;
is($x->read_response($put, 30)->{status}, 503, 'the database gone: PUT 503');
my $lr = $x->read_response($list, 30);
is($lr->{status}, 503, 'the waiting list 503') or diag explain $lr;
my $tries = () = $x->error_log
    =~ /\b$old#\d+: modelreg: cannot connect to the database/g;
ok($tries <= 2, "the exiting worker backed off ($tries connection attempts)");
$lock->end;
$x->finish;
done_testing();
