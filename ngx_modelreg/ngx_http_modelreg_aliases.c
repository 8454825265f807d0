
/*
 * Copyright (C) modelreg authors
 *
 * /aliases/{name}/{alias}: a name for "the model to deploy".
 *
 * The rules are the database's (sql/005): an alias refers to a model of
 * its own name by a foreign key, so a model cannot be deleted or renamed
 * while an alias points at it, and a set locks the model's row while it
 * checks the name, so a concurrent rename or delete is either seen or
 * waits.  A set or a deletion and its audit event are one statement.
 *
 * Resolving goes through the read cache (ngx_http_modelreg_cache.c) in
 * two steps, each a lookup of the shared zone: "<alias>@<name>" (no model
 * id has an "@") holds the lease generation it was read under and the
 * model's id, and the id the model's answer, as for GET /models/{id}.
 * The alias' entry is used only under this node's lease, and of its
 * generation.  A set or a deletion drops the entry here, then, once
 * committed, waits until every node has dropped it or lost its lease
 * (sql/005's sync, README "Across nodes: leases") before it answers: it
 * polls the database from a timer, holding no connection between checks,
 * so a late node delays only its writers.
 * The entry of an alias changes only with the alias: its model can be
 * neither deleted nor renamed under it.
 *
 * The files are the download of GET /models/{id}/files, reached with the
 * resolved id (ngx_http_modelreg_models.c), which then adds X-Model-Id.
 */


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_ALIAS_NAME_MAX  256

/* sql/005's modelreg_alias_set(): a name's 1001st alias */
#define NGX_HTTP_MODELREG_PG_LIMIT        "54000"


typedef struct {
    ngx_str_t                      name;       /* decoded */
    ngx_str_t                      alias;      /* decoded */
    ngx_str_t                      key;        /* the cache's */
    ngx_str_t                      cached;     /* the id the cache said */
    ngx_str_t                      model_id;   /* PUT's */
    uint64_t                       key_gen;
    uint64_t                       model_gen;
    uint64_t                       lease_gen;
    u_char                        *answer;     /* PUT's, while it syncs */
    size_t                         answer_len;
    ngx_uint_t                     status;
    ngx_str_t                      token;      /* the sync's */
    ngx_msec_t                     since;      /* the token's, monotonic */
    ngx_msec_t                     pause;      /* before the next check */
    ngx_event_t                    poll;       /* between checks */
    unsigned                       leased:1;   /* the alias' entry usable */
    unsigned                       no_model:1; /* no model has the name */
} ngx_http_modelreg_alias_t;


static ngx_http_modelreg_alias_t *ngx_http_modelreg_alias_init(
    ngx_http_request_t *r, ngx_int_t *rc);
