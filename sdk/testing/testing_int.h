/*
 * The testing host's own types and the helpers its files share (testing.c: the module, settings,
 * log and tasks; testing_req.c: requests and replies; testing_store.c: in-memory and driver
 * stores; testing_ws.c: fake WebSocket connections). Not installed.
 */
#ifndef MH_TESTING_INT_H
#define MH_TESTING_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

#include "modhost/testing.h"

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
    char rid[80]; /* mh_req_request_id's answer */
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
    int stream; /* 0: none, 1: begun, 2: ended (mh_stream_*) */
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

/** This thread's last store error (mh_store_error). */
extern _Thread_local char mh_th_store_err[512];

void mh_th_pairs_add(struct pairs *ps, const char *name, const char *value);
/** The first value of @p name, compared with @p cmp, or NULL. Borrowed from @p ps. */
const char *mh_th_pairs_get(const struct pairs *ps, const char *name,
                            int (*cmp)(const char *, const char *));
void mh_th_pairs_set(struct pairs *ps, const char *name, const char *value);
void mh_th_pairs_free(struct pairs *ps);
void mh_th_messages_add(struct messages *ms, const char *channel, bool is_binary, const void *data,
                        size_t len);
void mh_th_messages_free(struct messages *ms);
/** Sets the text mh_testing_error answers. @return it. */
const char *mh_th_error_set(struct mh_testing *t, const char *fmt, ...) MH_PRINTF(2, 3);
void mh_th_log_line(struct mh_testing *t, enum mh_log_level level, const char *text);
/** Records a call that broke an SDK rule (an error line "misuse: ..."). */
void mh_th_misuse(struct mh_testing *t, const char *fmt, ...) MH_PRINTF(2, 3);
void mh_th_conf_free(struct mh_conf *c);
/** After a handler and its tasks: answers for it as the server does. */
void mh_th_settle(struct mh_req *req, const char *handler, enum mh_status rc);
void mh_th_req_destroy(struct mh_req *req);
void mh_th_store_free(struct mh_store *s);
void mh_th_ws_destroy(struct mh_ws *ws);

/* Each file fills the table members it implements. */
void mh_th_api_req(struct mh_api *a);
void mh_th_api_store(struct mh_api *a);
void mh_th_api_ws(struct mh_api *a);
/** The table every module under test gets (filled once). */
const struct mh_api *mh_th_table(void);

#endif
