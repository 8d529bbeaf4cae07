/*
 * The request scanner (see http_scan.h). Lines end in LF or CRLF; a bare CR anywhere else is
 * refused. The engine (conn.c) reads heads and bodies exactly as this scanner framed them.
 */
#include "http/http_scan.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/chars.h"
#include "http/uri.h"

static const char *const refusal_names[MH_REFUSE_COUNT] = {
    "none",    "request_line", "line_too_long", "header_syntax", "headers_too_big",
    "host",    "framing",      "coding",        "body_too_big",  "chunk",
    "version", "method",       "timeout",       "connections",
};

const char *mh_refusal_name(enum mh_refusal r)
{
    return r < MH_REFUSE_COUNT ? refusal_names[r] : "?";
}

static void reset_head(struct mh_http_scan *s)
{
    s->head_bytes = 0;
    s->nheaders = 0;
    s->nhost = 0;
    s->http11 = s->body_allowed = s->te_seen = s->te_chunked = s->cl_seen = s->upgrade = false;
    s->expect_continue = false;
    s->content_length = 0;
    s->remaining = 0;
    s->body_bytes = 0;
}

void mh_http_scan_init(struct mh_http_scan *s, const struct mh_scan_limits *lim)
{
    memset(s, 0, sizeof(*s));
    s->lim = *lim;
    s->state = MH_SCAN_HEAD;
}

void mh_http_scan_restart(struct mh_http_scan *s)
{
    s->state = MH_SCAN_HEAD;
    reset_head(s);
}

static void refuse(struct mh_http_scan *s, enum mh_refusal r, int status, const char *why)
{
    s->state = MH_SCAN_FAILED;
    s->refusal = r;
    s->status = status;
    s->why = why;
}

bool mh_http_scan_in_head(const struct mh_http_scan *s, bool bytes_pending)
{
    return s->state == MH_SCAN_HEAD && (s->head_bytes > 0 || bytes_pending);
}

bool mh_http_scan_in_body(const struct mh_http_scan *s)
{
    return s->state == MH_SCAN_BODY || s->state == MH_SCAN_CHUNK_SIZE ||
           s->state == MH_SCAN_CHUNK_DATA || s->state == MH_SCAN_CHUNK_END ||
           s->state == MH_SCAN_TRAILER;
}

/* --- Character classes (RFC 9110) --- */

static bool is_tchar(unsigned char c)
{
    return mh_ch_is(c, MH_CH_TCHAR);
}

static bool is_field_char(unsigned char c)
{
    return mh_ch_is(c, MH_CH_FIELD);
}

static bool is_hex(unsigned char c)
{
    return mh_ch_is(c, MH_CH_HEX);
}

static bool eq(const unsigned char *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp((const char *)p, word, n) == 0;
}

/* --- Lines --- */

/* The next line in [p, p+len): its length without the ending; *total includes it. */
static bool next_line(const unsigned char *p, size_t len, size_t *linelen, size_t *total)
{
    const unsigned char *nl = memchr(p, '\n', len);
    size_t n;

    if (!nl)
        return false;
    n = (size_t)(nl - p);
    *total = n + 1;
    *linelen = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
    return true;
}

/*
 * The first problem of a line in stream order, the same whether its bytes arrive at once or
 * in pieces: a bare CR counts once the byte after it is known; the length limit counts from
 * the first byte beyond it (a CR there waits for the next byte, which may make it a line end).
 * @p p holds @p avail bytes of the line; @p complete says the last one is its LF.
 * @return 0 (no problem yet), 400 (bare CR) or the length status.
 */
static int line_check(const unsigned char *p, size_t avail, bool complete, size_t used_before,
                      size_t limit)
{
    size_t upto = complete ? avail - 1 : avail; /* prefixes that may arrive without the LF */
    size_t body = upto > 0 && p[upto - 1] == '\r' ? upto - 1 : upto;

    /* The common case, decided without walking every prefix: no CR inside the line and the
     * whole line within the limit gives the same verdict (none) at every prefix. */
    if (used_before + body <= limit && !memchr(p, '\r', body))
        return 0;

    for (size_t a = 1; a <= upto; a++) {
        if (a >= 2 && p[a - 2] == '\r')
            return 400; /* a CR followed by something other than LF */
        if (p[a - 1] != '\r' && used_before + a > limit)
            return 414;
    }
    return 0;
}

