package Modelreg::FaultProxy;

# A TCP relay on loopback that can lose bytes: they go both ways unchanged
# until one side sends something that contains the marker written with
# ->drop_on (the server's side) or ->drop_to (the client's side); then
# both sockets of that connection are closed and those bytes are never
# delivered.  Between the registry and PostgreSQL it makes "the statement
# committed but its result was lost" and "the statement was sent but
# never arrived", network faults, with the real server behind it.
#
# ->drop_on_then_refuse does the same and then closes every connection
# and refuses new ones until ->pass: the server "goes away" at that moment.
#
# ->delay(MS) holds every piece of bytes MS milliseconds before passing it
# on, both ways, without holding the other connections: a slow peer (a
# slow network or store) until ->pass.
#
#   my $p = Modelreg::FaultProxy->listen;   # a port of its own, now
#   ... use $p->port ...
#   $p->start($pg_port);
#   $p->drop_on('lost-result-1');  ...  $p->stop;

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use File::Temp qw(tempfile);
use POSIX qw(_exit);
use Time::HiRes ();

# bound at once, so that no server started meanwhile can take its port
sub listen {
    my ($class) = @_;

    my (undef, $ctl) = tempfile('modelreg-proxy-XXXXXX', TMPDIR => 1,
                                UNLINK => 1);
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 64, ReuseAddr => 1)
        or die "proxy: listen: $!";

    return bless { l => $l, ctl => $ctl }, $class;
}

sub port { $_[0]{l}->sockport }

sub start {
    my ($self, $to) = @_;

    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        relay($self->{l}, $to, $self->{ctl});
        _exit(0);
    }
    close delete $self->{l};
    $self->{pid} = $pid;

    return $self;
}

sub drop_on { $_[0]->control("s:$_[1]") }
sub drop_to { $_[0]->control("c:$_[1]") }
sub pass    { $_[0]->control('') }
sub drop_on_then_refuse { $_[0]->control("S:$_[1]") }
sub delay   { $_[0]->control("d:$_[1]") }

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
    local $SIG{PIPE} = 'IGNORE';    # (a peer that went away meanwhile)
    my $sel = IO::Select->new($l);
    my %peer;       # socket -> its other end
    my %server;     # sockets on the server's side
    my @held;       # [due time, socket to write, bytes or undef: close]

    # bounded: a test's proxy never outlives ten minutes
    my $end = time + 600;

    while (time < $end) {
        my $wait = @held ? $held[0][0] - Time::HiRes::time() : 1;
        $wait = 0 if $wait < 0;
        my @ready = $sel->can_read($wait);

        # what was held is passed on (or closed) once it is due
        while (@held && $held[0][0] <= Time::HiRes::time()) {
            my ($due, $o, $buf) = @{ shift @held };
            if (!defined $buf) {
                close $o;
                next;
            }
            write_all($o, $buf);
        }

        for my $s (@ready) {
            my $c0 = '';
            if (open(my $fh, '<', $ctl)) {
                local $/;
                $c0 = <$fh> // '';
            }
            my ($delay) = $c0 =~ /^d:(\d+)/;

            if ($s == $l) {
                my $c = $l->accept or next;
                if ($c0 eq 'r:') {
                    close $c;
                    next;
                }
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
            my $side = $server{$s} ? 's:' : 'c:';
            $marker = substr($c0, 2) if substr($c0, 0, 2) eq $side
                                        || ($server{$s}
                                            && substr($c0, 0, 2) eq 'S:');
            my $hit = $marker ne '' && index($buf, $marker) >= 0;

            if ($hit && substr($c0, 0, 2) eq 'S:') {
                # the server goes away: every connection, and new ones
                for my $x (keys %peer) {
                    my $sock = $peer{$x};
                    $sel->remove($sock);
                    close $sock;
                }
                %peer = ();
                %server = ();
                if (open(my $fh, '>', $ctl)) {
                    print $fh 'r:';
                    close $fh;
                }
                next;
            }

            if (!$n || $hit) {
                for my $x ($s, $o) {
                    $sel->remove($x);
                    delete $peer{$x};
                    delete $server{$x};
                    # (after what is held for it: a delayed close)
                    if ($delay && !$hit && grep { $_->[1] == $x } @held) {
                        push @held, [ Time::HiRes::time() + $delay / 1000,
                                      $x, undef ];
                    } else {
                        close $x;
                    }
                }
                next;
            }

            if ($delay) {
                push @held, [ Time::HiRes::time() + $delay / 1000, $o, $buf ];
                next;
            }
            write_all($o, $buf);
        }
    }
}

sub write_all {
    my ($o, $buf) = @_;
    my $off = 0;
    while ($off < length $buf) {
        my $w = syswrite($o, $buf, length($buf) - $off, $off);
        last unless $w;
        $off += $w;
    }
}

1;
