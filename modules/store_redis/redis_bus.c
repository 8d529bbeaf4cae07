/*
 * Channels between instances over Redis pub/sub (SDK 1.2): the driver's side of the bus,
 * subscribing, reading messages, publishing in order. The queue, the threads and the
 * subscription's bookkeeping are store_bus.h's; connecting is redis_conn.c's.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_bus.h"
#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_redis.h"

/* One Redis channel, PREFIX "bus", carries every message (store_bus.h runs the threads): the
 * subscriber hands what it receives to the core; the publisher sends this process's messages
 * in queue order on one connection, so each instance's messages keep their order. */
struct rs_bus {
    struct bus bus; /* first: the ops get it */
    struct rs_store *s;
    char channel[MAX_PREFIX + 4];
    size_t clen;
    struct conn sub, pub; /* each used by its thread only */
};

static struct rs_bus *rs_bus_of(struct bus *b)
{
    return (struct rs_bus *)b; /* its first member */
}

/* Subscribes @p c to the bus channel; @return MH_OK once the server confirmed. */
static enum mh_status bus_subscribe_conn(struct rs_bus *b, struct conn *c)
{
    const char *argv[2] = {"SUBSCRIBE", b->channel};
    size_t len[2] = {9, b->clen};
    redisReply *r = NULL;
    enum mh_status rc =
        mh_redis_command(b->s, c, &b->bus.sub_link, 2, argv, len, "cannot subscribe", &r);

    if (rc == MH_OK)
        freeReplyObject(r);
    return rc;
}

static enum mh_status bus_listen(struct bus *bus)
{
    struct rs_bus *b = rs_bus_of(bus);
    enum mh_status rc = mh_redis_dial(b->s, &b->sub, &bus->sub_link, false);

    return rc == MH_OK ? bus_subscribe_conn(b, &b->sub) : rc;
}

static int bus_listen_fd(struct bus *bus)
{
    const struct rs_bus *b = rs_bus_of(bus);

    return b->sub.rc ? b->sub.rc->fd : -1;
}

/* Hands every complete reply buffered on the subscriber's connection to the core. */
static void bus_drain(struct rs_bus *b)
{
    void *reply = NULL;

    while (redisGetReplyFromReader(b->sub.rc, &reply) == REDIS_OK && reply) {
        const redisReply *r = reply;

        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
            b->bus.deliver(b->bus.arg, r->element[2]->str, r->element[2]->len);
        freeReplyObject(reply);
        reply = NULL;
    }
}

static void bus_receive(struct bus *bus)
{
    struct rs_bus *b = rs_bus_of(bus);

    if (redisBufferRead(b->sub.rc) != REDIS_OK) {
        mh_redis_link_lost(&bus->sub_link, &b->sub, "the subscription ended");
        return;
    }
    bus_drain(b);
}

/* Sends @p list in order, pipelined; what the server did not take goes to this instance
 * only. Frees the list. */
static void bus_send(struct bus *bus, struct bus_msg *list)
{
    struct rs_bus *b = rs_bus_of(bus);
    struct conn *c = &b->pub;
    size_t sent = 0, acked = 0;

    if (c->rc && mh_redis_conn_is_stale(&bus->pub_link, c)) { /* closed by a restart while idle */
        redisFree(c->rc);
        c->rc = NULL;
    }
    if (!c->rc && link_gate(&bus->pub_link)) {
        if (mh_redis_dial(b->s, c, &bus->pub_link, false) == MH_OK)
            link_ok(&bus->pub_link);
    }
    for (struct bus_msg *m = list; c->rc && m; m = m->next) {
        const char *argv[3] = {"PUBLISH", b->channel, (const char *)m->data};
        size_t len[3] = {7, b->clen, m->len};

        if (redisAppendCommandArgv(c->rc, 3, argv, len) != REDIS_OK)
            break;
        sent++;
    }
    for (; c->rc && acked < sent; acked++) {
        void *reply = NULL;

        if (redisGetReply(c->rc, &reply) != REDIS_OK) {
            mh_redis_link_lost(&bus->pub_link, c, "cannot publish");
            break;
        }
        freeReplyObject(reply);
    }
    bus_settle(bus, list, NULL, acked);
}

static void bus_close(struct bus *bus, bool is_sub)
{
    struct rs_bus *b = rs_bus_of(bus);
    struct conn *c = is_sub ? &b->sub : &b->pub;

    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
}

static void bus_free(struct bus *bus)
{
    free(rs_bus_of(bus));
}

static const struct bus_ops rs_bus_ops = {
    .listen = bus_listen,
    .listen_fd = bus_listen_fd,
    .receive = bus_receive,
    .send = bus_send,
    .close = bus_close,
    .free = bus_free,
    .subscribed = "subscribed",
};

enum mh_status mh_redis_subscribe(void *db, mh_bus_fn deliver, void *arg)
{
    struct rs_store *s = db;
    struct rs_bus *b = calloc(1, sizeof(*b));

    if (b) {
        b->s = s;
        b->clen = (size_t)snprintf(b->channel, sizeof(b->channel), "%.*sbus", (int)(s->plen - 2),
                                   s->prefix);
    }
    /* The bus is b's first member (NULL stays NULL). */
    return bus_subscribe(&s->mu, &s->bus, (struct bus *)b, &rs_bus_ops, s->what, deliver, arg);
}

void mh_redis_unsubscribe(void *db)
{
    struct rs_store *s = db;

    bus_unsubscribe(&s->mu, &s->bus);
}

enum mh_status mh_redis_publish(void *db, const void *msg, size_t len)
{
    struct rs_store *s = db;

    return bus_publish(&s->mu, &s->bus, msg, len, s->what);
}
