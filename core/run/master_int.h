/*
 * The master's state, shared by its parts: master.c (sockets, privileges, workers, crash
 * reports, the watchdog, the supervision loop) and master_reload.c (reloads, the check in a
 * child process, the workers' answers). Private to run/.
 */
#ifndef MH_MASTER_INT_H
#define MH_MASTER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/board.h"
#include "base/crash.h"
#include "run/relay.h"

struct mh_config;
struct mh_listeners;
struct mh_serve_opts;
struct mh_tls_contexts;

#define EXIT_CONFIG   78   /* a worker whose modules failed to load (sysexits' EX_CONFIG) */
#define RETRY_MS      1000 /* before replacing a worker that could not load its modules */
#define CRASH_HISTORY 64   /* crashes remembered for the quarantine window */

struct worker {
    pid_t pid;                 /* 0: none running */
    int ctl;                   /* our end of its socket pair */
    struct mh_relay_end relay; /* its channel relay (fd -1: none, one process) */
    bool ready;                /* it said so: its loops accept */
    bool awaited;              /* a reload answer is due from it */
    bool watchdog_killed;
    char blamed[MH_CRASH_NAME]; /* the watchdog's, for the crash report */
    int64_t retry_at_ms;        /* a respawn waits until then (0: now) */
    int64_t died_ms;
};

struct crash_event {
    char module[MH_CRASH_NAME];
    int64_t at_ms;
};

struct master {
    const struct mh_serve_opts *opts;
    struct mh_config *config;  /* what workers start with */
    struct mh_config *pending; /* a reload's, until every worker answered */
    bool reloading;
    bool reload_again;               /* SIGHUP arrived during a reload */
    struct mh_listeners *listeners;  /* bound; NULL once stopping (new connections refused) */
    struct mh_tls_contexts **staged; /* a reload's new certificates, until it is decided */
    bool staged_failed;              /* ... which the master could not load */
    int nloops;
    int *admin_fds; /* one per loop; NULL: no admin listener */
    int admin_port;
    struct worker *workers;
    int nworkers;
    struct mh_crash_table *crash;
    struct mh_board *board; /* the workers' metric snapshots (several workers only) */
    int sigfd;
    int status_fd;
    int pid_fd;      /* the locked pid file */
    unsigned gen_id; /* the generation the workers serve */
    unsigned reloads, reloads_failed;
    /* The first failure reported for the pending reload; a longer report is cut to fit. */
    char reload_text[8192];
    bool reload_ok;
    bool started; /* every first worker was ready once */
    bool stopping;
    bool unclean; /* a worker did not exit 0 when stopped */
    struct crash_event crashes[CRASH_HISTORY];
    unsigned ncrashes;
    /* The reload's check in a child process (several workers): its pid (0: none), the pipe
     * its errors come through (-1: read to the end), and how it ended. */
    pid_t check_pid;
    int check_fd;
    char check_out[8192];
    size_t check_len;
    bool check_exited;
    int check_status;
};

/** Milliseconds of the monotonic clock. */
int64_t mh_master_now_ms(void);
/** Closes the master's end of @p w's control socket. */
void mh_master_close_ctl(struct worker *w);
/** In a child of the master: closes the descriptors only the master may hold. */
void mh_master_close_fds(struct master *m);

/** SIGHUP: reads the configuration, checks it (several workers) and has the workers load it. */
void mh_master_reload(struct master *m);
/** Every worker asked has answered (or died): decides the reload. */
void mh_master_reload_done(struct master *m);
/** The check process's pipe is readable. */
void mh_master_check_read(struct master *m);
/** The check process has exited (its status in m->check_status). */
void mh_master_check_done(struct master *m);
/** Worker @p i's control socket is readable: "ready", or its reload answer. */
void mh_master_on_worker_message(struct master *m, int i);

#endif
