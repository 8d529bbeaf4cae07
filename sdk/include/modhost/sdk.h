/*
 * modhost SDK: the only header a module includes.
 *
 * A module is a shared object that exports one function, mh_module_v1(), which returns the
 * module's static definition (write it with MH_MODULE). Everything the module calls in the
 * server goes through the function table `mh_api`, which the core stores before calling init.
 *
 * Compatibility: a module built against 1.N loads in every core 1.M with M >= N. Fields and
 * table members are only ever appended; the core reads a module definition no further than
 * its `size`, and a module may use every member of the table its header declares, because a
 * module newer than the core is refused.
 *
 * Changelog
 *   1.0  first release: module definition, handlers, settings, request/response, logging.
 *   1.1  worker pool: blocking handlers run there, tasks with completion callbacks, request
 *        cancellation and deadlines; stores: the key/value contract, drivers in modules;
 *        WebSocket endpoints with open/message/close hooks, sends from any thread, channels.
 *   1.2  va_list variants of every variadic call (mh_reply_problemv, mh_logv, mh_req_logv,
 *        mh_host_errorv, mh_store_set_errorv); helpers modules used to write themselves
 *        (mh_is_utf8, mh_clock_ns, mh_req_json_body, mh_host_name); yes/no calls that
 *        answer bool (mh_req_is_cancelled, mh_log_is_enabled); consistent names as aliases of
 *        older ones (mh_req_log, mh_ws_get_data, mh_store_value_free). A module may be enabled
 *        more than once under instance names (mh_host_name tells which instance runs).
 *        Store drivers may carry channels between instances: subscribe, unsubscribe and
 *        publish in struct mh_store_driver (MH_STORE_CAP_PUBSUB), chosen by server.channels.
 *        Streamed responses (chunked or Server-Sent Events) with backpressure:
 *        mh_stream_begin, mh_stream_write, mh_stream_on_drain, mh_stream_end.
 *   1.3  the request id as text (mh_req_request_id): the client's X-Request-Id when it sent a
 *        sane one, else one the server made; sent back in X-Request-Id, and in every access
 *        and error log line about the request.
 */
#ifndef MODHOST_SDK_H
#define MODHOST_SDK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MH_ABI_MAJOR 1
#define MH_ABI_MINOR 3

/** First field of every module definition: "mhm1". */
#define MH_MODULE_MAGIC 0x6d686d31u

/**
 * What the module was compiled for: pointer, size_t and time_t sizes and byte order, one byte
 * each. The core refuses a module whose fingerprint differs from its own.
 */
#define MH_BUILD_FINGERPRINT                                      \
    ((uint32_t)sizeof(void *) | ((uint32_t)sizeof(size_t) << 8) | \
     ((uint32_t)sizeof(time_t) << 16) |                           \
     ((uint32_t)(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 1u : 2u) << 24))

#define MH_EXPORT            __attribute__((visibility("default")))
#define MH_HIDDEN            __attribute__((visibility("hidden")))
#define MH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
/* For the va_list variants (1.2): the format is checked, the arguments are not. */
#define MH_VPRINTF(fmt) __attribute__((format(printf, fmt, 0)))

/* --- Handles: opaque, owned by the core --- */

/** One HTTP exchange. Owned by the core; valid from the handler call until its reply is sent. */
struct mh_req;
/** A loaded module as the core sees it. Valid from init until fini returns. */
struct mh_host;
/** A module's settings group from conf.d. Borrowed: valid until fini returns. */
struct mh_conf;
/** A WebSocket connection (1.1). Owned by the core: valid from on_open until on_close returns,
 *  or until mh_ws_unref for each mh_ws_ref the module took. */
struct mh_ws;
/** A named store instance declared in conf.d (1.1). Owned by the core; valid until fini. */
struct mh_store;
/** json-c's object type; the SDK passes json-c objects but does not include json-c. */
struct json_object;

/* --- Status codes --- */

/**
 * What every fallible call returns: 0 on success, negative for a reason. A handler that returns
 * an error without having replied gets a problem+json reply from the core whose status follows
 * the code: MH_E_INVAL 400, MH_E_NOTFOUND 404, MH_E_CONFLICT 409, MH_E_LIMIT 413,
 * MH_E_UNAVAILABLE 503, MH_E_TIMEOUT 504, anything else 500.
 */
enum mh_status {
    MH_PENDING = 1, /* 1.1: the handler started a request task (mh_req_task) that will reply */
    MH_OK = 0,
    MH_E_INVAL = -1,       /* bad argument or bad input */
    MH_E_NOMEM = -2,       /* out of memory */
    MH_E_LIMIT = -3,       /* a configured size or count limit was exceeded */
    MH_E_NOTFOUND = -4,    /* no such key, parameter, setting */
    MH_E_CONFLICT = -5,    /* already exists, or a version did not match */
    MH_E_IO = -6,          /* an operating-system or driver call failed */
    MH_E_CANCELLED = -7,   /* the client went away or the server is stopping */
    MH_E_UNAVAILABLE = -8, /* a dependency cannot serve now; retry later */
    MH_E_TIMEOUT = -9,     /* a deadline passed */
    MH_E_STATE = -10       /* the call is not allowed now (e.g. a second reply) */
    /* A reply call refused with MH_E_INVAL or MH_E_STATE is a misuse: the server logs it with
     * the module, handler and call, and answers the request 500 whatever was recorded. */
};

enum mh_log_level { MH_LOG_ERROR = 0, MH_LOG_WARN = 1, MH_LOG_INFO = 2, MH_LOG_DEBUG = 3 };

/* --- Module definition --- */

