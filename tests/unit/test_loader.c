/*
 * Module loading (core/loader.c) with the fixture modules of tests/modules: every refusal is
 * one line naming the module and its file (and both values where two disagree), leaves *out
 * alone and the file unmapped; init runs with settings and fini exactly once.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <libconfig.h>

#include "mh_test.h"
#include "mod/host.h"
#include "mod/loader.h"

#define FIXTURE(name) FIXTURE_DIR "/" name ".so"
#define INITFAIL_PATH FIXTURE("fx_initfail")

/* A counter fx_good exports; the module is never unmapped, so the pointer stays valid. */
static int *fx_good_int(const char *symbol)
{
    return mh_loader_symbol(FIXTURE("fx_good"), symbol);
}

#ifndef MH_DLOPEN_NODELETE
/* True if this process maps the private copy of @p path (named "/memfd:PATH"). */
static bool copy_mapped(const char *path)
{
    char line[1024], want[600];
    bool found = false;
    FILE *f = fopen("/proc/self/maps", "r");

    snprintf(want, sizeof(want), "/memfd:%s ", path);
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, want) != NULL;
    if (f)
        fclose(f);
    return found;
}
#endif

static struct mh_conf *settings_from(config_t *cfg, const char *text)
{
    config_init(cfg);
    if (config_read_string(cfg, text) != CONFIG_TRUE)
        return NULL;
    return mh_conf_new(config_root_setting(cfg));
}

/*
 * Opening @p path as @p name is refused with @p code and a one-line message that names the
 * module and the file and contains each of the @p needles (NULL-terminated).
 */
static void expect_refusal(const char *name, const char *path, enum mh_status code,
                           const char *const *needles)
{
    struct mh_module *untouched = (struct mh_module *)&untouched;
    struct mh_module *m = untouched;
    struct mh_err err = {0};
    char who[600];

    CU_ASSERT_EQUAL(mh_module_open(name, path, &m, &err), code);
    CU_ASSERT_PTR_EQUAL(m, untouched); /* *out is set only on success */
    CU_ASSERT_EQUAL(err.code, code);
    snprintf(who, sizeof(who), "module '%s' (%s): ", name, path);
    CU_ASSERT_EQUAL(strncmp(err.msg, who, strlen(who)), 0);
    CU_ASSERT_PTR_NULL(strchr(err.msg, '\n'));
    for (size_t i = 0; needles[i]; i++) {
        if (!strstr(err.msg, needles[i])) {
            fprintf(stderr, "\nmessage \"%s\" lacks \"%s\"\n", err.msg, needles[i]);
            CU_FAIL("refusal text");
        }
    }
#ifndef MH_DLOPEN_NODELETE
    CU_ASSERT_FALSE(copy_mapped(path)); /* a refused module does not stay mapped */
#endif
}

/* --- Refusals, in the order the loader checks --- */

static void test_loader_missing_file(void)
{
    static const char *const needles[] = {"cannot open file: No such file or directory", NULL};

    expect_refusal("ghost", FIXTURE("ghost"), MH_E_NOTFOUND, needles);
}

static void test_loader_directory_is_not_a_module(void)
{
    static const char *const needles[] = {"not a regular file", NULL};

    expect_refusal("fx_dir", FIXTURE_DIR, MH_E_INVAL, needles);
}

static void test_loader_garbage_file_cannot_load(void)
{
    static const char *const needles[] = {"cannot load: ", NULL};

    expect_refusal("fx_garbage", FIXTURE("fx_garbage"), MH_E_INVAL, needles);
}

static void test_loader_shared_object_without_entry_symbol(void)
{
    static const char *const needles[] = {
        "not a modhost module (no mh_module_v1 symbol; define the module with MH_MODULE)", NULL};

    expect_refusal("fx_nosym", FIXTURE("fx_nosym"), MH_E_INVAL, needles);
}

static void test_loader_entry_returning_null(void)
{
    static const char *const needles[] = {"mh_module_v1() returned NULL", NULL};

    expect_refusal("fx_nulldef", FIXTURE("fx_nulldef"), MH_E_INVAL, needles);
}

static void test_loader_bad_magic(void)
{
    static const char *const needles[] = {
        "not a modhost module definition (magic 0x6d686d30, expected 0x6d686d31)", NULL};

    expect_refusal("fx_magic", FIXTURE("fx_magic"), MH_E_INVAL, needles);
}

static void test_loader_other_major_names_both_versions(void)
{
    char theirs[64], ours[64];
    const char *const needles[] = {theirs, ours, "the ABI major version differs", NULL};

    snprintf(theirs, sizeof(theirs), "built for SDK %d.%d,", MH_ABI_MAJOR + 1, MH_ABI_MINOR);
    snprintf(ours, sizeof(ours), "this core provides SDK %d.%d", MH_ABI_MAJOR, MH_ABI_MINOR);
    expect_refusal("fx_major", FIXTURE("fx_major"), MH_E_INVAL, needles);
}

