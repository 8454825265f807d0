
/*
 * Copyright (C) modelreg authors
 *
 * libcurl's multi interface on nginx's event loop: its sockets wrapped
 * as nginx connections (ngx_http_modelreg_conn.c), its timer an nginx
 * timer.  A finished transfer is handed back through its done() pointer,
 * so this file calls no user of it by name.
 */


#include "ngx_http_modelreg_curl.h"
#include "ngx_http_modelreg_conn.h"


typedef struct {
    ngx_queue_t        queue;
    curl_socket_t      fd;
    ngx_connection_t  *c;
} ngx_http_modelreg_curl_sock_t;


static int ngx_http_modelreg_curl_socket(CURL *easy, curl_socket_t fd,
    int what, void *userp, void *socketp);
static int ngx_http_modelreg_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static int ngx_http_modelreg_curl_close(void *clientp, curl_socket_t fd);
static void ngx_http_modelreg_curl_release(ngx_http_modelreg_curl_sock_t *sk,
    ngx_uint_t closing);
static void ngx_http_modelreg_curl_event(ngx_event_t *ev);
static void ngx_http_modelreg_curl_timeout(ngx_event_t *ev);
static void ngx_http_modelreg_curl_hold(ngx_event_t *ev);
static void ngx_http_modelreg_curl_check(void);
static size_t ngx_http_modelreg_curl_write(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static ngx_int_t ngx_http_modelreg_curl_grow(ngx_http_modelreg_curl_t *cu,
    size_t len);
static void ngx_http_modelreg_curl_cleanup(void *data);
#if (NGX_DEBUG)
static u_char *ngx_http_modelreg_curl_url(ngx_http_modelreg_curl_t *cu);
static const char *ngx_http_modelreg_curl_method(
    ngx_http_modelreg_curl_t *cu);
#endif


/* a body buffer's first allocation; it doubles from there */
#define NGX_HTTP_MODELREG_CURL_BUF              4096

/* a transfer's limits unless its user sets others */
#define NGX_HTTP_MODELREG_CURL_CONNECT_TIMEOUT  5000
#define NGX_HTTP_MODELREG_CURL_TIMEOUT          60000


/* one multi handle per worker */

static CURLM        *ngx_http_modelreg_multi;
static ngx_event_t   ngx_http_modelreg_curl_tev;
static ngx_queue_t   ngx_http_modelreg_curl_socks;
static ngx_log_t    *ngx_http_modelreg_curl_log;


ngx_int_t
ngx_http_modelreg_curl_init(ngx_cycle_t *cycle)
{
    if (ngx_http_modelreg_multi) {
        return NGX_OK;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "modelreg: curl_global_init() failed");
        return NGX_ERROR;
    }

    ngx_http_modelreg_multi = curl_multi_init();
    if (ngx_http_modelreg_multi == NULL) {
        return NGX_ERROR;
    }

    ngx_http_modelreg_curl_log = cycle->log;
    ngx_queue_init(&ngx_http_modelreg_curl_socks);

    ngx_http_modelreg_curl_tev.handler = ngx_http_modelreg_curl_timeout;
    ngx_http_modelreg_curl_tev.log = cycle->log;
    ngx_http_modelreg_curl_tev.data = &ngx_http_modelreg_curl_tev;
    ngx_http_modelreg_curl_tev.cancelable = 1;

    curl_multi_setopt(ngx_http_modelreg_multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_modelreg_curl_socket);
    curl_multi_setopt(ngx_http_modelreg_multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_modelreg_curl_timer);

    return NGX_OK;
}


void
ngx_http_modelreg_curl_exit(ngx_cycle_t *cycle)
{
    if (ngx_http_modelreg_multi == NULL) {
        return;
    }

    if (ngx_http_modelreg_curl_tev.timer_set) {
        ngx_del_timer(&ngx_http_modelreg_curl_tev);
    }

    curl_multi_cleanup(ngx_http_modelreg_multi);
    ngx_http_modelreg_multi = NULL;
}


