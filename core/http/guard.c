/*
 * Guard state per connection (see guard.h). The input buffer's callback runs when bytes
 * arrive, before evhttp's read callback sees them: the scanner checks them in place, and a
 * refusal drains them so evhttp never parses a request we refused. The answer to a refusal is
 * written once evhttp's callbacks are replaced, and the connection is freed after the answer
 * reached the socket.
 */
#include "http/guard.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "conf/config.h"
#include "http/http_scan.h"
#include "base/log.h"
#include "base/mem.h"
#include "http/request.h"

#define MAP_BUCKETS 1024 /* per loop; chains are short at tens of thousands of connections */
#define IP_BUCKETS  4096

struct mh_conn {
    struct mh_dispatch *d;
    struct bufferevent *bev;
    struct evhttp_connection *evcon;
    struct mh_conn *map_next;
    struct event *start, *timer, *refuse_ev;
    struct mh_http_scan scan;
    size_t pos;     /* bytes at the front of the input buffer already scanned */
    uint64_t front; /* stream offset of the input buffer's first byte */
    bool rewriting; /* our own changes to the input buffer: not news */
    bool refuse_when_idle; /* answer the checked requests first, then the refusal */
    enum { T_NONE, T_HEAD, T_BODY } timing;
    bool refused, passthrough, response_in_flight, counted;
    unsigned responses;
    unsigned char ip[16];
    bool has_ip;
    void (*hook)(struct evhttp_connection *, void *);
    void *hook_arg;
};

/* --- Connection counts: per server and per client address --- */

struct ip_count {
    struct ip_count *next;
    unsigned char ip[16];
    int n;
};

static atomic_int open_connections;
static pthread_mutex_t ip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ip_count *ip_buckets[IP_BUCKETS];

int mh_guard_open_connections(void)
{
    return atomic_load(&open_connections);
}

static size_t ip_hash(const unsigned char ip[16])
{
    uint64_t h = 1469598103934665603ULL;

    for (int i = 0; i < 16; i++)
        h = (h ^ ip[i]) * 1099511628211ULL;
    return (size_t)(h % IP_BUCKETS);
}

/* Adds @p delta for @p ip; @return the new count. */
static int ip_add(const unsigned char ip[16], int delta)
{
    struct ip_count **pp, *e;
    int n = 0;

    pthread_mutex_lock(&ip_lock);
    for (pp = &ip_buckets[ip_hash(ip)]; (e = *pp); pp = &e->next) {
        if (memcmp(e->ip, ip, 16) == 0)
            break;
    }
    if (!e && delta > 0) {
        e = mh_xcalloc(1, sizeof(*e));
        memcpy(e->ip, ip, 16);
        *pp = e;
    }
    if (e) {
        e->n += delta;
        n = e->n;
        if (e->n <= 0) {
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&ip_lock);
    return n;
}

/* --- evcon -> state, per loop (only that loop's thread touches it) --- */

static struct mh_conn **map_of(struct mh_dispatch *d)
{
    if (!d->conn_map)
        d->conn_map = mh_xcalloc(MAP_BUCKETS, sizeof(struct mh_conn *));
    return (struct mh_conn **)d->conn_map;
}

static size_t map_slot(const struct evhttp_connection *evcon)
{
    return ((uintptr_t)evcon >> 4) % MAP_BUCKETS;
}

struct mh_conn *mh_guard_conn(struct mh_dispatch *d, struct evhttp_connection *evcon)
{
    if (!d->conn_map || !evcon)
        return NULL;
    for (struct mh_conn *c = map_of(d)[map_slot(evcon)]; c; c = c->map_next) {
        if (c->evcon == evcon)
            return c;
    }
    return NULL;
}

static void map_remove(struct mh_conn *c)
{
    struct mh_conn **pp;

    if (!c->evcon)
        return;
    for (pp = &map_of(c->d)[map_slot(c->evcon)]; *pp; pp = &(*pp)->map_next) {
        if (*pp == c) {
            *pp = c->map_next;
            return;
        }
    }
}

/* --- The end of a connection --- */

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

static void on_closed(struct evhttp_connection *evcon, void *arg)
{
    struct mh_conn *c = arg;

    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (c->response_in_flight) {
        c->response_in_flight = false;
        c->d->inflight--;
    }
    if (c->hook)
        c->hook(evcon, c->hook_arg);
    /* The bufferevent may outlive this call (we can be inside one of its callbacks): no
     * callback of its input buffer may reach the freed state. */
    evbuffer_remove_cb(bufferevent_get_input(c->bev), on_input, c);
    if (c->counted) {
        atomic_fetch_sub(&open_connections, 1);
        if (c->has_ip)
            ip_add(c->ip, -1);
    }
    map_remove(c);
    event_free(c->start);
    event_free(c->timer);
    event_free(c->refuse_ev);
    c->d->nconns--;
    free(c);
}

/* --- Refusals --- */

static void on_refused_written(struct bufferevent *bev, void *arg)
{
    struct mh_conn *c = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        evhttp_connection_free(c->evcon); /* calls on_closed */
}

static void on_refused_error(struct bufferevent *bev, short what, void *arg)
{
    struct mh_conn *c = arg;

    (void)bev;
    (void)what;
    evhttp_connection_free(c->evcon);
}

static void send_refusal(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct timeval tv = {5, 0};
    char body[512];
    int n;

    (void)fd;
    (void)what;
    n = snprintf(body, sizeof(body),
                 "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\"}",
                 mh_http_reason(c->scan.status), c->scan.status, c->scan.why);
    /* From here the connection is ours: evhttp's callbacks never run again for it. */
    bufferevent_setcb(c->bev, NULL, on_refused_written, on_refused_error, c);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_set_timeouts(c->bev, NULL, &tv);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n",
                        c->scan.status, mh_http_reason(c->scan.status), n);
    evbuffer_add(out, body, (size_t)n);
    bufferevent_enable(c->bev, EV_WRITE);
    if (c->d->access_log && mh_log_enabled(MH_LOG_INFO))
        mh_log_write(MH_LOG_INFO, "access", "- - %d %d 0us refused=%s (%s)", c->scan.status, n,
                     mh_refusal_name(c->scan.refusal), c->scan.why);
}

