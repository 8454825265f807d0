# Proves: nginx -t rejects bad modelreg directives with a message naming
# the directive, and accepts the shipped conf/modelreg.conf.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path qw(make_path);
use Modelreg::Harness;

my $h = Modelreg::Harness->new(no_pg => 1, no_nginx => 1);
my $so = $Modelreg::Harness::MODULE;

sub conf {
    my ($http, $loc) = @_;
    $loc //= 'location / { modelreg; }';
    return "load_module $so; events {} http { $http server { listen "
           . "127.0.0.1:1; $loc } }";
}

my @bad = (
    [ 'missing conninfo', conf('modelreg_database;'),
      qr/invalid number of arguments in "modelreg_database" directive/ ],
    [ 'empty conninfo', conf('modelreg_database "";'),
      qr/"modelreg_database" needs a non-empty libpq connection string/ ],
    [ 'pool not a number', conf('modelreg_database "dbname=x" pool=abc;'),
      qr/invalid value "pool=abc" in "modelreg_database"/ ],
    [ 'pool zero', conf('modelreg_database "dbname=x" pool=0;'),
      qr/invalid value "pool=0" in "modelreg_database"/ ],
    [ 'bad timeout', conf('modelreg_database "dbname=x" timeout=soon;'),
      qr/invalid value "timeout=soon" in "modelreg_database"/ ],
    [ 'bad queue', conf('modelreg_database "dbname=x" queue=-1;'),
      qr/invalid value "queue=-1" in "modelreg_database"/ ],
    [ 'unknown parameter', conf('modelreg_database "dbname=x" pools=2;'),
      qr/unknown parameter "pools=2" in "modelreg_database"/ ],
    [ 'duplicate database',
      conf('modelreg_database "dbname=x"; modelreg_database "dbname=y";'),
      qr/"modelreg_database" directive is duplicate/ ],
    [ 'modelreg without database', conf(''),
      qr/"modelreg" in \S+:1 requires "modelreg_database" in the http block/ ],
    [ 'modelreg with arguments',
      conf('modelreg_database "dbname=x";', 'location / { modelreg on; }'),
      qr/invalid number of arguments in "modelreg" directive/ ],
    [ 'modelreg outside a location',
      conf('modelreg_database "dbname=x";', 'modelreg;'),
      qr/"modelreg" directive is not allowed here/ ],
);

for my $case (@bad) {
    my ($name, $text, $re) = @$case;
    my ($rc, $out) = $h->nginx_t($text);
    isnt($rc, 0, "nginx -t fails: $name");
    like($out, $re, "message names the directive: $name");
}

my ($rc, $out) = $h->nginx_t(
    conf('modelreg_database "dbname=x" pool=2 queue=0 timeout=250ms;'));
is($rc, 0, 'nginx -t passes a good configuration') or diag $out;

# the shipped configuration, with its paths under a scratch prefix
my $prefix = $h->dir . '/shipped';
make_path("$prefix/var/log", "$prefix/var/run", "$prefix/var/nginx",
          "$prefix/build");
symlink($so, "$prefix/build/ngx_http_modelreg_module.so") or die $!;
($rc, $out) = Modelreg::Harness::run_cmd('nginx', '-t', '-p', "$prefix/",
    '-c', "$Modelreg::Harness::TOP/conf/modelreg.conf", '-e',
    "$prefix/var/log/error.log");
is($rc, 0, 'nginx -t passes conf/modelreg.conf') or diag $out;

done_testing();
