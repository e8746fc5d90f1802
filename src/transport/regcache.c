/*
 * regcache.c - the registration cache (model and invariants in
 * regcache.h). Pure code: the only side effects are the registrar's
 * callbacks.
 *
 * Limits (docs/design.md, "What the verbs transport taught"): without
 * interposing free/munmap the cache cannot see memory returned to the
 * system, so a transport caches only ranges whose end scomm sees (its
 * mem_reg slot) and invalidates them at mem_dereg and at its fini.
 */
#include <stdlib.h>
#include <string.h>

#include "regcache.h"

const char *scomm_rcache_strerror(int rc)
{
    switch (rc) {
    case SCOMM_RCACHE_OK:      return "success";
    case SCOMM_RCACHE_NOMEM:   return "out of memory";
    case SCOMM_RCACHE_BUSY:    return "pinned-memory limit held by regions "
                                      "in use";
    case SCOMM_RCACHE_TOOBIG:  return "range larger than the pinned-memory "
                                      "limit";
    case SCOMM_RCACHE_REGFAIL: return "memory registration failed";
    case SCOMM_RCACHE_INVAL:   return "invalid range";
    default:                   return "unknown error";
    }
}

int scomm_rcache_init(scomm_rcache_t *rc, const scomm_rcache_ops_t *ops,
                      void *arg, uint64_t max_bytes, size_t max_entries,
                      size_t page)
{
    memset(rc, 0, sizeof(*rc));
    if ((page == 0) || ((page & (page - 1)) != 0) || (max_entries == 0) ||
        (ops == NULL) || (ops->reg == NULL) || (ops->dereg == NULL)) {
        return SCOMM_RCACHE_INVAL;
    }
    rc->ops         = *ops;
    rc->arg         = arg;
    rc->page        = page;
    rc->max_bytes   = max_bytes;
    rc->max_entries = max_entries;
    return SCOMM_RCACHE_OK;
}

static void rcache_release(scomm_rcache_t *rc, scomm_rcache_region_t *r)
{
    rc->ops.dereg(rc->arg, r->handle);
    rc->pinned -= (uint64_t)(r->end - r->start);
    free(r);
}

void scomm_rcache_fini(scomm_rcache_t *rc)
{
    size_t i;

    for (i = 0; i < rc->nlive; i++) {
        rcache_release(rc, rc->live[i]);
    }
    for (i = 0; i < rc->nstale; i++) {
        rcache_release(rc, rc->stale[i]);
    }
    free(rc->live);
    free(rc->stale);
    rc->live   = NULL;
    rc->stale  = NULL;
    rc->nlive  = 0;
    rc->nstale = 0;
}

