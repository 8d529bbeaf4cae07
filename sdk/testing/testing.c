/*
 * The testing host (modhost/testing.h): the whole SDK function table over fake requests,
 * in-memory stores, fake WebSocket connections and a recorded log, all on the test's thread.
 * The strict JSON check, UTF-8 validation, status texts and allocation helpers are the core's
 * own (core/base/: json.c, utf8.c, err.c, mem.c).
 */
#include "modhost/testing.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <libconfig.h>

#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/utf8.h"

/* --- Types --- */

struct pair {
    char *name;
    char *value;
};

struct pairs {
    struct pair *items;
    size_t n;
};

struct mh_conf {
    config_t cfg;
    char *base_dir; /* relative paths resolve here; NULL: as given */
    char **paths;   /* strings handed out by conf_path */
    size_t npaths;
};

struct mh_host {
    struct mh_testing *t;
    char name[72];
    char error[512];
};

struct record {
    unsigned char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
    uint64_t version;
};

struct mh_store {
    char *name;
    pthread_mutex_t mu;
    struct record *recs; /* sorted by key bytes */
    size_t n, cap;
    uint64_t version;
    /* A driver store: */
    const struct mh_store_driver *driver;
    struct mh_conf *conf;
    void *db;
};

struct task {
    struct task *next;
    mh_task_fn work;
    mh_task_done_fn done;    /* host task */
    mh_req_done_fn req_done; /* request task */
    struct mh_req *req;
    void *arg;
};

struct defer {
    struct defer *next;
    void (*fn)(void *);
    void *arg;
};

struct chunk {
    struct chunk *next;
    max_align_t data[];
};

struct mh_req {
    struct mh_testing *t;
    struct mh_req *next; /* the host's list */
    uint64_t id;
    char *method, *path, *query;
    struct pairs params, headers;
    unsigned char *body;
    size_t body_len;
    struct chunk *chunks;
    struct defer *defers;
    struct json_object *json; /* the parsed request body */
    bool json_parsed, called, replied;
    atomic_bool cancelled;
    int pending; /* request tasks not yet done */
    int status;
    struct pairs resp_headers;
    char *resp_body;
    size_t resp_len;
    struct json_object *resp_json;
    bool resp_json_parsed;
};

struct message {
    char *channel; /* published messages only */
    char *data;
    size_t len;
    bool is_binary;
};

struct messages {
    struct message *items;
    size_t n;
};

struct mh_ws {
    struct mh_testing *t;
    struct mh_ws *next;
    uint64_t id;
    mh_ws_open_fn on_open;
    mh_ws_message_fn on_message;
    mh_ws_close_fn on_close;
    bool open, closing, closed;
    atomic_int refs;
    void *data;
    struct pairs params;
    char **channels;
    size_t nchannels;
    struct messages sent;
    int close_code;
    char close_reason[128];
};

struct mh_testing {
    struct mh_module_def def; /* fields beyond the module's size read as zero */
    struct mh_host host;
    struct mh_conf *settings;
    bool started, initialized;
    void *state;
    struct mh_store **stores;
    size_t nstores;
    pthread_mutex_t mu; /* log, tasks, published, stores list */
    char *log;
    size_t log_len, log_cap;
    size_t misuses;
    struct task *tasks, *tasks_tail;
    bool on_worker; /* a blocking handler or task work is running */
    struct mh_req *reqs;
    struct mh_ws *wss;
    struct messages published;
    uint64_t next_id;
    size_t max_json_bytes;
    int max_json_depth;
    char *conf_dir;
    char error[1024];
};

static const struct mh_api testing_api;
static atomic_uint_fast64_t clock_now = 1000000000u;
static _Thread_local char store_err[512];

/* --- Small helpers --- */

static void pairs_add(struct pairs *ps, const char *name, const char *value)
{
    ps->items = mh_xrealloc(ps->items, (ps->n + 1) * sizeof(*ps->items));
    ps->items[ps->n].name = mh_xstrdup(name);
    ps->items[ps->n].value = mh_xstrdup(value);
    ps->n++;
}

/* The first value of @p name, compared with @p cmp (strcmp or strcasecmp), or NULL. */
static const char *pairs_get(const struct pairs *ps, const char *name,
                             int (*cmp)(const char *, const char *))
{
    for (size_t i = 0; i < ps->n; i++) {
        if (cmp(ps->items[i].name, name) == 0)
            return ps->items[i].value;
    }
    return NULL;
}

static void pairs_set(struct pairs *ps, const char *name, const char *value)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->items[i].name, name) == 0) {
            free(ps->items[i].value);
            ps->items[i].value = mh_xstrdup(value);
            return;
        }
    }
    pairs_add(ps, name, value);
}

static void pairs_free(struct pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->items[i].name);
        free(ps->items[i].value);
    }
    free(ps->items);
    ps->items = NULL;
    ps->n = 0;
}

static void messages_add(struct messages *ms, const char *channel, bool is_binary,
                         const void *data, size_t len)
{
    struct message *m;

    ms->items = mh_xrealloc(ms->items, (ms->n + 1) * sizeof(*ms->items));
    m = &ms->items[ms->n++];
    m->channel = channel ? mh_xstrdup(channel) : NULL;
    m->data = mh_xstrndup(data ? data : "", data ? len : 0);
    m->len = len;
    m->is_binary = is_binary;
}

static void messages_free(struct messages *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->items[i].channel);
        free(ms->items[i].data);
    }
    free(ms->items);
}

static const char *error_set(struct mh_testing *t, const char *fmt, ...) MH_PRINTF(2, 3);
static const char *error_set(struct mh_testing *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->error, sizeof(t->error), fmt, ap);
    va_end(ap);
    return t->error;
}

/* --- The log --- */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void log_line(struct mh_testing *t, enum mh_log_level level, const char *text)
{
    const char *lv = (unsigned)level < 4 ? level_names[level] : "?";
    size_t need = strlen(lv) + strlen(text) + 3;

    pthread_mutex_lock(&t->mu);
    if (t->log_len + need > t->log_cap) {
        t->log_cap = (t->log_len + need) * 2;
        t->log = mh_xrealloc(t->log, t->log_cap);
    }
    t->log_len += (size_t)snprintf(t->log + t->log_len, t->log_cap - t->log_len, "%s %s\n", lv,
                                   text);
    pthread_mutex_unlock(&t->mu);
}

static void log_vline(struct mh_testing *t, enum mh_log_level level, const char *fmt, va_list ap)
    MH_VPRINTF(3);
static void log_vline(struct mh_testing *t, enum mh_log_level level, const char *fmt, va_list ap)
{
    char *text = mh_xvasprintf(fmt, ap);

    log_line(t, level, text);
    free(text);
}

/* Records a call that broke an SDK rule; the server answers those with a 500. */
static void misuse(struct mh_testing *t, const char *fmt, ...) MH_PRINTF(2, 3);
static void misuse(struct mh_testing *t, const char *fmt, ...)
{
    char *what, *line;
    va_list ap;

    va_start(ap, fmt);
    what = mh_xvasprintf(fmt, ap);
    va_end(ap);
    line = mh_xcalloc(1, strlen(what) + 16);
    sprintf(line, "misuse: %s", what);
    log_line(t, MH_LOG_ERROR, line);
    pthread_mutex_lock(&t->mu);
    t->misuses++;
    pthread_mutex_unlock(&t->mu);
    free(line);
    free(what);
}

/* --- Settings --- */

static struct mh_conf *conf_new(void)
{
    struct mh_conf *c = mh_xcalloc(1, sizeof(*c));

    config_init(&c->cfg);
    return c;
}

static void conf_free(struct mh_conf *c)
{
    if (!c)
        return;
    config_destroy(&c->cfg);
    for (size_t i = 0; i < c->npaths; i++)
        free(c->paths[i]);
    free(c->paths);
    free(c->base_dir);
    free(c);
}

/* Parses @p text as a settings group. @return MH_OK or MH_E_INVAL with the reason in t. */
static enum mh_status conf_parse(struct mh_testing *t, const char *text, struct mh_conf **out)
{
    struct mh_conf *c = conf_new();

