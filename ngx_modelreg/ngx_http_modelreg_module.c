
/*
 * Copyright (C) modelreg authors
 *
 * Directives, configuration and the worker's life cycle.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_curl.h"
#include "ngx_http_modelreg_geti.h"


/* modelreg_database: connections per worker, waiting requests, time */
#define NGX_HTTP_MODELREG_DB_POOL_DEFAULT     4
#define NGX_HTTP_MODELREG_DB_POOL_MIN         1
#define NGX_HTTP_MODELREG_DB_POOL_MAX         1024
#define NGX_HTTP_MODELREG_DB_QUEUE_DEFAULT    256
#define NGX_HTTP_MODELREG_DB_QUEUE_MAX        65536
#define NGX_HTTP_MODELREG_DB_TIMEOUT_DEFAULT  5000
#define NGX_HTTP_MODELREG_DB_BATCH_DEFAULT    16
#define NGX_HTTP_MODELREG_DB_BATCH_MAX        256

/* after an invalid value of modelreg_database */
#define NGX_HTTP_MODELREG_DB_HINT                                            \
    " (pool=" ngx_value(NGX_HTTP_MODELREG_DB_POOL_MIN)                       \
    ".." ngx_value(NGX_HTTP_MODELREG_DB_POOL_MAX)                            \
    ", queue=0.." ngx_value(NGX_HTTP_MODELREG_DB_QUEUE_MAX)                  \
    ", timeout=a time > 0"                                                  \
    ", batch=1.." ngx_value(NGX_HTTP_MODELREG_DB_BATCH_MAX) ")"

/*
 * modelreg_events: waiting clients of GET /events per worker (past them,
 * 503), a stream's bytes its client has not read (past them, it is cut
 * off), and a stream's lifetime (then it ends; the client reconnects)
 */
#define NGX_HTTP_MODELREG_EVENTS_WAITERS_DEFAULT   10000
#define NGX_HTTP_MODELREG_EVENTS_WAITERS_MAX       1000000
#define NGX_HTTP_MODELREG_EVENTS_BACKLOG_DEFAULT   (1024 * 1024)
#define NGX_HTTP_MODELREG_EVENTS_LIFETIME_DEFAULT  300000

/* modelreg_storage: how often worker 0 retries removals that failed */
#define NGX_HTTP_MODELREG_GC_INTERVAL_DEFAULT  30000


