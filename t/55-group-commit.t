# Proves: registrations that are ready while one of their worker's
# batches is in flight commit together (register_batch.c), and that each
# still gets its own answer.  Held by a lock on geti_tombstones (which
# only the registration's INSERT touches), twelve registrations go in
# fewer transactions than twelve, none bigger than "batch=4", and so do
# their intents (held by a lock on storage_gc); every row has its audit
# event and no clean-up entry.  Values full of what a
# text[] literal escapes land, each in its own model; rows past 4 MiB of
# parameters go in batches of their own.  In one batch: a duplicate of
# a model in the same batch and one of a model already there are each
# answered 409 naming the model, their objects gone, the others 201.  A
# batch that the database refuses as a statement (a trigger raises for
# one row) is sent again row by row: the refused one 500 and its object
# gone, the others 201; an intent batch refused so, the refused one 500
# with no object.  The database killed while a batch is in flight
# and others wait: every member 503, no row, and the clean-up queue then
# removes every object; killed while an intent batch is, every member
# 503 with nothing stored, no entry left, and no key named as an orphan
# when the worker exits.  A row batch the pool declines after its
# object was stored (gdb): 503, the object removed, and, the clean-up
# queue's writes declined too until a reload ends the worker, no key
# named as an orphan.  An allocation that fails (gdb): a batch not
# built, each member 503 with its object gone (an intent batch: 503,
# nothing stored or written; one that committed but whose answer is
# lost: 503, nothing stored, its entry taken out); a committed row that
# cannot be told, 503 as an unknown outcome, its object kept.  Requests
# ended (a reload's worker_shutdown_timeout) while their rows wait or ride
# a batch: the rows in flight commit with their objects, the waiting
# one's object goes, the old worker exits; the same while their intents
# wait, ride a batch or, their batch refused as a statement, are each
# sent again on its own: nothing stored.  (t/01-config.t: "batch=" out
# of range fails nginx -t.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Encode ();
use JSON::PP;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(gc => '1s',
                               db => 'pool=4 queue=64 timeout=10s batch=4');

# holds every registration's INSERT (its "t" step) until ->end; or, of
# "storage_gc", every intent (and the clean-up timer's queries); or, of
# "advisory", whatever waits for advisory lock 55
sub hold {
    my ($table) = @_;
    $table //= 'geti_tombstones';
    my $lock = $h->psql_session;
    my $granted = "SELECT count(*) FROM pg_locks l";
    if ($table eq 'advisory') {
        $lock->run("BEGIN; SELECT pg_advisory_xact_lock(55);");
        $granted .= " WHERE l.locktype = 'advisory' AND l.objid = 55"
                    . " AND l.granted";
    } else {
        $lock->run("BEGIN; LOCK TABLE $table IN ACCESS EXCLUSIVE MODE;");
        $granted .= " JOIN pg_class c ON c.oid = l.relation"
                    . " WHERE c.relname = '$table' AND l.granted"
                    . " AND l.mode = 'AccessExclusiveLock'";
    }
    $h->wait_for(sub { $h->psql($granted) == 1 })
        or BAIL_OUT('the lock was not granted');
    return $lock;
}

sub waiting_on_lock {
    my ($what) = @_;
    return $h->psql("SELECT count(*) FROM pg_stat_activity"
                    . " WHERE application_name = 'modelreg'"
                    . " AND wait_event_type = 'Lock'"
                    . ($what ? " AND query LIKE '%$what%'" : ''));
}

# (an intent batch's statement, not the clean-up timer's on the same table)
my $INTENTS = 'AS k ON CONFLICT';

# POSTs (each a hash of fields, and its file's name as "_file"), sent at
# once: their sockets
sub send_models {
    my (@models) = @_;
    my @socks;
    for my $model (@models) {
        my %m = %$model;
        my $file = delete($m{_file}) // 'm.zip';
        my ($body, $ct) = Modelreg::Harness::multipart(
            { name => 'file', filename => $file, type => 'application/zip',
              value => Modelreg::Harness::zip_of('m', "$m{name}" x 100) },
            map { { name => $_, value => $m{$_} } } sort keys %m);
        push @socks, $h->send_raw('POST', '/models', $body,
                                  { 'Content-Type' => $ct });
    }
    return @socks;
}

