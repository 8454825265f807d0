# Proves: the files of the module stack as README's "Layout" says: every
# .c file named in `config` has its row (layer 0-5) there and every row is
# a file; from the built objects (nm: what each defines, what it calls),
# no file calls a function of a file in a higher layer, and no files call
# each other in a cycle (upward calls go through function pointers, which
# nm does not see as calls).
use strict;
use warnings;
use FindBin;
use Test::More;

my $top = "$FindBin::Bin/..";
my $objs = "$top/build/nginx/objs/addon/ngx_modelreg";

plan skip_all => 'module not built' unless -d $objs;

# ---- the layers, from README's Layout block
open my $fh, '<', "$top/README.md" or die "README.md: $!";
my $readme = do { local $/; <$fh> };
my ($block) = $readme =~ /^## Layout\n.*?^```\n(.*?)^```$/ms
    or die "no Layout block in README.md";
my (%layer, $cur);
for (split /\n/, $block) {
    $cur = $1 if /^(\d)\s/;
    $layer{"ngx_http_modelreg$1.c"} = $cur if /^\d?\s+[a-z ]*?\s*(_\w+)\.c\s/;
}
ok(scalar keys %layer, 'the Layout block names the files and their layers');

open $fh, '<', "$top/config" or die "config: $!";
my $config = do { local $/; <$fh> };
my %src = map { $_ => 1 } $config =~ /(ngx_http_modelreg\w*\.c)/g;
is_deeply([sort keys %layer], [sort keys %src],
          'README lists exactly the sources of config');

# ---- who defines what, who calls what
my (%def, %uses);
for my $c (sort keys %src) {
    (my $o = "$objs/$c") =~ s/\.c$/.o/;
    ok(-f $o, "$c is built") or next;
    for (split /\n/, qx{nm $o}) {
        my ($kind, $sym) = /^\s*(?:[0-9a-f]+\s+)?([A-Za-z])\s+(\S+)$/ or next;
        next unless $sym =~ /^ngx_http_modelreg_/;
        if ($kind eq 'U') { $uses{$c}{$sym} = 1 }
        elsif ($kind eq 'T') { $def{$sym} = $c }    # functions only
    }
}

my (%calls, @up);
for my $c (sort keys %uses) {
    for my $sym (sort keys %{ $uses{$c} }) {
        my $d = $def{$sym} or next;        # the module's own, or nginx's
        next if $d eq $c || !defined $layer{$c} || !defined $layer{$d};
        $calls{$c}{$d} = 1;
        push @up, "$c ($layer{$c}) calls $sym of $d ($layer{$d})"
            if $layer{$d} > $layer{$c};
    }
}
is_deeply(\@up, [], 'no file calls a file of a higher layer');

# ---- no cycle (within a layer, the only place one could hide)
my (%state, @cycle);
sub visit {
    my ($n, @path) = @_;
    return if @cycle;
    if (($state{$n} // 0) == 1) {
        my ($i) = grep { $path[$_] eq $n } 0 .. $#path;
        @cycle = (@path[$i .. $#path], $n);
        return;
    }
    return if $state{$n};
    $state{$n} = 1;
    visit($_, @path, $n) for sort keys %{ $calls{$n} || {} };
    $state{$n} = 2;
}
visit($_) for sort keys %src;
is("@cycle", '', 'no files call each other in a cycle');

done_testing;
