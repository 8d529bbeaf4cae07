/*
 * Schemas for conf.d groups (see schema.c): what keys a group may hold, of which kind, in which
 * range. conf/config.c declares modhost's schema with these.
 */
#ifndef MH_SCHEMA_H
#define MH_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "base/err.h"

enum mh_kind {
    MH_K_STRING,
    MH_K_INT,
    MH_K_BOOL,
    MH_K_GROUP,
    MH_K_LIST,
    MH_K_ANY_GROUP,
    MH_K_STRINGS
};

struct mh_key {
    const char *name;
    enum mh_kind kind;
    const struct mh_key *children; /* MH_K_GROUP, MH_K_LIST (element schema) */
    long long min, max;            /* MH_K_INT */
};

/* One error on setting @p s, with its file and line. */
#define MH_SCHEMA_ERR(list, s, ...)                                                              \
    mh_errlist_add((list), MH_E_INVAL, mh_config_setting_file(s), config_setting_source_line(s), \
                   __VA_ARGS__)

#define MH_KEY_END                    \
    {                                 \
        NULL, MH_K_STRING, NULL, 0, 0 \
    }
#define MH_KEY_END                    \
    {                                 \
        NULL, MH_K_STRING, NULL, 0, 0 \
    }

/** Checks every member of @p g against @p schema; problems go to @p errs with file:line.
 *  @p where names the group in messages ("" for the top level). */
void mh_schema_check(const config_setting_t *g, const struct mh_key *schema, const char *where,
                     struct mh_errlist *errs);
/** The string member @p name of @p g, or NULL (absent or not a string). Borrowed from @p g. */
const char *mh_schema_str(const config_setting_t *g, const char *name);
/** Sets *@p out from the boolean member @p name of @p g, if it is one. */
void mh_schema_bool(const config_setting_t *g, const char *name, bool *out);
/** The closest of @p known to @p key when it is close enough to be a typo, or NULL. */
const char *mh_config_suggest(const char *key, const char *const *known, size_t n);
/** The file @p s was read from ("" if none). Borrowed from the configuration. */
const char *mh_config_setting_file(const config_setting_t *s);

#endif
