
/*
 * Copyright (C) modelreg authors
 *
 * The "fs" store: objects are files under a root directory.  An upload is
 * spooled in <root>/.tmp, then made durable and visible in one step
 * (fsync, rename, fsync of the directory) in nginx's thread pool, so a
 * large file never stalls the event loop.  Downloads are file buffers:
 * nginx's sendfile, range and not-modified filters do the rest.
 */


#include "ngx_http_modelreg.h"


typedef struct {
    ngx_http_request_t               *request;
    ngx_http_modelreg_store_done_pt   done;
    ngx_temp_file_t                  *tf;
    u_char                           *to;
    u_char                           *dir1;
    u_char                           *dir2;
    const char                       *op;
    ngx_err_t                         err;
#if (NGX_THREADS)
    ngx_event_t                       hold;
#endif
} ngx_http_modelreg_fs_put_t;


/* how often a put's hold on its worker is renewed while its thread runs */
#define NGX_HTTP_MODELREG_FS_HOLD  60000


static ngx_int_t ngx_http_modelreg_fs_put(ngx_http_request_t *r,
    ngx_http_modelreg_body_t *body, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done);
static void ngx_http_modelreg_fs_put_work(void *data, ngx_log_t *log);
static void ngx_http_modelreg_fs_put_done(ngx_http_modelreg_fs_put_t *ctx);
#if (NGX_THREADS)
static void ngx_http_modelreg_fs_put_event(ngx_event_t *ev);
static void ngx_http_modelreg_fs_put_hold(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_modelreg_fs_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t **out);
static ngx_int_t ngx_http_modelreg_fs_remove(ngx_http_request_t *r,
    ngx_str_t *key, ngx_http_modelreg_store_done_pt done);
static ngx_int_t ngx_http_modelreg_fs_remove_bg(ngx_http_modelreg_store_t *st,
    ngx_str_t *key, ngx_log_t *log, ngx_http_modelreg_store_bg_pt done,
    void *data);
static ngx_int_t ngx_http_modelreg_fs_unlink(ngx_http_modelreg_store_t *st,
    ngx_str_t *key, ngx_log_t *log);
static ngx_int_t ngx_http_modelreg_fs_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done);
static u_char *ngx_http_modelreg_fs_path(ngx_pool_t *pool,
    ngx_http_modelreg_store_t *st, ngx_str_t *key, size_t cut);
static void ngx_http_modelreg_fs_keep(ngx_pool_t *pool, ngx_fd_t fd);


static ngx_http_modelreg_conf_arg_t  ngx_http_modelreg_fs_args[] = {

    { ngx_string("gc_interval"),
      ngx_http_modelreg_conf_set_msec,
      offsetof(ngx_http_modelreg_store_t, gc_interval),
      NULL },

      ngx_http_modelreg_null_arg
};


/* modelreg_storage fs DIR [gc_interval=T] */

