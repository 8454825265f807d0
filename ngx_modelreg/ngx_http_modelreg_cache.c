
/*
 * Copyright (C) modelreg authors
 *
 * The model read cache: GET /models/{id} answers, in one shared memory
 * zone (an rbtree by id, LRU eviction), so a read needs no round trip to
 * PostgreSQL.  It is only used while it can be kept right:
 *
 *   - a write through this nginx (PUT, DELETE) removes the entry before it
 *     answers, so its client reads its own write;
 *   - every other change (another node, SQL by hand) reaches us through
 *     the "modelreg_models" NOTIFY of a trigger (sql/004), which worker 0
 *     LISTENs for (ngx_http_modelreg_cache_listen.c, which calls in here);
 *   - while that listener is not connected the cache is "offline": no
 *     lookups, no stores, and it is flushed when the listener comes back;
 *   - a read stores its row only if its model was not invalidated since
 *     it sent its query (a generation number per bucket of ids, and an
 *     epoch for flushes), so a row read before a change never lands after
 *     the change's invalidation;
 *   - a read that finds a different answer already stored, or no row at
 *     all, drops the entry and bumps the generation instead of storing:
 *     which of two answers is newer cannot be told here, the next read
 *     will know.
 *
 * GET /models pages (list.c) are kept in the same zone, under keys that
 * begin with "<" (their canonical Link: no id or alias key does), in a
 * queue of their own, together at most 1/PAGES of the zone, so that pages
 * never push out more than that of the models.  One 64-bit "lists"
 * generation ends them all, bumped by every change of any model (an
 * invalidation of a model, a flush, a registration here, sql/009's
 * NOTIFY of one elsewhere), since any change may move a model into or out
 * of any page; an alias's does not.  A page carries the generation its
 * query was sent under and is used only while that is still the current
 * one.
 */


#include "ngx_http_modelreg.h"

#include <openssl/rand.h>


#define NGX_HTTP_MODELREG_CACHE_DEFAULT  (16 * 1024 * 1024)
#define NGX_HTTP_MODELREG_CACHE_MIN      (64 * 1024)
#define NGX_HTTP_MODELREG_CACHE_GENS     1024

/* an entry takes at most 1/SHARE of the zone, and frees at most EVICT */
#define NGX_HTTP_MODELREG_CACHE_SHARE    8
#define NGX_HTTP_MODELREG_CACHE_EVICT    16

/* list pages take at most 1/PAGES of the zone */
#define NGX_HTTP_MODELREG_CACHE_PAGES    4

/* an id's length is kept in a u_short */
#define NGX_HTTP_MODELREG_CACHE_ID_MAX   0xffff


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     lru;
    ngx_queue_t                     pages;     /* list pages' own LRU */
    size_t                          pages_size;
    uint64_t                        lists;     /* +1 per change of a model */
    ngx_atomic_t                    epoch;     /* +1 per flush */
    ngx_atomic_t                    gen[NGX_HTTP_MODELREG_CACHE_GENS];
    ngx_atomic_t                    online;
    ngx_atomic_t                    listener;  /* the newest one's number */
    ngx_atomic_t                    lease;     /* monotonic ms; 0: none */
    ngx_atomic_t                    lease_gen; /* +1 per lease regained */
    ngx_atomic_t                    listeners; /* +1 per worker listening */
    u_char                          zone[NGX_HTTP_MODELREG_CACHE_ZONE_ID];
} ngx_http_modelreg_cache_sh_t;


typedef struct {
    ngx_http_modelreg_cache_sh_t   *sh;
    ngx_slab_pool_t                *shpool;
} ngx_http_modelreg_cache_t;


typedef struct {
    ngx_rbtree_node_t               node;      /* key: crc32 of the id */
    ngx_queue_t                     queue;
    u_short                         id_len;
    u_char                          page;      /* a list page */
    size_t                          len;
    u_char                          data[1];   /* id, then the JSON */
} ngx_http_modelreg_cache_node_t;


