
/*
 * Copyright (C) modelreg authors
 */


#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "ngx_http_modelreg_sigv4.h"
#include "ngx_http_modelreg_form.h"


typedef struct {
    ngx_str_t     key;          /* encoded */
    ngx_str_t     value;        /* encoded */
} ngx_http_modelreg_sigv4_param_t;


static int ngx_libc_cdecl ngx_http_modelreg_sigv4_cmp_header(const void *a,
    const void *b);
static int ngx_libc_cdecl ngx_http_modelreg_sigv4_cmp_param(const void *a,
    const void *b);
static ngx_int_t ngx_http_modelreg_sigv4_query(ngx_pool_t *pool,
    ngx_str_t *query, ngx_str_t *out);
static u_char *ngx_http_modelreg_sigv4_value(u_char *dst, ngx_str_t *v);
static void ngx_http_modelreg_hmac(u_char *key, size_t key_len, u_char *data,
    size_t len, u_char out[32]);


/* a header, lowercased, with its position to keep duplicates in order */

typedef struct {
    u_char       *name;
    size_t        len;
    ngx_uint_t    index;
    ngx_str_t    *value;
} ngx_http_modelreg_sigv4_sorted_t;


/*
 * nginx's "uri_component" escaping is SigV4's: it keeps exactly
 * A-Z a-z 0-9 - . _ ~ and writes every other byte as uppercase %XX
 * (the same table since nginx 1.1.6; t/unit/test_sigv4.c checks each
 * byte, t/20-s3.t a key of them with a real store).  A path keeps its
 * "/", so it goes segment by segment.
 */

u_char *
ngx_http_modelreg_sigv4_encode(u_char *dst, u_char *src, size_t len,
    ngx_uint_t slash)
{
    u_char  *end, *sep;

    end = src + len;

    for ( ;; ) {
        sep = slash ? ngx_strlchr(src, end, '/') : NULL;

        dst = (u_char *) ngx_escape_uri(dst, src, (sep ? sep : end) - src,
                                        NGX_ESCAPE_URI_COMPONENT);
        if (sep == NULL) {
            return dst;
        }

        *dst++ = '/';
        src = sep + 1;
    }
}


