/*
 * Fuzz target for the request scanner (core/http_scan.c): raw bytes are scanned the way the
 * guard scans a connection's input, once in one call and again in pieces (split at points
 * derived from the input, after every CR, and byte by byte for short inputs). Checked: every
 * call reports at most the bytes it was given; a refusal has a status, a reason and a name;
 * only chunk extensions are changed in place, and only to spaces; and every split reaches
 * the same verdict (state, requests, refusal, status, bytes scanned, bytes rewritten).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "http/http_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits reach every limit path with short inputs; the defaults are the server's. */
static const struct mh_scan_limits limit_sets[] = {
    {.max_request_line = 64, .max_header_bytes = 256, .max_headers = 4, .max_body_bytes = 64},
    {.max_request_line = 8192,
     .max_header_bytes = 16384,
     .max_headers = 100,
     .max_body_bytes = 1 << 20},
};

#define BYTE_BY_BYTE_MAX 512 /* scanning byte by byte is quadratic in the line length */

struct verdict {
    enum mh_scan_state state;
    unsigned requests;
    enum mh_refusal refusal;
    int status;
    size_t scanned; /* bytes consumed when the scan stopped */
};

/* One input, scanned with one set of limits: the buffers are reused for every split. */
struct input {
    const struct mh_scan_limits *lim;
    const uint8_t *data;
    size_t size;
    uint64_t seed;
    unsigned char *one, *other; /* copies the scanner may rewrite */
    size_t *cuts;
};

/* A failed check aborts, so that libFuzzer keeps the input. */
#define CHECK(cond) (void)((cond) || (check_failed(#cond, __LINE__), 0))

static _Noreturn void check_failed(const char *cond, int line)
{
    fprintf(stderr, "fuzz_http_scan: line %d: check failed: %s\n", line, cond);
    abort();
}

static void check_refusal(const struct mh_http_scan *s)
{
    if (s->state != MH_SCAN_FAILED) {
        CHECK(s->refusal == MH_REFUSE_NONE);
        return;
    }
    CHECK(s->refusal > MH_REFUSE_NONE && s->refusal < MH_REFUSE_COUNT);
    CHECK(s->refusal != MH_REFUSE_TIMEOUT && s->refusal != MH_REFUSE_CONNECTIONS);
    CHECK(s->why != NULL && s->why[0] != '\0');
    CHECK(s->status == 400 || s->status == 413 || s->status == 414 || s->status == 417 ||
          s->status == 431 || s->status == 501 || s->status == 505);
    CHECK(strcmp(mh_refusal_name(s->refusal), "?") != 0);
}

/*
 * Scans buf[*pos, have) like guard.c's scan_pending: body bytes are skipped, a held upgrade is
 * resumed as if it had been answered with plain HTTP, and an incomplete line waits for more.
 */
static void scan_available(struct mh_http_scan *s, unsigned char *buf, size_t *pos, size_t have,
                           bool use_skip)
{
    while (*pos < have && s->state != MH_SCAN_FAILED) {
        size_t avail = have - *pos, used;
        bool in_body = s->state == MH_SCAN_BODY || s->state == MH_SCAN_CHUNK_DATA;

        if (s->state == MH_SCAN_HOLD) {
            mh_http_scan_resume(s);
            CHECK(s->state == MH_SCAN_HEAD);
            continue;
        }
        used =
            use_skip && in_body ? mh_http_scan_skip(s, avail) : mh_http_scan(s, buf + *pos, avail);
        CHECK(used <= avail && (used > 0 || !(use_skip && in_body)));
        (void)mh_http_scan_in_head(s, used < avail);
        (void)mh_http_scan_in_body(s);
        check_refusal(s);
        *pos += used;
        if (used == 0 && s->state != MH_SCAN_HOLD)
            break;
    }
}

/* Delivers the input in pieces ending at the offsets in cuts[0, ncuts) (ascending) into @p buf. */
static struct verdict run(const struct input *in, size_t ncuts, bool use_skip, unsigned char *buf)
{
    struct mh_http_scan s;
    size_t pos = 0, have = 0;

