# Proves: README "Operations" / "Backup and restore", by running its
# three blocks (ops-backup, ops-restore, ops-reconcile) as written, with
# this test's conninfo, store and backup paths, on fs; then the same on
# S3 (one Swift s3api: the registry's bucket, a backup bucket and the
# restored registry's bucket), where buckets are copied and listed
# through Swift's own API in place of rsync and find:
# - models registered before the dump come back, each listed model
#   downloads with its sha256; a PUT made after the dump is not restored;
#   a model deleted after both copies comes back whole;
# - the two copies diverge as documented: a model registered between the
#   dump and the store copy leaves an object that no row names, which
#   nothing removes on its own (no sweep; storage_gc is empty), and a
#   model deleted in between leaves a row without its object, whose
#   download answers 503 "Object storage unavailable." (a crit line in
#   the log on fs; on S3 the store's 404, logged);
# - the reconcile block queues the unnamed object, which the clean-up
#   timer removes, and DELETEs the row without object (204, audited):
#   afterwards rows and objects are the same set and every model
#   downloads with its bytes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use Modelreg::Harness;

my $TOP = $Modelreg::Harness::TOP;
our $readme = Modelreg::Harness::slurp("$TOP/README.md");

# a README block between <!-- NAME:start --> and its end, its variable
# assignments (DB=, STORE=, BACKUP=) left to this test
sub block {
    my ($name) = @_;
    my ($b) = $readme =~ /<!-- $name:start -->\n```sh\n(.*?)```/s;
    BAIL_OUT("README has no $name block") unless $b;
    $b =~ s/^[A-Z]+=.*\n//mg;
    return $b;
}

my ($h, $dir, $port, $backup, $storage, %bytes, %key);

# runs a README block with this test's values; returns its output.
# $o{replace}: { line pattern => shell } for what S3 does otherwise
sub run_block {
    my ($name, %v) = @_;
    my $b = block($name);
    $b =~ s{/tmp/}{$dir/}g;
    $b =~ s/127\.0\.0\.1:8111/127.0.0.1:$v{http}/g if $v{http};
    if (my $r = $v{replace}) {
        $b =~ s/^.*\Q$_\E.*$/$r->{$_}/m or die "no \"$_\" in $name"
            for keys %$r;
    }
    my $sh = "set -euo pipefail\ncd $TOP\n"
           . "DB='host=127.0.0.1 port=$port dbname=$v{db} user=modelreg"
           . Modelreg::Harness::conninfo_password() . "'\n"
           . "STORE='$v{store}'\nBACKUP='$backup'\n$b";
    Modelreg::Harness::write_file("$dir/$name.sh", $sh);
    my ($rc, $out) = Modelreg::Harness::run_cmd('bash', "$dir/$name.sh");
    is($rc, 0, "$storage: README's $name block runs") or diag $out;
    return $out;
}

sub register {
    my ($name) = @_;
    my $zip = Modelreg::Harness::zip_of('model.xml', "$name " x 1000);
    my $id = $h->new_model(name => $name, version => '1',
                           file => { value => $zip });
    $bytes{$id} = $zip;
    $key{$id} = $h->psql("SELECT storage_key FROM models WHERE id = '$id'");
    return $id;
}

# S3: buckets through Swift's own API (no S3 tool on this machine), all
# in the one Swift of the registry's harness: "models" (the registry's),
# "backup" (the copy), "restored" (the restored registry's)
sub swift {
    my ($method, $path, $content) = @_;
    my $res = $h->http->request($method, "$h->{swift}{url}/$path",
        { headers => { 'X-Auth-Token' => $h->{swift}{token} },
          defined $content ? (content => $content) : () });
    die "swift $method $path: $res->{status}" if $res->{status} >= 300;
    return $res->{content};
}

