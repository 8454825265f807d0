
/*
 * What the fuzz targets share: a reader of the fuzzer's bytes (numbers to
 * decide splits and modes, pieces of the input), a growing text to
 * record what a parser reported, and the check that stops a run.
 *
 * A target gets one input, parses it with the module's pure code (linked
 * with t/unit/ngx_shim.c), checks what must hold of the answer, and
 * frees everything (a leak is a finding too).  A failed check aborts:
 * libFuzzer keeps the input as a crash.
 */


#ifndef _FUZZ_H_INCLUDED_
#define _FUZZ_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>

#include <ngx_config.h>
#include <ngx_core.h>


#define fuzz_assert(c)                                                        \
    if (!(c)) {                                                               \
        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
        abort();                                                              \
    }


/* the input, read from both ends: bytes from the front, numbers from the
 * back (so the text a target parses keeps its shape under mutation) */

typedef struct {
    u_char  *p;
    u_char  *end;
} fuzz_in_t;


static ngx_inline uint64_t
fuzz_number(fuzz_in_t *in, ngx_uint_t bytes)
{
    uint64_t  v;

    v = 0;

    while (bytes-- && in->end > in->p) {
        v = v << 8 | *--in->end;
    }

    return v;
}


/* the bytes up to "sep" (or the end), "sep" consumed; NULL when empty */

static ngx_inline void
fuzz_piece(fuzz_in_t *in, u_char sep, ngx_str_t *s)
{
    u_char  *q;

    q = ngx_strlchr(in->p, in->end, sep);

    s->data = in->p;
    s->len = (q ? q : in->end) - in->p;

    in->p = q ? q + 1 : in->end;
}


/* a copy the code under test may write to, of exactly its size */

static ngx_inline u_char *
fuzz_copy(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len ? s->len : 1);
    fuzz_assert(p != NULL);

    ngx_memcpy(p, s->data, s->len);

    return p;
}


static ngx_inline ngx_pool_t *
fuzz_pool(void)
{
    ngx_pool_t  *pool;

    pool = ngx_create_pool(1024, NULL);
    fuzz_assert(pool != NULL);

    return pool;
}


/* the rest of the input, as a copy of its own */

static ngx_inline void
fuzz_rest(ngx_pool_t *pool, fuzz_in_t *in, ngx_str_t *s)
{
    ngx_str_t  raw;

    raw.data = in->p;
    raw.len = in->end - in->p;

    s->data = fuzz_copy(pool, &raw);
    s->len = raw.len;

    in->p = in->end;
}


/* a 64-bit xorshift: splits decided by the input, the same every run */

static ngx_inline uint64_t
fuzz_next(uint64_t *state)
{
    uint64_t  x;

    x = *state ? *state : 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;

    return x;
}


/* a record of what a parser reported, compared between runs */

typedef struct {
    u_char  *data;
    size_t   len;
    size_t   cap;
} fuzz_text_t;


static ngx_inline void
fuzz_add(fuzz_text_t *t, const void *p, size_t len)
{
    size_t   cap;
    u_char  *d;

    if (len == 0) {
        return;
    }

    if (t->len + len > t->cap) {
        for (cap = t->cap ? t->cap : 256; cap < t->len + len; cap *= 2) {
            /* void */
        }

        d = realloc(t->data, cap);
        fuzz_assert(d != NULL);

        t->data = d;
        t->cap = cap;
    }

    ngx_memcpy(t->data + t->len, p, len);
    t->len += len;
}


static ngx_inline void
fuzz_add_str(fuzz_text_t *t, ngx_str_t *s)
{
    fuzz_add(t, &s->len, sizeof(size_t));
    fuzz_add(t, s->data, s->len);
}


static ngx_inline ngx_int_t
fuzz_text_eq(fuzz_text_t *a, fuzz_text_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}


/* "needle" occurs in "hay" */

static ngx_inline ngx_int_t
fuzz_contains(u_char *hay, size_t len, u_char *needle, size_t n)
{
    size_t  i;

    for (i = 0; n <= len && i <= len - n; i++) {
        if (ngx_memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }

    return 0;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#endif /* _FUZZ_H_INCLUDED_ */
