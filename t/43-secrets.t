# Proves: no secret leaks.  One registry holds every kind of secret at
# once: S3 keys and a session token (a real Swift with s3api, which
# checks the signatures they make), a Geti token (the fake Geti refuses
# any other), and a database password (PostgreSQL asks the registry's
# role for it: scram-sha-256 in pg_hba.conf; in the conninfo, or in a
# password file named by passfile=).
# With "error_log ... debug" it registers, reads, lists, downloads,
# updates, deletes, browses and imports from Geti, syncs, and goes
# through the error paths: a wrong S3 secret (503), a token Geti refuses
# (503), a wrong database password (503), the database down (503).
# Then nginx's logs (error log with every debug trace, access log) and
# every answer read (error bodies, /metrics, /health, /health/ready) are
# searched for each secret and for the SigV4 keys derived from the S3
# secret (each derivation step, raw and hex, for each day of the run):
# none is there, except what nginx itself writes at debug level of the
# requests it proxies to the store -- the Authorization header, which
# names the access key (Credential=) before the signature, and the
# session token -- which the test counts and shows.  A last step proves
# the search itself finds a secret where one is written.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use POSIX qw(strftime);
use Modelreg::Harness;

sub pid { sprintf('6650a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub gid { sprintf('7750a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub oid { sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $_[1], $_[0]) }

my %secret = (
    s3_token => 's3-session-Tk7Qz1VvX0aLrP',
    geti     => 'geti-token-Hn5Bw2CcY8mEsD',
    db       => 'db-password-Jp3Lx9RtU4gWkF',
);
my $h = Modelreg::Harness->new(storage => 's3', s3_token => $secret{s3_token},
                               geti => { token => $secret{geti},
                                         export_ms => 50, slow => 0 },
                               db_password => $secret{db},
                               log_level => 'debug', gc => '1s',
                               geti_params => 'export_timeout=5s projects='
                                              . pid(1));
my $json = JSON::PP->new->utf8->canonical;
my $sdown = '{"detail":"Object storage unavailable."}';
my $ddown = '{"detail":"Metadata database unavailable."}';
my $gdown = '{"detail":"Geti unavailable."}';

# a reload, returning once the old worker is gone (a connection it accepts
# as it starts to exit can be closed unanswered: nginx's, not this test's)
sub reload {
    my %old = map { $_ => 1 } $h->worker_pids;
    $h->reload_nginx;
    $h->wait_for(sub { my @w = $h->worker_pids; @w && !grep { $old{$_} } @w },
                 30) or die "the old worker did not exit\n";
}

# ---- the secrets are real: each is needed
my ($rc, $out) = Modelreg::Harness::run_cmd('PGPASSWORD= PGPASSFILE=/dev/null',
    'psql', '-X', '-At', '-c', 'SELECT 1', Modelreg::Harness::shell_quote(
        'host=127.0.0.1 port=' . $h->pg_port . ' dbname=modelreg user=modelreg'));
ok($rc && $out =~ /password/, 'PostgreSQL wants the password') or diag $out;
is($h->psql('SELECT 1'), 1, 'and takes it');
is($h->get('/health/ready')->{status}, 200,
   'ready: the database (with the password) and the store (signed)');

# ---- the flows
my $res = $h->register(name => 'secret-flows', version => '1',
                       headers => { Accept => 'application/json' });
is($res->{status}, 201, 'register on S3') or diag $res->{content};
my $id = $res->{json}{id};
is($h->get("/models/$id")->{status}, 200, 'read by id');
is($h->get("/models/$id")->{status}, 200, 'again (the cache)');
is($h->get('/models?name=secret')->{json}[0]{id}, $id, 'list');
$res = $h->get("/models/$id/files");
is($res->{status}, 200, 'download through the signed proxy');
is($h->get("/models/$id/files", { headers => { Range => 'bytes=0-9' } })
     ->{status}, 206, 'a range of it');
is($h->put("/models/$id", { content => 'version=2', headers =>
       { 'Content-Type' => 'application/x-www-form-urlencoded' } })->{status},
   200, 'update');
is($h->delete("/models/$id")->{status}, 204, 'delete');
is($h->get('/audit')->{status}, 200, 'audit');

is($h->get('/projects')->{status}, 200, 'Geti: projects');
is($h->get('/projects/' . pid(1))->{status}, 200, 'Geti: one project');
$res = $h->post('/projects/' . pid(1) . '/geti-models/download',
                { content => $json->encode({ models => [ { id => oid(1, 1),
                                                 group_id => gid(1) } ] }),
                  headers => { 'Content-Type' => 'application/json' } });
is($res->{status}, 201, 'Geti: an import, stored on S3')
    or diag $res->{content};
is($h->get('/models/' . oid(1, 1) . '/files')->{status}, 200,
   'its bytes download');
is($h->post('/geti/sync')->{status}, 202, 'Geti: a sync run');
ok($h->wait_for(sub {
       my $r = $h->get('/geti/sync')->{json}{last_run} // {};
       ($r->{outcome} // 'running') ne 'running' }, 60), 'which ends');
$res = $h->get('/metrics');
is($res->{status}, 200, '/metrics');
like($res->{content}, qr/^modelreg_storage_calls_total/m,
     'with the store\'s counters');
is($h->get('/health')->{status}, 200, '/health');

# ---- a wrong S3 secret: 503, nothing written; a DELETE's object queued,
# then removed by the clean-up timer's calls (libcurl), signed too
my $queued = $h->new_model(name => 'secret-gc', version => '1');
my $models = $h->psql('SELECT count(*) FROM models');
Modelreg::Harness::write_file($h->dir . '/s3_secret',
                              "s3-wrong-secret-Ze6Yh8NmQ1\n");
reload();
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 503 }),
   'a wrong S3 secret: ready 503');
$res = $h->register(name => 'wrong-secret', version => '1');
is($res->{status}, 503, 'register: 503');
is($res->{content}, $sdown, 'naming the store');
like($h->error_log, qr/failed: 403 SignatureDoesNotMatch/,
     'the log says SignatureDoesNotMatch');
is($h->psql('SELECT count(*) FROM models'), $models, 'no row written');
is($h->delete("/models/$queued")->{status}, 204, 'a DELETE: 204');
ok($h->wait_for(sub { $h->error_log =~ /storage clean-up: \d+ removed, [1-9]/ }),
   'its object queued, the clean-up timer fails to remove it');
Modelreg::Harness::write_file($h->dir . '/s3_secret', "modelreg-secret\n");

# ---- a token Geti refuses: 503
$h->{opt}{geti_use_token} = 'geti-wrong-token-Rb4Vs7KdP2';
reload();
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }),
   'the right S3 secret again: ready');
