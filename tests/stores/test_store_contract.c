/*
 * The store contract every driver must pass, checked through the core's store layer (the calls
 * modules reach via the SDK) on a store opened as the core opens conf.d stores. One CTest entry
 * per driver runs this executable with the driver's name:
 *     test_store_contract DRIVER MODULE_PATH [CASE-SUBSTRING]
 * Each case gets a fresh store in a fresh temporary directory. Drivers of networked stores
 * reach servers that tests/support/services.py starts, named by MH_TEST_* variables.
 */
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <libconfig.h>
#include <sqlite3.h>

#include "base/err.h"
#include "base/log.h"
#include "mod/host.h"
#include "mod/loader.h"
#include "mod/store.h"

/* --- Drivers under test --- */

/* A settings group that must not open, and a text its message must contain. */
struct bad_settings {
    const char *settings;
    const char *needle;
};

/* What the suite knows about a driver. In settings, @DIR@ stands for the case's temp dir, @ID@
 * for a name unique to the case ([a-z0-9_]) and @ENV_NAME@ for environment variable NAME. */
struct driver_row {
    const char *driver;
    const char *module;
    const char *settings;
    bool is_persistent;             /* data survives closing and reopening the store */
    const char *limited;            /* settings with a 100-byte limit, or NULL */
    const struct bad_settings *bad; /* ends with {NULL, NULL} */
};

static const struct bad_settings memory_bad[] = {
    {"max_bytes = 0;", "max_bytes"},
    {"max_bytes = \"lots\";", "max_bytes"},
    {NULL, NULL},
};

static const struct bad_settings sqlite_bad[] = {
    {"", "path"},
    {"path = 42;", "path"},
    {"path = \"@DIR@/missing/kv.db\";", "@DIR@/missing"},
    {"path = \"no-such-dir-here/kv.db\";", "working directory"},
    {"path = \"@DIR@/\";", "path"},
    {"path = \"@DIR@\";", "@DIR@"},
    {"path = \"@DIR@/garbage\";", "not a database"},
    {"path = \"@DIR@/kv.db\"; synchronous = \"sometimes\";", "synchronous"},
    {"path = \"@DIR@/kv.db\"; pool_size = 0;", "pool_size"},
    {"path = \"@DIR@/kv.db\"; pool_size = \"8\";", "pool_size"},
    {"path = \"@DIR@/kv.db\"; busy_timeout_ms = -1;", "busy_timeout_ms"},
    {NULL, NULL},
};

#define PG_SERVER                                                      \
    "host = \"@ENV_MH_TEST_PG_HOST@\"; port = @ENV_MH_TEST_PG_PORT@; " \
    "dbname = \"@ENV_MH_TEST_PG_DBNAME@\"; sslmode = \"disable\"; "
#define PG_LOGIN "user = \"@ENV_MH_TEST_PG_USER@\"; password_file = \"@ENV_MH_TEST_PG_PASSFILE@\"; "

static const struct bad_settings postgres_bad[] = {
    {PG_SERVER "password_file = \"@ENV_MH_TEST_PG_PASSFILE@\";", "user"},
    {PG_SERVER PG_LOGIN "pool_size = 0;", "pool_size"},
    {PG_SERVER PG_LOGIN "timeout_ms = \"soon\";", "timeout_ms"},
    {PG_SERVER PG_LOGIN "table = \"Bad-Name\";", "table"},
    {"host = \"@ENV_MH_TEST_PG_HOST@\"; port = 70000; " PG_LOGIN, "port"},
    {"host = \"@ENV_MH_TEST_PG_HOST@\"; sslmode = \"sometimes\"; " PG_LOGIN, "sslmode"},
    {PG_SERVER "user = \"@ENV_MH_TEST_PG_USER@\"; password_file = \"@DIR@/missing\";",
     "@DIR@/missing"},
    {PG_SERVER "user = \"@ENV_MH_TEST_PG_USER@\"; password_file = \"@DIR@/garbage\";",
     "readable by everyone"},
    {PG_SERVER "user = \"nobody_here\"; password_file = \"@ENV_MH_TEST_PG_PASSFILE@\";",
     "nobody_here"},
    {"host = \"@ENV_MH_TEST_PG_HOST@\"; port = @ENV_MH_TEST_PG_PORT@; dbname = \"no_such_db\"; "
     "sslmode = \"disable\"; " PG_LOGIN,
     "no_such_db"},
    {NULL, NULL},
};

#define REDIS_SERVER "host = \"@ENV_MH_TEST_REDIS_HOST@\"; port = @ENV_MH_TEST_REDIS_PORT@; "
#define REDIS_LOGIN  "password_file = \"@ENV_MH_TEST_REDIS_PASSFILE@\"; "

static const struct bad_settings redis_bad[] = {
    {REDIS_SERVER REDIS_LOGIN "pool_size = 65;", "pool_size"},
    {REDIS_SERVER REDIS_LOGIN "prefix = \"\";", "prefix"},
    {REDIS_SERVER REDIS_LOGIN "db = -1;", "db"},
    {"port = 0;" REDIS_LOGIN, "port"},
    {REDIS_SERVER "username = \"app\";", "password_file"},
    {REDIS_SERVER "password_file = \"@DIR@/missing\";", "@DIR@/missing"},
    {REDIS_SERVER "password_file = \"@ENV_MH_TEST_REDIS_BAD_PASSFILE@\";", "password"},
    {REDIS_SERVER, "NOAUTH"},
    {NULL, NULL},
};

