
/*
 * Unit tests of a model's fields (fields.c): JSON bodies, field by field,
 * at the edges the fuzz target (t/fuzz/fuzz_fields.c) found.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_fields.h"


#define B(s)  (u_char *) s, (u_char *) s + sizeof(s) - 1


static ngx_int_t
json(ngx_http_modelreg_fields_t *f, u_char *p, u_char *last)
{
    assert_int_equal(ngx_http_modelreg_fields_init(f, NULL), NGX_OK);

    return ngx_http_modelreg_fields_json(f, NULL, p, last);
}


static void
test_json(void **state)
{
    ngx_http_modelreg_fields_t  f;

    assert_int_equal(json(&f, B("{\"name\":\"a\",\"overview\":{\"a\":[0,2]},"
                                "\"score\":1e-320}")),
                     NGX_OK);
    assert_int_equal(f.value[NGX_HTTP_MODELREG_F_NAME].len, 1);
    assert_memory_equal(f.value[NGX_HTTP_MODELREG_F_OVERVIEW].data,
                        "{\"a\":[0,2]}", 11);
    assert_memory_equal(f.value[NGX_HTTP_MODELREG_F_SCORE].data, "1e-320",
                        6);

    assert_int_equal(json(&f, B("[1]")), NGX_DECLINED);
    assert_int_equal(json(&f, B("{\"name\":\"a\"} x")), NGX_DECLINED);
}


/*
 * A NUL byte is in no JSON text, but jansson skips one between tokens:
 * a value holding one ({"a":[0<NUL>,2]}, the fuzzer's) was taken, with
 * the NUL dropped, where the body is malformed (400).
 */

static void
test_json_nul(void **state)
{
    ngx_http_modelreg_fields_t  f;

    assert_int_equal(json(&f, B("{\"overview\":{\"a\":[0\0,2]}}")),
                     NGX_DECLINED);
    assert_int_equal(json(&f, B("{\"name\":\"a\"}\0")), NGX_DECLINED);
    assert_int_equal(json(&f, B("{\"name\":null\0,\"version\":\"1\"}")),
                     NGX_DECLINED);
    assert_int_equal(json(&f, B("{\"name\":\"a\0\"}")), NGX_DECLINED);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_nul),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