# POSTs (each a hash of fields) at once: their intents held, then let go,
# then each stored before the lock on the rows goes; the intents written,
# in @intent_xacts (how many each transaction wrote)
my @intent_xacts;
sub register_held {
    my (@models) = @_;
    my $before = scalar $h->objects;
    my $lock = hold();
    my $intents = hold('storage_gc');
    my @socks = send_models(@models);
    ok($h->wait_for(sub { waiting_on_lock($INTENTS) >= 1 }),
       'an intent batch waits for the lock');
    # (the others join the next batches as their bodies are read)
    sleep 0.5;
    $intents->end;
    ok($h->wait_for(sub { $h->objects == $before + @models }),
       scalar(@models) . ' objects stored while the lock is held');
    @intent_xacts = split /\n/, $h->psql("SELECT count(*) FROM storage_gc"
        . " WHERE reason = 'model.create under way' GROUP BY xmin::text");
    ok($h->wait_for(sub { waiting_on_lock() >= 1 }),
       'a batch waits for the lock');
    # (a stored object's member joins its batch as the store answers)
    sleep 0.5;
    $lock->end;
    return map { $h->read_response($_, 30) } @socks;
}

sub objects_of {
    my ($id) = @_;
    return scalar grep { m{^\Q$id\E/} } $h->objects;
}

# ---- twelve at once: fewer commits, each at most batch=4 rows
my @res = register_held(map { { name => "gc$_", version => '1' } } 1 .. 12);
is_deeply([ map { $_->{status} } @res ], [ (201) x 12 ], 'twelve 201');
my @ids = map { $_->{content} } @res;
my $in = join ',', map { "'$_'" } @ids;
is($h->psql("SELECT count(*) FROM models WHERE id IN ($in)"), 12,
   'twelve rows');
my @per_xid = split /\n/, $h->psql("SELECT count(*) FROM audit_events"
    . " WHERE model_id IN ($in) AND action = 'model.create' GROUP BY xid");
my $events = 0;
$events += $_ for @per_xid;
is($events, 12, 'one audit event each');
cmp_ok(scalar @per_xid, '<', 12,
       'in fewer transactions than registrations (' . scalar(@per_xid) . ')');
cmp_ok((sort { $b <=> $a } @per_xid)[0], '<=', 4,
       'none bigger than batch=4');
my $intents = 0;
$intents += $_ for @intent_xacts;
is($intents, 12, 'twelve intents written before their objects');
cmp_ok(scalar @intent_xacts, '<', 12, 'the intents in fewer transactions'
       . ' than registrations (' . scalar(@intent_xacts) . ')');
cmp_ok((sort { $b <=> $a } @intent_xacts)[0], '<=', 4,
       'none bigger than batch=4');
is($h->psql("SELECT count(*) FROM storage_gc"), 0,
   'no clean-up entry left (each intent taken out by its row)');
is(scalar(grep { objects_of($_) == 1 } @ids), 12, 'an object each');
for my $i (0, 11) {
    my $m = $h->get("/models/$ids[$i]");
    is($m->{status}, 200, "model $i found");
    like($m->{content}, qr/"name" : "gc@{[$i + 1]}"/, "model $i is its own");
}

# ---- what an array literal escapes, in one batch: each value its own
my @names = ('a"b', 'c\\d', '{e,f}', 'NULL', "\xc3\xa9\"}", 'g h');
@res = register_held(map { { name => $_, version => '1' } } @names);
is_deeply([ map { $_->{status} } @res ], [ (201) x @names ],
          'quotes, backslashes, braces, commas, "NULL": 201 each');
my $json = JSON::PP->new->utf8;
my @got = map { $json->decode($h->get("/models/$_->{content}")->{content})
                ->{name} } @res;
is_deeply(\@got, [ map { Encode::decode('UTF-8', $_) } @names ],
          'each name as sent, to its own model');
$in = join ',', map { "'$_->{content}'" } @res;
cmp_ok($h->psql("SELECT count(DISTINCT xid) FROM audit_events"
                . " WHERE model_id IN ($in)"), '<', scalar @names,
       'in fewer transactions than registrations');