static const struct driver_row rows[] = {
    {"memory", "store_memory", "", false, "max_bytes = 100;", memory_bad},
    {"sqlite", "store_sqlite", "path = \"@DIR@/kv.db\";", true, NULL, sqlite_bad},
    {"postgres", "store_postgres", PG_SERVER PG_LOGIN "table = \"@ID@\";", true, NULL,
     postgres_bad},
    {"redis", "store_redis", REDIS_SERVER REDIS_LOGIN "prefix = \"@ID@:\";", true, NULL, redis_bad},
};

/* --- Fixture: one store per case --- */

static struct {
    const struct driver_row *row;
    struct mh_module *mod;
    const struct mh_store_driver *driver;
    char dir[256];
    char id[32]; /* unique to the case: a table or key prefix on a shared server */
    unsigned ncases;
    config_t cfg; /* holds the settings group while the store is open */
    bool has_cfg;
    struct mh_store *st;
} g;

/* The text of placeholder @p name (between the @ signs, @p len bytes), or NULL. */
static const char *placeholder(const char *name, size_t len)
{
    char var[64];
    const char *value;

    if (len == 3 && strncmp(name, "DIR", 3) == 0)
        return g.dir;
    if (len == 2 && strncmp(name, "ID", 2) == 0)
        return g.id;
    if (len <= 4 || len >= sizeof(var) + 4 || strncmp(name, "ENV_", 4) != 0)
        return NULL;
    memcpy(var, name + 4, len - 4);
    var[len - 4] = '\0';
    value = getenv(var);
    if (!value) {
        fprintf(stderr, "driver '%s' needs %s: run it through tests/support/services.py\n",
                g.row->driver, var);
        exit(2); /* NOLINT(concurrency-mt-unsafe): expand() runs on the test's own thread */
    }
    return value;
}

/* @p tmpl with its placeholders (see struct driver_row) replaced. Caller frees. */
static char *expand(const char *tmpl)
{
    size_t n = 1, cap = strlen(tmpl) + 256;
    char *out = malloc(cap);

    if (!out)
        abort();
    for (const char *p = tmpl; *p;) {
        const char *end = p[0] == '@' ? strchr(p + 1, '@') : NULL;
        const char *value = end ? placeholder(p + 1, (size_t)(end - p - 1)) : NULL;
        size_t vlen = value ? strlen(value) : 1;

        if (n + vlen >= cap) {
            cap = 2 * (n + vlen);
            out = realloc(out, cap);
            if (!out)
                abort();
        }
        memcpy(out + n - 1, value ? value : p, vlen);
        n += vlen;
        p = value ? end + 1 : p + 1;
    }
    out[n - 1] = '\0';
    return out;
}

static void settings_release(void)
{
    if (g.has_cfg)
        config_destroy(&g.cfg);
    g.has_cfg = false;
}

/* Opens a store with settings @p tmpl (see expand). @return the status; err gets the reason. */
static enum mh_status store_open_with(const char *tmpl, struct mh_store **out, struct mh_err *err)
{
    char *body = expand(tmpl);
    char *text = malloc(strlen(body) + 32);
    const config_setting_t *group;

    if (!text)
        abort();
    snprintf(text, strlen(body) + 32, "settings: { %s };", body);
    settings_release();
    config_init(&g.cfg);
    g.has_cfg = true;
    if (config_read_string(&g.cfg, text) != CONFIG_TRUE) {
        fprintf(stderr, "bad settings in the test: %s: %s\n", text, config_error_text(&g.cfg));
        abort();
    }
    free(text);
    free(body);
    group = config_lookup(&g.cfg, "settings");
    return mh_store_open("contract", g.driver, g.mod, group, out, err);
}

