/*
 * store_redis: the "redis" store driver. A record is a hash (value and version) under the
 * store's key prefix, a sorted set of all keys (score 0, so ordered by bytes) serves ordered
 * scans, and a counter gives versions. Every write is one Lua script, so compare-and-set is
 * atomic on the server. Calls run on the caller's (worker) thread through a pool of hiredis
 * connections, each of which carries up to `pipeline` commands at once; each wait is bounded
 * by timeout_ms; lost connections are re-made with backoff. The store can also carry channels
 * between instances over Redis pub/sub (the bus).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_bus.h"
#include "../store_common/store_link.h"
#include "../store_common/store_scan.h"
#include "modhost/sdk.h"

#define POOL_MAX       64
#define PIPELINE_MAX   64
#define MAX_PREFIX     128
#define PASSWORD_BYTES 512

/* KEYS: record, counter, index. ARGV: value, mode (any|absent|exists|ver), expected version,
 * raw key. Returns {1, version, created} or {0, current version or "0"}. */
static const char put_lua[] =
    "local cur = redis.call('HGET', KEYS[1], 'ver')\n"
    "local m = ARGV[2]\n"
    "if m == 'absent' and cur then return {0, cur} end\n"
    "if m ~= 'any' and m ~= 'absent' and not cur then return {0, '0'} end\n"
    "if m == 'ver' and cur ~= ARGV[3] then return {0, cur} end\n"
    "local v = string.format('%d', redis.call('INCR', KEYS[2]))\n"
    "redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', v)\n"
    "if not cur then redis.call('ZADD', KEYS[3], 0, ARGV[4]) end\n"
    "return {1, v, cur and 0 or 1}\n";

/* KEYS: record, index. ARGV: mode (any|ver), expected version, raw key.
 * Returns 1 deleted, 0 no such key, or the current version (a string) on a conflict. */
static const char del_lua[] = "local cur = redis.call('HGET', KEYS[1], 'ver')\n"
                              "if not cur then return 0 end\n"
                              "if ARGV[1] == 'ver' and cur ~= ARGV[2] then return cur end\n"
                              "redis.call('DEL', KEYS[1])\n"
                              "redis.call('ZREM', KEYS[2], ARGV[3])\n"
                              "return 1\n";

/* KEYS: index. ARGV: lexical minimum, count, record key prefix. Returns key, value, version
 * triples in key order: one consistent batch. */
static const char scan_lua[] =
    "local ks = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))\n"
    "local out = {}\n"
    "for _, k in ipairs(ks) do\n"
    "  local r = redis.call('HMGET', ARGV[3] .. k, 'v', 'ver')\n"
    "  if r[2] then out[#out + 1] = k; out[#out + 1] = r[1]; out[#out + 1] = r[2] end\n"
    "end\n"
    "return out\n";

enum script_id { MH_RS_PUT, MH_RS_DEL, MH_RS_SCAN, MH_RS_NSCRIPT };

static const char *const scripts[MH_RS_NSCRIPT] = {put_lua, del_lua, scan_lua};

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
    struct bus *bus;         /* while subscribed; guarded by mu */
};

/* One Redis channel, PREFIX "bus", carries every message (store_bus.h runs the threads): the
 * subscriber hands what it receives to the core; the publisher sends this process's messages
 * in queue order on one connection, so each instance's messages keep their order. */
struct rs_bus {
    struct bus bus; /* first: the ops get it */
    struct rs_store *s;
    char channel[MAX_PREFIX + 4];
    size_t clen;
    struct conn sub, pub; /* each used by its thread only */
};

/* --- Connections --- */

static struct timeval tv_of(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* What went wrong on @p rc (may be NULL), given the errno @p err saved after the call. */
static const char *io_error(const redisContext *rc, int err)
{
    if (rc && rc->err == REDIS_ERR_IO && (err == EAGAIN || err == ETIMEDOUT))
        return "no answer within timeout_ms";
    return rc && rc->errstr[0] ? rc->errstr : "connection lost";
}

/* Drops @p c after a failure of the link. @return MH_E_UNAVAILABLE, message set. */
static enum mh_status link_lost(struct link_health *link, struct conn *c, const char *what)
{
    char msg[256];
    const char *err = io_error(c->rc, errno);

    (void)snprintf(msg, sizeof(msg), "%s: %s", what, err);
    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
    link_failed(link, msg);
    return MH_E_UNAVAILABLE;
}

/* Whether error reply @p r says the server cannot serve for now (loading, failing over). */
static bool is_transient(const redisReply *r)
{
    static const char *const transient[] = {"LOADING",  "BUSY",     "MASTERDOWN",
                                            "TRYAGAIN", "READONLY", "CLUSTERDOWN"};

    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        if (strncmp(r->str, transient[i], strlen(transient[i])) == 0)
            return true;
    }
    return false;
}

/* Maps an error reply to a status, never MH_OK, with the message set. Frees @p r. */
static enum mh_status reply_error(struct rs_store *s, redisReply *r, const char *what)
{
    enum mh_status rc = strncmp(r->str, "OOM", 3) == 0 ? MH_E_LIMIT
                        : is_transient(r)              ? MH_E_UNAVAILABLE
                                                       : MH_E_IO;

