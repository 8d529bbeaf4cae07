/*
 * The "redis" driver's own behaviour through the testing host's store calls (the whole contract
 * is tests/stores): its settings, and a pool whose connections carry up to `pipeline` commands
 * at once: several in flight on one connection, each reply to its own caller, and a connection
 * that breaks under them. Needs the private redis-server of tests/support/services.py (CTest
 * runs it so); a second client pauses the server (CLIENT PAUSE WRITE) to hold commands in
 * flight, and reads what arrived from CLIENT LIST.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <hiredis/hiredis.h>

#include "mh_test.h"
#include "modhost/testing.h"

const struct mh_module_def *mh_module_v1(void);

#define DEADLINE_S 30 /* the longest any poll below waits for what it expects */
#define BIG_BYTES  ((size_t)64 * 1024)

static unsigned cases_run;

/* The server's address and password file, from services.py. */
static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v ? v : "";
}

/* A testing host with the store "main": the test server, a key prefix unique to the case, and
 * @p extra settings. */
static struct mh_testing *with_store(const char *extra)
{
    char settings[1024];
    struct mh_testing *t = mh_testing_new(mh_module_v1());

    (void)snprintf(settings, sizeof(settings),
                   "host = \"%s\"; port = %s; password_file = \"%s\"; prefix = \"t%ld_%u:\"; %s",
                   env("MH_TEST_REDIS_HOST"), env("MH_TEST_REDIS_PORT"),
                   env("MH_TEST_REDIS_PASSFILE"), (long)getpid(), ++cases_run, extra);
    CU_ASSERT_EQUAL(mh_testing_add_driver_store(t, "main", "redis", settings), MH_OK);
    return t;
}

/* --- A second client, to pause the server and look at the driver's connection --- */

static redisContext *control_new(void)
{
    char password[256] = "";
    FILE *f = fopen(env("MH_TEST_REDIS_PASSFILE"), "re");
    redisContext *rc =
        redisConnect(env("MH_TEST_REDIS_HOST"), (int)strtol(env("MH_TEST_REDIS_PORT"), NULL, 10));
    redisReply *r;

    if (!f || !fgets(password, sizeof(password), f) || !rc || rc->err) {
        (void)fprintf(stderr, "cannot reach the test server\n");
        abort();
    }
    (void)fclose(f);
    password[strcspn(password, "\r\n")] = '\0';
    r = redisCommand(rc, "AUTH %s", password);
    if (!r || r->type == REDIS_REPLY_ERROR)
        abort();
    freeReplyObject(r);
    return rc;
}

static void control(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (!r)
        abort(); /* the test's own connection failed: nothing to report */
    CU_ASSERT_NOT_EQUAL(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* What CLIENT LIST says of the client held by the pause (flags "b"). */
struct held {
    long long id;
    long long qbuf;    /* bytes it sent that wait behind the held command */
    unsigned nclients; /* every client, this one included */
};

/* @return whether a client is held; fills @p h. */
static bool held_client(redisContext *rc, struct held *h)
{
    redisReply *r = redisCommand(rc, "CLIENT LIST");
    bool found = false;

    *h = (struct held){0};
    if (!r || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return false;
    }
    for (char *line = r->str, *end; line && *line; line = end ? end + 1 : NULL) {
        const char *flags = strstr(line, " flags="), *qbuf = strstr(line, " qbuf=");

        end = strchr(line, '\n');
        h->nclients++;
        if (!flags || (end && flags > end) || !qbuf || (end && qbuf > end))
            continue;
        flags += 7;
        if (strcspn(flags, " ") > strcspn(flags, "b") && strncmp(line, "id=", 3) == 0) {
            h->id = strtoll(line + 3, NULL, 10);
            h->qbuf = strtoll(qbuf + 6, NULL, 10);
            found = true;
        }
    }
    freeReplyObject(r);
    return found;
}

/* Polls CLIENT LIST every 5 ms until a client is held with at least @p qbuf bytes waiting, or
 * the deadline passes. @return whether it came. */
static bool poll_until_held(redisContext *rc, size_t qbuf, struct held *h)
{
    time_t deadline = time(NULL) + DEADLINE_S;
    const struct timespec tick = {0, 5L * 1000 * 1000};

    while (!(held_client(rc, h) && h->qbuf >= (long long)qbuf)) {
        if (time(NULL) >= deadline)
            return false;
        nanosleep(&tick, NULL);
    }
    return true;
}

/* --- Calls on other threads --- */

struct putter {
    pthread_t thread;
    struct mh_store *st;
    const char *key;
    char *val;
    size_t vlen;
    enum mh_status rc;
    uint64_t version;
    char error[512];
};

static void *put_thread(void *arg)
{
    struct putter *p = arg;

    p->rc = mh_api->store_put(p->st, p->key, strlen(p->key), p->val, p->vlen, MH_STORE_ANY,
                              &p->version, NULL);
    (void)snprintf(p->error, sizeof(p->error), "%s", mh_api->store_error());
    return NULL;
}

static void put_start(struct putter *p, struct mh_store *st, const char *key, size_t vlen)
{
    p->st = st;
    p->key = key;
    p->vlen = vlen;
    p->val = malloc(vlen);
    if (!p->val)
        abort();
    memset(p->val, key[0], vlen);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&p->thread, NULL, put_thread, p), 0);
}