static ngx_http_modelreg_alias_t *ngx_http_modelreg_alias_state(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_alias_decode(ngx_pool_t *pool,
    ngx_str_t *s);
static ngx_int_t ngx_http_modelreg_alias_query(ngx_http_request_t *r,
    const char *sql, ngx_uint_t n, ngx_http_modelreg_pg_handler_pt handler,
    ngx_str_t *third, ngx_uint_t audit);
static ngx_int_t ngx_http_modelreg_alias_missing(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_alias_found(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_str_t *id);
static void ngx_http_modelreg_alias_list_done(
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_alias_get_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_alias_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_alias_model_id(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *id);
static void ngx_http_modelreg_alias_set_done(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_alias_delete_done(
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_alias_cached(ngx_http_request_t *r,
    ngx_http_modelreg_alias_t *a, ngx_str_t *id);
static void ngx_http_modelreg_alias_store(ngx_http_request_t *r,
    ngx_http_modelreg_alias_t *a, ngx_str_t *id);
static void ngx_http_modelreg_alias_sync(ngx_http_request_t *r,
    ngx_uint_t status, u_char *answer, size_t len);
static void ngx_http_modelreg_alias_sync_requested(
    ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_alias_check(ngx_http_request_t *r);
static void ngx_http_modelreg_alias_checked(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_alias_poll(ngx_event_t *ev);
static void ngx_http_modelreg_alias_poll_cleanup(void *data);
static ngx_int_t ngx_http_modelreg_alias_resolved(ngx_http_request_t *r,
    ngx_str_t *id);
static void ngx_http_modelreg_alias_files_done(
    ngx_http_modelreg_pg_query_t *q);


static const char  ngx_http_modelreg_aliases_sql[] =
    "SELECT coalesce(json_agg(json_build_object('alias', alias,"
    " 'model_id', model_id, 'updated_date', modelreg_ts(updated_at))"
    " ORDER BY alias COLLATE \"C\"), '[]') FROM aliases WHERE name = $1";

static const char  ngx_http_modelreg_alias_get_sql[] =
    "SELECT a.model_id, modelreg_model_json(m, $3) FROM aliases a"
    " JOIN models m ON m.id = a.model_id"
    " WHERE a.name = $1 AND a.alias = $2";

static const char  ngx_http_modelreg_alias_id_sql[] =
    "SELECT model_id FROM aliases WHERE name = $1 AND alias = $2";

/*
 * The model's row is locked (FOR KEY SHARE) before its name is compared:
 * a rename or a delete that committed first is seen (a locking read sees
 * the newest version), one that comes later waits for this statement.
 * sql/005's function then locks the alias' row and writes the audit event
 * with the model_id it replaced: a statement's snapshot would miss a set
 * that committed after it was taken.
 */

static const char  ngx_http_modelreg_alias_set_sql[] =
    "WITH m AS (SELECT id, name FROM models WHERE id = $3 FOR KEY SHARE) "
    "SELECT CASE WHEN m.name = $1"
    " THEN modelreg_alias_set($1, $2, m.id, $4, $5, $6) END FROM m";

static const char  ngx_http_modelreg_alias_delete_sql[] =
    "WITH d AS (DELETE FROM aliases WHERE name = $1 AND alias = $2"
    " RETURNING name, alias, model_id), "
    "a AS (INSERT INTO audit_events (action, model_id, actor, request_id,"
    " remote_addr, status, details)"
    " SELECT 'alias.delete', d.model_id, $3, $4, $5, 204,"
    " jsonb_build_object('name', d.name, 'alias', d.alias) FROM d) "
    "SELECT model_id FROM d";


/* GET /aliases/{name} */

ngx_int_t
ngx_http_modelreg_aliases_list(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_modelreg_alias_t  *a;

    static u_char  empty[] = "[]";

    a = ngx_http_modelreg_alias_init(r, &rc);
    if (a == NULL) {
        return rc;
    }

    if (a->no_model) {
        return ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                      &ngx_http_modelreg_json_type,
                                      empty, sizeof(empty) - 1);
    }

    return ngx_http_modelreg_alias_query(r, ngx_http_modelreg_aliases_sql, 1,
                                         ngx_http_modelreg_alias_list_done,
                                         NULL, 0);
}


static void
ngx_http_modelreg_alias_list_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_request_t  *r;

    r = q->data;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_send(r, NGX_HTTP_OK, &ngx_http_modelreg_json_type,
                               (u_char *) PQgetvalue(q->result, 0, 0),
                               PQgetlength(q->result, 0, 0)));
}


/* GET /aliases/{name}/{alias}: the model, as GET /models/{id} */

ngx_int_t
ngx_http_modelreg_alias_get(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       id, cached;
    ngx_http_modelreg_alias_t      *a;
    ngx_http_modelreg_main_conf_t  *mcf;

    a = ngx_http_modelreg_alias_init(r, &rc);
    if (a == NULL) {
        return rc;
    }

    if (a->no_model) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Alias not found.");
    }

    if (ngx_http_modelreg_alias_cached(r, a, &id) == NGX_OK) {

        if (ngx_http_modelreg_cache_get(r, &id, &cached, &a->model_gen)
            == NGX_OK)
        {
            return ngx_http_modelreg_send(r, NGX_HTTP_OK,
                                          &ngx_http_modelreg_json_type,
                                          cached.data, cached.len);
        }

        /* the model's answer, read with the alias, may be stored */
        a->cached = id;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    return ngx_http_modelreg_alias_query(r, ngx_http_modelreg_alias_get_sql, 3,
                                         ngx_http_modelreg_alias_get_done,
                                         &mcf->store->url_prefix, 0);
}


static void
ngx_http_modelreg_alias_get_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_str_t                   id;
    ngx_http_request_t         *r;
    ngx_http_modelreg_alias_t  *a;

    r = q->data;
    a = ngx_http_modelreg_alias_state(r);

    rc = ngx_http_modelreg_alias_found(r, q, &id);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    if (a->cached.len == id.len
        && ngx_strncmp(a->cached.data, id.data, id.len) == 0)
    {
        ngx_http_modelreg_cache_put(&id,
                                    (u_char *) PQgetvalue(q->result, 0, 1),
                                    PQgetlength(q->result, 0, 1),
                                    a->model_gen);
    }

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_send(r, NGX_HTTP_OK, &ngx_http_modelreg_json_type,
                               (u_char *) PQgetvalue(q->result, 0, 1),
                               PQgetlength(q->result, 0, 1)));
}


/* PUT /aliases/{name}/{alias}: {"model_id": "<id>"} or model_id=<id> */

ngx_int_t
ngx_http_modelreg_alias_set(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (ngx_http_modelreg_alias_init(r, &rc) == NULL) {
        (void) ngx_http_discard_request_body(r);
        return rc;
    }

    rc = ngx_http_modelreg_body_read(r, 0, ngx_http_modelreg_alias_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_alias_body(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_modelreg_ctx_t    *ctx;
    ngx_http_modelreg_alias_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    a = ctx->data;

    if (ngx_http_modelreg_body_finish(r) != NGX_OK) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->body->too_large) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "Request Entity Too Large"));
        return;
    }

    rc = ngx_http_modelreg_alias_model_id(r, ctx->body, &a->model_id);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    if (a->model_id.len == 0) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                         "Field required: model_id"));
        return;
    }

    if (ngx_http_modelreg_valid_id(a->model_id.data, a->model_id.len)
        != NGX_OK)
    {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "Invalid format for model ID."));
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg aliases: set \"%V\" to \"%V\"",
                   &a->key, &a->model_id);

    ngx_http_modelreg_finish(r,
        ngx_http_modelreg_alias_query(r, ngx_http_modelreg_alias_set_sql, 6,
                                      ngx_http_modelreg_alias_set_done,
                                      &a->model_id, 3));
}


