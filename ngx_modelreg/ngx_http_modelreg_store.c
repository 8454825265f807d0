
/*
 * Copyright (C) modelreg authors
 *
 * The store layer: every call of a storage backend goes through here.  It
 * counts each call once in the storage metrics (op and outcome), makes
 * the API's download out of the backend's bytes (Content-Type, ETag,
 * Content-Disposition, ranges) and records its audit event, so that a
 * backend only moves bytes.
 *
 * A backend that answers downloads through a proxy location (S3) gets the
 * answer back in this file's header filter, which sits in nginx's filter
 * chain right below the response filter: the way nginx itself lets a
 * module see every answer, without the response filter knowing any
 * backend, nor the backend knowing the API's headers.
 */


#include "ngx_http_modelreg.h"


typedef struct {
    ngx_http_modelreg_store_bg_pt  done;
    void                          *data;
} ngx_http_modelreg_store_bg_t;


static ngx_http_modelreg_store_t *ngx_http_modelreg_store_hold(
    ngx_http_request_t *r, ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_store_put_done(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_store_removed(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_store_ready_done(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_store_done(ngx_http_request_t *r,
    ngx_uint_t op, ngx_int_t rc);
static void ngx_http_modelreg_store_removed_bg(void *data, ngx_int_t rc);
static ngx_int_t ngx_http_modelreg_store_send(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t *out);
static ngx_int_t ngx_http_modelreg_store_not_modified(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj);
static ngx_int_t ngx_http_modelreg_store_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_download_headers(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj);
static ngx_int_t ngx_http_modelreg_disposition(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_modelreg_audit_download(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static const char  ngx_http_modelreg_download_sql[] =
    "INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " VALUES ('model.download', $1, $2, $3, $4, $5::int,"
    " jsonb_build_object('bytes', $6::bigint))";


static ngx_str_t  ngx_http_modelreg_zip_ctype = ngx_string("application/zip");

#if (NGX_DEBUG)

/* by NGX_HTTP_MODELREG_STORE_*, for the debug log */
static const char  *ngx_http_modelreg_store_ops[] = {
    "put", "get", "delete", "check"
};

#endif


/*
 * Below the response filter: it is installed first (postconfiguration),
 * and nginx runs the filters installed last first.
 */

ngx_int_t
ngx_http_modelreg_store_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_modelreg_store_header_filter;

    return NGX_OK;
}


void
ngx_http_modelreg_store_put(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_store_t  *st;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: put \"%V\", %O bytes", key, body->size);

    st = ngx_http_modelreg_store_hold(r, done);
    if (st == NULL) {
        return;
    }

    if (st->put(r, body, key, ngx_http_modelreg_store_put_done) != NGX_OK) {
        ngx_http_modelreg_store_put_done(r, NGX_ERROR);
    }
}


void
ngx_http_modelreg_store_remove(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_store_t  *st;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: remove \"%V\"", key);

    st = ngx_http_modelreg_store_hold(r, done);
    if (st == NULL) {
        return;
    }

    if (st->remove(r, key, ngx_http_modelreg_store_removed) != NGX_OK) {
        ngx_http_modelreg_store_removed(r, NGX_ERROR);
    }
}


void
ngx_http_modelreg_store_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_store_t  *st;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: check");

    st = ngx_http_modelreg_store_hold(r, done);
    if (st == NULL) {
        return;
    }

    if (st->ready(r, ngx_http_modelreg_store_ready_done) != NGX_OK) {
        ngx_http_modelreg_store_ready_done(r, NGX_ERROR);
    }
}


/* a call holds the request until its "done", which the context keeps */

static ngx_http_modelreg_store_t *
ngx_http_modelreg_store_hold(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    r->main->count++;

    if (ctx->store == NULL) {
        ctx->store = ngx_pcalloc(r->pool,
                                 sizeof(ngx_http_modelreg_store_ctx_t));
        if (ctx->store == NULL) {
            done(r, NGX_ERROR);         /* it ends the hold taken here */
            return NULL;
        }
    }

    ctx->store->done = done;

    return mcf->store;
}


static void
ngx_http_modelreg_store_put_done(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_modelreg_store_done(r, NGX_HTTP_MODELREG_STORE_PUT, rc);
}


static void
ngx_http_modelreg_store_removed(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_modelreg_store_done(r, NGX_HTTP_MODELREG_STORE_DELETE, rc);
}


static void
ngx_http_modelreg_store_ready_done(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_modelreg_store_done(r, NGX_HTTP_MODELREG_STORE_CHECK, rc);
}


/* counted once, then the caller's step (which may start another call) */

static void
ngx_http_modelreg_store_done(ngx_http_request_t *r, ngx_uint_t op,
    ngx_int_t rc)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: %s done: %i",
                   ngx_http_modelreg_store_ops[op], rc);

    ngx_http_modelreg_stats_store(op, rc == NGX_OK);

    ctx->store->done(r, rc);
}


/* outside any request: the caller's "pool" holds the call until "done" */

void
ngx_http_modelreg_store_remove_bg(ngx_http_modelreg_store_t *st,
    ngx_pool_t *pool, ngx_str_t *key, ngx_log_t *log,
    ngx_http_modelreg_store_bg_pt done, void *data)
{
    ngx_http_modelreg_store_bg_t  *bg;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, log, 0,
                   "modelreg store: remove \"%V\" (clean-up)", key);

    bg = ngx_palloc(pool, sizeof(ngx_http_modelreg_store_bg_t));
    if (bg == NULL) {
        ngx_http_modelreg_stats_store(NGX_HTTP_MODELREG_STORE_DELETE, 0);
        done(data, NGX_ERROR);
        return;
    }

    bg->done = done;
    bg->data = data;

    if (st->remove_bg(st, key, log, ngx_http_modelreg_store_removed_bg, bg)
        != NGX_OK)
    {
        ngx_http_modelreg_store_removed_bg(bg, NGX_ERROR);
    }
}


