# Proves: database failover (issue 12, item 5).  A PostgreSQL primary with
# a streaming standby (pg_basebackup -R, both private on loopback,
# synchronous replication on), the registry given both in one conninfo
# ("host=a,b port=p1,p2 target_session_attrs=read-write").  Under write
# load (two writer processes registering models with bytes, a reader
# getting, listing and downloading) the primary is killed (SIGKILL, every
# process of it) and the standby promoted (pg_ctl promote):
# - every answer is a success or the documented 503 naming the database;
# - writes resume (the gap from the kill to the first 201 is printed; the
#   test only bounds it by 60 s);
# - every acknowledged write (201) is on the new primary, its row and its
#   exact bytes through the API;
# - nothing is half-registered: once the clean-up queue drains, the rows'
#   keys and the stored objects are the same set, and no spool file is
#   left (a 503 whose INSERT did commit keeps its object);
# - the LISTEN connection follows: it is in pg_stat_activity of the new
#   primary, and the read cache there serves hits and drops a model
#   changed by the API and one changed by hand in SQL (a NOTIFY).
# Then the old primary's port comes back as a standby of the new primary
# (first in the conninfo, read-only): with every registry session
# terminated, the pool and the listener reconnect past it.  libpq closes a
# rejected host's socket and opens the next, which mostly gets the same
# fd number; the pool and listener used to compare fd numbers only and
# lost the socket's events (the listener never came back, "cannot watch
# its socket"; a pool connection hung until its timeout).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Digest::SHA qw(sha256_hex);
use POSIX ();
use Modelreg::Harness;

my $DB_DOWN = 'Metadata database unavailable.';

my $h = Modelreg::Harness->new(no_nginx => 1, gc => '1s',
                               pg_options => '-c synchronous_commit=on');
my $p1 = $h->pg_port;
my $p2 = $h->start_standby('standby');

$h->psql_admin("ALTER SYSTEM SET synchronous_standby_names = 'standby'");
$h->psql_admin("SELECT pg_reload_conf()");
ok($h->wait_for(sub {
       $h->psql_admin("SELECT sync_state FROM pg_stat_replication"
                      . " WHERE application_name = 'standby'") =~ /^sync$/m
   }), 'the standby streams, synchronously');
is($h->psql('SHOW synchronous_commit'), 'on', 'commits wait for it');

# both hosts in one conninfo (how README says to give them)
$h->{opt}{database} = 'modelreg_database "host=127.0.0.1,127.0.0.1'
    . " port=$p1,$p2 dbname=modelreg user=modelreg"
    . ' target_session_attrs=read-write" pool=4 queue=64 timeout=2s;';
$h->start_nginx;

sub ev { $h->metrics->{"modelreg_cache_events_total{event=\"$_[0]\"}"} }
sub listeners {
    my ($port) = @_;
    return $h->psql_at($port, "SELECT count(*) FROM pg_stat_activity"
                       . " WHERE application_name = 'modelreg-listen'");
}
sub online { $h->error_log =~ /the model cache is on line(?![\s\S]*off line)/ }
sub score_of { my $r = $h->get("/models/$_[0]");
               $r->{status} == 200 ? $r->{json}{score} : "status $r->{status}" }
sub put_score {
    my ($id, $s) = @_;
    return $h->put("/models/$id", { content => "score=$s", headers =>
        { 'Content-Type' => 'application/x-www-form-urlencoded' } })->{status};
}

# the read cache holds a model, on line through the first primary
ok($h->wait_for(\&online), 'the cache is on line');
is(listeners($p1), 1, 'its LISTEN session is on the primary');
my $cm = $h->new_model(name => 'cached', version => '1', score => '0.1');
is(score_of($cm), 0.1, 'a model read once');
my $hits = ev('hit');
is(score_of($cm), 0.1, 'and again');
is(ev('hit') - $hits, 1, 'from the cache');

# ---- load: two writers, one reader, each its own process ---------------
my $stop = $h->dir . '/stop-load';

sub client {
    my ($name, $body) = @_;
    my $pid = fork // die "fork: $!";
    return $pid if $pid;
    open my $out, '>', $h->dir . "/load-$name" or POSIX::_exit(1);
    $out->autoflush(1);
    until (-e $stop) {
        for my $rec ($body->()) {
            my ($t0, $t1, $status, $what, $res) = @$rec;
            my $detail = ref $res->{json} eq 'HASH'
                         ? $res->{json}{detail} // '' : '';
            $detail =~ s/\s/_/g;
            printf $out "%.3f %.3f %d %s %s\n", $t0, $t1, $status, $what,
                   $detail || '-';
            sleep 0.02 unless $status < 300;
        }
    }
    POSIX::_exit(0);
}

