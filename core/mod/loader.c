/*
 * dlopen and the ABI checks, in the order the SDK documents: file, dlopen, entry symbol, magic,
 * major, minor, size, fingerprint, name. Also init/fini and the handler look-up.
 */
#include "mod/loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "mod/host.h"

/* The smallest definition a 1.x module can have: every 1.0 field. */
#define DEF_SIZE_1_0 (offsetof(struct mh_module_def, settings) + sizeof(void *))

#ifdef MH_DLOPEN_NODELETE
#define DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
#else
#define DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL)
#endif

typedef const struct mh_module_def *(*entry_fn)(void);

/*
 * Mapped files, shared by the generations that enable them. The dynamic loader returns the
 * mapping it already has for a path it has seen, even after the file was replaced; so a file
 * rebuilt in place (same path, new inode) is opened through a unique alias (a symbolic link in
 * a private directory), and an unchanged file (same device and inode) is never mapped twice.
 */
struct mh_dso {
    struct mh_dso *next;
    dev_t dev;
    ino_t ino;
    char *path;
    void *dl;
    const struct mh_module_def *def;
    bool unload_safe;
    int refs; /* module instances using it; main thread only */
};

static struct mh_dso *dsos; /* every file version opened, mapped (dl != NULL) or not */
static char alias_dir[64];
static unsigned alias_seq;

unsigned long long mh_module_inode(const struct mh_module *m)
{
    return m->dso ? (unsigned long long)m->dso->ino : 0;
}

size_t mh_loader_mapped_count(void)
{
    size_t n = 0;

    for (struct mh_dso *d = dsos; d; d = d->next)
        n += d->dl != NULL;
    return n;
}

static void dso_unref(struct mh_dso *d)
{
    if (!d || --d->refs > 0)
        return;
    /* Code stays mapped unless the module says unmapping is safe: callbacks and thread-local
     * destructors left behind by a module are the classic plugin-host crash. The entry stays
     * in the list either way: the path has been seen, so a later open needs a fresh alias. */
    if (d->unload_safe && d->dl) {
        dlclose(d->dl);
        d->dl = NULL;
        d->def = NULL;
    }
}

/* dlopen() through a name the dynamic loader has never seen. */
static void *dlopen_fresh(const char *path)
{
    char alias[PATH_MAX];
    const char *base = strrchr(path, '/');
    void *dl;
    int n;

    if (!alias_dir[0]) {
        const char *tmp = getenv("TMPDIR");

        /* Fits: TMPDIR is used only when shorter than 40 bytes. */
        (void)snprintf(alias_dir, sizeof(alias_dir), "%s/modhost-XXXXXX",
                       tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(alias_dir)) {
            alias_dir[0] = '\0';
            return NULL;
        }
    }
    n = snprintf(alias, sizeof(alias), "%s/%u-%s", alias_dir, ++alias_seq, base ? base + 1 : path);
    if (n < 0 || (size_t)n >= sizeof(alias) || symlink(path, alias) != 0)
        return NULL;
    dl = dlopen(alias, DLOPEN_FLAGS);
    unlink(alias);
    rmdir(alias_dir); /* succeeds once empty; recreated on the next need */
    alias_dir[0] = '\0';
    return dl;
}

#define REFUSE(err, code, ...) mh_err_set((err), (code), NULL, 0, __VA_ARGS__)

static enum mh_status check_def(const char *name, const char *path, const struct mh_module_def *d,
                                struct mh_err *err)
{
    if (!d)
        return REFUSE(err, MH_E_INVAL, "module '%s' (%s): %s() returned NULL", name, path,
                      MH_MODULE_SYMBOL);
    if (d->magic != MH_MODULE_MAGIC)
        return REFUSE(err, MH_E_INVAL,
                      "module '%s' (%s): not a modhost module definition (magic 0x%08x, expected "
                      "0x%08x)",
                      name, path, d->magic, MH_MODULE_MAGIC);
    if (d->abi_major != MH_ABI_MAJOR)
        return REFUSE(err, MH_E_INVAL,
                      "module '%s' (%s): built for SDK %u.%u, this core provides SDK %d.%d "
                      "(the ABI major version differs; rebuild the module against SDK %d.x)",
                      name, path, d->abi_major, d->abi_minor, MH_ABI_MAJOR, MH_ABI_MINOR,
                      MH_ABI_MAJOR);
    if (d->abi_minor > MH_ABI_MINOR)
        return REFUSE(err, MH_E_INVAL,
                      "module '%s' (%s): built for SDK %u.%u, newer than this core's SDK %d.%d "
                      "(upgrade modhost or rebuild the module against SDK %d.%d)",
                      name, path, d->abi_major, d->abi_minor, MH_ABI_MAJOR, MH_ABI_MINOR,
                      MH_ABI_MAJOR, MH_ABI_MINOR);
    if (d->size < DEF_SIZE_1_0)
        return REFUSE(err, MH_E_INVAL,
                      "module '%s' (%s): definition size %u is smaller than SDK 1.0's %zu", name,
                      path, d->size, (size_t)DEF_SIZE_1_0);
    if (d->fingerprint != MH_BUILD_FINGERPRINT)
        return REFUSE(err, MH_E_INVAL,
                      "module '%s' (%s): built for another platform (fingerprint 0x%08x, this "
                      "core 0x%08x: pointer/size_t/time_t sizes or byte order differ)",
                      name, path, d->fingerprint, (unsigned)MH_BUILD_FINGERPRINT);
    if (!d->name)
        return REFUSE(err, MH_E_INVAL, "module '%s' (%s): its definition has no name", name, path);
    if (strcmp(d->name, name) != 0)
        return REFUSE(err, MH_E_INVAL, "module '%s' (%s): the file defines module '%s', not '%s'",
                      name, path, d->name, name);
    if (!d->api)
        return REFUSE(err, MH_E_INVAL,
                      "module '%s' (%s): its definition has no api slot (define it with "
                      "MH_MODULE)",
                      name, path);
    for (const struct mh_handler_def *h = d->handlers; h && h->name; h++) {
        if (!h->fn)
            return REFUSE(err, MH_E_INVAL, "module '%s' (%s): handler '%s' has no function", name,
                          path, h->name);
    }
    if (d->size >= offsetof(struct mh_module_def, drivers) + sizeof(void *)) {
        for (const struct mh_store_driver *v = d->drivers; v && v->name; v++) {
            if (v->size < offsetof(struct mh_store_driver, scan) + sizeof(void *) || !v->open ||
                !v->get || !v->put || !v->del)
                return REFUSE(err, MH_E_INVAL,
                              "module '%s' (%s): store driver '%s' is incomplete (size %zu, "
                              "open/get/put/del required)",
                              name, path, v->name, v->size);
        }
    }
    return MH_OK;
}

