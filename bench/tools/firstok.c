/*
 * firstok: time from exec of a server to its first 200 answer to GET /hello/world.
 *
 *   firstok [-n REPS] [-c CPU] [-l CPU] [-t TIMEOUT_MS] [-p PATH] -P PORT -- CMD ARG...
 *
 * For each repetition the literal argument text "{port}" in CMD ARG... is replaced by the
 * repetition's port (PORT, PORT+1, ...), so no run waits for the previous one's socket. The
 * clock starts just before fork(); the child pins itself to CPU (-c) and execs CMD; the parent
 * (pinned to -l when given) connects to 127.0.0.1:port in a tight loop, with a 50 µs pause
 * between attempts, until a GET answers "200". Then the server gets SIGTERM (SIGKILL after 2 s).
 * Each wait is bounded by TIMEOUT_MS (default 5000).
 * Output, one line:  FIRSTOK reps=N ok=N min_ms=X median_ms=X max_ms=X
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"

/* The server being timed; a SIGTERM or SIGINT to firstok ends it too. */
static volatile sig_atomic_t child_pid;

static void on_signal(int sig)
{
    if (child_pid > 0)
        kill((pid_t)child_pid, SIGKILL);
    _exit(128 + sig);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* One attempt: 1 if the server answered 200, 0 otherwise. */
static int try_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path,
                         port);
        if (write(fd, req, (size_t)n) == n) {
            char buf[16];
            size_t got = 0;
            while (got < 12) {
                ssize_t r = read(fd, buf + got, 12 - got);
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
            ok = got == 12 && memcmp(buf, "HTTP/1.", 7) == 0 && memcmp(buf + 9, "200", 3) == 0;
        }
    }
    close(fd);
    return ok;
}

static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    double t0 = now_ms();
    while (now_ms() - t0 < 2000) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* What the command line asks for; CMD ARG... is cmd[0..ncmd-1], ncmd >= 1. */
struct opts {
    int reps, cpu, load_cpu, port, timeout_ms;
    const char *path;
    char **cmd;
    int ncmd;
};

/* The whole of @p s as a whole number from @p min to @p max, or a message naming option -@p opt. */
static int parse_int(int opt, const char *s, int min, int max, int *out)
{
    const char name[] = {'-', (char)opt, '\0'};

    return bench_parse_int("firstok", name, s, min, max, out);
}

/* 0, or 2 after a message (the exit status for a bad command line). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    int opt, rc = 0;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is parsed before threads start */
    while (rc == 0 && (opt = getopt(argc, argv, "+n:c:l:t:p:P:")) != -1) {
        switch (opt) {
        case 'n':
            rc = parse_int(opt, optarg, 1, 100, &o->reps);
            break;
        case 'c':
            rc = parse_int(opt, optarg, -1, CPU_SETSIZE - 1, &o->cpu);
            break;
        case 'l':
            rc = parse_int(opt, optarg, -1, CPU_SETSIZE - 1, &o->load_cpu);
            break;
        case 't':
            rc = parse_int(opt, optarg, 1, INT_MAX, &o->timeout_ms);
            break;
        case 'p':
            o->path = optarg;
            break;
        case 'P':
            rc = parse_int(opt, optarg, 1, 65535, &o->port);
            break;
        default:
            rc = -1;
            break;
        }
    }
    if (rc == 0 && o->port > 0 && o->port + o->reps - 1 > 65535) {
        (void)fprintf(stderr, "firstok: -P %d with -n %d runs past port 65535\n", o->port, o->reps);
        rc = -1;
    }
    if (rc == 0 && optind < argc && o->port > 0) {
        o->cmd = argv + optind;
        o->ncmd = argc - optind;
        return 0;
    }
    (void)fprintf(stderr,
                  "usage: %s [-n REPS] [-c CPU] [-l CPU] [-t TIMEOUT_MS] [-p PATH] -P PORT -- "
                  "CMD ARG...\n",
                  argv[0]);
    return 2;
}

static void free_args(char **args, char *const *cmd, int ncmd)
{
    if (!args)
        return;
    for (int i = 0; i < ncmd; i++)
        if (args[i] != cmd[i])
            free(args[i]);
    free(args);
}

/* CMD ARG... with each "{port}" replaced by @p port, NULL-terminated; NULL if out of memory. */
static char **make_args(char *const *cmd, int ncmd, int port)
{
    char portstr[16];
    assert(ncmd > 0); /* parse_opts insists on a command */
    char **args = calloc((size_t)ncmd + 1, sizeof *args);
    if (!args || snprintf(portstr, sizeof portstr, "%d", port) < 0) {
        free(args);
        return NULL;
    }
    for (int i = 0; i < ncmd; i++) {
        const char *mark = strstr(cmd[i], "{port}");
        if (!mark) {
            args[i] = cmd[i];
            continue;
        }
        size_t size = strlen(cmd[i]) + sizeof portstr;
        args[i] = malloc(size);
        if (!args[i] || snprintf(args[i], size, "%.*s%s%s", (int)(mark - cmd[i]), cmd[i], portstr,
                                 mark + 6) < 0) {
            free_args(args, cmd, i + 1);
            return NULL;
        }
    }
    return args;
}

/* One start: milliseconds from fork to the first 200, -1 if none came in time, -2 on failure. */
static double time_one(const struct opts *o, int port)
{
    char **args = make_args(o->cmd, o->ncmd, port);
    if (!args) {
        (void)fprintf(stderr, "firstok: out of memory\n");
        free_args(args, o->cmd, o->ncmd);
        return -2;
    }
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        pin(o->cpu);
        execvp(args[0], args);
        _exit(127);
    }
    free_args(args, o->cmd, o->ncmd);
    if (pid < 0) {
        perror("fork");
        return -2;
    }
    child_pid = pid;
    double elapsed = -1;
    while (now_ms() - t0 < o->timeout_ms) {
        if (try_get(port, o->path)) {
            elapsed = now_ms() - t0;
            break;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pid = 0; /* the server exited before answering */
            break;
        }
        usleep(50);
    }
    if (pid > 0)
        stop_child(pid);
    child_pid = 0;
    return elapsed;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .reps = 5, .cpu = -1, .load_cpu = -1, .timeout_ms = 5000, .path = "/hello/world"};
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0)
        return rc;
    pin(o.load_cpu);
    struct sigaction sa_stop = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa_stop, NULL);
    sigaction(SIGINT, &sa_stop, NULL);

    double results[100];
    int ok = 0;
    for (int rep = 0; rep < o.reps; rep++) {
        double elapsed = time_one(&o, o.port + rep);
        if (elapsed < -1)
            return 1;
        if (elapsed >= 0)
            results[ok++] = elapsed;
    }
    if (ok == 0) {
        printf("FIRSTOK reps=%d ok=0\n", o.reps);
        return 1;
    }
    qsort(results, (size_t)ok, sizeof *results, cmp_double);
    double median = ok % 2 ? results[ok / 2] : (results[ok / 2 - 1] + results[ok / 2]) / 2;
    printf("FIRSTOK reps=%d ok=%d min_ms=%.2f median_ms=%.2f max_ms=%.2f\n", o.reps, ok, results[0],
           median, results[ok - 1]);
    return 0;
}
