
/*
 * Copyright (C) modelreg authors
 *
 * PUT /models/{id}: metadata from a urlencoded, multipart or JSON body.
 * Checks in API.md's order: body, "no supported field" (400), existence
 * (404), field validation (422/400), conflict (409).  The update and its
 * audit event (the changed fields, old and new) are one statement.
 */


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_UPDATE_PARAMS  20


static void ngx_http_modelreg_update_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_update_parse(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body);
static ngx_int_t ngx_http_modelreg_update_json(ngx_http_request_t *r,
    ngx_http_modelreg_fields_t *f, ngx_buf_t *raw);
static void ngx_http_modelreg_update_set(ngx_http_modelreg_fields_t *f,
    ngx_int_t i, u_char *data, size_t len);
static void ngx_http_modelreg_update_exists(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_update_send(ngx_http_request_t *r);
static void ngx_http_modelreg_update_done(ngx_http_modelreg_pg_query_t *q);


/* the fields behind $2..$17 */

static ngx_uint_t  ngx_http_modelreg_update_fields[] = {
    NGX_HTTP_MODELREG_F_NAME,
    NGX_HTTP_MODELREG_F_VERSION,
    NGX_HTTP_MODELREG_F_TARGET_DEVICE,
    NGX_HTTP_MODELREG_F_PRECISION,
    NGX_HTTP_MODELREG_F_FORMAT,
    NGX_HTTP_MODELREG_F_SCORE,
    NGX_HTTP_MODELREG_F_CREATED_DATE,
    NGX_HTTP_MODELREG_F_ORIGIN,
    NGX_HTTP_MODELREG_F_PROJECT_ID,
    NGX_HTTP_MODELREG_F_PROJECT_NAME,
    NGX_HTTP_MODELREG_F_CATEGORY,
    NGX_HTTP_MODELREG_F_TARGET_DEVICE_TYPE,
    NGX_HTTP_MODELREG_F_OVERVIEW,
    NGX_HTTP_MODELREG_F_OPTIMIZATION_CAPABILITIES,
    NGX_HTTP_MODELREG_F_LABELS,
    NGX_HTTP_MODELREG_F_ARCHITECTURE
};

static const char  ngx_http_modelreg_update_sql[] =
    "WITH prev AS (SELECT * FROM models WHERE id = $1 FOR UPDATE), "
    "cur AS (UPDATE models m SET"
    " name = coalesce($2, m.name),"
    " version = coalesce($3, m.version),"
    " target_device = coalesce($4, m.target_device),"
    " precision = coalesce($5, m.precision),"
    " format = coalesce($6, m.format),"
    " score = coalesce($7::float8, m.score),"
    " created_date = coalesce($8, m.created_date),"
    " origin = coalesce($9, m.origin),"
    " project_id = coalesce($10, m.project_id),"
    " project_name = coalesce($11, m.project_name),"
    " category = coalesce($12, m.category),"
    " target_device_type = coalesce($13, m.target_device_type),"
    " overview = coalesce($14::jsonb, m.overview),"
    " optimization_capabilities = coalesce($15::jsonb,"
    " m.optimization_capabilities),"
    " labels = coalesce($16::jsonb, m.labels),"
    " architecture = coalesce($17, m.architecture),"
    " last_updated_at = clock_timestamp()"
    " FROM prev WHERE m.id = prev.id RETURNING m.*), "
    "a AS (INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " SELECT 'model.update', cur.id, $18, $19, $20, 200,"
    " jsonb_build_object('changed', coalesce((SELECT jsonb_object_agg(o.key,"
    " jsonb_build_object('old', o.value, 'new', n.value))"
    " FROM jsonb_each(to_jsonb(prev)) o"
    " JOIN jsonb_each(to_jsonb(cur)) n ON n.key = o.key"
    " WHERE o.value IS DISTINCT FROM n.value"
    " AND o.key NOT IN ('last_updated_at', 'registered_at')), '{}'))"
    " FROM prev, cur) "
    "SELECT count(*) FROM cur";

static const char  ngx_http_modelreg_exists_sql[] =
    "SELECT 1 FROM models WHERE id = $1";

/* the model the merged values collide with */

static const char  ngx_http_modelreg_update_conflict_sql[] =
    "SELECT o.id FROM models m JOIN models o ON o.id <> m.id"
    " AND o.name = coalesce($2, m.name)"
    " AND o.version = coalesce($3, m.version)"
    " AND o.precision = coalesce($4, m.precision)"
    " AND o.project_id IS NOT DISTINCT FROM coalesce($5, m.project_id)"
    " AND o.project_name IS NOT DISTINCT FROM coalesce($6, m.project_name)"
    " WHERE m.id = $1 LIMIT 1";


typedef struct {
    ngx_str_t   msg;
    ngx_int_t   status;             /* of field validation */
} ngx_http_modelreg_update_t;


ngx_int_t
ngx_http_modelreg_models_update(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_modelreg_body_read(r, 0, ngx_http_modelreg_update_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_update_body(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i, any;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_body_t      *body;
    ngx_http_modelreg_update_t    *u;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;

    u = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_update_t));
    if (u == NULL || ngx_http_modelreg_body_finish(r) != NGX_OK) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->data = u;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg update: body read, %s",
                   body->mp ? "multipart" : "form or JSON");

    if (body->too_large) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "Request Entity Too Large"));
        return;
    }

    /*
     * A multipart body stops being parsed at its first fault: what was
     * parsed before it is not applied.
     */

    if (body->too_many) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "Too many parts: at most 64 are"
                                         " allowed."));
        return;
    }

    if (body->malformed) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "Malformed multipart body."));
        return;
    }

    /* NGX_OK: parsed; else answered (malformed JSON), or a status */

    rc = ngx_http_modelreg_update_parse(r, body);
    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    /* id, file and size are not PUT's to set */

    any = 0;

    for (i = 0; i < NGX_HTTP_MODELREG_F_COUNT; i++) {
        if (i == NGX_HTTP_MODELREG_F_ID || i == NGX_HTTP_MODELREG_F_FILE
            || i == NGX_HTTP_MODELREG_F_SIZE)
        {
            body->fields.value[i].len = 0;
            body->fields.overflow[i] = 0;
            continue;
        }

        if (ngx_http_modelreg_field_present(&body->fields, i)) {
            any = 1;
        }
    }

    if (!any) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "Invalid request. Check the request "
                                         "body and ensure at least 1 "
                                         "supported field is provided."));
        return;
    }

    u->status = ngx_http_modelreg_fields_check(&body->fields, r->pool,
                                               &u->msg);
    if (u->status == NGX_ERROR) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (u->status == NGX_OK) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_update_send(r));
        return;
    }

    /* invalid fields: existence answers first (404 before 422) */

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_exists_sql, 1,
                                ngx_http_modelreg_update_exists);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->route.id)
           != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_query_start(r, q));
}


