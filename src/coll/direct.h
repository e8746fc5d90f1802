/*
 * direct.h - what the direct shared-memory collectives share between the
 * machinery (direct.c: the per-communicator arena, the CMA probe, copies,
 * waits, call set-up and descriptors) and the algorithms (direct_ops.c:
 * all_reduce, all_gather, broadcast, reduce_scatter; direct_single.c: the
 * single-copy broadcast, all_gather and all_to_all and the tiny broadcast
 * and all_to_all). The design, the counters' protocol and the invariants
 * are in direct.c's header comment.
 */
#ifndef SCOMM_COLL_DIRECT_H
#define SCOMM_COLL_DIRECT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/shmem.h"
#include "coll.h"

#define DIRECT_MAX_RANKS     16
#define DIRECT_CTRL_BYTES    4096u
/* all_reduce: every rank reduces the whole vector up to this size. */
#define DIRECT_SMALL_BYTES   (16u << 10)
/* Copies into the caller's buffers bypass the caches (non-temporal
 * stores) when the whole result is at least this large: it cannot stay in
 * the caches anyway, and the stores then need no read-for-ownership. */
#define DIRECT_NT_BYTES      (8u << 20)
/* Bytes of the block a large all_reduce reduces into before storing it
 * out with non-temporal stores: it stays in L1. */
#define DIRECT_NT_PIECE      (16u << 10)
/* all_reduce of ordinary memory from this size on, when the cores are not
 * near: the others read this rank's sendbuf and recvbuf with
 * process_vm_readv (one kernel copy each, the same work as a two-rank
 * ring) instead of this rank staging them. */
#define DIRECT_CMA_BYTES     (128u << 10)
/* Where a rank's data is, in its descriptor: a set id (>= 0: in its
 * scomm_mem_alloc memory at an offset), or one of these. */
#define DIRECT_AT_ARENA      (-1)  /* staged in its arena */
#define DIRECT_AT_CMA        (-2)  /* at an address in its own memory */

enum {
    DIRECT_READY   = 0,
    DIRECT_REDUCED = 1,
    DIRECT_DONE    = 2,
    DIRECT_TINY0   = 3, /* tiny all_reduce, odd and even calls */
    DIRECT_TINY1   = 4,
    DIRECT_TINYB0  = 5, /* tiny broadcast: call s uses line s % 8 */
    DIRECT_TINYB_N = 8,
    DIRECT_TINYA0  = 13, /* tiny all_to_all, odd and even calls */
    DIRECT_TINYA1  = 14,
    DIRECT_TINYB_DONE = 15, /* tiny broadcast: calls done, every 4th */
    DIRECT_PROBE   = 16, /* the set-up's cache-line latency probe */
    DIRECT_NCTR    = 17
};

/* A counter on its own cache line. The tiny lines also carry the call's
 * arguments and data, so that a peer gets all of it in one line. */
typedef struct direct_line {
    _Atomic uint64_t v;
    uint64_t         meta;   /* tiny: count | dtype << 40 | redop << 48 */
    char             data[SCOMM_CACHELINE - 16];
} __attribute__((aligned(SCOMM_CACHELINE))) direct_line_t;

_Static_assert(sizeof(direct_line_t) == SCOMM_CACHELINE,
               "a counter line is one cache line");

/* all_reduce and broadcast vectors, and all_to_all send buffers (all
 * blocks), up to this size take the tiny (one cache line) paths. */
#define DIRECT_TINY_BYTES    (SCOMM_CACHELINE - 16)

/* What a rank passes to one call, for the others to check and to find
 * its buffers in their mappings of its scomm_mem_alloc memory. */
typedef struct direct_desc {
    uint64_t seq;      /* the state's call number, from 1 */
    uint64_t count;
    int32_t  op;       /* scomm_coll_op_t */
    int32_t  dtype;
    int32_t  redop;    /* -1 where the op does not reduce */
    int32_t  root;     /* -1 where the op has no root */
    int64_t  send_set; /* the data the others read: set id, DIRECT_AT_* */
    uint64_t send_off; /* offset in the set, or address (DIRECT_AT_CMA) */
    int64_t  recv_set; /* the result (all_reduce), the same way */
    uint64_t recv_off;
} direct_desc_t;

typedef struct direct_ctrl {
    direct_line_t    ctr[DIRECT_NCTR];
    /* Raised while the owner sleeps in a wait: a rank that publishes a
     * counter then writes the owner's eventfd. */
    _Atomic uint32_t sleeping;
    int32_t          pid;      /* owner's, for pidfd_getfd */
    int32_t          wake_fd;  /* owner's eventfd, in the owner's table */
    /* 1: the owner is registered for membarrier(2) and issues the global
     * barrier after raising sleeping (scomm_membarrier_register). */
    _Atomic int32_t  mb;
    char             pad[SCOMM_CACHELINE - 16];
    direct_desc_t    desc[2];
} direct_ctrl_t;

