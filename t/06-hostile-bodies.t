# Proves: a hostile request body costs its worker neither time nor memory
# (issue 10, items 1 and 10).  A multipart body of 400,000 parts is
# answered 400 "Too many parts" on POST and on PUT and changes nothing;
# it costs the worker no more CPU than a benign body of its size (at most
# twice, plus 10 ticks: a ratio of two costs, not a time); the worker
# answers /health between the pieces of such a body; a 40 MB body of long
# distinct unknown names, and a 10 MB part header, grow the worker's peak
# RSS by less than 16 MiB.  Twenty PUTs that declare 4 MiB and send 10
# bytes reserve less than 16 MiB between them (their declared 80 MiB
# before: buffers now grow as bytes arrive); twenty uploads that stall 10
# bytes into their file part, less than 4 MiB (the write buffer and the
# ZIP ring were 320 KiB each from the part's headers on); each ends at
# client_body_timeout with its connection closed, unanswered.  One worker,
# so that every request lands on the worker measured.  Memory bounds, CPU
# ratios and counts of answers only, no timings.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use Modelreg::Harness;

$SIG{PIPE} = 'IGNORE';

my $h = Modelreg::Harness->new(workers => 1, server => <<'SRV');
location /slow/ { modelreg; client_max_body_size 0; client_body_timeout 5s; }
SRV
my ($worker) = $h->worker_pids;
my $json = JSON::PP->new->utf8;
my $too_many = $json->encode(
    { detail => 'Too many parts: at most 64 are allowed.' });
my $mp = 'multipart/form-data; boundary=B';

# /proc/<worker>/status, in KiB
sub vm { Modelreg::Harness::proc_kib($worker, $_[0]) }

# the worker's CPU time so far (user + system), in clock ticks
sub cpu {
    my $s = Modelreg::Harness::slurp("/proc/$worker/stat") // '';
    my @f = split ' ', ($s =~ /\) (.*)/)[0] // die "no stat for $worker";
    return $f[11] + $f[12];
}

# VmHWM back to the RSS of now
sub reset_peak { Modelreg::Harness::reset_peak($worker) }

# $n parts of one short value each, the name of part $i made by $name->($i)
sub parts {
    my ($n, $name) = @_;
    my $body = '';
    $body .= "--B\r\nContent-Disposition: form-data; name=\""
             . $name->($_) . "\"\r\n\r\nx\r\n" for 1 .. $n;
    return $body . "--B--\r\n";
}

sub send_all {
    my ($method, $path, $body) = @_;
    my $s = $h->send_raw($method, $path, $body, { 'Content-Type' => $mp });
    return $h->read_response($s, 300);
}

# warm up: what every request reuses is allocated once
my $id = $h->new_model(name => 'target', version => '1');
$h->get("/models/$id");
my $models = $h->psql('SELECT count(*) FROM models');

# ---- 400,000 distinct unknown names: refused at the 65th part
my $hostile = parts(400_000, sub { sprintf 'f%08d', $_[0] });

# what a benign body of the same size costs the worker: one file part,
# parsed, hashed and spooled (then refused: not a ZIP)
my $pre = "--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nb\r\n"
        . "--B\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1\r\n"
        . "--B\r\nContent-Disposition: form-data; name=\"file\";"
        . " filename=\"b.zip\"\r\nContent-Type: application/zip\r\n\r\n";
my $cpu = cpu();
my $res = send_all('POST', '/models', $pre . ('z' x (length($hostile)
                                                    - length($pre) - 13))
                                      . "\r\n--B--\r\n");
is($res->{status}, 422, 'a benign body of the same size: 422 (not a ZIP)');
my $benign = cpu() - $cpu;

$cpu = cpu();
$res = send_all('POST', '/models', $hostile);
my $spent = cpu() - $cpu;
is($res->{status}, 400, 'POST of 400,000 parts: 400');
is($res->{content}, $too_many, 'POST: "Too many parts"');
is($h->psql('SELECT count(*) FROM models'), $models, 'POST: no row');

# a ratio of two costs on this machine, not a time limit
cmp_ok($spent, '<=', 2 * $benign + 10,
       "... cost the worker $spent CPU ticks, a benign body $benign");

# a PUT whose first part would rename the model
$res = send_all('PUT', "/models/$id",
                parts(1, sub { 'name' }) =~ s/--B--\r\n$//r
                . parts(400_000, sub { sprintf 'f%08d', $_[0] }));
is($res->{status}, 400, 'PUT of 400,001 parts: 400');
is($res->{content}, $too_many, 'PUT: "Too many parts"');
is($h->get("/models/$id")->{json}{name}, 'target', 'PUT: nothing changed');

