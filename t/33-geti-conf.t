# Proves: "make run" turns the Python service's GETI_* environment
# variables into a modelreg_geti line that nginx -t accepts (token in a
# 0600 file, never in the line; GETI_SERVER_SSL_VERIFY=false is
# verify=off; GETI_SYNC_INTERVAL in seconds is sync=Ns); without
# GETI_HOST the line is empty; a missing variable is an error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Modelreg::Harness;

my $h = Modelreg::Harness->new(no_pg => 1, no_nginx => 1);
my $script = "$Modelreg::Harness::TOP/conf/geti-conf";
my $tok = $h->dir . '/token';

sub run_with {
    my (%env) = @_;
    local %ENV = (PATH => $ENV{PATH}, %env);
    my $out = qx{$script $tok 2>&1};
    return ($? >> 8, $out);
}

my ($rc, $out) = run_with();
is($rc, 0, 'no GETI_HOST: fine');
is($out, '', 'and no line');

($rc, $out) = run_with(GETI_HOST => 'geti.example.com', GETI_TOKEN => 'tok-1',
                       GETI_ORGANIZATION_ID => 'org1',
                       GETI_WORKSPACE_ID => 'ws1',
                       GETI_SERVER_API_VERSION => 'v2',
                       GETI_SERVER_SSL_VERIFY => 'False',
                       GETI_SYNC_INTERVAL => '600');
is($rc, 0, 'all variables');
is($out, "modelreg_geti https://geti.example.com org=org1 workspace=ws1"
         . " token_file=$tok api_version=v2 verify=off sync=600s;\n",
   'the line');
unlike($out, qr/tok-1/, 'no token in it');
is(Modelreg::Harness::slurp($tok), "tok-1\n", 'the token in its file');
is((stat $tok)[2] & 0777, 0600, 'readable by its owner only');

my $so = $Modelreg::Harness::MODULE;
my ($trc, $tout) = $h->nginx_t("load_module $so; events {} http {"
    . ' modelreg_database "dbname=x"; modelreg_storage fs ' . $h->dir
    . "/o; $out server { listen 127.0.0.1:1; location / { modelreg; } } }");
is($trc, 0, 'nginx -t takes it') or diag $tout;

($rc, $out) = run_with(GETI_HOST => 'http://10.0.0.1:8080',
                       GETI_TOKEN => 't', GETI_ORGANIZATION_ID => 'o',
                       GETI_WORKSPACE_ID => 'w');
like($out, qr/^modelreg_geti http:\/\/10\.0\.0\.1:8080 .* api_version=v1;$/,
     'defaults: v1, verification on, no sync');

($rc, $out) = run_with(GETI_HOST => 'g', GETI_TOKEN => 't');
isnt($rc, 0, 'a missing variable fails');
like($out, qr/GETI_ORGANIZATION_ID is not/, 'naming it');

done_testing();
