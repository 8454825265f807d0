
/*
 * Copyright (C) modelreg authors
 */


#include "ngx_http_modelreg_conn.h"


ngx_connection_t *
ngx_http_modelreg_conn_wrap(ngx_socket_t fd, ngx_log_t *log,
    ngx_event_handler_pt handler, void *data)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->data = data;
    c->read->handler = handler;
    c->write->handler = handler;
    c->read->log = c->log;
    c->write->log = c->log;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, log, 0,
                   "modelreg conn: fd:%d watched", fd);

    return c;
}


ngx_int_t
ngx_http_modelreg_conn_want(ngx_connection_t *c, ngx_uint_t read,
    ngx_uint_t write)
{
    ngx_event_t  *rev, *wev;

    rev = c->read;
    wev = c->write;

    if (read && !rev->active) {
        if (ngx_add_event(rev, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (!read && rev->active) {
        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (write && !wev->active) {
        if (ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (!write && wev->active) {
        if (ngx_del_event(wev, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_file_uniq_t
ngx_http_modelreg_conn_uniq(ngx_socket_t fd)
{
    ngx_file_info_t  fi;

    /* 0 is no socket's inode: a closed fd reads as another socket */

    if (fd == (ngx_socket_t) -1 || ngx_fd_info(fd, &fi) == -1) {
        return 0;
    }

    return ngx_file_uniq(&fi);
}


void
ngx_http_modelreg_conn_forget(ngx_connection_t *c, ngx_uint_t closing)
{
    ngx_uint_t  flags;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "modelreg conn: fd:%d let go%s",
                   c->fd, closing ? ", its library closes it" : "");

    /* NGX_CLOSE_EVENT: the kernel drops a closed fd from epoll itself */

    flags = closing ? NGX_CLOSE_EVENT : 0;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}