    if (text && config_read_string(&c->cfg, text) != CONFIG_TRUE) {
        error_set(t, "settings, line %d: %s", config_error_line(&c->cfg),
                  config_error_text(&c->cfg));
        conf_free(c);
        return MH_E_INVAL;
    }
    if (t->conf_dir)
        c->base_dir = mh_xstrdup(t->conf_dir);
    *out = c;
    return MH_OK;
}

static const config_setting_t *conf_find(const struct mh_conf *conf, const char *path)
{
    if (!conf || !path)
        return NULL;
    return config_lookup(&conf->cfg, path);
}

/* The setting at @p path if it has one of the libconfig @p types (0-terminated). */
static enum mh_status conf_typed(const struct mh_conf *conf, const char *path, const int *types,
                                 const config_setting_t **out)
{
    const config_setting_t *s = conf_find(conf, path);

    if (!s)
        return MH_E_NOTFOUND;
    for (; *types; types++) {
        if (config_setting_type(s) == *types) {
            *out = s;
            return MH_OK;
        }
    }
    return MH_E_INVAL;
}

static const int string_types[] = {CONFIG_TYPE_STRING, 0};
static const int int_types[] = {CONFIG_TYPE_INT, CONFIG_TYPE_INT64, 0};
static const int bool_types[] = {CONFIG_TYPE_BOOL, 0};
static const int float_types[] = {CONFIG_TYPE_FLOAT, CONFIG_TYPE_INT, CONFIG_TYPE_INT64, 0};

static enum mh_status api_conf_string(const struct mh_conf *conf, const char *path,
                                      const char **out)
{
    const config_setting_t *s = NULL;
    enum mh_status rc = conf_typed(conf, path, string_types, &s);

    if (rc == MH_OK)
        *out = config_setting_get_string(s);
    return rc;
}

static enum mh_status api_conf_int(const struct mh_conf *conf, const char *path, long long *out)
{
    const config_setting_t *s = NULL;
    enum mh_status rc = conf_typed(conf, path, int_types, &s);

    if (rc == MH_OK)
        *out = config_setting_get_int64(s);
    return rc;
}

static enum mh_status api_conf_bool(const struct mh_conf *conf, const char *path, int *out)
{
    const config_setting_t *s = NULL;
    enum mh_status rc = conf_typed(conf, path, bool_types, &s);

    if (rc == MH_OK)
        *out = config_setting_get_bool(s);
    return rc;
}

static enum mh_status api_conf_float(const struct mh_conf *conf, const char *path, double *out)
{
    const config_setting_t *s = NULL;
    enum mh_status rc = conf_typed(conf, path, float_types, &s);

    if (rc == MH_OK)
        *out = config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                           : (double)config_setting_get_int64(s);
    return rc;
}

static enum mh_status api_conf_path(const struct mh_conf *conf, const char *path,
                                    const char **out)
{
    struct mh_conf *c = (struct mh_conf *)(uintptr_t)conf;
    const char *v = NULL;
    enum mh_status rc = api_conf_string(conf, path, &v);
    char *full;

    if (rc != MH_OK)
        return rc;
    if (v[0] == '/' || !c->base_dir || !v[0]) {
        *out = v;
        return MH_OK;
    }
    full = mh_xcalloc(1, strlen(c->base_dir) + strlen(v) + 2);
    sprintf(full, "%s/%s", c->base_dir, v);
    c->paths = mh_xrealloc(c->paths, (c->npaths + 1) * sizeof(*c->paths));
    c->paths[c->npaths++] = full;
    *out = full;
    return MH_OK;
}

static const char *setting_type_name(enum mh_setting_type type)
{
    switch (type) {
    case MH_SETTING_STRING:
        return "a string";
    case MH_SETTING_INT:
        return "an integer";
    case MH_SETTING_BOOL:
        return "a boolean";
    case MH_SETTING_FLOAT:
        return "a number";
    }
    return "?";
}

static const int *setting_types(enum mh_setting_type type)
{
    switch (type) {
    case MH_SETTING_STRING:
        return string_types;
    case MH_SETTING_INT:
        return int_types;
    case MH_SETTING_BOOL:
        return bool_types;
    case MH_SETTING_FLOAT:
        return float_types;
    }
    return string_types;
}

/* Checks @p conf against @p defs (NULL: no check), as the server does before init. */
static enum mh_status check_settings(struct mh_testing *t, const struct mh_setting_def *defs,
                                     const struct mh_conf *conf, const char *kind,
                                     const char *owner)
{
    const config_setting_t *root = config_root_setting(&conf->cfg);

    if (!defs)
        return MH_OK;
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const struct mh_setting_def *d = defs;
        const config_setting_t *typed = NULL;

        while (d->name && strcmp(d->name, config_setting_name(s)) != 0)
            d++;
        if (!d->name) {
            error_set(t, "unknown setting '%s' for %s '%s'", config_setting_name(s), kind, owner);
            return MH_E_INVAL;
        }
        if (conf_typed(conf, d->name, setting_types(d->type), &typed) != MH_OK) {
            error_set(t, "setting '%s' of %s '%s' must be %s", d->name, kind, owner,
                      setting_type_name(d->type));
            return MH_E_INVAL;
        }
    }
    return MH_OK;
}

/* --- The module --- */

struct mh_testing *mh_testing_new(const struct mh_module_def *def)
{
    struct mh_testing *t;

    if (!def || def->magic != MH_MODULE_MAGIC || def->abi_major != MH_ABI_MAJOR ||
        def->abi_minor > MH_ABI_MINOR || !def->api || !def->name) {
        fprintf(stderr, "modhost testing: not a module definition of SDK %d.x (up to %d.%d); "
                        "pass what the module's mh_module_v1() returns\n",
                MH_ABI_MAJOR, MH_ABI_MAJOR, MH_ABI_MINOR);
        return NULL;
    }
    t = mh_xcalloc(1, sizeof(*t));
    memcpy(&t->def, def, def->size < sizeof(t->def) ? def->size : sizeof(t->def));
    *t->def.api = &testing_api;
    t->host.t = t;
    snprintf(t->host.name, sizeof(t->host.name), "%s", def->name);
    t->settings = conf_new();
    pthread_mutex_init(&t->mu, NULL);
    t->max_json_bytes = 1 << 20;
    t->max_json_depth = 64;
    t->next_id = 1;
    t->log = mh_xcalloc(1, 1);
    return t;
}

static void store_free(struct mh_store *s);
static void req_destroy(struct mh_req *req);
static void ws_destroy(struct mh_ws *ws);

void mh_testing_free(struct mh_testing *t)
{
    if (!t)
        return;
    while (t->wss) {
        struct mh_ws *ws = t->wss;

        t->wss = ws->next;
        ws_destroy(ws);
    }
    mh_testing_run_tasks(t);
    if (t->initialized && t->def.fini)
        t->def.fini(&t->host, t->state);
    while (t->reqs) {
        struct mh_req *r = t->reqs;

        t->reqs = r->next;
        req_destroy(r);
    }
    for (size_t i = t->nstores; i-- > 0;)
        store_free(t->stores[i]);
    free(t->stores);
    conf_free(t->settings);
    messages_free(&t->published);
    pthread_mutex_destroy(&t->mu);
    free(t->conf_dir);
    free(t->log);
    free(t);
}

enum mh_status mh_testing_settings(struct mh_testing *t, const char *text)
{
    struct mh_conf *c = NULL;
    enum mh_status rc;

    if (t->started)
        return MH_E_STATE;
    rc = conf_parse(t, text, &c);
    if (rc != MH_OK)
        return rc;
    conf_free(t->settings);
    t->settings = c;
    return MH_OK;
}

static enum mh_status set_one(struct mh_testing *t, const char *name, int type,
                              config_setting_t **out)
{
    config_setting_t *root;

    if (t->started)
        return MH_E_STATE;
    root = config_root_setting(&t->settings->cfg);
    if (config_setting_get_member(root, name))
        config_setting_remove(root, name);
    *out = config_setting_add(root, name, type);
    if (!*out) {
        error_set(t, "'%s' is not a setting name", name);
        return MH_E_INVAL;
    }
    return MH_OK;
}

