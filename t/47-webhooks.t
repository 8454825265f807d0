# Proves the webhooks (README "Webhooks"), against receivers in this test
# (t/lib/Modelreg/HookReceiver.pm) that check every signature with the
# hook's key: bad modelreg_webhook directives fail nginx -t naming what is
# wrong; each matching audit event is POSTed once with its headers and a
# valid HMAC-SHA256 (README's shell check, run as written, says valid,
# and forged of a changed body), the action filter holds, and an event
# is queued in the statement that writes it (a rolled back change queues
# nothing);
# the receiver down then up: nothing lost, each model's events in commit
# order, and a model whose deliveries fail does not hold the others back;
# retries back off (1, 2, 4 s); a delivery pending past the 24 h window
# (its row's time set back in SQL) is failed, logged at warn and counted,
# and its model's next event goes; a slow receiver (timeout=), a huge
# answer and 500s cost bounded time, memory and at most 8 POSTs at once;
# nginx reloaded and PostgreSQL restarted mid-delivery lose nothing; two
# nodes on one database deliver each event once, one node at a time; the
# /metrics series.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep time);
use Modelreg::Harness;
use Modelreg::HookReceiver;

my $KEY = 'webhook-key-' . ('k' x 24);
my $JSON = JSON::PP->new->utf8->canonical;

my $main = Modelreg::HookReceiver->start(key => $KEY);
my $deletes = Modelreg::HookReceiver->start(key => $KEY);

my $h = Modelreg::Harness->new(no_nginx => 1, workers => 2);
my $d = $h->dir;
$h->secret('webhook key', $KEY);
Modelreg::Harness::write_file("$d/hook.key", "$KEY\n");
$h->{opt}{http} = hooks();
$h->start_nginx;

# the configured hooks, as nginx.conf lines
sub hooks {
    return "modelreg_webhook " . $main->url . " name=main key_file=$d/hook.key"
         . " actions=model.create,model.update,model.delete,alias.set"
         . " timeout=2s;"
         . " modelreg_webhook " . $deletes->url . " key_file=$d/hook.key"
         . " actions=model.delete;";
}

# ---- nginx -t ------------------------------------------------------------