static ngx_int_t ngx_http_modelreg_cache_zone_init(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_modelreg_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_modelreg_cache_node_t *ngx_http_modelreg_cache_find(
    ngx_http_modelreg_cache_t *cache, ngx_str_t *id, uint32_t hash);
static void ngx_http_modelreg_cache_free(ngx_http_modelreg_cache_t *cache,
    ngx_http_modelreg_cache_node_t *cn);
static void ngx_http_modelreg_cache_flush_locked(
    ngx_http_modelreg_cache_t *cache);
static uint64_t ngx_http_modelreg_cache_token(
    ngx_http_modelreg_cache_t *cache, uint32_t hash);
static uint64_t ngx_http_modelreg_cache_lists_token(
    ngx_http_modelreg_cache_t *cache);
static ngx_http_modelreg_cache_node_t *ngx_http_modelreg_cache_alloc_locked(
    ngx_http_modelreg_cache_t *cache, ngx_str_t *id, uint32_t hash,
    size_t len, ngx_uint_t page, const char **what);
static ngx_uint_t ngx_http_modelreg_cache_is_model(ngx_str_t *id);
static size_t ngx_http_modelreg_cache_cost(size_t size);


static ngx_http_modelreg_cache_t  *ngx_http_modelreg_cache;


/* modelreg_cache off | size; on with 16m when absent */

char *
ngx_http_modelreg_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_modelreg_main_conf_t  *mcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (mcf->cache_size != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        mcf->cache_size = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" (\"off\" or a "
                           "size, like 16m)", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) NGX_HTTP_MODELREG_CACHE_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" of \"%V\" is too small (at least %uzk)",
                           &value[1], &cmd->name,
                           (size_t) NGX_HTTP_MODELREG_CACHE_MIN / 1024);
        return NGX_CONF_ERROR;
    }

    mcf->cache_size = (size_t) size;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_modelreg_cache_conf(ngx_conf_t *cf,
    ngx_http_modelreg_main_conf_t *mcf)
{
    ngx_str_t                   name = ngx_string("modelreg_cache");
    ngx_http_modelreg_cache_t  *cache;

    if (mcf->cache_size == NGX_CONF_UNSET_SIZE) {
        mcf->cache_size = NGX_HTTP_MODELREG_CACHE_DEFAULT;
    }

    if (mcf->cache_size == 0) {
        return NGX_OK;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_modelreg_cache_t));
    if (cache == NULL) {
        return NGX_ERROR;
    }

    mcf->cache = ngx_shared_memory_add(cf, &name, mcf->cache_size,
                                       &ngx_http_modelreg_module);
    if (mcf->cache == NULL) {
        return NGX_ERROR;
    }

    mcf->cache->init = ngx_http_modelreg_cache_zone_init;
    mcf->cache->data = cache;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_cache_zone_init(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_modelreg_cache_t  *ocache = data;

    u_char                      id[NGX_HTTP_MODELREG_CACHE_ZONE_ID / 2];
    ngx_http_modelreg_cache_t  *cache;

    cache = zone->data;

    if (ocache) {
        /* a reload: the entries stay, the new worker 0 flushes anyway */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    /* off line, generation 0 ("store nothing") until worker 0 listens */
    cache->sh = ngx_slab_calloc(cache->shpool,
                                sizeof(ngx_http_modelreg_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_modelreg_cache_insert_value);
    ngx_queue_init(&cache->sh->lru);
    ngx_queue_init(&cache->sh->pages);

    /*
     * The node's name in sql/005's table of listeners, for as long as the
     * zone lives (reloads too): random, so that two nodes never share it
     */

    if (RAND_bytes(id, sizeof(id)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0,
                      "modelreg: RAND_bytes() failed for the cache zone");
        return NGX_ERROR;
    }

    ngx_hex_dump(cache->sh->zone, id, sizeof(id));

    /* a full zone is normal here: the oldest entries make room */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


/* in each worker, before the listener starts (it needs the zone) */

ngx_int_t
ngx_http_modelreg_cache_init(ngx_cycle_t *cycle,
    ngx_http_modelreg_main_conf_t *mcf)
{
    if (mcf->cache == NULL) {
        return NGX_OK;
    }

    ngx_http_modelreg_cache = mcf->cache->data;

    ngx_log_debug0(NGX_LOG_DEBUG_CORE, cycle->log, 0,
                   "modelreg cache: attached to its zone");

    return NGX_OK;
}


/* after the listener stopped: it takes the cache off line on its way */

void
ngx_http_modelreg_cache_exit(void)
{
    ngx_http_modelreg_cache = NULL;
}


/*
 * NGX_OK: "out" is the cached answer, copied into the request's pool.
 * NGX_DECLINED: not there; "gen" is what cache_put() must be given.
 */

ngx_int_t
ngx_http_modelreg_cache_get(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *out, uint64_t *gen)
{
    uint32_t                         hash;
    ngx_http_modelreg_cache_t       *cache;
    ngx_http_modelreg_cache_node_t  *cn;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL || !cache->sh->online) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg cache: off line, \"%V\" not looked up", id);
        *gen = 0;
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    *gen = ngx_http_modelreg_cache_token(cache, hash);

    cn = ngx_http_modelreg_cache_find(cache, id, hash);

    if (cn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_MISS);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg cache: miss \"%V\", token %uL",
                       id, *gen);
        return NGX_DECLINED;
    }

    out->data = ngx_pnalloc(r->pool, cn->len);

    if (out->data == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    out->len = cn->len;
    ngx_memcpy(out->data, cn->data + cn->id_len, cn->len);

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&cache->sh->lru, &cn->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_HIT);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg cache: hit \"%V\", %uz bytes", id, out->len);

    return NGX_OK;
}


