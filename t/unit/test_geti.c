
/*
 * Unit tests of what the registry reads of Geti's JSON (geti_json.c):
 * the checks, an import request's body, the fields and file name of an
 * imported model.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ngx_http_modelreg_geti_json.h"


static json_t *
load(const char *text)
{
    json_t        *j;
    json_error_t   err;

    j = json_loads(text, 0, &err);
    assert_non_null(j);

    return j;
}


static json_t  *project, *model;
static ngx_str_t  pid = ngx_string("6650a1b2c3d4e5f6a7b8c901");


static int
setup(void **state)
{
    project = load("{\"id\":\"6650a1b2c3d4e5f6a7b8c901\",\"name\":"
                   "\"  --Ünïcode Project!! \",\"creation_time\":\"t\","
                   "\"pipeline\":{\"tasks\":[{\"task_type\":\"dataset\"},"
                   "{\"task_type\":\"rotated_DETECTION\"},"
                   "{\"task_type\":\"classification\"}]}}");
    model = load("{\"architecture\":\"YOLOX\",\"labels\":[{\"n\":\"cat\"}],"
                 "\"performance\":{\"score\":0.5},\"optimized_models\":["
                 "{\"id\":\"9950a1b2c3d4e5f6a7b8c101\",\"name\":\"m\","
                 "\"model_format\":\"OpenVINO\",\"version\":3,"
                 "\"precision\":[\"FP16\"],\"target_device\":null}]}");
    return 0;
}


static int
teardown(void **state)
{
    json_decref(project);
    json_decref(model);
    return 0;
}


static void
test_checks(void **state)
{
    json_t      *o;
    const char  *what;

    assert_null(ngx_http_modelreg_geti_bad_project(project, &what));
    assert_null(ngx_http_modelreg_geti_bad_pipeline(project, &what));
    assert_null(ngx_http_modelreg_geti_bad_model(model, &what));

    o = json_array_get(json_object_get(model, "optimized_models"), 0);
    assert_null(ngx_http_modelreg_geti_bad_optimized(o, model, &what));

    json_object_set_new(o, "version", json_real(3.5));
    assert_string_equal(ngx_http_modelreg_geti_bad_optimized(o, model, &what),
                        "not an integer");
    assert_string_equal(what, "optimized_models[].version");
    json_object_set_new(o, "version", json_integer(3));
}


/*
 * An imported model's fields are held to an upload's limits: a Geti name
 * of 300 bytes was set without its overflow, passed the checks and
 * reached the INSERT (whose CHECK refused it after the file was stored);
 * a project name over 1024 bytes was stored.
 */

static void
test_fields_limits(void **state)
{
    char                         big[1100];
    json_t                      *o, *p;
    ngx_str_t                    msg;
    ngx_http_modelreg_fields_t   f;

    o = json_deep_copy(json_array_get(json_object_get(model,
                                                      "optimized_models"), 0));
    p = json_deep_copy(project);

    ngx_memset(big, 'n', 300);
    big[300] = '\0';
    json_object_set_new(o, "name", json_string(big));

    assert_int_equal(ngx_http_modelreg_fields_init(&f, NULL), NGX_OK);
    assert_int_equal(ngx_http_modelreg_geti_fields(NULL, o, model, p, &pid,
                                                   &f),
                     NGX_OK);
    assert_true(f.overflow[NGX_HTTP_MODELREG_F_NAME]);
    assert_int_equal(ngx_http_modelreg_fields_check(&f, NULL, &msg), 422);
    assert_int_equal(msg.len, sizeof("name must be valid UTF-8 of at most "
                                     "256 bytes.") - 1);

    /* the project's name, over 1024 bytes */

    json_object_set_new(o, "name", json_string("m"));
    ngx_memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_object_set_new(p, "name", json_string(big));

    assert_int_equal(ngx_http_modelreg_fields_init(&f, NULL), NGX_OK);
    assert_int_equal(ngx_http_modelreg_geti_fields(NULL, o, model, p, &pid,
                                                   &f),
                     NGX_OK);
    assert_int_equal(ngx_http_modelreg_fields_check(&f, NULL, &msg), 422);
    assert_memory_equal(msg.data, "project_name must", 17);

    json_decref(p);
    json_decref(o);
}


