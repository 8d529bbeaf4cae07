/*
 * dlopen and the ABI checks, in the order the SDK documents: file, dlopen, entry symbol, magic,
 * major, minor, size, fingerprint, name. Also init/fini and the handler look-up.
 */
#include "mod/loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/sys.h"
#include "mod/host.h"

/* The text of errno for a refusal built later (the loader runs on the main thread; the
 * buffer is per thread all the same). */
static const char *errno_why(void)
{
    static _Thread_local char buf[MH_ERRNO_STR_MAX];

    return mh_errno_str(errno, buf, sizeof(buf));
}

/* The smallest definition a 1.x module can have: every 1.0 field. */
#define DEF_SIZE_1_0 (offsetof(struct mh_module_def, settings) + sizeof(void *))

#ifdef MH_DLOPEN_NODELETE
#define DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
#else
#define DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL)
#endif

typedef const struct mh_module_def *(*entry_fn)(void);

/*
 * Mapped files, shared by the generations that enable them. Each file is copied into a sealed
 * memfd and mapped from there, so writing into, truncating or deleting the file on disk never
 * changes code that runs; the copy is also a name the dynamic loader has never seen (it
 * caches libraries by path), so a file rebuilt in place really loads anew. A file unchanged
 * since it was copied (same device, inode, size and modification time) is never copied twice.
 */
struct mh_dso {
    struct mh_dso *next;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char *path;
    int memfd; /* the private copy; open while mapped, so its /proc/self/fd name stays unique */
    void *dl;
    const struct mh_module_def *def;
    bool unload_safe;
    int refs; /* module instances using it; main thread only */
};

static struct mh_dso *dsos; /* every file version mapped, or unmapped after its last use */

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

size_t mh_loader_copy_bytes(void)
{
    size_t n = 0;

    for (struct mh_dso *d = dsos; d; d = d->next)
        n += d->dl ? (size_t)d->size : 0;
    return n;
}

void *mh_loader_symbol(const char *path, const char *symbol)
{
    for (struct mh_dso *d = dsos; d; d = d->next) {
        if (d->dl && strcmp(d->path, path) == 0)
            return dlsym(d->dl, symbol);
    }
    return NULL;
}

static void dso_unref(struct mh_dso *d)
{
    if (!d || --d->refs > 0)
        return;
    /* Code stays mapped unless the module says unmapping is safe: callbacks and thread-local
     * destructors left behind by a module are the classic plugin-host crash. */
    if (d->unload_safe && d->dl) {
        dlclose(d->dl);
        d->dl = NULL;
        d->def = NULL;
        close(d->memfd);
        d->memfd = -1;
    }
}

static bool same_file(const struct mh_dso *d, const struct stat *st)
{
    return d->dev == st->st_dev && d->ino == st->st_ino && d->size == st->st_size &&
           d->mtime.tv_sec == st->st_mtim.tv_sec && d->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/*
 * Copies the open file @p fd (@p size bytes) into a sealed memfd named after @p path.
 * @return the memfd, or -1 with errno set.
 */
static int private_copy(const char *path, int fd, off_t size)
{
    int mfd = memfd_create(path, MFD_CLOEXEC | MFD_ALLOW_SEALING), saved;
    off_t done = 0;

    if (mfd < 0)
        return -1;
    while (done < size) {
        ssize_t n = sendfile(mfd, fd, NULL, (size_t)(size - done));

        if (n <= 0) {
            saved = n == 0 ? EIO : errno; /* 0: the file shrank while being copied */
            if (n < 0 && saved == EINTR)
                continue;
            close(mfd);
            errno = saved;
            return -1;
        }
        done += n;
    }
    /* Nothing may change the copy any more, not even through /proc/self/fd. */
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        saved = errno;
        close(mfd);
        errno = saved;
        return -1;
    }
    return mfd;
}

/*
 * dlopen() of the copy @p mfd through a name the dynamic loader has never seen: a symbolic
 * link to /proc/self/fd/N in a private directory, named with a sequence number. The fd's own
 * name would not do: the dynamic loader matches names before files, and a number is reused
 * once its copy is closed while the library stays loaded (RTLD_NODELETE, unique symbols).
 */
