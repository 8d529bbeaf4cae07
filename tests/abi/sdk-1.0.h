/* FROZEN: SDK 1.0 as released (copy of sdk/include/modhost/sdk.h). Never change this file. */
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
 */
#ifndef MODHOST_SDK_H
#define MODHOST_SDK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MH_ABI_MAJOR 1
#define MH_ABI_MINOR 0

/** First field of every module definition: "mhm1". */
#define MH_MODULE_MAGIC 0x6d686d31u

/**
 * What the module was compiled for: pointer, size_t and time_t sizes and byte order, one byte
 * each. The core refuses a module whose fingerprint differs from its own.
 */
#define MH_BUILD_FINGERPRINT                                                                       \
    ((uint32_t)sizeof(void *) | ((uint32_t)sizeof(size_t) << 8) |                                  \
     ((uint32_t)sizeof(time_t) << 16) |                                                         \
     ((uint32_t)(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 1u : 2u) << 24))

#define MH_EXPORT __attribute__((visibility("default")))
#define MH_HIDDEN __attribute__((visibility("hidden")))
#define MH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* --- Handles: opaque, owned by the core --- */

/** One HTTP exchange. Owned by the core; valid from the handler call until its reply is sent. */
struct mh_req;
/** A loaded module as the core sees it. Valid from init until fini returns. */
struct mh_host;
/** A module's settings group from conf.d. Borrowed: valid until fini returns. */
struct mh_conf;
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
};

enum mh_log_level {
    MH_LOG_ERROR = 0,
    MH_LOG_WARN = 1,
    MH_LOG_INFO = 2,
    MH_LOG_DEBUG = 3
};

/* --- Module definition --- */

/**
 * A request handler. Called for each request routed to it.
 * @param req    Borrowed: valid until the reply is sent (after this function returns).
 * @param state  The pointer the module's init stored, or NULL.
 * @return MH_OK after replying with one of the mh_reply* calls; an error code without a reply
 *         makes the core answer with problem+json (see enum mh_status). MH_OK without a reply
 *         is a bug in the handler; the core answers 500 and logs it.
 * Thread: a loop thread, or a worker thread if the handler is flagged MH_HANDLER_BLOCKING.
 *         Several threads may run the same handler at once: shared state needs locking.
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
    const struct mh_api **api;               /* where the core stores its table before init */
    const char *name;                        /* [a-z0-9_]+, the name conf.d uses */
    const char *version;                     /* the module's own version, free text */
    uint32_t flags;                          /* MH_MODULE_* */
    mh_init_fn init;                         /* may be NULL */
    mh_fini_fn fini;                         /* may be NULL */
    const struct mh_handler_def *handlers;   /* may be NULL: no handlers */
    const struct mh_setting_def *settings;   /* NULL: settings are not checked by the core */
    /* --- 1.1: add below this line --- */
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
     * @param out     Set on success. Borrowed: the request owns it (take a reference with
     *                json_object_get to keep or to hand it to mh_reply_json).
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
    /** Writes one log line with the module's name. Thread: any. */
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

    /* --- 1.1: add below this line --- */
};

/* --- What a module writes --- */

/** The table, set by the core before init. One per module (defined by MH_MODULE). */
extern MH_HIDDEN const struct mh_api *mh_api;

/**
 * Defines the module: expands to the module's definition and its exported entry point. Use it
 * once per module, at file scope, with designated initializers for the 1.0 fields:
 *     MH_MODULE(.name = "hello", .version = "1.0.0", .handlers = hello_handlers);
 */
#define MH_MODULE(...)                                                                             \
    MH_HIDDEN const struct mh_api *mh_api;                                                        \
    static const struct mh_module_def mh_module_def_ = {                                           \
        .magic = MH_MODULE_MAGIC,                                                                  \
        .abi_major = MH_ABI_MAJOR,                                                                 \
        .abi_minor = MH_ABI_MINOR,                                                                 \
        .size = sizeof(struct mh_module_def),                                                      \
        .fingerprint = MH_BUILD_FINGERPRINT,                                                       \
        .api = &mh_api,                                                                            \
        __VA_ARGS__};                                                                              \
    MH_EXPORT const struct mh_module_def *mh_module_v1(void);                                      \
    MH_EXPORT const struct mh_module_def *mh_module_v1(void)                                       \
    {                                                                                              \
        return &mh_module_def_;                                                                    \
    }

/** The entry symbol's name, as the loader looks it up. */
#define MH_MODULE_SYMBOL "mh_module_v1"

/* Call-site macros: mh_reply_json(req, 200, obj) reads better than mh_api->reply_json(...). */
#define mh_req_method(r)              (mh_api->req_method((r)))
#define mh_req_path(r)                (mh_api->req_path((r)))
#define mh_req_param(r, n)            (mh_api->req_param((r), (n)))
#define mh_req_query(r, n)            (mh_api->req_query((r), (n)))
#define mh_req_header(r, n)           (mh_api->req_header((r), (n)))
#define mh_req_headers(r, f, a)       (mh_api->req_headers((r), (f), (a)))
#define mh_req_body(r, l)             (mh_api->req_body((r), (l)))
#define mh_req_json(r, o, d)          (mh_api->req_json((r), (o), (d)))
#define mh_req_alloc(r, s)            (mh_api->req_alloc((r), (s)))
#define mh_req_defer(r, f, a)         (mh_api->req_defer((r), (f), (a)))
#define mh_req_id(r)                  (mh_api->req_id((r)))
#define mh_resp_header(r, n, v)       (mh_api->resp_header((r), (n), (v)))
#define mh_reply(r, s, ct, b, l)      (mh_api->reply((r), (s), (ct), (b), (l)))
#define mh_reply_json(r, s, o)        (mh_api->reply_json((r), (s), (o)))
#define mh_reply_problem(r, s, t, ...) (mh_api->reply_problem((r), (s), (t), __VA_ARGS__))
#define mh_host_error(h, ...)         (mh_api->host_error((h), __VA_ARGS__))
#define mh_conf_string(c, p, o)       (mh_api->conf_string((c), (p), (o)))
#define mh_conf_int(c, p, o)          (mh_api->conf_int((c), (p), (o)))
#define mh_conf_bool(c, p, o)         (mh_api->conf_bool((c), (p), (o)))
#define mh_conf_float(c, p, o)        (mh_api->conf_float((c), (p), (o)))
#define mh_strerror(s)                (mh_api->strerror((s)))

/** Logs through the core; the arguments are evaluated only if the level is enabled. */
#define mh_log(host, level, ...)                                                                   \
    do {                                                                                           \
        if (mh_api->log_enabled(level))                                                            \
            mh_api->log((host), (level), __VA_ARGS__);                                             \
    } while (0)

/** As mh_log, for a request: adds the request id. */
#define mh_req_logf(req, level, ...)                                                               \
    do {                                                                                           \
        if (mh_api->log_enabled(level))                                                            \
            mh_api->req_log((req), (level), __VA_ARGS__);                                          \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif /* MODHOST_SDK_H */
