
/*
 * Copyright (C) modelreg authors
 *
 * Directives, configuration and the worker's life cycle.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_curl.h"
#include "ngx_http_modelreg_geti.h"


#define NGX_HTTP_MODELREG_DEFAULT_POOL     4
#define NGX_HTTP_MODELREG_DEFAULT_QUEUE    256
#define NGX_HTTP_MODELREG_DEFAULT_TIMEOUT  5000


static void *ngx_http_modelreg_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_modelreg_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_modelreg_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_modelreg_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_modelreg_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_modelreg_storage(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_modelreg(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_modelreg_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_modelreg_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_modelreg_init_process(ngx_cycle_t *cycle);
static void ngx_http_modelreg_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_modelreg_commands[] = {

    { ngx_string("modelreg_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_modelreg_database,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("modelreg_storage"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_modelreg_storage,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("modelreg_geti"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_modelreg_geti,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("modelreg_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_modelreg_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("modelreg"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_modelreg,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("modelreg_actor"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_modelreg_loc_conf_t, actor),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_modelreg_module_ctx = {
    ngx_http_modelreg_preconfiguration,    /* preconfiguration */
    ngx_http_modelreg_postconfiguration,   /* postconfiguration */

    ngx_http_modelreg_create_main_conf,    /* create main configuration */
    ngx_http_modelreg_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_modelreg_create_loc_conf,     /* create location configuration */
    ngx_http_modelreg_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_modelreg_module = {
    NGX_MODULE_V1,
    &ngx_http_modelreg_module_ctx,         /* module context */
    ngx_http_modelreg_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_modelreg_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_modelreg_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_modelreg_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->db.conninfo = { 0, NULL };
     *     mcf->pool = NULL;
     *     mcf->used_file = NULL;
     */

    mcf->db.size = NGX_CONF_UNSET_UINT;
    mcf->db.queue = NGX_CONF_UNSET_UINT;
    mcf->db.timeout = NGX_CONF_UNSET_MSEC;
    mcf->request_id_index = NGX_ERROR;
    mcf->cache_size = NGX_CONF_UNSET_SIZE;

    return mcf;
}


static char *
ngx_http_modelreg_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->db.size, NGX_HTTP_MODELREG_DEFAULT_POOL);
    ngx_conf_init_uint_value(mcf->db.queue, NGX_HTTP_MODELREG_DEFAULT_QUEUE);
    ngx_conf_init_msec_value(mcf->db.timeout,
                             NGX_HTTP_MODELREG_DEFAULT_TIMEOUT);

    return NGX_CONF_OK;
}


static void *
ngx_http_modelreg_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_modelreg_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lcf->actor = NULL;
     */

    lcf->enable = NGX_CONF_UNSET;
    lcf->actor = NGX_CONF_UNSET_PTR;

    return lcf;
}


static char *
ngx_http_modelreg_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_modelreg_loc_conf_t  *prev = parent;
    ngx_http_modelreg_loc_conf_t  *conf = child;

    /* not inherited: the handler is set per location, like proxy_pass */

    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = 0;
    }

    ngx_conf_merge_ptr_value(conf->actor, prev->actor, NULL);

    return NGX_CONF_OK;
}


/* modelreg_database "conninfo" [pool=N] [queue=N] [timeout=T] */

static char *
ngx_http_modelreg_database(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_msec_t   ms;
    ngx_uint_t   i;

    if (mcf->db.conninfo.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_database\" needs a non-empty "
                           "libpq connection string");
        return NGX_CONF_ERROR;
    }

    mcf->db.conninfo = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }

            mcf->db.size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR || n > 65536) {
                goto invalid;
            }

            mcf->db.queue = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            mcf->db.timeout = ms;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown parameter \"%V\" in "
                           "\"modelreg_database\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"modelreg_database\" "
                       "(pool=1..1024, queue=0..65536, timeout=a time > 0)",
                       &value[i]);
    return NGX_CONF_ERROR;
}


/* modelreg_storage fs DIR [...] | s3 endpoint=URL bucket=B ... */

