# Proves: README "Operations" says what the code does, so the docs
# cannot drift:
# - every message the C sources log above info (ngx_log_error and the
#   pool's and listener's wrappers) is in the log table, at its level;
# - every series GET /metrics emits is in the metrics table with its
#   type and labels, and every row of the table is emitted;
# - "Upgrades": a reload after the module file was replaced at the same
#   path keeps the old module (the new workers map the old, deleted
#   inode) and keeps the counters; a reload to a load_module of a new
#   path runs the new file (its inode mapped, the registry serving) with
#   counters that start again;
# - "Migrating from the Python service": its ops-migrate block, run as
#   written between two registries, copies every model with its id,
#   created_date, every field and its bytes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Digest::SHA qw(sha256_hex);
use Modelreg::Harness;

my $TOP = $Modelreg::Harness::TOP;
my $readme = Modelreg::Harness::slurp("$TOP/README.md");
my ($ops) = $readme =~ /^## Operations\n(.*?)^## /ms;
BAIL_OUT('README has no "## Operations"') unless $ops;
my ($logs, $metrics) = $ops =~ /^### Logs and metrics\n(.*?)^`GET \/metrics`(.*?)^### /ms;
BAIL_OUT('no "### Logs and metrics" tables') unless $metrics;

# ---- the log table

my %level = (EMERG => 'emerg', ALERT => 'alert', CRIT => 'crit',
             ERR => 'error', WARN => 'warn', NOTICE => 'notice');

# nginx's names of system calls (ngx_open_file_n: "open()")
my %syscall;
for my $h (glob '/usr/share/nginx/src/src/os/unix/*.h') {
    my $t = Modelreg::Harness::slurp($h);
    $syscall{$1} = $2 while $t =~ /^#define\s+(ngx_\w+_n)\s+"(.*)"/mg;
}

# a format as a pattern for the table: its literal text in order, at
# least 24 characters of it (or all), "modelreg: " off; a placeholder
# (%V, %ui, ...) matches whatever the table writes for it (KEY, N, …)
sub pattern {
    my ($fmt) = @_;
    $fmt =~ s/^modelreg: //;
    $fmt =~ s/\\"/"/g;
    my ($re, $text) = ('', 0);
    for my $t (split /(%\*?[a-zA-Z]+)/, $fmt) {
        last if $text >= 24;
        if ($t =~ /^%/) {
            $re .= '.*?';
            next;
        }
        my @w = split /(\s+)/, $t, -1;
        while (@w && $text < 24) {
            my $w = shift @w;
            $text += length $w;
            $re .= $w =~ /^\s+$/ ? '\s*' : quotemeta $w;
        }
    }
    return $re;
}