static void store_reopen(const char *tmpl)
{
    struct mh_err err = {0};

    mh_store_close(g.st);
    g.st = NULL;
    if (store_open_with(tmpl, &g.st, &err) != MH_OK) {
        fprintf(stderr, "cannot open the store: %s\n", err.msg);
        g.st = NULL;
    }
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(g.dir, sizeof(g.dir), "%s/mh-store-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
    if (!mkdtemp(g.dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(g.id, sizeof(g.id), "c%ld_%u", (long)getpid(), ++g.ncases);
    store_reopen(g.row->settings);
}

static void teardown(void)
{
    mh_store_close(g.st);
    g.st = NULL;
    settings_release();
    if (nftw(g.dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) != 0)
        perror(g.dir);
}

/* --- Helpers --- */

#define K(s) (s), (sizeof(s) - 1) /* a literal key with its length (may hold NUL bytes) */

static struct mh_store *store(void)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(g.st);
    return g.st;
}

static enum mh_status put(const void *key, size_t klen, const char *val, uint64_t expect,
                          uint64_t *version, int *created)
{
    return mh_store_put_impl(store(), key, klen, val, strlen(val), expect, version, created);
}

static uint64_t put_ok(const void *key, size_t klen, const char *val)
{
    uint64_t v = 0;

    CU_ASSERT_EQUAL(put(key, klen, val, MH_STORE_ANY, &v, NULL), MH_OK);
    CU_ASSERT(v > 0);
    return v;
}

/* Asserts @p key holds @p val at @p version (0: any version). */
static void expect_value(const void *key, size_t klen, const char *val, uint64_t version)
{
    struct mh_value v;

    CU_ASSERT_EQUAL_FATAL(mh_store_get_impl(store(), key, klen, &v), MH_OK);
    CU_ASSERT_EQUAL(v.len, strlen(val));
    CU_ASSERT(v.len == strlen(val) && memcmp(v.data, val, v.len) == 0);
    CU_ASSERT_EQUAL(((const char *)v.data)[v.len], '\0');
    if (version)
        CU_ASSERT_EQUAL(v.version, version);
    mh_value_free_impl(&v);
}

static void expect_missing(const void *key, size_t klen)
{
    struct mh_value v;

    CU_ASSERT_EQUAL(mh_store_get_impl(store(), key, klen, &v), MH_E_NOTFOUND);
    CU_ASSERT_STRING_NOT_EQUAL(mh_store_error_impl(), "");
}

/* Asserts that the last store call failed with a message. */
static void expect_message(void)
{
    CU_ASSERT_STRING_NOT_EQUAL(mh_store_error_impl(), "");
}

/* Scan results. */
struct rec {
    unsigned char key[MH_STORE_MAX_KEY];
    size_t klen;
    char val[32]; /* the value's first bytes */
    size_t vlen;
    uint64_t version;
};

struct seen {
    struct rec *recs;
    size_t n;
    size_t cap;
    size_t stop_after; /* 0: never stop */
};

static int on_record(const void *key, size_t klen, const void *val, size_t vlen, uint64_t version,
                     void *arg)
{
    struct seen *s = arg;
    struct rec *r;

    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
        if (!s->recs)
            abort();
    }
    r = &s->recs[s->n++];
    memset(r, 0, sizeof(*r));
    if (klen <= sizeof(r->key))
        memcpy(r->key, key, klen);
    r->klen = klen;
    memcpy(r->val, val, vlen < sizeof(r->val) - 1 ? vlen : sizeof(r->val) - 1);
    r->vlen = vlen;
    r->version = version;
    return s->stop_after && s->n >= s->stop_after;
}

static enum mh_status scan(const void *prefix, size_t plen, const void *after, size_t alen,
                           size_t limit, struct seen *s)
{
    return mh_store_scan_impl(store(), prefix, plen, after, alen, limit, on_record, s);
}

static bool rec_is(const struct rec *r, const void *key, size_t klen)
{
    return r->klen == klen && memcmp(r->key, key, klen) == 0;
}

/* --- Basic operations --- */

static void test_round_trip(void)
{
    uint64_t v = 0;
    int created = -1;

    CU_ASSERT_EQUAL(put(K("greeting"), "hello", MH_STORE_ANY, &v, &created), MH_OK);
    CU_ASSERT(v > 0);
    CU_ASSERT_EQUAL(created, 1);
    expect_value(K("greeting"), "hello", v);
}

static void test_overwrite_bumps_version(void)
{
    uint64_t v1 = 0, v2 = 0;
    int created = -1;

    CU_ASSERT_EQUAL(put(K("k"), "one", MH_STORE_ANY, &v1, NULL), MH_OK);
    CU_ASSERT_EQUAL(put(K("k"), "two", MH_STORE_ANY, &v2, &created), MH_OK);
    CU_ASSERT(v2 > v1);
    CU_ASSERT_EQUAL(created, 0);
    expect_value(K("k"), "two", v2);
}

static void test_get_missing(void)
{
    expect_missing(K("nobody"));
    put_ok(K("somebody"), "x");
    expect_missing(K("somebod"));
    expect_missing(K("somebody2"));
}

static void test_empty_value(void)
{
    uint64_t v = 0;

    CU_ASSERT_EQUAL(mh_store_put_impl(store(), K("empty"), NULL, 0, MH_STORE_ANY, &v, NULL), MH_OK);
    expect_value(K("empty"), "", v);
}

static void test_large_value(void)
{
    size_t len = (size_t)1024 * 1024;
    unsigned char *big = malloc(len);
    struct mh_value v;
    uint64_t ver = 0;

    if (!big)
        abort();
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 31 + i / 4096); /* not periodic in 256 */
    CU_ASSERT_EQUAL(mh_store_put_impl(store(), K("big"), big, len, MH_STORE_ANY, &ver, NULL),
                    MH_OK);
    CU_ASSERT_EQUAL_FATAL(mh_store_get_impl(store(), K("big"), &v), MH_OK);
    CU_ASSERT_EQUAL(v.len, len);
    CU_ASSERT(v.len == len && memcmp(v.data, big, len) == 0);
    CU_ASSERT_EQUAL(((const unsigned char *)v.data)[len], 0);
    CU_ASSERT_EQUAL(v.version, ver);
    mh_value_free_impl(&v);
    free(big);
}