# ---- big rows: past 4 MiB of parameters a batch takes no more
my $q = '\\"' x 300000;     # 600 KB of JSON, 1.2 MB escaped, twice a row
@res = register_held(map { { name => "big$_", version => '1',
                             overview => qq({"q":"$q"}),
                             optimization_capabilities => qq({"q":"$q"}) } }
                     1 .. 3);
is_deeply([ map { $_->{status} } @res ], [ (201) x 3 ], 'three big rows 201');
$in = join ',', map { "'$_->{content}'" } @res;
is($h->psql("SELECT count(DISTINCT xid) FROM audit_events"
            . " WHERE model_id IN ($in)"), 3,
   'each in a batch of its own (two would pass the 4 MiB)');
my $m = $json->decode($h->get("/models/$res[2]{content}")->{content});
is($m->{overview}{q}, '"' x 300000, 'its JSON whole');
my $objects = 12 + @names + 3;

# ---- conflicts inside a batch
my $old = $ids[0];
@res = register_held({ name => 'twin', version => '1' },
                     { name => 'other', version => '1' },
                     { name => 'twin', version => '1' },
                     { name => 'gc1', version => '1' },
                     { name => 'third', version => '1' });
my @st = map { $_->{status} } @res;
is(scalar(grep { $_ == 201 } @st[0, 2]), 1, 'one twin 201');
is(scalar(grep { $_ == 409 } @st[0, 2]), 1, 'the other twin 409');
my ($won) = map { $_->{content} } grep { $_->{status} == 201 } @res[0, 2];
my ($lost) = grep { $_->{status} == 409 } @res[0, 2];
like($lost->{content}, qr/conflict with model '\Q$won\E'/,
     'the 409 names the twin that won');
is($st[3], 409, 'a duplicate of an older model 409');
like($res[3]{content}, qr/conflict with model '\Q$old\E'/, 'naming it');
is($st[1], 201, 'the others of the batch 201 (1)');
is($st[4], 201, 'the others of the batch 201 (2)');
is($h->psql("SELECT count(*) FROM models WHERE name = 'twin'"), 1,
   'one twin row');
ok($h->wait_for(sub { $h->objects == $objects + 3 }),
   'the objects of the two 409 are gone') or diag join ' ', $h->objects;
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM storage_gc") == 0 }),
   'and their clean-up entries');

# a trigger "name" on "table" that refuses the rows where "cond" holds
sub refuse {
    my ($name, $table, $cond) = @_;
    $h->psql(<<"SQL");
CREATE FUNCTION $name() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    IF $cond THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END \$\$;
SQL
    $h->psql("CREATE TRIGGER $name BEFORE INSERT ON $table"
             . " FOR EACH ROW EXECUTE FUNCTION $name()");
}

# ---- a statement error: each sent again on its own
refuse('t55_refuse', 'models', "NEW.name = 'refused'");
my $log_from = length $h->error_log;
@res = register_held({ name => 'fine1', version => '1' },
                     { name => 'refused', version => '1' },
                     { name => 'fine2', version => '1' },
                     { name => 'fine3', version => '1' });
is_deeply([ map { $_->{status} } @res ], [ 201, 500, 201, 201 ],
          'the refused row 500, the others 201');
my $refused = qr/a batch of \d+ registration rows failed as a statement/;
like(substr($h->error_log, $log_from),
     qr/$refused \(23514\), each is sent again on its own/,
     'the batch failed as a statement and was sent again row by row');
is($h->psql("SELECT count(*) FROM models WHERE name = 'refused'"), 0,
   'no refused row');
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'fine_'"), 3,
   'the fine rows');
ok($h->wait_for(sub { $h->objects == $objects + 6 }),
   'the refused object is gone');
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM storage_gc") == 0 }),
   'and its clean-up entry');
$h->psql('DROP TRIGGER t55_refuse ON models');

# ---- an intent batch refused as a statement: each intent sent again on
# its own, the refused one 500 with no object, the others registered
refuse('t55_refuse_intent', 'storage_gc', "NEW.storage_key LIKE '%/refused.zip'"
       . " AND NEW.reason = 'model.create under way'");
