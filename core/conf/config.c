/*
 * Reading conf.d: every file is parsed with libconfig, checked against the schema below with
 * schema.c (unknown keys with a suggestion, wrong types, ranges), then turned into struct
 * mh_config. Module
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
#include "base/sys.h"
#include "conf/config_int.h"
#include "conf/files.h"
#include "conf/schema.h"
#include "mod/router.h"

#ifndef MH_DEFAULT_MODULE_DIR
#define MH_DEFAULT_MODULE_DIR "/usr/lib/modhost/modules"
#endif

/* --- Schema --- */

#define MS_MAX (24LL * 3600 * 1000)

static const struct mh_key limits_keys[] = {
    {"max_header_bytes", MH_K_INT, NULL, 256, 1 << 20},
    {"max_body_bytes", MH_K_INT, NULL, 0, 1LL << 40},
    {"max_json_bytes", MH_K_INT, NULL, 0, 1LL << 40},
    {"max_json_depth", MH_K_INT, NULL, 1, 10000},
    {"read_timeout_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"write_timeout_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"keepalive_timeout_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"handler_timeout_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"max_request_line_bytes", MH_K_INT, NULL, 64, 1 << 20},
    {"max_headers", MH_K_INT, NULL, 1, 10000},
    {"head_timeout_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"body_timeout_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"max_connections", MH_K_INT, NULL, 1, 10000000},
    {"max_connections_per_client", MH_K_INT, NULL, 1, 10000000},
    {"max_requests_per_connection", MH_K_INT, NULL, 1, 100000000},
    {"loop_stall_ms", MH_K_INT, NULL, 0, MS_MAX},
    {"loop_stall_kill_ms", MH_K_INT, NULL, 0, MS_MAX},
    MH_KEY_END,
};

static const struct mh_key log_keys[] = {
    {"level", MH_K_STRING, NULL, 0, 0},
    {"access", MH_K_BOOL, NULL, 0, 0},
    {"access_format", MH_K_STRING, NULL, 0, 0},
    {"access_file", MH_K_STRING, NULL, 0, 0},
    MH_KEY_END,
};

static const struct mh_key admin_keys[] = {
    {"listen", MH_K_STRING, NULL, 0, 0},
    {"max_connections", MH_K_INT, NULL, 1, 10000},
    {"probe_timeout_ms", MH_K_INT, NULL, 1, 60000},
    MH_KEY_END,
};

static const struct mh_key cert_keys[] = {
    {"certificate", MH_K_STRING, NULL, 0, 0},
    {"key", MH_K_STRING, NULL, 0, 0},
    MH_KEY_END,
};

#define DAY_S (24LL * 3600)

static const struct mh_key tls_keys[] = {
    {"certificate", MH_K_STRING, NULL, 0, 0},
    {"key", MH_K_STRING, NULL, 0, 0},
    {"sni", MH_K_LIST, cert_keys, 0, 0},
    {"min_protocol", MH_K_STRING, NULL, 0, 0},
    {"ciphers", MH_K_STRING, NULL, 0, 0},
    {"ciphersuites", MH_K_STRING, NULL, 0, 0},
    {"session_tickets", MH_K_BOOL, NULL, 0, 0},
    {"ticket_key_rotate_s", MH_K_INT, NULL, 1, 7 * DAY_S},
    {"session_timeout_s", MH_K_INT, NULL, 1, 7 * DAY_S},
    MH_KEY_END,
};

static const struct mh_key listener_keys[] = {
    {"listen", MH_K_STRING, NULL, 0, 0},
    {"tls", MH_K_GROUP, tls_keys, 0, 0},
    MH_KEY_END,
};

