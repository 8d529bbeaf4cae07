/*
 * Channels: WebSocket connections join named channels on their own loop; a publish from any
 * thread is handed to every loop's mailbox and delivered there to the loop's members, so one
 * publisher's messages keep their order. With server.channels, publishes go through a store
 * whose driver carries them between instances, and every instance fans out what comes back.
 */
#ifndef MH_PUBSUB_H
#define MH_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "modhost/sdk.h"

struct mh_loop;
struct mh_mailbox;

/** Per-loop channel table. Thread: the loop's. */
struct mh_pubsub_local *mh_pubsub_local_new(void);
void mh_pubsub_local_free(struct mh_pubsub_local *l);

/** Registers the loops publishes go to; NULL/0 stops publishing. Thread: main. */
void mh_pubsub_set_loops(struct mh_loop **loops, size_t n);
/** The registered loops array (owned by the caller of set_loops). */
void mh_pubsub_get_loops(struct mh_loop ***loops, size_t *n);

void mh_pubsub_leave_all(struct mh_ws *ws);
/** Messages published on channels so far (every mh_ws_publish that was accepted). */
uint64_t mh_pubsub_publishes(void);

struct mh_store;
/** Carries channels through @p st (whose driver has MH_STORE_CAP_PUBSUB), or only within
 *  this process if NULL; the previous store is unsubscribed. Holds a reference on @p st
 *  until replaced. Thread: main. */
void mh_pubsub_set_bus(struct mh_store *st);
/**
 * With several worker processes and no bus: what this process publishes is also written to
 * @p fd (a stream socket to the master, which passes it to the other workers), and what the
 * others publish is read from it on @p loop's thread. (NULL, -1) stops relaying; call it once
 * the loops have stopped. Thread: main, while the loops are not running.
 */
void mh_pubsub_set_relay(struct mh_loop *loop, int fd);

enum mh_status mh_ws_join_impl(struct mh_ws *ws, const char *channel);
enum mh_status mh_ws_leave_impl(struct mh_ws *ws, const char *channel);
enum mh_status mh_ws_publish_impl(struct mh_host *host, const char *channel, int is_binary,
                                  const void *data, size_t len);

#endif
