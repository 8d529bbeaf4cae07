/*
 * `modhost new-module`: finds the template directory, checks the name, and writes each
 * template file into the new directory with @NAME@ replaced. Nothing else of the server runs.
 */
#include "cli_new_module.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/sys.h"

#ifndef MH_TEMPLATE_DIR
#define MH_TEMPLATE_DIR "/usr/share/modhost/template"
#endif

static const char usage[] =
    "usage: modhost new-module NAME [DIR] [--template DIR]\n"
    "\n"
    "Writes a module skeleton called NAME into DIR (default ./NAME, which must not exist or\n"
    "be empty): NAME.c (a handler, a blocking handler and WebSocket hooks), NAME.conf (its\n"
    "conf.d entry), test_NAME.c (unit tests on the testing host), a Makefile and a\n"
    "CMakeLists.txt that build with `pkg-config modhost-sdk`. Then: cd DIR && make && make test\n"
    "&& make install.\n"
    "\n"
    "  -t, --template DIR  the template to use (default: $MODHOST_TEMPLATE_DIR, else the SDK's\n"
    "                      share/modhost/template beside this binary, else " MH_TEMPLATE_DIR ")\n"
    "  -h, --help          this text\n";

/* Template file -> file written: prefix NAME suffix, or the prefix alone if suffix is NULL. */
static const struct {
    const char *tmpl, *prefix, *suffix;
} files[] = {
    {"module.c", "", ".c"},
    {"test_module.c", "test_", ".c"},
    {"module.conf", "", ".conf"},
    {"Makefile", "Makefile", NULL},
    {"CMakeLists.txt", "CMakeLists.txt", NULL},
};

/* DIR/NAME into @p buf; false (errno ENAMETOOLONG) if it does not fit. */
static bool join_path(char *buf, size_t size, const char *dir, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return false;
    }
    return true;
}

static void out_name(size_t i, const char *name, char *buf, size_t size)
{
    /* Cannot truncate: valid_name() allows 64 bytes, the callers' buffers hold 128. */
    (void)snprintf(buf, size, "%s%s%s", files[i].prefix, files[i].suffix ? name : "",
                   files[i].suffix ? files[i].suffix : "");
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

static bool has_template(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;

    return join_path(path, sizeof(path), dir, "module.c") && stat(path, &st) == 0 &&
           S_ISREG(st.st_mode);
}

/* The template directory to use, or NULL after saying why not. Caller frees. */
static char *find_template(const char *given)
{
    char exe[PATH_MAX];
    const char *env = getenv("MODHOST_TEMPLATE_DIR");
    ssize_t n;

    if (given || (env && env[0])) {
        const char *d = given ? given : env;

        if (has_template(d))
            return mh_xstrdup(d);
        (void)fprintf(stderr, "modhost: %s (from %s) holds no module template (module.c)\n", d,
                      given ? "--template" : "MODHOST_TEMPLATE_DIR");
        return NULL;
    }
    /* Beside the binary: PREFIX/bin/modhost -> PREFIX/share/modhost/template, so an SDK
     * installed under any prefix finds its own template. */
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            char *dir;

            *slash = '\0';
            dir = mh_xasprintf("%s/../share/modhost/template", exe);
            if (has_template(dir))
                return dir;
            free(dir);
        }
    }
    if (has_template(MH_TEMPLATE_DIR))
        return mh_xstrdup(MH_TEMPLATE_DIR);
    (void)fprintf(stderr,
                  "modhost: no module template found (looked beside this binary and in %s); "
                  "install the SDK or pass --template DIR\n",
                  MH_TEMPLATE_DIR);
    return NULL;
}

