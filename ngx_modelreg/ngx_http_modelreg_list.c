/*
 * Copyright (C) modelreg authors
 *
 * Lists (GET /models, GET /audit): filters as bound parameters, keyset
 * pages (a page token names the last row shown, so inserts never shift a
 * page), a Link header to the next page.  The routes write the statement
 * (models_list.c, audit.c); this runs it and writes the answer.
 *
 * Answers are streamed: a model can hold megabytes of JSON, and a page of
 * them must not be held by the worker, neither by libpq nor by us.  The
 * statement cuts each row's JSON into pieces of at most
 * NGX_HTTP_MODELREG_LIST_PIECE bytes, one result row each, read in
 * libpq's single-row mode, so that what libpq buffers does not grow with
 * a row; the pieces are copied into a few reused output buffers.  When
 * the client does not take them as fast, the database connection is
 * paused (ngx_http_modelreg_pg_resume() on the next write event); the
 * query's timeout bounds the whole answer, so a client too slow to read
 * a page within it has its connection closed (and the pool's connection
 * is closed and reopened).
 *
 * The headers need the page's last key (for the Link) before the first
 * byte of the body: window functions over the page (at most 1001 rows,
 * after its LIMIT) put it in every row, so the first row has it.  An
 * answer of up to NGX_HTTP_MODELREG_LIST_WHOLE bytes is sent whole, with a
 * Content-Length, when the statement ends; a longer one goes out chunked
 * as the buffers fill.
 *
 * A route that sets l->cached (GET /models) has its whole answers kept in
 * the read cache (cache.c), by the location's base and the arguments
 * (decoded, in a canonical order), until any model changes: a page read
 * again is not read from the database.  Streamed answers (over
 * NGX_HTTP_MODELREG_LIST_WHOLE) are not kept, nor empty ones, nor errors.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_list.h"


static ngx_int_t ngx_http_modelreg_list_start(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, off_t length);
static ngx_int_t ngx_http_modelreg_list_row(ngx_http_modelreg_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_modelreg_list_keys(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, PGresult *res);
static uint64_t ngx_http_modelreg_list_int(char *p, ngx_uint_t n);
static ngx_int_t ngx_http_modelreg_list_write(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, u_char *data, size_t len);
static ngx_int_t ngx_http_modelreg_list_flush(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, ngx_uint_t last);
static ngx_int_t ngx_http_modelreg_list_wait(ngx_http_request_t *r);
static void ngx_http_modelreg_list_writer(ngx_http_request_t *r);
static void ngx_http_modelreg_list_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_list_keep(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l);


/*
 * The answer from the cache, if it has it: what the handler returns (an
 * answer sent), or NGX_DECLINED to run the statement, whose answer is
 * then kept under l->cache_key.  Values: the Link's length (a uint32_t),
 * the Link, the body.
 */

ngx_int_t
ngx_http_modelreg_list_cached(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l)
{
    uint32_t                  n;
    ngx_str_t                 v, link;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    /* the key: the page's canonical Link ("<base/models?...>"), the same
     * for every spelling of the same arguments */

    if (ngx_http_modelreg_list_args_link(r->pool, &l->args, &ctx->base,
                                         l->route, &l->args.token,
                                         &l->cache_key)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_modelreg_cache_list_get(r, &l->cache_key, &v, &l->cache_gen)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (v.len < sizeof(uint32_t)) {
        return NGX_DECLINED;
    }

    ngx_memcpy(&n, v.data, sizeof(uint32_t));

    if (n > v.len - sizeof(uint32_t)) {
        return NGX_DECLINED;
    }

    link.data = v.data + sizeof(uint32_t);
    link.len = n;

    if (link.len
        && ngx_http_modelreg_header_out(r, "Link", &link) == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &ngx_http_modelreg_json_type,
                                  link.data + link.len,
                                  v.len - sizeof(uint32_t) - link.len);
}


/*
 * Runs the route's statement "q" (its rows as described in list.h) and
 * answers with what it returns: NGX_DONE, or the database's 503.
 */

ngx_int_t
ngx_http_modelreg_list_run(ngx_http_request_t *r, ngx_http_modelreg_list_t *l,
    ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    q->handler = ngx_http_modelreg_list_done;
    q->data = r;
    q->row = ngx_http_modelreg_list_row;
    q->binary = 1;

    l->query = q;
    ctx->data = l;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg list: %s limit:%ui token:\"%V\"",
                   l->route, l->args.limit, &l->args.token);

    return ngx_http_modelreg_query_start(r, q);
}


