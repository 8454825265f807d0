
/*
 * Unit tests of the route table and the id format (API.md "Conventions").
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_route.h"


static ngx_int_t
match(const char *path, ngx_http_modelreg_route_t *rt)
{
    return ngx_http_modelreg_route_match((u_char *) path, strlen(path), rt);
}


static void
test_static_routes(void **state)
{
    ngx_http_modelreg_route_t  rt;

    assert_int_equal(match("/health", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_HEALTH);
    assert_null(rt.id.data);

    assert_int_equal(match("/health/ready", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_READY);

    assert_int_equal(match("/models", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_MODELS);
    assert_string_equal(rt.allow, "GET, POST");

    assert_int_equal(match("/audit", &rt), NGX_OK);
    assert_int_equal(match("/metrics", &rt), NGX_OK);
    assert_int_equal(match("/geti/sync", &rt), NGX_OK);
    assert_int_equal(match("/projects", &rt), NGX_OK);
}


static void
test_alias_routes(void **state)
{
    ngx_http_modelreg_route_t  rt;

    assert_int_equal(match("/aliases/res%2Fnet/prod", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_ALIAS);
    assert_int_equal(rt.id.len, 9);
    assert_memory_equal(rt.id.data, "res%2Fnet", 9);
    assert_int_equal(rt.sub.len, 4);
    assert_memory_equal(rt.sub.data, "prod", 4);
    assert_null(rt.id_kind);

    assert_int_equal(match("/aliases/n/a/files", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_ALIAS_FILES);
    assert_memory_equal(rt.sub.data, "a", 1);

    assert_int_equal(match("/aliases/n", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_ALIASES);
    assert_null(rt.sub.data);

    assert_int_equal(match("/aliases/n/a/b", &rt), NGX_DECLINED);
    assert_int_equal(match("/aliases//a", &rt), NGX_DECLINED);
}


static void
test_id_routes(void **state)
{
    ngx_http_modelreg_route_t  rt;

    assert_int_equal(match("/models/abc", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_MODEL);
    assert_int_equal(rt.id.len, 3);
    assert_memory_equal(rt.id.data, "abc", 3);
    assert_string_equal(rt.id_kind, "model");
    assert_string_equal(rt.allow, "GET, PUT, DELETE");

    assert_int_equal(match("/models/abc/files", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_MODEL_FILES);
    assert_int_equal(rt.id.len, 3);
    assert_true(rt.methods & NGX_HTTP_MODELREG_M_HEAD);
    assert_false(rt.methods & NGX_HTTP_MODELREG_M_PUT);

    assert_int_equal(match("/projects/p1/geti-models/download", &rt), NGX_OK);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_PROJECT_DOWNLOAD);
    assert_string_equal(rt.id_kind, "project");
    assert_int_equal(rt.methods, NGX_HTTP_MODELREG_M_POST);
}


static void
test_no_route(void **state)
{
    ngx_http_modelreg_route_t  rt;

    assert_int_equal(match("", &rt), NGX_DECLINED);
    assert_int_equal(match("/", &rt), NGX_DECLINED);
    assert_int_equal(match("/healthz", &rt), NGX_DECLINED);
    assert_int_equal(match("/health/", &rt), NGX_DECLINED);
    assert_int_equal(match("/models/", &rt), NGX_DECLINED);
    assert_int_equal(match("/models//files", &rt), NGX_DECLINED);
    assert_int_equal(match("/models/a/files/", &rt), NGX_DECLINED);
    assert_int_equal(match("/models/a/b", &rt), NGX_DECLINED);
    assert_int_equal(match("/MODELS", &rt), NGX_DECLINED);
    assert_int_equal(rt.route, NGX_HTTP_MODELREG_ROUTE_NONE);
}


static void
test_valid_id(void **state)
{
    char  buf[200];

    assert_int_equal(ngx_http_modelreg_valid_id((u_char *) "abcdefgh_-012345",
                                                16), NGX_OK);
    assert_int_equal(ngx_http_modelreg_valid_id((u_char *) "abcdefgh_-01234",
                                                15), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_id((u_char *) "abcdefgh.-012345",
                                                16), NGX_DECLINED);
    assert_int_equal(ngx_http_modelreg_valid_id((u_char *) "abcdefgh -012345",
                                                16), NGX_DECLINED);

    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(ngx_http_modelreg_valid_id((u_char *) buf, 128), NGX_OK);
    assert_int_equal(ngx_http_modelreg_valid_id((u_char *) buf, 129),
                     NGX_DECLINED);

    /* a UUID is a valid id */
    assert_int_equal(ngx_http_modelreg_valid_id(
                         (u_char *) "0b0e3f2c-1c4e-4a43-9f7a-2f4d3b1e5c6d", 36),
                     NGX_OK);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_routes),
        cmocka_unit_test(test_id_routes),
        cmocka_unit_test(test_alias_routes),
        cmocka_unit_test(test_no_route),
        cmocka_unit_test(test_valid_id),
    };

    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
