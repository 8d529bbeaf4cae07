/*
 * Generations (core/gen.c) over temporary conf.d directories and the fixture modules: settings
 * checked against the module's declaration, init errors, handler binding and route conflicts,
 * each with the file:line to fix; a good build's route table; fini on free and on failure.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "conf/config.h"
#include "mh_test.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "mod/router.h"

#define FIXTURE(name) FIXTURE_DIR "/" name ".so"

static const char server_conf[] =
    "server: { module_dir = \"" FIXTURE_DIR "\"; log: { access = false; }; };\n";

struct built {
    struct mh_test_dir dir;
    struct mh_gen *gen;
    struct mh_errlist errs;
    enum mh_status rc;
};

/* Writes 00-server.conf and the files, loads and builds. */
static void build(struct built *b, const struct mh_test_file *files)
{
    struct mh_config *config = NULL;

    memset(b, 0, sizeof(*b));
    mh_test_dir_init(&b->dir);
    mh_test_dir_write(&b->dir, "00-server.conf", server_conf);
    mh_test_dir_write_all(&b->dir, files);
    mh_config_load(b->dir.path, &config, &b->errs);
    if (b->errs.count) {
        mh_errlist_print(&b->errs, stderr);
        CU_FAIL("the configuration itself has errors");
    }
    b->gen = (struct mh_gen *)&b->gen; /* must be reset to NULL on failure */
    b->rc = mh_gen_build(config, &b->gen, &b->errs);
}

static void unbuild(struct built *b)
{
    mh_gen_free(b->gen);
    mh_errlist_cleanup(&b->errs);
    mh_test_dir_cleanup(&b->dir);
}

/* The build failed with exactly one error: @p code at @p file:@p line containing each needle. */
static void check_failed_with(const struct built *b, enum mh_status code, const char *file,
                              int line, const char *const *needles)
{
    char path[512];
    const struct mh_err *e;

    CU_ASSERT_EQUAL(b->rc, MH_E_INVAL);
    CU_ASSERT_PTR_NULL(b->gen);
    CU_ASSERT_EQUAL(b->errs.count, 1);
    if (b->errs.count != 1) {
        mh_errlist_print(&b->errs, stderr);
        return;
    }
    e = &b->errs.items[0];
    CU_ASSERT_EQUAL(e->code, code);
    CU_ASSERT_STRING_EQUAL(e->file, mh_test_dir_path(&b->dir, file, path, sizeof(path)));
    CU_ASSERT_EQUAL(e->line, line);
    for (size_t i = 0; needles[i]; i++) {
        if (!strstr(e->msg, needles[i])) {
            fprintf(stderr, "\nmessage \"%s\" lacks \"%s\"\n", e->msg, needles[i]);
            CU_FAIL("error text");
        }
    }
}

static bool has_error(const struct built *b, const char *needle)
{
    for (size_t i = 0; i < b->errs.count; i++) {
        if (strstr(b->errs.items[i].msg, needle))
            return true;
    }
    return false;
}

/* fx_good's init and fini counters (0 until it is first loaded). */
static int fx_good_count(const char *symbol)
{
    const int *p = mh_loader_symbol(FIXTURE("fx_good"), symbol);

    return p ? *p : 0;
}

/* --- Good builds --- */

static const char good_module[] =
    "module: {\n"
    "  name = \"fx_good\";\n"
    "  settings: { count = 2; label = \"shop\"; };\n"
    "  routes = (\n"
    "    { method = \"GET\"; path = \"/a\"; handler = \"a\"; },\n"
    "    { method = \"POST\"; path = \"/b\"; handler = \"b\"; },\n"
    "    { method = \"GET\"; path = \"/items/{id}\"; handler = \"a\"; }\n"
    "  );\n"
    "};\n";

static const char other_module[] =
    "module: {\n"
    "  name = \"somebody_else\";\n"
    "  file = \"fx_named_other.so\";\n"
    "  routes = ( { method = \"GET\"; path = \"/other\"; handler = \"h\"; } );\n"
    "};\n";

