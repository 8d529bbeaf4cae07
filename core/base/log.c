/* Log line formatting and output (see log.h). */
#include "base/log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

atomic_int mh_log_max_level = MH_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void mh_log_set_level(enum mh_log_level level)
{
    atomic_store_explicit(&mh_log_max_level, (int)level, memory_order_relaxed);
}

enum mh_status mh_log_level_parse(const char *name, enum mh_log_level *out)
{
    for (int i = 0; i <= MH_LOG_DEBUG; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum mh_log_level)i;
            return MH_OK;
        }
    }
    return MH_E_INVAL;
}

const char *mh_log_level_name(enum mh_log_level level)
{
    if ((int)level < 0 || level > MH_LOG_DEBUG)
        return "?";
    return level_names[level];
}

void mh_log_vwrite(enum mh_log_level level, const char *component, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s: ", (long)(tv.tv_usec / 1000),
                 mh_log_level_name(level), component);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    /* One event, one line: a message must not inject line breaks into the log. */
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, line, n);
        if (w <= 0)
            break;
        n -= (size_t)w;
    }
}

void mh_log_write(enum mh_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mh_log_vwrite(level, component, fmt, ap);
    va_end(ap);
}