static void test_binary_keys(void)
{
    static const struct {
        const char *key;
        size_t klen;
        const char *val;
    } keys[] = {
        {"a", 1, "a"},          {"a\0", 2, "a-nul"}, {"a\0b", 3, "a-nul-b"},   {"\0", 1, "nul"},
        {"\0\0", 2, "nul-nul"}, {"\xff", 1, "ff"},   {"\xff\xff", 2, "ff-ff"}, {"a\xff", 2, "a-ff"},
    };
    size_t n = sizeof(keys) / sizeof(keys[0]);

    for (size_t i = 0; i < n; i++)
        put_ok(keys[i].key, keys[i].klen, keys[i].val);
    for (size_t i = 0; i < n; i++)
        expect_value(keys[i].key, keys[i].klen, keys[i].val, 0);
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("a\0"), MH_STORE_ANY), MH_OK);
    expect_missing(K("a\0"));
    expect_value(K("a"), "a", 0);
    expect_value(K("a\0b"), "a-nul-b", 0);
}

static void test_key_length_limits(void)
{
    unsigned char key[MH_STORE_MAX_KEY + 1];
    struct mh_value v;

    memset(key, 'k', sizeof(key));
    key[0] = 0xff;
    put_ok(key, MH_STORE_MAX_KEY, "longest");
    expect_value(key, MH_STORE_MAX_KEY, "longest", 0);
    CU_ASSERT_EQUAL(
        mh_store_put_impl(store(), key, MH_STORE_MAX_KEY + 1, "x", 1, MH_STORE_ANY, NULL, NULL),
        MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_get_impl(store(), key, MH_STORE_MAX_KEY + 1, &v), MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), key, MH_STORE_MAX_KEY + 1, MH_STORE_ANY),
                    MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), key, MH_STORE_MAX_KEY, MH_STORE_ANY), MH_OK);
}

static void test_empty_key(void)
{
    struct mh_value v;

    CU_ASSERT_EQUAL(mh_store_put_impl(store(), "", 0, "x", 1, MH_STORE_ANY, NULL, NULL),
                    MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_put_impl(store(), NULL, 0, "x", 1, MH_STORE_ANY, NULL, NULL),
                    MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_get_impl(store(), "", 0, &v), MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), "", 0, MH_STORE_ANY), MH_E_INVAL);
    expect_message();
}

static void test_versions_unique_and_increasing(void)
{
    uint64_t last = 0;

    for (int i = 0; i < 50; i++) {
        char key[16];
        uint64_t v = 0;

        snprintf(key, sizeof(key), "k%d", i % 7); /* new keys and overwrites */
        CU_ASSERT_EQUAL(
            mh_store_put_impl(store(), key, strlen(key), "v", 1, MH_STORE_ANY, &v, NULL), MH_OK);
        CU_ASSERT(v > last);
        last = v;
    }
}

/* --- Conditional writes --- */

static void test_create_only(void)
{
    uint64_t v1 = 0, v2 = 0;
    int created = -1;

    CU_ASSERT_EQUAL(put(K("once"), "first", MH_STORE_ABSENT, &v1, &created), MH_OK);
    CU_ASSERT_EQUAL(created, 1);
    CU_ASSERT_EQUAL(put(K("once"), "second", MH_STORE_ABSENT, &v2, NULL), MH_E_CONFLICT);
    expect_message();
    CU_ASSERT_EQUAL(v2, 0); /* untouched on failure */
    expect_value(K("once"), "first", v1);
}

static void test_put_with_wrong_version(void)
{
    uint64_t v1 = put_ok(K("doc"), "v1");
    uint64_t v2 = 0;

    CU_ASSERT_EQUAL(put(K("doc"), "stale", v1 + 1000, NULL, NULL), MH_E_CONFLICT);
    expect_message();
    expect_value(K("doc"), "v1", v1);
    CU_ASSERT_EQUAL(put(K("doc"), "v2", v1, &v2, NULL), MH_OK);
    CU_ASSERT(v2 > v1);
    CU_ASSERT_EQUAL(put(K("doc"), "stale", v1, NULL, NULL), MH_E_CONFLICT); /* used up */
    expect_value(K("doc"), "v2", v2);
}

static void test_put_with_version_on_missing_key(void)
{
    CU_ASSERT_EQUAL(put(K("ghost"), "x", 1, NULL, NULL), MH_E_CONFLICT);
    expect_message();
    expect_missing(K("ghost"));
}

static void test_delete_with_wrong_version(void)
{
    uint64_t v = put_ok(K("doc"), "keep me");

    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("doc"), v + 1), MH_E_CONFLICT);
    expect_message();
    expect_value(K("doc"), "keep me", v);
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("doc"), v), MH_OK);
    expect_missing(K("doc"));
}

static void test_delete_then_recreate(void)
{
    uint64_t v1 = put_ok(K("phoenix"), "one");
    uint64_t v2 = 0;
    int created = -1;

    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("phoenix"), MH_STORE_ANY), MH_OK);
    expect_missing(K("phoenix"));
    CU_ASSERT_EQUAL(put(K("phoenix"), "two", MH_STORE_ABSENT, &v2, &created), MH_OK);
    CU_ASSERT(v2 > v1);
    CU_ASSERT_EQUAL(created, 1);
    expect_value(K("phoenix"), "two", v2);
}

static void test_delete_missing(void)
{
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("nobody"), MH_STORE_ANY), MH_E_NOTFOUND);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("nobody"), 7), MH_E_NOTFOUND);
    expect_message();
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("nobody"), MH_STORE_ABSENT), MH_E_INVAL);
}

