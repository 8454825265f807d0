
/*
 * Copyright (C) modelreg authors
 *
 * The registry's counters, for GET /metrics (metrics.c).  They live in
 * one shared memory zone, so any worker answers for all of them; each
 * worker also copies its database pool's gauges into a slot of its own
 * there, once a second and before it answers a scrape.  The zone is kept
 * across reloads, so counters only restart with the master.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_stats.h"


static ngx_int_t ngx_http_modelreg_stats_zone_init(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_modelreg_stats_log(ngx_http_request_t *r);
static void ngx_http_modelreg_stats_tick(ngx_event_t *ev);
static void ngx_http_modelreg_stats_publish(ngx_http_modelreg_pg_pool_t *pool);


static ngx_http_modelreg_stats_t  *ngx_http_modelreg_stats_shm;
static ngx_event_t                 ngx_http_modelreg_stats_timer;


/* upper bounds in milliseconds; the text form is Prometheus's seconds */

static ngx_msec_t  ngx_http_modelreg_stats_le[] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};



ngx_int_t
ngx_http_modelreg_stats_conf(ngx_conf_t *cf,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_str_t                   name = ngx_string("modelreg_metrics");
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    /* the counters and the slab allocator's own pages */
    mcf->metrics = ngx_shared_memory_add(cf, &name,
                      ngx_align(sizeof(ngx_http_modelreg_stats_t),
                                ngx_pagesize)
                      + 8 * ngx_pagesize,
                      &ngx_http_modelreg_module);
    if (mcf->metrics == NULL) {
        return NGX_ERROR;
    }

    mcf->metrics->init = ngx_http_modelreg_stats_zone_init;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_modelreg_stats_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_stats_zone_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the old cycle's counters go on */
        zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    zone->data = ngx_slab_calloc(shpool,
                                 sizeof(ngx_http_modelreg_stats_t));
    if (zone->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_stats_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_event_t  *ev;

    if (mcf->metrics == NULL) {
        return NGX_OK;
    }

    ngx_http_modelreg_stats_shm = mcf->metrics->data;

    ev = &ngx_http_modelreg_stats_timer;
    ev->handler = ngx_http_modelreg_stats_tick;
    ev->log = cycle->log;
    ev->data = mcf;
    ev->cancelable = 1;

    ngx_http_modelreg_stats_publish(mcf->pool);
    ngx_add_timer(ev, 1000);

    return NGX_OK;
}


void
ngx_http_modelreg_stats_exit(void)
{
    ngx_http_modelreg_stats_slot_t  *slot;

    if (ngx_http_modelreg_stats_timer.timer_set) {
        ngx_del_timer(&ngx_http_modelreg_stats_timer);
    }

    if (ngx_http_modelreg_stats_shm && ngx_worker < NGX_HTTP_MODELREG_SLOTS)
    {
        slot = &ngx_http_modelreg_stats_shm->slots[ngx_worker];

        if (slot->pid == (ngx_atomic_uint_t) ngx_pid) {
            ngx_memzero(slot, sizeof(ngx_http_modelreg_stats_slot_t));
        }
    }

    ngx_http_modelreg_stats_shm = NULL;
}


static void
ngx_http_modelreg_stats_tick(ngx_event_t *ev)
{
    ngx_http_modelreg_main_conf_t  *mcf = ev->data;

    ngx_http_modelreg_stats_publish(mcf->pool);

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


/* this worker's pool, into its slot (the last writer of a slot wins) */

static void
ngx_http_modelreg_stats_publish(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_http_modelreg_pg_stats_t       st;
    ngx_http_modelreg_stats_slot_t  *slot;

    if (ngx_http_modelreg_stats_shm == NULL
        || pool == NULL
        || ngx_worker >= NGX_HTTP_MODELREG_SLOTS)
    {
        return;
    }

    ngx_http_modelreg_pg_stats(pool, &st);

    slot = &ngx_http_modelreg_stats_shm->slots[ngx_worker];

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
ngx_http_modelreg_stats_log(ngx_http_request_t *r)
{
    ngx_msec_int_t                    ms;
    ngx_uint_t                        status, route, b;
    ngx_time_t                       *tp;
    ngx_http_modelreg_ctx_t          *ctx;
    ngx_http_modelreg_stats_t  *m;

    m = ngx_http_modelreg_stats_shm;

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
        if ((ngx_msec_t) ms <= ngx_http_modelreg_stats_le[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->latency[route][b], 1);
    (void) ngx_atomic_fetch_add(&m->latency_ms[route], ms);

    return NGX_OK;
}


void
ngx_http_modelreg_stats_store(ngx_uint_t op, ngx_uint_t ok)
{
    if (ngx_http_modelreg_stats_shm && op < NGX_HTTP_MODELREG_STORE_OPS) {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_stats_shm->store[op][ok ? 0 : 1], 1);
    }
}


void
ngx_http_modelreg_stats_gc(ngx_uint_t removed, ngx_uint_t failed)
{
    if (ngx_http_modelreg_stats_shm) {
        (void) ngx_atomic_fetch_add(&ngx_http_modelreg_stats_shm->gc[0],
                                    removed);
        (void) ngx_atomic_fetch_add(&ngx_http_modelreg_stats_shm->gc[1],
                                    failed);
    }
}


/* a Geti sync run: 0 ok, 1 partial, 2 failed */

void
ngx_http_modelreg_stats_sync(ngx_uint_t outcome)
{
    if (ngx_http_modelreg_stats_shm && outcome < NGX_HTTP_MODELREG_OUTCOMES)
    {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_stats_shm->sync[outcome], 1);
    }
}


void
ngx_http_modelreg_stats_imports(ngx_uint_t registered, ngx_uint_t failed,
    ngx_uint_t timed_out)
{
    ngx_http_modelreg_stats_t  *m;

    m = ngx_http_modelreg_stats_shm;

    if (m) {
        (void) ngx_atomic_fetch_add(&m->imports[0], registered);
        (void) ngx_atomic_fetch_add(&m->imports[1], failed);
        (void) ngx_atomic_fetch_add(&m->imports[2], timed_out);
    }
}


void
ngx_http_modelreg_stats_cache(ngx_uint_t event)
{
    if (ngx_http_modelreg_stats_shm
        && event < NGX_HTTP_MODELREG_CACHE_EVENTS)
    {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_stats_shm->cache[event], 1);
    }
}


/* webhook deliveries: delivered, an attempt that failed, given up */

void
ngx_http_modelreg_stats_webhook(ngx_uint_t outcome, ngx_uint_t n)
{
    if (ngx_http_modelreg_stats_shm
        && outcome < NGX_HTTP_MODELREG_WEBHOOK_OUTCOMES)
    {
        (void) ngx_atomic_fetch_add(
                   &ngx_http_modelreg_stats_shm->webhooks[outcome], n);
    }
}


/*
 * A copy of the counters on "pool", this worker's pool gauges published
 * first: what a scrape reads does not change while it is written out.
 */

ngx_http_modelreg_stats_t *
ngx_http_modelreg_stats_snapshot(ngx_pool_t *pool,
    ngx_http_modelreg_pg_pool_t *pg)
{
    ngx_http_modelreg_stats_t  *m;

    if (ngx_http_modelreg_stats_shm == NULL) {
        return NULL;
    }

    ngx_http_modelreg_stats_publish(pg);

    m = ngx_palloc(pool, sizeof(ngx_http_modelreg_stats_t));
    if (m == NULL) {
        return NULL;
    }

    ngx_memcpy(m, ngx_http_modelreg_stats_shm,
               sizeof(ngx_http_modelreg_stats_t));

    return m;
}
