/*
 * WebSocket connections. evhttp stays the owner of the TCP connection: after the handshake we
 * replace its bufferevent's callbacks, and the connection's close callback (evhttp calls it
 * from evhttp_connection_free, also at evhttp_free on shutdown) is the one place a connection
 * ends. A connection is ended only by evhttp_connection_free, after its output has drained.
 */
#include "ws/ws.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "conf/config.h"
#include "mod/gen.h"
#include "http/guard.h"
#include "mod/loader.h"
#include "base/log.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/pool.h"
#include "ws/pubsub.h"
#include "http/request.h"
#include "base/utf8.h"

#define OP_CONT   0x0
#define OP_TEXT   0x1
#define OP_BINARY 0x2
#define OP_CLOSE  0x8
#define OP_PING   0x9
#define OP_PONG   0xa

#define CLOSE_WAIT_MS 3000 /* how long we wait for the peer's close frame / our flush */

struct mh_ws {
    atomic_int refs;
    atomic_bool closing;     /* a close frame was queued (or the connection is gone) */
    bool open;               /* on_open accepted and on_close not yet called */
    bool gone;               /* evhttp freed the connection */
    bool close_received;
    bool free_when_flushed;
    bool failed;             /* protocol failure: stop reading */
    int close_code;          /* what on_close reports */
    uint64_t id;
    struct mh_dispatch *d;
    const struct mh_route_target *t;
    struct mh_gen *gen; /* referenced while the connection is open: t points into it */
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    struct event *timer;
    struct timespec last_rx;
    void *data;
    void *channels; /* pubsub.c's list */
    struct mh_ws *prev, *next; /* the loop's list */
    /* A message being assembled from fragments. */
    struct evbuffer *msg;
    int msg_opcode; /* 0: none in progress */
    struct mh_utf8 utf8;
    size_t nparams;
    char **param_names;
    char **param_values;
};

static atomic_uint_fast64_t next_ws_id = 1;

static bool utf8_valid(const void *p, size_t n)
{
    return mh_utf8_valid(p, n);
}

/* --- References and lifetime --- */

void mh_ws_ref_impl(struct mh_ws *ws)
{
    atomic_fetch_add(&ws->refs, 1);
}

