/*
 * Reading conf.d: every file is parsed with libconfig, checked against the schema below (unknown
 * keys with a suggestion, wrong types, ranges), then turned into struct mh_config. Module
 * settings are checked later against the module's own declaration (see gen.c).
 */
#include "conf/config.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "mod/router.h"

#ifndef MH_DEFAULT_MODULE_DIR
#define MH_DEFAULT_MODULE_DIR "/usr/lib/modhost/modules"
#endif

/* --- Schema --- */

enum kind { K_STRING, K_INT, K_BOOL, K_GROUP, K_LIST, K_ANY_GROUP, K_STRINGS };

struct key {
    const char *name;
    enum kind kind;
    const struct key *children; /* K_GROUP, K_LIST (element schema) */
    long long min, max;         /* K_INT */
};

#define KEY_END {NULL, K_STRING, NULL, 0, 0}
#define MS_MAX  (24LL * 3600 * 1000)

static const struct key limits_keys[] = {
    {"max_header_bytes", K_INT, NULL, 256, 1 << 20},
    {"max_body_bytes", K_INT, NULL, 0, 1LL << 40},
    {"max_json_bytes", K_INT, NULL, 0, 1LL << 40},
    {"max_json_depth", K_INT, NULL, 1, 10000},
    {"read_timeout_ms", K_INT, NULL, 1, MS_MAX},
    {"write_timeout_ms", K_INT, NULL, 1, MS_MAX},
    {"keepalive_timeout_ms", K_INT, NULL, 1, MS_MAX},
    {"handler_timeout_ms", K_INT, NULL, 1, MS_MAX},
    {"max_request_line_bytes", K_INT, NULL, 64, 1 << 20},
    {"max_headers", K_INT, NULL, 1, 10000},
    {"head_timeout_ms", K_INT, NULL, 1, MS_MAX},
    {"body_timeout_ms", K_INT, NULL, 1, MS_MAX},
    {"max_connections", K_INT, NULL, 1, 10000000},
    {"max_connections_per_client", K_INT, NULL, 1, 10000000},
    {"max_requests_per_connection", K_INT, NULL, 1, 100000000},
    KEY_END,
};

static const struct key log_keys[] = {
    {"level", K_STRING, NULL, 0, 0},
    {"access", K_BOOL, NULL, 0, 0},
    KEY_END,
};

static const struct key server_keys[] = {
    {"listen", K_STRING, NULL, 0, 0},
    {"threads", K_INT, NULL, 0, 256},
    {"workers", K_INT, NULL, 0, 1024},
    {"worker_queue", K_INT, NULL, 1, 1000000},
    {"module_dir", K_STRING, NULL, 0, 0},
    {"shutdown_timeout_ms", K_INT, NULL, 0, MS_MAX},
    {"reload_drain_ms", K_INT, NULL, 0, MS_MAX},
    {"pid_file", K_STRING, NULL, 0, 0},
    {"user", K_STRING, NULL, 0, 0},
    {"group", K_STRING, NULL, 0, 0},
    {"insecure_permissions", K_BOOL, NULL, 0, 0},
    {"channels", K_STRING, NULL, 0, 0},
    {"log", K_GROUP, log_keys, 0, 0},
    {"limits", K_GROUP, limits_keys, 0, 0},
    KEY_END,
};

static const struct key route_keys[] = {
    {"method", K_STRING, NULL, 0, 0},
    {"path", K_STRING, NULL, 0, 0},
    {"handler", K_STRING, NULL, 0, 0},
    {"timeout_ms", K_INT, NULL, 0, MS_MAX},
    {"inline", K_BOOL, NULL, 0, 0},
    KEY_END,
};

static const struct key ws_keys[] = {
    {"path", K_STRING, NULL, 0, 0},
    {"on_open", K_STRING, NULL, 0, 0},
    {"on_message", K_STRING, NULL, 0, 0},
    {"on_close", K_STRING, NULL, 0, 0},
    {"subprotocols", K_STRINGS, NULL, 0, 0},
    {"max_message_bytes", K_INT, NULL, 1, 1LL << 30},
    {"max_outbound_bytes", K_INT, NULL, 1024, 1LL << 34},
    {"ping_interval_ms", K_INT, NULL, 0, MS_MAX},
    {"idle_timeout_ms", K_INT, NULL, 0, MS_MAX},
    KEY_END,
};

