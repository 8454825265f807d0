# Proves: what t/44-aliases.t proves, on the s3 backend (a real Swift with s3api).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";

$ENV{MODELREG_STORAGE} = 's3';

my $file = "$FindBin::Bin/../44-aliases.t";
do $file;
die $@ if $@;