/* --- The request line --- */

static const char *const methods[] = {"GET",     "HEAD",  "POST",    "PUT",  "DELETE",
                                      "OPTIONS", "TRACE", "CONNECT", "PATCH"};

static void request_line(struct mh_http_scan *s, const unsigned char *p, size_t n)
{
    size_t i = 0, m, t;
    bool known = false;

    if (n > s->lim.max_request_line) {
        refuse(s, MH_REFUSE_LINE_TOO_LONG, 414, "request line too long");
        return;
    }
    while (i < n && is_tchar(p[i]))
        i++;
    m = i;
    if (m == 0 || i >= n || p[i] != ' ') {
        refuse(s, MH_REFUSE_REQUEST_LINE, 400,
               "malformed request line (METHOD SP TARGET SP "
               "HTTP/1.1)");
        return;
    }
    for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
        known = known || (strlen(methods[k]) == m && memcmp(methods[k], p, m) == 0);
    if (!known) {
        refuse(s, MH_REFUSE_METHOD, 501, "this server does not serve that method");
        return;
    }
    if (m == 7 && memcmp(p, "CONNECT", 7) == 0) {
        refuse(s, MH_REFUSE_METHOD, 501, "CONNECT is not supported");
        return;
    }
    s->body_allowed =
        !(m == 4 && memcmp(p, "HEAD", 4) == 0) && !(m == 5 && memcmp(p, "TRACE", 5) == 0);
    t = ++i;
    while (i < n && p[i] > 0x20 && p[i] < 0x7f)
        i++;
    if (i == t || i >= n || p[i] != ' ') {
        refuse(s, MH_REFUSE_REQUEST_LINE, 400,
               "malformed request target (one space between "
               "the parts, no spaces or control characters)");
        return;
    }
    if (!mh_target_valid(p + t, i - t)) {
        refuse(s, MH_REFUSE_REQUEST_LINE, 400, "malformed request target");
        return;
    }
    i++;
    if (n - i == 8 && memcmp(p + i, "HTTP/1.", 7) == 0 && (p[i + 7] == '1' || p[i + 7] == '0')) {
        s->http11 = p[i + 7] == '1';
        return;
    }
    if (n - i == 8 && memcmp(p + i, "HTTP/", 5) == 0 && p[i + 5] >= '0' && p[i + 5] <= '9' &&
        p[i + 6] == '.' && p[i + 7] >= '0' && p[i + 7] <= '9')
        refuse(s, MH_REFUSE_VERSION, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    else
        refuse(s, MH_REFUSE_REQUEST_LINE, 400, "malformed HTTP version");
}

/* --- Header fields --- */

/* The length of the IP literal "[...]" that @p v (@p n bytes) starts with, or 0. */
static size_t ip_literal_len(const unsigned char *v, size_t n)
{
    size_t i;

    for (i = 1; i < n && v[i] != ']'; i++) {
        if (!is_hex(v[i]) && v[i] != ':' && v[i] != '.')
            return 0;
    }
    return i >= n || i == 1 ? 0 : i + 1;
}

/* The length of the host name that @p v (@p n bytes) starts with (up to a ':'), or 0. */
static size_t reg_name_len(const unsigned char *v, size_t n)
{
    size_t i;

    for (i = 0; i < n && v[i] != ':'; i++) {
        if (!mh_ch_is(v[i], MH_CH_HOST))
            return 0;
    }
    return i;
}

/* Whether @p v (@p n bytes) is nothing, or ':' and at most five digits. */
static bool valid_port_part(const unsigned char *v, size_t n)
{
    if (n == 0)
        return true;
    if (v[0] != ':' || n - 1 > 5)
        return false;
    for (size_t i = 1; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
    }
    return true;
}

static bool valid_host(const unsigned char *v, size_t n)
{
    size_t i;

    if (n == 0)
        return false;
    i = v[0] == '[' ? ip_literal_len(v, n) : reg_name_len(v, n);
    return i > 0 && valid_port_part(v + i, n - i);
}

static void content_length(struct mh_http_scan *s, const unsigned char *v, size_t n)
{
    uint64_t x = 0;
    bool huge = false;

    if (n == 0) {
        refuse(s, MH_REFUSE_FRAMING, 400, "empty Content-Length");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            refuse(s, MH_REFUSE_FRAMING, 400, "Content-Length must be one decimal number");
            return;
        }
        if (x > (UINT64_MAX >> 1) / 10)
            huge = true;
        else
            x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (huge || x > (UINT64_MAX >> 1))
        x = UINT64_MAX; /* beyond any limit: refused as too large once the head is complete */
    if (s->cl_seen && x != s->content_length) {
        refuse(s, MH_REFUSE_FRAMING, 400, "Content-Length given twice with different values");
        return;
    }
    s->cl_seen = true;
    s->content_length = x;
}

static void transfer_encoding(struct mh_http_scan *s, const unsigned char *v, size_t n)
{
    size_t i = 0;

    s->te_seen = true;
    while (i <= n) {
        size_t start, end;

        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        start = i;
        while (i < n && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end == start) {
            refuse(s, MH_REFUSE_FRAMING, 400, "empty transfer coding");
            return;
        }
        if (s->te_chunked) {
            refuse(s, MH_REFUSE_FRAMING, 400, "chunked must be the final transfer coding");
            return;
        }
        if (eq(v + start, end - start, "chunked")) {
            s->te_chunked = true;
        } else {
            refuse(s, MH_REFUSE_CODING, 501,
                   "transfer codings other than chunked are not "
                   "implemented");
            return;
        }
        i++; /* past the comma (or the end) */
    }
}

/* A field line (header or trailer). @return its name and value through the pointers. */
static bool field_line(struct mh_http_scan *s, const unsigned char *p, size_t n,
                       const unsigned char **name, size_t *nlen, const unsigned char **val,
                       size_t *vlen)
{
    const unsigned char *colon;
    size_t i;

    if (p[0] == ' ' || p[0] == '\t') {
        refuse(s, MH_REFUSE_HEADER_SYNTAX, 400, "obsolete line folding in a header field");
        return false;
    }
    colon = memchr(p, ':', n);
    if (!colon || colon == p) {
        refuse(s, MH_REFUSE_HEADER_SYNTAX, 400, "header field without a name");
        return false;
    }
    for (i = 0; p + i < colon; i++) {
        if (!is_tchar(p[i])) {
            refuse(s, MH_REFUSE_HEADER_SYNTAX, 400,
                   "invalid character in a header name (white space before ':'?)");
            return false;
        }
    }
    *name = p;
    *nlen = i;
    for (i++; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
        ;
    *val = p + i;
    *vlen = n - i;
    while (*vlen > 0 && ((*val)[*vlen - 1] == ' ' || (*val)[*vlen - 1] == '\t'))
        (*vlen)--;
    for (size_t k = 0; k < *vlen; k++) {
        if (!is_field_char((*val)[k])) {
            refuse(s, MH_REFUSE_HEADER_SYNTAX, 400, "control character in a header value");
            return false;
        }
    }
    if (++s->nheaders > s->lim.max_headers) {
        refuse(s, MH_REFUSE_HEADERS_TOO_BIG, 431, "too many header fields");
        return false;
    }
    return true;
}

static void header_line(struct mh_http_scan *s, const unsigned char *p, size_t n)
{
    const unsigned char *name, *val;
    size_t nlen, vlen;

    if (!field_line(s, p, n, &name, &nlen, &val, &vlen))
        return;
    if (eq(name, nlen, "host")) {
        if (++s->nhost > 1)
            refuse(s, MH_REFUSE_HOST, 400, "Host given more than once");
        else if (!valid_host(val, vlen))
            refuse(s, MH_REFUSE_HOST, 400, "invalid Host");
    } else if (eq(name, nlen, "content-length")) {
        content_length(s, val, vlen);
    } else if (eq(name, nlen, "transfer-encoding")) {
        transfer_encoding(s, val, vlen);
    } else if (eq(name, nlen, "upgrade")) {
        s->upgrade = true;
    } else if (eq(name, nlen, "expect")) {
        if (!eq(val, vlen, "100-continue"))
            refuse(s, MH_REFUSE_HEADER_SYNTAX, 417, "only Expect: 100-continue is supported");
        else
            s->expect_continue = true;
    }
}

static void trailer_line(struct mh_http_scan *s, const unsigned char *p, size_t n)
{
    const unsigned char *name, *val;
    size_t nlen, vlen;

    if (!field_line(s, p, n, &name, &nlen, &val, &vlen))
        return;
    /* Trailers never change a request's framing or its Host. */
    if (eq(name, nlen, "content-length") || eq(name, nlen, "transfer-encoding") ||
        eq(name, nlen, "host"))
        refuse(s, MH_REFUSE_CHUNK, 400, "framing or Host fields are not allowed in trailers");
}

static void end_of_head(struct mh_http_scan *s)
{
    if (s->http11 && s->nhost == 0)
        return refuse(s, MH_REFUSE_HOST, 400, "HTTP/1.1 requests need a Host header");
    if (s->te_seen && !s->http11)
        return refuse(s, MH_REFUSE_FRAMING, 400, "Transfer-Encoding needs HTTP/1.1");
    if (s->te_seen && s->cl_seen)
        return refuse(s, MH_REFUSE_FRAMING, 400, "both Content-Length and Transfer-Encoding");
    s->requests++;
    s->last_http11 = s->http11;
    if (!s->body_allowed && (s->te_seen || (s->cl_seen && s->content_length > 0)))
        return refuse(s, MH_REFUSE_FRAMING, 400, "HEAD and TRACE requests cannot have a body");
    if (s->te_chunked) {
        s->state = MH_SCAN_CHUNK_SIZE;
        s->body_bytes = 0;
        return;
    }
    if (s->cl_seen && s->content_length > s->lim.max_body_bytes)
        return refuse(s, MH_REFUSE_BODY_TOO_BIG, 413, "request body larger than the limit");
    if (s->cl_seen && s->content_length > 0) {
        s->state = MH_SCAN_BODY;
        s->remaining = s->content_length;
        return;
    }
    s->state = s->upgrade ? MH_SCAN_HOLD : MH_SCAN_HEAD;
    s->completed++;
    reset_head(s);
}

/* --- Chunked bodies --- */

static void chunk_size(struct mh_http_scan *s, unsigned char *p, size_t n)
{
    uint64_t size = 0;
    size_t i = 0;

    while (i < n && is_hex(p[i])) {
        if (i == 15) {
            refuse(s, MH_REFUSE_BODY_TOO_BIG, 413, "chunk larger than the body limit");
            return;
        }
        size = size * 16 + (uint64_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
        i++;
    }
    if (i == 0) {
        refuse(s, MH_REFUSE_CHUNK, 400, "malformed chunk size");
        return;
    }
    {
        size_t digits = i;

        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i < n && p[i] != ';') {
            refuse(s, MH_REFUSE_CHUNK, 400, "malformed chunk size");
            return;
        }
        /* Extensions are ignored (RFC 9112 7.1.1): blank them out, so that the body reader
         * sees a size followed by spaces only. */
        memset(p + digits, ' ', n - digits);
    }
    s->body_bytes += size;
    if (s->body_bytes > s->lim.max_body_bytes) {
        refuse(s, MH_REFUSE_BODY_TOO_BIG, 413, "request body larger than the limit");
        return;
    }
    if (size == 0) {
        s->state = MH_SCAN_TRAILER;
    } else {
        s->state = MH_SCAN_CHUNK_DATA;
        s->remaining = size;
    }
}

/* --- The scanner --- */

static size_t skip_body(struct mh_http_scan *s, size_t avail)
{
    size_t take;

    if (s->state != MH_SCAN_BODY && s->state != MH_SCAN_CHUNK_DATA)
        return 0;
    take = avail < s->remaining ? avail : (size_t)s->remaining;
    s->remaining -= take;
    if (s->remaining == 0) {
        if (s->state == MH_SCAN_CHUNK_DATA) {
            s->state = MH_SCAN_CHUNK_END;
        } else {
            s->state = s->upgrade ? MH_SCAN_HOLD : MH_SCAN_HEAD;
            s->completed++;
            reset_head(s);
        }
    }
    return take;
}

size_t mh_http_scan_skip(struct mh_http_scan *s, size_t avail)
{
    unsigned before = s->completed;
    size_t take = skip_body(s, avail);

    s->stream += take;
    if (s->completed != before)
        s->done = s->stream;
    return take;
}

void mh_http_scan_resume(struct mh_http_scan *s)
{
    if (s->state == MH_SCAN_HOLD) {
        s->state = MH_SCAN_HEAD;
        reset_head(s);
    }
}

static size_t scan(struct mh_http_scan *s, unsigned char *data, size_t len);

size_t mh_http_scan(struct mh_http_scan *s, unsigned char *data, size_t len)
{
    size_t used = scan(s, data, len);

    s->stream += used;
    return used;
}

/* Notes the end of a request at @p at bytes into this call. */
static void mark(struct mh_http_scan *s, unsigned before, size_t at)
{
    if (s->completed != before)
        s->done = s->stream + at;
}

/* Whether the next line of a head or of the trailers at @p p (@p avail bytes) is complete and
 * allowed; if it is, its length without (@p n) and with (@p total) its line end. Refuses a
 * line that is too long or has a bare CR. */
static bool head_line_ready(struct mh_http_scan *s, const unsigned char *p, size_t avail, size_t *n,
                            size_t *total)
{
    bool first = s->state == MH_SCAN_HEAD && s->head_bytes == 0;
    size_t limit = first ? s->lim.max_request_line : s->lim.max_header_bytes;
    bool complete = next_line(p, avail, n, total);
    int verdict = line_check(p, complete ? *total : avail, complete, s->head_bytes, limit);

    if (verdict == 400)
        refuse(s, MH_REFUSE_HEADER_SYNTAX, 400, "bare CR in the request head");
    else if (verdict)
        refuse(s, first ? MH_REFUSE_LINE_TOO_LONG : MH_REFUSE_HEADERS_TOO_BIG, first ? 414 : 431,
               first ? "request line too long" : "request head larger than the limit");
    if (verdict || !complete)
        return false;
    if (s->head_bytes + *total > s->lim.max_header_bytes) {
        refuse(s, MH_REFUSE_HEADERS_TOO_BIG, 431, "request head larger than the limit");
        return false;
    }
    return true;
}

/* The complete line @p p (@p n bytes, @p total with its line end) of a head or of the
 * trailers: the request line, a field, a trailer, or the empty line that ends either. */
static void head_line(struct mh_http_scan *s, unsigned char *p, size_t n, size_t total)
{
    if (s->state == MH_SCAN_TRAILER) {
        s->head_bytes += total;
        if (n == 0) {
            s->state = MH_SCAN_HEAD;
            s->completed++;
            reset_head(s);
        } else {
            trailer_line(s, p, n);
        }
    } else if (s->head_bytes == 0) {
        if (n == 0) {
            refuse(s, MH_REFUSE_REQUEST_LINE, 400, "empty request line");
            return;
        }
        s->head_bytes = total;
        request_line(s, p, n);
    } else {
        s->head_bytes += total;
        if (n == 0)
            end_of_head(s);
        else
            header_line(s, p, n);
    }
}

/* The CRLF (or LF) after a chunk's data at @p p. @return the bytes it took, or 0 if more are
 * needed or it is refused. */
static size_t chunk_end(struct mh_http_scan *s, const unsigned char *p, size_t avail)
{
    if (p[0] == '\n')
        return 1;
    if (p[0] == '\r' && avail < 2)
        return 0;
    if (p[0] == '\r' && p[1] == '\n')
        return 2;
    refuse(s, MH_REFUSE_CHUNK, 400, "chunk data not followed by CRLF");
    return 0;
}

/* The chunk size line at @p p. @return the bytes it took, or 0 if more are needed or it is
 * refused. */
static size_t chunk_size_line(struct mh_http_scan *s, unsigned char *p, size_t avail)
{
    size_t n = 0, total = 0;
    bool complete = next_line(p, avail, &n, &total);
    int verdict = line_check(p, complete ? total : avail, complete, 0, 1024);

    if (verdict)
        refuse(s, MH_REFUSE_CHUNK, 400,
               verdict == 400 ? "bare CR in a chunk size line" : "chunk size line too long");
    if (verdict || !complete)
        return 0;
    chunk_size(s, p, n);
    return s->state == MH_SCAN_FAILED ? 0 : total;
}

/* One step in a head or the trailers: a line at most. @return false to stop scanning (more
 * bytes needed, a refusal, or the end of a head or of a request, which the caller acts on). */
static bool head_step(struct mh_http_scan *s, unsigned char *p, size_t avail, size_t *used,
                      unsigned before, unsigned heads)
{
    size_t n = 0, total = 0;

    if (!head_line_ready(s, p, avail, &n, &total))
        return false;
    head_line(s, p, n, total);
    if (s->state == MH_SCAN_FAILED)
        return false;
    *used += total;
    if (s->completed != before || s->requests != heads) {
        mark(s, before, *used);
        return false;
    }
    return true;
}

static size_t scan(struct mh_http_scan *s, unsigned char *data, size_t len)
{
    size_t used = 0;
    unsigned before = s->completed, heads = s->requests;

    while (used < len) {
        mark(s, before, used);
        before = s->completed;
        unsigned char *p = data + used;
        size_t avail = len - used, took;
        bool go = false;

        switch (s->state) {
        case MH_SCAN_HEAD:
        case MH_SCAN_TRAILER:
            go = head_step(s, p, avail, &used, before, heads);
            break;
        case MH_SCAN_BODY:
        case MH_SCAN_CHUNK_DATA:
            used += skip_body(s, avail);
            go = s->completed == before;
            if (!go)
                mark(s, before, used);
            break;
        case MH_SCAN_CHUNK_END:
            took = chunk_end(s, p, avail);
            used += took;
            go = took > 0;
            if (go)
                s->state = MH_SCAN_CHUNK_SIZE;
            break;
        case MH_SCAN_CHUNK_SIZE:
            took = chunk_size_line(s, p, avail);
            used += took;
            go = took > 0;
            break;
        case MH_SCAN_HOLD:
        case MH_SCAN_FAILED:
            break;
        }
        if (!go)
            return used;
    }
    mark(s, before, used);
    return used;
}

/* --- Decoding what was accepted --- */

size_t mh_http_dechunk(unsigned char *p, size_t n)
{
    unsigned char *r = p, *end = p + n, *w = p;

    while (r < end) {
        uint64_t size = 0;

        while (r < end && is_hex(*r))
            size = size * 16 + (uint64_t)mh_hex_value(*r++);
        r = memchr(r, '\n', (size_t)(end - r));
        if (!r)
            break;
        r++;
        if (size == 0)
            break; /* the trailers follow; they are not part of the body */
        memmove(w, r, size);
        w += size;
        r += size;
        r += r < end && *r == '\r' ? 2 : 1;
    }
    return (size_t)(w - p);
}
