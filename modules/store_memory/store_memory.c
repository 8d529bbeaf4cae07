/*
 * store_memory: the "memory" store driver. Records live in this process only, in a skip list
 * ordered by key bytes and guarded by one rwlock; versions come from one store-wide counter.
 * Key checks (empty, too long) are the core's; this file trusts what store.c passes on.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../store_common/store_scan.h"
#include "modhost/sdk.h"

/* 1/4 of the nodes reach each next level; 24 levels index ~2^48 records in O(log n). */
#define MAX_LEVEL 24

/* A scan hands records to its callback in batches copied under the read lock and delivered
 * without it, so a callback may itself call the store. A batch stops at this many records or
 * after the record that crosses this many bytes. */

struct node {
    uint64_t version;
    unsigned char *val; /* vlen bytes and a NUL, owned by the node */
    size_t vlen;
    size_t klen;
    int level;
    struct node *next[]; /* `level` pointers, then the key's klen bytes */
};

struct mem_db {
    pthread_rwlock_t lock;
    struct node *head; /* MAX_LEVEL pointers, no key */
    int level;         /* levels in use, 1..MAX_LEVEL */
    uint64_t version;  /* the last version handed out */
    uint64_t rng;      /* xorshift state for node levels; written under the write lock */
    size_t bytes;      /* key and value bytes of all records (not counting overhead) */
    size_t max_bytes;  /* 0: no limit */
};

/* --- Skip list --- */

static const unsigned char *node_key(const struct node *n)
{
    return (const unsigned char *)&n->next[n->level];
}

static int node_cmp(const struct node *n, const void *key, size_t klen)
{
    return key_cmp(node_key(n), n->klen, key, klen);
}

/*
 * The first node whose key is >= @p key (> if @p exclusive), or NULL. If @p update is given,
 * it receives, per level, the last node before that position (the head if none).
 */
static struct node *seek(const struct mem_db *db, const void *key, size_t klen, bool exclusive,
                         struct node **update)
{
    struct node *x = db->head;

    for (int i = db->level - 1; i >= 0; i--) {
        for (struct node *n = x->next[i]; n; n = x->next[i]) {
            int c = node_cmp(n, key, klen);

            if (c > 0 || (c == 0 && !exclusive))
                break;
            x = n;
        }
        if (update)
            update[i] = x;
    }
    return x->next[0];
}

static struct node *find(const struct mem_db *db, const void *key, size_t klen,
                         struct node **update)
{
    struct node *n = seek(db, key, klen, false, update);

    return n && node_cmp(n, key, klen) == 0 ? n : NULL;
}

static int random_level(struct mem_db *db)
{
    uint64_t x = db->rng;
    int level = 1;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    db->rng = x;
    while (level < MAX_LEVEL && (x & 3) == 0) {
        level++;
        x >>= 2;
    }
    return level;
}

/* Links a new node for @p key after the nodes in @p update. Takes @p val. NULL if out of
 * memory (then @p val is still the caller's). Caller holds the write lock. */
static struct node *insert(struct mem_db *db, struct node **update, const void *key, size_t klen,
                           unsigned char *val, size_t vlen)
{
    int level = random_level(db);
    struct node *n = malloc(sizeof(*n) + (size_t)level * sizeof(struct node *) + klen);

    if (!n)
        return NULL;
    n->val = val;
    n->vlen = vlen;
    n->klen = klen;
    n->level = level;
    memcpy((unsigned char *)&n->next[level], key, klen);
    for (int i = db->level; i < level; i++)
        update[i] = db->head;
    if (level > db->level)
        db->level = level;
    for (int i = 0; i < level; i++) {
        n->next[i] = update[i]->next[i];
        update[i]->next[i] = n;
    }
    return n;
}

static void unlink_node(struct mem_db *db, struct node **update, struct node *n)
{
    for (int i = 0; i < n->level; i++)
        update[i]->next[i] = n->next[i];
    while (db->level > 1 && !db->head->next[db->level - 1])
        db->level--;
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    free(n->val);
    free(n);
}

/* --- Driver --- */

static const struct mh_setting_def memory_settings[] = {
    {"max_bytes", MH_SETTING_INT,
     "optional limit on the key and value bytes the store holds; writes beyond it fail"},
    {NULL, 0, NULL},
};

/* Writers first: glibc's default lets a steady stream of scans starve writers. No caller
 * takes the lock twice (scan callbacks run without it), so this cannot self-deadlock. */