ngx_http_modelreg_curl_t *
ngx_http_modelreg_curl_create(ngx_pool_t *pool, ngx_log_t *log, size_t max)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_modelreg_curl_t  *cu;

    cu = ngx_pcalloc(pool, sizeof(ngx_http_modelreg_curl_t));
    cln = ngx_pool_cleanup_add(pool, 0);

    if (cu == NULL || cln == NULL) {
        return NULL;
    }

    /* (no memory for the body until bytes arrive) */

    cu->body = ngx_calloc_buf(pool);
    cu->max = max;
    cu->easy = curl_easy_init();

    if (cu->body == NULL || cu->easy == NULL) {
        if (cu->easy) {
            curl_easy_cleanup(cu->easy);
        }

        return NULL;
    }

    cln->handler = ngx_http_modelreg_curl_cleanup;
    cln->data = cu;

    cu->pool = pool;
    cu->log = log;

    curl_easy_setopt(cu->easy, CURLOPT_PRIVATE, cu);
    curl_easy_setopt(cu->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu->easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_modelreg_curl_write);
    curl_easy_setopt(cu->easy, CURLOPT_WRITEDATA, cu);
    curl_easy_setopt(cu->easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_http_modelreg_curl_close);
    curl_easy_setopt(cu->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) NGX_HTTP_MODELREG_CURL_CONNECT_TIMEOUT);
    curl_easy_setopt(cu->easy, CURLOPT_TIMEOUT_MS,
                     (long) NGX_HTTP_MODELREG_CURL_TIMEOUT);

    return cu;
}


/* "name: value"; the value is copied */

ngx_int_t
ngx_http_modelreg_curl_header(ngx_http_modelreg_curl_t *cu, const char *name,
    ngx_str_t *value)
{
    u_char             *p;
    size_t              len;
    struct curl_slist  *l;

    len = ngx_strlen(name) + 2 + value->len + 1;

    p = ngx_pnalloc(cu->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(p, "%s: %V%Z", name, value);

    l = curl_slist_append(cu->headers, (char *) p);

    ngx_explicit_memzero(p, len);   /* it may be a secret */

    if (l == NULL) {
        return NGX_ERROR;
    }

    cu->headers = l;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_curl_start(ngx_http_modelreg_curl_t *cu)
{
    if (ngx_http_modelreg_multi == NULL) {
        return NGX_ERROR;
    }

    if (cu->headers) {
        curl_easy_setopt(cu->easy, CURLOPT_HTTPHEADER, cu->headers);
    }

    if (curl_multi_add_handle(ngx_http_modelreg_multi, cu->easy) != CURLM_OK)
    {
        return NGX_ERROR;
    }

    cu->running = 1;

    /*
     * libcurl's own timer is cancelable (it is armed for idle work too),
     * and a worker that is shutting down (a reload) exits once only
     * cancelable timers are left: a transfer holds one that is not,
     * re-armed until it ends, which its own CURLOPT_TIMEOUT bounds.
     */

    cu->hold.handler = ngx_http_modelreg_curl_hold;
    cu->hold.data = cu;
    cu->hold.log = cu->log;
    ngx_add_timer(&cu->hold, NGX_HTTP_MODELREG_CURL_TIMEOUT);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cu->log, 0,
                   "modelreg curl: start %s %s",
                   ngx_http_modelreg_curl_method(cu),
                   ngx_http_modelreg_curl_url(cu));

    return NGX_OK;
}


static int
ngx_http_modelreg_curl_socket(CURL *easy, curl_socket_t fd, int what,
    void *userp, void *socketp)
{
    ngx_connection_t               *c;
    ngx_http_modelreg_curl_sock_t  *sk = socketp;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_http_modelreg_curl_log, 0,
                   "modelreg curl: socket %d poll %d", (int) fd, what);

    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            ngx_http_modelreg_curl_release(sk, 0);
            curl_multi_assign(ngx_http_modelreg_multi, fd, NULL);
        }

        return 0;
    }

    if (sk == NULL) {
        sk = ngx_alloc(sizeof(ngx_http_modelreg_curl_sock_t),
                       ngx_http_modelreg_curl_log);
        if (sk == NULL) {
            return -1;
        }

        c = ngx_http_modelreg_conn_wrap(fd, ngx_http_modelreg_curl_log,
                                        ngx_http_modelreg_curl_event, sk);
        if (c == NULL) {
            ngx_free(sk);
            return -1;
        }

        sk->fd = fd;
        sk->c = c;
        ngx_queue_insert_tail(&ngx_http_modelreg_curl_socks, &sk->queue);

        curl_multi_assign(ngx_http_modelreg_multi, fd, sk);
    }

    if (ngx_http_modelreg_conn_want(sk->c, what & CURL_POLL_IN,
                                    what & CURL_POLL_OUT)
        != NGX_OK)
    {
        return -1;
    }

    return 0;
}


/* libcurl closes a socket: forget it first, if it was still watched */

