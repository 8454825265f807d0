
/*
 * Copyright (C) modelreg authors
 *
 * Intel Geti: the directive and the client (libcurl multi on nginx's
 * event loop, ngx_http_modelreg_curl.c) that the Geti routes
 * (ngx_http_modelreg_geti_projects.c, ngx_http_modelreg_geti_import.c)
 * make their calls with: a bounded number at once per worker, GETs
 * retried, every answer's JSON parsed and its values type-checked.  The
 * client calls its users back only through the handlers they give it.
 */


#include "ngx_http_modelreg_geti.h"


/* the most of a Geti answer that is read: beyond, the answer is bad */
#define NGX_HTTP_MODELREG_GETI_BODY_MAX  (4 * 1024 * 1024)

#define NGX_HTTP_MODELREG_GETI_RETRIES   2

/* a retry's delay, doubled at each: 200 ms, 400 ms */
#define NGX_HTTP_MODELREG_GETI_RETRY_DELAY  200

/*
 * The Geti calls one worker makes at once, all its requests together:
 * GET /projects makes a call per project and per model, an import one
 * per step, so without a bound one request could open hundreds of
 * sockets and buffers against Geti.  Calls beyond it wait in order (each
 * within its own timeout), never refused.
 */
#define NGX_HTTP_MODELREG_GETI_CONCURRENCY  8

/* modelreg_geti's defaults; the sync is off unless sync= is given */
#define NGX_HTTP_MODELREG_GETI_API_DEFAULT             "v1"
#define NGX_HTTP_MODELREG_GETI_VERIFY_DEFAULT          1
#define NGX_HTTP_MODELREG_GETI_TIMEOUT_DEFAULT         10000
#define NGX_HTTP_MODELREG_GETI_EXPORT_TIMEOUT_DEFAULT  600000
#define NGX_HTTP_MODELREG_GETI_SYNC_DEFAULT            0


typedef struct {
    ngx_http_modelreg_geti_list_t  *list;
    ngx_http_modelreg_geti_pt       handler;
    void                           *arg;
    ngx_str_t                       path;
    ngx_str_t                       post;       /* a POST's JSON body */
    ngx_http_modelreg_curl_sink_pt  sink;       /* a download's */
    ngx_msec_t                      timeout;
    ngx_msec_t                      queued;     /* when it began to wait */
    ngx_uint_t                      tries;
    ngx_queue_t                     queue;      /* waiting for its turn */
    ngx_event_t                     timer;      /* the wait, or a retry */
    unsigned                        get:1;      /* idempotent: retried */
    unsigned                        waiting:1;
    unsigned                        active:1;   /* one of the CONCURRENCY */
} ngx_http_modelreg_geti_call_t;


static ngx_http_modelreg_geti_call_t *ngx_http_modelreg_geti_call(
    ngx_http_modelreg_geti_list_t *l, ngx_str_t *path,
    ngx_http_modelreg_geti_pt handler, void *arg);
static ngx_int_t ngx_http_modelreg_geti_start(
    ngx_http_modelreg_geti_call_t *call);
static ngx_int_t ngx_http_modelreg_geti_launch(
    ngx_http_modelreg_geti_call_t *call, ngx_msec_t waited);
static void ngx_http_modelreg_geti_release(
    ngx_http_modelreg_geti_call_t *call);
static void ngx_http_modelreg_geti_dispatch(ngx_event_t *ev);
static void ngx_http_modelreg_geti_waited(ngx_event_t *ev);
static void ngx_http_modelreg_geti_drop(ngx_http_modelreg_geti_call_t *call);
static void ngx_http_modelreg_geti_call_cleanup(void *data);
static ngx_http_modelreg_curl_t *ngx_http_modelreg_geti_transfer(
    ngx_http_modelreg_geti_call_t *call, ngx_msec_t timeout);
static void ngx_http_modelreg_geti_got(ngx_http_modelreg_curl_t *cu);
static ngx_int_t ngx_http_modelreg_geti_retry(
    ngx_http_modelreg_geti_call_t *call, ngx_http_modelreg_curl_t *cu);
static void ngx_http_modelreg_geti_retry_handler(ngx_event_t *ev);


/*
 * What modelreg_geti sets: the Geti configuration, and the parts of its
 * base URL (the defaults are applied once all of it is read).
 */

