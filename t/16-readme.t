# Proves: the curl examples in README.md work as written (each block
# between readme-example markers, with the port of a test instance: the
# first is "Using it", the others follow it in the same directory; the
# change feed's answers its long poll and streams the event), and
# the download links' block (readme-example-links) on an instance with a
# link key.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use Modelreg::Harness;

my $readme = Modelreg::Harness::slurp("$Modelreg::Harness::TOP/README.md");
my ($block, @more) = $readme =~ /<!-- readme-example:start -->\n```sh\n(.*?)```/gs;
ok($block, 'README has the example block') or BAIL_OUT('no example');

my $h = Modelreg::Harness->new;
my $port = $h->port;
$block =~ s/127\.0\.0\.1:8111/127.0.0.1:$port/g;

my $dir = tempdir(CLEANUP => 1);
Modelreg::Harness::write_file("$dir/example.sh",
                              "set -euo pipefail\ncd $dir\n$block");
my ($rc, $out) = Modelreg::Harness::run_cmd('bash', "$dir/example.sh");
is($rc, 0, 'the example runs to the end') or diag $out;
like($out, qr/"name" : "resnet50"/, 'list and get print the model');
like($out, qr/"status":"completed"/, 'the update completes');
like($out, qr/"action" : "model\.delete".*"action" : "model\.download".*"action" : "model\.update".*"action" : "model\.create"/s,
     'the audit shows create, update, download, delete');
is($h->psql('SELECT count(*) FROM models'), 0, 'the model is gone');

# "Aliases" (and whatever other example blocks follow), each on its own
for my $i (0 .. $#more) {
    (my $b = $more[$i]) =~ s/127\.0\.0\.1:8111/127.0.0.1:$port/g;
    Modelreg::Harness::write_file("$dir/example-$i.sh",
                                  "set -euo pipefail\ncd $dir\n$b");
    my ($rc, $out) = Modelreg::Harness::run_cmd('bash', "$dir/example-$i.sh");
    is($rc, 0, 'example block ' . ($i + 2) . ' runs to the end') or diag $out;
    like($out, qr/"alias" : "production"/, '  the aliases example lists it')
        if $b =~ m{/aliases/};
    like($out, qr/"action" : "model\.create".*"details" : \{"name": "feed-demo".*"cursor":"[0-9.]+"\}\],"next":"[0-9.]+"\}.*\nevent: model\.create\ndata: \{[^\n]*feed-demo/s,
         '  the change feed example answers the long poll and streams it')
        if $b =~ m{/events};
}

$h->finish;

# the download links' block ("Download links"), against an instance with
# a key, as make run has
my ($links) = $readme
    =~ /<!-- readme-example-links:start -->\n```sh\n(.*?)```/s;
ok($links, 'README has the download links block') or BAIL_OUT('no links');
my $l = Modelreg::Harness->new(no_nginx => 1);
# (no_nginx starts no store either: t/s3/16 runs this on Swift too)
$l->start_swift if $l->{storage} eq 's3';
Modelreg::Harness::write_file($l->dir . '/link_key', ('k' x 64) . "\n");
$l->{opt}{location} = 'location / { modelreg; modelreg_link_key '
                    . $l->dir . '/link_key; client_max_body_size 0; }';
$l->start_nginx;
$port = $l->port;
$links =~ s/127\.0\.0\.1:8111/127.0.0.1:$port/g;
Modelreg::Harness::write_file("$dir/links.sh",
                              "set -euo pipefail\ncd $dir\n$links");
($rc, $out) = Modelreg::Harness::run_cmd('bash', "$dir/links.sh");
is($rc, 0, 'the links example runs to the end') or diag $out;
like($out, qr{"url":"/models/[^"]+/files\?expires=\d+&signature=[\w-]{43}"},
     'it prints the link');
like($out, qr/\{"detail":"Invalid or expired link\."\}\s*\z/,
     'the changed link is refused');
$l->finish;

done_testing();
