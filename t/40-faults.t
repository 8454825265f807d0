# Proves: the registry survives every fault of its dependencies under
# load (issue 12, item 3).  For each fault of the table below, client
# processes (t/lib/Modelreg/Load.pm) drive mixed load -- registrations
# with bytes, reads, lists, downloads, updates, deletes; and Geti's routes
# where Geti is the fault -- while the fault happens: PostgreSQL killed
# (SIGKILL) and restarted; PostgreSQL slow (a table lock held past the
# database timeout, locks on the audit table and on rows held during a
# pg_sleep); the S3 store killed (SIGKILL) and restarted; the store slow (a
# relay that holds every byte); Geti slow, then down; clients that go away
# mid-upload and mid-download; the spool's file system full (a small
# tmpfs; skipped when it cannot be mounted, not root); `nginx -s reload`
# (with Geti's calls in the load); workers killed with SIGKILL (those that
# hold an upload half sent and a registration whose object is stored and
# whose row waits).  Then:
# - every request was answered with a success or the error API.md and
#   README document for it (Load.pm's table: a 503 naming the database,
#   the store or Geti; a 404 for a model another client deleted; a 409 for
#   a name taken) -- "other" (no answer, 500, 502, an undocumented body)
#   must be 0; only the requests in flight on a worker killed on purpose
#   may go unanswered (their connection reset: "cut");
# - no worker crashed (none "exited on signal" but those killed), nothing
#   logged at alert or crit (but the full spool's failed writes);
# - every model answered 201 (and not deleted since) downloads with the
#   exact bytes sent, and one answered 204 to a DELETE is gone;
# - no row lacks its object, and once the clean-up queue (storage_gc)
#   drains, no object lacks its row (and, on S3, no part is left); after
#   the kill, the killed registration has no row and its object goes by
#   the queue (its entry made due: it waits an hour otherwise);
# - no spool or temp file is left.
# It prints a table: fault, store, requests, successes, documented errors,
# other errors, data checks passed.
#
# MODELREG_FAULTS=regex runs only the faults whose names match;
# MODELREG_FAULT_SECONDS=N changes how long each load lasts (default 12).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use Modelreg::Harness;
use Modelreg::FaultProxy;
use Modelreg::FakeGeti;
use Modelreg::Load;

my $SECONDS = $ENV{MODELREG_FAULT_SECONDS} || 12;
my $ONLY = $ENV{MODELREG_FAULTS};
my @TABLE;
my $MOUNTED;        # the tmpfs over the spool, while it is there

# ---- the faults: store, the load's options, and what happens meanwhile
# (a sub run while the load runs; it returns when the fault is over)

my @FS = (
    { name => 'PostgreSQL killed (SIGKILL), restarted',
      during => sub {
          my ($h) = @_;
          sleep 3;
          $h->kill_pg;
          sleep 3;
          $h->start_pg;
      } },
    { name => 'PostgreSQL slow (locks held, pg_sleep)',
      during => sub {
          my ($h) = @_;
          sleep 2;
          my $s = $h->psql_session;
          # past the database timeout= (3s): 503s for what needs models
          $s->run('BEGIN; LOCK TABLE models IN ACCESS EXCLUSIVE MODE;'
                  . ' SELECT pg_sleep(4); COMMIT;');
          # writes wait on the audit table, then on the rows
          $s->run('BEGIN; LOCK TABLE audit_events IN SHARE MODE;'
                  . ' SELECT pg_sleep(2); COMMIT;');
          $s->run('BEGIN; SELECT count(*) FROM (SELECT 1 FROM models'
                  . ' FOR UPDATE) x; SELECT pg_sleep(2); COMMIT;');
          $s->end;
      } },
    { name => 'clients abort mid-upload and mid-download',
      load => { big => 0.2,
                mix => { register => 3, get => 2, list => 1, download => 2,
                         update => 1, delete => 1, abort_upload => 2,
                         abort_download => 2 } } },
    { name => 'nginx -s reload (x3)', geti => 1,
      # (Geti's calls too: the fake's slow project's take a second each)
      load => { clients => 6,
                mix => { register => 6, get => 4, list => 2, download => 4,
                         update => 2, delete => 2, geti_projects => 1,
                         geti_import => 1 } },
      during => sub {
          my ($h) = @_;
          for (1 .. 3) {
              sleep 3;
              $h->reload_nginx;
          }
      } },
    { name => 'workers killed (SIGKILL) mid-upload, mid-registration',
      killed => 1,
      during => sub {
          my ($h, $x) = @_;
          sleep 3;
          kill_mid_registration($h, $x);
      } },
    { name => 'Geti slow, then down', geti => 1,
      load => { mix => { register => 2, get => 1, list => 1, download => 1,
                         delete => 1, geti_projects => 1, geti_project => 1,
                         geti_import => 2 } },
      during => sub {
          my ($h) = @_;
          my $g = $h->geti;
          $g->slow(2);
          sleep 5;
          $g->slow(0);
          $g->down;
          sleep 4;
          $g->up;
      } },
);