typedef struct {
    ngx_http_modelreg_geti_conf_t   geti;
    ngx_str_t                       org;
    ngx_str_t                       workspace;
    ngx_str_t                       api_version;
} ngx_http_modelreg_geti_args_t;


static char *ngx_http_modelreg_geti_set_self(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);
static char *ngx_http_modelreg_geti_set_projects(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);


static ngx_http_modelreg_conf_arg_t  ngx_http_modelreg_geti_args[] = {

    { ngx_string("org"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_geti_args_t, org),
      NULL },

    { ngx_string("workspace"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_geti_args_t, workspace),
      NULL },

    { ngx_string("api_version"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_geti_args_t, api_version),
      NULL },

    { ngx_string("token_file"),
      ngx_http_modelreg_conf_set_secret_file,
      offsetof(ngx_http_modelreg_geti_args_t, geti.token),
      NULL },

    { ngx_string("token_env"),
      ngx_http_modelreg_conf_set_secret_env,
      offsetof(ngx_http_modelreg_geti_args_t, geti.token),
      NULL },

    { ngx_string("verify"),
      ngx_http_modelreg_conf_set_flag,
      offsetof(ngx_http_modelreg_geti_args_t, geti.verify),
      NULL },

    { ngx_string("sync_url"),
      ngx_http_modelreg_geti_set_self,
      offsetof(ngx_http_modelreg_geti_args_t, geti.self),
      NULL },

    { ngx_string("ssl_trusted_certificate"),
      ngx_http_modelreg_conf_set_path,
      offsetof(ngx_http_modelreg_geti_args_t, geti.ca_file),
      NULL },

    { ngx_string("timeout"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_geti_args_t, geti.timeout),
      NULL },

    { ngx_string("export_timeout"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_geti_args_t, geti.export_timeout),
      NULL },

    { ngx_string("sync"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_geti_args_t, geti.sync),
      NULL },

    { ngx_string("projects"),
      ngx_http_modelreg_geti_set_projects,
      offsetof(ngx_http_modelreg_geti_args_t, geti.projects),
      NULL },

      ngx_http_modelreg_null_arg
};


/* this worker's calls: how many run, and those waiting their turn */

static ngx_uint_t   ngx_http_modelreg_geti_active;
static ngx_queue_t  ngx_http_modelreg_geti_waiting;
static ngx_event_t  ngx_http_modelreg_geti_next;


/*
 * modelreg_geti URL org=ID workspace=ID token_file=F (or token_env=VAR)
 *     [api_version=v1] [verify=on|off] [ssl_trusted_certificate=F]
 *     [timeout=T] [export_timeout=T] [sync=T] [projects=ID,ID,...]
 *     [sync_url=http://127.0.0.1:PORT]
 */

