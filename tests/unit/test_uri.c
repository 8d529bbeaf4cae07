/* Unit suite for core/http/uri.c: request targets and percent-decoding. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/arena.h"
#include "http/uri.h"
#include "mh_test.h"

static bool valid(const char *t)
{
    return mh_target_valid((const unsigned char *)t, strlen(t));
}

static void test_uri_target_forms(void)
{
    CU_ASSERT(valid("/"));
    CU_ASSERT(valid("/a/b?x=1&y=%20"));
    CU_ASSERT(valid("*"));
    CU_ASSERT(valid("http://example.com"));
    CU_ASSERT(valid("http://user@example.com:8080/p?q"));
    CU_ASSERT(valid("http://[::1]:80/p"));
    CU_ASSERT(valid("relative/path")); /* readable; refused later as not absolute */
    CU_ASSERT_FALSE(valid(""));
    CU_ASSERT_FALSE(valid("http://[zz/"));
    CU_ASSERT_FALSE(valid("http://[]/"));
    CU_ASSERT_FALSE(valid("http://a:99999999/hello/x"));
    CU_ASSERT_FALSE(valid("http://a:65536/"));
    CU_ASSERT(valid("http://a:65535/"));
    CU_ASSERT_FALSE(valid("http://a b/"));
}

static void test_uri_split(void)
{
    char a[] = "/p/q?x=1#frag", b[] = "http://h:1/path?q", c[] = "http://h", d[] = "/only";
    char e[] = "nope";
    const char *path, *query;
    size_t len;

    CU_ASSERT_FATAL(mh_target_split(a, &path, &len, &query));
    CU_ASSERT_STRING_EQUAL(path, "/p/q");
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_STRING_EQUAL(mh_test_str(query), "x=1");
    CU_ASSERT_FATAL(mh_target_split(b, &path, &len, &query));
    CU_ASSERT_STRING_EQUAL(path, "/path");
    CU_ASSERT_STRING_EQUAL(mh_test_str(query), "q");
    CU_ASSERT_FATAL(mh_target_split(c, &path, &len, &query));
    CU_ASSERT_STRING_EQUAL(path, "/");
    CU_ASSERT_PTR_NULL(query);
    CU_ASSERT_FATAL(mh_target_split(d, &path, &len, &query));
    CU_ASSERT_PTR_NULL(query);
    CU_ASSERT_FALSE(mh_target_split(e, &path, &len, &query));
}

static void test_uri_pct_decode(void)
{
    unsigned char mem[256] __attribute__((aligned(16)));
    struct mh_arena a;

    mh_arena_init(&a, mem, sizeof(mem));
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_pct_decode(&a, "a%20b%2Fc", 9, false, true)), "a b/c");
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_pct_decode(&a, "a+b", 3, true, false)), "a b");
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_pct_decode(&a, "a+b", 3, false, true)), "a+b");
    /* strict: a bad escape or an encoded NUL is refused; lenient: kept literally */
    CU_ASSERT_PTR_NULL(mh_pct_decode(&a, "%zz", 3, false, true));
    CU_ASSERT_PTR_NULL(mh_pct_decode(&a, "a%00", 4, false, true));
    CU_ASSERT_PTR_NULL(mh_pct_decode(&a, "a%2", 3, false, true));
    CU_ASSERT_STRING_EQUAL(mh_test_str(mh_pct_decode(&a, "%zz%00", 6, true, false)), "%zz%00");
    mh_arena_cleanup(&a);
}

static const struct mh_test_case uri_tests[] = {
    {"target forms", test_uri_target_forms},
    {"split", test_uri_split},
    {"pct decode", test_uri_pct_decode},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "uri", uri_tests);
}