{
    my $so = $Modelreg::Harness::MODULE;
    Modelreg::Harness::write_file("$d/short.key", "short\n");
    my $conf = sub {
        "load_module $so; events {} http { $_[0] server { listen"
        . " 127.0.0.1:1; } }";
    };
    my $ok = "key_file=$d/hook.key actions=model.create";
    my @bad = (
        [ 'no URL scheme', "modelreg_webhook 127.0.0.1/x $ok;",
          qr/"modelreg_webhook" needs an http:\/\/ or https:\/\/ URL, not "127.0.0.1\/x"/ ],
        [ 'no key_file', 'modelreg_webhook http://h/x actions=model.create;',
          qr/"modelreg_webhook" needs key_file=/ ],
        [ 'missing key file', 'modelreg_webhook http://h/x'
          . " key_file=$d/none.key actions=model.create;",
          qr/cannot read the key file "\Q$d\E\/none.key" of "modelreg_webhook"/ ],
        [ 'short key', 'modelreg_webhook http://h/x'
          . " key_file=$d/short.key actions=model.create;",
          qr/the key file of "modelreg_webhook" "http:\/\/h\/x" has a key of 5 bytes: at least 16 are needed/ ],
        [ 'no actions', "modelreg_webhook http://h/x key_file=$d/hook.key;",
          qr/"modelreg_webhook" needs actions=/ ],
        [ 'unknown action', "modelreg_webhook http://h/x key_file=$d/hook.key"
          . " actions=model.create,model.explode;",
          qr/unknown action "model.explode" in "modelreg_webhook"/ ],
        [ 'bad timeout', "modelreg_webhook http://h/x $ok timeout=soon;",
          qr/invalid value "timeout=soon" in "modelreg_webhook"/ ],
        [ 'unknown parameter', "modelreg_webhook http://h/x $ok secret=1;",
          qr/unknown parameter "secret=1" in "modelreg_webhook"/ ],
        [ 'bad name', "modelreg_webhook http://h/x $ok name=a\"b;",
          qr/invalid name "a"b" in "modelreg_webhook"/ ],
        [ 'duplicate name', "modelreg_webhook http://h/x $ok;"
          . " modelreg_webhook http://h/x $ok;",
          qr/"modelreg_webhook" "http:\/\/h\/x" is duplicate/ ],
        [ 'in a server', '',
          qr/"modelreg_webhook" directive is not allowed here/,
          "modelreg_webhook http://h/x $ok;" ],
    );
    for my $t (@bad) {
        my ($name, $http, $re, $server) = @$t;
        my $text = $conf->($http);
        $text =~ s/listen/$server listen/ if $server;
        my ($rc, $out) = $h->nginx_t($text);
        ok($rc != 0 && $out =~ $re, "nginx -t: $name")
            or diag $out;
        unlike($out, qr/\Q$KEY\E/, "nginx -t: $name: no key in the output");
    }
    my ($rc, $out) = $h->nginx_t($conf->("modelreg_webhook http://h/x $ok;"
                                         . " modelreg_webhook http://h/x $ok"
                                         . " name=second;"));
    is($rc, 0, 'nginx -t: two hooks of one URL with their own names')
        or diag $out;
}

# ---- delivered, signed, filtered -----------------------------------------

ok($h->wait_for(sub {
       $h->psql("SELECT count(*) FROM webhook_hooks") == 2 }, 30),
   'both hooks announced themselves to the database');

# the audit events of a set of models, by id
sub events_of {
    my (@ids) = @_;
    my $list = join ',', map { "'$_'" } @ids;
    return [ map { [ split /\|/ ] } split /\n/, $h->psql(
        "SELECT id, action, model_id FROM audit_events"
        . " WHERE model_id IN ($list) ORDER BY id") ];
}

# the first arrival of each delivery answered 200, in arrival order
sub accepted {
    my ($r) = @_;
    my (%seen, @out);
    for my $x (@{ $r->deliveries }) {
        next unless $x->{status} == 200;
        push @out, $x unless $seen{ $x->{delivery} }++;
    }
    return \@out;
}

# waits until the receiver accepted every event of @$events
sub wait_accepted {
    my ($r, $events, $seconds) = @_;
    my %want = map { $_->[0] => 1 } @$events;
    return $h->wait_for(sub {
        my %got = map { ($_->{body}{id} // 0) => 1 } @{ accepted($r) };
        !grep { !$got{$_} } keys %want;
    }, $seconds // 30);
}

# each model's events accepted in the order of their ids (which, for one
# model, is their commit order: sql/007)
sub in_order {
    my ($r, $name) = @_;
    my %last;
    my $ok = 1;
    for my $x (@{ accepted($r) }) {
        my $m = $x->{body}{model_id} // '';
        if (defined $last{$m} && $x->{body}{id} < $last{$m}) {
            $ok = 0;
            diag "$name: event $x->{body}{id} of $m after $last{$m}";
        }
        $last{$m} = $x->{body}{id} if !defined $last{$m}
                                      || $x->{body}{id} > $last{$m};
    }
    ok($ok, "$name: each model's events in commit order");
}

my @m = map { $h->new_model(name => "hook-$_", version => '1') } 1 .. 3;
my $res = $h->put("/models/$m[0]", { content => 'score=0.5',
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' } });
is($res->{status}, 200, 'an update');
is($h->delete("/models/$m[1]")->{status}, 204, 'a delete');
$h->get("/models/$m[2]/files");                  # model.download: not wanted
my $ev = events_of(@m);
my @wanted = grep { $_->[1] ne 'model.download' } @$ev;
is(scalar @wanted, 5, '5 events a hook of main wants (and a download)');

ok(wait_accepted($main, \@wanted), 'main: every wanted event delivered');
my $got = accepted($main);
is_deeply([ sort { $a <=> $b } map { $_->{body}{id} } @$got ],
          [ map { $_->[0] } @wanted ], 'main: those events, each once');
is(scalar(grep { $_->{valid} } @$got), scalar @$got,
   'main: every signature is the HMAC-SHA256 of the body with the key');
is(scalar(grep { $_->{event} eq $_->{body}{action} } @$got), scalar @$got,
   'X-Modelreg-Event is the action');

# README's shell check of a signature, run as written on a delivery's
# bytes (the key's path replaced), and on the same bytes changed
my ($check) = Modelreg::Harness::slurp("$Modelreg::Harness::TOP/README.md")
    =~ /```sh\n(# \$BODY_FILE[^`]*?openssl dgst -sha256 -hmac[^`]*?)```/s;
ok($check, "README's signature check in shell") or BAIL_OUT('none');
$check =~ s{/etc/nginx/modelreg-ci\.key}{$d/hook.key};
for my $case ([ 'valid', $got->[0]{raw} ], [ 'forged', $got->[0]{raw} . ' ' ]) {
    Modelreg::Harness::write_file("$d/body", $case->[1]);
    Modelreg::Harness::write_file("$d/check.sh",
        "BODY_FILE=$d/body SIG='$got->[0]{signature}'\n$check");
    my ($rc, $out) = Modelreg::Harness::run_cmd('bash', "$d/check.sh");
    is($out, "$case->[0]\n", "  says $case->[0] of "
       . ($case->[0] eq 'valid' ? 'a delivery' : 'its body changed'));
}
is(scalar(grep { ($_->{type} // '') eq 'application/json' } @$got),
   scalar @$got, 'Content-Type: application/json');
is(scalar(grep { $_->{request} eq 'POST /hook HTTP/1.1' } @$got),
   scalar @$got, 'POSTed to the URL');
my $uuid = qr/^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$/;
is(scalar(grep { $_->{delivery} =~ $uuid } @$got),
   scalar @$got, 'X-Modelreg-Delivery is a UUID');
my ($create) = grep { $_->{body}{action} eq 'model.create'
                      && $_->{body}{model_id} eq $m[0] } @$got;
my $audit = $JSON->decode($h->get("/audit?model_id=$m[0]")->{content});
my ($a0) = grep { $_->{action} eq 'model.create' } @$audit;
is_deeply($create->{body}, $a0, 'the body is the audit event as /audit has it');
in_order($main, 'main');

ok($h->wait_for(sub {
       @{ accepted($deletes) } == 1 }, 30), 'the delete hook got one');
is_deeply([ map { $_->{body}{action} } @{ accepted($deletes) } ],
          [ 'model.delete' ], 'the delete hook: only its action');
is(scalar(grep { $_->{valid} } @{ $deletes->deliveries }), 1,
   'the delete hook: signed');

# a change rolled back queues nothing; one committed queues in its INSERT
my $before = $h->psql("SELECT count(*) FROM webhook_deliveries");
$h->psql("BEGIN; INSERT INTO audit_events (action, actor, model_id)"
         . " VALUES ('model.update', 'sql', '$m[0]'); ROLLBACK;");
is($h->psql("SELECT count(*) FROM webhook_deliveries"), $before,
   'a rolled back event queues no delivery');
is($h->psql("WITH a AS (INSERT INTO audit_events (action, actor, model_id)"
            . " VALUES ('model.update', 'sql', '$m[0]') RETURNING id)"
            . " SELECT count(*) FROM a"), 1, 'an event by SQL');
is($h->psql("SELECT count(*) FROM webhook_deliveries"), $before + 1,
   '...is queued by the statement that wrote it, for the hook that wants it');

# $n events of models "$prefix-1".."$prefix-$models", written by SQL in
# one statement, in turn (model 1, 2, ..., 1, 2, ...); their ids
sub sql_events {
    my ($prefix, $models, $n) = @_;
    return [ map { [ split /\|/ ] } split /\n/, $h->psql(
        "INSERT INTO audit_events (action, actor, model_id)"
        . " SELECT 'model.update', 'sql', '$prefix-' || (1 + g % $models)"
        . " FROM generate_series(0, $n - 1) g ORDER BY g"
        . " RETURNING id, action, model_id") ];
}

# deliveries of these events accepted more than once
sub repeats {
    my ($r, $events) = @_;
    my %want = map { $_->[0] => 1 } @$events;
    my %n;
    $n{ $_->{delivery} }++ for grep { $_->{status} == 200
                                      && $want{ $_->{body}{id} // 0 } }
                               @{ $r->deliveries };
    return scalar grep { $_ > 1 } values %n;
}

# ---- the receiver down, then up ----------------------------------------

$main->clear;
$main->down;
my @down = map { $h->new_model(name => "down-$_", version => '1') } 1 .. 3;
for my $id (@down) {
    for my $score (1, 2) {
        $h->put("/models/$id", { content => "score=0.$score", headers => {
            'Content-Type' => 'application/x-www-form-urlencoded' } });
    }
}
my $list = join ',', map { "'$_'" } @down;
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM webhook_deliveries"
                               . " WHERE model IN ($list) AND attempts >= 2"
                               . " AND hook = 'main'") == 3 }, 30),
   'receiver down: each model\'s first event tried twice');
is($h->psql("SELECT count(*) FROM webhook_deliveries WHERE model IN ($list)"
            . " AND attempts > 0 AND hook = 'main'"), 3,
   '...and no model\'s later event tried while its first is pending');
$main->up;
my $down_ev = events_of(@down);
is(scalar @$down_ev, 9, '9 events of 3 models');
ok(wait_accepted($main, $down_ev, 40), 'receiver up: all 9 delivered');
in_order($main, 'receiver down then up');

# ---- one model's deliveries fail, the others go; back-off -----------------

$main->clear;
$main->mode('fail:mix-1');
my $mix = sql_events('mix', 2, 6);     # mix-1 and mix-2, 3 events each
ok(wait_accepted($main, [ grep { $_->[2] eq 'mix-2' } @$mix ]),
   'the other model\'s events go');
ok($h->wait_for(sub { grep({ ($_->{body}{model_id} // '') eq 'mix-1' }
                           @{ $main->deliveries }) >= 4 }, 30),
   'the failing model\'s delivery is tried again and again');
my @tries = grep { ($_->{body}{model_id} // '') eq 'mix-1' }
            @{ $main->deliveries };
is(scalar(keys %{{ map { $_->{delivery} => 1 } @tries }}), 1,
   '...always its first event, with the same X-Modelreg-Delivery');
is($tries[0]{body}{id}, $mix->[0][0], '...which is its first');
my @gap = map { $tries[$_ + 1]{t} - $tries[$_]{done} } 0 .. 2;
ok($gap[0] >= 0.95 && $gap[1] >= 1.95 && $gap[2] >= 3.95,
   sprintf('...backing off: %.1f, %.1f, %.1f s (at least 1, 2, 4)', @gap));
$main->mode('ok');
# (its next try, 8 s on, brought forward)
$h->psql("UPDATE webhook_deliveries SET next_at = now() WHERE model = 'mix-1'");
ok(wait_accepted($main, $mix, 30),
   'answered 200 at last: the rest of it follows');
in_order($main, 'one model failing');

# ---- the retry window -----------------------------------------------------

$main->mode('fail:win-1');
my $win = sql_events('win', 1, 2);
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM webhook_deliveries"
                               . " WHERE model = 'win-1' AND attempts > 0") }, 30),
   'a delivery that fails');
# its row 25 h old, and one of a hook no node announces any more
my $old = $h->psql("SELECT min(id) FROM audit_events");
$h->psql("UPDATE webhook_deliveries SET created = created - interval '25 h'"
         . " WHERE model = 'win-1' AND event_id = $win->[0][0]");
$h->psql("INSERT INTO webhook_deliveries (hook, event_id, model, seq,"
         . " created) VALUES ('gone', $old, 'old', 1, now() - interval '25 h')");
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM webhook_deliveries"
                               . " WHERE state = 'failed'") == 2 }, 30),
   'past the 24 h window: failed, and the removed hook\'s too');
$main->mode('ok');
ok(wait_accepted($main, [ $win->[1] ], 30),
   'the model\'s next event goes after the failed one');
ok(!grep({ $_->{status} == 200 && $_->{body}{id} == $win->[0][0] }
         @{ $main->deliveries }), 'the failed one was never accepted');
my $expired = 'modelreg: webhook "main": 1 deliveries failed, not'
            . ' delivered within 86400 s';
like($h->error_log, qr/\[warn\].*\Q$expired\E/, 'logged at warn');
like($h->error_log, qr/\[warn\].*modelreg: webhook "gone": 1 deliveries failed/,
     'the removed hook\'s logged too');

# ---- bad receivers: slow, huge answers, many at once ----------------------

$main->clear;
$main->mode('slow:3');
my $slow = sql_events('slow', 1, 1);
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM webhook_deliveries"
                               . " WHERE model = 'slow-1' AND last_error"
                               . " LIKE 'Timeout%'") == 1 }, 30),
   'a receiver slower than timeout=2s: the attempt times out');
