
/*
 * Copyright (C) modelreg authors
 *
 * The fields of a model that clients send (POST and PUT), their limits,
 * and the checks of API.md in their order.
 */


#ifndef _NGX_HTTP_MODELREG_FIELDS_H_INCLUDED_
#define _NGX_HTTP_MODELREG_FIELDS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


typedef enum {
    NGX_HTTP_MODELREG_F_FILE = 0,
    NGX_HTTP_MODELREG_F_NAME,
    NGX_HTTP_MODELREG_F_VERSION,
    NGX_HTTP_MODELREG_F_TARGET_DEVICE,
    NGX_HTTP_MODELREG_F_PRECISION,
    NGX_HTTP_MODELREG_F_FORMAT,
    NGX_HTTP_MODELREG_F_SCORE,
    NGX_HTTP_MODELREG_F_ID,
    NGX_HTTP_MODELREG_F_CREATED_DATE,
    NGX_HTTP_MODELREG_F_SIZE,
    NGX_HTTP_MODELREG_F_ORIGIN,
    NGX_HTTP_MODELREG_F_PROJECT_ID,
    NGX_HTTP_MODELREG_F_PROJECT_NAME,
    NGX_HTTP_MODELREG_F_CATEGORY,
    NGX_HTTP_MODELREG_F_TARGET_DEVICE_TYPE,
    NGX_HTTP_MODELREG_F_OVERVIEW,
    NGX_HTTP_MODELREG_F_OPTIMIZATION_CAPABILITIES,
    NGX_HTTP_MODELREG_F_LABELS,
    NGX_HTTP_MODELREG_F_ARCHITECTURE,
    NGX_HTTP_MODELREG_F_COUNT
} ngx_http_modelreg_field_e;


typedef struct {
    ngx_str_t      value[NGX_HTTP_MODELREG_F_COUNT];
    u_char         given[NGX_HTTP_MODELREG_F_COUNT];
    u_char         overflow[NGX_HTTP_MODELREG_F_COUNT];
    ngx_array_t    unknown;     /* ngx_str_t: names in the order given */
} ngx_http_modelreg_fields_t;


ngx_int_t ngx_http_modelreg_fields_init(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool);

/* the index of a field name, or NGX_ERROR */
ngx_int_t ngx_http_modelreg_field_index(u_char *name, size_t len);

/* what a value may hold, in bytes; 0: not stored (file, size) */
size_t ngx_http_modelreg_field_max(ngx_uint_t i);

/* given: a value over the field's limit is kept as an overflow only */
void ngx_http_modelreg_field_set(ngx_http_modelreg_fields_t *f,
    ngx_uint_t i, u_char *data, size_t len);

/*
 * A JSON value as field "i" (copied): a string as it is, other values as
 * compact JSON text; NULL or null leaves it absent.
 */
ngx_int_t ngx_http_modelreg_field_json(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, ngx_uint_t i, json_t *v);

/*
 * The members of a JSON object body (PUT) into "f": strings as they are,
 * numbers as the text sent, other values as compact JSON text; null is
 * absent.  NGX_DECLINED: the body is not a JSON object.
 */
ngx_int_t ngx_http_modelreg_fields_json(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, u_char *p, u_char *last);

/* present: given with a non-empty value (an empty value is absent) */
#define ngx_http_modelreg_field_present(f, i)                                \
    ((f)->value[i].len > 0 || (f)->overflow[i])

/*
 * Rules 6 and 7 of POST (and PUT's field validation): NGX_OK, or an HTTP
 * status with "msg" set.  Lowercases precision in place.
 */
ngx_int_t ngx_http_modelreg_fields_check(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, ngx_str_t *msg);

/* "a, b, c" */
ngx_int_t ngx_http_modelreg_join(ngx_pool_t *pool, ngx_array_t *names,
    ngx_str_t *out);


#endif /* _NGX_HTTP_MODELREG_FIELDS_H_INCLUDED_ */
