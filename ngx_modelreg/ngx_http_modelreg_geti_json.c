
/*
 * Copyright (C) modelreg authors
 */


#include "ngx_http_modelreg_geti_json.h"
#include "ngx_http_modelreg_route.h"


/* a value of "j" named "name" is of the types "w", else the check ends */

#define want(j, key, name, w)                                                 \
    *what = name;                                                             \
    is = ngx_http_modelreg_geti_mistyped(json_object_get(j, key), w);         \
    if (is) {                                                                 \
        return is;                                                            \
    }

#define ID   NGX_HTTP_MODELREG_GETI_ID
#define STR  NGX_HTTP_MODELREG_GETI_STRING
#define INT  NGX_HTTP_MODELREG_GETI_INTEGER
#define NUM  NGX_HTTP_MODELREG_GETI_NUMBER
#define ARR  NGX_HTTP_MODELREG_GETI_ARRAY
#define OBJ  NGX_HTTP_MODELREG_GETI_OBJECT
#define NUL  NGX_HTTP_MODELREG_GETI_NULL


const char *
ngx_http_modelreg_geti_mistyped(json_t *v, ngx_uint_t want)
{
    if (v == NULL) {
        return (want & NUL) ? NULL : "missing";
    }

    switch (json_typeof(v)) {

    case JSON_NULL:
        return (want & NUL) ? NULL : "null";

    case JSON_STRING:
        if (want & STR) {
            return NULL;
        }

        if (want & ID) {
            return ngx_http_modelreg_valid_id((u_char *) json_string_value(v),
                                              json_string_length(v))
                   == NGX_OK ? NULL : "not a valid id";
        }

        return "a string";

    case JSON_INTEGER:
        return (want & (INT|NUM)) ? NULL : "a number";

    case JSON_REAL:
        return (want & NUM) ? NULL
               : (want & INT) ? "not an integer"
               : "a number";

    case JSON_OBJECT:
        return (want & OBJ) ? NULL : "an object";

    case JSON_ARRAY:
        return (want & ARR) ? NULL : "an array";

    default:
        return "a boolean";
    }
}


const char *
ngx_http_modelreg_geti_bad_project(json_t *p, const char **what)
{
    const char  *is;

    want(p, "id", "id", ID);
    want(p, "name", "name", STR);
    want(p, "creation_time", "creation_time", STR);

    return NULL;
}


const char *
ngx_http_modelreg_geti_bad_pipeline(json_t *p, const char **what)
{
    size_t       i;
    json_t      *t;
    const char  *is;

    want(p, "pipeline", "pipeline", OBJ);
    want(json_object_get(p, "pipeline"), "tasks", "pipeline.tasks", ARR);

    json_array_foreach(json_object_get(json_object_get(p, "pipeline"),
                                       "tasks"), i, t)
    {
        want(t, "task_type", "pipeline.tasks[].task_type", STR);
    }

    return NULL;
}


const char *
ngx_http_modelreg_geti_bad_groups(json_t *json, const char **what)
{
    size_t       i, k;
    json_t      *g, *m;
    const char  *is;

    want(json, "model_groups", "model_groups", ARR);

    json_array_foreach(json_object_get(json, "model_groups"), i, g) {
        want(g, "id", "model_groups[].id", ID);
        want(g, "name", "model_groups[].name", STR);
        want(g, "models", "model_groups[].models", ARR);

        json_array_foreach(json_object_get(g, "models"), k, m) {
            want(m, "id", "model_groups[].models[].id", ID);
            want(m, "name", "model_groups[].models[].name", STR);
            want(m, "version", "model_groups[].models[].version", INT);
        }
    }

    return NULL;
}


const char *
ngx_http_modelreg_geti_bad_model(json_t *json, const char **what)
{
    size_t       i;
    json_t      *o;
    const char  *is;

    want(json, "optimized_models", "optimized_models", ARR);

    json_array_foreach(json_object_get(json, "optimized_models"), i, o) {
        want(o, "id", "optimized_models[].id", ID);
        want(o, "name", "optimized_models[].name", STR);
        want(o, "model_format", "optimized_models[].model_format", STR);
    }

    return NULL;
}


/*
 * Every value the registry takes from them is of the type API.md maps
 * (absent or null where a field may be null).
 */

