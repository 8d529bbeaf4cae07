/*
 * The files of a configuration: which *.conf files a conf.d holds, in name order, and the
 * permission check for files whose content runs in the server (modules, key files).
 */
#include "conf/files.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"
#include "base/sys.h"

static enum mh_status check_one(const char *path, const char *what, bool is_dir, struct mh_err *err)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return MH_OK; /* reported where the file is used */
    /* A sticky directory (like /tmp) lets others add files but not replace ours. */
    if (is_dir && (st.st_mode & S_ISVTX))
        return MH_OK;
    if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0))
        return mh_err_set(err, MH_E_INVAL, path, 0,
                          "refusing %s%s: writable by users other than its owner and root "
                          "(mode %04o): whoever can write it can run code in this server; "
                          "fix with 'chmod go-w %s' (or set server.insecure_permissions = "
                          "true for development)",
                          what, is_dir ? "'s directory" : "", (unsigned)(st.st_mode & 07777), path);
    return MH_OK;
}

enum mh_status mh_config_check_permissions(const char *path, const char *what, struct mh_err *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    enum mh_status rc = check_one(path, what, false, err);

    if (rc != MH_OK || !slash)
        return rc;
    /* The directory is a prefix of a path that check_one() just opened: it fits. */
    (void)snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    return check_one(dir, what, true, err);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool mh_config_list_files(const char *dir, char ***files, size_t *nfiles, struct mh_errlist *errs)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;

    if (!d) {
        mh_errlist_add(errs, MH_E_IO, dir, 0, "cannot open configuration directory: %s",
                       MH_STRERROR(errno));
        return false;
    }
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        struct stat st;
        char *path;

        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
            continue;
        path = mh_xasprintf("%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (*nfiles == cap) {
            cap = cap ? cap * 2 : 16;
            *files = mh_xrealloc(*files, cap * sizeof(**files));
        }
        (*files)[(*nfiles)++] = path;
    }
    closedir(d);
    if (*nfiles == 0) {
        mh_errlist_add(errs, MH_E_NOTFOUND, dir, 0, "no *.conf files in configuration directory");
        return false;
    }
    qsort(*files, *nfiles, sizeof(**files), name_cmp);
    return true;
}
