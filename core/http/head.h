/*
 * The head of a response (status line and header fields), for handlers' replies and the
 * engine's own refusals alike. Pure formatting into caller-provided memory.
 */
#ifndef MH_HEAD_H
#define MH_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_loop;
struct mh_resp_field;

struct mh_reply_head {
    int status;
    const char *content_type;             /* NULL: none */
    const struct mh_resp_field *fields;   /* a handler's headers (reverse order), or NULL */
    const char *extra_name, *extra_value; /* one more header, or NULL */
    const char *request_id;               /* X-Request-Id, or NULL */
    uint64_t content_length;              /* sent unless 1xx, 204 or 304 */
    bool close;                           /* Connection: close */
    bool keep_alive_10;                   /* Connection: keep-alive (an HTTP/1.0 client) */
    bool chunked;                         /* Transfer-Encoding: chunked, no Content-Length */
    bool until_close;                     /* no length at all: the body ends with the close */
};

/** The reason phrase for @p status ("Not Found"), or "Unknown". */
const char *mh_http_reason(int status);
/** An upper bound of the head's size; also makes the loop's Date line current. */
size_t mh_head_max(struct mh_loop *loop, const struct mh_reply_head *h);
/** Writes the head at @p p (room for mh_head_max bytes). @return the end of what it wrote. */
char *mh_head_put(char *p, const struct mh_loop *loop, const struct mh_reply_head *h);

#endif
