/*
 * The request path's fuzz harness (request_harness.h): an in-process server set up like
 * run/server.c's loops (the engine's connections from http/conn.c on a listener,
 * mh_dispatch_request behind them, a generation built from a temp conf.d with the hello and echo
 * modules and a WebSocket echo endpoint) is reused across inputs; each input is written to a new
 * loopback connection through a channel (plain, or TLS), in pieces split at points derived from
 * it, and the loop runs until it is idle; then the client closes and the loop runs until the
 * server has let go of the connection.
 *
 * One thread runs both sides with non-blocking sockets: loopback delivers a write at once,
 * so "idle" is a few loop turns in a row without a new byte for the client. Checked:
 * - no crash, leak or undefined behaviour (the sanitizers);
 * - the server lets go of every connection the client closed (connections, requests in
 *   flight and WebSockets all back to zero);
 * - what comes back is a sequence of well-formed responses: nothing after a response with
 *   Connection: close, and never more final responses than the scanner sees request heads,
 *   plus one (the refusal); more would mean that a request was answered that the scanner
 *   never passed.
 */
#include "request_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/err.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/mailbox.h"
#include "base/mem.h"
#include "conf/config.h"
#include "http/conn.h"
#include "http/http_scan.h"
#include "http/request.h"
#include "mod/gen.h"
#include "run/dispatch.h"
#include "ws/pubsub.h"

#ifndef MH_FUZZ_MODULE_DIR
#error "MH_FUZZ_MODULE_DIR must name the build's module directory"
#endif

_Noreturn void mh_fuzz_req_abort(void)
{
    fputc('\n', stderr);
    abort();
}

/* connect(), finishing it when libFuzzer's timer signal interrupts it (EINTR): the connection
 * then completes in the background, and poll + SO_ERROR tell how it ended. */
static int connect_retry(int fd, const struct sockaddr_in *addr)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);

    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    while (poll(&p, 1, 5000) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        errno = err ? err : errno;
        return -1;
    }
    return 0;
}

/* Small limits, so that short inputs reach them; the deadlines never fire during a run. */
static const char server_conf_head[] = "server: {\n"
                                       "  threads = 1;\n";
static const char server_conf_tail[] =
    "  module_dir = \"" MH_FUZZ_MODULE_DIR "\";\n"
    "  log: { level = \"error\"; access = false; };\n"
    "  limits: { max_request_line_bytes = 256; max_header_bytes = 1024; max_headers = 16;\n"
    "            max_body_bytes = 2048; max_json_bytes = 1024; max_json_depth = 16;\n"
    "            max_requests_per_connection = 8; };\n"
    "};\n";
static const char hello_conf[] =
    "module: { name = \"hello\"; file = \"hello.so\"; settings: { greeting = \"Hello\"; };\n"
    "  routes = ( { method = \"GET\"; path = \"/hello/{name}\"; handler = \"hello\"; } ); };\n";
static const char echo_conf[] =
    "module: { name = \"echo\"; file = \"echo.so\";\n"
    "  routes = ( { method = \"POST\"; path = \"/echo\"; handler = \"echo\"; },\n"
    "             { method = \"POST\"; path = \"/echo/json\"; handler = \"echo_json\"; } );\n"
    "  websockets = ( { path = \"/ws\"; on_message = \"ws_echo\"; } ); };\n";

#define IDLE_TURNS   4    /* loop turns without a new byte that make the exchange idle */
#define MAX_TURNS    4000 /* a bound on one phase; more means the server is spinning */
#define RESPONSE_CAP (1 << 20)

struct fuzz_server {
    struct mh_loop loop;
    struct mh_loop *loops[1];
    int listen_fd;
    struct event *listen_ev;
    struct sockaddr_in addr;
    struct mh_scan_limits scan_limits;
    struct mh_service service;
};

static struct fuzz_server *srv;
static char conf_dir[] = "/tmp/modhost-fuzz-request-XXXXXX";

/* --- The server, set up once --- */

