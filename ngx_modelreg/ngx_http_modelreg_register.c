
/*
 * Copyright (C) modelreg authors
 *
 * The registration of a spooled upload, shared by POST /models and each
 * model of a Geti import.  It stores the object first and inserts the row
 * (with its audit event, in one statement, which may carry the rows of
 * other registrations: register_batch.c) second; if the insert fails
 * the object is removed, or queued for removal.  So a model exists with
 * its bytes or not at all.  Before the object is stored its key is written
 * to the clean-up queue, due only after a long grace, and the insert
 * takes it out again: a worker that dies between the two (SIGKILL, a
 * crash) leaves its object to the queue, not forgotten.  Intents, like
 * rows, go in batches (register_batch.c).
 */


#include <openssl/rand.h>

#include "ngx_http_modelreg.h"


static ngx_int_t ngx_http_modelreg_create_names(ngx_http_request_t *r);
static void ngx_http_modelreg_create_intended(
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_create_stored(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_create_inserted(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_conflict_done(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_unstore(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_unregistered(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_modelreg_unstored(ngx_http_request_t *r, ngx_int_t rc);


/* ms: the longest a registration may take from its key's entry in the
 * clean-up queue to its row; past it, the queue may remove the object */
#define NGX_HTTP_MODELREG_STORE_GRACE     3600000

/* the audit action of a registration that names none (POST's) */
#define NGX_HTTP_MODELREG_CREATE_ACTION   "model.create"

#define NGX_HTTP_MODELREG_UUID_LEN        36   /* 8-4-4-4-12 hex digits */
#define NGX_HTTP_MODELREG_NONCE_BYTES     8    /* in each key, as hex */
#define NGX_HTTP_MODELREG_SHA256_BYTES    32

/* what ngx_http_modelreg_file_name() may write */
#define NGX_HTTP_MODELREG_FILE_NAME_MAX   255

static const char  ngx_http_modelreg_insert_sql[] =
    "WITH m AS ("
    "INSERT INTO models (id, name, version, target_device, created_date,"
    " registered_at, last_updated_at, precision, size, format, origin,"
    " project_id, project_name, category, target_device_type, score,"
    " overview, optimization_capabilities, labels, architecture, sha256,"
    " file_name, storage_key)"
    " VALUES ($1, $2, $3, coalesce($4, 'CPU'),"
    " coalesce($5, modelreg_ts(now())),"
    " now(), now(), coalesce($6, 'fp32'), $7, $8, $9, $10, $11, $12, $13,"
    " coalesce($14::float8, 0), coalesce($15::jsonb, '{}'),"
    " coalesce($16::jsonb, '{}'), coalesce($17::jsonb, '[]'), $18, $19,"
    " $20, $21)"
    " RETURNING *), "
    "t AS (DELETE FROM geti_tombstones WHERE model_id = $1), "
    "g AS (DELETE FROM storage_gc WHERE storage_key = $21), "
    "a AS (INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " SELECT $26, m.id, $22, $23, $24, 201,"
    " jsonb_build_object('name', m.name, 'version', m.version,"
    " 'precision', m.precision, 'size', m.size, 'sha256', m.sha256,"
    " 'file_name', m.file_name) FROM m) "
    "SELECT modelreg_model_json(m, $25) FROM m";

/* the field behind each insert parameter from $2 to $18 */

static ngx_uint_t  ngx_http_modelreg_insert_fields[] = {
    NGX_HTTP_MODELREG_F_NAME,
    NGX_HTTP_MODELREG_F_VERSION,
    NGX_HTTP_MODELREG_F_TARGET_DEVICE,
    NGX_HTTP_MODELREG_F_CREATED_DATE,
    NGX_HTTP_MODELREG_F_PRECISION,
    NGX_HTTP_MODELREG_F_SIZE,           /* $7: the computed size */
    NGX_HTTP_MODELREG_F_FORMAT,
    NGX_HTTP_MODELREG_F_ORIGIN,
    NGX_HTTP_MODELREG_F_PROJECT_ID,
    NGX_HTTP_MODELREG_F_PROJECT_NAME,
    NGX_HTTP_MODELREG_F_CATEGORY,
    NGX_HTTP_MODELREG_F_TARGET_DEVICE_TYPE,
    NGX_HTTP_MODELREG_F_SCORE,
    NGX_HTTP_MODELREG_F_OVERVIEW,
    NGX_HTTP_MODELREG_F_OPTIMIZATION_CAPABILITIES,
    NGX_HTTP_MODELREG_F_LABELS,
    NGX_HTTP_MODELREG_F_ARCHITECTURE
};

/* the key, in the clean-up queue while its registration is under way */
static const char  ngx_http_modelreg_intent_sql[] =
    "INSERT INTO storage_gc (storage_key, reason, next_attempt_at)"
    " VALUES ($1, 'model.create under way',"
    " clock_timestamp() + $2::bigint * interval '1 ms')"
    " ON CONFLICT (storage_key) DO NOTHING";

static const char  ngx_http_modelreg_conflict_sql[] =
    "(SELECT id FROM models WHERE id = $1) UNION ALL "
    "(SELECT id FROM models WHERE name = $2 AND version = $3"
    " AND precision = coalesce($4, 'fp32')"
    " AND project_id IS NOT DISTINCT FROM $5"
    " AND project_name IS NOT DISTINCT FROM $6) LIMIT 1";


/*
 * ctx->body's spooled file goes to the store, then its row (with the
 * audit event reg->action) to the database, for ctx->reg, which the caller
 * made.  The end: reg->registered() (POST answers 201 there); or
 * reg->unregistered(), else the error answer POST gives.  The
 * registration holds the request until then, whatever happens: it returns
 * NGX_DONE, or an HTTP status when it could not start.
 */

ngx_int_t
ngx_http_modelreg_register(ngx_http_request_t *r)
{
    u_char                         buf[NGX_INT_T_LEN];
    ngx_str_t                      grace;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ngx_http_modelreg_create_names(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* (an import registers one model after another) */
    ctx->reg->query = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg register: \"%V\" as \"%V\"",
                   &ctx->reg->id, &ctx->reg->key);

    grace.data = buf;
    grace.len = ngx_sprintf(buf, "%M", (ngx_msec_t)
                            NGX_HTTP_MODELREG_STORE_GRACE) - buf;

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_intent_sql,
                                NGX_HTTP_MODELREG_INTENT_PARAMS,
                                ngx_http_modelreg_create_intended);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->reg->key)
           != NGX_OK
        || ngx_http_modelreg_query_param(r->pool, q, 1, &grace) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* with the intents of other registrations ready now: one commit */

    if (ngx_http_modelreg_register_intent(r, q) != NGX_DONE) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DONE;
}


/* the key is in the clean-up queue: the object may be stored */

static void
ngx_http_modelreg_create_intended(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_request_t             *r;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg register: \"%V\" queued ahead: %ui",
                   &ctx->reg->key, q->status);

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {

        if (q->sent) {
            /* it may be written: taken out, as nothing was stored (if
             * that is lost, the entry falls due after its grace and
             * removes nothing; a worker that exits first has no orphan
             * to name, found by t/55) */
            mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
            ngx_http_modelreg_gc_forget(mcf, r->connection->log,
                                        &ctx->reg->key);
        }

        ctx->reg->query = q;
        ngx_http_modelreg_finish(r, ngx_http_modelreg_unregistered(r,
                   q->status == NGX_HTTP_MODELREG_PG_UNAVAILABLE
                   ? NGX_HTTP_SERVICE_UNAVAILABLE
                   : NGX_HTTP_INTERNAL_SERVER_ERROR));
        return;
    }

    ngx_http_modelreg_store_put(r, ctx->body, &ctx->reg->key,
                                ngx_http_modelreg_create_stored);

    ngx_http_modelreg_finish(r, NGX_DONE);
}


/* the spooled file's ZIP signatures: NGX_OK, NGX_DECLINED or NGX_ERROR */

ngx_int_t
ngx_http_modelreg_zip_ok(ngx_http_request_t *r, ngx_http_modelreg_body_t *body)
{
    return ngx_http_modelreg_zip_done(&body->zip, r->pool, body->size);
}


/* the id, the key <id>/<nonce>/<file_name>, the sha256 */

static ngx_int_t
ngx_http_modelreg_create_names(ngx_http_request_t *r)
{
    u_char                      *p, rnd[16], hex[32], md[EVP_MAX_MD_SIZE];
    unsigned int                 mdlen;
    ngx_http_modelreg_ctx_t     *ctx;
    ngx_http_modelreg_body_t    *body;
    ngx_http_modelreg_fields_t  *f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;
    f = &body->fields;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_ID)) {
        ctx->reg->id = f->value[NGX_HTTP_MODELREG_F_ID];

    } else {
        /* a UUIDv4 */

        rnd[6] = (rnd[6] & 0x0f) | 0x40;
        rnd[8] = (rnd[8] & 0x3f) | 0x80;

        ngx_hex_dump(hex, rnd, 16);

        ctx->reg->id.data = ngx_pnalloc(r->pool, NGX_HTTP_MODELREG_UUID_LEN);
        if (ctx->reg->id.data == NULL) {
            return NGX_ERROR;
        }

        ctx->reg->id.len = ngx_sprintf(ctx->reg->id.data, "%*s-%*s-%*s-%*s-%*s",
                                  (size_t) 8, hex, (size_t) 4, hex + 8,
                                  (size_t) 4, hex + 12, (size_t) 4, hex + 16,
                                  (size_t) 12, hex + 20)
                      - ctx->reg->id.data;

        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return NGX_ERROR;
        }
    }

    ctx->reg->file_name.data = ngx_pnalloc(r->pool,
                                      NGX_HTTP_MODELREG_FILE_NAME_MAX);
    if (ctx->reg->file_name.data == NULL) {
        return NGX_ERROR;
    }

    ctx->reg->file_name.len = ngx_http_modelreg_file_name(&body->file_name,
                                                     ctx->reg->file_name.data);

    /* a fresh nonce: a key is never reused, so a late clean-up of an old
     * object can never remove a newer one */

    ngx_hex_dump(hex, rnd, NGX_HTTP_MODELREG_NONCE_BYTES);

    ctx->reg->key.data = ngx_pnalloc(r->pool, ctx->reg->id.len + 1
                                         + 2 * NGX_HTTP_MODELREG_NONCE_BYTES
                                         + 1 + ctx->reg->file_name.len);
    if (ctx->reg->key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(ctx->reg->key.data, "%V/%*s/%V", &ctx->reg->id,
                    (size_t) (2 * NGX_HTTP_MODELREG_NONCE_BYTES), hex,
                    &ctx->reg->file_name);
    ctx->reg->key.len = p - ctx->reg->key.data;

    if (EVP_DigestFinal_ex(body->sha, md, &mdlen) != 1
        || mdlen != NGX_HTTP_MODELREG_SHA256_BYTES)
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(body->sha256, md, NGX_HTTP_MODELREG_SHA256_BYTES);

    return NGX_OK;
}


static void
ngx_http_modelreg_create_stored(ngx_http_request_t *r, ngx_int_t rc)
{
    u_char                         *p;
    ngx_str_t                       s;
    ngx_uint_t                      i, k;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_fields_t     *f;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    f = &ctx->body->fields;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg register: \"%V\" stored: %i", &ctx->reg->id, rc);

    if (rc != NGX_OK) {
        /* the store may hold it all the same (its answer lost): the key's
         * entry is due now */
        ngx_http_modelreg_gc_queue(mcf, r->connection->log, &ctx->reg->key,
                                   "model.create failed", 0);
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_unregistered(r, NGX_HTTP_SERVICE_UNAVAILABLE));
        return;
    }

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_insert_sql,
                                NGX_HTTP_MODELREG_INSERT_PARAMS,
                                ngx_http_modelreg_create_inserted);
    if (q == NULL) {
        goto failed;
    }

    if (ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->reg->id) != NGX_OK) {
        goto failed;
    }

    for (i = 0; i < sizeof(ngx_http_modelreg_insert_fields)
                    / sizeof(ngx_uint_t); i++)
    {
        k = ngx_http_modelreg_insert_fields[i];

        if (k == NGX_HTTP_MODELREG_F_SIZE) {
            p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
            if (p == NULL) {
                goto failed;
            }

            s.data = p;
            s.len = ngx_sprintf(p, "%O", ctx->body->size) - p;

        } else {
            s = f->value[k];
        }

        if (ngx_http_modelreg_query_param(r->pool, q, i + 1, &s) != NGX_OK) {
            goto failed;
        }
    }

    s.data = ctx->body->sha256;
    s.len = 2 * NGX_HTTP_MODELREG_SHA256_BYTES;

    if (ngx_http_modelreg_query_param(r->pool, q, 18, &s) != NGX_OK
        || ngx_http_modelreg_query_param(r->pool, q, 19, &ctx->reg->file_name)
           != NGX_OK
        || ngx_http_modelreg_query_param(r->pool, q, 20, &ctx->reg->key)
           != NGX_OK
        || ngx_http_modelreg_audit_params(r, q, 21) != NGX_OK
        || ngx_http_modelreg_query_param(r->pool, q, 24,
                                         &mcf->store->url_prefix)
           != NGX_OK)
    {
        goto failed;
    }

    q->values[25] = ctx->reg->action ? ctx->reg->action
                                : NGX_HTTP_MODELREG_CREATE_ACTION;
    q->lengths[25] = (int) ngx_strlen(q->values[25]);

    /* with the rows of other registrations ready now: one commit */

    if (ngx_http_modelreg_register_batch(r, q) != NGX_DONE) {
        goto failed;
    }

    ngx_http_modelreg_finish(r, NGX_DONE);
    return;

