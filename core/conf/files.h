/* The files of a configuration (see files.c). */
#ifndef MH_FILES_H
#define MH_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

/**
 * The regular *.conf files in @p dir (no dot files), sorted by name, as absolute-or-given paths
 * appended to *@p files (grown with realloc; the caller frees each and the array).
 * @return false, with an entry in @p errs, if the directory cannot be read or holds none.
 */
bool mh_config_list_files(const char *dir, char ***files, size_t *nfiles, struct mh_errlist *errs);
/**
 * Refuses @p path (and its directory, unless sticky) when users other than its owner and root
 * may write it. @p what names it in the message ("module file"). @return MH_OK or MH_E_INVAL.
 */
enum mh_status mh_config_check_permissions(const char *path, const char *what, struct mh_err *err);

#endif
