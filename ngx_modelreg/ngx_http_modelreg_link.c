
/*
 * Copyright (C) modelreg authors
 *
 * Download links that expire: "<path>?expires=<unix>&signature=<sig>",
 * where sig is the base64url (no padding) of HMAC-SHA256 over the path
 * and the expiry, "<path>\n<expires>".  The path is the URI as nginx
 * normalised it (percent-decoded, dot segments resolved), the one the
 * request is routed by, so a link names exactly one file; the expiry
 * follows the last newline and is digits only, so no two (path, expires)
 * pairs make the same message.
 *
 * Everything here is strict on purpose: the arguments are matched by
 * their exact names, each at most once; the expiry in its one canonical
 * spelling; the signature by comparing the expected text with the one
 * sent, in constant time, so a non-canonical base64url never passes.
 */


#include "ngx_http_modelreg_link.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>


static ngx_int_t ngx_http_modelreg_link_arg(ngx_str_t *name, u_char *p,
    u_char *end, ngx_str_t *value);


ngx_int_t
ngx_http_modelreg_link_args(u_char *p, size_t len,
    ngx_http_modelreg_link_args_t *la)
{
    u_char     *end, *amp;
    ngx_int_t   rc, seen;
    ngx_str_t   expires = ngx_string("expires");
    ngx_str_t   signature = ngx_string("signature");

    ngx_str_null(&la->expires);
    ngx_str_null(&la->signature);

    seen = 0;
    end = p + len;

    while (p < end) {

        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        rc = ngx_http_modelreg_link_arg(&expires, p, amp, &la->expires);

        if (rc == NGX_DECLINED) {
            rc = ngx_http_modelreg_link_arg(&signature, p, amp,
                                            &la->signature);
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            seen = 1;
        }

        if (amp == end) {
            break;
        }

        p = amp + 1;
    }

    return seen ? NGX_OK : NGX_DECLINED;
}


/* "name" or "name=value" between p and end; NGX_ERROR: a second one */

static ngx_int_t
ngx_http_modelreg_link_arg(ngx_str_t *name, u_char *p, u_char *end,
    ngx_str_t *value)
{
    if ((size_t) (end - p) < name->len
        || ngx_strncmp(p, name->data, name->len) != 0
        || (p + name->len < end && p[name->len] != '='))
    {
        return NGX_DECLINED;
    }

    if (value->data) {
        return NGX_ERROR;
    }

    p += name->len;

    if (p < end) {
        p++;                                            /* '=' */
    }

    /* a present but empty value: a non-NULL pointer of length 0 */

    value->data = p;
    value->len = end - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_link_expires(ngx_str_t *s, time_t *t)
{
    size_t  i;
    time_t  v, d;

    if (s->len == 0 || s->data[0] == '0') {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {

        if (s->data[i] < '0' || s->data[i] > '9') {
            return NGX_ERROR;
        }

        d = s->data[i] - '0';

        if (v > (NGX_MAX_TIME_T_VALUE - d) / 10) {
            return NGX_ERROR;
        }

        v = v * 10 + d;
    }

    *t = v;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_link_sign(ngx_pool_t *pool, ngx_str_t *key,
    ngx_str_t *path, ngx_str_t *expires, u_char *sig)
{
    u_char        *msg, *p, md[EVP_MAX_MD_SIZE];
    unsigned int   n;
    ngx_str_t      src, dst;

    msg = ngx_pnalloc(pool, path->len + 1 + expires->len);
    if (msg == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(msg, path->data, path->len);
    *p++ = '\n';
    p = ngx_cpymem(p, expires->data, expires->len);

    if (HMAC(EVP_sha256(), key->data, (int) key->len, msg, p - msg, md, &n)
        == NULL
        || n != 32)
    {
        return NGX_ERROR;
    }

    src.data = md;
    src.len = n;
    dst.data = sig;

    ngx_encode_base64url(&dst, &src);

    ngx_explicit_memzero(md, sizeof(md));

    return (dst.len == NGX_HTTP_MODELREG_LINK_SIG_LEN) ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_modelreg_link_verify(ngx_pool_t *pool, ngx_str_t *key,
    ngx_str_t *path, ngx_http_modelreg_link_args_t *la, time_t now)
{
    time_t  expires;
    u_char  sig[NGX_HTTP_MODELREG_LINK_SIG_LEN];

    if (la->expires.data == NULL
        || la->signature.len != NGX_HTTP_MODELREG_LINK_SIG_LEN
        || ngx_http_modelreg_link_expires(&la->expires, &expires) != NGX_OK
        || expires <= now)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_modelreg_link_sign(pool, key, path, &la->expires, sig)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (CRYPTO_memcmp(sig, la->signature.data,
                      NGX_HTTP_MODELREG_LINK_SIG_LEN)
        != 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
