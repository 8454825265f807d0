
/*
 * Copyright (C) modelreg authors
 *
 * The content handler: route, method, id format, then the route's handler.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_geti.h"


static ngx_uint_t ngx_http_modelreg_method(ngx_http_request_t *r);
static void ngx_http_modelreg_base(ngx_http_request_t *r, ngx_str_t *base);
static void ngx_http_modelreg_raw_path(ngx_http_request_t *r,
    ngx_str_t *base, ngx_str_t *path);
static ngx_int_t ngx_http_modelreg_not_allowed(ngx_http_request_t *r,
    ngx_http_modelreg_route_t *rt);


ngx_int_t
ngx_http_modelreg_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       path;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_route_t      *rt;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_modelreg_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rt = &ctx->route;

    ngx_http_modelreg_base(r, &ctx->base);

    path.data = r->uri.data + ctx->base.len;
    path.len = r->uri.len - ctx->base.len;

    ngx_http_modelreg_raw_path(r, &ctx->base, &path);

    if (ngx_http_modelreg_route_match(path.data, path.len, rt) != NGX_OK)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Not Found");
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg router: \"%V\" base:\"%V\" route:%ui",
                   &r->uri, &ctx->base, rt->route);

    if (!(ngx_http_modelreg_method(r) & rt->methods)) {
        return ngx_http_modelreg_not_allowed(r, rt);
    }

    if (rt->id_kind
        && ngx_http_modelreg_valid_id(rt->id.data, rt->id.len) != NGX_OK)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid format for %s ID.",
                                            rt->id_kind);
    }

    /* routes that read no body */

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    switch (rt->route) {

    case NGX_HTTP_MODELREG_ROUTE_HEALTH:
        return ngx_http_modelreg_health(r);

    case NGX_HTTP_MODELREG_ROUTE_READY:
        return ngx_http_modelreg_ready(r);

    case NGX_HTTP_MODELREG_ROUTE_MODELS:
        if (r->method == NGX_HTTP_POST) {
            return ngx_http_modelreg_models_create(r);
        }

        return ngx_http_modelreg_models_list(r);

    case NGX_HTTP_MODELREG_ROUTE_MODEL:
        if (r->method == NGX_HTTP_PUT) {
            return ngx_http_modelreg_models_update(r);
        }

        if (r->method == NGX_HTTP_DELETE) {
            return ngx_http_modelreg_models_delete(r);
        }

        return ngx_http_modelreg_models_get(r);

    case NGX_HTTP_MODELREG_ROUTE_MODEL_FILES:
        return ngx_http_modelreg_models_files(r);

    case NGX_HTTP_MODELREG_ROUTE_MODEL_LINKS:
        return ngx_http_modelreg_links_create(r);

    case NGX_HTTP_MODELREG_ROUTE_AUDIT:
        return ngx_http_modelreg_audit_list(r);

    case NGX_HTTP_MODELREG_ROUTE_EVENTS:
        return ngx_http_modelreg_events(r);

    case NGX_HTTP_MODELREG_ROUTE_METRICS:
        return ngx_http_modelreg_metrics(r);

    case NGX_HTTP_MODELREG_ROUTE_OPENAPI:
        return ngx_http_modelreg_openapi(r);

    case NGX_HTTP_MODELREG_ROUTE_DOCS:
        return ngx_http_modelreg_docs(r);

    case NGX_HTTP_MODELREG_ROUTE_ALIASES:
        return ngx_http_modelreg_aliases_list(r);

    case NGX_HTTP_MODELREG_ROUTE_ALIAS:
        if (r->method == NGX_HTTP_PUT) {
            return ngx_http_modelreg_alias_set(r);
        }

        if (r->method == NGX_HTTP_DELETE) {
            return ngx_http_modelreg_alias_delete(r);
        }

        return ngx_http_modelreg_alias_get(r);

    case NGX_HTTP_MODELREG_ROUTE_ALIAS_FILES:
        return ngx_http_modelreg_alias_files(r);

    case NGX_HTTP_MODELREG_ROUTE_PROJECTS:
    case NGX_HTTP_MODELREG_ROUTE_PROJECT:
    case NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD:
    case NGX_HTTP_MODELREG_ROUTE_GETI_SYNC:
        mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

        if (mcf->geti && rt->route == NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD)
        {
            return ngx_http_modelreg_geti_import(r);
        }

        if (r->method & NGX_HTTP_POST) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        if (mcf->geti == NULL) {
            return ngx_http_modelreg_send_error(r,
                                         NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "Geti integration is not configured.");
        }

        if (rt->route == NGX_HTTP_MODELREG_ROUTE_PROJECTS
            || rt->route == NGX_HTTP_MODELREG_ROUTE_PROJECT)
        {
            return ngx_http_modelreg_projects(r);
        }

        return ngx_http_modelreg_sync_route(r);

    default:
        break;
    }

    if (r->method & (NGX_HTTP_POST|NGX_HTTP_PUT)) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_IMPLEMENTED,
                                        "Not Implemented");
}