/* --- Scans --- */

static void test_scan_byte_order(void)
{
    /* Inserted out of order; the expected order below is memcmp order, shorter first. */
    static const struct {
        const char *key;
        size_t klen;
    } in[] = {
        {"pb", 2}, {"p\xff", 2}, {"o\xff", 2}, {"p", 1},     {"pa\xff", 3},
        {"q", 1},  {"p\0", 2},   {"pa", 2},    {"p\x01", 2}, {"p\0\0", 3},
    };
    static const struct {
        const char *key;
        size_t klen;
    } want[] = {
        {"p", 1},  {"p\0", 2},    {"p\0\0", 3}, {"p\x01", 2},
        {"pa", 2}, {"pa\xff", 3}, {"pb", 2},    {"p\xff", 2},
    };
    size_t nwant = sizeof(want) / sizeof(want[0]);
    struct seen s = {0};

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        put_ok(in[i].key, in[i].klen, in[i].key);
    CU_ASSERT_EQUAL(scan(K("p"), NULL, 0, 100, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, nwant);
    for (size_t i = 0; i < s.n && i < nwant; i++) {
        struct mh_value v;

        CU_ASSERT(rec_is(&s.recs[i], want[i].key, want[i].klen));
        CU_ASSERT_EQUAL(s.recs[i].vlen, strlen(want[i].key));
        CU_ASSERT_EQUAL_FATAL(mh_store_get_impl(store(), want[i].key, want[i].klen, &v), MH_OK);
        CU_ASSERT_EQUAL(s.recs[i].version, v.version);
        mh_value_free_impl(&v);
    }
    free(s.recs);
}

/* Puts "item/000".."item/099" in a scrambled order and neighbours outside the prefix. */
static void put_items(void)
{
    put_ok(K("item"), "no slash");
    put_ok(K("item."), "before");
    put_ok(K("item0"), "after");
    for (int i = 0; i < 100; i++) {
        char key[16];
        int n = (i * 37) % 100;

        snprintf(key, sizeof(key), "item/%03d", n);
        put_ok(key, strlen(key), key);
    }
}

static void test_scan_paging(void)
{
    char cursor[MH_STORE_MAX_KEY];
    size_t clen = 0, total = 0, pages = 0;

    put_items();
    for (;;) {
        struct seen s = {0};

        CU_ASSERT_EQUAL_FATAL(scan(K("item/"), cursor, clen, 7, &s), MH_OK);
        CU_ASSERT(s.n <= 7);
        for (size_t i = 0; i < s.n; i++) {
            char key[16];

            snprintf(key, sizeof(key), "item/%03zu", total + i);
            CU_ASSERT(rec_is(&s.recs[i], key, strlen(key))); /* no gap, no duplicate */
            CU_ASSERT_EQUAL(s.recs[i].vlen, strlen(key));
        }
        total += s.n;
        pages++;
        if (s.n == 0) {
            free(s.recs);
            break;
        }
        clen = s.recs[s.n - 1].klen;
        memcpy(cursor, s.recs[s.n - 1].key, clen);
        free(s.recs);
        CU_ASSERT_FATAL(pages <= 100 / 7 + 2);
    }
    CU_ASSERT_EQUAL(total, 100);
}

static void test_scan_empty_prefix(void)
{
    struct seen s = {0};

    put_items();
    CU_ASSERT_EQUAL(scan(NULL, 0, NULL, 0, SIZE_MAX, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, 103);
    for (size_t i = 1; i < s.n; i++) {
        const struct rec *a = &s.recs[i - 1], *b = &s.recs[i];
        int c = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);

        CU_ASSERT(c < 0 || (c == 0 && a->klen < b->klen));
    }
    if (s.n == 103) {
        CU_ASSERT(rec_is(&s.recs[0], K("item")));
        CU_ASSERT(rec_is(&s.recs[1], K("item.")));
        CU_ASSERT(rec_is(&s.recs[102], K("item0")));
    }
    free(s.recs);
}

static void test_scan_cursor_outside_prefix(void)
{
    struct seen s = {0};

    put_items();
    /* A cursor before every key with the prefix: the scan starts at the prefix. */
    CU_ASSERT_EQUAL(scan(K("item/"), K("a"), 3, &s), MH_OK);
    CU_ASSERT_EQUAL_FATAL(s.n, 3);
    CU_ASSERT(rec_is(&s.recs[0], K("item/000")));
    s.n = 0;
    /* A cursor after every key with the prefix: nothing. */
    CU_ASSERT_EQUAL(scan(K("item/"), K("item0"), 3, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, 0);
    /* A cursor that is the prefix itself: everything under it. */
    CU_ASSERT_EQUAL(scan(K("item/"), K("item/"), 1000, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, 100);
    s.n = 0;
    /* No key has the prefix. */
    CU_ASSERT_EQUAL(scan(K("zzz"), NULL, 0, 1000, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, 0);
    free(s.recs);
}

static void test_scan_callback_stops(void)
{
    struct seen s = {.stop_after = 5};

    put_items();
    CU_ASSERT_EQUAL(scan(K("item/"), NULL, 0, 1000, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, 5);
    free(s.recs);
}

static void test_scan_rejects_bad_arguments(void)
{
    unsigned char longkey[MH_STORE_MAX_KEY + 1] = {0};
    struct seen s = {0};

    CU_ASSERT_EQUAL(scan(K("item/"), NULL, 0, 0, &s), MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(scan(longkey, sizeof(longkey), NULL, 0, 10, &s), MH_E_INVAL);
    expect_message();
    CU_ASSERT_EQUAL(s.n, 0);
}

/* A scan callback may call the store: drivers must not hold their locks across it. */
static int write_back(const void *key, size_t klen, const void *val, size_t vlen, uint64_t version,
                      void *arg)
{
    char copy[64];
    size_t *n = arg;
    struct mh_value v;
    uint64_t current;

    if (klen >= sizeof(copy) - 4)
        return 1;
    snprintf(copy, sizeof(copy), "ok/%.*s", (int)klen, (const char *)key); /* not scanned */
    (void)val;
    (void)vlen;
    if (mh_store_get_impl(g.st, key, klen, &v) != MH_OK)
        return 1;
    current = v.version;
    mh_value_free_impl(&v);
    if (current != version)
        return 1;
    if (mh_store_put_impl(g.st, copy, klen + 3, "y", 1, MH_STORE_ANY, NULL, NULL) != MH_OK)
        return 1;
    if (mh_store_put_impl(g.st, key, klen, "seen", 4, version, NULL, NULL) != MH_OK)
        return 1;
    ++*n;
    return 0;
}

static void test_scan_callback_may_use_store(void)
{
    size_t n = 0;

    for (int i = 0; i < 200; i++) {
        char key[16];

        snprintf(key, sizeof(key), "cb%03d", i);
        put_ok(key, strlen(key), "x");
    }
    CU_ASSERT_EQUAL(mh_store_scan_impl(store(), K("cb"), NULL, 0, 150, write_back, &n), MH_OK);
    CU_ASSERT_EQUAL(n, 150);
    expect_value(K("cb000"), "seen", 0);
    expect_value(K("ok/cb149"), "y", 0);
    expect_missing(K("ok/cb150"));
    expect_value(K("cb150"), "x", 0);
}

/* --- Concurrency --- */

#define NTHREADS 8
#define NROUNDS  200

struct worker {
    pthread_t thread;
    int id;
    int failures; /* CUnit is not thread-safe: workers count, the main thread asserts */
    unsigned long conflicts;
};

static void *cas_increments(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < NROUNDS && w->failures == 0; i++) {
        for (;;) {
            struct mh_value v;
            char next[32];
            enum mh_status rc;

            if (mh_store_get_impl(g.st, K("counter"), &v) != MH_OK) {
                w->failures++;
                break;
            }
            snprintf(next, sizeof(next), "%llu", strtoull(v.data, NULL, 10) + 1);
            rc = mh_store_put_impl(g.st, K("counter"), next, strlen(next), v.version, NULL, NULL);
            mh_value_free_impl(&v);
            if (rc == MH_OK)
                break;
            if (rc != MH_E_CONFLICT || mh_store_error_impl()[0] == '\0') {
                fprintf(stderr, "worker %d: put: %d %s\n", w->id, rc, mh_store_error_impl());
                w->failures++;
                break;
            }
            w->conflicts++;
        }
    }
    return NULL;
}

static void test_concurrent_cas_counter(void)
{
    struct worker w[NTHREADS] = {0};
    char want[32];
    int failures = 0;

    put_ok(K("counter"), "0");
    for (int i = 0; i < NTHREADS; i++) {
        w[i].id = i;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].thread, NULL, cas_increments, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(w[i].thread, NULL);
        failures += w[i].failures;
    }
    CU_ASSERT_EQUAL(failures, 0);
    snprintf(want, sizeof(want), "%d", NTHREADS * NROUNDS);
    expect_value(K("counter"), want, 0); /* no update was lost */
}

static atomic_bool writers_done;

static void *distinct_writes(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < NROUNDS; i++) {
        char key[32], val[32];
        uint64_t ver = 0;

        snprintf(key, sizeof(key), "t%d/%03d", w->id, i);
        snprintf(val, sizeof(val), "value %d.%d", w->id, i);
        if (mh_store_put_impl(g.st, key, strlen(key), val, strlen(val), MH_STORE_ABSENT, &ver,
                              NULL) != MH_OK)
            w->failures++;
        if (i % 2 && mh_store_delete_impl(g.st, key, strlen(key), ver) != MH_OK)
            w->failures++;
    }
    for (int i = 0; i < NROUNDS; i += 2) {
        char key[32], val[32];
        struct mh_value v = {0};

        snprintf(key, sizeof(key), "t%d/%03d", w->id, i);
        snprintf(val, sizeof(val), "value %d.%d", w->id, i);
        if (mh_store_get_impl(g.st, key, strlen(key), &v) != MH_OK || strcmp(v.data, val) != 0)
            w->failures++;
        mh_value_free_impl(&v);
    }
    return NULL;
}

static int check_order(const void *key, size_t klen, const void *val, size_t vlen, uint64_t version,
                       void *arg)
{
    struct rec *last = arg;
    int c = memcmp(last->key, key, last->klen < klen ? last->klen : klen);

    (void)val;
    (void)vlen;
    (void)version;
    if (last->klen && !(c < 0 || (c == 0 && last->klen < klen)))
        last->vlen++; /* counts order violations */
    memcpy(last->key, key, klen);
    last->klen = klen;
    return 0;
}

static void *scan_while_writing(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&writers_done)) {
        struct rec last = {0};

        if (mh_store_scan_impl(g.st, K("t"), NULL, 0, SIZE_MAX, check_order, &last) != MH_OK ||
            last.vlen)
            w->failures++;
    }
    return NULL;
}

static void test_concurrent_distinct_keys(void)
{
    struct worker w[NTHREADS + 1] = {0};
    struct seen s = {0};
    int failures = 0;

    atomic_store(&writers_done, false);
    for (int i = 0; i <= NTHREADS; i++) {
        w[i].id = i;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].thread, NULL,
                                             i < NTHREADS ? distinct_writes : scan_while_writing,
                                             &w[i]),
                              0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(w[i].thread, NULL);
    atomic_store(&writers_done, true);
    pthread_join(w[NTHREADS].thread, NULL);
    for (int i = 0; i <= NTHREADS; i++)
        failures += w[i].failures;
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_EQUAL(scan(K("t"), NULL, 0, SIZE_MAX, &s), MH_OK);
    CU_ASSERT_EQUAL(s.n, NTHREADS * NROUNDS / 2);
    free(s.recs);
}

