/*
 * A loop's mailbox: the only way another thread hands work to a loop. Posting appends to a
 * locked list and wakes the loop with an event; the loop completes the tasks in order.
 */
#ifndef MH_MAILBOX_H
#define MH_MAILBOX_H

struct event_base;
struct mh_task;
struct mh_mailbox;

/** Creates the mailbox of the loop running @p base. Thread: the loop's or before it runs. */
struct mh_mailbox *mh_mailbox_new(struct event_base *base);
/** Completes every task still posted, then frees. Thread: after the loop stopped. */
void mh_mailbox_free(struct mh_mailbox *mb);
/** Appends @p t; its complete() will run on the loop. Thread: any. */
void mh_mailbox_post(struct mh_mailbox *mb, struct mh_task *t);
/** Runs complete() for every posted task now. Thread: the loop's, or after it stopped. */
void mh_mailbox_drain(struct mh_mailbox *mb);

/** The mailbox of the loop running on this thread, or NULL on other threads. */
extern _Thread_local struct mh_mailbox *mh_mailbox_current;

#endif
