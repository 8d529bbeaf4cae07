/* Unit suite for core/base/json.c: the strict RFC 8259 check run before json-c. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/json.h"
#include "mh_test.h"

static enum mh_json_verdict check(const char *s, int depth, size_t *at, const char **why)
{
    *at = 0;
    *why = NULL;
    return mh_json_check(s, strlen(s), depth, at, why);
}

static void test_json_accepts_valid_documents(void)
{
    static const char *const ok[] = {
        "\"\\ud800\"", /* a lone surrogate escape: the grammar allows it (RFC 8259 8.2) */
        "{}",
        "[]",
        "0",
        "-0.5e+10",
        "\"\\u00e9\\ud83d\\ude00\"",
        "true",
        "null",
        " {\"a\": [1, 2, {\"b\": null}], \"c\": \"caf\xc3\xa9\"} ",
        "1E3",
        "\"\\/\"",
    };
    size_t at;
    const char *why;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        CU_ASSERT_EQUAL(check(ok[i], 64, &at, &why), MH_JSON_VALID);
}

static void test_json_refuses_what_json_c_would_accept(void)
{
    static const char *const bad[] = {
        "{'a': 1}", "[1, 2,]", "{\"a\": 1,}", "NaN",           "Infinity",  "01",
        "1.",       ".5",      "+1",          "\"tab\there\"", "\"\\x41\"", "[1] [2]",
        "",         "   ",     "{\"a\" 1}",   "tru",           "\"\xff\"",
    };
    size_t at;
    const char *why;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(check(bad[i], 64, &at, &why), MH_JSON_INVALID);
        CU_ASSERT_PTR_NOT_NULL(why);
    }
}

static void test_json_reports_where(void)
{
    size_t at;
    const char *why;

    CU_ASSERT_EQUAL(check("[1, 2,]", 64, &at, &why), MH_JSON_INVALID);
    CU_ASSERT_EQUAL(at, 6);
}

static void test_json_depth_limit(void)
{
    size_t at;
    const char *why;

    CU_ASSERT_EQUAL(check("[[[1]]]", 3, &at, &why), MH_JSON_VALID);
    CU_ASSERT_EQUAL(check("[[[[1]]]]", 3, &at, &why), MH_JSON_TOO_DEEP);
    CU_ASSERT_EQUAL(check("{\"a\":{\"b\":{\"c\":{}}}}", 3, &at, &why), MH_JSON_TOO_DEEP);
}

static const struct mh_test_case json_tests[] = {
    {"accepts valid documents", test_json_accepts_valid_documents},
    {"refuses what json-c would accept", test_json_refuses_what_json_c_would_accept},
    {"reports where", test_json_reports_where},
    {"depth limit", test_json_depth_limit},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "json", json_tests);
}