$main->mode('ok');
ok(wait_accepted($main, $slow, 30), '...and is retried');

# (the timed out POST's receiver may still sleep: not counted below)
ok($h->wait_for(sub { $main->count(0) == 0 }, 30), 'nothing in flight');
$main->clear;
$main->mode('slow:1');
my $many = sql_events('many', 20, 20);
ok(wait_accepted($main, $many, 60), '20 events of 20 models at once');
is($main->peak, 8, '...never more than 8 POSTs at once');

$main->mode('huge:' . 64 * 1024 * 1024);
my @pids = $h->worker_pids;
my %base = map { $_ => Modelreg::Harness::reset_peak($_) } @pids;
my $huge = sql_events('huge', 2, 4);
ok(wait_accepted($main, $huge, 60), 'answers of 64 MiB: delivered');
my ($most) = sort { $b <=> $a } map { $_->{sent} }
             grep { $_->{sent} > 2 } @{ $main->deliveries };
cmp_ok($most, '<', 32 * 1024 * 1024,
       sprintf('...not read on after their first bytes (the receiver'
               . ' wrote at most %.1f MiB of 64)', $most / 1048576));
my ($grow) = sort { $b <=> $a }
             map { Modelreg::Harness::proc_kib($_, 'VmHWM') - $base{$_} } @pids;
