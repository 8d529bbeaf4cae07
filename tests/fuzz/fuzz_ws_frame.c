/*
 * Fuzz target for the WebSocket frame codec (core/ws/frame.c): every input is parsed as a
 * stream of client frames. Checked: a verdict never reads past the input; a header the codec
 * accepts obeys RFC 6455 (masked, no reserved bits or opcodes, control frames whole and at most
 * 125 bytes, lengths below 2^63); the same bytes fed one at a time give the same verdict (the
 * codec never accepts a prefix it would refuse whole); a server header written for the same
 * length encodes it in the shortest form and parses back to it once masked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"

#define CHECK(cond, what)                                             \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "fuzz_ws_frame: %s (%s)\n", what, #cond); \
            abort();                                                  \
        }                                                             \
    } while (0)

static void check_roundtrip(const struct mh_ws_frame *f)
{
    unsigned char out[MH_WS_HEADER_MAX];
    struct mh_ws_frame g;
    const char *why = NULL;
    size_t n = mh_ws_frame_header(out, f->opcode, f->fin, f->len);

    CHECK(n == (f->len < 126 ? 2u : f->len <= 0xffff ? 4u : 10u), "not the shortest length form");
    out[1] |= 0x80; /* as a client would send it: masked */
    memcpy(out + n, f->mask, 4);
    CHECK(mh_ws_frame_parse(out, n + 4, &g, &why) == MH_WS_FRAME_OK, "own header refused");
    CHECK(g.len == f->len && g.opcode == f->opcode && g.fin == f->fin && g.header_len == n + 4,
          "own header read back differently");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0;

    while (at < size) {
        struct mh_ws_frame f, g;
        const char *why = NULL;
        enum mh_ws_parse r = mh_ws_frame_parse(data + at, size - at, &f, &why);

        /* Byte by byte: no prefix is judged otherwise than the whole. */
        for (size_t k = 1; k < size - at && k < MH_WS_HEADER_MAX; k++) {
            const char *w2 = NULL;
            enum mh_ws_parse p = mh_ws_frame_parse(data + at, k, &g, &w2);

            CHECK(p == MH_WS_FRAME_MORE || p == r, "a prefix judged otherwise than the whole");
            if (p != MH_WS_FRAME_MORE)
                break;
        }
        if (r != MH_WS_FRAME_OK) {
            CHECK(r == MH_WS_FRAME_MORE || why != NULL, "a refusal without a reason");
            break;
        }
        CHECK(f.header_len >= 6 && f.header_len <= MH_WS_HEADER_MAX && f.header_len <= size - at,
              "header length out of range");
        CHECK((data[at] & 0x70) == 0 && (data[at + 1] & 0x80), "reserved bits or no mask");
        CHECK(f.len < (1ULL << 63), "length with the top bit set");
        CHECK(f.opcode < 0x8 || (f.fin && f.len <= 125), "control frame rules");
        check_roundtrip(&f);
        if (f.len > size - at - f.header_len)
            break; /* the payload is not all here */
        {
            unsigned char *p = malloc(f.len ? (size_t)f.len : 1);

            memcpy(p, data + at + f.header_len, (size_t)f.len);
            mh_ws_unmask(p, (size_t)f.len, f.mask, 0);
            mh_ws_unmask(p, (size_t)f.len, f.mask, 0);
            CHECK(memcmp(p, data + at + f.header_len, (size_t)f.len) == 0, "unmask twice");
            free(p);
        }
        at += f.header_len + (size_t)f.len;
    }
    return 0;
}
