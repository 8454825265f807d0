# Proves, on a real S3 (OpenStack Swift's s3api, which verifies SigV4,
# clock skew and payload SHA-256): objects above part_size go by
# multipart upload and come back intact; a key of the printable bytes
# SigV4 escapes is signed as the store checks it; a store-side digest
# mismatch (BadDigest) in a part fails the upload cleanly, its parts
# removed; a wrong secret gives 503 and a log that says why without the
# secret; with the store stopped POST/GET/ready answer 503 and DELETE 204
# with the object queued, and once the store is back the queue drains
# (the clean-up timer's DELETE goes through libcurl); downloads show none
# of the store's own headers; no log holds a secret or a signature.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use Modelreg::Harness;

my $h = Modelreg::Harness->new(storage => 's3', part_size => '5m', gc => '1s',
                               db => 'pool=4 timeout=5s');
my $sdown = '{"detail":"Object storage unavailable."}';

# ---- multipart: 12 MiB in parts of 5 MiB
my $big = "PK\x03\x04" . join('', map { chr(($_ * 7) % 251) } 1 .. 12 << 20)
        . "PK\x05\x06" . ("\0" x 18);
my $res = $h->register(name => 'parts', version => '1',
                       file => { value => $big },
                       headers => { Accept => 'application/json' });
