
/*
 * Copyright (C) modelreg authors
 *
 * A streaming multipart/form-data parser (RFC 7578, RFC 2046): fed the
 * body in pieces of any size, it reports parts and their data through
 * callbacks and keeps nothing but one part's header block (at most
 * NGX_HTTP_MODELREG_MP_HEADER_MAX bytes), for at most
 * NGX_HTTP_MODELREG_MP_PARTS_MAX parts.  Pure logic.
 */


#ifndef _NGX_HTTP_MODELREG_MULTIPART_H_INCLUDED_
#define _NGX_HTTP_MODELREG_MULTIPART_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_MODELREG_MP_BOUNDARY_MAX  70
#define NGX_HTTP_MODELREG_MP_HEADER_MAX    8192
#define NGX_HTTP_MODELREG_MP_PARTS_MAX     64


typedef struct {
    ngx_str_t          name;
    ngx_str_t          filename;        /* decoded; valid with has_filename */
    ngx_str_t          content_type;    /* empty when absent */
    unsigned           has_name:1;
    unsigned           has_filename:1;
} ngx_http_modelreg_mp_part_t;


typedef ngx_int_t (*ngx_http_modelreg_mp_begin_pt)(void *data,
    ngx_http_modelreg_mp_part_t *part);
typedef ngx_int_t (*ngx_http_modelreg_mp_data_pt)(void *data, u_char *p,
    size_t len);
typedef ngx_int_t (*ngx_http_modelreg_mp_end_pt)(void *data);


typedef struct {
    ngx_http_modelreg_mp_begin_pt   begin;
    ngx_http_modelreg_mp_data_pt    data;
    ngx_http_modelreg_mp_end_pt     end;
    void                           *ctx;

    /* "\r\n--" boundary */
    u_char                          delim[NGX_HTTP_MODELREG_MP_BOUNDARY_MAX
                                          + 4];
    size_t                          delim_len;
    size_t                          match;

    ngx_uint_t                      state;
    ngx_uint_t                      in_part;
    ngx_uint_t                      parts;
    size_t                          hdr_len;
    const char                     *error;
    unsigned                        too_many:1;   /* the error: parts */
    u_char                          hdr[NGX_HTTP_MODELREG_MP_HEADER_MAX];
} ngx_http_modelreg_mp_t;


/* the boundary parameter of a multipart/form-data Content-Type */
ngx_int_t ngx_http_modelreg_mp_boundary(ngx_str_t *content_type,
    ngx_str_t *boundary);

ngx_int_t ngx_http_modelreg_mp_init(ngx_http_modelreg_mp_t *mp,
    ngx_str_t *boundary);

/*
 * NGX_OK, or NGX_ERROR with mp->error set; a callback's error stops it.
 * The part after NGX_HTTP_MODELREG_MP_PARTS_MAX stops it as soon as its
 * delimiter line ends (mp->too_many), before its headers are read.
 */
ngx_int_t ngx_http_modelreg_mp_feed(ngx_http_modelreg_mp_t *mp, u_char *p,
    size_t len);

/* NGX_OK when the close delimiter was seen */
ngx_int_t ngx_http_modelreg_mp_finish(ngx_http_modelreg_mp_t *mp);


#endif /* _NGX_HTTP_MODELREG_MULTIPART_H_INCLUDED_ */
