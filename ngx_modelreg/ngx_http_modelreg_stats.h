/*
 * Copyright (C) modelreg authors
 *
 * The counters' layout in shared memory, for stats.c that counts and
 * metrics.c that prints them.
 */


#ifndef _NGX_HTTP_MODELREG_STATS_H_INCLUDED_
#define _NGX_HTTP_MODELREG_STATS_H_INCLUDED_


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_ROUTES    (NGX_HTTP_MODELREG_ROUTE_EVENTS + 1)
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
} ngx_http_modelreg_stats_slot_t;


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
    ngx_atomic_t                webhooks[NGX_HTTP_MODELREG_WEBHOOK_OUTCOMES];
    ngx_http_modelreg_stats_slot_t  slots[NGX_HTTP_MODELREG_SLOTS];
} ngx_http_modelreg_stats_t;


ngx_http_modelreg_stats_t *ngx_http_modelreg_stats_snapshot(ngx_pool_t *pool,
    ngx_http_modelreg_pg_pool_t *pg);


#endif /* _NGX_HTTP_MODELREG_STATS_H_INCLUDED_ */
