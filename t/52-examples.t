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

done_testing();
