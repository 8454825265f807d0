
/*
 * Copyright (C) modelreg authors
 *
 * A per-worker pool of libpq connections that never blocks the worker:
 * PQconnectStartParams/PQconnectPoll to connect, PQsendQueryParams and
 * PQconsumeInput/PQisBusy/PQgetResult to query, each socket wrapped in an
 * ngx_connection_t and driven by level-triggered nginx events.  Requests
 * that find every connection busy wait in a bounded queue; every query has
 * a deadline that covers the wait and the run.
 *
 * Each connection prepares a statement the first time it runs its text
 * (PQsendPrepare, then PQsendQueryPrepared when that answers) and reuses
 * it afterwards: parsing and planning were most of the database's time
 * per request (make bench, perf).  A bounded number per connection; texts
 * beyond it, or that fail to prepare, run unprepared as before.
 *
 * A streamed query (q->row) runs in libpq's single-row mode, set right
 * after the query is sent (never on the PQsendPrepare before it): each
 * row goes to q->row as it is parsed, and when the caller cannot take
 * more (its client is slow), the connection's read event is removed, so
 * that the server blocks on its socket and libpq holds no more than it
 * had already read; ngx_http_modelreg_pg_resume() goes on.
 */


#include "ngx_http_modelreg_pg.h"
#include "ngx_http_modelreg_conn.h"


#define NGX_HTTP_MODELREG_PG_CLOSED       0
#define NGX_HTTP_MODELREG_PG_CONNECTING   1
#define NGX_HTTP_MODELREG_PG_IDLE         2
#define NGX_HTTP_MODELREG_PG_BUSY         3

#define NGX_HTTP_MODELREG_PG_STMTS        32

#define NGX_HTTP_MODELREG_PG_BACKOFF_MIN  100
#define NGX_HTTP_MODELREG_PG_BACKOFF_MAX  2000


typedef struct {
    char                          *sql;       /* a copy; NULL: free slot */
    uint32_t                       hash;
    unsigned                       ready:1;   /* prepared on the server */
    unsigned                       failed:1;  /* cannot be: run unprepared */
} ngx_http_modelreg_pg_stmt_t;


struct ngx_http_modelreg_pg_conn_s {
    ngx_http_modelreg_pg_pool_t   *pool;
    ngx_http_modelreg_pg_stmt_t    stmts[NGX_HTTP_MODELREG_PG_STMTS];
    ngx_http_modelreg_pg_stmt_t   *preparing;
    PGconn                        *pg;
    ngx_connection_t              *c;
    ngx_file_uniq_t                uniq;      /* c's socket, by identity */
    ngx_http_modelreg_pg_query_t  *query;     /* NULL: drain and discard */
    PGresult                      *result;
    ngx_event_t                    timer;     /* connect deadline, back-off */
    ngx_msec_t                     backoff;
    ngx_uint_t                     state;
    ngx_uint_t                     id;        /* its slot, for the traces */
    unsigned                       paused:1;  /* a streamed query waits */
};


struct ngx_http_modelreg_pg_pool_s {
    ngx_http_modelreg_pg_conf_t   *conf;
    ngx_http_modelreg_pg_conn_t   *conns;
    ngx_queue_t                    waiting;
    ngx_uint_t                     nwaiting;
    ngx_log_t                     *log;
    const char                    *keywords[5];
    const char                    *values[5];
    ngx_uint_t                     errors;
    ngx_uint_t                     timeouts;
    ngx_uint_t                     rejected;
};


