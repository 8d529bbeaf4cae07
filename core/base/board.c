/* Per-worker metric snapshots in shared memory (see board.h). */
#include "base/board.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "base/log.h"

struct slot {
    atomic_uint seq; /* odd while the owner writes */
    atomic_uint len;
    char data[MH_BOARD_SLOT];
};

struct mh_board {
    unsigned nprocs;
    struct slot slots[];
};

static struct mh_board *attached;
static unsigned self_proc;

static size_t board_size(unsigned nprocs)
{
    return sizeof(struct mh_board) + (size_t)nprocs * sizeof(struct slot);
}

struct mh_board *mh_board_new(unsigned nprocs)
{
    /* Pages are only backed once written: an idle slot costs nothing. */
    struct mh_board *b = mmap(NULL, board_size(nprocs), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (b == MAP_FAILED) {
        mh_error("board", "cannot map the metrics board: %m");
        return NULL;
    }
    b->nprocs = nprocs; /* the mapping starts zeroed: every slot empty */
    return b;
}

void mh_board_free(struct mh_board *b)
{
    if (b)
        munmap(b, board_size(b->nprocs));
}

void mh_board_reset(struct mh_board *b, unsigned proc)
{
    if (!b || proc >= b->nprocs)
        return;
    atomic_store(&b->slots[proc].len, 0);
    atomic_store(&b->slots[proc].seq, 0);
}

void mh_board_attach(struct mh_board *b, unsigned proc)
{
    attached = b && proc < b->nprocs ? b : NULL;
    self_proc = proc;
}

bool mh_board_active(void)
{
    return attached && attached->nprocs > 1;
}

unsigned mh_board_nprocs(void)
{
    return attached ? attached->nprocs : 0;
}

unsigned mh_board_self(void)
{
    return self_proc;
}

bool mh_board_publish(const void *data, size_t len)
{
    struct slot *s;
    unsigned seq;

    if (!attached || len > MH_BOARD_SLOT)
        return false;
    s = &attached->slots[self_proc];
    seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(s->data, data, len);
    atomic_store_explicit(&s->len, (unsigned)len, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
    return true;
}

bool mh_board_read(unsigned proc, struct mh_buf *out)
{
    const struct slot *s;

    if (!attached || proc >= attached->nprocs)
        return false;
    s = &attached->slots[proc];
    for (int tries = 0; tries < 1000; tries++) {
        unsigned before = atomic_load_explicit(&s->seq, memory_order_acquire), len;
        size_t at = out->len;

        if (before == 0)
            return false; /* never written */
        if (before & 1u) {
            sched_yield(); /* its owner is writing */
            continue;
        }
        len = atomic_load_explicit(&s->len, memory_order_relaxed);
        if (len > MH_BOARD_SLOT || !mh_buf_add(out, s->data, len))
            return false;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == before)
            return true;
        out->len = at; /* torn: read again */
    }
    return false;
}