cmp_ok($grow, '<', 16 * 1024,
       "...the workers' peak RSS grew by $grow KiB (< 16 MiB)");
$main->mode('ok');

# ---- nginx reloaded, PostgreSQL restarted, mid-delivery -------------------

$main->clear;
$main->mode('slow:0.5');
my $reload = sql_events('reload', 3, 12);
ok($h->wait_for(sub { $main->count(0) > 0 }, 30), 'deliveries in flight');
$h->reload_nginx;
ok(wait_accepted($main, $reload, 60), 'nginx reloaded mid-delivery: none lost');
in_order($main, 'reload');
note 'repeated after the reload: ' . repeats($main, $reload);

$main->clear;
$main->mode('slow:1.5');
my $restart = sql_events('restart', 3, 12);
ok($h->wait_for(sub { $main->count(0) > 0 }, 30), 'deliveries in flight');
$h->stop_pg;
# (down longer than a receiver takes, slow:1.5: the POSTs in flight are
# answered while it is down, so their outcomes cannot be recorded)
sleep 3;
$h->start_pg;
ok(wait_accepted($main, $restart, 60),
   'PostgreSQL restarted mid-delivery: none lost');
in_order($main, 'restart');
my ($lost1, $lost2) = ('modelreg: webhook "main": the outcome of ',
                       ' deliveries was not recorded (database unavailable):'
                       . ' they are sent again');
