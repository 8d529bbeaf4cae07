/*
 * The core as modules see it (core/host.c): the 1.0 function table, settings look-ups over a
 * libconfig group, and init error messages.
 */
#include <stdarg.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>
#include <libconfig.h>

#include "base/log.h"
#include "mh_test.h"
#include "mh_test_http.h"
#include "mod/gen.h"
#include "mod/host.h"

static void test_host_table_has_every_1_0_member(void)
{
    const struct mh_api *a = &mh_core_api;

    CU_ASSERT_EQUAL(a->size, sizeof(struct mh_api));
    CU_ASSERT_PTR_NOT_NULL(a->req_method);
    CU_ASSERT_PTR_NOT_NULL(a->req_path);
    CU_ASSERT_PTR_NOT_NULL(a->req_param);
    CU_ASSERT_PTR_NOT_NULL(a->req_query);
    CU_ASSERT_PTR_NOT_NULL(a->req_header);
    CU_ASSERT_PTR_NOT_NULL(a->req_headers);
    CU_ASSERT_PTR_NOT_NULL(a->req_body);
    CU_ASSERT_PTR_NOT_NULL(a->req_json);
    CU_ASSERT_PTR_NOT_NULL(a->req_alloc);
    CU_ASSERT_PTR_NOT_NULL(a->req_defer);
    CU_ASSERT_PTR_NOT_NULL(a->req_id);
    CU_ASSERT_PTR_NOT_NULL(a->resp_header);
    CU_ASSERT_PTR_NOT_NULL(a->reply);
    CU_ASSERT_PTR_NOT_NULL(a->reply_json);
    CU_ASSERT_PTR_NOT_NULL(a->reply_problem);
    CU_ASSERT_PTR_NOT_NULL(a->log_enabled);
    CU_ASSERT_PTR_NOT_NULL(a->log);
    CU_ASSERT_PTR_NOT_NULL(a->req_log);
    CU_ASSERT_PTR_NOT_NULL(a->host_error);
    CU_ASSERT_PTR_NOT_NULL(a->conf_string);
    CU_ASSERT_PTR_NOT_NULL(a->conf_int);
    CU_ASSERT_PTR_NOT_NULL(a->conf_bool);
    CU_ASSERT_PTR_NOT_NULL(a->conf_float);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a->strerror); /* called next */
    CU_ASSERT_STRING_EQUAL(a->strerror(MH_E_NOTFOUND), "not found");
}

static const char settings_text[] = "name = \"shop\";\n"
                                    "count = 5;\n"
                                    "big = 5000000000L;\n"
                                    "on = true;\n"
                                    "ratio = 0.25;\n"
                                    "db: { host = \"localhost\"; port = 5432; };\n";

static void test_host_settings_lookups(void)
{
    config_t cfg;
    struct mh_conf *c;
    const char *s = "untouched";
    long long n = -1;
    int b = -1;
    double d = -1;

    config_init(&cfg);
    CU_ASSERT_EQUAL_FATAL(config_read_string(&cfg, settings_text), CONFIG_TRUE);
    c = mh_conf_new(config_root_setting(&cfg));

    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "name", &s), MH_OK);
    CU_ASSERT_STRING_EQUAL(s, "shop");
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "db.host", &s), MH_OK);
    CU_ASSERT_STRING_EQUAL(s, "localhost");
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "count", &n), MH_OK);
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "big", &n), MH_OK);
    CU_ASSERT_EQUAL(n, 5000000000LL);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "db.port", &n), MH_OK);
    CU_ASSERT_EQUAL(n, 5432);
    CU_ASSERT_EQUAL(mh_core_api.conf_bool(c, "on", &b), MH_OK);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(mh_core_api.conf_float(c, "ratio", &d), MH_OK);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.25, 1e-12);
    CU_ASSERT_EQUAL(mh_core_api.conf_float(c, "count", &d), MH_OK); /* integers are numbers */
    CU_ASSERT_DOUBLE_EQUAL(d, 5.0, 1e-12);

    /* Absent or of another type: an error, and the output untouched. */
    s = "untouched";
    n = -1;
    b = -1;
    d = -1;
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "missing", &s), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "db.missing", &s), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "count", &s), MH_E_INVAL);
    CU_ASSERT_EQUAL(mh_core_api.conf_string(c, "db", &s), MH_E_INVAL);
    CU_ASSERT_STRING_EQUAL(s, "untouched");
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "name", &n), MH_E_INVAL);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(c, "ratio", &n), MH_E_INVAL);
    CU_ASSERT_EQUAL(n, -1);
    CU_ASSERT_EQUAL(mh_core_api.conf_bool(c, "count", &b), MH_E_INVAL);
    CU_ASSERT_EQUAL(b, -1);
    CU_ASSERT_EQUAL(mh_core_api.conf_float(c, "on", &d), MH_E_INVAL);
    CU_ASSERT_DOUBLE_EQUAL(d, -1, 1e-12);
    mh_conf_free(c);
    config_destroy(&cfg);
}

