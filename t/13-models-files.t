# Proves: GET/HEAD /models/{id}/files serves the stored bytes exactly with
# Content-Type application/zip, Content-Disposition, ETag "<sha256>",
# Range (206, suffix, 416), If-None-Match (304); each 200/206 download is
# audited with actor and request id; DELETE removes row and object (then
# 404 everywhere); audit lists create/update/delete/download events, newest
# first, with filters and paging (page by page equals one page; tokens past
# a bigint are 400; a 4xx ends the request).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use Encode ();
use Time::HiRes qw(sleep);
use Modelreg::Harness;

my $h = Modelreg::Harness->new(location => <<'LOC');
location / { modelreg; modelreg_actor $http_x_user; client_max_body_size 0; }
LOC

my $zip = Modelreg::Harness::zip_of('model.bin', join '', map { chr } 0 .. 255);
my $res = $h->register(name => 'dl', version => '1',
                       file => { value => $zip, filename => 'my model.zip' },
                       headers => { 'X-User' => 'carol' });
my $id = $res->{content};
my $sha = sha256_hex($zip);

$res = $h->get("/models/$id/files", { headers => { 'X-User' => 'dave' } });
is($res->{status}, 200, 'download');
is($res->{content}, $zip, 'the bytes exactly');
is($res->{headers}{'content-type'}, 'application/zip', 'Content-Type exactly');
is($res->{headers}{etag}, qq{"$sha"}, 'ETag is the sha256');
is($res->{headers}{'accept-ranges'}, 'bytes', 'Accept-Ranges');
is($res->{headers}{'content-disposition'},
   q{attachment; filename="my model.zip"; filename*=UTF-8''my%20model.zip},
   'Content-Disposition');
my $dl_request = $res->{headers}{'x-request-id'};

$res = $h->get("/models/$id/files", { headers => { Range => 'bytes=0-9' } });
is($res->{status}, 206, 'Range: 206');
is($res->{content}, substr($zip, 0, 10), 'the range');
is($res->{headers}{'content-range'}, 'bytes 0-9/' . length $zip,
   'Content-Range');

$res = $h->get("/models/$id/files", { headers => { Range => 'bytes=-7' } });
is($res->{status}, 206, 'suffix range: 206');
is($res->{content}, substr($zip, -7), 'the last 7 bytes');

my $errors = () = $h->error_log =~ /\[error\]/g;
$res = $h->get("/models/$id/files",
               { headers => { Range => 'bytes=999999-' } });
is($res->{status}, 416, 'unsatisfiable range: 416');
# (the range filter's error page passes the header filters again)
like($res->{headers}{'x-request-id'}, qr/^[0-9a-f]{32}\z/,
     'a 416 carries one X-Request-Id');
is(scalar(() = $h->error_log =~ /\[error\]/g), $errors,
   'a 416 is the client\'s: no error in the log');

$res = $h->get("/models/$id/files",
               { headers => { 'If-None-Match' => qq{"$sha"} } });
is($res->{status}, 304, 'If-None-Match: 304');
is($res->{content} // '', '', 'no body');

$res = $h->get("/models/$id/files",
               { headers => { 'If-None-Match' => '"other"' } });
is($res->{status}, 200, 'another ETag: 200');

$res = $h->head("/models/$id/files");
is($res->{status}, 200, 'HEAD');
is($res->{headers}{'content-length'}, length $zip, 'HEAD Content-Length');
is($res->{headers}{'content-type'}, 'application/zip', 'HEAD Content-Type');

# non-ASCII names get an ASCII fallback and the exact UTF-8 form
my $uid = $h->new_model(name => 'uni', version => '1',
    file => { filename => Encode::encode('UTF-8', "mod\x{e8}le \\\"v\\\".zip") });
is($h->get("/models/$uid/files")->{headers}{'content-disposition'},
   q{attachment; filename="mod__le _v_.zip"; }
   . q{filename*=UTF-8''mod%C3%A8le%20%22v%22.zip}, 'RFC 5987 name');

is($h->get('/models/missing-model-00000/files')->{content},
   '{"detail":"Model not found."}', 'files of a missing model: 404');

# ---- delete
my @objects = grep { m{^\Q$id\E/} } $h->objects;
is(scalar @objects, 1, 'the object is in the store');
my $up = $h->put("/models/$id", { content => 'score=0.5',
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded',
                 'X-User' => 'erin' } });

