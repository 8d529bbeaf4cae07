/*
 * The crash table (core/base/crash.c): what a thread marks at handler entry and exit, what the
 * master reads back (the report, which module to blame), and the quarantine list. Here one
 * process plays both sides; the worker side is attached to entry 1 of a two-entry table.
 */
#include <stdbool.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/crash.h"
#include "mh_test.h"

static struct mh_crash_table *table;

static void test_crash_marks_entry_and_exit(void)
{
    char text[1024];
    const char *blamed = (const char *)1;
    struct mh_crash_slot *s;

    table = table ? table : mh_crash_table_new(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(table);
    CU_ASSERT_PTR_NULL(mh_crash_enter("m", "h", "/r", "GET", "/p", 2, true)); /* not attached */
    mh_crash_attach(table, 1);
    CU_ASSERT_EQUAL(mh_crash_describe(table, 1, text, sizeof(text), &blamed), 0);
    CU_ASSERT_STRING_EQUAL(text, "no thread was in a handler");
    CU_ASSERT_PTR_NULL(blamed);

    s = mh_crash_enter("fx", "boom", "/items/{id}", "GET", "/items/7?x=1", 8, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(mh_crash_describe(table, 1, text, sizeof(text), &blamed), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "loop thread"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "module fx handler boom route \"/items/{id}\" "
                                        "request GET /items/7"));
    CU_ASSERT_PTR_NULL(strstr(text, "?x=1")); /* only path_len bytes were taken */
    CU_ASSERT_STRING_EQUAL(blamed, "fx");
    {
        /* A callback inside another (a WebSocket closed while a message is handled): the
         * outer mark stays whole, and only the outer leave ends it. */
        struct mh_crash_slot *inner =
            mh_crash_enter("other", "on_close", "/ws", "WS", "/ws", 3, true);

        CU_ASSERT_PTR_NULL(inner);
        mh_crash_leave(inner);
        CU_ASSERT_EQUAL(mh_crash_describe(table, 1, text, sizeof(text), &blamed), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "module fx handler boom"));
    }
    mh_crash_leave(s);
    CU_ASSERT_EQUAL(mh_crash_describe(table, 1, text, sizeof(text), &blamed), 0);
    CU_ASSERT_EQUAL(mh_crash_describe(table, 0, text, sizeof(text), &blamed), 0);
}

static void test_crash_reset_forgets_the_worker(void)
{
    struct mh_crash_slot *s = mh_crash_enter("fx", "h", "/", "GET", "/", 1, false);
    char text[256];
    const char *blamed;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    mh_crash_proc_reset(table, 1);
    CU_ASSERT_EQUAL(mh_crash_describe(table, 1, text, sizeof(text), &blamed), 0);
    mh_crash_attach(table, 1); /* a new worker in the same entry */
}

static void test_crash_quarantine_list(void)
{
    CU_ASSERT_FALSE(mh_crash_quarantined("fx"));
    mh_crash_quarantine(table, "fx");
    mh_crash_quarantine(table, "fx"); /* once only */
    CU_ASSERT_TRUE(mh_crash_quarantined("fx"));
    CU_ASSERT_FALSE(mh_crash_quarantined("fy"));
    CU_ASSERT_EQUAL(atomic_load(&table->nquarantined), 1);
    mh_crash_quarantine_clear(table);
    CU_ASSERT_FALSE(mh_crash_quarantined("fx"));
}

static const struct mh_test_case crash_tests[] = {
    {"marks entry and exit", test_crash_marks_entry_and_exit},
    {"reset forgets the worker", test_crash_reset_forgets_the_worker},
    {"quarantine list", test_crash_quarantine_list},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "crash", crash_tests);
}
