/*
 * modhost testing host: unit tests for a module's handlers, WebSocket hooks and store drivers
 * without a server. Link the module's own source (or object files) into a test program with
 * libmodhost-testing; the test hands the module's definition (mh_module_v1()) to
 * mh_testing_new, gives settings and stores, starts it (the module's real init runs), then
 * builds fake requests and calls handlers by the names conf.d routes would use.
 *
 * What it does the way the server does: settings checked against the module's declaration,
 * the SDK calls' contracts (ownership, return codes, one reply per request), problem+json for
 * a handler's error status, the strict JSON parser and its limits, store semantics (versions,
 * compare-and-set, ordered scans). What it does differently, on purpose:
 *   - Everything runs on the calling thread. A blocking handler runs at once; tasks
 *     (mh_task_submit, mh_req_task) are queued and run, work then done, when the call that
 *     submitted them returns (or with mh_testing_run_tasks). No thread, no socket, no timer.
 *   - The clock (mh_clock_ns) stands still until the test moves it.
 *   - Misuse of the SDK (a second reply, a status outside 200..599, a forbidden or malformed
 *     header, a reply after a cancel) is refused with the documented status and logged as a
 *     line starting with "misuse:" (see mh_testing_misuses), so a test can assert there was
 *     none.
 *
 * Threads: every function here is called from the test's thread. The table the module gets
 * may be called from threads the module starts itself (log, stores, ws_send, ws_publish), as
 * the server's may.
 *
 * Ownership: objects made here belong to the host that made them and are freed by
 * mh_testing_free at the latest; pointers returned are borrowed as each call says.
 */
#ifndef MODHOST_TESTING_H
#define MODHOST_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modhost/sdk.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A module under test: one instance with its settings, stores, log and clock. */
struct mh_testing;

/* --- The module --- */

/**
 * A host for the module @p def (what the module's mh_module_v1() returns). The module's table
 * pointer is set to the testing table. Nothing of the module runs until mh_testing_start.
 * @return the host; NULL if @p def is not a module definition of this SDK's major version
 *         (the reason is printed on stderr). Release with mh_testing_free.
 */
struct mh_testing *mh_testing_new(const struct mh_module_def *def);
/** Runs the module's fini if init succeeded, closes the stores, frees every request and
 *  connection the host made. NULL does nothing. */
void mh_testing_free(struct mh_testing *t);

/**
 * Sets the module's settings from libconfig text, as the body of a conf.d `settings` group
 * would be written ("greeting = \"Hi\"; limit = 5;"). Replaces earlier settings.
 * @return MH_OK; MH_E_INVAL for a syntax error (message in mh_testing_error); MH_E_STATE after
 *         mh_testing_start.
 */
enum mh_status mh_testing_settings(struct mh_testing *t, const char *text);
/** Adds or replaces one setting. @return MH_OK; MH_E_INVAL for a bad name; MH_E_STATE after
 *  mh_testing_start. Strings are copied. */
enum mh_status mh_testing_set_string(struct mh_testing *t, const char *name, const char *value);
enum mh_status mh_testing_set_int(struct mh_testing *t, const char *name, long long value);
enum mh_status mh_testing_set_bool(struct mh_testing *t, const char *name, bool value);
enum mh_status mh_testing_set_float(struct mh_testing *t, const char *name, double value);
/** The directory relative paths resolve against in mh_conf_path (copied). Default: none,
 *  relative paths come back as given. */
void mh_testing_conf_dir(struct mh_testing *t, const char *dir);
/** The instance name mh_host_name answers (copied; default: the module's name). */
void mh_testing_instance(struct mh_testing *t, const char *name);
/** The limits mh_req_json and mh_req_json_body apply (defaults: the server's, 1 MiB and 64). */
void mh_testing_json_limits(struct mh_testing *t, size_t max_bytes, int max_depth);

/**
 * Lists an empty in-memory store named @p name in the module's `stores` (in call order, so
 * the first is what mh_store_find(host, NULL) answers). It supports every store call, with
 * versions and compare-and-set as the store contract says.
 * @return MH_OK; MH_E_INVAL for a bad or duplicate name; MH_E_STATE after mh_testing_start.
 */