char *
ngx_http_modelreg_geti(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ngx_str_t                      *value, s;
    ngx_http_modelreg_geti_args_t  *a;
    ngx_http_modelreg_geti_conf_t  *g;

    if (mcf->geti) {
        return "is duplicate";
    }

    value = cf->args->elts;

    a = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_geti_args_t));
    if (a == NULL) {
        return NGX_CONF_ERROR;
    }

    g = &a->geti;
    g->verify = NGX_CONF_UNSET;
    g->timeout = NGX_CONF_UNSET_MSEC;
    g->export_timeout = NGX_CONF_UNSET_MSEC;
    g->sync = NGX_CONF_UNSET_MSEC;

    s = value[1];

    if (!((s.len > 7 && ngx_strncmp(s.data, "http://", 7) == 0)
          || (s.len > 8 && ngx_strncmp(s.data, "https://", 8) == 0)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_geti\" needs an http:// or https:// "
                           "URL, not \"%V\"", &s);
        return NGX_CONF_ERROR;
    }

    while (s.len && s.data[s.len - 1] == '/') {
        s.len--;
    }

    if (ngx_http_modelreg_conf_parse(cf, ngx_http_modelreg_geti_args,
                                     &value[2], cf->args->nelts - 2, a, NULL)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (a->org.len == 0 || a->workspace.len == 0 || g->token.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_geti\" needs org=, workspace= and a "
                           "token (token_file= or token_env=)");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(g->verify, NGX_HTTP_MODELREG_GETI_VERIFY_DEFAULT);
    ngx_conf_init_msec_value(g->timeout,
                             NGX_HTTP_MODELREG_GETI_TIMEOUT_DEFAULT);
    ngx_conf_init_msec_value(g->export_timeout,
                             NGX_HTTP_MODELREG_GETI_EXPORT_TIMEOUT_DEFAULT);
    ngx_conf_init_msec_value(g->sync, NGX_HTTP_MODELREG_GETI_SYNC_DEFAULT);

    if (a->api_version.data == NULL) {
        ngx_str_set(&a->api_version, NGX_HTTP_MODELREG_GETI_API_DEFAULT);
    }

    g->base.len = s.len + sizeof("/api//organizations//workspaces/") - 1
                  + a->api_version.len + a->org.len + a->workspace.len;
    g->base.data = ngx_pnalloc(cf->pool, g->base.len);
    if (g->base.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(g->base.data, "%V/api/%V/organizations/%V/workspaces/%V",
                &s, &a->api_version, &a->org, &a->workspace);

    mcf->geti = g;

    return NGX_CONF_OK;
}


/* how the sync reaches the registry itself: http://host:port */

static char *
ngx_http_modelreg_geti_set_self(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_str_t  s;

    s = *value;

    while (s.len && s.data[s.len - 1] == '/') {
        s.len--;
    }

    if (s.len < 8 || ngx_strncmp(s.data, "http", 4) != 0) {
        return "invalid value";
    }

    return ngx_http_modelreg_conf_set_str(cf, arg, &s, conf);
}


/* projects=ID,ID,...: the projects the sync reads (NULL: all of them) */

static char *
ngx_http_modelreg_geti_set_projects(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    u_char        *p, *q, *end;
    ngx_str_t     *id;
    ngx_array_t  **projects;

    projects = ngx_http_modelreg_conf_field(ngx_array_t *, conf, arg);

    *projects = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (*projects == NULL) {
        return NGX_CONF_ERROR;
    }

    q = value->data;
    end = value->data + value->len;

    while (q < end) {
        p = ngx_strlchr(q, end, ',');
        if (p == NULL) {
            p = end;
        }

        if (ngx_http_modelreg_valid_id(q, p - q) != NGX_OK) {
            return "invalid value";
        }

        id = ngx_array_push(*projects);
        if (id == NULL) {
            return NGX_CONF_ERROR;
        }

        id->data = q;
        id->len = p - q;
        q = p + 1;
    }

    return NGX_CONF_OK;
}


/* a call of Geti's API; the handler gets the parsed JSON */

static ngx_http_modelreg_geti_call_t *
ngx_http_modelreg_geti_call(ngx_http_modelreg_geti_list_t *l, ngx_str_t *path,
    ngx_http_modelreg_geti_pt handler, void *arg)
{
    ngx_pool_t                     *pool;
    ngx_pool_cleanup_t             *cln;
    ngx_http_request_t             *r;
    ngx_http_modelreg_geti_call_t  *call;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = l->request;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    pool = l->pool ? l->pool : r->pool;

    call = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_geti_call_t));
    cln = ngx_pool_cleanup_add(pool, 0);

    if (call == NULL || cln == NULL) {
        return NULL;
    }

    /* (a path may be on the caller's stack: the call may start later) */

    call->path.data = ngx_pstrdup(pool, path);
    if (call->path.data == NULL) {
        return NULL;
    }

    call->path.len = path->len;

    cln->handler = ngx_http_modelreg_geti_call_cleanup;
    cln->data = call;

    call->list = l;
    call->handler = handler;
    call->arg = arg;
    call->timeout = mcf->geti->timeout;

    call->timer.data = call;
    call->timer.log = r->connection->log;

    return call;
}


/* the call starts now if a slot is free and nobody waits; else it waits */

