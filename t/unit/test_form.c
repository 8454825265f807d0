/*
 * Unit tests of query strings and form bodies (form.c): the splitter,
 * the %XX decoder and the form decoder, at their edges.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_form.h"


#define S(s)  (u_char *) s, (u_char *) s + sizeof(s) - 1


static ngx_array_t *
test_args(void)
{
    ngx_array_t  *a;

    a = malloc(sizeof(ngx_array_t));
    assert_non_null(a);
    assert_int_equal(ngx_array_init(a, NULL, 1,
                                    sizeof(ngx_http_modelreg_arg_t)),
                     NGX_OK);
    return a;
}


static void
assert_arg(ngx_http_modelreg_arg_t *a, const char *key, const char *value)
{
    assert_int_equal(a->key.len, strlen(key));
    assert_memory_equal(a->key.data, key, a->key.len);
    assert_int_equal(a->value.len, strlen(value));
    assert_memory_equal(a->value.data, value, a->value.len);
}


static void
test_split(void **state)
{
    ngx_array_t              *args;
    ngx_http_modelreg_arg_t  *a;

    args = test_args();
    assert_int_equal(ngx_http_modelreg_args_split(S("&a=1&&b&c=&=d&e=f=g&"),
                                                  args),
                     NGX_OK);
    assert_int_equal(args->nelts, 5);
    a = args->elts;
    assert_arg(&a[0], "a", "1");
    assert_arg(&a[1], "b", "");
    assert_arg(&a[2], "c", "");
    assert_arg(&a[3], "", "d");
    assert_arg(&a[4], "e", "f=g");

    args = test_args();
    assert_int_equal(ngx_http_modelreg_args_split(S(""), args), NGX_OK);
    assert_int_equal(args->nelts, 0);

    /* split only: nothing decoded */
    args = test_args();
    assert_int_equal(ngx_http_modelreg_args_split(S("a+b=%41"), args),
                     NGX_OK);
    assert_arg(args->elts, "a+b", "%41");
}


static void
test_unescape(void **state)
{
    u_char  out[64];
    size_t  n;

    n = ngx_http_modelreg_unescape(out, (u_char *) "a+b%20c%2fd%2F", 14, 1);
    assert_int_equal(n, 8);
    assert_memory_equal(out, "a b c/d/", 8);

    n = ngx_http_modelreg_unescape(out, (u_char *) "a+b", 3, 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "a+b", 3);

    /* not an escape: kept as written */
    n = ngx_http_modelreg_unescape(out, (u_char *) "%zz%4%", 6, 1);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "%zz%4%", 6);

    n = ngx_http_modelreg_unescape(out, (u_char *) "%00%ff%C3%A9", 12, 1);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\0\xff\xc3\xa9", 4);
}


static void
test_form(void **state)
{
    ngx_array_t              *args;
    ngx_http_modelreg_arg_t  *a;

    args = test_args();
    assert_int_equal(ngx_http_modelreg_form_decode(NULL,
                         S("name=my+model&desc=caf%C3%A9&x%3Dy=%26"), args),
                     NGX_OK);
    assert_int_equal(args->nelts, 3);
    a = args->elts;
    assert_arg(&a[0], "name", "my model");
    assert_arg(&a[1], "desc", "caf\xc3\xa9");
    assert_arg(&a[2], "x=y", "&");
    assert_int_equal(a[2].value.data[a[2].value.len], '\0');
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_form),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