static void test_host_settings_without_a_group(void)
{
    struct mh_conf *empty = mh_conf_new(NULL);
    const char *s = "untouched";
    long long n = -1;

    /* A module without a settings group, or given no conf at all, finds nothing. */
    CU_ASSERT_EQUAL(mh_core_api.conf_string(empty, "name", &s), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_core_api.conf_int(NULL, "count", &n), MH_E_NOTFOUND);
    CU_ASSERT_STRING_EQUAL(s, "untouched");
    CU_ASSERT_EQUAL(n, -1);
    mh_conf_free(empty);
    mh_conf_free(NULL);
}

static void test_host_error_keeps_the_last_message(void)
{
    struct mh_host *h = mh_host_new(NULL, "shop");
    char big[1000];

    CU_ASSERT_STRING_EQUAL(h->name, "shop");
    CU_ASSERT_STRING_EQUAL(h->error, "");
    CU_ASSERT_EQUAL(mh_core_api.host_error(h, "first %d", 1), MH_OK);
    CU_ASSERT_EQUAL(mh_core_api.host_error(h, "second %s", "try"), MH_OK);
    CU_ASSERT_STRING_EQUAL(h->error, "second try");
    memset(big, 'e', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mh_core_api.host_error(h, "%s", big);
    CU_ASSERT_EQUAL(strlen(h->error), sizeof(h->error) - 1);
    mh_host_free(h);
    mh_host_free(NULL);
}

static void test_host_log_enabled_follows_the_level(void)
{
    mh_log_set_level(MH_LOG_ERROR);
    CU_ASSERT_FALSE(mh_core_api.log_enabled(MH_LOG_WARN));
    CU_ASSERT_TRUE(mh_core_api.log_enabled(MH_LOG_ERROR));
    mh_log_set_level(MH_LOG_INFO);
    CU_ASSERT_TRUE(mh_core_api.log_enabled(MH_LOG_INFO));
    CU_ASSERT_FALSE(mh_core_api.log_enabled(MH_LOG_DEBUG));
}

/* --- SDK 1.2 --- */

static void test_host_table_has_every_1_2_member(void)
{
    const struct mh_api *a = &mh_core_api;

    CU_ASSERT_PTR_NOT_NULL(a->reply_problemv);
    CU_ASSERT_PTR_NOT_NULL(a->logv);
    CU_ASSERT_PTR_NOT_NULL(a->req_logv);
    CU_ASSERT_PTR_NOT_NULL(a->host_errorv);
    CU_ASSERT_PTR_NOT_NULL(a->store_set_errorv);
    CU_ASSERT_PTR_NOT_NULL(a->is_utf8);
    CU_ASSERT_PTR_NOT_NULL(a->clock_ns);
    CU_ASSERT_PTR_NOT_NULL(a->req_json_body);
    CU_ASSERT_PTR_NOT_NULL(a->req_is_cancelled);
    CU_ASSERT_PTR_NOT_NULL(a->log_is_enabled);
    CU_ASSERT_PTR_NOT_NULL(a->host_name);
}

static void test_host_table_has_every_1_3_member(void)
{
    CU_ASSERT_PTR_NOT_NULL(mh_core_api.req_request_id);
}

static void store_errorf(const char *fmt, ...) MH_PRINTF(1, 2);
static void store_errorf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mh_core_api.store_set_errorv(fmt, ap);
    va_end(ap);
}

