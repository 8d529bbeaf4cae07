/*
 * echo's handlers and WebSocket hook through the testing host: bytes and their type back as
 * sent, JSON re-serialized, bad JSON and a body over the limit refused with problem+json.
 */
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

static struct mh_testing *started(void)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    if (t && mh_testing_start(t) != MH_OK) {
        mh_testing_free(t);
        return NULL;
    }
    return t;
}

static void test_echo_returns_the_body_and_its_type(void)
{
    struct mh_testing *t = started();
    struct mh_req *req;
    size_t len = 0;
    const char *body;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    req = mh_testing_req(t, "POST", "/echo");
    mh_testing_req_header(req, "content-type", "text/plain; charset=utf-8");
    mh_testing_req_body(req, "a\0b", 3);
    CU_ASSERT_EQUAL(mh_testing_call(req, "echo"), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_status(req), 200);
    body = mh_testing_body(req, &len);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_EQUAL(memcmp(body, "a\0b", 3), 0);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(req, "Content-Type")),
                           "text/plain; charset=utf-8");

    req = mh_testing_req(t, "POST", "/echo");
    CU_ASSERT_EQUAL(mh_testing_call(req, "echo"), MH_OK);
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(req, "Content-Type")),
                           "application/octet-stream");
    CU_ASSERT_STRING_EQUAL(mh_testing_body(req, NULL), "");
    mh_testing_free(t);
}

static void test_echo_json_reserializes(void)
{
    struct mh_testing *t = started();
    struct mh_req *req;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    req = mh_testing_req(t, "POST", "/echo/json");
    mh_testing_req_json(req, " { \"a\" : [1, 2] } ");
    CU_ASSERT_EQUAL(mh_testing_call(req, "echo_json"), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_status(req), 200);
    CU_ASSERT_STRING_EQUAL(mh_testing_body(req, NULL), "{\"a\":[1,2]}");
    mh_testing_free(t);
}

static void test_echo_json_refuses_bad_json_with_a_problem(void)
{
    static const char *const bad[] = {"{'a': 1}", "[1,]", "", "{\"a\": NaN}"};
    struct mh_testing *t = started();

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mh_req *req = mh_testing_req(t, "POST", "/echo/json");

        mh_testing_req_json(req, bad[i]);
        mh_testing_call(req, "echo_json");
        CU_ASSERT_EQUAL(mh_testing_status(req), 400);
        CU_ASSERT_STRING_EQUAL(mh_test_str(mh_testing_header(req, "Content-Type")),
                               "application/problem+json");
        CU_ASSERT_PTR_NOT_NULL(mh_testing_json_str(req, "detail"));
    }
    CU_ASSERT_EQUAL(mh_testing_misuses(t), 0);
    mh_testing_free(t);
}

static void test_echo_json_over_the_limit_is_413(void)
{
    struct mh_testing *t = started();
    struct mh_req *req;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    mh_testing_json_limits(t, 4, 64);
    req = mh_testing_req(t, "POST", "/echo/json");
    mh_testing_req_json(req, "[1, 2, 3]");
    mh_testing_call(req, "echo_json");
    CU_ASSERT_EQUAL(mh_testing_status(req), 413);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(mh_test_str(mh_testing_json_str(req, "detail")), "exceeds the limit of 4"));

    mh_testing_json_limits(t, 1024, 2);
    req = mh_testing_req(t, "POST", "/echo/json");
    mh_testing_req_json(req, "[[[1]]]");
    mh_testing_call(req, "echo_json");
    CU_ASSERT_EQUAL(mh_testing_status(req), 413);
    mh_testing_free(t);
}

static void test_echo_websocket_sends_every_message_back(void)
{
    struct mh_testing *t = started();
    struct mh_ws *ws;
    bool is_binary = false;
    size_t len = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    ws = mh_testing_ws(t, NULL, "ws_echo", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ws);
    CU_ASSERT_EQUAL(mh_testing_ws_connect(ws, mh_testing_req(t, "GET", "/ws/echo")), MH_OK);
    CU_ASSERT_TRUE(mh_testing_ws_is_open(ws));
    CU_ASSERT_EQUAL(mh_testing_ws_receive(ws, false, "hi", 2), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_ws_receive(ws, true, "\xff\x00", 2), MH_OK);
    CU_ASSERT_EQUAL(mh_testing_ws_receive(ws, false, "\xff", 1), MH_E_INVAL);
    CU_ASSERT_EQUAL_FATAL(mh_testing_ws_sent_count(ws), 2);
    CU_ASSERT_STRING_EQUAL(mh_testing_ws_sent(ws, 0, &len, &is_binary), "hi");
    CU_ASSERT_FALSE(is_binary);
    CU_ASSERT_EQUAL(memcmp(mh_testing_ws_sent(ws, 1, &len, &is_binary), "\xff\x00", 2), 0);
    CU_ASSERT_EQUAL(len, 2);
    CU_ASSERT_TRUE(is_binary);
    mh_testing_ws_disconnect(ws, 1000);
    CU_ASSERT_FALSE(mh_testing_ws_is_open(ws));
    CU_ASSERT_EQUAL(mh_testing_ws_receive(ws, false, "late", 4), MH_E_STATE);
    CU_ASSERT_PTR_NULL(mh_testing_ws(t, NULL, "ws_nope", NULL));
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "no on_message hook 'ws_nope'"));
    mh_testing_free(t);
}

static const struct mh_test_case echo_tests[] = {
    {"returns the body and its type", test_echo_returns_the_body_and_its_type},
    {"json re-serializes", test_echo_json_reserializes},
    {"json refuses bad JSON with a problem", test_echo_json_refuses_bad_json_with_a_problem},
    {"json over the limit is 413", test_echo_json_over_the_limit_is_413},
    {"WebSocket sends every message back", test_echo_websocket_sends_every_message_back},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_echo", echo_tests);
}