static const struct mh_key server_keys[] = {
    {"listen", MH_K_STRING, NULL, 0, 0},
    {"threads", MH_K_INT, NULL, 0, 256},
    {"workers", MH_K_INT, NULL, 0, 1024},
    {"processes", MH_K_INT, NULL, 1, 256},
    {"crash_limit", MH_K_INT, NULL, 0, 1000000},
    {"crash_window_ms", MH_K_INT, NULL, 1, MS_MAX},
    {"worker_queue", MH_K_INT, NULL, 1, 1000000},
    {"module_dir", MH_K_STRING, NULL, 0, 0},
    {"shutdown_timeout_ms", MH_K_INT, NULL, 0, MS_MAX},
    {"reload_drain_ms", MH_K_INT, NULL, 0, MS_MAX},
    {"pid_file", MH_K_STRING, NULL, 0, 0},
    {"user", MH_K_STRING, NULL, 0, 0},
    {"group", MH_K_STRING, NULL, 0, 0},
    {"insecure_permissions", MH_K_BOOL, NULL, 0, 0},
    {"channels", MH_K_STRING, NULL, 0, 0},
    {"log", MH_K_GROUP, log_keys, 0, 0},
    {"admin", MH_K_GROUP, admin_keys, 0, 0},
    {"limits", MH_K_GROUP, limits_keys, 0, 0},
    {"listeners", MH_K_LIST, listener_keys, 0, 0},
    MH_KEY_END,
};

static const struct mh_key route_keys[] = {
    {"method", MH_K_STRING, NULL, 0, 0},  {"path", MH_K_STRING, NULL, 0, 0},
    {"handler", MH_K_STRING, NULL, 0, 0}, {"timeout_ms", MH_K_INT, NULL, 0, MS_MAX},
    {"inline", MH_K_BOOL, NULL, 0, 0},    MH_KEY_END,
};

static const struct mh_key ws_keys[] = {
    {"path", MH_K_STRING, NULL, 0, 0},
    {"on_open", MH_K_STRING, NULL, 0, 0},
    {"on_message", MH_K_STRING, NULL, 0, 0},
    {"on_close", MH_K_STRING, NULL, 0, 0},
    {"subprotocols", MH_K_STRINGS, NULL, 0, 0},
    {"max_message_bytes", MH_K_INT, NULL, 1, 1LL << 30},
    {"max_outbound_bytes", MH_K_INT, NULL, 1024, 1LL << 34},
    {"ping_interval_ms", MH_K_INT, NULL, 0, MS_MAX},
    {"idle_timeout_ms", MH_K_INT, NULL, 0, MS_MAX},
    MH_KEY_END,
};

static const struct mh_key module_keys[] = {
    {"name", MH_K_STRING, NULL, 0, 0},        {"file", MH_K_STRING, NULL, 0, 0},
    {"settings", MH_K_ANY_GROUP, NULL, 0, 0}, {"routes", MH_K_LIST, route_keys, 0, 0},
    {"stores", MH_K_STRINGS, NULL, 0, 0},     {"websockets", MH_K_LIST, ws_keys, 0, 0},
    {"instance", MH_K_STRING, NULL, 0, 0},    MH_KEY_END,
};

static const struct mh_key store_keys[] = {
    {"name", MH_K_STRING, NULL, 0, 0},
    {"driver", MH_K_STRING, NULL, 0, 0},
    {"settings", MH_K_ANY_GROUP, NULL, 0, 0},
    MH_KEY_END,
};

static const struct mh_key top_keys[] = {
    {"server", MH_K_GROUP, server_keys, 0, 0},
    {"module", MH_K_GROUP, module_keys, 0, 0},
    {"stores", MH_K_LIST, store_keys, 0, 0},
    MH_KEY_END,
};

/* The schema entry of an integer key (names are unique across the integer schemas). */
static const struct mh_key *int_key(const char *name)
{
    static const struct mh_key *const tables[] = {server_keys, limits_keys, admin_keys,
                                                  route_keys,  ws_keys,     tls_keys};

    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (const struct mh_key *k = tables[t]; k->name; k++) {
            if (k->kind == MH_K_INT && strcmp(k->name, name) == 0)
                return k;
        }
    }
    return NULL;
}

/* Reads an integer the schema check accepted; a value out of range (already reported) keeps
 * the default, so a configuration with errors never carries an invalid value. */