/*
 * A row read from the database: stored unless its model changed since
 * "gen"; an entry that says otherwise is dropped, not replaced (which of
 * the two is newer cannot be told here, the next read will).  "data" NULL:
 * the read found no row.
 */

void
ngx_http_modelreg_cache_put(ngx_str_t *id, u_char *data, size_t len,
    uint64_t gen)
{
    uint32_t                         hash;
    ngx_uint_t                       event;
    const char                      *what;
    ngx_http_modelreg_cache_t       *cache;
    ngx_http_modelreg_cache_node_t  *cn;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL || id->len > NGX_HTTP_MODELREG_CACHE_ID_MAX) {
        return;
    }

    hash = ngx_crc32_short(id->data, id->len);
    event = NGX_HTTP_MODELREG_CACHE_EVENTS;

    /* traced after the zone is unlocked */
    what = "kept (the same answer)";

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_modelreg_cache_find(cache, id, hash);

    if (cn && data && cn->len == len
        && ngx_memcmp(cn->data + cn->id_len, data, len) == 0)
    {
        goto done;
    }

    if (cn || data == NULL) {
        /* a 404 or another answer: nothing older may land after this */

        if (cn) {
            ngx_http_modelreg_cache_free(cache, cn);

            if (ngx_http_modelreg_cache_is_model(id)) {
                /* the model changed: its NOTIFY may be on its way */
                cache->sh->lists++;
            }
        }

        cache->sh->gen[hash % NGX_HTTP_MODELREG_CACHE_GENS]++;
        event = NGX_HTTP_MODELREG_CACHE_INVALIDATE;
        what = data ? "dropped (another answer stored)" : "dropped (no row)";
        goto done;
    }

    if (gen == 0 || gen != ngx_http_modelreg_cache_token(cache, hash)) {
        what = "not stored (changed since its read, or read off line)";
        goto done;
    }

    cn = ngx_http_modelreg_cache_alloc_locked(cache, id, hash, len, 0, &what);

    if (cn == NULL) {
        goto done;
    }

    ngx_memcpy(cn->data + id->len, data, len);

    event = NGX_HTTP_MODELREG_CACHE_STORE;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_modelreg_stats_cache(event);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg cache: \"%V\" %s, %uz bytes, token %uL",
                   id, what, len, gen);

    (void) what;  /* without --with-debug the trace is compiled out */
}


/*
 * A GET /models page by its key: NGX_OK with "out" its value (copied into
 * the request's pool) if it was stored under the current generation;
 * NGX_DECLINED otherwise, "gen" what cache_list_put() must be given.
 */

