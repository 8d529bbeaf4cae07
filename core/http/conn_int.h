/*
 * The connection's inside, shared by its two halves: conn.c (the connection's life: accepting,
 * events, deadlines, writing, ending) and conn_read.c (reading requests: the input buffer, the
 * scanner, dispatch). Nothing outside core/http/conn*.c includes this header.
 */
#ifndef MH_CONN_INT_H
#define MH_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "http/conn.h"
#include "http/http_scan.h"
#include "http/outq.h"

enum conn_mode { MH_CONN_HTTP, MH_CONN_PROTO, MH_CONN_LINGER };
enum deadline { MH_DL_NONE, MH_DL_HEAD, MH_DL_BODY, MH_DL_IDLE, MH_DL_LINGER };

struct mh_conn {
    struct mh_loop *loop;
    struct mh_conn *prev, *next;
    int fd;
    struct event rev, wev, timer;
    const struct mh_service *svc;
    const struct mh_transport *tp;
    void *tp_data;

    /* Input: [in + off, in + len) unconsumed; `scanned` bytes of it scanned already. */
    unsigned char *in;
    size_t len, cap, off, scanned, head_len;
    bool in_scratch;
    struct mh_http_scan scan;
    unsigned scan_requests, scan_completed;

    /* Output. */
    struct mh_outq out;
    bool write_armed;

    enum conn_mode mode;
    const struct mh_conn_proto *proto;
    void *proto_arg;
    struct mh_req *active; /* the request being answered */
    unsigned requests;     /* answers queued */
    int depth;             /* event callbacks under way: the struct is freed when 0 */
    bool in_process, close_after_flush, reading, paused, refused, counted, has_ip, continue_sent,
        chunked;
    bool read_wants_write; /* the transport's read waits for EV_WRITE (mh_conn_want_write) */
    bool read_again;       /* the transport holds bytes: read without waiting for the socket */
    enum deadline dkind;
    int64_t deadline, write_deadline, armed_for; /* ms, monotonic; armed_for 0: not armed */
    unsigned char ip[16];
};

/* --- conn.c, for conn_read.c --- */

/** Event callbacks under way keep the struct alive: release frees it once closed. */
void mh_conn_hold(struct mh_conn *c);
void mh_conn_release(struct mh_conn *c);
/** Closes at once (a request under way learns its client is gone). */
void mh_conn_close_now(struct mh_conn *c);
/** Queues a problem+json refusal and ends the connection after it (not written yet). */
void mh_conn_refuse_queue(struct mh_conn *c, int status, const char *reason, const char *why);
/** Writes what is queued, inside a held callback; may close the connection. */
void mh_conn_write_out(struct mh_conn *c);
void mh_conn_set_deadline(struct mh_conn *c, enum deadline kind, long long ms);
void mh_conn_pause_reading(struct mh_conn *c);
void mh_conn_resume_reading(struct mh_conn *c);
void mh_conn_free_input(struct mh_conn *c);

/* --- conn_read.c, for conn.c --- */

/** The socket is readable (or a TLS read waited for writability): read, scan, answer. The
 *  caller holds the connection. */
void mh_conn_read_ready(struct mh_conn *c);

#endif