void mh_conf_get_ll(const config_setting_t *g, const char *name, long long *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    const struct mh_key *k = int_key(name);
    long long v;

    if (!s ||
        (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64))
        return;
    v = config_setting_get_int64(s);
    if (!k || (v >= k->min && v <= k->max))
        *out = v;
}

/* A path from a file, made absolute against the directory of the file it came from. */
char *mh_conf_resolve_path(const char *value, const char *relative_to_file)
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
    s->admin_max_connections = 16;
    s->admin_probe_timeout_ms = 1000;
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
        .loop_stall_ms = 1000,
        .loop_stall_kill_ms = 0,
    };
    s->processes = 1;
    s->crash_limit = 3;
    s->crash_window_ms = 60000;
    s->workers = 0;
    s->worker_queue = 1024;
}

/* server.listen, or server.listeners (not both). */
static void read_listen(struct mh_server_conf *s, const config_setting_t *g, const char *file,
                        struct mh_errlist *errs)
{
    const config_setting_t *sub;
    const char *v;

    if ((v = mh_schema_str(g, "listen"))) {
        char *host = NULL;
        int port;

        if (mh_config_parse_listen(v, &host, &port) != MH_OK) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "listen"),
                          "'server.listen' = \"%s\" is not HOST:PORT (e.g. \"127.0.0.1:8080\", "
                          "\"[::1]:8080\")",
                          v);
        } else {
            free(s->host);
            s->host = host;
            s->port = port;
        }
    }
    if ((sub = config_setting_get_member(g, "listeners")) && config_setting_is_list(sub)) {
        if (config_setting_get_member(g, "listen"))
            MH_SCHEMA_ERR(errs, sub,
                          "give either 'server.listen' (one plain listener) or "
                          "'server.listeners', not both");
        else
            mh_conf_read_listeners(s, sub, file, errs);
    }
}

/* Threads, workers and processes: 0 or absent keeps the defaults that follow the cores. */
static void read_counts(struct mh_server_conf *s, const config_setting_t *g)
{
    long long threads = -1, workers = -1, processes = s->processes;

    mh_conf_get_ll(g, "threads", &threads);
    if (threads > 0)
        s->threads = (int)threads; /* 0 keeps one per core */
    mh_conf_get_ll(g, "workers", &workers);
    if (workers > 0)
        s->workers = (int)workers; /* 0 keeps twice the cores */
    mh_conf_get_ll(g, "worker_queue", &s->worker_queue);
    mh_conf_get_ll(g, "processes", &processes);
    s->processes = (int)processes;
}

/* server.user and server.group, which must exist on this machine. */
static void read_identity(struct mh_server_conf *s, const config_setting_t *g,
                          struct mh_errlist *errs)
{
    const char *v;

    if ((v = mh_schema_str(g, "user"))) {
        free(s->user);
        s->user = mh_xstrdup(v);
        if (!mh_user_find(v, NULL, NULL))
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "user"),
                          "'server.user' = \"%s\": no such user", v);
    }
    if ((v = mh_schema_str(g, "group"))) {
        free(s->group);
        s->group = mh_xstrdup(v);
        if (!mh_group_find(v, NULL))
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "group"),
                          "'server.group' = \"%s\": no such group", v);
    }
}

/* The server.log group @p sub. */
static void read_log(struct mh_server_conf *s, const config_setting_t *sub, const char *file,
                     struct mh_errlist *errs)
{
    static const char *const formats[] = {"text", "combined", "json"};
    enum mh_log_level lvl;
    const char *v;

