/*
 * The ground floor of a loop thread: its event base and everything the connection, request
 * and WebSocket code keep per loop. Each subsystem has a typed slot here; only the loop's own
 * thread touches this struct (other threads go through the mailbox), so nothing in it is
 * locked or atomic. Counters are summed across loops when read.
 */
#ifndef MH_LOOP_H
#define MH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/metrics.h"

struct event;
struct event_base;
struct mh_access_buf;
struct mh_admin;
struct mh_conn;
struct mh_gen;
struct mh_limits;
struct mh_mailbox;
struct mh_pool;
struct mh_pubsub_local;
struct mh_req;
struct mh_out_seg;
struct mh_ws;

#define MH_LOOP_REFUSALS 16 /* >= MH_REFUSE_COUNT (http_scan.h) */

/* What the loop counts (per loop; written with mh_stat_add by the loop, read by summing).
 * The admin listener's own traffic is not counted here. */
struct mh_loop_stats {
    _Atomic uint64_t accepted;    /* connections accepted */
    _Atomic uint64_t closed;      /* connections closed (open = accepted - closed) */
    _Atomic uint64_t refused_cap; /* connections refused at a connection cap */
    _Atomic uint64_t requests;    /* requests dispatched */
    _Atomic uint64_t answered;    /* requests answered or dropped (in flight = the difference) */
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic uint64_t refused[MH_LOOP_REFUSALS];     /* requests refused, by enum mh_refusal */
    _Atomic uint64_t ws_opened, ws_closed;          /* WebSocket connections */
    _Atomic uint64_t channel_joins, channel_leaves; /* channel members = the difference */
};

/* How access lines are written (log.access_format). */
enum mh_access_format { MH_ACCESS_TEXT, MH_ACCESS_COMBINED, MH_ACCESS_JSON };

struct mh_loop {
    unsigned index;
    struct event_base *base;
    struct mh_mailbox *mailbox; /* other threads' way in */
    struct mh_pool *pool;       /* NULL: blocking handlers run on the loop */

    /* What new requests are served with: the loop holds a reference on gen. */
    struct mh_gen *gen;
    const struct mh_limits *limits; /* gen's */
    bool access_log;
    enum mh_access_format access_format;
    bool draining; /* answer with Connection: close, accept nothing new */
    bool stopped;  /* the loop has exited: drop answers instead of sending them */

    /* Connections (http/conn.c). */
    struct mh_conn *conns; /* every open connection, HTTP and WebSocket */
    size_t nconns;
    uint64_t inflight;   /* requests dispatched and not yet answered or dropped */
    unsigned char *rbuf; /* read scratch: bytes are parsed here, leftovers copied out */
    size_t rbuf_cap;
    struct mh_out_seg *spare_segs; /* drained output blocks kept for reuse */
    size_t nspare_segs;
    int64_t now_ms; /* monotonic, refreshed once per event batch */

    /* Requests (http/request.c). */
    struct mh_req *spare; /* finished requests kept for reuse */
    size_t nspare;
    uint64_t next_seq;
    time_t date_sec;    /* the second date_line was made for */
    char date_line[48]; /* "Date: Fri, 27 Nov 2026 21:00:00 GMT\r\n" */
    size_t date_len;

    /* Access log (http/access.c): lines buffered, flushed once a second and at the end. */
    struct mh_access_buf *access;

    /* WebSockets (ws/ws.c) and channels (ws/pubsub.c). */
    struct mh_ws *ws_head;
    size_t nws;
    struct mh_pubsub_local *pubsub;
    /* Called when a WebSocket ends, to leave its channels (mh_pubsub_leave_all): channels
     * stand on WebSockets, so the WebSocket code reaches them only through here. */
    void (*ws_leave_all)(struct mh_ws *ws);

    struct mh_loop_stats stats;
    /* Per route and module (http/exec.c): the loop's entries, and the one for requests no
     * route took (404, 405, refusals of the request path). */
    _Atomic(struct mh_route_stats *) route_stats;
    struct mh_route_stats *unrouted;

    /* The admin listener (admin/admin.c): what its pages read; NULL when it is off. */
    struct mh_admin *admin;
};

#endif
