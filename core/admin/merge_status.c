/*
 * Several worker processes' /status.json merged into one (admin/merge.h states the rules).
 * The answering worker's document is the base; the others' numbers are added into it, module
 * by module (matched by name), and the percentiles are computed again from the summed latency
 * buckets. Pure: no I/O, no global state.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "admin/merge.h"
#include "base/metrics.h"

/* Fields that every worker reports alike: the largest value stands for all. */
static const char *const top_max[] = {"uptime_s",   "generation",     "generations_live",
                                      "reloads_ok", "reloads_failed", NULL};
/* Per module: summed, except routes (the same in every worker). */
static const char *const module_sum[] = {"requests", "errors",      "client_errors",
                                         "ws_open",  "ws_messages", NULL};
static const char *const totals_sum[] = {
    "requests",  "errors",    "in_flight",   "connections_open", "ws_open", "bytes_in",
    "bytes_out", "pool_busy", "pool_queued", "pool_workers",     NULL};

static struct json_object *field(struct json_object *o, const char *key, json_type type)
{
    struct json_object *v = NULL;

    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
        return NULL;
    return v;
}

static bool is_number(struct json_object *v)
{
    return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
}

static void add_fields(struct json_object *into, struct json_object *from, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        struct json_object *a = NULL, *b = NULL;

        json_object_object_get_ex(into, keys[i], &a);
        json_object_object_get_ex(from, keys[i], &b);
        if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int))
            json_object_set_int64(a, json_object_get_int64(a) + json_object_get_int64(b));
    }
}

static void max_fields(struct json_object *into, struct json_object *from, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++) {
        struct json_object *a = NULL, *b = NULL;

        json_object_object_get_ex(into, keys[i], &a);
        json_object_object_get_ex(from, keys[i], &b);
        if (!is_number(a) || !is_number(b) ||
            json_object_get_double(b) <= json_object_get_double(a))
            continue;
        json_object_object_add(into, keys[i], json_object_get(b));
    }
}

/* Adds @p from's latency buckets into @p into's, bucket by bucket. */
static void add_latency(struct json_object *into, struct json_object *from)
{
    struct json_object *a = field(into, "latency", json_type_array);
    struct json_object *b = field(from, "latency", json_type_array);

    if (!a || !b || json_object_array_length(a) != json_object_array_length(b))
        return;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        struct json_object *x = json_object_array_get_idx(a, i);
        struct json_object *y = json_object_array_get_idx(b, i);

        if (json_object_is_type(x, json_type_int) && json_object_is_type(y, json_type_int))
            json_object_set_int64(x, json_object_get_int64(x) + json_object_get_int64(y));
    }
}

/* p50_us and p99_us of @p o again, from its (summed) latency buckets. */
static void percentiles(struct json_object *o)
{
    struct json_object *lat = field(o, "latency", json_type_array);
    uint64_t counts[MH_LATENCY_BUCKETS] = {0};

    if (!lat || json_object_array_length(lat) != MH_LATENCY_BUCKETS)
        return;
    for (size_t i = 0; i < MH_LATENCY_BUCKETS; i++) {
        int64_t n = json_object_get_int64(json_object_array_get_idx(lat, i));

        counts[i] = n > 0 ? (uint64_t)n : 0;
    }
    /* whole microseconds, as mh_admin_status_json prints them */
    json_object_object_add(
        o, "p50_us", json_object_new_int64((int64_t)(mh_buckets_quantile(counts, 0.5) + 0.5)));
    json_object_object_add(
        o, "p99_us", json_object_new_int64((int64_t)(mh_buckets_quantile(counts, 0.99) + 0.5)));
}

static struct json_object *module_named(struct json_object *modules, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(modules); i++) {
        struct json_object *m = json_object_array_get_idx(modules, i);
        struct json_object *n = field(m, "name", json_type_string);

        if (n && strcmp(json_object_get_string(n), name) == 0)
            return m;
    }
    return NULL;
}

static void merge_modules(struct json_object *into, struct json_object *from)
{
    for (size_t i = 0; i < json_object_array_length(from); i++) {
        struct json_object *m = json_object_array_get_idx(from, i);
        struct json_object *name = field(m, "name", json_type_string), *q, *mine, *copy = NULL;

        if (!name)
            continue;
        mine = module_named(into, json_object_get_string(name));
        if (!mine) { /* loaded in that worker only (a reload under way): taken as it is */
            if (json_object_deep_copy(m, &copy, NULL) == 0)
                json_object_array_add(into, copy);
            continue;
        }
        add_fields(mine, m, module_sum);
        add_latency(mine, m);
        q = field(m, "quarantined", json_type_boolean);
        if (q && json_object_get_boolean(q))
            json_object_object_add(mine, "quarantined", json_object_new_boolean(1));
    }
}

/* One document, or NULL if it is not a JSON object. */
static struct json_object *parse(const struct mh_prom_text *t)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = NULL;

    if (tok && t->len <= INT32_MAX) {
        o = json_tokener_parse_ex(tok, t->data, (int)t->len);
        if (o && (json_tokener_get_error(tok) != json_tokener_success ||
                  !json_object_is_type(o, json_type_object))) {
            json_object_put(o);
            o = NULL;
        }
    }
    if (tok)
        json_tokener_free(tok);
    return o;
}

/* Adds worker document @p doc into @p base. */
static void merge_doc(struct json_object *base, struct json_object *doc)
{
    struct json_object *modules = field(base, "modules", json_type_array);
    struct json_object *totals = field(base, "totals", json_type_object), *m;

    max_fields(base, doc, top_max);
    m = field(doc, "modules", json_type_array);
    if (modules && m)
        merge_modules(modules, m);
    m = field(doc, "totals", json_type_object);
    if (totals && m) {
        add_fields(totals, m, totals_sum);
        add_latency(totals, m);
    }
}

void mh_status_merge(const struct mh_prom_text *docs, size_t n, struct mh_buf *out)
{
    struct json_object *base = NULL, *modules, *totals;
    int64_t workers = 0;
    const char *s;
    size_t len;

    for (size_t i = 0; i < n; i++) {
        struct json_object *doc = parse(&docs[i]);

        if (!doc)
            continue; /* a worker's snapshot that does not parse is left out */
        workers++;
        if (!base) {
            base = doc; /* the first that parses (the answering worker's own) is the base */
            continue;
        }
        merge_doc(base, doc);
        json_object_put(doc);
    }
    if (!base) {
        mh_buf_add(out, "{}", 2);
        return;
    }
    modules = field(base, "modules", json_type_array);
    totals = field(base, "totals", json_type_object);
    for (size_t i = 0; modules && i < json_object_array_length(modules); i++)
        percentiles(json_object_array_get_idx(modules, i));
    if (totals)
        percentiles(totals);
    json_object_object_add(base, "workers", json_object_new_int64(workers));
    s = json_object_to_json_string_length(base, JSON_C_TO_STRING_PLAIN, &len);
    mh_buf_add(out, s, len);
    json_object_put(base);
}
