
/*
 * Copyright (C) modelreg authors
 */


#include "ngx_http_modelreg_multipart.h"


#define MP_PREAMBLE     0
#define MP_BODY         1
#define MP_AFTER_DELIM  2
#define MP_DASH2        3
#define MP_AFTER_CR     4
#define MP_HEADERS      5
#define MP_EPILOGUE     6


static ngx_int_t ngx_http_modelreg_mp_scan(ngx_http_modelreg_mp_t *mp,
    u_char **pp, u_char *end);
static ngx_int_t ngx_http_modelreg_mp_emit(ngx_http_modelreg_mp_t *mp,
    u_char *p, size_t len);
static ngx_int_t ngx_http_modelreg_mp_headers(ngx_http_modelreg_mp_t *mp,
    ngx_http_modelreg_mp_part_t *part);
static ngx_int_t ngx_http_modelreg_mp_disposition(u_char *p, u_char *end,
    ngx_http_modelreg_mp_part_t *part);
static u_char *ngx_http_modelreg_mp_param_value(u_char *p, u_char *end,
    ngx_str_t *value);
static ngx_int_t ngx_http_modelreg_mp_ext_value(ngx_str_t *value);
static ngx_int_t ngx_http_modelreg_mp_is_token(u_char c);


ngx_int_t
ngx_http_modelreg_mp_boundary(ngx_str_t *content_type, ngx_str_t *boundary)
{
    u_char     *p, *end, *name;
    size_t      len;
    ngx_str_t   value;

    p = content_type->data;
    end = p + content_type->len;
    len = sizeof("multipart/form-data") - 1;

    if (content_type->len < len
        || ngx_strncasecmp(p, (u_char *) "multipart/form-data", len) != 0)
    {
        return NGX_DECLINED;
    }

    p += len;

    while (p < end) {

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end) {
            break;
        }

        if (*p++ != ';') {
            return NGX_DECLINED;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        name = p;

        while (p < end && *p != '=' && *p != ';') {
            p++;
        }

        if (p == end || *p != '=') {
            return NGX_DECLINED;
        }

        len = p - name;
        p = ngx_http_modelreg_mp_param_value(p + 1, end, &value);

        if (p == NULL) {
            return NGX_DECLINED;
        }

        if (len == sizeof("boundary") - 1
            && ngx_strncasecmp(name, (u_char *) "boundary", len) == 0)
        {
            /*
             * RFC 2046 allows no CR in a boundary, and the scanner relies
             * on a CR only at the start of the delimiter (a quoted one
             * could hold it, though nginx refuses it in a header)
             */

            if (value.len == 0
                || value.len > NGX_HTTP_MODELREG_MP_BOUNDARY_MAX
                || ngx_strlchr(value.data, value.data + value.len, CR))
            {
                return NGX_DECLINED;
            }

            *boundary = value;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_modelreg_mp_init(ngx_http_modelreg_mp_t *mp, ngx_str_t *boundary)
{
    if (boundary->len == 0
        || boundary->len > NGX_HTTP_MODELREG_MP_BOUNDARY_MAX)
    {
        return NGX_ERROR;
    }

    mp->delim[0] = '\r';
    mp->delim[1] = '\n';
    mp->delim[2] = '-';
    mp->delim[3] = '-';
    ngx_memcpy(mp->delim + 4, boundary->data, boundary->len);
    mp->delim_len = boundary->len + 4;

    /* the body starts as if after a CRLF: "--boundary" may open it */

    mp->match = 2;
    mp->state = MP_PREAMBLE;
    mp->in_part = 0;
    mp->parts = 0;
    mp->hdr_len = 0;
    mp->error = NULL;
    mp->too_many = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_mp_feed(ngx_http_modelreg_mp_t *mp, u_char *p, size_t len)
{
    u_char                       *end, ch;
    ngx_int_t                     rc;
    ngx_http_modelreg_mp_part_t   part;

    if (mp->error) {
        return NGX_ERROR;
    }

    end = p + len;

    while (p < end) {

        switch (mp->state) {

        case MP_PREAMBLE:
        case MP_BODY:
            rc = ngx_http_modelreg_mp_scan(mp, &p, end);
            if (rc != NGX_OK) {
                return rc;
            }
            break;

        case MP_AFTER_DELIM:
            ch = *p++;

            if (ch == '-') {
                mp->state = MP_DASH2;

            } else if (ch == '\r') {
                mp->state = MP_AFTER_CR;

            } else if (ch != ' ' && ch != '\t') {
                mp->error = "bad delimiter line";
                return NGX_ERROR;
            }

            break;

        case MP_DASH2:
            if (*p++ != '-') {
                mp->error = "bad close delimiter";
                return NGX_ERROR;
            }

            mp->state = MP_EPILOGUE;
            break;

        case MP_AFTER_CR:
            if (*p++ != '\n') {
                mp->error = "bad delimiter line";
                return NGX_ERROR;
            }

            /* a part begins: counted before any of it is read or kept */

            if (++mp->parts > NGX_HTTP_MODELREG_MP_PARTS_MAX) {
                mp->error = "too many parts";
                mp->too_many = 1;
                return NGX_ERROR;
            }

            mp->state = MP_HEADERS;
            mp->hdr_len = 0;
            break;

        case MP_HEADERS:
            if (mp->hdr_len == NGX_HTTP_MODELREG_MP_HEADER_MAX) {
                mp->error = "part headers too large";
                return NGX_ERROR;
            }

            ch = *p++;
            mp->hdr[mp->hdr_len++] = ch;

            if (ch != '\n') {
                break;
            }

            if (!(mp->hdr_len == 2 && mp->hdr[0] == '\r')
                && !(mp->hdr_len >= 4
                     && ngx_strncmp(mp->hdr + mp->hdr_len - 4, "\r\n\r\n", 4)
                        == 0))
            {
                break;
            }

            ngx_memzero(&part, sizeof(ngx_http_modelreg_mp_part_t));

            if (ngx_http_modelreg_mp_headers(mp, &part) != NGX_OK) {
                return NGX_ERROR;
            }

            if (mp->begin(mp->ctx, &part) != NGX_OK) {
                mp->error = "stopped";
                return NGX_ERROR;
            }

            mp->in_part = 1;
            mp->match = 0;
            mp->state = MP_BODY;
            break;

        default: /* MP_EPILOGUE */
            return NGX_OK;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_modelreg_mp_finish(ngx_http_modelreg_mp_t *mp)
{
    if (mp->error) {
        return NGX_ERROR;
    }

    if (mp->state != MP_EPILOGUE) {
        mp->error = "no close delimiter";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Part data up to the delimiter "\r\n--boundary".  A partial match at the
 * end of a piece is held back and given out as data if the next piece
 * does not complete it.  CR occurs in the delimiter only at its start, so
 * after a mismatch matching restarts at the current byte.
 */

static ngx_int_t
ngx_http_modelreg_mp_scan(ngx_http_modelreg_mp_t *mp, u_char **pp,
    u_char *end)
{
    u_char  *p, *start, *cr;

    p = *pp;
    start = p;

    while (p < end) {

        if (mp->match == 0) {
            cr = ngx_strlchr(p, end, '\r');

            if (cr == NULL) {
                p = end;
                break;
            }

            p = cr + 1;
            mp->match = 1;
            continue;
        }

        if (*p == mp->delim[mp->match]) {
            p++;

            if (++mp->match < mp->delim_len) {
                continue;
            }

            /* the delimiter: data ends where it began in this piece */

            if (p - start > (ssize_t) mp->delim_len
                && ngx_http_modelreg_mp_emit(mp, start,
                                             p - start - mp->delim_len)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            if (mp->in_part && mp->end(mp->ctx) != NGX_OK) {
                mp->error = "stopped";
                return NGX_ERROR;
            }

            mp->in_part = 0;
            mp->match = 0;
            mp->state = MP_AFTER_DELIM;
            *pp = p;

            return NGX_OK;
        }

        /* a mismatch: what matched so far was data */

        if (p - start < (ssize_t) mp->match) {

            /* the match began in an earlier piece: give that part back */

            if (ngx_http_modelreg_mp_emit(mp, mp->delim,
                                          mp->match - (p - start))
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        mp->match = 0;
    }

    /* all but a partial match is data */

    if (p - start > (ssize_t) mp->match) {
        if (ngx_http_modelreg_mp_emit(mp, start, p - start - mp->match)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        /* (the whole piece continues a match from an earlier piece) */
    }

    *pp = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_mp_emit(ngx_http_modelreg_mp_t *mp, u_char *p, size_t len)
{
    if (!mp->in_part || len == 0) {
        return NGX_OK;
    }

    if (mp->data(mp->ctx, p, len) != NGX_OK) {
        mp->error = "stopped";
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_mp_headers(ngx_http_modelreg_mp_t *mp,
    ngx_http_modelreg_mp_part_t *part)
{
    u_char  *p, *end, *line, *eol, *colon, *v, *ve;
    size_t   nlen;

    p = mp->hdr;
    end = mp->hdr + mp->hdr_len;

    while (p < end) {
        line = p;
        eol = ngx_strlchr(p, end, '\r');

        if (eol == NULL || eol + 1 == end || eol[1] != '\n') {
            mp->error = "bad part header line";
            return NGX_ERROR;
        }

        p = eol + 2;

        if (eol == line) {
            break;
        }

        colon = ngx_strlchr(line, eol, ':');
        if (colon == NULL) {
            mp->error = "bad part header line";
            return NGX_ERROR;
        }

        nlen = colon - line;

        v = colon + 1;
        ve = eol;

        while (v < ve && (*v == ' ' || *v == '\t')) {
            v++;
        }

        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
            ve--;
        }

        if (nlen == sizeof("Content-Disposition") - 1
            && ngx_strncasecmp(line, (u_char *) "Content-Disposition", nlen)
               == 0)
        {
            if (ngx_http_modelreg_mp_disposition(v, ve, part) != NGX_OK) {
                mp->error = "bad Content-Disposition";
                return NGX_ERROR;
            }

            continue;
        }

        if (nlen == sizeof("Content-Type") - 1
            && ngx_strncasecmp(line, (u_char *) "Content-Type", nlen) == 0)
        {
            part->content_type.data = v;
            part->content_type.len = ve - v;
        }
    }

    return NGX_OK;
}


/* form-data; name="field"; filename="a.zip"; filename*=UTF-8''a.zip */

static ngx_int_t
ngx_http_modelreg_mp_disposition(u_char *p, u_char *end,
    ngx_http_modelreg_mp_part_t *part)
{
    u_char     *name;
    size_t      len;
    ngx_str_t   value;
    ngx_uint_t  ext;

    len = sizeof("form-data") - 1;

    if (end - p < (ssize_t) len
        || ngx_strncasecmp(p, (u_char *) "form-data", len) != 0)
    {
        return NGX_ERROR;
    }

    p += len;
    ext = 0;

    for ( ;; ) {

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end) {
            return NGX_OK;
        }

        if (*p++ != ';') {
            return NGX_ERROR;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        name = p;

        while (p < end && ngx_http_modelreg_mp_is_token(*p)) {
            p++;
        }

        len = p - name;

        if (len == 0 || p == end || *p != '=') {
            return NGX_ERROR;
        }

        p = ngx_http_modelreg_mp_param_value(p + 1, end, &value);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (len == 4 && ngx_strncasecmp(name, (u_char *) "name", 4) == 0) {
            part->name = value;
            part->has_name = 1;

        } else if (len == 8
                   && ngx_strncasecmp(name, (u_char *) "filename", 8) == 0)
        {
            if (!ext) {
                part->filename = value;
            }

            part->has_filename = 1;

        } else if (len == 9
                   && ngx_strncasecmp(name, (u_char *) "filename*", 9) == 0)
        {
            /* RFC 5987 wins over the plain filename */

            if (ngx_http_modelreg_mp_ext_value(&value) != NGX_OK) {
                return NGX_ERROR;
            }

            part->filename = value;
            part->has_filename = 1;
            ext = 1;
        }
    }
}


/*
 * A token or a quoted string; a quoted string is unescaped in place.
 * Returns the position after the value, or NULL.
 */

static u_char *
ngx_http_modelreg_mp_param_value(u_char *p, u_char *end, ngx_str_t *value)
{
    u_char  *dst;

    if (p < end && *p == '"') {
        p++;
        value->data = p;
        dst = p;

        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end) {
                p++;
            }

            /* (writes only after an escape: the text may be read-only) */

            if (dst != p) {
                *dst = *p;
            }

            dst++;
            p++;
        }

        if (p == end) {
            return NULL;
        }

        value->len = dst - value->data;

        return p + 1;
    }

    value->data = p;

    while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
        p++;
    }

    value->len = p - value->data;

    return p;
}


/* charset'language'percent-encoded: UTF-8 or ISO-8859-1 kept as bytes */

static ngx_int_t
ngx_http_modelreg_mp_ext_value(ngx_str_t *value)
{
    u_char  *p, *end, *dst, c, h;
    int      n;

    p = value->data;
    end = p + value->len;

    for (n = 0; n < 2; n++) {
        p = ngx_strlchr(p, end, '\'');
        if (p == NULL) {
            return NGX_ERROR;
        }

        p++;
    }

    value->data = p;
    dst = p;

    while (p < end) {
        if (*p != '%') {
            *dst++ = *p++;
            continue;
        }

        if (end - p < 3) {
            return NGX_ERROR;
        }

        c = 0;

        for (n = 1; n <= 2; n++) {
            h = p[n];

            if (h >= '0' && h <= '9') {
                h -= '0';

            } else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') {
                h = (h | 0x20) - 'a' + 10;

            } else {
                return NGX_ERROR;
            }

            c = (u_char) (c * 16 + h);
        }

        *dst++ = c;
        p += 3;
    }

    value->len = dst - value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_modelreg_mp_is_token(u_char c)
{
    return c > 0x20 && c < 0x7f && c != '=' && c != ';' && c != '"'
           && c != ',' && c != '(' && c != ')' && c != '<' && c != '>'
           && c != '@' && c != ':' && c != '\\' && c != '/' && c != '['
           && c != ']' && c != '?' && c != '{' && c != '}';
}
