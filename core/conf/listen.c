/*
 * conf.d's listeners: server.listen / server.listeners, each plain HTTP or TLS, and the TLS
 * settings of a listener (certificates, SNI, protocol floor, ciphers, tickets). Part of
 * reading the configuration (config.c); the TLS contexts themselves are built in http/.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "conf/config.h"
#include "conf/config_int.h"
#include "conf/files.h"
#include "conf/schema.h"

/* Mozilla's "intermediate" profile for TLS 1.2: forward secrecy and AEAD only. TLS 1.3
 * keeps OpenSSL's suites (all of them are modern). */
#define MH_TLS_CIPHERS                                                                         \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define MH_TLS_CIPHERSUITES \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

void mh_config_tls_defaults(struct mh_tls_conf *t)
{
    memset(t, 0, sizeof(*t));
    t->min_protocol = 0x0303;
    t->ciphers = mh_xstrdup(MH_TLS_CIPHERS);
    t->ciphersuites = mh_xstrdup(MH_TLS_CIPHERSUITES);
    t->session_tickets = true;
    t->ticket_key_rotate_s = 3600;
    t->session_timeout_s = 7200;
}

enum mh_status mh_config_parse_listen(const char *s, char **host, int *port)
{
    const char *colon, *h;
    size_t hlen;
    char *end;
    long p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':' || close == s + 1)
            return MH_E_INVAL;
        colon = close + 1;
        h = s + 1;
        hlen = (size_t)(close - s - 1);
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || memchr(s, ':', (size_t)(colon - s)))
            return MH_E_INVAL;
        h = s;
        hlen = (size_t)(colon - s);
    }
    p = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || p < 0 || p > 65535)
        return MH_E_INVAL;
    *host = mh_xstrndup(h, hlen);
    *port = (int)p;
    return MH_OK;
}

/* A certificate and key pair from @p g into @p out; @return false (reported) if one is missing. */
static bool read_cert(const config_setting_t *g, const char *where, const char *file,
                      struct mh_tls_cert_conf *out, struct mh_errlist *errs)
{
    const char *cert = mh_schema_str(g, "certificate"), *key = mh_schema_str(g, "key");

    if (!cert || !key) {
        if (!config_setting_get_member(g, "certificate") || !config_setting_get_member(g, "key"))
            MH_SCHEMA_ERR(errs, g,
                          "'%s' needs a 'certificate' (PEM chain, leaf first) and a "
                          "'key' (PEM private key)",
                          where);
        return false;
    }
    out->certificate = mh_conf_resolve_path(cert, file);
    out->key = mh_conf_resolve_path(key, file);
    out->file = file;
    out->line = config_setting_source_line(g);
    return true;
}

static void tls_conf_free(struct mh_tls_conf *t)
{
    if (!t)
        return;
    free(t->cert.certificate);
    free(t->cert.key);
    for (size_t i = 0; i < t->nsni; i++) {
        free(t->sni[i].certificate);
        free(t->sni[i].key);
    }
    free(t->sni);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t);
}

static struct mh_tls_conf *read_tls(const config_setting_t *g, const char *where, const char *file,
                                    struct mh_errlist *errs)
{
    struct mh_tls_conf *t = mh_xcalloc(1, sizeof(*t));
    const config_setting_t *sni = config_setting_get_member(g, "sni");
    const char *v;
    bool ok;

    mh_config_tls_defaults(t);
    ok = read_cert(g, where, file, &t->cert, errs);
    if ((v = mh_schema_str(g, "min_protocol"))) {
        if (strcmp(v, "TLSv1.2") == 0) {
            t->min_protocol = 0x0303;
        } else if (strcmp(v, "TLSv1.3") == 0) {
            t->min_protocol = 0x0304;
        } else {
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "min_protocol"),
                          "'%s.min_protocol' = \"%s\" is not \"TLSv1.2\" or \"TLSv1.3\" (older "
                          "protocols are not offered)",
                          where, v);
            ok = false;
        }
    }
    if ((v = mh_schema_str(g, "ciphers"))) {
        free(t->ciphers);
        t->ciphers = mh_xstrdup(v);
    }
    if ((v = mh_schema_str(g, "ciphersuites"))) {
        free(t->ciphersuites);
        t->ciphersuites = mh_xstrdup(v);
    }
    mh_schema_bool(g, "session_tickets", &t->session_tickets);
    mh_conf_get_ll(g, "ticket_key_rotate_s", &t->ticket_key_rotate_s);
    mh_conf_get_ll(g, "session_timeout_s", &t->session_timeout_s);
    if (sni && config_setting_is_list(sni)) {
        int n = config_setting_length(sni);

        t->sni = mh_xcalloc((size_t)n + 1, sizeof(*t->sni));
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(sni, (unsigned)i);
            char sub[128];

            /* A key path for messages: a cut one still names the place. */
            (void)snprintf(sub, sizeof(sub), "%s.sni[%d]", where, i);
            if (config_setting_is_group(e) && read_cert(e, sub, file, &t->sni[t->nsni], errs))
                t->nsni++;
            else
                ok = false;
        }
    }
    if (!ok) {
        tls_conf_free(t);
        return NULL;
    }
    return t;
}

