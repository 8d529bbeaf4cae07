/*
 * WebSocket connections: the upgrade handshake, messages over the frame codec (frame.c), and
 * a connection's lifetime. After a successful handshake the HTTP connection switches its
 * protocol in place (mh_conn_switch): its bytes come here, and its end is ours to see
 * (on_conn_close), the one place a WebSocket ends.
 */
#include "ws/ws.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/crash.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "base/pool.h"
#include "base/sha1.h"
#include "base/utf8.h"
#include "conf/config.h"
#include "http/conn.h"
#include "http/request.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "mod/router.h"
#include "ws/frame.h"

#define CLOSE_WAIT_MS 3000 /* how long we wait for the peer's close frame / our flush */

struct mh_ws {
    atomic_int refs;
    atomic_bool closing; /* a close frame was queued (or the connection is gone) */
    bool open;           /* on_open accepted and on_close not yet called */
    bool gone;           /* the connection ended */
    bool close_received;
    bool failed;    /* protocol failure: stop reading */
    int close_code; /* what on_close reports */
    uint64_t id;
    struct mh_loop *loop;
    const struct mh_route_target *t;
    struct mh_route_stats *rs; /* the endpoint's metrics on this loop */
    struct mh_gen *gen;        /* referenced while the connection is open: t points into it */
    struct mh_conn *conn;
    struct event *timer;
    struct timespec last_rx;
    void *data;
    void *channels;            /* pubsub.c's list */
    struct mh_ws *prev, *next; /* the loop's list */
    /* A message being assembled from fragments. */
    struct mh_buf msg;
    int msg_opcode; /* 0: none in progress */
    struct mh_utf8 utf8;
    size_t nparams;
    char **param_names;
    char **param_values;
};

static atomic_uint_fast64_t next_ws_id = 1;

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
    mh_buf_cleanup(&ws->msg);
    free(ws);
}

struct mh_loop *mh_ws_loop(const struct mh_ws *ws)
{
    return ws->loop;
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
    struct mh_loop *loop = ws->loop;

    if (ws->prev)
        ws->prev->next = ws->next;
    else if (loop->ws_head == ws)
        loop->ws_head = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    ws->prev = ws->next = NULL;
    loop->nws--;
    mh_stat_add(&loop->stats.ws_closed, 1);
    mh_stat_add(&ws->rs->ws_closed, 1);
}

/* The connection ends: the one place a WebSocket ends. */
/* Marks the loop thread as inside one of the endpoint's callbacks @p fn (for crash reports
 * and the loop watchdog) until mh_crash_leave. */
static struct mh_crash_slot *enter(const struct mh_route_target *t, const char *fn)
{
    return mh_crash_enter(t->module->name, fn, t->ws->path, "WS", t->ws->path, strlen(t->ws->path),
                          true);
}

static void on_conn_close(void *arg)
{
    struct mh_ws *ws = arg;

    ws->gone = true;
    ws->conn = NULL;
    atomic_store(&ws->closing, true);
    if (ws->timer) {
        event_free(ws->timer);
        ws->timer = NULL;
    }
    if (ws->loop->ws_leave_all)
        ws->loop->ws_leave_all(ws);
    list_remove(ws);
    if (ws->open) {
        ws->open = false;
        if (ws->t->ws_close) {
            struct mh_crash_slot *slot = enter(ws->t, ws->t->ws->on_close);

            ws->t->ws_close(ws, ws->close_code ? ws->close_code : 1006, ws->t->module->state);
            mh_crash_leave(slot);
        }
    }
    if (ws->gen) {
        mh_gen_unref(ws->gen);
        ws->gen = NULL;
    }
    mh_debug("ws", "connection %" PRIu64 " closed with %d", ws->id, ws->close_code);
    mh_ws_unref_impl(ws); /* the loop's reference */
}

/* Ends the connection once our output reached the socket (the close frame must not be lost). */
static void end_when_flushed(struct mh_ws *ws)
{
    if (!ws->gone && ws->conn)
        mh_conn_end(ws->conn, true);
}

static void end_now(struct mh_ws *ws)
{
    if (!ws->gone && ws->conn)
        mh_conn_end(ws->conn, false);
}

/* --- Writing --- */

