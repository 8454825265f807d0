
/*
 * Copyright (C) modelreg authors
 *
 * The "s3" store.  Every call to the object store is a request through an
 * internal location (conf/modelreg_storage.conf) whose proxy_pass, method
 * and headers come from the $modelreg_s3_* variables, signed here with
 * SigV4: uploads and deletes are in-memory subrequests whose body is a
 * range of the spooled file (never read into memory), a download is an
 * internal redirect, so nginx streams the bytes with its own buffering,
 * keepalive, TLS and Range handling.  Objects larger than part_size go by
 * S3 multipart upload, each part signed with its own SHA-256.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_sigv4.h"
#include "ngx_http_modelreg_curl.h"


#define NGX_HTTP_MODELREG_S3_REPLY_MAX  4096

#define NGX_HTTP_MODELREG_EMPTY_SHA256                                        \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


typedef struct {
    ngx_str_t                        endpoint;     /* scheme://host[:port] */
    ngx_str_t                        host;         /* the Host header */
    ngx_str_t                        bucket;
    ngx_str_t                        region;
    ngx_str_t                        access_key;
    ngx_str_t                        secret_key;
    ngx_str_t                        token;
    ngx_str_t                        location;
    ngx_str_t                        ca_file;      /* for libcurl's calls */
    ngx_flag_t                       path_style;
    u_char                           key[32];      /* of key_day */
    u_char                           key_day[8];
} ngx_http_modelreg_s3_t;


/* one signed call: what the $modelreg_s3_* variables give the proxy */

typedef struct {
    ngx_str_t                        method;
    ngx_str_t                        url;
    ngx_str_t                        host;
    ngx_str_t                        date;
    ngx_str_t                        payload;
    ngx_str_t                        token;
    ngx_str_t                        authorization;
    ngx_str_t                        range;
} ngx_http_modelreg_s3_call_t;


typedef struct ngx_http_modelreg_s3_op_s  ngx_http_modelreg_s3_op_t;

typedef void (*ngx_http_modelreg_s3_step_pt)(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);


/* a store operation of a request, across its subrequests */

struct ngx_http_modelreg_s3_op_s {
    ngx_http_request_t              *request;
    ngx_http_modelreg_store_done_pt  done;
    ngx_http_modelreg_body_t        *body;
    ngx_str_t                        key;
    ngx_http_modelreg_s3_step_pt     next;

    /* the last subrequest's answer */
    ngx_uint_t                       status;
    ngx_str_t                        etag;
    ngx_str_t                        reply;

    /* multipart */
    ngx_str_t                        upload_id;
    ngx_uint_t                       part;
    ngx_str_t                       *etags;
};


static ngx_int_t ngx_http_modelreg_s3_sign(ngx_pool_t *pool,
    ngx_http_modelreg_s3_t *s3, const char *method, ngx_str_t *key,
    ngx_str_t *query, ngx_str_t *payload, ngx_http_modelreg_s3_call_t **callp);
static ngx_int_t ngx_http_modelreg_s3_rsign(ngx_http_request_t *r,
    const char *method, ngx_str_t *key, ngx_str_t *query, ngx_str_t *payload,
    ngx_http_modelreg_s3_call_t **callp);
static void ngx_http_modelreg_s3_removed_bg(ngx_http_modelreg_curl_t *cu);
static ngx_int_t ngx_http_modelreg_s3_send(ngx_http_modelreg_s3_op_t *op,
    ngx_http_modelreg_s3_call_t *call, ngx_chain_t *body, off_t len,
    ngx_http_modelreg_s3_step_pt next);