/*
 * The list's arguments (list_args.c) into l->args; a fault is answered.
 * NGX_DECLINED: go on; anything else ends the request (an answer sent,
 * or a status for nginx to send): an answer sent can return NGX_OK, so
 * that cannot mean "go on".
 */

ngx_int_t
ngx_http_modelreg_list_args(ngx_http_request_t *r, ngx_http_modelreg_list_t *l)
{
    ngx_int_t  rc;
    ngx_str_t  msg;

    rc = ngx_http_modelreg_list_args_parse(r->pool, &r->args, &l->args,
                                           &msg);

    if (rc == NGX_OK) {
        return NGX_DECLINED;
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_send_error(r, rc, "%V", &msg);
}


/*
 * A row of the statement: the page's keys (first row) and a piece of a
 * row's JSON, written into the answer.  NGX_AGAIN when the client has
 * not taken the buffers already sent.
 */

static ngx_int_t
ngx_http_modelreg_list_row(ngx_http_modelreg_pg_query_t *q, PGresult *res)
{
    u_char                     sep, *piece;
    size_t                     len, size;
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_modelreg_list_t  *l;

    r = q->data;
    l = ((ngx_http_modelreg_ctx_t *)
         ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data;

    if (PQnfields(res) != 5
        || PQgetisnull(res, 0, 0) || PQgetlength(res, 0, 0) != 1
        || PQgetisnull(res, 0, 3) || PQgetlength(res, 0, 3) != 4
        || PQgetisnull(res, 0, 4))
    {
        goto invalid;
    }

    if (!l->keys) {
        if (ngx_http_modelreg_list_keys(r, l, res) != NGX_OK) {
            goto failed;
        }

        l->keys = 1;
    }

    piece = (u_char *) PQgetvalue(res, 0, 4);
    len = PQgetlength(res, 0, 4);

    if (l->left == 0) {

        /* a row's first piece: "[" or "," before it */

        size = ngx_http_modelreg_list_int(PQgetvalue(res, 0, 3), 4);

        if (size == 0 || size > 0x7fffffff) {
            goto invalid;
        }

        sep = l->rows ? ',' : '[';

        if (ngx_http_modelreg_list_write(r, l, &sep, 1) != NGX_OK) {
            goto failed;
        }

        l->rows++;
        l->left = size;
    }

    if (len == 0 || len > l->left) {
        goto invalid;
    }

    l->left -= len;

    if (ngx_http_modelreg_list_write(r, l, piece, len) != NGX_OK) {
        goto failed;
    }

    if (l->out == NULL
        || (!l->streaming && l->length <= NGX_HTTP_MODELREG_LIST_WHOLE))
    {
        return NGX_OK;
    }

    rc = ngx_http_modelreg_list_flush(r, l, 0);

    if (rc == NGX_AGAIN) {
        rc = ngx_http_modelreg_list_wait(r);
    }

    if (rc == NGX_ERROR) {
        goto failed;
    }

    return rc;

invalid:

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "modelreg: unexpected list row");

failed:

    l->failed = 1;

    return NGX_ERROR;
}


/* the first row's keys: the Link to the next page, if there is one */

static ngx_int_t
ngx_http_modelreg_list_keys(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, PGresult *res)
{
    int64_t                   key;
    ngx_str_t                 token, id;
    ngx_http_modelreg_ctx_t  *ctx;

    if (*PQgetvalue(res, 0, 0) == 0) {
        return NGX_OK;
    }

    if (PQgetisnull(res, 0, 1) || PQgetlength(res, 0, 1) != 8) {
        return NGX_ERROR;
    }

    key = (int64_t) ngx_http_modelreg_list_int(PQgetvalue(res, 0, 1), 8);

    id.len = PQgetisnull(res, 0, 2) ? 0 : PQgetlength(res, 0, 2);
    id.data = (u_char *) PQgetvalue(res, 0, 2);

    token.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1 + id.len);
    if (token.data == NULL) {
        return NGX_ERROR;
    }

    token.len = l->token_encode(token.data, key, &id) - token.data;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    return ngx_http_modelreg_list_args_link(r->pool, &l->args, &ctx->base,
                                            l->route, &token, &l->link);
}


/* a big-endian integer of "n" bytes (binary results) */

