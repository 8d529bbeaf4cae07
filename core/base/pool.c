/*
 * Worker threads and their bounded queue. A mutex and a condition variable guard the queue;
 * the queue bound turns overload into an immediate MH_E_UNAVAILABLE (503) instead of latency.
 */
#include "base/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "base/metrics.h"

struct mh_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct mh_task *head, *tail;
    size_t queued, running, queue_max;
    bool stopping;
    int nthreads;
    pthread_t *threads;
    /* Metrics: written under mu, read without it. */
    _Atomic uint64_t done, rejected;
    struct mh_histogram wait; /* time from queued to started */
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static _Atomic(struct mh_pool *) global_pool;

struct mh_pool *mh_pool_global(void)
{
    return atomic_load(&global_pool);
}

void mh_pool_set_global(struct mh_pool *p)
{
    atomic_store(&global_pool, p);
}

static void *worker_main(void *arg)
{
    struct mh_pool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct mh_task *t;

        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head)
            break; /* stopping and nothing left to take */
        if (p->stopping)
            break; /* queued tasks are handed back by mh_pool_stop */
        t = p->head;
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        {
            int64_t waited = now_ns() - t->queued_ns;

            mh_histogram_add(&p->wait, waited > 0 ? (uint64_t)waited / 1000 : 0, false);
        }
        pthread_mutex_unlock(&p->mu);

        t->next = NULL;
        t->run(t);
        t->ran = true;

        /* The worker counts as free before its completion can be seen: a client that has
         * the answer and sends again at once finds the room it left. */
        pthread_mutex_lock(&p->mu);
        p->running--;
        mh_stat_add(&p->done, 1);
        pthread_mutex_unlock(&p->mu);
        mh_mailbox_post(t->home, t);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

enum mh_status mh_pool_new(int workers, size_t queue_max, struct mh_pool **out)
{
    struct mh_pool *p = mh_xcalloc(1, sizeof(*p));
    sigset_t all, old;

    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->queue_max = queue_max;
    p->threads = mh_xcalloc((size_t)workers, sizeof(*p->threads));
    /* Workers never take signals: the main thread waits for them. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            mh_error("pool", "cannot start worker thread %d of %d", i + 1, workers);
            mh_pool_stop(p);
            mh_pool_free(p);
            return MH_E_IO;
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = p;
    return MH_OK;
}

enum mh_status mh_pool_submit(struct mh_pool *p, struct mh_task *t)
{
    enum mh_status rc = MH_OK;

    t->next = NULL;
    t->ran = false;
    t->queued_ns = now_ns();
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        rc = MH_E_CANCELLED;
    } else if (p->queued >= p->queue_max) {
        mh_stat_add(&p->rejected, 1);
        rc = MH_E_UNAVAILABLE;
    } else {
        if (p->tail)
            p->tail->next = t;
        else
            p->head = t;
        p->tail = t;
        p->queued++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

size_t mh_pool_backlog(struct mh_pool *p)
{
    size_t n;

    pthread_mutex_lock(&p->mu);
    n = p->queued + p->running;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void mh_pool_stats(struct mh_pool *p, struct mh_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->queued = p->queued;
    out->running = p->running;
    out->workers = (size_t)p->nthreads;
    out->queue_max = p->queue_max;
    pthread_mutex_unlock(&p->mu);
    out->done = mh_stat_get(&p->done);
    out->rejected = mh_stat_get(&p->rejected);
    memset(&out->wait, 0, sizeof(out->wait));
    mh_histogram_merge(&out->wait, &p->wait);
}

void mh_pool_stop(struct mh_pool *p)
{
    struct mh_task *t;

    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    t = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
    while (t) {
        struct mh_task *next = t->next;

        t->ran = false;
        mh_mailbox_post(t->home, t);
        t = next;
    }
}

void mh_pool_free(struct mh_pool *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
