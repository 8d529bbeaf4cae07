/*
 * The access log: one line per answered request, buffered per loop and written to the log in
 * batches — at least once a second, when the buffer fills, and at reload and stop — instead
 * of one write per request.
 */
#ifndef MH_ACCESS_H
#define MH_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mh_loop;

/** Starts the loop's access log buffer and its flush timer. Thread: the loop's (or before). */
void mh_access_start(struct mh_loop *loop);
/** Writes what is buffered and frees the buffer. */
void mh_access_stop(struct mh_loop *loop);
/** Writes what is buffered now. */
void mh_access_flush(struct mh_loop *loop);

/** `access: METHOD PATH?QUERY STATUS BYTES DURATIONus req=ID` */
void mh_access_request(struct mh_loop *loop, const char *method, const char *path,
                       const char *query, int status, size_t bytes, const struct timespec *start,
                       uint64_t id);
/** `access: - - STATUS BYTES 0us refused=REASON (WHY)` */
void mh_access_refusal(struct mh_loop *loop, int status, size_t bytes, const char *reason,
                       const char *why);

#endif
