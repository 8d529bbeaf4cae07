/*
 * The connections of the "postgres" driver: waiting on a socket with a deadline, mapping
 * failures to statuses, connecting (schema once, prepared statements), noticing a stale
 * connection, and taking one from the pool. The link's health and backoff and the slot pool
 * are store_link.h's; what the statements do is pg_records.c's.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_postgres.h"

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

/* Sends what libpq buffered; false with *timed_out or a connection failure. */
static bool send_all(PGconn *pg, int64_t deadline, bool *timed_out)
{
    const char *why = NULL;
    int flush;

    while ((flush = PQflush(pg)) == 1) {
        int w = wait_socket(pg, POLLIN | POLLOUT, deadline, &why);

        if (w <= 0) {
            *timed_out = w == 0;
            return false;
        }
        if (!PQconsumeInput(pg))
            return false;
    }
    return flush == 0;
}

/* Reads until the next result is complete (PQgetResult will not block); false with
 * *timed_out or a connection failure. */
static bool result_ready(PGconn *pg, int64_t deadline, bool *timed_out)
{
    const char *why = NULL;

    while (PQisBusy(pg)) {
        int w = wait_socket(pg, POLLIN, deadline, &why);

        if (w <= 0) {
            *timed_out = w == 0;
            return false;
        }
        if (!PQconsumeInput(pg))
            return false;
    }
    return true;
}

/* Sends what libpq buffered and waits for the complete result of one query; NULL with
 * *timed_out or a connection failure. Results after the first are discarded. */
PGresult *mh_pg_await_result(PGconn *pg, int64_t deadline, bool *timed_out)
{
    PGresult *first = NULL, *r;

    *timed_out = false;
    if (!send_all(pg, deadline, timed_out))
        return NULL;
    for (;;) {
        if (!result_ready(pg, deadline, timed_out)) {
            PQclear(first);
            return NULL;
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
bool mh_pg_await_all(PGconn *pg, int64_t deadline, bool *timed_out)
{
    bool ok = true;

    *timed_out = false;
    if (!send_all(pg, deadline, timed_out))
        return false;
    for (;;) {
        PGresult *r;

        if (!result_ready(pg, deadline, timed_out))
            return false;
        r = PQgetResult(pg);
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
enum mh_status mh_pg_link_lost_on(struct link_health *link, struct conn *c, const char *what,
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
enum mh_status mh_pg_link_lost(struct pg_store *s, struct conn *c, const char *what, bool timed_out)
{
    return mh_pg_link_lost_on(&s->link, c, what, timed_out);
}

/* Maps a failed result to a status, with the message set. Clears @p r. */
enum mh_status mh_pg_result_failed(struct pg_store *s, struct conn *c, PGresult *r,
                                   const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    enum mh_status rc;

    if (!r || PQstatus(c->pg) != CONNECTION_OK) {
        PQclear(r);
        return mh_pg_link_lost(s, c, what, false);
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
        return mh_pg_link_lost(s, c, what, false);
    r = mh_pg_await_result(c->pg, deadline, &timed_out);
    if (!r)
        return mh_pg_link_lost(s, c, what, timed_out);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        return mh_pg_result_failed(s, c, r, what);
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

        if (!PQsendPrepare(c->pg, mh_pg_stmt_name[i], s->sql[i], mh_pg_stmt_nparams[i],
                           key_int ? key_int_types : types))
            return mh_pg_link_lost(s, c, "cannot prepare a statement", false);
        r = mh_pg_await_result(c->pg, deadline, &timed_out);
        if (!r)
            return mh_pg_link_lost(s, c, "cannot prepare a statement", timed_out);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return mh_pg_result_failed(s, c, r,
                                       "cannot prepare a statement (is it a modhost table?)");
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
enum mh_status mh_pg_conn_connect(struct pg_store *s, struct link_health *link, struct conn *c,
                                  int64_t deadline)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;

    c->pg = PQconnectStartParams(s->keys, (const char *const *)s->values, 0);
    if (!c->pg) {
        mh_store_set_error("%s: out of memory connecting", s->what);
        return MH_E_NOMEM;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return mh_pg_link_lost_on(link, c, "cannot connect", false);
    while (st != PGRES_POLLING_OK) {
        const char *why = NULL;
        int w;

        if (st == PGRES_POLLING_FAILED)
            return mh_pg_link_lost_on(link, c, "cannot connect", false);
        w = wait_socket(c->pg, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline, &why);
        if (w <= 0)
            return mh_pg_link_lost_on(link, c, "cannot connect", w == 0);
        st = PQconnectPoll(c->pg);
    }
    if (PQsetnonblocking(c->pg, 1) != 0)
        return mh_pg_link_lost_on(link, c, "cannot switch to non-blocking mode", false);
    PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
    c->epoch = link_epoch(link);
    return MH_OK;
}

/* Opens connection @p c within @p deadline: the connect, then the schema (once per store) and
 * the prepared statements. */
static enum mh_status conn_open(struct pg_store *s, struct conn *c, int64_t deadline)
{
    enum mh_status rc = mh_pg_conn_connect(s, &s->link, c, deadline);

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
bool mh_pg_conn_is_stale_on(struct link_health *link, const struct conn *c)
{
    struct pollfd p = {.fd = PQsocket(c->pg), .events = POLLIN};

    if (PQstatus(c->pg) != CONNECTION_OK || p.fd < 0 || c->epoch != link_epoch(link))
        return true;
    return poll(&p, 1, 0) != 0;
}

static bool conn_is_stale(struct pg_store *s, const struct conn *c)
{
    return mh_pg_conn_is_stale_on(&s->link, c);
}

void mh_pg_conn_give(struct pg_store *s, const struct conn *c)
{
    pool_give(&s->pool, (size_t)(c - s->conns));
}

/* Takes an idle connection, waiting until @p deadline; makes sure it is connected. */
enum mh_status mh_pg_conn_take(struct pg_store *s, int64_t deadline, struct conn **out)
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
            mh_pg_conn_give(s, c);
            return MH_E_UNAVAILABLE;
        }
        rc = conn_open(s, c, deadline);
        if (rc != MH_OK) {
            mh_pg_conn_give(s, c);
            return rc;
        }
        link_ok(&s->link);
    }
    *out = c;
    return MH_OK;
}
