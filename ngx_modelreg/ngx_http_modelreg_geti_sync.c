
/*
 * Copyright (C) modelreg authors
 *
 * The Geti sync service: worker 0 runs it from a timer (re-armed first,
 * with jitter; backing off while runs fail), and POST /geti/sync
 * (ngx_http_modelreg_geti_sync_route.c) runs it now, told through a
 * callback once the run started.  A lease row in PostgreSQL lets one
 * runner of the cluster run at a time.  A run asks the registry itself,
 * over loopback, for GET /projects (every OpenVINO model of Geti) and
 * imports what is neither registered nor tombstoned through
 * POST /projects/{id}/geti-models/download: the same checks, store,
 * spool and audit as an import asked for by a client.
 */


#include "ngx_http_modelreg_geti.h"


/* the first run, 1 to 2 s after a worker starts */
#define NGX_HTTP_MODELREG_SYNC_FIRST      1000

/* failed runs double the interval, 12 times at most, up to an hour */
#define NGX_HTTP_MODELREG_SYNC_DOUBLINGS  12
#define NGX_HTTP_MODELREG_SYNC_MAX_DELAY  3600000

/* a run's lease and its calls of the registry: its exports, and then some */
#define NGX_HTTP_MODELREG_SYNC_MARGIN     300000

/* the most of GET /projects a run reads (its error names 16 MiB) */
#define NGX_HTTP_MODELREG_SYNC_LIST_MAX   (16 * 1024 * 1024)

#define NGX_HTTP_MODELREG_SYNC_POOL       16384


typedef struct {
    ngx_pool_t                     *pool;
    ngx_log_t                      *log;
    ngx_str_t                       run_id;
    json_t                         *projects;
    json_t                         *todo;       /* {pid: [{id,group_id}]} */
    void                           *iter;
    size_t                          offset;     /* in iter's list */
    size_t                          asked;      /* by the import running */
    ngx_uint_t                      seen;
    ngx_uint_t                      imported;
    ngx_uint_t                      failed;
    const char                     *error;
    ngx_http_modelreg_main_conf_t  *mcf;

    /* a manual run answers its request once it has started */
    void                          (*started)(void *data, ngx_int_t rc);
    void                           *data;
} ngx_http_modelreg_sync_t;


static ngx_int_t ngx_http_modelreg_sync_query(ngx_http_modelreg_sync_t *s,
    const char *sql, ngx_uint_t n, ngx_str_t *values,
    ngx_http_modelreg_pg_handler_pt handler);
static void ngx_http_modelreg_sync_tick(ngx_event_t *ev);
static void ngx_http_modelreg_sync_leased(ngx_http_modelreg_pg_query_t *q);
static ngx_http_modelreg_curl_t *ngx_http_modelreg_sync_self(
    ngx_http_modelreg_sync_t *s, const char *method, ngx_str_t *path,
    ngx_http_modelreg_curl_done_pt done);
static void ngx_http_modelreg_sync_listed(ngx_http_modelreg_curl_t *cu);
static ngx_int_t ngx_http_modelreg_sync_check(ngx_http_modelreg_sync_t *s);
static void ngx_http_modelreg_sync_new(ngx_http_modelreg_pg_query_t *q);
static void ngx_http_modelreg_sync_next(ngx_http_modelreg_sync_t *s);
static void ngx_http_modelreg_sync_imported(ngx_http_modelreg_curl_t *cu);
static void ngx_http_modelreg_sync_finish(ngx_http_modelreg_sync_t *s);
static void ngx_http_modelreg_sync_done(ngx_http_modelreg_pg_query_t *q);


static const char  ngx_http_modelreg_lease_sql[] =
    "WITH l AS (UPDATE geti_sync_lease SET holder = $1,"
    " until = now() + $2::bigint * interval '1 ms',"
    " run_id = nextval('geti_sync_runs_id_seq'::regclass)"
    " WHERE id = 1 AND (holder IS NULL OR until < now() OR holder = $1)"
    " RETURNING run_id), "
    "x AS (UPDATE geti_sync_runs SET outcome = 'failed',"
    " finished = clock_timestamp(), error = 'abandoned'"
    " WHERE outcome = 'running' AND EXISTS (SELECT 1 FROM l)) "
    "INSERT INTO geti_sync_runs (id, node) SELECT run_id, $1 FROM l"
    " RETURNING id";

