/*
 * SDK 1.1 compatibility: abi11.so, built against the frozen 1.1 header, must load and serve in
 * the current core with its 1.1 fields (blocking handlers, stores, WebSocket hooks) intact.
 * Like test_abi for 1.0, this suite must pass unchanged in every later 1.x core.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <json-c/json.h>

#include "mh_test.h"
#include "mh_test_http.h"
#include "mod/gen.h"
#include "mod/loader.h"

#define ABI11_PATH ABI_DIR "/abi11.so"

/* The end of the 1.1 module definition: its fields never move. */
#define DEF_SIZE_1_1 (offsetof(struct mh_module_def, ws_hooks) + sizeof(void *))

static void test_abi11_loads_with_its_definition(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    const unsigned char *tail;

    CU_ASSERT_EQUAL_FATAL(mh_module_open("abi11", ABI11_PATH, &m, &err), MH_OK);
    CU_ASSERT_EQUAL(m->def.abi_major, 1);
    CU_ASSERT_EQUAL(m->def.abi_minor, 1);
    CU_ASSERT_EQUAL(m->def.size, DEF_SIZE_1_1);
    CU_ASSERT_PTR_NULL(m->def.drivers);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->def.ws_hooks);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.ws_hooks[0].name), "echo");
    CU_ASSERT_PTR_NOT_NULL(m->def.ws_hooks[0].on_message);
    CU_ASSERT_PTR_NULL(m->def.ws_hooks[1].name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mh_module_handler(m, "store"));
    CU_ASSERT_EQUAL(mh_module_handler(m, "store")->flags, MH_HANDLER_BLOCKING);
    /* Fields added after 1.1 read as zero for a 1.1 module. */
    tail = (const unsigned char *)&m->def;
    for (size_t i = DEF_SIZE_1_1; i < sizeof(m->def); i++)
        CU_ASSERT_EQUAL(tail[i], 0);
    mh_module_free(m);
}

static const char stores_conf[] =
    "server: { module_dir = \"" ABI_DIR "\"; log: { access = false; }; };\n"
    "module: {\n"
    "  name = \"store_memory\";\n"
    "  file = \"" MODULE_DIR "/store_memory.so\";\n"
    "};\n"
    "stores = ( { name = \"main\"; driver = \"memory\"; } );\n";

static const char abi_conf[] =
    "module: {\n"
    "  name = \"abi11\";\n"
    "  stores = [\"main\"];\n"
    "  settings: { data = \"sub/file.db\"; };\n"
    "  routes = ( { method = \"PUT\"; path = \"/abi/{key}\"; handler = \"store\"; } );\n"
    "  websockets = ( { path = \"/ws\"; on_message = \"echo\"; } );\n"
    "};\n";

/* Serves stores_conf and abi_conf, two files of one conf.d. */
static struct mh_test_server *serve(struct mh_test_dir *dir)
{
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_gen *gen = NULL;

    mh_test_dir_init(dir);
    mh_test_dir_write(dir, "00-stores.conf", stores_conf);
    mh_test_dir_write(dir, "10-abi11.conf", abi_conf);
    mh_config_load(dir->path, &config, &errs);
    mh_gen_build(config, &gen, &errs);
    mh_errlist_print(&errs, stderr);
    CU_ASSERT_EQUAL(errs.count, 0);
    mh_errlist_cleanup(&errs);
    return gen ? mh_test_server_new(gen) : NULL;
}

static void unserve(struct mh_test_server *srv, struct mh_test_dir *dir)
{
    struct mh_gen *gen = mh_test_server_gen(srv);

    mh_test_server_free(srv);
    mh_gen_free(gen);
    mh_test_dir_cleanup(dir);
}

static void test_abi11_serves_with_a_store(void)
{
    struct mh_test_dir dir;
    struct mh_test_server *srv = serve(&dir);
    struct mh_test_resp r;
    struct json_object *doc;
    const char *data;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    CU_ASSERT_EQUAL(mh_test_request(srv, "PUT", "/abi/k1", NULL, "v1", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(mh_test_json_str(doc, "value"), "v1");
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "version_matches"), 1);
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "created"), 1);
    CU_ASSERT_STRING_EQUAL(mh_test_json_str(doc, "absent"), mh_status_str(MH_E_NOTFOUND));
    data = mh_test_json_str(doc, "data");
    CU_ASSERT_EQUAL(data[0], '/'); /* resolved against the conf.d file's directory */
    CU_ASSERT_PTR_NOT_NULL(strstr(data, "/sub/file.db"));
    json_object_put(doc);
    mh_test_resp_cleanup(&r);

    CU_ASSERT_EQUAL(mh_test_request(srv, "PUT", "/abi/k1", NULL, "v2", &r), 0);
    CU_ASSERT_EQUAL(r.status, 200);
    doc = json_tokener_parse(r.body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(mh_test_json_str(doc, "value"), "v2");
    CU_ASSERT_EQUAL(mh_test_json_bool(doc, "created"), 0);
    json_object_put(doc);
    mh_test_resp_cleanup(&r);
    unserve(srv, &dir);
}

static void test_abi11_websocket_endpoint_binds(void)
{
    struct mh_test_dir dir;
    struct mh_test_server *srv = serve(&dir);
    const struct mh_gen *g;
    size_t nws = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    g = mh_test_server_gen(srv);
    for (size_t i = 0; i < g->ntargets; i++) {
        if (g->targets[i].ws) {
            nws++;
            CU_ASSERT_PTR_NOT_NULL(g->targets[i].ws_message);
            CU_ASSERT_PTR_NULL(g->targets[i].ws_open);
        }
    }
    CU_ASSERT_EQUAL(nws, 1);
    unserve(srv, &dir);
}

static const struct mh_test_case abi11_tests[] = {
    {"abi11 loads with its definition", test_abi11_loads_with_its_definition},
    {"abi11 serves with a store", test_abi11_serves_with_a_store},
    {"abi11 WebSocket endpoint binds", test_abi11_websocket_endpoint_binds},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "abi11", abi11_tests);
}
