/*
 * kv's handlers through the testing host over an in-memory store: create, read, replace and
 * delete with ETag versions, the If-Match / If-None-Match preconditions, key checks, pages of
 * keys with a cursor, and init refusing a missing store or bad limits.
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

static struct mh_testing *started(const char *settings)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    mh_testing_add_store(t, "main");
    if (settings)
        mh_testing_settings(t, settings);
    if (mh_testing_start(t) != MH_OK) {
        (void)fprintf(stderr, "kv: %s\n", mh_testing_error(t));
        mh_testing_free(t);
        return NULL;
    }
    return t;
}

/* One request to @p handler; @p header/@p value may be NULL. Returns it, answered. */
static struct mh_req *call(struct mh_testing *t, const char *method, const char *target,
                           const char *handler, const char *body, const char *header,
                           const char *value)
{
    struct mh_req *req = mh_testing_req(t, method, target);

    if (strncmp(target, "/kv/", 4) == 0)
        CU_ASSERT_EQUAL(mh_testing_req_route(req, "/kv/{key}"), MH_OK);
    if (body)
        mh_testing_req_json(req, body);
    if (header)
        mh_testing_req_header(req, header, value);
    mh_testing_call(req, handler);
    return req;
}

static void test_kv_put_get_replace_delete(void)
{
    struct mh_testing *t = started(NULL);
    struct mh_req *r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    r = call(t, "PUT", "/kv/greeting", "put", "{\"n\": 1}", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 201);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(r, "ETag")), "\"1\"");
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_json_str(r, "key")), "greeting");

    r = call(t, "GET", "/kv/greeting", "get", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 200);
    CU_ASSERT_STRING_EQUAL(mh_testing_body(r, NULL), "{\"n\": 1}");
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(r, "ETag")), "\"1\"");

    r = call(t, "PUT", "/kv/greeting", "put", "[2]", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 200);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(r, "ETag")), "\"2\"");

    r = call(t, "DELETE", "/kv/greeting", "delete", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 204);
    r = call(t, "GET", "/kv/greeting", "get", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 404);
    r = call(t, "DELETE", "/kv/greeting", "delete", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 404);
    CU_ASSERT_EQUAL(mh_testing_misuses(t), 0);
    mh_testing_free(t);
}

static void test_kv_preconditions(void)
{
    struct mh_testing *t = started(NULL);
    struct mh_req *r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    r = call(t, "PUT", "/kv/k", "put", "1", "If-Match", "*");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412); /* update only, but absent */
    r = call(t, "PUT", "/kv/k", "put", "1", "If-None-Match", "*");
    CU_ASSERT_EQUAL(mh_testing_status(r), 201);
    r = call(t, "PUT", "/kv/k", "put", "2", "If-None-Match", "*");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412); /* create only, but present */
    r = call(t, "PUT", "/kv/k", "put", "2", "If-Match", "\"7\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412);
    r = call(t, "PUT", "/kv/k", "put", "2", "If-Match", "\"1\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 200);
    r = call(t, "DELETE", "/kv/k", "delete", NULL, "If-Match", "\"1\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412);
    r = call(t, "PUT", "/kv/k", "put", "2", "If-Match", "W/\"1\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412); /* If-Match compares strongly: weak never matches */
    r = call(t, "PUT", "/kv/k", "put", "2", "If-Match", "\"nope-999\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412); /* well-formed, matches nothing */
    r = call(t, "PUT", "/kv/k", "put", "2", "If-Match", "1");
    CU_ASSERT_EQUAL(mh_testing_status(r), 400); /* malformed: no quotes */
    r = call(t, "DELETE", "/kv/k", "delete", NULL, "If-None-Match", "*");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412); /* the key exists */
    r = call(t, "DELETE", "/kv/k", "delete", NULL, "If-Match", "\"2\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 204);
    r = call(t, "DELETE", "/kv/k", "delete", NULL, "If-Match", "\"2\"");
    CU_ASSERT_EQUAL(mh_testing_status(r), 412); /* If-Match on a missing key */
    mh_testing_free(t);
}

static void test_kv_refuses_bad_keys_and_values(void)
{
    struct mh_testing *t = started("max_key_bytes = 4; max_value_bytes = 8;");
    struct mh_req *r;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    r = call(t, "PUT", "/kv/toolong", "put", "1", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_str(mh_testing_json_str(r, "detail")), "limit is 4"));
    r = call(t, "PUT", "/kv/a%01", "put", "1", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 400);
    r = call(t, "PUT", "/kv/%FF", "put", "1", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 400);
    r = call(t, "PUT", "/kv/k", "put", "[1,2,3,4,5]", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 413);
    r = call(t, "PUT", "/kv/k", "put", "{bad", NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_str(mh_testing_json_str(r, "detail")), "JSON"));
    r = mh_testing_req(t, "GET", "/kv/");
    mh_testing_call(r, "get");
    CU_ASSERT_EQUAL(mh_testing_status(r), 400);
    mh_testing_free(t);
}

static void test_kv_lists_pages_with_a_cursor(void)
{
    static const char *const keys[] = {"a/1", "a/2", "a/3", "b/1"};
    struct mh_testing *t = started(NULL);
    struct mh_req *r;
    struct json_object *k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t i = 0; i < 4; i++) {
        char target[32];

        (void)snprintf(target, sizeof(target), "/kv/%s", keys[i]);
        r = mh_testing_req(t, "PUT", target);
        mh_testing_req_param(r, "key", keys[i]);
        mh_testing_req_json(r, "true");
        mh_testing_call(r, "put");
        CU_ASSERT_EQUAL(mh_testing_status(r), 201);
    }
    r = call(t, "GET", "/kv?prefix=a/&limit=2", "list", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 200);
    k = mh_testing_json_get(r, "keys");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(k), 2);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_array_get_idx(k, 0)), "a/1");
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_json_str(r, "next_cursor")), "a/2");

    r = call(t, "GET", "/kv?prefix=a/&limit=2&cursor=a/2", "list", NULL, NULL, NULL);
    k = mh_testing_json_get(r, "keys");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(k), 1);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_array_get_idx(k, 0)), "a/3");
    CU_ASSERT_PTR_NULL(mh_testing_json_str(r, "next_cursor"));

    r = call(t, "GET", "/kv?limit=0", "list", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(mh_testing_status(r), 400);
    mh_testing_free(t);
}

static void test_kv_init_needs_a_store_and_sane_limits(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "no store"));
    mh_testing_free(t);

    t = mh_testing_new(mh_module_v1());
    mh_testing_add_store(t, "main");
    mh_testing_set_string(t, "store", "other");
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "store 'other' is not in"));
    mh_testing_free(t);

    t = mh_testing_new(mh_module_v1());
    mh_testing_add_store(t, "main");
    mh_testing_set_int(t, "max_key_bytes", 2000);
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "limits out of range"));
    mh_testing_free(t);
}

static const struct mh_test_case kv_tests[] = {
    {"put, get, replace, delete", test_kv_put_get_replace_delete},
    {"preconditions", test_kv_preconditions},
    {"refuses bad keys and values", test_kv_refuses_bad_keys_and_values},
    {"lists pages with a cursor", test_kv_lists_pages_with_a_cursor},
    {"init needs a store and sane limits", test_kv_init_needs_a_store_and_sane_limits},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_kv", kv_tests);
}
