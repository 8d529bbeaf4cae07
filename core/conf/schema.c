/*
 * Checking a libconfig group against a schema of keys (kinds, ranges, nested groups and
 * lists), with file:line errors and a suggestion for a misspelt key; and typed reads of what
 * the check accepted.
 */
#include "conf/schema.h"

#include <stdio.h>
#include <string.h>

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[64];

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *mh_config_suggest(const char *key, const char *const *known, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(key) / 3 + 1;

    if (limit < 2)
        limit = 2;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(key, known[i]);

        if (d < best_d) {
            best_d = d;
            best = known[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

const char *mh_config_setting_file(const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);

    return f ? f : "";
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group { ... }";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a number with a fraction";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ... ]";
    case CONFIG_TYPE_LIST:
        return "a list ( ... )";
    default:
        return "something else";
    }
}

static const char *kind_name(enum mh_kind k)
{
    switch (k) {
    case MH_K_STRING:
        return "a string";
    case MH_K_INT:
        return "an integer";
    case MH_K_BOOL:
        return "a boolean (true or false)";
    case MH_K_GROUP:
    case MH_K_ANY_GROUP:
        return "a group { ... }";
    case MH_K_LIST:
        return "a list of groups ( { ... }, ... )";
    case MH_K_STRINGS:
        return "an array of strings [ \"a\", ... ]";
    }
    return "?";
}

static bool kind_matches(enum mh_kind k, int type)
{
    switch (k) {
    case MH_K_STRING:
        return type == CONFIG_TYPE_STRING;
    case MH_K_INT:
        return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
    case MH_K_BOOL:
        return type == CONFIG_TYPE_BOOL;
    case MH_K_GROUP:
    case MH_K_ANY_GROUP:
        return type == CONFIG_TYPE_GROUP;
    case MH_K_LIST:
        return type == CONFIG_TYPE_LIST;
    case MH_K_STRINGS:
        return type == CONFIG_TYPE_ARRAY;
    }
    return false;
}

static void check_value(const config_setting_t *s, const struct mh_key *k, const char *path,
                        struct mh_errlist *errs)
{
    int type = config_setting_type(s);

    if (!kind_matches(k->kind, type)) {
        MH_SCHEMA_ERR(errs, s, "'%s' must be %s, not %s", path, kind_name(k->kind),
                      type_name(type));
        return;
    }
    if (k->kind == MH_K_INT) {
        long long v = config_setting_get_int64(s);

        if (v < k->min || v > k->max)
            MH_SCHEMA_ERR(errs, s, "'%s' = %lld is out of range %lld..%lld", path, v, k->min,
                          k->max);
    } else if (k->kind == MH_K_GROUP) {
        mh_schema_check(s, k->children, path, errs);
    } else if (k->kind == MH_K_STRINGS) {
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                MH_SCHEMA_ERR(errs, e, "'%s[%d]' must be a string, not %s", path, i,
                              type_name(config_setting_type(e)));
        }
    } else if (k->kind == MH_K_LIST) {
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            char sub[256];

            if (snprintf(sub, sizeof(sub), "%s[%d]", path, i) < 0)
                continue;
            if (config_setting_type(e) != CONFIG_TYPE_GROUP)
                MH_SCHEMA_ERR(errs, e, "'%s' must be a group { ... }, not %s", sub,
                              type_name(config_setting_type(e)));
            else
                mh_schema_check(e, k->children, sub, errs);
        }
    }
}

void mh_schema_check(const config_setting_t *g, const struct mh_key *schema, const char *where,
                     struct mh_errlist *errs)
{
    const char *names[32];
    size_t nnames = 0;

    for (const struct mh_key *k = schema; k->name && nnames < 32; k++)
        names[nnames++] = k->name;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        const struct mh_key *k = schema;
        char path[256];

        while (k->name && strcmp(k->name, name) != 0)
            k++;
        (void)snprintf(path, sizeof(path), "%s%s%s", where, where[0] ? "." : "", name);
        if (!k->name) {
            const char *hint = mh_config_suggest(name, names, nnames);

            if (hint) {
                MH_SCHEMA_ERR(errs, s, "unknown key '%s' (did you mean '%s'?)", path, hint);
            } else {
                char known[512];
                size_t n = 0;

                known[0] = '\0';
                for (size_t j = 0; j < nnames && n < sizeof(known); j++)
                    n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", j ? ", " : "",
                                          names[j]);
                MH_SCHEMA_ERR(errs, s, "unknown key '%s' (valid keys: %s)", path, known);
            }
            continue;
        }
        check_value(s, k, path, errs);
    }
}

const char *mh_schema_str(const config_setting_t *g, const char *name)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    return s && config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
}

void mh_schema_bool(const config_setting_t *g, const char *name, bool *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    if (s && config_setting_type(s) == CONFIG_TYPE_BOOL)
        *out = config_setting_get_bool(s) != 0;
}
