
/*
 * Copyright (C) modelreg authors
 *
 * Group commit of registrations.  Each registration's transaction NOTIFYs
 * (the change feed, the list cache), and PostgreSQL holds a cluster-wide
 * lock from a NOTIFYing transaction's pre-commit to the end of its commit
 * (PreCommit_Notify, async.c): such commits never share a WAL flush.  So
 * a worker's rows go in batches: while one of its batches is in flight,
 * the registrations that become ready wait, and go together in one
 * INSERT ... SELECT FROM unnest(...) when it is answered, or as soon as
 * "batch=" of them wait.  Under no load a batch is one row, sent at once.
 * The intents (each key's entry in the clean-up queue, written before its
 * object is stored: register.c) go in batches of their own the same way:
 * alone, each was a transaction of its own.
 *
 * Each member keeps the INSERT it would have run alone (register.c), and
 * is told the batch's outcome as that INSERT's: an intent, the batch's
 * status; a row, back as the statement's one row; not returned (ON
 * CONFLICT DO NOTHING), as its own unique_violation; not sent, or sent
 * with the outcome unknown, as such.
 * A statement error (a row that got past validation and that a constraint
 * refuses, a deadlock) sends each member again on its own, so that each
 * gets its own answer and the others still land.
 *
 * Bounds: "batch=" members a statement, and NGX_HTTP_MODELREG_BATCH_BYTES
 * of their parameters, escaped (a copy, freed when answered); a member
 * waits for the batches in flight (each within the database timeout),
 * then its own, then, if that failed as a statement, its own INSERT: at
 * most three times the timeout, for its intent and again for its row.
 */


#include "ngx_http_modelreg.h"


typedef struct ngx_http_modelreg_batch_s  ngx_http_modelreg_batch_t;


/* what is batched: rows or intents, and the worker's batches of it */

typedef struct {
    const char                      *sql;      /* the batch statement */
    const char                      *what;     /* in logs */
    ngx_uint_t                       params;   /* of a member's INSERT */
    ngx_uint_t                       shared;   /* the same in each member */
    unsigned                         rows:1;   /* (n, row) back per member */

    ngx_queue_t                      waiting;
    ngx_uint_t                       nwaiting;
    ngx_uint_t                       inflight;
} ngx_http_modelreg_batch_kind_t;


typedef struct {
    ngx_queue_t                      queue;    /* while it waits */
    ngx_http_modelreg_pg_query_t    *q;        /* its own INSERT */
    ngx_http_modelreg_main_conf_t   *mcf;
    ngx_http_modelreg_batch_kind_t  *kind;
    ngx_http_modelreg_batch_t       *batch;    /* in flight in it */
    ngx_uint_t                       index;    /* its row there */
    ngx_event_t                      failed;   /* posted: not sent */
    unsigned                         waiting:1;
} ngx_http_modelreg_batch_member_t;


struct ngx_http_modelreg_batch_s {
    ngx_pool_t                         *pool;
    ngx_http_modelreg_batch_kind_t     *kind;
    ngx_http_modelreg_batch_member_t  **members;   /* NULL: gone */
    ngx_uint_t                          n;
};


/*
 * A member INSERT's parameters but the shared one each become a text[] of
 * the batch statement, in their order; the shared one is the last.  A
 * row's: all but $25 (the URL prefix); an intent's: $1 (the key), and its
 * grace shared.  A row's, the most of any kind, size a batch's values.
 */
#define NGX_HTTP_MODELREG_BATCH_PARAMS  NGX_HTTP_MODELREG_INSERT_PARAMS
#define NGX_HTTP_MODELREG_BATCH_KEY     20   /* a row's $21, its key */

/* a batch's parameters, escaped, take no more: a member past it goes in
 * the next (one alone always goes), so no statement nears PostgreSQL's
 * 1 GB message limit whatever "batch=" is, nor a worker's memory */
