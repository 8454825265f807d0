
/*
 * Copyright (C) modelreg authors
 */


#include <math.h>
#include <stdlib.h>

#include "ngx_http_modelreg_validate.h"
#include "ngx_http_modelreg_route.h"


static size_t ngx_http_modelreg_utf8_seq(u_char *p, size_t len);
static ngx_int_t ngx_http_modelreg_zip_grow(ngx_http_modelreg_zip_t *z,
    ngx_pool_t *pool, off_t size, size_t need);
static u_char *ngx_http_modelreg_token_digits(u_char *dst, int64_t v);


static const char  *ngx_http_modelreg_precisions[] = {
    "fp32", "fp16", "int8", "int4", NULL
};


static const char  *ngx_http_modelreg_zip_types[] = {
    "application/zip",
    "multipart/x-zip",
    "application/zip-compressed",
    "application/x-zip-compressed",
    "application/x-zip",
    "application/octet-stream",
    NULL
};


ngx_int_t
ngx_http_modelreg_utf8_valid(u_char *p, size_t len)
{
    size_t  n;

    while (len) {
        n = ngx_http_modelreg_utf8_seq(p, len);
        if (n == 0) {
            return NGX_DECLINED;
        }

        p += n;
        len -= n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_valid_alias(u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 63 || *p == '.' || *p == '_' || *p == '-') {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')
            || p[i] == '.' || p[i] == '_' || p[i] == '-')
        {
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the length of the valid UTF-8 sequence at p, or 0 */

static size_t
ngx_http_modelreg_utf8_seq(u_char *p, size_t len)
{
    size_t    n, i;
    uint32_t  c, min;

    c = p[0];

    /* NUL is valid UTF-8, but no PostgreSQL text can hold it */

    if (c == 0) {
        return 0;
    }

    if (c < 0x80) {
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2; c &= 0x1f; min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3; c &= 0x0f; min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4; c &= 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (p[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }

    return n;
}


ngx_int_t
ngx_http_modelreg_precision(ngx_str_t *value, u_char *out, size_t *out_len)
{
    size_t        i;
    const char  **pr;

    if (value->len != 4) {
        return NGX_DECLINED;
    }

    for (i = 0; i < 4; i++) {
        out[i] = ngx_tolower(value->data[i]);
    }

    for (pr = ngx_http_modelreg_precisions; *pr; pr++) {
        if (ngx_strncmp(out, *pr, 4) == 0) {
            *out_len = 4;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_modelreg_score(ngx_str_t *value, double *score)
{
    char       buf[64], *end;
    size_t     i;
    double     d;
    ngx_err_t  err;

    if (value->len == 0 || value->len >= sizeof(buf)) {
        return NGX_DECLINED;
    }

    for (i = 0; i < value->len; i++) {
        /* strtod() takes "inf", "nan" and hex: only decimal text here */
        if (ngx_strchr("0123456789+-.eE \t", value->data[i]) == NULL
            || value->data[i] == '\0')
        {
            return NGX_DECLINED;
        }

        buf[i] = value->data[i];
    }

    buf[i] = '\0';

    ngx_set_errno(0);
    d = strtod(buf, &end);
    err = ngx_errno;

    while (*end == ' ' || *end == '\t') {
        end++;
    }

    if (end == buf || *end != '\0' || !isfinite(d)) {
        return NGX_DECLINED;
    }

    /*
     * PostgreSQL's float8in() parses the same text with strtod() and
     * refuses what overflows or underflows to zero (1e-400), but keeps
     * denormals (4e-320, ERANGE on glibc): so do we, or a value that
     * passed here would fail in the INSERT after the file was stored
     */

    if (err == ERANGE && d == 0.0) {
        return NGX_DECLINED;
    }

    for (i = 0; buf[i] == ' ' || buf[i] == '\t'; i++) { /* void */ }

    if (buf[i] == '\0') {
        return NGX_DECLINED;
    }

    *score = d;

    return NGX_OK;
}


size_t
ngx_http_modelreg_file_name(ngx_str_t *name, u_char *dst)
{
    u_char  *p, *end, *base, *d;
    size_t   n;

    p = name->data;
    end = p + name->len;
    base = p;

    for ( /* void */ ; p < end; p++) {
        if (*p == '/' || *p == '\\') {
            base = p + 1;
        }
    }

    d = dst;

    for (p = base; p < end; p += n) {

        n = ngx_http_modelreg_utf8_seq(p, end - p);

        if (n == 0) {
            n = 1;              /* not UTF-8: dropped */
            continue;
        }

        if (n == 1 && (*p < 0x20 || *p == 0x7f)) {
            continue;
        }

        if (n == 1 && *p == '.' && d == dst) {
            continue;           /* leading dots */
        }

        if ((size_t) (d - dst) + n > 255) {
            break;
        }

        d = ngx_cpymem(d, p, n);
    }

    if (d == dst) {
        d = ngx_cpymem(dst, "model.zip", sizeof("model.zip") - 1);
    }

    return d - dst;
}


ngx_int_t
ngx_http_modelreg_zip_type(ngx_str_t *content_type)
{
    size_t        len;
    const char  **t;

    len = 0;

    while (len < content_type->len && content_type->data[len] != ';'
           && content_type->data[len] != ' ')
    {
        len++;
    }

    for (t = ngx_http_modelreg_zip_types; *t; t++) {
        if (ngx_strlen(*t) == len
            && ngx_strncasecmp(content_type->data, (u_char *) *t, len) == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_modelreg_zip_check(u_char *head, u_char *tail, size_t tail_len,
    off_t size)
{
    u_char  *p;
    size_t   comment;

    if (size < 22 || tail_len < 22) {
        return NGX_DECLINED;
    }

    /* a local file header, or the EOCD of an empty archive */

    if (ngx_strncmp(head, "PK\x03\x04", 4) != 0
        && ngx_strncmp(head, "PK\x05\x06", 4) != 0)
    {
        return NGX_DECLINED;
    }

    /* an EOCD whose comment ends exactly at the end of the file */

    for (p = tail + tail_len - 22; p >= tail; p--) {
        if (p[0] != 'P' || p[1] != 'K' || p[2] != 0x05 || p[3] != 0x06) {
            continue;
        }

        comment = p[20] | (p[21] << 8);

        if (p + 22 + comment == tail + tail_len) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_modelreg_zip_add(ngx_http_modelreg_zip_t *z, ngx_pool_t *pool,
    off_t size, u_char *p, size_t len)
{
    size_t  n;

    if (size < 4) {
        n = ngx_min(len, (size_t) (4 - size));
        ngx_memcpy(z->head + size, p, n);
    }

    /* the last NGX_HTTP_MODELREG_ZIP_TAIL bytes, in a ring */

    if (z->cap < NGX_HTTP_MODELREG_ZIP_TAIL
        && ngx_http_modelreg_zip_grow(z, pool, size, (size_t) size + len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (len >= NGX_HTTP_MODELREG_ZIP_TAIL) {
        ngx_memcpy(z->tail, p + len - NGX_HTTP_MODELREG_ZIP_TAIL,
                   NGX_HTTP_MODELREG_ZIP_TAIL);
        z->pos = 0;

    } else {
        n = ngx_min(len, NGX_HTTP_MODELREG_ZIP_TAIL - z->pos);
        ngx_memcpy(z->tail + z->pos, p, n);
        ngx_memcpy(z->tail, p + n, len - n);
        z->pos = (z->pos + len) % NGX_HTTP_MODELREG_ZIP_TAIL;
    }

    return NGX_OK;
}


/*
 * The ring holds min(size, NGX_HTTP_MODELREG_ZIP_TAIL) bytes: until it is
 * full they lie from its start in order, so growing it is a copy.
 */

static ngx_int_t
ngx_http_modelreg_zip_grow(ngx_http_modelreg_zip_t *z, ngx_pool_t *pool,
    off_t size, size_t need)
{
    u_char  *p;
    size_t   cap;

    if (need <= z->cap) {
        return NGX_OK;
    }

    cap = ngx_max(need, ngx_max(2 * z->cap, NGX_HTTP_MODELREG_ZIP_TAIL_MIN));
    cap = ngx_min(cap, NGX_HTTP_MODELREG_ZIP_TAIL);

    p = ngx_palloc(pool, cap);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (z->tail) {
        ngx_memcpy(p, z->tail, (size_t) size);
        (void) ngx_pfree(pool, z->tail);
    }

    z->tail = p;
    z->cap = cap;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_zip_done(ngx_http_modelreg_zip_t *z, ngx_pool_t *pool,
    off_t size)
{
    u_char     *tail;
    size_t      tail_len;
    ngx_int_t   rc;

    /* the ring of the last bytes, in order */

    tail_len = (size_t) ngx_min(size, NGX_HTTP_MODELREG_ZIP_TAIL);
    tail = z->tail;

    if (size > NGX_HTTP_MODELREG_ZIP_TAIL && z->pos) {
        tail = ngx_pnalloc(pool, tail_len);
        if (tail == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(tail, z->tail + z->pos, tail_len - z->pos);
        ngx_memcpy(tail + tail_len - z->pos, z->tail, z->pos);
    }

    rc = ngx_http_modelreg_zip_check(z->head, tail, tail_len, size);

    /* (an import checks one file per model: the copy goes at once) */

    if (tail != z->tail) {
        ngx_pfree(pool, tail);
    }

    return rc;
}


size_t
ngx_http_modelreg_like_escape(u_char *dst, u_char *src, size_t len)
{
    u_char  *d;

    for (d = dst; len; len--, src++) {
        if (*src == '\\' || *src == '%' || *src == '_') {
            *d++ = '\\';
        }

        *d++ = *src;
    }

    return d - dst;
}


u_char *
ngx_http_modelreg_token_encode(u_char *dst, int64_t us, ngx_str_t *id)
{
    dst = ngx_http_modelreg_token_digits(dst, us);
    *dst++ = '.';

    return ngx_cpymem(dst, id->data, id->len);
}


ngx_int_t
ngx_http_modelreg_token_decode(ngx_str_t *token, int64_t *us, ngx_str_t *id)
{
    u_char   *p, *end;
    int64_t   v;

    p = token->data;
    end = p + token->len;
    v = 0;

    if (p == end || *p < '0' || *p > '9') {
        return NGX_DECLINED;
    }

    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');

        if (v >= NGX_HTTP_MODELREG_TOKEN_US_MAX) {
            return NGX_DECLINED;
        }
    }

    if (p == end || *p++ != '.') {
        return NGX_DECLINED;
    }

    if (ngx_http_modelreg_valid_id(p, end - p) != NGX_OK) {
        return NGX_DECLINED;
    }

    *us = v;
    id->data = p;
    id->len = end - p;

    return NGX_OK;
}


u_char *
ngx_http_modelreg_audit_token_encode(u_char *dst, int64_t id)
{
    return ngx_http_modelreg_token_digits(dst, id);
}


/* a number of a page token: never negative */

static u_char *
ngx_http_modelreg_token_digits(u_char *dst, int64_t v)
{
    u_char   digits[NGX_INT64_LEN], *p;

    p = digits + NGX_INT64_LEN;

    do {
        *--p = (u_char) ('0' + v % 10);
        v /= 10;
    } while (v > 0);

    return ngx_cpymem(dst, p, digits + NGX_INT64_LEN - p);
}


ngx_int_t
ngx_http_modelreg_audit_token_decode(ngx_str_t *token, int64_t *id)
{
    u_char   *p, *end;
    int64_t   v, d;

    p = token->data;
    end = p + token->len;
    v = 0;

    if (p == end) {
        return NGX_DECLINED;
    }

    for ( /* void */ ; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        d = *p - '0';

        if (v > (INT64_MAX - d) / 10) {
            return NGX_DECLINED;
        }

        v = v * 10 + d;
    }

    *id = v;

    return NGX_OK;
}
