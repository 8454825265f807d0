
/*
 * Copyright (C) modelreg authors
 *
 * GET /metrics: Prometheus text.  Counters live in one shared memory
 * zone, so any worker answers for all of them; each worker also copies
 * its database pool's gauges into a slot of its own there, once a second
 * and before it answers a scrape.  The zone is kept across reloads, so
 * counters only restart with the master.
 */


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_ROUTES    (NGX_HTTP_MODELREG_ROUTE_METRICS + 1)
#define NGX_HTTP_MODELREG_STATUSES  500            /* 100 ... 599 */
#define NGX_HTTP_MODELREG_BUCKETS   14             /* the last: +Inf */
#define NGX_HTTP_MODELREG_SLOTS     64             /* workers */
#define NGX_HTTP_MODELREG_OUTCOMES  3


typedef struct {
    ngx_atomic_t                pid;
    ngx_atomic_t                size;
    ngx_atomic_t                connected;
    ngx_atomic_t                busy;
    ngx_atomic_t                waiting;
    ngx_atomic_t                errors;
    ngx_atomic_t                timeouts;
    ngx_atomic_t                rejected;
} ngx_http_modelreg_metrics_slot_t;


typedef struct {
    ngx_atomic_t                requests[NGX_HTTP_MODELREG_ROUTES]
                                        [NGX_HTTP_MODELREG_STATUSES];
    ngx_atomic_t                latency[NGX_HTTP_MODELREG_ROUTES]
                                       [NGX_HTTP_MODELREG_BUCKETS];
    ngx_atomic_t                latency_ms[NGX_HTTP_MODELREG_ROUTES];
    ngx_atomic_t                store[NGX_HTTP_MODELREG_STORE_OPS][2];
    ngx_atomic_t                gc[2];          /* removed, failed */
    ngx_atomic_t                sync[NGX_HTTP_MODELREG_OUTCOMES];
    ngx_atomic_t                imports[NGX_HTTP_MODELREG_OUTCOMES];
    ngx_atomic_t                cache[NGX_HTTP_MODELREG_CACHE_EVENTS];
    ngx_http_modelreg_metrics_slot_t  slots[NGX_HTTP_MODELREG_SLOTS];
} ngx_http_modelreg_metrics_shm_t;


static ngx_int_t ngx_http_modelreg_metrics_zone_init(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_modelreg_metrics_log(ngx_http_request_t *r);
static void ngx_http_modelreg_metrics_tick(ngx_event_t *ev);
static void ngx_http_modelreg_metrics_publish(
    ngx_http_modelreg_pg_pool_t *pool);
static void ngx_http_modelreg_metrics_pending(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_metrics_send(ngx_http_request_t *r,
    ngx_int_t gc_pending);


static ngx_http_modelreg_metrics_shm_t  *ngx_http_modelreg_metrics_shm;
static ngx_event_t                       ngx_http_modelreg_metrics_timer;


/* labels, in the order of their enums */

static const char  *ngx_http_modelreg_metrics_routes[] = {
    "unknown", "/health", "/health/ready", "/models", "/models/{id}",
    "/models/{id}/files", "/projects", "/projects/{id}",
    "/projects/{id}/geti-models/download", "/geti/sync", "/audit",
    "/metrics"
};

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

/* upper bounds in milliseconds; the text form is Prometheus's seconds */

static ngx_msec_t  ngx_http_modelreg_metrics_le[] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};

static const char  *ngx_http_modelreg_metrics_le_text[] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10", "30", "+Inf"
};


