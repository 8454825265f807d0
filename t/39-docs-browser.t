# Proves: GET /docs works in a real browser (Debian's headless Chromium,
# driven through chromedriver's WebDriver API), at / and under a location
# prefix: swagger-ui renders from the server alone (every resource the page
# loaded is of its own origin, the console has no error, so the
# Content-Security-Policy lets it run), every path and method of
# openapi/openapi.json is listed, and "Try it out" + "Execute" on GET
# /health and GET /models send the request below the prefix and show 200
# and the body the API answered.  A screenshot of each page is written
# under the test's temp dir (docs.png, docs-registry.png; MODELREG_KEEP=1
# keeps them).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX ();
use Modelreg::Harness;

my $CHROMIUM = '/usr/bin/chromium';
my $DRIVER = '/usr/bin/chromedriver';
plan skip_all => "no $CHROMIUM or $DRIVER (make browser-deps)"
    unless -x $CHROMIUM && -x $DRIVER;

my $TOP = $Modelreg::Harness::TOP;
plan skip_all => 'no build/swagger-ui (make deps)'
    unless -f "$TOP/build/swagger-ui/swagger-ui-bundle.js";

my $json = JSON::PP->new->canonical;

# every operation of the document, "get /models"
my $doc = $json->decode(Modelreg::Harness::slurp("$TOP/openapi/openapi.json"));
my @ops = sort map {
    my $p = $_;
    map { "$_ $p" } grep { /^(get|put|post|delete|patch|head|options|trace)$/ }
                    keys %{ $doc->{paths}{$p} }
} keys %{ $doc->{paths} };
ok(scalar(grep { $_ eq 'get /health' } @ops)
   && scalar(grep { $_ eq 'get /models' } @ops),
   'the document has GET /health and GET /models');

my $h = Modelreg::Harness->new(location =>
    "location / { modelreg; client_max_body_size 0; }\n"
    . "location /registry/ { modelreg; }\n"
    . Modelreg::Harness::docs_location('/registry/docs/'));
my $id = $h->new_model(name => 'docs-browser-model', version => '1');

# ---- chromedriver, on a free port, with a fresh profile
my $dport = Modelreg::Harness::free_port();
my $driver_pid = fork // die "fork: $!";
if (!$driver_pid) {
    open STDOUT, '>', $h->dir . '/logs/chromedriver.log';
    open STDERR, '>&', \*STDOUT;
    $ENV{TMPDIR} = $h->dir . '/tmp';    # Chromium's scoped dirs
    { exec $DRIVER, "--port=$dport" }
    POSIX::_exit(127);
}
my $wd = "http://127.0.0.1:$dport";
my $ua = HTTP::Tiny->new(timeout => 60);

sub wd {
    my ($method, $path, $body) = @_;
    my $res = $ua->request($method, "$wd$path", {
        headers => { 'Content-Type' => 'application/json' },
        defined $body ? (content => $json->encode($body)) : () });
    my $v = eval { $json->decode($res->{content}) } || {};
    die "WebDriver $method $path: $res->{status} $res->{content}\n"
        if $res->{status} != 200;
    return $v->{value};
}

my $up = $h->wait_for(sub {
    my $r = $ua->get("$wd/status");
    $r->{status} == 200 && $json->decode($r->{content})->{value}{ready};
}, 30);
ok($up, 'chromedriver is ready') or BAIL_OUT('no chromedriver');

# the flags: no sandbox as root, and nothing that calls Google's hosts
my $profile = $h->dir . '/chromium-profile';
my $session = wd(POST => '/session', { capabilities => { alwaysMatch => {
    browserName => 'chrome',
    'goog:loggingPrefs' => { browser => 'ALL' },
    'goog:chromeOptions' => { binary => $CHROMIUM, args => [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
        '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        '--disable-dev-shm-usage', '--window-size=1280,2400',
        "--user-data-dir=$profile" ] } } } })->{sessionId};
ok($session, 'a headless Chromium session');
my $s = "/session/$session";

my $ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

sub js { wd(POST => "$s/execute/sync", { script => shift, args => [@_] }) }

