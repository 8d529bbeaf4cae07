/* The core's one hash function for its hash tables: 64-bit FNV-1a (short keys, no attacker
 * can aim at one bucket chain for long: tables are per loop or per process and small). */
#ifndef MH_HASH_H
#define MH_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t mh_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static inline uint64_t mh_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

#endif
