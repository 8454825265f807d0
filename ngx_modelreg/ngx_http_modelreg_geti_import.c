
/*
 * Copyright (C) modelreg authors
 *
 * POST /projects/{id}/geti-models/download: checks in API.md's order
 * (body 422, then Geti: unknown 404, not OpenVINO 403, then registered
 * already 409), nothing imported unless all pass; then each model in
 * turn: an export prepared, polled by a timer with back-off up to the
 * deadline, its ZIP streamed into the spool (hashed as it comes), and
 * registered like an upload, audited as geti.import.  One model at a
 * time: its calls, spool file and buffers are released when it is done,
 * so a request holds one model's worth however many it asks for.
 */


#include "ngx_http_modelreg_geti.h"


/* an export's state is asked after 100 ms, then twice as late, to 2 s */
#define NGX_HTTP_MODELREG_POLL_MIN  100
#define NGX_HTTP_MODELREG_POLL_MAX  2000

/* the pool of one model's calls */
#define NGX_HTTP_MODELREG_GETI_MODEL_POOL  4096


typedef struct {
    json_t                         *ref;        /* {"id","group_id"} */
    json_t                         *optimized;  /* found in Geti */
    json_t                         *base;       /* its model */
} ngx_http_modelreg_geti_want_t;


typedef struct {
    ngx_http_modelreg_geti_list_t   l;          /* first: calls count */

    ngx_str_t                       project_id;
    json_t                         *project;
    json_t                         *body;       /* the request's JSON */
    ngx_http_modelreg_geti_want_t  *want;
    ngx_uint_t                      nwant;

    /* the imports, one after the other */
    ngx_uint_t                      next;
    ngx_http_modelreg_body_t       *spool;      /* the current one's */
    ngx_str_t                       deployment;
    ngx_msec_t                      deadline;
    ngx_msec_t                      backoff;
    ngx_event_t                     poll;
    json_t                         *registered;
    ngx_array_t                     failed;     /* ngx_str_t ids */
    ngx_array_t                     timed_out;
    ngx_array_t                     taken;      /* by a concurrent import */
    ngx_uint_t                      stage;
    ngx_uint_t                      expired;
    const char                     *down;       /* a dependency that was */
} ngx_http_modelreg_geti_import_t;


#define NGX_HTTP_MODELREG_STAGE_LOOKUP    0
#define NGX_HTTP_MODELREG_STAGE_PREPARE   1
#define NGX_HTTP_MODELREG_STAGE_POLL      2
#define NGX_HTTP_MODELREG_STAGE_DOWNLOAD  3


static void ngx_http_modelreg_geti_import_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_geti_import_parse(ngx_http_request_t *r,
    ngx_http_modelreg_geti_import_t *im, ngx_str_t *why);
