
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
 * S3 multipart upload, each part signed with its own SHA-256.  Outside
 * any request (the clean-up timer) the same signed calls go through
 * libcurl.  Each step of an operation makes its call through one
 * function, ngx_http_modelreg_s3_call().
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_sigv4.h"
#include "ngx_http_modelreg_curl.h"


/* what is kept of the store's answers (XML: an upload id, an error) */
#define NGX_HTTP_MODELREG_S3_REPLY_MAX  4096

/* a background call's own pool: its signed call and its libcurl handle */
#define NGX_HTTP_MODELREG_S3_BG_POOL    4096

/* the S3 backend's defaults, applied once its arguments are read */
#define NGX_HTTP_MODELREG_S3_PATH_STYLE_DEFAULT  1
#define NGX_HTTP_MODELREG_S3_LOCATION_DEFAULT    "/_modelreg/s3"
#define NGX_HTTP_MODELREG_S3_PART_SIZE_DEFAULT   (64 * 1024 * 1024)

/* S3's limits: parts of 5 MiB at least, 5 GiB at most */
#define NGX_HTTP_MODELREG_S3_PART_SIZE_MIN  (5 * 1024 * 1024)
#define NGX_HTTP_MODELREG_S3_PART_SIZE_MAX  ((off_t) 5 * 1024 * 1024 * 1024)

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

typedef void (*ngx_http_modelreg_s3_step_pt)(ngx_http_modelreg_s3_op_t *op);


/*
 * A store operation, as a chain of calls: each call is signed and sent by
 * ngx_http_modelreg_s3_call(), then its step ("next") reads the answer
 * and makes the next call or finishes.  An operation of a request sends
 * subrequests and ends with done(r, rc); one of the clean-up timer sends
 * through libcurl, from its own pool, and ends with bg_done(data, rc).
 */

struct ngx_http_modelreg_s3_op_s {
    ngx_http_modelreg_store_t       *store;
    ngx_pool_t                      *pool;
    ngx_log_t                       *log;
    ngx_str_t                        key;        /* "": the bucket */

    ngx_http_request_t              *request;    /* NULL: the background */
    ngx_http_modelreg_store_done_pt  done;
    ngx_http_modelreg_store_bg_pt    bg_done;
    void                            *data;

    /* the call under way, then its answer */
    const char                      *method;
    ngx_http_modelreg_s3_step_pt     next;
    ngx_uint_t                       status;
    ngx_str_t                        etag;
    ngx_str_t                        reply;      /* NUL-terminated */
    const char                      *error;      /* libcurl's, if it failed */

    /* a put: one PUT, or a multipart upload */
    ngx_http_modelreg_body_t        *body;
    ngx_str_t                        upload;     /* "uploadId=..." */
    ngx_uint_t                       part;
    ngx_str_t                       *etags;
};


/* a request's traces at the HTTP debug level, the background's at EVENT */

#define ngx_http_modelreg_s3_debug_level(op)                                 \
    ((op)->request ? NGX_LOG_DEBUG_HTTP : NGX_LOG_DEBUG_EVENT)


static ngx_int_t ngx_http_modelreg_s3_sign(ngx_pool_t *pool,
    ngx_http_modelreg_s3_t *s3, const char *method, ngx_str_t *key,
    ngx_str_t *query, ngx_str_t *payload, ngx_http_modelreg_s3_call_t **callp);
static ngx_int_t ngx_http_modelreg_s3_rsign(ngx_http_request_t *r,
    const char *method, ngx_str_t *key, ngx_str_t *query, ngx_str_t *payload,
    ngx_http_modelreg_s3_call_t **callp);
