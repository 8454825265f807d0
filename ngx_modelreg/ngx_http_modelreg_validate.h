
/*
 * Copyright (C) modelreg authors
 *
 * Input rules of API.md as pure functions, unit tested.
 */


#ifndef _NGX_HTTP_MODELREG_VALIDATE_H_INCLUDED_
#define _NGX_HTTP_MODELREG_VALIDATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* the EOCD record must lie within the last 65,557 bytes (API.md) */
#define NGX_HTTP_MODELREG_ZIP_TAIL      65557

/* what the ring of the last bytes starts with */
#define NGX_HTTP_MODELREG_ZIP_TAIL_MIN  4096


/* strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF */
ngx_int_t ngx_http_modelreg_utf8_valid(u_char *p, size_t len);

/* an alias: ^[a-z0-9][a-z0-9._-]{0,62}$ */
ngx_int_t ngx_http_modelreg_valid_alias(u_char *p, size_t len);

/* lowercases "value" into "out" (4 bytes) if it is a known precision */
ngx_int_t ngx_http_modelreg_precision(ngx_str_t *value, u_char *out,
    size_t *out_len);

/* a finite number; surrounding blanks allowed */
ngx_int_t ngx_http_modelreg_score(ngx_str_t *value, double *score);

/* the upload's base name, cleaned as API.md says; "dst" >= 255 bytes */
size_t ngx_http_modelreg_file_name(ngx_str_t *name, u_char *dst);

/* one of the ZIP media types API.md accepts (parameters ignored) */
ngx_int_t ngx_http_modelreg_zip_type(ngx_str_t *content_type);

/*
 * "head": the first min(size, 4) bytes; "tail": the last
 * min(size, NGX_HTTP_MODELREG_ZIP_TAIL) bytes of a file of "size" bytes.
 */
ngx_int_t ngx_http_modelreg_zip_check(u_char *head, u_char *tail,
    size_t tail_len, off_t size);

/*
 * What the ZIP check needs of a file as it is written, piece by piece:
 * its first 4 bytes and its last NGX_HTTP_MODELREG_ZIP_TAIL, which grow
 * with the file up to that size and are a ring from then on.
 */
typedef struct {
    u_char     head[4];
    u_char    *tail;
    size_t     cap;
    size_t     pos;         /* the ring's oldest byte, once it is full */
} ngx_http_modelreg_zip_t;

/* "len" bytes more of a file of "size" bytes so far; NGX_ERROR: memory */
ngx_int_t ngx_http_modelreg_zip_add(ngx_http_modelreg_zip_t *z,
    ngx_pool_t *pool, off_t size, u_char *p, size_t len);

/* ngx_http_modelreg_zip_check() of the file of "size" bytes, written */
ngx_int_t ngx_http_modelreg_zip_done(ngx_http_modelreg_zip_t *z,
    ngx_pool_t *pool, off_t size);

/* escapes \ % _ with \ for ILIKE; "dst" has room for 2 * len */
size_t ngx_http_modelreg_like_escape(u_char *dst, u_char *src, size_t len);

/*
 * GET /models page tokens: "<microseconds>.<id>", the registration time of
 * the last model shown (since the epoch) and its id.  PostgreSQL turns
 * the microseconds into a time through a double (modelreg_from_us), exact
 * below 2^53 (the year 2255): larger numbers are not tokens we made.
 */
#define NGX_HTTP_MODELREG_TOKEN_US_MAX  ((int64_t) 1 << 53)

u_char *ngx_http_modelreg_token_encode(u_char *dst, int64_t us, ngx_str_t *id);
ngx_int_t ngx_http_modelreg_token_decode(ngx_str_t *token, int64_t *us,
    ngx_str_t *id);

/* GET /audit page tokens: the id of the last event shown, a bigint */
u_char *ngx_http_modelreg_audit_token_encode(u_char *dst, int64_t id);
ngx_int_t ngx_http_modelreg_audit_token_decode(ngx_str_t *token,
    int64_t *id);


#endif /* _NGX_HTTP_MODELREG_VALIDATE_H_INCLUDED_ */
