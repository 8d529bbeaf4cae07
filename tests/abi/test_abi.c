/*
 * SDK 1.0 compatibility: abi10.so, built against the frozen 1.0 header, must load, initialise
 * and serve through the current core's loader and dispatcher. This suite must pass unchanged in
 * every 1.x core; a failure here means a released module would break.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>
#include <libconfig.h>

#include "base/log.h"
#include "conf/config.h"
#include "mh_test.h"
#include "mh_test_http.h"
#include "mod/gen.h"
#include "mod/host.h"
#include "mod/loader.h"

#define ABI10_PATH ABI_DIR "/abi10.so"

/* The end of the 1.0 module definition: its fields never move, so this holds in every 1.x. */
#define DEF_SIZE_1_0 (offsetof(struct mh_module_def, settings) + sizeof(void *))

/* A counter the module exports (it is never unmapped, so the pointer stays valid). */
static int *module_int(const char *symbol)
{
    return mh_loader_symbol(ABI10_PATH, symbol); /* the loader maps a private copy */
}

/* A settings group parsed from @p text, as conf.d would hand it to the module. */
static struct mh_conf *settings_from(config_t *cfg, const char *text)
{
    config_init(cfg);
    if (config_read_string(cfg, text) != CONFIG_TRUE)
        return NULL;
    return mh_conf_new(config_root_setting(cfg));
}

static void test_abi10_loads_with_its_definition(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    char list[256];
    const struct mh_handler_def *h;
    const unsigned char *tail;

    CU_ASSERT_EQUAL_FATAL(mh_module_open("abi10", ABI10_PATH, &m, &err), MH_OK);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->name), "abi10");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.name), "abi10");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.version), "1.0.0");
    CU_ASSERT_EQUAL(m->def.abi_major, 1);
    CU_ASSERT_EQUAL(m->def.abi_minor, 0);
    CU_ASSERT_EQUAL(m->def.size, DEF_SIZE_1_0);
    CU_ASSERT_EQUAL(m->def.flags, 0);
    /* Fields added after 1.0 read as zero for a 1.0 module. */
    tail = (const unsigned char *)&m->def;
    for (size_t i = DEF_SIZE_1_0; i < sizeof(m->def); i++)
        CU_ASSERT_EQUAL(tail[i], 0);

    mh_module_handler_list(m, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "echo, raw, problem, fail");
    h = mh_module_handler(m, "echo");
    CU_ASSERT_PTR_NOT_NULL(h);
    if (h) {
        CU_ASSERT_STRING_EQUAL(mh_test_str(h->name), "echo");
        CU_ASSERT_PTR_NOT_NULL(h->fn);
        CU_ASSERT_EQUAL(h->flags, 0);
    }
    CU_ASSERT_PTR_NOT_NULL(mh_module_handler(m, "fail"));
    CU_ASSERT_PTR_NULL(mh_module_handler(m, "nope"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->def.settings);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.settings[0].name), "greeting");
    CU_ASSERT_EQUAL(m->def.settings[1].type, MH_SETTING_INT);
    CU_ASSERT_EQUAL(m->def.settings[3].type, MH_SETTING_FLOAT);
    CU_ASSERT_PTR_NULL(m->def.settings[4].name);
    mh_module_free(m);
}

