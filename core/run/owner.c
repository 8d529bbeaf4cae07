/*
 * One server per pid file and per address. The pid file is locked (flock) rather than only
 * written, so a second server sees the first one even when the file was left behind by a
 * crash (the lock dies with its process). The address probe binds without SO_REUSEPORT, which
 * fails while any socket listens there; the pid serving it is looked up in /proc.
 */
#include "run/owner.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sys.h"

static long read_pid_fd(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

int mh_pidfile_lock(const char *path, struct mh_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644), saved;

    if (fd < 0) {
        saved = errno;
        mh_err_set(err, MH_E_IO, NULL, 0, "cannot open pid file %s: %s", path, MH_STRERROR(saved));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        saved = errno;
        if (saved == EWOULDBLOCK) {
            long pid = read_pid_fd(fd);

            if (pid > 0)
                mh_err_set(err, MH_E_CONFLICT, NULL, 0,
                           "pid file %s is locked: modhost already runs as pid %ld (stop it "
                           "first, or give this server another server.pid_file)",
                           path, pid);
            else
                mh_err_set(err, MH_E_CONFLICT, NULL, 0,
                           "pid file %s is locked by another modhost that is starting", path);
        } else {
            mh_err_set(err, MH_E_IO, NULL, 0, "cannot lock pid file %s: %s", path,
                       MH_STRERROR(saved));
        }
        close(fd);
        return -1;
    }
    return fd;
}

enum mh_status mh_pidfile_write(int fd, pid_t pid)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

    /* In place: renaming a new file over the path would leave the lock on an unlinked inode. */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return MH_E_IO;
    return MH_OK;
}

/* --- Who listens on a port --- */

/* The number @p s .. @p end (the whole of it) in @p base; false if it is not one. */
static bool parse_ulong(const char *s, const char *end, int base, unsigned long *out)
{
    char *stop;

    if (s == end || !isxdigit((unsigned char)*s))
        return false; /* strtoul would take a sign or blanks */
    errno = 0;
    *out = strtoul(s, &stop, base);
    return errno == 0 && stop == end;
}

/* The inode of a socket listening on @port in this line of /proc/net/tcp or tcp6, or 0:
 * sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
static unsigned long listen_line_inode(const char *line, int port)
{
    const char *field[10], *end[10], *colon;
    unsigned long state, lport, inode;
    int n = 0;

    for (const char *p = line; *p && n < 10;) {
        p += strspn(p, " \t\n");
        if (!*p)
            break;
        field[n] = p;
        p += strcspn(p, " \t\n");
        end[n++] = p;
    }
    if (n < 10)
        return 0;
    colon = memrchr(field[1], ':', (size_t)(end[1] - field[1]));
    if (!colon || !parse_ulong(field[3], end[3], 16, &state) || state != 0x0A ||
        !parse_ulong(colon + 1, end[1], 16, &lport) || lport != (unsigned long)port ||
        !parse_ulong(field[9], end[9], 10, &inode))
        return 0;
    return inode;
}

/* The inode of a socket listening on @port in /proc/net/@file, or 0. */
static unsigned long listen_inode(const char *file, int port)
{
    char path[64], line[512];
    unsigned long inode = 0;
    FILE *f;

    (void)snprintf(path, sizeof(path), "/proc/net/%s", file);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (!inode && fgets(line, sizeof(line), f))
        inode = listen_line_inode(line, port);
    (void)fclose(f); /* read only: nothing to lose */
    return inode;
}

/* The first process (other than this one) holding socket @inode, or 0. */
static long socket_owner(unsigned long inode)
{
    char want[64], path[300], link[64];
    DIR *proc = opendir("/proc");
    struct dirent *p;
    long found = 0;

    if (!proc)
        return 0;
    (void)snprintf(want, sizeof(want), "socket:[%lu]", inode); /* fits any long */
    while (!found && (p = readdir(proc))) {
        long pid = strtol(p->d_name, NULL, 10);
        DIR *fds;
        struct dirent *fd;

        if (pid <= 0 || pid == (long)getpid())
            continue;
        (void)snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
        fds = opendir(path);
        if (!fds)
            continue; /* another user's process, or gone */
        while (!found && (fd = readdir(fds))) {
            ssize_t n;

            (void)snprintf(path, sizeof(path), "/proc/%ld/fd/%s", pid, fd->d_name);
            n = readlink(path, link, sizeof(link) - 1);
            if (n > 0) {
                link[n] = '\0';
                if (strcmp(link, want) == 0)
                    found = pid;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return found;
}

enum mh_status mh_addr_probe(const char *host, int port, struct mh_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    bool in_use = false;

    if (port == 0)
        return MH_OK;
    (void)snprintf(portstr, sizeof(portstr), "%d", port); /* fits any int */
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return MH_OK; /* binding reports it */
    for (struct addrinfo *ai = res; ai && !in_use; ai = ai->ai_next) {
        int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);

        if (fd < 0)
            continue;
        /* SO_REUSEADDR ignores connections in TIME_WAIT, never a listener. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE)
            in_use = true;
        close(fd);
    }
    freeaddrinfo(res);
    if (in_use) {
        unsigned long inode = listen_inode("tcp", port);
        long pid;

        if (!inode)
            inode = listen_inode("tcp6", port);
        pid = inode ? socket_owner(inode) : 0;
        if (pid > 0)
            return mh_err_set(err, MH_E_CONFLICT, NULL, 0,
                              "cannot listen on %s:%d: the address is already served by pid %ld",
                              host, port, pid);
        return mh_err_set(err, MH_E_CONFLICT, NULL, 0,
                          "cannot listen on %s:%d: the address is already in use by another "
                          "process",
                          host, port);
    }
    return MH_OK;
}
