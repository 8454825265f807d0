
/*
 * Copyright (C) modelreg authors
 *
 * The content handler: route, method, id format, then the route's handler.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_geti.h"


static ngx_uint_t ngx_http_modelreg_method(ngx_http_request_t *r);
static void ngx_http_modelreg_ctx_cleanup(void *data);
static void ngx_http_modelreg_base(ngx_http_request_t *r, ngx_str_t *base);
static ngx_int_t ngx_http_modelreg_not_allowed(ngx_http_request_t *r,
    ngx_http_modelreg_route_t *rt);


ngx_int_t
ngx_http_modelreg_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_route_t      *rt;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_modelreg_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rt = &ctx->route;

    ngx_http_modelreg_base(r, &ctx->base);

    if (ngx_http_modelreg_route_match(r->uri.data + ctx->base.len,
                                      r->uri.len - ctx->base.len, rt)
        != NGX_OK)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Not Found");
    }

    if (!(ngx_http_modelreg_method(r) & rt->methods)) {
        return ngx_http_modelreg_not_allowed(r, rt);
    }

    if (rt->id_kind
        && ngx_http_modelreg_valid_id(rt->id.data, rt->id.len) != NGX_OK)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid format for %s ID.",
                                            rt->id_kind);
    }

    /* routes that read no body */

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    switch (rt->route) {

    case NGX_HTTP_MODELREG_ROUTE_HEALTH:
        return ngx_http_modelreg_health(r);

    case NGX_HTTP_MODELREG_ROUTE_READY:
        return ngx_http_modelreg_ready(r);

    case NGX_HTTP_MODELREG_ROUTE_MODELS:
        if (r->method == NGX_HTTP_POST) {
            return ngx_http_modelreg_models_create(r);
        }

        return ngx_http_modelreg_models_list(r);

    case NGX_HTTP_MODELREG_ROUTE_MODEL:
        if (r->method == NGX_HTTP_PUT) {
            return ngx_http_modelreg_models_update(r);
        }

        if (r->method == NGX_HTTP_DELETE) {
            return ngx_http_modelreg_models_delete(r);
        }

        return ngx_http_modelreg_models_get(r);

    case NGX_HTTP_MODELREG_ROUTE_MODEL_FILES:
        return ngx_http_modelreg_models_files(r);

    case NGX_HTTP_MODELREG_ROUTE_AUDIT:
        return ngx_http_modelreg_audit_list(r);

    case NGX_HTTP_MODELREG_ROUTE_METRICS:
        return ngx_http_modelreg_metrics(r);

    case NGX_HTTP_MODELREG_ROUTE_PROJECTS:
    case NGX_HTTP_MODELREG_ROUTE_PROJECT:
    case NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD:
    case NGX_HTTP_MODELREG_ROUTE_GETI_SYNC:
        mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

        if (mcf->geti && rt->route == NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD)
        {
            return ngx_http_modelreg_geti_import(r);
        }

        if (r->method & NGX_HTTP_POST) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        if (mcf->geti == NULL) {
            return ngx_http_modelreg_send_error(r,
                                         NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "Geti integration is not configured.");
        }

        if (rt->route == NGX_HTTP_MODELREG_ROUTE_PROJECTS
            || rt->route == NGX_HTTP_MODELREG_ROUTE_PROJECT)
        {
            return ngx_http_modelreg_projects(r);
        }

        return ngx_http_modelreg_sync_route(r);

    default:
        break;
    }

    if (r->method & (NGX_HTTP_POST|NGX_HTTP_PUT)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_IMPLEMENTED,
                                        "Not Implemented");
}


/*
 * The request context, found again after an internal redirect (which
 * clears module contexts): a download handed to the store's location
 * still needs it.  A pool cleanup marks it; only the main request may
 * take it back, subrequests share the pool.
 */

ngx_http_modelreg_ctx_t *
ngx_http_modelreg_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_modelreg_ctx_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_modelreg_module);

    return ctx;
}


ngx_http_modelreg_ctx_t *
ngx_http_modelreg_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ctx || !r->internal || r != r->main) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_modelreg_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_modelreg_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_modelreg_ctx_cleanup(void *data)
{
    /* nothing to free: a marker */
}


/* a query whose handler gets "r" back as q->data */

ngx_http_modelreg_pg_query_t *
ngx_http_modelreg_query(ngx_http_request_t *r, const char *sql, ngx_uint_t n,
    ngx_http_modelreg_pg_handler_pt handler)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_pg_query_create(r->pool, r->connection->log);
    if (q == NULL) {
        return NULL;
    }

    if (n) {
        q->values = ngx_pcalloc(r->pool, n * sizeof(char *));
        q->lengths = ngx_pcalloc(r->pool, n * sizeof(int));

        if (q->values == NULL || q->lengths == NULL) {
            return NULL;
        }
    }

    q->sql = sql;
    q->nparams = n;
    q->handler = handler;
    q->data = r;

    return q;
}


/*
 * Runs "q" for the request, which it holds (r->main->count) until its
 * handler ends with ngx_http_modelreg_finish(): NGX_DONE.  NGX_DECLINED:
 * the database cannot take it now (down, or the wait queue full); nothing
 * was sent and nothing is held.
 */

