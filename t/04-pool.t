# Proves: the per-worker pool never blocks the worker and never hangs a
# request.  With pool=2 queue=16 and the readiness query held by a table
# lock, 200 concurrent readiness requests all answer: 2 run, 16 wait (200
# once the lock goes), the rest get 503 at once because the queue is full;
# /health is served on the same worker while the queries wait.  A query
# that outlives the timeout answers 503, and the pool recovers.  A
# statement that cannot be prepared (its table missing) is run unprepared,
# so its own error is reported; once the table is back the same text works
# on the same connection, unprepared, and other statements stay prepared.
# A schema older than the module's (its last migration not recorded, or
# none) is not ready: 503, the log naming both versions; the module's
# version is the last of sql/.
# With queue=0 a request still gets a connection opened for it.
# A streamed list (single-row mode) whose client stops reading stops
# reading PostgreSQL too (the server waits on ClientWrite), until its
# timeout closes the connection; one whose client goes away mid-answer
# has its connection closed at once (the server's backend ends): either
# way the pool answers the next query.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use Modelreg::Harness;

my $ok = '{"status":"ok","database":"ok","storage":"ok"}';
my $down = '{"status":"unavailable","database":"unavailable",'
           . '"storage":"ok"}';

sub wait_for {
    my ($what, $cond) = @_;
    for (1 .. 200) {
        return 1 if $cond->();
        sleep 0.05;
    }
    fail("waited for $what");
    return 0;
}

sub lock_schema {
    my ($h) = @_;
    my $s = $h->psql_session;
    $s->run('BEGIN; LOCK TABLE modelreg_migrations IN ACCESS EXCLUSIVE MODE;');
    wait_for('the lock', sub {
        $h->psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                 . " ON c.oid = l.relation WHERE c.relname ="
                 . " 'modelreg_migrations' AND l.granted"
                 . " AND l.mode = 'AccessExclusiveLock'") == 1
    });
    return $s;
}

sub lock_waiters {
    my ($h) = @_;
    return $h->psql("SELECT count(*) FROM pg_stat_activity WHERE"
                    . " wait_event_type = 'Lock' AND query LIKE"
                    . " '%max(version)%'");
}

my $h = Modelreg::Harness->new(workers => 1,
                               db => 'pool=2 queue=16 timeout=30s');

my $lock = lock_schema($h);

my @socks = map { $h->send_raw('GET', '/health/ready') } 1 .. 200;

wait_for('two queries blocked on the lock', sub { lock_waiters($h) == 2 });

my $health = $h->get('/health');
is($health->{status}, 200, '/health answers while two queries are stuck');
my $pending = grep { !$h->has_response($_) } @socks;
cmp_ok($pending, '>=', 16,
       "at least pool+queue-2 readiness requests still wait ($pending)");

$lock->run('COMMIT;');
$lock->end;

my @res = map { $h->read_response($_, 40) } @socks;
my @ok = grep { $_->{status} == 200 } @res;
my @busy = grep { $_->{status} == 503 } @res;
is(@ok + @busy, 200, 'every request answered 200 or 503, none hung');
cmp_ok(scalar @ok, '>=', 16, 'the waiting ones got 200 (' . @ok . ')');
cmp_ok(scalar @ok, '<=', 18, 'no more than pool + queue got through');
is_deeply([ grep { $_->{content} ne $ok } @ok ], [], '200 bodies say ok');
is_deeply([ grep { $_->{content} ne $down } @busy ], [],
          '503 bodies name the database');
# 16, or up to 18 while the pool's two connections are still being opened
# (a request waiting for a connection opened for it is not in queue=)
like($h->error_log, qr/database wait queue is full \(1[678]\)/,
     'the log says the queue was full');

is($h->get('/health/ready')->{status}, 200, 'the pool serves afterwards');
$h->finish;
undef $h;

# a query that outlives the timeout
my $t = Modelreg::Harness->new(workers => 1,
                               db => 'pool=1 queue=4 timeout=1s',
                               client_timeout => 1 + 10);
$lock = lock_schema($t);
my $slow = $t->send_raw('GET', '/health/ready');
wait_for('the query blocked', sub { lock_waiters($t) == 1 });
is($t->get('/health')->{status}, 200, '/health while the query is stuck');
ok(!$t->has_response($slow), 'the readiness request is still waiting');
my $res = $t->read_response($slow, 1 + 10);
is($res->{status}, 503, 'a stuck query ends in 503 at the timeout');
is($res->{content}, $down, 'naming the database');
like($t->error_log, qr/database query timed out after 1000 ms/,
     'the log says the query timed out');

# queued behind the stuck one, with the one connection busy: also 503
$slow = $t->send_raw('GET', '/health/ready');
wait_for('the query blocked', sub { lock_waiters($t) == 1 });
my $queued = $t->send_raw('GET', '/health/ready');
# (the stuck query is dropped at its deadline; the queued one then runs
# into the same lock and is dropped at its own)
is($t->read_response($queued, 11)->{status}, 503,
   'a request queued behind a stuck query ends in 503 at its timeout');
$t->read_response($slow, 11);

$lock->run('COMMIT;');
$lock->end;

my $status = 0;
wait_for('recovery', sub { ($status = $t->get('/health/ready')->{status})
                           == 200 });
is($status, 200, 'the pool reconnects after dropping a stuck connection');
$t->finish;

# ---- a text that cannot be prepared: one connection, so it is the same
my $p = Modelreg::Harness->new(db => 'pool=1 queue=16 timeout=5s');
$p->psql('ALTER TABLE modelreg_migrations RENAME TO modelreg_migrations_x');
is($p->get('/health/ready')->{status}, 503, 'the readiness query fails to prepare: 503');
like($p->error_log, qr/the database has no modelreg schema \(apply sql\/ migrations\): relation "modelreg_migrations" does not exist/,
     'with the statement\'s own error, from its unprepared run');