static void write_file(const char *name, const char *text)
{
    char path[sizeof(conf_dir) + 32];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", conf_dir, name);
    f = fopen(path, "w");
    MH_FUZZ_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

/* At exit: the directory and whatever the harness and the channel put in it. */
static void remove_conf_dir(void)
{
    DIR *d = opendir(conf_dir);
    const struct dirent *e;
    char path[sizeof(conf_dir) + 256];

    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", conf_dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(conf_dir);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

    (void)what;
    (void)arg;
    if (cfd >= 0)
        mh_conn_accept(&srv->loop, &srv->service, cfd, (struct sockaddr *)&ss, len);
}

static struct mh_gen *build_gen(const struct mh_fuzz_channel *ch)
{
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_gen *gen = NULL;
    char extra[1024] = "", *text;
    size_t size;

    MH_FUZZ_CHECK(mkdtemp(conf_dir) != NULL, "mkdtemp: errno %d", errno);
    atexit(remove_conf_dir);
    if (ch->prepare)
        ch->prepare(conf_dir, extra, sizeof(extra));
    size = sizeof(server_conf_head) + strlen(extra) + 1 + sizeof(server_conf_tail);
    text = mh_xmalloc(size);
    snprintf(text, size, "%s%s\n%s", server_conf_head, extra, server_conf_tail);
    write_file("00-server.conf", text);
    free(text);
    write_file("10-hello.conf", hello_conf);
    write_file("20-echo.conf", echo_conf);
    mh_config_load(conf_dir, &config, &errs);
    if (errs.count == 0)
        mh_gen_build(config, &gen, &errs); /* consumes config */
    else
        mh_config_free(config);
    if (errs.count) {
        mh_errlist_print(&errs, stderr);
        abort();
    }
    mh_errlist_cleanup(&errs);
    return gen;
}

static void setup(const struct mh_fuzz_channel *ch)
{
    struct mh_gen *gen;
    const struct mh_limits *l;
    socklen_t alen = sizeof(struct sockaddr_in);

    signal(SIGPIPE, SIG_IGN); /* as the server: writes to a closed peer fail with EPIPE */
    mh_log_set_level(MH_LOG_ERROR);
    srv = mh_xcalloc(1, sizeof(*srv));
    gen = build_gen(ch); /* the build's reference is the loop's */
    l = &gen->config->server.limits;
    srv->service = (struct mh_service){.on_request = mh_dispatch_request, .name = "http"};
    if (ch->serve)
        ch->serve(&srv->service, gen->config);

    /* As run/server.c's loop_setup, with one loop and no pool (blocking handlers run on the
     * loop). */
    srv->loop.base = event_base_new();
    MH_FUZZ_CHECK(srv->loop.base != NULL, "event_base_new");
    srv->addr.sin_family = AF_INET;
    srv->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    MH_FUZZ_CHECK(srv->listen_fd >= 0 &&
                      bind(srv->listen_fd, (struct sockaddr *)&srv->addr, sizeof(srv->addr)) == 0 &&
                      listen(srv->listen_fd, 128) == 0 &&
                      getsockname(srv->listen_fd, (struct sockaddr *)&srv->addr, &alen) == 0,
                  "cannot listen on 127.0.0.1: errno %d", errno);
    srv->listen_ev =
        event_new(srv->loop.base, srv->listen_fd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(srv->listen_ev, NULL);
    srv->loop.gen = gen;
    srv->loop.limits = l;
    srv->loop.access_log = false;
    srv->loop.mailbox = mh_mailbox_new(srv->loop.base);
    srv->loop.pool = NULL;
    srv->loop.pubsub = mh_pubsub_local_new();
    srv->loop.ws_leave_all = mh_pubsub_leave_all;
    srv->loop.rbuf_cap = 65536;
    srv->loop.rbuf = mh_xmalloc(srv->loop.rbuf_cap);
    mh_mailbox_current = srv->loop.mailbox;
    srv->loops[0] = &srv->loop;
    mh_pubsub_set_loops(srv->loops, 1);

    srv->scan_limits = (struct mh_scan_limits){
        .max_request_line = (size_t)l->max_request_line_bytes,
        .max_header_bytes = (size_t)l->max_header_bytes,
        .max_headers = (unsigned)l->max_headers,
        .max_body_bytes = (uint64_t)l->max_body_bytes,
    };
}

/* --- One exchange --- */

void mh_fuzz_req_turn(void)
{
    event_base_loop(srv->loop.base, EVLOOP_NONBLOCK);
}

void mh_fuzz_req_append(struct mh_fuzz_client *c, const void *data, size_t n)
{
    if (c->len + n <= RESPONSE_CAP) {
        memcpy(c->in + c->len, data, n);
        c->len += n;
    }
}

void mh_fuzz_req_run_until_idle(struct mh_fuzz_client *c)
{
    int idle = 0;

    for (int turn = 0; turn < MAX_TURNS && idle < IDLE_TURNS; turn++) {
        mh_fuzz_req_turn();
        idle = c->ch->read(c) ? 0 : idle + 1;
    }
}

void mh_fuzz_req_send(struct mh_fuzz_client *c, const void *data, size_t size)
{
    const unsigned char *p = data;
    size_t off = 0;

    for (int turn = 0; off < size && turn < MAX_TURNS; turn++) {
        ssize_t n = send(c->fd, p + off, size - off, MSG_NOSIGNAL);

        if (n > 0)
            off += (size_t)n;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return; /* the server closed: the rest cannot be delivered */
        mh_fuzz_req_turn();
        c->ch->read(c);
    }
}

static bool server_let_go(void)
{
    return srv->loop.nconns == 0 && srv->loop.inflight == 0 && srv->loop.nws == 0 &&
           mh_conn_open_count() == 0;
}

/* --- What came back --- */

/* Request heads the scanner sees in the input (upgrades resumed as if answered in HTTP). */
static unsigned count_heads(const uint8_t *data, size_t size, bool *refused)
{
    unsigned char *buf = mh_xmalloc(size + 1);
    struct mh_http_scan s;
    size_t pos = 0;

    memcpy(buf, data, size);
    mh_http_scan_init(&s, &srv->scan_limits);
    while (pos < size && s.state != MH_SCAN_FAILED) {
        size_t used;

        if (s.state == MH_SCAN_HOLD) {
            mh_http_scan_resume(&s);
            continue;
        }
        used = mh_http_scan(&s, buf + pos, size - pos);
        pos += used;
        if (used == 0 && s.state != MH_SCAN_HOLD)
            break;
    }
    *refused = s.state == MH_SCAN_FAILED;
    free(buf);
    return s.requests;
}

static const char *find_crlfcrlf(const char *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++) {
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i;
    }
    return NULL;
}

/* The value of header @p name in the head [p, end), or NULL; its length in *vlen. */
static const char *head_value(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;

        if ((size_t)(line_end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;

            while (v < line_end && *v == ' ')
                v++;
            *vlen = (size_t)(line_end - v);
            if (*vlen && v[*vlen - 1] == '\r')
                (*vlen)--;
            return v;
        }
        p = eol ? eol + 1 : end;
    }
    return NULL;
}

struct response {
    int status;
    bool closes;      /* Connection: close */
    bool has_length;  /* Content-Length given */
    size_t length;    /* its value */
    const char *body; /* after the head */
};

/* Parses the response head at @p p (checked to be well formed). */
static void parse_head(const char *p, const char *end, struct response *r)
{
    const char *hend = find_crlfcrlf(p, (size_t)(end - p)), *v;
    size_t vlen;

    MH_FUZZ_CHECK(hend != NULL, "a response head without its end: %.*s", (int)(end - p), p);
    MH_FUZZ_CHECK(hend - p > 13 &&
                      (memcmp(p, "HTTP/1.1 ", 9) == 0 || memcmp(p, "HTTP/1.0 ", 9) == 0),
                  "not a status line: %.40s", p);
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    MH_FUZZ_CHECK(r->status >= 100 && r->status <= 599 && p[12] == ' ', "bad status: %.20s", p);
    v = head_value(p, hend, "Connection", &vlen);
    r->closes = v && vlen == 5 && strncasecmp(v, "close", 5) == 0;
    v = head_value(p, hend, "Content-Length", &vlen);
    r->has_length = v != NULL;
    r->length = 0;
    if (v) {
        char num[24];

        MH_FUZZ_CHECK(vlen > 0 && vlen < sizeof(num), "Content-Length %.*s", (int)vlen, v);
        memcpy(num, v, vlen);
        num[vlen] = '\0';
        r->length = strtoull(num, NULL, 10);
    }
    r->body = hend + 4;
}

/*
 * Walks the responses in what the server sent. A HEAD request makes the framing of the
 * responses ambiguous from here (its Content-Length has no body), so inputs holding "HEAD"
 * only have their first response checked; a 101 hands the connection to WebSocket frames,
 * and a final response without Content-Length (HTTP/1.0) is delimited by the close.
 */
static void check_responses(const struct mh_fuzz_client *c, const uint8_t *data, size_t size)
{
    bool scanner_refused = false, has_head = memmem(data, size, "HEAD", 4) != NULL;
    unsigned heads = count_heads(data, size, &scanner_refused), finals = 0;
    const char *p = c->in, *end = c->in + c->len;

    if (c->len >= RESPONSE_CAP)
        return; /* truncated */
    while (p < end) {
        struct response r;

        parse_head(p, end, &r);
        MH_FUZZ_CHECK(r.status != 500, "500 from hello or echo: %.*s", (int)(end - p), p);
        if (r.status == 101 || has_head ||
            (r.status >= 200 && !r.has_length && r.status != 204 && r.status != 304))
            return;
        finals += r.status >= 200;
        MH_FUZZ_CHECK((size_t)(end - r.body) >= r.length,
                      "a body shorter than its Content-Length (%zu > %zu)", r.length,
                      (size_t)(end - r.body));
        p = r.body + r.length;
        MH_FUZZ_CHECK(!r.closes || p == end, "%zu bytes after a response with Connection: close",
                      (size_t)(end - p));
    }
    /* One answer more than heads at most: the scanner's refusal (the connection closes after
     * it). Anything more would be an answer to a request the scanner never passed. */
    MH_FUZZ_CHECK(finals <= heads + 1, "%u final responses for %u request heads (refused: %d)",
                  finals, heads, scanner_refused);
}

void mh_fuzz_req_exchange(const struct mh_fuzz_channel *ch, const uint8_t *data, size_t size)
{
    struct mh_fuzz_client c = {.fd = -1, .ch = ch};
    uint64_t h = 1469598103934665603ULL;
    size_t cuts[3], ncuts = 0, at = 0;
    int turn;

    if (!srv)
        setup(ch);
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    c.in = mh_xmalloc(RESPONSE_CAP);
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    MH_FUZZ_CHECK(c.fd >= 0, "socket: errno %d", errno);
    MH_FUZZ_CHECK(connect_retry(c.fd, &srv->addr) == 0, "connect: errno %d", errno);
    MH_FUZZ_CHECK(fcntl(c.fd, F_SETFL, O_NONBLOCK) == 0, "fcntl: errno %d", errno);
    mh_fuzz_req_run_until_idle(&c); /* the server accepts and sets the connection up */
    ch->open(&c, h);

    /* Up to three pieces, at offsets taken from the input, with the loop run between; or, for
     * one short input in eight, a byte at a time (every boundary a split). */
    if ((h & 7) == 0 && size <= 512) {
        for (size_t i = 0; i < size; i++) {
            ch->write(&c, data + i, 1, i + 1 == size);
            mh_fuzz_req_run_until_idle(&c);
        }
        at = size;
    }
    for (int i = 0; i < 3 && size > 1 && at < size; i++, h >>= 16) {
        if (h & 0x8000)
            cuts[ncuts++] = (size_t)(h & 0x7fff) % size;
    }
    for (size_t i = 0; i <= ncuts && at < size; i++) {
        size_t next = size; /* after the last cut: the rest */

        if (i < ncuts)
            next = cuts[i] > at ? cuts[i] : at; /* a cut at or before `at` sends nothing */

        ch->write(&c, data + at, next - at, next == size);
        mh_fuzz_req_run_until_idle(&c);
        at = next;
    }
    check_responses(&c, data, size);

    /* The client goes; the server must let go of the connection. */
    ch->close(&c);
    for (turn = 0; turn < MAX_TURNS && !server_let_go(); turn++)
        mh_fuzz_req_turn();
    MH_FUZZ_CHECK(server_let_go(),
                  "the server still holds the closed connection: %zu connections, %llu requests in "
                  "flight, %zu WebSockets, %d open",
                  srv->loop.nconns, (unsigned long long)srv->loop.inflight, srv->loop.nws,
                  mh_conn_open_count());
    free(c.in);
}