static ngx_uint_t
ngx_http_modelreg_method(ngx_http_request_t *r)
{
    switch (r->method) {
    case NGX_HTTP_GET:
        return NGX_HTTP_MODELREG_M_GET;
    case NGX_HTTP_HEAD:
        return NGX_HTTP_MODELREG_M_HEAD;
    case NGX_HTTP_POST:
        return NGX_HTTP_MODELREG_M_POST;
    case NGX_HTTP_PUT:
        return NGX_HTTP_MODELREG_M_PUT;
    case NGX_HTTP_DELETE:
        return NGX_HTTP_MODELREG_M_DELETE;
    default:
        return 0;
    }
}


/*
 * "location /registry/ { modelreg; }" serves /registry/models: routes are
 * matched below the prefix of a prefix location.
 */

static void
ngx_http_modelreg_base(ngx_http_request_t *r, ngx_str_t *base)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ngx_str_null(base);

#if (NGX_PCRE)
    if (clcf->regex) {
        return;
    }
#endif

    /* "location = /metrics { modelreg; allow ...; }": the whole URI */

    if (clcf->named || clcf->exact_match || clcf->name.len == 0
        || clcf->name.data[0] != '/')
    {
        return;
    }

    base->data = clcf->name.data;
    base->len = clcf->name.len;

    if (base->data[base->len - 1] == '/') {
        base->len--;
    }

    if (r->uri.len < base->len
        || ngx_strncmp(r->uri.data, base->data, base->len) != 0)
    {
        ngx_str_null(base);
    }
}


/*
 * /aliases/{name}/...: a model name may hold a "/", sent as "%2F", which
 * r->uri has decoded into a segment separator.  These routes are matched
 * on the path as the client sent it, and the handlers decode each
 * segment; any other path (or a rewritten URI) is matched as nginx sees
 * it.
 */

static void
ngx_http_modelreg_raw_path(ngx_http_request_t *r, ngx_str_t *base,
    ngx_str_t *path)
{
    u_char  *p, *end;

    static u_char  prefix[] = "/aliases/";

    if (!r->quoted_uri || !r->valid_unparsed_uri
        || path->len < sizeof(prefix) - 1
        || ngx_strncmp(path->data, prefix, sizeof(prefix) - 1) != 0)
    {
        return;
    }

    p = r->unparsed_uri.data;
    end = p + r->unparsed_uri.len;

    end = ngx_strlchr(p, end, '?') ? ngx_strlchr(p, end, '?') : end;

    if ((size_t) (end - p) < base->len + sizeof(prefix) - 1
        || ngx_strncmp(p, base->data, base->len) != 0
        || ngx_strncmp(p + base->len, prefix, sizeof(prefix) - 1) != 0)
    {
        return;
    }

    path->data = p + base->len;
    path->len = end - path->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg router: routed as sent: \"%V\"", path);
}


static ngx_int_t
ngx_http_modelreg_not_allowed(ngx_http_request_t *r,
    ngx_http_modelreg_route_t *rt)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) rt->allow;
    h->value.len = ngx_strlen(rt->allow);

    return ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "Method Not Allowed");
}
