
/*
 * Copyright (C) modelreg authors
 *
 * The storage clean-up queue, drained by a timer on worker 0: objects
 * whose removal failed are tried again with back-off until they are gone.
 */


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_GC_BATCH      100
#define NGX_HTTP_MODELREG_GC_PARALLEL   8       /* removals at once */

/* queueing a key for removal is retried while the database is away */
#define NGX_HTTP_MODELREG_QUEUE_MAX     1024    /* keys per worker */
#define NGX_HTTP_MODELREG_QUEUE_MIN     1000    /* ms, doubling... */
#define NGX_HTTP_MODELREG_QUEUE_BACKOFF 60000   /* ...up to this */


typedef struct {
    ngx_event_t                     ev;
    ngx_queue_t                     queue;      /* all that wait */
    ngx_msec_t                      backoff;
    ngx_pool_t                     *pool;       /* this, and the copies */
    ngx_pool_t                     *attempt;    /* the query in flight */
    ngx_http_modelreg_pg_query_t   *copy;       /* sql and values */
    ngx_http_modelreg_main_conf_t  *mcf;
    unsigned                        forget:1;   /* an entry to take out */
} ngx_http_modelreg_gc_queue_t;


static ngx_uint_t   ngx_http_modelreg_gc_pending;
static ngx_queue_t  ngx_http_modelreg_gc_waiting;
static ngx_uint_t   ngx_http_modelreg_gc_exiting;


static void ngx_http_modelreg_gc_write(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, const char *sql, ngx_uint_t n, ngx_str_t *v,
    ngx_uint_t forget);
static void ngx_http_modelreg_gc_queue_send(ngx_event_t *ev);
static void ngx_http_modelreg_gc_queued(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_gc_tick(ngx_event_t *ev);
static void ngx_http_modelreg_gc_listed(ngx_http_modelreg_pg_query_t *q);
static u_char *ngx_http_modelreg_gc_array_add(u_char *p, u_char *start,
    ngx_str_t *key);


static const char  ngx_http_modelreg_gc_queue_sql[] =
    "INSERT INTO storage_gc (storage_key, reason, next_attempt_at)"
    " VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 ms')"
    " ON CONFLICT (storage_key) DO UPDATE SET next_attempt_at ="
    " least(storage_gc.next_attempt_at, excluded.next_attempt_at)";

static const char  ngx_http_modelreg_gc_forget_sql[] =
    "DELETE FROM storage_gc WHERE storage_key = $1";

/* (a due key that a row names is the row's: its entry goes, the row's
 * DELETE queues the key again) */
static const char  ngx_http_modelreg_gc_list_sql[] =
    "WITH n AS (DELETE FROM storage_gc g WHERE g.next_attempt_at <= now()"
    " AND EXISTS (SELECT 1 FROM models m"
    " WHERE m.storage_key = g.storage_key)) "
    "SELECT g.storage_key FROM storage_gc g"
    " WHERE g.next_attempt_at <= now()"
    " AND NOT EXISTS (SELECT 1 FROM models m"
    " WHERE m.storage_key = g.storage_key)"
    " ORDER BY g.next_attempt_at LIMIT 100";

static const char  ngx_http_modelreg_gc_result_sql[] =
    "WITH d AS (DELETE FROM storage_gc WHERE storage_key = ANY($1::text[]))"
    " UPDATE storage_gc SET attempts = attempts + 1,"
    " next_attempt_at = now()"
    " + least(power(2, attempts), 3600) * interval '1 second',"
    " last_error = 'removal failed'"
    " WHERE storage_key = ANY($2::text[])";


/*
 * Queues "key" for removal by the clean-up timer (which never removes a
 * key that a model row names), not before "delay" ms.  Unlike a detached
 * query this is not given up when the database is away: it is sent again
 * with back-off until it is written, for up to NGX_HTTP_MODELREG_QUEUE_MAX
 * keys per worker at a time; past that, or if the worker exits first,
 * the key is logged as an orphan for an operator.
 */

void
ngx_http_modelreg_gc_queue(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, ngx_str_t *key, const char *reason, ngx_msec_t delay)
{
    u_char     buf[NGX_INT_T_LEN];
    ngx_str_t  v[3];

    v[0] = *key;
    v[1].data = (u_char *) reason;
    v[1].len = ngx_strlen(reason);
    v[2].data = buf;
    v[2].len = ngx_sprintf(buf, "%M", delay) - buf;

    ngx_http_modelreg_gc_write(mcf, log, ngx_http_modelreg_gc_queue_sql, 3, v,
                               0);
}


/*
 * Takes "key" out of the queue: its object is gone.  Retried as a
 * removal is queued, so that the entry does not wait out its grace (a
 * registration's hour) for nothing; if it is lost all the same, the
 * timer removes nothing then, and the entry.
 */

void
ngx_http_modelreg_gc_forget(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, ngx_str_t *key)
{
    ngx_http_modelreg_gc_write(mcf, log, ngx_http_modelreg_gc_forget_sql, 1,
                               key, 1);
}


static void
ngx_http_modelreg_gc_write(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, const char *sql, ngx_uint_t n, ngx_str_t *v,
    ngx_uint_t forget)
{
    ngx_pool_t                    *pool;
    ngx_http_modelreg_gc_queue_t  *gq;

    if (ngx_http_modelreg_gc_pending >= NGX_HTTP_MODELREG_QUEUE_MAX) {
        goto lost;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        goto lost;
    }

    gq = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_gc_queue_t));

    if (gq == NULL
        || (gq->copy = ngx_http_modelreg_query_copy(pool, sql, n, v)) == NULL)
    {
        ngx_destroy_pool(pool);
        goto lost;
    }

    gq->pool = pool;
    gq->mcf = mcf;
    gq->forget = forget;
    gq->backoff = NGX_HTTP_MODELREG_QUEUE_MIN;
    gq->ev.handler = ngx_http_modelreg_gc_queue_send;
    gq->ev.data = gq;
    gq->ev.log = ngx_cycle->log;
    gq->ev.cancelable = 1;

    if (ngx_http_modelreg_gc_waiting.next == NULL) {
        ngx_queue_init(&ngx_http_modelreg_gc_waiting);
    }

    ngx_queue_insert_tail(&ngx_http_modelreg_gc_waiting, &gq->queue);
    ngx_http_modelreg_gc_pending++;

    ngx_http_modelreg_gc_queue_send(&gq->ev);

    return;

