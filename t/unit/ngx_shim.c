
/*
 * The few nginx core functions the pure sources call, for unit tests that
 * link no nginx objects.
 */


#include <ngx_config.h>
#include <ngx_core.h>


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    return strncasecmp((char *) s1, (char *) s2, n);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return malloc(size);        /* tests leak: they are short */
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return malloc(size);
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
        elts = malloc(2 * a->nalloc * a->size);
        if (elts == NULL) {
            return NULL;
        }

        memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}