ok($h->wait_for(sub { $h->psql('SELECT count(*) FROM storage_gc') == 0 }, 30),
   'and the clean-up timer removes the object');
ok($h->wait_for(sub { $h->get('/projects')->{status} == 503 }),
   'a refused Geti token: 503');
is($h->get('/projects')->{content}, $gdown, 'naming Geti');
like($h->error_log, qr/Geti refused the token: GET .*: 401/,
     'the log says Geti refused it');
delete $h->{opt}{geti_use_token};

# ---- a wrong database password: 503
$h->{db_password} = 'db-wrong-password-Wc2Gt5XaJ9';
reload();
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 503 }),
   'a wrong database password: ready 503');
is($h->get("/models/$id")->{content}, $ddown, 'a read: 503');
like($h->error_log, qr/password authentication failed for user "modelreg"/,
     'the log says PostgreSQL refused it');
$h->{db_password} = $secret{db};
reload();
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }),
   'the right password: ready');

# ---- the password from a password file (libpq's passfile=, the worker's
# to read, 0600): what README advises instead of the conninfo
my $pgpass = $h->dir . '/pgpass';
Modelreg::Harness::write_file($pgpass, "127.0.0.1:" . $h->pg_port
                                       . ":modelreg:modelreg:$secret{db}\n");
chmod 0600, $pgpass;
$h->give($pgpass);
$h->{opt}{database} = 'modelreg_database "host=127.0.0.1 port=' . $h->pg_port
    . " dbname=modelreg user=modelreg passfile=$pgpass\" pool=4 timeout=5s;";
reload();
ok($h->wait_for(sub { $h->get("/models/$id")->{status} == 404 }),
   'the password from passfile=: the database answers');
delete $h->{opt}{database};
reload();
is($h->get('/projects')->{status}, 200, 'and Geti takes its token again');

