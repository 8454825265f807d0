# Proves: GET /models filters (substring, case-insensitive, with % _ ' as
# ordinary characters; exact ones case-sensitive), the 404-when-filtered
# rule, 422 for unknown keys, 400 for bad limit/page_token (a huge number
# in a token included), an error answer that ends the request (no query
# runs after a 400: PostgreSQL's statement log shows none), keyset paging
# through 25 models with limit=10 without gaps or duplicates while models
# are inserted between pages, and a Link that keeps the filters.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Modelreg::Harness;

# one connection: the statements of requests made one after the other
# reach PostgreSQL in that order
my $h = Modelreg::Harness->new(db => 'pool=1 queue=64 timeout=5s');

sub names {
    my ($res) = @_;
    return [ sort map { $_->{name} } @{ $res->{json} || [] } ];
}

is($h->get('/models')->{content}, '[]', 'empty registry: 200 []');
is($h->get('/models')->{status}, 200, 'empty registry: 200');
is($h->get('/models?name=')->{status}, 200, 'an empty filter is no filter');

my %m = (
    'ResNet-50'     => { version => '1', precision => 'FP16',
                         project_name => 'Vision', category => 'Classification',
                         architecture => 'ResNet', origin => 'Geti',
                         project_id => 'p-1', format => 'openvino',
                         target_device => 'GPU' },
    'resnet_small'  => { version => '2', project_name => 'vision 100%' },
    'yolo'          => { version => '10', category => 'Detection',
                         architecture => "O'Neil" },
    'yo%lo'         => { version => '1' },
);
$h->new_model(name => $_, %{ $m{$_} }) for sort keys %m;

is_deeply(names($h->get('/models?name=resnet')),
          ['ResNet-50', 'resnet_small'], 'name: case-insensitive substring');
is_deeply(names($h->get('/models?name=NET')),
          ['ResNet-50', 'resnet_small'], 'name: upper case too');
is_deeply(names($h->get('/models?name=t_s')), ['resnet_small'],
          '_ is an ordinary character');
is($h->get('/models?name=t%5Fx')->{status}, 404, '_ never a wildcard');
is_deeply(names($h->get('/models?name=%25')), ['yo%lo'],
          '% is an ordinary character');