/* Index of the first live region starting after addr. */
static size_t rcache_upper(const scomm_rcache_t *rc, uintptr_t addr)
{
    size_t lo = 0, hi = rc->nlive, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (rc->live[mid]->start <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void rcache_remove_at(scomm_rcache_t *rc, size_t i)
{
    memmove(&rc->live[i], &rc->live[i + 1],
            (rc->nlive - i - 1) * sizeof(rc->live[0]));
    rc->nlive--;
}

static scomm_rcache_region_t *rcache_find(const scomm_rcache_t *rc,
                                          uintptr_t s, uintptr_t e)
{
    scomm_rcache_region_t *best = NULL, *r;
    size_t i = rcache_upper(rc, s);

    while (i > 0) {
        r = rc->live[--i];
        if (r->end < e) {
            continue;
        }
        if ((best == NULL) ||
            (r->end - r->start < best->end - best->start) ||
            ((r->end - r->start == best->end - best->start) &&
             ((r->start > best->start) ||
              ((r->start == best->start) && (r->seq > best->seq))))) {
            best = r;
        }
    }
    return best;
}

/* Evict the least recently used unused region; 0 if one was evicted. */
static int rcache_evict_one(scomm_rcache_t *rc)
{
    size_t i, victim = rc->nlive;

    for (i = 0; i < rc->nlive; i++) {
        if ((rc->live[i]->refs == 0) &&
            ((victim == rc->nlive) ||
             (rc->live[i]->last_use < rc->live[victim]->last_use))) {
            victim = i;
        }
    }
    if (victim == rc->nlive) {
        return -1;
    }
    rcache_release(rc, rc->live[victim]);
    rcache_remove_at(rc, victim);
    rc->evictions++;
    return 0;
}

/* Grow [*s, *e) over unused overlapping regions while the union fits
 * max_bytes, and release those regions. */
static void rcache_merge(scomm_rcache_t *rc, uintptr_t *s, uintptr_t *e)
{
    uintptr_t ns = *s, ne = *e;
    int changed = 1;
    size_t i;

    while (changed) {
        changed = 0;
        for (i = 0; i < rc->nlive; i++) {
            scomm_rcache_region_t *r = rc->live[i];
            uintptr_t us, ue;

            if ((r->refs != 0) || (r->start >= ne) || (r->end <= ns)) {
                continue;
            }
            if ((r->start >= ns) && (r->end <= ne)) {
                continue; /* inside already */
            }
            us = (r->start < ns) ? r->start : ns;
            ue = (r->end > ne) ? r->end : ne;
            if ((uint64_t)(ue - us) > rc->max_bytes) {
                continue;
            }
            ns      = us;
            ne      = ue;
            changed = 1;
        }
    }
    /* Drop every unused region now inside the union. */
    for (i = rc->nlive; i > 0; i--) {
        scomm_rcache_region_t *r = rc->live[i - 1];

        if ((r->refs == 0) && (r->start >= ns) && (r->end <= ne)) {
            rcache_release(rc, r);
            rcache_remove_at(rc, i - 1);
            rc->merges++;
        }
    }
    *s = ns;
    *e = ne;
}

int scomm_rcache_get(scomm_rcache_t *rc, const void *addr, size_t len,
                     scomm_rcache_region_t **region_p)
{
    uintptr_t a = (uintptr_t)addr, s, e;
    scomm_rcache_region_t *r, **grown;
    size_t i, ncap;

    if ((addr == NULL) || (len > UINTPTR_MAX - a) ||
        (a + len > UINTPTR_MAX - rc->page)) {
        return SCOMM_RCACHE_INVAL;
    }
    if (len == 0) {
        len = 1;
    }
    s = a & ~(uintptr_t)(rc->page - 1);
    e = (a + len + rc->page - 1) & ~(uintptr_t)(rc->page - 1);
    r = rcache_find(rc, a, a + len);
    if (r != NULL) {
        r->refs++;
        r->last_use = ++rc->clock;
        rc->hits++;
        *region_p = r;
        return SCOMM_RCACHE_OK;
    }
    if ((uint64_t)(e - s) > rc->max_bytes) {
        return SCOMM_RCACHE_TOOBIG;
    }
    rcache_merge(rc, &s, &e);
    while ((rc->pinned + (uint64_t)(e - s) > rc->max_bytes) ||
           (rc->nlive >= rc->max_entries)) {
        if (rcache_evict_one(rc) != 0) {
            return SCOMM_RCACHE_BUSY;
        }
    }
    if (rc->nlive == rc->cap) {
        ncap  = (rc->cap == 0) ? 16 : rc->cap * 2;
        grown = realloc(rc->live, ncap * sizeof(*grown));
        if (grown == NULL) {
            return SCOMM_RCACHE_NOMEM;
        }
        rc->live = grown;
        rc->cap  = ncap;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return SCOMM_RCACHE_NOMEM;
    }
    r->start = s;
    r->end   = e;
    if (rc->ops.reg(rc->arg, (void *)s, (size_t)(e - s), &r->handle,
                    &r->desc, &r->key) != 0) {
        free(r);
        return SCOMM_RCACHE_REGFAIL;
    }
    r->refs     = 1;
    r->last_use = ++rc->clock;
    r->seq      = ++rc->seq;
    rc->pinned += (uint64_t)(e - s);
    rc->misses++;
    /* After every region with start <= s: keeps (start, seq) order. */
    i = rcache_upper(rc, s);
    memmove(&rc->live[i + 1], &rc->live[i],
            (rc->nlive - i) * sizeof(rc->live[0]));
    rc->live[i] = r;
    rc->nlive++;
    *region_p = r;
    return SCOMM_RCACHE_OK;
}

void scomm_rcache_put(scomm_rcache_t *rc, scomm_rcache_region_t *r)
{
    size_t i;

    if ((r == NULL) || (r->refs == 0)) {
        return;
    }
    if ((--r->refs > 0) || !r->stale) {
        return;
    }
    for (i = 0; i < rc->nstale; i++) {
        if (rc->stale[i] == r) {
            rc->stale[i] = rc->stale[--rc->nstale];
            break;
        }
    }
    rcache_release(rc, r);
}

size_t scomm_rcache_invalidate(scomm_rcache_t *rc, const void *addr,
                               size_t len)
{
    uintptr_t s = (uintptr_t)addr, e;
    scomm_rcache_region_t *r, **grown;
    size_t i, n = 0, ncap;

    e = (len > UINTPTR_MAX - s) ? UINTPTR_MAX : s + len;
    if (len == 0) {
        return 0;
    }
    for (i = rc->nlive; i > 0; i--) {
        r = rc->live[i - 1];
        if ((r->start >= e) || (r->end <= s)) {
            continue;
        }
        if (r->refs > 0) {
            if (rc->nstale == rc->stale_cap) {
                ncap  = (rc->stale_cap == 0) ? 8 : rc->stale_cap * 2;
                grown = realloc(rc->stale, ncap * sizeof(*grown));
                if (grown == NULL) {
                    continue; /* stays live; invalidated next time */
                }
                rc->stale     = grown;
                rc->stale_cap = ncap;
            }
            r->stale                 = 1;
            rc->stale[rc->nstale++]  = r;
        } else {
            rcache_release(rc, r);
        }
        rcache_remove_at(rc, i - 1);
        rc->invalidations++;
        n++;
    }
    return n;
}
