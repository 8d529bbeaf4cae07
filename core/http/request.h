/*
 * One HTTP exchange over evhttp: routing a request to its handler, the SDK's request and
 * response calls, problem+json errors, and the access log. Replies are recorded in the
 * mh_req and written to evhttp only after the handler returns, on the loop thread.
 */
#ifndef MH_REQUEST_H
#define MH_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "modhost/sdk.h"

struct event_base;
struct evhttp_request;
struct mh_gen;
struct mh_limits;
struct mh_mailbox;
struct mh_pool;

/** What a loop thread hands the dispatcher; owned by the loop. */
struct mh_dispatch {
    struct mh_gen *gen; /* the generation new requests use; the loop holds a reference */
    const struct mh_limits *limits;
    bool access_log;
    unsigned loop_index;
    uint64_t next_seq;
    uint64_t inflight; /* requests handed to evhttp whose response is not yet written */
    bool draining;     /* answer with Connection: close */
    bool stopped;      /* the loop has exited: drop answers instead of sending them */
    struct event_base *base;
    struct mh_mailbox *mailbox; /* this loop's, for task completions */
    struct mh_pool *pool;       /* NULL: blocking handlers run on the loop */
    struct mh_ws *ws_head;      /* this loop's WebSocket connections (ws.c) */
    size_t nws;
    struct mh_pubsub_local *pubsub; /* this loop's channels (pubsub.c) */
    void *conn_map;                 /* guard.c's connections of this loop */
    size_t nconns;
    uint64_t refused[16];           /* requests refused by the guard, by enum mh_refusal */
    struct mh_req *spare;           /* finished requests kept for reuse (this loop only) */
    size_t nspare;
    time_t date_sec;                /* the second date_header was made for */
    char date_header[40];           /* "Fri, 27 Nov 2026 21:00:00 GMT" */
};

/** Frees the loop's spare request objects. Thread: the loop's, after it stopped. */
void mh_request_spares_free(struct mh_dispatch *d);

/** evhttp's request callback body: route, run the handler, reply. Thread: the loop's. */
void mh_request_dispatch(struct mh_dispatch *d, struct evhttp_request *ev);

/* For ws.c: the upgrade request. */
struct evhttp_request *mh_req_evhttp(const struct mh_req *req);
size_t mh_req_param_count(const struct mh_req *req);
void mh_req_param_at(const struct mh_req *req, size_t i, const char **name, const char **value);
bool mh_req_replied(const struct mh_req *req);

/** The reason phrase for @p status ("Not Found"), or "Unknown". */
const char *mh_http_reason(int status);
/** The HTTP status a handler's error status maps to (see enum mh_status). */
int mh_status_http(enum mh_status rc);

/* The SDK calls implemented here (see sdk.h for their contracts). */
const char *mh_req_method_impl(const struct mh_req *req);
const char *mh_req_path_impl(const struct mh_req *req);
const char *mh_req_param_impl(const struct mh_req *req, const char *name);
const char *mh_req_query_impl(struct mh_req *req, const char *name);
const char *mh_req_header_impl(const struct mh_req *req, const char *name);
enum mh_status mh_req_headers_impl(const struct mh_req *req, mh_header_fn fn, void *arg);
const void *mh_req_body_impl(struct mh_req *req, size_t *len);
enum mh_status mh_req_json_impl(struct mh_req *req, struct json_object **out,
                                const char **detail);
void *mh_req_alloc_impl(struct mh_req *req, size_t size);
enum mh_status mh_req_defer_impl(struct mh_req *req, void (*fn)(void *), void *arg);
uint64_t mh_req_id_impl(const struct mh_req *req);
enum mh_status mh_resp_header_impl(struct mh_req *req, const char *name, const char *value);
enum mh_status mh_reply_impl(struct mh_req *req, int status, const char *content_type,
                             const void *body, size_t len);
enum mh_status mh_reply_json_impl(struct mh_req *req, int status, struct json_object *body);
enum mh_status mh_reply_problem_impl(struct mh_req *req, int status, const char *type,
                                     const char *fmt, ...) MH_PRINTF(4, 5);
int mh_req_cancelled_impl(const struct mh_req *req);
enum mh_status mh_task_submit_impl(struct mh_host *host, mh_task_fn work, mh_task_done_fn done,
                                   void *arg);
enum mh_status mh_req_task_impl(struct mh_req *req, mh_task_fn work, mh_req_done_fn done,
                                void *arg);
void mh_req_log_impl(const struct mh_req *req, enum mh_log_level level, const char *fmt, ...)
    MH_PRINTF(3, 4);

#endif
