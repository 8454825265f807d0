# Proves: docker/ the way a user runs it, with no registry reachable.
# Always: sql/migrate (what the image's entrypoint runs at start) is safe
# from several replicas at once: six runs at once on a fresh database all
# succeed and apply each migration once (three rounds).  With
# docker-compose: docker/compose.yaml parses, GETI_* passed through.
# With buildah and podman (make image-deps; root): "make image" builds
# docker/Dockerfile on a bookworm base made by mmdebstrap; the image has
# its HEALTHCHECK, user and port; a container run by podman against this
# test's PostgreSQL (a password from a mounted secret file) migrates,
# serves the smoke flow (register, list, download, delete) on fs storage,
# runs no process as root, writes no secret to its nginx.conf or log,
# passes its health check and stops gracefully (exit 0), serves /docs's
# assets; the GETI_* variables (the token from a file) make a modelreg_geti
# line nginx -t accepts; three containers
# started at once on a fresh database all serve, each migration applied
# once; one on S3 (a local Swift) serves the smoke flow.  Each step that
# this machine cannot run is skipped with the command and its error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Modelreg::Harness;

my $TOP = $Modelreg::Harness::TOP;
my $IMAGE = $ENV{MODELREG_IMAGE} || 'localhost/modelreg:t51';
my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 0);

# ':' and '\' must survive the passfile the entrypoint writes
my $h = Modelreg::Harness->new(no_nginx => 1, db_password => 'd0ck:er\\pw');
my @sql = map { m{/(\d{3}_[^/]+)$} } glob("$TOP/sql/[0-9][0-9][0-9]_*.sql");
$ENV{PGOPTIONS} = '-c client_min_messages=warning';

sub conninfo_of {
    my ($db) = @_;
    (my $c = $h->conninfo) =~ s/dbname=modelreg/dbname=$db/;
    return $c;
}

sub migrated {
    my ($db) = @_;
    my ($rc, $out) = Modelreg::Harness::run_cmd('psql', '-X', '-At', '-h',
        '127.0.0.1', '-p', $h->pg_port, '-U', 'postgres', '-d', $db, '-c',
        "'SELECT name FROM modelreg_migrations ORDER BY version'");
    return $rc ? "psql: $out" : join ',', split /\n/, $out;
}

# ---- sql/migrate from six "replicas" at once ---------------------------
for my $round (1 .. 3) {
    my $db = "fresh$round";
    $h->psql_admin("CREATE DATABASE $db OWNER modelreg");
    my (%pid, @out);
    for my $i (1 .. 6) {
        my $log = $h->dir . "/migrate-$round-$i.log";
        push @out, $log;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open STDOUT, '>', $log or die;
            open STDERR, '>&', \*STDOUT or die;
            exec "$TOP/sql/migrate", conninfo_of($db) or die;
        }
        $pid{$pid} = $i;
    }
    my @failed;
    for my $pid (keys %pid) {
        waitpid $pid, 0;
        push @failed, "run $pid{$pid}: " . Modelreg::Harness::slurp(
            $out[$pid{$pid} - 1]) if $?;
    }
    is(join('', @failed), '',
       "round $round: 6 sql/migrate at once on a fresh database all exit 0");
    my @applied = map { /^applying (\S+)/mg }
                  map { Modelreg::Harness::slurp($_) } @out;
    is(join(',', sort @applied), join(',', @sql),
       "round $round: each migration applied by exactly one of them");
    is(migrated($db), join(',', @sql), "round $round: all recorded once");
}