ngx_int_t
ngx_http_modelreg_metrics_conf(ngx_conf_t *cf,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_str_t                   name = ngx_string("modelreg_metrics");
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    /* the counters and the slab allocator's own pages */
    mcf->metrics = ngx_shared_memory_add(cf, &name,
                      ngx_align(sizeof(ngx_http_modelreg_metrics_shm_t),
                                ngx_pagesize)
                      + 8 * ngx_pagesize,
                      &ngx_http_modelreg_module);
    if (mcf->metrics == NULL) {
        return NGX_ERROR;
    }

    mcf->metrics->init = ngx_http_modelreg_metrics_zone_init;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_modelreg_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_metrics_zone_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the old cycle's counters go on */
        zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    zone->data = ngx_slab_calloc(shpool,
                                 sizeof(ngx_http_modelreg_metrics_shm_t));
    if (zone->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_metrics_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_event_t  *ev;

    if (mcf->metrics == NULL) {
        return NGX_OK;
    }

    ngx_http_modelreg_metrics_shm = mcf->metrics->data;

    ev = &ngx_http_modelreg_metrics_timer;
    ev->handler = ngx_http_modelreg_metrics_tick;
    ev->log = cycle->log;
    ev->data = mcf;
    ev->cancelable = 1;

    ngx_http_modelreg_metrics_publish(mcf->pool);
    ngx_add_timer(ev, 1000);

    return NGX_OK;
}


void
ngx_http_modelreg_metrics_exit(void)
{
    ngx_http_modelreg_metrics_slot_t  *slot;

    if (ngx_http_modelreg_metrics_timer.timer_set) {
        ngx_del_timer(&ngx_http_modelreg_metrics_timer);
    }

    if (ngx_http_modelreg_metrics_shm && ngx_worker < NGX_HTTP_MODELREG_SLOTS)
    {
        slot = &ngx_http_modelreg_metrics_shm->slots[ngx_worker];

        if (slot->pid == (ngx_atomic_uint_t) ngx_pid) {
            ngx_memzero(slot, sizeof(ngx_http_modelreg_metrics_slot_t));
        }
    }

    ngx_http_modelreg_metrics_shm = NULL;
}


static void
ngx_http_modelreg_metrics_tick(ngx_event_t *ev)
{
    ngx_http_modelreg_main_conf_t  *mcf = ev->data;

    ngx_http_modelreg_metrics_publish(mcf->pool);

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


/* this worker's pool, into its slot (the last writer of a slot wins) */

static void
ngx_http_modelreg_metrics_publish(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_http_modelreg_pg_stats_t       st;
    ngx_http_modelreg_metrics_slot_t  *slot;

    if (ngx_http_modelreg_metrics_shm == NULL
        || pool == NULL
        || ngx_worker >= NGX_HTTP_MODELREG_SLOTS)
    {
        return;
    }

    ngx_http_modelreg_pg_stats(pool, &st);

    slot = &ngx_http_modelreg_metrics_shm->slots[ngx_worker];

    slot->pid = ngx_pid;
    slot->size = st.size;
    slot->connected = st.connected;
    slot->busy = st.busy;
    slot->waiting = st.waiting;
    slot->errors = st.errors;
    slot->timeouts = st.timeouts;
    slot->rejected = st.rejected;
}


/* the log phase: every request the module handled, by route and status */

static ngx_int_t
ngx_http_modelreg_metrics_log(ngx_http_request_t *r)
{
    ngx_msec_int_t                    ms;
    ngx_uint_t                        status, route, b;
    ngx_time_t                       *tp;
    ngx_http_modelreg_ctx_t          *ctx;
    ngx_http_modelreg_metrics_shm_t  *m;

    m = ngx_http_modelreg_metrics_shm;

    if (m == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_modelreg_get_ctx(r);

    if (ctx == NULL) {
        return NGX_OK;
    }

    route = ctx->route.route;
    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status == 0 && r->connection->error) {
        status = 499;                   /* nginx's "client closed" */
    }

    if (route < NGX_HTTP_MODELREG_ROUTES
        && status >= 100 && status < 100 + NGX_HTTP_MODELREG_STATUSES)
    {
        (void) ngx_atomic_fetch_add(&m->requests[route][status - 100], 1);

    } else {
        return NGX_OK;
    }

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    ms = ngx_max(ms, 0);

    for (b = 0; b < NGX_HTTP_MODELREG_BUCKETS - 1; b++) {
        if ((ngx_msec_t) ms <= ngx_http_modelreg_metrics_le[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->latency[route][b], 1);
    (void) ngx_atomic_fetch_add(&m->latency_ms[route], ms);

    return NGX_OK;
}


void
ngx_http_modelreg_metrics_store(ngx_uint_t op, ngx_uint_t ok)
{
    if (ngx_http_modelreg_metrics_shm && op < NGX_HTTP_MODELREG_STORE_OPS) {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_metrics_shm->store[op][ok ? 0 : 1], 1);
    }
}


void
ngx_http_modelreg_metrics_gc(ngx_uint_t removed, ngx_uint_t failed)
{
    if (ngx_http_modelreg_metrics_shm) {
        (void) ngx_atomic_fetch_add(&ngx_http_modelreg_metrics_shm->gc[0],
                                    removed);
        (void) ngx_atomic_fetch_add(&ngx_http_modelreg_metrics_shm->gc[1],
                                    failed);
    }
}


/* a Geti sync run: 0 ok, 1 partial, 2 failed */

void
ngx_http_modelreg_metrics_sync(ngx_uint_t outcome)
{
    if (ngx_http_modelreg_metrics_shm && outcome < NGX_HTTP_MODELREG_OUTCOMES)
    {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_metrics_shm->sync[outcome], 1);
    }
}


void
ngx_http_modelreg_metrics_imports(ngx_uint_t registered, ngx_uint_t failed,
    ngx_uint_t timed_out)
{
    ngx_http_modelreg_metrics_shm_t  *m;

    m = ngx_http_modelreg_metrics_shm;

    if (m) {
        (void) ngx_atomic_fetch_add(&m->imports[0], registered);
        (void) ngx_atomic_fetch_add(&m->imports[1], failed);
        (void) ngx_atomic_fetch_add(&m->imports[2], timed_out);
    }
}


void
ngx_http_modelreg_metrics_cache(ngx_uint_t event)
{
    if (ngx_http_modelreg_metrics_shm
        && event < NGX_HTTP_MODELREG_CACHE_EVENTS)
    {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_metrics_shm->cache[event], 1);
    }
}


/* GET /metrics: the clean-up backlog is the database's to say */

ngx_int_t
ngx_http_modelreg_metrics(ngx_http_request_t *r)
{
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    /* (the zone exists wherever "modelreg" is: set by init_process) */

    if (ngx_http_modelreg_metrics_shm == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    ngx_http_modelreg_metrics_publish(mcf->pool);

    q = ngx_http_modelreg_query(r, "SELECT count(*) FROM storage_gc", 0,
                                ngx_http_modelreg_metrics_pending);
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_modelreg_query_run(r, q) == NGX_DONE) {
        return NGX_DONE;
    }

    /* the rest is still worth a scrape when the database is down */

    return ngx_http_modelreg_metrics_send(r, -1);
}


static void
ngx_http_modelreg_metrics_pending(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t            n;
    ngx_http_request_t  *r;

    r = q->data;
    n = -1;

    if (q->status == NGX_HTTP_MODELREG_PG_OK && PQntuples(q->result) == 1) {
        n = ngx_atoi((u_char *) PQgetvalue(q->result, 0, 0),
                     PQgetlength(q->result, 0, 0));
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_metrics_send(r, n));
}


#define ngx_http_modelreg_metrics_head(p, name, type, help)                  \
    p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)


