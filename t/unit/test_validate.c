
/*
 * Unit tests of the input rules: UTF-8, precision, score, file names, ZIP
 * signatures, LIKE escaping, page tokens.
 */


#include <float.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_validate.h"


#define S(s)  (u_char *) s, sizeof(s) - 1


static void
test_utf8(void **state)
{
    assert_int_equal(ngx_http_modelreg_valid_alias(S("production")), NGX_OK);
    assert_int_equal(ngx_http_modelreg_valid_alias(S("v1.0_rc-2")), NGX_OK);
    assert_int_equal(ngx_http_modelreg_valid_alias(S("0")), NGX_OK);
    assert_int_equal(ngx_http_modelreg_valid_alias((u_char *)
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        63), NGX_OK);
    assert_int_equal(ngx_http_modelreg_valid_alias((u_char *)
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        64), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_alias(S("")), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_alias(S("-x")), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_alias(S(".x")), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_alias(S("Prod")), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_alias(S("a b")), NGX_DECLINED);

    assert_int_equal(ngx_http_modelreg_utf8_valid(S("plain")), NGX_OK);
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("")), NGX_OK);
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("na\xc3\xafve \xe2\x82\xac"
                                                    " \xf0\x9f\x98\x80")),
                     NGX_OK);
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("\xff")), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("\xc3")), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("\xc0\xaf")),
                     NGX_DECLINED);                         /* overlong */
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("\xe0\x80\xaf")),
                     NGX_DECLINED);                         /* overlong */
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("\xed\xa0\x80")),
                     NGX_DECLINED);                         /* surrogate */
    assert_int_equal(ngx_http_modelreg_utf8_valid(S("\xf4\x90\x80\x80")),
                     NGX_DECLINED);                         /* > U+10FFFF */
}


static void
test_precision(void **state)
{
    u_char     out[4];
    size_t     len;
    ngx_str_t  v;

    ngx_str_set(&v, "FP16");
    assert_int_equal(ngx_http_modelreg_precision(&v, out, &len), NGX_OK);
    assert_memory_equal(out, "fp16", 4);

    ngx_str_set(&v, "Int4");
    assert_int_equal(ngx_http_modelreg_precision(&v, out, &len), NGX_OK);
    assert_memory_equal(out, "int4", 4);

    ngx_str_set(&v, "fp64");
    assert_int_equal(ngx_http_modelreg_precision(&v, out, &len),
                     NGX_DECLINED);
    ngx_str_set(&v, "fp32 ");
    assert_int_equal(ngx_http_modelreg_precision(&v, out, &len),
                     NGX_DECLINED);
}


static void
test_score(void **state)
{
    double     d;
    ngx_str_t  v;

    ngx_str_set(&v, "0");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d == 0.0);

    ngx_str_set(&v, " -1.5e2 ");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d == -150.0);

    ngx_str_set(&v, "0.75");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);

    ngx_str_set(&v, "nan");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "inf");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "1e999");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);

    /* what PostgreSQL's float8in() refuses: overflow, underflow to zero */
    ngx_str_set(&v, "1e400");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "-1e400");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "1e-400");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "-1e-400");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "2e-324");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "1.8e308");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);

    /* and what it keeps: the extremes, denormals, a zero written small */
    ngx_str_set(&v, "1.7976931348623157e308");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d == DBL_MAX);
    ngx_str_set(&v, "2.2250738585072014e-308");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d == DBL_MIN);
    ngx_str_set(&v, "4e-320");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d > 0.0 && d < DBL_MIN);
    ngx_str_set(&v, "5e-324");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d > 0.0);
    ngx_str_set(&v, "0e-400");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_OK);
    assert_true(d == 0.0);

    /* the spellings of infinity, NaN and hex that strtod() would take */
    ngx_str_set(&v, "Infinity");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "-inf");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "NaN");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "0x1p3");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "1e");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "-");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "0x10");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "1.5abc");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "  ");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
    ngx_str_set(&v, "");
    assert_int_equal(ngx_http_modelreg_score(&v, &d), NGX_DECLINED);
}