    mh_store_set_error("%s: %s: %.*s", s->what, what, (int)r->len, r->str);
    freeReplyObject(r);
    return rc;
}

/* Sends one command (binary-safe arguments). @return MH_OK with *out (caller frees) that is
 * not an error reply; or the failure, message set. */
static enum mh_status command(struct rs_store *s, struct conn *c, struct link_health *link,
                              int argc, const char **argv, const size_t *argvlen, const char *what,
                              redisReply **out)
{
    redisReply *r = redisCommandArgv(c->rc, argc, argv, argvlen);

    if (!r)
        return link_lost(link, c, what);
    if (r->type == REDIS_REPLY_ERROR)
        return reply_error(s, r, what);
    *out = r;
    return MH_OK;
}

static enum mh_status load_scripts(struct rs_store *s, struct conn *c)
{
    for (int i = 0; i < MH_RS_NSCRIPT; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", scripts[i]};
        size_t len[3] = {6, 4, strlen(scripts[i])};
        redisReply *r = NULL;
        enum mh_status rc = command(s, c, &s->link, 3, argv, len, "cannot load a script", &r);

        if (rc != MH_OK)
            return rc;
        if (r->type == REDIS_REPLY_STRING && r->len == 40) {
            pthread_mutex_lock(&s->mu);
            memcpy(s->sha[i], r->str, 40);
            s->sha[i][40] = '\0';
            pthread_mutex_unlock(&s->mu);
        }
        freeReplyObject(r);
    }
    return MH_OK;
}

/* Connects @p c: TCP or Unix socket and AUTH; for data (not the bus), SELECT and the
 * scripts. */
static enum mh_status dial(struct rs_store *s, struct conn *c, struct link_health *link,
                           bool is_data)
{
    struct timeval tv = tv_of(s->timeout_ms);
    enum mh_status rc = MH_OK;
    redisReply *r = NULL;

    c->rc = s->socket ? redisConnectUnixWithTimeout(s->socket, tv)
                      : redisConnectWithTimeout(s->host, s->port, tv);
    if (!c->rc) {
        mh_store_set_error("%s: out of memory connecting", s->what);
        return MH_E_NOMEM;
    }
    if (c->rc->err)
        return link_lost(link, c, "cannot connect");
    if (redisSetTimeout(c->rc, tv) != REDIS_OK)
        return link_lost(link, c, "cannot set the timeout");
    c->epoch = link_epoch(link);
    redisEnableKeepAlive(c->rc);
    if (s->password[0]) {
        const char *argv[3] = {"AUTH", s->username ? s->username : s->password, s->password};
        size_t len[3] = {4, strlen(argv[1]), strlen(s->password)};

        rc = command(s, c, link, s->username ? 3 : 2, argv, len, "cannot authenticate", &r);
        if (rc == MH_OK)
            freeReplyObject(r);
    }
    if (rc == MH_OK && is_data && s->db) {
        char db[24];
        const char *argv[2] = {"SELECT", db};
        size_t len[2] = {6, 0};

        len[1] = (size_t)snprintf(db, sizeof(db), "%lld", s->db);
        rc = command(s, c, link, 2, argv, len, "cannot select the database", &r);
        if (rc == MH_OK)
            freeReplyObject(r);
    }
    if (rc == MH_OK && is_data)
        rc = load_scripts(s, c);
    if (rc != MH_OK && c->rc) {
        redisFree(c->rc);
        c->rc = NULL;
    }
    return rc;
}

/* Whether connection @p c should be re-made before use: made before @p link last failed, or
 * the server sent something while it was idle (a restart closes every client). Checked
 * without blocking before each use. */
static bool conn_is_stale(struct link_health *link, const struct conn *c)
{
    struct pollfd p = {.fd = c->rc->fd, .events = POLLIN};

    return c->rc->err || c->rc->fd < 0 || c->epoch != link_epoch(link) || poll(&p, 1, 0) != 0;
}

/* --- The pool: connections shared by up to `pipeline` callers --- */

/* The best connection for one more caller, or NULL if none may take one: the least busy, and
 * among idle ones a connected one. Called with pool_mu held. */
static struct pconn *pool_pick(struct rs_store *s)
{
    struct pconn *best = NULL;

    for (size_t i = 0; i < s->nconns; i++) {
        struct pconn *c = &s->conns[i];

        if (c->is_exclusive || c->is_failed || c->users >= s->pipeline || (!c->io.rc && c->users))
            continue;
        if (!best || c->users < best->users ||
            (c->users == best->users && c->io.rc && !best->io.rc))
            best = c;
    }
    return best;
}

