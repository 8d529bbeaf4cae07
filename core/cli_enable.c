/*
 * `modhost enable NAME` / `modhost disable NAME`, like a2enmod: a module's shipped conf file
 * (AVAILABLE/NAME.conf) is linked into conf.d as 50-NAME.conf, then `modhost check` runs on
 * the result in a child process (as server.user when started as root, so that no store file
 * is created root-owned); a failed check removes the link again. Reading and validating the
 * configuration is left to the check itself.
 */
#include "cli_enable.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/sys.h"
#include "conf/config.h"

#ifndef MH_DEFAULT_CONF_DIR
#define MH_DEFAULT_CONF_DIR "/etc/modhost/conf.d"
#endif

/* The ordering prefix of a link: after 00-server.conf, room before and after for files of
 * the operator's own. The order of module files does not change what they mean. */
#define LINK_PREFIX "50-"
#define MAX_FOUND   16

struct enable_cli {
    const char *conf_dir;
    const char *available; /* NULL: CONF_DIR/../modules-available, linked relatively */
    const char *name;
};

static const char usage_enable[] =
    "usage: modhost enable NAME [-c DIR] [--available DIR]\n"
    "\n"
    "Links the module's conf file AVAILABLE/NAME.conf into DIR as " LINK_PREFIX "NAME.conf, then\n"
    "runs 'modhost check' on DIR (as server.user when run as root). If the check fails, the\n"
    "link is removed again and DIR is as it was. Then 'modhost reload' serves the module.\n"
    "\n"
    "  -c, --conf DIR        configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -a, --available DIR   the modules' conf files (default: modules-available beside DIR)\n"
    "  -h, --help            this text\n";

static const char usage_disable[] =
    "usage: modhost disable NAME [-c DIR] [--available DIR]\n"
    "\n"
    "Removes the link 'modhost enable NAME' made in DIR, then runs 'modhost check' on DIR. If\n"
    "the configuration passed the check with the module and fails it without (another module\n"
    "uses its store), the link is put back and DIR is as it was.\n"
    "\n"
    "  -c, --conf DIR        configuration directory (default " MH_DEFAULT_CONF_DIR ")\n"
    "  -a, --available DIR   the modules' conf files (default: modules-available beside DIR)\n"
    "  -h, --help            this text\n";

