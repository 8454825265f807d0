
/*
 * Copyright (C) modelreg authors
 *
 * The change feed.  A read takes the horizon H of its snapshot,
 * pg_snapshot_xmin(pg_current_snapshot()): every transaction below H has
 * ended, so the audit events with an xid below H are all visible to it
 * and to every later read, whenever they committed.  A page is the
 * events from the cursor's horizon up to H, by id; its cursor is H (or,
 * cut short by the limit, the last id too: sql/006, events_args.h).  An
 * event that commits late has an xid that holds H below it until it
 * ends, so no cursor can pass it.
 *
 * A request that finds nothing waits here, in this worker's list, with
 * no database connection.  The worker's own LISTEN connection (opened by
 * the first waiter, closed a minute after the last) hears sql/006's
 * notification of each committed event, "<id> <action> <name>", marks
 * the waiters it matches, and one query (the wake) reads the events from
 * the lowest of their horizons for all of them.  An event committed but
 * still above the horizon (an older transaction still runs) is asked
 * again after a short delay, doubling up to a second: one timer for the
 * worker, while such events exist.
 *
 * A waiter whose read was sent before a notification (or before the
 * connection listened) that came before it waited is woken at once: the
 * worker's count of notifications ("seq") says so.  A LISTEN connection
 * that fails is retried every second while waiters exist; they end by
 * their own wait meanwhile, and the cursor makes the next read catch up.
 *
 * The connection is marked idle: a graceful shutdown (a reload) closes
 * it, which ends every waiter at once; without it, its retry timer sees
 * the shutdown.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_conn.h"
#include "ngx_http_modelreg_feed.h"


#define NGX_HTTP_MODELREG_FEED_RETRY      1000
#define NGX_HTTP_MODELREG_FEED_IDLE       60000
#define NGX_HTTP_MODELREG_FEED_HELD_MIN   20
#define NGX_HTTP_MODELREG_FEED_HELD_MAX   1000

/* the rows of a wake, at most (a waiter past them gets what they hold) */
#define NGX_HTTP_MODELREG_FEED_ROWS       1000

/* ngx_http_modelreg_feed_mark(): which waiters */
#define NGX_HTTP_MODELREG_FEED_ASKED        0   /* become held */
#define NGX_HTTP_MODELREG_FEED_HELD         1   /* become woken */
#define NGX_HTTP_MODELREG_FEED_ALL          2   /* become woken */

#define NGX_HTTP_MODELREG_FEED_IDLE_STATE   0
#define NGX_HTTP_MODELREG_FEED_CONNECTING   1
#define NGX_HTTP_MODELREG_FEED_STARTING     2
#define NGX_HTTP_MODELREG_FEED_LISTENING    3


typedef struct {
    uint64_t                         xid;
    int64_t                          id;
    ngx_int_t                        action;
    ngx_str_t                        action_text;
    ngx_str_t                        name;
    ngx_str_t                        json;
} ngx_http_modelreg_feed_row_t;


typedef struct {
    ngx_http_modelreg_main_conf_t   *mcf;
    ngx_log_t                       *log;
    PGconn                          *pg;
    ngx_connection_t                *c;
    ngx_file_uniq_t                  uniq;
    ngx_uint_t                       state;
    ngx_uint_t                       failing;
    ngx_event_t                      timer;     /* connect, retry, idle */
    ngx_event_t                      held;      /* ask again */
    ngx_msec_t                       held_delay;
    ngx_queue_t                      waiters;
    ngx_uint_t                       nwaiters;
    ngx_uint_t                       seq;
    ngx_pool_t                      *wake;      /* a wake in flight */
    ngx_uint_t                       wake_seq;  /* seq when it was sent */
    ngx_uint_t                       again;
    const char                      *keywords[3];
    const char                      *values[3];
} ngx_http_modelreg_feed_t;


