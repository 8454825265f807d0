/*
 * Copyright (C) modelreg authors
 *
 * GET /models and GET /audit: filters as bound parameters, keyset pages
 * (a page token names the last row shown, so inserts never shift a page),
 * a Link header to the next page.
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
 */


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_LIMIT_DEFAULT  100
#define NGX_HTTP_MODELREG_LIMIT_MAX      1000

/*
 * The bytes of a row's JSON per result row, an output buffer's size (both
 * under glibc's 64 KiB, where every free() may trim the heap: brk() twice
 * a request), and the longest answer sent whole, with a Content-Length.
 */
#define NGX_HTTP_MODELREG_LIST_PIECE     32768
#define NGX_HTTP_MODELREG_LIST_BUF       32768
#define NGX_HTTP_MODELREG_LIST_WHOLE     65536


typedef struct {
    const char  *key;
    unsigned     substring:1;
} ngx_http_modelreg_filter_t;


typedef struct {
    ngx_str_t                      value[16];
    ngx_uint_t                     limit;
    ngx_str_t                      limit_text;
    ngx_str_t                      token;
    ngx_uint_t                     filtered;

    /* the answer */
    ngx_http_modelreg_filter_t    *filters;
    const char                    *route;
    ngx_http_modelreg_pg_query_t  *query;
    ngx_str_t                      link;
    ngx_chain_t                   *cur;      /* the buffer being filled */
    ngx_chain_t                   *out;      /* full, not yet sent */
    ngx_chain_t                  **last_out;
    ngx_chain_t                   *free;
    ngx_chain_t                   *busy;
    size_t                         left;     /* of the current row's JSON */
    off_t                          length;   /* of the answer so far */
    ngx_uint_t                     rows;
    unsigned                       keys:1;      /* the first row was read */
    unsigned                       streaming:1; /* the headers are sent */
    unsigned                       discard:1;   /* HEAD: no body */
    unsigned                       failed:1;
    unsigned                       not_found:1; /* empty and filtered: 404 */
    unsigned                       audit:1;
} ngx_http_modelreg_list_t;


static ngx_http_modelreg_filter_t  ngx_http_modelreg_model_filters[] = {
    { "name", 1 },
    { "project_name", 1 },
    { "category", 1 },
    { "architecture", 1 },
    { "precision", 1 },
    { "version", 0 },
    { "origin", 0 },
    { "project_id", 0 },
    { "format", 0 },
    { "target_device", 0 },
    { NULL, 0 }
};


static ngx_http_modelreg_filter_t  ngx_http_modelreg_audit_filters[] = {
    { "model_id", 0 },
    { "action", 0 },
    { "since", 0 },
    { NULL, 0 }
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

static const char  ngx_http_modelreg_models_head[] =
    "SELECT w.more, w.lk, w.lid, octet_length(w.j),"
    " substring(w.j FROM generate_series(0, (octet_length(w.j) - 1) / %ui)"
    " * %ui + 1 FOR %ui)"
    " FROM (SELECT p.j, p.registered_at, p.id,"
    " nth_value(p.id, %ui) OVER w IS NOT NULL more,"
    " nth_value(p.registered_at, %ui) OVER w lk,"
    " nth_value(p.id, %ui) OVER w lid, row_number() OVER w rn"
    " FROM (SELECT textsend(modelreg_model_json(m, $1)::text) j,"
    " m.registered_at, m.id FROM models m WHERE true";

static const char  ngx_http_modelreg_models_tail[] =
    " ORDER BY m.registered_at, m.id LIMIT %ui) p"
    " WINDOW w AS (ORDER BY p.registered_at, p.id"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) w"
    " WHERE w.rn <= %ui ORDER BY w.registered_at, w.id%Z";