static void
check_name(u_char *in, size_t in_len, const char *expect)
{
    u_char     out[300];
    size_t     n;
    ngx_str_t  v;

    v.data = (u_char *) in;
    v.len = in_len;
    n = ngx_http_modelreg_file_name(&v, out);
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, n);
}


static void
test_file_name(void **state)
{
    check_name(S("model.zip"), "model.zip");
    check_name(S("../../x.zip"), "x.zip");
    check_name(S("C:\\dir\\y.zip"), "y.zip");
    check_name(S("..."), "model.zip");
    check_name(S(""), "model.zip");
    check_name(S("dir/"), "model.zip");
    check_name(S(".hidden.zip"), "hidden.zip");
    check_name(S("a\x01\nb\x7f.zip"), "ab.zip");
    check_name(S("na\xc3\xafve\xff.zip"), "na\xc3\xafve.zip");
}


static void
test_file_name_long(void **state)
{
    char       in[400];
    u_char     out[300];
    ngx_str_t  v;

    memset(in, 'a', 254);
    memcpy(in + 254, "\xc3\xaf" "bc", 4);
    v.data = (u_char *) in;
    v.len = 258;
    assert_int_equal(ngx_http_modelreg_file_name(&v, out), 254);

    memset(in, 'b', 300);
    v.len = 300;
    assert_int_equal(ngx_http_modelreg_file_name(&v, out), 255);
}


static void
test_zip_type(void **state)
{
    ngx_str_t  v;

    ngx_str_set(&v, "application/zip");
    assert_int_equal(ngx_http_modelreg_zip_type(&v), NGX_OK);
    ngx_str_set(&v, "Application/X-Zip-Compressed; charset=binary");
    assert_int_equal(ngx_http_modelreg_zip_type(&v), NGX_OK);
    ngx_str_set(&v, "application/octet-stream");
    assert_int_equal(ngx_http_modelreg_zip_type(&v), NGX_OK);
    ngx_str_set(&v, "text/plain");
    assert_int_equal(ngx_http_modelreg_zip_type(&v), NGX_DECLINED);
    ngx_str_set(&v, "application/zipx");
    assert_int_equal(ngx_http_modelreg_zip_type(&v), NGX_DECLINED);
    ngx_str_set(&v, "");
    assert_int_equal(ngx_http_modelreg_zip_type(&v), NGX_DECLINED);
}


static void
test_zip_check(void **state)
{
    u_char  empty[22] = "PK\x05\x06";
    u_char  zip[64];
    u_char  commented[30];

    /* the empty archive: an EOCD alone */
    assert_int_equal(ngx_http_modelreg_zip_check(empty, empty, 22, 22),
                     NGX_OK);

    /* a local header at the start, an EOCD at the end */
    memset(zip, 0, sizeof(zip));
    memcpy(zip, "PK\x03\x04", 4);
    memcpy(zip + 64 - 22, "PK\x05\x06", 4);
    assert_int_equal(ngx_http_modelreg_zip_check(zip, zip, 64, 64), NGX_OK);

    /* an EOCD with a comment that runs to the end */
    memset(commented, 'c', sizeof(commented));
    memcpy(commented, "PK\x05\x06", 4);
    memset(commented + 4, 0, 16);
    commented[20] = 8;
    commented[21] = 0;
    assert_int_equal(ngx_http_modelreg_zip_check(commented, commented, 30,
                                                 30), NGX_OK);
    commented[20] = 7;
    assert_int_equal(ngx_http_modelreg_zip_check(commented, commented, 30,
                                                 30), NGX_DECLINED);

    /* no EOCD, wrong start, too short */
    zip[64 - 22] = 'X';
    assert_int_equal(ngx_http_modelreg_zip_check(zip, zip, 64, 64),
                     NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_zip_check((u_char *) "GIF8", empty, 22,
                                                 22), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_zip_check(empty, empty, 0, 0),
                     NGX_DECLINED);
}


static void
test_like_escape(void **state)
{
    u_char  out[64];
    size_t  n;

    n = ngx_http_modelreg_like_escape(out, S("a%b_c\\d'e"));
    assert_int_equal(n, 12);
    assert_memory_equal(out, "a\\%b\\_c\\\\d'e", 12);
}