static void ngx_http_modelreg_geti_import_project(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_geti_import_groups(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_geti_import_model(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_geti_import_looked(
    ngx_http_modelreg_geti_list_t *l);
static void ngx_http_modelreg_geti_import_known(
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_geti_import_next(
    ngx_http_modelreg_geti_import_t *im);
static void ngx_http_modelreg_geti_import_prepared(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_geti_import_poll(ngx_event_t *ev);
static void ngx_http_modelreg_geti_import_state(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static ngx_int_t ngx_http_modelreg_geti_import_sink(
    ngx_http_modelreg_curl_t *cu, u_char *p, size_t len);
static void ngx_http_modelreg_geti_import_downloaded(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_geti_import_step(
    ngx_http_modelreg_geti_list_t *l);
static ngx_int_t ngx_http_modelreg_geti_import_fields(
    ngx_http_modelreg_geti_import_t *im, ngx_http_modelreg_body_t *body);
static void ngx_http_modelreg_geti_import_registered(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_geti_import_unregistered(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_modelreg_geti_import_fail(
    ngx_http_modelreg_geti_import_t *im, ngx_array_t *list);
static void ngx_http_modelreg_geti_import_answer(
    ngx_http_modelreg_geti_import_t *im);
static ngx_int_t ngx_http_modelreg_geti_import_ids(ngx_pool_t *pool,
    ngx_http_modelreg_geti_want_t *want, ngx_uint_t n, ngx_array_t *ids,
    ngx_str_t *out);
static void ngx_http_modelreg_geti_import_release(
    ngx_http_modelreg_geti_import_t *im);
static void ngx_http_modelreg_geti_import_cleanup(void *data);


static const char  ngx_http_modelreg_known_sql[] =
    "SELECT id FROM models WHERE id = ANY($1::text[])";


ngx_int_t
ngx_http_modelreg_geti_import(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_modelreg_body_read(r, 0,
                                     ngx_http_modelreg_geti_import_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_geti_import_body(ngx_http_request_t *r)
{
    u_char                           *p;
    ngx_str_t                         path, why;
    ngx_pool_cleanup_t               *cln;
    ngx_http_modelreg_ctx_t          *ctx;
    ngx_http_modelreg_geti_import_t  *im;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    im = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_geti_import_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (im == NULL || cln == NULL
        || ngx_http_modelreg_body_finish(r) != NGX_OK
        || ngx_array_init(&im->failed, r->pool, 2, sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&im->timed_out, r->pool, 2, sizeof(ngx_str_t))
           != NGX_OK
        || ngx_array_init(&im->taken, r->pool, 2, sizeof(ngx_str_t))
           != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_modelreg_geti_import_cleanup;
    cln->data = im;

    im->l.request = r;
    im->l.finish = ngx_http_modelreg_geti_import_step;
    im->l.want_404 = 1;
    im->project_id = ctx->route.id;
    im->registered = json_array();

    im->poll.handler = ngx_http_modelreg_geti_import_poll;
    im->poll.data = im;
    im->poll.log = r->connection->log;

    ctx->data = im;

    if (im->registered == NULL
        || ngx_http_modelreg_json_pool(r->pool, im->registered) != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    switch (ngx_http_modelreg_geti_import_parse(r, im, &why)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                         "Invalid request body: %V", &why));
        return;

    default:
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the lookup: the project, its groups, the models of the groups */

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: project %V, %ui models: lookup",
                   &im->project_id, im->nwant);

    p = ngx_pnalloc(r->pool, sizeof("/projects/") + im->project_id.len);
    if (p == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    path.data = p;
    path.len = ngx_sprintf(p, "/projects/%V", &im->project_id) - p;

    if (ngx_http_modelreg_geti_get(&im->l, &path,
                                   ngx_http_modelreg_geti_import_project,
                                   NULL)
        != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


static ngx_int_t
ngx_http_modelreg_geti_import_parse(ngx_http_request_t *r,
    ngx_http_modelreg_geti_import_t *im, ngx_str_t *why)
{
    size_t                     i;
    json_t                    *models, *m;
    ngx_int_t                  rc;
    ngx_buf_t                 *raw;
    json_error_t               err;
    ngx_http_modelreg_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    raw = ctx->body->raw;

    if (raw == NULL || ctx->body->too_large) {
        ngx_str_set(why, "a JSON object is expected");
        return NGX_DECLINED;
    }

    im->body = json_loadb((char *) raw->pos, raw->last - raw->pos, 0, &err);

    if (im->body == NULL) {
        ngx_str_set(why, "not JSON");
        return NGX_DECLINED;
    }

    if (ngx_http_modelreg_json_pool(r->pool, im->body) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the text is parsed: its buffer (up to 4 MiB) need not last */

    if (ngx_pfree(r->pool, raw->start) == NGX_OK) {
        raw->start = NULL;
        raw->pos = NULL;
        raw->last = NULL;
        raw->end = NULL;
    }

    rc = ngx_http_modelreg_geti_wanted(r->pool, im->body, &models, why);
    if (rc != NGX_OK) {
        return rc;
    }

    im->nwant = json_array_size(models);
    im->want = ngx_pcalloc(r->pool,
                           im->nwant * sizeof(ngx_http_modelreg_geti_want_t));
    if (im->want == NULL) {
        return NGX_ERROR;
    }

    json_array_foreach(models, i, m) {
        im->want[i].ref = m;
    }

    return NGX_OK;
}


static void
ngx_http_modelreg_geti_import_project(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    u_char      *p;
    ngx_str_t    path;
    const char  *is, *what;

    /* what GET /projects/{id} checks, and the tasks (the category) */

    if (ngx_http_modelreg_geti_check_project(l, json) != NGX_OK) {
        return;
    }

    is = ngx_http_modelreg_geti_bad_pipeline(json, &what);

    if (ngx_http_modelreg_geti_checked(l, is, what) != NGX_OK) {
        return;
    }

    im->project = json_incref(json);

    if (ngx_http_modelreg_json_pool(l->request->pool, im->project) != NGX_OK)
    {
        l->failed = 1;
        return;
    }

    p = ngx_pnalloc(l->request->pool, sizeof("/projects//model_groups")
                                      + im->project_id.len);
    if (p == NULL) {
        l->failed = 1;
        return;
    }

    path.data = p;
    path.len = ngx_sprintf(p, "/projects/%V/model_groups", &im->project_id)
               - p;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, l->request->connection->log, 0,
                   "modelreg geti_import: project %V found, its model groups",
                   &im->project_id);

    if (ngx_http_modelreg_geti_get(l, &path,
                                   ngx_http_modelreg_geti_import_groups, NULL)
        != NGX_OK)
    {
        l->failed = 1;
    }
}


/* the details of every model in the groups that were asked for */

static void
ngx_http_modelreg_geti_import_groups(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    u_char       *p;
    size_t        i, k, len;
    json_t       *g, *m;
    ngx_str_t     path, gcopy;
    ngx_uint_t    n;
    const char   *gid;

    if (ngx_http_modelreg_geti_check_groups(l, json) != NGX_OK) {
        return;
    }

    json_array_foreach(json_object_get(json, "model_groups"), i, g) {
        gid = json_string_value(json_object_get(g, "id"));

        for (n = 0; n < im->nwant; n++) {
            if (ngx_strcmp(gid, json_string_value(
                          json_object_get(im->want[n].ref, "group_id")))
                       == 0)
            {
                break;
            }
        }

        if (n == im->nwant) {
            continue;
        }

        json_array_foreach(json_object_get(g, "models"), k, m) {
            len = sizeof("/projects//model_groups//models/")
                  + im->project_id.len + ngx_strlen(gid)
                  + json_string_length(json_object_get(m, "id"));

            p = ngx_pnalloc(l->request->pool, len);
            if (p == NULL) {
                l->failed = 1;
                return;
            }

            path.data = p;
            path.len = ngx_sprintf(p, "/projects/%V/model_groups/%s/models/%s",
                                   &im->project_id, gid,
                                   json_string_value(json_object_get(m, "id")))
                       - p;

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, l->request->connection->log,
                           0, "modelreg geti_import: group %s, model %s",
                           gid, json_string_value(json_object_get(m, "id")));

            /* (the group's JSON goes when this returns: a copy of its id) */

            gcopy.data = (u_char *) gid;
            gcopy.len = ngx_strlen(gid) + 1;

            if (ngx_http_modelreg_geti_get(l, &path,
                                           ngx_http_modelreg_geti_import_model,
                                           ngx_pstrdup(l->request->pool,
                                                       &gcopy))
                != NGX_OK)
            {
                l->failed = 1;
                return;
            }
        }
    }
}


/* a model's details: which of the wanted optimized models are its */

static void
ngx_http_modelreg_geti_import_model(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    const char *gid = arg;

    size_t       i;
    json_t      *o;
    ngx_uint_t   n;
    const char  *id, *is, *what;

    if (ngx_http_modelreg_geti_check_model(l, json) != NGX_OK) {
        return;
    }

    json_array_foreach(json_object_get(json, "optimized_models"), i, o) {
        id = json_string_value(json_object_get(o, "id"));

        for (n = 0; n < im->nwant; n++) {
            if (ngx_strcmp(id, json_string_value(
                               json_object_get(im->want[n].ref, "id"))) == 0
                && ngx_strcmp(gid, json_string_value(
                          json_object_get(im->want[n].ref, "group_id"))) == 0)
            {
                /* all it takes to register it, checked now, before any */

                is = ngx_http_modelreg_geti_bad_optimized(o, json, &what);

                if (ngx_http_modelreg_geti_checked(l, is, what) != NGX_OK) {
                    return;
                }

                im->want[n].optimized = json_incref(o);
                im->want[n].base = json_incref(json);

                (void) ngx_http_modelreg_json_pool(l->request->pool, o);
                (void) ngx_http_modelreg_json_pool(l->request->pool, json);
            }
        }
    }
}


/* the last call of a stage is done: on to the stage's next step */

static void
ngx_http_modelreg_geti_import_step(ngx_http_modelreg_geti_list_t *l)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    ngx_array_t  *list;

    switch (im->stage) {

    case NGX_HTTP_MODELREG_STAGE_LOOKUP:
        ngx_http_modelreg_geti_import_looked(l);
        return;

    default:

        /* an export call went wrong: this model failed, go on */

        if (l->failed || l->not_found) {
            list = im->expired ? &im->timed_out : &im->failed;

            /* not the export's failure: Geti went away (found by t/40) */

            if (l->down && !l->invalid) {
                im->down = NGX_HTTP_MODELREG_GETI_DOWN;
            }

            l->failed = 0;
            l->invalid = 0;
            l->not_found = 0;
            l->down = 0;
            im->expired = 0;

            /* (the last thing: it may answer, and free, the request) */

            ngx_http_modelreg_geti_import_fail(im, list);
        }

        return;
    }
}


static void
ngx_http_modelreg_geti_import_looked(ngx_http_modelreg_geti_list_t *l)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    const char                    *fmt;
    ngx_str_t                      ids;
    ngx_uint_t                     n;
    ngx_array_t                    bad;
    ngx_http_request_t            *r;
    ngx_http_modelreg_pg_query_t  *q;

    r = l->request;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: lookup done%s%s%s",
                   l->invalid ? ", invalid" : "",
                   l->failed ? ", failed" : "",
                   l->not_found ? ", not found" : "");

    if (l->invalid) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_geti_invalid(r));
        return;
    }

    if (l->failed) {
        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         NGX_HTTP_MODELREG_GETI_DOWN));
        return;
    }

    for (n = 0; n < im->nwant; n++) {
        if (l->not_found || im->want[n].optimized == NULL) {
            ngx_http_modelreg_finish(r,
                ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                             "Project or model id not found. "
                                             "No model(s) registered."));
            return;
        }
    }

    if (ngx_array_init(&bad, r->pool, 2, sizeof(ngx_uint_t)) != NGX_OK) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (n = 0; n < im->nwant; n++) {
        fmt = json_string_value(json_object_get(im->want[n].optimized,
                                                "model_format"));

        if (ngx_strcasecmp((u_char *) fmt, (u_char *) "openvino") != 0) {
            *(ngx_uint_t *) ngx_array_push(&bad) = n;
        }
    }

    if (bad.nelts) {
        if (ngx_http_modelreg_geti_import_ids(r->pool, im->want, im->nwant,
                                              &bad, &ids)
            != NGX_OK)
        {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_FORBIDDEN,
                                         "Model(s): %V can not be registered. "
                                         "Only OpenVINO optimized models are "
                                         "supported.", &ids));
        return;
    }

    /* registered already? (the id of an import is Geti's) */

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: registered already?");

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_known_sql, 1,
                                ngx_http_modelreg_geti_import_known);

    if (q == NULL
        || ngx_http_modelreg_geti_import_ids(r->pool, im->want, im->nwant,
                                             NULL, &ids)
           != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* as a PostgreSQL array: {"a","b"} (ids are [A-Za-z0-9_-]) */

    {
        u_char      *p;
        ngx_str_t    arr;

        arr.data = ngx_pnalloc(r->pool, 3 * ids.len + 3);
        if (arr.data == NULL) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        p = arr.data;
        *p++ = '{';

        for (n = 0; n < im->nwant; n++) {
            if (n) {
                *p++ = ',';
            }

            p = ngx_sprintf(p, "\"%s\"", json_string_value(
                                json_object_get(im->want[n].ref, "id")));
        }

        *p++ = '}';
        arr.len = p - arr.data;

        if (ngx_http_modelreg_query_param(r->pool, q, 0, &arr) != NGX_OK) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_query_start(r, q));
}


static void
ngx_http_modelreg_geti_import_known(ngx_http_modelreg_pg_query_t *q)
{
    int                               i;
    ngx_str_t                        *id, list;
    ngx_array_t                       known;
    ngx_http_request_t               *r;
    ngx_http_modelreg_ctx_t          *ctx;
    ngx_http_modelreg_geti_import_t  *im;

    r = q->data;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    im = ctx->data;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_finish(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    if (PQntuples(q->result) > 0) {
        if (ngx_array_init(&known, r->pool, 2, sizeof(ngx_str_t)) != NGX_OK) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        for (i = 0; i < PQntuples(q->result); i++) {
            id = ngx_array_push(&known);
            if (id == NULL) {
                ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            id->data = (u_char *) PQgetvalue(q->result, i, 0);
            id->len = PQgetlength(q->result, i, 0);
        }

        if (ngx_http_modelreg_join(r->pool, &known, &list) != NGX_OK) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_CONFLICT,
                                         "Model(s): %V already registered. "
                                         "No model(s) registered.", &list));
        return;
    }

    /* every check passed: import them, one after the other */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: checks passed, %ui to import",
                   im->nwant);

    im->next = 0;
    ngx_http_modelreg_geti_import_next(im);
}


static void
ngx_http_modelreg_geti_import_next(ngx_http_modelreg_geti_import_t *im)
{
    u_char                         *p;
    json_t                         *body;
    ngx_str_t                       path;
    ngx_http_request_t             *r;
    ngx_http_modelreg_geti_want_t  *w;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = im->l.request;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    /* the model before is done: what it held goes before the next one */

    ngx_http_modelreg_geti_import_release(im);

    if (im->next == im->nwant) {
        ngx_http_modelreg_geti_import_answer(im);
        return;
    }

    w = &im->want[im->next];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: model %s (%ui of %ui): export",
                   json_string_value(json_object_get(w->ref, "id")),
                   im->next + 1, im->nwant);

    /* this model's calls come from a pool of its own, gone with it */

    im->l.pool = ngx_create_pool(NGX_HTTP_MODELREG_GETI_MODEL_POOL,
                                 r->connection->log);
    if (im->l.pool == NULL) {
        ngx_http_modelreg_geti_import_fail(im, &im->failed);
        return;
    }

    im->stage = NGX_HTTP_MODELREG_STAGE_PREPARE;
    im->deadline = ngx_current_msec + mcf->geti->export_timeout;
    im->backoff = NGX_HTTP_MODELREG_POLL_MIN;

    body = json_pack("{s:[{s:O,s:O}]}", "models",
                     "model_id", json_object_get(w->ref, "id"),
                     "model_group_id", json_object_get(w->ref, "group_id"));

    p = ngx_pnalloc(im->l.pool, sizeof("/projects//code_deployments:prepare")
                                + im->project_id.len);

    if (body == NULL || p == NULL
        || ngx_http_modelreg_json_pool(im->l.pool, body) != NGX_OK)
    {
        ngx_http_modelreg_geti_import_fail(im, &im->failed);
        return;
    }

    path.data = p;
    path.len = ngx_sprintf(p, "/projects/%V/code_deployments:prepare",
                           &im->project_id)
               - p;

    if (ngx_http_modelreg_geti_post(&im->l, &path, body,
                                    ngx_http_modelreg_geti_import_prepared,
                                    NULL)
        != NGX_OK)
    {
        ngx_http_modelreg_geti_import_fail(im, &im->failed);
    }
}


static void
ngx_http_modelreg_geti_import_prepared(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    json_t  *id;

    id = json_object_get(json, "id");

    /* (it goes into the paths of the calls that follow) */

    if (ngx_http_modelreg_geti_check(l, id, "id", NGX_HTTP_MODELREG_GETI_ID)
        != NGX_OK)
    {
        return;
    }

    im->deployment.len = json_string_length(id);
    im->deployment.data = ngx_pnalloc(l->pool, im->deployment.len);
    if (im->deployment.data == NULL) {
        l->failed = 1;
        return;
    }

    ngx_memcpy(im->deployment.data, json_string_value(id),
               im->deployment.len);

    im->stage = NGX_HTTP_MODELREG_STAGE_POLL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, l->request->connection->log, 0,
                   "modelreg geti_import: export %V prepared, poll in %M ms",
                   &im->deployment, im->backoff);

    ngx_add_timer(&im->poll, im->backoff);
}


/* the export's state, asked by a timer: never a busy loop */

static void
ngx_http_modelreg_geti_import_poll(ngx_event_t *ev)
{
    ngx_http_modelreg_geti_import_t *im = ev->data;

    u_char              *p;
    ngx_str_t            path;
    ngx_http_request_t  *r;

    r = ngx_http_modelreg_geti_hold(&im->l);

    p = ngx_pnalloc(im->l.pool, sizeof("/projects//code_deployments/")
                                + im->project_id.len + im->deployment.len);
    if (p == NULL) {
        ngx_http_modelreg_geti_import_fail(im, &im->failed);
        ngx_http_modelreg_finish(r, NGX_DONE);
        return;
    }

    path.data = p;
    path.len = ngx_sprintf(p, "/projects/%V/code_deployments/%V",
                           &im->project_id, &im->deployment)
               - p;

    if (ngx_http_modelreg_geti_get(&im->l, &path,
                                   ngx_http_modelreg_geti_import_state, NULL)
        != NGX_OK)
    {
        ngx_http_modelreg_geti_import_fail(im, &im->failed);
    }

    ngx_http_modelreg_finish(r, NGX_DONE);
}


static void
ngx_http_modelreg_geti_import_state(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_modelreg_geti_import_t *im = (void *) l;

    u_char                    *p;
    ngx_str_t                  path, name, type = ngx_string("application/zip");
    const char                *state;
    ngx_http_request_t        *r;
    ngx_http_modelreg_body_t  *body;

    r = l->request;

    if (ngx_http_modelreg_geti_check(l, json_object_get(json, "state"),
                                     "state", NGX_HTTP_MODELREG_GETI_STRING)
        != NGX_OK)
    {
        return;
    }

    state = json_string_value(json_object_get(json, "state"));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: export %V %s", &im->deployment,
                   state);

    if (ngx_strcasecmp((u_char *) state, (u_char *) "FAILED") == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: Geti export %V FAILED", &im->deployment);
        im->stage = NGX_HTTP_MODELREG_STAGE_PREPARE;
        l->failed = 1;
        return;
    }

    if (ngx_strcasecmp((u_char *) state, (u_char *) "DONE") != 0) {
        if ((ngx_msec_int_t) (ngx_current_msec + im->backoff - im->deadline)
            > 0)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "modelreg: Geti export %V not done by the deadline",
                          &im->deployment);

            /* (answered by the step after this call, never from here) */

            im->expired = 1;
            l->failed = 1;
            return;
        }

        im->backoff = ngx_min(im->backoff * 2, NGX_HTTP_MODELREG_POLL_MAX);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg geti_import: poll again in %M ms",
                       im->backoff);

        ngx_add_timer(&im->poll, im->backoff);
        return;
    }

    /* DONE: stream the ZIP into the spool, hashed as it comes */

    body = ngx_http_modelreg_spool_create(r);
    im->spool = body;       /* (released with this model, whatever comes) */

    name.data = ngx_pnalloc(r->pool, NGX_HTTP_MODELREG_GETI_SLUG_MAX
                                     + sizeof(".zip"));
    p = ngx_pnalloc(l->pool, sizeof("/projects//code_deployments//download")
                             + im->project_id.len + im->deployment.len);

    if (body == NULL || name.data == NULL || p == NULL) {
        l->failed = 1;
        return;
    }

    name.len = ngx_http_modelreg_geti_file_name(name.data,
                   json_string_value(json_object_get(im->project, "name")));

    if (ngx_http_modelreg_spool_open(r, body, &name, &type) != NGX_OK
        || ngx_http_modelreg_geti_import_fields(im, body) != NGX_OK)
    {
        l->failed = 1;
        return;
    }

    ((ngx_http_modelreg_ctx_t *) ngx_http_get_module_ctx(r,
        ngx_http_modelreg_module))->body = body;

    path.data = p;
    path.len = ngx_sprintf(p, "/projects/%V/code_deployments/%V/download",
                           &im->project_id, &im->deployment)
               - p;

    im->stage = NGX_HTTP_MODELREG_STAGE_DOWNLOAD;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: spool for \"%V\", download",
                   &name);

    if (ngx_http_modelreg_geti_download(l, &path,
                                   ngx_http_modelreg_geti_import_sink,
                                   ngx_http_modelreg_geti_import_downloaded,
                                   im)
        != NGX_OK)
    {
        l->failed = 1;
    }
}