static void ngx_http_modelreg_pg_connect(ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_connect_poll(
    ngx_http_modelreg_pg_conn_t *conn);
static ngx_int_t ngx_http_modelreg_pg_wrap(ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_release(ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_close(ngx_http_modelreg_pg_conn_t *conn,
    ngx_uint_t failed);
static ngx_int_t ngx_http_modelreg_pg_want(ngx_http_modelreg_pg_conn_t *conn,
    ngx_uint_t read, ngx_uint_t write);
static void ngx_http_modelreg_pg_event_handler(ngx_event_t *ev);
static void ngx_http_modelreg_pg_timer_handler(ngx_event_t *ev);
static void ngx_http_modelreg_pg_read(ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_results(ngx_http_modelreg_pg_conn_t *conn);
static ngx_int_t ngx_http_modelreg_pg_row(ngx_http_modelreg_pg_conn_t *conn,
    PGresult *res);
static void ngx_http_modelreg_pg_flush(ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_complete(ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_conn_error(ngx_http_modelreg_pg_conn_t *conn,
    const char *what);
static ngx_int_t ngx_http_modelreg_pg_prepared(
    ngx_http_modelreg_pg_conn_t *conn);
static void ngx_http_modelreg_pg_forget(ngx_http_modelreg_pg_conn_t *conn);
static ngx_int_t ngx_http_modelreg_pg_run(ngx_http_modelreg_pg_conn_t *conn,
    ngx_http_modelreg_pg_query_t *q);
static ngx_http_modelreg_pg_conn_t *ngx_http_modelreg_pg_idle(
    ngx_http_modelreg_pg_pool_t *pool);
static void ngx_http_modelreg_pg_grow(ngx_http_modelreg_pg_pool_t *pool);
static ngx_uint_t ngx_http_modelreg_pg_unopened(
    ngx_http_modelreg_pg_pool_t *pool);
static ngx_uint_t ngx_http_modelreg_pg_is_down(
    ngx_http_modelreg_pg_pool_t *pool);
static void ngx_http_modelreg_pg_dispatch(ngx_http_modelreg_pg_pool_t *pool);
static void ngx_http_modelreg_pg_deliver(ngx_http_modelreg_pg_query_t *q,
    PGresult *res, ngx_uint_t status);
static void ngx_http_modelreg_pg_query_timeout(ngx_event_t *ev);
static void ngx_http_modelreg_pg_query_cleanup(void *data);
static void ngx_http_modelreg_pg_log_error(ngx_log_t *log, ngx_uint_t level,
    const char *what, const char *msg);


ngx_int_t
ngx_http_modelreg_pg_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_pg_conf_t *conf, ngx_http_modelreg_pg_pool_t **pp)
{
    u_char                       *p;
    ngx_uint_t                    i;
    ngx_http_modelreg_pg_pool_t  *pool;
    ngx_http_modelreg_pg_conn_t  *conn;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_modelreg_pg_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->conns = ngx_pcalloc(cycle->pool,
                              conf->size * sizeof(ngx_http_modelreg_pg_conn_t));
    if (pool->conns == NULL) {
        return NGX_ERROR;
    }

    pool->conf = conf;
    pool->log = cycle->log;
    ngx_queue_init(&pool->waiting);

    /*
     * The server cancels a statement that outlives the deadline, so an
     * abandoned slow query does not hold a backend.  The registrations'
     * batches send text[] literals (register_batch.c), which are read as
     * built only with array_nulls on and in UTF-8 (in a client-only
     * encoding such as SJIS, a byte of a UTF-8 character could swallow
     * the backslash that escapes a quote).  A user's "options" and
     * "client_encoding" in the conninfo are overridden by these.
     */

    p = ngx_pnalloc(cycle->pool, sizeof("-c statement_timeout=") + NGX_INT_T_LEN
                                 + sizeof(" -c array_nulls=on") + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(p, "-c statement_timeout=%M -c array_nulls=on%Z",
                conf->timeout);

    pool->keywords[0] = "dbname";
    pool->values[0] = (const char *) conf->conninfo.data;
    pool->keywords[1] = "options";
    pool->values[1] = (const char *) p;
    pool->keywords[2] = "fallback_application_name";
    pool->values[2] = "modelreg";
    pool->keywords[3] = "client_encoding";
    pool->values[3] = "UTF8";
    pool->keywords[4] = NULL;
    pool->values[4] = NULL;

    for (i = 0; i < conf->size; i++) {
        conn = &pool->conns[i];
        conn->pool = pool;
        conn->id = i;
        conn->timer.handler = ngx_http_modelreg_pg_timer_handler;
        conn->timer.data = conn;
        conn->timer.log = pool->log;
        conn->timer.cancelable = 1;
    }

    *pp = pool;

    return NGX_OK;
}


void
ngx_http_modelreg_pg_done(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_uint_t  i;

    for (i = 0; i < pool->conf->size; i++) {
        pool->conns[i].query = NULL;
        ngx_http_modelreg_pg_close(&pool->conns[i], 0);
    }
}


ngx_http_modelreg_pg_query_t *
ngx_http_modelreg_pg_query_create(ngx_pool_t *pool, ngx_log_t *log)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_pg_query_t));
    if (q == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_modelreg_pg_query_cleanup;
    cln->data = q;

    q->log = log;
    q->timer.handler = ngx_http_modelreg_pg_query_timeout;
    q->timer.data = q;
    q->timer.log = log;

    return q;
}


ngx_int_t
ngx_http_modelreg_pg_send(ngx_http_modelreg_pg_pool_t *pool,
    ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_pg_conn_t  *conn;

    q->pool = pool;

    /* never calls q->handler from here: the caller has not yet waited */

    if (ngx_queue_empty(&pool->waiting)) {
        conn = ngx_http_modelreg_pg_idle(pool);

        if (conn && ngx_http_modelreg_pg_run(conn, q) == NGX_OK) {
            ngx_add_timer(&q->timer, pool->conf->timeout);
            return NGX_OK;
        }
    }

    if (ngx_http_modelreg_pg_is_down(pool)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0,
                       "modelreg pg: database down, query declined");
        pool->rejected++;
        return NGX_DECLINED;
    }

    /*
     * "queue=" counts requests that wait for a connection to be free; one
     * that waits for a connection being opened for it does not count
     * (so queue=0 means: a connection of its own, or 503).
     */

    if (pool->nwaiting >= pool->conf->queue
                          + ngx_http_modelreg_pg_unopened(pool))
    {
        pool->rejected++;
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "modelreg: database wait queue is full (%ui)",
                      pool->nwaiting);
        return NGX_BUSY;
    }

    ngx_queue_insert_tail(&pool->waiting, &q->queue);
    pool->nwaiting++;
    q->queued = 1;

    ngx_add_timer(&q->timer, pool->conf->timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "modelreg pg: query queued, %ui waiting", pool->nwaiting);

    ngx_http_modelreg_pg_grow(pool);

    if (ngx_http_modelreg_pg_is_down(pool)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0,
                       "modelreg pg: database down, queued query declined");
        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->queued = 0;
        ngx_del_timer(&q->timer);
        pool->rejected++;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_http_modelreg_pg_stats(ngx_http_modelreg_pg_pool_t *pool,
    ngx_http_modelreg_pg_stats_t *st)
{
    ngx_uint_t  i;

    ngx_memzero(st, sizeof(ngx_http_modelreg_pg_stats_t));

    st->size = pool->conf->size;
    st->waiting = pool->nwaiting;
    st->errors = pool->errors;
    st->timeouts = pool->timeouts;
    st->rejected = pool->rejected;

    for (i = 0; i < pool->conf->size; i++) {
        switch (pool->conns[i].state) {
        case NGX_HTTP_MODELREG_PG_BUSY:
            st->busy++;
            /* fall through */
        case NGX_HTTP_MODELREG_PG_IDLE:
            st->connected++;
            break;
        }
    }
}


static void
ngx_http_modelreg_pg_connect(ngx_http_modelreg_pg_conn_t *conn)
{
    ngx_http_modelreg_pg_pool_t  *pool;

    pool = conn->pool;

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, pool->log, 0,
                   "modelreg pg: #%ui connecting", conn->id);

    conn->pg = PQconnectStartParams(pool->keywords, pool->values, 1);

    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        ngx_http_modelreg_pg_log_error(pool->log, NGX_LOG_ERR,
                                       "cannot connect to the database",
                                       conn->pg ? PQerrorMessage(conn->pg)
                                                : "out of memory");
        ngx_http_modelreg_pg_close(conn, 1);
        return;
    }

    conn->state = NGX_HTTP_MODELREG_PG_CONNECTING;

    if (ngx_http_modelreg_pg_wrap(conn) != NGX_OK) {
        ngx_http_modelreg_pg_close(conn, 1);
        return;
    }

    /* libpq: after PQconnectStart, poll as if PQconnectPoll said WRITING */

    if (ngx_http_modelreg_pg_want(conn, 0, 1) != NGX_OK) {
        ngx_http_modelreg_pg_close(conn, 1);
        return;
    }

    ngx_add_timer(&conn->timer, pool->conf->timeout);
}


static void
ngx_http_modelreg_pg_connect_poll(ngx_http_modelreg_pg_conn_t *conn)
{
    PostgresPollingStatusType     rc;
    ngx_http_modelreg_pg_pool_t  *pool;

    pool = conn->pool;

    rc = PQconnectPoll(conn->pg);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pool->log, 0,
                   "modelreg pg: #%ui connect poll: %d", conn->id, (int) rc);

    /*
     * libpq may have moved to another socket (the next host or address),
     * closing the old one, whose number the new one may have taken
     */

    if (PQsocket(conn->pg) != conn->c->fd
        || ngx_http_modelreg_conn_uniq(conn->c->fd) != conn->uniq)
    {
        ngx_http_modelreg_pg_release(conn);

        if (rc != PGRES_POLLING_FAILED
            && ngx_http_modelreg_pg_wrap(conn) != NGX_OK)
        {
            ngx_http_modelreg_pg_close(conn, 1);
            ngx_http_modelreg_pg_dispatch(pool);
            return;
        }
    }

    switch (rc) {

    case PGRES_POLLING_READING:
        if (ngx_http_modelreg_pg_want(conn, 1, 0) != NGX_OK) {
            break;
        }
        return;

    case PGRES_POLLING_WRITING:
        if (ngx_http_modelreg_pg_want(conn, 0, 1) != NGX_OK) {
            break;
        }
        return;

    case PGRES_POLLING_OK:
        if (conn->timer.timer_set) {
            ngx_del_timer(&conn->timer);
        }

        if (PQsetnonblocking(conn->pg, 1) != 0
            || ngx_http_modelreg_pg_want(conn, 1, 0) != NGX_OK)
        {
            break;
        }

        if (conn->backoff) {
            ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                          "modelreg: database connection restored");
        }

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pool->log, 0,
                       "modelreg pg: #%ui ready, fd:%d",
                       conn->id, conn->c->fd);

        conn->state = NGX_HTTP_MODELREG_PG_IDLE;
        conn->backoff = 0;

        ngx_http_modelreg_pg_dispatch(pool);
        return;

    default: /* PGRES_POLLING_FAILED */
        ngx_http_modelreg_pg_log_error(pool->log, NGX_LOG_ERR,
                                       "cannot connect to the database",
                                       PQerrorMessage(conn->pg));
        break;
    }

    ngx_http_modelreg_pg_close(conn, 1);
    ngx_http_modelreg_pg_dispatch(pool);
}


