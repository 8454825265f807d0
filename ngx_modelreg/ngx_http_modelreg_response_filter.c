
/*
 * Copyright (C) modelreg authors
 *
 * The response filters of registry locations: every response carries
 * X-Request-Id, and the error pages nginx makes itself (413, 408, 500...)
 * become {"detail": ...} JSON like the registry's own errors.
 *
 * A download that the store answers through a proxy location comes here
 * too, as the main request of a location without "modelreg": it gets its
 * X-Request-Id here, then goes on down the filter chain to the store
 * layer's own header filter (ngx_http_modelreg_store.c), which alone
 * knows what the backend's answer means, and makes its error page with
 * ngx_http_modelreg_json_error_page().
 */


#include "ngx_http_modelreg.h"


typedef struct {
    ngx_uint_t   status;
    const char  *text;
} ngx_http_modelreg_reason_t;


static ngx_int_t ngx_http_modelreg_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_http_modelreg_has_request_id(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_http_modelreg_reason_t  ngx_http_modelreg_reasons[] = {
    { 400, "Bad Request" },
    { 401, "Unauthorized" },
    { 403, "Forbidden" },
    { 404, "Not Found" },
    { 405, "Method Not Allowed" },
    { 408, "Request Timeout" },
    { 411, "Length Required" },
    { 413, "Request Entity Too Large" },
    { 414, "Request-URI Too Large" },
    { 415, "Unsupported Media Type" },
    { 416, "Requested Range Not Satisfiable" },
    { 429, "Too Many Requests" },
    { 500, "Internal Server Error" },
    { 501, "Not Implemented" },
    { 502, "Bad Gateway" },
    { 503, "Service Unavailable" },
    { 504, "Gateway Timeout" },
    { 507, "Insufficient Storage" },
    { 0, NULL }
};


ngx_int_t
ngx_http_modelreg_header_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_modelreg_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_modelreg_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_header_filter(ngx_http_request_t *r)
{
    ngx_table_elt_t                *h;
    ngx_http_variable_value_t      *v;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_loc_conf_t   *lcf;
    ngx_http_modelreg_main_conf_t  *mcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_modelreg_module);
    ctx = ngx_http_modelreg_get_ctx(r);

    /* a download answered by the store comes through its own location */

    if (!lcf->enable && !(ctx && ctx->store_download)) {
        return ngx_http_next_header_filter(r);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    v = ngx_http_get_indexed_variable(r, mcf->request_id_index);

    /*
     * an error page that a later filter makes of the answer (the range
     * filter's 416) sends the headers through here a second time
     */

    if (v && !v->not_found
        && !ngx_http_modelreg_has_request_id(r))
    {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "X-Request-Id");
        h->value.data = v->data;
        h->value.len = v->len;
    }

    /* the store's proxied answer: the store layer's filter, next */

    if (ctx && ctx->store_download && !ctx->own_reply && r->upstream) {
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.status >= NGX_HTTP_BAD_REQUEST
        && (ctx == NULL || !ctx->own_reply))
    {
        if (ngx_http_modelreg_json_error_page(r, ctx, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_uint_t
ngx_http_modelreg_has_request_id(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash
            && h[i].key.len == sizeof("X-Request-Id") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Request-Id",
                               h[i].key.len)
               == 0)
        {
            return 1;
        }
    }
}

/* the answer becomes {"detail": detail}, else its status's reason */

ngx_int_t
ngx_http_modelreg_json_error_page(ngx_http_request_t *r,
    ngx_http_modelreg_ctx_t *ctx, const char *detail)
{
    u_char                      *p;
    ngx_buf_t                   *b;
    ngx_http_modelreg_reason_t  *rs;

    for (rs = ngx_http_modelreg_reasons; rs->status; rs++) {
        if (rs->status == r->headers_out.status) {
            break;
        }
    }

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_modelreg_module);
    }

    if (detail == NULL) {
        detail = rs->text ? rs->text : "Error";
    }

    b = ngx_create_temp_buf(r->pool, sizeof("{\"detail\":\"\"}")
                                     + ngx_strlen(detail));
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(b->pos, "{\"detail\":\"%s\"}", detail);
    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    ctx->error_page = b;
    ctx->own_reply = 1;

    r->headers_out.content_type = ngx_http_modelreg_json_type;
    r->headers_out.content_type_len = ngx_http_modelreg_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = b->last - b->pos;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_uint_t                last;
    ngx_chain_t              *cl, out;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_modelreg_get_ctx(r);

    if (ctx == NULL || ctx->error_page == NULL || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    /* swallow nginx's HTML page, send ours with its last buffer */

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;

        if (cl->buf->last_buf) {
            last = 1;
        }
    }

    if (!last) {
        return NGX_OK;
    }

    out.buf = ctx->error_page;
    out.next = NULL;

    ctx->error_page = NULL;

    return ngx_http_next_body_filter(r, &out);
}