static void test_loader_newer_minor_names_both_versions(void)
{
    char theirs[64], ours[64];
    const char *const needles[] = {theirs, ours, NULL};

    snprintf(theirs, sizeof(theirs), "built for SDK %d.%d,", MH_ABI_MAJOR, MH_ABI_MINOR + 1);
    snprintf(ours, sizeof(ours), "newer than this core's SDK %d.%d", MH_ABI_MAJOR, MH_ABI_MINOR);
    expect_refusal("fx_minor", FIXTURE("fx_minor"), MH_E_INVAL, needles);
}

static void test_loader_definition_smaller_than_1_0(void)
{
    char sizes[96];
    const char *const needles[] = {sizes, NULL};

    snprintf(sizes, sizeof(sizes), "definition size %zu is smaller than SDK 1.0's %zu",
             offsetof(struct mh_module_def, settings),
             offsetof(struct mh_module_def, settings) + sizeof(void *));
    expect_refusal("fx_small", FIXTURE("fx_small"), MH_E_INVAL, needles);
}

static void test_loader_other_fingerprint(void)
{
    char prints[96];
    const char *const needles[] = {prints, "built for another platform", NULL};

    snprintf(prints, sizeof(prints), "fingerprint 0x%08x, this core 0x%08x",
             (unsigned)((MH_BUILD_FINGERPRINT & ~0xffu) | 4u), (unsigned)MH_BUILD_FINGERPRINT);
    expect_refusal("fx_print", FIXTURE("fx_print"), MH_E_INVAL, needles);
}

static void test_loader_definition_without_name(void)
{
    static const char *const needles[] = {"its definition has no name", NULL};

    expect_refusal("fx_noname", FIXTURE("fx_noname"), MH_E_INVAL, needles);
}

static void test_loader_name_mismatch(void)
{
    static const char *const needles[] = {
        "the file defines module 'somebody_else', not 'fx_named_other'", NULL};

    expect_refusal("fx_named_other", FIXTURE("fx_named_other"), MH_E_INVAL, needles);
}

static void test_loader_definition_without_api_slot(void)
{
    static const char *const needles[] = {"its definition has no api slot", NULL};

    expect_refusal("fx_noapi", FIXTURE("fx_noapi"), MH_E_INVAL, needles);
}

static void test_loader_handler_without_function(void)
{
    static const char *const needles[] = {"handler 'h' has no function", NULL};

    expect_refusal("fx_nullfn", FIXTURE("fx_nullfn"), MH_E_INVAL, needles);
}

/* --- Loading, init and fini --- */

static void test_loader_opens_a_good_module(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    const struct mh_handler_def *h;
    char list[64];

    CU_ASSERT_EQUAL_FATAL(mh_module_open("fx_good", FIXTURE("fx_good"), &m, &err), MH_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->name), "fx_good");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->path), FIXTURE("fx_good"));
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.name), "fx_good");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.version), "0.0.1");
    CU_ASSERT_EQUAL(m->def.abi_major, MH_ABI_MAJOR);
    CU_ASSERT_EQUAL(m->def.abi_minor, MH_ABI_MINOR);
    CU_ASSERT_FALSE(m->initialized);
    mh_module_handler_list(m, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "a, b");
    h = mh_module_handler(m, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(h->flags, MH_HANDLER_BLOCKING);
    CU_ASSERT_PTR_NOT_NULL(mh_module_handler(m, "a"));
    CU_ASSERT_PTR_NULL(mh_module_handler(m, "c"));
    CU_ASSERT_PTR_NULL(mh_module_handler(m, ""));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->def.settings);
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.settings[0].name), "count");
    CU_ASSERT_STRING_EQUAL(mh_test_str(m->def.settings[1].name), "label");
    mh_module_free(m); /* never initialised: no fini */
}

static void test_loader_same_file_under_its_own_name(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    char list[64];

    /* fx_named_other.so defines "somebody_else": loading it under that name is fine. */
    CU_ASSERT_EQUAL_FATAL(mh_module_open("somebody_else", FIXTURE("fx_named_other"), &m, &err),
                          MH_OK);
    mh_module_handler_list(m, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "h");
    mh_module_free(m);
}

