/*
 * A connection's output: a queue of blocks waiting for writev. Small writes fill 16 KiB blocks
 * (drained ones are kept per loop for reuse); a large body is queued as a block of its own,
 * without a copy. Thread: the owning loop's.
 */
#ifndef MH_OUTQ_H
#define MH_OUTQ_H

#include <stddef.h>
#include <sys/uio.h>

struct mh_loop;
struct mh_out_seg;

struct mh_outq {
    struct mh_out_seg *head, *tail;
    size_t unsent; /* bytes queued and not yet written */
};

/** @p n writable bytes at the end of the queue; mh_outq_commit(q, used) queues them. */
char *mh_outq_space(struct mh_outq *q, struct mh_loop *loop, size_t n);
void mh_outq_commit(struct mh_outq *q, size_t used);
/** Queues a copy of @p len bytes. */
void mh_outq_add(struct mh_outq *q, struct mh_loop *loop, const void *data, size_t len);
/** Queues @p block (malloc'd) as it is; the queue frees it once written. */
void mh_outq_give(struct mh_outq *q, void *block, size_t len);
/** Fills up to @p max entries of @p iov with the queued bytes. @return how many. */
int mh_outq_iov(const struct mh_outq *q, struct iovec *iov, int max);
/** @p n bytes from the front were written: drop them. */
void mh_outq_consume(struct mh_outq *q, struct mh_loop *loop, size_t n);
/** Drops everything queued. */
void mh_outq_clear(struct mh_outq *q, struct mh_loop *loop);
/** Frees the loop's spare blocks (the loop is stopping). */
void mh_outq_spares_free(struct mh_loop *loop);

#endif