char *
ngx_http_modelreg_store_fs_conf(ngx_conf_t *cf, ngx_http_modelreg_store_t *st,
    ngx_str_t *args, ngx_uint_t n)
{
    ngx_path_t  *root;
#if (NGX_THREADS)
    ngx_str_t    pool_name = ngx_string("default");
#endif

    if (n < 1 || args[0].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"modelreg_storage fs\" needs a directory");
        return NGX_CONF_ERROR;
    }

    st->root = args[0];

    while (st->root.len > 1 && st->root.data[st->root.len - 1] == '/') {
        st->root.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &st->root, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_modelreg_conf_parse(cf, ngx_http_modelreg_fs_args, &args[1],
                                     n - 1, st, NULL)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* nginx creates both at start, owned by the worker user */

    root = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    st->temp_path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));

    if (root == NULL || st->temp_path == NULL) {
        return NGX_CONF_ERROR;
    }

    root->name = st->root;
    root->conf_file = cf->conf_file->file.name.data;
    root->line = cf->conf_file->line;

    st->temp_path->name.len = st->root.len + sizeof("/.tmp") - 1;
    st->temp_path->name.data = ngx_pnalloc(cf->pool,
                                           st->temp_path->name.len + 1);
    if (st->temp_path->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(st->temp_path->name.data, "%V/.tmp%Z", &st->root);
    st->own_spool = 1;
    st->temp_path->conf_file = root->conf_file;
    st->temp_path->line = root->line;

    if (ngx_add_path(cf, &root) != NGX_OK
        || ngx_add_path(cf, &st->temp_path) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    st->thread_pool = ngx_thread_pool_add(cf, &pool_name);
    if (st->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#endif

    ngx_str_set(&st->type, "fs");
    ngx_str_set(&st->url_prefix, "fs:");

    st->put = ngx_http_modelreg_fs_put;
    st->serve = ngx_http_modelreg_fs_serve;
    st->remove = ngx_http_modelreg_fs_remove;
    st->remove_bg = ngx_http_modelreg_fs_remove_bg;
    st->ready = ngx_http_modelreg_fs_ready;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_modelreg_fs_put(ngx_http_request_t *r, ngx_http_modelreg_body_t *body,
    ngx_str_t *key, ngx_http_modelreg_store_done_pt done)
{
    u_char                         *p, *q, *last;
    ngx_http_modelreg_fs_put_t     *ctx;
    ngx_http_modelreg_main_conf_t  *mcf;
#if (NGX_THREADS)
    ngx_thread_task_t              *task;
#endif

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

#if (NGX_THREADS)
    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_modelreg_fs_put_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    ctx = task->ctx;
#else
    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_modelreg_fs_put_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }
#endif

    ctx->request = r;
    ctx->done = done;
    ctx->tf = body->tf;

    /* <root>/<id>, <root>/<id>/<nonce>, <root>/<id>/<nonce>/<name> */

    ctx->to = ngx_http_modelreg_fs_path(r->pool, mcf->store, key, 0);
    if (ctx->to == NULL) {
        return NGX_ERROR;
    }

    /* the key is not NUL-terminated: bounded searches */

    last = key->data + key->len;
    p = ngx_strlchr(key->data, last, '/');
    q = (p == NULL) ? NULL : ngx_strlchr(p + 1, last, '/');

    if (q == NULL) {
        return NGX_ERROR;
    }

    ctx->dir2 = ngx_http_modelreg_fs_path(r->pool, mcf->store, key, last - q);
    ctx->dir1 = ngx_http_modelreg_fs_path(r->pool, mcf->store, key, last - p);

    if (ctx->dir1 == NULL || ctx->dir2 == NULL) {
        return NGX_ERROR;
    }

#if (NGX_THREADS)
    task->handler = ngx_http_modelreg_fs_put_work;
    task->event.handler = ngx_http_modelreg_fs_put_event;
    task->event.data = ctx;

    if (ngx_thread_task_post(mcf->store->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg fs: put \"%s\" posted to a thread", ctx->to);

    /* the request stays alive while a thread holds its memory */

    r->main->blocked++;

    /*
     * A worker that is shutting down (a reload) exits once no timer but
     * cancelable ones is left, whatever requests it still has: a timer
     * that is not cancelable keeps it until the thread is back, else the
     * request would be cut and its renamed object left without a row.
     */

    ctx->hold.handler = ngx_http_modelreg_fs_put_hold;
    ctx->hold.data = ctx;
    ctx->hold.log = r->connection->log;
    ngx_add_timer(&ctx->hold, NGX_HTTP_MODELREG_FS_HOLD);

    return NGX_OK;
#else
    ngx_http_modelreg_fs_put_work(ctx, r->connection->log);
    ngx_http_modelreg_fs_put_done(ctx);

    return NGX_OK;
#endif
}


/* in a thread: touches no nginx structure, only the file system */

static void
ngx_http_modelreg_fs_put_work(void *data, ngx_log_t *log)
{
    ngx_http_modelreg_fs_put_t  *ctx = data;

    int  fd;

    if (fsync(ctx->tf->file.fd) == -1) {
        ctx->op = "fsync";
        goto failed;
    }

    if (mkdir((char *) ctx->dir1, 0755) == -1 && ngx_errno != NGX_EEXIST) {
        ctx->op = "mkdir";
        goto failed;
    }

    if (mkdir((char *) ctx->dir2, 0755) == -1 && ngx_errno != NGX_EEXIST) {
        ctx->op = "mkdir";
        goto failed;
    }

    if (rename((char *) ctx->tf->file.name.data, (char *) ctx->to) == -1) {
        ctx->op = "rename";
        goto failed;
    }

    fd = open((char *) ctx->dir2, O_RDONLY|O_DIRECTORY);

    if (fd == -1 || fsync(fd) == -1) {
        ctx->op = "fsync of the directory";
        ctx->err = ngx_errno;

        if (fd != -1) {
            (void) close(fd);
        }

        (void) unlink((char *) ctx->to);
        return;
    }

    (void) close(fd);

    return;

failed:

    ctx->err = ngx_errno;
}


#if (NGX_THREADS)

static void
ngx_http_modelreg_fs_put_event(ngx_event_t *ev)
{
    ngx_http_modelreg_fs_put_t  *ctx = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "modelreg fs: put \"%s\" back from its thread", ctx->to);

    ctx->request->main->blocked--;

    if (ctx->hold.timer_set) {
        ngx_del_timer(&ctx->hold);
    }

    ngx_http_modelreg_fs_put_done(ctx);
}


static void
ngx_http_modelreg_fs_put_hold(ngx_event_t *ev)
{
    ngx_http_modelreg_fs_put_t  *ctx = ev->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "modelreg fs: put \"%s\" still in its thread", ctx->to);

    ngx_add_timer(ev, NGX_HTTP_MODELREG_FS_HOLD);
}

#endif


static void
ngx_http_modelreg_fs_put_done(ngx_http_modelreg_fs_put_t *ctx)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->op) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, ctx->err,
                      "modelreg: cannot store \"%s\": %s failed",
                      ctx->to, ctx->op);
        ctx->done(r, NGX_ERROR);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg fs: \"%s\" stored", ctx->to);

    /* the object is in place: the temp file's cleanup must not delete */

    ngx_http_modelreg_fs_keep(r->pool, ctx->tf->file.fd);

    ctx->done(r, NGX_OK);
}


