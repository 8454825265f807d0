/*
 * Copyright (C) modelreg authors
 *
 * GET /metrics: the counters of stats.c as Prometheus text.  The page is
 * written twice over one snapshot of them: once to measure it, once into
 * a buffer of exactly that length.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_stats.h"


/* no formatted piece of the page is longer than this */
#define NGX_HTTP_MODELREG_METRICS_PIECE  1024


typedef struct {
    u_char                     *pos;     /* NULL: only measuring */
    u_char                     *last;
    size_t                      len;
} ngx_http_modelreg_metrics_out_t;


static void ngx_http_modelreg_metrics_pending(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_metrics_send(ngx_http_request_t *r,
    ngx_int_t gc_pending, ngx_int_t hooks_pending);
static void ngx_http_modelreg_metrics_page(ngx_http_modelreg_metrics_out_t *o,
    ngx_http_modelreg_stats_t *m, ngx_int_t gc_pending,
    ngx_int_t hooks_pending);
static void ngx_http_modelreg_metrics_head(ngx_http_modelreg_metrics_out_t *o,
    const char *name, const char *type, const char *help);
static void ngx_cdecl ngx_http_modelreg_metrics_out(
    ngx_http_modelreg_metrics_out_t *o, const char *fmt, ...);


/* labels, in the order of their enums */

static const char  *ngx_http_modelreg_metrics_routes[] = {
    "unknown", "/health", "/health/ready", "/models", "/models/{id}",
    "/models/{id}/files", "/projects", "/projects/{id}",
    "/projects/{id}/geti-models/download", "/geti/sync", "/audit",
    "/metrics", "/openapi.json", "/docs", "/models/{id}/links",
    "/aliases/{name}", "/aliases/{name}/{alias}",
    "/aliases/{name}/{alias}/files", "/events"
};

/* a route without its label (or a label too many) fails the build */
typedef char  ngx_http_modelreg_metrics_routes_check[
    sizeof(ngx_http_modelreg_metrics_routes)
    / sizeof(ngx_http_modelreg_metrics_routes[0])
    == NGX_HTTP_MODELREG_ROUTES ? 1 : -1];

static const char  *ngx_http_modelreg_metrics_ops[] = {
    "put", "get", "delete", "check"
};

static const char  *ngx_http_modelreg_metrics_sync_outcomes[] = {
    "ok", "partial", "failed"
};

static const char  *ngx_http_modelreg_metrics_import_outcomes[] = {
    "registered", "failed", "timed_out"
};

static const char  *ngx_http_modelreg_metrics_cache_events[] = {
    "hit", "miss", "store", "invalidate", "flush"
};

static const char  *ngx_http_modelreg_metrics_webhook_outcomes[] = {
    "delivered", "retried", "failed"
};

static const char  *ngx_http_modelreg_metrics_le_text[] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10", "30", "+Inf"
};


/* GET /metrics: the clean-up's and the webhooks' backlogs are the
 * database's to say */

ngx_int_t
ngx_http_modelreg_metrics(ngx_http_request_t *r)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_query(r, "SELECT (SELECT count(*) FROM storage_gc),"
                                " (SELECT count(*) FROM webhook_deliveries"
                                " WHERE state = 'pending')", 0,
                                ngx_http_modelreg_metrics_pending);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_modelreg_query_run(r, q) == NGX_DONE) {
        return NGX_DONE;
    }

    /* the rest is still worth a scrape when the database is down */

    return ngx_http_modelreg_metrics_send(r, -1, -1);
}


static void
ngx_http_modelreg_metrics_pending(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t            n, hooks;
    ngx_http_request_t  *r;

    r = q->data;
    n = -1;
    hooks = -1;

    if (q->status == NGX_HTTP_MODELREG_PG_OK && PQntuples(q->result) == 1) {
        n = ngx_atoi((u_char *) PQgetvalue(q->result, 0, 0),
                     PQgetlength(q->result, 0, 0));
        hooks = ngx_atoi((u_char *) PQgetvalue(q->result, 0, 1),
                         PQgetlength(q->result, 0, 1));
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_metrics_send(r, n, hooks));
}


static ngx_int_t
ngx_http_modelreg_metrics_send(ngx_http_request_t *r, ngx_int_t gc_pending,
    ngx_int_t hooks_pending)
{
    u_char                           *start;
    ngx_str_t                         type = ngx_string(
                                          "text/plain; version=0.0.4");
    ngx_http_modelreg_stats_t        *m;
    ngx_http_modelreg_main_conf_t    *mcf;
    ngx_http_modelreg_metrics_out_t   o;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    /* (the zone exists wherever "modelreg" is: set by init_process) */

    m = ngx_http_modelreg_stats_snapshot(r->pool, mcf->pool);
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&o, sizeof(ngx_http_modelreg_metrics_out_t));

    ngx_http_modelreg_metrics_page(&o, m, gc_pending, hooks_pending);

    start = ngx_pnalloc(r->pool, o.len);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    o.pos = start;
    o.last = start + o.len;

    ngx_http_modelreg_metrics_page(&o, m, gc_pending, hooks_pending);

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &type, start,
                                  o.pos - start);
}