static const char  ngx_http_modelreg_new_sql[] =
    "SELECT c FROM unnest($1::text[]) c"
    " WHERE NOT EXISTS (SELECT 1 FROM models WHERE id = c)"
    " AND NOT EXISTS (SELECT 1 FROM geti_tombstones WHERE model_id = c)";

static const char  ngx_http_modelreg_finish_sql[] =
    "WITH r AS (UPDATE geti_sync_runs SET finished = clock_timestamp(),"
    " outcome = $2, seen = $3::int, imported = $4::int, failed = $5::int,"
    " error = $6 WHERE id = $1::bigint RETURNING id), "
    "a AS (INSERT INTO audit_events (action, actor, details)"
    " VALUES ('geti.sync', 'geti-sync', jsonb_build_object('run', $1::bigint,"
    " 'outcome', $2, 'seen', $3::int, 'imported', $4::int,"
    " 'failed', $5::int))) "
    "UPDATE geti_sync_lease SET holder = NULL, until = 'epoch',"
    " next_run = CASE WHEN $7::bigint > 0"
    " THEN now() + $7::bigint * interval '1 ms' END"
    " WHERE id = 1 AND run_id = $1::bigint";

static const char  ngx_http_modelreg_next_sql[] =
    "UPDATE geti_sync_lease SET next_run ="
    " now() + $1::bigint * interval '1 ms' WHERE id = 1";


/* this worker's run, the timer, how many runs in a row failed */

static ngx_http_modelreg_sync_t  *ngx_http_modelreg_sync_running;
static ngx_event_t                ngx_http_modelreg_sync_timer;
static ngx_uint_t                 ngx_http_modelreg_sync_fails;
static u_char                     ngx_http_modelreg_sync_node[128];
static ngx_str_t                  ngx_http_modelreg_sync_holder;


/*
 * The lease holder: this host, this nginx (the master survives reloads),
 * this worker slot.  A reloaded worker 0 takes over its predecessor's
 * lease at once; the database's constraints keep imports single anyway.
 */

ngx_int_t
ngx_http_modelreg_sync_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    u_char               host[64];
    ngx_uint_t           i;
    ngx_listening_t     *ls;
    struct sockaddr_in  *sin;

    if (mcf->geti == NULL) {
        return NGX_OK;
    }

    /* the registry itself: sync_url=, else the first IPv4 listener */

    if (mcf->geti->self.len == 0) {
        ls = cycle->listening.elts;

        for (i = 0; i < cycle->listening.nelts; i++) {
            if (ls[i].sockaddr->sa_family != AF_INET) {
                continue;
            }

            sin = (struct sockaddr_in *) ls[i].sockaddr;

            mcf->geti->self.data = ngx_pnalloc(cycle->pool,
                                               sizeof("http://") + 32);
            if (mcf->geti->self.data == NULL) {
                return NGX_ERROR;
            }

            mcf->geti->self.len = ngx_sprintf(mcf->geti->self.data,
                                      "http://127.0.0.1:%d",
                                      (int) ntohs(sin->sin_port))
                                  - mcf->geti->self.data;

            if (sin->sin_addr.s_addr != htonl(INADDR_ANY)) {
                mcf->geti->self.len = ngx_sprintf(mcf->geti->self.data,
                                          "http://%V", &ls[i].addr_text)
                                      - mcf->geti->self.data;
            }

            break;
        }
    }

    if (gethostname((char *) host, sizeof(host) - 1) == -1) {
        ngx_cpystrn(host, (u_char *) "localhost", sizeof(host));
    }

    host[sizeof(host) - 1] = '\0';

    ngx_http_modelreg_sync_holder.data = ngx_http_modelreg_sync_node;
    ngx_http_modelreg_sync_holder.len =
        ngx_snprintf(ngx_http_modelreg_sync_node,
                     sizeof(ngx_http_modelreg_sync_node), "%s:%P:%ui",
                     host, getppid(), ngx_worker)
        - ngx_http_modelreg_sync_node;

    if (mcf->geti->sync == 0 || ngx_worker != 0) {
        return NGX_OK;
    }

    ngx_http_modelreg_sync_timer.handler = ngx_http_modelreg_sync_tick;
    ngx_http_modelreg_sync_timer.data = mcf;
    ngx_http_modelreg_sync_timer.log = cycle->log;
    ngx_http_modelreg_sync_timer.cancelable = 1;

    /* the first run soon after start, then every interval */

    ngx_add_timer(&ngx_http_modelreg_sync_timer,
                  NGX_HTTP_MODELREG_SYNC_FIRST
                  + ngx_random() % NGX_HTTP_MODELREG_SYNC_FIRST);

    return NGX_OK;
}


