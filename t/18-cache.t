# Proves: GET /models/{id} is answered from the shared read cache after
# its first read (/metrics: miss, store, then hits; the same bytes), and
# so are GET /models pages (the same bytes and Link, HEAD too; one entry
# for every spelling of the same arguments; a 404 or an alias set ends
# none; a page streamed over 64 KiB is not kept), every registration, PUT and DELETE
# through nginx seen by the next list, an UPDATE in SQL and a second
# node's registration (sql/009's NOTIFY of an INSERT) by NOTIFY, and off
# line lists read the database; and
# the cache never serves a stale model: a PUT or DELETE through nginx is
# seen by the very next GET on either worker, and four readers racing
# thirty PUTs never get a version older than the last PUT answered; a change made by hand in SQL
# or by a second node on the same database arrives by NOTIFY; TRUNCATE
# empties it.  When its LISTEN connection is killed the cache goes off
# line (every GET reads the database) until the listener is back, which
# starts from an empty cache; a hung listener is found by its ping, a
# stopped database by its failed reconnects; without
# the trigger (migration 004) it stays off line and says why.  A small zone evicts and stays correct;
# "modelreg_cache off" turns it off; it survives a reload (which warns
# of a schema every role may create in), also one whose
# old worker 0's listener completes its start after the new one's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use POSIX ();
use HTTP::Tiny;
use IO::Socket::INET;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(workers => 2);

sub ev { $_[0]->metrics->{"modelreg_cache_events_total{event=\"$_[1]\"}"} }
sub version_of { my ($n, $id) = @_; my $r = $n->get("/models/$id");
                 $r->{status} == 200 ? $r->{json}{version} : $r->{status} }
sub put_version {
    my ($n, $id, $v) = @_;
    return $n->put("/models/$id", { content => "version=$v", headers =>
        { 'Content-Type' => 'application/x-www-form-urlencoded' } })->{status};
}
sub listener_pid {
    $h->psql("SELECT pid FROM pg_stat_activity"
             . " WHERE application_name = 'modelreg-listen'") }
sub online { $h->error_log =~ /the model cache is on line(?![\s\S]*off line)/ }

ok($h->wait_for(sub { online() }), 'the cache comes on line');

# ---- miss, store, hit
my $id = $h->new_model(name => 'c', version => '1');
my ($hit0, $miss0, $store0) = map { ev($h, $_) } qw(hit miss store);
my $first = $h->get("/models/$id");
my @again = map { $h->get("/models/$id") } 1 .. 10;
is(ev($h, 'miss') - $miss0, 1, 'the first GET misses');
is(ev($h, 'store') - $store0, 1, 'and stores');
is(ev($h, 'hit') - $hit0, 10, 'ten more are hits');
is_deeply([ map { $_->{content} } @again ], [ ($first->{content}) x 10 ],
          'the same bytes');
is($again[0]{headers}{'content-type'}, 'application/json', 'JSON');
is($h->head("/models/$id")->{status}, 200, 'HEAD from the cache');

# ---- GET /models pages: kept until any model changes, every change
# through nginx seen by the very next list (either worker)
sub names { my ($n, $q) = @_; my $r = $n->get($q);
            $r->{status} == 200
                ? join ',', map { "$_->{name}:$_->{version}" } @{ $r->{json} }
                : $r->{status} }
my @lids = map { $h->new_model(name => "lst$_", version => '1') } 1 .. 3;
my $lq = '/models?name=lst&limit=2';
($hit0, $miss0, $store0) = map { ev($h, $_) } qw(hit miss store);
my $p1 = $h->get($lq);
my @p1again = map { $h->get($lq) } 1 .. 6;
is(ev($h, 'miss') - $miss0, 1, 'a list: the first GET misses');
is(ev($h, 'store') - $store0, 1, 'and stores the page');
is(ev($h, 'hit') - $hit0, 6, 'six more are hits');
is_deeply([ map { $_->{content} } @p1again ], [ ($p1->{content}) x 6 ],
          'the same bytes');
like($p1->{headers}{link}, qr/page_token=/, 'with a Link to page 2');
is_deeply([ map { $_->{headers}{link} } @p1again ],
          [ ($p1->{headers}{link}) x 6 ], 'the same Link from the cache');
is($p1again[0]{headers}{'content-length'}, length $p1->{content},
   'and a Content-Length');