static ngx_int_t
ngx_http_modelreg_pg_wrap(ngx_http_modelreg_pg_conn_t *conn)
{
    int  fd;

    fd = PQsocket(conn->pg);
    if (fd == -1) {
        return NGX_ERROR;
    }

    conn->c = ngx_http_modelreg_conn_wrap(fd, conn->pool->log,
                                          ngx_http_modelreg_pg_event_handler,
                                          conn);
    conn->uniq = ngx_http_modelreg_conn_uniq(fd);

    return conn->c ? NGX_OK : NGX_ERROR;
}


/* forget the nginx side of the socket; libpq owns and closes the fd */

static void
ngx_http_modelreg_pg_release(ngx_http_modelreg_pg_conn_t *conn)
{
    if (conn->c) {
        ngx_http_modelreg_conn_forget(conn->c, 1);
        conn->c = NULL;
    }
}


static void
ngx_http_modelreg_pg_close(ngx_http_modelreg_pg_conn_t *conn,
    ngx_uint_t failed)
{
    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_http_modelreg_pg_release(conn);

    if (conn->result) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    if (conn->pg) {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->pool->log, 0,
                       "modelreg pg: #%ui closed%s",
                       conn->id, failed ? " on a failure" : "");

        PQfinish(conn->pg);
        conn->pg = NULL;
    }

    ngx_http_modelreg_pg_forget(conn);

    conn->state = NGX_HTTP_MODELREG_PG_CLOSED;
    conn->paused = 0;

    if (!failed || ngx_terminate) {
        return;
    }

    /*
     * reconnect with back-off; the pool counts as down meanwhile.  An
     * exiting worker too: its requests in flight still wait, and without
     * a back-off it reconnected at once, again and again, until their
     * deadline (the timer is cancelable: it does not hold the exit)
     */

    conn->pool->errors++;

    conn->backoff = conn->backoff ? ngx_min(conn->backoff * 2,
                                            NGX_HTTP_MODELREG_PG_BACKOFF_MAX)
                                  : NGX_HTTP_MODELREG_PG_BACKOFF_MIN;

    ngx_add_timer(&conn->timer, conn->backoff);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->pool->log, 0,
                   "modelreg pg: #%ui back-off %M ms",
                   conn->id, conn->backoff);
}


