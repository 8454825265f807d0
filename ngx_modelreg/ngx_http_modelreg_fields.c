
/*
 * Copyright (C) modelreg authors
 */


#include <jansson.h>

#include "ngx_http_modelreg_fields.h"
#include "ngx_http_modelreg_route.h"
#include "ngx_http_modelreg_validate.h"


#define NGX_HTTP_MODELREG_JSON_MAX  (1024 * 1024)


typedef struct {
    const char  *name;
    size_t       max;
} ngx_http_modelreg_field_def_t;


/* in the order of ngx_http_modelreg_field_e */

static ngx_http_modelreg_field_def_t  ngx_http_modelreg_field_defs[] = {
    { "file", 0 },
    { "name", 256 },
    { "version", 128 },
    { "target_device", 256 },
    { "precision", 64 },
    { "format", 256 },
    { "score", 64 },
    { "id", 128 },
    { "created_date", 256 },
    { "size", 0 },
    { "origin", 256 },
    { "project_id", 256 },
    { "project_name", 1024 },
    { "category", 256 },
    { "target_device_type", 256 },
    { "overview", NGX_HTTP_MODELREG_JSON_MAX },
    { "optimization_capabilities", NGX_HTTP_MODELREG_JSON_MAX },
    { "labels", NGX_HTTP_MODELREG_JSON_MAX },
    { "architecture", 256 }
};


static ngx_int_t ngx_http_modelreg_json_check(ngx_str_t *v, json_type type);
static ngx_int_t ngx_http_modelreg_json_key(u_char *key, u_char *end);
static ngx_int_t ngx_http_modelreg_json_valid(u_char *p, u_char *end);
static ngx_int_t ngx_http_modelreg_json_field(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, ngx_uint_t i, ngx_str_t *v);
static ngx_int_t ngx_http_modelreg_json_set(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, ngx_uint_t i, u_char *data, size_t len);
static u_char *ngx_http_modelreg_json_ws(u_char *p, u_char *last);
static u_char *ngx_http_modelreg_json_string(u_char *p, u_char *last);
static u_char *ngx_http_modelreg_json_value(u_char *p, u_char *last);
static u_char *ngx_http_modelreg_json_number(u_char *p, u_char *last);


ngx_int_t
ngx_http_modelreg_fields_init(ngx_http_modelreg_fields_t *f, ngx_pool_t *pool)
{
    ngx_memzero(f, sizeof(ngx_http_modelreg_fields_t));

    return ngx_array_init(&f->unknown, pool, 4, sizeof(ngx_str_t));
}


