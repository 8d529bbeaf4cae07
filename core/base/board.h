/*
 * A board in shared memory where each worker process pins a snapshot of its numbers (the
 * admin listener pins its Prometheus text and its /status.json there), so that whichever
 * worker answers a scrape can merge every worker's numbers (admin/merge.h). The board only
 * stores bytes; what they mean is the admin listener's. The master maps it before it
 * forks the workers; each worker writes only its own slot, about once a second, and reads
 * the others' under a sequence lock (a reader never sees a half-written snapshot).
 */
#ifndef MH_BOARD_H
#define MH_BOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define MH_BOARD_SLOT (4u << 20) /* the largest snapshot a worker can pin */

struct mh_board;

/** Maps a board for @p nprocs workers (shared with the children forked later); NULL if the
 *  mapping fails (logged). */
struct mh_board *mh_board_new(unsigned nprocs);
void mh_board_free(struct mh_board *b);
/** Empties worker @p proc's slot (before a replacement starts). */
void mh_board_reset(struct mh_board *b, unsigned proc);
/** In worker @p proc: this process writes that slot from now on (@p b NULL: no board). */
void mh_board_attach(struct mh_board *b, unsigned proc);

/** True in a worker attached to a board of more than one worker. */
bool mh_board_active(void);
/** Pins @p len bytes as this worker's snapshot. @return false if they do not fit (the old
 *  snapshot stays). */
bool mh_board_publish(const void *data, size_t len);
/** The number of slots, and this worker's. */
unsigned mh_board_nprocs(void);
unsigned mh_board_self(void);
/** Appends worker @p proc's latest snapshot to @p out. @return false if it has none. */
bool mh_board_read(unsigned proc, struct mh_buf *out);

#endif
