
/*
 * Copyright (C) modelreg authors
 *
 * Route table of the registry API: pure logic, no nginx I/O, unit tested.
 */


#ifndef _NGX_HTTP_MODELREG_ROUTE_H_INCLUDED_
#define _NGX_HTTP_MODELREG_ROUTE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_MODELREG_M_GET      0x01
#define NGX_HTTP_MODELREG_M_HEAD     0x02
#define NGX_HTTP_MODELREG_M_POST     0x04
#define NGX_HTTP_MODELREG_M_PUT      0x08
#define NGX_HTTP_MODELREG_M_DELETE   0x10


typedef enum {
    NGX_HTTP_MODELREG_ROUTE_NONE = 0,
    NGX_HTTP_MODELREG_ROUTE_HEALTH,
    NGX_HTTP_MODELREG_ROUTE_READY,
    NGX_HTTP_MODELREG_ROUTE_MODELS,
    NGX_HTTP_MODELREG_ROUTE_MODEL,
    NGX_HTTP_MODELREG_ROUTE_MODEL_FILES,
    NGX_HTTP_MODELREG_ROUTE_PROJECTS,
    NGX_HTTP_MODELREG_ROUTE_PROJECT,
    NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD,
    NGX_HTTP_MODELREG_ROUTE_GETI_SYNC,
    NGX_HTTP_MODELREG_ROUTE_AUDIT,
    NGX_HTTP_MODELREG_ROUTE_METRICS,
    NGX_HTTP_MODELREG_ROUTE_OPENAPI,
    NGX_HTTP_MODELREG_ROUTE_DOCS,
    NGX_HTTP_MODELREG_ROUTE_MODEL_LINKS,
    NGX_HTTP_MODELREG_ROUTE_ALIASES,
    NGX_HTTP_MODELREG_ROUTE_ALIAS,
    NGX_HTTP_MODELREG_ROUTE_ALIAS_FILES,
    NGX_HTTP_MODELREG_ROUTE_EVENTS
} ngx_http_modelreg_route_e;


typedef struct {
    ngx_http_modelreg_route_e   route;
    ngx_uint_t                  methods;    /* NGX_HTTP_MODELREG_M_* mask */
    const char                 *allow;      /* the "Allow" header value */
    const char                 *id_kind;    /* "model", "project" or NULL */
    ngx_str_t                   id;         /* the {id} path segment */
    ngx_str_t                   sub;        /* a second one: {alias} */
} ngx_http_modelreg_route_t;


/*
 * Matches a path relative to the location ("/models/abc") and fills "rt".
 * Returns NGX_OK on a known route, NGX_DECLINED otherwise.  The id is not
 * validated here: a wrong method wins over a malformed id (API.md).  On
 * /aliases/{name}/{alias} the name is "id" and the alias "sub", both as
 * they are in "path" (still percent-encoded when it is).
 */
ngx_int_t ngx_http_modelreg_route_match(u_char *path, size_t len,
    ngx_http_modelreg_route_t *rt);

/* ^[A-Za-z0-9_-]{16,128}$ */
ngx_int_t ngx_http_modelreg_valid_id(u_char *p, size_t len);


#endif /* _NGX_HTTP_MODELREG_ROUTE_H_INCLUDED_ */
