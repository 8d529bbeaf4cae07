/*
 * WebSocket (RFC 6455): the upgrade handshake, messages, and a connection's lifetime over the
 * HTTP connection it switched (http/conn.h). The frame codec is frame.c; channels pubsub.c.
 */
#ifndef MH_WS_H
#define MH_WS_H

#include <stdbool.h>
#include <stddef.h>

#include "modhost/sdk.h"

struct mh_gen;
struct mh_loop;
struct mh_route_target;

enum mh_ws_upgrade_result {
    MH_WS_REPLY, /* not upgraded: the request holds a reply (or *rc says which error) */
    MH_WS_TAKEN  /* upgraded: the connection belongs to the WebSocket now */
};

/** Validates the handshake, runs on_open and switches the connection. Thread: the loop. */
enum mh_ws_upgrade_result mh_ws_upgrade(struct mh_req *req, const struct mh_route_target *t,
                                        enum mh_status *rc);
/** Starts a 1001 close on every WebSocket of the loop opened on @p gen (NULL: all, when the
 *  server stops). Thread: the loop. */
void mh_ws_close_all(struct mh_loop *loop, const struct mh_gen *gen);
/**
 * Moves the loop's WebSockets opened on @p old to @p next when their endpoint is unchanged in
 * @p next (same module instance, same mapped file, same endpoint settings): they hold @p next
 * from now on, and their hooks get the new instance's state. The others stay on @p old and
 * are closed with 1001 at its drain deadline. @return how many moved. Thread: the loop's.
 */
size_t mh_ws_adopt_all(struct mh_loop *loop, struct mh_gen *old, struct mh_gen *next);
/** Writes one frame on the connection's loop (used by pubsub). */
void mh_ws_write_local(struct mh_ws *ws, int opcode, const void *data, size_t len);
struct mh_loop *mh_ws_loop(const struct mh_ws *ws);
bool mh_ws_is_open(const struct mh_ws *ws);
/** The connection's channel list head (owned by pubsub.c). */
void **mh_ws_channels(struct mh_ws *ws);

/* The SDK calls (see sdk.h). */
enum mh_status mh_ws_send_impl(struct mh_ws *ws, int is_binary, const void *data, size_t len);
enum mh_status mh_ws_close_impl(struct mh_ws *ws, int code, const char *reason);
void mh_ws_ref_impl(struct mh_ws *ws);
void mh_ws_unref_impl(struct mh_ws *ws);
void mh_ws_set_data_impl(struct mh_ws *ws, void *data);
void *mh_ws_data_impl(const struct mh_ws *ws);
uint64_t mh_ws_id_impl(const struct mh_ws *ws);
const char *mh_ws_param_impl(const struct mh_ws *ws, const char *name);

#endif