enum mh_status mh_testing_add_store(struct mh_testing *t, const char *name);
/**
 * Lists a store named @p name opened with the store driver @p driver that the module itself
 * provides, with @p settings as libconfig text (may be NULL). The driver's settings are
 * checked against its declaration, then its open runs (at mh_testing_start, before init).
 * Use it to test a store driver through the SDK's store calls.
 * @return MH_OK; MH_E_NOTFOUND if the module has no such driver; MH_E_INVAL for bad text or
 *         a bad name; MH_E_STATE after mh_testing_start.
 */
enum mh_status mh_testing_add_driver_store(struct mh_testing *t, const char *name,
                                           const char *driver, const char *settings);
/**
 * Checks the settings against the module's declaration (unknown keys, wrong types), opens the
 * driver stores, then runs the module's init.
 * @return MH_OK; otherwise what failed returned (MH_E_INVAL for a bad setting), with the
 *         message in mh_testing_error (init's mh_host_error text when init refused).
 */
enum mh_status mh_testing_start(struct mh_testing *t);
/** The last error of a mh_testing_* call ("" if none). Borrowed until the next call. */
const char *mh_testing_error(const struct mh_testing *t);
/** The store called @p name, as mh_store_find answers it, or NULL. Borrowed from @p t. */
struct mh_store *mh_testing_store(struct mh_testing *t, const char *name);
/** The host handed to the module's init. Borrowed from @p t. */
struct mh_host *mh_testing_host(struct mh_testing *t);
/** The module's state, as its init stored it. */
void *mh_testing_state(const struct mh_testing *t);

/* --- The log --- */

/** Every line logged so far, "LEVEL message\n" each (LEVEL: error, warn, info, debug; request
 *  lines end with " req=ID"). Borrowed until the next call that logs. All levels are kept.
 *  Lines logged with a NULL host (a store driver's own threads) go to the newest instance. */
const char *mh_testing_log(const struct mh_testing *t);
/** Whether some line contains @p text. */
bool mh_testing_log_has(const struct mh_testing *t, const char *text);
/** How many calls broke an SDK rule (each also logged as "error misuse: ..."). */
size_t mh_testing_misuses(const struct mh_testing *t);
/** Forgets the lines so far (the misuse count stays). */
void mh_testing_log_clear(struct mh_testing *t);

/* --- Time and tasks --- */

/** Moves the clock mh_clock_ns answers forward by @p ns (it starts at one second). */
void mh_testing_clock_advance(struct mh_testing *t, uint64_t ns);
/** Runs queued tasks (work, then done) until none is left, including tasks they submit.
 *  @return how many ran. Calls that run module code do this before they return. */
size_t mh_testing_run_tasks(struct mh_testing *t);

/* --- Requests --- */

/**
 * A fake request: @p method and @p target (a path, optionally with "?query", as sent: the
 * query is percent-decoded for mh_req_query). Release with mh_testing_req_free (or leave it
 * to mh_testing_free). Aborts if memory runs out.
 */
struct mh_req *mh_testing_req(struct mh_testing *t, const char *method, const char *target);
/** Sets path parameter @p name (copied, as the route would decode it). */
void mh_testing_req_param(struct mh_req *req, const char *name, const char *value);
/**
 * Sets the path parameters by matching the request's path against a route template such as
 * "/kv/{key}", as conf.d routes do (segments percent-decoded).
 * @return MH_OK; MH_E_NOTFOUND if the path does not match the template.
 */
enum mh_status mh_testing_req_route(struct mh_req *req, const char *path_template);
/** Adds a request header (both copied; several with one name are allowed). */
void mh_testing_req_header(struct mh_req *req, const char *name, const char *value);
/** Sets the body (copied). */
void mh_testing_req_body(struct mh_req *req, const void *data, size_t len);
/** Sets the body to @p json (copied, not checked) and Content-Type to application/json. */
void mh_testing_req_json(struct mh_req *req, const char *json);
/** Marks the request cancelled, as if its client went away: mh_req_cancelled answers yes,
 *  replies fail with MH_E_CANCELLED, and request tasks complete with MH_E_CANCELLED. */
void mh_testing_req_cancel(struct mh_req *req);

/**
 * Runs the module's handler @p handler for @p req (blocking handlers too, on this thread),
 * then its request tasks and their done callbacks, then the request's deferred callbacks.
 * As the server does, an error status without a reply becomes a problem+json reply (400 for
 * MH_E_INVAL, 404, 409, 413, 503, 504, 500 otherwise) and MH_OK without a reply becomes a
 * 500 with an error line in the log.
 * @return what the handler returned; MH_E_NOTFOUND (nothing ran) if the module has no such
 *         handler; MH_E_STATE if the request was already handled or the module not started.
 */
