# Proves: conf/modelreg-ctl ("make run" / "make stop"), run on a private
# var/ and free ports, serves the shipped configurations (conf/modelreg.conf,
# and conf/modelreg-s3.conf on a local Swift) and they record no identity
# they have not verified: a client's "Authorization: Basic" is not the
# audit actor; /metrics answers loopback (127.0.0.1) only; /docs and its
# swagger-ui files are served. "stop" returns only once every process of
# the instance is gone, also when the nginx master or the postmaster
# ignores signals (SIGSTOP) or the pid file is lost; "start" over a master
# that a stuck worker keeps alive waits for it to be gone, and the new
# master serves with its own pid file.  Download links work out of the
# box: a key of 32 random bytes in var/link_key (0600), kept across a
# restart (a link made before it still downloads), on both confs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use JSON::PP;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(no_pg => 1, no_nginx => 1);
my $ctl = "$Modelreg::Harness::TOP/conf/modelreg-ctl";
my $var = $h->dir . '/var';
my $port = Modelreg::Harness::free_port();
my $url = "http://127.0.0.1:$port";
my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);

delete $ENV{$_} for grep { /^GETI_/ } keys %ENV;
$ENV{MODELREG_VAR} = $var;
$ENV{HTTP_PORT} = $port;
$ENV{PG_PORT} = Modelreg::Harness::free_port();
$ENV{S3_PORT} = Modelreg::Harness::free_port();
$ENV{MODELREG_STOP_WAIT} = 1;
$ENV{STORAGE} = 'fs';

sub ctl {
    my ($cmd) = @_;
    my ($rc, $out) = Modelreg::Harness::run_cmd('bash', $ctl, $cmd);
    return ($rc, $out);
}

# the rest means nothing without a running instance
sub start_ok {
    my ($name) = @_;
    my ($rc, $out) = ctl('start');
    is($rc, 0, $name) or diag $out;
    $rc == 0 or BAIL_OUT("$ctl start failed");
}

# whatever happens, nothing of this instance outlives the test
END { local $?; ctl('stop') if -d "$var/log" }

# gone: no such process, or a zombie (it holds nothing any more)
sub alive {
    my ($pid) = @_;
    my $s = Modelreg::Harness::slurp("/proc/$pid/stat") // return 0;
    my ($state) = $s =~ /\) (\S)/;
    return $state ne 'Z';
}

sub children {
    my ($ppid) = @_;
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = Modelreg::Harness::slurp($stat) // next;
        my ($pid, $parent) = $s =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        push @pids, $pid if $parent == $ppid;
    }
    return @pids;
}

sub master { my $p = Modelreg::Harness::slurp("$var/run/nginx.pid");
             chomp $p if defined $p; return $p }

sub postmaster {
    my $p = Modelreg::Harness::slurp("$var/pg/postmaster.pid") // return;
    return (split /\n/, $p)[0];
}

sub get_from {
    my ($path, $from) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  LocalAddr => $from, Proto => 'tcp')
        or die "connect from $from: $!";
    print $s "GET $path HTTP/1.0\r\nHost: x\r\n\r\n";
    return checked('GET', $path, $h->read_response($s, 10))->{status};
}

# an answer of the shipped configuration, checked against the OpenAPI
# document as the harness checks its own
sub checked {
    my ($method, $path, $res) = @_;
    $h->openapi_check($method, $path, $res,
                      Modelreg::Harness::slurp("$var/root/conf/modelreg.conf"));
    return $res;
}

sub port_open {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp');
    return $s ? 1 : 0;
}

# ---- the shipped configuration, as "make run" starts it
start_ok('start');
my ($rc, $out);
is(checked(GET => '/health/ready', $http->get("$url/health/ready"))->{status},
   200, 'ready on a free port');
ok(-l "$var/root/var" && readlink("$var/root/var") eq $var,
   'nginx runs from a prefix whose var/ is ours');
is(Modelreg::Harness::slurp("$var/root/conf/modelreg.conf") =~
       s/\Q127.0.0.1:$port;\E/127.0.0.1:8111;/r =~ s/ port=\d+ / port=5544 /r,
   Modelreg::Harness::slurp("$Modelreg::Harness::TOP/conf/modelreg.conf"),
   'the shipped text, only the ports changed');

