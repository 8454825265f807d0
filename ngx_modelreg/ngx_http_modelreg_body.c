
/*
 * Copyright (C) modelreg authors
 *
 * A request body filter for POST and PUT: the body is parsed as it
 * arrives.  The file part goes to a temp file in the store's spool
 * directory through a fixed write buffer, hashed with SHA-256 and checked
 * as ZIP in the same pass; other fields are kept in memory up to their
 * limits.  Nothing else of the body is kept: nginx's own temp file is
 * never written, and memory stays flat however large the upload.
 */


#include <sys/file.h>

#include "ngx_http_modelreg.h"


/*
 * Buffers start small and double as bytes arrive, up to their limit: a
 * request holds about what it sent, never what it declared.
 */

#define NGX_HTTP_MODELREG_RAW_MIN   1024
#define NGX_HTTP_MODELREG_RAW_MAX   (4 * 1024 * 1024)
#define NGX_HTTP_MODELREG_WBUF_MIN  (16 * 1024)
#define NGX_HTTP_MODELREG_WBUF      (256 * 1024)

/* seconds: an unlocked spool file younger than this may be in the instant
 * between its creation and its lock */
#define NGX_HTTP_MODELREG_SPOOL_STALE  10


static ngx_int_t ngx_http_modelreg_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_modelreg_body_feed(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, u_char *p, size_t len);
static ngx_int_t ngx_http_modelreg_part_begin(void *data,
    ngx_http_modelreg_mp_part_t *part);
static ngx_int_t ngx_http_modelreg_part_data(void *data, u_char *p,
    size_t len);
static ngx_int_t ngx_http_modelreg_part_end(void *data);

static ngx_int_t ngx_http_modelreg_raw_grow(ngx_http_request_t *r,
    ngx_buf_t *raw, size_t need);
static ngx_int_t ngx_http_modelreg_wbuf_grow(ngx_http_modelreg_body_t *body);
static ngx_int_t ngx_http_modelreg_file_flush(ngx_http_modelreg_body_t *body);
static ngx_int_t ngx_http_modelreg_part_hash(ngx_http_modelreg_body_t *body,
    off_t part_size, u_char *p, size_t len);
static ngx_int_t ngx_http_modelreg_part_close(ngx_http_modelreg_body_t *body);
static ngx_int_t ngx_http_modelreg_field_append(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, u_char *p, size_t len);
static void ngx_http_modelreg_sha_cleanup(void *data);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


ngx_int_t
ngx_http_modelreg_body_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_modelreg_request_body_filter;

    return NGX_OK;
}


/*
 * Reads the body through the filter below: multipart when the request
 * says so, else (PUT only, "file" == 0) collected whole up to 4 MiB.
 */

ngx_int_t
ngx_http_modelreg_body_read(ngx_http_request_t *r, ngx_uint_t file,
    ngx_http_client_body_handler_pt done)
{
    size_t                     size;
    ngx_str_t                  boundary;
    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_body_t  *body;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    body = ngx_http_modelreg_spool_create(r);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->headers_in.content_type
        && ngx_http_modelreg_mp_boundary(&r->headers_in.content_type->value,
                                         &boundary)
           == NGX_OK)
    {
        body->mp = ngx_palloc(r->pool, sizeof(ngx_http_modelreg_mp_t));
        if (body->mp == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        (void) ngx_http_modelreg_mp_init(body->mp, &boundary);

        body->mp->begin = ngx_http_modelreg_part_begin;
        body->mp->data = ngx_http_modelreg_part_data;
        body->mp->end = ngx_http_modelreg_part_end;
        body->mp->ctx = r;

        /* a file part is spooled only where one is expected */

        body->files = file ? 0 : (ngx_uint_t) -1;

    } else if (file) {
        body->malformed = 1;    /* POST: multipart or nothing */

    } else {

        /* grown by body_feed as bytes arrive: Content-Length is a claim */

        size = NGX_HTTP_MODELREG_RAW_MIN;

        if (r->headers_in.content_length_n > 0) {
            size = (size_t) ngx_min(r->headers_in.content_length_n,
                                    (off_t) size);
        }

        body->raw = ngx_create_temp_buf(r->pool, size);
        if (body->raw == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ctx->body = body;

    return ngx_http_read_client_request_body(r, done);
}


/* the body is in: complete the parse and the spooled file */

ngx_int_t
ngx_http_modelreg_body_finish(ngx_http_request_t *r)
{
    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_body_t  *body;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;

    if (body->mp && !body->malformed && !body->too_many && !body->failed
        && ngx_http_modelreg_mp_finish(body->mp) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "modelreg: malformed multipart body: %s",
                      body->mp->error);
        body->malformed = 1;
    }

    return ngx_http_modelreg_spool_close(body);
}


ngx_int_t
ngx_http_modelreg_spool_close(ngx_http_modelreg_body_t *body)
{
    if (body->tf && !body->failed
        && (ngx_http_modelreg_file_flush(body) != NGX_OK
            || (body->part_sha && body->part_fill
                && ngx_http_modelreg_part_close(body) != NGX_OK)))
    {
        body->failed = 1;
    }

    return body->failed ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                *b;
    ngx_uint_t                last;
    ngx_chain_t              *cl;
    ngx_http_modelreg_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);

    if (ctx == NULL || ctx->body == NULL || r != r->main) {
        return ngx_http_next_request_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last > b->pos) {
            ngx_http_modelreg_body_feed(r, ctx->body, b->pos, b->last - b->pos);
            b->pos = b->last;
        }

        if (b->last_buf) {
            last = 1;
        }
    }

    if (!last) {
        return ngx_http_next_request_body_filter(r, NULL);
    }

    /* nginx's own bookkeeping sees the end, and no data */

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last_buf = 1;
    cl->buf = b;
    cl->next = NULL;

    return ngx_http_next_request_body_filter(r, cl);
}


