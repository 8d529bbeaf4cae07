/*
 * The inside of one HTTP exchange, shared by the files of the request path (request.c: the
 * SDK's request calls; reply.c: replies and the bytes of a response; exec.c: handlers on the
 * pool, tasks, deadlines). Nothing outside core/http/ sees this struct.
 */
#ifndef MH_REQ_H
#define MH_REQ_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/pool.h"
#include "mod/router.h"
#include "modhost/sdk.h"

struct event;
struct json_object;
struct mh_conn;
struct mh_gen;
struct mh_loop;

struct mh_field {
    const char *name;
    const char *value;
};

struct mh_resp_field {
    struct mh_resp_field *next; /* in reverse order of mh_resp_header calls */
    const char *name;
    const char *value;
};

struct mh_defer {
    struct mh_defer *next;
    void (*fn)(void *);
    void *arg;
};

#define MH_REQ_ID_MAX 64 /* longest X-Request-Id taken from a client */

struct mh_qpair {
    const char *name;
    const char *value;
};

struct mh_req {
    struct mh_loop *loop;
    struct mh_conn *conn; /* NULL once the connection is gone (the answer is dropped) */
    struct mh_gen *gen;   /* referenced: the request finishes on the generation it started on */
    const struct mh_route_target *target;
    struct mh_req *next_spare;

    /* The request as read (pointers into the connection's buffer until detached). */
    enum mh_method method;
    const char *method_name;
    const char *path;
    size_t path_len;
    const char *query_raw; /* NULL if none */
    bool http11, keep_alive, is_head, is_connect;
    bool is_private; /* came on the admin listener: not counted in the metrics */
    struct mh_field *fields;
    size_t nfields;
    const unsigned char *body;
    size_t body_len;
    const char *raw_base; /* the head and body, for detaching */
    size_t raw_len;

    size_t nparams;
    const char *param_names[MH_ROUTE_MAX_PARAMS];
    const char *param_values[MH_ROUTE_MAX_PARAMS];
    struct mh_qpair *query;
    size_t nquery;
    uint64_t id;
    struct timespec start;       /* when it was read: for the access log and the latency metrics */
    char rid[MH_REQ_ID_MAX + 1]; /* the request id: the client's X-Request-Id or ours; "" until
                                    first asked for (mh_req_request_id) */

    struct json_object *json; /* parsed body, owned (NULL for the document `null`) */
    bool json_parsed;
    bool query_parsed;

    /* The reply a handler recorded. */
    bool replied;
    bool close_after; /* answer with Connection: close */
    int status;
    const char *content_type;
    struct mh_resp_field *resp_fields;
    struct mh_buf out;  /* the body; its memory is kept with the spare request */
    size_t body_sent;   /* the Content-Length of the answer, for the access log */
    const char *misuse; /* the first SDK misuse of the module (reply.c), or NULL */

    struct mh_defer *defers;

    /* Requests answered on the pool or by a task (the loop thread owns all but `cancel`). */
    struct mh_task task;       /* runs a blocking handler */
    uint64_t pool_ns;          /* time the handler took on the worker (written there) */
    enum mh_status handler_rc; /* its return, read by the loop after completion */
    atomic_int cancel;         /* 0, MH_E_CANCELLED or MH_E_TIMEOUT */
    int pending;               /* tasks not yet completed */
    bool async;                /* waits for the pool: counted in loop->inflight */
    bool responded;            /* the answer was queued on the connection, or dropped */
    bool detached;             /* its data copied out of the connection's buffer */
    struct event *deadline_ev;

    /* A streamed answer (stream.c). The phase and the byte counts are read by any thread
     * that calls the stream calls; the rest belongs to the loop. */
    atomic_int stream_phase; /* 0: none, 1: begun, 2: ended (as the callers see it) */
    bool streaming;          /* the loop wrote the head: the connection carries the body */
    bool stream_chunked;
    atomic_size_t stream_posted; /* bytes handed to the loop and not yet queued */
    atomic_size_t stream_unsent; /* bytes queued on the connection and not yet written */
    uint64_t stream_bytes;       /* body bytes written, for the access log */
    void (*stream_drain_fn)(struct mh_req *req, void *arg);
    void *stream_drain_arg;

    struct mh_arena arena;
    alignas(max_align_t) unsigned char inline_mem[1024];
};

/* --- request.c --- */

/** A request object for @p loop (a spare one when there is). Thread: the loop's. */
struct mh_req *mh_req_new(struct mh_loop *loop, struct mh_conn *conn);
/**
 * Reads the head at [@p head, @p head + @p len) (validated by the scanner; modified in place:
 * separators become NULs) into @p req. @return false if the target names no absolute path.
 */
bool mh_req_read_head(struct mh_req *req, char *head, size_t len);
/** Copies what a handler may read out of the connection's buffer. */
void mh_req_detach(struct mh_req *req);
/** Frees the request when it is answered and no task of it is pending. */
void mh_req_finish_if_done(struct mh_req *req);

/* --- reply.c --- */

/** Queues the recorded reply on the connection (or drops it if the connection is gone). */
void mh_req_respond(struct mh_req *req);
/** Answers with a problem at once, whatever a worker may be building (deadlines, refusals
 *  before any handler ran). @p extra_name/@p extra_value: one more header, or NULL. */
void mh_req_respond_problem(struct mh_req *req, int status, const char *extra_name,
                            const char *extra_value, const char *fmt, ...) MH_PRINTF(5, 6);
/** The request's answer is out of our hands (queued or dropped). */
void mh_req_mark_responded(struct mh_req *req);

/** The request id (see sdk.h, mh_req_request_id). Borrowed as @p req. */
const char *mh_req_rid(const struct mh_req *req);

/* --- stream.c --- */

/** The connection wrote some of the stream: @p unsent bytes are left. Thread: the loop. */
void mh_req_stream_progress(struct mh_req *req, size_t unsent);
/** The client went away during a stream: tell the module (its drain callback). */
void mh_req_stream_gone(struct mh_req *req);

/* --- exec.c --- */

/** After the handler (or its last task) is done: reply with what it recorded, or for it. */
void mh_req_settle(struct mh_req *req, enum mh_status rc);
/** Runs a blocking handler on the pool. */
void mh_req_run_blocking(struct mh_req *req);
/** The request now waits for the pool: watch its deadline. */
void mh_req_await(struct mh_req *req);
/** The client went away while the request waited: cancel it (499). */
void mh_req_client_gone(struct mh_req *req);
void mh_req_stop_watchers(struct mh_req *req);
/** Counts the answer @p status in the metrics of the request's route (or of no route). */
void mh_req_account(struct mh_req *req, int status);

#endif
