/*
 * The WebSocket frame codec (RFC 6455 5.2): parsing a client's frame header by the rules a
 * server must enforce, unmasking, and writing a server frame header. Pure code, no I/O: the
 * fuzz target drives it directly. Messages (fragments, UTF-8, size limits) are ws.c's.
 */
#ifndef MH_FRAME_H
#define MH_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MH_WS_OP_CONT   0x0
#define MH_WS_OP_TEXT   0x1
#define MH_WS_OP_BINARY 0x2
#define MH_WS_OP_CLOSE  0x8
#define MH_WS_OP_PING   0x9
#define MH_WS_OP_PONG   0xa

#define MH_WS_HEADER_MAX 14 /* 2 + 8 (length) + 4 (mask) */

struct mh_ws_frame {
    bool fin;
    int opcode;
    uint64_t len;      /* payload bytes */
    size_t header_len; /* bytes before the payload, mask included */
    unsigned char mask[4];
};

enum mh_ws_parse { MH_WS_FRAME_OK, MH_WS_FRAME_MORE, MH_WS_FRAME_BAD };

/**
 * Parses the frame header at [@p p, @p p + @p len). MH_WS_FRAME_MORE: the header is not
 * complete yet. MH_WS_FRAME_BAD: *why says which rule was broken (reserved bits, unmasked,
 * reserved opcode, a fragmented or long control frame, a length with the top bit set); the
 * close code is always 1002.
 */
enum mh_ws_parse mh_ws_frame_parse(const unsigned char *p, size_t len, struct mh_ws_frame *f,
                                   const char **why);
/** XORs @p len bytes with @p mask, the first byte being at payload offset @p at. */
void mh_ws_unmask(unsigned char *p, size_t len, const unsigned char mask[4], uint64_t at);
/** Writes an unmasked server frame header for @p len payload bytes. @return its size. */
size_t mh_ws_frame_header(unsigned char out[10], int opcode, bool fin, uint64_t len);
/** Whether @p code may be sent in a close frame (RFC 6455 7.4). */
bool mh_ws_close_code_valid(int code);

#endif
