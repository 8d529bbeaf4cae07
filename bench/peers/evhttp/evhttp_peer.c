/*
 * The benchmark floor: libevent evhttp with its defaults, json-c, one thread, one event_base.
 *   GET  /hello/NAME  -> 200 {"message":"Hello, NAME!"}
 *   POST /echo/json   -> 200 the parsed document serialized again; 400 problem+json if invalid
 * Usage: evhttp_peer PORT   (listens on 127.0.0.1)
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static void reply_json(struct evhttp_request *req, int code, const char *type, json_object *doc)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evbuffer_add_printf(out, "%s", json_object_to_json_string_ext(doc, JSON_FLAGS));
    evhttp_send_reply(req, code, NULL, out);
    json_object_put(doc);
}

static void reply_problem(struct evhttp_request *req, int code, const char *title, const char *detail)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "type", json_object_new_string("about:blank"));
    json_object_object_add(p, "title", json_object_new_string(title));
    json_object_object_add(p, "status", json_object_new_int(code));
    json_object_object_add(p, "detail", json_object_new_string(detail));
    reply_json(req, code, "application/problem+json", p);
}

static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type method = evhttp_request_get_command(req);

    if (path && strncmp(path, "/hello/", 7) == 0 && path[7] && !strchr(path + 7, '/')) {
        if (method != EVHTTP_REQ_GET) {
            reply_problem(req, 405, "Method Not Allowed", "allowed: GET");
            return;
        }
        char msg[512];
        snprintf(msg, sizeof msg, "Hello, %s!", path + 7);
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "message", json_object_new_string(msg));
        reply_json(req, 200, "application/json", doc);
        return;
    }
    if (path && strcmp(path, "/echo/json") == 0) {
        if (method != EVHTTP_REQ_POST) {
            reply_problem(req, 405, "Method Not Allowed", "allowed: POST");
            return;
        }
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        evbuffer_add(in, "", 1); /* NUL-terminate so a bare number at the end is complete */
        size_t len = evbuffer_get_length(in);
        const char *body = (const char *)evbuffer_pullup(in, -1);
        json_tokener *tok = json_tokener_new();
        json_object *doc = json_tokener_parse_ex(tok, body, (int)len);
        enum json_tokener_error err = json_tokener_get_error(tok);
        size_t end = json_tokener_get_parse_end(tok);
        while (err == json_tokener_success && end < len - 1 && body[end] && strchr(" \t\r\n", body[end]))
            end++;
        if (err == json_tokener_success && end < len - 1)
            err = json_tokener_error_parse_unexpected; /* data after the document */
        if (!doc && err == json_tokener_success)
            err = json_tokener_error_parse_eof;
        json_tokener_free(tok);
        if (err != json_tokener_success || !doc) {
            json_object_put(doc);
            reply_problem(req, 400, "Bad Request", json_tokener_error_desc(err));
            return;
        }
        reply_json(req, 200, "application/json", doc);
        return;
    }
    reply_problem(req, 404, "Not Found", "no such resource");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (!http || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(argv[1])) != 0) {
        fprintf(stderr, "evhttp_peer: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    evhttp_set_gencb(http, handle, NULL);
    event_base_dispatch(base);
    return 0;
}
