
/*
 * Copyright (C) modelreg authors
 *
 * Webhooks: modelreg_webhook, and their delivery (README "Webhooks").
 *
 * What to deliver is in PostgreSQL, never in a worker: sql/007's trigger
 * writes a row per audit event and hook in the event's own INSERT, so a
 * delivery exists exactly when its change committed.  Worker 0 of each
 * node runs, per hook, rounds from a timer: take or renew the hook's
 * lease (one deliverer in the cluster at a time, as the Geti sync's),
 * fetch at most ROWS due deliveries, each the oldest pending of its model
 * (a model's later event waits while an earlier one is pending; other
 * models do not), POST them through libcurl on nginx's events, at most
 * INFLIGHT at once, each bounded by timeout=, and record the outcomes in
 * one statement.  A row is marked delivered only after a 2xx, so a crash,
 * a reload or a lost database between the POST and the record sends it
 * again: at least once.  Failed attempts come back after 1 s doubling up
 * to an hour; a delivery still pending after the window (24 h) is failed.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_curl.h"
#include "ngx_http_modelreg_events_args.h"
#include <openssl/hmac.h>


#define NGX_HTTP_MODELREG_WEBHOOK_IDLE      1000   /* ms: nothing was due */
#define NGX_HTTP_MODELREG_WEBHOOK_ROWS      32     /* fetched per round */
#define NGX_HTTP_MODELREG_WEBHOOK_INFLIGHT  8      /* POSTs at once */
#define NGX_HTTP_MODELREG_WEBHOOK_ANSWER    1024   /* bytes of it kept */
#define NGX_HTTP_MODELREG_WEBHOOK_TIMEOUT   10000  /* timeout= default */
#define NGX_HTTP_MODELREG_WEBHOOK_WINDOW    86400  /* s of retries */
#define NGX_HTTP_MODELREG_WEBHOOK_KEY_MIN   16
#define NGX_HTTP_MODELREG_WEBHOOK_NAME_MAX  128
#define NGX_HTTP_MODELREG_WEBHOOK_ERROR_MAX 120
#define NGX_HTTP_MODELREG_WEBHOOK_POOL      16384


typedef struct ngx_http_modelreg_webhook_round_s
    ngx_http_modelreg_webhook_round_t;


struct ngx_http_modelreg_webhook_s {
    ngx_str_t                           name;
    ngx_str_t                           url;       /* NUL-terminated */
    ngx_str_t                           key;
    ngx_str_t                           actions;   /* as written: a,b */
    ngx_str_t                           array;     /* SQL: {a,b} */
    ngx_msec_t                          timeout;
    ngx_http_modelreg_main_conf_t      *mcf;

    /* worker 0's */
    ngx_event_t                         timer;
    ngx_http_modelreg_webhook_round_t  *round;
};


typedef struct {
    ngx_http_modelreg_webhook_round_t  *round;
    ngx_str_t                           id;        /* the delivery's */
    ngx_str_t                           action;
    ngx_str_t                           body;
    ngx_str_t                           error;     /* no data: delivered */
} ngx_http_modelreg_webhook_post_t;


struct ngx_http_modelreg_webhook_round_s {
    ngx_pool_t                         *pool;
    ngx_http_modelreg_webhook_t        *hook;
    ngx_http_modelreg_webhook_post_t   *posts;
    ngx_uint_t                          n;
    ngx_uint_t                          next;      /* to start */
    ngx_uint_t                          running;
    ngx_uint_t                          delivered;
};


static char *ngx_http_modelreg_webhook_check(ngx_conf_t *cf,
    ngx_http_modelreg_webhook_t *wh, ngx_array_t *hooks);
static void ngx_http_modelreg_webhook_wipe(void *data);
static void ngx_http_modelreg_webhook_tick(ngx_event_t *ev);
static ngx_int_t ngx_http_modelreg_webhook_query(
    ngx_http_modelreg_webhook_round_t *rd, const char *sql, ngx_uint_t n,
    ngx_str_t *values, ngx_http_modelreg_pg_handler_pt handler);
