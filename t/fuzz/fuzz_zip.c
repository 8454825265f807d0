
/*
 * The ZIP check (validate.c) of an uploaded file, and the ring of its
 * last bytes filled as the file streams in (what body.c does with the
 * file part).  Input: the file's last bytes; from the input's end, how
 * many filler bytes come before them (so that small inputs make files
 * past the 65,557 bytes the ring holds), whether the filler opens with
 * a local file header, and the seed of the pieces the file comes in.
 *
 * The check says a file is a ZIP archive exactly when it starts with a
 * local file header or an empty archive's EOCD and an EOCD whose comment
 * ends the file lies in its last 65,557 bytes; the ring, in any pieces,
 * gives the check the same answer.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_validate.h"


/* what API.md says, the slow way */

static ngx_int_t
zip_reference(u_char *f, size_t size)
{
    size_t  i, from;

    if (size < 22) {
        return NGX_DECLINED;
    }

    if (ngx_memcmp(f, "PK\x03\x04", 4) != 0
        && ngx_memcmp(f, "PK\x05\x06", 4) != 0)
    {
        return NGX_DECLINED;
    }

    from = size > NGX_HTTP_MODELREG_ZIP_TAIL
           ? size - NGX_HTTP_MODELREG_ZIP_TAIL : 0;

    for (i = from; i + 22 <= size; i++) {
        if (ngx_memcmp(f + i, "PK\x05\x06", 4) == 0
            && i + 22 + (f[i + 20] | (f[i + 21] << 8)) == size)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *f, *tail;
    size_t                    filler, len, n, off, tail_len;
    uint64_t                  seed, flags;
    ngx_int_t                 want, rc;
    fuzz_in_t                 in;
    ngx_pool_t               *pool;
    ngx_http_modelreg_zip_t   z;

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    seed = fuzz_number(&in, 4);
    flags = fuzz_number(&in, 1);
    filler = fuzz_number(&in, 3) % (3 * NGX_HTTP_MODELREG_ZIP_TAIL);

    /* most files are small: a filler only now and then */

    if ((flags & 0x0c) != 0x0c) {
        filler %= 64;
    }

    len = filler + (in.end - in.p);

    pool = fuzz_pool();

    f = malloc(len ? len : 1);
    fuzz_assert(f != NULL);

    for (n = 0; n < filler; n++) {
        f[n] = (u_char) (n * 131 + (n >> 8));
    }

    if (filler >= 4 && (flags & 1)) {
        ngx_memcpy(f, "PK\x03\x04", 4);
    }

    if (in.end > in.p) {
        ngx_memcpy(f + filler, in.p, in.end - in.p);
    }

    want = zip_reference(f, len);

    /* the check, given the file's head and tail */

    tail_len = ngx_min(len, NGX_HTTP_MODELREG_ZIP_TAIL);
    tail = malloc(tail_len ? tail_len : 1);
    fuzz_assert(tail != NULL);
    ngx_memcpy(tail, f + len - tail_len, tail_len);

    if (len >= 4) {
        fuzz_assert(ngx_http_modelreg_zip_check(f, tail, tail_len,
                                                (off_t) len)
                    == want);
    }

    free(tail);

    /* the ring, in pieces of any size: the same answer */

    ngx_memzero(&z, sizeof(ngx_http_modelreg_zip_t));

    for (off = 0; off < len; off += n) {
        n = fuzz_next(&seed);

        switch (n & 3) {
        case 0:
            n = 1 + (n >> 2) % 16;
            break;
        case 1:
            n = 1 + (n >> 2) % 4096;
            break;
        case 2:
            n = 1 + (n >> 2) % (2 * NGX_HTTP_MODELREG_ZIP_TAIL);
            break;
        default:
            n = len - off;
        }

        n = ngx_min(n, len - off);

        fuzz_assert(ngx_http_modelreg_zip_add(&z, pool, (off_t) off, f + off,
                                              n)
                    == NGX_OK);
    }

    rc = ngx_http_modelreg_zip_done(&z, pool, (off_t) len);
    fuzz_assert(rc == want);

    free(f);
    ngx_destroy_pool(pool);

    return 0;
}