static char *
ngx_http_modelreg_storage(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->store) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mcf->store = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_store_t));
    if (mcf->store == NULL) {
        return NGX_CONF_ERROR;
    }

    mcf->store->gc_interval = 30000;

    if (value[1].len == 2 && ngx_strncmp(value[1].data, "fs", 2) == 0) {
        return ngx_http_modelreg_store_fs_conf(cf, mcf->store, &value[2],
                                               cf->args->nelts - 2);
    }

    if (value[1].len == 2 && ngx_strncmp(value[1].data, "s3", 2) == 0) {
        return ngx_http_modelreg_store_s3_conf(cf, mcf->store, &value[2],
                                               cf->args->nelts - 2);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown storage type \"%V\" in \"modelreg_storage\" "
                       "(known: fs, s3)", &value[1]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_modelreg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_modelreg_loc_conf_t  *lcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_modelreg_main_conf_t  *mcf;

    if (lcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_modelreg_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_modelreg_module);

    if (mcf->used_file == NULL) {
        mcf->used_file = cf->conf_file->file.name.data;
        mcf->used_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_modelreg_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_modelreg_s3_variables(cf);
}


static ngx_int_t
ngx_http_modelreg_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                       name = ngx_string("request_id");
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_modelreg_module);

    if (mcf->used_file && mcf->db.conninfo.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"modelreg\" in %s:%ui requires \"modelreg_database\" "
                      "in the http block", mcf->used_file, mcf->used_line);
        return NGX_ERROR;
    }

    if (mcf->used_file && mcf->store == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"modelreg\" in %s:%ui requires \"modelreg_storage\" "
                      "in the http block", mcf->used_file, mcf->used_line);
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_body_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mcf->used_file
        && (ngx_http_modelreg_metrics_conf(cf, mcf) != NGX_OK
            || ngx_http_modelreg_cache_conf(cf, mcf) != NGX_OK))
    {
        return NGX_ERROR;
    }

    mcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (mcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* the store's filter first: nginx runs the last installed first */

    if (ngx_http_modelreg_store_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_header_filter_init(cf);
}


static ngx_int_t
ngx_http_modelreg_init_process(ngx_cycle_t *cycle)
{
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_modelreg_module);

    if (mcf == NULL || mcf->db.conninfo.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_modelreg_pg_init(cycle, &mcf->db, &mcf->pool) != NGX_OK
        || ngx_http_modelreg_curl_init(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_sync_init(cycle, mcf) != NGX_OK
        || ngx_http_modelreg_metrics_init(cycle, mcf) != NGX_OK
        || ngx_http_modelreg_cache_init(cycle, mcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_modelreg_gc_init(cycle, mcf);
}


static void
ngx_http_modelreg_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_modelreg_module);

    if (mcf && mcf->gc_timer.timer_set) {
        ngx_del_timer(&mcf->gc_timer);
    }

    ngx_http_modelreg_gc_exit();
    ngx_http_modelreg_cache_exit();
    ngx_http_modelreg_metrics_exit();
    ngx_http_modelreg_sync_exit();
    ngx_http_modelreg_curl_exit(cycle);

    if (mcf && mcf->pool) {
        ngx_http_modelreg_pg_done(mcf->pool);
        mcf->pool = NULL;
    }
}


/*
 * A secret from a file (S3 keys, the Geti token): its first line,
 * trimmed; relative paths like ssl_certificate's; never logged.
 */

ngx_int_t
ngx_http_modelreg_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    const char *directive, ngx_str_t *out)
{
    u_char      *p, *end, buf[4096];
    ssize_t      n;
    ngx_str_t    path;
    ngx_file_t   file;

    path = *name;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = path;
    file.log = cf->log;

    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read the %s file \"%s\" of \"%s\"",
                           ngx_strcmp(directive, "modelreg_geti") == 0
                           ? "token" : "key", path.data, directive);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);
    ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    p = buf;
    end = buf + n;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    for (n = 0; p + n < end && p[n] != '\n' && p[n] != '\r'; n++) {
        /* void */
    }

    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
        n--;
    }

    if (n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the %s file \"%s\" of \"%s\" is empty",
                           ngx_strcmp(directive, "modelreg_geti") == 0
                           ? "token" : "key", path.data, directive);
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(cf->pool, n);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, p, n);
    out->len = n;

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}