ngx_int_t
ngx_http_modelreg_cache_list_get(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *out, uint64_t *gen)
{
    uint32_t                         hash;
    uint64_t                         stored;
    ngx_http_modelreg_cache_t       *cache;
    ngx_http_modelreg_cache_node_t  *cn;

    cache = ngx_http_modelreg_cache;
    *gen = 0;

    if (cache == NULL || !cache->sh->online
        || key->len > NGX_HTTP_MODELREG_CACHE_ID_MAX)
    {
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(key->data, key->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    *gen = ngx_http_modelreg_cache_lists_token(cache);

    cn = ngx_http_modelreg_cache_find(cache, key, hash);

    if (cn) {
        if (cn->len < sizeof(uint64_t)) {
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return NGX_DECLINED;
        }

        ngx_memcpy(&stored, cn->data + cn->id_len, sizeof(uint64_t));

        if (stored != *gen) {
            /* a page of before a change: its room is better used */
            ngx_http_modelreg_cache_free(cache, cn);
            cn = NULL;
        }
    }

    if (cn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_MISS);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "modelreg cache: list miss \"%V\", token %uL",
                       key, *gen);
        return NGX_DECLINED;
    }

    out->len = cn->len - sizeof(uint64_t);
    out->data = ngx_pnalloc(r->pool, out->len);

    if (out->data == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_memcpy(out->data, cn->data + cn->id_len + sizeof(uint64_t),
               out->len);

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&cache->sh->pages, &cn->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_HIT);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg cache: list hit \"%V\", %uz bytes",
                   key, out->len);

    return NGX_OK;
}


/*
 * A page read from the database under "gen": stored if no model changed
 * since.  Two pages read under one generation that differ mean a change
 * not yet notified: neither is stored, and the generation moves on.
 */

void
ngx_http_modelreg_cache_list_put(ngx_str_t *key, ngx_str_t *value,
    uint64_t gen)
{
    uint32_t                         hash;
    uint64_t                         stored;
    ngx_uint_t                       event;
    const char                      *what;
    ngx_http_modelreg_cache_t       *cache;
    ngx_http_modelreg_cache_node_t  *cn;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL || gen == 0
        || key->len > NGX_HTTP_MODELREG_CACHE_ID_MAX)
    {
        return;
    }

    hash = ngx_crc32_short(key->data, key->len);
    event = NGX_HTTP_MODELREG_CACHE_EVENTS;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (gen != ngx_http_modelreg_cache_lists_token(cache)) {
        what = "not stored (a model changed since its read, or off line)";
        goto done;
    }

    cn = ngx_http_modelreg_cache_find(cache, key, hash);

    if (cn) {
        stored = 0;

        if (cn->len >= sizeof(uint64_t)) {
            ngx_memcpy(&stored, cn->data + cn->id_len, sizeof(uint64_t));
        }

        if (stored == gen && cn->len == sizeof(uint64_t) + value->len
            && ngx_memcmp(cn->data + cn->id_len + sizeof(uint64_t),
                          value->data, value->len)
               == 0)
        {
            what = "kept (the same page)";
            goto done;
        }

        ngx_http_modelreg_cache_free(cache, cn);

        if (stored == gen) {
            cache->sh->lists++;
            event = NGX_HTTP_MODELREG_CACHE_INVALIDATE;
            what = "dropped (another page stored)";
            goto done;
        }
    }

    cn = ngx_http_modelreg_cache_alloc_locked(cache, key, hash,
                                              sizeof(uint64_t) + value->len,
                                              1, &what);
    if (cn == NULL) {
        goto done;
    }

    ngx_memcpy(cn->data + key->len, &gen, sizeof(uint64_t));
    ngx_memcpy(cn->data + key->len + sizeof(uint64_t), value->data,
               value->len);

    event = NGX_HTTP_MODELREG_CACHE_STORE;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_modelreg_stats_cache(event);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg cache: list \"%V\" %s, %uz bytes, token %uL",
                   key, what, value->len, gen);

    (void) what;
}


