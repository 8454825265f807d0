
/*
 * Copyright (C) modelreg authors
 *
 * Worker 0's LISTEN connection for the read cache: one libpq connection
 * of its own (a pool connection runs other queries and may be closed),
 * on nginx events like the pool's, started and stopped by the module with
 * the other per-worker services.  It sends
 *
 *     LISTEN modelreg_models; SELECT <the triggers exist>
 *
 * and puts the cache on line only when both succeed; each notification
 * then names a model or an alias to drop ("*": all).  Any failure takes
 * the cache off line and retries a second later, so the cache is never
 * used while a change could go unheard.  A closed connection is seen at
 * once; a silent one (a hung server, a lost network) by the heartbeat,
 * which must answer within the database timeout.
 *
 * The heartbeat (sql/005's modelreg_cache_beat(), every quarter lease)
 * renews the node's lease, under which alias resolutions are served from
 * the cache, and acknowledges the sync tokens ("!<token>:<nonce>") that
 * writers of aliases wait for; one comes at once after a token arrives.
 * Anyone may NOTIFY: the tokens go to the database with their nonces,
 * which says which were real.  Its answer renews the lease only once the
 * notifications sent before it have been applied (README "Across nodes:
 * leases").  Each connection is a new listener of the node (the cache
 * zone's count); the newest one's heartbeats replace the older ones' rows,
 * and an older one (a reload's old worker 0) stops when told so.
 *
 * It calls down into the cache (on line, off line, invalidate, flush);
 * the cache knows nothing of it.
 */


#include "ngx_http_modelreg.h"
#include "ngx_http_modelreg_conn.h"


#define NGX_HTTP_MODELREG_LISTEN_RETRY       1000
#define NGX_HTTP_MODELREG_LISTEN_BEAT   (NGX_HTTP_MODELREG_CACHE_LEASE / 4)

/* sync tokens held for the next heartbeat; more: a fresh one instead */
#define NGX_HTTP_MODELREG_LISTEN_TOKENS      16
#define NGX_HTTP_MODELREG_LISTEN_NONCE       32

/* states, in order: from LISTENING on, the cache is on line */
#define NGX_HTTP_MODELREG_LISTEN_IDLE        0
#define NGX_HTTP_MODELREG_LISTEN_CONNECTING  1
#define NGX_HTTP_MODELREG_LISTEN_STARTING    2
#define NGX_HTTP_MODELREG_LISTEN_LISTENING   3
#define NGX_HTTP_MODELREG_LISTEN_PINGING     4


typedef struct {
    int64_t             token;
    u_char              nonce[NGX_HTTP_MODELREG_LISTEN_NONCE];
} ngx_http_modelreg_cache_token_t;


typedef struct {
    PGconn             *pg;
    ngx_connection_t   *c;
    ngx_file_uniq_t     uniq;       /* c's socket, by identity */
    ngx_event_t         timer;
    ngx_log_t          *log;
    ngx_msec_t          timeout;
    ngx_uint_t          state;
    ngx_uint_t          answers;    /* 2: LISTEN, SELECT */
    ngx_uint_t          failing;    /* logged once a spell */
    ngx_uint_t          done;       /* the query in flight was answered */
    ngx_uint_t          again;      /* a token came: beat once more */
    ngx_msec_t          sent;       /* the heartbeat's, monotonic */
    ngx_msec_t          lease;      /* this node's lease runs until */
    ngx_uint_t          fresh;      /* the heartbeat in flight is */
    ngx_uint_t          dropped;    /* a token unheld since it was sent */
    int64_t             acked;      /* the database's, of this listener */
    int64_t             answer;     /* the heartbeat's: acked, -1: stop */
    ngx_str_t           zone;       /* the node's, sql/005's "zone" */
    ngx_atomic_uint_t   number;     /* this worker's, in the zone */
    ngx_str_t           writable;   /* schemas every role may write */
    u_char              schemas[256];
    ngx_uint_t          warned;     /* of them, once a process */
    ngx_uint_t          ntokens;
    ngx_http_modelreg_cache_token_t  tokens[NGX_HTTP_MODELREG_LISTEN_TOKENS];
    const char         *keywords[3];
    const char         *values[3];
} ngx_http_modelreg_cache_listen_t;