void mh_conf_read_listeners(struct mh_server_conf *s, const config_setting_t *list,
                            const char *file, struct mh_errlist *errs)
{
    int n = config_setting_length(list);

    if (n == 0) {
        MH_SCHEMA_ERR(errs, list, "'server.listeners' is empty: give at least one listener");
        return;
    }
    s->listeners = mh_xcalloc((size_t)n, sizeof(*s->listeners));
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        const config_setting_t *tls;
        struct mh_listener_conf *l;
        const char *v;
        char where[64];
        char *host = NULL;
        int port;

        if (!config_setting_is_group(g))
            continue; /* reported by the schema check */
        (void)snprintf(where, sizeof(where), "server.listeners[%d]", i); /* fits any int */
        if (!(v = mh_schema_str(g, "listen"))) {
            if (!config_setting_get_member(g, "listen"))
                MH_SCHEMA_ERR(errs, g, "'%s' has no 'listen' (HOST:PORT)", where);
            continue;
        }
        if (mh_config_parse_listen(v, &host, &port) != MH_OK) {
            MH_SCHEMA_ERR(errs, config_setting_get_member(g, "listen"),
                          "'%s.listen' = \"%s\" is not HOST:PORT (e.g. \"0.0.0.0:8443\", "
                          "\"[::]:8443\")",
                          where, v);
            continue;
        }
        for (size_t j = 0; j < s->nlisteners; j++) {
            if (port != 0 && s->listeners[j].port == port &&
                strcmp(s->listeners[j].host, host) == 0)
                MH_SCHEMA_ERR(errs, config_setting_get_member(g, "listen"),
                              "'%s.listen' = \"%s\" is already a listener at %s:%d", where, v,
                              s->listeners[j].file, s->listeners[j].line);
        }
        l = &s->listeners[s->nlisteners++];
        l->host = host;
        l->port = port;
        l->file = file;
        l->line = config_setting_source_line(g);
        if ((tls = config_setting_get_member(g, "tls")) && config_setting_is_group(tls)) {
            char tw[80];

            (void)snprintf(tw, sizeof(tw), "%s.tls", where); /* where[64] + ".tls" fits */
            l->tls = read_tls(tls, tw, file, errs);
        }
    }
    if (s->nlisteners) {
        free(s->host);
        s->host = mh_xstrdup(s->listeners[0].host);
        s->port = s->listeners[0].port;
    }
}

void mh_conf_free_listeners(struct mh_server_conf *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        free(s->listeners[i].host);
        tls_conf_free(s->listeners[i].tls);
    }
    free(s->listeners);
    s->listeners = NULL;
    s->nlisteners = 0;
}

/* Key and certificate files run in the server as much as module files do: same check. */
void mh_conf_check_tls_files(const struct mh_server_conf *s, struct mh_errlist *errs)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        const struct mh_tls_conf *t = s->listeners[i].tls;

        for (size_t j = 0; t && j <= t->nsni; j++) {
            const struct mh_tls_cert_conf *cc = j == 0 ? &t->cert : &t->sni[j - 1];
            struct mh_err e = {0};

            if (mh_config_check_permissions(cc->certificate, "certificate file", &e) != MH_OK)
                mh_errlist_push(errs, &e);
            if (mh_config_check_permissions(cc->key, "private key file", &e) != MH_OK)
                mh_errlist_push(errs, &e);
        }
    }
}