static void write_frame(struct mh_ws *ws, int opcode, const void *data, size_t len)
{
    unsigned char hdr[10];
    size_t n = mh_ws_frame_header(hdr, opcode, true, len);

    mh_conn_send(ws->conn, hdr, n);
    if (len)
        mh_conn_send(ws->conn, data, len);
    mh_conn_flush(ws->conn);
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
    /* The reason is framed by the payload's length, without a NUL. */
    if (rlen)
        memcpy(payload + 2, reason, rlen); /* NOLINT(bugprone-not-null-terminated-result) */
    mh_ws_ref_impl(ws); /* a write to a peer that is gone ends the connection and its reference */
    write_frame(ws, MH_WS_OP_CLOSE, payload, 2 + rlen);
    if (ws->gone) {
        /* nothing more to do */
    } else if (ws->close_received) {
        end_when_flushed(ws);
    } else if (ws->timer) {
        struct timeval tv = {CLOSE_WAIT_MS / 1000, (suseconds_t)(CLOSE_WAIT_MS % 1000) * 1000};

        event_del(ws->timer);
        event_add(ws->timer, &tv); /* give the peer time to answer, then end anyway */
    }
    mh_ws_unref_impl(ws);
}

/* Fails the connection (RFC 6455 7.1.7): send a close frame, stop reading, end. */
static void fail(struct mh_ws *ws, int code, const char *why)
{
    mh_debug("ws", "connection %" PRIu64 " failed with %d: %s", ws->id, code, why);
    ws->failed = true;
    if (ws->conn)
        mh_conn_stop_reading(ws->conn);
    start_close(ws, code, why);
    end_when_flushed(ws);
}

/* A client that still has more than max_outbound_bytes unread when another message is due is
 * a slow consumer. (Judged before queueing, so one large message is never the cause.) */
static bool check_outbound(struct mh_ws *ws)
{
    size_t queued = mh_conn_unsent(ws->conn);

    if (queued > (size_t)ws->t->ws->max_outbound_bytes && !atomic_load(&ws->closing)) {
        mh_warn("ws",
                "connection %" PRIu64 ": %zu bytes unsent (limit %lld): closing a slow "
                "consumer",
                ws->id, queued, ws->t->ws->max_outbound_bytes);
        mh_stat_add(&ws->rs->ws_slow_closes, 1);
        fail(ws, MH_WS_POLICY, "too much unsent data");
        return false;
    }
    return true;
}

void mh_ws_write_local(struct mh_ws *ws, int opcode, const void *data, size_t len)
{
    if (ws->gone || atomic_load(&ws->closing) || !check_outbound(ws))
        return;
    mh_stat_add(&ws->rs->ws_msgs_out, 1);
    mh_stat_add(&ws->rs->ws_bytes_out, len);
    write_frame(ws, opcode, data, len);
}

/* --- Cross-thread operations: handed to the connection's loop --- */

struct ws_post {
    struct mh_task base;
    struct mh_ws *ws;
    int opcode; /* MH_WS_OP_CLOSE: close with `code` and the data as reason */
    int code;
    size_t len;
    unsigned char data[];
};

static void post_complete(struct mh_task *t)
{
    struct ws_post *p = (struct ws_post *)t;

    if (!p->ws->loop->stopped) {
        if (p->opcode == MH_WS_OP_CLOSE) {
            p->data[p->len] = '\0';
            start_close(p->ws, p->code, (const char *)p->data);
        } else {
            mh_ws_write_local(p->ws, p->opcode, p->data, p->len);
        }
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
    mh_mailbox_post(ws->loop->mailbox, &p->base);
}

enum mh_status mh_ws_send_impl(struct mh_ws *ws, int is_binary, const void *data, size_t len)
{
    int opcode = is_binary ? MH_WS_OP_BINARY : MH_WS_OP_TEXT;

    if (!ws || (len && !data))
        return MH_E_INVAL;
    if (atomic_load(&ws->closing))
        return MH_E_CANCELLED;
    if (!is_binary && !mh_utf8_valid(data, len))
        return MH_E_INVAL;
    if (mh_mailbox_current == ws->loop->mailbox)
        mh_ws_write_local(ws, opcode, data, len);
    else
        post(ws, opcode, 0, data, len);
    return MH_OK;
}

enum mh_status mh_ws_close_impl(struct mh_ws *ws, int code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;

    if (!ws || !mh_ws_close_code_valid(code) || code == 1004 || rlen > 123 ||
        (rlen && !mh_utf8_valid(reason, rlen)))
        return MH_E_INVAL;
    if (atomic_load(&ws->closing))
        return MH_E_CANCELLED;
    if (mh_mailbox_current == ws->loop->mailbox)
        start_close(ws, code, reason);
    else
        post(ws, MH_WS_OP_CLOSE, code, reason, rlen);
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
    struct mh_crash_slot *slot;

    mh_stat_add(&ws->rs->ws_msgs_in, 1);
    mh_stat_add(&ws->rs->ws_bytes_in, len);
    if (!ws->open || atomic_load(&ws->closing))
        return;
    slot = enter(ws->t, ws->t->ws->on_message);
    ws->t->ws_message(ws, opcode == MH_WS_OP_BINARY, data, len, ws->t->module->state);
    mh_crash_leave(slot);
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
        if (!mh_ws_close_code_valid(code)) {
            fail(ws, MH_WS_PROTOCOL, "invalid close code");
            return;
        }
        if (!mh_utf8_valid(p + 2, len - 2)) {
            fail(ws, MH_WS_BAD_DATA, "close reason is not UTF-8");
            return;
        }
    }
    if (atomic_load(&ws->closing)) {
        end_when_flushed(ws); /* the answer to our close */
        return;
    }
    /* Echo the peer's code, then end: the server closes TCP first (RFC 6455 7.1.1). */
    start_close(ws, len >= 2 ? code : MH_WS_NORMAL, NULL);
    ws->close_code = len >= 2 ? code : 1005;
    end_when_flushed(ws);
}

