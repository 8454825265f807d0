
/*
 * Unit tests of the streaming multipart parser: every body is also fed in
 * every split into two pieces and byte by byte, and must parse the same.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "ngx_http_modelreg_multipart.h"


typedef struct {
    char    log[65536];
    size_t  len;
    int     fail_begin;
} rec_t;


static void
rec(rec_t *r, const char *s, size_t n)
{
    if (r->len + n < sizeof(r->log)) {
        memcpy(r->log + r->len, s, n);
        r->len += n;
        r->log[r->len] = '\0';
    }
}


static ngx_int_t
on_begin(void *data, ngx_http_modelreg_mp_part_t *part)
{
    rec_t  *r = data;
    char    buf[1024];
    int     n;

    if (r->fail_begin) {
        return NGX_ERROR;
    }

    n = snprintf(buf, sizeof(buf), "[%s%.*s|%s%.*s|%.*s:",
                 part->has_name ? "" : "!", (int) part->name.len,
                 part->name.data, part->has_filename ? "" : "!",
                 (int) part->filename.len, part->filename.data,
                 (int) part->content_type.len, part->content_type.data);
    rec(r, buf, n);

    return NGX_OK;
}


static ngx_int_t
on_data(void *data, u_char *p, size_t len)
{
    rec(data, (char *) p, len);
    return NGX_OK;
}


static ngx_int_t
on_end(void *data)
{
    rec(data, "]", 1);
    return NGX_OK;
}


/* parses "body" whole, in every 2-split and byte by byte; returns rc */

static ngx_int_t
parse(const char *boundary, const char *body, size_t len, const char *expect)
{
    size_t                   split, i;
    ngx_int_t                rc, first;
    ngx_str_t                b;
    rec_t                   *r;
    ngx_http_modelreg_mp_t  *mp;

    mp = calloc(1, sizeof(ngx_http_modelreg_mp_t));
    r = calloc(1, sizeof(rec_t));

    b.data = (u_char *) boundary;
    b.len = strlen(boundary);

    first = NGX_OK;

    for (split = 0; split <= len + 1; split++) {

        memset(r, 0, sizeof(rec_t));
        assert_int_equal(ngx_http_modelreg_mp_init(mp, &b), NGX_OK);
        mp->begin = on_begin;
        mp->data = on_data;
        mp->end = on_end;
        mp->ctx = r;

        if (split <= len) {
            rc = ngx_http_modelreg_mp_feed(mp, (u_char *) body, split);
            if (rc == NGX_OK) {
                rc = ngx_http_modelreg_mp_feed(mp, (u_char *) body + split,
                                               len - split);
            }

        } else {
            rc = NGX_OK;
            for (i = 0; i < len && rc == NGX_OK; i++) {
                rc = ngx_http_modelreg_mp_feed(mp, (u_char *) body + i, 1);
            }
        }

        if (rc == NGX_OK) {
            rc = ngx_http_modelreg_mp_finish(mp);
        }

        if (split == 0) {
            first = rc;
        }

        assert_int_equal(rc, first);

        if (rc == NGX_OK && expect) {
            assert_string_equal(r->log, expect);
        }
    }

    free(mp);
    free(r);

    return first;
}


#define BODY(s)  s, sizeof(s) - 1


static void
test_simple(void **state)
{
    assert_int_equal(parse("XyZ", BODY(
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"name\"\r\n"
        "\r\n"
        "resnet\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"m.zip\"\r\n"
        "Content-Type: application/zip\r\n"
        "\r\n"
        "PK\r\n--X\r\n--XyY\r\r\n\r\n-"
        "\r\n--XyZ--\r\n"),
        "[name|!|:resnet][file|m.zip|application/zip:"
        "PK\r\n--X\r\n--XyY\r\r\n\r\n-]"), NGX_OK);
}


static void
test_preamble_epilogue(void **state)
{
    assert_int_equal(parse("b", BODY(
        "this is a preamble\r\n--b\r\n"
        "content-disposition: FORM-DATA; NAME=v\r\n\r\n"
        "1\r\n--b--  trailing junk \r\n--b\r\n"),
        "[v|!|:1]"), NGX_OK);

    /* transport padding after a delimiter */
    assert_int_equal(parse("b", BODY(
        "--b \t\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
        "x\r\n--b--"),
        "[a|!|:x]"), NGX_OK);
}


static void
test_empty_values(void **state)
{
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
        "\r\n--b\r\n\r\n\r\n--b--\r\n"),
        "[a|!|:][!|!|:]"), NGX_OK);
}