enum mh_status mh_testing_call(struct mh_req *req, const char *handler);
/** The reply's status (0 if none was made). */
int mh_testing_status(const struct mh_req *req);
/** The first reply header @p name (case-insensitive; Content-Type included), or NULL.
 *  Borrowed until mh_testing_req_free. */
const char *mh_testing_header(const struct mh_req *req, const char *name);
/** The reply body and its length (NUL-terminated for convenience; "" if none). Borrowed until
 *  mh_testing_req_free. */
const char *mh_testing_body(const struct mh_req *req, size_t *len);
/** The reply body parsed as JSON, or NULL if it is not JSON. Borrowed until
 *  mh_testing_req_free (take a reference with json_object_get to keep it). */
struct json_object *mh_testing_json(struct mh_req *req);
/** Member @p key of the reply's JSON object, or NULL (no such member, or not a JSON object).
 *  Borrowed as mh_testing_json. */
struct json_object *mh_testing_json_get(struct mh_req *req, const char *key);
/** The string member @p key of the reply's JSON object, or NULL if absent or not a string.
 *  Borrowed as mh_testing_json. */
const char *mh_testing_json_str(struct mh_req *req, const char *key);
/** Frees the request and what the module allocated with it. NULL does nothing. */
void mh_testing_req_free(struct mh_req *req);

/* --- WebSocket --- */

/**
 * A fake connection for an endpoint whose hooks are the module's hooks named @p on_open,
 * @p on_message and @p on_close (as conf.d endpoints name them; on_open and on_close may be
 * NULL). @return the connection, or NULL if a hook is unknown (message in mh_testing_error).
 */
struct mh_ws *mh_testing_ws(struct mh_testing *t, const char *on_open, const char *on_message,
                            const char *on_close);
/**
 * Opens the connection with @p upgrade as its upgrade request (its parameters become the
 * connection's mh_ws_param): runs on_open, then queued tasks.
 * @return what on_open returned. The connection is open if it returned MH_OK without
 *         replying; otherwise the refusal is the reply of @p upgrade.
 */
enum mh_status mh_testing_ws_connect(struct mh_ws *ws, struct mh_req *upgrade);
/** Whether the connection is open (accepted and not closed). */
bool mh_testing_ws_is_open(const struct mh_ws *ws);
/** Delivers a message from the client to on_message, then runs queued tasks.
 *  @return MH_OK; MH_E_STATE if the connection is not open; MH_E_INVAL for text that is not
 *  UTF-8 (the server would close with 1007; here nothing is delivered). */
enum mh_status mh_testing_ws_receive(struct mh_ws *ws, bool is_binary, const void *data,
                                     size_t len);
/** The client goes away with @p code: on_close runs once, the channels are left. */
void mh_testing_ws_disconnect(struct mh_ws *ws, int code);
/** How many messages the module sent to this connection (mh_ws_send and channel messages). */
size_t mh_testing_ws_sent_count(const struct mh_ws *ws);
/** Message @p i (0 = first), its length and kind; NULL if there is no such message.
 *  NUL-terminated; borrowed until the connection is freed. */
const char *mh_testing_ws_sent(const struct mh_ws *ws, size_t i, size_t *len, bool *is_binary);
/** Whether the connection is a member of @p channel now. */
bool mh_testing_ws_joined(const struct mh_ws *ws, const char *channel);
/** The close code the module asked for with mh_ws_close (0 if it did not), and its reason
 *  ("" if none; borrowed). */
int mh_testing_ws_close_code(const struct mh_ws *ws);
const char *mh_testing_ws_close_reason(const struct mh_ws *ws);
/** Disconnects (1001) if open and frees the connection; a reference the module still holds
 *  (mh_ws_ref) is reported as misuse. NULL does nothing. */
void mh_testing_ws_free(struct mh_ws *ws);

/** How many messages the module published with mh_ws_publish, and message @p i with its
 *  channel (borrowed until mh_testing_free). */
size_t mh_testing_published_count(const struct mh_testing *t);
const char *mh_testing_published(const struct mh_testing *t, size_t i, const char **channel,
                                 size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* MODHOST_TESTING_H */