static void ngx_http_modelreg_cache_listen_connect(void);
static void ngx_http_modelreg_cache_listen_handler(ngx_event_t *ev);
static void ngx_http_modelreg_cache_listen_timer(ngx_event_t *ev);
static void ngx_http_modelreg_cache_listen_poll(void);
static void ngx_http_modelreg_cache_listen_send(const char *sql,
    ngx_uint_t state, ngx_uint_t first, ngx_uint_t nparams,
    const char **params);
static void ngx_http_modelreg_cache_listen_read(void);
static void ngx_http_modelreg_cache_listen_notified(void);
static void ngx_http_modelreg_cache_listen_token(ngx_str_t *id);
static void ngx_http_modelreg_cache_listen_beat(void);
static ngx_int_t ngx_http_modelreg_cache_listen_beaten(void);
static ngx_int_t ngx_http_modelreg_cache_listen_results(void);
static ngx_int_t ngx_http_modelreg_cache_listen_wrap(void);
static void ngx_http_modelreg_cache_listen_fail(const char *what);
static void ngx_http_modelreg_cache_listen_close(void);
static void ngx_http_modelreg_cache_listen_stop(void);


static ngx_http_modelreg_cache_listen_t  ngx_http_modelreg_cache_listen;

/*
 * "1" when the three triggers that notify are there, on their tables and
 * enabled: models' changes and new rows (sql/009), and aliases';
 * then the schemas of the registry's search_path that every role may
 * create in: there any role can shadow an operator or a function the
 * registry calls and run its own code as the registry's role.
 */

static char  ngx_http_modelreg_cache_listen_sql[] =
    "LISTEN modelreg_models; "
    "SELECT (SELECT count(DISTINCT tgname) / 3 FROM pg_trigger"
    " WHERE (tgrelid, tgname) IN"
    " ((to_regclass('models'), 'modelreg_models_notify'),"
    " (to_regclass('models'), 'modelreg_models_notify_insert'),"
    " (to_regclass('aliases'), 'modelreg_aliases_notify'))"
    " AND tgenabled <> 'D' AND NOT tgisinternal),"
    " (SELECT string_agg(nspname, ', ') FROM pg_namespace"
    " WHERE nspname = ANY (current_schemas(false))"
    " AND has_schema_privilege('public', oid, 'CREATE'))";

static char  ngx_http_modelreg_cache_listen_beat_sql[] =
    "SELECT modelreg_cache_beat($1, $2, $3, $4, $5, $6)";


/* after ngx_http_modelreg_cache_init(): worker 0 keeps the cache usable */

ngx_int_t
ngx_http_modelreg_cache_listen_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_http_modelreg_cache_listen_t  *n;

    if (mcf->cache == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    n = &ngx_http_modelreg_cache_listen;

    ngx_memzero(n, sizeof(ngx_http_modelreg_cache_listen_t));

    /*
     * Whatever the previous listener saw, this one starts from nothing;
     * its number, once a process, outranks every earlier worker's.
     */
    n->number = ngx_http_modelreg_cache_listener(&n->zone);
    (void) ngx_http_modelreg_cache_online(0, n->number);

    n->log = cycle->log;
    n->timeout = mcf->db.timeout;

    n->keywords[0] = "dbname";
    n->values[0] = (const char *) mcf->db.conninfo.data;
    n->keywords[1] = "fallback_application_name";
    n->values[1] = "modelreg-listen";

    /* "data" is read by the event timer's debug log (no NULL there) */
    n->timer.handler = ngx_http_modelreg_cache_listen_timer;
    n->timer.data = n;
    n->timer.log = cycle->log;
    n->timer.cancelable = 1;

    ngx_http_modelreg_cache_listen_connect();

    return NGX_OK;
}


/* before ngx_http_modelreg_cache_exit(): it takes the cache off line */