const char *
ngx_http_modelreg_geti_bad_optimized(json_t *o, json_t *base,
    const char **what)
{
    size_t       i;
    json_t      *v;
    const char  *is;

    want(o, "version", "optimized_models[].version", INT);
    want(o, "precision", "optimized_models[].precision", ARR|NUL);

    json_array_foreach(json_object_get(o, "precision"), i, v) {
        *what = "optimized_models[].precision[]";
        is = ngx_http_modelreg_geti_mistyped(v, STR);

        if (is) {
            return is;
        }
    }

    want(o, "target_device", "optimized_models[].target_device", STR|NUL);
    want(o, "target_device_type", "optimized_models[].target_device_type",
         STR|NUL);
    want(o, "creation_date", "optimized_models[].creation_date", STR|NUL);
    want(o, "optimization_capabilities",
         "optimized_models[].optimization_capabilities", OBJ|NUL);
    want(o, "performance", "optimized_models[].performance", OBJ|NUL);
    want(json_object_get(o, "performance"), "score",
         "optimized_models[].performance.score", NUM|NUL);

    want(base, "architecture", "architecture", STR|NUL);
    want(base, "labels", "labels", ARR|NUL);
    want(base, "performance", "performance", OBJ|NUL);
    want(json_object_get(base, "performance"), "score", "performance.score",
         NUM|NUL);

    return NULL;
}


/*
 * Everything the sync uses of the listing is checked before: ids go into
 * SQL array literals and paths as they are.
 */

const char *
ngx_http_modelreg_geti_bad_listing(json_t *projects, const char **what)
{
    size_t       i, j, k, m;
    json_t      *pr, *g, *v, *o;
    const char  *is;

    *what = "the listing";
    is = ngx_http_modelreg_geti_mistyped(projects, ARR);

    if (is) {
        return is;
    }

    json_array_foreach(projects, i, pr) {
        want(pr, "id", "[].id", ID);
        want(pr, "model_groups", "[].model_groups", ARR);

        json_array_foreach(json_object_get(pr, "model_groups"), j, g) {
            want(g, "id", "[].model_groups[].id", ID);
            want(g, "model_versions", "[].model_groups[].model_versions",
                 ARR);

            json_array_foreach(json_object_get(g, "model_versions"), k, v) {
                want(v, "openvino_models",
                     "[].model_groups[].model_versions[].openvino_models",
                     ARR);

                json_array_foreach(json_object_get(v, "openvino_models"),
                                   m, o)
                {
                    want(o, "id", "[].model_groups[].model_versions[]"
                                  ".openvino_models[].id", ID);
                }
            }
        }
    }

    return NULL;
}


#undef want


