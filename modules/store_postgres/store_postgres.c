/*
 * store_postgres: the "postgres" store driver. One table per store (created if missing) and a
 * sequence for versions, reached through a pool of libpq connections with prepared
 * statements. Calls run on the caller's (worker) thread with libpq's non-blocking API and
 * poll(), bounded by the store's timeout_ms, so an unreachable server costs a bounded wait and
 * MH_E_UNAVAILABLE, never a hang. Lost connections are re-made with backoff (store_link.h).
 * The store can also carry channels between instances over LISTEN/NOTIFY (the bus).
 */
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
#include <unistd.h>

#include <libpq-fe.h>

#include "../store_common/store_bus.h"
#include "../store_common/store_link.h"
#include "../store_common/store_scan.h"
#include "modhost/sdk.h"

#define POOL_MAX       64
#define MAX_TABLE      48 /* leaves room for the sequence's "_ver" within NAMEDATALEN */
#define BYTEA_OID      17
#define INT8_OID       20
#define PASSWORD_BYTES 512

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

/* @T stands for the quoted table, @S for the quoted sequence as a string literal. */
static const char *const stmt_sql[MH_PG_NSTMT] = {
    [MH_PG_GET] = "SELECT v, ver FROM @T WHERE k = $1",
    /* xmax is 0 on a freshly inserted row version, the updater's id on an update. */
    [MH_PG_PUT_ANY] = "INSERT INTO @T AS r (k, v, ver) VALUES ($1, $2, nextval(@S))"
                      " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, ver = EXCLUDED.ver"
                      " RETURNING r.ver, r.xmax = 0",
    [MH_PG_PUT_ABSENT] = "INSERT INTO @T (k, v, ver) VALUES ($1, $2, nextval(@S))"
                         " ON CONFLICT (k) DO NOTHING RETURNING ver, true",
    [MH_PG_PUT_EXISTS] = "UPDATE @T SET v = $2, ver = nextval(@S) WHERE k = $1"
                         " RETURNING ver, false",
    [MH_PG_PUT_VERSION] = "UPDATE @T SET v = $2, ver = nextval(@S) WHERE k = $1 AND ver = $3"
                          " RETURNING ver, false",
    [MH_PG_DEL_ANY] = "DELETE FROM @T WHERE k = $1 RETURNING ver",
    /* The statement's snapshot sees the row before its own delete: found tells a missing key
     * from another version. */
    [MH_PG_DEL_VERSION] = "WITH d AS (DELETE FROM @T WHERE k = $1 AND ver = $2 RETURNING 1)"
                          " SELECT (SELECT count(*) FROM d),"
                          " EXISTS (SELECT 1 FROM @T WHERE k = $1)",
    [MH_PG_SCAN_FROM] = "SELECT k, v, ver FROM @T WHERE k >= $1 ORDER BY k LIMIT $2",
    [MH_PG_SCAN_AFTER] = "SELECT k, v, ver FROM @T WHERE k > $1 ORDER BY k LIMIT $2",
};

static const int stmt_nparams[MH_PG_NSTMT] = {
    [MH_PG_GET] = 1,         [MH_PG_PUT_ANY] = 2,     [MH_PG_PUT_ABSENT] = 2,
    [MH_PG_PUT_EXISTS] = 2,  [MH_PG_PUT_VERSION] = 3, [MH_PG_DEL_ANY] = 1,
    [MH_PG_DEL_VERSION] = 2, [MH_PG_SCAN_FROM] = 2,   [MH_PG_SCAN_AFTER] = 2,
};

static const char *const stmt_name[MH_PG_NSTMT] = {
    "mh_get",     "mh_put_any",     "mh_put_absent", "mh_put_exists", "mh_put_version",
    "mh_del_any", "mh_del_version", "mh_scan_from",  "mh_scan_after",
};

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
    struct bus *bus; /* while subscribed; guarded by mu */
};

struct options {
    const char *host, *dbname, *user, *password_file, *sslmode, *table;
    long long port, pool_size, timeout_ms;
};

/* --- Waiting on a connection with a deadline --- */

/* Waits until the connection's socket is ready for @p events or @p deadline (ms) passes.
 * @return 1 ready, 0 timed out, -1 error (message in @p why). */
static int wait_socket(PGconn *pg, short events, int64_t deadline, const char **why)
{
    struct pollfd p = {.fd = PQsocket(pg), .events = events};
    int rc;

    if (p.fd < 0) {
        *why = "the connection has no socket";
        return -1;
    }
    do {
        int64_t left = deadline - link_now_ms();

        if (left <= 0)
            return 0;
        rc = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        *why = "poll failed";
        return -1;
    }
    return rc > 0 ? 1 : 0;
}

/* Sends what libpq buffered and waits for the complete result of one query; NULL with
 * *timed_out or a connection failure. Results after the first are discarded. */
static PGresult *await_result(PGconn *pg, int64_t deadline, bool *timed_out)
{
    PGresult *first = NULL, *r;
    const char *why = NULL;
    int flush;

    *timed_out = false;
    while ((flush = PQflush(pg)) == 1) {
        int w = wait_socket(pg, POLLIN | POLLOUT, deadline, &why);

        if (w <= 0) {
            *timed_out = w == 0;
            return NULL;
        }
        if (!PQconsumeInput(pg))
            return NULL;
    }
    if (flush < 0)
        return NULL;
    for (;;) {
        while (PQisBusy(pg)) {
            int w = wait_socket(pg, POLLIN, deadline, &why);

            if (w <= 0) {
                *timed_out = w == 0;
                PQclear(first);
                return NULL;
            }
            if (!PQconsumeInput(pg)) {
                PQclear(first);
                return NULL;
            }
        }
        r = PQgetResult(pg);
        if (!r)
            return first;
        if (!first)
            first = r;
        else
            PQclear(r);
    }
}

