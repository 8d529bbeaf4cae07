/* Unit suite for core/base/sha1.c: SHA-1 and base64 against their RFCs' test vectors. */
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/sha1.h"
#include "mh_test.h"

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha1_vectors(void)
{
    static const struct {
        const char *in;
        const char *digest;
    } v[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    };
    unsigned char d[20];
    char h[41];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        mh_sha1(v[i].in, strlen(v[i].in), d);
        hex(d, 20, h);
        CU_ASSERT_STRING_EQUAL(h, v[i].digest);
    }
}

static void test_sha1_padding_edges(void)
{
    /* Lengths where the length field fits in the last block or needs one more. */
    static const struct {
        size_t n;
        const char *digest;
    } v[] = {
        {55, "cef734ba81a024479e09eb5a75b6ddae62e6abf1"},
        {56, "901305367c259952f4e7af8323f480d59f81335b"},
        {63, "0ddc4e0cccd9a12850deb5abb0853a4425559fec"},
        {64, "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163"},
        {119, "4300320394f7ee239bcdce7d3b8bcee173a0cd5c"},
        {120, "ceb2821639c4b6dcb10bce0e522ca2e608ce056d"},
    };
    char x[128];
    unsigned char d[20];
    char h[41];

    memset(x, 'x', sizeof(x));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        mh_sha1(x, v[i].n, d);
        hex(d, 20, h);
        CU_ASSERT_STRING_EQUAL(h, v[i].digest);
    }
}

static void test_sha1_a_million_a(void)
{
    /* A million 'a's (RFC 3174 test 3) through the same code as short inputs. */
    static char m[1000000];
    unsigned char d[20];
    char h[41];

    memset(m, 'a', sizeof(m));
    mh_sha1(m, sizeof(m), d);
    hex(d, 20, h);
    CU_ASSERT_STRING_EQUAL(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void test_sha1_websocket_accept_key(void)
{
    /* RFC 6455 1.3: the sample key and its accept value. */
    const char *in = "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char d[20];
    char b64[32];

    mh_sha1(in, strlen(in), d);
    CU_ASSERT_EQUAL(mh_base64_encode(d, 20, b64), 28);
    CU_ASSERT_STRING_EQUAL(b64, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_base64_rfc4648(void)
{
    static const char *const enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *plain = "foobar";
    char out[16];
    unsigned char dec[16];

    for (size_t n = 0; n <= 6; n++) {
        mh_base64_encode((const unsigned char *)plain, n, out);
        CU_ASSERT_STRING_EQUAL(out, enc[n]);
        CU_ASSERT_EQUAL(mh_base64_decode(enc[n], strlen(enc[n]), dec), (long)n);
        CU_ASSERT_EQUAL(memcmp(dec, plain, n), 0);
    }
    CU_ASSERT_EQUAL(mh_base64_decode("Zm9", 3, dec), -1);
    CU_ASSERT_EQUAL(mh_base64_decode("Zm=v", 4, dec), -1);
    CU_ASSERT_EQUAL(mh_base64_decode("Zg==Zg==", 8, dec), -1);
    CU_ASSERT_EQUAL(mh_base64_decode("Z!==", 4, dec), -1);
}

static const struct mh_test_case sha1_tests[] = {
    {"vectors", test_sha1_vectors},
    {"padding edges", test_sha1_padding_edges},
    {"a million a", test_sha1_a_million_a},
    {"websocket accept key", test_sha1_websocket_accept_key},
    {"base64 rfc4648", test_base64_rfc4648},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "sha1", sha1_tests);
}
