# Proves: every request that is answered is also ended, once, and nothing
# goes on after an error answer (issue 10, items 2, 3 and 5).
# - 150 PUTs with PostgreSQL stopped, and PUTs while the pool's wait queue
#   is full: each answers 503 and its connection closes (no socket of
#   nginx's stays in CLOSE-WAIT, nginx's own count of connections returns).
# - A multipart PUT whose valid `score` part is followed by a truncated
#   body: 400 Malformed, the score is unchanged, no audit event.
# - A registration whose INSERT committed but whose result was lost on the
#   way back (a relay between nginx and PostgreSQL drops the connection as
#   the answer passes): 503, and the model keeps its object: the row is
#   there, its file downloads with the right bytes, the clean-up queue
#   does not remove it.  One whose INSERT was lost on the way there: 503,
#   and its object is removed by the clean-up once no row names it.  One
#   that could not be sent at all (database down) leaves no object.  One
#   whose key cannot be queued before its worker exits is named in the
#   log (alert).  Connections the database side closes at once never
#   make an epoll call on a closed socket.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use Digest::SHA qw(sha256_hex);
use Modelreg::Harness;
use Modelreg::FaultProxy;

my $down = '{"detail":"Metadata database unavailable."}';

# sockets of nginx's listening port left in CLOSE-WAIT (the client closed,
# nginx never did)
sub close_wait {
    my ($h) = @_;
    my $out = `ss -Htn state close-wait '( sport = :@{[ $h->port ]} )'`;
    return scalar grep { /\S/ } split /\n/, $out;
}

# established client connections to nginx, counted by the kernel
sub established {
    my ($h) = @_;
    my $out = `ss -Htn state established '( sport = :@{[ $h->port ]} )'`;
    return scalar grep { /\S/ } split /\n/, $out;
}

my $proxy = Modelreg::FaultProxy->listen;
my $pp = $proxy->port;
my $h = Modelreg::Harness->new(workers => 1, gc => '1s',
    database => "modelreg_database \"host=127.0.0.1 port=$pp"
                . " dbname=modelreg user=modelreg"
                . Modelreg::Harness::conninfo_password() . "\""
                . " pool=1 queue=1 timeout=3s;");
$proxy->start($h->pg_port);

my $id = $h->new_model(name => 'once', version => '1');
my $zip = Modelreg::Harness::zip_of('m.xml', 'lost' x 500);

# ---- item 3: a valid part, then a truncated multipart body
{
    my $b = 'XyZ';
    my $body = "--$b\r\nContent-Disposition: form-data; name=\"score\"\r\n"
             . "\r\n0.5\r\n--$b\r\nContent-Disposition: form-data; "
             . "name=\"format\"\r\n\r\nonnx";      # no closing boundary
    my $res = $h->put("/models/$id", { content => $body, headers => {
        'Content-Type' => "multipart/form-data; boundary=$b" } });
    is($res->{status}, 400, 'truncated multipart PUT: 400');
    is($res->{content}, '{"detail":"Malformed multipart body."}',
       'the malformed message');
    is($h->psql("SELECT score FROM models WHERE id = '$id'"), '0',
       'the score of the valid part was not written');
    is($h->psql("SELECT count(*) FROM audit_events WHERE model_id = '$id'"
                . " AND action = 'model.update'"), 0, 'and not audited');
}

# ---- item 2: the pool's queue is full (pool=1 queue=1: its one
# connection waiting on a lock, one request queued behind it)
{
    my $s = $h->psql_session;
    $s->run('BEGIN; LOCK TABLE modelreg_migrations IN ACCESS EXCLUSIVE MODE;');
    ok($h->wait_for(sub {
        $h->psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                 . " ON c.oid = l.relation WHERE c.relname ="
                 . " 'modelreg_migrations' AND l.granted"
                 . " AND l.mode = 'AccessExclusiveLock'") == 1 }), 'locked');
    my @held = map { $h->send_raw('GET', '/health/ready') } 1 .. 2;
    ok($h->wait_for(sub {
        $h->psql("SELECT count(*) FROM pg_stat_activity WHERE"
                 . " wait_event_type = 'Lock' AND query LIKE"
                 . " '%max(version)%'") == 1 }), 'the one connection waits');
    sleep 0.2;

    my @socks = map { $h->send_raw('PUT', "/models/$id", 'score=0.7',
        { 'Content-Type' => 'application/x-www-form-urlencoded' }) } 1 .. 40;
    my @res = map { $h->read_response($_, 10) } @socks;
    is(scalar(grep { $_->{status} == 503 && $_->{content} eq $down } @res),
       40, 'queue full: 40 PUTs answer 503');
    ok($h->wait_for(sub { close_wait($h) == 0 }, 10),
       'queue full: no connection left in CLOSE-WAIT');

    $s->end;
    is_deeply([ map { $h->read_response($_, 10)->{status} } @held ],
              [ 200, 200 ], 'the held ones answer');
}