/* the file, opened and checked, as a file buffer */

static ngx_int_t
ngx_http_modelreg_fs_serve(ngx_http_request_t *r,
    ngx_http_modelreg_object_t *obj, ngx_chain_t **out)
{
    u_char                         *path;
    ngx_fd_t                        fd;
    ngx_err_t                       err;
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl;
    ngx_file_info_t                 fi;
    ngx_pool_cleanup_t             *cln;
    ngx_pool_cleanup_file_t        *clnf;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    path = ngx_http_modelreg_fs_path(r->pool, mcf->store, &obj->key, 0);
    if (path == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_pool_cleanup_file_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "modelreg fs: \"%s\" is not there", path);
            return NGX_HTTP_NOT_FOUND;
        }

        ngx_log_error(NGX_LOG_CRIT, r->connection->log, err,
                      ngx_open_file_n " \"%s\" failed", path);
        return NGX_DECLINED;
    }

    cln->handler = ngx_pool_cleanup_file;
    clnf = cln->data;
    clnf->fd = fd;
    clnf->name = path;
    clnf->log = r->pool->log;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) != obj->size)
    {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, ngx_errno,
                      "modelreg: the object \"%s\" is not what was stored",
                      path);
        return NGX_DECLINED;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg fs: serve \"%s\", %O bytes", path, obj->size);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = obj->size;
    r->headers_out.last_modified_time = ngx_file_mtime(&fi);

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file = ngx_pcalloc(r->pool, sizeof(ngx_file_t));
    if (b->file == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->file_pos = 0;
    b->file_last = obj->size;
    b->in_file = b->file_last ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    b->sync = b->in_file ? 0 : 1;

    b->file->fd = fd;
    b->file->name.data = path;
    b->file->name.len = ngx_strlen(path);
    b->file->log = r->connection->log;
    b->file->directio = 0;

    cl->buf = b;
    cl->next = NULL;

    *out = cl;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_fs_remove(ngx_http_request_t *r, ngx_str_t *key,
    ngx_http_modelreg_store_done_pt done)
{
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);

    done(r, ngx_http_modelreg_fs_unlink(mcf->store, key, r->connection->log));

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_fs_remove_bg(ngx_http_modelreg_store_t *st, ngx_str_t *key,
    ngx_log_t *log, ngx_http_modelreg_store_bg_pt done, void *data)
{
    done(data, ngx_http_modelreg_fs_unlink(st, key, log));

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_fs_unlink(ngx_http_modelreg_store_t *st, ngx_str_t *key,
    ngx_log_t *log)
{
    u_char      *p;
    ngx_uint_t   n;
    u_char       path[NGX_MAX_PATH];

    if (st->root.len + 1 + key->len + 1 > NGX_MAX_PATH) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(path, "%V/%V%Z", &st->root, key);

    ngx_log_debug1(NGX_LOG_DEBUG_CORE, log, 0,
                   "modelreg fs: unlink \"%s\"", path);

    if (unlink((char *) path) == -1 && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "modelreg: unlink(\"%s\") failed", path);
        return NGX_ERROR;
    }

    /* and the <id>/<nonce> and <id> directories, if now empty */

    for (n = 0; n < 2; n++) {
        while (p > path && *p != '/') {
            p--;
        }

        if (p <= path + st->root.len) {
            break;
        }

        *p = '\0';
        (void) rmdir((char *) path);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_fs_ready(ngx_http_request_t *r,
    ngx_http_modelreg_store_done_pt done)
{
    u_char                          buf[NGX_MAX_PATH];
    ngx_http_modelreg_store_t      *st;
    ngx_http_modelreg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_modelreg_module);
    st = mcf->store;

    if (st->root.len + sizeof("/.tmp") > NGX_MAX_PATH) {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(buf, "%V/.tmp%Z", &st->root);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "modelreg fs: check \"%s\"", buf);

    if (access((char *) buf, W_OK|X_OK) == -1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "modelreg: the store \"%V\" is not writable",
                      &st->root);
        done(r, NGX_ERROR);
        return NGX_OK;
    }

    done(r, NGX_OK);

    return NGX_OK;
}


/* "<root>/<key>" without its last "cut" bytes, NUL-terminated */

static u_char *
ngx_http_modelreg_fs_path(ngx_pool_t *pool, ngx_http_modelreg_store_t *st,
    ngx_str_t *key, size_t cut)
{
    u_char     *path;
    ngx_str_t   k;

    k.data = key->data;
    k.len = key->len - cut;

    path = ngx_pnalloc(pool, st->root.len + 1 + k.len + 1);
    if (path == NULL) {
        return NULL;
    }

    ngx_sprintf(path, "%V/%V%Z", &st->root, &k);

    return path;
}


/* turn the temp file's "delete on cleanup" into "close on cleanup" */

static void
ngx_http_modelreg_fs_keep(ngx_pool_t *pool, ngx_fd_t fd)
{
    ngx_pool_cleanup_t       *c;
    ngx_pool_cleanup_file_t  *cf;

    for (c = pool->cleanup; c; c = c->next) {
        if (c->handler == ngx_pool_delete_file) {
            cf = c->data;

            if (cf->fd == fd) {
                c->handler = ngx_pool_cleanup_file;
                return;
            }
        }
    }
}