sub timed {
    my ($what, $call) = @_;
    my $t0 = time;
    my $res = $call->();
    return [ $t0, time, $res->{status}, $what, $res ];
}

# bytes that do not compress, different for each model
sub bytes_of { my ($id) = @_;
               join '', map { Digest::SHA::sha256("$id/$_") } 1 .. 256 }

my @pids;
for my $w (1, 2) {
    my $n = 0;
    push @pids, client("writer$w", sub {
        my $id = sprintf 'failover-w%d-%06d', $w, ++$n;
        my $zip = Modelreg::Harness::zip_of('model.xml', bytes_of($id));
        return timed("$id=" . sha256_hex($zip), sub {
            $h->register(id => $id, name => "fo-w$w", version => $n,
                         file => $zip) });
    });
}
push @pids, client('reader', sub {
    return (timed('get', sub { $h->get("/models/$cm") }),
            timed('list', sub { $h->get('/models?limit=20') }),
            timed('files', sub { $h->get("/models/$cm/files") }));
});

# [t0, t1, status, what, detail] of every answer a client recorded so far
sub records {
    my ($name) = @_;
    open my $fh, '<', $h->dir . "/load-$name" or return ();
    return map { [ split ' ' ] } grep { /\n\z/ } <$fh>;
}
sub writes { map { records("writer$_") } 1, 2 }
sub created_since { my ($t) = @_;
                    grep { $_->[2] == 201 && $_->[0] >= $t } writes() }

ok($h->wait_for(sub { created_since(0) >= 20 }, 30),
   'writes are acknowledged under load');
sleep 1;

# ---- the failover ------------------------------------------------------
$h->kill_pg($p1);
my $t_kill = time;
sleep 1;
my $t_promote = time;
$h->promote_pg($p2);
my $t_promoted = time;

ok($h->wait_for(sub { created_since($t_kill) }, 60),
   'writes resume on the new primary (within 60 s)');
my ($first) = sort { $a->[1] <=> $b->[1] } created_since($t_kill);
sleep 2;    # more load on the new primary
open my $fh, '>', $stop or die; close $fh;
waitpid $_, 0 for @pids;

# ---- every answer: a success or the documented 503 ----------------------
my (%sum, %other, %acked, %refused);
for my $name ('writer1', 'writer2', 'reader') {
    for my $r (records($name)) {
        my ($t0, $t1, $status, $what, $detail) = @$r;
        my $kind = $status < 300 ? 'ok'
                 : $status == 503 && $detail eq ($DB_DOWN =~ s/\s/_/gr)
                 ? 'db503' : 'other';
        $sum{$name}{$kind}++;
        $sum{$name}{n}++;
        $sum{$name}{gap}++ if $t1 >= $t_kill && $t0 <= $first->[1];
        $other{"$name $status $detail"}++ if $kind eq 'other';
        next unless $name =~ /^writer/;
        my ($id, $sha) = split /=/, $what;
        $acked{$id} = $sha if $status == 201;
        $refused{$id} = $sha if $status == 503;
    }
}
is_deeply(\%other, {}, 'no answer but a success or "' . $DB_DOWN . '"');
ok($sum{$_}{db503}, "$_ saw the database unavailable") for qw(writer1 reader);

my ($last) = sort { $b->[1] <=> $a->[1] }
             grep { $_->[2] == 201 && $_->[1] < $t_kill } writes();
my $gap = $first->[1] - $t_kill;
ok($gap < 60, 'the gap is bounded');

# ---- every acknowledged write is on the new primary ----------------------
my %row = map { split /\|/ } split /\n/,
          $h->psql_at($p2, "SELECT id, sha256 FROM models");