/**
 * A request handler. Called for each request routed to it.
 * @param req    Borrowed: valid until the reply is sent (after this function returns).
 * @param state  The pointer the module's init stored, or NULL.
 * @return MH_OK after replying with one of the mh_reply* calls; an error code without a reply
 *         makes the core answer with problem+json (see enum mh_status); MH_PENDING (1.1) after
 *         starting a request task with mh_req_task, whose done callback replies. MH_OK without
 *         a reply is a bug in the handler; the core answers 500 and logs it.
 * Thread: a loop thread, or a worker thread if the handler is flagged MH_HANDLER_BLOCKING
 *         (1.1: such handlers run on the worker pool, with the route's deadline; a 1.0 core
 *         ran them on the loop). Several threads may run the same handler at once: shared
 *         state needs locking. A blocking handler must not call task_submit or req_task.
 */
typedef enum mh_status (*mh_handler_fn)(struct mh_req *req, void *state);

/**
 * Module initialisation, once per load, before any handler runs.
 * @param host      Valid until fini returns; use it for mh_log and mh_host_error.
 * @param settings  The module's `settings` group from conf.d (empty if absent). Borrowed: valid
 *                  until fini returns; strings read from it share that lifetime.
 * @param state     Out: the module's state, handed to every handler and to fini.
 * @return MH_OK; any error refuses the module, with the message set by mh_host_error.
 * Thread: the main thread, with no request running.
 */
typedef enum mh_status (*mh_init_fn)(struct mh_host *host, const struct mh_conf *settings,
                                     void **state);

/**
 * Module shutdown: release what init made. Called once, after the last request has finished.
 * Thread: the main thread, with no request running.
 */
typedef void (*mh_fini_fn)(struct mh_host *host, void *state);

/** Handler flags. */
#define MH_HANDLER_BLOCKING 0x1u /* may block (I/O, CPU work): runs on the worker pool */

/** One named handler. Arrays of these end with an entry whose name is NULL. */
struct mh_handler_def {
    const char *name; /* what conf.d routes refer to; [A-Za-z0-9_]+ */
    mh_handler_fn fn;
    uint32_t flags; /* MH_HANDLER_* */
};

/** Types a module setting may have. */
enum mh_setting_type {
    MH_SETTING_STRING = 1,
    MH_SETTING_INT = 2, /* 64-bit integer */
    MH_SETTING_BOOL = 3,
    MH_SETTING_FLOAT = 4
};

/**
 * A setting the module accepts in its conf.d `settings` group. When a module lists its
 * settings, the core rejects unknown keys (suggesting the nearest one) and wrong types with
 * file:line before init runs. Arrays end with an entry whose name is NULL.
 */
struct mh_setting_def {
    const char *name;
    enum mh_setting_type type;
    const char *help; /* one line, shown in errors; may be NULL */
};

/** Module flags. */
#define MH_MODULE_UNLOAD_SAFE 0x1u /* the module's code may be unmapped after fini */

/**
 * The module's static definition, returned by mh_module_v1(). The first five fields never move.
 * All pointers are to static data in the module and must stay valid while it is loaded.
 */
struct mh_module_def {
    uint32_t magic;       /* MH_MODULE_MAGIC */
    uint16_t abi_major;   /* MH_ABI_MAJOR the module was built with */
    uint16_t abi_minor;   /* MH_ABI_MINOR the module was built with */
    uint32_t size;        /* sizeof(struct mh_module_def) the module was built with */
    uint32_t fingerprint; /* MH_BUILD_FINGERPRINT */
    /* --- 1.0 --- */
    const struct mh_api **api;             /* where the core stores its table before init */
    const char *name;                      /* [a-z0-9_]+, the name conf.d uses */
    const char *version;                   /* the module's own version, free text */
    uint32_t flags;                        /* MH_MODULE_* */
    mh_init_fn init;                       /* may be NULL */
    mh_fini_fn fini;                       /* may be NULL */
    const struct mh_handler_def *handlers; /* may be NULL: no handlers */
    const struct mh_setting_def *settings; /* NULL: settings are not checked by the core */
    /* --- 1.1 --- */
    const struct mh_store_driver *drivers; /* store drivers this module provides, or NULL */
    const struct mh_ws_hook_def *ws_hooks; /* WebSocket hooks conf.d can name, or NULL */
    /* --- 1.3: add below this line (1.2 added no field) --- */
};

/* --- 1.1: worker pool --- */

/**
 * Work to run on the worker pool. Thread: a worker thread. May block. Must not touch a request
 * other than through the mh_req calls documented for worker threads.
 */
typedef void (*mh_task_fn)(void *arg);
/**
 * Completion of a task, called once whatever happened.
 * @param status  MH_OK if the work ran; MH_E_CANCELLED if it never ran (server stopping).
 * Thread: the loop thread that submitted the task.
 */
typedef void (*mh_task_done_fn)(void *arg, enum mh_status status);
/**
 * Completion of a request task (mh_req_task). Reply here with the mh_reply* calls.
 * @param status  MH_OK; MH_E_CANCELLED if the client went away or the server is stopping;
 *                MH_E_TIMEOUT if the route's deadline passed. In the last two cases the request
 *                was already answered (or dropped): replies fail with MH_E_CANCELLED, but the
 *                callback still runs so the module can release @p arg.
 * Thread: the request's loop thread.
 */
typedef void (*mh_req_done_fn)(struct mh_req *req, void *arg, enum mh_status status);

/* --- 1.1: stores --- */

/** The longest key any store accepts, in bytes. Keys are bytes (may hold NUL). */
#define MH_STORE_MAX_KEY 1024
/** `expect` for mh_store_put / mh_store_delete: no version condition. */
#define MH_STORE_ANY UINT64_MAX
/** `expect` for mh_store_put: the key must not exist (create only). */
#define MH_STORE_ABSENT 0
/** `expect` for mh_store_put / mh_store_delete: the key must exist, whatever its version.
 *  Versions are below MH_STORE_EXISTS, so neither value is ever a record's version. */