static ngx_int_t
ngx_http_modelreg_pg_want(ngx_http_modelreg_pg_conn_t *conn, ngx_uint_t read,
    ngx_uint_t write)
{
    return ngx_http_modelreg_conn_want(conn->c, read, write);
}


static void
ngx_http_modelreg_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_modelreg_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    switch (conn->state) {

    case NGX_HTTP_MODELREG_PG_CONNECTING:
        ngx_http_modelreg_pg_connect_poll(conn);
        return;

    case NGX_HTTP_MODELREG_PG_BUSY:
        if (ev->write) {
            ngx_http_modelreg_pg_flush(conn);

        } else if (!conn->paused) {
            ngx_http_modelreg_pg_read(conn);
        }

        return;

    case NGX_HTTP_MODELREG_PG_IDLE:
        if (ev->write) {
            (void) ngx_http_modelreg_pg_want(conn, 1, 0);
            return;
        }

        /* an idle connection speaks only when the server goes away */

        if (!PQconsumeInput(conn->pg) || PQstatus(conn->pg) != CONNECTION_OK) {
            ngx_http_modelreg_pg_log_error(conn->pool->log, NGX_LOG_WARN,
                                           "database connection lost",
                                           PQerrorMessage(conn->pg));
            ngx_http_modelreg_pg_close(conn, 1);
            ngx_http_modelreg_pg_dispatch(conn->pool);
            return;
        }

        while (PQnotifies(conn->pg) != NULL) { /* void */ }

        return;
    }
}