static void test_loader_init_and_fini_once(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    config_t cfg;
    struct mh_conf *conf = settings_from(&cfg, "count = 2; label = \"x\";");
    int *inits, *finis;
    int inits0, finis0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(mh_module_open("fx_good", FIXTURE("fx_good"), &m, &err), MH_OK);
    inits = fx_good_int("fx_good_inits");
    finis = fx_good_int("fx_good_finis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(inits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(finis);
    inits0 = *inits;
    finis0 = *finis;
    CU_ASSERT_EQUAL(mh_module_init(m, conf, &err), MH_OK);
    CU_ASSERT_TRUE(m->initialized);
    CU_ASSERT_PTR_NOT_NULL(m->state);
    CU_ASSERT_PTR_NOT_NULL(m->host);
    CU_ASSERT_EQUAL(*inits, inits0 + 1);
    mh_module_fini(m);
    CU_ASSERT_FALSE(m->initialized);
    CU_ASSERT_PTR_NULL(m->state);
    CU_ASSERT_EQUAL(*finis, finis0 + 1);
    mh_module_fini(m); /* a second fini does nothing */
    mh_module_free(m);
    CU_ASSERT_EQUAL(*finis, finis0 + 1);
    config_destroy(&cfg);
    mh_module_fini(NULL);
    mh_module_free(NULL);
}

static void test_loader_free_runs_fini(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    int *finis;
    int finis0;

    CU_ASSERT_EQUAL_FATAL(mh_module_open("fx_good", FIXTURE("fx_good"), &m, &err), MH_OK);
    finis = fx_good_int("fx_good_finis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(finis);
    finis0 = *finis;
    CU_ASSERT_EQUAL(mh_module_init(m, NULL, &err), MH_OK); /* no settings: defaults */
    mh_module_free(m);
    CU_ASSERT_EQUAL(*finis, finis0 + 1);
}

static void test_loader_init_failure_carries_the_module_message(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};

    CU_ASSERT_EQUAL_FATAL(mh_module_open("fx_initfail", FIXTURE("fx_initfail"), &m, &err), MH_OK);
    CU_ASSERT_EQUAL(mh_module_init(m, NULL, &err), MH_E_INVAL);
    CU_ASSERT_EQUAL(err.code, MH_E_INVAL);
    CU_ASSERT_STRING_EQUAL(
        err.msg, "module 'fx_initfail' (" FIXTURE(
                     "fx_initfail") "): init failed: database unreachable: connection refused");
    CU_ASSERT_FALSE(m->initialized);
    mh_module_free(m);
}

static void test_loader_init_failure_from_settings(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    config_t cfg;
    struct mh_conf *conf = settings_from(&cfg, "count = 0;");
    int *inits, *finis;
    int inits0, finis0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(mh_module_open("fx_good", FIXTURE("fx_good"), &m, &err), MH_OK);
    inits = fx_good_int("fx_good_inits");
    finis = fx_good_int("fx_good_finis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(inits);
    CU_ASSERT_PTR_NOT_NULL_FATAL(finis);
    inits0 = *inits;
    finis0 = *finis;
    CU_ASSERT_EQUAL(mh_module_init(m, conf, &err), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "module 'fx_good' (" FIXTURE("fx_good") ")"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "init failed: count must be positive"));
    CU_ASSERT_FALSE(m->initialized);
    CU_ASSERT_EQUAL(*inits, inits0);
    mh_module_free(m); /* init failed: no fini */
    CU_ASSERT_EQUAL(*finis, finis0);
    config_destroy(&cfg);
}

static void test_loader_handler_list_fits_the_buffer(void)
{
    struct mh_module *m = NULL;
    struct mh_err err = {0};
    char small[3];

    CU_ASSERT_EQUAL_FATAL(mh_module_open("fx_good", FIXTURE("fx_good"), &m, &err), MH_OK);
    memset(small, 'x', sizeof(small));
    mh_module_handler_list(m, small, sizeof(small));
    CU_ASSERT_EQUAL(small[0], 'a');
    CU_ASSERT_PTR_NOT_NULL(memchr(small, '\0', sizeof(small))); /* truncated, terminated */
    mh_module_free(m);
}

static const struct mh_test_case loader_tests[] = {
    {"missing file", test_loader_missing_file},
    {"directory is not a module", test_loader_directory_is_not_a_module},
    {"garbage file cannot load", test_loader_garbage_file_cannot_load},
    {"shared object without entry symbol", test_loader_shared_object_without_entry_symbol},
    {"entry returning null", test_loader_entry_returning_null},
    {"bad magic", test_loader_bad_magic},
    {"other major names both versions", test_loader_other_major_names_both_versions},
    {"newer minor names both versions", test_loader_newer_minor_names_both_versions},
    {"definition smaller than 1.0", test_loader_definition_smaller_than_1_0},
    {"other fingerprint", test_loader_other_fingerprint},
    {"definition without name", test_loader_definition_without_name},
    {"name mismatch", test_loader_name_mismatch},
    {"definition without api slot", test_loader_definition_without_api_slot},
    {"handler without function", test_loader_handler_without_function},
    {"opens a good module", test_loader_opens_a_good_module},
    {"same file under its own name", test_loader_same_file_under_its_own_name},
    {"init and fini once", test_loader_init_and_fini_once},
    {"free runs fini", test_loader_free_runs_fini},
    {"init failure carries the module message",
     test_loader_init_failure_carries_the_module_message},
    {"init failure from settings", test_loader_init_failure_from_settings},
    {"handler list fits the buffer", test_loader_handler_list_fits_the_buffer},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "loader", loader_tests);
}
