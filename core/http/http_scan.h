/*
 * The strict HTTP/1.1 request scanner: the engine's only parser of request framing. It
 * validates each request head (RFC 9110/9112), refuses what could be read two ways (request
 * smuggling), and follows body framing (Content-Length, chunked with trailers), so that every
 * pipelined request is checked. It works on complete lines and never buffers: the caller
 * presents the unread bytes again when more arrive. It stops after each complete head and
 * each complete request, so that the caller can act on it. Pure code, no I/O: the fuzz target
 * drives it directly.
 */
#ifndef MH_HTTP_SCAN_H
#define MH_HTTP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_scan_limits {
    size_t max_request_line;
    size_t max_header_bytes; /* request line + headers */
    unsigned max_headers;
    uint64_t max_body_bytes;
};

/* Why a request was refused (also the index of its counter). */
enum mh_refusal {
    MH_REFUSE_NONE,
    MH_REFUSE_REQUEST_LINE,    /* malformed request line */
    MH_REFUSE_LINE_TOO_LONG,   /* 414 */
    MH_REFUSE_HEADER_SYNTAX,   /* malformed header field */
    MH_REFUSE_HEADERS_TOO_BIG, /* 431: count or total size */
    MH_REFUSE_HOST,            /* missing, repeated or invalid Host */
    MH_REFUSE_FRAMING,         /* ambiguous or invalid Content-Length / Transfer-Encoding */
    MH_REFUSE_CODING,          /* 501: a transfer coding we do not implement */
    MH_REFUSE_BODY_TOO_BIG,    /* 413 */
    MH_REFUSE_CHUNK,           /* malformed chunked body */
    MH_REFUSE_VERSION,         /* 505 */
    MH_REFUSE_METHOD,          /* 501: unknown method */
    MH_REFUSE_TIMEOUT,         /* 408: head or body deadline */
    MH_REFUSE_CONNECTIONS,     /* 503: connection cap */
    MH_REFUSE_COUNT
};

enum mh_scan_state {
    MH_SCAN_HEAD,
    MH_SCAN_BODY, /* Content-Length bytes */
    MH_SCAN_CHUNK_SIZE,
    MH_SCAN_CHUNK_DATA,
    MH_SCAN_CHUNK_END, /* the CRLF after chunk data */
    MH_SCAN_TRAILER,
    MH_SCAN_HOLD, /* an upgrade request: what follows is not HTTP until told so */
    MH_SCAN_FAILED
};

struct mh_http_scan {
    struct mh_scan_limits lim;
    enum mh_scan_state state;
    /* the head being read */
    size_t head_bytes;
    unsigned nheaders;
    unsigned nhost;
    bool http11, body_allowed, te_seen, te_chunked, cl_seen, upgrade, expect_continue;
    uint64_t content_length;
    /* the body being read */
    uint64_t remaining, body_bytes;
    unsigned requests; /* heads completed */
    bool last_http11;  /* the version of the last complete head */
    uint64_t stream;   /* bytes scanned or skipped since the start */
    uint64_t done;     /* stream offset just after the last complete request */
    unsigned completed;
    /* the refusal */
    enum mh_refusal refusal;
    int status;
    const char *why;
};

void mh_http_scan_init(struct mh_http_scan *s, const struct mh_scan_limits *lim);
/** Keeps the stream position (and request count) when a scanner starts over. */
void mh_http_scan_restart(struct mh_http_scan *s);

/**
 * Scans @p data (bytes not yet scanned, in order). Chunk extensions are blanked in place (RFC
 * 9112 says to ignore them). @return the number of bytes scanned: it stops at the end of a
 * head (`requests` grew) and of a request (`completed` grew); an incomplete line must be
 * presented again with more data. On a refusal, state is MH_SCAN_FAILED and status/why/refusal
 * say what to answer.
 */
size_t mh_http_scan(struct mh_http_scan *s, unsigned char *data, size_t len);

/** Passes up to @p avail body bytes without looking at them (they need not be contiguous).
 *  @return how many were taken (0 unless in a body). */
size_t mh_http_scan_skip(struct mh_http_scan *s, size_t avail);
/** After an upgrade request was answered with plain HTTP: scan what follows as HTTP again. */
void mh_http_scan_resume(struct mh_http_scan *s);

/** Whether a head is under way (started but not complete): the head deadline runs. */
bool mh_http_scan_in_head(const struct mh_http_scan *s, bool bytes_pending);
/** Whether a body is under way: the body deadline runs. */
bool mh_http_scan_in_body(const struct mh_http_scan *s);

const char *mh_refusal_name(enum mh_refusal r);

/**
 * Decodes in place the chunked body at [@p p, @p p + @p n) that this scanner accepted (sizes,
 * extensions, chunk data and trailers): the data of its chunks moves to the front.
 * @return the decoded length. Trailers are not part of the body.
 */
size_t mh_http_dechunk(unsigned char *p, size_t n);

#endif
