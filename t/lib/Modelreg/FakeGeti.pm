package Modelreg::FakeGeti;

# A fake Intel Geti for the tests: the REST API modelreg's client speaks
# (issue 5), served from fixtures on a loopback port, one forked child per
# request so a slow endpoint never holds the others.
#
#   my $g = Modelreg::FakeGeti->start(token => 'secret-token');
#   $g->url, $g->org, $g->workspace ... $g->stop
#
# Fixtures: five projects (the fake pages by two, so a client must follow
# "skip" until project_counts), model groups, optimized models in OpenVINO
# and ONNX, a project whose calls are slow, a 401 for a wrong token.
#
# Options: projects => N (more projects), optimized => N (OpenVINO
# optimized models per model, 2 by default), page => N (the page size),
# delay => S (every call takes S seconds; ->slow(S) changes it later),
# slow => S (the slow project's),
# export_ms, flaky (the first N asks of each model_groups path: 503).
#
# $g->down stops serving (its port refuses calls), $g->up serves again.
#
# $g->stats: { now, peak, total } of the requests it served (in flight at
# once now, the most ever in flight at once, all); $g->reset_stats.
# $g->requests: "METHOD target" of each request it was sent, in order.
#
# $g->hostile({ kind => K, ... }) makes every answer of kind K (listing,
# project, groups, model, prepare, state; "json": any JSON answer) hostile
# until $g->hostile(undef):
#   path => 'projects.*.id', value => V   the value at path becomes V
#                                         (* is every element of an array)
#   path => ..., delete => 1              the key is gone
#   path => ..., huge => N                a string of N bytes
#   whole => 'truncated'                  the JSON cut in half
#   whole => 'short'                      fewer bytes than Content-Length
#   whole => 'null' | 'array'             the answer is null, or []

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(sleep time);

my $JSON = JSON::PP->new->utf8->canonical;
my %body_of;

sub start {
    my ($class, %opt) = @_;
    my $self = bless {
        token     => $opt{token} // 'geti-token',
        org       => 'org-0001',
        workspace => 'ws-0001',
        page      => 2,
        slow      => $opt{slow} // 3,
        export_ms => $opt{export_ms} // 300,
        flaky     => $opt{flaky} // 0,
        delay     => $opt{delay} // 0,
        nprojects => $opt{projects} // 5,
        noptimized => $opt{optimized} // 2,
    }, $class;
    $self->{page} = $opt{page} if $opt{page};
    require File::Temp;
    $self->{state} = File::Temp::tempdir(CLEANUP => 1);

    $self->{fixtures} = fixtures($self->{nprojects}, $self->{noptimized});
    $self->{port} = 0;
    return $self->up;
}

# (again) serving on its port, after down()
sub up {
    my ($self) = @_;
    return $self if $self->{pid};
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $self->{port},
                                       Listen => 64, ReuseAddr => 1,
                                       Proto => 'tcp')
        or die "fake geti: $!";
    $self->{port} = $listen->sockport;

    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        $self->serve($listen);
        _exit(0);
    }
    close $listen;
    $self->{pid} = $pid;
    return $self;
}

# Geti goes away: nothing listens on its port (calls under way are cut)
sub down {
    my ($self) = @_;
    local $?;
    my $pid = delete $self->{pid} or return;
    require Modelreg::Harness;
    # stopped first, so that it forks no child after they are counted
    kill 'STOP', $pid;
    kill 'KILL', $pid, Modelreg::Harness::children_of($pid);
    waitpid($pid, 0);
}

# every call takes S seconds more from now on (0: none)
sub slow {
    my ($self, $s) = @_;
    open(my $fh, '>', "$self->{state}/delay") or die "fake geti: $!";
    print $fh $s;
    close $fh;
}

sub url { "http://127.0.0.1:$_[0]{port}" }
sub fixture { $_[0]{fixtures}[$_[1] - 1] }
sub port { $_[0]{port} }
sub org { $_[0]{org} }
sub workspace { $_[0]{workspace} }
sub token { $_[0]{token} }

