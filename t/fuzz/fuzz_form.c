
/*
 * Query strings and form bodies (form.c) and a list's arguments
 * (list_args.c).  Input: "<query>\n<page token>".
 *
 * The splitter gives back every non-empty "&" segment as it is written;
 * %XX decoding undoes nginx's URI-component escaping exactly, in place
 * or not; the form decoder is split then decode.  A list's arguments, as
 * GET /models and GET /audit read them, are either refused with the
 * status and message API.md gives or hold a limit from 1 to 1000 and
 * UTF-8 filters; and the next page's Link, read back as a query string,
 * asks for exactly the same filters, limit and token.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_form.h"
#include "ngx_http_modelreg_list_args.h"
#include "ngx_http_modelreg_validate.h"


static ngx_http_modelreg_list_filter_t  models[] = {
    { "name", 1 }, { "project_name", 1 }, { "category", 1 },
    { "architecture", 1 }, { "precision", 1 }, { "version", 0 },
    { "origin", 0 }, { "project_id", 0 }, { "format", 0 },
    { "target_device", 0 }, { NULL, 0 }
};

static ngx_http_modelreg_list_filter_t  audit[] = {
    { "model_id", 0 }, { "action", 0 }, { "since", 0 }, { NULL, 0 }
};


static void
check_split(ngx_pool_t *pool, ngx_str_t *q)
{
    u_char                   *p, *end, *amp;
    ngx_uint_t                i;
    ngx_array_t               args;
    ngx_http_modelreg_arg_t  *a;

    fuzz_assert(ngx_array_init(&args, pool, 1,
                               sizeof(ngx_http_modelreg_arg_t))
                == NGX_OK);
    fuzz_assert(ngx_http_modelreg_args_split(q->data, q->data + q->len,
                                             &args)
                == NGX_OK);

    a = args.elts;
    p = q->data;
    end = q->data + q->len;
    i = 0;

    /* each non-empty segment, in order: key, then "=" and the value */

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        amp = amp ? amp : end;

        if (amp > p) {
            fuzz_assert(i < args.nelts);
            fuzz_assert(a[i].key.data == p);
            fuzz_assert(ngx_strlchr(a[i].key.data,
                                    a[i].key.data + a[i].key.len, '=')
                        == NULL);

            if (a[i].key.len == (size_t) (amp - p)) {
                fuzz_assert(a[i].value.len == 0);

            } else {
                fuzz_assert(p[a[i].key.len] == '=');
                fuzz_assert(a[i].value.data == p + a[i].key.len + 1);
                fuzz_assert(a[i].value.data + a[i].value.len == amp);
            }

            i++;
        }

        p = amp + 1;
    }

    fuzz_assert(i == args.nelts);
}


static void
check_unescape(ngx_pool_t *pool, ngx_str_t *q)
{
    u_char      *d, *e, *c;
    size_t       n, m, k;
    uintptr_t    end;
    ngx_uint_t   plus;

    d = ngx_pnalloc(pool, q->len + 1);
    c = fuzz_copy(pool, q);
    fuzz_assert(d != NULL);

    for (plus = 0; plus < 2; plus++) {
        n = ngx_http_modelreg_unescape(d, q->data, q->len, plus);
        fuzz_assert(n <= q->len);

        /* in place: the same */

        ngx_memcpy(c, q->data, q->len);
        m = ngx_http_modelreg_unescape(c, c, q->len, plus);
        fuzz_assert(m == n && ngx_memcmp(c, d, n) == 0);

        /* nothing to decode: nothing changes */

        if (ngx_strlchr(q->data, q->data + q->len, '%') == NULL
            && (!plus || ngx_strlchr(q->data, q->data + q->len, '+') == NULL))
        {
            fuzz_assert(n == q->len && ngx_memcmp(d, q->data, n) == 0);
        }
    }

    /* what nginx escapes comes back byte for byte */

    e = ngx_pnalloc(pool, 3 * q->len + 1);
    fuzz_assert(e != NULL);

    end = ngx_escape_uri(e, q->data, q->len, NGX_ESCAPE_URI_COMPONENT);
    k = (u_char *) end - e;

    for (plus = 0; plus < 2; plus++) {
        n = ngx_http_modelreg_unescape(d, e, k, plus);
        fuzz_assert(n == q->len);
        fuzz_assert(n == 0 || ngx_memcmp(d, q->data, n) == 0);
    }
}


static void
check_decode(ngx_pool_t *pool, ngx_str_t *q)
{
    u_char                   *d;
    size_t                    n;
    ngx_uint_t                i;
    ngx_array_t               raw, args;
    ngx_http_modelreg_arg_t  *r, *a;

    fuzz_assert(ngx_array_init(&raw, pool, 2, sizeof(ngx_http_modelreg_arg_t))
                == NGX_OK);
    fuzz_assert(ngx_array_init(&args, pool, 2,
                               sizeof(ngx_http_modelreg_arg_t))
                == NGX_OK);

    fuzz_assert(ngx_http_modelreg_args_split(q->data, q->data + q->len, &raw)
                == NGX_OK);
    fuzz_assert(ngx_http_modelreg_form_decode(pool, q->data,
                                              q->data + q->len, &args)
                == NGX_OK);

    fuzz_assert(raw.nelts == args.nelts);

    r = raw.elts;
    a = args.elts;
    d = ngx_pnalloc(pool, q->len + 1);
    fuzz_assert(d != NULL);

    for (i = 0; i < args.nelts; i++) {
        n = ngx_http_modelreg_unescape(d, r[i].key.data, r[i].key.len, 1);
        fuzz_assert(n == a[i].key.len);
        fuzz_assert(n == 0 || ngx_memcmp(d, a[i].key.data, n) == 0);
        fuzz_assert(a[i].key.data[n] == '\0');

        n = ngx_http_modelreg_unescape(d, r[i].value.data, r[i].value.len, 1);
        fuzz_assert(n == a[i].value.len);
        fuzz_assert(n == 0 || ngx_memcmp(d, a[i].value.data, n) == 0);
        fuzz_assert(a[i].value.data[n] == '\0');
    }
}


