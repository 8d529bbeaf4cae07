/* The buffered access log (see access.h). */
#include "http/access.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mem.h"
#include "base/sys.h"
#include "conf/config.h"
#include "http/req.h"
#include "mod/gen.h"
#include "mod/loader.h"

#define FLUSH_BYTES 32768

struct mh_access_buf {
    struct mh_buf buf;
    struct event *timer;
    time_t stamp_sec; /* the second the stamps were made for */
    char stamp[24];   /* "2026-12-02T14:08:38" */
    char clf[32];     /* "02/Dec/2026:14:08:38 +0000" */
};

/* Where lines go: stderr, or a file whose descriptor number stays the same across reopens. */
static atomic_int access_fd = STDERR_FILENO;

enum mh_status mh_access_open(const char *path, struct mh_err *err)
{
    int fd, cur = atomic_load(&access_fd);

    if (!path) {
        if (cur != STDERR_FILENO) {
            atomic_store(&access_fd, STDERR_FILENO);
            close(cur); /* a loop still writing to it gets EBADF for one batch at most */
        }
        return MH_OK;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return mh_err_set(err, MH_E_IO, NULL, 0, "cannot open access log %s: %s", path,
                          MH_STRERROR(errno));
    if (cur == STDERR_FILENO) {
        atomic_store(&access_fd, fd);
        return MH_OK;
    }
    /* Atomically points the descriptor the loops use at the new file. */
    if (dup3(fd, cur, O_CLOEXEC) < 0) {
        int e = errno;

        close(fd);
        return mh_err_set(err, MH_E_IO, NULL, 0, "cannot reopen access log %s: %s", path,
                          MH_STRERROR(e));
    }
    close(fd);
    return MH_OK;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mh_access_flush(arg);
}

void mh_access_start(struct mh_loop *loop)
{
    struct mh_access_buf *a = mh_xcalloc(1, sizeof(*a));
    struct timeval second = {1, 0};

    a->timer = event_new(loop->base, -1, EV_PERSIST, on_tick, loop);
    if (!a->timer)
        abort();
    event_add(a->timer, &second);
    loop->access = a;
}

void mh_access_flush(struct mh_loop *loop)
{
    struct mh_access_buf *a = loop->access;
    int fd = atomic_load(&access_fd);
    size_t off = 0;

    if (!a)
        return;
    /* In pieces of whole lines of at most PIPE_BUF bytes: each write(2) is then atomic, and
     * other threads' log lines never land inside one of ours. */
    while (off < a->buf.len) {
        size_t n = a->buf.len - off;
        ssize_t w;

        if (n > 4096) {
            const char *nl = memrchr(a->buf.data + off, '\n', 4096);

            n = nl ? (size_t)(nl - (a->buf.data + off)) + 1 : 4096;
        }
        w = write(fd, a->buf.data + off, n);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    mh_buf_reset(&a->buf);
}

void mh_access_stop(struct mh_loop *loop)
{
    struct mh_access_buf *a = loop->access;

    if (!a)
        return;
    mh_access_flush(loop);
    event_free(a->timer);
    mh_buf_cleanup(&a->buf);
    free(a);
    loop->access = NULL;
}

/* Appends @p s with control characters replaced, and @p quote escaped: one event, one line. */
static void put_clean(struct mh_buf *b, const char *s, char quote)
{
    for (; *s; s++) {
        char ch = (char)((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);

        if (quote && (ch == quote || ch == '\\'))
            mh_buf_put(b, "\\", 1);
        mh_buf_put(b, &ch, 1);
    }
}

/* Appends @p s as the inside of a JSON string (control bytes as \u00XX). */
static void put_json(struct mh_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};

            mh_buf_put(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 0xf]};

            mh_buf_put(b, e, 6);
        } else {
            mh_buf_put(b, s, 1);
        }
    }
}

static void put_str(struct mh_buf *b, const char *s)
{
    mh_buf_put(b, s, strlen(s));
}

static void put_json_field(struct mh_buf *b, const char *name, const char *value)
{
    put_str(b, ",\"");
    put_str(b, name);
    put_str(b, "\":");
    if (!value) {
        put_str(b, "null");
        return;
    }
    mh_buf_put(b, "\"", 1);
    put_json(b, value);
    mh_buf_put(b, "\"", 1);
}

static void put_json_num(struct mh_buf *b, const char *name, unsigned long long v)
{
    put_str(b, ",\"");
    put_str(b, name);
    put_str(b, "\":");
    mh_buf_put_u64(b, v);
}