static void put_join(struct putter *p)
{
    pthread_join(p->thread, NULL);
    free(p->val);
}

/* --- Cases --- */

static void test_store_redis_pipeline_setting_is_checked(void)
{
    static const char *const bad[] = {"pipeline = 0;", "pipeline = 65;", "pipeline = \"two\";"};
    struct mh_testing *t;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = with_store(bad[i]);
        CU_ASSERT_EQUAL(mh_testing_start(t), MH_E_INVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(mh_testing_error(t), "pipeline"));
        mh_testing_free(t);
    }
    t = with_store("pipeline = 64;");
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    CU_ASSERT_TRUE(mh_testing_log_has(t, "pool_size=8 pipeline=64"));
    mh_testing_free(t);
    t = with_store(""); /* the default */
    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    CU_ASSERT_TRUE(mh_testing_log_has(t, "pool_size=8 pipeline=4"));
    mh_testing_free(t);
}

/* Two writes on one connection (pool_size 1): the second is sent while the first waits. */
static void test_store_redis_one_connection_carries_two_writes_at_once(void)
{
    struct mh_testing *t = with_store("pool_size = 1; pipeline = 2; timeout_ms = 60000;");
    redisContext *ctl = control_new();
    struct putter a = {0}, b = {0};
    struct mh_value v = {0};
    struct mh_store *st;
    struct held h;
    bool a_held, b_sent;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    st = mh_testing_store(t, "main");
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "0", 1, MH_STORE_ANY, NULL, NULL), MH_OK);
    control(ctl, "CLIENT PAUSE %d WRITE", DEADLINE_S * 2 * 1000);
    put_start(&a, st, "a", 1);
    a_held = poll_until_held(ctl, 0, &h);
    put_start(&b, st, "b", BIG_BYTES);
    /* b's command arrives behind a's, on the same connection, before a has its answer */
    b_sent = a_held && poll_until_held(ctl, BIG_BYTES, &h);
    control(ctl, "CLIENT UNPAUSE");
    put_join(&a);
    put_join(&b);
    CU_ASSERT_TRUE(a_held);
    CU_ASSERT_TRUE(b_sent);
    CU_ASSERT_EQUAL(h.nclients, 2); /* the driver's one connection and this test's */
    CU_ASSERT_EQUAL(a.rc, MH_OK);
    CU_ASSERT_EQUAL(b.rc, MH_OK);
    CU_ASSERT_TRUE(a.version > 0 && b.version > a.version); /* in the order they were sent */
    CU_ASSERT_EQUAL(mh_api->store_get(st, "b", 1, &v), MH_OK);
    CU_ASSERT_EQUAL(v.len, BIG_BYTES);
    CU_ASSERT_EQUAL(v.version, b.version);
    mh_api->value_free(&v);
    redisFree(ctl);
    mh_testing_free(t);
}

/* Eight threads on one connection: every caller gets its own reply, and compare-and-set
 * loses no update. Thread 0 writes values that take many reads to come back. */
#define NTHREADS 8
#define NROUNDS  100

struct sharer {
    pthread_t thread;
    struct mh_store *st;
    int id;
    int failures;
};

static void *share_one_connection(void *arg)
{
    struct sharer *w = arg;
    size_t big = w->id == 0 ? 256 * 1024 : 0;
    char *val = malloc(big + 64), key[32];

    if (!val)
        abort();
    for (int i = 0; i < NROUNDS; i++) {
        struct mh_value v = {0};
        size_t vlen = big;
        bool done = false;

        (void)snprintf(key, sizeof(key), "t%d", w->id);
        memset(val, 'a' + i % 26, big);
        vlen += (size_t)snprintf(val + big, 64, "%d.%d", w->id, i);
        if (mh_api->store_put(w->st, key, strlen(key), val, vlen, MH_STORE_ANY, NULL, NULL) !=
                MH_OK ||
            mh_api->store_get(w->st, key, strlen(key), &v) != MH_OK || v.len != vlen ||
            memcmp(v.data, val, vlen) != 0)
            w->failures++;
        mh_api->value_free(&v);
        for (int tries = 0; !done && tries < 10000; tries++) {
            char next[32];
            enum mh_status rc;

            if (mh_api->store_get(w->st, "counter", 7, &v) != MH_OK)
                break;
            (void)snprintf(next, sizeof(next), "%lld", strtoll(v.data, NULL, 10) + 1);
            rc = mh_api->store_put(w->st, "counter", 7, next, strlen(next), v.version, NULL, NULL);
            mh_api->value_free(&v);
            done = rc == MH_OK;
            if (rc != MH_OK && rc != MH_E_CONFLICT)
                break;
        }
        if (!done)
            w->failures++;
    }
    free(val);
    return NULL;
}

