# Proves: the change feed, GET /events (README "Change feed"), on two
# nodes of one database (2 workers each).  A long poll on node B is
# answered by a registration on node A, after it and by it (not by its
# wait); filters by action and name leave a waiter waiting through
# commits that do not match, and the one that matches answers it alone;
# a client paging with since/next (limit=7, wait=2) while 200 models are
# registered on the other node sees each of their events once, none lost,
# in id order, and a stream (SSE) on node A sees them all too, across the
# ends of its lifetime, resumed with Last-Event-ID; an audit event whose id
# was taken before a later one's but that commits after it is delivered
# to a client that already read past the later one's commit (the cursor
# holds below the open transaction: the later event waits for it, then
# both come, in id order), and an event held by a transaction that writes
# none comes when it ends; a wait with nothing ends with no event and a
# cursor; 1101 events in one commit: a waiter gets the first 1000 and a
# cursor inside them that reads the rest, and one whose event lies past
# the wake's 1000 rows gets an empty answer whose cursor reads it; every
# bad argument is a 400 naming it (unknown
# keys 422); SSE frames (id, event, data), Last-Event-ID resuming after
# the event it names (winning over since), comment lines at least every
# 15 s, the stream ending at its lifetime; a reader that does not read is
# cut off past its backlog (modelreg_events backlog=16k, the server's
# socket buffer 16k), the others unaffected; clients that close while
# waiting leave no socket behind and nothing in the log; past
# modelreg_events waiters= a waiter is 503; with the LISTEN connections
# killed, waiters still end and a read with their cursor catches up; a
# graceful reload ends the waiters and streams of the old workers at once
# (no 60 s wait), which exit.  Reading /events is not audited.  Prints the
# delay from a registration's answer to a waiting client's (median, p99),
# alone and while 3 other clients register.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use Modelreg::Harness;

my $json = JSON::PP->new->utf8->canonical;

my $na = Modelreg::Harness->new(workers => 2,
                               http => 'modelreg_events lifetime=18s;');

# node B: 2 waiters a worker; a second server whose sockets send little
my $slow_port = Modelreg::Harness::free_port();
my $nb = Modelreg::Harness->new(pg_of => $na, workers => 2,
    http => "modelreg_events waiters=2 backlog=16k;"
          . " server { listen 127.0.0.1:$slow_port sndbuf=16k;"
          . " location / { modelreg; } }");

sub events { my ($n, $q) = @_; my $r = $n->get("/events$q");
             die "GET /events$q: $r->{status} $r->{content}"
                 unless $r->{status} == 200;
             return $r->{json} }
