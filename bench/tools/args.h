/*
 * Numbers on the bench tools' command lines: the whole argument as a whole number within a
 * range, or a message naming the tool and the option. Each tool is one C file built with one
 * cc line (bench/run); they share this header and nothing else.
 */
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* 0 and *out, or -1 after the message "TOOL: OPT: 'S' is not a whole number from MIN to MAX". */
static inline int bench_parse_long(const char *tool, const char *opt, const char *s, long min,
                                   long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        (void)fprintf(stderr, "%s: %s: '%s' is not a whole number from %ld to %ld\n", tool, opt, s,
                      min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static inline int bench_parse_int(const char *tool, const char *opt, const char *s, int min,
                                  int max, int *out)
{
    long v;

    if (bench_parse_long(tool, opt, s, min, max, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

#endif
