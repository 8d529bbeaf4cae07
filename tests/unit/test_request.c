/*
 * The request path (core/request.c): status texts and the error-to-status mapping, then the
 * dispatcher and the SDK request/response calls, served in-process on loopback with the
 * fx_req fixture module: routing answers (404, 405, 501, OPTIONS, HEAD), decoding, JSON
 * bodies and their limits, response header rules, request memory and deferred calls.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "base/err.h"
#include "http/head.h"
#include "http/request.h"
#include "mh_test.h"
#include "mh_test_http.h"
#include "mod/gen.h"
#include "mod/loader.h"

#define FX_REQ FIXTURE_DIR "/fx_req.so"

static const char conf[] =
    "server: {\n"
    "  module_dir = \"" FIXTURE_DIR "\";\n"
    "  log: { access = false; };\n"
    "  limits: { max_json_bytes = 64; max_json_depth = 3; max_body_bytes = 256; };\n"
    "};\n"
    "module: {\n"
    "  name = \"fx_req\";\n"
    "  routes = (\n"
    "    { method = \"GET\"; path = \"/p/{id}\"; handler = \"param\"; },\n"
    "    { method = \"GET\"; path = \"/q\"; handler = \"query\"; },\n"
    "    { method = \"POST\"; path = \"/json\"; handler = \"json\"; },\n"
    "    { method = \"GET\"; path = \"/headers\"; handler = \"headers\"; },\n"
    "    { method = \"GET\"; path = \"/err\"; handler = \"error\"; },\n"
    "    { method = \"GET\"; path = \"/noreply\"; handler = \"noreply\"; },\n"
    "    { method = \"GET\"; path = \"/alloc\"; handler = \"alloc\"; },\n"
    "    { method = \"GET\"; path = \"/echo\"; handler = \"echo\"; },\n"
    "    { method = \"POST\"; path = \"/echo\"; handler = \"echo\"; },\n"
    "    { method = \"GET\"; path = \"/nocontent\"; handler = \"nocontent\"; }\n"
    "  );\n"
    "};\n";

static struct mh_test_server *srv;

/* Something fx_req exports (it is never unmapped). */
static void *fx_req_symbol(const char *name)
{
    return mh_loader_symbol(FX_REQ, name); /* the loader maps a private copy */
}

static const char *header(const struct mh_test_resp *r, const char *name)
{
    const char *v = mh_test_resp_header(r, name);

    return v ? v : "(absent)";
}

/* Sends the request; the response must arrive. */
static void send_req(const char *method, const char *target, const char *const *headers,
                     const char *body, struct mh_test_resp *r)
{
    CU_ASSERT_EQUAL(mh_test_request(srv, method, target, headers, body, r), 0);
}

/* The member @p key of @p doc: a string, "(null)" for JSON null, "(absent)" if missing. */
static const char *member_str(struct json_object *doc, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(doc, key, &v))
        return "(absent)";
    return v ? json_object_get_string(v) : "(null)";
}

static int member_int(struct json_object *doc, const char *key)
{
    struct json_object *v = NULL;

    return json_object_object_get_ex(doc, key, &v) ? json_object_get_int(v) : -12345;
}

/* The response is problem+json with @p status and a detail containing @p detail. */
static void check_problem(const struct mh_test_resp *r, int status, const char *detail)
{
    struct json_object *doc;

    CU_ASSERT_EQUAL(r->status, status);
    CU_ASSERT_STRING_EQUAL(header(r, "Content-Type"), "application/problem+json");
    doc = json_tokener_parse(r->body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(member_str(doc, "type"), "about:blank");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "title"), mh_http_reason(status));
    CU_ASSERT_EQUAL(member_int(doc, "status"), status);
    if (!strstr(member_str(doc, "detail"), detail)) {
        fprintf(stderr, "\ndetail \"%s\" lacks \"%s\"\n", member_str(doc, "detail"), detail);
        CU_FAIL("problem detail");
    }
    json_object_put(doc);
}

/* --- Status texts and mapping --- */

