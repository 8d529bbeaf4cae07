/*
 * The in-process server and client of mh_test_http.h: the core's HTTP engine on a loop of its
 * own (connections from http/conn.c, requests to run/dispatch.c), and an evhttp client
 * connection, both on one event_base.
 */
#include "mh_test_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "base/err.h"
#include "base/loop.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "conf/config.h"
#include "http/conn.h"
#include "http/request.h"
#include "mh_test.h"
#include "mod/gen.h"
#include "run/dispatch.h"

struct mh_test_server {
    struct mh_loop loop;
    int listen_fd;
    struct event *listen_ev;
    int port;
    struct mh_gen *owned_gen; /* set by mh_test_server_start */
    struct mh_test_dir dir;   /* path "" unless owned */
};

struct exchange {
    struct mh_test_server *srv;
    struct mh_test_resp *out;
    int done;
};

static const struct mh_service test_service = {.on_request = mh_dispatch_request, .name = "http"};

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct mh_test_server *s = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

    (void)what;
    if (cfd >= 0)
        mh_conn_accept(&s->loop, &test_service, cfd, (struct sockaddr *)&ss, len);
}

struct mh_test_server *mh_test_server_new(struct mh_gen *gen)
{
    struct mh_test_server *s = mh_xcalloc(1, sizeof(*s));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);

    s->loop.base = event_base_new();
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!s->loop.base || s->listen_fd < 0 ||
        bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(s->listen_fd, 128) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&sin, &slen) != 0) {
        fprintf(stderr, "test http: cannot listen on 127.0.0.1\n");
        abort();
    }
    s->port = ntohs(sin.sin_port);
    s->listen_ev = event_new(s->loop.base, s->listen_fd, EV_READ | EV_PERSIST, on_accept, s);
    event_add(s->listen_ev, NULL);
    s->loop.gen = gen;
    mh_gen_ref(gen); /* the loop's reference; requests take their own */
    s->loop.limits = &gen->config->server.limits;
    s->loop.rbuf_cap = 65536;
    s->loop.rbuf = mh_xmalloc(s->loop.rbuf_cap);
    return s;
}

struct mh_test_server *mh_test_server_start(const char *conf)
{
    struct mh_errlist errs = {0};
    struct mh_config *config = NULL;
    struct mh_test_server *s = NULL;
    struct mh_test_dir dir;
    struct mh_gen *gen = NULL;

    mh_test_dir_init(&dir);
    mh_test_dir_write(&dir, "test.conf", conf);
    mh_config_load(dir.path, &config, &errs);
    if (errs.count == 0)
        mh_gen_build(config, &gen, &errs); /* consumes config */
    else
        mh_config_free(config);
    if (errs.count == 0) {
        s = mh_test_server_new(gen);
        s->owned_gen = gen;
        s->dir = dir;
    } else {
        mh_errlist_print(&errs, stderr);
        mh_test_dir_cleanup(&dir);
    }
    mh_errlist_cleanup(&errs);
    return s;
}

void mh_test_server_free(struct mh_test_server *s)
{
    if (!s)
        return;
    event_free(s->listen_ev);
    close(s->listen_fd);
    s->loop.stopped = true;
    mh_conn_loop_cleanup(&s->loop);
    mh_request_spares_free(&s->loop);
    mh_route_stats_free(&s->loop.route_stats); /* the loop's counters, made as requests came */
    free(s->loop.rbuf);
    event_base_free(s->loop.base);
    mh_gen_unref(s->loop.gen);
    mh_gen_free(s->owned_gen);
    if (s->dir.path[0])
        mh_test_dir_cleanup(&s->dir);
    free(s);
}

struct mh_gen *mh_test_server_gen(const struct mh_test_server *s)
{
    return s->loop.gen;
}

int mh_test_server_port(const struct mh_test_server *s)
{
    return s->port;
}

