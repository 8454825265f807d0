
/*
 * Copyright (C) modelreg authors
 *
 * Directive arguments: key=value pairs matched against a table and stored
 * by setters (ngx_http_modelreg_conf.h), and the secrets that S3 and Geti
 * read from files or from the environment.  Configuration time only: the
 * master parses, workers inherit what was stored.
 */


#include "ngx_http_modelreg_conf.h"


#define NGX_HTTP_MODELREG_SECRET_MAX  4096


static ngx_uint_t ngx_http_modelreg_conf_outside(
    ngx_http_modelreg_conf_arg_t *arg, off_t n);


char *
ngx_http_modelreg_conf_parse(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *args, ngx_str_t *value, ngx_uint_t n,
    void *conf, const char *hint)
{
    char                          *rv;
    u_char                        *eq;
    ngx_str_t                      s, *directive;
    ngx_uint_t                     i;
    ngx_http_modelreg_conf_arg_t  *a;

    /* the directive's own name, as written: the first word of the line */

    directive = cf->args->elts;

    for (i = 0; i < n; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL) {
            goto unknown;
        }

        for (a = args; a->name.len; a++) {
            if ((size_t) (eq - value[i].data) == a->name.len
                && ngx_strncmp(value[i].data, a->name.data, a->name.len) == 0)
            {
                break;
            }
        }

        if (a->set == NULL) {
            goto unknown;
        }

        /* NUL-terminated still: the tail of the word nginx read */

        s.data = eq + 1;
        s.len = value[i].data + value[i].len - s.data;

        rv = a->set(cf, a, &s, conf);

        if (rv == NGX_CONF_OK) {
            continue;
        }

        if (rv != NGX_CONF_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s \"%V\" in \"%V\"%s", rv, &value[i],
                               &directive[0], hint ? hint : "");
        }

        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

unknown:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown parameter \"%V\" in \"%V\"",
                       &value[i], &directive[0]);
    return NGX_CONF_ERROR;
}


char *
ngx_http_modelreg_conf_set_str(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    *ngx_http_modelreg_conf_field(ngx_str_t, conf, arg) = *value;

    return NGX_CONF_OK;
}


char *
ngx_http_modelreg_conf_set_flag(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_flag_t  *fp;

    fp = ngx_http_modelreg_conf_field(ngx_flag_t, conf, arg);

    if (value->len == 2 && ngx_strncmp(value->data, "on", 2) == 0) {
        *fp = 1;
        return NGX_CONF_OK;
    }

    if (value->len == 3 && ngx_strncmp(value->data, "off", 3) == 0) {
        *fp = 0;
        return NGX_CONF_OK;
    }

    return "invalid value";
}


char *
ngx_http_modelreg_conf_set_num(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_int_t  n;

    n = ngx_atoi(value->data, value->len);

    if (n == NGX_ERROR || ngx_http_modelreg_conf_outside(arg, n)) {
        return "invalid value";
    }

    *ngx_http_modelreg_conf_field(ngx_uint_t, conf, arg) = n;

    return NGX_CONF_OK;
}


char *
ngx_http_modelreg_conf_set_msec(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_msec_t  ms;

    ms = ngx_parse_time(value, 0);

    if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
        return "invalid value";
    }

    *ngx_http_modelreg_conf_field(ngx_msec_t, conf, arg) = ms;

    return NGX_CONF_OK;
}


char *
ngx_http_modelreg_conf_set_off(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    off_t  off;

    off = ngx_parse_offset(value);

    if (off == NGX_ERROR || ngx_http_modelreg_conf_outside(arg, off)) {
        return "invalid value";
    }

    *ngx_http_modelreg_conf_field(off_t, conf, arg) = off;

    return NGX_CONF_OK;
}


/* outside the bounds that the post gives, if it gives any */

static ngx_uint_t
ngx_http_modelreg_conf_outside(ngx_http_modelreg_conf_arg_t *arg, off_t n)
{
    ngx_http_modelreg_conf_bounds_t  *b = arg->post;

    return b && (n < b->low || n > b->high);
}


/* like ssl_certificate: relative to the configuration's directory */

char *
ngx_http_modelreg_conf_set_path(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_str_t  *path;

    path = ngx_http_modelreg_conf_field(ngx_str_t, conf, arg);
    *path = *value;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_modelreg_conf_set_secret_file(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    ngx_str_t  *directive;

    directive = cf->args->elts;

    if (ngx_http_modelreg_read_secret(cf, value, (char *) directive[0].data,
                                      ngx_http_modelreg_conf_field(ngx_str_t,
                                                                   conf, arg))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* read now, in the master: workers need no "env" directive for it */

char *
ngx_http_modelreg_conf_set_secret_env(ngx_conf_t *cf,
    ngx_http_modelreg_conf_arg_t *arg, ngx_str_t *value, void *conf)
{
    u_char     *p;
    ngx_str_t   env, *secret, *directive;

    directive = cf->args->elts;

    p = (u_char *) getenv((char *) value->data);

    if (p == NULL || *p == '\0') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the environment variable \"%V\" of \"%V\" "
                           "is not set", value, &directive[0]);
        return NGX_CONF_ERROR;
    }

    env.data = p;
    env.len = ngx_strlen(p);

    secret = ngx_http_modelreg_conf_field(ngx_str_t, conf, arg);

    secret->data = ngx_pstrdup(cf->pool, &env);
    if (secret->data == NULL) {
        return NGX_CONF_ERROR;
    }

    secret->len = env.len;

    return NGX_CONF_OK;
}


/*
 * A secret from a file (S3 keys, the Geti token): its first line,
 * trimmed; relative paths like ssl_certificate's; never logged.
 */

ngx_int_t
ngx_http_modelreg_read_secret(ngx_conf_t *cf, ngx_str_t *name,
    const char *directive, ngx_str_t *out)
{
    u_char      *p, *end, buf[NGX_HTTP_MODELREG_SECRET_MAX];
    ssize_t      n;
    ngx_str_t    path;
    ngx_file_t   file;

    path = *name;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = path;
    file.log = cf->log;

    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read the %s file \"%s\" of \"%s\"",
                           ngx_strcmp(directive, "modelreg_geti") == 0
                           ? "token" : "key", path.data, directive);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, buf, sizeof(buf), 0);
    ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    p = buf;
    end = buf + n;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    for (n = 0; p + n < end && p[n] != '\n' && p[n] != '\r'; n++) {
        /* void */
    }

    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
        n--;
    }

    if (n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the %s file \"%s\" of \"%s\" is empty",
                           ngx_strcmp(directive, "modelreg_geti") == 0
                           ? "token" : "key", path.data, directive);
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(cf->pool, n);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, p, n);
    out->len = n;

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}
