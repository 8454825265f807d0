# Proves: the Debian package (make deb: libnginx-mod-http-modelreg, built
# with Debian's module recipe, lintian without errors) drops into the
# machine's stock nginx: installed (apt-get install ./x.deb), it loads
# through /etc/nginx/modules-enabled and leaves the example site disabled;
# with the module loaded and no registry configured, the stock default
# site answers byte for byte as before the install (all but Date) and its
# workers hold the same kinds of sockets (none connected) and set the
# same timers as before (none of the module's); the example site, enabled with a harness PostgreSQL
# (migrated by the packaged modelreg-migrate) and a file store in a temp
# dir, passes nginx -t and serves the smoke flow (register, list,
# download, delete) and /docs's assets, while the default site still
# answers as before; the purge leaves /etc/nginx as it was (a listing
# of every entry: type, mode, owner, target or SHA-256).
#
# Root only; skipped without dpkg-buildpackage, when the package is
# installed already, or when anything but systemd's nginx holds port 80
# or /run/nginx.pid: the stock configuration is run as a separate
# instance (nginx -c /etc/nginx/nginx.conf, whose default site listens on
# 80 and whose pid file is /run/nginx.pid).  A system nginx that systemd
# runs is stopped first.  The END block stops the test's instance,
# removes its site, purges the package and starts the system nginx again
# (if it stopped it), also when a test dies or the test is signalled.
# MODELREG_DEB=path tests a .deb built before (else: make deb).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Cwd ();
use Digest::SHA qw(sha256_hex);
use File::Find;
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Modelreg::Harness;

my $PKG      = 'libnginx-mod-http-modelreg';
my $TOP      = $Modelreg::Harness::TOP;
my $ETC      = '/etc/nginx';
my $PIDFILE  = '/run/nginx.pid';
my $ENABLED  = "$ETC/modules-enabled/50-mod-http-modelreg.conf";
my $SITE     = "$ETC/sites-available/modelreg";
my $TEST_SITE = "$ETC/sites-enabled/modelreg-t50";
my $MOD_SO   = '/usr/lib/nginx/modules/ngx_http_modelreg_module.so';
# (apt-get, not dpkg: it waits for the lock another install may hold)
my $APT      = 'DEBIAN_FRONTEND=noninteractive apt-get -y -q'
               . ' -o DPkg::Lock::Timeout=600';

my ($h, $we_installed, $master, $system_nginx);

# (END runs on exit and die; a signal exits, so that it runs then too)
$SIG{$_} = sub { diag "signal: exiting"; exit 1 } for qw(INT TERM HUP);

END {
    local $?;
    stop_stock() if $master;
    unlink $TEST_SITE if -e $TEST_SITE || -l $TEST_SITE;
    system("$APT purge $PKG >/dev/null") if $we_installed && installed();
    system('systemctl', 'start', 'nginx') if $system_nginx;
}

plan skip_all => 'needs root (dpkg -i into the stock nginx)' if $> != 0;
plan skip_all => 'no dpkg-buildpackage (make deb-build-deps)'
    unless grep { -x "$_/dpkg-buildpackage" } split /:/, $ENV{PATH};
plan skip_all => "$PKG is installed already: not this test's to remove"
    if installed();
# the machine's own nginx: stopped for the test (and started again at
# its end) when systemd runs it, as on a CI machine where installing
# Debian's nginx started it; left alone, and the test skipped, otherwise
if (-s $PIDFILE && alive(slurp($PIDFILE) =~ /(\d+)/ ? $1 : 0)) {
    plan skip_all => "an nginx runs ($PIDFILE), not systemd's: not"
                     . ' clobbering it'
        if system('systemctl is-active --quiet nginx 2>/dev/null');
    $system_nginx = 1;
    system('systemctl', 'stop', 'nginx') == 0
        or BAIL_OUT('systemctl stop nginx failed');
    diag 'stopped the system nginx (systemctl); the END block starts it';
}
plan skip_all => 'port 80 is in use: the stock default site needs it'
    if IO::Socket::INET->new(PeerAddr => '127.0.0.1:80', Timeout => 2);

$h = Modelreg::Harness->new(no_nginx => 1);
my $dir = $h->dir;
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);

# ---- the package -----------------------------------------------------