/* As await_result, for a query string of several statements: whether every one succeeded
 * (false with *timed_out, a connection failure or an error result). */
static bool await_all(PGconn *pg, int64_t deadline, bool *timed_out)
{
    const char *why = NULL;
    bool ok = true;
    int flush;

    *timed_out = false;
    while ((flush = PQflush(pg)) == 1) {
        int w = wait_socket(pg, POLLIN | POLLOUT, deadline, &why);

        if (w <= 0) {
            *timed_out = w == 0;
            return false;
        }
        if (!PQconsumeInput(pg))
            return false;
    }
    if (flush < 0)
        return false;
    for (;;) {
        while (PQisBusy(pg)) {
            int w = wait_socket(pg, POLLIN, deadline, &why);

            if (w <= 0) {
                *timed_out = w == 0;
                return false;
            }
            if (!PQconsumeInput(pg))
                return false;
        }
        PGresult *r = PQgetResult(pg);

        if (!r)
            return ok;
        if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
            ok = false;
        PQclear(r);
    }
}

/* --- Errors --- */

/* Whether SQLSTATE @p state says the server cannot serve now (shutting down, starting,
 * overloaded) or the transaction lost a race it may retry. */
static bool state_is_transient(const char *state)
{
    return state && (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
                     strncmp(state, "57P", 3) == 0 || strcmp(state, "40001") == 0 ||
                     strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0);
}

/* Drops connection @p c after a failure that concerns @p link (lost, timed out): the outage
 * starts or goes on. @return MH_E_UNAVAILABLE with the message set. */
static enum mh_status link_lost_on(struct link_health *link, struct conn *c, const char *what,
                                   bool timed_out)
{
    char msg[256];
    const char *err = c->pg ? PQerrorMessage(c->pg) : "";

    (void)snprintf(msg, sizeof(msg), "%s: %s", what,
                   timed_out ? "no answer within timeout_ms" : (err[0] ? err : "connection lost"));
    msg[strcspn(msg, "\n")] = '\0';
    PQfinish(c->pg);
    c->pg = NULL;
    link_failed(link, msg);
    return MH_E_UNAVAILABLE;
}

/* link_lost_on for the store's pool. */
static enum mh_status link_lost(struct pg_store *s, struct conn *c, const char *what,
                                bool timed_out)
{
    return link_lost_on(&s->link, c, what, timed_out);
}

/* Maps a failed result to a status, with the message set. Clears @p r. */
static enum mh_status result_failed(struct pg_store *s, struct conn *c, PGresult *r,
                                    const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    enum mh_status rc;

    if (!r || PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(r);
        return link_lost(s, c, what, false);
    }
    if (!msg)
        msg = PQresultErrorMessage(r);
    if (state && strcmp(state, "54000") == 0)
        rc = MH_E_LIMIT; /* program limit exceeded: e.g. an index row too large */
    else if (state_is_transient(state))
        rc = MH_E_UNAVAILABLE;
    else
        rc = MH_E_IO;
    mh_store_set_error("%s: %s: %s (SQLSTATE %s)", s->what, what, msg, state ? state : "?");
    PQclear(r);
    return rc;
}

/* --- Connections --- */

/* Runs @p sql (one or more statements, no parameters) on a fresh connection. */
static enum mh_status run_simple(struct pg_store *s, struct conn *c, const char *sql,
                                 int64_t deadline, const char *what)
{
    bool timed_out;
    PGresult *r;

    if (!PQsendQuery(c->pg, sql))
        return link_lost(s, c, what, false);
    r = await_result(c->pg, deadline, &timed_out);
    if (!r)
        return link_lost(s, c, what, timed_out);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        return result_failed(s, c, r, what);
    PQclear(r);
    return MH_OK;
}

/* Creates the table and sequence once per store, under an advisory lock, so that instances
 * starting together do not race in CREATE ... IF NOT EXISTS. */
static enum mh_status ensure_schema(struct pg_store *s, struct conn *c, int64_t deadline)
{
    enum mh_status rc;
    bool is_ready;

    pthread_mutex_lock(&s->mu);
    is_ready = s->is_schema_ready;
    pthread_mutex_unlock(&s->mu);
    if (is_ready)
        return MH_OK;
    rc = run_simple(s, c, s->schema_sql, deadline, "cannot create the table");
    if (rc != MH_OK) {
        if (c->pg)
            PQclear(PQexec(c->pg, "ROLLBACK")); /* after an error inside the transaction */
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    s->is_schema_ready = true;
    pthread_mutex_unlock(&s->mu);
    return MH_OK;
}

static enum mh_status prepare_all(struct pg_store *s, struct conn *c, int64_t deadline)
{
    static const Oid types[3] = {BYTEA_OID, BYTEA_OID, INT8_OID};
    static const Oid key_int_types[2] = {BYTEA_OID, INT8_OID};

