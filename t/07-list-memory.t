# Proves: list and audit answers are streamed with bounded memory (issue
# 10 item 4).  40 models of ~3 MB of JSON each (overview,
# optimization_capabilities and labels of ~1 MB, with multi-byte UTF-8 so
# that pieces split characters) and 40 audit events of ~4 MB: four
# `?limit=40` lists of each from clients that do not read for a while,
# plus normal lists meanwhile, through one worker whose peak RSS (VmHWM,
# reset with clear_refs) grows by less than 16 MiB (before streaming:
# 1.5 GB for the models, 1.8 GB for the audit); every answer is whole and
# byte for byte what the models read one by one (GET /models/{id}) or the
# events read one page each make.  HEAD sends the headers only.  A client
# that does not read its page within the query's timeout has its
# connection closed, and the pool's connection is reset cleanly (the next
# list is whole, no connection is left busy).  Memory bounds and counts,
# no timings.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Encode ();
use IO::Select;
use JSON::PP;
use Time::HiRes qw(sleep time);
use Modelreg::Harness;

plan skip_all => 'clear_refs needs root' unless $> == 0;

# the timeout covers a whole answer: long enough for this test's readers
my $h = Modelreg::Harness->new(workers => 1, client_timeout => 120,
                               db => 'pool=8 queue=64 timeout=120s');
my ($worker) = $h->worker_pids;
my $json = JSON::PP->new->utf8->canonical;

sub mem { Modelreg::Harness::proc_kib($worker, $_[0]) / 1024 }

# the peak from now on: VmHWM restarts at the current RSS
sub reset_peak { Modelreg::Harness::reset_peak($worker) / 1024 }

# a GET on its own connection, read at once (HTTP/1.0: no chunks to
# decode, which HTTP::Tiny does slowly for 120 MB)
sub raw_get {
    my ($path) = @_;
    return $h->read_response($h->send_raw('GET', $path), 120);
}

# ~1 MB of text; 2-, 3- and 4-byte characters in it
sub mb {
    my ($tag) = @_;
    my $unit = "$tag-1 \x{e9}\x{20ac}\x{1f600} ";
    return $unit x int(1_000_000 / length(Encode::encode_utf8($unit)));
}

# ---- 40 models of ~3 MB, each different: 1 through the API, 39 cloned

my $res = $h->register(name => 'big-01', version => '1',
    overview => $json->encode({ text => mb('ov') }),
    optimization_capabilities => $json->encode({ text => mb('oc') }),
    labels => $json->encode([ mb('lb') ]));
is($res->{status}, 201, 'a model with 3 MB of JSON registered')
    or diag $res->{content};
my $first = $res->{content};

$h->psql(<<"SQL");
INSERT INTO models (id, name, version, created_date, size, sha256,
                    file_name, storage_key, overview,
                    optimization_capabilities, labels)
SELECT 'big' || lpad(i::text, 13, '0'), 'big-' || lpad(i::text, 2, '0'),
       '1', m.created_date, m.size, m.sha256, m.file_name, 'big/' || i,
       jsonb_build_object('text', replace(m.overview->>'text', 'ov-1 ',
                                          'ov-' || i || ' ')),
       jsonb_build_object('text',
           replace(m.optimization_capabilities->>'text', 'oc-1 ',
                   'oc-' || i || ' ')),
       jsonb_build_array(replace(m.labels->>0, 'lb-1 ', 'lb-' || i || ' '))
FROM models m, generate_series(2, 40) i WHERE m.id = '$first';
SQL

# the reference: each model on its own (GET /models/{id}, not a list)
my @ids = split /\n/,
    $h->psql('SELECT id FROM models ORDER BY registered_at, id');
is(scalar @ids, 40, '40 models');
my @one = map { raw_get("/models/$_")->{content} } @ids;
ok(!(grep { length($_) < 3_000_000 } @one), 'each over 3 MB of JSON');
my $m40 = $json->decode($one[39]);
is($m40->{id}, $ids[39], 'valid JSON');
like($m40->{overview}{text}, qr/^ov-40 \x{e9}/, 'the clones differ');
my $models = '[' . join(',', @one) . ']';