static void
test_token(void **state)
{
    u_char     buf[200], *p;
    int64_t    us;
    ngx_str_t  id, t;

    ngx_str_set(&id, "abcdefghijklmnop");
    p = ngx_http_modelreg_token_encode(buf, 1732600000123456LL, &id);
    t.data = buf;
    t.len = p - buf;
    assert_int_equal(t.len, 16 + 1 + 16);
    assert_memory_equal(buf, "1732600000123456.abcdefghijklmnop", t.len);

    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id), NGX_OK);
    assert_true(us == 1732600000123456LL);
    assert_int_equal(id.len, 16);

    p = ngx_http_modelreg_token_encode(buf, 0, &id);
    t.len = p - buf;
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id), NGX_OK);
    assert_true(us == 0);

    ngx_str_set(&t, "12.short");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "x12.abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "99999999999999999999999.abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "12abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
}


/* GET /audit's tokens as the audit route makes them, and back */

static void
test_audit_token(void **state)
{
    u_char     buf[32], *p;
    int64_t    id;
    ngx_str_t  t;

    p = ngx_http_modelreg_audit_token_encode(buf, 9223372036854775807LL);
    t.data = buf;
    t.len = p - buf;
    assert_int_equal(t.len, 19);
    assert_memory_equal(buf, "9223372036854775807", t.len);
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &id), NGX_OK);
    assert_true(id == 9223372036854775807LL);

    p = ngx_http_modelreg_audit_token_encode(buf, 0);
    t.len = p - buf;
    assert_int_equal(t.len, 1);
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &id), NGX_OK);
    assert_true(id == 0);

    p = ngx_http_modelreg_audit_token_encode(buf, 120);
    t.len = p - buf;
    assert_memory_equal(buf, "120", 3);
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &id), NGX_OK);
    assert_true(id == 120);

    ngx_str_set(&t, "9223372036854775808");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "-1");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &id),
                     NGX_DECLINED);
}


/*
 * Page tokens at the edges of what PostgreSQL can take (issue 10 item 8):
 * a number that overflows, or that modelreg_from_us() cannot turn into a
 * time exactly, is not a token.
 */

static void
test_token_range(void **state)
{
    int64_t    us, last;
    ngx_str_t  id, t;

    ngx_str_set(&t, "9007199254740991.abcdefghijklmnop");        /* 2^53-1 */
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id), NGX_OK);
    assert_true(us == NGX_HTTP_MODELREG_TOKEN_US_MAX - 1);

    ngx_str_set(&t, "9007199254740992.abcdefghijklmnop");        /* 2^53 */
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "9223372036854775799.abcdefghijklmnop"); /* was a 500 */
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "9223372036854775807.abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "18446744073709551617.abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);
    ngx_str_set(&t, "0000000000000000000000001.abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id), NGX_OK);
    assert_true(us == 1);
    ngx_str_set(&t, "-1.abcdefghijklmnop");
    assert_int_equal(ngx_http_modelreg_token_decode(&t, &us, &id),
                     NGX_DECLINED);

    ngx_str_set(&t, "9223372036854775807");                   /* INT64_MAX */
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last), NGX_OK);
    assert_true(last == INT64_MAX);
    ngx_str_set(&t, "0");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last), NGX_OK);
    assert_true(last == 0);
    ngx_str_set(&t, "00000000000000000000042");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last), NGX_OK);
    assert_true(last == 42);

    ngx_str_set(&t, "9223372036854775808");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
    ngx_str_set(&t, "9999999999999999999");            /* was "Invalid since" */
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
    ngx_str_set(&t, "99999999999999999999999999");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
    ngx_str_set(&t, "");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
    ngx_str_set(&t, "-1");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
    ngx_str_set(&t, "12 ");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
    ngx_str_set(&t, "1.5");
    assert_int_equal(ngx_http_modelreg_audit_token_decode(&t, &last),
                     NGX_DECLINED);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_precision),
        cmocka_unit_test(test_score),
        cmocka_unit_test(test_file_name),
        cmocka_unit_test(test_file_name_long),
        cmocka_unit_test(test_zip_type),
        cmocka_unit_test(test_zip_check),
        cmocka_unit_test(test_like_escape),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_audit_token),
        cmocka_unit_test(test_token_range),
    };

    return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
