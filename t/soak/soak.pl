#!/usr/bin/perl
# The soak (make soak; not in CI): SOAK_SECONDS (default 600) of mixed load
# at SOAK_CONNECTIONS (default 256) keepalive connections, from wrk with
# t/soak/mixed.lua (reads by id, lists, downloads, registrations of a
# small ZIP, updates, deletes; the table kept at a steady size), against a
# private registry (the test harness: PostgreSQL and nginx with two
# workers on free loopback ports; SOAK_STORAGE=s3 for a local Swift).
#
# Every SOAK_INTERVAL seconds (10) it prints the answers and their rate,
# the errors (any answer but 2xx, 304 and the 404 of a model that another
# connection deleted meanwhile, counted apart as races) and each worker's
# RSS.  At the end: throughput at the start and at the end, wrk's socket
# errors and latency, the RSS growth, nginx's and PostgreSQL's open file
# descriptors and connections before and after (idle both times, after a
# warm-up that opened the pools), and the data: every model the load
# generator holds reads back, a sample downloads byte for byte, the table
# holds exactly those rows, one object each, no spool file left.  Exits
# non-zero when any of that fails.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Path qw(make_path);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Modelreg::Harness;

my $SECONDS  = $ENV{SOAK_SECONDS} // 600;
my $CONNS    = $ENV{SOAK_CONNECTIONS} // 256;
my $THREADS  = $ENV{SOAK_THREADS} // 2;
my $INTERVAL = $ENV{SOAK_INTERVAL} // 10;
my $WARMUP   = $ENV{SOAK_WARMUP} // 10;
my $MODELS   = $ENV{SOAK_MODELS} // 250;      # per wrk thread
my $QUIET    = 3;       # the last seconds: reads only, every write answered

$| = 1;
my $h = Modelreg::Harness->new(workers => 2, stub_status => 1,
                               storage => $ENV{SOAK_STORAGE} // 'fs',
                               db => 'pool=16 queue=1024 timeout=10s',
                               server => 'access_log off;');
my $d = $h->dir;
my $zip = Modelreg::Harness::zip_of('model.xml', 'soak ' x 200);
Modelreg::Harness::write_file("$d/soak.zip", $zip);
printf "soak: %d s, %d connections, %d wrk threads, %s storage, in %s\n",
       $SECONDS, $CONNS, $THREADS, $h->storage, $d;

# ---- measuring --------------------------------------------------------

sub rss_mib {
    my ($pid) = @_;
    my $kb = eval { Modelreg::Harness::proc_kib($pid, 'VmRSS') } // 0;
    return $kb / 1024;
}