my @rows = grep { /^\| / && !/^\| (level|---)/ } split /\n/, $logs;
my @msgs;
for my $file (glob "$TOP/ngx_modelreg/*.c") {
    my $src = Modelreg::Harness::slurp($file);
    (my $base = $file) =~ s{.*/}{};
    my @calls;
    while ($src =~ /\bngx_log_error\(\s*(\(?[^,]+?),\s*[^,]+,\s*[^,]+,(.*?)\);/sg) {
        push @calls, [$1, $2];
    }
    while ($src =~ /\bngx_http_modelreg_pg_log_error\([^,]+,\s*(NGX_LOG_\w+),\s*("[^"]*")/sg) {
        push @calls, [$1, $2];
    }
    while ($src =~ /\bngx_http_modelreg_(?:pg_conn_error\(conn,|cache_listen_fail\()\s*((?:"[^"]*"\s*)+)\)/sg) {
        push @calls, ['NGX_LOG_ERR', $1];
    }
    while ($src =~ /\? ("failed its ping") : ("cannot LISTEN")/g) {
        push @calls, ['NGX_LOG_ERR', $1], ['NGX_LOG_ERR', $2];
    }
    for my $c (@calls) {
        my ($lvl, $args) = @$c;
        next if $lvl =~ /^NGX_LOG_(INFO|DEBUG)$/;
        # the format: the literals (and nginx's _n names) before the
        # first argument
        my ($head) = $args =~ /^\s*((?:(?:"(?:[^"\\]|\\.)*"|ngx_\w+_n)\s*)+)/;
        my $fmt = join '', ($head // '') =~ /"((?:[^"\\]|\\.)*)"/g;
        # (" \"%s\" failed" follows nginx's name of the call: "open()")
        $fmt = ($syscall{$1} // $1) . $fmt
            if $args =~ /^\s*(ngx_\w+_n)\b/;
        my $frag = pattern($fmt);
        my ($l) = $lvl =~ /^NGX_LOG_(\w+)$/;
        push @msgs, { where => $base, fmt => $fmt, frag => $frag,
                      level => $l ? $level{$l} : '' };
    }
}
cmp_ok(scalar @msgs, '>', 60, scalar(@msgs) . ' messages above info in the sources');
my %once;
for my $m (grep { !$once{"$_->{frag} $_->{level}"}++ } @msgs) {
    my @in = grep { /$m->{frag}/ } @rows;
    my $ok = @in && ($m->{level} eq ''
                     || grep { /^\| [^|]*\b$m->{level}\b/ } @in);
    ok($ok, "$m->{where}: \"$m->{fmt}\" is in the log table"
            . ($m->{level} ? " at $m->{level}" : ''))
        or diag "pattern: $m->{frag}";
}

# ---- the metrics table, against what /metrics emits

my %doc;
for (split /\n/, $metrics) {
    next unless /^\| `(modelreg_\w+)(?:\{([\w,]*)\})?` \| (\w+) \|/;
    $doc{$1} = { labels => join(',', sort split /,/, $2 // ''),
                 type => $3 };
}

my $mods = tempdir('modelreg-mod-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $mods;
my $orig = $Modelreg::Harness::MODULE;
my $so = "$mods/ngx_http_modelreg_module.so";
copy($Modelreg::Harness::MODULE, $so) or die "copy: $!";
$Modelreg::Harness::MODULE = $so;

my $h = Modelreg::Harness->new(gc => '1s');
my $id = $h->new_model(name => 'docs', version => '1');
is($h->get("/models/$id/files")->{status}, 200, 'a download');
$h->get("/models/$id") for 1 .. 2;

my $page = $h->get('/metrics')->{content};
my (%type, %emitted);
$type{$1} = $2 while $page =~ /^# TYPE (\S+) (\S+)$/mg;
for (split /\n/, $page) {
    next if /^#/;
    my ($name, $labels) = /^(\w+)(?:\{(.*)\})? \S+$/ or next;
    my $family = $name;
    if ($name =~ /^(\w+)_(?:bucket|sum|count)$/
        && ($type{$1} // '') eq 'histogram') {
        $family = $1;
    }
    my @keys = grep { $_ ne 'le' } ($labels // '') =~ /(\w+)="/g;
    $emitted{$family}{$_} = 1 for @keys;
    $emitted{$family} //= {};
}
is(join(' ', sort keys %emitted), join(' ', sort keys %type),
   'every sample belongs to a TYPE line');
is(join(' ', sort keys %doc), join(' ', sort keys %emitted),
   'the table lists exactly the series /metrics emits ('
   . scalar(keys %emitted) . ')');
for my $name (sort keys %emitted) {
    next unless $doc{$name};
    is($doc{$name}{type}, $type{$name}, "$name: type $type{$name}");
    is($doc{$name}{labels}, join(',', sort keys %{ $emitted{$name} }),
       "$name: labels");
}

# ---- "Upgrades": what a reload does with a new module

# the workers' mappings of files in $mods, as "inode path" lines
sub maps {
    my %seen;
    for my $pid ($h->worker_pids) {
        for (split /\n/, Modelreg::Harness::slurp("/proc/$pid/maps") // '') {
            $seen{"$1 $2"} = 1 if m{ (\d+) +(\Q$mods\E/\S+(?: \(deleted\))?)$};
        }
    }
    return sort keys %seen;
}

sub reload_to_new_workers {
    my (@old) = $h->worker_pids;
    $h->reload_nginx;
    return $h->wait_for(sub {
        my @new = $h->worker_pids;
        @new && !grep { my $o = $_; grep { $_ == $o } @new } @old
    }, 30);
}

sub health_count {
    $h->metrics->{'modelreg_http_requests_total{route="/health",status="200"}'}
        // 0;
}

# the body of GET /health, past the harness (whose OpenAPI check would
# refuse the patched module's answer)
sub health_body { $h->http->get($h->url('/health'))->{content} }

my $ino = (stat $so)[1];
$h->get('/health') for 1 .. 5;
my $before = health_count();
is(health_body(), '{"status":"ok"}', 'the module answers "ok"');

# the "new version": the same module, answering {"status":"OK"}
my $bin = Modelreg::Harness::slurp($so);
is(($bin =~ s/\{"status":"ok"\}\0/{"status":"OK"}\0/g), 1,
   'a new version of the module (its /health literal patched)');
Modelreg::Harness::write_file("$so.new", $bin);
chmod 0755, "$so.new";
rename "$so.new", $so or die "rename: $!";
my $new_ino = (stat $so)[1];

ok(reload_to_new_workers(), 'replaced at the same path, then a reload');
is(join("\n", maps()), "$ino $so (deleted)",
   'the new workers map the old module (its inode, deleted), not the new');
is(health_body(), '{"status":"ok"}', 'and run the old code');
cmp_ok(health_count(), '>=', $before, 'the counters go on');

my $so2 = "$mods/ngx_http_modelreg_module-2.so";
rename $so, $so2 or die "rename: $!";
$Modelreg::Harness::MODULE = $so2;
ok(reload_to_new_workers(), 'load_module of a new path, then a reload');
my @maps = maps();
ok(grep({ $_ eq "$new_ino $so2" } @maps),
   'the new workers map the new file') or diag join "\n", @maps;
ok(grep({ $_ eq "$ino $so (deleted)" } @maps), 'and the old one')
    or diag join "\n", @maps;
is(health_body(), '{"status":"ok"}',
   'and still run the old code (RTLD_GLOBAL: the old symbols win)');
cmp_ok(health_count(), '>=', $before, 'the counters go on');
my $id2 = $h->new_model(name => 'docs', version => '2');
is($h->get("/models/$id2/files")->{status}, 200, 'registers and downloads');

# nginx's binary upgrade: a new master reads the configuration afresh
my $master = $h->nginx_pid;
my @old_workers = $h->worker_pids;
kill 'USR2', $master;
my $new;
ok($h->wait_for(sub {
       -e $h->dir . '/nginx.pid.oldbin' && ($new = $h->nginx_pid)
       && $new != $master && Modelreg::Harness::children_of($new) }, 30),
   'USR2: a new master and its workers');
kill 'WINCH', $master;
ok($h->wait_for(sub { !grep { Modelreg::Harness::alive($_) } @old_workers },
                30), 'WINCH: the old workers exit');
kill 'QUIT', $master;
ok($h->wait_for(sub { !Modelreg::Harness::alive($master) }, 30),
   'QUIT: the old master exits');
$h->{nginx_pid} = $new;
is(join("\n", maps()), "$new_ino $so2", 'the workers map the new file only');
is(health_body(), '{"status":"OK"}', 'and run the new code');
cmp_ok(health_count(), '<', $before, 'with new counters');
is($h->get("/models/$id2/files")->{status}, 200, 'downloads');

# ---- "Migrating from the Python service": old = $h, new = $n

my %extra = (
    a => { precision => 'FP16', score => 0, created_date => '2023-01-02 03:04:05.000006 UTC',
           overview => '{"a":{"b":[1,2]}}', labels => '["x",{"y":1}]',
           optimization_capabilities => '{"int8":true}',
           project_id => 'p1', project_name => 'Proj', category => 'Detection',
           target_device => 'GPU', target_device_type => 'dGPU',
           format => 'openvino', origin => 'Geti', architecture => 'YOLO' },
    b => { name => '@at-sign', score => 0.25 },
);
my %bytes;
for my $k (sort keys %extra) {
    my $zip = Modelreg::Harness::zip_of('model.xml', "$k " x 500);
    my $mid = $h->new_model(name => "migrate-$k", version => '3',
                            file => { value => $zip }, %{ $extra{$k} });
    $bytes{$mid} = $zip;
}
my $old = $h->get('/models')->{json};
$bytes{$id} = $h->get("/models/$id/files")->{content};
$bytes{$id2} = $h->get("/models/$id2/files")->{content};

$h->psql_admin('CREATE DATABASE migrated OWNER modelreg');
my $conn = 'host=127.0.0.1 port=' . $h->pg_port . ' dbname=migrated'
         . ' user=modelreg' . Modelreg::Harness::conninfo_password();
my ($rc, $out) = Modelreg::Harness::run_cmd(
    "PGOPTIONS='-c client_min_messages=warning'", "$TOP/sql/migrate",
    Modelreg::Harness::shell_quote($conn));
is($rc, 0, 'a migrated empty database') or diag $out;
$Modelreg::Harness::MODULE = $orig;
my $n = Modelreg::Harness->new(pg_of => $h, database =>
    "modelreg_database \"$conn\" pool=4 queue=64 timeout=5s;");

my ($block) = $ops =~ /<!-- ops-migrate:start -->\n```sh\n(.*?)```/s;
ok($block, 'the ops-migrate block');
$block =~ s/^[A-Z]+=.*\n//mg;
my $dir = $h->dir;
Modelreg::Harness::write_file("$dir/migrate.sh", "set -euo pipefail\n"
    . "cd $dir\nOLD=http://127.0.0.1:" . $h->port
    . " NEW=http://127.0.0.1:" . $n->port . "\n$block");
($rc, $out) = Modelreg::Harness::run_cmd('bash', "$dir/migrate.sh");
is($rc, 0, 'it runs') or diag $out;
is($out, '', 'and names no model it could not copy');

my %new = map { $_->{id} => $_ } @{ $n->get('/models')->{json} || [] };
is(scalar keys %new, scalar @$old, scalar(@$old) . ' models copied');
for my $m (@$old) {
    my $c = $new{$m->{id}} or next;
    my @diff = grep { $_ !~ /^(last_updated_date|file_url|file_name)$/
                      && $h->{json}->encode([$m->{$_}])
                         ne $h->{json}->encode([$c->{$_}]) } keys %$m;
    is("@diff", '', "$m->{name}: every field but last_updated_date,"
                    . " file_url and file_name is the same");
    my $f = $n->get("/models/$m->{id}/files");
    ok($f->{content} eq $bytes{$m->{id}} && sha256_hex($f->{content})
       eq $c->{sha256}, "$m->{name}: its bytes");
}
is($new{(grep { $_->{name} eq 'migrate-a' } @$old)[0]{id}}{precision}[0],
   'fp16', 'precision lowercase');

$n->finish;
$h->finish;
done_testing();