static void ngx_http_modelreg_webhook_leased(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_webhook_expired(
    ngx_http_modelreg_webhook_round_t *rd, char *failed);
static void ngx_http_modelreg_webhook_fetched(
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_webhook_post(
    ngx_http_modelreg_webhook_post_t *p);
static void ngx_http_modelreg_webhook_posted(ngx_http_modelreg_curl_t *cu);
static void ngx_http_modelreg_webhook_failed(
    ngx_http_modelreg_webhook_post_t *p, const char *fmt, ...);
static void ngx_http_modelreg_webhook_record(
    ngx_http_modelreg_webhook_round_t *rd);
static void ngx_http_modelreg_webhook_recorded(
    ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_webhook_lost(
    ngx_http_modelreg_webhook_round_t *rd);
static void ngx_http_modelreg_webhook_end(
    ngx_http_modelreg_webhook_round_t *rd, ngx_msec_t delay);


/* $1 hook, $2 actions, $3 holder, $4 lease (ms), $5 window (s) */
static const char  ngx_http_modelreg_webhook_lease_sql[] =
    "SELECT held, failed::text FROM modelreg_webhook_lease($1, $2::text[],"
    " $3, $4::bigint, $5::bigint)";

/*
 * $1 hook: the due deliveries, each the first pending one of its model
 * (sql/007's seq is a model's commit order), the audit event as /audit
 * has it
 */
static const char  ngx_http_modelreg_webhook_fetch_sql[] =
    "SELECT d.id, e.action, json_build_object('id', e.id,"
    " 'time', modelreg_ts(e.time), 'action', e.action,"
    " 'model_id', e.model_id, 'actor', e.actor,"
    " 'request_id', e.request_id, 'remote_addr', e.remote_addr,"
    " 'status', e.status, 'details', e.details)::text"
    " FROM webhook_deliveries d JOIN audit_events e ON e.id = d.event_id"
    " WHERE d.hook = $1 AND d.state = 'pending' AND d.next_at <= now()"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p"
    " WHERE p.hook = d.hook AND p.model = d.model AND p.state = 'pending'"
    " AND p.seq < d.seq)"
    " ORDER BY d.event_id LIMIT "
    ngx_value(NGX_HTTP_MODELREG_WEBHOOK_ROWS);

/* $1 ids, $2 errors (NULL: delivered); back-off 2^attempts s, 1 h */
static const char  ngx_http_modelreg_webhook_record_sql[] =
    "UPDATE webhook_deliveries d SET attempts = d.attempts + 1,"
    " state = CASE WHEN r.err IS NULL THEN 'delivered' ELSE 'pending' END,"
    " done_at = CASE WHEN r.err IS NULL THEN now() END,"
    " next_at = CASE WHEN r.err IS NULL THEN d.next_at"
    " ELSE now() + least(interval '1 s' * power(2, least(d.attempts, 12)),"
    " interval '1 hour') END,"
    " last_error = r.err"
    " FROM unnest($1::uuid[], $2::text[]) r(id, err)"
    " WHERE d.id = r.id AND d.state = 'pending'";


static ngx_http_modelreg_conf_arg_t  ngx_http_modelreg_webhook_args[] = {

    { ngx_string("key_file"),
      ngx_http_modelreg_conf_set_secret_file,
      offsetof(ngx_http_modelreg_webhook_t, key),
      NULL },

    { ngx_string("actions"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_webhook_t, actions),
      NULL },

    { ngx_string("name"),
      ngx_http_modelreg_conf_set_str,
      offsetof(ngx_http_modelreg_webhook_t, name),
      NULL },

    { ngx_string("timeout"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_webhook_t, timeout),
      NULL },

      ngx_http_modelreg_null_arg
};


/* host:master pid, the lease's holder: a reloaded worker 0 takes over */
static u_char     ngx_http_modelreg_webhook_node[128];
static ngx_str_t  ngx_http_modelreg_webhook_holder;


/* modelreg_webhook URL key_file=F actions=A,B [name=N] [timeout=T] */

char *
ngx_http_modelreg_webhook_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    char                          *rv;
    ngx_str_t                     *value;
    ngx_pool_cleanup_t            *cln;
    ngx_http_modelreg_webhook_t   *wh, **whp;

    value = cf->args->elts;

    /* (pointers: a hook stays where its key's cleanup knows it) */

    if (mcf->webhooks == NULL) {
        mcf->webhooks = ngx_array_create(cf->pool, 2,
                                         sizeof(ngx_http_modelreg_webhook_t *));
        if (mcf->webhooks == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    whp = ngx_array_push(mcf->webhooks);
    wh = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_webhook_t));
    cln = ngx_pool_cleanup_add(cf->pool, 0);

    if (whp == NULL || wh == NULL || cln == NULL) {
        return NGX_CONF_ERROR;
    }

    *whp = wh;
    wh->timeout = NGX_CONF_UNSET_MSEC;
    wh->mcf = mcf;

    /* the key goes with the configuration: wiped when its pool is freed */

    cln->handler = ngx_http_modelreg_webhook_wipe;
    cln->data = &wh->key;

    if (!(value[1].len > 7 && ngx_strncmp(value[1].data, "http://", 7) == 0)
        && !(value[1].len > 8
             && ngx_strncmp(value[1].data, "https://", 8) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_webhook\" needs an http:// or "
                           "https:// URL, not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    wh->url.len = value[1].len;
    wh->url.data = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (wh->url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(wh->url.data, value[1].data, value[1].len + 1);

    rv = ngx_http_modelreg_conf_parse(cf, ngx_http_modelreg_webhook_args,
                                      &value[2], cf->args->nelts - 2, wh,
                                      " (timeout=a time > 0)");
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    ngx_conf_init_msec_value(wh->timeout,
                             NGX_HTTP_MODELREG_WEBHOOK_TIMEOUT);

    if (wh->name.len == 0) {
        wh->name = wh->url;
    }

    return ngx_http_modelreg_webhook_check(cf, wh, mcf->webhooks);
}


static char *
ngx_http_modelreg_webhook_check(ngx_conf_t *cf,
    ngx_http_modelreg_webhook_t *wh, ngx_array_t *hooks)
{
    u_char                        *p, *end, *item, *a;
    ngx_uint_t                     i;
    ngx_http_modelreg_webhook_t  **other;

    if (wh->key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_webhook\" needs key_file=");
        return NGX_CONF_ERROR;
    }

    if (wh->key.len < NGX_HTTP_MODELREG_WEBHOOK_KEY_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the key file of \"modelreg_webhook\" \"%V\" has "
                           "a key of %uz bytes: at least %d are needed",
                           &wh->name, wh->key.len,
                           NGX_HTTP_MODELREG_WEBHOOK_KEY_MIN);
        return NGX_CONF_ERROR;
    }

    if (wh->actions.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_webhook\" needs actions=, audit "
                           "actions separated by commas");
        return NGX_CONF_ERROR;
    }

    for (p = wh->name.data; p < wh->name.data + wh->name.len; p++) {
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
            break;
        }
    }

    if (p < wh->name.data + wh->name.len
        || wh->name.len > NGX_HTTP_MODELREG_WEBHOOK_NAME_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid name \"%V\" in \"modelreg_webhook\" "
                           "(printable ASCII without quotes, at most %d "
                           "bytes)", &wh->name,
                           NGX_HTTP_MODELREG_WEBHOOK_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    other = hooks->elts;

    for (i = 0; i + 1 < hooks->nelts; i++) {
        if (other[i]->name.len == wh->name.len
            && ngx_strncmp(other[i]->name.data, wh->name.data,
                           wh->name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"modelreg_webhook\" \"%V\" is duplicate "
                               "(give each hook its own name=)", &wh->name);
            return NGX_CONF_ERROR;
        }
    }

    /* each action known; the list as an SQL array literal */

    wh->array.data = ngx_pnalloc(cf->pool, wh->actions.len + 2);
    if (wh->array.data == NULL) {
        return NGX_CONF_ERROR;
    }

    a = wh->array.data;
    *a++ = '{';
    p = wh->actions.data;
    end = p + wh->actions.len;

    while (p < end) {
        item = p;

        while (p < end && *p != ',') {
            p++;
        }

        if (ngx_http_modelreg_events_action(item, p - item) == -1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown action \"%*s\" in "
                               "\"modelreg_webhook\" (known: model.create, "
                               "model.update, model.delete, model.download, "
                               "geti.import, geti.sync, alias.set, "
                               "alias.delete)", p - item, item);
            return NGX_CONF_ERROR;
        }

        if (a > wh->array.data + 1) {
            *a++ = ',';
        }

        a = ngx_cpymem(a, item, p - item);
        p++;
    }

    *a++ = '}';
    wh->array.len = a - wh->array.data;

    return NGX_CONF_OK;
}


static void
ngx_http_modelreg_webhook_wipe(void *data)
{
    ngx_str_t  *key = data;

    if (key->data) {
        ngx_explicit_memzero(key->data, key->len);
    }
}


/* worker 0 of each node delivers: a timer per hook, the first round soon */

ngx_int_t
ngx_http_modelreg_webhook_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_uint_t                     i;
    ngx_http_modelreg_webhook_t  **wh;

    if (mcf->webhooks == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    ngx_http_modelreg_webhook_holder.data = ngx_http_modelreg_webhook_node;
    ngx_http_modelreg_webhook_holder.len =
        ngx_snprintf(ngx_http_modelreg_webhook_node,
                     sizeof(ngx_http_modelreg_webhook_node), "%V:%P",
                     &cycle->hostname, getppid())
        - ngx_http_modelreg_webhook_node;

    wh = mcf->webhooks->elts;

    for (i = 0; i < mcf->webhooks->nelts; i++) {
        wh[i]->timer.handler = ngx_http_modelreg_webhook_tick;
        wh[i]->timer.data = wh[i];
        wh[i]->timer.log = cycle->log;
        wh[i]->timer.cancelable = 1;

        ngx_add_timer(&wh[i]->timer, 100 + ngx_random() % 100);
    }

    return NGX_OK;
}


void
ngx_http_modelreg_webhook_exit(ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_uint_t                     i;
    ngx_http_modelreg_webhook_t  **wh;

    if (mcf == NULL || mcf->webhooks == NULL) {
        return;
    }

    wh = mcf->webhooks->elts;

    for (i = 0; i < mcf->webhooks->nelts; i++) {
        if (wh[i]->timer.timer_set) {
            ngx_del_timer(&wh[i]->timer);
        }

        if (wh[i]->round) {
            ngx_destroy_pool(wh[i]->round->pool);
            wh[i]->round = NULL;
        }
    }
}


static void
ngx_http_modelreg_webhook_tick(ngx_event_t *ev)
{
    ngx_http_modelreg_webhook_t *wh = ev->data;

    u_char                             *p;
    ngx_str_t                           v[5];
    ngx_msec_t                          lease;
    ngx_pool_t                         *pool;
    ngx_http_modelreg_webhook_round_t  *rd;

    if (ngx_exiting || ngx_quit || wh->round) {
        return;
    }

    pool = ngx_create_pool(NGX_HTTP_MODELREG_WEBHOOK_POOL, ev->log);
    if (pool == NULL) {
        ngx_add_timer(ev, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
        return;
    }

    rd = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_webhook_round_t));
    p = ngx_pnalloc(pool, 2 * NGX_INT64_LEN);

    if (rd == NULL || p == NULL) {
        ngx_destroy_pool(pool);
        ngx_add_timer(ev, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
        return;
    }

    rd->pool = pool;
    rd->hook = wh;
    wh->round = rd;

    /*
     * The lease covers a whole round: its queries and its POSTs, at most
     * INFLIGHT at a time, each within timeout=
     */

    lease = (NGX_HTTP_MODELREG_WEBHOOK_ROWS / NGX_HTTP_MODELREG_WEBHOOK_INFLIGHT
             + 1) * wh->timeout
            + 3 * wh->mcf->db.timeout;

    v[0] = wh->name;
    v[1] = wh->array;
    v[2] = ngx_http_modelreg_webhook_holder;
    v[3].data = p;
    v[3].len = ngx_sprintf(p, "%M", lease) - p;
    v[4].data = p + NGX_INT64_LEN;
    v[4].len = ngx_sprintf(v[4].data, "%d", NGX_HTTP_MODELREG_WEBHOOK_WINDOW)
               - v[4].data;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "modelreg webhook: \"%V\": lease for %V", &wh->name,
                   &v[2]);

    if (ngx_http_modelreg_webhook_query(rd, ngx_http_modelreg_webhook_lease_sql,
                                        5, v, ngx_http_modelreg_webhook_leased)
        != NGX_OK)
    {
        ngx_http_modelreg_webhook_end(rd, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
    }
}


static ngx_int_t
ngx_http_modelreg_webhook_query(ngx_http_modelreg_webhook_round_t *rd,
    const char *sql, ngx_uint_t n, ngx_str_t *values,
    ngx_http_modelreg_pg_handler_pt handler)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_query_copy(rd->pool, sql, n, values);
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->handler = handler;
    q->data = rd;

    return ngx_http_modelreg_pg_send(rd->hook->mcf->pool, q);
}