sub now_cursor { events($_[0], '')->{next} }
sub ids { [ map { $_->{id} } @{ $_[0] } ] }
sub long_poll { my ($n, $path) = @_; $n->send_raw("GET", $path) }
sub answer { my ($n, $s, $t) = @_; my $r = $n->read_response($s, $t // 30);
             $r->{json} = eval { $json->decode($r->{content}) };
             return $r }

# ---- a raw SSE client: frames as they come, comments with their time

sub sse_open {
    my ($port, $path, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp') or die "connect: $!";
    my $h = "GET $path HTTP/1.0\r\nHost: localhost\r\n"
          . "Accept: text/event-stream\r\n";
    $h .= "Last-Event-ID: $o{last}\r\n" if defined $o{last};
    print $s "$h\r\n";
    return { s => $s, buf => '', frames => [], comments => [],
             opened => time, head => undef, eof => 0 };
}

# reads for up to $t seconds, or until $until->() is true, or EOF
sub sse_pump {
    my ($c, $t, $until) = @_;
    my $sel = IO::Select->new($c->{s});
    my $deadline = time + $t;
    while (!$c->{eof} && time < $deadline) {
        last if $until && $until->();
        $sel->can_read(ngx_min(0.2, $deadline - time)) or next;
        my $n = sysread($c->{s}, $c->{buf}, 65536, length $c->{buf});
        $c->{eof} = 1, $c->{closed} = time unless $n;
        if (!defined $c->{head} && $c->{buf} =~ s/^(.*?)\r\n\r\n//s) {
            $c->{head} = $1;
        }
        next unless defined $c->{head};
        while ($c->{buf} =~ s/^(.*?)\n\n//s) {
            my %f;
            for (split /\n/, $1) {
                if (/^:/) { push @{ $c->{comments} }, time; next }
                $f{$1} = $2 if /^(\w+): ?(.*)$/;
            }
            push @{ $c->{frames} }, \%f if exists $f{data};
            $c->{retry} = $f{retry} if exists $f{retry};
        }
    }
    return $c;
}
sub ngx_min { $_[0] < $_[1] ? $_[0] : $_[1] }
sub sse_events { [ map { $json->decode($_->{data}) } @{ $_[0]{frames} } ] }

# ---- 400s and 422s, each naming its argument

my %bad = (
    'since=abc' => [400, 'Invalid since: use the cursor of a previous answer'
                         . ' ("next" or an event\'s "cursor").'],
    'since=3.2.1' => [400, 'Invalid since: use the cursor of a previous'
                           . ' answer ("next" or an event\'s "cursor").'],
    'wait=61' => [400, 'Invalid wait: must be an integer from 0 to 60'
                       . ' (seconds).'],
    'wait=-1' => [400, 'Invalid wait: must be an integer from 0 to 60'
                       . ' (seconds).'],
    'action=model.create,model.rename' =>
        [400, 'Invalid action: "model.rename" is not an audit action.'],
    'name=%ff' => [400, 'Invalid name: must be valid UTF-8.'],
    'limit=0' => [400, 'Invalid limit: must be an integer from 1 to 1000.'],
    'model_id=x&page_token=y' =>
        [422, 'Invalid query parameter(s): model_id, page_token'],
);
for my $q (sort keys %bad) {
    my $r = $na->get("/events?$q");
    is($r->{status}, $bad{$q}[0], "?$q: $bad{$q}[0]");
    is($r->{json} && $r->{json}{detail}, $bad{$q}[1], "  names it");
}
{
    my $r = $na->get('/events', { headers => { Accept => 'text/event-stream',
                                              'Last-Event-ID' => 'x1' } });
    is($r->{status}, 400, 'a bad Last-Event-ID: 400');
    is($r->{json} && $r->{json}{detail}, 'Invalid Last-Event-ID: use the id'
       . ' of an event of this stream.', '  names it');
}

# ---- without since: from now; wait=0 answers at once

my $audit0 = $na->psql('SELECT count(*) FROM audit_events');
my $c0 = now_cursor($na);
like($c0, qr/^\d+$/, 'without since: a cursor of now');
is_deeply(events($na, "?since=$c0")->{events}, [], '  nothing after it');
is($na->psql('SELECT count(*) FROM audit_events'), $audit0,
   'reading /events is not audited');

# ---- a long poll on node B, answered by a registration on node A

my $s = long_poll($nb, "/events?since=$c0&wait=30");
sleep 0.5;
ok(!$nb->has_response($s), 'a long poll with nothing to return waits');
my $m1 = $na->new_model(name => 'feed-a', version => '1');
my $r = answer($nb, $s);
is($r->{status}, 200, 'answered by a registration on the other node');
is_deeply([ map { [$_->{action}, $_->{model_id}] } @{ $r->{json}{events} } ],
          [ ['model.create', $m1] ], '  with its event');
my $e1 = $r->{json}{events}[0];
is($e1->{details}{name}, 'feed-a', '  the audit event as /audit has it');
is($e1->{cursor}, $r->{json}{next}, '  its cursor is the next one');
my $c1 = $r->{json}{next};
is_deeply(events($na, "?since=$c0")->{events}[0]{id}, $e1->{id},
          'the same cursor reads it again (on the other node)');
is_deeply(events($na, "?since=$c1")->{events}, [], 'nothing after it');

# ---- filters: commits that do not match leave the waiter waiting

$s = long_poll($nb, "/events?since=$c1&wait=30&action=model.delete,"
                   . "alias.delete&name=feed-target");
my $other = $na->new_model(name => 'feed-other', version => '1');
my $target = $na->new_model(name => 'feed-target', version => '1');
is($na->delete("/models/$other")->{status}, 204, 'a delete of another name');
$na->put("/models/$target", { content => 'score=0.5', headers =>
        { 'Content-Type' => 'application/x-www-form-urlencoded' } });
sleep 1;
ok(!$nb->has_response($s), 'the waiter on action and name still waits');
is($na->delete("/models/$target")->{status}, 204, 'the target deleted');
$r = answer($nb, $s);
is_deeply([ map { [$_->{action}, $_->{model_id}] } @{ $r->{json}{events} } ],
          [ ['model.delete', $target] ], '  answers it, with that alone');
my $all = events($na, "?since=$c1&limit=1000")->{events};
is_deeply([ map { $_->{action} } @$all ],
          [qw(model.create model.create model.delete model.update
              model.delete)], 'unfiltered, the five in id order');
is_deeply(events($na, "?since=$c1&name=feed-target")->{events}[1]{action},
          'model.update', 'name= covers an update (the name is looked up)');
my $c2 = events($na, "?since=$c1")->{next};

# ---- a waiter that closes leaves nothing; the waiters' limit (node B)

my @w = map { long_poll($na, "/events?since=$c2&wait=60") } 1 .. 6;
sleep 0.5;
close $_ for @w;
ok($na->wait_for(sub { !($na->server_sockets->{CLOSE_WAIT} // 0)
                      && !($na->server_sockets->{ESTABLISHED} // 0) }, 10),
   'closed waiters: nginx closed its sockets at once');

@w = map { long_poll($nb, "/events?since=$c2&wait=20") } 1 .. 5;
my $sel = IO::Select->new(@w);
my @busy;
my $deadline = time + 10;
while (time < $deadline && !@busy) {
    for my $x ($sel->can_read(0.5)) {
        $sel->remove($x);
        push @busy, answer($nb, $x);
    }
}
ok(@busy >= 1, 'past waiters=2 on each of 2 workers, a waiter is refused');
is_deeply([ map { [$_->{status}, $_->{json}{detail}] } @busy ],
          [ map { [503, 'Too many clients wait for events: try again '
                        . 'later.'] } @busy ], '  503, saying why');
close $_ for $sel->handles;

# ---- the late commit: an id taken first, committed last

my $late = $na->psql_session;
$late->run("BEGIN; INSERT INTO audit_events (action, actor, details)"
           . " VALUES ('geti.sync', 'late', '{\"run\": 0}');");
ok($na->wait_for(sub { $na->psql("SELECT count(*) FROM pg_stat_activity"
                               . " WHERE state = 'idle in transaction'") }),
   'a transaction holds an audit event, uncommitted');
my $m2 = $na->new_model(name => 'feed-late', version => '1');
my ($late_id, $m2_id) = split /\|/, $na->psql(
    "SELECT (SELECT last_value FROM audit_events_id_seq) - 1,"
    . " (SELECT id FROM audit_events WHERE model_id = '$m2')");
ok($late_id < $m2_id, "the held event's id ($late_id) is below the later"
   . " one's ($m2_id), which committed");
my $p = events($na, "?since=$c2");
is_deeply($p->{events}, [], 'a read meanwhile does not pass the open one');
$s = long_poll($nb, "/events?since=$p->{next}&wait=30");
sleep 0.5;
ok(!$nb->has_response($s), '  a waiter waits for it');
$late->run('COMMIT;');
$late->end;
$r = answer($nb, $s);
is_deeply(ids($r->{json}{events}), [$late_id, $m2_id],
          'once it commits: both, the late one first');
is_deeply(ids(events($na, "?since=$c2")->{events}), [$late_id, $m2_id],
          '  the same from the earlier cursor');
# a transaction that writes no event but holds the horizon: the event
# committed above it comes once it ends, with no commit to announce that
# (the worker's timer asks again)
my $cq = now_cursor($na);
$s = long_poll($nb, "/events?since=$cq&wait=30");
sleep 0.5;
my $holder = $na->psql_session;
$holder->run("BEGIN; SELECT pg_current_xact_id();");
ok($na->wait_for(sub { $na->psql("SELECT count(*) FROM pg_stat_activity"
                                 . " WHERE state = 'idle in transaction'") }),
   'a transaction with an xid and no event is open');
my $mq = $na->new_model(name => 'feed-held', version => '1');
sleep 1;
ok(!$nb->has_response($s), '  the event committed above it waits');
$holder->run('COMMIT;');
$holder->end;
$r = answer($nb, $s);
is_deeply([ map { $_->{model_id} } @{ $r->{json}{events} } ], [$mq],
          '  and comes once it ends');

# ---- a wait that ends with nothing; a wake past its 1000 rows

my $c3w = now_cursor($na);
$r = $na->get("/events?since=$c3w&wait=1&name=feed-nothing");
is($r->{status}, 200, 'a wait with no event ends, 200');
is_deeply($r->{json}{events}, [], '  with no event');
like($r->{json}{next}, qr/^\d+$/, '  and a cursor');

# 1100 events in one transaction, then one more of another action
my $w1 = long_poll($nb, "/events?since=$c3w&wait=30&action=geti.sync"
                        . "&limit=1000");
my $w2 = long_poll($nb, "/events?since=$c3w&wait=30&action=geti.import");
sleep 0.5;
$na->psql("INSERT INTO audit_events (action, actor, details) SELECT"
          . " 'geti.sync', 'bulk', jsonb_build_object('run', i) FROM"
          . " generate_series(1, 1100) i; INSERT INTO audit_events (action,"
          . " actor) VALUES ('geti.import', 'bulk')");
$r = answer($nb, $w1);
is(scalar @{ $r->{json}{events} }, 1000,
   'a wake of 1101 events: a waiter gets its first 1000');
like($r->{json}{next}, qr/^\d+\.\d+\.\d+$/, '  and a cursor within them');
$p = events($na, "?since=$r->{json}{next}&action=geti.sync&limit=1000");
is(scalar @{ $p->{events} }, 100, '  the rest from it: 100');
is($p->{events}[-1]{details}{run}, 1100, '  up to the last');
$r = answer($nb, $w2);
is_deeply([ map { $_->{action} } @{ $r->{json}{events} } ], [],
          'a waiter whose event is past the 1000 rows: answered, empty');
is_deeply([ map { $_->{action} } @{ events($na, "?since=$r->{json}{next}"
                                             . "&action=geti.import")
                                    ->{events} } ], ['geti.import'],
          '  its cursor reads it next');
my $c3 = events($na, "?since=$c3w&limit=1000&action=geti.import")->{next};

# ---- 200 registrations on node B while a client pages on node A, and
# a stream on node A reads them; a stream on node B that does not read

my $sse = sse_open($na->port, "/events?since=$c3&action=model.create");
my $stuck = IO::Socket::INET->new(Proto => 'tcp') or die $!;
setsockopt($stuck, SOL_SOCKET, SO_RCVBUF, 4096) or die $!;
$stuck->connect(Socket::pack_sockaddr_in($slow_port,
                                         Socket::inet_aton('127.0.0.1')))
    or die "connect: $!";
print $stuck "GET /events?since=$c3 HTTP/1.0\r\nHost: x\r\n"
             . "Accept: text/event-stream\r\n\r\n";

my $pid = fork // die "fork: $!";
if (!$pid) {
    for my $i (1 .. 200) {
        my $res = $nb->register(name => "bulk-$i", version => '1');
        POSIX::_exit(1) unless $res->{status} == 201;
    }
    $nb->new_model(name => "bulk-big-$_", version => '1') for 1 .. 3;
    POSIX::_exit(0);
}

my (@paged, %seen, $dup);
my $cur = $c3;
my $pages = 0;
$deadline = time + 120;
while (time < $deadline) {
    my $pg = events($na, "?since=$cur&limit=7&wait=2&action=model.create");
    $pages++;
    for (@{ $pg->{events} }) {
        $dup++ if $seen{$_->{id}}++;
        push @paged, $_;
    }
    $cur = $pg->{next};
    last if (grep { $_->{details}{name} =~ /^bulk-big-3$/ } @paged);
}
waitpid($pid, 0);
is($?, 0, '200 registrations (and 3 more) on node B');
my @bulk = grep { $_->{details}{name} =~ /^bulk-\d+$/ } @paged;
is(scalar @bulk, 200, "the pager saw 200 of them ($pages pages of 7)");
ok(!$dup, '  none twice');
is_deeply([ map { $_->{id} } @paged ], [ sort { $a <=> $b } map
          { $_->{id} } @paged ], '  in id order');
is_deeply([ sort map { $_->{details}{name} } @bulk ],
          [ sort map { "bulk-$_" } 1 .. 200 ], '  each one of them');

# the stream: what it got, then the rest after its lifetime, resumed
my @got;
while (1) {
    sse_pump($sse, 30, sub { grep { $_->{event} && $_->{data} =~ /bulk-big-3/ }
                             @{ $sse->{frames} } });
    push @got, @{ $sse->{frames} };
    last if grep { $_->{data} =~ /bulk-big-3/ } @got;
    last unless $sse->{eof};
    # a reconnecting client: from the id of the last event it got
    $sse = sse_open($na->port, "/events?since=$c3&action=model.create",
                    last => $got[-1]{id});
}
my @sev = map { $json->decode($_->{data}) } @got;
is(scalar(grep { $_->{details}{name} =~ /^bulk-\d+$/ } @sev), 200,
   'the stream on node A saw the 200 too');
my %sseen;
ok(!(grep { $sseen{$_->{id}}++ } @sev), '  none twice');
is_deeply([ map { $_->{event} } @got ], [ map { 'model.create' } @got ],
          '  each framed with its action as "event"');
close $sse->{s};

# the reader that did not read: cut off, the server's log says so
my $stuck_eof = 0;
{
    my $sel2 = IO::Select->new($stuck);
    my $until = time + 30;
    while (time < $until) {
        $sel2->can_read(1) or next;
        my $n = sysread($stuck, my $x, 65536);
        if (!$n) { $stuck_eof = 1; last }
    }
}
ok($stuck_eof, 'the stream that was not read was closed by the server');
like($nb->error_log, qr/\Qan event stream is cut off: its client has not\E
                        \ read\ \d+\ bytes\ \Q(modelreg_events backlog=16384)\E/x,
     '  cut off past its backlog, logged');
close $stuck;

# ---- SSE framing and Last-Event-ID

my $c4 = now_cursor($na);
$sse = sse_open($na->port, "/events?since=$c4");
my @m3 = map { $na->new_model(name => 'feed-sse', version => $_) } 1 .. 3;
sse_pump($sse, 20, sub { @{ $sse->{frames} } >= 3 });
like($sse->{head}, qr{^HTTP/1\.1 200}, 'SSE: 200');
like($sse->{head}, qr{\r\nContent-Type: text/event-stream\r\n}i,
     '  text/event-stream');
like($sse->{head}, qr{\r\nX-Accel-Buffering: no\r\n}i,
     '  X-Accel-Buffering: no');
like($sse->{head}, qr{\r\nCache-Control: no-cache\r\n}i, '  no-cache');
is($sse->{retry}, 1000, '  retry: 1000');
is_deeply([ map { $json->decode($_->{data})->{model_id} }
            @{ $sse->{frames} } ], \@m3, '  the 3 events, in order');
is_deeply([ map { $_->{event} } @{ $sse->{frames} } ],
          [ ('model.create') x 3 ], '  "event:" the action');
like($sse->{frames}[$_]{id}, qr/^\d+(\.\d+\.\d+)?$/, "  \"id:\" a cursor")
    for 0 .. 2;
close $sse->{s};
# resume after the first: the 2nd and 3rd only (since= loses to it)
$sse = sse_open($na->port, "/events?since=$c4",
                last => $sse->{frames}[0]{id});
sse_pump($sse, 20, sub { @{ $sse->{frames} } >= 2 });
is_deeply([ map { $json->decode($_->{data})->{model_id} }
            @{ $sse->{frames} } ], [ @m3[1, 2] ],
          'Last-Event-ID: the events after it');
close $sse->{s};

# ---- the LISTEN connections killed while clients wait

my $c5 = now_cursor($na);
@w = map { long_poll($na, "/events?since=$c5&wait=6") } 1 .. 2;
sleep 0.5;
my $killed = $na->psql("SELECT count(pg_terminate_backend(pid)) FROM"
                      . " pg_stat_activity WHERE application_name ="
                      . " 'modelreg-events'");
ok($killed >= 1, "the feed's LISTEN connections killed ($killed)");
my $m5 = $na->new_model(name => 'feed-listen', version => '1');
for my $x (@w) {
    my $res = answer($na, $x, 20);
    is($res->{status}, 200, 'a waiter still ends');
    my @ids = map { $_->{model_id} } @{ $res->{json}{events} };
    push @ids, map { $_->{model_id} }
               @{ events($na, "?since=$res->{json}{next}")->{events} };
    is_deeply([ grep { $_ eq $m5 } @ids ], [$m5],
              '  it, or a read with its cursor, has the event once');
}
like($na->error_log, qr/the change feed is not listening: lost its connection/,
     '  the loss is logged');
# the next waiter is woken by a commit again (listening again)
$s = long_poll($na, "/events?since=" . now_cursor($na) . "&wait=30");
sleep 1.5;
my $m6 = $na->new_model(name => 'feed-listen', version => '2');
$r = answer($na, $s);
is_deeply([ map { $_->{model_id} } @{ $r->{json}{events} } ], [$m6],
          '  and a new waiter is woken again');

# ---- comment lines, lifetime (18 s), then a reload ends the rest

$sse = sse_open($na->port, '/events');
sse_pump($sse, 25);
ok($sse->{eof}, 'a quiet stream ends by its lifetime');
my $life = $sse->{closed} - $sse->{opened};
ok($life >= 17 && $life < 25, sprintf('  after %.1f s (lifetime=18s)',
                                      $life));
my @t = ($sse->{opened}, @{ $sse->{comments} });
my $gap = 0;
for (1 .. $#t) { $gap = $t[$_] - $t[$_ - 1] if $t[$_] - $t[$_ - 1] > $gap }
ok(@{ $sse->{comments} } >= 2, scalar(@{ $sse->{comments} })
   . ' comment lines on a quiet stream');
ok($gap <= 15, sprintf('  at most %.1f s apart (15 s at most)', $gap));
close $sse->{s};

my @old = $na->worker_pids;
@w = map { long_poll($na, "/events?since=$c5&action=alias.set&wait=60") }
     1 .. 3;
my $sse2 = sse_open($na->port, '/events?action=alias.set');
sse_pump($sse2, 3, sub { defined $sse2->{head} });
my $t0 = time;
$na->reload_nginx;
for my $x (@w) {
    my $res = answer($na, $x, 20);
    is($res->{status}, 200, 'reload: a waiter of an old worker is answered');
    is_deeply($res->{json}{events}, [], '  with no event');
}
sse_pump($sse2, 20);
ok($sse2->{eof}, '  a stream of an old worker ends');
ok(time - $t0 < 15, sprintf('  within %.1f s, not the 60 s wait',
                            time - $t0));
ok($na->wait_for(sub { !grep { kill 0, $_ } @old }, 20),
   '  the old workers exit');

# ---- the delay from a registration's answer to a waiting client's:
# alone, then with 3 clients registering on node B all the while (their
# transactions hold the horizon now and then: the cost of the cursor)

sub delays {
    my ($tag) = @_;
    my @d;
    for my $i (1 .. 20) {
        my $x = long_poll($nb, "/events?since=" . now_cursor($nb)
                               . "&name=feed-delay-$tag&wait=30");
        sleep 0.05;
        my $id = $na->new_model(name => "feed-delay-$tag", version => $i);
        my $t1 = time;
        my $res = answer($nb, $x);
        push @d, 1000 * (time - $t1)
            if ($res->{json}{events}[0]{model_id} // '') eq $id;
    }
    return sort { $a <=> $b } @d;
}
sub pct { my ($d, $p) = @_; $d->[int($p * $#$d + 0.5)] }

my @alone = delays('alone');
is(scalar @alone, 20, '20 waiters each got their registration');
my $stop = $nb->dir . '/stop-load';
my @load = map {
    my $k = $_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $i = 0;
        $nb->register(name => "load-$k", version => ++$i) until -e $stop;
        POSIX::_exit(0);
    }
    $pid } 1 .. 3;
my @busy_d = delays('load');
open(my $fh, '>', $stop) or die $!;
close $fh;
waitpid($_, 0) for @load;
is(scalar @busy_d, 20, '  and with 3 clients registering meanwhile');
diag sprintf "delay from a registration's answer (node A) to a waiting"
           . " client's (node B), ms: alone median %.1f p99 %.1f max %.1f;"
           . " with 3 registering clients median %.1f p99 %.1f max %.1f",
           pct(\@alone, 0.5), pct(\@alone, 0.99), $alone[-1],
           pct(\@busy_d, 0.5), pct(\@busy_d, 0.99), $busy_d[-1];

unlike($na->error_log . $nb->error_log, qr/\[(alert|crit|emerg)\]/,
       'no alert in the logs');
$na->finish;
$nb->finish;
done_testing;
