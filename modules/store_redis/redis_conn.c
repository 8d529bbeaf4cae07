/*
 * One connection of the "redis" driver: connecting (socket, AUTH, SELECT, the scripts), a
 * command sent and answered on a connection one thread uses, mapping error replies to
 * statuses, and noticing a stale connection. Sharing connections is redis_pool.c's; the link's
 * health and backoff are store_link.h's.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_redis.h"

/* --- Connections --- */

static struct timeval tv_of(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* What went wrong on @p rc (may be NULL), given the errno @p err saved after the call. */
const char *mh_redis_io_error(const redisContext *rc, int err)
{
    if (rc && rc->err == REDIS_ERR_IO && (err == EAGAIN || err == ETIMEDOUT))
        return "no answer within timeout_ms";
    return rc && rc->errstr[0] ? rc->errstr : "connection lost";
}

/* Drops @p c after a failure of the link. @return MH_E_UNAVAILABLE, message set. */
enum mh_status mh_redis_link_lost(struct link_health *link, struct conn *c, const char *what)
{
    char msg[256];
    const char *err = mh_redis_io_error(c->rc, errno);

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
enum mh_status mh_redis_reply_error(struct rs_store *s, redisReply *r, const char *what)
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
enum mh_status mh_redis_command(struct rs_store *s, struct conn *c, struct link_health *link,
                                int argc, const char **argv, const size_t *argvlen,
                                const char *what, redisReply **out)
{
    redisReply *r = redisCommandArgv(c->rc, argc, argv, argvlen);

    if (!r)
        return mh_redis_link_lost(link, c, what);
    if (r->type == REDIS_REPLY_ERROR)
        return mh_redis_reply_error(s, r, what);
    *out = r;
    return MH_OK;
}

static enum mh_status load_scripts(struct rs_store *s, struct conn *c)
{
    for (int i = 0; i < MH_RS_NSCRIPT; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", mh_redis_scripts[i]};
        size_t len[3] = {6, 4, strlen(mh_redis_scripts[i])};
        redisReply *r = NULL;
        enum mh_status rc =
            mh_redis_command(s, c, &s->link, 3, argv, len, "cannot load a script", &r);

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
enum mh_status mh_redis_dial(struct rs_store *s, struct conn *c, struct link_health *link,
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
        return mh_redis_link_lost(link, c, "cannot connect");
    if (redisSetTimeout(c->rc, tv) != REDIS_OK)
        return mh_redis_link_lost(link, c, "cannot set the timeout");
    c->epoch = link_epoch(link);
    redisEnableKeepAlive(c->rc);
    if (s->password[0]) {
        const char *argv[3] = {"AUTH", s->username ? s->username : s->password, s->password};
        size_t len[3] = {4, strlen(argv[1]), strlen(s->password)};

        rc =
            mh_redis_command(s, c, link, s->username ? 3 : 2, argv, len, "cannot authenticate", &r);
        if (rc == MH_OK)
            freeReplyObject(r);
    }
    if (rc == MH_OK && is_data && s->db) {
        char db[24];
        const char *argv[2] = {"SELECT", db};
        size_t len[2] = {6, 0};

        len[1] = (size_t)snprintf(db, sizeof(db), "%lld", s->db);
        rc = mh_redis_command(s, c, link, 2, argv, len, "cannot select the database", &r);
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
bool mh_redis_conn_is_stale(struct link_health *link, const struct conn *c)
{
    struct pollfd p = {.fd = c->rc->fd, .events = POLLIN};

    return c->rc->err || c->rc->fd < 0 || c->epoch != link_epoch(link) || poll(&p, 1, 0) != 0;
}
