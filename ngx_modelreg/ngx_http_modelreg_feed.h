
/*
 * Copyright (C) modelreg authors
 *
 * The change feed (feed.c): reads of the audit events after a cursor, and
 * the requests that wait for more, woken by this worker's LISTEN
 * connection.  GET /events (events.c) is its route.
 */


#ifndef _NGX_HTTP_MODELREG_FEED_H_INCLUDED_
#define _NGX_HTTP_MODELREG_FEED_H_INCLUDED_


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_events_args.h"


typedef struct ngx_http_modelreg_feed_waiter_s  ngx_http_modelreg_feed_waiter_t;


typedef struct {
    ngx_str_t                        action;
    ngx_str_t                        json;      /* the audit event, as
                                                   GET /audit has it */
    ngx_http_modelreg_cursor_t       cursor;    /* what it completes */
} ngx_http_modelreg_feed_event_t;


/* valid in the handler only: its texts are the query's */
typedef struct {
    ngx_http_modelreg_feed_event_t  *events;
    ngx_uint_t                       n;
    ngx_http_modelreg_cursor_t       next;
    unsigned                         more:1;    /* next: read again now */
} ngx_http_modelreg_feed_page_t;


/*
 * A read answered, or a wait ended: "page" has the events (none, after a
 * read that found none), or is NULL: the worker stops, end the request.
 * What it returns is the rc of ngx_http_modelreg_finish() for the read or
 * the wait (each holds the request).
 */
typedef ngx_int_t (*ngx_http_modelreg_feed_handler_pt)(
    ngx_http_modelreg_feed_waiter_t *w, ngx_http_modelreg_feed_page_t *page);


struct ngx_http_modelreg_feed_waiter_s {
    ngx_http_request_t                 *r;
    ngx_http_modelreg_events_args_t    *args;   /* args->since: the cursor */
    ngx_http_modelreg_feed_handler_pt   handler;

    /* private */
    ngx_queue_t                         queue;
    ngx_uint_t                          seq;
    ngx_pool_t                         *read;      /* a read in flight */
    unsigned                            cleanup:1;
    unsigned                            waiting:1;
    unsigned                            woken:1;   /* to be asked */
    unsigned                            asked:1;   /* in the wake query */
    unsigned                            held:1;    /* its events are behind
                                                      the horizon */
};


/*
 * The events after w->args->since, for the request: NGX_DONE (the handler
 * will be called), NGX_DECLINED: the database cannot take it now.
 */
ngx_int_t ngx_http_modelreg_feed_read(ngx_http_modelreg_feed_waiter_t *w);

/*
 * Waits, holding the request, until an event for it commits (the handler
 * gets its page) or the worker stops (NULL).  w->args->since must be a
 * page's "next" without "more".  NGX_OK; NGX_BUSY: waiters are at their
 * limit; NGX_DECLINED: the worker is stopping.
 */
ngx_int_t ngx_http_modelreg_feed_wait(ngx_http_modelreg_feed_waiter_t *w);

/* no longer waiting (the caller ends the wait), or never was */
void ngx_http_modelreg_feed_unwait(ngx_http_modelreg_feed_waiter_t *w);


#endif /* _NGX_HTTP_MODELREG_FEED_H_INCLUDED_ */
