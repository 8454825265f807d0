/*
 * Unit tests of GET /events's arguments and the change feed's texts
 * (events_args.c): cursors, "H" and "L.H.I", read and printed back,
 * anything else refused (signs, spaces, overflow, L above H, four parts);
 * the query string (each argument, its bounds, the message naming it, the
 * unknown keys listed once each in request order, the last repeat
 * winning); the action list; a notification's three fields; and which
 * events a filter matches.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_events_args.h"


static ngx_pool_t  *pool;


static ngx_int_t
parse(const char *q, ngx_http_modelreg_events_args_t *a, ngx_str_t *msg)
{
    ngx_str_t  s;

    s.data = (u_char *) q;
    s.len = strlen(q);
    ngx_str_null(msg);

    return ngx_http_modelreg_events_args_parse(pool, &s, a, msg);
}


static void
assert_msg(ngx_str_t *msg, const char *v)
{
    assert_int_equal(msg->len, strlen(v));
    assert_memory_equal(msg->data, v, msg->len);
}


static ngx_int_t
cursor(const char *s, ngx_http_modelreg_cursor_t *c)
{
    return ngx_http_modelreg_cursor_parse((u_char *) s, strlen(s), c);
}


static void
assert_round_trip(const char *s)
{
    u_char                      buf[NGX_HTTP_MODELREG_CURSOR_LEN], *p;
    ngx_http_modelreg_cursor_t  c;

    assert_int_equal(cursor(s, &c), NGX_OK);
    p = ngx_http_modelreg_cursor_print(buf, &c);
    assert_int_equal(p - buf, strlen(s));
    assert_memory_equal(buf, s, p - buf);
}


static void
test_cursor(void **state)
{
    ngx_http_modelreg_cursor_t  c;

    assert_int_equal(cursor("1187", &c), NGX_OK);
    assert_true(c.lo == 1187 && c.hi == 1187 && c.last == 0);

    assert_int_equal(cursor("100.120.7", &c), NGX_OK);
    assert_true(c.lo == 100 && c.hi == 120 && c.last == 7);

    assert_int_equal(cursor("0", &c), NGX_OK);
    assert_true(c.lo == 0 && c.hi == 0);

    assert_int_equal(cursor("9223372036854775807", &c), NGX_OK);
    assert_true(c.lo == 9223372036854775807ULL);

    assert_round_trip("1187");
    assert_round_trip("0");
    assert_round_trip("100.120.7");
    assert_round_trip("5.9223372036854775807.9223372036854775807");

    /* "L.L.I" is "L": the window [L, L) is empty */
    assert_int_equal(cursor("5.5.3", &c), NGX_OK);
    assert_true(c.lo == 5 && c.hi == 5);

    assert_int_equal(cursor("", &c), NGX_DECLINED);
    assert_int_equal(cursor("9223372036854775808", &c), NGX_DECLINED);
    assert_int_equal(cursor("99999999999999999999", &c), NGX_DECLINED);
    assert_int_equal(cursor("-1", &c), NGX_DECLINED);
    assert_int_equal(cursor("+1", &c), NGX_DECLINED);
    assert_int_equal(cursor(" 1", &c), NGX_DECLINED);
    assert_int_equal(cursor("1 ", &c), NGX_DECLINED);
    assert_int_equal(cursor("1.2", &c), NGX_DECLINED);
    assert_int_equal(cursor("1.2.3.4", &c), NGX_DECLINED);
    assert_int_equal(cursor("1..3", &c), NGX_DECLINED);
    assert_int_equal(cursor("3.2.1", &c), NGX_DECLINED);
    assert_int_equal(cursor("0x10", &c), NGX_DECLINED);
    assert_int_equal(cursor("abc", &c), NGX_DECLINED);
}