static void test_gen_good_build_binds_every_route(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf", good_module},
        {"20-other.conf", other_module},
        {NULL, NULL},
    };
    struct built b;
    struct mh_route_match m;
    const struct mh_route_target *t;
    int inits0 = fx_good_count("fx_good_inits"), finis0 = fx_good_count("fx_good_finis");
    char path[512];

    build(&b, files);
    CU_ASSERT_EQUAL(b.rc, MH_OK);
    CU_ASSERT_EQUAL(b.errs.count, 0);
    if (b.errs.count)
        mh_errlist_print(&b.errs, stderr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.gen);
    CU_ASSERT_EQUAL(b.gen->nmodules, 2);
    CU_ASSERT_EQUAL(b.gen->ntargets, 4);
    CU_ASSERT_EQUAL(mh_router_count(b.gen->router), 4);
    CU_ASSERT_EQUAL(fx_good_count("fx_good_inits"), inits0 + 1);
    CU_ASSERT_TRUE(b.gen->modules[0]->initialized);
    CU_ASSERT_STRING_EQUAL(mh_test_str(b.gen->modules[1]->def.name), "somebody_else");

    CU_ASSERT_EQUAL_FATAL(mh_router_match(b.gen->router, MH_METHOD_GET, "/items/7", 8, &m),
                          MH_ROUTE_FOUND);
    t = m.target;
    CU_ASSERT_PTR_EQUAL(t->module, b.gen->modules[0]);
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->handler->name), "a");
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->conf->path), "/items/{id}");
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->conf->file),
                           mh_test_dir_path(&b.dir, "10-good.conf", path, sizeof(path)));
    CU_ASSERT_EQUAL(t->conf->line, 7);
    CU_ASSERT_EQUAL_FATAL(mh_router_match(b.gen->router, MH_METHOD_GET, "/other", 6, &m),
                          MH_ROUTE_FOUND);
    t = m.target;
    CU_ASSERT_PTR_EQUAL(t->module, b.gen->modules[1]);
    CU_ASSERT_STRING_EQUAL(mh_test_str(t->handler->name), "h");

    /* Freeing the generation runs fini once. */
    CU_ASSERT_EQUAL(fx_good_count("fx_good_finis"), finis0);
    mh_gen_free(b.gen);
    b.gen = NULL;
    CU_ASSERT_EQUAL(fx_good_count("fx_good_finis"), finis0 + 1);
    unbuild(&b);
}

static void test_gen_module_without_routes_or_settings(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf", "module: { name = \"fx_good\"; };\n"},
        {NULL, NULL},
    };
    struct built b;

    build(&b, files);
    CU_ASSERT_EQUAL(b.rc, MH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.gen);
    CU_ASSERT_EQUAL(b.gen->nmodules, 1);
    CU_ASSERT_EQUAL(b.gen->ntargets, 0);
    CU_ASSERT_EQUAL(mh_router_count(b.gen->router), 0);
    unbuild(&b);
}

/* --- Errors --- */

static void test_gen_unknown_handler_lists_the_module_handlers(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf", "module: {\n"
                         "  name = \"fx_good\";\n"
                         "  routes = (\n"
                         "    { method = \"GET\"; path = \"/a\"; handler = \"a\"; },\n"
                         "    { method = \"GET\"; path = \"/c\"; handler = \"c\"; }\n"
                         "  );\n"
                         "};\n"},
        {NULL, NULL},
    };
    static const char *const needles[] = {
        "module 'fx_good' has no handler 'c' (its handlers: a, b)", NULL};
    struct built b;
    int inits0 = fx_good_count("fx_good_inits"), finis0 = fx_good_count("fx_good_finis");

    build(&b, files);
    check_failed_with(&b, MH_E_NOTFOUND, "10-good.conf", 5, needles);
    /* The module was initialised before binding failed; the failed build ran its fini. */
    CU_ASSERT_EQUAL(fx_good_count("fx_good_inits") - inits0,
                    fx_good_count("fx_good_finis") - finis0);
    unbuild(&b);
}