static void
ngx_http_modelreg_webhook_leased(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_webhook_round_t *rd = q->data;

    if (q->status != NGX_HTTP_MODELREG_PG_OK || PQntuples(q->result) != 1
        || PQgetvalue(q->result, 0, 0)[0] != 't')
    {
        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                       "modelreg webhook: \"%V\": no lease, %s",
                       &rd->hook->name,
                       q->status == NGX_HTTP_MODELREG_PG_OK
                       ? "another node has it" : "no database");

        ngx_http_modelreg_webhook_end(rd, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
        return;
    }

    ngx_http_modelreg_webhook_expired(rd, PQgetvalue(q->result, 0, 1));

    if (ngx_http_modelreg_webhook_query(rd,
                                        ngx_http_modelreg_webhook_fetch_sql,
                                        1, &rd->hook->name,
                                        ngx_http_modelreg_webhook_fetched)
        != NGX_OK)
    {
        ngx_http_modelreg_webhook_end(rd, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
    }
}


/* {"hook": n}: deliveries the lease's round failed, past the window */

static void
ngx_http_modelreg_webhook_expired(ngx_http_modelreg_webhook_round_t *rd,
    char *failed)
{
    json_t        *json, *n;
    const char    *hook;
    json_error_t   err;

    json = json_loads(failed, 0, &err);
    if (json == NULL) {
        return;
    }

    json_object_foreach(json, hook, n) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "modelreg: webhook \"%s\": %O deliveries failed, not "
                      "delivered within %d s", hook,
                      (off_t) json_integer_value(n),
                      NGX_HTTP_MODELREG_WEBHOOK_WINDOW);

        ngx_http_modelreg_stats_webhook(NGX_HTTP_MODELREG_WEBHOOK_FAILED,
                                        json_integer_value(n));
    }

    json_decref(json);
}