my $lh = $h->head($lq);
is($lh->{status}, 200, 'HEAD of a cached page');
is($lh->{headers}{link}, $p1->{headers}{link}, 'with its Link');
$miss0 = ev($h, 'miss');
is($h->get('/models?limit=0002&name=lst&name=lst')->{content}, $p1->{content},
   'the same arguments spelt otherwise');
is(ev($h, 'miss') - $miss0, 0, 'are the same entry (a hit)');
is($h->get('/models/no-such-model-0000001')->{status}, 404,
   'a GET of a model that does not exist');
is($h->put("/aliases/lst1/prod", { content => "model_id=$lids[0]",
       headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }
   })->{status}, 200, 'and an alias set');
$hit0 = ev($h, 'hit');
$h->get($lq);
is(ev($h, 'hit') - $hit0, 1, 'end no cached page');
my $lq2 = '/models?name=lst';
is(names($h, $lq2), 'lst1:1,lst2:1,lst3:1', 'the whole list, cached') for 1 .. 2;
my $l4 = $h->new_model(name => 'lst4', version => '1');
is_deeply([ map { names($h, $lq2) } 1 .. 4 ],
          [ ('lst1:1,lst2:1,lst3:1,lst4:1') x 4 ],
          'a registration is on the very next lists');
is(put_version($h, $lids[1], 2), 200, 'PUT version=2 of lst2');
is_deeply([ map { names($h, $lq2) } 1 .. 4 ],
          [ ('lst1:1,lst2:2,lst3:1,lst4:1') x 4 ], 'the next lists show it');
is($h->delete("/models/$l4")->{status}, 204, 'DELETE lst4');
is_deeply([ map { names($h, $lq2) } 1 .. 4 ],
          [ ('lst1:1,lst2:2,lst3:1') x 4 ], 'the next lists lack it');
$h->psql("UPDATE models SET version = 'sql' WHERE name = 'lst3'");
ok($h->wait_for(sub { names($h, $lq2) eq 'lst1:1,lst2:2,lst3:sql' }, 5),
   'an UPDATE in psql reaches the cached lists (NOTIFY)');

# a page over 64 KiB is streamed, not kept
$h->new_model(name => "big$_", version => '1',
              overview => '{"text":"' . ('x' x 12000) . '"}') for 1 .. 6;
$store0 = ev($h, 'store');
my $big = $h->get('/models?name=big');
is(scalar @{ $big->{json} }, 6, 'six 12 KB models listed');
ok(!defined $big->{headers}{'content-length'}, 'streamed (chunked)');
$h->get('/models?name=big');
is(ev($h, 'store') - $store0, 0, 'and never stored');

# ---- writes through nginx: the next GET, on any worker, sees them
for my $v (2 .. 6) {
    is(put_version($h, $id, $v), 200, "PUT version=$v");
    is_deeply([ map { version_of($h, $id) } 1 .. 6 ], [ ($v) x 6 ],
              "six GETs right after see version $v");
}
is($h->delete("/models/$id")->{status}, 204, 'DELETE');
is_deeply([ map { version_of($h, $id) } 1 .. 6 ], [ (404) x 6 ],
          'every GET right after is 404');

# ---- under load: 4 readers (their own processes) while a writer PUTs
# versions 1..30; a read that starts after PUT v was answered returns v or
# later (reads overlapping a PUT may see either version)
my $mono = $h->new_model(name => 'mono', version => '0');
my $stop = $h->dir . '/stop-readers';
my @readers;
for my $r (1 .. 4) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $http = HTTP::Tiny->new(keep_alive => ($r % 2), timeout => 10);
        open my $out, '>', $h->dir . "/reader-$r" or POSIX::_exit(1);
        until (-e $stop) {
            my $t = Time::HiRes::time();
            my $res = $http->get($h->url("/models/$mono"));
            print $out "$t ", ($res->{status} == 200
                        && $res->{content} =~ /"version" : "(\d+)"/
                        ? $1 : "status $res->{status}"), "\n";
        }
        close $out;
        POSIX::_exit(0);
    }
    push @readers, $pid;
}
my (@late, @acked);
for my $v (1 .. 30) {
    put_version($h, $mono, $v);
    push @acked, [ Time::HiRes::time(), $v ];
    push @late, $v unless version_of($h, $mono) eq $v;
}
open my $fh, '>', $stop or die $!;
close $fh;
waitpid $_, 0 for @readers;
is_deeply(\@late, [], 'after each PUT the next GET has its version');
my ($reads, @stale) = (0);
for my $r (1 .. 4) {
    open my $in, '<', $h->dir . "/reader-$r" or die $!;
    while (my $line = <$in>) {
        my ($t, $v) = split ' ', $line, 2;
        chomp $v;
        $reads++;
        # the newest version answered before this read started
        my ($floor) = map { $_->[1] } grep { $_->[0] < $t } reverse @acked;
        push @stale, "reader $r at $t: $v, after $floor was answered"
            if $v !~ /^\d+$/ || ($floor && $v < $floor);
    }
}
ok($reads > 100, "the readers made $reads reads");
is_deeply(\@stale, [], 'none older than the last PUT answered before it');

