/*
 * Copyright (C) modelreg authors
 *
 * Query strings and form bodies: one splitter into key=value pairs, one
 * %XX decoder, and the form decoder (application/x-www-form-urlencoded)
 * made of the two.  Pure functions, unit-tested.
 */


#include "ngx_http_modelreg_form.h"


static ngx_int_t ngx_http_modelreg_form_hex(u_char c);


/*
 * "k1=v1&k2&&k3=" into pairs as they are written (not decoded): empty
 * segments are skipped, a key without "=" has an empty value.
 */

ngx_int_t
ngx_http_modelreg_args_split(u_char *p, u_char *end, ngx_array_t *args)
{
    u_char                   *eq, *amp;
    ngx_http_modelreg_arg_t  *a;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            p++;
            continue;
        }

        a = ngx_array_push(args);
        if (a == NULL) {
            return NGX_ERROR;
        }

        eq = ngx_strlchr(p, amp, '=');
        if (eq == NULL) {
            eq = amp;
        }

        a->key.data = p;
        a->key.len = eq - p;
        a->value.data = (eq < amp) ? eq + 1 : amp;
        a->value.len = amp - a->value.data;

        p = amp;
    }

    return NGX_OK;
}


/*
 * %XX into its byte (a "%" not followed by two hex digits stays as it
 * is); with "plus", "+" into a space.  "dst" may be "src".
 */

size_t
ngx_http_modelreg_unescape(u_char *dst, u_char *src, size_t len,
    ngx_uint_t plus)
{
    u_char     *d;
    ngx_int_t   h, l;

    for (d = dst; len; len--) {

        if (*src == '+' && plus) {
            *d++ = ' ';
            src++;
            continue;
        }

        if (*src == '%' && len >= 3) {
            h = ngx_http_modelreg_form_hex(src[1]);
            l = ngx_http_modelreg_form_hex(src[2]);

            if (h >= 0 && l >= 0) {
                *d++ = (u_char) (h << 4 | l);
                src += 3;
                len -= 2;
                continue;
            }
        }

        *d++ = *src++;
    }

    return d - dst;
}


/* application/x-www-form-urlencoded: "+" is a space, %XX a byte */

ngx_int_t
ngx_http_modelreg_form_decode(ngx_pool_t *pool, u_char *p, u_char *end,
    ngx_array_t *args)
{
    u_char                   *d;
    ngx_uint_t                i, first;
    ngx_http_modelreg_arg_t  *a;

    first = args->nelts;

    if (ngx_http_modelreg_args_split(p, end, args) != NGX_OK) {
        return NGX_ERROR;
    }

    a = args->elts;

    /* copies: the request's own bytes stay as they came */

    for (i = first; i < args->nelts; i++) {
        d = ngx_pnalloc(pool, a[i].key.len + a[i].value.len + 2);
        if (d == NULL) {
            return NGX_ERROR;
        }

        a[i].key.len = ngx_http_modelreg_unescape(d, a[i].key.data,
                                                  a[i].key.len, 1);
        a[i].key.data = d;
        d += a[i].key.len;
        *d++ = '\0';

        a[i].value.len = ngx_http_modelreg_unescape(d, a[i].value.data,
                                                    a[i].value.len, 1);
        a[i].value.data = d;
        d[a[i].value.len] = '\0';
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_form_hex(u_char c)
{
    c |= 0x20;

    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
