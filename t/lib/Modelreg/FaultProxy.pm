package Modelreg::FaultProxy;

# A TCP relay on loopback that can lose bytes: they go both ways unchanged
# until one side sends something that contains the marker written with
# ->drop_on (the server's side) or ->drop_to (the client's side); then
# both sockets of that connection are closed and those bytes are never
# delivered.  Between the registry and PostgreSQL it makes "the statement
# committed but its result was lost" and "the statement was sent but
# never arrived", network faults, with the real server behind it.
#
#   my $p = Modelreg::FaultProxy->start($port, $pg_port);
#   $p->drop_on('lost-result-1');  ...  $p->stop;

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use File::Temp qw(tempfile);
use POSIX qw(_exit);

sub start {
    my ($class, $port, $to) = @_;

    my (undef, $ctl) = tempfile('modelreg-proxy-XXXXXX', TMPDIR => 1,
                                UNLINK => 1);
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $port, Listen => 64,
                                  ReuseAddr => 1)
        or die "proxy: listen $port: $!";

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        relay($l, $to, $ctl);
        _exit(0);
    }
    close $l;

    return bless { pid => $pid, ctl => $ctl }, $class;
}

sub drop_on { $_[0]->control("s:$_[1]") }
sub drop_to { $_[0]->control("c:$_[1]") }
sub pass    { $_[0]->control('') }

sub control {
    my ($self, $text) = @_;
    open(my $fh, '>', $self->{ctl}) or die $!;
    print $fh $text;
    close $fh;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub DESTROY { $_[0]->stop }

sub relay {
    my ($l, $to, $ctl) = @_;
    my $sel = IO::Select->new($l);
    my %peer;       # socket -> its other end
    my %server;     # sockets on the server's side

    # bounded: a test's proxy never outlives ten minutes
    my $end = time + 600;

    while (time < $end) {
        for my $s ($sel->can_read(1)) {
            if ($s == $l) {
                my $c = $l->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $to) or next;
                $peer{$c} = $u;
                $peer{$u} = $c;
                $server{$u} = 1;
                $sel->add($c, $u);
                next;
            }

            my $o = $peer{$s} or next;
            my $n = sysread($s, my $buf, 65536);

            my $marker = '';
            if (open(my $fh, '<', $ctl)) {
                local $/;
                my $c = <$fh> // '';
                my $side = $server{$s} ? 's:' : 'c:';
                $marker = substr($c, 2) if substr($c, 0, 2) eq $side;
            }

            if (!$n || ($marker ne '' && index($buf, $marker) >= 0)) {
                for my $x ($s, $o) {
                    $sel->remove($x);
                    delete $peer{$x};
                    delete $server{$x};
                    close $x;
                }
                next;
            }

            my $off = 0;
            while ($off < $n) {
                my $w = syswrite($o, $buf, $n - $off, $off);
                last unless $w;
                $off += $w;
            }
        }
    }
}

1;