my $proxy;
my @S3 = (
    { name => 'S3 store killed (SIGKILL), restarted',
      during => sub {
          my ($h) = @_;
          sleep 3;
          note 'killing Swift at ' . localtime;
          $h->kill_swift;
          sleep 2;
          note 'starting Swift at ' . localtime;
          # (its start is bounded; on a busy machine it may take two)
          unless (eval { $h->start_swift; 1 }) {
              diag "Swift did not start, once more: $@";
              $h->start_swift;
          }
          note 'Swift started at ' . localtime;
      } },
    { name => 'the store slow (300 ms a piece)',
      during => sub {
          my ($h) = @_;
          sleep 2;
          $proxy->delay(300);
          sleep 7;
          $proxy->pass;
      } },
    { name => "the spool's file system full", spool_full => 1,
      load => { big => 0.3 } },
    { name => 'PostgreSQL killed (SIGKILL), restarted', on_s3 => 1,
      during => $FS[0]{during} },
);

# An upload half sent, and a registration whose object is stored and
# whose row waits (a lock on models): the workers that hold them are
# killed
sub kill_mid_registration {
    my ($h, $x) = @_;

    # an upload half sent (it waits for the rest until client_body_timeout)
    my ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'name', value => 'half' }, { name => 'version',
                                               value => '1' },
        { name => 'file', filename => 'half.zip', type => 'application/zip',
          value => 'PK' . ('h' x (1 << 20)) });
    my $half = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $h->port) or die $!;
    print $half "POST /models HTTP/1.1\r\nHost: x\r\nContent-Type: $ct\r\n"
              . "Content-Length: " . length($body) . "\r\n\r\n"
              . substr($body, 0, length($body) / 2);
    # (the load's own files are smaller)
    ok($h->wait_for(sub { grep { (-s $_ // 0) > 300_000 } $h->temp_files }, 20),
       'kill: an upload is spooling');

    # a registration stored, its row waiting (for at most the database
    # timeout=, 3 s: what follows is quick)
    my $lock = $h->psql_session;
    $lock->run('BEGIN; LOCK TABLE models IN SHARE MODE;');
    $h->wait_for(sub { $h->psql("SELECT count(*) FROM pg_locks l JOIN"
        . " pg_class c ON c.oid = l.relation WHERE c.relname = 'models'"
        . " AND l.mode = 'ShareLock' AND l.granted") == 1 }, 10)
        or die "no lock on models";
    ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'file', filename => 'victim.zip', type => 'application/zip',
          value => Modelreg::Harness::zip_of('m.bin', 'k' x 5000) },
        { name => 'name', value => 'victim' }, { name => 'version',
                                                 value => '1' });
    # (the load's own registrations wait on the lock too, holding the
    # pool's connections until their timeout=: a victim that waited as
    # long in the queue is answered 503 with nothing stored, and is sent
    # again; a 503 changed nothing, so the same name may be used)
    my ($reg, @answers);
    my $stored = $h->wait_for(sub {
        return 1 if grep { m{/victim\.zip$} } $h->objects;
        if ($reg && $h->has_response($reg)) {
            push @answers, $h->read_response($reg)->{status};
            undef $reg;
        }
        $reg //= $h->send_raw('POST', '/models', $body,
                              { 'Content-Type' => $ct });
        return 0;
    }, 30);
    ok($stored && $reg, 'kill: a registration is stored, its row waits');
    ok(!grep({ $_ != 503 } @answers),
       'kill: a victim answered before it was stored got a 503 ('
       . (@answers ? "@answers" : 'none') . ')');

    my @pids = map { owner($h, $_) } $reg, $half;
    ok(@pids == 2 && !grep({ !$_ } @pids),
       "kill: the workers holding them (@pids)");
    my %victims = map { $_ => 1 } grep { $_ } @pids;
    $x->{killed_at} = time;
    push @{ $h->{killed} }, keys %victims;
    kill 'KILL', keys %victims;
    # (the server notices its client gone within 100 ms: the waiting
    # INSERT is cancelled, not committed when the lock goes)
    sleep 0.5;
    $lock->end;
    close $half;
    close $reg;
    $x->{after} = sub {
        is($h->psql("SELECT count(*) FROM models WHERE name = 'victim'"), 0,
           'kill: the killed registration has no row');
    };
}

