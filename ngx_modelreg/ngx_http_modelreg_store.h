
/*
 * Copyright (C) modelreg authors
 *
 * The store layer: the one way the rest of the module reaches a storage
 * backend ("fs", "s3").  A backend fills a ngx_http_modelreg_store_t with
 * its operations; ngx_http_modelreg_store.c calls them, counts every call
 * in the storage metrics, sets the headers of a download and records its
 * audit event, whatever the backend.
 */


#ifndef _NGX_HTTP_MODELREG_STORE_H_INCLUDED_
#define _NGX_HTTP_MODELREG_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct ngx_http_modelreg_store_s  ngx_http_modelreg_store_t;
typedef struct ngx_http_modelreg_body_s   ngx_http_modelreg_body_t;

typedef void (*ngx_http_modelreg_store_done_pt)(ngx_http_request_t *r,
    ngx_int_t rc);
typedef void (*ngx_http_modelreg_store_bg_pt)(void *data, ngx_int_t rc);


/* what a handler needs to hand a stored object to nginx */
typedef struct {
    ngx_str_t                      key;
    ngx_str_t                      sha256;
    ngx_str_t                      file_name;
    off_t                          size;
    ngx_str_t                      model_id;   /* sent as X-Model-Id, if */
} ngx_http_modelreg_object_t;


/* what the store layer keeps on a request (ctx->store) */
typedef struct {
    ngx_http_modelreg_object_t       object;   /* a download's */
    ngx_str_t                        audit[3]; /* taken before the store */
    ngx_http_modelreg_store_done_pt  done;     /* the caller's next step */
    void                            *op;       /* the backend's operation */
    void                            *call;     /* the backend's signed call */
    unsigned                         again:1;  /* a download looked twice */
} ngx_http_modelreg_store_ctx_t;


/*
 * A storage backend: put a spooled file under a key (atomically visible),
 * serve a key as the response, remove a key, say whether it is reachable.
 * put, remove, ready and remove_bg finish by calling "done" (maybe before
 * they return); NGX_ERROR from them means "done" will not be called.
 *
 * serve answers:
 *   NGX_OK                   the object's bytes are in "*out", with
 *                            headers_out's status, content_length_n and
 *                            last_modified_time set;
 *   NGX_DONE                 the request went to a location that proxies
 *                            the backend (an internal redirect): its
 *                            answer comes back through "header";
 *   NGX_HTTP_NOT_MODIFIED    the client's copy is this object (the
 *                            backend's own check of If-None-Match);
 *   NGX_HTTP_NOT_FOUND       no object under the key (nothing logged: a
 *                            DELETE may have removed it since the lookup);
 *   NGX_DECLINED             the object is not what was stored, or cannot
 *                            be read (the backend logged why);
 *   an HTTP status           our own failure.
 *
 * header (a backend that proxies only): the proxied answer of a download
 * is about to be sent; drop from headers_out what the backend says about
 * itself (its ETag, its ids).  NGX_OK or NGX_ERROR.
 */
struct ngx_http_modelreg_store_s {
    ngx_str_t                      type;         /* "fs", "s3" */
    ngx_str_t                      url_prefix;   /* "fs:", "s3://b/" */
    ngx_path_t                    *temp_path;    /* uploads spool here */
    ngx_uint_t                     own_spool;    /* nothing else does */
    ngx_str_t                      root;
    off_t                          part_size;    /* 0: no parts */
    ngx_msec_t                     gc_interval;
    void                          *data;         /* the backend's own */
#if (NGX_THREADS)
    ngx_thread_pool_t             *thread_pool;
#endif

    ngx_int_t                    (*put)(ngx_http_request_t *r,
                                        ngx_http_modelreg_body_t *body,
                                        ngx_str_t *key,
                                        ngx_http_modelreg_store_done_pt done);
    ngx_int_t                    (*serve)(ngx_http_request_t *r,
                                          ngx_http_modelreg_object_t *obj,
                                          ngx_chain_t **out);
    ngx_int_t                    (*header)(ngx_http_request_t *r,
                                           ngx_http_modelreg_object_t *obj);
    ngx_int_t                    (*remove)(ngx_http_request_t *r,
                                    ngx_str_t *key,
                                    ngx_http_modelreg_store_done_pt done);
    ngx_int_t                    (*ready)(ngx_http_request_t *r,
                                    ngx_http_modelreg_store_done_pt done);

    /* outside any request (the clean-up timer) */
    ngx_int_t                    (*remove_bg)(ngx_http_modelreg_store_t *st,
                                    ngx_str_t *key, ngx_log_t *log,
                                    ngx_http_modelreg_store_bg_pt done,
                                    void *data);
};


/*
 * ngx_http_modelreg_store.c.  put, remove and ready hold the request
 * (r->main->count) until "done", which they always call (maybe before
 * they return) and which ends with ngx_http_modelreg_finish().  serve
 * answers as a handler does: NGX_DONE, an HTTP status, or the output's rc;
 * its 404 the first time means "the object is gone: look the model up
 * again" (a second 404 for that request is a 503, logged).
 */
void ngx_http_modelreg_store_put(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
ngx_int_t ngx_http_modelreg_store_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj);
void ngx_http_modelreg_store_remove(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
void ngx_http_modelreg_store_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done);
void ngx_http_modelreg_store_remove_bg(ngx_http_modelreg_store_t *st,
    ngx_pool_t *pool, ngx_str_t *key, ngx_log_t *log,
    ngx_http_modelreg_store_bg_pt done, void *data);
ngx_int_t ngx_http_modelreg_store_filter_init(ngx_conf_t *cf);

/* the backends: ngx_http_modelreg_store_fs.c, ngx_http_modelreg_store_s3.c */
char *ngx_http_modelreg_store_fs_conf(ngx_conf_t *cf,
    ngx_http_modelreg_store_t *st, ngx_str_t *args, ngx_uint_t n);
char *ngx_http_modelreg_store_s3_conf(ngx_conf_t *cf,
    ngx_http_modelreg_store_t *st, ngx_str_t *args, ngx_uint_t n);
ngx_int_t ngx_http_modelreg_s3_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_MODELREG_STORE_H_INCLUDED_ */
