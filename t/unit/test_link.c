/*
 * Unit tests of download links (link.c): the arguments found in a query
 * string (exact names, each once), the expiry's one spelling, the
 * signature against values computed apart (Python's hmac and base64 of
 * "<path>\n<expires>"), and verification: the right path, expiry and key
 * only, expired at its second, every byte of the signature counting.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_link.h"


#define KEY    "0123456789abcdef0123456789abcdef"
#define PATH   "/models/abcdefghijklmnop/files"
#define EXP    "1767225600"

/* base64url(HMAC-SHA256(KEY, PATH "\n" EXP)), by Python */
#define SIG    "0lvFuz8TkyP4tCdIM6bcaMaCWKT2t3G8REcqn4Ma3ls"


static ngx_pool_t  *pool;


static ngx_str_t
str(const char *s)
{
    ngx_str_t  v;

    v.data = (u_char *) s;
    v.len = strlen(s);

    return v;
}


static ngx_int_t
args(const char *q, ngx_http_modelreg_link_args_t *la)
{
    return ngx_http_modelreg_link_args((u_char *) q, strlen(q), la);
}


static void
assert_str(ngx_str_t *s, const char *v)
{
    assert_non_null(s->data);
    assert_int_equal(s->len, strlen(v));
    assert_memory_equal(s->data, v, s->len);
}


static void
test_args_found(void **state)
{
    ngx_http_modelreg_link_args_t  la;

    assert_int_equal(args("expires=" EXP "&signature=" SIG, &la), NGX_OK);
    assert_str(&la.expires, EXP);
    assert_str(&la.signature, SIG);

    /* in any order, among other arguments */
    assert_int_equal(args("a=1&signature=s&b&expires=2&c=", &la), NGX_OK);
    assert_str(&la.expires, "2");
    assert_str(&la.signature, "s");

    /* one of them is enough to make it a link (an invalid one) */
    assert_int_equal(args("signature=x", &la), NGX_OK);
    assert_null(la.expires.data);
    assert_int_equal(args("expires", &la), NGX_OK);
    assert_str(&la.expires, "");
    assert_int_equal(args("expires=", &la), NGX_OK);
    assert_str(&la.expires, "");
}


static void
test_args_none(void **state)
{
    ngx_http_modelreg_link_args_t  la;

    assert_int_equal(args("", &la), NGX_DECLINED);
    assert_int_equal(args("&&&", &la), NGX_DECLINED);
    assert_int_equal(args("name=expires&x=signature", &la), NGX_DECLINED);

    /* names are exact: not a prefix, not another case, not escaped */
    assert_int_equal(args("expiresx=1&signatures=2", &la), NGX_DECLINED);
    assert_int_equal(args("Expires=1&SIGNATURE=2", &la), NGX_DECLINED);
    assert_int_equal(args("%65xpires=1", &la), NGX_DECLINED);
    assert_int_equal(args("expire=1&signatur=2", &la), NGX_DECLINED);
}


static void
test_args_duplicate(void **state)
{
    ngx_http_modelreg_link_args_t  la;

    assert_int_equal(args("expires=1&expires=2&signature=s", &la),
                     NGX_ERROR);
    assert_int_equal(args("expires=1&signature=s&signature=s", &la),
                     NGX_ERROR);
    assert_int_equal(args("expires&expires", &la), NGX_ERROR);
    assert_int_equal(args("signature=&signature=", &la), NGX_ERROR);
}


static void
test_expires(void **state)
{
    time_t     t;
    ngx_str_t  s;

    s = str(EXP);
    assert_int_equal(ngx_http_modelreg_link_expires(&s, &t), NGX_OK);
    assert_int_equal(t, 1767225600);

    s = str("1");
    assert_int_equal(ngx_http_modelreg_link_expires(&s, &t), NGX_OK);
    assert_int_equal(t, 1);

    s = str("9223372036854775807");
    assert_int_equal(ngx_http_modelreg_link_expires(&s, &t), NGX_OK);
    assert_true(t == NGX_MAX_TIME_T_VALUE);

    const char *bad[] = { "", "0", "01767225600", "+1767225600",
                          "-1", " 1", "1 ", "1e9", "0x10", "17672256OO",
                          "1767225600.0", "%31",
                          "9223372036854775808",
                          "99999999999999999999999", NULL };
    const char **b;

    for (b = bad; *b; b++) {
        s = str(*b);
        t = 42;
        assert_int_equal(ngx_http_modelreg_link_expires(&s, &t), NGX_ERROR);
        assert_int_equal(t, 42);
    }
}


