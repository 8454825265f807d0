
/*
 * Copyright (C) modelreg authors
 *
 * Sending the registry's own answers: bodies in memory, JSON errors.
 *
 * Every answer ends its request here and returns NGX_DONE ("this request
 * is taken care of"), never NGX_OK: a function that may answer returns
 * NGX_OK only for "nothing was sent, go on", so a sent answer can never be
 * taken for work that goes on.  An answer holds its own reference to the
 * request (r->main->count) while nginx finalizes it, so it is the same
 * from a content handler, a body handler or an asynchronous step: each of
 * those drops its own reference, and only its own, with
 * ngx_http_modelreg_finish().
 */


#include "ngx_http_modelreg.h"


static ngx_int_t ngx_http_modelreg_output(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *content_type, u_char *data, size_t len);
static void ngx_http_modelreg_json_cleanup(void *data);


ngx_str_t  ngx_http_modelreg_json_type = ngx_string("application/json");


/* nginx's answer "rc" (an HTTP status, NGX_ERROR...), as an answer */

ngx_int_t
ngx_http_modelreg_end(ngx_http_request_t *r, ngx_int_t rc)
{
    if (rc == NGX_DONE) {
        return NGX_DONE;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg reply: end rc:%i", rc);

    r->main->count++;
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


ngx_int_t
ngx_http_modelreg_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, u_char *data, size_t len)
{
    return ngx_http_modelreg_end(r, ngx_http_modelreg_output(r, status,
                                                             content_type,
                                                             data, len));
}


static ngx_int_t
ngx_http_modelreg_output(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, u_char *data, size_t len)
{
    ngx_int_t                 rc;
    ngx_buf_t                *b;
    ngx_chain_t               out;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    if (ctx) {
        ctx->own_reply = 1;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == NGX_HTTP_UNPROCESSABLE_ENTITY) {
        /* (nginx has no reason phrase of its own for 422) */
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }

    if (content_type) {
        r->headers_out.content_type = *content_type;
        r->headers_out.content_type_len = content_type->len;
    }

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_modelreg_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json)
{
    u_char  *p;
    size_t   len;

    if (json == NULL || ngx_http_modelreg_json_pool(r->pool, json) != NGX_OK)
    {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    len = json_dumpb(json, NULL, 0, JSON_COMPACT);
    if (len == 0) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    (void) json_dumpb(json, (char *) p, len, JSON_COMPACT);

    return ngx_http_modelreg_send(r, status, &ngx_http_modelreg_json_type,
                                  p, len);
}


/* {"detail":"<message>"}; the message is formatted by ngx_vslprintf() */

ngx_int_t
ngx_http_modelreg_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...)
{
    u_char    *p, *last;
    size_t     len;
    json_t    *json, *detail;
    va_list    args;
    u_char     msg[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    last = ngx_vslprintf(msg, msg + sizeof(msg), fmt, args);
    va_end(args);

    len = last - msg;

    detail = json_stringn((char *) msg, len);

    if (detail == NULL) {

        /* a message may echo client bytes that are not UTF-8 */

        for (p = msg; p < last; p++) {
            if (*p >= 0x80) {
                *p = '?';
            }
        }

        detail = json_stringn((char *) msg, len);
    }

    json = json_object();

    if (json == NULL) {
        json_decref(detail);
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    /* json_object_set_new() takes "detail" even when it fails */

    if (json_object_set_new(json, "detail", detail) != 0) {
        json_decref(json);
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg: %ui %*s", status, len, msg);

    return ngx_http_modelreg_send_json(r, status, json);
}


ngx_int_t
ngx_http_modelreg_db_unavailable(ngx_http_request_t *r)
{
    return ngx_http_modelreg_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        NGX_HTTP_MODELREG_DB_DOWN);
}


ngx_int_t
ngx_http_modelreg_store_unavailable(ngx_http_request_t *r)
{
    return ngx_http_modelreg_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        NGX_HTTP_MODELREG_STORE_DOWN);
}


ngx_int_t
ngx_http_modelreg_json_pool(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        json_decref(json);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_modelreg_json_cleanup;
    cln->data = json;

    return NGX_OK;
}


static void
ngx_http_modelreg_json_cleanup(void *data)
{
    json_decref(data);
}
