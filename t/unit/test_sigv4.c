
/*
 * Unit tests of the SigV4 signer: every applicable case of AWS's test
 * suite (../shared/vectors/sigv4; the normalize-path cases are for other
 * services, S3 does not normalise), compared byte for byte: canonical
 * request, string to sign, Authorization.  Two published cases contradict
 * themselves (see run_case): post-x-www-form-urlencoded is re-signed with
 * the headers its .authz names and then matches; ...-parameters can only
 * be checked up to its canonical request.  Then S3 cases whose expected
 * signatures come from botocore: x-amz-content-sha256, ?uploads,
 * ?partNumber&uploadId, a UTF-8 key with a space, a key of every
 * printable byte SigV4 escapes (the same signer in Python, urllib's
 * quote(safe="/~") as botocore's S3 signer, reproduces the botocore
 * cases and gives that one).  Then the encoder, byte by byte, against
 * SigV4's rule: nginx's "uri_component" table must keep exactly what
 * SigV4 keeps.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ngx_http_modelreg_sigv4.h"


#define DIR_ENV  "MODELREG_SIGV4_VECTORS"


static ngx_str_t  ak = ngx_string("AKIDEXAMPLE");
static int        inconsistent;
static int        unverifiable;
static ngx_str_t  sk = ngx_string("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
static int        cases;


static char *
slurp(const char *path, size_t *len)
{
    FILE  *f;
    char  *buf;
    long   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n + 1);
    n = fread(buf, 1, n, f);
    buf[n] = '\0';
    fclose(f);

    if (len) {
        *len = n;
    }

    return buf;
}


static void
expect_file(const char *base, const char *ext, ngx_str_t *got)
{
    char    path[1100];
    char   *want;
    size_t  len;

    snprintf(path, sizeof(path), "%s.%s", base, ext);
    want = slurp(path, &len);
    assert_non_null(want);

    if (got->len != len || memcmp(got->data, want, len) != 0) {
        print_error("%s.%s:\nwant <%s>\n got <%.*s>\n", base, ext, want,
                    (int) got->len, got->data);
        fail();
    }

    free(want);
}


/* parses an HTTP request of the suite and checks all three outputs */

