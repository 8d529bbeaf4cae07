/*
 * The access log: one line per answered request, buffered per loop and written in batches —
 * at least once a second, when the buffer fills, and at reload and stop — instead of one write
 * per request. Lines go to stderr or to server.log.access_file, in one of three formats
 * (server.log.access_format): `text` (the server's own log line), `combined` (Apache/nginx
 * combined with module, route, request id and duration appended) or `json` (one object a line).
 */
#ifndef MH_ACCESS_H
#define MH_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/err.h"

struct mh_conn;
struct mh_loop;
struct mh_req;

/** Starts the loop's access log buffer and its flush timer. Thread: the loop's (or before). */
void mh_access_start(struct mh_loop *loop);
/** Writes what is buffered and frees the buffer. */
void mh_access_stop(struct mh_loop *loop);
/** Writes what is buffered now. */
void mh_access_flush(struct mh_loop *loop);

/**
 * Sends access lines to the file @p path (appended to; created 0640), or to stderr if NULL,
 * from now on. Called again with the same path it reopens the file (logrotate's SIGUSR1): the
 * new file takes the old one's descriptor number, so loops writing meanwhile lose nothing.
 * @return MH_OK, or MH_E_IO with err set (the previous destination stays). Thread: main.
 */
enum mh_status mh_access_open(const char *path, struct mh_err *err);

/** One answered (or dropped) request: @p status, @p bytes of body sent. */
void mh_access_request(struct mh_loop *loop, const struct mh_req *req, const char *client,
                       int status, size_t bytes);
/** A request refused before it was read whole (`refused=REASON (WHY)`). */
void mh_access_refusal(struct mh_loop *loop, const char *client, int status, size_t bytes,
                       const char *reason, const char *why);

#endif
