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

/* Long ASCII runs go eight bytes at a time: a bad byte, or a sequence, at every offset of a
 * run is still found, whole and in pieces split anywhere. */
static void test_utf8_every_offset_in_long_runs(void)
{
    static const struct {
        const char *seq;
        size_t n;
        bool valid;
    } inserts[] = {{"\xff", 1, false},
                   {"\x80", 1, false},
                   {"\xc3\xa9", 2, true},
                   {"\xed\xa0\x80", 3, false},
                   {"\xf0\x9f\x98\x80", 4, true},
                   {"\xe2\x82", 2, false}};
    unsigned char buf[64];

    for (size_t k = 0; k < sizeof(inserts) / sizeof(inserts[0]); k++) {
        for (size_t at = 0; at + inserts[k].n <= 40; at++) {
            size_t len = 40;

            memset(buf, 'a', sizeof(buf));
            memcpy(buf + at, inserts[k].seq, inserts[k].n);
            /* a truncated sequence is only invalid at the end of the text */
            if (k == 5)
                len = at + inserts[k].n;
            CU_ASSERT_EQUAL(mh_utf8_valid(buf, len), inserts[k].valid);
            for (size_t cut = 0; cut <= len; cut += 5) {
                struct mh_utf8 u = MH_UTF8_INIT;
                bool ok = mh_utf8_feed(&u, buf, cut) && mh_utf8_feed(&u, buf + cut, len - cut);

                CU_ASSERT_EQUAL(ok && u.need == 0, inserts[k].valid);
            }
        }
    }
}

static const struct mh_test_case utf8_tests[] = {
    {"every offset in long runs", test_utf8_every_offset_in_long_runs},
    {"whole", test_utf8_whole},
    {"resumed byte by byte", test_utf8_resumed_byte_by_byte},
    {"incomplete piece is not an error yet", test_utf8_incomplete_piece_is_not_an_error_yet},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "utf8", utf8_tests);
}