static ngx_int_t
ngx_http_modelreg_geti_import_sink(ngx_http_modelreg_curl_t *cu, u_char *p,
    size_t len)
{
    ngx_http_modelreg_geti_import_t *im = ngx_http_modelreg_geti_arg(cu);

    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(im->l.request, ngx_http_modelreg_module);

    return ngx_http_modelreg_spool_write(im->l.request, ctx->body, p, len);
}


static void
ngx_http_modelreg_geti_import_downloaded(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_request_t       *r;
    ngx_http_modelreg_ctx_t  *ctx;

    r = l->request;
    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ngx_http_modelreg_spool_close(ctx->body) != NGX_OK
        || ngx_http_modelreg_zip_ok(r, ctx->body) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: the Geti export is not a ZIP archive");
        l->failed = 1;
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: downloaded %O bytes, register",
                   ctx->body->size);

    /* registered like an upload, audited as an import */

    if (ctx->reg == NULL) {
        ctx->reg = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_register_t));
        if (ctx->reg == NULL) {
            l->failed = 1;
            return;
        }
    }

    ctx->reg->action = "geti.import";
    ctx->reg->registered = ngx_http_modelreg_geti_import_registered;
    ctx->reg->unregistered = ngx_http_modelreg_geti_import_unregistered;

    /* the import goes on in registered() or unregistered() */

    if (ngx_http_modelreg_register(r) != NGX_DONE) {
        l->failed = 1;
    }
}


