
/*
 * Copyright (C) modelreg authors
 *
 * What the files of the module share: configuration, the request context
 * and the helpers that answer requests.
 */


#ifndef _NGX_HTTP_MODELREG_H_INCLUDED_
#define _NGX_HTTP_MODELREG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "ngx_http_modelreg_pg.h"
#include "ngx_http_modelreg_route.h"
#include "ngx_http_modelreg_fields.h"
#include "ngx_http_modelreg_multipart.h"
#include "ngx_http_modelreg_validate.h"
#include "ngx_http_modelreg_form.h"
#include "ngx_http_modelreg_conf.h"
#include "ngx_http_modelreg_store.h"


#define NGX_HTTP_UNPROCESSABLE_ENTITY  422


typedef struct ngx_http_modelreg_geti_conf_s  ngx_http_modelreg_geti_conf_t;
typedef struct ngx_http_modelreg_webhook_s    ngx_http_modelreg_webhook_t;



typedef struct {
    ngx_http_modelreg_pg_conf_t    db;
    ngx_http_modelreg_pg_pool_t   *pool;        /* this worker's */
    ngx_http_modelreg_store_t     *store;
    ngx_http_modelreg_geti_conf_t *geti;        /* NULL: Geti is off */

    /* where "modelreg" was first used, to explain what is missing */
    u_char                        *used_file;
    ngx_uint_t                     used_line;

    ngx_int_t                      request_id_index;
    ngx_event_t                    gc_timer;
    ngx_uint_t                     gc_running;
    ngx_shm_zone_t                *metrics;
    size_t                         cache_size;  /* 0: off */
    ngx_shm_zone_t                *cache;

    /* modelreg_events: GET /events (events.c, feed.c) */
    ngx_uint_t                     events_waiters;  /* per worker */
    off_t                          events_backlog;  /* a stream's unsent */
    ngx_msec_t                     events_lifetime; /* a stream's */

    /* modelreg_webhook: ngx_http_modelreg_webhook_t *, NULL: none */
    ngx_array_t                   *webhooks;
} ngx_http_modelreg_main_conf_t;


typedef struct {
    ngx_flag_t                     enable;
    ngx_http_complex_value_t      *actor;
    ngx_str_t                      link_key;    /* no data: no links */
} ngx_http_modelreg_loc_conf_t;


/* a request body as it streams in (POST/PUT): parsed, never held whole */
struct ngx_http_modelreg_body_s {
    ngx_http_modelreg_mp_t        *mp;          /* multipart, or... */
    ngx_buf_t                     *raw;         /* ...collected, bounded */
    ngx_http_modelreg_fields_t     fields;
    size_t                         cap[NGX_HTTP_MODELREG_F_COUNT];
    ngx_int_t                      part;        /* field index, -1: none */
    ngx_uint_t                     files;       /* file parts seen */

    /* the file part: spooled to a temp file, hashed, checked as ZIP */
    ngx_temp_file_t               *tf;
    ngx_buf_t                     *wbuf;        /* NULL until file bytes */
    EVP_MD_CTX                    *sha;
    off_t                          size;
    u_char                         sha256[64];  /* hex, once spooled */
    ngx_http_modelreg_zip_t        zip;         /* its first, last bytes */
    ngx_str_t                      file_name;
    ngx_str_t                      file_type;

    /* parts of store->part_size bytes, each hashed for its own PUT */
    EVP_MD_CTX                    *part_sha;
    off_t                          part_fill;
    ngx_array_t                    parts;        /* u_char[64]: hex */

    unsigned                       file_part:1;
    unsigned                       malformed:1;
    unsigned                       too_many:1;   /* multipart: parts */
    unsigned                       too_large:1;
    unsigned                       failed:1;     /* ours: disk, memory */
};


typedef struct ngx_http_modelreg_register_s  ngx_http_modelreg_register_t;


typedef struct {
    ngx_http_modelreg_route_t      route;
    ngx_str_t                      base;        /* the location prefix */
    ngx_http_modelreg_body_t      *body;
    ngx_buf_t                     *error_page;  /* replaces nginx's HTML */
    void                          *data;        /* the route's own state */

    /* the services' own state, each theirs to allocate */
    ngx_http_modelreg_register_t  *reg;         /* a registration */
    ngx_http_modelreg_store_ctx_t *store;       /* a call to the store */

    unsigned                       own_reply:1; /* the body is ours */
    unsigned                       store_download:1; /* via a proxy */
} ngx_http_modelreg_ctx_t;


