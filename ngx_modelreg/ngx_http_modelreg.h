
/*
 * Copyright (C) modelreg authors
 *
 * What the files of the module share: configuration, the request context
 * and the helpers that answer requests.
 */


#ifndef _NGX_HTTP_MODELREG_H_INCLUDED_
#define _NGX_HTTP_MODELREG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_http_modelreg_pg.h"
#include "ngx_http_modelreg_route.h"


typedef struct {
    ngx_http_modelreg_pg_conf_t    db;
    ngx_http_modelreg_pg_pool_t   *pool;        /* this worker's */

    /* where "modelreg" was first used, to explain a missing database */
    u_char                        *used_file;
    ngx_uint_t                     used_line;

    ngx_int_t                      request_id_index;
} ngx_http_modelreg_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
} ngx_http_modelreg_loc_conf_t;


typedef struct {
    ngx_http_modelreg_route_t      route;
    ngx_str_t                      base;        /* the location prefix */
    ngx_http_modelreg_pg_query_t  *query;
    ngx_buf_t                     *error_page;  /* replaces nginx's HTML */

    unsigned                       own_reply:1; /* the body is ours */
} ngx_http_modelreg_ctx_t;


extern ngx_module_t  ngx_http_modelreg_module;


/* ngx_http_modelreg_api.c */
ngx_int_t ngx_http_modelreg_handler(ngx_http_request_t *r);
void ngx_http_modelreg_wake(ngx_http_request_t *r, ngx_int_t rc);

/* ngx_http_modelreg_health.c */
ngx_int_t ngx_http_modelreg_health(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_ready(ngx_http_request_t *r);

/* ngx_http_modelreg_reply.c */
ngx_int_t ngx_http_modelreg_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, u_char *data, size_t len);
ngx_int_t ngx_http_modelreg_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *json);
ngx_int_t ngx_http_modelreg_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_modelreg_db_unavailable(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_json_pool(ngx_pool_t *pool, json_t *json);
ngx_int_t ngx_http_modelreg_header_filter_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_MODELREG_H_INCLUDED_ */