static void
ngx_http_modelreg_body_feed(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, u_char *p, size_t len)
{
    size_t      size;
    ngx_buf_t  *raw;

    if (body->malformed || body->too_many || body->failed
        || body->too_large)
    {
        return;     /* read and dropped: the answer is known */
    }

    if (body->mp) {
        if (ngx_http_modelreg_mp_feed(body->mp, p, len) == NGX_OK
            || body->failed)
        {
            return;
        }

        if (body->mp->too_many) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "modelreg: multipart body of more than %d parts",
                          NGX_HTTP_MODELREG_MP_PARTS_MAX);
            body->too_many = 1;
            return;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "modelreg: malformed multipart body: %s",
                      body->mp->error);
        body->malformed = 1;

        return;
    }

    raw = body->raw;

    if (raw == NULL) {
        return;
    }

    if ((size_t) (raw->end - raw->last) < len) {
        size = raw->last - raw->pos + len;

        if (size > NGX_HTTP_MODELREG_RAW_MAX) {
            body->too_large = 1;
            return;
        }

        if (ngx_http_modelreg_raw_grow(r, raw, size) != NGX_OK) {
            body->failed = 1;
            return;
        }
    }

    raw->last = ngx_cpymem(raw->last, p, len);
}


/* room for "need" bytes: doubled, within the limit and the declared size */

