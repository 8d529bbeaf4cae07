/*
 * The crash table (see crash.h): a MAP_SHARED anonymous mapping the master creates before it
 * forks, so every worker writes into memory the master can still read after the worker died.
 * Workers only store into their own entry; the master reads, and writes the quarantine list.
 */
#include "base/crash.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

static struct mh_crash_table *attached;
static struct mh_crash_proc *self;
static _Thread_local int my_slot = -1; /* -2: none left */

static size_t table_size(unsigned nprocs)
{
    return sizeof(struct mh_crash_table) + (size_t)nprocs * sizeof(struct mh_crash_proc);
}

struct mh_crash_table *mh_crash_table_new(unsigned nprocs)
{
    struct mh_crash_table *t =
        mmap(NULL, table_size(nprocs), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (t == MAP_FAILED) {
        mh_error("crash", "cannot map the crash table: %m");
        return NULL;
    }
    t->nprocs = nprocs; /* the mapping starts zeroed */
    for (unsigned i = 0; i < nprocs; i++)
        mh_crash_proc_reset(t, i);
    return t;
}

void mh_crash_table_free(struct mh_crash_table *t)
{
    if (t)
        munmap(t, table_size(t->nprocs));
}

void mh_crash_proc_reset(struct mh_crash_table *t, unsigned proc)
{
    struct mh_crash_proc *p = &t->procs[proc];

    memset(p->slots, 0, sizeof(p->slots));
    atomic_store(&p->pid, 0);
    atomic_store(&p->fatal_slot, -1);
    atomic_store(&p->fatal_signal, 0);
    atomic_store(&p->nslots, 0);
}

/* --- Worker side --- */

static void on_fatal(int sig)
{
    /* Async-signal-safe: a thread-local read and two atomic stores. SA_RESETHAND restored the
     * default action: returning re-runs the faulting instruction (or abort() raises again),
     * and the process ends with the signal the master then reports. */
    if (self && my_slot >= 0) {
        atomic_store(&self->fatal_slot, my_slot);
        atomic_store(&self->fatal_signal, sig);
    }
}

void mh_crash_attach(struct mh_crash_table *t, unsigned proc)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    struct sigaction sa;

    attached = t;
    self = &t->procs[proc];
    atomic_store(&self->pid, (int)getpid());
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sa.sa_flags = (int)(SA_RESETHAND | SA_NODEFER);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        sigaction(fatal[i], &sa, NULL);
}

static void copy_text(char *dst, size_t size, const char *src, size_t len)
{
    if (!src)
        src = "";
    if (len > size - 1)
        len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct mh_crash_slot *mh_crash_enter(const char *module, const char *handler, const char *route,
                                     const char *method, const char *path, size_t path_len,
                                     bool is_loop)
{
    struct mh_crash_slot *s;

    if (!self || my_slot == -2)
        return NULL;
    if (my_slot < 0) {
        unsigned i = atomic_fetch_add(&self->nslots, 1);

        if (i >= MH_CRASH_THREADS) {
            my_slot = -2;
            return NULL;
        }
        my_slot = (int)i;
        atomic_store(&self->slots[i].tid, (int)gettid());
    }
    s = &self->slots[my_slot];
    if (atomic_load_explicit(&s->seq, memory_order_relaxed) & 1u)
        return NULL; /* a callback inside another (a close while a message is handled): the
                        outer one stays marked, and its leave ends the mark */
    copy_text(s->module, sizeof(s->module), module, module ? strlen(module) : 0);
    copy_text(s->handler, sizeof(s->handler), handler, handler ? strlen(handler) : 0);
    copy_text(s->route, sizeof(s->route), route, route ? strlen(route) : 0);
    copy_text(s->method, sizeof(s->method), method, method ? strlen(method) : 0);
    copy_text(s->path, sizeof(s->path), path, path_len);
    s->is_loop = is_loop;
    s->since_ms = now_ms();
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_release); /* odd: running */
    return s;
}

void mh_crash_leave(struct mh_crash_slot *slot)
{
    if (slot)
        atomic_fetch_add_explicit(&slot->seq, 1, memory_order_release);
}

bool mh_crash_quarantined(const char *module)
{
    unsigned n;

    if (!attached || (n = atomic_load_explicit(&attached->nquarantined, memory_order_acquire)) == 0)
        return false;
    for (unsigned i = 0; i < n && i < MH_CRASH_QUARANTINE; i++) {
        if (strcmp(attached->quarantined[i], module) == 0)
            return true;
    }
    return false;
}

/* --- Master side --- */

static size_t describe_slot(const struct mh_crash_slot *s, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s thread %d: module %s handler %s route \"%s\" request %s %s",
                     s->is_loop ? "loop" : "pool", atomic_load(&s->tid), s->module, s->handler,
                     s->route, s->method, s->path);

    return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

size_t mh_crash_describe(const struct mh_crash_table *t, unsigned proc, char *buf, size_t size,
                         const char **blamed)
{
    const struct mh_crash_proc *p = &t->procs[proc];
    unsigned nslots = atomic_load(&p->nslots);
    int fatal = atomic_load(&p->fatal_slot);
    const struct mh_crash_slot *only = NULL;
    size_t n = 0, running = 0;

    buf[0] = '\0';
    *blamed = NULL;
    if (nslots > MH_CRASH_THREADS)
        nslots = MH_CRASH_THREADS;
    if (fatal >= 0 && (unsigned)fatal < nslots && (atomic_load(&p->slots[fatal].seq) & 1u)) {
        n += (size_t)snprintf(buf + n, size - n, "signal hit ");
        n += describe_slot(&p->slots[fatal], buf + n, size - n);
        *blamed = p->slots[fatal].module;
        running++;
    }
    for (unsigned i = 0; i < nslots && n + 8 < size; i++) {
        const struct mh_crash_slot *s = &p->slots[i];

        if ((int)i == fatal || !(atomic_load(&s->seq) & 1u))
            continue;
        only = s;
        running++;
        n += (size_t)snprintf(buf + n, size - n, "%s", n ? "; " : "");
        if (n < size)
            n += describe_slot(s, buf + n, size - n);
    }
    if (!*blamed && running == 1 && only)
        *blamed = only->module;
    if (!running)
        (void)snprintf(buf, size, "no thread was in a handler"); /* a report line: cut to fit */
    return running;
}

void mh_crash_quarantine(struct mh_crash_table *t, const char *module)
{
    unsigned n = atomic_load(&t->nquarantined);

    for (unsigned i = 0; i < n; i++) {
        if (strcmp(t->quarantined[i], module) == 0)
            return;
    }
    if (n >= MH_CRASH_QUARANTINE)
        return;
    copy_text(t->quarantined[n], MH_CRASH_NAME, module, strlen(module));
    atomic_store_explicit(&t->nquarantined, n + 1, memory_order_release);
}

void mh_crash_quarantine_clear(struct mh_crash_table *t)
{
    atomic_store_explicit(&t->nquarantined, 0, memory_order_release);
}