static ngx_int_t
ngx_http_modelreg_geti_start(ngx_http_modelreg_geti_call_t *call)
{
    if (ngx_http_modelreg_geti_next.handler == NULL) {
        ngx_queue_init(&ngx_http_modelreg_geti_waiting);

        ngx_http_modelreg_geti_next.handler = ngx_http_modelreg_geti_dispatch;
        ngx_http_modelreg_geti_next.data = &ngx_http_modelreg_geti_next;
        ngx_http_modelreg_geti_next.log = ngx_cycle->log;
    }

    if (ngx_http_modelreg_geti_active < NGX_HTTP_MODELREG_GETI_CONCURRENCY
        && ngx_queue_empty(&ngx_http_modelreg_geti_waiting))
    {
        return ngx_http_modelreg_geti_launch(call, 0);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->timer.log, 0,
                   "modelreg geti: call %V waits, %ui running",
                   &call->path, ngx_http_modelreg_geti_active);

    ngx_queue_insert_tail(&ngx_http_modelreg_geti_waiting, &call->queue);
    call->waiting = 1;
    call->queued = ngx_current_msec;

    /* its timeout runs while it waits */

    call->timer.handler = ngx_http_modelreg_geti_waited;
    ngx_add_timer(&call->timer, call->timeout);

    return NGX_OK;
}


/* one attempt: a libcurl transfer, holding one of the slots */

static ngx_int_t
ngx_http_modelreg_geti_launch(ngx_http_modelreg_geti_call_t *call,
    ngx_msec_t waited)
{
    ngx_str_t                  ct = ngx_string("application/json");
    ngx_http_modelreg_curl_t  *cu;

    cu = ngx_http_modelreg_geti_transfer(call,
                                         waited < call->timeout
                                         ? call->timeout - waited : 1);
    if (cu == NULL) {
        return NGX_ERROR;
    }

    if (call->post.data) {
        curl_easy_setopt(cu->easy, CURLOPT_POSTFIELDSIZE,
                         (long) call->post.len);
        curl_easy_setopt(cu->easy, CURLOPT_POSTFIELDS, call->post.data);
        cu->method = "POST";

        if (ngx_http_modelreg_curl_header(cu, "Content-Type", &ct) != NGX_OK)
        {
            ngx_http_modelreg_curl_free(cu);
            return NGX_ERROR;
        }
    }

    cu->sink = call->sink;

    if (ngx_http_modelreg_curl_start(cu) != NGX_OK) {
        ngx_http_modelreg_curl_free(cu);
        return NGX_ERROR;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->timer.log, 0,
                   "modelreg geti: call %V started, %ui running",
                   &call->path, ngx_http_modelreg_geti_active + 1);

    call->active = 1;
    ngx_http_modelreg_geti_active++;

    return NGX_OK;
}


/* a slot is free: the first waiting call gets it, on the next turn */

static void
ngx_http_modelreg_geti_release(ngx_http_modelreg_geti_call_t *call)
{
    if (!call->active) {
        return;
    }

    call->active = 0;
    ngx_http_modelreg_geti_active--;

    /* (posted: a request's clean-up must not start other requests' work) */

    if (!ngx_queue_empty(&ngx_http_modelreg_geti_waiting)) {
        ngx_post_event(&ngx_http_modelreg_geti_next, &ngx_posted_events);
    }
}


static void
ngx_http_modelreg_geti_dispatch(ngx_event_t *ev)
{
    ngx_queue_t                    *q;
    ngx_http_request_t             *r;
    ngx_http_modelreg_geti_call_t  *call;
    ngx_http_modelreg_geti_list_t  *l;

    while (ngx_http_modelreg_geti_active < NGX_HTTP_MODELREG_GETI_CONCURRENCY
           && !ngx_queue_empty(&ngx_http_modelreg_geti_waiting))
    {
        q = ngx_queue_head(&ngx_http_modelreg_geti_waiting);
        call = ngx_queue_data(q, ngx_http_modelreg_geti_call_t, queue);

        ngx_queue_remove(q);
        call->waiting = 0;

        if (call->timer.timer_set) {
            ngx_del_timer(&call->timer);
        }

        l = call->list;
        r = ngx_http_modelreg_geti_hold(l);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->timer.log, 0,
                       "modelreg geti: call %V has its turn after %M ms",
                       &call->path, ngx_current_msec - call->queued);

        if (l->failed || l->not_found) {

            /* the request's answer is known already: no need to ask */

            ngx_http_modelreg_geti_drop(call);

        } else if (ngx_http_modelreg_geti_launch(call,
                                                 ngx_current_msec
                                                 - call->queued)
                   != NGX_OK)
        {
            l->failed = 1;
            ngx_http_modelreg_geti_drop(call);
        }

        ngx_http_modelreg_finish(r, NGX_DONE);
    }
}


/* a call waited its whole timeout for a slot */