$log_from = length $h->error_log;
my @isocks = do {
    my $lock = hold('storage_gc');
    my @s = send_models({ name => 'ifine1', version => '1' },
                        { name => 'ifine2', version => '1' },
                        { name => 'irefused', version => '1',
                          _file => 'refused.zip' },
                        { name => 'ifine3', version => '1' });
    ok($h->wait_for(sub { waiting_on_lock($INTENTS) >= 1 }),
       'an intent batch waits for the lock');
    sleep 0.5;
    $lock->end;
    @s;
};
@res = map { $h->read_response($_, 30) } @isocks;
is_deeply([ map { $_->{status} } @res ], [ 201, 201, 500, 201 ],
          'the refused intent 500, the others 201');
like(substr($h->error_log, $log_from),
     qr/a batch of [2-9] registration intents failed as a statement \(23514\),/,
     'an intent batch (of more than the refused) failed as a statement and'
     . ' was sent again one by one');
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'i%'"), 3,
   'the three fine rows, no refused one');
ok($h->wait_for(sub { $h->objects == $objects + 9 }),
   'no object for the refused') or diag join ' ', $h->objects;
ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM storage_gc") == 0 }),
   'no clean-up entry left');
$h->psql('DROP TRIGGER t55_refuse_intent ON storage_gc');
$objects += 3;

# ---- a worker that cannot build or tell a batch (gdb makes an
# allocation fail): a batch not built is not sent,
# each member 503 and its object gone at once; a row that committed but
# cannot be told is an unknown outcome: 503, and its object stays, as the
# clean-up queue's check finds the row
SKIP: {
    my $why = Modelreg::Harness::gdb_missing();
    skip($why, 19) if $why;
    my $d = $h->dir;
    my ($w) = $h->worker_pids;
    my $before = scalar $h->objects;
    my $gdb = Modelreg::Harness::gdb_attach($w, "$d/gdb-array.log",
        # (the batch statement's copy, its 26 parameters: NULL)
        'break ngx_http_modelreg_query_copy if n == 26', 'commands',
        'return (void *) 0', 'continue', 'end');
    my $r = $h->register(name => 'unbuilt', version => '1');
    Modelreg::Harness::gdb_detach($gdb, $w);
    is($r->{status}, 503, 'a batch not built: 503');
    is($r->{content}, '{"detail":"Metadata database unavailable."}',
       'naming the database');
    is($h->psql("SELECT count(*) FROM models WHERE name = 'unbuilt'"), 0,
       'no row');
    ok($h->wait_for(sub { $h->objects == $before
                          && $h->psql("SELECT count(*) FROM storage_gc")
                             == 0 }),
       'its object and its clean-up entry gone');

    # (the intent batch's copy: nothing written, nothing stored)
    $gdb = Modelreg::Harness::gdb_attach($w, "$d/gdb-intent.log",
        'break ngx_http_modelreg_query_copy if n == 2'
        . ' && $_regex(sql, ".*unnest.*AS k ON CONFLICT")', 'commands',
        'return (void *) 0', 'continue', 'end');
    $r = $h->register(name => 'unintended', version => '1');
    Modelreg::Harness::gdb_detach($gdb, $w);
    is($r->{status}, 503, 'an intent batch not built: 503');
    is($r->{content}, '{"detail":"Metadata database unavailable."}',
       'naming the database');
    is($h->psql("SELECT count(*) FROM models WHERE name = 'unintended'"), 0,
       'no row');
    is(scalar $h->objects, $before, 'no object stored');
    is($h->psql("SELECT count(*) FROM storage_gc"), 0, 'no intent written');

    # (an intent batch that committed, its answer lost, as a lost
    # connection would have it: nothing stored, and the entry it wrote
    # taken out, not left for its hour)
    $gdb = Modelreg::Harness::gdb_attach($w, "$d/gdb-unanswered.log",
        'break ngx_http_modelreg_batch_done if pq->status == 0'
        . ' && ((ngx_http_modelreg_batch_t *) pq->data)->kind->rows == 0',
        'commands', 'set var pq->status = 2', 'set var pq->sent = 1',
        'continue', 'end');
    $r = $h->register(name => 'unanswered', version => '1',
                      file => { filename => 'unanswered.zip' });
    Modelreg::Harness::gdb_detach($gdb, $w);
    is($r->{status}, 503, 'an intent committed, its answer lost: 503');
    is($r->{content}, '{"detail":"Metadata database unavailable."}',
       'naming the database');
    is($h->psql("SELECT count(*) FROM models WHERE name = 'unanswered'"), 0,
       'no row');
    is(scalar $h->objects, $before, 'no object stored');
    ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM storage_gc WHERE"
                                   . " storage_key LIKE '%/unanswered.zip'")
                          == 0 }),
       'the entry it wrote taken out');

    $gdb = Modelreg::Harness::gdb_attach($w, "$d/gdb-row.log",
        # (the member's one-row result, made with no connection: NULL)
        'break PQmakeEmptyPGresult if $rdi == 0', 'commands',
        'return (void *) 0', 'continue', 'end');
    $r = $h->register(name => 'untold', version => '1');
    Modelreg::Harness::gdb_detach($gdb, $w);
    is($r->{status}, 503, 'a row that cannot be told: 503');
    like($h->error_log, qr/the outcome of registering "[^"]+" is unknown/,
         'its outcome unknown');
    is($h->psql("SELECT count(*) FROM models WHERE name = 'untold'"), 1,
       'the row committed');
    # (its checked removal is due after 2 x timeout + 5 s)
    ok($h->wait_for(sub { $h->psql("SELECT count(*) FROM storage_gc") == 0 },
                    60),
       'the clean-up queue checked it');
    is(scalar $h->objects, $before + 1, 'and its object stays');
    $objects++;
}