    for (int i = 0; i < MH_PG_NSTMT; i++) {
        bool key_int = i == MH_PG_DEL_VERSION || i == MH_PG_SCAN_FROM || i == MH_PG_SCAN_AFTER;
        bool timed_out;
        PGresult *r;

        if (!PQsendPrepare(c->pg, stmt_name[i], s->sql[i], stmt_nparams[i],
                           key_int ? key_int_types : types))
            return link_lost(s, c, "cannot prepare a statement", false);
        r = await_result(c->pg, deadline, &timed_out);
        if (!r)
            return link_lost(s, c, "cannot prepare a statement", timed_out);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return result_failed(s, c, r, "cannot prepare a statement (is it a modhost table?)");
        PQclear(r);
    }
    return MH_OK;
}

/* Notices ("relation already exists, skipping") are not for the log; errors are reported
 * with each call's status instead of libpq's default printing to stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connects @p c within @p deadline with libpq's asynchronous connect, in non-blocking mode;
 * a failure counts against @p link. */
static enum mh_status conn_connect(struct pg_store *s, struct link_health *link, struct conn *c,
                                   int64_t deadline)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;

    c->pg = PQconnectStartParams(s->keys, (const char *const *)s->values, 0);
    if (!c->pg) {
        mh_store_set_error("%s: out of memory connecting", s->what);
        return MH_E_NOMEM;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return link_lost_on(link, c, "cannot connect", false);
    while (st != PGRES_POLLING_OK) {
        const char *why = NULL;
        int w;

        if (st == PGRES_POLLING_FAILED)
            return link_lost_on(link, c, "cannot connect", false);
        w = wait_socket(c->pg, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline, &why);
        if (w <= 0)
            return link_lost_on(link, c, "cannot connect", w == 0);
        st = PQconnectPoll(c->pg);
    }
    if (PQsetnonblocking(c->pg, 1) != 0)
        return link_lost_on(link, c, "cannot switch to non-blocking mode", false);
    PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
    c->epoch = link_epoch(link);
    return MH_OK;
}

/* Opens connection @p c within @p deadline: the connect, then the schema (once per store) and
 * the prepared statements. */
static enum mh_status conn_open(struct pg_store *s, struct conn *c, int64_t deadline)
{
    enum mh_status rc = conn_connect(s, &s->link, c, deadline);

    if (rc != MH_OK)
        return rc;
    rc = ensure_schema(s, c, deadline);
    if (rc == MH_OK)
        rc = prepare_all(s, c, deadline);
    if (rc != MH_OK && c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    return rc;
}

/* Whether connection @p c should be re-made before use: it was made before the link last
 * failed, or the server sent something while it was idle (a shutdown sends a FATAL message
 * and closes). Checked without blocking, so that a restart costs no request that starts
 * after it. */
static bool conn_is_stale_on(struct link_health *link, const struct conn *c)
{
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};

    if (PQstatus(c->pg) != CONNECTION_OK || p.fd < 0 || c->epoch != link_epoch(link))
        return true;
    return poll(&p, 1, 0) != 0;
}

static bool conn_is_stale(struct pg_store *s, const struct conn *c)
{
    return conn_is_stale_on(&s->link, c);
}

static void conn_give(struct pg_store *s, const struct conn *c)
{
    pool_give(&s->pool, (size_t)(c - s->conns));
}

/* Takes an idle connection, waiting until @p deadline; makes sure it is connected. */
static enum mh_status conn_take(struct pg_store *s, int64_t deadline, struct conn **out)
{
    long slot = pool_take(&s->pool, deadline, s->what);
    struct conn *c;

    if (slot < 0)
        return MH_E_UNAVAILABLE;
    c = &s->conns[slot];
    if (c->pg && conn_is_stale(s, c)) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (!c->pg) {
        enum mh_status rc;

        if (!link_gate(&s->link)) {
            conn_give(s, c);
            return MH_E_UNAVAILABLE;
        }
        rc = conn_open(s, c, deadline);
        if (rc != MH_OK) {
            conn_give(s, c);
            return rc;
        }
        link_ok(&s->link);
    }
    *out = c;
    return MH_OK;
}

/* --- Statements --- */

static void put_be64(unsigned char *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const PGresult *r, int row, int col)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t v = 0;

