
/*
 * A model's fields as PUT and POST read them (fields.c): a JSON object
 * body, or a form body, then the field checks.  Input: the body; its
 * last byte picks JSON or form.
 *
 * JSON: the body is taken exactly when jansson takes it as one object
 * (but for numbers jansson cannot hold and nesting past its depth, which
 * the registry takes as text), and each field is what jansson reads:
 * a string as it is, null as absent, other values as compact JSON.
 * Then the checks pass only fields that are present, valid UTF-8 within
 * their limits, a finite score, JSON objects and a list where API.md
 * wants them, a valid id, a known precision (lowercased); else a 400 or
 * 422 with a message.
 */


#include <math.h>
#include <jansson.h>

#include "fuzz.h"
#include "ngx_http_modelreg_fields.h"
#include "ngx_http_modelreg_form.h"
#include "ngx_http_modelreg_validate.h"
#include "ngx_http_modelreg_route.h"


static const char  *names[] = {
    "file", "name", "version", "target_device", "precision", "format",
    "score", "id", "created_date", "size", "origin", "project_id",
    "project_name", "category", "target_device_type", "overview",
    "optimization_capabilities", "labels", "architecture"
};


/* what jansson says the field "i" of the object "o" is */

static void
check_member(ngx_http_modelreg_fields_t *f, ngx_uint_t i, json_t *o)
{
    char    *text;
    json_t  *v;
    size_t   len;

    v = json_object_get(o, names[i]);

    if (v == NULL || json_is_null(v)) {
        fuzz_assert(!f->given[i]);
        return;
    }

    fuzz_assert(f->given[i]);

    if (json_is_number(v)) {
        return;         /* the text sent, which jansson does not keep */
    }

    if (json_is_string(v)) {
        len = json_string_length(v);
        text = NULL;

    } else {
        text = json_dumps(v, JSON_ENCODE_ANY|JSON_COMPACT);
        fuzz_assert(text != NULL);
        len = ngx_strlen(text);
    }

    if (ngx_http_modelreg_field_max(i) && len > ngx_http_modelreg_field_max(i))
    {
        fuzz_assert(f->overflow[i] && f->value[i].len == 0);

    } else {
        fuzz_assert(!f->overflow[i] && f->value[i].len == len);
        fuzz_assert(len == 0
                    || ngx_memcmp(f->value[i].data,
                                  text ? text : json_string_value(v), len)
                       == 0);
    }

    free(text);
}


static void
check_json(ngx_pool_t *pool, ngx_http_modelreg_fields_t *f, ngx_str_t *body)
{
    json_t        *j;
    ngx_int_t      rc;
    ngx_uint_t     i;
    json_error_t   err;

    rc = ngx_http_modelreg_fields_json(f, pool, body->data,
                                       body->data + body->len);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    j = json_loadb((char *) body->data, body->len, JSON_DECODE_ANY, &err);

    /* JSON text holds no NUL byte (but jansson skips them between tokens) */

    if (ngx_strlchr(body->data, body->data + body->len, '\0')) {
        fuzz_assert(rc == NGX_DECLINED);
        json_decref(j);
        return;
    }

    if (j && json_is_object(j)) {
        fuzz_assert(rc == NGX_OK);

        for (i = 0; i < NGX_HTTP_MODELREG_F_COUNT; i++) {
            check_member(f, i, j);
        }

    } else if (rc == NGX_OK) {

        /* taken, though jansson refused it: only for what it cannot hold */

        fuzz_assert(j == NULL);
        fuzz_assert(ngx_strstr(err.text, "too big") != NULL
                    || ngx_strstr(err.text, "overflow") != NULL
                    || ngx_strstr(err.text, "depth") != NULL);
    }

    json_decref(j);
}


static void
check_form(ngx_pool_t *pool, ngx_http_modelreg_fields_t *f, ngx_str_t *body)
{
    ngx_int_t                 k;
    ngx_uint_t                i;
    ngx_array_t               args;
    ngx_http_modelreg_arg_t  *a;

    fuzz_assert(ngx_array_init(&args, pool, 4,
                               sizeof(ngx_http_modelreg_arg_t))
                == NGX_OK);
    fuzz_assert(ngx_http_modelreg_form_decode(pool, body->data,
                                              body->data + body->len, &args)
                == NGX_OK);

    a = args.elts;

    for (i = 0; i < args.nelts; i++) {
        k = ngx_http_modelreg_field_index(a[i].key.data, a[i].key.len);

        if (k != NGX_ERROR) {
            fuzz_assert(a[i].key.len == ngx_strlen(names[k])
                        && ngx_memcmp(a[i].key.data, names[k],
                                      a[i].key.len) == 0);
            ngx_http_modelreg_field_set(f, k, a[i].value.data,
                                        a[i].value.len);
        }
    }
}