like($h->error_log, qr/\[warn\].*\Q$lost1\E\d+\Q$lost2\E/,
     'the POSTs whose outcome the database did not take: logged, sent again');
note 'repeated after the restart: ' . repeats($main, $restart);
$main->mode('ok');

# ---- /metrics -----------------------------------------------------------

my $mt = $h->metrics;
cmp_ok($mt->{'modelreg_webhook_deliveries_total{outcome="delivered"}'}, '>',
       0, 'metrics: delivered');
cmp_ok($mt->{'modelreg_webhook_deliveries_total{outcome="retried"}'}, '>', 0,
       'metrics: retried');
is($mt->{'modelreg_webhook_deliveries_total{outcome="failed"}'}, 2,
   'metrics: failed, the two past the window');
is($mt->{modelreg_webhook_backlog}, 0, 'metrics: the backlog, 0 now');

# ---- two nodes, one database ----------------------------------------------

my $b = Modelreg::Harness->new(pg_of => $h, no_nginx => 1, workers => 2);
$b->{opt}{http} = hooks();
$b->start_nginx;
$main->clear;
my @two = ((map { $h->new_model(name => "two-a$_", version => '1') } 1 .. 5),
           (map { $b->new_model(name => "two-b$_", version => '1') } 1 .. 5));
my $two_ev = events_of(@two);
ok(wait_accepted($main, $two_ev, 60), 'two nodes: 10 events delivered');
is(repeats($main, $two_ev), 0, '...each once (by one node)');
is($h->psql("SELECT count(DISTINCT holder) FROM webhook_hooks"), 1,
   '...one node holds the leases');
# the holder gone: its lease ends (set back here, not waited for)
my $holder = $h->psql("SELECT holder FROM webhook_hooks WHERE name = 'main'");
my ($gone, $other) = $holder =~ /:$h->{nginx_pid}$/ ? ($h, $b) : ($b, $h);
$gone->stop_nginx;
$h->psql("UPDATE webhook_hooks SET until = now() - interval '1 s'");
my @after = map { $other->new_model(name => "after-$_", version => '1') } 1 .. 3;
ok(wait_accepted($main, events_of(@after), 30),
   'the other node takes over the lease and delivers');
isnt($h->psql("SELECT holder FROM webhook_hooks WHERE name = 'main'"),
     $holder, '...holding it now');

is($other->metrics->{modelreg_webhook_backlog}, 0,
   'metrics: the backlog is 0 once all is delivered');

unlike($h->error_log . $b->error_log, qr/\[(alert|crit|emerg)\]/,
       'no alert in the logs');
$h->finish;
$b->finish;
done_testing();