static const struct key module_keys[] = {
    {"name", K_STRING, NULL, 0, 0},
    {"file", K_STRING, NULL, 0, 0},
    {"settings", K_ANY_GROUP, NULL, 0, 0},
    {"routes", K_LIST, route_keys, 0, 0},
    {"stores", K_STRINGS, NULL, 0, 0},
    {"websockets", K_LIST, ws_keys, 0, 0},
    {"instance", K_STRING, NULL, 0, 0},
    KEY_END,
};

static const struct key store_keys[] = {
    {"name", K_STRING, NULL, 0, 0},
    {"driver", K_STRING, NULL, 0, 0},
    {"settings", K_ANY_GROUP, NULL, 0, 0},
    KEY_END,
};

static const struct key top_keys[] = {
    {"server", K_GROUP, server_keys, 0, 0},
    {"module", K_GROUP, module_keys, 0, 0},
    {"stores", K_LIST, store_keys, 0, 0},
    KEY_END,
};

/* --- Helpers --- */

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

static const char *kind_name(enum kind k)
{
    switch (k) {
    case K_STRING:
        return "a string";
    case K_INT:
        return "an integer";
    case K_BOOL:
        return "a boolean (true or false)";
    case K_GROUP:
    case K_ANY_GROUP:
        return "a group { ... }";
    case K_LIST:
        return "a list of groups ( { ... }, ... )";
    case K_STRINGS:
        return "an array of strings [ \"a\", ... ]";
    }
    return "?";
}

static bool kind_matches(enum kind k, int type)
{
    switch (k) {
    case K_STRING:
        return type == CONFIG_TYPE_STRING;
    case K_INT:
        return type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64;
    case K_BOOL:
        return type == CONFIG_TYPE_BOOL;
    case K_GROUP:
    case K_ANY_GROUP:
        return type == CONFIG_TYPE_GROUP;
    case K_LIST:
        return type == CONFIG_TYPE_LIST;
    case K_STRINGS:
        return type == CONFIG_TYPE_ARRAY;
    }
    return false;
}

#define SET_ERR(list, s, ...)                                                                      \
    mh_errlist_add((list), MH_E_INVAL, mh_config_setting_file(s), config_setting_source_line(s),  \
                   __VA_ARGS__)

static void check_group(const config_setting_t *g, const struct key *schema, const char *where,
                        struct mh_errlist *errs);

static void check_value(const config_setting_t *s, const struct key *k, const char *path,
                        struct mh_errlist *errs)
{
    int type = config_setting_type(s);

    if (!kind_matches(k->kind, type)) {
        SET_ERR(errs, s, "'%s' must be %s, not %s", path, kind_name(k->kind), type_name(type));
        return;
    }
    if (k->kind == K_INT) {
        long long v = config_setting_get_int64(s);

        if (v < k->min || v > k->max)
            SET_ERR(errs, s, "'%s' = %lld is out of range %lld..%lld", path, v, k->min, k->max);
    } else if (k->kind == K_GROUP) {
        check_group(s, k->children, path, errs);
    } else if (k->kind == K_STRINGS) {
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                SET_ERR(errs, e, "'%s[%d]' must be a string, not %s", path, i,
                        type_name(config_setting_type(e)));
        }
    } else if (k->kind == K_LIST) {
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            char sub[256];

            if (snprintf(sub, sizeof(sub), "%s[%d]", path, i) < 0)
                continue;
            if (config_setting_type(e) != CONFIG_TYPE_GROUP)
                SET_ERR(errs, e, "'%s' must be a group { ... }, not %s", sub,
                        type_name(config_setting_type(e)));
            else
                check_group(e, k->children, sub, errs);
        }
    }
}

static void check_group(const config_setting_t *g, const struct key *schema, const char *where,
                        struct mh_errlist *errs)
{
    const char *names[32];
    size_t nnames = 0;

    for (const struct key *k = schema; k->name && nnames < 32; k++)
        names[nnames++] = k->name;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        const struct key *k = schema;
        char path[256];