static void
ngx_http_modelreg_pg_timer_handler(ngx_event_t *ev)
{
    ngx_http_modelreg_pg_conn_t  *conn;

    conn = ev->data;

    if (conn->state == NGX_HTTP_MODELREG_PG_CONNECTING) {
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "modelreg: database connect timed out");
        ngx_http_modelreg_pg_close(conn, 1);
        ngx_http_modelreg_pg_dispatch(conn->pool);
        return;
    }

    /* back-off over: try again, so the pool heals without traffic */

    if (conn->state == NGX_HTTP_MODELREG_PG_CLOSED) {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, conn->pool->log, 0,
                       "modelreg pg: #%ui back-off over", conn->id);

        /* an exiting worker connects only for a request that waits */

        if ((ngx_exiting || ngx_quit)
            && ngx_queue_empty(&conn->pool->waiting))
        {
            return;
        }

        ngx_http_modelreg_pg_connect(conn);
        ngx_http_modelreg_pg_dispatch(conn->pool);
    }
}


static void
ngx_http_modelreg_pg_flush(ngx_http_modelreg_pg_conn_t *conn)
{
    int  rc;

    rc = PQflush(conn->pg);

    if (rc == -1) {
        ngx_http_modelreg_pg_conn_error(conn, "cannot send the query");
        return;
    }

    (void) ngx_http_modelreg_pg_want(conn, 1, rc == 1);
}


static void
ngx_http_modelreg_pg_read(ngx_http_modelreg_pg_conn_t *conn)
{
    if (!PQconsumeInput(conn->pg)) {
        ngx_http_modelreg_pg_conn_error(conn, "cannot read the result");
        return;
    }

    ngx_http_modelreg_pg_results(conn);
}


/* the results libpq has parsed from what was read so far */

static void
ngx_http_modelreg_pg_results(ngx_http_modelreg_pg_conn_t *conn)
{
    PGresult  *res;

    while (!PQisBusy(conn->pg)) {

        res = PQgetResult(conn->pg);

        if (res == NULL) {
            ngx_http_modelreg_pg_complete(conn);
            return;
        }

        if (PQresultStatus(res) == PGRES_SINGLE_TUPLE) {
            if (ngx_http_modelreg_pg_row(conn, res) != NGX_OK) {
                return;
            }

            continue;
        }

        /* one statement, one result: keep the first error, else the last */

        if (conn->result
            && PQresultStatus(conn->result) == PGRES_FATAL_ERROR)
        {
            PQclear(res);
            continue;
        }

        if (conn->result) {
            PQclear(conn->result);
        }

        conn->result = res;
    }
}


/*
 * A row of a streamed query to its caller.  NGX_OK: read on; else the
 * connection is paused, or closed and the query answered.
 */

static ngx_int_t
ngx_http_modelreg_pg_row(ngx_http_modelreg_pg_conn_t *conn, PGresult *res)
{
    ngx_int_t                      rc;
    ngx_http_modelreg_pg_pool_t   *pool;
    ngx_http_modelreg_pg_query_t  *q;

    q = conn->query;

    if (q == NULL || q->row == NULL) {
        /* nobody waits for it: drained */
        PQclear(res);
        return NGX_OK;
    }

    rc = q->row(q, res);
    PQclear(res);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_AGAIN) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0,
                       "modelreg pg: paused");

        conn->paused = 1;

        if (ngx_http_modelreg_pg_want(conn, 0, 0) == NGX_OK) {
            return NGX_AGAIN;
        }

        /* fall through: cannot pause, so stop */
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "modelreg pg: streamed query stopped");

    pool = conn->pool;

    conn->query = NULL;
    q->conn = NULL;
    ngx_http_modelreg_pg_close(conn, 0);

    ngx_http_modelreg_pg_deliver(q, NULL, NGX_HTTP_MODELREG_PG_UNAVAILABLE);
    ngx_http_modelreg_pg_dispatch(pool);

    return NGX_ERROR;
}


void
ngx_http_modelreg_pg_resume(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_pg_conn_t  *conn;

    conn = q->conn;

    if (conn == NULL || !conn->paused) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, q->log, 0, "modelreg pg: resumed");

    conn->paused = 0;

    if (ngx_http_modelreg_pg_want(conn, 1, 0) != NGX_OK) {
        ngx_http_modelreg_pg_conn_error(conn, "cannot read the result");
        return;
    }

    /* libpq may hold whole rows already: they need no socket event */

    ngx_post_event(conn->c->read, &ngx_posted_events);
}


