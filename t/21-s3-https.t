# Proves: an https S3 endpoint works through nginx's proxy SSL with
# verification on (a TLS front with a self-signed certificate for
# 127.0.0.1, trusted through the snippet's proxy_ssl_trusted_certificate
# and the directive's ssl_trusted_certificate for libcurl's calls):
# register, download, delete, and a background removal by the clean-up
# timer over TLS.  With the certificate not trusted, the store is
# unreachable: not ready, POST 503, nothing written.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(storage => 's3', tls => 'trusted', gc => '1s');

is($h->get('/health/ready')->{status}, 200, 'ready over https');
my $res = $h->register(name => 'tls', version => '1',
                       headers => { Accept => 'application/json' });
is($res->{status}, 201, 'registered over https');
my $id = $res->{json}{id};
my $zip = $h->get("/models/$id/files");
is($zip->{status}, 200, 'downloaded over https');
is($zip->{headers}{'content-type'}, 'application/zip', 'as a model');
is($h->delete("/models/$id")->{status}, 204, 'deleted over https');
is_deeply([ $h->objects ], [], 'gone from the store');

# an orphan for the clean-up timer, whose DELETE goes through libcurl
my $orphan = $h->new_model(name => 'orphan', version => '1');
my ($key) = $h->psql("SELECT storage_key FROM models WHERE id = '$orphan'");
$h->psql("DELETE FROM models WHERE id = '$orphan'");
$h->psql("INSERT INTO storage_gc (storage_key, reason) VALUES ('$key', 't')");
ok($h->wait_for(sub { !$h->has_object($key) }, 30),
   'the clean-up timer removes it over https (libcurl, verified)');
ok($h->wait_for(sub { $h->psql('SELECT count(*) FROM storage_gc') == 0 }),
   'and dequeues it');
$h->finish;
undef $h;

my $u = Modelreg::Harness->new(storage => 's3', tls => 'untrusted');
$res = $u->get('/health/ready');
is($res->{status}, 503, 'an untrusted certificate: not ready');
like($res->{content}, qr/"storage":"unavailable"/, 'the store is named');
$res = $u->register(name => 'untrusted', version => '1');
is($res->{status}, 503, 'POST: 503');
is($res->{content}, '{"detail":"Object storage unavailable."}',
   'naming the store');
is($u->psql('SELECT count(*) FROM models'), 0, 'nothing written');
like($u->error_log, qr/certificate verify failed|SSL certificate verify error/,
     'the log says why');
$u->finish;

done_testing();
