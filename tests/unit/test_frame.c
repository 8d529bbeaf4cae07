/* Unit suite for core/ws/frame.c: the WebSocket frame codec. */
#include <string.h>

#include <CUnit/CUnit.h>

#include "mh_test.h"
#include "ws/frame.h"

static enum mh_ws_parse parse(const char *bytes, size_t n, struct mh_ws_frame *f, const char **why)
{
    *why = NULL;
    return mh_ws_frame_parse((const unsigned char *)bytes, n, f, why);
}

static void test_frame_rfc_sample_masked_hello(void)
{
    /* RFC 6455 5.7: a masked text frame "Hello". */
    unsigned char b[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct mh_ws_frame f;
    const char *why;

    CU_ASSERT_EQUAL_FATAL(parse((const char *)b, sizeof(b), &f, &why), MH_WS_FRAME_OK);
    CU_ASSERT(f.fin);
    CU_ASSERT_EQUAL(f.opcode, MH_WS_OP_TEXT);
    CU_ASSERT_EQUAL(f.len, 5);
    CU_ASSERT_EQUAL(f.header_len, 6);
    mh_ws_unmask(b + 6, 5, f.mask, 0);
    CU_ASSERT_EQUAL(memcmp(b + 6, "Hello", 5), 0);
}

static void test_frame_incomplete_headers_ask_for_more(void)
{
    const char full[] = "\x82\xfe\x01\x00\x01\x02\x03\x04";
    struct mh_ws_frame f;
    const char *why;

    for (size_t n = 0; n < sizeof(full) - 1; n++)
        CU_ASSERT_EQUAL(parse(full, n, &f, &why), MH_WS_FRAME_MORE);
    CU_ASSERT_EQUAL(parse(full, sizeof(full) - 1, &f, &why), MH_WS_FRAME_OK);
    CU_ASSERT_EQUAL(f.len, 256);
    CU_ASSERT_EQUAL(f.header_len, 8);
}

static void test_frame_64_bit_length(void)
{
    const char b[] = "\x82\xff\x00\x00\x00\x01\x00\x00\x00\x00\x01\x02\x03\x04";
    struct mh_ws_frame f;
    const char *why;

    CU_ASSERT_EQUAL_FATAL(parse(b, sizeof(b) - 1, &f, &why), MH_WS_FRAME_OK);
    CU_ASSERT_EQUAL(f.len, 1ULL << 32);
    CU_ASSERT_EQUAL(f.header_len, 14);
}

static void test_frame_refusals_name_the_rule(void)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *why;
    } cases[] = {
        {"\xc1\x80\x00\x00\x00\x00", 6, "reserved bits set"},
        {"\x81\x00", 2, "client frames must be masked"},
        {"\x83\x80\x00\x00\x00\x00", 6, "reserved opcode"},
        {"\x8b\x80\x00\x00\x00\x00", 6, "reserved opcode"},
        {"\x09\x80\x00\x00\x00\x00", 6, "control frames must be whole and at most 125 bytes"},
        {"\x89\xfe\x00\x7e\x00\x00\x00\x00", 8,
         "control frames must be whole and at most 125 bytes"},
        {"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14,
         "frame length has the top bit set"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mh_ws_frame f;
        const char *why;

        CU_ASSERT_EQUAL(parse(cases[i].bytes, cases[i].n, &f, &why), MH_WS_FRAME_BAD);
        CU_ASSERT_STRING_EQUAL(mh_test_str(why), cases[i].why);
    }
}

static void test_frame_header_uses_the_shortest_length(void)
{
    unsigned char out[10];

    CU_ASSERT_EQUAL(mh_ws_frame_header(out, MH_WS_OP_TEXT, true, 125), 2);
    CU_ASSERT_EQUAL(out[0], 0x81);
    CU_ASSERT_EQUAL(out[1], 125);
    CU_ASSERT_EQUAL(mh_ws_frame_header(out, MH_WS_OP_BINARY, true, 126), 4);
    CU_ASSERT_EQUAL(out[1], 126);
    CU_ASSERT_EQUAL((out[2] << 8) | out[3], 126);
    CU_ASSERT_EQUAL(mh_ws_frame_header(out, MH_WS_OP_BINARY, false, 65536), 10);
    CU_ASSERT_EQUAL(out[0], 0x02);
    CU_ASSERT_EQUAL(out[1], 127);
    CU_ASSERT_EQUAL(out[7], 1);
}

static void test_frame_unmask_from_an_offset(void)
{
    const unsigned char mask[4] = {1, 2, 3, 4};
    unsigned char a[8] = {0}, b[8] = {0};

    mh_ws_unmask(a, 8, mask, 0);
    mh_ws_unmask(b, 3, mask, 0);
    mh_ws_unmask(b + 3, 5, mask, 3); /* the rest of the same payload, in a second piece */
    CU_ASSERT_EQUAL(memcmp(a, b, 8), 0);
    CU_ASSERT_EQUAL(a[4], 1);
}

/* Unmasking a word at a time equals the byte-by-byte rule (byte i XOR mask[(at + i) % 4]) for
 * every length and starting offset. */
static void test_frame_unmask_matches_the_bytewise_rule(void)
{
    const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    unsigned char got[80] = {0}, want[80] = {0};

    for (size_t len = 0; len <= 70; len++) {
        for (uint64_t at = 0; at < 8; at++) {
            for (size_t i = 0; i < len; i++)
                got[i] = want[i] = (unsigned char)(i * 7 + at);
            for (size_t i = 0; i < len; i++)
                want[i] ^= mask[(at + i) & 3];
            mh_ws_unmask(got, len, mask, at);
            CU_ASSERT_EQUAL(memcmp(got, want, len), 0);
        }
    }
}

static void test_frame_close_codes(void)
{
    CU_ASSERT(mh_ws_close_code_valid(1000));
    CU_ASSERT(mh_ws_close_code_valid(1011));
    CU_ASSERT(mh_ws_close_code_valid(4999));
    CU_ASSERT_FALSE(mh_ws_close_code_valid(1004));
    CU_ASSERT_FALSE(mh_ws_close_code_valid(1005));
    CU_ASSERT_FALSE(mh_ws_close_code_valid(1006));
    CU_ASSERT_FALSE(mh_ws_close_code_valid(999));
    CU_ASSERT_FALSE(mh_ws_close_code_valid(5000));
}

static const struct mh_test_case frame_tests[] = {
    {"rfc sample masked hello", test_frame_rfc_sample_masked_hello},
    {"incomplete headers ask for more", test_frame_incomplete_headers_ask_for_more},
    {"64 bit length", test_frame_64_bit_length},
    {"refusals name the rule", test_frame_refusals_name_the_rule},
    {"header uses the shortest length", test_frame_header_uses_the_shortest_length},
    {"unmask from an offset", test_frame_unmask_from_an_offset},
    {"unmask matches the bytewise rule", test_frame_unmask_matches_the_bytewise_rule},
    {"close codes", test_frame_close_codes},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "frame", frame_tests);
}