/*
 * A model came (a registration here, or sql/009's NOTIFY "+" of one
 * elsewhere): no entry of a model is wrong, every cached list may be
 */

void
ngx_http_modelreg_cache_lists_end(void)
{
    ngx_http_modelreg_cache_t  *cache;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL) {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);
    cache->sh->lists++;
    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_INVALIDATE);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg cache: lists ended");
}


/*
 * A model (or an alias: "name@alias") changed or went away: its entry
 * goes, reads in flight too, and for a model every cached list
 */

void
ngx_http_modelreg_cache_invalidate(ngx_str_t *id)
{
    uint32_t                         hash;
    ngx_http_modelreg_cache_t       *cache;
    ngx_http_modelreg_cache_node_t  *cn;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL) {
        return;
    }

    hash = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    cache->sh->gen[hash % NGX_HTTP_MODELREG_CACHE_GENS]++;

    if (ngx_http_modelreg_cache_is_model(id)) {
        cache->sh->lists++;
    }

    cn = ngx_http_modelreg_cache_find(cache, id, hash);
    if (cn) {
        ngx_http_modelreg_cache_free(cache, cn);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_INVALIDATE);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "modelreg cache: invalidated \"%V\"", id);
}


/*
 * The listener went on or off line: either way nothing cached before can
 * be trusted.  Only the zone's newest listener (its number, one a worker
 * process) may do either: an older one (a reload's old worker 0, late in
 * starting) gets NGX_DECLINED and stops, and the newest one's going off
 * line (the new worker 0 starting) takes over from it.
 */

ngx_int_t
ngx_http_modelreg_cache_online(ngx_uint_t on, ngx_atomic_uint_t number)
{
    ngx_http_modelreg_cache_t  *cache;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL) {
        return NGX_OK;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (number < cache->sh->listener) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_http_modelreg_cache_flush_locked(cache);

    /* a new listener earns its lease with its first heartbeat */
    cache->sh->lease = 0;
    cache->sh->online = on;
    cache->sh->listener = number;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "modelreg cache: %s line (listener %uA), flushed",
                   on ? "on" : "off", number);

    return NGX_OK;
}


/*
 * The lease, in every worker: the monotonic clock itself, not nginx's
 * cached time, which may be a whole event loop iteration old.
 */

ngx_msec_t
ngx_http_modelreg_cache_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* 1 while alias entries may be used; "gen" is the lease they must carry */

ngx_uint_t
ngx_http_modelreg_cache_leased(uint64_t *gen)
{
    ngx_msec_t                  lease;
    ngx_http_modelreg_cache_t  *cache;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL || !cache->sh->online) {
        return 0;
    }

    /* the lease before its generation: cache_lease() writes the other way */
    lease = cache->sh->lease;
    ngx_memory_barrier();
    *gen = cache->sh->lease_gen;

    return ngx_http_modelreg_cache_clock() < lease;
}


/*
 * A worker process starts listening: the zone's id and the worker's number
 * among the zone's listeners, taken once (its reconnections keep it), so
 * that a reload's new worker 0 outranks the old one whatever their
 * connections do (here and in sql/005, where the newest speaks for the
 * node).
 */

ngx_atomic_uint_t
ngx_http_modelreg_cache_listener(ngx_str_t *zone)
{
    ngx_http_modelreg_cache_t  *cache;

    cache = ngx_http_modelreg_cache;

    zone->data = cache->sh->zone;
    zone->len = NGX_HTTP_MODELREG_CACHE_ZONE_ID;

    return ngx_atomic_fetch_add(&cache->sh->listeners, 1) + 1;
}


/*
 * The listener's heartbeat was answered: the lease runs until "until" (0:
 * it ends now).  A fresh heartbeat's lease, or one regained after it ran
 * out, starts a generation: while there was none, changes may have gone
 * unacknowledged, so nothing cached under an older one is used again.
 * Only the zone's current listener holds its lease: NGX_DECLINED to an
 * old one (a reload's old worker 0, still running).
 */