# ---- changes by hand, in SQL: NOTIFY
$id = $h->new_model(name => 'c', version => '1');
version_of($h, $id) for 1 .. 3;
my $inv0 = ev($h, 'invalidate');
$h->psql("UPDATE models SET version = 'sql' WHERE id = '$id'");
ok($h->wait_for(sub { version_of($h, $id) eq 'sql' }, 5),
   'an UPDATE in psql reaches the cache');
ok(ev($h, 'invalidate') > $inv0, 'as an invalidation');
$h->psql("DELETE FROM models WHERE id = '$id'");
ok($h->wait_for(sub { version_of($h, $id) eq '404' }, 5),
   'a DELETE in psql too');

# ---- a second node on the same database
my $n2 = Modelreg::Harness->new(pg_of => $h, workers => 1);
$id = $h->new_model(name => 'c', version => '1');
is(version_of($h, $id), 1, 'node 1 caches it');
is(version_of($n2, $id), 1, 'node 2 caches it');
is(put_version($n2, $id, 'n2'), 200, 'node 2 changes it');
ok($h->wait_for(sub { version_of($h, $id) eq 'n2' }, 5),
   'node 1 sees the change of node 2');
is(names($h, '/models?name=c&limit=1000'), names($h, '/models?name=c&limit=1000'),
   'node 1 caches a list');
$n2->new_model(name => 'c-node2', version => '1');
ok($h->wait_for(sub { names($h, '/models?name=c&limit=1000') =~ /c-node2/ }, 5),
   "node 1's cached list shows a registration on node 2 (NOTIFY of an INSERT)");
is(put_version($h, $id, 'n1'), 200, 'node 1 changes it back');
ok($n2->wait_for(sub { version_of($n2, $id) eq 'n1' }, 5),
   'node 2 sees the change of node 1');
$n2->finish;
$n2->stop_all;

# ---- TRUNCATE: everything goes
my $keep = $h->new_model(name => 't', version => '1');
version_of($h, $keep) for 1 .. 2;
my $fl0 = ev($h, 'flush');
$h->psql("TRUNCATE models CASCADE");
ok($h->wait_for(sub { version_of($h, $keep) eq '404' }, 5),
   'TRUNCATE empties the cache');
ok(ev($h, 'flush') > $fl0, 'as a flush');

# ---- the listener dies: off line, then back, from an empty cache
$id = $h->new_model(name => 'l', version => '1');
version_of($h, $id) for 1 .. 2;
my $pid = listener_pid();
ok($pid, 'worker 0 has a LISTEN connection (application_name)');
$h->psql("SELECT pg_terminate_backend($pid, 5000)");
ok($h->wait_for(sub { $h->error_log =~ /the model cache is off line: its listener lost its connection/ }, 5),
   'the log says the cache went off line');
$h->psql("UPDATE models SET version = 'while-off' WHERE id = '$id'");
is(version_of($h, $id), 'while-off',
   'a change made while the listener was gone is seen at once');
is(names($h, '/models?name=l&limit=1000'), names($h, '/models?name=l&limit=1000'),
   'a list read twice off line');
$h->psql("UPDATE models SET name = 'l-off' WHERE id = '$id'");
like(names($h, '/models?name=l&limit=1000'), qr/l-off:while-off/,
     'off line, lists are read from the database');
$h->psql("UPDATE models SET name = 'l' WHERE id = '$id'");
ok($h->wait_for(sub { online() && listener_pid() }, 10),
   'and that it came back');
$hit0 = ev($h, 'hit');
version_of($h, $id) for 1 .. 3;
ok(ev($h, 'hit') - $hit0 >= 2, 'hits again');
is(version_of($h, $id), 'while-off', 'with the right row');