        while (k->name && strcmp(k->name, name) != 0)
            k++;
        snprintf(path, sizeof(path), "%s%s%s", where, where[0] ? "." : "", name);
        if (!k->name) {
            const char *hint = mh_config_suggest(name, names, nnames);

            if (hint) {
                SET_ERR(errs, s, "unknown key '%s' (did you mean '%s'?)", path, hint);
            } else {
                char known[512];
                size_t n = 0;

                known[0] = '\0';
                for (size_t j = 0; j < nnames && n < sizeof(known); j++)
                    n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", j ? ", " : "",
                                          names[j]);
                SET_ERR(errs, s, "unknown key '%s' (valid keys: %s)", path, known);
            }
            continue;
        }
        check_value(s, k, path, errs);
    }
}

/* Typed reads of settings that check_group has already validated. */
static const char *get_str(const config_setting_t *g, const char *name)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    return s && config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s)
                                                             : NULL;
}

/* The schema entry of an integer key (names are unique across the integer schemas). */
static const struct key *int_key(const char *name)
{
    static const struct key *const tables[] = {server_keys, limits_keys, route_keys, ws_keys};

    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (const struct key *k = tables[t]; k->name; k++) {
            if (k->kind == K_INT && strcmp(k->name, name) == 0)
                return k;
        }
    }
    return NULL;
}

/* Reads an integer the schema check accepted; a value out of range (already reported) keeps
 * the default, so a configuration with errors never carries an invalid value. */
static void get_ll(const config_setting_t *g, const char *name, long long *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    const struct key *k = int_key(name);
    long long v;

    if (!s || (config_setting_type(s) != CONFIG_TYPE_INT &&
               config_setting_type(s) != CONFIG_TYPE_INT64))
        return;
    v = config_setting_get_int64(s);
    if (!k || (v >= k->min && v <= k->max))
        *out = v;
}

static void get_bool(const config_setting_t *g, const char *name, bool *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);

    if (s && config_setting_type(s) == CONFIG_TYPE_BOOL)
        *out = config_setting_get_bool(s) != 0;
}

/* A path from a file, made absolute against the directory of the file it came from. */
static char *resolve_path(const char *value, const char *relative_to_file)
{
    const char *slash;

    if (value[0] == '/')
        return mh_xstrdup(value);
    slash = strrchr(relative_to_file, '/');
    if (!slash)
        return mh_xstrdup(value);
    return mh_xasprintf("%.*s/%s", (int)(slash - relative_to_file), relative_to_file, value);
}

/* --- Public --- */

void mh_config_defaults(struct mh_server_conf *s)
{
    memset(s, 0, sizeof(*s));
    s->host = mh_xstrdup("127.0.0.1");
    s->port = 8080;
    s->threads = 0;
    s->module_dir = mh_xstrdup(MH_DEFAULT_MODULE_DIR);
    s->shutdown_timeout_ms = 10000;
    s->reload_drain_ms = 30000;
    s->log_level = MH_LOG_INFO;
    s->access_log = true;
    s->limits = (struct mh_limits){
        .max_header_bytes = 16384,
        .max_body_bytes = 1 << 20,
        .max_json_bytes = 1 << 20,
        .max_json_depth = 64,
        .read_timeout_ms = 30000,
        .write_timeout_ms = 30000,
        .keepalive_timeout_ms = 60000,
        .handler_timeout_ms = 30000,
        .max_request_line_bytes = 8192,
        .max_headers = 100,
        .head_timeout_ms = 10000,
        .body_timeout_ms = 60000,
        .max_connections = 20000,
        .max_connections_per_client = 2000,
        .max_requests_per_connection = 10000,
    };
    s->workers = 0;
    s->worker_queue = 1024;
}

enum mh_status mh_config_parse_listen(const char *s, char **host, int *port)
{
    const char *colon, *h;
    size_t hlen;
    char *end;
    long p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':' || close == s + 1)
            return MH_E_INVAL;
        colon = close + 1;
        h = s + 1;
        hlen = (size_t)(close - s - 1);
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || memchr(s, ':', (size_t)(colon - s)))
            return MH_E_INVAL;
        h = s;
        hlen = (size_t)(colon - s);
    }
    p = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || p < 0 || p > 65535)
        return MH_E_INVAL;
    *host = mh_xstrndup(h, hlen);
    *port = (int)p;
    return MH_OK;
}

