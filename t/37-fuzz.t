# Proves: every libFuzzer target of t/fuzz (the parsers of client and
# network input, under ASan and UBSan; built by "make fuzz-build") runs
# its whole committed seed corpus and then a short fuzzing pass
# (MODELREG_FUZZ_SECONDS, 5 by default; "make fuzz" runs longer) with no
# crash, leak, timeout, sanitizer report or failed check of its own.
use strict;
use warnings;
use FindBin;
use Test::More;

my $out = "$FindBin::Bin/../build/fuzz";

my @targets = map { m{/fuzz_(\w+)\.c$} } sort glob("$FindBin::Bin/fuzz/fuzz_*.c");
plan skip_all => 'fuzz targets not built: run "make fuzz-build"'
    unless grep { -x "$out/fuzz_$_" } @targets;

my $seconds = $ENV{MODELREG_FUZZ_SECONDS} // 5;

for my $t (@targets) {
    ok(-x "$out/fuzz_$t", "fuzz_$t is built") or next;
    my $text = qx{perl $FindBin::Bin/fuzz/run.pl --seconds $seconds --out $out $t 2>&1};
    is($? >> 8, 0, "fuzz_$t: the seeds and ${seconds} s of fuzzing, no report")
        or diag $text;
    note $text;
}

done_testing();