static void
test_sign(void **state)
{
    u_char     sig[NGX_HTTP_MODELREG_LINK_SIG_LEN];
    ngx_str_t  key, path, exp;

    key = str(KEY);
    path = str(PATH);
    exp = str(EXP);

    assert_int_equal(ngx_http_modelreg_link_sign(pool, &key, &path, &exp,
                                                 sig),
                     NGX_OK);
    assert_memory_equal(sig, SIG, NGX_HTTP_MODELREG_LINK_SIG_LEN);

    /* the prefix, the expiry, the key: each changes it (Python's values) */

    path = str("/registry" PATH);
    ngx_http_modelreg_link_sign(pool, &key, &path, &exp, sig);
    assert_memory_equal(sig, "AU-cCEiNnJAISWgWONU9I1Lgxh8vVoKRFoRhd3pGMBY",
                        NGX_HTTP_MODELREG_LINK_SIG_LEN);

    path = str(PATH);
    exp = str("1767225601");
    ngx_http_modelreg_link_sign(pool, &key, &path, &exp, sig);
    assert_memory_equal(sig, "VGTP3gSLlz4bqc5tstz9Kv0cxE6ovfwbDkGiwAkw5Hc",
                        NGX_HTTP_MODELREG_LINK_SIG_LEN);

    key.data = (u_char *) "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    key.len = 100;
    exp = str(EXP);
    ngx_http_modelreg_link_sign(pool, &key, &path, &exp, sig);
    assert_memory_equal(sig, "bltUWRJRJ7YOLZIzKi5yTdIEFMnl28l2w9VOm--oijg",
                        NGX_HTTP_MODELREG_LINK_SIG_LEN);
}


static ngx_int_t
verify(const char *key, const char *path, const char *query, time_t now)
{
    ngx_str_t                      k, p;
    ngx_http_modelreg_link_args_t  la;

    if (args(query, &la) != NGX_OK) {
        return NGX_ERROR;
    }

    k = str(key);
    p = str(path);

    return ngx_http_modelreg_link_verify(pool, &k, &p, &la, now);
}


static void
test_verify(void **state)
{
    int          i;
    char         q[128];
    const char  *ok = "expires=" EXP "&signature=" SIG;

    assert_int_equal(verify(KEY, PATH, ok, 1767225599), NGX_OK);
    assert_int_equal(verify(KEY, PATH, ok, 0), NGX_OK);

    /* expired at its second, and after */
    assert_int_equal(verify(KEY, PATH, ok, 1767225600), NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, ok, 1767225601), NGX_DECLINED);

    /* another model, another prefix, another key */
    assert_int_equal(verify(KEY, "/models/abcdefghijklmnoq/files", ok, 0),
                     NGX_DECLINED);
    assert_int_equal(verify(KEY, "/registry" PATH, ok, 0), NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH "/", ok, 0), NGX_DECLINED);
    assert_int_equal(verify("0123456789abcdef0123456789abcdeF", PATH, ok, 0),
                     NGX_DECLINED);

    /* another expiry, in a canonical or another spelling */
    assert_int_equal(verify(KEY, PATH, "expires=1767225601&signature=" SIG,
                            0),
                     NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, "expires=01767225600&signature=" SIG,
                            0),
                     NGX_DECLINED);

    /* either missing, empty, or the signature padded, cut, longer */
    assert_int_equal(verify(KEY, PATH, "signature=" SIG, 0), NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, "expires=" EXP, 0), NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, "expires=" EXP "&signature=", 0),
                     NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, "expires=" EXP "&signature=" SIG "=",
                            0),
                     NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, "expires=" EXP "&signature=" SIG "A",
                            0),
                     NGX_DECLINED);
    assert_int_equal(verify(KEY, PATH, "expires=" EXP "&signature="
                            "0lvFuz8TkyP4tCdIM6bcaMaCWKT2t3G8REcqn4Ma3l", 0),
                     NGX_DECLINED);

    /*
     * every byte counts: each changed in turn (the last character also
     * to the one that differs only in the 2 bits base64url leaves unused)
     */

    for (i = 0; i < NGX_HTTP_MODELREG_LINK_SIG_LEN; i++) {
        ngx_sprintf((u_char *) q, "expires=%s&signature=%s%Z", EXP, SIG);
        q[sizeof("expires=" EXP "&signature=") - 1 + i] ^= 0x01;
        assert_int_equal(verify(KEY, PATH, q, 0), NGX_DECLINED);
    }

    ngx_sprintf((u_char *) q, "expires=%s&signature=%s%Z", EXP, SIG);
    q[strlen(q) - 1] = 'm';     /* "l" is 37, "m" 38: same top 4 bits */
    assert_int_equal(verify(KEY, PATH, q, 0), NGX_DECLINED);
}


int
main(void)
{
    int  rc;

    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_args_found),
        cmocka_unit_test(test_args_none),
        cmocka_unit_test(test_args_duplicate),
        cmocka_unit_test(test_expires),
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_verify),
    };

    pool = ngx_create_pool(4096, NULL);

    rc = cmocka_run_group_tests(tests, NULL, NULL);

    ngx_destroy_pool(pool);

    return rc;
}
