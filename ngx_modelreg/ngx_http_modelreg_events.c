
/*
 * Copyright (C) modelreg authors
 *
 * GET /events: the change feed (feed.c) as a long poll, or as a stream of
 * Server-Sent Events with "Accept: text/event-stream".
 *
 * A long poll that finds nothing waits up to "wait" seconds, with its own
 * timer (nginx's, one per request) and nothing else; the first page of
 * events for it, or the end of the wait, answers it.  A stream writes each
 * page as events ("id:" the event's cursor, "event:" its action, "data:"
 * its JSON) and waits again, forever but for its lifetime: after
 * modelreg_events lifetime= it ends, and the client reconnects with
 * Last-Event-ID.  Its bytes leave at once (every buffer flushes; no
 * nginx buffering, "X-Accel-Buffering: no" for a proxy in front); one
 * timer per worker writes a comment to each stream silent for 5 s and
 * ends the streams past their lifetime.  A stream whose unsent bytes pass
 * modelreg_events backlog= is cut off: a client that reads slowly costs
 * at most that.  Reading the feed is not audited: it would feed itself.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_feed.h"


/* a comment to a stream silent this long: at least one every 10 s */
#define NGX_HTTP_MODELREG_EVENTS_TICK   5000


typedef struct {
    ngx_http_modelreg_feed_waiter_t   w;
    ngx_http_modelreg_events_args_t   args;
    ngx_event_t                       timer;    /* a long poll's wait */
    ngx_queue_t                       queue;    /* a stream, in the list */
    ngx_msec_t                        start;
    ngx_msec_t                        last;     /* the last write */
    ngx_chain_t                      *busy;     /* ours, not yet sent */
    ngx_chain_t                      *free;     /* their buffers, sent */
    off_t                             unsent;
    unsigned                          stream:1;
    unsigned                          streaming:1;
    unsigned                          listed:1;
} ngx_http_modelreg_events_t;


static ngx_int_t ngx_http_modelreg_events_page(
    ngx_http_modelreg_feed_waiter_t *w, ngx_http_modelreg_feed_page_t *page);
static ngx_int_t ngx_http_modelreg_events_answer(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e, ngx_http_modelreg_feed_page_t *page);
static ngx_int_t ngx_http_modelreg_events_wait(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e);
static void ngx_http_modelreg_events_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_modelreg_events_stream(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e, ngx_http_modelreg_feed_page_t *page);
static ngx_int_t ngx_http_modelreg_events_headers(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e);
static ngx_int_t ngx_http_modelreg_events_write(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e, ngx_buf_t *b);
static void ngx_http_modelreg_events_sent(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e);
static ngx_buf_t *ngx_http_modelreg_events_buf(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e);
static void ngx_http_modelreg_events_writable(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_events_end(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e);
static void ngx_http_modelreg_events_tick(ngx_event_t *ev);
static void ngx_http_modelreg_events_cleanup(void *data);


static ngx_queue_t  ngx_http_modelreg_events_streams;
static ngx_event_t  ngx_http_modelreg_events_ticker;

static ngx_str_t  ngx_http_modelreg_events_sse_type =
    ngx_string("text/event-stream");


ngx_int_t
ngx_http_modelreg_events(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    msg;
    ngx_table_elt_t             *h;
    ngx_http_cleanup_t          *cln;
    ngx_http_modelreg_ctx_t     *ctx;
    ngx_http_modelreg_events_t  *e;

    e = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_events_t));
    if (e == NULL) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    ctx->data = e;

    rc = ngx_http_modelreg_events_args_parse(r->pool, &r->args, &e->args,
                                             &msg);
    if (rc == NGX_ERROR) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    if (rc != NGX_OK) {
        return ngx_http_modelreg_send_error(r, rc, "%V", &msg);
    }

    h = ngx_http_modelreg_header_in(r, "Accept");

    if (r->method == NGX_HTTP_GET && h
        && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                            (u_char *) "text/event-stream", 17 - 1)
           != NULL)
    {
        e->stream = 1;

        /* a reconnecting EventSource sends its first URL again: it wins */

        h = ngx_http_modelreg_header_in(r, "Last-Event-ID");

        if (h && h->value.len) {
            if (ngx_http_modelreg_cursor_parse(h->value.data, h->value.len,
                                               &e->args.since)
                != NGX_OK)
            {
                return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                           "Invalid Last-Event-ID: use the id of an event "
                           "of this stream.");
            }

            e->args.has_since = 1;
        }
    }

    if (!e->args.has_since) {
        /* from now: a horizon above all, the read answers the current */
        e->args.since.lo = NGX_HTTP_MODELREG_CURSOR_MAX;
        e->args.since.hi = NGX_HTTP_MODELREG_CURSOR_MAX;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    cln->handler = ngx_http_modelreg_events_cleanup;
    cln->data = e;

    e->w.r = r;
    e->w.args = &e->args;
    e->w.handler = ngx_http_modelreg_events_page;

    e->timer.handler = ngx_http_modelreg_events_timeout;
    e->timer.data = r;
    e->timer.log = r->connection->log;

    /* a client that goes away is seen at once (and ends its wait) */
    r->read_event_handler = ngx_http_test_reading;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg events: %s, wait:%ui limit:%ui",
                   e->stream ? "stream" : "long poll", e->args.wait,
                   e->args.limit);

    rc = ngx_http_modelreg_feed_read(&e->w);

    if (rc == NGX_DECLINED) {
        return ngx_http_modelreg_db_unavailable(r);
    }

    if (rc != NGX_DONE) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    return NGX_DONE;
}


