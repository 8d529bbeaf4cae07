/*
 * Channels between instances over PostgreSQL LISTEN/NOTIFY (SDK 1.2): the driver's side of the
 * bus, messages cut into hex chunks that fit a notification and joined again, sent in
 * transactions. The queue, the threads and the subscription's bookkeeping are store_bus.h's;
 * connecting is pg_conn.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../store_common/store_bus.h"
#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_postgres.h"

/* Raw bytes per notification: hex-encoded behind its header, under the server's 8000-byte
 * payload limit. */
#define BUS_CHUNK_BYTES 3900
/* Raw bytes of messages sent in one transaction (whole messages; at least one). */
#define BUS_TXN_BYTES ((size_t)4 * 1024 * 1024)

/*
 * The channel TABLE_bus carries every message. A notification's payload is text under 8000
 * bytes, so a message goes as hex in chunks, "SENDER SEQ INDEX COUNT HEX" each, and the chunks
 * of a batch of messages go in one transaction: PostgreSQL queues a transaction's
 * notifications together, in order, when it commits, and commits them one transaction after
 * the other, so a listener gets each message's chunks in a row, once, and one sender's
 * messages in the order they were sent. The subscriber thread (store_bus.h) LISTENs and joins
 * the chunks; the publisher thread sends this process's messages in queue order on one
 * connection.
 */
struct pg_bus {
    struct bus bus; /* first: the ops get it */
    struct pg_store *s;
    char channel[MAX_TABLE + 8];     /* TABLE_bus: [a-z0-9_], as pg_notify takes it */
    char listen_sql[MAX_TABLE + 24]; /* LISTEN "TABLE_bus" */
    uint64_t sender;                 /* this process, in its chunks' headers */
    uint64_t seq;                    /* publisher thread only */
    struct conn sub, pub;            /* each used by its thread only */
    /* The message being joined (subscriber thread only); in_count 0: none. */
    uint64_t in_sender, in_seq;
    unsigned long long in_next, in_count;
    unsigned char *in_buf;
    size_t in_len, in_cap;
};

static struct pg_bus *pg_bus_of(struct bus *b)
{
    return (struct pg_bus *)b; /* its first member */
}

/* The number in base @p base at *@p p, followed by one space; moves *@p p past both. */
static bool take_number(const char **p, int base, unsigned long long *out)
{
    char *end;

    if (**p < '0' || **p > 'f')
        return false; /* no sign, no blanks */
    errno = 0;
    *out = strtoull(*p, &end, base);
    if (end == *p || *end != ' ' || errno)
        return false;
    *p = end + 1;
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Drops the message being joined. */
static void bus_join_reset(struct pg_bus *b)
{
    b->in_count = b->in_next = 0;
    b->in_len = 0;
    if (b->in_cap > (size_t)1024 * 1024) { /* keep a small buffer, not the largest seen */
        free(b->in_buf);
        b->in_buf = NULL;
        b->in_cap = 0;
    }
}

/* Takes one chunk (a notification's payload); hands the message to the core once its last
 * chunk came. A payload that does not parse is not ours (another program on the channel). */
static void bus_chunk(struct pg_bus *b, const char *p)
{
    unsigned long long sender, seq, idx, count;
    size_t n;

    if (!take_number(&p, 16, &sender) || !take_number(&p, 16, &seq) || !take_number(&p, 10, &idx) ||
        !take_number(&p, 10, &count) || idx >= count || strlen(p) % 2)
        return;
    if (idx == 0) {
        bus_join_reset(b);
        b->in_sender = sender;
        b->in_seq = seq;
        b->in_count = count;
    } else if (!b->in_count || sender != b->in_sender || seq != b->in_seq || count != b->in_count ||
               idx != b->in_next) {
        bus_join_reset(b); /* a chunk out of its row: never from PostgreSQL's queue */
        return;
    }
    n = strlen(p) / 2;
    if (b->in_len + n > BUS_MAX_QUEUED_BYTES) {
        bus_join_reset(b);
        return;
    }
    if (b->in_len + n > b->in_cap) {
        size_t cap = 2 * (b->in_len + n);
        unsigned char *buf = realloc(b->in_buf, cap);

        if (!buf) {
            bus_join_reset(b);
            return;
        }
        b->in_buf = buf;
        b->in_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            bus_join_reset(b);
            return;
        }
        b->in_buf[b->in_len++] = (unsigned char)(hi << 4 | lo);
    }
    if (++b->in_next == b->in_count) {
        b->bus.deliver(b->bus.arg, b->in_buf, b->in_len);
        bus_join_reset(b);
    }
}