/* Lets go of @p c: the last caller on a connection that broke drops it. */
static void conn_release(struct rs_store *s, struct pconn *c)
{
    pthread_mutex_lock(&s->pool_mu);
    c->users--;
    if (!c->users && c->is_failed) {
        redisFree(c->io.rc);
        c->io.rc = NULL;
        c->is_failed = false;
    }
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

/* (Re)connects @p c, which this caller holds alone (is_exclusive), then lets others on; on a
 * failure it lets go of it too. */
static enum mh_status conn_remake(struct rs_store *s, struct pconn *c)
{
    enum mh_status rc = MH_E_UNAVAILABLE;

    if (c->io.rc)
        redisFree(c->io.rc);
    c->io.rc = NULL;
    c->is_broken = false;
    c->is_reading = false;
    c->head = c->tail = NULL; /* every caller before got its reply or the failure */
    if (link_gate(&s->link)) {
        rc = dial(s, &c->io, &s->link, true);
        if (rc == MH_OK)
            link_ok(&s->link);
    }
    pthread_mutex_lock(&s->pool_mu);
    c->is_exclusive = false;
    c->is_failed = false;
    if (rc != MH_OK)
        c->users--;
    pthread_cond_broadcast(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
    return rc;
}

/*
 * Attaches the caller to a connection, waiting up to timeout_ms while every connection carries
 * `pipeline` commands; an idle connection that is not connected or went stale is (re)made
 * first. @return MH_OK with *out (conn_release it); MH_E_UNAVAILABLE (message set).
 */
static enum mh_status conn_take(struct rs_store *s, struct pconn **out)
{
    int64_t deadline = link_now_ms() + s->timeout_ms;
    struct timespec until;
    struct pconn *c;
    bool must_make;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += s->timeout_ms / 1000;
    until.tv_nsec += (long)(s->timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->pool_mu);
    while (!(c = pool_pick(s)) && link_now_ms() < deadline &&
           pthread_cond_timedwait(&s->pool_cv, &s->pool_mu, &until) != ETIMEDOUT)
        ;
    if (!c)
        c = pool_pick(s);
    if (!c) {
        pthread_mutex_unlock(&s->pool_mu);
        mh_store_set_error("%s: all %zu connections carried %u commands each for timeout_ms",
                           s->what, s->nconns, s->pipeline);
        return MH_E_UNAVAILABLE;
    }
    /* With no users, nothing is in flight on it: whatever it has to read means the server
     * closed it (a restart closes every client). */
    must_make = !c->io.rc || (!c->users && conn_is_stale(&s->link, &c->io));
    c->users++;
    c->is_exclusive = must_make;
    pthread_mutex_unlock(&s->pool_mu);
    if (must_make) {
        enum mh_status rc = conn_remake(s, c);

        if (rc != MH_OK)
            return rc;
    }
    *out = c;
    return MH_OK;
}

/* Marks @p c broken (with mu held): every waiter gets the failure, nobody new attaches, and the
 * last user drops it. @p err says what went wrong. */
static void conn_break(struct rs_store *s, struct pconn *c, const char *what, const char *err)
{
    if (c->is_broken)
        return;
    (void)snprintf(c->why, sizeof(c->why), "%s: %s", what, err);
    c->is_broken = true;
    if (c->io.rc->fd >= 0)
        (void)shutdown(c->io.rc->fd, SHUT_RDWR); /* wakes a reader in read */
    for (struct waiter *w = c->head; w; w = w->next) {
        w->is_done = true;
        pthread_cond_signal(&w->cv);
    }
    c->head = c->tail = NULL;
    pthread_mutex_lock(&s->pool_mu);
    c->is_failed = true;
    pthread_mutex_unlock(&s->pool_mu);
    link_failed(&s->link, c->why);
}

/* Reads what the server sent on @p c and hands out every complete reply, for all waiters
 * (mu held; released while the read blocks, for at most timeout_ms: SO_RCVTIMEO). */
static void conn_read(struct rs_store *s, struct pconn *c, const char *what)
{
    char buf[16 * 1024];
    int fd = c->io.rc->fd, err;
    void *reply = NULL;
    ssize_t n;

    c->is_reading = true;
    pthread_mutex_unlock(&c->mu);
    do {
        n = read(fd, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    err = errno;
    pthread_mutex_lock(&c->mu);
    c->is_reading = false;
    if (c->is_broken)
        return;
    if (n <= 0) {
        char text[128];

        conn_break(s, c, what,
                   n == 0                              ? "the server closed the connection"
                   : err == EAGAIN || err == ETIMEDOUT ? "no answer within timeout_ms"
                                                       : strerror_r(err, text, sizeof(text)));
        return;
    }
    if (redisReaderFeed(c->io.rc->reader, buf, (size_t)n) != REDIS_OK) {
        conn_break(s, c, what, "out of memory");
        return;
    }
    while (redisGetReplyFromReader(c->io.rc, &reply) == REDIS_OK && reply) {
        struct waiter *w = c->head;

        if (!w) {
            freeReplyObject(reply);
            conn_break(s, c, what, "a reply that no command asked for");
            return;
        }
        c->head = w->next;
        if (!c->head)
            c->tail = NULL;
        w->reply = reply;
        w->is_done = true;
        pthread_cond_signal(&w->cv);
        reply = NULL;
    }
    if (c->io.rc->err)
        conn_break(s, c, what, c->io.rc->errstr); /* a protocol error */
}

/* Queues @p w for the next reply not yet claimed (mu held). It leaves the list, done, before
 * its caller returns: by conn_read or conn_break. */
static void waiter_append(struct pconn *c, struct waiter *w)
{
    if (c->tail)
        c->tail->next = w;
    else
        c->head = w;
    c->tail = w;
}

/*
 * Sends one command (binary-safe arguments) on @p c, which the caller is attached to, and
 * waits for its reply. @return MH_OK with *out (caller frees), which may be an error reply;
 * MH_E_UNAVAILABLE when the connection broke (message set; the caller still releases it).
 */
static enum mh_status conn_call(struct rs_store *s, struct pconn *c, int argc, const char **argv,
                                const size_t *argvlen, const char *what, redisReply **out)
{
    struct waiter w = {0};
    int done = 0;

    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&c->mu);
    if (!c->is_broken && redisAppendCommandArgv(c->io.rc, argc, argv, argvlen) != REDIS_OK)
        conn_break(s, c, what, "out of memory");
    while (!c->is_broken && !done) {
        if (redisBufferWrite(c->io.rc, &done) != REDIS_OK)
            conn_break(s, c, what, io_error(c->io.rc, errno));
    }
    if (!c->is_broken)
        waiter_append(c, &w);
    while (!w.is_done && !c->is_broken) {
        if (c->is_reading)
            pthread_cond_wait(&w.cv, &c->mu);
        else
            conn_read(s, c, what);
    }
    /* Whoever still waits: the first reads next, if nobody does (one wake-up, not all). */
    if (c->head && !c->is_reading)
        pthread_cond_signal(&c->head->cv);
    if (!w.reply)
        mh_store_set_error("%s is unavailable: %s", s->what, c->why);
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&w.cv);
    if (!w.reply)
        return MH_E_UNAVAILABLE;
    *out = w.reply;
    return MH_OK;
}

/* conn_call for commands whose error replies are failures. */
static enum mh_status call(struct rs_store *s, struct pconn *c, int argc, const char **argv,
                           const size_t *argvlen, const char *what, redisReply **out)
{
    redisReply *r = NULL;
    enum mh_status rc = conn_call(s, c, argc, argv, argvlen, what, &r);

    if (rc != MH_OK)
        return rc;
    if (r->type == REDIS_REPLY_ERROR)
        return reply_error(s, r, what);
    *out = r;
    return MH_OK;
}

/* Runs script @p id with @p nargs keys and arguments (binary-safe) on a pooled connection,
 * by its digest; if the server forgot it (a restart, SCRIPT FLUSH), with its text, which
 * also loads it again. */
static enum mh_status eval(struct rs_store *s, enum script_id id, int nargs, const char **args,
                           const size_t *lens, const char *what, redisReply **out)
{
    const char *argv[10];
    size_t argvlen[10];
    char sha[41];
    struct pconn *c;
    redisReply *r = NULL;
    enum mh_status rc = conn_take(s, &c);
    int nkeys = id == MH_RS_PUT ? 3 : id == MH_RS_DEL ? 2 : 1;
    char nk[2] = {(char)('0' + nkeys), '\0'};

    if (rc != MH_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    memcpy(sha, s->sha[id], sizeof(sha));
    pthread_mutex_unlock(&s->mu);
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = sha;
    argvlen[1] = strlen(sha);
    argv[2] = nk;
    argvlen[2] = 1;
    memcpy(argv + 3, args, (size_t)nargs * sizeof(*args));
    memcpy(argvlen + 3, lens, (size_t)nargs * sizeof(*lens));
    rc = conn_call(s, c, nargs + 3, argv, argvlen, what, &r);
    if (rc == MH_OK && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        r = NULL;
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = scripts[id];
        argvlen[1] = strlen(scripts[id]);
        rc = conn_call(s, c, nargs + 3, argv, argvlen, what, &r);
    }
    conn_release(s, c);
    if (rc != MH_OK)
        return rc;
    if (r->type == REDIS_REPLY_ERROR)
        return reply_error(s, r, what);
    *out = r;
    return MH_OK;
}

/* --- Settings --- */

static const struct mh_setting_def rs_settings[] = {
    {"host", MH_SETTING_STRING, "the server's host name or address (default \"127.0.0.1\")"},
    {"port", MH_SETTING_INT, "the server's port, 1..65535 (default 6379)"},
    {"socket", MH_SETTING_STRING,
     "the path of the server's Unix socket, instead of host and port (a relative path "
     "resolves against the directory of the conf.d file)"},
    {"db", MH_SETTING_INT, "the database number, 0..15 by default in Redis (default 0)"},
    {"username", MH_SETTING_STRING, "an ACL user (default: the default user)"},
    {"password_file", MH_SETTING_STRING, LINK_HELP_PASSWORD_FILE},
    {"prefix", MH_SETTING_STRING,
     "what every key of this store starts with, 1..128 bytes (default \"modhost:kv:\")"},
    {"pool_size", MH_SETTING_INT, LINK_HELP_POOL_SIZE},
    {"pipeline", MH_SETTING_INT,
     "commands one connection may carry at once, 1..64 (default 4): when every connection is "
     "busy, a call is sent on the least busy one instead of waiting for one to be free"},
    {"timeout_ms", MH_SETTING_INT,
     "longest wait for a connection, a connect or one command, 1..600000 (default 3000)"},
    {NULL, 0, NULL},
};

static enum mh_status bad_setting(const char *name)
{
    return bad_setting_in(rs_settings, name);
}

struct options {
    const char *host, *socket, *username, *password_file, *prefix;
    long long port, db, pool_size, pipeline, timeout_ms;
};

static enum mh_status read_options(const struct mh_conf *settings, struct options *o)
{
    *o = (struct options){.host = "127.0.0.1",
                          .port = 6379,
                          .prefix = "modhost:kv:",
                          .pool_size = 8,
                          .pipeline = 4,
                          .timeout_ms = 3000};
    if (mh_conf_string(settings, "host", &o->host) == MH_E_INVAL || !o->host[0])
        return bad_setting("host");
    if (mh_conf_int(settings, "port", &o->port) == MH_E_INVAL || o->port < 1 || o->port > 65535)
        return bad_setting("port");
    if (mh_conf_path(settings, "socket", &o->socket) == MH_E_INVAL || (o->socket && !o->socket[0]))
        return bad_setting("socket");
    if (mh_conf_int(settings, "db", &o->db) == MH_E_INVAL || o->db < 0 || o->db > INT32_MAX)
        return bad_setting("db");
    if (mh_conf_string(settings, "username", &o->username) == MH_E_INVAL ||
        (o->username && !o->username[0]))
        return bad_setting("username");
    if (mh_conf_path(settings, "password_file", &o->password_file) == MH_E_INVAL)
        return bad_setting("password_file");
    if (o->username && !o->password_file) {
        mh_store_set_error("setting 'username' needs a 'password_file'");
        return MH_E_INVAL;
    }
    if (mh_conf_string(settings, "prefix", &o->prefix) == MH_E_INVAL || !o->prefix[0] ||
        strlen(o->prefix) > MAX_PREFIX)
        return bad_setting("prefix");
    if (mh_conf_int(settings, "pool_size", &o->pool_size) == MH_E_INVAL || o->pool_size < 1 ||
        o->pool_size > POOL_MAX)
        return bad_setting("pool_size");
    if (mh_conf_int(settings, "pipeline", &o->pipeline) == MH_E_INVAL || o->pipeline < 1 ||
        o->pipeline > PIPELINE_MAX)
        return bad_setting("pipeline");
    if (mh_conf_int(settings, "timeout_ms", &o->timeout_ms) == MH_E_INVAL || o->timeout_ms < 1 ||
        o->timeout_ms > 600000)
        return bad_setting("timeout_ms");
    return MH_OK;
}

/* --- Driver --- */

static void rs_unsubscribe(void *db);

static void rs_close(void *arg)
{
    struct rs_store *s = arg;

    if (!s)
        return;
    rs_unsubscribe(s);
    for (size_t i = 0; i < s->nconns; i++) {
        struct pconn *c = &s->conns[i];

        assert(!c->users);
        if (c->io.rc)
            redisFree(c->io.rc);
        pthread_mutex_destroy(&c->mu);
    }
    free(s->conns);
    memset(s->password, 0, sizeof(s->password));
    free(s->host);
    free(s->socket);
    free(s->username);
    pthread_cond_destroy(&s->pool_cv);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->mu);
    link_cleanup(&s->link);
    free(s);
}

/* Warns once if the server may lose acknowledged writes on a restart (no fsync'ed AOF). */
static void check_durability(struct rs_store *s, struct mh_host *host)
{
    static const char *const keys[2] = {"appendonly", "appendfsync"};
    struct pconn *c;
    char found[2][16] = {"", ""};

    if (conn_take(s, &c) != MH_OK)
        return;
    for (int i = 0; i < 2; i++) {
        const char *argv[3] = {"CONFIG", "GET", keys[i]};
        size_t len[3] = {6, 3, strlen(keys[i])};
        redisReply *r = NULL;

        if (call(s, c, 3, argv, len, "CONFIG GET", &r) != MH_OK)
            break; /* CONFIG may be renamed away: nothing to say */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            (void)snprintf(found[i], sizeof(found[i]), "%s", r->element[1]->str);
        freeReplyObject(r);
    }
    conn_release(s, c);
    if ((found[0][0] && strcmp(found[0], "yes") != 0) ||
        (found[1][0] && strcmp(found[1], "always") != 0))
        mh_log(host, MH_LOG_WARN,
               "%s: appendonly=%s appendfsync=%s: acknowledged writes can be lost when the "
               "server restarts (set appendonly yes and appendfsync always)",
               s->what, found[0], found[1]);
}

static enum mh_status rs_open(struct mh_host *host, const struct mh_conf *settings, void **out)
{
    struct rs_store *s = NULL;
    struct options o;
    enum mh_status rc = read_options(settings, &o);
    pthread_condattr_t monotonic;
    struct pconn *c = NULL;

    if (rc != MH_OK)
        return rc;
    s = calloc(1, sizeof(*s));
    if (!s) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC); /* conn_take's deadline */
    pthread_cond_init(&s->pool_cv, &monotonic);
    pthread_condattr_destroy(&monotonic);
    s->host = strdup(o.host);
    s->socket = o.socket ? strdup(o.socket) : NULL;
    s->username = o.username ? strdup(o.username) : NULL;
    if (!s->host || (o.socket && !s->socket) || (o.username && !s->username)) {
        mh_store_set_error("out of memory");
        rc = MH_E_NOMEM;
        goto out;
    }
    s->port = (int)o.port;
    s->db = o.db;
    s->timeout_ms = (int)o.timeout_ms;
    if (o.socket)
        (void)snprintf(s->what, sizeof(s->what), "redis store '%s' at %s", o.prefix, o.socket);
    else
        (void)snprintf(s->what, sizeof(s->what), "redis store '%s' at %s:%lld", o.prefix, o.host,
                       o.port);
    link_init(&s->link, s->what);
    s->plen = (size_t)snprintf(s->prefix, sizeof(s->prefix), "%sr:", o.prefix);
    (void)snprintf(s->idx_key, sizeof(s->idx_key), "%sidx", o.prefix);
    (void)snprintf(s->ver_key, sizeof(s->ver_key), "%sver", o.prefix);
    if (o.password_file) {
        rc = read_password_file(o.password_file, s->password, sizeof(s->password));
        if (rc != MH_OK)
            goto out;
    }
    s->conns = calloc((size_t)o.pool_size, sizeof(*s->conns));
    if (!s->conns) {
        mh_store_set_error("out of memory");
        rc = MH_E_NOMEM;
        goto out;
    }
    for (; s->nconns < (size_t)o.pool_size; s->nconns++) {
        pthread_mutex_init(&s->conns[s->nconns].mu, NULL);
    }
    s->pipeline = (unsigned)o.pipeline;
    /* A server that refuses (wrong password, no such database) refuses the store; one that
     * cannot be reached is an outage the store rides out. */
    rc = conn_take(s, &c);
    if (rc == MH_OK) {
        conn_release(s, c);
        check_durability(s, host);
    } else if (rc == MH_E_UNAVAILABLE) {
        rc = MH_OK;
    } else {
        goto out;
    }
    mh_log(host, MH_LOG_INFO, "%s: pool_size=%lld pipeline=%lld timeout_ms=%lld%s", s->what,
           o.pool_size, o.pipeline, o.timeout_ms, c ? "" : " (not reachable yet)");
    *out = s;
    s = NULL;
out:
    rs_close(s);
    return rc;
}

/* The record key of @p key in @p buf (at least plen + klen bytes). */
static size_t record_key(const struct rs_store *s, char *buf, const void *key, size_t klen)
{
    memcpy(buf, s->prefix, s->plen);
    memcpy(buf + s->plen, key, klen);
    return s->plen + klen;
}

static uint64_t reply_u64(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return (uint64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

static enum mh_status rs_get(void *arg, const void *key, size_t klen, struct mh_value *out)
{
    struct rs_store *s = arg;
    char rkey[MAX_PREFIX + 3 + MH_STORE_MAX_KEY];
    const char *argv[4] = {"HMGET", rkey, "v", "ver"};
    size_t len[4] = {5, record_key(s, rkey, key, klen), 1, 3};
    redisReply *r = NULL;
    struct pconn *c;
    enum mh_status rc = conn_take(s, &c);

    if (rc != MH_OK)
        return rc;
    rc = call(s, c, 4, argv, len, "cannot read", &r);
    conn_release(s, c);
    if (rc != MH_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        mh_store_set_error("no such key (%zu bytes)", klen);
        return MH_E_NOTFOUND;
    }
    out->data = malloc(r->element[0]->len + 1);
    if (!out->data) {
        freeReplyObject(r);
        mh_store_set_error("out of memory copying a value");
        return MH_E_NOMEM;
    }
    memcpy(out->data, r->element[0]->str, r->element[0]->len);
    ((char *)out->data)[r->element[0]->len] = '\0';
    out->len = r->element[0]->len;
    out->version = reply_u64(r->element[1]);
    freeReplyObject(r);
    return MH_OK;
}

static enum mh_status rs_put(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
                             uint64_t expect, uint64_t *version, int *created)
{
    struct rs_store *s = arg;
    char rkey[MAX_PREFIX + 3 + MH_STORE_MAX_KEY], ver[24];
    const char *mode = expect == MH_STORE_ANY      ? "any"
                       : expect == MH_STORE_ABSENT ? "absent"
                       : expect == MH_STORE_EXISTS ? "exists"
                                                   : "ver";
    size_t verlen = (size_t)snprintf(ver, sizeof(ver), "%" PRIu64, expect);
    const char *args[7] = {rkey, s->ver_key, s->idx_key, vlen ? val : "", mode, ver, key};
    size_t lens[7] = {record_key(s, rkey, key, klen),
                      strlen(s->ver_key),
                      strlen(s->idx_key),
                      vlen,
                      strlen(mode),
                      verlen,
                      klen};
    redisReply *r = NULL;
    enum mh_status rc = eval(s, MH_RS_PUT, 7, args, lens, "cannot write", &r);

    if (rc != MH_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        freeReplyObject(r);
        mh_store_set_error("%s: unexpected reply to a write", s->what);
        return MH_E_IO;
    }
    if (reply_u64(r->element[0]) == 0) {
        uint64_t cur = reply_u64(r->element[1]);

        freeReplyObject(r);
        if (cur == 0)
            mh_store_set_error("expected %s, but the key does not exist",
                               expect == MH_STORE_EXISTS ? "an existing key" : "a version");
        else if (expect == MH_STORE_ABSENT)
            mh_store_set_error("the key exists (version %" PRIu64 ")", cur);
        else
            mh_store_set_error("expected version %" PRIu64 ", found %" PRIu64, expect, cur);
        return MH_E_CONFLICT;
    }
    *version = reply_u64(r->element[1]);
    *created = r->elements > 2 && reply_u64(r->element[2]) == 1;
    freeReplyObject(r);
    return MH_OK;
}

static enum mh_status rs_del(void *arg, const void *key, size_t klen, uint64_t expect)
{
    struct rs_store *s = arg;
    char rkey[MAX_PREFIX + 3 + MH_STORE_MAX_KEY], ver[24];
    const char *mode = expect == MH_STORE_ANY || expect == MH_STORE_EXISTS ? "any" : "ver";
    size_t verlen = (size_t)snprintf(ver, sizeof(ver), "%" PRIu64, expect);
    const char *args[5] = {rkey, s->idx_key, mode, ver, key};
    size_t lens[5] = {record_key(s, rkey, key, klen), strlen(s->idx_key), strlen(mode), verlen,
                      klen};
    redisReply *r = NULL;
    enum mh_status rc = eval(s, MH_RS_DEL, 5, args, lens, "cannot delete", &r);

    if (rc != MH_OK)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        rc = MH_OK;
    } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        mh_store_set_error("no such key (%zu bytes)", klen);
        rc = MH_E_NOTFOUND;
    } else {
        mh_store_set_error("expected version %" PRIu64 ", found %" PRIu64, expect, reply_u64(r));
        rc = MH_E_CONFLICT;
    }
    freeReplyObject(r);
    return rc;
}

/* --- Scans --- */

/* The ZRANGEBYLEX lower bound in @p buf (1 + @p slen bytes): every key, the keys from
 * @p start, or those after it. @return its length. */
static size_t lex_min(char *buf, const void *start, size_t slen, bool exclusive)
{
    if (!exclusive && slen == 0) {
        buf[0] = '-';
        return 1;
    }
    buf[0] = exclusive ? '(' : '[';
    memcpy(buf + 1, start, slen);
    return 1 + slen;
}

static enum mh_status collect(void *arg, const void *prefix, size_t plen, const void *start,
                              size_t slen, bool exclusive, size_t want, struct batch *b)
{
    struct rs_store *s = arg;
    char min[1 + MH_STORE_MAX_KEY], count[24];
    const char *args[4] = {s->idx_key, min, count, s->prefix};
    size_t lens[4] = {strlen(s->idx_key), 0, 0, s->plen};
    redisReply *r = NULL;
    enum mh_status rc;
    size_t bytes = 0, i;

    if (want > SCAN_BATCH_RECORDS)
        want = SCAN_BATCH_RECORDS;
    b->is_last = false;
    lens[1] = lex_min(min, start, slen, exclusive);
    lens[2] = (size_t)snprintf(count, sizeof(count), "%zu", want);
    rc = eval(s, MH_RS_SCAN, 4, args, lens, "cannot scan", &r);
    if (rc != MH_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0) {
        freeReplyObject(r);
        mh_store_set_error("%s: unexpected reply to a scan", s->what);
        return MH_E_IO;
    }
    for (i = 0; i + 2 < r->elements && bytes < SCAN_BATCH_BYTES; i += 3) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        struct rec *rec = &b->recs[b->n];

        if (k->len < plen || memcmp(k->str, prefix, plen) != 0) {
            b->is_last = true; /* past the prefix: no later key has it */
            break;
        }
        rec->key = malloc(k->len + v->len + 1);
        if (!rec->key) {
            freeReplyObject(r);
            mh_store_set_error("out of memory copying scan results");
            return MH_E_NOMEM;
        }
        memcpy(rec->key, k->str, k->len);
        memcpy(rec->key + k->len, v->str, v->len);
        rec->klen = k->len;
        rec->vlen = v->len;
        rec->version = reply_u64(r->element[i + 2]);
        b->n++;
        bytes += k->len + v->len;
    }
    /* A short batch is the end, unless records vanished between the index and their hash
     * (never inside one script) or the byte budget cut it. */
    if (i >= r->elements && r->elements / 3 < want)
        b->is_last = true;
    freeReplyObject(r);
    return MH_OK;
}