my @lost = grep { ($row{$_} // '') ne $acked{$_} } sort keys %acked;
is_deeply(\@lost, [], scalar(keys %acked)
          . ' acknowledged writes, each row on the new primary');
my @bad = grep { sha256_hex($h->get("/models/$_/files")->{content} // '')
                 ne $acked{$_} } sort keys %acked;
is_deeply(\@bad, [], 'and each downloads its exact bytes');
my @kept = grep { exists $row{$_} } sort keys %refused;
is_deeply([ grep { $row{$_} ne $refused{$_} } @kept ], [],
          'a 503 whose INSERT committed is a whole model too');

# ---- nothing half-registered once the clean-up drains ---------------------
sub keys_and_objects {
    my @k = sort split /\n/, $h->psql_at($p2,
                                         "SELECT storage_key FROM models");
    my $gc = $h->psql_at($p2, "SELECT count(*) FROM storage_gc");
    return (join("\n", @k), join("\n", sort $h->objects), $gc);
}
my $t_drain = time;
ok($h->wait_for(sub { my ($k, $o, $gc) = keys_and_objects();
                      $k eq $o && $gc == 0 && !$h->temp_files }, 60),
   'every row has its object and every object its row; the queue drained');
my ($k, $o) = keys_and_objects();
is($o, $k, 'rows and objects');
is_deeply([ $h->temp_files ], [], 'no spool file left');
$t_drain = time - $t_drain;

# ---- the read cache and its listener follow the new primary --------------
ok($h->wait_for(sub { listeners($p2) == 1 }, 30),
   'the LISTEN session is on the new primary');
ok($h->wait_for(\&online, 30), 'the cache is back on line');
is(score_of($cm), 0.1, 'the cached model, read from the new primary');
$hits = ev('hit');
is(score_of($cm), 0.1, 'read again');
is(ev('hit') - $hits, 1, 'a hit: the cache serves again');
is(put_score($cm, 0.5), 200, 'PUT on the new primary');
is(score_of($cm), 0.5, 'the next read is fresh');
is(score_of($cm), 0.5, 'and cached');
my $inval = ev('invalidate');
$h->psql_at($p2, "UPDATE models SET score = 0.25 WHERE id = '$cm'");
ok($h->wait_for(sub { score_of($cm) == 0.25 }, 10),
   'an UPDATE by hand on the new primary is read fresh');
ok(ev('invalidate') > $inval, 'by its NOTIFY');

# ---- the old primary's port comes back as a standby, first in the list ---
$h->start_standby('rejoined', from => $p2, port => $p1);
is($h->psql_at($p1, "SELECT pg_is_in_recovery()"), 't',
   'the first host is now a standby');
my $t_cut = time;
$h->psql_at($p2, "SELECT count(pg_terminate_backend(pid))"
            . " FROM pg_stat_activity WHERE usename = 'modelreg'"
            . " AND pid <> pg_backend_pid()");
my $back;
ok($h->wait_for(sub {
       $back = $h->register(name => 'rejoin', version => '1')->{status};
       $back == 201 }, 30),
   'with every session cut, writes reconnect past the read-only first host');
my $t_back = time - $t_cut;
is_deeply([ map { $h->register(name => 'rejoin', version => "r$_")->{status} }
            1 .. 10 ], [ (201) x 10 ], 'ten more writes');
ok($h->wait_for(sub { listeners($p2) == 1 }, 30),
   'the LISTEN session reconnects to the primary too');
ok($h->wait_for(\&online, 30), 'the cache comes back on line');
is(score_of($cm), 0.25, 'the model, read');
is(score_of($cm), 0.25, 'and cached');
$h->psql_at($p2, "UPDATE models SET score = 0.75 WHERE id = '$cm'");
ok($h->wait_for(sub { score_of($cm) == 0.75 }, 10),
   'and an UPDATE by hand is read fresh');
is(listeners($p1), 0, 'nothing of ours stays on the standby');

unlike($h->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the log');

diag sprintf "failover: primary killed at 0 s, promote asked at %.1f s,"
    . " done at %.1f s", $t_promote - $t_kill, $t_promoted - $t_kill;
diag sprintf "writes: last 201 at %.2f s, first 201 after the kill at"
    . " %.2f s: gap %.2f s (%.2f s after the promotion)",
    $last->[1] - $t_kill, $gap, $gap, $first->[1] - $t_promoted;
diag sprintf "%-8s %8s %9s %13s %6s %12s", 'client', 'answers', 'successes',
    '503 database', 'other', 'in the gap';
for my $c (qw(writer1 writer2 reader)) {
    diag sprintf "%-8s %8d %9d %13d %6d %12d", $c,
                 map { $sum{$c}{$_} // 0 } qw(n ok db503 other gap);
}
diag sprintf "acknowledged writes %d, all on the new primary with their"
    . " bytes; 503s %d, of which committed %d (whole); clean-up drained in"
    . " %.1f s", scalar(keys %acked), scalar(keys %refused), scalar(@kept),
    $t_drain;
diag sprintf "rejoined standby first in the list: writes back %.2f s after"
    . " every session was cut", $t_back;
$h->finish;
done_testing();
