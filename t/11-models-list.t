# Proves: GET /models filters (substring, case-insensitive, with % _ ' as
# ordinary characters; exact ones case-sensitive), the 404-when-filtered
# rule, 422 for unknown keys, 400 for bad limit/page_token, keyset paging
# through 25 models with limit=10 without gaps or duplicates while models
# are inserted between pages, and a Link that keeps the filters.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Modelreg::Harness;

my $h = Modelreg::Harness->new;

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

$h->finish;
done_testing();