static ngx_int_t ngx_http_modelreg_s3_post(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static void ngx_http_modelreg_s3_resume(ngx_http_request_t *r);
static ngx_http_modelreg_s3_op_t *ngx_http_modelreg_s3_op(
    ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
static ngx_chain_t *ngx_http_modelreg_s3_file_range(ngx_http_request_t *r,
    ngx_file_t *file, off_t offset, off_t len);
static void ngx_http_modelreg_s3_failed(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op, const char *what);

static ngx_int_t ngx_http_modelreg_s3_put(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_s3_put_done(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_initiated(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_send_part(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_part_done(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_completed(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_abort(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_aborted(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t **out);
static ngx_int_t ngx_http_modelreg_s3_header(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj);
static ngx_int_t ngx_http_modelreg_s3_remove(ngx_http_request_t *r,
    ngx_str_t *key, ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_s3_removed(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_remove_bg(ngx_http_modelreg_store_t *st,
    ngx_str_t *key, ngx_log_t *log, ngx_http_modelreg_store_bg_pt done,
    void *data);
static ngx_int_t ngx_http_modelreg_s3_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_s3_ready_done(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_modelreg_s3_strip(ngx_http_request_t *r);


static ngx_str_t  ngx_http_modelreg_s3_empty_sha256 =
    ngx_string(NGX_HTTP_MODELREG_EMPTY_SHA256);


static ngx_http_variable_t  ngx_http_modelreg_s3_vars[] = {

    { ngx_string("modelreg_s3_method"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, method),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_url"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, url),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_host"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, host),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_date"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, date),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_payload"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, payload),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_token"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, token),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_authorization"), NULL,
      ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, authorization),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("modelreg_s3_range"), NULL, ngx_http_modelreg_s3_variable,
      offsetof(ngx_http_modelreg_s3_call_t, range),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_modelreg_s3_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_modelreg_s3_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * modelreg_storage s3 endpoint=URL bucket=NAME region=R
 *     access_key_file=F secret_key_file=F [session_token_file=F]
 *     (or access_key_env=VAR secret_key_env=VAR session_token_env=VAR)
 *     [path_style=on|off] [part_size=SIZE] [gc_interval=T]
 *     [spool=DIR] [location=/_modelreg/s3] [ssl_trusted_certificate=F]
 */

char *
ngx_http_modelreg_store_s3_conf(ngx_conf_t *cf, ngx_http_modelreg_store_t *st,
    ngx_str_t *args, ngx_uint_t n)
{
    u_char                  *p, *v;
    size_t                   len;
    ngx_str_t                s, name, spool, env, *secret;
    ngx_uint_t               i;
    ngx_http_modelreg_s3_t  *s3;

    s3 = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_s3_t));
    if (s3 == NULL) {
        return NGX_CONF_ERROR;
    }

    s3->path_style = 1;
    ngx_str_set(&s3->location, "/_modelreg/s3");
    ngx_str_null(&spool);
    st->part_size = 64 * 1024 * 1024;

    for (i = 0; i < n; i++) {
        p = (u_char *) ngx_strchr(args[i].data, '=');

        if (p == NULL) {
            goto unknown;
        }

        name.data = args[i].data;
        name.len = p - args[i].data;
        v = p + 1;
        s.data = v;
        s.len = args[i].data + args[i].len - v;
        secret = NULL;

#define is(x)  (name.len == sizeof(x) - 1                                    \
                && ngx_strncmp(name.data, x, sizeof(x) - 1) == 0)

        if (is("endpoint")) {
            if (s.len > 7 && ngx_strncmp(v, "http://", 7) == 0) {
                p = v + 7;

            } else if (s.len > 8 && ngx_strncmp(v, "https://", 8) == 0) {
                p = v + 8;

            } else {
                goto invalid;
            }

            while (s.len && s.data[s.len - 1] == '/') {
                s.len--;
            }

            if (ngx_strlchr(p, s.data + s.len, '/') != NULL) {
                goto invalid;       /* no path: the bucket comes after */
            }

            s3->endpoint = s;
            s3->host.data = p;
            s3->host.len = s.data + s.len - p;

        } else if (is("bucket")) {
            s3->bucket = s;

        } else if (is("region")) {
            s3->region = s;

        } else if (is("path_style")) {
            if (s.len == 2 && ngx_strncmp(v, "on", 2) == 0) {
                s3->path_style = 1;

            } else if (s.len == 3 && ngx_strncmp(v, "off", 3) == 0) {
                s3->path_style = 0;

            } else {
                goto invalid;
            }

        } else if (is("part_size")) {
            st->part_size = ngx_parse_offset(&s);

            /* S3's limits: parts of 5 MiB at least, 5 GiB at most */

            if (st->part_size < 5 * 1024 * 1024
                || st->part_size > (off_t) 5 * 1024 * 1024 * 1024)
            {
                goto invalid;
            }

        } else if (is("gc_interval")) {
            st->gc_interval = ngx_parse_time(&s, 0);

            if (st->gc_interval == (ngx_msec_t) NGX_ERROR
                || st->gc_interval == 0)
            {
                goto invalid;
            }

        } else if (is("spool")) {
            spool = s;

        } else if (is("ssl_trusted_certificate")) {

            /* like nginx's own: relative to the configuration's directory */

            s3->ca_file = s;

            if (ngx_conf_full_name(cf->cycle, &s3->ca_file, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

        } else if (is("location")) {
            if (s.len == 0 || s.data[0] != '/') {
                goto invalid;
            }

            s3->location = s;

        } else if (is("access_key_file") || is("access_key_env")) {
            secret = &s3->access_key;

        } else if (is("secret_key_file") || is("secret_key_env")) {
            secret = &s3->secret_key;

        } else if (is("session_token_file") || is("session_token_env")) {
            secret = &s3->token;

        } else {
            goto unknown;
        }

        if (secret == NULL) {
            continue;
        }

        if (name.len > 4 && ngx_strncmp(name.data + name.len - 4, "_env", 4)
                            == 0)
        {
            /* read now, in the master: workers need no "env" for it */

            p = (u_char *) getenv((char *) v);

            if (p == NULL || *p == '\0') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "the environment variable \"%s\" of "
                                   "\"modelreg_storage\" is not set", v);
                return NGX_CONF_ERROR;
            }

            env.data = p;
            env.len = ngx_strlen(p);

            secret->data = ngx_pstrdup(cf->pool, &env);
            secret->len = env.len;

            if (secret->data == NULL) {
                return NGX_CONF_ERROR;
            }

        } else if (ngx_http_modelreg_read_secret(cf, &s, "modelreg_storage",
                                                 secret)
                   != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

#undef is
    }

    if (s3->endpoint.len == 0 || s3->bucket.len == 0
        || s3->region.len == 0 || s3->access_key.len == 0
        || s3->secret_key.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_storage s3\" needs endpoint=, bucket=, "
                           "region=, and the access and secret keys "
                           "(access_key_file=/secret_key_file= or *_env=)");
        return NGX_CONF_ERROR;
    }

    if (!s3->path_style) {

        /* virtual-host style: scheme://bucket.host[:port] */

        len = s3->host.data - s3->endpoint.data;

        p = ngx_pnalloc(cf->pool, len + s3->bucket.len + 1 + s3->host.len);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        v = ngx_cpymem(p, s3->endpoint.data, len);
        s3->host.data = v;
        v = ngx_cpymem(v, s3->bucket.data, s3->bucket.len);
        *v++ = '.';
        v = ngx_cpymem(v, s3->endpoint.data + len, s3->endpoint.len - len);

        s3->endpoint.data = p;
        s3->endpoint.len = v - p;
        s3->host.len = v - s3->host.data;
    }

    /* uploads spool in their own directory, created by nginx at start */

    if (spool.len == 0) {
        ngx_str_set(&spool, NGX_HTTP_CLIENT_TEMP_PATH);
    }

    if (ngx_conf_full_name(cf->cycle, &spool, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    st->temp_path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (st->temp_path == NULL) {
        return NGX_CONF_ERROR;
    }

    st->temp_path->name = spool;
    st->temp_path->conf_file = cf->conf_file->file.name.data;
    st->temp_path->line = cf->conf_file->line;

    if (ngx_add_path(cf, &st->temp_path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    st->type.data = (u_char *) "s3";
    st->type.len = 2;

    st->url_prefix.len = sizeof("s3://") - 1 + s3->bucket.len + 1;
    st->url_prefix.data = ngx_pnalloc(cf->pool, st->url_prefix.len);
    if (st->url_prefix.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(st->url_prefix.data, "s3://%V/", &s3->bucket);

    st->data = s3;
    st->put = ngx_http_modelreg_s3_put;
    st->serve = ngx_http_modelreg_s3_serve;
    st->header = ngx_http_modelreg_s3_header;
    st->remove = ngx_http_modelreg_s3_remove;
    st->remove_bg = ngx_http_modelreg_s3_remove_bg;
    st->ready = ngx_http_modelreg_s3_ready;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"modelreg_storage\"",
                       &args[i]);
    return NGX_CONF_ERROR;

unknown:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown parameter \"%V\" in \"modelreg_storage\"",
                       &args[i]);
    return NGX_CONF_ERROR;
}


/* a signed call of a request */

static ngx_int_t
ngx_http_modelreg_s3_rsign(ngx_http_request_t *r, const char *method,
    ngx_str_t *key, ngx_str_t *query, ngx_str_t *payload,
    ngx_http_modelreg_s3_call_t **callp)
{
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    return ngx_http_modelreg_s3_sign(r->pool, mcf->store->data, method, key,
                                     query, payload, callp);
}


/* a signed call on "key" ("" for the bucket itself) */

static ngx_int_t
ngx_http_modelreg_s3_sign(ngx_pool_t *pool, ngx_http_modelreg_s3_t *s3,
    const char *method, ngx_str_t *key, ngx_str_t *query, ngx_str_t *payload,
    ngx_http_modelreg_s3_call_t **callp)
{
    u_char                            *p;
    ngx_tm_t                           tm;
    ngx_str_t                          path, service = ngx_string("s3");
    ngx_uint_t                         nh;
    ngx_http_modelreg_sigv4_t          sig;
    ngx_http_modelreg_s3_call_t       *call;
    ngx_http_modelreg_sigv4_header_t   h[4];

    call = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_s3_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->method.data = (u_char *) method;
    call->method.len = ngx_strlen(method);
    call->host = s3->host;
    call->token = s3->token;
    call->payload = *payload;

    /* /bucket/key (path style) or /key on the bucket's own host */

    path.len = 1 + s3->bucket.len + 1 + key->len;
    path.data = ngx_pnalloc(pool, path.len);
    if (path.data == NULL) {
        return NGX_ERROR;
    }

    p = path.data;
    *p++ = '/';

    if (s3->path_style) {
        p = ngx_cpymem(p, s3->bucket.data, s3->bucket.len);

        if (key->len) {
            *p++ = '/';
        }
    }

    p = ngx_cpymem(p, key->data, key->len);
    path.len = p - path.data;

    call->url.data = ngx_pnalloc(pool, s3->endpoint.len + 3 * path.len
                                          + 1 + query->len);
    if (call->url.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(call->url.data, s3->endpoint.data, s3->endpoint.len);
    p = ngx_http_modelreg_sigv4_encode(p, path.data, path.len, 1);

    if (query->len) {
        *p++ = '?';
        p = ngx_cpymem(p, query->data, query->len);
    }

    call->url.len = p - call->url.data;

    call->date.data = ngx_pnalloc(pool, sizeof("20060102T150405Z") - 1);
    if (call->date.data == NULL) {
        return NGX_ERROR;
    }

    ngx_gmtime(ngx_time(), &tm);
    call->date.len = ngx_sprintf(call->date.data, "%4d%02d%02dT%02d%02d%02dZ",
                                 tm.ngx_tm_year, tm.ngx_tm_mon,
                                 tm.ngx_tm_mday, tm.ngx_tm_hour,
                                 tm.ngx_tm_min, tm.ngx_tm_sec)
                     - call->date.data;

    /* the signing key changes once a day */

    if (ngx_strncmp(s3->key_day, call->date.data, 8) != 0) {
        if (ngx_http_modelreg_sigv4_key(&s3->secret_key, &call->date,
                                        &s3->region, &service, s3->key)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_memcpy(s3->key_day, call->date.data, 8);
    }

    ngx_str_set(&h[0].name, "host");
    h[0].value = call->host;
    ngx_str_set(&h[1].name, "x-amz-content-sha256");
    h[1].value = call->payload;
    ngx_str_set(&h[2].name, "x-amz-date");
    h[2].value = call->date;
    nh = 3;

    if (s3->token.len) {
        ngx_str_set(&h[3].name, "x-amz-security-token");
        h[3].value = s3->token;
        nh = 4;
    }

    ngx_memzero(&sig, sizeof(ngx_http_modelreg_sigv4_t));
    sig.method = call->method;
    sig.path = path;
    sig.query = *query;
    sig.headers = h;
    sig.nheaders = nh;
    sig.payload = call->payload;
    sig.date = call->date;
    sig.region = s3->region;
    sig.service = service;

    if (ngx_http_modelreg_sigv4_authorization(pool, &sig, &s3->access_key,
                                              s3->key, &call->authorization)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    *callp = call;

    return NGX_OK;
}


/* one call as an in-memory subrequest; "next" runs in the parent after */

static ngx_int_t
ngx_http_modelreg_s3_send(ngx_http_modelreg_s3_op_t *op,
    ngx_http_modelreg_s3_call_t *call, ngx_chain_t *body, off_t len,
    ngx_http_modelreg_s3_step_pt next)
{
    ngx_http_request_t             *r, *sr;
    ngx_http_modelreg_s3_t         *s3;
    ngx_http_request_body_t        *rb;
    ngx_http_modelreg_ctx_t        *sctx;
    ngx_http_post_subrequest_t     *ps;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = op->request;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    s3 = mcf->store->data;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    sctx = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_ctx_t));
    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));

    if (ps == NULL || sctx == NULL || rb == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_modelreg_s3_post;
    ps->data = op;

    if (ngx_http_subrequest(r, &s3->location, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sctx->s3 = call;
    ngx_http_set_ctx(sr, sctx, ngx_http_modelreg_module);

    /* the body: a range of the spooled file, or a small buffer */

    rb->bufs = body;
    sr->request_body = rb;
    sr->headers_in.content_length_n = len;
    sr->headers_in.content_length = NULL;
    sr->headers_in.chunked = 0;

    if (call->method.len == 4
        && ngx_strncmp(call->method.data, "HEAD", 4) == 0)
    {
        sr->method = NGX_HTTP_HEAD;
        sr->header_only = 1;
    }

    sr->method_name = call->method;

    op->next = next;
    op->status = 0;
    ngx_str_null(&op->etag);
    ngx_str_null(&op->reply);

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_s3_post(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_modelreg_s3_op_t *op = data;

    u_char              *p;
    size_t               len;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = op->request;

    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        op->status = (rc == NGX_ERROR) ? NGX_HTTP_BAD_GATEWAY : (ngx_uint_t) rc;

    } else {
        op->status = sr->headers_out.status;
    }

    if (sr->headers_out.etag) {
        op->etag.data = ngx_pstrdup(r->pool, &sr->headers_out.etag->value);
        op->etag.len = op->etag.data ? sr->headers_out.etag->value.len : 0;
    }

    /* the store's answer, kept small: XML with an id, or an error */

    len = 0;

    for (cl = sr->out; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    len = ngx_min(len, NGX_HTTP_MODELREG_S3_REPLY_MAX);

    op->reply.data = ngx_pnalloc(r->pool, len + 1);

    if (op->reply.data) {
        p = op->reply.data;

        for (cl = sr->out; cl && (size_t) (p - op->reply.data) < len;
             cl = cl->next)
        {
            b = cl->buf;

            if (!ngx_buf_in_memory(b)) {
                continue;
            }

            p = ngx_cpymem(p, b->pos, ngx_min((size_t) (b->last - b->pos),
                                      len - (p - op->reply.data)));
        }

        *p = '\0';
        op->reply.len = p - op->reply.data;
    }

    /* the parent goes on when it is posted, in s3_resume() */

    r->write_event_handler = ngx_http_modelreg_s3_resume;

    /*
     * A failed call (an upstream error, a reply over the subrequest's
     * buffer) ends this subrequest, not the client's request: NGX_ERROR
     * would terminate the main request, and with it the compensation
     * that s3_resume() reports the 502 to.
     */

    return rc == NGX_ERROR ? NGX_OK : rc;
}


static void
ngx_http_modelreg_s3_resume(ngx_http_request_t *r)
{
    ngx_http_modelreg_ctx_t    *ctx;
    ngx_http_modelreg_s3_op_t  *op;

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    op = ctx->store_op;

    op->next(r, op);
}


static ngx_http_modelreg_s3_op_t *
ngx_http_modelreg_s3_op(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_ctx_t    *ctx;
    ngx_http_modelreg_s3_op_t  *op;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    op = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_s3_op_t));
    if (op == NULL) {
        return NULL;
    }

    op->request = r;
    op->done = done;

    if (key) {
        op->key = *key;
    }

    ctx->store_op = op;

    return op;
}


static ngx_chain_t *
ngx_http_modelreg_s3_file_range(ngx_http_request_t *r, ngx_file_t *file,
    off_t offset, off_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (len == 0) {
        return NULL;
    }

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NULL;
    }

    b->in_file = 1;
    b->file = file;
    b->file_pos = offset;
    b->file_last = offset + len;

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/* the store said no: log what it said (never what we sent) */

static void
ngx_http_modelreg_s3_failed(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op, const char *what)
{
    u_char     *code, *end;
    ngx_str_t   c;

    ngx_str_set(&c, "-");

    code = op->reply.len ? (u_char *) ngx_strstr(op->reply.data, "<Code>")
                         : NULL;

    if (code) {
        code += sizeof("<Code>") - 1;
        end = (u_char *) ngx_strstr(code, "</Code>");

        if (end) {
            c.data = code;
            c.len = end - code;
        }
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "modelreg: object storage: %s \"%V\" failed: %ui %V",
                  what, &op->key, op->status, &c);
}


static ngx_int_t
ngx_http_modelreg_s3_put(ngx_http_request_t *r, ngx_http_modelreg_body_t *body,
    ngx_str_t *key, ngx_http_modelreg_store_done_pt done)
{
    ngx_str_t                       payload, query;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_s3_op_t      *op;
    ngx_http_modelreg_s3_call_t    *call;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    op = ngx_http_modelreg_s3_op(r, key, done);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->body = body;

    ngx_str_null(&query);

    if (body->size <= mcf->store->part_size) {

        /* one PUT, signed with the file's SHA-256: the store checks it */

        payload.data = ctx->sha256;
        payload.len = 64;

        if (ngx_http_modelreg_s3_rsign(r, "PUT", key, &query, &payload, &call)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_modelreg_s3_send(op, call,
                   ngx_http_modelreg_s3_file_range(r, &body->tf->file, 0,
                                                   body->size),
                   body->size, ngx_http_modelreg_s3_put_done);
    }

    if (body->parts.nelts
        != (ngx_uint_t) ((body->size + mcf->store->part_size - 1)
                         / mcf->store->part_size))
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "modelreg: %ui part hashes for %O bytes",
                      body->parts.nelts, body->size);
        return NGX_ERROR;
    }

    op->etags = ngx_pcalloc(r->pool, body->parts.nelts * sizeof(ngx_str_t));
    if (op->etags == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&query, "uploads");

    if (ngx_http_modelreg_s3_rsign(r, "POST", key, &query,
                                  &ngx_http_modelreg_s3_empty_sha256, &call)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_s3_send(op, call, NULL, 0,
                                     ngx_http_modelreg_s3_initiated);
}


static void
ngx_http_modelreg_s3_put_done(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    if (op->status == NGX_HTTP_OK) {
        op->done(r, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(r, op, "PUT");
    op->done(r, NGX_ERROR);
}


static void
ngx_http_modelreg_s3_initiated(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    u_char  *id, *end;

    id = op->reply.len ? (u_char *) ngx_strstr(op->reply.data, "<UploadId>")
                       : NULL;

    if (op->status != NGX_HTTP_OK || id == NULL) {
        ngx_http_modelreg_s3_failed(r, op, "multipart upload of");
        op->done(r, NGX_ERROR);
        return;
    }

    id += sizeof("<UploadId>") - 1;
    end = (u_char *) ngx_strstr(id, "</UploadId>");

    if (end == NULL) {
        ngx_http_modelreg_s3_failed(r, op, "multipart upload of");
        op->done(r, NGX_ERROR);
        return;
    }

    /* encoded once, as the query string carries it */

    op->upload_id.data = ngx_pnalloc(r->pool, 3 * (end - id));
    if (op->upload_id.data == NULL) {
        op->done(r, NGX_ERROR);
        return;
    }

    op->upload_id.len = ngx_http_modelreg_sigv4_encode(op->upload_id.data, id,
                                                       end - id, 0)
                        - op->upload_id.data;
    op->part = 0;

    if (ngx_http_modelreg_s3_send_part(r, op) != NGX_OK) {
        ngx_http_modelreg_s3_abort(r, op);
    }
}


static ngx_int_t
ngx_http_modelreg_s3_send_part(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    off_t                           off, len;
    ngx_str_t                       query, payload;
    ngx_http_modelreg_s3_call_t    *call;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    off = (off_t) op->part * mcf->store->part_size;
    len = ngx_min(mcf->store->part_size, op->body->size - off);

    query.data = ngx_pnalloc(r->pool, sizeof("partNumber=&uploadId=")
                                      + NGX_INT_T_LEN + op->upload_id.len);
    if (query.data == NULL) {
        return NGX_ERROR;
    }

    query.len = ngx_sprintf(query.data, "partNumber=%ui&uploadId=%V",
                            op->part + 1, &op->upload_id)
                - query.data;

    payload.data = (u_char *) op->body->parts.elts + 64 * op->part;
    payload.len = 64;

    if (ngx_http_modelreg_s3_rsign(r, "PUT", &op->key, &query, &payload,
                                  &call)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_s3_send(op, call,
               ngx_http_modelreg_s3_file_range(r, &op->body->tf->file, off,
                                               len),
               len, ngx_http_modelreg_s3_part_done);
}


static void
ngx_http_modelreg_s3_part_done(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    u_char                       *p;
    size_t                        len;
    ngx_str_t                     query, payload, *etag;
    ngx_uint_t                    i;
    ngx_chain_t                  *cl;
    ngx_buf_t                    *b;
    ngx_http_modelreg_s3_call_t  *call;

    if (op->status != NGX_HTTP_OK || op->etag.len == 0) {
        ngx_http_modelreg_s3_failed(r, op, "part upload of");
        ngx_http_modelreg_s3_abort(r, op);
        return;
    }

    op->etags[op->part++] = op->etag;

    if (op->part < op->body->parts.nelts) {
        if (ngx_http_modelreg_s3_send_part(r, op) != NGX_OK) {
            ngx_http_modelreg_s3_abort(r, op);
        }

        return;
    }

    /* every part is in: complete, listing the parts and their ETags */

    etag = op->etags;
    len = sizeof("<CompleteMultipartUpload></CompleteMultipartUpload>");

    for (i = 0; i < op->part; i++) {
        len += sizeof("<Part><PartNumber></PartNumber><ETag></ETag></Part>")
               + NGX_INT_T_LEN + etag[i].len;
    }

    b = ngx_create_temp_buf(r->pool, len);
    cl = ngx_alloc_chain_link(r->pool);
    query.data = ngx_pnalloc(r->pool, sizeof("uploadId=") + op->upload_id.len);
    payload.data = ngx_pnalloc(r->pool, 64);

    if (b == NULL || cl == NULL || query.data == NULL || payload.data == NULL)
    {
        ngx_http_modelreg_s3_abort(r, op);
        return;
    }

    p = ngx_sprintf(b->pos, "<CompleteMultipartUpload>");

    for (i = 0; i < op->part; i++) {
        p = ngx_sprintf(p, "<Part><PartNumber>%ui</PartNumber>"
                           "<ETag>%V</ETag></Part>", i + 1, &etag[i]);
    }

    p = ngx_sprintf(p, "</CompleteMultipartUpload>");
    b->last = p;

    cl->buf = b;
    cl->next = NULL;

    ngx_http_modelreg_sha256_hex(payload.data, b->pos, b->last - b->pos);
    payload.len = 64;

    query.len = ngx_sprintf(query.data, "uploadId=%V", &op->upload_id)
                - query.data;

    if (ngx_http_modelreg_s3_rsign(r, "POST", &op->key, &query, &payload,
                                  &call)
        != NGX_OK
        || ngx_http_modelreg_s3_send(op, call, cl, b->last - b->pos,
                                     ngx_http_modelreg_s3_completed)
           != NGX_OK)
    {
        ngx_http_modelreg_s3_abort(r, op);
    }
}


static void
ngx_http_modelreg_s3_completed(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    /* S3 may answer 200 with an <Error> in the body */

    if (op->status == NGX_HTTP_OK
        && (op->reply.len == 0
            || ngx_strstr(op->reply.data, "<Error>") == NULL))
    {
        op->done(r, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(r, op, "completing the upload of");
    ngx_http_modelreg_s3_abort(r, op);
}


/* the parts sent so far must not stay in the store */

static void
ngx_http_modelreg_s3_abort(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    ngx_str_t                     query;
    ngx_http_modelreg_s3_call_t  *call;

    query.data = ngx_pnalloc(r->pool, sizeof("uploadId=") + op->upload_id.len);
    if (query.data == NULL) {
        op->done(r, NGX_ERROR);
        return;
    }

    query.len = ngx_sprintf(query.data, "uploadId=%V", &op->upload_id)
                - query.data;

    if (ngx_http_modelreg_s3_rsign(r, "DELETE", &op->key, &query,
                                  &ngx_http_modelreg_s3_empty_sha256, &call)
        != NGX_OK
        || ngx_http_modelreg_s3_send(op, call, NULL, 0,
                                     ngx_http_modelreg_s3_aborted)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "modelreg: cannot abort the upload of \"%V\"",
                      &op->key);
        op->done(r, NGX_ERROR);
    }
}


static void
ngx_http_modelreg_s3_aborted(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    if (op->status != NGX_HTTP_NO_CONTENT && op->status != NGX_HTTP_OK
        && op->status != NGX_HTTP_NOT_FOUND)
    {
        ngx_http_modelreg_s3_failed(r, op, "aborting the upload of");
    }

    op->done(r, NGX_ERROR);
}


/*
 * A download: If-None-Match is answered here (the store's ETag is its
 * own, the API's is the sha256); the rest goes to the store through the
 * proxy, Range included, and its answer comes back through
 * ngx_http_modelreg_s3_header().
 */

static ngx_int_t
ngx_http_modelreg_s3_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t **out)
{
    ngx_str_t                       query;
    ngx_table_elt_t                *h;
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_s3_t         *s3;
    ngx_http_modelreg_s3_call_t    *call;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    s3 = mcf->store->data;

    h = ngx_http_modelreg_header_in(r, "If-None-Match");

    if (h && (ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                               obj->sha256.data, obj->sha256.len - 1)
              != NULL
              || (h->value.len == 1 && h->value.data[0] == '*')))
    {
        return NGX_HTTP_NOT_MODIFIED;
    }

    ngx_str_null(&query);

    if (ngx_http_modelreg_s3_rsign(r, r->method == NGX_HTTP_HEAD ? "HEAD"
                                                                : "GET",
                                  &obj->key, &query,
                                  &ngx_http_modelreg_s3_empty_sha256, &call)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a Range goes on unless an If-Range names another version */

    h = ngx_http_modelreg_header_in(r, "Range");

    if (h) {
        call->range = h->value;

        h = ngx_http_modelreg_header_in(r, "If-Range");

        if (h && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                                  obj->sha256.data, obj->sha256.len - 1)
                 == NULL)
        {
            ngx_str_null(&call->range);
        }
    }

    ctx->s3 = call;

    return ngx_http_internal_redirect(r, &s3->location, NULL);
}


/* the store's answer to a download: what it says about itself goes */

static ngx_int_t
ngx_http_modelreg_s3_header(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj)
{
    return ngx_http_modelreg_s3_strip(r);
}


/* drops what the store said about itself: x-amz-*, ETag, Swift's ids */

static ngx_int_t
ngx_http_modelreg_s3_strip(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if ((h[i].key.len > 6
             && ngx_strncasecmp(h[i].key.data, (u_char *) "x-amz-", 6) == 0)
            || (h[i].key.len > 8
                && ngx_strncasecmp(h[i].key.data, (u_char *) "x-trans-", 8)
                   == 0)
            || (h[i].key.len > 12
                && ngx_strncasecmp(h[i].key.data, (u_char *) "x-openstack-",
                                   12) == 0)
            || (h[i].key.len == 11
                && ngx_strncasecmp(h[i].key.data, (u_char *) "x-timestamp",
                                   11) == 0)
            || (h[i].key.len == 4
                && ngx_strncasecmp(h[i].key.data, (u_char *) "etag", 4) == 0)
            || (h[i].key.len == 19
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "content-disposition", 19) == 0))
        {
            h[i].hash = 0;
        }
    }

    r->headers_out.etag = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_s3_remove(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_str_t                     query;
    ngx_http_modelreg_s3_op_t    *op;
    ngx_http_modelreg_s3_call_t  *call;

    op = ngx_http_modelreg_s3_op(r, key, done);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_str_null(&query);

    if (ngx_http_modelreg_s3_rsign(r, "DELETE", key, &query,
                                  &ngx_http_modelreg_s3_empty_sha256, &call)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_s3_send(op, call, NULL, 0,
                                     ngx_http_modelreg_s3_removed);
}


static void
ngx_http_modelreg_s3_removed(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    /* gone already is gone */

    if (op->status == NGX_HTTP_NO_CONTENT || op->status == NGX_HTTP_OK
        || op->status == NGX_HTTP_NOT_FOUND)
    {
        op->done(r, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(r, op, "DELETE");
    op->done(r, NGX_ERROR);
}


/*
 * Outside any request (the clean-up timer) there is nothing to hang a
 * subrequest on: the same signed DELETE goes through libcurl on nginx's
 * event loop instead.
 */

typedef struct {
    ngx_pool_t                     *pool;
    ngx_str_t                       key;
    ngx_http_modelreg_store_bg_pt   done;
    void                           *data;
} ngx_http_modelreg_s3_bg_t;


static ngx_int_t
ngx_http_modelreg_s3_remove_bg(ngx_http_modelreg_store_t *st, ngx_str_t *key,
    ngx_log_t *log, ngx_http_modelreg_store_bg_pt done, void *data)
{
    u_char                       *url;
    ngx_str_t                     query;
    ngx_pool_t                   *pool;
    ngx_http_modelreg_s3_bg_t    *bg;
    ngx_http_modelreg_curl_t     *cu;
    ngx_http_modelreg_s3_call_t  *call;

    pool = ngx_create_pool(4096, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    ngx_str_null(&query);

    bg = ngx_palloc(pool, sizeof(ngx_http_modelreg_s3_bg_t));
    cu = ngx_http_modelreg_curl_create(pool, log, 4096);

    if (bg == NULL || cu == NULL
        || ngx_http_modelreg_s3_sign(pool, st->data, "DELETE", key, &query,
                                     &ngx_http_modelreg_s3_empty_sha256,
                                     &call)
           != NGX_OK)
    {
        goto failed;
    }

    url = ngx_pnalloc(pool, call->url.len + 1);
    if (url == NULL) {
        goto failed;
    }

    ngx_sprintf(url, "%V%Z", &call->url);

    bg->pool = pool;
    bg->done = done;
    bg->data = data;
    bg->key.data = ngx_pstrdup(pool, key);
    bg->key.len = key->len;

    curl_easy_setopt(cu->easy, CURLOPT_URL, (char *) url);
    curl_easy_setopt(cu->easy, CURLOPT_CUSTOMREQUEST, "DELETE");

    if (((ngx_http_modelreg_s3_t *) st->data)->ca_file.len) {
        curl_easy_setopt(cu->easy, CURLOPT_CAINFO,
                         ((ngx_http_modelreg_s3_t *) st->data)->ca_file.data);
    }

    if (ngx_http_modelreg_curl_header(cu, "x-amz-date", &call->date)
           != NGX_OK
        || ngx_http_modelreg_curl_header(cu, "x-amz-content-sha256",
                                         &call->payload) != NGX_OK
        || ngx_http_modelreg_curl_header(cu, "Authorization",
                                         &call->authorization) != NGX_OK
        || (call->token.len
            && ngx_http_modelreg_curl_header(cu, "x-amz-security-token",
                                             &call->token) != NGX_OK))
    {
        goto failed;
    }

    cu->done = ngx_http_modelreg_s3_removed_bg;
    cu->data = bg;

    if (ngx_http_modelreg_curl_start(cu) != NGX_OK) {
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_destroy_pool(pool);
    return NGX_ERROR;
}


static void
ngx_http_modelreg_s3_removed_bg(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_s3_bg_t *bg = cu->data;

    void                          *data;
    ngx_int_t                      rc;
    ngx_http_modelreg_store_bg_pt  done;

    rc = NGX_OK;

    if (cu->result != CURLE_OK) {
        ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                      "modelreg: object storage: DELETE \"%V\" failed: %s",
                      &bg->key, curl_easy_strerror(cu->result));
        rc = NGX_ERROR;

    } else if (cu->status != NGX_HTTP_NO_CONTENT && cu->status != NGX_HTTP_OK
               && cu->status != NGX_HTTP_NOT_FOUND)
    {
        ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                      "modelreg: object storage: DELETE \"%V\" failed: %l",
                      &bg->key, cu->status);
        rc = NGX_ERROR;
    }

    done = bg->done;
    data = bg->data;

    ngx_destroy_pool(bg->pool);

    done(data, rc);
}


static ngx_int_t
ngx_http_modelreg_s3_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_str_t                     key, query;
    ngx_http_modelreg_s3_op_t    *op;
    ngx_http_modelreg_s3_call_t  *call;

    ngx_str_null(&key);
    ngx_str_null(&query);

    op = ngx_http_modelreg_s3_op(r, &key, done);
    if (op == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_s3_rsign(r, "HEAD", &key, &query,
                                  &ngx_http_modelreg_s3_empty_sha256, &call)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_s3_send(op, call, NULL, 0,
                                     ngx_http_modelreg_s3_ready_done);
}


static void
ngx_http_modelreg_s3_ready_done(ngx_http_request_t *r,
    ngx_http_modelreg_s3_op_t *op)
{
    if (op->status == NGX_HTTP_OK) {
        op->done(r, NGX_OK);
        return;
    }

    ngx_str_set(&op->key, "(the bucket)");
    ngx_http_modelreg_s3_failed(r, op, "HEAD");
    op->done(r, NGX_ERROR);
}


static ngx_int_t
ngx_http_modelreg_s3_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_modelreg_get_ctx(r);

    if (ctx == NULL || ctx->s3 == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx->s3 + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
