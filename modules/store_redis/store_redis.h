/*
 * What the files of the "redis" store driver share: the store, its pooled connections and the
 * calls between the files. Internal to the module: the core and other modules see only the
 * driver table (store_redis.c).
 */
#ifndef MH_STORE_REDIS_H
#define MH_STORE_REDIS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_link.h"
#include "../store_common/store_scan.h"
#include "modhost/sdk.h"

#define POOL_MAX       64
#define PIPELINE_MAX   64
#define MAX_PREFIX     128
#define PASSWORD_BYTES 512

struct bus;

enum script_id { MH_RS_PUT, MH_RS_DEL, MH_RS_SCAN, MH_RS_NSCRIPT };

/* The Lua text of each script (redis_records.c), loaded on every data connection. */
extern const char *const mh_redis_scripts[MH_RS_NSCRIPT];

/* A connection used by one thread at a time: a pooled one while it is (re)made, the bus's. */
struct conn {
    redisContext *rc; /* NULL: not connected */
    uint64_t epoch;   /* link_epoch when it was made */
};

/* A caller waiting on a pooled connection for the reply to the command it sent. */
struct waiter {
    struct waiter *next;
    redisReply *reply; /* with is_done: the reply, or NULL when the connection broke */
    bool is_done;
    pthread_cond_t cv; /* signalled when done, or when it is first and should read */
};

/*
 * A pooled connection, shared by up to `pipeline` callers: each appends its command and waits
 * for its reply; Redis answers a connection's commands in the order they came. A waiter that
 * finds nobody reading reads for all and hands each reply to the waiter it belongs to, waking
 * only that one; once it has its own, it wakes the first still waiting to read next. So a
 * lone caller reads its own reply with no hand-off. Several commands in flight let Redis
 * answer them from one pass of its event loop (one fsync of the append-only file for all
 * their writes) when there are more callers than connections.
 */
struct pconn {
    struct conn io; /* io.rc changes only while is_exclusive, or under pool_mu with no users */
    /* Guarded by the store's pool_mu. */
    unsigned users;    /* callers attached: sending or waiting */
    bool is_exclusive; /* one caller (re)makes it; nobody else attaches */
    bool is_failed;    /* it broke: nobody attaches; the last user drops it */
    /* Guarded by mu. */
    pthread_mutex_t mu;
    bool is_reading;            /* a waiter reads for all (without mu, in read) */
    bool is_broken;             /* as is_failed, for the callers already attached */
    char why[256];              /* what broke it */
    struct waiter *head, *tail; /* replies due, in the order the commands went out */
};

struct rs_store {
    struct link_health link;
    char what[200];
    char *host, *socket, *username;
    char password[PASSWORD_BYTES];
    int port;
    long long db;
    int timeout_ms;
    /* Key names: PREFIX "r:" key, PREFIX "idx", PREFIX "ver". */
    char prefix[MAX_PREFIX + 3];
    size_t plen;
    char idx_key[MAX_PREFIX + 4];
    char ver_key[MAX_PREFIX + 4];
    char sha[MH_RS_NSCRIPT][41]; /* SCRIPT LOAD digests; guarded by mu */
    pthread_mutex_t mu;
    struct pconn *conns; /* pool_size of them */
    size_t nconns;
    unsigned pipeline;       /* commands one connection may carry at once */
    pthread_mutex_t pool_mu; /* guards each pconn's users and flags */
    pthread_cond_t pool_cv;  /* a connection may take another caller (CLOCK_MONOTONIC) */
    struct bus *bus;         /* while subscribed (redis_bus.c); guarded by mu */
};

struct options {
    const char *host, *socket, *username, *password_file, *prefix;
    long long port, db, pool_size, pipeline, timeout_ms;
};

/* --- One connection (redis_conn.c) --- */

/* What went wrong on @p rc (may be NULL), given the errno @p err saved after the call. */
const char *mh_redis_io_error(const redisContext *rc, int err);
/* Drops @p c after a failure of the link. @return MH_E_UNAVAILABLE, message set. */
enum mh_status mh_redis_link_lost(struct link_health *link, struct conn *c, const char *what);
/* Maps an error reply to a status, never MH_OK, with the message set. Frees @p r. */
enum mh_status mh_redis_reply_error(struct rs_store *s, redisReply *r, const char *what);
/* Sends one command (binary-safe arguments). @return MH_OK with *out (caller frees) that is
 * not an error reply; or the failure, message set. */
enum mh_status mh_redis_command(struct rs_store *s, struct conn *c, struct link_health *link,
                                int argc, const char **argv, const size_t *argvlen,
                                const char *what, redisReply **out);
/* Connects @p c: TCP or Unix socket and AUTH; for data (not the bus), SELECT and the
 * scripts. */
enum mh_status mh_redis_dial(struct rs_store *s, struct conn *c, struct link_health *link,
                             bool is_data);
/* Whether connection @p c should be re-made before use (checked without blocking). */
bool mh_redis_conn_is_stale(struct link_health *link, const struct conn *c);

/* --- The pool (redis_pool.c) --- */

/* Attaches the caller to a pooled connection, (re)made if need be. @return MH_OK with *out
 * (mh_redis_conn_release it); MH_E_UNAVAILABLE (message set). */
enum mh_status mh_redis_conn_take(struct rs_store *s, struct pconn **out);
/* Lets go of @p c: the last caller on a connection that broke drops it. */
void mh_redis_conn_release(struct rs_store *s, struct pconn *c);
/* One command on @p c, which the caller is attached to; error replies are failures.
 * @return MH_OK with *out (caller frees); the failure, message set. */
enum mh_status mh_redis_call(struct rs_store *s, struct pconn *c, int argc, const char **argv,
                             const size_t *argvlen, const char *what, redisReply **out);
/* Runs script @p id with @p nargs keys and arguments on a pooled connection. @return MH_OK
 * with *out (caller frees) that is not an error reply; the failure, message set. */
enum mh_status mh_redis_eval(struct rs_store *s, enum script_id id, int nargs, const char **args,
                             const size_t *lens, const char *what, redisReply **out);

/* --- The store contract (redis_records.c) --- */

enum mh_status mh_redis_get(void *arg, const void *key, size_t klen, struct mh_value *out);
enum mh_status mh_redis_put(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
                            uint64_t expect, uint64_t *version, int *created);
enum mh_status mh_redis_del(void *arg, const void *key, size_t klen, uint64_t expect);
enum mh_status mh_redis_scan(void *arg, const void *prefix, size_t plen, const void *after,
                             size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg);

/* --- Settings (redis_settings.c) --- */

extern const struct mh_setting_def mh_redis_settings[];
/* Reads and checks a store's settings into @p o (strings borrowed from @p settings).
 * @return MH_OK; MH_E_INVAL (message set). */
enum mh_status mh_redis_read_options(const struct mh_conf *settings, struct options *o);

/* --- Channels between instances (redis_bus.c) --- */

enum mh_status mh_redis_subscribe(void *db, mh_bus_fn deliver, void *arg);
void mh_redis_unsubscribe(void *db);
enum mh_status mh_redis_publish(void *db, const void *msg, size_t len);

#endif
