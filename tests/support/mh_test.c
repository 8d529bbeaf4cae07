/*
 * The shared CUnit runner and the temporary-directory helpers (see mh_test.h). Nothing here
 * knows about modhost itself, so every suite can use it.
 */
#include "mh_test.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

/* --- Runner --- */

int mh_test_main(int argc, char **argv, const char *suite_name, const struct mh_test_case *cases)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    unsigned nregistered = 0, nfailed;
    CU_pSuite suite;
    int rc = 1;

    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "%s: cannot initialise CUnit: %s\n", suite_name, CU_get_error_msg());
        return 1;
    }
    suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite)
        goto out;
    for (const struct mh_test_case *c = cases; c->name; c++) {
        if (only && !strstr(c->name, only))
            continue;
        if (!CU_add_test(suite, c->name, c->fn))
            goto out;
        nregistered++;
    }
    if (nregistered == 0) {
        fprintf(stderr, "%s: no case matches '%s'\n", suite_name, only ? only : "");
        goto out;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (CU_basic_run_tests() != CUE_SUCCESS)
        goto out;
    nfailed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    rc = nfailed == 0 && CU_get_number_of_tests_run() == nregistered ? 0 : 1;
out:
    if (CU_get_error() != CUE_SUCCESS)
        fprintf(stderr, "%s: CUnit error: %s\n", suite_name, CU_get_error_msg());
    CU_cleanup_registry();
    return rc;
}

const char *mh_test_str(const char *s)
{
    return s ? s : "(null)";
}

/* --- Temporary directories --- */

static void die(const char *what, const char *path)
{
    char msg[128];

    fprintf(stderr, "test support: %s %s: %s\n", what, path, strerror_r(errno, msg, sizeof(msg)));
    abort();
}

void mh_test_dir_init(struct mh_test_dir *d)
{
    const char *tmp = getenv("TMPDIR");
    int n;

    memset(d, 0, sizeof(*d)); /* callers pass fresh storage */
    if (!tmp || tmp[0] != '/')
        tmp = "/tmp";
    n = snprintf(d->path, sizeof(d->path), "%s/mh-test-XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof(d->path)) {
        errno = ENAMETOOLONG;
        die("cannot create a directory in", tmp);
    }
    if (!mkdtemp(d->path))
        die("mkdtemp", d->path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int mh_test_rmtree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

void mh_test_dir_cleanup(struct mh_test_dir *d)
{
    if (d->path[0] && mh_test_rmtree(d->path) != 0) {
        char msg[128];

        fprintf(stderr, "test support: cannot remove %s: %s\n", d->path,
                strerror_r(errno, msg, sizeof(msg)));
    }
    d->path[0] = '\0';
}

char *mh_test_dir_path(const struct mh_test_dir *d, const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", d->path, name);

    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        die("path too long:", name);
    }
    return buf;
}

/* mkdir -p for @p path; its first @p skip bytes name a directory that exists. */
static void make_dirs(char *path, size_t skip)
{
    for (char *p = strchr(path + skip + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            die("mkdir", path);
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        die("mkdir", path);
}

void mh_test_dir_mkdir(struct mh_test_dir *d, const char *name)
{
    char path[512];

    make_dirs(mh_test_dir_path(d, name, path, sizeof(path)), strlen(d->path));
}

const char *mh_test_dir_write(struct mh_test_dir *d, const char *name, const char *text)
{
    static char path[512];
    size_t len = strlen(text);
    char *slash;
    FILE *f;

    mh_test_dir_path(d, name, path, sizeof(path));
    slash = strrchr(path, '/');
    if (slash > path + strlen(d->path)) {
        *slash = '\0';
        make_dirs(path, strlen(d->path));
        *slash = '/';
    }
    f = fopen(path, "w");
    if (!f)
        die("fopen", path);
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0)
        die("write", path);
    return path;
}

void mh_test_dir_write_all(struct mh_test_dir *d, const struct mh_test_file *files)
{
    for (const struct mh_test_file *f = files; f->name; f++)
        mh_test_dir_write(d, f->name, f->text);
}
