/*
 * chat: rooms over WebSocket channels. GET /ws/chat/{room}?name=NAME joins the room; each text
 * message (a JSON object {"text": ...}) is broadcast to the room with the sender and a server
 * timestamp; joins and leaves are announced; the last `history` messages of each room are kept
 * in a store (as a ring of slots plus a sequence number) and replayed to whoever joins.
 * GET /chat/ serves a small page that uses it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <json-c/json.h>

#include "modhost/sdk.h"
#include "page.h"

struct chat_state;

struct append_job {
    struct append_job *next;
    struct chat_state *st;
    char room[65];
    size_t len;
    char msg[];
};

struct chat_state {
    struct mh_host *host;
    struct mh_store *store; /* NULL: no history */
    long long history;
    long long max_text_bytes;
    /* History is written by one task at a time, in the order messages were broadcast. */
    pthread_mutex_t lock;
    struct append_job *head, *tail;
    bool writing;
};

struct conn {
    char room[65];
    char user[65];
    char channel[72];
};

static enum mh_status chat_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct chat_state *st = calloc(1, sizeof(*st));
    const char *store = NULL;

    if (!st)
        return MH_E_NOMEM;
    st->host = host;
    pthread_mutex_init(&st->lock, NULL);
    st->history = 50;
    st->max_text_bytes = 4096;
    mh_conf_int(settings, "history", &st->history);
    mh_conf_int(settings, "max_text_bytes", &st->max_text_bytes);
    mh_conf_string(settings, "store", &store);
    if (st->history < 0 || st->history > 10000 || st->max_text_bytes < 1 ||
        st->max_text_bytes > 1 << 20) {
        mh_host_error(host, "history must be 0..10000 and max_text_bytes 1..1048576");
        free(st);
        return MH_E_INVAL;
    }
    st->store = mh_store_find(host, store);
    if (store && !st->store) {
        mh_host_error(host, "store '%s' is not in this module's `stores` list", store);
        free(st);
        return MH_E_INVAL;
    }
    if (!st->store)
        st->history = 0;
    *state = st;
    return MH_OK;
}