void mh_ws_unref_impl(struct mh_ws *ws)
{
    if (!ws || atomic_fetch_sub(&ws->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ws->nparams; i++) {
        free(ws->param_names[i]);
        free(ws->param_values[i]);
    }
    free(ws->param_names);
    free(ws->param_values);
    if (ws->msg)
        evbuffer_free(ws->msg);
    free(ws);
}

struct mh_dispatch *mh_ws_dispatch(const struct mh_ws *ws)
{
    return ws->d;
}

bool mh_ws_is_open(const struct mh_ws *ws)
{
    return !ws->gone && !atomic_load(&ws->closing);
}

void **mh_ws_channels(struct mh_ws *ws)
{
    return &ws->channels;
}

static void list_remove(struct mh_ws *ws)
{
    struct mh_dispatch *d = ws->d;

    if (ws->prev)
        ws->prev->next = ws->next;
    else if (d->ws_head == ws)
        d->ws_head = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    ws->prev = ws->next = NULL;
    d->nws--;
}

/* evhttp is freeing the connection: the one place a WebSocket ends. */
static void on_evcon_close(struct evhttp_connection *evcon, void *arg)
{
    struct mh_ws *ws = arg;

    if (!mh_guard_conn(ws->d, evcon))
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    ws->gone = true;
    atomic_store(&ws->closing, true);
    if (ws->timer) {
        event_free(ws->timer);
        ws->timer = NULL;
    }
    ws->bev = NULL;
    ws->evcon = NULL;
    mh_pubsub_leave_all(ws);
    list_remove(ws);
    if (ws->open) {
        ws->open = false;
        if (ws->t->ws_close)
            ws->t->ws_close(ws, ws->close_code ? ws->close_code : 1006, ws->t->module->state);
    }
    if (ws->gen) {
        mh_gen_unref(ws->gen);
        ws->gen = NULL;
    }
    mh_debug("ws", "connection %" PRIu64 " closed with %d", ws->id, ws->close_code);
    mh_ws_unref_impl(ws); /* the loop's reference */
}

static void end_now(struct mh_ws *ws)
{
    if (!ws->gone && ws->evcon)
        evhttp_connection_free(ws->evcon); /* calls on_evcon_close */
}

/* Ends the connection once our output reached the socket (the close frame must not be lost). */
static void end_when_flushed(struct mh_ws *ws)
{
    if (ws->gone)
        return;
    ws->free_when_flushed = true;
    if (evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0)
        end_now(ws);
}

/* --- Writing --- */

static void write_frame(struct mh_ws *ws, int opcode, const void *data, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(ws->bev);
    unsigned char hdr[10];
    size_t n = 2;

    hdr[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        hdr[1] = (unsigned char)len;
    } else if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        n = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    evbuffer_add(out, hdr, n);
    if (len)
        evbuffer_add(out, data, len);
}

static void start_close(struct mh_ws *ws, int code, const char *reason)
{
    unsigned char payload[125];
    size_t rlen = reason ? strlen(reason) : 0;

    if (ws->gone || atomic_exchange(&ws->closing, true))
        return;
    if (rlen > sizeof(payload) - 2)
        rlen = sizeof(payload) - 2;
    ws->close_code = code;
    payload[0] = (unsigned char)(code >> 8);
    payload[1] = (unsigned char)code;
    if (rlen)
        memcpy(payload + 2, reason, rlen);
    write_frame(ws, OP_CLOSE, payload, 2 + rlen);
    if (ws->close_received) {
        end_when_flushed(ws);
    } else if (ws->timer) {
        struct timeval tv = {CLOSE_WAIT_MS / 1000, (CLOSE_WAIT_MS % 1000) * 1000};

        event_del(ws->timer);
        event_add(ws->timer, &tv); /* give the peer time to answer, then end anyway */
    }
}

/* Fails the connection (RFC 6455 7.1.7): send a close frame, stop reading, end. */
static void fail(struct mh_ws *ws, int code, const char *why)
{
    mh_debug("ws", "connection %" PRIu64 " failed with %d: %s", ws->id, code, why);
    ws->failed = true;
    if (ws->bev)
        bufferevent_disable(ws->bev, EV_READ);
    start_close(ws, code, why);
    end_when_flushed(ws);
}

/* A client that still has more than max_outbound_bytes unread when another message is due is
 * a slow consumer. (Judged before queueing, so one large message is never the cause.) */
static bool check_outbound(struct mh_ws *ws)
{
    size_t queued = evbuffer_get_length(bufferevent_get_output(ws->bev));

    if (queued > (size_t)ws->t->ws->max_outbound_bytes && !atomic_load(&ws->closing)) {
        mh_warn("ws", "connection %" PRIu64 ": %zu bytes unsent (limit %lld): closing a slow "
                      "consumer",
                ws->id, queued, ws->t->ws->max_outbound_bytes);
        fail(ws, MH_WS_POLICY, "too much unsent data");
        return false;
    }
    return true;
}

void mh_ws_write_local(struct mh_ws *ws, int opcode, const void *data, size_t len)
{
    if (ws->gone || atomic_load(&ws->closing) || !check_outbound(ws))
        return;
    write_frame(ws, opcode, data, len);
}

/* --- Cross-thread operations: handed to the connection's loop --- */

struct ws_post {
    struct mh_task base;
    struct mh_ws *ws;
    int opcode; /* OP_CLOSE: close with `code` and the data as reason */
    int code;
    size_t len;
    unsigned char data[];
};

static void post_complete(struct mh_task *t)
{
    struct ws_post *p = (struct ws_post *)t;

    if (p->opcode == OP_CLOSE) {
        p->data[p->len] = '\0';
        start_close(p->ws, p->code, (const char *)p->data);
    } else {
        mh_ws_write_local(p->ws, p->opcode, p->data, p->len);
    }
    mh_ws_unref_impl(p->ws);
    free(p);
}

static void post(struct mh_ws *ws, int opcode, int code, const void *data, size_t len)
{
    struct ws_post *p = mh_xmalloc(sizeof(*p) + len + 1);

    memset(&p->base, 0, sizeof(p->base));
    p->base.complete = post_complete;
    p->ws = ws;
    p->opcode = opcode;
    p->code = code;
    p->len = len;
    if (len)
        memcpy(p->data, data, len);
    mh_ws_ref_impl(ws);
    mh_mailbox_post(ws->d->mailbox, &p->base);
}

enum mh_status mh_ws_send_impl(struct mh_ws *ws, int is_binary, const void *data, size_t len)
{
    int opcode = is_binary ? OP_BINARY : OP_TEXT;

    if (!ws || (len && !data))
        return MH_E_INVAL;
    if (atomic_load(&ws->closing))
        return MH_E_CANCELLED;
    if (!is_binary && !utf8_valid(data, len))
        return MH_E_INVAL;
    if (mh_mailbox_current == ws->d->mailbox)
        mh_ws_write_local(ws, opcode, data, len);
    else
        post(ws, opcode, 0, data, len);
    return MH_OK;
}

static bool valid_close_code(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

enum mh_status mh_ws_close_impl(struct mh_ws *ws, int code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;

    if (!ws || !valid_close_code(code) || code == 1004 || rlen > 123 ||
        (rlen && !utf8_valid(reason, rlen)))
        return MH_E_INVAL;
    if (atomic_load(&ws->closing))
        return MH_E_CANCELLED;
    if (mh_mailbox_current == ws->d->mailbox)
        start_close(ws, code, reason);
    else
        post(ws, OP_CLOSE, code, reason, rlen);
    return MH_OK;
}

void mh_ws_set_data_impl(struct mh_ws *ws, void *data)
{
    ws->data = data;
}

void *mh_ws_data_impl(const struct mh_ws *ws)
{
    return ws->data;
}

uint64_t mh_ws_id_impl(const struct mh_ws *ws)
{
    return ws->id;
}

const char *mh_ws_param_impl(const struct mh_ws *ws, const char *name)
{
    for (size_t i = 0; i < ws->nparams; i++) {
        if (strcmp(ws->param_names[i], name) == 0)
            return ws->param_values[i];
    }
    return NULL;
}

/* --- Reading --- */

static void deliver(struct mh_ws *ws, int opcode, const void *data, size_t len)
{
    if (ws->open && !atomic_load(&ws->closing))
        ws->t->ws_message(ws, opcode == OP_BINARY, data, len, ws->t->module->state);
}

static void on_close_frame(struct mh_ws *ws, const unsigned char *p, size_t len)
{
    int code = MH_WS_NORMAL;

    ws->close_received = true;
    if (len == 1) {
        fail(ws, MH_WS_PROTOCOL, "close frame with a 1-byte payload");
        return;
    }
    if (len >= 2) {
        code = (p[0] << 8) | p[1];
        if (!valid_close_code(code)) {
            fail(ws, MH_WS_PROTOCOL, "invalid close code");
            return;
        }
        if (!utf8_valid(p + 2, len - 2)) {
            fail(ws, MH_WS_BAD_DATA, "close reason is not UTF-8");
            return;
        }
    }
    if (atomic_load(&ws->closing)) {
        end_when_flushed(ws); /* the answer to our close */
        return;
    }
    /* Echo the peer's code, then end: the server closes TCP first (RFC 6455 7.1.1). */
    if (len >= 2)
        start_close(ws, code, NULL);
    else
        start_close(ws, MH_WS_NORMAL, NULL);
    ws->close_code = len >= 2 ? code : 1005;
    end_when_flushed(ws);
}

/* Parses one frame at the head of @p in. @return 1 if consumed, 0 if incomplete, -1 failed. */
static int read_frame(struct mh_ws *ws, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in), hlen = 2;
    unsigned char h[14];
    uint64_t len;
    int fin, opcode;
    unsigned char *p, *mask;

    if (avail < 2)
        return 0;
    evbuffer_copyout(in, h, avail < sizeof(h) ? avail : sizeof(h));
    fin = h[0] & 0x80;
    opcode = h[0] & 0x0f;
    if (h[0] & 0x70) {
        fail(ws, MH_WS_PROTOCOL, "reserved bits set");
        return -1;
    }
    if (!(h[1] & 0x80)) {
        fail(ws, MH_WS_PROTOCOL, "client frames must be masked");
        return -1;
    }
    len = h[1] & 0x7f;
    if (len == 126) {
        hlen = 4;
        if (avail < hlen)
            return 0;
        len = ((uint64_t)h[2] << 8) | h[3];
    } else if (len == 127) {
        hlen = 10;
        if (avail < hlen)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        if (len >> 63) {
            fail(ws, MH_WS_PROTOCOL, "frame length has the top bit set");
            return -1;
        }
    }
    hlen += 4; /* mask key */
    switch (opcode) {
    case OP_CLOSE:
    case OP_PING:
    case OP_PONG:
        if (!fin || len > 125) {
            fail(ws, MH_WS_PROTOCOL, "control frames must be whole and at most 125 bytes");
            return -1;
        }
        break;
    case OP_TEXT:
    case OP_BINARY:
        if (ws->msg_opcode) {
            fail(ws, MH_WS_PROTOCOL, "new message before the last one ended");
            return -1;
        }
        break;
    case OP_CONT:
        if (!ws->msg_opcode) {
            fail(ws, MH_WS_PROTOCOL, "continuation frame without a message");
            return -1;
        }
        break;
    default:
        fail(ws, MH_WS_PROTOCOL, "reserved opcode");
        return -1;
    }
    if (opcode == OP_TEXT || opcode == OP_BINARY || opcode == OP_CONT) {
        size_t have = ws->msg ? evbuffer_get_length(ws->msg) : 0;

        if (len > (uint64_t)ws->t->ws->max_message_bytes ||
            have + len > (uint64_t)ws->t->ws->max_message_bytes) {
            fail(ws, MH_WS_TOO_BIG, "message too big");
            return -1;
        }
    }
    if (avail < hlen + len)
        return 0;

    p = evbuffer_pullup(in, (ev_ssize_t)(hlen + len));
    mask = p + hlen - 4;
    p += hlen;
    for (uint64_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];

    switch (opcode) {
    case OP_PING:
        if (!atomic_load(&ws->closing))
            write_frame(ws, OP_PONG, p, len);
        break;
    case OP_PONG:
        break; /* keepalive answer or unsolicited: both only count as traffic */
    case OP_CLOSE:
        on_close_frame(ws, p, len);
        break;
    default:
        if (opcode != OP_CONT) {
            ws->msg_opcode = opcode;
            ws->utf8 = (struct mh_utf8)MH_UTF8_INIT;
        }
        if (ws->msg_opcode == OP_TEXT && !mh_utf8_feed(&ws->utf8, p, len)) {
            fail(ws, MH_WS_BAD_DATA, "text is not UTF-8");
            return -1;
        }
        if (fin && ws->msg_opcode == OP_TEXT && ws->utf8.need) {
            fail(ws, MH_WS_BAD_DATA, "text ends inside a UTF-8 sequence");
            return -1;
        }
        if (fin && (!ws->msg || evbuffer_get_length(ws->msg) == 0)) {
            deliver(ws, ws->msg_opcode, p, len); /* one frame: no copy */
            ws->msg_opcode = 0;
        } else {
            if (!ws->msg && !(ws->msg = evbuffer_new()))
                abort();
            evbuffer_add(ws->msg, p, len);
            if (fin) {
                size_t n = evbuffer_get_length(ws->msg);
                unsigned char *m = evbuffer_pullup(ws->msg, -1);

                deliver(ws, ws->msg_opcode, m, n);
                evbuffer_drain(ws->msg, n);
                ws->msg_opcode = 0;
            }
        }
    }
    evbuffer_drain(in, hlen + len);
    return 1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct mh_ws *ws = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    clock_gettime(CLOCK_MONOTONIC, &ws->last_rx);
    mh_ws_ref_impl(ws); /* hooks may close the connection under us */
    while (!ws->gone && !ws->failed && !ws->close_received && evbuffer_get_length(in) > 0) {
        if (read_frame(ws, in) <= 0)
            break;
    }
    if (!ws->gone && (ws->failed || ws->close_received))
        evbuffer_drain(in, evbuffer_get_length(in)); /* nothing after a close counts */
    mh_ws_unref_impl(ws);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct mh_ws *ws = arg;

    if (ws->free_when_flushed && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        end_now(ws);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct mh_ws *ws = arg;

    (void)bev;
    (void)what;
    if (!ws->close_code)
        ws->close_code = 1006; /* gone without a close frame */
    end_now(ws); /* EOF or error: the peer is gone */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mh_ws *ws = arg;
    const struct mh_ws_conf *c = ws->t->ws;
    struct timespec now;
    long long idle_ms;

    (void)fd;
    (void)what;
    if (atomic_load(&ws->closing)) {
        end_now(ws); /* the peer did not answer our close (or does not read) in time */
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    idle_ms = (long long)(now.tv_sec - ws->last_rx.tv_sec) * 1000 +
              (now.tv_nsec - ws->last_rx.tv_nsec) / 1000000;
    if (c->idle_timeout_ms > 0 && idle_ms >= c->idle_timeout_ms) {
        start_close(ws, MH_WS_GOING_AWAY, "idle timeout");
        return;
    }
    if (c->ping_interval_ms > 0)
        write_frame(ws, OP_PING, NULL, 0);
}

void mh_ws_close_all(struct mh_dispatch *d, const struct mh_gen *gen)
{
    for (struct mh_ws *ws = d->ws_head, *next; ws; ws = next) {
        next = ws->next;
        if (!gen || ws->gen == gen)
            start_close(ws, MH_WS_GOING_AWAY, gen ? "reloaded" : "server stopping");
    }
}

/* --- Handshake and takeover --- */

/* Whether the comma-separated header value @p v holds token @p tok (case-insensitive). */
static bool has_token(const char *v, const char *tok)
{
    size_t n = strlen(tok);

    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (strncasecmp(v, tok, n) == 0 && (v[n] == '\0' || v[n] == ',' || v[n] == ' ' ||
                                            v[n] == '\t'))
            return true;
        v = strchr(v, ',');
    }
    return false;
}

static bool valid_key(const char *key)
{
    unsigned char raw[32];
    size_t n = key ? strlen(key) : 0;

    /* base64 of 16 bytes: 24 characters ending in "==". */
    if (n != 24 || key[22] != '=' || key[23] != '=')
        return false;
    return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

static void accept_key(const char *key, char out[32])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char sha[SHA_DIGEST_LENGTH];
    char buf[64];

    snprintf(buf, sizeof(buf), "%s%s", key, guid);
    SHA1((const unsigned char *)buf, strlen(buf), sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
}

/* The first subprotocol the client offers that the endpoint supports, or NULL. */
static const char *pick_protocol(const struct mh_ws_conf *c, const char *offer, char *buf,
                                 size_t size)
{
    while (offer && *offer) {
        const char *end;
        size_t n;

        while (*offer == ' ' || *offer == '\t' || *offer == ',')
            offer++;
        end = offer;
        while (*end && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        n = (size_t)(end - offer);
        for (size_t i = 0; i < c->nsubprotocols && n; i++) {
            if (strlen(c->subprotocols[i]) == n && strncmp(c->subprotocols[i], offer, n) == 0 &&
                n < size) {
                memcpy(buf, offer, n);
                buf[n] = '\0';
                return buf;
            }
        }
        offer = end;
    }
    return NULL;
}

static void take_over(struct mh_ws *ws, struct evhttp_request *ev, const char *key,
                      const char *protocol)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(ws->evcon);
    struct evbuffer *out = bufferevent_get_output(bev);
    struct timeval tick;
    long long tick_ms;
    char acc[32];

    accept_key(key, acc);
    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                        acc);
    if (protocol)
        evbuffer_add_printf(out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    evbuffer_add(out, "\r\n", 2);

    /* Our callbacks first, then no evhttp timeouts, then reading. */
    ws->bev = bev;
    bufferevent_setcb(bev, on_read, on_write, on_event, ws);
    bufferevent_set_timeouts(bev, NULL, NULL);
    {
        struct mh_conn *c = mh_guard_conn(ws->d, ws->evcon);

        if (c)
            mh_guard_take_over(c, on_evcon_close, ws); /* frames pass the guard untouched */
        else
            evhttp_connection_set_closecb(ws->evcon, on_evcon_close, ws);
    }
    /* The upgrade request stays with evhttp until the connection is freed; drop what it
     * holds that we no longer need. */
    evhttp_clear_headers(evhttp_request_get_output_headers(ev));
    bufferevent_enable(bev, EV_READ | EV_WRITE);

    tick_ms = ws->t->ws->ping_interval_ms > 0 ? ws->t->ws->ping_interval_ms
                                              : ws->t->ws->idle_timeout_ms;
    ws->timer = event_new(ws->d->base, -1, EV_PERSIST, on_timer, ws);
    if (tick_ms > 0) {
        tick.tv_sec = (time_t)(tick_ms / 1000);
        tick.tv_usec = (suseconds_t)(tick_ms % 1000) * 1000;
        event_add(ws->timer, &tick);
    }
    clock_gettime(CLOCK_MONOTONIC, &ws->last_rx);
    /* Frames that came with the upgrade request are already buffered: no event will say so. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        on_read(bev, ws);
}

enum mh_ws_upgrade_result mh_ws_upgrade(struct mh_dispatch *d, struct mh_req *req,
                                        const struct mh_route_target *t, enum mh_status *rc)
{
    struct evhttp_request *ev = mh_req_evhttp(req);
    const char *upgrade = mh_req_header_impl(req, "Upgrade");
    const char *connection = mh_req_header_impl(req, "Connection");
    const char *version = mh_req_header_impl(req, "Sec-WebSocket-Version");
    const char *key = mh_req_header_impl(req, "Sec-WebSocket-Key");
    const char *protocol = NULL;
    char pbuf[128];
    struct mh_ws *ws;

    *rc = MH_OK;
    if (!upgrade || !has_token(upgrade, "websocket") || !connection ||
        !has_token(connection, "upgrade")) {
        mh_resp_header_impl(req, "Upgrade", "websocket");
        mh_reply_problem_impl(req, 426, NULL,
                              "this endpoint speaks WebSocket: send Upgrade: websocket and "
                              "Connection: Upgrade");
        return MH_WS_REPLY;
    }
    if (!version || strcmp(version, "13") != 0) {
        mh_resp_header_impl(req, "Sec-WebSocket-Version", "13");
        mh_reply_problem_impl(req, 426, NULL, "unsupported Sec-WebSocket-Version (use 13)");
        return MH_WS_REPLY;
    }
    {
        struct mh_conn *c = mh_guard_conn(d, evhttp_request_get_connection(ev));

        if (c && !mh_guard_last_http11(c)) {
            mh_reply_problem_impl(req, 400, NULL, "WebSocket needs HTTP/1.1");
            return MH_WS_REPLY;
        }
    }
    if (evhttp_request_get_command(ev) != EVHTTP_REQ_GET || !valid_key(key)) {
        mh_reply_problem_impl(req, 400, NULL,
                              "invalid WebSocket handshake: Sec-WebSocket-Key must be the "
                              "base64 of 16 bytes");
        return MH_WS_REPLY;
    }
    if (d->draining) {
        mh_reply_problem_impl(req, 503, NULL, "the server is stopping");
        return MH_WS_REPLY;
    }
    {
        struct evkeyvalq *hs = evhttp_request_get_input_headers(ev);

        for (struct evkeyval *h = hs->tqh_first; h && !protocol; h = h->next.tqe_next) {
            if (strcasecmp(h->key, "Sec-WebSocket-Protocol") == 0)
                protocol = pick_protocol(t->ws, h->value, pbuf, sizeof(pbuf));
        }
    }

    ws = mh_xcalloc(1, sizeof(*ws));
    atomic_init(&ws->refs, 1);
    ws->id = atomic_fetch_add(&next_ws_id, 1);
    ws->d = d;
    ws->t = t;
    ws->evcon = evhttp_request_get_connection(ev);
    ws->nparams = mh_req_param_count(req);
    ws->param_names = mh_xcalloc(ws->nparams + 1, sizeof(char *));
    ws->param_values = mh_xcalloc(ws->nparams + 1, sizeof(char *));
    for (size_t i = 0; i < ws->nparams; i++) {
        const char *n, *v;

        mh_req_param_at(req, i, &n, &v);
        ws->param_names[i] = mh_xstrdup(n);
        ws->param_values[i] = mh_xstrdup(v);
    }
    if (t->ws_open) {
        *rc = t->ws_open(ws, req, t->module->state);
        if (*rc != MH_OK || mh_req_replied(req)) {
            mh_ws_unref_impl(ws); /* refused: never opened, no on_close */
            return MH_WS_REPLY;
        }
    }
    ws->open = true;
    ws->gen = t->module->gen;
    mh_gen_ref(ws->gen);
    ws->next = d->ws_head;
    if (d->ws_head)
        d->ws_head->prev = ws;
    d->ws_head = ws;
    d->nws++;
    take_over(ws, ev, key, protocol);
    return MH_WS_TAKEN;
}
