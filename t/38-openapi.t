# Proves: openapi/openapi.json, the document every answer of the suite is
# checked against (Modelreg::OpenAPI), is itself right: valid against the
# OpenAPI 3.0 schema (JSON::Validator's, offline), every $ref resolves,
# every operation has a unique operationId, the module's route table
# (ngx_http_modelreg_route.c) and the document's paths and methods are the
# same set (the document may have /openapi.json and /docs before the
# table does), every 4xx/5xx JSON answer has examples and each example's
# "detail" is a message of the C sources, and every example matches its
# schema; and Redocly's recommended rules when its CLI is installed (make
# openapi-lint).  No nginx, no database.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Modelreg::OpenAPI;

my $top = "$FindBin::Bin/..";
my $doc = Modelreg::OpenAPI::document();
my @METHODS = qw(get put post delete options head patch trace);

# ---- the OpenAPI 3.0 schema
require JSON::Validator::Schema::OpenAPIv3;
# (it dies on a $ref it cannot follow)
my @e = eval { @{ JSON::Validator::Schema::OpenAPIv3->new($doc)->errors } };
push @e, $@ if $@;
ok(!@e, 'valid against the OpenAPI 3.0 schema') or diag join "\n", @e;
is($doc->{openapi}, '3.0.3', 'OpenAPI 3.0.3');
is_deeply($doc->{servers}, [{ url => '.', description =>
          $doc->{servers}[0]{description} }],
          'servers: relative to where the document is served');

# ---- every $ref resolves
my (@refs, @bad);
walk($doc, sub { push @refs, $_[0]{'$ref'} if exists $_[0]{'$ref'} });
for my $ref (@refs) {
    push @bad, $ref unless $ref =~ m{^#(/.*)\z} && defined pointer($1);
}
ok(@refs > 100 && !@bad, scalar(@refs) . ' $refs, each resolves')
    or diag "unresolved: @bad";
# (what follows reads the document through its $refs)
if (@bad) {
    done_testing();
    exit;
}

# ---- operations and their ids
my (%ops, %ids, @noid, @dup);
for my $path (keys %{ $doc->{paths} }) {
    for my $m (grep { $doc->{paths}{$path}{$_} } @METHODS) {
        my $op = $doc->{paths}{$path}{$m};
        $ops{uc($m) . " $path"} = $op;
        my $id = $op->{operationId};
        push @noid, uc($m) . " $path" unless defined $id;
        push @dup, $id if defined $id && $ids{$id}++;
    }
}
ok(!@noid, 'every operation has an operationId') or diag "@noid";
ok(!@dup, 'operationIds are unique') or diag "@dup";

# ---- the route table of the module, both ways
my $table = slurp("$top/ngx_modelreg/ngx_http_modelreg_route.c");
my %routes;
while ($table =~ /\{\s*"(\/[^"]*)",\s*\w+,\s*([A-Z_|]+),/g) {
    my ($pattern, $mask) = ($1, $2);
    # (the alias routes' two segments are {name} and {alias})
    my @names = $pattern =~ m{^/aliases/} ? qw({name} {alias}) : ('{id}');
    (my $path = $pattern) =~ s/\*/shift(@names) \/\/ '{id}'/ge;
    $routes{"$_ $path"} = 1 for map { s/^M_//r } split /\|/, $mask;
}
ok(keys %routes >= 20, scalar(keys %routes) . ' methods and paths in the'
   . ' route table');
my @undocumented = grep { !$ops{$_} } sort keys %routes;
ok(!@undocumented, 'every route and method of the module is documented')
    or diag "@undocumented";
# (served by the module from /openapi.json's own branch on: issue 13)
my %later = map { $_ => 1 } 'GET /openapi.json', 'HEAD /openapi.json',
                            'GET /docs', 'HEAD /docs';
my @unrouted = grep { !$routes{$_} && !$later{$_} } sort keys %ops;
ok(!@unrouted, 'every documented operation is a route of the module')
    or diag "@unrouted";

# ---- error examples: every one a message of the code
my @messages = c_messages();
ok(@messages > 30, scalar(@messages) . ' message formats in the C sources');
my $s = Modelreg::OpenAPI::schema();    # $refs written out in place
my ($examples, @noex, @unknown, @mismatch) = (0);
my %answers = (%{ $s->data->{paths} });
for my $key (sort keys %answers) {
    my $item = $answers{$key};
    for my $m (grep { $item->{$_} } @METHODS) {
        my $responses = $item->{$m}{responses};
        for my $status (sort keys %$responses) {
            my $where = uc($m) . " $key $status";
            for my $type (sort keys %{ $responses->{$status}{content} || {} }) {
                my $mt = $responses->{$status}{content}{$type};
                my @ex = ((exists $mt->{example} ? $mt->{example} : ()),
                          map { $_->{value} }
                              values %{ $mt->{examples} || {} });
                push @noex, $where
                    if !@ex && $status >= 400 && $type eq 'application/json';
                for my $ex (@ex) {
                    $examples++;
                    my @err = grep { m{^/body} } map { "$_" }
                        $s->validate_response([$m, $key, $status], {
                            header => sub { { exists => 0 } },
                            body => sub { { exists => 1, value => $ex,
                                            content_type => $type } } });
                    push @mismatch, "$where: @err" if @err;
                    next unless $status >= 400 && ref $ex eq 'HASH'
                                && exists $ex->{detail};
                    my $d = $ex->{detail} // '';
                    push @unknown, "$where: $d"
                        unless grep { $d =~ $_ } @messages;
                }
            }
        }
    }
}
ok(!@noex, 'every 4xx/5xx JSON answer has an example') or diag "@noex";
ok($examples > 50 && !@unknown, "$examples examples; each error's detail is"
   . ' a message of the C sources') or diag join "\n", @unknown;
ok(!@mismatch, 'every example matches its schema')
    or diag join "\n", @mismatch;

# the documented answers of no operation
is($doc->{'x-modelreg-unknown-route'}{'$ref'},
   '#/components/responses/NotFound', 'an unknown route: documented');
is(pointer('/components/responses/NotFound/content/application~1json'
           . '/example/detail'), 'Not Found', '... 404 "Not Found"');
ok(pointer('/components/responses/MethodNotAllowed/headers/Allow'),
   'another method: 405 with Allow');

# ---- Redocly's recommended rules (openapi/redocly.yaml), when "make
# openapi-lint" has installed its CLI; offline
SKIP: {
    my $redocly = $ENV{MODELREG_REDOCLY}
                  || "$top/build/redocly/node_modules/.bin/redocly";
    skip 'no @redocly/cli (make openapi-lint installs it)', 2
        unless -x $redocly;
    my $out = `'$redocly' lint --config '$top/openapi/redocly.yaml' \\
               --format=summary '$Modelreg::OpenAPI::FILE' 2>&1`;
    ok($? == 0 && $out =~ /valid/, 'Redocly: valid')
        or diag $out;
    unlike($out, qr/^warning/m, '... and no warning') or diag $out;
}

done_testing();


sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    return <$fh>;
}

