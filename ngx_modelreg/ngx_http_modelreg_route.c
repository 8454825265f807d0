
/*
 * Copyright (C) modelreg authors
 */


#include "ngx_http_modelreg_route.h"


#define M_GET     NGX_HTTP_MODELREG_M_GET
#define M_HEAD    NGX_HTTP_MODELREG_M_HEAD
#define M_POST    NGX_HTTP_MODELREG_M_POST
#define M_PUT     NGX_HTTP_MODELREG_M_PUT
#define M_DELETE  NGX_HTTP_MODELREG_M_DELETE


/*
 * A pattern is a list of segments; "*" captures the id (a second "*" the
 * route's "sub").  HEAD is allowed
 * wherever GET is: nginx strips the body of a HEAD response itself.
 */
typedef struct {
    const char                 *pattern;
    ngx_http_modelreg_route_e   route;
    ngx_uint_t                  methods;
    const char                 *allow;
    const char                 *id_kind;
} ngx_http_modelreg_route_def_t;


static ngx_http_modelreg_route_def_t  ngx_http_modelreg_routes[] = {

    { "/health", NGX_HTTP_MODELREG_ROUTE_HEALTH,
      M_GET|M_HEAD, "GET, HEAD", NULL },

    { "/health/ready", NGX_HTTP_MODELREG_ROUTE_READY,
      M_GET|M_HEAD, "GET, HEAD", NULL },

    { "/models", NGX_HTTP_MODELREG_ROUTE_MODELS,
      M_GET|M_HEAD|M_POST, "GET, POST", NULL },

    { "/models/*", NGX_HTTP_MODELREG_ROUTE_MODEL,
      M_GET|M_HEAD|M_PUT|M_DELETE, "GET, PUT, DELETE", "model" },

    { "/models/*/files", NGX_HTTP_MODELREG_ROUTE_MODEL_FILES,
      M_GET|M_HEAD, "GET, HEAD", "model" },

    { "/models/*/links", NGX_HTTP_MODELREG_ROUTE_MODEL_LINKS,
      M_POST, "POST", "model" },

    { "/projects", NGX_HTTP_MODELREG_ROUTE_PROJECTS,
      M_GET|M_HEAD, "GET", NULL },

    { "/projects/*", NGX_HTTP_MODELREG_ROUTE_PROJECT,
      M_GET|M_HEAD, "GET", "project" },

    { "/projects/*/geti-models/download",
      NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD,
      M_POST, "POST", "project" },

    { "/geti/sync", NGX_HTTP_MODELREG_ROUTE_GETI_SYNC,
      M_GET|M_HEAD|M_POST, "GET, POST", NULL },

    { "/audit", NGX_HTTP_MODELREG_ROUTE_AUDIT,
      M_GET|M_HEAD, "GET", NULL },

    { "/events", NGX_HTTP_MODELREG_ROUTE_EVENTS,
      M_GET|M_HEAD, "GET", NULL },

    { "/metrics", NGX_HTTP_MODELREG_ROUTE_METRICS,
      M_GET|M_HEAD, "GET", NULL },

    { "/openapi.json", NGX_HTTP_MODELREG_ROUTE_OPENAPI,
      M_GET|M_HEAD, "GET, HEAD", NULL },

    { "/docs", NGX_HTTP_MODELREG_ROUTE_DOCS,
      M_GET|M_HEAD, "GET, HEAD", NULL },

    { "/aliases/*", NGX_HTTP_MODELREG_ROUTE_ALIASES,
      M_GET|M_HEAD, "GET", NULL },

    { "/aliases/*/*", NGX_HTTP_MODELREG_ROUTE_ALIAS,
      M_GET|M_HEAD|M_PUT|M_DELETE, "GET, PUT, DELETE", NULL },

    { "/aliases/*/*/files", NGX_HTTP_MODELREG_ROUTE_ALIAS_FILES,
      M_GET|M_HEAD, "GET, HEAD", NULL },

    { NULL, NGX_HTTP_MODELREG_ROUTE_NONE, 0, NULL, NULL }
};


static ngx_int_t ngx_http_modelreg_route_try(const char *pattern,
    u_char *path, u_char *end, ngx_http_modelreg_route_t *rt);


ngx_int_t
ngx_http_modelreg_route_match(u_char *path, size_t len,
    ngx_http_modelreg_route_t *rt)
{
    ngx_http_modelreg_route_def_t  *d;

    for (d = ngx_http_modelreg_routes; d->pattern; d++) {

        ngx_str_null(&rt->id);
        ngx_str_null(&rt->sub);

        if (ngx_http_modelreg_route_try(d->pattern, path, path + len, rt)
            != NGX_OK)
        {
            continue;
        }

        rt->route = d->route;
        rt->methods = d->methods;
        rt->allow = d->allow;
        rt->id_kind = d->id_kind;

        return NGX_OK;
    }

    ngx_memzero(rt, sizeof(ngx_http_modelreg_route_t));

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_modelreg_route_try(const char *pattern, u_char *path, u_char *end,
    ngx_http_modelreg_route_t *rt)
{
    u_char      *p, *seg;
    ngx_str_t   *cap;
    const char  *s;

    p = path;

    for (s = pattern; *s; s++) {

        if (*s != '*') {
            if (p == end || *p != (u_char) *s) {
                return NGX_DECLINED;
            }

            p++;
            continue;
        }

        /* "*": one non-empty segment */

        seg = p;

        while (p < end && *p != '/') {
            p++;
        }

        if (p == seg) {
            return NGX_DECLINED;
        }

        cap = (rt->id.data == NULL) ? &rt->id : &rt->sub;

        cap->data = seg;
        cap->len = p - seg;
    }

    return (p == end) ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_modelreg_valid_id(u_char *p, size_t len)
{
    u_char  *end;

    if (len < 16 || len > 128) {
        return NGX_DECLINED;
    }

    for (end = p + len; p < end; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
        {
            continue;
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}