# ---- docker/compose.yaml parses, the GETI_* variables passed through ----
SKIP: {
    skip 'docker-compose not installed (make image-deps)', 1
        if system('command -v docker-compose >/dev/null') != 0;
    local $ENV{GETI_HOST} = 'geti.example';
    local $ENV{GETI_WORKSPACE_ID};
    delete $ENV{GETI_WORKSPACE_ID};
    my ($rc, $out) = Modelreg::Harness::run_cmd('docker-compose', '-f',
        "$TOP/docker/compose.yaml", 'config');
    ok(!$rc, 'docker-compose config: docker/compose.yaml parses')
        or diag $out;
    like($out, qr/^ +GETI_HOST: geti\.example$/m,
         'a GETI_* variable of the shell is passed through');
    like($out, qr/^ +GETI_WORKSPACE_ID: null$/m, 'an unset one stays unset');
    like($out, qr/service_completed_successfully/,
         'modelreg waits for the bucket job');
}

# ---- the image ---------------------------------------------------------
my @names;                  # containers to remove at the end
my (@global, @run_opts);    # what podman needs on this machine

# --ignore: podman 4.3 removes none of the names when one is gone already
# (and exits 0)
END {
    local $?;
    Modelreg::Harness::run_cmd('podman', @global, 'rm', '--ignore', '-f',
                               '-t', '0', @names) if @names;
}

sub podman {
    my ($sub, @rest) = @_;
    return Modelreg::Harness::run_cmd('podman', @global, $sub,
                                      ($sub eq 'run' ? @run_opts : ()),
                                      @rest);
}

sub shq { Modelreg::Harness::shell_quote($_[0]) }

# a new container of the image; returns its name
sub start_container {
    my (%o) = @_;
    my $name = "modelreg-t51-$$-" . (@names + 1);
    push @names, $name;
    my $data = $h->dir . "/data-$name";
    mkdir $data or die "$data: $!";
    chown 10001, 10001, $data;
    my %env = (MODELREG_DATABASE => "host=127.0.0.1 port=" . $h->pg_port
                                    . " dbname=" . ($o{db} // 'modelreg')
                                    . " user=modelreg",
               MODELREG_DATABASE_PASSWORD_FILE => '/run/secrets/db_password',
               MODELREG_LISTEN => $o{port}, MODELREG_WORKERS => 2,
               %{ $o{env} || {} });
    my ($rc, $out) = podman('run', '-d', '--name', $name, '--network', 'host',
        (map { ('-e', shq("$_=$env{$_}")) } sort keys %env),
        '-v', $h->dir . '/secrets:/run/secrets:ro',
        '-v', "$data:/var/lib/modelreg", $IMAGE);
    die "podman run: $out" if $rc;
    return $name;
}

sub ready {
    my ($port) = @_;
    my $res = $http->get("http://127.0.0.1:$port/health/ready");
    return $res->{status} == 200;
}

sub logs { (podman('logs', $_[0]))[1] }

# register, list, download, delete: what the README's curl lines do
sub smoke {
    my ($port, $what) = @_;
    my $url = "http://127.0.0.1:$port";
    my $zip = Modelreg::Harness::zip_of('model.xml', "$what " x 1000);
    my ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'file', filename => 'model.zip', type => 'application/zip',
          value => $zip },
        { name => 'name', value => "smoke-$what" },
        { name => 'version', value => '1' });
    my $res = $http->post("$url/models", { content => $body,
                          headers => { 'Content-Type' => $ct } });
    is($res->{status}, 201, "$what: register 201") or diag $res->{content};
    my $id = $res->{content};
    $res = $http->get("$url/models?name=smoke-$what");
    like($res->{content}, qr/"id" *: *"\Q$id\E"/, "$what: listed");
    $res = $http->get("$url/models/$id/files");
    ok($res->{status} == 200 && $res->{content} eq $zip,
       "$what: download 200, the bytes registered");
    $res = $http->request('DELETE', "$url/models/$id");
    is($res->{status}, 204, "$what: delete 204");
    is($http->get("$url/models/$id")->{status}, 404, "$what: then 404");
}