static uint64_t
ngx_http_modelreg_list_int(char *p, ngx_uint_t n)
{
    uint64_t  v;

    for (v = 0; n; n--) {
        v = (v << 8) | (u_char) *p++;
    }

    return v;
}


/* into the buffers; a full one goes to l->out, to be sent */

static ngx_int_t
ngx_http_modelreg_list_write(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, u_char *data, size_t len)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (l->discard) {
        return NGX_OK;
    }

    l->length += len;

    while (len) {

        if (l->cur && l->cur->buf->last == l->cur->buf->end) {
            *l->last_out = l->cur;
            l->last_out = &l->cur->next;
            l->cur = NULL;
        }

        if (l->cur == NULL) {
            cl = ngx_chain_get_free_buf(r->pool, &l->free);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = cl->buf;

            if (b->start == NULL) {
                b->start = ngx_palloc(r->pool, NGX_HTTP_MODELREG_LIST_BUF);
                if (b->start == NULL) {
                    return NGX_ERROR;
                }

                b->end = b->start + NGX_HTTP_MODELREG_LIST_BUF;
                b->pos = b->start;
                b->last = b->start;
                b->temporary = 1;
                b->tag = (ngx_buf_tag_t) &ngx_http_modelreg_module;
            }

            if (l->last_out == NULL) {
                l->last_out = &l->out;
            }

            l->cur = cl;
        }

        b = l->cur->buf;
        n = ngx_min(len, (size_t) (b->end - b->last));

        b->last = ngx_cpymem(b->last, data, n);
        data += n;
        len -= n;
    }

    return NGX_OK;
}


/* the headers: a 200, chunked when its "length" is not known (-1) */

static ngx_int_t
ngx_http_modelreg_list_start(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, off_t length)
{
    ngx_int_t                 rc;
    ngx_chain_t              *cl;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    ctx->own_reply = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_modelreg_json_type;
    r->headers_out.content_type_len = ngx_http_modelreg_json_type.len;
    r->headers_out.content_length_n = length;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg list: headers, length:%O (-1: chunked)", length);

    if (l->link.len
        && ngx_http_modelreg_header_out(r, "Link", &l->link) == NULL)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    l->streaming = 1;

    if (!r->header_only) {
        return NGX_OK;
    }

    /* HEAD: the rest of the statement is read for nothing */

    l->discard = 1;

    for (cl = l->out; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->start;
        cl->buf->last = cl->buf->start;
    }

    if (l->cur) {
        l->cur->buf->last = l->cur->buf->start;
    }

    return NGX_OK;
}


/*
 * Sends the full buffers (and with "last" the rest and the end).  NGX_OK:
 * all taken; NGX_AGAIN: the client has not taken them yet.
 */