static void
ngx_http_modelreg_webhook_fetched(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_webhook_round_t *rd = q->data;

    ngx_uint_t                         i;
    ngx_http_modelreg_webhook_post_t  *p;

    if (q->status != NGX_HTTP_MODELREG_PG_OK || PQntuples(q->result) == 0) {
        ngx_http_modelreg_webhook_end(rd, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
        return;
    }

    rd->n = PQntuples(q->result);
    rd->posts = ngx_pcalloc(rd->pool,
                            rd->n * sizeof(ngx_http_modelreg_webhook_post_t));
    if (rd->posts == NULL) {
        ngx_http_modelreg_webhook_end(rd, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                   "modelreg webhook: \"%V\": %ui due", &rd->hook->name,
                   rd->n);

    /* (the values stay in q->result, freed with the round's pool) */

    for (i = 0; i < rd->n; i++) {
        p = &rd->posts[i];
        p->round = rd;
        p->id.data = (u_char *) PQgetvalue(q->result, i, 0);
        p->id.len = PQgetlength(q->result, i, 0);
        p->action.data = (u_char *) PQgetvalue(q->result, i, 1);
        p->action.len = PQgetlength(q->result, i, 1);
        p->body.data = (u_char *) PQgetvalue(q->result, i, 2);
        p->body.len = PQgetlength(q->result, i, 2);
    }

    while (rd->next < rd->n
           && rd->running < NGX_HTTP_MODELREG_WEBHOOK_INFLIGHT)
    {
        ngx_http_modelreg_webhook_post(&rd->posts[rd->next++]);
    }

    if (rd->running == 0) {
        ngx_http_modelreg_webhook_record(rd);
    }
}


/*
 * One POST: the event's JSON, signed with the hook's key.  A POST that
 * cannot start fails like an answer that never came.
 */

static void
ngx_http_modelreg_webhook_post(ngx_http_modelreg_webhook_post_t *p)
{
    u_char                        md[EVP_MAX_MD_SIZE], *sig;
    unsigned int                  n;
    ngx_str_t                     v;
    struct curl_slist            *l;
    ngx_http_modelreg_curl_t     *cu;
    ngx_http_modelreg_webhook_t  *wh;

    wh = p->round->hook;

    cu = ngx_http_modelreg_curl_create(p->round->pool, ngx_cycle->log,
                                       NGX_HTTP_MODELREG_WEBHOOK_ANSWER);
    sig = ngx_pnalloc(p->round->pool, sizeof("sha256=") - 1
                                      + 2 * EVP_MAX_MD_SIZE);

    if (cu == NULL || sig == NULL
        || HMAC(EVP_sha256(), wh->key.data, (int) wh->key.len, p->body.data,
                p->body.len, md, &n)
           == NULL)
    {
        ngx_http_modelreg_webhook_failed(p, "cannot sign");
        return;
    }

    v.data = sig;
    v.len = ngx_hex_dump(ngx_cpymem(sig, "sha256=", sizeof("sha256=") - 1),
                         md, n)
            - sig;

    if (ngx_http_modelreg_curl_header(cu, "Content-Type",
                                      &ngx_http_modelreg_json_type) != NGX_OK
        || ngx_http_modelreg_curl_header(cu, "X-Modelreg-Event", &p->action)
           != NGX_OK
        || ngx_http_modelreg_curl_header(cu, "X-Modelreg-Delivery", &p->id)
           != NGX_OK
        || ngx_http_modelreg_curl_header(cu, "X-Modelreg-Signature", &v)
           != NGX_OK)
    {
        ngx_http_modelreg_curl_free(cu);
        ngx_http_modelreg_webhook_failed(p, "out of memory");
        return;
    }

    /* no "Expect: 100-continue": a second's wait for a 100 on big bodies */

    l = curl_slist_append(cu->headers, "Expect:");
    if (l == NULL) {
        ngx_http_modelreg_curl_free(cu);
        ngx_http_modelreg_webhook_failed(p, "out of memory");
        return;
    }

    cu->headers = l;

    curl_easy_setopt(cu->easy, CURLOPT_URL, (char *) wh->url.data);
    curl_easy_setopt(cu->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(cu->easy, CURLOPT_POSTFIELDS, (char *) p->body.data);
    curl_easy_setopt(cu->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t) p->body.len);
    curl_easy_setopt(cu->easy, CURLOPT_TIMEOUT_MS, (long) wh->timeout);
    curl_easy_setopt(cu->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) wh->timeout);

    /* an answer longer than ANSWER bytes is not read on: the call ends */

    cu->whole = 1;
    cu->method = "POST";
    cu->done = ngx_http_modelreg_webhook_posted;
    cu->data = p;

    if (ngx_http_modelreg_curl_start(cu) != NGX_OK) {
        ngx_http_modelreg_curl_free(cu);
        ngx_http_modelreg_webhook_failed(p, "cannot start the call");
        return;
    }

    p->round->running++;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                   "modelreg webhook: \"%V\": POST %V, %uz bytes",
                   &wh->name, &p->id, p->body.len);
}