static void *ngx_http_modelreg_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_modelreg_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_modelreg_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_modelreg_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_modelreg_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_modelreg_storage(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_modelreg_events_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
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

    { ngx_string("modelreg_events"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_modelreg_events_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("modelreg_webhook"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_modelreg_webhook_directive,
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

    { ngx_string("modelreg_link_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_modelreg_link_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_modelreg_conf_bounds_t  ngx_http_modelreg_db_pool_bounds = {
    NGX_HTTP_MODELREG_DB_POOL_MIN, NGX_HTTP_MODELREG_DB_POOL_MAX
};

static ngx_http_modelreg_conf_bounds_t  ngx_http_modelreg_db_queue_bounds = {
    0, NGX_HTTP_MODELREG_DB_QUEUE_MAX
};

static ngx_http_modelreg_conf_bounds_t  ngx_http_modelreg_db_batch_bounds = {
    1, NGX_HTTP_MODELREG_DB_BATCH_MAX
};


static ngx_http_modelreg_conf_arg_t  ngx_http_modelreg_database_args[] = {

    { ngx_string("pool"),
      ngx_http_modelreg_conf_set_num,
      offsetof(ngx_http_modelreg_main_conf_t, db.size),
      &ngx_http_modelreg_db_pool_bounds },

    { ngx_string("queue"),
      ngx_http_modelreg_conf_set_num,
      offsetof(ngx_http_modelreg_main_conf_t, db.queue),
      &ngx_http_modelreg_db_queue_bounds },

    { ngx_string("timeout"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_main_conf_t, db.timeout),
      NULL },

    { ngx_string("batch"),
      ngx_http_modelreg_conf_set_num,
      offsetof(ngx_http_modelreg_main_conf_t, db.batch),
      &ngx_http_modelreg_db_batch_bounds },

      ngx_http_modelreg_null_arg
};


static ngx_http_modelreg_conf_bounds_t  ngx_http_modelreg_waiters_bounds = {
    1, NGX_HTTP_MODELREG_EVENTS_WAITERS_MAX
};

static ngx_http_modelreg_conf_bounds_t  ngx_http_modelreg_backlog_bounds = {
    4096, NGX_MAX_OFF_T_VALUE
};


static ngx_http_modelreg_conf_arg_t  ngx_http_modelreg_events_args[] = {

    { ngx_string("waiters"),
      ngx_http_modelreg_conf_set_num,
      offsetof(ngx_http_modelreg_main_conf_t, events_waiters),
      &ngx_http_modelreg_waiters_bounds },

    { ngx_string("backlog"),
      ngx_http_modelreg_conf_set_off,
      offsetof(ngx_http_modelreg_main_conf_t, events_backlog),
      &ngx_http_modelreg_backlog_bounds },

    { ngx_string("lifetime"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_main_conf_t, events_lifetime),
      NULL },

      ngx_http_modelreg_null_arg
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
    mcf->db.batch = NGX_CONF_UNSET_UINT;
    mcf->request_id_index = NGX_ERROR;
    mcf->cache_size = NGX_CONF_UNSET_SIZE;
    mcf->events_waiters = NGX_CONF_UNSET_UINT;
    mcf->events_backlog = NGX_CONF_UNSET;
    mcf->events_lifetime = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_http_modelreg_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->db.size, NGX_HTTP_MODELREG_DB_POOL_DEFAULT);
    ngx_conf_init_uint_value(mcf->db.queue,
                             NGX_HTTP_MODELREG_DB_QUEUE_DEFAULT);
    ngx_conf_init_msec_value(mcf->db.timeout,
                             NGX_HTTP_MODELREG_DB_TIMEOUT_DEFAULT);
    ngx_conf_init_uint_value(mcf->db.batch, NGX_HTTP_MODELREG_DB_BATCH_DEFAULT);

    ngx_conf_init_uint_value(mcf->events_waiters,
                             NGX_HTTP_MODELREG_EVENTS_WAITERS_DEFAULT);
    ngx_conf_init_value(mcf->events_backlog,
                        NGX_HTTP_MODELREG_EVENTS_BACKLOG_DEFAULT);
    ngx_conf_init_msec_value(mcf->events_lifetime,
                             NGX_HTTP_MODELREG_EVENTS_LIFETIME_DEFAULT);

    if (mcf->store) {
        ngx_conf_init_msec_value(mcf->store->gc_interval,
                                 NGX_HTTP_MODELREG_GC_INTERVAL_DEFAULT);
    }

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
     *     lcf->link_key = { 0, NULL };
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

    ngx_http_core_loc_conf_t  *clcf;

    /*
     * not inherited by a location: the handler is set per location, like
     * proxy_pass; but a location's own "limit_except" and "if" blocks are
     * part of it, so its answers there stay the registry's (JSON errors,
     * X-Request-Id: a write that limit_except refuses)
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = clcf->noname ? prev->enable : 0;
    }

    /*
     * a method that limit_except restricts runs with the block's own
     * content handler (as proxy_pass sets it there): without it, a write
     * that the block allows would be served by the static module
     */

    if (conf->enable && clcf->lmt_excpt && clcf->handler == NULL) {
        clcf->handler = ngx_http_modelreg_handler;
    }

    ngx_conf_merge_ptr_value(conf->actor, prev->actor, NULL);
    ngx_conf_merge_str_value(conf->link_key, prev->link_key, "");

    return NGX_CONF_OK;
}


/* modelreg_database "conninfo" [pool=N] [queue=N] [timeout=T] [batch=N] */

static char *
ngx_http_modelreg_database(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

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

    return ngx_http_modelreg_conf_parse(cf, ngx_http_modelreg_database_args,
                                        &value[2], cf->args->nelts - 2, mcf,
                                        NGX_HTTP_MODELREG_DB_HINT);
}


/* modelreg_events [waiters=N] [backlog=SIZE] [lifetime=TIME] */

static char *
ngx_http_modelreg_events_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    if (mcf->events_waiters != NGX_CONF_UNSET_UINT
        || mcf->events_backlog != NGX_CONF_UNSET
        || mcf->events_lifetime != NGX_CONF_UNSET_MSEC)
    {
        return "is duplicate";
    }

    return ngx_http_modelreg_conf_parse(cf, ngx_http_modelreg_events_args,
                                        (ngx_str_t *) cf->args->elts + 1,
                                        cf->args->nelts - 1, mcf,
                                        " (waiters=1..1000000, backlog=a "
                                        "size of 4k or more, lifetime=a "
                                        "time > 0)");
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

    mcf->store->gc_interval = NGX_CONF_UNSET_MSEC;

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

    if (ngx_http_modelreg_openapi_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_body_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mcf->used_file
        && (ngx_http_modelreg_stats_conf(cf, mcf) != NGX_OK
            || ngx_http_modelreg_cache_conf(cf, mcf) != NGX_OK))
    {
        return NGX_ERROR;
    }

    mcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (mcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_http_modelreg_links_init(cf) != NGX_OK) {
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
        || ngx_http_modelreg_stats_init(cycle, mcf) != NGX_OK
        || ngx_http_modelreg_cache_init(cycle, mcf) != NGX_OK
        || ngx_http_modelreg_cache_listen_init(cycle, mcf) != NGX_OK
        || ngx_http_modelreg_feed_init(cycle, mcf) != NGX_OK
        || ngx_http_modelreg_webhook_init(cycle, mcf) != NGX_OK)
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
    ngx_http_modelreg_webhook_exit(mcf);
    ngx_http_modelreg_feed_exit();
    ngx_http_modelreg_cache_listen_exit();
    ngx_http_modelreg_cache_exit();
    ngx_http_modelreg_stats_exit();
    ngx_http_modelreg_sync_exit();
    ngx_http_modelreg_curl_exit(cycle);

    if (mcf && mcf->pool) {
        ngx_http_modelreg_pg_done(mcf->pool);
        mcf->pool = NULL;
    }
}