/* Handles the whole frame @p f at @p payload. @return false when reading must stop. */
static bool on_frame(struct mh_ws *ws, const struct mh_ws_frame *f, unsigned char *payload)
{
    size_t len = (size_t)f->len;

    switch (f->opcode) {
    case MH_WS_OP_PING:
        if (!atomic_load(&ws->closing))
            write_frame(ws, MH_WS_OP_PONG, payload, len);
        return true;
    case MH_WS_OP_PONG:
        return true; /* keepalive answer or unsolicited: both only count as traffic */
    case MH_WS_OP_CLOSE:
        on_close_frame(ws, payload, len);
        return false;
    default:
        break;
    }
    if (f->opcode != MH_WS_OP_CONT) {
        ws->msg_opcode = f->opcode;
        ws->utf8 = (struct mh_utf8)MH_UTF8_INIT;
    }
    if (ws->msg_opcode == MH_WS_OP_TEXT && !mh_utf8_feed(&ws->utf8, payload, len)) {
        fail(ws, MH_WS_BAD_DATA, "text is not UTF-8");
        return false;
    }
    if (f->fin && ws->msg_opcode == MH_WS_OP_TEXT && ws->utf8.need) {
        fail(ws, MH_WS_BAD_DATA, "text ends inside a UTF-8 sequence");
        return false;
    }
    if (f->fin && ws->msg.len == 0) {
        deliver(ws, ws->msg_opcode, payload, len); /* one frame: no copy */
        ws->msg_opcode = 0;
        return true;
    }
    if (!mh_buf_add(&ws->msg, payload, len)) {
        fail(ws, MH_WS_TOO_BIG, "out of memory for the message");
        return false;
    }
    if (f->fin) {
        deliver(ws, ws->msg_opcode, ws->msg.data, ws->msg.len);
        mh_buf_reset(&ws->msg);
        ws->msg_opcode = 0;
    }
    return true;
}

/* Checks a frame header against the message state and limits. */
static bool frame_allowed(struct mh_ws *ws, const struct mh_ws_frame *f)
{
    if ((f->opcode == MH_WS_OP_TEXT || f->opcode == MH_WS_OP_BINARY) && ws->msg_opcode) {
        fail(ws, MH_WS_PROTOCOL, "new message before the last one ended");
        return false;
    }
    if (f->opcode == MH_WS_OP_CONT && !ws->msg_opcode) {
        fail(ws, MH_WS_PROTOCOL, "continuation frame without a message");
        return false;
    }
    if (f->opcode < MH_WS_OP_CLOSE) {
        uint64_t max = (uint64_t)ws->t->ws->max_message_bytes;

        if (f->len > max || ws->msg.len + f->len > max) {
            fail(ws, MH_WS_TOO_BIG, "message too big");
            return false;
        }
    }
    return true;
}