static void ngx_http_modelreg_feed_read_done(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_feed_rows(ngx_pool_t *pool,
    PGresult *res, uint64_t *horizon, ngx_uint_t *held,
    ngx_array_t *rows);
static void ngx_http_modelreg_feed_wake(void);
static void ngx_http_modelreg_feed_woken(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_feed_page(ngx_pool_t *pool,
    ngx_http_modelreg_feed_waiter_t *w, ngx_array_t *rows, uint64_t horizon,
    ngx_uint_t cut, ngx_http_modelreg_feed_page_t *page, ngx_uint_t *held);
static void ngx_http_modelreg_feed_read_cleanup(void *data);
static ngx_uint_t ngx_http_modelreg_feed_deliver(
    ngx_http_modelreg_feed_waiter_t *w, ngx_http_modelreg_feed_page_t *page,
    ngx_uint_t held);
static void ngx_http_modelreg_feed_held_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_modelreg_feed_mark(ngx_uint_t from);
static void ngx_http_modelreg_feed_connect(void);
static ngx_int_t ngx_http_modelreg_feed_wrap(void);
static void ngx_http_modelreg_feed_handler(ngx_event_t *ev);
static void ngx_http_modelreg_feed_poll(void);
static void ngx_http_modelreg_feed_input(void);
static void ngx_http_modelreg_feed_notified(void);
static void ngx_http_modelreg_feed_timer(ngx_event_t *ev);
static void ngx_http_modelreg_feed_fail(const char *what);
static void ngx_http_modelreg_feed_close(void);
static void ngx_http_modelreg_feed_stop(void);


static ngx_http_modelreg_feed_t  ngx_http_modelreg_feed;


#define NGX_HTTP_MODELREG_FEED_JSON                                           \
    "json_build_object('id', e.id, 'time', modelreg_ts(e.time),"              \
    " 'action', e.action, 'model_id', e.model_id, 'actor', e.actor,"          \
    " 'request_id', e.request_id, 'remote_addr', e.remote_addr,"              \
    " 'status', e.status, 'details', e.details)::text"

/*
 * $1 lo, $2 hi, $3 last id (the cursor), $4 actions (text[]), $5 name,
 * $6 the limit + 1.  The rows of [lo, hi) after the last id come first,
 * then those of [hi, H); "held": events of the filter above H.
 * Columns, both statements: H, held, xid, id, action, name, the JSON.
 */
static const char  ngx_http_modelreg_feed_read_sql[] =
    "WITH h AS MATERIALIZED (SELECT s.x, EXISTS (SELECT 1 FROM audit_events q"
    " WHERE q.xid >= s.x AND q.xid >= $1::xid8"
    " AND ($4::text[] IS NULL OR q.action = ANY ($4::text[]))"
    " AND ($5::text IS NULL OR q.name = $5)) held"
    " FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) x) s) "
    "SELECT h.x::text, h.held, p.xid::text, p.id, p.action, NULL::text, p.j"
    " FROM h LEFT JOIN LATERAL (SELECT e.id, e.xid, e.action, "
    NGX_HTTP_MODELREG_FEED_JSON " j"
    " FROM audit_events e WHERE e.xid >= $1::xid8 AND e.xid < h.x"
    " AND (e.xid >= $2::xid8 OR e.id > $3::bigint)"
    " AND ($4::text[] IS NULL OR e.action = ANY ($4::text[]))"
    " AND ($5::text IS NULL OR e.name = $5)"
    " ORDER BY e.xid >= $2::xid8, e.id LIMIT $6::int) p ON true"
    " ORDER BY p.xid >= $2::xid8, p.id";

/* $1: the lowest horizon of the waiters asked; every event above it */
static const char  ngx_http_modelreg_feed_wake_sql[] =
    "WITH h AS MATERIALIZED"
    " (SELECT pg_snapshot_xmin(pg_current_snapshot()) x) "
    "SELECT h.x::text, false, p.xid::text, p.id, p.action, p.name, p.j"
    " FROM h LEFT JOIN LATERAL (SELECT e.id, e.xid, e.action, e.name, "
    NGX_HTTP_MODELREG_FEED_JSON " j"
    " FROM audit_events e WHERE e.xid >= $1::xid8"
    " ORDER BY e.id LIMIT " ngx_value(NGX_HTTP_MODELREG_FEED_ROWS) " + 1) p"
    " ON true ORDER BY p.id";


ngx_int_t
ngx_http_modelreg_feed_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    ngx_memzero(f, sizeof(ngx_http_modelreg_feed_t));

    f->mcf = mcf;
    f->log = cycle->log;
    f->held_delay = NGX_HTTP_MODELREG_FEED_HELD_MIN;
    ngx_queue_init(&f->waiters);

    f->keywords[0] = "dbname";
    f->values[0] = (const char *) mcf->db.conninfo.data;
    f->keywords[1] = "fallback_application_name";
    f->values[1] = "modelreg-events";

    /* "data" is read by the event timer's debug log (no NULL there) */
    f->timer.handler = ngx_http_modelreg_feed_timer;
    f->timer.data = f;
    f->timer.log = cycle->log;
    f->timer.cancelable = 1;

    f->held.handler = ngx_http_modelreg_feed_held_handler;
    f->held.data = f;
    f->held.log = cycle->log;
    f->held.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_modelreg_feed_exit(void)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (f->log == NULL) {
        return;
    }

    if (f->timer.timer_set) {
        ngx_del_timer(&f->timer);
    }

    if (f->held.timer_set) {
        ngx_del_timer(&f->held);
    }

    ngx_http_modelreg_feed_close();
}


ngx_int_t
ngx_http_modelreg_feed_read(ngx_http_modelreg_feed_waiter_t *w)
{
    u_char                           *p;
    ngx_str_t                         v[6];
    ngx_uint_t                        i, k;
    ngx_pool_t                       *pool;
    ngx_http_request_t               *r;
    ngx_pool_cleanup_t               *cln;
    ngx_http_modelreg_pg_query_t     *q;
    ngx_http_modelreg_events_args_t  *a;
    size_t                            len;
    ngx_str_t                        *actions;

    r = w->r;
    a = w->args;

    /*
     * Its own pool, gone with the answer: a stream reads many pages, and
     * keeps none of them
     */

    if (!w->cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_modelreg_feed_read_cleanup;
        cln->data = w;
        w->cleanup = 1;
    }

    pool = ngx_create_pool(4096, r->connection->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    /* three numbers, the actions' array, the limit */

    actions = ngx_http_modelreg_events_actions_all;
    len = 4 * NGX_INT64_LEN + 2;

    for (i = 0; actions[i].len; i++) {
        len += actions[i].len + 1;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    v[0].data = p;
    v[0].len = ngx_sprintf(p, "%uL", a->since.lo) - p;
    p += v[0].len;

    v[1].data = p;
    v[1].len = ngx_sprintf(p, "%uL", a->since.hi) - p;
    p += v[1].len;

    v[2].data = p;
    v[2].len = ngx_sprintf(p, "%L", a->since.last) - p;
    p += v[2].len;

    ngx_str_null(&v[3]);

    if (a->actions) {
        v[3].data = p;
        *p++ = '{';

        for (i = 0, k = 0; actions[i].len; i++) {
            if (a->actions & ((ngx_uint_t) 1 << i)) {
                p = ngx_sprintf(p, k++ ? ",%V" : "%V", &actions[i]);
            }
        }

        *p++ = '}';
        v[3].len = p - v[3].data;
    }

    v[4] = a->name;

    v[5].data = p;
    v[5].len = ngx_sprintf(p, "%ui", a->limit + 1) - p;

    q = ngx_http_modelreg_query_copy(pool, ngx_http_modelreg_feed_read_sql,
                                     6, v);
    if (q == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    q->handler = ngx_http_modelreg_feed_read_done;
    q->data = w;
    q->log = r->connection->log;

    /* a notification from now on may be one this read does not see */
    w->seq = ngx_http_modelreg_feed.seq;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg feed: read from %uL.%uL.%L",
                   a->since.lo, a->since.hi, a->since.last);

    if (ngx_http_modelreg_query_run(r, q) != NGX_DONE) {
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    w->read = pool;

    /* the first reader opens the LISTEN connection: it hears from now */

    if (ngx_http_modelreg_feed.state == NGX_HTTP_MODELREG_FEED_IDLE_STATE
        && !ngx_http_modelreg_feed.timer.timer_set)
    {
        ngx_http_modelreg_feed_connect();
    }

    return NGX_DONE;
}


/* the request ended with its read in flight: the query goes with it */

static void
ngx_http_modelreg_feed_read_cleanup(void *data)
{
    ngx_http_modelreg_feed_waiter_t  *w = data;

    if (w->read) {
        ngx_destroy_pool(w->read);
        w->read = NULL;
    }
}


static void
ngx_http_modelreg_feed_read_done(ngx_http_modelreg_pg_query_t *q)
{
    uint64_t                          horizon;
    ngx_int_t                         rc;
    ngx_uint_t                        held, i, n, limit;
    ngx_pool_t                       *pool;
    ngx_array_t                       rows;
    ngx_http_request_t               *r;
    ngx_http_modelreg_cursor_t       *since;
    ngx_http_modelreg_feed_row_t     *row;
    ngx_http_modelreg_feed_page_t     page;
    ngx_http_modelreg_feed_event_t   *ev;
    ngx_http_modelreg_feed_waiter_t  *w;

    w = q->data;
    r = w->r;
    since = &w->args->since;
    limit = w->args->limit;

    /* the handler may read again: this read's pool is this one's */
    pool = w->read;
    w->read = NULL;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        rc = ngx_http_modelreg_pg_error(r, q);
        ngx_destroy_pool(pool);
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_memzero(&page, sizeof(ngx_http_modelreg_feed_page_t));

    if (ngx_http_modelreg_feed_rows(pool, q->result, &horizon, &held, &rows)
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    row = rows.elts;
    n = ngx_min(rows.nelts, limit);

    page.events = ngx_pcalloc(pool,
                          (n + 1) * sizeof(ngx_http_modelreg_feed_event_t));
    if (page.events == NULL) {
        ngx_destroy_pool(pool);
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (i = 0; i < n; i++) {
        ev = &page.events[i];

        ev->action = row[i].action_text;
        ev->json = row[i].json;

        /* a row of [lo, hi) after "last", or one of [hi, H) */

        if (row[i].xid < since->hi) {
            ev->cursor.lo = since->lo;
            ev->cursor.hi = since->hi;

        } else {
            ev->cursor.lo = since->hi;
            ev->cursor.hi = horizon;
        }

        ev->cursor.last = row[i].id;
    }

    page.n = n;

    if (rows.nelts > limit) {
        page.next = page.events[n - 1].cursor;
        page.more = 1;

    } else {
        page.next.lo = horizon;
        page.next.hi = horizon;

        if (n) {
            page.events[n - 1].cursor = page.next;
        }
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg feed: read %ui event(s), horizon %uL, held %ui",
                   n, horizon, held);

    rc = w->handler(w, &page);

    ngx_destroy_pool(pool);

    /*
     * Nothing for it now, but events of its filter committed above the
     * horizon: its wait is asked again soon, as a held waiter's
     */

    if (held && w->waiting) {
        w->held = 1;

        if (!ngx_http_modelreg_feed.held.timer_set) {
            ngx_add_timer(&ngx_http_modelreg_feed.held,
                          ngx_http_modelreg_feed.held_delay);
        }
    }

    ngx_http_modelreg_finish(r, rc);
}


/* the rows of either statement: H, held, then the events, if any */

static ngx_int_t
ngx_http_modelreg_feed_rows(ngx_pool_t *pool, PGresult *res,
    uint64_t *horizon, ngx_uint_t *held, ngx_array_t *rows)
{
    int                            i, n;
    char                          *v;
    off_t                          id;
    ngx_http_modelreg_cursor_t     c;
    ngx_http_modelreg_feed_row_t  *row;

    n = PQntuples(res);

    if (n < 1 || PQnfields(res) != 7
        || ngx_array_init(rows, pool, n, sizeof(ngx_http_modelreg_feed_row_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    v = PQgetvalue(res, 0, 0);

    if (ngx_http_modelreg_cursor_parse((u_char *) v, ngx_strlen(v), &c)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    *horizon = c.lo;
    *held = (PQgetvalue(res, 0, 1)[0] == 't');

    for (i = 0; i < n; i++) {

        if (PQgetisnull(res, i, 3)) {
            /* the LEFT JOIN's row of a page with no event */
            continue;
        }

        row = ngx_array_push(rows);
        if (row == NULL) {
            return NGX_ERROR;
        }

        v = PQgetvalue(res, i, 2);

        if (ngx_http_modelreg_cursor_parse((u_char *) v, ngx_strlen(v), &c)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        row->xid = c.lo;

        v = PQgetvalue(res, i, 3);
        id = ngx_atoof((u_char *) v, ngx_strlen(v));

        if (id == NGX_ERROR) {
            return NGX_ERROR;
        }

        row->id = id;

        row->action_text.data = (u_char *) PQgetvalue(res, i, 4);
        row->action_text.len = PQgetlength(res, i, 4);
        row->action = ngx_http_modelreg_events_action(row->action_text.data,
                                                      row->action_text.len);

        row->name.data = (u_char *) PQgetvalue(res, i, 5);
        row->name.len = PQgetlength(res, i, 5);

        row->json.data = (u_char *) PQgetvalue(res, i, 6);
        row->json.len = PQgetlength(res, i, 6);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_feed_wait(ngx_http_modelreg_feed_waiter_t *w)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return NGX_DECLINED;
    }

    if (f->nwaiters >= f->mcf->events_waiters) {
        return NGX_BUSY;
    }

    w->r->main->count++;

    ngx_queue_insert_tail(&f->waiters, &w->queue);
    f->nwaiters++;

    w->waiting = 1;
    w->woken = 0;
    w->asked = 0;
    w->held = 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, w->r->connection->log, 0,
                   "modelreg feed: waiting from %uL, %ui waiter(s), "
                   "count:%d", w->args->since.lo, f->nwaiters,
                   w->r->main->count);

    if (f->state == NGX_HTTP_MODELREG_FEED_LISTENING
        && f->timer.timer_set)
    {
        /* the idle close */
        ngx_del_timer(&f->timer);
    }

    if (f->state == NGX_HTTP_MODELREG_FEED_IDLE_STATE
        && !f->timer.timer_set)
    {
        ngx_http_modelreg_feed_connect();
    }

    if (w->seq != f->seq) {
        /* heard of something since its read was sent: ask at once */
        w->woken = 1;
        ngx_http_modelreg_feed_wake();
    }

    return NGX_OK;
}


void
ngx_http_modelreg_feed_unwait(ngx_http_modelreg_feed_waiter_t *w)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (!w->waiting) {
        return;
    }

    ngx_queue_remove(&w->queue);
    f->nwaiters--;
    w->waiting = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->r->connection->log, 0,
                   "modelreg feed: no longer waiting, %ui waiter(s)",
                   f->nwaiters);

    if (f->nwaiters == 0 && f->state == NGX_HTTP_MODELREG_FEED_LISTENING
        && !f->timer.timer_set)
    {
        ngx_add_timer(&f->timer, NGX_HTTP_MODELREG_FEED_IDLE);
    }
}


/* one query for every waiter woken since the last */

static void
ngx_http_modelreg_feed_wake(void)
{
    u_char                            buf[NGX_INT64_LEN];
    uint64_t                          lo;
    ngx_str_t                         v;
    ngx_uint_t                        n;
    ngx_pool_t                       *pool;
    ngx_queue_t                      *qu;
    ngx_http_modelreg_feed_t         *f;
    ngx_http_modelreg_pg_query_t     *q;
    ngx_http_modelreg_feed_waiter_t  *w;

    f = &ngx_http_modelreg_feed;

    if (f->wake) {
        f->again = 1;
        return;
    }

    lo = (uint64_t) -1;
    n = 0;

    for (qu = ngx_queue_head(&f->waiters);
         qu != ngx_queue_sentinel(&f->waiters);
         qu = ngx_queue_next(qu))
    {
        w = ngx_queue_data(qu, ngx_http_modelreg_feed_waiter_t, queue);

        if (!w->woken) {
            continue;
        }

        w->woken = 0;
        w->asked = 1;
        n++;

        if (w->args->since.lo < lo) {
            lo = w->args->since.lo;
        }
    }

    if (n == 0) {
        return;
    }

    v.data = buf;
    v.len = ngx_sprintf(buf, "%uL", lo) - buf;

    pool = ngx_create_pool(4096, f->log);
    if (pool == NULL) {
        goto failed;
    }

    q = ngx_http_modelreg_query_copy(pool, ngx_http_modelreg_feed_wake_sql,
                                     1, &v);
    if (q == NULL) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    q->handler = ngx_http_modelreg_feed_woken;
    q->data = pool;

    if (ngx_http_modelreg_pg_send(f->mcf->pool, q) != NGX_OK) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    f->wake = pool;
    f->wake_seq = f->seq;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, f->log, 0,
                   "modelreg feed: wake of %ui waiter(s) from %uL", n, lo);

    return;

failed:

    /* asked again by the timer; they end by their wait meanwhile */

    ngx_log_error(NGX_LOG_WARN, f->log, 0,
                  "modelreg: the change feed cannot read its events now "
                  "(database unavailable): asked again in a second");

    (void) ngx_http_modelreg_feed_mark(NGX_HTTP_MODELREG_FEED_ASKED);

    if (!f->held.timer_set) {
        ngx_add_timer(&f->held, NGX_HTTP_MODELREG_FEED_HELD_MAX);
    }
}


static void
ngx_http_modelreg_feed_woken(ngx_http_modelreg_pg_query_t *q)
{
    uint64_t                          horizon;
    ngx_uint_t                        held, any, i, cut;
    ngx_pool_t                       *pool;
    ngx_array_t                       rows, asked;
    ngx_queue_t                      *qu;
    ngx_http_modelreg_feed_t         *f;
    ngx_http_modelreg_feed_page_t     page;
    ngx_http_modelreg_feed_waiter_t  *w, **wp;

    f = &ngx_http_modelreg_feed;
    pool = q->data;
    f->wake = NULL;
    any = 0;
    asked.nelts = 0;

    if (ngx_array_init(&asked, pool, 16, sizeof(void *)) != NGX_OK) {
        goto failed;
    }

    for (qu = ngx_queue_head(&f->waiters);
         qu != ngx_queue_sentinel(&f->waiters);
         qu = ngx_queue_next(qu))
    {
        w = ngx_queue_data(qu, ngx_http_modelreg_feed_waiter_t, queue);

        if (w->asked) {
            w->asked = 0;

            wp = ngx_array_push(&asked);
            if (wp == NULL) {
                goto failed;
            }

            *wp = w;
        }
    }

    if (q->status != NGX_HTTP_MODELREG_PG_OK
        || ngx_http_modelreg_feed_rows(pool, q->result, &horizon, &held,
                                       &rows)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, f->log, 0,
                      "modelreg: the change feed's wake failed (%s): "
                      "asked again in a second",
                      q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR
                      ? q->sqlstate : "database unavailable");
        goto failed;
    }

    cut = (rows.nelts > NGX_HTTP_MODELREG_FEED_ROWS);

    if (cut) {
        rows.nelts = NGX_HTTP_MODELREG_FEED_ROWS;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, f->log, 0,
                   "modelreg feed: woken, %ui row(s), horizon %uL, %ui "
                   "asked", rows.nelts, horizon, asked.nelts);

    /*
     * The handlers may end other requests (a stream's cut off), whose
     * cleanups take them out of the list: each is looked at only while
     * it still waits.
     */

    wp = asked.elts;

    for (i = 0; i < asked.nelts; i++) {
        w = wp[i];

        if (!w->waiting) {
            continue;
        }

        held = 0;

        if (ngx_http_modelreg_feed_page(pool, w, &rows, horizon, cut, &page,
                                        &held)
            != NGX_OK)
        {
            /* out of memory: it is asked again */
            w->held = 1;
            any = 1;
            continue;
        }

        if (page.n || page.more) {
            any |= ngx_http_modelreg_feed_deliver(w, &page, held);
            continue;
        }

        if (held) {
            w->held = 1;
            any = 1;
        }
    }

    ngx_destroy_pool(pool);

    if (any) {
        if (!f->held.timer_set) {
            ngx_add_timer(&f->held, f->held_delay);
        }

        f->held_delay = ngx_min(2 * f->held_delay,
                                NGX_HTTP_MODELREG_FEED_HELD_MAX);

    } else {
        f->held_delay = NGX_HTTP_MODELREG_FEED_HELD_MIN;
    }

    if (f->again) {
        f->again = 0;
        ngx_http_modelreg_feed_wake();
    }

    return;

failed:

    /* all asked again in a second: those taken, and any left behind */

    wp = asked.elts;

    for (i = 0; i < asked.nelts; i++) {
        wp[i]->held = 1;
    }

    (void) ngx_http_modelreg_feed_mark(NGX_HTTP_MODELREG_FEED_ASKED);

    ngx_destroy_pool(pool);

    if (!f->held.timer_set) {
        ngx_add_timer(&f->held, NGX_HTTP_MODELREG_FEED_HELD_MAX);
    }

    f->again = 0;
}


/*
 * A waiter's page of the wake's rows: those of its filter from its
 * horizon up to H, by id, at most its limit.  When the rows were cut
 * (more than a wake reads), its page ends at the last row read, even
 * empty: the cursor then says so, and the next read goes on from there.
 */

static ngx_int_t
ngx_http_modelreg_feed_page(ngx_pool_t *pool,
    ngx_http_modelreg_feed_waiter_t *w, ngx_array_t *rows, uint64_t horizon,
    ngx_uint_t cut, ngx_http_modelreg_feed_page_t *page, ngx_uint_t *held)
{
    uint64_t                          lo;
    ngx_uint_t                        i, n, limit;
    ngx_http_modelreg_feed_row_t     *row;
    ngx_http_modelreg_feed_event_t   *ev;

    lo = w->args->since.lo;
    limit = w->args->limit;
    row = rows->elts;

    ngx_memzero(page, sizeof(ngx_http_modelreg_feed_page_t));

    /* its events counted first: a wake may ask thousands of waiters */

    n = 0;

    for (i = 0; i < rows->nelts && n <= limit; i++) {
        if (row[i].xid >= lo && row[i].xid < horizon
            && ngx_http_modelreg_events_match(w->args, row[i].action,
                                              &row[i].name))
        {
            n++;
        }
    }

    if (n) {
        page->events = ngx_palloc(pool, ngx_min(n, limit)
                                  * sizeof(ngx_http_modelreg_feed_event_t));
        if (page->events == NULL) {
            return NGX_ERROR;
        }
    }

    n = 0;

    for (i = 0; i < rows->nelts; i++) {

        if (row[i].xid < lo
            || !ngx_http_modelreg_events_match(w->args, row[i].action,
                                               &row[i].name))
        {
            continue;
        }

        if (row[i].xid >= horizon) {
            *held = 1;
            continue;
        }

        if (n == limit) {
            page->more = 1;
            break;
        }

        ev = &page->events[n++];
        ev->action = row[i].action_text;
        ev->json = row[i].json;
        ev->cursor.lo = lo;
        ev->cursor.hi = horizon;
        ev->cursor.last = row[i].id;
    }

    page->n = n;

    if (page->more) {
        page->next = page->events[n - 1].cursor;
        return NGX_OK;
    }

    if (cut) {
        /* every row up to the last read is seen */
        page->next.lo = lo;
        page->next.hi = horizon;
        page->next.last = row[rows->nelts - 1].id;
        page->more = 1;
        return NGX_OK;
    }

    page->next.lo = horizon;
    page->next.hi = horizon;

    if (n) {
        page->events[n - 1].cursor = page->next;
    }

    return NGX_OK;
}


/*
 * The wait ends: its request's own end, through the route's handler.  A
 * stream waits again there; its events still above the horizon ("held")
 * keep it asked for: 1 when so.  It has heard all that the wake was sent
 * after ("seq").
 */

static ngx_uint_t
ngx_http_modelreg_feed_deliver(ngx_http_modelreg_feed_waiter_t *w,
    ngx_http_modelreg_feed_page_t *page, ngx_uint_t held)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = w->r;

    ngx_http_modelreg_feed_unwait(w);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg feed: %ui event(s) for a waiter",
                   page ? page->n : 0);

    w->seq = ngx_http_modelreg_feed.wake_seq;

    rc = w->handler(w, page);

    /* (the wait's reference still holds the request here) */

    held = (held && w->waiting);

    if (held) {
        w->held = 1;
    }

    ngx_http_modelreg_finish(r, rc);

    return held;
}


static void
ngx_http_modelreg_feed_held_handler(ngx_event_t *ev)
{
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        ngx_http_modelreg_feed_stop();
        return;
    }

    (void) ngx_http_modelreg_feed_mark(NGX_HTTP_MODELREG_FEED_HELD);
    ngx_http_modelreg_feed_wake();
}


static ngx_uint_t
ngx_http_modelreg_feed_mark(ngx_uint_t from)
{
    ngx_uint_t                        n;
    ngx_queue_t                      *qu;
    ngx_http_modelreg_feed_t         *f;
    ngx_http_modelreg_feed_waiter_t  *w;

    f = &ngx_http_modelreg_feed;
    n = 0;

    for (qu = ngx_queue_head(&f->waiters);
         qu != ngx_queue_sentinel(&f->waiters);
         qu = ngx_queue_next(qu))
    {
        w = ngx_queue_data(qu, ngx_http_modelreg_feed_waiter_t, queue);

        switch (from) {

        case NGX_HTTP_MODELREG_FEED_ASKED:
            if (w->asked) {
                w->asked = 0;
                w->held = 1;
                n++;
            }

            break;

        case NGX_HTTP_MODELREG_FEED_HELD:
            if (w->held) {
                w->held = 0;
                w->woken = 1;
                n++;
            }

            break;

        default:
            w->woken = 1;
            n++;
        }
    }

    return n;
}


/* ---- the LISTEN connection ------------------------------------------ */


static void
ngx_http_modelreg_feed_connect(void)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, f->log, 0,
                   "modelreg feed: connecting");

    f->pg = PQconnectStartParams(f->keywords, f->values, 1);

    if (f->pg == NULL || PQstatus(f->pg) == CONNECTION_BAD) {
        ngx_http_modelreg_feed_fail("cannot connect");
        return;
    }

    f->state = NGX_HTTP_MODELREG_FEED_CONNECTING;

    if (ngx_http_modelreg_feed_wrap() != NGX_OK
        || ngx_http_modelreg_conn_want(f->c, 0, 1) != NGX_OK)
    {
        ngx_http_modelreg_feed_fail("cannot watch its socket");
        return;
    }

    if (f->timer.timer_set) {
        ngx_del_timer(&f->timer);
    }

    ngx_add_timer(&f->timer, f->mcf->db.timeout);
}


static ngx_int_t
ngx_http_modelreg_feed_wrap(void)
{
    int                        fd;
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    fd = PQsocket(f->pg);
    if (fd == -1) {
        return NGX_ERROR;
    }

    f->c = ngx_http_modelreg_conn_wrap(fd, f->log,
                                       ngx_http_modelreg_feed_handler, f);
    f->uniq = ngx_http_modelreg_conn_uniq(fd);

    if (f->c == NULL) {
        return NGX_ERROR;
    }

    /* a graceful shutdown closes it: that ends the waiters */
    f->c->idle = 1;

    return NGX_OK;
}


static void
ngx_http_modelreg_feed_handler(ngx_event_t *ev)
{
    int                        rc;
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (f->c && f->c->close) {
        ngx_log_debug0(NGX_LOG_DEBUG_EVENT, f->log, 0,
                       "modelreg feed: shutting down");
        ngx_http_modelreg_feed_stop();
        return;
    }

    if (f->state == NGX_HTTP_MODELREG_FEED_CONNECTING) {
        ngx_http_modelreg_feed_poll();
        return;
    }

    if (ev->write) {
        rc = PQflush(f->pg);

        if (rc == -1
            || ngx_http_modelreg_conn_want(f->c, 1, rc == 1) != NGX_OK)
        {
            ngx_http_modelreg_feed_fail("cannot send LISTEN");
        }

        return;
    }

    ngx_http_modelreg_feed_input();
}


static void
ngx_http_modelreg_feed_poll(void)
{
    int                        rc;
    PostgresPollingStatusType  st;
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    st = PQconnectPoll(f->pg);

    /* libpq may have moved to another socket: see cache_listen.c */

    if (PQsocket(f->pg) != f->c->fd
        || ngx_http_modelreg_conn_uniq(f->c->fd) != f->uniq)
    {
        ngx_http_modelreg_conn_forget(f->c, 1);
        f->c = NULL;

        if (st != PGRES_POLLING_FAILED
            && ngx_http_modelreg_feed_wrap() != NGX_OK)
        {
            ngx_http_modelreg_feed_fail("cannot watch its socket");
            return;
        }
    }

    switch (st) {

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (ngx_http_modelreg_conn_want(f->c, st == PGRES_POLLING_READING,
                                        st == PGRES_POLLING_WRITING)
            != NGX_OK)
        {
            ngx_http_modelreg_feed_fail("cannot watch its socket");
        }

        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_http_modelreg_feed_fail("cannot connect");
        return;
    }

    if (PQsetnonblocking(f->pg, 1) != 0
        || !PQsendQuery(f->pg, "LISTEN modelreg_events"))
    {
        ngx_http_modelreg_feed_fail("cannot send LISTEN");
        return;
    }

    f->state = NGX_HTTP_MODELREG_FEED_STARTING;

    rc = PQflush(f->pg);

    if (rc == -1 || ngx_http_modelreg_conn_want(f->c, 1, rc == 1) != NGX_OK)
    {
        ngx_http_modelreg_feed_fail("cannot send LISTEN");
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, f->log, 0,
                   "modelreg feed: connected, LISTEN sent");
}


static void
ngx_http_modelreg_feed_input(void)
{
    PGresult                  *res;
    ngx_uint_t                 ok, level;
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (!PQconsumeInput(f->pg)) {
        ngx_http_modelreg_feed_fail("lost its connection");
        return;
    }

    if (f->state == NGX_HTTP_MODELREG_FEED_STARTING) {
        ok = 1;

        while (!PQisBusy(f->pg)) {
            res = PQgetResult(f->pg);

            if (res == NULL) {
                break;
            }

            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                ok = 0;
            }

            PQclear(res);
        }

        if (!ok) {
            ngx_http_modelreg_feed_fail("cannot LISTEN");
            return;
        }

        if (PQisBusy(f->pg)) {
            return;
        }

        if (f->timer.timer_set) {
            ngx_del_timer(&f->timer);
        }

        f->state = NGX_HTTP_MODELREG_FEED_LISTENING;

        level = f->failing ? NGX_LOG_NOTICE : NGX_LOG_INFO;

        ngx_log_error(level, f->log, 0,
                      "modelreg: the change feed is listening");

        f->failing = 0;

        /*
         * What committed before it listened was heard by no one: every
         * waiter asks, and every read in flight will
         */

        f->seq++;

        (void) ngx_http_modelreg_feed_mark(NGX_HTTP_MODELREG_FEED_ALL);

        if (f->nwaiters == 0) {
            ngx_add_timer(&f->timer, NGX_HTTP_MODELREG_FEED_IDLE);
        }

        ngx_http_modelreg_feed_wake();
    }

    ngx_http_modelreg_feed_notified();
}


