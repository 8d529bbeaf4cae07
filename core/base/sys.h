/*
 * Thread-safe forms of the libc calls that keep static state (strerror, strsignal, getpwnam,
 * getgrnam): the server calls them from several threads, and a result must not change under
 * its reader.
 */
#ifndef MH_SYS_H
#define MH_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MH_ERRNO_STR_MAX 128

/** The text of @p errnum in @p buf (strerror_r); returns @p buf. */
const char *mh_errno_str(int errnum, char *buf, size_t size);
/** strerror() without static state: the text lives until the end of the enclosing block. */
#define MH_STRERROR(e) mh_errno_str((e), (char[MH_ERRNO_STR_MAX]){0}, MH_ERRNO_STR_MAX)

/** The description of signal @p sig (strsignal without its static buffer); never NULL. */
const char *mh_signal_str(int sig);

/** Looks up user @p name; true and its uid and primary gid (either may be NULL) if it exists. */
bool mh_user_find(const char *name, uid_t *uid, gid_t *gid);
/** Looks up group @p name; true and its gid (may be NULL) if it exists. */
bool mh_group_find(const char *name, gid_t *gid);

#endif