/* Reads @p path whole. @return the text (caller frees) or NULL with errno set. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;

    *len = 0;
    if (!f)
        return NULL;
    for (;;) {
        size_t got;

        if (*len + 4096 + 1 > cap) {
            cap = (*len + 4096 + 1) * 2;
            buf = mh_xrealloc(buf, cap);
        }
        got = fread(buf + *len, 1, cap - *len - 1, f);
        *len += got;
        if (got == 0)
            break;
    }
    buf[*len] = '\0';
    if (ferror(f)) {
        (void)fclose(f); /* read only: the read error is the one to report */
        free(buf);
        errno = EIO;
        return NULL;
    }
    (void)fclose(f); /* read only: nothing to lose */
    return buf;
}

/* Writes @p text with every @NAME@ replaced by @p name to a new file @p path. */
static int write_file(const char *path, const char *text, const char *name)
{
    static const char mark[] = "@NAME@";
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    const char *p = text, *hit;

    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* A failed write sets the stream's error flag, which is checked once at the end. */
    while ((hit = strstr(p, mark))) {
        (void)fwrite(p, 1, (size_t)(hit - p), f);
        (void)fputs(name, f);
        p = hit + sizeof(mark) - 1;
    }
    (void)fputs(p, f);
    if (ferror(f)) {
        (void)fclose(f); /* the write error is the one to report */
        errno = EIO;
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Creates @p dir, or accepts it if it exists and is empty. */
static int make_dir(const char *dir, const char *name)
{
    struct stat st;
    char base[128], probe[PATH_MAX];

    if (mkdir(dir, 0755) == 0)
        return 0;
    if (errno != EEXIST || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return -1;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        out_name(i, name, base, sizeof(base));
        if (!join_path(probe, sizeof(probe), dir, base))
            return -1;
        if (access(probe, F_OK) == 0) {
            errno = EEXIST; /* never overwrite a module someone wrote */
            return -1;
        }
    }
    return 0;
}

static int generate(const char *name, const char *dir, const char *tmpl)
{
    char src[PATH_MAX], out[PATH_MAX], base[128];

    if (make_dir(dir, name) != 0) {
        (void)fprintf(stderr, "modhost: cannot create %s: %s\n", dir, MH_STRERROR(errno));
        return 1;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len;
        char *text;

        out_name(i, name, base, sizeof(base));
        if (!join_path(src, sizeof(src), tmpl, files[i].tmpl) ||
            !join_path(out, sizeof(out), dir, base)) {
            (void)fprintf(stderr, "modhost: path too long under %s or %s\n", tmpl, dir);
            return 1;
        }
        text = read_all(src, &len);
        if (!text) {
            (void)fprintf(stderr, "modhost: cannot read the template %s: %s\n", src,
                          MH_STRERROR(errno));
            return 1;
        }
        if (write_file(out, text, name) != 0) {
            (void)fprintf(stderr, "modhost: cannot write %s: %s\n", out, MH_STRERROR(errno));
            free(text);
            return 1;
        }
        free(text);
        printf("  %s\n", out);
    }
    printf("modhost: module '%s' written to %s. Next:\n"
           "  cd %s && make && make test && make install\n"
           "then copy %s.conf into the server's conf.d and run `modhost reload`.\n",
           name, dir, dir, name);
    return 0;
}

int mh_cli_new_module(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"template", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *tmpl_opt = NULL, *name, *dir;
    char *tmpl;
    int ch, rc;

    optind = 1;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the command line is parsed before threads start */
    while ((ch = getopt_long(argc, argv, "t:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            tmpl_opt = optarg;
            break;
        case 'h':
            (void)fputs(usage, stdout);
            return 0;
        default:
            (void)fputs(usage, stderr);
            return 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        (void)fputs(usage, stderr);
        return 2;
    }
    name = argv[optind];
    dir = argc - optind == 2 ? argv[optind + 1] : name;
    if (!valid_name(name)) {
        (void)fprintf(stderr,
                      "modhost: module name '%s' must match [a-z0-9_]+ (at most 64 "
                      "characters): conf.d and the loader use it as is\n",
                      name);
        return 2;
    }
    tmpl = find_template(tmpl_opt);
    if (!tmpl)
        return 1;
    rc = generate(name, dir, tmpl);
    free(tmpl);
    return rc;
}