lost:

    if (forget) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "modelreg: \"%V\" stays in the clean-up queue until "
                      "its entry is due", &v[0]);
        return;
    }

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "modelreg: \"%V\" could not be queued for removal: "
                  "remove it by hand unless a model names it", &v[0]);
}


static void
ngx_http_modelreg_gc_queue_send(ngx_event_t *ev)
{
    ngx_http_modelreg_gc_queue_t *gq = ev->data;

    ngx_pool_t                    *pool;
    ngx_http_modelreg_pg_query_t  *q;

    /* each attempt on its own pool: a long outage grows nothing */

    pool = ngx_create_pool(512, ngx_cycle->log);

    if (pool) {
        q = ngx_http_modelreg_pg_query_create(pool, ngx_cycle->log);

        if (q) {
            q->sql = gq->copy->sql;
            q->nparams = gq->copy->nparams;
            q->values = gq->copy->values;
            q->lengths = gq->copy->lengths;
            q->handler = ngx_http_modelreg_gc_queued;
            q->data = gq;

            if (ngx_http_modelreg_pg_send(gq->mcf->pool, q) == NGX_OK) {
                gq->attempt = pool;
                return;
            }
        }

        ngx_destroy_pool(pool);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg gc: queueing \"%s\" again in %M ms",
                   gq->copy->values[0], gq->backoff);

    ngx_add_timer(&gq->ev, gq->backoff);
    gq->backoff = ngx_min(gq->backoff * 2, NGX_HTTP_MODELREG_QUEUE_BACKOFF);
}


static void
ngx_http_modelreg_gc_queued(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_gc_queue_t *gq = q->data;

    ngx_pool_t  *pool;

    pool = gq->attempt;
    gq->attempt = NULL;

    if (q->status == NGX_HTTP_MODELREG_PG_UNAVAILABLE
        && !ngx_http_modelreg_gc_exiting)
    {
        ngx_destroy_pool(pool);
        ngx_http_modelreg_gc_queue_send(&gq->ev);
        return;
    }

    if (q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR && !gq->forget) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "modelreg: \"%s\" could not be queued for removal "
                      "(%s): remove it by hand unless a model names it",
                      gq->copy->values[0], q->sqlstate);
    }

    if (q->status == NGX_HTTP_MODELREG_PG_UNAVAILABLE) {
        /* the worker exits: ngx_http_modelreg_gc_exit() says which */
        return;
    }

    ngx_queue_remove(&gq->queue);
    ngx_http_modelreg_gc_pending--;

    ngx_destroy_pool(pool);
    ngx_destroy_pool(gq->pool);
}