failed:

    ngx_http_modelreg_finish(r, ngx_http_modelreg_unstore(r, NULL));
}


static void
ngx_http_modelreg_create_inserted(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_request_t             *r;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg register: \"%V\" inserted: %ui",
                   &ctx->reg->id, q->status);

    /* (whatever the status: the row may have landed) a new model may
     * belong on any cached page of GET /models */
    ngx_http_modelreg_cache_lists_end();

    if (q->status == NGX_HTTP_MODELREG_PG_OK) {
        ctx->reg->registered(r, q);
        ngx_http_modelreg_finish(r, NGX_DONE);
        return;
    }

    if (q->status == NGX_HTTP_MODELREG_PG_UNAVAILABLE && q->sent) {

        /*
         * The insert was sent and its outcome is unknown (a timeout, a
         * lost connection): it may have committed, so the object must
         * stay.  The clean-up queue removes it later unless a row names it.
         */

        mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "modelreg: the outcome of registering \"%V\" is "
                      "unknown; its object is queued for a checked removal",
                      &ctx->reg->id);

        ngx_http_modelreg_gc_queue(mcf, r->connection->log, &ctx->reg->key,
                                   "model.create outcome unknown",
                                   NGX_HTTP_MODELREG_UNKNOWN_DELAY(mcf));

        ctx->reg->query = q;

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_unregistered(r, NGX_HTTP_SERVICE_UNAVAILABLE));
        return;
    }

    /* surely no row: the object must go too */

    ngx_http_modelreg_finish(r, ngx_http_modelreg_unstore(r, q));
}