    if ((v = mh_schema_str(sub, "level"))) {
        if (mh_log_level_parse(v, &lvl) == MH_OK)
            s->log_level = (int)lvl;
        else
            MH_SCHEMA_ERR(errs, config_setting_get_member(sub, "level"),
                          "'server.log.level' = \"%s\" is not one of error, warn, info, debug", v);
    }
    mh_schema_bool(sub, "access", &s->access_log);
    if ((v = mh_schema_str(sub, "access_format"))) {
        int found = -1;

        for (int i = 0; i < 3; i++) {
            if (strcmp(v, formats[i]) == 0)
                found = i;
        }
        if (found >= 0)
            s->access_format = found;
        else
            MH_SCHEMA_ERR(errs, config_setting_get_member(sub, "access_format"),
                          "'server.log.access_format' = \"%s\" is not one of text, combined, json",
                          v);
    }
    if ((v = mh_schema_str(sub, "access_file"))) {
        free(s->access_file);
        s->access_file = mh_conf_resolve_path(v, file);
    }
}

/* The server.admin group @p sub. */
static void read_admin(struct mh_server_conf *s, const config_setting_t *sub,
                       struct mh_errlist *errs)
{
    const char *v;

    if ((v = mh_schema_str(sub, "listen"))) {
        char *host = NULL;
        int port;

        if (mh_config_parse_listen(v, &host, &port) != MH_OK) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(sub, "listen"),
                          "'server.admin.listen' = \"%s\" is not HOST:PORT (e.g. "
                          "\"127.0.0.1:9090\")",
                          v);
        } else {
            free(s->admin_host);
            s->admin_host = host;
            s->admin_port = port;
        }
    }
    mh_conf_get_ll(sub, "max_connections", &s->admin_max_connections);
    mh_conf_get_ll(sub, "probe_timeout_ms", &s->admin_probe_timeout_ms);
}

/* The server.limits group @p sub. */
static void read_limits(struct mh_limits *l, const config_setting_t *sub)
{
    mh_conf_get_ll(sub, "max_header_bytes", &l->max_header_bytes);
    mh_conf_get_ll(sub, "max_body_bytes", &l->max_body_bytes);
    mh_conf_get_ll(sub, "max_json_bytes", &l->max_json_bytes);
    mh_conf_get_ll(sub, "max_json_depth", &l->max_json_depth);
    mh_conf_get_ll(sub, "read_timeout_ms", &l->read_timeout_ms);
    mh_conf_get_ll(sub, "write_timeout_ms", &l->write_timeout_ms);
    mh_conf_get_ll(sub, "keepalive_timeout_ms", &l->keepalive_timeout_ms);
    mh_conf_get_ll(sub, "handler_timeout_ms", &l->handler_timeout_ms);
    mh_conf_get_ll(sub, "max_request_line_bytes", &l->max_request_line_bytes);
    mh_conf_get_ll(sub, "max_headers", &l->max_headers);
    mh_conf_get_ll(sub, "head_timeout_ms", &l->head_timeout_ms);
    mh_conf_get_ll(sub, "body_timeout_ms", &l->body_timeout_ms);
    mh_conf_get_ll(sub, "max_connections", &l->max_connections);
    mh_conf_get_ll(sub, "max_connections_per_client", &l->max_connections_per_client);
    mh_conf_get_ll(sub, "max_requests_per_connection", &l->max_requests_per_connection);
    mh_conf_get_ll(sub, "loop_stall_ms", &l->loop_stall_ms);
    mh_conf_get_ll(sub, "loop_stall_kill_ms", &l->loop_stall_kill_ms);
}

/* The member @p name of @p g if it is a group, else NULL (the schema check reports that). */
static const config_setting_t *subgroup(const config_setting_t *g, const char *name)
{
    const config_setting_t *sub = config_setting_get_member(g, name);

    return sub && config_setting_is_group(sub) ? sub : NULL;
}

static void read_server(struct mh_config *c, const config_setting_t *g, const char *file,
                        struct mh_errlist *errs)
{
    struct mh_server_conf *s = &c->server;
    const config_setting_t *sub;
    const char *v;