/* Keeps only the first @p keep bytes of the input buffer. The socket bufferevent keeps its
 * input frozen at the end outside reads; we lift that for our own rewrite only. */
static void truncate_input(struct mh_conn *c, size_t keep)
{
    struct evbuffer *in = bufferevent_get_input(c->bev), *tmp = evbuffer_new();

    if (!tmp)
        abort();
    c->rewriting = true;
    evbuffer_remove_buffer(in, tmp, keep);
    evbuffer_drain(in, evbuffer_get_length(in));
    evbuffer_unfreeze(in, 0);
    if (evbuffer_add_buffer(in, tmp) != 0)
        abort();
    evbuffer_freeze(in, 0);
    c->rewriting = false;
    evbuffer_free(tmp);
}

static void refuse(struct mh_conn *c, enum mh_refusal r, int status, const char *why)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    if (c->refused)
        return;
    if (c->scan.state != MH_SCAN_FAILED) {
        c->scan.state = MH_SCAN_FAILED;
        c->scan.refusal = r;
        c->scan.status = status;
        c->scan.why = why;
    }
    c->refused = true;
    c->d->refused[c->scan.refusal]++;
    evtimer_del(c->timer);
    /* evhttp must never parse what we refused; complete requests checked before it are
     * answered first (a client may pipeline a good request and a bad one in one write). */
    if (c->scan.done > c->front) {
        size_t keep = (size_t)(c->scan.done - c->front);

        truncate_input(c, keep);
        c->pos = keep;
        c->refuse_when_idle = true;
        return;
    }
    evbuffer_drain(in, evbuffer_get_length(in));
    event_active(c->refuse_ev, 0, 0);
}

/* After a checked request was answered: if a refusal waits behind it and evhttp has no more
 * checked input, it is time for the refusal. */
static void refuse_if_idle(struct mh_conn *c)
{
    if (c->refuse_when_idle && !c->response_in_flight &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        c->refuse_when_idle = false;
        event_active(c->refuse_ev, 0, 0);
    }
}

/* --- Deadlines --- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->timing == T_HEAD)
        refuse(c, MH_REFUSE_TIMEOUT, 408, "the request head did not arrive in time");
    else if (c->timing == T_BODY)
        refuse(c, MH_REFUSE_TIMEOUT, 408, "the request body did not arrive in time");
}

static void arm(struct mh_conn *c, int which, long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    c->timing = which;
    evtimer_add(c->timer, &tv);
}

static void update_timer(struct mh_conn *c, bool pending)
{
    const struct mh_limits *l = c->d->limits;

    if (mh_http_scan_in_body(&c->scan)) {
        if (c->timing != T_BODY)
            arm(c, T_BODY, l->body_timeout_ms);
    } else if (mh_http_scan_in_head(&c->scan, pending)) {
        if (c->timing != T_HEAD)
            arm(c, T_HEAD, l->head_timeout_ms);
    } else if (c->timing != T_NONE) {
        c->timing = T_NONE;
        evtimer_del(c->timer);
    }
}

/* --- Scanning --- */

