
/*
 * Page tokens (validate.c): GET /models' "<microseconds>.<id>" and
 * GET /audit's "<event id>".  Input: a token to decode; from its end,
 * numbers and an id to encode.
 *
 * Decoding any bytes either fails or gives a time below 2^53 and a valid
 * id (an event id from 0 to 2^63 - 1), which encode to a token that
 * decodes to the same; every token made from such values decodes to
 * them.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_validate.h"
#include "ngx_http_modelreg_route.h"


static const char  idchars[] = "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";


static void
models_round_trip(int64_t us, ngx_str_t *id)
{
    u_char     buf[NGX_INT64_LEN + 1 + 128];
    int64_t    us2;
    ngx_str_t  token, id2;

    fuzz_assert(id->len <= 128);

    token.data = buf;
    token.len = ngx_http_modelreg_token_encode(buf, us, id) - buf;

    fuzz_assert(token.len <= sizeof(buf));
    fuzz_assert(ngx_http_modelreg_token_decode(&token, &us2, &id2)
                == NGX_OK);
    fuzz_assert(us2 == us);
    fuzz_assert(id2.len == id->len
                && ngx_memcmp(id2.data, id->data, id->len) == 0);
}


static void
audit_round_trip(int64_t v)
{
    u_char     buf[NGX_INT64_LEN];
    int64_t    v2;
    ngx_str_t  token;

    token.data = buf;
    token.len = ngx_http_modelreg_audit_token_encode(buf, v) - buf;

    fuzz_assert(token.len <= sizeof(buf));
    fuzz_assert(ngx_http_modelreg_audit_token_decode(&token, &v2) == NGX_OK);
    fuzz_assert(v2 == v);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *p, idbuf[128];
    size_t       n;
    int64_t      us, v;
    uint64_t     u;
    ngx_str_t    token, id;
    fuzz_in_t    in;
    ngx_pool_t  *pool;

    pool = fuzz_pool();

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    /* values to encode, from the end */

    u = fuzz_number(&in, 8);
    v = (int64_t) (u & INT64_MAX);
    us = (int64_t) (u % NGX_HTTP_MODELREG_TOKEN_US_MAX);

    n = 16 + fuzz_number(&in, 1) % 113;

    for (p = idbuf; p < idbuf + n; p++) {
        *p = idchars[fuzz_number(&in, 1) % (sizeof(idchars) - 1)];
    }

    id.data = idbuf;
    id.len = n;

    fuzz_assert(ngx_http_modelreg_valid_id(id.data, id.len) == NGX_OK);

    models_round_trip(us, &id);
    models_round_trip(0, &id);
    models_round_trip(NGX_HTTP_MODELREG_TOKEN_US_MAX - 1, &id);
    audit_round_trip(v);
    audit_round_trip(0);
    audit_round_trip(INT64_MAX);

    /* what is left: a token as a client sends it */

    fuzz_rest(pool, &in, &token);

    if (ngx_http_modelreg_token_decode(&token, &us, &id) == NGX_OK) {
        fuzz_assert(us >= 0 && us < NGX_HTTP_MODELREG_TOKEN_US_MAX);
        fuzz_assert(ngx_http_modelreg_valid_id(id.data, id.len) == NGX_OK);
        fuzz_assert(id.data >= token.data
                    && id.data + id.len == token.data + token.len);
        models_round_trip(us, &id);
    }

    if (ngx_http_modelreg_audit_token_decode(&token, &v) == NGX_OK) {
        fuzz_assert(v >= 0);
        audit_round_trip(v);
    }

    ngx_destroy_pool(pool);

    return 0;
}
