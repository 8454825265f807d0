package Modelreg::Load;

# Mixed load on the registry from client processes of its own (fork),
# on loopback only, bounded in count and in time: each client stops
# starting requests after "seconds" or "max" requests, and wait() kills
# any that outlive that by more than its request timeout.
#
#   my $load = Modelreg::Load->start(port => $h->port, clients => 4,
#                                    seconds => 15);
#   ... a fault happens meanwhile ...
#   my @recs = $load->wait;
#   my $sum = Modelreg::Load::summary(\@recs);   # { ok, documented, other }
#
# Each request is one record: { op, method, path, status, detail, t0, t1,
# client, openapi (what in the answer the OpenAPI document does not
# describe: an "other") }, and for a registration answered 201 { id, sha256 } of the
# bytes sent (an import: of the export ZIP the fake Geti serves); for a
# DELETE answered 204 the id deleted.  status 599 is no answer (connection
# refused or reset, timeout); "error" says which.
#
# Operations and their weights ("mix"): register (multipart POST with a
# real ZIP, sometimes the name and version of an earlier one: 409), get,
# list (with a filter), download (bytes checked against the sha256 of what
# was registered), update (PUT urlencoded, sometimes colliding: 409),
# delete; with "geti" (projects => [ids], models => [{ project, group, id,
# sha256 }]): geti_projects, geti_project, geti_import.  abort_upload and abort_download
# close their socket on purpose mid-body (status 0, class "aborted").
#
# Clients share what they registered through a file, so that reads,
# updates and deletes race with other clients' deletes (404s).

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use Fcntl qw(:flock);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit WNOHANG);
use Socket qw(SOL_SOCKET SO_RCVBUF SO_LINGER);
use Time::HiRes qw(sleep time);

require Modelreg::Harness;
use Modelreg::OpenAPI;

my $JSON = JSON::PP->new->utf8->canonical;

our $DB_DOWN    = 'Metadata database unavailable.';
our $STORE_DOWN = 'Object storage unavailable.';
our $GETI_DOWN  = 'Geti unavailable.';
our $CONFLICT   = qr/^The[ ]requested[ ]action[ ]could[ ]not[ ]be[ ]completed[ ]due[ ]to[ ]a
                      [ ]conflict[ ]with[ ]model[ ]'[A-Za-z0-9_-]+'\.$/x;

# what API.md and README document for each operation: status => the
# details that status may carry (undef: any body, a success)
our %DOCUMENTED = (
    register => { 201 => undef, 409 => [ $CONFLICT ],
                  503 => [ $DB_DOWN, $STORE_DOWN ] },
    get      => { 200 => undef, 404 => [ 'Model not found.' ],
                  503 => [ $DB_DOWN ] },
    list     => { 200 => undef, 404 => [ 'Model(s) not found.' ],
                  503 => [ $DB_DOWN ] },
    download => { 200 => undef, 404 => [ 'Model not found.' ],
                  503 => [ $DB_DOWN, $STORE_DOWN ] },
    update   => { 200 => undef, 404 => [ 'Model not found.' ],
                  409 => [ $CONFLICT ], 503 => [ $DB_DOWN ] },
    delete   => { 204 => undef, 404 => [ 'Model not found.' ],
                  503 => [ $DB_DOWN ] },
    geti_projects => { 200 => undef, 503 => [ $GETI_DOWN ] },
    geti_project  => { 200 => undef, 503 => [ $GETI_DOWN ] },
    geti_import   => { 201 => undef,
                  409 => [ qr/^Model\(s\):[ ]\w+[ ]already[ ]registered\.
                              [ ]No[ ]model\(s\)[ ]registered\.$/x ],
                  503 => [ $GETI_DOWN, $DB_DOWN, $STORE_DOWN ] },
);