static void chat_fini(struct mh_host *host, void *state)
{
    struct chat_state *st = state;

    (void)host;
    while (st->head) { /* messages the stopping pool never wrote */
        struct append_job *j = st->head;

        st->head = j->next;
        free(j);
    }
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static void now_iso(char *buf, size_t size)
{
    struct timeval tv;
    struct tm tm;
    size_t n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    (void)snprintf(buf + n, size - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static int valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (; *s; s++) {
        char c = *s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static void publish(struct chat_state *st, const struct conn *c, struct json_object *o)
{
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);

    mh_ws_publish(st->host, c->channel, 0, s, len);
}

static struct json_object *event(const struct conn *c, const char *type)
{
    struct json_object *o = json_object_new_object();
    char ts[40];

    now_iso(ts, sizeof(ts));
    json_object_object_add(o, "type", json_object_new_string(type));
    json_object_object_add(o, "room", json_object_new_string(c->room));
    json_object_object_add(o, "user", json_object_new_string(c->user));
    json_object_object_add(o, "ts", json_object_new_string(ts));
    return o;
}

/* --- History: a ring of `history` slots per room, and a sequence number --- */

static void key_of(char *buf, size_t size, const char *room, const char *what)
{
    (void)snprintf(buf, size, "chat/%s/%s", room, what);
}

static void append_one(struct append_job *j)
{
    char key[128], slot[32];

    for (int attempt = 0; attempt < 100; attempt++) {
        struct mh_value v = {0};
        uint64_t seq = 0, expect = MH_STORE_ABSENT;
        char num[24];
        enum mh_status rc;

        key_of(key, sizeof(key), j->room, "seq");
        rc = mh_store_get(j->st->store, key, strlen(key), &v);
        if (rc == MH_OK) {
            seq = strtoull(v.data, NULL, 10);
            expect = v.version;
            mh_value_free(&v);
        } else if (rc != MH_E_NOTFOUND) {
            break;
        }
        (void)snprintf(num, sizeof(num), "%" PRIu64, seq + 1);
        rc = mh_store_put(j->st->store, key, strlen(key), num, strlen(num), expect, NULL, NULL);
        if (rc == MH_E_CONFLICT)
            continue; /* another instance sharing the store took this sequence number */
        if (rc != MH_OK)
            break;
        (void)snprintf(slot, sizeof(slot), "%" PRIu64, seq % (uint64_t)j->st->history);
        key_of(key, sizeof(key), j->room, slot);
        mh_store_put(j->st->store, key, strlen(key), j->msg, j->len, MH_STORE_ANY, NULL, NULL);
        return;
    }
    mh_log(j->st->host, MH_LOG_WARN, "room %s: message not kept in history: %s", j->room,
           mh_store_error());
}

/* Writes queued messages in order until the queue is empty. Runs on a worker. */
static void append_work(void *arg)
{
    struct chat_state *st = arg;

    for (;;) {
        struct append_job *j;

        pthread_mutex_lock(&st->lock);
        j = st->head;
        if (j) {
            st->head = j->next;
            if (!st->head)
                st->tail = NULL;
        } else {
            st->writing = false;
        }
        pthread_mutex_unlock(&st->lock);
        if (!j)
            return;
        append_one(j);
        free(j);
    }
}

static void append_done(void *arg, enum mh_status status)
{
    struct chat_state *st = arg;

    if (status != MH_OK) { /* the pool is stopping: fini frees what is left */
        pthread_mutex_lock(&st->lock);
        st->writing = false;
        pthread_mutex_unlock(&st->lock);
    }
}

static void remember(struct chat_state *st, const struct conn *c, struct json_object *o)
{
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    struct append_job *j;
    bool start;

    if (!st->history)
        return;
    j = malloc(sizeof(*j) + len + 1);
    if (!j)
        return;
    j->next = NULL;
    j->st = st;
    (void)snprintf(j->room, sizeof(j->room), "%s", c->room);
    j->len = len;
    memcpy(j->msg, s, len + 1);
    pthread_mutex_lock(&st->lock);
    if (st->tail)
        st->tail->next = j;
    else
        st->head = j;
    st->tail = j;
    start = !st->writing;
    st->writing = true;
    pthread_mutex_unlock(&st->lock);
    if (start && mh_task_submit(st->host, append_work, append_done, st) != MH_OK) {
        /* Pool busy: leave the queue for the next message's writer. */
        pthread_mutex_lock(&st->lock);
        st->writing = false;
        pthread_mutex_unlock(&st->lock);
        mh_log(st->host, MH_LOG_WARN, "room %s: pool busy, history write delayed", c->room);
    }
}

struct replay_job {
    struct chat_state *st;
    struct mh_ws *ws; /* referenced */
    char room[65];
    struct json_object *messages; /* array, oldest first */
};

static void replay_work(void *arg)
{
    struct replay_job *j = arg;
    struct mh_value v = {0};
    char key[128], slot[32];
    uint64_t seq, first;

    key_of(key, sizeof(key), j->room, "seq");
    if (mh_store_get(j->st->store, key, strlen(key), &v) != MH_OK)
        return;
    seq = strtoull(v.data, NULL, 10);
    mh_value_free(&v);
    first = seq > (uint64_t)j->st->history ? seq - (uint64_t)j->st->history : 0;
    for (uint64_t i = first; i < seq; i++) {
        (void)snprintf(slot, sizeof(slot), "%" PRIu64, i % (uint64_t)j->st->history);
        key_of(key, sizeof(key), j->room, slot);
        if (mh_store_get(j->st->store, key, strlen(key), &v) == MH_OK) {
            json_object_array_add(j->messages, json_object_new_string_len(v.data, (int)v.len));
            mh_value_free(&v);
        }
    }
}

static void replay_done(void *arg, enum mh_status status)
{
    struct replay_job *j = arg;

    if (status == MH_OK) {
        for (size_t i = 0; i < json_object_array_length(j->messages); i++) {
            struct json_object *m = json_object_array_get_idx(j->messages, i);
            struct json_object *o = json_tokener_parse(json_object_get_string(m));
            size_t len;
            const char *s;

            if (!o)
                continue;
            json_object_object_add(o, "history", json_object_new_boolean(1));
            s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
            mh_ws_send(j->ws, 0, s, len); /* a no-op if the client left meanwhile */
            json_object_put(o);
        }
    }
    json_object_put(j->messages);
    mh_ws_unref(j->ws);
    free(j);
}

/* --- WebSocket hooks --- */

static enum mh_status chat_open(struct mh_ws *ws, struct mh_req *req, void *state)
{
    struct chat_state *st = state;
    const char *room = mh_req_param(req, "room");
    const char *user = mh_req_query(req, "name");
    struct conn *c;
    struct json_object *o;

    if (!room || !valid_name(room, 64))
        return mh_reply_problem(req, 400, NULL, "room names are 1..64 of [A-Za-z0-9._-]");
    if (user && !valid_name(user, 32))
        return mh_reply_problem(req, 400, NULL, "user names are 1..32 of [A-Za-z0-9._-]");
    c = calloc(1, sizeof(*c));
    if (!c)
        return MH_E_NOMEM;
    (void)snprintf(c->room, sizeof(c->room), "%s", room);
    if (user)
        (void)snprintf(c->user, sizeof(c->user), "%s", user);
    else
        (void)snprintf(c->user, sizeof(c->user), "guest-%" PRIu64, mh_ws_id(ws));
    (void)snprintf(c->channel, sizeof(c->channel), "chat:%s", room);
    mh_ws_set_data(ws, c);
    if (mh_ws_join(ws, c->channel) != MH_OK) {
        mh_ws_set_data(ws, NULL);
        free(c);
        return MH_E_INVAL;
    }
    if (st->history) {
        struct replay_job *j = calloc(1, sizeof(*j));

        if (j) {
            j->st = st;
            j->ws = ws;
            (void)snprintf(j->room, sizeof(j->room), "%s", room);
            j->messages = json_object_new_array();
            mh_ws_ref(ws);
            if (mh_task_submit(st->host, replay_work, replay_done, j) != MH_OK) {
                mh_ws_unref(ws);
                json_object_put(j->messages);
                free(j);
            }
        }
    }
    o = event(c, "join");
    publish(st, c, o);
    json_object_put(o);
    return MH_OK;
}

static void chat_message(struct mh_ws *ws, int is_binary, const void *data, size_t len, void *state)
{
    struct chat_state *st = state;
    struct conn *c = mh_ws_data(ws);
    struct json_object *in, *text, *o;
    const char *err = NULL;

    if (is_binary) {
        mh_ws_close(ws, 1003, "only text messages");
        return;
    }
    {
        struct json_tokener *tok = json_tokener_new();

        in = tok ? json_tokener_parse_ex(tok, data, (int)len) : NULL;
        if (in && json_tokener_get_parse_end(tok) != len) {
            json_object_put(in); /* trailing data after the object */
            in = NULL;
        }
        json_tokener_free(tok);
    }
    if (!in || !json_object_is_type(in, json_type_object) ||
        !json_object_object_get_ex(in, "text", &text) ||
        !json_object_is_type(text, json_type_string))
        err = "messages are JSON objects with a \"text\" string";
    else if ((long long)json_object_get_string_len(text) > st->max_text_bytes)
        err = "text too long";
    if (err) {
        struct json_object *e = json_object_new_object();
        size_t elen;
        const char *s;

        json_object_object_add(e, "type", json_object_new_string("error"));
        json_object_object_add(e, "error", json_object_new_string(err));
        s = json_object_to_json_string_length(e, JSON_C_TO_STRING_PLAIN, &elen);
        mh_ws_send(ws, 0, s, elen);
        json_object_put(e);
        json_object_put(in);
        return;
    }
    o = event(c, "message");
    json_object_object_add(o, "text", json_object_get(text));
    publish(st, c, o);
    remember(st, c, o);
    json_object_put(o);
    json_object_put(in);
}

static void chat_close(struct mh_ws *ws, int code, void *state)
{
    struct chat_state *st = state;
    struct conn *c = mh_ws_data(ws);
    struct json_object *o;

    (void)code;
    if (!c)
        return;
    o = event(c, "leave");
    publish(st, c, o);
    json_object_put(o);
    free(c);
}

static enum mh_status chat_page(struct mh_req *req, void *state)
{
    (void)state;
    mh_resp_header(req, "Cache-Control", "no-cache");
    return mh_reply(req, 200, "text/html; charset=utf-8", chat_page_html,
                    sizeof(chat_page_html) - 1);
}

static const struct mh_ws_hook_def chat_hooks[] = {
    {"chat_open", chat_open, NULL, NULL},
    {"chat_message", NULL, chat_message, NULL},
    {"chat_close", NULL, NULL, chat_close},
    {NULL, NULL, NULL, NULL},
};

static const struct mh_handler_def chat_handlers[] = {
    {"page", chat_page, 0},
    {NULL, NULL, 0},
};

static const struct mh_setting_def chat_settings[] = {
    {"history", MH_SETTING_INT, "messages kept per room and replayed on join (0: none)"},
    {"max_text_bytes", MH_SETTING_INT, "longest message text"},
    {"store", MH_SETTING_STRING, "which of the module's stores keeps history"},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "chat", .version = "1.0.0", .init = chat_init, .fini = chat_fini,
          .handlers = chat_handlers, .ws_hooks = chat_hooks, .settings = chat_settings)
