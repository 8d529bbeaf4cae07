/*
 * What the drivers of networked stores (postgres, redis) share: the health of the link to the
 * server (an outage is logged once, reconnection attempts are spaced by a backoff with jitter
 * and made by one thread at a time while the others fail fast), a pool of connection slots
 * with deadlines, reading a password file. Header-only: each driver is its own module.
 */
#ifndef MH_STORE_LINK_H
#define MH_STORE_LINK_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "modhost/sdk.h"

#define LINK_BACKOFF_MIN_MS 100
#define LINK_BACKOFF_MAX_MS 5000

static inline int64_t link_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct link_health {
    pthread_mutex_t mu;
    const char *what; /* "postgres 127.0.0.1:5432": names the server in logs and messages */
    bool is_down;
    bool is_probing;    /* one thread is trying to reconnect */
    int64_t down_since; /* ms, link_now_ms */
    int64_t next_try;   /* ms: no attempt before this */
    int64_t backoff_ms;
    unsigned int seed; /* rand_r state for the jitter */
    uint64_t epoch;    /* counts failures: a connection made before the last is suspect */
    char last_error[256];
};

/* The current epoch: connections remember the one they were made in. */
static inline uint64_t link_epoch(struct link_health *h)
{
    uint64_t e;

    pthread_mutex_lock(&h->mu);
    e = h->epoch;
    pthread_mutex_unlock(&h->mu);
    return e;
}

static inline void link_init(struct link_health *h, const char *what)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->what = what;
    h->seed = (unsigned int)link_now_ms() ^ (unsigned int)(uintptr_t)h;
}

static inline void link_cleanup(struct link_health *h)
{
    pthread_mutex_destroy(&h->mu);
}

/*
 * Whether the caller may use the server now. While it is down, one caller at a time may try
 * once the backoff has passed (it must then call link_ok or link_failed); the others get
 * false with the store error set, and answer MH_E_UNAVAILABLE at once.
 */