/* the feed's handler: a page read, a wait answered, or the worker stops */

static ngx_int_t
ngx_http_modelreg_events_page(ngx_http_modelreg_feed_waiter_t *w,
    ngx_http_modelreg_feed_page_t *page)
{
    ngx_http_request_t          *r;
    ngx_http_modelreg_events_t  *e;

    e = (ngx_http_modelreg_events_t *) w;
    r = w->r;

    if (e->timer.timer_set) {
        ngx_del_timer(&e->timer);
    }

    if (e->stream) {
        return ngx_http_modelreg_events_stream(r, e, page);
    }

    if (page && page->n == 0 && !page->more && e->args.wait) {
        e->args.since = page->next;
        return ngx_http_modelreg_events_wait(r, e);
    }

    return ngx_http_modelreg_events_answer(r, e, page);
}


/* {"events":[...],"next":"<cursor>"}: each event with its "cursor" */

static ngx_int_t
ngx_http_modelreg_events_answer(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e, ngx_http_modelreg_feed_page_t *page)
{
    u_char                          *data, *p;
    size_t                           len;
    ngx_uint_t                       i, n;
    ngx_http_modelreg_cursor_t      *next;
    ngx_http_modelreg_feed_event_t  *ev;

    n = page ? page->n : 0;
    next = page ? &page->next : &e->args.since;

    len = sizeof("{\"events\":[],\"next\":\"\"}")
          + NGX_HTTP_MODELREG_CURSOR_LEN;

    for (i = 0; i < n; i++) {
        len += page->events[i].json.len + sizeof(",\"cursor\":\"\"},")
               + NGX_HTTP_MODELREG_CURSOR_LEN;
    }

    data = ngx_pnalloc(r->pool, len);
    if (data == NULL) {
        return ngx_http_modelreg_end(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    p = ngx_cpymem(data, "{\"events\":[", sizeof("{\"events\":[") - 1);

    for (i = 0; i < n; i++) {
        ev = &page->events[i];

        if (i) {
            *p++ = ',';
        }

        /* the object without its "}", then its cursor */
        p = ngx_cpymem(p, ev->json.data, ev->json.len - 1);
        p = ngx_cpymem(p, ",\"cursor\":\"", sizeof(",\"cursor\":\"") - 1);
        p = ngx_http_modelreg_cursor_print(p, &ev->cursor);
        p = ngx_cpymem(p, "\"}", 2);
    }

    p = ngx_cpymem(p, "],\"next\":\"", sizeof("],\"next\":\"") - 1);
    p = ngx_http_modelreg_cursor_print(p, next);
    p = ngx_cpymem(p, "\"}", 2);

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &ngx_http_modelreg_json_type,
                                  data, p - data);
}


/* a long poll with nothing yet: up to "wait" seconds from its first read */

static ngx_int_t
ngx_http_modelreg_events_wait(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e)
{
    ngx_int_t  rc;

    rc = ngx_http_modelreg_feed_wait(&e->w);

    if (rc == NGX_BUSY) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "Too many clients wait for "
                                            "events: try again later.");
    }

    if (rc != NGX_OK) {
        /* the worker stops: what there is, now */
        return ngx_http_modelreg_events_answer(r, e, NULL);
    }

    if (!e->stream) {
        if (e->start == 0) {
            e->start = ngx_current_msec;
        }

        ngx_add_timer(&e->timer, e->args.wait * 1000
                                 - ngx_min(e->args.wait * 1000,
                                           ngx_current_msec - e->start));
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_events_timeout(ngx_event_t *ev)
{
    ngx_http_request_t          *r;
    ngx_http_modelreg_events_t  *e;

    r = ev->data;
    e = (ngx_http_modelreg_events_t *) ((u_char *) ev
                           - offsetof(ngx_http_modelreg_events_t, timer));

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg events: the wait is over");

    ngx_http_modelreg_feed_unwait(&e->w);

    /* the wait's end: no event, the cursor as it was */
    ngx_http_modelreg_finish(r, ngx_http_modelreg_events_answer(r, e, NULL));
}


/* ---- Server-Sent Events --------------------------------------------- */


static ngx_int_t
ngx_http_modelreg_events_stream(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e, ngx_http_modelreg_feed_page_t *page)
{
    u_char                          *p;
    size_t                           len;
    ngx_int_t                        rc;
    ngx_buf_t                       *b;
    ngx_uint_t                       i;
    ngx_http_modelreg_feed_event_t  *ev;
    ngx_http_modelreg_main_conf_t   *mcf;

    if (page == NULL) {
        /* the worker stops: the client comes back with Last-Event-ID */
        return ngx_http_modelreg_events_end(r, e);
    }

    if (!e->streaming) {
        if (page->n == 0 && !page->more) {

            /* the first wait: past the limit, a 503 rather than a stream */

            e->args.since = page->next;

            rc = ngx_http_modelreg_feed_wait(&e->w);

            if (rc == NGX_BUSY) {
                return ngx_http_modelreg_send_error(r,
                                           NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "Too many clients wait for "
                                           "events: try again later.");
            }

            if (rc != NGX_OK) {
                return ngx_http_modelreg_db_unavailable(r);
            }

            if (ngx_http_modelreg_events_headers(r, e) != NGX_OK) {
                ngx_http_modelreg_feed_unwait(&e->w);
                ngx_http_modelreg_finish(r, NGX_DONE);
                return ngx_http_modelreg_end(r, NGX_ERROR);
            }

            return NGX_DONE;
        }

        if (ngx_http_modelreg_events_headers(r, e) != NGX_OK) {
            return ngx_http_modelreg_end(r, NGX_ERROR);
        }
    }

    if (page->n) {
        len = 0;

        for (i = 0; i < page->n; i++) {
            ev = &page->events[i];
            len += sizeof("id: \nevent: \ndata: \n\n") - 1
                   + NGX_HTTP_MODELREG_CURSOR_LEN + ev->action.len
                   + ev->json.len;
        }

        b = ngx_http_modelreg_events_buf(r, e);
        if (b == NULL) {
            return ngx_http_modelreg_end(r, NGX_ERROR);
        }

        /* a block of its own, freed once sent: a stream keeps none */
        b->start = ngx_pmemalign(r->pool, len, NGX_ALIGNMENT);
        if (b->start == NULL) {
            return ngx_http_modelreg_end(r, NGX_ERROR);
        }

        p = b->start;

        for (i = 0; i < page->n; i++) {
            ev = &page->events[i];

            p = ngx_cpymem(p, "id: ", 4);
            p = ngx_http_modelreg_cursor_print(p, &ev->cursor);
            p = ngx_sprintf(p, "\nevent: %V\ndata: %V\n\n", &ev->action,
                            &ev->json);
        }

        b->pos = b->start;
        b->last = p;
        b->end = b->start + len;
        b->temporary = 1;

        rc = ngx_http_modelreg_events_write(r, e, b);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    e->args.since = page->next;

    if (page->more) {
        /* a page cut short: the rest at once */

        rc = ngx_http_modelreg_feed_read(&e->w);

        if (rc == NGX_DONE) {
            return NGX_DONE;
        }

        return ngx_http_modelreg_events_end(r, e);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (ngx_current_msec - e->start >= mcf->events_lifetime) {
        return ngx_http_modelreg_events_end(r, e);
    }

    if (ngx_http_modelreg_feed_wait(&e->w) != NGX_OK) {
        return ngx_http_modelreg_events_end(r, e);
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_modelreg_events_headers(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e)
{
    ngx_int_t         rc;
    ngx_str_t         v;
    ngx_buf_t        *b;
    ngx_chain_t       out;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    r->headers_out.content_type = ngx_http_modelreg_events_sse_type;
    r->headers_out.content_type_len = ngx_http_modelreg_events_sse_type.len;
    r->allow_ranges = 0;

    ngx_str_set(&v, "no-cache");

    if (ngx_http_modelreg_header_out(r, "Cache-Control", &v) == NULL) {
        return NGX_ERROR;
    }

    /* for a proxy in front of this nginx: nginx's own never buffers it */
    ngx_str_set(&v, "no");

    if (ngx_http_modelreg_header_out(r, "X-Accel-Buffering", &v) == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return NGX_ERROR;
    }

    e->streaming = 1;
    e->start = ngx_current_msec;
    r->write_event_handler = ngx_http_modelreg_events_writable;

    if (ngx_http_modelreg_events_streams.next == NULL) {
        ngx_queue_init(&ngx_http_modelreg_events_streams);
    }

    if (!ngx_http_modelreg_events_ticker.timer_set) {

        ngx_http_modelreg_events_ticker.handler =
                                          ngx_http_modelreg_events_tick;
        ngx_http_modelreg_events_ticker.data =
                                          &ngx_http_modelreg_events_streams;
        ngx_http_modelreg_events_ticker.log = ngx_cycle->log;
        ngx_http_modelreg_events_ticker.cancelable = 1;

        ngx_add_timer(&ngx_http_modelreg_events_ticker,
                      NGX_HTTP_MODELREG_EVENTS_TICK);
    }

    ngx_queue_insert_tail(&ngx_http_modelreg_events_streams, &e->queue);
    e->listed = 1;

    /* how long the client waits before it reconnects */

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&v, "retry: 1000\n\n");

    b->pos = v.data;
    b->last = v.data + v.len;
    b->memory = 1;
    b->flush = 1;

    out.buf = b;
    out.next = NULL;

    e->last = ngx_current_msec;

    return ngx_http_output_filter(r, &out) == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * Out at once (flush); what the client has not taken is counted, and past
 * the backlog the stream is cut off.  NGX_OK, or the request's end.
 */

static ngx_int_t
ngx_http_modelreg_events_write(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e, ngx_buf_t *b)
{
    ngx_int_t                       rc;
    ngx_chain_t                     out, *cl;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    b->flush = 1;
    e->last = ngx_current_msec;
    e->unsent += b->last - b->pos;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return ngx_http_modelreg_end(r, NGX_ERROR);
    }

    cl->buf = b;
    cl->next = e->busy;
    e->busy = cl;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    ngx_http_modelreg_events_sent(r, e);

    if (rc == NGX_ERROR) {
        return ngx_http_modelreg_end(r, NGX_ERROR);
    }

    if (e->unsent > mcf->events_backlog) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "modelreg: an event stream is cut off: its client "
                      "has not read %O bytes (modelreg_events backlog=%O)",
                      e->unsent, mcf->events_backlog);

        return ngx_http_modelreg_end(r, NGX_ERROR);
    }

    return NGX_OK;
}


/* our buffers that nginx has sent are freed, the rest counted */

static void
ngx_http_modelreg_events_sent(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e)
{
    ngx_chain_t  *cl, **ll;

    e->unsent = 0;

    for (ll = &e->busy, cl = e->busy; cl; cl = *ll) {

        if (ngx_buf_size(cl->buf) == 0) {
            if (cl->buf->temporary) {
                ngx_pfree(r->pool, cl->buf->start);
            }

            *ll = cl->next;
            cl->next = e->free;
            e->free = cl;
            continue;
        }

        e->unsent += ngx_buf_size(cl->buf);
        ll = &cl->next;
    }
}


/* a buffer (and its link) of one sent before: a stream's memory is flat */

static ngx_buf_t *
ngx_http_modelreg_events_buf(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (e->free == NULL) {
        return ngx_calloc_buf(r->pool);
    }

    cl = e->free;
    e->free = cl->next;
    b = cl->buf;
    ngx_free_chain(r->pool, cl);

    ngx_memzero(b, sizeof(ngx_buf_t));

    return b;
}


static void
ngx_http_modelreg_events_writable(ngx_http_request_t *r)
{
    ngx_http_modelreg_events_t  *e;

    e = ngx_http_get_module_ctx(r, ngx_http_modelreg_module)
        ? ((ngx_http_modelreg_ctx_t *)
           ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data
        : NULL;

    if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
        (void) ngx_http_modelreg_end(r, NGX_ERROR);
        return;
    }

    if (e) {
        ngx_http_modelreg_events_sent(r, e);
    }
}


/* the stream's last chunk; the request's end */

static ngx_int_t
ngx_http_modelreg_events_end(ngx_http_request_t *r,
    ngx_http_modelreg_events_t *e)
{
    ngx_http_modelreg_feed_unwait(&e->w);

    if (e->listed) {
        ngx_queue_remove(&e->queue);
        e->listed = 0;
    }

    if (!e->streaming) {
        return ngx_http_modelreg_db_unavailable(r);
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg events: the stream ends");

    return ngx_http_modelreg_end(r, ngx_http_send_special(r, NGX_HTTP_LAST));
}


/* every stream's comment line, and the end of those past their time */

static void
ngx_http_modelreg_events_tick(ngx_event_t *ev)
{
    ngx_buf_t                      *b;
    ngx_queue_t                    *q, *next;
    ngx_http_request_t             *r;
    ngx_http_modelreg_events_t     *e;
    ngx_http_modelreg_main_conf_t  *mcf;

    static u_char  comment[] = ": keep-alive\n\n";

    for (q = ngx_queue_head(&ngx_http_modelreg_events_streams);
         q != ngx_queue_sentinel(&ngx_http_modelreg_events_streams);
         q = next)
    {
        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_http_modelreg_events_t, queue);
        r = e->w.r;

        mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

        if (e->w.waiting
            && (ngx_current_msec - e->start >= mcf->events_lifetime
                || ngx_exiting || ngx_quit || ngx_terminate))
        {
            /* the end of its wait, as the feed would end it */
            ngx_http_modelreg_feed_unwait(&e->w);
            ngx_http_modelreg_finish(r, ngx_http_modelreg_events_end(r, e));
            continue;
        }

        if (ngx_current_msec - e->last < NGX_HTTP_MODELREG_EVENTS_TICK) {
            continue;
        }

        b = ngx_http_modelreg_events_buf(r, e);
        if (b == NULL) {
            continue;
        }

        b->pos = comment;
        b->last = comment + sizeof(comment) - 1;
        b->memory = 1;

        if (ngx_http_modelreg_events_write(r, e, b) != NGX_OK) {
            /* cut off: ended (its cleanup ran), closed now */
            ngx_http_run_posted_requests(r->connection);
        }
    }

    if (!ngx_queue_empty(&ngx_http_modelreg_events_streams)) {
        ngx_add_timer(ev, NGX_HTTP_MODELREG_EVENTS_TICK);
    }
}


/* the request ends, however (a client gone, a reload): it no longer waits */

static void
ngx_http_modelreg_events_cleanup(void *data)
{
    ngx_http_modelreg_events_t  *e = data;

    ngx_http_modelreg_feed_unwait(&e->w);

    if (e->timer.timer_set) {
        ngx_del_timer(&e->timer);
    }

    if (e->listed) {
        ngx_queue_remove(&e->queue);
        e->listed = 0;
    }

    if (ngx_queue_empty(&ngx_http_modelreg_events_streams)
        && ngx_http_modelreg_events_ticker.timer_set)
    {
        ngx_del_timer(&ngx_http_modelreg_events_ticker);
    }
}
