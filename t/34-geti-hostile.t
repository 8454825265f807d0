# Proves: a Geti that answers 200 with the wrong JSON (a number, an
# object, an array or null where a string is expected and the other way
# round, a missing key, a 10 MB string, truncated JSON, fewer bytes than
# its Content-Length) never crashes or hangs a worker.  Each hostile answer
# is driven through every operation that reads it: GET /projects and GET
# /projects/{id} answer 502 {"detail":"Geti returned an invalid answer."}
# (503 "Geti unavailable." for a transfer cut short), an import answers
# 502 and registers nothing, a sync run ends "failed"; the error log names
# the field that was wrong; the worker answers /health after each, and
# everything works again once Geti behaves.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Modelreg::Harness;

sub pid { sprintf('6650a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub gid { sprintf('7750a1b2c3d4e5f6a7b8c9%02d', $_[0]) }
sub oid { sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $_[1], $_[0]) }

my $h = Modelreg::Harness->new(geti => { slow => 0 }, geti_params =>
    'timeout=60s export_timeout=60s projects=' . pid(1));
my $g = $h->geti;
my $json = JSON::PP->new->utf8->canonical;
my $INVALID = '{"detail":"Geti returned an invalid answer."}';
my $HUGE = 10 * 1024 * 1024;

# [ what, the hostile answer, the operations it breaks: L = GET /projects,
#   P = GET /projects/{id}, I = an import, S = a sync run ]
my @cases = (
    # the project listing
    [ 'projects a string', { kind => 'listing', path => 'projects',
                             value => 'x' }, 'LS' ],
    [ 'projects null', { kind => 'listing', path => 'projects',
                         value => undef }, 'LS' ],
    [ 'projects missing', { kind => 'listing', path => 'projects',
                            delete => 1 }, 'LS' ],
    [ 'project_counts a string', { kind => 'listing',
                                   path => 'project_counts', value => '5' },
      'LS' ],
    [ 'project_counts missing', { kind => 'listing', path => 'project_counts',
                                  delete => 1 }, 'LS' ],
    [ 'a project a string', { kind => 'listing', path => 'projects.*',
                              value => 'x' }, 'LS' ],
    [ 'project id a number', { kind => 'listing', path => 'projects.*.id',
                               value => 12345 }, 'LS' ],
    [ 'project id null', { kind => 'listing', path => 'projects.*.id',
                           value => undef }, 'LS' ],
    [ 'project id an object', { kind => 'listing', path => 'projects.*.id',
                                value => { a => 1 } }, 'LS' ],
    [ 'project id not an id', { kind => 'listing', path => 'projects.*.id',
                                value => '../../x?y=1' }, 'LS' ],
    [ 'project name an array', { kind => 'listing',
                                 path => 'projects.*.name', value => ['x'] },
      'LS' ],
    [ 'creation_time a number', { kind => 'listing',
                                  path => 'projects.*.creation_time',
                                  value => 7 }, 'LS' ],
    [ 'listing null', { kind => 'listing', whole => 'null' }, 'LS' ],
    [ 'listing an array', { kind => 'listing', whole => 'array' }, 'LS' ],
    [ 'listing truncated', { kind => 'listing', whole => 'truncated' }, 'LS' ],
    [ 'listing with a 10 MB name', { kind => 'listing',
                                     path => 'projects.*.name',
                                     huge => $HUGE }, 'LS' ],

    # one project
    [ 'project id a number', { kind => 'project', path => 'id', value => 5 },
      'PIS' ],
    [ 'project name an object', { kind => 'project', path => 'name',
                                  value => {} }, 'PIS' ],
    [ 'pipeline a string', { kind => 'project', path => 'pipeline',
                             value => 'x' }, 'IS' ],
    [ 'tasks an object', { kind => 'project', path => 'pipeline.tasks',
                           value => {} }, 'IS' ],
    [ 'task_type a number', { kind => 'project',
                              path => 'pipeline.tasks.*.task_type',
                              value => 3 }, 'IS' ],
    [ 'project truncated', { kind => 'project', whole => 'truncated' },
      'PIS' ],

    # model groups
    [ 'model_groups a string', { kind => 'groups', path => 'model_groups',
                                 value => 'x' }, 'LPIS' ],
    [ 'model_groups missing', { kind => 'groups', path => 'model_groups',
                                delete => 1 }, 'LPIS' ],
    [ 'group id a number', { kind => 'groups', path => 'model_groups.*.id',
                             value => 42 }, 'LPIS' ],
    [ 'group id null', { kind => 'groups', path => 'model_groups.*.id',
                         value => undef }, 'LPIS' ],
    [ 'group name an array', { kind => 'groups',
                               path => 'model_groups.*.name', value => [] },
      'LPIS' ],
    [ 'models an object', { kind => 'groups', path => 'model_groups.*.models',
                            value => {} }, 'LPIS' ],
    [ 'model id true', { kind => 'groups',
                         path => 'model_groups.*.models.*.id',
                         value => JSON::PP::true }, 'LPIS' ],
    [ 'model name a number', { kind => 'groups',
                               path => 'model_groups.*.models.*.name',
                               value => 1 }, 'LPIS' ],
    [ 'model version a string', { kind => 'groups',
                                  path => 'model_groups.*.models.*.version',
                                  value => '1' }, 'LPIS' ],
    [ 'groups truncated', { kind => 'groups', whole => 'truncated' }, 'LPIS' ],
    [ 'groups with a 10 MB name', { kind => 'groups',
                                    path => 'model_groups.*.name',
                                    huge => $HUGE }, 'LPIS' ],
    [ 'groups cut short', { kind => 'groups', whole => 'short' }, 'LPIS' ],

    # a model's details
    [ 'optimized_models a string', { kind => 'model',
                                     path => 'optimized_models',
                                     value => 'x' }, 'LPIS' ],
    [ 'optimized id a number', { kind => 'model',
                                 path => 'optimized_models.*.id',
                                 value => 9 }, 'LPIS' ],
    [ 'optimized id null', { kind => 'model', path => 'optimized_models.*.id',
                             value => undef }, 'LPIS' ],
    [ 'optimized name an object', { kind => 'model',
                                    path => 'optimized_models.*.name',
                                    value => {} }, 'LPIS' ],
    [ 'model_format a number', { kind => 'model',
                                 path => 'optimized_models.*.model_format',
                                 value => 1 }, 'LPIS' ],
    [ 'optimized version a string', { kind => 'model',
                                      path => 'optimized_models.*.version',
                                      value => '1' }, 'IS' ],
    [ 'precision a string', { kind => 'model',
                              path => 'optimized_models.*.precision',
                              value => 'FP16' }, 'IS' ],
    [ 'precision of numbers', { kind => 'model',
                                path => 'optimized_models.*.precision',
                                value => [1] }, 'IS' ],
    [ 'target_device a number', { kind => 'model',
                                  path => 'optimized_models.*.target_device',
                                  value => 1 }, 'IS' ],
    [ 'target_device_type an array', { kind => 'model',
                               path => 'optimized_models.*.target_device_type',
                               value => [] }, 'IS' ],
    [ 'creation_date an object', { kind => 'model',
                                   path => 'optimized_models.*.creation_date',
                                   value => {} }, 'IS' ],
    [ 'optimization_capabilities a string', { kind => 'model',
                    path => 'optimized_models.*.optimization_capabilities',
                    value => 'x' }, 'IS' ],
    [ 'performance a string', { kind => 'model', path => 'performance',
                                value => 'x' }, 'IS' ],
    [ 'score a string', { kind => 'model', path => 'performance.score',
                          value => 'high' }, 'IS' ],
    [ 'architecture a number', { kind => 'model', path => 'architecture',
                                 value => 5 }, 'IS' ],
    [ 'labels a string', { kind => 'model', path => 'labels',
                           value => 'cat' }, 'IS' ],
    [ 'model truncated', { kind => 'model', whole => 'truncated' }, 'LPIS' ],

    # an export
    [ 'deployment id a number', { kind => 'prepare', path => 'id',
                                  value => 5 }, 'IS' ],
    [ 'deployment id missing', { kind => 'prepare', path => 'id',
                                 delete => 1 }, 'IS' ],
    [ 'prepare truncated', { kind => 'prepare', whole => 'truncated' }, 'IS' ],
    [ 'state a number', { kind => 'state', path => 'state', value => 1 },
      'IS' ],
    [ 'state missing', { kind => 'state', path => 'state', delete => 1 },
      'IS' ],
    [ 'state null', { kind => 'state', whole => 'null' }, 'IS' ],
);

sub import_one {
    return $h->post('/projects/' . pid(1) . '/geti-models/download',
        { content => $json->encode({ models => [ { id => oid(1, 1),
                                                   group_id => gid(1) } ] }),
          headers => { 'Content-Type' => 'application/json' } });
}

sub last_run { $h->get('/geti/sync')->{json}{last_run} // {} }

sub sync_run {
    my $before = last_run()->{id} // 0;
    my $res = $h->post('/geti/sync');
    return "POST /geti/sync: $res->{status}" if $res->{status} != 202;
    $h->wait_for(sub { my $r = last_run();
                       ($r->{id} // 0) > $before
                       && ($r->{outcome} // 'running') ne 'running' }, 60)
        or return 'the run did not end';
    return last_run()->{outcome};
}

for my $c (@cases) {
    my ($what, $case, $ops) = @$c;
    my $short = ($case->{whole} // '') eq 'short';
    $g->hostile($case);

    if ($ops =~ /L/) {
        my $res = $h->get('/projects');
        if ($short) {
            is($res->{content}, '{"detail":"Geti unavailable."}',
               "$case->{kind}: $what: GET /projects 503");
        } else {
            is($res->{status}, 502, "$case->{kind}: $what: GET /projects 502");
            is($res->{content}, $INVALID, '    "Geti returned an invalid answer."');
        }
    }
    if ($ops =~ /P/) {
        my $res = $h->get('/projects/' . pid(1));
        is($res->{status}, $short ? 503 : 502,
           "$case->{kind}: $what: GET /projects/{id} " . ($short ? 503 : 502));
        is($res->{content}, $INVALID, '    "Geti returned an invalid answer."')
            unless $short;
    }
    if ($ops =~ /I/) {
        my $res = import_one();
        is($res->{status}, $short ? 503 : 502,
           "$case->{kind}: $what: an import " . ($short ? 503 : 502));
        my $want = $case->{kind} =~ /^(prepare|state)$/
                 ? 'Geti export failed for model(s): ' . oid(1, 1) . '.'
                 : $short ? 'Geti unavailable.'
                 : 'Geti returned an invalid answer.';
        is($res->{json}{detail}, $want, "    $want");
        is($h->psql('SELECT count(*) FROM models'), 0, '    nothing registered');
    }
    if ($ops =~ /S/) {
        is(sync_run(), 'failed', "$case->{kind}: $what: a sync run fails");
    }
    is($h->get('/health')->{status}, 200, '    the worker still answers');
}

my $log = $h->error_log;
like($log, qr/Geti returned an invalid answer to GET \S+model_groups: "model_groups\[\]\.id" is a number/,
     'the log names the field and what it was');
like($log, qr/Geti returned an invalid answer to GET \S+: "project_counts" is missing/,
     'or that it was missing');
like($log, qr/Geti answered GET \S+ with more than 4194304 bytes/,
     'a 10 MB answer is cut at the bound');
like($log, qr/Geti sent bad JSON for GET/, 'truncated JSON is named');
unlike($log, qr/exited on signal/, 'no worker crashed');

# Geti behaves again: everything works
$g->hostile(undef);
my $res = $h->get('/projects');
is($res->{status}, 200, 'Geti behaves: GET /projects 200');
is(scalar @{ $res->{json} }, 5, 'all five projects');
is(import_one()->{status}, 201, 'an import 201');
is(sync_run(), 'ok', 'a sync run ok');

$h->finish;
done_testing();