/*
 * model_id of a JSON object or a form: NGX_OK with "id" empty when it is
 * absent, empty, or not a string; else the answer's rc (a body that is
 * JSON but not an object is 400, as on PUT /models/{id}).
 */

static ngx_int_t
ngx_http_modelreg_alias_model_id(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *id)
{
    json_t                   *json, *v;
    ngx_str_t                *ct;
    ngx_uint_t                i;
    ngx_array_t               args;
    ngx_http_modelreg_arg_t  *arg;

    ngx_str_null(id);

    /* (a multipart body is parsed as a model's fields: no model_id) */

    if (body->raw == NULL) {
        return NGX_OK;
    }

    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;

    if (ct && ct->len >= sizeof("application/json") - 1
        && ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) == 0)
    {
        json = json_loadb((char *) body->raw->pos,
                          body->raw->last - body->raw->pos,
                          0, NULL);

        if (json == NULL || !json_is_object(json)) {
            json_decref(json);
            return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                "Malformed JSON body: "
                                                "an object is expected.");
        }

        if (ngx_http_modelreg_json_pool(r->pool, json) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        v = json_object_get(json, "model_id");

        if (json_is_string(v)) {
            id->data = (u_char *) json_string_value(v);
            id->len = json_string_length(v);
        }

        return NGX_OK;
    }

    /* x-www-form-urlencoded, also when no type is given */

    if (ngx_array_init(&args, r->pool, 4, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_http_modelreg_form_decode(r->pool, body->raw->pos,
                                         body->raw->last, &args)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    arg = args.elts;

    for (i = 0; i < args.nelts; i++) {
        if (arg[i].key.len == sizeof("model_id") - 1
            && ngx_strncmp(arg[i].key.data, "model_id", arg[i].key.len) == 0)
        {
            *id = arg[i].value;
        }
    }

    return NGX_OK;
}


static void
ngx_http_modelreg_alias_set_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_request_t         *r;
    ngx_http_modelreg_alias_t  *a;

    r = q->data;
    a = ngx_http_modelreg_alias_state(r);

    /* whatever the outcome: a timed-out set may still have committed */
    ngx_http_modelreg_cache_invalidate(&a->key);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg aliases: \"%V\" set: %ui", &a->key, q->status);

    if (q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR
        && ngx_strcmp(q->sqlstate, NGX_HTTP_MODELREG_PG_LIMIT) == 0)
    {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                         "Too many aliases: %V has 1000 "
                                         "already.", &a->name));
        return;
    }

    if (q->status != NGX_HTTP_MODELREG_PG_OK || PQntuples(q->result) == 0) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_model_missing(r, q));
        return;
    }

    if (PQgetisnull(q->result, 0, 0)) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                         "Model %V is not named %V.",
                                         &a->model_id, &a->name));
        return;
    }

    ngx_http_modelreg_alias_sync(r, NGX_HTTP_OK,
                                 (u_char *) PQgetvalue(q->result, 0, 0),
                                 PQgetlength(q->result, 0, 0));
}


