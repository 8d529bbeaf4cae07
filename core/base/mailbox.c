/* Loop mailboxes (see mailbox.h). */
#include "base/mailbox.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "base/mem.h"
#include "base/pool.h"

struct mh_mailbox {
    pthread_mutex_t mu;
    struct mh_task *head, *tail;
    struct event *wake;
};

_Thread_local struct mh_mailbox *mh_mailbox_current;

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mh_mailbox_drain(arg);
}

struct mh_mailbox *mh_mailbox_new(struct event_base *base)
{
    struct mh_mailbox *mb = mh_xcalloc(1, sizeof(*mb));

    pthread_mutex_init(&mb->mu, NULL);
    mb->wake = event_new(base, -1, 0, on_wake, mb);
    if (!mb->wake)
        abort();
    return mb;
}

void mh_mailbox_drain(struct mh_mailbox *mb)
{
    struct mh_task *t;

    pthread_mutex_lock(&mb->mu);
    t = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (t) {
        struct mh_task *next = t->next;

        t->next = NULL;
        t->complete(t);
        t = next;
    }
}

void mh_mailbox_post(struct mh_mailbox *mb, struct mh_task *t)
{
    int was_empty;

    t->next = NULL;
    pthread_mutex_lock(&mb->mu);
    was_empty = mb->head == NULL;
    if (mb->tail)
        mb->tail->next = t;
    else
        mb->head = t;
    mb->tail = t;
    /* Activate under the lock so the loop cannot free the event between our check and use. */
    if (was_empty)
        event_active(mb->wake, 0, 0);
    pthread_mutex_unlock(&mb->mu);
}

void mh_mailbox_free(struct mh_mailbox *mb)
{
    if (!mb)
        return;
    mh_mailbox_drain(mb);
    event_free(mb->wake);
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}
