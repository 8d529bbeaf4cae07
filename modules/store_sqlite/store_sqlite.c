/*
 * store_sqlite: the "sqlite" store driver. One database file in WAL mode, reached through a
 * small pool of connections (each with its prepared statements). Every write is one
 * BEGIN IMMEDIATE transaction that checks the expected version and takes the next value of a
 * store-wide counter kept in the file, so compare-and-set is atomic and versions survive restarts.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../store_common/store_expect.h"
#include "../store_common/store_scan.h"
#include "modhost/sdk.h"

#define POOL_MAX 64

/* Scans copy records in batches and release the connection before calling back, so a
 * callback may use the store and no read transaction stays open while it runs. A batch stops
 * at this many records or after the record that crosses this many bytes. */

/* The store-wide version counter lives in `meta` so that it never goes back, also when the
 * record holding the highest version is deleted. */
static const char schema_sql[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB NOT NULL, ver INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta(id INTEGER PRIMARY KEY CHECK (id = 0),"
    " ver INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta(id, ver) VALUES (0, 0);"
    "COMMIT;";

enum stmt_id {
    MH_SQ_BEGIN,
    MH_SQ_COMMIT,
    MH_SQ_ROLLBACK,
    MH_SQ_GET,
    MH_SQ_VERSION,
    MH_SQ_COUNTER_GET,
    MH_SQ_COUNTER_SET,
    MH_SQ_PUT,
    MH_SQ_DELETE,
    MH_SQ_SCAN_FROM,  /* k >= ?1 */
    MH_SQ_SCAN_AFTER, /* k > ?1 */
    MH_SQ_NSTMT
};

static const char *const stmt_sql[MH_SQ_NSTMT] = {
    [MH_SQ_BEGIN] = "BEGIN IMMEDIATE",
    [MH_SQ_COMMIT] = "COMMIT",
    [MH_SQ_ROLLBACK] = "ROLLBACK",
    [MH_SQ_GET] = "SELECT v, ver FROM kv WHERE k = ?1",
    [MH_SQ_VERSION] = "SELECT ver FROM kv WHERE k = ?1",
    [MH_SQ_COUNTER_GET] = "SELECT ver FROM meta WHERE id = 0",
    [MH_SQ_COUNTER_SET] = "UPDATE meta SET ver = ?1 WHERE id = 0",
    [MH_SQ_PUT] = "INSERT OR REPLACE INTO kv(k, v, ver) VALUES (?1, ?2, ?3)",
    [MH_SQ_DELETE] = "DELETE FROM kv WHERE k = ?1",
    [MH_SQ_SCAN_FROM] = "SELECT k, v, ver FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2",
    [MH_SQ_SCAN_AFTER] = "SELECT k, v, ver FROM kv WHERE k > ?1 ORDER BY k LIMIT ?2",
};

struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[MH_SQ_NSTMT];
    struct conn *next; /* in the idle list */
};

struct sq_store {
    char *path; /* absolute */
    struct conn *conns;
    size_t nconns;
    struct conn *idle; /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Writers of this process queue here rather than in SQLite's busy handler, which polls
     * with sleeps; busy_timeout_ms still bounds the wait for other processes. */
    pthread_mutex_t write_mu;
};

struct options {
    const char *path;
    bool is_sync_full;
    long long busy_timeout_ms;
    long long pool_size;
};

/* --- Errors --- */

/* Sets the message for a failed SQLite call on @p db and maps its code to a status. Call it
 * before anything else runs on @p db, which would replace the message. */
static enum mh_status fail(const struct sq_store *s, sqlite3 *db, int rc, const char *what)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        mh_store_set_error("database %s is busy (%s): %s", s->path, what, msg);
        return MH_E_UNAVAILABLE;
    case SQLITE_TOOBIG:
        mh_store_set_error("database %s: %s: %s", s->path, what, msg);
        return MH_E_LIMIT;
    case SQLITE_NOMEM:
        mh_store_set_error("database %s: %s: out of memory", s->path, what);
        return MH_E_NOMEM;
    default:
        mh_store_set_error("database %s: %s: %s", s->path, what, msg);
        return MH_E_IO;
    }
}

