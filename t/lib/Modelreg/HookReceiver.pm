package Modelreg::HookReceiver;

# A webhook receiver for the tests (README "Webhooks"): a tiny HTTP
# server on a loopback port, one forked child per request, that checks
# each POST's X-Modelreg-Signature against its key (Digest::SHA's
# HMAC-SHA256 of the body, as a receiver would) and records every
# request it was sent, in arrival order, whatever it answered.
#
#   my $r = Modelreg::HookReceiver->start(key => 'k' x 32);
#   $r->url ... $r->deliveries ... $r->down ... $r->up ... $r->stop
#
# $r->deliveries: [{ delivery, event, type, signature, valid (the
# signature is the body's), body (decoded), raw (its bytes), request
# (its line), status (what it answered), sent (bytes of the answer's
# body the client took), t (arrival), done (when it answered) }, ...].
#
# $r->mode(M) changes how it answers from now on:
#   'ok'            200 (the default)
#   'fail'          500
#   'fail:ID'       500 to the events of model ID, 200 to the others
#   'slow:S'        200 after S seconds
#   'huge:N'        200 with a body of N bytes
# $r->peak: the most requests it held at once (each counted out as its
# answer starts: the sender may begin another once it reads it).

use strict;
use warnings;
use parent -norequire, 'Modelreg::FakeGeti';
use Modelreg::FakeGeti;

use JSON::PP;
use Digest::SHA qw(hmac_sha256_hex);
use Fcntl qw(:flock);
use Time::HiRes qw(sleep time);

my $JSON = JSON::PP->new->utf8->canonical;

sub start {
    my ($class, %opt) = @_;
    require File::Temp;
    my $self = bless { key => $opt{key}, port => 0, owner => $$,
                       state => File::Temp::tempdir(CLEANUP => 1) }, $class;
    $self->mode('ok');
    return $self->up;
}

sub url { "http://127.0.0.1:$_[0]{port}/hook" }

# up() (again serving on its port, one forked child per request, each in
# handle()) and down() (nothing listens: connections are refused) are the
# fake Geti's
sub stop { $_[0]->down }
sub DESTROY { $_[0]->down if $$ == $_[0]{owner} }

sub mode {
    my ($self, $m) = @_;
    write_state($self, 'mode', $m);
}

sub deliveries {
    my ($self) = @_;
    open(my $fh, '<', "$self->{state}/log") or return [];
    flock($fh, LOCK_SH);
    my @d = map { $JSON->decode($_) } <$fh>;
    close $fh;
    return \@d;
}

# forgets what it was sent
sub clear {
    my ($self) = @_;
    open(my $fh, '>', "$self->{state}/log") or die "hook receiver: $!";
    close $fh;
    write_state($self, 'peak', 0);
}

sub peak { read_state($_[0], 'peak') // 0 }

sub handle {
    my ($self, $c) = @_;
    local $SIG{PIPE} = 'IGNORE';    # (a client that gave up on an answer)
    $self->count(1);
    my $t = time;
    my ($head, $buf) = ('', '');
    while ($buf !~ /\r\n\r\n/) {
        my $n = sysread($c, $buf, 65536, length $buf) or last;
    }
    ($head, $buf) = split /\r\n\r\n/, $buf, 2;
    $buf //= '';
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    my $len = $h{'content-length'} // 0;
    while (length $buf < $len) {
        sysread($c, $buf, $len - length $buf, length $buf) or last;
    }
    my $body = eval { $JSON->decode($buf) };
    my $mode = read_state($self, 'mode') // 'ok';
    my ($status, $answer) = (200, 'ok');
    if ($mode eq 'fail') {
        $status = 500;
    } elsif ($mode =~ /^fail:(.*)$/) {
        $status = 500 if $body && ($body->{model_id} // '') eq $1;
    } elsif ($mode =~ /^slow:(.*)$/) {
        sleep $1;
    } elsif ($mode =~ /^huge:(\d+)$/) {
        $answer = 'x' x $1;
    }
    my $sig = $h{'x-modelreg-signature'} // '';
    my %rec = (delivery => $h{'x-modelreg-delivery'},
               event => $h{'x-modelreg-event'},
               type => $h{'content-type'},
               signature => $sig,
               valid => ($sig eq 'sha256='
                         . hmac_sha256_hex($buf, $self->{key})) ? 1 : 0,
               body => $body, raw => $buf, status => $status, t => $t,
               request => (split /\r\n/, $head // '')[0]);
    my $reason = $status == 200 ? 'OK' : 'Internal Server Error';
    # no longer held once its answer goes: the sender may start another
    # as soon as it reads it, before this process could count it out
    $self->count(-1);
    syswrite($c, "HTTP/1.1 $status $reason\r\nContent-Length: "
                 . length($answer) . "\r\nConnection: close\r\n\r\n");
    my $off = 0;
    while ($off < length $answer) {
        my $n = syswrite($c, $answer, 1 << 20, $off) or last;
        $off += $n;
    }
    $rec{sent} = $off;
    $rec{done} = time;
    open(my $fh, '>>', "$self->{state}/log") or die "hook receiver: $!";
    flock($fh, LOCK_EX);
    print $fh $JSON->encode(\%rec), "\n";
    close $fh;
}

# requests held now, and the most ever held at once
sub count {
    my ($self, $d) = @_;
    open(my $fh, '+>>', "$self->{state}/now") or die "hook receiver: $!";
    flock($fh, LOCK_EX);
    seek($fh, 0, 0);
    my $now = (<$fh> // 0) + $d;
    truncate($fh, 0);
    print $fh $now;
    write_state($self, 'peak', $now) if $now > $self->peak;
    close $fh;
    return $now;
}

sub write_state {
    my ($self, $name, $v) = @_;
    open(my $fh, '>', "$self->{state}/$name.tmp") or die "hook receiver: $!";
    print $fh $v;
    close $fh;
    rename "$self->{state}/$name.tmp", "$self->{state}/$name";
}

sub read_state {
    my ($self, $name) = @_;
    open(my $fh, '<', "$self->{state}/$name") or return;
    local $/;
    my $v = <$fh>;
    close $fh;
    return $v;
}

1;
