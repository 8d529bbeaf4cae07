/*
 * Channel membership per loop (a small hash table of channels, each an array of members),
 * fan-out of published messages through the loops' mailboxes, and the bus: a store whose
 * driver carries channels between instances (server.channels).
 */
#include "ws/pubsub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "base/sys.h"
#include "base/utf8.h"
#include "mod/store.h"
#include "ws/ws.h"

#define MAX_CHANNEL 255

struct channel {
    struct channel *next; /* hash chain */
    char *name;
    struct mh_ws **members;
    size_t n, cap;
};

struct mh_pubsub_local {
    struct channel **buckets;
    size_t nbuckets, nchannels;
};

/* A connection's memberships, for leaving everything at close. */
struct membership {
    struct membership *next;
    struct channel *ch;
};

struct message {
    atomic_int refs;
    int opcode;
    char *channel;
    size_t len;
    unsigned char data[];
};

struct delivery {
    struct mh_task base;
    struct message *msg;
    struct mh_loop *d;
};

static pthread_rwlock_t loops_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct mh_loop **loops;
static size_t nloops;

static uint64_t hash(const char *s)
{
    return mh_hash_str(s);
}

struct mh_pubsub_local *mh_pubsub_local_new(void)
{
    struct mh_pubsub_local *l = mh_xcalloc(1, sizeof(*l));

    l->nbuckets = 64;
    l->buckets = mh_xcalloc(l->nbuckets, sizeof(*l->buckets));
    return l;
}

void mh_pubsub_local_free(struct mh_pubsub_local *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (struct channel *c = l->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c->members);
            free(c->name);
            free(c);
        }
    }
    free(l->buckets);
    free(l);
}

void mh_pubsub_set_loops(struct mh_loop **l, size_t n)
{
    pthread_rwlock_wrlock(&loops_lock);
    loops = l;
    nloops = n;
    pthread_rwlock_unlock(&loops_lock);
}

void mh_pubsub_get_loops(struct mh_loop ***l, size_t *n)
{
    pthread_rwlock_rdlock(&loops_lock);
    *l = loops;
    *n = nloops;
    pthread_rwlock_unlock(&loops_lock);
}

static struct channel *find(struct mh_pubsub_local *l, const char *name, bool create)
{
    size_t b = hash(name) & (l->nbuckets - 1);
    struct channel *c;

    for (c = l->buckets[b]; c; c = c->next) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    if (!create)
        return NULL;
    c = mh_xcalloc(1, sizeof(*c));
    c->name = mh_xstrdup(name);
    c->next = l->buckets[b];
    l->buckets[b] = c;
    l->nchannels++;
    return c;
}

static void drop_if_empty(struct mh_pubsub_local *l, struct channel *ch)
{
    size_t b = hash(ch->name) & (l->nbuckets - 1);

    if (ch->n)
        return;
    for (struct channel **pp = &l->buckets[b]; *pp; pp = &(*pp)->next) {
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    }
    l->nchannels--;
    free(ch->members);
    free(ch->name);
    free(ch);
}

static bool valid_channel(const char *channel)
{
    size_t n = channel ? strlen(channel) : 0;

    return n > 0 && n <= MAX_CHANNEL;
}

static void remove_member(struct channel *ch, const struct mh_ws *ws)
{
    for (size_t i = 0; i < ch->n; i++) {
        if (ch->members[i] == ws) {
            ch->members[i] = ch->members[--ch->n];
            return;
        }
    }
}

enum mh_status mh_ws_join_impl(struct mh_ws *ws, const char *channel)
{
    struct mh_loop *d = mh_ws_loop(ws);
    struct membership **head = (struct membership **)mh_ws_channels(ws), *m;
    struct channel *ch;

    if (!valid_channel(channel))
        return MH_E_INVAL;
    if (mh_mailbox_current != d->mailbox)
        return MH_E_STATE;
    if (!mh_ws_is_open(ws))
        return MH_E_CANCELLED;
    ch = find(d->pubsub, channel, true);
    for (m = *head; m; m = m->next) {
        if (m->ch == ch)
            return MH_OK; /* already a member */
    }
    if (ch->n == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->members = mh_xrealloc(ch->members, ch->cap * sizeof(*ch->members));
    }
    ch->members[ch->n++] = ws;
    mh_stat_add(&d->stats.channel_joins, 1);
    m = mh_xmalloc(sizeof(*m));
    m->ch = ch;
    m->next = *head;
    *head = m;
    return MH_OK;
}

enum mh_status mh_ws_leave_impl(struct mh_ws *ws, const char *channel)
{
    struct mh_loop *d = mh_ws_loop(ws);
    struct membership **pp = (struct membership **)mh_ws_channels(ws);

    if (!valid_channel(channel))
        return MH_E_INVAL;
    if (mh_mailbox_current != d->mailbox)
        return MH_E_STATE;
    for (; *pp; pp = &(*pp)->next) {
        struct membership *m = *pp;

        if (strcmp(m->ch->name, channel) == 0) {
            *pp = m->next;
            remove_member(m->ch, ws);
            mh_stat_add(&d->stats.channel_leaves, 1);
            drop_if_empty(d->pubsub, m->ch);
            free(m);
            return MH_OK;
        }
    }
    return MH_E_NOTFOUND;
}

