/*
 * SHA-1 (RFC 3174) and base64 (RFC 4648), for the WebSocket handshake's accept key: small
 * enough to keep here, so that a server without TLS links no crypto library. SHA-1 is not
 * used for anything that needs collision resistance.
 */
#ifndef MH_SHA1_H
#define MH_SHA1_H

#include <stdbool.h>
#include <stddef.h>

/** The SHA-1 digest of [@p data, @p data + @p len) into @p out. */
void mh_sha1(const void *data, size_t len, unsigned char out[20]);
/** Base64 of @p len bytes, NUL-terminated, into @p out (room for 4 * ceil(len / 3) + 1).
 *  @return the length written (without the NUL). */
size_t mh_base64_encode(const unsigned char *in, size_t len, char *out);
/** Decodes @p len base64 characters (a multiple of 4, padding allowed at the end only) into
 *  @p out (room for len / 4 * 3). @return the decoded length, or -1 if not valid base64. */
long mh_base64_decode(const char *in, size_t len, unsigned char *out);

#endif