$res = $h->delete("/models/$id", { headers => { 'X-User' => 'frank' } });
is($res->{status}, 204, 'DELETE: 204');
is($res->{content} // '', '', 'no body');
my $del_request = $res->{headers}{'x-request-id'};
is($h->get("/models/$id")->{status}, 404, 'then GET 404');
is($h->get("/models/$id/files")->{status}, 404, 'and /files 404');
is($h->delete("/models/$id")->{status}, 404, 'and DELETE 404');
ok(!$h->has_object($objects[0]), 'the object is gone from the store');
ok(!-d $h->dir . "/objects/$id", 'with its directory (fs)');
sleep 0.2;
is($h->psql('SELECT count(*) FROM storage_gc'), 0, 'nothing left queued');

# ---- audit
my $ev = $h->get("/audit?model_id=$id")->{json};
is_deeply([ map { $_->{action} } @$ev ],
          [ qw(model.delete model.update model.download model.download
               model.download model.download model.create) ],
          'create, downloads (200, 206, 206, 200), update, delete: newest first')
    or diag explain $ev;
my %by = map { $_->{action} => $_ } reverse @$ev;
is($by{'model.create'}{actor}, 'carol', 'create actor');
is($by{'model.create'}{status}, 201, 'create status');
is($by{'model.update'}{actor}, 'erin', 'update actor');
is($by{'model.delete'}{actor}, 'frank', 'delete actor');
is($by{'model.delete'}{request_id}, $del_request, 'delete request id');
is($by{'model.delete'}{status}, 204, 'delete status');
my ($first_dl) = grep { $_->{request_id} eq $dl_request } @$ev;
ok($first_dl, 'the download is audited under its request id');
is($first_dl->{actor}, 'dave', 'download actor');
is($first_dl->{status}, 200, 'download status');
is($first_dl->{remote_addr}, '127.0.0.1', 'remote_addr');
like($first_dl->{time}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC$/,
     'time format');
ok(!(grep { $_->{status} == 304 || $_->{status} == 416 } @$ev),
   '304, 416 and HEAD are not downloads');

$ev = $h->get('/audit?action=model.create')->{json};
ok(@$ev >= 2 && !(grep { $_->{action} ne 'model.create' } @$ev),
   'action filter');
is($h->get('/audit?model_id=nothing-at-all-00')->{content}, '[]',
   'no events: 200 []');

# paging, newest first
$res = $h->get('/audit?limit=2');
is(scalar @{ $res->{json} }, 2, 'limit');
my ($next) = ($res->{headers}{link} // '') =~ /^<([^>]+)>; rel="next"$/;
ok($next, 'Link to the next page');
my $page2 = $h->get($next)->{json};
ok($page2->[0]{id} < $res->{json}[1]{id}, 'the next page is older');

my $since = $h->psql("SELECT modelreg_ts(now() + interval '1 hour')");
is($h->get("/audit?since=" . ($since =~ s/ /%20/gr))->{content}, '[]',
   'since in the API format');
ok(@{ $h->get('/audit?since=2000-01-01T00:00:00Z')->{json} } > 0,
   'since in ISO 8601');
is($h->get('/audit?since=yesterday-ish')->{status}, 400, 'bad since: 400');
is($h->get('/audit?bogus=1')->{status}, 422, 'unknown key: 422');
is($h->get('/audit?page_token=x')->{status}, 400, 'bad token: 400');

# a bigint's edges (a token past it was once "Invalid since")
for my $bad ('9223372036854775808', '9999999999999999999',
             '99999999999999999999999', '-1', '1.5') {
    $res = $h->get("/audit?page_token=$bad");
    is($res->{status}, 400, "page_token=$bad: 400");
    is($res->{content}, '{"detail":"Invalid page_token."}', 'its detail');
}
$res = $h->get('/audit?page_token=9223372036854775807&limit=1');
is($res->{status}, 200, 'the largest bigint: 200');
is(scalar @{ $res->{json} }, 1, 'from the newest event');

# an error answer ends the request: nothing answers it a second time
for my $bad ('/audit?limit=0', '/audit?bogus=2', '/audit?limit=1001') {
    ok($h->get($bad)->{status} >= 400, "$bad: 4xx");
}
ok($h->get('/audit?limit=1')->{status} == 200, 'a list after them');
unlike($h->error_log, qr/header already sent/, 'no second answer');

# page by page with limit=1 gives the same events as one page
my $all = $h->get('/audit?limit=1000');
my ($url, @paged) = ('/audit?limit=1');
for (1 .. 100) {
    $res = $h->get($url);
    push @paged, @{ $res->{json} };
    ($url) = ($res->{headers}{link} // '') =~ /^<([^>]+)>/ or last;
}
is_deeply(\@paged, $all->{json}, 'paging through all events, one by one');
ok(!$all->{headers}{link}, 'one page of 1000 holds them all: no Link');

$h->finish;
done_testing();