static void
run_case(const char *base)
{
    char                              path[1100], *req, *p, *line, *eol, *sp;
    char                             *colon;
    size_t                            len;
    u_char                            key[32], payload[64];
    ngx_str_t                         creq, sh, sts, authz, region, service;
    ngx_http_modelreg_sigv4_t         s;
    ngx_http_modelreg_sigv4_header_t  h[32];

    snprintf(path, sizeof(path), "%s.req", base);
    req = slurp(path, &len);
    assert_non_null(req);

    memset(&s, 0, sizeof(s));
    s.headers = h;

    /* request line: METHOD SP target SP HTTP/1.1 */

    eol = strstr(req, "\n");
    assert_non_null(eol);
    *eol = '\0';
    sp = strchr(req, ' ');
    s.method.data = (u_char *) req;
    s.method.len = sp - req;
    line = sp + 1;
    sp = strrchr(line, ' ');
    *sp = '\0';
    p = strchr(line, '?');

    s.path.data = (u_char *) line;
    s.path.len = p ? (size_t) (p - line) : strlen(line);

    if (p) {
        s.query.data = (u_char *) p + 1;
        s.query.len = strlen(p + 1);
    }

    /* headers; a folded line is one more value of the same header */

    p = eol + 1;

    while (*p && *p != '\n') {
        eol = strchr(p, '\n');
        if (eol) {
            *eol = '\0';
        }

        if (*p == ' ' || *p == '\t') {
            h[s.nheaders].name = h[s.nheaders - 1].name;
            h[s.nheaders].value.data = (u_char *) p;
            h[s.nheaders].value.len = strlen(p);

        } else {
            colon = strchr(p, ':');
            assert_non_null(colon);
            h[s.nheaders].name.data = (u_char *) p;
            h[s.nheaders].name.len = colon - p;
            h[s.nheaders].value.data = (u_char *) colon + 1;
            h[s.nheaders].value.len = strlen(colon + 1);

            if (strncasecmp(p, "X-Amz-Date", colon - p) == 0) {
                s.date = h[s.nheaders].value;
            }
        }

        s.nheaders++;

        if (eol == NULL) {
            p += strlen(p);
            break;
        }

        p = eol + 1;
    }

    if (*p == '\n') {
        p++;
    }

    ngx_http_modelreg_sha256_hex(payload, (u_char *) p, strlen(p));
    s.payload.data = payload;
    s.payload.len = 64;

    ngx_str_set(&region, "us-east-1");
    ngx_str_set(&service, "service");
    s.region = region;
    s.service = service;

    assert_int_equal(ngx_http_modelreg_sigv4_canonical(NULL, &s, &creq, &sh),
                     NGX_OK);
    expect_file(base, "creq", &creq);

    assert_int_equal(ngx_http_modelreg_sigv4_string_to_sign(NULL, &s, &creq,
                                                             &sts), NGX_OK);

    /*
     * Two published cases (post-x-www-form-urlencoded*) are inconsistent:
     * their .sts and .authz were made without content-length, which their
     * .creq includes.  For those, sign again with exactly the headers the
     * .authz names, and check .sts and .authz against that.
     */

    {
        char        *want_creq, *authz_file, *sh_list;
        size_t       creq_len;
        u_char       hash[65];
        ngx_uint_t   i, n;

        snprintf(path, sizeof(path), "%s.creq", base);
        want_creq = slurp(path, &creq_len);
        ngx_http_modelreg_sha256_hex(hash, (u_char *) want_creq, creq_len);
        hash[64] = '\0';
        snprintf(path, sizeof(path), "%s.sts", base);
        free(want_creq);
        want_creq = slurp(path, NULL);

        if (strstr(want_creq, (char *) hash) == NULL) {
            assert_non_null(strstr(base, "post-x-www-form-urlencoded"));
            inconsistent++;

            snprintf(path, sizeof(path), "%s.authz", base);
            authz_file = slurp(path, NULL);
            sh_list = strstr(authz_file, "SignedHeaders=") + 14;
            *strchr(sh_list, ',') = '\0';

            for (i = 0, n = 0; i < s.nheaders; i++) {
                char  name[64];

                snprintf(name, sizeof(name), "%.*s", (int) h[i].name.len,
                         h[i].name.data);
                ngx_strlow((u_char *) name, (u_char *) name, strlen(name));

                if (strstr(sh_list, name)) {
                    h[n++] = h[i];
                }
            }

            s.nheaders = n;

            assert_int_equal(ngx_http_modelreg_sigv4_canonical(NULL, &s,
                                                               &creq, &sh),
                             NGX_OK);
            assert_int_equal(ngx_http_modelreg_sigv4_string_to_sign(NULL, &s,
                                                              &creq, &sts),
                             NGX_OK);
            free(authz_file);

            /*
             * ...-parameters is beyond that: its .sts hashes "charset=utf8"
             * where its .req says "utf-8".  Checked up to the .creq only.
             */

            memcpy(hash, sts.data + sts.len - 64, 64);
            hash[64] = '\0';

            if (strstr(want_creq, (char *) hash) == NULL
                && strstr(base, "post-x-www-form-urlencoded-parameters"))
            {
                unverifiable++;
                free(want_creq);
                free(req);
                cases++;
                return;
            }
        }

        free(want_creq);
    }

    expect_file(base, "sts", &sts);

    assert_int_equal(ngx_http_modelreg_sigv4_key(&sk, &s.date, &region,
                                                 &service, key), NGX_OK);
    assert_int_equal(ngx_http_modelreg_sigv4_authorization(NULL, &s, &ak, key,
                                                           &authz), NGX_OK);
    expect_file(base, "authz", &authz);

    cases++;
    free(req);
}


static void
walk(const char *dir)
{
    DIR            *d;
    char            path[1024];
    size_t          n;
    struct stat     st;
    struct dirent  *e;

    d = opendir(dir);
    assert_non_null(d);

    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "normalize-path") == 0) {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);

        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            walk(path);
            continue;
        }

        n = strlen(path);

        if (n > 4 && strcmp(path + n - 4, ".req") == 0) {
            path[n - 4] = '\0';
            run_case(path);
        }
    }

    closedir(d);
}


static void
test_aws_suite(void **state)
{
    const char  *dir;

    dir = getenv(DIR_ENV);
    if (dir == NULL) {
        dir = "../shared/vectors/sigv4/aws-sig-v4-test-suite";
    }

    walk(dir);

    /* 24 cases: all but the normalize-path ones; two inconsistent */
    assert_int_equal(cases, 24);
    assert_int_equal(inconsistent, 2);
    assert_int_equal(unverifiable, 1);
}


/* S3 requests; expected Authorization values computed by botocore */

