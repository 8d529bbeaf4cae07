/*
 * The store contract of the "redis" driver: how records are laid out on the server (the Lua
 * scripts), get, put and delete with compare-and-set, and scans in key order. Sending the
 * commands is redis_pool.c's; the paging of scans is store_scan.h's.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "../store_common/store_scan.h"
#include "modhost/sdk.h"
#include "store_redis.h"

/* KEYS: record, counter, index. ARGV: value, mode (any|absent|exists|ver), expected version,
 * raw key. Returns {1, version, created} or {0, current version or "0"}. */
static const char put_lua[] =
    "local cur = redis.call('HGET', KEYS[1], 'ver')\n"
    "local m = ARGV[2]\n"
    "if m == 'absent' and cur then return {0, cur} end\n"
    "if m ~= 'any' and m ~= 'absent' and not cur then return {0, '0'} end\n"
    "if m == 'ver' and cur ~= ARGV[3] then return {0, cur} end\n"
    "local v = string.format('%d', redis.call('INCR', KEYS[2]))\n"
    "redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', v)\n"
    "if not cur then redis.call('ZADD', KEYS[3], 0, ARGV[4]) end\n"
    "return {1, v, cur and 0 or 1}\n";

/* KEYS: record, index. ARGV: mode (any|ver), expected version, raw key.
 * Returns 1 deleted, 0 no such key, or the current version (a string) on a conflict. */
static const char del_lua[] = "local cur = redis.call('HGET', KEYS[1], 'ver')\n"
                              "if not cur then return 0 end\n"
                              "if ARGV[1] == 'ver' and cur ~= ARGV[2] then return cur end\n"
                              "redis.call('DEL', KEYS[1])\n"
                              "redis.call('ZREM', KEYS[2], ARGV[3])\n"
                              "return 1\n";

/* KEYS: index. ARGV: lexical minimum, count, record key prefix. Returns key, value, version
 * triples in key order: one consistent batch. */
static const char scan_lua[] =
    "local ks = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))\n"
    "local out = {}\n"
    "for _, k in ipairs(ks) do\n"
    "  local r = redis.call('HMGET', ARGV[3] .. k, 'v', 'ver')\n"
    "  if r[2] then out[#out + 1] = k; out[#out + 1] = r[1]; out[#out + 1] = r[2] end\n"
    "end\n"
    "return out\n";

const char *const mh_redis_scripts[MH_RS_NSCRIPT] = {put_lua, del_lua, scan_lua};

/* The record key of @p key in @p buf (at least plen + klen bytes). */
static size_t record_key(const struct rs_store *s, char *buf, const void *key, size_t klen)
{
    memcpy(buf, s->prefix, s->plen);
    memcpy(buf + s->plen, key, klen);
    return s->plen + klen;
}

static uint64_t reply_u64(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return (uint64_t)r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

enum mh_status mh_redis_get(void *arg, const void *key, size_t klen, struct mh_value *out)
{
    struct rs_store *s = arg;
    char rkey[MAX_PREFIX + 3 + MH_STORE_MAX_KEY];
    const char *argv[4] = {"HMGET", rkey, "v", "ver"};
    size_t len[4] = {5, record_key(s, rkey, key, klen), 1, 3};
    redisReply *r = NULL;
    struct pconn *c;
    enum mh_status rc = mh_redis_conn_take(s, &c);

    if (rc != MH_OK)
        return rc;
    rc = mh_redis_call(s, c, 4, argv, len, "cannot read", &r);
    mh_redis_conn_release(s, c);
    if (rc != MH_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        mh_store_set_error("no such key (%zu bytes)", klen);
        return MH_E_NOTFOUND;
    }
    out->data = malloc(r->element[0]->len + 1);
    if (!out->data) {
        freeReplyObject(r);
        mh_store_set_error("out of memory copying a value");
        return MH_E_NOMEM;
    }
    memcpy(out->data, r->element[0]->str, r->element[0]->len);
    ((char *)out->data)[r->element[0]->len] = '\0';
    out->len = r->element[0]->len;
    out->version = reply_u64(r->element[1]);
    freeReplyObject(r);
    return MH_OK;
}

enum mh_status mh_redis_put(void *arg, const void *key, size_t klen, const void *val, size_t vlen,
                            uint64_t expect, uint64_t *version, int *created)
{
    struct rs_store *s = arg;
    char rkey[MAX_PREFIX + 3 + MH_STORE_MAX_KEY], ver[24];
    const char *mode = expect == MH_STORE_ANY      ? "any"
                       : expect == MH_STORE_ABSENT ? "absent"
                       : expect == MH_STORE_EXISTS ? "exists"
                                                   : "ver";
    size_t verlen = (size_t)snprintf(ver, sizeof(ver), "%" PRIu64, expect);
    const char *args[7] = {rkey, s->ver_key, s->idx_key, vlen ? val : "", mode, ver, key};
    size_t lens[7] = {record_key(s, rkey, key, klen),
                      strlen(s->ver_key),
                      strlen(s->idx_key),
                      vlen,
                      strlen(mode),
                      verlen,
                      klen};
    redisReply *r = NULL;
    enum mh_status rc = mh_redis_eval(s, MH_RS_PUT, 7, args, lens, "cannot write", &r);

    if (rc != MH_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        freeReplyObject(r);
        mh_store_set_error("%s: unexpected reply to a write", s->what);
        return MH_E_IO;
    }
    if (reply_u64(r->element[0]) == 0) {
        uint64_t cur = reply_u64(r->element[1]);

        freeReplyObject(r);
        if (cur == 0)
            mh_store_set_error("expected %s, but the key does not exist",
                               expect == MH_STORE_EXISTS ? "an existing key" : "a version");
        else if (expect == MH_STORE_ABSENT)
            mh_store_set_error("the key exists (version %" PRIu64 ")", cur);
        else
            mh_store_set_error("expected version %" PRIu64 ", found %" PRIu64, expect, cur);
        return MH_E_CONFLICT;
    }
    *version = reply_u64(r->element[1]);
    *created = r->elements > 2 && reply_u64(r->element[2]) == 1;
    freeReplyObject(r);
    return MH_OK;
}

enum mh_status mh_redis_del(void *arg, const void *key, size_t klen, uint64_t expect)
{
    struct rs_store *s = arg;
    char rkey[MAX_PREFIX + 3 + MH_STORE_MAX_KEY], ver[24];
    const char *mode = expect == MH_STORE_ANY || expect == MH_STORE_EXISTS ? "any" : "ver";
    size_t verlen = (size_t)snprintf(ver, sizeof(ver), "%" PRIu64, expect);
    const char *args[5] = {rkey, s->idx_key, mode, ver, key};
    size_t lens[5] = {record_key(s, rkey, key, klen), strlen(s->idx_key), strlen(mode), verlen,
                      klen};
    redisReply *r = NULL;
    enum mh_status rc = mh_redis_eval(s, MH_RS_DEL, 5, args, lens, "cannot delete", &r);

    if (rc != MH_OK)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        rc = MH_OK;
    } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        mh_store_set_error("no such key (%zu bytes)", klen);
        rc = MH_E_NOTFOUND;
    } else {
        mh_store_set_error("expected version %" PRIu64 ", found %" PRIu64, expect, reply_u64(r));
        rc = MH_E_CONFLICT;
    }
    freeReplyObject(r);
    return rc;
}

