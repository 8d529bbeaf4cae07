/*
 * `modhost status [-c DIR] [--admin HOST:PORT]`: asks the admin listener named by
 * server.admin.listen (or --admin) for /status.json, /readyz and /generations and prints them
 * as a table. A blocking HTTP/1.1 client of a few lines: one request per connection.
 */
#include "cli_status.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base/buf.h"
#include "conf/config.h"

#ifndef MH_DEFAULT_CONF_DIR
#define MH_DEFAULT_CONF_DIR "/etc/modhost/conf.d"
#endif

static const char usage[] =
    "usage: modhost status [-c DIR] [--admin HOST:PORT]\n"
    "\n"
    "Prints what the running server's admin listener knows: version, uptime, generation,\n"
    "readiness, requests, latency and WebSockets per module, and the worker pool.\n"
    "  -c, --conf DIR      configuration directory, for server.admin.listen "
    "(default " MH_DEFAULT_CONF_DIR ")\n"
    "      --admin ADDR    ask this admin listener instead (HOST:PORT)\n"
    "Exit status: 0 ready, 1 serving but not ready, 2 bad usage, 3 no answer.\n";

/* The code of a status line "HTTP/1.x NNN ...", or 0 if @p line is not one. */
static int status_code(const char *line)
{
    char *end;
    long code;

    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]))
        return 0;
    code = strtol(line + 9, &end, 10);
    return end == line + 12 && code >= 100 && code <= 999 ? (int)code : 0;
}

/* GET @p path; @return the status code (0: no answer) with the body in @p body. */
static int http_get(const char *host, int port, const char *path, struct mh_buf *body)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    struct timeval tv = {5, 0};
    char portstr[16], req[512];
    struct mh_buf raw = {0};
    int fd = -1, status = 0;
    const char *sep;

    (void)snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return 0;
    (void)snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                   path, host);
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
        char chunk[4096];

        for (;;) {
            ssize_t n = read(fd, chunk, sizeof(chunk));

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            mh_buf_add(&raw, chunk, (size_t)n);
        }
    }
    close(fd);
    mh_buf_add(&raw, "", 1);
    status = raw.len > 12 ? status_code(raw.data) : 0;
    sep = strstr(raw.data, "\r\n\r\n");
    if (status && sep)
        mh_buf_add(body, sep + 4, strlen(sep + 4) + 1);
    else
        status = 0;
    mh_buf_cleanup(&raw);
    return status;
}

static long long jint(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static double jdouble(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static const char *jstr(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void print_status(struct json_object *st, int ready, const char *why)
{
    struct json_object *mods, *tot;
    long long up = (long long)jdouble(st, "uptime_s");

    if (jint(st, "workers") > 1) /* the numbers below are every worker's, summed */
        printf("modhost %s, %lld worker processes (pid %lld answered), up %lldd "
               "%02lld:%02lld:%02lld\n",
               jstr(st, "version"), jint(st, "workers"), jint(st, "pid"), up / 86400,
               up % 86400 / 3600, up % 3600 / 60, up % 60);
    else
        printf("modhost %s, pid %lld, up %lldd %02lld:%02lld:%02lld\n", jstr(st, "version"),
               jint(st, "pid"), up / 86400, up % 86400 / 3600, up % 3600 / 60, up % 60);
    printf("generation %lld (%lld live), reloads %lld ok, %lld failed\n", jint(st, "generation"),
           jint(st, "generations_live"), jint(st, "reloads_ok"), jint(st, "reloads_failed"));
    printf("ready: %s%s%s\n", ready ? "yes" : "no", why && *why ? " - " : "", why ? why : "");
    if (json_object_object_get_ex(st, "totals", &tot))
        printf("requests %lld (5xx %lld), in flight %lld, connections %lld, WebSockets %lld, "
               "p50 %.2f ms, p99 %.2f ms\nworkers busy %lld of %lld, queued %lld; bytes in %lld, "
               "out %lld\n",
               jint(tot, "requests"), jint(tot, "errors"), jint(tot, "in_flight"),
               jint(tot, "connections_open"), jint(tot, "ws_open"), jdouble(tot, "p50_us") / 1000,
               jdouble(tot, "p99_us") / 1000, jint(tot, "pool_busy"), jint(tot, "pool_workers"),
               jint(tot, "pool_queued"), jint(tot, "bytes_in"), jint(tot, "bytes_out"));
    printf("\n%-20s %-10s %6s %10s %8s %9s %9s %6s\n", "MODULE", "VERSION", "ROUTES", "REQUESTS",
           "5XX", "P50 MS", "P99 MS", "WS");
    if (!json_object_object_get_ex(st, "modules", &mods))
        return;
    for (size_t i = 0; i < json_object_array_length(mods); i++) {
        struct json_object *m = json_object_array_get_idx(mods, i);

        struct json_object *q = NULL;

        printf("%-20s %-10s %6lld %10lld %8lld %9.2f %9.2f %6lld%s\n", jstr(m, "name"),
               jstr(m, "version"), jint(m, "routes"), jint(m, "requests"), jint(m, "errors"),
               jdouble(m, "p50_us") / 1000, jdouble(m, "p99_us") / 1000, jint(m, "ws_open"),
               json_object_object_get_ex(m, "quarantined", &q) && json_object_get_boolean(q)
                   ? "  QUARANTINED (crashed workers; 503 until the next reload)"
                   : "");
    }
}

int mh_cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"conf", required_argument, NULL, 'c'},
        {"admin", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_dir = MH_DEFAULT_CONF_DIR, *admin = NULL, *why = NULL;
    struct mh_buf body = {0}, rbody = {0};
    struct json_object *st = NULL, *problem = NULL;
    char *host = NULL;
    int port = 0, ch, code, rc;

    optind = 1;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is parsed before threads start */
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf_dir = optarg;
            break;
        case 'a':
            admin = optarg;
            break;
        case 'h':
            (void)fputs(usage, stdout);
            return 0;
        default:
            (void)fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        (void)fputs(usage, stderr);
        return 2;
    }
    if (admin) {
        if (mh_config_parse_listen(admin, &host, &port) != MH_OK) {
            (void)fprintf(stderr, "modhost status: --admin '%s' is not HOST:PORT\n", admin);
            return 2;
        }
    } else {
        struct mh_errlist errs = {0};
        struct mh_config *config = NULL;

        mh_config_load(conf_dir, &config, &errs);
        if (config && config->server.admin_host) {
            host = strdup(config->server.admin_host);
            port = config->server.admin_port;
        }
        mh_errlist_cleanup(&errs);
        mh_config_free(config);
        if (!host) {
            (void)fprintf(stderr,
                          "modhost status: %s sets no server.admin.listen (the admin "
                          "listener is off); use --admin HOST:PORT\n",
                          conf_dir);
            return 3;
        }
    }
    code = http_get(host, port, "/status.json", &body);
    if (code != 200 || !(st = json_tokener_parse(body.data))) {
        (void)fprintf(stderr, "modhost status: no answer from the admin listener at %s:%d%s\n",
                      host, port, code ? " (unexpected reply)" : " (is the server running?)");
        free(host);
        mh_buf_cleanup(&body);
        return 3;
    }
    code = http_get(host, port, "/readyz", &rbody);
    if (code == 503 && (problem = json_tokener_parse(rbody.data)))
        why = jstr(problem, "detail");
    print_status(st, code == 200, why);
    rc = code == 200 ? 0 : 1;
    json_object_put(st);
    json_object_put(problem);
    mh_buf_cleanup(&body);
    mh_buf_cleanup(&rbody);
    free(host);
    return rc;
}