# ---- no trigger (an old schema): off line, and it says why
$h->psql('DROP TRIGGER modelreg_models_notify ON models');
$h->psql("SELECT pg_terminate_backend(" . listener_pid() . ", 5000)");
ok($h->wait_for(sub { $h->error_log =~ /found no modelreg_models_notify, modelreg_models_notify_insert or modelreg_aliases_notify trigger \(apply sql\/ migrations\)/ }, 10),
   'without the trigger: off line, the log names it');
$hit0 = ev($h, 'hit');
$h->psql("UPDATE models SET version = 'no-trigger' WHERE id = '$id'");
is_deeply([ map { version_of($h, $id) } 1 .. 3 ], [ ('no-trigger') x 3 ],
          'every GET reads the database');
is(ev($h, 'hit') - $hit0, 0, 'no hits while off line');
$h->psql('CREATE TRIGGER modelreg_models_notify AFTER UPDATE OR DELETE'
         . ' ON models FOR EACH ROW EXECUTE FUNCTION modelreg_models_notify()');
ok($h->wait_for(sub { online() }, 10), 'with the trigger back: on line');

# ---- a listener that hangs (its backend stopped): its ping finds out
my $lp = listener_pid();
kill 'STOP', $lp;
ok($h->wait_for(sub { $h->error_log =~ /its listener timed out/ }, 20),
   'a hung listener is found by its ping and taken off line');
$h->psql("UPDATE models SET version = 'hung' WHERE id = '$id'");
is(version_of($h, $id), 'hung', 'reads go to the database meanwhile');
kill 'CONT', $lp;
ok($h->wait_for(sub { online() }, 10), 'a new listener comes on line');

# ---- the database stopped: the listener cannot reconnect until it is back
$h->stop_pg;
ok($h->wait_for(sub { $h->error_log =~ /its listener cannot connect/ }, 10),
   'database down: the listener retries and says it cannot connect');
is(version_of($h, $id), 503, 'reads are 503, not served from the cache');
$h->start_pg;
ok($h->wait_for(sub { online() }, 15), 'database back: on line again');
# (the pool's own back-off may end after the listener's: wait for a 200)
my $back;
ok($h->wait_for(sub { ($back = version_of($h, $id)) ne '503' }, 15),
   'and the pool too');
is($back, 'hung', 'with the right row');

# ---- a reload: the new worker 0 listens, hits go on; it warns of a
# schema on the registry's search_path that every role may create in
# (PostgreSQL before 15 by default): there any role could shadow what
# the registry calls
unlike($h->error_log, qr/every role may create objects/,
       'no schema every role may write: no warning');
sub grant_public {
    my ($n, $how) = @_;
    my ($rc, $out) = Modelreg::Harness::run_cmd('psql', '-X', '-q', '-h',
        '127.0.0.1', '-p', $n->pg_port, '-U', 'postgres', 'modelreg', '-c',
        "'$how CREATE ON SCHEMA public " . ($how eq 'GRANT' ? 'TO' : 'FROM')
        . " PUBLIC'");
    is($rc, 0, "$how CREATE ON SCHEMA public to every role") or diag $out;
}
grant_public($h, 'GRANT');
$h->reload_nginx;
my $warned = qr/\[warn\].*every role may create objects in the /
             . qr/schema\(s\) "public"/;
ok($h->wait_for(sub { $h->error_log =~ $warned }, 15),
   '  the new worker 0 warns, naming it');
grant_public($h, 'REVOKE');
ok($h->wait_for(sub {
       my $h0 = ev($h, 'hit'); version_of($h, $id) for 1 .. 2;
       ev($h, 'hit') > $h0 }, 10), 'hits after a reload');
$h->finish;

# ---- a reload while the old worker 0's listener is still starting (its
# trigger query held at a lock): the new worker 0 listens first, then the
# old one's start completes.  The old one must not take the cache back
# (one number a worker process, the newest rules), or the zone would stay
# on line with no listener once it stops, deaf to every change
my $r = Modelreg::Harness->new(workers => 1);
ok($r->wait_for(sub { $r->error_log =~ /model cache is on line/ }, 15),
   'reload race: on line');
my $rid = $r->new_model(name => 'race', version => '1');
open(my $lock, '|-', "psql -X -q -h 127.0.0.1 -p " . $r->pg_port
                     . " -U postgres modelreg >/dev/null") or die;