static void
test_args(void **state)
{
    ngx_str_t                        msg;
    ngx_http_modelreg_events_args_t  a;

    assert_int_equal(parse("", &a, &msg), NGX_OK);
    assert_int_equal(a.has_since, 0);
    assert_int_equal(a.wait, 0);
    assert_int_equal(a.actions, 0);
    assert_int_equal(a.name.len, 0);
    assert_int_equal(a.limit, 100);

    assert_int_equal(parse("since=12&wait=60&action=model.create,alias.set"
                           "&name=resnet%2050&limit=1000", &a, &msg), NGX_OK);
    assert_int_equal(a.has_since, 1);
    assert_true(a.since.lo == 12);
    assert_int_equal(a.wait, 60);
    assert_int_equal(a.actions, (1 << 0) | (1 << 6));
    assert_int_equal(a.name.len, 9);
    assert_memory_equal(a.name.data, "resnet 50", 9);
    assert_int_equal(a.limit, 1000);

    /* empty values are absent; the last of a repeat wins */
    assert_int_equal(parse("since=&wait=&action=&name=&limit=", &a, &msg),
                     NGX_OK);
    assert_int_equal(a.has_since, 0);
    assert_int_equal(a.limit, 100);
    assert_int_equal(parse("wait=5&wait=0", &a, &msg), NGX_OK);
    assert_int_equal(a.wait, 0);

    /* empty items of the action list are none */
    assert_int_equal(parse("action=,geti.sync,,", &a, &msg), NGX_OK);
    assert_int_equal(a.actions, 1 << 5);

    assert_int_equal(parse("wait=61", &a, &msg), 400);
    assert_msg(&msg, "Invalid wait: must be an integer from 0 to 60 "
                     "(seconds).");
    assert_int_equal(parse("wait=-1", &a, &msg), 400);
    assert_int_equal(parse("wait=1.5", &a, &msg), 400);

    assert_int_equal(parse("since=x", &a, &msg), 400);
    assert_msg(&msg, "Invalid since: use the cursor of a previous answer "
                     "(\"next\" or an event's \"cursor\").");

    assert_int_equal(parse("action=model.create,model.rename", &a, &msg),
                     400);
    assert_msg(&msg, "Invalid action: \"model.rename\" is not an audit "
                     "action.");

    assert_int_equal(parse("name=%ff", &a, &msg), 400);
    assert_msg(&msg, "Invalid name: must be valid UTF-8.");

    assert_int_equal(parse("limit=0", &a, &msg), 400);
    assert_msg(&msg, "Invalid limit: must be an integer from 1 to 1000.");
    assert_int_equal(parse("limit=1001", &a, &msg), 400);

    /* unknown keys: each once, in request order, before any value */
    assert_int_equal(parse("b=1&wait=99&a=2&b=3", &a, &msg), 422);
    assert_msg(&msg, "Invalid query parameter(s): b, a");
    assert_int_equal(parse("model_id=x", &a, &msg), 422);
    assert_msg(&msg, "Invalid query parameter(s): model_id");
}


static void
test_notice(void **state)
{
    int64_t     id;
    ngx_int_t   action;
    ngx_str_t   name;

#define notice(s)                                                             \
    ngx_http_modelreg_events_notice((u_char *) s, strlen(s), &id, &action,    \
                                    &name)

    assert_int_equal(notice("42 model.update resnet 50"), NGX_OK);
    assert_true(id == 42);
    assert_int_equal(action, 1);
    assert_int_equal(name.len, 9);
    assert_memory_equal(name.data, "resnet 50", 9);

    assert_int_equal(notice("7 geti.sync"), NGX_OK);
    assert_true(id == 7);
    assert_int_equal(action, 5);
    assert_null(name.data);

    /* an action of a later version: no filter on actions matches it */
    assert_int_equal(notice("8 model.rename x"), NGX_OK);
    assert_int_equal(action, -1);

    assert_int_equal(notice(""), NGX_DECLINED);
    assert_int_equal(notice("x model.create"), NGX_DECLINED);
    assert_int_equal(notice("42"), NGX_DECLINED);

#undef notice
}


static void
test_match(void **state)
{
    ngx_str_t                        msg, n;
    ngx_http_modelreg_events_args_t  a;

    ngx_str_set(&n, "resnet");

    assert_int_equal(parse("", &a, &msg), NGX_OK);
    assert_true(ngx_http_modelreg_events_match(&a, 3, &n));
    assert_true(ngx_http_modelreg_events_match(&a, -1, &n));

    assert_int_equal(parse("action=model.delete,alias.delete&name=resnet",
                           &a, &msg), NGX_OK);
    assert_true(ngx_http_modelreg_events_match(&a, 2, &n));
    assert_true(ngx_http_modelreg_events_match(&a, 7, &n));
    assert_false(ngx_http_modelreg_events_match(&a, 0, &n));
    assert_false(ngx_http_modelreg_events_match(&a, -1, &n));

    ngx_str_set(&n, "resnet5");
    assert_false(ngx_http_modelreg_events_match(&a, 2, &n));
    ngx_str_set(&n, "resne");
    assert_false(ngx_http_modelreg_events_match(&a, 2, &n));
    ngx_str_null(&n);
    assert_false(ngx_http_modelreg_events_match(&a, 2, &n));

    assert_int_equal(ngx_http_modelreg_events_action((u_char *) "alias.set",
                                                     9), 6);
    assert_int_equal(ngx_http_modelreg_events_action((u_char *) "alias.se",
                                                     8), -1);
}


int
main(void)
{
    int  rc;

    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_notice),
        cmocka_unit_test(test_match),
    };

    pool = ngx_create_pool(4096, NULL);

    rc = cmocka_run_group_tests(tests, NULL, NULL);

    ngx_destroy_pool(pool);

    return rc;
}
