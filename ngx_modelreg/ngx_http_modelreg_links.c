
/*
 * Copyright (C) modelreg authors
 *
 * Download links that expire: the modelreg_link_key directive, POST
 * /models/{id}/links, and the access phase handler that lets a link
 * through.
 *
 * A link is checked in nginx's access phase, before any other access
 * module of the location runs (dynamic modules register their handlers
 * last, and nginx runs a phase's handlers in reverse), with no database:
 * the signature (ngx_http_modelreg_link.c) covers the path and the
 * expiry.  A request that carries link arguments in a location with a
 * key is decided by the link alone.  A valid one is NGX_OK, which under
 * "satisfy any" lets it past auth_basic and auth_request (under "satisfy
 * all" they still have their say).  An invalid one is answered 403 here
 * and now, rather than returned as NGX_HTTP_FORBIDDEN: under "satisfy
 * any" nginx would go on to auth_basic, whose 401 wins over a 403, and
 * the device would be asked for credentials it does not have instead of
 * being told that its link is wrong or expired.  A request without link
 * arguments is not ours to judge (NGX_DECLINED).
 *
 * Creating a link is not audited: it writes nothing and anyone with the
 * key can make one without asking the registry, so a record of the links
 * made here would be incomplete by construction.  The bytes a link
 * fetches are audited as any download ("model.download").
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_link.h"


static ngx_int_t ngx_http_modelreg_link_access(ngx_http_request_t *r);
static void ngx_http_modelreg_link_key_cleanup(void *data);
static void ngx_http_modelreg_links_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_links_ttl(ngx_http_request_t *r,
    time_t *ttl);
static void ngx_http_modelreg_links_done(ngx_http_modelreg_pg_query_t *q);
static ngx_int_t ngx_http_modelreg_links_created(ngx_http_request_t *r);


static const char  ngx_http_modelreg_links_sql[] =
    "SELECT 1 FROM models WHERE id = $1";


/*
 * modelreg_link_key FILE | off: the first line, at least 32 bytes; "off"
 * (an empty key, not NULL, so that nothing is inherited): no links here
 */

