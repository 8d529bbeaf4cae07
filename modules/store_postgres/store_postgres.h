/*
 * What the files of the "postgres" store driver share: the store, its connections and the
 * calls between the files. Internal to the module: the core and other modules see only the
 * driver table (store_postgres.c).
 */
#ifndef MH_STORE_POSTGRES_H
#define MH_STORE_POSTGRES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"

#define POOL_MAX       64
#define MAX_TABLE      48 /* leaves room for the sequence's "_ver" within NAMEDATALEN */
#define BYTEA_OID      17
#define INT8_OID       20
#define PASSWORD_BYTES 512

struct bus;

enum stmt_id {
    MH_PG_GET,
    MH_PG_PUT_ANY,
    MH_PG_PUT_ABSENT,
    MH_PG_PUT_EXISTS,
    MH_PG_PUT_VERSION,
    MH_PG_DEL_ANY,
    MH_PG_DEL_VERSION,
    MH_PG_SCAN_FROM,
    MH_PG_SCAN_AFTER,
    MH_PG_NSTMT
};

/* Each statement's parameter count and prepared name (pg_sql.c). */
extern const int mh_pg_stmt_nparams[MH_PG_NSTMT];
extern const char *const mh_pg_stmt_name[MH_PG_NSTMT];

struct conn {
    PGconn *pg;     /* NULL: not connected */
    uint64_t epoch; /* link_epoch when it was made */
};

struct pg_store {
    struct link_health link;
    char what[160];                /* "postgres store 'T' at HOST:PORT" */
    char table[MAX_TABLE + 3];     /* quoted identifier */
    char sequence[MAX_TABLE + 12]; /* quoted, as a string literal for nextval */
    char *sql[MH_PG_NSTMT];
    char *schema_sql;
    /* libpq connection parameters; values are copies owned by the store. */
    const char *keys[16];
    char *values[16];
    int timeout_ms;
    bool is_schema_ready; /* guarded by mu */
    pthread_mutex_t mu;
    struct conn *conns; /* pool_size of them; pool says which are idle */
    size_t nconns;
    struct slot_pool pool;
    struct bus *bus; /* while subscribed (pg_bus.c); guarded by mu */
};

struct options {
    const char *host, *dbname, *user, *password_file, *sslmode, *table;
    long long port, pool_size, timeout_ms;
};

/* --- Connections (pg_conn.c) --- */

/* Sends what libpq buffered and waits for the complete result of one query; NULL with
 * *timed_out or a connection failure. Results after the first are discarded. */
PGresult *mh_pg_await_result(PGconn *pg, int64_t deadline, bool *timed_out);
/* As mh_pg_await_result, for a query string of several statements: whether every one
 * succeeded. */
bool mh_pg_await_all(PGconn *pg, int64_t deadline, bool *timed_out);
/* Drops connection @p c after a failure that concerns @p link (lost, timed out).
 * @return MH_E_UNAVAILABLE with the message set. */
enum mh_status mh_pg_link_lost_on(struct link_health *link, struct conn *c, const char *what,
                                  bool timed_out);
/* mh_pg_link_lost_on for the store's pool. */
enum mh_status mh_pg_link_lost(struct pg_store *s, struct conn *c, const char *what,
                               bool timed_out);
/* Maps a failed result to a status, with the message set. Clears @p r. */
enum mh_status mh_pg_result_failed(struct pg_store *s, struct conn *c, PGresult *r,
                                   const char *what);
/* Connects @p c within @p deadline, non-blocking; a failure counts against @p link. */
enum mh_status mh_pg_conn_connect(struct pg_store *s, struct link_health *link, struct conn *c,
                                  int64_t deadline);
/* Whether connection @p c should be re-made before use (checked without blocking). */
bool mh_pg_conn_is_stale_on(struct link_health *link, const struct conn *c);
/* Takes an idle pooled connection, waiting until @p deadline; makes sure it is connected.
 * @return MH_OK with *out (mh_pg_conn_give it); the failure, message set. */
enum mh_status mh_pg_conn_take(struct pg_store *s, int64_t deadline, struct conn **out);
void mh_pg_conn_give(struct pg_store *s, const struct conn *c);

/* --- The store contract (pg_records.c) --- */

enum mh_status mh_pg_get(void *arg, const void *key, size_t klen, struct mh_value *out);
enum mh_status mh_pg_put(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
                         uint64_t expect, uint64_t *version, int *created);
enum mh_status mh_pg_del(void *arg, const void *key, size_t klen, uint64_t expect);
enum mh_status mh_pg_scan(void *arg, const void *prefix, size_t plen, const void *after,
                          size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg);

/* --- SQL text (pg_sql.c) --- */

/* The quoted names, each statement's SQL and the schema's, for @p table. @return MH_OK;
 * MH_E_NOMEM (message set). */
enum mh_status mh_pg_build_sql(struct pg_store *s, const char *table);

/* --- Settings (pg_settings.c) --- */

extern const struct mh_setting_def mh_pg_settings[];
/* Reads and checks a store's settings into @p o (strings borrowed from @p settings).
 * @return MH_OK; MH_E_INVAL (message set). */
enum mh_status mh_pg_read_options(const struct mh_conf *settings, struct options *o);
/* The libpq connection parameters of @p o, the password file read, into the store.
 * @return MH_OK; MH_E_INVAL, MH_E_NOMEM (message set). */
enum mh_status mh_pg_build_params(struct pg_store *s, const struct options *o);

/* --- Channels between instances (pg_bus.c) --- */

enum mh_status mh_pg_subscribe(void *db, mh_bus_fn deliver, void *arg);
void mh_pg_unsubscribe(void *db);
enum mh_status mh_pg_publish(void *db, const void *msg, size_t len);

#endif
