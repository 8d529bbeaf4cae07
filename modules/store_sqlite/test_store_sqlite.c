/*
 * The "sqlite" store driver through the testing host's store calls (the full contract suite is
 * tests/stores): versions and compare-and-set, what a reopened file still holds, and the checks
 * of its settings. Each case uses a database in a temporary directory.
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

static struct mh_testing *with_store(const char *settings)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    CU_ASSERT_EQUAL(mh_testing_add_driver_store(t, "main", "sqlite", settings), MH_OK);
    return t;
}

static void path_settings(const struct mh_test_dir *d, char *out, size_t size)
{
    (void)snprintf(out, size, "path = \"%s/kv.db\"; synchronous = \"normal\";", d->path);
}

static void test_store_sqlite_versions_and_cas(void)
{
    struct mh_test_dir d;
    char settings[512];
    struct mh_testing *t;
    struct mh_store *st;
    struct mh_value v = {0};
    uint64_t v1 = 0, v2 = 0;
    int created = 0;

    mh_test_dir_init(&d);
    path_settings(&d, settings, sizeof(settings));
    t = with_store(settings);
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    st = mh_testing_store(t, "main");
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "x", 1, MH_STORE_ABSENT, &v1, &created), MH_OK);
    CU_ASSERT_EQUAL(created, 1);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "y", 1, MH_STORE_ABSENT, NULL, NULL),
                    MH_E_CONFLICT);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "y", 1, v1 + 1000, NULL, NULL), MH_E_CONFLICT);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "y", 1, v1, &v2, &created), MH_OK);
    CU_ASSERT_TRUE(v2 > v1);
    CU_ASSERT_EQUAL(mh_api->store_get(st, "a", 1, &v), MH_OK);
    CU_ASSERT_EQUAL(v.len, 1);
    CU_ASSERT_EQUAL(memcmp(v.data, "y", 1), 0);
    CU_ASSERT_EQUAL(v.version, v2);
    mh_api->value_free(&v);
    CU_ASSERT_EQUAL(mh_api->store_delete(st, "a", 1, MH_STORE_EXISTS), MH_OK);
    CU_ASSERT_EQUAL(mh_api->store_delete(st, "a", 1, MH_STORE_EXISTS), MH_E_NOTFOUND);
    mh_testing_free(t);
    mh_test_dir_cleanup(&d);
}

static void test_store_sqlite_a_reopened_file_keeps_what_was_written(void)
{
    struct mh_test_dir d;
    char settings[512];
    struct mh_testing *t;
    struct mh_value v = {0};
    uint64_t ver = 0;

    mh_test_dir_init(&d);
    path_settings(&d, settings, sizeof(settings));
    t = with_store(settings);
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    CU_ASSERT_EQUAL(
        mh_api->store_put(mh_testing_store(t, NULL), "kept", 4, "1", 1, MH_STORE_ANY, &ver, NULL),
        MH_OK);
    mh_testing_free(t); /* closes the store */

    t = with_store(settings);
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    CU_ASSERT_EQUAL(mh_api->store_get(mh_testing_store(t, NULL), "kept", 4, &v), MH_OK);
    CU_ASSERT_EQUAL(v.version, ver);
    mh_api->value_free(&v);
    mh_testing_free(t);
    mh_test_dir_cleanup(&d);
}

static void test_store_sqlite_settings_are_checked(void)
{
    struct mh_test_dir d;
    char settings[512];
    struct mh_testing *t;

    mh_test_dir_init(&d);
    t = with_store("synchronous = \"full\";"); /* no path */
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "path"));
    mh_testing_free(t);

    (void)snprintf(settings, sizeof(settings), "path = \"%s/kv.db\"; synchronous = \"often\";",
                   d.path);
    t = with_store(settings);
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "synchronous"));
    mh_testing_free(t);

    t = with_store("path = \"/nonexistent-dir-mh/kv.db\";");
    CU_ASSERT_NOT_EQUAL(mh_testing_start(t), MH_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "does not exist"));
    mh_testing_free(t);
    mh_test_dir_cleanup(&d);
}

static const struct mh_test_case store_sqlite_tests[] = {
    {"versions and compare-and-set", test_store_sqlite_versions_and_cas},
    {"a reopened file keeps what was written",
     test_store_sqlite_a_reopened_file_keeps_what_was_written},
    {"settings are checked", test_store_sqlite_settings_are_checked},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_store_sqlite", store_sqlite_tests);
}
