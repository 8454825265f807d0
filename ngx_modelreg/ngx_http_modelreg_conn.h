
/*
 * Copyright (C) modelreg authors
 *
 * Sockets that a library owns (libpq's, libcurl's) watched by nginx:
 * level-triggered, since the library may leave bytes in the kernel, and
 * let go of without closing, since the library closes them.
 */


#ifndef _NGX_HTTP_MODELREG_CONN_H_INCLUDED_
#define _NGX_HTTP_MODELREG_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


ngx_connection_t *ngx_http_modelreg_conn_wrap(ngx_socket_t fd,
    ngx_log_t *log, ngx_event_handler_pt handler, void *data);
ngx_int_t ngx_http_modelreg_conn_want(ngx_connection_t *c, ngx_uint_t read,
    ngx_uint_t write);

/*
 * The socket's identity.  A library that moves to another socket (libpq,
 * to its next host) closes the old one first, so the new one mostly gets
 * the same number, while epoll forgot the old one: compare this, not fds.
 */
ngx_file_uniq_t ngx_http_modelreg_conn_uniq(ngx_socket_t fd);

/* "closing": the library closes the fd right after (or did already) */
void ngx_http_modelreg_conn_forget(ngx_connection_t *c, ngx_uint_t closing);


#endif /* _NGX_HTTP_MODELREG_CONN_H_INCLUDED_ */
