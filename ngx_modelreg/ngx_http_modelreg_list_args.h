
/*
 * Copyright (C) modelreg authors
 *
 * A list's query arguments (GET /models, GET /audit): its filters, limit
 * and page token read from the query string, and written back into the
 * next page's Link.  Pure functions (list_args.c).
 */


#ifndef _NGX_HTTP_MODELREG_LIST_ARGS_H_INCLUDED_
#define _NGX_HTTP_MODELREG_LIST_ARGS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_MODELREG_LIMIT_DEFAULT  100
#define NGX_HTTP_MODELREG_LIMIT_MAX      1000
#define NGX_HTTP_MODELREG_FILTERS_MAX    16


/* a query argument that filters a list */
typedef struct {
    const char  *key;
    unsigned     substring:1;
} ngx_http_modelreg_list_filter_t;


typedef struct {
    /* the route's filters, up to one with a NULL key */
    ngx_http_modelreg_list_filter_t  *filters;

    /* what the query asks: each filter's value (decoded), by its index */
    ngx_str_t                         value[NGX_HTTP_MODELREG_FILTERS_MAX];
    ngx_uint_t                        limit;
    ngx_str_t                         limit_text;
    ngx_str_t                         token;
    ngx_uint_t                        filtered;
} ngx_http_modelreg_list_args_t;


/*
 * The query string into "a" (a->filters set): the last of a repeated
 * argument wins.  NGX_OK, NGX_ERROR, or an HTTP status with "msg" set:
 * 422 for arguments no filter knows or a filter not UTF-8, 400 for a
 * limit that is not an integer from 1 to 1000.
 */
ngx_int_t ngx_http_modelreg_list_args_parse(ngx_pool_t *pool,
    ngx_str_t *query, ngx_http_modelreg_list_args_t *a, ngx_str_t *msg);

/* <base/route?filters&limit=L&page_token=T>; rel="next" */
ngx_int_t ngx_http_modelreg_list_args_link(ngx_pool_t *pool,
    ngx_http_modelreg_list_args_t *a, ngx_str_t *base, const char *route,
    ngx_str_t *token, ngx_str_t *link);


#endif /* _NGX_HTTP_MODELREG_LIST_ARGS_H_INCLUDED_ */