    mh_http_scan_init(&s, in->lim);
    memcpy(buf, in->data, in->size);
    for (size_t i = 0; i <= ncuts && s.state != MH_SCAN_FAILED; i++) {
        size_t end = i < ncuts ? in->cuts[i] : in->size;

        if (end > have) {
            have = end;
            scan_available(&s, buf, &pos, have, use_skip);
        }
    }
    return (struct verdict){s.state, s.requests, s.refusal, s.status, pos};
}

/* Scans the input split at cuts[0, ncuts) and compares the verdict with the one-call @p whole. */
static void same_as(const struct input *in, const struct verdict *whole, size_t ncuts,
                    bool use_skip, const char *how)
{
    struct verdict b = run(in, ncuts, use_skip, in->other);
    const struct verdict *a = whole;

    if (a->state == b.state && a->requests == b.requests && a->refusal == b.refusal &&
        a->status == b.status && a->scanned == b.scanned &&
        memcmp(in->one, in->other, a->scanned) == 0)
        return;
    fprintf(stderr,
            "fuzz_http_scan: verdicts differ (%s): one call: state %d requests %u refusal %s "
            "status %d scanned %zu; in pieces: state %d requests %u refusal %s status %d "
            "scanned %zu\n",
            how, (int)a->state, a->requests, mh_refusal_name(a->refusal), a->status, a->scanned,
            (int)b.state, b.requests, mh_refusal_name(b.refusal), b.status, b.scanned);
    abort();
}

/* A small deterministic generator seeded by the input, for the split points. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Pieces ending at pseudo-random offsets. @return how many cuts. */
static size_t random_cuts(const struct input *in)
{
    uint64_t x = in->seed | 1;
    size_t n = 1 + next_rand(&x) % 8, at = 0, ncuts = 0;

    for (size_t i = 0; i < n && at < in->size; i++) {
        at += 1 + next_rand(&x) % (in->size / n + 1);
        if (at < in->size)
            in->cuts[ncuts++] = at;
    }
    return ncuts;
}

/* A piece ends after every CR: line ends split between CR and LF. @return how many cuts. */
static size_t cuts_after_cr(const struct input *in)
{
    size_t ncuts = 0;

    for (size_t i = 0; i < in->size; i++) {
        if (in->data[i] == '\r')
            in->cuts[ncuts++] = i + 1;
    }
    return ncuts;
}

static void check_limits(struct input *in)
{
    struct verdict whole = run(in, 0, false, in->one);
    size_t ncuts;

    /* Only chunk extensions are rewritten, and only to spaces. */
    for (size_t i = 0; i < whole.scanned; i++)
        CHECK(in->one[i] == in->data[i] || in->one[i] == ' ');

    same_as(in, &whole, 0, true, "body skipped as the guard does");
    if (in->size > 1)
        same_as(in, &whole, random_cuts(in), (in->seed & 1) != 0, "random pieces");
    ncuts = cuts_after_cr(in);
    if (ncuts)
        same_as(in, &whole, ncuts, false, "split after each CR");
    if (in->size <= BYTE_BY_BYTE_MAX) {
        for (ncuts = 0; ncuts + 1 < in->size; ncuts++)
            in->cuts[ncuts] = ncuts + 1;
        same_as(in, &whole, ncuts, true, "byte by byte");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {
        .data = data,
        .size = size,
        .seed = 0x9e3779b97f4a7c15ULL ^ size,
        .one = mh_xmalloc(size + 1),
        .other = mh_xmalloc(size + 1),
        .cuts = mh_xmalloc((size + 1) * sizeof(size_t)),
    };

    for (size_t i = 0; i < size; i++)
        in.seed = (in.seed ^ data[i]) * 0x100000001b3ULL;
    for (size_t l = 0; l < sizeof(limit_sets) / sizeof(limit_sets[0]); l++) {
        in.lim = &limit_sets[l];
        check_limits(&in);
    }
    free(in.one);
    free(in.other);
    free(in.cuts);
    return 0;
}