$lock->autoflush(1);
print $lock "BEGIN; LOCK TABLE pg_catalog.pg_trigger"
            . " IN ACCESS EXCLUSIVE MODE;\n";
ok($r->wait_for(sub { $r->psql_admin("SELECT count(*) FROM pg_locks WHERE"
                   . " relation = 'pg_trigger'::regclass AND granted") > 0 },
                10), '  pg_trigger locked');
my ($old) = $r->worker_pids;
$r->psql_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
               . " WHERE application_name = 'modelreg-listen'");
ok($r->wait_for(sub { $r->psql_admin("SELECT count(*) FROM pg_stat_activity"
                   . " WHERE application_name = 'modelreg-listen'"
                   . " AND wait_event_type = 'Lock'") == 1 }, 15),
   "  the old worker 0's new listener waits in its start");
# the old worker stays (a request whose body never ends), stopped
my $busy = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $r->port) or die;
print $busy "POST /models HTTP/1.1\r\nHost: x\r\nContent-Type:"
            . " application/octet-stream\r\nContent-Length: 100000"
            . "\r\n\r\nabc";
sleep 0.3;
kill 'STOP', $old;
print $lock "COMMIT;\n";
my $ons = () = $r->error_log =~ /model cache is on line/g;
$r->reload_nginx;
ok($r->wait_for(sub { my $c = () = $r->error_log =~ /model cache is on line/g;
                      $c > $ons }, 20), '  the new worker 0 on line');
kill 'CONT', $old;
ok($r->wait_for(sub { $r->error_log =~ /a newer listener keeps the model cache/ },
                20), '  the old one, its start done, stops');
close $busy;
$lock->close;
is(version_of($r, $rid), 1, '  a read') for 1 .. 2;
$r->psql("UPDATE models SET version = '2' WHERE id = '$rid'");
ok($r->wait_for(sub { version_of($r, $rid) eq '2' }, 10),
   '  then a change by SQL is heard: the new listener has the cache');
unlike($r->error_log, qr/exited on signal|\[alert\]/, '  no crash');
$r->finish;

# ---- a small zone: eviction, and every answer still right
my $s = Modelreg::Harness->new(http => 'modelreg_cache 64k;');
my @ids = map { $s->new_model(name => "s$_", version => "$_") } 1 .. 120;
my @bad;
for my $round (1 .. 2) {
    for my $i (0 .. $#ids) {
        push @bad, $ids[$i] if version_of($s, $ids[$i]) ne $i + 1;
    }
}
is_deeply(\@bad, [], '120 models through a 64k cache: all right, twice');
my $m = $s->metrics;
ok($m->{'modelreg_cache_events_total{event="store"}'} > 120,
   'the second round stored again: older entries were evicted');

# a model larger than an eighth of the zone is never stored
my $huge = $s->new_model(name => 'huge', version => '1',
                         overview => '{"text":"' . ('x' x 12000) . '"}');
my $st0 = $s->metrics->{'modelreg_cache_events_total{event="store"}'};
is(length $s->get("/models/$huge")->{json}{overview}{text}, 12000,
   'a 12 KB model in a 64k zone: read right') for 1 .. 2;
is($s->metrics->{'modelreg_cache_events_total{event="store"}'}, $st0,
   'and not stored');
# a list page over an eighth of the zone neither (30 models)
$st0 = $s->metrics->{'modelreg_cache_events_total{event="store"}'};
my $sp = $s->get('/models?name=s&limit=30');
is(scalar @{ $sp->{json} }, 30, 'a 30-model page in a 64k zone: listed');
ok($sp->{headers}{'content-length'} > 8192,
   'sent whole (so meant for the cache), over 8 KiB');
$s->get('/models?name=s&limit=30');
is($s->metrics->{'modelreg_cache_events_total{event="store"}'}, $st0,
   'and not stored');
$s->finish;
$s->stop_all;

# ---- off
my $o = Modelreg::Harness->new(http => 'modelreg_cache off;');
my $oid = $o->new_model(name => 'o', version => '1');
version_of($o, $oid) for 1 .. 5;
is($o->metrics->{'modelreg_cache_events_total{event="hit"}'}, 0,
   'modelreg_cache off: no hits');
unlike($o->error_log, qr/model cache is on line/, 'and no listener');
is(version_of($o, $oid), 1, 'reads work');
$o->finish;

done_testing();
