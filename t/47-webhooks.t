# Proves the webhooks (README "Webhooks"), against receivers in this test
# (t/lib/Modelreg/HookReceiver.pm) that check every signature with the
# hook's key: bad modelreg_webhook directives fail nginx -t naming what is
# wrong; each matching audit event is POSTed once with its headers and a
# valid HMAC-SHA256, the action filter holds, and an event is queued in
# the statement that writes it (a rolled back change queues nothing);
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
is(scalar(grep { ($_->{type} // '') eq 'application/json' } @$got),
   scalar @$got, 'Content-Type: application/json');
is(scalar(grep { $_->{request} eq 'POST /hook HTTP/1.1' } @$got),
   scalar @$got, 'POSTed to the URL');
is(scalar(grep { $_->{delivery} =~ /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/ } @$got),
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

done_testing();
