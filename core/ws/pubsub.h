/*
 * Channels: WebSocket connections join named channels on their own loop; a publish from any
 * thread is handed to every loop's mailbox and delivered there to the loop's members, so one
 * publisher's messages keep their order. The bridge seam will carry channels between
 * instances (a store driver with pub/sub).
 */
#ifndef MH_PUBSUB_H
#define MH_PUBSUB_H

#include <stddef.h>

#include "modhost/sdk.h"

struct mh_dispatch;
struct mh_mailbox;

/** Per-loop channel table. Thread: the loop's. */
struct mh_pubsub_local *mh_pubsub_local_new(void);
void mh_pubsub_local_free(struct mh_pubsub_local *l);

/** Registers the loops publishes go to; NULL/0 stops publishing. Thread: main. */
void mh_pubsub_set_loops(struct mh_dispatch **loops, size_t n);
/** The registered loops array (owned by the caller of set_loops). */
void mh_pubsub_get_loops(struct mh_dispatch ***loops, size_t *n);

void mh_pubsub_leave_all(struct mh_ws *ws);

enum mh_status mh_ws_join_impl(struct mh_ws *ws, const char *channel);
enum mh_status mh_ws_leave_impl(struct mh_ws *ws, const char *channel);
enum mh_status mh_ws_publish_impl(struct mh_host *host, const char *channel, int is_binary,
                                  const void *data, size_t len);

#endif
