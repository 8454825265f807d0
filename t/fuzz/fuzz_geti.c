
/*
 * What the registry reads of JSON from Geti and of an import request
 * (geti_json.c).  Input: JSON documents separated by NUL bytes (which
 * JSON text cannot hold), read as the Geti client reads an answer; the
 * input's last byte picks what they are:
 *
 * 0  a page of GET /projects, then each project in it;
 * 1  a project as an import reads it (and its file name);
 * 2  a project's model groups;
 * 3  the registry's own project listing, as the sync reads it;
 * 4  an import request's body;
 * 5  an import: the project, then a model's details; each optimized
 *    model that passes becomes an upload's fields, then the checks.
 *
 * Every check says whether a value is of the types wanted exactly as
 * jansson types it; a value a check passed is what it must be where it
 * is used (ids valid, names strings); an import request is refused with
 * a reason or names 1 to 100 distinct models; a file name is a slug of
 * at most 250 bytes then ".zip"; and the fields of an import that pass
 * the checks are within API.md's limits, as an upload's are.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_geti_json.h"
#include "ngx_http_modelreg_route.h"
#include "ngx_http_modelreg_validate.h"


#define DOCS  2


/* ngx_http_modelreg_geti_mistyped(), the slow way, for every "want" */

static void
check_mistyped(json_t *v)
{
    ngx_uint_t   want, ok;
    const char  *is;

    for (want = 0; want < 0x80; want++) {
        is = ngx_http_modelreg_geti_mistyped(v, want);

        switch (v ? json_typeof(v) : JSON_NULL) {

        case JSON_NULL:
            ok = want & NGX_HTTP_MODELREG_GETI_NULL;
            break;

        case JSON_STRING:
            ok = (want & NGX_HTTP_MODELREG_GETI_STRING)
                 || ((want & NGX_HTTP_MODELREG_GETI_ID)
                     && ngx_http_modelreg_valid_id(
                            (u_char *) json_string_value(v),
                            json_string_length(v))
                        == NGX_OK);
            break;

        case JSON_INTEGER:
            ok = want & (NGX_HTTP_MODELREG_GETI_INTEGER
                         |NGX_HTTP_MODELREG_GETI_NUMBER);
            break;

        case JSON_REAL:
            ok = want & NGX_HTTP_MODELREG_GETI_NUMBER;
            break;

        case JSON_OBJECT:
            ok = want & NGX_HTTP_MODELREG_GETI_OBJECT;
            break;

        case JSON_ARRAY:
            ok = want & NGX_HTTP_MODELREG_GETI_ARRAY;
            break;

        default:
            ok = 0;
        }

        fuzz_assert((is == NULL) == (ok != 0));
    }
}


/* a value that passed as an id */

static void
is_id(json_t *v)
{
    fuzz_assert(json_is_string(v));
    fuzz_assert(ngx_http_modelreg_valid_id((u_char *) json_string_value(v),
                                           json_string_length(v))
                == NGX_OK);
}


static void
check_page(json_t *j)
{
    size_t       i;
    json_t      *p;
    const char  *what, *is;

    /* what the page handler checks, then each project */

    if (ngx_http_modelreg_geti_mistyped(json_object_get(j, "projects"),
                                        NGX_HTTP_MODELREG_GETI_ARRAY)
        || ngx_http_modelreg_geti_mistyped(
               json_object_get(j, "project_counts"),
               NGX_HTTP_MODELREG_GETI_INTEGER))
    {
        return;
    }

    json_array_foreach(json_object_get(j, "projects"), i, p) {
        check_mistyped(p);

        is = ngx_http_modelreg_geti_bad_project(p, &what);

        if (is) {
            fuzz_assert(what != NULL);
            continue;
        }

        is_id(json_object_get(p, "id"));
        fuzz_assert(json_is_string(json_object_get(p, "name")));
        fuzz_assert(json_is_string(json_object_get(p, "creation_time")));
    }
}


