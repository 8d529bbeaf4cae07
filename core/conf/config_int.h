/*
 * What the parts of reading conf.d share (config.c, listen.c); not for other layers.
 */
#ifndef MH_CONFIG_INT_H
#define MH_CONFIG_INT_H

#include <libconfig.h>

#include "base/err.h"

struct mh_server_conf; /* conf/config.h: not included, so config.c and this stay one way */

/** Reads an integer the schema check accepted; a value out of range (already reported) keeps
 *  *@p out, so a configuration with errors never carries an invalid value. */
void mh_conf_get_ll(const config_setting_t *g, const char *name, long long *out);
/** @p value made absolute against the directory of @p relative_to_file (malloc'd). */
char *mh_conf_resolve_path(const char *value, const char *relative_to_file);

/** server.listeners (a list) into @p s; errors reported in @p errs. */
void mh_conf_read_listeners(struct mh_server_conf *s, const config_setting_t *list,
                            const char *file, struct mh_errlist *errs);
void mh_conf_free_listeners(struct mh_server_conf *s);
/** Key and certificate files get the module files' permission check. */
void mh_conf_check_tls_files(const struct mh_server_conf *s, struct mh_errlist *errs);

#endif