/* a registration failed: ctx->reg->unregistered(), else POST's error answer */

static ngx_int_t
ngx_http_modelreg_unregistered(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ctx->reg->unregistered) {
        ctx->reg->unregistered(r, status);
        return NGX_DONE;
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        return ctx->reg->query ? ngx_http_modelreg_db_unavailable(r)
                          : ngx_http_modelreg_store_unavailable(r);
    }

    return status;
}


/*
 * The compensation of a registration that surely left no row: remove the
 * object, else queue it; then answer for the failed query "q" (NULL: our
 * own error).  The removal holds the request until unstored(): NGX_DONE.
 */

static ngx_int_t
ngx_http_modelreg_unstore(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ctx->reg->query = q;

    ngx_http_modelreg_store_remove(r, &ctx->reg->key,
                                   ngx_http_modelreg_unstored);

    return NGX_DONE;
}


static void
ngx_http_modelreg_unstored(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    q = ctx->reg->query;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg register: \"%V\" unstored: %i",
                   &ctx->reg->key, rc);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: queueing \"%V\" for removal", &ctx->reg->key);

        ngx_http_modelreg_gc_queue(mcf, r->connection->log, &ctx->reg->key,
                                   "model.create failed", 0);

    } else {
        /* gone: its entry too, retried until written (the database may
         * be away, found by t/40); if that is lost, the entry falls due
         * after its grace and removes nothing, so a worker that exits
         * first names no orphan (t/55) */
        ngx_http_modelreg_gc_forget(mcf, r->connection->log, &ctx->reg->key);
    }

    if (ctx->reg->unregistered) {
        ctx->reg->unregistered(r, q == NULL
                    ? NGX_HTTP_INTERNAL_SERVER_ERROR
                    : q->status == NGX_HTTP_MODELREG_PG_UNAVAILABLE
                    ? NGX_HTTP_SERVICE_UNAVAILABLE
                    : ngx_strcmp(q->sqlstate, NGX_HTTP_MODELREG_PG_UNIQUE) == 0
                    ? NGX_HTTP_CONFLICT
                    : NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_modelreg_finish(r, NGX_DONE);
        return;
    }

    if (q == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_conflict_query(r, q, ngx_http_modelreg_conflict_sql,
                                         &ctx->reg->id));
}