/* Connects the subscriber's connection and LISTENs on the bus channel. */
static enum mh_status bus_listen(struct bus *bus)
{
    struct pg_bus *b = pg_bus_of(bus);
    struct conn *c = &b->sub;
    int64_t deadline = link_now_ms() + b->s->timeout_ms;
    enum mh_status rc = mh_pg_conn_connect(b->s, &bus->sub_link, c, deadline);
    bool timed_out;
    PGresult *r;

    if (rc != MH_OK)
        return rc;
    if (!PQsendQuery(c->pg, b->listen_sql))
        return mh_pg_link_lost_on(&bus->sub_link, c, "cannot listen", false);
    r = mh_pg_await_result(c->pg, deadline, &timed_out);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        PQclear(r);
        return mh_pg_link_lost_on(&bus->sub_link, c, "cannot listen", timed_out);
    }
    PQclear(r);
    return MH_OK;
}

static int bus_listen_fd(struct bus *bus)
{
    const struct pg_bus *b = pg_bus_of(bus);

    return b->sub.pg ? PQsocket(b->sub.pg) : -1;
}

/* Reads what came and hands every notification on the bus channel to bus_chunk. */
static void bus_receive(struct bus *bus)
{
    struct pg_bus *b = pg_bus_of(bus);
    PGnotify *n;

    if (!PQconsumeInput(b->sub.pg) || PQstatus(b->sub.pg) != CONNECTION_OK) {
        mh_pg_link_lost_on(&bus->sub_link, &b->sub, "the subscription ended", false);
        bus_join_reset(b);
        return;
    }
    while ((n = PQnotifies(b->sub.pg))) {
        if (strcmp(n->relname, b->channel) == 0)
            bus_chunk(b, n->extra);
        PQfreemem(n);
    }
}

/* Appends "SELECT pg_notify('CHANNEL', 'HEADER HEX');" for each chunk of @p m to @p q
 * (every character is from [a-z0-9_ ], so nothing needs quoting). @return false if out of
 * memory. */
static bool bus_append_message(struct pg_bus *b, char **q, size_t *len, size_t *cap,
                               const struct bus_msg *m)
{
    static const char hex[] = "0123456789abcdef";
    size_t count = m->len ? (m->len + BUS_CHUNK_BYTES - 1) / BUS_CHUNK_BYTES : 1;
    size_t need = *len + 2 * m->len + count * (sizeof(b->channel) + 128);
    uint64_t seq = b->seq++;
    char *out = *q;

    if (!out || need > *cap) {
        out = realloc(*q, 2 * need);
        if (!out)
            return false;
        *q = out;
        *cap = 2 * need;
    }
    for (size_t i = 0, off = 0; i < count; i++, off += BUS_CHUNK_BYTES) {
        size_t end = off + BUS_CHUNK_BYTES < m->len ? off + BUS_CHUNK_BYTES : m->len;
        int head = snprintf(out + *len, *cap - *len,
                            "SELECT pg_notify('%s', '%016" PRIx64 " %" PRIx64 " %zu %zu ",
                            b->channel, b->sender, seq, i, count);

        if (head < 0)
            return false;
        *len += (size_t)head;
        for (size_t k = off; k < end; k++) {
            out[(*len)++] = hex[m->data[k] >> 4];
            out[(*len)++] = hex[m->data[k] & 0xf];
        }
        memcpy(out + *len, "');", 4);
        *len += 3;
    }
    return true;
}

/* Sends the messages from @p m up to (not including) @p end in one transaction on @p c.
 * @return whether the server committed it. */