static void test_abi10_init_and_fini(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    config_t cfg;
    struct mh_conf *conf = settings_from(&cfg, "greeting = \"hi\"; n = 2; flag = true; ratio = 1;");
    int *finis = NULL, before = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(mh_module_open("abi10", ABI10_PATH, &m, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_module_init(m, conf, &err), MH_OK);
    CU_ASSERT_TRUE(m->initialized);
    CU_ASSERT_PTR_NOT_NULL(m->state);
    finis = module_int("abi10_finis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(finis);
    before = *finis;
    mh_module_free(m);
    CU_ASSERT_EQUAL(*finis, before + 1);
    config_destroy(&cfg);
}

static void test_abi10_init_error_reaches_the_core(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    config_t cfg;
    struct mh_conf *conf = settings_from(&cfg, "n = -1;");

    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(mh_module_open("abi10", ABI10_PATH, &m, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_module_init(m, conf, &err), MH_E_INVAL);
    CU_ASSERT_EQUAL(err.code, MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "module 'abi10'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ABI10_PATH));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "n must not be negative ("));
    CU_ASSERT_FALSE(m->initialized);
    mh_module_free(m);
    config_destroy(&cfg);
}

/* --- Serving: every 1.0 request and response call, through the real dispatcher --- */

static const char abi_conf[] =
    "server: { module_dir = \"" ABI_DIR "\"; log: { access = false; }; };\n"
    "module: {\n"
    "  name = \"abi10\";\n"
    "  settings: { greeting = \"hi\"; n = 3; flag = true; ratio = 0.5; };\n"
    "  routes = (\n"
    "    { method = \"GET\"; path = \"/abi/{name}\"; handler = \"echo\"; },\n"
    "    { method = \"POST\"; path = \"/abi/{name}\"; handler = \"echo\"; },\n"
    "    { method = \"GET\"; path = \"/raw\"; handler = \"raw\"; },\n"
    "    { method = \"GET\"; path = \"/problem\"; handler = \"problem\"; },\n"
    "    { method = \"GET\"; path = \"/fail\"; handler = \"fail\"; }\n"
    "  );\n"
    "};\n";

/* The member @p key of the JSON object in @p body, or NULL. Borrowed from @p doc. */
static struct json_object *member(struct json_object *doc, const char *key)
{
    struct json_object *v = NULL;

    return json_object_object_get_ex(doc, key, &v) ? v : NULL;
}

static const char *member_str(struct json_object *doc, const char *key)
{
    struct json_object *v = member(doc, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "(absent)";
}

static const char *header(const struct mh_test_resp *r, const char *name)
{
    const char *v = mh_test_resp_header(r, name);

    return v ? v : "(absent)";
}

static void test_abi10_serves_a_get_through_every_request_call(void)
{
    static const char *const hdrs[] = {"X-Abi-Test", "yes", "X-Other", "1", NULL};
    struct mh_test_server *srv;
    struct mh_test_resp r;
    struct json_object *doc;
    int *defers, before;

    mh_log_set_level(MH_LOG_DEBUG); /* so that log and req_log are called, not only tested */
    srv = mh_test_server_start(abi_conf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    defers = module_int("abi10_defers_run");
    CU_ASSERT_PTR_NOT_NULL_FATAL(defers);
    before = *defers;

    CU_ASSERT_EQUAL(mh_test_request(srv, "GET", "/abi/caf%C3%A9?x=1&q=a+b%21", hdrs, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "application/json");
    CU_ASSERT_STRING_EQUAL(header(&r, "X-Abi"), "1.0");
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(member_str(doc, "method"), "GET");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "path"), "/abi/caf%C3%A9");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "name"), "caf\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "alloc"), "caf\xc3\xa9!");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "q"), "a b!");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "header"), "yes");
    CU_ASSERT_EQUAL(json_object_get_int(member(doc, "x_headers")), 2);
    CU_ASSERT_EQUAL(json_object_get_int(member(doc, "body_len")), 0);
    CU_ASSERT_TRUE(json_object_get_boolean(member(doc, "raw_body")));
    CU_ASSERT_TRUE(json_object_get_boolean(member(doc, "id_nonzero")));
    CU_ASSERT_STRING_EQUAL(member_str(doc, "greeting"), "hi");
    CU_ASSERT_EQUAL(json_object_get_int(member(doc, "n")), 3);
    CU_ASSERT_TRUE(json_object_get_boolean(member(doc, "flag")));
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(member(doc, "ratio")), 0.5, 1e-9);
    CU_ASSERT_EQUAL(*defers, before + 1);
    json_object_put(doc);
    mh_test_resp_cleanup(&r);
    mh_test_server_free(srv);
    mh_log_set_level(MH_LOG_INFO);
}

static void test_abi10_reads_a_json_body(void)
{
    static const char *const hdrs[] = {"Content-Type", "application/json", NULL};
    struct mh_test_server *srv = mh_test_server_start(abi_conf);
    struct mh_test_resp r;
    struct json_object *doc, *k;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(mh_test_request(srv, "POST", "/abi/x", hdrs, "{\"k\": [1, 2]}", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(member_str(doc, "method"), "POST");
    CU_ASSERT_EQUAL(json_object_get_int(member(doc, "body_len")), 13);
    k = member(member(doc, "json"), "k");
    CU_ASSERT_TRUE(k && json_object_is_type(k, json_type_array) &&
                   json_object_array_length(k) == 2);
    json_object_put(doc);
    mh_test_resp_cleanup(&r);

    CU_ASSERT_EQUAL(mh_test_request(srv, "POST", "/abi/x", hdrs, "{", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_PTR_NULL(member(doc, "json"));
    CU_ASSERT_PTR_NOT_NULL(member(doc, "json_error"));
    json_object_put(doc);
    mh_test_resp_cleanup(&r);
    mh_test_server_free(srv);
}

static void test_abi10_reply_and_problem(void)
{
    struct mh_test_server *srv = mh_test_server_start(abi_conf);
    struct mh_test_resp r;
    struct json_object *doc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(mh_test_request(srv, "GET", "/raw", NULL, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 201);
    CU_ASSERT_STRING_EQUAL(r.body, "raw");
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "text/plain");
    mh_test_resp_cleanup(&r);

    CU_ASSERT_EQUAL(mh_test_request(srv, "GET", "/problem", NULL, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 409);
    CU_ASSERT_STRING_EQUAL(header(&r, "Content-Type"), "application/problem+json");
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(member_str(doc, "type"), "https://example.com/abi10");
    CU_ASSERT_STRING_EQUAL(member_str(doc, "detail"), "detail 7");
    CU_ASSERT_EQUAL(json_object_get_int(member(doc, "status")), 409);
    json_object_put(doc);
    mh_test_resp_cleanup(&r);

    CU_ASSERT_EQUAL(mh_test_request(srv, "GET", "/fail", NULL, NULL, &r), 0);
    CU_ASSERT_EQUAL(r.status, 404);
    mh_test_resp_cleanup(&r);
    mh_test_server_free(srv);
}

static void test_abi10_fini_runs_when_the_generation_ends(void)
{
    struct mh_test_server *srv = mh_test_server_start(abi_conf);
    int *finis, before;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    finis = module_int("abi10_finis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(finis);
    before = *finis;
    mh_test_server_free(srv);
    CU_ASSERT_EQUAL(*finis, before + 1);
}

static const struct mh_test_case abi_tests[] = {
    {"abi10 loads with its definition", test_abi10_loads_with_its_definition},
    {"abi10 init and fini", test_abi10_init_and_fini},
    {"abi10 init error reaches the core", test_abi10_init_error_reaches_the_core},
    {"abi10 serves a GET through every request call",
     test_abi10_serves_a_get_through_every_request_call},
    {"abi10 reads a JSON body", test_abi10_reads_a_json_body},
    {"abi10 reply and problem", test_abi10_reply_and_problem},
    {"abi10 fini runs when the generation ends", test_abi10_fini_runs_when_the_generation_ends},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "abi", abi_tests);
}