    read_listen(s, g, file, errs);
    read_counts(s, g);
    mh_conf_get_ll(g, "crash_limit", &s->crash_limit);
    mh_conf_get_ll(g, "crash_window_ms", &s->crash_window_ms);
    if ((v = mh_schema_str(g, "module_dir"))) {
        free(s->module_dir);
        s->module_dir = mh_conf_resolve_path(v, file);
    }
    mh_conf_get_ll(g, "shutdown_timeout_ms", &s->shutdown_timeout_ms);
    mh_conf_get_ll(g, "reload_drain_ms", &s->reload_drain_ms);
    mh_schema_bool(g, "insecure_permissions", &s->insecure_permissions);
    if ((v = mh_schema_str(g, "pid_file"))) {
        free(s->pid_file);
        s->pid_file = mh_conf_resolve_path(v, file);
    }
    if ((v = mh_schema_str(g, "channels"))) {
        free(s->channels);
        s->channels = mh_xstrdup(v);
        s->channels_file = mh_config_setting_file(config_setting_get_member(g, "channels"));
        s->channels_line = config_setting_source_line(config_setting_get_member(g, "channels"));
    }
    read_identity(s, g, errs);
    if ((sub = subgroup(g, "log")))
        read_log(s, sub, file, errs);
    if ((sub = subgroup(g, "admin")))
        read_admin(s, sub, errs);
    if ((sub = subgroup(g, "limits")))
        read_limits(&s->limits, sub);
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
        method = mh_schema_str(r, "method");
        path = mh_schema_str(r, "path");
        handler = mh_schema_str(r, "handler");
        for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
            if (!config_setting_get_member(r, required[k])) {
                MH_SCHEMA_ERR(errs, r, "route in module '%s' has no '%s'", m->instance,
                              required[k]);
                ok = false;
            }
        }
        if (method && mh_method_parse(method) == MH_METHOD_UNKNOWN) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(r, "method"),
                          "route method \"%s\" is not one of GET, HEAD, POST, PUT, DELETE, PATCH, "
                          "OPTIONS",
                          method);
            ok = false;
        }
        if (path && mh_router_check_template(path, &e) != MH_OK) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(r, "path"), "%s", e.msg);
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

            mh_conf_get_ll(r, "timeout_ms", &t);
            rc->timeout_ms = t;
            mh_schema_bool(r, "inline", &rc->run_inline);
        }
        rc->file = file;
        rc->line = config_setting_source_line(r);
    }
}

static char *dup_opt(const config_setting_t *g, const char *name)
{
    const char *v = mh_schema_str(g, name);

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
        path = mh_schema_str(g, "path");
        if (!path || !mh_schema_str(g, "on_message")) {
            MH_SCHEMA_ERR(errs, g,
                          "WebSocket endpoint in module '%s' needs 'path' and 'on_message'",
                          m->instance);
            continue;
        }
        if (mh_router_check_template(path, &e) != MH_OK) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "path"), "%s", e.msg);
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
        mh_conf_get_ll(g, "max_message_bytes", &w->max_message_bytes);
        mh_conf_get_ll(g, "max_outbound_bytes", &w->max_outbound_bytes);
        mh_conf_get_ll(g, "ping_interval_ms", &w->ping_interval_ms);
        mh_conf_get_ll(g, "idle_timeout_ms", &w->idle_timeout_ms);
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

/* The module's name and instance name (the name if none is given), checked; false after
 * reporting why not. */
static bool module_names(const config_setting_t *g, const char **name, const char **instance,
                         struct mh_errlist *errs)
{
    *name = mh_schema_str(g, "name");
    *instance = mh_schema_str(g, "instance");
    if (!*name) {
        if (!config_setting_get_member(g, "name"))
            MH_SCHEMA_ERR(errs, g, "module has no 'name'");
        return false;
    }
    if (!valid_module_name(*name)) {
        MH_SCHEMA_ERR(errs, config_setting_get_member(g, "name"),
                      "module name \"%s\" must match [a-z0-9_]+ (at most 64 characters)", *name);
        return false;
    }
    if (!*instance) {
        *instance = *name;
    } else if (!valid_module_name(*instance)) {
        MH_SCHEMA_ERR(errs, config_setting_get_member(g, "instance"),
                      "instance name \"%s\" must match [a-z0-9_]+ (at most 64 characters)",
                      *instance);
        return false;
    }
    return true;
}