ngx_int_t
ngx_http_modelreg_query_run(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    r->main->count++;

    if (ngx_http_modelreg_pg_send(mcf->pool, q) != NGX_OK) {
        r->main->count--;
        return NGX_DECLINED;
    }

    return NGX_DONE;
}


/* the same, answering 503 when the database cannot take it: NGX_DONE */

ngx_int_t
ngx_http_modelreg_query_start(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    if (ngx_http_modelreg_query_run(r, q) != NGX_DONE) {
        return ngx_http_modelreg_db_unavailable(r);
    }

    return NGX_DONE;
}


/* parameter i: "value" must be NUL-terminated; NULL or no data: SQL NULL */

void
ngx_http_modelreg_param(ngx_http_modelreg_pg_query_t *q, ngx_uint_t i,
    ngx_str_t *value)
{
    if (value == NULL || value->data == NULL) {
        q->values[i] = NULL;
        q->lengths[i] = 0;
        return;
    }

    q->values[i] = (const char *) value->data;
    q->lengths[i] = (int) value->len;
}


/* parameter i as a copy of "value"; an empty value is SQL NULL */

ngx_int_t
ngx_http_modelreg_param_str(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t i, ngx_str_t *value)
{
    u_char  *p;

    if (value == NULL || value->len == 0) {
        q->values[i] = NULL;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, value->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value->data, value->len);
    p[value->len] = '\0';

    q->values[i] = (const char *) p;
    q->lengths[i] = (int) value->len;

    return NGX_OK;
}


/* v[0] actor ("-" when none), v[1] request id, v[2] client address */

ngx_int_t
ngx_http_modelreg_audit_values(ngx_http_request_t *r, ngx_str_t *v)
{
    ngx_http_variable_value_t      *vv;
    ngx_http_modelreg_loc_conf_t   *lcf;
    ngx_http_modelreg_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    ngx_str_null(&v[0]);
    ngx_str_null(&v[1]);

    if (lcf->actor && ngx_http_complex_value(r, lcf->actor, &v[0]) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (v[0].len == 0
        || ngx_http_modelreg_utf8_valid(v[0].data, v[0].len) != NGX_OK)
    {
        ngx_str_set(&v[0], "-");
    }

    vv = ngx_http_get_indexed_variable(r, mcf->request_id_index);

    if (vv && !vv->not_found) {
        v[1].data = vv->data;
        v[1].len = vv->len;
    }

    v[2] = r->connection->addr_text;

    return NGX_OK;
}


/* three parameters from "first" on: actor, request id, client address */

ngx_int_t
ngx_http_modelreg_audit_params(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t first)
{
    ngx_uint_t  i;
    ngx_str_t   v[3];

    if (ngx_http_modelreg_audit_values(r, v) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        if (ngx_http_modelreg_param_str(r, q, first + i, &v[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a failed query's answer: the database is down, or it is our bug */

ngx_int_t
ngx_http_modelreg_pg_error(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    if (q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: query failed: %s: %s", q->sqlstate,
                      PQresultErrorField(q->result, PG_DIAG_MESSAGE_PRIMARY));

        return ngx_http_modelreg_send_error(r,
                                            NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "Internal Server Error");
    }

    return ngx_http_modelreg_db_unavailable(r);
}


/*
 * For queries whose first row is the model: NGX_OK when it is there,
 * else NGX_DONE, the answer sent (the database's error, or 404).
 */

ngx_int_t
ngx_http_modelreg_model_missing(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        return ngx_http_modelreg_pg_error(r, q);
    }

    if (PQntuples(q->result) == 0) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Model not found.");
    }

    return NGX_OK;
}


ngx_table_elt_t *
ngx_http_modelreg_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


ngx_int_t
ngx_http_modelreg_header_out(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_modelreg_method(ngx_http_request_t *r)
{
    switch (r->method) {
    case NGX_HTTP_GET:
        return NGX_HTTP_MODELREG_M_GET;
    case NGX_HTTP_HEAD:
        return NGX_HTTP_MODELREG_M_HEAD;
    case NGX_HTTP_POST:
        return NGX_HTTP_MODELREG_M_POST;
    case NGX_HTTP_PUT:
        return NGX_HTTP_MODELREG_M_PUT;
    case NGX_HTTP_DELETE:
        return NGX_HTTP_MODELREG_M_DELETE;
    default:
        return 0;
    }
}


/*
 * "location /registry/ { modelreg; }" serves /registry/models: routes are
 * matched below the prefix of a prefix location.
 */

static void
ngx_http_modelreg_base(ngx_http_request_t *r, ngx_str_t *base)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_str_null(base);

#if (NGX_PCRE)
    if (clcf->regex) {
        return;
    }
#endif

    /* "location = /metrics { modelreg; allow ...; }": the whole URI */

    if (clcf->named || clcf->exact_match || clcf->name.len == 0
        || clcf->name.data[0] != '/')
    {
        return;
    }

    base->data = clcf->name.data;
    base->len = clcf->name.len;

    if (base->data[base->len - 1] == '/') {
        base->len--;
    }

    if (r->uri.len < base->len
        || ngx_strncmp(r->uri.data, base->data, base->len) != 0)
    {
        ngx_str_null(base);
    }
}


static ngx_int_t
ngx_http_modelreg_not_allowed(ngx_http_request_t *r,
    ngx_http_modelreg_route_t *rt)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) rt->allow;
    h->value.len = ngx_strlen(rt->allow);

    return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "Method Not Allowed");
}