static ngx_int_t
ngx_http_modelreg_update_parse(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body)
{
    ngx_int_t                 k;
    ngx_str_t                *ct;
    ngx_uint_t                i;
    ngx_array_t               args;
    ngx_http_modelreg_arg_t  *a;

    if (body->mp) {
        return NGX_OK;
    }

    if (body->raw == NULL) {
        return NGX_OK;
    }

    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;

    if (ct && ct->len >= sizeof("application/json") - 1
        && ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) == 0)
    {
        return ngx_http_modelreg_update_json(r, &body->fields, body->raw);
    }

    /* x-www-form-urlencoded, also when no type is given */

    if (ngx_array_init(&args, r->pool, 8, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_http_modelreg_form_decode(r->pool, body->raw->pos,
                                         body->raw->last, &args)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = args.elts;

    for (i = 0; i < args.nelts; i++) {
        k = ngx_http_modelreg_field_index(a[i].key.data, a[i].key.len);

        if (k != NGX_ERROR) {
            ngx_http_modelreg_update_set(&body->fields, k, a[i].value.data,
                                         a[i].value.len);
        }
    }

    return NGX_OK;
}


/* a JSON object: strings as they are, numbers as sent, others as JSON */

static ngx_int_t
ngx_http_modelreg_update_json(ngx_http_request_t *r,
    ngx_http_modelreg_fields_t *f, ngx_buf_t *raw)
{
    ngx_int_t  rc;

    rc = ngx_http_modelreg_fields_json(f, r->pool, raw->pos, raw->last);

    if (rc == NGX_DECLINED) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Malformed JSON body: "
                                            "an object is expected.");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_modelreg_update_set(ngx_http_modelreg_fields_t *f, ngx_int_t i,
    u_char *data, size_t len)
{
    ngx_http_modelreg_field_set(f, i, data, len);
}


static void
ngx_http_modelreg_update_exists(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                    rc;
    ngx_http_request_t          *r;
    ngx_http_modelreg_ctx_t     *ctx;
    ngx_http_modelreg_update_t  *u;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    u = ctx->data;

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_send_error(r, u->status, "%V", &u->msg));
}


/* the update holds the request until update_done(): NGX_DONE */

static ngx_int_t
ngx_http_modelreg_update_send(ngx_http_request_t *r)
{
    ngx_uint_t                     i;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_fields_t    *f;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    f = &ctx->body->fields;

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_update_sql,
                                NGX_HTTP_MODELREG_UPDATE_PARAMS,
                                ngx_http_modelreg_update_done);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->route.id)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < sizeof(ngx_http_modelreg_update_fields)
                    / sizeof(ngx_uint_t); i++)
    {
        if (ngx_http_modelreg_query_param(r->pool, q, i + 1,
                               &f->value[ngx_http_modelreg_update_fields[i]])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_modelreg_audit_params(r, q, 17) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_update_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                 rc;
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    static u_char  completed[] = "{\"status\":\"completed\"}";

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg update: done, status:%ui sqlstate:%s",
                   q->status, q->sqlstate);

    /* whatever the outcome: a timed-out UPDATE may still have committed */
    ngx_http_modelreg_cache_invalidate(&ctx->route.id);

    if (q->status == NGX_HTTP_MODELREG_PG_OK) {

        if (PQgetvalue(q->result, 0, 0)[0] == '0') {
            ngx_http_modelreg_finish(r,
                ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                             "Model not found."));
            return;
        }

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                   &ngx_http_modelreg_json_type,
                                   completed, sizeof(completed) - 1));
        return;
    }

    /* a new name for a model that aliases of its name point at: 409 */

    rc = ngx_http_modelreg_referenced(r, q, &ctx->route.id);

    if (rc != NGX_DECLINED) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_conflict_query(r, q,
                                         ngx_http_modelreg_update_conflict_sql,
                                         &ctx->route.id));
}