#define MH_STORE_EXISTS (UINT64_MAX - 1)

/** Store capability flags (struct mh_store_driver.caps). */
#define MH_STORE_CAP_CAS    0x1u /* expected versions are honoured atomically */
#define MH_STORE_CAP_SCAN   0x2u /* ordered prefix scans */
#define MH_STORE_CAP_PUBSUB 0x4u /* 1.2: carries channels (subscribe, unsubscribe, publish) */

/**
 * A value read from a store. Versions are positive, unique within a store and increase with
 * every write (a key deleted and written again gets a new, higher version).
 */
struct mh_value {
    void *data; /* caller owns: release with mh_value_free; NUL-terminated for convenience */
    size_t len;
    uint64_t version;
};

/**
 * Called by mh_store_scan for each record, in ascending byte order of keys. All pointers are
 * borrowed for the duration of the call. Return non-zero to stop the scan. The callback may
 * call the store; a scan is not a snapshot (writes made meanwhile may or may not show).
 */
typedef int (*mh_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen,
                          uint64_t version, void *arg);

/* --- 1.2: channels between instances (store drivers) --- */

/**
 * Receives one message from a store's bus (struct mh_store_driver.subscribe).
 * @param msg  Borrowed until the call returns: the bytes one publish call handed over.
 * Thread: a thread of the driver's own (the core's handler is safe on any thread).
 */
typedef void (*mh_bus_fn)(void *arg, const void *msg, size_t len);
/* --- end of 1.2: channels between instances --- */

/**
 * A store driver, provided by a module in its definition's `drivers` array (which ends with an
 * entry whose name is NULL). Stores are opened by the core from conf.d `stores` declarations.
 * Every operation may be called from any thread, concurrently: the driver does its own
 * locking. Failures return a status and set a message with mh_store_set_error.
 */
struct mh_store_driver {
    size_t size;      /* sizeof(struct mh_store_driver) the driver was built with */
    const char *name; /* what conf.d's `driver` names, [a-z0-9_]+ */
    uint32_t caps;    /* MH_STORE_CAP_* */
    /** Opens a store. @p settings: the store's conf.d settings (borrowed until close).
     *  @param db  Out: the driver's handle. @return MH_OK or an error (message set).
     *  Thread: the main thread. */
    enum mh_status (*open)(struct mh_host *host, const struct mh_conf *settings, void **db);
    /** Closes the store after its last use. Thread: the main thread. */
    void (*close)(void *db);
    /** @return MH_OK with @p out filled (data malloc'ed, NUL-terminated); MH_E_NOTFOUND. */
    enum mh_status (*get)(void *db, const void *key, size_t klen, struct mh_value *out);
    /** Writes if @p expect holds (MH_STORE_ANY, MH_STORE_ABSENT, MH_STORE_EXISTS or a
     *  version), atomically.
     *  @param version  Out: the new version. @param created  Out: 1 if the key was new.
     *  @return MH_OK; MH_E_CONFLICT if @p expect did not hold. */
    enum mh_status (*put)(void *db, const void *key, size_t klen, const void *val, size_t vlen,
                          uint64_t expect, uint64_t *version, int *created);
    /** @return MH_OK; MH_E_NOTFOUND; MH_E_CONFLICT if @p expect (a version, MH_STORE_EXISTS
     *  or MH_STORE_ANY) did not hold. */
    enum mh_status (*del)(void *db, const void *key, size_t klen, uint64_t expect);
    /** Records whose key starts with @p prefix and sorts after @p after (if alen > 0), at most
     *  @p limit, in ascending key order. @return MH_OK. */
    enum mh_status (*scan)(void *db, const void *prefix, size_t plen, const void *after,
                           size_t alen, size_t limit, mh_scan_fn fn, void *arg);
    /** The settings a store of this driver accepts (ends with a NULL name), or NULL for no
     *  check. Unknown keys and wrong types are errors with file:line before open runs. */
    const struct mh_setting_def *settings;
    /* --- 1.2: channels between instances (MH_STORE_CAP_PUBSUB; NULL without it) --- */
    /**
     * Starts handing every message published on the store's bus, by any instance sharing the
     * engine (this one included), to @p deliver: each message once while the engine is up,
     * those of one publishing instance in the order it published them. The driver
     * resubscribes by itself after an outage (messages published meanwhile are lost).
     * @return MH_OK; MH_E_NOMEM. Thread: the main thread, once per store until unsubscribe.
     */
    enum mh_status (*subscribe)(void *db, mh_bus_fn deliver, void *arg);
    /** Stops deliveries: when it returns, deliver runs no more. Thread: the main thread. */
    void (*unsubscribe)(void *db);
    /**
     * Queues @p msg (copied) for the bus, in order with this process's other publishes.
     * A message the engine cannot take (it is down) goes to this instance's deliver only,
     * so local members still receive it.
     * @return MH_OK; MH_E_UNAVAILABLE if the queue is full (nothing queued); MH_E_STATE if
     *         not subscribed. Thread: any; never blocks on the network.
     */
    enum mh_status (*publish)(void *db, const void *msg, size_t len);
    /* --- end of 1.2: channels between instances --- */
};

/* --- 1.1: WebSocket --- */

/** Close codes (RFC 6455, section 7.4.1). */
#define MH_WS_NORMAL       1000
#define MH_WS_GOING_AWAY   1001
#define MH_WS_PROTOCOL     1002
#define MH_WS_BAD_DATA     1007
#define MH_WS_POLICY       1008
#define MH_WS_TOO_BIG      1009
#define MH_WS_SERVER_ERROR 1011