static ngx_int_t
ngx_http_modelreg_metrics_send(ngx_http_request_t *r, ngx_int_t gc_pending)
{
    u_char                           *p, *start;
    size_t                            len;
    ngx_str_t                         type = ngx_string(
                                          "text/plain; version=0.0.4");
    ngx_uint_t                        i, s, b, n, count;
    ngx_atomic_uint_t                 v, sum[8];
    ngx_http_modelreg_metrics_shm_t  *m;

    m = ngx_http_modelreg_metrics_shm;

    /* the status lines that exist, then a bound for everything */

    n = 0;

    for (i = 0; i < NGX_HTTP_MODELREG_ROUTES; i++) {
        for (s = 0; s < NGX_HTTP_MODELREG_STATUSES; s++) {
            n += (m->requests[i][s] != 0);
        }
    }

    len = 16384 + n * 128
          + NGX_HTTP_MODELREG_ROUTES * (NGX_HTTP_MODELREG_BUCKETS + 2) * 128;

    start = ngx_pnalloc(r->pool, len);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = start;

    ngx_http_modelreg_metrics_head(p, "modelreg_http_requests_total",
        "counter", "Requests answered by the registry, by route and status.");

    for (i = 0; i < NGX_HTTP_MODELREG_ROUTES; i++) {
        for (s = 0; s < NGX_HTTP_MODELREG_STATUSES; s++) {
            v = m->requests[i][s];

            if (v) {
                p = ngx_sprintf(p, "modelreg_http_requests_total"
                                   "{route=\"%s\",status=\"%ui\"} %uA\n",
                                ngx_http_modelreg_metrics_routes[i], s + 100,
                                v);
            }
        }
    }

    ngx_http_modelreg_metrics_head(p,
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
            p = ngx_sprintf(p, "modelreg_http_request_duration_seconds_bucket"
                               "{route=\"%s\",le=\"%s\"} %ui\n",
                            ngx_http_modelreg_metrics_routes[i],
                            ngx_http_modelreg_metrics_le_text[b], count);
        }

        v = m->latency_ms[i];

        p = ngx_sprintf(p, "modelreg_http_request_duration_seconds_sum"
                           "{route=\"%s\"} %uA.%03uA\n"
                           "modelreg_http_request_duration_seconds_count"
                           "{route=\"%s\"} %ui\n",
                        ngx_http_modelreg_metrics_routes[i], v / 1000,
                        v % 1000, ngx_http_modelreg_metrics_routes[i], count);
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

    ngx_http_modelreg_metrics_head(p, "modelreg_db_pool_connections", "gauge",
        "Database connections of all workers: configured, connected, busy.");

    p = ngx_sprintf(p, "modelreg_db_pool_connections{state=\"size\"} %uA\n"
                       "modelreg_db_pool_connections{state=\"connected\"} %uA\n"
                       "modelreg_db_pool_connections{state=\"busy\"} %uA\n",
                    sum[0], sum[1], sum[2]);

    ngx_http_modelreg_metrics_head(p, "modelreg_db_pool_waiting", "gauge",
        "Queries queued for a free database connection.");

    p = ngx_sprintf(p, "modelreg_db_pool_waiting %uA\n", sum[3]);

    ngx_http_modelreg_metrics_head(p, "modelreg_db_errors_total", "counter",
        "Queries that failed: connection errors, deadlines, a full queue "
        "(since each worker started).");

    p = ngx_sprintf(p, "modelreg_db_errors_total{kind=\"error\"} %uA\n"
                       "modelreg_db_errors_total{kind=\"timeout\"} %uA\n"
                       "modelreg_db_errors_total{kind=\"rejected\"} %uA\n",
                    sum[4], sum[5], sum[6]);

    ngx_http_modelreg_metrics_head(p, "modelreg_storage_calls_total",
        "counter", "Calls to the object store, by operation and outcome.");

    for (i = 0; i < NGX_HTTP_MODELREG_STORE_OPS; i++) {
        p = ngx_sprintf(p, "modelreg_storage_calls_total"
                           "{op=\"%s\",outcome=\"ok\"} %uA\n"
                           "modelreg_storage_calls_total"
                           "{op=\"%s\",outcome=\"error\"} %uA\n",
                        ngx_http_modelreg_metrics_ops[i], m->store[i][0],
                        ngx_http_modelreg_metrics_ops[i], m->store[i][1]);
    }

    ngx_http_modelreg_metrics_head(p, "modelreg_storage_gc_total", "counter",
        "Queued object deletions retried by the clean-up timer.");

    p = ngx_sprintf(p, "modelreg_storage_gc_total{outcome=\"removed\"} %uA\n"
                       "modelreg_storage_gc_total{outcome=\"failed\"} %uA\n",
                    m->gc[0], m->gc[1]);

    if (gc_pending >= 0) {
        ngx_http_modelreg_metrics_head(p, "modelreg_storage_gc_pending",
            "gauge", "Object deletions queued in storage_gc now.");

        p = ngx_sprintf(p, "modelreg_storage_gc_pending %i\n", gc_pending);
    }

    ngx_http_modelreg_metrics_head(p, "modelreg_database_up", "gauge",
        "1 if this scrape's query reached the database.");

    p = ngx_sprintf(p, "modelreg_database_up %d\n", gc_pending >= 0);

    ngx_http_modelreg_metrics_head(p, "modelreg_geti_sync_runs_total",
        "counter", "Geti sync runs, by outcome.");

    for (i = 0; i < NGX_HTTP_MODELREG_OUTCOMES; i++) {
        p = ngx_sprintf(p, "modelreg_geti_sync_runs_total{outcome=\"%s\"} "
                           "%uA\n",
                        ngx_http_modelreg_metrics_sync_outcomes[i],
                        m->sync[i]);
    }

    ngx_http_modelreg_metrics_head(p, "modelreg_geti_imports_total",
        "counter", "Geti models asked for by imports, by outcome.");

    for (i = 0; i < NGX_HTTP_MODELREG_OUTCOMES; i++) {
        p = ngx_sprintf(p, "modelreg_geti_imports_total{outcome=\"%s\"} %uA\n",
                        ngx_http_modelreg_metrics_import_outcomes[i],
                        m->imports[i]);
    }

    ngx_http_modelreg_metrics_head(p, "modelreg_cache_events_total",
        "counter", "The model read cache: hits, misses, entries stored, "
        "invalidated, flushes.");

    for (i = 0; i < NGX_HTTP_MODELREG_CACHE_EVENTS; i++) {
        p = ngx_sprintf(p, "modelreg_cache_events_total{event=\"%s\"} %uA\n",
                        ngx_http_modelreg_metrics_cache_events[i],
                        m->cache[i]);
    }

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &type, start, p - start);
}
