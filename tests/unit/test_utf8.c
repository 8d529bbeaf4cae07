/* Unit suite for core/base/utf8.c: validation, whole and resumed across pieces. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/utf8.h"
#include "mh_test.h"

static const struct {
    const char *s;
    size_t n;
    bool valid;
} cases[] = {
    {"", 0, true},
    {"plain ascii", 11, true},
    {"caf\xc3\xa9", 5, true},
    {"\xe2\x82\xac", 3, true},          /* U+20AC */
    {"\xf0\x9f\x98\x80", 4, true},      /* U+1F600 */
    {"\xf4\x8f\xbf\xbf", 4, true},      /* U+10FFFF, the last code point */
    {"\xc3", 1, false},                 /* truncated */
    {"\xc0\xaf", 2, false},             /* overlong '/' */
    {"\xe0\x80\xaf", 3, false},         /* overlong */
    {"\xed\xa0\x80", 3, false},         /* a surrogate, U+D800 */
    {"\xf4\x90\x80\x80", 4, false},     /* beyond U+10FFFF */
    {"\xf8\x88\x80\x80\x80", 5, false}, /* five-byte form */
    {"\x80", 1, false},                 /* a lone continuation byte */
    {"a\xffz", 3, false},
    {"nul\0inside", 10, true}, /* NUL is a valid code point */
};

static void test_utf8_whole(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CU_ASSERT_EQUAL(mh_utf8_valid(cases[i].s, cases[i].n), cases[i].valid);
}

static void test_utf8_resumed_byte_by_byte(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_utf8 u = MH_UTF8_INIT;
        bool ok = true;

        for (size_t k = 0; k < cases[i].n && ok; k++)
            ok = mh_utf8_feed(&u, (const unsigned char *)cases[i].s + k, 1);
        CU_ASSERT_EQUAL(ok && u.need == 0, cases[i].valid);
    }
}

static void test_utf8_incomplete_piece_is_not_an_error_yet(void)
{
    struct mh_utf8 u = MH_UTF8_INIT;

    CU_ASSERT(mh_utf8_feed(&u, (const unsigned char *)"ab\xe2\x82", 4));
    CU_ASSERT_NOT_EQUAL(u.need, 0); /* a sequence under way */
    CU_ASSERT(mh_utf8_feed(&u, (const unsigned char *)"\xac", 1));
    CU_ASSERT_EQUAL(u.need, 0);
}

static const struct mh_test_case utf8_tests[] = {
    {"whole", test_utf8_whole},
    {"resumed byte by byte", test_utf8_resumed_byte_by_byte},
    {"incomplete piece is not an error yet", test_utf8_incomplete_piece_is_not_an_error_yet},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "utf8", utf8_tests);
}
