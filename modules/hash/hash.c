/*
 * hash: a CPU-bound job on the worker pool. POST /hash {"password", "salt", "iterations",
 * "length"?} returns a PBKDF2-HMAC-SHA256 digest (OpenSSL libcrypto) in hex. The iteration
 * count is bounded by the `max_iterations` setting.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "modhost/sdk.h"

#define MAX_DIGEST_BYTES 64

struct hash_state {
    long long max_iterations;
    long long max_input_bytes;
};

static enum mh_status hash_init(struct mh_host *host, const struct mh_conf *settings, void **state)
{
    struct hash_state *st = calloc(1, sizeof(*st));

    if (!st)
        return MH_E_NOMEM;
    st->max_iterations = 1000000;
    st->max_input_bytes = 1024;
    mh_conf_int(settings, "max_iterations", &st->max_iterations);
    mh_conf_int(settings, "max_input_bytes", &st->max_input_bytes);
    if (st->max_iterations < 1 || st->max_iterations > 100000000) {
        mh_host_error(host, "max_iterations must be 1..100000000, not %lld", st->max_iterations);
        free(st);
        return MH_E_INVAL;
    }
    if (st->max_input_bytes < 1 || st->max_input_bytes > 1 << 20) {
        mh_host_error(host, "max_input_bytes must be 1..1048576, not %lld", st->max_input_bytes);
        free(st);
        return MH_E_INVAL;
    }
    *state = st;
    return MH_OK;
}

static void hash_fini(struct mh_host *host, void *state)
{
    (void)host;
    free(state);
}

/* A string member of at most @p max bytes, or NULL with *why set. */
static const char *get_string(struct json_object *doc, const char *name, long long max, size_t *len,
                              const char **why)
{
    struct json_object *v;

    if (!json_object_object_get_ex(doc, name, &v) || !json_object_is_type(v, json_type_string)) {
        *why = "must be a string";
        return NULL;
    }
    *len = (size_t)json_object_get_string_len(v);
    if ((long long)*len > max) {
        *why = "is too long";
        return NULL;
    }
    return json_object_get_string(v);
}

static enum mh_status hash(struct mh_req *req, void *state)
{
    const struct hash_state *st = state;
    struct json_object *doc = NULL, *v, *out;
    const char *detail = NULL, *why = NULL, *password, *salt;
    unsigned char digest[MAX_DIGEST_BYTES];
    char hex[2 * MAX_DIGEST_BYTES + 1];
    size_t plen = 0, slen = 0;
    long long iterations, length = 32;
    enum mh_status rc = mh_req_json(req, &doc, &detail);

    if (rc == MH_E_LIMIT)
        return mh_reply_problem(req, 413, NULL, "%s", detail);
    if (rc != MH_OK)
        return mh_reply_problem(req, 400, NULL, "%s", detail ? detail : "invalid JSON");
    if (!json_object_is_type(doc, json_type_object))
        return mh_reply_problem(req, 400, NULL, "the body must be a JSON object");
    password = get_string(doc, "password", st->max_input_bytes, &plen, &why);
    if (!password)
        return mh_reply_problem(req, 400, NULL, "'password' %s (at most %lld bytes)", why,
                                st->max_input_bytes);
    salt = get_string(doc, "salt", st->max_input_bytes, &slen, &why);
    if (!salt)
        return mh_reply_problem(req, 400, NULL, "'salt' %s (at most %lld bytes)", why,
                                st->max_input_bytes);
    if (!json_object_object_get_ex(doc, "iterations", &v) || !json_object_is_type(v, json_type_int))
        return mh_reply_problem(req, 400, NULL, "'iterations' must be an integer");
    iterations = json_object_get_int64(v);
    if (iterations < 1 || iterations > st->max_iterations)
        return mh_reply_problem(req, 400, NULL, "'iterations' must be 1..%lld, not %lld",
                                st->max_iterations, iterations);
    if (json_object_object_get_ex(doc, "length", &v)) {
        if (!json_object_is_type(v, json_type_int))
            return mh_reply_problem(req, 400, NULL, "'length' must be an integer");
        length = json_object_get_int64(v);
        if (length < 1 || length > MAX_DIGEST_BYTES)
            return mh_reply_problem(req, 400, NULL, "'length' must be 1..%d, not %lld",
                                    MAX_DIGEST_BYTES, length);
    }
    if (mh_req_cancelled(req))
        return MH_E_CANCELLED;
    if (PKCS5_PBKDF2_HMAC(password, (int)plen, (const unsigned char *)salt, (int)slen,
                          (int)iterations, EVP_sha256(), (int)length, digest) != 1)
        return MH_E_IO;
    for (long long i = 0; i < length; i++) {
        static const char digits[] = "0123456789abcdef";

        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[2 * length] = '\0';
    out = json_object_new_object();
    if (!out)
        return MH_E_NOMEM;
    json_object_object_add(out, "algorithm", json_object_new_string("pbkdf2-sha256"));
    json_object_object_add(out, "iterations", json_object_new_int64(iterations));
    json_object_object_add(out, "length", json_object_new_int64(length));
    json_object_object_add(out, "digest", json_object_new_string(hex));
    return mh_reply_json(req, 200, out);
}

static const struct mh_handler_def hash_handlers[] = {
    {"hash", hash, MH_HANDLER_BLOCKING},
    {NULL, NULL, 0},
};

static const struct mh_setting_def hash_settings[] = {
    {"max_iterations", MH_SETTING_INT, "the largest iteration count a request may ask for"},
    {"max_input_bytes", MH_SETTING_INT, "the longest password or salt, in bytes"},
    {NULL, 0, NULL},
};

MH_MODULE(.name = "hash", .version = "1.0.0", .flags = MH_MODULE_UNLOAD_SAFE, .init = hash_init,
          .fini = hash_fini, .handlers = hash_handlers, .settings = hash_settings)