/* DELETE /aliases/{name}/{alias} */

ngx_int_t
ngx_http_modelreg_alias_delete(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_modelreg_alias_t  *a;

    a = ngx_http_modelreg_alias_init(r, &rc);
    if (a == NULL) {
        return rc;
    }

    if (a->no_model) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Alias not found.");
    }

    return ngx_http_modelreg_alias_query(r, ngx_http_modelreg_alias_delete_sql,
                                         5,
                                         ngx_http_modelreg_alias_delete_done,
                                         NULL, 2);
}


static void
ngx_http_modelreg_alias_delete_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                   rc;
    ngx_http_request_t         *r;
    ngx_http_modelreg_alias_t  *a;

    r = q->data;
    a = ngx_http_modelreg_alias_state(r);

    /* whatever the outcome: a timed-out DELETE may still have committed */
    ngx_http_modelreg_cache_invalidate(&a->key);

    rc = ngx_http_modelreg_alias_missing(r, q);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_http_modelreg_alias_sync(r, NGX_HTTP_NO_CONTENT, NULL, 0);
}


/*
 * A committed set or deletion: its answer waits until no node can serve
 * the old alias from its cache.  First a sync token, in a transaction of
 * its own (its NOTIFY queued behind the change's), then checks until
 * every node acknowledged it or its lease ended.
 */

static void
ngx_http_modelreg_alias_sync(ngx_http_request_t *r, ngx_uint_t status,
    u_char *answer, size_t len)
{
    ngx_http_modelreg_alias_t     *a;
    ngx_http_modelreg_pg_query_t  *q;

    a = ngx_http_modelreg_alias_state(r);

    a->status = status;
    a->answer_len = len;

    if (len) {
        a->answer = ngx_pnalloc(r->pool, len);
        if (a->answer == NULL) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_memcpy(a->answer, answer, len);
    }

    q = ngx_http_modelreg_query(r, "SELECT modelreg_cache_sync_request()", 0,
                                ngx_http_modelreg_alias_sync_requested);

    if (q == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_query_start(r, q));
}


/*
 * The cap runs from the token's answer, on the monotonic clock: every
 * lease a node held then ends within it (leases themselves are compared
 * with the database server's clock, by sql/005's check).
 */

