/*
 * Thread-safe forms of libc calls with static state (sys.h). Lookups use a buffer on the
 * stack, grown on the heap only for an unusually large passwd or group entry.
 */
#include "sys.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_BUF_MAX ((size_t)1024 * 1024) /* no sane passwd/group entry is larger */

const char *mh_errno_str(int errnum, char *buf, size_t size)
{
    /* The GNU strerror_r (_GNU_SOURCE) may return a static string instead of filling buf. */
    const char *s = strerror_r(errnum, buf, size);

    if (s != buf)
        (void)snprintf(buf, size, "%s", s); /* truncating an error text is acceptable */
    return buf;
}

const char *mh_signal_str(int sig)
{
    const char *s = sigdescr_np(sig); /* glibc 2.32: a constant string, NULL if unknown */

    return s ? s : "Unknown signal";
}

bool mh_user_find(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd pw;
    struct passwd *found = NULL;
    char stack[1024];
    char *buf = stack;
    size_t size = sizeof(stack);
    int rc;

    while ((rc = getpwnam_r(name, &pw, buf, size, &found)) == ERANGE && size < ENTRY_BUF_MAX) {
        if (buf != stack)
            free(buf);
        size *= 2;
        buf = malloc(size);
        if (!buf)
            return false;
    }
    if (rc == 0 && found) {
        if (uid)
            *uid = pw.pw_uid;
        if (gid)
            *gid = pw.pw_gid;
    }
    if (buf != stack)
        free(buf);
    return rc == 0 && found;
}

bool mh_group_find(const char *name, gid_t *gid)
{
    struct group gr;
    struct group *found = NULL;
    char stack[1024];
    char *buf = stack;
    size_t size = sizeof(stack);
    int rc;

    while ((rc = getgrnam_r(name, &gr, buf, size, &found)) == ERANGE && size < ENTRY_BUF_MAX) {
        if (buf != stack)
            free(buf);
        size *= 2;
        buf = malloc(size);
        if (!buf)
            return false;
    }
    if (rc == 0 && found && gid)
        *gid = gr.gr_gid;
    if (buf != stack)
        free(buf);
    return rc == 0 && found;
}
