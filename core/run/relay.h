/*
 * The master's side of the channel relay between worker processes: each worker has a stream
 * socket to the master carrying length-prefixed frames (a 4-byte native-order length, then the
 * frame); the master passes every whole frame a worker sends to every other worker, in order.
 * A worker that reads too slowly loses frames (logged) instead of growing the master without
 * bound.
 */
#ifndef MH_RELAY_H
#define MH_RELAY_H

#include <stddef.h>
#include <sys/types.h>

#define MH_RELAY_MAX_QUEUED (64u << 20) /* bytes waiting for one worker before frames drop */

/* Bytes waiting in the master, for one direction of one worker's relay socket. */
struct mh_relay_buf {
    unsigned char *data;
    size_t len, cap;
};

/* The master's end of one worker's relay. */
struct mh_relay_end {
    int fd;    /* -1: none (one process, or the worker is gone) */
    pid_t pid; /* the worker's, for the log */
    struct mh_relay_buf in, out;
};

/** Writes what is queued for @p e until the socket would block (POLLOUT says when to go on). */
void mh_relay_flush(struct mh_relay_end *e);
/** Reads what @p from sent and queues every whole frame to each of @p to (and flushes). */
void mh_relay_forward(struct mh_relay_end *from, struct mh_relay_end *const *to, size_t nto);
/** Closes @p e's socket and frees its buffers. */
void mh_relay_close(struct mh_relay_end *e);

#endif