static void
ngx_http_modelreg_alias_sync_requested(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_request_t         *r;
    ngx_pool_cleanup_t         *cln;
    ngx_http_modelreg_alias_t  *a;

    r = q->data;
    a = ngx_http_modelreg_alias_state(r);

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    a->since = ngx_http_modelreg_cache_clock();
    a->pause = 1;

    a->token.len = PQgetlength(q->result, 0, 0);
    a->token.data = ngx_pnalloc(r->pool, a->token.len);

    /* a request that ends while its timer is set takes the timer along */
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (a->token.data == NULL || cln == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(a->token.data, PQgetvalue(q->result, 0, 0), a->token.len);

    cln->handler = ngx_http_modelreg_alias_poll_cleanup;
    cln->data = a;

    /*
     * Not cancelable: a worker that shuts down gracefully still answers
     * the writers it holds, within the cap.
     */

    a->poll.handler = ngx_http_modelreg_alias_poll;
    a->poll.data = r;
    a->poll.log = r->connection->log;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg aliases: \"%V\" sync token %V",
                   &a->key, &a->token);

    ngx_http_modelreg_finish(r, ngx_http_modelreg_alias_check(r));
}


/* one check: a statement, then the connection goes back to the pool */

static ngx_int_t
ngx_http_modelreg_alias_check(ngx_http_request_t *r)
{
    ngx_http_modelreg_alias_t     *a;
    ngx_http_modelreg_pg_query_t  *q;

    a = ngx_http_modelreg_alias_state(r);

    q = ngx_http_modelreg_query(r, "SELECT modelreg_cache_late($1)", 1,
                                ngx_http_modelreg_alias_checked);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0, &a->token) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_alias_checked(ngx_http_modelreg_pg_query_t *q)
{
    ngx_msec_t                  waited, delay;
    ngx_http_request_t         *r;
    ngx_http_modelreg_alias_t  *a;

    r = q->data;
    a = ngx_http_modelreg_alias_state(r);

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    if (ngx_strcmp(PQgetvalue(q->result, 0, 0), "0") == 0) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send(r, a->status,
                                   a->answer ? &ngx_http_modelreg_json_type
                                             : NULL,
                                   a->answer, a->answer_len));
        return;
    }

    waited = ngx_http_modelreg_cache_clock() - a->since;

    /*
     * The cap is past every lease: a node still late renews its lease
     * without following.  Its cache may still say otherwise: not a
     * success, though the change was made (as when the database fails).
     */

    if (waited >= NGX_HTTP_MODELREG_CACHE_SYNC_CAP) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "modelreg: %s node(s) neither acknowledged the change "
                      "of \"%V\" nor let their lease end within %d ms",
                      PQgetvalue(q->result, 0, 0), &a->key,
                      NGX_HTTP_MODELREG_CACHE_SYNC_CAP);

        ngx_http_modelreg_finish(r, ngx_http_modelreg_db_unavailable(r));
        return;
    }

    /* the last check comes at the cap: a lease may end just before it */
    delay = ngx_min(a->pause, NGX_HTTP_MODELREG_CACHE_SYNC_CAP - waited);
    a->pause = ngx_min(a->pause * 2, 50);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg aliases: \"%V\" waits for %s node(s), "
                   "next check in %M ms",
                   &a->key, PQgetvalue(q->result, 0, 0), delay);

    /* up to ~66 checks a wait: each result goes now, not with the pool */
    PQclear(q->result);
    q->result = NULL;

    r->main->count++;
    ngx_add_timer(&a->poll, delay);

    ngx_http_modelreg_finish(r, NGX_DONE);
}


/* a request's timer: its work ends as a request event's would */

static void
ngx_http_modelreg_alias_poll(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "modelreg aliases: sync check");

    /* finish() runs the connection's posted requests after it */
    ngx_http_modelreg_finish(r, ngx_http_modelreg_alias_check(r));
}


static void
ngx_http_modelreg_alias_poll_cleanup(void *data)
{
    ngx_http_modelreg_alias_t  *a = data;

    if (a->poll.timer_set) {
        ngx_del_timer(&a->poll);
    }
}