static void make_stamps(struct mh_access_buf *a, const struct timeval *tv)
{
    struct tm tm;

    if (tv->tv_sec == a->stamp_sec)
        return;
    gmtime_r(&tv->tv_sec, &tm);
    /* Both sized for their formats, which have fixed widths for years 0..9999. */
    (void)strftime(a->stamp, sizeof(a->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    (void)strftime(a->clf, sizeof(a->clf), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    a->stamp_sec = tv->tv_sec;
}

/* The buffer with room for @p more bytes, its stamps current; NULL if nothing is logged. */
static struct mh_buf *begin(struct mh_loop *loop, size_t more, struct timeval *tv)
{
    struct mh_access_buf *a = loop->access;

    if (!a || !mh_buf_reserve(&a->buf, 160 + more))
        return NULL;
    if (loop->access_format == MH_ACCESS_TEXT && !mh_log_enabled(MH_LOG_INFO))
        return NULL;
    gettimeofday(tv, NULL);
    make_stamps(a, tv);
    return &a->buf;
}

/* `2026-12-02T14:08:38.123Z info  access: ` */
static void put_text_start(struct mh_buf *b, const struct mh_access_buf *a,
                           const struct timeval *tv)
{
    char ms[8];

    put_str(b, a->stamp);
    (void)snprintf(ms, sizeof(ms), ".%03d", (int)(tv->tv_usec / 1000));
    mh_buf_put(b, ms, 4);
    put_str(b, "Z info  access: ");
}

static void put_iso_ms(struct mh_buf *b, const struct mh_access_buf *a, const struct timeval *tv)
{
    char ms[8];

    put_str(b, a->stamp);
    (void)snprintf(ms, sizeof(ms), ".%03d", (int)(tv->tv_usec / 1000));
    mh_buf_put(b, ms, 4);
    mh_buf_put(b, "Z", 1);
}

/* `CLIENT - - [02/Dec/2026:14:08:38 +0000] ` */
static void put_combined_start(struct mh_buf *b, const char *client, const struct mh_access_buf *a)
{
    put_str(b, client);
    put_str(b, " - - [");
    put_str(b, a->clf);
    put_str(b, "] ");
}

static void end(struct mh_loop *loop)
{
    struct mh_access_buf *a = loop->access;

    mh_buf_put(&a->buf, "\n", 1);
    if (a->buf.len >= FLUSH_BYTES)
        mh_access_flush(loop);
}

static const char *header(const struct mh_req *req, const char *name)
{
    for (size_t i = 0; i < req->nfields; i++) {
        if (strcasecmp(req->fields[i].name, name) == 0)
            return req->fields[i].value;
    }
    return NULL;
}

/* What an access line says about a request. */
struct access_line {
    const struct mh_req *req;
    const char *client, *module, *route, *user_agent, *referer, *query;
    int status;
    size_t bytes;
    long long us; /* from reading the request to now */
};

static size_t len_or_0(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Room for @p l's line: each text may grow sixfold when escaped (\u00XX). */
static size_t line_room(const struct access_line *l)
{
    return (strlen(l->req->path) + len_or_0(l->query) + len_or_0(l->user_agent) +
            len_or_0(l->referer) + len_or_0(l->module) + len_or_0(l->route) + strlen(l->req->rid)) *
               6 +
           256;
}

static long long elapsed_us(const struct mh_req *req)
{
    struct timespec now;
    long long us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long long)(now.tv_sec - req->start.tv_sec) * 1000000 +
         (now.tv_nsec - req->start.tv_nsec) / 1000;
    return us < 0 ? 0 : us;
}

static void put_text_request(struct mh_buf *b, const struct mh_access_buf *a,
                             const struct timeval *tv, const struct access_line *l)
{
    put_text_start(b, a, tv);
    put_clean(b, l->req->method_name, 0);
    mh_buf_put(b, " ", 1);
    put_clean(b, l->req->path, 0);
    if (l->query) {
        mh_buf_put(b, "?", 1);
        put_clean(b, l->query, 0);
    }
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, (unsigned)l->status);
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, l->bytes);
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, (unsigned long long)l->us);
    put_str(b, "us req=");
    put_str(b, l->req->rid);
    put_str(b, " client=");
    put_str(b, l->client);
    if (l->module) {
        put_str(b, " module=");
        put_clean(b, l->module, 0);
        put_str(b, " route=");
        put_clean(b, l->route, 0);
    }
}

