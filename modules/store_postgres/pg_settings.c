/*
 * The settings of a "postgres" store: their help texts, reading them with the checks that
 * name a bad one, and the libpq connection parameters they make. Opening the store with them
 * is store_postgres.c's.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store_common/store_link.h"
#include "modhost/sdk.h"
#include "store_postgres.h"

static const char *const sslmodes[] = {"disable", "allow",     "prefer",
                                       "require", "verify-ca", "verify-full"};

const struct mh_setting_def mh_pg_settings[] = {
    {"host", MH_SETTING_STRING,
     "the server's host name or address, or the directory of its Unix socket (default "
     "\"127.0.0.1\")"},
    {"port", MH_SETTING_INT, "the server's port, 1..65535 (default 5432)"},
    {"dbname", MH_SETTING_STRING, "the database (default: the user's name)"},
    {"user", MH_SETTING_STRING, "the role to connect as (required)"},
    {"password_file", MH_SETTING_STRING, LINK_HELP_PASSWORD_FILE},
    {"sslmode", MH_SETTING_STRING,
     "one of disable, allow, prefer, require, verify-ca, verify-full (default \"prefer\")"},
    {"table", MH_SETTING_STRING,
     "the table of this store, [a-z_][a-z0-9_]* up to 48 characters (default \"modhost_kv\")"},
    {"pool_size", MH_SETTING_INT, LINK_HELP_POOL_SIZE},
    {"timeout_ms", MH_SETTING_INT,
     "longest wait for a connection, a connect or one statement, 1..600000 (default 3000)"},
    {NULL, 0, NULL},
};

static enum mh_status bad_setting(const char *name)
{
    return bad_setting_in(mh_pg_settings, name);
}

static bool valid_table(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > MAX_TABLE || !((t[0] >= 'a' && t[0] <= 'z') || t[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_'))
            return false;
    }
    return true;
}

enum mh_status mh_pg_read_options(const struct mh_conf *settings, struct options *o)
{
    bool is_sslmode_ok = false;

    *o = (struct options){.host = "127.0.0.1",
                          .port = 5432,
                          .sslmode = "prefer",
                          .table = "modhost_kv",
                          .pool_size = 8,
                          .timeout_ms = 3000};
    if (mh_conf_string(settings, "host", &o->host) == MH_E_INVAL || !o->host[0])
        return bad_setting("host");
    if (mh_conf_int(settings, "port", &o->port) == MH_E_INVAL || o->port < 1 || o->port > 65535)
        return bad_setting("port");
    if (mh_conf_string(settings, "dbname", &o->dbname) == MH_E_INVAL)
        return bad_setting("dbname");
    if (mh_conf_string(settings, "user", &o->user) != MH_OK || !o->user[0]) {
        mh_store_set_error("missing setting 'user': the role to connect as");
        return MH_E_INVAL;
    }
    if (mh_conf_path(settings, "password_file", &o->password_file) == MH_E_INVAL)
        return bad_setting("password_file");
    if (mh_conf_string(settings, "sslmode", &o->sslmode) == MH_E_INVAL)
        return bad_setting("sslmode");
    for (size_t i = 0; i < sizeof(sslmodes) / sizeof(sslmodes[0]); i++)
        is_sslmode_ok = is_sslmode_ok || strcmp(o->sslmode, sslmodes[i]) == 0;
    if (!is_sslmode_ok)
        return bad_setting("sslmode");
    if (mh_conf_string(settings, "table", &o->table) == MH_E_INVAL || !valid_table(o->table))
        return bad_setting("table");
    if (mh_conf_int(settings, "pool_size", &o->pool_size) == MH_E_INVAL || o->pool_size < 1 ||
        o->pool_size > POOL_MAX)
        return bad_setting("pool_size");
    if (mh_conf_int(settings, "timeout_ms", &o->timeout_ms) == MH_E_INVAL || o->timeout_ms < 1 ||
        o->timeout_ms > 600000)
        return bad_setting("timeout_ms");
    return MH_OK;
}

static enum mh_status add_param(struct pg_store *s, const char *key, const char *value)
{
    size_t i = 0;

    while (s->keys[i])
        i++;
    s->values[i] = strdup(value);
    if (!s->values[i]) {
        mh_store_set_error("out of memory");
        return MH_E_NOMEM;
    }
    s->keys[i] = key;
    return MH_OK;
}

enum mh_status mh_pg_build_params(struct pg_store *s, const struct options *o)
{
    char port[24], timeout[24];
    enum mh_status rc = MH_OK;

    (void)snprintf(port, sizeof(port), "%lld", o->port);
    /* libpq counts connect_timeout in whole seconds; our own poll() is the real bound. */
    (void)snprintf(timeout, sizeof(timeout), "%lld", (o->timeout_ms + 999) / 1000 + 1);
    if (o->password_file) {
        char password[PASSWORD_BYTES];

        rc = read_password_file(o->password_file, password, sizeof(password));
        if (rc == MH_OK)
            rc = add_param(s, "password", password);
        memset(password, 0, sizeof(password));
    }
    if (rc == MH_OK)
        rc = add_param(s, "host", o->host);
    if (rc == MH_OK)
        rc = add_param(s, "port", port);
    if (rc == MH_OK && o->dbname)
        rc = add_param(s, "dbname", o->dbname);
    if (rc == MH_OK)
        rc = add_param(s, "user", o->user);
    if (rc == MH_OK)
        rc = add_param(s, "sslmode", o->sslmode);
    if (rc == MH_OK)
        rc = add_param(s, "connect_timeout", timeout);
    if (rc == MH_OK)
        rc = add_param(s, "application_name", "modhost");
    /* The server abandons a statement whose client is gone (a timed-out call closes its
     * connection), and never runs one longer than the call may wait. */
    if (rc == MH_OK) {
        char opts[128];

        (void)snprintf(opts, sizeof(opts),
                       "-c client_connection_check_interval=1000 -c statement_timeout=%lld",
                       o->timeout_ms);
        rc = add_param(s, "options", opts);
    }
    /* Keepalives find a peer that vanished without a word between calls. */
    if (rc == MH_OK)
        rc = add_param(s, "keepalives_idle", "30");
    return rc;
}
