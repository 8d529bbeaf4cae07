/* The WebSocket frame codec (see frame.h). */
#include "ws/frame.h"

#include <string.h>

enum mh_ws_parse mh_ws_frame_parse(const unsigned char *p, size_t len, struct mh_ws_frame *f,
                                   const char **why)
{
    size_t hlen = 2;
    uint64_t n;

    if (len < 2)
        return MH_WS_FRAME_MORE;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    if (p[0] & 0x70) {
        *why = "reserved bits set";
        return MH_WS_FRAME_BAD;
    }
    if (!(p[1] & 0x80)) {
        *why = "client frames must be masked";
        return MH_WS_FRAME_BAD;
    }
    switch (f->opcode) {
    case MH_WS_OP_CONT:
    case MH_WS_OP_TEXT:
    case MH_WS_OP_BINARY:
    case MH_WS_OP_CLOSE:
    case MH_WS_OP_PING:
    case MH_WS_OP_PONG:
        break;
    default:
        *why = "reserved opcode";
        return MH_WS_FRAME_BAD;
    }
    n = p[1] & 0x7f;
    if (f->opcode >= MH_WS_OP_CLOSE && (!f->fin || n > 125)) {
        *why = "control frames must be whole and at most 125 bytes";
        return MH_WS_FRAME_BAD;
    }
    if (n == 126) {
        hlen = 4;
        if (len < hlen)
            return MH_WS_FRAME_MORE;
        n = ((uint64_t)p[2] << 8) | p[3];
    } else if (n == 127) {
        hlen = 10;
        if (len < hlen)
            return MH_WS_FRAME_MORE;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | p[2 + i];
        if (n >> 63) {
            *why = "frame length has the top bit set";
            return MH_WS_FRAME_BAD;
        }
    }
    if (len < hlen + 4)
        return MH_WS_FRAME_MORE;
    for (int i = 0; i < 4; i++)
        f->mask[i] = p[hlen + (size_t)i];
    f->len = n;
    f->header_len = hlen + 4;
    return MH_WS_FRAME_OK;
}

void mh_ws_unmask(unsigned char *p, size_t len, const unsigned char mask[4], uint64_t at)
{
    size_t i = 0;

    if (len >= 16) {
        /* Eight bytes at a time with the mask repeated from the right offset. */
        unsigned char rep[8];
        uint64_t m, w;

        for (int k = 0; k < 8; k++)
            rep[k] = mask[(at + (uint64_t)k) & 3];
        memcpy(&m, rep, 8);
        for (; i + 8 <= len; i += 8) {
            memcpy(&w, p + i, 8);
            w ^= m;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < len; i++)
        p[i] ^= mask[(at + i) & 3];
}

size_t mh_ws_frame_header(unsigned char out[10], int opcode, bool fin, uint64_t len)
{
    out[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

bool mh_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