static void
ngx_http_modelreg_feed_notified(void)
{
    int64_t                           id;
    PGresult                         *res;
    PGnotify                         *pn;
    ngx_int_t                         action;
    ngx_str_t                         name;
    ngx_uint_t                        n, seq;
    ngx_queue_t                      *qu;
    ngx_http_modelreg_feed_t         *f;
    ngx_http_modelreg_feed_waiter_t  *w;

    f = &ngx_http_modelreg_feed;

    seq = f->seq;

    /* nothing is sent on it after LISTEN: no result is expected */

    while (!PQisBusy(f->pg) && (res = PQgetResult(f->pg)) != NULL) {
        PQclear(res);
    }

    n = 0;

    while ((pn = PQnotifies(f->pg)) != NULL) {

        f->seq++;

        if (ngx_http_modelreg_events_notice((u_char *) pn->extra,
                                            ngx_strlen(pn->extra), &id,
                                            &action, &name)
            != NGX_OK)
        {
            PQfreemem(pn);
            continue;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, f->log, 0,
                       "modelreg feed: event %L, action %i, \"%V\"",
                       id, action, &name);

        for (qu = ngx_queue_head(&f->waiters);
             qu != ngx_queue_sentinel(&f->waiters);
             qu = ngx_queue_next(qu))
        {
            w = ngx_queue_data(qu, ngx_http_modelreg_feed_waiter_t, queue);

            if (!w->woken
                && ngx_http_modelreg_events_match(w->args, action, &name))
            {
                w->woken = 1;
                n++;
            }
        }

        PQfreemem(pn);
    }

    /*
     * A commit may be what held the horizon below the held waiters'
     * events: they are asked again with the others, not only by the timer
     */

    if (seq != f->seq
        && ngx_http_modelreg_feed_mark(NGX_HTTP_MODELREG_FEED_HELD))
    {
        ngx_log_debug0(NGX_LOG_DEBUG_EVENT, f->log, 0,
                       "modelreg feed: held waiters asked again");
        n++;
    }

    if (n) {
        ngx_http_modelreg_feed_wake();
    }
}