static void read_server(struct mh_config *c, const config_setting_t *g, const char *file,
                        struct mh_errlist *errs)
{
    struct mh_server_conf *s = &c->server;
    const config_setting_t *sub;
    const char *v;

    if ((v = get_str(g, "listen"))) {
        char *host = NULL;
        int port;

        if (mh_config_parse_listen(v, &host, &port) != MH_OK) {
            SET_ERR(errs, config_setting_get_member(g, "listen"),
                    "'server.listen' = \"%s\" is not HOST:PORT (e.g. \"127.0.0.1:8080\", "
                    "\"[::1]:8080\")",
                    v);
        } else {
            free(s->host);
            s->host = host;
            s->port = port;
        }
    }
    {
        long long threads = -1;

        get_ll(g, "threads", &threads);
        if (threads > 0)
            s->threads = (int)threads; /* 0 keeps one per core */
    }
    {
        long long workers = -1;

        get_ll(g, "workers", &workers);
        if (workers > 0)
            s->workers = (int)workers; /* 0 keeps twice the cores */
    }
    get_ll(g, "worker_queue", &s->worker_queue);
    if ((v = get_str(g, "module_dir"))) {
        free(s->module_dir);
        s->module_dir = resolve_path(v, file);
    }
    get_ll(g, "shutdown_timeout_ms", &s->shutdown_timeout_ms);
    get_ll(g, "reload_drain_ms", &s->reload_drain_ms);
    get_bool(g, "insecure_permissions", &s->insecure_permissions);
    if ((v = get_str(g, "pid_file"))) {
        free(s->pid_file);
        s->pid_file = resolve_path(v, file);
    }
    if ((v = get_str(g, "channels"))) {
        free(s->channels);
        s->channels = mh_xstrdup(v);
        s->channels_file = mh_config_setting_file(config_setting_get_member(g, "channels"));
        s->channels_line = config_setting_source_line(config_setting_get_member(g, "channels"));
    }
    if ((v = get_str(g, "user"))) {
        free(s->user);
        s->user = mh_xstrdup(v);
        if (!getpwnam(v))
            SET_ERR(errs, config_setting_get_member(g, "user"),
                    "'server.user' = \"%s\": no such user", v);
    }
    if ((v = get_str(g, "group"))) {
        free(s->group);
        s->group = mh_xstrdup(v);
        if (!getgrnam(v))
            SET_ERR(errs, config_setting_get_member(g, "group"),
                    "'server.group' = \"%s\": no such group", v);
    }
    if ((sub = config_setting_get_member(g, "log")) && config_setting_is_group(sub)) {
        enum mh_log_level lvl;

        if ((v = get_str(sub, "level"))) {
            if (mh_log_level_parse(v, &lvl) == MH_OK)
                s->log_level = (int)lvl;
            else
                SET_ERR(errs, config_setting_get_member(sub, "level"),
                        "'server.log.level' = \"%s\" is not one of error, warn, info, debug", v);
        }
        get_bool(sub, "access", &s->access_log);
    }
    if ((sub = config_setting_get_member(g, "limits")) && config_setting_is_group(sub)) {
        struct mh_limits *l = &s->limits;

        get_ll(sub, "max_header_bytes", &l->max_header_bytes);
        get_ll(sub, "max_body_bytes", &l->max_body_bytes);
        get_ll(sub, "max_json_bytes", &l->max_json_bytes);
        get_ll(sub, "max_json_depth", &l->max_json_depth);
        get_ll(sub, "read_timeout_ms", &l->read_timeout_ms);
        get_ll(sub, "write_timeout_ms", &l->write_timeout_ms);
        get_ll(sub, "keepalive_timeout_ms", &l->keepalive_timeout_ms);
        get_ll(sub, "handler_timeout_ms", &l->handler_timeout_ms);
        get_ll(sub, "max_request_line_bytes", &l->max_request_line_bytes);
        get_ll(sub, "max_headers", &l->max_headers);
        get_ll(sub, "head_timeout_ms", &l->head_timeout_ms);
        get_ll(sub, "body_timeout_ms", &l->body_timeout_ms);
        get_ll(sub, "max_connections", &l->max_connections);
        get_ll(sub, "max_connections_per_client", &l->max_connections_per_client);
        get_ll(sub, "max_requests_per_connection", &l->max_requests_per_connection);
    }
}

