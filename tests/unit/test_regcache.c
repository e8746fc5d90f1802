/*
 * test_regcache.c - the transports' registration cache
 * (src/transport/regcache.h) over a fake registrar, no device:
 * hits and misses, overlapping ranges and merging, LRU eviction order, the
 * pinned-bytes and entry limits (BUSY, TOOBIG), invalidation of unused and
 * in-use regions, registrar failures, fini, and a randomized run compared
 * step by step with a simple reference model (linear scans over an array).
 *
 * The fake registrar never touches the addresses, so they are plain
 * numbers; it records every live registration, so "each registration is
 * deregistered exactly once" is checked directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/regcache.h"
#include "st_test.h"

#define PG 4096u

/* splitmix64: the same sequence on every machine. */
static uint64_t scomm_test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- fake registrar ------------------------------------------------------ */

#define FAKE_MAX 4096

typedef struct fake {
    uintptr_t start[FAKE_MAX];
    size_t    len[FAKE_MAX];
    int       live[FAKE_MAX];
    int       n;
    int       nlive;
    int       fail_next;
    uint64_t  regs;
    uint64_t  deregs;
} fake_t;

static int fake_reg(void *arg, void *addr, size_t len, void **handle,
                    void **desc, uint64_t *key)
{
    fake_t *f = arg;

    if (f->fail_next) {
        f->fail_next = 0;
        return -1;
    }
    ST_ASSERT(f->n < FAKE_MAX);
    ST_ASSERT(((uintptr_t)addr % PG) == 0);
    ST_ASSERT((len % PG) == 0);
    f->start[f->n] = (uintptr_t)addr;
    f->len[f->n]   = len;
    f->live[f->n]  = 1;
    *handle        = (void *)(uintptr_t)(f->n + 1);
    *desc          = (void *)(uintptr_t)(1000 + f->n);
    *key           = (uint64_t)(2000 + f->n);
    f->n++;
    f->nlive++;
    f->regs++;
    return 0;
}

static void fake_dereg(void *arg, void *handle)
{
    fake_t *f = arg;
    int i     = (int)(uintptr_t)handle - 1;

    ST_ASSERT((i >= 0) && (i < f->n));
    ST_ASSERT(f->live[i]); /* never twice */
    f->live[i] = 0;
    f->nlive--;
    f->deregs++;
}

static const scomm_rcache_ops_t fake_ops = {fake_reg, fake_dereg};

static int fake_is_live(const fake_t *f, uintptr_t start, size_t len)
{
    int i;

    for (i = 0; i < f->n; i++) {
        if (f->live[i] && (f->start[i] == start) && (f->len[i] == len)) {
            return 1;
        }
    }
    return 0;
}

static void *A(uintptr_t x)
{
    return (void *)x;
}

static void check_invariants(const scomm_rcache_t *rc, const fake_t *f)
{
    uint64_t sum = 0;
    size_t i;

    ST_ASSERT(rc->pinned <= rc->max_bytes);
    ST_ASSERT(rc->nlive <= rc->max_entries);
    ST_ASSERT_EQ((size_t)f->nlive, rc->nlive + rc->nstale);
    for (i = 0; i < rc->nlive; i++) {
        sum += rc->live[i]->end - rc->live[i]->start;
        ST_ASSERT(!rc->live[i]->stale);
        if (i > 0) {
            ST_ASSERT(rc->live[i - 1]->start <= rc->live[i]->start);
        }
    }
    for (i = 0; i < rc->nstale; i++) {
        sum += rc->stale[i]->end - rc->stale[i]->start;
        ST_ASSERT(rc->stale[i]->stale && (rc->stale[i]->refs > 0));
    }
    ST_ASSERT_EQ(sum, rc->pinned);
}

/* ---- deterministic cases ------------------------------------------------- */