static inline bool link_gate(struct link_health *h)
{
    bool ok = true;

    pthread_mutex_lock(&h->mu);
    if (h->is_down) {
        int64_t now = link_now_ms();

        if (h->is_probing || now < h->next_try) {
            mh_store_set_error("%s is unavailable (for %" PRId64 " ms; next attempt in %" PRId64
                               " ms): %s",
                               h->what, now - h->down_since,
                               h->next_try > now ? h->next_try - now : 0, h->last_error);
            ok = false;
        } else {
            h->is_probing = true;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

/* The server answered: ends an outage (logged once). */
static inline void link_ok(struct link_health *h)
{
    int64_t lasted = -1;

    pthread_mutex_lock(&h->mu);
    if (h->is_down) {
        lasted = link_now_ms() - h->down_since;
        h->is_down = false;
        h->backoff_ms = 0;
    }
    h->is_probing = false;
    pthread_mutex_unlock(&h->mu);
    if (lasted >= 0)
        mh_log(NULL, MH_LOG_WARN, "%s is reachable again after %" PRId64 " ms", h->what, lasted);
}

/*
 * The server could not be reached or dropped the connection (@p msg says how): starts an
 * outage (logged once) or schedules the next attempt, after a backoff that doubles up to
 * LINK_BACKOFF_MAX_MS, with +-50% jitter so that instances do not retry in step. Sets the
 * store error.
 */
static inline void link_failed(struct link_health *h, const char *msg)
{
    bool starts;
    int64_t now = link_now_ms(), wait;

    pthread_mutex_lock(&h->mu);
    h->epoch++; /* the server may have dropped every connection: re-make them before use */
    starts = !h->is_down;
    if (starts) {
        h->is_down = true;
        h->down_since = now;
        h->backoff_ms = LINK_BACKOFF_MIN_MS;
    } else if (h->backoff_ms < LINK_BACKOFF_MAX_MS) {
        h->backoff_ms =
            h->backoff_ms * 2 > LINK_BACKOFF_MAX_MS ? LINK_BACKOFF_MAX_MS : h->backoff_ms * 2;
    }
    wait = h->backoff_ms / 2 + (int64_t)(rand_r(&h->seed) % (unsigned)(h->backoff_ms + 1));
    h->next_try = now + wait;
    h->is_probing = false;
    (void)snprintf(h->last_error, sizeof(h->last_error), "%s", msg);
    pthread_mutex_unlock(&h->mu);
    mh_store_set_error("%s is unavailable: %s", h->what, msg);
    if (starts)
        mh_log(NULL, MH_LOG_WARN, "%s is unavailable: %s (reconnecting with backoff)", h->what,
               msg);
}

/* Milliseconds until the next attempt may be made (0: now). */
static inline int link_retry_in_ms(struct link_health *h)
{
    int64_t left;

    pthread_mutex_lock(&h->mu);
    left = h->is_down ? h->next_try - link_now_ms() : 0;
    pthread_mutex_unlock(&h->mu);
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* --- A pool of connection slots: threads take an idle one, waiting with a deadline --- */

struct slot_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t *idle; /* a stack of idle slot numbers */
    size_t nidle, n;
};

/* Slots 0..n-1, all idle. @return MH_OK; MH_E_NOMEM (message set). */
static inline enum mh_status pool_init(struct slot_pool *p, size_t n)
{
    p->idle = calloc(n, sizeof(*p->idle));
    if (!p->idle) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        p->idle[i] = n - 1 - i;
    p->nidle = p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return MH_OK;
}

static inline void pool_cleanup(struct slot_pool *p)
{
    if (!p->idle)
        return;
    free(p->idle);
    p->idle = NULL;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* An idle slot's number, waiting until @p deadline (ms, link_now_ms); -1 when every slot
 * stayed busy (the message names @p what). */
static inline long pool_take(struct slot_pool *p, int64_t deadline, const char *what)
{
    int64_t left = deadline - link_now_ms();
    struct timespec until;
    long slot = -1;

    clock_gettime(CLOCK_REALTIME, &until);
    if (left < 0)
        left = 0;
    until.tv_sec += (time_t)(left / 1000);
    until.tv_nsec += (long)(left % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->nidle && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT)
        ;
    if (p->nidle)
        slot = (long)p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    if (slot < 0)
        mh_store_set_error("%s: all %zu connections stayed busy for timeout_ms", what, p->n);
    return slot;
}

static inline void pool_give(struct slot_pool *p, size_t slot)
{
    pthread_mutex_lock(&p->mu);
    p->idle[p->nidle++] = slot;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* --- Settings shared by the networked drivers --- */

#define LINK_HELP_PASSWORD_FILE                                                         \
    "a file whose first line is the password (not readable by others; a relative path " \
    "resolves against the directory of the conf.d file)"
#define LINK_HELP_POOL_SIZE "connections per process, 1..64 (default 8)"

/* Sets the message for an invalid setting @p name, from its help in @p defs. @return
 * MH_E_INVAL. */
static inline enum mh_status bad_setting_in(const struct mh_setting_def *defs, const char *name)
{
    for (const struct mh_setting_def *d = defs; d->name; d++) {
        if (strcmp(d->name, name) == 0)
            mh_store_set_error("invalid setting '%s': expected %s", name, d->help);
    }
    return MH_E_INVAL;
}

/*
 * Reads the first line of @p path (a password; never logged) into @p out. The file must not
 * be readable by others than its owner and group, as libpq's .pgpass.
 */
static inline enum mh_status read_password_file(const char *path, char *out, size_t size)
{
    struct stat sb;
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f) {
        char msg[128];

        mh_store_set_error("setting 'password_file' (%s): cannot open: %s", path,
                           strerror_r(errno, msg, sizeof(msg))); /* GNU: returns the text */
        return MH_E_INVAL;
    }
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & S_IROTH)) {
        (void)fclose(f); /* read only: nothing to lose */
        mh_store_set_error("setting 'password_file' (%s): readable by everyone; chmod o-r it",
                           path);
        return MH_E_INVAL;
    }
    if (!fgets(out, (int)size, f)) {
        out[0] = '\0';
    }
    (void)fclose(f); /* read only */
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    if (n == 0) {
        mh_store_set_error("setting 'password_file' (%s): the first line is empty", path);
        return MH_E_INVAL;
    }
    return MH_OK;
}

/* Milliseconds left of a call that started at @p start_ms with @p budget_ms (>= 0). */
static inline int link_left_ms(int64_t start_ms, int64_t budget_ms)
{
    int64_t left = start_ms + budget_ms - link_now_ms();

    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

#endif