static void scan_pending(struct mh_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t window = c->scan.lim.max_header_bytes + c->scan.lim.max_request_line + 2;

    for (;;) {
        size_t len = evbuffer_get_length(in), avail, take, used;

        unsigned char *p;

        if (c->pos >= len || c->scan.state == MH_SCAN_HOLD || c->scan.state == MH_SCAN_FAILED)
            break;
        avail = len - c->pos;
        if (c->scan.state == MH_SCAN_BODY || c->scan.state == MH_SCAN_CHUNK_DATA) {
            /* Body bytes are only counted: no need to make them contiguous. */
            c->pos += mh_http_scan_skip(&c->scan, avail);
            continue;
        }
        take = avail < window ? avail : window;
        p = evbuffer_pullup(in, (ev_ssize_t)(c->pos + take));
        if (!p)
            break;
        used = mh_http_scan(&c->scan, p + c->pos, take);
        c->pos += used;
        if (c->scan.state == MH_SCAN_FAILED) {
            refuse(c, c->scan.refusal, c->scan.status, c->scan.why);
            return;
        }
        if (used == 0)
            break; /* an incomplete line: wait for more */
    }
    update_timer(c, evbuffer_get_length(in) > c->pos);
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct mh_conn *c = arg;

    if (c->rewriting)
        return;
    if (info->n_deleted) { /* evhttp consumed from the front */
        c->front += info->n_deleted;
        c->pos = c->pos > info->n_deleted ? c->pos - info->n_deleted : 0;
    }
    if (!info->n_added || c->passthrough)
        return;
    if (c->refused) {
        /* Nothing after a refusal may reach evhttp: drop it (only the checked requests that
         * came before it are left in the buffer). */
        size_t len = evbuffer_get_length(buf), keep = c->refuse_when_idle ? c->pos : 0;

        if (len > keep)
            truncate_input(c, keep);
        return;
    }
    scan_pending(c);
}

/* --- Start --- */

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    struct mh_conn *c = arg;
    const struct mh_limits *l = c->d->limits;
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    void *cbarg = NULL;
    int total, mine = 0;

    (void)fd;
    (void)what;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
    c->evcon = cbarg; /* evhttp's callbacks take the connection as their argument */
    evhttp_connection_set_closecb(c->evcon, on_closed, c);
    c->map_next = map_of(c->d)[map_slot(c->evcon)];
    map_of(c->d)[map_slot(c->evcon)] = c;

    c->counted = true;
    total = atomic_fetch_add(&open_connections, 1) + 1;
    if (getpeername(bufferevent_getfd(c->bev), (struct sockaddr *)&ss, &slen) == 0) {
        memset(c->ip, 0, sizeof(c->ip));
        if (ss.ss_family == AF_INET) {
            c->ip[10] = c->ip[11] = 0xff; /* as an IPv4-mapped IPv6 address */
            memcpy(c->ip + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
            c->has_ip = true;
        } else if (ss.ss_family == AF_INET6) {
            memcpy(c->ip, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
            c->has_ip = true;
        }
        if (c->has_ip)
            mine = ip_add(c->ip, 1);
    }
    if (total > l->max_connections) {
        refuse(c, MH_REFUSE_CONNECTIONS, 503, "too many connections to the server");
        return;
    }
    if (mine > l->max_connections_per_client) {
        refuse(c, MH_REFUSE_CONNECTIONS, 503, "too many connections from this address");
        return;
    }
    /* A new connection must send its first request head in time. */
    arm(c, T_HEAD, l->head_timeout_ms);
}

struct bufferevent *mh_guard_bevcb(struct event_base *base, void *arg)
{
    struct mh_dispatch *d = arg;
    const struct mh_limits *l = d->limits;
    struct mh_scan_limits lim = {
        .max_request_line = (size_t)l->max_request_line_bytes,
        .max_header_bytes = (size_t)l->max_header_bytes,
        .max_headers = (unsigned)l->max_headers,
        .max_body_bytes = (uint64_t)l->max_body_bytes,
    };
    struct mh_conn *c = mh_xcalloc(1, sizeof(*c));

    c->d = d;
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        abort();
    mh_http_scan_init(&c->scan, &lim);
    c->start = event_new(base, -1, 0, on_start, c);
    c->timer = evtimer_new(base, on_deadline, c);
    c->refuse_ev = event_new(base, -1, 0, send_refusal, c);
    if (!c->start || !c->timer || !c->refuse_ev)
        abort();
    evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c);
    d->nconns++;
    /* evhttp creates its connection object right after this returns; on_start runs before any
     * byte is read (it is active now, reads come from the next poll). */
    event_active(c->start, 0, 0);
    return c->bev;
}

/* --- Hooks for the request path --- */

bool mh_guard_response_start(struct mh_conn *c)
{
    if (!c->response_in_flight) {
        c->response_in_flight = true;
        c->d->inflight++;
    }
    c->responses++;
    if (c->scan.state == MH_SCAN_HOLD && !c->passthrough && !c->refused) {
        /* An upgrade request answered with HTTP: what follows is HTTP again. */
        mh_http_scan_resume(&c->scan);
        scan_pending(c);
    }
    return c->responses >= (unsigned)c->d->limits->max_requests_per_connection;
}

void mh_guard_response_done(struct mh_conn *c)
{
    if (c->response_in_flight) {
        c->response_in_flight = false;
        c->d->inflight--;
    }
    refuse_if_idle(c);
}

bool mh_guard_last_http11(const struct mh_conn *c)
{
    return c->scan.last_http11;
}

void mh_guard_take_over(struct mh_conn *c, void (*hook)(struct evhttp_connection *, void *),
                        void *arg)
{
    c->passthrough = true;
    c->hook = hook;
    c->hook_arg = arg;
    c->timing = T_NONE;
    evtimer_del(c->timer);
}