static void
ngx_http_modelreg_pg_complete(ngx_http_modelreg_pg_conn_t *conn)
{
    char                          *state;
    PGresult                      *res;
    ngx_uint_t                     status;
    ngx_http_modelreg_pg_pool_t   *pool;
    ngx_http_modelreg_pg_query_t  *q;

    if (conn->preparing && ngx_http_modelreg_pg_prepared(conn) == NGX_OK) {
        return;
    }

    pool = conn->pool;
    q = conn->query;
    res = conn->result;

    conn->query = NULL;
    conn->result = NULL;
    conn->state = NGX_HTTP_MODELREG_PG_IDLE;

    status = NGX_HTTP_MODELREG_PG_OK;

    if (res == NULL) {
        status = NGX_HTTP_MODELREG_PG_UNAVAILABLE;

    } else if (PQresultStatus(res) != PGRES_COMMAND_OK
               && PQresultStatus(res) != PGRES_TUPLES_OK)
    {
        status = NGX_HTTP_MODELREG_PG_SQL_ERROR;

        /*
         * 08: connection, 53: resources, 57: operator intervention (the
         * statement timeout, a shutdown): the database is unavailable,
         * the statement is not wrong.
         */

        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (state == NULL
            || ngx_strncmp(state, "08", 2) == 0
            || ngx_strncmp(state, "53", 2) == 0
            || ngx_strncmp(state, "57", 2) == 0)
        {
            status = NGX_HTTP_MODELREG_PG_UNAVAILABLE;
            pool->errors++;
            ngx_http_modelreg_pg_log_error(pool->log, NGX_LOG_ERR,
                                           "database unavailable",
                                           PQresultErrorMessage(res));
        }
    }

    if (PQstatus(conn->pg) != CONNECTION_OK) {
        ngx_http_modelreg_pg_close(conn, 1);
    }

    if (q) {
        q->conn = NULL;
        ngx_http_modelreg_pg_deliver(q, res, status);

    } else if (res) {
        PQclear(res);
    }

    ngx_http_modelreg_pg_dispatch(pool);
}


static void
ngx_http_modelreg_pg_conn_error(ngx_http_modelreg_pg_conn_t *conn,
    const char *what)
{
    ngx_http_modelreg_pg_pool_t   *pool;
    ngx_http_modelreg_pg_query_t  *q;

    pool = conn->pool;
    q = conn->query;

    ngx_http_modelreg_pg_log_error(pool->log, NGX_LOG_ERR, what,
                                   PQerrorMessage(conn->pg));

    conn->query = NULL;
    ngx_http_modelreg_pg_close(conn, 1);

    if (q) {
        q->conn = NULL;
        ngx_http_modelreg_pg_deliver(q, NULL,
                                     NGX_HTTP_MODELREG_PG_UNAVAILABLE);
    }

    ngx_http_modelreg_pg_dispatch(pool);
}


static ngx_int_t
ngx_http_modelreg_pg_run(ngx_http_modelreg_pg_conn_t *conn,
    ngx_http_modelreg_pg_query_t *q)
{
    int                           ok, rc, format;
    size_t                        len;
    uint32_t                      hash;
    ngx_uint_t                    i, query;
    ngx_http_modelreg_pg_stmt_t  *st, *slot;
    char                          name[NGX_INT_T_LEN + 3];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "modelreg pg: #%ui runs \"%s\", %ui waiting",
                   conn->id, q->sql, conn->pool->nwaiting);

    len = ngx_strlen(q->sql);
    hash = ngx_crc32_long((u_char *) q->sql, len);

    st = NULL;
    slot = NULL;

    for (i = 0; i < NGX_HTTP_MODELREG_PG_STMTS; i++) {
        if (conn->stmts[i].sql == NULL) {
            if (slot == NULL) {
                slot = &conn->stmts[i];
            }
            continue;
        }

        if (conn->stmts[i].hash == hash
            && ngx_strcmp(conn->stmts[i].sql, q->sql) == 0)
        {
            st = &conn->stmts[i];
            break;
        }
    }

    if (st == NULL && slot) {
        slot->sql = ngx_alloc(len + 1, conn->pool->log);

        if (slot->sql) {
            ngx_memcpy(slot->sql, q->sql, len + 1);
            slot->hash = hash;
            slot->ready = 0;
            slot->failed = 0;
            st = slot;
        }
    }

    format = q->binary ? 1 : 0;
    query = 1;

    if (st && !st->failed) {
        ngx_sprintf((u_char *) name, "mr%ui%Z",
                    (ngx_uint_t) (st - conn->stmts));

        if (st->ready) {
            ok = PQsendQueryPrepared(conn->pg, name, q->nparams, q->values,
                                     q->lengths, NULL, format);

        } else {
            ok = PQsendPrepare(conn->pg, name, q->sql, q->nparams, NULL);
            conn->preparing = st;
            query = 0;
        }

    } else {
        ok = PQsendQueryParams(conn->pg, q->sql, q->nparams, NULL, q->values,
                               q->lengths, NULL, format);
    }

    /* single-row mode: right after the query, never after the prepare */

    if (ok && query && q->row) {
        ok = PQsetSingleRowMode(conn->pg);
    }

    if (!ok) {
        ngx_http_modelreg_pg_log_error(conn->pool->log, NGX_LOG_ERR,
                                       "cannot send the query",
                                       PQerrorMessage(conn->pg));
        ngx_http_modelreg_pg_close(conn, 1);
        return NGX_ERROR;
    }

    /*
     * What libpq could not send at once goes when the socket is writable;
     * a failure here is a failed send, never a delivery from inside
     * pg_send() (its caller has not started to wait yet).
     */

    rc = PQflush(conn->pg);

    if (rc == -1) {
        ngx_http_modelreg_pg_log_error(conn->pool->log, NGX_LOG_ERR,
                                       "cannot send the query",
                                       PQerrorMessage(conn->pg));
        ngx_http_modelreg_pg_close(conn, 1);
        return NGX_ERROR;
    }

    conn->query = q;
    conn->state = NGX_HTTP_MODELREG_PG_BUSY;
    q->conn = conn;
    q->sent = 1;

    (void) ngx_http_modelreg_pg_want(conn, 1, rc == 1);

    return NGX_OK;
}