static void
ngx_http_modelreg_feed_timer(ngx_event_t *ev)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        ngx_http_modelreg_feed_stop();
        return;
    }

    switch (f->state) {

    case NGX_HTTP_MODELREG_FEED_IDLE_STATE:
        /* the back-off is over */
        if (f->nwaiters) {
            ngx_http_modelreg_feed_connect();
        }

        return;

    case NGX_HTTP_MODELREG_FEED_LISTENING:
        if (f->nwaiters == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_EVENT, f->log, 0,
                           "modelreg feed: no waiter for a while, closed");
            ngx_http_modelreg_feed_close();
        }

        return;

    default:
        ngx_http_modelreg_feed_fail("timed out");
        return;
    }
}


static void
ngx_http_modelreg_feed_fail(const char *what)
{
    char                      *msg;
    size_t                     len;
    ngx_uint_t                 level;
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    msg = f->pg ? PQerrorMessage(f->pg) : "";
    len = ngx_strlen(msg);

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }

    level = f->failing ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, f->log, 0,
                  "modelreg: the change feed is not listening: %s%s%*s",
                  what, len ? ": " : "", len, msg);

    f->failing = 1;

    ngx_http_modelreg_feed_close();

    if (f->nwaiters && !(ngx_exiting || ngx_quit || ngx_terminate)) {
        ngx_add_timer(&f->timer, NGX_HTTP_MODELREG_FEED_RETRY);
    }
}