/* --- Connections --- */

static struct conn *conn_take(struct sq_store *s)
{
    struct conn *c;

    pthread_mutex_lock(&s->mu);
    while (!s->idle)
        pthread_cond_wait(&s->cv, &s->mu);
    c = s->idle;
    s->idle = c->next;
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void conn_give(struct sq_store *s, struct conn *c)
{
    pthread_mutex_lock(&s->mu);
    c->next = s->idle;
    s->idle = c;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void conn_cleanup(struct conn *c)
{
    for (int i = 0; i < MH_SQ_NSTMT; i++) {
        sqlite3_finalize(c->st[i]);
        c->st[i] = NULL;
    }
    sqlite3_close(c->db); /* NULL-safe; succeeds once the statements are finalized */
    c->db = NULL;
}

#define MODE_SIZE 16

/* sqlite3_exec callback: keeps the first column of the first row in a MODE_SIZE buffer. */
static int first_column(void *arg, int ncols, char **values, char **names)
{
    char *out = arg;

    (void)names;
    if (ncols > 0 && values[0] && !out[0])
        (void)snprintf(out, MODE_SIZE, "%s", values[0]);
    return 0;
}

/* Once per open, on the first connection: WAL mode (kept in the file) and the tables. */
static enum mh_status db_setup(const struct sq_store *s, sqlite3 *db)
{
    char mode[MODE_SIZE] = "";
    int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", first_column, mode, NULL);

    if (rc != SQLITE_OK)
        return fail(s, db, rc, "cannot select WAL mode");
    if (strcmp(mode, "wal") != 0) {
        mh_store_set_error("database %s: cannot select WAL mode (the journal mode is '%s')",
                           s->path, mode);
        return MH_E_IO;
    }
    rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        enum mh_status st = fail(s, db, rc, "cannot create the tables");

        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    return MH_OK;
}

/* Opens connection @p c and prepares its statements; the first one also sets up the file. */
static enum mh_status conn_init(const struct sq_store *s, struct conn *c, const struct options *o,
                                bool is_first)
{
    int rc = sqlite3_open_v2(
        s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK)
        return fail(s, c->db, rc, "cannot open");
    if (sqlite3_db_readonly(c->db, "main") == 1) {
        /* SQLite falls back to read-only quietly; every write would fail later. */
        mh_store_set_error("database %s: opened read-only (check the permissions of the file "
                           "and its directory)",
                           s->path);
        return MH_E_IO;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, (int)o->busy_timeout_ms);
    rc = sqlite3_exec(c->db,
                      o->is_sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(s, c->db, rc, "cannot set synchronous");
    if (is_first) {
        enum mh_status st = db_setup(s, c->db);

        if (st != MH_OK)
            return st;
    }
    for (int i = 0; i < MH_SQ_NSTMT; i++) {
        rc = sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL);
        if (rc != SQLITE_OK)
            return fail(s, c->db, rc, "cannot prepare a statement (is it a modhost store?)");
    }
    return MH_OK;
}

/* --- Statements --- */

static int bind_bytes(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    if (n == 0)
        return sqlite3_bind_zeroblob(st, i, 0); /* a NULL pointer would bind SQL NULL */
    return sqlite3_bind_blob64(st, i, p, (sqlite3_uint64)n, SQLITE_STATIC);
}

/* Runs a statement without results (BEGIN, COMMIT, ...). */
static enum mh_status run(const struct sq_store *s, struct conn *c, enum stmt_id id,
                          const char *what)
{
    sqlite3_stmt *st = c->st[id];
    int rc = sqlite3_step(st);
    enum mh_status status = rc == SQLITE_DONE ? MH_OK : fail(s, c->db, rc, what);

    sqlite3_reset(st);
    return status;
}

/* The version of @p key in *ver, 0 if absent. */
static enum mh_status read_version(const struct sq_store *s, struct conn *c, const void *key,
                                   size_t klen, uint64_t *ver)
{
    sqlite3_stmt *st = c->st[MH_SQ_VERSION];
    enum mh_status status = MH_OK;
    int rc = bind_bytes(st, 1, key, klen);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ver = (uint64_t)sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        *ver = 0;
    else
        status = fail(s, c->db, rc, "cannot read a version");
    sqlite3_reset(st);
    return status;
}

/* Takes the next store-wide version. Inside a write transaction. */
static enum mh_status next_version(const struct sq_store *s, struct conn *c, uint64_t *ver)
{
    sqlite3_stmt *st = c->st[MH_SQ_COUNTER_GET];
    int rc = sqlite3_step(st);
    uint64_t v = 0;

    if (rc == SQLITE_ROW)
        v = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE) {
            mh_store_set_error("database %s: the version counter is missing", s->path);
            return MH_E_IO;
        }
        return fail(s, c->db, rc, "cannot read the version counter");
    }
    if (v > INT64_MAX) {
        mh_store_set_error("database %s: the version counter is exhausted", s->path);
        return MH_E_LIMIT;
    }
    st = c->st[MH_SQ_COUNTER_SET];
    rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)v);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return fail(s, c->db, rc, "cannot update the version counter");
    *ver = v;
    return MH_OK;
}