ngx_int_t
ngx_http_modelreg_geti_wanted(ngx_pool_t *pool, json_t *body, json_t **models,
    ngx_str_t *why)
{
    size_t       i, k;
    json_t      *list, *m;
    const char  *id;

    list = json_object_get(body, "models");

    if (!json_is_array(list) || json_array_size(list) == 0) {
        ngx_str_set(why, "\"models\" must be a non-empty list");
        return NGX_DECLINED;
    }

    if (json_array_size(list) > NGX_HTTP_MODELREG_GETI_IMPORT_MAX) {
        ngx_str_set(why, "at most 100 models are allowed.");
        return NGX_DECLINED;
    }

    json_array_foreach(list, i, m) {

        /* (strings without NUL bytes: ids are compared as C strings) */

        if (!json_is_string(json_object_get(m, "id"))
            || !json_is_string(json_object_get(m, "group_id"))
            || ngx_strlen(json_string_value(json_object_get(m, "id")))
               != json_string_length(json_object_get(m, "id"))
            || ngx_strlen(json_string_value(json_object_get(m, "group_id")))
               != json_string_length(json_object_get(m, "group_id")))
        {
            ngx_str_set(why, "each model needs a string \"id\" and "
                             "\"group_id\"");
            return NGX_DECLINED;
        }
    }

    /* each model once (at most 100: the quadratic look is cheap) */

    for (i = 1; i < json_array_size(list); i++) {
        id = json_string_value(json_object_get(json_array_get(list, i), "id"));

        for (k = 0; k < i; k++) {
            if (ngx_strcmp(id, json_string_value(
                               json_object_get(json_array_get(list, k), "id")))
                != 0)
            {
                continue;
            }

            why->data = ngx_pnalloc(pool, sizeof("duplicate model id .")
                                          + ngx_strlen(id));
            if (why->data == NULL) {
                return NGX_ERROR;
            }

            why->len = ngx_sprintf(why->data, "duplicate model id %s.", id)
                       - why->data;

            return NGX_DECLINED;
        }
    }

    *models = list;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_geti_fields(ngx_pool_t *pool, json_t *o, json_t *base,
    json_t *project, ngx_str_t *project_id, ngx_http_modelreg_fields_t *f)
{
    u_char      *p, *d, *s, c;
    size_t       i, len;
    json_t      *t, *v;
    const char  *task;

#define set(k, j)                                                            \
    if (ngx_http_modelreg_field_json(f, pool, k, j) != NGX_OK) {              \
        return NGX_ERROR;                                                     \
    }

    set(NGX_HTTP_MODELREG_F_ID, json_object_get(o, "id"));
    set(NGX_HTTP_MODELREG_F_NAME, json_object_get(o, "name"));
    set(NGX_HTTP_MODELREG_F_VERSION, json_object_get(o, "version"));
    set(NGX_HTTP_MODELREG_F_PRECISION,
        json_array_get(json_object_get(o, "precision"), 0));
    set(NGX_HTTP_MODELREG_F_TARGET_DEVICE, json_object_get(o, "target_device"));
    set(NGX_HTTP_MODELREG_F_TARGET_DEVICE_TYPE,
        json_object_get(o, "target_device_type"));
    set(NGX_HTTP_MODELREG_F_CREATED_DATE, json_object_get(o, "creation_date"));
    set(NGX_HTTP_MODELREG_F_OPTIMIZATION_CAPABILITIES,
        json_object_get(o, "optimization_capabilities"));
    set(NGX_HTTP_MODELREG_F_ARCHITECTURE,
        json_object_get(base, "architecture"));
    set(NGX_HTTP_MODELREG_F_LABELS, json_object_get(base, "labels"));
    set(NGX_HTTP_MODELREG_F_PROJECT_NAME, json_object_get(project, "name"));

    /* the optimized model's score, else its base model's */

    v = json_object_get(json_object_get(o, "performance"), "score");
    if (!json_is_number(v)) {
        v = json_object_get(json_object_get(base, "performance"), "score");
    }

    set(NGX_HTTP_MODELREG_F_SCORE, v);

#undef set

    ngx_http_modelreg_field_set(f, NGX_HTTP_MODELREG_F_PROJECT_ID,
                                project_id->data, project_id->len);
    ngx_http_modelreg_field_set(f, NGX_HTTP_MODELREG_F_FORMAT,
                                (u_char *) "openvino", 8);
    ngx_http_modelreg_field_set(f, NGX_HTTP_MODELREG_F_ORIGIN,
                                (u_char *) "Geti", 4);

    /* category: the task types but "dataset", title-cased, joined by _ */

    len = 0;
    t = json_object_get(json_object_get(project, "pipeline"), "tasks");

    json_array_foreach(t, i, v) {
        task = json_string_value(json_object_get(v, "task_type"));
        len += task ? ngx_strlen(task) + 1 : 0;
    }

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    d = p;

    json_array_foreach(t, i, v) {
        task = json_string_value(json_object_get(v, "task_type"));

        if (task == NULL || ngx_strcmp(task, "dataset") == 0) {
            continue;
        }

        if (d > p) {
            *d++ = '_';
        }

        for (s = (u_char *) task; *s; s++) {
            c = (d == p || d[-1] == '_') ? ngx_toupper(*s) : ngx_tolower(*s);
            *d++ = c;
        }
    }

    ngx_http_modelreg_field_set(f, NGX_HTTP_MODELREG_F_CATEGORY, p, d - p);

    return NGX_OK;
}


size_t
ngx_http_modelreg_geti_file_name(u_char *dst, const char *name)
{
    u_char  *s, *d;

    d = dst;

    for (s = (u_char *) name;
         *s && d < dst + NGX_HTTP_MODELREG_GETI_SLUG_MAX;
         s++)
    {
        if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) {
            *d++ = *s;

        } else if (*s >= 'A' && *s <= 'Z') {
            *d++ = (u_char) (*s | 0x20);

        } else if (d > dst && d[-1] != '-') {
            *d++ = '-';
        }
    }

    while (d > dst && d[-1] == '-') {
        d--;
    }

    if (d == dst) {
        d = ngx_cpymem(d, "model", 5);
    }

    return ngx_cpymem(d, ".zip", 4) - dst;
}