sub walk {
    my ($v, $cb) = @_;
    if (ref $v eq 'HASH') {
        $cb->($v);
        walk($_, $cb) for values %$v;
    } elsif (ref $v eq 'ARRAY') {
        walk($_, $cb) for @$v;
    }
}

# a JSON pointer into the document, or undef
sub pointer {
    my ($p) = @_;
    my $v = $doc;
    for my $seg (split m{/}, substr($p, 1)) {
        $seg =~ s/~1/\//g;
        $seg =~ s/~0/~/g;
        return undef unless ref $v eq 'HASH' && exists $v->{$seg};
        $v = $v->{$seg};
    }
    return $v;
}

# Every string the C sources and headers spell (adjacent literals joined), as a
# pattern where its format directives match any text; those with fewer
# than 8 characters of their own are too vague to judge by.
sub c_messages {
    my %re;
    for my $f (glob "$top/ngx_modelreg/*.[ch]") {
        my $src = slurp($f);
        $src =~ s{/\*.*?\*/}{}gs;
        while ($src =~ /((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g) {
            my $text = join '', $1 =~ /"((?:[^"\\\n]|\\.)*)"/g;
            $text =~ s/\\(["\\])/$1/g;
            my @lit = split /%(?:V|s|uz|ui|ul|uA|i|d|z|O|T|p|xi|Xi)/, $text,
                            -1;
            next if length(join '', @lit) < 8;
            my $re = join '.+', map { quotemeta } @lit;
            $re{$re} = 1;
        }
    }
    return map { qr/^$_\z/s } sort keys %re;
}