static ngx_int_t
json_is(ngx_str_t *v, json_type type)
{
    size_t         i;
    json_t        *j, *item;
    ngx_int_t      ok;
    json_error_t   err;

    j = json_loadb((char *) v->data, v->len, JSON_DECODE_ANY, &err);
    ok = (j && json_typeof(j) == type);

    if (ok && type == JSON_ARRAY) {
        json_array_foreach(j, i, item) {
            if (!json_is_string(item) && !json_is_object(item)) {
                ok = 0;
            }
        }
    }

    json_decref(j);

    return ok;
}


static void
check_fields(ngx_pool_t *pool, ngx_http_modelreg_fields_t *f)
{
    u_char      before[4];
    double      d;
    ngx_int_t   rc;
    ngx_str_t   msg, *v;
    ngx_uint_t  i, precision;

    precision = ngx_http_modelreg_field_present(f,
                                          NGX_HTTP_MODELREG_F_PRECISION)
                && f->value[NGX_HTTP_MODELREG_F_PRECISION].len == 4;

    if (precision) {
        ngx_memcpy(before, f->value[NGX_HTTP_MODELREG_F_PRECISION].data, 4);
    }

    rc = ngx_http_modelreg_fields_check(f, pool, &msg);

    if (rc != NGX_OK) {
        fuzz_assert(rc == 400 || rc == 422);
        fuzz_assert(msg.len > 0 && msg.len <= NGX_MAX_ERROR_STR);
        return;
    }

    for (i = 0; i < NGX_HTTP_MODELREG_F_COUNT; i++) {
        v = &f->value[i];

        if (!ngx_http_modelreg_field_present(f, i)) {
            continue;
        }

        fuzz_assert(!f->overflow[i]);

        if (ngx_http_modelreg_field_max(i)) {
            fuzz_assert(v->len <= ngx_http_modelreg_field_max(i));
            fuzz_assert(ngx_http_modelreg_utf8_valid(v->data, v->len)
                        == NGX_OK);
        }
    }

    v = &f->value[NGX_HTTP_MODELREG_F_SCORE];

    if (v->len) {
        fuzz_assert(ngx_http_modelreg_score(v, &d) == NGX_OK);
        fuzz_assert(isfinite(d));
    }

    for (i = NGX_HTTP_MODELREG_F_OVERVIEW;
         i <= NGX_HTTP_MODELREG_F_OPTIMIZATION_CAPABILITIES;
         i++)
    {
        if (f->value[i].len) {
            fuzz_assert(json_is(&f->value[i], JSON_OBJECT));
        }
    }

    v = &f->value[NGX_HTTP_MODELREG_F_LABELS];
    fuzz_assert(v->len == 0 || json_is(v, JSON_ARRAY));

    v = &f->value[NGX_HTTP_MODELREG_F_ID];
    fuzz_assert(v->len == 0
                || ngx_http_modelreg_valid_id(v->data, v->len) == NGX_OK);

    v = &f->value[NGX_HTTP_MODELREG_F_PRECISION];

    if (v->len) {
        fuzz_assert(precision && v->len == 4);

        for (i = 0; i < 4; i++) {
            fuzz_assert(v->data[i] == ngx_tolower(before[i]));
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_str_t                    body;
    fuzz_in_t                    in;
    ngx_uint_t                   form;
    ngx_pool_t                  *pool;
    ngx_http_modelreg_fields_t   f;

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    form = fuzz_number(&in, 1) & 1;

    pool = fuzz_pool();

    fuzz_rest(pool, &in, &body);

    fuzz_assert(ngx_http_modelreg_fields_init(&f, pool) == NGX_OK);

    if (form) {
        check_form(pool, &f, &body);

    } else {
        check_json(pool, &f, &body);
    }

    check_fields(pool, &f);

    ngx_destroy_pool(pool);

    return 0;
}