/* Commits if @p status is MH_OK, else (or if the commit fails) rolls back. */
static enum mh_status write_end(const struct sq_store *s, struct conn *c, enum mh_status status)
{
    if (status == MH_OK)
        status = run(s, c, MH_SQ_COMMIT, "cannot commit");
    if (!sqlite3_get_autocommit(c->db)) {
        int rc = sqlite3_step(c->st[MH_SQ_ROLLBACK]);

        sqlite3_reset(c->st[MH_SQ_ROLLBACK]);
        (void)rc; /* the first failure is the one reported */
    }
    return status;
}

/* --- Driver --- */

/* The store's settings; `help` says what a valid value is, for error messages. */
static const struct mh_setting_def sqlite_settings[] = {
    {"path", MH_SETTING_STRING,
     "the database file's path (its directory must exist; a relative path is resolved against "
     "the directory of the conf.d file that sets it)"},
    {"synchronous", MH_SETTING_STRING,
     "\"full\" (the default: an acknowledged write survives a power loss) or \"normal\""},
    {"busy_timeout_ms", MH_SETTING_INT,
     "an integer 0..2147483647, how long a write waits for another process's lock (default "
     "5000)"},
    {"pool_size", MH_SETTING_INT,
     "an integer 1..64, connections shared by the worker threads (default 8)"},
    {NULL, 0, NULL},
};

static enum mh_status bad_setting(int idx, bool is_missing)
{
    mh_store_set_error("%s setting '%s': %s %s", is_missing ? "missing" : "invalid",
                       sqlite_settings[idx].name, is_missing ? "required," : "expected",
                       sqlite_settings[idx].help);
    return MH_E_INVAL;
}

static enum mh_status read_options(const struct mh_conf *settings, struct options *o)
{
    const char *sync = "full";
    enum mh_status rc;

    *o = (struct options){.is_sync_full = true, .busy_timeout_ms = 5000, .pool_size = 8};
    rc = mh_conf_path(settings, "path", &o->path); /* relative to the conf.d file */
    if (rc != MH_OK || o->path[0] == '\0' || strcmp(o->path, ":memory:") == 0)
        return bad_setting(0, rc == MH_E_NOTFOUND);
    if (mh_conf_string(settings, "synchronous", &sync) == MH_E_INVAL ||
        (strcmp(sync, "full") != 0 && strcmp(sync, "normal") != 0))
        return bad_setting(1, false);
    o->is_sync_full = strcmp(sync, "full") == 0;
    if (mh_conf_int(settings, "busy_timeout_ms", &o->busy_timeout_ms) == MH_E_INVAL ||
        o->busy_timeout_ms < 0 || o->busy_timeout_ms > INT_MAX)
        return bad_setting(2, false);
    if (mh_conf_int(settings, "pool_size", &o->pool_size) == MH_E_INVAL || o->pool_size < 1 ||
        o->pool_size > POOL_MAX)
        return bad_setting(3, false);
    return MH_OK;
}

