
/*
 * Copyright (C) modelreg authors
 *
 * GET /models and GET /audit: filters as bound parameters, keyset pages
 * (a page token names the last row shown, so inserts never shift a page),
 * a Link header to the next page.
 */


#include "ngx_http_modelreg.h"


#define NGX_HTTP_MODELREG_LIMIT_DEFAULT  100
#define NGX_HTTP_MODELREG_LIMIT_MAX      1000


typedef struct {
    const char  *key;
    unsigned     substring:1;
} ngx_http_modelreg_filter_t;


typedef struct {
    ngx_str_t    value[16];
    ngx_uint_t   limit;
    ngx_str_t    limit_text;
    ngx_str_t    token;
    ngx_uint_t   filtered;
} ngx_http_modelreg_list_t;


static ngx_http_modelreg_filter_t  ngx_http_modelreg_model_filters[] = {
    { "name", 1 },
    { "project_name", 1 },
    { "category", 1 },
    { "architecture", 1 },
    { "precision", 1 },
    { "version", 0 },
    { "origin", 0 },
    { "project_id", 0 },
    { "format", 0 },
    { "target_device", 0 },
    { NULL, 0 }
};


static ngx_http_modelreg_filter_t  ngx_http_modelreg_audit_filters[] = {
    { "model_id", 0 },
    { "action", 0 },
    { "since", 0 },
    { NULL, 0 }
};


static ngx_int_t ngx_http_modelreg_list_args(ngx_http_request_t *r,
    ngx_http_modelreg_filter_t *filters, ngx_http_modelreg_list_t *l);