#define NGX_HTTP_MODELREG_BATCH_BYTES   (4 * 1024 * 1024)


static ngx_int_t ngx_http_modelreg_batch_join(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_http_modelreg_batch_kind_t *kind);
static void ngx_http_modelreg_batch_flush(ngx_http_modelreg_main_conf_t *mcf,
    ngx_http_modelreg_batch_kind_t *kind);
static ngx_int_t ngx_http_modelreg_batch_send(
    ngx_http_modelreg_main_conf_t *mcf, ngx_http_modelreg_batch_kind_t *kind);
static size_t ngx_http_modelreg_batch_size(ngx_http_modelreg_pg_query_t *q,
    ngx_uint_t params);
static ngx_int_t ngx_http_modelreg_batch_array(ngx_pool_t *pool,
    ngx_http_modelreg_batch_t *b, ngx_uint_t k, ngx_str_t *out);
static void ngx_http_modelreg_batch_done(ngx_http_modelreg_pg_query_t *pq);
static ngx_int_t ngx_http_modelreg_batch_row(
    ngx_http_modelreg_pg_query_t *q, char *value, int len);
static void ngx_http_modelreg_batch_tell(ngx_http_modelreg_batch_member_t *m,
    ngx_uint_t status, ngx_uint_t sent);
static void ngx_http_modelreg_batch_failed(ngx_event_t *ev);
static void ngx_http_modelreg_batch_cleanup(void *data);


static const char  ngx_http_modelreg_batch_intents_sql[] =
    "INSERT INTO storage_gc (storage_key, reason, next_attempt_at)"
    " SELECT k, 'model.create under way',"
    " clock_timestamp() + $2::bigint * interval '1 ms'"
    " FROM unnest($1::text[]) AS k"
    " ON CONFLICT (storage_key) DO NOTHING";

static const char  ngx_http_modelreg_batch_rows_sql[] =
    "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
    " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],"
    " $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],"
    " $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],"
    " $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],"
    " $24::text[], $25::text[]) WITH ORDINALITY"
    " AS v(id, name, version, target_device, created_date, precision, size,"
    " format, origin, project_id, project_name, category,"
    " target_device_type, score, overview, optimization_capabilities,"
    " labels, architecture, sha256, file_name, storage_key, actor,"
    " request_id, remote_addr, action, n)), "
    "m AS ("
    "INSERT INTO models (id, name, version, target_device, created_date,"
    " registered_at, last_updated_at, precision, size, format, origin,"
    " project_id, project_name, category, target_device_type, score,"
    " overview, optimization_capabilities, labels, architecture, sha256,"
    " file_name, storage_key)"
    " SELECT id, name, version, coalesce(target_device, 'CPU'),"
    " coalesce(created_date, modelreg_ts(now())), now(), now(),"
    " coalesce(precision, 'fp32'), size::bigint, format, origin,"
    " project_id, project_name, category, target_device_type,"
    " coalesce(score::float8, 0), coalesce(overview::jsonb, '{}'),"
    " coalesce(optimization_capabilities::jsonb, '{}'),"
    " coalesce(labels::jsonb, '[]'), architecture, sha256, file_name,"
    " storage_key FROM v ORDER BY n"
    " ON CONFLICT DO NOTHING RETURNING *), "
    "t AS (DELETE FROM geti_tombstones WHERE model_id IN (SELECT id FROM m)), "
    "g AS (DELETE FROM storage_gc"
    " WHERE storage_key IN (SELECT storage_key FROM m)), "
    "a AS (INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " SELECT v.action, m.id, v.actor, v.request_id, v.remote_addr, 201,"
    " jsonb_build_object('name', m.name, 'version', m.version,"
    " 'precision', m.precision, 'size', m.size, 'sha256', m.sha256,"
    " 'file_name', m.file_name)"
    " FROM m JOIN v ON v.storage_key = m.storage_key ORDER BY v.n) "
    "SELECT v.n, modelreg_model_json(m, $26)"
    " FROM m JOIN v ON v.storage_key = m.storage_key";