/* Sets the message for a database directory that realpath() could not resolve (errno @p err). */
static enum mh_status missing_dir(const char *path, const char *dir, int err)
{
    char cwd[PATH_MAX], buf[128];
    const char *why = err == ENOENT    ? "does not exist; create it first"
                      : err == ENOTDIR ? "is not a directory"
                                       : strerror_r(err, buf, sizeof(buf));

    if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';
    mh_store_set_error("setting 'path' (%s): directory '%s'%s%s%s %s", path, dir,
                       cwd[0] ? " (relative to the working directory " : "", cwd, cwd[0] ? ")" : "",
                       why);
    return err == ENOENT || err == ENOTDIR ? MH_E_NOTFOUND : MH_E_IO;
}

/*
 * The absolute path of the database file: its directory must exist (it is not created, so
 * that a typo does not scatter databases). A relative path is resolved against the process's
 * working directory now, once; the connections all open here, so a later chdir is harmless.
 */
static enum mh_status resolve_path(const char *path, char **out)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir, *real = NULL;
    enum mh_status rc = MH_OK;

    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        mh_store_set_error("setting 'path' (%s) must name a file, not a directory", path);
        return MH_E_INVAL;
    }
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    real = realpath(dir, NULL);
    if (!real) {
        rc = missing_dir(path, dir, errno);
        goto out;
    }
    if (asprintf(out, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base) < 0) {
        mh_store_set_error("out of memory");
        rc = MH_E_NOMEM;
    }
out:
    free(real);
    free(dir);
    return rc;
}

static void sqlite_close(void *arg)
{
    struct sq_store *s = arg;

    if (!s)
        return;
    for (size_t i = 0; s->conns && i < s->nconns; i++)
        conn_cleanup(&s->conns[i]);
    free(s->conns);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    free(s->path);
    free(s);
}

static enum mh_status sqlite_open(struct mh_host *host, const struct mh_conf *settings, void **out)
{
    struct sq_store *s = NULL;
    struct options o;
    enum mh_status rc;

    if (!sqlite3_threadsafe()) {
        mh_store_set_error("libsqlite3 was built without thread support (SQLITE_THREADSAFE=0)");
        return MH_E_IO;
    }
    rc = read_options(settings, &o);
    if (rc != MH_OK)
        return rc;
    s = calloc(1, sizeof(*s));
    if (!s) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    rc = resolve_path(o.path, &s->path);
    if (rc != MH_OK)
        goto out;
    s->conns = calloc((size_t)o.pool_size, sizeof(*s->conns));
    if (!s->conns) {
        mh_store_set_error("out of memory");
        rc = MH_E_NOMEM;
        goto out;
    }
    for (; s->nconns < (size_t)o.pool_size; s->nconns++) {
        struct conn *c = &s->conns[s->nconns];

        rc = conn_init(s, c, &o, s->nconns == 0);
        if (rc != MH_OK) {
            s->nconns++; /* so that close releases it */
            goto out;
        }
        c->next = s->idle;
        s->idle = c;
    }
    mh_log(host, MH_LOG_INFO, "sqlite store open: path=%s synchronous=%s pool_size=%lld", s->path,
           o.is_sync_full ? "full" : "normal", o.pool_size);
    *out = s;
    s = NULL;
out:
    sqlite_close(s);
    return rc;
}

static enum mh_status sqlite_get(void *arg, const void *key, size_t klen, struct mh_value *out)
{
    struct sq_store *s = arg;
    struct conn *c = conn_take(s);
    sqlite3_stmt *st = c->st[MH_SQ_GET];
    enum mh_status status = MH_OK;
    int rc = bind_bytes(st, 1, key, klen);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(st, 0);
        size_t vlen = (size_t)sqlite3_column_bytes(st, 0);