sub bucket_keys { split /\n/, swift('GET', "$_[0]?format=plain") // '' }

sub copy_bucket {
    my ($from, $to) = @_;
    swift('PUT', $to);
    swift('PUT', "$to/$_", swift('GET', "$from/$_")) for bucket_keys($from);
}

sub scenario {
    ($storage) = @_;
    %bytes = %key = ();
    $h = Modelreg::Harness->new(gc => '1s', storage => $storage);
    $dir = $h->dir;
    $port = $h->pg_port;
    $backup = "$dir/backup";
    mkdir $backup or die "mkdir: $!";
    my $s3 = $storage eq 's3';

    # ---- the registry before the backup
    my ($a, $b, $c) = map { register("before-$_") } qw(a b c);

    # ---- backup: the database, then (later) the store
    my $backup_block = block('ops-backup');
    my ($dump_cmd) = $backup_block =~ /^(pg_dump .*)$/m;
    my ($copy_cmd) = $backup_block =~ /^(rsync .*)$/m;
    ok($dump_cmd && $copy_cmd, "$storage: the backup block: pg_dump, then rsync");
    {
        # one step at a time, so that the registry changes between
        local $readme = "<!-- step:start -->\n```sh\n$dump_cmd\n```";
        run_block('step', db => 'modelreg', store => "$dir/objects");
    }
    my $d = register('between-d');              # in the store copy only
    is($h->delete("/models/$b")->{status}, 204, "$storage: B deleted after the dump");
    is($h->put("/models/$a", { content => 'score=0.5', headers =>
               { 'Content-Type' => 'application/x-www-form-urlencoded' } })
       ->{status}, 200, "$storage: A updated after the dump");
    if ($s3) {
        copy_bucket('models', 'backup');
        my %in = map { $_ => 1 } bucket_keys('backup');
        ok($in{$key{$d}} && !$in{$key{$b}}, 's3: the bucket copy has D, not B');
    } else {
        local $readme = "<!-- step:start -->\n```sh\n$copy_cmd\n```";
        run_block('step', db => 'modelreg', store => "$dir/objects");
        ok(-f "$backup/objects/$key{$d}", 'fs: the store copy has D');
        ok(!-e "$backup/objects/$key{$b}", 'and not B');
        ok(!-e "$backup/objects/.tmp", 'nor the spool');
    }
    my $e = register('after-e');                # in neither copy
    is($h->delete("/models/$c")->{status}, 204, "$storage: C deleted after both");

    # ---- restore into a fresh database and store, then nginx on them
    $h->psql_admin('CREATE DATABASE restored OWNER modelreg');
    my $conn = "host=127.0.0.1 port=$port dbname=restored user=modelreg"
             . Modelreg::Harness::conninfo_password();
    my $r = Modelreg::Harness->new(pg_of => $h, gc => '1s', no_nginx => 1,
        storage => $storage, database =>
        "modelreg_database \"$conn\" pool=4 queue=64 timeout=5s;");
    my $store = $r->dir . '/objects';
    if ($s3) {
        # the restored registry on the "restored" bucket of the same Swift
        $r->{s3_port} = $h->s3_port;
        $r->{opt}{storage_conf} = 'modelreg_storage s3 endpoint=http://'
            . '127.0.0.1:' . $h->s3_port . ' bucket=restored'
            . " region=us-east-1 access_key_file=$dir/s3_access"
            . " secret_key_file=$dir/s3_secret spool=" . $r->dir
            . '/spool gc_interval=1s;';
        run_block('ops-restore', db => 'restored', store => $store,
                  replace => { 'rsync' => ': the bucket, below' });
        copy_bucket('backup', 'restored');
    } else {
        run_block('ops-restore', db => 'restored', store => $store);
    }
    $r->start_nginx;
    is($r->get('/health/ready')->{status}, 200,
       "$storage: the restored registry is ready");

    my $rpsql = sub {
        my ($sql) = @_;
        my ($rc, $out) = Modelreg::Harness::run_cmd('psql', '-X', '-q',
            '-At', Modelreg::Harness::shell_quote($conn),
            '-c', Modelreg::Harness::shell_quote($sql));
        die "psql: $out" if $rc;
        chomp $out;
        return $out;
    };
    my $objects = sub { $s3 ? bucket_keys('restored') : $r->objects };
    my $has = sub { scalar grep { $_ eq $_[0] } $objects->() };

    my $list = $r->get('/models');
    is($list->{status}, 200, "$storage: GET /models");
    my %listed = map { $_->{id} => $_ } @{ $list->{json} || [] };
    is(join(' ', sort keys %listed), join(' ', sort $a, $b, $c),
       "$storage: the models of the dump are listed: A, B, C (not D, not E)");
    is($listed{$a}{score}, 0, "$storage: A's update after the dump is not restored");

    for my $id ($a, $c) {
        my $res = $r->get("/models/$id/files");
        ok($res->{status} == 200 && $res->{content} eq $bytes{$id}
           && sha256_hex($res->{content}) eq $listed{$id}{sha256},
           "$storage: $listed{$id}{name} downloads with its bytes and sha256");
    }

    # B: deleted between the dump and the store copy
    is($r->get("/models/$b")->{status}, 200,
       "$storage: B, deleted in between, is a row");
    my $res = $r->get("/models/$b/files");
    is($res->{status}, 503, "$storage: whose download answers 503");
    is($res->{json}{detail}, 'Object storage unavailable.',
       'Object storage unavailable.');
    like($r->error_log, $s3
         ? qr/\[error\].*object storage answered 404 for "\Q$key{$b}\E"/
         : qr/\[crit\].*the object of a registered model is missing: "\Q$key{$b}\E"/,
         "$storage: and logs it");

    # D: registered in between: an object no row names, and no sweep
    is($rpsql->('SELECT count(*) FROM storage_gc'), 0,
       "$storage: the restored clean-up queue is empty");
    my $gc0 = $r->metrics->{'modelreg_storage_gc_total{outcome="removed"}'};
    sleep 3;                                    # three clean-up rounds
    ok($has->($key{$d}), "$storage: D's object stays: nothing sweeps the store");

    # ---- reconcile, as README says
    if ($s3) {
        Modelreg::Harness::write_file("$dir/keys",
                                      join '', map { "$_\n" } $objects->());
        run_block('ops-reconcile', db => 'restored', store => $store,
                  http => $r->port, replace => { 'find .' => ': listed' });
    } else {
        run_block('ops-reconcile', db => 'restored', store => $store,
                  http => $r->port);
    }
    is(Modelreg::Harness::slurp("$dir/missing"), "$b\n",
       "$storage: the rows without an object: B");
    is($r->get("/models/$b")->{status}, 404, "$storage: B is deleted");
    like($rpsql->("SELECT actor || ' ' || status FROM audit_events"
                  . " WHERE model_id = '$b' AND action = 'model.delete'"),
         qr/^- 204$/m, 'audited');
    ok($r->wait_for(sub { !$has->($key{$d}) }, 30),
       "$storage: D's object is removed by the clean-up queue");
    ok($r->wait_for(sub { $rpsql->('SELECT count(*) FROM storage_gc') == 0 },
                    30), 'and the queue drains');
    cmp_ok($r->metrics->{'modelreg_storage_gc_total{outcome="removed"}'},
           '>', $gc0, 'counted as removed');
    like($r->error_log, qr/\[notice\].*storage clean-up: [1-9]\d* removed, \d+ failed/,
         'the clean-up round is logged');

    my @rows = split /\n/, $rpsql->('SELECT storage_key FROM models ORDER BY 1');
    is(join(' ', sort $objects->()), join(' ', @rows),
       "$storage: rows and objects are the same set");
    $list = $r->get('/models');
    for my $m (@{ $list->{json} || [] }) {
        my $f = $r->get("/models/$m->{id}/files");
        ok($f->{status} == 200 && sha256_hex($f->{content}) eq $m->{sha256}
           && $f->{content} eq $bytes{$m->{id}},
           "$storage: $m->{name} downloads with its sha256");
    }
    is(scalar @{ $list->{json} || [] }, 2, "$storage: A and C");

    $r->finish;
    $h->finish;
}

scenario('fs');
scenario('s3');
done_testing();
