# Proves: every configuration of conf/examples/ passes nginx -t and does
# what its comments say, run as written but for the values of the
# substitution table below (ports, paths, the database, the store):
#   tls.conf           the smoke flow over verified TLS (a CA made here);
#                      an unverifiable server refused; http -> 301 https
#   auth-basic.conf    401 JSON (with the challenge) without credentials,
#                      with a wrong password, an unknown user; the probe
#                      open; with credentials (apr1 and SHA-256 crypt) the
#                      flow works and the audit names the verified user
#   auth-request.conf  a separate identity service (a process of this
#                      test) decides: no or a bad token 401, a good one
#                      passes and the audit names whom the service said
#                      (not a client's own X-User); it never sees a body;
#                      the service down: nginx answers 500, nothing changed
#   limit-req.conf     a burst of writes: some 429 {"detail":"Too Many
#                      Requests"}, each refused one wrote nothing; every
#                      read of the same burst 200
#   prefix.conf        the API under /registry/ (links too) beside a static
#                      site and another server on the same port, whose
#                      answers stay nginx's own; /registry/metrics refused,
#                      /metrics on the monitoring port
#   read-only.conf     reads served (model, list, download, audit); every
#                      write method 403 JSON, the database unchanged
#   two-nodes.conf     two nginx on one database and one S3 bucket (the
#                      harness's Swift): registered on A, read and
#                      downloaded on B, changed and deleted on B, seen on A
#                      (its cache dropped by NOTIFY), the object gone
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path qw(make_path);
use HTTP::Tiny;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use Modelreg::Harness;

my $TOP = $Modelreg::Harness::TOP;
my $t0 = time;

# PostgreSQL (migrated), shared by every example; no nginx of its own
my $h = Modelreg::Harness->new(no_nginx => 1);

# the machine's /var/lib/modelreg: one store for every example on fs,
# like nodes of one machine
my $shared = $h->dir . '/var-lib-modelreg';
make_path($shared);

# a client of no registry location: the other sites, the redirect
my $plain = HTTP::Tiny->new(timeout => 30, keep_alive => 0,
                            max_redirect => 0);

# ---- the substitution table -------------------------------------------
#
# What an example says => what this test runs.  Nothing else of an
# example changes, but one addition: nginx's temp paths, after "http {",
# so that no nginx here writes to the machine's /var/lib/nginx.
# Ports: "listen N" and "127.0.0.1:N" become free loopback ports.

