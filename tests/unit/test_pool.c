/*
 * Unit suite for core/base/pool.c and core/base/mailbox.c: tasks run on workers and complete
 * on their home loop in order; a full queue refuses at once; a stop hands queued tasks back
 * unrun. Threaded: the ThreadSanitizer pass runs it.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <event2/event.h>

#include "base/mailbox.h"
#include "base/pool.h"
#include "mh_test.h"

struct job {
    struct mh_task base; /* first */
    int id;
    atomic_bool *gate; /* the job waits here until it opens (NULL: never waits) */
    atomic_int *started;
    int *order; /* completions record their id here, on the home thread */
    int *norder;
    struct mh_pool *pool; /* set: the completion records the pool's busy count here */
    size_t busy_at_completion;
};

static void job_run(struct mh_task *t)
{
    struct job *j = (struct job *)t;

    if (j->started)
        atomic_fetch_add(j->started, 1);
    while (j->gate && !atomic_load(j->gate))
        sched_yield();
}

static void job_complete(struct mh_task *t)
{
    struct job *j = (struct job *)t;

    j->order[(*j->norder)++] = t->ran ? j->id : -j->id;
    if (j->pool) {
        struct mh_pool_stats st;

        mh_pool_stats(j->pool, &st);
        j->busy_at_completion = st.running + st.queued;
    }
}

static void job_init(struct job *j, int id, struct mh_mailbox *home, atomic_bool *gate,
                     atomic_int *started, int *order, int *norder)
{
    memset(j, 0, sizeof(*j));
    j->base.home = home;
    j->base.run = job_run;
    j->base.complete = job_complete;
    j->id = id;
    j->gate = gate;
    j->started = started;
    j->order = order;
    j->norder = norder;
}

/* Drains @p mb until @p count completions arrived (bounded: the test fails, not hangs). */
static void wait_completions(struct mh_mailbox *mb, const int *norder, int count)
{
    for (int spins = 0; *norder < count && spins < 5000000; spins++) {
        mh_mailbox_drain(mb);
        if (*norder < count)
            sched_yield();
    }
}

static void test_pool_runs_tasks_and_completes_them_at_home_in_order(void)
{
    struct event_base *base = event_base_new();
    struct mh_mailbox *mb = mh_mailbox_new(base);
    struct mh_pool *p = NULL;
    struct job jobs[50];
    int order[50], norder = 0;

    CU_ASSERT_EQUAL_FATAL(mh_pool_new(1, 64, &p), MH_OK);
    for (int i = 0; i < 50; i++) {
        job_init(&jobs[i], i + 1, mb, NULL, NULL, order, &norder);
        CU_ASSERT_EQUAL(mh_pool_submit(p, &jobs[i].base), MH_OK);
    }
    wait_completions(mb, &norder, 50);
    CU_ASSERT_EQUAL(norder, 50);
    for (int i = 0; i < norder; i++)
        CU_ASSERT_EQUAL(order[i], i + 1); /* one worker, FIFO queue, FIFO mailbox */
    mh_pool_stop(p);
    mh_pool_free(p);
    mh_mailbox_free(mb);
    event_base_free(base);
}

/* A completion that arrives at home finds its worker free: the busy gauge and the queue's room
 * never lag behind an answer the client already has (a request sent right after it is queued,
 * not refused). Many rounds: the old order (post, then count the worker free) lost this race
 * now and then on a loaded machine. */
static void test_pool_worker_is_free_when_its_completion_arrives(void)
{
    struct event_base *base = event_base_new();
    struct mh_mailbox *mb = mh_mailbox_new(base);
    struct mh_pool *p = NULL;
    int order[1], late = 0;

    CU_ASSERT_EQUAL_FATAL(mh_pool_new(1, 1, &p), MH_OK);
    for (int round = 0; round < 2000; round++) {
        struct job j;
        int norder = 0;

        job_init(&j, 1, mb, NULL, NULL, order, &norder);
        j.pool = p;
        CU_ASSERT_EQUAL_FATAL(mh_pool_submit(p, &j.base), MH_OK);
        wait_completions(mb, &norder, 1);
        CU_ASSERT_EQUAL_FATAL(norder, 1);
        if (j.busy_at_completion != 0)
            late++;
    }
    CU_ASSERT_EQUAL(late, 0);
    mh_pool_stop(p);
    mh_pool_free(p);
    mh_mailbox_free(mb);
    event_base_free(base);
}