static void test_request_http_reason(void)
{
    CU_ASSERT_STRING_EQUAL(mh_http_reason(200), "OK");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(204), "No Content");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(400), "Bad Request");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(404), "Not Found");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(405), "Method Not Allowed");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(409), "Conflict");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(413), "Content Too Large");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(431), "Request Header Fields Too Large");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(500), "Internal Server Error");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(501), "Not Implemented");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(503), "Service Unavailable");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(504), "Gateway Timeout");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(299), "Unknown");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(0), "Unknown");
    CU_ASSERT_STRING_EQUAL(mh_http_reason(-1), "Unknown");
}

static void test_request_status_http_follows_the_sdk(void)
{
    /* The table in sdk.h's enum mh_status comment. */
    CU_ASSERT_EQUAL(mh_status_http(MH_E_INVAL), 400);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_NOTFOUND), 404);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_CONFLICT), 409);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_LIMIT), 413);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_UNAVAILABLE), 503);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_TIMEOUT), 504);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_NOMEM), 500);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_IO), 500);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_CANCELLED), 500);
    CU_ASSERT_EQUAL(mh_status_http(MH_E_STATE), 500);
    CU_ASSERT_EQUAL(mh_status_http((enum mh_status) - 1000), 500);
}

/* --- Routing answers --- */

static void test_request_unknown_path_is_a_404_problem(void)
{
    struct mh_test_resp r;

    send_req("GET", "/nope", NULL, NULL, &r);
    check_problem(&r, 404, "no route for GET /nope");
    mh_test_resp_cleanup(&r);
}

static void test_request_wrong_method_is_a_405_with_allow(void)
{
    struct mh_test_resp r;

    send_req("DELETE", "/echo", NULL, NULL, &r);
    check_problem(&r, 405,
                  "method DELETE is not allowed on /echo (allowed: GET, HEAD, POST, "
                  "OPTIONS)");
    CU_ASSERT_STRING_EQUAL(header(&r, "Allow"), "GET, HEAD, POST, OPTIONS");
    CU_ASSERT_EQUAL(mh_test_resp_header_count(&r, "Allow"), 1);
    mh_test_resp_cleanup(&r);
}

static void test_request_options_answers_204_with_allow(void)
{
    struct mh_test_resp r;

    send_req("OPTIONS", "/p/1", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 204);
    CU_ASSERT_EQUAL(r.body_len, 0);
    CU_ASSERT_STRING_EQUAL(header(&r, "Allow"), "GET, HEAD, OPTIONS");
    mh_test_resp_cleanup(&r);
    send_req("OPTIONS", "/nowhere", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    mh_test_resp_cleanup(&r);
}

static void test_request_unsupported_method(void)
{
    struct mh_test_resp r;

    /* TRACE can never have a route: 405 where the path exists, 501 elsewhere. */
    send_req("TRACE", "/echo", NULL, NULL, &r);
    check_problem(&r, 405, "method TRACE is not supported on this path");
    CU_ASSERT_STRING_EQUAL(header(&r, "Allow"), "GET, HEAD, POST, OPTIONS");
    mh_test_resp_cleanup(&r);
    send_req("TRACE", "/nowhere", NULL, NULL, &r);
    check_problem(&r, 501, "method TRACE is not supported");
    CU_ASSERT_PTR_NULL(mh_test_resp_header(&r, "Allow"));
    mh_test_resp_cleanup(&r);
}

static void test_request_head_runs_the_get_handler_without_body(void)
{
    struct mh_test_resp r;

    send_req("HEAD", "/echo", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.body_len, 0);
    CU_ASSERT_STRING_EQUAL(header(&r, "X-Method"), "HEAD");
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Length"), "0"); /* the GET body is empty */
    mh_test_resp_cleanup(&r);
    send_req("HEAD", "/p/abc", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.body_len, 0);
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Length"), "3"); /* what GET would send */
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "text/plain");
    mh_test_resp_cleanup(&r);
}

/* --- Request calls --- */