static void test_hit_miss(void)
{
    scomm_rcache_region_t *r1, *r2, *r3;
    scomm_rcache_t rc;
    fake_t f;

    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 64, PG), 0);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10010), 100, &r1), 0);
    ST_ASSERT_EQ(rc.misses, 1);
    ST_ASSERT_EQ(r1->start, 0x10000);
    ST_ASSERT_EQ(r1->end, 0x11000);
    ST_ASSERT(r1->desc != NULL);
    ST_ASSERT(r1->key != 0);
    /* Inside the same pages: a hit on the same region. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10800), 0x800, &r2), 0);
    ST_ASSERT(r2 == r1);
    ST_ASSERT_EQ(rc.hits, 1);
    ST_ASSERT_EQ(r1->refs, 2);
    /* One byte past the end: a miss. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10800), 0x801, &r3), 0);
    ST_ASSERT(r3 != r1);
    ST_ASSERT_EQ(rc.misses, 2);
    ST_ASSERT_EQ(f.regs, 2);
    /* A zero-length range still registers its page. */
    scomm_rcache_put(&rc, r3);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x50000), 0, &r3), 0);
    ST_ASSERT_EQ(r3->end - r3->start, PG);
    scomm_rcache_put(&rc, r3);
    scomm_rcache_put(&rc, r2);
    scomm_rcache_put(&rc, r1);
    ST_ASSERT_EQ(r1->refs, 0);
    /* NULL and wrapping ranges are refused. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, NULL, 10, &r1), SCOMM_RCACHE_INVAL);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(UINTPTR_MAX - 10), 100, &r1),
                 SCOMM_RCACHE_INVAL);
    check_invariants(&rc, &f);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f.nlive, 0);
    ST_ASSERT_EQ(f.regs, f.deregs);
    /* Bad parameters. */
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 64, 3000),
                 SCOMM_RCACHE_INVAL);
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 0, PG),
                 SCOMM_RCACHE_INVAL);
    ST_ASSERT_EQ(scomm_rcache_init(&rc, NULL, &f, 1 << 20, 8, PG),
                 SCOMM_RCACHE_INVAL);
}

static void test_overlap_merge(void)
{
    scomm_rcache_region_t *a, *b, *m, *h;
    scomm_rcache_t rc;
    fake_t f;

    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 64, PG), 0);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), PG, &a), 0);
    /* Overlaps a, which is in use: a second region, no merge. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10800), 2 * PG, &b), 0);
    ST_ASSERT(a != b);
    ST_ASSERT_EQ(rc.nlive, 2);
    ST_ASSERT_EQ(rc.merges, 0);
    ST_ASSERT_EQ(b->start, 0x10000);
    ST_ASSERT_EQ(b->end, 0x13000);
    /* Both cover [0x10000, 0x10100): the smaller one wins. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), 0x100, &h), 0);
    ST_ASSERT(h == a);
    scomm_rcache_put(&rc, h);
    scomm_rcache_put(&rc, a);
    scomm_rcache_put(&rc, b);
    /* A wider range swallows both unused regions into one. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x12000), 4 * PG, &m), 0);
    ST_ASSERT_EQ(rc.nlive, 1);
    ST_ASSERT_EQ(rc.merges, 2);
    ST_ASSERT_EQ(m->start, 0x10000);
    ST_ASSERT_EQ(m->end, 0x16000);
    ST_ASSERT(fake_is_live(&f, 0x10000, 0x6000));
    ST_ASSERT_EQ(f.nlive, 1);
    ST_ASSERT_EQ(rc.pinned, 0x6000);
    /* Now everything inside is a hit. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), 0x6000, &h), 0);
    ST_ASSERT(h == m);
    scomm_rcache_put(&rc, h);
    scomm_rcache_put(&rc, m);
    check_invariants(&rc, &f);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f.nlive, 0);
}

static void test_eviction_order(void)
{
    scomm_rcache_region_t *r[5], *h;
    scomm_rcache_t rc;
    fake_t f;
    int i;

    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 4 * PG, 64, PG), 0);
    for (i = 0; i < 4; i++) {
        ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x100000 + i * 0x10000), PG,
                                      &r[i]), 0);
        scomm_rcache_put(&rc, r[i]);
    }
    ST_ASSERT_EQ(rc.pinned, 4 * PG);
    /* Touch 0 and 2: the least recently used are now 1, then 3. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x100000), 8, &h), 0);
    scomm_rcache_put(&rc, h);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x120000), 8, &h), 0);
    scomm_rcache_put(&rc, h);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x200000), PG, &r[4]), 0);
    ST_ASSERT_EQ(rc.evictions, 1);
    ST_ASSERT(!fake_is_live(&f, 0x110000, PG));
    ST_ASSERT(fake_is_live(&f, 0x130000, PG));
    scomm_rcache_put(&rc, r[4]);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x210000), 2 * PG, &h), 0);
    ST_ASSERT_EQ(rc.evictions, 3); /* 3, then 0 */
    ST_ASSERT(!fake_is_live(&f, 0x130000, PG));
    ST_ASSERT(!fake_is_live(&f, 0x100000, PG));
    ST_ASSERT(fake_is_live(&f, 0x120000, PG));
    ST_ASSERT(fake_is_live(&f, 0x200000, PG));
    scomm_rcache_put(&rc, h);
    check_invariants(&rc, &f);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f.nlive, 0);
}