char *
ngx_http_modelreg_link_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_modelreg_loc_conf_t  *lcf = conf;

    ngx_str_t           *value;
    ngx_pool_cleanup_t  *cln;

    if (lcf->link_key.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_str_set(&lcf->link_key, "");
        return NGX_CONF_OK;
    }

    if (ngx_http_modelreg_read_secret(cf, &value[1], "modelreg_link_key",
                                      &lcf->link_key)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* the key goes with the configuration: wiped when its pool is freed */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_modelreg_link_key_cleanup;
    cln->data = &lcf->link_key;

    if (lcf->link_key.len < NGX_HTTP_MODELREG_LINK_KEY_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the key file \"%V\" of \"modelreg_link_key\" "
                           "has a key of %uz bytes: at least %d are needed",
                           &value[1], lcf->link_key.len,
                           NGX_HTTP_MODELREG_LINK_KEY_MIN);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_modelreg_link_key_cleanup(void *data)
{
    ngx_str_t  *key = data;

    ngx_explicit_memzero(key->data, key->len);
}


ngx_int_t
ngx_http_modelreg_links_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_modelreg_link_access;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_link_access(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_modelreg_loc_conf_t  *lcf;
    ngx_http_modelreg_link_args_t  la;

    /*
     * The module's own redirect of a download to the store's (internal)
     * location was let in by the registry's location already, by a link
     * or by the gateway's auth: with the snippet's "satisfy any", auth set
     * at server level is not asked again there (a link has no credentials)
     */

    if (r->internal) {
        ctx = ngx_http_modelreg_get_ctx(r);

        if (ctx && ctx->store_download && ctx->store && ctx->store->call) {
            return NGX_OK;
        }
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_modelreg_module);

    if (!lcf->enable || lcf->link_key.len == 0) {
        return NGX_DECLINED;
    }

    rc = ngx_http_modelreg_link_args(r->args.data, r->args.len, &la);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    /*
     * Only a download: the signed path is a /files path, and r->uri is
     * the path as nginx normalised and routes it, so "%2F" or "/../"
     * cannot make one model's link name another's file.
     */

    if (rc == NGX_OK
        && (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
        && r->uri.len > sizeof("/files") - 1
        && ngx_strncmp(r->uri.data + r->uri.len - (sizeof("/files") - 1),
                       "/files", sizeof("/files") - 1)
           == 0)
    {
        rc = ngx_http_modelreg_link_verify(r->pool, &lcf->link_key, &r->uri,
                                           &la, ngx_time());

        if (rc == NGX_OK) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "modelreg links: link of \"%V\" accepted",
                           &r->uri);

            /*
             * with "satisfy any" the gateway's auth is not asked, so a
             * user name in the client's Authorization header is nobody's:
             * parsed as empty, $remote_user (an actor) stays unset; under
             * "satisfy all" auth_basic checks it after this
             */

            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            if (clcf->satisfy == NGX_HTTP_SATISFY_ANY) {
                ngx_str_set(&r->headers_in.user, "");
                ngx_str_null(&r->headers_in.passwd);
            }

            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg links: link of \"%V\" refused", &r->uri);

    ctx = ngx_http_modelreg_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * The answer holds its own reference, as everywhere; the phase
     * engine, unlike the content phase, does not finalize a handler's
     * NGX_DONE, so the request's own is dropped here.
     */

    rc = ngx_http_modelreg_send_error(r, NGX_HTTP_FORBIDDEN,
                                      "Invalid or expired link.");

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* POST /models/{id}/links */

ngx_int_t
ngx_http_modelreg_links_create(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_modelreg_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_modelreg_module);

    if (lcf->link_key.len == 0) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_modelreg_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "Download links are not configured.");
    }

    rc = ngx_http_modelreg_body_read(r, 0, ngx_http_modelreg_links_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_modelreg_links_body(ngx_http_request_t *r)
{
    time_t                        *ttl;
    ngx_int_t                      rc;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_pg_query_t  *q;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    /* the route's state: the link's lifetime, until the model is found */

    ttl = ngx_palloc(r->pool, sizeof(time_t));
    if (ttl == NULL || ngx_http_modelreg_body_finish(r) != NGX_OK) {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->data = ttl;

    rc = ngx_http_modelreg_links_ttl(r, ttl);

    if (rc != NGX_OK) {
        ngx_http_modelreg_finish(r, rc);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg links: body read, expires_in:%T, "
                   "looking the model up", *ttl);

    q = ngx_http_modelreg_query(r, ngx_http_modelreg_links_sql, 1,
                                ngx_http_modelreg_links_done);

    if (q == NULL
        || ngx_http_modelreg_query_param(r->pool, q, 0, &ctx->route.id)
           != NGX_OK)
    {
        ngx_http_modelreg_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_modelreg_finish(r, ngx_http_modelreg_query_start(r, q));
}


/*
 * {"expires_in": n}, 1..604800; an empty body, {} or null: the default.
 * NGX_OK, or the request was answered (NGX_DONE) or failed (a status).
 */

static ngx_int_t
ngx_http_modelreg_links_ttl(ngx_http_request_t *r, time_t *ttl)
{
    json_t                    *body, *v;
    json_int_t                 n;
    ngx_buf_t                 *raw;
    json_error_t               err;
    ngx_http_modelreg_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    raw = ctx->body->raw;

    *ttl = NGX_HTTP_MODELREG_LINK_TTL_DEFAULT;

    if (ctx->body->too_large) {
        return ngx_http_modelreg_send_error(r,
                                            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                            "Request Entity Too Large");
    }

    if (raw && raw->pos == raw->last) {
        return NGX_OK;
    }

    body = NULL;

    if (raw) {
        body = json_loadb((char *) raw->pos, raw->last - raw->pos, 0, &err);

        if (body && ngx_http_modelreg_json_pool(r->pool, body) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (!json_is_object(body)) {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                            "Invalid request body: a JSON "
                                            "object is expected.");
    }

    v = json_object_get(body, "expires_in");

    if (v == NULL || json_is_null(v)) {
        return NGX_OK;
    }

    n = json_is_integer(v) ? json_integer_value(v) : 0;

    if (n < NGX_HTTP_MODELREG_LINK_TTL_MIN
        || n > NGX_HTTP_MODELREG_LINK_TTL_MAX)
    {
        return ngx_http_modelreg_send_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                   "Invalid expires_in: must be an integer "
                                   "from %d to %d.",
                                   NGX_HTTP_MODELREG_LINK_TTL_MIN,
                                   NGX_HTTP_MODELREG_LINK_TTL_MAX);
    }

    *ttl = (time_t) n;

    return NGX_OK;
}


static void
ngx_http_modelreg_links_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = q->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg links: model looked up: %ui", q->status);

    rc = ngx_http_modelreg_model_missing(r, q);

    if (rc == NGX_OK) {
        rc = ngx_http_modelreg_links_created(r);
    }

    ngx_http_modelreg_finish(r, rc);
}


/* 201 {"url": "<prefix>/models/<id>/files?expires=..", "expires": ".."} */

static ngx_int_t
ngx_http_modelreg_links_created(ngx_http_request_t *r)
{
    u_char                        *p;
    time_t                         expires;
    json_t                        *json;
    ngx_tm_t                       tm;
    ngx_str_t                      path, exp, url, ts;
    uintptr_t                      escape;
    ngx_http_modelreg_ctx_t       *ctx;
    ngx_http_modelreg_loc_conf_t  *lcf;
    u_char                         sig[NGX_HTTP_MODELREG_LINK_SIG_LEN];
    u_char                         buf[NGX_TIME_T_LEN];

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_modelreg_module);

    expires = ngx_time() + *(time_t *) ctx->data;

    /* the path as a request for it will be routed: r->uri's prefix */

    path.len = ctx->base.len + sizeof("/models//files") - 1
               + ctx->route.id.len;
    path.data = ngx_pnalloc(r->pool, path.len);
    if (path.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(path.data, "%V/models/%V/files", &ctx->base, &ctx->route.id);

    exp.data = buf;
    exp.len = ngx_sprintf(buf, "%T", expires) - buf;

    if (ngx_http_modelreg_link_sign(r->pool, &lcf->link_key, &path, &exp,
                                    sig)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the prefix is the location's, any bytes: escaped as a URI path */

    escape = 2 * ngx_escape_uri(NULL, path.data, path.len, NGX_ESCAPE_URI);

    url.len = path.len + escape + sizeof("?expires=&signature=") - 1
              + exp.len + NGX_HTTP_MODELREG_LINK_SIG_LEN;
    url.data = ngx_pnalloc(r->pool, url.len);
    if (url.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = (u_char *) ngx_escape_uri(url.data, path.data, path.len,
                                  NGX_ESCAPE_URI);
    p = ngx_sprintf(p, "?expires=%V&signature=", &exp);
    ngx_memcpy(p, sig, NGX_HTTP_MODELREG_LINK_SIG_LEN);

    ngx_gmtime(expires, &tm);

    ts.data = ngx_pnalloc(r->pool, sizeof("1970-01-01 00:00:00.000000 UTC"));
    if (ts.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ts.len = ngx_sprintf(ts.data, "%4d-%02d-%02d %02d:%02d:%02d.000000 UTC",
                         tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                         tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec)
             - ts.data;

    if (ngx_http_modelreg_header_out(r, "Location", &url) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json = json_pack("{s:s%, s:s%}", "url", url.data, url.len,
                     "expires", ts.data, ts.len);

    return ngx_http_modelreg_send_json(r, NGX_HTTP_CREATED, json);
}