static enum mh_status rs_scan(void *arg, const void *prefix, size_t plen, const void *after,
                              size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg)
{
    return store_scan_pages(arg, collect, prefix, plen, after, alen, limit, fn, fn_arg);
}

/* --- The bus --- */

static struct rs_bus *rs_bus_of(struct bus *b)
{
    return (struct rs_bus *)b; /* its first member */
}

/* Subscribes @p c to the bus channel; @return MH_OK once the server confirmed. */
static enum mh_status bus_subscribe_conn(struct rs_bus *b, struct conn *c)
{
    const char *argv[2] = {"SUBSCRIBE", b->channel};
    size_t len[2] = {9, b->clen};
    redisReply *r = NULL;
    enum mh_status rc = command(b->s, c, &b->bus.sub_link, 2, argv, len, "cannot subscribe", &r);

    if (rc == MH_OK)
        freeReplyObject(r);
    return rc;
}

static enum mh_status bus_listen(struct bus *bus)
{
    struct rs_bus *b = rs_bus_of(bus);
    enum mh_status rc = dial(b->s, &b->sub, &bus->sub_link, false);

    return rc == MH_OK ? bus_subscribe_conn(b, &b->sub) : rc;
}

static int bus_listen_fd(struct bus *bus)
{
    const struct rs_bus *b = rs_bus_of(bus);

    return b->sub.rc ? b->sub.rc->fd : -1;
}