/*
 * The alias' entry, under this node's lease and of its generation: NGX_OK
 * and "id".  Else the read goes to the database, and stores what it read
 * only if the lease held when it started (alias_store()).
 */

static ngx_int_t
ngx_http_modelreg_alias_cached(ngx_http_request_t *r,
    ngx_http_modelreg_alias_t *a, ngx_str_t *id)
{
    uint64_t   gen;
    ngx_str_t  v;

    a->leased = ngx_http_modelreg_cache_leased(&a->lease_gen);

    if (!a->leased) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg aliases: no lease, \"%V\" not looked up",
                       &a->key);
        return NGX_DECLINED;
    }

    if (ngx_http_modelreg_cache_get(r, &a->key, &v, &a->key_gen) != NGX_OK
        || v.len <= sizeof(uint64_t))
    {
        return NGX_DECLINED;
    }

    ngx_memcpy(&gen, v.data, sizeof(uint64_t));

    if (gen != a->lease_gen) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg aliases: \"%V\" of an older lease",
                       &a->key);
        return NGX_DECLINED;
    }

    id->data = v.data + sizeof(uint64_t);
    id->len = v.len - sizeof(uint64_t);

    return NGX_OK;
}


static void
ngx_http_modelreg_alias_store(ngx_http_request_t *r,
    ngx_http_modelreg_alias_t *a, ngx_str_t *id)
{
    u_char  *v;

    if (!a->leased) {
        return;
    }

    v = ngx_pnalloc(r->pool, sizeof(uint64_t) + id->len);
    if (v == NULL) {
        return;
    }

    ngx_memcpy(v, &a->lease_gen, sizeof(uint64_t));
    ngx_memcpy(v + sizeof(uint64_t), id->data, id->len);

    ngx_http_modelreg_cache_put(&a->key, v, sizeof(uint64_t) + id->len,
                                a->key_gen);
}


/* GET|HEAD /aliases/{name}/{alias}/files: the download of the model */

ngx_int_t
ngx_http_modelreg_alias_files(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                   id;
    ngx_http_modelreg_alias_t  *a;

    a = ngx_http_modelreg_alias_init(r, &rc);
    if (a == NULL) {
        return rc;
    }

    if (a->no_model) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Alias not found.");
    }

    if (ngx_http_modelreg_alias_cached(r, a, &id) == NGX_OK) {
        return ngx_http_modelreg_alias_resolved(r, &id);
    }

    return ngx_http_modelreg_alias_query(r, ngx_http_modelreg_alias_id_sql, 2,
                                         ngx_http_modelreg_alias_files_done,
                                         NULL, 0);
}


static void
ngx_http_modelreg_alias_files_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t            rc;
    ngx_str_t            id;
    ngx_http_request_t  *r;

    r = q->data;

    rc = ngx_http_modelreg_alias_found(r, q, &id);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_alias_resolved(r, &id));
}


/* from here on the request is about the model: its download, its audit */

static ngx_int_t
ngx_http_modelreg_alias_resolved(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    ctx->route.id.data = ngx_pstrdup(r->pool, id);
    if (ctx->route.id.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->route.id.len = id->len;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg aliases: \"%V\" is \"%V\"",
                   &((ngx_http_modelreg_alias_t *) ctx->data)->key, id);

    return ngx_http_modelreg_models_files(r);
}


/*
 * The route's state from its path: the name and the alias decoded, the
 * cache's key.  NULL: answered ("rc"), or an error.  A name that no model
 * can have (not UTF-8, over 256 bytes) is never sent to the database:
 * "no_model".  (nginx answers a %00 with its own 400 before this.)
 */