void
ngx_http_modelreg_sync_exit(void)
{
    if (ngx_http_modelreg_sync_timer.timer_set) {
        ngx_del_timer(&ngx_http_modelreg_sync_timer);
    }
}


static void
ngx_http_modelreg_sync_tick(ngx_event_t *ev)
{
    ngx_msec_t                      delay;
    ngx_str_t                       v;
    u_char                          buf[NGX_INT64_LEN];
    ngx_http_modelreg_main_conf_t  *mcf = ev->data;

    /* re-armed first: whatever happens below, the next run comes */

    delay = mcf->geti->sync;

    if (ngx_http_modelreg_sync_fails) {
        delay = ngx_min(delay << ngx_min(ngx_http_modelreg_sync_fails,
                                         NGX_HTTP_MODELREG_SYNC_DOUBLINGS),
                        NGX_HTTP_MODELREG_SYNC_MAX_DELAY);

        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "modelreg: Geti sync failed %ui times in a row, "
                      "the next run in %M ms", ngx_http_modelreg_sync_fails,
                      delay);
    }

    ngx_add_timer(ev, delay + ngx_random() % (delay / 10 + 1));

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                   "modelreg geti_sync: tick, the next in %M ms, "
                   "%ui failed before", delay, ngx_http_modelreg_sync_fails);

    if (ngx_exiting || ngx_quit) {
        return;
    }

    if (ngx_http_modelreg_sync_start(mcf, NULL, NULL) != NGX_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_EVENT, ev->log, 0,
                       "modelreg geti_sync: no run from this tick");
        return;
    }

    v.data = buf;
    v.len = ngx_sprintf(buf, "%M", delay) - buf;

    ngx_http_modelreg_detached(mcf, ev->log, ngx_http_modelreg_next_sql, 1,
                               &v);
}


/*
 * Starts a run unless one runs here: NGX_BUSY.  "started" (a manual run)
 * hears NGX_OK once the lease is taken, NGX_BUSY if another runner has
 * it, NGX_ERROR if the database is not there.
 */