static const char  ngx_http_modelreg_audit_head[] =
    "SELECT w.more, w.lk, NULL::text, octet_length(w.j),"
    " substring(w.j FROM generate_series(0, (octet_length(w.j) - 1) / %ui)"
    " * %ui + 1 FOR %ui)"
    " FROM (SELECT p.j, p.k,"
    " nth_value(p.k, %ui) OVER w IS NOT NULL more,"
    " nth_value(p.k, %ui) OVER w lk, row_number() OVER w rn"
    " FROM (SELECT textsend(json_build_object('id', e.id,"
    " 'time', modelreg_ts(e.time), 'action', e.action,"
    " 'model_id', e.model_id, 'actor', e.actor,"
    " 'request_id', e.request_id, 'remote_addr', e.remote_addr,"
    " 'status', e.status, 'details', e.details)::text) j,"
    " e.id k FROM audit_events e WHERE true";

static const char  ngx_http_modelreg_audit_tail[] =
    " ORDER BY e.id DESC LIMIT %ui) p"
    " WINDOW w AS (ORDER BY p.k DESC"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) w"
    " WHERE w.rn <= %ui ORDER BY w.k DESC%Z";

#define NGX_HTTP_MODELREG_LIST_PIECES                                          \
    (ngx_uint_t) NGX_HTTP_MODELREG_LIST_PIECE,                                \
    (ngx_uint_t) NGX_HTTP_MODELREG_LIST_PIECE,                                \
    (ngx_uint_t) NGX_HTTP_MODELREG_LIST_PIECE


static ngx_int_t ngx_http_modelreg_list_args(ngx_http_request_t *r,
    ngx_http_modelreg_filter_t *filters, ngx_http_modelreg_list_t *l);
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
static ngx_int_t ngx_http_modelreg_list_link(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, ngx_str_t *token);
static u_char *ngx_http_modelreg_arg_encode(u_char *p, ngx_str_t *v);


/* GET /models */