static bool valid_module_name(const char *name)
{
    if (!name[0] || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

static void read_routes(struct mh_module_conf *m, const config_setting_t *list, const char *file,
                        struct mh_errlist *errs)
{
    static const char *const required[] = {"method", "path", "handler"};
    int n = config_setting_length(list);

    m->routes = mh_xcalloc((size_t)n + 1, sizeof(*m->routes));
    for (int i = 0; i < n; i++) {
        const config_setting_t *r = config_setting_get_elem(list, (unsigned)i);
        const char *method, *path, *handler;
        struct mh_route_conf *rc;
        struct mh_err e = {0};
        bool ok = true;

        if (!config_setting_is_group(r))
            continue; /* reported by the schema check */
        method = get_str(r, "method");
        path = get_str(r, "path");
        handler = get_str(r, "handler");
        for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
            if (!config_setting_get_member(r, required[k])) {
                SET_ERR(errs, r, "route in module '%s' has no '%s'", m->instance, required[k]);
                ok = false;
            }
        }
        if (method && mh_method_parse(method) == MH_METHOD_UNKNOWN) {
            SET_ERR(errs, config_setting_get_member(r, "method"),
                    "route method \"%s\" is not one of GET, HEAD, POST, PUT, DELETE, PATCH, "
                    "OPTIONS",
                    method);
            ok = false;
        }
        if (path && mh_router_check_template(path, &e) != MH_OK) {
            SET_ERR(errs, config_setting_get_member(r, "path"), "%s", e.msg);
            ok = false;
        }
        if (!ok || !method || !path || !handler)
            continue;
        rc = &m->routes[m->nroutes++];
        rc->method = mh_xstrdup(method);
        rc->path = mh_xstrdup(path);
        rc->handler = mh_xstrdup(handler);
        {
            long long t = 0;

            get_ll(r, "timeout_ms", &t);
            rc->timeout_ms = t;
            get_bool(r, "inline", &rc->run_inline);
        }
        rc->file = file;
        rc->line = config_setting_source_line(r);
    }
}

static char *dup_opt(const config_setting_t *g, const char *name)
{
    const char *v = get_str(g, name);

    return v ? mh_xstrdup(v) : NULL;
}

static void read_websockets(struct mh_module_conf *m, const config_setting_t *list,
                            const char *file, struct mh_errlist *errs)
{
    int n = config_setting_length(list);

    m->ws = mh_xcalloc((size_t)n + 1, sizeof(*m->ws));
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        const config_setting_t *subs;
        struct mh_ws_conf *w;
        struct mh_err e = {0};
        const char *path;

        if (!config_setting_is_group(g))
            continue; /* reported by the schema check */
        path = get_str(g, "path");
        if (!path || !get_str(g, "on_message")) {
            SET_ERR(errs, g, "WebSocket endpoint in module '%s' needs 'path' and 'on_message'",
                    m->instance);
            continue;
        }
        if (mh_router_check_template(path, &e) != MH_OK) {
            SET_ERR(errs, config_setting_get_member(g, "path"), "%s", e.msg);
            continue;
        }
        w = &m->ws[m->nws++];
        w->path = mh_xstrdup(path);
        w->on_open = dup_opt(g, "on_open");
        w->on_message = dup_opt(g, "on_message");
        w->on_close = dup_opt(g, "on_close");
        w->max_message_bytes = 1 << 20;
        w->max_outbound_bytes = 1 << 20;
        w->ping_interval_ms = 30000;
        w->idle_timeout_ms = 120000;
        get_ll(g, "max_message_bytes", &w->max_message_bytes);
        get_ll(g, "max_outbound_bytes", &w->max_outbound_bytes);
        get_ll(g, "ping_interval_ms", &w->ping_interval_ms);
        get_ll(g, "idle_timeout_ms", &w->idle_timeout_ms);
        subs = config_setting_get_member(g, "subprotocols");
        if (subs && config_setting_is_array(subs)) {
            int ns = config_setting_length(subs);

            w->subprotocols = mh_xcalloc((size_t)ns + 1, sizeof(char *));
            for (int j = 0; j < ns; j++) {
                const char *sv = config_setting_get_string_elem(subs, j);

                if (sv)
                    w->subprotocols[w->nsubprotocols++] = mh_xstrdup(sv);
            }
        }
        w->file = file;
        w->line = config_setting_source_line(g);
    }
}

