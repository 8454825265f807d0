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
#                      write method 403 JSON, the database unchanged;
#                      with its "allow" line writes reach the registry,
#                      and an "if" block's 403 is the registry's JSON
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

# when each example's node was made, for the timings printed
my %STARTED;

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
        # (first: the values below bring real ports)
        [ qr/\blisten\s+(\d+)(?=[\s;])/
          => sub { "listen 127.0.0.1:" . $port->($1) } ],
        [ qr/\b127\.0\.0\.1:(\d+)\b/ => sub { "127.0.0.1:" . $port->($1) } ],
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
        [ qr/^http \{\n/m => sub {
              "http {\n" . join '', map { "    ${_}_temp_path $d/tmp/$_;\n" }
                                  qw(client_body proxy fastcgi uwsgi scgi) } ],
    );
}

# Starts conf/examples/$name as a node of its own (a harness sharing the
# PostgreSQL): %o: setup => sub ($node) writing the files it names, edit
# => [[from => to], ...] what its comments tell a user to change, main
# => the example's port the client uses (default 80), ca => a CA file
# (https; a reference: its value after setup).  Returns ($node,
# { example's port => port }), or () when nginx -t failed.
sub example {
    my ($name, %o) = @_;
    my $node = Modelreg::Harness->new(pg_of => $h, no_nginx => 1);
    $STARTED{ $node->dir } = [$name, time];
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
    for (@{ $o{edit} || [] }) {
        my ($from, $to) = @$_;
        $conf =~ s/\Q$from\E/$to/ or die "$name has no \"$from\"";
    }
    (my $rest = $conf) =~ s/\Q$_\E//g for $node->dir, $h->dir, $TOP,
                                           $Modelreg::Harness::MODULE;
    unlike($rest, qr{[\s"=](?:/etc|/var|/run|/usr|/srv)/},
           "$name: no path of the machine's nginx is left");
    make_path(map { $node->dir . "/$_" } qw(etc/nginx tmp www));
    $o{setup}->($node) if $o{setup};
    my ($rc, $out) = $node->start_conf($conf, port => $port{ $o{main} // 80 },
        ca => ref $o{ca} ? ${ $o{ca} } : $o{ca});
    is($rc, 0, "$name: nginx -t passes") or diag $out;
    return if $rc;
    return ($node, \%port);
}

# GET $path from the server named $host on $port (HTTP::Tiny sets Host
# itself): { status, headers, content }, checked by no document
sub get_as {
    my ($port, $host, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 30) or die "connect: $!";
    print $s "GET $path HTTP/1.0\r\nHost: $host\r\n\r\n";
    local $/;
    my $answer = <$s>;
    return Modelreg::Harness::parse_response($answer // '');
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
    my $s = $STARTED{ $node->dir } or return;
    note sprintf '%s: %.1f s', $s->[0], time - $s->[1];
}

sub run_openssl {
    my (@args) = @_;
    my ($rc, $out) = Modelreg::Harness::run_cmd('openssl',
        map { Modelreg::Harness::shell_quote($_) } @args);
    die "openssl @args: $out" if $rc;
}

# ---- what every example must be -----------------------------------------

# each example is run below, and each is a whole nginx.conf to copy:
# the module loaded first, an actor only where nginx verified it, /metrics
# for loopback only
my @EXAMPLES = qw(auth-basic.conf auth-request.conf limit-req.conf
                  prefix.conf read-only.conf tls.conf two-nodes.conf);
is_deeply([sort map { s{.*/}{}r } glob "$TOP/conf/examples/*.conf"],
          \@EXAMPLES, 'every example of conf/examples/ is run here');
for my $name (@EXAMPLES) {
    (my $text = Modelreg::Harness::slurp("$TOP/conf/examples/$name"))
        =~ s/#[^\n]*//g;
    like($text, qr{\A\s*load_module\s+\S+ngx_http_modelreg_module\.so;},
         "$name: loads the module first");
    ok($text !~ /\bmodelreg_actor\b/ || $text =~ /\bauth_(?:basic|request)\s/,
       "$name: an actor only behind auth_basic or auth_request");
    like($text, qr!location\s*=\s*/metrics\s*\{[^}]*\bmodelreg;[^}]*
                   \ballow\s[^}]*\bdeny\s+all;
                   |listen\s+127\.0\.0\.1:\d+;\s*location\s*=\s*/metrics\s!x,
         "$name: /metrics for loopback only");
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
        for (['no credentials', {}],
             ['a wrong password', $as{'alice:bob-pw'}],
             ['an unknown user', $as{'carol:carol-pw'}]) {
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
        # (a download's event is written after its answer: README, "Audit")
        $n->wait_for(sub { actors($n, $id, $as{'bob:bob-pw'})
                               ->{'model.download'} }, 10);
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
        is(db_state(), $before,
           'auth-request: the refused POSTs wrote nothing');

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
        sleep 1.1;    # (the burst meets a zone that has forgotten it)
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

# ---- prefix.conf ------------------------------------------------------

{
    my $index = "<!doctype html><title>the site</title><p>the site\n";
    my ($n, $port) = example('prefix.conf', setup => sub {
        my ($node) = @_;
        my $d = $node->dir;
        Modelreg::Harness::write_file("$d/www/index.html", $index);
        Modelreg::Harness::write_file("$d/etc/nginx/mime.types",
            "types { text/html html; text/css css;"
            . " application/javascript js; image/png png; }\n");
    });
    SKIP: {
        skip 'prefix.conf did not pass nginx -t', 1 unless $n;
        my $site = "http://127.0.0.1:$port->{80}";

        # the site and the other site: nginx's own answers
        my $res = $plain->get("$site/");
        ok($res->{status} == 200 && $res->{content} eq $index
           && $res->{headers}{'content-type'} eq 'text/html',
           'prefix: the site\'s index, as it was');
        $res = $plain->get("$site/missing.html");
        ok($res->{status} == 404 && $res->{headers}{'content-type'}
           eq 'text/html' && $res->{content} =~ /<center>nginx/,
           'prefix: the site\'s 404 is nginx\'s own page');
        ok(!defined $res->{headers}{'x-request-id'},
           'prefix: ... without X-Request-Id');
        for my $path ('/', '/registry/health', '/registry/models') {
            $res = get_as($port->{80}, 'other.example.com', $path);
            is("$res->{status} $res->{content}", "200 the other site\n",
               "prefix: the other site's $path: its own answer");
        }

        # the registry, under /registry/ only
        $res = $n->get('/registry/health/ready');
        is($res->{status}, 200, 'prefix: /registry/health/ready');
        my $zip = Modelreg::Harness::zip_of('m.xml', 'prefixed');
        my @ids;
        for my $v (1, 2) {
            $res = register_at($n, '/registry', {}, name => 'prefixed',
                               version => $v, zip => $zip);
            is($res->{status}, 201, "prefix: registered version $v");
            push @ids, $res->{content};
            like($res->{headers}{location},
                 qr{^http://127\.0\.0\.1:\d+/registry/models/$ids[-1]$},
                 "prefix: its Location is under the prefix");
        }
        $res = $n->get('/registry/models?name=prefixed&limit=1');
        is(scalar @{ $res->{json} // [] }, 1, 'prefix: a page of one');
        like($res->{headers}{link} // '',
             qr{^</registry/models\?[^>]*page_token=[^>]+>; rel="next"$},
             'prefix: its Link is under the prefix');
        is($n->get("/registry/models/$ids[0]")->{json}{version}, '1',
           'prefix: read');
        ok($n->get("/registry/models/$ids[0]/files")->{content} eq $zip,
           'prefix: downloaded byte for byte');
        is($n->get('/registry/docs')->{status}, 200, 'prefix: its /docs');
        SKIP: {
            skip 'no build/swagger-ui (make deps)', 1
                unless -f "$TOP/build/swagger-ui/swagger-ui.css";
            $res = $plain->get("$site/registry/docs/swagger-ui.css");
            is("$res->{status} $res->{headers}{'content-type'}",
               '200 text/css', 'prefix: /docs\'s assets');
        }
        $res = $n->get('/registry/metrics');
        is("$res->{status} $res->{content}", '403 {"detail":"Forbidden"}',
           'prefix: /registry/metrics refused');
        $res = $plain->get("http://127.0.0.1:$port->{9145}/metrics");
        like($res->{content}, qr{^modelreg_http_requests_total\{route=
             "/models",status="201"\}\ 2$}mx,
             'prefix: /metrics on the monitoring port counts them');
        is($n->delete("/registry/models/$_")->{status}, 204,
           'prefix: deleted') for @ids;
        done($n);
    }
}

# ---- read-only.conf ---------------------------------------------------

{
    # a node that takes writes (the harness's own conf) on the same
    # database and store, to have something to read
    my $w = Modelreg::Harness->new(pg_of => $h, storage => 'fs',
        storage_conf => "modelreg_storage fs $shared/objects;");
    my $zip = Modelreg::Harness::zip_of('m.xml', 'read me');
    my $id = $w->new_model(name => 'read-only', version => '1',
                           file => { value => $zip });
    my ($n) = example('read-only.conf');
    SKIP: {
        skip 'read-only.conf did not pass nginx -t', 1 unless $n;
        my $before = db_state();
        is($n->get("/models/$id")->{json}{name}, 'read-only',
           'read-only: a model read');
        is($n->head("/models/$id")->{status}, 200, 'read-only: HEAD');
        is($n->get('/models?name=read-only')->{json}[0]{id}, $id,
           'read-only: listed');
        ok($n->get("/models/$id/files")->{content} eq $zip,
           'read-only: downloaded byte for byte');
        $n->wait_for(sub { ($n->get("/audit?model_id=$id")->{json}[0]
                                || {})->{action} eq 'model.download' }, 10);
        is($n->get("/audit?model_id=$id")->{json}[0]{action},
           'model.download', 'read-only: the audit read');
        my ($body, $ct) = Modelreg::Harness::multipart(
            { name => 'file', filename => 'model.zip',
              type => 'application/zip', value => $zip },
            { name => 'name', value => 'read-only' },
            { name => 'version', value => '2' });
        for (['POST', '/models', $body, $ct],
             ['PUT', "/models/$id", 'score=0.1',
              'application/x-www-form-urlencoded'],
             ['DELETE', "/models/$id"], ['PATCH', "/models/$id", '{}',
              'application/json'],
             ['POST', '/geti/sync'], ['OPTIONS', '/models']) {
            my ($m, $path, $b, $t) = @$_;
            my $res = $n->request($m, $path, { content => $b // '',
                headers => $t ? { 'Content-Type' => $t } : {} });
            is("$res->{status} $res->{content}",
               '403 {"detail":"Forbidden"}', "read-only: $m $path: 403");
            like($res->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
                 "read-only: ... with X-Request-Id");
        }
        is(db_state(), $before, 'read-only: the database unchanged');
        done($n);
    }
    is($w->delete("/models/$id")->{status}, 204,
       'read-only: the writing node still writes');
    done($w);

    # with the "allow" line its comment suggests, writes from that
    # address pass limit_except and reach the registry; an "if" block of
    # the location is part of it too (its 403 is the registry's)
    ($n) = example('read-only.conf', edit => [[
        "limit_except GET {\n                deny  all;"
        => "if (\$http_x_refuse) { return 403; }\n"
           . "            limit_except GET {\n"
           . "                allow  127.0.0.1;\n"
           . "                deny  all;" ]]);
    SKIP: {
        skip 'read-only.conf did not pass nginx -t', 1 unless $n;
        my $res = $n->register(name => 'read-only', version => '3');
        is($res->{status}, 201, 'read-only, allow 127.0.0.1: POST 201');
        like($res->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
             'read-only, allow 127.0.0.1: ... with X-Request-Id');
        $id = $res->{content};
        is($n->put("/models/$id", { content => 'score=0.3', headers => {
               'Content-Type' => 'application/x-www-form-urlencoded' } })
               ->{status}, 200, 'read-only, allow 127.0.0.1: PUT 200');
        is($n->delete("/models/$id")->{status}, 204,
           'read-only, allow 127.0.0.1: DELETE 204');
        is($n->post('/models/x')->{status}, 405,
           'read-only, allow 127.0.0.1: the registry\'s own 405');
        $res = $n->get('/models', { headers => { 'X-Refuse' => 1 } });
        is("$res->{status} $res->{content}", '403 {"detail":"Forbidden"}',
           'an "if" block\'s 403 in the location: the registry\'s JSON');
        like($res->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/,
             '... with X-Request-Id');
        is($n->get('/models')->{status}, 200, '... and without it: 200');
        done($n);
    }
}

# ---- two-nodes.conf ---------------------------------------------------

{
    my $t = time;
    $h->start_swift;
    note sprintf 'Swift started in %.1f s', time - $t;
    my $setup = sub {
        my ($node) = @_;
        my $e = $node->dir . '/etc/nginx';
        make_path("$e/modelreg", "$e/snippets");
        Modelreg::Harness::write_file("$e/modelreg/s3_access_key",
                                      "modelreg:s3\n");
        Modelreg::Harness::write_file("$e/modelreg/s3_secret_key",
                                      "modelreg-secret\n");
        $node->secret('S3 secret key', 'modelreg-secret');
        Modelreg::Harness::write_file("$e/snippets/modelreg_storage.conf",
            Modelreg::Harness::slurp("$TOP/conf/modelreg_storage.conf"));
    };
    my ($a) = example('two-nodes.conf', setup => $setup);
    my ($b) = example('two-nodes.conf', setup => $setup);
    SKIP: {
        skip 'two-nodes.conf did not pass nginx -t', 1 unless $a && $b;
        my $zip = Modelreg::Harness::zip_of('m.xml', 'two nodes' x 1000);
        my $id = $a->new_model(name => 'two-nodes', version => '1',
                               file => { value => $zip });
        my $model = $a->get("/models/$id")->{json};
        is_deeply($b->get("/models/$id")->{json}, $model,
                  'two-nodes: registered on A, read on B');
        ok($b->get("/models/$id/files")->{content} eq $zip,
           'two-nodes: downloaded on B byte for byte');
        my ($key) = $model->{file_url} =~ m{^s3://models/(.+)$};
        ok($key && (grep { $_ eq $key } objects()),
           'two-nodes: the object is in the shared bucket');

        # A serves the model from its cache from now on
        my $hits = sub { $a->metrics->{
            'modelreg_cache_events_total{event="hit"}'} // 0 };
        my $h0 = $hits->();
        ok($a->wait_for(sub { $a->get("/models/$id")->{status} == 200
                              && $hits->() > $h0 }, 60),
           'two-nodes: A answers it from its cache');

        is($b->put("/models/$id", { content => 'score=0.25', headers => {
               'Content-Type' => 'application/x-www-form-urlencoded' } })
               ->{status}, 200, 'two-nodes: updated on B');
        ok($a->wait_for(sub { ($a->get("/models/$id")->{json}{score} // 0)
                              == 0.25 }, 60),
           'two-nodes: A reads the update (its cache entry dropped)');
        is($b->delete("/models/$id")->{status}, 204,
           'two-nodes: deleted on B');
        ok($a->wait_for(sub { $a->get("/models/$id")->{status} == 404 }, 60),
           'two-nodes: gone on A');
        ok($a->wait_for(sub { !grep { $_ eq $key } objects() }, 60),
           'two-nodes: the object gone from the bucket');
        done($_) for $a, $b;
    }
}

# the bucket's keys (Swift's own listing)
sub objects {
    my $res = $h->swift_request('GET', 'models?format=plain');
    die "listing the bucket: $res->{status}" if $res->{status} >= 300;
    return split /\n/, $res->{content} // '';
}

note sprintf 'conf/examples/: %.0f s', time - $t0;

done_testing();
