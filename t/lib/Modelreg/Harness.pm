package Modelreg::Harness;

# Starts what a test needs on free loopback ports, in a private temp
# directory: a PostgreSQL cluster (with sql/ migrations applied) and nginx
# with the built module.  Everything is stopped when the object goes away.
#
#   my $h = Modelreg::Harness->new(db => 'pool=2 timeout=3s');
#   my $res = $h->get('/health');
#   ...
#   $h->finish;    # checks that no worker crashed
#
# Options also: pg_options => '-c name=value ...' for PostgreSQL (after
# the harness's own, so they win), durable => 1 for a PostgreSQL with
# fsync, synchronous_commit and full_page_writes on (the tests run with
# them off; the benchmark turns them on), main => 'text' for nginx's
# main context (e.g. a thread_pool), files => 'text' for how nginx sends
# files (default "sendfile on;"), stub_status => 1 for nginx's connection
# counters on a port of their own (active_connections, server_sockets),
# log_level => "debug" for the module's traces (nginx built
# --with-debug; the default is $ENV{MODELREG_LOG_LEVEL} or "info"),
# db_password => 'pw' for a
# PostgreSQL that wants the registry's role to give a password (scram;
# default $ENV{MODELREG_DB_PASSWORD}), s3_token => 'tok' for an S3
# session token, s3_via => PORT (nginx reaches the S3 store through a
# relay on that port, e.g. Modelreg::FaultProxy).
#
# Secrets: finish() also checks that no secret this harness configured
# (S3 keys and session token, the SigV4 signing keys derived from the
# secret key, the Geti token, the database password) is in nginx's logs
# or in any answer a test read through it, beyond what nginx itself logs
# of the store's request headers at debug level (check_secrets).
#
# MODELREG_NGINX and MODELREG_MODULE name the nginx binary and the module
# (default: nginx on PATH, build/ngx_http_modelreg_module.so); "make
# test-asan" names its sanitizer builds and MODELREG_SANITIZER_REPORTS, a
# directory where each test file gets one for its sanitizer reports.
#
# When every harness of a test file has stopped, the file fails (exit
# code 1, the reasons printed) if a worker exited on a signal or with an
# error code that the test did not cause (worker_killed), or a sanitizer
# wrote a report.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use Scalar::Util qw(refaddr weaken);

use Modelreg::OpenAPI;

our $TOP = abs_path(dirname(__FILE__) . '/../../..');
our $NGINX = $ENV{MODELREG_NGINX}
    || (grep { -x } map { "$_/nginx" } split /:/,
        "$ENV{PATH}:/usr/sbin")[0] || 'nginx';
our $MODULE = abs_path($ENV{MODELREG_MODULE}
                       || "$TOP/build/ngx_http_modelreg_module.so");

# this file's sanitizer reports go to a directory of its own, so that the
# file that caused one fails: log_path for every process started from
# here (the last log_path in the options wins); workers run as nobody
our $REPORTS;
if (my $all = $ENV{MODELREG_SANITIZER_REPORTS}) {
    (my $name = $0) =~ s{^(?:.*/)?t/}{};
    $name =~ s{\.t$}{};
    $name =~ tr{/}{-};
    $REPORTS = abs_path($all) . "/$name";
    remove_tree($REPORTS);
    make_path($REPORTS);
    chmod 01777, $REPORTS;
    for my $v ('ASAN_OPTIONS', 'UBSAN_OPTIONS') {
        $ENV{$v} = join ':', grep { length } $ENV{$v} // '',
                                              "log_path=$REPORTS/sanitizer";
    }
}

# true under make test-asan: memory measured is then ASan's too (its
# quarantine keeps freed blocks, its redzones pad each allocation)
sub sanitized { $REPORTS ? 1 : 0 }

# what went wrong outside any test's assertions: reported at the end
my @PROBLEMS;

my $IS_ROOT = $> == 0;

# every live harness, so that an END block can stop what it started even
# when a test dies: File::Temp's own END would remove the temp directory
# (and the pid files in it) first otherwise
my @LIVE;
my $LIVE_PID = $$;
my ($PG_BIN) = sort { $b cmp $a } glob('/usr/lib/postgresql/*/bin');

sub new {
    my ($class, %opt) = @_;

    die "build the module first (make build): $MODULE\n" unless -f $MODULE;

    my $self = bless {
        opt  => \%opt,
        dir  => tempdir('modelreg-t-XXXXXX', TMPDIR => 1,
                        CLEANUP => !$ENV{MODELREG_KEEP}),
        json => JSON::PP->new->utf8->canonical,
        pid  => $$,
        started => time,
        db_password => $opt{db_password} // $ENV{MODELREG_DB_PASSWORD},
        seen_secrets => {},
    }, $class;

    chmod 0755, $self->{dir};
    push @LIVE, $self;
    weaken($LIVE[-1]);
    $self->{http} = HTTP::Tiny->new(timeout => $opt{client_timeout} || 30,
                                    keep_alive => 0);

    $self->{storage} = $opt{storage} // $ENV{MODELREG_STORAGE} // 'fs';
    if (my $other = $opt{pg_of}) {
        # another harness's PostgreSQL: a second node of one registry
        $self->{pg_port} = $other->{pg_port};
        $self->{db_password} = $other->{db_password};
        $self->{pg_ready} = 1;
        $self->{pg_shared} = 1;
    } else {
        $self->start_pg unless $opt{no_pg};
    }
    $self->start_swift if $self->{storage} eq 's3' && !$opt{no_nginx};
    if ($opt{geti}) {
        require Modelreg::FakeGeti;
        $self->{geti} = Modelreg::FakeGeti->start(%{ $opt{geti} });
    }
    $self->start_nginx unless $opt{no_nginx};

    return $self;
}

sub dir { $_[0]{dir} }

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub run_cmd {
    my (@cmd) = @_;
    my $out = qx{@cmd 2>&1};
    return ($? >> 8, $out);
}

sub as_postgres {
    my (@cmd) = @_;
    return $IS_ROOT ? ('runuser', '-u', 'postgres', '--', @cmd) : @cmd;
}

# ---- PostgreSQL -------------------------------------------------------

