/* Connection output queues (see outq.h). */
#include "http/outq.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"
#include "base/mem.h"

#define SEG_SIZE      16384 /* a block of small writes */
#define MAX_SPARE_SEG 64    /* drained blocks kept per loop */

struct mh_out_seg {
    struct mh_out_seg *next;
    char *data;
    size_t len, off, cap;
    bool owned_block; /* data is a separate malloc'd block (mh_outq_give) */
};

static struct mh_out_seg *seg_new(struct mh_loop *loop, size_t need)
{
    struct mh_out_seg *s;

    if (need <= SEG_SIZE && loop->spare_segs) {
        s = loop->spare_segs;
        loop->spare_segs = s->next;
        loop->nspare_segs--;
    } else {
        size_t cap = need > SEG_SIZE ? need : SEG_SIZE;

        s = mh_xmalloc(sizeof(*s) + cap);
        s->cap = cap;
        s->data = (char *)(s + 1);
    }
    s->next = NULL;
    s->len = s->off = 0;
    s->owned_block = false;
    return s;
}

static void seg_free(struct mh_loop *loop, struct mh_out_seg *s)
{
    if (s->owned_block) {
        free(s->data);
        free(s);
        return;
    }
    if (s->cap == SEG_SIZE && loop->nspare_segs < MAX_SPARE_SEG && !loop->stopped) {
        s->next = loop->spare_segs;
        loop->spare_segs = s;
        loop->nspare_segs++;
        return;
    }
    free(s);
}

static void append(struct mh_outq *q, struct mh_out_seg *s)
{
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
}

char *mh_outq_space(struct mh_outq *q, struct mh_loop *loop, size_t n)
{
    struct mh_out_seg *t = q->tail;

    if (!t || t->owned_block || t->cap - t->len < n) {
        t = seg_new(loop, n);
        append(q, t);
    }
    return t->data + t->len;
}

void mh_outq_commit(struct mh_outq *q, size_t used)
{
    q->tail->len += used;
    q->unsent += used;
}

void mh_outq_add(struct mh_outq *q, struct mh_loop *loop, const void *data, size_t len)
{
    const char *p = data;

    while (len) {
        struct mh_out_seg *t = q->tail;
        size_t room = t && !t->owned_block ? t->cap - t->len : 0, n;

        if (!room) {
            t = seg_new(loop, len > SEG_SIZE ? SEG_SIZE : len);
            append(q, t);
            room = t->cap;
        }
        n = len < room ? len : room;
        memcpy(t->data + t->len, p, n);
        t->len += n;
        q->unsent += n;
        p += n;
        len -= n;
    }
}

void mh_outq_give(struct mh_outq *q, void *block, size_t len)
{
    struct mh_out_seg *s = mh_xmalloc(sizeof(*s));

    s->next = NULL;
    s->data = block;
    s->len = s->cap = len;
    s->off = 0;
    s->owned_block = true;
    append(q, s);
    q->unsent += len;
}

int mh_outq_iov(const struct mh_outq *q, struct iovec *iov, int max)
{
    int n = 0;

    for (const struct mh_out_seg *s = q->head; s && n < max; s = s->next) {
        iov[n].iov_base = s->data + s->off;
        iov[n].iov_len = s->len - s->off;
        n++;
    }
    return n;
}

void mh_outq_consume(struct mh_outq *q, struct mh_loop *loop, size_t n)
{
    q->unsent -= n;
    while (n > 0) {
        struct mh_out_seg *s = q->head;

        assert(s); /* n is at most what was queued: the writer wrote no more than it had */
        if (n < s->len - s->off) {
            s->off += n;
            return;
        }
        n -= s->len - s->off;
        q->head = s->next;
        if (!q->head)
            q->tail = NULL;
        seg_free(loop, s);
    }
}

void mh_outq_clear(struct mh_outq *q, struct mh_loop *loop)
{
    while (q->head) {
        struct mh_out_seg *s = q->head;

        q->head = s->next;
        seg_free(loop, s);
    }
    q->tail = NULL;
    q->unsent = 0;
}

void mh_outq_spares_free(struct mh_loop *loop)
{
    while (loop->spare_segs) {
        struct mh_out_seg *s = loop->spare_segs;

        loop->spare_segs = s->next;
        free(s);
    }
    loop->nspare_segs = 0;
}