enum mh_status mh_testing_set_string(struct mh_testing *t, const char *name, const char *value)
{
    config_setting_t *s = NULL;
    enum mh_status rc = set_one(t, name, CONFIG_TYPE_STRING, &s);

    return rc == MH_OK ? (config_setting_set_string(s, value) ? MH_OK : MH_E_INVAL) : rc;
}

enum mh_status mh_testing_set_int(struct mh_testing *t, const char *name, long long value)
{
    config_setting_t *s = NULL;
    enum mh_status rc = set_one(t, name, CONFIG_TYPE_INT64, &s);

    return rc == MH_OK ? (config_setting_set_int64(s, value) ? MH_OK : MH_E_INVAL) : rc;
}

enum mh_status mh_testing_set_bool(struct mh_testing *t, const char *name, bool value)
{
    config_setting_t *s = NULL;
    enum mh_status rc = set_one(t, name, CONFIG_TYPE_BOOL, &s);

    return rc == MH_OK ? (config_setting_set_bool(s, value) ? MH_OK : MH_E_INVAL) : rc;
}

enum mh_status mh_testing_set_float(struct mh_testing *t, const char *name, double value)
{
    config_setting_t *s = NULL;
    enum mh_status rc = set_one(t, name, CONFIG_TYPE_FLOAT, &s);

    return rc == MH_OK ? (config_setting_set_float(s, value) ? MH_OK : MH_E_INVAL) : rc;
}

void mh_testing_conf_dir(struct mh_testing *t, const char *dir)
{
    free(t->conf_dir);
    t->conf_dir = dir ? mh_xstrdup(dir) : NULL;
    free(t->settings->base_dir);
    t->settings->base_dir = dir ? mh_xstrdup(dir) : NULL;
}

void mh_testing_instance(struct mh_testing *t, const char *name)
{
    snprintf(t->host.name, sizeof(t->host.name), "%s", name);
}

void mh_testing_json_limits(struct mh_testing *t, size_t max_bytes, int max_depth)
{
    t->max_json_bytes = max_bytes;
    t->max_json_depth = max_depth;
}

static bool valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

static enum mh_status store_add(struct mh_testing *t, const char *name, struct mh_store **out)
{
    struct mh_store *s;

    if (t->started)
        return MH_E_STATE;
    if (!valid_name(name) || mh_testing_store(t, name)) {
        error_set(t, "store name '%s' must match [a-z0-9_]+ and be new", name ? name : "");
        return MH_E_INVAL;
    }
    s = mh_xcalloc(1, sizeof(*s));
    s->name = mh_xstrdup(name);
    pthread_mutex_init(&s->mu, NULL);
    t->stores = mh_xrealloc(t->stores, (t->nstores + 1) * sizeof(*t->stores));
    t->stores[t->nstores++] = s;
    *out = s;
    return MH_OK;
}

enum mh_status mh_testing_add_store(struct mh_testing *t, const char *name)
{
    struct mh_store *s = NULL;

    return store_add(t, name, &s);
}

enum mh_status mh_testing_add_driver_store(struct mh_testing *t, const char *name,
                                           const char *driver, const char *settings)
{
    const struct mh_store_driver *d = t->def.drivers;
    struct mh_conf *conf = NULL;
    struct mh_store *s = NULL;
    enum mh_status rc;

    while (d && d->name && strcmp(d->name, driver) != 0)
        d++;
    if (!d || !d->name) {
        error_set(t, "module '%s' provides no store driver '%s'", t->def.name, driver);
        return MH_E_NOTFOUND;
    }
    rc = conf_parse(t, settings, &conf);
    if (rc != MH_OK)
        return rc;
    rc = store_add(t, name, &s);
    if (rc != MH_OK) {
        conf_free(conf);
        return rc;
    }
    s->driver = d;
    s->conf = conf;
    return MH_OK;
}

enum mh_status mh_testing_start(struct mh_testing *t)
{
    enum mh_status rc;

    if (t->started)
        return MH_E_STATE;
    t->started = true;
    t->error[0] = '\0';
    rc = check_settings(t, t->def.settings, t->settings, "module", t->def.name);
    if (rc != MH_OK)
        return rc;
    for (size_t i = 0; i < t->nstores; i++) {
        struct mh_store *s = t->stores[i];
        const struct mh_setting_def *defs =
            s->driver && s->driver->size >= offsetof(struct mh_store_driver, settings) +
                                                sizeof(void *)
                ? s->driver->settings
                : NULL;

        if (!s->driver)
            continue;
        rc = check_settings(t, defs, s->conf, "store", s->name);
        if (rc != MH_OK)
            return rc;
        store_err[0] = '\0';
        rc = s->driver->open(&t->host, s->conf, &s->db);
        if (rc != MH_OK) {
            error_set(t, "store '%s': driver '%s' cannot open it: %s", s->name, s->driver->name,
                      store_err[0] ? store_err : mh_status_str(rc));
            s->driver = NULL; /* nothing to close */
            return rc;
        }
    }
    if (t->def.init) {
        rc = t->def.init(&t->host, t->settings, &t->state);
        mh_testing_run_tasks(t);
        if (rc != MH_OK) {
            error_set(t, "init failed: %s",
                      t->host.error[0] ? t->host.error : mh_status_str(rc));
            return rc;
        }
    }
    t->initialized = true;
    return MH_OK;
}

const char *mh_testing_error(const struct mh_testing *t)
{
    return t->error;
}

struct mh_store *mh_testing_store(struct mh_testing *t, const char *name)
{
    if (t->nstores == 0)
        return NULL;
    if (!name)
        return t->stores[0];
    for (size_t i = 0; i < t->nstores; i++) {
        if (strcmp(t->stores[i]->name, name) == 0)
            return t->stores[i];
    }
    return NULL;
}

struct mh_host *mh_testing_host(struct mh_testing *t)
{
    return &t->host;
}

void *mh_testing_state(const struct mh_testing *t)
{
    return t->state;
}

const char *mh_testing_log(const struct mh_testing *t)
{
    return t->log;
}

bool mh_testing_log_has(const struct mh_testing *t, const char *text)
{
    return strstr(t->log, text) != NULL;
}

size_t mh_testing_misuses(const struct mh_testing *t)
{
    return t->misuses;
}

void mh_testing_log_clear(struct mh_testing *t)
{
    pthread_mutex_lock(&t->mu);
    t->log_len = 0;
    t->log[0] = '\0';
    pthread_mutex_unlock(&t->mu);
}

void mh_testing_clock_advance(struct mh_testing *t, uint64_t ns)
{
    (void)t;
    atomic_fetch_add(&clock_now, ns);
}

/* --- Tasks --- */

static void task_push(struct mh_testing *t, struct task *k)
{
    pthread_mutex_lock(&t->mu);
    if (t->tasks_tail)
        t->tasks_tail->next = k;
    else
        t->tasks = k;
    t->tasks_tail = k;
    pthread_mutex_unlock(&t->mu);
}

size_t mh_testing_run_tasks(struct mh_testing *t)
{
    size_t n = 0;

    for (;;) {
        struct task *k;

        pthread_mutex_lock(&t->mu);
        k = t->tasks;
        if (k) {
            t->tasks = k->next;
            if (!t->tasks)
                t->tasks_tail = NULL;
        }
        pthread_mutex_unlock(&t->mu);
        if (!k)
            return n;
        if (k->req) {
            enum mh_status st = atomic_load(&k->req->cancelled) ? MH_E_CANCELLED : MH_OK;

            if (st == MH_OK) {
                t->on_worker = true;
                k->work(k->arg);
                t->on_worker = false;
                st = atomic_load(&k->req->cancelled) ? MH_E_CANCELLED : MH_OK;
            }
            k->req->pending--;
            k->req_done(k->req, k->arg, st);
        } else {
            t->on_worker = true;
            k->work(k->arg);
            t->on_worker = false;
            k->done(k->arg, MH_OK);
        }
        free(k);
        n++;
    }
}