sub start_pg {
    my ($self) = @_;

    my $pgdir = "$self->{dir}/pg";
    unless (-d $pgdir) {
        make_path($pgdir, "$self->{dir}/pgsock");
        chmod 0755, "$self->{dir}/pgsock";
        if ($IS_ROOT) {
            system('chown', 'postgres:', $pgdir, "$self->{dir}/pgsock") == 0
                or die "chown";
        }
        my ($rc, $out) = run_cmd(as_postgres("$PG_BIN/initdb", '-D', $pgdir,
                                 '-U', 'postgres', '-A', 'trust', '-E', 'UTF8',
                                 '--locale=C.UTF-8', '--no-sync'));
        die "initdb failed: $out" if $rc;
        $self->{pg_port} = free_port();
    }

    my $log = "$self->{dir}/pgsock/postgres.log";
    my ($rc, $out) = run_cmd(as_postgres("$PG_BIN/pg_ctl", '-D', $pgdir,
        '-l', $log, '-w', '-s', '-o',
        "'-p $self->{pg_port} -k $self->{dir}/pgsock"
        . " -c listen_addresses=127.0.0.1 "
        . $self->pg_sync_options(qw(fsync synchronous_commit
                                    full_page_writes))
        . ($self->{opt}{pg_options} ? " $self->{opt}{pg_options}" : '')
        . "'", 'start'));
    die "pg_ctl start failed: $out\n" . (slurp($log) // "") if $rc;

    unless ($self->{pg_ready}) {
        $self->psql_admin("CREATE ROLE modelreg LOGIN");
        $self->psql_admin("CREATE DATABASE modelreg OWNER modelreg");
        my ($mrc, $mout) = run_cmd("PGOPTIONS='-c client_min_messages=warning'",
                                   "$TOP/sql/migrate", "'" . $self->conninfo
                                   . "'");
        die "migrations failed: $mout" if $mrc;
        $self->require_password($pgdir) if defined $self->{db_password};
        $self->{pg_ready} = 1;
    }
}

# the registry's role must give its password (scram-sha-256) from now
# on, on TCP and the socket; "postgres" stays trusted for the harness
sub require_password {
    my ($self, $pgdir) = @_;
    my $pw = $self->{db_password};
    $self->secret('database password', $pw);
    (my $q = $pw) =~ s/'/''/g;
    $self->psql_admin("SET password_encryption = 'scram-sha-256';"
                      . " ALTER ROLE modelreg PASSWORD '$q'");
    my $hba = "$pgdir/pg_hba.conf";
    write_file($hba, "host all modelreg 127.0.0.1/32 scram-sha-256\n"
                     . "local all modelreg scram-sha-256\n" . slurp($hba));
    my ($rc, $out) = run_cmd(as_postgres("$PG_BIN/pg_ctl", '-D', $pgdir,
                                         '-s', 'reload'));
    die "pg_ctl reload: $out" if $rc;
}

sub stop_pg {
    my ($self) = @_;
    return if $self->{pg_shared};
    return unless $self->{pg_port} && -d "$self->{dir}/pg";
    run_cmd(as_postgres("$PG_BIN/pg_ctl", '-D', "$self->{dir}/pg", '-m',
                        'fast', '-w', '-s', 'stop'));
}

sub pg_port { $_[0]{pg_port} }

# "-c fsync=off ..." for the settings named: off for the tests' speed,
# on (PostgreSQL's defaults, as in production) with durable => 1
sub pg_sync_options {
    my ($self, @names) = @_;
    my $v = $self->{opt}{durable} ? 'on' : 'off';
    return join ' ', map { "-c $_=$v" } @names;
}

# every process a process started (from /proc)
sub children_of {
    my ($parent) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = slurp($stat) // next;
        my ($pid, $ppid) = $s =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        push @pids, $pid if $ppid == $parent;
    }
    return @pids;
}

# a process that exists and is not a zombie
sub alive {
    my ($pid) = @_;
    my $s = slurp("/proc/$pid/stat") // return 0;
    return $s !~ /^\d+ \(.*\) Z/;
}

sub conninfo {
    my ($self) = @_;
    return "host=127.0.0.1 port=$self->{pg_port} dbname=modelreg"
           . " user=modelreg" . $self->conninfo_password;
}

