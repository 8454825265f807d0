# Proves: nginx -t rejects bad modelreg directives with a message naming
# the directive, and accepts the shipped conf/modelreg.conf; every shipped
# configuration (conf/*.conf serving the API, and README's) records no
# identity it has not verified and guards /metrics (t/05-ctl.t runs them).
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
    [ 'batch zero', conf('modelreg_database "dbname=x" batch=0;'),
      qr/invalid value "batch=0" in "modelreg_database".*batch=1\.\.256/ ],
    [ 'batch too big', conf('modelreg_database "dbname=x" batch=257;'),
      qr/invalid value "batch=257" in "modelreg_database"/ ],
    [ 'unknown parameter', conf('modelreg_database "dbname=x" pools=2;'),
      qr/unknown parameter "pools=2" in "modelreg_database"/ ],
    [ 'duplicate database',
      conf('modelreg_database "dbname=x"; modelreg_database "dbname=y";'),
      qr/"modelreg_database" directive is duplicate/ ],
    [ 'modelreg without database', conf(''),
      qr/"modelreg" in \S+:1 requires "modelreg_database" in the http block/ ],
    [ 'modelreg without storage', conf('modelreg_database "dbname=x";'),
      qr/"modelreg" in \S+:1 requires "modelreg_storage" in the http block/ ],
    [ 'unknown storage', conf('modelreg_storage tape /x;'),
      qr/unknown storage type "tape" in "modelreg_storage"/ ],
    [ 'storage without a directory', conf('modelreg_storage fs;'),
      qr/invalid number of arguments in "modelreg_storage" directive/ ],
    [ 'bad gc_interval', conf('modelreg_storage fs /tmp/x gc_interval=0;'),
      qr/invalid value "gc_interval=0" in "modelreg_storage"/ ],
    [ 'unknown storage parameter', conf('modelreg_storage fs /tmp/x y=1;'),
      qr/unknown parameter "y=1" in "modelreg_storage"/ ],
    [ 'duplicate storage',
      conf('modelreg_storage fs /tmp/x; modelreg_storage fs /tmp/y;'),
      qr/"modelreg_storage" directive is duplicate/ ],
    [ 's3 without endpoint', conf('modelreg_storage s3 bucket=b region=r'
                                  . ' access_key_env=HOME secret_key_env=HOME;'),
      qr/"modelreg_storage s3" needs endpoint=, bucket=, region=/ ],
    [ 's3 endpoint with a path',
      conf('modelreg_storage s3 endpoint=http://h/x bucket=b region=r;'),
      qr/invalid value "endpoint=http:\/\/h\/x" in "modelreg_storage"/ ],
    [ 's3 endpoint not http', conf('modelreg_storage s3 endpoint=ftp://h;'),
      qr/invalid value "endpoint=ftp:\/\/h" in "modelreg_storage"/ ],
    [ 's3 part_size too small',
      conf('modelreg_storage s3 endpoint=http://h part_size=1m;'),
      qr/invalid value "part_size=1m" in "modelreg_storage"/ ],
    [ 's3 bad path_style',
      conf('modelreg_storage s3 endpoint=http://h path_style=maybe;'),
      qr/invalid value "path_style=maybe" in "modelreg_storage"/ ],
    [ 's3 missing key file',
      conf('modelreg_storage s3 endpoint=http://h access_key_file=/nonexistent;'),
      qr/cannot read the key file "\/nonexistent" of "modelreg_storage"/ ],
    [ 's3 unset key variable',
      conf('modelreg_storage s3 endpoint=http://h access_key_env=MODELREG_NO_SUCH_VAR;'),
      qr/the environment variable "MODELREG_NO_SUCH_VAR" of "modelreg_storage" is not set/ ],
    [ 's3 unknown parameter', conf('modelreg_storage s3 endpoint=http://h acl=x;'),
      qr/unknown parameter "acl=x" in "modelreg_storage"/ ],
    [ 'geti without a URL scheme',
      conf('modelreg_geti geti.example.com org=o workspace=w token_env=HOME;'),
      qr/"modelreg_geti" needs an http:\/\/ or https:\/\/ URL/ ],
    [ 'geti without a token',
      conf('modelreg_geti https://g org=o workspace=w;'),
      qr/"modelreg_geti" needs org=, workspace= and a token/ ],
    [ 'geti token file missing',
      conf('modelreg_geti https://g org=o workspace=w token_file=/nonexistent;'),
      qr/cannot read the token file "\/nonexistent" of "modelreg_geti"/ ],
    [ 'geti bad sync', conf('modelreg_geti https://g org=o sync=never;'),
      qr/invalid value "sync=never" in "modelreg_geti"/ ],
    [ 'geti bad export_timeout',
      conf('modelreg_geti https://g export_timeout=0;'),
      qr/invalid value "export_timeout=0" in "modelreg_geti"/ ],
    [ 'geti bad verify', conf('modelreg_geti https://g verify=maybe;'),
      qr/invalid value "verify=maybe" in "modelreg_geti"/ ],
    [ 'geti bad project id', conf('modelreg_geti https://g projects=a,b;'),
      qr/invalid value "projects=a,b" in "modelreg_geti"/ ],
    [ 'geti unknown parameter', conf('modelreg_geti https://g color=red;'),
      qr/unknown parameter "color=red" in "modelreg_geti"/ ],
    [ 'modelreg_actor without a value',
      conf('modelreg_database "dbname=x"; modelreg_storage fs /tmp/x;',
           'location / { modelreg; modelreg_actor; }'),
      qr/invalid number of arguments in "modelreg_actor" directive/ ],
    [ 'bad cache size', conf('modelreg_cache lots;'),
      qr/invalid value "lots" in "modelreg_cache" \("off" or a size/ ],
    [ 'cache too small', conf('modelreg_cache 8k;'),
      qr/"8k" of "modelreg_cache" is too small \(at least 64k\)/ ],
    [ 'duplicate cache', conf('modelreg_cache off; modelreg_cache 1m;'),
      qr/"modelreg_cache" directive is duplicate/ ],
    [ 'cache outside http', conf('', 'location / { modelreg_cache 1m; }'),
      qr/"modelreg_cache" directive is not allowed here/ ],
    [ 'events: no waiters', conf('modelreg_events waiters=0;'),
      qr/invalid value "waiters=0" in "modelreg_events" \(waiters=1\.\.1000000/ ],
    [ 'events: backlog too small', conf('modelreg_events backlog=1k;'),
      qr/invalid value "backlog=1k" in "modelreg_events"/ ],
    [ 'events: no lifetime', conf('modelreg_events lifetime=0;'),
      qr/invalid value "lifetime=0" in "modelreg_events"/ ],
    [ 'events: unknown parameter', conf('modelreg_events size=1;'),
      qr/"size=1" in "modelreg_events"/ ],
    [ 'events: duplicate', conf('modelreg_events backlog=1m;'
                                . ' modelreg_events lifetime=1m;'),
      qr/"modelreg_events" directive is duplicate/ ],
    [ 'events outside http',
      conf('', 'location / { modelreg_events waiters=1; }'),
      qr/"modelreg_events" directive is not allowed here/ ],
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
    conf('modelreg_database "dbname=x" pool=2 queue=0 timeout=250ms'
         . ' batch=256;'
         . ' modelreg_cache 1m;'
         . ' modelreg_storage fs ' . $h->dir . '/objects gc_interval=5s;',
         'location / { modelreg; modelreg_actor $http_x_user; }'));
is($rc, 0, 'nginx -t passes a good configuration') or diag $out;

# the shipped configuration, with its paths under a scratch prefix
my $prefix = $h->dir . '/shipped';
make_path("$prefix/var/log", "$prefix/var/run", "$prefix/var/nginx",
          "$prefix/build");
symlink($so, "$prefix/build/ngx_http_modelreg_module.so") or die $!;
($rc, $out) = Modelreg::Harness::nginx_test('-p', "$prefix/",
    '-c', "$Modelreg::Harness::TOP/conf/modelreg.conf", '-e',
    "$prefix/var/log/error.log");
is($rc, 0, 'nginx -t passes conf/modelreg.conf') or diag $out;

# the shipped S3 configuration, keys where it expects them
my $s3 = $h->dir . '/shipped-s3';
make_path("$s3/conf", "$s3/var/log", "$s3/var/run", "$s3/var/nginx",
          "$s3/var/swift", "$s3/build");
symlink($so, "$s3/build/ngx_http_modelreg_module.so") or die $!;
for my $f ('modelreg-s3.conf', 'modelreg_storage.conf') {
    Modelreg::Harness::write_file("$s3/conf/$f", Modelreg::Harness::slurp(
        "$Modelreg::Harness::TOP/conf/$f"));
}
Modelreg::Harness::write_file("$s3/var/swift/access_key", "a\n");
Modelreg::Harness::write_file("$s3/var/swift/secret_key", "s\n");
($rc, $out) = Modelreg::Harness::nginx_test('-p', "$s3/",
    '-c', "$s3/conf/modelreg-s3.conf", '-e', "$s3/var/log/error.log");
is($rc, 0, 'nginx -t passes conf/modelreg-s3.conf') or diag $out;

# every configuration we ship: an actor only with auth_basic (else a
# client names itself in Authorization: Basic), /metrics guarded
my $top = $Modelreg::Harness::TOP;
my %shipped = map { ("conf/$_" => Modelreg::Harness::slurp("$top/conf/$_")) }
              map { s{.*/}{}r } glob "$top/conf/*.conf";
($shipped{'README.md'}) =
    Modelreg::Harness::slurp("$top/README.md") =~ /```nginx\n(.*?)```/s;
my $served = 0;
for my $name (sort keys %shipped) {
    (my $text = $shipped{$name}) =~ s/#[^\n]*//g;
    next unless $text =~ /^\s*modelreg;/m;
    $served++;
    ok($text !~ /\bmodelreg_actor\b/ || $text =~ /\bauth_basic\s+(?!off\b)/,
       "$name: no unverified modelreg_actor");
    like($text, qr!location\s*=\s*/metrics\s*\{[^}]*\bmodelreg;[^}]*
                   \ballow\s[^}]*\bdeny\s+all;!x, "$name: /metrics guarded");
}
is($served, 3, 'both shipped confs and the README checked');

# a good s3 line, with keys from the environment
$ENV{MODELREG_TEST_KEY} = 'AKIAEXAMPLE';
($rc, $out) = $h->nginx_t(conf(
    'modelreg_database "dbname=x"; modelreg_storage s3 endpoint=https://s3.'
    . 'example.com bucket=b region=eu-west-1 access_key_env=MODELREG_TEST_KEY'
    . ' secret_key_env=MODELREG_TEST_KEY path_style=off part_size=8m'
    . ' spool=' . $h->dir . '/spool;'));
is($rc, 0, 'nginx -t passes an s3 line with keys from the environment')
    or diag $out;

($rc, $out) = $h->nginx_t(conf(
    'modelreg_database "dbname=x"; modelreg_storage fs ' . $h->dir . '/o;'
    . ' modelreg_geti https://geti.example.com/ org=o workspace=w'
    . ' token_env=MODELREG_TEST_KEY api_version=v1 verify=off timeout=5s'
    . ' export_timeout=10m'
    . ' sync=10m projects=6650a1b2c3d4e5f6a7b8c901,6650a1b2c3d4e5f6a7b8c902;'));
is($rc, 0, 'nginx -t passes a modelreg_geti line') or diag $out;

done_testing();