static void
ngx_http_modelreg_store_removed_bg(void *data, ngx_int_t rc)
{
    ngx_http_modelreg_store_bg_t *bg = data;

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "modelreg store: remove (clean-up) done: %i", rc);

    ngx_http_modelreg_stats_store(NGX_HTTP_MODELREG_STORE_DELETE,
                                  rc == NGX_OK);

    /* (bg lives in the caller's pool, which "done" may destroy) */

    bg->done(bg->data, rc);
}


/*
 * A download of "obj" (kept in the request's context: a proxied answer
 * comes back to the header filter without it).
 */

ngx_int_t
ngx_http_modelreg_store_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj)
{
    ngx_int_t                       rc;
    ngx_chain_t                    *out;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (ctx->store == NULL) {
        ctx->store = ngx_pcalloc(r->pool,
                                 sizeof(ngx_http_modelreg_store_ctx_t));
        if (ctx->store == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->store->object = *obj;
    obj = &ctx->store->object;

    /* the actor is this location's to say, not a store location's */

    if (ngx_http_modelreg_audit_values(r, ctx->store->audit) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->store_download = 1;

    out = NULL;

    rc = mcf->store->serve(r, obj, &out);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: serve \"%V\": %i", &obj->key, rc);

    switch (rc) {

    case NGX_OK:
        return ngx_http_modelreg_store_send(r, obj, out);

    case NGX_DONE:
        /* in a proxy location now: the answer comes to the filter */
        return NGX_DONE;

    case NGX_HTTP_NOT_MODIFIED:
        return ngx_http_modelreg_store_not_modified(r, obj);

    case NGX_HTTP_NOT_FOUND:

        /*
         * Gone since the lookup: most likely a DELETE of the model ran in
         * between, and the caller's second lookup answers its 404.  Gone
         * again, with the row still naming it: the store lost it.
         */

        if (!ctx->store->again) {
            ctx->store->again = 1;
            return NGX_HTTP_NOT_FOUND;
        }

        ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                      "modelreg: the object of a registered model is "
                      "missing: \"%V\"", &obj->key);

        /* fall through */

    case NGX_DECLINED:
        ngx_http_modelreg_stats_store(NGX_HTTP_MODELREG_STORE_GET, 0);
        return ngx_http_modelreg_store_unavailable(r);

    default:
        return rc;
    }
}


/* the backend's bytes with the API's headers */

static ngx_int_t
ngx_http_modelreg_store_send(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t *out)
{
    ngx_int_t  rc;

    if (ngx_http_modelreg_download_headers(r, obj) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_modelreg_stats_store(NGX_HTTP_MODELREG_STORE_GET, 1);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    rc = ngx_http_output_filter(r, out);

    if (rc != NGX_ERROR) {
        ngx_http_modelreg_audit_download(r);
    }

    return rc;
}


static ngx_int_t
ngx_http_modelreg_store_not_modified(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ngx_http_modelreg_download_headers(r, obj) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NOT_MODIFIED;
    r->header_only = 1;
    ctx->own_reply = 1;

    return ngx_http_send_header(r);
}


/* a proxied download's answer, made the API's */

static ngx_int_t
ngx_http_modelreg_store_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                      status;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_modelreg_get_ctx(r);

    if (ctx == NULL || !ctx->store_download || ctx->own_reply
        || r->upstream == NULL)
    {
        return ngx_http_next_header_filter(r);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    status = r->headers_out.status;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: \"%V\" answered %ui",
                   &ctx->store->object.key, status);

    if (mcf->store->header
        && mcf->store->header(r, &ctx->store->object) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a 416 is the client's range, not a failure of the store */

    ngx_http_modelreg_stats_store(NGX_HTTP_MODELREG_STORE_GET,
                                  status == NGX_HTTP_OK
                                  || status == NGX_HTTP_PARTIAL_CONTENT
                                  || status
                                     == NGX_HTTP_RANGE_NOT_SATISFIABLE);

    if (status == NGX_HTTP_OK || status == NGX_HTTP_PARTIAL_CONTENT) {

        if (ngx_http_modelreg_download_headers(r, &ctx->store->object)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_modelreg_audit_download(r);

        return ngx_http_next_header_filter(r);
    }

    ngx_log_error((status == NGX_HTTP_RANGE_NOT_SATISFIABLE ? NGX_LOG_INFO
                                                             : NGX_LOG_ERR),
                  r->connection->log, 0,
                  "modelreg: object storage answered %ui for \"%V\"",
                  status, &ctx->store->object.key);

    if (status != NGX_HTTP_RANGE_NOT_SATISFIABLE) {
        r->headers_out.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        ngx_str_set(&r->headers_out.status_line, "503 Service Unavailable");
    }

    if (ngx_http_modelreg_json_error_page(r, ctx,
            r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE
            ? NGX_HTTP_MODELREG_STORE_DOWN : NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* the API's headers of a download: the store supplies only the bytes */

static ngx_int_t
ngx_http_modelreg_download_headers(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj)
{
    ngx_str_t  etag;

    r->headers_out.content_type = ngx_http_modelreg_zip_ctype;
    r->headers_out.content_type_len = ngx_http_modelreg_zip_ctype.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->allow_ranges = 1;

    etag.len = obj->sha256.len + 2;
    etag.data = ngx_pnalloc(r->pool, etag.len);
    if (etag.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(etag.data, "\"%V\"", &obj->sha256);

    r->headers_out.etag = ngx_list_push(&r->headers_out.headers);
    if (r->headers_out.etag == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.etag->hash = 1;
    ngx_str_set(&r->headers_out.etag->key, "ETag");
    r->headers_out.etag->value = etag;

    if (obj->model_id.len
        && ngx_http_modelreg_header_out(r, "X-Model-Id", &obj->model_id)
           == NULL)
    {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_disposition(r, &obj->file_name);
}


/*
 * attachment; filename="<ASCII>"; filename*=UTF-8''<percent-encoded>
 *
 * RFC 5987 keeps only A-Z a-z 0-9 - . _ ~ as they are: exactly what
 * nginx's component table leaves (upper-case hex, as before).
 */

static ngx_int_t
ngx_http_modelreg_disposition(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char     *p, *s, *end;
    ngx_str_t   v;

    v.data = ngx_pnalloc(r->pool, sizeof("attachment; filename=\"\"; "
                                         "filename*=UTF-8''")
                                  + name->len * 4);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(v.data, "attachment; filename=\"",
                   sizeof("attachment; filename=\"") - 1);

    end = name->data + name->len;

    for (s = name->data; s < end; s++) {
        *p++ = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
               ? *s : '_';
    }

    p = ngx_cpymem(p, "\"; filename*=UTF-8''",
                   sizeof("\"; filename*=UTF-8''") - 1);

    p = (u_char *) ngx_escape_uri(p, name->data, name->len,
                                  NGX_ESCAPE_URI_COMPONENT);

    v.len = p - v.data;

    return ngx_http_modelreg_header_out(r, "Content-Disposition", &v)
           ? NGX_OK : NGX_ERROR;
}


/* one audit event per 200/206 download, sent after the answer started */

static void
ngx_http_modelreg_audit_download(ngx_http_request_t *r)
{
    u_char                         *p;
    ngx_str_t                       v[6];
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_modelreg_get_ctx(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (ctx == NULL || r->method != NGX_HTTP_GET
        || (r->headers_out.status != NGX_HTTP_OK
            && r->headers_out.status != NGX_HTTP_PARTIAL_CONTENT))
    {
        return;
    }

    /* taken before the backend: a redirect changes the location */

    v[1] = ctx->store->audit[0];
    v[2] = ctx->store->audit[1];
    v[3] = ctx->store->audit[2];

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + NGX_OFF_T_LEN);
    if (p == NULL) {
        return;
    }

    v[0] = ctx->route.id;
    v[4].data = p;
    v[4].len = ngx_sprintf(p, "%ui", r->headers_out.status) - p;
    v[5].data = p + v[4].len;
    v[5].len = ngx_sprintf(v[5].data, "%O",
                           r->headers_out.content_length_n >= 0
                           ? r->headers_out.content_length_n
                           : ctx->store->object.size)
               - v[5].data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg store: download audited: %V, %V bytes",
                   &v[4], &v[5]);

    ngx_http_modelreg_detached(mcf, r->connection->log,
                               ngx_http_modelreg_download_sql, 6, v);
}