# one by one through the pages
my ($url, @paged) = ('/models?limit=1');
for (1 .. 50) {
    $res = raw_get($url);
    push @paged, $res->{content};
    ($url) = ($res->{headers}{link} // '') =~ /^<([^>]+)>/ or last;
}
is(scalar @paged, 40, 'paged one by one: 40 pages');
is_deeply(\@paged, [ map { "[$_]" } @one ], 'each page is the model');

# ---- 40 audit events of ~4 MB: one real update, 39 clones

# (of a 41st model: the first 40 stay as they are)
$res = $h->register(name => 'audit-src', version => '1',
    overview => $json->encode({ text => mb('ov') }));
is($res->{status}, 201, 'a 41st model') or diag $res->{content};
my $src = $res->{content};
my $up = $h->put("/models/$src", { content => $json->encode({
    overview => { text => mb('new') } }),
    headers => { 'Content-Type' => 'application/json' } });
is($up->{status}, 200, 'an update of a 1 MB overview')
    or diag $up->{content};
$h->psql(<<"SQL");
INSERT INTO audit_events (action, model_id, actor, request_id, remote_addr,
                          status, details)
SELECT e.action, e.model_id, e.actor, 'clone-' || i, e.remote_addr,
       e.status, jsonb_set(e.details, '{changed,labels}',
           jsonb_build_object('old', m.labels, 'new', m.labels))
           || jsonb_build_object('clone', i)
FROM audit_events e, models m, generate_series(2, 40) i
WHERE e.action = 'model.update' AND m.id = '$first';
SQL
($url, @paged) = ('/audit?action=model.update&limit=1');
for (1 .. 50) {
    $res = raw_get($url);
    push @paged, $res->{content} =~ /^\[(.*)\]$/s;
    ($url) = ($res->{headers}{link} // '') =~ /^<([^>]+)>/ or last;
}
is(scalar @paged, 40, '40 update events, one a page');
ok(!(grep { length($_) < 2_000_000 } @paged), 'each over 2 MB');
is_deeply([ map { /"details" : \{"clone": (\d+)/ ? $1 : 1 } @paged ],
          [ reverse 1 .. 40 ], 'newest first');
my $events = '[' . join(',', @paged) . ']';

# ---- four slow readers and normal ones, memory measured

sub read_all {
    my (@socks) = @_;
    my %buf;
    my $sel = IO::Select->new(@socks);
    my $deadline = time + 120;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $got = sysread($s, $buf{$s}, 1 << 16, length($buf{$s} // ''));
            $sel->remove($s) unless $got;
        }
    }
    return map { my $r = Modelreg::Harness::parse_response($buf{$_} // '');
                 close $_; $r } @socks;
}

for my $case (['/models?limit=40', $models, 'models'],
              ['/audit?action=model.update&limit=40', $events, 'audit'])
{
    my ($path, $want, $what) = @$case;
    my $rss0 = reset_peak();

    my @slow = map { $h->send_raw('GET', $path) } 1 .. 4;

    # meanwhile, normal clients get whole answers
    for (read_all(map { $h->send_raw('GET', $path) } 1 .. 2)) {
        is($_->{status}, 200, "$what: a normal list meanwhile");
        ok($_->{content} eq $want, "$what: whole and equal")
            or diag length($_->{content}) . ' bytes of ' . length($want);
    }
    is($h->get('/health')->{status}, 200, "$what: /health meanwhile");

    # the slow ones have stalled on full sockets; now they read
    sleep 1;
    my $i = 0;
    for my $r (read_all(@slow)) {
        $i++;
        is($r->{status}, 200, "$what: slow reader $i: 200");
        ok($r->{content} eq $want, "$what: slow reader $i: whole and equal")
            or diag length($r->{content}) . ' bytes of ' . length($want);
    }

    my $grew = mem('VmHWM') - $rss0;
    cmp_ok($grew, '<', 16,
           sprintf('%s: 4 slow + 2 normal lists of 40 x 3 MB: peak RSS'
                   . ' grew %.1f MiB', $what, $grew));
}

# HEAD: the headers of the list, no body
$res = $h->head('/models?limit=39');
is($res->{status}, 200, 'HEAD: 200');
like($res->{headers}{link} // '', qr/page_token=/, 'HEAD: with the Link');
is($res->{content} // '', '', 'HEAD: no body');
# chunked (HTTP/1.1): 9 MB in buffers of 64 KiB
$res = $h->get('/models?limit=3');
ok(!defined $res->{headers}{'content-length'}, 'a long answer is chunked');
like($res->{headers}{link} // '', qr/page_token=/, 'with its Link');
ok($res->{content} eq '[' . join(',', @one[0 .. 2]) . ']', 'and whole');

# ---- a client that does not read within the query's timeout

$h->{opt}{db} = 'pool=2 queue=64 timeout=6s';
$h->reload_nginx;
ok($h->wait_for(sub {
    my @w = $h->worker_pids;
    @w == 1 && $w[0] != $worker;
}), 'reloaded with timeout=6s');
($worker) = $h->worker_pids;
my $timeouts = () = $h->error_log =~ /database query timed out/g;

# (PostgreSQL makes a page's JSON before its first row: 10 models, 30 MB,
# take it well under 6 s even on a loaded machine, and are more than the
# sockets hold)
my $stuck = $h->unchecked($h->send_raw('GET', '/models?limit=10'));
ok($h->wait_for(sub {
    (() = $h->error_log =~ /database query timed out/g) > $timeouts
}, 60), 'the query times out while the client does not read');
my ($cut) = read_all($stuck);
is($cut->{status}, 200, 'its answer had begun');
ok(length($cut->{content}) < 30_000_000, 'and is cut short')
    or diag length($cut->{content}) . ' bytes';
like($h->error_log, qr/answer cut short/, 'logged');

# (a page must be made within the timeout: 5 of them)
$res = raw_get('/models?limit=5');
ok($res->{content} eq '[' . join(',', @one[0 .. 4]) . ']',
   'the next list is whole');
ok($h->wait_for(sub {
    ($h->metrics->{'modelreg_db_pool_connections{state="busy"}'} // 1) == 0
}), 'no pool connection left busy');

$h->finish;
done_testing();
