/* Aborting allocation helpers (core/mem.c): results, zeroing, zero sizes and string copies. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/mem.h"
#include "mh_test.h"

static void test_mem_zero_sizes_give_usable_pointers(void)
{
    void *a = mh_xmalloc(0), *b = mh_xcalloc(0, 8), *c = mh_xcalloc(8, 0);
    void *d = mh_xrealloc(NULL, 0);

    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(d);
    free(a);
    free(b);
    free(c);
    free(d);
}

static void test_mem_calloc_zeroes_and_realloc_keeps(void)
{
    unsigned char *p = mh_xcalloc(100, 3);
    int zero = 1;

    for (size_t i = 0; i < 300; i++)
        zero &= p[i] == 0;
    CU_ASSERT_TRUE(zero);
    memset(p, 7, 300);
    p = mh_xrealloc(p, 100000);
    CU_ASSERT_EQUAL(p[0], 7);
    CU_ASSERT_EQUAL(p[299], 7);
    free(p);
}

static void test_mem_string_copies(void)
{
    char *a = mh_xstrdup("hello");
    char *b = mh_xstrndup("hello", 3);
    char *c = mh_xstrndup("hi", 10); /* n beyond the string: stops at its end */
    char *d = mh_xasprintf("%s:%d", "x", 42);
    char *e = mh_xstrdup("");

    CU_ASSERT_STRING_EQUAL(a, "hello");
    CU_ASSERT_STRING_EQUAL(b, "hel");
    CU_ASSERT_STRING_EQUAL(c, "hi");
    CU_ASSERT_STRING_EQUAL(d, "x:42");
    CU_ASSERT_STRING_EQUAL(e, "");
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

static const struct mh_test_case mem_tests[] = {
    {"zero sizes give usable pointers", test_mem_zero_sizes_give_usable_pointers},
    {"calloc zeroes and realloc keeps", test_mem_calloc_zeroes_and_realloc_keeps},
    {"string copies", test_mem_string_copies},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "mem", mem_tests);
}