void
ngx_http_modelreg_cache_listen_exit(void)
{
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    if (n->log == NULL) {
        /* never started in this worker */
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: stopped in state %ui", n->state);

    if (n->timer.timer_set) {
        ngx_del_timer(&n->timer);
    }

    if (n->state >= NGX_HTTP_MODELREG_LISTEN_LISTENING) {
        (void) ngx_http_modelreg_cache_online(0, n->number);
    }

    ngx_http_modelreg_cache_listen_close();
}


static void
ngx_http_modelreg_cache_listen_connect(void)
{
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: connecting, listener %uA of \"%V\"",
                   n->number, &n->zone);

    n->pg = PQconnectStartParams(n->keywords, n->values, 1);

    if (n->pg == NULL || PQstatus(n->pg) == CONNECTION_BAD) {
        ngx_http_modelreg_cache_listen_fail("cannot connect");
        return;
    }

    n->state = NGX_HTTP_MODELREG_LISTEN_CONNECTING;

    if (ngx_http_modelreg_cache_listen_wrap() != NGX_OK
        || ngx_http_modelreg_conn_want(n->c, 0, 1) != NGX_OK)
    {
        ngx_http_modelreg_cache_listen_fail("cannot watch its socket");
        return;
    }

    ngx_add_timer(&n->timer, n->timeout);
}


