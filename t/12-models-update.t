# Proves: PUT /models/{id} takes urlencoded, multipart and JSON bodies,
# validates as POST does (score=0 accepted, precision lowercased and
# checked), answers in API.md's order (id, body, no field 400, 404, field
# validation, 409), sets last_updated_date, and audits the changed fields.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);
use Modelreg::Harness;

my $h = Modelreg::Harness->new(location => <<'LOC');
location / { modelreg; modelreg_actor $http_x_user; client_max_body_size 0; }
LOC
my $json = JSON::PP->new->utf8;

my $id = $h->new_model(name => 'm', version => '1', score => '0.5');
my $other = $h->new_model(name => 'other', version => '1');
my $before = $h->get("/models/$id")->{json};

sub put_form {
    my ($path, $body, %hdr) = @_;
    return $h->put($path, { content => $body, headers => {
        'Content-Type' => 'application/x-www-form-urlencoded', %hdr } });
}

sub put_json {
    my ($path, $data) = @_;
    return $h->put($path, { content => ref $data ? $json->encode($data)
                                                 : $data,
                            headers => { 'Content-Type' => 'application/json' } });
}

sleep 0.01;
my $res = put_form("/models/$id", 'score=0&precision=INT8&unknown=1',
                   'X-User' => 'alice');
is($res->{status}, 200, 'urlencoded update');
is($res->{content}, '{"status":"completed"}', 'completed');
my $m = $h->get("/models/$id")->{json};
is($m->{score}, 0, 'score=0 is a value');
is_deeply($m->{precision}, ['int8'], 'precision lowercased');
isnt($m->{last_updated_date}, $before->{last_updated_date},
     'last_updated_date set');
is($m->{created_date}, $before->{created_date}, 'created_date kept');
is($m->{name}, 'm', 'other fields kept');

my ($body, $ct) = Modelreg::Harness::multipart(
    { name => 'architecture', value => 'ViT' },
    { name => 'file', filename => 'x.zip', value => 'ignored' });
$res = $h->put("/models/$id", { content => $body,
                                headers => { 'Content-Type' => $ct } });
is($res->{status}, 200, 'multipart update (file ignored)');
is($h->get("/models/$id")->{json}{architecture}, 'ViT', 'multipart value');

$res = put_json("/models/$id", { overview => { a => [1] }, labels => '["x"]',
                                 score => '0.25', version => 7, id => 'nope',
                                 size => 5, category => undef });
is($res->{status}, 200, 'JSON update');
$m = $h->get("/models/$id")->{json};
is_deeply($m->{overview}, { a => [1] }, 'JSON value for overview');
is_deeply($m->{labels}, ['x'], 'JSON text for labels');
is($m->{score}, 0.25, 'numeric string score');
is($m->{version}, '7', 'a number for a text field');
is($m->{id}, $id, 'id ignored');
isnt($m->{size}, 5, 'size ignored');

put_json("/models/$id", { score => 0.75 });
is($h->get("/models/$id")->{json}{score}, 0.75, 'number score');

# ---- order of checks
my $none = '{"detail":"Invalid request. Check the request body and ensure '
           . 'at least 1 supported field is provided."}';
is(put_form('/models/bad', 'score=1')->{content},
   '{"detail":"Invalid format for model ID."}', 'id format first');
is(put_json("/models/$id", '[1,2')->{status}, 400, 'bad JSON: 400');
is(put_json("/models/$id", '[1,2]')->{status}, 400, 'JSON not an object');
is(put_form("/models/$id", 'unknown=1&id=x&size=3')->{content}, $none,
   'no supported field: 400');
is(put_form("/models/$id", 'name=')->{content}, $none,
   'an empty value is absent');
is(put_form("/models/$id", '')->{status}, 400, 'empty body: 400');
is(put_form('/models/missing-model-00000', 'score=1')->{content},
   '{"detail":"Model not found."}', 'a missing model: 404');
is(put_form('/models/missing-model-00000', 'score=x')->{status}, 404,
   '404 before field validation');
is(put_form('/models/missing-model-00000', 'unknown=1')->{status}, 400,
   '"no supported field" before 404');

# ---- field validation, as POST
is(put_form("/models/$id", 'score=abc')->{content},
   '{"detail":"score must be a number."}', 'score');
is(put_form("/models/$id", 'precision=fp8')->{content},
   '{"detail":"fp8 is not a supported precision."}', 'precision');
is(put_form("/models/$id", 'overview=%5B%5D')->{content},
   '{"detail":"overview is not a valid JSON object."}', 'overview');
is(put_form("/models/$id", 'labels=%7B%7D')->{content},
   '{"detail":"labels is not a valid list."}', 'labels');
is(put_form("/models/$id", 'name=' . ('n' x 300))->{status}, 422,
   'long name');
is(put_form("/models/$id", 'name=%FF')->{status}, 422, 'non-UTF-8 name');

# ---- score out of float8's range (1e-400 used to answer 500; in JSON it
# became 0.0, and 1e400 a malformed body): 422, and nothing changes
$before = $h->get("/models/$id")->{content};
my $audit = $h->psql("SELECT count(*) FROM audit_events WHERE model_id = '$id'");
for my $s ('1e400', '1e-400', '-1e-400', '2e-324', 'Infinity', '-inf', 'NaN',
           '0x1p3') {
    is(put_form("/models/$id", "score=$s")->{content},
       '{"detail":"score must be a number."}', "urlencoded score $s: 422");
    is(put_json("/models/$id", qq({"score": "$s"}))->{content},
       '{"detail":"score must be a number."}', "JSON string score $s: 422");
}
($body, $ct) = Modelreg::Harness::multipart({ name => 'score',
                                              value => '1e-400' });