/* the imported model's fields, as API.md maps them from Geti */

static ngx_int_t
ngx_http_modelreg_geti_import_fields(ngx_http_modelreg_geti_import_t *im,
    ngx_http_modelreg_body_t *body)
{
    ngx_str_t                      *f, msg;
    ngx_pool_t                     *pool;
    ngx_http_modelreg_geti_want_t  *w;

    pool = im->l.request->pool;
    w = &im->want[im->next];
    f = body->fields.value;

    if (ngx_http_modelreg_geti_fields(pool, w->optimized, w->base,
                                      im->project, &im->project_id,
                                      &body->fields)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* what an upload must pass, an import must too */

    if (ngx_http_modelreg_fields_check(&body->fields, pool, &msg) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, im->l.request->connection->log, 0,
                      "modelreg: Geti model %V cannot be registered: %V",
                      &f[NGX_HTTP_MODELREG_F_ID], &msg);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_modelreg_geti_import_registered(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q)
{
    json_t                           *m;
    json_error_t                      err;
    ngx_http_modelreg_ctx_t          *ctx;
    ngx_http_modelreg_geti_import_t  *im;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    im = ctx->data;

    m = json_loadb(PQgetvalue(q->result, 0, 0), PQgetlength(q->result, 0, 0),
                   0, &err);

    if (m == NULL || json_array_append_new(im->registered, m) != 0) {
        ngx_http_modelreg_geti_import_fail(im, &im->failed);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: model %V registered", &ctx->reg->id);

    im->next++;
    ngx_http_modelreg_geti_import_next(im);
}


static void
ngx_http_modelreg_geti_import_unregistered(ngx_http_request_t *r,
    ngx_uint_t status)
{
    ngx_http_modelreg_ctx_t          *ctx;
    ngx_http_modelreg_geti_import_t  *im;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    im = ctx->data;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "modelreg: Geti model %V not registered: %ui",
                  &ctx->reg->id, status);

    /* not Geti's fault: the answer names what was down, as POST's does */

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        im->down = ctx->reg->query ? NGX_HTTP_MODELREG_DB_DOWN
                              : NGX_HTTP_MODELREG_STORE_DOWN;
    }

    /* another import of the same model got there first (found by t/40) */

    ngx_http_modelreg_geti_import_fail(im, status == NGX_HTTP_CONFLICT
                                           ? &im->taken : &im->failed);
}


/* the current model goes on "list"; the next one follows */

static void
ngx_http_modelreg_geti_import_fail(ngx_http_modelreg_geti_import_t *im,
    ngx_array_t *list)
{
    ngx_str_t  *id;

    id = ngx_array_push(list);

    if (id) {
        id->data = (u_char *) json_string_value(
                       json_object_get(im->want[im->next].ref, "id"));
        id->len = ngx_strlen(id->data);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, im->l.request->connection->log, 0,
                   "modelreg geti_import: model %s %s",
                   json_string_value(json_object_get(im->want[im->next].ref,
                                                     "id")),
                   list == &im->timed_out ? "timed out" : "failed");

    im->next++;
    ngx_http_modelreg_geti_import_next(im);
}


static void
ngx_http_modelreg_geti_import_answer(ngx_http_modelreg_geti_import_t *im)
{
    json_t              *json, *reg;
    ngx_str_t            ids, *id;
    ngx_uint_t           i, status;
    ngx_array_t         *list;
    ngx_http_request_t  *r;
    u_char               msg[NGX_MAX_ERROR_STR], *p;

    r = im->l.request;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_import: done, %uz registered, %ui failed, "
                   "%ui timed out", json_array_size(im->registered),
                   im->failed.nelts, im->timed_out.nelts);

    ngx_http_modelreg_stats_imports(json_array_size(im->registered),
                                    im->failed.nelts, im->timed_out.nelts);

    if (im->taken.nelts && json_array_size(im->registered) == 0
        && im->failed.nelts == 0 && im->timed_out.nelts == 0 && !im->down)
    {
        /* all were registered meanwhile, as the check before would say */

        if (ngx_http_modelreg_join(r->pool, &im->taken, &ids) != NGX_OK) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_modelreg_finish(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_CONFLICT,
                                         "Model(s): %V already registered. "
                                         "No model(s) registered.", &ids));
        return;
    }

    /* (with others registered or failed, a taken one counts as failed) */

    for (i = 0; i < im->taken.nelts; i++) {
        id = ngx_array_push(&im->failed);
        if (id == NULL) {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        *id = ((ngx_str_t *) im->taken.elts)[i];
    }

    if (im->down) {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        list = &im->failed;

    } else if (im->timed_out.nelts) {
        status = NGX_HTTP_GATEWAY_TIME_OUT;
        list = &im->timed_out;

    } else if (im->failed.nelts) {
        status = NGX_HTTP_BAD_GATEWAY;
        list = &im->failed;

    } else {
        status = NGX_HTTP_CREATED;
        list = NULL;
    }

    if (list && ngx_http_modelreg_join(r->pool, list, &ids) != NGX_OK) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (list == NULL) {
        if (ngx_http_modelreg_geti_import_ids(r->pool, im->want, im->nwant,
                                              NULL, &ids)
            != NGX_OK)
        {
            ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        p = ngx_snprintf(msg, sizeof(msg), "Model(s): %V registered.", &ids);

    } else if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        p = ngx_snprintf(msg, sizeof(msg), "%s", im->down);

    } else if (status == NGX_HTTP_GATEWAY_TIME_OUT) {
        p = ngx_snprintf(msg, sizeof(msg),
                         "Geti export timed out for model(s): %V.", &ids);

    } else {
        p = ngx_snprintf(msg, sizeof(msg),
                         "Geti export failed for model(s): %V.", &ids);
    }

    reg = json_incref(im->registered);
    json = json_pack("{s:s%,s:o}", "detail", (char *) msg,
                     (size_t) (p - msg), "registered", reg);

    if (json == NULL) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_send_json(r, status, json));
}