static enum mh_status api_task_submit(struct mh_host *host, mh_task_fn work, mh_task_done_fn done,
                                      void *arg)
{
    struct task *k;

    if (!work || !done)
        return MH_E_INVAL;
    if (host->t->on_worker) {
        misuse(host->t, "mh_task_submit from a worker thread (a blocking handler or task)");
        return MH_E_STATE;
    }
    k = mh_xcalloc(1, sizeof(*k));
    k->work = work;
    k->done = done;
    k->arg = arg;
    task_push(host->t, k);
    return MH_OK;
}

static enum mh_status api_req_task(struct mh_req *req, mh_task_fn work, mh_req_done_fn done,
                                   void *arg)
{
    struct task *k;

    if (!work || !done)
        return MH_E_INVAL;
    if (req->replied || req->t->on_worker) {
        misuse(req->t, "mh_req_task %s", req->replied ? "after a reply" : "from a worker thread");
        return MH_E_STATE;
    }
    k = mh_xcalloc(1, sizeof(*k));
    k->work = work;
    k->req_done = done;
    k->req = req;
    k->arg = arg;
    req->pending++;
    task_push(req->t, k);
    return MH_OK;
}

/* --- Requests --- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into a new string; '+' is a space if @p plus. */
static char *decode(const char *s, size_t n, bool plus)
{
    char *out = mh_xcalloc(1, n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    return out;
}

struct mh_req *mh_testing_req(struct mh_testing *t, const char *method, const char *target)
{
    struct mh_req *req = mh_xcalloc(1, sizeof(*req));
    const char *q = strchr(target, '?');

    req->t = t;
    req->id = t->next_id++;
    req->method = mh_xstrdup(method);
    req->path = q ? mh_xstrndup(target, (size_t)(q - target)) : mh_xstrdup(target);
    req->query = mh_xstrdup(q ? q + 1 : "");
    req->resp_body = mh_xcalloc(1, 1);
    req->next = t->reqs;
    t->reqs = req;
    return req;
}

void mh_testing_req_param(struct mh_req *req, const char *name, const char *value)
{
    pairs_set(&req->params, name, value);
}

enum mh_status mh_testing_req_route(struct mh_req *req, const char *tmpl)
{
    const char *p = req->path, *s = tmpl;
    struct pairs found = {0};

    while (*p && *s) {
        const char *pe = strchr(p + 1, '/'), *se = strchr(s + 1, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p), slen = se ? (size_t)(se - s) : strlen(s);

        if (s[0] == '/' && s[1] == '{' && s[slen - 1] == '}' && p[0] == '/' && plen > 1) {
            char *name = mh_xstrndup(s + 2, slen - 3), *value = decode(p + 1, plen - 1, false);

            pairs_add(&found, name, value);
            free(name);
            free(value);
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            break;
        }
        p += plen;
        s += slen;
    }
    if (*p || *s) {
        pairs_free(&found);
        return MH_E_NOTFOUND;
    }
    for (size_t i = 0; i < found.n; i++)
        pairs_set(&req->params, found.items[i].name, found.items[i].value);
    pairs_free(&found);
    return MH_OK;
}

void mh_testing_req_header(struct mh_req *req, const char *name, const char *value)
{
    pairs_add(&req->headers, name, value);
}

void mh_testing_req_body(struct mh_req *req, const void *data, size_t len)
{
    free(req->body);
    req->body = mh_xcalloc(1, len + 1);
    if (len)
        memcpy(req->body, data, len);
    req->body_len = len;
}

void mh_testing_req_json(struct mh_req *req, const char *json)
{
    mh_testing_req_body(req, json, strlen(json));
    mh_testing_req_header(req, "Content-Type", "application/json");
}

void mh_testing_req_cancel(struct mh_req *req)
{
    atomic_store(&req->cancelled, true);
}

static void run_defers(struct mh_req *req)
{
    while (req->defers) {
        struct defer *d = req->defers;

        req->defers = d->next;
        d->fn(d->arg);
        free(d);
    }
}

static void req_destroy(struct mh_req *req)
{
    run_defers(req);
    while (req->chunks) {
        struct chunk *c = req->chunks;

        req->chunks = c->next;
        free(c);
    }
    json_object_put(req->json);
    json_object_put(req->resp_json);
    pairs_free(&req->params);
    pairs_free(&req->headers);
    pairs_free(&req->resp_headers);
    free(req->method);
    free(req->path);
    free(req->query);
    free(req->body);
    free(req->resp_body);
    free(req);
}

void mh_testing_req_free(struct mh_req *req)
{
    if (!req)
        return;
    for (struct mh_req **p = &req->t->reqs; *p; p = &(*p)->next) {
        if (*p == req) {
            *p = req->next;
            break;
        }
    }
    req_destroy(req);
}

static const char *api_req_method(const struct mh_req *req)
{
    return req->method;
}

static const char *api_req_path(const struct mh_req *req)
{
    return req->path;
}

static const char *api_req_param(const struct mh_req *req, const char *name)
{
    return pairs_get(&req->params, name, strcmp);
}

static void *api_req_alloc(struct mh_req *req, size_t size)
{
    struct chunk *c = mh_xcalloc(1, sizeof(*c) + size);

    c->next = req->chunks;
    req->chunks = c;
    return c->data;
}

static const char *api_req_query(struct mh_req *req, const char *name)
{
    const char *p = req->query;

    while (*p) {
        const char *end = strchr(p, '&'), *eq;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *key;

        eq = memchr(p, '=', n);
        key = decode(p, eq ? (size_t)(eq - p) : n, true);
        if (strcmp(key, name) == 0) {
            char *v = eq ? decode(eq + 1, n - (size_t)(eq - p) - 1, true) : mh_xstrdup("");
            char *copy = api_req_alloc(req, strlen(v) + 1);

            strcpy(copy, v);
            free(v);
            free(key);
            return copy;
        }
        free(key);
        p += n;
        if (*p == '&')
            p++;
    }
    return NULL;
}

static const char *api_req_header(const struct mh_req *req, const char *name)
{
    return pairs_get(&req->headers, name, strcasecmp);
}

static enum mh_status api_req_headers(const struct mh_req *req, mh_header_fn fn, void *arg)
{
    for (size_t i = 0; i < req->headers.n; i++) {
        if (fn(req->headers.items[i].name, req->headers.items[i].value, arg))
            break;
    }
    return MH_OK;
}

static const void *api_req_body(struct mh_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body_len ? req->body : NULL;
}

static enum mh_status api_req_json(struct mh_req *req, struct json_object **out,
                                   const char **detail)
{
    struct mh_testing *t = req->t;
    struct json_tokener *tok;
    size_t at = 0;
    const char *why = NULL;
    enum mh_json_verdict v;
    char *msg;

    if (req->json_parsed) {
        *out = req->json;
        return MH_OK;
    }
    if (req->body_len > t->max_json_bytes) {
        if (detail) {
            msg = api_req_alloc(req, 128);
            snprintf(msg, 128, "JSON body of %zu bytes exceeds the limit of %zu", req->body_len,
                     t->max_json_bytes);
            *detail = msg;
        }
        return MH_E_LIMIT;
    }
    if (req->body_len == 0) {
        if (detail)
            *detail = "request body is empty; a JSON document was expected";
        return MH_E_INVAL;
    }
    v = mh_json_check((const char *)req->body, req->body_len, t->max_json_depth, &at, &why);
    if (v != MH_JSON_VALID) {
        if (detail) {
            msg = api_req_alloc(req, 256);
            snprintf(msg, 256, "invalid JSON: %s at offset %zu", why, at);
            *detail = msg;
        }
        return v == MH_JSON_TOO_DEEP ? MH_E_LIMIT : MH_E_INVAL;
    }
    tok = json_tokener_new_ex(t->max_json_depth + 1);
    if (!tok)
        return MH_E_NOMEM;
    req->json = json_tokener_parse_ex(tok, (const char *)req->body, (int)req->body_len);
    if (json_tokener_get_error(tok) == json_tokener_continue)
        req->json = json_tokener_parse_ex(tok, " ", 1);
    json_tokener_free(tok);
    req->json_parsed = true;
    *out = req->json;
    return MH_OK;
}

static enum mh_status api_req_defer(struct mh_req *req, void (*fn)(void *), void *arg)
{
    struct defer *d = mh_xcalloc(1, sizeof(*d));

    d->fn = fn;
    d->arg = arg;
    d->next = req->defers;
    req->defers = d;
    return MH_OK;
}

static uint64_t api_req_id(const struct mh_req *req)
{
    return req->id;
}

/* --- Replies --- */

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s <= ' ' || *s >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return false;
    }
    return true;
}