/*
 * The answer to PQsendPrepare: on success the query itself follows on the
 * same connection (NGX_OK); a text that cannot be prepared is marked and
 * run unprepared, so that its error, if any, is the statement's own.
 */

static ngx_int_t
ngx_http_modelreg_pg_prepared(ngx_http_modelreg_pg_conn_t *conn)
{
    ngx_http_modelreg_pg_stmt_t   *st;
    ngx_http_modelreg_pg_query_t  *q;

    st = conn->preparing;
    conn->preparing = NULL;

    if (conn->result && PQresultStatus(conn->result) == PGRES_COMMAND_OK) {
        st->ready = 1;

    } else {
        st->failed = 1;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->pool->log, 0,
                   "modelreg pg: #%ui mr%ui %s", conn->id,
                   (ngx_uint_t) (st - conn->stmts),
                   st->ready ? "prepared" : "cannot be prepared: unprepared");

    if (conn->result) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    q = conn->query;

    if (q == NULL || PQstatus(conn->pg) != CONNECTION_OK) {
        /* the query went away meanwhile, or the connection did */
        return NGX_DECLINED;
    }

    conn->query = NULL;
    q->conn = NULL;

    if (ngx_http_modelreg_pg_run(conn, q) != NGX_OK) {
        ngx_http_modelreg_pg_deliver(q, NULL,
                                     NGX_HTTP_MODELREG_PG_UNAVAILABLE);
        ngx_http_modelreg_pg_dispatch(conn->pool);
    }

    return NGX_OK;
}


static void
ngx_http_modelreg_pg_forget(ngx_http_modelreg_pg_conn_t *conn)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_MODELREG_PG_STMTS; i++) {
        if (conn->stmts[i].sql) {
            ngx_free(conn->stmts[i].sql);
            conn->stmts[i].sql = NULL;
        }
    }

    conn->preparing = NULL;
}


static ngx_http_modelreg_pg_conn_t *
ngx_http_modelreg_pg_idle(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_uint_t  i;

    for (i = 0; i < pool->conf->size; i++) {
        if (pool->conns[i].state == NGX_HTTP_MODELREG_PG_IDLE) {
            return &pool->conns[i];
        }
    }

    return NULL;
}


/* open as many connections as there are waiting queries, up to the size */

static void
ngx_http_modelreg_pg_grow(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_uint_t                    i, connecting;
    ngx_http_modelreg_pg_conn_t  *conn;

    connecting = 0;

    for (i = 0; i < pool->conf->size; i++) {
        if (pool->conns[i].state == NGX_HTTP_MODELREG_PG_CONNECTING) {
            connecting++;
        }
    }

    for (i = 0; i < pool->conf->size && connecting < pool->nwaiting; i++) {
        conn = &pool->conns[i];

        if (conn->state == NGX_HTTP_MODELREG_PG_CLOSED
            && !conn->timer.timer_set)
        {
            ngx_http_modelreg_pg_connect(conn);

            if (conn->state == NGX_HTTP_MODELREG_PG_CONNECTING) {
                connecting++;
            }
        }
    }
}


/* slots that are not connected: each may yet be opened for a request */

static ngx_uint_t
ngx_http_modelreg_pg_unopened(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < pool->conf->size; i++) {
        if (pool->conns[i].state == NGX_HTTP_MODELREG_PG_CLOSED
            || pool->conns[i].state == NGX_HTTP_MODELREG_PG_CONNECTING)
        {
            n++;
        }
    }

    return n;
}


/* down: nothing connected or connecting, and every slot in back-off */

