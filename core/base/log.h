/*
 * Logging: one line per event on stderr, `time level component: message`. Lines are written
 * with a single write(2), so lines from different threads never interleave.
 */
#ifndef MH_LOG_H
#define MH_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "modhost/sdk.h"

extern atomic_int mh_log_max_level; /* lines above this level are dropped; reload changes it */

void mh_log_set_level(enum mh_log_level level);
/** Parses "error", "warn", "info", "debug". @return MH_OK or MH_E_INVAL. */
enum mh_status mh_log_level_parse(const char *name, enum mh_log_level *out);
const char *mh_log_level_name(enum mh_log_level level);

void mh_log_write(enum mh_log_level level, const char *component, const char *fmt, ...)
    MH_PRINTF(3, 4);
void mh_log_vwrite(enum mh_log_level level, const char *component, const char *fmt, va_list ap)
    MH_PRINTF(3, 0);

static inline bool mh_log_enabled(enum mh_log_level level)
{
    return (int)level <= atomic_load_explicit(&mh_log_max_level, memory_order_relaxed);
}

#define MH_LOG(level, component, ...)                        \
    do {                                                     \
        if (mh_log_enabled(level))                           \
            mh_log_write((level), (component), __VA_ARGS__); \
    } while (0)

#define mh_error(component, ...) MH_LOG(MH_LOG_ERROR, component, __VA_ARGS__)
#define mh_warn(component, ...)  MH_LOG(MH_LOG_WARN, component, __VA_ARGS__)
#define mh_info(component, ...)  MH_LOG(MH_LOG_INFO, component, __VA_ARGS__)
#define mh_debug(component, ...) MH_LOG(MH_LOG_DEBUG, component, __VA_ARGS__)

#endif
