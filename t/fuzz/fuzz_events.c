
/*
 * GET /events's arguments and the change feed's texts (events_args.c):
 * a query string and a Last-Event-ID from a client, a notification's
 * payload from PostgreSQL (anyone who may LOGIN may NOTIFY it).  Input:
 * "<query>\n<notification>\n<cursor>"; from its end, the numbers of a
 * cursor to print.
 *
 * A query string parses or is refused with a message (400, 422), never
 * anything else; what parses is within its bounds, and its cursor prints
 * to one that parses to the same.  A cursor that parses prints within
 * NGX_HTTP_MODELREG_CURSOR_LEN to one that parses to it again; any cursor
 * of valid numbers does.  A notification parses to an id, an action
 * (-1: unknown) and a name within it, or is refused.
 */


#include "fuzz.h"
#include "ngx_http_modelreg_events_args.h"


static void
round_trip(ngx_http_modelreg_cursor_t *c)
{
    u_char                      buf[NGX_HTTP_MODELREG_CURSOR_LEN], *p;
    ngx_http_modelreg_cursor_t  c2;

    p = ngx_http_modelreg_cursor_print(buf, c);

    fuzz_assert((size_t) (p - buf) <= sizeof(buf));
    fuzz_assert(ngx_http_modelreg_cursor_parse(buf, p - buf, &c2) == NGX_OK);
    fuzz_assert(c2.lo == c->lo && c2.hi == c->hi);
    fuzz_assert(c->lo == c->hi || c2.last == c->last);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t                          id;
    uint64_t                         a, b;
    ngx_int_t                        rc, action;
    ngx_str_t                        query, notice, text, msg, name;
    fuzz_in_t                        in;
    ngx_pool_t                      *pool;
    ngx_http_modelreg_cursor_t       c;
    ngx_http_modelreg_events_args_t  args;

    pool = fuzz_pool();

    in.p = (u_char *) data;
    in.end = (u_char *) data + size;

    /* a cursor of valid numbers, from the end */

    a = fuzz_number(&in, 8) & NGX_HTTP_MODELREG_CURSOR_MAX;
    b = fuzz_number(&in, 8) & NGX_HTTP_MODELREG_CURSOR_MAX;
    c.lo = ngx_min(a, b);
    c.hi = ngx_max(a, b);
    c.last = (int64_t) (fuzz_number(&in, 8) & NGX_HTTP_MODELREG_CURSOR_MAX);
    round_trip(&c);

    fuzz_piece(&in, '\n', &query);
    fuzz_piece(&in, '\n', &notice);
    fuzz_rest(pool, &in, &text);

    query.data = fuzz_copy(pool, &query);
    notice.data = fuzz_copy(pool, &notice);

    rc = ngx_http_modelreg_events_args_parse(pool, &query, &args, &msg);

    if (rc == NGX_OK) {
        fuzz_assert(args.wait <= NGX_HTTP_MODELREG_EVENTS_WAIT_MAX);
        fuzz_assert(args.limit >= 1
                    && args.limit <= NGX_HTTP_MODELREG_EVENTS_LIMIT_MAX);
        fuzz_assert(args.actions < (1 << 8));

        if (args.has_since) {
            fuzz_assert(args.since.lo <= args.since.hi);
            round_trip(&args.since);
        }

    } else {
        fuzz_assert(rc == 400 || rc == 422);
        fuzz_assert(msg.len > 0 && msg.data != NULL);
    }

    if (ngx_http_modelreg_cursor_parse(text.data, text.len, &c) == NGX_OK) {
        fuzz_assert(c.lo <= c.hi && c.hi <= NGX_HTTP_MODELREG_CURSOR_MAX);
        round_trip(&c);
    }

    if (ngx_http_modelreg_events_notice(notice.data, notice.len, &id,
                                        &action, &name)
        == NGX_OK)
    {
        fuzz_assert(id >= 0);
        fuzz_assert(action >= -1 && action < 8);
        fuzz_assert(name.data == NULL
                    || (name.data >= notice.data
                        && name.data + name.len == notice.data + notice.len));

        if (rc == NGX_OK) {
            (void) ngx_http_modelreg_events_match(&args, action, &name);
        }
    }

    ngx_destroy_pool(pool);

    return 0;
}