static void test_gen_route_conflict_names_the_other_module(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf",
         "module: {\n  name = \"fx_good\";\n"
         "  routes = ( { method = \"GET\"; path = \"/x/{id}\"; handler = \"a\"; } );\n};\n"},
        {"20-other.conf",
         "module: {\n  name = \"somebody_else\";\n  file = \"fx_named_other.so\";\n  routes = (\n"
         "    { method = \"GET\"; path = \"/free\"; handler = \"h\"; },\n"
         "    { method = \"GET\"; path = \"/x/{key}\"; handler = \"h\"; }\n  );\n};\n"},
        {NULL, NULL},
    };
    struct built b;
    char where[600], first[512];
    const char *const needles[] = {"GET /x/{key}", "GET /x/{id}", where, NULL};

    build(&b, files);
    snprintf(where, sizeof(where), "(module 'fx_good', at %s:3)",
             mh_test_dir_path(&b.dir, "10-good.conf", first, sizeof(first)));
    check_failed_with(&b, MH_E_CONFLICT, "20-other.conf", 6, needles);
    unbuild(&b);
}

static void test_gen_route_conflict_within_one_module(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf", "module: {\n  name = \"fx_good\";\n  routes = (\n"
                         "    { method = \"GET\"; path = \"/x\"; handler = \"a\"; },\n"
                         "    { method = \"GET\"; path = \"/x\"; handler = \"b\"; }\n  );\n};\n"},
        {NULL, NULL},
    };
    struct built b;
    char where[600], first[512];
    const char *const needles[] = {"route GET /x conflicts with GET /x", where, NULL};

    build(&b, files);
    snprintf(where, sizeof(where), "(module 'fx_good', at %s:4)",
             mh_test_dir_path(&b.dir, "10-good.conf", first, sizeof(first)));
    check_failed_with(&b, MH_E_CONFLICT, "10-good.conf", 5, needles);
    unbuild(&b);
}

static void test_gen_unknown_setting_with_suggestion(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf",
         "module: {\n  name = \"fx_good\";\n  settings: {\n    cuont = 3;\n  };\n};\n"},
        {NULL, NULL},
    };
    static const char *const needles[] = {
        "unknown setting 'cuont' for module 'fx_good' (did you mean 'count'?)", NULL};
    struct built b;
    int inits0 = fx_good_count("fx_good_inits");

    build(&b, files);
    check_failed_with(&b, MH_E_INVAL, "10-good.conf", 4, needles);
    CU_ASSERT_EQUAL(fx_good_count("fx_good_inits"), inits0); /* init never ran */
    unbuild(&b);
}

static void test_gen_unknown_setting_lists_the_module_settings(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf", "module: {\n  name = \"fx_good\";\n  settings: { colour = 3; };\n};\n"},
        {NULL, NULL},
    };
    static const char *const needles[] = {
        "unknown setting 'colour' for module 'fx_good' (its settings: count, label)", NULL};
    struct built b;

    build(&b, files);
    check_failed_with(&b, MH_E_INVAL, "10-good.conf", 3, needles);
    unbuild(&b);
}

static void test_gen_wrong_setting_type(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf",
         "module: {\n  name = \"fx_good\";\n  settings: {\n    count = \"3\";\n  };\n};\n"},
        {NULL, NULL},
    };
    static const char *const needles[] = {
        "setting 'count' of module 'fx_good' must be an integer: how many, at least 1", NULL};
    static const struct mh_test_file label_files[] = {
        {"10-good.conf", "module: {\n  name = \"fx_good\";\n  settings: { label = 5; };\n};\n"},
        {NULL, NULL},
    };
    struct built b;

    build(&b, files);
    check_failed_with(&b, MH_E_INVAL, "10-good.conf", 4, needles);
    unbuild(&b);

    build(&b, label_files);
    CU_ASSERT_EQUAL(b.errs.count, 1);
    if (b.errs.count == 1)
        CU_ASSERT_STRING_EQUAL(b.errs.items[0].msg,
                               "setting 'label' of module 'fx_good' must be a string");
    unbuild(&b);
}