enum mh_status mh_module_open(const char *expected_name, const char *path, struct mh_module **out,
                              struct mh_err *err)
{
    const struct mh_module_def *d;
    struct mh_dso *dso;
    struct mh_module *m;
    enum mh_status rc;
    struct stat st;
    entry_fn entry;
    bool seen_path = false;
    void *dl;

    if (stat(path, &st) != 0)
        return REFUSE(err, MH_E_NOTFOUND, "module '%s' (%s): cannot open file: %s", expected_name,
                      path, MH_STRERROR(errno));
    if (!S_ISREG(st.st_mode))
        return REFUSE(err, MH_E_INVAL, "module '%s' (%s): not a regular file", expected_name, path);
    for (dso = dsos; dso; dso = dso->next) {
        if (dso->dl && dso->dev == st.st_dev && dso->ino == st.st_ino)
            break;
        if (strcmp(dso->path, path) == 0)
            seen_path = true;
    }
    if (dso) {
        d = dso->def; /* unchanged file: reuse the mapping */
    } else {
        dl = seen_path ? dlopen_fresh(path) : dlopen(path, DLOPEN_FLAGS);
        if (!dl)
            return REFUSE(err, MH_E_INVAL, "module '%s' (%s): cannot load: %s", expected_name, path,
                          seen_path ? "cannot map the rebuilt file anew" : dlerror());
        *(void **)&entry = dlsym(dl, MH_MODULE_SYMBOL);
        if (!entry) {
            dlclose(dl);
            return REFUSE(err, MH_E_INVAL,
                          "module '%s' (%s): not a modhost module (no %s symbol; define the "
                          "module with MH_MODULE)",
                          expected_name, path, MH_MODULE_SYMBOL);
        }
        d = entry();
        rc = check_def(expected_name, path, d, err);
        if (rc != MH_OK) {
            dlclose(dl);
            return rc;
        }
        dso = mh_xcalloc(1, sizeof(*dso));
        dso->dev = st.st_dev;
        dso->ino = st.st_ino;
        dso->path = mh_xstrdup(path);
        dso->dl = dl;
        dso->def = d;
        dso->unload_safe = (d->flags & MH_MODULE_UNLOAD_SAFE) != 0;
        dso->next = dsos;
        dsos = dso;
    }
    rc = check_def(expected_name, path, d, err); /* the name may differ for a reused file */
    if (rc != MH_OK)
        return rc;
    dso->refs++;
    m = mh_xcalloc(1, sizeof(*m));
    memcpy(&m->def, d, d->size < sizeof(m->def) ? d->size : sizeof(m->def));
    m->name = mh_xstrdup(expected_name);
    m->path = mh_xstrdup(path);
    m->dso = dso;
    *out = m;
    return MH_OK;
}

enum mh_status mh_module_init(struct mh_module *m, struct mh_conf *conf, struct mh_err *err)
{
    enum mh_status rc;

    m->conf = conf;
    m->host = mh_host_new(m, m->name);
    /* A file shared by generations already has the table, and its loops read it now:
     * write it only the first time (the value never changes). */
    if (*m->def.api != &mh_core_api)
        *m->def.api = &mh_core_api;
    if (!m->def.init) {
        m->initialized = true;
        return MH_OK;
    }
    rc = m->def.init(m->host, conf, &m->state);
    if (rc != MH_OK)
        return REFUSE(err, rc, "module '%s' (%s): init failed: %s", m->name, m->path,
                      m->host->error[0] ? m->host->error : mh_status_str(rc));
    m->initialized = true;
    return MH_OK;
}

void mh_module_fini(struct mh_module *m)
{
    if (!m || !m->initialized)
        return;
    if (m->def.fini)
        m->def.fini(m->host, m->state);
    m->initialized = false;
    m->state = NULL;
}

void mh_module_free(struct mh_module *m)
{
    if (!m)
        return;
    mh_module_fini(m);
    dso_unref(m->dso);
    mh_host_free(m->host);
    mh_conf_free(m->conf);
    free(m->stores);
    free(m->name);
    free(m->path);
    free(m);
}

const struct mh_handler_def *mh_module_handler(const struct mh_module *m, const char *name)
{
    for (const struct mh_handler_def *h = m->def.handlers; h && h->name; h++) {
        if (strcmp(h->name, name) == 0)
            return h;
    }
    return NULL;
}

void mh_module_handler_list(const struct mh_module *m, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (const struct mh_handler_def *h = m->def.handlers; h && h->name && n < size; h++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", h->name);
    if (!buf[0])
        snprintf(buf, size, "none");
}