void mh_pubsub_leave_all(struct mh_ws *ws)
{
    struct mh_loop *d = mh_ws_loop(ws);
    struct membership **head = (struct membership **)mh_ws_channels(ws);

    while (*head) {
        struct membership *m = *head;

        *head = m->next;
        remove_member(m->ch, ws);
        mh_stat_add(&d->stats.channel_leaves, 1);
        drop_if_empty(d->pubsub, m->ch);
        free(m);
    }
}

static void message_unref(struct message *msg)
{
    if (atomic_fetch_sub(&msg->refs, 1) == 1) {
        free(msg->channel);
        free(msg);
    }
}

static void deliver(struct mh_task *t)
{
    struct delivery *dv = (struct delivery *)t;
    struct channel *ch = find(dv->d->pubsub, dv->msg->channel, false);

    /* Members may leave (or be closed) while we write: walk a snapshot of the array. */
    if (ch && ch->n) {
        size_t n = ch->n;
        struct mh_ws **snap = mh_xmalloc(n * sizeof(*snap));

        memcpy(snap, ch->members, n * sizeof(*snap));
        for (size_t i = 0; i < n; i++)
            mh_ws_ref_impl(snap[i]);
        for (size_t i = 0; i < n; i++) {
            mh_ws_write_local(snap[i], dv->msg->opcode, dv->msg->data, dv->msg->len);
            mh_ws_unref_impl(snap[i]);
        }
        free(snap);
    }
    message_unref(dv->msg);
    free(dv);
}

/* Hands a message to every loop of this process, for its members of @p channel. */
static enum mh_status fanout(const char *channel, int opcode, const void *data, size_t len)
{
    struct message *msg;

    pthread_rwlock_rdlock(&loops_lock);
    if (nloops == 0) {
        pthread_rwlock_unlock(&loops_lock);
        return MH_E_CANCELLED;
    }
    msg = mh_xmalloc(sizeof(*msg) + len);
    atomic_init(&msg->refs, (int)nloops);
    msg->opcode = opcode;
    msg->channel = mh_xstrdup(channel);
    msg->len = len;
    if (len)
        memcpy(msg->data, data, len);
    for (size_t i = 0; i < nloops; i++) {
        struct delivery *dv = mh_xcalloc(1, sizeof(*dv));

        dv->base.complete = deliver;
        dv->msg = msg;
        dv->d = loops[i];
        mh_mailbox_post(loops[i]->mailbox, &dv->base);
    }
    pthread_rwlock_unlock(&loops_lock);
    return MH_OK;
}

/* --- Channels between instances: a store that carries them (server.channels) --- */

/* On the bus a message is: opcode (1 byte: 1 text, 2 binary), the channel's length (1 byte),
 * the channel, the data. Every instance, the publisher included, fans out what it receives. */
static pthread_rwlock_t bus_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct mh_store *bus; /* written by the main thread under bus_lock */

static void on_bus(void *arg, const void *msg, size_t len)
{
    const unsigned char *m = msg;
    char channel[MAX_CHANNEL + 1];
    size_t clen;

    (void)arg;
    if (len < 2 || (m[0] != 0x1 && m[0] != 0x2) || m[1] == 0 || len < 2u + m[1])
        return; /* not ours: another program publishing on the same name */
    clen = m[1];
    memcpy(channel, m + 2, clen);
    channel[clen] = '\0';
    if (strlen(channel) != clen || (m[0] == 0x1 && !mh_utf8_valid(m + 2 + clen, len - 2 - clen)))
        return;
    fanout(channel, m[0], m + 2 + clen, len - 2 - clen);
}

void mh_pubsub_set_bus(struct mh_store *st)
{
    struct mh_store *old;

    pthread_rwlock_rdlock(&bus_lock);
    old = bus;
    pthread_rwlock_unlock(&bus_lock);
    if (st == old)
        return;
    if (st) {
        st->refs++; /* the bus outlives the generation that declared it, until replaced */
        if (st->driver->subscribe(st->db, on_bus, NULL) != MH_OK) {
            mh_error("channels", "store '%s' cannot subscribe: channels stay in this process",
                     st->name);
            mh_store_unref(st);
            st = NULL;
        } else {
            mh_info("channels", "carried between instances by store '%s' (driver %s)", st->name,
                    st->driver->name);
        }
    }
    pthread_rwlock_wrlock(&bus_lock);
    bus = st;
    pthread_rwlock_unlock(&bus_lock);
    if (old) {
        old->driver->unsubscribe(old->db); /* outside the lock: on_bus may be waiting on it */
        mh_store_unref(old);
    }
}

/* --- Channels between the worker processes: relayed by the master --- */

/* A stream socket to the master. Frames: the length of the rest (4 bytes, host order: both
 * ends are this machine), opcode (1 byte), the channel's length (1 byte), the channel, the
 * data. The master passes every frame to the other workers, in the order it read them, so a
 * publisher's messages keep their order. Publishers write whole frames under relay_lock;
 * loop 0 reads what the other workers published. */