sub unverified_actor {
    my ($name) = @_;
    my $zip = Modelreg::Harness::zip_of('m.xml', 'x');
    my ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'file', filename => 'm.zip', type => 'application/zip',
          value => $zip },
        { name => 'name', value => $name }, { name => 'version', value => 1 });
    my $res = checked(POST => '/models', $http->post("$url/models", {
        content => $body, headers => { 'Content-Type' => $ct,
        Authorization => 'Basic ' . encode_base64('mallory:guess', '') } }));
    is($res->{status}, 201, "$name: registered with a Basic header")
        or diag $res->{content};
    $res = checked(GET => "/audit?model_id=$res->{content}",
                   $http->get("$url/audit?model_id=$res->{content}"));
    like($res->{content}, qr/"actor" : "-"/, "$name: the actor is -");
    unlike($res->{content}, qr/mallory/, "$name: not the client's user");

    is(get_from('/metrics', '127.0.0.1'), 200, "$name: /metrics on loopback");
    is(get_from('/metrics', '127.0.0.2'), 403,
       "$name: /metrics refused to another address");
    is(get_from('/health', '127.0.0.2'), 200, "$name: the API is not");

    # /docs, and swagger-ui's files from the conf's static location
    is($http->get("$url/docs")->{status}, 200, "$name: /docs");
    $res = $http->get("$url/docs/swagger-ui-bundle.js");
    is("$res->{status} " . ($res->{headers}{'content-type'} // ''),
       '200 application/javascript', "$name: swagger-ui at docs/");
}

unverified_actor('modelreg.conf');

# download links work out of the box: a key made once (0600), kept
sub link_works {
    my ($name, $url_of) = @_;
    my $key = Modelreg::Harness::slurp("$var/link_key") // '';
    like($key, qr/\A[0-9a-f]{64}\n\z/, "$name: a key of 32 random bytes");
    is((stat "$var/link_key")[2] & 07777, 0600, "$name: the key is 0600");
    my $zip = Modelreg::Harness::zip_of('m.xml', "linked $name");
    my ($body, $ct) = Modelreg::Harness::multipart(
        { name => 'file', filename => 'm.zip', type => 'application/zip',
          value => $zip },
        { name => 'name', value => "link $name" },
        { name => 'version', value => 1 });
    my $id = $http->post("$url/models", { content => $body,
                         headers => { 'Content-Type' => $ct } })->{content};
    my $res = checked(POST => "/models/$id/links",
                      $http->post("$url/models/$id/links"));
    is($res->{status}, 201, "$name: POST /models/{id}/links");
    my $link = eval { JSON::PP->new->decode($res->{content})->{url} } // '';
    $res = checked(GET => $link, $http->get("$url$link"));
    is($res->{content}, $zip, "$name: the link downloads the file");
    return ($key, $link, $zip);
}
my ($key, $link, $linked) = link_works('modelreg.conf');

# ---- restart over a stuck worker: its master outlives QUIT
my $old = master();
my @old = ($old, children($old));
kill 'STOP', $old[1];
start_ok('restart over a stopped worker');
is_deeply([ grep { alive($_) } @old ], [],
          'every old process is gone when start returns');
my $new = master();
ok($new && $new != $old && alive($new), 'a new master, in the pid file');
is(checked(GET => '/health/ready', $http->get("$url/health/ready"))->{status},
   200, 'it serves');
unlike(Modelreg::Harness::slurp("$var/log/error.log"), qr/bind\(\)/,
       'no bind() failure');
is(Modelreg::Harness::slurp("$var/link_key"), $key,
   'the link key is kept across a restart');
is($http->get("$url$link")->{content}, $linked,
   'a link made before the restart still works');

# ---- stop with the master and the postmaster deaf to signals
my @nginx = ($new, children($new));
my $pm = postmaster();
my @pg = ($pm, children($pm));
kill 'STOP', $new, $pm;
($rc, $out) = ctl('stop');
is($rc, 0, 'stop with a stopped master and postmaster') or diag $out;
is_deeply([ grep { alive($_) } @nginx, @pg ], [],
          'nginx (master, workers) and PostgreSQL are gone');
ok(!port_open(), 'the port is free');

# ---- a pid file lost (an old master's exit used to delete the new one's)
start_ok('start after a kill');
@nginx = (master(), children(master()));
unlink "$var/run/nginx.pid" or die $!;
($rc, $out) = ctl('stop');
is($rc, 0, 'stop without a pid file') or diag $out;
is_deeply([ grep { alive($_) } @nginx ], [], 'nginx found and gone');

# ---- the shipped S3 configuration, on a local Swift
$ENV{STORAGE} = 's3';
start_ok('start STORAGE=s3');
like(Modelreg::Harness::slurp("$var/root/conf/modelreg-s3.conf"),
     qr{endpoint=http://127\.0\.0\.1:$ENV{S3_PORT} }, 'Swift on a free port');
unverified_actor('modelreg-s3.conf');
link_works('modelreg-s3.conf');
my @swift = map { my $p = Modelreg::Harness::slurp($_); chomp $p; $p }
            glob "$var/swift/run/*.pid";
ok(@swift >= 5, 'Swift and memcached are running');
($rc, $out) = ctl('stop');
is($rc, 0, 'stop STORAGE=s3') or diag $out;
is_deeply([ grep { alive($_) } @swift ], [], 'Swift is gone');
ok(!port_open(), 'the port is free');

done_testing();