_Static_assert(sizeof(direct_ctrl_t) <= DIRECT_CTRL_BYTES,
               "the control block must fit its page");

/* Per communicator (comm->shmem->coll). */
typedef struct direct_state {
    scomm_shmem_set_t *arena;
    int                unusable;  /* set-up failed: always fall back */
    char               why[128];
    int                p;
    direct_ctrl_t     *ctrl[DIRECT_MAX_RANKS];
    char              *buf[DIRECT_MAX_RANKS];  /* buffer 0; 1 follows */
    size_t             chunk;
    uint64_t           k;         /* chunks started, all calls */
    uint64_t           seq;       /* calls */
    uint64_t           tseq;      /* tiny all_reduce calls */
    uint64_t           bseq;      /* tiny broadcast calls */
    uint64_t           bdone;     /* the least TINYB_DONE of the others
                                     seen so far (they only grow) */
    uint64_t           aseq;      /* tiny all_to_all calls */
    /* Rank 0's verdict of the set-up's latency probe, the same on every
     * rank: 1 when a cache line crosses between the ranks' cores in at
     * most DIRECT_NEAR_NS one way (they share a cache: staging through it
     * beats a kernel copy), 0 when not; near_ns the slowest pair's time. */
    int                near;
    uint32_t           near_ns;
    /* 1 when a publisher must fence before it looks at the peers'
     * sleeping flags: some rank did not say mb (decided at set-up). */
    int                wake_fence;
    /* Peers' eventfds, dup'd here on first need: -2 not yet tried, -1
     * unavailable (the sleeper's timeout then bounds its sleep). */
    int                wfd[DIRECT_MAX_RANKS];
    /* Every rank can read every other's memory with process_vm_readv. */
    int                cma;
    pid_t              pid[DIRECT_MAX_RANKS];
    char              *scratch;   /* CMA reads of peers' input slices */
    size_t             slot;      /* bytes per peer in scratch */
} direct_state_t;

/* One call. */
typedef struct direct_call {
    scomm_comm_t            *comm;
    const scomm_coll_args_t *a;
    direct_state_t          *d;
    int                      p;
    int                      me;
    uint64_t                 k0;      /* first chunk */
    direct_desc_t            desc;    /* mine */
    const char              *psend[DIRECT_MAX_RANKS]; /* in place, or NULL */
    const char              *precv[DIRECT_MAX_RANKS];
    uint64_t                 csend[DIRECT_MAX_RANKS]; /* CMA address or 0 */
    uint64_t                 crecv[DIRECT_MAX_RANKS];
    int                      nt;      /* non-temporal copy-out */
} direct_call_t;

/* ---- the machinery (direct.c) ---- */

/*
 * Copy n bytes. Vector loops instead of memcpy from 1 KiB on: glibc's
 * "rep movsb" runs 14-28x slower for 4-512 KiB when dst sits 1-15 bytes
 * past src within a page (anchors README, section 4), and the caller's
 * buffers may sit anywhere relative to the page-aligned arena.
 */
void scomm_direct_copy(void *dst, const void *src, size_t n, int nt);

/* Slice j of nb bytes among p ranks: whole 64-byte units, [*lo, *hi). */
void scomm_direct_slice(size_t nb, int p, int j, size_t *lo, size_t *hi);

/* Wake the peers that sleep in a wait (they re-check on waking). */
void scomm_direct_wake(const direct_call_t *c);

/*
 * The slow path of a wait, through the core's wait loop: the peers'
 * counters are polled every turn, the transports every 50 us (abort
 * notices), dead peers looked for every 10 ms; sleeps start at 50 us and
 * double to 2 ms, with this rank's sleeping flag up so that a rank that
 * publishes a counter writes our eventfd (scomm_direct_wake).
 */
scomm_status_t scomm_direct_wait_slow(direct_call_t *c, int x,
                                      uint64_t want, int only);

/* Run alt (fn) instead of the forced algorithm, and say why (the record:
 * rule "fallback:<forced>"). */
scomm_status_t scomm_direct_fallback_to(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a,
                                        const char *why, const char *alt,
                                        scomm_coll_fn_t fn);

/* Fall back (arena unavailable): run the default algorithm, and say so. */
scomm_status_t scomm_direct_fallback(scomm_comm_t *comm,
                                     const scomm_coll_args_t *a,
                                     const char *why);

/*
 * Start a call: the state (or fall back), my descriptor. send/sspan: the
 * data the others read from this rank (NULL: none), recv/rspan: the
 * result the others read from this rank's recvbuf (all_reduce only).
 * Returns SCOMM_OK, SCOMM_ERR_UNSUPPORTED (run the fallback), or an error.
 */
scomm_status_t scomm_direct_begin(direct_call_t *c, scomm_comm_t *comm,
                                  const scomm_coll_args_t *a,
                                  const void *send, size_t sspan,
                                  const void *recv, size_t rspan);