# the nginx worker whose socket serves the client socket $s
sub owner {
    my ($h, $s) = @_;
    my ($port, $cport) = ($h->port, $s->sockport);
    my $out = `ss -Htnp state established '( sport = :$port and dport = :$cport )'`;
    my ($pid) = $out =~ /pid=(\d+)/;
    return $pid;
}

# ---- one fault under load, then the checks

sub run_fault {
    my ($h, $f) = @_;
    my $name = $f->{name};
    my $t0 = time;
    my %x;
    my $log_at = length $h->error_log;

    if ($f->{spool_full}) {
        my $why = fill_spool($h, \%x);
        if ($why) {
            push @TABLE, [ $name, $h->storage, ("-") x 4, "skipped: $why" ];
            SKIP: { skip "$name: $why", 1 }
            return;
        }
    }

    my %geti;
    if ($f->{geti}) {
        my $g = $h->geti;
        my @models = ([1, 1], [1, 2], [2, 1], [3, 1], [3, 2], [4, 1]);
        %geti = (projects => [ map { $g->fixture($_)->{id} } 1 .. 4 ],
                 models => [ map {
                     my ($n, $k) = @$_;
                     my $p = $g->fixture($n);
                     { project => $p->{id}, group => $p->{groups}[0]{id},
                       id => sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $k, $n),
                       sha256 => sha256_hex(
                           Modelreg::FakeGeti::export_zip($p)) }
                 } @models ]);
    }

    my $load = Modelreg::Load->start(port => $h->port, clients => 4,
                                     seconds => $SECONDS, tag => "f$t0",
                                     ($f->{geti} ? (geti => \%geti) : ()),
                                     %{ $f->{load} || {} });
    $load->running;
    $f->{during}->($h, \%x) if $f->{during};
    my @recs = $load->wait;
    is($load->killed, 0, "$name: every client ended in time");

    unlink "$x{mounted}/filler" if $x{mounted};
    $x{after}->() if $x{after};

    # the requests in flight on the worker killed on purpose
    my $cut = 0;
    if (my $k = $x{killed_at}) {
        for my $r (@recs) {
            next unless $r->{status} == 599 && $r->{t0} <= $k
                        && $r->{t1} >= $k
                        && ($r->{error} // '')
                           =~ /reset|end of stream|closed|broken pipe/i;
            $r->{op} = 'cut';
            $cut++;
        }
        @recs = grep { $_->{op} ne 'cut' } @recs;
    }

    my $sum = Modelreg::Load::summary(\@recs);
    ok($sum->{requests} > 0, "$name: requests were made");
    is($sum->{other}, 0, "$name: every answer a success or documented")
        or diag join "\n", map { Modelreg::Load::describe($_) }
                           grep { defined } @{ $sum->{others} }[0 .. 19];
    ok($cut <= 4, "$name: at most one request a client cut by the kill")
        if $f->{killed};

    # (the registrations of a worker that was killed leave their keys to
    # the clean-up queue, due after a grace of an hour: due now, as
    # nothing is under way)
    my ($passed, $total) = check_data($h, \@recs, $name,
                                      $f->{killed} ? (hurry => 1) : ());
    unmount(\%x);

    my $log = substr($h->error_log, $log_at);
    my @crash = $log =~ /^(.*exited on signal.*)$/mg;
    my $killed = join '|', @{ $h->{killed} || [] };
    @crash = grep { !/ process (?:$killed) exited on signal 9\b/ } @crash
        if $killed;
    is_deeply(\@crash, [], "$name: no worker crashed");
    # (a full spool is logged as such, at crit, as nginx logs a failed
    # write of its own temp files)
    my @alerts = grep { !$f->{spool_full} || !/No space left on device/ }
                 $log =~ /^(.*\[(?:alert|crit|emerg)\].*)$/mg;
    @alerts = grep { !/exited on signal 9\b/ } @alerts if $killed;
    is_deeply(\@alerts, [], "$name: no alert in the log");
    note "$name: " . join ', ', map { "$_->[0] x$_->[1]" } Modelreg::Load::breakdown(\@recs);

    my $n = $sum->{requests} - $sum->{aborted};
    push @TABLE, [ $name, $h->storage,
                   $n . ($sum->{aborted} ? " (+$sum->{aborted} aborted)" : '')
                   . ($cut ? " (+$cut cut)" : ''),
                   $sum->{ok}, $sum->{documented}, $sum->{other},
                   "$passed/$total" ];
    note sprintf('%s: %.1f s', $name, time - $t0);
}