# ---- the database down: 503
$h->stop_pg;
is($h->get('/models')->{content}, $ddown, 'the database down: a list 503');
is($h->register(name => 'down', version => '1')->{status}, 503,
   'register 503');
is($h->get('/health/ready')->{status}, 503, 'ready 503');
$h->start_pg;
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }),
   'back: ready');
is($h->get('/models/' . oid(1, 1))->{status}, 200, 'serving again');
is($h->get('/metrics')->{status}, 200, '/metrics after the errors');
is($h->get('/health')->{status}, 200, '/health after the errors');

# ---- the search: every secret, every log, every answer
my $s = $h->secrets;
my %kinds;
$kinds{ $s->{$_} =~ s/ \(.*//r }++ for keys %$s;
is_deeply([ sort keys %kinds ],
          [ 'Geti token', 'S3 access key', 'S3 secret key',
            'S3 session token', 'SigV4 key', 'database password' ],
          'every kind of secret is searched for');
my $day = strftime('%Y%m%d', gmtime);
my $signing = 'AWS4modelreg-secret';
$signing = Digest::SHA::hmac_sha256($_, $signing)
    for $day, 'us-east-1', 's3';
ok($s->{ hmac_sha256_hex('aws4_request', $signing) },
   "today's SigV4 signing key among them ($day)");
ok(scalar(grep { $_ eq 'S3 secret key' } values %$s) >= 2,
   'the wrong S3 secret too');
ok(scalar(grep { $_ eq 'database password' } values %$s) >= 2,
   'the wrong database password too');
ok(scalar(grep { $_ eq 'Geti token' } values %$s) >= 2,
   'the refused Geti token too');

my $c = $h->check_secrets;
is_deeply($c->{leaks}, [], 'no secret in any log or answer')
    or diag join "\n", @{ $c->{leaks} };
my $lines = () = $h->error_log =~ /\n/g;
note sprintf('%d secrets (or derived keys) searched in %d answers and '
             . '%d log lines', scalar keys %$s, $h->{answers_scanned},
             $lines);

# what nginx itself writes at debug level of each request it proxies to
# the store: the Authorization header (the access key, then the
# signature: never the secret) and the session token, in its dump of
# the request and in the values of the variables they are set from
my @own = sort keys %{ $c->{nginx} };
is_deeply(\@own, [ "S3 access key in nginx's debug log of a proxied request",
                   "S3 session token in nginx's debug log of a proxied request"
                 ], 'nginx\'s own debug lines name the access key and the '
                    . 'session token') or diag explain $c->{nginx};
note "$_: $c->{nginx}{$_}" for @own;
like($h->error_log, qr/\nAuthorization:\ AWS4-HMAC-SHA256\ Credential=
                       modelreg:s3\/\d{8}\/us-east-1\/s3\/aws4_request,
                       \ SignedHeaders=[-a-z0-9;]+,\ Signature=[0-9a-f]{64}
                       \r\n/x,
     'the Authorization header nginx logs: a signature, not a key');
is(scalar(() = $h->error_log =~ /modelreg (?:s3|store)\b.*Signature=/g), 0,
   'the module\'s own traces print no signature');
unlike(Modelreg::Harness::slurp($h->dir . '/logs/access.log'),
       qr/modelreg:s3/, 'the access log names no key');

$h->finish;

# ---- the search finds what is there: each secret in a query string is
# written by nginx into the access log (and the debug log)
my $before = @{ $h->check_secrets->{leaks} };
my @written = ($secret{db}, $secret{geti}, $secret{s3_token},
               'modelreg-secret', hmac_sha256_hex('aws4_request', $signing));
$h->get("/models?name=$_") for @written;
# (nginx logs a request after its answer is sent: the last line may come
# after the client has read it, as it did under ASan)
$h->wait_for(sub { index(Modelreg::Harness::slurp($h->dir . '/logs/access.log')
                         // '', $written[-1]) >= 0 }, 20);
my @found = @{ $h->check_secrets->{leaks} };
is($before, 0, 'no leak before');
for my $kind ('database password', 'Geti token', 'S3 session token',
              'S3 secret key', 'SigV4 key') {
    ok((grep { /^\Q$kind\E.* in access\.log: / } @found),
       "a $kind written to the access log is found");
}

done_testing();
