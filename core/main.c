/*
 * The command line: serve, check, routes, version. Everything else lives in the other files;
 * this one parses arguments, prints, and picks the exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "cli_enable.h"
#include "cli_new_module.h"
#include "cli_status.h"
#include "conf/config.h"
#include "http/tls.h"
#include "mod/gen.h"
#include "mod/loader.h"
#include "mod/router.h"
#include "run/master.h"

#ifndef MH_DEFAULT_CONF_DIR
#define MH_DEFAULT_CONF_DIR "/etc/modhost/conf.d"
#endif

struct cli {
    const char *conf_dir;
    const char *listen;
    const char *port_file;
    const char *pid_file;
};

enum { MH_OPT_SERVE = 1, MH_OPT_PID = 2 };

static const char usage_main[] =
    "usage: modhost COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  serve     load conf.d, load the modules and serve HTTP until SIGTERM/SIGINT\n"
    "  check     run every check serve would (modules loaded, nothing bound); exit 1 on errors\n"
    "  routes    print the route table the configuration produces\n"
    "  reload    check the configuration, then make the running server load it (SIGHUP)\n"
    "  stop      stop the running server gracefully (SIGTERM) and wait for it to exit\n"
    "  enable    link a module's conf file from modules-available into conf.d, then check\n"
    "  disable   remove a module's link from conf.d, then check\n"
    "  status    print what the running server's admin listener knows (modules, traffic)\n"
    "  version   print the core version and the SDK ABI it provides\n"
    "  new-module  write a module skeleton (code, conf, Makefile, tests) from the SDK template\n"
    "\n"
    "Run 'modhost COMMAND --help' for a command's options.\n";

static const char usage_serve[] =
    "usage: modhost serve [-c DIR] [--listen HOST:PORT] [--port-file FILE]\n"
    "\n"
    "  -c, --conf DIR        configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -l, --listen H:P      listen address, overriding server.listen (port 0: any free port)\n"
    "  -p, --port-file FILE  write the bound port to FILE once the server answers requests\n"
    "  -h, --help            this text\n";

static const char usage_check[] =
    "usage: modhost check [-c DIR]\n"
    "\n"
    "Reads DIR/*.conf, loads every enabled module (running its init and fini) and builds the\n"
    "route table. Prints every error as FILE:LINE: message and exits 1 if there is any;\n"
    "otherwise prints a summary and exits 0. Binds no socket.\n"
    "\n"
    "  -c, --conf DIR   configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -h, --help       this text\n";

static const char usage_routes[] =
    "usage: modhost routes [-c DIR]\n"
    "\n"
    "Prints METHOD PATH MODULE HANDLER for every route, in matching order.\n"
    "\n"
    "  -c, --conf DIR   configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -h, --help       this text\n";

static const char usage_reload[] =
    "usage: modhost reload [-c DIR] [--pid-file FILE]\n"
    "\n"
    "Runs every check 'modhost check' runs; if there is an error, prints it and leaves the\n"
    "server alone. Otherwise sends SIGHUP to the server named by the pid file and waits for\n"
    "its answer: exit 0 if it now serves the new configuration, 1 (with its errors) if not.\n"
    "\n"
    "  -c, --conf DIR        configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -P, --pid-file FILE   the server's pid file (default: server.pid_file of DIR)\n"
    "  -h, --help            this text\n";

static const char usage_stop[] =
    "usage: modhost stop [-c DIR] [--pid-file FILE]\n"
    "\n"
    "Sends SIGTERM to the server named by the pid file and waits until it has exited.\n"
    "\n"
    "  -c, --conf DIR        configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -P, --pid-file FILE   the server's pid file (default: server.pid_file of DIR)\n"
    "  -h, --help            this text\n";

static const char usage_version[] = "usage: modhost version\n\nPrints the core version and "
                                    "the SDK ABI (major.minor) modules are checked against.\n";

/* Returns 0 to go on, or exit status + 1 (help: 1, bad usage: 3). */
static int parse_opts(int argc, char **argv, const char *usage, int which, struct cli *cli)
{
    static const struct option longopts[] = {
        {"conf", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"pid-file", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    cli->conf_dir = MH_DEFAULT_CONF_DIR;
    optind = 1;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is parsed before threads start */
    while ((ch = getopt_long(argc, argv, "c:l:p:P:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cli->conf_dir = optarg;
            break;
        case 'l':
            if (!(which & MH_OPT_SERVE))
                goto bad;
            cli->listen = optarg;
            break;
        case 'p':
            if (!(which & MH_OPT_SERVE))
                goto bad;
            cli->port_file = optarg;
            break;
        case 'P':
            if (!(which & MH_OPT_PID))
                goto bad;
            cli->pid_file = optarg;
            break;
        case 'h':
            (void)fputs(usage, stdout);
            return 1;
        default:
            goto bad;
        }
    }
    if (optind < argc) {
        (void)fprintf(stderr, "modhost: unexpected argument '%s'\n", argv[optind]);
        goto bad;
    }
    return 0;
bad:
    fputs(usage, stderr);
    return 3;
}

/* Loads and builds; prints every error. @return the generation or NULL. */
static struct mh_gen *load(const struct cli *cli, bool quiet_modules)
{
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_gen *gen = NULL;

    mh_config_load(cli->conf_dir, &config, &errs);
    if (cli->listen) {
        char *host = NULL;
        int port;

        if (mh_config_parse_listen(cli->listen, &host, &port) != MH_OK) {
            mh_errlist_add(&errs, MH_E_INVAL, NULL, 0,
                           "--listen \"%s\" is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:0)",
                           cli->listen);
        } else {
            free(config->server.host);
            config->server.host = host;
            config->server.port = port;
        }
    }
    mh_tls_check(&config->server, &errs); /* certificates and keys: what serve reads */
    mh_log_set_level(quiet_modules && config->server.log_level > MH_LOG_WARN
                         ? MH_LOG_WARN
                         : (enum mh_log_level)config->server.log_level);
    if (config->nfiles == 0) {
        mh_config_free(config);
        config = NULL;
    } else {
        /* Build even after config errors, so one run reports module errors too. */
        mh_gen_build(config, &gen, &errs);
        config = NULL;
    }
    if (errs.count) {
        mh_errlist_print(&errs, stderr);
        (void)fprintf(stderr, "modhost: %zu error%s in %s\n", errs.count,
                      errs.count == 1 ? "" : "s", cli->conf_dir);
        mh_gen_free(gen);
        gen = NULL;
    }
    mh_errlist_cleanup(&errs);
    return gen;
}

static int cmd_serve(int argc, char **argv)
{
    struct cli cli = {0};
    struct mh_serve_opts opts = {0};
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    char *host = NULL;
    int r = parse_opts(argc, argv, usage_serve, MH_OPT_SERVE, &cli), rc;

    if (r)
        return r - 1;
    mh_config_load(cli.conf_dir, &config, &errs);
    if (cli.listen) {
        if (mh_config_parse_listen(cli.listen, &host, &opts.listen_port) != MH_OK) {
            mh_errlist_add(&errs, MH_E_INVAL, NULL, 0,
                           "--listen \"%s\" is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:0)",
                           cli.listen);
        } else {
            free(config->server.host);
            config->server.host = mh_xstrdup(host);
            config->server.port = opts.listen_port;
            opts.listen_host = host;
        }
    }
    if (errs.count) {
        mh_errlist_print(&errs, stderr);
        (void)fprintf(stderr, "modhost: %zu error%s in %s\n", errs.count,
                      errs.count == 1 ? "" : "s", cli.conf_dir);
        mh_errlist_cleanup(&errs);
        mh_config_free(config);
        free(host);
        return 1;
    }
    mh_log_set_level((enum mh_log_level)config->server.log_level);
    opts.conf_dir = cli.conf_dir;
    opts.port_file = cli.port_file;
    rc = mh_master_run(config, &opts);
    free(host);
    return rc;
}

/* The pid from --pid-file or server.pid_file; prints why not and returns -1. */
static long read_pid(const struct cli *cli, char **pid_path)
{
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    char buf[32] = {0};
    FILE *f;
    long pid;

    if (cli->pid_file) {
        *pid_path = mh_xstrdup(cli->pid_file);
    } else {
        mh_config_load(cli->conf_dir, &config, &errs);
        *pid_path = config->server.pid_file ? mh_xstrdup(config->server.pid_file) : NULL;
        mh_config_free(config);
        mh_errlist_cleanup(&errs);
        if (!*pid_path) {
            (void)fprintf(stderr,
                          "modhost: no pid file: set server.pid_file in %s or pass "
                          "--pid-file\n",
                          cli->conf_dir);
            return -1;
        }
    }
    f = fopen(*pid_path, "r");
    if (!f || !fgets(buf, sizeof(buf), f) || (pid = strtol(buf, NULL, 10)) <= 1) {
        (void)fprintf(stderr, "modhost: cannot read a pid from %s: %s\n", *pid_path,
                      f ? "no number in it" : MH_STRERROR(errno));
        if (f)
            (void)fclose(f); /* read only: nothing to lose */
        return -1;
    }
    (void)fclose(f); /* read only */
    if (kill((pid_t)pid, 0) != 0) {
        (void)fprintf(stderr, "modhost: no server runs as pid %ld (from %s): %s\n", pid, *pid_path,
                      MH_STRERROR(errno));
        return -1;
    }
    return pid;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* The reload status file: "SEQ ok|failed GEN" then error lines. */
static long read_status(const char *path, char *text, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    text[0] = '\0';
    if (!f)
        return 0;
    n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    (void)fclose(f); /* read only */
    return strtol(text, NULL, 10);
}

static int cmd_reload(int argc, char **argv)
{
    struct cli cli = {0};
    char *pid_path = NULL, *status_path, text[8192];
    struct mh_gen *gen;
    long pid, before;
    int r = parse_opts(argc, argv, usage_reload, MH_OPT_PID, &cli), rc = 1;

    if (r)
        return r - 1;
    gen = load(&cli, true);
    if (!gen) {
        (void)fprintf(stderr, "modhost: the server was not signalled\n");
        return 1;
    }
    mh_gen_free(gen);
    pid = read_pid(&cli, &pid_path);
    if (pid < 0) {
        free(pid_path);
        return 1;
    }
    status_path = mh_xasprintf("%s.reload", pid_path);
    before = read_status(status_path, text, sizeof(text));
    if (kill((pid_t)pid, SIGHUP) != 0) {
        (void)fprintf(stderr, "modhost: cannot signal pid %ld: %s\n", pid, MH_STRERROR(errno));
        goto out;
    }
    for (int i = 0; i < 1200; i++) { /* up to 60 s: modules' init may take a while */
        if (read_status(status_path, text, sizeof(text)) > before) {
            char *nl = strchr(text, '\n');
            bool ok = strstr(text, " ok ") != NULL;

            if (ok) {
                printf("modhost: reloaded: now serving generation %s", strrchr(text, ' ') + 1);
                rc = 0;
            } else {
                (void)fprintf(stderr,
                              "modhost: the server refused the configuration; it keeps "
                              "serving the previous one:\n%s",
                              nl ? nl + 1 : "");
            }
            goto out;
        }
        sleep_ms(50);
    }
    (void)fprintf(stderr,
                  "modhost: signalled pid %ld, but it did not report a reload within 60 s "
                  "(see its log)\n",
                  pid);
out:
    free(status_path);
    free(pid_path);
    return rc;
}

static int cmd_stop(int argc, char **argv)
{
    struct cli cli = {0};
    char *pid_path = NULL;
    long pid;
    int r = parse_opts(argc, argv, usage_stop, MH_OPT_PID, &cli);

    if (r)
        return r - 1;
    pid = read_pid(&cli, &pid_path);
    free(pid_path);
    if (pid < 0)
        return 1;
    if (kill((pid_t)pid, SIGTERM) != 0) {
        (void)fprintf(stderr, "modhost: cannot signal pid %ld: %s\n", pid, MH_STRERROR(errno));
        return 1;
    }
    for (int i = 0; i < 24000; i++) { /* up to 20 minutes: the drain deadline is the server's */
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            printf("modhost: pid %ld stopped\n", pid);
            return 0;
        }
        sleep_ms(50);
    }
    (void)fprintf(stderr, "modhost: pid %ld is still running\n", pid);
    return 1;
}

/* What a configuration with several worker processes does not share between them. */
static void warn_per_process(const struct mh_config *c)
{
    int n = c->server.processes;

    if (n <= 1)
        return;
    for (size_t i = 0; i < c->nstores; i++) {
        if (strcmp(c->stores[i].driver, "memory") == 0)
            (void)fprintf(
                stderr,
                "%s:%d: warning: store '%s' uses the memory driver, which is per process: "
                "with server.processes = %d each worker process has its own copy (use "
                "sqlite, postgres or redis to share it)\n",
                c->stores[i].file, c->stores[i].line, c->stores[i].name, n);
    }
}

static int cmd_check(int argc, char **argv)
{
    struct cli cli = {0};
    struct mh_gen *gen;
    int r = parse_opts(argc, argv, usage_check, 0, &cli);

    if (r)
        return r - 1;
    gen = load(&cli, true);
    if (!gen)
        return 1;
    warn_per_process(gen->config);
    printf("%s: OK: %zu file%s, %zu module%s, %zu route%s\n", cli.conf_dir, gen->config->nfiles,
           gen->config->nfiles == 1 ? "" : "s", gen->nmodules, gen->nmodules == 1 ? "" : "s",
           gen->ntargets, gen->ntargets == 1 ? "" : "s");
    mh_gen_free(gen);
    return 0;
}

static void print_route(const char *method, const char *tmpl, void *target, void *arg)
{
    const struct mh_route_target *t = target;

    (void)arg;
    if (t->ws)
        printf("%-8s %-32s %-16s websocket: %s\n", method, tmpl, t->module->name,
               t->ws->on_message);
    else
        printf("%-8s %-32s %-16s %s\n", method, tmpl, t->module->name, t->handler->name);
}

static int cmd_routes(int argc, char **argv)
{
    struct cli cli = {0};
    struct mh_gen *gen;
    int r = parse_opts(argc, argv, usage_routes, 0, &cli);

    if (r)
        return r - 1;
    gen = load(&cli, true);
    if (!gen)
        return 1;
    printf("%-8s %-32s %-16s %s\n", "METHOD", "PATH", "MODULE", "HANDLER");
    mh_router_each(gen->router, print_route, NULL);
    mh_gen_free(gen);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        (void)fputs(usage_version, stdout);
        return 0;
    }
    if (argc > 1) {
        (void)fputs(usage_version, stderr);
        return 2;
    }
    printf("modhost %s\nSDK ABI %d.%d\nlibevent %s\n", MH_VERSION, MH_ABI_MAJOR, MH_ABI_MINOR,
           event_get_version());
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    if (argc < 2) {
        (void)fputs(usage_main, stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        rc = cmd_serve(argc - 1, argv + 1);
    else if (strcmp(argv[1], "check") == 0)
        rc = cmd_check(argc - 1, argv + 1);
    else if (strcmp(argv[1], "routes") == 0)
        rc = cmd_routes(argc - 1, argv + 1);
    else if (strcmp(argv[1], "reload") == 0)
        rc = cmd_reload(argc - 1, argv + 1);
    else if (strcmp(argv[1], "stop") == 0)
        rc = cmd_stop(argc - 1, argv + 1);
    else if (strcmp(argv[1], "enable") == 0)
        rc = mh_cli_enable(argc - 1, argv + 1);
    else if (strcmp(argv[1], "disable") == 0)
        rc = mh_cli_disable(argc - 1, argv + 1);
    else if (strcmp(argv[1], "status") == 0)
        rc = mh_cli_status(argc - 1, argv + 1);
    else if (strcmp(argv[1], "new-module") == 0)
        rc = mh_cli_new_module(argc - 1, argv + 1);
    else if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)
        rc = cmd_version(argc - 1, argv + 1);
    else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
             strcmp(argv[1], "help") == 0) {
        (void)fputs(usage_main, stdout);
        rc = 0;
    } else {
        (void)fprintf(stderr, "modhost: unknown command '%s'\n\n%s", argv[1], usage_main);
        rc = 2;
    }
    libevent_global_shutdown();
    return rc;
}