# ---- the database dies while a batch is in flight and others wait

# PostgreSQL killed while "lock" holds a batch of the POSTs on "socks":
# each answered 503 naming the database ("count" of them), then restarted
sub killed_in_flight {
    my ($lock, $count, @socks) = @_;
    sleep 0.5;
    # (killed, not stopped: a fast shutdown ends the lock's holder first,
    # and the batch could then commit before its own backend ends: a 201
    # with its row, right, but not the case this drives; seen in 1 run
    # of 8)
    $h->kill_pg;
    $lock->end;
    my @res = map { $h->read_response($_, 30) } @socks;
    is_deeply([ map { $_->{status} } @res ], [ (503) x @socks ],
              "$count 503");
    is_deeply([ grep { $_->{content} ne
                       '{"detail":"Metadata database unavailable."}' }
                @res ], [], 'each naming the database');
    sleep 3;   # (as t/40: the killed postmaster's socket lock must be free)
    $h->start_pg;
}

my $lock = hold();
my @socks = send_models(map { { name => "down$_", version => '1' } } 1 .. 6);
ok($h->wait_for(sub { $h->objects == $objects + 6 + 6 }), 'six stored');
ok($h->wait_for(sub { waiting_on_lock() >= 1 }), 'a batch in flight');
killed_in_flight($lock, 'six', @socks);
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'down_'"), 0,
   'no row');
# (an unknown outcome's entry is due after 2 x timeout + 5 s; its write,
# made while the database was down, is retried with back-off: 1 s
# doubling)
ok($h->wait_for(sub { $h->objects == $objects + 6 }, 120),
   'the clean-up queue removes their objects')
    or diag join "\n", $h->objects,
            $h->psql("SELECT storage_key, reason, attempts, next_attempt_at"
                     . " FROM storage_gc"),
            grep { /modelreg/ && !/\[debug\]/ } split /\n/, $h->error_log;
is($h->get('/health/ready')->{status}, 200, 'ready again');

# ---- the database dies while an intent batch is in flight and others
# wait: every member 503, nothing stored; after the restart no row, no
# object and no entry (no intent committed)
$lock = hold('storage_gc');
my $idown_before = scalar $h->objects;
@socks = send_models(map { { name => "idown$_", version => '1',
                              _file => 'idown.zip' } } 1 .. 4);
ok($h->wait_for(sub { waiting_on_lock($INTENTS) >= 1 }),
   'an intent batch in flight');
killed_in_flight($lock, 'four', @socks);
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'idown_'"), 0,
   'no row');
is(scalar $h->objects, $idown_before, 'no object stored');
is($h->psql("SELECT count(*) FROM storage_gc"
            . " WHERE storage_key LIKE '%/idown.zip'"), 0,
   'no entry left');
ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }),
   'ready again');
is($h->register(name => 'idown-after', version => '1')->{status}, 201,
   'and registers');
my @idown_workers = $h->worker_pids;
$h->reload_nginx;
ok($h->wait_for(sub { !grep { kill 0, $_ } @idown_workers }),
   'reloaded, the old workers gone');
