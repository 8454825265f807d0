# Proves: download links that expire (API.md, README "Download links").
# In a location guarded by auth_basic with "satisfy any": no credentials
# and no link is 401; POST /models/{id}/links (with credentials) makes a
# link, and the link alone downloads the bytes (GET, HEAD, Range), on the
# fs store and on S3 (Swift); the same link on another model's path, under
# another prefix, on a path that only normalises to another model's, with
# a changed expiry or signature, duplicated arguments, another method or
# route, or after it expired, is 403 {"detail":"Invalid or expired link."}
# (never auth_basic's 401); after the key file is rotated and nginx
# reloaded, old links are 403 and new ones work.  auth_request the same.
# "satisfy all" keeps the gateway's auth.  The body's rules (422 and the
# default), 404, 400, 405, 503 without a key; nginx -t names
# modelreg_link_key for a missing, empty or short key file.  Every answer
# ends its request (keep-alive reuse after the 403, clients gone before
# reading, nginx's active connections back).  Runs at debug
# level: the key is in no log and no answer (the harness's finish()).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(sleep);
use POSIX qw(strftime);
use IO::Socket::INET;
use JSON::PP qw(decode_json);
use Modelreg::Harness;

my $AUTH = { Authorization => 'Basic ' . encode_base64('alice:wonder', '') };
my $LINK_RE =
    qr{\A(/[^?]*)\?expires=([1-9][0-9]*)&signature=([A-Za-z0-9_-]{43})\z};

# the configuration this test runs (the harness adds the database, the
# store and /docs/); KEY and DIR are filled in below
my $LOCATIONS = <<'LOC';
# (server level: every location below has it, but /nokey/)
modelreg_link_key DIR/link_key;

# the gateway's own auth next to links: a valid link lets a device in
location /registry/ {
    modelreg;
    modelreg_actor $remote_user;
    satisfy any;
    auth_basic "registry";
    auth_basic_user_file DIR/htpasswd;
    client_max_body_size 0;
}

# the same with auth_request
location /ar/ {
    modelreg;
    satisfy any;
    auth_request /_auth;
}
location = /_auth {
    internal;
    if ($http_authorization = "Basic YWxpY2U6d29uZGVy") { return 204; }
    return 401;
}

# satisfy all: a link does not replace the gateway's auth
location /all/ {
    modelreg;
    auth_basic "registry";
    auth_basic_user_file DIR/htpasswd;
}

# no links here
location /nokey/ { modelreg; modelreg_link_key off; }

# open, for the test's own set-up
location / { modelreg; client_max_body_size 0; auth_basic off; }
LOC

# the gateway's auth at server level (S3: the store's location inherits it)
my $SERVER_AUTH = <<'AUTH';
satisfy any;
auth_basic "gateway";
auth_basic_user_file DIR/htpasswd;
AUTH

sub start {
    my (%opt) = @_;
    my $server_auth = delete $opt{server_auth};
    my $h = Modelreg::Harness->new(no_nginx => 1, log_level => 'debug',
                                   stub_status => 1, %opt);
    my $d = $h->dir;
    write_file("$d/link_key", key("first") . "\n");
    chmod 0600, "$d/link_key";
    write_file("$d/htpasswd", "alice:{PLAIN}wonder\n");
    chmod 0644, "$d/htpasswd";
    (my $loc = ($server_auth ? $SERVER_AUTH : '') . $LOCATIONS) =~ s/DIR/$d/g;
    $h->{opt}{location} = $loc;
    $h->start_swift if $h->storage eq 's3';
    $h->start_nginx;
    return $h;
}

sub key { my ($seed) = @_; return substr(unpack('H*', $seed) x 16, 0, 64) }

sub write_file {
    my ($f, $text) = @_;
    open my $fh, '>', $f or die "$f: $!";
    print $fh $text;
    close $fh;
}