    if (PQgetlength(r, row, col) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

struct params {
    const char *values[3];
    int lengths[3];
    int formats[3];
    unsigned char num[8];
};

static void param_bytes(struct params *p, int i, const void *data, size_t len)
{
    p->values[i] = len ? data : ""; /* a NULL value would be SQL NULL */
    p->lengths[i] = (int)len;
    p->formats[i] = 1;
}

static void param_int(struct params *p, int i, uint64_t v)
{
    put_be64(p->num, v);
    p->values[i] = (const char *)p->num;
    p->lengths[i] = 8;
    p->formats[i] = 1;
}

/*
 * Runs prepared statement @p id with binary parameters and results. @return MH_OK with *out
 * (caller clears) holding tuples; or the failure (message set; the connection dropped if the
 * link failed).
 */
static enum mh_status exec(struct pg_store *s, struct conn *c, enum stmt_id id,
                           const struct params *p, int64_t deadline, const char *what,
                           PGresult **out)
{
    bool timed_out;
    PGresult *r;

    if (!PQsendQueryPrepared(c->pg, stmt_name[id], stmt_nparams[id], p->values, p->lengths,
                             p->formats, 1))
        return link_lost(s, c, what, false);
    r = await_result(c->pg, deadline, &timed_out);
    if (!r)
        return link_lost(s, c, what, timed_out);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return result_failed(s, c, r, what);
    *out = r;
    return MH_OK;
}

/* Takes a connection, runs @p id, gives the connection back. */
static enum mh_status run(struct pg_store *s, enum stmt_id id, const struct params *p,
                          const char *what, PGresult **out)
{
    int64_t deadline = link_now_ms() + s->timeout_ms;
    struct conn *c;
    enum mh_status rc = conn_take(s, deadline, &c);

    if (rc != MH_OK)
        return rc;
    rc = exec(s, c, id, p, deadline, what, out);
    conn_give(s, c);
    return rc;
}

/* --- Settings --- */

static const char *const sslmodes[] = {"disable", "allow",     "prefer",
                                       "require", "verify-ca", "verify-full"};

static const struct mh_setting_def pg_settings[] = {
    {"host", MH_SETTING_STRING,
     "the server's host name or address, or the directory of its Unix socket (default "
     "\"127.0.0.1\")"},
    {"port", MH_SETTING_INT, "the server's port, 1..65535 (default 5432)"},
    {"dbname", MH_SETTING_STRING, "the database (default: the user's name)"},
    {"user", MH_SETTING_STRING, "the role to connect as (required)"},
    {"password_file", MH_SETTING_STRING, LINK_HELP_PASSWORD_FILE},
    {"sslmode", MH_SETTING_STRING,
     "one of disable, allow, prefer, require, verify-ca, verify-full (default \"prefer\")"},
    {"table", MH_SETTING_STRING,
     "the table of this store, [a-z_][a-z0-9_]* up to 48 characters (default \"modhost_kv\")"},
    {"pool_size", MH_SETTING_INT, LINK_HELP_POOL_SIZE},
    {"timeout_ms", MH_SETTING_INT,
     "longest wait for a connection, a connect or one statement, 1..600000 (default 3000)"},
    {NULL, 0, NULL},
};

static enum mh_status bad_setting(const char *name)
{
    return bad_setting_in(pg_settings, name);
}

static bool valid_table(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > MAX_TABLE || !((t[0] >= 'a' && t[0] <= 'z') || t[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_'))
            return false;
    }
    return true;
}

static enum mh_status read_options(const struct mh_conf *settings, struct options *o)
{
    bool is_sslmode_ok = false;

    *o = (struct options){.host = "127.0.0.1",
                          .port = 5432,
                          .sslmode = "prefer",
                          .table = "modhost_kv",
                          .pool_size = 8,
                          .timeout_ms = 3000};
    if (mh_conf_string(settings, "host", &o->host) == MH_E_INVAL || !o->host[0])
        return bad_setting("host");
    if (mh_conf_int(settings, "port", &o->port) == MH_E_INVAL || o->port < 1 || o->port > 65535)
        return bad_setting("port");
    if (mh_conf_string(settings, "dbname", &o->dbname) == MH_E_INVAL)
        return bad_setting("dbname");
    if (mh_conf_string(settings, "user", &o->user) != MH_OK || !o->user[0]) {
        mh_store_set_error("missing setting 'user': the role to connect as");
        return MH_E_INVAL;
    }
    if (mh_conf_path(settings, "password_file", &o->password_file) == MH_E_INVAL)
        return bad_setting("password_file");
    if (mh_conf_string(settings, "sslmode", &o->sslmode) == MH_E_INVAL)
        return bad_setting("sslmode");
    for (size_t i = 0; i < sizeof(sslmodes) / sizeof(sslmodes[0]); i++)
        is_sslmode_ok = is_sslmode_ok || strcmp(o->sslmode, sslmodes[i]) == 0;
    if (!is_sslmode_ok)
        return bad_setting("sslmode");
    if (mh_conf_string(settings, "table", &o->table) == MH_E_INVAL || !valid_table(o->table))
        return bad_setting("table");
    if (mh_conf_int(settings, "pool_size", &o->pool_size) == MH_E_INVAL || o->pool_size < 1 ||
        o->pool_size > POOL_MAX)
        return bad_setting("pool_size");
    if (mh_conf_int(settings, "timeout_ms", &o->timeout_ms) == MH_E_INVAL || o->timeout_ms < 1 ||
        o->timeout_ms > 600000)
        return bad_setting("timeout_ms");
    return MH_OK;
}

/* --- Driver --- */

static void pg_unsubscribe(void *db);

static void pg_close(void *arg)
{
    struct pg_store *s = arg;

    if (!s)
        return;
    pg_unsubscribe(s);
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

static enum mh_status add_param(struct pg_store *s, const char *key, const char *value)
{
    size_t i = 0;

    while (s->keys[i])
        i++;
    s->values[i] = strdup(value);
    if (!s->values[i]) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    s->keys[i] = key;
    return MH_OK;
}

static enum mh_status build_params(struct pg_store *s, const struct options *o)
{
    char port[24], timeout[24];
    enum mh_status rc = MH_OK;

    (void)snprintf(port, sizeof(port), "%lld", o->port);
    /* libpq counts connect_timeout in whole seconds; our own poll() is the real bound. */
    (void)snprintf(timeout, sizeof(timeout), "%lld", (o->timeout_ms + 999) / 1000 + 1);
    if (o->password_file) {
        char password[PASSWORD_BYTES];

        rc = read_password_file(o->password_file, password, sizeof(password));
        if (rc == MH_OK)
            rc = add_param(s, "password", password);
        memset(password, 0, sizeof(password));
    }
    if (rc == MH_OK)
        rc = add_param(s, "host", o->host);
    if (rc == MH_OK)
        rc = add_param(s, "port", port);
    if (rc == MH_OK && o->dbname)
        rc = add_param(s, "dbname", o->dbname);
    if (rc == MH_OK)
        rc = add_param(s, "user", o->user);
    if (rc == MH_OK)
        rc = add_param(s, "sslmode", o->sslmode);
    if (rc == MH_OK)
        rc = add_param(s, "connect_timeout", timeout);
    if (rc == MH_OK)
        rc = add_param(s, "application_name", "modhost");
    /* The server abandons a statement whose client is gone (a timed-out call closes its
     * connection), and never runs one longer than the call may wait. */
    if (rc == MH_OK) {
        char opts[128];

        (void)snprintf(opts, sizeof(opts),
                       "-c client_connection_check_interval=1000 -c statement_timeout=%lld",
                       o->timeout_ms);
        rc = add_param(s, "options", opts);
    }
    /* Keepalives find a peer that vanished without a word between calls. */
    if (rc == MH_OK)
        rc = add_param(s, "keepalives_idle", "30");
    return rc;
}

/* @p tmpl with @T replaced by @p table and @S by @p seq. Caller frees; NULL if out of memory. */
static char *expand_sql(const char *tmpl, const char *table, const char *seq)
{
    size_t n = strlen(tmpl) + 1;
    char *out, *o;

    for (const char *p = strchr(tmpl, '@'); p; p = strchr(p + 1, '@'))
        n += strlen(table) + strlen(seq);
    out = malloc(n);
    if (!out)
        return NULL;
    o = out;
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '@' && (p[1] == 'T' || p[1] == 'S')) {
            o = stpcpy(o, p[1] == 'T' ? table : seq);
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

static enum mh_status build_sql(struct pg_store *s, const char *table)
{
    (void)snprintf(s->table, sizeof(s->table), "\"%s\"", table);
    (void)snprintf(s->sequence, sizeof(s->sequence), "'\"%s_ver\"'", table);
    for (int i = 0; i < MH_PG_NSTMT; i++) {
        s->sql[i] = expand_sql(stmt_sql[i], s->table, s->sequence);
        if (!s->sql[i]) {
            mh_store_set_error("out of memory");
            return MH_E_NOMEM;
        }
    }
    if (asprintf(&s->schema_sql,
                 "BEGIN;"
                 "SELECT pg_advisory_xact_lock(hashtext('modhost table %s'));"
                 "CREATE TABLE IF NOT EXISTS \"%s\" (k bytea PRIMARY KEY, v bytea NOT NULL,"
                 " ver bigint NOT NULL);"
                 "CREATE SEQUENCE IF NOT EXISTS \"%s_ver\";"
                 "COMMIT;",
                 table, table, table) < 0) {
        s->schema_sql = NULL;
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    return MH_OK;
}

static enum mh_status pg_open(struct mh_host *host, const struct mh_conf *settings, void **out)
{
    struct pg_store *s = NULL;
    struct options o;
    enum mh_status rc = read_options(settings, &o);
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
    rc = build_params(s, &o);
    if (rc == MH_OK)
        rc = build_sql(s, o.table);
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
    rc = conn_take(s, link_now_ms() + s->timeout_ms, &c);
    if (rc == MH_OK) {
        conn_give(s, c);
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

static enum mh_status pg_get(void *arg, const void *key, size_t klen, struct mh_value *out)
{
    struct pg_store *s = arg;
    struct params p;
    PGresult *r = NULL;
    enum mh_status rc;
    size_t vlen;

    param_bytes(&p, 0, key, klen);
    rc = run(s, MH_PG_GET, &p, "cannot read", &r);
    if (rc != MH_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        mh_store_set_error("no such key (%zu bytes)", klen);
        return MH_E_NOTFOUND;
    }
    vlen = (size_t)PQgetlength(r, 0, 0);
    out->data = malloc(vlen + 1);
    if (!out->data) {
        PQclear(r);
        mh_store_set_error("out of memory copying a value of %zu bytes", vlen);
        return MH_E_NOMEM;
    }
    memcpy(out->data, PQgetvalue(r, 0, 0), vlen);
    ((char *)out->data)[vlen] = '\0';
    out->len = vlen;
    out->version = get_be64(r, 0, 1);
    PQclear(r);
    return MH_OK;
}

static enum mh_status pg_put(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
                             uint64_t expect, uint64_t *version, int *created)
{
    struct pg_store *s = arg;
    enum stmt_id id = expect == MH_STORE_ANY      ? MH_PG_PUT_ANY
                      : expect == MH_STORE_ABSENT ? MH_PG_PUT_ABSENT
                      : expect == MH_STORE_EXISTS ? MH_PG_PUT_EXISTS
                                                  : MH_PG_PUT_VERSION;
    struct params p;
    PGresult *r = NULL;
    enum mh_status rc;

    if (vlen > INT32_MAX) {
        mh_store_set_error("a value of %zu bytes is too large for PostgreSQL", vlen);
        return MH_E_LIMIT;
    }
    param_bytes(&p, 0, key, klen);
    param_bytes(&p, 1, val, vlen);
    if (id == MH_PG_PUT_VERSION)
        param_int(&p, 2, expect);
    rc = run(s, id, &p, "cannot write", &r);
    if (rc != MH_OK)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        if (id == MH_PG_PUT_ABSENT)
            mh_store_set_error("the key exists");
        else if (id == MH_PG_PUT_EXISTS)
            mh_store_set_error("expected an existing key, but the key does not exist");
        else
            mh_store_set_error("expected version %" PRIu64 ", but the key has another version "
                               "or does not exist",
                               expect);
        return MH_E_CONFLICT;
    }
    *version = get_be64(r, 0, 0);
    *created = PQgetlength(r, 0, 1) == 1 && PQgetvalue(r, 0, 1)[0] != 0;
    PQclear(r);
    return MH_OK;
}

static enum mh_status pg_del(void *arg, const void *key, size_t klen, uint64_t expect)
{
    struct pg_store *s = arg;
    bool by_version = expect != MH_STORE_ANY && expect != MH_STORE_EXISTS;
    struct params p;
    PGresult *r = NULL;
    enum mh_status rc;

    param_bytes(&p, 0, key, klen);
    if (by_version)
        param_int(&p, 1, expect);
    rc = run(s, by_version ? MH_PG_DEL_VERSION : MH_PG_DEL_ANY, &p, "cannot delete", &r);
    if (rc != MH_OK)
        return rc;
    if (!by_version) {
        rc = PQntuples(r) > 0 ? MH_OK : MH_E_NOTFOUND;
    } else if (get_be64(r, 0, 0) == 1) {
        rc = MH_OK;
    } else {
        bool found = PQgetlength(r, 0, 1) == 1 && PQgetvalue(r, 0, 1)[0] != 0;

        rc = found ? MH_E_CONFLICT : MH_E_NOTFOUND;
        if (found)
            mh_store_set_error("expected version %" PRIu64 ", but the key has another version",
                               expect);
    }
    if (rc == MH_E_NOTFOUND)
        mh_store_set_error("no such key (%zu bytes)", klen);
    PQclear(r);
    return rc;
}

/* --- Scans --- */

static enum mh_status collect(void *arg, const void *prefix, size_t plen, const void *start,
                              size_t slen, bool exclusive, size_t want, struct batch *b)
{
    struct pg_store *s = arg;
    struct params p;
    PGresult *r = NULL;
    size_t bytes = 0;
    enum mh_status rc;
    int n, i;

    if (want > SCAN_BATCH_RECORDS)
        want = SCAN_BATCH_RECORDS;
    b->is_last = false;
    param_bytes(&p, 0, start, slen);
    param_int(&p, 1, want);
    rc = run(s, exclusive ? MH_PG_SCAN_AFTER : MH_PG_SCAN_FROM, &p, "cannot scan", &r);
    if (rc != MH_OK)
        return rc;
    n = PQntuples(r);
    for (i = 0; i < n && bytes < SCAN_BATCH_BYTES; i++) {
        size_t klen = (size_t)PQgetlength(r, i, 0), vlen = (size_t)PQgetlength(r, i, 1);
        const char *k = PQgetvalue(r, i, 0);
        struct rec *rec = &b->recs[b->n];

        if (klen < plen || memcmp(k, prefix, plen) != 0) {
            b->is_last = true; /* past the prefix: no later key has it */
            break;
        }
        rec->key = malloc(klen + vlen + 1);
        if (!rec->key) {
            PQclear(r);
            mh_store_set_error("out of memory copying scan results");
            return MH_E_NOMEM;
        }
        memcpy(rec->key, k, klen);
        memcpy(rec->key + klen, PQgetvalue(r, i, 1), vlen);
        rec->klen = klen;
        rec->vlen = vlen;
        rec->version = get_be64(r, i, 2);
        b->n++;
        bytes += klen + vlen;
    }
    if (i == n && (size_t)n < want)
        b->is_last = true;
    PQclear(r);
    return MH_OK;
}

static enum mh_status pg_scan(void *arg, const void *prefix, size_t plen, const void *after,
                              size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg)
{
    return store_scan_pages(arg, collect, prefix, plen, after, alen, limit, fn, fn_arg);
}

/* --- Channels between instances: LISTEN / NOTIFY (SDK 1.2) --- */

/* Raw bytes per notification: hex-encoded behind its header, under the server's 8000-byte
 * payload limit. */
#define BUS_CHUNK_BYTES 3900
/* Raw bytes of messages sent in one transaction (whole messages; at least one). */
#define BUS_TXN_BYTES ((size_t)4 * 1024 * 1024)

/*
 * The channel TABLE_bus carries every message. A notification's payload is text under 8000
 * bytes, so a message goes as hex in chunks, "SENDER SEQ INDEX COUNT HEX" each, and the chunks
 * of a batch of messages go in one transaction: PostgreSQL queues a transaction's
 * notifications together, in order, when it commits, and commits them one transaction after
 * the other, so a listener gets each message's chunks in a row, once, and one sender's
 * messages in the order they were sent. The subscriber thread (store_bus.h) LISTENs and joins
 * the chunks; the publisher thread sends this process's messages in queue order on one
 * connection.
 */
struct pg_bus {
    struct bus bus; /* first: the ops get it */
    struct pg_store *s;
    char channel[MAX_TABLE + 8];     /* TABLE_bus: [a-z0-9_], as pg_notify takes it */
    char listen_sql[MAX_TABLE + 24]; /* LISTEN "TABLE_bus" */
    uint64_t sender;                 /* this process, in its chunks' headers */
    uint64_t seq;                    /* publisher thread only */
    struct conn sub, pub;            /* each used by its thread only */
    /* The message being joined (subscriber thread only); in_count 0: none. */
    uint64_t in_sender, in_seq;
    unsigned long long in_next, in_count;
    unsigned char *in_buf;
    size_t in_len, in_cap;
};

static struct pg_bus *pg_bus_of(struct bus *b)
{
    return (struct pg_bus *)b; /* its first member */
}

/* The number in base @p base at *@p p, followed by one space; moves *@p p past both. */
static bool take_number(const char **p, int base, unsigned long long *out)
{
    char *end;

    if (**p < '0' || **p > 'f')
        return false; /* no sign, no blanks */
    errno = 0;
    *out = strtoull(*p, &end, base);
    if (end == *p || *end != ' ' || errno)
        return false;
    *p = end + 1;
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Drops the message being joined. */
static void bus_join_reset(struct pg_bus *b)
{
    b->in_count = b->in_next = 0;
    b->in_len = 0;
    if (b->in_cap > (size_t)1024 * 1024) { /* keep a small buffer, not the largest seen */
        free(b->in_buf);
        b->in_buf = NULL;
        b->in_cap = 0;
    }
}

/* Takes one chunk (a notification's payload); hands the message to the core once its last
 * chunk came. A payload that does not parse is not ours (another program on the channel). */
static void bus_chunk(struct pg_bus *b, const char *p)
{
    unsigned long long sender, seq, idx, count;
    size_t n;

    if (!take_number(&p, 16, &sender) || !take_number(&p, 16, &seq) || !take_number(&p, 10, &idx) ||
        !take_number(&p, 10, &count) || idx >= count || strlen(p) % 2)
        return;
    if (idx == 0) {
        bus_join_reset(b);
        b->in_sender = sender;
        b->in_seq = seq;
        b->in_count = count;
    } else if (!b->in_count || sender != b->in_sender || seq != b->in_seq || count != b->in_count ||
               idx != b->in_next) {
        bus_join_reset(b); /* a chunk out of its row: never from PostgreSQL's queue */
        return;
    }
    n = strlen(p) / 2;
    if (b->in_len + n > BUS_MAX_QUEUED_BYTES) {
        bus_join_reset(b);
        return;
    }
    if (b->in_len + n > b->in_cap) {
        size_t cap = 2 * (b->in_len + n);
        unsigned char *buf = realloc(b->in_buf, cap);

        if (!buf) {
            bus_join_reset(b);
            return;
        }
        b->in_buf = buf;
        b->in_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            bus_join_reset(b);
            return;
        }
        b->in_buf[b->in_len++] = (unsigned char)(hi << 4 | lo);
    }
    if (++b->in_next == b->in_count) {
        b->bus.deliver(b->bus.arg, b->in_buf, b->in_len);
        bus_join_reset(b);
    }
}

/* Connects the subscriber's connection and LISTENs on the bus channel. */
static enum mh_status bus_listen(struct bus *bus)
{
    struct pg_bus *b = pg_bus_of(bus);
    struct conn *c = &b->sub;
    int64_t deadline = link_now_ms() + b->s->timeout_ms;
    enum mh_status rc = conn_connect(b->s, &bus->sub_link, c, deadline);
    bool timed_out;
    PGresult *r;

    if (rc != MH_OK)
        return rc;
    if (!PQsendQuery(c->pg, b->listen_sql))
        return link_lost_on(&bus->sub_link, c, "cannot listen", false);
    r = await_result(c->pg, deadline, &timed_out);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        PQclear(r);
        return link_lost_on(&bus->sub_link, c, "cannot listen", timed_out);
    }
    PQclear(r);
    return MH_OK;
}

static int bus_listen_fd(struct bus *bus)
{
    const struct pg_bus *b = pg_bus_of(bus);

    return b->sub.pg ? PQsocket(b->sub.pg) : -1;
}

/* Reads what came and hands every notification on the bus channel to bus_chunk. */
static void bus_receive(struct bus *bus)
{
    struct pg_bus *b = pg_bus_of(bus);
    PGnotify *n;

    if (!PQconsumeInput(b->sub.pg) || PQstatus(b->sub.pg) != CONNECTION_OK) {
        link_lost_on(&bus->sub_link, &b->sub, "the subscription ended", false);
        bus_join_reset(b);
        return;
    }
    while ((n = PQnotifies(b->sub.pg))) {
        if (strcmp(n->relname, b->channel) == 0)
            bus_chunk(b, n->extra);
        PQfreemem(n);
    }
}

/* Appends "SELECT pg_notify('CHANNEL', 'HEADER HEX');" for each chunk of @p m to @p q
 * (every character is from [a-z0-9_ ], so nothing needs quoting). @return false if out of
 * memory. */
static bool bus_append_message(struct pg_bus *b, char **q, size_t *len, size_t *cap,
                               const struct bus_msg *m)
{
    static const char hex[] = "0123456789abcdef";
    size_t count = m->len ? (m->len + BUS_CHUNK_BYTES - 1) / BUS_CHUNK_BYTES : 1;
    size_t need = *len + 2 * m->len + count * (sizeof(b->channel) + 128);
    uint64_t seq = b->seq++;
    char *out = *q;

    if (!out || need > *cap) {
        out = realloc(*q, 2 * need);
        if (!out)
            return false;
        *q = out;
        *cap = 2 * need;
    }
    for (size_t i = 0, off = 0; i < count; i++, off += BUS_CHUNK_BYTES) {
        size_t end = off + BUS_CHUNK_BYTES < m->len ? off + BUS_CHUNK_BYTES : m->len;
        int head = snprintf(out + *len, *cap - *len,
                            "SELECT pg_notify('%s', '%016" PRIx64 " %" PRIx64 " %zu %zu ",
                            b->channel, b->sender, seq, i, count);

        if (head < 0)
            return false;
        *len += (size_t)head;
        for (size_t k = off; k < end; k++) {
            out[(*len)++] = hex[m->data[k] >> 4];
            out[(*len)++] = hex[m->data[k] & 0xf];
        }
        memcpy(out + *len, "');", 4);
        *len += 3;
    }
    return true;
}

/* Sends the messages from @p m up to (not including) @p end in one transaction on @p c.
 * @return whether the server committed it. */
static bool bus_transaction(struct pg_bus *b, struct conn *c, const struct bus_msg *m,
                            const struct bus_msg *end)
{
    int64_t deadline = link_now_ms() + b->s->timeout_ms;
    size_t len = 0, cap = 0;
    char *q = NULL;
    bool ok, timed_out = false;

    for (; m != end; m = m->next) {
        if (!bus_append_message(b, &q, &len, &cap, m)) {
            free(q);
            return false;
        }
    }
    /* One query string of several statements runs as one transaction. */
    ok = PQsendQuery(c->pg, q) == 1 && await_all(c->pg, deadline, &timed_out);
    free(q);
    if (ok)
        return true;
    /* Unless the server answered with an error and the connection is idle again, drop it. */
    if (timed_out || PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        link_lost_on(&b->bus.pub_link, c, "cannot publish", timed_out);
    else
        mh_log(NULL, MH_LOG_WARN, "%s: the server refused a batch of messages: %s", b->bus.pub_what,
               PQerrorMessage(c->pg));
    return false;
}

/* Sends @p list in order, in transactions of up to BUS_TXN_BYTES; what the server did not
 * take goes to this instance only. Frees the list. */
static void bus_send(struct bus *bus, struct bus_msg *list)
{
    struct pg_bus *b = pg_bus_of(bus);
    struct conn *c = &b->pub;

    if (c->pg && conn_is_stale_on(&bus->pub_link, c)) { /* closed by a restart while idle */
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (!c->pg && link_gate(&bus->pub_link)) {
        if (conn_connect(b->s, &bus->pub_link, c, link_now_ms() + b->s->timeout_ms) == MH_OK)
            link_ok(&bus->pub_link);
    }
    while (list) {
        struct bus_msg *end = list->next;
        size_t bytes = list->len;
        bool sent;

        while (end && bytes + end->len <= BUS_TXN_BYTES) {
            bytes += end->len;
            end = end->next;
        }
        sent = c->pg && bus_transaction(b, c, list, end);
        list = bus_settle(bus, list, end, sent ? SIZE_MAX : 0);
    }
}

static void bus_close(struct bus *bus, bool is_sub)
{
    struct pg_bus *b = pg_bus_of(bus);
    struct conn *c = is_sub ? &b->sub : &b->pub;

    PQfinish(c->pg);
    c->pg = NULL;
}

static void bus_free(struct bus *bus)
{
    struct pg_bus *b = pg_bus_of(bus);

    free(b->in_buf);
    free(b);
}

static const struct bus_ops pg_bus_ops = {
    .listen = bus_listen,
    .listen_fd = bus_listen_fd,
    .receive = bus_receive,
    .send = bus_send,
    .close = bus_close,
    .free = bus_free,
    .subscribed = "listening",
};

static enum mh_status pg_subscribe(void *db, mh_bus_fn deliver, void *arg)
{
    struct pg_store *s = db;
    struct pg_bus *b = calloc(1, sizeof(*b));
    size_t tlen = strlen(s->table) - 2; /* the name inside the quotes */

    if (b) {
        b->s = s;
        (void)snprintf(b->channel, sizeof(b->channel), "%.*s_bus", (int)tlen, s->table + 1);
        (void)snprintf(b->listen_sql, sizeof(b->listen_sql), "LISTEN \"%s\"", b->channel);
        b->sender = ((uint64_t)getpid() << 32) ^ (uint64_t)link_now_ms() ^ (uint64_t)(uintptr_t)b;
    }
    /* The bus is b's first member (NULL stays NULL). */
    return bus_subscribe(&s->mu, &s->bus, (struct bus *)b, &pg_bus_ops, s->what, deliver, arg);
}

static void pg_unsubscribe(void *db)
{
    struct pg_store *s = db;

    bus_unsubscribe(&s->mu, &s->bus);
}

static enum mh_status pg_publish(void *db, const void *msg, size_t len)
{
    struct pg_store *s = db;

    return bus_publish(&s->mu, &s->bus, msg, len, s->what);
}

static const struct mh_store_driver pg_drivers[] = {
    {
        .size = sizeof(struct mh_store_driver),
        .name = "postgres",
        .caps = MH_STORE_CAP_CAS | MH_STORE_CAP_SCAN | MH_STORE_CAP_PUBSUB,
        .open = pg_open,
        .close = pg_close,
        .get = pg_get,
        .put = pg_put,
        .del = pg_del,
        .scan = pg_scan,
        .settings = pg_settings,
        .subscribe = pg_subscribe,
        .unsubscribe = pg_unsubscribe,
        .publish = pg_publish,
    },
    {0},
};

/* The module takes no settings of its own; each store has its own, read in pg_open. It stays
 * mapped after fini (no MH_MODULE_UNLOAD_SAFE): libpq and OpenSSL keep process-wide state. */
static const struct mh_setting_def no_settings[] = {{NULL, 0, NULL}};

MH_MODULE(.name = "store_postgres", .version = "1.0.0", .settings = no_settings,
          .drivers = pg_drivers)