is($h->put("/models/$id", { content => $body,
                            headers => { 'Content-Type' => $ct } })->{status},
   422, 'multipart score 1e-400: 422');
for my $s ('1e400', '-1e400', '1E-400', '-1e-400', '1e-324', '1.8e308') {
    is(put_json("/models/$id", qq({"name": "changed", "score": $s}))->{content},
       '{"detail":"score must be a number."}', "JSON number score $s: 422");
}
is($h->get("/models/$id")->{content}, $before, 'the model did not change');
is($h->psql("SELECT count(*) FROM audit_events WHERE model_id = '$id'"),
   $audit, 'no audit event');

# numbers reach the checks as they were sent, and the body is still JSON
for my $case (['123456789012345678901234567890', 1.2345678901234568e+29],
              ['4e-320', 4e-320], ['-0.0e-999', 0], ['0.125', 0.125]) {
    my ($s, $want) = @$case;
    is(put_json("/models/$id", qq({"score": $s}))->{status}, 200,
       "JSON number score $s: 200");
    is($h->get("/models/$id")->{json}{score}, $want, "score $s stored");
}
is(put_json("/models/$id", '{"version": 1.50, "score": 1}')->{status}, 200,
   'a number for a text field');
is($h->get("/models/$id")->{json}{version}, '1.50', 'kept as sent');
for my $bad ('{"score": +1}', '{"score": .5}', '{"score": 01}',
             '{"score": 1.}', '{"score": 1e}', '{"score": NaN}',
             '{"score": Infinity}', '{"score": 1} x', '{"score": 1,}',
             '{"a": [1,], "score": 1}', '{"a": {"b" 1}, "score": 1}',
             '{"score" 1}', '{"score": tru}', '{"sc\u0000": 1}',
             '{"score": "\x01"}', '{"score": 1', '{"a": "}", "score": 1') {
    is(put_json("/models/$id", $bad)->{content},
       '{"detail":"Malformed JSON body: an object is expected."}',
       "malformed JSON still 400: $bad");
}
unlike($h->error_log, qr/header already sent/,
       'a malformed JSON body is answered once (nothing after the 400)');
is(put_json("/models/$id", ' {"sc\u006fre" : 0.75 , "x": [{"}": "]"}], '
            . '"y": null, "z": true}' . "\n")->{status}, 200,
   'escaped key, nested brackets in strings');
is($h->get("/models/$id")->{json}{score}, 0.75, 'escaped key read');
is(put_json("/models/$id", '{"score": 1e400, "score": 0.75, "version": "v",'
            . ' "version": null}')->{status}, 200,
   'a repeated name: the last wins');
is($h->get("/models/$id")->{json}{version}, '1.50', 'a last null is absent');
is(put_json("/models/$id", '{"version": "v", "version": null}')->{content},
   $none, 'no supported field when the last is null');

# ---- conflicts
$res = put_form("/models/$id", 'name=other&version=1&precision=fp32');
is($res->{status}, 409, 'collision: 409');
is($res->{content}, '{"detail":"The requested action could not be completed'
                    . " due to a conflict with model '$other'.\"}",
   'names the other model');
is(put_form("/models/$id", 'name=m&version=7&precision=int8')->{status}, 200,
   'its own name/version/precision again is no conflict');

# ---- audit: the changed fields, old and new, with actor and request id
$res = put_form("/models/$id", 'name=renamed&score=0.75', 'X-User' => 'bob');
my $ev = $h->get("/audit?model_id=$id&action=model.update&limit=1")->{json}[0];
is($ev->{actor}, 'bob', 'actor from modelreg_actor');
is($ev->{request_id}, $res->{headers}{'x-request-id'},
   'request id of the response');
is($ev->{status}, 200, 'status');
is_deeply($ev->{details}{changed}, { name => { old => 'm', new => 'renamed' } },
          'only what changed, old and new');

# ---- limits (API.md "Limits"): at most 64 multipart parts
{
    my $b = 'LimitB';
    my $mct = "multipart/form-data; boundary=$b";
    my $part = sub {
        "--$b\r\nContent-Disposition: form-data; name=\"$_[0]\"\r\n\r\n"
        . "$_[1]\r\n" };
    my $put_mp = sub {
        $h->put("/models/$id", { content => $_[0],
                                 headers => { 'Content-Type' => $mct } }) };
    my $unknown = sub { join '', map { $part->("u$_", 'x') } 1 .. $_[0] };
    my $name = $h->get("/models/$id")->{json}{name};

    $res = $put_mp->($part->('category', 'lim64') . $unknown->(63)
                     . "--$b--\r\n");
    is($res->{status}, 200, 'PUT of 64 parts: 200');
    is($h->get("/models/$id")->{json}{category}, 'lim64', '... applied');

    $res = $put_mp->($part->('name', 'lim65') . $unknown->(64)
                     . "--$b--\r\n");
    is($res->{status}, 400, 'PUT of 65 parts: 400');
    is($res->{content},
       '{"detail":"Too many parts: at most 64 are allowed."}',
       '... "Too many parts"');

    # what was parsed before the fault is not applied
    $res = $put_mp->($part->('name', 'half') . "--$b\r\nnonsense\r\n\r\n");
    is($res->{content}, '{"detail":"Malformed multipart body."}',
       'PUT of a malformed multipart body: 400');
    is($h->get("/models/$id")->{json}{name}, $name,
       'neither changed the model');
}

# a request body over the 4 MiB that PUT reads
is(put_form("/models/$id", 'name=' . ('x' x (5 << 20)))->{status}, 413,
   'a huge PUT body: 413');
is($h->get('/health')->{status}, 200, 'still serving');

$h->finish;
done_testing();