static void
test_filenames(void **state)
{
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename=\"a \\\"q\\\" b.zip\"\r\n\r\nz\r\n--b--"),
        "[file|a \"q\" b.zip|:z]"), NGX_OK);

    /* RFC 5987 wins, in either order */
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename*=UTF-8''na%C3%AFve%20m.zip; filename=\"naive.zip\"\r\n"
        "\r\nz\r\n--b--"),
        "[file|na\xc3\xafve m.zip|:z]"), NGX_OK);

    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename=\"\"\r\n\r\nz\r\n--b--"),
        "[file||:z]"), NGX_OK);

    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename*=UTF-8''bad%zz\r\n\r\nz\r\n--b--"), NULL), NGX_ERROR);
}


static void
test_malformed(void **state)
{
    /* no close delimiter */
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n"),
        NULL), NGX_ERROR);

    /* truncated inside a part */
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxx"),
        NULL), NGX_ERROR);

    /* wrong boundary: never opens */
    assert_int_equal(parse("other", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--"),
        NULL), NGX_ERROR);

    /* empty body */
    assert_int_equal(parse("b", "", 0, NULL), NGX_ERROR);

    /* garbage after the delimiter */
    assert_int_equal(parse("b", BODY("--bX\r\n\r\nx\r\n--b--"), NULL),
                     NGX_ERROR);

    /* a header line without a colon */
    assert_int_equal(parse("b", BODY("--b\r\nnonsense\r\n\r\nx\r\n--b--"),
                           NULL), NGX_ERROR);

    /* not form-data */
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--"),
        NULL), NGX_ERROR);

    /* unterminated quoted string */
    assert_int_equal(parse("b", BODY(
        "--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--"),
        NULL), NGX_ERROR);
}


static void
test_huge_headers(void **state)
{
    size_t  n;
    char   *body;

    n = NGX_HTTP_MODELREG_MP_HEADER_MAX + 100;
    body = malloc(n + 64);
    strcpy(body, "--b\r\nX-Junk: ");
    memset(body + 13, 'a', n);
    strcpy(body + 13 + n, "\r\n\r\nx\r\n--b--");

    {
        ngx_str_t               b = ngx_string("b");
        ngx_http_modelreg_mp_t  *mp = calloc(1, sizeof(*mp));
        rec_t                   r;

        memset(&r, 0, sizeof(r));
        ngx_http_modelreg_mp_init(mp, &b);
        mp->begin = on_begin;
        mp->data = on_data;
        mp->end = on_end;
        mp->ctx = &r;
        assert_int_equal(ngx_http_modelreg_mp_feed(mp, (u_char *) body,
                                                   strlen(body)), NGX_ERROR);
        assert_string_equal(mp->error, "part headers too large");
        free(mp);
    }

    free(body);
}


static void
test_callback_stops(void **state)
{
    ngx_str_t               b = ngx_string("b");
    ngx_http_modelreg_mp_t  mp;
    rec_t                   r;
    static u_char           body[] =
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--";

    memset(&r, 0, sizeof(r));
    r.fail_begin = 1;
    ngx_http_modelreg_mp_init(&mp, &b);
    mp.begin = on_begin;
    mp.data = on_data;
    mp.end = on_end;
    mp.ctx = &r;

    assert_int_equal(ngx_http_modelreg_mp_feed(&mp, body, sizeof(body) - 1),
                     NGX_ERROR);
    assert_int_equal(ngx_http_modelreg_mp_finish(&mp), NGX_ERROR);
}


static void
test_boundary_header(void **state)
{
    ngx_str_t  ct, b;

    ngx_str_set(&ct, "multipart/form-data; boundary=----abc123");
    assert_int_equal(ngx_http_modelreg_mp_boundary(&ct, &b), NGX_OK);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "----abc123", 10);

    ngx_str_set(&ct, "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\"");
    assert_int_equal(ngx_http_modelreg_mp_boundary(&ct, &b), NGX_OK);
    assert_int_equal(b.len, 3);

    ngx_str_set(&ct, "application/json");
    assert_int_equal(ngx_http_modelreg_mp_boundary(&ct, &b), NGX_DECLINED);

    ngx_str_set(&ct, "multipart/form-data");
    assert_int_equal(ngx_http_modelreg_mp_boundary(&ct, &b), NGX_DECLINED);

    ngx_str_set(&ct, "multipart/form-data; boundary=");
    assert_int_equal(ngx_http_modelreg_mp_boundary(&ct, &b), NGX_DECLINED);

    ngx_str_set(&ct, "multipart/form-data; boundary=aaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(ngx_http_modelreg_mp_boundary(&ct, &b), NGX_DECLINED);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_preamble_epilogue),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_filenames),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_huge_headers),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_boundary_header),
    };

    return cmocka_run_group_tests_name("multipart", tests, NULL, NULL);
}
