/* The buffered access log (see access.h). */
#include "http/access.h"

#include <inttypes.h>
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

#define FLUSH_BYTES 32768

struct mh_access_buf {
    struct mh_buf buf;
    struct event *timer;
    time_t stamp_sec; /* the second `stamp` was made for */
    char stamp[24];   /* "2026-12-02T14:08:38" */
};

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
        w = write(STDERR_FILENO, a->buf.data + off, n);
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

/* Appends @p s with line breaks and other control characters replaced: one event, one line. */
static void put_clean(struct mh_buf *b, const char *s)
{
    for (; *s; s++) {
        char ch = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;

        mh_buf_put(b, &ch, 1);
    }
}

/* The line's start, `2026-12-02T14:08:38.123Z info  access: `, with room for @p more bytes. */
static struct mh_buf *begin(struct mh_loop *loop, size_t more)
{
    struct mh_access_buf *a = loop->access;
    struct timeval tv;
    char ms[8];

    if (!a || !mh_log_enabled(MH_LOG_INFO) || !mh_buf_reserve(&a->buf, 64 + more))
        return NULL;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != a->stamp_sec) {
        struct tm tm;

        gmtime_r(&tv.tv_sec, &tm);
        strftime(a->stamp, sizeof(a->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        a->stamp_sec = tv.tv_sec;
    }
    mh_buf_put(&a->buf, a->stamp, strlen(a->stamp));
    snprintf(ms, sizeof(ms), ".%03d", (int)(tv.tv_usec / 1000));
    mh_buf_put(&a->buf, ms, 4);
    mh_buf_put(&a->buf, "Z info  access: ", 16);
    return &a->buf;
}

static void end(struct mh_loop *loop)
{
    struct mh_access_buf *a = loop->access;

    mh_buf_put(&a->buf, "\n", 1);
    if (a->buf.len >= FLUSH_BYTES)
        mh_access_flush(loop);
}

void mh_access_request(struct mh_loop *loop, const char *method, const char *path,
                       const char *query, int status, size_t bytes, const struct timespec *start,
                       uint64_t id)
{
    size_t more = strlen(method) + strlen(path) + (query ? strlen(query) : 0) + 96;
    struct mh_buf *b = begin(loop, more);
    struct timespec now;
    long long us;

    if (!b)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    us = (long long)(now.tv_sec - start->tv_sec) * 1000000 + (now.tv_nsec - start->tv_nsec) / 1000;
    put_clean(b, method);
    mh_buf_put(b, " ", 1);
    put_clean(b, path);
    if (query) {
        mh_buf_put(b, "?", 1);
        put_clean(b, query);
    }
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, (unsigned)status);
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, bytes);
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, us > 0 ? (unsigned long long)us : 0);
    mh_buf_put(b, "us req=", 7);
    mh_buf_put_u64(b, id);
    end(loop);
}

void mh_access_refusal(struct mh_loop *loop, int status, size_t bytes, const char *reason,
                       const char *why)
{
    struct mh_buf *b = begin(loop, strlen(reason) + strlen(why) + 64);

    if (!b)
        return;
    mh_buf_put(b, "- - ", 4);
    mh_buf_put_u64(b, (unsigned)status);
    mh_buf_put(b, " ", 1);
    mh_buf_put_u64(b, bytes);
    mh_buf_put(b, " 0us refused=", 13);
    put_clean(b, reason);
    mh_buf_put(b, " (", 2);
    put_clean(b, why);
    mh_buf_put(b, ")", 1);
    end(loop);
}