static void
ngx_http_modelreg_metrics_page(ngx_http_modelreg_metrics_out_t *o,
    ngx_http_modelreg_stats_t *m, ngx_int_t gc_pending,
    ngx_int_t hooks_pending)
{
    ngx_uint_t         i, s, b, count;
    ngx_atomic_uint_t  v, sum[8];

    ngx_http_modelreg_metrics_head(o, "modelreg_http_requests_total",
        "counter", "Requests answered by the registry, by route and status.");

    for (i = 0; i < NGX_HTTP_MODELREG_ROUTES; i++) {
        for (s = 0; s < NGX_HTTP_MODELREG_STATUSES; s++) {
            v = m->requests[i][s];

            if (v) {
                ngx_http_modelreg_metrics_out(o,
                    "modelreg_http_requests_total"
                    "{route=\"%s\",status=\"%ui\"} %uA\n",
                    ngx_http_modelreg_metrics_routes[i], s + 100, v);
            }
        }
    }

    ngx_http_modelreg_metrics_head(o,
        "modelreg_http_request_duration_seconds", "histogram",
        "Time from the request line to the log phase, by route.");

    for (i = 0; i < NGX_HTTP_MODELREG_ROUTES; i++) {
        count = 0;

        for (b = 0; b < NGX_HTTP_MODELREG_BUCKETS; b++) {
            count += m->latency[i][b];
        }

        if (count == 0) {
            continue;
        }

        count = 0;

        for (b = 0; b < NGX_HTTP_MODELREG_BUCKETS; b++) {
            count += m->latency[i][b];

            ngx_http_modelreg_metrics_out(o,
                "modelreg_http_request_duration_seconds_bucket"
                "{route=\"%s\",le=\"%s\"} %ui\n",
                ngx_http_modelreg_metrics_routes[i],
                ngx_http_modelreg_metrics_le_text[b], count);
        }

        v = m->latency_ms[i];

        ngx_http_modelreg_metrics_out(o,
            "modelreg_http_request_duration_seconds_sum"
            "{route=\"%s\"} %uA.%03uA\n"
            "modelreg_http_request_duration_seconds_count"
            "{route=\"%s\"} %ui\n",
            ngx_http_modelreg_metrics_routes[i], v / 1000, v % 1000,
            ngx_http_modelreg_metrics_routes[i], count);
    }

    /* the pools of the workers alive now */

    ngx_memzero(sum, sizeof(sum));

    for (i = 0; i < NGX_HTTP_MODELREG_SLOTS; i++) {
        if (m->slots[i].pid == 0) {
            continue;
        }

        sum[0] += m->slots[i].size;
        sum[1] += m->slots[i].connected;
        sum[2] += m->slots[i].busy;
        sum[3] += m->slots[i].waiting;
        sum[4] += m->slots[i].errors;
        sum[5] += m->slots[i].timeouts;
        sum[6] += m->slots[i].rejected;
    }

    ngx_http_modelreg_metrics_head(o, "modelreg_db_pool_connections", "gauge",
        "Database connections of all workers: configured, connected, busy.");

    ngx_http_modelreg_metrics_out(o,
        "modelreg_db_pool_connections{state=\"size\"} %uA\n"
        "modelreg_db_pool_connections{state=\"connected\"} %uA\n"
        "modelreg_db_pool_connections{state=\"busy\"} %uA\n",
        sum[0], sum[1], sum[2]);

    ngx_http_modelreg_metrics_head(o, "modelreg_db_pool_waiting", "gauge",
        "Queries queued for a free database connection.");

    ngx_http_modelreg_metrics_out(o, "modelreg_db_pool_waiting %uA\n",
                                  sum[3]);

    ngx_http_modelreg_metrics_head(o, "modelreg_db_errors_total", "counter",
        "Queries that failed: connection errors, deadlines, a full queue "
        "(since each worker started).");

    ngx_http_modelreg_metrics_out(o,
        "modelreg_db_errors_total{kind=\"error\"} %uA\n"
        "modelreg_db_errors_total{kind=\"timeout\"} %uA\n"
        "modelreg_db_errors_total{kind=\"rejected\"} %uA\n",
        sum[4], sum[5], sum[6]);

    ngx_http_modelreg_metrics_head(o, "modelreg_storage_calls_total",
        "counter", "Calls to the object store, by operation and outcome.");

    for (i = 0; i < NGX_HTTP_MODELREG_STORE_OPS; i++) {
        ngx_http_modelreg_metrics_out(o,
            "modelreg_storage_calls_total{op=\"%s\",outcome=\"ok\"} %uA\n"
            "modelreg_storage_calls_total{op=\"%s\",outcome=\"error\"} %uA\n",
            ngx_http_modelreg_metrics_ops[i], m->store[i][0],
            ngx_http_modelreg_metrics_ops[i], m->store[i][1]);
    }

    ngx_http_modelreg_metrics_head(o, "modelreg_storage_gc_total", "counter",
        "Queued object deletions retried by the clean-up timer.");

    ngx_http_modelreg_metrics_out(o,
        "modelreg_storage_gc_total{outcome=\"removed\"} %uA\n"
        "modelreg_storage_gc_total{outcome=\"failed\"} %uA\n",
        m->gc[0], m->gc[1]);

    if (gc_pending >= 0) {
        ngx_http_modelreg_metrics_head(o, "modelreg_storage_gc_pending",
            "gauge", "Object deletions queued in storage_gc now.");

        ngx_http_modelreg_metrics_out(o, "modelreg_storage_gc_pending %i\n",
                                      gc_pending);
    }

    ngx_http_modelreg_metrics_head(o, "modelreg_database_up", "gauge",
        "1 if this scrape's query reached the database.");

    ngx_http_modelreg_metrics_out(o, "modelreg_database_up %d\n",
                                  gc_pending >= 0);

    ngx_http_modelreg_metrics_head(o, "modelreg_geti_sync_runs_total",
        "counter", "Geti sync runs, by outcome.");

    for (i = 0; i < NGX_HTTP_MODELREG_OUTCOMES; i++) {
        ngx_http_modelreg_metrics_out(o,
            "modelreg_geti_sync_runs_total{outcome=\"%s\"} %uA\n",
            ngx_http_modelreg_metrics_sync_outcomes[i], m->sync[i]);
    }

    ngx_http_modelreg_metrics_head(o, "modelreg_geti_imports_total",
        "counter", "Geti models asked for by imports, by outcome.");

    for (i = 0; i < NGX_HTTP_MODELREG_OUTCOMES; i++) {
        ngx_http_modelreg_metrics_out(o,
            "modelreg_geti_imports_total{outcome=\"%s\"} %uA\n",
            ngx_http_modelreg_metrics_import_outcomes[i], m->imports[i]);
    }

    ngx_http_modelreg_metrics_head(o, "modelreg_cache_events_total",
        "counter", "The model read cache: hits, misses, entries stored, "
        "invalidated, flushes.");

    for (i = 0; i < NGX_HTTP_MODELREG_CACHE_EVENTS; i++) {
        ngx_http_modelreg_metrics_out(o,
            "modelreg_cache_events_total{event=\"%s\"} %uA\n",
            ngx_http_modelreg_metrics_cache_events[i], m->cache[i]);
    }

    ngx_http_modelreg_metrics_head(o, "modelreg_webhook_deliveries_total",
        "counter", "Webhook delivery attempts, by outcome: delivered, "
        "retried (an attempt failed), failed (given up).");

    for (i = 0; i < NGX_HTTP_MODELREG_WEBHOOK_OUTCOMES; i++) {
        ngx_http_modelreg_metrics_out(o,
            "modelreg_webhook_deliveries_total{outcome=\"%s\"} %uA\n",
            ngx_http_modelreg_metrics_webhook_outcomes[i], m->webhooks[i]);
    }

    if (hooks_pending >= 0) {
        ngx_http_modelreg_metrics_head(o, "modelreg_webhook_backlog",
            "gauge", "Webhook deliveries pending now, all hooks.");

        ngx_http_modelreg_metrics_out(o, "modelreg_webhook_backlog %i\n",
                                      hooks_pending);
    }
}


static void
ngx_http_modelreg_metrics_head(ngx_http_modelreg_metrics_out_t *o,
    const char *name, const char *type, const char *help)
{
    ngx_http_modelreg_metrics_out(o, "# HELP %s %s\n# TYPE %s %s\n",
                                  name, help, name, type);
}


/*
 * Measuring formats each piece into a scratch buffer and counts it;
 * writing formats it into the page, never past its end.
 */

static void ngx_cdecl
ngx_http_modelreg_metrics_out(ngx_http_modelreg_metrics_out_t *o,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    piece[NGX_HTTP_MODELREG_METRICS_PIECE];

    va_start(args, fmt);

    if (o->pos == NULL) {
        p = ngx_vslprintf(piece, piece + sizeof(piece), fmt, args);
        o->len += p - piece;

    } else {
        o->pos = ngx_vslprintf(o->pos, o->last, fmt, args);
    }

    va_end(args);
}