/*
 * A failed INSERT or UPDATE: a duplicate (unique_violation) is answered
 * 409 naming the model it collides with, found by "sql" ($1 "id", $2-$6
 * the body's name, version, precision, project id and name); anything
 * else is the database's error.  The answer's rc, for finish().
 */

ngx_int_t
ngx_http_modelreg_conflict_query(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, const char *sql, ngx_str_t *id)
{
    ngx_uint_t                     i;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_fields_t    *f;
    ngx_http_modelreg_pg_query_t  *c;

    static ngx_uint_t  keys[] = {
        NGX_HTTP_MODELREG_F_NAME,
        NGX_HTTP_MODELREG_F_VERSION,
        NGX_HTTP_MODELREG_F_PRECISION,
        NGX_HTTP_MODELREG_F_PROJECT_ID,
        NGX_HTTP_MODELREG_F_PROJECT_NAME
    };

    if (q->status != NGX_HTTP_MODELREG_PG_SQL_ERROR
        || ngx_strcmp(q->sqlstate, NGX_HTTP_MODELREG_PG_UNIQUE) != 0)
    {
        return ngx_http_modelreg_pg_error(r, q);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    f = &ctx->body->fields;

    c = ngx_http_modelreg_query(r, sql, 6, ngx_http_modelreg_conflict_done);

    if (c == NULL
        || ngx_http_modelreg_query_param(r->pool, c, 0, id) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < sizeof(keys) / sizeof(ngx_uint_t); i++) {
        if (ngx_http_modelreg_query_param(r->pool, c, i + 1,
                                          &f->value[keys[i]])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_modelreg_query_start(r, c);
}


/* 409 naming the model found by a conflict query (else ctx->reg->id) */

static void
ngx_http_modelreg_conflict_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_str_t                 id;
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    id = ctx->reg ? ctx->reg->id : ctx->route.id;

    if (q->status == NGX_HTTP_MODELREG_PG_OK && PQntuples(q->result) == 1) {
        id.data = (u_char *) PQgetvalue(q->result, 0, 0);
        id.len = PQgetlength(q->result, 0, 0);
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_send_error(r, NGX_HTTP_CONFLICT,
                                     "The requested action could not be "
                                     "completed due to a conflict with "
                                     "model '%V'.", &id));
}