static void
s3_case(const char *method, const char *path, const char *query,
    const char *body, const char *signature)
{
    u_char                            key[32], payload[64];
    ngx_str_t                         authz, secret, access, date, region;
    ngx_str_t                         service;
    ngx_http_modelreg_sigv4_t         s;
    ngx_http_modelreg_sigv4_header_t  h[3];
    char                              want[512];

    ngx_str_set(&access, "AKIAIOSFODNN7EXAMPLE");
    ngx_str_set(&secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    ngx_str_set(&date, "20261126T050000Z");
    ngx_str_set(&region, "us-east-1");
    ngx_str_set(&service, "s3");

    ngx_http_modelreg_sha256_hex(payload, (u_char *) body, strlen(body));

    ngx_str_set(&h[0].name, "Host");
    ngx_str_set(&h[0].value, "127.0.0.1:9000");
    ngx_str_set(&h[1].name, "x-amz-content-sha256");
    h[1].value.data = payload;
    h[1].value.len = 64;
    ngx_str_set(&h[2].name, "X-Amz-Date");
    h[2].value = date;

    memset(&s, 0, sizeof(s));
    s.method.data = (u_char *) method;
    s.method.len = strlen(method);
    s.path.data = (u_char *) path;
    s.path.len = strlen(path);
    s.query.data = (u_char *) query;
    s.query.len = strlen(query);
    s.headers = h;
    s.nheaders = 3;
    s.payload.data = payload;
    s.payload.len = 64;
    s.date = date;
    s.region = region;
    s.service = service;

    assert_int_equal(ngx_http_modelreg_sigv4_key(&secret, &date, &region,
                                                 &service, key), NGX_OK);
    assert_int_equal(ngx_http_modelreg_sigv4_authorization(NULL, &s, &access,
                                                           key, &authz),
                     NGX_OK);

    snprintf(want, sizeof(want),
             "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261126/"
             "us-east-1/s3/aws4_request, SignedHeaders=host;"
             "x-amz-content-sha256;x-amz-date, Signature=%s", signature);

    assert_int_equal(authz.len, strlen(want));
    assert_memory_equal(authz.data, want, authz.len);
}


static void
test_s3(void **state)
{
    /* the key is given decoded and encoded once: UTF-8 and a space */
    s3_case("PUT", "/models/abc/d\xc3\xa9" "f g/m.zip", "", "hello",
            "69d7ed999d54f7e6de40d1948b8a1542a948a82594c4285e32e428a8291d32e5");

    /* a name without a value signs as "uploads=" */
    s3_case("POST", "/models/abc/key.zip", "uploads", "",
            "e180af52950ee79068c9313da7a6f4efaca87b7e3a4935e7c77e04cf6ebba3a4");

    s3_case("PUT", "/models/abc/key.zip", "partNumber=1&uploadId=2~abc.def",
            "part",
            "bf2f511aa68568b0e400aad60e28851ab8e5b64cffbefcd85530eaee8f467ee9");

    /* sorted whatever the order on the wire */
    s3_case("PUT", "/models/abc/key.zip", "uploadId=2~abc.def&partNumber=1",
            "part",
            "bf2f511aa68568b0e400aad60e28851ab8e5b64cffbefcd85530eaee8f467ee9");

    s3_case("DELETE", "/models/abc/key.zip", "uploadId=2~abc.def", "",
            "402d57470e48f089cb687f15980b8e578881ad2a1b15d11c8f468420d6711528");

    s3_case("HEAD", "/models", "", "",
            "2ac6232be58641a9d1f8a95a5f3fb18b5fd7a5944814f6098f72d2d673982303");

    /* what encodeURIComponent keeps ("!'()*") and RFC 3986's delimiters */
    s3_case("PUT", "/models/abc/ !\"#$%&'()*+,:;<=>?@[\\]^`{|}\x7f.zip", "",
            "hello",
            "b9f180859c63252a114e653366e7ae646c90e874a2a36c512f9e0e1cd719637d");
}


static int
unreserved(u_char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}


static void
test_encode(void **state)
{
    u_char      buf[64], src[1], want[4], *p;
    ngx_uint_t  c, slash;

    p = ngx_http_modelreg_sigv4_encode(buf, (u_char *) "a b/c~d+e", 9, 1);
    assert_int_equal(p - buf, 13);
    assert_memory_equal(buf, "a%20b/c~d%2Be", 13);

    p = ngx_http_modelreg_sigv4_encode(buf, (u_char *) "a/b", 3, 0);
    assert_memory_equal(buf, "a%2Fb", p - buf);

    /* every byte: kept if unreserved, else %XX in uppercase */

    for (slash = 0; slash < 2; slash++) {
        for (c = 0; c < 256; c++) {
            src[0] = (u_char) c;
            p = ngx_http_modelreg_sigv4_encode(buf, src, 1, slash);

            if (unreserved(src[0]) || (c == '/' && slash)) {
                want[0] = src[0];
                want[1] = '\0';

            } else {
                snprintf((char *) want, sizeof(want), "%%%02X",
                         (unsigned) c);
            }

            if ((size_t) (p - buf) != strlen((char *) want)
                || memcmp(buf, want, p - buf) != 0)
            {
                print_error("byte 0x%02x (slash %d): want <%s> got <%.*s>\n",
                            (unsigned) c, (int) slash, want, (int) (p - buf),
                            buf);
                fail();
            }
        }
    }

    /* segments: empty ones, and "/" at either end, stay as they are */

    p = ngx_http_modelreg_sigv4_encode(buf, (u_char *) "//a%/b c/", 9, 1);
    assert_int_equal(p - buf, 13);
    assert_memory_equal(buf, "//a%25/b%20c/", 13);

    p = ngx_http_modelreg_sigv4_encode(buf, (u_char *) "", 0, 1);
    assert_ptr_equal(p, buf);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_suite),
        cmocka_unit_test(test_s3),
        cmocka_unit_test(test_encode),
    };

    return cmocka_run_group_tests_name("sigv4", tests, NULL, NULL);
}
