/*
 * The settings of a "redis" store: their help texts and reading them, with the checks that
 * name a bad one. Opening the store with them is store_redis.c's.
 */
#include <stdint.h>
#include <string.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_redis.h"

const struct mh_setting_def mh_redis_settings[] = {
    {"host", MH_SETTING_STRING, "the server's host name or address (default \"127.0.0.1\")"},
    {"port", MH_SETTING_INT, "the server's port, 1..65535 (default 6379)"},
    {"socket", MH_SETTING_STRING,
     "the path of the server's Unix socket, instead of host and port (a relative path "
     "resolves against the directory of the conf.d file)"},
    {"db", MH_SETTING_INT, "the database number, 0..15 by default in Redis (default 0)"},
    {"username", MH_SETTING_STRING, "an ACL user (default: the default user)"},
    {"password_file", MH_SETTING_STRING, LINK_HELP_PASSWORD_FILE},
    {"prefix", MH_SETTING_STRING,
     "what every key of this store starts with, 1..128 bytes (default \"modhost:kv:\")"},
    {"pool_size", MH_SETTING_INT, LINK_HELP_POOL_SIZE},
    {"pipeline", MH_SETTING_INT,
     "commands one connection may carry at once, 1..64 (default 4): when every connection is "
     "busy, a call is sent on the least busy one instead of waiting for one to be free"},
    {"timeout_ms", MH_SETTING_INT,
     "longest wait for a connection, a connect or one command, 1..600000 (default 3000)"},
    {NULL, 0, NULL},
};

static enum mh_status bad_setting(const char *name)
{
    return bad_setting_in(mh_redis_settings, name);
}

enum mh_status mh_redis_read_options(const struct mh_conf *settings, struct options *o)
{
    *o = (struct options){.host = "127.0.0.1",
                          .port = 6379,
                          .prefix = "modhost:kv:",
                          .pool_size = 8,
                          .pipeline = 4,
                          .timeout_ms = 3000};
    if (mh_conf_string(settings, "host", &o->host) == MH_E_INVAL || !o->host[0])
        return bad_setting("host");
    if (mh_conf_int(settings, "port", &o->port) == MH_E_INVAL || o->port < 1 || o->port > 65535)
        return bad_setting("port");
    if (mh_conf_path(settings, "socket", &o->socket) == MH_E_INVAL || (o->socket && !o->socket[0]))
        return bad_setting("socket");
    if (mh_conf_int(settings, "db", &o->db) == MH_E_INVAL || o->db < 0 || o->db > INT32_MAX)
        return bad_setting("db");
    if (mh_conf_string(settings, "username", &o->username) == MH_E_INVAL ||
        (o->username && !o->username[0]))
        return bad_setting("username");
    if (mh_conf_path(settings, "password_file", &o->password_file) == MH_E_INVAL)
        return bad_setting("password_file");
    if (o->username && !o->password_file) {
        mh_store_set_error("setting 'username' needs a 'password_file'");
        return MH_E_INVAL;
    }
    if (mh_conf_string(settings, "prefix", &o->prefix) == MH_E_INVAL || !o->prefix[0] ||
        strlen(o->prefix) > MAX_PREFIX)
        return bad_setting("prefix");
    if (mh_conf_int(settings, "pool_size", &o->pool_size) == MH_E_INVAL || o->pool_size < 1 ||
        o->pool_size > POOL_MAX)
        return bad_setting("pool_size");
    if (mh_conf_int(settings, "pipeline", &o->pipeline) == MH_E_INVAL || o->pipeline < 1 ||
        o->pipeline > PIPELINE_MAX)
        return bad_setting("pipeline");
    if (mh_conf_int(settings, "timeout_ms", &o->timeout_ms) == MH_E_INVAL || o->timeout_ms < 1 ||
        o->timeout_ms > 600000)
        return bad_setting("timeout_ms");
    return MH_OK;
}
