
/*
 * Copyright (C) modelreg authors
 */


#include "ngx_http_modelreg_events_args.h"
#include "ngx_http_modelreg_form.h"
#include "ngx_http_modelreg_validate.h"


static ngx_int_t ngx_http_modelreg_events_u64(u_char *p, u_char *end,
    uint64_t *v);
static ngx_int_t ngx_http_modelreg_events_actions(ngx_str_t *list,
    ngx_uint_t *mask, ngx_str_t *bad);
static ngx_int_t ngx_http_modelreg_events_bad(ngx_pool_t *pool,
    ngx_str_t *msg, const char *fmt, ngx_str_t *v);


/* the actions of the audit log (sql/005's CHECK), a bit each */

ngx_str_t  ngx_http_modelreg_events_actions_all[] = {
    ngx_string("model.create"),
    ngx_string("model.update"),
    ngx_string("model.delete"),
    ngx_string("model.download"),
    ngx_string("geti.import"),
    ngx_string("geti.sync"),
    ngx_string("alias.set"),
    ngx_string("alias.delete"),
    ngx_null_string
};


ngx_int_t
ngx_http_modelreg_events_args_parse(ngx_pool_t *pool, ngx_str_t *query,
    ngx_http_modelreg_events_args_t *a, ngx_str_t *msg)
{
    ngx_int_t                 n;
    u_char                   *p;
    size_t                    unknown;
    ngx_str_t                *v, bad, since, wait, action, limit;
    ngx_uint_t                i, k;
    ngx_array_t               args;
    ngx_http_modelreg_arg_t  *arg;

    ngx_memzero(a, sizeof(ngx_http_modelreg_events_args_t));
    ngx_str_null(&since);
    ngx_str_null(&wait);
    ngx_str_null(&action);
    ngx_str_null(&limit);

    if (ngx_array_init(&args, pool, 8, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_http_modelreg_form_decode(pool, query->data,
                                         query->data + query->len, &args)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    arg = args.elts;
    unknown = 0;

    /* the last of a repeated argument wins, as on the lists */

    for (i = 0; i < args.nelts; i++) {

#define ngx_events_key(k)                                                     \
    (arg[i].key.len == sizeof(k) - 1                                          \
     && ngx_strncmp(arg[i].key.data, k, sizeof(k) - 1) == 0)

        if (ngx_events_key("since")) {
            v = &since;

        } else if (ngx_events_key("wait")) {
            v = &wait;

        } else if (ngx_events_key("action")) {
            v = &action;

        } else if (ngx_events_key("name")) {
            v = &a->name;

        } else if (ngx_events_key("limit")) {
            v = &limit;

        } else {

            for (k = 0; k < i; k++) {
                if (arg[k].key.len == arg[i].key.len
                    && ngx_strncmp(arg[k].key.data, arg[i].key.data,
                                   arg[i].key.len) == 0)
                {
                    break;
                }
            }

            if (k == i) {
                /* each unknown key once, in the order of the request */
                unknown += arg[i].key.len + 2;

            } else {
                arg[i].key.len = 0;
            }

            continue;
        }

#undef ngx_events_key

        *v = arg[i].value;
        arg[i].key.len = 0;
    }

    if (unknown) {
        msg->data = ngx_pnalloc(pool, sizeof("Invalid query parameter(s): ")
                                      + unknown);
        if (msg->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(msg->data, "Invalid query parameter(s): ",
                       sizeof("Invalid query parameter(s): ") - 1);

        for (i = 0; i < args.nelts; i++) {
            if (arg[i].key.len) {
                p = ngx_sprintf(p, "%s%V", p[-1] == ' ' ? "" : ", ",
                                &arg[i].key);
            }
        }

        msg->len = p - msg->data;

        return 422;
    }

    if (since.len) {
        if (ngx_http_modelreg_cursor_parse(since.data, since.len, &a->since)
            != NGX_OK)
        {
            ngx_str_set(msg, "Invalid since: use the cursor of a previous "
                             "answer (\"next\" or an event's \"cursor\").");
            return 400;
        }

        a->has_since = 1;
    }

    if (wait.len) {
        n = ngx_atoi(wait.data, wait.len);

        if (n == NGX_ERROR || n > NGX_HTTP_MODELREG_EVENTS_WAIT_MAX) {
            ngx_str_set(msg, "Invalid wait: must be an integer from 0 to "
                             "60 (seconds).");
            return 400;
        }

        a->wait = n;
    }

    if (action.len
        && ngx_http_modelreg_events_actions(&action, &a->actions, &bad)
           != NGX_OK)
    {
        return ngx_http_modelreg_events_bad(pool, msg,
                          "Invalid action: \"%V\" is not an audit action.",
                          &bad) == NGX_OK
               ? 400 : NGX_ERROR;
    }

    if (a->name.len
        && ngx_http_modelreg_utf8_valid(a->name.data, a->name.len) != NGX_OK)
    {
        ngx_str_set(msg, "Invalid name: must be valid UTF-8.");
        return 400;
    }

    a->limit = NGX_HTTP_MODELREG_EVENTS_LIMIT_DEFAULT;

    if (limit.len) {
        n = ngx_atoi(limit.data, limit.len);

        if (n < 1 || n > NGX_HTTP_MODELREG_EVENTS_LIMIT_MAX) {
            ngx_str_set(msg, "Invalid limit: must be an integer from 1 to "
                             "1000.");
            return 400;
        }

        a->limit = n;
    }

    return NGX_OK;
}


/* "action=a,b": each an audit action; empty items are none */

static ngx_int_t
ngx_http_modelreg_events_actions(ngx_str_t *list, ngx_uint_t *mask,
    ngx_str_t *bad)
{
    u_char     *p, *end, *item;
    ngx_int_t   k;

    *mask = 0;
    p = list->data;
    end = p + list->len;

    while (p < end) {
        item = p;

        while (p < end && *p != ',') {
            p++;
        }

        if (p > item) {
            k = ngx_http_modelreg_events_action(item, p - item);

            if (k == -1) {
                bad->data = item;
                bad->len = p - item;
                return NGX_DECLINED;
            }

            *mask |= (ngx_uint_t) 1 << k;
        }

        p++;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_events_action(u_char *p, size_t len)
{
    ngx_int_t   k;
    ngx_str_t  *a;

    for (k = 0, a = ngx_http_modelreg_events_actions_all; a->len; k++, a++) {
        if (a->len == len && ngx_strncmp(a->data, p, len) == 0) {
            return k;
        }
    }

    return -1;
}


static ngx_int_t
ngx_http_modelreg_events_bad(ngx_pool_t *pool, ngx_str_t *msg,
    const char *fmt, ngx_str_t *v)
{
    size_t  len;

    len = ngx_strlen(fmt) + (v->len > 256 ? 256 : v->len);

    msg->data = ngx_pnalloc(pool, len);
    if (msg->data == NULL) {
        return NGX_ERROR;
    }

    /* the value echoed, at most 256 bytes of it */
    msg->len = ngx_snprintf(msg->data, len, fmt, v) - msg->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_cursor_parse(u_char *p, size_t len,
    ngx_http_modelreg_cursor_t *c)
{
    u_char    *end, *dot, *dot2;
    uint64_t   last;

    end = p + len;
    dot = ngx_strlchr(p, end, '.');

    if (dot == NULL) {
        if (ngx_http_modelreg_events_u64(p, end, &c->lo) != NGX_OK) {
            return NGX_DECLINED;
        }

        c->hi = c->lo;
        c->last = 0;

        return NGX_OK;
    }

    dot2 = ngx_strlchr(dot + 1, end, '.');

    if (dot2 == NULL
        || ngx_http_modelreg_events_u64(p, dot, &c->lo) != NGX_OK
        || ngx_http_modelreg_events_u64(dot + 1, dot2, &c->hi) != NGX_OK
        || ngx_http_modelreg_events_u64(dot2 + 1, end, &last) != NGX_OK
        || c->lo > c->hi)
    {
        return NGX_DECLINED;
    }

    c->last = (int64_t) last;

    return NGX_OK;
}


u_char *
ngx_http_modelreg_cursor_print(u_char *p, ngx_http_modelreg_cursor_t *c)
{
    if (c->lo == c->hi) {
        return ngx_sprintf(p, "%uL", c->lo);
    }

    return ngx_sprintf(p, "%uL.%uL.%L", c->lo, c->hi, c->last);
}


/* decimal digits, up to 2^63 - 1 (xid8 and bigint both fit) */

static ngx_int_t
ngx_http_modelreg_events_u64(u_char *p, u_char *end, uint64_t *v)
{
    uint64_t  n;

    if (p == end || (size_t) (end - p) > NGX_INT64_LEN - 1) {
        return NGX_DECLINED;
    }

    for (n = 0; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        if (n > (NGX_HTTP_MODELREG_CURSOR_MAX - (*p - '0')) / 10) {
            return NGX_DECLINED;
        }

        n = n * 10 + (*p - '0');
    }

    *v = n;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_events_notice(u_char *p, size_t len, int64_t *id,
    ngx_int_t *action, ngx_str_t *name)
{
    u_char    *end, *sp, *sp2;
    uint64_t   n;

    end = p + len;
    sp = ngx_strlchr(p, end, ' ');

    if (sp == NULL || ngx_http_modelreg_events_u64(p, sp, &n) != NGX_OK) {
        return NGX_DECLINED;
    }

    sp2 = ngx_strlchr(sp + 1, end, ' ');

    *id = (int64_t) n;
    *action = ngx_http_modelreg_events_action(sp + 1,
                                              (sp2 ? sp2 : end) - (sp + 1));

    if (sp2) {
        name->data = sp2 + 1;
        name->len = end - (sp2 + 1);

    } else {
        ngx_str_null(name);
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_modelreg_events_match(ngx_http_modelreg_events_args_t *a,
    ngx_int_t action, ngx_str_t *name)
{
    if (a->actions
        && (action < 0 || !(a->actions & ((ngx_uint_t) 1 << action))))
    {
        return 0;
    }

    if (a->name.len
        && (name->len != a->name.len
            || ngx_strncmp(name->data, a->name.data, name->len) != 0))
    {
        return 0;
    }

    return 1;
}