static void test_store_redis_callers_sharing_a_connection_get_their_own_replies(void)
{
    struct mh_testing *t = with_store("pool_size = 1; pipeline = 8;");
    struct sharer w[NTHREADS] = {0};
    struct mh_value v = {0};
    int failures = 0;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    CU_ASSERT_EQUAL(mh_api->store_put(mh_testing_store(t, "main"), "counter", 7, "0", 1,
                                      MH_STORE_ANY, NULL, NULL),
                    MH_OK);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].st = mh_testing_store(t, "main");
        w[i].id = i;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].thread, NULL, share_one_connection, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(w[i].thread, NULL);
        failures += w[i].failures;
    }
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_EQUAL(mh_api->store_get(mh_testing_store(t, "main"), "counter", 7, &v), MH_OK);
    CU_ASSERT_EQUAL(strtoll(v.data, NULL, 10),
                    (long long)NTHREADS * NROUNDS); /* no update was lost */
    mh_api->value_free(&v);
    mh_testing_free(t);
}

/* How many times @p needle occurs in @p text. */
static unsigned count(const char *text, const char *needle)
{
    unsigned n = 0;

    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The connection dies with two writes in flight: both fail as unavailable (neither was
 * acknowledged), the outage is logged once, and the next calls make a new connection. */
static void test_store_redis_a_broken_connection_fails_every_call_on_it(void)
{
    struct mh_testing *t = with_store("pool_size = 1; pipeline = 2; timeout_ms = 60000;");
    redisContext *ctl = control_new();
    struct putter a = {0}, b = {0};
    struct mh_store *st;
    struct held h;
    bool both_sent, back = false;
    time_t deadline;
    const char *log;

    CU_ASSERT_EQUAL_FATAL(mh_testing_start(t), MH_OK);
    st = mh_testing_store(t, "main");
    CU_ASSERT_EQUAL(mh_api->store_put(st, "a", 1, "0", 1, MH_STORE_ANY, NULL, NULL), MH_OK);
    control(ctl, "CLIENT PAUSE %d WRITE", DEADLINE_S * 2 * 1000);
    put_start(&a, st, "a", 1);
    both_sent = poll_until_held(ctl, 0, &h);
    put_start(&b, st, "b", BIG_BYTES);
    both_sent = both_sent && poll_until_held(ctl, BIG_BYTES, &h);
    if (both_sent)
        control(ctl, "CLIENT KILL ID %lld", h.id);
    control(ctl, "CLIENT UNPAUSE");
    put_join(&a);
    put_join(&b);
    CU_ASSERT_TRUE_FATAL(both_sent);
    CU_ASSERT_EQUAL(a.rc, MH_E_UNAVAILABLE);
    CU_ASSERT_EQUAL(b.rc, MH_E_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.error, "is unavailable"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.error, "is unavailable"));
    /* poll until the backoff lets a new connection be made */
    deadline = time(NULL) + DEADLINE_S;
    while (!back && time(NULL) < deadline) {
        const struct timespec tick = {0, 5L * 1000 * 1000};

        back = mh_api->store_put(st, "c", 1, "1", 1, MH_STORE_ANY, NULL, NULL) == MH_OK;
        if (!back)
            nanosleep(&tick, NULL);
    }
    CU_ASSERT_TRUE(back);
    log = mh_testing_log(t);
    CU_ASSERT_EQUAL(count(log, "is unavailable"), 1);
    CU_ASSERT_EQUAL(count(log, "is reachable again"), 1);
    redisFree(ctl);
    mh_testing_free(t);
}

static const struct mh_test_case store_redis_tests[] = {
    {"the pipeline setting is checked", test_store_redis_pipeline_setting_is_checked},
    {"one connection carries two writes at once",
     test_store_redis_one_connection_carries_two_writes_at_once},
    {"callers sharing a connection get their own replies",
     test_store_redis_callers_sharing_a_connection_get_their_own_replies},
    {"a broken connection fails every call on it",
     test_store_redis_a_broken_connection_fails_every_call_on_it},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    if (!getenv("MH_TEST_REDIS_PORT")) {
        (void)fprintf(stderr, "SKIPPED: no test server: run through tests/support/services.py "
                              "run --redis\n");
        return 77;
    }
    return mh_test_main(argc, argv, "module_store_redis", store_redis_tests);
}
