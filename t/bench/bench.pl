#!/usr/bin/perl
# make bench: each scenario of issue 6 against its baseline, measured in
# the same run on the same machine, alternating ours and baseline, several
# rounds each; prints one table of medians and writes t/bench/results.json.
# Issue 16's change feed is a measured row without a baseline: the memory
# of N waiting clients and a registration's delay to all of them.
# Nothing here asserts a time: the table is for people to read.
# PostgreSQL runs as in production (fsync, synchronous_commit and
# full_page_writes on); every row has p50 and p99 latencies; the big
# stack holds a million models, loaded with COPY.
#
#   perl t/bench/bench.pl [--rounds N] [--seconds S] [--rows N] [--mib N]
#        [--only RE] [--clients N] [--client_procs N] [--registrations N]
#        [--pool N]   (database connections per worker, ours and the peer's)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Getopt::Long;
use JSON::PP;
use Time::HiRes qw(time sleep);
use List::Util qw(max);
use POSIX ();
use IO::Socket::INET;
use Socket qw(MSG_TRUNC);
use Modelreg::Harness;
use lib "$FindBin::Bin/peer";
use Peer;

# the harness speaks Test::More; a benchmark has no plan
Test::Builder->new->no_ending(1);

my $bench_t0 = time;
my %o = (rounds => 5, seconds => 4, rows => 1_000_000, small => 1000,
         mib => 1024, clients => 10_000, client_procs => 4,
         registrations => 5, pool => 8);
GetOptions(\%o, 'rounds=i', 'seconds=i', 'rows=i', 'small=i', 'mib=i',
           'only=s', 'clients=i', 'client_procs=i', 'registrations=i',
           'pool=i')
    or die "usage: $0 [--rounds N] [--seconds S]\n";

my $json = JSON::PP->new->utf8->canonical;
my @table;

sub say_ { print STDERR "bench: @_\n" }

# ---- the stacks: 1M rows and 1k rows, each its own PostgreSQL + nginx,
# PostgreSQL durable as in production (the tests run it without fsync)

# Files are sent by read(2) and write(2) through two 1 MiB buffers, not
# sendfile(2): on loopback (this bench's only network) sendfile ran at
# half the rate (one static 1 GiB file, one client: 1,650 MiB/s with
# sendfile, 3,300 without); ours and the static baseline run with the
# same setting
my %common = (workers => 2,
              db => "pool=$o{pool} queue=4096 timeout=10s",
              client_timeout => 900, durable => 1,
              files => 'sendfile off; output_buffers 2 1m;');
say_("starting two stacks (2 nginx workers each)");
my $big = Modelreg::Harness->new(%common);
my $small = Modelreg::Harness->new(%common);

# what the clusters run with, read back from PostgreSQL itself
my @durability = qw(fsync synchronous_commit full_page_writes);
my %pg_settings = map { $_ => $big->psql("SHOW $_") } @durability;
for my $k (@durability) {
    my $v = $small->psql("SHOW $k");
    die "the two clusters differ: $k $pg_settings{$k} and $v"
        if $v ne $pg_settings{$k};
}
say_('PostgreSQL: ' . join ', ', map { "$_=$pg_settings{$_}" } @durability);

# the seconds each new part took (the load, the plan check), for the total
my %timings_s;

# $n models (names "model-<md5 of i>") and the same 50 named
# "zebrafish-<i>" (the growth list's substring, matching exactly those 50
# in every stack), written to a file and loaded with COPY through psql's
# \copy, then vacuumed and analyzed, then a CHECKPOINT: the load's
# dirty pages written now rather than by a checkpoint spread over the
# rows that follow (durable, their writes and fsyncs would share the disk
# with it)
my $zebras = 50;
sub load_rows {
    my ($h, $n, $label) = @_;
    require Digest::MD5;
    my $t = time;
    my $file = $h->dir . '/models.copy';
    open my $fh, '>', $file or die "$file: $!";
    my $line = sub {
        my ($id, $name, $version, $key) = @_;
        my $md5 = Digest::MD5::md5_hex($key);
        print $fh join("\t", $id, $name, $version, '2026-11-26 00:00:00',
                       4096, $md5 . $md5, 'model.zip', "bench/$key",
                       '["cat","dog"]', '{"task":"detection"}'), "\n";
    };
    $line->('bench' . sprintf('%012d', $_),
            'model-' . Digest::MD5::md5_hex($_), $_ % 7, $_) for 1 .. $n;
    $line->('benchzebra' . sprintf('%07d', $_), "zebrafish-$_", '1',
            "zebra-$_") for 1 .. $zebras;
    close $fh or die "$file: $!";
    # the indexes no constraint needs go for the COPY and are built again
    # after it, as a bulk load does: 1M rows' COPY into the indexed table
    # took 63 s, without them 25-32 s, and ~17 s to build them after it
    my $t_copy = time;
    my @indexes = map { [split /\|/, $_, 2] } split /\n/, $h->psql(
        "SELECT i.indexrelid::regclass, pg_get_indexdef(i.indexrelid)"
        . " FROM pg_index i WHERE i.indrelid = 'models'::regclass AND NOT"
        . " EXISTS (SELECT 1 FROM pg_constraint c"
        . " WHERE c.conindid = i.indexrelid)");
    $h->psql("DROP INDEX $_->[0]") for @indexes;
    $h->psql("\\copy models (id, name, version, created_date, size, sha256,"
             . " file_name, storage_key, labels, overview) FROM '$file'");
    unlink $file;
    my $t_index = time;
    $h->psql("SET maintenance_work_mem = '1GB'; $_->[1]") for @indexes;
    my $t_vac = time;
    $h->psql('VACUUM ANALYZE models');
    my $t_ckpt = time;
    $h->psql_admin('CHECKPOINT');
    my %s = (write_s => $t_copy - $t, copy_s => $t_index - $t_copy,
             index_s => $t_vac - $t_index,
             vacuum_analyze_s => $t_ckpt - $t_vac,
             checkpoint_s => time - $t_ckpt);
    $timings_s{"load $label"} = \%s;
    say_(sprintf '%s: %d models: file written in %.1f s, COPY %.1f s,'
                 . ' %d indexes built again in %.1f s, VACUUM ANALYZE %.1f s,'
                 . ' CHECKPOINT %.1f s', $label, $n + $zebras,
                 @s{qw(write_s copy_s)}, scalar @indexes,
                 @s{qw(index_s vacuum_analyze_s checkpoint_s)});
}
say_("loading $o{rows} and $o{small} models");
load_rows($big, $o{rows}, 'big');
load_rows($small, $o{small}, 'small');

