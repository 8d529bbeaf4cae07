/*
 * The testing host (modhost/testing.h): the module under test, its settings, the recorded log,
 * tasks, and the function table the module gets. Requests, stores and WebSocket connections
 * are in testing_req.c, testing_store.c and testing_ws.c. The strict JSON check, UTF-8
 * validation, status texts and allocation helpers are the core's own (core/base/).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "base/err.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "testing_int.h"

static atomic_uint_fast64_t clock_now = 1000000000u;
_Thread_local char mh_th_store_err[512];

/* --- Small helpers --- */

void mh_th_pairs_add(struct pairs *ps, const char *name, const char *value)
{
    ps->items = mh_xrealloc(ps->items, (ps->n + 1) * sizeof(*ps->items));
    ps->items[ps->n].name = mh_xstrdup(name);
    ps->items[ps->n].value = mh_xstrdup(value);
    ps->n++;
}

/* The first value of @p name, compared with @p cmp (strcmp or strcasecmp), or NULL. */
const char *mh_th_pairs_get(const struct pairs *ps, const char *name,
                            int (*cmp)(const char *, const char *))
{
    for (size_t i = 0; i < ps->n; i++) {
        if (cmp(ps->items[i].name, name) == 0)
            return ps->items[i].value;
    }
    return NULL;
}

void mh_th_pairs_set(struct pairs *ps, const char *name, const char *value)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->items[i].name, name) == 0) {
            free(ps->items[i].value);
            ps->items[i].value = mh_xstrdup(value);
            return;
        }
    }
    mh_th_pairs_add(ps, name, value);
}

void mh_th_pairs_free(struct pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->items[i].name);
        free(ps->items[i].value);
    }
    free(ps->items);
    ps->items = NULL;
    ps->n = 0;
}

void mh_th_messages_add(struct messages *ms, const char *channel, bool is_binary, const void *data,
                        size_t len)
{
    struct message *m;

    ms->items = mh_xrealloc(ms->items, (ms->n + 1) * sizeof(*ms->items));
    m = &ms->items[ms->n++];
    m->channel = channel ? mh_xstrdup(channel) : NULL;
    m->data = mh_xstrndup(data ? data : "", data ? len : 0);
    m->len = len;
    m->is_binary = is_binary;
}

void mh_th_messages_free(struct messages *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->items[i].channel);
        free(ms->items[i].data);
    }
    free(ms->items);
}

const char *mh_th_error_set(struct mh_testing *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(t->error, sizeof(t->error), fmt, ap);
    va_end(ap);
    return t->error;
}

/* --- The log --- */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void mh_th_log_line(struct mh_testing *t, enum mh_log_level level, const char *text)
{
    const char *lv = (unsigned)level < 4 ? level_names[level] : "?";
    size_t need = strlen(lv) + strlen(text) + 3;

    pthread_mutex_lock(&t->mu);
    if (t->log_len + need > t->log_cap) {
        t->log_cap = (t->log_len + need) * 2;
        t->log = mh_xrealloc(t->log, t->log_cap);
    }
    t->log_len +=
        (size_t)snprintf(t->log + t->log_len, t->log_cap - t->log_len, "%s %s\n", lv, text);
    pthread_mutex_unlock(&t->mu);
}

static void log_vline(struct mh_testing *t, enum mh_log_level level, const char *fmt, va_list ap)
    MH_VPRINTF(3);
static void log_vline(struct mh_testing *t, enum mh_log_level level, const char *fmt, va_list ap)
{
    char *text = mh_xvasprintf(fmt, ap);

    mh_th_log_line(t, level, text);
    free(text);
}

/* Records a call that broke an SDK rule; the server answers those with a 500. */
void mh_th_misuse(struct mh_testing *t, const char *fmt, ...)
{
    char *what, *line;
    va_list ap;

    va_start(ap, fmt);
    what = mh_xvasprintf(fmt, ap);
    va_end(ap);
    line = mh_xasprintf("misuse: %s", what);
    mh_th_log_line(t, MH_LOG_ERROR, line);
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

void mh_th_conf_free(struct mh_conf *c)
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
        mh_th_error_set(t, "settings, line %d: %s", config_error_line(&c->cfg),
                        config_error_text(&c->cfg));
        mh_th_conf_free(c);
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

static enum mh_status api_conf_path(const struct mh_conf *conf, const char *path, const char **out)
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
    full = mh_xasprintf("%s/%s", c->base_dir, v);
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
            mh_th_error_set(t, "unknown setting '%s' for %s '%s'", config_setting_name(s), kind,
                            owner);
            return MH_E_INVAL;
        }
        if (conf_typed(conf, d->name, setting_types(d->type), &typed) != MH_OK) {
            mh_th_error_set(t, "setting '%s' of %s '%s' must be %s", d->name, kind, owner,
                            setting_type_name(d->type));
            return MH_E_INVAL;
        }
    }
    return MH_OK;
}

/* --- The module --- */

/* The instance made last and not yet freed: it gets the lines logged with no host. */
static _Atomic(struct mh_testing *) newest;

struct mh_testing *mh_testing_new(const struct mh_module_def *def)
{
    struct mh_testing *t;