# the data checks after a fault (Load.pm); returns (passed, total)
sub check_data {
    my ($h, $recs, $name) = @_;
    my @results = Modelreg::Load::check_data($h, $recs, @_[3 .. $#_]);
    for my $c (@results) {
        my ($ok, $what, @diag) = @$c;
        ok($ok, "$name: $what") or diag join ' ', @diag;
    }
    return (scalar(grep { $_->[0] } @results), scalar @results);
}

# a small tmpfs over the spool, nearly full: some uploads fit, some not
sub fill_spool {
    my ($h, $x) = @_;
    return 'not root: cannot mount a tmpfs' if $> != 0;
    my $spool = $h->dir . '/spool';
    my $out = `mount -t tmpfs -o size=3m,mode=0777 modelreg-spool $spool 2>&1`;
    return "mount failed: $out" if $?;
    $x->{mounted} = $MOUNTED = $spool;
    Modelreg::Harness::write_file("$spool/filler", 'f' x (2 << 20));
    return;
}

# (after the checks, which look at the spool on the tmpfs)
sub unmount {
    my ($x) = @_;
    my $spool = delete $x->{mounted} or return;
    system('umount', '-l', $spool);
    undef $MOUNTED;
}

# (a test that dies leaves no mount behind)
END {
    local $?;
    system('umount', '-l', $MOUNTED) if $MOUNTED;
}

# a crash must not lose what was answered 201 (the harness trades that
# away for speed); a statement whose client is gone is cancelled
sub durable {
    my ($h) = @_;
    $h->psql_admin('ALTER DATABASE modelreg SET synchronous_commit = on');
    $h->psql_admin('ALTER DATABASE modelreg'
                   . " SET client_connection_check_interval = '100ms'");
}

sub wanted { !$ONLY || $_[0]{name} =~ /$ONLY/ }

# ---- fs: the database, clients, nginx, Geti

if (my @fs = grep { wanted($_) } @FS) {
    my $h = Modelreg::Harness->new(workers => 2, gc => '1s',
                                   db => 'pool=4 queue=64 timeout=3s',
                                   geti => { export_ms => 200, slow => 1 });
    durable($h);
    run_fault($h, $_) for @fs;
    $h->finish(killed => $h->{killed});
}

# ---- s3: the store, its spool, and the database again

if (my @s3 = grep { wanted($_) } @S3) {
    $proxy = Modelreg::FaultProxy->listen;
    my $h = Modelreg::Harness->new(storage => 's3', workers => 2, gc => '1s',
                                   db => 'pool=4 queue=64 timeout=3s',
                                   s3_via => $proxy->port);
    $proxy->start($h->s3_port);
    durable($h);
    run_fault($h, $_) for @s3;
    $h->finish;
    $proxy->stop;
}

# ---- the table

my @head = ('fault', 'store', 'requests', 'successes', 'documented errors',
            'other errors', 'data checks passed');
my @w = map { length } @head;
for my $row (@TABLE) {
    $w[$_] = length $row->[$_] > $w[$_] ? length $row->[$_] : $w[$_]
        for 0 .. $#head;
}
my $fmt = join(' | ', map { "%-${_}s" } @w) . "\n";
diag sprintf($fmt, @head) . join('-+-', map { '-' x $_ } @w) . "\n"
     . join '', map { sprintf $fmt, @$_ } @TABLE;

done_testing();
