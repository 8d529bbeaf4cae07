/* Unit suite for core/http/outq.c: a connection's output queue. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "base/loop.h"
#include "http/outq.h"
#include "mh_test.h"

/* Everything queued, concatenated. */
static size_t gather(const struct mh_outq *q, char *out)
{
    struct iovec iov[64];
    int n = mh_outq_iov(q, iov, 64);
    size_t len = 0;

    for (int i = 0; i < n; i++) {
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

static void test_outq_keeps_order_across_blocks(void)
{
    struct mh_loop loop = {0};
    struct mh_outq q = {0};
    static const char tail[5] = "tail;"; /* bytes for the queue, no terminator */
    char *big = malloc(40000), *out = malloc(100000);
    char *space;

    memset(big, 'b', 40000);
    mh_outq_add(&q, &loop, "head;", 5);
    mh_outq_give(&q, big, 40000); /* not copied: freed by the queue */
    space = mh_outq_space(&q, &loop, 5);
    memcpy(space, tail, sizeof(tail));
    mh_outq_commit(&q, 5);
    CU_ASSERT_EQUAL(q.unsent, 40010);
    CU_ASSERT_EQUAL(gather(&q, out), 40010);
    CU_ASSERT_EQUAL(memcmp(out, "head;b", 6), 0);
    CU_ASSERT_EQUAL(memcmp(out + 40005, "tail;", 5), 0);
    mh_outq_clear(&q, &loop);
    CU_ASSERT_EQUAL(q.unsent, 0);
    mh_outq_spares_free(&loop);
    free(out);
}

static void test_outq_consume_partial_writes(void)
{
    struct mh_loop loop = {0};
    struct mh_outq q = {0};
    char out[64];
    size_t len;

    mh_outq_add(&q, &loop, "0123456789", 10);
    mh_outq_give(&q, strdup("abcdef"), 6);
    mh_outq_consume(&q, &loop, 4);
    len = gather(&q, out);
    CU_ASSERT_EQUAL(len, 12);
    CU_ASSERT_EQUAL(memcmp(out, "456789abcdef", 12), 0);
    mh_outq_consume(&q, &loop, 8); /* across the block boundary */
    len = gather(&q, out);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_EQUAL(memcmp(out, "cdef", 4), 0);
    mh_outq_consume(&q, &loop, 4);
    CU_ASSERT_EQUAL(q.unsent, 0);
    CU_ASSERT_EQUAL(mh_outq_iov(&q, NULL, 0), 0);
    CU_ASSERT_EQUAL(loop.nspare_segs, 1); /* the drained block is kept for reuse */
    mh_outq_spares_free(&loop);
}

static void test_outq_large_copy_spans_blocks(void)
{
    struct mh_loop loop = {0};
    struct mh_outq q = {0};
    char *in = malloc(50000), *out = malloc(50000);

    for (size_t i = 0; i < 50000; i++)
        in[i] = (char)(i * 7);
    mh_outq_add(&q, &loop, in, 50000);
    CU_ASSERT_EQUAL(gather(&q, out), 50000);
    CU_ASSERT_EQUAL(memcmp(in, out, 50000), 0);
    mh_outq_clear(&q, &loop);
    mh_outq_spares_free(&loop);
    free(in);
    free(out);
}

static const struct mh_test_case outq_tests[] = {
    {"keeps order across blocks", test_outq_keeps_order_across_blocks},
    {"consume partial writes", test_outq_consume_partial_writes},
    {"large copy spans blocks", test_outq_large_copy_spans_blocks},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "outq", outq_tests);
}