static void read_module(struct mh_config *c, const config_setting_t *g, const char *file,
                        struct mh_errlist *errs)
{
    const char *name = get_str(g, "name");
    const char *instance = get_str(g, "instance");
    const char *so = get_str(g, "file");
    const config_setting_t *routes = config_setting_get_member(g, "routes");
    const config_setting_t *settings = config_setting_get_member(g, "settings");
    const config_setting_t *stores = config_setting_get_member(g, "stores");
    struct mh_module_conf *m;

    if (!name) {
        if (!config_setting_get_member(g, "name"))
            SET_ERR(errs, g, "module has no 'name'");
        return;
    }
    if (!valid_module_name(name)) {
        SET_ERR(errs, config_setting_get_member(g, "name"),
                "module name \"%s\" must match [a-z0-9_]+ (at most 64 characters)", name);
        return;
    }
    if (!instance) {
        instance = name;
    } else if (!valid_module_name(instance)) {
        SET_ERR(errs, config_setting_get_member(g, "instance"),
                "instance name \"%s\" must match [a-z0-9_]+ (at most 64 characters)", instance);
        return;
    }
    for (size_t i = 0; i < c->nmodules; i++) {
        if (strcmp(c->modules[i].instance, instance) == 0) {
            const config_setting_t *at = config_setting_get_member(g, "instance");

            if (strcmp(instance, name) == 0)
                SET_ERR(errs, at ? at : config_setting_get_member(g, "name"),
                        "module '%s' is already enabled at %s:%d (to enable it again, give each "
                        "entry its own 'instance' name)",
                        name, c->modules[i].file, c->modules[i].line);
            else
                SET_ERR(errs, at, "instance '%s' is already enabled at %s:%d", instance,
                        c->modules[i].file, c->modules[i].line);
            return;
        }
    }
    c->modules = mh_xrealloc(c->modules, (c->nmodules + 1) * sizeof(*c->modules));
    m = &c->modules[c->nmodules++];
    memset(m, 0, sizeof(*m));
    m->name = mh_xstrdup(name);
    m->instance = mh_xstrdup(instance);
    m->path = so ? mh_xstrdup(so) : mh_xasprintf("%s.so", name); /* resolved after all files */
    m->file = file;
    m->line = config_setting_source_line(g);
    m->settings = settings && config_setting_is_group(settings) ? settings : NULL;
    if (routes && config_setting_is_list(routes))
        read_routes(m, routes, file, errs);
    if ((routes = config_setting_get_member(g, "websockets")) && config_setting_is_list(routes))
        read_websockets(m, routes, file, errs);
    if (stores && config_setting_is_array(stores)) {
        int n = config_setting_length(stores);

        m->stores = mh_xcalloc((size_t)n + 1, sizeof(*m->stores));
        for (int i = 0; i < n; i++) {
            const char *sv = config_setting_get_string_elem(stores, i);

            if (sv)
                m->stores[m->nstores++] = mh_xstrdup(sv);
        }
    }
}

