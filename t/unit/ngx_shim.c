
/*
 * The few nginx core functions the pure sources call, for the unit tests
 * (t/unit) and the fuzz targets (t/fuzz), which link no nginx objects.
 *
 * Pools: with a NULL pool an allocation is a plain malloc() (unit tests
 * leak: they are short).  A pool of ngx_create_pool() keeps each
 * allocation as its own malloc() block on its "large" list, so that
 * AddressSanitizer sees an overflow by one byte (nginx's pools would put
 * the next allocation there) and ngx_destroy_pool() frees everything: a
 * fuzz target leaks nothing unless the code under test does.
 */


#include <ngx_config.h>
#include <ngx_core.h>


static u_char *ngx_shim_num(u_char *buf, u_char *last, uint64_t ui64,
    ngx_uint_t neg, ngx_uint_t hex, ngx_uint_t width, u_char zero);


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    return strncasecmp((char *) s1, (char *) s2, n);
}


ngx_int_t
ngx_strcasecmp(u_char *s1, u_char *s2)
{
    return strcasecmp((char *) s1, (char *) s2);
}


ngx_pool_t *
ngx_create_pool(size_t size, ngx_log_t *log)
{
    ngx_pool_t  *pool;

    pool = calloc(1, sizeof(ngx_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->log = log;

    return pool;
}


void
ngx_destroy_pool(ngx_pool_t *pool)
{
    ngx_pool_large_t    *l, *next;
    ngx_pool_cleanup_t  *c, *cn;

    for (c = pool->cleanup; c; c = cn) {
        cn = c->next;

        if (c->handler) {
            c->handler(c->data);
        }

        free(c);
    }

    for (l = pool->large; l; l = next) {
        next = l->next;
        free(l->alloc);
        free(l);
    }

    free(pool);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    void              *p;
    ngx_pool_large_t  *l;

    p = malloc(size);

    if (pool == NULL || p == NULL) {
        return p;
    }

    l = malloc(sizeof(ngx_pool_large_t));
    if (l == NULL) {
        free(p);
        return NULL;
    }

    l->alloc = p;
    l->next = pool->large;
    pool->large = l;

    return p;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_pnalloc(pool, size);

    if (p) {
        ngx_memzero(p, size);
    }

    return p;
}


ngx_int_t
ngx_pfree(ngx_pool_t *pool, void *p)
{
    ngx_pool_large_t  *l;

    for (l = pool ? pool->large : NULL; l; l = l->next) {
        if (p == l->alloc) {
            free(l->alloc);
            l->alloc = NULL;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_pool_cleanup_t *
ngx_pool_cleanup_add(ngx_pool_t *p, size_t size)
{
    ngx_pool_cleanup_t  *c;

    c = calloc(1, sizeof(ngx_pool_cleanup_t));
    if (c == NULL) {
        return NULL;
    }

    if (size) {
        c->data = ngx_palloc(p, size);
        if (c->data == NULL) {
            free(c);
            return NULL;
        }
    }

    c->next = p->cleanup;
    p->cleanup = c;

    return c;
}


u_char *
ngx_pstrdup(ngx_pool_t *pool, ngx_str_t *src)
{
    u_char  *dst;

    dst = ngx_pnalloc(pool, src->len);
    if (dst == NULL) {
        return NULL;
    }

    ngx_memcpy(dst, src->data, src->len);

    return dst;
}


/* nginx 1.22.1's */

ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value, cutoff, cutlim;

    if (n == 0) {
        return NGX_ERROR;
    }

    cutoff = NGX_MAX_INT_T_VALUE / 10;
    cutlim = NGX_MAX_INT_T_VALUE % 10;

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value >= cutoff && (value > cutoff || *line - '0' > cutlim)) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


/*
 * nginx's formats, the part the pure sources use: %[0][width][u][x|X]
 * then O T z i d l D L; %V, %s, %*s, %c, %Z, %N, %%.  Anything else
 * aborts, so a format this does not know fails a test instead of
 * printing something nginx would not.
 */

u_char *
ngx_vslprintf(u_char *buf, u_char *last, const char *fmt, va_list args)
{
    u_char      *p, zero;
    size_t       len, slen;
    int64_t      i64;
    uint64_t     ui64;
    ngx_str_t   *v;
    ngx_uint_t   width, sign, hex;

    while (*fmt && buf < last) {

        if (*fmt != '%') {
            *buf++ = *fmt++;
            continue;
        }

        fmt++;

        zero = (u_char) ((*fmt == '0') ? '0' : ' ');
        width = 0;
        sign = 1;
        hex = 0;
        slen = (size_t) -1;

        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }

        for ( ;; ) {
            if (*fmt == 'u') {
                sign = 0;

            } else if (*fmt == 'x' || *fmt == 'X') {
                hex = (*fmt == 'x') ? 1 : 2;
                sign = 0;

            } else if (*fmt == '*') {
                slen = va_arg(args, size_t);

            } else {
                break;
            }

            fmt++;
        }

        switch (*fmt++) {

        case 'V':
            v = va_arg(args, ngx_str_t *);
            len = ngx_min((size_t) (last - buf), v->len);
            buf = ngx_cpymem(buf, v->data, len);
            continue;

        case 's':
            p = va_arg(args, u_char *);
            len = (slen == (size_t) -1) ? ngx_strlen(p) : slen;
            len = ngx_min((size_t) (last - buf), len);
            buf = ngx_cpymem(buf, p, len);
            continue;

        case 'c':
            *buf++ = (u_char) (va_arg(args, int) & 0xff);
            continue;

        case 'Z':
            *buf++ = '\0';
            continue;

        case 'N':
            *buf++ = LF;
            continue;

        case '%':
            *buf++ = '%';
            continue;

        case 'O':
            i64 = (int64_t) va_arg(args, off_t);
            sign = 1;
            break;

        case 'T':
            i64 = (int64_t) va_arg(args, time_t);
            sign = 1;
            break;

        case 'z':
            i64 = sign ? (int64_t) va_arg(args, ssize_t)
                       : (int64_t) va_arg(args, size_t);
            break;

        case 'i':
            i64 = sign ? (int64_t) va_arg(args, ngx_int_t)
                       : (int64_t) va_arg(args, ngx_uint_t);
            break;

        case 'd':
            i64 = sign ? (int64_t) va_arg(args, int)
                       : (int64_t) va_arg(args, u_int);
            break;

        case 'l':
            i64 = sign ? (int64_t) va_arg(args, long)
                       : (int64_t) va_arg(args, u_long);
            break;

        case 'D':
            i64 = sign ? (int64_t) va_arg(args, int32_t)
                       : (int64_t) va_arg(args, uint32_t);
            break;

        case 'L':
            i64 = va_arg(args, int64_t);
            break;

        default:
            abort();            /* a format the shim does not know */
        }

        if (sign && i64 < 0) {
            ui64 = (uint64_t) 0 - (uint64_t) i64;
            buf = ngx_shim_num(buf, last, ui64, 1, hex, width, zero);

        } else {
            ui64 = (uint64_t) i64;
            buf = ngx_shim_num(buf, last, ui64, 0, hex, width, zero);
        }
    }

    return buf;
}


static u_char *
ngx_shim_num(u_char *buf, u_char *last, uint64_t ui64, ngx_uint_t neg,
    ngx_uint_t hex, ngx_uint_t width, u_char zero)
{
    u_char   *p, temp[NGX_INT64_LEN + 1];
    size_t    len;

    static u_char  hexdigits[] = "0123456789abcdef";
    static u_char  HEXdigits[] = "0123456789ABCDEF";

    p = temp + NGX_INT64_LEN;

    do {
        if (hex) {
            *--p = (hex == 1 ? hexdigits : HEXdigits)[ui64 & 0xf];
            ui64 >>= 4;

        } else {
            *--p = (u_char) (ui64 % 10 + '0');
            ui64 /= 10;
        }
    } while (ui64);

    if (neg && buf < last) {
        *buf++ = '-';
    }

    len = (temp + NGX_INT64_LEN) - p;

    while (len++ < width && buf < last) {
        *buf++ = zero;
    }

    len = (temp + NGX_INT64_LEN) - p;

    if (buf + len > last) {
        len = last - buf;
    }

    return ngx_cpymem(buf, p, len);
}


u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, (void *) -1, fmt, args);
    va_end(args);

    return p;
}


u_char * ngx_cdecl
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + max, fmt, args);
    va_end(args);

    return p;
}


