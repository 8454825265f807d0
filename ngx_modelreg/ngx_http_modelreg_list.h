/*
 * Copyright (C) modelreg authors
 *
 * A list answered from one statement, streamed in pages (list.c), for
 * the routes that list: GET /models (models_list.c), GET /audit
 * (audit.c).
 */


#ifndef _NGX_HTTP_MODELREG_LIST_H_INCLUDED_
#define _NGX_HTTP_MODELREG_LIST_H_INCLUDED_


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_list_args.h"


/*
 * The bytes of a row's JSON per result row, an output buffer's size (both
 * under glibc's 64 KiB, where every free() may trim the heap: brk() twice
 * a request), and the longest answer sent whole, with a Content-Length.
 */
#define NGX_HTTP_MODELREG_LIST_PIECE     32768
#define NGX_HTTP_MODELREG_LIST_BUF       32768
#define NGX_HTTP_MODELREG_LIST_WHOLE     65536


typedef struct ngx_http_modelreg_list_s  ngx_http_modelreg_list_t;

/* the page token naming the row with "key" (column 1) and "id" (2) */
typedef u_char *(*ngx_http_modelreg_list_token_pt)(u_char *dst, int64_t key,
    ngx_str_t *id);


struct ngx_http_modelreg_list_s {
    /* the route's: what it lists (and args.filters) */
    const char                       *route;
    ngx_http_modelreg_list_token_pt   token_encode;
    const char                       *invalid;  /* the 400 when PostgreSQL
                                                   rejects a text (22...) */
    unsigned                          not_found:1; /* empty, filtered: 404 */
    unsigned                          cached:1;    /* pages in the cache */

    /* the request's arguments */
    ngx_http_modelreg_list_args_t     args;

    /* the page's key in the cache, and its generation when read */
    ngx_str_t                         cache_key;
    uint64_t                          cache_gen;

    /* the answer */
    ngx_http_modelreg_pg_query_t     *query;
    ngx_str_t                         link;
    ngx_chain_t                      *cur;      /* the buffer being filled */
    ngx_chain_t                      *out;      /* full, not yet sent */
    ngx_chain_t                     **last_out;
    ngx_chain_t                      *free;
    ngx_chain_t                      *busy;
    size_t                            left;     /* of this row's JSON */
    off_t                             length;   /* of the answer so far */
    ngx_uint_t                        rows;
    unsigned                          keys:1;      /* the first row was read */
    unsigned                          streaming:1; /* the headers are sent */
    unsigned                          discard:1;   /* HEAD: no body */
    unsigned                          failed:1;
};


/*
 * Every list statement returns, a row each piece:
 * 0 bool: a row follows the page (there is a next page);
 * 1 the key of the page's last row (NULL if the page is short): models:
 *   its registration time (timestamptz, in binary the microseconds since
 *   2000-01-01, made Unix time here rather than by a SQL function on
 *   every row); audit: its id (int8);
 * 2 text: models: the id of the page's last row;
 * 3 int4: the bytes of this row's JSON;
 * 4 bytea: the next piece of it (generate_series() yields them in order).
 * The page is the inner SELECT, LIMIT n + 1, with each row's JSON; window
 * functions over it give 0-2, so PostgreSQL holds the page (in work_mem,
 * then a temporary file) before the first row, as it held it for libpq
 * before.  Fetching the JSON after the window instead (by ctid, in a
 * LATERAL) made it as it was sent, but cost every list ~30% more of the
 * database's CPU.  The final ORDER BY is the window's: no sort.
 */

#define NGX_HTTP_MODELREG_LIST_PIECES                                          \
    (ngx_uint_t) NGX_HTTP_MODELREG_LIST_PIECE,                                \
    (ngx_uint_t) NGX_HTTP_MODELREG_LIST_PIECE,                                \
    (ngx_uint_t) NGX_HTTP_MODELREG_LIST_PIECE


ngx_int_t ngx_http_modelreg_list_args(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l);
ngx_int_t ngx_http_modelreg_list_cached(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l);
ngx_int_t ngx_http_modelreg_list_run(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, ngx_http_modelreg_pg_query_t *q);


#endif /* _NGX_HTTP_MODELREG_LIST_H_INCLUDED_ */
