/*
 * The compare-and-set check the first-party drivers make before a write, with the message a
 * failed expectation reports. Header-only: each driver is its own module file.
 */
#ifndef MH_STORE_EXPECT_H
#define MH_STORE_EXPECT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "modhost/sdk.h"

/* Whether @p expect holds for the current version @p cur (0: absent); sets the message if not. */
static inline bool expect_holds(uint64_t cur, uint64_t expect)
{
    if (expect == MH_STORE_ANY || (expect == MH_STORE_EXISTS && cur))
        return true;
    if (expect == MH_STORE_ABSENT && cur) {
        mh_store_set_error("the key exists (version %" PRIu64 ")", cur);
        return false;
    }
    if (expect != MH_STORE_ABSENT && !cur) {
        mh_store_set_error("expected %s, but the key does not exist",
                           expect == MH_STORE_EXISTS ? "an existing key" : "a version");
        return false;
    }
    if (expect != MH_STORE_ABSENT && expect != MH_STORE_EXISTS && cur != expect) {
        mh_store_set_error("expected version %" PRIu64 ", found %" PRIu64, expect, cur);
        return false;
    }
    return true;
}

#endif