/*
 * A registration (register.c): POST /models and each model of a Geti
 * import.  The caller sets what to audit and what comes next.
 */
struct ngx_http_modelreg_register_s {
    const char                    *action;      /* audit: model.create... */
    void                         (*registered)(ngx_http_request_t *r,
                                      ngx_http_modelreg_pg_query_t *q);
    void                         (*unregistered)(ngx_http_request_t *r,
                                      ngx_uint_t status);
    ngx_str_t                      id;
    ngx_str_t                      key;
    ngx_str_t                      file_name;
    ngx_http_modelreg_pg_query_t  *query;       /* kept across a step */
};


extern ngx_module_t  ngx_http_modelreg_module;


/* ngx_http_modelreg_router.c */
ngx_int_t ngx_http_modelreg_handler(ngx_http_request_t *r);

/* ngx_http_modelreg_request.c */
ngx_http_modelreg_ctx_t *ngx_http_modelreg_get_ctx(ngx_http_request_t *r);
ngx_http_modelreg_ctx_t *ngx_http_modelreg_create_ctx(ngx_http_request_t *r);
void ngx_http_modelreg_finish(ngx_http_request_t *r, ngx_int_t rc);
ngx_http_modelreg_pg_query_t *ngx_http_modelreg_query(ngx_http_request_t *r,
    const char *sql, ngx_uint_t n, ngx_http_modelreg_pg_handler_pt handler);