static void
ngx_http_modelreg_webhook_posted(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_webhook_post_t *p = cu->data;

    ngx_http_modelreg_webhook_round_t  *rd;

    rd = p->round;
    rd->running--;

    if (cu->result != CURLE_OK
        && !(cu->result == CURLE_WRITE_ERROR && cu->too_large))
    {
        ngx_http_modelreg_webhook_failed(p, "%s",
                                         curl_easy_strerror(cu->result));

    } else if (cu->status < 200 || cu->status > 299) {
        ngx_http_modelreg_webhook_failed(p, "answered %l", cu->status);

    } else {
        rd->delivered++;
        ngx_http_modelreg_stats_webhook(NGX_HTTP_MODELREG_WEBHOOK_DELIVERED,
                                        1);

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                       "modelreg webhook: \"%V\": %V delivered",
                       &rd->hook->name, &p->id);
    }

    ngx_http_modelreg_curl_free(cu);

    while (rd->next < rd->n
           && rd->running < NGX_HTTP_MODELREG_WEBHOOK_INFLIGHT)
    {
        ngx_http_modelreg_webhook_post(&rd->posts[rd->next++]);
    }

    if (rd->running == 0 && rd->next == rd->n) {
        ngx_http_modelreg_webhook_record(rd);
    }
}