SKIP: {
    my @missing = grep { system("command -v $_ >/dev/null") != 0 }
                  qw(buildah podman mmdebstrap);
    skip "not installed: @missing (make image-deps)", 1 if @missing;
    skip "podman and buildah here run as root (uid $>)", 1 if $> != 0;

    my $t0 = time;
    my ($rc, $out) = Modelreg::Harness::run_cmd("make -s -C $TOP image"
                                                . " IMAGE=$IMAGE");
    ok(!$rc, "make image: $IMAGE built") or diag $out;
    skip "make image failed", 1 if $rc;
    note sprintf "make image: %.0f s", time - $t0;

    ($rc, $out) = Modelreg::Harness::run_cmd('podman', 'image', 'inspect',
        '--format', shq('{{json .HealthCheck.Test}}|{{.User}}|'
                        . '{{json .Config.ExposedPorts}}|'
                        . '{{.Config.StopSignal}}'), $IMAGE);
    like($out, qr{^\[.*/health/ready.*\]\|modelreg\|\{"8080/tcp":\{\}\}\|SIGQUIT$}m,
         'image: HEALTHCHECK on /health/ready, user modelreg, 8080, SIGQUIT')
        or diag $out;

    # how containers run here: podman's default runtime (crun) first;
    # runc, and limits below the machine's hard ones, where it cannot
    my $hard = (`sh -c 'ulimit -Hn'` =~ /(\d+)/)[0] || 4096;
    my $nofile = $hard > 16384 ? 16384 : int($hard / 2);
    my ($ran, @why);
    for my $try ([[], []], [['--runtime', 'runc'], []],
                 [['--runtime', 'runc'],
                  ['--ulimit', "nofile=$nofile:$nofile",
                   '--ulimit', 'nproc=4096:4096']]) {
        (@global, @run_opts) = ();
        @global = @{ $try->[0] };
        @run_opts = @{ $try->[1] };
        ($rc, $out) = podman('run', '--rm', '--network', 'host',
                             '--entrypoint', 'true', $IMAGE);
        if (!$rc) { $ran = 1; last }
        $out =~ s/^time=.*\n//mg;
        push @why, "podman @global run @run_opts --rm ... true: $out";
    }
    diag "tried: $_" for @why;
    skip "podman cannot run a container here", 1 unless $ran;
    note "containers run with: podman @global run @run_opts";

    mkdir $h->dir . '/secrets';
    chmod 0755, $h->dir . '/secrets';
    Modelreg::Harness::write_file($h->dir . '/secrets/db_password',
                                  "d0ck:er\\pw\n");
    chmod 0644, $h->dir . '/secrets/db_password';

    # ---- one container, fs storage ----
    my $port = Modelreg::Harness::free_port();
    my $c = start_container(port => $port);
    ok($h->wait_for(sub { ready($port) }, 120),
       'fs: /health/ready 200 (migrated, the password from the secret)')
        or diag logs($c);
    smoke($port, 'fs');

    if (-f "$TOP/build/swagger-ui/.installed") {
        my $res = $http->get("http://127.0.0.1:$port/docs/swagger-ui.css");
        ok($res->{status} == 200 && $res->{content} eq
           Modelreg::Harness::slurp("$TOP/build/swagger-ui/swagger-ui.css"),
           '/docs/ serves the swagger-ui files of the build context');
    }

    ($rc, $out) = podman('exec', $c, 'sh', '-c',
        shq('grep -h "^Uid:" /proc/[0-9]*/status | sort | uniq -c'));
    unlike($out, qr/Uid:\s+0\s/, 'no process of the container runs as root');
    like($out, qr/Uid:\s+10001\s+10001/, 'they run as modelreg (10001)');

    ($rc, $out) = podman('exec', $c, 'sh', '-c',
        shq('cat /run/modelreg/nginx.conf; stat -c %a /run/modelreg/pgpass'));
    like($out, qr/passfile=\/run\/modelreg\/pgpass.*\n600$/s,
         'nginx.conf names a passfile (0600)');
    unlike($out . logs($c), qr/d0ck/, 'the password: not in nginx.conf, '
           . 'not in the log');

    ($rc, $out) = podman('healthcheck', 'run', $c);
    ok(!$rc, 'podman healthcheck run: healthy') or diag $out;

    ($rc, $out) = podman('stop', '-t', '30', $c);
    ($rc, $out) = podman('inspect', '--format', '{{.State.ExitCode}}', $c);
    is($out =~ s/\s+//gr, '0', 'podman stop: nginx stops gracefully, exit 0')
        or diag logs($c);

    # ---- GETI_* passed through: the line nginx -t accepts, no token ----
    Modelreg::Harness::write_file($h->dir . '/secrets/geti_token',
                                  "geti-t0ken\n");
    chmod 0644, $h->dir . '/secrets/geti_token';
    my @geti = (map { ('-e', $_) } 'GETI_HOST=geti.example',
                'GETI_ORGANIZATION_ID=org1', 'GETI_WORKSPACE_ID=ws1',
                'GETI_TOKEN_FILE=/run/secrets/geti_token',
                'GETI_SYNC_INTERVAL=600', 'MODELREG_DATABASE=host=127.0.0.1');
    my @mount = ('-v', $h->dir . '/secrets:/run/secrets:ro');
    ($rc, $out) = podman('run', '--rm', '--network', 'host', @geti, @mount,
                         $IMAGE, 'sh', '-c',
                         shq('modelreg-entrypoint -t 2>&1 && cat '
                             . '/run/modelreg/geti.conf'));
    like($out, qr{test\ is\ successful.*^modelreg_geti\ https://geti\.example
                  \ org=org1\ workspace=ws1\ token_file=\S+
                  \ api_version=v1\ sync=600s;$}msx,
         'GETI_*: a modelreg_geti line that nginx -t accepts') or diag $out;
    unlike($out, qr/t0ken/, 'GETI_TOKEN_FILE: the token not in the conf');

    # ---- three replicas at once on a fresh database ----
    $h->psql_admin("CREATE DATABASE replicas OWNER modelreg");
    my @ports = map { Modelreg::Harness::free_port() } 1 .. 3;
    my @c = map { start_container(port => $_, db => 'replicas') } @ports;
    ok($h->wait_for(sub { !grep { !ready($_) } @ports }, 180),
       'three containers started at once on a fresh database all serve')
        or diag join "\n", map { logs($_) } @c;
    my @applied = map { /^applying (\S+)/mg } map { logs($_) } @c;
    is(join(',', sort @applied), join(',', @sql),
       'each migration applied by one of them');
    is(migrated('replicas'), join(',', @sql), 'and recorded once');
    smoke($ports[2], 'replica');

    # ---- S3: a local Swift with s3api ----
    # (the replicas gone first: Swift's start is bounded, and slow on a
    # busy machine; a second try after a failed one)
    podman('rm', '--ignore', '-f', '-t', '5', @c);
    my $swift;
    for (1 .. 2) {
        last if $swift = eval { $h->start_swift; 1 };
        diag "start_swift: $@";
        $h->stop_swift;
    }
    skip 'the local Swift did not start', 1 unless $swift;
    for (['s3_access_key', "modelreg:s3\n"],
         ['s3_secret_key', "modelreg-secret\n"]) {
        Modelreg::Harness::write_file($h->dir . "/secrets/$_->[0]", $_->[1]);
        chmod 0644, $h->dir . "/secrets/$_->[0]";
    }
    my $s3port = Modelreg::Harness::free_port();
    my $s3 = start_container(port => $s3port, env => {
        MODELREG_STORAGE => 's3',
        MODELREG_S3_ENDPOINT => 'http://127.0.0.1:' . $h->s3_port });
    ok($h->wait_for(sub { ready($s3port) }, 120),
       's3: /health/ready 200 (database and bucket)') or diag logs($s3);
    smoke($s3port, 's3');
    unlike(logs($s3), qr/modelreg-secret/, 's3: no secret key in the log');
}

done_testing;