static int
ngx_http_modelreg_curl_close(void *clientp, curl_socket_t fd)
{
    ngx_queue_t                    *q;
    ngx_http_modelreg_curl_sock_t  *sk;

    for (q = ngx_queue_head(&ngx_http_modelreg_curl_socks);
         q != ngx_queue_sentinel(&ngx_http_modelreg_curl_socks);
         q = ngx_queue_next(q))
    {
        sk = ngx_queue_data(q, ngx_http_modelreg_curl_sock_t, queue);

        if (sk->fd == fd) {
            ngx_http_modelreg_curl_release(sk, 1);
            curl_multi_assign(ngx_http_modelreg_multi, fd, NULL);
            break;
        }
    }

    return close(fd);
}


static void
ngx_http_modelreg_curl_release(ngx_http_modelreg_curl_sock_t *sk,
    ngx_uint_t closing)
{
    ngx_http_modelreg_conn_forget(sk->c, closing);

    ngx_queue_remove(&sk->queue);
    ngx_free(sk);
}


static int
ngx_http_modelreg_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    if (timeout_ms < 0) {
        if (ngx_http_modelreg_curl_tev.timer_set) {
            ngx_del_timer(&ngx_http_modelreg_curl_tev);
        }

        return 0;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, ngx_http_modelreg_curl_log, 0,
                   "modelreg curl: timer %l ms", timeout_ms);

    /* (0 means "now": on the next turn of the loop, not from in here) */

    ngx_add_timer(&ngx_http_modelreg_curl_tev, timeout_ms ? timeout_ms : 1);

    return 0;
}


static void
ngx_http_modelreg_curl_event(ngx_event_t *ev)
{
    int                             running;
    curl_socket_t                   fd;
    ngx_connection_t               *c;
    ngx_http_modelreg_curl_sock_t  *sk;

    c = ev->data;
    sk = c->data;
    fd = sk->fd;

    /* (sk may be gone when this returns) */

    curl_multi_socket_action(ngx_http_modelreg_multi, fd,
                             ev->write ? CURL_CSELECT_OUT : CURL_CSELECT_IN,
                             &running);

    ngx_http_modelreg_curl_check();
}


static void
ngx_http_modelreg_curl_timeout(ngx_event_t *ev)
{
    int  running;

    curl_multi_socket_action(ngx_http_modelreg_multi, CURL_SOCKET_TIMEOUT, 0,
                             &running);

    ngx_http_modelreg_curl_check();
}


static void
ngx_http_modelreg_curl_hold(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "modelreg curl: a transfer still runs");

    ngx_add_timer(ev, NGX_HTTP_MODELREG_CURL_TIMEOUT);
}


static void
ngx_http_modelreg_curl_check(void)
{
    int                        left;
    CURL                      *easy;
    CURLMsg                   *msg;
    ngx_http_modelreg_curl_t  *cu;

    while ((msg = curl_multi_info_read(ngx_http_modelreg_multi, &left))) {

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        cu = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &cu);

        cu->result = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &cu->status);

        curl_multi_remove_handle(ngx_http_modelreg_multi, easy);
        cu->running = 0;

        if (cu->hold.timer_set) {
            ngx_del_timer(&cu->hold);
        }

#if (NGX_DEBUG)
        if (cu->result == CURLE_OPERATION_TIMEDOUT) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cu->log, 0,
                           "modelreg curl: timeout %s %s",
                           ngx_http_modelreg_curl_method(cu),
                           ngx_http_modelreg_curl_url(cu));

        } else {
            ngx_log_debug6(NGX_LOG_DEBUG_HTTP, cu->log, 0,
                           "modelreg curl: done %s %s: %l, curl %d \"%s\", "
                           "%uz bytes kept",
                           ngx_http_modelreg_curl_method(cu),
                           ngx_http_modelreg_curl_url(cu), cu->status,
                           (int) cu->result, curl_easy_strerror(cu->result),
                           (size_t) (cu->body->last - cu->body->pos));
        }
#endif

        cu->done(cu);
    }
}


static size_t
ngx_http_modelreg_curl_write(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    ngx_http_modelreg_curl_t *cu = userdata;

    long        status;
    size_t      n;
    ngx_int_t   rc;
    ngx_buf_t  *b;

    n = size * nmemb;

    if (cu->sink) {
        status = 0;
        curl_easy_getinfo(cu->easy, CURLINFO_RESPONSE_CODE, &status);

        if (status == 200) {
            /* 0: libcurl stops the transfer with CURLE_WRITE_ERROR */
            return cu->sink(cu, (u_char *) ptr, n) == NGX_OK ? n : 0;
        }
    }

    b = cu->body;

    if ((size_t) (b->end - b->last) < n) {
        rc = ngx_http_modelreg_curl_grow(cu, n);

        if (rc == NGX_ERROR || (rc == NGX_DECLINED && cu->whole)) {
            return 0;
        }
    }

    if (b->end > b->last) {
        b->last = ngx_cpymem(b->last, ptr,
                             ngx_min(n, (size_t) (b->end - b->last)));
    }

    return n;                   /* beyond "max": read and dropped */
}