static ngx_http_modelreg_batch_kind_t  ngx_http_modelreg_batch_intents = {
    ngx_http_modelreg_batch_intents_sql, "intents",
    NGX_HTTP_MODELREG_INTENT_PARAMS, 1, 0,
    { NULL, NULL }, 0, 0
};

static ngx_http_modelreg_batch_kind_t  ngx_http_modelreg_batch_rows = {
    ngx_http_modelreg_batch_rows_sql, "rows",
    NGX_HTTP_MODELREG_INSERT_PARAMS, 24, 1,
    { NULL, NULL }, 0, 0
};


/*
 * Runs "q", a registration's INSERT (register.c's $1-$26), in the
 * worker's next batch of rows; its handler is called later, exactly once,
 * from the event loop, unless the request's pool goes first.  The request
 * is held (r->main->count) until the handler ends it with
 * ngx_http_modelreg_finish(): NGX_DONE, else NGX_ERROR and nothing held.
 */

ngx_int_t
ngx_http_modelreg_register_batch(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    return ngx_http_modelreg_batch_join(r, q, &ngx_http_modelreg_batch_rows);
}


/* the same for "q", a registration's intent (register.c's $1-$2) */

ngx_int_t
ngx_http_modelreg_register_intent(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    return ngx_http_modelreg_batch_join(r, q,
                                        &ngx_http_modelreg_batch_intents);
}


static ngx_int_t
ngx_http_modelreg_batch_join(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_http_modelreg_batch_kind_t *kind)
{
    ngx_pool_cleanup_t                *cln;
    ngx_http_modelreg_main_conf_t     *mcf;
    ngx_http_modelreg_batch_member_t  *m;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    m = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_batch_member_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (m == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_modelreg_batch_cleanup;
    cln->data = m;

    m->q = q;
    m->mcf = mcf;
    m->kind = kind;
    m->failed.handler = ngx_http_modelreg_batch_failed;
    m->failed.data = m;
    m->failed.log = r->connection->log;

    if (kind->waiting.next == NULL) {
        ngx_queue_init(&kind->waiting);
    }

    ngx_queue_insert_tail(&kind->waiting, &m->queue);
    kind->nwaiting++;
    m->waiting = 1;

    r->main->count++;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg batch: %ui waiting, %ui in flight (%s)",
                   kind->nwaiting, kind->inflight, kind->what);

    ngx_http_modelreg_batch_flush(mcf, kind);

    return NGX_DONE;
}


/* the waiting members go when no batch is in flight, or when they fill one */

static void
ngx_http_modelreg_batch_flush(ngx_http_modelreg_main_conf_t *mcf,
    ngx_http_modelreg_batch_kind_t *kind)
{
    while (kind->nwaiting
           && (kind->inflight == 0 || kind->nwaiting >= mcf->db.batch))
    {
        if (ngx_http_modelreg_batch_send(mcf, kind) == NGX_OK) {
            kind->inflight++;
        }
    }
}


/*
 * Up to "batch=" waiting members in one statement.  NGX_OK: sent;
 * otherwise each member's failure is posted (never told from here: its
 * caller may not have returned yet).
 */