static void
ngx_http_modelreg_geti_waited(ngx_event_t *ev)
{
    ngx_http_modelreg_geti_call_t *call = ev->data;

    ngx_http_request_t  *r;

    r = ngx_http_modelreg_geti_hold(call->list);

    ngx_queue_remove(&call->queue);
    call->waiting = 0;

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "modelreg: Geti call %V timed out waiting for its turn "
                  "(%d calls at once)", &call->path,
                  NGX_HTTP_MODELREG_GETI_CONCURRENCY);

    call->list->failed = 1;
    ngx_http_modelreg_geti_drop(call);

    ngx_http_modelreg_finish(r, NGX_DONE);
}


/* a call that will not be made counts as done */

static void
ngx_http_modelreg_geti_drop(ngx_http_modelreg_geti_call_t *call)
{
    ngx_http_modelreg_geti_list_t  *l;

    l = call->list;
    l->pending--;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->timer.log, 0,
                   "modelreg geti: call %V dropped, %ui pending",
                   &call->path, l->pending);

    if (l->pending == 0) {
        l->finish(l);
    }
}


/* the request goes: so do its calls, waiting or running */

static void
ngx_http_modelreg_geti_call_cleanup(void *data)
{
    ngx_http_modelreg_geti_call_t *call = data;

    if (call->waiting) {
        ngx_queue_remove(&call->queue);
        call->waiting = 0;
    }

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    /* (its transfer, if any, is freed by its own clean-up) */

    ngx_http_modelreg_geti_release(call);
}


static ngx_http_modelreg_curl_t *
ngx_http_modelreg_geti_transfer(ngx_http_modelreg_geti_call_t *call,
    ngx_msec_t timeout)
{
    u_char                         *url;
    ngx_pool_t                     *pool;
    ngx_http_request_t             *r;
    ngx_http_modelreg_curl_t       *cu;
    ngx_http_modelreg_geti_conf_t  *g;
    ngx_http_modelreg_main_conf_t  *mcf;

    r = call->list->request;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    g = mcf->geti;
    pool = call->list->pool ? call->list->pool : r->pool;

    url = ngx_pnalloc(pool, g->base.len + call->path.len + 1);
    if (url == NULL) {
        return NULL;
    }

    cu = ngx_http_modelreg_curl_create(pool, r->connection->log,
                                       NGX_HTTP_MODELREG_GETI_BODY_MAX);
    if (cu == NULL) {
        return NULL;
    }

    cu->whole = 1;

    if (ngx_http_modelreg_curl_header(cu, "x-api-key", &g->token) != NGX_OK) {
        ngx_http_modelreg_curl_free(cu);
        return NULL;
    }

    ngx_sprintf(url, "%V%V%Z", &g->base, &call->path);

    curl_easy_setopt(cu->easy, CURLOPT_URL, (char *) url);
    curl_easy_setopt(cu->easy, CURLOPT_TIMEOUT_MS, (long) timeout);
    curl_easy_setopt(cu->easy, CURLOPT_SSL_VERIFYPEER, g->verify ? 1L : 0L);
    curl_easy_setopt(cu->easy, CURLOPT_SSL_VERIFYHOST, g->verify ? 2L : 0L);

    if (g->ca_file.len) {
        curl_easy_setopt(cu->easy, CURLOPT_CAINFO, g->ca_file.data);
    }

    cu->done = ngx_http_modelreg_geti_got;
    cu->data = call;

    return cu;
}


ngx_int_t
ngx_http_modelreg_geti_get(ngx_http_modelreg_geti_list_t *l, ngx_str_t *path,
    ngx_http_modelreg_geti_pt handler, void *arg)
{
    ngx_http_modelreg_geti_call_t  *call;

    call = ngx_http_modelreg_geti_call(l, path, handler, arg);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->get = 1;

    if (ngx_http_modelreg_geti_start(call) != NGX_OK) {
        return NGX_ERROR;
    }

    l->pending++;

    return NGX_OK;
}


/*
 * A GET that met a connection error or a 5xx goes again, at most twice,
 * after 200 and 400 ms (a timer: the worker does not wait), waiting for
 * its turn again; the call stays pending meanwhile.
 */