ngx_int_t
ngx_http_modelreg_sigv4_canonical(ngx_pool_t *pool,
    ngx_http_modelreg_sigv4_t *s, ngx_str_t *creq, ngx_str_t *signed_headers)
{
    u_char                           *p, *sh, *q;
    size_t                            len;
    ngx_str_t                         query;
    ngx_uint_t                        i, n;
    ngx_http_modelreg_sigv4_sorted_t  sorted[NGX_HTTP_MODELREG_SIGV4_MAX_HDRS];

    if (s->nheaders > NGX_HTTP_MODELREG_SIGV4_MAX_HDRS) {
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_sigv4_query(pool, &s->query, &query) != NGX_OK) {
        return NGX_ERROR;
    }

    len = s->method.len + 3 * s->path.len + query.len + s->payload.len + 16;

    for (i = 0; i < s->nheaders; i++) {
        len += 2 * (s->headers[i].name.len + 2) + s->headers[i].value.len + 2;

        q = ngx_pnalloc(pool, s->headers[i].name.len);
        if (q == NULL) {
            return NGX_ERROR;
        }

        ngx_strlow(q, s->headers[i].name.data, s->headers[i].name.len);

        sorted[i].name = q;
        sorted[i].len = s->headers[i].name.len;
        sorted[i].index = i;
        sorted[i].value = &s->headers[i].value;
    }

    ngx_qsort(sorted, s->nheaders, sizeof(ngx_http_modelreg_sigv4_sorted_t),
              ngx_http_modelreg_sigv4_cmp_header);

    creq->data = ngx_pnalloc(pool, len);
    sh = ngx_pnalloc(pool, len);

    if (creq->data == NULL || sh == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(creq->data, s->method.data, s->method.len);
    *p++ = '\n';

    if (s->path.len == 0) {
        *p++ = '/';

    } else {
        p = ngx_http_modelreg_sigv4_encode(p, s->path.data, s->path.len, 1);
    }

    *p++ = '\n';
    p = ngx_cpymem(p, query.data, query.len);
    *p++ = '\n';

    signed_headers->data = sh;
    q = sh;

    /* name:value1,value2 (duplicates joined in their order) */

    for (i = 0; i < s->nheaders; i = n) {
        p = ngx_cpymem(p, sorted[i].name, sorted[i].len);
        *p++ = ':';
        p = ngx_http_modelreg_sigv4_value(p, sorted[i].value);

        for (n = i + 1;
             n < s->nheaders && sorted[n].len == sorted[i].len
             && ngx_strncmp(sorted[n].name, sorted[i].name, sorted[i].len)
                == 0;
             n++)
        {
            *p++ = ',';
            p = ngx_http_modelreg_sigv4_value(p, sorted[n].value);
        }

        *p++ = '\n';

        if (q != sh) {
            *q++ = ';';
        }

        q = ngx_cpymem(q, sorted[i].name, sorted[i].len);
    }

    signed_headers->len = q - sh;

    *p++ = '\n';
    p = ngx_cpymem(p, sh, signed_headers->len);
    *p++ = '\n';
    p = ngx_cpymem(p, s->payload.data, s->payload.len);

    creq->len = p - creq->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_sigv4_string_to_sign(ngx_pool_t *pool,
    ngx_http_modelreg_sigv4_t *s, ngx_str_t *creq, ngx_str_t *sts)
{
    u_char  *p;

    if (s->date.len < 8) {
        return NGX_ERROR;
    }

    sts->data = ngx_pnalloc(pool, sizeof("AWS4-HMAC-SHA256\n") + s->date.len
                                  + 8 + s->region.len + s->service.len
                                  + sizeof("///aws4_request\n") + 64);
    if (sts->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(sts->data, "AWS4-HMAC-SHA256\n",
                   sizeof("AWS4-HMAC-SHA256\n") - 1);
    p = ngx_cpymem(p, s->date.data, s->date.len);
    *p++ = '\n';
    p = ngx_cpymem(p, s->date.data, 8);
    *p++ = '/';
    p = ngx_cpymem(p, s->region.data, s->region.len);
    *p++ = '/';
    p = ngx_cpymem(p, s->service.data, s->service.len);
    p = ngx_cpymem(p, "/aws4_request\n", sizeof("/aws4_request\n") - 1);

    ngx_http_modelreg_sha256_hex(p, creq->data, creq->len);

    sts->len = p + 64 - sts->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_sigv4_key(ngx_str_t *secret, ngx_str_t *date,
    ngx_str_t *region, ngx_str_t *service, u_char key[32])
{
    u_char  k[4 + 256];

    if (secret->len > 256 || date->len < 8) {
        return NGX_ERROR;
    }

    ngx_memcpy(k, "AWS4", 4);
    ngx_memcpy(k + 4, secret->data, secret->len);

    ngx_http_modelreg_hmac(k, 4 + secret->len, date->data, 8, key);
    ngx_http_modelreg_hmac(key, 32, region->data, region->len, key);
    ngx_http_modelreg_hmac(key, 32, service->data, service->len, key);
    ngx_http_modelreg_hmac(key, 32, (u_char *) "aws4_request",
                           sizeof("aws4_request") - 1, key);

    ngx_explicit_memzero(k, sizeof(k));

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_sigv4_authorization(ngx_pool_t *pool,
    ngx_http_modelreg_sigv4_t *s, ngx_str_t *access_key, u_char key[32],
    ngx_str_t *authorization)
{
    u_char     *p, sig[32];
    ngx_str_t   creq, sh, sts;

    if (ngx_http_modelreg_sigv4_canonical(pool, s, &creq, &sh) != NGX_OK
        || ngx_http_modelreg_sigv4_string_to_sign(pool, s, &creq, &sts)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_modelreg_hmac(key, 32, sts.data, sts.len, sig);

    /* Credential=<key>/<date>/<region>/<service>/aws4_request, ... */

    authorization->data = ngx_pnalloc(pool,
                                sizeof("AWS4-HMAC-SHA256 Credential=") - 1
                                + access_key->len + sizeof("/12345678/") - 1
                                + s->region.len + sizeof("/") - 1
                                + s->service.len
                                + sizeof("/aws4_request, SignedHeaders=") - 1
                                + sh.len + sizeof(", Signature=") - 1 + 64);
    if (authorization->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(authorization->data, "AWS4-HMAC-SHA256 Credential=",
                   sizeof("AWS4-HMAC-SHA256 Credential=") - 1);
    p = ngx_cpymem(p, access_key->data, access_key->len);
    *p++ = '/';
    p = ngx_cpymem(p, s->date.data, 8);
    *p++ = '/';
    p = ngx_cpymem(p, s->region.data, s->region.len);
    *p++ = '/';
    p = ngx_cpymem(p, s->service.data, s->service.len);
    p = ngx_cpymem(p, "/aws4_request, SignedHeaders=",
                   sizeof("/aws4_request, SignedHeaders=") - 1);
    p = ngx_cpymem(p, sh.data, sh.len);
    p = ngx_cpymem(p, ", Signature=", sizeof(", Signature=") - 1);
    p = ngx_hex_dump(p, sig, 32);

    authorization->len = p - authorization->data;

    return NGX_OK;
}


void
ngx_http_modelreg_sha256_hex(u_char *dst, u_char *data, size_t len)
{
    u_char  md[SHA256_DIGEST_LENGTH];

    SHA256(data, len, md);
    ngx_hex_dump(dst, md, SHA256_DIGEST_LENGTH);
}


/*
 * The canonical query: every name and value decoded, then encoded again
 * (so "%41" and "A" sign alike), sorted by name then value; a name without
 * "=" gets an empty value ("k=").
 */

static ngx_int_t
ngx_http_modelreg_sigv4_query(ngx_pool_t *pool, ngx_str_t *query,
    ngx_str_t *out)
{
    u_char                           *p, *d, *tmp;
    size_t                            n;
    ngx_uint_t                        i, np;
    ngx_array_t                       args;
    ngx_http_modelreg_arg_t          *a;
    ngx_http_modelreg_sigv4_param_t   params[NGX_HTTP_MODELREG_SIGV4_MAX_ARGS];

    ngx_str_null(out);

    if (query->len == 0) {
        out->data = (u_char *) "";
        return NGX_OK;
    }

    tmp = ngx_pnalloc(pool, query->len);
    d = ngx_pnalloc(pool, 3 * query->len + 1);
    out->data = ngx_pnalloc(pool, 3 * query->len + 1);

    if (tmp == NULL || d == NULL || out->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(&args, pool, 8, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_http_modelreg_args_split(query->data,
                                        query->data + query->len, &args)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (args.nelts > NGX_HTTP_MODELREG_SIGV4_MAX_ARGS) {
        return NGX_ERROR;
    }

    a = args.elts;
    np = args.nelts;

    for (i = 0; i < np; i++) {
        n = ngx_http_modelreg_unescape(tmp, a[i].key.data, a[i].key.len, 0);
        params[i].key.data = d;
        d = ngx_http_modelreg_sigv4_encode(d, tmp, n, 0);
        params[i].key.len = d - params[i].key.data;

        n = ngx_http_modelreg_unescape(tmp, a[i].value.data, a[i].value.len,
                                       0);
        params[i].value.data = d;
        d = ngx_http_modelreg_sigv4_encode(d, tmp, n, 0);
        params[i].value.len = d - params[i].value.data;
    }

    ngx_qsort(params, np, sizeof(ngx_http_modelreg_sigv4_param_t),
              ngx_http_modelreg_sigv4_cmp_param);

    p = out->data;

    for (i = 0; i < np; i++) {
        if (i) {
            *p++ = '&';
        }

        p = ngx_cpymem(p, params[i].key.data, params[i].key.len);
        *p++ = '=';
        p = ngx_cpymem(p, params[i].value.data, params[i].value.len);
    }

    out->len = p - out->data;

    return NGX_OK;
}


/* a header value: trimmed, inner runs of blanks and line folds as one */

static u_char *
ngx_http_modelreg_sigv4_value(u_char *dst, ngx_str_t *v)
{
    u_char      *p, *end;
    ngx_uint_t   blank;

    p = v->data;
    end = p + v->len;

    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    while (end > p
           && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'
               || end[-1] == '\n'))
    {
        end--;
    }

    blank = 0;

    for ( /* void */ ; p < end; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            blank = 1;
            continue;
        }

        if (blank) {
            *dst++ = ' ';
            blank = 0;
        }

        *dst++ = *p;
    }

    return dst;
}


static int ngx_libc_cdecl
ngx_http_modelreg_sigv4_cmp_header(const void *a, const void *b)
{
    const ngx_http_modelreg_sigv4_sorted_t  *x = a, *y = b;

    int  rc;

    rc = ngx_strncmp(x->name, y->name, ngx_min(x->len, y->len));

    if (rc == 0) {
        rc = (int) x->len - (int) y->len;
    }

    /* equal names keep the order they were given in */

    return rc ? rc : (int) x->index - (int) y->index;
}


static int ngx_libc_cdecl
ngx_http_modelreg_sigv4_cmp_param(const void *a, const void *b)
{
    const ngx_http_modelreg_sigv4_param_t  *x = a, *y = b;

    int  rc;

    rc = ngx_strncmp(x->key.data, y->key.data,
                     ngx_min(x->key.len, y->key.len));

    if (rc == 0) {
        rc = (int) x->key.len - (int) y->key.len;
    }

    if (rc == 0) {
        rc = ngx_strncmp(x->value.data, y->value.data,
                         ngx_min(x->value.len, y->value.len));

        if (rc == 0) {
            rc = (int) x->value.len - (int) y->value.len;
        }
    }

    return rc;
}


static void
ngx_http_modelreg_hmac(u_char *key, size_t key_len, u_char *data, size_t len,
    u_char out[32])
{
    unsigned int  n;
    u_char        md[EVP_MAX_MD_SIZE];

    n = sizeof(md);
    HMAC(EVP_sha256(), key, (int) key_len, data, len, md, &n);
    ngx_memcpy(out, md, 32);
}

