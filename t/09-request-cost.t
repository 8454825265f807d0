# Proves: what one hostile client can still make a worker hold is bounded
# by the largest model, not by what the client sends or how slowly it
# reads (README "Limits").  On one worker, with models of the largest
# size (overview, optimization_capabilities and labels of ~1 MiB each):
# - 10 POSTs that send all three ~1 MiB fields and then stall before
#   their end: the worker's memory grows by at most ~4 MiB each (the
#   fields, kept until the body ends), and each is closed at
#   client_body_timeout with nothing written;
# - 10 clients that ask for such a model and never read: at most ~4 MiB
#   each (the row), released when nginx's send_timeout closes them;
# - the worker answers /health throughout.
# The numbers are printed (diag) for README; bounds are memory, not time.
# (make test-asan prints them but asserts no bound: RSS then holds ASan's
# quarantine of freed blocks.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use Modelreg::Harness;

my $N = 10;
my $h = Modelreg::Harness->new(workers => 1,
    server => 'client_body_timeout 3s; send_timeout 3s;');
my ($worker) = $h->worker_pids;

sub mem { Modelreg::Harness::proc_kib($worker, $_[0]) / 1024 }

my $mib = 1 << 20;
my %big = (
    overview => '{"k":"' . ('o' x ($mib - 100)) . '"}',
    optimization_capabilities => '{"k":"' . ('c' x ($mib - 100)) . '"}',
    labels => '["' . ('l' x ($mib - 100)) . '"]',
);

# warm up: what every request reuses is allocated once
my $id = $h->new_model(name => 'big', version => '1', %big);
is($h->get("/models/$id")->{status}, 200, 'the largest model reads');
$h->new_model(name => 'big', version => '2', %big);

# ---- POSTs that stall once their fields are in
my ($body, $ct) = Modelreg::Harness::multipart(
    { name => 'name', value => 'stall' }, { name => 'version', value => '1' },
    map({ { name => $_, value => $big{$_} } } sort keys %big),
    { name => 'file', filename => 'm.zip', type => 'application/zip',
      value => Modelreg::Harness::zip_of('m', 'x' x 1000) });
my $cut = index($body, 'name="file"');

my $rss0 = mem('VmRSS');
my @socks;
for (1 .. $N) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port) or die $!;
    print $s "POST /models HTTP/1.0\r\nHost: x\r\nContent-Type: $ct\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n"
           . substr($body, 0, $cut);
    push @socks, $s;
}
ok($h->wait_for(sub { mem('VmRSS') - $rss0 > 2 * $N }, 10),
   'the stalled POSTs\' fields are in') or diag(mem('VmRSS') - $rss0);
sleep 0.5;
my $post = (mem('VmRSS') - $rss0) / $N;
diag(sprintf "a POST stalled after 3 MiB of fields holds %.1f MiB", $post);
SKIP: {
    skip 'RSS under ASan holds its quarantine and redzones', 1
        if Modelreg::Harness::sanitized();
    cmp_ok($post, '<', 4, 'each holds at most ~4 MiB');
}
is($h->get('/health')->{status}, 200, '/health answers meanwhile');
my @res = map { $h->read_response($_, 20) } @socks;
is(scalar(grep { $_->{status} == 599 } @res), $N,
   'each is closed at client_body_timeout, unanswered');
is($h->psql("SELECT count(*) FROM models WHERE name = 'stall'"), 0,
   'nothing written');

# ---- readers that never read
$rss0 = mem('VmRSS');
@socks = ();
for (1 .. $N) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port) or die $!;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
    print $s "GET /models/$id HTTP/1.0\r\nHost: x\r\n\r\n";
    push @socks, $s;
}
sleep 1.5;
my $get = (mem('VmRSS') - $rss0) / $N;
diag(sprintf "a reader that never reads a 3 MiB model holds %.1f MiB", $get);
SKIP: {
    skip 'RSS under ASan holds its quarantine and redzones', 1
        if Modelreg::Harness::sanitized();
    cmp_ok($get, '<', 4, 'each holds at most ~4 MiB');
}
is($h->get('/health')->{status}, 200, '/health answers meanwhile');
sleep 4;
my $full = length $h->get("/models/$id")->{content};
@res = map { $h->read_response($_, 20) } @socks;
is(scalar(grep { length($_->{content}) < $full } @res), $N,
   'each was cut off at send_timeout');

$h->finish;
done_testing;
