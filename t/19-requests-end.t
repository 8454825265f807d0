# Proves: no request is ever left open.  Every route of the API (the table
# below), under each fault -- the database stopped; the pool's wait queue
# full (pool=1 queue=1: its one connection runs a query stuck on a lock, a
# second query waits in the queue); the object store down (S3 with Swift
# stopped); the store's put failing at once (fs: the thread pool's one
# thread held in an fsync by gdb, a queue of 0, a real "queue overflow");
# the client gone (after its headers, after half its body, before reading
# the answer, or while its query waits on a lock) -- is answered with a
# documented status (2xx, 4xx, 503; never no answer, never a hang) or,
# when its client left, closed; afterwards nginx's count of active
# connections (stub_status) is back where it was before the request
# (polled, at most 10 s), no socket of nginx's stays in CLOSE-WAIT, and
# the error log gained no alert, crit or "header already sent".  With
# nothing wrong, every request of the table gets its expected answer, and
# each fault shows it is in effect, so the cases drive the real paths.
#
# MODELREG_STORAGE=s3 runs the faults that are not about the store on S3;
# MODELREG_FAULTS=regex runs only the faults whose names match.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use File::Temp;
use Time::HiRes qw(sleep time);
use Modelreg::Harness;

# how long a request may take to be answered, and nginx to let go of it
my $ANSWER_WITHIN = 20;
my $SETTLE_WITHIN = 10;