# what is open while idle: each worker's descriptors and sockets, nginx's
# client connections, PostgreSQL's backends of the registry
sub snapshot {
    my %s;
    for my $pid (sort { $a <=> $b } $h->worker_pids) {
        my @fd = glob("/proc/$pid/fd/*");
        $s{"worker $pid: open files"} = @fd;
        $s{"worker $pid: sockets"} =
            grep { (readlink($_) // '') =~ /^socket:/ } @fd;
    }
    $s{'nginx: client connections'} = $h->active_connections;
    for my $app ('modelreg', 'modelreg-listen') {
        my @pids = split /\n/, $h->psql_admin(
            "SELECT pid FROM pg_stat_activity WHERE datname = 'modelreg'"
            . " AND application_name = '$app'");
        $s{"PostgreSQL: backends of $app"} = @pids;
        # (PostgreSQL's own cache of relation files, up to
        # max_files_per_process each: shown, not compared)
        $s{"(PostgreSQL: their open files, $app)"} = 0;
        $s{"(PostgreSQL: their open files, $app)"} += () =
            glob("/proc/$_/fd/*") for @pids;
    }
    return \%s;
}

sub idle {
    $h->wait_for(sub { $h->active_connections == 0 }, 60)
        or warn "nginx still has client connections\n";
    sleep 2;
}

# cumulative counts of every wrk thread so far
sub counts {
    my ($dir) = @_;
    my %c = (status => {}, kind => {}, models => 0);
    for my $f (glob("$dir/thread-*")) {
        open(my $fh, '<', $f) or next;
        while (<$fh>) {
            if (/^(status|kind) (\S+) (\d+)$/) { $c{$1}{$2} += $3 }
            elsif (/^models (\d+)$/) { $c{models} += $1 }
        }
    }
    return \%c;
}

sub sum { my $t = 0; $t += $_ for values %{ $_[0] }; $t }

# answers that are errors, and 404s (a model deleted meanwhile: a race)
sub classify {
    my ($status) = @_;
    my ($err, $race) = (0, 0);
    for my $s (keys %$status) {
        next if $s =~ /^2\d\d$/ || $s == 304;
        if ($s == 404) { $race += $status->{$s} } else { $err += $status->{$s} }
    }
    return ($err, $race);
}

sub wrk {
    my ($seconds, $dir, $prefix) = @_;
    make_path($dir);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', "$dir/wrk.out");
        open(STDERR, '>&', \*STDOUT);
        exec('wrk', "-t$THREADS", "-c$CONNS", "-d${seconds}s", '--timeout',
             '30s', '-s', "$FindBin::Bin/mixed.lua", $h->url('/'), '--',
             "$d/soak.zip", $dir, $MODELS, $prefix,
             int(time) + $seconds - $QUIET)
            or die "wrk: $!";
    }
    return $pid;
}

sub summary {
    my ($dir) = @_;
    my %s;
    open(my $fh, '<', "$dir/summary") or die "no wrk summary in $dir:\n"
        . (Modelreg::Harness::slurp("$dir/wrk.out") // '');
    while (<$fh>) {
        my @f = split;
        my $v = pop @f;
        $s{"@f"} = $v;
    }
    return \%s;
}

# ---- warm-up: every pool slot opened, the caches filled -----------------

my $warm = wrk($WARMUP, "$d/warm", 'w');
waitpid($warm, 0);
die "warm-up: wrk failed\n" . Modelreg::Harness::slurp("$d/warm/wrk.out")
    if $?;
idle();
my $before = snapshot();
my @workers = sort { $a <=> $b } $h->worker_pids;

# ---- the soak ----------------------------------------------------------

my $dir = "$d/main";
my $start = time;
my $pid = wrk($SECONDS, $dir, 's');
my (@rows, $prev);
$prev = { answers => 0, err => 0, race => 0, t => $start };
printf "%6s %9s %8s %7s %6s  %s\n", 't(s)', 'answers', 'per s', 'errors',
       '404s', join(' ', map { "rss($_) MiB" } @workers);
my $done = 0;
my $next = $start + $INTERVAL;
while (!$done) {
    sleep 0.2 while time < $next && !($done = waitpid($pid, WNOHANG) > 0);
    my $now = time;
    $next += $INTERVAL;
    my $c = counts($dir);
    my $answers = sum($c->{status});
    my ($err, $race) = classify($c->{status});
    my @rss = map { rss_mib($_) } @workers;
    my $row = { t => $now - $start, answers => $answers - $prev->{answers},
                rate => ($answers - $prev->{answers}) / ($now - $prev->{t}),
                err => $err - $prev->{err}, race => $race - $prev->{race},
                rss => \@rss, models => $c->{models} };
    last if $done && $row->{answers} == 0;
    $row->{quiet} = $row->{t} > $SECONDS - $QUIET;
    push @rows, $row;
    printf "%6.0f %9d %8.0f %7d %6d  %s\n", $row->{t}, $row->{answers},
           $row->{rate}, $row->{err}, $row->{race},
           join(' ', map { sprintf '%13.1f', $_ } @rss);
    $prev = { answers => $answers, err => $err, race => $race, t => $now };
}
my $status = $? >> 8;
my $elapsed = time - $start;

# ---- after ------------------------------------------------------------

my $sum = summary($dir);
my $c = counts($dir);
my ($err, $race) = classify($c->{status});
idle();
my $after = snapshot();
my @now = sort { $a <=> $b } $h->worker_pids;

my @fail;
push @fail, "wrk exited with $status" if $status;
push @fail, "workers changed: @workers -> @now" if "@workers" ne "@now";
push @fail, "$err errors" if $err;
push @fail, "$race 404s for " . ($c->{kind}{delete} // 0) . " deletes"
    if $race > ($c->{kind}{delete} // 0);
# ("status" is wrk's count of answers not 2xx or 3xx: counted above)
my $sockerr = 0;
$sockerr += $sum->{$_} for grep { /^socket_errors (?!status)/ } keys %$sum;
push @fail, "$sockerr socket errors" if $sockerr;

# the data: what the load generator holds is what the registry holds
my @live = map { split /\n/, Modelreg::Harness::slurp($_) // '' }
           glob("$d/warm/models-*"), glob("$dir/models-*");
my $unread = grep { $h->get("/models/$_")->{status} != 200 } @live;
my $bad = grep { my $r = $h->get("/models/$_/files"); $r->{content} ne $zip }
          @live[0 .. ($#live < 19 ? $#live : 19)];
my $rows = $h->psql('SELECT count(*) FROM models');
my @objects = eval { $h->objects };
push @fail, "listing the store: $@" if $@;
my @spool = $h->temp_files;
push @fail, "$unread models unreadable" if $unread;
push @fail, "$bad downloads differ" if $bad;
push @fail, "$rows rows for " . @live . " models" if $rows != @live;
push @fail, @objects . " objects for $rows rows" if @objects != $rows;
push @fail, @spool . " spool files left" if @spool;
my @crash = $h->error_log =~ /^(.*(?:exited on signal|\[alert\]).*)$/mg;
push @fail, @crash;

# ---- the summary -------------------------------------------------------

sub avg {
    my ($k, @r) = @_;
    return 0 unless @r;
    my $t = 0;
    $t += $_->{$k} for @r;
    return $t / @r;
}
# throughput: the first and the last minute (or halves of a shorter run)
# of the mixed load, without the read-only end
my @mixed = grep { !$_->{quiet} } @rows;
my $n = int(60 / $INTERVAL) || 1;
$n = int(@mixed / 2) || 1 if @mixed < 2 * $n;
my @first = @mixed[0 .. $n - 1];
my @last = @mixed[-$n .. -1];
my $total = sum($c->{status});
print "\n";
printf "answers: %d in %.0f s (%.0f/s): %s\n", $total, $elapsed,
       $total / $elapsed,
       join(', ', map { "$_ $c->{status}{$_}" } sort keys %{ $c->{status} });
printf "requests: %s\n", join(', ', map { "$_ $c->{kind}{$_}" }
                                    sort keys %{ $c->{kind} });
printf "errors: %d (404s of models deleted meanwhile, races: %d);"
       . " socket errors: %d\n", $err, $race, $sockerr;
printf "throughput: first %d s %.0f/s, last %d s %.0f/s (%+.1f%%)\n",
       $n * $INTERVAL, avg('rate', @first), $n * $INTERVAL,
       avg('rate', @last),
       100 * (avg('rate', @last) / (avg('rate', @first) || 1) - 1);
printf "latency: p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms\n",
       map { $sum->{"latency_us $_"} / 1000 } qw(p50 p99 p99.9 max);
for my $i (0 .. $#workers) {
    my @r = map { $_->{rss}[$i] } @rows;
    my ($lo, $hi) = (sort { $a <=> $b } @r)[0, -1];
    printf "worker %d RSS: %.1f MiB at %d s, %.1f MiB at the end"
           . " (min %.1f, max %.1f)\n", $workers[$i], $r[0], $rows[0]{t},
           $r[-1], $lo, $hi;
}
print "idle, before and after:\n";
for my $k (sort keys %$before) {
    my $same = ($after->{$k} // -1) == $before->{$k} || $k =~ /^\(/;
    printf "  %-44s %5d %5s%s\n", $k, $before->{$k}, $after->{$k} // '-',
           $same ? '' : '   DIFFERENT';
    push @fail, "$k: $before->{$k} before, " . ($after->{$k} // '-')
                . " after" unless $same;
}
printf "data: %d models read back, %d downloads byte for byte, %d rows,"
       . " %d objects, %d spool files\n", @live - $unread,
       ($#live < 19 ? @live : 20) - $bad, $rows, scalar @objects,
       scalar @spool;
print @fail ? "FAIL: " . join('; ', @fail) . "\n" : "PASS\n";
exit(@fail ? 1 : 0);