sub link_of {
    my ($h, $prefix, $id, $body) = @_;
    my $res = $h->post("$prefix/models/$id/links",
                       { headers => { %$AUTH,
                                      'Content-Type' => 'application/json' },
                         content => $body // '{"expires_in":600}' });
    die "links: $res->{status} $res->{content}" unless $res->{status} == 201;
    return $res->{json}{url};
}

sub is_refused {
    my ($res, $what) = @_;
    is($res->{status}, 403, "$what: 403")
        && is($res->{json} && $res->{json}{detail}, 'Invalid or expired link.',
              "$what: the link's message");
}

my $h = start();
my $d = $h->dir;

my $zip_a = Modelreg::Harness::zip_of('a.bin', join '', map { chr } 0 .. 255);
my $zip_b = Modelreg::Harness::zip_of('b.bin', 'b' x 1000);
my $a = $h->new_model(name => 'linked', version => '1', file => $zip_a);
my $b = $h->new_model(name => 'linked', version => '2', file => $zip_b);

# ---- the gateway's auth, and the link ---------------------------------

my $res = $h->get("/registry/models/$a/files");
is($res->{status}, 401, 'no credentials, no link: 401 (auth_basic)');
ok($res->{headers}{'www-authenticate'}, '... asking for credentials');

$res = $h->get("/registry/models/$a/files", { headers => $AUTH });
is($res->{status}, 200, 'credentials: 200');

my $t0 = time;
$res = $h->post("/registry/models/$a/links",
                { headers => $AUTH, content => '{"expires_in": 600}' });
is($res->{status}, 201, 'POST /models/{id}/links: 201');
my $url = $res->{json}{url};
my ($path, $exp, $sig) = ($url // '') =~ $LINK_RE;
is($path, "/registry/models/$a/files",
   'the link is the /files path under the location prefix');
ok($exp >= $t0 + 600 && $exp <= time + 600, 'it expires in expires_in s');
is($res->{json}{expires},
   strftime('%Y-%m-%d %H:%M:%S.000000 UTC', gmtime $exp),
   '"expires" is that time in the API format');
is($res->{headers}{location}, $url, 'Location: the link');
is_deeply([sort keys %{ $res->{json} }], ['expires', 'url'],
          'url and expires, nothing else');

$res = $h->get($url);
is($res->{status}, 200, 'the link alone: 200');
is($res->{content}, $zip_a, '... the bytes exactly');
is($res->{headers}{'content-type'}, 'application/zip', '... a ZIP');
ok(!$res->{headers}{'www-authenticate'}, '... no auth challenge');

$res = $h->head($url);
is($res->{status}, 200, 'HEAD through the link: 200');
is($res->{headers}{'content-length'}, length $zip_a, '... its length');
is($res->{content} // '', '', '... no body');

$res = $h->get($url, { headers => { Range => 'bytes=10-19' } });
is($res->{status}, 206, 'Range through the link: 206');
is($res->{content}, substr($zip_a, 10, 10), '... those bytes');

# ---- what a link does not open ----------------------------------------

my $args = "expires=$exp&signature=$sig";
is_refused($h->get("/registry/models/$b/files?$args"),
           "a's link on b's path");
is_refused($h->get("/registry/models/$a/files?expires=" . ($exp + 1)
                   . "&signature=$sig"), 'a changed expiry');
is_refused($h->get("/registry/models/$a/files?expires=0$exp&signature=$sig"),
           'the expiry with a leading zero');
(my $flip = $sig) =~ s/^(.)/$1 eq 'A' ? 'B' : 'A'/e;
is_refused($h->get("/registry/models/$a/files?expires=$exp&signature=$flip"),
           'a changed signature');
is_refused($h->get("/registry/models/$a/files?expires=$exp&signature=${sig}A"),
           'a longer signature');
is_refused($h->get("/registry/models/$a/files?$args&expires=$exp"),
           'expires twice');
is_refused($h->get("/registry/models/$a/files?$args&signature=$sig"),
           'signature twice');
is_refused($h->get("/registry/models/$a/files?expires=$exp"),
           'no signature');
is_refused($h->get("/registry/models/$a/files?signature=$sig"),
           'no expiry');
is_refused($h->get("/registry/models/$a?$args"), 'the model, not its file');
is_refused($h->get("/registry/models?$args"), 'the list');
is_refused($h->delete("/registry/models/$a?$args"), 'DELETE');
is_refused($h->post("/registry/models/$a/links?$args"), 'a new link');
is_refused($h->get("/models/$a/files?$args"),
           'the same path under another prefix (another location)');

# paths that nginx normalises: the signed path is the normalised one
for my $p ("/registry/models/$a/../$b/files",
           "/registry/models/$a/%2E%2E/$b/files",
           "/registry/models/$a%2F..%2F$b/files",
           "/registry/models/$a/..%2F$b/files",
           "/registry/models/./$b/files",
           "/registry//models/$b/files") {
    my $s = $h->send_raw('GET', "$p?$args");
    my $r = $h->read_response($s);
    is($r->{status}, 403, "a's link on $p (b's file): 403");
    like($r->{content}, qr/Invalid or expired link/, '... the link\'s message');
}
my $enc = sprintf('%%%02X', ord $a) . substr($a, 1);
for my $p ("/registry/models/$b/../$a/files",
           "/registry/models/$a%2Ffiles",
           "/registry/models/$enc/files") {
    my $s = $h->send_raw('GET', "$p?$args");
    my $r = $h->read_response($s);
    ok($r->{status} == 200 ? $r->{content} eq $zip_a : $r->{status} == 403,
       "$p: a's own file when it normalises to a's path, else 403 "
       . "($r->{status})");
}
$res = $h->get("/registry/models/$a/files?$args&other=1");
is($res->{status}, 200, 'other arguments beside a link do not matter');

# ---- every answer ends its request ------------------------------------

# keep-alive: the 403 of the access phase ends its request, and the next
# request on the same connection is served (the link, then the 403 again)
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port, Proto => 'tcp')
        or die "connect: $!";
    my @got;
    for my $p ("/registry/models/$b/files?$args", $url,
               "/registry/models/$b/files?$args") {
        print $s "GET $p HTTP/1.1\r\nHost: x\r\n\r\n";
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            sysread($s, $head, 1, length $head) or last;
        }
        my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
        my ($len) = $head =~ /^Content-Length: (\d+)/mi;
        my $body = '';
        while (length $body < ($len // 0)) {
            sysread($s, $body, $len - length $body, length $body) or last;
        }
        my %hdr = map { /^([\w-]+): *(.*)/ ? (lc $1, $2) : () }
                  split /\r\n/, $head;
        my $json = eval { decode_json($body) };
        $h->openapi_check('GET', $p, { status => $status, headers => \%hdr,
                                       content => $body, json => $json });
        push @got, ($status // 0) . ($body eq $zip_a ? ' bytes' : '');
    }
    is("@got", '403 200 bytes 403',
       'one keep-alive connection: 403, the link, 403 again');
}

# a client that leaves before reading its 403 or its link's bytes, and
# the rest: nginx's active connections come back where they were
my $before = $h->active_connections;
for my $p ("/registry/models/$b/files?$args", $url) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $h->port, Proto => 'tcp')
        or die "connect: $!";
    print $s "GET $p HTTP/1.1\r\nHost: x\r\n\r\n";
    close $s;
}
$h->get("/registry/models/$b/files?$args");
$h->post("/registry/models/$a/links", { headers => $AUTH, content => '[' });
$h->post("/nokey/models/$a/links", { content => '{}' });
ok($h->wait_for(sub { $h->active_connections <= $before }, 10),
   'active connections back where they were');

# ---- expiry ------------------------------------------------------------

my $short = link_of($h, '/registry', $a, '{"expires_in": 1}');
my (undef, $sexp) = $short =~ $LINK_RE;
$res = $h->get($short);
ok($res->{status} == 200 || time >= $sexp,
   'a 1 s link works until it expires');
ok($h->wait_for(sub { time >= $sexp + 1 }, 10), 'its second passed');
is_refused($h->get($short), 'an expired link');

# ---- the body's rules --------------------------------------------------

for my $case (['', 3600], ['{}', 3600], ['{"expires_in": null}', 3600],
              ['{"expires_in": 1, "other": "x"}', 1],
              ['{"expires_in": 604800}', 604800]) {
    my ($body, $ttl) = @$case;
    $t0 = time;
    $res = $h->post("/registry/models/$a/links",
                    { headers => $AUTH, content => $body });
    my (undef, $e) = ($res->{json}{url} // '') =~ $LINK_RE;
    ok($res->{status} == 201 && $e >= $t0 + $ttl && $e <= time + $ttl,
       "body '$body': 201, $ttl s");
}
for my $case (['{"expires_in": 0}', 'expires_in'],
              ['{"expires_in": 604801}', 'expires_in'],
              ['{"expires_in": -5}', 'expires_in'],
              ['{"expires_in": "60"}', 'expires_in'],
              ['{"expires_in": 1.5}', 'expires_in'],
              ['{"expires_in": true}', 'expires_in'],
              ['[60]', 'body'], ['60', 'body'], ['{"expires_in":', 'body'],
              ['expires_in=60', 'body']) {
    my ($body, $what) = @$case;
    $res = $h->post("/registry/models/$a/links",
                    { headers => $AUTH, content => $body });
    is($res->{status}, 422, "body '$body': 422");
    is($res->{json} && $res->{json}{detail},
       $what eq 'body' ? 'Invalid request body: a JSON object is expected.'
                       : 'Invalid expires_in: must be an integer from 1 to '
                         . '604800.', '... its message');
}

my $absent = 'x' x 16;
$res = $h->post("/registry/models/$absent/links", { headers => $AUTH });
is($res->{status}, 404, 'an absent model: 404');
is($res->{json}{detail}, 'Model not found.', '... Model not found.');
$res = $h->post('/registry/models/bad!id/links', { headers => $AUTH });
is($res->{status}, 400, 'a malformed id: 400');
$res = $h->get("/registry/models/$a/links", { headers => $AUTH });
is($res->{status}, 405, 'GET: 405');
is($res->{headers}{allow}, 'POST', '... Allow: POST');
$res = $h->post("/nokey/models/$a/links", { content => '{"expires_in":60}' });
is($res->{status}, 503, 'no key in the location: 503');
is($res->{json}{detail}, 'Download links are not configured.',
   '... not configured');
$res = $h->get("/nokey/models/$a/files?$args");
is($res->{status}, 200,
   'link arguments where there is no key are no link (an open location)');

# ---- auth_request, satisfy all ----------------------------------------

my $ar = link_of($h, '/ar', $a);
is($h->get("/ar/models/$a/files")->{status}, 401,
   'auth_request, no link: its 401');
$res = $h->get($ar);
is($res->{status}, 200, 'auth_request, a valid link: 200');
is($res->{content}, $zip_a, '... the bytes');
is_refused($h->get("/ar/models/$b/files?" . ($ar =~ s/.*\?//r)),
           "auth_request, a's link on b");

my $all = link_of($h, '/all', $a);
is($h->get($all)->{status}, 401,
   'satisfy all: a valid link still needs the credentials');
$res = $h->get($all, { headers => $AUTH });
is($res->{status}, 200, '... with them: 200');

# ---- the actor ----------------------------------------------------------
# a link skips auth_basic under "satisfy any": a user name the client
# sends along is nobody's, and never the audit's actor

my $forged = link_of($h, '/registry', $b);
# (a download's event is written after its answer: wait for each)
my $downloads = sub {
    scalar @{ $h->get("/audit?model_id=$b&action=model.download"
                      . "&limit=1000")->{json} || [] };
};
my $seen = $downloads->();
for my $who ('ceo:x', 'alice:WRONG') {
    $res = $h->get($forged, { headers => {
        Authorization => 'Basic ' . encode_base64($who, '') } });
    is($res->{status}, 200, "a link with a forged Basic $who: 200");
}
$h->wait_for(sub { $downloads->() >= $seen + 2 }, 10);
$res = $h->get("/audit?model_id=$b&action=model.download&limit=2");
is_deeply([map { $_->{actor} } @{ $res->{json} }], ['-', '-'],
          '... and no actor recorded for either');
$h->get("/registry/models/$b/files", { headers => $AUTH });
$h->wait_for(sub { $downloads->() >= $seen + 3 }, 10);
$res = $h->get("/audit?model_id=$b&action=model.download&limit=1");
is($res->{json}[0]{actor}, 'alice',
   'with the credentials checked (no link): the actor is the user');

# ---- audit --------------------------------------------------------------

$res = $h->get("/audit?model_id=$a&action=model.download&limit=1000");
ok(scalar(grep { $_->{status} == 200 || $_->{status} == 206 }
          @{ $res->{json} || [] }) >= 3,
   'downloads through links are audited as model.download');
$res = $h->get("/audit?model_id=$a&limit=1000");
ok(!grep({ $_->{action} !~ /^model\.(create|download)$/ }
         @{ $res->{json} || [] }),
   'making links wrote no audit event');

# ---- the key rotated ---------------------------------------------------

my $old = link_of($h, '/registry', $a);
is($h->get($old)->{status}, 200, 'before the rotation: 200');
my @workers = $h->worker_pids;
write_file("$d/link_key", key("second") . "\n");
$h->reload_nginx;
ok($h->wait_for(sub {
       my %new = map { $_ => 1 } $h->worker_pids;
       !grep { $new{$_} } @workers }, 30),
   'the reload replaced the workers');
is_refused($h->get($old), 'a link of the old key after the rotation');
my $new = link_of($h, '/registry', $a);
is($h->get($new)->{content}, $zip_a, 'a link of the new key: the bytes');

# ---- nginx -t ----------------------------------------------------------

my $conf = Modelreg::Harness::slurp("$d/nginx.conf");
for my $case (['missing', undef,
               qr/cannot read the key file .*modelreg_link_key/],
              ['empty', "\n", qr/key file .* of "modelreg_link_key" is empty/],
              ['31 bytes', ('k' x 31) . "\n",
               qr/"modelreg_link_key" has a key of 31 bytes: at least 32/]) {
    my ($what, $text, $re) = @$case;
    my $f = "$d/key-" . ($what =~ s/\W/_/gr);
    write_file($f, $text) if defined $text;
    (my $c = $conf) =~ s{modelreg_link_key /\S+;}{modelreg_link_key $f;};
    my ($rc, $out) = $h->nginx_t($c);
    isnt($rc, 0, "nginx -t fails with a $what key file");
    like($out, $re, '... naming modelreg_link_key');
}
write_file("$d/key-32", ('k' x 32) . "\n");
(my $c32 = $conf) =~ s{modelreg_link_key /\S+;}{modelreg_link_key $d/key-32;};
my ($rc32) = $h->nginx_t($c32);
is($rc32, 0, 'a key of 32 bytes is enough');

$h->finish;

# ---- S3 -----------------------------------------------------------------

{
    my $s = start(storage => 's3');
    my $id = $s->new_model(name => 's3link', version => '1', file => $zip_a);
    is($s->get("/registry/models/$id/files")->{status}, 401,
       'S3: no credentials, no link: 401');
    my $l = link_of($s, '/registry', $id);
    $res = $s->get($l);
    is($res->{status}, 200, 'S3: the link alone: 200');
    is($res->{content}, $zip_a, 'S3: ... the bytes exactly');
    my ($e, $g) = $l =~ /expires=(\d+)&signature=(.*)/;
    my $other = $s->new_model(name => 's3link', version => '2',
                              file => $zip_b);
    is_refused($s->get("/registry/models/$other/files"
                       . "?expires=$e&signature=$g"),
               'S3: on another model\'s path');
    $s->finish;
}

# ---- S3 with the gateway's auth at server level --------------------------
# the download's redirect to the store's location is not asked for
# credentials again (the snippet's "satisfy any" and the module's own
# redirect let in)
{
    my $s = start(storage => 's3', server_auth => 1);
    my $id = $s->new_model(name => 's3srv', version => '1', file => $zip_a);
    $res = $s->get("/registry/models/$id/files");
    is($res->{status}, 401, 'S3, auth at server level: no link: 401');
    $res = $s->get("/registry/models/$id/files", { headers => $AUTH });
    is($res->{status}, 200, '... with credentials: 200');
    is($res->{content}, $zip_a, '... the bytes');
    my $l = link_of($s, '/registry', $id);
    $res = $s->get($l);
    is($res->{status}, 200, '... the link alone: 200');
    is($res->{content}, $zip_a, '... the bytes');
    $res = $s->get($l, { headers => { Range => 'bytes=0-9' } });
    is($res->{status}, 206, '... a Range through the link: 206');
    $s->finish;
}

done_testing();