/**
 * A client asks to open a WebSocket on an endpoint. The handshake is already valid.
 * @param req  The upgrade request (path parameters, query, headers). Borrowed: valid until the
 *             hook returns.
 * @return MH_OK to accept (unless the hook replied, see below). To refuse with an HTTP answer,
 *         reply with an mh_reply* call (e.g. 401 problem+json) and return MH_OK, or return an
 *         error status (mapped as for handlers).
 * Thread: the connection's loop thread. Must not block.
 */
typedef enum mh_status (*mh_ws_open_fn)(struct mh_ws *ws, struct mh_req *req, void *state);
/**
 * A complete message (fragments joined, text validated as UTF-8).
 * @param data  Borrowed until the hook returns. @param is_binary 0 for text, 1 for binary.
 * Thread: the connection's loop thread. Must not block (use mh_task_submit for that).
 */
typedef void (*mh_ws_message_fn)(struct mh_ws *ws, int is_binary, const void *data, size_t len,
                                 void *state);
/**
 * The connection ended (close handshake, error, timeout, server stop); called exactly once
 * for each accepted connection. @param code  The close code (1006 if the peer vanished).
 * After it returns the connection is gone unless the module holds references.
 * Thread: the connection's loop thread.
 */
typedef void (*mh_ws_close_fn)(struct mh_ws *ws, int code, void *state);

/** A named WebSocket hook; conf.d endpoints name them. Set exactly one of the three functions.
 *  Arrays end with an entry whose name is NULL. */
struct mh_ws_hook_def {
    const char *name;
    mh_ws_open_fn on_open;
    mh_ws_message_fn on_message;
    mh_ws_close_fn on_close;
};

/** Callback for mh_req_headers: return non-zero to stop the walk. */
typedef int (*mh_header_fn)(const char *name, const char *value, void *arg);

/* --- The function table --- */

/** What the core hands a module. Members are appended, never moved or removed. */
struct mh_api {
    size_t size; /* sizeof(struct mh_api) in the core that filled it */

    /* --- 1.0: request --- */

    /** Method as sent ("GET", "POST", ...). Borrowed: valid until the request finishes.
     *  Thread: whichever runs the handler (same for every mh_req call below). */
    const char *(*req_method)(const struct mh_req *req);
    /** Path without the query, as sent (not percent-decoded). Borrowed, as above. */
    const char *(*req_path)(const struct mh_req *req);
    /** Path parameter @p name from the route template, percent-decoded, or NULL.
     *  Borrowed: valid until the request finishes. */
    const char *(*req_param)(const struct mh_req *req, const char *name);
    /** First query parameter @p name, percent-decoded ('+' is a space), or NULL if absent; ""
     *  if present without a value. Borrowed: valid until the request finishes. */
    const char *(*req_query)(struct mh_req *req, const char *name);
    /** First request header @p name (case-insensitive), or NULL. Borrowed, as above. */
    const char *(*req_header)(const struct mh_req *req, const char *name);
    /** Calls @p fn for each request header in order, until it returns non-zero.
     *  @return MH_OK. */
    enum mh_status (*req_headers)(const struct mh_req *req, mh_header_fn fn, void *arg);
    /** Body bytes (not NUL-terminated; NULL with *len 0 if empty). Borrowed: valid until the
     *  request finishes. @p len receives the length. */
    const void *(*req_body)(struct mh_req *req, size_t *len);
    /**
     * Parses the body as JSON (at most the server's `limits.max_json_bytes` and
     * `limits.max_json_depth`).
     * @param out     Set on success; NULL for the JSON document `null`. Borrowed: the request
     *                owns it (take a reference with json_object_get to keep it or to hand it
     *                to mh_reply_json).
     * @param detail  If not NULL, set on failure to a message for people. Borrowed, as above.
     * @return MH_OK; MH_E_INVAL for an empty body or invalid JSON; MH_E_LIMIT if too large or
     *         too deep.
     */
    enum mh_status (*req_json)(struct mh_req *req, struct json_object **out, const char **detail);
    /** @p size bytes, zeroed and aligned for any type, freed with the request. Never NULL
     *  (the process aborts on exhaustion). */
    void *(*req_alloc)(struct mh_req *req, size_t size);
    /** Calls @p fn(@p arg) when the request is finished, in reverse order of registration.
     *  @return MH_OK. Thread: the callback runs on the request's loop thread. */
    enum mh_status (*req_defer)(struct mh_req *req, void (*fn)(void *), void *arg);
    /** A number unique to this request within the server process (also in its log lines). */
    uint64_t (*req_id)(const struct mh_req *req);

    /* --- 1.0: response (at most one mh_reply* call per request) --- */

    /** Adds a response header. Both strings are copied.
     *  @return MH_OK; MH_E_INVAL if the name is not an HTTP token or the value holds CR, LF
     *          or NUL, or the name is one the core sets (Content-Length, Transfer-Encoding,
     *          Connection); MH_E_STATE after a reply. */
    enum mh_status (*resp_header)(struct mh_req *req, const char *name, const char *value);
    /** Replies with @p len bytes of @p body (copied) and @p content_type (copied; NULL sends
     *  none). @return MH_OK; MH_E_INVAL if @p status is outside 200..599; MH_E_STATE if a
     *  reply was already made. */
    enum mh_status (*reply)(struct mh_req *req, int status, const char *content_type,
                            const void *body, size_t len);
    /** Replies with @p body serialized as application/json.
     *  @param body  Consumed: one reference passes to the core, also when the call fails.
     *  @return as mh_reply. */
    enum mh_status (*reply_json)(struct mh_req *req, int status, struct json_object *body);
    /**
     * Replies with application/problem+json (RFC 9457): {type, title, status, detail}.
     * @param type  A URI naming the problem kind (copied), or NULL for "about:blank".
     * @param fmt   printf format for `detail` (copied); NULL for no detail.
     * @return as mh_reply.
     */
    enum mh_status (*reply_problem)(struct mh_req *req, int status, const char *type,
                                    const char *fmt, ...) MH_PRINTF(4, 5);