static ngx_int_t
ngx_http_modelreg_batch_send(ngx_http_modelreg_main_conf_t *mcf,
    ngx_http_modelreg_batch_kind_t *kind)
{
    size_t                             size, bytes;
    ngx_str_t                          values[NGX_HTTP_MODELREG_BATCH_PARAMS];
    ngx_uint_t                         i, n;
    ngx_pool_t                        *pool;
    ngx_queue_t                       *qu;
    ngx_http_modelreg_batch_t         *b;
    ngx_http_modelreg_pg_query_t      *pq;
    ngx_http_modelreg_batch_member_t  *m;

    n = ngx_min(kind->nwaiting, mcf->db.batch);

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, ngx_cycle->log);
    if (pool == NULL) {
        b = NULL;
        goto failed;
    }

    b = ngx_palloc(pool, sizeof(ngx_http_modelreg_batch_t));
    if (b == NULL) {
        goto failed;
    }

    b->pool = pool;
    b->kind = kind;
    b->n = 0;
    b->members = ngx_palloc(pool, n * sizeof(void *));
    if (b->members == NULL) {
        goto failed;
    }

    /* the members leave the wait first: a failure below posts theirs */

    bytes = 0;

    for (i = 0; i < n; i++) {
        qu = ngx_queue_head(&kind->waiting);
        m = ngx_queue_data(qu, ngx_http_modelreg_batch_member_t, queue);

        size = ngx_http_modelreg_batch_size(m->q, kind->params);

        if (i && bytes + size > NGX_HTTP_MODELREG_BATCH_BYTES) {
            break;
        }

        bytes += size;

        ngx_queue_remove(qu);
        kind->nwaiting--;
        m->waiting = 0;

        m->batch = b;
        m->index = i;
        b->members[i] = m;
        b->n++;
    }

    /* the shared value copied, the arrays set as built (not copied again) */

    ngx_memzero(values, sizeof(values));

    m = b->members[0];
    values[kind->params - 1].data = (u_char *) m->q->values[kind->shared];
    values[kind->params - 1].len = m->q->lengths[kind->shared];

    pq = ngx_http_modelreg_query_copy(pool, kind->sql, kind->params, values);
    if (pq == NULL) {
        goto failed;
    }

    for (i = 0; i < kind->params - 1; i++) {
        if (ngx_http_modelreg_batch_array(pool, b,
                                          i < kind->shared ? i : i + 1,
                                          &values[i])
            != NGX_OK)
        {
            goto failed;
        }

        pq->values[i] = (const char *) values[i].data;
        pq->lengths[i] = (int) values[i].len;
    }

    pq->handler = ngx_http_modelreg_batch_done;
    pq->data = b;

    if (ngx_http_modelreg_pg_send(mcf->pool, pq) == NGX_OK) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "modelreg batch: %ui %s sent", b->n, kind->what);
        return NGX_OK;
    }

failed:

    if (b == NULL || b->n == 0) {
        /* no batch made: the first waiting member alone fails */
        qu = ngx_queue_head(&kind->waiting);
        m = ngx_queue_data(qu, ngx_http_modelreg_batch_member_t, queue);

        ngx_queue_remove(qu);
        kind->nwaiting--;
        m->waiting = 0;

        ngx_post_event(&m->failed, &ngx_posted_events);

    } else {
        for (i = 0; i < b->n; i++) {
            m = b->members[i];
            m->batch = NULL;
            ngx_post_event(&m->failed, &ngx_posted_events);
        }
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    return NGX_ERROR;
}


/* the most a member adds to its batch's parameters, escaped */

static size_t
ngx_http_modelreg_batch_size(ngx_http_modelreg_pg_query_t *q,
    ngx_uint_t params)
{
    size_t      size;
    ngx_uint_t  k;

    size = 0;

    for (k = 0; k < params; k++) {
        size += 2 * (size_t) q->lengths[k] + sizeof("NULL,");
    }

    return size;
}


/*
 * Parameter k of every member as a NUL-terminated text[] literal: each
 * value quoted, '"' and '\' escaped (a name "NULL" stays a string), a NULL
 * parameter (a field not sent) as NULL.  Read so only with array_nulls on
 * and in UTF-8 (pg.c sets both).
 */

