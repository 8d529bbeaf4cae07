/*
 * The "memory" store driver through the testing host's store calls (the full contract suite is
 * tests/stores): versions, compare-and-set, ordered scans, the max_bytes setting and its checks.
 */
#include <string.h>

#include <CUnit/CUnit.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

static struct mh_testing *with_store(const char *settings)
{
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    CU_ASSERT_EQUAL(mh_testing_add_driver_store(t, "main", "memory", settings), MH_OK);
    return t;
}

static int count_keys(const void *key, size_t klen, const void *val, size_t vlen, uint64_t version,
                      void *arg)
{
    size_t *n = arg;

    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)version;
    (*n)++;
    return 0;
}

static void test_store_memory_versions_and_cas(void)
{
    struct mh_testing *t = with_store(NULL);
    struct mh_store *st;
    struct mh_value v = {0};
    uint64_t v1 = 0, v2 = 0;
    int created = 0;
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    st = mh_testing_store(t, "main");
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "x", 1, MH_STORE_ABSENT, &v1, &created), MH_OK);
    CU_ASSERT_EQUAL(created, 1);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "y", 1, MH_STORE_ABSENT, NULL, NULL),
                    MH_E_CONFLICT);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "y", 1, v1, &v2, &created), MH_OK);
    CU_ASSERT_TRUE(v2 > v1);
    CU_ASSERT_EQUAL(created, 0);
    CU_ASSERT_EQUAL(mh_api->store_get(st, "a", 1, &v), MH_OK);
    CU_ASSERT_STRING_EQUAL(mh_test_str(v.data), "y");
    CU_ASSERT_EQUAL(v.version, v2);
    mh_api->value_free(&v);
    CU_ASSERT_EQUAL(mh_api->store_delete(st, "a", 1, v1), MH_E_CONFLICT);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "b", 1, "z", 1, MH_STORE_ANY, NULL, NULL), MH_OK);
    CU_ASSERT_EQUAL(mh_api->store_scan(st, "", 0, NULL, 0, 10, count_keys, &n), MH_OK);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(mh_api->store_delete(st, "a", 1, MH_STORE_ANY), MH_OK);
    CU_ASSERT_EQUAL(mh_api->store_get(st, "a", 1, &v), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(mh_api->store_get(st, "", 0, &v), MH_E_INVAL);
    mh_testing_free(t);
}

static void test_store_memory_max_bytes_limits_writes(void)
{
    struct mh_testing *t = with_store("max_bytes = 8;");
    struct mh_store *st;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    st = mh_testing_store(t, NULL);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "k", 1, "1234", 4, MH_STORE_ANY, NULL, NULL), MH_OK);
    CU_ASSERT_EQUAL(mh_api->store_put(st, "k2", 2, "123456789", 9, MH_STORE_ANY, NULL, NULL),
                    MH_E_LIMIT);
    CU_ASSERT_NOT_EQUAL(strlen(mh_api->store_error()), 0);
    mh_testing_free(t);
}

static void test_store_memory_settings_are_checked(void)
{
    struct mh_testing *t = with_store("max_bytes = \"big\";");

    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "'max_bytes' of store 'main'"));
    mh_testing_free(t);

    t = with_store("max_byte = 1;");
    CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "unknown setting 'max_byte'"));
    mh_testing_free(t);

    t = mh_testing_new(mh_module_v1());
    CU_ASSERT_EQUAL(mh_testing_add_driver_store(t, "main", "nosuch", NULL), MH_E_NOTFOUND);
    mh_testing_free(t);
}

static const struct mh_test_case store_memory_tests[] = {
    {"versions and compare-and-set", test_store_memory_versions_and_cas},
    {"max_bytes limits writes", test_store_memory_max_bytes_limits_writes},
    {"settings are checked", test_store_memory_settings_are_checked},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "module_store_memory", store_memory_tests);
}
