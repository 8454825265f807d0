
/*
 * Copyright (C) modelreg authors
 *
 * What the registry reads of JSON from Geti (its answers, and the
 * registry's own GET /projects for the sync) and of an import request's
 * body: every value used is type-checked before it is used (a number
 * where a string belongs must never reach "%s" or strcmp()), and what
 * an import takes from them.  Pure functions over jansson (geti_json.c).
 */


#ifndef _NGX_HTTP_MODELREG_GETI_JSON_H_INCLUDED_
#define _NGX_HTTP_MODELREG_GETI_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#include "ngx_http_modelreg_fields.h"


/* the models one import may ask for (API.md, "Limits") */
#define NGX_HTTP_MODELREG_GETI_IMPORT_MAX  100

/* the file name of an import: the project's name as a slug, then .zip */
#define NGX_HTTP_MODELREG_GETI_SLUG_MAX    250


/* what a value read from Geti may be (ngx_http_modelreg_geti_mistyped) */
#define NGX_HTTP_MODELREG_GETI_STRING   0x01
#define NGX_HTTP_MODELREG_GETI_ID       0x02    /* a string, a valid id */
#define NGX_HTTP_MODELREG_GETI_INTEGER  0x04
#define NGX_HTTP_MODELREG_GETI_NUMBER   0x08
#define NGX_HTTP_MODELREG_GETI_ARRAY    0x10
#define NGX_HTTP_MODELREG_GETI_OBJECT   0x20
#define NGX_HTTP_MODELREG_GETI_NULL     0x40    /* or absent, or null */


/* NULL when "v" is one of the types in "want"; else what it is */
const char *ngx_http_modelreg_geti_mistyped(json_t *v, ngx_uint_t want);

/*
 * The answers, each as the registry uses it: NULL when every value it
 * uses is what it must be; else what the first that is not is, and its
 * name in "what".
 */

/* a project, as listed or as GET /projects/{id} answers it */
const char *ngx_http_modelreg_geti_bad_project(json_t *p, const char **what);

/* a project's pipeline, for an import's category */
const char *ngx_http_modelreg_geti_bad_pipeline(json_t *p,
    const char **what);

/* a project's model groups, each with its models */
const char *ngx_http_modelreg_geti_bad_groups(json_t *json,
    const char **what);

/* a model's details: what every optimized model must have */
const char *ngx_http_modelreg_geti_bad_model(json_t *json, const char **what);

/* an optimized model to import and its base model */
const char *ngx_http_modelreg_geti_bad_optimized(json_t *o, json_t *base,
    const char **what);

/* the registry's GET /projects, read back by the sync */
const char *ngx_http_modelreg_geti_bad_listing(json_t *projects,
    const char **what);

/*
 * The "models" of an import request's body: NGX_OK with the array, each
 * item {"id","group_id"} strings without NUL bytes, each id once, at
 * most NGX_HTTP_MODELREG_GETI_IMPORT_MAX; NGX_DECLINED with "why" set
 * (422); NGX_ERROR.
 */
ngx_int_t ngx_http_modelreg_geti_wanted(ngx_pool_t *pool, json_t *body,
    json_t **models, ngx_str_t *why);

/*
 * An imported model's fields from its optimized model "o", its base
 * model and its project (checked: bad_optimized, bad_project and
 * bad_pipeline returned NULL), as API.md maps them; values over a
 * field's limit are overflows, as in an upload.
 */
ngx_int_t ngx_http_modelreg_geti_fields(ngx_pool_t *pool, json_t *o,
    json_t *base, json_t *project, ngx_str_t *project_id,
    ngx_http_modelreg_fields_t *f);

/* <project-name-slug>.zip, into "dst" of NGX_HTTP_MODELREG_GETI_SLUG_MAX
 * + 4 bytes: its length */
size_t ngx_http_modelreg_geti_file_name(u_char *dst, const char *name);


#endif /* _NGX_HTTP_MODELREG_GETI_JSON_H_INCLUDED_ */