ngx_int_t
ngx_http_modelreg_sync_start(ngx_http_modelreg_main_conf_t *mcf,
    void (*started)(void *data, ngx_int_t rc), void *data)
{
    u_char                    *p;
    ngx_str_t                  v[2];
    ngx_pool_t                *pool;
    ngx_http_modelreg_sync_t  *s;

    if (ngx_http_modelreg_sync_running) {
        ngx_log_debug0(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                       "modelreg geti_sync: a run is going on here");
        return NGX_BUSY;
    }

    pool = ngx_create_pool(NGX_HTTP_MODELREG_SYNC_POOL, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    s = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_sync_t));
    p = ngx_pnalloc(pool, NGX_INT64_LEN);

    if (s == NULL || p == NULL) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    s->pool = pool;
    s->log = ngx_cycle->log;
    s->mcf = mcf;
    s->started = started;
    s->data = data;

    /* a run may last as long as its exports: the lease does too */

    v[0] = ngx_http_modelreg_sync_holder;
    v[1].data = p;
    v[1].len = ngx_sprintf(p, "%M",
                           mcf->geti->export_timeout
                           + NGX_HTTP_MODELREG_SYNC_MARGIN)
               - p;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: lease for %V, %s", &v[0],
                   started ? "asked for" : "timer");

    if (ngx_http_modelreg_sync_query(s, ngx_http_modelreg_lease_sql, 2, v,
                                     ngx_http_modelreg_sync_leased)
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_http_modelreg_sync_running = s;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_sync_query(ngx_http_modelreg_sync_t *s, const char *sql,
    ngx_uint_t n, ngx_str_t *values, ngx_http_modelreg_pg_handler_pt handler)
{
    ngx_http_modelreg_pg_query_t  *q;

    q = ngx_http_modelreg_query_copy(s->pool, sql, n, values);
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->handler = handler;
    q->data = s;

    return ngx_http_modelreg_pg_send(s->mcf->pool, q);
}


static void
ngx_http_modelreg_sync_leased(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_sync_t *s = q->data;

    ngx_str_t                  path = ngx_string("/projects");
    ngx_http_modelreg_curl_t  *cu;

    if (q->status != NGX_HTTP_MODELREG_PG_OK || PQntuples(q->result) == 0) {

        /* another runner has the lease, or no database: no run */

        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, s->log, 0,
                       "modelreg geti_sync: no lease, %s",
                       q->status == NGX_HTTP_MODELREG_PG_OK
                       ? "another runner has it" : "no database");

        if (s->started) {
            s->started(s->data, q->status == NGX_HTTP_MODELREG_PG_OK
                                ? NGX_BUSY : NGX_ERROR);
        }

        ngx_http_modelreg_sync_running = NULL;
        ngx_destroy_pool(s->pool);
        return;
    }

    s->run_id.len = PQgetlength(q->result, 0, 0);
    s->run_id.data = ngx_pnalloc(s->pool, s->run_id.len);

    if (s->run_id.data) {
        ngx_memcpy(s->run_id.data, PQgetvalue(q->result, 0, 0),
                   s->run_id.len);
    }

    ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                  "modelreg: Geti sync run %V started", &s->run_id);

    if (s->started) {
        s->started(s->data, NGX_OK);
        s->started = NULL;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: run %V: the listing", &s->run_id);

    cu = ngx_http_modelreg_sync_self(s, "GET", &path,
                                     ngx_http_modelreg_sync_listed);

    if (cu == NULL || ngx_http_modelreg_curl_start(cu) != NGX_OK) {
        s->error = "cannot ask the registry for Geti's projects";
        ngx_http_modelreg_sync_finish(s);
    }
}


/*
 * The listing is read back over HTTP: everything the run uses from it is
 * checked before (ids go into SQL array literals and paths as they are).
 */

static ngx_int_t
ngx_http_modelreg_sync_check(ngx_http_modelreg_sync_t *s)
{
    const char  *is, *what;

    is = ngx_http_modelreg_geti_bad_listing(s->projects, &what);

    if (is == NULL) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, s->log, 0,
                  "modelreg: Geti sync: an invalid project listing: "
                  "\"%s\" is %s", what, is);

    return NGX_DECLINED;
}


/* a call of the registry itself, over loopback */

