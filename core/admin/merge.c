/* Prometheus text of several processes merged into one (see merge.h). */
#include "admin/merge.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"

/* Gauges every process reports alike: the merge takes the largest, never the sum. */
static const char *const same_everywhere[] = {
    "modhost_build_info",       "modhost_uptime_seconds", "modhost_generation",
    "modhost_generations_live", "modhost_modules_loaded", "modhost_reloads_total",
};

struct series {
    const char *key; /* into one of the inputs */
    size_t klen;
    double value;
    size_t family;
};

struct family {
    const char *name;
    size_t nlen;
    const char *help, *type; /* whole lines (without the newline), NULL until seen */
    size_t help_len, type_len;
    bool max;       /* take the largest value, not the sum */
    size_t *series; /* indexes into merge.series, in order of appearance */
    size_t n, cap;
};

struct merge {
    struct family *fam;
    size_t nfam, capfam;
    struct series *series;
    size_t nseries, capseries;
    size_t *slots; /* open addressing: series index + 1, 0 for empty */
    size_t nslots;
};

static size_t family_of(struct merge *m, const char *name, size_t nlen)
{
    struct family *f;

    for (size_t i = 0; i < m->nfam; i++) {
        if (m->fam[i].nlen == nlen && memcmp(m->fam[i].name, name, nlen) == 0)
            return i;
    }
    if (m->nfam == m->capfam) {
        m->capfam = m->capfam ? m->capfam * 2 : 64;
        m->fam = mh_xrealloc(m->fam, m->capfam * sizeof(*m->fam));
    }
    f = &m->fam[m->nfam];
    memset(f, 0, sizeof(*f));
    f->name = name;
    f->nlen = nlen;
    for (size_t i = 0; i < sizeof(same_everywhere) / sizeof(same_everywhere[0]); i++) {
        if (strlen(same_everywhere[i]) == nlen && memcmp(same_everywhere[i], name, nlen) == 0)
            f->max = true;
    }
    return m->nfam++;
}

static void grow_slots(struct merge *m)
{
    size_t n = m->nslots ? m->nslots * 2 : 1024;

    free(m->slots);
    m->slots = mh_xcalloc(n, sizeof(*m->slots));
    m->nslots = n;
    for (size_t i = 0; i < m->nseries; i++) {
        size_t h = (size_t)mh_hash(m->series[i].key, m->series[i].klen) & (n - 1);

        while (m->slots[h])
            h = (h + 1) & (n - 1);
        m->slots[h] = i + 1;
    }
}

static void add_sample(struct merge *m, size_t fam, const char *key, size_t klen, double v)
{
    struct family *f = &m->fam[fam];
    size_t h;

    if (2 * (m->nseries + 1) > m->nslots)
        grow_slots(m);
    h = (size_t)mh_hash(key, klen) & (m->nslots - 1);
    for (; m->slots[h]; h = (h + 1) & (m->nslots - 1)) {
        struct series *s = &m->series[m->slots[h] - 1];

        if (s->klen == klen && memcmp(s->key, key, klen) == 0) {
            if (m->fam[s->family].max)
                s->value = v > s->value ? v : s->value;
            else
                s->value += v;
            return;
        }
    }
    if (m->nseries == m->capseries) {
        m->capseries = m->capseries ? m->capseries * 2 : 256;
        m->series = mh_xrealloc(m->series, m->capseries * sizeof(*m->series));
    }
    m->series[m->nseries] = (struct series){.key = key, .klen = klen, .value = v, .family = fam};
    m->slots[h] = ++m->nseries;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->series = mh_xrealloc(f->series, f->cap * sizeof(*f->series));
    }
    f->series[f->n++] = m->nseries - 1;
}

/* "# HELP NAME ..." or "# TYPE NAME TYPE": the family it names, or SIZE_MAX. */
static size_t comment_family(struct merge *m, const char *line, size_t len, bool *is_type)
{
    const char *name, *end;

    if (len > 7 && memcmp(line, "# HELP ", 7) == 0)
        *is_type = false;
    else if (len > 7 && memcmp(line, "# TYPE ", 7) == 0)
        *is_type = true;
    else
        return SIZE_MAX;
    name = line + 7;
    end = memchr(name, ' ', len - 7);
    if (!end || end == name)
        return SIZE_MAX;
    return family_of(m, name, (size_t)(end - name));
}

/* A "# HELP" or "# TYPE" line: noted for its family (the first one of each kind counts).
 * @return the family whose samples follow: the one a TYPE line names, else @p cur. */
static size_t comment_line(struct merge *m, const char *p, size_t len, size_t cur)
{
    bool is_type = false;
    size_t f = comment_family(m, p, len, &is_type);
    struct family *fam;

    if (f == SIZE_MAX)
        return cur;
    fam = &m->fam[f];
    if (!is_type) {
        if (!fam->help) {
            fam->help = p;
            fam->help_len = len;
        }
        return cur;
    }
    if (!fam->type) {
        fam->type = p;
        fam->type_len = len;
    }
    return f;
}

/* A sample line "SERIES VALUE" of family @p cur; one whose value is not a number is left out. */
static void sample_line(struct merge *m, size_t cur, const char *p, size_t len)
{
    const char *sp = p + len;
    char num[64];
    char *stop;
    double v;

    while (sp > p && sp[-1] != ' ')
        sp--;
    if (sp <= p + 1 || (size_t)(p + len - sp) >= sizeof(num))
        return;
    memcpy(num, sp, (size_t)(p + len - sp));
    num[p + len - sp] = '\0';
    v = strtod(num, &stop);
    if (stop != num && *stop == '\0')
        add_sample(m, cur, p, (size_t)(sp - 1 - p), v);
}

static void parse(struct merge *m, const struct mh_prom_text *t)
{
    size_t cur = SIZE_MAX;
    const char *p = t->data, *end = t->data + t->len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

        if (p[0] == '#') /* an empty line is its '\n' */
            cur = comment_line(m, p, len, cur);
        else if (cur != SIZE_MAX)
            sample_line(m, cur, p, len); /* which leaves out an empty one */
        p += len + 1;
    }
}

static void put_value(struct mh_buf *out, double v)
{
    if (isnan(v))
        mh_buf_add(out, "NaN", 3);
    else if (isinf(v))
        mh_buf_printf(out, "%cInf", v > 0 ? '+' : '-');
    else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(long long)v)
        mh_buf_printf(out, "%.0f", v);
    else
        mh_buf_printf(out, "%.17g", v);
}

void mh_prom_merge(const struct mh_prom_text *texts, size_t n, struct mh_buf *out)
{
    struct merge m = {0};

    for (size_t i = 0; i < n; i++)
        parse(&m, &texts[i]);
    for (size_t i = 0; i < m.nfam; i++) {
        const struct family *f = &m.fam[i];

        if (!f->type)
            continue; /* a HELP without its TYPE: nothing it could describe */
        if (f->help) {
            mh_buf_add(out, f->help, f->help_len);
            mh_buf_add(out, "\n", 1);
        }
        mh_buf_add(out, f->type, f->type_len);
        mh_buf_add(out, "\n", 1);
        for (size_t k = 0; k < f->n; k++) {
            const struct series *s = &m.series[f->series[k]];

            mh_buf_add(out, s->key, s->klen);
            mh_buf_add(out, " ", 1);
            put_value(out, s->value);
            mh_buf_add(out, "\n", 1);
        }
    }
    for (size_t i = 0; i < m.nfam; i++)
        free(m.fam[i].series);
    free(m.fam);
    free(m.series);
    free(m.slots);
}
