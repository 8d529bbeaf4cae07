/*
 * The "redis" driver's pool: connections shared by up to `pipeline` callers each, the caller
 * that reads replies for all and hands each to its waiter, a connection that breaks under its
 * callers, and running a script by its digest. Connecting is redis_conn.c's; what the
 * commands mean is redis_records.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_redis.h"

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
void mh_redis_conn_release(struct rs_store *s, struct pconn *c)
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
        rc = mh_redis_dial(s, &c->io, &s->link, true);
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
enum mh_status mh_redis_conn_take(struct rs_store *s, struct pconn **out)
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
    must_make = !c->io.rc || (!c->users && mh_redis_conn_is_stale(&s->link, &c->io));
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
            conn_break(s, c, what, mh_redis_io_error(c->io.rc, errno));
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
enum mh_status mh_redis_call(struct rs_store *s, struct pconn *c, int argc, const char **argv,
                             const size_t *argvlen, const char *what, redisReply **out)
{
    redisReply *r = NULL;
    enum mh_status rc = conn_call(s, c, argc, argv, argvlen, what, &r);

    if (rc != MH_OK)
        return rc;
    if (r->type == REDIS_REPLY_ERROR)
        return mh_redis_reply_error(s, r, what);
    *out = r;
    return MH_OK;
}

/* Runs script @p id with @p nargs keys and arguments (binary-safe) on a pooled connection,
 * by its digest; if the server forgot it (a restart, SCRIPT FLUSH), with its text, which
 * also loads it again. */
enum mh_status mh_redis_eval(struct rs_store *s, enum script_id id, int nargs, const char **args,
                             const size_t *lens, const char *what, redisReply **out)
{
    const char *argv[10];
    size_t argvlen[10];
    char sha[41];
    struct pconn *c;
    redisReply *r = NULL;
    enum mh_status rc = mh_redis_conn_take(s, &c);
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
        argv[1] = mh_redis_scripts[id];
        argvlen[1] = strlen(mh_redis_scripts[id]);
        rc = conn_call(s, c, nargs + 3, argv, argvlen, what, &r);
    }
    mh_redis_conn_release(s, c);
    if (rc != MH_OK)
        return rc;
    if (r->type == REDIS_REPLY_ERROR)
        return mh_redis_reply_error(s, r, what);
    *out = r;
    return MH_OK;
}
