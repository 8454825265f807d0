/*
 * Copyright (C) modelreg authors
 *
 * GET /models: its filters (substrings or equality) and its statement;
 * list.c runs it and streams the answer.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_list.h"


/* PostgreSQL's epoch, 2000-01-01, in Unix microseconds */
#define NGX_HTTP_MODELREG_PG_EPOCH_US  ((int64_t) 946684800 * 1000000)


static u_char *ngx_http_modelreg_models_list_token(u_char *dst, int64_t key,
    ngx_str_t *id);


static ngx_http_modelreg_list_filter_t  ngx_http_modelreg_models_filters[] = {
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


static const char  ngx_http_modelreg_models_head[] =
    "SELECT w.more, w.lk, w.lid, octet_length(w.j),"
    " substring(w.j FROM generate_series(0, (octet_length(w.j) - 1) / %ui)"
    " * %ui + 1 FOR %ui)"
    " FROM (SELECT p.j, p.registered_at, p.id,"
    " nth_value(p.id, %ui) OVER w IS NOT NULL more,"
    " nth_value(p.registered_at, %ui) OVER w lk,"
    " nth_value(p.id, %ui) OVER w lid, row_number() OVER w rn"
    " FROM (SELECT textsend(modelreg_model_json(m, $1)::text) j,"
    " m.registered_at, m.id FROM models m WHERE true";

static const char  ngx_http_modelreg_models_tail[] =
    " ORDER BY m.registered_at, m.id LIMIT %ui) p"
    " WINDOW w AS (ORDER BY p.registered_at, p.id"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) w"
    " WHERE w.rn <= %ui ORDER BY w.registered_at, w.id%Z";


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
    ngx_http_modelreg_list_t       *l;
    ngx_http_modelreg_pg_query_t   *q;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    l = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_list_t));
    if (l == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    l->args.filters = ngx_http_modelreg_models_filters;
    l->route = "/models";
    l->token_encode = ngx_http_modelreg_models_list_token;

    rc = ngx_http_modelreg_list_args(r, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (l->args.token.len
        && ngx_http_modelreg_token_decode(&l->args.token, &us, &id) != NGX_OK)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid page_token.");
    }

    l->cached = 1;

    rc = ngx_http_modelreg_list_cached(r, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    len = sizeof(ngx_http_modelreg_models_head)
          + sizeof(ngx_http_modelreg_models_tail) + 128;

    for (i = 0; ngx_http_modelreg_models_filters[i].key; i++) {
        len += 64;
    }

    sql = ngx_pnalloc(r->pool, len);
    q = ngx_http_modelreg_query(r, NULL, 16, NULL);

    if (sql == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(sql, ngx_http_modelreg_models_head,
                    NGX_HTTP_MODELREG_LIST_PIECES,
                    l->args.limit + 1, l->args.limit, l->args.limit);

    if (ngx_http_modelreg_query_param(r->pool, q, 0, &mcf->store->url_prefix)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 1;

    for (i = 0; ngx_http_modelreg_models_filters[i].key; i++) {
        if (l->args.value[i].len == 0) {
            continue;
        }

        s = l->args.value[i];

        if (ngx_http_modelreg_models_filters[i].substring) {
            s.data = ngx_pnalloc(r->pool, 2 * l->args.value[i].len);
            if (s.data == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            s.len = ngx_http_modelreg_like_escape(s.data, l->args.value[i].data,
                                                  l->args.value[i].len);

            p = ngx_sprintf(p, " AND m.%s ILIKE '%%' || $%ui || '%%'",
                            ngx_http_modelreg_models_filters[i].key, n + 1);

        } else {
            p = ngx_sprintf(p, " AND m.%s = $%ui",
                            ngx_http_modelreg_models_filters[i].key, n + 1);
        }

        if (ngx_http_modelreg_query_param(r->pool, q, n++, &s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (l->args.token.len) {
        p = ngx_sprintf(p, " AND (m.registered_at, m.id)"
                           " > (modelreg_from_us($%ui::bigint), $%ui)",
                        n + 1, n + 2);

        s.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (s.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        s.len = ngx_sprintf(s.data, "%L", us) - s.data;

        if (ngx_http_modelreg_query_param(r->pool, q, n++, &s) != NGX_OK
            || ngx_http_modelreg_query_param(r->pool, q, n++, &id) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* one row more than asked: whether there is a next page */

    p = ngx_sprintf(p, ngx_http_modelreg_models_tail, l->args.limit + 1,
                    l->args.limit);

    q->sql = (const char *) sql;
    q->nparams = n;

    l->not_found = l->args.filtered && l->args.token.len == 0;

    return ngx_http_modelreg_list_run(r, l, q);
}


/* the key is PostgreSQL's: microseconds since 2000-01-01 */

static u_char *
ngx_http_modelreg_models_list_token(u_char *dst, int64_t key, ngx_str_t *id)
{
    return ngx_http_modelreg_token_encode(dst,
               key + NGX_HTTP_MODELREG_PG_EPOCH_US, id);
}