static ngx_int_t
ngx_http_modelreg_geti_retry(ngx_http_modelreg_geti_call_t *call,
    ngx_http_modelreg_curl_t *cu)
{
    ngx_msec_t  delay;

    if (!call->get || call->tries >= NGX_HTTP_MODELREG_GETI_RETRIES
        || !(cu->result != CURLE_OK || cu->status >= 500))
    {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_WARN, cu->log, 0,
                  "modelreg: Geti GET %V failed (%s, %l), retrying",
                  &call->path, curl_easy_strerror(cu->result), cu->status);

    delay = NGX_HTTP_MODELREG_GETI_RETRY_DELAY << call->tries;
    call->tries++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cu->log, 0,
                   "modelreg geti: GET %V again in %M ms", &call->path,
                   delay);

    call->timer.handler = ngx_http_modelreg_geti_retry_handler;
    ngx_add_timer(&call->timer, delay);

    return NGX_OK;
}


static void
ngx_http_modelreg_geti_retry_handler(ngx_event_t *ev)
{
    ngx_http_modelreg_geti_call_t *call = ev->data;

    ngx_http_request_t             *r;
    ngx_http_modelreg_geti_list_t  *l;

    l = call->list;
    r = ngx_http_modelreg_geti_hold(l);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "modelreg geti: GET %V, try %ui", &call->path,
                   call->tries + 1);

    if (ngx_http_modelreg_geti_start(call) != NGX_OK) {
        l->failed = 1;
        ngx_http_modelreg_geti_drop(call);
    }

    ngx_http_modelreg_finish(r, NGX_DONE);
}


ngx_int_t
ngx_http_modelreg_geti_post(ngx_http_modelreg_geti_list_t *l, ngx_str_t *path,
    json_t *body, ngx_http_modelreg_geti_pt handler, void *arg)
{
    char                           *text;
    ngx_http_modelreg_geti_call_t  *call;

    call = ngx_http_modelreg_geti_call(l, path, handler, arg);
    if (call == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(body, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    call->post.len = ngx_strlen(text);
    call->post.data = ngx_pnalloc(l->pool ? l->pool : l->request->pool,
                                  call->post.len + 1);

    if (call->post.data) {
        ngx_memcpy(call->post.data, text, call->post.len + 1);
    }

    free(text);

    if (call->post.data == NULL
        || ngx_http_modelreg_geti_start(call) != NGX_OK)
    {
        return NGX_ERROR;
    }

    l->pending++;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_geti_download(ngx_http_modelreg_geti_list_t *l,
    ngx_str_t *path, ngx_http_modelreg_curl_sink_pt sink,
    ngx_http_modelreg_geti_pt handler, void *arg)
{
    ngx_http_modelreg_geti_call_t  *call;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(l->request, ngx_http_modelreg_module);

    call = ngx_http_modelreg_geti_call(l, path, handler, arg);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->sink = sink;

    /* the whole export, however large: bounded by the export deadline */

    call->timeout = mcf->geti->export_timeout;

    if (ngx_http_modelreg_geti_start(call) != NGX_OK) {
        return NGX_ERROR;
    }

    l->pending++;

    return NGX_OK;
}


/* a sink's way back to what the call was made for */

void *
ngx_http_modelreg_geti_arg(ngx_http_modelreg_curl_t *cu)
{
    return ((ngx_http_modelreg_geti_call_t *) cu->data)->arg;
}


static void
ngx_http_modelreg_geti_got(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_geti_call_t *call = cu->data;

    json_t                         *json;
    const char                     *method;
    json_error_t                    err;
    ngx_http_request_t             *r;
    ngx_http_modelreg_geti_list_t  *l;

    l = call->list;
    method = call->post.data ? "POST" : "GET";

    r = ngx_http_modelreg_geti_hold(l);

    ngx_http_modelreg_geti_release(call);

    if (!cu->too_large && ngx_http_modelreg_geti_retry(call, cu) == NGX_OK) {
        ngx_http_modelreg_curl_free(cu);
        ngx_http_modelreg_finish(r, NGX_DONE);
        return;
    }

    l->pending--;
    json = NULL;

    if (cu->too_large) {
        ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                      "modelreg: Geti answered %s %V with more than %uz "
                      "bytes", method, &call->path, cu->max);
        l->failed = 1;
        l->invalid = 1;

    } else if (cu->result != CURLE_OK) {
        ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                      "modelreg: Geti unreachable: %s %V: %s", method,
                      &call->path, curl_easy_strerror(cu->result));
        l->failed = 1;
        l->down = 1;

    } else if (cu->status == 404 && l->want_404) {
        l->not_found = 1;

    } else if (cu->status == 401 || cu->status == 403) {
        ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                      "modelreg: Geti refused the token: %s %V: %l",
                      method, &call->path, cu->status);
        l->failed = 1;
        l->down = 1;

    } else if (cu->status != 200) {
        ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                      "modelreg: Geti answered %l to %s %V",
                      cu->status, method, &call->path);
        l->failed = 1;
        l->down = (cu->status >= 500);

    } else if (call->sink == NULL) {
        json = json_loadb((char *) cu->body->pos,
                          cu->body->last - cu->body->pos, 0, &err);

        if (json == NULL) {
            ngx_log_error(NGX_LOG_ERR, cu->log, 0,
                          "modelreg: Geti sent bad JSON for %s %V: %s",
                          method, &call->path, err.text);
            l->failed = 1;
            l->invalid = 1;
        }
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, cu->log, 0,
                   "modelreg geti: %s %V answered %l%s, %ui pending",
                   method, &call->path, cu->status,
                   l->invalid ? " (invalid)" : l->failed ? " (failed)" : "",
                   l->pending);

    /* the transfer is done with: its handle and buffer go now */

    ngx_http_modelreg_curl_free(cu);

    if ((json || call->sink) && !l->failed && !l->not_found) {
        l->answering = &call->path;
        l->method = method;

        call->handler(l, json, call->arg);

        l->answering = NULL;
    }

    json_decref(json);

    if (l->pending == 0) {
        l->finish(l);
    }

    /* subrequests the handlers started (an S3 upload) run now */

    ngx_http_modelreg_finish(r, NGX_DONE);
}


