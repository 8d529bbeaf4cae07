/*
 * Configuration: reads the .conf files of a directory (libconfig) in name order into validated
 * structs. Every mistake is collected with its file and line; nothing here loads a module or binds
 * a port.
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "base/err.h"

struct mh_limits {
    long long max_header_bytes;     /* request line + headers */
    long long max_body_bytes;       /* request body (413 beyond) */
    long long max_json_bytes;       /* body size mh_req_json accepts */
    long long max_json_depth;       /* nesting mh_req_json accepts */
    long long read_timeout_ms;      /* inactivity while reading the first request */
    long long write_timeout_ms;     /* inactivity while writing a response */
    long long keepalive_timeout_ms; /* idle time between requests on a connection */
    long long handler_timeout_ms;   /* default deadline of requests handled on the pool */
    long long max_request_line_bytes;
    long long max_headers;                /* header fields per request */
    long long head_timeout_ms;            /* whole request head, from its first byte */
    long long body_timeout_ms;            /* whole request body, from the end of the head */
    long long max_connections;            /* open connections in the server */
    long long max_connections_per_client; /* from one client address */
    long long max_requests_per_connection;
    long long loop_stall_ms;      /* a loop in one handler this long is logged; 0: never */
    long long loop_stall_kill_ms; /* ... and its worker replaced at this; 0: never */
};

/* A certificate chain (PEM, leaf first) and its private key (PEM). */
struct mh_tls_cert_conf {
    char *certificate; /* absolute */
    char *key;         /* absolute */
    const char *file;  /* where it is configured (borrowed from the file list) */
    int line;
};

/* TLS on a listener (http/tls_openssl.c builds the contexts from this). */
struct mh_tls_conf {
    struct mh_tls_cert_conf cert; /* the default certificate */
    struct mh_tls_cert_conf *sni; /* picked when the client's server name matches them */
    size_t nsni;
    int min_protocol;   /* 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3), as OpenSSL numbers them */
    char *ciphers;      /* TLS 1.2 cipher list, OpenSSL syntax */
    char *ciphersuites; /* TLS 1.3 cipher suites */
    bool session_tickets;
    long long ticket_key_rotate_s; /* a ticket key encrypts this long, then only decrypts */
    long long session_timeout_s;   /* a ticket's lifetime */
};

/* One listening address: plain HTTP or HTTPS. */
struct mh_listener_conf {
    char *host; /* without brackets; listener 0 uses mh_server_conf.host and .port instead */
    int port;
    struct mh_tls_conf *tls; /* NULL: plain HTTP */
    const char *file;
    int line;
};

struct mh_server_conf {
    char *host; /* the first listener's address (numeric or name), without brackets */
    int port;
    /* Every listener, at least one after load; the first one's address is host:port above
     * (which --listen overrides). */
    struct mh_listener_conf *listeners;
    size_t nlisteners;
    int threads;            /* loop threads, >= 1 after load (0 in the file means one per core) */
    int workers;            /* worker pool threads, >= 1 after load (0: twice the cores) */
    long long worker_queue; /* tasks that may wait for a worker before 503 */
    int processes;          /* worker processes under the master */
    long long crash_limit;  /* crashes of one module within crash_window_ms that quarantine
                               it; 0: never */
    long long crash_window_ms;
    char *module_dir; /* absolute */
    long long shutdown_timeout_ms;
    long long reload_drain_ms; /* how long an old generation may finish its work */
    char *pid_file;            /* NULL: none; absolute */
    char *user, *group;        /* drop to these after binding; NULL: stay */
    bool insecure_permissions; /* read files others can write (development only) */
    char *channels;            /* store that carries channels between instances; NULL: none */
    const char *channels_file; /* where `channels` is set (borrowed from the file list) */
    int channels_line;
    int log_level; /* enum mh_log_level */
    bool access_log;
    int access_format; /* enum mh_access_format: 0 text, 1 combined, 2 json */
    char *access_file; /* NULL: stderr; absolute */
    char *admin_host;  /* the admin listener; NULL: none */
    int admin_port;
    long long admin_max_connections;
    long long admin_probe_timeout_ms; /* /readyz: how long a store may take to answer */
    struct mh_limits limits;
};

struct mh_route_conf {
    char *method;
    char *path;
    char *handler;
    long long timeout_ms; /* 0: the server's limits.handler_timeout_ms */
    bool run_inline;      /* run a blocking handler on the loop anyway */
    const char *file;     /* borrowed from the config's file list */
    int line;
};

struct mh_ws_conf {
    char *path;
    char *on_open, *on_message, *on_close; /* hook names; on_open/on_close may be NULL */
    char **subprotocols;
    size_t nsubprotocols;
    long long max_message_bytes;  /* larger messages close the connection with 1009 */
    long long max_outbound_bytes; /* unsent bytes beyond this close it with 1008 */
    long long ping_interval_ms;   /* 0: no keepalive pings */
    long long idle_timeout_ms;    /* 0: never idle out */
    const char *file;
    int line;
};

struct mh_module_conf {
    char *name;     /* the module: its file's definition has this name */
    char *instance; /* the conf.d `instance` key, or the name: unique in the configuration */
    char *path;     /* absolute path of the .so */
    const char *file;
    int line;
    const config_setting_t *settings; /* NULL if the file has none; owned by the config */
    struct mh_route_conf *routes;
    size_t nroutes;
    char **stores; /* names from the module's `stores` array */
    size_t nstores;
    struct mh_ws_conf *ws; /* WebSocket endpoints */
    size_t nws;
};

struct mh_store_conf {
    char *name;
    char *driver;
    const config_setting_t *settings; /* NULL if none; owned by the config */
    const char *file;
    int line;
};

struct mh_config {
    char *dir;
    struct mh_server_conf server;
    struct mh_module_conf *modules;
    size_t nmodules;
    struct mh_store_conf *stores;
    size_t nstores;
    config_t *cfgs; /* one per file, kept for the modules' settings */
    char **files;   /* full paths, in reading order */
    size_t nfiles;
};

/** Built-in defaults (also what the docs list). */
void mh_config_defaults(struct mh_server_conf *s);

/**
 * Reads and validates @p dir. Always returns a config (possibly partial) in @p out; every
 * error goes to @p errs, so the caller checks errs->count.
 */
void mh_config_load(const char *dir, struct mh_config **out, struct mh_errlist *errs);
void mh_config_free(struct mh_config *c);

/** The default TLS settings (min_protocol, ciphers, tickets) into @p t. */
void mh_config_tls_defaults(struct mh_tls_conf *t);

/** Parses "host:port" / "[v6]:port" into @p host (caller frees) and @p port. */
enum mh_status mh_config_parse_listen(const char *s, char **host, int *port);

/* The schema check and file helpers are in conf/schema.h and conf/files.h. */

#endif
