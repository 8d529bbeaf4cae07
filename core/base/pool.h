/*
 * The worker pool: a fixed set of threads taking tasks from one bounded FIFO queue. A finished
 * task is posted to the mailbox of the loop that submitted it, which completes it there.
 */
#ifndef MH_POOL_H
#define MH_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/metrics.h"
#include "base/task.h"
#include "modhost/sdk.h"

struct mh_mailbox;

struct mh_pool;

enum mh_status mh_pool_new(int workers, size_t queue_max, struct mh_pool **out);
/**
 * Queues @p t. @return MH_OK; MH_E_UNAVAILABLE if the queue is full; MH_E_CANCELLED if the
 * pool is stopping. On error nothing was queued. Thread: any.
 */
enum mh_status mh_pool_submit(struct mh_pool *p, struct mh_task *t);
/** Tasks queued and running. Thread: any. */
size_t mh_pool_backlog(struct mh_pool *p);
struct mh_pool_stats {
    size_t queued, running, workers, queue_max;
    uint64_t done, rejected;  /* tasks run; refused with a full queue */
    struct mh_histogram wait; /* time queued before a worker took it */
};

/** What the pool is doing now, for /metrics. Thread: any. */
void mh_pool_stats(struct mh_pool *p, struct mh_pool_stats *out);

/**
 * Stops the pool: running tasks finish, queued ones are posted home with ran = false, the
 * threads are joined. Thread: the main thread.
 */
void mh_pool_stop(struct mh_pool *p);
void mh_pool_free(struct mh_pool *p);

/** The process's pool while the server runs (NULL otherwise), for the SDK's task calls. */
struct mh_pool *mh_pool_global(void);
void mh_pool_set_global(struct mh_pool *p);

#endif