/* a worker exits: the keys it could not queue yet are named for a human */

void
ngx_http_modelreg_gc_exit(void)
{
    ngx_queue_t                   *q;
    ngx_http_modelreg_gc_queue_t  *gq;

    ngx_http_modelreg_gc_exiting = 1;

    if (ngx_http_modelreg_gc_waiting.next == NULL) {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_modelreg_gc_waiting);
         q != ngx_queue_sentinel(&ngx_http_modelreg_gc_waiting);
         q = ngx_queue_next(q))
    {
        gq = ngx_queue_data(q, ngx_http_modelreg_gc_queue_t, queue);

        if (gq->forget) {
            /* its entry falls due and removes nothing: no harm */
            continue;
        }

        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "modelreg: \"%s\" could not be queued for removal "
                      "before the worker exited: remove it by hand unless "
                      "a model names it", gq->copy->values[0]);
    }
}


ngx_int_t
ngx_http_modelreg_gc_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_event_t  *ev;

    if (ngx_worker != 0 || mcf->store == NULL || mcf->pool == NULL) {
        return NGX_OK;
    }

    ev = &mcf->gc_timer;
    ev->handler = ngx_http_modelreg_gc_tick;
    ev->data = mcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, 1000 + ngx_random() % 1000);

    return NGX_OK;
}


static void
ngx_http_modelreg_gc_tick(ngx_event_t *ev)
{
    ngx_pool_t                     *pool;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ev->data;

    /* re-armed first, with jitter: a failure below never stops it */

    ngx_add_timer(ev, mcf->store->gc_interval
                      + ngx_random() % (mcf->store->gc_interval / 4 + 1));

    ngx_http_modelreg_spool_sweep(mcf->store, ev->log);

    if (mcf->gc_running) {
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    q = ngx_http_modelreg_pg_query_create(pool, ngx_cycle->log);
    if (q == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    q->sql = ngx_http_modelreg_gc_list_sql;
    q->handler = ngx_http_modelreg_gc_listed;
    q->data = pool;

    if (ngx_http_modelreg_pg_send(mcf->pool, q) != NGX_OK) {
        ngx_destroy_pool(pool);
        return;
    }

    mcf->gc_running = 1;
}


/* one clean-up round: the keys due, removed one after the other */

typedef struct ngx_http_modelreg_gc_round_s  ngx_http_modelreg_gc_round_t;

typedef struct {
    ngx_http_modelreg_gc_round_t   *round;
    int                             row;
} ngx_http_modelreg_gc_key_t;

struct ngx_http_modelreg_gc_round_s {
    ngx_pool_t                     *pool;
    PGresult                       *res;
    ngx_http_modelreg_gc_key_t     *keys;
    int                             next;
    int                             n;
    ngx_uint_t                      busy;       /* removals in flight */
    ngx_str_t                       v[2];
    ngx_uint_t                      removed;
    ngx_uint_t                      failed;
    ngx_http_modelreg_main_conf_t  *mcf;
    unsigned                        starting:1;
};


static void ngx_http_modelreg_gc_next(ngx_http_modelreg_gc_round_t *g);
static void ngx_http_modelreg_gc_removed(void *data, ngx_int_t rc);


static void
ngx_http_modelreg_gc_listed(ngx_http_modelreg_pg_query_t *q)
{
    int                             i, n;
    size_t                          len;
    ngx_pool_t                     *pool;
    ngx_http_modelreg_gc_round_t   *g;
    ngx_http_modelreg_main_conf_t  *mcf;

    pool = q->data;
    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_modelreg_module);

    if (q->status != NGX_HTTP_MODELREG_PG_OK
        || (n = PQntuples(q->result)) == 0)
    {
        mcf->gc_running = 0;
        ngx_destroy_pool(pool);
        return;
    }

    g = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_gc_round_t));
    if (g == NULL) {
        mcf->gc_running = 0;
        ngx_destroy_pool(pool);
        return;
    }

    g->pool = pool;
    g->res = q->result;
    g->n = n;
    g->mcf = mcf;

    len = 2;

    for (i = 0; i < n; i++) {
        len += 2 * PQgetlength(q->result, i, 0) + 3;
    }

    g->v[0].data = ngx_pnalloc(pool, len);
    g->v[1].data = ngx_pnalloc(pool, len);
    g->keys = ngx_palloc(pool, n * sizeof(ngx_http_modelreg_gc_key_t));

    if (g->v[0].data == NULL || g->v[1].data == NULL || g->keys == NULL) {
        g->mcf->gc_running = 0;
        ngx_destroy_pool(pool);
        return;
    }

    ngx_http_modelreg_gc_next(g);
}