unlike($h->error_log, qr/idown\.zip" could not be queued/,
       'no key of theirs named as an orphan (none was stored)');

# ---- a row batch the pool declines (gdb: the database as if down) after
# its object was stored: 503, the object removed, and its intent's entry
# to be taken out; that write declined too until the worker exits, it
# names no orphan (the entry falls due after its hour, removing nothing)
SKIP: {
    my $why = Modelreg::Harness::gdb_missing();
    skip($why, 7) if $why;
    my ($w) = $h->worker_pids;
    my $before = scalar $h->objects;
    my $gdb = Modelreg::Harness::gdb_attach($w, $h->dir . '/gdb-declined.log',
        # (the row batch, and any write of the clean-up queue by key)
        'break ngx_http_modelreg_pg_send if $_regex(q->sql, "WITH v AS.*")'
        . ' || $_regex(q->sql, "DELETE FROM storage_gc WHERE storage_key.*")'
        . ' || $_regex(q->sql, "INSERT INTO storage_gc.*DO UPDATE.*")',
        'commands', 'return (ngx_int_t) -5', 'continue', 'end');
    my $from = length $h->error_log;
    my $r = $h->register(name => 'declined', version => '1',
                         file => { filename => 'declined.zip' });
    is($r->{status}, 503, 'a row batch declined after its object: 503');
    is($r->{content}, '{"detail":"Metadata database unavailable."}',
       'naming the database');
    ok($h->wait_for(sub { $h->objects == $before }), 'its object removed');
    # (the database stopped while gdb still declines, so the worker still
    # cannot write the queue; gdb gone before the worker exits, as a leak
    # check cannot run under ptrace: seen in test-asan)
    $h->stop_pg;
    Modelreg::Harness::gdb_detach($gdb, $w);
    $h->reload_nginx;
    ok($h->wait_for(sub { !kill 0, $w }, 30), 'the worker exits on a reload');
    $h->start_pg;
    ok($h->wait_for(sub { $h->get('/health/ready')->{status} == 200 }, 30),
       'ready again');
    unlike(substr($h->error_log, $from), qr/could not be queued/,
           'naming no orphan');
    is($h->psql("SELECT count(*) FROM storage_gc WHERE storage_key"
                . " LIKE '%/declined.zip' AND reason = 'model.create under"
                . " way'"), 1, 'its intent waits out its hour');
    $h->psql("DELETE FROM storage_gc WHERE storage_key LIKE '%/declined.zip'");
}

# ---- requests that go away while their rows wait or ride a batch: a
# reload with worker_shutdown_timeout ends the old worker's requests
# (their pools destroyed) while the lock holds a batch of one and a batch
# of four in flight and a sixth waits.  Each member leaves its batch or
# the wait, its object queued for a checked removal (the sixth's at once,
# not after its intent's hour); the batches then commit the rows of the
# five in flight, each keeping its object and with its audit event, the
# sixth's object goes, and the old worker exits.
# (timeout=30s: all of it, uploads to the reload's end, is within the
# batches' statement)
$h->{opt}{main} = 'worker_shutdown_timeout 1s;';
$h->{opt}{db} = 'pool=4 queue=64 timeout=30s batch=4';
my ($old_worker) = $h->worker_pids;
$h->reload_nginx;
ok($h->wait_for(sub { my @w = $h->worker_pids;
                      @w == 1 && $w[0] != $old_worker }),
   'reloaded with worker_shutdown_timeout 1s');