        out->data = malloc(vlen + 1);
        if (out->data) {
            if (vlen)
                memcpy(out->data, v, vlen);
            ((char *)out->data)[vlen] = '\0';
            out->len = vlen;
            out->version = (uint64_t)sqlite3_column_int64(st, 1);
        } else {
            mh_store_set_error("out of memory copying a value of %zu bytes", vlen);
            status = MH_E_NOMEM;
        }
    } else if (rc == SQLITE_DONE) {
        mh_store_set_error("no such key (%zu bytes)", klen);
        status = MH_E_NOTFOUND;
    } else {
        status = fail(s, c->db, rc, "cannot read");
    }
    sqlite3_reset(st);
    conn_give(s, c);
    return status;
}

static enum mh_status do_put(const struct sq_store *s, struct conn *c, const void *key, size_t klen,
                             const void *val, size_t vlen, uint64_t expect, uint64_t *version,
                             int *created)
{
    sqlite3_stmt *st = c->st[MH_SQ_PUT];
    uint64_t cur = 0, ver = 0;
    enum mh_status status = run(s, c, MH_SQ_BEGIN, "cannot begin a write");
    int rc;

    if (status == MH_OK)
        status = read_version(s, c, key, klen, &cur);
    if (status == MH_OK && !expect_holds(cur, expect))
        status = MH_E_CONFLICT;
    if (status == MH_OK)
        status = next_version(s, c, &ver);
    if (status != MH_OK)
        return write_end(s, c, status);
    rc = bind_bytes(st, 1, key, klen);
    if (rc == SQLITE_OK)
        rc = bind_bytes(st, 2, val, vlen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)ver);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        status = fail(s, c->db, rc, "cannot write");
    sqlite3_reset(st);
    status = write_end(s, c, status);
    if (status == MH_OK) {
        *version = ver;
        *created = cur == 0;
    }
    return status;
}

static enum mh_status sqlite_put(void *arg, const void *key, size_t klen, const void *val,
                                 size_t vlen, uint64_t expect, uint64_t *version, int *created)
{
    struct sq_store *s = arg;
    enum mh_status status;
    struct conn *c;

    pthread_mutex_lock(&s->write_mu);
    c = conn_take(s);
    status = do_put(s, c, key, klen, val, vlen, expect, version, created);
    conn_give(s, c);
    pthread_mutex_unlock(&s->write_mu);
    return status;
}

static enum mh_status do_del(const struct sq_store *s, struct conn *c, const void *key, size_t klen,
                             uint64_t expect)
{
    sqlite3_stmt *st = c->st[MH_SQ_DELETE];
    enum mh_status status = run(s, c, MH_SQ_BEGIN, "cannot begin a write");
    uint64_t cur = 0;
    int rc;

    if (status == MH_OK)
        status = read_version(s, c, key, klen, &cur);
    if (status == MH_OK && cur == 0) {
        mh_store_set_error("no such key (%zu bytes)", klen);
        status = MH_E_NOTFOUND;
    }
    if (status == MH_OK && !expect_holds(cur, expect))
        status = MH_E_CONFLICT;
    if (status != MH_OK)
        return write_end(s, c, status);
    rc = bind_bytes(st, 1, key, klen);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        status = fail(s, c->db, rc, "cannot delete");
    sqlite3_reset(st);
    return write_end(s, c, status);
}

static enum mh_status sqlite_del(void *arg, const void *key, size_t klen, uint64_t expect)
{
    struct sq_store *s = arg;
    enum mh_status status;
    struct conn *c;

    pthread_mutex_lock(&s->write_mu);
    c = conn_take(s);
    status = do_del(s, c, key, klen, expect);
    conn_give(s, c);
    pthread_mutex_unlock(&s->write_mu);
    return status;
}

/* --- Scans --- */

/* Copies the current row into the next slot of @p b. */
static enum mh_status batch_add(struct batch *b, sqlite3_stmt *st)
{
    const void *k = sqlite3_column_blob(st, 0);
    size_t klen = (size_t)sqlite3_column_bytes(st, 0);
    const void *v = sqlite3_column_blob(st, 1);
    size_t vlen = (size_t)sqlite3_column_bytes(st, 1);
    struct rec *r = &b->recs[b->n];