static void
check_list(ngx_pool_t *pool, ngx_str_t *q, ngx_str_t *token,
    ngx_http_modelreg_list_filter_t *filters, const char *route)
{
    u_char                         *lt;
    ngx_int_t                       rc, n;
    ngx_str_t                       msg, link, back;
    ngx_uint_t                      k, filtered;
    ngx_http_modelreg_list_args_t   a, b;

    static ngx_str_t  base = ngx_string("https://h.example:8443/r");

    ngx_memzero(&a, sizeof(a));
    a.filters = filters;
    ngx_str_null(&msg);

    rc = ngx_http_modelreg_list_args_parse(pool, q, &a, &msg);

    fuzz_assert(rc == NGX_OK || rc == 400 || rc == 422);

    if (rc == 400) {
        fuzz_assert(a.limit_text.len > 0);
        fuzz_assert(msg.len == sizeof("Invalid limit: must be an integer "
                                      "from 1 to 1000.") - 1);
        return;
    }

    if (rc == 422) {
        fuzz_assert(msg.len > 0);
        fuzz_assert((msg.len >= 28
                     && ngx_strncmp(msg.data, "Invalid query parameter(s): ",
                                    28) == 0)
                    || (msg.len > 21
                        && ngx_strncmp(msg.data + msg.len - 21,
                                       " must be valid UTF-8.", 21) == 0));
        return;
    }

    fuzz_assert(a.limit >= 1 && a.limit <= NGX_HTTP_MODELREG_LIMIT_MAX);

    if (a.limit_text.len) {
        n = ngx_atoi(a.limit_text.data, a.limit_text.len);
        fuzz_assert(n == (ngx_int_t) a.limit);

    } else {
        fuzz_assert(a.limit == NGX_HTTP_MODELREG_LIMIT_DEFAULT);
    }

    filtered = 0;

    for (k = 0; filters[k].key; k++) {
        if (a.value[k].len) {
            fuzz_assert(ngx_http_modelreg_utf8_valid(a.value[k].data,
                                                     a.value[k].len)
                        == NGX_OK);
            filtered = 1;
        }
    }

    fuzz_assert(a.filtered == filtered);

    /* the next page's Link asks for the same, with the token */

    fuzz_assert(ngx_http_modelreg_list_args_link(pool, &a, &base, route,
                                                 token, &link)
                == NGX_OK);

    fuzz_assert(link.len > base.len + 2 && link.data[0] == '<');
    fuzz_assert(ngx_strncmp(link.data + 1, base.data, base.len) == 0);

    lt = ngx_strlchr(link.data, link.data + link.len, '>');
    fuzz_assert(lt != NULL);
    fuzz_assert(link.data + link.len - lt == sizeof(">; rel=\"next\"") - 1);
    fuzz_assert(ngx_strncmp(lt, ">; rel=\"next\"", 13) == 0);

    back.data = link.data + 1 + base.len + ngx_strlen(route) + 1;
    back.len = lt - back.data;
    fuzz_assert(back.data[-1] == '?');

    ngx_memzero(&b, sizeof(b));
    b.filters = filters;

    fuzz_assert(ngx_http_modelreg_list_args_parse(pool, &back, &b, &msg)
                == NGX_OK);

    fuzz_assert(b.limit == a.limit);
    fuzz_assert(b.filtered == a.filtered);
    fuzz_assert(b.token.len == token->len);
    fuzz_assert(token->len == 0
                || ngx_memcmp(b.token.data, token->data, token->len) == 0);

    for (k = 0; filters[k].key; k++) {
        fuzz_assert(b.value[k].len == a.value[k].len);
        fuzz_assert(a.value[k].len == 0
                    || ngx_memcmp(b.value[k].data, a.value[k].data,
                                  a.value[k].len) == 0);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_str_t    q, token;
    fuzz_in_t    in;
    ngx_pool_t  *pool;

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    pool = fuzz_pool();

    fuzz_piece(&in, '\n', &q);
    token.data = in.p;
    token.len = in.end - in.p;

    /* the code under test sees exactly the bytes: no terminator after */

    q.data = fuzz_copy(pool, &q);
    token.data = fuzz_copy(pool, &token);

    check_split(pool, &q);
    check_unescape(pool, &q);
    check_decode(pool, &q);
    check_list(pool, &q, &token, models, "/models");
    check_list(pool, &q, &token, audit, "/audit");

    ngx_destroy_pool(pool);

    return 0;
}