static ngx_int_t
ngx_http_modelreg_raw_grow(ngx_http_request_t *r, ngx_buf_t *raw,
    size_t need)
{
    u_char  *p;
    size_t   size, len;

    size = ngx_max(need, 2 * (size_t) (raw->end - raw->start));
    size = ngx_min(size, NGX_HTTP_MODELREG_RAW_MAX);

    if (r->headers_in.content_length_n >= (off_t) need
        && (off_t) size > r->headers_in.content_length_n)
    {
        size = (size_t) r->headers_in.content_length_n;
    }

    p = ngx_palloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = raw->last - raw->pos;
    ngx_memcpy(p, raw->pos, len);

    /* (a large allocation goes back at once; a small one with the pool) */

    (void) ngx_pfree(r->pool, raw->start);

    raw->start = p;
    raw->pos = p;
    raw->last = p + len;
    raw->end = p + size;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_part_begin(void *data, ngx_http_modelreg_mp_part_t *part)
{
    ngx_http_request_t *r = data;

    ngx_int_t                  i;
    ngx_str_t                 *name;
    ngx_uint_t                 k;
    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_body_t  *body;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;

    body->part = -1;
    body->file_part = 0;

    if (!part->has_name) {
        body->mp->error = "a part without a name";
        body->malformed = 1;
        return NGX_ERROR;
    }

    i = ngx_http_modelreg_field_index(part->name.data, part->name.len);

    if (i == NGX_HTTP_MODELREG_F_FILE) {

        /* a "file" part without a filename is not a file part */

        if (!part->has_filename || body->files == (ngx_uint_t) -1) {
            return NGX_OK;
        }

        if (++body->files > 1) {
            return NGX_OK;
        }

        return ngx_http_modelreg_spool_open(r, body, &part->filename,
                                            part->content_type.len
                                            ? &part->content_type : NULL);
    }

    if (i == NGX_ERROR) {
        if (body->files == (ngx_uint_t) -1) {
            return NGX_OK;      /* PUT ignores what it does not know */
        }

        name = body->fields.unknown.elts;

        for (k = 0; k < body->fields.unknown.nelts; k++) {
            if (name[k].len == part->name.len
                && ngx_strncmp(name[k].data, part->name.data, name[k].len)
                   == 0)
            {
                return NGX_OK;
            }
        }

        name = ngx_array_push(&body->fields.unknown);
        if (name == NULL) {
            body->failed = 1;
            return NGX_ERROR;
        }

        name->data = ngx_pstrdup(r->pool, &part->name);
        if (name->data == NULL) {
            body->failed = 1;
            return NGX_ERROR;
        }

        name->len = part->name.len;

        return NGX_OK;
    }

    /* a known field: the last one given wins */

    body->fields.given[i] = 1;
    body->fields.value[i].len = 0;
    body->fields.overflow[i] = 0;

    if (ngx_http_modelreg_field_max(i)) {
        body->part = i;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_part_data(void *data, u_char *p, size_t len)
{
    ngx_http_request_t *r = data;

    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_body_t  *body;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;

    if (body->file_part) {
        return ngx_http_modelreg_spool_write(r, body, p, len);
    }

    if (body->part >= 0) {
        return ngx_http_modelreg_field_append(r, body, p, len);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_part_end(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_modelreg_ctx_t   *ctx;
    ngx_http_modelreg_body_t  *body;

    ctx = ngx_http_get_module_ctx(r, ngx_http_modelreg_module);
    body = ctx->body;

    body->part = -1;
    body->file_part = 0;

    return NGX_OK;
}


/*
 * A file to spool: the file part of an upload, or a download from Geti.
 * Written through a buffer, hashed whole and by parts, its first and last
 * bytes kept for the ZIP check.  The buffer and the ring of last bytes
 * are allocated when file bytes arrive and grow with them.
 */

ngx_http_modelreg_body_t *
ngx_http_modelreg_spool_create(ngx_http_request_t *r)
{
    ngx_http_modelreg_body_t  *body;

    body = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_body_t));

    if (body == NULL
        || ngx_http_modelreg_fields_init(&body->fields, r->pool) != NGX_OK)
    {
        return NULL;
    }

    body->part = -1;

    return body;
}


ngx_int_t
ngx_http_modelreg_spool_open(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *name, ngx_str_t *type)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    body->file_name.data = ngx_pstrdup(r->pool, name);
    body->file_name.len = name->len;

    /* RFC 7578: a part without Content-Type is text/plain */

    if (type) {
        body->file_type.data = ngx_pstrdup(r->pool, type);
        body->file_type.len = type->len;

    } else {
        ngx_str_set(&body->file_type, "text/plain");
    }

    body->tf = ngx_pcalloc(r->pool, sizeof(ngx_temp_file_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (body->file_name.data == NULL || body->file_type.data == NULL
        || body->tf == NULL || cln == NULL)
    {
        body->failed = 1;
        return NGX_ERROR;
    }

    body->sha = EVP_MD_CTX_new();

    if (body->sha == NULL
        || EVP_DigestInit_ex(body->sha, EVP_sha256(), NULL) != 1)
    {
        EVP_MD_CTX_free(body->sha);
        body->sha = NULL;
        body->failed = 1;
        return NGX_ERROR;
    }

    cln->handler = ngx_http_modelreg_sha_cleanup;
    cln->data = body->sha;

    /* a store that uploads in parts signs each with its own hash */

    if (mcf->store->part_size) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        body->part_sha = EVP_MD_CTX_new();

        if (cln == NULL || body->part_sha == NULL
            || ngx_array_init(&body->parts, r->pool, 4, 64) != NGX_OK
            || EVP_DigestInit_ex(body->part_sha, EVP_sha256(), NULL) != 1)
        {
            EVP_MD_CTX_free(body->part_sha);
            body->part_sha = NULL;
            body->failed = 1;
            return NGX_ERROR;
        }

        cln->handler = ngx_http_modelreg_sha_cleanup;
        cln->data = body->part_sha;
    }

    /*
     * The temp file lives in the store's spool directory so that the fs
     * backend can rename it into place; it is removed with the request
     * unless the store takes it.
     */

    body->tf->file.fd = NGX_INVALID_FILE;
    body->tf->file.log = r->connection->log;
    body->tf->path = mcf->store->temp_path;
    body->tf->pool = r->pool;
    body->tf->persistent = 1;
    body->tf->clean = 1;
    body->tf->access = 0644;

    body->file_part = 1;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_spool_write(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, u_char *p, size_t len)
{
    size_t      n;
    ngx_buf_t  *wb;

    if (EVP_DigestUpdate(body->sha, p, len) != 1) {
        body->failed = 1;
        return NGX_ERROR;
    }

    if (body->part_sha) {
        ngx_http_modelreg_main_conf_t  *mcf;

        mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

        if (ngx_http_modelreg_part_hash(body, mcf->store->part_size, p, len)
            != NGX_OK)
        {
            body->failed = 1;
            return NGX_ERROR;
        }
    }

    if (ngx_http_modelreg_zip_add(&body->zip, body->tf->pool, body->size, p,
                                  len)
        != NGX_OK)
    {
        body->failed = 1;
        return NGX_ERROR;
    }

    body->size += len;

    if (body->wbuf == NULL && ngx_http_modelreg_wbuf_grow(body) != NGX_OK) {
        body->failed = 1;
        return NGX_ERROR;
    }

    wb = body->wbuf;

    while (len) {
        n = ngx_min(len, (size_t) (wb->end - wb->last));
        wb->last = ngx_cpymem(wb->last, p, n);
        p += n;
        len -= n;

        if (wb->last < wb->end) {
            continue;
        }

        if (ngx_http_modelreg_file_flush(body) != NGX_OK
            || (wb->end - wb->start < NGX_HTTP_MODELREG_WBUF
                && ngx_http_modelreg_wbuf_grow(body) != NGX_OK))
        {
            body->failed = 1;
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the write buffer, empty: allocated, or replaced by one twice its size */

static ngx_int_t
ngx_http_modelreg_wbuf_grow(ngx_http_modelreg_body_t *body)
{
    u_char      *p;
    size_t       size;
    ngx_buf_t   *wb;
    ngx_pool_t  *pool;

    pool = body->tf->pool;
    wb = body->wbuf;

    if (wb == NULL) {
        wb = ngx_calloc_buf(pool);
        if (wb == NULL) {
            return NGX_ERROR;
        }

        wb->temporary = 1;
        size = NGX_HTTP_MODELREG_WBUF_MIN;

    } else {
        size = ngx_min(2 * (size_t) (wb->end - wb->start),
                       NGX_HTTP_MODELREG_WBUF);
    }

    p = ngx_palloc(pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (wb->start) {
        (void) ngx_pfree(pool, wb->start);
    }

    wb->start = p;
    wb->pos = p;
    wb->last = p;
    wb->end = p + size;
    body->wbuf = wb;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_file_flush(ngx_http_modelreg_body_t *body)
{
    ssize_t      n;
    ngx_buf_t   *wb, empty;
    ngx_uint_t   created;
    ngx_chain_t  cl;

    static u_char  none[1];

    wb = body->wbuf;

    if (wb == NULL) {

        /* (an empty file part still gets its, empty, temp file) */

        if (body->tf->file.fd != NGX_INVALID_FILE) {
            return NGX_OK;
        }

        ngx_memzero(&empty, sizeof(ngx_buf_t));
        empty.start = none;
        empty.pos = none;
        empty.last = none;
        empty.end = none;
        empty.temporary = 1;
        wb = &empty;

    } else if (wb->last == wb->pos
               && body->tf->file.fd != NGX_INVALID_FILE)
    {
        return NGX_OK;
    }

    cl.buf = wb;
    cl.next = NULL;

    created = (body->tf->file.fd == NGX_INVALID_FILE);

    n = ngx_write_chain_to_temp_file(body->tf, &cl);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * Locked for as long as this process has it open: a file of a worker
     * that died (SIGKILL) is unlocked, and ngx_http_modelreg_spool_sweep()
     * removes it.  flock, not fcntl: another open of the file in this
     * same process (the sweep's) must not see it as its own.
     */

    if (created && flock(body->tf->file.fd, LOCK_EX|LOCK_NB) == -1) {
        ngx_log_error(NGX_LOG_CRIT, body->tf->file.log, ngx_errno,
                      "flock(\"%V\") failed", &body->tf->file.name);
        return NGX_ERROR;
    }

    body->tf->offset += n;
    wb->pos = wb->start;
    wb->last = wb->start;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_part_hash(ngx_http_modelreg_body_t *body, off_t part_size,
    u_char *p, size_t len)
{
    size_t  n;

    while (len) {
        n = (size_t) ngx_min((off_t) len, part_size - body->part_fill);

        if (EVP_DigestUpdate(body->part_sha, p, n) != 1) {
            return NGX_ERROR;
        }

        body->part_fill += n;
        p += n;
        len -= n;

        if (body->part_fill == part_size
            && ngx_http_modelreg_part_close(body) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_part_close(ngx_http_modelreg_body_t *body)
{
    u_char        *hex, md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen;

    hex = ngx_array_push(&body->parts);

    if (hex == NULL
        || EVP_DigestFinal_ex(body->part_sha, md, &mdlen) != 1
        || EVP_DigestInit_ex(body->part_sha, EVP_sha256(), NULL) != 1)
    {
        return NGX_ERROR;
    }

    (void) ngx_hex_dump(hex, md, 32);

    body->part_fill = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_field_append(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, u_char *p, size_t len)
{
    u_char     *nd;
    size_t      max, cap, need;
    ngx_str_t  *v;

    v = &body->fields.value[body->part];
    max = ngx_http_modelreg_field_max(body->part);

    if (body->fields.overflow[body->part]) {
        return NGX_OK;
    }

    need = v->len + len;

    if (need > max) {
        body->fields.overflow[body->part] = 1;
        return NGX_OK;
    }

    /* values grow by doubling: a large limit costs nothing unless used */

    if (need > body->cap[body->part]) {
        for (cap = 64; cap < need; cap *= 2) { /* void */ }

        cap = ngx_min(cap, max);

        nd = ngx_pnalloc(r->pool, cap);
        if (nd == NULL) {
            body->failed = 1;
            return NGX_ERROR;
        }

        if (v->len) {
            ngx_memcpy(nd, v->data, v->len);
        }

        if (body->cap[body->part]) {
            /* a large block goes back now (small ones stay in the pool) */
            ngx_pfree(r->pool, v->data);
        }

        v->data = nd;
        body->cap[body->part] = cap;
    }

    ngx_memcpy(v->data + v->len, p, len);
    v->len += len;

    return NGX_OK;
}


static void
ngx_http_modelreg_sha_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


/*
 * Removes the spool files that no live process holds: those of a worker
 * that was killed or crashed mid-upload (a worker that exits removes its
 * own).  Each live file is locked from its creation on (file_flush), so
 * an unlocked file older than an instant has no owner.  Only in a spool
 * directory that is the store's alone: nginx's own temp files are not
 * locked.
 */

void
ngx_http_modelreg_spool_sweep(ngx_http_modelreg_store_t *st, ngx_log_t *log)
{
    u_char           *p, *name;
    size_t            len;
    time_t            now;
    ngx_fd_t          fd;
    ngx_str_t         path;
    ngx_dir_t         dir;
    ngx_file_info_t   fi;
    u_char            buf[NGX_MAX_PATH];

    if (!st->own_spool || st->temp_path->name.len + 2 > NGX_MAX_PATH) {
        return;
    }

    p = ngx_cpymem(buf, st->temp_path->name.data, st->temp_path->name.len);
    *p = '\0';

    path.data = buf;
    path.len = p - buf;

    if (ngx_open_dir(&path, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_open_dir_n " \"%s\" failed", buf);
        return;
    }

    *p++ = '/';
    now = ngx_time();

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            if (ngx_errno != NGX_ENOMOREFILES) {
                ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                              ngx_read_dir_n " \"%V\" failed", &path);
            }

            break;
        }

        name = ngx_de_name(&dir);
        len = ngx_de_namelen(&dir);

        if (name[0] == '.' || (size_t) (p - buf) + len + 1 > NGX_MAX_PATH) {
            continue;
        }

        ngx_memcpy(p, name, len + 1);

        fd = ngx_open_file(buf, NGX_FILE_RDONLY|NGX_FILE_NONBLOCK|O_NOFOLLOW,
                           NGX_FILE_OPEN, 0);
        if (fd == NGX_INVALID_FILE) {
            continue;
        }

        if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
            && ngx_is_file(&fi)
            && now - ngx_file_mtime(&fi) >= NGX_HTTP_MODELREG_SPOOL_STALE
            && flock(fd, LOCK_EX|LOCK_NB) == 0
            && ngx_delete_file(buf) != NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "modelreg: removed \"%s\", a spool file that a "
                          "worker which exited abnormally left", buf);
        }

        (void) ngx_close_file(fd);
    }

    (void) ngx_close_dir(&dir);
}
