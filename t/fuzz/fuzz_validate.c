
/*
 * The input rules of validate.c and route.c, each against what API.md
 * says of it: UTF-8 (as jansson validates it, but no NUL), precision,
 * score, the upload's file name, ZIP media types, ILIKE escaping, route
 * matching and ids.  Input: the value; its last byte picks the rule.
 */


#include <math.h>
#include <jansson.h>

#include "fuzz.h"
#include "ngx_http_modelreg_validate.h"
#include "ngx_http_modelreg_route.h"


static ngx_int_t
is_id_char(u_char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


static void
check_utf8(ngx_str_t *v)
{
    json_t     *j;
    ngx_int_t   rc, want;

    rc = ngx_http_modelreg_utf8_valid(v->data, v->len);

    /* jansson's json_stringn() takes valid UTF-8, NUL included */

    j = json_stringn((char *) v->data, v->len);
    want = (j != NULL && ngx_strlchr(v->data, v->data + v->len, '\0') == NULL)
           ? NGX_OK : NGX_DECLINED;
    json_decref(j);

    fuzz_assert(rc == want);
}


static void
check_precision(ngx_str_t *v)
{
    u_char      out[4];
    size_t      len, i;
    ngx_int_t   rc, want;

    static const char  *known[] = { "fp32", "fp16", "int8", "int4" };

    want = NGX_DECLINED;

    for (i = 0; v->len == 4 && i < 4; i++) {
        if (ngx_strncasecmp(v->data, (u_char *) known[i], 4) == 0) {
            want = NGX_OK;
        }
    }

    rc = ngx_http_modelreg_precision(v, out, &len);

    fuzz_assert(rc == want);

    if (rc == NGX_OK) {
        fuzz_assert(len == 4);

        for (i = 0; i < 4; i++) {
            fuzz_assert(out[i] == ngx_tolower(v->data[i]));
        }
    }
}


static void
check_score(ngx_str_t *v)
{
    size_t      i, digits;
    double      d;

    if (ngx_http_modelreg_score(v, &d) != NGX_OK) {
        return;
    }

    fuzz_assert(isfinite(d));
    fuzz_assert(v->len > 0 && v->len < 64);

    digits = 0;

    for (i = 0; i < v->len; i++) {
        fuzz_assert(v->data[i] != '\0'
                    && ngx_strchr("0123456789+-.eE \t", v->data[i]) != NULL);
        digits += (v->data[i] >= '0' && v->data[i] <= '9');
    }

    fuzz_assert(digits > 0);
}


static void
check_file_name(ngx_str_t *v)
{
    u_char  *base, *p, dst[255], *q;
    size_t   len;

    len = ngx_http_modelreg_file_name(v, dst);

    fuzz_assert(len >= 1 && len <= 255);
    fuzz_assert(ngx_http_modelreg_utf8_valid(dst, len) == NGX_OK);
    fuzz_assert(dst[0] != '.');

    for (p = dst; p < dst + len; p++) {
        fuzz_assert(*p >= 0x20 && *p != 0x7f && *p != '/' && *p != '\\');
    }

    /* the base name's bytes, in order, some left out; or model.zip */

    base = v->data;

    for (p = v->data; p < v->data + v->len; p++) {
        if (*p == '/' || *p == '\\') {
            base = p + 1;
        }
    }

    q = base;

    for (p = dst; p < dst + len && q; p++) {
        q = ngx_strlchr(q, v->data + v->len, *p);
        q = q ? q + 1 : NULL;
    }

    fuzz_assert(q != NULL
                || (len == 9 && ngx_strncmp(dst, "model.zip", 9) == 0));
}


static void
check_zip_type(ngx_str_t *v)
{
    size_t      i, len;
    ngx_int_t   want;

    static const char  *types[] = {
        "application/zip", "multipart/x-zip", "application/zip-compressed",
        "application/x-zip-compressed", "application/x-zip",
        "application/octet-stream"
    };

    for (len = 0; len < v->len && v->data[len] != ';' && v->data[len] != ' ';
         len++)
    {
        /* void */
    }

    want = NGX_DECLINED;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (len == ngx_strlen(types[i])
            && ngx_strncasecmp(v->data, (u_char *) types[i], len) == 0)
        {
            want = NGX_OK;
        }
    }

    fuzz_assert(ngx_http_modelreg_zip_type(v) == want);
}


static void
check_like(ngx_pool_t *pool, ngx_str_t *v)
{
    u_char  *d, *p, *s;
    size_t   len;

    d = ngx_pnalloc(pool, 2 * v->len + 1);
    fuzz_assert(d != NULL);

    len = ngx_http_modelreg_like_escape(d, v->data, v->len);
    fuzz_assert(len >= v->len && len <= 2 * v->len);

    /* read as ILIKE reads it: "\x" is "x", and no bare % _ \ is left */

    s = v->data;

    for (p = d; p < d + len; p++) {
        if (*p == '\\') {
            p++;
            fuzz_assert(p < d + len);
            fuzz_assert(*p == '\\' || *p == '%' || *p == '_');

        } else {
            fuzz_assert(*p != '%' && *p != '_');
        }

        fuzz_assert(*p == *s);
        s++;
    }

    fuzz_assert(s == v->data + v->len);
}


static void
check_route(ngx_str_t *v)
{
    u_char                     *p;
    ngx_int_t                   rc, want;
    ngx_http_modelreg_route_t   rt;

    want = (v->len >= 16 && v->len <= 128) ? NGX_OK : NGX_DECLINED;

    for (p = v->data; p < v->data + v->len; p++) {
        if (!is_id_char(*p)) {
            want = NGX_DECLINED;
        }
    }

    fuzz_assert(ngx_http_modelreg_valid_id(v->data, v->len) == want);

    rc = ngx_http_modelreg_route_match(v->data, v->len, &rt);

    if (rc != NGX_OK) {
        fuzz_assert(rt.route == NGX_HTTP_MODELREG_ROUTE_NONE);
        return;
    }

    fuzz_assert(rt.route != NGX_HTTP_MODELREG_ROUTE_NONE);
    fuzz_assert(rt.methods != 0 && rt.allow != NULL);

    /* the id is one whole segment of the path, not empty */

    if (rt.id_kind) {
        fuzz_assert(rt.id.len > 0);
        fuzz_assert(rt.id.data > v->data
                    && rt.id.data + rt.id.len <= v->data + v->len);
        fuzz_assert(rt.id.data[-1] == '/');
        fuzz_assert(ngx_strlchr(rt.id.data, rt.id.data + rt.id.len, '/')
                    == NULL);
        fuzz_assert(rt.id.data + rt.id.len == v->data + v->len
                    || rt.id.data[rt.id.len] == '/');

    } else {
        fuzz_assert(rt.id.len == 0);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_str_t    v;
    fuzz_in_t    in;
    ngx_uint_t   rule;
    ngx_pool_t  *pool;

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    rule = fuzz_number(&in, 1);

    pool = fuzz_pool();

    fuzz_rest(pool, &in, &v);

    switch (rule % 7) {

    case 0:
        check_utf8(&v);
        break;

    case 1:
        check_precision(&v);
        break;

    case 2:
        check_score(&v);
        break;

    case 3:
        check_file_name(&v);
        break;

    case 4:
        check_zip_type(&v);
        break;

    case 5:
        check_like(pool, &v);
        break;

    default:
        check_route(&v);
        break;
    }

    ngx_destroy_pool(pool);

    return 0;
}
