
/*
 * Copyright (C) modelreg authors
 *
 * HTTP calls that belong to no request (the clean-up timer, Geti): libcurl
 * multi with its sockets on nginx events and its timer on an nginx timer,
 * so a slow peer never holds the worker.
 */


#ifndef _NGX_HTTP_MODELREG_CURL_H_INCLUDED_
#define _NGX_HTTP_MODELREG_CURL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <curl/curl.h>


typedef struct ngx_http_modelreg_curl_s  ngx_http_modelreg_curl_t;

typedef void (*ngx_http_modelreg_curl_done_pt)(ngx_http_modelreg_curl_t *cu);
typedef ngx_int_t (*ngx_http_modelreg_curl_sink_pt)(
    ngx_http_modelreg_curl_t *cu, u_char *p, size_t len);


struct ngx_http_modelreg_curl_s {
    CURL                            *easy;
    struct curl_slist               *headers;
    ngx_pool_t                      *pool;
    ngx_log_t                       *log;
    ngx_http_modelreg_curl_done_pt   done;
    void                            *data;
    const char                      *method;    /* for the log, if set */

    /* a 200's body goes here instead, as it arrives (a download) */
    ngx_http_modelreg_curl_sink_pt   sink;

    /* the outcome, in done() */
    CURLcode                         result;
    long                             status;
    ngx_buf_t                       *body;      /* the first "max" bytes */
    size_t                           max;       /* ...as they arrive */

    /* while it runs: a worker that is shutting down waits for it */
    ngx_event_t                      hold;

    unsigned                         running:1;
    unsigned                         whole:1;     /* over "max": it fails */
    unsigned                         too_large:1; /* ...and it did */
    unsigned                         freed:1;
};


ngx_int_t ngx_http_modelreg_curl_init(ngx_cycle_t *cycle);
void ngx_http_modelreg_curl_exit(ngx_cycle_t *cycle);

/*
 * A transfer owned by "pool": freed (and stopped) with it, or before by
 * ngx_http_modelreg_curl_free().  Its body buffer grows as bytes arrive,
 * up to "max": the rest is dropped, or fails the transfer when "whole"
 * is set (CURLE_WRITE_ERROR, with "too_large").
 */
ngx_http_modelreg_curl_t *ngx_http_modelreg_curl_create(ngx_pool_t *pool,
    ngx_log_t *log, size_t max);
void ngx_http_modelreg_curl_free(ngx_http_modelreg_curl_t *cu);
ngx_int_t ngx_http_modelreg_curl_header(ngx_http_modelreg_curl_t *cu,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_modelreg_curl_start(ngx_http_modelreg_curl_t *cu);


#endif /* _NGX_HTTP_MODELREG_CURL_H_INCLUDED_ */