static void test_limits(void)
{
    scomm_rcache_region_t *r[4], *h;
    scomm_rcache_t rc;
    fake_t f;
    int i;

    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 3 * PG, 64, PG), 0);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), 3 * PG + 1, &h),
                 SCOMM_RCACHE_TOOBIG);
    for (i = 0; i < 3; i++) {
        ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000 + i * 0x10000), PG,
                                      &r[i]), 0);
    }
    /* Every pinned byte is in use: busy, nothing evicted or registered. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x80000), PG, &h),
                 SCOMM_RCACHE_BUSY);
    ST_ASSERT_EQ(rc.evictions, 0);
    ST_ASSERT_EQ(f.regs, 3);
    /* One put makes room. */
    scomm_rcache_put(&rc, r[1]);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x80000), PG, &h), 0);
    ST_ASSERT_EQ(rc.evictions, 1);
    ST_ASSERT_EQ(rc.pinned, 3 * PG);
    scomm_rcache_put(&rc, h);
    scomm_rcache_put(&rc, r[0]);
    scomm_rcache_put(&rc, r[2]);
    /* put of NULL or of an unreferenced region is harmless. */
    scomm_rcache_put(&rc, NULL);
    scomm_rcache_put(&rc, h);
    check_invariants(&rc, &f);
    scomm_rcache_fini(&rc);

    /* The entry limit evicts too. */
    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 30, 2, PG), 0);
    for (i = 0; i < 4; i++) {
        ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000 + i * 0x10000), PG,
                                      &r[i]), 0);
        scomm_rcache_put(&rc, r[i]);
        ST_ASSERT(rc.nlive <= 2);
    }
    ST_ASSERT_EQ(rc.evictions, 2);
    check_invariants(&rc, &f);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f.nlive, 0);

    /* A registrar failure leaves nothing behind. */
    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 8, PG), 0);
    f.fail_next = 1;
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), PG, &h),
                 SCOMM_RCACHE_REGFAIL);
    ST_ASSERT_EQ(rc.nlive, 0);
    ST_ASSERT_EQ(rc.pinned, 0);
    ST_ASSERT_EQ(rc.misses, 0);
    ST_ASSERT(strstr(scomm_rcache_strerror(SCOMM_RCACHE_REGFAIL),
                     "registration") != NULL);
    scomm_rcache_fini(&rc);
}