static ngx_int_t
ngx_http_modelreg_cache_listen_wrap(void)
{
    int                               fd;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    fd = PQsocket(n->pg);
    if (fd == -1) {
        return NGX_ERROR;
    }

    n->c = ngx_http_modelreg_conn_wrap(fd, n->log,
                                       ngx_http_modelreg_cache_listen_handler,
                                       n);
    n->uniq = ngx_http_modelreg_conn_uniq(fd);

    return n->c ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_modelreg_cache_listen_handler(ngx_event_t *ev)
{
    int                               rc;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    if (n->state == NGX_HTTP_MODELREG_LISTEN_CONNECTING) {
        ngx_http_modelreg_cache_listen_poll();
        return;
    }

    if (ev->write) {
        rc = PQflush(n->pg);

        if (rc == -1) {
            ngx_http_modelreg_cache_listen_fail("cannot send LISTEN");
            return;
        }

        if (ngx_http_modelreg_conn_want(n->c, 1, rc == 1) != NGX_OK) {
            ngx_http_modelreg_cache_listen_fail("cannot watch its socket");
        }

        return;
    }

    ngx_http_modelreg_cache_listen_read();
}


static void
ngx_http_modelreg_cache_listen_poll(void)
{
    PostgresPollingStatusType         rc;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    rc = PQconnectPoll(n->pg);

    /*
     * libpq may have moved to another socket (the next host or address),
     * or closed it on failure: either way it closed the old one itself,
     * which took it out of epoll; the new one may have its number
     */

    if (PQsocket(n->pg) != n->c->fd
        || ngx_http_modelreg_conn_uniq(n->c->fd) != n->uniq)
    {
        ngx_http_modelreg_conn_forget(n->c, 1);
        n->c = NULL;

        if (rc != PGRES_POLLING_FAILED
            && ngx_http_modelreg_cache_listen_wrap() != NGX_OK)
        {
            ngx_http_modelreg_cache_listen_fail("cannot watch its socket");
            return;
        }
    }

    switch (rc) {

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (ngx_http_modelreg_conn_want(n->c, rc == PGRES_POLLING_READING,
                                        rc == PGRES_POLLING_WRITING)
            != NGX_OK)
        {
            ngx_http_modelreg_cache_listen_fail("cannot watch its socket");
        }

        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_http_modelreg_cache_listen_fail("cannot connect");
        return;
    }

    if (n->timer.timer_set) {
        ngx_del_timer(&n->timer);
    }

    if (PQsetnonblocking(n->pg, 1) != 0) {
        ngx_http_modelreg_cache_listen_fail("cannot send LISTEN");
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: connected");

    ngx_http_modelreg_cache_listen_send(ngx_http_modelreg_cache_listen_sql,
                                        NGX_HTTP_MODELREG_LISTEN_STARTING, 0,
                                        0, NULL);
}


/*
 * A query whose "2 - first" answers must come within the timeout; with
 * "params", one statement of the extended protocol.
 */

static void
ngx_http_modelreg_cache_listen_send(const char *sql, ngx_uint_t state,
    ngx_uint_t first, ngx_uint_t nparams, const char **params)
{
    int                               rc;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    rc = params ? PQsendQueryParams(n->pg, sql, nparams, NULL, params, NULL,
                                    NULL, 0)
                : PQsendQuery(n->pg, sql);

    if (!rc) {
        ngx_http_modelreg_cache_listen_fail("cannot send its query");
        return;
    }

    n->state = state;
    n->answers = first;

    rc = PQflush(n->pg);

    if (rc == -1 || ngx_http_modelreg_conn_want(n->c, 1, rc == 1) != NGX_OK) {
        ngx_http_modelreg_cache_listen_fail("cannot send its query");
        return;
    }

    if (n->timer.timer_set) {
        ngx_del_timer(&n->timer);
    }

    ngx_add_timer(&n->timer, n->timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: sent \"%s\" (state %ui)", sql, state);
}


/*
 * The notifications that came before an answer are applied before the
 * answer counts: a heartbeat renews the lease only once every change
 * announced ahead of it has been dropped.
 */

static void
ngx_http_modelreg_cache_listen_read(void)
{
    ngx_uint_t                        state;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    if (!PQconsumeInput(n->pg)) {
        ngx_http_modelreg_cache_listen_fail("lost its connection");
        return;
    }

    ngx_http_modelreg_cache_listen_notified();

    state = n->state;

    if (state != NGX_HTTP_MODELREG_LISTEN_LISTENING) {
        if (ngx_http_modelreg_cache_listen_results() != NGX_OK) {
            return;
        }

        ngx_http_modelreg_cache_listen_notified();
    }

    if (n->done) {
        n->done = 0;

        if (state == NGX_HTTP_MODELREG_LISTEN_PINGING) {
            if (ngx_http_modelreg_cache_listen_beaten() != NGX_OK) {
                ngx_http_modelreg_cache_listen_stop();
                return;
            }

            if (!n->again) {
                ngx_add_timer(&n->timer, NGX_HTTP_MODELREG_LISTEN_BEAT);
                return;
            }
        }

        /* on line (the first heartbeat), or a token came meanwhile */
        ngx_http_modelreg_cache_listen_beat();
        return;
    }

    if (n->again && n->state == NGX_HTTP_MODELREG_LISTEN_LISTENING) {
        ngx_http_modelreg_cache_listen_beat();
    }
}


static void
ngx_http_modelreg_cache_listen_notified(void)
{
    ngx_str_t                         id;
    PGnotify                         *pn;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    while ((pn = PQnotifies(n->pg)) != NULL) {
        id.data = (u_char *) pn->extra;
        id.len = ngx_strlen(pn->extra);

        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, n->log, 0,
                       "modelreg listen: notified \"%V\"", &id);

        if (id.len == 1 && id.data[0] == '*') {
            ngx_http_modelreg_cache_flush();

        } else if (id.len == 1 && id.data[0] == '+') {
            /* models came (sql/009): lists only */
            ngx_http_modelreg_cache_lists_end();

        } else if (id.len > 1 && id.data[0] == '!') {
            /* a writer's sync token: all before it is applied */
            ngx_http_modelreg_cache_listen_token(&id);

        } else {
            ngx_http_modelreg_cache_invalidate(&id);
        }

        PQfreemem(pn);
    }
}


/*
 * "!<token>:<nonce>": kept for the next heartbeat, which asks the database
 * whether it was real (anyone may NOTIFY).  Past the tokens it can hold
 * the listener gives up its lease, and its next heartbeat is fresh: the
 * database then counts it as having seen every token taken.
 */

static void
ngx_http_modelreg_cache_listen_token(ngx_str_t *id)
{
    off_t                             t;
    u_char                           *colon, *p;
    ngx_http_modelreg_cache_token_t  *tk;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    colon = ngx_strlchr(id->data + 1, id->data + id->len, ':');

    if (colon == NULL
        || id->data + id->len - (colon + 1) != NGX_HTTP_MODELREG_LISTEN_NONCE
        || colon - (id->data + 1) > (ssize_t) NGX_INT64_LEN - 2)
    {
        return;
    }

    t = ngx_atoof(id->data + 1, colon - (id->data + 1));

    if (t == NGX_ERROR || (int64_t) t <= n->acked) {
        return;
    }

    for (p = colon + 1; p < id->data + id->len; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return;
        }
    }

    n->again = 1;

    if (n->ntokens == NGX_HTTP_MODELREG_LISTEN_TOKENS) {
        if (n->lease) {
            ngx_log_error(NGX_LOG_INFO, n->log, 0,
                          "modelreg: more sync tokens than a heartbeat "
                          "takes: the cache's lease starts anew");
            n->lease = 0;
            (void) ngx_http_modelreg_cache_lease(0, 0, n->number);
        }

        /* not even a fresh heartbeat in flight may grant a lease now */
        n->dropped = 1;

        return;
    }

    tk = &n->tokens[n->ntokens++];
    tk->token = t;
    ngx_memcpy(tk->nonce, colon + 1, NGX_HTTP_MODELREG_LISTEN_NONCE);
}


