/*
 * store_postgres: the "postgres" store driver. One table per store (created if missing) and a
 * sequence for versions (pg_sql.c), reached through a pool of libpq connections with prepared
 * statements, each call bounded by timeout_ms so an unreachable server costs a bounded wait and
 * MH_E_UNAVAILABLE, never a hang (pg_conn.c, pg_records.c); channels go over LISTEN/NOTIFY
 * (pg_bus.c). This file opens and closes a store and holds the driver table.
 */
#include "store_postgres.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"

static void pg_close(void *arg)
{
    struct pg_store *s = arg;

    if (!s)
        return;
    mh_pg_unsubscribe(s);
    for (size_t i = 0; s->conns && i < s->nconns; i++)
        PQfinish(s->conns[i].pg);
    free(s->conns);
    for (size_t i = 0; i < sizeof(s->values) / sizeof(s->values[0]); i++) {
        if (s->values[i] && s->keys[i] && strcmp(s->keys[i], "password") == 0)
            memset(s->values[i], 0, strlen(s->values[i]));
        free(s->values[i]);
    }
    for (int i = 0; i < MH_PG_NSTMT; i++)
        free(s->sql[i]);
    free(s->schema_sql);
    pool_cleanup(&s->pool);
    pthread_mutex_destroy(&s->mu);
    link_cleanup(&s->link);
    free(s);
}

static enum mh_status pg_open(struct mh_host *host, const struct mh_conf *settings, void **out)
{
    struct pg_store *s = NULL;
    struct options o;
    enum mh_status rc = mh_pg_read_options(settings, &o);
    struct conn *c = NULL;

    if (rc != MH_OK)
        return rc;
    s = calloc(1, sizeof(*s));
    if (!s) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    (void)snprintf(s->what, sizeof(s->what), "postgres store '%s' at %s:%lld", o.table, o.host,
                   o.port);
    link_init(&s->link, s->what);
    s->timeout_ms = (int)o.timeout_ms;
    rc = mh_pg_build_params(s, &o);
    if (rc == MH_OK)
        rc = mh_pg_build_sql(s, o.table);
    if (rc != MH_OK)
        goto out;
    s->conns = calloc((size_t)o.pool_size, sizeof(*s->conns));
    if (!s->conns) {
        mh_store_set_error("out of memory");
        rc = MH_E_NOMEM;
        goto out;
    }
    s->nconns = (size_t)o.pool_size;
    rc = pool_init(&s->pool, s->nconns);
    if (rc != MH_OK)
        goto out;
    /* One connection now: a server that answers with a refusal (no such role or database,
     * a wrong password, no permission to create the table) refuses the store; one that cannot
     * be reached is an outage the store rides out, so that instances may start first. */
    rc = mh_pg_conn_take(s, link_now_ms() + s->timeout_ms, &c);
    if (rc == MH_OK) {
        mh_pg_conn_give(s, c);
    } else if (rc == MH_E_UNAVAILABLE && !strstr(mh_store_error(), "FATAL")) {
        rc = MH_OK;
    } else {
        goto out;
    }
    mh_log(host, MH_LOG_INFO, "%s: pool_size=%lld timeout_ms=%lld sslmode=%s%s", s->what,
           o.pool_size, o.timeout_ms, o.sslmode, c ? "" : " (not reachable yet)");
    *out = s;
    s = NULL;
out:
    pg_close(s);
    return rc;
}

static const struct mh_store_driver pg_drivers[] = {
    {
        .size = sizeof(struct mh_store_driver),
        .name = "postgres",
        .caps = MH_STORE_CAP_CAS | MH_STORE_CAP_SCAN | MH_STORE_CAP_PUBSUB,
        .open = pg_open,
        .close = pg_close,
        .get = mh_pg_get,
        .put = mh_pg_put,
        .del = mh_pg_del,
        .scan = mh_pg_scan,
        .settings = mh_pg_settings,
        .subscribe = mh_pg_subscribe,
        .unsubscribe = mh_pg_unsubscribe,
        .publish = mh_pg_publish,
    },
    {0},
};

/* The module takes no settings of its own; each store has its own, read in pg_open. It stays
 * mapped after fini (no MH_MODULE_UNLOAD_SAFE): libpq and OpenSSL keep process-wide state. */
static const struct mh_setting_def no_settings[] = {{NULL, 0, NULL}};

MH_MODULE(.name = "store_postgres", .version = "1.0.0", .settings = no_settings,
          .drivers = pg_drivers)