my %DEFAULT_MIX = (register => 4, get => 3, list => 1, download => 3,
                   update => 2, delete => 1);

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        port     => $o{port} // die("port\n"),
        clients  => $o{clients} // 4,
        seconds  => $o{seconds} // 15,
        max      => $o{max} // 5000,
        # (a request may meet two of the store's 60 s proxy timeouts)
        timeout  => $o{timeout} // 150,
        mix      => $o{mix} // { %DEFAULT_MIX },
        sizes    => $o{sizes} // [ 1 << 10, 64 << 10 ],
        big      => $o{big} // 0,           # share of 1-2 MiB files
        tag      => $o{tag} // 'load',
        geti     => $o{geti},
        # the nginx.conf whose locations serve the API (for the OpenAPI
        # check of each answer: Modelreg::OpenAPI)
        conf     => $o{conf} // 'location / { modelreg; }',
        dir      => tempdir('modelreg-load-XXXXXX', TMPDIR => 1,
                            CLEANUP => 1),
        pids     => [],
    }, $class;
    $self->{started} = time;

    # random bytes for the files: one pool, read at random offsets
    open(my $r, '<', '/dev/urandom') or die "/dev/urandom: $!";
    read($r, $self->{pool}, 2 << 20) == 2 << 20 or die "/dev/urandom: $!";
    close $r;

    # once, before the clients fork: they share it
    Modelreg::OpenAPI::schema();

    for my $n (1 .. $self->{clients}) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $rc = eval { $self->client($n); 1 } ? 0 : 1;
            warn "load client $n: $@" if $rc;
            _exit($rc);
        }
        push @{ $self->{pids} }, $pid;
    }
    return $self;
}

sub dir { $_[0]{dir} }

# returns once every client is sending requests (bounded)
sub running {
    my ($self) = @_;
    my $deadline = time + 60;
    while (time < $deadline) {
        my @ready = glob "$self->{dir}/ready-*";
        if (@ready >= $self->{clients}) {
            $self->{ready_at} //= time;
            return $self;
        }
        sleep 0.05;
    }
    die "load: the clients did not start\n";
}

# waits for every client (bounded), returns every record; a request that a
# client still waited for when it had to be killed is one with no answer
sub wait {
    my ($self) = @_;
    $self->running;
    my $deadline = $self->{ready_at} + $self->{seconds} + $self->{timeout}
                   + 30;
    my %left = map { $_ => 1 } @{ $self->{pids} };
    while (%left && time < $deadline) {
        for my $pid (keys %left) {
            delete $left{$pid} if waitpid($pid, WNOHANG) == $pid;
        }
        sleep 0.1 if %left;
    }
    for my $pid (keys %left) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    $self->{killed} = scalar keys %left;
    $self->{pids} = [];

    my (@recs, %pending);
    for my $f (glob "$self->{dir}/records-*") {
        open(my $fh, '<', $f) or die "$f: $!";
        for my $r (map { $JSON->decode($_) } <$fh>) {
            my $k = "$r->{client} $r->{seq}";
            if ($r->{pending}) {
                $pending{$k} = $r;
                next;
            }
            delete $pending{$k};
            push @recs, $r;
        }
    }
    for my $r (values %pending) {
        delete $r->{pending};
        push @recs, { %$r, t1 => time, status => 599,
                      error => 'no answer before the load\'s deadline' };
    }
    return sort { $a->{t0} <=> $b->{t0} } @recs;
}