/* --- Scans --- */

/* The ZRANGEBYLEX lower bound in @p buf (1 + @p slen bytes): every key, the keys from
 * @p start, or those after it. @return its length. */
static size_t lex_min(char *buf, const void *start, size_t slen, bool exclusive)
{
    if (!exclusive && slen == 0) {
        buf[0] = '-';
        return 1;
    }
    buf[0] = exclusive ? '(' : '[';
    memcpy(buf + 1, start, slen);
    return 1 + slen;
}

static enum mh_status collect(void *arg, const void *prefix, size_t plen, const void *start,
                              size_t slen, bool exclusive, size_t want, struct batch *b)
{
    struct rs_store *s = arg;
    char min[1 + MH_STORE_MAX_KEY], count[24];
    const char *args[4] = {s->idx_key, min, count, s->prefix};
    size_t lens[4] = {strlen(s->idx_key), 0, 0, s->plen};
    redisReply *r = NULL;
    enum mh_status rc;
    size_t bytes = 0, i;

    if (want > SCAN_BATCH_RECORDS)
        want = SCAN_BATCH_RECORDS;
    b->is_last = false;
    lens[1] = lex_min(min, start, slen, exclusive);
    lens[2] = (size_t)snprintf(count, sizeof(count), "%zu", want);
    rc = mh_redis_eval(s, MH_RS_SCAN, 4, args, lens, "cannot scan", &r);
    if (rc != MH_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0) {
        freeReplyObject(r);
        mh_store_set_error("%s: unexpected reply to a scan", s->what);
        return MH_E_IO;
    }
    for (i = 0; i + 2 < r->elements && bytes < SCAN_BATCH_BYTES; i += 3) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        struct rec *rec = &b->recs[b->n];

        if (k->len < plen || memcmp(k->str, prefix, plen) != 0) {
            b->is_last = true; /* past the prefix: no later key has it */
            break;
        }
        rec->key = malloc(k->len + v->len + 1);
        if (!rec->key) {
            freeReplyObject(r);
            mh_store_set_error("out of memory copying scan results");
            return MH_E_NOMEM;
        }
        memcpy(rec->key, k->str, k->len);
        memcpy(rec->key + k->len, v->str, v->len);
        rec->klen = k->len;
        rec->vlen = v->len;
        rec->version = reply_u64(r->element[i + 2]);
        b->n++;
        bytes += k->len + v->len;
    }
    /* A short batch is the end, unless records vanished between the index and their hash
     * (never inside one script) or the byte budget cut it. */
    if (i >= r->elements && r->elements / 3 < want)
        b->is_last = true;
    freeReplyObject(r);
    return MH_OK;
}

enum mh_status mh_redis_scan(void *arg, const void *prefix, size_t plen, const void *after,
                             size_t alen, size_t limit, mh_scan_fn fn, void *fn_arg)
{
    return store_scan_pages(arg, collect, prefix, plen, after, alen, limit, fn, fn_arg);
}
