
/*
 * Copyright (C) modelreg authors
 *
 * GET /health (liveness: checks nothing) and GET /health/ready (a real
 * query through the pool, so it fails when the database does).
 */


#include "ngx_http_modelreg.h"


/* the last sql/NNN_*.sql migration that the module's queries need
 * (t/04-pool.t checks it against sql/) */
#define NGX_HTTP_MODELREG_SCHEMA_VERSION  9


static void ngx_http_modelreg_ready_done(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_ready_store(ngx_http_request_t *r,
    ngx_uint_t db_ok);
static void ngx_http_modelreg_ready_stored(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_modelreg_ready_send(ngx_http_request_t *r,
    ngx_uint_t db_ok, ngx_uint_t st_ok);


ngx_int_t
ngx_http_modelreg_health(ngx_http_request_t *r)
{
    static u_char  ok[] = "{\"status\":\"ok\"}";

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &ngx_http_modelreg_json_type,
                                  ok, sizeof(ok) - 1);
}


ngx_int_t
ngx_http_modelreg_ready(ngx_http_request_t *r)
{
    ngx_http_modelreg_pg_query_t   *q;

    q = ngx_http_modelreg_pg_query_create(r->pool, r->connection->log);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the schema must be there too: a database without it is not ready */

    q->sql = "SELECT max(version) FROM modelreg_migrations";
    q->handler = ngx_http_modelreg_ready_done;
    q->data = r;

    if (ngx_http_modelreg_query_run(r, q) == NGX_DONE) {
        return NGX_DONE;
    }

    return ngx_http_modelreg_ready_store(r, 0);
}


static void
ngx_http_modelreg_ready_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t            version;
    ngx_uint_t           ok;
    ngx_http_request_t  *r;

    r = q->data;
    ok = 0;

    if (q->status == NGX_HTTP_MODELREG_PG_OK && PQntuples(q->result) == 1) {

        /* (no migration recorded: NULL, as version 0) */

        version = PQgetisnull(q->result, 0, 0)
                  ? 0
                  : ngx_atoi((u_char *) PQgetvalue(q->result, 0, 0),
                             PQgetlength(q->result, 0, 0));

        ok = (version >= NGX_HTTP_MODELREG_SCHEMA_VERSION);

        if (!ok) {
            /* an older schema fails the queries that need what it lacks */
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "modelreg: the database's modelreg schema is at "
                          "version %i, this module needs %d (apply sql/ "
                          "migrations)",
                          version, NGX_HTTP_MODELREG_SCHEMA_VERSION);
        }

    } else if (q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: the database has no modelreg schema "
                      "(apply sql/ migrations): %s",
                      PQresultErrorField(q->result, PG_DIAG_MESSAGE_PRIMARY));
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_ready_store(r, ok));
}


/* the store's turn, which holds the request until ready_stored(): NGX_DONE */

static ngx_int_t
ngx_http_modelreg_ready_store(ngx_http_request_t *r, ngx_uint_t db_ok)
{
    ngx_uint_t               *ok;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    /* the route's state: the database's answer, for when the store's is in */

    ok = ngx_palloc(r->pool, sizeof(ngx_uint_t));
    if (ok == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ok = db_ok;
    ctx->data = ok;

    ngx_http_modelreg_store_ready(r, ngx_http_modelreg_ready_stored);

    return NGX_DONE;
}


static void
ngx_http_modelreg_ready_stored(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_uint_t               *db_ok;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    db_ok = ctx->data;

    ngx_http_modelreg_finish(r, ngx_http_modelreg_ready_send(r, *db_ok,
                                                             rc == NGX_OK));
}


static ngx_int_t
ngx_http_modelreg_ready_send(ngx_http_request_t *r, ngx_uint_t db_ok,
    ngx_uint_t st_ok)
{
    u_char  *p;
    size_t   len;

    len = sizeof("{\"status\":\"unavailable\",\"database\":\"unavailable\","
                 "\"storage\":\"unavailable\"}");

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_sprintf(p, "{\"status\":\"%s\",\"database\":\"%s\","
                         "\"storage\":\"%s\"}",
                      db_ok && st_ok ? "ok" : "unavailable",
                      db_ok ? "ok" : "unavailable",
                      st_ok ? "ok" : "unavailable")
          - p;

    return ngx_http_modelreg_send(r, db_ok && st_ok
                                     ? NGX_HTTP_OK
                                     : NGX_HTTP_SERVICE_UNAVAILABLE,
                                  &ngx_http_modelreg_json_type, p, len);
}
