/*
 * In-process HTTP for tests: serves a generation with the core's dispatcher on an ephemeral
 * loopback port, and sends one request at a time to it from the same thread (one event loop
 * runs both sides). Lets unit tests reach the SDK request calls without starting the binary.
 */
#ifndef MH_TEST_HTTP_H
#define MH_TEST_HTTP_H

#include <stddef.h>

struct mh_gen;
struct mh_test_server;

struct mh_test_resp {
    int status; /* 0 if no response arrived */
    char *body; /* NUL-terminated copy (may hold NULs before the end); never NULL */
    size_t body_len;
    size_t nheaders;
    char **headers; /* name, value, name, value, ... (copies) */
};

/**
 * Serves @p gen, holding a reference on it as a loop thread does (borrowed otherwise: keep it
 * until mh_test_server_free). Aborts on failure.
 */
struct mh_test_server *mh_test_server_new(struct mh_gen *gen);
/**
 * Writes @p conf as the only file of a temporary conf.d, loads and builds it, and serves the
 * generation, which the server then owns (with the directory).
 * @return the server; NULL, after printing the errors, if the configuration does not build.
 */
struct mh_test_server *mh_test_server_start(const char *conf);
/** Stops serving; frees the generation and the directory if the server owns them. */
void mh_test_server_free(struct mh_test_server *s);
/** The generation served. Borrowed from the server. */
struct mh_gen *mh_test_server_gen(const struct mh_test_server *s);
/** The port the server listens on (127.0.0.1). */
int mh_test_server_port(const struct mh_test_server *s);

/**
 * Sends @p method @p target with @p headers (name, value, ..., NULL; may be NULL) and
 * @p body (NULL for none) and waits for the answer (at most 10 s).
 * @param out  Filled in; release with mh_test_resp_cleanup, also when this returns -1.
 * @return 0 when a response arrived, -1 otherwise.
 */
int mh_test_request(struct mh_test_server *s, const char *method, const char *target,
                    const char *const *headers, const char *body, struct mh_test_resp *out);
/** The first response header @p name (case-insensitive), or NULL. Borrowed from @p r. */
const char *mh_test_resp_header(const struct mh_test_resp *r, const char *name);
/** How many response headers are called @p name (case-insensitive). */
size_t mh_test_resp_header_count(const struct mh_test_resp *r, const char *name);
void mh_test_resp_cleanup(struct mh_test_resp *r);

struct json_object;
/** The string member @p key of the JSON object @p doc, or "(absent)" (also for another type).
 *  Borrowed from @p doc. */
const char *mh_test_json_str(struct json_object *doc, const char *key);
/** The boolean member @p key of @p doc: 1, 0, or -1 if absent or of another type. */
int mh_test_json_bool(struct json_object *doc, const char *key);

#endif
