/*
 * The crash table: a small shared-memory table (created by the master before it forks its
 * workers) in which every handler marks its entry and exit, so that the master can say what a
 * dead worker was running and which loop is stuck in one handler. Also the list of modules the
 * master took out of service (quarantine), which the workers read on every request.
 * The worker side touches only plain memory and atomics: nothing here allocates or locks.
 */
#ifndef MH_CRASH_H
#define MH_CRASH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MH_CRASH_THREADS    128 /* per worker process: threads beyond this are not tracked */
#define MH_CRASH_QUARANTINE 32
#define MH_CRASH_NAME       48

/* One thread of a worker. seq is odd while a handler runs; the text fields are written
 * before it turns odd and stay until the next entry. */
struct mh_crash_slot {
    atomic_uint seq;
    atomic_int tid;
    bool is_loop;      /* a loop thread (the watchdog watches these only) */
    int64_t since_ms;  /* CLOCK_MONOTONIC ms at entry */
    unsigned reported; /* the watchdog's: the seq it last logged (master only) */
    char module[MH_CRASH_NAME], handler[MH_CRASH_NAME];
    char route[96], method[16], path[160];
};

struct mh_crash_proc {
    atomic_int pid;
    atomic_int fatal_slot;   /* -1, or the slot of the thread a fatal signal hit */
    atomic_int fatal_signal; /* what hit it */
    atomic_uint nslots;      /* slots claimed by this process's threads */
    struct mh_crash_slot slots[MH_CRASH_THREADS];
};

struct mh_crash_table {
    unsigned nprocs;
    atomic_uint nquarantined; /* written by the master only */
    char quarantined[MH_CRASH_QUARANTINE][MH_CRASH_NAME];
    struct mh_crash_proc procs[];
};

/** Maps a table for @p nprocs worker processes, shared with the children forked later.
 *  @return NULL (logged) if it cannot be mapped. Thread: the master's. */
struct mh_crash_table *mh_crash_table_new(unsigned nprocs);
void mh_crash_table_free(struct mh_crash_table *t);
/** Clears worker @p proc's entry before a worker (re)starts there. Master only. */
void mh_crash_proc_reset(struct mh_crash_table *t, unsigned proc);

/**
 * In a worker: from now on this process writes to @p proc's entry, and the fatal signals
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) note which thread they hit before the default
 * action ends the process (the handler does nothing else, all of it async-signal-safe).
 */
void mh_crash_attach(struct mh_crash_table *t, unsigned proc);

/** Marks the calling thread as running a handler; NULL when no table is attached.
 *  Copies (and truncates) every string. @p path need not be NUL-terminated. */
struct mh_crash_slot *mh_crash_enter(const char *module, const char *handler, const char *route,
                                     const char *method, const char *path, size_t path_len,
                                     bool is_loop);
/** Ends what mh_crash_enter began (NULL does nothing). */
void mh_crash_leave(struct mh_crash_slot *slot);

/** True if @p module is quarantined. Cheap when nothing is: one atomic load. */
bool mh_crash_quarantined(const char *module);

/* --- Master side --- */

/** Writes what each thread of @p proc was running into @p buf ("module/handler ROUTE METHOD
 *  PATH" per thread, the thread the signal hit first and marked). @return how many threads
 *  were in a handler. */
size_t mh_crash_describe(const struct mh_crash_table *t, unsigned proc, char *buf, size_t size,
                         const char **blamed);
/** Adds @p module to the quarantine list (no-op if present or full). */
void mh_crash_quarantine(struct mh_crash_table *t, const char *module);
/** Empties the quarantine list. */
void mh_crash_quarantine_clear(struct mh_crash_table *t);

#endif