/* Hands every complete reply buffered on the subscriber's connection to the core. */
static void bus_drain(struct rs_bus *b)
{
    void *reply = NULL;

    while (redisGetReplyFromReader(b->sub.rc, &reply) == REDIS_OK && reply) {
        const redisReply *r = reply;

        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
            b->bus.deliver(b->bus.arg, r->element[2]->str, r->element[2]->len);
        freeReplyObject(reply);
        reply = NULL;
    }
}

static void bus_receive(struct bus *bus)
{
    struct rs_bus *b = rs_bus_of(bus);

    if (redisBufferRead(b->sub.rc) != REDIS_OK) {
        link_lost(&bus->sub_link, &b->sub, "the subscription ended");
        return;
    }
    bus_drain(b);
}

/* Sends @p list in order, pipelined; what the server did not take goes to this instance
 * only. Frees the list. */
static void bus_send(struct bus *bus, struct bus_msg *list)
{
    struct rs_bus *b = rs_bus_of(bus);
    struct conn *c = &b->pub;
    size_t sent = 0, acked = 0;

    if (c->rc && conn_is_stale(&bus->pub_link, c)) { /* closed by a restart while idle */
        redisFree(c->rc);
        c->rc = NULL;
    }
    if (!c->rc && link_gate(&bus->pub_link)) {
        if (dial(b->s, c, &bus->pub_link, false) == MH_OK)
            link_ok(&bus->pub_link);
    }
    for (struct bus_msg *m = list; c->rc && m; m = m->next) {
        const char *argv[3] = {"PUBLISH", b->channel, (const char *)m->data};
        size_t len[3] = {7, b->clen, m->len};

        if (redisAppendCommandArgv(c->rc, 3, argv, len) != REDIS_OK)
            break;
        sent++;
    }
    for (; c->rc && acked < sent; acked++) {
        void *reply = NULL;

        if (redisGetReply(c->rc, &reply) != REDIS_OK) {
            link_lost(&bus->pub_link, c, "cannot publish");
            break;
        }
        freeReplyObject(reply);
    }
    bus_settle(bus, list, NULL, acked);
}