sub pid { sprintf('6650a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub gid { sprintf('7750a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub oid { sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $_[1], $_[0]) }

my $MISSING = 'matrix-no-such-model-0001';

# download links' key (POST /models/{id}/links)
my $LINK_KEY = File::Temp->new(SUFFIX => '.key');
print $LINK_KEY 'k' x 64, "\n";
close $LINK_KEY;

# ---- the routes: name, method, path, body; ok = the answer when all is
# up; waits = its request queries the models table (a lock on it holds it)

sub form { ($_[0], 'application/x-www-form-urlencoded') }
my $LISTS = 0;

my @ROUTES = (
    { name => 'GET /health', path => '/health', ok => 200 },
    { name => 'GET /health/ready', path => '/health/ready', ok => 200 },
    # (a limit of its own each time: a page already read would come from
    # the read cache, without the query whose cases this drives)
    { name => 'GET /models', ok => 200, waits => 1,
      path => sub { '/models?limit=' . (1 + $LISTS++ % 1000) } },
    { name => 'GET /models?limit=0', path => '/models?limit=0', ok => 400 },
    { name => 'POST /models', method => 'POST', path => '/models', ok => 201,
      waits => 1, body => sub {
          my ($x) = @_;
          return Modelreg::Harness::multipart(
              { name => 'file', filename => 'm.zip',
                type => 'application/zip',
                value => Modelreg::Harness::zip_of('model.xml', 'x' x 100) },
              { name => 'name', value => 'matrix-' . ++$x->{seq} },
              { name => 'version', value => '1' });
      } },
    { name => 'GET /models/{id}', path => sub { "/models/$_[0]{id}" },
      ok => 200 },
    { name => 'GET /models/{missing}', path => "/models/$MISSING",
      ok => 404, waits => 1 },
    { name => 'PUT /models/{id} urlencoded', method => 'PUT',
      path => sub { "/models/$_[0]{id}" }, ok => 200, waits => 1,
      body => sub { form('score=0.25&category=urlencoded') } },
    { name => 'PUT /models/{id} JSON', method => 'PUT',
      path => sub { "/models/$_[0]{id}" }, ok => 200, waits => 1,
      body => sub { ('{"score":0.5,"category":"json"}',
                     'application/json') } },
    { name => 'PUT /models/{id} multipart', method => 'PUT',
      path => sub { "/models/$_[0]{id}" }, ok => 200, waits => 1,
      body => sub {
          Modelreg::Harness::multipart({ name => 'score', value => '0.75' },
                                       { name => 'category',
                                         value => 'multipart' });
      } },
    # a valid part, then the body ends without its closing boundary
    { name => 'PUT /models/{id} truncated multipart', method => 'PUT',
      path => sub { "/models/$_[0]{id}" }, ok => 400,
      body => sub {
          my ($b, $ct) = Modelreg::Harness::multipart(
              { name => 'score', value => '0.125' },
              { name => 'category', value => 'truncated' });
          return (substr($b, 0, index($b, 'name="category"')), $ct);
      } },
    { name => 'DELETE /models/{id}', method => 'DELETE',
      path => sub { '/models/' . (shift @{ $_[0]{victims} } // $MISSING) },
      ok => 204, waits => 1 },
    { name => 'GET /models/{id}/files',
      path => sub { "/models/$_[0]{id}/files" }, ok => 200, waits => 1 },
    { name => 'HEAD /models/{id}/files', method => 'HEAD',
      path => sub { "/models/$_[0]{id}/files" }, ok => 200, waits => 1 },
    { name => 'GET /audit', path => '/audit', ok => 200 },
    { name => 'GET /audit?limit=0', path => '/audit?limit=0', ok => 400 },
    { name => 'GET /events?wait=1', path => '/events?wait=1', ok => 200 },
    { name => 'GET /metrics', path => '/metrics', ok => 200 },
    { name => 'GET /projects', path => '/projects', ok => 200 },
    { name => 'GET /projects/{id}', path => '/projects/' . pid(1),
      ok => 200 },
    { name => 'POST /projects/{id}/geti-models/download', method => 'POST',
      path => sub { '/projects/' . pid($_[0]{import}[0])
                    . '/geti-models/download' }, ok => 201, waits => 1,
      body => sub {
          my ($x) = @_;
          my $n = shift @{ $x->{import} };
          push @{ $x->{import} }, $n;
          return (encode_json({ models => [ { id => oid($n, 1),
                                              group_id => gid($n) } ] }),
                  'application/json');
      } },
    { name => 'POST /models/{id}/links', method => 'POST',
      path => sub { "/models/$_[0]{id}/links" }, ok => 201, waits => 1,
      body => sub { ('{"expires_in":60}', 'application/json') } },
    { name => 'PUT /aliases/{name}/{alias}', method => 'PUT',
      path => '/aliases/matrix-subject/production', ok => 200, waits => 1,
      body => sub { (encode_json({ model_id => $_[0]{id} }),
                     'application/json') } },
    { name => 'GET /aliases/{name}', path => '/aliases/matrix-subject',
      ok => 200 },
    { name => 'GET /aliases/{name}/{alias}',
      path => '/aliases/matrix-subject/production', ok => 200 },
    { name => 'GET /aliases/{name}/{alias}/files',
      path => '/aliases/matrix-subject/production/files', ok => 200,
      waits => 1 },
    { name => 'DELETE /aliases/{name}/{alias}', method => 'DELETE',
      path => '/aliases/matrix-subject/production', ok => 204 },
    { name => 'GET /geti/sync', path => '/geti/sync', ok => 200 },
    # last: it starts a run that goes on in the background, asking the
    # registry itself (imports); the case ends with the run
    { name => 'POST /geti/sync', method => 'POST', path => '/geti/sync',
      ok => 202, body => sub { ('', undef) },
      after => sub {
          my ($h) = @_;
          my $res;
          $h->wait_for(sub { $res = $h->get('/geti/sync');
                             $res->{status} != 200 || !$res->{json}{running}
                           }, $ANSWER_WITHIN)
              or return "the sync run is still running $ANSWER_WITHIN s"
                        . " later: $res->{content}";
          return;
      } },
);

# ---- the faults: how to start nginx; start (true once the fault is in
# effect) and stop, around the requests; the ways a client sends them; the
# answers that show the fault is in effect

my @GONE = qw(headers half noread waiting);

my @FAULTS = (
    { name => 'nothing wrong', modes => [ 'answer' ], exact => 1 },
    { name => 'client gone', modes => [ @GONE ] },
    { name => 'database down', db => 'pool=2 timeout=3s',
      modes => [ 'answer' ],
      start => sub {
          my ($h) = @_;
          $h->stop_pg;
          # the pool has seen it
          return $h->wait_for(sub {
              $h->get('/health/ready')->{status} == 503 });
      },
      expect => { 'GET /health/ready' => 503, 'POST /models' => 503,
                  'PUT /models/{id} urlencoded' => 503,
                  'PUT /models/{id} JSON' => 503,
                  'PUT /models/{id} multipart' => 503,
                  'GET /models/{missing}' => 503 } },
    { name => 'pool queue full', db => 'pool=1 queue=1 timeout=120s',
      modes => [ 'answer' ],
      start => \&hold_the_connection, stop => \&let_go,
      expect => { 'GET /health/ready' => 503, 'POST /models' => 503,
                  'PUT /models/{id} urlencoded' => 503,
                  'PUT /models/{id} JSON' => 503,
                  'PUT /models/{id} multipart' => 503,
                  'GET /models/{missing}' => 503 } },
    { name => 'store down', storage => 's3', modes => [ 'answer' ],
      start => sub { $_[0]->stop_swift; 1 },
      expect => { 'GET /health/ready' => 503, 'POST /models' => 503,
                  'GET /models/{id}/files' => 503,
                  'HEAD /models/{id}/files' => 503 } },
    { name => 'store put fails at once', storage => 'fs',
      main => 'thread_pool default threads=1 max_queue=0;',
      modes => [ 'answer' ], needs => \&gdb_missing,
      start => \&hold_the_thread, stop => \&let_the_thread_go,
      expect => { 'POST /models' => 503 } },
);

my @failed;

for my $fault (@FAULTS) {
    next if $ENV{MODELREG_FAULTS} && $fault->{name} !~ /$ENV{MODELREG_FAULTS}/;
    SKIP: {
        my $why = $fault->{needs} && $fault->{needs}->();
        skip("$fault->{name}: $why", 1) if $why;
        my $t0 = time;
        run_fault($fault);
        note sprintf('%s: %.1f s', $fault->{name}, time - $t0);
    }
}

if (@failed) {
    diag scalar(@failed) . ' case(s) failed:';
    diag "  $_" for @failed;
}

done_testing();


sub run_fault {
    my ($fault) = @_;
    my $f = $fault->{name};

    # (no keep-alive: the Geti sync's own requests to the registry, over
    # loopback, would stay counted as active connections while idle; a
    # sync only of projects whose exports finish)
    my $h = Modelreg::Harness->new(
        workers => 1, stub_status => 1,
        server => "keepalive_timeout 0; modelreg_link_key $LINK_KEY;",
        db => $fault->{db} || 'pool=4 timeout=5s',
        geti => { slow => 0, export_ms => 50 },
        geti_params => 'timeout=10s export_timeout=10s projects='
                       . join(',', map { pid($_) } 1, 3),
        ($fault->{storage} ? (storage => $fault->{storage}) : ()),
        ($fault->{main} ? (main => $fault->{main}) : ()));

    # the models the routes work on; one to delete per DELETE request
    my $x = { h => $h, seq => 0, import => [ 1, 3, 4, 2 ] };
    my $deletes = @{ $fault->{modes} };
    $x->{id} = $h->new_model(name => 'matrix-subject', version => '1');
    $x->{victims} = [ map { $h->new_model(name => "matrix-victim-$_",
                                          version => '1') } 1 .. $deletes ];
    $h->get("/models/$x->{id}");        # in the read cache, if it can be

    if ($fault->{start} && !$fault->{start}->($h, $x)) {
        fail("$f: the fault could not be set up");
        return;
    }

    for my $route (@ROUTES) {
        for my $mode (@{ $fault->{modes} }) {
            next if ($mode eq 'headers' || $mode eq 'half')
                    && !$route->{body};
            run_case($h, $x, $fault, $route, $mode);
        }
    }

    $fault->{stop}->($h, $x) if $fault->{stop};

    my $active = -1;
    ok($h->wait_for(sub { ($active = $h->active_connections) == 0 },
                    $SETTLE_WITHIN),
       "$f: no connection is open at the end") or diag "active: $active";
    $h->finish;
}


sub run_case {
    my ($h, $x, $fault, $route, $mode) = @_;
    my $name = "$fault->{name}: $route->{name}"
               . ($mode eq 'answer' ? '' : " ($mode)");
    my @why;

    my $method = $route->{method} || 'GET';
    my $path = ref $route->{path} ? $route->{path}->($x) : $route->{path};
    my ($body, $ct) = $route->{body} ? $route->{body}->($x) : (undef, undef);
    my $head = "$method $path HTTP/1.0\r\nHost: localhost\r\n"
             . (defined $ct ? "Content-Type: $ct\r\n" : '')
             . (defined $body ? 'Content-Length: ' . length($body) . "\r\n"
                              : '')
             . "\r\n";
    $body //= '';

    my $t0 = time;
    my $base = $h->active_connections;
    my $cw_base = $h->server_sockets->{CLOSE_WAIT} // 0;
    my $log_from = length $h->error_log;

    my $lock;
    if ($mode eq 'waiting') {
        $lock = $h->psql_session;
        $lock->run('BEGIN; LOCK TABLE models IN ACCESS EXCLUSIVE MODE;');
        $h->wait_for(sub { locked($h) }, 10)
            or BAIL_OUT('the lock on models was not granted');
    }
    my $waiters = $lock ? lock_waiters($h) : 0;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port, Proto => 'tcp')
        or die "connect: $!";
    $s->autoflush(1);

    if ($mode eq 'headers') {
        syswrite($s, $head);
    } elsif ($mode eq 'half') {
        syswrite($s, $head . substr($body, 0, length($body) / 2));
    } else {
        syswrite($s, $head . $body);
    }

    if ($mode eq 'answer') {
        my $res = read_answer($s, $method eq 'HEAD');
        $h->openapi_check($method, $path, $res) if $res->{complete};
        if (!$res->{complete}) {
            push @why, $res->{eof} ? 'closed without an answer'
                                   : "no answer within $ANSWER_WITHIN s";
        } elsif (!documented($res->{status})) {
            push @why, "answered $res->{status}, not 2xx, 4xx or 503: "
                       . $res->{content};
        } elsif ($fault->{exact} && $res->{status} != $route->{ok}) {
            push @why, "answered $res->{status}, not $route->{ok}: "
                       . $res->{content};
        } elsif (my $want = ($fault->{expect} || {})->{$route->{name}}) {
            push @why, "answered $res->{status}, not $want (is the fault"
                       . " in effect?): $res->{content}"
                if $res->{status} != $want;
        }
    } elsif ($mode eq 'waiting') {
        # the request's query waits on the lock, or it needs none
        $h->wait_for(sub { lock_waiters($h) > $waiters
                           || $h->has_response($s) }, 10);
        push @why, 'answered before its query waited on the lock: the'
                   . ' case does not drive its path'
            if $route->{waits} && $h->has_response($s);
    }

    close $s;

    if ($lock) {
        $lock->run('COMMIT;');
        $lock->end;
    }

    if ($route->{after}) {
        my $why = $route->{after}->($h);
        push @why, $why if $why;
    }

    my ($active, $cw) = ($base, $cw_base);
    my $settled = $h->wait_for(sub {
        $active = $h->active_connections;
        $cw = $h->server_sockets->{CLOSE_WAIT} // 0;
        return $active <= $base && $cw <= $cw_base;
    }, $SETTLE_WITHIN);
    push @why, "nginx still counts $active active connection(s) (was"
               . " $base) $SETTLE_WITHIN s later; its sockets in CLOSE-WAIT:"
               . " $cw (was $cw_base)"
        unless $settled;

    my $log = substr($h->error_log, $log_from);
    push @why, map { "log: $_" }
               grep { /\[(?:alert|crit|emerg)\]|header already sent
                       |exited on signal/x } split /\n/, $log;

    note sprintf('%s: %.1f s', $name, time - $t0) if time - $t0 > 2;
    push @failed, "$name: $why[0]" if @why;
    ok(!@why, $name) or diag join "\n", @why;
}


# HTTP/1.0: the answer is complete at its Content-Length (or at EOF)
sub read_answer {
    my ($s, $head_only) = @_;
    my ($buf, $eof) = ('', 0);
    my $sel = IO::Select->new($s);
    my $deadline = time + $ANSWER_WITHIN;
    my $res;
    while (1) {
        $res = Modelreg::Harness::parse_response($buf);
        if ($res->{status} != 599) {
            my $cl = $res->{headers}{'content-length'};
            last if $head_only || $res->{status} == 204
                    || $res->{status} == 304
                    || (defined $cl && length($res->{content}) >= $cl);
        }
        last if $eof;
        my $left = $deadline - time;
        last if $left <= 0 || !$sel->can_read($left);
        my $n = sysread($s, $buf, 65536, length $buf);
        $eof = 1 unless $n;
    }
    my $cl = $res->{headers}{'content-length'};
    $res->{eof} = $eof;
    $res->{complete} = $res->{status} != 599
        && ($head_only || $eof || $res->{status} == 204
            || $res->{status} == 304
            || (defined $cl && length($res->{content}) >= $cl));
    return $res;
}

sub documented {
    my ($status) = @_;
    return ($status >= 200 && $status < 300)
           || ($status >= 400 && $status < 500) || $status == 503;
}

# ---- pool queue full: the pool's one connection runs a readiness query
# that waits on a lock, a second one waits in the queue of one

sub migrations_locked {
    my ($h) = @_;
    return $h->psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                    . " ON c.oid = l.relation WHERE c.relname ="
                    . " 'modelreg_migrations' AND l.granted"
                    . " AND l.mode = 'AccessExclusiveLock'") == 1;
}

sub hold_the_connection {
    my ($h, $x) = @_;
    $x->{lock} = $h->psql_session;
    $x->{lock}->run('BEGIN; LOCK TABLE modelreg_migrations'
                    . ' IN ACCESS EXCLUSIVE MODE;');
    $h->wait_for(sub { migrations_locked($h) }, 10)
        or BAIL_OUT('the lock on modelreg_migrations was not granted');
    # (a background query may have the connection for a moment: again)
    for (1 .. 20) {
        $x->{holders} = [ map { $h->send_raw('GET', '/health/ready') } 1, 2 ];
        $h->wait_for(sub {
            $h->metrics->{modelreg_db_pool_waiting} == 1
            || grep { $h->has_response($_) } @{ $x->{holders} } });
        last unless grep { $h->has_response($_) } @{ $x->{holders} };
        close $_ for @{ $x->{holders} };
        sleep 0.2;
    }
    return ok(!(grep { $h->has_response($_) } @{ $x->{holders} })
              && $h->metrics->{modelreg_db_pool_waiting} == 1,
              'pool queue full: one query runs into the lock, one waits');
}

sub let_go {
    my ($h, $x) = @_;
    $x->{lock}->run('COMMIT;');
    $x->{lock}->end;
    is_deeply([ map { $h->read_response($_, $ANSWER_WITHIN)->{status} }
                @{ $x->{holders} } ], [ 200, 200 ],
              'pool queue full: the held readiness requests answer once'
              . ' let go');
}

# ---- client gone while its query waits on a lock on models

sub locked {
    my ($h) = @_;
    return $h->psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                    . " ON c.oid = l.relation WHERE c.relname = 'models'"
                    . " AND l.granted AND l.mode = 'AccessExclusiveLock'")
           == 1;
}