static pthread_mutex_t relay_lock = PTHREAD_MUTEX_INITIALIZER;
static int relay_fd = -1;
static struct event *relay_ev;
static unsigned char *relay_in; /* loop 0's partial frames */
static size_t relay_len, relay_cap;

static void relay_send(const char *channel, int opcode, const void *data, size_t len)
{
    size_t clen = strlen(channel);
    uint32_t n = (uint32_t)(2 + clen + len);
    unsigned char head[4 + 2 + MAX_CHANNEL];
    struct iovec iov[2];
    size_t hlen = 4 + 2 + clen, done = 0, total = hlen + len;

    memcpy(head, &n, 4);
    head[4] = (unsigned char)opcode;
    head[5] = (unsigned char)clen;
    memcpy(head + 6, channel, clen); /* NOLINT(bugprone-not-null-terminated-result): framed */
    pthread_mutex_lock(&relay_lock);
    while (relay_fd >= 0 && done < total) {
        ssize_t w;
        int k = 0;

        if (done < hlen) {
            iov[k++] = (struct iovec){head + done, hlen - done};
            iov[k++] = (struct iovec){(void *)(uintptr_t)data, len};
        } else {
            iov[k++] =
                (struct iovec){(unsigned char *)(uintptr_t)data + (done - hlen), total - done};
        }
        w = writev(relay_fd, iov, k);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            mh_warn("channels", "cannot relay to the other worker processes: %s",
                    w < 0 ? MH_STRERROR(errno) : "closed");
            break;
        }
        done += (size_t)w;
    }
    pthread_mutex_unlock(&relay_lock);
}

static void on_relay(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (;;) {
        ssize_t r;
        size_t off = 0;

        if (relay_cap - relay_len < 65536) {
            relay_cap = relay_cap ? relay_cap * 2 : 131072;
            relay_in = mh_xrealloc(relay_in, relay_cap);
        }
        r = recv(fd, relay_in + relay_len, relay_cap - relay_len, MSG_DONTWAIT);
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR))
                event_del(relay_ev); /* the master is gone: this worker is ending */
            return;
        }
        relay_len += (size_t)r;
        while (relay_len - off >= 4) {
            uint32_t n;
            const unsigned char *f = relay_in + off + 4;

            memcpy(&n, relay_in + off, 4);
            if (relay_len - off - 4 < n)
                break;
            if (n >= 2 && (size_t)2 + f[1] <= n && f[1]) {
                char channel[MAX_CHANNEL + 1];

                memcpy(channel, f + 2, f[1]);
                channel[f[1]] = '\0';
                fanout(channel, f[0], f + 2 + f[1], n - 2 - f[1]);
            }
            off += 4 + n;
        }
        memmove(relay_in, relay_in + off, relay_len - off);
        relay_len -= off;
    }
}

void mh_pubsub_set_relay(struct mh_loop *loop, int fd)
{
    if (relay_ev) {
        event_free(relay_ev);
        relay_ev = NULL;
    }
    pthread_mutex_lock(&relay_lock);
    relay_fd = fd;
    pthread_mutex_unlock(&relay_lock);
    if (fd >= 0 && loop) {
        relay_ev = event_new(loop->base, fd, EV_READ | EV_PERSIST, on_relay, NULL);
        if (relay_ev)
            event_add(relay_ev, NULL);
    } else {
        free(relay_in);
        relay_in = NULL;
        relay_len = relay_cap = 0;
    }
}

/* Publishes from any thread: a shared counter, off the request path. */
static _Atomic uint64_t publishes;

uint64_t mh_pubsub_publishes(void)
{
    return mh_stat_get(&publishes);
}

enum mh_status mh_ws_publish_impl(struct mh_host *host, const char *channel, int is_binary,
                                  const void *data, size_t len)
{
    enum mh_status rc = MH_E_UNAVAILABLE;
    (void)host;
    if (!valid_channel(channel) || (len && !data))
        return MH_E_INVAL;
    if (!is_binary && !mh_utf8_valid(data, len))
        return MH_E_INVAL;
    mh_stat_add_shared(&publishes, 1);
    pthread_rwlock_rdlock(&bus_lock);
    if (bus) {
        size_t clen = strlen(channel);
        unsigned char *m = mh_xmalloc(2 + clen + len);

        m[0] = is_binary ? 0x2 : 0x1;
        m[1] = (unsigned char)clen;
        memcpy(m + 2, channel, clen); /* NOLINT(bugprone-not-null-terminated-result): framed */
        if (len)
            memcpy(m + 2 + clen, data, len);
        rc = bus->driver->publish(bus->db, m, 2 + clen + len);
        free(m);
    }
    pthread_rwlock_unlock(&bus_lock);
    if (rc == MH_OK)
        return MH_OK; /* this instance's members get it back from the bus */
    rc = fanout(channel, is_binary ? 0x2 : 0x1, data, len);
    if (rc == MH_OK && relay_fd >= 0)
        relay_send(channel, is_binary ? 0x2 : 0x1, data, len);
    return rc;
}
