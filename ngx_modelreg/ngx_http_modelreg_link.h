
/*
 * Copyright (C) modelreg authors
 *
 * Download links that expire (link.c): their signature and arguments.
 * Pure functions, no nginx I/O, unit tested (t/unit/test_link.c).
 */


#ifndef _NGX_HTTP_MODELREG_LINK_H_INCLUDED_
#define _NGX_HTTP_MODELREG_LINK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* modelreg_link_key: the least a key may have, in bytes */
#define NGX_HTTP_MODELREG_LINK_KEY_MIN      32

/* POST /models/{id}/links: "expires_in", seconds */
#define NGX_HTTP_MODELREG_LINK_TTL_MIN      1
#define NGX_HTTP_MODELREG_LINK_TTL_MAX      604800
#define NGX_HTTP_MODELREG_LINK_TTL_DEFAULT  3600

/* base64url of an HMAC-SHA256, without padding */
#define NGX_HTTP_MODELREG_LINK_SIG_LEN      43


/* a link's query arguments, as sent (not unescaped) */
typedef struct {
    ngx_str_t                      expires;
    ngx_str_t                      signature;
} ngx_http_modelreg_link_args_t;


/*
 * Finds "expires" and "signature" in a query string (names exact, as
 * links write them).  NGX_DECLINED: neither is there, the request is no
 * link; NGX_ERROR: one of them twice; NGX_OK otherwise (either may still
 * be missing: then the link is invalid).
 */
ngx_int_t ngx_http_modelreg_link_args(u_char *p, size_t len,
    ngx_http_modelreg_link_args_t *la);

/* decimal digits, no sign, no leading zero (so not 0), fits time_t */
ngx_int_t ngx_http_modelreg_link_expires(ngx_str_t *s, time_t *t);

/*
 * The signature of "path" until "expires" (its decimal text): the
 * base64url of HMAC-SHA256(key, path "\n" expires), written to "sig"
 * (NGX_HTTP_MODELREG_LINK_SIG_LEN bytes); the message is put together
 * in "pool".  NGX_ERROR if that or OpenSSL fails.
 */
ngx_int_t ngx_http_modelreg_link_sign(ngx_pool_t *pool, ngx_str_t *key,
    ngx_str_t *path, ngx_str_t *expires, u_char *sig);

/*
 * NGX_OK if "la" is a signature of "path" by "key" that has not expired
 * at "now"; the signatures are compared in constant time.  NGX_DECLINED
 * otherwise, NGX_ERROR if OpenSSL fails.
 */
ngx_int_t ngx_http_modelreg_link_verify(ngx_pool_t *pool, ngx_str_t *key,
    ngx_str_t *path, ngx_http_modelreg_link_args_t *la, time_t now);


#endif /* _NGX_HTTP_MODELREG_LINK_H_INCLUDED_ */