static void
check_file_name(const char *name)
{
    u_char  dst[NGX_HTTP_MODELREG_GETI_SLUG_MAX + 4], *p;
    size_t  len;

    len = ngx_http_modelreg_geti_file_name(dst, name);

    fuzz_assert(len > 4 && len <= sizeof(dst));
    fuzz_assert(ngx_strncmp(dst + len - 4, ".zip", 4) == 0);
    fuzz_assert(dst[0] != '-' && dst[len - 5] != '-');

    for (p = dst; p < dst + len - 4; p++) {
        fuzz_assert((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                    || (*p == '-' && p[1] != '-'));
    }
}


static void
check_project(json_t *j)
{
    size_t       i;
    json_t      *t;
    const char  *what, *is;

    is = ngx_http_modelreg_geti_bad_project(j, &what);

    if (is == NULL) {
        is = ngx_http_modelreg_geti_bad_pipeline(j, &what);
    }

    if (is) {
        fuzz_assert(what != NULL);
        return;
    }

    is_id(json_object_get(j, "id"));

    json_array_foreach(json_object_get(json_object_get(j, "pipeline"),
                                       "tasks"), i, t)
    {
        fuzz_assert(json_is_string(json_object_get(t, "task_type")));
    }

    check_file_name(json_string_value(json_object_get(j, "name")));
}


static void
check_groups(json_t *j)
{
    size_t       i, k;
    json_t      *g, *m;
    const char  *what, *is;

    is = ngx_http_modelreg_geti_bad_groups(j, &what);

    if (is) {
        fuzz_assert(what != NULL);
        return;
    }

    json_array_foreach(json_object_get(j, "model_groups"), i, g) {
        is_id(json_object_get(g, "id"));
        fuzz_assert(json_is_string(json_object_get(g, "name")));

        json_array_foreach(json_object_get(g, "models"), k, m) {
            is_id(json_object_get(m, "id"));
            fuzz_assert(json_is_string(json_object_get(m, "name")));
            fuzz_assert(json_is_integer(json_object_get(m, "version")));
        }
    }
}


static void
check_listing(json_t *j)
{
    size_t       i, k, m, n;
    json_t      *pr, *g, *v, *o;
    const char  *what, *is;

    is = ngx_http_modelreg_geti_bad_listing(j, &what);

    if (is) {
        fuzz_assert(what != NULL);
        return;
    }

    fuzz_assert(json_is_array(j));

    json_array_foreach(j, i, pr) {
        is_id(json_object_get(pr, "id"));

        json_array_foreach(json_object_get(pr, "model_groups"), k, g) {
            is_id(json_object_get(g, "id"));

            json_array_foreach(json_object_get(g, "model_versions"), m, v) {
                fuzz_assert(json_is_array(json_object_get(v,
                                                      "openvino_models")));

                json_array_foreach(json_object_get(v, "openvino_models"),
                                   n, o)
                {
                    is_id(json_object_get(o, "id"));
                }
            }
        }
    }
}


static void
check_wanted(ngx_pool_t *pool, json_t *j)
{
    size_t       i, k;
    json_t      *models, *m;
    ngx_int_t    rc;
    ngx_str_t    why;
    const char  *id;

    models = NULL;
    ngx_str_null(&why);

    rc = ngx_http_modelreg_geti_wanted(pool, j, &models, &why);

    if (rc == NGX_DECLINED) {
        fuzz_assert(why.len > 0);
        return;
    }

    fuzz_assert(rc == NGX_OK);
    fuzz_assert(json_is_array(models) && json_array_size(models) >= 1
                && json_array_size(models)
                   <= NGX_HTTP_MODELREG_GETI_IMPORT_MAX);
    fuzz_assert(models == json_object_get(j, "models"));

    json_array_foreach(models, i, m) {
        id = json_string_value(json_object_get(m, "id"));

        fuzz_assert(id != NULL);
        fuzz_assert(ngx_strlen(id) == json_string_length(json_object_get(m,
                                                                     "id")));
        fuzz_assert(json_string_value(json_object_get(m, "group_id")));
        fuzz_assert(ngx_strlen(json_string_value(json_object_get(m,
                                                          "group_id")))
                    == json_string_length(json_object_get(m, "group_id")));

        for (k = 0; k < i; k++) {
            fuzz_assert(ngx_strcmp(id, json_string_value(
                            json_object_get(json_array_get(models, k), "id")))
                        != 0);
        }
    }
}


static void
check_import(ngx_pool_t *pool, json_t *project, json_t *model)
{
    size_t                       i;
    json_t                      *o;
    ngx_str_t                    msg, *v;
    ngx_uint_t                   k;
    const char                  *what, *is;
    ngx_http_modelreg_fields_t   f;

    static ngx_str_t  project_id = ngx_string("6650a1b2c3d4e5f6a7b8c901");

    if (ngx_http_modelreg_geti_bad_project(project, &what)
        || ngx_http_modelreg_geti_bad_pipeline(project, &what)
        || ngx_http_modelreg_geti_bad_model(model, &what))
    {
        return;
    }

    json_array_foreach(json_object_get(model, "optimized_models"), i, o) {
        is = ngx_http_modelreg_geti_bad_optimized(o, model, &what);

        if (is) {
            fuzz_assert(what != NULL);
            continue;
        }

        fuzz_assert(ngx_http_modelreg_fields_init(&f, pool) == NGX_OK);
        fuzz_assert(ngx_http_modelreg_geti_fields(pool, o, model, project,
                                                  &project_id, &f)
                    == NGX_OK);

        /* the optimized model's id, name and version, always */

        fuzz_assert(ngx_http_modelreg_field_present(&f,
                                                    NGX_HTTP_MODELREG_F_ID));
        fuzz_assert(ngx_http_modelreg_field_present(&f,
                                          NGX_HTTP_MODELREG_F_VERSION));

        if (ngx_http_modelreg_fields_check(&f, pool, &msg) != NGX_OK) {
            fuzz_assert(msg.len > 0);
            continue;
        }

        /* what passes is what an upload could have sent */

        for (k = 0; k < NGX_HTTP_MODELREG_F_COUNT; k++) {
            v = &f.value[k];

            if (!ngx_http_modelreg_field_present(&f, k)) {
                continue;
            }

            fuzz_assert(!f.overflow[k]);

            if (ngx_http_modelreg_field_max(k)) {
                fuzz_assert(v->len <= ngx_http_modelreg_field_max(k));
                fuzz_assert(ngx_http_modelreg_utf8_valid(v->data, v->len)
                            == NGX_OK);
            }
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t        *doc[DOCS];
    ngx_str_t      text;
    fuzz_in_t      in;
    ngx_uint_t     kind, n;
    ngx_pool_t    *pool;
    json_error_t   err;

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    kind = fuzz_number(&in, 1) % 6;

    pool = fuzz_pool();

    for (n = 0; n < DOCS; n++) {
        fuzz_piece(&in, '\0', &text);

        /* as the Geti client and an import read them: objects, arrays */

        doc[n] = json_loadb((char *) text.data, text.len, 0, &err);
        check_mistyped(doc[n]);
    }

    switch (kind) {

    case 0:
        check_page(doc[0]);
        break;

    case 1:
        check_project(doc[0]);
        break;

    case 2:
        check_groups(doc[0]);
        break;

    case 3:
        check_listing(doc[0]);
        break;

    case 4:
        if (doc[0]) {
            check_wanted(pool, doc[0]);
        }

        break;

    default:
        check_import(pool, doc[0], doc[1]);
    }

    for (n = 0; n < DOCS; n++) {
        json_decref(doc[n]);
    }

    ngx_destroy_pool(pool);

    return 0;
}
