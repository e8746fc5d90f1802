/*
 * regcache.h - a memory registration cache for transports that must
 * register memory before they move bytes from or into it (libfabric
 * fi_mr_reg, verbs ibv_reg_mr): pinned, registered ranges kept across
 * messages so a buffer sent or received again costs no registration. Pure
 * code over a pluggable registrar (a transport passes its own register and
 * deregister calls; the unit test a fake), compiled in every build. The
 * policy of what a transport may cache is in tl.h (the mem_reg slot) and
 * docs/design.md ("What the verbs transport taught").
 *
 * Model:
 *  - A region is a page-aligned range [start, end) registered once. Live
 *    regions sit in an array sorted by start (an interval index: a lookup
 *    is a binary search for the last region starting at or before the
 *    address, then a walk down over the regions that may still cover it).
 *  - get(addr, len) returns a live region covering the whole range (a hit)
 *    or registers a new one (a miss). Among covering regions the smallest
 *    wins, then the one starting last, then the newest.
 *  - On a miss, unused live regions overlapping the new range are merged
 *    into it (their union is registered once, they are deregistered) as
 *    long as the union fits the pinned-bytes limit.
 *  - Pinned bytes (all registered regions) never exceed max_bytes, and live
 *    regions never exceed max_entries: before a registration, unused live
 *    regions are evicted least recently used first (by their last get).
 *    If regions in use alone leave no room the get fails with
 *    SCOMM_RCACHE_BUSY (retry after a put); a range larger than max_bytes
 *    fails with SCOMM_RCACHE_TOOBIG.
 *  - invalidate(addr, len) drops every live region overlapping the range:
 *    unused ones are deregistered at once, used ones become stale (no
 *    longer found) and are deregistered on their last put.
 *
 * Invariants:
 *  1. Every successful registrar call is matched by exactly one deregister,
 *     at eviction, invalidation, last put of a stale region, or fini.
 *  2. A returned region covers [addr, addr + len) and is not stale.
 *  3. pinned == sum of the lengths of all registered regions <= max_bytes.
 *  4. No region is deregistered while its reference count is non-zero
 *     (except by fini, which the transport calls after all I/O ended).
 */
#ifndef SCOMM_REGCACHE_H
#define SCOMM_REGCACHE_H

#include <stddef.h>
#include <stdint.h>

enum {
    SCOMM_RCACHE_OK      = 0,
    SCOMM_RCACHE_NOMEM   = -1, /* out of memory for the index */
    SCOMM_RCACHE_BUSY    = -2, /* no room: regions in use hold it */
    SCOMM_RCACHE_TOOBIG  = -3, /* the range alone exceeds max_bytes */
    SCOMM_RCACHE_REGFAIL = -4, /* the registrar refused */
    SCOMM_RCACHE_INVAL   = -5  /* NULL address or a wrapping range */
};

typedef struct scomm_rcache_ops {
    /* Register [addr, addr + len); 0 on success, -1 on failure. handle
     * is the registrar's own (what dereg needs), desc the local
     * descriptor (fi_mr_desc) and key the remote key (fi_mr_key). */
    int (*reg)(void *arg, void *addr, size_t len, void **handle,
               void **desc, uint64_t *key);
    void (*dereg)(void *arg, void *handle);
} scomm_rcache_ops_t;

typedef struct scomm_rcache_region {
    uintptr_t start;
    uintptr_t end;
    void     *handle;
    void     *desc;
    uint64_t  key;
    uint32_t  refs;
    int       stale;
    uint64_t  last_use; /* the cache's clock at the last get */
    uint64_t  seq;      /* creation order */
} scomm_rcache_region_t;

typedef struct scomm_rcache {
    scomm_rcache_ops_t      ops;
    void                   *arg;
    size_t                  page;
    uint64_t                max_bytes;
    size_t                  max_entries;
    scomm_rcache_region_t **live;    /* sorted by start, then seq */
    size_t                  nlive;
    size_t                  cap;
    scomm_rcache_region_t **stale;   /* invalidated while in use */
    size_t                  nstale;
    size_t                  stale_cap;
    uint64_t                clock;
    uint64_t                seq;
    uint64_t                pinned;
    /* statistics */
    uint64_t                hits;
    uint64_t                misses;
    uint64_t                evictions;
    uint64_t                invalidations;
    uint64_t                merges;
} scomm_rcache_t;

/* page must be a power of two; max_entries >= 1. */
int scomm_rcache_init(scomm_rcache_t *rc, const scomm_rcache_ops_t *ops,
                      void *arg, uint64_t max_bytes, size_t max_entries,
                      size_t page);
/* Deregister everything (in use or not) and free the index. */
void scomm_rcache_fini(scomm_rcache_t *rc);
int scomm_rcache_get(scomm_rcache_t *rc, const void *addr, size_t len,
                     scomm_rcache_region_t **region_p);
void scomm_rcache_put(scomm_rcache_t *rc, scomm_rcache_region_t *region);
/* Returns how many live regions were dropped. */
size_t scomm_rcache_invalidate(scomm_rcache_t *rc, const void *addr,
                               size_t len);
const char *scomm_rcache_strerror(int rc);

#endif /* SCOMM_REGCACHE_H */