/* --- Driver-specific --- */

static void test_bad_settings_refused(void)
{
    char *garbage = expand("@DIR@/garbage"); /* for a driver with a path to trip over */
    FILE *f = fopen(garbage, "w");

    free(garbage);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fchmod(fileno(f), 0644); /* whatever the umask: a password file must not be like this */
    for (int i = 0; i < 64; i++)
        fputs("this is not a database file\n", f);
    fclose(f);
    for (const struct bad_settings *b = g.row->bad; b->settings; b++) {
        char *needle = expand(b->needle);
        struct mh_store *st = NULL;
        struct mh_err err = {0};

        CU_ASSERT_NOT_EQUAL(store_open_with(b->settings, &st, &err), MH_OK);
        CU_ASSERT_PTR_NULL(st);
        if (!strstr(err.msg, needle)) {
            fprintf(stderr, "\n  settings { %s }: message lacks '%s': %s\n", b->settings, needle,
                    err.msg);
            CU_FAIL("the message names the problem");
        }
        mh_store_close(st);
        free(needle);
    }
}

static void test_persists_after_reopen(void)
{
    uint64_t v1 = put_ok(K("durable"), "still here");
    uint64_t v2 = put_ok(K("gone"), "deleted before closing");
    uint64_t v3 = 0;

    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("gone"), MH_STORE_ANY), MH_OK);
    store_reopen(g.row->settings);
    expect_value(K("durable"), "still here", v1);
    expect_missing(K("gone"));
    /* The counter is kept, also when the record with the highest version was deleted. */
    CU_ASSERT_EQUAL(put(K("gone"), "back", MH_STORE_ABSENT, &v3, NULL), MH_OK);
    CU_ASSERT(v3 > v2);
}