static ngx_http_modelreg_s3_op_t *ngx_http_modelreg_s3_op(
    ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
static ngx_int_t ngx_http_modelreg_s3_call(ngx_http_modelreg_s3_op_t *op,
    const char *method, ngx_str_t *query, ngx_str_t *payload, ngx_buf_t *b,
    ngx_http_modelreg_s3_step_pt next);
static ngx_int_t ngx_http_modelreg_s3_subrequest(ngx_http_modelreg_s3_op_t *op,
    ngx_http_modelreg_s3_call_t *call, ngx_buf_t *b);
static ngx_int_t ngx_http_modelreg_s3_post(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static void ngx_http_modelreg_s3_resume(ngx_http_request_t *r);
static ngx_int_t ngx_http_modelreg_s3_curl(ngx_http_modelreg_s3_op_t *op,
    ngx_http_modelreg_s3_call_t *call, ngx_buf_t *b);
static void ngx_http_modelreg_s3_curl_done(ngx_http_modelreg_curl_t *cu);
static void ngx_http_modelreg_s3_reply(ngx_http_modelreg_s3_op_t *op,
    ngx_chain_t *out);
static void ngx_http_modelreg_s3_finish(ngx_http_modelreg_s3_op_t *op,
    ngx_int_t rc);
static ngx_uint_t ngx_http_modelreg_s3_gone(ngx_uint_t status);
static void ngx_http_modelreg_s3_failed(ngx_http_modelreg_s3_op_t *op,
    const char *what);
static ngx_buf_t *ngx_http_modelreg_s3_file_range(
    ngx_http_modelreg_s3_op_t *op, off_t offset, off_t len);

static ngx_int_t ngx_http_modelreg_s3_put(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_s3_put_done(ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_initiated(ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_send_part(
    ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_part_done(ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_complete(ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_completed(ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_abort(ngx_http_modelreg_s3_op_t *op);
static void ngx_http_modelreg_s3_aborted(ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t **out);
static ngx_int_t ngx_http_modelreg_s3_header(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj);
static ngx_int_t ngx_http_modelreg_s3_remove(ngx_http_request_t *r,
    ngx_str_t *key, ngx_http_modelreg_store_done_pt done);
static ngx_int_t ngx_http_modelreg_s3_remove_bg(ngx_http_modelreg_store_t *st,
    ngx_str_t *key, ngx_log_t *log, ngx_http_modelreg_store_bg_pt done,
    void *data);
static void ngx_http_modelreg_s3_removed(ngx_http_modelreg_s3_op_t *op);
static ngx_int_t ngx_http_modelreg_s3_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_s3_ready_done(ngx_http_modelreg_s3_op_t *op);
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



/* what "modelreg_storage s3" sets: the backend's own, and the store's */

typedef struct {
    ngx_http_modelreg_s3_t           s3;
    off_t                            part_size;
    ngx_msec_t                       gc_interval;
    ngx_str_t                        spool;
} ngx_http_modelreg_s3_args_t;


static char *ngx_http_modelreg_s3_set_endpoint(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);
static char *ngx_http_modelreg_s3_set_location(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);


static ngx_http_modelreg_conf_bounds_t  ngx_http_modelreg_s3_part_bounds = {
    NGX_HTTP_MODELREG_S3_PART_SIZE_MIN, NGX_HTTP_MODELREG_S3_PART_SIZE_MAX
};


static ngx_http_modelreg_conf_arg_t  ngx_http_modelreg_s3_args[] = {

    { ngx_string("endpoint"),
      ngx_http_modelreg_s3_set_endpoint,
      0,
      NULL },

    { ngx_string("bucket"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_s3_args_t, s3.bucket),
      NULL },

    { ngx_string("region"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_s3_args_t, s3.region),
      NULL },

    { ngx_string("path_style"),
      ngx_http_modelreg_conf_set_flag,
      offsetof(ngx_http_modelreg_s3_args_t, s3.path_style),
      NULL },

    { ngx_string("part_size"),
      ngx_http_modelreg_conf_set_off,
      offsetof(ngx_http_modelreg_s3_args_t, part_size),
      &ngx_http_modelreg_s3_part_bounds },

    { ngx_string("gc_interval"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_s3_args_t, gc_interval),
      NULL },

    { ngx_string("spool"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_s3_args_t, spool),
      NULL },

    { ngx_string("ssl_trusted_certificate"),
      ngx_http_modelreg_conf_set_path,
      offsetof(ngx_http_modelreg_s3_args_t, s3.ca_file),
      NULL },

    { ngx_string("location"),
      ngx_http_modelreg_s3_set_location,
      offsetof(ngx_http_modelreg_s3_args_t, s3.location),
      NULL },

    { ngx_string("access_key_file"),
      ngx_http_modelreg_conf_set_secret_file,
      offsetof(ngx_http_modelreg_s3_args_t, s3.access_key),
      NULL },

    { ngx_string("access_key_env"),
      ngx_http_modelreg_conf_set_secret_env,
      offsetof(ngx_http_modelreg_s3_args_t, s3.access_key),
      NULL },

    { ngx_string("secret_key_file"),
      ngx_http_modelreg_conf_set_secret_file,
      offsetof(ngx_http_modelreg_s3_args_t, s3.secret_key),
      NULL },

    { ngx_string("secret_key_env"),
      ngx_http_modelreg_conf_set_secret_env,
      offsetof(ngx_http_modelreg_s3_args_t, s3.secret_key),
      NULL },

    { ngx_string("session_token_file"),
      ngx_http_modelreg_conf_set_secret_file,
      offsetof(ngx_http_modelreg_s3_args_t, s3.token),
      NULL },

    { ngx_string("session_token_env"),
      ngx_http_modelreg_conf_set_secret_env,
      offsetof(ngx_http_modelreg_s3_args_t, s3.token),
      NULL },

      ngx_http_modelreg_null_arg
};


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
    u_char                       *p, *v;
    size_t                        len;
    ngx_str_t                     spool;
    ngx_http_modelreg_s3_t       *s3;
    ngx_http_modelreg_s3_args_t  *a;

    a = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_s3_args_t));
    if (a == NULL) {
        return NGX_CONF_ERROR;
    }

    s3 = &a->s3;
    s3->path_style = NGX_CONF_UNSET;
    a->part_size = NGX_CONF_UNSET;
    a->gc_interval = NGX_CONF_UNSET_MSEC;

    if (ngx_http_modelreg_conf_parse(cf, ngx_http_modelreg_s3_args, args, n,
                                     a, NULL)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(s3->path_style,
                        NGX_HTTP_MODELREG_S3_PATH_STYLE_DEFAULT);

    if (s3->location.data == NULL) {
        ngx_str_set(&s3->location, NGX_HTTP_MODELREG_S3_LOCATION_DEFAULT);
    }

    if (a->part_size == NGX_CONF_UNSET) {
        a->part_size = NGX_HTTP_MODELREG_S3_PART_SIZE_DEFAULT;
    }

    st->part_size = a->part_size;
    st->gc_interval = a->gc_interval;   /* unset: the module's default */
    spool = a->spool;

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

    /* uploads spool in their own directory, created by nginx at start;
     * nginx's own temp path is shared with its own temp files */

    st->own_spool = (spool.len != 0);

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
}


/* scheme://host[:port], no path: the bucket comes after */

static char *
ngx_http_modelreg_s3_set_endpoint(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_http_modelreg_s3_args_t  *a = conf;

    u_char     *host;
    ngx_str_t   s;

    s = *value;

    if (s.len > 7 && ngx_strncmp(s.data, "http://", 7) == 0) {
        host = s.data + 7;

    } else if (s.len > 8 && ngx_strncmp(s.data, "https://", 8) == 0) {
        host = s.data + 8;

    } else {
        return "invalid value";
    }

    while (s.len && s.data[s.len - 1] == '/') {
        s.len--;
    }

    if (ngx_strlchr(host, s.data + s.len, '/') != NULL) {
        return "invalid value";
    }

    a->s3.endpoint = s;
    a->s3.host.data = host;
    a->s3.host.len = s.data + s.len - host;

    return NGX_CONF_OK;
}


/* the internal location of conf/modelreg_storage.conf */

static char *
ngx_http_modelreg_s3_set_location(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    if (value->len == 0 || value->data[0] != '/') {
        return "invalid value";
    }

    return ngx_http_modelreg_conf_set_str(cf, arg, value, conf);
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


/* an operation of a request; its steps find it in the request's context */

static ngx_http_modelreg_s3_op_t *
ngx_http_modelreg_s3_op(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_ctx_t        *ctx;
    ngx_http_modelreg_s3_op_t      *op;
    ngx_http_modelreg_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    op = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_s3_op_t));
    if (op == NULL) {
        return NULL;
    }

    op->store = mcf->store;
    op->pool = r->pool;
    op->log = r->connection->log;
    op->request = r;
    op->done = done;

    if (key) {
        op->key = *key;
    }

    ctx->store->op = op;           /* (the store layer made ctx->store) */

    return op;
}


/*
 * The one way to the store: "method" on the operation's key, with a query
 * (NULL: none), the body's hex SHA-256 (NULL: of no body) and the body (a
 * range of the spooled file, a small buffer, or NULL), signed, then sent;
 * "next" runs with the answer in op->status, op->etag and op->reply.
 */

static ngx_int_t
ngx_http_modelreg_s3_call(ngx_http_modelreg_s3_op_t *op, const char *method,
    ngx_str_t *query, ngx_str_t *payload, ngx_buf_t *b,
    ngx_http_modelreg_s3_step_pt next)
{
    ngx_str_t                     none;
    ngx_http_modelreg_s3_call_t  *call;

    ngx_str_null(&none);

    if (query == NULL) {
        query = &none;
    }

    if (payload == NULL) {
        payload = &ngx_http_modelreg_s3_empty_sha256;
    }

    if (ngx_http_modelreg_s3_sign(op->pool, op->store->data, method, &op->key,
                                  query, payload, &call)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    op->method = method;
    op->next = next;
    op->status = 0;
    op->error = NULL;
    ngx_str_null(&op->etag);
    ngx_str_null(&op->reply);

    ngx_log_debug5(ngx_http_modelreg_s3_debug_level(op), op->log, 0,
                   "modelreg s3: %s \"%V\"%s%V, %O bytes", method, &op->key,
                   query->len ? "?" : "", query, b ? ngx_buf_size(b) : 0);

    if (op->request) {
        return ngx_http_modelreg_s3_subrequest(op, call, b);
    }

    return ngx_http_modelreg_s3_curl(op, call, b);
}


/* a call of a request: an in-memory subrequest to the store location */

static ngx_int_t
ngx_http_modelreg_s3_subrequest(ngx_http_modelreg_s3_op_t *op,
    ngx_http_modelreg_s3_call_t *call, ngx_buf_t *b)
{
    off_t                           len;
    ngx_chain_t                    *cl;
    ngx_http_request_t             *r, *sr;
    ngx_http_modelreg_s3_t         *s3;
    ngx_http_request_body_t        *rb;
    ngx_http_modelreg_ctx_t        *sctx;
    ngx_http_post_subrequest_t     *ps;
    ngx_http_modelreg_store_ctx_t  *sst;

    r = op->request;
    s3 = op->store->data;
    len = b ? ngx_buf_size(b) : 0;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    sctx = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_ctx_t));
    sst = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_store_ctx_t));
    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    cl = len ? ngx_alloc_chain_link(r->pool) : NULL;

    if (ps == NULL || sctx == NULL || sst == NULL || rb == NULL
        || (len && cl == NULL))
    {
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

    sst->call = call;
    sctx->store = sst;
    ngx_http_set_ctx(sr, sctx, ngx_http_modelreg_module);

    /* the body: a range of the spooled file, or a small buffer */

    if (cl) {
        cl->buf = b;
        cl->next = NULL;
    }

    rb->bufs = cl;
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

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_s3_post(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_modelreg_s3_op_t *op = data;

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

    ngx_http_modelreg_s3_reply(op, sr->out);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "modelreg s3: %s \"%V\" answered %ui",
                   op->method, &op->key, op->status);

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
    op = ctx->store->op;

    op->next(op);
}


/*
 * Outside any request (the clean-up timer) there is nothing to hang a
 * subrequest on: the same signed call goes through libcurl on nginx's
 * event loop instead, with no body (a DELETE).
 */

static ngx_int_t
ngx_http_modelreg_s3_curl(ngx_http_modelreg_s3_op_t *op,
    ngx_http_modelreg_s3_call_t *call, ngx_buf_t *b)
{
    u_char                    *url;
    ngx_http_modelreg_s3_t    *s3;
    ngx_http_modelreg_curl_t  *cu;

    if (b) {
        return NGX_ERROR;
    }

    s3 = op->store->data;

    cu = ngx_http_modelreg_curl_create(op->pool, op->log,
                                       NGX_HTTP_MODELREG_S3_REPLY_MAX);
    url = ngx_pnalloc(op->pool, call->url.len + 1);

    if (cu == NULL || url == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(url, "%V%Z", &call->url);

    curl_easy_setopt(cu->easy, CURLOPT_URL, (char *) url);
    curl_easy_setopt(cu->easy, CURLOPT_CUSTOMREQUEST, op->method);

    if (s3->ca_file.len) {
        curl_easy_setopt(cu->easy, CURLOPT_CAINFO, s3->ca_file.data);
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
        return NGX_ERROR;
    }

    cu->done = ngx_http_modelreg_s3_curl_done;
    cu->data = op;

    return ngx_http_modelreg_curl_start(cu);
}


static void
ngx_http_modelreg_s3_curl_done(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_s3_op_t *op = cu->data;

    ngx_chain_t  out;

    if (cu->result != CURLE_OK) {
        op->error = curl_easy_strerror(cu->result);

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, op->log, 0,
                       "modelreg s3: %s \"%V\" failed: %s",
                       op->method, &op->key, op->error);

    } else {
        op->status = cu->status;

        out.buf = cu->body;
        out.next = NULL;

        ngx_http_modelreg_s3_reply(op, cu->body ? &out : NULL);

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, op->log, 0,
                       "modelreg s3: %s \"%V\" answered %ui",
                       op->method, &op->key, op->status);
    }

    op->next(op);
}


/* the store's answer, kept small: XML with an id, or an error */

static void
ngx_http_modelreg_s3_reply(ngx_http_modelreg_s3_op_t *op, ngx_chain_t *out)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    for (cl = out; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    len = ngx_min(len, NGX_HTTP_MODELREG_S3_REPLY_MAX);

    op->reply.data = ngx_pnalloc(op->pool, len + 1);

    if (op->reply.data == NULL) {
        return;
    }

    p = op->reply.data;

    for (cl = out; cl && (size_t) (p - op->reply.data) < len; cl = cl->next) {
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


/* the end of an operation: its caller's callback */

static void
ngx_http_modelreg_s3_finish(ngx_http_modelreg_s3_op_t *op, ngx_int_t rc)
{
    void                           *data;
    ngx_http_modelreg_store_bg_pt   done;

    ngx_log_debug2(ngx_http_modelreg_s3_debug_level(op), op->log, 0,
                   "modelreg s3: \"%V\" done: %i", &op->key, rc);

    if (op->request) {
        op->done(op->request, rc);
        return;
    }

    done = op->bg_done;
    data = op->data;

    ngx_destroy_pool(op->pool);

    done(data, rc);
}


/* a DELETE's success: gone already is gone */

static ngx_uint_t
ngx_http_modelreg_s3_gone(ngx_uint_t status)
{
    return status == NGX_HTTP_NO_CONTENT || status == NGX_HTTP_OK
           || status == NGX_HTTP_NOT_FOUND;
}


/* the store said no: log what it said (never what we sent) */

static void
ngx_http_modelreg_s3_failed(ngx_http_modelreg_s3_op_t *op, const char *what)
{
    u_char     *code, *end;
    ngx_str_t   c, key;

    if (op->key.len) {
        key = op->key;

    } else {
        ngx_str_set(&key, "(the bucket)");
    }

    if (op->error) {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "modelreg: object storage: %s \"%V\" failed: %s",
                      what, &key, op->error);
        return;
    }

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

    ngx_log_error(NGX_LOG_ERR, op->log, 0,
                  "modelreg: object storage: %s \"%V\" failed: %ui %V",
                  what, &key, op->status, &c);
}


/* a range of the spooled file, as a body that is never read into memory */

static ngx_buf_t *
ngx_http_modelreg_s3_file_range(ngx_http_modelreg_s3_op_t *op, off_t offset,
    off_t len)
{
    ngx_buf_t  *b;

    b = ngx_calloc_buf(op->pool);
    if (b == NULL) {
        return NULL;
    }

    b->in_file = 1;
    b->file = &op->body->tf->file;
    b->file_pos = offset;
    b->file_last = offset + len;

    return b;
}


static ngx_int_t
ngx_http_modelreg_s3_put(ngx_http_request_t *r, ngx_http_modelreg_body_t *body,
    ngx_str_t *key, ngx_http_modelreg_store_done_pt done)
{
    off_t                       part_size;
    ngx_str_t                   payload, query;
    ngx_buf_t                  *b;
    ngx_http_modelreg_s3_op_t  *op;

    op = ngx_http_modelreg_s3_op(r, key, done);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->body = body;
    part_size = op->store->part_size;

    if (body->size <= part_size) {

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, op->log, 0,
                       "modelreg s3: put \"%V\": %O bytes in one PUT",
                       key, body->size);

        /* one PUT, signed with the file's SHA-256: the store checks it */

        payload.data = body->sha256;
        payload.len = 64;

        b = ngx_http_modelreg_s3_file_range(op, 0, body->size);
        if (b == NULL) {
            return NGX_ERROR;
        }

        return ngx_http_modelreg_s3_call(op, "PUT", NULL, &payload, b,
                                         ngx_http_modelreg_s3_put_done);
    }

    if (body->parts.nelts
        != (ngx_uint_t) ((body->size + part_size - 1) / part_size))
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "modelreg: %ui part hashes for %O bytes",
                      body->parts.nelts, body->size);
        return NGX_ERROR;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "modelreg s3: put \"%V\": %O bytes in %ui parts",
                   key, body->size, body->parts.nelts);

    op->etags = ngx_pcalloc(r->pool, body->parts.nelts * sizeof(ngx_str_t));
    if (op->etags == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&query, "uploads");

    return ngx_http_modelreg_s3_call(op, "POST", &query, NULL, NULL,
                                     ngx_http_modelreg_s3_initiated);
}


static void
ngx_http_modelreg_s3_put_done(ngx_http_modelreg_s3_op_t *op)
{
    if (op->status == NGX_HTTP_OK) {
        ngx_http_modelreg_s3_finish(op, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(op, "PUT");
    ngx_http_modelreg_s3_finish(op, NGX_ERROR);
}


static void
ngx_http_modelreg_s3_initiated(ngx_http_modelreg_s3_op_t *op)
{
    u_char  *id, *end, *p;

    id = op->reply.len ? (u_char *) ngx_strstr(op->reply.data, "<UploadId>")
                       : NULL;
    end = NULL;

    if (id) {
        id += sizeof("<UploadId>") - 1;
        end = (u_char *) ngx_strstr(id, "</UploadId>");
    }

    if (op->status != NGX_HTTP_OK || end == NULL) {
        ngx_http_modelreg_s3_failed(op, "multipart upload of");
        ngx_http_modelreg_s3_finish(op, NGX_ERROR);
        return;
    }

    /* encoded once, as the query strings of the parts and the end carry it */

    op->upload.data = ngx_pnalloc(op->pool,
                                  sizeof("uploadId=") - 1 + 3 * (end - id));
    if (op->upload.data == NULL) {
        ngx_http_modelreg_s3_finish(op, NGX_ERROR);
        return;
    }

    p = ngx_cpymem(op->upload.data, "uploadId=", sizeof("uploadId=") - 1);
    p = ngx_http_modelreg_sigv4_encode(p, id, end - id, 0);
    op->upload.len = p - op->upload.data;

    op->part = 0;

    if (ngx_http_modelreg_s3_send_part(op) != NGX_OK) {
        ngx_http_modelreg_s3_abort(op);
    }
}


static ngx_int_t
ngx_http_modelreg_s3_send_part(ngx_http_modelreg_s3_op_t *op)
{
    off_t       off, len;
    ngx_buf_t  *b;
    ngx_str_t   query, payload;

    off = (off_t) op->part * op->store->part_size;
    len = ngx_min(op->store->part_size, op->body->size - off);

    query.data = ngx_pnalloc(op->pool, sizeof("partNumber=&") - 1
                                       + NGX_INT_T_LEN + op->upload.len);
    if (query.data == NULL) {
        return NGX_ERROR;
    }

    query.len = ngx_sprintf(query.data, "partNumber=%ui&%V",
                            op->part + 1, &op->upload)
                - query.data;

    payload.data = (u_char *) op->body->parts.elts + 64 * op->part;
    payload.len = 64;

    b = ngx_http_modelreg_s3_file_range(op, off, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_s3_call(op, "PUT", &query, &payload, b,
                                     ngx_http_modelreg_s3_part_done);
}


static void
ngx_http_modelreg_s3_part_done(ngx_http_modelreg_s3_op_t *op)
{
    if (op->status != NGX_HTTP_OK || op->etag.len == 0) {
        ngx_http_modelreg_s3_failed(op, "part upload of");
        ngx_http_modelreg_s3_abort(op);
        return;
    }

    op->etags[op->part++] = op->etag;

    if ((op->part < op->body->parts.nelts
         ? ngx_http_modelreg_s3_send_part(op)
         : ngx_http_modelreg_s3_complete(op))
        != NGX_OK)
    {
        ngx_http_modelreg_s3_abort(op);
    }
}


/* every part is in: complete, listing the parts and their ETags */

static ngx_int_t
ngx_http_modelreg_s3_complete(ngx_http_modelreg_s3_op_t *op)
{
    u_char      *p;
    size_t       len;
    ngx_str_t    payload, *etag;
    ngx_buf_t   *b;
    ngx_uint_t   i;

    etag = op->etags;
    len = sizeof("<CompleteMultipartUpload></CompleteMultipartUpload>");

    for (i = 0; i < op->part; i++) {
        len += sizeof("<Part><PartNumber></PartNumber><ETag></ETag></Part>")
               + NGX_INT_T_LEN + etag[i].len;
    }

    b = ngx_create_temp_buf(op->pool, len);
    payload.data = ngx_pnalloc(op->pool, 64);

    if (b == NULL || payload.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(b->pos, "<CompleteMultipartUpload>");

    for (i = 0; i < op->part; i++) {
        p = ngx_sprintf(p, "<Part><PartNumber>%ui</PartNumber>"
                           "<ETag>%V</ETag></Part>", i + 1, &etag[i]);
    }

    p = ngx_sprintf(p, "</CompleteMultipartUpload>");
    b->last = p;

    ngx_http_modelreg_sha256_hex(payload.data, b->pos, b->last - b->pos);
    payload.len = 64;

    return ngx_http_modelreg_s3_call(op, "POST", &op->upload, &payload, b,
                                     ngx_http_modelreg_s3_completed);
}


static void
ngx_http_modelreg_s3_completed(ngx_http_modelreg_s3_op_t *op)
{
    /* S3 may answer 200 with an <Error> in the body */

    if (op->status == NGX_HTTP_OK
        && (op->reply.len == 0
            || ngx_strstr(op->reply.data, "<Error>") == NULL))
    {
        ngx_http_modelreg_s3_finish(op, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(op, "completing the upload of");
    ngx_http_modelreg_s3_abort(op);
}


/* the parts sent so far must not stay in the store */

static void
ngx_http_modelreg_s3_abort(ngx_http_modelreg_s3_op_t *op)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "modelreg s3: aborting the upload of \"%V\"", &op->key);

    if (ngx_http_modelreg_s3_call(op, "DELETE", &op->upload, NULL, NULL,
                                  ngx_http_modelreg_s3_aborted)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "modelreg: cannot abort the upload of \"%V\"",
                      &op->key);
        ngx_http_modelreg_s3_finish(op, NGX_ERROR);
    }
}


static void
ngx_http_modelreg_s3_aborted(ngx_http_modelreg_s3_op_t *op)
{
    if (!ngx_http_modelreg_s3_gone(op->status)) {
        ngx_http_modelreg_s3_failed(op, "aborting the upload of");
    }

    ngx_http_modelreg_s3_finish(op, NGX_ERROR);
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

    ctx->store->call = call;

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


/*
 * A removal, of a request (a subrequest) or of the clean-up timer
 * (libcurl, in a pool of its own): the same DELETE, the same answer.
 */

static ngx_int_t
ngx_http_modelreg_s3_remove(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_s3_op_t  *op;

    op = ngx_http_modelreg_s3_op(r, key, done);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "modelreg s3: remove \"%V\"", key);

    return ngx_http_modelreg_s3_call(op, "DELETE", NULL, NULL, NULL,
                                     ngx_http_modelreg_s3_removed);
}


static ngx_int_t
ngx_http_modelreg_s3_remove_bg(ngx_http_modelreg_store_t *st, ngx_str_t *key,
    ngx_log_t *log, ngx_http_modelreg_store_bg_pt done, void *data)
{
    ngx_pool_t                 *pool;
    ngx_http_modelreg_s3_op_t  *op;

    pool = ngx_create_pool(NGX_HTTP_MODELREG_S3_BG_POOL, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    op = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_s3_op_t));
    if (op == NULL) {
        goto failed;
    }

    op->store = st;
    op->pool = pool;
    op->log = log;
    op->bg_done = done;
    op->data = data;

    /* the caller's key may not outlive this call */

    op->key.data = ngx_pstrdup(pool, key);
    op->key.len = key->len;

    if (op->key.data == NULL) {
        goto failed;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, log, 0,
                   "modelreg s3: remove \"%V\" in the background", key);

    if (ngx_http_modelreg_s3_call(op, "DELETE", NULL, NULL, NULL,
                                  ngx_http_modelreg_s3_removed)
        != NGX_OK)
    {
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_destroy_pool(pool);
    return NGX_ERROR;
}


static void
ngx_http_modelreg_s3_removed(ngx_http_modelreg_s3_op_t *op)
{
    if (ngx_http_modelreg_s3_gone(op->status)) {
        ngx_http_modelreg_s3_finish(op, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(op, "DELETE");
    ngx_http_modelreg_s3_finish(op, NGX_ERROR);
}


/* ready: the bucket answers a HEAD */

static ngx_int_t
ngx_http_modelreg_s3_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_s3_op_t  *op;

    op = ngx_http_modelreg_s3_op(r, NULL, done);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "modelreg s3: ready: the bucket?");

    return ngx_http_modelreg_s3_call(op, "HEAD", NULL, NULL, NULL,
                                     ngx_http_modelreg_s3_ready_done);
}


static void
ngx_http_modelreg_s3_ready_done(ngx_http_modelreg_s3_op_t *op)
{
    if (op->status == NGX_HTTP_OK) {
        ngx_http_modelreg_s3_finish(op, NGX_OK);
        return;
    }

    ngx_http_modelreg_s3_failed(op, "HEAD");
    ngx_http_modelreg_s3_finish(op, NGX_ERROR);
}


static ngx_int_t
ngx_http_modelreg_s3_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_modelreg_get_ctx(r);

    if (ctx == NULL || ctx->store == NULL || ctx->store->call == NULL)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx->store->call + data);

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