/*
 * A heartbeat, when none is in flight: "fresh" when this node holds no
 * lease (sql/005 then acks every token taken: the lease that it earns
 * starts a new generation, see cache_lease()), else with the tokens read
 * since the last one.
 */

static void
ngx_http_modelreg_cache_listen_beat(void)
{
    u_char                            *p, *t, *c;
    ngx_uint_t                         i;
    const char                        *params[6];
    ngx_http_modelreg_cache_listen_t  *n;

    static u_char  zone[NGX_HTTP_MODELREG_CACHE_ZONE_ID + 1];
    static u_char  number[NGX_ATOMIC_T_LEN + 1];
    static u_char  tokens[NGX_HTTP_MODELREG_LISTEN_TOKENS
                          * (NGX_INT64_LEN + 1) + 3];
    static u_char  nonces[NGX_HTTP_MODELREG_LISTEN_TOKENS
                          * (NGX_HTTP_MODELREG_LISTEN_NONCE + 1) + 3];
    static u_char  lease[NGX_INT_T_LEN + 1];

    n = &ngx_http_modelreg_cache_listen;

    if (n->state != NGX_HTTP_MODELREG_LISTEN_LISTENING) {
        return;
    }

    n->sent = ngx_http_modelreg_cache_clock();
    n->fresh = (n->sent >= n->lease);

    p = ngx_cpymem(zone, n->zone.data, n->zone.len);
    *p = '\0';
    p = ngx_sprintf(number, "%uA", n->number);
    *p = '\0';

    /* two arrays, "{1,2}" and "{ab..,cd..}": digits and hex, no quoting */

    t = ngx_cpymem(tokens, "{", 1);
    c = ngx_cpymem(nonces, "{", 1);

    for (i = 0; !n->fresh && i < n->ntokens; i++) {
        t = ngx_sprintf(t, i ? ",%L" : "%L", n->tokens[i].token);
        c = ngx_sprintf(c, i ? ",%*s" : "%*s",
                        (size_t) NGX_HTTP_MODELREG_LISTEN_NONCE,
                        n->tokens[i].nonce);
    }

    n->ntokens = 0;
    n->dropped = 0;

    *t++ = '}'; *t = '\0';
    *c++ = '}'; *c = '\0';

    p = ngx_sprintf(lease, "%ui",
                    (ngx_uint_t) NGX_HTTP_MODELREG_CACHE_LEASE);
    *p = '\0';

    params[0] = (const char *) zone;
    params[1] = (const char *) number;
    params[2] = (const char *) tokens;
    params[3] = (const char *) nonces;
    params[4] = (const char *) lease;
    params[5] = n->fresh ? "t" : "f";

    n->again = 0;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: heartbeat, acked %L, tokens %s, "
                   "fresh %s", n->acked, tokens, params[5]);

    ngx_http_modelreg_cache_listen_send(
        ngx_http_modelreg_cache_listen_beat_sql,
        NGX_HTTP_MODELREG_LISTEN_PINGING, 1, 6, params);
}