$p->psql('ALTER TABLE modelreg_migrations_x RENAME TO modelreg_migrations');
is($p->get('/health/ready')->{content}, $ok,
   'the table back: the same text runs unprepared on the same connection');
is($p->get('/health/ready')->{status}, 200, 'and again');

# ---- a schema older than the module's (a migration not applied): not
# ready, the log names both versions; the module's version is sql/'s last
my ($last) = sort { $b <=> $a }
             map { m{/(\d{3})_[^/]*\.sql$} ? $1 + 0 : () }
             glob("$FindBin::Bin/../sql/[0-9][0-9][0-9]_*.sql");
my ($needs) = (Modelreg::Harness::slurp("$FindBin::Bin/../ngx_modelreg/"
                                        . "ngx_http_modelreg_health.c")
               // '') =~ /define NGX_HTTP_MODELREG_SCHEMA_VERSION\s+(\d+)/;
is($needs, $last, "the module needs sql/'s last migration ($last)");
my $row = $p->psql("SELECT name FROM modelreg_migrations"
                   . " WHERE version = $last");
$p->psql("DELETE FROM modelreg_migrations WHERE version = $last");
my $prev = $p->psql('SELECT max(version) FROM modelreg_migrations');
is_deeply([ @{ $p->get('/health/ready') }{qw(status content)} ],
          [ 503, $down ], 'schema older than the module: 503, the database'
                          . ' not ready');
my $says = "the database's modelreg schema is at version $prev,"
           . " this module needs $last (apply sql/ migrations)";
like($p->error_log, qr/\Q$says\E/,
     'the log names both versions');
$p->psql('DELETE FROM modelreg_migrations');
is($p->get('/health/ready')->{status}, 503, 'no migration recorded: 503');
like($p->error_log, qr/schema is at version 0, this module needs $last/,
     'as version 0');
$p->psql("INSERT INTO modelreg_migrations (version, name)"
         . " SELECT v, 'again' FROM generate_series(1, $last - 1) v;"
         . " INSERT INTO modelreg_migrations (version, name)"
         . " VALUES ($last, '$row')");
is($p->get('/health/ready')->{content}, $ok, 'migrated: ready again');
my $mid = $p->new_model(name => 'p', version => '1');
is($p->get("/models/$mid")->{status}, 200, 'other statements still work');
$p->finish;

# ---- streamed lists: 20 models of 1 MB, more than the sockets hold
my $st = Modelreg::Harness->new(workers => 1,
                                db => 'pool=1 queue=4 timeout=3s');
$st->psql(<<'SQL');
INSERT INTO models (id, name, version, created_date, size, sha256,
                    file_name, storage_key, overview)
SELECT 'stream' || lpad(i::text, 10, '0'), 'stream-' || i, '1', 'x', 1,
       repeat('0', 64), 'm.zip', 'stream/' || i,
       jsonb_build_object('text', repeat(md5(i::text), 31250))
FROM generate_series(1, 20) i
SQL

# the backend running the list, and what it waits on
sub list_backend {
    my ($h) = @_;
    return $h->psql("SELECT pid || ' ' || coalesce(wait_event, '-')"
                    . " FROM pg_stat_activity WHERE state = 'active'"
                    . " AND query LIKE '%FROM models m%'"
                    . " AND pid <> pg_backend_pid()");
}

# a client that reads nothing
my $stalled = $st->unchecked($st->send_raw('GET', '/models?limit=20'));
my $seen = '';
wait_for('the server to wait for the worker', sub {
    ($seen = list_backend($st)) =~ /ClientWrite/
});
like($seen, qr/^\d+ ClientWrite$/,
     'the client stalls: PostgreSQL waits to write (the worker stopped'
     . ' reading)');
my ($pid) = $seen =~ /^(\d+)/;
is($st->get('/health')->{status}, 200, '/health meanwhile');
ok(wait_for('the timeout', sub {
    $st->error_log =~ /database query timed out after 3000 ms/
}), 'the query times out, the client still not reading');
my $cut = $st->read_response($stalled, 30);
cmp_ok(length($cut->{content}), '<', 20 * 1_000_000,
       'its answer is cut short');
wait_for('the backend to end', sub {
    $st->psql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") == 0
});
is($st->get('/models?limit=1')->{status}, 200,
   'a new connection serves the next list');

# a client that goes away after the first bytes
my $gone = $st->send_raw('GET', '/models?limit=20');
wait_for('the answer to begin', sub { $st->has_response($gone) });
sysread($gone, my $buf, 1024);
like($buf, qr{^HTTP/1\.1 200}, 'the answer began');
wait_for('the list to run', sub { ($seen = list_backend($st)) ne '' });
($pid) = $seen =~ /^(\d+)/;
close $gone;
wait_for('its backend to end', sub {
    $st->psql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") == 0
});
pass('the client gone, the streamed query\'s connection is closed');
is($st->get('/models?limit=1')->{status}, 200, 'and the pool serves on');
is(scalar(grep { $_->{status} == 200 }
          map { $st->get('/models?limit=2') } 1 .. 5), 5,
   'list after list');
$st->finish;

# queue=0: no request waits for a busy connection, but one may still wait
# for a connection being opened for it (it answered 503 forever before)
my $q0 = Modelreg::Harness->new(workers => 1, db => 'pool=2 queue=0');
is($q0->get('/health/ready')->{status}, 200, 'queue=0: a query runs');
is(scalar(grep { $_->{status} == 200 }
          $q0->parallel(2, 'GET', '/health/ready')), 2,
   'queue=0: two at once on two connections');
$q0->finish;

done_testing();
