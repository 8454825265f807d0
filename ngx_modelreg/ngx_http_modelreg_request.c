/*
 * Copyright (C) modelreg authors
 *
 * What every route shares about its request: the context, the end of an
 * asynchronous step (finish), queries made for the request and their
 * parameters, the audit values, header helpers; and queries that outlive
 * any request (detached).
 */


#include "ngx_http_modelreg.h"


static void ngx_http_modelreg_ctx_cleanup(void *data);
static ngx_http_modelreg_pg_query_t *ngx_http_modelreg_query_alloc(
    ngx_pool_t *pool, ngx_log_t *log, const char *sql, ngx_uint_t n);
static void ngx_http_modelreg_detached_done(ngx_http_modelreg_pg_query_t *q);


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


/* the last step of a content handler's asynchronous work, or a body's */

void
ngx_http_modelreg_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "modelreg request: finish rc:%i count:%d",
                   rc, r->main->count);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* a query whose handler gets "r" back as q->data */

ngx_http_modelreg_pg_query_t *
ngx_http_modelreg_query(ngx_http_request_t *r, const char *sql, ngx_uint_t n,
    ngx_http_modelreg_pg_handler_pt handler)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_query_alloc(r->pool, r->connection->log, sql, n);
    if (q == NULL) {
        return NULL;
    }

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

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg request: query declined");
        return NGX_DECLINED;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg request: query sent, holding count:%d: %s",
                   r->main->count, q->sql);

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


/*
 * Parameter i of "q" as a NUL-terminated copy of "value" on "pool", the
 * one way parameters are made: no value, or an empty one, is SQL NULL.
 */

ngx_int_t
ngx_http_modelreg_query_param(ngx_pool_t *pool,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t i, ngx_str_t *value)
{
    u_char  *p;

    if (value == NULL || value->len == 0) {
        q->values[i] = NULL;
        q->lengths[i] = 0;
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, value->len + 1);
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
        if (ngx_http_modelreg_query_param(r->pool, q, first + i, &v[i])
            != NGX_OK)
        {
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
 * A model that aliases point at cannot be deleted or renamed: the
 * database says so (sql/005's trigger: 23503, the aliases, sorted, as
 * its detail) and this answers 409 naming them.  NGX_DECLINED: "q" did
 * not fail that way.
 */

ngx_int_t
ngx_http_modelreg_referenced(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_str_t *id)
{
    char  *detail, *constraint;

    if (q->status != NGX_HTTP_MODELREG_PG_SQL_ERROR
        || ngx_strcmp(q->sqlstate, NGX_HTTP_MODELREG_PG_FOREIGN_KEY) != 0)
    {
        return NGX_DECLINED;
    }

    detail = PQresultErrorField(q->result, PG_DIAG_MESSAGE_DETAIL);
    constraint = PQresultErrorField(q->result, PG_DIAG_CONSTRAINT_NAME);

    if (detail == NULL || constraint == NULL
        || ngx_strcmp(constraint, "aliases_model_fkey") != 0)
    {
        return NGX_DECLINED;
    }

    return ngx_http_modelreg_send_error(r, NGX_HTTP_CONFLICT,
                                        "Model %V is referenced by "
                                        "alias(es): %s.", id, detail);
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


/* a response header; NULL when out of memory */

ngx_table_elt_t *
ngx_http_modelreg_header_out(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return h;
}


/*
 * Runs "sql" with copies of "values" (no data: NULL) on its own memory, so
 * the request that asked for it may end first.  Failures are logged.
 */

void
ngx_http_modelreg_detached(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, const char *sql, ngx_uint_t n, ngx_str_t *values)
{
    ngx_pool_t                    *pool;
    ngx_http_modelreg_pg_query_t  *q;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    q = ngx_http_modelreg_query_copy(pool, sql, n, values);
    if (q == NULL) {
        goto failed;
    }

    q->handler = ngx_http_modelreg_detached_done;
    q->data = pool;

    if (ngx_http_modelreg_pg_send(mcf->pool, q) == NGX_OK) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "modelreg request: detached query sent: %s", sql);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "modelreg: database unavailable, not written: %s", sql);

failed:

    ngx_destroy_pool(pool);
}


/* a query on "pool" with copies of "values" */

ngx_http_modelreg_pg_query_t *
ngx_http_modelreg_query_copy(ngx_pool_t *pool, const char *sql, ngx_uint_t n,
    ngx_str_t *values)
{
    ngx_uint_t                     i;
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_query_alloc(pool, ngx_cycle->log, sql, n);
    if (q == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_modelreg_query_param(pool, q, i, &values[i]) != NGX_OK) {
            return NULL;
        }
    }

    return q;
}


/* "n" parameters, all SQL NULL until set */

static ngx_http_modelreg_pg_query_t *
ngx_http_modelreg_query_alloc(ngx_pool_t *pool, ngx_log_t *log,
    const char *sql, ngx_uint_t n)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_pg_query_create(pool, log);
    if (q == NULL) {
        return NULL;
    }

    if (n) {
        q->values = ngx_pcalloc(pool, n * sizeof(char *));
        q->lengths = ngx_pcalloc(pool, n * sizeof(int));

        if (q->values == NULL || q->lengths == NULL) {
            return NULL;
        }
    }

    q->sql = sql;
    q->nparams = n;

    return q;
}


static void
ngx_http_modelreg_detached_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg request: detached query done, status:%ui",
                   q->status);

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "modelreg: not written (%s): %s",
                      q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR
                      ? q->sqlstate : "database unavailable", q->sql);
    }

    ngx_destroy_pool(q->data);
}
