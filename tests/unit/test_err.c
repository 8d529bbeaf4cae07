/*
 * Error records (core/err.c): filling, truncation, lists that grow, "file:line: message"
 * formatting and the status texts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/err.h"
#include "mh_test.h"

static void test_err_set_fills_every_field(void)
{
    struct mh_err err;

    memset(&err, 'x', sizeof(err));
    CU_ASSERT_EQUAL(mh_err_set(&err, MH_E_CONFLICT, "/etc/a.conf", 7, "key '%s' = %d", "k", 3),
                    MH_E_CONFLICT);
    CU_ASSERT_EQUAL(err.code, MH_E_CONFLICT);
    CU_ASSERT_STRING_EQUAL(err.file, "/etc/a.conf");
    CU_ASSERT_EQUAL(err.line, 7);
    CU_ASSERT_STRING_EQUAL(err.msg, "key 'k' = 3");

    CU_ASSERT_EQUAL(mh_err_set(&err, MH_E_INVAL, NULL, 0, "plain"), MH_E_INVAL);
    CU_ASSERT_STRING_EQUAL(err.file, "");
    CU_ASSERT_EQUAL(err.line, 0);
    /* Without a record the code still comes back, so callers can always return it. */
    CU_ASSERT_EQUAL(mh_err_set(NULL, MH_E_IO, "f", 1, "ignored"), MH_E_IO);
}

static void test_err_set_truncates_long_text(void)
{
    struct mh_err err;
    char *big = malloc(4000);

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 'a', 3999);
    big[3999] = '\0';
    mh_err_set(&err, MH_E_INVAL, big, 1, "%s", big);
    CU_ASSERT_EQUAL(strlen(err.file), sizeof(err.file) - 1);
    CU_ASSERT_EQUAL(strlen(err.msg), sizeof(err.msg) - 1);
    free(big);
}

static void test_err_list_grows_and_keeps_order(void)
{
    struct mh_errlist list = {0};
    int ok = 1;

    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(mh_errlist_add(&list, MH_E_INVAL, "f.conf", i + 1, "error %d", i),
                        MH_E_INVAL);
    CU_ASSERT_EQUAL_FATAL(list.count, 100);
    CU_ASSERT_TRUE(list.cap >= 100);
    for (int i = 0; i < 100; i++) {
        char expect[32];

        snprintf(expect, sizeof(expect), "error %d", i);
        if (list.items[i].line != i + 1 || strcmp(list.items[i].msg, expect) != 0)
            ok = 0;
    }
    CU_ASSERT_TRUE(ok);
    mh_errlist_cleanup(&list);
    CU_ASSERT_EQUAL(list.count, 0);
    CU_ASSERT_EQUAL(list.cap, 0);
    CU_ASSERT_PTR_NULL(list.items);
    mh_errlist_cleanup(&list); /* twice is harmless */
}

static void test_err_push_copies_the_record(void)
{
    struct mh_errlist list = {0};
    struct mh_err err;

    mh_err_set(&err, MH_E_NOTFOUND, "a", 2, "first");
    mh_errlist_push(&list, &err);
    mh_err_set(&err, MH_E_IO, "b", 3, "second");
    CU_ASSERT_EQUAL_FATAL(list.count, 1);
    CU_ASSERT_EQUAL(list.items[0].code, MH_E_NOTFOUND);
    CU_ASSERT_STRING_EQUAL(list.items[0].msg, "first");
    mh_errlist_cleanup(&list);
}

static void test_err_format(void)
{
    struct mh_err err;
    char buf[64], small[8];

    mh_err_set(&err, MH_E_INVAL, "conf.d/a.conf", 12, "bad value");
    mh_err_format(&err, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "conf.d/a.conf:12: bad value");
    mh_err_set(&err, MH_E_INVAL, "conf.d", 0, "no files");
    mh_err_format(&err, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "conf.d: no files");
    mh_err_set(&err, MH_E_INVAL, NULL, 5, "no file");
    mh_err_format(&err, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "no file");
    mh_err_set(&err, MH_E_INVAL, "conf.d/a.conf", 12, "bad value");
    mh_err_format(&err, small, sizeof(small));
    CU_ASSERT_STRING_EQUAL(small, "conf.d/");
}

static void test_err_list_print_one_line_each(void)
{
    struct mh_errlist list = {0};
    FILE *f = tmpfile();
    char text[256] = "";
    size_t n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    mh_errlist_add(&list, MH_E_INVAL, "a.conf", 1, "one");
    mh_errlist_add(&list, MH_E_IO, "dir", 0, "two");
    mh_errlist_print(&list, f);
    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    CU_ASSERT_STRING_EQUAL(text, "a.conf:1: one\ndir: two\n");
    fclose(f);
    mh_errlist_cleanup(&list);
}

static void test_err_status_texts(void)
{
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_OK), "ok");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_INVAL), "invalid argument");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_NOMEM), "out of memory");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_LIMIT), "limit exceeded");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_NOTFOUND), "not found");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_CONFLICT), "conflict");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_IO), "I/O error");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_CANCELLED), "cancelled");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_UNAVAILABLE), "unavailable");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_TIMEOUT), "timed out");
    CU_ASSERT_STRING_EQUAL(mh_status_str(MH_E_STATE), "not allowed in this state");
    CU_ASSERT_STRING_EQUAL(mh_status_str((enum mh_status) - 999), "unknown status");
}

static const struct mh_test_case err_tests[] = {
    {"set fills every field", test_err_set_fills_every_field},
    {"set truncates long text", test_err_set_truncates_long_text},
    {"list grows and keeps order", test_err_list_grows_and_keeps_order},
    {"push copies the record", test_err_push_copies_the_record},
    {"format", test_err_format},
    {"list print one line each", test_err_list_print_one_line_each},
    {"status texts", test_err_status_texts},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "err", err_tests);
}
