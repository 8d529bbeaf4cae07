/*
 * Connections: modhost's own HTTP/1.1 engine over libevent. Each loop accepts on its own
 * listener; a connection reads into one buffer, runs the scanner (http_scan.c) on the bytes
 * as they arrive, hands each complete request to the loop's dispatcher in order, and writes
 * answers with writev straight from the loop (EV_WRITE only while the socket would block).
 * Deadlines, connection caps and refusals (docs/http.md) live here. A connection can switch
 * to another protocol in place (WebSocket), and it reads and writes through a transport.
 */
#ifndef MH_CONN_H
#define MH_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct mh_conn;
struct mh_loop;
struct mh_reply_head;
struct mh_req;

/* The transport seam: plain TCP (below) and TLS (tls.h) plug in here without touching the HTTP
 * code. Each call follows read(2)/writev(2): >= 0 bytes, or -1 with errno (EAGAIN: would block;
 * any other error closes the connection). A read that must write first (a TLS handshake whose
 * output would block) calls mh_conn_want_write; a read that keeps bytes it has not returned
 * calls mh_conn_read_again. */
struct mh_transport {
    /** A new connection: set up the transport's state for it (mh_conn_set_transport_data);
     *  @p ctx is the listener's (struct mh_service.transport_ctx). @return 0, or -1 to close.
     *  NULL: nothing to set up. */
    int (*open)(struct mh_conn *c, void *ctx);
    ssize_t (*read)(struct mh_conn *c, void *buf, size_t len);
    ssize_t (*writev)(struct mh_conn *c, const struct iovec *iov, int n);
    void (*shutdown)(struct mh_conn *c); /* no more writes */
    void (*close)(struct mh_conn *c);    /* release the transport's state (not the fd) */
};

extern const struct mh_transport mh_tcp_transport;

/*
 * What a listener serves: every connection accepted on it gets these. The application
 * listener's requests go to the dispatcher; another listener (the admin one, say) can send its
 * requests elsewhere and speak through another transport (TLS).
 */
struct mh_service {
    void (*on_request)(struct mh_req *req); /* a complete request; thread: the loop's */
    const struct mh_transport *transport;   /* NULL: plain TCP */
    void *transport_ctx;                    /* handed to transport->open */
    const char *name;                       /* for logs and counters ("http", "admin") */
    /* A listener of its own (the admin one): its connections have their own cap instead of
     * limits.max_connections, and its traffic stays out of the loop's counters. */
    bool is_private;
    long long max_connections; /* is_private: the cap on its open connections */
    atomic_int *open;          /* is_private: its open connections (shared by the loops) */
};

/** The connection's socket. */
int mh_conn_fd(const struct mh_conn *c);
/** The service the connection was accepted for. */
const struct mh_service *mh_conn_service(const struct mh_conn *c);
/** The transport's state for this connection (set in its open). */
void *mh_conn_transport_data(const struct mh_conn *c);
void mh_conn_set_transport_data(struct mh_conn *c, void *data);

/** For a transport: call read again once the socket is writable (the read has output to send
 *  first). Thread: the loop's. */
void mh_conn_want_write(struct mh_conn *c);
/** For a transport: call read again soon, without waiting for the socket (the transport holds
 *  bytes it has read but not returned). */
void mh_conn_read_again(struct mh_conn *c);
/** Answers @p status (problem+json with @p why, borrowed) and closes once it is written; no
 *  request is read any more. @p reason names the refusal in the access log. */
void mh_conn_refuse(struct mh_conn *c, int status, const char *reason, const char *why);

/* Another protocol on the connection (after an upgrade). Thread: the loop's. */
struct mh_conn_proto {
    /** Bytes arrived: @return how many were used (the rest is presented again with more). */
    size_t (*on_data)(void *arg, unsigned char *p, size_t len);
    /** Everything queued was written. */
    void (*on_drained)(void *arg);
    /** The connection ends (@p arg is not used by the connection after this). */
    void (*on_close)(void *arg);
};

/** Takes a new connection @p fd (non-blocking) accepted on a listener serving @p svc
 *  (borrowed: it outlives the loop's connections). */
void mh_conn_accept(struct mh_loop *loop, const struct mh_service *svc, int fd,
                    const struct sockaddr *peer, socklen_t len);

/** Queues @p len bytes (copied) for writing. */
void mh_conn_send(struct mh_conn *c, const void *data, size_t len);
/** Queues @p block (malloc'd, @p len bytes) without copying; the connection frees it. */
void mh_conn_send_owned(struct mh_conn *c, void *block, size_t len);
/** @p n writable bytes at the end of the output; mh_conn_commit(c, used) queues them. */
char *mh_conn_space(struct mh_conn *c, size_t n);
void mh_conn_commit(struct mh_conn *c, size_t used);
/** Queues the head of a response (head.h). */
void mh_conn_write_head(struct mh_conn *c, const struct mh_reply_head *h);
/** Writes what is queued now (the connection also flushes after every read batch). */
void mh_conn_flush(struct mh_conn *c);
/** Bytes queued and not yet written. */
size_t mh_conn_unsent(const struct mh_conn *c);

/** The active request's answer is queued (or dropped): go on with the next request.
 *  @p close: the connection ends once the answer is written. */
void mh_conn_request_done(struct mh_conn *c, bool close);
/** Requests answered on this connection so far (for max_requests_per_connection). */
unsigned mh_conn_requests(const struct mh_conn *c);

/** From now on the connection carries @p proto: bytes after the request go to it. */
void mh_conn_switch(struct mh_conn *c, const struct mh_conn_proto *proto, void *arg);
/** Stops reading (a failed protocol): what arrives is dropped. */
void mh_conn_stop_reading(struct mh_conn *c);
/** Ends the connection: at once, or once everything queued is written. */
void mh_conn_end(struct mh_conn *c, bool after_flush);

/** Draining: idle connections close now, the others after their current answer. */
void mh_conn_drain_loop(struct mh_loop *loop);
/** Closes every connection of the loop (the loop is stopping). */
void mh_conn_close_all(struct mh_loop *loop);
/** Frees the loop's connection resources (after close_all). */
void mh_conn_loop_cleanup(struct mh_loop *loop);

/** The client's address as text ("-" if unknown) into @p buf (>= 46 bytes). */
const char *mh_conn_peer(const struct mh_conn *c, char *buf, size_t size);

/** Connections open in the whole server. */
int mh_conn_open_count(void);

#endif
