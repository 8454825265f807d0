package Modelreg::OpenAPI;

# The OpenAPI document (openapi/openapi.json) as the judge of every answer
# a test reads: Harness.pm hands each one to check(), which finds the
# document's operation for the request (method and path template, below
# the location prefix that served it) and validates the answer's status,
# the headers the document declares, its Content-Type and, for JSON, its
# body against the schema (JSON::Validator, Debian's
# libjson-validator-perl; the OpenAPI 3.0 meta-schema ships in its cache,
# so nothing is fetched; Cpanel::JSON::XS decodes).  Types are strict: no
# coercion of "1" to 1 or back.  Returns the list of what does not match: an
# empty list is an answer the document describes.
#
# Answers that are no operation's are documented too, and judged as such:
# a path that no template matches is "x-modelreg-unknown-route" (404
# {"detail":"Not Found"}), a method that the path's item does not have is
# "x-modelreg-other-method" (405 with Allow), and the errors nginx itself
# makes (403 of access rules, 413 over client_max_body_size, 408, 400,
# 500: "x-modelreg-nginx-answers") may answer any operation.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::PP;
use Mojo::JSON qw(decode_json);
use Time::HiRes ();

our $FILE = abs_path(dirname(__FILE__) . '/../../../openapi/openapi.json');

my @METHODS = qw(get put post delete options head patch trace);
my $UNKNOWN = '/x-modelreg-unknown-route';
my $OTHER = '/x-modelreg-other-method';

my ($DOC, $SCHEMA, @ROUTES);

# what loading the document and its validator took (once per process)
our $LOAD_SECONDS = 0;

# the document as written (decoded once)
sub document {
    return $DOC if $DOC;
    open my $fh, '<:raw', $FILE or die "$FILE: $!";
    local $/;
    $DOC = JSON::PP->new->utf8->decode(<$fh>);
    return $DOC;
}

