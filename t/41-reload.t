# Proves: reloads and a binary upgrade lose nothing under load (issue 12,
# item 4).
# - Ten `nginx -s reload`s during 20 s of mixed load from client
#   processes (t/lib/Modelreg/Load.pm: registrations with bytes, reads,
#   lists, downloads, updates, deletes): every request is answered with a
#   success or a 404/409 that races between clients explain (no 503, no
#   connection error), and afterwards every model answered 201 downloads
#   with its bytes, no row lacks its object, no object its row, no spool
#   file is left, no worker crashed.
# - The same across nginx's no-downtime binary upgrade (USR2, WINCH, QUIT)
#   to a rebuilt module: the module file at the load_module path is
#   replaced (a new inode, different bytes) before USR2, so the new master
#   loads it; the new workers map the new file (/proc/PID/maps), the old
#   master and its workers are gone, and the load saw no failure.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use Modelreg::Harness;
use Modelreg::Load;

# the module at a path of this test's own, so that it can be replaced
my $mods = tempdir('modelreg-mod-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $mods;
my $so = "$mods/ngx_http_modelreg_module.so";
copy($Modelreg::Harness::MODULE, $so) or die "copy: $!";
$Modelreg::Harness::MODULE = $so;

my $h = Modelreg::Harness->new(workers => 2, gc => '1s',
                               db => 'pool=4 queue=256 timeout=5s');

# a failure here: anything but a success, or a 404/409 of a race
sub failures {
    my ($recs) = @_;
    my $sum = Modelreg::Load::summary($recs);
    my @bad = @{ $sum->{others} };
    push @bad, grep { $_->{status} == 503 } @$recs;
    return ($sum, @bad);
}

sub checks {
    my ($name, $recs) = @_;
    my ($sum, @bad) = failures($recs);
    ok($sum->{ok} > 100, "$name: $sum->{ok} requests succeeded");
    is(scalar @bad, 0, "$name: no request failed ($sum->{requests})")
        or diag join "\n", map { Modelreg::Load::describe($_) }
                           grep { defined } @bad[0 .. 19];
    for my $c (Modelreg::Load::check_data($h, $recs)) {
        my ($ok, $what, @diag) = @$c;
        ok($ok, "$name: $what") or diag join ' ', @diag;
    }
    note "$name: " . join ', ', map { "$_->[0] x$_->[1]" }
                                Modelreg::Load::breakdown($recs);
}

# ---- ten reloads in 20 s of load

my $load = Modelreg::Load->start(port => $h->port, clients => 4,
                                 seconds => 20, tag => 'reload')->running;
my $old = join ' ', sort $h->worker_pids;
for (1 .. 10) {
    sleep 1.8;
    $h->reload_nginx;
}
my @recs = $load->wait;
is($load->killed, 0, 'every client ended in time');
isnt(join(' ', sort $h->worker_pids), $old, 'the workers are new ones');
checks('10 reloads', \@recs);

# ---- a binary upgrade to a rebuilt module

# "rebuilt": other bytes (a section of its own), a new inode at the same
# path, as `make build` installs it (copy and rename)
my $before = sha256_hex(Modelreg::Harness::slurp($so));
my ($rc, $out) = Modelreg::Harness::run_cmd('objcopy', '--add-section',
    ".modelreg_upgrade=$0", '--set-section-flags',
    '.modelreg_upgrade=noload,readonly', $so, "$so.new");
is($rc, 0, 'the module is rebuilt') or diag $out;
rename "$so.new", $so or die "rename: $!";
my $ino = (stat $so)[1];
isnt(sha256_hex(Modelreg::Harness::slurp($so)), $before,
     'into other bytes');

$load = Modelreg::Load->start(port => $h->port, clients => 4, seconds => 14,
                              tag => 'upgrade')->running;
sleep 3;
my $master = $h->nginx_pid;
my @old_workers = $h->worker_pids;
my $pidfile = $h->dir . '/nginx.pid';
kill 'USR2', $master;
my $new;
ok($h->wait_for(sub {
       -e "$pidfile.oldbin" && ($new = $h->nginx_pid) && $new != $master
       && Modelreg::Harness::children_of($new) == 2 }, 30),
   'USR2: a new master with its own workers');
sleep 2;                            # both generations serve
kill 'WINCH', $master;
ok($h->wait_for(sub { !grep { Modelreg::Harness::alive($_) } @old_workers },
                30), 'WINCH: the old workers finish and exit');
sleep 2;
kill 'QUIT', $master;
ok($h->wait_for(sub { !Modelreg::Harness::alive($master) }, 30),
   'QUIT: the old master exits');
$h->{nginx_pid} = $new;
@recs = $load->wait;
is($load->killed, 0, 'every client ended in time');

my @workers = $h->worker_pids;
is(scalar @workers, 2, 'two new workers');
for my $pid (@workers) {
    my $maps = Modelreg::Harness::slurp("/proc/$pid/maps") // '';
    my @lines = grep { m{ \Q$so\E( \(deleted\))?$} } split /\n/, $maps;
    ok(@lines && !grep({ /\(deleted\)$/ || !/ $ino +\Q$so\E$/ } @lines),
       "worker $pid maps the new module file (inode $ino)")
        or diag join "\n", @lines;
}
checks('binary upgrade', \@recs);

$h->finish;
done_testing();
