# Proves: POST /projects/{id}/geti-models/download checks in API.md's
# order (project id 400, body 422, unknown project or model 404, not
# OpenVINO 403, already registered 409; nothing imported unless all pass),
# then imports every requested model: an export prepared and polled until
# DONE, its ZIP streamed into the store byte for byte, registered with the
# fields API.md maps from Geti and audited as geti.import (201).  A FAILED
# export answers 502 with the ones that did succeed; an export that never
# finishes answers 504 at the deadline.  A body with more than 100 models
# or the same model twice is 422, checked before Geti is asked; 100 are
# fine.  Each model's spool file is released when that model is done: an
# import of six models never holds more than one (counted in the worker's
# open files while it runs).  Four imports of one model at once: one 201,
# the others 409 (a row another import wrote first is "already
# registered", not a failed export).  Geti gone while an export is
# prepared: 503 "Geti unavailable.", not 502.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use JSON::PP;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(geti => {},
                               geti_params => 'export_timeout=2s');
my $g = $h->geti;
my $json = JSON::PP->new->utf8->canonical;

sub pid { sprintf('6650a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub gid { sprintf('7750a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub oid { sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $_[1], $_[0]) }

sub import_models {
    my ($project, @models) = @_;
    my $body = @models && !ref $models[0] ? $models[0]
             : $json->encode({ models => [ map { { id => $_->[0],
                                                   group_id => $_->[1] } }
                                           @models ] });
    return $h->post("/projects/$project/geti-models/download",
                    { content => $body,
                      headers => { 'Content-Type' => 'application/json' } });
}

sub count { $h->psql('SELECT count(*) FROM models') }

# ---- checks, in order
is(import_models('bad', 'x')->{content},
   '{"detail":"Invalid format for project ID."}', 'project id: 400');
for my $case (['not json', 'not JSON'], ['{}', '"models" must be'],
              ['{"models":[]}', '"models" must be'],
              ['{"models":[{"id":1,"group_id":"g"}]}', 'string "id"']) {
    my $res = import_models(pid(1), $case->[0]);
    is($res->{status}, 422, "body $case->[0]: 422");
    like($res->{json}{detail}, qr/^Invalid request body: .*\Q$case->[1]\E/,
         'says why');
}

# ---- at most 100 distinct models, checked with the body: Geti not asked
sub many { map { [ sprintf('9950a1b2c3d4e5f6a7b8%04d', $_), gid(1) ] } 1 .. $_[0] }
my $asked = $g->stats->{total};
my $res = import_models(pid(1), many(101));
is($res->{status}, 422, '101 models: 422');
is($res->{content}, '{"detail":"Invalid request body: at most 100 models are '
   . 'allowed."}', 'says how many are allowed');
$res = import_models(pid(1), [oid(1, 1), gid(1)], [oid(1, 2), gid(1)],
                     [oid(1, 1), gid(1)]);
is($res->{status}, 422, 'a model twice: 422');
is($res->{content}, '{"detail":"Invalid request body: duplicate model id '
   . oid(1, 1) . '."}', 'names it');
is($g->stats->{total}, $asked, 'Geti was not asked');
is(import_models(pid(1), many(100))->{status}, 404,
   '100 models pass the body check (then: not in Geti, 404)');

my $nf = '{"detail":"Project or model id not found. No model(s) registered."}';
is(import_models('0000000000000000000000ff', [oid(1, 1), gid(1)])->{content},
   $nf, 'unknown project: 404');
is(import_models(pid(1), [oid(1, 1), gid(1)], ['9950000000000000000000ff',
                                               gid(1)])->{content},
   $nf, 'an unknown model among known ones: 404');
is(import_models(pid(1), [oid(1, 1), gid(2)])->{content}, $nf,
   'a model in another group: 404');
$res = import_models(pid(1), [oid(1, 1), gid(1)], [oid(1, 3), gid(1)]);
is($res->{status}, 403, 'ONNX: 403');
is($res->{content}, '{"detail":"Model(s): ' . oid(1, 3) . ' can not be '
   . 'registered. Only OpenVINO optimized models are supported."}',
   'names the model');
is(count(), 0, 'nothing imported by a failed check');

# ---- two models in one request
$res = import_models(pid(1), [oid(1, 1), gid(1)], [oid(1, 2), gid(1)]);
is($res->{status}, 201, 'two models: 201') or diag $res->{content};
is($res->{json}{detail}, 'Model(s): ' . oid(1, 1) . ', ' . oid(1, 2)
   . ' registered.', 'detail');
my @reg = @{ $res->{json}{registered} };
is(scalar @reg, 2, 'both registered');
my $m = $reg[0];
is($m->{id}, oid(1, 1), 'id: the optimized model\'s');
is($m->{name}, 'YOLOX-1 OpenVINO FP16', 'name');
is($m->{version}, '1', 'version as a string');
is_deeply($m->{precision}, ['fp16'], 'precision lowercased');
is($m->{format}, 'openvino', 'format');
is($m->{origin}, 'Geti', 'origin');
is($m->{project_id}, pid(1), 'project_id');
is($m->{project_name}, 'Project 1', 'project_name');
is($m->{category}, 'Detection', 'category');
is($m->{architecture}, 'YOLOX', 'architecture');
is($m->{score}, 0.51, 'score: the base model\'s');
is_deeply($m->{labels}, [{ name => 'cat' }, { name => 'dog' }], 'labels');
is($m->{created_date}, '2024-01-21T08:00:00.000000+00:00',
   'created_date verbatim');
is($m->{target_device}, 'CPU', 'target_device');
is($m->{target_device_type}, 'cpu', 'target_device_type');
is_deeply($m->{optimization_capabilities}, { is_nncf_quantized => JSON::PP::false },
          'optimization_capabilities');
is($m->{file_name}, 'project-1.zip', 'file_name from the project name');
my $zip = Modelreg::FakeGeti::export_zip($g->fixture(1));
is($m->{sha256}, sha256_hex($zip), 'sha256 of the export');
is($m->{size}, length $zip, 'its size');
is($h->get("/models/$m->{id}/files")->{content}, $zip,
   'the stored bytes are the export, byte for byte');
is($h->get('/models?origin=Geti')->{status}, 200, 'listed with origin Geti');
my $ev = $h->get('/audit?action=geti.import')->{json};
is(scalar @$ev, 2, 'audited as geti.import');

# ---- already registered: 409, nothing new
$res = import_models(pid(1), [oid(1, 1), gid(1)]);
is($res->{status}, 409, 'again: 409');
is($res->{content}, '{"detail":"Model(s): ' . oid(1, 1)
   . ' already registered. No model(s) registered."}', 'names it');
is(count(), 2, 'nothing new');

# ---- four imports of one model at once: the row goes to one of them, the
# others are told it is registered (409), not that the export failed
my @socks = map { $h->send_raw('POST', '/projects/' . pid(3)
                               . '/geti-models/download',
                               $json->encode({ models => [
                                   { id => oid(3, 2), group_id => gid(3) } ] }),
                               { 'Content-Type' => 'application/json' }) }
            1 .. 4;
my @st = sort map { $h->read_response($_, 60)->{status} } @socks;
is($st[0], 201, 'concurrent imports: one 201');
is_deeply([ grep { $_ != 201 } @st ], [ (409) x (grep { $_ != 201 } @st) ],
          'the others 409') or diag "@st";
is($h->psql("SELECT count(*) FROM models WHERE id = '" . oid(3, 2) . "'"), 1,
   'one row');

# ---- Geti goes away while an export is prepared: 503 naming Geti, not a
# failed export
my $prepared = grep { /code_deployments:prepare/ } $g->requests;
# (the fake's export of this model is never done)
my $s = $h->send_raw('POST', '/projects/' . pid(4) . '/geti-models/download',
                     $json->encode({ models => [
                         { id => oid(4, 2), group_id => gid(4) } ] }),
                     { 'Content-Type' => 'application/json' });
ok($h->wait_for(sub { grep({ /code_deployments:prepare/ } $g->requests)
                      > $prepared }, 20), 'the export is prepared');
$g->down;
$res = $h->read_response($s, 60);
$g->up;
is($res->{status}, 503, 'Geti gone mid-export: 503');
is(decode_json($res->{content})->{detail}, 'Geti unavailable.',
   'naming Geti');

# ---- category from several tasks
$res = import_models(pid(3), [oid(3, 1), gid(3)]);
is($res->{json}{registered}[0]{category}, 'Detection_Classification',
   'category of a two-task project');
is(import_models(pid(4), [oid(4, 1), gid(4)])->{json}{registered}[0]{category},
   'Rotated_Detection', 'category with an underscore');

# ---- a FAILED export
$res = import_models(pid(2), [oid(2, 1), gid(2)], [oid(2, 2), gid(2)]);
is($res->{status}, 502, 'a FAILED export: 502');
is($res->{json}{detail}, 'Geti export failed for model(s): ' . oid(2, 2) . '.',
   'names it');
is_deeply([ map { $_->{id} } @{ $res->{json}{registered} } ], [oid(2, 1)],
          'with the one that did succeed');
like($h->error_log, qr/Geti export \w+ FAILED/, 'the log says so');

# ---- an export that never finishes
$res = import_models(pid(4), [oid(4, 2), gid(4)]);
is($res->{status}, 504, 'past the deadline: 504');
is($res->{json}{detail}, 'Geti export timed out for model(s): ' . oid(4, 2)
   . '.', 'names it');
is_deeply($res->{json}{registered}, [], 'nothing registered');
is($h->psql("SELECT count(*) FROM models WHERE id = '" . oid(4, 2) . "'"), 0,
   'no row');

# /metrics counts the models asked for, by outcome
my $mx = $h->metrics;
ok($mx->{'modelreg_geti_imports_total{outcome="registered"}'} >= 2,
   '/metrics: imports registered');
ok($mx->{'modelreg_geti_imports_total{outcome="failed"}'} >= 1,
   '/metrics: the FAILED export');
is($mx->{'modelreg_geti_imports_total{outcome="timed_out"}'}, 1,
   '/metrics: the one that timed out');

is($h->get('/health')->{status}, 200, 'still serving');
$h->finish;
undef $h;

# ---- one model at a time: each releases its spool file when it is done
$h = Modelreg::Harness->new(geti => { optimized => 6 },
                            geti_params => 'export_timeout=10s');
my ($worker) = $h->worker_pids;
my $dir = $h->dir;

# the worker's open files under the test's directory, but its logs (and
# the directories the fs store opens a moment to fsync them)
sub spool_fds {
    my $n = 0;
    for my $fd (glob "/proc/$worker/fd/*") {
        my $to = readlink($fd) // next;
        $n++ if $to =~ m{^\Q$dir\E/} && $to !~ m{/logs/} && !-d $to;
    }
    return $n;
}

my $before = spool_fds();
$s = $h->send_raw('POST', '/projects/' . pid(1) . '/geti-models/download',
    $json->encode({ models => [ map { { id => oid(1, $_), group_id => gid(1) } }
                                    1 .. 6 ] }),
    { 'Content-Type' => 'application/json' });
my $most = 0;
my $until = time + 60;
until ($h->has_response($s) || time > $until) {
    my $n = spool_fds() - $before;
    $most = $n if $n > $most;
    select(undef, undef, undef, 0.02);
}
$res = $h->read_response($s, 30);
is($res->{status}, 201, 'six models imported') or diag $res->{content};
is(scalar @{ decode_json($res->{content})->{registered} }, 6, 'all six');
ok($most <= 1, "never more than one spool file open at once (most: $most)");
is(spool_fds(), $before, 'none left open');
$h->finish;
done_testing();