ngx_int_t
ngx_http_modelreg_cache_lease(ngx_msec_t until, ngx_uint_t fresh,
    ngx_atomic_uint_t number)
{
    ngx_http_modelreg_cache_t  *cache;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL) {
        return NGX_DECLINED;
    }

    /* under the zone's lock: a newer listener's cache_online() is not
     * undone by an older one's lease written after it */

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->sh->listener != number || !cache->sh->online) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    if (fresh || ngx_http_modelreg_cache_clock() >= cache->sh->lease) {
        ngx_atomic_fetch_add(&cache->sh->lease_gen, 1);

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                       "modelreg cache: lease generation %uA",
                       cache->sh->lease_gen);
    }

    ngx_memory_barrier();
    cache->sh->lease = until;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


/* NOTIFY '*': a TRUNCATE, or a change the trigger cannot name */

void
ngx_http_modelreg_cache_flush(void)
{
    ngx_http_modelreg_cache_t  *cache;

    cache = ngx_http_modelreg_cache;

    if (cache == NULL) {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);
    ngx_http_modelreg_cache_flush_locked(cache);
    ngx_shmtx_unlock(&cache->shpool->mutex);

    ngx_log_debug0(NGX_LOG_DEBUG_CORE, ngx_cycle->log, 0,
                   "modelreg cache: flushed");
}


static void
ngx_http_modelreg_cache_flush_locked(ngx_http_modelreg_cache_t *cache)
{
    ngx_queue_t  *q;

    cache->sh->epoch++;
    cache->sh->lists++;

    while (!ngx_queue_empty(&cache->sh->lru)) {
        q = ngx_queue_head(&cache->sh->lru);
        ngx_http_modelreg_cache_free(cache,
            ngx_queue_data(q, ngx_http_modelreg_cache_node_t, queue));
    }

    while (!ngx_queue_empty(&cache->sh->pages)) {
        q = ngx_queue_head(&cache->sh->pages);
        ngx_http_modelreg_cache_free(cache,
            ngx_queue_data(q, ngx_http_modelreg_cache_node_t, queue));
    }

    ngx_http_modelreg_stats_cache(NGX_HTTP_MODELREG_CACHE_FLUSH);
}


/*
 * What a read must still see at its end to store its row: the flush epoch
 * and the generation of its id's bucket; 0 ("store nothing") off line.
 */

static uint64_t
ngx_http_modelreg_cache_token(ngx_http_modelreg_cache_t *cache,
    uint32_t hash)
{
    if (!cache->sh->online) {
        return 0;
    }

    return ((uint64_t) cache->sh->epoch << 32)
           | (cache->sh->gen[hash % NGX_HTTP_MODELREG_CACHE_GENS]
              & 0xffffffff);
}


/*
 * What a list read must still see at its end: "lists" (flushes bump it
 * too), whole: 2^64 changes never come round; 0 off line.
 */

static uint64_t
ngx_http_modelreg_cache_lists_token(ngx_http_modelreg_cache_t *cache)
{
    if (!cache->sh->online) {
        return 0;
    }

    return cache->sh->lists + 1;
}


/*
 * What an allocation of "size" takes of the slab pool: whole pages above
 * half a page, else the next power of two (ngx_slab.c)
 */

static size_t
ngx_http_modelreg_cache_cost(size_t size)
{
    size_t  n;

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (n = 8; n < size; n <<= 1) { /* void */ }

    return n;
}


/* model ids never hold "@" (route.c); alias keys always do (aliases.c) */

static ngx_uint_t
ngx_http_modelreg_cache_is_model(ngx_str_t *id)
{
    return ngx_strlchr(id->data, id->data + id->len, '@') == NULL;
}


/*
 * A new entry for "id" with "len" bytes of value after it (the caller
 * writes them), in the tree and at the head of its LRU (models' or
 * pages'); NULL with "what" saying why not.  Room is made from the least
 * recently used of its own kind, else of the other; pages first give up
 * their own oldest until all of them fit in 1/PAGES of the zone.
 */