static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        if ((*s < ' ' && *s != '\t') || *s == 127)
            return false;
    }
    return true;
}

static const char *reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } table[] = {
        {200, "OK"},         {201, "Created"},      {202, "Accepted"},
        {204, "No Content"}, {400, "Bad Request"},  {401, "Unauthorized"},
        {403, "Forbidden"},  {404, "Not Found"},    {405, "Method Not Allowed"},
        {409, "Conflict"},   {412, "Precondition Failed"}, {413, "Content Too Large"},
        {422, "Unprocessable Content"}, {429, "Too Many Requests"},
        {500, "Internal Server Error"}, {503, "Service Unavailable"}, {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].status == status)
            return table[i].text;
    }
    return "Unknown";
}

/* The checks every reply call makes; logs misuse. @return MH_OK to go on. */
static enum mh_status reply_check(struct mh_req *req, const char *call, int status,
                                  const char *content_type)
{
    if (atomic_load(&req->cancelled)) {
        misuse(req->t, "%s after the request was cancelled (check mh_req_is_cancelled)", call);
        return MH_E_CANCELLED;
    }
    if (req->replied) {
        misuse(req->t, "%s(status %d): a second reply (the first was %d)", call, status,
               req->status);
        return MH_E_STATE;
    }
    if (status < 200 || status > 599) {
        misuse(req->t, "%s: status %d is outside 200..599", call, status);
        return MH_E_INVAL;
    }
    if (content_type && !is_field_value(content_type)) {
        misuse(req->t, "%s: the content type holds a control character", call);
        return MH_E_INVAL;
    }
    return MH_OK;
}

/* Records the reply (no checks). */
static void reply_set(struct mh_req *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    req->replied = true;
    req->status = status;
    if (content_type)
        pairs_add(&req->resp_headers, "Content-Type", content_type);
    free(req->resp_body);
    req->resp_body = mh_xcalloc(1, len + 1);
    if (len)
        memcpy(req->resp_body, body, len);
    req->resp_len = len;
}

static enum mh_status api_resp_header(struct mh_req *req, const char *name, const char *value)
{
    if (req->replied) {
        misuse(req->t, "mh_resp_header(%s) after the reply", name ? name : "NULL");
        return MH_E_STATE;
    }
    if (!name || !value || !is_token(name) || !is_field_value(value) ||
        strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Connection") == 0) {
        misuse(req->t, "mh_resp_header(%s): %s", name ? name : "NULL",
               !name || !value            ? "NULL argument"
               : !is_token(name)          ? "the name is not an HTTP token"
               : !is_field_value(value)   ? "the value holds CR, LF or another control character"
                                          : "the core sets this header");
        return MH_E_INVAL;
    }
    pairs_add(&req->resp_headers, name, value);
    return MH_OK;
}

static enum mh_status api_reply(struct mh_req *req, int status, const char *content_type,
                                const void *body, size_t len)
{
    enum mh_status rc = reply_check(req, "mh_reply", status, content_type);

    if (rc == MH_OK)
        reply_set(req, status, content_type, body, len);
    return rc;
}

static enum mh_status api_reply_json(struct mh_req *req, int status, struct json_object *body)
{
    enum mh_status rc = reply_check(req, "mh_reply_json", status, NULL);

    if (rc == MH_OK) {
        size_t len = 0;
        const char *s = json_object_to_json_string_length(
            body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

        reply_set(req, status, "application/json", s, len);
    }
    json_object_put(body);
    return rc;
}

/* A problem+json body; @p detail may be NULL. */
static void reply_problem_set(struct mh_req *req, int status, const char *type,
                              const char *detail)
{
    struct json_object *o = json_object_new_object();
    size_t len = 0;
    const char *s;

    json_object_object_add(o, "type", json_object_new_string(type ? type : "about:blank"));
    json_object_object_add(o, "title", json_object_new_string(reason(status)));
    json_object_object_add(o, "status", json_object_new_int(status));
    if (detail)
        json_object_object_add(o, "detail", json_object_new_string(detail));
    s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    reply_set(req, status, "application/problem+json", s, len);
    json_object_put(o);
}

static enum mh_status api_reply_problemv(struct mh_req *req, int status, const char *type,
                                         const char *fmt, va_list ap) MH_VPRINTF(4);
static enum mh_status api_reply_problemv(struct mh_req *req, int status, const char *type,
                                         const char *fmt, va_list ap)
{
    enum mh_status rc = reply_check(req, "mh_reply_problem", status, NULL);
    char *detail;

    if (rc != MH_OK)
        return rc;
    detail = fmt ? mh_xvasprintf(fmt, ap) : NULL;
    reply_problem_set(req, status, type, detail);
    free(detail);
    return MH_OK;
}

static enum mh_status api_reply_problem(struct mh_req *req, int status, const char *type,
                                        const char *fmt, ...) MH_PRINTF(4, 5);
static enum mh_status api_reply_problem(struct mh_req *req, int status, const char *type,
                                        const char *fmt, ...)
{
    enum mh_status rc;
    va_list ap;

    va_start(ap, fmt);
    rc = api_reply_problemv(req, status, type, fmt, ap);
    va_end(ap);
    return rc;
}

static enum mh_status api_req_json_body(struct mh_req *req, struct json_object **out)
{
    const char *detail = NULL;
    enum mh_status rc;

    if (req->replied)
        return MH_E_STATE;
    rc = api_req_json(req, out, &detail);
    if (rc == MH_E_INVAL || rc == MH_E_LIMIT)
        reply_problem_set(req, rc == MH_E_LIMIT ? 413 : 400, NULL, detail);
    return rc;
}

static int status_http(enum mh_status rc)
{
    switch (rc) {
    case MH_E_INVAL:
        return 400;
    case MH_E_NOTFOUND:
        return 404;
    case MH_E_CONFLICT:
        return 409;
    case MH_E_LIMIT:
        return 413;
    case MH_E_UNAVAILABLE:
        return 503;
    case MH_E_TIMEOUT:
        return 504;
    default:
        return 500;
    }
}

/* After the handler and its tasks: answer for it as the server does. */
static void settle(struct mh_req *req, const char *handler, enum mh_status rc)
{
    if (req->replied || (rc == MH_PENDING && req->pending > 0))
        return;
    if (rc == MH_OK || rc == MH_PENDING) {
        misuse(req->t, "handler '%s' returned %s without a reply", handler,
               rc == MH_OK ? "MH_OK" : "MH_PENDING");
        reply_problem_set(req, 500, NULL, "the handler sent no reply");
    } else {
        if (status_http(rc) >= 500)
            log_line(req->t, MH_LOG_ERROR, "handler failed");
        reply_problem_set(req, status_http(rc), NULL, mh_status_str(rc));
    }
}

enum mh_status mh_testing_call(struct mh_req *req, const char *handler)
{
    struct mh_testing *t = req->t;
    const struct mh_handler_def *h = t->def.handlers;
    enum mh_status rc;

