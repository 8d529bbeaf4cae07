/*
 * fx_stream: streamed answers for the engine's tests (tests/integration/test_stream.py).
 *   big     GET ?bytes=N: N bytes in 16 KiB pieces, on the loop, waiting for the drain callback
 *           whenever the 1 MiB window is full (backpressure)
 *   worker  a blocking handler: ?n=N lines written from the worker thread, then the end
 *   events  text/event-stream: three Server-Sent Events
 *   fail    begins a stream, writes a piece, then fails (the connection must close)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modhost/sdk.h"

#define PIECE 16384

struct big {
    size_t left;
    unsigned long long sent;
};

static void big_more(struct mh_req *req, void *arg)
{
    char piece[PIECE];
    struct big *b = arg;

    while (b->left) {
        size_t n = PIECE;
        enum mh_status rc;

        if (b->left < n)
            n = b->left;
        for (size_t i = 0; i < n; i++)
            piece[i] = (char)('a' + (b->sent + i) % 26);
        rc = mh_stream_write(req, piece, n);
        if (rc == MH_E_LIMIT) {
            mh_stream_on_drain(req, big_more, b); /* called when the client caught up */
            return;
        }
        if (rc != MH_OK)
            break; /* the client went away */
        b->left -= n;
        b->sent += n;
    }
    mh_stream_end(req);
}

static enum mh_status big(struct mh_req *req, void *state)
{
    const char *q = mh_req_query(req, "bytes");
    struct big *b = mh_req_alloc(req, sizeof(*b));
    enum mh_status rc;

    (void)state;
    b->left = q ? (size_t)strtoull(q, NULL, 10) : 0;
    rc = mh_stream_begin(req, 200, "application/octet-stream");
    if (rc != MH_OK)
        return rc;
    big_more(req, b);
    return MH_PENDING;
}

static enum mh_status worker(struct mh_req *req, void *state)
{
    const char *q = mh_req_query(req, "n");
    int n = q ? (int)strtol(q, NULL, 10) : 3; /* the tests pass numbers */
    enum mh_status rc = mh_stream_begin(req, 200, "text/plain");

    (void)state;
    if (rc != MH_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof(line), "piece %d\n", i);

        if (mh_stream_write(req, line, (size_t)len) != MH_OK)
            break;
    }
    mh_stream_end(req);
    return MH_PENDING;
}

static enum mh_status events(struct mh_req *req, void *state)
{
    enum mh_status rc;

    (void)state;
    mh_resp_header(req, "Cache-Control", "no-cache");
    rc = mh_stream_begin(req, 200, "text/event-stream");
    if (rc != MH_OK)
        return rc;
    for (int i = 1; i <= 3; i++) {
        char ev[64];
        int len = snprintf(ev, sizeof(ev), "id: %d\ndata: tick %d\n\n", i, i);

        mh_stream_write(req, ev, (size_t)len);
    }
    mh_stream_end(req);
    return MH_PENDING;
}

static enum mh_status fail(struct mh_req *req, void *state)
{
    (void)state;
    if (mh_stream_begin(req, 200, "text/plain") != MH_OK)
        return MH_E_STATE;
    mh_stream_write(req, "partial", 7);
    return MH_E_IO;
}

static const struct mh_handler_def handlers[] = {
    {"big", big, 0},       {"worker", worker, MH_HANDLER_BLOCKING},
    {"events", events, 0}, {"fail", fail, 0},
    {NULL, NULL, 0},
};

MH_MODULE(.name = "fx_stream", .version = "0.0.1", .handlers = handlers)
