
/*
 * Copyright (C) modelreg authors
 *
 * GET /geti/sync: the state of the sync (running, its last run, the
 * next); POST /geti/sync: a run, now, answered 202 once it holds the
 * lease, 409 when another runner has it.  The run is the sync service's
 * (ngx_http_modelreg_geti_sync.c): it tells this route that it started
 * through the callback the route gives it.
 */


#include "ngx_http_modelreg_geti.h"


typedef struct {
    ngx_http_request_t  *request;       /* NULL once it went away */
    ngx_pool_cleanup_t  *cln;
} ngx_http_modelreg_sync_asker_t;


static void ngx_http_modelreg_sync_asked(void *data, ngx_int_t rc);
static void ngx_http_modelreg_sync_asker_gone(void *data);
static ngx_int_t ngx_http_modelreg_sync_status(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_modelreg_sync_status_done(
    ngx_http_modelreg_pg_query_t *q);


static const char  ngx_http_modelreg_status_sql[] =
    "SELECT modelreg_sync_json($1::int)";


ngx_int_t
ngx_http_modelreg_sync_route(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_pool_cleanup_t              *cln;
    ngx_http_modelreg_sync_asker_t  *a;
    ngx_http_modelreg_main_conf_t   *mcf;

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_modelreg_sync_status(r, NGX_HTTP_OK);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    /*
     * The asker lives until the run says it started, which may be after
     * the request went away: on the heap, freed by sync_asked(), which
     * sync_start() calls exactly once when it returns NGX_OK.
     */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = ngx_alloc(sizeof(ngx_http_modelreg_sync_asker_t),
                  r->connection->log);
    if (a == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a->request = r;
    a->cln = cln;
    cln->handler = ngx_http_modelreg_sync_asker_gone;
    cln->data = a;

    r->main->count++;

    rc = ngx_http_modelreg_sync_start(mcf, ngx_http_modelreg_sync_asked, a);

    if (rc != NGX_OK) {
        cln->handler = NULL;
        ngx_free(a);
        r->main->count--;

        if (rc == NGX_BUSY) {
            return ngx_http_modelreg_send_error(r, NGX_HTTP_CONFLICT,
                                          "A Geti sync is already running.");
        }

        return ngx_http_modelreg_db_unavailable(r);
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_sync_asked(void *data, ngx_int_t rc)
{
    ngx_http_modelreg_sync_asker_t *a = data;

    ngx_http_request_t  *r;

    r = a->request;

    if (r) {
        a->cln->handler = NULL;
    }

    ngx_free(a);

    if (r == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "modelreg geti_sync: the run asked for: %i, "
                       "its asker gone", rc);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_sync: the run asked for: %i", rc);

    if (rc == NGX_OK) {
        rc = ngx_http_modelreg_sync_status(r, NGX_HTTP_ACCEPTED);

    } else if (rc == NGX_BUSY) {
        rc = ngx_http_modelreg_send_error(r, NGX_HTTP_CONFLICT,
                                          "A Geti sync is already running.");

    } else {
        rc = ngx_http_modelreg_db_unavailable(r);
    }

    ngx_http_modelreg_finish(r, rc);
}


static void
ngx_http_modelreg_sync_asker_gone(void *data)
{
    ngx_http_modelreg_sync_asker_t *a = data;

    a->request = NULL;
}


static ngx_int_t
ngx_http_modelreg_sync_status(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_str_t                       v;
    u_char                          buf[NGX_INT_T_LEN];
    ngx_uint_t                     *st;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    /* the route's state: the status to answer with the database's JSON */

    st = ngx_palloc(r->pool, sizeof(ngx_uint_t));
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *st = status;
    ctx->data = st;

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_status_sql, 1,
                                ngx_http_modelreg_sync_status_done);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (mcf->geti->sync) {
        v.data = buf;
        v.len = ngx_sprintf(buf, "%M", mcf->geti->sync / 1000) - buf;

        if (ngx_http_modelreg_query_param(r->pool, q, 0, &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_sync_status_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (q->status != NGX_HTTP_MODELREG_PG_OK || PQntuples(q->result) != 1) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_send(r, *(ngx_uint_t *) ctx->data,
                               &ngx_http_modelreg_json_type,
                               (u_char *) PQgetvalue(q->result, 0, 0),
                               PQgetlength(q->result, 0, 0)));
}