/* an attempt that failed: retried after its back-off */

static void ngx_cdecl
ngx_http_modelreg_webhook_failed(ngx_http_modelreg_webhook_post_t *p,
    const char *fmt, ...)
{
    u_char   *s, *e, *c;
    va_list   args;

    s = ngx_pnalloc(p->round->pool, NGX_HTTP_MODELREG_WEBHOOK_ERROR_MAX);
    if (s == NULL) {
        ngx_str_set(&p->error, "failed");
        return;
    }

    va_start(args, fmt);
    e = ngx_vslprintf(s, s + NGX_HTTP_MODELREG_WEBHOOK_ERROR_MAX, fmt, args);
    va_end(args);

    /* it goes into an SQL array literal, between double quotes */

    for (c = s; c < e; c++) {
        if (*c == '"' || *c == '\\' || *c < ' ') {
            *c = '\'';
        }
    }

    p->error.data = s;
    p->error.len = e - s;

    ngx_http_modelreg_stats_webhook(NGX_HTTP_MODELREG_WEBHOOK_RETRIED, 1);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "modelreg: webhook \"%V\": delivery %V failed: %V",
                  &p->round->hook->name, &p->id, &p->error);
}


/* every outcome of the round in one statement */

static void
ngx_http_modelreg_webhook_record(ngx_http_modelreg_webhook_round_t *rd)
{
    u_char                            *a, *b;
    size_t                             alen, blen;
    ngx_str_t                          v[2];
    ngx_uint_t                         i;
    ngx_http_modelreg_webhook_post_t  *p;

    alen = 2;
    blen = 2;

    for (i = 0; i < rd->n; i++) {
        alen += rd->posts[i].id.len + 1;
        blen += rd->posts[i].error.len + sizeof("\"\",") - 1 + 4;
    }

    v[0].data = ngx_pnalloc(rd->pool, alen);
    v[1].data = ngx_pnalloc(rd->pool, blen);

    if (v[0].data == NULL || v[1].data == NULL) {
        goto lost;
    }

    a = v[0].data;
    b = v[1].data;
    *a++ = '{';
    *b++ = '{';

    for (i = 0; i < rd->n; i++) {
        p = &rd->posts[i];

        if (i) {
            *a++ = ',';
            *b++ = ',';
        }

        a = ngx_cpymem(a, p->id.data, p->id.len);

        if (p->error.data == NULL) {
            b = ngx_cpymem(b, "NULL", 4);

        } else {
            b = ngx_sprintf(b, "\"%V\"", &p->error);
        }
    }

    *a++ = '}';
    *b++ = '}';
    v[0].len = a - v[0].data;
    v[1].len = b - v[1].data;

    if (ngx_http_modelreg_webhook_query(rd,
                                        ngx_http_modelreg_webhook_record_sql,
                                        2, v,
                                        ngx_http_modelreg_webhook_recorded)
        == NGX_OK)
    {
        return;
    }

lost:

    ngx_http_modelreg_webhook_lost(rd);
}


