/*
 * What the networked drivers share for channels between instances (SDK 1.2): the store's
 * subscription, the queue publish fills without blocking, the publisher thread that empties it
 * in order, the subscriber thread that (re)subscribes with backoff and waits for messages, and
 * stopping both. The wire (connecting, reading, sending) is the driver's, through bus_ops.
 */
#ifndef MH_STORE_BUS_H
#define MH_STORE_BUS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modhost/sdk.h"
#include "store_link.h"

#define BUS_MAX_QUEUED_BYTES ((size_t)64 * 1024 * 1024)

struct bus_msg {
    struct bus_msg *next;
    size_t len;
    unsigned char data[];
};

struct bus;

/* The driver's side of a bus. Each call runs on the thread named; the connections it uses
 * live in the driver's struct around the bus, one for each thread. */
struct bus_ops {
    /* Subscriber: connects and subscribes. A failure counts against sub_link. */
    enum mh_status (*listen)(struct bus *b);
    /* Subscriber: the socket of its connection; -1 while it is not connected. */
    int (*listen_fd)(struct bus *b);
    /* Subscriber: reads what came (the socket is readable) and delivers every complete
     * message; a connection that ended is dropped, counted against sub_link. */
    void (*receive)(struct bus *b);
    /* Publisher: sends @p list in order, (re)connecting if it must, and settles every message
     * with bus_settle. */
    void (*send)(struct bus *b, struct bus_msg *list);
    /* Each thread as it ends: closes its connection (the subscriber's if @p is_sub). */
    void (*close)(struct bus *b, bool is_sub);
    /* Frees the driver's struct around @p b (whose own part is cleaned up or was never set). */
    void (*free)(struct bus *b);
    const char *subscribed; /* the log's word once the first subscription holds */
};

/* A subscription, the first member of the driver's own struct. */
struct bus {
    const struct bus_ops *ops;
    mh_bus_fn deliver;
    void *arg;
    struct link_health sub_link, pub_link;
    char sub_what[232], pub_what[232];
    int wake[2]; /* a pipe: wakes the subscriber's poll to stop */
    pthread_t sub_thread, pub_thread;
    pthread_mutex_t mu; /* guards the queue and is_stopping */
    pthread_cond_t cv;
    struct bus_msg *head, *tail;
    size_t queued_bytes;
    bool is_stopping;
};

