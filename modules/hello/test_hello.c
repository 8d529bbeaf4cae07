/*
 * hello's handler through the testing host: the greeting setting, the name from the route,
 * and init refusing a bad greeting.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

static const char *message_of(struct mh_req *req)
{
    return mh_test_str(mh_testing_json_str(req, "message"));
}

static void test_hello_greets_the_name_from_the_route(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());
    struct mh_req *req;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    req = mh_testing_req(t, "GET", "/hello/caf%C3%A9");
    CU_ASSERT_EQUAL(mh_testing_req_route(req, "/hello/{name}"), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_call(req, "hello"), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_status(req), 200);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(req, "Content-Type")), "application/json");
    CU_ASSERT_STRING_EQUAL(message_of(req), "Hello, caf\xc3\xa9!");
    CU_ASSERT_EQUAL(mh_testing_misuses(t), 0);
    mh_testing_free(t);
}

static void test_hello_uses_the_greeting_setting(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());
    struct mh_req *req;

    CU_ASSERT_EQUAL(mh_testing_settings(t, "greeting = \"Hi\";"), MH_OK);
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    req = mh_testing_req(t, "GET", "/hello/bob");
    mh_testing_req_param(req, "name", "bob");
    CU_ASSERT_EQUAL(mh_testing_call(req, "hello"), MH_OK);
    CU_ASSERT_STRING_EQUAL(message_of(req), "Hi, bob!");
    mh_testing_free(t);
}

static void test_hello_without_a_name_greets_the_world(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());
    struct mh_req *req;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    req = mh_testing_req(t, "GET", "/hello");
    CU_ASSERT_EQUAL(mh_testing_call(req, "hello"), MH_OK);
    CU_ASSERT_STRING_EQUAL(message_of(req), "Hello, world!");
    mh_testing_free(t);
}

static void test_hello_refuses_an_empty_or_long_greeting(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    mh_testing_set_string(t, "greeting", "");
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "'greeting' must be 1 to 63 characters"));
    mh_testing_free(t);

    t = mh_testing_new(mh_module_v1());
    mh_testing_set_string(t, "greeting",
                          "0123456789012345678901234567890123456789012345678901234567890123");
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    mh_testing_free(t);
}

static void test_hello_settings_are_checked_like_the_server_does(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    CU_ASSERT_EQUAL(mh_testing_settings(t, "greting = \"Hi\";"), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "unknown setting 'greting'"));
    mh_testing_free(t);

    t = mh_testing_new(mh_module_v1());
    CU_ASSERT_EQUAL(mh_testing_set_int(t, "greeting", 5), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "'greeting' of module 'hello' must be a "
                                                       "string"));
    mh_testing_free(t);
}

static void test_hello_unknown_handler_is_reported(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());
    struct mh_req *req;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    req = mh_testing_req(t, "GET", "/");
    CU_ASSERT_EQUAL(mh_testing_call(req, "helo"), MH_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "no handler 'helo'"));
    CU_ASSERT_EQUAL(mh_testing_status(req), 0);
    mh_testing_free(t);
}

/* The testing host fills every member of the table a module may call. */
static void test_hello_testing_table_is_complete(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());
    size_t n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(mh_api->size, sizeof(struct mh_api));
    n = (mh_api->size - offsetof(struct mh_api, req_method)) / sizeof(void (*)(void));
    for (size_t i = 0; i < n; i++) {
        void (*fn)(void);

        memcpy(&fn, (const char *)mh_api + offsetof(struct mh_api, req_method) + i * sizeof(fn),
               sizeof(fn));
        if (!fn)
            (void)fprintf(stderr, "table member %zu is NULL\n", i);
        CU_ASSERT_PTR_NOT_NULL(fn);
    }
    mh_testing_free(t);
}

static const struct mh_test_case hello_tests[] = {
    {"testing table is complete", test_hello_testing_table_is_complete},
    {"greets the name from the route", test_hello_greets_the_name_from_the_route},
    {"uses the greeting setting", test_hello_uses_the_greeting_setting},
    {"without a name greets the world", test_hello_without_a_name_greets_the_world},
    {"refuses an empty or long greeting", test_hello_refuses_an_empty_or_long_greeting},
    {"settings are checked like the server does",
     test_hello_settings_are_checked_like_the_server_does},
    {"unknown handler is reported", test_hello_unknown_handler_is_reported},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_hello", hello_tests);
}