static ngx_http_modelreg_curl_t *
ngx_http_modelreg_sync_self(ngx_http_modelreg_sync_t *s, const char *method,
    ngx_str_t *path, ngx_http_modelreg_curl_done_pt done)
{
    u_char                         *url;
    ngx_str_t                       actor = ngx_string("geti-sync");
    ngx_http_modelreg_curl_t       *cu;
    ngx_http_modelreg_geti_conf_t  *g;

    g = s->mcf->geti;

    url = ngx_pnalloc(s->pool, g->self.len + path->len + 1);
    cu = ngx_http_modelreg_curl_create(s->pool, s->log,
                                       NGX_HTTP_MODELREG_SYNC_LIST_MAX);

    if (url == NULL || cu == NULL
        || ngx_http_modelreg_curl_header(cu, "X-Modelreg-Sync", &actor)
           != NGX_OK)
    {
        return NULL;
    }

    /* (a listing cut at 16 MiB would be read as another one) */

    cu->whole = 1;

    ngx_sprintf(url, "%V%V%Z", &g->self, path);

    curl_easy_setopt(cu->easy, CURLOPT_URL, (char *) url);
    curl_easy_setopt(cu->easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(cu->easy, CURLOPT_TIMEOUT_MS,
                     (long) (g->export_timeout
                             + NGX_HTTP_MODELREG_SYNC_MARGIN));

    cu->method = method;
    cu->done = done;
    cu->data = s;

    return cu;
}


/* every OpenVINO model of Geti (of the configured projects) */

static void
ngx_http_modelreg_sync_listed(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_sync_t *s = cu->data;

    u_char         *p;
    size_t          i, j, k, m, len;
    json_t         *pr, *g, *v, *o, *ids, *set;
    ngx_str_t       arr, *pid;
    ngx_uint_t      n, keep;
    json_error_t    err;

    if (cu->result != CURLE_OK || cu->status != 200) {
        if (cu->too_large) {
            s->error = "a project listing over 16 MiB";

        } else {
            s->error = (cu->status == NGX_HTTP_BAD_GATEWAY)
                       ? "Geti returned an invalid answer"
                       : "Geti unavailable";
        }

        ngx_http_modelreg_sync_finish(s);
        return;
    }

    s->projects = json_loadb((char *) cu->body->pos,
                             cu->body->last - cu->body->pos, 0, &err);

    ngx_http_modelreg_curl_free(cu);

    if (s->projects == NULL
        || ngx_http_modelreg_json_pool(s->pool, s->projects) != NGX_OK
        || ngx_http_modelreg_sync_check(s) != NGX_OK)
    {
        s->error = "a bad project listing";
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    s->todo = json_object();
    ids = json_array();
    set = json_object();

    if (s->todo == NULL || ids == NULL || set == NULL
        || ngx_http_modelreg_json_pool(s->pool, s->todo) != NGX_OK
        || ngx_http_modelreg_json_pool(s->pool, ids) != NGX_OK
        || ngx_http_modelreg_json_pool(s->pool, set) != NGX_OK)
    {
        s->error = "out of memory";
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    json_array_foreach(s->projects, i, pr) {

        keep = (s->mcf->geti->projects == NULL);
        pid = keep ? NULL : s->mcf->geti->projects->elts;

        for (n = 0; !keep && n < s->mcf->geti->projects->nelts; n++) {
            if (json_string_length(json_object_get(pr, "id")) == pid[n].len
                && ngx_strncmp(json_string_value(json_object_get(pr, "id")),
                               pid[n].data, pid[n].len) == 0)
            {
                keep = 1;
            }
        }

        if (!keep) {
            continue;
        }

        json_array_foreach(json_object_get(pr, "model_groups"), j, g) {
            json_array_foreach(json_object_get(g, "model_versions"), k, v) {
                json_array_foreach(json_object_get(v, "openvino_models"),
                                   m, o)
                {
                    /* (each once, however often Geti lists it) */

                    if (json_object_get(set, json_string_value(
                                                 json_object_get(o, "id"))))
                    {
                        continue;
                    }

                    json_object_set(set,
                                    json_string_value(json_object_get(o,
                                                                      "id")),
                                    json_true());
                    json_array_append(ids, json_object_get(o, "id"));
                }
            }
        }
    }

    s->seen = json_array_size(ids);

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: %uz projects, %ui models: new?",
                   json_array_size(s->projects), s->seen);

    /* which of them are new: neither registered nor deleted after import */

    len = 2;

    json_array_foreach(ids, i, o) {
        len += json_string_length(o) + 3;
    }

    arr.data = ngx_pnalloc(s->pool, len);
    if (arr.data == NULL) {
        s->error = "out of memory";
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    p = arr.data;
    *p++ = '{';

    json_array_foreach(ids, i, o) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "\"%s\"", json_string_value(o));
    }

    *p++ = '}';
    arr.len = p - arr.data;

    if (ngx_http_modelreg_sync_query(s, ngx_http_modelreg_new_sql, 1, &arr,
                                     ngx_http_modelreg_sync_new)
        != NGX_OK)
    {
        s->error = "metadata database unavailable";
        ngx_http_modelreg_sync_finish(s);
    }
}


static void
ngx_http_modelreg_sync_new(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_sync_t *s = q->data;

    int          r;
    size_t       i, j, k, m;
    json_t      *pr, *g, *v, *o, *list;
    const char  *id;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        s->error = "metadata database unavailable";
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    /* per project: the new models, with their groups */

    for (r = 0; r < PQntuples(q->result); r++) {
        id = PQgetvalue(q->result, r, 0);

        json_array_foreach(s->projects, i, pr) {
            json_array_foreach(json_object_get(pr, "model_groups"), j, g) {
                json_array_foreach(json_object_get(g, "model_versions"), k, v)
                {
                    json_array_foreach(json_object_get(v, "openvino_models"),
                                       m, o)
                    {
                        if (ngx_strcmp(json_string_value(json_object_get(o,
                                                                     "id")),
                                       id) != 0)
                        {
                            continue;
                        }

                        list = json_object_get(s->todo, json_string_value(
                                                   json_object_get(pr, "id")));
                        if (list == NULL) {
                            list = json_array();
                            json_object_set_new(s->todo, json_string_value(
                                json_object_get(pr, "id")), list);
                        }

                        json_array_append_new(list,
                            json_pack("{s:s,s:O}", "id", id, "group_id",
                                      json_object_get(g, "id")));

                        goto next;      /* (its first place only) */
                    }
                }
            }
        }

next:

        continue;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: %d new models in %uz projects",
                   PQntuples(q->result), json_object_size(s->todo));

    s->iter = json_object_iter(s->todo);
    s->offset = 0;

    ngx_http_modelreg_sync_next(s);
}


/*
 * The next project with new models: their import, by the registry
 * itself, at most NGX_HTTP_MODELREG_GETI_IMPORT_MAX of them at a time.
 */

static void
ngx_http_modelreg_sync_next(ngx_http_modelreg_sync_t *s)
{
    char                      *text;
    u_char                    *p;
    size_t                     i;
    json_t                    *body, *list, *chunk;
    ngx_str_t                  path, ct = ngx_string("application/json");
    const char                *pid;
    ngx_http_modelreg_curl_t  *cu;

    if (s->iter == NULL || ngx_exiting) {
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    pid = json_object_iter_key(s->iter);
    list = json_object_iter_value(s->iter);
    chunk = json_array();

    for (i = s->offset;
         chunk && i < json_array_size(list)
         && i < s->offset + NGX_HTTP_MODELREG_GETI_IMPORT_MAX;
         i++)
    {
        json_array_append(chunk, json_array_get(list, i));
    }

    s->asked = json_array_size(chunk);
    body = chunk ? json_pack("{s:o}", "models", chunk) : NULL;

    p = ngx_pnalloc(s->pool, sizeof("/projects//geti-models/download")
                             + ngx_strlen(pid));
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);

    if (p == NULL || text == NULL) {
        free(text);
        s->error = "out of memory";
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    path.data = p;
    path.len = ngx_sprintf(p, "/projects/%s/geti-models/download", pid) - p;

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: project %s: import %uz from %uz "
                   "of %uz", pid, s->asked, s->offset, json_array_size(list));

    cu = ngx_http_modelreg_sync_self(s, "POST", &path,
                                     ngx_http_modelreg_sync_imported);

    if (cu == NULL
        || ngx_http_modelreg_curl_header(cu, "Content-Type", &ct) != NGX_OK)
    {
        free(text);
        s->error = "out of memory";
        ngx_http_modelreg_sync_finish(s);
        return;
    }

    curl_easy_setopt(cu->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(text));
    curl_easy_setopt(cu->easy, CURLOPT_COPYPOSTFIELDS, text);
    free(text);

    if (ngx_http_modelreg_curl_start(cu) != NGX_OK) {
        s->error = "cannot ask the registry to import";
        ngx_http_modelreg_sync_finish(s);
    }
}


static void
ngx_http_modelreg_sync_imported(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_sync_t *s = cu->data;

    size_t         asked, got;
    json_t        *json;
    json_error_t   err;

    asked = s->asked;
    got = 0;

    json = (cu->result == CURLE_OK)
           ? json_loadb((char *) cu->body->pos,
                        cu->body->last - cu->body->pos, 0, &err)
           : NULL;

    if (json) {
        got = ngx_min(json_array_size(json_object_get(json, "registered")),
                      asked);
        json_decref(json);
    }

    if (cu->result != CURLE_OK || cu->status >= 500 || cu->status == 0) {
        if (got == 0 && (cu->status == 503 || cu->result != CURLE_OK)) {
            s->error = "Geti unavailable";
        }
    }

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: import answered %l (curl %d), "
                   "%uz of %uz registered", cu->status, (int) cu->result,
                   got, asked);

    s->imported += got;
    s->failed += asked - got;

    ngx_http_modelreg_curl_free(cu);

    s->offset += asked;

    if (asked == 0
        || s->offset >= json_array_size(json_object_iter_value(s->iter)))
    {
        s->iter = json_object_iter_next(s->todo, s->iter);
        s->offset = 0;
    }

    ngx_http_modelreg_sync_next(s);
}


