/*
 * The dispatcher: every complete request of a loop comes here (struct mh_loop.on_request),
 * is routed on the loop's generation, and goes to its handler or WebSocket endpoint.
 */
#ifndef MH_DISPATCH_H
#define MH_DISPATCH_H

struct mh_req;

/** Routes @p req and runs what it goes to. Thread: the request's loop. */
void mh_dispatch_request(struct mh_req *req);

#endif
