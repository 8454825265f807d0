/*
 * Copyright (C) modelreg authors
 *
 * Query strings and form bodies (form.c): pure functions.
 */


#ifndef _NGX_HTTP_MODELREG_FORM_H_INCLUDED_
#define _NGX_HTTP_MODELREG_FORM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* a query argument, "key=value" */
typedef struct {
    ngx_str_t                      key;
    ngx_str_t                      value;
} ngx_http_modelreg_arg_t;


ngx_int_t ngx_http_modelreg_args_split(u_char *p, u_char *end,
    ngx_array_t *args);
size_t ngx_http_modelreg_unescape(u_char *dst, u_char *src, size_t len,
    ngx_uint_t plus);
ngx_int_t ngx_http_modelreg_form_decode(ngx_pool_t *pool, u_char *p,
    u_char *end, ngx_array_t *args);


#endif /* _NGX_HTTP_MODELREG_FORM_H_INCLUDED_ */
