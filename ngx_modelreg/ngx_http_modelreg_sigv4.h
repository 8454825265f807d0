
/*
 * Copyright (C) modelreg authors
 *
 * AWS Signature Version 4, S3 style (each path segment encoded once, no
 * path normalisation): canonical request, string to sign, signing key,
 * Authorization header.  Pure functions over OpenSSL, unit tested against
 * AWS's published vectors.
 */


#ifndef _NGX_HTTP_MODELREG_SIGV4_H_INCLUDED_
#define _NGX_HTTP_MODELREG_SIGV4_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_MODELREG_SIGV4_MAX_HDRS  32
#define NGX_HTTP_MODELREG_SIGV4_MAX_ARGS  64


typedef struct {
    ngx_str_t     name;
    ngx_str_t     value;
} ngx_http_modelreg_sigv4_header_t;


typedef struct {
    ngx_str_t                          method;
    ngx_str_t                          path;       /* decoded; "/" kept */
    ngx_str_t                          query;      /* as on the wire */
    ngx_http_modelreg_sigv4_header_t  *headers;
    ngx_uint_t                         nheaders;
    ngx_str_t                          payload;    /* hex SHA-256 */
    ngx_str_t                          date;       /* 20150830T123600Z */
    ngx_str_t                          region;
    ngx_str_t                          service;
} ngx_http_modelreg_sigv4_t;


/* URI-encodes "src" as SigV4 wants; "/" stays when "slash" is set */
u_char *ngx_http_modelreg_sigv4_encode(u_char *dst, u_char *src, size_t len,
    ngx_uint_t slash);

/* the canonical request; NULL on error (too many headers, bad query) */
ngx_int_t ngx_http_modelreg_sigv4_canonical(ngx_pool_t *pool,
    ngx_http_modelreg_sigv4_t *s, ngx_str_t *creq, ngx_str_t *signed_headers);

ngx_int_t ngx_http_modelreg_sigv4_string_to_sign(ngx_pool_t *pool,
    ngx_http_modelreg_sigv4_t *s, ngx_str_t *creq, ngx_str_t *sts);

/* the signing key of a day (the first 8 bytes of the date) */
ngx_int_t ngx_http_modelreg_sigv4_key(ngx_str_t *secret, ngx_str_t *date,
    ngx_str_t *region, ngx_str_t *service, u_char key[32]);

/* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." */
ngx_int_t ngx_http_modelreg_sigv4_authorization(ngx_pool_t *pool,
    ngx_http_modelreg_sigv4_t *s, ngx_str_t *access_key, u_char key[32],
    ngx_str_t *authorization);

/* hex SHA-256 of a buffer into dst[64] */
void ngx_http_modelreg_sha256_hex(u_char *dst, u_char *data, size_t len);


#endif /* _NGX_HTTP_MODELREG_SIGV4_H_INCLUDED_ */