ngx_int_t
ngx_http_modelreg_models_list(ngx_http_request_t *r)
{
    u_char                         *sql, *p;
    size_t                          len;
    int64_t                         us;
    ngx_int_t                       rc;
    ngx_str_t                       id, s;
    ngx_uint_t                      i, n;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_list_t       *l;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    l = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_list_t));
    if (l == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_modelreg_list_args(r, ngx_http_modelreg_model_filters, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (l->token.len
        && ngx_http_modelreg_token_decode(&l->token, &us, &id) != NGX_OK)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid page_token.");
    }

    len = sizeof(ngx_http_modelreg_models_head)
          + sizeof(ngx_http_modelreg_models_tail) + 128;

    for (i = 0; ngx_http_modelreg_model_filters[i].key; i++) {
        len += 64;
    }

    sql = ngx_pnalloc(r->pool, len);
    q = ngx_http_modelreg_query(r, NULL, 16, ngx_http_modelreg_list_done);

    if (sql == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(sql, ngx_http_modelreg_models_head,
                    NGX_HTTP_MODELREG_LIST_PIECES,
                    l->limit + 1, l->limit, l->limit);

    if (ngx_http_modelreg_param_str(r, q, 0, &mcf->store->url_prefix)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 1;

    for (i = 0; ngx_http_modelreg_model_filters[i].key; i++) {
        if (l->value[i].len == 0) {
            continue;
        }

        s = l->value[i];

        if (ngx_http_modelreg_model_filters[i].substring) {
            s.data = ngx_pnalloc(r->pool, 2 * l->value[i].len);
            if (s.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            s.len = ngx_http_modelreg_like_escape(s.data, l->value[i].data,
                                                  l->value[i].len);

            p = ngx_sprintf(p, " AND m.%s ILIKE '%%' || $%ui || '%%'",
                            ngx_http_modelreg_model_filters[i].key, n + 1);

        } else {
            p = ngx_sprintf(p, " AND m.%s = $%ui",
                            ngx_http_modelreg_model_filters[i].key, n + 1);
        }

        if (ngx_http_modelreg_param_str(r, q, n++, &s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (l->token.len) {
        p = ngx_sprintf(p, " AND (m.registered_at, m.id)"
                           " > (modelreg_from_us($%ui::bigint), $%ui)",
                        n + 1, n + 2);

        s.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (s.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        s.len = ngx_sprintf(s.data, "%L", us) - s.data;

        if (ngx_http_modelreg_param_str(r, q, n++, &s) != NGX_OK
            || ngx_http_modelreg_param_str(r, q, n++, &id) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* one row more than asked: whether there is a next page */

    p = ngx_sprintf(p, ngx_http_modelreg_models_tail, l->limit + 1,
                    l->limit);

    q->sql = (const char *) sql;
    q->nparams = n;
    q->row = ngx_http_modelreg_list_row;
    q->binary = 1;

    l->filters = ngx_http_modelreg_model_filters;
    l->route = "/models";
    l->query = q;
    l->not_found = l->filtered && l->token.len == 0;

    ctx->data = l;

    return ngx_http_modelreg_query_start(r, q);
}


/* GET /audit: newest first */

ngx_int_t
ngx_http_modelreg_audit_list(ngx_http_request_t *r)
{
    u_char                        *sql, *p;
    int64_t                        last;
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_list_t      *l;
    ngx_http_modelreg_pg_query_t  *q;

    static const char  *cond[] = {
        " AND e.model_id = $%ui",
        " AND e.action = $%ui",
        " AND e.time >= $%ui::timestamptz"
    };

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    l = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_list_t));
    if (l == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_modelreg_list_args(r, ngx_http_modelreg_audit_filters, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (l->token.len
        && ngx_http_modelreg_audit_token_decode(&l->token, &last) != NGX_OK)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid page_token.");
    }

    sql = ngx_pnalloc(r->pool, sizeof(ngx_http_modelreg_audit_head)
                               + sizeof(ngx_http_modelreg_audit_tail) + 512);
    q = ngx_http_modelreg_query(r, NULL, 4, ngx_http_modelreg_list_done);

    if (sql == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(sql, ngx_http_modelreg_audit_head,
                    NGX_HTTP_MODELREG_LIST_PIECES, l->limit + 1, l->limit);
    n = 0;

    for (i = 0; i < 3; i++) {
        if (l->value[i].len == 0) {
            continue;
        }

        p = ngx_sprintf(p, cond[i], n + 1);

        if (ngx_http_modelreg_param_str(r, q, n++, &l->value[i]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (l->token.len) {
        p = ngx_sprintf(p, " AND e.id < $%ui::bigint", n + 1);

        if (ngx_http_modelreg_param_str(r, q, n++, &l->token) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    p = ngx_sprintf(p, ngx_http_modelreg_audit_tail, l->limit + 1, l->limit);

    q->sql = (const char *) sql;
    q->nparams = n;
    q->row = ngx_http_modelreg_list_row;
    q->binary = 1;

    l->filters = ngx_http_modelreg_audit_filters;
    l->route = "/audit";
    l->query = q;
    l->audit = 1;

    ctx->data = l;

    return ngx_http_modelreg_query_start(r, q);
}


/*
 * Known filters into l->value[] (the last of a repeated key wins), limit
 * and page_token; an unknown key is 422.  NGX_DECLINED: go on; anything
 * else ends the request (an answer sent, or a status for nginx to send):
 * an answer sent can return NGX_OK, so that cannot mean "go on".
 */

static ngx_int_t
ngx_http_modelreg_list_args(ngx_http_request_t *r,
    ngx_http_modelreg_filter_t *filters, ngx_http_modelreg_list_t *l)
{
    ngx_int_t                 n;
    ngx_str_t                *u, list;
    ngx_uint_t                i, k, known;
    ngx_array_t               args, unknown;
    ngx_http_modelreg_arg_t  *a;

    if (ngx_array_init(&args, r->pool, 8, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_array_init(&unknown, r->pool, 2, sizeof(ngx_str_t)) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_modelreg_form_decode(r->pool, r->args.data,
                                      r->args.data + r->args.len, &args)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = args.elts;
    l->limit = NGX_HTTP_MODELREG_LIMIT_DEFAULT;

    for (i = 0; i < args.nelts; i++) {

        known = 0;

        for (k = 0; filters[k].key; k++) {
            if (a[i].key.len == ngx_strlen(filters[k].key)
                && ngx_strncmp(a[i].key.data, filters[k].key, a[i].key.len)
                   == 0)
            {
                l->value[k] = a[i].value;
                known = 1;
                break;
            }
        }

        if (known) {
            continue;
        }

        if (a[i].key.len == 5 && ngx_strncmp(a[i].key.data, "limit", 5) == 0)
        {
            l->limit_text = a[i].value;
            continue;
        }

        if (a[i].key.len == 10
            && ngx_strncmp(a[i].key.data, "page_token", 10) == 0)
        {
            l->token = a[i].value;
            continue;
        }

        u = unknown.elts;

        for (k = 0; k < unknown.nelts; k++) {
            if (u[k].len == a[i].key.len
                && ngx_strncmp(u[k].data, a[i].key.data, u[k].len) == 0)
            {
                break;
            }
        }

        if (k == unknown.nelts) {
            u = ngx_array_push(&unknown);
            if (u == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *u = a[i].key;
        }
    }

    if (unknown.nelts) {
        if (ngx_http_modelreg_join(r->pool, &unknown, &list) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                            "Invalid query parameter(s): %V",
                                            &list);
    }

    for (k = 0; filters[k].key; k++) {
        if (l->value[k].len == 0) {
            continue;
        }

        if (ngx_http_modelreg_utf8_valid(l->value[k].data, l->value[k].len)
            != NGX_OK)
        {
            return ngx_http_modelreg_send_error(r,
                                        NGX_HTTP_UNPROCESSABLE_ENTITY,
                                        "%s must be valid UTF-8.",
                                        filters[k].key);
        }

        l->filtered = 1;
    }

    if (l->limit_text.len) {
        n = ngx_atoi(l->limit_text.data, l->limit_text.len);

        if (n < 1 || n > NGX_HTTP_MODELREG_LIMIT_MAX) {
            return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                "Invalid limit: must be an "
                                                "integer from 1 to 1000.");
        }

        l->limit = n;
    }

    return NGX_DECLINED;
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
    int64_t    key;
    ngx_str_t  token, id;

    if (*PQgetvalue(res, 0, 0) == 0) {
        return NGX_OK;
    }

    if (PQgetisnull(res, 0, 1) || PQgetlength(res, 0, 1) != 8) {
        return NGX_ERROR;
    }

    key = (int64_t) ngx_http_modelreg_list_int(PQgetvalue(res, 0, 1), 8);

    if (!l->audit) {
        /* PostgreSQL's epoch, 2000-01-01, in Unix microseconds */
        key += (int64_t) 946684800 * 1000000;
    }

    id.len = PQgetisnull(res, 0, 2) ? 0 : PQgetlength(res, 0, 2);
    id.data = (u_char *) PQgetvalue(res, 0, 2);

    token.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1 + id.len);
    if (token.data == NULL) {
        return NGX_ERROR;
    }

    if (id.len) {
        token.len = ngx_http_modelreg_token_encode(token.data, key, &id)
                    - token.data;

    } else {
        token.len = ngx_sprintf(token.data, "%L", key) - token.data;
    }

    return ngx_http_modelreg_list_link(r, l, &token);
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

    if (l->link.len
        && ngx_http_modelreg_header_out(r, "Link", &l->link) != NGX_OK)
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

        if (l->audit
            && q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR
            && ngx_strncmp(q->sqlstate, "22", 2) == 0)
        {
            /* the only text PostgreSQL interprets here: "since" */

            ngx_http_modelreg_finish(r,
                ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                             "Invalid since: use "
                                             "YYYY-MM-DD HH:MM:SS[.ffffff] "
                                             "UTC or ISO 8601."));
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

    /* the rest, or all of a short answer (then with a Content-Length) */

    rc = ngx_http_modelreg_list_flush(r, l, 1);

    /* what the client has not taken yet is nginx's to send now */

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_modelreg_finish(r, rc == NGX_ERROR ? NGX_ERROR : NGX_OK);
}


/* <base/route?filters&limit=L&page_token=T>; rel="next" */

static ngx_int_t
ngx_http_modelreg_list_link(ngx_http_request_t *r,
    ngx_http_modelreg_list_t *l, ngx_str_t *token)
{
    u_char                   *p;
    size_t                    len;
    ngx_uint_t                k;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    len = ctx->base.len + 64 + 3 * token->len + 3 * l->limit_text.len;

    for (k = 0; l->filters[k].key; k++) {
        len += ngx_strlen(l->filters[k].key) + 2 + 3 * l->value[k].len;
    }

    l->link.data = ngx_pnalloc(r->pool, len);
    if (l->link.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(l->link.data, "<%V%s?", &ctx->base, l->route);

    for (k = 0; l->filters[k].key; k++) {
        if (l->value[k].len) {
            p = ngx_sprintf(p, "%s=", l->filters[k].key);
            p = ngx_http_modelreg_arg_encode(p, &l->value[k]);
            *p++ = '&';
        }
    }

    if (l->limit_text.len) {
        p = ngx_sprintf(p, "limit=%ui&", l->limit);
    }

    p = ngx_sprintf(p, "page_token=");
    p = ngx_http_modelreg_arg_encode(p, token);
    p = ngx_sprintf(p, ">; rel=\"next\"");

    l->link.len = p - l->link.data;

    return NGX_OK;
}


static u_char *
ngx_http_modelreg_arg_encode(u_char *p, ngx_str_t *v)
{
    u_char  *s, *end;

    static u_char  hex[] = "0123456789ABCDEF";

    for (s = v->data, end = v->data + v->len; s < end; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
            || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'
            || *s == '_' || *s == '~')
        {
            *p++ = *s;
            continue;
        }

        *p++ = '%';
        *p++ = hex[*s >> 4];
        *p++ = hex[*s & 0xf];
    }

    return p;
}


/* application/x-www-form-urlencoded: "+" is a space, %XX a byte */

ngx_int_t
ngx_http_modelreg_form_decode(ngx_pool_t *pool, u_char *p, u_char *end,
    ngx_array_t *args)
{
    u_char                   *s, *d, *eq, *amp, c, h;
    ngx_uint_t                i, n;
    ngx_str_t                *out;
    ngx_http_modelreg_arg_t  *a;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            p++;
            continue;
        }

        a = ngx_array_push(args);
        if (a == NULL) {
            return NGX_ERROR;
        }

        eq = ngx_strlchr(p, amp, '=');
        if (eq == NULL) {
            eq = amp;
        }

        for (i = 0; i < 2; i++) {
            s = (i == 0) ? p : (eq < amp ? eq + 1 : amp);
            n = (i == 0) ? (ngx_uint_t) (eq - p)
                         : (ngx_uint_t) (amp - s);
            out = (i == 0) ? &a->key : &a->value;

            out->data = ngx_pnalloc(pool, n + 1);
            if (out->data == NULL) {
                return NGX_ERROR;
            }

            d = out->data;

            while (n) {
                if (*s == '+') {
                    *d++ = ' ';
                    s++;
                    n--;
                    continue;
                }

                if (*s == '%' && n >= 3) {
                    c = 0;

                    h = s[1] | 0x20;
                    h = (h >= '0' && h <= '9') ? h - '0'
                      : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : 16;

                    if (h < 16) {
                        c = h << 4;
                        h = s[2] | 0x20;
                        h = (h >= '0' && h <= '9') ? h - '0'
                          : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : 16;
                    }

                    if (h < 16) {
                        *d++ = c | h;
                        s += 3;
                        n -= 3;
                        continue;
                    }
                }

                *d++ = *s++;
                n--;
            }

            out->len = d - out->data;
        }

        p = amp;
    }

    return NGX_OK;
}