static void test_gen_init_failure_has_file_and_line(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf",
         "# fails\nmodule: {\n  name = \"fx_good\";\n  settings: { count = 0; };\n};\n"},
        {NULL, NULL},
    };
    static const char *const needles[] = {
        "module 'fx_good' (" FIXTURE("fx_good") "): init failed: count must be positive", NULL};
    struct built b;
    int finis0 = fx_good_count("fx_good_finis");

    build(&b, files);
    check_failed_with(&b, MH_E_INVAL, "10-good.conf", 2, needles);
    CU_ASSERT_EQUAL(fx_good_count("fx_good_finis"), finis0); /* init failed: no fini */
    unbuild(&b);
}

static void test_gen_module_refused_by_the_loader(void)
{
    static const struct mh_test_file files[] = {
        {"10-x.conf", "\nmodule: { name = \"fx_major\"; };\n"},
        {NULL, NULL},
    };
    static const char *const needles[] = {"module 'fx_major' (" FIXTURE("fx_major") "): built for",
                                          NULL};
    static const struct mh_test_file missing[] = {
        {"10-x.conf", "module: { name = \"ghost\"; };\n"},
        {NULL, NULL},
    };
    static const char *const missing_needles[] = {"cannot open file", NULL};
    struct built b;

    build(&b, files);
    check_failed_with(&b, MH_E_INVAL, "10-x.conf", 2, needles);
    unbuild(&b);
    build(&b, missing);
    check_failed_with(&b, MH_E_NOTFOUND, "10-x.conf", 1, missing_needles);
    unbuild(&b);
}

static void test_gen_failed_build_reports_all_and_runs_fini(void)
{
    static const struct mh_test_file files[] = {
        {"10-good.conf", good_module},
        {"20-fail.conf", "module: { name = \"fx_initfail\"; };\n"},
        {"30-bad.conf", "module: { name = \"fx_nosym\"; };\n"},
        {NULL, NULL},
    };
    struct built b;
    int inits0 = fx_good_count("fx_good_inits"), finis0 = fx_good_count("fx_good_finis");

    build(&b, files);
    CU_ASSERT_EQUAL(b.rc, MH_E_INVAL);
    CU_ASSERT_PTR_NULL(b.gen);
    CU_ASSERT_EQUAL_FATAL(b.errs.count, 2);
    /* Both reported (in whichever order the build meets them). */
    CU_ASSERT_TRUE(has_error(&b, "database unreachable"));
    CU_ASSERT_TRUE(has_error(&b, "no mh_module_v1 symbol"));
    CU_ASSERT_EQUAL(fx_good_count("fx_good_inits"), inits0 + 1);
    CU_ASSERT_EQUAL(fx_good_count("fx_good_finis"), finis0 + 1);
    unbuild(&b);
}

static void test_gen_free_null(void)
{
    mh_gen_free(NULL);
}

static const struct mh_test_case gen_tests[] = {
    {"good build binds every route", test_gen_good_build_binds_every_route},
    {"module without routes or settings", test_gen_module_without_routes_or_settings},
    {"unknown handler lists the module handlers",
     test_gen_unknown_handler_lists_the_module_handlers},
    {"route conflict names the other module", test_gen_route_conflict_names_the_other_module},
    {"route conflict within one module", test_gen_route_conflict_within_one_module},
    {"unknown setting with suggestion", test_gen_unknown_setting_with_suggestion},
    {"unknown setting lists the module settings",
     test_gen_unknown_setting_lists_the_module_settings},
    {"wrong setting type", test_gen_wrong_setting_type},
    {"init failure has file and line", test_gen_init_failure_has_file_and_line},
    {"module refused by the loader", test_gen_module_refused_by_the_loader},
    {"failed build reports all and runs fini", test_gen_failed_build_reports_all_and_runs_fini},
    {"free null", test_gen_free_null},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "gen", gen_tests);
}
