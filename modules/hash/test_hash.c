/*
 * hash's handler through the testing host: a known PBKDF2-HMAC-SHA256 vector (RFC 7914,
 * section 11), every refused input, the iteration bound and a cancelled request.
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

/* Starts hash with @p settings (libconfig text, may be NULL). */
static struct mh_testing *started(const char *settings)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    if (settings)
        mh_testing_settings(t, settings);
    if (t && mh_testing_start(t) != MH_OK) {
        mh_testing_free(t);
        return NULL;
    }
    return t;
}

/* POSTs @p json to the handler. @return the request, answered. */
static struct mh_req *post(struct mh_testing *t, const char *json)
{
    struct mh_req *req = mh_testing_req(t, "POST", "/hash");

    mh_testing_req_json(req, json);
    mh_testing_call(req, "hash");
    return req;
}

static void test_hash_matches_the_rfc_7914_vector(void)
{
    struct mh_testing *t = started(NULL);
    struct mh_req *req;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    req = post(t, "{\"password\": \"passwd\", \"salt\": \"salt\", \"iterations\": 1, "
                  "\"length\": 64}");
    CU_ASSERT_EQUAL(mh_testing_status(req), 200);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_json_str(req, "digest")),
                           "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
                           "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_json_str(req, "algorithm")), "pbkdf2-sha256");
    CU_ASSERT_EQUAL(json_object_get_int(mh_testing_json_get(req, "length")), 64);
    mh_testing_free(t);
}

static void test_hash_default_length_is_32_bytes(void)
{
    struct mh_testing *t = started(NULL);
    struct mh_req *req;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    req = post(t, "{\"password\": \"p\", \"salt\": \"s\", \"iterations\": 2}");
    CU_ASSERT_EQUAL(mh_testing_status(req), 200);
    CU_ASSERT_EQUAL(strlen(mh_test_str(mh_testing_json_str(req, "digest"))), 64);
    mh_testing_free(t);
}

static void test_hash_refuses_bad_input_with_400(void)
{
    static const struct {
        const char *body, *detail;
    } cases[] = {
        {"[1]", "must be a JSON object"},
        {"{\"salt\": \"s\", \"iterations\": 1}", "'password' must be a string"},
        {"{\"password\": \"p\", \"iterations\": 1}", "'salt' must be a string"},
        {"{\"password\": \"p\", \"salt\": \"s\"}", "'iterations' must be an integer"},
        {"{\"password\": \"p\", \"salt\": \"s\", \"iterations\": 0}", "must be 1..1000, not 0"},
        {"{\"password\": \"p\", \"salt\": \"s\", \"iterations\": 1001}", "not 1001"},
        {"{\"password\": \"p\", \"salt\": \"s\", \"iterations\": 1, \"length\": 65}",
         "'length' must be 1..64"},
        {"{\"password\": \"p\", \"salt\": \"s\", \"iterations\": 1, \"length\": \"x\"}",
         "'length' must be an integer"},
        {"{\"password\": \"0123456789\", \"salt\": \"s\", \"iterations\": 1}", "is too long"},
        {"{\"password\": ", "invalid JSON"},
    };
    struct mh_testing *t = started("max_iterations = 1000; max_input_bytes = 8;");

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_req *req = post(t, cases[i].body);
        const char *detail = mh_test_str(mh_testing_json_str(req, "detail"));

        CU_ASSERT_EQUAL(mh_testing_status(req), 400);
        if (!strstr(detail, cases[i].detail))
            (void)fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, detail, cases[i].detail);
        CU_ASSERT_PTR_NOT_NULL(strstr(detail, cases[i].detail));
    }
    mh_testing_free(t);
}

static void test_hash_refuses_bad_settings(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    mh_testing_set_int(t, "max_iterations", 0);
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "max_iterations must be 1..100000000"));
    mh_testing_free(t);

    t = mh_testing_new(mh_module_v1());
    mh_testing_set_int(t, "max_input_bytes", 1 << 21);
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "max_input_bytes must be 1..1048576"));
    mh_testing_free(t);
}

static void test_hash_cancelled_request_does_no_work(void)
{
    struct mh_testing *t = started(NULL);
    struct mh_req *req;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    req = mh_testing_req(t, "POST", "/hash");
    mh_testing_req_json(req, "{\"password\": \"p\", \"salt\": \"s\", \"iterations\": 1}");
    mh_testing_req_cancel(req);
    CU_ASSERT_EQUAL(mh_testing_call(req, "hash"), MH_E_CANCELLED);
    CU_ASSERT_EQUAL(mh_testing_status(req), 500);
    CU_ASSERT_PTR_NULL(mh_testing_json_get(req, "digest"));
    mh_testing_free(t);
}

static const struct mh_test_case hash_tests[] = {
    {"matches the RFC 7914 vector", test_hash_matches_the_rfc_7914_vector},
    {"default length is 32 bytes", test_hash_default_length_is_32_bytes},
    {"refuses bad input with 400", test_hash_refuses_bad_input_with_400},
    {"refuses bad settings", test_hash_refuses_bad_settings},
    {"cancelled request does no work", test_hash_cancelled_request_does_no_work},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_hash", hash_tests);
}