# " password='...'" when the role has one (conninfo quoting); also as a
# function, for a test that writes its own conninfo before the harness
sub conninfo_password {
    my ($self) = @_;
    my $pw = ref $self ? $self->{db_password} : $ENV{MODELREG_DB_PASSWORD};
    return '' unless defined $pw;
    $pw =~ s/([\\'])/\\$1/g;
    return " password='$pw'";
}

sub psql_admin {
    my ($self, $sql) = @_;
    my ($rc, $out) = run_cmd('psql', '-X', '-q', '-At', '-h', '127.0.0.1',
                             '-p', $self->{pg_port}, '-U', 'postgres',
                             '-v', 'ON_ERROR_STOP=1', '-c', shell_quote($sql));
    die "psql: $out" if $rc;
    return $out;
}

# one statement as the registry's own role; returns rows as "a|b" lines
sub psql {
    my ($self, $sql) = @_;
    my ($rc, $out) = run_cmd('psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
                             shell_quote($self->conninfo), '-c',
                             shell_quote($sql));
    die "psql: $out" if $rc;
    chomp $out;
    return $out;
}

# a psql session held open (e.g. to keep a lock); close with ->end
sub psql_session {
    my ($self) = @_;
    open(my $fh, '|-', 'psql -X -q -v ON_ERROR_STOP=1 '
         . shell_quote($self->conninfo) . ' >/dev/null')
        or die "psql: $!";
    $fh->autoflush(1);
    return Modelreg::Harness::Session->new($fh);
}

# ---- replication (t/42-failover.t) -------------------------------------

# A streaming standby of the cluster on port $o{from} (default: this
# harness's own), made by pg_basebackup -R into "$dir/$name", started on a
# free port (or $o{port}); its walreceiver's application_name is $name,
# for synchronous_standby_names.  Returns its port.
sub start_standby {
    my ($self, $name, %o) = @_;
    my $from = $o{from} // $self->{pg_port};
    my $port = $o{port} // free_port();
    my ($dir, $sock) = ("$self->{dir}/$name", "$self->{dir}/$name-sock");

    make_path($dir, $sock);
    chmod 0700, $dir;
    chmod 0755, $sock;
    system('chown', 'postgres:', $dir, $sock) == 0 or die "chown"
        if $IS_ROOT;
    my ($rc, $out) = run_cmd(as_postgres("$PG_BIN/pg_basebackup", '-D', $dir,
        '-R', '-X', 'stream', '-c', 'fast', '-U', 'postgres', '-d',
        "'host=127.0.0.1 port=$from application_name=$name'"));
    die "pg_basebackup failed: $out" if $rc;

    $self->{clusters}{$port} = $dir;
    ($rc, $out) = run_cmd(as_postgres("$PG_BIN/pg_ctl", '-D', $dir, '-l',
        "$sock/postgres.log", '-w', '-s', '-o',
        "'-p $port -k $sock -c listen_addresses=127.0.0.1 "
        . $self->pg_sync_options(qw(fsync full_page_writes)) . "'",
        'start'));
    die "pg_ctl start (standby) failed: $out\n"
        . (slurp("$sock/postgres.log") // "") if $rc;
    return $port;
}

sub cluster_dir {
    my ($self, $port) = @_;
    return (defined $port && $self->{clusters}{$port}) || "$self->{dir}/pg";
}

# pg_ctl promote: the standby on $port becomes a primary
sub promote_pg {
    my ($self, $port) = @_;
    my ($rc, $out) = run_cmd(as_postgres("$PG_BIN/pg_ctl", '-D',
                             $self->cluster_dir($port), '-w', '-s',
                             'promote'));
    die "pg_ctl promote failed: $out" if $rc;
}

# SIGKILL to the postmaster on $port and to every process it started, at
# once (the server is gone as if its machine were); returns when they are
# gone.  Its postmaster.pid goes too, so no pg_ctl later signals a pid
# that the system has given to another process.
# (no port: the harness's own cluster; start_pg brings it back through
# crash recovery)
sub kill_pg {
    my ($self, $port) = @_;
    my $dir = $self->cluster_dir($port);
    my ($pm) = (slurp("$dir/postmaster.pid") // '') =~ /^(\d+)/
        or die "no postmaster in $dir";
    my @pids = ($pm, children_of($pm));
    kill 'KILL', @pids;
    for (1 .. 200) {
        # gone, or a zombie that init has yet to reap
        last unless grep { (slurp("/proc/$_/stat") // ') Z') !~ /\) Z/ }
                    @pids;
        sleep 0.01;
    }
    unlink "$dir/postmaster.pid";
}

# psql as the registry's role on the cluster at $port; "a|b" lines
sub psql_at {
    my ($self, $port, $sql) = @_;
    local $self->{pg_port} = $port;
    return $self->psql($sql);
}

sub stop_standbys {
    my ($self) = @_;
    for my $dir (values %{ $self->{clusters} || {} }) {
        run_cmd(as_postgres("$PG_BIN/pg_ctl", '-D', $dir, '-m', 'fast',
                            '-w', '-s', 'stop')) if -e "$dir/postmaster.pid";
    }
}

# ---- nginx ------------------------------------------------------------

sub nginx_conf {
    my ($self, %o) = @_;

    my $d = $self->{dir};
    my $opt = $self->{opt};
    my $workers = $opt->{workers} || 1;
    my $db = exists $opt->{database} ? $opt->{database}
           : "modelreg_database \"" . $self->conninfo . "\" "
             . ($opt->{db} || 'pool=4 queue=64 timeout=5s') . ";";
    my $http = $opt->{http} || '';
    if ($opt->{tls} && !$self->{tls_port}) {
        $self->{tls_port} = free_port();
        make_path("$d/tls");
        my ($rc, $out) = run_cmd('openssl', 'req', '-x509', '-newkey',
            'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
            # nginx checks the name as DNS, libcurl an address as IP
            '-addext', 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1', '-keyout',
            "$d/tls/key.pem", '-out', "$d/tls/cert.pem");
        die "openssl: $out" if $rc;
    }
    my $gc = $opt->{gc} ? " gc_interval=$opt->{gc}" : '';
    my ($storage, $include) = ("modelreg_storage fs $d/objects$gc;", '');
    if ($self->{storage} eq 's3') {
        # (s3_via: the port of a relay in front of the store)
        my $endpoint = "http://127.0.0.1:"
                     . ($opt->{s3_via} || $self->{s3_port});
        my $snippet = "$TOP/conf/modelreg_storage.conf";
        my $tls = $opt->{tls};
        if ($tls) {
            # a TLS front for the store, in this same nginx, with a
            # self-signed certificate, trusted by us or not
            $endpoint = "https://127.0.0.1:$self->{tls_port}";
            $http .= " server { listen 127.0.0.1:$self->{tls_port} ssl;"
                   . " ssl_certificate $d/tls/cert.pem;"
                   . " ssl_certificate_key $d/tls/key.pem;"
                   . " location / { proxy_pass http://127.0.0.1:$self->{s3_port};"
                   . " proxy_set_header Host \$http_host;"
                   . " client_max_body_size 0; } }";
            my $text = slurp($snippet);
            $text =~ s{/etc/ssl/certs/ca-certificates\.crt}{$d/tls/cert.pem}
                if $tls eq 'trusted';
            $snippet = "$d/modelreg_storage.conf";
            write_file($snippet, $text);
        }
        $storage = "modelreg_storage s3 endpoint=$endpoint"
                 . " bucket=models region=us-east-1"
                 . (($tls // '') eq 'trusted'
                    ? " ssl_trusted_certificate=$d/tls/cert.pem" : '')
                 . " access_key_file=$d/s3_access"
                 . " secret_key_file=$d/s3_secret spool=$d/spool"
                 . (defined $opt->{s3_token}
                    ? " session_token_file=$d/s3_token" : '')
                 . " part_size=" . ($opt->{part_size} || '64m') . "$gc;";
        $include = "include $snippet;";
    }
    $storage = $opt->{storage_conf} if exists $opt->{storage_conf};
    if (my $g = $self->{geti}) {
        write_file("$d/geti_token", ($opt->{geti_use_token} // $g->token)
                                    . "\n");
        $http .= " modelreg_geti " . $g->url . " org=" . $g->org
               . " workspace=" . $g->workspace . " token_file=$d/geti_token"
               . ($opt->{geti_params} ? " $opt->{geti_params}" : '') . ";";
    }
    my $status = '';
    if ($opt->{stub_status}) {
        # on its own port, so that reading it is no request to the API;
        # after the API's server, whose listener stays the first (the
        # Geti sync asks the registry at the first one)
        $self->{status_port} ||= free_port();
        $status = " server { listen 127.0.0.1:$self->{status_port};"
               . " access_log off; location = /_status { stub_status;"
               . " allow 127.0.0.1; deny all; } }";
    }
    # (worker_connections: bench.pl's 10,000 waiting clients need more)
    my $connections = $opt->{worker_connections} || 2048;
    my $main = $opt->{main} || '';
    my $files = $opt->{files} || 'sendfile on;';
    # a new binary (USR2) gets only the environment that "env" keeps
    $main .= join '', map { "\nenv $_;" }
                      grep { exists $ENV{$_} }
                      qw(ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS);
    my $level = $opt->{log_level} || $ENV{MODELREG_LOG_LEVEL} || 'info';
    my $server = $opt->{server} || '';
    my $location = $opt->{location}
                   || "location / { modelreg; client_max_body_size 0; }";
    # GET /docs's assets (swagger-ui-dist, make deps), as the shipped
    # confs serve them; a test that mounts its own names it in location
    $location = docs_location('/docs/') . "\n        $location"
        unless $location =~ m{location\s+/docs/};

    return <<"CONF";
load_module $MODULE;
daemon on;
master_process on;
worker_processes $workers;
pid $d/nginx.pid;
error_log $d/logs/error.log $level;
$main
events { worker_connections $connections; }
http {
    access_log $d/logs/access.log;
    $files
    client_body_temp_path $d/tmp/client_body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    $db
    $storage
    $http
    server {
        listen 127.0.0.1:$self->{port};
        $server
        $location
        $include
    }
    $status
}
CONF
}

# the static location of swagger-ui's files at $uri, as the shipped confs
sub docs_location {
    my ($uri) = @_;
    return "location $uri { alias $TOP/build/swagger-ui/; types { text/css"
         . " css; application/javascript js; image/png png; } }";
}

sub start_nginx {
    my ($self) = @_;
    my $d = $self->{dir};

    make_path("$d/logs", "$d/tmp");
    $self->{port} ||= free_port();

    write_file("$d/nginx.conf", $self->nginx_conf);
    $self->note_secrets;

    # (by its path: a binary upgrade, USR2, executes the master's argv[0]
    # without searching PATH)
    my ($rc, $out) = run_cmd($NGINX, '-p', "$d/", '-c', "$d/nginx.conf",
                             '-e', "$d/logs/error.log");
    die "nginx failed to start: $out" if $rc;
    $self->{nginx_pid} = $self->nginx_pid;

    for (1 .. 100) {
        my $res = $self->{http}->get($self->url('/health'));
        return if $res->{status} != 599;
        sleep 0.05;
    }
    die "nginx did not answer /health:\n" . slurp("$d/logs/error.log");
}

# nginx with a whole configuration of the test's own (t/52's examples)
# instead of the harness's: written as this harness's nginx.conf, so its
# answers are judged against it and finish() reads its logs; it must
# write its pid to nginx.pid and its error log to logs/error.log under
# this harness's directory (the nginx prefix).  The client sends to
# $o{port}, over verified TLS with $o{ca} (a CA file) when given.  Runs
# nginx -t first; returns its (exit code, output), and starts nginx only
# when it passed.
sub start_conf {
    my ($self, $conf, %o) = @_;
    my $d = $self->{dir};
    make_path("$d/logs");
    write_file("$d/nginx.conf", $conf);
    $self->{port} = $o{port};
    if ($o{ca}) {
        $self->{scheme} = 'https';
        $self->{http} = HTTP::Tiny->new(timeout => 30, keep_alive => 0,
            verify_SSL => 1, SSL_options => { SSL_ca_file => $o{ca} });
    }
    my @args = ('-p', "$d/", '-c', "$d/nginx.conf", '-e',
                "$d/logs/error.log");
    my ($rc, $out) = nginx_test(@args);
    return ($rc, $out) if $rc;
    my ($src, $sout) = run_cmd($NGINX, @args);
    die "nginx failed to start: $sout" if $src;
    $self->{nginx_pid} = $self->nginx_pid
        or die "no $d/nginx.pid: the configuration writes it elsewhere";
    return ($rc, $out);
}

# ---- Swift (S3) ------------------------------------------------------

sub start_swift {
    my ($self) = @_;
    $self->{s3_port} ||= free_port();
    my ($rc, $out) = run_cmd("$TOP/conf/swift-local", 'start',
                             "$self->{dir}/swift", $self->{s3_port});
    die "swift failed to start: $out" if $rc;
    write_file("$self->{dir}/s3_access", "modelreg:s3\n");
    write_file("$self->{dir}/s3_secret", "modelreg-secret\n");
    write_file("$self->{dir}/s3_token", "$self->{opt}{s3_token}\n")
        if defined $self->{opt}{s3_token};
    my ($token, $url) = split ' ', slurp("$self->{dir}/swift/run/swift-auth");
    $self->{swift} = { token => $token, url => $url };
}

sub stop_swift {
    my ($self) = @_;
    return unless $self->{s3_port} && -d "$self->{dir}/swift";
    run_cmd("$TOP/conf/swift-local", 'stop', "$self->{dir}/swift");
}

# every Swift server (and its memcached) dies at once; start_swift brings
# it back on the same S3 port with the same data
sub kill_swift {
    my ($self) = @_;
    my @pids = grep { $_ } map { chomp(my $p = slurp($_) // ''); $p }
               glob("$self->{dir}/swift/run/*.pid");
    kill 'KILL', @pids;
    $self->wait_for(sub { !grep { alive($_) } @pids }, 10);
}

sub s3_port { $_[0]{s3_port} }
sub storage { $_[0]{storage} }
sub geti { $_[0]{geti} }

# Swift's own API on the bucket (a container): for tests to look inside
sub swift_request {
    my ($self, $method, $path) = @_;
    return $self->{http}->request($method, "$self->{swift}{url}/$path",
        { headers => { 'X-Auth-Token' => $self->{swift}{token} } });
}

# nginx -s reload: new workers, the same master
sub reload_nginx {
    my ($self) = @_;
    write_file("$self->{dir}/nginx.conf", $self->nginx_conf);
    $self->note_secrets;
    kill 'HUP', $self->{nginx_pid};
}

sub stop_nginx {
    my ($self) = @_;
    my $pid = delete $self->{nginx_pid} or return;
    kill 'QUIT', $pid;
    for (1 .. 200) {
        return unless kill 0, $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
}

sub nginx_pid {
    my ($self) = @_;
    my $pid = slurp("$self->{dir}/nginx.pid") // return;
    chomp $pid;
    return $pid;
}

sub worker_pids {
    my ($self) = @_;
    return children_of($self->nginx_pid);
}

# a line of /proc/<pid>/status ("VmRSS", "VmHWM", "VmData"), in KiB
sub proc_kib {
    my ($pid, $key) = @_;
    my $s = slurp("/proc/$pid/status") // '';
    my ($kb) = $s =~ /^$key:\s+(\d+) kB/m or die "no $key for $pid";
    return $kb;
}

# VmHWM of <pid> restarts at its RSS of now; returns that, in KiB
sub reset_peak {
    my ($pid) = @_;
    open my $fh, '>', "/proc/$pid/clear_refs" or die "clear_refs: $!";
    print $fh "5\n";
    close $fh;
    return proc_kib($pid, 'VmRSS');
}

# why gdb cannot attach to a worker here, or nothing
sub gdb_missing {
    return 'gdb is not installed' unless grep { -x "$_/gdb" }
                                         split /:/, $ENV{PATH};
    my $scope = slurp('/proc/sys/kernel/yama/ptrace_scope') // 0;
    return "ptrace_scope $scope: gdb may not attach to a worker"
        if $scope >= 3 || ($scope >= 1 && !$IS_ROOT);
    return;
}

# gdb on process <pid> (non-stop: a breakpoint stops only its thread),
# running the given commands, then letting it run; returns once attached
sub gdb_attach {
    my ($pid, $log, @commands) = @_;
    my $ready = "$log.ready";
    unlink $ready;
    open(my $gdb, '|-', "gdb -q -nx -iex 'set non-stop on' -p $pid"
                        . " >$log 2>&1") or die "gdb: $!";
    $gdb->autoflush(1);
    print $gdb join "\n", 'set pagination off', 'set confirm off', @commands,
                          'continue -a &', "shell touch $ready", '';
    my $deadline = time + 30;
    sleep 0.05 while !-e $ready && time < $deadline;
    die "gdb did not attach:\n" . (slurp($log) // '') unless -e $ready;
    # (a thread's stop at the attach may be reported after "continue -a",
    # and it then stays stopped: t/55's worker, with its 30 threads of the
    # thread pool, kept its main one so in the two runs before this; each
    # is let go until none is)
    my $stopped;
    for (1 .. 100) {
        $stopped = grep { (slurp("$_/stat") // '') =~ /^\d+ \(.*\) t /s }
                   glob("/proc/$pid/task/*");
        last unless $stopped;
        print $gdb "continue -a &\n";
        sleep 0.1;
    }
    die "gdb left $stopped threads stopped:\n" . (slurp($log) // '')
        if $stopped;
    return $gdb;
}

# every breakpoint gone, the process let go: its main thread stopped by
# gdb first (state "t"), and a stop left pending by the interrupt undone
sub gdb_detach {
    my ($gdb, $pid) = @_;
    print $gdb "interrupt -a\n";
    my $deadline = time + 10;
    sleep 0.05 while time < $deadline
                     && (slurp("/proc/$pid/stat") // '') !~ /^\d+ \(.*\) t /;
    print $gdb "delete\ndetach\nquit\n";
    close $gdb;
    kill 'CONT', $pid;
}

# nginx -t on a configuration text; returns (exit code, output)
sub nginx_t {
    my ($self, $conf) = @_;
    my $d = $self->{dir};
    make_path("$d/logs", "$d/tmp");
    my $f = "$d/test-" . ++$self->{nconf} . '.conf';
    write_file($f, $conf);
    return nginx_test('-p', "$d/", '-c', $f, '-e', "$d/logs/nginx-t.log");
}

# nginx -t with these arguments; returns (exit code, output).  Its main()
# returns without freeing the configuration it read (a process that only
# reads it): LeakSanitizer is not asked about it
sub nginx_test {
    my (@args) = @_;
    local $ENV{ASAN_OPTIONS} = "$ENV{ASAN_OPTIONS}:detect_leaks=0"
        if defined $ENV{ASAN_OPTIONS};
    return run_cmd($NGINX, '-t', @args);
}

sub error_log { slurp("$_[0]{dir}/logs/error.log") // '' }

# ---- HTTP -------------------------------------------------------------

sub port { $_[0]{port} }
sub url { ($_[0]{scheme} // 'http') . "://127.0.0.1:$_[0]{port}$_[1]" }
sub http { $_[0]{http} }

sub request {
    my ($self, $method, $path, $opt) = @_;
    my $res = $self->{http}->request($method, $self->url($path), $opt || {});
    $self->scan_answer("$method $path", $res);
    $res->{json} = eval { $self->{json}->decode($res->{content}) }
        if ($res->{headers}{'content-type'} // '') eq 'application/json'
           && length $res->{content};
    $self->openapi_check($method, $path, $res);
    return $res;
}

sub get    { my $s = shift; $s->request('GET', @_) }
sub head   { my $s = shift; $s->request('HEAD', @_) }
sub post   { my $s = shift; $s->request('POST', @_) }
sub put    { my $s = shift; $s->request('PUT', @_) }
sub delete { my $s = shift; $s->request('DELETE', @_) }

# Sends one raw request on a new connection and returns the socket; read
# the answer later with read_response().  Lets a test hold requests open.
sub send_raw {
    my ($self, $method, $path, $body, $headers) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port}, Proto => 'tcp')
        or die "connect: $!";
    $body //= '';
    my $h = join '', map { "$_: $headers->{$_}\r\n" } keys %{ $headers || {} };
    print $s "$method $path HTTP/1.0\r\nHost: localhost\r\n$h"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $self->sent($s, $method, $path);
}

# A socket that a test wrote "$method $path" on itself: read_response()
# checks its answer against the OpenAPI document (openapi_check).
sub sent {
    my ($self, $s, $method, $path) = @_;
    $self->{raw_sent}{refaddr $s} = [$method, $path];
    return $s;
}

# A socket whose answer the test cuts short on purpose (a reader that
# stalls until nginx gives up on it): there is no whole answer to check.
sub unchecked {
    my ($self, $s) = @_;
    delete $self->{raw_sent}{refaddr $s};
    return $s;
}

# waits (bounded) until $cond is true; returns whether it became true
sub wait_for {
    my ($self, $cond, $seconds) = @_;
    my $deadline = time + ($seconds // 20);
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->() ? 1 : 0;
}

# true when the socket has an answer (or EOF) ready right now
sub has_response {
    my ($self, $s) = @_;
    return scalar IO::Select->new($s)->can_read(0);
}

# reads an HTTP/1.0 answer until EOF; returns { status, headers, content }
sub read_response {
    my ($self, $s, $timeout) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        $sel->can_read($deadline - time) or last;
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    my $sent = delete $self->{raw_sent}{refaddr $s};
    close $s;
    my $res = parse_response($buf);
    $self->scan_answer($sent ? "@$sent" : 'a raw request', $res);
    $self->openapi_check(@$sent, $res) if $sent;
    return $res;
}

sub parse_response {
    my ($buf) = @_;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    return { status => 599, content => 'no answer' }
        unless defined $head && $head =~ m{^HTTP/1\.\d (\d+)};
    my %h;
    for (split /\r\n/, $head) {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    return { status => $1 + 0, headers => \%h, content => $body // '' }
        if $head =~ m{^HTTP/1\.\d (\d+)};
}

# n requests at once, each on its own connection; answers in send order
sub parallel {
    my ($self, $n, $method, $path, $timeout) = @_;
    my @socks = map { $self->send_raw($method, $path) } 1 .. $n;
    my %buf;
    my $sel = IO::Select->new(@socks);
    my $deadline = time + ($timeout // 30);
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read($deadline - time)) {
            my $n = sysread($s, $buf{$s}, 65536, length($buf{$s} // ''));
            $sel->remove($s) unless $n;
        }
    }
    return map { my $r = parse_response($buf{$_} // ''); close $_;
                 delete $self->{raw_sent}{refaddr $_};
                 $self->scan_answer("$method $path", $r);
                 $self->openapi_check($method, $path, $r); $r } @socks;
}

# ---- connections ------------------------------------------------------

# nginx's "Active connections" (stub_status => 1), without the one that
# reads it
sub active_connections {
    my ($self) = @_;
    die "active_connections needs stub_status => 1\n"
        unless $self->{status_port};
    my $res = $self->{http}->get("http://127.0.0.1:$self->{status_port}"
                                 . '/_status');
    die "stub_status: $res->{status} $res->{content}\n"
        unless $res->{status} == 200
               && $res->{content} =~ /^Active connections:\s*(\d+)/m;
    return $1 - 1;
}

my %TCP_STATE = ('01' => 'ESTABLISHED', '02' => 'SYN_SENT',
                 '03' => 'SYN_RECV', '04' => 'FIN_WAIT1', '05' => 'FIN_WAIT2',
                 '06' => 'TIME_WAIT', '07' => 'CLOSE', '08' => 'CLOSE_WAIT',
                 '09' => 'LAST_ACK', '0A' => 'LISTEN', '0B' => 'CLOSING');

# nginx's side of its client connections on the API port, from
# /proc/net/tcp: { CLOSE_WAIT => n, ESTABLISHED => n, ... } (no LISTEN)
sub server_sockets {
    my ($self) = @_;
    my %n;
    my $port = sprintf('%04X', $self->{port});
    open(my $fh, '<', '/proc/net/tcp') or die "/proc/net/tcp: $!";
    while (<$fh>) {
        my ($local, $st) = /^\s*\d+:\s+[0-9A-F]{8}:([0-9A-F]{4})\s+\S+\s+
                              ([0-9A-F]{2})/x or next;
        next unless $local eq $port && $st ne '0A';
        $n{ $TCP_STATE{$st} // $st }++;
    }
    return \%n;
}

# ---- models -----------------------------------------------------------

# a real ZIP archive holding one file
sub zip_of {
    my ($name, $content) = @_;
    require IO::Compress::Zip;
    my $zip;
    IO::Compress::Zip::zip(\$content => \$zip, Name => $name // 'model.xml')
        or die "zip failed";
    return $zip;
}

# ($body, $content_type) of multipart/form-data; parts are hashes:
# { name, value, filename (optional), type (optional) } or a raw string
sub multipart {
    my (@parts) = @_;
    my $b = 'modelreg' . int(rand(1e9));
    my $body = '';
    for my $p (@parts) {
        $body .= "--$b\r\n";
        if (!ref $p) {
            $body .= $p;
            next;
        }
        my $cd = qq{Content-Disposition: form-data; name="$p->{name}"};
        $cd .= qq{; filename="$p->{filename}"} if defined $p->{filename};
        $body .= "$cd\r\n";
        $body .= "Content-Type: $p->{type}\r\n" if defined $p->{type};
        $body .= "\r\n$p->{value}\r\n";
    }
    $body .= "--$b--\r\n";
    return ($body, "multipart/form-data; boundary=$b");
}

# POST /models with a file part (unless file => undef) and fields
sub register {
    my ($self, %f) = @_;
    my $headers = delete $f{headers} || {};
    my @parts;
    if (!exists $f{file} || defined $f{file}) {
        my $file = delete $f{file};
        $file = { value => $file } if defined $file && !ref $file;
        push @parts, { name => 'file', filename => 'model.zip',
                       type => 'application/zip',
                       value => zip_of('model.xml', 'x' x 100),
                       %{ $file || {} } };
    } else {
        delete $f{file};
    }
    for my $k (sort keys %f) {
        push @parts, { name => $k, value => $f{$k} };
    }
    my ($body, $ct) = multipart(@parts);
    return $self->post('/models', { content => $body,
        headers => { 'Content-Type' => $ct, %$headers } });
}

# the id of a new model (dies unless 201)
sub new_model {
    my ($self, %f) = @_;
    my $res = $self->register(%f);
    die "register: $res->{status} $res->{content}" unless $res->{status} == 201;
    return $res->{content};
}

# GET /metrics as { 'name{labels}' => value }; dies unless 200
sub metrics {
    my ($self) = @_;
    my $res = $self->get('/metrics');
    die "GET /metrics: $res->{status}" unless $res->{status} == 200;
    my %m;
    for (split /\n/, $res->{content}) {
        next if /^#/;
        my ($k, $v) = /^(\S+) (\S+)$/ or die "metrics line: $_";
        $m{$k} = $v;
    }
    return \%m;
}

# the keys of the objects in the store
sub objects {
    my ($self) = @_;
    if ($self->{storage} eq 's3') {
        my $res = $self->swift_request('GET', 'models?format=plain');
        die "listing the bucket: $res->{status}" if $res->{status} >= 300;
        return split /\n/, $res->{content} // '';
    }
    my @files;
    require File::Find;
    my $root = "$self->{dir}/objects";
    # (a load may remove an object's directory while this walks the tree:
    # no chdir into it, which dies when it went, and no warning for it)
    local $SIG{__WARN__} = sub { warn @_ unless $_[0] =~ /^Can't opendir/ };
    File::Find::find({ no_chdir => 1,
                       wanted => sub { push @files, $_ if -f $_ } }, $root);
    return map { substr($_, length($root) + 1) } grep { !m{/\.tmp/} } @files;
}

sub has_object {
    my ($self, $key) = @_;
    return scalar grep { $_ eq $key } $self->objects;
}

# parts in the store that belong to no object: uploads under way, or
# left behind (s3api keeps "<key>/<upload id>[/<part>]" in "+segments";
# a completed object's parts stay there, under its manifest)
sub pending_uploads {
    my ($self) = @_;
    return () unless $self->{storage} eq 's3';
    my $res = $self->swift_request('GET', 'models+segments?format=plain');
    return () if $res->{status} == 404;
    my %obj = map { $_ => 1 } $self->objects;
    return grep { (my $k = $_) =~ s{/[^/]+(?:/\d+)?$}{}; !$obj{$k} }
           split /\n/, $res->{content} // '';
}

# hands paths a test made to the nginx worker user (nobody), when root
sub give {
    my ($self, @paths) = @_;
    system('chown', '-R', 'nobody', @paths) if $IS_ROOT;
}

sub temp_files {
    my ($self) = @_;
    return glob($self->{storage} eq 's3' ? "$self->{dir}/spool/*"
                                          : "$self->{dir}/objects/.tmp/*");
}

# ---- end --------------------------------------------------------------

# the test kills worker $pid itself: its exit is no crash
sub worker_killed {
    my ($self, $pid) = @_;
    $self->{killed_pids}{$pid} = 1;
}

# the master's lines about workers that exited on a signal or with an
# error code, but those the test killed
sub crashes {
    my ($self) = @_;
    open(my $fh, '<', "$self->{dir}/logs/error.log") or return ();
    my @crash;
    while (<$fh>) {
        next unless /process (\d+) exited on signal/
                    || /process (\d+) exited with (?:fatal )?code [1-9]/;
        chomp;
        push @crash, $_ unless $self->{killed_pids}{$1};
    }
    return @crash;
}

# (killed => [pids]: workers the test killed on purpose, with SIGKILL)
sub finish {
    my ($self, %o) = @_;
    $self->worker_killed($_) for @{ $o{killed} || [] };
    my @crash = $self->crashes;
    ok(!@crash, 'no worker crashed') or diag join "\n", @crash;
    my $c = $self->check_secrets;
    ok(!@{ $c->{leaks} }, 'no secret in the logs or the answers')
        or diag join "\n", @{ $c->{leaks} };
    $self->openapi_summary;
}

# ---- the OpenAPI document ---------------------------------------------

# Every answer a test reads through this harness (request, read_response,
# parallel; a test's own client calls this itself) must be one that
# openapi/openapi.json describes for its request (Modelreg::OpenAPI): one
# that is not fails the test file at once, naming it.  HTTP::Tiny's 599
# (no answer: the connection failed or was cut) is nothing to judge.
# $conf: the nginx.conf text that serves it (default: this harness's).
sub openapi_check {
    my ($self, $method, $path, $res, $conf) = @_;
    return if !$res->{status} || $res->{status} == 599;
    Modelreg::OpenAPI::schema();    # (its loading is counted apart)
    my $t0 = time;
    $conf //= slurp("$self->{dir}/nginx.conf") // '';
    my ($errors, $judged) = Modelreg::OpenAPI::check($conf, $method, $path,
                                                     $res);
    $self->{openapi_seconds} += time - $t0;
    return unless defined $judged;    # no registry location serves it
    if (!@$errors) {
        $self->{openapi_ok}++;
        return 1;
    }
    $self->{openapi_bad}++;
    fail("the answer to $method $path ($res->{status}) is one the "
         . "OpenAPI document describes");
    diag join "\n  ", "judged as $judged:", @$errors,
         'body: ' . substr($res->{content} // '', 0, 300);
    return 0;
}

# the count of answers judged (finish() calls it)
sub openapi_summary {
    my ($self) = @_;
    my $n = $self->{openapi_ok} || 0;
    my $bad = $self->{openapi_bad} || 0;
    ok(!$bad, "$n answers matched the OpenAPI document"
              . ($bad ? ", $bad did not" : ''));
    note sprintf "OpenAPI validation: %.2f ms per answer (and %.0f ms to"
                 . " load the document, once)",
                 1000 * ($self->{openapi_seconds} || 0) / ($n + $bad),
                 1000 * $Modelreg::OpenAPI::LOAD_SECONDS
        if $n + $bad;
}

# ---- secrets ----------------------------------------------------------

# a secret to look for (shorter than 8 bytes it could be any word: not)
sub secret {
    my ($self, $name, $value) = @_;
    $self->{seen_secrets}{$value} //= $name
        if defined $value && length $value >= 8;
}

# the secrets nginx is configured with now (the files may change later)
sub note_secrets {
    my ($self) = @_;
    for (['S3 access key', 's3_access'], ['S3 secret key', 's3_secret'],
         ['S3 session token', 's3_token'], ['Geti token', 'geti_token'],
         ['download link key', 'link_key']) {
        my $text = slurp("$self->{dir}/$_->[1]") // next;
        my ($v) = $text =~ /^[ \t]*(.*?)[ \t]*$/m;
        $self->secret($_->[0], $v);
    }
    $self->secret('Geti token', $self->{geti}->token) if $self->{geti};
    $self->secret('database password', $self->{db_password});
}

# { value => name } of every secret: those configured, and for each S3
# secret key the SigV4 keys derived from it on each day of the run (UTC),
# each step raw and in hex
sub secrets {
    my ($self) = @_;
    $self->note_secrets;
    my %s = %{ $self->{seen_secrets} };
    my @days;
    for (my $t = $self->{started} - 86400; $t < time + 86400; $t += 3600) {
        my $day = strftime('%Y%m%d', gmtime $t);
        push @days, $day unless grep { $_ eq $day } @days;
    }
    for my $k (grep { $s{$_} eq 'S3 secret key' } keys %s) {
        for my $day (@days) {
            my $key = "AWS4$k";
            for my $step ($day, 'us-east-1', 's3', 'aws4_request') {
                $key = hmac_sha256($step, $key);
                $s{$key} = "SigV4 key ($day, $step)";
                $s{ unpack('H*', $key) } = "SigV4 key ($day, $step), hex";
            }
        }
    }
    return \%s;
}

# what an answer holds of a secret: headers, and bodies that are text
# (error bodies, /metrics, /health; a download is the bytes a test sent)
sub scan_answer {
    my ($self, $what, $res) = @_;
    $self->{answers_scanned}++;
    my $h = $res->{headers} || {};
    my $text = join "\n", map { "$_: " . (ref $h->{$_} ? "@{ $h->{$_} }"
                                                       : $h->{$_}) } keys %$h;
    $text .= "\n" . ($res->{content} // '')
        if ($h->{'content-type'} // 'text/') =~ m{json|^text/};
    my $s = $self->secrets;
    for my $v (keys %$s) {
        push @{ $self->{answer_leaks} },
             "$s->{$v} in the answer to $what: $res->{status}"
            if index($text, $v) >= 0;
    }
}

# Looks for every secret in every log of nginx and every answer read.
# Returns { leaks => [ "what where" ], nginx => { "what" => count } }:
# "nginx" counts what nginx itself logs at debug level of the requests
# it proxies to the store (the request's headers, and the values of the
# variables it builds them from): the Authorization header, which names
# the access key before its signature, and the session token.  Anything
# else is a leak.
sub check_secrets {
    my ($self) = @_;
    my $s = $self->secrets;
    my %own;
    my @leaks = @{ $self->{answer_leaks} || [] };
    for my $log (sort glob("$self->{dir}/logs/*")) {
        my $text = slurp($log) // next;
        (my $name = $log) =~ s{.*/}{};
        # one record per message: some span lines (a request's headers)
        for my $rec (split /^(?=\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[)/m,
                     $text) {
            for my $v (keys %$s) {
                next if index($rec, $v) < 0;
                my $n = 0;
                # nginx's own: a request's headers as it receives them or
                # proxies them (one line each, or its dump of the whole
                # request), the value of a variable it sets one from
                my $own = $rec =~ /: \*\d+ http (?:(?:proxy )?header|script var):/;
                my $key = qr/(?:Authorization: |script var: ")AWS4-HMAC-SHA256 Credential=/;
                my $tok = qr/(?:X-Amz-Security-Token: |script var: ")/i;
                if ($own && $s->{$v} eq 'S3 access key') {
                    $n += $rec =~ s{($key)\Q$v\E/}{$1<key>/}g;
                } elsif ($own && $s->{$v} eq 'S3 session token') {
                    $n += $rec =~ s{($tok)\Q$v\E(?=\r\n|"\n?\z)}{$1<token>}g;
                }
                $own{"$s->{$v} in nginx's debug log of a proxied request"}
                    += $n;
                push @leaks, "$s->{$v} in $name: " . substr($rec, 0, 300)
                    if index($rec, $v) >= 0;
            }
        }
    }
    delete $own{$_} for grep { !$own{$_} } keys %own;
    return { leaks => \@leaks, nginx => \%own };
}

sub stop_all {
    my ($self) = @_;
    local $?;
    return unless $$ == $self->{pid} && !$self->{stopped}++;
    my $ran = $self->{nginx_pid};
    $self->stop_nginx;
    $self->stop_pg;
    $self->stop_standbys;
    $self->stop_swift;
    $self->{geti}->stop if $self->{geti};
    # also what happened after finish, and as the workers exited
    push @PROBLEMS, map { "$self->{dir}: $_" } $self->crashes if $ran;
}

END {
    $_ && $_->stop_all for @LIVE;
    if ($REPORTS && $$ == $LIVE_PID) {
        for my $f (sort glob "$REPORTS/*") {
            push @PROBLEMS, "sanitizer report $f:\n" . (slurp($f) // '');
        }
    }
    if (@PROBLEMS && $$ == $LIVE_PID) {
        diag "after the tests: $_" for @PROBLEMS;
        $? ||= 1;
    }
}

sub DESTROY {
    my ($self) = @_;
    $self->stop_all;
    if ($ENV{MODELREG_KEEP}) {
        diag "kept $self->{dir}";
    }
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return undef;
    local $/;
    return scalar <$fh>;
}

sub write_file {
    my ($f, $text) = @_;
    open(my $fh, '>', $f) or die "$f: $!";
    print $fh $text;
    close $fh;
}

sub shell_quote {
    my ($s) = @_;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}


package Modelreg::Harness::Session;

sub new { my ($c, $fh) = @_; bless { fh => $fh }, $c }

sub run {
    my ($self, $sql) = @_;
    print { $self->{fh} } "$sql\n";
}

sub end {
    my ($self) = @_;
    return unless $self->{fh};
    close $self->{fh};
    delete $self->{fh};
}

sub DESTROY { $_[0]->end }

1;