/* the ids of "want" (all, or those whose indexes are in "only"): "a, b" */

static ngx_int_t
ngx_http_modelreg_geti_import_ids(ngx_pool_t *pool,
    ngx_http_modelreg_geti_want_t *want, ngx_uint_t n, ngx_array_t *only,
    ngx_str_t *out)
{
    ngx_str_t    *id;
    ngx_uint_t    i, k, *idx;
    ngx_array_t   ids;

    if (ngx_array_init(&ids, pool, n, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    idx = only ? only->elts : NULL;

    for (i = 0; i < (only ? only->nelts : n); i++) {
        k = only ? idx[i] : i;

        id = ngx_array_push(&ids);
        if (id == NULL) {
            return NGX_ERROR;
        }

        id->data = (u_char *) json_string_value(
                                  json_object_get(want[k].ref, "id"));
        id->len = ngx_strlen(id->data);
    }

    return ngx_http_modelreg_join(pool, &ids, out);
}


/*
 * The model before is done (registered or failed): its calls' pool goes,
 * its spool file is closed (and removed, unless the store took it), its
 * buffers and hashes are freed: now, not with the request.
 */

static void
ngx_http_modelreg_geti_import_release(ngx_http_modelreg_geti_import_t *im)
{
    ngx_fd_t                   fd;
    ngx_pool_t                *pool;
    ngx_pool_cleanup_t        *c;
    ngx_pool_cleanup_file_t   *cf;
    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_body_t  *body;

    if (im->l.pool) {
        ngx_destroy_pool(im->l.pool);
        im->l.pool = NULL;
    }

    body = im->spool;

    if (body == NULL) {
        return;
    }

    im->spool = NULL;

    pool = im->l.request->pool;
    fd = body->tf ? body->tf->file.fd : NGX_INVALID_FILE;

    /* the spool's clean-ups in the request's pool: run now, not again */

    for (c = pool->cleanup; c; c = c->next) {
        if (c->handler == NULL || c->data == NULL) {
            continue;
        }

        if (c->handler == ngx_pool_delete_file
            || c->handler == ngx_pool_cleanup_file)
        {
            cf = c->data;

            if (fd == NGX_INVALID_FILE || cf->fd != fd) {
                continue;
            }

        } else if (c->data != body->sha && c->data != body->part_sha) {
            continue;
        }

        c->handler(c->data);
        c->handler = NULL;
    }

    if (body->tf) {
        body->tf->file.fd = NGX_INVALID_FILE;
    }

    body->sha = NULL;
    body->part_sha = NULL;

    if (body->wbuf && ngx_pfree(pool, body->wbuf->start) == NGX_OK) {
        body->wbuf = NULL;
    }

    if (body->zip.tail && ngx_pfree(pool, body->zip.tail) == NGX_OK) {
        body->zip.tail = NULL;
    }

    ctx = ngx_http_get_module_ctx(im->l.request, ngx_http_modelreg_module);

    if (ctx->body == body) {
        ctx->body = NULL;
    }
}


static void
ngx_http_modelreg_geti_import_cleanup(void *data)
{
    ngx_http_modelreg_geti_import_t *im = data;

    if (im->poll.timer_set) {
        ngx_del_timer(&im->poll);
    }

    /* (the spool's own clean-ups are the request pool's) */

    if (im->l.pool) {
        ngx_destroy_pool(im->l.pool);
        im->l.pool = NULL;
    }
}
