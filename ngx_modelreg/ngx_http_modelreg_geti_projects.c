
/*
 * Copyright (C) modelreg authors
 *
 * GET /projects and GET /projects/{id}: Geti's projects, each with its
 * model groups, their model versions and their OpenVINO optimized
 * models, asked of Geti through its client (ngx_http_modelreg_geti.c).
 * Every page of Geti's project list is read (skip until project_counts);
 * model groups and model details are fetched concurrently; nothing is
 * cached, so every answer reflects Geti now.
 */


#include "ngx_http_modelreg_geti.h"


#define NGX_HTTP_MODELREG_GETI_PAGE  100


typedef struct {
    ngx_http_modelreg_geti_list_t   l;          /* first: the calls */
    json_t                         *projects;   /* the answer's objects */
    ngx_str_t                       one;        /* GET /projects/{id} */
    ngx_uint_t                      skip;       /* the listing read so far */
} ngx_http_modelreg_projects_t;


static void ngx_http_modelreg_projects_page(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg);
static void ngx_http_modelreg_projects_one(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg);
static ngx_int_t ngx_http_modelreg_projects_add(
    ngx_http_modelreg_geti_list_t *l, json_t *p);
static void ngx_http_modelreg_projects_groups(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_projects_model(
    ngx_http_modelreg_geti_list_t *l, json_t *json, void *arg);
static void ngx_http_modelreg_projects_finish(
    ngx_http_modelreg_geti_list_t *l);


/* GET /projects and GET /projects/{id} */

ngx_int_t
ngx_http_modelreg_projects(ngx_http_request_t *r)
{
    ngx_str_t                       path;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_geti_list_t  *l;
    ngx_http_modelreg_projects_t   *pr;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    pr = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_projects_t));
    if (pr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    l = &pr->l;
    l->request = r;
    l->finish = ngx_http_modelreg_projects_finish;
    pr->projects = json_array();

    if (pr->projects == NULL
        || ngx_http_modelreg_json_pool(r->pool, pr->projects) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->route.id.len) {
        pr->one = ctx->route.id;
        l->want_404 = 1;

        path.data = ngx_pnalloc(r->pool, sizeof("/projects/") + pr->one.len);
        if (path.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        path.len = ngx_sprintf(path.data, "/projects/%V", &pr->one)
                   - path.data;

        if (ngx_http_modelreg_geti_get(l, &path,
                                       ngx_http_modelreg_projects_one, NULL)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {
        ngx_http_modelreg_projects_page(l, NULL, NULL);

        if (l->failed) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /*
     * A client that goes away ends the request (as nginx's upstream
     * does), and with it the Geti calls it would still have made.
     */

    r->read_event_handler = ngx_http_test_reading;

    r->main->count++;

    return NGX_DONE;
}


/* one page of projects, and the next */

static void
ngx_http_modelreg_projects_page(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    ngx_http_modelreg_projects_t *pr = (void *) l;

    size_t       i;
    json_t      *p, *list;
    ngx_str_t    path;
    json_int_t   total;
    u_char       buf[sizeof("/projects?limit=&skip=") + 2 * NGX_INT_T_LEN];

    if (json) {
        list = json_object_get(json, "projects");

        if (ngx_http_modelreg_geti_check(l, list, "projects",
                                         NGX_HTTP_MODELREG_GETI_ARRAY)
            != NGX_OK
            || ngx_http_modelreg_geti_check(l,
                                   json_object_get(json, "project_counts"),
                                   "project_counts",
                                   NGX_HTTP_MODELREG_GETI_INTEGER)
               != NGX_OK)
        {
            return;
        }

        total = json_integer_value(json_object_get(json, "project_counts"));

        json_array_foreach(list, i, p) {
            if (ngx_http_modelreg_projects_add(l, p) != NGX_OK) {
                l->failed = 1;
                return;
            }
        }

        pr->skip += json_array_size(list);

        if (json_array_size(list) == 0 || (json_int_t) pr->skip >= total) {
            return;
        }
    }

    path.data = buf;
    path.len = ngx_sprintf(buf, "/projects?limit=%d&skip=%ui",
                           NGX_HTTP_MODELREG_GETI_PAGE, pr->skip)
               - buf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, l->request->connection->log, 0,
                   "modelreg geti_projects: page from %ui", pr->skip);

    if (ngx_http_modelreg_geti_get(l, &path, ngx_http_modelreg_projects_page,
                                   NULL)
        != NGX_OK)
    {
        l->failed = 1;
    }
}


static void
ngx_http_modelreg_projects_one(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    if (ngx_http_modelreg_projects_add(l, json) != NGX_OK) {
        l->failed = 1;
    }
}


/* {"id","name","creation_time","model_groups":[]}, then its groups */

static ngx_int_t
ngx_http_modelreg_projects_add(ngx_http_modelreg_geti_list_t *l,
    json_t *p)
{
    ngx_http_modelreg_projects_t *pr = (void *) l;

    u_char       *buf;
    json_t       *o, *id;
    ngx_str_t     path;

    if (ngx_http_modelreg_geti_check_project(l, p) != NGX_OK) {
        return NGX_ERROR;
    }

    id = json_object_get(p, "id");

    o = json_pack("{s:O,s:O,s:O,s:[]}",
                  "id", id,
                  "name", json_object_get(p, "name"),
                  "creation_time", json_object_get(p, "creation_time"),
                  "model_groups");

    if (o == NULL || json_array_append_new(pr->projects, o) != 0) {
        return NGX_ERROR;
    }

    buf = ngx_pnalloc(l->request->pool, sizeof("/projects//model_groups")
                                        + json_string_length(id));
    if (buf == NULL) {
        return NGX_ERROR;
    }

    path.data = buf;
    path.len = ngx_sprintf(buf, "/projects/%s/model_groups",
                           json_string_value(id))
               - buf;

    /* (o lives in pr->projects as long as the request does) */

    return ngx_http_modelreg_geti_get(l, &path,
                                      ngx_http_modelreg_projects_groups, o);
}


/* model groups: each model version, then its optimized models */

static void
ngx_http_modelreg_projects_groups(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    json_t *project = arg;

    u_char     *buf;
    size_t      i, k, len;
    json_t     *groups, *g, *m, *go, *vo, *vers;
    ngx_str_t   path;

    if (ngx_http_modelreg_geti_check_groups(l, json) != NGX_OK) {
        return;
    }

    groups = json_object_get(json, "model_groups");

    json_array_foreach(groups, i, g) {
        go = json_pack("{s:O,s:O,s:[]}", "id", json_object_get(g, "id"),
                       "name", json_object_get(g, "name"), "model_versions");

        if (go == NULL
            || json_array_append_new(json_object_get(project, "model_groups"),
                                     go)
               != 0)
        {
            l->failed = 1;
            return;
        }

        vers = json_object_get(go, "model_versions");

        json_array_foreach(json_object_get(g, "models"), k, m) {
            vo = json_pack("{s:O,s:O,s:O,s:[]}",
                           "id", json_object_get(m, "id"),
                           "name", json_object_get(m, "name"),
                           "version", json_object_get(m, "version"),
                           "openvino_models");

            if (vo == NULL || json_array_append_new(vers, vo) != 0) {
                l->failed = 1;
                return;
            }

            /* (ids are checked: at most 128 bytes of [A-Za-z0-9_-]) */

            len = sizeof("/projects//model_groups//models/")
                  + json_string_length(json_object_get(project, "id"))
                  + json_string_length(json_object_get(g, "id"))
                  + json_string_length(json_object_get(m, "id"));

            buf = ngx_pnalloc(l->request->pool, len);
            if (buf == NULL) {
                l->failed = 1;
                return;
            }

            path.data = buf;
            path.len = ngx_sprintf(buf,
                                   "/projects/%s/model_groups/%s/models/%s",
                                   json_string_value(json_object_get(project,
                                                                     "id")),
                                   json_string_value(json_object_get(g,
                                                                     "id")),
                                   json_string_value(json_object_get(m,
                                                                     "id")))
                       - buf;

            if (ngx_http_modelreg_geti_get(l, &path,
                                           ngx_http_modelreg_projects_model, vo)
                != NGX_OK)
            {
                l->failed = 1;
                return;
            }
        }
    }
}


/* a model's details: its OpenVINO optimized models */

static void
ngx_http_modelreg_projects_model(ngx_http_modelreg_geti_list_t *l,
    json_t *json, void *arg)
{
    json_t *version = arg;

    size_t       i;
    json_t      *o, *list;
    const char  *f;

    if (ngx_http_modelreg_geti_check_model(l, json) != NGX_OK) {
        return;
    }

    list = json_object_get(version, "openvino_models");

    json_array_foreach(json_object_get(json, "optimized_models"), i, o) {
        f = json_string_value(json_object_get(o, "model_format"));

        if (ngx_strcasecmp((u_char *) f, (u_char *) "openvino") != 0) {
            continue;
        }

        if (json_array_append_new(list,
                                  json_pack("{s:O,s:O}",
                                            "id", json_object_get(o, "id"),
                                            "name", json_object_get(o, "name")))
            != 0)
        {
            l->failed = 1;
            return;
        }
    }
}


static void
ngx_http_modelreg_projects_finish(ngx_http_modelreg_geti_list_t *l)
{
    ngx_http_modelreg_projects_t *pr = (void *) l;

    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = l->request;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg geti_projects: done, %uz projects%s%s%s",
                   json_array_size(pr->projects),
                   l->not_found ? ", not found" : "",
                   l->invalid ? ", invalid" : "",
                   l->failed ? ", failed" : "");

    if (l->not_found) {
        rc = ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                          "Project not found.");

    } else if (l->invalid) {
        rc = ngx_http_modelreg_geti_invalid(r);

    } else if (l->failed) {
        rc = ngx_http_modelreg_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "Geti unavailable.");

    } else if (pr->one.len) {
        json_incref(json_array_get(pr->projects, 0));
        rc = ngx_http_modelreg_send_json(r, NGX_HTTP_OK,
                                         json_array_get(pr->projects, 0));

    } else {
        json_incref(pr->projects);
        rc = ngx_http_modelreg_send_json(r, NGX_HTTP_OK, pr->projects);
    }

    ngx_http_modelreg_finish(r, rc);
}