sub stop {
    my ($self) = @_;
    local $?;           # (from END, waitpid would become the exit code)
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

# ---- what it served, and how it answers --------------------------------

sub stats {
    my ($self) = @_;
    my $fh = $self->lock_stats;
    my ($now, $peak, $total) = split ' ', (<$fh> // '0 0 0');
    close $fh;
    return { now => $now // 0, peak => $peak // 0, total => $total // 0 };
}

sub reset_stats {
    my ($self) = @_;
    my $fh = $self->lock_stats;
    my ($now) = split ' ', (<$fh> // '0');
    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh join(' ', $now // 0, $now // 0, 0), "\n";
    close $fh;
}

# one request more ($d = 1) or less ($d = -1) in flight
sub count {
    my ($self, $d) = @_;
    my $fh = $self->lock_stats;
    my ($now, $peak, $total) = split ' ', (<$fh> // '0 0 0');
    $now = ($now // 0) + $d;
    $peak = $now if $now > ($peak // 0);
    $total = ($total // 0) + ($d > 0);
    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh "$now $peak $total\n";
    close $fh;
}

sub lock_stats {
    my ($self) = @_;
    require Fcntl;
    my $f = "$self->{state}/stats";
    open(my $fh, '+>>', $f) or die "fake geti: $f: $!";
    flock($fh, Fcntl::LOCK_EX()) or die "fake geti: flock: $!";
    seek $fh, 0, 0;
    return $fh;
}

# "METHOD target" of every request it was sent, in order
sub requests {
    my ($self) = @_;
    open(my $fh, '<', "$self->{state}/requests") or return ();
    chomp(my @r = <$fh>);
    return @r;
}

sub hostile {
    my ($self, $case) = @_;
    my $f = "$self->{state}/hostile";
    unless ($case) {
        unlink $f;
        return;
    }
    open(my $fh, '>', "$f.tmp") or die "fake geti: $f: $!";
    print $fh JSON::PP->new->utf8->allow_nonref->encode($case);
    close $fh;
    rename "$f.tmp", $f or die "fake geti: $f: $!";
}

sub hostile_case {
    my ($self) = @_;
    open(my $fh, '<', "$self->{state}/hostile") or return undef;
    local $/;
    my $text = <$fh>;
    return JSON::PP->new->utf8->allow_nonref->decode($text);
}

# the answer of kind $kind, made hostile if it is asked to be
sub spoil {
    my ($self, $kind, $status, $data) = @_;
    my $case = $self->hostile_case;
    return ($status, $data) unless $case && ref $data && $status == 200
        && ($case->{kind} eq $kind || $case->{kind} eq 'json');

    my $w = $case->{whole} // '';
    return ($status, 'null') if $w eq 'null';
    return ($status, '[]') if $w eq 'array';
    if ($w eq 'truncated') {
        my $text = $JSON->encode($data);
        return ($status, substr($text, 0, int(length($text) / 2)));
    }
    if ($w eq 'short') {
        $self->{short} = 1;
        return ($status, $data);
    }

    $data = $JSON->decode($JSON->encode($data));    # a copy
    my $value = $case->{huge} ? 'x' x $case->{huge} : $case->{value};
    my @keys = split /\./, $case->{path};
    my $last = pop @keys;
    my @at = ($data);
    for my $k (@keys) {
        @at = map { $k eq '*' ? (ref $_ eq 'ARRAY' ? @$_ : ())
                              : (ref $_ eq 'HASH' ? ($_->{$k}) : ()) } @at;
        @at = grep { ref } @at;
    }
    for my $o (@at) {
        if (ref $o eq 'ARRAY') {
            my @i = $last eq '*' ? (0 .. $#$o) : ($last);
            $o->[$_] = $value for @i;
        } elsif ($case->{delete}) {
            delete $o->{$last};
        } else {
            $o->{$last} = $value;
        }
    }
    return ($status, $data);
}

# ---- fixtures ----------------------------------------------------------

sub fixtures {
    my ($count, $k) = @_;
    $k //= 2;
    my @projects;
    for my $n (1 .. $count // 5) {
        my $pid = sprintf('6650a1b2c3d4e5f6a7b8c9%02d', $n);
        my @tasks = $n == 3 ? ('dataset', 'detection', 'classification')
                  : $n == 4 ? ('dataset', 'rotated_detection')
                  : ('dataset', 'detection');
        my $gid = sprintf('7750a1b2c3d4e5f6a7b8c9%02d', $n);
        my $mid = sprintf('8850a1b2c3d4e5f6a7b8c9%02d', $n);
        push @projects, {
            id => $pid,
            name => "Project $n",
            creation_time => "2024-0$n-1${n}T10:2$n:00.000000+00:00",
            pipeline => { tasks => [ map { { task_type => $_ } } @tasks ] },
            groups => [ {
                id => $gid,
                name => "YOLOX-$n",
                models => [ {
                    id => $mid,
                    name => "YOLOX-$n",
                    version => 1,
                    architecture => 'YOLOX',
                    performance => { score => 0.5 + $n / 100 },
                    labels => [ { name => 'cat' }, { name => 'dog' } ],
                    optimized_models => [
                        (map { optimized($n, $_, 'OpenVINO',
                                         ($_ % 2 ? 'FP16' : 'INT8')
                                         . ($_ > 2 ? " $_" : '')) } 1 .. $k),
                        optimized($n, $k + 1, 'ONNX', 'FP32'),
                    ],
                } ],
            } ],
        };
    }
    $projects[4]{name} = 'Slow project';
    $projects[4]{slow} = 1;
    return \@projects;
}

sub optimized {
    my ($n, $k, $format, $precision) = @_;
    return {
        id => sprintf('9950a1b2c3d4e5f6a7b8c%d%02d', $k, $n),
        name => "YOLOX-$n $format $precision",
        model_format => $format,
        precision => [ (split / /, $precision)[0] ],
        target_device => 'CPU',
        target_device_type => 'cpu',
        size => 1000 * $k,
        creation_date => "2024-0$n-2${k}T08:00:00.000000+00:00",
        version => 1,
        optimization_capabilities => {
            is_nncf_quantized => $k == 2 ? JSON::PP::true : JSON::PP::false },
    };
}

# ---- HTTP --------------------------------------------------------------

sub serve {
    my ($self, $listen) = @_;
    while (1) {
        my $c = $listen->accept or next;
        my $pid = fork;
        if (defined $pid && $pid == 0) {
            close $listen;
            eval { $self->handle($c) };
            close $c;
            _exit(0);
        }
        close $c;
    }
}

sub handle {
    my ($self, $c) = @_;
    local $SIG{PIPE} = 'IGNORE';    # (a client that gave up on an answer)
    $self->count(1);
    $self->{counted} = 1;
    eval { $self->answer($c) };
    $self->count(-1) if $self->{counted};
}

# Counted out before the answer is written: a client that has the answer
# may send its next call at once, and that call must not find this one
# still counted (it made 9 of 8 once).  So "in flight" is a part of the
# client's own wait, never more.
sub counted_out {
    my ($self) = @_;
    $self->count(-1) if delete $self->{counted};
}

sub answer {
    my ($self, $c) = @_;
    local $/ = "\r\n";
    my $line = <$c> // return;
    my ($method, $target) = $line =~ m{^(\S+) (\S+) HTTP/1\.[01]} or return;
    if (open(my $log, '>>', "$self->{state}/requests")) {
        print $log "$method $target\n";
        close $log;
    }
    my %h;
    while (my $l = <$c>) {
        last if $l eq "\r\n";
        $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*?)\r\n$/;
    }
    my $body = '';
    read($c, $body, $h{'content-length'}) if $h{'content-length'};
    $body_of{$$} = $body;

    my ($path, $query) = split /\?/, $target, 2;
    my %q = map { my ($k, $v) = split /=/, $_, 2; ($k => $v // '') }
            split /&/, $query // '';

    my $delay = $self->{delay};
    if (open(my $fh, '<', "$self->{state}/delay")) {
        $delay = <$fh> // $delay;
        close $fh;
    }
    sleep $delay if $delay;
    my ($status, $data, $type) = $self->route($method, $path, \%q, \%h);
    my $out = ref $data ? $JSON->encode($data) : $data;
    $type //= 'application/json';
    my $len = length($out) + ($self->{short} ? 1000 : 0);
    $self->counted_out;
    print $c "HTTP/1.1 $status X\r\nContent-Type: $type\r\n"
           . "Content-Length: $len\r\nConnection: close\r\n\r\n"
           . $out;
}

sub route {
    my ($self, $method, $path, $q, $h) = @_;

    return (401, { error_code => 'unauthorized', message => 'bad key' })
        unless ($h->{'x-api-key'} // '') eq $self->{token};

    # flaky: the first N asks of each model_groups path fail with a 503
    if ($self->{flaky} && $path =~ m{/model_groups$}) {
        (my $f = $path) =~ s{\W}{_}g;
        $f = "$self->{state}/$f";
        my $n = -s $f || 0;
        if (open(my $fh, '>>', $f)) {
            print $fh 'x';
            close $fh;
        }
        return (503, { message => 'try again' }) if $n < $self->{flaky};
    }

    my $base = "/api/v1/organizations/$self->{org}/workspaces/"
             . "$self->{workspace}";
    return (404, { message => 'no such workspace' })
        unless $path =~ s/^\Q$base\E//;

    my $projects = $self->{fixtures};

    if ($method eq 'GET' && $path eq '/projects') {
        my $limit = $q->{limit} || 100;
        $limit = $self->{page} if $limit > $self->{page};
        my $skip = $q->{skip} || 0;
        my $last = $skip + $limit - 1;
        $last = $#$projects if $last > $#$projects;
        my @page = @$projects[$skip .. $last];
        return $self->spoil('listing', 200,
                            { projects => [ map { project($_) } @page ],
                              project_counts => scalar @$projects });
    }

    if ($path =~ m{^/projects/(\w+)(/.*)?$}) {
        my ($pid, $rest) = ($1, $2 // '');
        my ($p) = grep { $_->{id} eq $pid } @$projects;
        return (404, { message => 'project not found' }) unless $p;
        sleep $self->{slow} if $p->{slow};

        return $self->spoil('project', 200, project($p))
            if $rest eq '' && $method eq 'GET';

        if ($rest eq '/model_groups' && $method eq 'GET') {
            return $self->spoil('groups', 200, { model_groups => [ map {
                { id => $_->{id}, name => $_->{name},
                  models => [ map { { id => $_->{id}, name => $_->{name},
                                      version => $_->{version} } }
                              @{ $_->{models} } ] }
            } @{ $p->{groups} } ] });
        }

        # exports: PREPARING, then DONE (or FAILED, or never, by model)
        if ($rest eq '/code_deployments:prepare' && $method eq 'POST') {
            my $req = eval { $JSON->decode($body_of{$$} // '') } || {};
            my $mid = $req->{models}[0]{model_id} // '';
            return (400, { message => 'no model' }) unless $mid =~ /^\w+$/;
            my $did = $mid . 'x' . int(time * 1000);
            return $self->spoil('prepare', 200,
                                { id => $did, state => 'PREPARING' });
        }
        if ($rest =~ m{^/code_deployments/(\w+)x(\d+)(/download)?$}) {
            my ($mid, $t0, $dl) = ($1, $2, $3);
            my $ready = (time * 1000 - $t0) >= $self->{export_ms};
            my $state = !$ready ? 'PREPARING'
                      : $mid =~ /^9950a1b2c3d4e5f6a7b8c202$/ ? 'FAILED'
                      : $mid =~ /^9950a1b2c3d4e5f6a7b8c204$/ ? 'PREPARING'
                      : 'DONE';
            return $self->spoil('state', 200,
                                { id => "${mid}x$t0", state => $state })
                unless $dl;
            return (409, { message => 'not ready' }) unless $state eq 'DONE';
            return (200, export_zip($p), 'application/zip');
        }

        if ($rest =~ m{^/model_groups/(\w+)/models/(\w+)$}) {
            my ($g) = grep { $_->{id} eq $1 } @{ $p->{groups} };
            my ($m) = $g ? grep { $_->{id} eq $2 } @{ $g->{models} } : ();
            return (404, { message => 'model not found' }) unless $m;
            return $self->spoil('model', 200, $m);
        }
    }

    return (404, { message => 'not found' });
}

# the export of a project: a real ZIP, deployment/<Task>/model/...
sub export_zip {
    my ($p) = @_;
    require IO::Compress::Zip;
    my $task = ucfirst $p->{pipeline}{tasks}[1]{task_type};
    my $zip;
    # (fixed times: the same bytes every time, for the tests to compare)
    my %o = (Time => 1700000000, Minimal => 1);
    my $z = IO::Compress::Zip->new(\$zip, %o,
                                   Name => "deployment/$task/model/model.xml")
        or die;
    $z->print("<net name=\"$p->{name}\"/>");
    $z->newStream(%o, Name => "deployment/$task/model/model.bin");
    $z->print(join '', map { chr(($_ * 31) % 256) } 1 .. 4096);
    $z->close;
    return $zip;
}

sub project {
    my ($p) = @_;
    return { id => $p->{id}, name => $p->{name},
             creation_time => $p->{creation_time},
             pipeline => $p->{pipeline} };
}

1;
