/* Request arenas (see arena.h). */
#include "base/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct mh_arena_chunk {
    struct mh_arena_chunk *next;
    alignas(max_align_t) unsigned char data[];
};

void mh_arena_init(struct mh_arena *a, unsigned char *mem, size_t size)
{
    a->chunks = NULL;
    a->cur = mem;
    a->left = size;
}

void *mh_arena_alloc(struct mh_arena *a, size_t size)
{
    size_t align = alignof(max_align_t);
    size_t need = (size + align - 1) & ~(align - 1);
    void *p;

    if (need < size)
        abort(); /* overflow: a module asked for an absurd size */
    if (need > a->left) {
        size_t cap = need > 4096 ? need : 4096;
        struct mh_arena_chunk *c = mh_xmalloc(sizeof(*c) + cap);

        c->next = a->chunks;
        a->chunks = c;
        a->cur = c->data;
        a->left = cap;
    }
    p = a->cur;
    a->cur += need;
    a->left -= need;
    memset(p, 0, size);
    return p;
}

char *mh_arena_strndup(struct mh_arena *a, const char *s, size_t n)
{
    char *p = mh_arena_alloc(a, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void mh_arena_cleanup(struct mh_arena *a)
{
    while (a->chunks) {
        struct mh_arena_chunk *c = a->chunks;

        a->chunks = c->next;
        free(c);
    }
    a->cur = NULL;
    a->left = 0;
}
