/*
 * Module loading: dlopen, the ABI checks in a fixed order, init and fini. A refusal is one line
 * that names the module, its file and the reason (with both values where two disagree).
 */
#ifndef MH_LOADER_H
#define MH_LOADER_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"
#include "modhost/sdk.h"

struct mh_conf;
struct mh_dso;
struct mh_gen;

/*
 * A module instance: one per generation that enables it, with its own init/fini and state.
 * Instances of an unchanged file share one mapping (struct mh_dso).
 */
struct mh_module {
    char *name;
    char *path;
    struct mh_dso *dso;
    struct mh_gen *gen; /* the generation the instance belongs to */
    /* The module's definition as this core reads it: fields the module was built without
     * (beyond its `size`) are zero. */
    struct mh_module_def def;
    struct mh_host *host;
    struct mh_conf *conf;
    void *state;
    bool initialized;
    struct mh_store **stores; /* the stores its conf.d entry lists, in that order; borrowed */
    size_t nstores;
};

/**
 * Opens @p path and checks it is a module this core can run, named @p expected_name.
 * @return MH_OK with *out set; otherwise err holds the one-line refusal.
 */
enum mh_status mh_module_open(const char *expected_name, const char *path, struct mh_module **out,
                              struct mh_err *err);
/** Runs the module's init with @p conf (consumed). @return MH_OK or the refusal in err. */
enum mh_status mh_module_init(struct mh_module *m, struct mh_conf *conf, struct mh_err *err);
/** Runs fini if init succeeded. */
void mh_module_fini(struct mh_module *m);
/** Releases the module; its code is unmapped only if it declared MH_MODULE_UNLOAD_SAFE. */
void mh_module_free(struct mh_module *m);
/** The inode of the module's file when it was loaded. Thread: any. */
unsigned long long mh_module_inode(const struct mh_module *m);
/** Mapped module files (all generations). Thread: main. */
size_t mh_loader_mapped_count(void);
/** Bytes held by the private copies of the mapped module files. Thread: main. */
size_t mh_loader_copy_bytes(void);
/** @p symbol in the mapped copy of @p path, or NULL (not mapped, or no such symbol). For tests
 * and diagnostics: the copy is not reachable through the file's own path. Thread: main. */
void *mh_loader_symbol(const char *path, const char *symbol);

/** The handler called @p name, or NULL. */
const struct mh_handler_def *mh_module_handler(const struct mh_module *m, const char *name);
/** Writes the module's handler names, comma-separated, into @p buf. */
void mh_module_handler_list(const struct mh_module *m, char *buf, size_t size);

#endif
