# Proves: with "error_log ... debug" (Debian's nginx is built --with-debug)
# the module's traces tell the story of each request, step by step, in the
# order it happens: the route, the query sent to the pool and the
# connection that runs it, its result, the cache's miss, store and hit,
# the store's calls, the invalidation of a change, the streamed list; and
# debug logging itself crashes no worker (the LISTEN connection's timer
# once had no data, which only the debug trace of a timer reads).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use Modelreg::Harness;

my $h = Modelreg::Harness->new(workers => 1, log_level => 'debug');

ok($h->wait_for(sub { $h->error_log =~ /the model cache is on line/ }),
   'the cache comes on line with debug logging');

# the log written while "code" runs, and its module traces in order;
# what the worker logs after the answer (the log phase) may come a moment
# later, so the log is read again, a bounded number of times
sub story {
    my ($name, $code, @steps) = @_;
    my $before = length $h->error_log;
    my $res = $code->();
    my (@traces, @at);
    for my $try (1 .. 50) {
        my $log = substr($h->error_log, $before);
        @traces = $log =~ /^.*?(modelreg [a-z0-9_]+: .*)$/mg;
        my $at = 0;
        @at = ();
        for my $step (@steps) {
            my ($found) = grep { $traces[$_] =~ $step } $at .. $#traces;
            push @at, $found;
            $at = $found + 1 if defined $found;
        }
        last unless grep { !defined } @at;
        sleep 0.1;
    }
    for my $i (0 .. $#steps) {
        ok(defined $at[$i], "$name: $steps[$i]")
            or diag join "\n", 'in:', @traces;
    }
    return $res;
}

my $id;
# the upload is stored (in a thread), then its row inserted (a batch of
# one: nothing else is in flight)
story('POST /models', sub {
        $id = $h->new_model(name => 'traced', version => '1') },
    qr/^modelreg router: "\/models" base:"" route:3/,
    qr/^modelreg models: upload checked, registering/,
    qr/^modelreg register: "[-0-9a-f]+" as "[-0-9a-f]+\/[0-9a-f]{16}\//,
    qr/^modelreg store: put "/,
    qr/^modelreg fs: put ".*" posted to a thread/,
    qr/^modelreg fs: ".*" stored/,
    qr/^modelreg store: put done: 0/,
    qr/^modelreg batch: 1 waiting, 0 in flight/,
    qr/^modelreg batch: 1 rows sent/,
    qr/^modelreg pg: #\d+ runs "/,
    qr/^modelreg pg: query done: status 0, 1 rows/,
    qr/^modelreg batch: 1 rows answered: 0, 1 returned/,
    qr/^modelreg register: "[-0-9a-f]+" inserted: 0/);

story('GET /models/{id}, a miss', sub { $h->get("/models/$id") },
    qr/^modelreg router: "\/models\/$id"/,
    qr/^modelreg cache: miss "$id"/,
    qr/^modelreg pg: #\d+ runs "/,
    qr/^modelreg pg: query done: status 0, 1 rows/,
    qr/^modelreg cache: "$id" stored/);

story('GET /models/{id}, a hit', sub { $h->get("/models/$id") },
    qr/^modelreg router: "\/models\/$id"/,
    qr/^modelreg cache: hit "$id"/);

story('PUT /models/{id}', sub {
        $h->put("/models/$id", { content => 'version=2', headers =>
            { 'Content-Type' => 'application/x-www-form-urlencoded' } }) },
    qr/^modelreg update: body read/,
    qr/^modelreg pg: #\d+ runs "/,
    qr/^modelreg update: done, status:0/,
    qr/^modelreg cache: invalidated "$id"/);

# a short list: its headers go out, with a Content-Length, at its end
story('GET /models', sub { $h->get('/models?name=traced') },
    qr/^modelreg list: \/models limit:100/,
    qr/^modelreg pg: #\d+ runs "/,
    qr/^modelreg list: \/models done, status:0 rows:1/,
    qr/^modelreg list: headers, length:\d+/);

story('GET /models/{id}/files', sub { $h->get("/models/$id/files") },
    qr/^modelreg router: "\/models\/$id\/files"/,
    qr/^modelreg pg: query done: status 0, 1 rows/,
    qr/^modelreg models: files of "$id" found/,
    qr/^modelreg fs: serve ".*", \d+ bytes/,
    qr/^modelreg store: serve ".*": 0/,
    qr/^modelreg store: download audited/);

story('DELETE /models/{id}', sub { $h->delete("/models/$id") },
    qr/^modelreg pg: query done: status 0, 1 rows/,
    qr/^modelreg cache: invalidated "$id"/,
    qr/^modelreg models: row of "$id" deleted/,
    qr/^modelreg store: remove "/,
    qr/^modelreg fs: unlink "/,
    qr/^modelreg store: delete done: 0/,
    qr/^modelreg models: object ".*" removed: 0/);

# the pool sees the database gone at the first query, then declines; a
# GET that comes while the pool tries the database again waits for that
# try instead (and the cleanup timer's own queries are declined too), so
# the GETs go on until one is declined, a bounded number of times
story('GET /models, the database down', sub {
        $h->stop_pg;
        my $res;
        for (1 .. 50) {
            my $before = length $h->error_log;
            $res = $h->get('/models');
            last if $res->{status} == 503
                    && substr($h->error_log, $before)
                       =~ /modelreg request: query declined/;
            sleep 0.1;
        }
        $res },
    qr/^modelreg pg: database down, (?:queued )?query declined/,
    qr/^modelreg request: query declined/,
    qr/^modelreg reply: end rc:/);
$h->start_pg;

$h->finish;
done_testing;