static ngx_http_modelreg_alias_t *
ngx_http_modelreg_alias_init(ngx_http_request_t *r, ngx_int_t *rc)
{
    u_char                     *p;
    ngx_http_modelreg_ctx_t    *ctx;
    ngx_http_modelreg_alias_t  *a;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    a = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_alias_t));
    if (a == NULL) {
        return NULL;
    }

    ctx->data = a;

    a->name = ctx->route.id;
    a->alias = ctx->route.sub;

    if (ngx_http_modelreg_alias_decode(r->pool, &a->name) != NGX_OK
        || ngx_http_modelreg_alias_decode(r->pool, &a->alias) != NGX_OK)
    {
        return NULL;
    }

    if (ctx->route.route != NGX_HTTP_MODELREG_ROUTE_ALIASES
        && ngx_http_modelreg_valid_alias(a->alias.data, a->alias.len)
           != NGX_OK)
    {
        *rc = ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                           "Invalid alias.");
        return NULL;
    }

    a->no_model = (a->name.len > NGX_HTTP_MODELREG_ALIAS_NAME_MAX
                   || ngx_http_modelreg_utf8_valid(a->name.data, a->name.len)
                      != NGX_OK);

    a->key.len = a->alias.len + 1 + a->name.len;
    a->key.data = ngx_pnalloc(r->pool, a->key.len);
    if (a->key.data == NULL) {
        return NULL;
    }

    p = ngx_cpymem(a->key.data, a->alias.data, a->alias.len);
    *p++ = '@';
    ngx_memcpy(p, a->name.data, a->name.len);

    return a;
}


static ngx_http_modelreg_alias_t *
ngx_http_modelreg_alias_state(ngx_http_request_t *r)
{
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    return ctx->data;
}


/* a path segment's %XX decoded, into a copy: the URI stays as it came */

static ngx_int_t
ngx_http_modelreg_alias_decode(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *d;

    if (s->len == 0) {
        return NGX_OK;
    }

    d = ngx_pnalloc(pool, s->len);
    if (d == NULL) {
        return NGX_ERROR;
    }

    s->len = ngx_http_modelreg_unescape(d, s->data, s->len, 0);
    s->data = d;

    return NGX_OK;
}


/*
 * A statement whose parameters are the name, the alias (when n > 1),
 * "third" when given (GET: the store's URL prefix, PUT: the model_id),
 * and from "audit" on (unless 0) the audit values.
 */

static ngx_int_t
ngx_http_modelreg_alias_query(ngx_http_request_t *r, const char *sql,
    ngx_uint_t n, ngx_http_modelreg_pg_handler_pt handler, ngx_str_t *third,
    ngx_uint_t audit)
{
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_alias_t     *a;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    a = ctx->data;

    q = ngx_http_modelreg_query(r, sql, n, handler);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0,
                                         a->no_model ? NULL : &a->name)
           != NGX_OK
        || (n > 1
            && ngx_http_modelreg_query_param(r->pool, q, 1, &a->alias)
               != NGX_OK)
        || (third
            && ngx_http_modelreg_query_param(r->pool, q, 2, third) != NGX_OK)
        || (audit
            && ngx_http_modelreg_audit_params(r, q, audit) != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_modelreg_query_start(r, q);
}


/* the alias resolved by the database: its model's id, kept in the cache */

static ngx_int_t
ngx_http_modelreg_alias_found(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_str_t *id)
{
    ngx_int_t  rc;

    rc = ngx_http_modelreg_alias_missing(r, q);

    if (rc != NGX_OK) {
        return rc;
    }

    id->data = (u_char *) PQgetvalue(q->result, 0, 0);
    id->len = PQgetlength(q->result, 0, 0);

    ngx_http_modelreg_alias_store(r, ngx_http_modelreg_alias_state(r), id);

    return NGX_OK;
}


/* NGX_OK when the first row is the alias' (or its model's), else sent */

static ngx_int_t
ngx_http_modelreg_alias_missing(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_alias_t  *a;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        return ngx_http_modelreg_pg_error(r, q);
    }

    if (PQntuples(q->result) == 0) {
        a = ngx_http_modelreg_alias_state(r);

        /* nothing cached may say otherwise any more */
        ngx_http_modelreg_cache_put(&a->key, NULL, 0, 0);

        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Alias not found.");
    }

    return NGX_OK;
}