static void test_invalidate(void)
{
    scomm_rcache_region_t *used, *idle, *h, *h2;
    scomm_rcache_t rc;
    fake_t f;

    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 64, PG), 0);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), PG, &used), 0);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x30000), PG, &idle), 0);
    scomm_rcache_put(&rc, idle);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x50000), PG, &h), 0);
    scomm_rcache_put(&rc, h);
    /* Nothing overlaps: nothing dropped; zero length drops nothing. */
    ST_ASSERT_EQ(scomm_rcache_invalidate(&rc, A(0x20000), 0x1000), 0);
    ST_ASSERT_EQ(scomm_rcache_invalidate(&rc, A(0x10000), 0), 0);
    /* One byte of each of the first two regions. */
    ST_ASSERT_EQ(scomm_rcache_invalidate(&rc, A(0x10fff), 0x20002), 2);
    ST_ASSERT(!fake_is_live(&f, 0x30000, PG)); /* idle: at once */
    ST_ASSERT(fake_is_live(&f, 0x10000, PG));  /* used: still pinned */
    ST_ASSERT(used->stale);
    ST_ASSERT_EQ(rc.nstale, 1);
    /* The stale region is not found again: a fresh registration. */
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), 8, &h2), 0);
    ST_ASSERT(h2 != used);
    ST_ASSERT_EQ(f.nlive, 3);
    check_invariants(&rc, &f);
    scomm_rcache_put(&rc, used); /* last reference: deregistered now */
    ST_ASSERT_EQ(rc.nstale, 0);
    ST_ASSERT_EQ(f.nlive, 2);
    check_invariants(&rc, &f);
    /* fini takes a stale region still in use too. */
    ST_ASSERT_EQ(scomm_rcache_invalidate(&rc, A(0x10000), PG), 1);
    ST_ASSERT_EQ(rc.nstale, 1);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f.nlive, 0);
    ST_ASSERT_EQ(f.regs, f.deregs);
    /* An invalidation range running past the top of memory. */
    memset(&f, 0, sizeof(f));
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, &f, 1 << 20, 64, PG), 0);
    ST_ASSERT_EQ(scomm_rcache_get(&rc, A(0x10000), PG, &h), 0);
    scomm_rcache_put(&rc, h);
    ST_ASSERT_EQ(scomm_rcache_invalidate(&rc, A(0x8000), SIZE_MAX), 1);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f.nlive, 0);
}

/* ---- reference model ----------------------------------------------------- */

#define REF_MAX 512

typedef struct ref_region {
    uintptr_t start, end;
    uint32_t  refs;
    uint64_t  last_use, seq;
} ref_region_t;

typedef struct ref {
    ref_region_t live[REF_MAX]; /* sorted by (start, seq) */
    int          nlive;
    ref_region_t stale[REF_MAX]; /* invalidated while held */
    int          nstale;
    uint64_t     stale_pinned;
    uint64_t     clock, seq, pinned, max_bytes;
    size_t       max_entries;
} ref_t;

static void ref_remove(ref_t *m, int i)
{
    m->pinned -= m->live[i].end - m->live[i].start;
    memmove(&m->live[i], &m->live[i + 1],
            (size_t)(m->nlive - i - 1) * sizeof(m->live[0]));
    m->nlive--;
}

/* Returns the cache's code; *hit, *start, *end, *seq describe the
 * result. */
