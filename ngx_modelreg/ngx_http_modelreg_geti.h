
/*
 * Copyright (C) modelreg authors
 *
 * What the Geti files share: the configuration, and the client's calls
 * to Geti's API (ngx_http_modelreg_geti.c) made on behalf of a request,
 * counted so that the last one to finish moves the request on.  A worker
 * runs at most NGX_HTTP_MODELREG_GETI_CONCURRENCY of them at once; the
 * others wait their turn in order.  Every value read from Geti's JSON is
 * type-checked (ngx_http_modelreg_geti_check): a wrong one makes the
 * answer invalid.
 */


#ifndef _NGX_HTTP_MODELREG_GETI_H_INCLUDED_
#define _NGX_HTTP_MODELREG_GETI_H_INCLUDED_


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_curl.h"
#include "ngx_http_modelreg_geti_json.h"


struct ngx_http_modelreg_geti_conf_s {
    ngx_str_t                    base;      /* .../workspaces/{ws} */
    ngx_str_t                    token;
    ngx_str_t                    ca_file;
    ngx_flag_t                   verify;
    ngx_msec_t                   timeout;
    ngx_msec_t                   export_timeout;
    ngx_msec_t                   sync;      /* 0: no periodic sync */
    ngx_str_t                    self;      /* the registry, for the sync */
    ngx_array_t                 *projects;  /* ngx_str_t, NULL: all */
};


typedef struct ngx_http_modelreg_geti_list_s  ngx_http_modelreg_geti_list_t;


typedef void (*ngx_http_modelreg_geti_pt)(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg);


/*
 * The calls a route makes for one request; the route's own state embeds
 * it first, so that its handlers get back to that state from "l".
 */

struct ngx_http_modelreg_geti_list_s {
    ngx_http_request_t          *request;
    ngx_pool_t                  *pool;      /* for the calls, else r's */
    ngx_uint_t                   pending;
    ngx_str_t                   *answering; /* the path, for the log */
    const char                  *method;

    /* when the last call in flight is done */
    void                       (*finish)(ngx_http_modelreg_geti_list_t *l);

    unsigned                     not_found:1;
    unsigned                     failed:1;
    unsigned                     invalid:1;   /* ...by an answer's JSON */
    unsigned                     down:1;      /* ...by Geti: unreachable,
                                                 a 5xx, the token refused */
    unsigned                     want_404:1;  /* a 404 is an answer */
};


/* ngx_http_modelreg_geti.c */
ngx_int_t ngx_http_modelreg_geti_get(ngx_http_modelreg_geti_list_t *l,
    ngx_str_t *path, ngx_http_modelreg_geti_pt handler, void *arg);
ngx_int_t ngx_http_modelreg_geti_post(ngx_http_modelreg_geti_list_t *l,
    ngx_str_t *path, json_t *body, ngx_http_modelreg_geti_pt handler,
    void *arg);

/* a download streamed to "sink"; the handler gets no JSON */
ngx_int_t ngx_http_modelreg_geti_download(ngx_http_modelreg_geti_list_t *l,
    ngx_str_t *path, ngx_http_modelreg_curl_sink_pt sink,
    ngx_http_modelreg_geti_pt handler, void *arg);
void *ngx_http_modelreg_geti_arg(ngx_http_modelreg_curl_t *cu);
ngx_http_request_t *ngx_http_modelreg_geti_hold(
    ngx_http_modelreg_geti_list_t *l);

/*
 * A value of Geti's answer is what it must be, else the answer is bad:
 * logged with the value's name and what it is (geti_json.c's checks).
 */
ngx_int_t ngx_http_modelreg_geti_check(ngx_http_modelreg_geti_list_t *l,
    json_t *v, const char *name, ngx_uint_t want);
ngx_int_t ngx_http_modelreg_geti_checked(ngx_http_modelreg_geti_list_t *l,
    const char *is, const char *name);
ngx_int_t ngx_http_modelreg_geti_check_project(
    ngx_http_modelreg_geti_list_t *l, json_t *p);
ngx_int_t ngx_http_modelreg_geti_check_groups(
    ngx_http_modelreg_geti_list_t *l, json_t *json);
ngx_int_t ngx_http_modelreg_geti_check_model(
    ngx_http_modelreg_geti_list_t *l, json_t *json);
ngx_int_t ngx_http_modelreg_geti_invalid(ngx_http_request_t *r);

/* ngx_http_modelreg_geti_import.c */
ngx_int_t ngx_http_modelreg_geti_import(ngx_http_request_t *r);

/* ngx_http_modelreg_geti_sync.c */
ngx_int_t ngx_http_modelreg_sync_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_sync_exit(void);
ngx_int_t ngx_http_modelreg_sync_start(ngx_http_modelreg_main_conf_t *mcf,
    void (*started)(void *data, ngx_int_t rc), void *data);

/* ngx_http_modelreg_geti_sync_route.c */
ngx_int_t ngx_http_modelreg_sync_route(ngx_http_request_t *r);


#endif /* _NGX_HTTP_MODELREG_GETI_H_INCLUDED_ */