void
ngx_strlow(u_char *dst, u_char *src, size_t n)
{
    while (n--) {
        *dst++ = ngx_tolower(*src);
        src++;
    }
}


void
ngx_explicit_memzero(void *buf, size_t n)
{
    volatile u_char  *p = buf;

    while (n--) {
        *p++ = 0;
    }
}


/* grows by copying, as nginx's does when its pool cannot extend in place */

void *
ngx_array_push(ngx_array_t *a)
{
    void  *elts;

    if (a->nelts == a->nalloc) {
        elts = ngx_palloc(a->pool, 2 * a->nalloc * a->size);
        if (elts == NULL) {
            return NULL;
        }

        memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}


/*
 * nginx 1.22.1's, verbatim but for the one table the module uses (and
 * unchanged since 1.1.6): the signer's percent-encoding.  The tests
 * check it against SigV4's rule; t/20-s3.t signs a key of every
 * printable byte for a real store, through the nginx that ships.
 */

uintptr_t
ngx_escape_uri(u_char *dst, u_char *src, size_t size, ngx_uint_t type)
{
    static u_char   hex[] = "0123456789ABCDEF";

                    /* not ALPHA, DIGIT, "-", ".", "_", "~" */

    static uint32_t   uri_component[] = {
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */

                    /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
        0xfc009fff, /* 1111 1100 0000 0000  1001 1111 1111 1111 */

                    /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
        0x78000001, /* 0111 1000 0000 0000  0000 0000 0000 0001 */

                    /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
        0xb8000001, /* 1011 1000 0000 0000  0000 0000 0000 0001 */

        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff  /* 1111 1111 1111 1111  1111 1111 1111 1111 */
    };

    uint32_t  *escape;

    if (type != NGX_ESCAPE_URI_COMPONENT || dst == NULL) {
        abort();                /* not what the module calls */
    }

    escape = uri_component;

    while (size) {
        if (escape[*src >> 5] & (1U << (*src & 0x1f))) {
            *dst++ = '%';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 0xf];
            src++;

        } else {
            *dst++ = *src++;
        }
        size--;
    }

    return (uintptr_t) dst;
}


u_char *
ngx_hex_dump(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}


/* nginx 1.22.1's ngx_encode_base64url(): no padding, "-" and "_" */

void
ngx_encode_base64url(ngx_str_t *dst, ngx_str_t *src)
{
    static u_char  basis[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    u_char  *d, *s;
    size_t   len;

    len = src->len;
    s = src->data;
    d = dst->data;

    while (len > 2) {
        *d++ = basis[(s[0] >> 2) & 0x3f];
        *d++ = basis[((s[0] & 3) << 4) | (s[1] >> 4)];
        *d++ = basis[((s[1] & 0x0f) << 2) | (s[2] >> 6)];
        *d++ = basis[s[2] & 0x3f];

        s += 3;
        len -= 3;
    }

    if (len) {
        *d++ = basis[(s[0] >> 2) & 0x3f];

        if (len == 1) {
            *d++ = basis[(s[0] & 3) << 4];

        } else {
            *d++ = basis[((s[0] & 3) << 4) | (s[1] >> 4)];
            *d++ = basis[(s[1] & 0x0f) << 2];
        }
    }

    dst->len = d - dst->data;
}