static void *dlopen_fd(int mfd, const char *path, const char **why)
{
    static unsigned seq;
    char dir[64], alias[128], target[64];
    const char *base = strrchr(path, '/'), *tmp = getenv("TMPDIR");
    void *dl = NULL;

    /* These fit: TMPDIR is used only when shorter than 40 bytes, the name is cut at 40. */
    (void)snprintf(dir, sizeof(dir), "%s/modhost-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    (void)snprintf(target, sizeof(target), "/proc/self/fd/%d", mfd);
    if (!mkdtemp(dir)) {
        *why = errno_why();
        return NULL;
    }
    (void)snprintf(alias, sizeof(alias), "%s/%u-%.40s", dir, ++seq, base ? base + 1 : path);
    if (symlink(target, alias) != 0) {
        *why = errno_why();
    } else {
        dl = dlopen(alias, DLOPEN_FLAGS);
        if (!dl) {
            const char *msg = dlerror();
            size_t n = strlen(alias);

            /* The refusal names the file already; the alias would only confuse. */
            *why = msg && strncmp(msg, alias, n) == 0 && strncmp(msg + n, ": ", 2) == 0
                       ? msg + n + 2
                       : msg;
        }
        unlink(alias);
    }
    rmdir(dir);
    return dl;
}

/* Opens @p path, copies it and dlopens the copy; *mfd_out is the copy's descriptor. */
static void *dlopen_copy(const char *path, struct stat *st, int *mfd_out, const char **why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), mfd;
    void *dl;

    *why = NULL;
    if (fd < 0 || fstat(fd, st) != 0) {
        *why = errno_why();
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    mfd = private_copy(path, fd, st->st_size);
    if (mfd < 0)
        *why = errno_why();
    close(fd);
    if (mfd < 0)
        return NULL;
    dl = dlopen_fd(mfd, path, why);
    if (!dl) {
        close(mfd);
        return NULL;
    }
    *mfd_out = mfd;
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
    int mfd = -1;
    void *dl;

    if (stat(path, &st) != 0)
        return REFUSE(err, MH_E_NOTFOUND, "module '%s' (%s): cannot open file: %s", expected_name,
                      path, MH_STRERROR(errno));
    if (!S_ISREG(st.st_mode))
        return REFUSE(err, MH_E_INVAL, "module '%s' (%s): not a regular file", expected_name, path);
    for (dso = dsos; dso; dso = dso->next) {
        if (dso->dl && strcmp(dso->path, path) == 0 && same_file(dso, &st))
            break;
    }
    if (dso) {
        d = dso->def; /* unchanged file: reuse the mapping */
    } else {
        const char *why;

        dl = dlopen_copy(path, &st, &mfd, &why);
        if (!dl)
            return REFUSE(err, MH_E_INVAL, "module '%s' (%s): cannot load: %s", expected_name, path,
                          why ? why : "the dynamic loader gave no reason");
        *(void **)&entry = dlsym(dl, MH_MODULE_SYMBOL);
        if (!entry) {
            dlclose(dl);
            close(mfd);
            return REFUSE(err, MH_E_INVAL,
                          "module '%s' (%s): not a modhost module (no %s symbol; define the "
                          "module with MH_MODULE)",
                          expected_name, path, MH_MODULE_SYMBOL);
        }
        d = entry();
        rc = check_def(expected_name, path, d, err);
        if (rc != MH_OK) {
            dlclose(dl);
            close(mfd);
            return rc;
        }
        dso = mh_xcalloc(1, sizeof(*dso));
        dso->dev = st.st_dev;
        dso->ino = st.st_ino;
        dso->size = st.st_size;
        dso->mtime = st.st_mtim;
        dso->path = mh_xstrdup(path);
        dso->memfd = mfd;
        dso->dl = dl;
        dso->def = d;
        dso->unload_safe = (d->flags & MH_MODULE_UNLOAD_SAFE) != 0;
        dso->next = dsos;
        dsos = dso;
        mh_debug("loader", "module '%s' (%s): private copy of %lld bytes mapped", expected_name,
                 path, (long long)st.st_size);
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
    /* cppcheck-suppress duplicateConditionalAssign ; the test keeps the write from racing */
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
        (void)snprintf(buf, size, "none"); /* a message part: cut to fit */
}