static void test_request_params_are_decoded(void)
{
    struct mh_test_resp r;

    send_req("GET", "/p/caf%C3%A9", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "caf\xc3\xa9");
    mh_test_resp_cleanup(&r);
    send_req("GET", "/p/a%2Fb", NULL, NULL, &r);
    CU_ASSERT_STRING_EQUAL(r.body, "a/b");
    mh_test_resp_cleanup(&r);
    send_req("GET", "/p/a+b", NULL, NULL, &r); /* '+' is a space only in queries */
    CU_ASSERT_STRING_EQUAL(r.body, "a+b");
    mh_test_resp_cleanup(&r);
}

static void test_request_bad_param_escape_is_a_400(void)
{
    static const char *const targets[] = {"/p/%zz", "/p/a%4", "/p/%", "/p/a%00b"};
    struct mh_test_resp r;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        send_req("GET", targets[i], NULL, NULL, &r);
        check_problem(&r, 400, "path segment for parameter 'id' has an invalid percent escape");
        mh_test_resp_cleanup(&r);
    }
}

static void test_request_query_parameters(void)
{
    struct mh_test_resp r;
    struct json_object *doc;

    send_req("GET", "/q?a=1&&b=&c&a=2&d=x+y%21%2B&e=%zz%4", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(member_str(doc, "a"), "1"); /* the first one */
    CU_ASSERT_STRING_EQUAL(member_str(doc, "b"), "");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "c"), "");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "d"), "x y!+");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "e"), "%zz%4"); /* bad escapes stay as sent */
    CU_ASSERT_STRING_EQUAL(member_str(doc, "missing"), "(null)");
    json_object_put(doc);
    mh_test_resp_cleanup(&r);

    send_req("GET", "/q", NULL, NULL, &r);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(member_str(doc, "a"), "(null)");
    json_object_put(doc);
    mh_test_resp_cleanup(&r);
}

static void test_request_body_and_headers(void)
{
    static const char *const hdrs[] = {"Content-Type", "text/x-test", NULL};
    struct mh_test_resp r;

    send_req("POST", "/echo", hdrs, "hello body", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "hello body");
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "text/x-test");
    CU_ASSERT_STRING_EQUAL(header(&r, "X-Method"), "POST");
    mh_test_resp_cleanup(&r);
}

static void test_request_json_bodies(void)
{
    struct mh_test_resp r;

    send_req("POST", "/json", NULL, "{\"a\": [1, 2], \"b\": \"x/y\"}", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "{\"a\":[1,2],\"b\":\"x/y\"}");
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "application/json");
    mh_test_resp_cleanup(&r);

    send_req("POST", "/json", NULL, "  [true, null]\r\n", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "[true,null]");
    mh_test_resp_cleanup(&r);

    send_req("POST", "/json", NULL, "{\"a\": 1", &r);
    check_problem(&r, 400, "invalid JSON: unexpected end of input");
    mh_test_resp_cleanup(&r);
    send_req("POST", "/json", NULL, "{} x", &r);
    check_problem(&r, 400, "invalid JSON: unexpected data after the value at offset 3");
    mh_test_resp_cleanup(&r);
    send_req("POST", "/json", NULL, "{\"a\" 1}", &r);
    check_problem(&r, 400, "invalid JSON: ");
    mh_test_resp_cleanup(&r);
    send_req("POST", "/json", NULL, NULL, &r);
    check_problem(&r, 400, "request body is empty");
    mh_test_resp_cleanup(&r);
}