static ngx_int_t
ngx_http_modelreg_list_flush(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, ngx_uint_t last)
{
    ngx_int_t          rc;
    ngx_buf_t         *b;
    ngx_chain_t       *cl;
    ngx_connection_t  *c;

    c = r->connection;

    if (!l->streaming
        && ngx_http_modelreg_list_start(r, l, last ? l->length : -1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (l->discard) {
        return NGX_OK;
    }

    if (last) {
        cl = l->cur;

        if (cl == NULL) {
            cl = ngx_chain_get_free_buf(r->pool, &l->free);
            if (cl == NULL) {
                return NGX_ERROR;
            }
        }

        b = cl->buf;
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;

        if (l->last_out == NULL) {
            l->last_out = &l->out;
        }

        *l->last_out = cl;
        l->last_out = &cl->next;
        l->cur = NULL;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "modelreg list: send %p", l->out);

    rc = ngx_http_output_filter(r, l->out);

    ngx_chain_update_chains(r->pool, &l->free, &l->busy, &l->out,
                            (ngx_buf_tag_t) &ngx_http_modelreg_module);
    l->last_out = &l->out;

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (l->busy || (c->buffered & NGX_HTTP_WRITE_BUFFERED)) {
        return NGX_AGAIN;
    }

    return NGX_OK;
}


/* until the client's socket takes more (as ngx_http_writer() waits) */

static ngx_int_t
ngx_http_modelreg_list_wait(ngx_http_request_t *r)
{
    ngx_event_t               *wev;
    ngx_http_core_loc_conf_t  *clcf;

    wev = r->connection->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    r->write_event_handler = ngx_http_modelreg_list_writer;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg list: paused until the client takes more");

    if (!wev->delayed) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/* the client's write event while the statement is paused for it */

static void
ngx_http_modelreg_list_writer(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_modelreg_list_t  *l;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    wev = c->write;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    l = ((ngx_http_modelreg_ctx_t *)
         ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "modelreg list: writer");

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_modelreg_finish(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_modelreg_finish(r, NGX_ERROR);
        }

        return;
    }

    rc = ngx_http_modelreg_list_flush(r, l, 0);

    if (rc == NGX_ERROR) {
        ngx_http_modelreg_finish(r, NGX_ERROR);
        return;
    }

    if (rc == NGX_AGAIN) {
        if (ngx_http_modelreg_list_wait(r) != NGX_AGAIN) {
            ngx_http_modelreg_finish(r, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    /* from the event loop: nothing runs here after this */

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "modelreg list: resumed");

    ngx_http_modelreg_pg_resume(l->query);
}


/* the statement is over: the end of the answer, or all of a short one */

static void
ngx_http_modelreg_list_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                  rc;
    ngx_uint_t                 level;
    ngx_http_request_t        *r;
    ngx_http_modelreg_list_t  *l;

    r = q->data;
    l = ((ngx_http_modelreg_ctx_t *)
         ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data;

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg list: %s done, status:%ui rows:%ui bytes:%O "
                   "streaming:%d", l->route, q->status, l->rows, l->length,
                   l->streaming);

    if (q->status != NGX_HTTP_MODELREG_PG_OK || l->failed) {

        if (l->streaming) {
            /* the client sees the answer cut short (or has gone) */
            level = r->connection->error ? NGX_LOG_INFO : NGX_LOG_ERR;
            ngx_log_error(level, r->connection->log, 0,
                          "modelreg: %s answer cut short", l->route);
            ngx_http_modelreg_finish(r, NGX_ERROR);
            return;
        }

        if (l->failed) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (l->invalid
            && q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR
            && ngx_strncmp(q->sqlstate, "22", 2) == 0)
        {
            ngx_http_modelreg_finish(r,
                ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST, "%s",
                                             l->invalid));
            return;
        }

        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    if (l->rows == 0 && !l->streaming) {
        if (l->not_found) {
            ngx_http_modelreg_finish(r,
                ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                             "Model(s) not found."));
            return;
        }

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                   &ngx_http_modelreg_json_type,
                                   (u_char *) "[]", 2));
        return;
    }

    if (l->left
        || ngx_http_modelreg_list_write(r, l, (u_char *) "]", 1) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: %s answer incomplete", l->route);

        ngx_http_modelreg_finish(r, l->streaming
                                  ? NGX_ERROR : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (l->cached && !l->streaming) {
        ngx_http_modelreg_list_keep(r, l);
    }

    /* the rest, or all of a short answer (then with a Content-Length) */

    rc = ngx_http_modelreg_list_flush(r, l, 1);

    /* what the client has not taken yet is nginx's to send now */

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_modelreg_finish(r, rc == NGX_ERROR ? NGX_ERROR : NGX_OK);
}


/* a whole answer, before it is sent: into the cache (see list_cached()) */

static void
ngx_http_modelreg_list_keep(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l)
{
    u_char       *p;
    size_t        size;
    uint32_t      n;
    ngx_str_t     v;
    ngx_chain_t  *cl;

    if (l->cache_gen == 0) {
        return;
    }

    size = l->cur ? (size_t) (l->cur->buf->last - l->cur->buf->pos) : 0;

    for (cl = l->out; cl; cl = cl->next) {
        size += cl->buf->last - cl->buf->pos;
    }

    if (size != (size_t) l->length) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "modelreg: %s answer of %O bytes held %uz",
                      l->route, l->length, size);
        return;
    }

    n = (uint32_t) l->link.len;
    v.len = sizeof(uint32_t) + l->link.len + size;

    v.data = ngx_pnalloc(r->pool, v.len);
    if (v.data == NULL) {
        return;
    }

    p = ngx_cpymem(v.data, &n, sizeof(uint32_t));
    p = ngx_cpymem(p, l->link.data, l->link.len);

    for (cl = l->out; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    if (l->cur) {
        ngx_memcpy(p, l->cur->buf->pos, l->cur->buf->last - l->cur->buf->pos);
    }

    ngx_http_modelreg_cache_list_put(&l->cache_key, &v, l->cache_gen);
}
