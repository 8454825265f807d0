
/*
 * Copyright (C) modelreg authors
 *
 * POST /models, GET and DELETE /models/{id}, GET /models/{id}/files
 * (also the bytes of /aliases/{name}/{alias}/files, once resolved).
 *
 * POST checks the upload and hands it to the registration
 * (ngx_http_modelreg_register.c), which answers with its 201 here.  A
 * deletion removes the row (with its audit event and a clean-up entry, in
 * one statement) first and the object second.  Downloads are the store
 * layer's (ngx_http_modelreg_store.c) once the row is read.
 */


#include "ngx_http_modelreg.h"


static void ngx_http_modelreg_create_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_create_check(ngx_http_request_t *r,
    ngx_str_t *msg);
static void ngx_http_modelreg_create_registered(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_created(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_delete_removed(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_modelreg_get_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_delete_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_files_done(ngx_http_modelreg_pg_query_t *q);


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

static const char  ngx_http_modelreg_gc_done_sql[] =
    "DELETE FROM storage_gc WHERE storage_key = $1";


static ngx_str_t  ngx_http_modelreg_text_type = ngx_string("text/plain");


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
    ngx_int_t                 rc;
    ngx_str_t                 msg;
    ngx_http_modelreg_ctx_t  *ctx;

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

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ctx->reg = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_register_t));
    if (ctx->reg == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->reg->registered = ngx_http_modelreg_create_registered;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg models: upload checked, registering");

    ngx_http_modelreg_finish(r, ngx_http_modelreg_register(r));
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



/* the registration's end for POST: its answer */

static void
ngx_http_modelreg_create_registered(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    (void) ngx_http_modelreg_end(r, ngx_http_modelreg_created(r, q));
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

    loc.len = ctx->base.len + sizeof("/models/") - 1 + ctx->reg->id.len;
    loc.data = ngx_pnalloc(r->pool, loc.len);
    if (loc.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(loc.data, "%V/models/%V", &ctx->base, &ctx->reg->id);

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

    p = ngx_pstrdup(r->pool, &ctx->reg->id);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_send(r, NGX_HTTP_CREATED,
                                  &ngx_http_modelreg_text_type,
                                  p, ctx->reg->id.len);
}


/* GET /models/{id} */

ngx_int_t
ngx_http_modelreg_models_get(ngx_http_request_t *r)
{
    uint64_t                       *gen;
    ngx_str_t                       cached;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    /* the route's state: the cache's generation when the row is read */

    gen = ngx_palloc(r->pool, sizeof(uint64_t));
    if (gen == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = gen;

    if (ngx_http_modelreg_cache_get(r, &ctx->route.id, &cached, gen)
        == NGX_OK)
    {
        return ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                      &ngx_http_modelreg_json_type,
                                      cached.data, cached.len);
    }

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_get_sql, 2,
                                ngx_http_modelreg_get_done);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->route.id)
           != NGX_OK
        || ngx_http_modelreg_query_param(r->pool, q, 1, &mcf->store->url_prefix)
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg models: row of \"%V\" read: %ui",
                   &ctx->route.id, q->status);

    if (q->status == NGX_HTTP_MODELREG_PG_OK && PQntuples(q->result) == 0) {
        /* no row: nothing cached may say otherwise any more */
        ngx_http_modelreg_cache_put(&ctx->route.id, NULL, 0, 0);
    }

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc == NGX_OK) {
        ngx_http_modelreg_cache_put(&ctx->route.id,
                                    (u_char *) PQgetvalue(q->result, 0, 0),
                                    PQgetlength(q->result, 0, 0),
                                    *(uint64_t *) ctx->data);

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
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->route.id)
           != NGX_OK
        || ngx_http_modelreg_audit_params(r, q, 1) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_delete_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_str_t                *key;
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    /* whatever the outcome: a timed-out DELETE may still have committed */
    ngx_http_modelreg_cache_invalidate(&ctx->route.id);

    rc = ngx_http_modelreg_referenced(r, q, &ctx->route.id);

    if (rc != NGX_DECLINED) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    /* the route's state: the key, until the object is removed */

    key = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (key == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    key->data = (u_char *) PQgetvalue(q->result, 0, 0);
    key->len = PQgetlength(q->result, 0, 0);

    ctx->data = key;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg models: row of \"%V\" deleted", &ctx->route.id);

    /* the row is gone; the clean-up entry stays until the object is */

    ngx_http_modelreg_store_remove(r, key, ngx_http_modelreg_delete_removed);

    ngx_http_modelreg_finish(r, NGX_DONE);
}


static void
ngx_http_modelreg_delete_removed(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_str_t                      *key;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    key = ctx->data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg models: object \"%V\" removed: %i", key, rc);

    if (rc == NGX_OK) {
        ngx_http_modelreg_detached(mcf, r->connection->log,
                                   ngx_http_modelreg_gc_done_sql, 1, key);

    } else {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "modelreg: \"%V\" stays queued for removal", key);
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
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->route.id)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_files_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                    rc;
    ngx_http_request_t          *r;
    ngx_http_modelreg_ctx_t     *ctx;
    ngx_http_modelreg_object_t   obj;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    /* (the result lives as long as the request: q is in its pool; the
     * store layer keeps its own copy of "obj") */

    obj.key.data = (u_char *) PQgetvalue(q->result, 0, 0);
    obj.key.len = PQgetlength(q->result, 0, 0);
    obj.sha256.data = (u_char *) PQgetvalue(q->result, 0, 1);
    obj.sha256.len = PQgetlength(q->result, 0, 1);
    obj.file_name.data = (u_char *) PQgetvalue(q->result, 0, 2);
    obj.file_name.len = PQgetlength(q->result, 0, 2);
    obj.size = ngx_atoof((u_char *) PQgetvalue(q->result, 0, 3),
                          PQgetlength(q->result, 0, 3));

    /* reached through an alias (aliases.c): it says which model it is */

    if (ctx->route.route == NGX_HTTP_MODELREG_ROUTE_ALIAS_FILES) {
        obj.model_id = ctx->route.id;

    } else {
        ngx_str_null(&obj.model_id);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg models: files of \"%V\" found", &ctx->route.id);

    rc = ngx_http_modelreg_store_serve(r, &obj);

    if (rc == NGX_HTTP_NOT_FOUND) {
        /* the object went away since the lookup: look again */
        rc = ngx_http_modelreg_models_files(r);
    }

    ngx_http_modelreg_finish(r, rc);
}
