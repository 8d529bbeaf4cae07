/*
 * The response writer: the status line and header block of an answer, written straight into
 * a connection's output (used for handlers' replies and the engine's own refusals).
 */
#ifndef MH_REPLY_H
#define MH_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_conn;
struct mh_loop;
struct mh_resp_field;

struct mh_reply_head {
    int status;
    const char *content_type;                 /* NULL: none */
    const struct mh_resp_field *fields;       /* a handler's headers (reverse order), or NULL */
    const char *extra_name, *extra_value;     /* one more header, or NULL */
    uint64_t content_length;                  /* sent unless 1xx, 204 or 304 */
    bool close;                               /* Connection: close */
    bool keep_alive_10;                       /* Connection: keep-alive (an HTTP/1.0 client) */
};

/** Writes the head of a response to @p c. @return its size in bytes. */
size_t mh_reply_write_head(struct mh_conn *c, struct mh_loop *loop, const struct mh_reply_head *h);

#endif