/*
 * Up to NGX_HTTP_MODELREG_GC_PARALLEL removals at once, so that a backlog
 * (every registration refused while the store was away leaves a key)
 * drains at the store's pace, not one round trip at a time.  After a
 * failure no more are started: the store is likely away, and the keys not
 * tried stay due for the next round, so a round with the store down costs
 * a few calls, not one timeout per key.
 */

static void
ngx_http_modelreg_gc_next(ngx_http_modelreg_gc_round_t *g)
{
    ngx_str_t                       key;
    ngx_http_modelreg_gc_key_t     *k;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = g->mcf;

    /* (a removal may end before remove_bg() returns: it calls back here,
     * and only this loop starts more) */

    g->starting = 1;

    while (g->next < g->n && g->failed == 0
           && g->busy < NGX_HTTP_MODELREG_GC_PARALLEL)
    {
        k = &g->keys[g->next];
        k->round = g;
        k->row = g->next++;

        key.data = (u_char *) PQgetvalue(g->res, k->row, 0);
        key.len = PQgetlength(g->res, k->row, 0);

        g->busy++;

        ngx_http_modelreg_store_remove_bg(mcf->store, g->pool, &key,
                                          ngx_cycle->log,
                                          ngx_http_modelreg_gc_removed, k);
    }

    g->starting = 0;

    if (g->busy) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "modelreg: storage clean-up: %ui removed, %ui failed",
                  g->removed, g->failed);

    if (g->removed == 0) {
        ngx_str_set(&g->v[0], "{}");

    } else {
        g->v[0].len = ngx_sprintf(g->v[0].data + g->v[0].len, "}")
                      - g->v[0].data;
    }

    if (g->failed == 0) {
        ngx_str_set(&g->v[1], "{}");

    } else {
        g->v[1].len = ngx_sprintf(g->v[1].data + g->v[1].len, "}")
                      - g->v[1].data;
    }

    ngx_http_modelreg_detached(mcf, ngx_cycle->log,
                               ngx_http_modelreg_gc_result_sql, 2, g->v);

    mcf->gc_running = 0;
    ngx_destroy_pool(g->pool);
}


static void
ngx_http_modelreg_gc_removed(void *data, ngx_int_t rc)
{
    ngx_http_modelreg_gc_key_t *k = data;

    ngx_str_t                      key, *v;
    ngx_http_modelreg_gc_round_t  *g;

    g = k->round;

    key.data = (u_char *) PQgetvalue(g->res, k->row, 0);
    key.len = PQgetlength(g->res, k->row, 0);

    if (rc == NGX_OK) {
        v = &g->v[0];
        g->removed++;

    } else {
        v = &g->v[1];
        g->failed++;
    }

    ngx_http_modelreg_stats_gc(rc == NGX_OK, rc != NGX_OK);

    v->len = ngx_http_modelreg_gc_array_add(v->data + v->len, v->data, &key)
             - v->data;

    g->busy--;

    if (!g->starting) {
        ngx_http_modelreg_gc_next(g);
    }
}


/* appends "key" to a PostgreSQL array literal being built at "start" */

static u_char *
ngx_http_modelreg_gc_array_add(u_char *p, u_char *start, ngx_str_t *key)
{
    size_t  i;
    u_char  c;

    c = (p == start) ? '{' : ',';
    *p++ = c;
    *p++ = '"';

    for (i = 0; i < key->len; i++) {
        if (key->data[i] == '"' || key->data[i] == '\\') {
            *p++ = '\\';
        }

        *p++ = key->data[i];
    }

    *p++ = '"';

    return p;
}