    /* --- 1.0: logging, settings, errors --- */

    /** Whether a line at @p level would be written. Thread: any. */
    int (*log_enabled)(enum mh_log_level level);
    /** Writes one log line with the module's name; @p host may be NULL (a store driver's own
     *  threads have none), and the line then names no module. Thread: any. */
    void (*log)(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
        MH_PRINTF(3, 4);
    /** Writes one log line with the module's name and the request id. Thread: as req. */
    void (*req_log)(const struct mh_req *req, enum mh_log_level level, const char *fmt, ...)
        MH_PRINTF(3, 4);
    /** Sets the message the core reports when init fails (copied; the last call wins).
     *  @return MH_OK. Thread: init's. */
    enum mh_status (*host_error)(struct mh_host *host, const char *fmt, ...) MH_PRINTF(2, 3);
    /**
     * Reads a setting by @p path ("name" or "group.name") from @p conf.
     * @param out  Set on success; strings are borrowed until fini returns.
     * @return MH_OK; MH_E_NOTFOUND if absent (out untouched); MH_E_INVAL if of another type.
     * Thread: any.
     */
    enum mh_status (*conf_string)(const struct mh_conf *conf, const char *path, const char **out);
    enum mh_status (*conf_int)(const struct mh_conf *conf, const char *path, long long *out);
    enum mh_status (*conf_bool)(const struct mh_conf *conf, const char *path, int *out);
    enum mh_status (*conf_float)(const struct mh_conf *conf, const char *path, double *out);
    /** A short text for @p status ("not found"). Static. Thread: any. */
    const char *(*strerror)(enum mh_status status);

    /* --- 1.1: worker pool and deadlines --- */

    /** Whether the request's client went away, its deadline passed or the server is stopping.
     *  A blocking handler should check it between long steps and give up early.
     *  Thread: any thread that may touch @p req. */
    int (*req_cancelled)(const struct mh_req *req);
    /**
     * Runs @p work on the worker pool, then @p done on this loop thread.
     * @return MH_OK (done will be called exactly once); MH_E_UNAVAILABLE if the queue is full;
     *         MH_E_STATE if not called from a loop thread (nothing will be called).
     * Thread: a loop thread (a handler that is not blocking, a task's done callback).
     */
    enum mh_status (*task_submit)(struct mh_host *host, mh_task_fn work, mh_task_done_fn done,
                                  void *arg);
    /**
     * As task_submit, for a request: the request stays open until @p done has run and replied.
     * Return MH_PENDING from the handler after a successful call. The route's deadline and the
     * client's disconnect apply (see mh_req_done_fn).
     * @return MH_OK; MH_E_UNAVAILABLE if the queue is full (reply 503, or let the core by
     *         returning the status); MH_E_STATE if a reply was already made.
     * Thread: the request's loop thread.
     */
    enum mh_status (*req_task)(struct mh_req *req, mh_task_fn work, mh_req_done_fn done, void *arg);

    /* --- 1.1: stores --- */

    /**
     * The store named @p name among those the module's conf.d entry lists in `stores`, or the
     * first of them if @p name is NULL. @return the store, or NULL if not listed.
     * Borrowed: valid until fini returns. Thread: any.
     */
    struct mh_store *(*store_find)(struct mh_host *host, const char *name);
    /** Reads @p key. @param out  Filled on MH_OK (zeroed otherwise); release with
     *  mh_value_free. Every failure, MH_E_NOTFOUND and MH_E_CONFLICT included, sets
     *  mh_store_error.
     *  @return MH_OK; MH_E_NOTFOUND; MH_E_INVAL (bad key: empty or over MH_STORE_MAX_KEY);
     *          MH_E_UNAVAILABLE / MH_E_IO (see mh_store_error). Thread: any; may block. */
    enum mh_status (*store_get)(struct mh_store *st, const void *key, size_t klen,
                                struct mh_value *out);
    /** Writes @p key if @p expect holds (MH_STORE_ANY, MH_STORE_ABSENT, MH_STORE_EXISTS or a
     *  version; a version on a missing key is a conflict). @param version  Out (may be NULL): the
     * new version. @param created  Out (may be NULL).
     *  @return MH_OK; MH_E_CONFLICT (expectation failed); MH_E_INVAL; MH_E_LIMIT;
     *          MH_E_UNAVAILABLE; MH_E_IO. Thread: any; may block. */
    enum mh_status (*store_put)(struct mh_store *st, const void *key, size_t klen, const void *val,
                                size_t vlen, uint64_t expect, uint64_t *version, int *created);
    /** Deletes @p key if @p expect (MH_STORE_ANY, MH_STORE_EXISTS or a version) holds.
     *  @return MH_OK; MH_E_NOTFOUND; MH_E_CONFLICT; MH_E_INVAL; MH_E_UNAVAILABLE; MH_E_IO.
     *  Thread: any; may block. */
    enum mh_status (*store_delete)(struct mh_store *st, const void *key, size_t klen,
                                   uint64_t expect);
    /** Ordered prefix scan: keys starting with @p prefix, after the cursor key @p after (none
     *  if alen is 0), at most @p limit records. @return MH_OK; MH_E_INVAL; MH_E_UNAVAILABLE;
     *  MH_E_IO. Thread: any; may block. */
    enum mh_status (*store_scan)(struct mh_store *st, const void *prefix, size_t plen,
                                 const void *after, size_t alen, size_t limit, mh_scan_fn fn,
                                 void *arg);
    /** The message of this thread's last failed store call ("" if none). Borrowed until the
     *  next store call on this thread. Thread: any. */
    const char *(*store_error)(void);
    /** For drivers: sets this thread's store error message. Thread: any. */
    void (*store_set_error)(const char *fmt, ...) MH_PRINTF(1, 2);
    /** Releases a value's data (NULL-safe) and clears it. Thread: any. */
    void (*value_free)(struct mh_value *v);

    /* --- 1.1: WebSocket --- */

    /**
     * Queues a message (copied). @param is_binary 0: text (must be UTF-8), 1: binary.
     * @return MH_OK; MH_E_CANCELLED if the connection is closing or gone (nothing sent);
     *         MH_E_INVAL for text that is not UTF-8. A connection whose unsent output passes
     *         the endpoint's max_outbound_bytes is closed with 1008.
     * Thread: any (the send is handed to the connection's loop if needed).
     */
    enum mh_status (*ws_send)(struct mh_ws *ws, int is_binary, const void *data, size_t len);
    /** Starts the close handshake with @p code (1000..4999) and @p reason (copied, <= 123
     *  bytes, may be NULL). @return MH_OK; MH_E_CANCELLED if already closing; MH_E_INVAL.
     *  Thread: any. */
    enum mh_status (*ws_close)(struct mh_ws *ws, int code, const char *reason);
    /** Keeps @p ws valid beyond on_close (e.g. for another thread). Thread: any. */
    void (*ws_ref)(struct mh_ws *ws);
    /** Drops a reference taken with ws_ref. Thread: any. */
    void (*ws_unref)(struct mh_ws *ws);
    /** Per-connection data for the module (NULL until set). Thread: the connection's loop. */
    void (*ws_set_data)(struct mh_ws *ws, void *data);
    void *(*ws_data)(const struct mh_ws *ws);
    /** A number unique to the connection within the process (for logs). Thread: any. */
    uint64_t (*ws_id)(const struct mh_ws *ws);
    /** Path parameter @p name of the upgrade request, or NULL. Borrowed: valid as @p ws.
     *  Thread: any. */
    const char *(*ws_param)(const struct mh_ws *ws, const char *name);
    /**
     * Joins / leaves channel @p channel (copied; 1..255 bytes). A connection leaves all its
     * channels when it closes. @return MH_OK; MH_E_INVAL; MH_E_CANCELLED if closed;
     * MH_E_STATE if not called on the connection's loop thread.
     */
    enum mh_status (*ws_join)(struct mh_ws *ws, const char *channel);
    enum mh_status (*ws_leave)(struct mh_ws *ws, const char *channel);
    /**
     * Sends a message (copied) to every member of @p channel on every loop thread, and (1.2)
     * on every instance when server.channels names a store that carries channels. Messages
     * from one publishing thread arrive in the order they were published.
     * @return MH_OK; MH_E_INVAL (bad channel, text not UTF-8). Thread: any.
     */
    enum mh_status (*ws_publish)(struct mh_host *host, const char *channel, int is_binary,
                                 const void *data, size_t len);

    /* --- 1.1: settings --- */

    /**
     * As conf_string, for a file path: a relative value resolves against the directory of the
     * conf.d file that sets it, so a configuration works from any working directory.
     * @param out  Borrowed: valid as @p conf. @return as conf_string. Thread: any.
     */
    enum mh_status (*conf_path)(const struct mh_conf *conf, const char *path, const char **out);

    /* --- 1.2: module authoring (va_list variants, helpers, bool answers) --- */

    /**
     * As reply_problem, with the detail's arguments in @p ap (the caller owns @p ap and ends
     * it with va_end). @return as mh_reply. Thread: as reply_problem.
     */
    enum mh_status (*reply_problemv)(struct mh_req *req, int status, const char *type,
                                     const char *fmt, va_list ap) MH_VPRINTF(4);
    /** As log, with the arguments in @p ap. Thread: any. */
    void (*logv)(const struct mh_host *host, enum mh_log_level level, const char *fmt, va_list ap)
        MH_VPRINTF(3);
    /** As req_log, with the arguments in @p ap. Thread: as req. */
    void (*req_logv)(const struct mh_req *req, enum mh_log_level level, const char *fmt, va_list ap)
        MH_VPRINTF(3);
    /** As host_error, with the arguments in @p ap. @return MH_OK. Thread: init's. */
    enum mh_status (*host_errorv)(struct mh_host *host, const char *fmt, va_list ap) MH_VPRINTF(2);
    /** As store_set_error, with the arguments in @p ap. Thread: any. */
    void (*store_set_errorv)(const char *fmt, va_list ap) MH_VPRINTF(1);
    /**
     * Whether [@p data, @p data + @p len) is complete, valid UTF-8 (RFC 3629: no overlong
     * forms, no surrogates, nothing above U+10FFFF). NUL bytes are valid. @p data may be NULL
     * when @p len is 0. Thread: any.
     */
    bool (*is_utf8)(const void *data, size_t len);
    /**
     * A monotonic clock in nanoseconds (CLOCK_MONOTONIC): only differences mean something;
     * it never jumps with the wall clock. Thread: any.
     */
    uint64_t (*clock_ns)(void);
    /**
     * Parses the request body as JSON, as req_json does, with the server's JSON size and
     * depth limits applied; on failure it has already replied with problem+json (400 for an
     * empty body or invalid JSON, 413 beyond a limit, the detail naming the problem).
     * @param out  Set on MH_OK; NULL for the JSON document `null`. Borrowed: the request owns
     *             it (take a reference with json_object_get to keep it or to reply with it).
     * @return MH_OK; MH_E_INVAL or MH_E_LIMIT after replying: return it from the handler as
     *         is. MH_E_STATE if a reply was already made (nothing parsed, nothing sent).
     * Thread: as the other mh_req calls.
     */
    enum mh_status (*req_json_body)(struct mh_req *req, struct json_object **out);
    /** Whether the request's client went away, its deadline passed or the server is
     *  stopping (req_cancelled as a bool). Thread: any thread that may touch @p req. */
    bool (*req_is_cancelled)(const struct mh_req *req);
    /** Whether a line at @p level would be written (log_enabled as a bool). Thread: any. */
    bool (*log_is_enabled)(enum mh_log_level level);
    /**
     * The name this instance of the module runs under: the conf.d `instance` key, or the
     * module's name when it has none. A module enabled twice gets two hosts with two names.
     * Borrowed: valid until fini returns. Thread: any.
     */
    const char *(*host_name)(const struct mh_host *host);

    /* --- 1.2: streamed responses --- */
    /**
     * Starts a streamed answer: the status line and headers go out now and the body follows
     * in pieces (chunked transfer coding; to an HTTP/1.0 client the body ends with the close).
     * A content type of "text/event-stream" makes a Server-Sent Events stream: write whole
     * events ("data: ...\n\n"). Headers set before with mh_resp_header go out too. The handler
     * returns MH_PENDING when it goes on writing later (from a timer, a task or another thread);
     * the request lives until mh_stream_end. No route deadline applies once a stream began.
     * @param content_type  Copied; NULL for none.
     * @return MH_OK; MH_E_STATE if a reply or a stream was already made; MH_E_INVAL if
     *         @p status is outside 200..599 (both are misuse: logged, the request answered
     *         500); MH_E_CANCELLED if the client went away.
     * Thread: any thread that may touch @p req (from a worker, the call is handed to the loop).
     */
    enum mh_status (*stream_begin)(struct mh_req *req, int status, const char *content_type);
    /**
     * Queues @p len bytes (copied) as the next piece of the body.
     * @return MH_OK; MH_E_LIMIT if more than 1 MiB of the stream is queued and not yet sent
     *         (nothing was queued: wait for the drain callback, mh_stream_on_drain);
     *         MH_E_CANCELLED if the client went away (call mh_stream_end to let go);
     *         MH_E_STATE if no stream was begun or it ended.
     * Thread: any thread that may touch @p req; one thread's pieces keep their order.
     */
    enum mh_status (*stream_write)(struct mh_req *req, const void *data, size_t len);
    /**
     * Calls @p fn(req, arg) once, on the request's loop, when less than half of the 1 MiB
     * window is queued: after MH_E_LIMIT, the time to write again. Also called when the
     * client went away (mh_stream_write then answers MH_E_CANCELLED).
     * @return MH_OK; MH_E_STATE if no stream is under way. Thread: the request's loop.
     */
    enum mh_status (*stream_on_drain)(struct mh_req *req, void (*fn)(struct mh_req *req, void *arg),
                                      void *arg);
    /**
     * Ends the body. The request is finished once the end is written (and at once if the
     * client is gone): @p req must not be used after this call.
     * @return MH_OK; MH_E_STATE if no stream was begun. Thread: any thread that may touch @p req.
     */
    enum mh_status (*stream_end)(struct mh_req *req);

    /* --- 1.3: the request id as the logs and the client see it --- */

    /**
     * The request id: the client's `X-Request-Id` when it is 1..64 bytes of letters, digits
     * and `- _ . : + / = @`, otherwise one the server made (20 hex digits, unique across
     * processes in practice). The answer carries it in `X-Request-Id`; the access log and
     * every mh_req_log line about the request show it as `req=`. (mh_req_id is a number
     * unique within the process, for keys and maps; this is the one to log or pass on to
     * other services.) Borrowed: valid until the request finishes. Thread: any thread that
     * may touch @p req.
     */
    const char *(*req_request_id)(const struct mh_req *req);

    /* --- 1.4: add below this line --- */
};

/* --- What a module writes --- */

/** The table, set by the core before init. One per module (defined by MH_MODULE). */
extern MH_HIDDEN const struct mh_api *mh_api;

/**
 * Defines the module: expands to the module's definition and its exported entry point. Use it
 * once per module, at file scope, with designated initializers for the 1.0 fields:
 *     MH_MODULE(.name = "hello", .version = "1.0.0", .handlers = hello_handlers);
 */
#define MH_MODULE(...)                                                                        \
    MH_HIDDEN const struct mh_api *mh_api;                                                    \
    static const struct mh_module_def mh_module_def_ = {.magic = MH_MODULE_MAGIC,             \
                                                        .abi_major = MH_ABI_MAJOR,            \
                                                        .abi_minor = MH_ABI_MINOR,            \
                                                        .size = sizeof(struct mh_module_def), \
                                                        .fingerprint = MH_BUILD_FINGERPRINT,  \
                                                        .api = &mh_api,                       \
                                                        __VA_ARGS__};                         \
    MH_EXPORT const struct mh_module_def *mh_module_v1(void);                                 \
    MH_EXPORT const struct mh_module_def *mh_module_v1(void)                                  \
    {                                                                                         \
        return &mh_module_def_;                                                               \
    }

/** The entry symbol's name, as the loader looks it up. */
#define MH_MODULE_SYMBOL "mh_module_v1"

/* Call-site macros: mh_reply_json(req, 200, obj) reads better than mh_api->reply_json(...). */
#define mh_req_method(r)               (mh_api->req_method((r)))
#define mh_req_path(r)                 (mh_api->req_path((r)))
#define mh_req_param(r, n)             (mh_api->req_param((r), (n)))
#define mh_req_query(r, n)             (mh_api->req_query((r), (n)))
#define mh_req_header(r, n)            (mh_api->req_header((r), (n)))
#define mh_req_headers(r, f, a)        (mh_api->req_headers((r), (f), (a)))
#define mh_req_body(r, l)              (mh_api->req_body((r), (l)))
#define mh_req_json(r, o, d)           (mh_api->req_json((r), (o), (d)))
#define mh_req_alloc(r, s)             (mh_api->req_alloc((r), (s)))
#define mh_req_defer(r, f, a)          (mh_api->req_defer((r), (f), (a)))
#define mh_req_id(r)                   (mh_api->req_id((r)))
#define mh_resp_header(r, n, v)        (mh_api->resp_header((r), (n), (v)))
#define mh_reply(r, s, ct, b, l)       (mh_api->reply((r), (s), (ct), (b), (l)))
#define mh_reply_json(r, s, o)         (mh_api->reply_json((r), (s), (o)))
#define mh_reply_problem(r, s, t, ...) (mh_api->reply_problem((r), (s), (t), __VA_ARGS__))
#define mh_host_error(h, ...)          (mh_api->host_error((h), __VA_ARGS__))
#define mh_conf_string(c, p, o)        (mh_api->conf_string((c), (p), (o)))
#define mh_conf_int(c, p, o)           (mh_api->conf_int((c), (p), (o)))
#define mh_conf_bool(c, p, o)          (mh_api->conf_bool((c), (p), (o)))
#define mh_conf_float(c, p, o)         (mh_api->conf_float((c), (p), (o)))
#define mh_conf_path(c, p, o)          (mh_api->conf_path((c), (p), (o)))
#define mh_strerror(s)                 (mh_api->strerror((s)))
#define mh_req_cancelled(r)            (mh_api->req_cancelled((r)))
#define mh_task_submit(h, w, d, a)     (mh_api->task_submit((h), (w), (d), (a)))
#define mh_req_task(r, w, d, a)        (mh_api->req_task((r), (w), (d), (a)))
#define mh_store_find(h, n)            (mh_api->store_find((h), (n)))
#define mh_store_get(s, k, kl, o)      (mh_api->store_get((s), (k), (kl), (o)))
#define mh_store_put(s, k, kl, v, vl, e, ver, c) \
    (mh_api->store_put((s), (k), (kl), (v), (vl), (e), (ver), (c)))
#define mh_store_delete(s, k, kl, e) (mh_api->store_delete((s), (k), (kl), (e)))
#define mh_store_scan(s, p, pl, a, al, lim, f, arg) \
    (mh_api->store_scan((s), (p), (pl), (a), (al), (lim), (f), (arg)))
#define mh_store_error()             (mh_api->store_error())
#define mh_store_set_error(...)      (mh_api->store_set_error(__VA_ARGS__))
#define mh_value_free(v)             (mh_api->value_free((v)))
#define mh_ws_send(w, b, d, l)       (mh_api->ws_send((w), (b), (d), (l)))
#define mh_ws_close(w, c, r)         (mh_api->ws_close((w), (c), (r)))
#define mh_ws_ref(w)                 (mh_api->ws_ref((w)))
#define mh_ws_unref(w)               (mh_api->ws_unref((w)))
#define mh_ws_set_data(w, d)         (mh_api->ws_set_data((w), (d)))
#define mh_ws_data(w)                (mh_api->ws_data((w)))
#define mh_ws_id(w)                  (mh_api->ws_id((w)))
#define mh_ws_param(w, n)            (mh_api->ws_param((w), (n)))
#define mh_ws_join(w, c)             (mh_api->ws_join((w), (c)))
#define mh_ws_leave(w, c)            (mh_api->ws_leave((w), (c)))
#define mh_ws_publish(h, c, b, d, l) (mh_api->ws_publish((h), (c), (b), (d), (l)))
/* 1.2 */
#define mh_reply_problemv(r, s, t, f, ap) (mh_api->reply_problemv((r), (s), (t), (f), (ap)))
#define mh_logv(h, lvl, f, ap)            (mh_api->logv((h), (lvl), (f), (ap)))
#define mh_req_logv(r, lvl, f, ap)        (mh_api->req_logv((r), (lvl), (f), (ap)))
#define mh_host_errorv(h, f, ap)          (mh_api->host_errorv((h), (f), (ap)))
#define mh_store_set_errorv(f, ap)        (mh_api->store_set_errorv((f), (ap)))
#define mh_is_utf8(d, l)                  (mh_api->is_utf8((d), (l)))
#define mh_clock_ns()                     (mh_api->clock_ns())
#define mh_req_json_body(r, o)            (mh_api->req_json_body((r), (o)))
#define mh_req_is_cancelled(r)            (mh_api->req_is_cancelled((r)))
#define mh_log_is_enabled(lvl)            (mh_api->log_is_enabled((lvl)))
#define mh_host_name(h)                   (mh_api->host_name((h)))
#define mh_stream_begin(r, s, t)          (mh_api->stream_begin((r), (s), (t)))
#define mh_stream_write(r, d, l)          (mh_api->stream_write((r), (d), (l)))
#define mh_stream_on_drain(r, f, a)       (mh_api->stream_on_drain((r), (f), (a)))
#define mh_stream_end(r)                  (mh_api->stream_end((r)))
/* 1.3 */
#define mh_req_request_id(r) (mh_api->req_request_id((r)))
/* 1.2 names for 1.0/1.1 calls, kept beside the old ones: getters read "get", store values
 * belong to the store calls, and a request's log call matches mh_log. */
#define mh_ws_get_data(w)      mh_ws_data(w)
#define mh_store_value_free(v) mh_value_free(v)

/** Logs through the core; the arguments are evaluated only if the level is enabled. */
#define mh_log(host, level, ...)                       \
    do {                                               \
        if (mh_api->log_enabled(level))                \
            mh_api->log((host), (level), __VA_ARGS__); \
    } while (0)

/** As mh_log, for a request: adds the request id. */
#define mh_req_logf(req, level, ...)                      \
    do {                                                  \
        if (mh_api->log_enabled(level))                   \
            mh_api->req_log((req), (level), __VA_ARGS__); \
    } while (0)
/** 1.2 name of mh_req_logf, matching mh_log. */
#define mh_req_log(req, level, ...) mh_req_logf(req, level, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* MODHOST_SDK_H */
