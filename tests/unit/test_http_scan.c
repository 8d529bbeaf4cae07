/*
 * Unit suite for core/http/http_scan.c: the scanner's verdicts on whole inputs, the same
 * verdict byte by byte, and the boundaries it stops at (the engine frames requests by them).
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "http/http_scan.h"
#include "mh_test.h"

static const struct mh_scan_limits limits = {
    .max_request_line = 64,
    .max_header_bytes = 256,
    .max_headers = 4,
    .max_body_bytes = 16,
};

struct verdict {
    int status; /* 0: accepted */
    const char *reason;
    unsigned completed; /* requests completed */
};

/* Scans what there is up to @p have, from *@p pos on, as the engine does: bodies are
 * skipped, a held connection resumes. */
static void scan_to(struct mh_http_scan *s, unsigned char *buf, size_t *pos, size_t have)
{
    for (;;) {
        size_t used;

        if (s->state == MH_SCAN_HOLD)
            mh_http_scan_resume(s);
        if (s->state == MH_SCAN_BODY || s->state == MH_SCAN_CHUNK_DATA)
            used = mh_http_scan_skip(s, have - *pos);
        else
            used = mh_http_scan(s, buf + *pos, have - *pos);
        *pos += used;
        if (s->state == MH_SCAN_FAILED || used == 0 || *pos == have)
            return;
    }
}

/* Scans @p in at once (chunk 0) or in pieces of @p chunk bytes, as the engine does. */
static struct verdict scan_all(const char *in, size_t chunk)
{
    size_t n = strlen(in), pos = 0, have;
    unsigned char *buf = malloc(n + 1);
    struct mh_http_scan s;
    struct verdict v = {0, "none", 0};

    memcpy(buf, in, n + 1);
    mh_http_scan_init(&s, &limits);
    for (have = chunk ? (chunk < n ? chunk : n) : n;; have = have + chunk < n ? have + chunk : n) {
        scan_to(&s, buf, &pos, have);
        if (s.state == MH_SCAN_FAILED || have == n || !chunk)
            break;
    }
    if (s.state == MH_SCAN_FAILED) {
        v.status = s.status;
        v.reason = mh_refusal_name(s.refusal);
    }
    v.completed = s.completed;
    free(buf);
    return v;
}

/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): fields in the order rows read */
static const struct {
    const char *in;
    int status;
    const char *reason;
    unsigned completed;
} cases[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, "none", 1},
    {"GET / HTTP/1.0\r\n\r\n", 0, "none", 1},
    {"GET / HTTP/1.1\nHost: a\n\n", 0, "none", 1},
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", 0, "none", 2},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n", 0,
     "none", 2},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\n"
     "T: 1\r\n\r\n",
     0, "none", 1},
    {"GET / HTTP/1.1\r\n\r\n", 400, "host", 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host", 0},
    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version", 0},
    {"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "method", 0},
    {"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n", 501, "method", 0},
    {"GET http://[zz/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request_line", 0},
    {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", 414,
     "line_too_long", 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n", 431, "headers_too_big",
     0},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "header_syntax", 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "header_syntax", 0},
    {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, "header_syntax", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400, "framing", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, "framing",
     0},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "framing", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "coding", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n", 413, "body_too_big", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n", 413, "body_too_big",
     0},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhelloX", 400, "chunk",
     0},
    {"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 400, "framing", 0},
    {"POST / HTTP/1.1\r\nHost: a\r\nExpect: lunch\r\n\r\n", 417, "header_syntax", 0},
    {"\r\nGET / HTTP/1.1\r\n\r\n", 400, "request_line", 0},
    /* a good request, then a bad one: the first counts as complete */
    {"GET / HTTP/1.0\r\n\r\nGET / HTTP/9.9\r\n\r\n", 505, "version", 1},
};

static void test_scan_verdicts(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct verdict v = scan_all(cases[i].in, 0);

        CU_ASSERT_EQUAL(v.status, cases[i].status);
        CU_ASSERT_STRING_EQUAL(v.reason, cases[i].reason);
        CU_ASSERT_EQUAL(v.completed, cases[i].completed);
        if (v.status != cases[i].status || strcmp(v.reason, cases[i].reason) != 0)
            fprintf(stderr, "case %zu: got %d %s\n", i, v.status, v.reason);
    }
}

