package Peer;
# The bench's peer (app.py beside this file) on a harness's PostgreSQL:
# `python3 -m uvicorn --workers 2` on a free loopback port, its files
# under the stack's directory; stopped when the object goes or the
# script ends, even on die.
#
#   my $peer = Peer->start($harness, workers => 2, pool => 16);
#   $peer->url('/models/x');  $peer->worker_pids;  $peer->stop;
use strict;
use warnings;
use File::Basename qw(dirname);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);
use HTTP::Tiny;
use Modelreg::Harness;

my $APP_DIR = dirname(__FILE__);
# Debian's interpreter, where python3-fastapi & co. are installed (a
# python3 earlier on PATH, e.g. pyenv's, does not see them)
my $PYTHON = '/usr/bin/python3';

my @LIVE;

sub start {
    my ($class, $h, %o) = @_;
    my $self = bless { port => Modelreg::Harness::free_port(),
                       store => $h->dir . '/peer-objects',
                       log => $h->dir . '/peer.log' }, $class;
    my $workers = $o{workers} // 2;
    my $dsn = 'postgresql://modelreg@127.0.0.1:' . $h->pg_port
            . '/modelreg';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', $self->{log} or die "$self->{log}: $!";
        open STDERR, '>&', \*STDOUT or die $!;
        $ENV{PEER_DSN} = $dsn;
        $ENV{PEER_STORE} = $self->{store};
        $ENV{PEER_POOL} = $o{pool} // 16;
        $ENV{PGPASSWORD} = $h->{db_password} if defined $h->{db_password};
        exec $PYTHON, '-m', 'uvicorn', 'app:app', '--app-dir', $APP_DIR,
             '--host', '127.0.0.1', '--port', $self->{port},
             '--workers', $workers, '--loop', 'uvloop', '--http',
             'httptools', '--no-access-log', '--log-level', 'warning';
        die "exec $PYTHON: $!";
    }
    $self->{pid} = $pid;
    push @LIVE, $self;
    weaken($LIVE[-1]);

    # up: every worker started and answering (each opens its pool first)
    my $http = HTTP::Tiny->new(timeout => 5);
    my $end = time + 60;
    while (time < $end) {
        die "the peer exited:\n" . (Modelreg::Harness::slurp($self->{log})
                                    // '')
            if waitpid($pid, 1) == $pid;
        my $n = 0;
        for (1 .. 4 * $workers) {
            $n++ if ($http->get($self->url('/models?limit=1'))->{status}
                     // 0) == 200;
        }
        return $self if $n == 4 * $workers
                        && $self->worker_pids == $workers;
        sleep 0.2;
    }
    $self->stop;
    die "the peer did not answer in 60 s:\n"
        . (Modelreg::Harness::slurp($self->{log}) // '');
}

sub port { $_[0]{port} }
sub url { "http://127.0.0.1:$_[0]{port}$_[1]" }
sub store { $_[0]{store} }

# uvicorn's worker processes (multiprocessing's spawned children; not its
# resource tracker)
sub worker_pids {
    my ($self) = @_;
    return () unless $self->{pid};
    return grep {
        (Modelreg::Harness::slurp("/proc/$_/cmdline") // '') =~ /spawn_main/
    } Modelreg::Harness::children_of($self->{pid});
}

sub stop {
    my ($self) = @_;
    my @workers = $self->worker_pids;
    my $pid = delete $self->{pid} or return;
    local $?;
    kill 'TERM', $pid;
    for (1 .. 100) {
        return if waitpid($pid, 1) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $_ for @workers, $pid;
    waitpid $pid, 0;
}

sub DESTROY { $_[0]->stop }

# before the harness's own END (this module is loaded after it): the
# peer goes before its database
END { $_ && $_->stop for @LIVE }

1;
