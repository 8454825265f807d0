
/*
 * Copyright (C) modelreg authors
 *
 * Per-worker pool of non-blocking libpq connections driven by nginx events.
 */


#ifndef _NGX_HTTP_MODELREG_PG_H_INCLUDED_
#define _NGX_HTTP_MODELREG_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


#define NGX_HTTP_MODELREG_PG_OK           0
#define NGX_HTTP_MODELREG_PG_SQL_ERROR    1  /* the statement failed */
#define NGX_HTTP_MODELREG_PG_UNAVAILABLE  2  /* down, queue full, timeout */

/* SQLSTATE unique_violation: a duplicate */
#define NGX_HTTP_MODELREG_PG_UNIQUE      "23505"

/* SQLSTATE foreign_key_violation: a model that aliases point at */
#define NGX_HTTP_MODELREG_PG_FOREIGN_KEY "23503"


typedef struct ngx_http_modelreg_pg_pool_s   ngx_http_modelreg_pg_pool_t;
typedef struct ngx_http_modelreg_pg_conn_s   ngx_http_modelreg_pg_conn_t;
typedef struct ngx_http_modelreg_pg_query_s  ngx_http_modelreg_pg_query_t;

typedef void (*ngx_http_modelreg_pg_handler_pt)(
    ngx_http_modelreg_pg_query_t *q);

/*
 * One row of a streamed query (libpq's single-row mode), freed when this
 * returns.  NGX_OK: the next; NGX_AGAIN: stop reading the connection
 * until ngx_http_modelreg_pg_resume() (libpq holds at most what it had
 * already read); NGX_ERROR: stop, the connection is closed and the
 * handler called (status UNAVAILABLE).
 */
typedef ngx_int_t (*ngx_http_modelreg_pg_row_pt)(
    ngx_http_modelreg_pg_query_t *q, PGresult *res);


typedef struct {
    ngx_str_t                        conninfo;
    ngx_uint_t                       size;
    ngx_uint_t                       queue;
    ngx_msec_t                       timeout;
    ngx_uint_t                       batch;    /* registrations a statement */
} ngx_http_modelreg_pg_conf_t;


typedef struct {
    ngx_uint_t                       size;
    ngx_uint_t                       connected;
    ngx_uint_t                       busy;
    ngx_uint_t                       waiting;
    ngx_uint_t                       errors;
    ngx_uint_t                       timeouts;
    ngx_uint_t                       rejected;
} ngx_http_modelreg_pg_stats_t;


struct ngx_http_modelreg_pg_query_s {
    /* set by the caller */
    const char                      *sql;
    int                              nparams;
    const char                     **values;   /* NUL-terminated texts */
    int                             *lengths;
    ngx_http_modelreg_pg_handler_pt  handler;
    ngx_http_modelreg_pg_row_pt      row;      /* non-NULL: rows streamed */
    void                            *data;
    ngx_log_t                       *log;
    unsigned                         binary:1; /* results in binary */

    /* the outcome, valid in the handler */
    ngx_uint_t                       status;   /* NGX_HTTP_MODELREG_PG_* */
    PGresult                        *result;   /* freed with the pool */
    char                             sqlstate[6];

    /* private */
    ngx_http_modelreg_pg_pool_t     *pool;
    ngx_http_modelreg_pg_conn_t     *conn;
    ngx_queue_t                      queue;
    ngx_event_t                      timer;
    unsigned                         queued:1;
    unsigned                         done:1;
    unsigned                         sent:1;   /* failed: outcome unknown */
};


ngx_int_t ngx_http_modelreg_pg_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_pg_conf_t *conf, ngx_http_modelreg_pg_pool_t **pool);
void ngx_http_modelreg_pg_done(ngx_http_modelreg_pg_pool_t *pool);

/* a query whose resources go with "pool" (a request's pool, usually) */
ngx_http_modelreg_pg_query_t *ngx_http_modelreg_pg_query_create(
    ngx_pool_t *pool, ngx_log_t *log);

/*
 * NGX_OK: the handler will be called later, exactly once, unless the
 * memory pool of the query is destroyed first (then it never is).
 * NGX_BUSY: queue full; NGX_DECLINED: the database is known to be down.
 * A streamed query (q->row) gets its rows first, then the handler with
 * the statement's final result (no rows in it); the query's timeout
 * covers all of it, pauses included.  Its pool destroyed mid-way, its
 * connection is closed (the server stops sending) and reopened on demand.
 */
ngx_int_t ngx_http_modelreg_pg_send(ngx_http_modelreg_pg_pool_t *pool,
    ngx_http_modelreg_pg_query_t *q);

/* reads on after a row callback's NGX_AGAIN, from the event loop */
void ngx_http_modelreg_pg_resume(ngx_http_modelreg_pg_query_t *q);

void ngx_http_modelreg_pg_stats(ngx_http_modelreg_pg_pool_t *pool,
    ngx_http_modelreg_pg_stats_t *stats);


#endif /* _NGX_HTTP_MODELREG_PG_H_INCLUDED_ */