static void
test_fields(void **state)
{
    json_t                      *o;
    ngx_str_t                    msg, *v;
    ngx_http_modelreg_fields_t   f;

    o = json_array_get(json_object_get(model, "optimized_models"), 0);

    assert_int_equal(ngx_http_modelreg_fields_init(&f, NULL), NGX_OK);
    assert_int_equal(ngx_http_modelreg_geti_fields(NULL, o, model, project,
                                                   &pid, &f),
                     NGX_OK);
    assert_int_equal(ngx_http_modelreg_fields_check(&f, NULL, &msg), NGX_OK);

    v = f.value;
    assert_memory_equal(v[NGX_HTTP_MODELREG_F_VERSION].data, "3", 1);
    assert_memory_equal(v[NGX_HTTP_MODELREG_F_PRECISION].data, "fp16", 4);
    assert_int_equal(v[NGX_HTTP_MODELREG_F_TARGET_DEVICE].len, 0);
    assert_memory_equal(v[NGX_HTTP_MODELREG_F_SCORE].data, "0.5", 3);
    assert_int_equal(v[NGX_HTTP_MODELREG_F_CATEGORY].len,
                     sizeof("Rotated_Detection_Classification") - 1);
    assert_memory_equal(v[NGX_HTTP_MODELREG_F_CATEGORY].data,
                        "Rotated_Detection_Classification",
                        sizeof("Rotated_Detection_Classification") - 1);
    assert_memory_equal(v[NGX_HTTP_MODELREG_F_LABELS].data,
                        "[{\"n\":\"cat\"}]", 13);
}


static void
test_file_name(void **state)
{
    u_char  dst[NGX_HTTP_MODELREG_GETI_SLUG_MAX + 4];
    char    long_name[600];
    size_t  len;

    len = ngx_http_modelreg_geti_file_name(dst, "  --Ünïcode Project!! ");
    assert_int_equal(len, sizeof("n-code-project.zip") - 1);
    assert_memory_equal(dst, "n-code-project.zip", len);

    len = ngx_http_modelreg_geti_file_name(dst, "!!!");
    assert_memory_equal(dst, "model.zip", len);

    ngx_memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    len = ngx_http_modelreg_geti_file_name(dst, long_name);
    assert_int_equal(len, NGX_HTTP_MODELREG_GETI_SLUG_MAX + 4);
}


static void
test_wanted(void **state)
{
    json_t     *body, *models;
    ngx_str_t   why;

    body = load("{\"models\":[{\"id\":\"a\",\"group_id\":\"g\"},"
                "{\"id\":\"b\",\"group_id\":\"g\"}]}");
    assert_int_equal(ngx_http_modelreg_geti_wanted(NULL, body, &models, &why),
                     NGX_OK);
    assert_int_equal(json_array_size(models), 2);
    json_decref(body);

    body = load("{\"models\":[{\"id\":\"a\",\"group_id\":\"g\"},"
                "{\"id\":\"a\",\"group_id\":\"h\"}]}");
    assert_int_equal(ngx_http_modelreg_geti_wanted(NULL, body, &models, &why),
                     NGX_DECLINED);
    assert_int_equal(why.len, sizeof("duplicate model id a.") - 1);
    json_decref(body);

    body = load("{\"models\":[{\"id\":1,\"group_id\":\"g\"}]}");
    assert_int_equal(ngx_http_modelreg_geti_wanted(NULL, body, &models, &why),
                     NGX_DECLINED);
    json_decref(body);

    body = load("{\"models\":[]}");
    assert_int_equal(ngx_http_modelreg_geti_wanted(NULL, body, &models, &why),
                     NGX_DECLINED);
    json_decref(body);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_fields_limits),
        cmocka_unit_test(test_file_name),
        cmocka_unit_test(test_wanted),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
