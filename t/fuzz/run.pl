#!/usr/bin/perl
# Runs the fuzz targets built by t/fuzz/Makefile: each replays its whole
# committed seed corpus (t/fuzz/corpus/<name>/, every file in full), then
# fuzzes for --seconds, keeping what it finds new in a scratch corpus
# (<out>/corpus/<name>, never the committed one) and any crash, leak,
# timeout or sanitizer report in <out>/artifacts/.  Prints a line per
# target; exits 1 if any target failed.
#
#   perl t/fuzz/run.pl [--seconds 60] [--out build/fuzz] [name...]
use strict;
use warnings;
use FindBin;
use Getopt::Long;
use File::Path qw(make_path);

my $dir = $FindBin::Bin;
my ($seconds, $out) = (60, "$dir/../../build/fuzz");
GetOptions('seconds=i' => \$seconds, 'out=s' => \$out) or exit 2;

# the longest input each target gets: what its parser reads in a request
# (the ZIP target makes longer files from its input, see fuzz_zip.c)
our %MAX_LEN = (multipart => 16384, form => 4096, token => 512,
                validate => 1024, zip => 8192, fields => 16384,
                sigv4 => 4096, geti => 16384, events => 4096);

my @names = @ARGV ? @ARGV : sort keys %MAX_LEN;
my $failed = 0;

$ENV{ASAN_OPTIONS} = 'detect_leaks=1:allocator_may_return_null=1';
$ENV{UBSAN_OPTIONS} = 'print_stacktrace=1:halt_on_error=1';

printf "%-10s %8s %10s %8s %6s %6s %7s  %s\n",
       qw(target seeds execs exec/s cov ft corpus result);

for my $name (@names) {
    my $max = $MAX_LEN{$name} or die "no target $name\n";
    my $bin = "$out/fuzz_$name";
    die "$bin: not built (make fuzz-build)\n" unless -x $bin;

    my $seeds = "$dir/corpus/$name";
    my $scratch = "$out/corpus/$name";
    my $art = "$out/artifacts";
    make_path($scratch, $art);

    my @dict = -f "$dir/dict/$name.dict" ? ("-dict=$dir/dict/$name.dict")
                                         : ();

    # every seed, whole (a directory would cut them at -max_len)
    my @files = sort grep { -f } glob("$seeds/*");
    my $log = "$art/$name.log";
    my $rc = @files ? run($log, $bin, "-artifact_prefix=$art/$name-", @files)
                    : 0;
    my $result = $rc ? "FAILED replaying the seeds (rc $rc), see $log" : '';

    my %st;
    if (!$rc && $seconds > 0) {
        $rc = run($log, $bin, "-max_total_time=$seconds", "-max_len=$max",
                  '-timeout=10', '-rss_limit_mb=2048', '-print_final_stats=1',
                  "-artifact_prefix=$art/$name-", @dict, $scratch, $seeds);
        %st = stats($log);
        $result = $rc ? "FAILED (rc $rc), see $log" : 'ok';
    }
    $result ||= 'ok (replay only)';
    $failed++ if $result =~ /^FAILED/;

    printf "%-10s %8d %10s %8s %6s %6s %7s  %s\n", $name, scalar @files,
           map({ $st{$_} // '-' } qw(execs rate cov ft corpus)), $result;
    if ($result =~ /^FAILED/) {
        open my $fh, '<', $log or next;
        my @l = <$fh>;
        print '    ', join('    ', grep { /ERROR|SUMMARY|check failed|runtime error|Test unit written/ } @l);
    }
}

exit($failed ? 1 : 0);

sub run {
    my ($log, @cmd) = @_;
    open my $old, '>&', \*STDERR or die;
    open STDERR, '>', $log or die "$log: $!";
    open my $oout, '>&', \*STDOUT or die;
    open STDOUT, '>&', \*STDERR or die;
    my $rc = system(@cmd);
    open STDOUT, '>&', $oout or die;
    open STDERR, '>&', $old or die;
    return $rc == -1 ? 255 : $rc >> 8 || ($rc & 127);
}

sub stats {
    my ($log) = @_;
    open my $fh, '<', $log or return;
    my %st;
    while (<$fh>) {
        if (/^#\d+\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)/) {
            @st{qw(cov ft corpus)} = ($1, $2, $3);
        }
        $st{execs} = $1 if /^stat::number_of_executed_units:\s+(\d+)/;
        $st{rate} = $1 if /^stat::average_exec_per_sec:\s+(\d+)/;
    }
    return %st;
}
