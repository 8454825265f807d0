# Proves: aliases (API.md "Aliases"): every route, status and message of
# PUT/GET/DELETE /aliases/{name}/{alias}, GET /aliases/{name} and
# /aliases/{name}/{alias}/files; PUT in JSON and urlencoded; names
# percent-encoded (a "/" as %2F, spaces, UTF-8); the audit events
# alias.set (old and new model_id) and alias.delete; the files exactly as
# /models/{id}/files (ETag, Range, 304, HEAD, model.download audited) plus
# X-Model-Id; deleting or renaming a model that an alias points at is 409
# naming the aliases, also when the alias set and the DELETE race (held
# at a row lock in both orders, and 20 unforced races); a rename racing an
# alias set; concurrent sets of one alias (6 first sets at once, 3 held
# at a lock on its row, 48 free) leave one audit chain, each event's old
# model_id the previous one's new; resolving goes through the read cache
# (hits counted); with 4 readers racing 30 moves of an alias A->B->C->A,
# no read that started after a move was answered returns an older model,
# on one node (2 workers) and on a second node (the leases of README
# "Across nodes: leases"; nothing waits for node 2 to show a move); and
# with node 2 cut off (its listener's backend stopped) a move still
# answers, after node 2's lease ended, and node 2 then reads the alias
# from the database, back to its cache once resumed.  The lease protocol
# under attack and accident: no token is acked before the first is taken;
# sync tokens forged by a role with LOGIN alone (NOTIFY needs no
# privilege) are not acked, and a cut-off node is still waited for; such
# a role cannot stall alias writes by holding advisory locks, nor take
# their tokens' numbers with a nextval(text) of its own in public; nor
# are old acks counted after the token sequence is set back; a reload of
# node 2 leaves one row per node (the old listener's is removed); a
# node's entry cached before its lease ended is not served after it
# regains one (the alias moved by SQL meanwhile, its NOTIFY trigger off);
# more sync tokens at once than a heartbeat takes give up the lease, and
# a fresh heartbeat acks them and earns it again;
# a node that renews its lease without acknowledging makes the writer
# answer 503 after 3 s, the change made; a name takes 1000 aliases, the
# 1001st is 422.  The wait holds no pool connection: with a late node, 4
# sets on a node whose pool has 2 all wait while a GET /models/{id} (cache
# off) answers 200, then each answers 503 past the cap; a reload meanwhile
# keeps the old worker until it answered.
# MODELREG_STORAGE=s3 (t/s3/44) runs it on the s3 backend, without the
# races, which do not touch the store.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Time::HiRes ();
use Encode ();
use Modelreg::Harness;

my $h = Modelreg::Harness->new(workers => 2);
my $json = JSON::PP->new->utf8->canonical;

sub ev { $_[0]->metrics->{"modelreg_cache_events_total{event=\"$_[1]\"}"} }
sub set_json {
    my ($n, $path, $id) = @_;
    return $n->put($path, { content => $json->encode({ model_id => $id }),
        headers => { 'Content-Type' => 'application/json' } });
}
sub set_form {
    my ($n, $path, $body) = @_;
    return $n->put($path, { content => $body, headers =>
        { 'Content-Type' => 'application/x-www-form-urlencoded' } });
}
sub detail { $_[0]{json} ? $_[0]{json}{detail} // '' : '' }
sub id_of { my ($n, $p) = @_; my $r = $n->get($p);
            $r->{status} == 200 ? $r->{json}{id} : $r->{status} }

ok($h->wait_for(sub { $h->error_log =~ /model cache is on line/ }),
   'the cache is on line');

# ---- before any sync token is taken, a fresh heartbeat acks none (the
# sequence's last_value is 1 before its first nextval: not a token)
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM modelreg_cache_nodes")
                      == 1 }, 10), 'the listener\'s heartbeat row');
is($h->psql("SELECT acked FROM modelreg_cache_nodes"), 0,
   '  it acks no token while none was taken');

my $zip = Modelreg::Harness::zip_of('model.xml', 'weights ' x 200);
my $a = $h->new_model(name => 'resnet50', version => '1', file => $zip);
my $b = $h->new_model(name => 'resnet50', version => '2');
my $c = $h->new_model(name => 'yolo', version => '1');

# ---- PUT: JSON and urlencoded
my $r = set_json($h, '/aliases/resnet50/production', $a);
is($r->{status}, 200, 'PUT (JSON) 200');
is_deeply([ sort keys %{ $r->{json} } ],
          [ qw(alias model_id name updated_date) ], 'its fields');
is_deeply([ @{ $r->{json} }{qw(name alias model_id)} ],
          [ 'resnet50', 'production', $a ], 'name, alias, model_id');
like($r->{json}{updated_date}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC\z/,
     'updated_date in the API format');