# ---- the worker serves others while such a body streams in
{
    my $chunks = 40;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port) or die $!;
    print $s "POST /models HTTP/1.0\r\nHost: x\r\nContent-Type: $mp\r\n"
           . "Content-Length: " . length($hostile) . "\r\n\r\n";
    $h->sent($s, POST => '/models');
    my $piece = int(length($hostile) / $chunks) + 1;
    my $health = 0;
    for my $i (0 .. $chunks - 1) {
        print $s substr($hostile, $i * $piece, $piece);
        $health++ if $h->get('/health')->{status} == 200;
    }
    is($health, $chunks, "/health answered between each of $chunks pieces");
    $res = $h->read_response($s, 300);
    is($res->{content}, $too_many, 'then the hostile POST: "Too many parts"');
}

# ---- memory: long names, a long part header
my $hwm = reset_peak();
$res = send_all('POST', '/models',
                parts(5_000, sub { sprintf('n%08d', $_[0]) . ('n' x 7_990) }));
is($res->{content}, $too_many, '40 MB of long unknown names: 400');
my $up = (vm('VmHWM') - $hwm) / 1024;
cmp_ok($up, '<', 16, sprintf('... peak RSS grew %.1f MiB', $up));

$hwm = reset_peak();
$res = send_all('POST', '/models',
                "--B\r\nContent-Disposition: form-data; name=\""
                . ('n' x (10 << 20)) . "\"\r\n\r\nx\r\n--B--\r\n");
is($res->{status}, 400, 'a 10 MB part header: 400');
is($res->{content}, $json->encode({ detail => 'Malformed multipart body.' }),
   '... "Malformed multipart body."');
$up = (vm('VmHWM') - $hwm) / 1024;
cmp_ok($up, '<', 16, sprintf('... peak RSS grew %.1f MiB', $up));

# ---- PUTs that declare 4 MiB, send 10 bytes and stall
{
    my $n = 20;
    my $data0 = vm('VmData');
    my @socks;
    for (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $h->port) or die $!;
        print $s "PUT /slow/models/$id HTTP/1.0\r\nHost: x\r\n"
               . "Content-Type: application/x-www-form-urlencoded\r\n"
               . "Content-Length: 4194304\r\n\r\nname=abcde";
        push @socks, $s;
    }

    # the worker has read them once it answers a request sent after them
    is($h->get('/health')->{status}, 200, "$n stalled PUTs: still serving");
    my $grew = (vm('VmData') - $data0) / 1024;
    ok(!grep({ $h->has_response($_) } @socks), '... all still reading');
    cmp_ok($grew, '<', 16,
           sprintf('... the worker\'s data grew %.1f MiB', $grew));

    my $closed = 0;
    for my $s (@socks) {
        my $r = $h->read_response($s, 60);
        $closed++ if $r->{status} == 599;    # EOF, nothing sent
    }
    is($closed, $n, '... each closed at client_body_timeout, unanswered');
    my @timeouts = (Modelreg::Harness::slurp($h->dir . '/logs/access.log')
                    // '') =~ m{"PUT /slow/models/\S+ HTTP/1\.0" 408 }g;
    is(scalar @timeouts, $n, '... logged as 408');
    is($h->get("/models/$id")->{json}{name}, 'target', '... nothing changed');
}

# ---- POSTs whose file part begins, then stalls after 10 bytes
{
    my $n = 20;
    my $data0 = vm('VmData');
    my $head = "--B\r\nContent-Disposition: form-data; name=\"file\";"
             . " filename=\"s.zip\"\r\nContent-Type: application/zip\r\n\r\n"
             . "PK\x03\x04" . ('x' x 6);
    my @socks;
    for (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $h->port) or die $!;
        print $s "POST /slow/models HTTP/1.0\r\nHost: x\r\n"
               . "Content-Type: $mp\r\nContent-Length: 104857600\r\n\r\n"
               . $head;
        push @socks, $s;
    }

    is($h->get('/health')->{status}, 200, "$n stalled uploads: still serving");
    my $grew = (vm('VmData') - $data0) / 1024;
    ok(!grep({ $h->has_response($_) } @socks), '... all still reading');
    cmp_ok($grew, '<', 4,
           sprintf('... the worker\'s data grew %.1f MiB', $grew));

    my $closed = 0;
    for my $s (@socks) {
        $closed++ if $h->read_response($s, 60)->{status} == 599;
    }
    is($closed, $n, '... each closed at client_body_timeout, unanswered');
    is($h->psql('SELECT count(*) FROM models'), $models, '... no row');
    ok($h->wait_for(sub { !$h->temp_files }), '... no spooled file left');
}

is($h->get('/health')->{status}, 200, 'still serving');
$h->finish;
done_testing();
