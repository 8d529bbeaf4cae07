/*
 * The request path's fuzz harness, shared by fuzz_request (plain TCP) and fuzz_request_tls (the
 * same bytes as application data inside TLS): an in-process server set up like run/server.c's
 * loops, one exchange per input over a new loopback connection, and the checks on what came
 * back (request_harness.c says which). A channel is how the client's bytes get to the server
 * and the server's back: as they are, or through a TLS client.
 */
#ifndef MH_FUZZ_REQUEST_HARNESS_H
#define MH_FUZZ_REQUEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mh_config;
struct mh_fuzz_channel;
struct mh_service;

/* The client side of one exchange. */
struct mh_fuzz_client {
    int fd;                           /* connected, non-blocking */
    const struct mh_fuzz_channel *ch; /* borrowed */
    void *state;                      /* the channel's (TLS: the client's SSL) */
    char *in;                         /* what the server sent, as the client reads it */
    size_t len;
    bool eof; /* the server closed (or reset) the connection */
};

struct mh_fuzz_channel {
    /** Once, before the configuration is read: files the channel needs go into @p conf_dir (the
     *  harness removes them at exit) and server settings it needs into @p server_extra (a line
     *  or more inside `server: { }`). NULL: nothing. */
    void (*prepare)(const char *conf_dir, char *server_extra, size_t size);
    /** Once, with the loaded configuration: the service of the fuzzed listener (its transport).
     *  NULL: plain TCP. */
    void (*serve)(struct mh_service *svc, const struct mh_config *config);
    /** A new connection: set up the client's side (@p h: the input's hash, for the channel's
     *  own choices). Runs the loop as it needs (mh_fuzz_req_send, mh_fuzz_req_turn). */
    void (*open)(struct mh_fuzz_client *c, uint64_t h);
    /** Sends @p size bytes of the input (@p last: no more follow). */
    void (*write)(struct mh_fuzz_client *c, const uint8_t *data, size_t size, bool last);
    /** Reads what the server sent into c->in (mh_fuzz_req_append); sets c->eof when the
     *  server has closed. @return whether any byte arrived on the socket. */
    bool (*read)(struct mh_fuzz_client *c);
    /** The client goes: release the channel's state and close c->fd. */
    void (*close)(struct mh_fuzz_client *c);
};

/** One exchange of @p data over @p ch (the server is set up by the first call). Aborts, so that
 *  libFuzzer keeps the input, when a check fails. */
void mh_fuzz_req_exchange(const struct mh_fuzz_channel *ch, const uint8_t *data, size_t size);

/** One turn of the server's loop, without blocking. */
void mh_fuzz_req_turn(void);
/** Sends @p size raw bytes on c->fd, running the loop (and reading) while the socket is full. */
void mh_fuzz_req_send(struct mh_fuzz_client *c, const void *data, size_t size);
/** Runs the loop until a few turns in a row bring the client nothing. */
void mh_fuzz_req_run_until_idle(struct mh_fuzz_client *c);
/** Keeps @p n bytes the server sent (up to the harness's cap; beyond it they are dropped). */
void mh_fuzz_req_append(struct mh_fuzz_client *c, const void *data, size_t n);

/* A failed check prints what was seen and aborts, so that libFuzzer keeps the input. */
#define MH_FUZZ_CHECK(cond, ...)                                                           \
    (void)((cond) ||                                                                       \
           (fprintf(stderr, "fuzz_request: line %d: check failed: %s: ", __LINE__, #cond), \
            fprintf(stderr, __VA_ARGS__), mh_fuzz_req_abort(), 0))
/** Ends the line of a failed check and aborts. */
_Noreturn void mh_fuzz_req_abort(void);

#endif