static void read_stores(struct mh_config *c, const config_setting_t *list, const char *file,
                        struct mh_errlist *errs)
{
    for (int i = 0; i < config_setting_length(list); i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        const char *name, *driver;
        const config_setting_t *settings;
        struct mh_store_conf *sc;
        bool dup = false;

        if (!config_setting_is_group(g))
            continue; /* reported by the schema check */
        name = get_str(g, "name");
        driver = get_str(g, "driver");
        if (!name || !driver) {
            if (!config_setting_get_member(g, "name") || !config_setting_get_member(g, "driver"))
                SET_ERR(errs, g, "store needs a 'name' and a 'driver'");
            continue;
        }
        if (!valid_module_name(name)) {
            SET_ERR(errs, config_setting_get_member(g, "name"),
                    "store name \"%s\" must match [a-z0-9_]+ (at most 64 characters)", name);
            continue;
        }
        for (size_t j = 0; j < c->nstores; j++) {
            if (strcmp(c->stores[j].name, name) == 0) {
                SET_ERR(errs, config_setting_get_member(g, "name"),
                        "store '%s' is already declared at %s:%d", name, c->stores[j].file,
                        c->stores[j].line);
                dup = true;
            }
        }
        if (dup)
            continue;
        settings = config_setting_get_member(g, "settings");
        c->stores = mh_xrealloc(c->stores, (c->nstores + 1) * sizeof(*c->stores));
        sc = &c->stores[c->nstores++];
        sc->name = mh_xstrdup(name);
        sc->driver = mh_xstrdup(driver);
        sc->settings = settings && config_setting_is_group(settings) ? settings : NULL;
        sc->file = file;
        sc->line = config_setting_source_line(g);
    }
}

static enum mh_status check_one(const char *path, const char *what, bool is_dir,
                                struct mh_err *err)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return MH_OK; /* reported where the file is used */
    /* A sticky directory (like /tmp) lets others add files but not replace ours. */
    if (is_dir && (st.st_mode & S_ISVTX))
        return MH_OK;
    if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0))
        return mh_err_set(err, MH_E_INVAL, path, 0,
                          "refusing %s%s: writable by users other than its owner and root "
                          "(mode %04o): whoever can write it can run code in this server; "
                          "fix with 'chmod go-w %s' (or set server.insecure_permissions = "
                          "true for development)",
                          what, is_dir ? "'s directory" : "", (unsigned)(st.st_mode & 07777),
                          path);
    return MH_OK;
}

enum mh_status mh_config_check_permissions(const char *path, const char *what,
                                           struct mh_err *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    enum mh_status rc = check_one(path, what, false, err);

    if (rc != MH_OK || !slash)
        return rc;
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    return check_one(dir, what, true, err);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool list_files(const char *dir, struct mh_config *c, struct mh_errlist *errs)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;

    if (!d) {
        mh_errlist_add(errs, MH_E_IO, dir, 0, "cannot open configuration directory: %s",
                       strerror(errno));
        return false;
    }
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        struct stat st;
        char *path;

        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
            continue;
        path = mh_xasprintf("%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (c->nfiles == cap) {
            cap = cap ? cap * 2 : 16;
            c->files = mh_xrealloc(c->files, cap * sizeof(*c->files));
        }
        c->files[c->nfiles++] = path;
    }
    closedir(d);
    if (c->nfiles == 0) {
        mh_errlist_add(errs, MH_E_NOTFOUND, dir, 0, "no *.conf files in configuration directory");
        return false;
    }
    qsort(c->files, c->nfiles, sizeof(*c->files), name_cmp);
    return true;
}

