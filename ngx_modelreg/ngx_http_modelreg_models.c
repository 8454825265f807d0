
/*
 * Copyright (C) modelreg authors
 *
 * POST /models, GET and DELETE /models/{id}, GET /models/{id}/files.
 *
 * A registration stores the object first and inserts the row (with its
 * audit event, in one statement) second; if the insert fails the object is
 * removed, or queued for removal.  So a model exists with its bytes or not
 * at all.  A deletion removes the row (with its audit event and a
 * clean-up entry, in one statement) first and the object second.
 */


#include <openssl/rand.h>

#include "ngx_http_modelreg.h"


static void ngx_http_modelreg_create_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_create_check(ngx_http_request_t *r,
    ngx_str_t *msg);
static ngx_int_t ngx_http_modelreg_create_names(ngx_http_request_t *r);
static void ngx_http_modelreg_create_stored(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_create_inserted(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_created(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_unstore(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_unregistered(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_modelreg_unstored(ngx_http_request_t *r, ngx_int_t rc);
static void ngx_http_modelreg_delete_removed(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_get_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_delete_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_files_done(ngx_http_modelreg_pg_query_t *q);

static ngx_int_t ngx_http_modelreg_disposition(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_modelreg_hex(u_char *dst, u_char *src, size_t len);


#define NGX_HTTP_MODELREG_INSERT_PARAMS  26

/* beyond twice the database timeout, before an unknown INSERT's object
 * may be removed (the row, if it committed, keeps it) */
#define NGX_HTTP_MODELREG_UNKNOWN_GRACE  5000

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

static const char  ngx_http_modelreg_conflict_sql[] =
    "(SELECT id FROM models WHERE id = $1) UNION ALL "
    "(SELECT id FROM models WHERE name = $2 AND version = $3"
    " AND precision = coalesce($4, 'fp32')"
    " AND project_id IS NOT DISTINCT FROM $5"
    " AND project_name IS NOT DISTINCT FROM $6) LIMIT 1";

static const char  ngx_http_modelreg_get_sql[] =
    "SELECT modelreg_model_json(m, $2) FROM models m WHERE m.id = $1";

static const char  ngx_http_modelreg_delete_sql[] =
    "WITH d AS (DELETE FROM models WHERE id = $1"
    " RETURNING id, name, version, storage_key, origin), "
    "t AS (INSERT INTO geti_tombstones (model_id)"
    " SELECT id FROM d WHERE origin = 'Geti' ON CONFLICT DO NOTHING), "
    "g AS (INSERT INTO storage_gc (storage_key, reason)"
    " SELECT storage_key, 'model.delete' FROM d"
    " ON CONFLICT (storage_key) DO NOTHING), "
    "a AS (INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " SELECT 'model.delete', d.id, $2, $3, $4, 204,"
    " jsonb_build_object('name', d.name, 'version', d.version) FROM d) "
    "SELECT storage_key FROM d";

static const char  ngx_http_modelreg_files_sql[] =
    "SELECT storage_key, sha256, file_name, size FROM models WHERE id = $1";

static const char  ngx_http_modelreg_download_sql[] =
    "INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " VALUES ('model.download', $1, $2, $3, $4, $5::int,"
    " jsonb_build_object('bytes', $6::bigint))";

static const char  ngx_http_modelreg_gc_done_sql[] =
    "DELETE FROM storage_gc WHERE storage_key = $1";


static ngx_str_t  ngx_http_modelreg_text_type = ngx_string("text/plain");
static ngx_str_t  ngx_http_modelreg_zip_ctype = ngx_string("application/zip");


/* POST /models */

ngx_int_t
ngx_http_modelreg_models_create(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_modelreg_body_read(r, 1, ngx_http_modelreg_create_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_create_body(ngx_http_request_t *r)
{
    ngx_int_t  rc;
    ngx_str_t  msg;

    if (ngx_http_modelreg_body_finish(r) != NGX_OK) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_store_unavailable(r));
        return;
    }

    rc = ngx_http_modelreg_create_check(r, &msg);

    if (rc != NGX_OK) {
        if (rc == NGX_ERROR) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            rc = ngx_http_modelreg_send_error(r, rc, "%V", &msg);
        }

        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_register(r));
}


/*
 * ctx->body's spooled file goes to the store, then its row (with the
 * audit event ctx->action) to the database.  The end: ctx->registered(),
 * else the 201 of POST; or ctx->unregistered(), else POST's error answer.
 * The registration holds the request until then, whatever happens: it
 * returns NGX_DONE, or an HTTP status when it could not start.
 */

ngx_int_t
ngx_http_modelreg_register(ngx_http_request_t *r)
{
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (ngx_http_modelreg_create_names(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->query = NULL;      /* (an import registers one model after another) */

    r->main->count++;

    if (mcf->store->put(r, ctx->body, &ctx->key,
                        ngx_http_modelreg_create_stored)
        != NGX_OK)
    {
        ngx_http_modelreg_create_stored(r, NGX_ERROR);
    }

    return NGX_DONE;
}


/* rules 1 to 7 of POST, in their order */

static ngx_int_t
ngx_http_modelreg_create_check(ngx_http_request_t *r, ngx_str_t *msg)
{
    ngx_str_t                  *name, list;
    ngx_array_t                 missing;
    ngx_http_modelreg_ctx_t    *ctx;
    ngx_http_modelreg_body_t   *body;
    ngx_http_modelreg_fields_t *f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;
    f = &body->fields;

    /* (the parse stopped at the first of the two it met) */

    if (body->too_many) {
        ngx_str_set(msg, "Too many parts: at most 64 are allowed.");
        return NGX_HTTP_BAD_REQUEST;
    }

    if (body->malformed) {
        ngx_str_set(msg, "Malformed multipart body.");
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_array_init(&missing, r->pool, 3, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    if (body->files == 0) {
        name = ngx_array_push(&missing);
        ngx_str_set(name, "file");
    }

    if (!ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_NAME)) {
        name = ngx_array_push(&missing);
        ngx_str_set(name, "name");
    }

    if (!ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_VERSION)) {
        name = ngx_array_push(&missing);
        ngx_str_set(name, "version");
    }

    if (missing.nelts) {
        if (ngx_http_modelreg_join(r->pool, &missing, &list) != NGX_OK) {
            return NGX_ERROR;
        }

        msg->data = ngx_pnalloc(r->pool, list.len + 32);
        if (msg->data == NULL) {
            return NGX_ERROR;
        }

        msg->len = ngx_sprintf(msg->data, "Field required: %V", &list)
                   - msg->data;
        return NGX_HTTP_UNPROCESSABLE_ENTITY;
    }

    if (f->unknown.nelts) {
        if (ngx_http_modelreg_join(r->pool, &f->unknown, &list) != NGX_OK) {
            return NGX_ERROR;
        }

        msg->data = ngx_pnalloc(r->pool, list.len + 32);
        if (msg->data == NULL) {
            return NGX_ERROR;
        }

        msg->len = ngx_sprintf(msg->data, "Unsupported key(s) found: %V",
                               &list)
                   - msg->data;
        return NGX_HTTP_UNPROCESSABLE_ENTITY;
    }

    if (body->files > 1) {
        ngx_str_set(msg, "Only one file part is allowed.");
        return NGX_HTTP_UNPROCESSABLE_ENTITY;
    }

    if (ngx_http_modelreg_zip_type(&body->file_type) != NGX_OK) {
        msg->data = ngx_pnalloc(r->pool, body->file_type.len + 32);
        if (msg->data == NULL) {
            return NGX_ERROR;
        }

        msg->len = ngx_sprintf(msg->data, "Unsupported file type found: %V",
                               &body->file_type)
                   - msg->data;
        return NGX_HTTP_UNPROCESSABLE_ENTITY;
    }

    switch (ngx_http_modelreg_zip_ok(r, body)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_str_set(msg, "Uploaded file is not a ZIP archive.");
        return NGX_HTTP_UNPROCESSABLE_ENTITY;

    default:
        return NGX_ERROR;
    }

    return ngx_http_modelreg_fields_check(f, r->pool, msg);
}


/* the spooled file's ZIP signatures: NGX_OK, NGX_DECLINED or NGX_ERROR */

ngx_int_t
ngx_http_modelreg_zip_ok(ngx_http_request_t *r, ngx_http_modelreg_body_t *body)
{
    u_char     *tail;
    size_t      tail_len;
    ngx_int_t   rc;

    /* the ring of the last bytes, in order */

    tail_len = (size_t) ngx_min(body->size, NGX_HTTP_MODELREG_ZIP_TAIL);
    tail = body->tail;

    if (body->size > NGX_HTTP_MODELREG_ZIP_TAIL && body->tail_pos) {
        tail = ngx_pnalloc(r->pool, tail_len);
        if (tail == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(tail, body->tail + body->tail_pos,
                   tail_len - body->tail_pos);
        ngx_memcpy(tail + tail_len - body->tail_pos, body->tail,
                   body->tail_pos);
    }

    rc = ngx_http_modelreg_zip_check(body->head, tail, tail_len,
                                     body->size);

    /* (an import checks one file per model: the copy goes at once) */

    if (tail != body->tail) {
        ngx_pfree(r->pool, tail);
    }

    return rc;
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
        ctx->id = f->value[NGX_HTTP_MODELREG_F_ID];

    } else {
        /* a UUIDv4 */

        rnd[6] = (rnd[6] & 0x0f) | 0x40;
        rnd[8] = (rnd[8] & 0x3f) | 0x80;

        ngx_http_modelreg_hex(hex, rnd, 16);

        ctx->id.data = ngx_pnalloc(r->pool, 36);
        if (ctx->id.data == NULL) {
            return NGX_ERROR;
        }

        ctx->id.len = ngx_sprintf(ctx->id.data, "%*s-%*s-%*s-%*s-%*s",
                                  (size_t) 8, hex, (size_t) 4, hex + 8,
                                  (size_t) 4, hex + 12, (size_t) 4, hex + 16,
                                  (size_t) 12, hex + 20)
                      - ctx->id.data;

        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return NGX_ERROR;
        }
    }

    ctx->file_name.data = ngx_pnalloc(r->pool, 255);
    if (ctx->file_name.data == NULL) {
        return NGX_ERROR;
    }

    ctx->file_name.len = ngx_http_modelreg_file_name(&body->file_name,
                                                     ctx->file_name.data);

    /* a fresh nonce: a key is never reused, so a late clean-up of an old
     * object can never remove a newer one */

    ngx_http_modelreg_hex(hex, rnd, 8);

    ctx->key.data = ngx_pnalloc(r->pool, ctx->id.len + 1 + 16 + 1
                                         + ctx->file_name.len);
    if (ctx->key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(ctx->key.data, "%V/%*s/%V", &ctx->id, (size_t) 16, hex,
                    &ctx->file_name);
    ctx->key.len = p - ctx->key.data;

    if (EVP_DigestFinal_ex(body->sha, md, &mdlen) != 1 || mdlen != 32) {
        return NGX_ERROR;
    }

    ngx_http_modelreg_hex(ctx->sha256, md, 32);

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

    ngx_http_modelreg_metrics_store(NGX_HTTP_MODELREG_STORE_PUT,
                                    rc == NGX_OK);

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    f = &ctx->body->fields;

    if (rc != NGX_OK) {
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

    if (ngx_http_modelreg_param_str(r, q, 0, &ctx->id) != NGX_OK) {
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

        if (ngx_http_modelreg_param_str(r, q, i + 1, &s) != NGX_OK) {
            goto failed;
        }
    }

    s.data = ctx->sha256;
    s.len = 64;

    if (ngx_http_modelreg_param_str(r, q, 18, &s) != NGX_OK
        || ngx_http_modelreg_param_str(r, q, 19, &ctx->file_name) != NGX_OK
        || ngx_http_modelreg_param_str(r, q, 20, &ctx->key) != NGX_OK
        || ngx_http_modelreg_audit_params(r, q, 21) != NGX_OK
        || ngx_http_modelreg_param_str(r, q, 24, &mcf->store->url_prefix)
           != NGX_OK)
    {
        goto failed;
    }

    q->values[25] = ctx->action ? ctx->action : "model.create";
    q->lengths[25] = (int) ngx_strlen(q->values[25]);

    if (ngx_http_modelreg_query_run(r, q) != NGX_DONE) {
        /* not sent: surely no row */
        q->status = NGX_HTTP_MODELREG_PG_UNAVAILABLE;
        ngx_http_modelreg_finish(r, ngx_http_modelreg_unstore(r, q));
        return;
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

    if (q->status == NGX_HTTP_MODELREG_PG_OK) {

        if (ctx->registered) {
            ctx->registered(r, q);
            ngx_http_modelreg_finish(r, NGX_DONE);
            return;
        }

        ngx_http_modelreg_finish(r, ngx_http_modelreg_created(r, q));
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
                      &ctx->id);

        /* not before the server is surely done with the INSERT: our
         * timeout runs from the send, the server's from its start */

        ngx_http_modelreg_gc_queue(mcf, r->connection->log, &ctx->key,
                                   "model.create outcome unknown",
                                   2 * mcf->db.timeout
                                   + NGX_HTTP_MODELREG_UNKNOWN_GRACE);

        ctx->query = q;

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_unregistered(r, NGX_HTTP_SERVICE_UNAVAILABLE));
        return;
    }

    /* surely no row: the object must go too */

    ngx_http_modelreg_finish(r, ngx_http_modelreg_unstore(r, q));
}


/* a registration failed: ctx->unregistered(), else POST's answer */

static ngx_int_t
ngx_http_modelreg_unregistered(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ctx->unregistered) {
        ctx->unregistered(r, status);
        return NGX_DONE;
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        return ctx->query ? ngx_http_modelreg_db_unavailable(r)
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
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    ctx->query = q;

    r->main->count++;

    if (mcf->store->remove(r, &ctx->key, ngx_http_modelreg_unstored)
        != NGX_OK)
    {
        ngx_http_modelreg_unstored(r, NGX_ERROR);
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_unstored(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_fields_t     *f;
    ngx_http_modelreg_pg_query_t   *q, *c;
    ngx_http_modelreg_main_conf_t  *mcf;

    ngx_http_modelreg_metrics_store(NGX_HTTP_MODELREG_STORE_DELETE,
                                    rc == NGX_OK);

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    q = ctx->query;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: queueing \"%V\" for removal", &ctx->key);

        ngx_http_modelreg_gc_queue(mcf, r->connection->log, &ctx->key,
                                   "model.create failed", 0);
    }

    if (ctx->unregistered) {
        ctx->unregistered(r, q == NULL
                             ? NGX_HTTP_INTERNAL_SERVER_ERROR
                             : q->status == NGX_HTTP_MODELREG_PG_UNAVAILABLE
                             ? NGX_HTTP_SERVICE_UNAVAILABLE
                             : ngx_strcmp(q->sqlstate, "23505") == 0
                             ? NGX_HTTP_CONFLICT
                             : NGX_HTTP_INTERNAL_SERVER_ERROR);
        ngx_http_modelreg_finish(r, NGX_DONE);
        return;
    }

    if (q == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (q->status != NGX_HTTP_MODELREG_PG_SQL_ERROR
        || ngx_strcmp(q->sqlstate, "23505") != 0)
    {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    /* a duplicate: name the model it collides with */

    f = &ctx->body->fields;

    c = ngx_http_modelreg_query(r, ngx_http_modelreg_conflict_sql, 6,
                                ngx_http_modelreg_conflict_done);

    if (c == NULL
        || ngx_http_modelreg_param_str(r, c, 0, &ctx->id) != NGX_OK
        || ngx_http_modelreg_param_str(r, c, 1,
                                &f->value[NGX_HTTP_MODELREG_F_NAME]) != NGX_OK
        || ngx_http_modelreg_param_str(r, c, 2,
                            &f->value[NGX_HTTP_MODELREG_F_VERSION]) != NGX_OK
        || ngx_http_modelreg_param_str(r, c, 3,
                          &f->value[NGX_HTTP_MODELREG_F_PRECISION]) != NGX_OK
        || ngx_http_modelreg_param_str(r, c, 4,
                         &f->value[NGX_HTTP_MODELREG_F_PROJECT_ID]) != NGX_OK
        || ngx_http_modelreg_param_str(r, c, 5,
                       &f->value[NGX_HTTP_MODELREG_F_PROJECT_NAME]) != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_query_start(r, c));
}


/* 409 naming the model found by a conflict query (else ctx->id) */

void
ngx_http_modelreg_conflict_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_str_t                 id;
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    id = ctx->id;

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


/* 201: the id as text, or the model with Accept: application/json */

static ngx_int_t
ngx_http_modelreg_created(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    u_char                   *p;
    ngx_str_t                 loc;
    ngx_table_elt_t          *accept;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    loc.len = ctx->base.len + sizeof("/models/") - 1 + ctx->id.len;
    loc.data = ngx_pnalloc(r->pool, loc.len);
    if (loc.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(loc.data, "%V/models/%V", &ctx->base, &ctx->id);

    r->headers_out.location = ngx_list_push(&r->headers_out.headers);
    if (r->headers_out.location == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.location->hash = 1;
    ngx_str_set(&r->headers_out.location->key, "Location");
    r->headers_out.location->value = loc;

    accept = ngx_http_modelreg_header_in(r, "Accept");

    if (accept
        && ngx_strlcasestrn(accept->value.data,
                            accept->value.data + accept->value.len,
                            (u_char *) "application/json",
                            sizeof("application/json") - 2)
           != NULL)
    {
        return ngx_http_modelreg_send(r, NGX_HTTP_CREATED,
                                      &ngx_http_modelreg_json_type,
                                      (u_char *) PQgetvalue(q->result, 0, 0),
                                      PQgetlength(q->result, 0, 0));
    }

    p = ngx_pstrdup(r->pool, &ctx->id);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_send(r, NGX_HTTP_CREATED,
                                  &ngx_http_modelreg_text_type,
                                  p, ctx->id.len);
}


/* GET /models/{id} */

ngx_int_t
ngx_http_modelreg_models_get(ngx_http_request_t *r)
{
    ngx_str_t                       cached;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (ngx_http_modelreg_cache_get(r, &ctx->route.id, &cached,
                                    &ctx->cache_gen)
        == NGX_OK)
    {
        return ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                      &ngx_http_modelreg_json_type,
                                      cached.data, cached.len);
    }

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_get_sql, 2,
                                ngx_http_modelreg_get_done);

    if (q == NULL
        || ngx_http_modelreg_param_str(r, q, 0, &ctx->route.id) != NGX_OK
        || ngx_http_modelreg_param_str(r, q, 1, &mcf->store->url_prefix)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_get_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (q->status == NGX_HTTP_MODELREG_PG_OK && PQntuples(q->result) == 0) {
        /* no row: nothing cached may say otherwise any more */
        ngx_http_modelreg_cache_put(&ctx->route.id, NULL, 0, 0);
    }

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc == NGX_OK) {
        ngx_http_modelreg_cache_put(&ctx->route.id,
                                    (u_char *) PQgetvalue(q->result, 0, 0),
                                    PQgetlength(q->result, 0, 0),
                                    ctx->cache_gen);

        rc = ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                    &ngx_http_modelreg_json_type,
                                    (u_char *) PQgetvalue(q->result, 0, 0),
                                    PQgetlength(q->result, 0, 0));
    }

    ngx_http_modelreg_finish(r, rc);
}


/* DELETE /models/{id} */

ngx_int_t
ngx_http_modelreg_models_delete(ngx_http_request_t *r)
{
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_delete_sql, 4,
                                ngx_http_modelreg_delete_done);

    if (q == NULL
        || ngx_http_modelreg_param_str(r, q, 0, &ctx->route.id) != NGX_OK
        || ngx_http_modelreg_audit_params(r, q, 1) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_delete_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                       rc;
    ngx_str_t                       key;
    ngx_http_request_t             *r;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = q->data;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    /* whatever the outcome: a timed-out DELETE may still have committed */
    ngx_http_modelreg_cache_invalidate(&ctx->route.id);

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    key.data = (u_char *) PQgetvalue(q->result, 0, 0);
    key.len = PQgetlength(q->result, 0, 0);

    ctx->key = key;

    /* the row is gone; the clean-up entry stays until the object is */

    r->main->count++;

    if (mcf->store->remove(r, &key, ngx_http_modelreg_delete_removed)
        != NGX_OK)
    {
        ngx_http_modelreg_delete_removed(r, NGX_ERROR);
    }

    ngx_http_modelreg_finish(r, NGX_DONE);
}


static void
ngx_http_modelreg_delete_removed(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ngx_http_modelreg_metrics_store(NGX_HTTP_MODELREG_STORE_DELETE,
                                    rc == NGX_OK);

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (rc == NGX_OK) {
        ngx_http_modelreg_detached(mcf, r->connection->log,
                                   ngx_http_modelreg_gc_done_sql, 1,
                                   &ctx->key);

    } else {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "modelreg: \"%V\" stays queued for removal",
                      &ctx->key);
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_send(r, NGX_HTTP_NO_CONTENT,
                                                     NULL, NULL, 0));
}


/* GET /models/{id}/files */

ngx_int_t
ngx_http_modelreg_models_files(ngx_http_request_t *r)
{
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_files_sql, 1,
                                ngx_http_modelreg_files_done);

    if (q == NULL
        || ngx_http_modelreg_param_str(r, q, 0, &ctx->route.id) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_files_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                       rc;
    ngx_http_request_t             *r;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_object_t     *obj;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    /* (the result lives as long as the request: q is in its pool) */

    obj = &ctx->object;
    obj->key.data = (u_char *) PQgetvalue(q->result, 0, 0);
    obj->key.len = PQgetlength(q->result, 0, 0);
    obj->sha256.data = (u_char *) PQgetvalue(q->result, 0, 1);
    obj->sha256.len = PQgetlength(q->result, 0, 1);
    obj->file_name.data = (u_char *) PQgetvalue(q->result, 0, 2);
    obj->file_name.len = PQgetlength(q->result, 0, 2);
    obj->size = ngx_atoof((u_char *) PQgetvalue(q->result, 0, 3),
                          PQgetlength(q->result, 0, 3));

    ngx_http_modelreg_finish(r, mcf->store->serve(r, obj));
}


/* the API's headers of a download: the store supplies only the bytes */

ngx_int_t
ngx_http_modelreg_download_headers(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj)
{
    ngx_str_t  etag;

    r->headers_out.content_type = ngx_http_modelreg_zip_ctype;
    r->headers_out.content_type_len = ngx_http_modelreg_zip_ctype.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->allow_ranges = 1;

    etag.len = obj->sha256.len + 2;
    etag.data = ngx_pnalloc(r->pool, etag.len);
    if (etag.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(etag.data, "\"%V\"", &obj->sha256);

    r->headers_out.etag = ngx_list_push(&r->headers_out.headers);
    if (r->headers_out.etag == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.etag->hash = 1;
    ngx_str_set(&r->headers_out.etag->key, "ETag");
    r->headers_out.etag->value = etag;

    return ngx_http_modelreg_disposition(r, &obj->file_name);
}


/* one audit event per 200/206 download, sent after the answer started */

void
ngx_http_modelreg_audit_download(ngx_http_request_t *r)
{
    u_char                         *p;
    ngx_str_t                       v[6];
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_modelreg_get_ctx(r);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    if (ctx == NULL || r->method != NGX_HTTP_GET
        || (r->headers_out.status != NGX_HTTP_OK
            && r->headers_out.status != NGX_HTTP_PARTIAL_CONTENT))
    {
        return;
    }

    /* after a redirect to the store's location, the values taken before */

    if (ctx->audit_taken) {
        v[1] = ctx->audit[0];
        v[2] = ctx->audit[1];
        v[3] = ctx->audit[2];

    } else if (ngx_http_modelreg_audit_values(r, &v[1]) != NGX_OK) {
        return;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + NGX_OFF_T_LEN);
    if (p == NULL) {
        return;
    }

    v[0] = ctx->route.id;
    v[4].data = p;
    v[4].len = ngx_sprintf(p, "%ui", r->headers_out.status) - p;
    v[5].data = p + v[4].len;
    v[5].len = ngx_sprintf(v[5].data, "%O",
                           r->headers_out.content_length_n >= 0
                           ? r->headers_out.content_length_n
                           : ctx->object.size)
               - v[5].data;

    ngx_http_modelreg_detached(mcf, r->connection->log,
                               ngx_http_modelreg_download_sql, 6, v);
}


/* attachment; filename="<ASCII>"; filename*=UTF-8''<percent-encoded> */

static ngx_int_t
ngx_http_modelreg_disposition(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char     *p, *s, *end;
    ngx_str_t   v;

    static u_char  hex[] = "0123456789ABCDEF";

    v.data = ngx_pnalloc(r->pool, sizeof("attachment; filename=\"\"; "
                                         "filename*=UTF-8''")
                                  + name->len * 4);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(v.data, "attachment; filename=\"",
                   sizeof("attachment; filename=\"") - 1);

    end = name->data + name->len;

    for (s = name->data; s < end; s++) {
        *p++ = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
               ? *s : '_';
    }

    p = ngx_cpymem(p, "\"; filename*=UTF-8''",
                   sizeof("\"; filename*=UTF-8''") - 1);

    for (s = name->data; s < end; s++) {
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

    v.len = p - v.data;

    return ngx_http_modelreg_header_out(r, "Content-Disposition", &v);
}


static void
ngx_http_modelreg_hex(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }
}
