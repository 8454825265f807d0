/*
 * Copyright (C) modelreg authors
 *
 * GET /audit, newest first: its filters and its statement; list.c runs
 * it and streams the answer.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_list.h"


static u_char *ngx_http_modelreg_audit_token(u_char *dst, int64_t key,
    ngx_str_t *id);


static ngx_http_modelreg_list_filter_t  ngx_http_modelreg_audit_filters[] = {
    { "model_id", 0 },
    { "action", 0 },
    { "since", 0 },
    { NULL, 0 }
};


static const char  ngx_http_modelreg_audit_head[] =
    "SELECT w.more, w.lk, NULL::text, octet_length(w.j),"
    " substring(w.j FROM generate_series(0, (octet_length(w.j) - 1) / %ui)"
    " * %ui + 1 FOR %ui)"
    " FROM (SELECT p.j, p.k,"
    " nth_value(p.k, %ui) OVER w IS NOT NULL more,"
    " nth_value(p.k, %ui) OVER w lk, row_number() OVER w rn"
    " FROM (SELECT textsend(json_build_object('id', e.id,"
    " 'time', modelreg_ts(e.time), 'action', e.action,"
    " 'model_id', e.model_id, 'actor', e.actor,"
    " 'request_id', e.request_id, 'remote_addr', e.remote_addr,"
    " 'status', e.status, 'details', e.details)::text) j,"
    " e.id k FROM audit_events e WHERE true";

static const char  ngx_http_modelreg_audit_tail[] =
    " ORDER BY e.id DESC LIMIT %ui) p"
    " WINDOW w AS (ORDER BY p.k DESC"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) w"
    " WHERE w.rn <= %ui ORDER BY w.k DESC%Z";


/* GET /audit: newest first */

ngx_int_t
ngx_http_modelreg_audit_list(ngx_http_request_t *r)
{
    u_char                        *sql, *p;
    int64_t                        last;
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    ngx_http_modelreg_list_t      *l;
    ngx_http_modelreg_pg_query_t  *q;

    static const char  *cond[] = {
        " AND e.model_id = $%ui",
        " AND e.action = $%ui",
        " AND e.time >= $%ui::timestamptz"
    };

    l = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_list_t));
    if (l == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    l->args.filters = ngx_http_modelreg_audit_filters;
    l->route = "/audit";
    l->token_encode = ngx_http_modelreg_audit_token;
    l->invalid = "Invalid since: use YYYY-MM-DD HH:MM:SS[.ffffff] UTC or "
                 "ISO 8601.";

    rc = ngx_http_modelreg_list_args(r, l);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (l->args.token.len
        && ngx_http_modelreg_audit_token_decode(&l->args.token, &last)
           != NGX_OK)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "Invalid page_token.");
    }

    sql = ngx_pnalloc(r->pool, sizeof(ngx_http_modelreg_audit_head)
                               + sizeof(ngx_http_modelreg_audit_tail) + 512);
    q = ngx_http_modelreg_query(r, NULL, 4, NULL);

    if (sql == NULL || q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(sql, ngx_http_modelreg_audit_head,
                    NGX_HTTP_MODELREG_LIST_PIECES, l->args.limit + 1,
                    l->args.limit);
    n = 0;

    for (i = 0; i < 3; i++) {
        if (l->args.value[i].len == 0) {
            continue;
        }

        p = ngx_sprintf(p, cond[i], n + 1);

        if (ngx_http_modelreg_query_param(r->pool, q, n++, &l->args.value[i])
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (l->args.token.len) {
        p = ngx_sprintf(p, " AND e.id < $%ui::bigint", n + 1);

        if (ngx_http_modelreg_query_param(r->pool, q, n++, &l->args.token)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    p = ngx_sprintf(p, ngx_http_modelreg_audit_tail, l->args.limit + 1,
                    l->args.limit);

    q->sql = (const char *) sql;
    q->nparams = n;

    return ngx_http_modelreg_list_run(r, l, q);
}


/* the key is the event's id; the rows have none of their own */

static u_char *
ngx_http_modelreg_audit_token(u_char *dst, int64_t key, ngx_str_t *id)
{
    return ngx_http_modelreg_audit_token_encode(dst, key);
}