is_deeply(names($h->get(q{/models?architecture=o'n})), ['yolo'],
          q{' is an ordinary character});
is_deeply(names($h->get('/models?project_name=100%25')), ['resnet_small'],
          'project_name substring');
is_deeply(names($h->get('/models?category=detect')), ['yolo'],
          'category substring');
is_deeply(names($h->get('/models?precision=16')), ['ResNet-50'],
          'precision substring');
is_deeply(names($h->get('/models?version=1')), ['ResNet-50', 'yo%lo'],
          'version exact');
is($h->get('/models?version=0')->{status}, 404, 'version not a substring');
is_deeply(names($h->get('/models?origin=Geti')), ['ResNet-50'], 'origin');
is($h->get('/models?origin=geti')->{status}, 404,
   'exact filters are case-sensitive');
is_deeply(names($h->get('/models?project_id=p-1')), ['ResNet-50'],
          'project_id');
is_deeply(names($h->get('/models?format=openvino')), ['ResNet-50'], 'format');
is_deeply(names($h->get('/models?target_device=GPU')), ['ResNet-50'],
          'target_device');
is_deeply(names($h->get('/models?name=res&version=2')), ['resnet_small'],
          'filters combine');
is_deeply(names($h->get('/models?name=yolo&name=resnet')),
          ['ResNet-50', 'resnet_small'], 'a repeated key: the last wins');
is_deeply(names($h->get('/models?name=RESNET%2D5')), ['ResNet-50'],
          'percent-decoded values');
is($h->get('/models?name=resnet+small')->{status}, 404,
   '+ decodes to a space (no model has one)');

# what the pipeline server does: exactly one, with precision
my $res = $h->get('/models?name=ResNet-50&version=1&precision=fp16');
is($res->{status}, 200, 'pipeline lookup');
is(scalar @{ $res->{json} }, 1, 'exactly one');
is($res->{json}[0]{precision}[0], 'fp16', 'precision[0]');

my $nf = '{"detail":"Model(s) not found."}';
is($h->get('/models?name=nothing')->{content}, $nf, '404 when filtered');
is($h->get('/models?name=nothing')->{status}, 404, '404 status');

$res = $h->get('/models?bogus=1&name=x&alpha=&bogus=2');
is($res->{status}, 422, 'unknown keys: 422');
is($res->{content}, '{"detail":"Invalid query parameter(s): bogus, alpha"}',
   'unknown keys named in order, once');

for my $bad ('0', '1001', 'ten', '-5', '1.5') {
    $res = $h->get("/models?limit=$bad");
    is($res->{status}, 400, "limit=$bad: 400");
    like($res->{content}, qr/limit/, "limit=$bad: names the parameter");
}
for my $bad ('x', '12.short', 'abc.defghijklmnopqrstu', '1.' . ('a' x 200)) {
    $res = $h->get("/models?page_token=$bad");
    is($res->{status}, 400, "page_token=$bad: 400");
    like($res->{content}, qr/page_token/, 'names the parameter');
}
is($h->get('/models?name=%FF')->{status}, 422, 'non-UTF-8 filter: 422');

# numbers too large for PostgreSQL's time (once a 500): not our tokens
for my $bad ('9223372036854775799.abcdefghijklmnop',
             '9007199254740992.abcdefghijklmnop',
             '99999999999999999999.abcdefghijklmnop') {
    $res = $h->get("/models?page_token=$bad");
    is($res->{status}, 400, "page_token=$bad: 400");
    is($res->{content}, '{"detail":"Invalid page_token."}', 'its detail');
}
$res = $h->get('/models?page_token=9007199254740991.abcdefghijklmnop');
is($res->{status}, 200, 'the largest token we accept: 200');
is($res->{content}, '[]', 'nothing after it');

# ---- an error answer ends the request: no query after "?limit=0"
$h->psql_admin("ALTER SYSTEM SET log_statement = 'all'");
$h->psql_admin('SELECT pg_reload_conf()');
my $pglog = $h->dir . '/pgsock/postgres.log';
my $before = length(Modelreg::Harness::slurp($pglog) // '');
for my $bad ('/models?limit=0', '/models?name=x&limit=0',
             '/models?page_token=1.x', '/models?bogus=1') {
    $res = $h->get($bad);
    ok($res->{status} == 400 || $res->{status} == 422, "$bad: 4xx");
}
# then one list: on the one connection, after whatever the above ran
is($h->get('/models?name=after-the-errors')->{status}, 404, 'a list after');
my $log = substr(Modelreg::Harness::slurp($pglog), $before);
my @lists = $log =~ /^.*execute [^:]*: SELECT .* FROM models m .*$/mg;
is(scalar @lists, 1, 'PostgreSQL ran one list: none for the 4xx')
    or diag join "\n", @lists;
like($log, qr/after-the-errors/, 'the one after them');
$h->psql_admin("ALTER SYSTEM RESET log_statement");
$h->psql_admin('SELECT pg_reload_conf()');
unlike($h->error_log, qr/header already sent/,
       'nothing tried to answer twice');

# ---- paging: 25 models, limit=10, inserts between pages
$h->new_model(name => sprintf('page-%02d', $_), version => '1')
    for 1 .. 25;

my (@seen, $url, $pages);
$url = '/models?name=page-&limit=10';
while ($url) {
    $res = $h->get($url);
    is($res->{status}, 200, "page $pages") if defined $pages;
    push @seen, map { $_->{name} } @{ $res->{json} };
    $pages++;

    # inserted now: sorts after everything already seen
    $h->new_model(name => "page-late-$pages", version => '1') if $pages <= 2;

    my $link = $res->{headers}{link};
    last unless $link;
    like($link, qr{^</models\?name=page-&limit=10&page_token=[^>]+>; rel="next"$},
         'Link keeps the filters and limit');
    ($url) = $link =~ /^<([^>]+)>/;
    last if $pages > 10;
}
my %count;
$count{$_}++ for @seen;
is_deeply([ grep { $count{$_} > 1 } keys %count ], [], 'no duplicates');
is_deeply([ grep { !$count{sprintf('page-%02d', $_)} } 1 .. 25 ], [],
          'no gaps: all 25 seen');
is_deeply([ @seen[0 .. 24] ], [ map { sprintf('page-%02d', $_) } 1 .. 25 ],
          'in registration order');
ok($count{'page-late-1'} && $count{'page-late-2'},
   'models inserted meanwhile appear at the end');
is(scalar @seen, 27, 'and nothing else');

# the last page has no Link; an empty page with a token is 200 []
$res = $h->get('/models?name=page-&limit=27');
ok(!$res->{headers}{link}, 'no Link on the last page');
$res = $h->get('/models?name=page-&limit=26');
my ($next) = $res->{headers}{link} =~ /^<([^>]+)>/;
$h->delete("/models/" . $_->{id})
    for @{ $h->get('/models?name=page-late-2')->{json} };
$res = $h->get($next);
is($res->{status}, 200, 'an empty page with a token: 200');
is($res->{content}, '[]', 'and []');

# default limit is 100
$h->new_model(name => sprintf('bulk-%03d', $_), version => '1') for 1 .. 101;
$res = $h->get('/models?name=bulk');
is(scalar @{ $res->{json} }, 100, 'default limit 100');
ok($res->{headers}{link}, 'with a Link');
unlike($res->{headers}{link}, qr/limit=/, 'no limit given, none added');
ok(length($res->{content}) > 65536 && !$res->{headers}{'content-length'},
   'a longer answer than 64 KiB is streamed (chunked)');
$res = $h->get('/models?name=bulk&limit=10');
is($res->{headers}{'content-length'}, length($res->{content}),
   'a short one is sent whole, with a Content-Length');
is(scalar @{ $res->{json} }, 10, 'of 10 models');

$h->finish;
done_testing();