my $deb = $ENV{MODELREG_DEB};
unless ($deb) {
    my $t0 = time;
    my $out = qx{make -s -C $TOP deb 2>&1};
    is($? >> 8, 0, 'make deb') or diag $out;
    ($deb) = grep { !/-dbgsym_/ } glob "$TOP/build/deb/${PKG}_*.deb";
    note sprintf 'make deb: %.0f s', time - $t0;
    my $lintian = slurp("$TOP/build/deb/lintian.log") // '';
    my @tags = $lintian =~ /^([EW]: .*)$/mg;
    is_deeply([grep { /^E/ } @tags], [], 'lintian: no errors');
    note "lintian: $_" for @tags;
}
ok($deb && -f $deb, "the package: " . ($deb // '-')) or BAIL_OUT('no .deb');
$deb = Cwd::abs_path($deb);

# ---- the stock nginx before the package ------------------------------

my $etc_before = listing($ETC);
ok(!-e "$ETC/modules-enabled/50-mod-http-modelreg.conf",
   'not loaded before');

# what the default site answers: each request raw, on its own connection
my @plain = (
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "GET /missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Length: 2\r\n\r\nhi",
    "GET / HTTP/1.0\r\n\r\n",
    "GET /../x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    "BREW / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
);

my $before = stock_phase('before');
cmp_ok(scalar @{ $before->{answers} }, '==', scalar @plain,
       'before: the default site answered each request');

# ---- installed: the module loaded, no registry configured ------------

my $out = qx{$APT install $deb 2>&1};
is($? >> 8, 0, 'apt-get install the .deb') or diag $out;
$we_installed = 1;
ok(-f $MOD_SO, "the module: $MOD_SO");
is(readlink($ENABLED), '/usr/share/nginx/modules-available/mod-http-modelreg.conf',
   'modules-enabled links the load_module snippet');
is(slurp('/usr/share/nginx/modules-available/mod-http-modelreg.conf'),
   "load_module modules/ngx_http_modelreg_module.so;\n",
   'the snippet dh_nginx wrote');
ok(-f $SITE && !grep({ (readlink($_) // '') eq $SITE } glob "$ETC/sites-enabled/*"),
   'the example site is available, not enabled');
ok(-f "$ETC/snippets/modelreg_storage.conf", 'the S3 snippet');
ok(-x '/usr/sbin/modelreg-migrate', 'the migrations runner');
my $st = (stat '/var/lib/modelreg/objects')[4];
is(scalar getpwuid($st // 0), 'www-data', 'the example store is www-data\'s');

$out = qx{nginx -t -c $ETC/nginx.conf 2>&1};
is($? >> 8, 0, 'nginx -t: the stock configuration with the module') or diag $out;

my $loaded = stock_phase('loaded');
is_deeply($loaded->{answers}, $before->{answers},
          'loaded: the default site answers byte for byte as before');
ok(!grep({ /^X-Request-Id:/mi } @{ $loaded->{answers} }),
   'loaded: no X-Request-Id');
is_deeply($loaded->{sockets}, $before->{sockets},
          'loaded: each idle worker holds the sockets it held before')
    or diag explain $loaded->{sockets}, $before->{sockets};
is_deeply($loaded->{sockets_after}, $before->{sockets_after},
          'loaded: and after the requests')
    or diag explain $loaded->{sockets_after}, $before->{sockets_after};
is_deeply($loaded->{timers}, $before->{timers},
          'loaded: the workers set the timers they set before')
    or diag explain $loaded->{timers}, $before->{timers};
ok(!grep({ /established|syn-sent/ } @{ $loaded->{sockets} }),
   'loaded: no worker holds a connection');
is($loaded->{modelreg}, 0, 'loaded: no modelreg line in the debug log');

# conf/examples/ (README "Configurations to copy") ships as the package's
# examples
my $EXAMPLES = '/usr/share/doc/libnginx-mod-http-modelreg/examples';
is_deeply([map { m{([^/]+)$} } sort glob "$EXAMPLES/*"],
          [map { m{([^/]+)$} } sort glob "$TOP/conf/examples/*"],
          "conf/examples/ in $EXAMPLES");

# ---- the example site ------------------------------------------------

$h->psql_admin('CREATE DATABASE modelreg_deb OWNER modelreg');
(my $conninfo = $h->conninfo) =~ s/dbname=modelreg/dbname=modelreg_deb/;
$out = qx{/usr/sbin/modelreg-migrate '$conninfo' 2>&1};
is($? >> 8, 0, 'modelreg-migrate') or diag $out;
is_deeply([$out =~ /^applying (\S+)/mg],
          [map { m{([^/]+)$} } sort glob '/usr/share/modelreg/sql/*.sql'],
          'modelreg-migrate applied each migration');
$out = qx{/usr/sbin/modelreg-migrate '$conninfo' 2>&1};
is_deeply([$out =~ /^applying (\S+)/mg], [],
          'modelreg-migrate again: nothing to apply') or diag $out;

my $store = "$dir/objects";
mkdir $store or die "$store: $!";
system('chown', 'www-data:www-data', $store) == 0 or die 'chown';
my $port = Modelreg::Harness::free_port();
my $site = slurp($SITE);
my $pg = $h->pg_port;
ok($site =~ s/listen  127\.0\.0\.1:8111;/listen  127.0.0.1:$port;/
   && $site =~ s/port=5432 dbname=modelreg /port=$pg dbname=modelreg_deb /
   && $site =~ s{fs /var/lib/modelreg/objects;}{fs $store;},
   'the example site, on a free port, the harness database, a temp store');
write_file($TEST_SITE, $site);

$out = qx{nginx -t -c $ETC/nginx.conf 2>&1};
is($? >> 8, 0, 'nginx -t with the example site') or diag $out;

start_stock("$dir/registry-debug.log");
my $url = "http://127.0.0.1:$port";
ok($h->wait_for(sub { $http->get("$url/health/ready")->{status} == 200 }, 60),
   'the registry is ready');

my $zip = Modelreg::Harness::zip_of('model.xml', 'weights ' x 1000);
my ($body, $ct) = Modelreg::Harness::multipart(
    { name => 'file', filename => 'model.zip', type => 'application/zip',
      value => $zip },
    { name => 'name', value => 'deb-smoke' },
    { name => 'version', value => '1' },
    { name => 'precision', value => 'FP16' });
my $res = $http->post("$url/models",
                      { content => $body, headers => { 'Content-Type' => $ct } });
is($res->{status}, 201, 'register') or diag $res->{content};
my $id = $res->{content};
like($id, qr/^[0-9a-f-]{36}$/, 'register: the new id');
ok($res->{headers}{'x-request-id'}, 'the registry answers with X-Request-Id');

$res = $http->get("$url/models?name=DEB-SMOKE");
is($res->{status}, 200, 'list');
like($res->{content}, qr/"\Q$id\E"/, 'list: the new model');

$res = $http->get("$url/models/$id/files");
is($res->{status}, 200, 'download');
ok($res->{content} eq $zip, 'download: the bytes registered');

$res = $http->delete("$url/models/$id");
is($res->{status}, 204, 'delete');
is($http->get("$url/models/$id")->{status}, 404, 'deleted: 404');
my $left = qx{psql -X -At '$conninfo' -c 'SELECT count(*) FROM models' 2>&1};
is($left + 0, 0, 'the database has no model left') or diag $left;

if (-d '/usr/share/modelreg/swagger-ui') {
    $res = $http->get("$url/docs/swagger-ui.css");
    is($res->{status}, 200, '/docs/swagger-ui.css from the package');
}

my $reg = sockets();
ok(grep({ /established/ } @$reg),
   'the registry\'s workers do hold connections (the measure sees them)')
    or diag explain $reg;

my $with = [map { strip_date(raw(80, $_)) } @plain];
is_deeply($with, $before->{answers},
          'with the registry beside it: the default site answers as before');
stop_stock();

unlink $TEST_SITE or die "$TEST_SITE: $!";

# ---- purged ----------------------------------------------------------

$out = qx{$APT purge $PKG 2>&1};
is($? >> 8, 0, 'purge') or diag $out;
$we_installed = 0 unless installed();
ok(!-e $MOD_SO, 'the module is gone');
my $etc_after = listing($ETC);
is_deeply($etc_after, $etc_before, 'purge leaves /etc/nginx as it was')
    or diag explain [grep { ($etc_after->{$_} // '') ne ($etc_before->{$_} // '') }
                     sort keys %{ { %$etc_before, %$etc_after } }];

done_testing();

# ---- helpers ---------------------------------------------------------

sub installed {
    my $s = qx{dpkg-query -W -f='\${Status}' $PKG 2>/dev/null};
    return $s =~ /install ok installed|config-files/;
}

sub alive { Modelreg::Harness::alive(@_) }
sub slurp { Modelreg::Harness::slurp(@_) }
sub write_file { Modelreg::Harness::write_file(@_) }

# every entry under $root: type, mode, owner, and target or content hash
sub listing {
    my ($root) = @_;
    my %l;
    find({ no_chdir => 1, wanted => sub {
        my @s = lstat $_;
        my $what = -l _ ? 'l ' . readlink($_)
                 : -d _ ? 'd'
                 : 'f ' . sha256_hex(slurp($_) // '');
        $l{$_} = sprintf '%o %d:%d %s', $s[2] & 07777, $s[4], $s[5], $what;
    } }, $root);
    return \%l;
}

# the stock configuration as its own instance; a debug log beside
# /var/log/nginx's (Debian's nginx is built --with-debug)
sub start_stock {
    my ($debug) = @_;
    my $out = qx{nginx -c $ETC/nginx.conf -g 'error_log $debug debug;' 2>&1};
    die "nginx: $out" if $?;
    $h->wait_for(sub { -s $PIDFILE }, 30) or die "no $PIDFILE";
    ($master) = slurp($PIDFILE) =~ /(\d+)/;
    $h->wait_for(sub { IO::Socket::INET->new(PeerAddr => '127.0.0.1:80') },
                 30) or die 'port 80 does not answer';
}

sub stop_stock {
    return unless $master;
    for my $sig ('QUIT', 'KILL') {
        my @all = ($master, Modelreg::Harness::children_of($master));
        kill $sig, @all;
        last if $h->wait_for(sub { !grep { alive($_) } @all }, 20);
    }
    $master = undef;
    unlink $PIDFILE if -e $PIDFILE && !alive(slurp($PIDFILE) =~ /(\d+)/);
}

sub workers { sort { $a <=> $b } Modelreg::Harness::children_of($master) }

# one raw request on its own connection; the whole answer
sub raw {
    my ($port, $req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 10) or die "connect: $!";
    print $s $req;
    local $/;
    my $all = <$s>;
    close $s;
    return $all // '';
}

sub strip_date { my ($a) = @_; $a =~ s/^Date: [^\r\n]*\r\n//mi; $a }

# each worker's sockets by kind (a TCP socket with its state: listen,
# established...; unix), as a sorted list per worker, the workers sorted:
# fd numbers differ from run to run (the channels to the other workers)
sub sockets {
    my %kind;
    my @st = qw(? established syn-sent syn-recv fin-wait1 fin-wait2
                time-wait close close-wait last-ack listen closing);
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        for (split /\n/, slurp($f) // '') {
            my @c = split ' ';
            next unless @c > 9 && $c[3] =~ /^[0-9A-F]{2}$/;
            $kind{$c[9]} = 'tcp-' . ($st[hex $c[3]] // $c[3]);
        }
    }
    for (split /\n/, slurp('/proc/net/unix') // '') {
        my @c = split ' ';
        $kind{$c[6]} = 'unix' if @c > 6 && $c[6] =~ /^\d+$/;
    }
    my @by;
    for my $pid (workers()) {
        my @kinds;
        for my $fd (glob "/proc/$pid/fd/*") {
            my $t = readlink($fd) // next;
            push @kinds, $kind{$1} // 'other' if $t =~ /^socket:\[(\d+)\]/;
        }
        push @by, join ' ', sort @kinds;
    }
    return [sort @by];
}

# the stock instance: its workers' sockets and timers idle, the default
# site's answers, then its workers' sockets and timers again
sub stock_phase {
    my ($name) = @_;
    my $debug = "$dir/$name-debug.log";
    start_stock($debug);
    # every worker in its event loop: whatever it opens or sets at start
    # (a module's init_process) is done and logged by then
    my $n = qx{getconf _NPROCESSORS_ONLN} + 0 || 1;    # worker_processes auto
    $h->wait_for(sub {
        my @w = workers();
        my $log = slurp($debug) // '';
        @w == $n && !grep { $log !~ /\b$_#\d+: worker cycle/ } @w;
    }, 60) or die "$name: the workers did not start";
    my %r = (sockets => sockets());
    $r{answers} = [map { strip_date(raw(80, $_)) } @plain];
    $r{sockets_after} = sockets();
    stop_stock();
    my $log = slurp($debug) // '';
    # "event timer add: <fd>: <ms>:<when>": the kinds (ms), as a multiset
    # (two workers' lines interleave)
    $r{timers} = [sort map { /event timer add: \d+: (\d+):/ ? $1 : () }
                  split /\n/, $log];
    $log =~ s/\Q$dir\E//g;    # (the harness's temp dir is modelreg-t-*)
    $r{modelreg} = () = $log =~ /modelreg/g;
    note "$name: " . scalar(@{ $r{timers} }) . ' timers; workers\' sockets: '
         . join(' / ', @{ $r{sockets} });
    return \%r;
}
