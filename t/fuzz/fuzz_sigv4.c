
/*
 * The SigV4 signer (sigv4.c): canonical request, string to sign, key,
 * Authorization.  Input: lines "method", "path", "query", "payload",
 * "date", "region", "service", "secret", "access key", then headers as
 * "name:value" lines.
 *
 * The canonical request has its six lines; the path keeps only
 * unreserved bytes, "/" and %XX; the query is canonical already (signed
 * again, it does not change: names and values encoded once, sorted); the
 * signed headers are the lowercased names, sorted, each once; the
 * Authorization names them and ends with 64 hex digits.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_sigv4.h"


static ngx_int_t
unreserved(u_char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}


static ngx_int_t
hex_upper(u_char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}


/* only unreserved bytes, %XX, and "/" where "slash" */

static void
check_encoded(u_char *p, u_char *end, ngx_uint_t slash, u_char *also)
{
    while (p < end) {
        if (*p == '%') {
            fuzz_assert(end - p >= 3 && hex_upper(p[1]) && hex_upper(p[2]));
            p += 3;
            continue;
        }

        fuzz_assert(unreserved(*p) || (slash && *p == '/')
                    || (also && ngx_strchr(also, *p) && *p));
        p++;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                            *p, *end, *line[8], *q, *prev, key[32];
    size_t                             plen;
    ngx_int_t                          rc;
    ngx_str_t                          creq, sh, creq2, sh2, sts, auth, sec;
    ngx_str_t                          access, raw, hl;
    ngx_uint_t                         i, n, nl;
    fuzz_in_t                          in;
    ngx_pool_t                        *pool;
    ngx_http_modelreg_sigv4_t          s, s2;
    ngx_http_modelreg_sigv4_header_t   h[NGX_HTTP_MODELREG_SIGV4_MAX_HDRS + 2];

    pool = fuzz_pool();

    raw.data = (u_char *) data;
    raw.len = size;

    in.p = fuzz_copy(pool, &raw);
    in.end = in.p + size;

    ngx_memzero(&s, sizeof(s));

    fuzz_piece(&in, '\n', &s.method);
    fuzz_piece(&in, '\n', &s.path);
    fuzz_piece(&in, '\n', &s.query);
    fuzz_piece(&in, '\n', &s.payload);
    fuzz_piece(&in, '\n', &s.date);
    fuzz_piece(&in, '\n', &s.region);
    fuzz_piece(&in, '\n', &s.service);
    fuzz_piece(&in, '\n', &sec);
    fuzz_piece(&in, '\n', &access);

    for (n = 0; in.p < in.end && n < NGX_HTTP_MODELREG_SIGV4_MAX_HDRS + 2;
         n++)
    {
        fuzz_piece(&in, '\n', &hl);
        q = ngx_strlchr(hl.data, hl.data + hl.len, ':');

        h[n].name.data = hl.data;
        h[n].name.len = (q ? q : hl.data + hl.len) - hl.data;
        h[n].value.data = q ? q + 1 : hl.data + hl.len;
        h[n].value.len = hl.data + hl.len - h[n].value.data;
    }

    s.headers = h;
    s.nheaders = n;

    rc = ngx_http_modelreg_sigv4_canonical(pool, &s, &creq, &sh);

    if (n > NGX_HTTP_MODELREG_SIGV4_MAX_HDRS) {
        fuzz_assert(rc == NGX_ERROR);
        goto done;
    }

    if (rc != NGX_OK) {
        goto done;      /* more than 64 query arguments */
    }

    /* method, path, query, headers..., "", signed headers, payload */

    p = creq.data;
    end = creq.data + creq.len;

    for (nl = 0; nl < 3; nl++) {
        line[nl] = p;
        p = ngx_strlchr(p, end, '\n');
        fuzz_assert(p != NULL);
        p++;
    }

    fuzz_assert(line[1] + 1 < creq.data + creq.len);
    fuzz_assert((size_t) (line[1] - line[0] - 1) == s.method.len);

    check_encoded(line[1], line[2] - 1, 1, NULL);
    fuzz_assert(s.path.len > 0 || line[2] - line[1] == 2);

    check_encoded(line[2], p - 1, 0, (u_char *) "=&");

    /* the canonical query, signed again, is itself */

    s2 = s;
    s2.query.data = line[2];
    s2.query.len = p - 1 - line[2];

    fuzz_assert(ngx_http_modelreg_sigv4_canonical(pool, &s2, &creq2, &sh2)
                == NGX_OK);
    fuzz_assert(creq2.len == creq.len
                && ngx_memcmp(creq2.data, creq.data, creq.len) == 0);

    /*
     * signed headers: lowercase names, each once, sorted (names with ";"
     * or NUL aside: the signer's own names have neither)
     */

    for (i = 0; i < n; i++) {
        if (ngx_strlchr(h[i].name.data, h[i].name.data + h[i].name.len, ';')
            || ngx_strlchr(h[i].name.data, h[i].name.data + h[i].name.len,
                           '\0'))
        {
            break;
        }
    }

    prev = NULL;
    plen = 0;

    for (q = sh.data, end = sh.data + sh.len; i == n && q < end; q = p + 1) {
        p = ngx_strlchr(q, end, ';');
        p = p ? p : end;

        for (line[3] = q; line[3] < p; line[3]++) {
            fuzz_assert(*line[3] < 'A' || *line[3] > 'Z');
        }

        if (prev) {
            rc = ngx_strncmp(prev, q, ngx_min(plen, (size_t) (p - q)));
            fuzz_assert(rc < 0 || (rc == 0 && plen < (size_t) (p - q)));
        }

        prev = q;
        plen = p - q;
    }

    fuzz_assert(creq.len >= sh.len + s.payload.len + 1);
    fuzz_assert(ngx_memcmp(creq.data + creq.len - s.payload.len,
                           s.payload.data, s.payload.len) == 0);

    /* signing: a date of 8 bytes at least, a secret of 256 at most */

    rc = ngx_http_modelreg_sigv4_string_to_sign(pool, &s, &creq, &sts);
    fuzz_assert(rc == (s.date.len >= 8 ? NGX_OK : NGX_ERROR));

    if (rc != NGX_OK) {
        goto done;
    }

    fuzz_assert(sts.len == sizeof("AWS4-HMAC-SHA256\n") - 1 + s.date.len + 1
                           + 8 + 1 + s.region.len + 1 + s.service.len
                           + sizeof("/aws4_request\n") - 1 + 64);

    if (ngx_http_modelreg_sigv4_key(&sec, &s.date, &s.region, &s.service,
                                    key)
        != NGX_OK)
    {
        fuzz_assert(sec.len > 256);
        goto done;
    }

    fuzz_assert(ngx_http_modelreg_sigv4_authorization(pool, &s, &access, key,
                                                      &auth)
                == NGX_OK);

    fuzz_assert(auth.len > 64 + sh.len);
    fuzz_assert(ngx_strncmp(auth.data, "AWS4-HMAC-SHA256 Credential=", 28)
                == 0);

    for (p = auth.data + auth.len - 64; p < auth.data + auth.len; p++) {
        fuzz_assert((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    }

    fuzz_assert(ngx_memcmp(auth.data + auth.len - 64 - sh.len
                           - sizeof(", Signature=") + 1,
                           sh.data, sh.len) == 0);

done:

    ngx_destroy_pool(pool);

    return 0;
}