static size_t on_data(void *arg, unsigned char *p, size_t len)
{
    struct mh_ws *ws = arg;
    size_t used = 0;

    clock_gettime(CLOCK_MONOTONIC, &ws->last_rx);
    mh_ws_ref_impl(ws); /* hooks may close the connection under us */
    while (!ws->gone && !ws->failed && !ws->close_received && used < len) {
        struct mh_ws_frame f;
        const char *why = NULL;
        enum mh_ws_parse r = mh_ws_frame_parse(p + used, len - used, &f, &why);

        if (r == MH_WS_FRAME_BAD) {
            fail(ws, MH_WS_PROTOCOL, why);
            break;
        }
        if (r == MH_WS_FRAME_MORE || !frame_allowed(ws, &f))
            break;
        if (len - used - f.header_len < f.len)
            break; /* the payload is not all here yet */
        mh_ws_unmask(p + used + f.header_len, (size_t)f.len, f.mask, 0);
        used += f.header_len + (size_t)f.len;
        if (!on_frame(ws, &f, p + used - (size_t)f.len))
            break;
    }
    if (ws->failed || ws->close_received)
        used = len; /* nothing after a close counts */
    mh_ws_unref_impl(ws);
    return used;
}

static const struct mh_conn_proto ws_proto = {
    .on_data = on_data,
    .on_drained = NULL,
    .on_close = on_conn_close,
};

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
        write_frame(ws, MH_WS_OP_PING, NULL, 0);
}

void mh_ws_close_all(struct mh_loop *loop, const struct mh_gen *gen)
{
    for (struct mh_ws *ws = loop->ws_head, *next; ws; ws = next) {
        next = ws->next;
        if (!gen || ws->gen == gen)
            start_close(ws, MH_WS_GOING_AWAY, gen ? "reloaded" : "server stopping");
    }
}

/* --- Across a reload --- */

static bool same_name(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_endpoint_conf(const struct mh_ws_conf *a, const struct mh_ws_conf *b)
{
    if (strcmp(a->path, b->path) != 0 || !same_name(a->on_open, b->on_open) ||
        !same_name(a->on_message, b->on_message) || !same_name(a->on_close, b->on_close) ||
        a->nsubprotocols != b->nsubprotocols || a->max_message_bytes != b->max_message_bytes ||
        a->max_outbound_bytes != b->max_outbound_bytes ||
        a->ping_interval_ms != b->ping_interval_ms || a->idle_timeout_ms != b->idle_timeout_ms)
        return false;
    for (size_t i = 0; i < a->nsubprotocols; i++) {
        if (strcmp(a->subprotocols[i], b->subprotocols[i]) != 0)
            return false;
    }
    return true;
}

/* The endpoint of @p next that serves @p t's connections unchanged: the same module instance
 * name, the same mapped file, the same endpoint settings. NULL if there is none. */
static const struct mh_route_target *unchanged_endpoint(const struct mh_route_target *t,
                                                        const struct mh_gen *next)
{
    for (size_t i = 0; i < next->ntargets; i++) {
        const struct mh_route_target *n = &next->targets[i];

        if (n->ws && n->module->dso == t->module->dso &&
            strcmp(n->module->name, t->module->name) == 0 && same_endpoint_conf(n->ws, t->ws))
            return n;
    }
    return NULL;
}

size_t mh_ws_adopt_all(struct mh_loop *loop, struct mh_gen *old, struct mh_gen *next)
{
    size_t moved = 0;

    for (struct mh_ws *ws = loop->ws_head; ws; ws = ws->next) {
        const struct mh_route_target *n;

        if (ws->gen != old || atomic_load(&ws->closing) || !(n = unchanged_endpoint(ws->t, next)))
            continue;
        ws->t = n;
        ws->gen = next;
        mh_gen_ref(next);
        mh_gen_unref(old);
        moved++;
    }
    return moved;
}

/* --- Handshake --- */

static bool valid_key(const char *key)
{
    unsigned char raw[18];
    size_t n = key ? strlen(key) : 0;

    /* base64 of 16 bytes: 24 characters ending in "==". */
    return n == 24 && mh_base64_decode(key, 24, raw) == 16;
}

static void accept_key(const char *key, char out[32])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char sha[20];
    char buf[64];

    (void)snprintf(buf, sizeof(buf), "%s%s", key, guid);
    mh_sha1(buf, strlen(buf), sha);
    mh_base64_encode(sha, sizeof(sha), out);
}

struct proto_pick {
    const struct mh_ws_conf *conf;
    char buf[128];
    const char *chosen;
};

/* The first subprotocol the client offers (in any Sec-WebSocket-Protocol field) that the
 * endpoint supports. */
