
/*
 * Copyright (C) modelreg authors
 *
 * The key=value arguments of modelreg_database, modelreg_storage and
 * modelreg_geti, the way nginx's ngx_conf_set_*_slot handlers work: a
 * table of {name, setter, offset, post}, each setter storing its value
 * at conf + offset.  A setter returns NGX_CONF_OK, NGX_CONF_ERROR (it has
 * said why), or a reason the parser reports with the whole argument and
 * the directive's name: invalid value "pool=0" in "modelreg_database".
 */


#ifndef _NGX_HTTP_MODELREG_CONF_H_INCLUDED_
#define _NGX_HTTP_MODELREG_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_http_modelreg_conf_arg_s  ngx_http_modelreg_conf_arg_t;

typedef char *(*ngx_http_modelreg_conf_set_pt)(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);


struct ngx_http_modelreg_conf_arg_s {
    ngx_str_t                        name;      /* before the "=" */
    ngx_http_modelreg_conf_set_pt    set;
    ngx_uint_t                       offset;    /* in the parsed conf */
    void                            *post;      /* the setter's own */
};

#define ngx_http_modelreg_null_arg  { ngx_null_string, NULL, 0, NULL }

/* where a setter stores: a "type" at conf + offset */
#define ngx_http_modelreg_conf_field(type, conf, arg)                        \
    ((type *) ((char *) (conf) + (arg)->offset))


/* the post of ngx_http_modelreg_conf_set_num and _set_off: inclusive */
typedef struct {
    off_t                            low;
    off_t                            high;
} ngx_http_modelreg_conf_bounds_t;


/* value[0..n-1] against args; "hint" (or NULL) follows an invalid value */
char *ngx_http_modelreg_conf_parse(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *args, ngx_str_t *value, ngx_uint_t n,
    void *conf, const char *hint);

/* ngx_str_t, as written */
char *ngx_http_modelreg_conf_set_str(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* ngx_flag_t: on|off */
char *ngx_http_modelreg_conf_set_flag(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* ngx_uint_t: a decimal number, within the bounds of post */
char *ngx_http_modelreg_conf_set_num(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* ngx_msec_t: a time (ngx_parse_time) above zero */
char *ngx_http_modelreg_conf_set_msec(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* off_t: a size like 64m or 5g (ngx_parse_offset), within post's bounds */
char *ngx_http_modelreg_conf_set_off(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* ngx_str_t: a file, relative to the configuration's directory */
char *ngx_http_modelreg_conf_set_path(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* ngx_str_t: a secret, the first line of a file (*_file=) ... */
char *ngx_http_modelreg_conf_set_secret_file(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

/* ... or an environment variable read by the master (*_env=) */
char *ngx_http_modelreg_conf_set_secret_env(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf);

ngx_int_t ngx_http_modelreg_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    const char *directive, ngx_str_t *out);


#endif /* _NGX_HTTP_MODELREG_CONF_H_INCLUDED_ */