    r->key = malloc(klen + vlen + 1);
    if (!r->key) {
        mh_store_set_error("out of memory copying scan results");
        return MH_E_NOMEM;
    }
    if (klen)
        memcpy(r->key, k, klen);
    if (vlen)
        memcpy(r->key + klen, v, vlen);
    r->klen = klen;
    r->vlen = vlen;
    r->version = (uint64_t)sqlite3_column_int64(st, 2);
    b->n++;
    return MH_OK;
}

static bool has_prefix(sqlite3_stmt *st, const void *prefix, size_t plen)
{
    const void *k = sqlite3_column_blob(st, 0); /* before _bytes, as SQLite asks */
    size_t klen = (size_t)sqlite3_column_bytes(st, 0);

    return plen == 0 || (k && klen >= plen && memcmp(k, prefix, plen) == 0);
}

/* Copies up to @p want records (> 0) that start with @p prefix, beginning at @p start
 * (exclusively if @p exclusive), into @p b. */
static enum mh_status collect(struct sq_store *s, const void *prefix, size_t plen,
                              const void *start, size_t slen, bool exclusive, size_t want,
                              struct batch *b)
{
    struct conn *c = conn_take(s);
    sqlite3_stmt *st = c->st[exclusive ? MH_SQ_SCAN_AFTER : MH_SQ_SCAN_FROM];
    enum mh_status status = MH_OK;
    size_t bytes = 0;
    int rc;

    if (want > SCAN_BATCH_RECORDS)
        want = SCAN_BATCH_RECORDS;
    b->is_last = false;
    rc = bind_bytes(st, 1, start, slen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)want);
    while (rc == SQLITE_OK && b->n < want && bytes < SCAN_BATCH_BYTES) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        if (!has_prefix(st, prefix, plen)) {
            rc = SQLITE_DONE; /* past the prefix: no later key has it */
            break;
        }
        status = batch_add(b, st);
        if (status != MH_OK)
            break;
        bytes += b->recs[b->n - 1].klen + b->recs[b->n - 1].vlen;
        rc = SQLITE_OK;
    }
    if (status == MH_OK && rc == SQLITE_DONE)
        b->is_last = true;
    else if (status == MH_OK && rc != SQLITE_OK)
        status = fail(s, c->db, rc, "cannot scan");
    sqlite3_reset(st);
    conn_give(s, c);
    return status;
}

static enum mh_status collect_any(void *db, const void *prefix, size_t plen, const void *start,
                                  size_t slen, bool exclusive, size_t want, struct batch *b)
{
    return collect(db, prefix, plen, start, slen, exclusive, want, b);
}

static enum mh_status sqlite_scan(void *arg, const void *prefix, size_t plen, const void *after,
                                  size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg)
{
    return store_scan_pages(arg, collect_any, prefix, plen, after, alen, limit, fn, fn_arg);
}

static const struct mh_store_driver sqlite_drivers[] = {
    {
        .size = sizeof(struct mh_store_driver),
        .name = "sqlite",
        .caps = MH_STORE_CAP_CAS | MH_STORE_CAP_SCAN,
        .open = sqlite_open,
        .close = sqlite_close,
        .get = sqlite_get,
        .put = sqlite_put,
        .del = sqlite_del,
        .scan = sqlite_scan,
        .settings = sqlite_settings,
    },
    {0},
};

/* The module itself takes no settings (each store has its own, read in sqlite_open). Its code
 * stays mapped after fini (no MH_MODULE_UNLOAD_SAFE): unmapping it could unmap libsqlite3,
 * whose process-wide state this module does not control. */
static const struct mh_setting_def no_settings[] = {{NULL, 0, NULL}};

MH_MODULE(.name = "store_sqlite", .version = "1.0.0", .settings = no_settings,
          .drivers = sqlite_drivers)