static void test_size_limit(void)
{
    char val[128];
    uint64_t v = 0;

    store_reopen(g.row->limited);
    memset(val, 'v', sizeof(val));
    val[60] = '\0';
    v = put_ok(K("a"), val); /* 61 bytes */
    CU_ASSERT_EQUAL(put(K("b"), val, MH_STORE_ANY, NULL, NULL), MH_E_LIMIT);
    expect_message();
    expect_missing(K("b"));
    val[60] = 'v';
    val[99] = '\0';
    CU_ASSERT_EQUAL(put(K("a"), val, MH_STORE_ANY, NULL, NULL), MH_OK); /* 1 + 99: fits */
    val[99] = 'v';
    val[100] = '\0';
    CU_ASSERT_EQUAL(put(K("a"), val, MH_STORE_ANY, NULL, NULL), MH_E_LIMIT); /* 1 + 100 */
    expect_message();
    expect_value(K("a"), val + 1, 0); /* unchanged: 99 bytes */
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("a"), MH_STORE_ANY), MH_OK);
    val[60] = '\0';
    CU_ASSERT(put_ok(K("b"), val) > v); /* deleting freed the room */
}

/* SQLite: a write lock held by another process makes writes unavailable, not reads. */
static void test_locked_database(void)
{
    char *path = expand("@DIR@/kv.db");
    sqlite3 *other = NULL;
    struct mh_value v;

    put_ok(K("k"), "before");
    store_reopen("path = \"@DIR@/kv.db\"; busy_timeout_ms = 50;");
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &other), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL(put(K("k"), "during", MH_STORE_ANY, NULL, NULL), MH_E_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(mh_store_error_impl(), "busy"));
    CU_ASSERT_EQUAL(mh_store_delete_impl(store(), K("k"), MH_STORE_ANY), MH_E_UNAVAILABLE);
    expect_message();
    expect_value(K("k"), "before", 0);
    CU_ASSERT_EQUAL(mh_store_get_impl(store(), K("nope"), &v), MH_E_NOTFOUND);
    CU_ASSERT_EQUAL(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    free(path);
    put_ok(K("k"), "after");
    expect_value(K("k"), "after", 0);
}

/* --- Runner --- */