static void bus_close(struct bus *bus, bool is_sub)
{
    struct rs_bus *b = rs_bus_of(bus);
    struct conn *c = is_sub ? &b->sub : &b->pub;

    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
}

static void bus_free(struct bus *bus)
{
    free(rs_bus_of(bus));
}

static const struct bus_ops rs_bus_ops = {
    .listen = bus_listen,
    .listen_fd = bus_listen_fd,
    .receive = bus_receive,
    .send = bus_send,
    .close = bus_close,
    .free = bus_free,
    .subscribed = "subscribed",
};

static enum mh_status rs_subscribe(void *db, mh_bus_fn deliver, void *arg)
{
    struct rs_store *s = db;
    struct rs_bus *b = calloc(1, sizeof(*b));

    if (b) {
        b->s = s;
        b->clen = (size_t)snprintf(b->channel, sizeof(b->channel), "%.*sbus", (int)(s->plen - 2),
                                   s->prefix);
    }
    /* The bus is b's first member (NULL stays NULL). */
    return bus_subscribe(&s->mu, &s->bus, (struct bus *)b, &rs_bus_ops, s->what, deliver, arg);
}

static void rs_unsubscribe(void *db)
{
    struct rs_store *s = db;

    bus_unsubscribe(&s->mu, &s->bus);
}

static enum mh_status rs_publish(void *db, const void *msg, size_t len)
{
    struct rs_store *s = db;

    return bus_publish(&s->mu, &s->bus, msg, len, s->what);
}

static const struct mh_store_driver rs_drivers[] = {
    {
        .size = sizeof(struct mh_store_driver),
        .name = "redis",
        .caps = MH_STORE_CAP_CAS | MH_STORE_CAP_SCAN | MH_STORE_CAP_PUBSUB,
        .open = rs_open,
        .close = rs_close,
        .get = rs_get,
        .put = rs_put,
        .del = rs_del,
        .scan = rs_scan,
        .settings = rs_settings,
        .subscribe = rs_subscribe,
        .unsubscribe = rs_unsubscribe,
        .publish = rs_publish,
    },
    {0},
};

static const struct mh_setting_def no_settings[] = {{NULL, 0, NULL}};

MH_MODULE(.name = "store_redis", .version = "1.0.0", .settings = no_settings, .drivers = rs_drivers)
