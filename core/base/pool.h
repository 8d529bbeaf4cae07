/*
 * The worker pool: a fixed set of threads taking tasks from one bounded FIFO queue. A finished
 * task is posted to the mailbox of the loop that submitted it, which completes it there.
 */
#ifndef MH_POOL_H
#define MH_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "modhost/sdk.h"

struct mh_mailbox;

struct mh_task {
    struct mh_task *next;
    struct mh_mailbox *home;                 /* where complete runs */
    void (*run)(struct mh_task *t);          /* on a worker */
    void (*complete)(struct mh_task *t);     /* on the home loop, exactly once */
    bool ran;                                /* false if the pool stopped before running it */
};

struct mh_pool;

enum mh_status mh_pool_new(int workers, size_t queue_max, struct mh_pool **out);
/**
 * Queues @p t. @return MH_OK; MH_E_UNAVAILABLE if the queue is full; MH_E_CANCELLED if the
 * pool is stopping. On error nothing was queued. Thread: any.
 */
enum mh_status mh_pool_submit(struct mh_pool *p, struct mh_task *t);
/** Tasks queued and running. Thread: any. */
size_t mh_pool_backlog(struct mh_pool *p);
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