# ---- item 2: the database stopped
$h->stop_pg;
{
    my @res;
    for my $i (1 .. 150) {
        my $body = $i % 3 == 0 ? '{"score": 0.9}'
                 : 'score=0.9';
        my $ct = $i % 3 == 0 ? 'application/json'
               : 'application/x-www-form-urlencoded';
        push @res, $h->put("/models/$id", { content => $body,
                                            headers => { 'Content-Type' => $ct } });
    }
    is(scalar(grep { $_->{status} == 503 && $_->{content} eq $down } @res),
       150, 'database down: 150 PUTs answer 503');
    ok($h->wait_for(sub { close_wait($h) == 0 }, 10),
       'database down: no connection left in CLOSE-WAIT')
        or diag(`ss -tn state close-wait`);
    ok($h->wait_for(sub { established($h) == 0 }, 10),
       'and none left established');
}
$h->start_pg;
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }, 20),
   'the database is back');

# ---- item 5: the INSERT committed, its result was lost
{
    $proxy->drop_on('lost-result-5');
    my $res = $h->register(name => 'lost-result-5', version => '1',
                           file => { value => $zip });
    is($res->{status}, 503, 'result lost: 503');
    is($res->{content}, $down, 'naming the database');
    $proxy->pass;

    my $rid = $h->psql("SELECT id FROM models WHERE name = 'lost-result-5'");
    ok($rid, 'the row committed');
    my $key = $h->psql("SELECT storage_key FROM models WHERE id = '$rid'");
    ok($h->has_object($key), 'its object was kept');
    # (queued as soon as the pool has reconnected: retried until written)
    ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM storage_gc"
                                   . " WHERE storage_key = '$key'") == 1 }),
       'and queued for a checked removal');
    like($h->error_log, qr/outcome of registering .* is unknown/,
         'the log says the outcome was unknown');

    # the clean-up runs every second: it must leave a referenced key alone
    sleep 2.5;
    ok($h->has_object($key), 'the clean-up left it in place');
    my $dl = $h->get("/models/$rid/files");
    is($dl->{status}, 200, 'the model downloads');
    is(sha256_hex($dl->{content}), sha256_hex($zip), 'with its bytes');
}

# ---- the INSERT was sent but never arrived: its outcome is unknown too,
# and the object goes once the clean-up finds no row for it (after twice
# the database timeout and a grace, here 3 s x 2 + 5 s)
{
    my $before = scalar $h->objects;
    $proxy->drop_to('lost-insert-5');
    my $res = $h->register(name => 'lost-insert-5', version => '1',
                           file => { value => $zip });
    $proxy->pass;
    is($res->{status}, 503, 'insert lost on the way: 503');
    is($h->psql("SELECT count(*) FROM models WHERE name = 'lost-insert-5'"),
       0, 'no row');
    is(scalar $h->objects, $before + 1, 'its object waits for the check');
    ok($h->wait_for(sub { scalar $h->objects == $before }, 30),
       'and is removed by the clean-up');
}

# ---- the result is lost and the database stays away: the key waits to
# be queued; when the worker exits first (a reload), the log names it
{
    $proxy->drop_on_then_refuse('exit-alert-5');
    my $res = $h->register(name => 'exit-alert-5', version => '1',
                           file => { value => $zip });
    is($res->{status}, 503, 'result lost, database away: 503');
    my $key = $h->psql("SELECT storage_key FROM models"
                       . " WHERE name = 'exit-alert-5'");
    ok($key && $h->has_object($key), 'the row committed, the object kept');
    sleep 1.5;      # a retry or two, refused
    $h->reload_nginx;
    my $said = qq{"$key" could not be queued for removal before the worker}
               . ' exited';
    ok($h->wait_for(sub { index($h->error_log, $said) >= 0 }),
       'the exiting worker names the key it could not queue');
    $proxy->pass;
    ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }, 20),
       'the database is back through the relay');
}

# ---- and an INSERT that never reached the database leaves nothing
{
    my $before = scalar $h->objects;
    $h->stop_pg;
    my $res = $h->register(name => 'never-sent', version => '1',
                           file => { value => $zip });
    is($res->{status}, 503, 'database down: POST 503');
    is(scalar $h->objects, $before, 'no object left');
}
$h->start_pg;

# the listener and the pool met connections that libpq closed itself
unlike($h->error_log, qr/epoll_ctl.*failed/,
       'no epoll call on a socket libpq had closed');

$proxy->stop;
$h->finish;
done_testing;