static void ngx_http_modelreg_models_listed(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_audit_listed(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_send_rows(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t limit,
    ngx_http_modelreg_filter_t *filters, const char *route,
    ngx_str_t *token);
static u_char *ngx_http_modelreg_arg_encode(u_char *p, ngx_str_t *v);


/* GET /models */

ngx_int_t
ngx_http_modelreg_models_list(ngx_http_request_t *r)
{
    u_char                         *sql, *p;
    size_t                          len;
    int64_t                         us;
    ngx_int_t                       rc;
    ngx_str_t                       id, s;
    ngx_uint_t                      i, n;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_list_t       *l;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    l = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_list_t));
    if (l == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_modelreg_list_args(r, ngx_http_modelreg_model_filters, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (l->token.len
        && ngx_http_modelreg_token_decode(&l->token, &us, &id) != NGX_OK)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid page_token.");
    }

    len = 512;

    for (i = 0; ngx_http_modelreg_model_filters[i].key; i++) {
        len += 64;
    }

    sql = ngx_pnalloc(r->pool, len);
    q = ngx_http_modelreg_query(r, NULL, 16, ngx_http_modelreg_models_listed);

    if (sql == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(sql, "SELECT modelreg_model_json(m, $1),"
                         " modelreg_us(m.registered_at), m.id"
                         " FROM models m WHERE true");

    if (ngx_http_modelreg_param_str(r, q, 0, &mcf->store->url_prefix)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 1;

    for (i = 0; ngx_http_modelreg_model_filters[i].key; i++) {
        if (l->value[i].len == 0) {
            continue;
        }

        s = l->value[i];

        if (ngx_http_modelreg_model_filters[i].substring) {
            s.data = ngx_pnalloc(r->pool, 2 * l->value[i].len);
            if (s.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            s.len = ngx_http_modelreg_like_escape(s.data, l->value[i].data,
                                                  l->value[i].len);

            p = ngx_sprintf(p, " AND m.%s ILIKE '%%' || $%ui || '%%'",
                            ngx_http_modelreg_model_filters[i].key, n + 1);

        } else {
            p = ngx_sprintf(p, " AND m.%s = $%ui",
                            ngx_http_modelreg_model_filters[i].key, n + 1);
        }

        if (ngx_http_modelreg_param_str(r, q, n++, &s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (l->token.len) {
        p = ngx_sprintf(p, " AND (m.registered_at, m.id)"
                           " > (modelreg_from_us($%ui::bigint), $%ui)",
                        n + 1, n + 2);

        s.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (s.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        s.len = ngx_sprintf(s.data, "%L", us) - s.data;

        if (ngx_http_modelreg_param_str(r, q, n++, &s) != NGX_OK
            || ngx_http_modelreg_param_str(r, q, n++, &id) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* one row more than asked: whether there is a next page */

    p = ngx_sprintf(p, " ORDER BY m.registered_at, m.id LIMIT %ui%Z",
                    l->limit + 1);

    q->sql = (const char *) sql;
    q->nparams = n;

    ctx->data = l;

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_models_listed(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t                  rc;
    ngx_str_t                  token;
    ngx_http_request_t        *r;
    ngx_http_modelreg_list_t  *l;

    r = q->data;
    l = ((ngx_http_modelreg_ctx_t *)
         ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_wake(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    if (PQntuples(q->result) == 0 && l->filtered && l->token.len == 0) {
        ngx_http_modelreg_wake(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_NOT_FOUND,
                                         "Model(s) not found."));
        return;
    }

    ngx_str_null(&token);

    if ((ngx_uint_t) PQntuples(q->result) > l->limit) {
        token.data = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1 + 128);
        if (token.data == NULL) {
            ngx_http_modelreg_wake(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        token.len = ngx_sprintf(token.data, "%s.%s",
                                PQgetvalue(q->result, l->limit - 1, 1),
                                PQgetvalue(q->result, l->limit - 1, 2))
                    - token.data;
    }

    rc = ngx_http_modelreg_send_rows(r, q, l->limit,
                                     ngx_http_modelreg_model_filters,
                                     "/models", &token);

    ngx_http_modelreg_wake(r, rc);
}


/* GET /audit: newest first */

ngx_int_t
ngx_http_modelreg_audit_list(ngx_http_request_t *r)
{
    u_char                        *sql, *p;
    int64_t                        last;
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_list_t      *l;
    ngx_http_modelreg_pg_query_t  *q;

    static const char  *cond[] = {
        " AND e.model_id = $%ui",
        " AND e.action = $%ui",
        " AND e.time >= $%ui::timestamptz"
    };

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    l = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_list_t));
    if (l == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_modelreg_list_args(r, ngx_http_modelreg_audit_filters, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (l->token.len
        && ngx_http_modelreg_audit_token_decode(&l->token, &last) != NGX_OK)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid page_token.");
    }

    sql = ngx_pnalloc(r->pool, 1024);
    q = ngx_http_modelreg_query(r, NULL, 4, ngx_http_modelreg_audit_listed);

    if (sql == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(sql, "SELECT json_build_object('id', e.id,"
                         " 'time', modelreg_ts(e.time), 'action', e.action,"
                         " 'model_id', e.model_id, 'actor', e.actor,"
                         " 'request_id', e.request_id,"
                         " 'remote_addr', e.remote_addr,"
                         " 'status', e.status, 'details', e.details), e.id"
                         " FROM audit_events e WHERE true");
    n = 0;

    for (i = 0; i < 3; i++) {
        if (l->value[i].len == 0) {
            continue;
        }

        p = ngx_sprintf(p, cond[i], n + 1);

        if (ngx_http_modelreg_param_str(r, q, n++, &l->value[i]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (l->token.len) {
        p = ngx_sprintf(p, " AND e.id < $%ui::bigint", n + 1);

        if (ngx_http_modelreg_param_str(r, q, n++, &l->token) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    p = ngx_sprintf(p, " ORDER BY e.id DESC LIMIT %ui%Z", l->limit + 1);

    q->sql = (const char *) sql;
    q->nparams = n;

    ctx->data = l;

    return ngx_http_modelreg_query_start(r, q);
}


static void
ngx_http_modelreg_audit_listed(ngx_http_modelreg_pg_query_t *q)
{
    ngx_str_t                  token;
    ngx_http_request_t        *r;
    ngx_http_modelreg_list_t  *l;

    r = q->data;
    l = ((ngx_http_modelreg_ctx_t *)
         ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data;

    if (q->status == NGX_HTTP_MODELREG_PG_SQL_ERROR
        && ngx_strncmp(q->sqlstate, "22", 2) == 0)
    {
        /* the only text PostgreSQL interprets here: "since" */

        ngx_http_modelreg_wake(r,
            ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "Invalid since: use "
                                         "YYYY-MM-DD HH:MM:SS[.ffffff] UTC "
                                         "or ISO 8601."));
        return;
    }

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_wake(r, ngx_http_modelreg_pg_error(r, q));
        return;
    }

    ngx_str_null(&token);

    if ((ngx_uint_t) PQntuples(q->result) > l->limit) {
        token.data = (u_char *) PQgetvalue(q->result, l->limit - 1, 1);
        token.len = PQgetlength(q->result, l->limit - 1, 1);
    }

    ngx_http_modelreg_wake(r,
        ngx_http_modelreg_send_rows(r, q, l->limit,
                                    ngx_http_modelreg_audit_filters,
                                    "/audit", &token));
}


/*
 * Known filters into l->value[] (the last of a repeated key wins), limit
 * and page_token; an unknown key is 422.  NGX_DECLINED: go on; anything
 * else ends the request (an answer sent, or a status for nginx to send):
 * an answer sent can return NGX_OK, so that cannot mean "go on".
 */

static ngx_int_t
ngx_http_modelreg_list_args(ngx_http_request_t *r,
    ngx_http_modelreg_filter_t *filters, ngx_http_modelreg_list_t *l)
{
    ngx_int_t                 n;
    ngx_str_t                *u, list;
    ngx_uint_t                i, k, known;
    ngx_array_t               args, unknown;
    ngx_http_modelreg_arg_t  *a;

    if (ngx_array_init(&args, r->pool, 8, sizeof(ngx_http_modelreg_arg_t))
        != NGX_OK
        || ngx_array_init(&unknown, r->pool, 2, sizeof(ngx_str_t)) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_modelreg_form_decode(r->pool, r->args.data,
                                      r->args.data + r->args.len, &args)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    a = args.elts;
    l->limit = NGX_HTTP_MODELREG_LIMIT_DEFAULT;

    for (i = 0; i < args.nelts; i++) {

        known = 0;

        for (k = 0; filters[k].key; k++) {
            if (a[i].key.len == ngx_strlen(filters[k].key)
                && ngx_strncmp(a[i].key.data, filters[k].key, a[i].key.len)
                   == 0)
            {
                l->value[k] = a[i].value;
                known = 1;
                break;
            }
        }

        if (known) {
            continue;
        }

        if (a[i].key.len == 5 && ngx_strncmp(a[i].key.data, "limit", 5) == 0)
        {
            l->limit_text = a[i].value;
            continue;
        }

        if (a[i].key.len == 10
            && ngx_strncmp(a[i].key.data, "page_token", 10) == 0)
        {
            l->token = a[i].value;
            continue;
        }

        u = unknown.elts;

        for (k = 0; k < unknown.nelts; k++) {
            if (u[k].len == a[i].key.len
                && ngx_strncmp(u[k].data, a[i].key.data, u[k].len) == 0)
            {
                break;
            }
        }

        if (k == unknown.nelts) {
            u = ngx_array_push(&unknown);
            if (u == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *u = a[i].key;
        }
    }

    if (unknown.nelts) {
        if (ngx_http_modelreg_join(r->pool, &unknown, &list) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                            "Invalid query parameter(s): %V",
                                            &list);
    }

    for (k = 0; filters[k].key; k++) {
        if (l->value[k].len == 0) {
            continue;
        }

        if (ngx_http_modelreg_utf8_valid(l->value[k].data, l->value[k].len)
            != NGX_OK)
        {
            return ngx_http_modelreg_send_error(r,
                                        NGX_HTTP_UNPROCESSABLE_ENTITY,
                                        "%s must be valid UTF-8.",
                                        filters[k].key);
        }

        l->filtered = 1;
    }

    if (l->limit_text.len) {
        n = ngx_atoi(l->limit_text.data, l->limit_text.len);

        if (n < 1 || n > NGX_HTTP_MODELREG_LIMIT_MAX) {
            return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                "Invalid limit: must be an "
                                                "integer from 1 to 1000.");
        }

        l->limit = n;
    }

    return NGX_DECLINED;
}


/* the first "limit" rows' column 0 as a JSON array, Link to the next */

static ngx_int_t
ngx_http_modelreg_send_rows(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t limit,
    ngx_http_modelreg_filter_t *filters, const char *route, ngx_str_t *token)
{
    int                        i, n;
    u_char                    *body, *p, *last;
    size_t                     len;
    ngx_str_t                  link;
    ngx_uint_t                 k;
    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_list_t  *l;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    l = ((ngx_http_modelreg_ctx_t *)
         ngx_http_get_module_ctx(r, ngx_http_modelreg_module))->data;

    n = ngx_min((ngx_uint_t) PQntuples(q->result), limit);
    len = 2;

    for (i = 0; i < n; i++) {
        len += PQgetlength(q->result, i, 0) + 1;
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body;
    *p++ = '[';

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, PQgetvalue(q->result, i, 0),
                       PQgetlength(q->result, i, 0));
    }

    *p++ = ']';
    last = p;

    if (token->len) {

        /* <base/route?filters&limit=L&page_token=T>; rel="next" */

        len = ctx->base.len + 64 + 3 * token->len + 3 * l->limit_text.len;

        for (k = 0; filters[k].key; k++) {
            len += ngx_strlen(filters[k].key) + 2 + 3 * l->value[k].len;
        }

        link.data = ngx_pnalloc(r->pool, len);
        if (link.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        link.len = 0;

        p = ngx_sprintf(link.data, "<%V%s?", &ctx->base, route);

        for (k = 0; filters[k].key; k++) {
            if (l->value[k].len) {
                p = ngx_sprintf(p, "%s=", filters[k].key);
                p = ngx_http_modelreg_arg_encode(p, &l->value[k]);
                *p++ = '&';
            }
        }

        if (l->limit_text.len) {
            p = ngx_sprintf(p, "limit=%ui&", l->limit);
        }

        p = ngx_sprintf(p, "page_token=");
        p = ngx_http_modelreg_arg_encode(p, token);
        p = ngx_sprintf(p, ">; rel=\"next\"");

        link.len = p - link.data;

        if (ngx_http_modelreg_header_out(r, "Link", &link) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_modelreg_send(r, NGX_HTTP_OK, &ngx_http_modelreg_json_type,
                                  body, last - body);
}


static u_char *
ngx_http_modelreg_arg_encode(u_char *p, ngx_str_t *v)
{
    u_char  *s, *end;

    static u_char  hex[] = "0123456789ABCDEF";

    for (s = v->data, end = v->data + v->len; s < end; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
            || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'
            || *s == '_' || *s == '~')
        {
            *p++ = *s;
            continue;
        }

        *p++ = '%';
        *p++ = hex[*s >> 4];
        *p++ = hex[*s & 0xf];
    }

    return p;
}


/* application/x-www-form-urlencoded: "+" is a space, %XX a byte */

ngx_int_t
ngx_http_modelreg_form_decode(ngx_pool_t *pool, u_char *p, u_char *end,
    ngx_array_t *args)
{
    u_char                   *s, *d, *eq, *amp, c, h;
    ngx_uint_t                i, n;
    ngx_str_t                *out;
    ngx_http_modelreg_arg_t  *a;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            p++;
            continue;
        }

        a = ngx_array_push(args);
        if (a == NULL) {
            return NGX_ERROR;
        }

        eq = ngx_strlchr(p, amp, '=');
        if (eq == NULL) {
            eq = amp;
        }

        for (i = 0; i < 2; i++) {
            s = (i == 0) ? p : (eq < amp ? eq + 1 : amp);
            n = (i == 0) ? (ngx_uint_t) (eq - p)
                         : (ngx_uint_t) (amp - s);
            out = (i == 0) ? &a->key : &a->value;

            out->data = ngx_pnalloc(pool, n + 1);
            if (out->data == NULL) {
                return NGX_ERROR;
            }

            d = out->data;

            while (n) {
                if (*s == '+') {
                    *d++ = ' ';
                    s++;
                    n--;
                    continue;
                }

                if (*s == '%' && n >= 3) {
                    c = 0;

                    h = s[1] | 0x20;
                    h = (h >= '0' && h <= '9') ? h - '0'
                      : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : 16;

                    if (h < 16) {
                        c = h << 4;
                        h = s[2] | 0x20;
                        h = (h >= '0' && h <= '9') ? h - '0'
                          : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : 16;
                    }

                    if (h < 16) {
                        *d++ = c | h;
                        s += 3;
                        n -= 3;
                        continue;
                    }
                }

                *d++ = *s++;
                n--;
            }

            out->len = d - out->data;
        }

        p = amp;
    }

    return NGX_OK;
}