/* Module names as the configuration allows them: [a-z0-9_]+. */
static bool valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 128)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Returns 0 to go on, or exit status + 1 (help: 1, not a module name: 2, bad usage: 3). */
static int parse_opts(int argc, char **argv, const char *usage, struct enable_cli *cli)
{
    static const struct option longopts[] = {
        {"conf", required_argument, NULL, 'c'},
        {"available", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    cli->conf_dir = MH_DEFAULT_CONF_DIR;
    optind = 1;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is parsed before threads start */
    while ((ch = getopt_long(argc, argv, "c:a:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cli->conf_dir = optarg;
            break;
        case 'a':
            cli->available = optarg;
            break;
        case 'h':
            (void)fputs(usage, stdout);
            return 1;
        default:
            goto bad;
        }
    }
    if (optind != argc - 1) {
        (void)fprintf(stderr, "modhost: %s\n",
                      optind == argc ? "which module? NAME is missing"
                                     : "one module NAME at a time");
        goto bad;
    }
    cli->name = argv[optind];
    if (!valid_name(cli->name)) {
        (void)fprintf(stderr, "modhost: '%s' is not a module name (a-z, 0-9 and _)\n", cli->name);
        return 2;
    }
    return 0;
bad:
    fputs(usage, stderr);
    return 3;
}

/* Is @entry "NAME.conf" or "DIGITS-NAME.conf"? */
static bool entry_names(const char *entry, const char *name)
{
    size_t digits = strspn(entry, "0123456789"), n = strlen(name);

    if (digits > 0) {
        if (entry[digits] != '-')
            return false;
        entry += digits + 1;
    }
    return strncmp(entry, name, n) == 0 && strcmp(entry + n, ".conf") == 0;
}

/* --- Where things are ------------------------------------------------------------------ */

/* The available directory and the link target for @cli; prints why not and returns false. */
static bool locate(const struct enable_cli *cli, char **avail_dir, char **target)
{
    char real[PATH_MAX];
    struct stat st;
    char *file;

    if (stat(cli->conf_dir, &st) != 0) {
        (void)fprintf(stderr, "modhost: cannot open configuration directory %s: %s\n",
                      cli->conf_dir, MH_STRERROR(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        (void)fprintf(stderr, "modhost: %s is not a directory\n", cli->conf_dir);
        return false;
    }
    if (cli->available) {
        *avail_dir = mh_xstrdup(cli->available);
    } else {
        *avail_dir = mh_xasprintf("%s/../modules-available", cli->conf_dir);
    }
    file = mh_xasprintf("%s/%s.conf", *avail_dir, cli->name);
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(file);
        return false; /* the caller lists what there is */
    }
    if (!cli->available) {
        /* Relative, so the tree can move (a package root, a container image). */
        *target = mh_xasprintf("../modules-available/%s.conf", cli->name);
    } else if (realpath(file, real)) {
        *target = mh_xstrdup(real);
    } else {
        *target = mh_xstrdup(file);
    }
    free(file);
    return true;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a, b, c": the modules of @avail_dir, or the reason it cannot be read. Caller frees. */
static char *list_available(const char *avail_dir)
{
    DIR *d = opendir(avail_dir);
    char *names[256], *text;
    size_t n = 0;
    struct dirent *de;

    if (!d)
        return mh_xasprintf("cannot read %s: %s", avail_dir, MH_STRERROR(errno));
    while ((de = readdir(d)) && n < 256) {
        size_t l = strlen(de->d_name);

        if (de->d_name[0] != '.' && l > 5 && strcmp(de->d_name + l - 5, ".conf") == 0)
            names[n++] = mh_xasprintf("%.*s", (int)(l - 5), de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);
    text = mh_xstrdup(n ? "" : "none");
    for (size_t i = 0; i < n; i++) {
        char *more = mh_xasprintf("%s%s%s", text, i ? ", " : "", names[i]);

        free(text);
        free(names[i]);
        text = more;
    }
    return text;
}

struct found {
    char *path[MAX_FOUND];
    bool is_link[MAX_FOUND];
    size_t count;
};

/* Entries of conf.d that configure @name: named NAME.conf / NN-NAME.conf, or links to
 * @avail_file (NULL: unknown) under any name. */
static bool find_entries(const char *conf_dir, const char *name, const char *avail_file,
                         struct found *out)
{
    char want[PATH_MAX], real[PATH_MAX];
    bool have_want = avail_file && realpath(avail_file, want);
    DIR *d = opendir(conf_dir);
    struct dirent *de;

    if (!d) {
        (void)fprintf(stderr, "modhost: cannot open configuration directory %s: %s\n", conf_dir,
                      MH_STRERROR(errno));
        return false;
    }
    while ((de = readdir(d)) && out->count < MAX_FOUND) {
        char *path = mh_xasprintf("%s/%s", conf_dir, de->d_name);
        struct stat st;
        bool is_link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);

        if (de->d_name[0] != '.' &&
            (entry_names(de->d_name, name) ||
             (is_link && have_want && realpath(path, real) && strcmp(real, want) == 0))) {
            out->path[out->count] = path;
            out->is_link[out->count++] = is_link;
        } else {
            free(path);
        }
    }
    closedir(d);
    return true;
}

static void found_cleanup(struct found *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->path[i]);
    f->count = 0;
}

/* --- The check, in a child ------------------------------------------------------------- */

/* Started as root, become the configuration's server.user (and group) as the server would. */
static void become_server_user(const char *conf_dir)
{
    struct mh_errlist errs = {0};
    struct mh_config *c = NULL;
    uid_t uid;
    gid_t gid;

    mh_config_load(conf_dir, &c, &errs);
    if (c && c->server.user && mh_user_find(c->server.user, &uid, &gid)) {
        if (c->server.group)
            (void)mh_group_find(c->server.group, &gid); /* else the user's primary group */
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
            (void)fprintf(stderr, "modhost: cannot run the check as %s: %s\n", c->server.user,
                          MH_STRERROR(errno));
            _exit(1);
        }
    }
    mh_config_free(c);
    mh_errlist_cleanup(&errs);
}

/* Runs `modhost check -c DIR`; @quiet discards its output. @return its exit status or -1. */
static int run_check(const char *conf_dir, bool quiet)
{
    int status;
    pid_t pid;

    (void)fflush(stdout);
    (void)fflush(stderr);
    pid = fork();
    if (pid < 0) {
        (void)fprintf(stderr, "modhost: cannot start the check: %s\n", MH_STRERROR(errno));
        return -1;
    }
    if (pid == 0) {
        char arg0[] = "modhost", arg1[] = "check", arg2[] = "-c";
        char *args[] = {arg0, arg1, arg2, mh_xstrdup(conf_dir), NULL};

        if (geteuid() == 0)
            become_server_user(conf_dir);
        if (quiet && (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)))
            _exit(1);
        execv("/proc/self/exe", args);
        (void)fprintf(stderr, "modhost: cannot run the check: %s\n", MH_STRERROR(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- The commands ---------------------------------------------------------------------- */

int mh_cli_enable(int argc, char **argv)
{
    struct enable_cli cli = {0};
    struct found found = {0};
    char *avail_dir = NULL, *target = NULL, *link_path = NULL, *avail_file = NULL;
    int rc = parse_opts(argc, argv, usage_enable, &cli);

    if (rc)
        return rc - 1;
    rc = 1;
    if (!locate(&cli, &avail_dir, &target)) {
        if (avail_dir) {
            char *names = list_available(avail_dir);

            (void)fprintf(stderr, "modhost: no module '%s' in %s (available: %s)\n", cli.name,
                          avail_dir, names);
            free(names);
        }
        goto out;
    }
    avail_file = mh_xasprintf("%s/%s.conf", avail_dir, cli.name);
    if (!find_entries(cli.conf_dir, cli.name, avail_file, &found))
        goto out;
    if (found.count) {
        if (found.is_link[0])
            (void)fprintf(stderr, "modhost: module '%s' is already enabled: %s\n", cli.name,
                          found.path[0]);
        else
            (void)fprintf(stderr,
                          "modhost: module '%s' is already configured by %s (a file of its "
                          "own, not a link: edit it there)\n",
                          cli.name, found.path[0]);
        goto out;
    }
    link_path = mh_xasprintf("%s/" LINK_PREFIX "%s.conf", cli.conf_dir, cli.name);
    if (symlink(target, link_path) != 0) {
        (void)fprintf(stderr, "modhost: cannot create %s: %s\n", link_path, MH_STRERROR(errno));
        goto out;
    }
    if (run_check(cli.conf_dir, false) != 0) {
        unlink(link_path);
        (void)fprintf(stderr,
                      "modhost: module '%s' not enabled: the configuration with it does not "
                      "pass the check (above); %s is unchanged\n",
                      cli.name, cli.conf_dir);
        goto out;
    }
    printf("modhost: enabled %s: %s -> %s\n"
           "modhost: run 'modhost reload' (systemd: 'systemctl reload modhost') to serve it\n",
           cli.name, link_path, target);
    rc = 0;
out:
    found_cleanup(&found);
    free(avail_dir);
    free(avail_file);
    free(target);
    free(link_path);
    return rc;
}

/* Puts back the links of @found (their targets in @targets); false if one could not be. */
static bool restore_links(const struct found *found, char *const *targets)
{
    bool ok = true;

    for (size_t i = 0; i < found->count; i++) {
        if (targets[i] && symlink(targets[i], found->path[i]) != 0) {
            (void)fprintf(stderr, "modhost: cannot restore %s -> %s: %s\n", found->path[i],
                          targets[i], MH_STRERROR(errno));
            ok = false;
        }
    }
    return ok;
}

/* Removes the links of @p found, noting their targets in @p targets; false (after putting
 * back the ones removed) if one could not be removed. */
static bool remove_links(const struct found *found, char **targets)
{
    for (size_t i = 0; i < found->count; i++) {
        char buf[PATH_MAX];
        ssize_t n = readlink(found->path[i], buf, sizeof(buf) - 1);

        targets[i] = n >= 0 ? mh_xasprintf("%.*s", (int)n, buf) : NULL;
        if (unlink(found->path[i]) != 0) {
            (void)fprintf(stderr, "modhost: cannot remove %s: %s\n", found->path[i],
                          MH_STRERROR(errno));
            free(targets[i]);
            targets[i] = NULL;
            restore_links(found, targets);
            return false;
        }
    }
    return true;
}

int mh_cli_disable(int argc, char **argv)
{
    struct enable_cli cli = {0};
    struct found found = {0};
    char *targets[MAX_FOUND] = {0}, *avail_dir = NULL, *target = NULL, *avail_file = NULL;
    int rc = parse_opts(argc, argv, usage_disable, &cli);

    if (rc)
        return rc - 1;
    rc = 1;
    if (locate(&cli, &avail_dir, &target))
        avail_file = mh_xasprintf("%s/%s.conf", avail_dir, cli.name);
    else if (!avail_dir)
        goto out; /* no configuration directory: said */
    if (!find_entries(cli.conf_dir, cli.name, avail_file, &found))
        goto out;
    if (found.count == 0) {
        (void)fprintf(stderr, "modhost: module '%s' is not enabled in %s\n", cli.name,
                      cli.conf_dir);
        goto out;
    }
    for (size_t i = 0; i < found.count; i++) {
        if (!found.is_link[i]) {
            (void)fprintf(stderr,
                          "modhost: %s configures '%s' but is a file, not a link 'modhost "
                          "enable' made: remove or rename it by hand\n",
                          found.path[i], cli.name);
            goto out;
        }
    }
    if (!remove_links(&found, targets))
        goto out;
    if (run_check(cli.conf_dir, false) != 0) {
        /* Refuse only if the module's removal is what breaks the configuration. */
        if (restore_links(&found, targets) && run_check(cli.conf_dir, true) == 0) {
            (void)fprintf(stderr,
                          "modhost: module '%s' not disabled: the configuration without it "
                          "does not pass the check (above); %s is unchanged\n",
                          cli.name, cli.conf_dir);
            goto out;
        }
        for (size_t i = 0; i < found.count; i++)
            unlink(found.path[i]);
        (void)fprintf(stderr,
                      "modhost: disabled %s, but the configuration has errors without it "
                      "as with it (above)\n",
                      cli.name);
        rc = 0;
        goto out;
    }
    for (size_t i = 0; i < found.count; i++)
        printf("modhost: disabled %s: removed %s\n", cli.name, found.path[i]);
    printf("modhost: run 'modhost reload' (systemd: 'systemctl reload modhost') to stop "
           "serving it\n");
    rc = 0;
out:
    for (size_t i = 0; i < MAX_FOUND; i++)
        free(targets[i]);
    found_cleanup(&found);
    free(avail_dir);
    free(avail_file);
    free(target);
    return rc;
}