/* Whether @p instance is enabled already (reported at @p g). */
static bool instance_taken(const struct mh_config *c, const config_setting_t *g, const char *name,
                           const char *instance, struct mh_errlist *errs)
{
    const config_setting_t *at = config_setting_get_member(g, "instance");

    for (size_t i = 0; i < c->nmodules; i++) {
        if (strcmp(c->modules[i].instance, instance) != 0)
            continue;
        if (strcmp(instance, name) == 0)
            MH_SCHEMA_ERR(errs, at ? at : config_setting_get_member(g, "name"),
                          "module '%s' is already enabled at %s:%d (to enable it again, give each "
                          "entry its own 'instance' name)",
                          name, c->modules[i].file, c->modules[i].line);
        else
            MH_SCHEMA_ERR(errs, at, "instance '%s' is already enabled at %s:%d", instance,
                          c->modules[i].file, c->modules[i].line);
        return true;
    }
    return false;
}

/* The store names of the module's 'stores' array @p stores. */
static void read_module_stores(struct mh_module_conf *m, const config_setting_t *stores)
{
    int n = config_setting_length(stores);

    m->stores = mh_xcalloc((size_t)n + 1, sizeof(*m->stores));
    for (int i = 0; i < n; i++) {
        const char *sv = config_setting_get_string_elem(stores, i);

        if (sv)
            m->stores[m->nstores++] = mh_xstrdup(sv);
    }
}

static void read_module(struct mh_config *c, const config_setting_t *g, const char *file,
                        struct mh_errlist *errs)
{
    const char *name, *instance;
    const char *so = mh_schema_str(g, "file");
    const config_setting_t *routes = config_setting_get_member(g, "routes");
    const config_setting_t *settings = config_setting_get_member(g, "settings");
    const config_setting_t *stores = config_setting_get_member(g, "stores");
    struct mh_module_conf *m;