/*
 * Answered, and all notified before it applied: the lease runs from its
 * sending (the database counts from later, its now()), less a tenth for
 * the clocks' drift.  NGX_DECLINED: a newer listener speaks for the node.
 */

static ngx_int_t
ngx_http_modelreg_cache_listen_beaten(void)
{
    ngx_msec_t                        lease;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    if (n->answer < 0) {
        return NGX_DECLINED;
    }

    n->acked = n->answer;

    lease = n->sent + NGX_HTTP_MODELREG_CACHE_LEASE
            - NGX_HTTP_MODELREG_CACHE_LEASE / 10;

    /*
     * Tokens beyond the list gave up the lease while this was away, or
     * were dropped while a fresh one was (taken after it ran, perhaps):
     * no lease until the next, fresh, heartbeat.
     */
    if (n->dropped || (n->lease == 0 && !n->fresh)) {
        return NGX_OK;
    }

    n->lease = lease;

    if (ngx_http_modelreg_cache_lease(n->lease, n->fresh, n->number)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: heartbeat answered, lease for %M ms",
                   n->lease - ngx_http_modelreg_cache_clock());

    return NGX_OK;
}


/*
 * The answers to LISTEN and to the trigger check, as they come; a
 * heartbeat's is one row: the ack recorded, or -1.
 */

static ngx_int_t
ngx_http_modelreg_cache_listen_results(void)
{
    char                             *v;
    PGresult                         *res;
    ngx_uint_t                        ok, level;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    while (!PQisBusy(n->pg)) {
        res = PQgetResult(n->pg);

        if (res == NULL) {
            break;
        }

        if (n->state == NGX_HTTP_MODELREG_LISTEN_PINGING) {
            ok = PQresultStatus(res) == PGRES_TUPLES_OK
                 && PQntuples(res) == 1;

            if (ok) {
                v = PQgetvalue(res, 0, 0);

                if (ngx_strcmp(v, "-1") == 0) {
                    n->answer = -1;

                } else {
                    n->answer = ngx_atoof((u_char *) v, ngx_strlen(v));
                    ok = (n->answer != NGX_ERROR);
                }
            }

        } else {
            ok = (n->answers == 0)
                 ? PQresultStatus(res) == PGRES_COMMAND_OK
                 : PQresultStatus(res) == PGRES_TUPLES_OK
                   && PQntuples(res) == 1 && PQnfields(res) == 2
                   && ngx_strcmp(PQgetvalue(res, 0, 0), "1") == 0;

            if (ok && n->answers == 1) {
                /* (names to log, cut to the buffer's size) */
                n->writable.len = ngx_min((size_t) PQgetlength(res, 0, 1),
                                          sizeof(n->schemas));
                n->writable.data = n->schemas;
                ngx_memcpy(n->schemas, PQgetvalue(res, 0, 1),
                           n->writable.len);
            }
        }

        if (!ok && PQresultStatus(res) == PGRES_TUPLES_OK
            && n->state != NGX_HTTP_MODELREG_LISTEN_PINGING)
        {
            PQclear(res);
            ngx_http_modelreg_cache_listen_fail(
                "found no modelreg_models_notify, "
                "modelreg_models_notify_insert or modelreg_aliases_notify "
                "trigger (apply sql/ migrations)");
            return NGX_ERROR;
        }

        PQclear(res);

        if (!ok) {
            ngx_http_modelreg_cache_listen_fail(
                n->state == NGX_HTTP_MODELREG_LISTEN_PINGING
                ? "failed its heartbeat" : "cannot LISTEN");
            return NGX_ERROR;
        }

        n->answers++;
    }

    if (PQisBusy(n->pg) || n->answers != 2) {
        return NGX_OK;
    }

    if (n->timer.timer_set) {
        ngx_del_timer(&n->timer);
    }

    n->done = 1;

    if (n->state == NGX_HTTP_MODELREG_LISTEN_PINGING) {
        n->state = NGX_HTTP_MODELREG_LISTEN_LISTENING;
        return NGX_OK;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: listening");

    if (n->writable.len && !n->warned) {
        n->warned = 1;
        ngx_log_error(NGX_LOG_WARN, n->log, 0,
                      "modelreg: every role may create objects in the "
                      "schema(s) \"%V\" of the registry's search_path, and "
                      "so run its code as the registry's role: REVOKE "
                      "CREATE ON SCHEMA ... FROM PUBLIC", &n->writable);
    }

    n->state = NGX_HTTP_MODELREG_LISTEN_LISTENING;

    if (ngx_http_modelreg_cache_online(1, n->number) != NGX_OK) {
        ngx_http_modelreg_cache_listen_stop();
        return NGX_ERROR;
    }

    level = n->failing ? NGX_LOG_NOTICE : NGX_LOG_INFO;

    ngx_log_error(level, n->log, 0, "modelreg: the model cache is on line");

    n->failing = 0;

    return NGX_OK;
}


static void
ngx_http_modelreg_cache_listen_timer(ngx_event_t *ev)
{
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    if (n->state == NGX_HTTP_MODELREG_LISTEN_IDLE) {
        ngx_log_debug0(NGX_LOG_DEBUG_EVENT, n->log, 0,
                       "modelreg listen: back-off over");

        if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
            ngx_http_modelreg_cache_listen_connect();
        }

        return;
    }

    if (n->state != NGX_HTTP_MODELREG_LISTEN_LISTENING) {
        ngx_http_modelreg_cache_listen_fail("timed out");
        return;
    }

    /* a heartbeat: checked like the trigger query's answer, "1" */

    ngx_http_modelreg_cache_listen_beat();
}


