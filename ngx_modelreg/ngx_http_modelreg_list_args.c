
/*
 * Copyright (C) modelreg authors
 */


#include "ngx_http_modelreg_list_args.h"
#include "ngx_http_modelreg_form.h"
#include "ngx_http_modelreg_fields.h"
#include "ngx_http_modelreg_validate.h"


static u_char *ngx_http_modelreg_list_args_escape(u_char *p, ngx_str_t *v);


ngx_int_t
ngx_http_modelreg_list_args_parse(ngx_pool_t *pool, ngx_str_t *query,
    ngx_http_modelreg_list_args_t *a, ngx_str_t *msg)
{
    ngx_int_t                         n;
    ngx_str_t                        *u, list;
    ngx_uint_t                        i, k, known;
    ngx_array_t                       args, unknown;
    ngx_http_modelreg_arg_t          *arg;
    ngx_http_modelreg_list_filter_t  *filters;

    filters = a->filters;

    if (ngx_array_init(&args, pool, 8, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_array_init(&unknown, pool, 2, sizeof(ngx_str_t)) != NGX_OK
        || ngx_http_modelreg_form_decode(pool, query->data,
                                         query->data + query->len, &args)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    arg = args.elts;
    a->limit = NGX_HTTP_MODELREG_LIMIT_DEFAULT;

    for (i = 0; i < args.nelts; i++) {

        known = 0;

        for (k = 0; filters[k].key; k++) {
            if (arg[i].key.len == ngx_strlen(filters[k].key)
                && ngx_strncmp(arg[i].key.data, filters[k].key,
                               arg[i].key.len)
                   == 0)
            {
                a->value[k] = arg[i].value;
                known = 1;
                break;
            }
        }

        if (known) {
            continue;
        }

        if (arg[i].key.len == 5
            && ngx_strncmp(arg[i].key.data, "limit", 5) == 0)
        {
            a->limit_text = arg[i].value;
            continue;
        }

        if (arg[i].key.len == 10
            && ngx_strncmp(arg[i].key.data, "page_token", 10) == 0)
        {
            a->token = arg[i].value;
            continue;
        }

        u = unknown.elts;

        for (k = 0; k < unknown.nelts; k++) {
            if (u[k].len == arg[i].key.len
                && ngx_memcmp(u[k].data, arg[i].key.data, u[k].len) == 0)
            {
                break;
            }
        }

        if (k == unknown.nelts) {
            u = ngx_array_push(&unknown);
            if (u == NULL) {
                return NGX_ERROR;
            }

            *u = arg[i].key;
        }
    }

    if (unknown.nelts) {
        if (ngx_http_modelreg_join(pool, &unknown, &list) != NGX_OK) {
            return NGX_ERROR;
        }

        msg->data = ngx_pnalloc(pool, sizeof("Invalid query parameter(s): ")
                                      + list.len);
        if (msg->data == NULL) {
            return NGX_ERROR;
        }

        msg->len = ngx_sprintf(msg->data, "Invalid query parameter(s): %V",
                               &list)
                   - msg->data;

        return 422;
    }

    for (k = 0; filters[k].key; k++) {
        if (a->value[k].len == 0) {
            continue;
        }

        if (ngx_http_modelreg_utf8_valid(a->value[k].data, a->value[k].len)
            != NGX_OK)
        {
            msg->data = ngx_pnalloc(pool, ngx_strlen(filters[k].key)
                                          + sizeof(" must be valid UTF-8."));
            if (msg->data == NULL) {
                return NGX_ERROR;
            }

            msg->len = ngx_sprintf(msg->data, "%s must be valid UTF-8.",
                                   filters[k].key)
                       - msg->data;

            return 422;
        }

        a->filtered = 1;
    }

    if (a->limit_text.len) {
        n = ngx_atoi(a->limit_text.data, a->limit_text.len);

        if (n < 1 || n > NGX_HTTP_MODELREG_LIMIT_MAX) {
            ngx_str_set(msg, "Invalid limit: must be an integer from 1 to "
                             "1000.");
            return 400;
        }

        a->limit = n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_list_args_link(ngx_pool_t *pool,
    ngx_http_modelreg_list_args_t *a, ngx_str_t *base, const char *route,
    ngx_str_t *token, ngx_str_t *link)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   k;

    len = base->len + ngx_strlen(route) + 64 + 3 * token->len
          + 3 * a->limit_text.len;

    for (k = 0; a->filters[k].key; k++) {
        len += ngx_strlen(a->filters[k].key) + 2 + 3 * a->value[k].len;
    }

    link->data = ngx_pnalloc(pool, len);
    if (link->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(link->data, "<%V%s?", base, route);

    for (k = 0; a->filters[k].key; k++) {
        if (a->value[k].len) {
            p = ngx_sprintf(p, "%s=", a->filters[k].key);
            p = ngx_http_modelreg_list_args_escape(p, &a->value[k]);
            *p++ = '&';
        }
    }

    if (a->limit_text.len) {
        p = ngx_sprintf(p, "limit=%ui&", a->limit);
    }

    p = ngx_sprintf(p, "page_token=");
    p = ngx_http_modelreg_list_args_escape(p, token);
    p = ngx_sprintf(p, ">; rel=\"next\"");

    link->len = p - link->data;

    return NGX_OK;
}


/* a query argument's value, as RFC 3986 wants it in a URI's query */

static u_char *
ngx_http_modelreg_list_args_escape(u_char *p, ngx_str_t *v)
{
    return (u_char *) ngx_escape_uri(p, v->data, v->len,
                                     NGX_ESCAPE_URI_COMPONENT);
}
