/*
 * The guard in front of evhttp: every connection's raw input is scanned (http_scan.c) before
 * evhttp parses it; bad requests are refused with problem+json and the connection closed; the
 * request head and body have whole deadlines (evhttp's restart on every byte); connections are
 * capped per server and per client address. It also owns the connection's close callback,
 * the one place a connection's end is seen (responses in flight, WebSockets).
 */
#ifndef MH_GUARD_H
#define MH_GUARD_H

#include <stdbool.h>

struct bufferevent;
struct event_base;
struct evhttp_connection;
struct mh_dispatch;
struct mh_conn;

/** evhttp's bufferevent callback (evhttp_set_bevcb): @p arg is the loop's dispatch. */
struct bufferevent *mh_guard_bevcb(struct event_base *base, void *arg);

/** The guard's state of @p evcon, or NULL (connections not made through the guard). */
struct mh_conn *mh_guard_conn(struct mh_dispatch *d, struct evhttp_connection *evcon);

/** A response is being handed to evhttp. @return true if the connection must close after it
 *  (requests per connection reached). Resumes scanning after an upgrade request that was
 *  answered with HTTP. */
bool mh_guard_response_start(struct mh_conn *c);
/** The response reached the socket. */
void mh_guard_response_done(struct mh_conn *c);

/** The connection now carries another protocol: stop scanning; @p hook runs when it ends. */
void mh_guard_take_over(struct mh_conn *c, void (*hook)(struct evhttp_connection *, void *),
                        void *arg);

/** Whether the last request head on the connection was HTTP/1.1. */
bool mh_guard_last_http11(const struct mh_conn *c);

/** Connections open in the whole server. */
int mh_guard_open_connections(void);

#endif