static void
ngx_http_modelreg_feed_close(void)
{
    ngx_http_modelreg_feed_t  *f;

    f = &ngx_http_modelreg_feed;

    if (f->timer.timer_set) {
        ngx_del_timer(&f->timer);
    }

    if (f->c) {
        ngx_http_modelreg_conn_forget(f->c, 1);
        f->c = NULL;
    }

    if (f->pg) {
        PQfinish(f->pg);
        f->pg = NULL;
    }

    f->state = NGX_HTTP_MODELREG_FEED_IDLE_STATE;
}


/* the worker stops: every waiter ends now */

static void
ngx_http_modelreg_feed_stop(void)
{
    ngx_queue_t                      *qu;
    ngx_http_modelreg_feed_t         *f;
    ngx_http_modelreg_feed_waiter_t  *w;

    f = &ngx_http_modelreg_feed;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, f->log, 0,
                   "modelreg feed: stopping, %ui waiter(s) end",
                   f->nwaiters);

    ngx_http_modelreg_feed_close();

    if (f->held.timer_set) {
        ngx_del_timer(&f->held);
    }

    while (!ngx_queue_empty(&f->waiters)) {
        qu = ngx_queue_head(&f->waiters);
        w = ngx_queue_data(qu, ngx_http_modelreg_feed_waiter_t, queue);

        (void) ngx_http_modelreg_feed_deliver(w, NULL, 0);
    }
}