static int ref_get(ref_t *m, uintptr_t a, size_t len, int *hit,
                   uintptr_t *start, uintptr_t *end, uint64_t *seq)
{
    uintptr_t s, e, ns, ne;
    int i, best = -1, changed, victim;

    if (len == 0) {
        len = 1;
    }
    for (i = 0; i < m->nlive; i++) {
        ref_region_t *r = &m->live[i];

        if ((r->start > a) || (r->end < a + len)) {
            continue;
        }
        if ((best < 0) ||
            (r->end - r->start < m->live[best].end - m->live[best].start) ||
            ((r->end - r->start == m->live[best].end - m->live[best].start) &&
             ((r->start > m->live[best].start) ||
              ((r->start == m->live[best].start) &&
               (r->seq > m->live[best].seq))))) {
            best = i;
        }
    }
    if (best >= 0) {
        m->live[best].refs++;
        m->live[best].last_use = ++m->clock;
        *hit   = 1;
        *start = m->live[best].start;
        *end   = m->live[best].end;
        *seq   = m->live[best].seq;
        return 0;
    }
    *hit = 0;
    s    = a & ~(uintptr_t)(PG - 1);
    e    = (a + len + PG - 1) & ~(uintptr_t)(PG - 1);
    if (e - s > m->max_bytes) {
        return SCOMM_RCACHE_TOOBIG;
    }
    ns      = s;
    ne      = e;
    changed = 1;
    while (changed) {
        changed = 0;
        for (i = 0; i < m->nlive; i++) {
            ref_region_t *r = &m->live[i];
            uintptr_t us, ue;

            if ((r->refs != 0) || (r->start >= ne) || (r->end <= ns) ||
                ((r->start >= ns) && (r->end <= ne))) {
                continue;
            }
            us = (r->start < ns) ? r->start : ns;
            ue = (r->end > ne) ? r->end : ne;
            if (ue - us > m->max_bytes) {
                continue;
            }
            ns      = us;
            ne      = ue;
            changed = 1;
        }
    }
    for (i = m->nlive - 1; i >= 0; i--) {
        if ((m->live[i].refs == 0) && (m->live[i].start >= ns) &&
            (m->live[i].end <= ne)) {
            ref_remove(m, i);
        }
    }
    s = ns;
    e = ne;
    while ((m->pinned + m->stale_pinned + (e - s) > m->max_bytes) ||
           ((size_t)m->nlive >= m->max_entries)) {
        victim = -1;
        for (i = 0; i < m->nlive; i++) {
            if ((m->live[i].refs == 0) &&
                ((victim < 0) ||
                 (m->live[i].last_use < m->live[victim].last_use))) {
                victim = i;
            }
        }
        if (victim < 0) {
            return SCOMM_RCACHE_BUSY;
        }
        ref_remove(m, victim);
    }
    ST_ASSERT(m->nlive < REF_MAX);
    for (i = 0; (i < m->nlive) && (m->live[i].start <= s); i++) {
    }
    memmove(&m->live[i + 1], &m->live[i],
            (size_t)(m->nlive - i) * sizeof(m->live[0]));
    m->live[i].start    = s;
    m->live[i].end      = e;
    m->live[i].refs     = 1;
    m->live[i].last_use = ++m->clock;
    m->live[i].seq      = ++m->seq;
    m->nlive++;
    m->pinned += e - s;
    *start = s;
    *end   = e;
    *seq   = m->seq;
    return 0;
}

static int ref_find_seq(const ref_t *m, uint64_t seq)
{
    int i;

    for (i = 0; i < m->nlive; i++) {
        if (m->live[i].seq == seq) {
            return i;
        }
    }
    return -1;
}

typedef struct held {
    scomm_rcache_region_t *r;
    uint64_t               seq;
} held_t;