    if (!module_names(g, &name, &instance, errs) || instance_taken(c, g, name, instance, errs))
        return;
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
    if (stores && config_setting_is_array(stores))
        read_module_stores(m, stores);
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
        name = mh_schema_str(g, "name");
        driver = mh_schema_str(g, "driver");
        if (!name || !driver) {
            if (!config_setting_get_member(g, "name") || !config_setting_get_member(g, "driver"))
                MH_SCHEMA_ERR(errs, g, "store needs a 'name' and a 'driver'");
            continue;
        }
        if (!valid_module_name(name)) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "name"),
                          "store name \"%s\" must match [a-z0-9_]+ (at most 64 characters)", name);
            continue;
        }
        for (size_t j = 0; j < c->nstores; j++) {
            if (strcmp(c->stores[j].name, name) == 0) {
                MH_SCHEMA_ERR(errs, config_setting_get_member(g, "name"),
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

/* Loops and workers per CPU this process may run on (taskset, a CPU-limited container), not
 * per CPU online: more loops than cores only compete with each other. */
static void default_counts(struct mh_server_conf *s)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                          : sysconf(_SC_NPROCESSORS_ONLN);

    s->threads = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    s->workers = n > 0 ? (int)(n > 512 ? 1024 : 2 * n) : 2;
}

/* Where the server group was given: only one file may. */
struct server_at {
    const char *file;
    int line;
};

/* Reads conf.d file @p i of @p c (its config_t is c->cfgs[i]). */
static void read_file(struct mh_config *c, size_t i, const char *dir, struct server_at *server,
                      struct mh_errlist *errs)
{
    config_t *cfg = &c->cfgs[i];
    const char *file = c->files[i];
    config_setting_t *root, *s;

    config_init(cfg);
    config_set_include_dir(cfg, dir);
    if (config_read_file(cfg, file) != CONFIG_TRUE) {
        if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
            mh_errlist_add(errs, MH_E_IO, file, 0, "cannot read file: %s", MH_STRERROR(errno));
        else
            mh_errlist_add(errs, MH_E_INVAL, config_error_file(cfg) ? config_error_file(cfg) : file,
                           config_error_line(cfg), "syntax error: %s", config_error_text(cfg));
        return;
    }
    root = config_root_setting(cfg);
    mh_schema_check(root, top_keys, "", errs);
    if ((s = config_setting_get_member(root, "server")) && config_setting_is_group(s)) {
        if (server->file) {
            MH_SCHEMA_ERR(errs, s, "server settings are already given at %s:%d", server->file,
                          server->line);
        } else {
            server->file = file;
            server->line = config_setting_source_line(s);
            read_server(c, s, file, errs);
        }
    }
    if ((s = config_setting_get_member(root, "module")) && config_setting_is_group(s))
        read_module(c, s, file, errs);
    if ((s = config_setting_get_member(root, "stores")) && config_setting_is_list(s))
        read_stores(c, s, file, errs);
}

/* The files that hold keys and configuration: not writable or readable by others. */
static void check_permissions(struct mh_config *c, struct mh_errlist *errs)
{
    mh_conf_check_tls_files(&c->server, errs);
    for (size_t i = 0; i < c->nfiles; i++) {
        struct mh_err e = {0};

        if (mh_config_check_permissions(c->files[i], "configuration file", &e) != MH_OK)
            mh_errlist_push(errs, &e);
    }
}

/* Store @p name of module @p m must be declared somewhere in the directory. */
static void check_store_declared(const struct mh_config *c, const struct mh_module_conf *m,
                                 const char *name, struct mh_errlist *errs)
{
    const char *names[64], *hint;
    size_t n = 0;

    for (size_t k = 0; k < c->nstores; k++) {
        if (strcmp(c->stores[k].name, name) == 0)
            return;
        if (n < 64)
            names[n++] = c->stores[k].name;
    }
    hint = mh_config_suggest(name, names, n);
    mh_errlist_add(errs, MH_E_NOTFOUND, m->file, m->line,
                   "module '%s' uses store '%s', which no file declares%s%s%s", m->instance, name,
                   hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
}

void mh_config_load(const char *dir, struct mh_config **out, struct mh_errlist *errs)
{
    struct mh_config *c = mh_xcalloc(1, sizeof(*c));
    struct server_at server = {NULL, 0};
    char absdir[PATH_MAX];

    /* Work with an absolute directory, so that every path derived from it stays valid
     * whatever the working directory is later. */
    if (dir[0] != '/' && realpath(dir, absdir))
        dir = absdir;
    c->dir = mh_xstrdup(dir);
    mh_config_defaults(&c->server);
    *out = c;
    default_counts(&c->server);
    if (!mh_config_list_files(dir, &c->files, &c->nfiles, errs))
        return;
    c->cfgs = mh_xcalloc(c->nfiles, sizeof(*c->cfgs));
    for (size_t i = 0; i < c->nfiles; i++)
        read_file(c, i, dir, &server, errs);
    if (c->server.nlisteners == 0) {
        /* `listen` (or its default): one plain listener. */
        c->server.listeners = mh_xcalloc(1, sizeof(*c->server.listeners));
        c->server.listeners[0].host = mh_xstrdup(c->server.host);
        c->server.listeners[0].port = c->server.port;
        c->server.listeners[0].file = server.file;
        c->server.listeners[0].line = server.line;
        c->server.nlisteners = 1;
    }
    if (!c->server.insecure_permissions)
        check_permissions(c, errs);
    for (size_t i = 0; i < c->nmodules; i++) {
        for (size_t j = 0; j < c->modules[i].nstores; j++)
            check_store_declared(c, &c->modules[i], c->modules[i].stores[j], errs);
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
    mh_conf_free_listeners(&c->server);
    free(c->server.admin_host);
    free(c->server.access_file);
    free(c->server.module_dir);
    free(c->server.pid_file);
    free(c->server.channels);
    free(c->server.user);
    free(c->server.group);
    free(c->dir);
    free(c);
}