static void
ngx_http_modelreg_webhook_recorded(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_webhook_round_t *rd = q->data;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_http_modelreg_webhook_lost(rd);
        return;
    }

    /* more may be due at once: the next of the models just delivered */

    ngx_http_modelreg_webhook_end(rd, (rd->delivered
                                       || rd->n
                                          == NGX_HTTP_MODELREG_WEBHOOK_ROWS)
                                      ? 1 : NGX_HTTP_MODELREG_WEBHOOK_IDLE);
}


/* the rows stay pending: sent again, at least once */

static void
ngx_http_modelreg_webhook_lost(ngx_http_modelreg_webhook_round_t *rd)
{
    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "modelreg: webhook \"%V\": the outcome of %ui deliveries "
                  "was not recorded (database unavailable): they are sent "
                  "again", &rd->hook->name, rd->n);

    ngx_http_modelreg_webhook_end(rd, NGX_HTTP_MODELREG_WEBHOOK_IDLE);
}


static void
ngx_http_modelreg_webhook_end(ngx_http_modelreg_webhook_round_t *rd,
    ngx_msec_t delay)
{
    ngx_http_modelreg_webhook_t  *wh;

    wh = rd->hook;
    wh->round = NULL;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                   "modelreg webhook: \"%V\": round over, %ui delivered, "
                   "the next in %M ms", &wh->name, rd->delivered, delay);

    ngx_destroy_pool(rd->pool);

    if (!ngx_exiting && !ngx_quit) {
        ngx_add_timer(&wh->timer, delay);
    }
}