# the validator, on a copy of the document where every operation also
# has nginx's own answers, and the two answers of no operation are
# operations of paths of their own
sub schema {
    return $SCHEMA if $SCHEMA;
    my $t0 = Time::HiRes::time();
    require JSON::Validator::Schema::OpenAPIv3;
    my $doc = JSON::PP->new->utf8->decode(
                  JSON::PP->new->utf8->encode(document()));
    my $nginx = $doc->{'x-modelreg-nginx-answers'}{responses};
    for my $item (values %{ $doc->{paths} }) {
        for my $op (map { $item->{$_} } grep { $item->{$_} } @METHODS) {
            $op->{responses}{$_} //= $nginx->{$_} for keys %$nginx;
        }
    }
    for ([$UNKNOWN, 'x-modelreg-unknown-route', '404'],
         [$OTHER, 'x-modelreg-other-method', '405']) {
        my ($path, $key, $status) = @$_;
        $doc->{paths}{$path}{get} = {
            operationId => $key,
            responses => { %$nginx, $status => $doc->{$key} } };
    }
    # JSON::Validator follows a schema's $ref, but reads a response's
    # headers and a header's schema through plain hash lookups: those
    # are written out in place
    $doc->{paths} = inline($doc, $doc->{paths});
    $SCHEMA = JSON::Validator::Schema::OpenAPIv3->new($doc)->resolve;
    $SCHEMA->coerce({});
    # templates, most literal first ("/health/ready" before
    # "/health/{x}", were there one)
    for my $t (sort { ($b =~ tr{/}{}) <=> ($a =~ tr{/}{})
                      || ($a =~ tr/{//) <=> ($b =~ tr/{//) || $a cmp $b }
               grep { !/^\/x-/ } keys %{ $doc->{paths} }) {
        (my $re = quotemeta $t) =~ s{\\\{[^/]*?\\\}}{[^/]+}g;
        push @ROUTES, [$t, qr{^$re\z}];
    }
    $LOAD_SECONDS = Time::HiRes::time() - $t0;
    return $SCHEMA;
}

# $v with every $ref to a response, header or parameter replaced by a
# copy of its target
sub inline {
    my ($doc, $v) = @_;
    if (ref $v eq 'ARRAY') {
        return [map { inline($doc, $_) } @$v];
    }
    return $v unless ref $v eq 'HASH';
    if (($v->{'$ref'} // '')
        =~ m{^#/components/(responses|headers|parameters)/(.+)\z}) {
        return inline($doc, $doc->{components}{$1}{$2}
                            // die "unresolved \$ref $v->{'$ref'}\n");
    }
    return { map { $_ => inline($doc, $v->{$_}) } keys %$v };
}

# the document's template for a path below the API's mount point, or
# undef when no route has it
sub template {
    my ($rel) = @_;
    schema();
    for (@ROUTES) {
        return $_->[0] if $rel =~ $_->[1];
    }
    return undef;
}

# nginx's view of a request's path: percent-decoded, slashes merged, dot
# segments resolved (what the module routes on)
sub normalize {
    my ($path) = @_;
    $path =~ s/[?#].*//s;
    $path =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    $path =~ s{/+}{/}g;
    my @out;
    for (split m{/}, $path, -1) {
        if ($_ eq '.') { next }
        if ($_ eq '..') { pop @out if @out > 1; next }
        push @out, $_;
    }
    my $n = join '/', @out;
    $n .= '/' if $path =~ m{/\.\.?\z};
    return $n eq '' ? '/' : $n;
}

# The path below the location that serves it, from the "location"s of
# the nginx.conf text that carry "modelreg;" (an exact location serves
# its own path; the longest matching prefix wins): undef when none does.
# A location's blocks (limit_except, if, a nested location) are skipped
# over when looking for "modelreg;" in it, and nested locations are
# locations of their own; comments (a "#" that starts a word) are not read.
sub relative {
    my ($conf, $uri) = @_;
    my ($best, $exact);
    $conf =~ s/(?:^|(?<=\s))#[^\n]*//gm;
    my $block = qr/(\{(?:[^{}]++|(?-1))*\})/;
    while ($conf =~ /\blocation\s+(=\s*)?(\/[^\s{]*)\s*$block/g) {
        my ($eq, $name, $body) = ($1, $2, $3);
        pos($conf) = $-[3] + 1;
        $body = substr($body, 1, -1) =~ s/$block//gr;
        next unless $body =~ /(?:^|[\s;{])modelreg\s*;/;
        if ($eq) {
            $exact = 1, $best = '' if $uri eq $name;
            next;
        }
        next if $exact || index($uri, $name) != 0;
        $best = $name if !defined $best || length $name > length $best;
    }
    return undef unless defined $best;
    return $uri if $exact;
    (my $base = $best) =~ s{/\z}{};
    return substr($uri, length $base) || '/';
}

sub media_type {
    my ($v) = @_;
    return undef unless defined $v;
    $v =~ s/\s*;.*//s;
    return lc $v;
}

# Validates one answer ({ status, headers (lower-case names), content })
# to "$method $path" ($path as sent, with its query) served under the
# location config $conf.  Returns the errors, and the template judged
# (undef when the path is served by no registry location: not ours).
sub check {
    my ($conf, $method, $path, $res) = @_;
    my $s = schema();
    my $rel = relative($conf, normalize($path));
    return ([], undef) unless defined $rel;

    my $m = lc $method;
    my $t = template($rel);
    my $judged = $t // $UNKNOWN;
    if (!defined $t) {
        ($t, $m) = ($UNKNOWN, 'get');
    } elsif (!$s->get([paths => $t, $m])) {
        ($t, $m) = ($OTHER, 'get');
        $judged .= " ($method: other method)";
    }

    my $status = $res->{status};
    my $responses = $s->get([paths => $t, $m, 'responses']);
    my $declared = $responses->{$status} || $responses->{default};
    return (["status $status is not declared for " . uc($m) . " $t"],
            $judged) unless $declared;

    my $h = $res->{headers} || {};
    my $content = $res->{content} // '';
    my $type = media_type($h->{'content-type'});
    my $bodyless = lc $method eq 'head' || $status == 204 || $status == 304;
    my @e;
    $declared = $s->get($declared->{'$ref'} =~ s/^#//r)
        if $declared->{'$ref'};
    my $types = $declared->{content} || {};
    if (!%$types) {
        push @e, "a body (" . length($content) . " bytes) where none is "
                 . "declared" if length $content;
    } elsif (!$bodyless && !defined $type) {
        push @e, "no Content-Type";
    }
    my $body = { exists => 0 };
    if (defined $type && $types->{$type} && !$bodyless) {
        if ($type eq 'application/json') {
            # (decoded already by the harness, when it has been; else by
            # Mojo::JSON, which JSON::Validator brings, with Cpanel's XS
            # decoder: JSON::PP takes seconds for t/07's 3 MB models)
            my $v = exists $res->{json} ? $res->{json}
                                        : eval { decode_json($content) };
            if (!defined $v && length $content) {
                push @e, "the body is not JSON: " . substr($content, 0, 200);
            } else {
                $body = { exists => 1, value => $v };
            }
        } elsif ($type =~ m{^text/plain}) {
            $body = { exists => 1, value => $content };
        }
    }
    $body->{content_type} = $type if defined $type && %$types;
    push @e, map { "$_" } $s->validate_response([$m, $t, $status], {
        header => sub {
            my ($name) = @_;
            my $v = $h->{lc $name};
            $v = join ', ', @$v if ref $v;
            return { exists => defined $v, value => $v };
        },
        body => sub { $body },
    });
    return (\@e, $judged);
}

1;