is($res->{status}, 201, 'a 12 MiB model in 3 parts') or diag $res->{content};
my $id = $res->{json}{id};
is($res->{json}{sha256}, sha256_hex($big), 'its sha256');
like($res->{json}{file_url}, qr{^s3://models/\Q$id\E/}, 'file_url in s3');
$res = $h->get("/models/$id/files");
is(length $res->{content}, length $big, 'downloaded whole');
ok($res->{content} eq $big, 'byte for byte');
is_deeply([ $h->pending_uploads ], [], 'no parts left in the store');

# ---- the store's headers never reach the client
my @leak = grep { /^(x-amz-|x-trans-|x-openstack-|x-timestamp)/i }
           keys %{ $res->{headers} };
is_deeply(\@leak, [], 'no x-amz-*, Swift ids or timestamps');
like($res->{headers}{server}, qr/^nginx/, 'Server is nginx\'s');
is($res->{headers}{etag}, '"' . sha256_hex($big) . '"', 'ETag is ours');
$res = $h->get("/models/$id/files", { headers => { Range => 'bytes=-5' } });
is($res->{status}, 206, 'suffix range through the proxy');
is($res->{content}, substr($big, -5), 'the last 5 bytes');
$res = $h->get("/models/$id/files",
               { headers => { 'If-None-Match' => '"' . sha256_hex($big) . '"' } });
is($res->{status}, 304, '304 without asking the store');

# ---- a key of the printable bytes SigV4 escapes (but the "/", "\" and
# '"' a file name cannot hold): nginx's ngx_escape_uri, the one that
# ships, must encode it as the store does when it checks the signature
my $odd = q{ !#$%&'()*+,:;<=>?@[]^`{|}~.zip};
$res = $h->register(name => 'odd', version => '1',
                    file => { filename => $odd },
                    headers => { Accept => 'application/json' });
is($res->{status}, 201, 'a key of sub-delims and the like: stored')
    or diag $res->{content};
is($res->{json}{file_name}, $odd, 'under its own name');
my $oid = $res->{json}{id};
my ($okey) = $h->psql("SELECT storage_key FROM models WHERE id = '$oid'");
ok($h->has_object($okey), 'the store has it under that key');
is($h->get("/models/$oid/files")->{status}, 200, 'downloaded');
is($h->delete("/models/$oid")->{status}, 204, 'deleted');
ok(!$h->has_object($okey), 'and removed from the store');

# ---- BadDigest: a part changed after it was hashed
my $huge = "PK\x03\x04" . ('m' x (40 << 20)) . "PK\x05\x06" . ("\0" x 18);
my ($body, $ct) = Modelreg::Harness::multipart(
    { name => 'file', filename => 'b.zip', type => 'application/zip',
      value => $huge },
    { name => 'name', value => 'digest' }, { name => 'version', value => '1' });
my $s = $h->send_raw('POST', '/models', $body, { 'Content-Type' => $ct });
my $corrupted = $h->wait_for(sub {
    my @spool = $h->temp_files;
    return 0 unless @spool && (-s $spool[0]) == length($huge)
                   && $h->pending_uploads;
    open(my $fh, '+<', $spool[0]) or return 0;
    seek($fh, length($huge) - 100, 0);
    print $fh 'X' x 10;             # the last part, not yet sent
    close $fh;
    return 1;
}, 60);
ok($corrupted, 'the spooled file was changed under the upload');
$res = $h->read_response($s, 60);
is($res->{status}, 503, 'BadDigest: 503');
is($res->{content}, $sdown, 'naming the store');
like($h->error_log, qr/part upload of ".*" failed: 400 BadDigest/,
     'the log says BadDigest');
ok($h->wait_for(sub { !$h->pending_uploads }), 'the parts are removed');
is($h->psql("SELECT count(*) FROM models WHERE name = 'digest'"), 0,
   'no row');
is_deeply([ grep { !/^\Q$id\E\// } $h->objects ], [], 'no object');

# ---- the store stops
my $keep = $h->new_model(name => 'keep', version => '1');
my ($kkey) = $h->psql("SELECT storage_key FROM models WHERE id = '$keep'");
$h->stop_swift;

$res = $h->register(name => 'nostore', version => '1');
is($res->{status}, 503, 'POST without the store: 503');
is($res->{content}, $sdown, 'naming the store');
is($h->psql("SELECT count(*) FROM models WHERE name = 'nostore'"), 0,
   'nothing written');
$res = $h->get("/models/$keep/files");
is($res->{status}, 503, 'download without the store: 503');
is($res->{content}, $sdown, 'as JSON');
is($res->{headers}{'content-type'}, 'application/json', 'not XML');
$res = $h->get('/health/ready');
is($res->{status}, 503, 'not ready');
like($res->{content}, qr/"storage":"unavailable"/, 'the store is named');
is($h->delete("/models/$keep")->{status}, 204, 'DELETE: 204');
is($h->psql("SELECT count(*) FROM storage_gc WHERE storage_key = '$kkey'"),
   1, 'the object is queued');

# hold the queue's next attempt back while the store starts, so that the
# object can be seen still there (the timer may retry at any moment
# otherwise, and CI saw it win the race); then let it run
$h->psql("UPDATE storage_gc SET next_attempt_at = now() + interval '1 hour'");
$h->start_swift;
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }, 30),
   'the store is back');
ok($h->has_object($kkey), 'the object is still there');
$h->psql('UPDATE storage_gc SET next_attempt_at = now()');
ok($h->wait_for(sub { !$h->has_object($kkey) }, 40),
   'the clean-up timer removes it');
ok($h->wait_for(sub { $h->psql('SELECT count(*) FROM storage_gc') == 0 }),
   'and the queue is empty');
is($h->register(name => 'nostore', version => '1')->{status}, 201,
   'registering works again');

# ---- no secret, no signature in any log
my $logs = join '', map { Modelreg::Harness::slurp($_) // '' }
                    glob($h->dir . '/logs/*.log');
unlike($logs, qr/modelreg-secret/, 'no secret key in the logs');
SKIP: {
    # nginx itself logs the Authorization header it sends at debug level
    # (t/43-secrets.t shows exactly what); the harness's own check stays
    skip 'nginx logs the signed header at debug level', 1
        if ($ENV{MODELREG_LOG_LEVEL} // '') eq 'debug';
    unlike($logs, qr/Signature=[0-9a-f]{64}/, 'no signature in the logs');
}

$h->finish;
undef $h;

# ---- a wrong secret
my $w = Modelreg::Harness->new(storage => 's3');
Modelreg::Harness::write_file($w->dir . '/s3_secret', "not-the-secret\n");
$w->stop_nginx;
$w->start_nginx;
$res = $w->register(name => 'wrong', version => '1');
is($res->{status}, 503, 'a wrong secret: 503');
is($res->{content}, $sdown, 'naming the store');
like($w->error_log, qr/PUT ".*" failed: 403 SignatureDoesNotMatch/,
     'the log says SignatureDoesNotMatch');
unlike($w->error_log, qr/not-the-secret/, 'without printing the secret');
is($w->psql('SELECT count(*) FROM models'), 0, 'no row written');
$w->finish;

done_testing();