static void test_request_json_size_limit(void)
{
    struct mh_test_resp r;
    char body[80];

    /* max_json_bytes = 64: a 64-byte document passes, 65 bytes do not. */
    memset(body, ' ', sizeof(body));
    memcpy(body, "[1]", 3);
    body[64] = '\0';
    send_req("POST", "/json", NULL, body, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mh_test_resp_cleanup(&r);
    body[64] = ' ';
    body[65] = '\0';
    send_req("POST", "/json", NULL, body, &r);
    check_problem(&r, 413, "JSON body of 65 bytes exceeds the limit of 64");
    mh_test_resp_cleanup(&r);
}

static void test_request_json_depth_limit(void)
{
    struct mh_test_resp r;

    /* max_json_depth = 3. */
    send_req("POST", "/json", NULL, "[[1]]", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mh_test_resp_cleanup(&r);
    send_req("POST", "/json", NULL, "[[[[[1]]]]]", &r);
    check_problem(&r, 413, "invalid JSON: ");
    mh_test_resp_cleanup(&r);
}

static void test_request_body_over_the_limit_is_refused(void)
{
    char body[300];
    struct mh_test_resp r;

    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    send_req("POST", "/echo", NULL, body, &r); /* max_body_bytes = 256 */
    CU_ASSERT_EQUAL(r.status, 413);
    mh_test_resp_cleanup(&r);
}

/* --- Response calls --- */

static void test_request_response_header_rules(void)
{
    struct mh_test_resp r;
    struct json_object *doc;
    const int *late = fx_req_symbol("fx_req_late_header");
    const int *second = fx_req_symbol("fx_req_second_reply");

    const char *codes = fx_req_symbol("fx_req_codes");

    /* Good calls only: the headers go out in the module's order. */
    send_req("GET", "/headers?v=ok&clean=1", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(mh_test_resp_header_count(&r, "X-Ok"), 2);
    CU_ASSERT_STRING_EQUAL(header(&r, "X-Ok"), "v1");
    CU_ASSERT_STRING_EQUAL(header(&r, "X-Tab"), "a\tb");
    CU_ASSERT_STRING_EQUAL(header(&r, "X-Query"), "ok");
    CU_ASSERT_EQUAL(mh_test_resp_header_count(&r, "Content-Length"), 1);
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "application/json");
    mh_test_resp_cleanup(&r);

    /* Every refused call: the module sees the status; the client gets a 500 (the module's
     * bug, never a 4xx), with none of what the module recorded. */
    send_req("GET", "/headers?v=ok", NULL, NULL, &r);
    check_problem(&r, 500, "misused the server's API: mh_resp_header(\"Bad Name\")");
    CU_ASSERT_PTR_NOT_NULL_FATAL(codes);
    doc = json_tokener_parse(codes);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_EQUAL(member_int(doc, "ok"), MH_OK);
    CU_ASSERT_EQUAL(member_int(doc, "ok2"), MH_OK);
    CU_ASSERT_EQUAL(member_int(doc, "tab"), MH_OK);
    CU_ASSERT_EQUAL(member_int(doc, "space"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "colon"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "empty"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "crlf"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "del"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "cl"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "te"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "conn"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "query"), MH_OK);
    CU_ASSERT_EQUAL(member_int(doc, "status199"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "status600"), MH_E_INVAL);
    CU_ASSERT_EQUAL(member_int(doc, "ctype_crlf"), MH_E_INVAL);
    json_object_put(doc);
    CU_ASSERT_PTR_NULL(mh_test_resp_header(&r, "X-Ok"));
    CU_ASSERT_PTR_NULL(mh_test_resp_header(&r, "X-Inject"));
    CU_ASSERT_PTR_NULL(mh_test_resp_header(&r, "X-Evil"));
    CU_ASSERT_PTR_NULL(mh_test_resp_header(&r, "X-Late"));

    /* After the reply: no more headers, no second reply. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(late);
    CU_ASSERT_PTR_NOT_NULL_FATAL(second);
    CU_ASSERT_EQUAL(*late, MH_E_STATE);
    CU_ASSERT_EQUAL(*second, MH_E_STATE);
    mh_test_resp_cleanup(&r);
}

static void test_request_handler_errors_become_problems(void)
{
    static const struct {
        enum mh_status rc;
        int status;
    } cases[] = {
        {MH_E_INVAL, 400},       {MH_E_NOTFOUND, 404}, {MH_E_CONFLICT, 409}, {MH_E_LIMIT, 413},
        {MH_E_UNAVAILABLE, 503}, {MH_E_TIMEOUT, 504},  {MH_E_NOMEM, 500},    {MH_E_STATE, 500},
    };
    struct mh_test_resp r;
    char target[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(target, sizeof(target), "/err?rc=%d", (int)cases[i].rc);
        send_req("GET", target, NULL, NULL, &r);
        check_problem(&r, cases[i].status, mh_status_str(cases[i].rc));
        mh_test_resp_cleanup(&r);
    }
}

static void test_request_handler_without_reply_is_a_500(void)
{
    struct mh_test_resp r;

    send_req("GET", "/noreply", NULL, NULL, &r);
    check_problem(&r, 500, "the handler sent no reply");
    mh_test_resp_cleanup(&r);
}

static void test_request_no_content_sends_no_body(void)
{
    struct mh_test_resp r;

    send_req("GET", "/nocontent", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 204);
    CU_ASSERT_EQUAL(r.body_len, 0);
    CU_ASSERT_PTR_NULL(mh_test_resp_header(&r, "Content-Type"));
    mh_test_resp_cleanup(&r);
}

static void test_request_memory_and_deferred_calls(void)
{
    struct mh_test_resp r;
    const char *order;

    send_req("GET", "/alloc", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "ok");
    order = fx_req_symbol("fx_req_defer_order");
    CU_ASSERT_PTR_NOT_NULL_FATAL(order);
    CU_ASSERT_STRING_EQUAL(order, "321"); /* reverse order of registration */
    mh_test_resp_cleanup(&r);
}

static void test_request_ids_are_unique(void)
{
    struct mh_test_resp r;
    unsigned long long ids[20];
    int dup = 0;

    for (int i = 0; i < 20; i++) {
        send_req("GET", "/echo", NULL, NULL, &r);
        CU_ASSERT_EQUAL(r.status, 200);
        ids[i] = strtoull(header(&r, "X-Id"), NULL, 10);
        CU_ASSERT_NOT_EQUAL(ids[i], 0);
        for (int j = 0; j < i; j++)
            dup |= ids[j] == ids[i];
        mh_test_resp_cleanup(&r);
    }
    CU_ASSERT_FALSE(dup);
}

static void test_request_releases_its_generation(void)
{
    static const char *const targets[] = {"/echo",    "/nope",  "/p/%zz",
                                          "/noreply", "/alloc", "/err?rc=-8"};
    struct mh_gen *gen = mh_test_server_gen(srv);
    int before = mh_gen_refs(gen);
    struct mh_test_resp r;

    /* Each request holds the generation while it runs and lets go when it is answered. */
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        send_req("GET", targets[i], NULL, NULL, &r);
        mh_test_resp_cleanup(&r);
        CU_ASSERT_EQUAL(mh_gen_refs(gen), before);
    }
    send_req("POST", "/json", NULL, "[1]", &r);
    mh_test_resp_cleanup(&r);
    CU_ASSERT_EQUAL(mh_gen_refs(gen), before);
}

static const struct mh_test_case request_tests[] = {
    {"http reason", test_request_http_reason},
    {"status http follows the sdk", test_request_status_http_follows_the_sdk},
    {"unknown path is a 404 problem", test_request_unknown_path_is_a_404_problem},
    {"wrong method is a 405 with allow", test_request_wrong_method_is_a_405_with_allow},
    {"options answers 204 with allow", test_request_options_answers_204_with_allow},
    {"unsupported method", test_request_unsupported_method},
    {"head runs the get handler without body", test_request_head_runs_the_get_handler_without_body},
    {"params are decoded", test_request_params_are_decoded},
    {"bad param escape is a 400", test_request_bad_param_escape_is_a_400},
    {"query parameters", test_request_query_parameters},
    {"body and headers", test_request_body_and_headers},
    {"json bodies", test_request_json_bodies},
    {"json size limit", test_request_json_size_limit},
    {"json depth limit", test_request_json_depth_limit},
    {"body over the limit is refused", test_request_body_over_the_limit_is_refused},
    {"response header rules", test_request_response_header_rules},
    {"handler errors become problems", test_request_handler_errors_become_problems},
    {"handler without reply is a 500", test_request_handler_without_reply_is_a_500},
    {"no content sends no body", test_request_no_content_sends_no_body},
    {"memory and deferred calls", test_request_memory_and_deferred_calls},
    {"ids are unique", test_request_ids_are_unique},
    {"releases its generation", test_request_releases_its_generation},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    int rc;

    srv = mh_test_server_start(conf);
    if (!srv) {
        fprintf(stderr, "test_request: the test configuration does not build\n");
        return 1;
    }
    rc = mh_test_main(argc, argv, "request", request_tests);
    mh_test_server_free(srv);
    return rc;
}