static ngx_uint_t
ngx_http_modelreg_pg_is_down(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_uint_t                    i;
    ngx_http_modelreg_pg_conn_t  *conn;

    for (i = 0; i < pool->conf->size; i++) {
        conn = &pool->conns[i];

        if (conn->state != NGX_HTTP_MODELREG_PG_CLOSED
            || !conn->timer.timer_set)
        {
            return 0;
        }
    }

    return 1;
}


static void
ngx_http_modelreg_pg_dispatch(ngx_http_modelreg_pg_pool_t *pool)
{
    ngx_queue_t                   *qu;
    ngx_http_modelreg_pg_conn_t   *conn;
    ngx_http_modelreg_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {

        conn = ngx_http_modelreg_pg_idle(pool);
        if (conn == NULL) {
            break;
        }

        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, ngx_http_modelreg_pg_query_t, queue);

        ngx_queue_remove(qu);
        pool->nwaiting--;
        q->queued = 0;

        if (ngx_http_modelreg_pg_run(conn, q) != NGX_OK) {
            ngx_queue_insert_head(&pool->waiting, &q->queue);
            pool->nwaiting++;
            q->queued = 1;
        }
    }

    if (ngx_queue_empty(&pool->waiting)) {
        return;
    }

    ngx_http_modelreg_pg_grow(pool);

    /* the database is down: waiting longer helps nobody */

    while (!ngx_queue_empty(&pool->waiting)
           && ngx_http_modelreg_pg_is_down(pool))
    {
        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, ngx_http_modelreg_pg_query_t, queue);

        ngx_queue_remove(qu);
        pool->nwaiting--;
        q->queued = 0;

        ngx_http_modelreg_pg_deliver(q, NULL,
                                     NGX_HTTP_MODELREG_PG_UNAVAILABLE);
    }
}


static void
ngx_http_modelreg_pg_deliver(ngx_http_modelreg_pg_query_t *q, PGresult *res,
    ngx_uint_t status)
{
    char  *state;

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "modelreg pg: query done: status %ui, %d rows, %s",
                   status, res ? PQntuples(res) : 0,
                   res ? PQresStatus(PQresultStatus(res)) : "no result");

    q->done = 1;
    q->status = status;
    q->result = res;

    if (res) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state) {
            ngx_cpystrn((u_char *) q->sqlstate, (u_char *) state,
                        sizeof(q->sqlstate));
        }
    }

    q->handler(q);
}


static void
ngx_http_modelreg_pg_query_timeout(ngx_event_t *ev)
{
    ngx_http_modelreg_pg_pool_t   *pool;
    ngx_http_modelreg_pg_conn_t   *conn;
    ngx_http_modelreg_pg_query_t  *q;

    q = ev->data;
    pool = q->pool;

    pool->timeouts++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "modelreg pg: query timed out %s",
                   q->queued ? "waiting" : "running");

    if (q->queued) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "modelreg: no database connection within %M ms",
                      pool->conf->timeout);

        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->queued = 0;

    } else if (q->conn) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "modelreg: database query timed out after %M ms",
                      pool->conf->timeout);

        /* the connection is mid-statement: drop it, reconnect on demand */

        conn = q->conn;
        conn->query = NULL;
        q->conn = NULL;
        ngx_http_modelreg_pg_close(conn, 0);
    }

    ngx_http_modelreg_pg_deliver(q, NULL, NGX_HTTP_MODELREG_PG_UNAVAILABLE);

    ngx_http_modelreg_pg_dispatch(pool);
}


static void
ngx_http_modelreg_pg_query_cleanup(void *data)
{
    ngx_http_modelreg_pg_query_t  *q = data;

    ngx_http_modelreg_pg_conn_t   *conn;

    if (q->result) {
        PQclear(q->result);
        q->result = NULL;
    }

    /* (whatever happened: a timer must never outlive its query) */

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    if (q->done || q->pool == NULL) {
        return;
    }

    /* the request went away while its query waited or ran */

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "modelreg pg: query cancelled %s%s",
                   q->queued ? "waiting" : (q->conn ? "running" : "unsent"),
                   q->conn && q->row ? ", its connection closed" : "");

    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->queued = 0;
    }

    if (q->conn) {
        conn = q->conn;
        conn->query = NULL;
        q->conn = NULL;

        /*
         * A streamed query may have much left to send, or be paused:
         * stop the server now rather than read it all for nobody.
         */

        if (q->row) {
            ngx_http_modelreg_pg_close(conn, 0);

            if (q->pool->nwaiting) {
                ngx_http_modelreg_pg_grow(q->pool);
            }
        }
    }

    q->done = 1;
}


static void
ngx_http_modelreg_pg_log_error(ngx_log_t *log, ngx_uint_t level,
    const char *what, const char *msg)
{
    size_t  len;

    len = msg ? ngx_strlen(msg) : 0;

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }

    ngx_log_error(level, log, 0, "modelreg: %s: %*s", what, len, msg);
}