static void test_pool_full_queue_refuses_at_once_and_stop_returns_queued_unrun(void)
{
    struct event_base *base = event_base_new();
    struct mh_mailbox *mb = mh_mailbox_new(base);
    struct mh_pool *p = NULL;
    atomic_bool gate = false;
    atomic_int started = 0;
    struct job busy, queued, refused;
    int order[4], norder = 0;

    CU_ASSERT_EQUAL_FATAL(mh_pool_new(1, 1, &p), MH_OK);
    job_init(&busy, 1, mb, &gate, &started, order, &norder);
    job_init(&queued, 2, mb, NULL, NULL, order, &norder);
    job_init(&refused, 3, mb, NULL, NULL, order, &norder);
    CU_ASSERT_EQUAL(mh_pool_submit(p, &busy.base), MH_OK);
    for (int spins = 0; !atomic_load(&started) && spins < 5000000; spins++)
        sched_yield(); /* the worker holds the busy job */
    CU_ASSERT_EQUAL_FATAL(atomic_load(&started), 1);
    CU_ASSERT_EQUAL(mh_pool_submit(p, &queued.base), MH_OK);
    CU_ASSERT_EQUAL(mh_pool_backlog(p), 2);
    CU_ASSERT_EQUAL(mh_pool_submit(p, &refused.base), MH_E_UNAVAILABLE);
    CU_ASSERT_EQUAL(mh_pool_backlog(p), 2); /* nothing was queued */
    atomic_store(&gate, true);
    mh_pool_stop(p); /* the busy job finishes; a queued one may run or come back unrun */
    CU_ASSERT_EQUAL(mh_pool_submit(p, &refused.base), MH_E_CANCELLED);
    mh_mailbox_drain(mb);
    CU_ASSERT_EQUAL(norder, 2);
    CU_ASSERT_EQUAL(order[0], 1);
    CU_ASSERT(order[1] == 2 || order[1] == -2);
    mh_pool_free(p);
    mh_mailbox_free(mb);
    event_base_free(base);
}

struct poster {
    struct mh_mailbox *mb;
    struct job *jobs;
    int n;
};

static void *post_all(void *arg)
{
    struct poster *ps = arg;

    for (int i = 0; i < ps->n; i++)
        mh_mailbox_post(ps->mb, &ps->jobs[i].base);
    return NULL;
}

static void test_mailbox_keeps_each_posters_order(void)
{
    struct event_base *base = event_base_new();
    struct mh_mailbox *mb = mh_mailbox_new(base);
    static struct job a[500], b[500];
    static int order[1000];
    int norder = 0, last_a = 0, last_b = 0;
    struct poster pa = {mb, a, 500}, pb = {mb, b, 500};
    pthread_t ta, tb;

    for (int i = 0; i < 500; i++) {
        job_init(&a[i], i + 1, mb, NULL, NULL, order, &norder);
        job_init(&b[i], 1000 + i + 1, mb, NULL, NULL, order, &norder);
        a[i].base.ran = b[i].base.ran = true;
    }
    pthread_create(&ta, NULL, post_all, &pa);
    pthread_create(&tb, NULL, post_all, &pb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    mh_mailbox_drain(mb);
    CU_ASSERT_EQUAL_FATAL(norder, 1000);
    for (int i = 0; i < norder; i++) {
        int *last = order[i] > 1000 ? &last_b : &last_a;

        CU_ASSERT(order[i] > *last);
        *last = order[i];
    }
    mh_mailbox_free(mb);
    event_base_free(base);
}

static const struct mh_test_case pool_tests[] = {
    {"runs tasks and completes them at home in order",
     test_pool_runs_tasks_and_completes_them_at_home_in_order},
    {"full queue refuses at once, stop returns queued unrun",
     test_pool_full_queue_refuses_at_once_and_stop_returns_queued_unrun},
    {"worker is free when its completion arrives",
     test_pool_worker_is_free_when_its_completion_arrives},
    {"mailbox keeps each poster's order", test_mailbox_keeps_each_posters_order},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "pool", pool_tests);
}