static int pick_protocol(const char *name, const char *offer, void *arg)
{
    struct proto_pick *pp = arg;

    if (!offer || strcasecmp(name, "Sec-WebSocket-Protocol") != 0)
        return 0;
    while (*offer) {
        const char *end;
        size_t n;

        while (*offer == ' ' || *offer == '\t' || *offer == ',')
            offer++;
        end = offer;
        while (*end && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        n = (size_t)(end - offer);
        for (size_t i = 0; i < pp->conf->nsubprotocols && n; i++) {
            const char *sp = pp->conf->subprotocols[i];

            if (strlen(sp) == n && strncmp(sp, offer, n) == 0 && n < sizeof(pp->buf)) {
                memcpy(pp->buf, offer, n);
                pp->buf[n] = '\0';
                pp->chosen = pp->buf;
                return 1;
            }
        }
        offer = end;
    }
    return 0;
}

static void start(struct mh_ws *ws, const char *acc, const char *protocol)
{
    struct mh_buf head = {0};
    long long tick_ms;

    if (!mh_buf_printf(&head,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                       acc, protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
                       protocol ? "\r\n" : ""))
        abort();
    mh_conn_send(ws->conn, head.data, head.len);
    mh_buf_cleanup(&head);

    tick_ms =
        ws->t->ws->ping_interval_ms > 0 ? ws->t->ws->ping_interval_ms : ws->t->ws->idle_timeout_ms;
    ws->timer = event_new(ws->loop->base, -1, EV_PERSIST, on_timer, ws);
    if (!ws->timer)
        abort();
    if (tick_ms > 0) {
        struct timeval tick = {(time_t)(tick_ms / 1000), (suseconds_t)(tick_ms % 1000) * 1000};

        event_add(ws->timer, &tick);
    }
    clock_gettime(CLOCK_MONOTONIC, &ws->last_rx);
    /* Frames that came with the upgrade request go to the new protocol at once. */
    mh_conn_switch(ws->conn, &ws_proto, ws);
}

enum mh_ws_upgrade_result mh_ws_upgrade(struct mh_req *req, const struct mh_route_target *t,
                                        enum mh_status *rc)
{
    struct mh_loop *loop = mh_req_loop(req);
    const char *upgrade = mh_req_header_impl(req, "Upgrade");
    const char *connection = mh_req_header_impl(req, "Connection");
    const char *version = mh_req_header_impl(req, "Sec-WebSocket-Version");
    const char *key = mh_req_header_impl(req, "Sec-WebSocket-Key");
    struct proto_pick pick = {.conf = t->ws};
    struct mh_ws *ws;
    char acc[32];

    *rc = MH_OK;
    if (!upgrade || !mh_http_has_token(upgrade, "websocket") || !connection ||
        !mh_http_has_token(connection, "upgrade")) {
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
    if (!mh_req_is_http11(req)) {
        mh_reply_problem_impl(req, 400, NULL, "WebSocket needs HTTP/1.1");
        return MH_WS_REPLY;
    }
    if (mh_req_method_id(req) != MH_METHOD_GET || !valid_key(key)) {
        mh_reply_problem_impl(req, 400, NULL,
                              "invalid WebSocket handshake: Sec-WebSocket-Key must be the "
                              "base64 of 16 bytes");
        return MH_WS_REPLY;
    }
    if (loop->draining) {
        mh_reply_problem_impl(req, 503, NULL, "the server is stopping");
        return MH_WS_REPLY;
    }
    mh_req_headers_impl(req, pick_protocol, &pick);

    ws = mh_xcalloc(1, sizeof(*ws));
    atomic_init(&ws->refs, 1);
    ws->id = atomic_fetch_add(&next_ws_id, 1);
    ws->loop = loop;
    ws->t = t;
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
        struct mh_crash_slot *slot = enter(t, t->ws->on_open);

        *rc = t->ws_open(ws, req, t->module->state);
        mh_crash_leave(slot);
        if (*rc != MH_OK || mh_req_replied(req)) {
            mh_ws_unref_impl(ws); /* refused: never opened, no on_close */
            return MH_WS_REPLY;
        }
    }
    ws->open = true;
    ws->gen = t->module->gen;
    mh_gen_ref(ws->gen);
    ws->next = loop->ws_head;
    if (loop->ws_head)
        loop->ws_head->prev = ws;
    loop->ws_head = ws;
    loop->nws++;
    ws->rs = mh_route_stats_of(loop, t);
    mh_stat_add(&loop->stats.ws_opened, 1);
    mh_stat_add(&ws->rs->ws_opened, 1);
    accept_key(key, acc); /* before the request (and the key's memory) is finished */
    ws->conn = mh_req_upgraded(req);
    start(ws, acc, pick.chosen);
    return MH_WS_TAKEN;
}