void mh_config_load(const char *dir, struct mh_config **out, struct mh_errlist *errs)
{
    struct mh_config *c = mh_xcalloc(1, sizeof(*c));
    const char *server_file = NULL;
    char absdir[PATH_MAX];
    int server_line = 0;

    /* Work with an absolute directory, so that every path derived from it stays valid
     * whatever the working directory is later. */
    if (dir[0] != '/' && realpath(dir, absdir))
        dir = absdir;
    c->dir = mh_xstrdup(dir);
    mh_config_defaults(&c->server);
    *out = c;
    {
        /* The CPUs this process may run on (taskset, a CPU-limited container), not the CPUs
         * online: more loops than cores only compete with each other. */
        cpu_set_t set;
        long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                              : sysconf(_SC_NPROCESSORS_ONLN);

        c->server.threads = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
        c->server.workers = n > 0 ? (int)(n > 512 ? 1024 : 2 * n) : 2;
    }
    if (!list_files(dir, c, errs))
        return;
    c->cfgs = mh_xcalloc(c->nfiles, sizeof(*c->cfgs));
    for (size_t i = 0; i < c->nfiles; i++) {
        config_t *cfg = &c->cfgs[i];
        const char *file = c->files[i];
        config_setting_t *root, *s;

        config_init(cfg);
        config_set_include_dir(cfg, dir);
        if (config_read_file(cfg, file) != CONFIG_TRUE) {
            if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
                mh_errlist_add(errs, MH_E_IO, file, 0, "cannot read file: %s", strerror(errno));
            else
                mh_errlist_add(errs, MH_E_INVAL,
                               config_error_file(cfg) ? config_error_file(cfg) : file,
                               config_error_line(cfg), "syntax error: %s",
                               config_error_text(cfg));
            continue;
        }
        root = config_root_setting(cfg);
        check_group(root, top_keys, "", errs);
        if ((s = config_setting_get_member(root, "server")) && config_setting_is_group(s)) {
            if (server_file) {
                SET_ERR(errs, s, "server settings are already given at %s:%d", server_file,
                        server_line);
            } else {
                server_file = file;
                server_line = config_setting_source_line(s);
                read_server(c, s, file, errs);
            }
        }
        if ((s = config_setting_get_member(root, "module")) && config_setting_is_group(s))
            read_module(c, s, file, errs);
        if ((s = config_setting_get_member(root, "stores")) && config_setting_is_list(s))
            read_stores(c, s, file, errs);
    }
    if (!c->server.insecure_permissions) {
        for (size_t i = 0; i < c->nfiles; i++) {
            struct mh_err e = {0};

            if (mh_config_check_permissions(c->files[i], "configuration file", &e) != MH_OK)
                mh_errlist_push(errs, &e);
        }
    }

    /* A module's stores must be declared somewhere in the directory. */
    for (size_t i = 0; i < c->nmodules; i++) {
        const struct mh_module_conf *m = &c->modules[i];

        for (size_t j = 0; j < m->nstores; j++) {
            const char *names[64];
            size_t n = 0, k;

            for (k = 0; k < c->nstores; k++) {
                if (strcmp(c->stores[k].name, m->stores[j]) == 0)
                    break;
                if (n < 64)
                    names[n++] = c->stores[k].name;
            }
            if (k < c->nstores)
                continue;
            {
                const char *hint = mh_config_suggest(m->stores[j], names, n);

                mh_errlist_add(errs, MH_E_NOTFOUND, m->file, m->line,
                               "module '%s' uses store '%s', which no file declares%s%s%s",
                               m->instance, m->stores[j], hint ? " (did you mean '" : "",
                               hint ? hint : "", hint ? "'?)" : "");
            }
        }
    }
    for (size_t i = 0; i < c->nmodules; i++) {
        struct mh_module_conf *m = &c->modules[i];

        if (m->path[0] != '/') {
            char *abs = mh_xasprintf("%s/%s", c->server.module_dir, m->path);

            free(m->path);
            m->path = abs;
        }
    }
}

void mh_config_free(struct mh_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nmodules; i++) {
        struct mh_module_conf *m = &c->modules[i];

        for (size_t j = 0; j < m->nroutes; j++) {
            free(m->routes[j].method);
            free(m->routes[j].path);
            free(m->routes[j].handler);
        }
        free(m->routes);
        for (size_t j = 0; j < m->nstores; j++)
            free(m->stores[j]);
        free(m->stores);
        for (size_t j = 0; j < m->nws; j++) {
            struct mh_ws_conf *w = &m->ws[j];

            free(w->path);
            free(w->on_open);
            free(w->on_message);
            free(w->on_close);
            for (size_t k = 0; k < w->nsubprotocols; k++)
                free(w->subprotocols[k]);
            free(w->subprotocols);
        }
        free(m->ws);
        free(m->name);
        free(m->instance);
        free(m->path);
    }
    free(c->modules);
    for (size_t i = 0; i < c->nstores; i++) {
        free(c->stores[i].name);
        free(c->stores[i].driver);
    }
    free(c->stores);
    if (c->cfgs) {
        for (size_t i = 0; i < c->nfiles; i++)
            config_destroy(&c->cfgs[i]);
        free(c->cfgs);
    }
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    free(c->server.host);
    free(c->server.module_dir);
    free(c->server.pid_file);
    free(c->server.channels);
    free(c->server.user);
    free(c->server.group);
    free(c->dir);
    free(c);
}