# how many clients had to be killed at the end (must be 0)
sub killed { $_[0]{killed} // 0 }

sub DESTROY {
    my ($self) = @_;
    kill 'KILL', @{ $self->{pids} } if @{ $self->{pids} || [] };
}

# ---- classes -----------------------------------------------------------

# "ok", "documented", "aborted" or "other", and why (for "other")
sub classify {
    my ($r) = @_;
    return ('aborted') if $r->{op} =~ /^abort_/;
    return ('other', "bytes differ: $r->{error}") if $r->{error}
                                                    && $r->{status} == 200;
    my $doc = $DOCUMENTED{ $r->{op} } or return ('other', 'unknown op');
    return ('other', "no answer: " . ($r->{error} // ''))
        if $r->{status} == 599;
    return ('other', "undocumented status") unless exists $doc->{ $r->{status} };
    return ('other', "not as the OpenAPI document: @{ $r->{openapi} }")
        if $r->{openapi};
    my $details = $doc->{ $r->{status} } or return ('ok');
    my $d = $r->{detail} // '';
    for my $want (@$details) {
        return ('documented') if ref $want ? $d =~ $want : $d eq $want;
    }
    return ('other', 'undocumented detail');
}

# { requests, ok, documented, aborted, other, others => [records],
#   checked, check_s (answers checked against the OpenAPI document, the
#   seconds that took) }
sub summary {
    my ($recs) = @_;
    my %s = (requests => 0, ok => 0, documented => 0, aborted => 0,
             other => 0, others => [], checked => 0, check_s => 0);
    for my $r (@$recs) {
        if (defined $r->{check_s}) {
            $s{checked}++;
            $s{check_s} += $r->{check_s};
        }
        my ($class, $why) = classify($r);
        $s{requests}++;
        $s{$class}++;
        if ($class eq 'other') {
            $r->{why} = $why;
            push @{ $s{others} }, $r;
        }
    }
    return \%s;
}

# one line about a record, for diagnostics
sub describe {
    my ($r) = @_;
    return sprintf('%.3f+%.3fs %s %s %s -> %s %s%s', $r->{t0}, $r->{t1} - $r->{t0},
                   $r->{op}, $r->{method}, $r->{path}, $r->{status},
                   $r->{detail} // $r->{error} // '',
                   $r->{why} ? " ($r->{why})" : '');
}

# how many of each answer: ["op status detail", n], most first
sub breakdown {
    my ($recs) = @_;
    my %n;
    for (@$recs) {
        (my $d = $_->{detail} // '') =~ s/'[^']*'/'...'/g;
        $n{ join ' ', $_->{op}, $_->{status}, $d }++;
    }
    return map { [ $_, $n{$_} ] } sort { $n{$b} <=> $n{$a} } keys %n;
}

# ---- what the registry holds afterwards ---------------------------------

# The checks after a load on harness $h, once every request was answered:
# a list of [ok, what, diagnostics...]:
# - every model answered 201 (and not answered 204 to a DELETE since)
#   downloads with the exact bytes sent; one answered 204 is gone (a
#   DELETE answered 503 or not at all may have committed: either);
# - no spool or temp file is left;
# - the clean-up queue drains; then no row lacks its object and no
#   object lacks its row (and, on S3, no part is left).
#
# (hurry => 1: the keys of registrations under way are due now, for
# those of a worker that was killed; only once nothing is under way)
sub check_data {
    my ($h, $recs, %o) = @_;
    my @results;
    my $check = sub { push @results, [ @_ ] };

    # what each id should be now: its 201s and DELETEs in answer order
    my (%state, %sha);
    for my $r (sort { $a->{t1} <=> $b->{t1} } @$recs) {
        my $id = $r->{id} // next;
        if ($r->{status} == 201) {
            $state{$id} = 'present';
            $sha{$id} = $r->{sha256};
        } elsif ($r->{op} eq 'delete' && $r->{status} == 204) {
            $state{$id} = 'gone' if $state{$id};
        } elsif ($r->{op} eq 'delete' && $r->{status} =~ /^(503|599)$/) {
            $state{$id} = 'unknown' if $state{$id};   # it may have committed
        }
    }
    # an import and a DELETE of one Geti id that overlap: either
    my %span;
    for my $r (@$recs) {
        next unless $r->{id} && $state{ $r->{id} };
        push @{ $span{ $r->{id} } }, $r;
    }
    for my $id (keys %span) {
        my @rs = @{ $span{$id} };
        next unless @rs > 1;
        for my $a (@rs) {
            for my $b (@rs) {
                $state{$id} = 'unknown'
                    if $a != $b && $a->{t0} < $b->{t1} && $b->{t0} < $a->{t1};
            }
        }
    }

    my (@lost, @stale);
    for my $id (sort keys %state) {
        if ($state{$id} eq 'gone') {
            my $res = $h->get("/models/$id");
            push @stale, "$id: $res->{status}" unless $res->{status} == 404;
            next;
        }
        my $res = $h->get("/models/$id/files");
        next if $state{$id} eq 'unknown' && $res->{status} == 404;
        push @lost, "$id: $res->{status} $res->{content}"
            unless $res->{status} == 200
                   && sha256_hex($res->{content}) eq $sha{$id};
    }
    my $created = grep { $_ eq 'present' } values %state;
    $check->(!@lost, "every 201's model downloads with its bytes"
             . " ($created)", @lost);
    $check->(!@stale, 'every model answered 204 is gone', @stale);

    # no spool or temp file left
    my $left = sub { my @f = ($h->temp_files, glob($h->dir . '/tmp/*/*'));
                     return @f };
    my $clean = $h->wait_for(sub { my @f = $left->(); !@f }, 30);
    $check->($clean, 'no spool or temp file left', join ' ', $left->());

    # rows and objects, once the clean-up queue is empty; removals that
    # failed while a dependency was away are due now (not after their
    # back-off), those of unknown registrations keep their grace
    $h->psql('UPDATE storage_gc SET next_attempt_at = now()'
             . ' WHERE attempts > 0'
             . ($o{hurry} ? " OR reason = 'model.create under way'" : ''));
    my $drained = $h->wait_for(sub {
        $h->psql('SELECT count(*) FROM storage_gc') == 0
        && !$h->pending_uploads }, 60);
    $check->($drained, 'the clean-up queue drains',
             $h->psql('SELECT storage_key, attempts, last_error,'
                      . ' next_attempt_at - now() FROM storage_gc'));
    my %rows = map { $_ => 1 }
               split /\n/, $h->psql('SELECT storage_key FROM models');
    my %objects = map { $_ => 1 } $h->objects;
    my @no_object = grep { !$objects{$_} } sort keys %rows;
    my @no_row = grep { !$rows{$_} } sort keys %objects;
    $check->(!@no_object, 'no row lacks its object', @no_object);
    $check->(!@no_row, 'no object lacks its row', @no_row);

    return @results;
}

# ---- a client ----------------------------------------------------------

sub client {
    my ($self, $n) = @_;
    srand($$ ^ int(time * 1000));
    $self->{n} = $n;
    $self->{seq} = 0;
    $self->{http} = HTTP::Tiny->new(timeout => $self->{timeout},
                                    keep_alive => 0);
    open($self->{out}, '>', "$self->{dir}/records-$n") or die $!;
    $self->{out}->autoflush(1);
    $SIG{PIPE} = 'IGNORE';

    my @ops;
    for my $op (sort keys %{ $self->{mix} }) {
        push @ops, ($op) x $self->{mix}{$op};
    }
    Modelreg::Harness::write_file("$self->{dir}/ready-$n", '');
    my $end = time + $self->{seconds};
    for (1 .. $self->{max}) {
        last if time >= $end;
        my $op = $ops[rand @ops];
        $self->$op();
    }
    close $self->{out};
}

sub url { "http://127.0.0.1:$_[0]{port}$_[1]" }

sub record {
    my ($self, $r) = @_;
    $r->{client} = $self->{n};
    $r->{seq} //= ++$self->{req};
    print { $self->{out} } $JSON->encode($r), "\n";
}

# one request through HTTP::Tiny; returns the record (and the response)
sub call {
    my ($self, $op, $method, $path, $opt) = @_;
    my $t0 = time;
    my $seq = ++$self->{req};
    # (what is under way, in case the client is killed waiting for it)
    $self->record({ op => $op, method => $method, path => $path, t0 => $t0,
                    seq => $seq, pending => 1 });
    my $res = $self->{http}->request($method, $self->url($path), $opt || {});
    my $r = { op => $op, method => $method, path => $path, t0 => $t0,
              t1 => time, status => $res->{status}, seq => $seq };
    if ($res->{status} == 599) {
        ($r->{error} = $res->{content} // '') =~ s/\s+$//;
    } elsif (($res->{headers}{'content-type'} // '') eq 'application/json'
             && $res->{status} >= 400) {
        my $j = eval { $JSON->decode($res->{content}) };
        $r->{detail} = ref $j eq 'HASH' ? $j->{detail} : $res->{content};
    } elsif ($res->{status} >= 400) {
        $r->{detail} = "(not JSON) " . substr($res->{content} // '', 0, 200);
    }
    if ($res->{status} != 599) {
        my $c0 = time;
        my ($e) = Modelreg::OpenAPI::check($self->{conf}, $method, $path,
                                           $res);
        $r->{openapi} = $e if @$e;
        $r->{check_s} = time - $c0;
    }
    return ($r, $res);
}

# the models registered so far, by every client: [id, sha256, name]
sub known {
    my ($self) = @_;
    open(my $fh, '<', "$self->{dir}/ids") or return ();
    flock($fh, LOCK_SH);
    my @ids = map { chomp; [ split / / ] } <$fh>;
    close $fh;
    return @ids;
}

sub share {
    my ($self, @fields) = @_;
    open(my $fh, '>>', "$self->{dir}/ids") or die $!;
    flock($fh, LOCK_EX);
    print $fh "@fields\n";
    close $fh;
}

sub pick {
    my ($self) = @_;
    my @k = $self->known;
    return @k ? @{ $k[rand @k] } : ();
}

sub file_bytes {
    my ($self) = @_;
    my ($lo, $hi) = @{ $self->{sizes} };
    my $size = $lo + int rand($hi - $lo);
    $size = (1 << 20) + int rand(1 << 20) if rand() < $self->{big};
    my $off = int rand(length($self->{pool}) - $size);
    return Modelreg::Harness::zip_of('model.bin',
                                     substr($self->{pool}, $off, $size));
}

sub register_body {
    my ($self, $name, $zip) = @_;
    return Modelreg::Harness::multipart(
        { name => 'file', filename => 'model.zip', type => 'application/zip',
          value => $zip },
        { name => 'name', value => $name }, { name => 'version', value => '1' });
}

sub register {
    my ($self) = @_;
    my $name;
    if ($self->{names} && @{ $self->{names} } && rand() < 0.1) {
        $name = $self->{names}[rand @{ $self->{names} }];    # a 409
    } else {
        $name = "$self->{tag}-$self->{n}-" . ++$self->{seq};
    }
    my $zip = $self->file_bytes;
    my ($body, $ct) = $self->register_body($name, $zip);
    my ($r, $res) = $self->call('register', 'POST', '/models',
                                { content => $body,
                                  headers => { 'Content-Type' => $ct } });
    if ($r->{status} == 201) {
        $r->{id} = $res->{content};
        $r->{sha256} = sha256_hex($zip);
        $r->{name} = $name;
        push @{ $self->{names} }, $name;
        $self->share($r->{id}, $r->{sha256}, $name);
    }
    $self->record($r);
}

sub get {
    my ($self) = @_;
    my ($id) = $self->pick or return $self->register;
    my ($r) = $self->call('get', 'GET', "/models/$id");
    $self->record($r);
}

sub list {
    my ($self) = @_;
    my $c = 1 + int rand $self->{clients};
    my ($r) = $self->call('list', 'GET',
                          "/models?name=$self->{tag}-$c-&limit=20");
    $self->record($r);
}

sub download {
    my ($self) = @_;
    my ($id, $sha) = $self->pick or return $self->register;
    my ($r, $res) = $self->call('download', 'GET', "/models/$id/files");
    if ($r->{status} == 200 && sha256_hex($res->{content}) ne $sha) {
        $r->{error} = length($res->{content}) . ' bytes, sha256 '
                      . sha256_hex($res->{content}) . " not $sha";
    }
    $self->record($r);
}

sub update {
    my ($self) = @_;
    my ($id) = $self->pick or return $self->register;
    my $form = 'score=' . rand() . '&category=load';
    if (rand() < 0.2) {
        my (undef, undef, $other) = $self->pick;
        $form = "name=$other&version=1" if $other;     # maybe a 409
    }
    my ($r) = $self->call('update', 'PUT', "/models/$id",
                          { content => $form, headers => {
                            'Content-Type' =>
                                'application/x-www-form-urlencoded' } });
    $self->record($r);
}

sub delete {
    my ($self) = @_;
    my ($id) = $self->pick or return $self->register;
    my ($r) = $self->call('delete', 'DELETE', "/models/$id");
    $r->{id} = $id;
    $self->record($r);
}

# ---- Geti --------------------------------------------------------------

sub geti_projects {
    my ($self) = @_;
    my ($r) = $self->call('geti_projects', 'GET', '/projects');
    $self->record($r);
}

sub geti_project {
    my ($self) = @_;
    my $p = $self->{geti}{projects};
    my ($r) = $self->call('geti_project', 'GET', '/projects/' . $p->[rand @$p]);
    $self->record($r);
}

sub geti_import {
    my ($self) = @_;
    my $ms = $self->{geti}{models};
    my $m = $ms->[rand @$ms];
    my ($r, $res) = $self->call('geti_import', 'POST',
        "/projects/$m->{project}/geti-models/download",
        { content => $JSON->encode({ models => [ { id => $m->{id},
                                                   group_id => $m->{group} }
                                               ] }),
          headers => { 'Content-Type' => 'application/json' } });
    if ($r->{status} == 201) {
        $r->{id} = $m->{id};
        $r->{sha256} = $m->{sha256};
        $self->share($m->{id}, $m->{sha256}, 'geti');
    }
    $self->record($r);
}

# ---- clients that go away on purpose -----------------------------------

sub socket_to {
    my ($self) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $self->{port}, Proto => 'tcp',
                                 Timeout => 5);
}

# headers and half of a registration's body, then a reset
sub abort_upload {
    my ($self) = @_;
    my $name = "$self->{tag}-$self->{n}-abort-" . ++$self->{seq};
    my $zip = $self->file_bytes;
    $zip .= substr($self->{pool}, 0, 256 << 10) if length $zip < 256 << 10;
    my ($body, $ct) = $self->register_body($name, $zip);
    my $t0 = time;
    my $s = $self->socket_to or return;
    syswrite($s, "POST /models HTTP/1.1\r\nHost: x\r\nContent-Type: $ct\r\n"
                 . "Content-Length: " . length($body) . "\r\n\r\n"
                 . substr($body, 0, length($body) / 2));
    sleep 0.05 + rand 0.2;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));    # a reset
    close $s;
    $self->record({ op => 'abort_upload', method => 'POST', path => '/models',
                    t0 => $t0, t1 => time, status => 0, name => $name });
}

# a download's headers and first bytes, then a close
sub abort_download {
    my ($self) = @_;
    my ($id) = $self->pick or return $self->register;
    my $t0 = time;
    my $s = IO::Socket::INET->new(Proto => 'tcp') or return;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', 4096));
    $s->connect(Socket::pack_sockaddr_in($self->{port},
                                         Socket::inet_aton('127.0.0.1')))
        or return;
    syswrite($s, "GET /models/$id/files HTTP/1.1\r\nHost: x\r\n\r\n");
    my $got = '';
    my $sel = IO::Select->new($s);
    while (length $got < 1000 && $sel->can_read(5)) {
        sysread($s, $got, 1000, length $got) or last;
    }
    close $s;
    $self->record({ op => 'abort_download', method => 'GET',
                    path => "/models/$id/files", t0 => $t0, t1 => time,
                    status => 0 });
}

1;
