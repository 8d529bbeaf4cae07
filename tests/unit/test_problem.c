/* Unit suite for core/base/problem.c: the one problem+json builder and its JSON escaping. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "base/problem.h"
#include "mh_test.h"

static char *build(int status, const char *title, const char *type, const char *detail)
{
    struct mh_buf b = {0};
    char *s;

    CU_ASSERT_FATAL(mh_problem_build(&b, status, title, type, detail));
    mh_buf_add(&b, "", 1);
    s = b.data;
    return s;
}

static void test_problem_fields(void)
{
    char *s = build(404, "Not Found", NULL, "no route for GET /x");

    CU_ASSERT_STRING_EQUAL(s, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
                              "\"detail\":\"no route for GET /x\"}");
    free(s);
    s = build(409, "Conflict", "https://example.com/t", NULL);
    CU_ASSERT_STRING_EQUAL(s, "{\"type\":\"https://example.com/t\",\"title\":\"Conflict\","
                              "\"status\":409}");
    free(s);
}

static void test_problem_escapes_what_clients_send(void)
{
    /* A detail quoting client input: quotes, backslashes, control characters, bad UTF-8. */
    char *s = build(400, "Bad Request", NULL, "bad \"x\\y\"\n\x01 caf\xc3\xa9 \xff end");
    json_object *o = json_tokener_parse(s);

    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(o, "detail")),
                           "bad \"x\\y\"\n\x01 caf\xc3\xa9 \xef\xbf\xbd end");
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\\u0001"));
    json_object_put(o);
    free(s);
}

static void test_problem_truncated_utf8_is_replaced(void)
{
    struct mh_buf b = {0};

    CU_ASSERT(mh_json_put_string(&b, "a\xe2\x82"));
    mh_buf_add(&b, "", 1);
    CU_ASSERT_STRING_EQUAL(b.data, "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
    mh_buf_cleanup(&b);
}

static const struct mh_test_case problem_tests[] = {
    {"fields", test_problem_fields},
    {"escapes what clients send", test_problem_escapes_what_clients_send},
    {"truncated utf8 is replaced", test_problem_truncated_utf8_is_replaced},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "problem", problem_tests);
}