static enum evhttp_cmd_type method_cmd(const char *method)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type cmd;
    } cmds[] = {
        {"GET", EVHTTP_REQ_GET},       {"POST", EVHTTP_REQ_POST},
        {"HEAD", EVHTTP_REQ_HEAD},     {"PUT", EVHTTP_REQ_PUT},
        {"DELETE", EVHTTP_REQ_DELETE}, {"OPTIONS", EVHTTP_REQ_OPTIONS},
        {"TRACE", EVHTTP_REQ_TRACE},   {"CONNECT", EVHTTP_REQ_CONNECT},
        {"PATCH", EVHTTP_REQ_PATCH},
    };

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmds[i].name, method) == 0)
            return cmds[i].cmd;
    }
    fprintf(stderr, "test http: evhttp cannot send method %s\n", method);
    abort();
}

static void on_response(struct evhttp_request *ev, void *arg)
{
    struct exchange *x = arg;
    struct mh_test_resp *r = x->out;

    x->done = 1;
    event_base_loopbreak(x->srv->loop.base);
    if (!ev || evhttp_request_get_response_code(ev) == 0)
        return;
    {
        struct evbuffer *in = evhttp_request_get_input_buffer(ev);
        const struct evkeyvalq *hs = evhttp_request_get_input_headers(ev);
        const struct evkeyval *h;
        size_t n = 0;

        r->status = evhttp_request_get_response_code(ev);
        r->body_len = evbuffer_get_length(in);
        free(r->body);
        r->body = mh_xmalloc(r->body_len + 1);
        evbuffer_copyout(in, r->body, r->body_len);
        r->body[r->body_len] = '\0';
        TAILQ_FOREACH(h, hs, next)
        n++;
        r->headers = mh_xcalloc(2 * n + 1, sizeof(*r->headers));
        TAILQ_FOREACH(h, hs, next)
        {
            r->headers[2 * r->nheaders] = mh_xstrdup(h->key);
            r->headers[2 * r->nheaders + 1] = mh_xstrdup(h->value);
            r->nheaders++;
        }
    }
}

int mh_test_request(struct mh_test_server *s, const char *method, const char *target,
                    const char *const *headers, const char *body, struct mh_test_resp *out)
{
    struct exchange x = {.srv = s, .out = out};
    struct evhttp_connection *conn;
    struct evhttp_request *req;
    struct evkeyvalq *oh;

    memset(out, 0, sizeof(*out));
    out->body = mh_xstrdup("");
    conn = evhttp_connection_base_new(s->loop.base, NULL, "127.0.0.1", (unsigned short)s->port);
    req = conn ? evhttp_request_new(on_response, &x) : NULL;
    if (!req) {
        fprintf(stderr, "test http: cannot create a client request\n");
        abort();
    }
    evhttp_connection_set_timeout(conn, 10);
    oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "Host", "127.0.0.1");
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
        evhttp_add_header(oh, headers[i], headers[i + 1]);
    if (body)
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    if (evhttp_make_request(conn, req, method_cmd(method), target) != 0) {
        evhttp_connection_free(conn);
        return -1;
    }
    while (!x.done) {
        if (event_base_dispatch(s->loop.base) < 0)
            break;
    }
    evhttp_connection_free(conn);
    return out->status ? 0 : -1;
}

const char *mh_test_resp_header(const struct mh_test_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[2 * i], name) == 0)
            return r->headers[2 * i + 1];
    }
    return NULL;
}

size_t mh_test_resp_header_count(const struct mh_test_resp *r, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nheaders; i++)
        n += strcasecmp(r->headers[2 * i], name) == 0;
    return n;
}

void mh_test_resp_cleanup(struct mh_test_resp *r)
{
    for (size_t i = 0; i < 2 * r->nheaders; i++)
        free(r->headers[i]);
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *mh_test_json_str(struct json_object *doc, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(doc, key, &v) || !json_object_is_type(v, json_type_string))
        return "(absent)";
    return json_object_get_string(v);
}

int mh_test_json_bool(struct json_object *doc, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(doc, key, &v) || !json_object_is_type(v, json_type_boolean))
        return -1;
    return json_object_get_boolean(v);
}
