/*
 * store_redis: the "redis" store driver. A record is a hash (value and version) under the
 * store's key prefix, a sorted set of all keys (score 0, so ordered by bytes) serves ordered
 * scans, and a counter gives versions (redis_records.c). Calls run on the caller's (worker)
 * thread through a pool of hiredis connections, each carrying up to `pipeline` commands at
 * once (redis_pool.c, redis_conn.c); channels go over Redis pub/sub (redis_bus.c). This file
 * opens and closes a store and holds the driver table.
 */
#include "store_redis.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"

static void rs_close(void *arg)
{
    struct rs_store *s = arg;

    if (!s)
        return;
    mh_redis_unsubscribe(s);
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

    if (mh_redis_conn_take(s, &c) != MH_OK)
        return;
    for (int i = 0; i < 2; i++) {
        const char *argv[3] = {"CONFIG", "GET", keys[i]};
        size_t len[3] = {6, 3, strlen(keys[i])};
        redisReply *r = NULL;

        if (mh_redis_call(s, c, 3, argv, len, "CONFIG GET", &r) != MH_OK)
            break; /* CONFIG may be renamed away: nothing to say */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            (void)snprintf(found[i], sizeof(found[i]), "%s", r->element[1]->str);
        freeReplyObject(r);
    }
    mh_redis_conn_release(s, c);
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
    enum mh_status rc = mh_redis_read_options(settings, &o);
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
    rc = mh_redis_conn_take(s, &c);
    if (rc == MH_OK) {
        mh_redis_conn_release(s, c);
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

static const struct mh_store_driver rs_drivers[] = {
    {
        .size = sizeof(struct mh_store_driver),
        .name = "redis",
        .caps = MH_STORE_CAP_CAS | MH_STORE_CAP_SCAN | MH_STORE_CAP_PUBSUB,
        .open = rs_open,
        .close = rs_close,
        .get = mh_redis_get,
        .put = mh_redis_put,
        .del = mh_redis_del,
        .scan = mh_redis_scan,
        .settings = mh_redis_settings,
        .subscribe = mh_redis_subscribe,
        .unsubscribe = mh_redis_unsubscribe,
        .publish = mh_redis_publish,
    },
    {0},
};

static const struct mh_setting_def no_settings[] = {{NULL, 0, NULL}};

MH_MODULE(.name = "store_redis", .version = "1.0.0", .settings = no_settings, .drivers = rs_drivers)