static ngx_http_modelreg_cache_node_t *
ngx_http_modelreg_cache_alloc_locked(ngx_http_modelreg_cache_t *cache,
    ngx_str_t *id, uint32_t hash, size_t len, ngx_uint_t page,
    const char **what)
{
    size_t                           size, zone;
    ngx_uint_t                       tries;
    ngx_queue_t                     *q, *own, *other;
    ngx_http_modelreg_cache_node_t  *cn;

    size = offsetof(ngx_http_modelreg_cache_node_t, data) + id->len + len;
    zone = (size_t) (cache->shpool->end - (u_char *) cache->shpool);

    /* one huge answer (a vast overview) must not empty the whole zone */

    if (size > zone / NGX_HTTP_MODELREG_CACHE_SHARE) {
        *what = "not stored (too big)";
        return NULL;
    }

    own = page ? &cache->sh->pages : &cache->sh->lru;
    other = page ? &cache->sh->lru : &cache->sh->pages;

    if (page) {
        for (tries = 0;
             cache->sh->pages_size + ngx_http_modelreg_cache_cost(size)
                 > zone / NGX_HTTP_MODELREG_CACHE_PAGES
             && tries < NGX_HTTP_MODELREG_CACHE_EVICT
             && !ngx_queue_empty(own);
             tries++)
        {
            q = ngx_queue_last(own);
            ngx_http_modelreg_cache_free(cache,
                ngx_queue_data(q, ngx_http_modelreg_cache_node_t, queue));
        }

        if (cache->sh->pages_size + ngx_http_modelreg_cache_cost(size)
            > zone / NGX_HTTP_MODELREG_CACHE_PAGES)
        {
            *what = "not stored (the pages' share is full)";
            return NULL;
        }
    }

    /* room from the least recently used, a few at a time */

    for (tries = 0; /* void */ ; tries++) {
        cn = ngx_slab_alloc_locked(cache->shpool, size);

        if (cn || tries == NGX_HTTP_MODELREG_CACHE_EVICT
            || (ngx_queue_empty(own) && ngx_queue_empty(other)))
        {
            break;
        }

        q = ngx_queue_last(ngx_queue_empty(own) ? other : own);
        ngx_http_modelreg_cache_free(cache,
            ngx_queue_data(q, ngx_http_modelreg_cache_node_t, queue));
    }

    if (cn == NULL) {
        *what = "not stored (no room)";
        return NULL;
    }

    cn->node.key = hash;
    cn->id_len = (u_short) id->len;
    cn->page = (u_char) page;
    cn->len = len;
    ngx_memcpy(cn->data, id->data, id->len);

    ngx_rbtree_insert(&cache->sh->rbtree, &cn->node);
    ngx_queue_insert_head(own, &cn->queue);

    if (page) {
        cache->sh->pages_size += ngx_http_modelreg_cache_cost(size);
    }

    *what = "stored";

    return cn;
}


static ngx_http_modelreg_cache_node_t *
ngx_http_modelreg_cache_find(ngx_http_modelreg_cache_t *cache, ngx_str_t *id,
    uint32_t hash)
{
    ngx_int_t                        rc;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_modelreg_cache_node_t  *cn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        cn = (ngx_http_modelreg_cache_node_t *) node;

        rc = ngx_memn2cmp(id->data, cn->data, id->len, cn->id_len);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_modelreg_cache_free(ngx_http_modelreg_cache_t *cache,
    ngx_http_modelreg_cache_node_t *cn)
{
    if (cn->page) {
        cache->sh->pages_size -= ngx_http_modelreg_cache_cost(
                                     offsetof(ngx_http_modelreg_cache_node_t,
                                              data)
                                     + cn->id_len + cn->len);
    }

    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree, &cn->node);
    ngx_slab_free_locked(cache->shpool, cn);
}


/* equal hashes are ordered by id, as cache_find() walks them */

static void
ngx_http_modelreg_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_modelreg_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            cn = (ngx_http_modelreg_cache_node_t *) node;
            cnt = (ngx_http_modelreg_cache_node_t *) temp;

            p = (ngx_memn2cmp(cn->data, cnt->data, cn->id_len, cnt->id_len)
                 < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