static ngx_int_t
ngx_http_modelreg_batch_array(ngx_pool_t *pool, ngx_http_modelreg_batch_t *b,
    ngx_uint_t k, ngx_str_t *out)
{
    u_char                        *p;
    size_t                         len;
    ngx_uint_t                     i;
    const char                    *s, *end;
    ngx_http_modelreg_pg_query_t  *q;

    len = sizeof("{}");

    for (i = 0; i < b->n; i++) {
        q = b->members[i]->q;
        len += (q->values[k] ? 2 * (size_t) q->lengths[k] + 2
                             : sizeof("NULL") - 1) + 1;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    *p++ = '{';

    for (i = 0; i < b->n; i++) {
        q = b->members[i]->q;

        if (i) {
            *p++ = ',';
        }

        if (q->values[k] == NULL) {
            p = ngx_cpymem(p, "NULL", sizeof("NULL") - 1);
            continue;
        }

        *p++ = '"';

        for (s = q->values[k], end = s + q->lengths[k]; s < end; s++) {
            if (*s == '"' || *s == '\\') {
                *p++ = '\\';
            }

            *p++ = *s;
        }

        *p++ = '"';
    }

    *p++ = '}';

    out->len = p - out->data;

    *p = '\0';

    return NGX_OK;
}


static void
ngx_http_modelreg_batch_done(ngx_http_modelreg_pg_query_t *pq)
{
    int                                 len;
    ngx_int_t                           k;
    ngx_uint_t                          i, row;
    ngx_http_modelreg_batch_t          *b;
    ngx_http_modelreg_pg_query_t       *q;
    ngx_http_modelreg_main_conf_t      *mcf;
    ngx_http_modelreg_batch_kind_t     *kind;
    ngx_http_modelreg_batch_member_t   *m;

    b = pq->data;
    kind = b->kind;
    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_modelreg_module);

    kind->inflight--;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg batch: %ui %s answered: %ui, %d returned",
                   b->n, kind->what, pq->status,
                   pq->status == NGX_HTTP_MODELREG_PG_OK
                   ? PQntuples(pq->result) : 0);

    if (pq->status == NGX_HTTP_MODELREG_PG_OK && kind->rows) {

        /* first every row to its member (a member's handler may end any
         * request, its own included), then the members are told */

        for (row = 0; row < (ngx_uint_t) PQntuples(pq->result); row++) {
            k = ngx_atoi((u_char *) PQgetvalue(pq->result, row, 0),
                         PQgetlength(pq->result, row, 0));

            if (k < 1 || (ngx_uint_t) k > b->n || b->members[k - 1] == NULL) {
                continue;
            }

            q = b->members[k - 1]->q;
            len = PQgetlength(pq->result, row, 1);

            if (ngx_http_modelreg_batch_row(q, PQgetvalue(pq->result, row, 1),
                                            len)
                != NGX_OK)
            {
                /* it committed, but cannot be told: as unknown */
                q->sent = 1;
            }
        }

    } else if (pq->status == NGX_HTTP_MODELREG_PG_SQL_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "modelreg: a batch of %ui registration %s failed as "
                      "a statement (%s), each is sent again on its own",
                      b->n, kind->what, pq->sqlstate);
    }

    for (i = 0; i < b->n; i++) {
        m = b->members[i];

        if (m == NULL) {
            continue;
        }

        b->members[i] = NULL;
        m->batch = NULL;
        q = m->q;

        switch (pq->status) {

        case NGX_HTTP_MODELREG_PG_OK:

            if (q->result || !kind->rows) {
                ngx_http_modelreg_batch_tell(m, NGX_HTTP_MODELREG_PG_OK, 1);

            } else if (q->sent) {
                ngx_http_modelreg_batch_tell(m,
                                             NGX_HTTP_MODELREG_PG_UNAVAILABLE,
                                             1);

            } else {
                /* not returned: it collided with a model */
                ngx_cpystrn((u_char *) q->sqlstate,
                            (u_char *) NGX_HTTP_MODELREG_PG_UNIQUE,
                            sizeof(q->sqlstate));
                ngx_http_modelreg_batch_tell(m, NGX_HTTP_MODELREG_PG_SQL_ERROR,
                                             1);
            }

            break;

        case NGX_HTTP_MODELREG_PG_SQL_ERROR:

            /* nothing was written: again, on its own (the request's hold
             * passes to its own query) */

            if (ngx_http_modelreg_pg_send(mcf->pool, q) != NGX_OK) {
                ngx_http_modelreg_batch_tell(m,
                                             NGX_HTTP_MODELREG_PG_UNAVAILABLE,
                                             0);
            }

            break;

        default:
            ngx_http_modelreg_batch_tell(m, NGX_HTTP_MODELREG_PG_UNAVAILABLE,
                                         pq->sent);
        }
    }

    ngx_destroy_pool(b->pool);

    ngx_http_modelreg_batch_flush(mcf, kind);
}