like($r->{content}, qr/^\{"name" : "resnet50", "alias" : "production", "model_id"/,
     'in the documented order');

$r = $h->get('/aliases/resnet50/production');
is($r->{status}, 200, 'GET the alias');
is($r->{content}, $h->get("/models/$a")->{content},
   'the same bytes as GET /models/{id}');
is($h->head('/aliases/resnet50/production')->{status}, 200, 'HEAD');

$r = set_form($h, '/aliases/resnet50/production', "model_id=$b");
is($r->{status}, 200, 'PUT (urlencoded) 200');
is(id_of($h, '/aliases/resnet50/production'), $b, 'it moved to B');
is(set_form($h, '/aliases/resnet50/staging', "x=1&model_id=$a")->{status},
   200, 'a second alias of the name (unknown keys ignored)');

# ---- the errors, each with its message
my @cases = (
    [ 'GET', '/aliases/resnet50/Production', undef, 400, 'Invalid alias.' ],
    [ 'GET', '/aliases/resnet50/-x', undef, 400, 'Invalid alias.' ],
    [ 'GET', '/aliases/resnet50/' . ('a' x 64), undef, 400,
      'Invalid alias.' ],
    [ 'PUT', '/aliases/resnet50/a%20b', "model_id=$a", 400,
      'Invalid alias.' ],
    [ 'DELETE', '/aliases/resnet50/a+b', undef, 400, 'Invalid alias.' ],
    [ 'GET', '/aliases/resnet50/x!/files', undef, 400, 'Invalid alias.' ],
    [ 'GET', '/aliases/resnet50/nope', undef, 404, 'Alias not found.' ],
    [ 'GET', '/aliases/nope/production', undef, 404, 'Alias not found.' ],
    [ 'GET', '/aliases/resnet50/nope/files', undef, 404,
      'Alias not found.' ],
    [ 'DELETE', '/aliases/resnet50/nope', undef, 404, 'Alias not found.' ],
    [ 'GET', '/aliases/%FF%FE/production', undef, 404, 'Alias not found.' ],
    [ 'PUT', '/aliases/resnet50/p', '', 422, 'Field required: model_id' ],
    [ 'PUT', '/aliases/resnet50/p', 'model_id=', 422,
      'Field required: model_id' ],
    [ 'PUT', '/aliases/resnet50/p', 'model_id=short', 400,
      'Invalid format for model ID.' ],
    [ 'PUT', '/aliases/resnet50/p', 'model_id=' . ('x' x 20), 404,
      'Model not found.' ],
    [ 'PUT', '/aliases/resnet50/p', "model_id=$c", 422,
      "Model $c is not named resnet50." ],
    [ 'PUT', '/aliases/%FF/p', "model_id=$c", 422,
      "Model $c is not named ?." ],
    [ 'POST', '/aliases/resnet50/p', '', 405, 'Method Not Allowed',
      'GET, PUT, DELETE' ],
    [ 'PUT', '/aliases/resnet50', '', 405, 'Method Not Allowed', 'GET' ],
    [ 'DELETE', '/aliases/resnet50/p/files', '', 405, 'Method Not Allowed',
      'GET, HEAD' ],
    [ 'GET', '/aliases', undef, 404, 'Not Found' ],
);
for (@cases) {
    my ($m, $p, $body, $status, $msg, $allow) = @$_;
    my $res = $h->request($m, $p, defined $body ? { content => $body,
        headers => { 'Content-Type' => 'application/x-www-form-urlencoded' } }
        : {});
    is("$res->{status} " . detail($res), "$status $msg", "$m $p: $status");
    is($res->{headers}{allow}, $allow, "  Allow: $allow") if $allow;
}
for ([ '{"model_id": 7}', 422, 'Field required: model_id' ],
     [ '{"model_id": null}', 422, 'Field required: model_id' ],
     [ '[1]', 400, 'Malformed JSON body: an object is expected.' ],
     [ '{"model_id": "', 400, 'Malformed JSON body: an object is expected.' ])
{
    my ($body, $status, $msg) = @$_;
    my $res = $h->put('/aliases/resnet50/p', { content => $body,
        headers => { 'Content-Type' => 'application/json' } });
    is("$res->{status} " . detail($res), "$status $msg", "JSON $body");
}
is($h->get('/aliases/resnet50/p')->{status}, 404, 'no failed PUT set it');

# ---- percent-encoded names: "/" as %2F, spaces, UTF-8
my $odd = "org/net 1 \x{e9}";
my $odd_bytes = Encode::encode('UTF-8', $odd);
my $o = $h->new_model(name => $odd_bytes, version => '1');
(my $enc = $odd_bytes) =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
# (the harness judges paths as nginx decodes them, where %2F is a "/":
# these go to HTTP::Tiny directly)
my $raw = sub { $h->http->request($_[0], $h->url($_[1]), $_[2] || {}) };
$r = $raw->('PUT', "/aliases/$enc/prod", { content => "model_id=$o",
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' } });
is($r->{status}, 200, 'PUT with a name holding %2F, a space and UTF-8');
is(eval { $json->decode($r->{content})->{name} }, $odd, 'the name decoded');
$r = $raw->('GET', "/aliases/$enc/prod");
is(eval { $json->decode($r->{content})->{id} }, $o, 'GET resolves it');
$r = $raw->('GET', "/aliases/$enc");
my $list = eval { $json->decode($r->{content}) } || [];
is_deeply([ map { "$_->{alias} $_->{model_id}" } @$list ],
          [ "prod $o" ], 'the name\'s list');
$r = $raw->('GET', "/aliases/$enc/prod/files");
is("$r->{status} " . ($r->{headers}{'x-model-id'} // ''), "200 $o",
   'its files');
is($raw->('GET', '/aliases/org/net%201%20%C3%A9/prod')->{status}, 404,
   'a decoded "/" is a segment: another route');
is($raw->('GET', '/aliases/a%00b/prod')->{status}, 400,
   'a %00 in the name: nginx\'s own 400, before the module');
my $utf = Encode::encode('UTF-8', "r\x{e9}seau");
my $u = $h->new_model(name => $utf, version => '1');
(my $uenc = $utf) =~ s/([^A-Za-z0-9])/sprintf '%%%02X', ord $1/ge;
is(set_form($h, "/aliases/$uenc/v1.0_rc-2", "model_id=$u")->{status}, 200,
   'a UTF-8 name, an alias of every allowed character');
is(id_of($h, "/aliases/$uenc/v1.0_rc-2"), $u, 'resolved');
is($raw->('DELETE', "/aliases/$enc/prod")->{status}, 204,
   'DELETE with %2F');

# ---- the list
$r = $h->get('/aliases/resnet50');
is($r->{status}, 200, 'GET /aliases/{name}');
is_deeply([ map { [ $_->{alias}, $_->{model_id} ] } @{ $r->{json} } ],
          [ [ 'production', $b ], [ 'staging', $a ] ], 'sorted by alias');
is_deeply([ sort keys %{ $r->{json}[0] } ],
          [ qw(alias model_id updated_date) ], 'its fields');
is($h->get('/aliases/nobody')->{content}, '[]', 'a name without aliases: []');

# ---- at most 1000 aliases a name (999 made by SQL)
my $many = $h->new_model(name => 'many', version => '1');
$h->psql("INSERT INTO aliases (name, alias, model_id) SELECT 'many',"
         . " 'a' || g, '$many' FROM generate_series(1, 999) g");
is(set_form($h, '/aliases/many/last', "model_id=$many")->{status}, 200,
   'the 1000th alias of a name: 200');
$r = set_form($h, '/aliases/many/over', "model_id=$many");
is("$r->{status} " . detail($r),
   '422 Too many aliases: many has 1000 already.', 'the 1001st: 422');
is(set_form($h, '/aliases/many/a7', "model_id=$many")->{status}, 200,
   '  moving one of them still works');
is($h->psql("SELECT count(*) FROM aliases WHERE name = 'many'"), 1000,
   '  1000 aliases');
$h->psql("DELETE FROM aliases WHERE name = 'many'");

# ---- deleting or renaming a model that an alias points at
set_form($h, '/aliases/resnet50/a.first', "model_id=$a");
set_form($h, '/aliases/resnet50/z-last', "model_id=$a");
$r = $h->delete("/models/$a");
is("$r->{status} " . detail($r),
   "409 Model $a is referenced by alias(es): a.first, staging, z-last.",
   'DELETE of a referenced model: 409, the aliases sorted');
is($h->get("/models/$a")->{status}, 200, 'the model stays');
$r = set_form($h, "/models/$a", 'name=renamed');
is("$r->{status} " . detail($r),
   "409 Model $a is referenced by alias(es): a.first, staging, z-last.",
   'renaming it: 409 too');
is(set_form($h, "/models/$a", 'name=resnet50&score=0.5')->{status}, 200,
   'its own name again is no rename');
is($h->psql("SELECT count(*) FROM audit_events WHERE model_id = '$a'"
            . " AND action IN ('model.delete', 'model.update')"
            . " AND details ? 'changed' AND details->'changed' ? 'name'"), 0,
   'no audit event of a refused change');
for (qw(a.first staging z-last)) {
    is($h->delete("/aliases/resnet50/$_")->{status}, 204, "DELETE alias $_");
}
is($h->get('/aliases/resnet50/staging')->{status}, 404, 'gone');

# ---- audit events
my $audit = $h->get("/audit?action=alias.set&model_id=$b&limit=10");
is($audit->{status}, 200, '/audit?action=alias.set');
my ($moved) = grep { $_->{details}{alias} eq 'production' }
              @{ $audit->{json} };
is_deeply($moved && $moved->{details},
          { name => 'resnet50', alias => 'production',
            model_id => { old => $a, new => $b } },
          'alias.set: old and new model_id');
is($moved && $moved->{status}, 200, 'its status');
$audit = $h->get("/audit?action=alias.delete&model_id=$a");
is_deeply([ sort map { $_->{details}{alias} } @{ $audit->{json} } ],
          [ qw(a.first staging z-last) ], 'alias.delete events');
is($audit->{json}[0]{status}, 204, 'with their status');
is($h->psql("SELECT details->'model_id'->>'old' IS NULL FROM audit_events"
            . " WHERE action = 'alias.set' AND details->>'alias' = 'staging'"
            . " ORDER BY id LIMIT 1"), 't', 'a first set: old is null');

# ---- the files, exactly as /models/{id}/files, plus X-Model-Id
set_json($h, '/aliases/resnet50/production', $a);
my $direct = $h->get("/models/$a/files");
my $via = $h->get('/aliases/resnet50/production/files');
is($via->{status}, 200, 'GET .../files 200');
is($via->{content}, $zip, 'the stored bytes');
is($via->{headers}{'x-model-id'}, $a, 'X-Model-Id');
for my $hd (qw(content-type etag content-disposition accept-ranges
               content-length)) {
    is($via->{headers}{$hd}, $direct->{headers}{$hd}, "  $hd as direct");
}
ok(!defined $direct->{headers}{'x-model-id'}, '(no X-Model-Id on the id route)');
$r = $h->get('/aliases/resnet50/production/files',
             { headers => { Range => 'bytes=2-9' } });
is("$r->{status} $r->{content}", '206 ' . substr($zip, 2, 8), 'Range: 206');
is($r->{headers}{'x-model-id'}, $a, '  with X-Model-Id');
$r = $h->get('/aliases/resnet50/production/files',
             { headers => { 'If-None-Match' => $direct->{headers}{etag} } });
is("$r->{status} " . ($r->{content} // ''), '304 ', 'If-None-Match: 304');
$r = $h->head('/aliases/resnet50/production/files');
is("$r->{status} $r->{headers}{'content-length'} " . ($r->{content} // ''),
   '200 ' . length($zip) . ' ', 'HEAD');
ok($h->wait_for(sub {
    my $ev = $h->get("/audit?action=model.download&model_id=$a")->{json};
    @$ev == 3 }, 10), 'model.download audited for the 200s and the 206 only');
my $dl = $h->get("/audit?action=model.download&model_id=$a")->{json};
is_deeply([ sort map { $_->{details}{bytes} } @$dl ],
          [ sort(length($zip), length($zip), 8) ], 'with the bytes sent');
set_json($h, '/aliases/resnet50/production', $b);
is($h->get('/aliases/resnet50/production/files')->{headers}{'x-model-id'},
   $b, 'moved: the files follow at once');

# ---- a node that renews its lease without acknowledging (a row made by
# hand): the writer waits its 3 s, then answers 503, the change made
$h->psql("INSERT INTO modelreg_cache_nodes VALUES ('by-hand', 1, 1,"
         . " now() + interval '1 hour', 0)");
$r = set_json($h, '/aliases/resnet50/production', $a);
is("$r->{status} " . detail($r), '503 Metadata database unavailable.',
   'a node late past the cap: 503');
like($h->error_log, qr/1 node\(s\) neither acknowledged the change of "production\@resnet50"/,
     '  and a warning');
$h->psql("DELETE FROM modelreg_cache_nodes WHERE zone = 'by-hand'");
is(id_of($h, '/aliases/resnet50/production'), $a, '  the change was made');
set_json($h, '/aliases/resnet50/production', $b);

# ---- through the read cache
id_of($h, '/aliases/resnet50/production') for 1 .. 2;
my $hit0 = ev($h, 'hit');
my $miss0 = ev($h, 'miss');
is(id_of($h, '/aliases/resnet50/production'), $b, 'a read');
is(ev($h, 'hit') - $hit0, 2, 'two hits: the alias, then the model');
is(ev($h, 'miss') - $miss0, 0, 'no miss');
$h->psql("UPDATE aliases SET model_id = '$a' WHERE alias = 'production'");
ok($h->wait_for(sub { id_of($h, '/aliases/resnet50/production') eq $a }, 5),
   'an UPDATE in psql reaches the cache (NOTIFY)');
$h->psql("DELETE FROM aliases WHERE alias = 'production'");
ok($h->wait_for(sub { id_of($h, '/aliases/resnet50/production') eq '404' },
                5), 'a DELETE in psql too');

# ---- DELETE of the model racing an alias set: the database decides
sub lock_waiters {
    $h->psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type"
             . " = 'Lock'") }
# a psql session that ran $sql (BEGIN; ... a lock) and is now holding it
sub holding {
    my ($sql) = @_;
    my $s = $h->psql_session;
    $s->run($sql);
    $h->wait_for(sub { $h->psql("SELECT count(*) FROM pg_stat_activity"
                 . " WHERE state = 'idle in transaction'") > 0 }, 10)
        or diag 'the session took no lock';
    return $s;
}
sub held_race {
    my ($first) = @_;
    my $m = $h->new_model(name => 'race', version => "held-$first");
    my $s = holding("BEGIN; SELECT 1 FROM models WHERE id = '$m' FOR UPDATE;");
    my @order = $first eq 'set' ? ('set', 'delete') : ('delete', 'set');
    my %sock;
    for my $what (@order) {
        my $n = lock_waiters();
        $sock{$what} = $what eq 'set'
            ? $h->send_raw('PUT', '/aliases/race/live', "model_id=$m",
                { 'Content-Type' => 'application/x-www-form-urlencoded' })
            : $h->send_raw('DELETE', "/models/$m");
        $h->wait_for(sub { lock_waiters() > $n }, 10)
            or diag "$what did not wait for the lock";
    }
    $s->run('COMMIT;');
    $s->end;
    my %res = map { $_ => $h->read_response($sock{$_}) } keys %sock;
    return ($m, $res{set}, $res{delete});
}
my ($m, $set, $del) = held_race('set');
is("$set->{status} / $del->{status} " . ($del->{content} =~ s/.*"detail":"(.*)"}/$1/r),
   "200 / 409 Model $m is referenced by alias(es): live.",
   'the set first: the DELETE that waited sees the alias (409)');
is($h->get("/models/$m")->{status}, 200, '  the model stays');
is($h->delete('/aliases/race/live')->{status}, 204, '  (alias removed)');
($m, $set, $del) = held_race('delete');
is("$set->{status} / $del->{status}", '404 / 204',
   'the DELETE first: the set that waited finds no model (404)');
is($h->get('/aliases/race/live')->{status}, 404, '  and no alias');

my %outcome;
for my $i (1 .. 20) {
    my $m = $h->new_model(name => 'race', version => "free-$i");
    my @s = ($h->send_raw('PUT', '/aliases/race/free', "model_id=$m",
                 { 'Content-Type' => 'application/x-www-form-urlencoded' }),
             $h->send_raw('DELETE', "/models/$m"));
    my ($s, $d) = map { $h->read_response($_)->{status} } @s;
    my $exists = $h->psql("SELECT count(*) FROM models WHERE id = '$m'");
    my $points = $h->psql("SELECT count(*) FROM aliases WHERE model_id = '$m'");
    $outcome{"$s/$d model:$exists alias:$points"}++;
    $h->delete('/aliases/race/free') if $points;
}
my @bad = grep { !/^(200\/409 model:1 alias:1|404\/204 model:0 alias:0)$/ }
          keys %outcome;
ok(!@bad, '20 free races: set 200 + DELETE 409, or DELETE 204 + set 404')
    or diag explain \%outcome;
note 'free races: ' . join ', ', map { "$_ x$outcome{$_}" } sort keys %outcome;

# ---- a rename racing an alias set
my $rn = $h->new_model(name => 'before', version => '1');
my $s = holding("BEGIN; UPDATE models SET name = 'after' WHERE id = '$rn';");
my $n0 = lock_waiters();
my $sock = $h->send_raw('PUT', '/aliases/before/x', "model_id=$rn",
                        { 'Content-Type' => 'application/x-www-form-urlencoded' });
$h->wait_for(sub { lock_waiters() > $n0 }, 10);
$s->run('COMMIT;');
$s->end;
$r = $h->read_response($sock);
is("$r->{status} " . ($r->{content} =~ s/.*"detail":"(.*)"}/$1/r),
   "422 Model $rn is not named before.",
   'a set that waited for a rename sees the new name: 422');

# ---- concurrent sets of one alias: the audit is one chain, old -> new
# (each set names the model it replaced, also when it waited for another)
sub chain_of {
    my ($alias) = @_;
    return [ split /\n/, $h->psql(
        "SELECT coalesce(details->'model_id'->>'old', '-') || ' '"
        . " || (details->'model_id'->>'new') FROM audit_events"
        . " WHERE action = 'alias.set' AND details->>'name' = 'chain'"
        . " AND details->>'alias' = '$alias' ORDER BY id") ];
}
sub chain_breaks {
    my ($events) = @_;
    my ($prev, @breaks) = ('-');
    for (@$events) {
        my ($old, $new) = split / /;
        push @breaks, "old $old after new $prev" if $old ne $prev;
        $prev = $new;
    }
    return @breaks;
}
sub put_all {
    my ($alias, @ids) = @_;
    my @socks = map { $h->send_raw('PUT', "/aliases/chain/$alias",
        "model_id=$_", { 'Content-Type' =>
                         'application/x-www-form-urlencoded' }) } @ids;
    return map { $h->read_response($_)->{status} } @socks;
}
my @cm = map { $h->new_model(name => 'chain', version => $_) } 1 .. 4;
# 6 first sets at once: one inserts, the others replace it in turn
my @st = put_all('fresh', @cm, @cm[0, 1]);
is("@st", join(' ', (200) x 6), '6 concurrent first sets: all 200');
my $fresh = chain_of('fresh');
is(scalar @$fresh, 6, '  six alias.set events');
is_deeply([ chain_breaks($fresh) ], [], '  one chain: the first old is'
          . ' null, each old the previous new') or diag explain $fresh;
# 3 sets queued behind a lock on the alias' row, then 8 rounds of 6 free
is(set_form($h, '/aliases/chain/live', "model_id=$cm[0]")->{status}, 200,
   'an alias to race on');
$s = holding("BEGIN; SELECT 1 FROM aliases WHERE name = 'chain' AND alias"
             . " = 'live' FOR UPDATE;");
my @held;
for my $id (@cm[1 .. 3]) {
    my $n = lock_waiters();
    push @held, $h->send_raw('PUT', '/aliases/chain/live', "model_id=$id",
        { 'Content-Type' => 'application/x-www-form-urlencoded' });
    $h->wait_for(sub { lock_waiters() > $n }, 10)
        or diag 'a set did not wait for the lock';
}
$s->run('COMMIT;');
$s->end;
is(join(' ', map { $h->read_response($_)->{status} } @held), '200 200 200',
   '3 sets that waited for the alias\' row: 200');
my @free;
push @free, put_all('live', map { $cm[rand @cm] } 1 .. 6) for 1 .. 8;
is(scalar(grep { $_ != 200 } @free), 0, '48 free concurrent sets: 200');
my $live = chain_of('live');
is(scalar @$live, 52, '  52 alias.set events');
is_deeply([ chain_breaks($live) ], [], '  one chain, old -> new, in the'
          . ' order of the events') or diag explain $live;
is(($live->[-1] // '') =~ s/.* //r,
   $h->psql("SELECT model_id FROM aliases WHERE name = 'chain'"
            . " AND alias = 'live'"), '  ending at the alias\' model');

if ($h->storage ne 'fs') {
    $h->finish;
    done_testing();
    exit;
}

# ---- a late node delays only its writers: they poll the database from a
# timer and hold no connection between checks.  A node with a pool of 2
# connections and no cache (every read is a query), a node late for good
# (a row by hand), 4 alias sets waiting for it: a GET of a model answers
# while none of them has; then each answers 503 past the cap
my $small = Modelreg::Harness->new(pg_of => $h, db => 'pool=2 queue=64'
                                   . ' timeout=5s',
                                   http => 'modelreg_cache off;');
my $pm = $small->new_model(name => 'pooled', version => '1');
$h->psql("INSERT INTO modelreg_cache_nodes VALUES ('by-hand', 1, 1,"
         . " now() + interval '1 hour', 0)");
my @waiting = map { $small->send_raw('PUT', "/aliases/pooled/a$_",
    "model_id=$pm", { 'Content-Type' =>
                      'application/x-www-form-urlencoded' }) } 1 .. 4;
ok($small->wait_for(sub { $small->psql("SELECT count(*) FROM aliases"
                                       . " WHERE name = 'pooled'") == 4 }, 10),
   '4 alias sets on a pool of 2 connections committed');
is(scalar(grep { $small->has_response($_) } @waiting), 0,
   '  none answered: all wait for the late node');
my $g0 = Time::HiRes::time();
$r = $small->get("/models/$pm");
my $got = Time::HiRes::time() - $g0;
is("$r->{status} " . ($r->{json} ? $r->{json}{id} : ''), "200 $pm",
   'meanwhile GET /models/{id} (a query) answers 200');
is(scalar(grep { $small->has_response($_) } @waiting), 0,
   '  while still none of the sets has answered');
is(join(' ', map { $small->read_response($_)->{status} } @waiting),
   '503 503 503 503', 'the sets answer 503 past the cap');
note sprintf 'with 4 sets waiting on a pool of 2, GET /models/{id} took'
             . ' %.0f ms; the sets answered %.0f ms after it', $got * 1000,
             (Time::HiRes::time() - $g0 - $got) * 1000;
my $warned = () = $small->error_log
    =~ /1 node\(s\) neither acknowledged the change of "a\d\@pooled"/g;
is($warned, 4, '  each with its warning');
# a graceful shutdown (a reload) keeps the old worker until it answered
# the set it holds, past the cap: its timer is not one nginx cancels
my @old = $small->worker_pids;
my $last = $small->send_raw('PUT', '/aliases/pooled/a5', "model_id=$pm",
    { 'Content-Type' => 'application/x-www-form-urlencoded' });
ok($small->wait_for(sub { $small->psql("SELECT count(*) FROM aliases"
                                       . " WHERE name = 'pooled'") == 5 }, 10),
   'a set waiting for the late node');
$small->reload_nginx;
is($small->read_response($last)->{status}, 503,
   '  a reload meanwhile: its old worker answers it (503 past the cap)');
ok($small->wait_for(sub { !grep { kill 0, $_ } @old }, 20),
   '  then exits');
$h->psql("DELETE FROM modelreg_cache_nodes WHERE zone = 'by-hand'");
is($small->psql("SELECT count(*) FROM aliases WHERE name = 'pooled'"
                . " AND model_id = '$pm'"), 5, '  the changes were made');
$small->finish;
$small->stop_all;

# ---- readers racing moves: each returns the model of the last move
# answered before it started, or of a later one sent before it ended
sub race {
    my ($writer, $reader, $label) = @_;
    my @m = map { $writer->new_model(name => 'hot', version => "$label-$_") }
            1 .. 3;
    set_json($writer, '/aliases/hot/live', $m[2]);
    $reader->wait_for(sub { id_of($reader, '/aliases/hot/live') eq $m[2] }, 10);
    my $stop = $h->dir . "/stop-$label";
    my @pids;
    for my $k (1 .. 4) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $http = HTTP::Tiny->new(keep_alive => ($k % 2), timeout => 10);
            open my $out, '>', $h->dir . "/reads-$label-$k" or POSIX::_exit(1);
            until (-e $stop) {
                my $t = Time::HiRes::time();
                # (two fs nodes do not share their objects: files on one)
                my $files = $k > 2 && $reader == $writer && rand() < 0.3;
                my $res = $files
                    ? $http->head($reader->url('/aliases/hot/live/files'))
                    : $http->get($reader->url('/aliases/hot/live'));
                my $id = $res->{status} != 200 ? "status-$res->{status}"
                       : $files ? $res->{headers}{'x-model-id'}
                       : ($res->{content} =~ /"id" : "([^"]+)"/)[0];
                printf $out "%.6f %.6f %s\n", $t, Time::HiRes::time(), $id;
            }
            close $out;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    my @moves;    # [ sent, answered, model ]
    for my $i (0 .. 29) {
        my $to = $m[$i % 3];
        my $sent = Time::HiRes::time();
        my $st = set_json($writer, '/aliases/hot/live', $to)->{status};
        die "move: $st" unless $st == 200;
        push @moves, [ $sent, Time::HiRes::time(), $to ];
        Time::HiRes::sleep(0.01 + rand 0.02);
    }
    open my $fh, '>', $stop or die $!;
    close $fh;
    waitpid $_, 0 for @pids;
    my ($reads, @stale) = (0);
    for my $k (1 .. 4) {
        open my $in, '<', $h->dir . "/reads-$label-$k" or die $!;
        while (<$in>) {
            my ($t, $end, $id) = split;
            $reads++;
            # the last move answered before this read started, or any
            # later one sent before it ended
            my ($i) = grep { $moves[$_][1] < $t } reverse 0 .. $#moves;
            next unless defined $i;
            my @ok = map { $_->[2] } grep { $_->[0] < $end }
                     @moves[$i + 1 .. $#moves];
            push @ok, $moves[$i][2];
            push @stale, "reader $k at $t: $id, move $i was to $ok[0]"
                unless grep { $_ eq $id } @ok;
        }
        close $in;
    }
    ok($reads > 100, "$label: the readers made $reads reads");
    is_deeply(\@stale, [], "$label: none resolved to a model older than the"
              . ' last move answered before it started')
        or diag explain [ @stale[0 .. 4] ];
    # ($a and $b are models here)
    my @took = sort { $::a <=> $::b }
               map { ($_->[1] - $_->[0]) * 1000 } @moves;
    note sprintf '%s: a move took %.1f ms (median), %.1f ms at most,'
                 . ' waiting for every node', $label, $took[@took / 2],
                 $took[-1];
}
race($h, $h, 'one node');

sub listeners {
    split /\n/, $h->psql("SELECT pid FROM pg_stat_activity WHERE"
                         . " application_name = 'modelreg-listen'") }
my %listeners0 = map { $_ => 1 } listeners();
my $n2 = Modelreg::Harness->new(pg_of => $h, workers => 2);
ok($n2->wait_for(sub { $n2->error_log =~ /model cache is on line/ }),
   'a second node, its cache on line');
race($h, $n2, 'two nodes');

# ---- a reload of node 2: its new listener's heartbeat removes the old
# one's row (the node is the same: its cache zone), so writers do not
# wait for a listener that is gone
my $online = () = $n2->error_log =~ /model cache is on line/g;
$n2->reload_nginx;
ok($n2->wait_for(sub { my $c = () = $n2->error_log =~ /model cache is on line/g;
                       $c > $online }, 20), 'node 2 reloaded, on line again');
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM modelreg_cache_nodes")
                      == 2 }, 10),
   '  one row per node: the old listener\'s is gone')
    or diag $h->psql("SELECT * FROM modelreg_cache_nodes");
is($h->psql("SELECT count(DISTINCT zone) FROM modelreg_cache_nodes"), 2,
   '  (two zones)');
my @after = map { my $s0 = Time::HiRes::time();
                  set_json($h, '/aliases/hot/live', $h->new_model(name => 'hot',
                           version => "reload-$_"))->{status} == 200
                      or diag 'a move after the reload failed';
                  sprintf '%.0f', (Time::HiRes::time() - $s0) * 1000 } 1 .. 3;
note "alias moves right after node 2's reload took (ms): @after";

# ---- forged sync tokens: any role may NOTIFY, none of these counts
$h->psql_admin("CREATE ROLE nobody LOGIN PASSWORD 'x'");
for my $forged ('!1000000000', '!1000000000:' . ('ab' x 16),
                '!1000000000:' . ('AB' x 16) . 'x') {
    my ($rc, $out) = Modelreg::Harness::run_cmd('psql', '-X', '-q', '-At',
        "'host=127.0.0.1 port=" . $h->pg_port
        . " dbname=modelreg user=nobody password=x'",
        '-c', "\"NOTIFY modelreg_models, '$forged'\"");
    is($rc, 0, "a role with LOGIN alone may NOTIFY '$forged'") or diag $out;
}
set_json($h, '/aliases/hot/live', $h->new_model(name => 'hot',
                                                version => 'forged'));
is($h->psql("SELECT max(acked) < 1000000000 FROM modelreg_cache_nodes"), 't',
   '  no listener acks the forged token (a move later: both read it)');
is($h->psql("SELECT count(*) FROM modelreg_cache_nodes"), 2,
   '  (both listeners beat)');

# ---- nor can it stall alias writes through the locks they take (an
# advisory lock is any role's: they lock rows of the registry's own), or
# take a sync token's number with a nextval(text) of its own in a schema
# it may write (public before PostgreSQL 15)
my $nobody = "'host=127.0.0.1 port=" . $h->pg_port
             . " dbname=modelreg user=nobody password=x'";
Modelreg::Harness::run_cmd('psql', '-X', '-q', '-h', '127.0.0.1', '-p',
    $h->pg_port, '-U', 'postgres', 'modelreg', '-c',
    '"GRANT CREATE ON SCHEMA public TO nobody"');
my ($nrc, $nout) = Modelreg::Harness::run_cmd('psql', '-X', '-q', '-At',
    $nobody, '-c', "\"CREATE FUNCTION public.nextval(text) RETURNS bigint"
    . " LANGUAGE sql AS 'SELECT 7777777::bigint'\"");
is($nrc, 0, 'a role with LOGIN alone makes public.nextval(text)')
    or diag $nout;
($nrc, $nout) = Modelreg::Harness::run_cmd('psql', '-X', '-q', '-At',
    $nobody, '-c', '"SELECT 1 FROM modelreg_locks FOR UPDATE"');
like($nout, qr/permission denied/, '  but may not lock modelreg_locks');
open(my $adv, '|-', "psql -X -q $nobody >/dev/null") or die;
$adv->autoflush(1);
print $adv "SELECT pg_advisory_lock(hashtext('modelreg_aliases'),"
           . " hashtext('hot')), pg_advisory_lock(hashtext("
           . "'modelreg_cache_sync_seq'));\n";
ok($h->wait_for(sub { $h->psql_admin("SELECT count(*) FROM pg_locks WHERE"
                                     . " locktype = 'advisory'") == 2 }, 10),
   '  and holds the advisory keys alias writes once took');
$h->psql("SELECT setval('modelreg_cache_sync_seq', 1)");
is(set_json($h, '/aliases/hot/brand-new', $h->new_model(name => 'hot',
               version => 'adv'))->{status}, 200,
   'a new alias (its name counted) and a token taken past a sequence set'
   . ' back: 200 all the same');
is($h->psql("SELECT count(*) FROM modelreg_cache_sync_tokens"
            . " WHERE token = 7777777"), 0,
   "  its token is the registry's sequence's, not public.nextval(text)'s");
close $adv;
Modelreg::Harness::run_cmd('psql', '-X', '-q', '-h', '127.0.0.1', '-p',
    $h->pg_port, '-U', 'postgres', 'modelreg', '-c',
    '"DROP FUNCTION public.nextval(text)"');

# ---- a node cut off: its listener's backend stopped (silent, as on a
# lost network).  A move waits for its lease to end, then answers; the
# node reads the alias from the database from then on, not from its cache
my @m = map { $h->new_model(name => 'cut', version => $_) } 1 .. 2;
set_json($h, '/aliases/cut/live', $m[0]);
$n2->wait_for(sub { id_of($n2, '/aliases/cut/live') eq $m[0] }, 10);
my $hits = ev($n2, 'hit');
id_of($n2, '/aliases/cut/live') for 1 .. 3;
ok(ev($n2, 'hit') - $hits >= 3, 'node 2 serves the alias from its cache');
my ($lp) = grep { !$listeners0{$_} } listeners();
ok($lp, "node 2's listener backend found");
kill 'STOP', $lp;
# (and a client that leaves while its own set waits for node 2 too)
my $gone = $h->unchecked($h->send_raw('PUT', '/aliases/cut/other',
    "model_id=$m[0]", { 'Content-Type' =>
                        'application/x-www-form-urlencoded' }));
close $gone;
my $t0 = Time::HiRes::time();
is(set_json($h, '/aliases/cut/live', $m[1])->{status}, 200,
   'a move while node 2 is cut off: 200');
my $took = Time::HiRes::time() - $t0;
ok($h->wait_for(sub { $h->psql("SELECT model_id FROM aliases WHERE name ="
                               . " 'cut' AND alias = 'other'") eq $m[0] }, 10),
   'the set whose client left is made');
unlike($h->error_log, qr/exited on signal|\[alert\]/,
       '  and ended cleanly (no crash, no alert)');
is(id_of($n2, '/aliases/cut/live'), $m[1],
   'node 2 resolves the new model at once (its lease ended first)');
$hits = ev($n2, 'hit');
is(id_of($n2, '/aliases/cut/live'), $m[1], '  and again');
is(ev($n2, 'hit') - $hits, 0, '  (from the database: no hit)');
kill 'CONT', $lp;
ok($n2->wait_for(sub { my $h0 = ev($n2, 'hit');
                       id_of($n2, '/aliases/cut/live');
                       ev($n2, 'hit') - $h0 == 2 }, 20),
   'node 2 resumed: a new lease, the alias from its cache again');
is(set_json($h, '/aliases/cut/live', $m[0])->{status}, 200, 'a move back');
is(id_of($n2, '/aliases/cut/live'), $m[0], 'node 2 follows at once');
note sprintf 'the move with node 2 cut off took %.0f ms (its lease: 2 s,'
             . ' less what had run)', $took * 1000;

# ---- the token sequence set back (setval, a restore): the acks of old
# tokens do not count for new ones; cut off again, a move still waits
is($h->psql("SELECT setval('modelreg_cache_sync_seq', 1)"), 1,
   'the sync sequence set back to 1');
set_json($h, '/aliases/cut/live', $m[1]);
ok($n2->wait_for(sub { my $h0 = ev($n2, 'hit');
                       id_of($n2, '/aliases/cut/live');
                       ev($n2, 'hit') - $h0 == 2 }, 20),
   'node 2 serves the alias from its cache');
kill 'STOP', $lp;
is(set_json($h, '/aliases/cut/live', $m[0])->{status}, 200,
   'a move while node 2 is cut off: 200');
is(id_of($n2, '/aliases/cut/live'), $m[0],
   '  node 2 does not serve the old model (its lease ended first)');
ok($h->psql("SELECT last_value FROM modelreg_cache_sync_seq") > 1,
   '  the token was taken above every ack');
kill 'CONT', $lp;

# ---- a lease regained starts a generation: node 2's entry, cached
# before its lease ended, is not served after; the alias moved meanwhile
# by SQL with its NOTIFY trigger off (nothing told node 2)
ok($n2->wait_for(sub { my $h0 = ev($n2, 'hit');
                       id_of($n2, '/aliases/cut/live');
                       ev($n2, 'hit') - $h0 == 2 }, 20),
   'node 2 resumed, the alias in its cache');
kill 'STOP', $lp;
ok($n2->wait_for(sub { my $h0 = ev($n2, 'hit');
                       id_of($n2, '/aliases/cut/live');
                       ev($n2, 'hit') - $h0 == 0 }, 20),
   '  cut off: its lease ended (the alias read from the database)');
# (one transaction; the table's owner may turn its triggers off)
$h->psql("ALTER TABLE aliases DISABLE TRIGGER modelreg_aliases_notify;"
         . " UPDATE aliases SET model_id = '$m[1]' WHERE name = 'cut'"
         . " AND alias = 'live';"
         . " ALTER TABLE aliases ENABLE TRIGGER modelreg_aliases_notify");
kill 'CONT', $lp;
ok($n2->wait_for(sub { my $h0 = ev($n2, 'hit');
                       id_of($n2, '/aliases/cut/other');
                       ev($n2, 'hit') - $h0 == 2 }, 20),
   '  resumed: a new lease (another alias from the cache again)');
is(id_of($n2, '/aliases/cut/live'), $m[1],
   '  the entry of the old lease is not served: the moved model');

# ---- more sync tokens than a heartbeat takes (40 in one commit): each
# node gives up its lease, and a fresh heartbeat, which acks every token
# taken, earns it again
my $log0 = length $n2->error_log;
$h->psql("SELECT count(modelreg_cache_sync_request())"
         . " FROM generate_series(1, 40)");
my $top = $h->psql("SELECT max(token) FROM modelreg_cache_sync_tokens");
ok($n2->wait_for(sub { substr($n2->error_log, $log0)
                       =~ /more sync tokens than a heartbeat takes/ }, 10),
   '40 tokens at once: node 2 gives up its lease');
ok($h->wait_for(sub { $h->psql("SELECT min(acked) FROM modelreg_cache_nodes")
                      >= $top }, 10),
   '  a fresh heartbeat of each node acks them all');
ok($n2->wait_for(sub { my $h0 = ev($n2, 'hit');
                       id_of($n2, '/aliases/cut/other');
                       ev($n2, 'hit') - $h0 == 1 }, 20),
   '  node 2 holds a lease again (the alias from its cache)');
$n2->finish;
$n2->stop_all;

$h->finish;
done_testing();