/*
 * Room for "len" more bytes: the buffer doubles (from 4 KiB) up to "max",
 * so memory follows what the peer sends, not what it might.  NGX_DECLINED
 * when that would pass "max" (then the buffer is grown to "max", unless
 * the transfer must be whole).
 */

static ngx_int_t
ngx_http_modelreg_curl_grow(ngx_http_modelreg_curl_t *cu, size_t len)
{
    u_char     *p;
    size_t      used, cap, size;
    ngx_int_t   rc;
    ngx_buf_t  *b;

    b = cu->body;
    used = b->last - b->start;
    cap = b->end - b->start;

    if (len > cu->max - used) {
        cu->too_large = 1;

        if (cu->whole || cap == cu->max) {
            return NGX_DECLINED;
        }

        size = cu->max;
        rc = NGX_DECLINED;

    } else {
        size = ngx_max(cap * 2, (size_t) NGX_HTTP_MODELREG_CURL_BUF);
        size = ngx_min(ngx_max(size, used + len), cu->max);
        rc = NGX_OK;
    }

    p = ngx_alloc(size, cu->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (b->start) {
        ngx_memcpy(p, b->start, used);
        ngx_free(b->start);
    }

    b->start = p;
    b->pos = p;
    b->last = p + used;
    b->end = p + size;

    return rc;
}


/* the transfer is of no more use: its handle and buffers go now */

void
ngx_http_modelreg_curl_free(ngx_http_modelreg_curl_t *cu)
{
    ngx_http_modelreg_curl_cleanup(cu);
}


static void
ngx_http_modelreg_curl_cleanup(void *data)
{
    ngx_http_modelreg_curl_t *cu = data;

    if (cu->freed) {
        return;
    }

    cu->freed = 1;

    if (cu->running && ngx_http_modelreg_multi) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cu->log, 0,
                       "modelreg curl: cancel %s %s",
                       ngx_http_modelreg_curl_method(cu),
                       ngx_http_modelreg_curl_url(cu));

        curl_multi_remove_handle(ngx_http_modelreg_multi, cu->easy);
        cu->running = 0;
    }

    if (cu->hold.timer_set) {
        ngx_del_timer(&cu->hold);
    }

    curl_easy_cleanup(cu->easy);

    if (cu->headers) {
        curl_slist_free_all(cu->headers);
    }

    if (cu->body->start) {
        ngx_free(cu->body->start);
        cu->body->start = NULL;
        cu->body->pos = NULL;
        cu->body->last = NULL;
        cu->body->end = NULL;
    }
}


#if (NGX_DEBUG)

/*
 * For the debug log: the URL as set (libcurl keeps it), without any
 * user:password@ (the tokens themselves travel in headers, never shown).
 */

static u_char *
ngx_http_modelreg_curl_url(ngx_http_modelreg_curl_t *cu)
{
    char    *url;
    u_char  *p, *at, *host, *out;
    size_t   len;

    url = NULL;
    curl_easy_getinfo(cu->easy, CURLINFO_EFFECTIVE_URL, &url);

    if (url == NULL) {
        return (u_char *) "?";
    }

    p = (u_char *) ngx_strstr(url, "://");

    if (p == NULL) {
        return (u_char *) url;
    }

    host = p + 3;
    len = strcspn((char *) host, "/?#");
    at = ngx_strlchr(host, host + len, '@');

    if (at == NULL) {
        return (u_char *) url;
    }

    out = ngx_pnalloc(cu->pool, ngx_strlen(url));
    if (out == NULL) {
        return (u_char *) "?";
    }

    p = ngx_cpymem(out, url, host - (u_char *) url);
    ngx_cpystrn(p, at + 1, ngx_strlen(at + 1) + 1);

    return out;
}


/* a POST's method is known only to its user: libcurl tells it late */

static const char *
ngx_http_modelreg_curl_method(ngx_http_modelreg_curl_t *cu)
{
    char  *m;

    if (cu->method) {
        return cu->method;
    }

    m = NULL;
    curl_easy_getinfo(cu->easy, CURLINFO_EFFECTIVE_METHOD, &m);

    return m ? m : "GET";
}

#endif