    while (h && h->name && strcmp(h->name, handler) != 0)
        h++;
    if (!h || !h->name) {
        error_set(t, "module '%s' has no handler '%s'", t->def.name, handler);
        return MH_E_NOTFOUND;
    }
    if (!t->initialized || req->called) {
        error_set(t, "%s", !t->initialized ? "the module is not started" : "request already used");
        return MH_E_STATE;
    }
    req->called = true;
    t->on_worker = (h->flags & MH_HANDLER_BLOCKING) != 0;
    rc = h->fn(req, t->state);
    t->on_worker = false;
    mh_testing_run_tasks(t);
    settle(req, handler, rc);
    run_defers(req);
    return rc;
}

int mh_testing_status(const struct mh_req *req)
{
    return req->status;
}

const char *mh_testing_header(const struct mh_req *req, const char *name)
{
    return pairs_get(&req->resp_headers, name, strcasecmp);
}

const char *mh_testing_body(const struct mh_req *req, size_t *len)
{
    if (len)
        *len = req->resp_len;
    return req->resp_body;
}

struct json_object *mh_testing_json(struct mh_req *req)
{
    if (!req->resp_json_parsed) {
        req->resp_json = json_tokener_parse(req->resp_body);
        req->resp_json_parsed = true;
    }
    return req->resp_json;
}

struct json_object *mh_testing_json_get(struct mh_req *req, const char *key)
{
    struct json_object *v = NULL;

