/*
 * The testing host's fake WebSocket connections: hooks run on the test's thread; what the
 * module sends, joins, publishes and closes is recorded for the test to read.
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
            mh_th_error_set(t, "module '%s' has no %s hook '%s'", t->def.name,
                            k == 0   ? "on_open"
                            : k == 1 ? "on_message"
                                     : "on_close",
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
        mh_th_pairs_set(&ws->params, upgrade->params.items[i].name, upgrade->params.items[i].value);
    ws->open = true; /* hooks may join and send during on_open */
    upgrade->called = true;
    if (ws->on_open)
        rc = ws->on_open(ws, upgrade, ws->t->state);
    if (rc != MH_OK || upgrade->replied) {
        ws->open = false;
        ws_leave_all(ws);
        mh_testing_run_tasks(ws->t);
        mh_th_settle(upgrade, "on_open", rc);
        return rc;
    }
    ws_settle(ws);
    return MH_OK;
}

bool mh_testing_ws_is_open(const struct mh_ws *ws)
{
    return ws->open && !ws->closing;
}

enum mh_status mh_testing_ws_receive(struct mh_ws *ws, bool is_binary, const void *data, size_t len)
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

void mh_th_ws_destroy(struct mh_ws *ws)
{
    ws_end(ws, MH_WS_GOING_AWAY);
    if (atomic_load(&ws->refs) > 0)
        mh_th_misuse(ws->t,
                     "WebSocket %llu freed while the module holds %d reference(s) (mh_ws_ref "
                     "without mh_ws_unref)",
                     (unsigned long long)ws->id, atomic_load(&ws->refs));
    mh_th_pairs_free(&ws->params);
    mh_th_messages_free(&ws->sent);
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
    mh_th_ws_destroy(ws);
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
    mh_th_messages_add(&ws->sent, NULL, is_binary != 0, data, len);
    return MH_OK;
}

static enum mh_status api_ws_close(struct mh_ws *ws, int code, const char *why)
{
    if (!mh_testing_ws_is_open(ws))
        return MH_E_CANCELLED;
    if (code < 1000 || code > 4999 || (why && strlen(why) > 123)) {
        mh_th_misuse(ws->t,
                     "mh_ws_close(%d): the code must be 1000..4999 and the reason at most 123 "
                     "bytes",
                     code);
        return MH_E_INVAL;
    }
    ws->closing = true;
    ws->close_code = code;
    (void)snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", why ? why : ""); /* fits */
    return MH_OK;
}

static void api_ws_ref(struct mh_ws *ws)
{
    atomic_fetch_add(&ws->refs, 1);
}

static void api_ws_unref(struct mh_ws *ws)
{
    if (atomic_fetch_sub(&ws->refs, 1) <= 0)
        mh_th_misuse(ws->t, "mh_ws_unref without a matching mh_ws_ref");
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
    return mh_th_pairs_get(&ws->params, name, strcmp);
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
        mh_th_misuse(ws->t, "mh_ws_join from a worker thread");
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
    mh_th_messages_add(&t->published, channel, is_binary != 0, data, len);
    for (struct mh_ws *ws = t->wss; ws; ws = ws->next) {
        if (mh_testing_ws_is_open(ws) && mh_testing_ws_joined(ws, channel))
            mh_th_messages_add(&ws->sent, NULL, is_binary != 0, data, len);
    }
    pthread_mutex_unlock(&t->mu);
    return MH_OK;
}

void mh_th_api_ws(struct mh_api *a)
{
    a->ws_send = api_ws_send;
    a->ws_close = api_ws_close;
    a->ws_ref = api_ws_ref;
    a->ws_unref = api_ws_unref;
    a->ws_set_data = api_ws_set_data;
    a->ws_data = api_ws_data;
    a->ws_id = api_ws_id;
    a->ws_param = api_ws_param;
    a->ws_join = api_ws_join;
    a->ws_leave = api_ws_leave;
    a->ws_publish = api_ws_publish;
    a->is_utf8 = is_utf8;
}