/* host ident user [time] "request" status bytes "referer" "agent", then ours. */
static void put_combined_request(struct mh_buf *b, const struct mh_access_buf *a,
                                 const struct access_line *l)
{
    put_combined_start(b, l->client, a);
    mh_buf_put(b, "\"", 1);
    put_clean(b, l->req->method_name, '"');
    mh_buf_put(b, " ", 1);
    put_clean(b, l->req->path, '"');
    if (l->query) {
        mh_buf_put(b, "?", 1);
        put_clean(b, l->query, '"');
    }
    put_str(b, l->req->http11 ? " HTTP/1.1\" " : " HTTP/1.0\" ");
    mh_buf_put_u64(b, (unsigned)l->status);
    mh_buf_put(b, " ", 1);
    if (l->bytes)
        mh_buf_put_u64(b, l->bytes);
    else
        mh_buf_put(b, "-", 1);
    put_str(b, " \"");
    put_clean(b, l->referer ? l->referer : "-", '"');
    put_str(b, "\" \"");
    put_clean(b, l->user_agent ? l->user_agent : "-", '"');
    put_str(b, "\" module=");
    put_clean(b, l->module ? l->module : "-", 0);
    put_str(b, " route=");
    put_clean(b, l->route ? l->route : "-", 0);
    put_str(b, " req=");
    put_str(b, l->req->rid);
    put_str(b, " us=");
    mh_buf_put_u64(b, (unsigned long long)l->us);
}

static void put_json_request(struct mh_buf *b, const struct mh_access_buf *a,
                             const struct timeval *tv, const struct access_line *l)
{
    put_str(b, "{\"time\":\"");
    put_iso_ms(b, a, tv);
    mh_buf_put(b, "\"", 1);
    put_json_field(b, "client", l->client);
    put_json_field(b, "method", l->req->method_name);
    put_json_field(b, "path", l->req->path);
    put_json_field(b, "query", l->query);
    put_json_num(b, "status", (unsigned)l->status);
    put_json_num(b, "bytes", l->bytes);
    put_json_num(b, "duration_us", (unsigned long long)l->us);
    put_json_field(b, "request_id", l->req->rid);
    put_json_field(b, "module", l->module);
    put_json_field(b, "route", l->route);
    put_json_field(b, "referer", l->referer);
    put_json_field(b, "user_agent", l->user_agent);
    mh_buf_put(b, "}", 1);
}

void mh_access_request(struct mh_loop *loop, const struct mh_req *req, const char *client,
                       int status, size_t bytes)
{
    const struct mh_route_target *t = req->target;
    struct access_line l = {.req = req,
                            .client = client,
                            .module = t ? t->module->name : NULL,
                            .route = t ? (t->ws ? t->ws->path : t->conf->path) : NULL,
                            .user_agent = header(req, "User-Agent"),
                            .referer = header(req, "Referer"),
                            .query = req->query_raw,
                            .status = status,
                            .bytes = bytes};
    struct timeval tv;
    struct mh_buf *b = begin(loop, line_room(&l), &tv);

    if (!b)
        return;
    l.us = elapsed_us(req);
    switch (loop->access_format) {
    case MH_ACCESS_TEXT:
        put_text_request(b, loop->access, &tv, &l);
        break;
    case MH_ACCESS_COMBINED:
        put_combined_request(b, loop->access, &l);
        break;
    case MH_ACCESS_JSON:
        put_json_request(b, loop->access, &tv, &l);
        break;
    }
    end(loop);
}

void mh_access_refusal(struct mh_loop *loop, const char *client, int status, size_t bytes,
                       const char *reason, const char *why)
{
    struct timeval tv;
    struct mh_buf *b = begin(loop, (strlen(reason) + strlen(why)) * 6 + 64, &tv);

    if (!b)
        return;
    switch (loop->access_format) {
    case MH_ACCESS_TEXT:
        put_text_start(b, loop->access, &tv);
        put_str(b, "- - ");
        mh_buf_put_u64(b, (unsigned)status);
        mh_buf_put(b, " ", 1);
        mh_buf_put_u64(b, bytes);
        put_str(b, " 0us refused=");
        put_clean(b, reason, 0);
        put_str(b, " (");
        put_clean(b, why, 0);
        put_str(b, ") client=");
        put_str(b, client);
        break;
    case MH_ACCESS_COMBINED:
        put_combined_start(b, client, loop->access);
        put_str(b, "\"-\" ");
        mh_buf_put_u64(b, (unsigned)status);
        mh_buf_put(b, " ", 1);
        mh_buf_put_u64(b, bytes);
        put_str(b, " \"-\" \"-\" refused=");
        put_clean(b, reason, 0);
        break;
    case MH_ACCESS_JSON:
        put_str(b, "{\"time\":\"");
        put_iso_ms(b, loop->access, &tv);
        mh_buf_put(b, "\"", 1);
        put_json_field(b, "client", client);
        put_json_num(b, "status", (unsigned)status);
        put_json_num(b, "bytes", bytes);
        put_json_field(b, "refused", reason);
        put_json_field(b, "detail", why);
        mh_buf_put(b, "}", 1);
        break;
    }
    end(loop);
}
