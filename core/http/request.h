/*
 * The request path as the rest of the core sees it: the SDK's request, reply and task calls
 * (their contracts are in sdk.h), HTTP status texts, and the calls the dispatcher and the
 * WebSocket upgrade make on a request.
 */
#ifndef MH_REQUEST_H
#define MH_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modhost/sdk.h"

struct mh_arena;
struct mh_loop;
struct mh_route_target;

/** Frees the loop's spare request objects. Thread: the loop's, after it stopped. */
void mh_request_spares_free(struct mh_loop *loop);

/** The HTTP status a handler's error status maps to (see enum mh_status). */
int mh_status_http(enum mh_status rc);
/** Whether the comma-separated list @p v holds token @p tok (case-insensitive). */
bool mh_http_has_token(const char *v, const char *tok);

/* --- For the dispatcher and the WebSocket upgrade (thread: the request's loop) --- */

struct mh_loop *mh_req_loop(const struct mh_req *req);
/** The request's memory (freed with it). */
struct mh_arena *mh_req_arena(struct mh_req *req);
/** The route target the request goes to (set by the dispatcher). */
void mh_req_set_target(struct mh_req *req, const struct mh_route_target *t);
const struct mh_route_target *mh_req_target(const struct mh_req *req);
/** Sets path parameter @p i (@p value already decoded, in the request's memory). */
void mh_req_set_param(struct mh_req *req, size_t i, const char *name, const char *value);
void mh_req_set_nparams(struct mh_req *req, size_t n);
size_t mh_req_param_count(const struct mh_req *req);
void mh_req_param_at(const struct mh_req *req, size_t i, const char **name, const char **value);
enum mh_method mh_req_method_id(const struct mh_req *req);
size_t mh_req_path_len(const struct mh_req *req);
bool mh_req_is_http11(const struct mh_req *req);
bool mh_req_replied(const struct mh_req *req);
/** Runs the route's handler (on the loop or the pool) and answers. */
void mh_req_run(struct mh_req *req);
/** The request waits for a task (mh_req_task_impl) from now on: its bytes are copied out of
 *  the connection's buffer. */
void mh_req_wait(struct mh_req *req);
/** Answers with what the request recorded (a reply made without a handler). */
void mh_req_answer(struct mh_req *req);
/** Answers as after a handler that returned @p rc. */
void mh_req_settle_status(struct mh_req *req, enum mh_status rc);
/**
 * The request was an upgrade that succeeded: its 101 is written by the caller, the connection
 * belongs to another protocol now, the request is finished (logged as 101).
 */
struct mh_conn *mh_req_upgraded(struct mh_req *req);

/** The metrics entry of route @p t (NULL: requests no route took) on @p loop. Thread: the
 *  loop's. */
struct mh_route_stats *mh_route_stats_of(struct mh_loop *loop, const struct mh_route_target *t);

/* The SDK calls implemented by the request path (see sdk.h for their contracts). */
const char *mh_req_method_impl(const struct mh_req *req);
const char *mh_req_path_impl(const struct mh_req *req);
const char *mh_req_param_impl(const struct mh_req *req, const char *name);
const char *mh_req_query_impl(struct mh_req *req, const char *name);
const char *mh_req_header_impl(const struct mh_req *req, const char *name);
enum mh_status mh_req_headers_impl(const struct mh_req *req, mh_header_fn fn, void *arg);
const void *mh_req_body_impl(struct mh_req *req, size_t *len);
enum mh_status mh_req_json_impl(struct mh_req *req, struct json_object **out, const char **detail);
void *mh_req_alloc_impl(struct mh_req *req, size_t size);
enum mh_status mh_req_defer_impl(struct mh_req *req, void (*fn)(void *), void *arg);
uint64_t mh_req_id_impl(const struct mh_req *req);
const char *mh_req_request_id_impl(const struct mh_req *req);
/** Seeds the request ids of this process (once, before serving). */
void mh_request_ids_init(void);
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
enum mh_status mh_stream_begin_impl(struct mh_req *req, int status, const char *content_type);
enum mh_status mh_stream_write_impl(struct mh_req *req, const void *data, size_t len);
enum mh_status mh_stream_on_drain_impl(struct mh_req *req,
                                       void (*fn)(struct mh_req *req, void *arg), void *arg);
enum mh_status mh_stream_end_impl(struct mh_req *req);

#endif
