/*
 * A request's memory: bumps through a block the caller embeds (most requests need no more),
 * then through heap chunks, all freed at once by mh_arena_cleanup.
 */
#ifndef MH_ARENA_H
#define MH_ARENA_H

#include <stddef.h>

struct mh_arena_chunk;

struct mh_arena {
    struct mh_arena_chunk *chunks; /* heap chunks, freed at cleanup */
    unsigned char *cur;
    size_t left;
};

/** Starts allocating from [@p mem, @p mem + @p size) (borrowed; must be max_align_t aligned). */
void mh_arena_init(struct mh_arena *a, unsigned char *mem, size_t size);
/** @p size zeroed bytes, aligned for any type. Never NULL: aborts on exhaustion or overflow. */
void *mh_arena_alloc(struct mh_arena *a, size_t size);
/** A NUL-terminated copy of [@p s, @p s + @p n). */
char *mh_arena_strndup(struct mh_arena *a, const char *s, size_t n);
/** Frees the heap chunks; the arena may be initialised again. */
void mh_arena_cleanup(struct mh_arena *a);

#endif