    return json_object_object_get_ex(mh_testing_json(req), key, &v) ? v : NULL;
}

const char *mh_testing_json_str(struct mh_req *req, const char *key)
{
    struct json_object *v = mh_testing_json_get(req, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int api_req_cancelled(const struct mh_req *req)
{
    return atomic_load(&((struct mh_req *)(uintptr_t)req)->cancelled);
}

static bool api_req_is_cancelled(const struct mh_req *req)
{
    return api_req_cancelled(req) != 0;
}

/* --- Logging and errors --- */

static int api_log_enabled(enum mh_log_level level)
{
    (void)level;
    return 1; /* every line is recorded */
}

static bool api_log_is_enabled(enum mh_log_level level)
{
    return api_log_enabled(level) != 0;
}

static void api_logv(const struct mh_host *host, enum mh_log_level level, const char *fmt,
                     va_list ap) MH_VPRINTF(3);
static void api_logv(const struct mh_host *host, enum mh_log_level level, const char *fmt,
                     va_list ap)
{
    log_vline(host->t, level, fmt, ap);
}

static void api_log(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
    MH_PRINTF(3, 4);
static void api_log(const struct mh_host *host, enum mh_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_logv(host, level, fmt, ap);
    va_end(ap);
}

static void api_req_logv(const struct mh_req *req, enum mh_log_level level, const char *fmt,
                         va_list ap) MH_VPRINTF(3);
static void api_req_logv(const struct mh_req *req, enum mh_log_level level, const char *fmt,
                         va_list ap)
{
    char *text = mh_xvasprintf(fmt, ap);
    char *line = mh_xcalloc(1, strlen(text) + 32);

    sprintf(line, "%s req=%llu", text, (unsigned long long)req->id);
    log_line(req->t, level, line);
    free(line);
    free(text);
}

static void api_req_log(const struct mh_req *req, enum mh_log_level level, const char *fmt, ...)
    MH_PRINTF(3, 4);
static void api_req_log(const struct mh_req *req, enum mh_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_req_logv(req, level, fmt, ap);
    va_end(ap);
}

static enum mh_status api_host_errorv(struct mh_host *host, const char *fmt, va_list ap)
    MH_VPRINTF(2);
static enum mh_status api_host_errorv(struct mh_host *host, const char *fmt, va_list ap)
{
    vsnprintf(host->error, sizeof(host->error), fmt, ap);
    return MH_OK;
}

static enum mh_status api_host_error(struct mh_host *host, const char *fmt, ...) MH_PRINTF(2, 3);
static enum mh_status api_host_error(struct mh_host *host, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_host_errorv(host, fmt, ap);
    va_end(ap);
    return MH_OK;
}

static const char *api_host_name(const struct mh_host *host)
{
    return host->name;
}

static uint64_t api_clock_ns(void)
{
    return (uint64_t)atomic_load(&clock_now);
}

/* --- Stores --- */

static const char *api_store_error(void)
{
    return store_err;
}

static void api_store_set_errorv(const char *fmt, va_list ap) MH_VPRINTF(1);
static void api_store_set_errorv(const char *fmt, va_list ap)
{
    vsnprintf(store_err, sizeof(store_err), fmt, ap);
}

static void api_store_set_error(const char *fmt, ...) MH_PRINTF(1, 2);
static void api_store_set_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    api_store_set_errorv(fmt, ap);
    va_end(ap);
}

static void api_value_free(struct mh_value *v)
{
    if (!v)
        return;
    free(v->data);
    v->data = NULL;
    v->len = 0;
    v->version = 0;
}

static void store_free(struct mh_store *s)
{
    if (s->driver && s->driver->close && s->db)
        s->driver->close(s->db);
    for (size_t i = 0; i < s->n; i++) {
        free(s->recs[i].key);
        free(s->recs[i].val);
    }
    free(s->recs);
    conf_free(s->conf);
    pthread_mutex_destroy(&s->mu);
    free(s->name);
    free(s);
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

/* The index of the first record whose key is >= key (> if @p after). */
static size_t store_seek(const struct mh_store *s, const void *key, size_t klen, bool after)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(s->recs[mid].key, s->recs[mid].klen, key, klen);

        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct record *store_find(struct mh_store *s, const void *key, size_t klen, size_t *at)
{
    *at = store_seek(s, key, klen, false);
    if (*at < s->n && key_cmp(s->recs[*at].key, s->recs[*at].klen, key, klen) == 0)
        return &s->recs[*at];
    return NULL;
}

static enum mh_status key_check(const void *key, size_t klen)
{
    store_err[0] = '\0';
    if (!key || klen == 0 || klen > MH_STORE_MAX_KEY) {
        api_store_set_error("keys are 1..%d bytes, not %zu", MH_STORE_MAX_KEY, klen);
        return MH_E_INVAL;
    }
    return MH_OK;
}

static enum mh_status api_store_get(struct mh_store *st, const void *key, size_t klen,
                                    struct mh_value *out)
{
    enum mh_status rc = key_check(key, klen);
    struct record *r;
    size_t at;

    memset(out, 0, sizeof(*out));
    if (rc != MH_OK)
        return rc;
    if (st->driver) {
        rc = st->driver->get(st->db, key, klen, out);
        if (rc == MH_E_NOTFOUND && !store_err[0])
            api_store_set_error("no such key");
        return rc;
    }
    pthread_mutex_lock(&st->mu);
    r = store_find(st, key, klen, &at);
    if (r) {
        out->data = mh_xstrndup((const char *)r->val, r->vlen);
        out->len = r->vlen;
        out->version = r->version;
    }
    pthread_mutex_unlock(&st->mu);
    if (!r) {
        api_store_set_error("no such key");
        return MH_E_NOTFOUND;
    }
    return MH_OK;
}

static enum mh_status api_store_put(struct mh_store *st, const void *key, size_t klen,
                                    const void *val, size_t vlen, uint64_t expect,
                                    uint64_t *version, int *created)
{
    enum mh_status rc = key_check(key, klen);
    struct record *r;
    uint64_t v = 0;
    int made = 0;
    size_t at;

    if (rc != MH_OK)
        return rc;
    if (st->driver) {
        rc = st->driver->put(st->db, key, klen, val, vlen, expect, &v, &made);
    } else {
        pthread_mutex_lock(&st->mu);
        r = store_find(st, key, klen, &at);
        if ((r && expect == MH_STORE_ABSENT) ||
            (!r && expect != MH_STORE_ANY && expect != MH_STORE_ABSENT) ||
            (r && expect != MH_STORE_ANY && expect != MH_STORE_EXISTS && expect != r->version)) {
            rc = MH_E_CONFLICT;
        } else {
            if (!r) {
                if (st->n == st->cap) {
                    st->cap = st->cap ? st->cap * 2 : 16;
                    st->recs = mh_xrealloc(st->recs, st->cap * sizeof(*st->recs));
                }
                memmove(&st->recs[at + 1], &st->recs[at], (st->n - at) * sizeof(*st->recs));
                st->n++;
                r = &st->recs[at];
                r->key = (unsigned char *)mh_xstrndup(key, klen);
                r->klen = klen;
                r->val = NULL;
                made = 1;
            }
            free(r->val);
            r->val = (unsigned char *)mh_xstrndup(val ? val : "", val ? vlen : 0);
            r->vlen = vlen;
            r->version = v = ++st->version;
        }
        pthread_mutex_unlock(&st->mu);
        if (rc == MH_E_CONFLICT)
            api_store_set_error("the expected version does not hold");
    }
    if (rc == MH_OK) {
        if (version)
            *version = v;
        if (created)
            *created = made;
    }
    return rc;
}

static enum mh_status api_store_delete(struct mh_store *st, const void *key, size_t klen,
                                       uint64_t expect)
{
    enum mh_status rc = key_check(key, klen);
    struct record *r;
    size_t at;

    if (rc != MH_OK)
        return rc;
    if (st->driver)
        return st->driver->del(st->db, key, klen, expect);
    pthread_mutex_lock(&st->mu);
    r = store_find(st, key, klen, &at);
    if (!r) {
        rc = MH_E_NOTFOUND;
    } else if (expect != MH_STORE_ANY && expect != MH_STORE_EXISTS && expect != r->version) {
        rc = MH_E_CONFLICT;
    } else {
        free(r->key);
        free(r->val);
        memmove(&st->recs[at], &st->recs[at + 1], (st->n - at - 1) * sizeof(*st->recs));
        st->n--;
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != MH_OK)
        api_store_set_error("%s", rc == MH_E_NOTFOUND ? "no such key"
                                                      : "the expected version does not hold");
    return rc;
}

static enum mh_status api_store_scan(struct mh_store *st, const void *prefix, size_t plen,
                                     const void *after, size_t alen, size_t limit, mh_scan_fn fn,
                                     void *arg)
{
    struct record *copy;
    size_t n = 0, i;

    store_err[0] = '\0';
    if (plen > MH_STORE_MAX_KEY || alen > MH_STORE_MAX_KEY || !fn) {
        api_store_set_error("prefix and cursor are at most %d bytes", MH_STORE_MAX_KEY);
        return MH_E_INVAL;
    }
    if (st->driver) {
        if (!st->driver->scan) {
            api_store_set_error("driver '%s' cannot scan", st->driver->name);
            return MH_E_INVAL;
        }
        return st->driver->scan(st->db, prefix, plen, after, alen, limit, fn, arg);
    }
    /* Copied under the lock, delivered without it: the callback may call the store. */
    pthread_mutex_lock(&st->mu);
    i = alen > 0 && key_cmp(after, alen, prefix, plen) >= 0 ? store_seek(st, after, alen, true)
                                                            : store_seek(st, prefix, plen, false);
    copy = mh_xcalloc(st->n - i + 1, sizeof(*copy));
    for (; i < st->n && n < limit; i++) {
        const struct record *r = &st->recs[i];

        if (r->klen < plen || (plen && memcmp(r->key, prefix, plen) != 0))
            break;
        copy[n].key = (unsigned char *)mh_xstrndup((const char *)r->key, r->klen);
        copy[n].klen = r->klen;
        copy[n].val = (unsigned char *)mh_xstrndup((const char *)r->val, r->vlen);
        copy[n].vlen = r->vlen;
        copy[n].version = r->version;
        n++;
    }
    pthread_mutex_unlock(&st->mu);
    for (i = 0; i < n; i++) {
        if (fn(copy[i].key, copy[i].klen, copy[i].val, copy[i].vlen, copy[i].version, arg))
            break;
    }
    for (i = 0; i < n; i++) {
        free(copy[i].key);
        free(copy[i].val);
    }
    free(copy);
    return MH_OK;
}

static struct mh_store *api_store_find(struct mh_host *host, const char *name)
{
    return mh_testing_store(host->t, name);
}

/* --- WebSocket --- */

static bool is_utf8(const void *data, size_t len)
{
    return len == 0 || mh_utf8_valid(data, len);
}

static const struct mh_ws_hook_def *find_hook(struct mh_testing *t, const char *name, int which)
{
    for (const struct mh_ws_hook_def *h = t->def.ws_hooks; name && h && h->name; h++) {
        if (strcmp(h->name, name) == 0 &&
            ((which == 0 && h->on_open) || (which == 1 && h->on_message) ||
             (which == 2 && h->on_close)))
            return h;
    }
    return NULL;
}

struct mh_ws *mh_testing_ws(struct mh_testing *t, const char *on_open, const char *on_message,
                            const char *on_close)
{
    const char *names[3] = {on_open, on_message, on_close};
    const struct mh_ws_hook_def *hooks[3];
    struct mh_ws *ws;

    for (int k = 0; k < 3; k++) {
        hooks[k] = find_hook(t, names[k], k);
        if (!hooks[k] && (names[k] || k == 1)) {
            error_set(t, "module '%s' has no %s hook '%s'", t->def.name,
                      k == 0 ? "on_open" : k == 1 ? "on_message" : "on_close",
                      names[k] ? names[k] : "(none)");
            return NULL;
        }
    }
    ws = mh_xcalloc(1, sizeof(*ws));
    ws->t = t;
    ws->id = t->next_id++;
    ws->on_open = hooks[0] ? hooks[0]->on_open : NULL;
    ws->on_message = hooks[1]->on_message;
    ws->on_close = hooks[2] ? hooks[2]->on_close : NULL;
    ws->next = t->wss;
    t->wss = ws;
    return ws;
}

static void ws_leave_all(struct mh_ws *ws)
{
    for (size_t i = 0; i < ws->nchannels; i++)
        free(ws->channels[i]);
    free(ws->channels);
    ws->channels = NULL;
    ws->nchannels = 0;
}

/* Runs on_close once, with @p code; the connection leaves its channels. */
static void ws_end(struct mh_ws *ws, int code)
{
    if (!ws->open || ws->closed)
        return;
    ws->open = false;
    ws->closed = true;
    ws_leave_all(ws);
    if (ws->on_close)
        ws->on_close(ws, code, ws->t->state);
    mh_testing_run_tasks(ws->t);
}

/* After a hook: a close the module asked for completes. */
static void ws_settle(struct mh_ws *ws)
{
    mh_testing_run_tasks(ws->t);
    if (ws->closing)
        ws_end(ws, ws->close_code);
}

enum mh_status mh_testing_ws_connect(struct mh_ws *ws, struct mh_req *upgrade)
{
    enum mh_status rc = MH_OK;

    if (ws->open || ws->closed || !ws->t->initialized)
        return MH_E_STATE;
    for (size_t i = 0; i < upgrade->params.n; i++)
        pairs_set(&ws->params, upgrade->params.items[i].name, upgrade->params.items[i].value);
    ws->open = true; /* hooks may join and send during on_open */
    upgrade->called = true;
    if (ws->on_open)
        rc = ws->on_open(ws, upgrade, ws->t->state);
    if (rc != MH_OK || upgrade->replied) {
        ws->open = false;
        ws_leave_all(ws);
        mh_testing_run_tasks(ws->t);
        settle(upgrade, "on_open", rc);
        return rc;
    }
    ws_settle(ws);
    return MH_OK;
}

bool mh_testing_ws_is_open(const struct mh_ws *ws)
{
    return ws->open && !ws->closing;
}

enum mh_status mh_testing_ws_receive(struct mh_ws *ws, bool is_binary, const void *data,
                                     size_t len)
{
    if (!mh_testing_ws_is_open(ws))
        return MH_E_STATE;
    if (!is_binary && !is_utf8(data, len))
        return MH_E_INVAL;
    ws->on_message(ws, is_binary, data, len, ws->t->state);
    ws_settle(ws);
    return MH_OK;
}

void mh_testing_ws_disconnect(struct mh_ws *ws, int code)
{
    ws_end(ws, code);
}

size_t mh_testing_ws_sent_count(const struct mh_ws *ws)
{
    return ws->sent.n;
}

const char *mh_testing_ws_sent(const struct mh_ws *ws, size_t i, size_t *len, bool *is_binary)
{
    if (i >= ws->sent.n)
        return NULL;
    if (len)
        *len = ws->sent.items[i].len;
    if (is_binary)
        *is_binary = ws->sent.items[i].is_binary;
    return ws->sent.items[i].data;
}

bool mh_testing_ws_joined(const struct mh_ws *ws, const char *channel)
{
    for (size_t i = 0; i < ws->nchannels; i++) {
        if (strcmp(ws->channels[i], channel) == 0)
            return true;
    }
    return false;
}

int mh_testing_ws_close_code(const struct mh_ws *ws)
{
    return ws->close_code;
}

const char *mh_testing_ws_close_reason(const struct mh_ws *ws)
{
    return ws->close_reason;
}

static void ws_destroy(struct mh_ws *ws)
{
    ws_end(ws, MH_WS_GOING_AWAY);
    if (atomic_load(&ws->refs) > 0)
        misuse(ws->t, "WebSocket %llu freed while the module holds %d reference(s) (mh_ws_ref "
                      "without mh_ws_unref)",
               (unsigned long long)ws->id, atomic_load(&ws->refs));
    pairs_free(&ws->params);
    messages_free(&ws->sent);
    free(ws);
}

void mh_testing_ws_free(struct mh_ws *ws)
{
    if (!ws)
        return;
    for (struct mh_ws **p = &ws->t->wss; *p; p = &(*p)->next) {
        if (*p == ws) {
            *p = ws->next;
            break;
        }
    }
    ws_destroy(ws);
}

size_t mh_testing_published_count(const struct mh_testing *t)
{
    return t->published.n;
}

const char *mh_testing_published(const struct mh_testing *t, size_t i, const char **channel,
                                 size_t *len)
{
    if (i >= t->published.n)
        return NULL;
    if (channel)
        *channel = t->published.items[i].channel;
    if (len)
        *len = t->published.items[i].len;
    return t->published.items[i].data;
}

static enum mh_status api_ws_send(struct mh_ws *ws, int is_binary, const void *data, size_t len)
{
    if (!mh_testing_ws_is_open(ws))
        return MH_E_CANCELLED;
    if (!is_binary && !is_utf8(data, len))
        return MH_E_INVAL;
    messages_add(&ws->sent, NULL, is_binary != 0, data, len);
    return MH_OK;
}

static enum mh_status api_ws_close(struct mh_ws *ws, int code, const char *why)
{
    if (!mh_testing_ws_is_open(ws))
        return MH_E_CANCELLED;
    if (code < 1000 || code > 4999 || (why && strlen(why) > 123)) {
        misuse(ws->t, "mh_ws_close(%d): the code must be 1000..4999 and the reason at most 123 "
                      "bytes",
               code);
        return MH_E_INVAL;
    }
    ws->closing = true;
    ws->close_code = code;
    snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", why ? why : "");
    return MH_OK;
}

static void api_ws_ref(struct mh_ws *ws)
{
    atomic_fetch_add(&ws->refs, 1);
}

static void api_ws_unref(struct mh_ws *ws)
{
    if (atomic_fetch_sub(&ws->refs, 1) <= 0)
        misuse(ws->t, "mh_ws_unref without a matching mh_ws_ref");
}

static void api_ws_set_data(struct mh_ws *ws, void *data)
{
    ws->data = data;
}

static void *api_ws_data(const struct mh_ws *ws)
{
    return ws->data;
}

static uint64_t api_ws_id(const struct mh_ws *ws)
{
    return ws->id;
}

static const char *api_ws_param(const struct mh_ws *ws, const char *name)
{
    return pairs_get(&ws->params, name, strcmp);
}

static bool channel_ok(const char *channel)
{
    return channel && channel[0] && strlen(channel) <= 255;
}

static enum mh_status api_ws_join(struct mh_ws *ws, const char *channel)
{
    if (!channel_ok(channel))
        return MH_E_INVAL;
    if (!mh_testing_ws_is_open(ws))
        return MH_E_CANCELLED;
    if (ws->t->on_worker) {
        misuse(ws->t, "mh_ws_join from a worker thread");
        return MH_E_STATE;
    }
    if (!mh_testing_ws_joined(ws, channel)) {
        ws->channels = mh_xrealloc(ws->channels, (ws->nchannels + 1) * sizeof(*ws->channels));
        ws->channels[ws->nchannels++] = mh_xstrdup(channel);
    }
    return MH_OK;
}

static enum mh_status api_ws_leave(struct mh_ws *ws, const char *channel)
{
    if (!channel_ok(channel))
        return MH_E_INVAL;
    if (!mh_testing_ws_is_open(ws))
        return MH_E_CANCELLED;
    for (size_t i = 0; i < ws->nchannels; i++) {
        if (strcmp(ws->channels[i], channel) == 0) {
            free(ws->channels[i]);
            ws->channels[i] = ws->channels[--ws->nchannels];
            break;
        }
    }
    return MH_OK;
}

static enum mh_status api_ws_publish(struct mh_host *host, const char *channel, int is_binary,
                                     const void *data, size_t len)
{
    struct mh_testing *t = host->t;

    if (!channel_ok(channel) || (!is_binary && !is_utf8(data, len)))
        return MH_E_INVAL;
    pthread_mutex_lock(&t->mu);
    messages_add(&t->published, channel, is_binary != 0, data, len);
    for (struct mh_ws *ws = t->wss; ws; ws = ws->next) {
        if (mh_testing_ws_is_open(ws) && mh_testing_ws_joined(ws, channel))
            messages_add(&ws->sent, NULL, is_binary != 0, data, len);
    }
    pthread_mutex_unlock(&t->mu);
    return MH_OK;
}

/* --- The table --- */

static const struct mh_api testing_api = {
    .size = sizeof(struct mh_api),
    .req_method = api_req_method,
    .req_path = api_req_path,
    .req_param = api_req_param,
    .req_query = api_req_query,
    .req_header = api_req_header,
    .req_headers = api_req_headers,
    .req_body = api_req_body,
    .req_json = api_req_json,
    .req_alloc = api_req_alloc,
    .req_defer = api_req_defer,
    .req_id = api_req_id,
    .resp_header = api_resp_header,
    .reply = api_reply,
    .reply_json = api_reply_json,
    .reply_problem = api_reply_problem,
    .log_enabled = api_log_enabled,
    .log = api_log,
    .req_log = api_req_log,
    .host_error = api_host_error,
    .conf_string = api_conf_string,
    .conf_int = api_conf_int,
    .conf_bool = api_conf_bool,
    .conf_float = api_conf_float,
    .strerror = mh_status_str,
    .req_cancelled = api_req_cancelled,
    .task_submit = api_task_submit,
    .req_task = api_req_task,
    .store_find = api_store_find,
    .store_get = api_store_get,
    .store_put = api_store_put,
    .store_delete = api_store_delete,
    .store_scan = api_store_scan,
    .store_error = api_store_error,
    .store_set_error = api_store_set_error,
    .value_free = api_value_free,
    .ws_send = api_ws_send,
    .ws_close = api_ws_close,
    .ws_ref = api_ws_ref,
    .ws_unref = api_ws_unref,
    .ws_set_data = api_ws_set_data,
    .ws_data = api_ws_data,
    .ws_id = api_ws_id,
    .ws_param = api_ws_param,
    .ws_join = api_ws_join,
    .ws_leave = api_ws_leave,
    .ws_publish = api_ws_publish,
    .conf_path = api_conf_path,
    .reply_problemv = api_reply_problemv,
    .logv = api_logv,
    .req_logv = api_req_logv,
    .host_errorv = api_host_errorv,
    .store_set_errorv = api_store_set_errorv,
    .is_utf8 = is_utf8,
    .clock_ns = api_clock_ns,
    .req_json_body = api_req_json_body,
    .req_is_cancelled = api_req_is_cancelled,
    .log_is_enabled = api_log_is_enabled,
    .host_name = api_host_name,
};
