# Proves: memory stays flat however big the upload.  A 1 GiB model is
# registered and downloaded through one nginx worker; the sha256 matches
# both ways, and the worker's peak RSS (VmHWM in /proc) grows by less than
# 32 MiB.  This is a memory bound, not a timing.  MODELREG_BIG_MB sets the
# size (default 1024).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA;
use IO::Select;
use Modelreg::Harness;

my $mb = $ENV{MODELREG_BIG_MB} || 1024;
my $h = Modelreg::Harness->new(workers => 1);
my ($worker) = $h->worker_pids;

sub mem { Modelreg::Harness::proc_kib($worker, $_[0]) / 1024 }

# warm up: the first requests allocate what every request reuses
$h->new_model(name => 'warm', version => '1');
$h->get('/models');
my $rss0 = mem('VmRSS');

# a ZIP-shaped body: local header, 1 MiB blocks, an EOCD
my $block = join '', map { chr(int rand 256) } 1 .. 1 << 20;
my $head = "PK\x03\x04" . ("\0" x 26);
my $eocd = "PK\x05\x06" . ("\0" x 18);
my $size = length($head) + $mb * length($block) + length($eocd);
my $b = 'bigboundary' . int rand 1e9;
my $pre = "--$b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbig\r\n"
        . "--$b\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1\r\n"
        . "--$b\r\nContent-Disposition: form-data; name=\"file\";"
        . " filename=\"big.zip\"\r\nContent-Type: application/zip\r\n\r\n";
my $post = "\r\n--$b--\r\n";

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $h->port)
    or die $!;
print $s "POST /models HTTP/1.0\r\nHost: x\r\n"
       . "Content-Type: multipart/form-data; boundary=$b\r\n"
       . "Content-Length: " . (length($pre) + $size + length($post))
       . "\r\n\r\n";
my $sha = Digest::SHA->new(256);
syswrite_all($s, $pre);
$sha->add($head);
syswrite_all($s, $head);
for (1 .. $mb) {
    $sha->add($block);
    syswrite_all($s, $block);
}
$sha->add($eocd);
syswrite_all($s, $eocd . $post);
$h->sent($s, POST => '/models');
my $res = $h->read_response($s, 600);
is($res->{status}, 201, "registered $mb MiB") or diag $res->{content};
my $id = $res->{content};
my $sent = $sha->hexdigest;

my $m = $h->get("/models/$id")->{json};
is($m->{size}, $size, 'size');
is($m->{sha256}, $sent, 'sha256 computed while streaming');
my $up = mem('VmHWM') - $rss0;
cmp_ok($up, '<', 32, sprintf('upload: peak RSS grew %.1f MiB', $up));

# download, hashed as it streams
$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $h->port)
    or die $!;
print $s "GET /models/$id/files HTTP/1.0\r\nHost: x\r\n\r\n";
my ($buf, $hdr, $got) = ('', undef, 0);
$sha = Digest::SHA->new(256);
while (1) {
    my $n = sysread($s, $buf, 1 << 20, length $buf);
    last unless $n;
    if (!defined $hdr) {
        my $i = index($buf, "\r\n\r\n");
        next if $i < 0;
        $hdr = substr($buf, 0, $i);
        $buf = substr($buf, $i + 4);
    }
    $got += length $buf;
    $sha->add($buf);
    $buf = '';
}
like($hdr // '', qr{^HTTP/1\.1 200}, 'download 200');
# (its headers: the body was hashed as it came)
$h->openapi_check(GET => "/models/$id/files",
                  Modelreg::Harness::parse_response(($hdr // '') . "\r\n\r\n"));
is($got, $size, 'every byte');
is($sha->hexdigest, $sent, 'sha256 of the download matches');
my $down = mem('VmHWM') - $rss0;
cmp_ok($down, '<', 32, sprintf('download: peak RSS grew %.1f MiB', $down));

$h->delete("/models/$id");
$h->finish;
done_testing();

sub syswrite_all {
    my ($fh, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($fh, $data, length($data) - $off, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
}
