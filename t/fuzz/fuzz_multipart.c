
/*
 * The streaming multipart parser (multipart.c) and the boundary of a
 * Content-Type.  Input: "<Content-Type>\n<body>", and from its end the
 * numbers that decide the splits and which callback refuses.
 *
 * The body is parsed whole, byte by byte and in random pieces: each way
 * must report the same parts (headers, data, ends), the same result and
 * the same error.  Part data never holds the delimiter, at most 64 parts
 * begin, and what a callback refuses stops the parser.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_multipart.h"


typedef struct {
    fuzz_text_t   log;
    size_t        data;         /* of all parts */
    ngx_uint_t    begins;
    ngx_uint_t    ends;
    ngx_uint_t    refuse;       /* the callback that refuses: 1, 2..., 0 */
    u_char       *delim;
    size_t        delim_len;
    u_char       *part;         /* this part's data, whole */
    size_t        part_len;
    size_t        part_cap;
} run_t;


static ngx_int_t
on_begin(void *data, ngx_http_modelreg_mp_part_t *part)
{
    run_t  *r = data;

    fuzz_assert(r->part_len == 0);

    fuzz_add(&r->log, "B", 1);
    fuzz_add(&r->log, part->has_name ? "n" : "-", 1);
    fuzz_add_str(&r->log, &part->name);
    fuzz_add(&r->log, part->has_filename ? "f" : "-", 1);

    if (part->has_filename) {
        fuzz_add_str(&r->log, &part->filename);
    }

    fuzz_add_str(&r->log, &part->content_type);

    if (++r->begins + r->ends == r->refuse) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
on_data(void *data, u_char *p, size_t len)
{
    run_t   *r = data;
    u_char  *d;

    fuzz_assert(len > 0);

    fuzz_add(&r->log, p, len);
    r->data += len;

    if (r->part_len + len > r->part_cap) {
        r->part_cap = 2 * (r->part_len + len);
        d = realloc(r->part, r->part_cap);
        fuzz_assert(d != NULL);
        r->part = d;
    }

    ngx_memcpy(r->part + r->part_len, p, len);
    r->part_len += len;

    return NGX_OK;
}


static ngx_int_t
on_end(void *data)
{
    run_t  *r = data;

    /* the data of a part stops at the first delimiter */

    fuzz_assert(!fuzz_contains(r->part, r->part_len, r->delim,
                               r->delim_len));

    fuzz_add(&r->log, "E", 1);
    r->part_len = 0;

    if (r->begins + ++r->ends == r->refuse) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* mode 0: whole, 1: byte by byte, 2: pieces from "seed" */

static void
parse(ngx_str_t *boundary, ngx_str_t *body, ngx_uint_t mode, uint64_t seed,
    run_t *r, ngx_int_t *rc, const char **error, ngx_uint_t *too_many)
{
    u_char                  *p, *end;
    size_t                   n;
    ngx_http_modelreg_mp_t  *mp;

    mp = malloc(sizeof(ngx_http_modelreg_mp_t));
    fuzz_assert(mp != NULL);

    fuzz_assert(ngx_http_modelreg_mp_init(mp, boundary) == NGX_OK);

    mp->begin = on_begin;
    mp->data = on_data;
    mp->end = on_end;
    mp->ctx = r;

    r->delim = mp->delim;
    r->delim_len = mp->delim_len;

    p = body->data;
    end = p + body->len;
    *rc = NGX_OK;

    while (p < end && *rc == NGX_OK) {
        if (mode == 0) {
            n = end - p;

        } else if (mode == 1) {
            n = 1;

        } else {
            /* mostly short pieces, now and then a long one */
            n = fuzz_next(&seed);
            n = (n & 0x300) ? 1 + (n & 0xf) : 1 + (n & 0x3ff);
            n = ngx_min(n, (size_t) (end - p));
        }

        *rc = ngx_http_modelreg_mp_feed(mp, p, n);
        p += n;
    }

    /* an empty body is one empty piece */

    if (body->len == 0) {
        *rc = ngx_http_modelreg_mp_feed(mp, p, 0);
    }

    if (*rc == NGX_OK) {
        *rc = ngx_http_modelreg_mp_finish(mp);
    }

    fuzz_assert((*rc == NGX_OK) == (mp->error == NULL));
    fuzz_assert(mp->parts <= NGX_HTTP_MODELREG_MP_PARTS_MAX + 1);
    fuzz_assert(r->begins <= NGX_HTTP_MODELREG_MP_PARTS_MAX);

    /* a refused callback stops it, with the error that says so */

    if (r->refuse && r->begins + r->ends >= r->refuse) {
        fuzz_assert(*rc == NGX_ERROR);
        fuzz_assert(ngx_strcmp(mp->error, "stopped") == 0);
    }

    /* the parser gave out no more data than it was given */

    fuzz_assert(r->data <= body->len);

    *error = mp->error;
    *too_many = mp->too_many;

    free(mp);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char       *ct_copy;
    uint64_t      seed;
    ngx_int_t     rc[3];
    ngx_str_t     ct, body, boundary, ct_in;
    ngx_uint_t    mode, refuse, too_many[3];
    ngx_pool_t   *pool;
    const char   *error[3];
    fuzz_in_t     in;
    run_t         run[3];

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    seed = fuzz_number(&in, 8);
    refuse = fuzz_number(&in, 1);
    refuse = (refuse & 0x80) ? (refuse & 0x7f) : 0;

    pool = fuzz_pool();

    fuzz_piece(&in, '\n', &ct_in);
    body.data = in.p;
    body.len = in.end - in.p;

    /* the boundary is unescaped in place: the header is a copy */

    ct.data = fuzz_copy(pool, &ct_in);
    ct.len = ct_in.len;
    ct_copy = ct.data;

    if (ngx_http_modelreg_mp_boundary(&ct, &boundary) == NGX_OK) {
        fuzz_assert(boundary.len >= 1
                    && boundary.len <= NGX_HTTP_MODELREG_MP_BOUNDARY_MAX);
        fuzz_assert(boundary.data >= ct_copy
                    && boundary.data + boundary.len <= ct_copy + ct.len);

    } else {
        ngx_str_set(&boundary, "AaB03x");
    }

    for (mode = 0; mode < 3; mode++) {
        ngx_memzero(&run[mode], sizeof(run_t));
        run[mode].refuse = refuse;

        /* byte by byte costs a call a byte: short bodies only */

        if (mode == 1 && body.len > 4096) {
            rc[1] = rc[0];
            error[1] = error[0];
            too_many[1] = too_many[0];
            continue;
        }

        parse(&boundary, &body, mode, seed, &run[mode], &rc[mode],
              &error[mode], &too_many[mode]);
    }

    for (mode = 1; mode < 3; mode++) {
        if (mode == 1 && body.len > 4096) {
            continue;
        }

        fuzz_assert(rc[mode] == rc[0]);
        fuzz_assert((error[mode] == NULL) == (error[0] == NULL));
        fuzz_assert(error[0] == NULL
                    || ngx_strcmp(error[mode], error[0]) == 0);
        fuzz_assert(too_many[mode] == too_many[0]);
        fuzz_assert(run[mode].begins == run[0].begins);
        fuzz_assert(run[mode].ends == run[0].ends);

        /* data comes in other pieces, but the same bytes in order */

        fuzz_assert(fuzz_text_eq(&run[mode].log, &run[0].log));
    }

    for (mode = 0; mode < 3; mode++) {
        free(run[mode].log.data);
        free(run[mode].part);
    }

    ngx_destroy_pool(pool);

    return 0;
}