sub lock_waiters {
    my ($h) = @_;
    return $h->psql("SELECT count(*) FROM pg_stat_activity"
                    . " WHERE wait_event_type = 'Lock'");
}

# ---- the store's put fails at once: the fs store's thread pool has one
# thread and a queue of 0 (idle, the thread counts as -1 waiting: one task
# is taken); gdb stops that thread (only it: non-stop mode) in the fsync of
# a first upload, so the next task overflows the queue

sub gdb_missing {
    return 'gdb is not installed' unless grep { -x "$_/gdb" }
                                         split /:/, $ENV{PATH};
    my $scope = Modelreg::Harness::slurp('/proc/sys/kernel/yama/ptrace_scope')
                // 0;
    return "ptrace_scope $scope: gdb may not attach to a worker"
        if $scope >= 3 || ($scope >= 1 && $> != 0);
    return;
}

# the states of the worker's threads, main thread first ('t': stopped by
# the tracer)
sub thread_states {
    my ($w) = @_;
    my @s;
    for my $tid (sort { $a <=> $b } map { m{/(\d+)$} } glob "/proc/$w/task/*")
    {
        my $stat = Modelreg::Harness::slurp("/proc/$w/task/$tid/stat") // next;
        push @s, $stat =~ /^\d+ \(.*\) (\S)/;
    }
    return @s;
}