static int lock_init(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t attr;
    int rc;

    if (pthread_rwlockattr_init(&attr) != 0)
        return -1;
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    rc = pthread_rwlock_init(lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return rc;
}

static enum mh_status memory_open(struct mh_host *host, const struct mh_conf *settings, void **out)
{
    struct mem_db *db;
    long long max_bytes = 0;
    enum mh_status rc = mh_conf_int(settings, "max_bytes", &max_bytes);

    (void)host;
    if (rc == MH_E_INVAL || (rc == MH_OK && max_bytes <= 0)) {
        mh_store_set_error("setting 'max_bytes' must be a positive integer: %s",
                           memory_settings[0].help);
        return MH_E_INVAL;
    }
    db = calloc(1, sizeof(*db));
    if (!db)
        goto nomem;
    db->head = calloc(1, sizeof(*db->head) + MAX_LEVEL * sizeof(struct node *));
    if (!db->head)
        goto nomem;
    db->head->level = MAX_LEVEL;
    db->level = 1;
    db->rng = (uint64_t)(uintptr_t)db ^ 0x9e3779b97f4a7c15u; /* any non-zero seed will do */
    db->max_bytes = (size_t)max_bytes;
    if (lock_init(&db->lock) != 0) {
        free(db->head);
        free(db);
        mh_store_set_error("cannot create the store's lock");
        return MH_E_NOMEM;
    }
    *out = db;
    return MH_OK;
nomem:
    free(db);
    mh_store_set_error("out of memory opening the store");
    return MH_E_NOMEM;
}

static void memory_close(void *arg)
{
    struct mem_db *db = arg;

    if (!db)
        return;
    for (struct node *n = db->head->next[0], *next; n; n = next) {
        next = n->next[0];
        node_free(n);
    }
    free(db->head);
    pthread_rwlock_destroy(&db->lock);
    free(db);
}

static enum mh_status memory_get(void *arg, const void *key, size_t klen, struct mh_value *out)
{
    struct mem_db *db = arg;
    enum mh_status rc = MH_OK;
    const struct node *n;

    pthread_rwlock_rdlock(&db->lock);
    n = find(db, key, klen, NULL);
    if (!n) {
        rc = MH_E_NOTFOUND;
        mh_store_set_error("no such key (%zu bytes)", klen);
        goto out;
    }
    out->data = malloc(n->vlen + 1);
    if (!out->data) {
        rc = MH_E_NOMEM;
        mh_store_set_error("out of memory copying a value of %zu bytes", n->vlen);
        goto out;
    }
    memcpy(out->data, n->val, n->vlen + 1);
    out->len = n->vlen;
    out->version = n->version;
out:
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

/* Whether @p expect holds for the record @p n (NULL: absent); sets the message if not. */
static bool expect_holds(const struct node *n, uint64_t expect)
{
    if (expect == MH_STORE_ANY || (expect == MH_STORE_EXISTS && n))
        return true;
    if (expect == MH_STORE_ABSENT && n) {
        mh_store_set_error("the key exists (version %" PRIu64 ")", n->version);
        return false;
    }
    if (expect != MH_STORE_ABSENT && !n) {
        mh_store_set_error("expected version %" PRIu64 ", but the key does not exist", expect);
        return false;
    }
    if (expect != MH_STORE_ABSENT && n->version != expect) {
        mh_store_set_error("expected version %" PRIu64 ", found %" PRIu64, expect, n->version);
        return false;
    }
    return true;
}

static enum mh_status memory_put(void *arg, const void *key, size_t klen, const void *val,
                                 size_t vlen, uint64_t expect, uint64_t *version, int *created)
{
    struct mem_db *db = arg;
    struct node *update[MAX_LEVEL];
    enum mh_status rc = MH_OK;
    unsigned char *copy = NULL;
    size_t bytes;
    struct node *n;

    /* Copy the value before taking the lock: it may be large. */
    if (vlen < SIZE_MAX - klen)
        copy = malloc(vlen + 1);
    if (!copy) {
        mh_store_set_error("out of memory copying a value of %zu bytes", vlen);
        return MH_E_NOMEM;
    }
    memcpy(copy, val, vlen);
    copy[vlen] = '\0';

    pthread_rwlock_wrlock(&db->lock);
    n = find(db, key, klen, update);
    if (!expect_holds(n, expect)) {
        rc = MH_E_CONFLICT;
        goto out;
    }
    bytes = db->bytes - (n ? n->klen + n->vlen : 0);
    if (db->max_bytes && (klen + vlen > db->max_bytes || bytes > db->max_bytes - klen - vlen)) {
        rc = MH_E_LIMIT;
        mh_store_set_error("the store would exceed its max_bytes of %zu (holds %zu, the record "
                           "has %zu)",
                           db->max_bytes, db->bytes, klen + vlen);
        goto out;
    }
    if (n) {
        free(n->val);
        n->val = copy;
        n->vlen = vlen;
        *created = 0;
    } else {
        n = insert(db, update, key, klen, copy, vlen);
        if (!n) {
            rc = MH_E_NOMEM;
            mh_store_set_error("out of memory adding a key of %zu bytes", klen);
            goto out;
        }
        *created = 1;
    }
    copy = NULL; /* the node owns it */
    db->bytes = bytes + klen + vlen;
    n->version = ++db->version;
    *version = n->version;
out:
    pthread_rwlock_unlock(&db->lock);
    free(copy);
    return rc;
}

static enum mh_status memory_del(void *arg, const void *key, size_t klen, uint64_t expect)
{
    struct mem_db *db = arg;
    struct node *update[MAX_LEVEL];
    enum mh_status rc = MH_OK;
    struct node *n;

    pthread_rwlock_wrlock(&db->lock);
    n = find(db, key, klen, update);
    if (!n) {
        rc = MH_E_NOTFOUND;
        mh_store_set_error("no such key (%zu bytes)", klen);
    } else if (!expect_holds(n, expect)) {
        rc = MH_E_CONFLICT;
        n = NULL;
    } else {
        unlink_node(db, update, n);
        db->bytes -= n->klen + n->vlen;
    }
    pthread_rwlock_unlock(&db->lock);
    if (rc == MH_OK)
        node_free(n);
    return rc;
}

/* --- Scans --- */

/* Copies up to @p want records (> 0) that start with @p prefix, beginning at @p start
 * (exclusively if @p exclusive), into @p b. */
static enum mh_status collect(struct mem_db *db, const void *prefix, size_t plen, const void *start,
                              size_t slen, bool exclusive, size_t want, struct batch *b)
{
    enum mh_status rc = MH_OK;
    size_t bytes = 0;
    const struct node *n;

    if (want > SCAN_BATCH_RECORDS)
        want = SCAN_BATCH_RECORDS;
    b->is_last = false;
    pthread_rwlock_rdlock(&db->lock);
    for (n = seek(db, start, slen, exclusive, NULL); n; n = n->next[0]) {
        struct rec *r = &b->recs[b->n];

        if (n->klen < plen || memcmp(node_key(n), prefix, plen) != 0)
            break;
        if (b->n == want || bytes >= SCAN_BATCH_BYTES)
            goto out;
        r->key = malloc(n->klen + n->vlen + 1);
        if (!r->key) {
            rc = MH_E_NOMEM;
            mh_store_set_error("out of memory copying scan results");
            goto out;
        }
        memcpy(r->key, node_key(n), n->klen);
        memcpy(r->key + n->klen, n->val, n->vlen);
        r->klen = n->klen;
        r->vlen = n->vlen;
        r->version = n->version;
        bytes += n->klen + n->vlen;
        b->n++;
    }
    b->is_last = true;
out:
    pthread_rwlock_unlock(&db->lock);
    return rc;
}

static enum mh_status collect_any(void *db, const void *prefix, size_t plen, const void *start,
                                  size_t slen, bool exclusive, size_t want, struct batch *b)
{
    return collect(db, prefix, plen, start, slen, exclusive, want, b);
}

static enum mh_status memory_scan(void *arg, const void *prefix, size_t plen, const void *after,
                                  size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg)
{
    return store_scan_pages(arg, collect_any, prefix, plen, after, alen, limit, fn, fn_arg);
}

static const struct mh_store_driver memory_drivers[] = {
    {
        .size = sizeof(struct mh_store_driver),
        .name = "memory",
        .caps = MH_STORE_CAP_CAS | MH_STORE_CAP_SCAN,
        .open = memory_open,
        .close = memory_close,
        .get = memory_get,
        .put = memory_put,
        .del = memory_del,
        .scan = memory_scan,
        .settings = memory_settings,
    },
    {0},
};

/* The module itself takes no settings (each store has its own, read in memory_open). */
static const struct mh_setting_def no_settings[] = {{NULL, 0, NULL}};

MH_MODULE(.name = "store_memory", .version = "1.0.0", .flags = MH_MODULE_UNLOAD_SAFE,
          .settings = no_settings, .drivers = memory_drivers)