# six POSTs ("prefix" 1-6) while "table" is locked, ended by a reload once
# each check (name => sub) holds; the old worker waits for its batches
# until the lock goes, then exits
sub gone_by_reload {
    my ($table, $prefix, @checks) = @_;
    # ("prefix" or [ "prefix", the file's name ])
    my ($name, $file) = ref $prefix ? @$prefix : ($prefix, 'm.zip');
    my $lock = hold($table);
    my @socks = send_models(map { { name => "$name$_", version => '1',
                                    _file => $file } } 1 .. 6);
    while (my ($name, $check) = splice @checks, 0, 2) {
        ok($h->wait_for($check), $name);
    }
    my ($old) = $h->worker_pids;
    $h->reload_nginx;
    my @res = map { $h->read_response($_, 30) } @socks;
    is_deeply([ map { $_->{status} } @res ], [ (599) x 6 ],
              'the six requests ended without an answer');
    ok(kill(0, $old), 'the old worker still waits for its batches');
    $lock->end;
    ok($h->wait_for(sub { !kill(0, $old)
                          || (Modelreg::Harness::slurp("/proc/$old/stat")
                              // '') =~ /\) Z/ }, 30),
       'then it exits');
}

my $gone_before = scalar $h->objects;
gone_by_reload('geti_tombstones', 'gone',
               'six stored' => sub { $h->objects == $gone_before + 6 },
               'two batches in flight' => sub { waiting_on_lock() >= 2 });
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'gone_'"), 5,
   'the five rows in flight committed');
is($h->psql("SELECT count(*) FROM audit_events e JOIN models m"
            . " ON m.id = e.model_id WHERE m.name LIKE 'gone_'"
            . " AND e.action = 'model.create'"), 5, 'each with its event');
ok($h->wait_for(sub { $h->objects == $gone_before + 5 }, 60),
   "the sixth's object removed by the clean-up queue");
my %key = map { $_ => 1 } split /\n/,
          $h->psql("SELECT storage_key FROM models WHERE name LIKE 'gone_'");
is(scalar(grep { $key{$_} } $h->objects), 5, 'each row with its object');
is($h->register(name => 'after', version => '1')->{status}, 201,
   'the new worker registers');

# ---- the same while their intents wait or ride a batch: nothing was
# stored, so nothing is queued; the intents in flight commit entries that
# name nothing (due after their hour, harmless), and the old worker exits
$gone_before = scalar $h->objects;
gone_by_reload('storage_gc', 'igone', 'two intent batches in flight'
               => sub { waiting_on_lock($INTENTS) >= 2 });
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'igone_'"), 0,
   'no row');
is(scalar $h->objects, $gone_before, 'no object stored');
cmp_ok($h->psql("SELECT count(*) FROM storage_gc"
                . " WHERE reason = 'model.create under way'"), '<=', 6,
       'at most an entry for each, naming nothing');
unlike($h->error_log, qr/exited on signal/, 'no worker crashed');
is($h->register(name => 'after2', version => '1')->{status}, 201,
   'the new worker registers');

# ---- the same while their intents, their batch refused as a statement,
# are each sent again on its own: a trigger refuses "alone.zip" in a batch
# and, on its own, makes it wait for advisory lock 55.  Each is dropped
# with its request, the queued ones before they are sent; nothing is
# stored, and the old worker waits for those sent, then exits.
$h->psql(<<'SQL');
CREATE FUNCTION t55_alone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.storage_key LIKE '%/alone.zip'
       AND NEW.reason = 'model.create under way'
    THEN
        IF current_query() LIKE '%unnest%' THEN
            RAISE EXCEPTION 'refused by the test'
                USING ERRCODE = 'check_violation';
        END IF;
        PERFORM pg_advisory_xact_lock_shared(55);
    END IF;
    RETURN NEW;
END $$;
SQL
$h->psql('CREATE TRIGGER t55_alone BEFORE INSERT ON storage_gc'
         . ' FOR EACH ROW EXECUTE FUNCTION t55_alone()');
$gone_before = scalar $h->objects;
$log_from = length $h->error_log;
gone_by_reload('advisory', [ 'agone', 'alone.zip' ],
               'intents sent again on their own wait for the lock'
               => sub { waiting_on_lock('VALUES ($1, ') >= 2 });
like(substr($h->error_log, $log_from),
     qr/a batch of \d+ registration intents failed as a statement \(23514\)/,
     'their batch had failed as a statement');
is($h->psql("SELECT count(*) FROM models WHERE name LIKE 'agone_'"), 0,
   'no row');
is(scalar $h->objects, $gone_before, 'no object stored');
cmp_ok($h->psql("SELECT count(*) FROM storage_gc"
                . " WHERE storage_key LIKE '%/alone.zip'"), '<=', 6,
       'at most an entry for each, naming nothing');
$h->psql('DROP TRIGGER t55_alone ON storage_gc');
unlike($h->error_log, qr/exited on signal/, 'no worker crashed');
is($h->register(name => 'after3', version => '1')->{status}, 201,
   'the new worker registers');

$h->finish;
done_testing;