/* Write this rank's descriptor of the call into its slot. */
void scomm_direct_put_desc(direct_call_t *c);

/*
 * After the first ready wait: check the descriptors of the ranks in
 * [0, p) (or of rank only), and find their in-place buffers.
 */
scomm_status_t scomm_direct_read_descs(direct_call_t *c, size_t sspan,
                                       size_t rspan, int only);

/* len bytes at addr in rank q's memory into dst, by process_vm_readv. */
scomm_status_t scomm_direct_cma_read(direct_call_t *c, int q, void *dst,
                                     uint64_t addr, size_t len);

/* The world's fault as this call's error (comm's last error set). */
scomm_status_t scomm_direct_fault(scomm_comm_t *comm);

/* The comm's state if it exists and is usable, else NULL (tiny paths). */
static inline direct_state_t *direct_state_peek(const scomm_comm_t *comm)
{
    direct_state_t *d = (comm->shmem != NULL) ? comm->shmem->coll : NULL;

    return ((d != NULL) && !d->unusable) ? d : NULL;
}

/* A call block for the tiny paths, which use no chunk numbers. */
static inline void direct_call_tiny(direct_call_t *c, scomm_comm_t *comm,
                                    const scomm_coll_args_t *a,
                                    direct_state_t *d)
{
    c->comm = comm;
    c->a    = a;
    c->d    = d;
    c->p    = comm->size;
    c->me   = comm->rank;
    c->k0   = d->k;
}

/* The tiny all_gather (direct_single.c): the whole output fits a line
 * and the state exists. */
scomm_status_t scomm_direct_allgather_tiny(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a,
                                           direct_state_t *d);

/* The tiny broadcast (direct_single.c) when the vector fits a line and
 * the state exists, else fn. */
scomm_status_t scomm_direct_bcast_tiny_or(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a,
                                          scomm_coll_fn_t fn);

/* ---- counters and waits ---- */

static inline uint64_t direct_ctr(const direct_call_t *c, int q, int x)
{
    return atomic_load_explicit(&c->d->ctrl[q]->ctr[x].v,
                                memory_order_acquire);
}

/* Publish counter x = v; wake sleepers unless more follows at once. */
static inline void direct_set(const direct_call_t *c, int x, uint64_t v)
{
    atomic_store_explicit(&c->d->ctrl[c->me]->ctr[x].v, v,
                          memory_order_release);
}

static inline void direct_publish(const direct_call_t *c, int x, uint64_t v)
{
    direct_set(c, x, v);
    scomm_direct_wake(c);
}

/* First rank (only, or any but me) whose counter x is below want; -1. */
static inline int direct_lagging(const direct_call_t *c, int x,
                                 uint64_t want, int only)
{
    int q;

    if (only >= 0) {
        return (direct_ctr(c, only, x) < want) ? only : -1;
    }
    for (q = 0; q < c->p; q++) {
        if ((q != c->me) && (direct_ctr(c, q, x) < want)) {
            return q;
        }
    }
    return -1;
}

/*
 * Ask for a line ahead of need, off the critical path of the next tiny
 * call: for writing (exclusive, so the next call's stores to it need no
 * read-for-ownership that a fence or the world lock's unlock would wait
 * for) or for reading (a peer's line that its owner may have written
 * already). Hints only: the counters' protocol never depends on them.
 * PREFETCHW is used where CPUID says the CPU has it (direct.c).
 */
extern int scomm_direct_prefetchw_ok;

static inline void direct_prefetch_w(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    if (scomm_direct_prefetchw_ok) {
        __asm__ __volatile__("prefetchw %0" : : "m"(*(const char *)p));
    }
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

static inline void direct_prefetch_r(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

/*
 * Wait until counter x of every other rank (or of rank only) >= want.
 * Polls the lines a few hundred nanoseconds first: the wait loop reads
 * the clock every turn, which on some VMs costs as much as a cache line
 * from the other core, so a counter that arrives while the loop reads the
 * clock would be seen one clock read late.
 */
#define DIRECT_FAST_POLLS 128

static inline scomm_status_t direct_wait(direct_call_t *c, int x,
                                         uint64_t want, int only)
{
    int i;

    for (i = 0; i < DIRECT_FAST_POLLS; i++) {
        if (SCOMM_LIKELY(direct_lagging(c, x, want, only) < 0)) {
            return SCOMM_OK;
        }
    }
    return scomm_direct_wait_slow(c, x, want, only);
}

static inline char *direct_buf(const direct_call_t *c, int q, uint64_t k)
{
    return c->d->buf[q] + (size_t)(k & 1) * c->d->chunk;
}

/* Wait all done >= k-1 (nobody still reads what chunk k-2 left). */
static inline scomm_status_t direct_wait_free(direct_call_t *c, uint64_t k)
{
    return (k >= 2) ? direct_wait(c, DIRECT_DONE, k - 1, -1) : SCOMM_OK;
}

#endif /* SCOMM_COLL_DIRECT_H */