sub hold_the_thread {
    my ($h, $x) = @_;
    my ($w) = $h->worker_pids;
    $x->{worker} = $w;
    my $ready = $h->dir . '/gdb.ready';
    $x->{gdb_pid} = open($x->{gdb}, '|-', "gdb -q -nx -iex 'set non-stop on'"
                         . " -p $w >" . $h->dir . "/gdb.log 2>&1")
        or BAIL_OUT("gdb: $!");
    $x->{gdb}->autoflush(1);
    print { $x->{gdb} } "set pagination off\nset confirm off\n"
                        . "break fsync\ncontinue -a &\nshell touch $ready\n";
    unless ($h->wait_for(sub { -e $ready
                               && !grep { $_ eq 't' } thread_states($w) }, 30))
    {
        diag "gdb did not attach:\n"
             . (Modelreg::Harness::slurp($h->dir . '/gdb.log') // '');
        return 0;
    }
    my ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'file', filename => 'm.zip', type => 'application/zip',
          value => Modelreg::Harness::zip_of('model.xml', 'held') },
        { name => 'name', value => 'matrix-held' },
        { name => 'version', value => '1' });
    $x->{held} = $h->send_raw('POST', '/models', $body,
                              { 'Content-Type' => $ct });
    my @st;
    return ok($h->wait_for(sub { @st = thread_states($w);
                                 $st[0] ne 't' && grep { $_ eq 't' } @st },
                           30),
              'store put fails at once: the pool\'s thread is held in an'
              . ' fsync') || diag "thread states: @st";
}

sub let_the_thread_go {
    my ($h, $x) = @_;
    print { $x->{gdb} } "interrupt -a\n";
    $h->wait_for(sub { (thread_states($x->{worker}))[0] eq 't' }, 10);
    print { $x->{gdb} } "delete\ndetach\nquit\n";
    close $x->{gdb};
    is($h->read_response($x->{held}, $ANSWER_WITHIN)->{status}, 201,
       'store put fails at once: the held upload ends once let go');
    like($h->error_log, qr/thread pool "default" queue overflow/,
         'store put fails at once: the queue did overflow');
}