/* off line until a later connection listens again */

static void
ngx_http_modelreg_cache_listen_fail(const char *what)
{
    char                             *msg;
    size_t                            len;
    ngx_uint_t                        level;
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    msg = n->pg ? PQerrorMessage(n->pg) : "";
    len = ngx_strlen(msg);

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        len--;
    }

    level = n->failing ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, n->log, 0,
                  "modelreg: the model cache is off line: its listener "
                  "%s%s%*s", what, len ? ": " : "", len, msg);

    n->failing = 1;

    (void) ngx_http_modelreg_cache_online(0, n->number);
    ngx_http_modelreg_cache_listen_close();

    if (n->timer.timer_set) {
        ngx_del_timer(&n->timer);
    }

    ngx_add_timer(&n->timer, NGX_HTTP_MODELREG_LISTEN_RETRY);

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, n->log, 0,
                   "modelreg listen: retry in %M ms",
                   (ngx_msec_t) NGX_HTTP_MODELREG_LISTEN_RETRY);
}


static void
ngx_http_modelreg_cache_listen_close(void)
{
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    if (n->c) {
        ngx_http_modelreg_conn_forget(n->c, 1);
        n->c = NULL;
    }

    if (n->pg) {
        PQfinish(n->pg);
        n->pg = NULL;
    }

    /* the next connection is a new listener: its first heartbeat fresh */
    n->lease = 0;
    n->acked = 0;
    n->ntokens = 0;
    n->dropped = 0;
    n->again = 0;
    n->state = NGX_HTTP_MODELREG_LISTEN_IDLE;
}


/*
 * A newer listener speaks for the node (this is a reload's old worker 0):
 * the cache is its, this one goes, and does not come back.
 */

static void
ngx_http_modelreg_cache_listen_stop(void)
{
    ngx_http_modelreg_cache_listen_t  *n;

    n = &ngx_http_modelreg_cache_listen;

    ngx_log_error(NGX_LOG_INFO, n->log, 0,
                  "modelreg: a newer listener keeps the model cache: this "
                  "one stops");

    if (n->timer.timer_set) {
        ngx_del_timer(&n->timer);
    }

    ngx_http_modelreg_cache_listen_close();
}
