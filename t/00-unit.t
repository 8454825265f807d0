# Proves: the C unit tests of the module's pure logic (cmocka, built by
# "make unit" under t/unit/) all pass.
use strict;
use warnings;
use FindBin;
use Test::More;

my $dir = "$FindBin::Bin/unit";

# AWS's SigV4 vectors, from the shared folder beside the project, or, in
# a clone made elsewhere (git clone . /tmp/x), beside the one it came from
my $suite = 'shared/vectors/sigv4/aws-sig-v4-test-suite';
my @where = ("$FindBin::Bin/../../$suite");
my $origin = qx{git -C $FindBin::Bin config --get remote.origin.url 2>/dev/null};
chomp $origin;
push @where, "$origin/../$suite" if $origin =~ m{^/};
$ENV{MODELREG_SIGV4_VECTORS} //= (grep { -d } @where)[0] // $where[0];
ok(-d $ENV{MODELREG_SIGV4_VECTORS},
   'the SigV4 vectors are there (../shared beside the project)')
    or diag "not found in: @where";
my @tests = sort grep { -x $_ && !/\.c$/ } glob("$dir/test_*");

plan skip_all => 'unit tests not built: run "make unit"' unless @tests;

# under valgrind when there is one: an overflow by one byte fails here
my $vg = -x '/usr/bin/valgrind'
       ? 'valgrind -q --error-exitcode=99 --leak-check=no' : '';

for my $t (@tests) {
    my $out = qx{$vg $t 2>&1};
    my $rc = $? >> 8;
    is($rc, 0, "cmocka: " . ($t =~ s{.*/}{}r) . ($vg ? ' (valgrind)' : ''))
        or diag $out;
    note $out;
}

done_testing();