my $id = 'bench' . sprintf('%012d', int($o{small} / 2));
my $one = $big->get("/models/$id");
die "GET /models/$id: $one->{status}" unless $one->{status} == 200;
my $body = $one->{content};
die "JSON body holds a quote or a \$" if $body =~ /['\$\\]/;

# the baselines live in the same nginx as ours
my $d = $big->dir;
mkdir "$d/sink";
# (the key of download links, for "download via link")
Modelreg::Harness::write_file("$d/link_key",
                              unpack('H*', join '', map { chr rand 256 } 1 .. 32)
                              . "\n");
$big->{opt}{server} = <<"CONF";
modelreg_link_key $d/link_key;
location = /baseline/json {
    default_type application/json;
    return 200 '$body';
}
location /baseline/static/ { alias $d/objects/; }
location /baseline/sink/ {
    alias $d/sink/;
    dav_methods PUT;
    client_max_body_size 0;
    client_body_temp_path $d/sink_tmp;
}
CONF
mkdir "$d/sink_tmp";
chmod 0777, "$d/sink", "$d/sink_tmp";    # workers run as nobody
$big->reload_nginx;
sleep 1;

# ---- tools

my @stacks;

# a SigV4 presigned GET (query auth) for the harness's Swift: the test
# user's keys, us-east-1, an hour; the baseline's URL is signed once
sub presign {
    my ($host, $path) = @_;
    require Digest::SHA;
    my @t = gmtime;
    my $date = sprintf '%04d%02d%02d', $t[5] + 1900, $t[4] + 1, $t[3];
    my $stamp = sprintf '%sT%02d%02d%02dZ', $date, @t[2, 1, 0];
    my $scope = "$date/us-east-1/s3/aws4_request";
    my $enc = sub {
        (my $s = shift) =~ s/([^A-Za-z0-9\-._~])/sprintf '%%%02X', ord $1/ge;
        $s;
    };
    my %q = ('X-Amz-Algorithm' => 'AWS4-HMAC-SHA256',
             'X-Amz-Credential' => "modelreg:s3/$scope",
             'X-Amz-Date' => $stamp, 'X-Amz-Expires' => 3600,
             'X-Amz-SignedHeaders' => 'host');
    my $query = join '&', map { $enc->($_) . '=' . $enc->($q{$_}) }
                          sort keys %q;
    (my $cpath = $path) =~ s{([^/]+)}{$enc->($1)}ge;
    my $creq = "GET\n$cpath\n$query\nhost:$host\n\nhost\nUNSIGNED-PAYLOAD";
    my $sts = "AWS4-HMAC-SHA256\n$stamp\n$scope\n"
            . Digest::SHA::sha256_hex($creq);
    my $k = 'AWS4modelreg-secret';
    $k = Digest::SHA::hmac_sha256($_, $k)
        for $date, 'us-east-1', 's3', 'aws4_request';
    return "$query&X-Amz-Signature=" . Digest::SHA::hmac_sha256_hex($sts, $k);
}

# each returns (value, errors, { p50_ms, p99_ms }); a tool of few
# samples (a curl transfer) gives its samples instead: { samples_ms }

# wrk --latency's "Latency Distribution" (50%, 75%, 90%, 99%) in ms
sub wrk_latency {
    my ($out) = @_;
    my %unit = (us => 0.001, ms => 1, s => 1000, m => 60_000);
    my %l;
    for my $p (50, 99) {
        $out =~ /^\s+$p%\s+([\d.]+)(us|ms|s|m)\s*$/m
            or die "wrk: no $p% latency in: $out";
        $l{"p${p}_ms"} = $1 * $unit{$2};
    }
    return \%l;
}

sub wrk {
    my ($url, $c, %w) = @_;
    my @cmd = ('wrk', '-t2', "-c$c", "-d$o{seconds}s", '--timeout', '10s',
               '--latency');
    push @cmd, '-s', $w{script} if $w{script};
    my $out = `@cmd '$url' @{[ $w{args} ? "-- $w{args}" : '' ]} 2>&1`;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/
        or die "wrk: $out";
    my $err = 0;
    $err += $1 if $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    if ($out =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) {
        $err += $1 + $2 + $3 + $4;
    }
    return ($rps + 0, $err, wrk_latency($out));
}

# pgbench -l logs each transaction (its latency in us, the 3rd field)
# to pgbench_log.* in the current directory: it runs in a directory of
# its own, emptied after; p50 and p99 of the successful transactions
sub pgbench {
    my ($h, $c, $sql, $vars) = @_;
    # variables (-D): under -M prepared each :name is a parameter
    my $defs = join ' ', map { "-D '$_=$vars->{$_}'" }
                             sort keys %{ $vars // {} };
    my $f = "$d/pgbench.sql";
    open my $fh, '>', $f or die $!;
    print $fh $sql;
    close $fh;
    my $logs = "$d/pgbench-logs";
    mkdir $logs;
    unlink glob "$logs/pgbench_log.*";
    my $out = `cd $logs && pgbench -n -M prepared -l -c $c -j 2 -T $o{seconds} $defs -f $f -h 127.0.0.1 -p @{[$h->pg_port]} -U modelreg modelreg 2>&1`;
    # none done in the time (64 connections opened under load can take
    # it all): 0, said, rather than the run lost
    my ($tps) = $out =~ /tps = ([\d.]+)/;
    $out =~ /transactions actually processed: 0\b/ or die "pgbench: $out"
        unless defined $tps;
    say_("pgbench: no transaction done in $o{seconds} s") unless $tps;
    my ($failed) = $out =~ /number of failed transactions: (\d+)/;
    my @us;
    for my $log (glob "$logs/pgbench_log.*") {
        open my $lh, '<', $log or die "$log: $!";
        while (<$lh>) {
            my $t = (split ' ')[2];
            push @us, $t if defined $t && $t =~ /^\d+$/;
        }
        unlink $log;
    }
    return (($tps // 0) + 0, $failed // 0,
            @us ? { p50_ms => pct(50, @us) / 1000,
                    p99_ms => pct(99, @us) / 1000 } : {});
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

# the largest of the workers' VmRSS or VmHWM (peak), in KiB
sub rss {
    my ($h, $key) = @_;
    my $m = 0;
    for my $pid ($h->worker_pids) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $m = max($m, $1) if /^$key:\s+(\d+)/ }
    }
    return $m;
}

# the workers' RSS now, with their peaks reset to it (clear_refs 5), so
# that a later VmHWM is the peak of what ran in between
sub rss_start {
    my ($h) = @_;
    for my $pid ($h->worker_pids) {
        open my $fh, '>', "/proc/$pid/clear_refs" or next;
        print $fh "5\n";
    }
    return rss($h, 'VmRSS');
}

# the latencies of a side's rounds: the median of each round's p50 and
# p99, or, for samples (transfers), p50 and p99 of all of them
sub latency {
    my ($prefix, @l) = @_;
    my @s = map { @{ $_->{samples_ms} // [] } } @l;
    return @s ? ("${prefix}p50_ms" => pct(50, @s),
                 "${prefix}p99_ms" => pct(99, @s),
                 "${prefix}latency_samples" => scalar @s)
              : map { my $k = $_;
                      my @v = grep { defined } map { $_->{$k} } @l;
                      ("$prefix$k" => @v ? median(@v) : undef) }
                    qw(p50_ms p99_ms);
}

# runs ours and the baseline alternately; each returns (value, errors,
# latency)
sub scenario {
    my ($name, $target, $unit, $ours, $base, %x) = @_;
    return if $o{only} && $name !~ /$o{only}/;
    say_("$name ...");
    my (@a, @b, @la, @lb, $errors);
    $errors = 0;
    for my $r (1 .. ($x{rounds} // $o{rounds})) {
        my ($v, $e, $l) = $ours->();
        push @a, $v;
        push @la, $l;
        $errors += $e;
        ($v, $e, $l) = $base->();
        push @b, $v;
        push @lb, $l;
        $errors += $e if $x{count_base_errors};
    }
    my ($ma, $mb) = (median(@a), median(@b));
    my $row = { scenario => $name, ours => $ma, baseline => $mb,
                unit => $unit, ratio => $mb ? $ma / $mb : 0,
                target => $target, errors => $errors,
                latency('', @la), latency('baseline_', @lb),
                rounds_ours => \@a, rounds_baseline => \@b,
                rounds_ours_latency => \@la,
                rounds_baseline_latency => \@lb, %{ $x{extra} // {} } };
    # no target: a row for information (the cache off, random ids)
    $row->{met} = !defined $target ? undef
                : ($row->{ratio} >= $target && $errors == 0) ? JSON::PP::true
                : JSON::PP::false;
    push @table, $row;
    say_(sprintf "%s: %.1f vs %.1f %s = %.2f; p50 %s vs %s ms, p99"
                 . " %s vs %s ms", $name, $ma, $mb, $unit, $row->{ratio},
                 map { ms($_) }
                     @$row{qw(p50_ms baseline_p50_ms p99_ms baseline_p99_ms)});
}

my $u = $big->url('');
# GET /models/{id}'s statement as the module sends it: the same text, the
# id and the store's URL prefix as parameters (a literal id and '' ran
# ~1.15-1.25x faster in the database: not the same statement)
my $pg_one = "SELECT modelreg_model_json(m, :prefix) FROM models m"
           . " WHERE m.id = :id;\n";
my %pg_one = (id => $id, prefix => 'fs:');

# ---- metadata reads

scenario('metadata read', 0.5, 'req/s',
         sub { wrk("$u/models/$id", 64) },
         sub { wrk("$u/baseline/json", 64) }, count_base_errors => 1);

# an alias of the same model (issue 15): resolving it is two lookups of
# the cache, against GET /models/{id}'s one, in the same run
my $name = $big->psql("SELECT name FROM models WHERE id = '$id'");
my $set = $big->put("/aliases/$name/bench", { content => "model_id=$id",
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' } });
die "PUT /aliases/$name/bench: $set->{status}" unless $set->{status} == 200;
scenario('alias read', 0.9, 'req/s',
         sub { wrk("$u/aliases/$name/bench", 64) },
         sub { wrk("$u/models/$id", 64) }, count_base_errors => 1);

scenario('metadata read vs database', 0.6, 'req/s',
         sub { wrk("$u/models/$id", 64) },
         sub { pgbench($big, 64, $pg_one, \%pg_one) });

my $sub = substr('model-' . do { require Digest::MD5;
                                 Digest::MD5::md5_hex(int($o{small} / 2)) },
                 6, 4);
my $pg_list = "SELECT modelreg_model_json(m, ''),"
    . " modelreg_us(m.registered_at), m.id FROM models m"
    . " WHERE m.name ILIKE '%' || '$sub' || '%'"
    . " ORDER BY m.registered_at, m.id LIMIT 101;\n";
scenario('list', 0.5, 'req/s',
         sub { wrk("$u/models?name=$sub&limit=100", 64) },
         sub { pgbench($big, 64, $pg_list) });

my $su = $small->url('');
scenario('growth', 0.9, 'req/s',
         sub { wrk("$u/models/$id", 64) },
         sub { wrk("$su/models/$id", 64) }, count_base_errors => 1);

# the substring list at 1M rows against 1k: "zebrafish" matches the same
# 50 models in both (a page of 50), so that only the table's size differs;
# its plan at 1M first, as the module asks (a prepared statement, the
# pattern a parameter; the first executions get a custom plan), the
# second in the session (the first fills the new backend's caches)
if (!$o{only} || 'growth, list' =~ /$o{only}/) {
    my $t = time;
    my %plan;
    for ([$big, $o{rows}], [$small, $o{small}]) {
        my ($h, $rows) = @$_;
        $plan{$rows} = $h->psql(<<'SQL');
PREPARE list(text) AS SELECT modelreg_model_json(m, ''),
       modelreg_us(m.registered_at), m.id FROM models m
 WHERE m.name ILIKE '%' || $1 || '%'
 ORDER BY m.registered_at, m.id LIMIT 101;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE list('zebrafish');
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE list('zebrafish');
SQL
        $plan{$rows} =~ s/^.*\n(?=Limit)//s;    # the second
        say_("the list's plan at $rows rows:\n$plan{$rows}");
    }
    $timings_s{'list plan'} = time - $t;
    my $plan = $plan{ $o{rows} };
    # (a small --rows is scanned, rightly: only a large table must use it)
    die "the list at $o{rows} rows does not use the trigram index:\n$plan"
        unless $plan =~ /models_name_trgm/ || $o{rows} < 100_000;
    for my $h ($big, $small) {
        my $res = $h->get("/models?name=zebrafish&limit=100");
        my $n = grep { $_->{id} =~ /^benchzebra/ } @{ $res->{json} // [] };
        die "GET /models?name=zebrafish: $res->{status}, $n models"
            unless $res->{status} == 200 && $n == $zebras;
    }
    scenario('growth, list', 0.8, 'req/s',
             sub { wrk("$u/models?name=zebrafish&limit=100", 64) },
             sub { wrk("$su/models?name=zebrafish&limit=100", 64) },
             count_base_errors => 1, extra => { plans => \%plan });
}

scenario('connections', 0.8, 'req/s',
         sub { wrk("$u/models/$id", 1000) },
         sub { wrk("$u/models/$id", 64) }, count_base_errors => 1);

# for information (3 rounds each, to keep make bench short): reads spread
# over all rows (mostly misses of the 16m cache), and the reads above with
# the cache off, i.e. one query each
open my $rnd_lua, '>', "$d/random.lua" or die $!;
print $rnd_lua <<"LUA";
math.randomseed(os.time())
function request()
    return wrk.format("GET", string.format("/models/bench%012d",
                                           math.random(1, $o{rows})))
end
LUA
close $rnd_lua;
scenario('read, random of all ids', undef, 'req/s',
         sub { wrk("$u/models/x", 64, script => "$d/random.lua") },
         sub { pgbench($big, 64, "\\set i random(1, $o{rows})\n"
                   . "SELECT modelreg_model_json(m, '') FROM models m"
                   . " WHERE m.id = 'bench' || lpad(:i::text, 12, '0');\n") },
         rounds => 3);

# (--only may name one of these rows: the block runs for any of them)
if (!$o{only} || grep { /$o{only}/ } map { "$_, cache off" }
                      'read vs return 200', 'read vs database', 'growth',
                      'list', 'growth, list') {
    $_->{opt}{http} = 'modelreg_cache off;', $_->reload_nginx
        for $big, $small;
    sleep 1;
    scenario('read vs return 200, cache off', undef, 'req/s',
             sub { wrk("$u/models/$id", 64) },
             sub { wrk("$u/baseline/json", 64) }, count_base_errors => 1,
             rounds => 3);
    scenario('read vs database, cache off', undef, 'req/s',
             sub { wrk("$u/models/$id", 64) },
             sub { pgbench($big, 64, $pg_one, \%pg_one) }, rounds => 3);
    scenario('growth, cache off', undef, 'req/s',
             sub { wrk("$u/models/$id", 64) },
             sub { wrk("$su/models/$id", 64) }, count_base_errors => 1,
             rounds => 3);
    # the lists' pages are cached too: without, each is one statement
    # (one round each, to keep make bench short)
    scenario('list, cache off', undef, 'req/s',
             sub { wrk("$u/models?name=$sub&limit=100", 64) },
             sub { pgbench($big, 64, $pg_list) }, rounds => 1);
    scenario('growth, list, cache off', undef, 'req/s',
             sub { wrk("$u/models?name=zebrafish&limit=100", 64) },
             sub { wrk("$su/models?name=zebrafish&limit=100", 64) },
             count_base_errors => 1, rounds => 1);
    $_->{opt}{http} = '', $_->reload_nginx for $big, $small;
    sleep 1;
}

# ---- download via link: a 4 KiB file through a link (checked in the
# access phase, no database) against the plain download of the same file;
# both look the model up and record the download (model.download)

if (!$o{only} || 'download via link' =~ /$o{only}/) {
    my $fid = $big->new_model(name => 'linked', version => '1',
        file => Modelreg::Harness::zip_of('m.bin',
                                          join '', map { chr rand 256 }
                                                   1 .. 4000));
    my $res = $big->post("/models/$fid/links",
                         { content => '{"expires_in": 604800}' });
    die "POST /models/$fid/links: $res->{status}" unless $res->{status} == 201;
    scenario('download via link (4 KiB, c=64)', 0.9, 'req/s',
             sub { wrk("$u$res->{json}{url}", 64) },
             sub { wrk("$u/models/$fid/files", 64) }, count_base_errors => 1);
}

# ---- registrations: a 4 KiB zip, c=16, unique names

my $zip = Modelreg::Harness::zip_of('model.bin',
                                    join '', map { chr rand 256 } 1 .. 4000);
my $bnd = 'benchboundary';
my $pre = "--$bnd\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n";
my $post = "\r\n--$bnd\r\nContent-Disposition: form-data; name=\"version\""
         . "\r\n\r\n1\r\n--$bnd\r\nContent-Disposition: form-data;"
         . " name=\"file\"; filename=\"m.zip\"\r\n"
         . "Content-Type: application/zip\r\n\r\n$zip\r\n--$bnd--\r\n";
for (['pre', $pre], ['post', $post]) {
    open my $fh, '>', "$d/reg.$_->[0]" or die $!;
    binmode $fh;
    print $fh $_->[1];
}
my $round = 0;
open my $lua, '>', "$d/reg.lua" or die $!;
print $lua <<"LUA";
local n = 0
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    prefix = args[1]
    local f = io.open("$d/reg.pre", "rb"); pre = f:read("*a"); f:close()
    f = io.open("$d/reg.post", "rb"); post = f:read("*a"); f:close()
    headers = { ["Content-Type"] = "multipart/form-data; boundary=$bnd" }
end
function request()
    n = n + 1
    return wrk.format("POST", "/models", headers,
                      pre .. "reg-" .. prefix .. "-" .. tid .. "-" .. n .. post)
end
LUA
close $lua;
scenario('registrations', 0.3, 'req/s',
         sub { wrk("$u/models", 16, script => "$d/reg.lua",
                   args => 'r' . $round++) },
         sub { pgbench($big, 16, <<'SQL') });
WITH m AS (INSERT INTO models (id, name, version, created_date, size, sha256,
    file_name, storage_key, registered_at, last_updated_at)
  SELECT r, 'pgb-' || r, '1', modelreg_ts(now()), 4096,
         md5(r) || md5(r), 'm.zip', r || '/m.zip', now(), now()
  FROM (SELECT replace(gen_random_uuid()::text, '-', '') r) x
  RETURNING *),
a AS (INSERT INTO audit_events (action, model_id, actor, request_id,
    remote_addr, status, details)
  SELECT 'model.create', m.id, '-', 'x', '127.0.0.1', 201,
    jsonb_build_object('name', m.name, 'version', m.version,
      'precision', m.precision, 'size', m.size, 'sha256', m.sha256,
      'file_name', m.file_name) FROM m)
SELECT modelreg_model_json(m, '') FROM m;
SQL

# ---- 1 GiB upload and download (fs)

# the --mib multipart body (name "big", version 1) of the 1 GiB rows,
# written once for the upload block and the peer's: (file, its
# Content-Type, its size)
my @big_body;
sub big_body {
    return @big_body if @big_body;
    say_("writing a $o{mib} MiB multipart body");
    my $file = "$d/big.body";
    open my $fh, '>', $file or die $!;
    binmode $fh;
    my $b2 = 'bigboundary';
    print $fh "--$b2\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n"
            . "big\r\n--$b2\r\nContent-Disposition: form-data;"
            . " name=\"version\"\r\n\r\n1\r\n--$b2\r\nContent-Disposition:"
            . " form-data; name=\"file\"; filename=\"big.zip\"\r\n"
            . "Content-Type: application/zip\r\n\r\n";
    print $fh "PK\x03\x04" . ("\0" x 26);
    open my $rnd, '<', '/dev/urandom' or die $!;
    read $rnd, my $block, 1 << 20;
    print $fh $block for 1 .. $o{mib};
    print $fh "PK\x05\x06" . ("\0" x 18) . "\r\n--$b2--\r\n";
    close $fh;
    @big_body = ($file, "multipart/form-data; boundary=$b2", -s $file);
    return @big_body;
}

# GET $url, its body discarded as it arrives: recv(2) with MSG_TRUNC
# takes TCP's bytes off the socket without copying them to the client, so
# the server's side of the transfer (its reads, copies and sends) bounds
# the rate, not the client's copy (with curl -o /dev/null one loopback
# client was the bound of every download: ours, nginx's static file and
# the peer alike).  (status, body bytes; the status 0 on an error, a
# silence of 60 s, a header over 64 KiB or a body other than its
# Content-Length)
sub get_discard {
    my ($url) = @_;
    my ($hostport, $path) = $url =~ m{^http://([^/]+)(/.*)$}
        or die "get_discard: $url";
    my $s = IO::Socket::INET->new(PeerAddr => $hostport, Timeout => 60)
        or return (0, 0);
    # (Timeout bounds the connect only; this, each read)
    $s->sockopt(Socket::SO_RCVTIMEO(), pack('l!l!', 60, 0));
    print $s "GET $path HTTP/1.1\r\nHost: $hostport\r\n"
             . "Connection: close\r\n\r\n";
    my $head = '';
    while (index($head, "\r\n\r\n") < 0) {
        return (0, 0) if length $head > 65536;
        sysread($s, $head, 4096, length $head) or return (0, 0);
    }
    my $end = index($head, "\r\n\r\n") + 4;
    my $bytes = length($head) - $end;
    $head = substr $head, 0, $end;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})};
    my ($want) = $head =~ /^Content-Length:\s*(\d+)/mi;
    my $buf;
    while (1) {
        defined $s->recv($buf, 1 << 20, MSG_TRUNC) or return (0, $bytes);
        last unless length $buf;
        $bytes += length $buf;
    }
    return (0, $bytes) if defined $want && $bytes != $want;
    return ($status // 0, $bytes);
}

# $n downloads of $url back to back (get_discard): a round's (MiB/s,
# errors), the total bytes over the total time (one 1 GiB fs download
# takes ~0.4 s, too short to measure alone)
sub downloads {
    my ($url, $n) = @_;
    return sub {
        my ($bytes, $errors, $t, @ms) = (0, 0, time);
        for (1 .. $n // 1) {
            my $t1 = time;
            my ($code, $size) = get_discard($url);
            push @ms, (time - $t1) * 1000;
            $bytes += $size;
            $errors++ if $code != 200;
        }
        return ($bytes / (time - $t) / 1048576, $errors,
                { samples_ms => \@ms });
    };
}

# POSTs that body to $url: (MiB/s, errors, the new model's id, the
# transfer's time as a latency sample)
sub upload_big {
    my ($url) = @_;
    my ($file, $ct, $size) = big_body();
    my $t = time;
    my $out = `curl -s -o $d/up.out -w '%{http_code}' -H 'Content-Type: $ct' -X POST -T $file $url`;
    my $dt = time - $t;
    my ($id) = `cat $d/up.out` =~ /^(\S+)$/;
    say_("POST $url: $out") if $out ne '201';
    return ($size / $dt / 1048576, $out eq '201' ? 0 : 1, $id,
            { samples_ms => [$dt * 1000] });
}

if (!$o{only} || 'upload download s3' =~ /$o{only}/) {
    my ($file, $ct, $size) = big_body();
    my $big_id;
    my $rss0 = rss_start($big);
    my $up = sub {
        $big->delete("/models/$big_id") if $big_id;
        (my ($rate, $err), $big_id, my $lat) = upload_big("$u/models");
        return ($rate, $err, $lat);
    };
    my $put = sub {
        my $t = time;
        my $out = `curl -s -o /dev/null -w '%{http_code}' -T $file $u/baseline/sink/big`;
        my $dt = time - $t;
        unlink "$d/sink/big";
        say_("PUT: $out") if $out !~ /^20[14]$/;
        return ($size / $dt / 1048576, $out =~ /^20[14]$/ ? 0 : 1,
                { samples_ms => [$dt * 1000] });
    };
    scenario('upload 1 GiB', 0.7, 'MiB/s', $up, $put, count_base_errors => 1);
    my $up_rss = rss($big, 'VmHWM') - $rss0;
    $table[-1]{rss_growth_kib} = $up_rss
        if @table && $table[-1]{scenario} eq 'upload 1 GiB';
    # (an upload of its own when --only left the upload row out)
    $up->() unless $big_id;

    my $key = $big->psql("SELECT storage_key FROM models WHERE id = '$big_id'");
    $rss0 = rss_start($big);
    scenario('download 1 GiB (fs)', 0.9, 'MiB/s',
             downloads("$u/models/$big_id/files", 5),
             downloads("$u/baseline/static/$key", 5), count_base_errors => 1,
             rounds => 5);
    $table[-1]{rss_growth_kib} = rss($big, 'VmHWM') - $rss0
        if @table && $table[-1]{scenario} eq 'download 1 GiB (fs)';

    # ---- the same on S3: a third stack with a private Swift; the baseline
    # is a plain proxy_pass of the same object through the same nginx, the
    # URL presigned here (SigV4 query auth, checked by s3api as ours is)
    if (!$o{only} || 's3' =~ /$o{only}/) {
        say_("starting an S3 stack (Swift)");
        my $s3 = Modelreg::Harness->new(%common, storage => 's3');
        my $port = $s3->{s3_port};
        $s3->{opt}{server} = <<"CONF";
location /baseline/s3/ { proxy_pass http://127.0.0.1:$port/; }
CONF
        $s3->reload_nginx;
        sleep 1;
        my $t = time;
        my $out = `curl -s -o $d/up3.out -w '%{http_code}' -H 'Content-Type: $ct' -X POST -T $file @{[ $s3->url('/models') ]}`;
        die "POST /models on S3: $out" unless $out eq '201';
        say_(sprintf 'uploaded to S3 in %.1f s', time - $t);
        my ($s3_id) = `cat $d/up3.out` =~ /^(\S+)$/;
        my $s3_key = $s3->psql(
            "SELECT storage_key FROM models WHERE id = '$s3_id'");
        my $signed = presign("127.0.0.1:$port", "/models/$s3_key");
        $rss0 = rss_start($s3);
        scenario('download 1 GiB (s3)', 0.9, 'MiB/s',
                 downloads($s3->url("/models/$s3_id/files")),
                 downloads($s3->url("/baseline/s3/models/$s3_key?$signed")),
                 count_base_errors => 1);
        $table[-1]{rss_growth_kib} = rss($s3, 'VmHWM') - $rss0
            if @table && $table[-1]{scenario} eq 'download 1 GiB (s3)';
        push @stacks, $s3;
    }
}

# ---- the peer (issue 17): the same routes in FastAPI + uvicorn +
# asyncpg (t/bench/peer/app.py), 2 workers with a pool of 16 each, on the
# 100k stack's PostgreSQL and data, its files beside ours; ours / peer

# runs scenario() watching the peak RSS of our workers and the peer's
# (VmHWM, reset with clear_refs 5) and the CPU time they use, over $gib
# GiB moved by each side: both growths and both CPU times per GiB go in
# its row (a single loopback client bounds both sides' MiB/s alike)
sub scenario_peak {
    my ($peer, $gib, $name, @args) = @_;
    my ($ours0, $peer0) = (rss_start($big), rss_start($peer));
    my ($cpu0, $pcpu0) = (cpu_ms($big->worker_pids),
                          cpu_ms($peer->worker_pids));
    scenario($name, @args);
    return unless @table && $table[-1]{scenario} eq $name;
    $table[-1]{rss_growth_kib} = rss($big, 'VmHWM') - $ours0;
    $table[-1]{peer_rss_growth_kib} = rss($peer, 'VmHWM') - $peer0;
    $table[-1]{cpu_ms_per_gib} = (cpu_ms($big->worker_pids) - $cpu0) / $gib;
    $table[-1]{peer_cpu_ms_per_gib} = (cpu_ms($peer->worker_pids) - $pcpu0)
                                      / $gib;
}

# (its rows' names, for --only)
# (parenthesised: =~ binds tighter than ".", and the block ran for any
# --only)
if (!$o{only} || ('peer: cached read, peer: read, cache off, peer: list,'
                  . ' peer: registrations, peer: upload 1 GiB, peer:'
                  . ' download 1 GiB') =~ /$o{only}/) {
    say_("starting the peer (FastAPI, 2 uvicorn workers,"
         . " pool=$o{pool} each)");
    my $peer = Peer->start($big, workers => 2, pool => $o{pool});
    my $pu = $peer->url('');
    # warm: both sides' connections opened and statements prepared
    for my $url ("/models/$id", "/models?name=$sub&limit=100") {
        local $o{seconds} = 1;
        wrk("$_$url", 64) for $u, $pu;
    }
    # GET $path of ours and of the peer, c=64
    my $get_both = sub {
        my ($name, $target, $path) = @_;
        scenario($name, $target, 'req/s', sub { wrk("$u$path", 64) },
                 sub { wrk("$pu$path", 64) }, count_base_errors => 1);
    };
    my $http_conf = sub {
        $big->{opt}{http} = shift;
        $big->reload_nginx;
        sleep 1;
    };
    $get_both->('peer: cached read', 10, "/models/$id");
    $http_conf->('modelreg_cache off;');
    $get_both->('peer: read, cache off', 3, "/models/$id");
    $http_conf->('');
    $get_both->('peer: list', 2, "/models?name=$sub&limit=100");
    scenario('peer: registrations (4 KiB)', 3, 'req/s',
             sub { wrk("$u/models", 16, script => "$d/reg.lua",
                       args => 'r' . $round++) },
             sub { wrk("$pu/models", 16, script => "$d/reg.lua",
                       args => 'p' . $round++) }, count_base_errors => 1);

    # the 1 GiB body registers "big" version 1: before each upload, the
    # side's previous one goes (ours by DELETE, the peer's row and file
    # here) and the other side's is renamed, so that it stays to download
    $big->delete("/models/$_")
        for split /\n/, $big->psql("SELECT id FROM models WHERE name = 'big'");
    my %last;
    my $upload = sub {
        my ($side, $url) = @_;
        return sub {
            if (my $prev = delete $last{$side}) {
                if ($side eq 'ours') {
                    $big->delete("/models/$prev");
                } else {
                    my $key = $big->psql("DELETE FROM models"
                                         . " WHERE id = '$prev'"
                                         . " RETURNING storage_key");
                    unlink $peer->store . "/$key";
                }
            }
            $big->psql("UPDATE models SET version = 'aside-' || id"
                       . " WHERE name = 'big' AND version = '1'");
            (my ($rate, $err), $last{$side}, my $lat) = upload_big($url);
            return ($rate, $err, $lat);
        };
    };
    my $gib = $o{mib} / 1024;
    scenario_peak($peer, 3 * $gib, 'peer: upload 1 GiB', 2, 'MiB/s',
                  $upload->(ours => "$u/models"),
                  $upload->(peer => "$pu/models"), count_base_errors => 1,
                  rounds => 3);
    # (uploads of their own when --only left the upload row out)
    $upload->($_, $_ eq 'ours' ? "$u/models" : "$pu/models")->()
        for grep { !$last{$_} } qw(ours peer);
    # 3 rounds of 2 downloads each
    scenario_peak($peer, 3 * 2 * $gib, 'peer: download 1 GiB', 2, 'MiB/s',
                  downloads("$u/models/$last{ours}/files", 2),
                  downloads("$pu/models/$last{peer}/files", 2),
                  count_base_errors => 1, rounds => 3);
    $peer->stop;
}
unlink $big_body[0] if @big_body;

# ---- the change feed at scale (issue 16): --clients keep-alive clients
# wait on /events?wait=60 of the 1k stack; what each costs a worker, and
# how soon a registration reaches all of them.  The clients are forked
# processes (--client_procs), each polling its share of the sockets with
# IO::Poll (core Perl: poll(2) over the sockets still to answer), so no
# process holds more than its share of descriptors, and the time of each
# answer is taken with Time::HiRes as it completes.

# the nearest-rank percentile of a list of numbers
sub pct {
    my ($p, @v) = @_;
    my @s = sort { $a <=> $b } @v;
    return 0 unless @s;
    my $i = int($p / 100 * @s + 0.999999) - 1;
    return $s[$i < 0 ? 0 : $i];
}

# one line of /proc/<pid>/status in KiB, 0 when absent
sub status_kib {
    my ($pid, $key) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (my $l = <$fh>) { return $1 if $l =~ /^$key:\s+(\d+)/ }
    return 0;
}

# the established connections of each worker on the stack's port:
# { pid => n }, by the socket inodes of /proc/net/tcp and /proc/<pid>/fd
sub worker_clients {
    my ($h) = @_;
    my $port = sprintf '%04X', $h->port;
    my %est;
    open my $fh, '<', '/proc/net/tcp' or die "/proc/net/tcp: $!";
    while (my $l = <$fh>) {
        my @f = split ' ', $l;
        next unless @f > 9 && $f[1] =~ /:$port$/ && $f[3] eq '01';
        $est{ $f[9] } = 1;
    }
    my %n;
    for my $pid ($h->worker_pids) {
        $n{$pid} = 0;
        opendir my $dh, "/proc/$pid/fd" or next;
        for (readdir $dh) {
            my $l = readlink "/proc/$pid/fd/$_" // next;
            $n{$pid}++ if $l =~ /^socket:\[(\d+)\]/ && $est{$1};
        }
    }
    return \%n;
}

# the CPU time of processes, in ms (utime + stime of /proc/<pid>/stat)
sub cpu_ms {
    my $ms = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $l = <$fh> // next;
        my @f = split ' ', substr $l, rindex($l, ')') + 2;
        $ms += ($f[11] + $f[12]) * 1000
             / POSIX::sysconf(POSIX::_SC_CLK_TCK());
    }
    return $ms;
}

# a client process: $n connections to $port, driven by lines on $cmd:
# "arm [<since>]" sends each a wait, after <since> or its last answer's
# "next" (then "sent"); "collect <s>" reads until every connection has
# had one answer (at most <s> seconds), and reports "done <answered>
# <with events> <errors> <CPU ms> <time>..." (each answer's time, not
# re-armed: the parent says "arm" once the round is measured); "quit"
sub feed_client {
    my ($port, $n, $cmd, $rep) = @_;
    require IO::Socket::INET;
    require IO::Poll;
    my @c;
    for (1 .. $n) {
        my $fh = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $port, Proto => 'tcp')
            or do { print $rep "failed connect: $!\n"; POSIX::_exit(1) };
        $fh->blocking(0);
        push @c, { fh => $fh, fd => fileno($fh), buf => '' };
    }
    print $rep "connected\n";
    my $ask = sub {
        my ($c) = @_;
        my $req = "GET /events?since=$c->{since}&wait=60 HTTP/1.1\r\n"
                . "Host: 127.0.0.1\r\n\r\n";
        my $w = syswrite $c->{fh}, $req;
        $c->{dead} = 1 unless defined $w && $w == length $req;
    };
    while (my $line = <$cmd>) {
        if ($line =~ /^arm ?(\S*)/) {
            my $since = $1;
            for (grep { !$_->{dead} } @c) {
                $_->{since} = $since if length $since;
                $ask->($_);
            }
            print $rep "sent\n";
        } elsif ($line =~ /^collect (\d+)/) {
            my $end = time + $1;
            my ($u0, $s0) = times;
            my ($events, $errors, @t) = (0, 0);
            my @todo = grep { !$_->{dead} } @c;
            $errors += @c - @todo;
            while (@todo && time < $end) {
                my @pf = map { ($_->{fd}, IO::Poll::POLLIN()) } @todo;
                IO::Poll::_poll(1000, @pf) > 0 or next;
                my @left;
                for my $i (0 .. $#todo) {
                    my $c = $todo[$i];
                    push(@left, $c), next unless $pf[2 * $i + 1];
                    my $r = sysread $c->{fh}, $c->{buf}, 65536,
                                    length $c->{buf};
                    if (!defined $r && $!{EAGAIN}) {
                        push @left, $c;
                        next;
                    }
                    if (!$r) {
                        $c->{dead} = 1;
                        $errors++;
                        next;
                    }
                    my $b = \$c->{buf};
                    my $he = index $$b, "\r\n\r\n";
                    my ($len) = $he < 0 ? ()
                              : substr($$b, 0, $he)
                                =~ /\r\nContent-Length:\s*(\d+)/i;
                    if (!defined $len || length($$b) < $he + 4 + $len) {
                        push @left, $c;
                        next;
                    }
                    my $at = time;
                    my $head = substr $$b, 0, $he;
                    my $body = substr $$b, $he + 4, $len;
                    substr($$b, 0, $he + 4 + $len) = '';
                    my ($next) = $body =~ /"next":"([^"]+)"/;
                    if ($head !~ m{^HTTP/1\.1 200 } || !defined $next) {
                        $errors++;
                        $c->{dead} = 1;
                        next;
                    }
                    push @t, $at;
                    $events++ unless $body =~ /"events":\[\]/;
                    $c->{since} = $next;
                }
                @todo = @left;
            }
            $errors += @todo;
            my ($u1, $s1) = times;
            my $cpu = ($u1 + $s1 - $u0 - $s0) * 1000;
            print $rep join(' ', 'done', scalar @t, $events, $errors, $cpu,
                            @t), "\n";
        } else {
            last;
        }
    }
    POSIX::_exit(0);
}

if (!$o{only} || 'change feed' =~ /$o{only}/) {
    my $n = $o{clients};
    my $procs = $o{client_procs};
    say_("change feed: $n clients waiting on /events?wait=60 ...");

    # descriptors: the client processes inherit ours, the workers get
    # worker_rlimit_nofile (the master runs as root, so it may set it past
    # our hard limit); each worker may hold every client (the kernel does
    # not share connections evenly), so each has room for all of them
    my $need = int($n / $procs) + 256;
    chomp(my $soft = `sh -c 'ulimit -n'`);
    if ($soft ne 'unlimited' && $soft < $need) {
        system('prlimit', "--pid=$$", "--nofile=$need:$need") == 0
            or die "prlimit --nofile=$need: cannot raise the limit\n";
    }
    my $per_worker = $n + 1024;
    $small->{opt}{worker_connections} = $per_worker;
    $small->{opt}{main} = 'worker_rlimit_nofile ' . ($per_worker + 1024)
                        . ';';
    # 16 connections per worker read every client's first wait: the queue
    # holds them all
    $small->{opt}{db} = 'pool=16 queue=' . ($per_worker) . ' timeout=30s';
    $small->{opt}{http} = "modelreg_events waiters=$per_worker;"
                        . " log_format feedbench '\$msec \$request_uri';";
    # nginx's time when it logged each answer: its cached time, i.e. the
    # start of the event-loop pass that answered it (the wake's result
    # arriving); the clients' times minus it are the writing and reading
    my $log = $small->dir . '/logs/feed.log';
    $small->{opt}{server} = "access_log $log feedbench buffer=256k"
                          . " flush=1s;";
    $small->reload_nginx;
    $small->wait_for(sub {
        my @w = $small->worker_pids;
        @w == 2 && !grep { status_kib($_, 'VmRSS') == 0 } @w
        && $small->get('/health')->{status} == 200
    }, 10);
    sleep 1;

    # the pool open and its statements prepared before "with none": the
    # same reads the clients will make, 64 at a time
    my $cur = $small->get('/events');
    die "GET /events: $cur->{status}" unless $cur->{status} == 200;
    my ($since) = $cur->{content} =~ /"next":"([^"]+)"/;
    wrk($small->url("/events?since=$since"), 64);

    # quiet: no query runs (the scrape's own at most) and none waits,
    # twice a second apart (each worker publishes its pool every second)
    my $quiet = sub {
        $small->wait_for(sub {
            my $ok = 0;
            for (1 .. 2) {
                my $m = $small->metrics;
                $ok++ if $m->{'modelreg_db_pool_connections{state="busy"}'}
                         <= 1 && !$m->{modelreg_db_pool_waiting};
                sleep 1.1 if $_ == 1;
            }
            $ok == 2;
        }, 120) or die "the feed's reads did not end in 120 s";
    };
    $quiet->();
    my @workers = $small->worker_pids;
    my %rss0 = map { $_ => status_kib($_, 'VmRSS') } @workers;
    my %anon0 = map { $_ => status_kib($_, 'RssAnon') } @workers;
    my %shm0 = map { $_ => status_kib($_, 'RssShmem') } @workers;

    my $t = time;
    my @kids;
    for my $k (1 .. $procs) {
        pipe my $cr, my $cw or die $!;
        pipe my $rr, my $rw or die $!;
        my $share = int($n / $procs) + ($k <= $n % $procs ? 1 : 0);
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $cw;
            close $rr;
            $rw->autoflush(1);
            # (never die here: that would stop the parent's stacks)
            eval { feed_client($small->port, $share, $cr, $rw) };
            print $rw "failed: $@\n";
            POSIX::_exit(1);
        }
        close $cr;
        close $rw;
        $cw->autoflush(1);
        push @kids, { pid => $pid, cmd => $cw, rep => $rr };
    }
    my $expect = sub {
        my ($what) = @_;
        for (@kids) {
            my $l = readline $_->{rep} // die "a client died\n";
            die "client: $l" unless $l =~ /^$what/;
        }
    };
    $expect->('connected');
    print { $_->{cmd} } "arm $since\n" for @kids;
    $expect->('sent');
    $quiet->();
    my $connect_s = time - $t;

    # memory with every client waiting
    my $held = worker_clients($small);
    my (@per, %w);
    for my $pid (@workers) {
        my $c = $held->{$pid} || 0;
        $w{$pid} = { clients => $c,
                     rss_kib => status_kib($pid, 'VmRSS') - $rss0{$pid},
                     anon_kib => status_kib($pid, 'RssAnon') - $anon0{$pid},
                     shmem_kib => status_kib($pid, 'RssShmem')
                                  - $shm0{$pid} };
        $w{$pid}{kib_per_client} = $c ? $w{$pid}{rss_kib} / $c : 0;
        push @per, $w{$pid}{kib_per_client} if $c;
    }
    say_(sprintf 'worker %d: %d clients, +%d KiB RSS (%.2f KiB each),'
                 . ' +%d KiB shared', $_, $w{$_}{clients}, $w{$_}{rss_kib},
                 $w{$_}{kib_per_client}, $w{$_}{shmem_kib})
        for @workers;
    say_(sprintf 'connected and armed in %.1f s', $connect_s);

    # registrations, each while every client waits
    my (@med, @p99, @answered, @post_ms, @rounds);
    for my $round (1 .. $o{registrations}) {
        print { $_->{cmd} } "collect 70\n" for @kids;
        my $log_at = -s $log // 0;
        my $cpu0 = cpu_ms(@workers);
        my $t0 = time;
        my $res = $small->register(name => "feed-bench-$round",
                                   version => '1');
        my $t1 = time;
        die "POST /models: $res->{status}" unless $res->{status} == 201;
        my ($got, $events, $errors, $ccpu, @ms) = (0, 0, 0, 0);
        for (@kids) {
            my $l = readline $_->{rep} // die "a client died\n";
            my (undef, $a, $e, $x, $c, @times) = split ' ', $l;
            $got += $a;
            $events += $e;
            $errors += $x;
            $ccpu += $c;
            push @ms, map { ($_ - $t0) * 1000 } @times;
        }
        # who had the CPU meanwhile: the clients must not be the bottleneck
        my $wcpu = cpu_ms(@workers) - $cpu0;
        my @srv;
        $small->wait_for(sub {
            open my $fh, '<', $log or return;
            seek $fh, $log_at, 0;
            @srv = map { /^(\S+) \/events\?/ ? ($1 - $t0) * 1000 : () }
                   <$fh>;
            @srv >= $got;
        }, 10);
        my $r = { answered => $got, with_event => $events,
                  workers_cpu_ms => $wcpu, clients_cpu_ms => $ccpu,
                  errors => $errors, post_ms => ($t1 - $t0) * 1000,
                  median_ms => median(@ms), p99_ms => pct(99, @ms),
                  max_ms => pct(100, @ms),
                  server_median_ms => median(@srv),
                  server_p99_ms => pct(99, @srv),
                  # the same after the POST's own answer (its fsyncs and
                  # commit): the delivery alone; below 0 when a client
                  # heard before the POST's client did
                  after_post_median_ms => median(@ms) - ($t1 - $t0) * 1000,
                  after_post_p99_ms => pct(99, @ms) - ($t1 - $t0) * 1000 };
        push @rounds, $r;
        say_(sprintf 'registration %d: %d answered (%d with the event,'
                     . ' %d errors), median %.1f ms, p99 %.1f ms, max %.1f'
                     . ' ms from the POST sent (which took %.1f ms; after its'
                     . ' answer: median %.1f, p99 %.1f); nginx wrote them:'
                     . ' median %.1f, p99 %.1f; CPU: workers %d ms, clients'
                     . ' %d ms', $round, $got,
                     $events, $errors, @$r{qw(median_ms p99_ms max_ms
                     post_ms after_post_median_ms after_post_p99_ms
                     server_median_ms server_p99_ms
                     workers_cpu_ms clients_cpu_ms)});
        # every client asks again (as a fleet does at once; here after
        # the round, so that the delay measured is the delivery's alone)
        print { $_->{cmd} } "arm\n" for @kids;
        $expect->('sent');
        $quiet->();
    }
    print { $_->{cmd} } "quit\n" for @kids;
    waitpid $_->{pid}, 0 for @kids;

    my $row = {
        scenario => "change feed ($n waiting)", kind => 'feed',
        clients => $n, client_procs => $procs, workers => \%w,
        kib_per_client => max(@per),
        connect_and_arm_s => $connect_s,
        median_ms => median(map { $_->{median_ms} } @rounds),
        p50_ms => median(map { $_->{median_ms} } @rounds),
        p99_ms => median(map { $_->{p99_ms} } @rounds),
        post_ms => median(map { $_->{post_ms} } @rounds),
        server_median_ms => median(map { $_->{server_median_ms} } @rounds),
        server_p99_ms => median(map { $_->{server_p99_ms} } @rounds),
        after_post_median_ms =>
            median(map { $_->{after_post_median_ms} } @rounds),
        after_post_p99_ms => median(map { $_->{after_post_p99_ms} } @rounds),
        answered => median(map { $_->{with_event} } @rounds),
        errors => List::Util::sum(map { $_->{errors} } @rounds),
        rounds => \@rounds,
        load => (split ' ', `cat /proc/loadavg`)[0] + 0,
    };
    push @table, $row;
    say_(sprintf 'change feed: %.2f KiB per client per worker; a'
                 . ' registration reached %d of %d: median %.1f ms, p99'
                 . ' %.1f ms', @$row{qw(kib_per_client answered clients
                                        median_ms p99_ms)});
}

# ---- the table

# a latency in ms: 3 significant digits at most, '-' when absent
sub ms {
    my ($v) = @_;
    return '-' unless defined $v;
    return sprintf $v < 10 ? '%.2f' : $v < 100 ? '%.1f' : '%.0f', $v;
}

my $fmt = "%-31s %10s %10s %6s %7s %6s %8s %8s %8s %s\n";
printf "\n$fmt", 'scenario', 'ours', 'baseline', 'ratio', 'target',
       'errors', 'p50 ms', 'p99 ms', 'base p99', 'rss growth';
for my $r (@table) {
    if (($r->{kind} // '') eq 'feed') {
        # a measured row, no baseline: memory and delay (p50 and p99 from
        # the POST sent until each client had the event)
        printf $fmt, $r->{scenario}, '-', '-', '-', '-', $r->{errors},
               ms($r->{p50_ms}), ms($r->{p99_ms}), '-', '';
        printf "    %.2f KiB per client per worker; a registration reached"
               . " %d; after the POST's answer: p50 %s, p99 %s ms\n",
               $r->{kib_per_client}, $r->{answered},
               ms($r->{after_post_median_ms}), ms($r->{after_post_p99_ms});
        next;
    }
    printf $fmt, $r->{scenario}, sprintf('%.1f', $r->{ours}),
           sprintf('%.1f', $r->{baseline}), sprintf('%.2f', $r->{ratio}),
           defined $r->{target} ? ">= $r->{target}" : '-', $r->{errors},
           ms($r->{p50_ms}), ms($r->{p99_ms}), ms($r->{baseline_p99_ms}),
           (defined $r->{rss_growth_kib}
               ? sprintf('%.1f MiB', $r->{rss_growth_kib} / 1024) : '-')
           . (!defined $r->{target} || $r->{met} ? '' : ' (below target)');
    printf "%-31s (the peer's workers: rss growth %.1f MiB; CPU per GiB:"
           . " ours %d ms, the peer's %d ms)\n", '',
           $r->{peer_rss_growth_kib} / 1024,
           @$r{qw(cpu_ms_per_gib peer_cpu_ms_per_gib)}
        if defined $r->{peer_rss_growth_kib};
}
print "units: req/s, or MiB/s for uploads and downloads; medians of"
    . " $o{rounds} alternating rounds of $o{seconds}s (3 for rows without"
    . " a target); p50 and p99 in ms: the medians of the rounds' (wrk"
    . " --latency, pgbench -l)"
    . join('', map { "; $_->{scenario}: of $_->{latency_samples} transfers" }
               grep { $_->{latency_samples} } @table)
    . "\n";
print 'PostgreSQL: ' . join(', ', map { "$_=$pg_settings{$_}" } @durability)
    . "\n";
for my $k (sort keys %timings_s) {
    my $v = $timings_s{$k};
    printf "%s: %s\n", $k, ref $v
        ? join(', ', map { sprintf '%s %.1f s', $_, $v->{$_} } sort keys %$v)
        : sprintf('%.1f s', $v);
}
$timings_s{total} = time - $bench_t0;
printf "total: %.0f s\n", $timings_s{total};

# a partial run (--only) must not replace the record of a full one
my $json_file = "$FindBin::Bin/results" . ($o{only} ? '-partial' : '')
              . '.json';
open my $out, '>', $json_file or die $!;
print $out $json->pretty->encode({ date => scalar gmtime, %o,
                                   cores => `nproc` + 0,
                                   postgresql => \%pg_settings,
                                   timings_s => \%timings_s,
                                   scenarios => \@table });
close $out;
for my $h ($big, $small, @stacks) {
    my @crash = $h->error_log =~ /^(.*exited on signal.*)$/mg;
    print "worker crashed: $_\n" for @crash;
}