static inline bool bus_stopping(struct bus *b)
{
    bool stop;

    pthread_mutex_lock(&b->mu);
    stop = b->is_stopping;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

/* Waits for @p fd to be readable or the wake pipe, up to @p ms (-1: no limit).
 * @return 1 readable, 0 timed out, -1 stop. */
static inline int bus_wait(struct bus *b, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = b->wake[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int rc;

    do {
        rc = poll(p, fd >= 0 ? 2 : 1, ms);
    } while (rc < 0 && errno == EINTR);
    if (p[0].revents)
        return -1;
    return rc > 0 ? 1 : 0;
}

/* Frees the messages from @p m up to (not including) @p end. All but the first @p nsent,
 * which the server took, go to this instance's members only: the engine is down. @return
 * @p end. */
static inline struct bus_msg *bus_settle(struct bus *b, struct bus_msg *m,
                                         const struct bus_msg *end, size_t nsent)
{
    for (size_t i = 0; m != end; i++) {
        struct bus_msg *next = m->next;

        if (i >= nsent)
            b->deliver(b->arg, m->data, m->len);
        free(m);
        m = next;
    }
    return m;
}

/* The subscriber thread: subscribes, with backoff while the server is away, and hands what
 * arrives to the driver's receive until the bus stops. */
static inline void *bus_subscriber(void *arg)
{
    struct bus *b = arg;
    bool was_up = false;

    while (!bus_stopping(b)) {
        int ready;

        if (b->ops->listen_fd(b) < 0) {
            if (!link_gate(&b->sub_link)) {
                if (bus_wait(b, -1, link_retry_in_ms(&b->sub_link) + 1) < 0)
                    break;
                continue;
            }
            if (b->ops->listen(b) != MH_OK)
                continue;
            link_ok(&b->sub_link);
            if (!was_up)
                mh_log(NULL, MH_LOG_INFO, "%s: %s", b->sub_what, b->ops->subscribed);
            was_up = true;
        }
        ready = bus_wait(b, b->ops->listen_fd(b), -1);
        if (ready < 0)
            break;
        if (ready > 0)
            b->ops->receive(b);
    }
    b->ops->close(b, true);
    return NULL;
}

/* The publisher thread: sends what was queued, in queue order, until the bus stops (what was
 * queued before goes first). */
static inline void *bus_publisher(void *arg)
{
    struct bus *b = arg;

    for (;;) {
        struct bus_msg *list;
        bool stop;

        pthread_mutex_lock(&b->mu);
        while (!b->head && !b->is_stopping)
            pthread_cond_wait(&b->cv, &b->mu);
        list = b->head;
        b->head = b->tail = NULL;
        b->queued_bytes = 0;
        stop = b->is_stopping;
        pthread_mutex_unlock(&b->mu);
        if (list)
            b->ops->send(b, list);
        if (stop)
            break;
    }
    b->ops->close(b, false);
    return NULL;
}

/* Frees what is still queued and what bus_start made. */
static inline void bus_cleanup(struct bus *b)
{
    while (b->head) {
        struct bus_msg *m = b->head;

        b->head = m->next;
        free(m);
    }
    close(b->wake[0]);
    close(b->wake[1]);
    link_cleanup(&b->sub_link);
    link_cleanup(&b->pub_link);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

/* Stops both threads; the publisher sends what was queued first. */
static inline void bus_stop(struct bus *b)
{
    pthread_mutex_lock(&b->mu);
    b->is_stopping = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    (void)!write(b->wake[1], "x", 1);
    pthread_join(b->sub_thread, NULL);
    pthread_join(b->pub_thread, NULL);
}

/* Sets up @p b (zeroed, in the driver's struct) and starts its threads. @p what names the
 * store in logs. @return MH_OK; MH_E_IO, MH_E_NOMEM (message set; @p b cleaned up). */
static inline enum mh_status bus_start(struct bus *b, const struct bus_ops *ops, const char *what,
                                       mh_bus_fn deliver, void *arg)
{
    if (pipe2(b->wake, O_CLOEXEC) != 0) {
        int err = errno;
        char text[128];

        mh_store_set_error("cannot make a pipe: %s", strerror_r(err, text, sizeof(text)));
        return MH_E_IO;
    }
    b->ops = ops;
    b->deliver = deliver;
    b->arg = arg;
    (void)snprintf(b->sub_what, sizeof(b->sub_what), "%s (channels in)", what);
    (void)snprintf(b->pub_what, sizeof(b->pub_what), "%s (channels out)", what);
    link_init(&b->sub_link, b->sub_what);
    link_init(&b->pub_link, b->pub_what);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->sub_thread, NULL, bus_subscriber, b) != 0) {
        bus_cleanup(b);
        mh_store_set_error("cannot start the subscriber thread");
        return MH_E_NOMEM;
    }
    if (pthread_create(&b->pub_thread, NULL, bus_publisher, b) != 0) {
        pthread_mutex_lock(&b->mu);
        b->is_stopping = true;
        pthread_mutex_unlock(&b->mu);
        (void)!write(b->wake[1], "x", 1);
        pthread_join(b->sub_thread, NULL);
        bus_cleanup(b);
        mh_store_set_error("cannot start the publisher thread");
        return MH_E_NOMEM;
    }
    return MH_OK;
}

/* --- The store's side: its one subscription, in *@p slot, guarded by @p mu --- */

/* The driver's subscribe: starts @p b (NULL: the driver's struct could not be allocated;
 * otherwise it is consumed, also on failure) and makes it the store's. */
static inline enum mh_status bus_subscribe(pthread_mutex_t *mu, struct bus **slot, struct bus *b,
                                           const struct bus_ops *ops, const char *what,
                                           mh_bus_fn deliver, void *arg)
{
    enum mh_status rc;
    bool is_taken;

    pthread_mutex_lock(mu);
    is_taken = *slot != NULL;
    pthread_mutex_unlock(mu);
    if (!b || is_taken) {
        if (b)
            ops->free(b);
        mh_store_set_error("%s", b ? "already subscribed" : "out of memory");
        return b ? MH_E_STATE : MH_E_NOMEM;
    }
    rc = bus_start(b, ops, what, deliver, arg);
    if (rc != MH_OK) {
        ops->free(b);
        return rc;
    }
    pthread_mutex_lock(mu);
    *slot = b;
    pthread_mutex_unlock(mu);
    return MH_OK;
}

/* The driver's unsubscribe: stops and frees the store's bus, if it has one. */
static inline void bus_unsubscribe(pthread_mutex_t *mu, struct bus **slot)
{
    struct bus *b;

    pthread_mutex_lock(mu);
    b = *slot;
    *slot = NULL;
    pthread_mutex_unlock(mu);
    if (!b)
        return;
    bus_stop(b);
    bus_cleanup(b);
    b->ops->free(b);
}

/* The driver's publish: queues a copy of @p msg for the publisher thread, never blocking on
 * the network. @p what names the store in messages. */
static inline enum mh_status bus_publish(pthread_mutex_t *mu, struct bus *const *slot,
                                         const void *msg, size_t len, const char *what)
{
    struct bus_msg *m;
    struct bus *b;
    enum mh_status rc = MH_OK;

    pthread_mutex_lock(mu);
    b = *slot;
    pthread_mutex_unlock(mu);
    if (!b) {
        mh_store_set_error("%s: not subscribed", what);
        return MH_E_STATE;
    }
    m = malloc(sizeof(*m) + len);
    if (!m) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->data, msg, len);
    pthread_mutex_lock(&b->mu);
    if (b->is_stopping || b->queued_bytes + len > BUS_MAX_QUEUED_BYTES) {
        rc = MH_E_UNAVAILABLE;
    } else {
        if (b->tail)
            b->tail->next = m;
        else
            b->head = m;
        b->tail = m;
        b->queued_bytes += len;
        m = NULL;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != MH_OK) {
        free(m);
        mh_store_set_error("%s: %zu bytes of messages wait for the server already", what,
                           BUS_MAX_QUEUED_BYTES);
    }
    return rc;
}

#endif