static void test_host_va_list_variants_format(void)
{
    struct mh_host *h = mh_host_new(NULL, "shop");

    store_errorf("disk %s at %d%%", "full", 99);
    CU_ASSERT_STRING_EQUAL(mh_core_api.store_error(), "disk full at 99%");
    CU_ASSERT_STRING_EQUAL(mh_core_api.host_name(h), "shop");
    mh_host_free(h);
}

static void test_host_bool_answers(void)
{
    mh_log_set_level(MH_LOG_WARN);
    CU_ASSERT_TRUE(mh_core_api.log_is_enabled(MH_LOG_WARN));
    CU_ASSERT_FALSE(mh_core_api.log_is_enabled(MH_LOG_INFO));
    mh_log_set_level(MH_LOG_INFO);
    CU_ASSERT_TRUE(mh_core_api.is_utf8("\xe2\x82\xac", 3));
    CU_ASSERT_FALSE(mh_core_api.is_utf8("\xe2\x82", 2));     /* cut short */
    CU_ASSERT_FALSE(mh_core_api.is_utf8("\xed\xa0\x80", 3)); /* a surrogate */
    CU_ASSERT_TRUE(mh_core_api.is_utf8("", 0));
}

static const char sdk12_conf[] =
    "server: { module_dir = \"" FIXTURE_DIR "\"; log: { access = false; }; };\n"
    "module: {\n"
    "  name = \"fx_sdk12\";\n"
    "  routes = (\n"
    "    { method = \"GET\"; path = \"/problemv\"; handler = \"problemv\"; },\n"
    "    { method = \"POST\"; path = \"/json\"; handler = \"json\"; },\n"
    "    { method = \"POST\"; path = \"/json_twice\"; handler = \"json_twice\"; },\n"
    "    { method = \"GET\"; path = \"/facts\"; handler = \"facts\"; }\n"
    "  );\n"
    "};\n";

/* Sends one request and parses the answer's body as JSON (NULL if it is not). */
static struct json_object *ask(struct mh_test_server *srv, const char *method, const char *path,
                               const char *body, int *status)
{
    struct mh_test_resp r;
    struct json_object *doc;

    CU_ASSERT_EQUAL(mh_test_request(srv, method, path, NULL, body, &r), 0);
    *status = r.status;
    doc = json_tokener_parse(r.body);
    mh_test_resp_cleanup(&r);
    return doc;
}

static void test_host_reply_problemv_formats_the_detail(void)
{
    struct mh_test_server *srv = mh_test_server_start(sdk12_conf);
    struct json_object *doc;
    int status = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    doc = ask(srv, "GET", "/problemv", NULL, &status);
    CU_ASSERT_EQUAL(status, 422);
    CU_ASSERT_STRING_EQUAL(mh_test_json_str(doc, "detail"), "n=7 s=x");
    CU_ASSERT_STRING_EQUAL(mh_test_json_str(doc, "type"), "https://example.com/fx");
    json_object_put(doc);
    mh_test_server_free(srv);
}

