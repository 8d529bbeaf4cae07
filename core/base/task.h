/*
 * A unit of work handed between threads: run on a worker (pool.c), completed on its home loop
 * through the loop's mailbox (mailbox.c). Embedded first in the structs that carry it.
 */
#ifndef MH_TASK_H
#define MH_TASK_H

#include <stdbool.h>
#include <stdint.h>

struct mh_mailbox;

struct mh_task {
    struct mh_task *next;
    struct mh_mailbox *home;             /* where complete runs */
    void (*run)(struct mh_task *t);      /* on a worker */
    void (*complete)(struct mh_task *t); /* on the home loop, exactly once */
    bool ran;                            /* false if the pool stopped before running it */
    int64_t queued_ns;                   /* when it was queued (pool.c, for metrics) */
};

#endif