#define ANY_DRIVER  0
#define IF_PERSISTS 1
#define IF_LIMITED  2
#define IF_SQLITE   3

static const struct {
    const char *name;
    void (*fn)(void);
    int when;
} cases[] = {
    {"round trip", test_round_trip, ANY_DRIVER},
    {"overwrite bumps the version", test_overwrite_bumps_version, ANY_DRIVER},
    {"get of a missing key", test_get_missing, ANY_DRIVER},
    {"empty value", test_empty_value, ANY_DRIVER},
    {"1 MiB value", test_large_value, ANY_DRIVER},
    {"binary keys", test_binary_keys, ANY_DRIVER},
    {"key length limits", test_key_length_limits, ANY_DRIVER},
    {"empty key", test_empty_key, ANY_DRIVER},
    {"versions unique and increasing", test_versions_unique_and_increasing, ANY_DRIVER},
    {"create only", test_create_only, ANY_DRIVER},
    {"put with a wrong version", test_put_with_wrong_version, ANY_DRIVER},
    {"put with a version on a missing key", test_put_with_version_on_missing_key, ANY_DRIVER},
    {"delete with a wrong version", test_delete_with_wrong_version, ANY_DRIVER},
    {"delete then re-create", test_delete_then_recreate, ANY_DRIVER},
    {"delete of a missing key", test_delete_missing, ANY_DRIVER},
    {"scan in byte order", test_scan_byte_order, ANY_DRIVER},
    {"scan pages with a cursor", test_scan_paging, ANY_DRIVER},
    {"scan with an empty prefix", test_scan_empty_prefix, ANY_DRIVER},
    {"scan with a cursor outside the prefix", test_scan_cursor_outside_prefix, ANY_DRIVER},
    {"scan stops when the callback says so", test_scan_callback_stops, ANY_DRIVER},
    {"scan rejects bad arguments", test_scan_rejects_bad_arguments, ANY_DRIVER},
    {"scan callback may use the store", test_scan_callback_may_use_store, ANY_DRIVER},
    {"concurrent compare-and-set counter", test_concurrent_cas_counter, ANY_DRIVER},
    {"concurrent writers on distinct keys", test_concurrent_distinct_keys, ANY_DRIVER},
    {"bad settings are refused", test_bad_settings_refused, ANY_DRIVER},
    {"data persists after reopening", test_persists_after_reopen, IF_PERSISTS},
    {"size limit", test_size_limit, IF_LIMITED},
    {"a locked database is unavailable", test_locked_database, IF_SQLITE},
};

static bool applies(int when)
{
    return when == ANY_DRIVER || (when == IF_PERSISTS && g.row->is_persistent) ||
           (when == IF_LIMITED && g.row->limited) ||
           (when == IF_SQLITE && strcmp(g.row->driver, "sqlite") == 0);
}

static int run_suite(const char *only)
{
    char suite_name[64];
    unsigned nregistered = 0;
    CU_pSuite suite;
    int rc = 1;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    snprintf(suite_name, sizeof(suite_name), "store contract: %s", g.row->driver);
    suite = CU_add_suite_with_setup_and_teardown(suite_name, NULL, NULL, setup, teardown);
    for (size_t i = 0; suite && i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!applies(cases[i].when) || (only && !strstr(cases[i].name, only)))
            continue;
        if (!CU_add_test(suite, cases[i].name, cases[i].fn))
            goto out;
        nregistered++;
    }
    if (nregistered == 0) {
        fprintf(stderr, "no case matches '%s'\n", only ? only : "");
        goto out;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (CU_basic_run_tests() != CUE_SUCCESS)
        goto out;
    if (CU_get_number_of_failures() == 0 && CU_get_number_of_tests_failed() == 0 &&
        CU_get_number_of_tests_run() == nregistered)
        rc = 0;
out:
    if (CU_get_error() != CUE_SUCCESS)
        fprintf(stderr, "CUnit error: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return rc;
}

int main(int argc, char **argv)
{
    struct mh_err err = {0};
    int rc;

    if (argc < 3) {
        fprintf(stderr, "usage: %s DRIVER MODULE_PATH [CASE-SUBSTRING]\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]) && !g.row; i++) {
        if (strcmp(rows[i].driver, argv[1]) == 0)
            g.row = &rows[i];
    }
    if (!g.row) {
        fprintf(stderr, "no contract settings for driver '%s' (add a row to rows[])\n", argv[1]);
        return 2;
    }
    mh_log_set_level(MH_LOG_WARN);
    if (mh_module_open(g.row->module, argv[2], &g.mod, &err) != MH_OK ||
        mh_module_init(g.mod, mh_conf_new(NULL), &err) != MH_OK) {
        fprintf(stderr, "%s\n", err.msg);
        mh_module_free(g.mod);
        return 1;
    }
    for (const struct mh_store_driver *d = g.mod->def.drivers; d && d->name; d++) {
        if (strcmp(d->name, g.row->driver) == 0)
            g.driver = d;
    }
    if (!g.driver) {
        fprintf(stderr, "module %s provides no driver '%s'\n", argv[2], g.row->driver);
        mh_module_free(g.mod);
        return 1;
    }
    rc = run_suite(argc > 3 ? argv[3] : NULL);
    mh_module_free(g.mod);
    return rc;
}