static void test_host_req_json_body_replies_for_bad_input(void)
{
    struct mh_test_server *srv = mh_test_server_start(sdk12_conf);
    struct json_object *doc, *a = NULL;
    int status = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    doc = ask(srv, "POST", "/json", "{\"a\": [1, 2]}", &status);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT_TRUE(json_object_object_get_ex(doc, "a", &a) && json_object_array_length(a) == 2);
    json_object_put(doc);

    doc = ask(srv, "POST", "/json", "{'a': 1}", &status);
    CU_ASSERT_EQUAL(status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_json_str(doc, "detail"), "invalid JSON"));
    json_object_put(doc);

    doc = ask(srv, "POST", "/json", "", &status);
    CU_ASSERT_EQUAL(status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_json_str(doc, "detail"), "empty"));
    json_object_put(doc);

    /* The first parse answered 400; the second call is refused (no misuse: it replies
     * nothing), but the handler's own second reply is a misuse: 500 naming it. */
    doc = ask(srv, "POST", "/json_twice", "nope", &status);
    CU_ASSERT_EQUAL(status, 500);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_json_str(doc, "detail"), "a second reply"));
    json_object_put(doc);
    mh_test_server_free(srv);
}

static void test_host_req_json_body_applies_the_limit(void)
{
    static const char conf[] = "server: { module_dir = \"" FIXTURE_DIR "\"; "
                               "log: { access = false; }; limits: { max_json_bytes = 8; }; };\n"
                               "module: { name = \"fx_sdk12\"; routes = ( { method = \"POST\"; "
                               "path = \"/json\"; handler = \"json\"; } ); };\n";
    struct mh_test_server *srv = mh_test_server_start(conf);
    struct json_object *doc;
    int status = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    doc = ask(srv, "POST", "/json", "[1,2,3,4,5]", &status);
    CU_ASSERT_EQUAL(status, 413);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_test_json_str(doc, "detail"), "exceeds the limit of 8"));
    json_object_put(doc);
    mh_test_server_free(srv);
}

static void test_host_helpers_answer(void)
{
    struct mh_test_server *srv = mh_test_server_start(sdk12_conf);
    struct json_object *doc;
    int status = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    doc = ask(srv, "GET", "/facts", NULL, &status);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "cancelled"), 0);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "utf8_ok"), 1);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "utf8_bad"), 0);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "utf8_empty"), 1);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "clock_monotonic"), 1);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "error_enabled"), 1);
    CU_ASSERT_STRING_EQUAL(mh_test_json_str(doc, "name"), "fx_sdk12");
    json_object_put(doc);
    mh_test_server_free(srv);
}

static void test_host_errorv_reaches_the_init_refusal(void)
{
    static const char conf[] = "server: { module_dir = \"" FIXTURE_DIR "\"; };\n"
                               "module: { name = \"fx_sdk12\"; settings: { fail = true; }; };\n";
    struct mh_test_dir dir;
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_gen *gen = NULL;

    mh_test_dir_init(&dir);
    mh_test_dir_write(&dir, "a.conf", conf);
    mh_config_load(dir.path, &config, &errs);
    CU_ASSERT_EQUAL(mh_gen_build(config, &gen, &errs), MH_E_INVAL);
    CU_ASSERT_EQUAL_FATAL(errs.count, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(errs.items[0].msg, "init failed: failing as asked (42)"));
    mh_errlist_cleanup(&errs);
    mh_test_dir_cleanup(&dir);
}

static const struct mh_test_case host_tests[] = {
    {"table has every 1.0 member", test_host_table_has_every_1_0_member},
    {"settings lookups", test_host_settings_lookups},
    {"settings without a group", test_host_settings_without_a_group},
    {"error keeps the last message", test_host_error_keeps_the_last_message},
    {"log enabled follows the level", test_host_log_enabled_follows_the_level},
    {"table has every 1.2 member", test_host_table_has_every_1_2_member},
    {"table has every 1.3 member", test_host_table_has_every_1_3_member},
    {"va_list variants format", test_host_va_list_variants_format},
    {"bool answers", test_host_bool_answers},
    {"reply_problemv formats the detail", test_host_reply_problemv_formats_the_detail},
    {"req_json_body replies for bad input", test_host_req_json_body_replies_for_bad_input},
    {"req_json_body applies the limit", test_host_req_json_body_applies_the_limit},
    {"helpers answer", test_host_helpers_answer},
    {"host_errorv reaches the init refusal", test_host_errorv_reaches_the_init_refusal},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "host", host_tests);
}