static void test_random_vs_reference(unsigned seed)
{
    held_t held[256];
    int nheld = 0, step, op, hit, i, rcode, mcode, n;
    uintptr_t a, ms, me, ia;
    uint64_t mseq, hits0, stale_bytes;
    scomm_rcache_region_t *r;
    scomm_rcache_t rc;
    size_t len, il;
    ref_t m;
    fake_t *f = calloc(1, sizeof(*f));
    uint64_t st = seed;

    ST_ASSERT(f != NULL);
    memset(&m, 0, sizeof(m));
    m.max_bytes   = 48 * PG;
    m.max_entries = 24;
    ST_ASSERT_EQ(scomm_rcache_init(&rc, &fake_ops, f, m.max_bytes,
                                   m.max_entries, PG), 0);
    for (step = 0; step < 3000; step++) {
        op = (int)(scomm_test_rand(&st) % 10);
        if ((op < 6) && (nheld < 256)) {
            a   = 0x100000 + (uintptr_t)(scomm_test_rand(&st) % (96 * PG));
            len = (size_t)(scomm_test_rand(&st) % (6 * PG));
            if (scomm_test_rand(&st) % 8 == 0) {
                len = (size_t)(scomm_test_rand(&st) % (60 * PG));
            }
            hits0 = rc.hits;
            rcode = scomm_rcache_get(&rc, A(a), len, &r);
            mcode = ref_get(&m, a, len, &hit, &ms, &me, &mseq);
            ST_ASSERT_EQ(rcode, mcode);
            if (rcode == 0) {
                ST_ASSERT_EQ(rc.hits - hits0, hit);
                ST_ASSERT_EQ(r->start, ms);
                ST_ASSERT_EQ(r->end, me);
                ST_ASSERT_EQ(r->seq, mseq);
                ST_ASSERT((r->start <= a) &&
                          (r->end >= a + ((len > 0) ? len : 1)));
                held[nheld].r   = r;
                held[nheld].seq = mseq;
                nheld++;
            }
        } else if ((op < 9) && (nheld > 0)) {
            i = (int)(scomm_test_rand(&st) % (uint64_t)nheld);
            n = ref_find_seq(&m, held[i].seq);
            if (n >= 0) {
                ST_ASSERT(m.live[n].refs > 0);
                m.live[n].refs--;
            } else {
                for (n = 0; n < m.nstale; n++) {
                    if (m.stale[n].seq == held[i].seq) {
                        break;
                    }
                }
                ST_ASSERT(n < m.nstale);
                if (--m.stale[n].refs == 0) {
                    m.stale_pinned -= m.stale[n].end - m.stale[n].start;
                    m.stale[n] = m.stale[--m.nstale];
                }
            }
            scomm_rcache_put(&rc, held[i].r);
            held[i] = held[--nheld];
        } else {
            ia = 0x100000 + (uintptr_t)(scomm_test_rand(&st) % (100 * PG));
            il = (size_t)(scomm_test_rand(&st) % (8 * PG));
            n  = 0;
            for (i = m.nlive - 1; i >= 0; i--) {
                if ((il > 0) && (m.live[i].start < ia + il) &&
                    (m.live[i].end > ia)) {
                    if (m.live[i].refs > 0) {
                        ST_ASSERT(m.nstale < REF_MAX);
                        m.stale[m.nstale++] = m.live[i];
                        m.stale_pinned += m.live[i].end - m.live[i].start;
                    }
                    ref_remove(&m, i);
                    n++;
                }
            }
            ST_ASSERT_EQ(scomm_rcache_invalidate(&rc, A(ia), il), n);
        }
        /* Same live set, same stale set, same bytes. */
        ST_ASSERT_EQ(rc.nlive, m.nlive);
        ST_ASSERT_EQ(rc.nstale, m.nstale);
        stale_bytes = 0;
        for (i = 0; i < (int)rc.nstale; i++) {
            stale_bytes += rc.stale[i]->end - rc.stale[i]->start;
        }
        ST_ASSERT_EQ(stale_bytes, m.stale_pinned);
        ST_ASSERT_EQ(rc.pinned, m.pinned + m.stale_pinned);
        for (i = 0; i < m.nlive; i++) {
            ST_ASSERT_EQ(rc.live[i]->start, m.live[i].start);
            ST_ASSERT_EQ(rc.live[i]->end, m.live[i].end);
            ST_ASSERT_EQ(rc.live[i]->refs, m.live[i].refs);
            ST_ASSERT_EQ(rc.live[i]->seq, m.live[i].seq);
        }
        check_invariants(&rc, f);
    }
    while (nheld > 0) {
        scomm_rcache_put(&rc, held[--nheld].r);
    }
    ST_ASSERT_EQ(rc.nstale, 0);
    check_invariants(&rc, f);
    scomm_rcache_fini(&rc);
    ST_ASSERT_EQ(f->nlive, 0);
    ST_ASSERT_EQ(f->regs, f->deregs);
    printf("random seed %u: %llu hits, %llu misses, %llu evictions, "
           "%llu merges, %llu invalidations\n", seed,
           (unsigned long long)rc.hits, (unsigned long long)rc.misses,
           (unsigned long long)rc.evictions, (unsigned long long)rc.merges,
           (unsigned long long)rc.invalidations);
    free(f);
}

int main(void)
{
    unsigned s;

    test_hit_miss();
    test_overlap_merge();
    test_eviction_order();
    test_limits();
    test_invalidate();
    for (s = 1; s <= 8; s++) {
        test_random_vs_reference(s);
    }
    printf("test_regcache: all passed\n");
    return 0;
}
