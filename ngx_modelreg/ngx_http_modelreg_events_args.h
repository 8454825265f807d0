
/*
 * Copyright (C) modelreg authors
 *
 * GET /events's arguments and cursors, and the notifications of the
 * change feed (events_args.c): pure functions, unit tested.
 *
 * A cursor says which audit events a client has seen, by the horizon of
 * the transactions that wrote them (README "Change feed"): "H" is every
 * event whose transaction id (xid8) is below H; "L.H.I" is every event
 * below L, and those from L to H with an id up to I (a page cut short).
 */


#ifndef _NGX_HTTP_MODELREG_EVENTS_ARGS_H_INCLUDED_
#define _NGX_HTTP_MODELREG_EVENTS_ARGS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_MODELREG_EVENTS_WAIT_MAX       60
#define NGX_HTTP_MODELREG_EVENTS_LIMIT_DEFAULT  100
#define NGX_HTTP_MODELREG_EVENTS_LIMIT_MAX      1000

/* "L.H.I" */
#define NGX_HTTP_MODELREG_CURSOR_LEN            (3 * NGX_INT64_LEN + 2)

/* a horizon above every transaction: "from now" */
#define NGX_HTTP_MODELREG_CURSOR_MAX            0x7fffffffffffffffULL


typedef struct {
    uint64_t                       lo;      /* seen: every xid below */
    uint64_t                       hi;      /* and below this... */
    int64_t                        last;    /* ...ids up to this one */
} ngx_http_modelreg_cursor_t;


typedef struct {
    ngx_http_modelreg_cursor_t     since;
    ngx_uint_t                     has_since;
    ngx_uint_t                     wait;    /* seconds */
    ngx_uint_t                     actions; /* a bit per action; 0: all */
    ngx_str_t                      name;    /* no data: every model */
    ngx_uint_t                     limit;
} ngx_http_modelreg_events_args_t;


/*
 * The query string into "a".  NGX_OK, NGX_ERROR, or an HTTP status with
 * "msg" set: 422 for arguments it does not know (as the lists), 400 for a
 * bad value, naming the argument.
 */
ngx_int_t ngx_http_modelreg_events_args_parse(ngx_pool_t *pool,
    ngx_str_t *query, ngx_http_modelreg_events_args_t *a, ngx_str_t *msg);

/* NGX_OK or NGX_DECLINED (not a cursor) */
ngx_int_t ngx_http_modelreg_cursor_parse(u_char *p, size_t len,
    ngx_http_modelreg_cursor_t *c);

/* at most NGX_HTTP_MODELREG_CURSOR_LEN bytes; "H" when lo == hi */
u_char *ngx_http_modelreg_cursor_print(u_char *p,
    ngx_http_modelreg_cursor_t *c);

/*
 * The audit actions (sql/005's CHECK), by index (a bit of "actions"),
 * up to a null string
 */
extern ngx_str_t  ngx_http_modelreg_events_actions_all[];

/* an audit action's index, -1 when it is none */
ngx_int_t ngx_http_modelreg_events_action(u_char *p, size_t len);

/*
 * A notification of channel modelreg_events, "<id> <action>[ <name>]":
 * NGX_OK, or NGX_DECLINED when it is not one.
 */
ngx_int_t ngx_http_modelreg_events_notice(u_char *p, size_t len,
    int64_t *id, ngx_int_t *action, ngx_str_t *name);

/* whether an event of "action" (-1: unknown) on "name" is one "a" asks */
ngx_uint_t ngx_http_modelreg_events_match(ngx_http_modelreg_events_args_t *a,
    ngx_int_t action, ngx_str_t *name);


#endif /* _NGX_HTTP_MODELREG_EVENTS_ARGS_H_INCLUDED_ */