/*
 * An event of a list's calls holds its request while it runs: a handler
 * may answer and end the request (the last import failing at once), and
 * the list, which lives in the request's pool, is still read after it.
 * Released with ngx_http_modelreg_finish(r, NGX_DONE), which also runs
 * what the handlers posted (an S3 upload's subrequests).
 */

ngx_http_request_t *
ngx_http_modelreg_geti_hold(ngx_http_modelreg_geti_list_t *l)
{
    l->request->main->count++;

    return l->request;
}


/* the answer being handled is bad when "v" is not of a wanted type */

ngx_int_t
ngx_http_modelreg_geti_check(ngx_http_modelreg_geti_list_t *l, json_t *v,
    const char *name, ngx_uint_t want)
{
    return ngx_http_modelreg_geti_checked(l,
                                   ngx_http_modelreg_geti_mistyped(v, want),
                                   name);
}


/* "is": what the value "name" is when it is not what it must be */

ngx_int_t
ngx_http_modelreg_geti_checked(ngx_http_modelreg_geti_list_t *l,
    const char *is, const char *name)
{
    ngx_str_t  none = ngx_string("?");

    if (is == NULL) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, l->request->connection->log, 0,
                  "modelreg: Geti returned an invalid answer to %s %V: "
                  "\"%s\" is %s", l->method ? l->method : "GET",
                  l->answering ? l->answering : &none, name, is);

    l->failed = 1;
    l->invalid = 1;

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_modelreg_geti_check_project(ngx_http_modelreg_geti_list_t *l,
    json_t *p)
{
    const char  *is, *what;

    is = ngx_http_modelreg_geti_bad_project(p, &what);

    return ngx_http_modelreg_geti_checked(l, is, what);
}


ngx_int_t
ngx_http_modelreg_geti_check_groups(ngx_http_modelreg_geti_list_t *l,
    json_t *json)
{
    const char  *is, *what;

    is = ngx_http_modelreg_geti_bad_groups(json, &what);

    return ngx_http_modelreg_geti_checked(l, is, what);
}


ngx_int_t
ngx_http_modelreg_geti_check_model(ngx_http_modelreg_geti_list_t *l,
    json_t *json)
{
    const char  *is, *what;

    is = ngx_http_modelreg_geti_bad_model(json, &what);

    return ngx_http_modelreg_geti_checked(l, is, what);
}


ngx_int_t
ngx_http_modelreg_geti_invalid(ngx_http_request_t *r)
{
    return ngx_http_modelreg_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                        "Geti returned an invalid answer.");
}