    if (!def || def->magic != MH_MODULE_MAGIC || def->abi_major != MH_ABI_MAJOR ||
        def->abi_minor > MH_ABI_MINOR || !def->api || !def->name) {
        (void)fprintf(stderr,
                      "modhost testing: not a module definition of SDK %d.x (up to %d.%d); "
                      "pass what the module's mh_module_v1() returns\n",
                      MH_ABI_MAJOR, MH_ABI_MAJOR, MH_ABI_MINOR);
        return NULL;
    }
    t = mh_xcalloc(1, sizeof(*t));
    memcpy(&t->def, def, def->size < sizeof(t->def) ? def->size : sizeof(t->def));
    *t->def.api = mh_th_table();
    t->host.t = t;
    (void)snprintf(t->host.name, sizeof(t->host.name), "%s", def->name);
    t->settings = conf_new();
    pthread_mutex_init(&t->mu, NULL);
    t->max_json_bytes = 1 << 20;
    t->max_json_depth = 64;
    t->next_id = 1;
    t->log = mh_xcalloc(1, 1);
    atomic_store(&newest, t);
    return t;
}

void mh_testing_free(struct mh_testing *t)
{
    struct mh_testing *self = t;

    if (!t)
        return;
    (void)atomic_compare_exchange_strong(&newest, &self, NULL);
    while (t->wss) {
        struct mh_ws *ws = t->wss;

        t->wss = ws->next;
        mh_th_ws_destroy(ws);
    }
    mh_testing_run_tasks(t);
    if (t->initialized && t->def.fini)
        t->def.fini(&t->host, t->state);
    while (t->reqs) {
        struct mh_req *r = t->reqs;

        t->reqs = r->next;
        mh_th_req_destroy(r);
    }
    for (size_t i = t->nstores; i-- > 0;)
        mh_th_store_free(t->stores[i]);
    free(t->stores);
    mh_th_conf_free(t->settings);
    mh_th_messages_free(&t->published);
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
    mh_th_conf_free(t->settings);
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
        mh_th_error_set(t, "'%s' is not a setting name", name);
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
    (void)snprintf(t->host.name, sizeof(t->host.name), "%s", name);
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
        mh_th_error_set(t, "store name '%s' must match [a-z0-9_]+ and be new", name ? name : "");
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
        mh_th_error_set(t, "module '%s' provides no store driver '%s'", t->def.name, driver);
        return MH_E_NOTFOUND;
    }
    rc = conf_parse(t, settings, &conf);
    if (rc != MH_OK)
        return rc;
    rc = store_add(t, name, &s);
    if (rc != MH_OK) {
        mh_th_conf_free(conf);
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
            s->driver &&
                    s->driver->size >= offsetof(struct mh_store_driver, settings) + sizeof(void *)
                ? s->driver->settings
                : NULL;

        if (!s->driver)
            continue;
        rc = check_settings(t, defs, s->conf, "store", s->name);
        if (rc != MH_OK)
            return rc;
        mh_th_store_err[0] = '\0';
        rc = s->driver->open(&t->host, s->conf, &s->db);
        if (rc != MH_OK) {
            mh_th_error_set(t, "store '%s': driver '%s' cannot open it: %s", s->name,
                            s->driver->name,
                            mh_th_store_err[0] ? mh_th_store_err : mh_status_str(rc));
            s->driver = NULL; /* nothing to close */
            return rc;
        }
    }
    if (t->def.init) {
        rc = t->def.init(&t->host, t->settings, &t->state);
        mh_testing_run_tasks(t);
        if (rc != MH_OK) {
            mh_th_error_set(t, "init failed: %s",
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
        mh_th_misuse(host->t, "mh_task_submit from a worker thread (a blocking handler or task)");
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
        mh_th_misuse(req->t, "mh_req_task %s",
                     req->replied ? "after a reply" : "from a worker thread");
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
    /* The core takes a NULL host too (store drivers' threads have none): the line goes to
     * the newest instance, as the core writes it without a module name. */
    struct mh_testing *t = host ? host->t : atomic_load(&newest);

    if (t) {
        log_vline(t, level, fmt, ap);
    } else {
        (void)vfprintf(stderr, fmt, ap);
        (void)fputc('\n', stderr);
    }
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
    char *line = mh_xasprintf("%s req=%llu", text, (unsigned long long)req->id);

    mh_th_log_line(req->t, level, line);
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
    (void)vsnprintf(host->error, sizeof(host->error), fmt, ap);
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

/* --- The table --- */

static struct mh_api testing_api;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_fill(void)
{
    struct mh_api *a = &testing_api;

    a->size = sizeof(*a);
    a->log_enabled = api_log_enabled;
    a->log = api_log;
    a->req_log = api_req_log;
    a->host_error = api_host_error;
    a->conf_string = api_conf_string;
    a->conf_int = api_conf_int;
    a->conf_bool = api_conf_bool;
    a->conf_float = api_conf_float;
    a->strerror = mh_status_str;
    a->task_submit = api_task_submit;
    a->req_task = api_req_task;
    a->conf_path = api_conf_path;
    a->logv = api_logv;
    a->req_logv = api_req_logv;
    a->host_errorv = api_host_errorv;
    a->clock_ns = api_clock_ns;
    a->log_is_enabled = api_log_is_enabled;
    a->host_name = api_host_name;
    mh_th_api_req(a);
    mh_th_api_store(a);
    mh_th_api_ws(a);
}

const struct mh_api *mh_th_table(void)
{
    pthread_once(&table_once, table_fill);
    return &testing_api;
}