static bool bus_transaction(struct pg_bus *b, struct conn *c, const struct bus_msg *m,
                            const struct bus_msg *end)
{
    int64_t deadline = link_now_ms() + b->s->timeout_ms;
    size_t len = 0, cap = 0;
    char *q = NULL;
    bool ok, timed_out = false;

    for (; m != end; m = m->next) {
        if (!bus_append_message(b, &q, &len, &cap, m)) {
            free(q);
            return false;
        }
    }
    /* One query string of several statements runs as one transaction. */
    ok = PQsendQuery(c->pg, q) == 1 && mh_pg_await_all(c->pg, deadline, &timed_out);
    free(q);
    if (ok)
        return true;
    /* Unless the server answered with an error and the connection is idle again, drop it. */
    if (timed_out || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        mh_pg_link_lost_on(&b->bus.pub_link, c, "cannot publish", timed_out);
    else
        mh_log(NULL, MH_LOG_WARN, "%s: the server refused a batch of messages: %s", b->bus.pub_what,
               PQerrorMessage(c->pg));
    return false;
}

/* Sends @p list in order, in transactions of up to BUS_TXN_BYTES; what the server did not
 * take goes to this instance only. Frees the list. */
static void bus_send(struct bus *bus, struct bus_msg *list)
{
    struct pg_bus *b = pg_bus_of(bus);
    struct conn *c = &b->pub;

    if (c->pg && mh_pg_conn_is_stale_on(&bus->pub_link, c)) { /* closed by a restart while idle */
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (!c->pg && link_gate(&bus->pub_link)) {
        if (mh_pg_conn_connect(b->s, &bus->pub_link, c, link_now_ms() + b->s->timeout_ms) == MH_OK)
            link_ok(&bus->pub_link);
    }
    while (list) {
        struct bus_msg *end = list->next;
        size_t bytes = list->len;
        bool sent;

        while (end && bytes + end->len <= BUS_TXN_BYTES) {
            bytes += end->len;
            end = end->next;
        }
        sent = c->pg && bus_transaction(b, c, list, end);
        list = bus_settle(bus, list, end, sent ? SIZE_MAX : 0);
    }
}

static void bus_close(struct bus *bus, bool is_sub)
{
    struct pg_bus *b = pg_bus_of(bus);
    struct conn *c = is_sub ? &b->sub : &b->pub;

    PQfinish(c->pg);
    c->pg = NULL;
}

static void bus_free(struct bus *bus)
{
    struct pg_bus *b = pg_bus_of(bus);

    free(b->in_buf);
    free(b);
}

static const struct bus_ops pg_bus_ops = {
    .listen = bus_listen,
    .listen_fd = bus_listen_fd,
    .receive = bus_receive,
    .send = bus_send,
    .close = bus_close,
    .free = bus_free,
    .subscribed = "listening",
};

enum mh_status mh_pg_subscribe(void *db, mh_bus_fn deliver, void *arg)
{
    struct pg_store *s = db;
    struct pg_bus *b = calloc(1, sizeof(*b));
    size_t tlen = strlen(s->table) - 2; /* the name inside the quotes */

    if (b) {
        b->s = s;
        (void)snprintf(b->channel, sizeof(b->channel), "%.*s_bus", (int)tlen, s->table + 1);
        (void)snprintf(b->listen_sql, sizeof(b->listen_sql), "LISTEN \"%s\"", b->channel);
        b->sender = ((uint64_t)getpid() << 32) ^ (uint64_t)link_now_ms() ^ (uint64_t)(uintptr_t)b;
    }
    /* The bus is b's first member (NULL stays NULL). */
    return bus_subscribe(&s->mu, &s->bus, (struct bus *)b, &pg_bus_ops, s->what, deliver, arg);
}

void mh_pg_unsubscribe(void *db)
{
    struct pg_store *s = db;

    bus_unsubscribe(&s->mu, &s->bus);
}

enum mh_status mh_pg_publish(void *db, const void *msg, size_t len)
{
    struct pg_store *s = db;

    return bus_publish(&s->mu, &s->bus, msg, len, s->what);
}