static void
ngx_http_modelreg_sync_finish(ngx_http_modelreg_sync_t *s)
{
    u_char      *p;
    ngx_str_t    v[7];
    ngx_uint_t   level;
    const char  *outcome;

    outcome = (s->error && s->imported == 0) ? "failed"
            : (s->failed || s->error) ? (s->imported ? "partial" : "failed")
            : "ok";

    if (ngx_strcmp(outcome, "failed") == 0) {
        ngx_http_modelreg_sync_fails++;

    } else {
        ngx_http_modelreg_sync_fails = 0;
    }

    level = (ngx_strcmp(outcome, "ok") == 0) ? NGX_LOG_NOTICE : NGX_LOG_ERR;

    ngx_http_modelreg_stats_sync(outcome[0] == 'o' ? 0
                                 : outcome[0] == 'p' ? 1 : 2);

    ngx_log_error(level, s->log, 0,
                  "modelreg: Geti sync run %V: %s, %ui seen, %ui imported, "
                  "%ui failed%s%s", &s->run_id, outcome, s->seen, s->imported,
                  s->failed, s->error ? ": " : "", s->error ? s->error : "");

    p = ngx_pnalloc(s->pool, 4 * NGX_INT64_LEN);
    if (p == NULL) {
        goto done;
    }

    v[0] = s->run_id;
    v[1].data = (u_char *) outcome;
    v[1].len = ngx_strlen(outcome);
    v[2].data = p;
    p = ngx_sprintf(p, "%ui", s->seen);
    v[2].len = p - v[2].data;
    v[3].data = p;
    p = ngx_sprintf(p, "%ui", s->imported);
    v[3].len = p - v[3].data;
    v[4].data = p;
    p = ngx_sprintf(p, "%ui", s->failed);
    v[4].len = p - v[4].data;
    v[5].data = (u_char *) s->error;
    v[5].len = s->error ? ngx_strlen(s->error) : 0;
    v[6].data = p;
    p = ngx_sprintf(p, "%M", s->mcf->geti->sync);
    v[6].len = p - v[6].data;

    if (ngx_http_modelreg_sync_query(s, ngx_http_modelreg_finish_sql, 7, v,
                                     ngx_http_modelreg_sync_done)
        == NGX_OK)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, s->log, 0,
                       "modelreg geti_sync: run %V: recording", &s->run_id);
        return;
    }

done:

    ngx_http_modelreg_sync_running = NULL;
    ngx_destroy_pool(s->pool);
}


static void
ngx_http_modelreg_sync_done(ngx_http_modelreg_pg_query_t *q)
{
    ngx_http_modelreg_sync_t *s = q->data;

    if (q->status != NGX_HTTP_MODELREG_PG_OK) {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "modelreg: the Geti sync run %V was not recorded",
                      &s->run_id);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, s->log, 0,
                   "modelreg geti_sync: run %V over", &s->run_id);

    ngx_http_modelreg_sync_running = NULL;
    ngx_destroy_pool(s->pool);
}