/* the member's model as its own INSERT's one row, "modelreg_model_json" */

static ngx_int_t
ngx_http_modelreg_batch_row(ngx_http_modelreg_pg_query_t *q, char *value,
    int len)
{
    PGresult        *res;
    PGresAttDesc     desc;

    res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (res == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&desc, sizeof(PGresAttDesc));
    desc.name = "modelreg_model_json";
    desc.typlen = -1;
    desc.atttypmod = -1;

    if (!PQsetResultAttrs(res, 1, &desc) || !PQsetvalue(res, 0, 0, value, len))
    {
        PQclear(res);
        return NGX_ERROR;
    }

    /* freed with the query (its pool's cleanup) */
    q->result = res;

    return NGX_OK;
}


/* the member's INSERT ended with "status": its handler, as pg.c calls it */

static void
ngx_http_modelreg_batch_tell(ngx_http_modelreg_batch_member_t *m,
    ngx_uint_t status, ngx_uint_t sent)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = m->q;

    q->status = status;
    q->sent = sent;
    q->done = 1;

    q->handler(q);
}


static void
ngx_http_modelreg_batch_failed(ngx_event_t *ev)
{
    ngx_http_modelreg_batch_member_t  *m = ev->data;

    ngx_http_modelreg_batch_tell(m, NGX_HTTP_MODELREG_PG_UNAVAILABLE, 0);
}


/*
 * The request went away before its INSERT was answered: out of the wait,
 * or out of its batch (its own INSERT, sent again after its batch failed
 * as a statement, is dropped by its query's cleanup).  A row's object is
 * queued for removal: at once if its row was never sent, else when the
 * outcome is surely known (the clean-up timer keeps an object that a row
 * names), rather than after its intent's hour.  An intent's key has no
 * object yet: its entry, if written, names nothing.
 */

static void
ngx_http_modelreg_batch_cleanup(void *data)
{
    ngx_http_modelreg_batch_member_t  *m = data;

    ngx_str_t   key;
    ngx_uint_t  unknown;

    if (m->q->done) {
        /* (told, and so ended its registration itself) */
        return;
    }

    /* in a batch in flight, or sent on its own after its batch */
    unknown = (m->batch != NULL || m->q->sent);

    if (m->waiting) {
        ngx_queue_remove(&m->queue);
        m->kind->nwaiting--;
        m->waiting = 0;
    }

    if (m->batch) {
        m->batch->members[m->index] = NULL;
        m->batch = NULL;
    }

    if (m->failed.posted) {
        ngx_delete_posted_event(&m->failed);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg batch: a member gone %s (%s)",
                   unknown ? "in flight" : "unsent", m->kind->what);

    if (!m->kind->rows) {
        return;
    }

    key.data = (u_char *) m->q->values[NGX_HTTP_MODELREG_BATCH_KEY];
    key.len = m->q->lengths[NGX_HTTP_MODELREG_BATCH_KEY];

    ngx_http_modelreg_gc_queue(m->mcf, ngx_cycle->log, &key,
                               unknown ? "model.create outcome unknown"
                                       : "model.create abandoned",
                               unknown ? NGX_HTTP_MODELREG_UNKNOWN_DELAY(m->mcf)
                                       : 0);
}