sub substitutions {
    my ($node, $port) = @_;
    my $d = $node->dir;
    return (
        [ '/usr/lib/nginx/modules/ngx_http_modelreg_module.so'
          => $Modelreg::Harness::MODULE ],
        [ '/run/nginx.pid' => "$d/nginx.pid" ],
        [ '/var/log/nginx/' => "$d/logs/" ],
        [ '"host=127.0.0.1 port=5432 dbname=modelreg user=modelreg"'
          => '"' . $h->conninfo . '"' ],
        [ '/var/lib/modelreg/' => "$shared/" ],
        [ '/etc/nginx/' => "$d/etc/nginx/" ],
        [ '/var/www/html' => "$d/www" ],
        [ '/usr/share/modelreg/swagger-ui/' => "$TOP/build/swagger-ui/" ],
        [ 'endpoint=https://s3.example.net'
          => 'endpoint=http://127.0.0.1:' . ($h->s3_port // 0) ],
        [ 'region=eu-west-1' => 'region=us-east-1' ],
        [ qr/\blisten\s+(\d+)\b/ => sub { "listen 127.0.0.1:" . $port->($1) } ],
        [ qr/\b127\.0\.0\.1:(\d+)\b/ => sub { "127.0.0.1:" . $port->($1) } ],
        [ qr/^http \{\n/m => sub {
              "http {\n" . join '', map { "    ${_}_temp_path $d/tmp/$_;\n" }
                                    qw(client_body proxy fastcgi uwsgi scgi) } ],
    );
}

# Starts conf/examples/$name as a node of its own (a harness sharing the
# PostgreSQL): %o: setup => sub ($node) writing the files it names, main
# => the example's port the client uses (default 80), ca => a CA file
# (https; a reference: its value after setup).  Returns ($node, { example port => port }), or () when nginx -t
# failed.
sub example {
    my ($name, %o) = @_;
    my $node = Modelreg::Harness->new(pg_of => $h, no_nginx => 1);
    my %port;
    # ports already "127.0.0.1:N" in the output are not rewritten twice
    my %done;
    my $port = sub {
        my ($p) = @_;
        return $p if $done{$p};
        $port{$p} //= Modelreg::Harness::free_port();
        $done{ $port{$p} } = 1;
        return $port{$p};
    };
    my $conf = Modelreg::Harness::slurp("$TOP/conf/examples/$name")
        // die "conf/examples/$name: $!";
    for my $s (substitutions($node, $port)) {
        my ($from, $to) = @$s;
        if (ref $from) {
            $conf =~ s/$from/$to->($1)/ge;
        } else {
            $conf =~ s/\Q$from\E/$to/g;
        }
    }
    make_path(map { $node->dir . "/$_" } qw(etc/nginx tmp www));
    $o{setup}->($node) if $o{setup};
    my ($rc, $out) = $node->start_conf($conf, port => $port{ $o{main} // 80 },
        ca => ref $o{ca} ? ${ $o{ca} } : $o{ca});
    is($rc, 0, "$name: nginx -t passes") or diag $out;
    return if $rc;
    return ($node, \%port);
}

# POST $base/models as multipart (Harness::register's form, any prefix)
sub register_at {
    my ($node, $base, $headers, %f) = @_;
    my ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'file', filename => 'model.zip', type => 'application/zip',
          value => delete $f{zip} // Modelreg::Harness::zip_of('m.xml', 'x') },
        map { { name => $_, value => $f{$_} } } sort keys %f);
    return $node->post("$base/models", { content => $body,
        headers => { 'Content-Type' => $ct, %{ $headers || {} } } });
}

# the audit events of a model, by action: { action => [actors] }
sub actors {
    my ($node, $id, $headers) = @_;
    my $res = $node->get("/audit?model_id=$id",
                         { headers => $headers || {} });
    die "GET /audit: $res->{status}" unless $res->{status} == 200;
    my %a;
    push @{ $a{ $_->{action} } }, $_->{actor} for @{ $res->{json} };
    return \%a;
}

# what a refused request must not change: models and non-download events
sub db_state {
    return $h->psql("SELECT (SELECT count(*) FROM models) || ':'"
                    . " || (SELECT coalesce(md5(string_agg(m::text, ','"
                    . " ORDER BY id)), '') FROM models m) || ':'"
                    . " || (SELECT count(*) FROM audit_events"
                    . " WHERE action <> 'model.download')");
}

sub done {
    my ($node) = @_;
    $node->finish;
    $node->stop_all;
}

sub run_openssl {
    my (@args) = @_;
    my ($rc, $out) = Modelreg::Harness::run_cmd('openssl',
        map { Modelreg::Harness::shell_quote($_) } @args);
    die "openssl @args: $out" if $rc;
}

# ---- tls.conf ---------------------------------------------------------

{
    my $ca;
    my ($n, $port) = example('tls.conf', main => 443, ca => \$ca,
        setup => sub {
            my ($node) = @_;
            my $t = $node->dir . '/etc/nginx/tls';
            make_path($t);
            my @ec = ('-newkey', 'ec', '-pkeyopt',
                      'ec_paramgen_curve:prime256v1', '-nodes');
            run_openssl('req', '-x509', @ec, '-days', '1', '-subj',
                        '/CN=modelreg test CA', '-keyout', "$t/ca.key",
                        '-out', "$t/ca.pem");
            run_openssl('req', @ec, '-subj', '/CN=registry.example.com',
                        '-keyout', "$t/registry.key", '-out', "$t/req.csr");
            Modelreg::Harness::write_file("$t/ext", "subjectAltName="
                . "DNS:registry.example.com,IP:127.0.0.1\n");
            run_openssl('x509', '-req', '-in', "$t/req.csr", '-CA',
                        "$t/ca.pem", '-CAkey', "$t/ca.key",
                        '-CAcreateserial', '-days', '1', '-extfile',
                        "$t/ext", '-out', "$t/registry.crt");
            $ca = "$t/ca.pem";
        });
    SKIP: {
        skip 'tls.conf did not pass nginx -t', 1 unless $n;
        my $res = $plain->get("http://127.0.0.1:$port->{80}/models?x=1");
        is("$res->{status} " . ($res->{headers}{location} // ''),
           "301 https://127.0.0.1/models?x=1", 'tls: http is redirected');

        $res = $n->get('/health/ready');
        is($res->{status}, 200, 'tls: ready over verified TLS');
        my $zip = Modelreg::Harness::zip_of('m.xml', 'tls' x 100);
        $res = $n->register(name => 'tls-model', version => '1',
                            file => { value => $zip });
        is($res->{status}, 201, 'tls: registered');
        my $id = $res->{content};
        is($n->get('/models?name=tls-model')->{json}[0]{id}, $id,
           'tls: listed');
        is($n->get("/models/$id")->{json}{name}, 'tls-model', 'tls: read');
        ok($n->get("/models/$id/files")->{content} eq $zip,
           'tls: downloaded byte for byte');
        is($n->delete("/models/$id")->{status}, 204, 'tls: deleted');
        is($n->get("/models/$id")->{status}, 404, 'tls: gone');

        # a client that does not trust the test CA refuses the server
        my $strict = HTTP::Tiny->new(verify_SSL => 1, timeout => 30);
        $res = $strict->get("https://127.0.0.1:$port->{443}/health");
        is($res->{status}, 599, 'tls: a client without the CA refuses');
        like($res->{content}, qr/certificate verify failed/i,
             'tls: ... because the certificate is not verified');
        done($n);
    }
}

# ---- auth-basic.conf --------------------------------------------------

{
    my ($n) = example('auth-basic.conf', setup => sub {
        my ($node) = @_;
        # two formats nginx reads: apr1 (htpasswd's MD5) and SHA-256 crypt
        my ($rc1, $alice) = Modelreg::Harness::run_cmd(
            'openssl passwd -apr1 alice-pw');
        my ($rc2, $bob) = Modelreg::Harness::run_cmd(
            'openssl passwd -5 bob-pw');
        die "openssl passwd: $alice $bob" if $rc1 || $rc2;
        chomp($alice, $bob);
        Modelreg::Harness::write_file($node->dir
            . '/etc/nginx/modelreg.htpasswd', "alice:$alice\nbob:$bob\n");
    });
    SKIP: {
        skip 'auth-basic.conf did not pass nginx -t', 1 unless $n;
        my %as = map { ($_ => { Authorization => 'Basic '
                                 . encode_base64($_, '') }) }
                 'alice:alice-pw', 'bob:bob-pw', 'alice:bob-pw',
                 'carol:carol-pw';
        my $before = db_state();
        for (['no credentials', {}], ['a wrong password',
              $as{'alice:bob-pw'}], ['an unknown user', $as{'carol:carol-pw'}]) {
            my ($what, $hd) = @$_;
            my $res = register_at($n, '', $hd, name => 'basic-model',
                                  version => '1');
            is("$res->{status} $res->{content}",
               '401 {"detail":"Unauthorized"}', "auth-basic: $what: 401");
            is($res->{headers}{'www-authenticate'},
               'Basic realm="model registry"',
               "auth-basic: $what: the challenge");
            is($n->get('/models', { headers => $hd })->{status}, 401,
               "auth-basic: $what: reads too");
        }
        is(db_state(), $before, 'auth-basic: the refused POSTs wrote nothing');
        is($n->get('/health/ready')->{status}, 200,
           'auth-basic: the probe needs no password');

        my $res = register_at($n, '', $as{'alice:alice-pw'},
                              name => 'basic-model', version => '1');
        is($res->{status}, 201, 'auth-basic: alice registers');
        my $id = $res->{content};
        is($n->put("/models/$id", { content => 'score=0.5', headers => {
               %{ $as{'bob:bob-pw'} }, 'Content-Type' =>
               'application/x-www-form-urlencoded' } })->{status}, 200,
           'auth-basic: bob updates (SHA-256 crypt)');
        is($n->get("/models/$id/files",
                   { headers => $as{'alice:alice-pw'} })->{status}, 200,
           'auth-basic: alice downloads');
        is_deeply(actors($n, $id, $as{'bob:bob-pw'}),
                  { 'model.create' => ['alice'], 'model.update' => ['bob'],
                    'model.download' => ['alice'] },
                  'auth-basic: the audit names the verified users');
        is($n->delete("/models/$id", { headers => $as{'bob:bob-pw'} })
               ->{status}, 204, 'auth-basic: bob deletes');
        is($h->psql("SELECT actor FROM audit_events WHERE model_id = '$id'"
                    . " AND action = 'model.delete'"), 'bob',
           'auth-basic: ... as bob');
        done($n);
    }
}

# ---- auth-request.conf ------------------------------------------------

# The identity service: a process of its own on $port, answering nginx's
# subrequests to /verify: 200 with X-User for a known bearer token, 401
# with a Bearer challenge for anything else.  Each request it gets is a
# line of $log: "method uri original-method content-length user".
my %TOKENS = ('tok-alice' => 'alice@example.com',
              'tok-bob' => 'bob@example.com');
my $identity_pid;

sub start_identity {
    my ($port, $log) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $port, Listen => 64, ReuseAddr => 1, Proto => 'tcp')
        or die "identity service: $!";
    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $srv;
        return $pid;
    }
    while (my $c = $srv->accept) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            sysread($c, $head, 4096, length $head) or last;
        }
        my ($m, $uri) = $head =~ /^(\S+) (\S+)/;
        my %hd = map { /^([^:]+):\s*(.*?)\s*$/ ? (lc $1 => $2) : () }
                 split /\r\n/, $head;
        my ($tok) = ($hd{authorization} // '') =~ /^Bearer (\S+)$/;
        my $user = defined $tok ? $TOKENS{$tok} : undef;
        if (open my $fh, '>>', $log) {
            print $fh join(' ', $m // '-', $uri // '-',
                           $hd{'x-original-method'} // '-',
                           $hd{'content-length'} // '-', $user // '-'), "\n";
            close $fh;
        }
        print $c $user
            ? "HTTP/1.1 200 OK\r\nX-User: $user\r\nContent-Length: 0\r\n"
              . "Connection: close\r\n\r\n"
            : "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer"
              . " realm=\"registry\"\r\nContent-Length: 0\r\n"
              . "Connection: close\r\n\r\n";
        close $c;
    }
    _exit(0);
}

END { kill 'KILL', $identity_pid if $identity_pid; }

{
    my $log;
    my ($n, $port) = example('auth-request.conf', setup => sub {
        my ($node) = @_;
        $log = $node->dir . '/identity.log';
    });
    SKIP: {
        skip 'auth-request.conf did not pass nginx -t', 1 unless $n;
        $identity_pid = start_identity($port->{9090}, $log);
        my %as = map { ($_ => { Authorization => "Bearer $_" }) }
                 keys %TOKENS, 'tok-mallory';

        my $before = db_state();
        for (['no token', {}], ['an unknown token', $as{'tok-mallory'}]) {
            my ($what, $hd) = @$_;
            my $res = register_at($n, '', $hd, name => 'req-model',
                                  version => '1');
            is("$res->{status} $res->{content}",
               '401 {"detail":"Unauthorized"}', "auth-request: $what: 401");
            is($res->{headers}{'www-authenticate'}, 'Bearer realm="registry"',
               "auth-request: $what: the service's challenge");
        }
        is(db_state(), $before, 'auth-request: the refused POSTs wrote nothing');

        my $res = register_at($n, '', $as{'tok-alice'}, name => 'req-model',
                              version => '1');
        is($res->{status}, 201, 'auth-request: a good token registers');
        my $id = $res->{content};
        # a client naming itself in X-User is not believed
        is($n->put("/models/$id", { content => '{"score":0.7}', headers => {
               %{ $as{'tok-bob'} }, 'X-User' => 'mallory',
               'Content-Type' => 'application/json' } })->{status}, 200,
           'auth-request: another token updates');
        is_deeply(actors($n, $id, $as{'tok-bob'}),
                  { 'model.create' => ['alice@example.com'],
                    'model.update' => ['bob@example.com'] },
                  'auth-request: the audit names whom the service said');
        my @seen = split /\n/, Modelreg::Harness::slurp($log) // '';
        # two refused POSTs, a POST, a PUT, GET /audit
        is(scalar(grep { m{^GET /verify } } @seen), 5,
           'auth-request: the service was asked for each request');
        ok(!(grep { !/^\S+ \S+ \S+ - / } @seen),
           'auth-request: it never got a body (no Content-Length)');
        ok((grep { /^GET \S+ POST - alice\@example.com$/ } @seen),
           'auth-request: it saw the original method');

        # the service goes away: nginx answers 500, nothing changes
        kill 'KILL', $identity_pid;
        waitpid $identity_pid, 0;
        undef $identity_pid;
        $before = db_state();
        $res = register_at($n, '', $as{'tok-alice'}, name => 'req-model',
                           version => '2');
        is("$res->{status} $res->{content}",
           '500 {"detail":"Internal Server Error"}',
           'auth-request: the service down: nginx answers 500');
        is($n->delete("/models/$id", { headers => $as{'tok-alice'} })
               ->{status}, 500, 'auth-request: ... to a DELETE too');
        is($n->get("/models/$id", { headers => $as{'tok-alice'} })
               ->{status}, 500, 'auth-request: ... and to reads');
        is(db_state(), $before, 'auth-request: nothing changed meanwhile');
        like($n->error_log, qr/auth request unexpected status: 502/,
             'auth-request: the error log says why');
        done($n);
    }
}

# ---- limit-req.conf ---------------------------------------------------

{
    my ($n) = example('limit-req.conf');
    SKIP: {
        skip 'limit-req.conf did not pass nginx -t', 1 unless $n;
        my $id = $n->new_model(name => 'limited', version => '0');
        sleep 1.1;    # (the registration above took the zone's slot)
        my $before = $h->psql("SELECT count(*) FROM models");
        # 20 writes and 20 reads at once, interleaved, each on its own
        # connection; sent before any answer is read
        my (@w, @r);
        for my $i (1 .. 20) {
            my ($body, $ct) = Modelreg::Harness::multipart(
                { name => 'file', filename => 'model.zip',
                  type => 'application/zip',
                  value => Modelreg::Harness::zip_of('m.xml', "w$i") },
                { name => 'name', value => 'limited' },
                { name => 'version', value => $i });
            push @w, $n->send_raw('POST', '/models', $body,
                                  { 'Content-Type' => $ct });
            push @r, $n->send_raw('GET', "/models/$id");
        }
        my @wres = map { $n->read_response($_) } @w;
        my @rres = map { $n->read_response($_) } @r;
        my %by;
        $by{ $_->{status} }++ for @wres;
        note 'writes: ' . join ', ', map { "$by{$_} x $_" } sort keys %by;
        ok($by{201} && $by{429} && $by{201} + $by{429} == 20,
           'limit-req: a burst of 20 writes: some 201, the rest 429 ('
           . ($by{201} // 0) . ' and ' . ($by{429} // 0) . ')');
        ok(!grep({ "$_->{status} $_->{content}" ne
                   '429 {"detail":"Too Many Requests"}' }
                 grep { $_->{status} == 429 } @wres),
           'limit-req: each 429 is {"detail":"Too Many Requests"}');
        ok(!grep({ ($_->{headers}{'x-request-id'} // '') !~ /^[0-9a-f]{32}$/ }
                 @wres), 'limit-req: ... with X-Request-Id');
        is(scalar(grep { $_->{status} == 200 } @rres), 20,
           'limit-req: all 20 reads of the same burst 200');
        is($h->psql("SELECT count(*) FROM models") - $before, $by{201} // 0,
           'limit-req: only the 201s wrote a model');
        done($n);
    }
}

done_testing();