ngx_int_t
ngx_http_modelreg_field_index(u_char *name, size_t len)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_MODELREG_F_COUNT; i++) {
        if (ngx_strlen(ngx_http_modelreg_field_defs[i].name) == len
            && ngx_strncmp(ngx_http_modelreg_field_defs[i].name, name, len)
               == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


size_t
ngx_http_modelreg_field_max(ngx_uint_t i)
{
    return ngx_http_modelreg_field_defs[i].max;
}


void
ngx_http_modelreg_field_set(ngx_http_modelreg_fields_t *f, ngx_uint_t i,
    u_char *data, size_t len)
{
    f->given[i] = 1;
    f->overflow[i] = (ngx_http_modelreg_field_defs[i].max
                      && len > ngx_http_modelreg_field_defs[i].max);
    f->value[i].data = data;
    f->value[i].len = f->overflow[i] ? 0 : len;
}


/*
 * jansson reads a number into a double: 1e-400 would become 0.0 and 1e400
 * would fail the whole body, so a number must reach the field checks as
 * the text that was sent.  The object's members are found here; each
 * value is still checked by jansson (numbers by RFC 8259's grammar), so a
 * body is accepted exactly when it is one valid JSON object.  As with
 * jansson, the last of repeated names wins: only that value is decoded.
 */

ngx_int_t
ngx_http_modelreg_fields_json(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, u_char *p, u_char *last)
{
    u_char      *key, *end;
    ngx_int_t    k, rc;
    ngx_uint_t   i;
    ngx_str_t    value[NGX_HTTP_MODELREG_F_COUNT];

    ngx_memzero(value, sizeof(value));

    /* JSON text holds no NUL byte; jansson skips one between tokens */

    if (ngx_strlchr(p, last, '\0') != NULL) {
        return NGX_DECLINED;
    }

    p = ngx_http_modelreg_json_ws(p, last);

    if (p == last || *p++ != '{') {
        return NGX_DECLINED;
    }

    p = ngx_http_modelreg_json_ws(p, last);

    if (p < last && *p == '}') {
        p++;
        goto done;
    }

    for ( ;; ) {
        key = p;
        p = ngx_http_modelreg_json_string(p, last);

        if (p == NULL) {
            return NGX_DECLINED;
        }

        k = ngx_http_modelreg_json_key(key, p);

        if (k == NGX_DECLINED) {
            return NGX_DECLINED;
        }

        p = ngx_http_modelreg_json_ws(p, last);

        if (p == last || *p++ != ':') {
            return NGX_DECLINED;
        }

        p = ngx_http_modelreg_json_ws(p, last);

        end = ngx_http_modelreg_json_value(p, last);

        if (end == NULL
            || ngx_http_modelreg_json_valid(p, end) != NGX_OK)
        {
            return NGX_DECLINED;
        }

        if (k != NGX_ERROR) {
            value[k].data = p;
            value[k].len = end - p;
        }

        p = ngx_http_modelreg_json_ws(end, last);

        if (p == last) {
            return NGX_DECLINED;
        }

        if (*p == '}') {
            p++;
            break;
        }

        if (*p++ != ',') {
            return NGX_DECLINED;
        }

        p = ngx_http_modelreg_json_ws(p, last);
    }

done:

    if (ngx_http_modelreg_json_ws(p, last) != last) {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_HTTP_MODELREG_F_COUNT; i++) {
        if (value[i].data) {
            rc = ngx_http_modelreg_json_field(f, pool, i, &value[i]);
            if (rc != NGX_OK) {
                return rc;
            }
        }
    }

    return NGX_OK;
}


/* the field a member's name (its JSON text) is, NGX_ERROR: none */

static ngx_int_t
ngx_http_modelreg_json_key(u_char *key, u_char *end)
{
    u_char        *p;
    json_t        *json;
    ngx_int_t      k;
    json_error_t   err;

    /* without escapes the name is its text: checked as jansson would */

    for (p = key + 1; p < end - 1; p++) {
        if (*p < 0x20 || *p == '\\') {
            break;
        }
    }

    if (p == end - 1) {
        if (ngx_http_modelreg_utf8_valid(key + 1, end - key - 2) != NGX_OK) {
            return NGX_DECLINED;
        }

        return ngx_http_modelreg_field_index(key + 1, end - key - 2);
    }

    json = json_loadb((char *) key, end - key, JSON_DECODE_ANY, &err);
    if (json == NULL) {
        return NGX_DECLINED;
    }

    k = ngx_http_modelreg_field_index((u_char *) json_string_value(json),
                                      json_string_length(json));
    json_decref(json);

    return k;
}


/* a member's value (JSON text) is valid JSON */

static ngx_int_t
ngx_http_modelreg_json_valid(u_char *p, u_char *end)
{
    json_t        *json;
    json_error_t   err;

    if (p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
        return (ngx_http_modelreg_json_number(p, end) == end) ? NGX_OK
                                                              : NGX_DECLINED;
    }

    json = json_loadb((char *) p, end - p, JSON_DECODE_ANY, &err);
    if (json == NULL) {
        return NGX_DECLINED;
    }

    json_decref(json);

    return NGX_OK;
}


/* field "i" from its (valid) JSON text "v"; null leaves it absent */

static ngx_int_t
ngx_http_modelreg_json_field(ngx_http_modelreg_fields_t *f, ngx_pool_t *pool,
    ngx_uint_t i, ngx_str_t *v)
{
    json_t        *json;
    ngx_int_t      rc;
    json_error_t   err;

    if (*v->data == '-' || (*v->data >= '0' && *v->data <= '9')) {
        return ngx_http_modelreg_json_set(f, pool, i, v->data, v->len);
    }

    json = json_loadb((char *) v->data, v->len, JSON_DECODE_ANY, &err);
    if (json == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_modelreg_field_json(f, pool, i, json);

    json_decref(json);

    return rc;
}


ngx_int_t
ngx_http_modelreg_field_json(ngx_http_modelreg_fields_t *f, ngx_pool_t *pool,
    ngx_uint_t i, json_t *v)
{
    char       *text;
    ngx_int_t   rc;

    if (v == NULL || json_is_null(v)) {
        return NGX_OK;
    }

    if (json_is_string(v)) {
        return ngx_http_modelreg_json_set(f, pool, i,
                                          (u_char *) json_string_value(v),
                                          json_string_length(v));
    }

    text = json_dumps(v, JSON_ENCODE_ANY|JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_modelreg_json_set(f, pool, i, (u_char *) text,
                                    ngx_strlen(text));
    free(text);

    return rc;
}


static ngx_int_t
ngx_http_modelreg_json_set(ngx_http_modelreg_fields_t *f, ngx_pool_t *pool,
    ngx_uint_t i, u_char *data, size_t len)
{
    u_char  *p;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, data, len);
    ngx_http_modelreg_field_set(f, i, p, len);

    return NGX_OK;
}


static u_char *
ngx_http_modelreg_json_ws(u_char *p, u_char *last)
{
    while (p < last
           && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/* past the string at "p" (not decoded: jansson checks it), or NULL */

static u_char *
ngx_http_modelreg_json_string(u_char *p, u_char *last)
{
    if (p == last || *p != '"') {
        return NULL;
    }

    for (p++; p < last; p++) {
        if (*p == '\\') {
            p++;

        } else if (*p == '"') {
            return p + 1;
        }
    }

    return NULL;
}


/* past the value at "p": brackets and strings matched, nothing decoded */

static u_char *
ngx_http_modelreg_json_value(u_char *p, u_char *last)
{
    ngx_uint_t  depth;

    if (p == last) {
        return NULL;
    }

    if (*p == '"') {
        return ngx_http_modelreg_json_string(p, last);
    }

    if (*p != '{' && *p != '[') {
        /* a number or a literal; strchr() finds '\0' too */
        while (p < last && ngx_strchr(",:]}\" \t\r\n{[", *p) == NULL) {
            p++;
        }

        return p;
    }

    depth = 0;

    while (p < last) {
        switch (*p) {

        case '"':
            p = ngx_http_modelreg_json_string(p, last);
            if (p == NULL) {
                return NULL;
            }

            continue;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (--depth == 0) {
                return p + 1;
            }

            break;
        }

        p++;
    }

    return NULL;
}


/* past a number of RFC 8259's grammar at "p", or "p" */

static u_char *
ngx_http_modelreg_json_number(u_char *p, u_char *last)
{
    u_char  *start, *digits;

    start = p;

    if (p < last && *p == '-') {
        p++;
    }

    if (p < last && *p == '0') {
        p++;

    } else {
        for (digits = p; p < last && *p >= '0' && *p <= '9'; p++) {
            /* void */
        }

        if (p == digits) {
            return start;
        }
    }

    if (p < last && *p == '.') {
        for (digits = ++p; p < last && *p >= '0' && *p <= '9'; p++) {
            /* void */
        }

        if (p == digits) {
            return start;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        for (digits = p; p < last && *p >= '0' && *p <= '9'; p++) {
            /* void */
        }

        if (p == digits) {
            return start;
        }
    }

    return p;
}


ngx_int_t
ngx_http_modelreg_fields_check(ngx_http_modelreg_fields_t *f,
    ngx_pool_t *pool, ngx_str_t *msg)
{
    u_char      *p;
    size_t       len;
    double       score;
    ngx_str_t   *v;
    ngx_uint_t   i;

    msg->data = ngx_pnalloc(pool, NGX_MAX_ERROR_STR);
    if (msg->data == NULL) {
        return NGX_ERROR;
    }

    p = msg->data;

#define fail(status, ...)                                                     \
    msg->len = ngx_snprintf(p, NGX_MAX_ERROR_STR, __VA_ARGS__) - p;           \
    return status

    v = &f->value[NGX_HTTP_MODELREG_F_SCORE];

    if (ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_SCORE)
        && (f->overflow[NGX_HTTP_MODELREG_F_SCORE]
            || ngx_http_modelreg_score(v, &score) != NGX_OK))
    {
        fail(422, "score must be a number.");
    }

    for (i = NGX_HTTP_MODELREG_F_OVERVIEW;
         i <= NGX_HTTP_MODELREG_F_OPTIMIZATION_CAPABILITIES;
         i++)
    {
        if (ngx_http_modelreg_field_present(f, i)
            && (f->overflow[i]
                || ngx_http_modelreg_json_check(&f->value[i], JSON_OBJECT)
                   != NGX_OK))
        {
            fail(422, "%s is not a valid JSON object.",
                 ngx_http_modelreg_field_defs[i].name);
        }
    }

    if (ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_LABELS)
        && (f->overflow[NGX_HTTP_MODELREG_F_LABELS]
            || ngx_http_modelreg_json_check(
                   &f->value[NGX_HTTP_MODELREG_F_LABELS], JSON_ARRAY)
               != NGX_OK))
    {
        fail(422, "labels is not a valid list.");
    }

    v = &f->value[NGX_HTTP_MODELREG_F_ID];

    if (ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_ID)
        && (f->overflow[NGX_HTTP_MODELREG_F_ID]
            || ngx_http_modelreg_valid_id(v->data, v->len) != NGX_OK))
    {
        fail(400, "Invalid format for model ID.");
    }

    for (i = 0; i < NGX_HTTP_MODELREG_F_COUNT; i++) {
        if (ngx_http_modelreg_field_defs[i].max == 0
            || !ngx_http_modelreg_field_present(f, i))
        {
            continue;
        }

        if (f->overflow[i]
            || ngx_http_modelreg_utf8_valid(f->value[i].data, f->value[i].len)
               != NGX_OK)
        {
            fail(422, "%s must be valid UTF-8 of at most %uz bytes.",
                 ngx_http_modelreg_field_defs[i].name,
                 ngx_http_modelreg_field_defs[i].max);
        }
    }

    v = &f->value[NGX_HTTP_MODELREG_F_PRECISION];

    if (ngx_http_modelreg_field_present(f, NGX_HTTP_MODELREG_F_PRECISION)) {
        p = ngx_pnalloc(pool, 4);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_modelreg_precision(v, p, &len) != NGX_OK) {
            p = msg->data;
            fail(400, "%V is not a supported precision.", v);
        }

        v->data = p;
        v->len = len;
    }

#undef fail

    msg->len = 0;

    return NGX_OK;
}


/* a JSON object (or array) text; an array's items: strings or objects */

static ngx_int_t
ngx_http_modelreg_json_check(ngx_str_t *v, json_type type)
{
    size_t         i;
    json_t        *json, *item;
    ngx_int_t      rc;
    json_error_t   err;

    json = json_loadb((char *) v->data, v->len, JSON_DECODE_ANY, &err);
    if (json == NULL) {
        return NGX_DECLINED;
    }

    rc = (json_typeof(json) == type) ? NGX_OK : NGX_DECLINED;

    if (rc == NGX_OK && type == JSON_ARRAY) {
        json_array_foreach(json, i, item) {
            if (!json_is_string(item) && !json_is_object(item)) {
                rc = NGX_DECLINED;
                break;
            }
        }
    }

    json_decref(json);

    return rc;
}


ngx_int_t
ngx_http_modelreg_join(ngx_pool_t *pool, ngx_array_t *names, ngx_str_t *out)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *name;
    ngx_uint_t   i;

    name = names->elts;
    len = 0;

    for (i = 0; i < names->nelts; i++) {
        len += name[i].len + 2;
    }

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    for (i = 0; i < names->nelts; i++) {
        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_cpymem(p, name[i].data, name[i].len);
    }

    out->len = p - out->data;

    return NGX_OK;
}