static void test_scan_same_verdict_byte_by_byte(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t chunk = 1; chunk <= 7; chunk += 3) {
            struct verdict v = scan_all(cases[i].in, chunk);

            CU_ASSERT_EQUAL(v.status, cases[i].status);
            CU_ASSERT_STRING_EQUAL(v.reason, cases[i].reason);
            CU_ASSERT_EQUAL(v.completed, cases[i].completed);
        }
    }
}

static void test_scan_stops_at_head_and_request_end(void)
{
    char in[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.0\r\n\r\n";
    size_t head = strlen("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n");
    struct mh_http_scan s;
    size_t used;

    mh_http_scan_init(&s, &limits);
    used = mh_http_scan(&s, (unsigned char *)in, strlen(in));
    CU_ASSERT_EQUAL(used, head); /* stops at the end of the head */
    CU_ASSERT_EQUAL(s.requests, 1);
    CU_ASSERT_EQUAL(s.state, MH_SCAN_BODY);
    CU_ASSERT_EQUAL(mh_http_scan_skip(&s, 10), 2); /* only the body's bytes */
    CU_ASSERT_EQUAL(s.completed, 1);
    CU_ASSERT_EQUAL(s.state, MH_SCAN_HEAD);
    used = mh_http_scan(&s, (unsigned char *)in + head + 2, strlen(in) - head - 2);
    CU_ASSERT_EQUAL(used, strlen("GET / HTTP/1.0\r\n\r\n"));
    CU_ASSERT_EQUAL(s.completed, 2);
}

static void test_scan_upgrade_holds(void)
{
    char in[] = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\x81\x80";
    struct mh_http_scan s;
    size_t used;

    mh_http_scan_init(&s, &limits);
    used = mh_http_scan(&s, (unsigned char *)in, sizeof(in) - 1);
    CU_ASSERT_EQUAL(s.state, MH_SCAN_HOLD);
    CU_ASSERT_EQUAL(used, sizeof(in) - 3); /* the frame bytes are not HTTP */
    CU_ASSERT_EQUAL(mh_http_scan(&s, (unsigned char *)in + used, 2), 0);
}

static void test_scan_expect_continue_is_noted(void)
{
    char in[] = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    struct mh_http_scan s;

    mh_http_scan_init(&s, &limits);
    mh_http_scan(&s, (unsigned char *)in, sizeof(in) - 1);
    CU_ASSERT(s.expect_continue);
    CU_ASSERT_EQUAL(s.state, MH_SCAN_BODY);
}

static void test_scan_dechunk(void)
{
    /* As the scanner accepts it: an extension, a size in upper case, LF-only line ends,
     * trailers. */
    char head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    char body[] = "5;x=1\r\nhello\r\nA\n, world!!!\n0\r\nT: 1\r\n\r\n";
    char whole[sizeof(head) + sizeof(body)];
    size_t n;

    snprintf(whole, sizeof(whole), "%s%s", head, body);
    CU_ASSERT_EQUAL(scan_all(whole, 0).completed, 1); /* valid input, as dechunk expects */
    CU_ASSERT_EQUAL(scan_all(whole, 0).status, 0);
    n = mh_http_dechunk((unsigned char *)body, sizeof(body) - 1);
    CU_ASSERT_EQUAL(n, 15);
    CU_ASSERT_EQUAL(memcmp(body, "hello, world!!!", 15), 0);
    {
        char empty[] = "0\r\n\r\n";

        CU_ASSERT_EQUAL(mh_http_dechunk((unsigned char *)empty, sizeof(empty) - 1), 0);
    }
}

static const struct mh_test_case scan_tests[] = {
    {"dechunk", test_scan_dechunk},
    {"verdicts", test_scan_verdicts},
    {"same verdict byte by byte", test_scan_same_verdict_byte_by_byte},
    {"stops at head and request end", test_scan_stops_at_head_and_request_end},
    {"upgrade holds", test_scan_upgrade_holds},
    {"expect continue is noted", test_scan_expect_continue_is_noted},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    return mh_test_main(argc, argv, "http_scan", scan_tests);
}