ngx_int_t ngx_http_modelreg_query_run(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
ngx_int_t ngx_http_modelreg_query_start(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
ngx_int_t ngx_http_modelreg_query_param(ngx_pool_t *pool,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t i, ngx_str_t *value);
ngx_int_t ngx_http_modelreg_audit_values(ngx_http_request_t *r,
    ngx_str_t *v);
ngx_int_t ngx_http_modelreg_audit_params(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_uint_t first);
ngx_int_t ngx_http_modelreg_pg_error(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
ngx_int_t ngx_http_modelreg_model_missing(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
ngx_int_t ngx_http_modelreg_referenced(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, ngx_str_t *id);
ngx_table_elt_t *ngx_http_modelreg_header_in(ngx_http_request_t *r,
    const char *name);
ngx_table_elt_t *ngx_http_modelreg_header_out(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
void ngx_http_modelreg_detached(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, const char *sql, ngx_uint_t n, ngx_str_t *values);
ngx_http_modelreg_pg_query_t *ngx_http_modelreg_query_copy(ngx_pool_t *pool,
    const char *sql, ngx_uint_t n, ngx_str_t *values);

/* ngx_http_modelreg_health.c */
ngx_int_t ngx_http_modelreg_health(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_ready(ngx_http_request_t *r);

/* ngx_http_modelreg_body.c */
ngx_int_t ngx_http_modelreg_body_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_modelreg_body_read(ngx_http_request_t *r,
    ngx_uint_t file, ngx_http_client_body_handler_pt done);
ngx_int_t ngx_http_modelreg_body_finish(ngx_http_request_t *r);
ngx_http_modelreg_body_t *ngx_http_modelreg_spool_create(
    ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_spool_open(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *name, ngx_str_t *type);
ngx_int_t ngx_http_modelreg_spool_write(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, u_char *p, size_t len);
ngx_int_t ngx_http_modelreg_spool_close(ngx_http_modelreg_body_t *body);
void ngx_http_modelreg_spool_sweep(ngx_http_modelreg_store_t *st,
    ngx_log_t *log);

/* ngx_http_modelreg_models.c */
ngx_int_t ngx_http_modelreg_models_create(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_models_get(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_models_delete(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_models_files(ngx_http_request_t *r);

/* ngx_http_modelreg_aliases.c */
ngx_int_t ngx_http_modelreg_aliases_list(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_alias_set(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_alias_get(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_alias_delete(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_alias_files(ngx_http_request_t *r);

/* ngx_http_modelreg_register.c */
ngx_int_t ngx_http_modelreg_register(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_zip_ok(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body);
ngx_int_t ngx_http_modelreg_conflict_query(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q, const char *sql, ngx_str_t *id);

/* ms before an unknown INSERT's object may be removed (the row, if it
 * committed, keeps it): the server is surely done with the INSERT then,
 * our timeout running from the send, the server's from its start */
#define NGX_HTTP_MODELREG_UNKNOWN_DELAY(mcf)  (2 * (mcf)->db.timeout + 5000)

/* a registration's intent ($1 key, $2 grace) and its INSERT ($1-$26),
 * as register.c makes them and register_batch.c batches them */
#define NGX_HTTP_MODELREG_INTENT_PARAMS   2
#define NGX_HTTP_MODELREG_INSERT_PARAMS   26

/* ngx_http_modelreg_register_batch.c */
ngx_int_t ngx_http_modelreg_register_batch(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);
ngx_int_t ngx_http_modelreg_register_intent(ngx_http_request_t *r,
    ngx_http_modelreg_pg_query_t *q);

/* ngx_http_modelreg_update.c */
ngx_int_t ngx_http_modelreg_models_update(ngx_http_request_t *r);

/* ngx_http_modelreg_models_list.c */
ngx_int_t ngx_http_modelreg_models_list(ngx_http_request_t *r);

/* ngx_http_modelreg_audit.c */
ngx_int_t ngx_http_modelreg_audit_list(ngx_http_request_t *r);

/* ngx_http_modelreg_events.c */
ngx_int_t ngx_http_modelreg_events(ngx_http_request_t *r);

/* ngx_http_modelreg_feed.c: ngx_http_modelreg_feed.h */
ngx_int_t ngx_http_modelreg_feed_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_feed_exit(void);

/* ngx_http_modelreg_webhook.c */
char *ngx_http_modelreg_webhook_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_modelreg_webhook_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_webhook_exit(ngx_http_modelreg_main_conf_t *mcf);

/* ngx_http_modelreg_links.c */
char *ngx_http_modelreg_link_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_modelreg_links_init(ngx_conf_t *cf);
ngx_int_t ngx_http_modelreg_links_create(ngx_http_request_t *r);

/* ngx_http_modelreg_geti.c */
char *ngx_http_modelreg_geti(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_modelreg_geti_projects.c */
ngx_int_t ngx_http_modelreg_projects(ngx_http_request_t *r);

/* ngx_http_modelreg_gc.c */
ngx_int_t ngx_http_modelreg_gc_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_gc_queue(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, ngx_str_t *key, const char *reason, ngx_msec_t delay);
void ngx_http_modelreg_gc_forget(ngx_http_modelreg_main_conf_t *mcf,
    ngx_log_t *log, ngx_str_t *key);
void ngx_http_modelreg_gc_exit(void);

/* ngx_http_modelreg_stats.c */
#define NGX_HTTP_MODELREG_STORE_PUT       0
#define NGX_HTTP_MODELREG_STORE_GET       1
#define NGX_HTTP_MODELREG_STORE_DELETE    2
#define NGX_HTTP_MODELREG_STORE_CHECK     3
#define NGX_HTTP_MODELREG_STORE_OPS       4

#define NGX_HTTP_MODELREG_CACHE_HIT         0
#define NGX_HTTP_MODELREG_CACHE_MISS        1
#define NGX_HTTP_MODELREG_CACHE_STORE       2
#define NGX_HTTP_MODELREG_CACHE_INVALIDATE  3
#define NGX_HTTP_MODELREG_CACHE_FLUSH       4
#define NGX_HTTP_MODELREG_CACHE_EVENTS      5

#define NGX_HTTP_MODELREG_WEBHOOK_DELIVERED 0
#define NGX_HTTP_MODELREG_WEBHOOK_RETRIED   1
#define NGX_HTTP_MODELREG_WEBHOOK_FAILED    2
#define NGX_HTTP_MODELREG_WEBHOOK_OUTCOMES  3

ngx_int_t ngx_http_modelreg_stats_conf(ngx_conf_t *cf,
    ngx_http_modelreg_main_conf_t *mcf);
ngx_int_t ngx_http_modelreg_stats_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_stats_exit(void);
void ngx_http_modelreg_stats_store(ngx_uint_t op, ngx_uint_t ok);
void ngx_http_modelreg_stats_gc(ngx_uint_t removed, ngx_uint_t failed);
void ngx_http_modelreg_stats_sync(ngx_uint_t outcome);
void ngx_http_modelreg_stats_imports(ngx_uint_t registered,
    ngx_uint_t failed, ngx_uint_t timed_out);
void ngx_http_modelreg_stats_cache(ngx_uint_t event);
void ngx_http_modelreg_stats_webhook(ngx_uint_t outcome, ngx_uint_t n);

/* ngx_http_modelreg_metrics.c */
ngx_int_t ngx_http_modelreg_metrics(ngx_http_request_t *r);

/* ngx_http_modelreg_openapi.c */
ngx_int_t ngx_http_modelreg_openapi_init(ngx_conf_t *cf);
ngx_int_t ngx_http_modelreg_openapi(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_docs(ngx_http_request_t *r);

/* ngx_http_modelreg_cache.c */
char *ngx_http_modelreg_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_modelreg_cache_conf(ngx_conf_t *cf,
    ngx_http_modelreg_main_conf_t *mcf);
ngx_int_t ngx_http_modelreg_cache_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_cache_exit(void);
ngx_int_t ngx_http_modelreg_cache_get(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *out, uint64_t *gen);
void ngx_http_modelreg_cache_put(ngx_str_t *id, u_char *data, size_t len,
    uint64_t gen);
void ngx_http_modelreg_cache_invalidate(ngx_str_t *id);
ngx_int_t ngx_http_modelreg_cache_list_get(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *out, uint64_t *gen);
void ngx_http_modelreg_cache_list_put(ngx_str_t *key, ngx_str_t *value,
    uint64_t gen);
void ngx_http_modelreg_cache_lists_end(void);
ngx_int_t ngx_http_modelreg_cache_online(ngx_uint_t on,
    ngx_atomic_uint_t number);
void ngx_http_modelreg_cache_flush(void);

/*
 * Alias resolutions are served from the cache only under the node's lease
 * (README "Across nodes: leases"): LEASE ms from a heartbeat's sending;
 * a writer waits at most SYNC_CAP ms for the other nodes.
 */
#define NGX_HTTP_MODELREG_CACHE_LEASE     2000
#define NGX_HTTP_MODELREG_CACHE_SYNC_CAP  3000
#define NGX_HTTP_MODELREG_CACHE_ZONE_ID   32    /* hex digits */
ngx_msec_t ngx_http_modelreg_cache_clock(void);
ngx_uint_t ngx_http_modelreg_cache_leased(uint64_t *gen);
ngx_atomic_uint_t ngx_http_modelreg_cache_listener(ngx_str_t *zone);
ngx_int_t ngx_http_modelreg_cache_lease(ngx_msec_t until, ngx_uint_t fresh,
    ngx_atomic_uint_t number);

/* ngx_http_modelreg_cache_listen.c: after cache_init, before cache_exit */
ngx_int_t ngx_http_modelreg_cache_listen_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf);
void ngx_http_modelreg_cache_listen_exit(void);

/* the details of a 503, naming the dependency that is down */
#define NGX_HTTP_MODELREG_DB_DOWN     "Metadata database unavailable."
#define NGX_HTTP_MODELREG_STORE_DOWN  "Object storage unavailable."
#define NGX_HTTP_MODELREG_GETI_DOWN   "Geti unavailable."

/*
 * ngx_http_modelreg_reply.c: every answer ends its request and returns
 * NGX_DONE; asynchronous steps end with ngx_http_modelreg_finish()
 */
ngx_int_t ngx_http_modelreg_end(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t ngx_http_modelreg_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *content_type, u_char *data, size_t len);
ngx_int_t ngx_http_modelreg_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *json);
ngx_int_t ngx_http_modelreg_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);
ngx_int_t ngx_http_modelreg_db_unavailable(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_store_unavailable(ngx_http_request_t *r);
ngx_int_t ngx_http_modelreg_json_pool(ngx_pool_t *pool, json_t *json);

/* ngx_http_modelreg_response_filter.c */
ngx_int_t ngx_http_modelreg_header_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_modelreg_json_error_page(ngx_http_request_t *r,
    ngx_http_modelreg_ctx_t *ctx, const char *detail);


extern ngx_str_t  ngx_http_modelreg_json_type;


#endif /* _NGX_HTTP_MODELREG_H_INCLUDED_ */