# waits until $code returns something true; returns it
sub until_true {
    my ($code, $seconds) = @_;
    my $v;
    $h->wait_for(sub { $v = eval { $code->() } }, $seconds // 30);
    return $v;
}

# a child of element $e by CSS selector, once there
sub child {
    my ($e, $css) = @_;
    return until_true(sub {
        my $v = wd(POST => "$s/element/$e->{$ELEMENT}/elements",
                   { using => 'css selector', value => $css });
        $v->[0];
    });
}

sub click {
    my ($e, $css) = @_;
    my $c = child($e, $css) or die "no $css\n";
    js('arguments[0].scrollIntoView({block: "center"})', $c);
    wd(POST => "$s/element/$c->{$ELEMENT}/click", {});
}

# "Try it out" and "Execute" on one operation; its request URL, status
# and response body as swagger-ui shows them
sub try_it {
    my ($method, $path) = @_;
    my $block = js(<<'JS', $method, $path);
var m = arguments[0], path = arguments[1];
return Array.from(document.querySelectorAll('.opblock-' + m))
    .find(function (b) {
        var p = b.querySelector('.opblock-summary-path');
        return p && p.getAttribute('data-path') === path;
    }) || null;
JS
    return {} unless $block;
    click($block, '.opblock-summary-control, .opblock-summary');
    click($block, '.try-out__btn');
    click($block, 'button.execute');
    my $shown = until_true(sub {
        my $v = js(<<'JS', $block);
var b = arguments[0];
var st = b.querySelector('.live-responses-table tbody .response-col_status');
var body = b.querySelector(
    '.live-responses-table .response-col_description pre');
var url = b.querySelector('.request-url pre');
return st && body ? { status: st.textContent.trim(),
                      body: body.textContent,
                      url: url ? url.textContent.trim() : '' } : null;
JS
        $v;
    });
    return $shown || {};
}

for my $mount ('', '/registry') {
    my $name = $mount || '/';
    my $base = $h->url($mount);
    wd(POST => "$s/url", { url => "$base/docs" });

    my $n = until_true(sub {
        my $c = js("return document.querySelectorAll('.opblock').length");
        $c >= @ops ? $c : 0;
    });
    ok($n, "$name: swagger-ui rendered the operations");

    my $listed = js(<<'JS');
return Array.from(document.querySelectorAll('.opblock')).map(function (b) {
    var m = b.querySelector('.opblock-summary-method');
    var p = b.querySelector('.opblock-summary-path');
    return (m ? m.textContent.trim().toLowerCase() : '?') + ' '
        + (p ? p.getAttribute('data-path') : '?');
});
JS
    my %seen;    # (an operation with two tags is listed under each)
    is_deeply([sort grep { !$seen{$_}++ } @$listed], \@ops,
              "$name: every operation of openapi.json is listed ("
              . scalar(@ops) . ")");

    my $health = try_it('get', '/health');
    is($health->{status}, '200', "$name: Try it out GET /health: 200");
    is_deeply(eval { $json->decode($health->{body}) }, { status => 'ok' },
              "$name: GET /health's body shown");
    is($health->{url}, "$base/health",
       "$name: the request went to $mount/health");

    my $models = try_it('get', '/models');
    is($models->{status}, '200', "$name: Try it out GET /models: 200");
    my $list = eval { $json->decode($models->{body}) } || [];
    is(ref $list eq 'ARRAY' && (grep { ref $_ && ($_->{id} // '') eq $id }
                                @$list) ? 1 : 0, 1,
       "$name: GET /models's body shown lists the model");

    # nothing came from anywhere else, nothing was refused
    my $urls = js("return performance.getEntriesByType('resource')"
                  . ".map(function (e) { return e.name; })");
    my @foreign = grep { index($_, $h->url('/')) != 0 } @$urls;
    ok(@$urls && !@foreign, "$name: every resource from this server ("
       . scalar(@$urls) . ')') or diag "@foreign";
    my $log = wd(POST => "$s/se/log", { type => 'browser' });
    my @errors = grep { $_->{level} eq 'SEVERE' } @$log;
    ok(!@errors, "$name: no error in the console (CSP allows swagger-ui)")
        or diag join "\n", map { $_->{message} } @errors;

    my $png = decode_base64(wd(GET => "$s/screenshot"));
    my $file = $h->dir . '/docs' . ($mount =~ s{/}{-}r) . '.png';
    Modelreg::Harness::write_file($file, $png);
    is(substr($png, 0, 8), "\x89PNG\r\n\x1a\n", "$name: screenshot $file");
}

wd(DELETE => $s);
kill 'TERM', $driver_pid;
waitpid $driver_pid, 0;

$h->finish;
done_testing;
