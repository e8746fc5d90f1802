/*
 * direct.c - collectives for communicators whose ranks all share this host
 * ("direct"): every rank reads the others' data straight out of shared
 * memory instead of passing it along a ring. all_reduce, all_gather and
 * broadcast are "direct" in the algorithm table; reduce_scatter is
 * "shm_direct" there, because "direct" already names rd.c's one-round
 * point-to-point reduce_scatter.
 *
 * Per communicator, at the first call (direct_state_get), every rank
 * creates a staging arena in shared memory (core/shmem.c: random name,
 * 0600, unlinked once mapped), maps everybody else's, and the ranks find
 * out together whether each may read the others' memory with
 * process_vm_readv (direct_probe_cma; "CMA"):
 *
 *   arena := ctrl (4 KiB: three counters and a sleeping flag on their own
 *            cache lines, two call descriptors) | buffer 0 | buffer 1
 *            (chunk bytes each, SCOMM_COLL_SHM_CHUNK, default 1 MiB)
 *
 * Counters count chunks since the arena was made, over all calls, and only
 * grow; rank q alone writes its own. Chunk k (global number) uses buffer
 * k % 2 and descriptor slot (first chunk of the call) % 2:
 *   ready   = k+1: q's input of chunk k is readable, and on a call's first
 *                  chunk its descriptor too
 *   reduced = k+1: q's result of chunk k is readable
 *   done    = k+1: q will never again read anybody's chunk k
 * A descriptor says where a rank's input and result are: staged in its
 * arena, in its scomm_mem_alloc memory (set id + offset, mapped by all),
 * or at an address in its own memory (read with process_vm_readv).
 *
 * all_reduce, one chunk k of the vector (slices: the chunk cut into p
 * parts of whole 64-byte units, so each starts 64-byte and element
 * aligned relative to the chunk):
 *   1. when writing my arena (or on a call's first chunk): wait all done
 *      >= k-1, i.e. nobody still reads what chunk k-2 left in buffer k%2
 *   2. stage the chunk except my own slice into my buffer k%2, unless the
 *      others read my input where it is; first chunk: write my
 *      descriptor; publish ready
 *   3. wait all ready >= k+1 (first chunk: read and check everybody's
 *      descriptor: same call, op, count, dtype, redop)
 *   4. reduce MY slice reading it from every rank in rank order 0..p-1
 *      (scomm_reduce_n: one rounding for the low-precision floats, the
 *      same bits on every rank) into my arena slice, or straight into
 *      recvbuf when the others read my result there; publish reduced
 *   5. wait all reduced >= k+1, copy every rank's result slice into
 *      recvbuf (non-temporal stores for large vectors); publish done
 * Where the data is, by size (ordinary memory / scomm_mem_alloc memory):
 *   <= 16 KiB       one chunk in which every rank reduces the whole vector
 *                   from everybody's staged copy: one synchronisation
 *                   instead of two (always staged: in place, this rank
 *                   overwrites its input while the others may read it)
 *   < 128 KiB       staged; mem_alloc: read in place (input and result)
 *   128 KiB..8 MiB  CMA: the others read my input and my result with
 *                   process_vm_readv, one kernel copy each (the same work
 *                   as a two-rank ring, measured as fast); staged where
 *                   CMA is refused; mem_alloc: read in place
 *   >= 8 MiB        input staged or (mem_alloc) read in place; results
 *                   always through the arena, which stays in the caches,
 *                   and into recvbuf by non-temporal stores: reducing
 *                   straight into recvbuf would first read every line of
 *                   it from memory (write allocate). Main memory then sees
 *                   input read once and recvbuf written once per rank.
 * With both buffers from scomm_mem_alloc nothing is staged: per rank, own
 * half + peer half read, result half written, the peer's result half read
 * and written (2.5 x N for 2 ranks).
 *
 * all_gather: each rank stages its own block's chunk (mem_alloc: read in
 * place), then copies every rank's chunk out. broadcast: the root stages,
 * the others copy out. reduce_scatter: each rank stages the blocks of the
 * others (chunks of chunk/p bytes per block), then reduces its own block
 * from everybody's.
 *
 * Waits (direct_wait): spin on the peers' counters, purely for 5 us (not
 * at all when ranks outnumber cores), then with sched_yield() until
 * SCOMM_SPIN_US, then sleep in ppoll() on the world's wake eventfd and the
 * transports' fds, from 50 us doubling to 2 ms. A sleeper raises its
 * sleeping flag first and looks once more; a rank that publishes a
 * counter, after a full fence, writes the eventfd (dup'd through
 * pidfd_getfd) of every peer whose flag is up, so a sleeping wait ends
 * within a wake-up, not at its timer. Meanwhile the transports progress
 * every 50 us (abort notices), heartbeats go out, dead peers are looked
 * for every 10 ms, and the comm's timeout bounds each wait: then the world
 * fails with SCOMM_ERR_TIMED_OUT naming a rank that shows no sign of life,
 * or else the rank waited for.
 *
 * Transport: the algorithm needs no transport after set-up (the set-up
 * exchanges names with point-to-point messages, tag SCOMM_TAG_SHMEM). By
 * default it is chosen only when every peer is reached over shm; forced
 * (hook, SCOMM_COLL_<OP>_ALGO, SCOMM_ALGO) it also runs over tcp, as long
 * as every rank of the communicator is on this host. If the arena cannot
 * be made (on any rank: all learn it), the call falls back to the ring /
 * binomial tree, the record says so, and the communicator never tries
 * again. SCOMM_SHM_CMA=0 turns the CMA reads off.
 *
 * Invariants:
 *  1. A rank writes only its own arena, its own counters and its own
 *     recvbuf; it writes a buffer only after every rank published done for
 *     the chunk that used it last (step 1), and its descriptor slot under
 *     the same rule, so nobody reads a half-rewritten chunk or descriptor.
 *  2. Counters are published with release stores after the data they
 *     describe, read with acquire loads before the data is touched.
 *  3. Every element of an all_reduce result is reduced by exactly one
 *     rank, in the same operand order (rank 0 first), and copied by the
 *     others; the small path reduces on every rank in that same order. So
 *     the bits agree on every rank.
 *  4. A rank whose buffers the others read where they are (scomm_mem_alloc
 *     memory, CMA) returns only when every rank published done for the
 *     call's last chunk, so the caller may reuse them at once; in place,
 *     a slice is overwritten only after its reader published reduced.
 *  5. Every wait ends: at the world's fault, at a dead or departed peer,
 *     or at the communicator's timeout.
 */
#include <errno.h>
#include <immintrin.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../core/shmem.h"
#include "../telemetry/control.h"
#include "coll.h"


#define DIRECT_MAX_RANKS     16
#define DIRECT_CTRL_BYTES    4096u
#define DIRECT_CHUNK_DEFAULT (1u << 20)
#define DIRECT_CHUNK_MIN     (64u << 10)
#define DIRECT_CHUNK_MAX     (64u << 20)
/* all_reduce: every rank reduces the whole vector up to this size. */
#define DIRECT_SMALL_BYTES   (16u << 10)
/* Copies into the caller's buffers bypass the caches (non-temporal
 * stores) when the whole result is at least this large: it cannot stay in
 * the caches anyway, and the stores then need no read-for-ownership. */
#define DIRECT_NT_BYTES      (8u << 20)
/* all_reduce of ordinary memory from this size on: the others read this
 * rank's sendbuf and recvbuf with process_vm_readv (one kernel copy each,
 * the same work as a two-rank ring) instead of this rank staging them. */
#define DIRECT_CMA_BYTES     (128u << 10)
/* Where a rank's data is, in its descriptor: a set id (>= 0: in its
 * scomm_mem_alloc memory at an offset), or one of these. */
#define DIRECT_AT_ARENA      (-1)  /* staged in its arena */
#define DIRECT_AT_CMA        (-2)  /* at an address in its own memory */
#define DIRECT_PURE_SPIN_NS  5000ull
#define DIRECT_PROGRESS_NS   50000ull
#define DIRECT_CHECK_NS      10000000ull
#define DIRECT_SLEEP_MIN_NS  50000ull
#define DIRECT_SLEEP_MAX_NS  2000000ull
#define DIRECT_POLL_MAX      64

enum {
    DIRECT_READY   = 0,
    DIRECT_REDUCED = 1,
    DIRECT_DONE    = 2,
    DIRECT_TINY0   = 3, /* tiny all_reduce, odd and even calls */
    DIRECT_TINY1   = 4,
    DIRECT_NCTR    = 5
};

static const char *const direct_ctr_what[DIRECT_NCTR] = {
    "publish its input of", "publish its result of", "finish reading",
    "publish its input of tiny call", "publish its input of tiny call"
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

/* all_reduce vectors up to this size take the tiny path. */
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
    char             pad[SCOMM_CACHELINE - 12];
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

/* ---- knobs and copies ---------------------------------------------------- */

static pthread_once_t direct_once = PTHREAD_ONCE_INIT;
static size_t direct_chunk_env = DIRECT_CHUNK_DEFAULT;
static int direct_isa; /* 2: AVX-512F, 1: AVX2, 0: memcpy only */

static void direct_init_once(void)
{
    scomm_pval_t v;

    /* SCOMM_COLL_SHM_CHUNK (coll's table in select.c: 64k..64m): bytes of
     * each of the two staging buffers per rank, once per process. */
    scomm_param_get_or_warn("SCOMM_COLL_SHM_CHUNK", &v);
    direct_chunk_env = (size_t)v.u & ~(size_t)4095;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        direct_isa = 2;
    } else if (__builtin_cpu_supports("avx2")) {
        direct_isa = 1;
    }
#endif
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void direct_copy_avx512(char *dst, const char *src, size_t n, int nt)
{
    size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
    __m512i v0, v1, v2, v3;

    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 256; n -= 256, src += 256, dst += 256) {
        v0 = _mm512_loadu_si512((const void *)src);
        v1 = _mm512_loadu_si512((const void *)(src + 64));
        v2 = _mm512_loadu_si512((const void *)(src + 128));
        v3 = _mm512_loadu_si512((const void *)(src + 192));
        if (nt) {
            _mm512_stream_si512((void *)dst, v0);
            _mm512_stream_si512((void *)(dst + 64), v1);
            _mm512_stream_si512((void *)(dst + 128), v2);
            _mm512_stream_si512((void *)(dst + 192), v3);
        } else {
            _mm512_store_si512((void *)dst, v0);
            _mm512_store_si512((void *)(dst + 64), v1);
            _mm512_store_si512((void *)(dst + 128), v2);
            _mm512_store_si512((void *)(dst + 192), v3);
        }
    }
    memcpy(dst, src, n);
    if (nt) {
        _mm_sfence();
    }
}

__attribute__((target("avx2")))
static void direct_copy_avx2(char *dst, const char *src, size_t n, int nt)
{
    size_t head = (32 - ((uintptr_t)dst & 31)) & 31;
    __m256i v0, v1, v2, v3;

    memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    for (; n >= 128; n -= 128, src += 128, dst += 128) {
        v0 = _mm256_loadu_si256((const __m256i *)src);
        v1 = _mm256_loadu_si256((const __m256i *)(src + 32));
        v2 = _mm256_loadu_si256((const __m256i *)(src + 64));
        v3 = _mm256_loadu_si256((const __m256i *)(src + 96));
        if (nt) {
            _mm256_stream_si256((__m256i *)dst, v0);
            _mm256_stream_si256((__m256i *)(dst + 32), v1);
            _mm256_stream_si256((__m256i *)(dst + 64), v2);
            _mm256_stream_si256((__m256i *)(dst + 96), v3);
        } else {
            _mm256_store_si256((__m256i *)dst, v0);
            _mm256_store_si256((__m256i *)(dst + 32), v1);
            _mm256_store_si256((__m256i *)(dst + 64), v2);
            _mm256_store_si256((__m256i *)(dst + 96), v3);
        }
    }
    memcpy(dst, src, n);
    if (nt) {
        _mm_sfence();
    }
}
#endif

/*
 * Copy n bytes. Vector loops instead of memcpy from 1 KiB on: glibc's
 * "rep movsb" runs 14-28x slower for 4-512 KiB when dst sits 1-15 bytes
 * past src within a page (anchors README, section 4), and the caller's
 * buffers may sit anywhere relative to the page-aligned arena.
 */
static void direct_copy(void *dst, const void *src, size_t n, int nt)
{
    if (n == 0) {
        return;
    }
#if defined(__x86_64__)
    if ((n >= 1024) && (direct_isa == 2)) {
        direct_copy_avx512(dst, src, n, nt);
        return;
    }
    if ((n >= 1024) && (direct_isa == 1)) {
        direct_copy_avx2(dst, src, n, nt);
        return;
    }
#endif
    memcpy(dst, src, n);
}

/* Slice j of nb bytes among p ranks: whole 64-byte units, [*lo, *hi). */
static void direct_slice(size_t nb, int p, int j, size_t *lo, size_t *hi)
{
    size_t units = (nb + 63) / 64;

    *lo = SCOMM_MIN(units * (size_t)j / (size_t)p * 64, nb);
    *hi = SCOMM_MIN(units * (size_t)(j + 1) / (size_t)p * 64, nb);
}

/* ---- state --------------------------------------------------------------- */

static scomm_status_t direct_fault(scomm_comm_t *comm);

static void direct_state_free(void *coll)
{
    direct_state_t *d = coll;
    int q;

    for (q = 0; q < DIRECT_MAX_RANKS; q++) {
        if (d->wfd[q] >= 0) {
            close(d->wfd[q]);
        }
    }
    free(d->scratch);
    free(d);
}

/* What the CMA probe exchanges. */
typedef struct direct_probe {
    uint64_t addr;  /* of the sender's ctrl->pid, in its address space */
    int32_t  pid;
    int32_t  ok;    /* round 2: the sender could read every peer */
} direct_probe_t;

/* One round of the probe: mine to every other rank, theirs into all. */
static scomm_status_t direct_probe_round(scomm_comm_t *comm,
                                         const direct_probe_t *mine,
                                         direct_probe_t *all)
{
    scomm_req_t *reqs[2 * DIRECT_MAX_RANKS];
    scomm_status_t status = SCOMM_OK;
    int q, n = 0;

    for (q = 0; (q < comm->size) && (status == SCOMM_OK); q++) {
        if (q == comm->rank) {
            continue;
        }
        status = scomm_p2p_irecv(comm, q, SCOMM_TAG_SHMEM, &all[q],
                                 sizeof(all[q]), &reqs[n]);
        if (status == SCOMM_OK) {
            n++;
            status = scomm_p2p_isend(comm, q, SCOMM_TAG_SHMEM, mine,
                                     sizeof(*mine), &reqs[n]);
            n += (status == SCOMM_OK);
        }
    }
    if (status != SCOMM_OK) {
        scomm_world_fail(comm->world, status, comm->world->rank,
                         "%s: rank %d could not post its probe messages",
                         comm->cur_op, comm->rank);
        (void)scomm_p2p_waitall(comm, reqs, n);
        return status;
    }
    return scomm_p2p_waitall(comm, reqs, n);
}

/*
 * May every rank read every other's memory with process_vm_readv (ptrace
 * rules, SCOMM_SHM_CMA)? Each reads a word the others wrote into their
 * arenas, at the address they name, then all learn every verdict: the
 * answer is the same on every rank.
 */
static scomm_status_t direct_probe_cma(scomm_comm_t *comm, direct_state_t *d)
{
    direct_probe_t mine, all[DIRECT_MAX_RANKS];
    struct iovec l, r;
    int32_t v;
    int q;

    memset(&mine, 0, sizeof(mine));
    memset(all, 0, sizeof(all));
    mine.addr = (uint64_t)(uintptr_t)&d->ctrl[comm->rank]->pid;
    mine.pid  = (int32_t)getpid();
    if (direct_probe_round(comm, &mine, all) != SCOMM_OK) {
        return SCOMM_ERR_PEER_LOST;
    }
    mine.ok = (comm->world->cfg.shm_cma != 0);
    for (q = 0; (q < comm->size) && mine.ok; q++) {
        if (q == comm->rank) {
            continue;
        }
        d->pid[q]  = (pid_t)all[q].pid;
        v          = 0;
        l.iov_base = &v;
        l.iov_len  = sizeof(v);
        r.iov_base = (void *)(uintptr_t)all[q].addr;
        r.iov_len  = sizeof(v);
        mine.ok    = (process_vm_readv(d->pid[q], &l, 1, &r, 1, 0) ==
                      (ssize_t)sizeof(v)) && (v == d->ctrl[q]->pid) &&
                     (v == all[q].pid);
    }
    if (direct_probe_round(comm, &mine, all) != SCOMM_OK) {
        return SCOMM_ERR_PEER_LOST;
    }
    d->cma = mine.ok;
    for (q = 0; q < comm->size; q++) {
        d->cma = d->cma && ((q == comm->rank) || all[q].ok);
    }
    return SCOMM_OK;
}

/*
 * The comm's state, making the arena on first use. Returns SCOMM_OK,
 * SCOMM_ERR_UNSUPPORTED when the arena cannot be had (every rank returns
 * it, the reason is in d->why: fall back), or a world failure.
 */
static scomm_status_t direct_state_get(scomm_comm_t *comm,
                                       direct_state_t **d_p)
{
    scomm_shmem_t *s = scomm_shmem_get(comm);
    direct_state_t *d;
    scomm_status_t status;
    size_t chunk, want;
    int q;

    if (s == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    pthread_once(&direct_once, direct_init_once);
    if (s->coll != NULL) {
        d    = s->coll;
        *d_p = d;
        return d->unusable ? SCOMM_ERR_UNSUPPORTED : SCOMM_OK;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for the direct "
                               "algorithm's state", comm->cur_op);
    }
    for (q = 0; q < DIRECT_MAX_RANKS; q++) {
        d->wfd[q] = -2;
    }
    s->coll      = d;
    s->coll_free = direct_state_free;
    d->p         = comm->size;
    *d_p         = d;
    /* scomm_control_set(comm, "chunk_size", ...) at run time wins over
     * SCOMM_COLL_SHM_CHUNK for arenas made afterwards; the ranks then use
     * the smallest arena of any rank (below), so they always agree. */
    want = (size_t)SCOMM_MAX(scomm_control_chunk_size(), 0);
    want = (want > 0) ? SCOMM_MIN(SCOMM_MAX(want, DIRECT_CHUNK_MIN),
                                  DIRECT_CHUNK_MAX) & ~(size_t)4095 :
                        direct_chunk_env;
    status = scomm_shmem_set_create(comm, DIRECT_CTRL_BYTES + 2 * want,
                                    SCOMM_SHMEM_INTERNAL, &d->arena);
    if (status != SCOMM_OK) {
        if (atomic_load(&comm->world->fault.status) != 0) {
            return status;
        }
        d->unusable = 1;
        scomm_coll_select_invalidate(comm);
        snprintf(d->why, sizeof(d->why), "no shared-memory arena (%.90s)",
                 comm->last_error);
        scomm_warn(SCOMM_SUB_COLL, "direct algorithm disabled on this "
                   "communicator: %s", comm->last_error);
        return SCOMM_ERR_UNSUPPORTED;
    }
    /* Ranks may have read different SCOMM_COLL_SHM_CHUNK: use the
     * smallest arena of all. */
    chunk = want;
    for (q = 0; q < d->p; q++) {
        chunk = SCOMM_MIN(chunk, (d->arena->len[q] - DIRECT_CTRL_BYTES) / 2);
    }
    d->chunk = chunk & ~(size_t)4095;
    for (q = 0; q < d->p; q++) {
        d->ctrl[q] = (direct_ctrl_t *)d->arena->base[q];
        d->buf[q]  = (char *)d->arena->base[q] + DIRECT_CTRL_BYTES;
    }
    /* Read by a peer after the probe's messages, or after it saw this
     * rank sleeping (a seq_cst store that follows these). */
    d->ctrl[comm->rank]->pid     = (int32_t)getpid();
    d->ctrl[comm->rank]->wake_fd = comm->world->wake_fd;
    status = direct_probe_cma(comm, d);
    if (status != SCOMM_OK) {
        return direct_fault(comm);
    }
    /* A slice is at most chunk / p + 128 bytes (whole 64-byte units). */
    d->slot = SCOMM_ALIGN_UP(d->chunk / (size_t)d->p + 256, (size_t)4096);
    if (d->cma) {
        d->scratch = aligned_alloc(4096, d->slot * (size_t)d->p);
        if (d->scratch == NULL) {
            return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                   "%s: out of memory for %zu bytes of "
                                   "the direct algorithm's scratch",
                                   comm->cur_op, d->slot * (size_t)d->p);
        }
    }
    scomm_debug(SCOMM_SUB_COLL, "direct: arena of 2 x %zu bytes on %d ranks",
                d->chunk, d->p);
    return SCOMM_OK;
}

int scomm_coll_direct_supports(const scomm_comm_t *comm,
                               const scomm_coll_args_t *a, char *why,
                               size_t whylen)
{
    const direct_state_t *d;

    (void)a;
    if ((comm->size < 2) || (comm->size > DIRECT_MAX_RANKS)) {
        snprintf(why, whylen, "%d ranks is outside 2..%d", comm->size,
                 DIRECT_MAX_RANKS);
        return 0;
    }
    if (comm->local_size != comm->size) {
        snprintf(why, whylen, "only %d of %d ranks are on this host",
                 comm->local_size, comm->size);
        return 0;
    }
    d = (comm->shmem != NULL) ? comm->shmem->coll : NULL;
    if ((d != NULL) && d->unusable) {
        snprintf(why, whylen, "%s", d->why);
        return 0;
    }
    return 1;
}

int scomm_coll_direct_default(const scomm_comm_t *comm,
                              const scomm_coll_args_t *a)
{
    char why[128];
    int q;

    if (!scomm_coll_direct_supports(comm, a, why, sizeof(why))) {
        return 0;
    }
    for (q = 0; q < comm->size; q++) {
        const scomm_peer_t *pr = &comm->world->peers[comm->ranks[q]];

        if ((q != comm->rank) &&
            ((pr->tl == NULL) || (strcmp(pr->tl->name, "shm") != 0))) {
            return 0;
        }
    }
    return 1;
}

/* ---- waiting ------------------------------------------------------------- */

static inline uint64_t direct_ctr(const direct_call_t *c, int q, int x)
{
    return atomic_load_explicit(&c->d->ctrl[q]->ctr[x].v,
                                memory_order_acquire);
}

/* Rank q's eventfd in this process, dup'd through pidfd_getfd on first
 * use; -1 where the kernel refuses. */
static int direct_peer_wfd(direct_state_t *d, int q)
{
    int pidfd;

    if (d->wfd[q] == -2) {
        d->wfd[q] = -1;
        pidfd = scomm_pidfd_open((pid_t)d->ctrl[q]->pid);
        if (pidfd >= 0) {
            d->wfd[q] = scomm_pidfd_getfd(pidfd, d->ctrl[q]->wake_fd);
            close(pidfd);
        }
        if (d->wfd[q] < 0) {
            d->wfd[q] = -1;
            scomm_debug(SCOMM_SUB_COLL, "direct: cannot take rank %d's "
                        "eventfd (%s): its sleeps end by timeout", q,
                        strerror(errno));
        }
    }
    return d->wfd[q];
}

/* Wake the peers that sleep in a wait (they re-check on waking). */
static void direct_wake(const direct_call_t *c)
{
    uint64_t one = 1;
    int q, fd;

    atomic_thread_fence(memory_order_seq_cst);
    for (q = 0; q < c->p; q++) {
        if ((q == c->me) ||
            !atomic_load_explicit(&c->d->ctrl[q]->sleeping,
                                  memory_order_relaxed)) {
            continue;
        }
        atomic_thread_fence(memory_order_acquire);
        fd = direct_peer_wfd(c->d, q);
        if (fd >= 0) {
            if (write(fd, &one, sizeof(one)) < 0) {
                /* EAGAIN: the counter is non-zero, it wakes anyway. */
            }
        }
    }
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
    direct_wake(c);
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

static scomm_status_t direct_fault(scomm_comm_t *comm)
{
    scomm_world_t *w = comm->world;
    int fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);

    scomm_world_notify(w);
    return scomm_set_error(comm, (scomm_status_t)fault, "%s", w->fault.msg);
}

static scomm_status_t direct_timed_out(direct_call_t *c, int x,
                                       uint64_t want, int q)
{
    scomm_comm_t *comm = c->comm;
    scomm_world_t *w   = comm->world;
    uint64_t now = scomm_now_ns();
    uint64_t stale = 2 * scomm_hb_interval_ns(w, comm->timeout_ms);
    int sus[DIRECT_MAX_RANKS], nsus = 0, t, s = -1, i;

    /* A rank that shows no sign of life is the culprit, whoever this rank
     * happened to wait for: name it, so every survivor names the same. */
    for (t = 0; (t < w->ntl) && (nsus < DIRECT_MAX_RANKS); t++) {
        nsus += w->tls[t]->suspects(w->tl_ctx[t], now, stale, sus + nsus,
                                    DIRECT_MAX_RANKS - nsus);
    }
    for (i = 0; (i < nsus) && (s < 0); i++) {
        s = scomm_comm_rank_of(comm, sus[i]);
    }
    if (s >= 0) {
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, comm->ranks[s],
                         "%s (op #%llu): timed out after %lld ms in the "
                         "direct shared-memory algorithm: rank %d shows no "
                         "sign of life (stopped or hung)", comm->cur_op,
                         (unsigned long long)comm->op_seq,
                         (long long)comm->timeout_ms, s);
    } else {
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, comm->ranks[q],
                         "%s (op #%llu): timed out after %lld ms in the "
                         "direct shared-memory algorithm waiting for rank "
                         "%d to %s %llu", comm->cur_op,
                         (unsigned long long)comm->op_seq,
                         (long long)comm->timeout_ms, q, direct_ctr_what[x],
                         (unsigned long long)((x >= DIRECT_TINY0) ? want :
                                              want - 1 - c->k0));
    }
    return direct_fault(comm);
}

/*
 * Sleep up to ns in ppoll on the wake eventfd and the transports' fds
 * (peer pidfds, sockets), the world lock released meanwhile. The sleeping
 * flag is raised first and the counters looked at once more, so a peer
 * that publishes either sees the flag (and writes the eventfd) or we see
 * its counter.
 */
static void direct_sleep(direct_call_t *c, int x, uint64_t want, int only,
                         uint64_t ns)
{
    scomm_world_t *w = c->comm->world;
    _Atomic uint32_t *flag = &c->d->ctrl[c->me]->sleeping;
    struct pollfd fds[DIRECT_POLL_MAX];
    struct timespec ts;
    uint64_t drain;
    int i, nfds = 0, n;

    atomic_store(flag, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (direct_lagging(c, x, want, only) < 0) {
        atomic_store_explicit(flag, 0, memory_order_relaxed);
        return;
    }

    if (w->wake_fd >= 0) {
        fds[nfds].fd      = w->wake_fd;
        fds[nfds].events  = POLLIN;
        fds[nfds].revents = 0;
        nfds++;
    }
    for (i = 0; i < w->ntl; i++) {
        nfds += w->tls[i]->poll_fds(w->tl_ctx[i], fds + nfds,
                                    DIRECT_POLL_MAX - nfds);
    }
    ts.tv_sec  = (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_mutex_unlock(&w->lock);
    n = ppoll(fds, (nfds_t)nfds, &ts, NULL);
    pthread_mutex_lock(&w->lock);
    atomic_store_explicit(flag, 0, memory_order_relaxed);
    if ((n > 0) && (w->wake_fd >= 0) && (fds[0].revents & POLLIN)) {
        if (read(w->wake_fd, &drain, sizeof(drain)) < 0) {
            /* EAGAIN: another thread drained it first. */
        }
    }
    if (n > 0) {
        for (i = 0; i < w->ntl; i++) {
            w->tls[i]->check_peers(w->tl_ctx[i]);
        }
    }
}

static scomm_status_t direct_wait_slow(direct_call_t *c, int x,
                                       uint64_t want, int only, int q)
{
    scomm_comm_t *comm = c->comm;
    scomm_world_t *w   = comm->world;
    uint64_t start = scomm_now_ns(), now, last_prog = start;
    uint64_t last_check = start, sleep_ns = DIRECT_SLEEP_MIN_NS;
    uint64_t spin_ns = (uint64_t)SCOMM_MAX(w->cfg.spin_us, 0) * 1000ull;
    uint64_t timeout_ns = (comm->timeout_ms > 0) ?
                          (uint64_t)comm->timeout_ms * 1000000ull :
                          UINT64_MAX;
    uint64_t hb_ns = scomm_hb_interval_ns(w, comm->timeout_ms);
    int i;

    atomic_store_explicit(&w->cur_op, comm->cur_op, memory_order_relaxed);
    atomic_store_explicit(&w->cur_seq, comm->op_seq, memory_order_relaxed);
    for (;;) {
        if (SCOMM_UNLIKELY(atomic_load_explicit(&w->fault.status,
                                                memory_order_acquire) !=
                           0)) {
            return direct_fault(comm);
        }
        now = scomm_now_ns();
        if (now - last_prog >= DIRECT_PROGRESS_NS) {
            /* Abort notices and other ranks' messages still flow. */
            last_prog = now;
            (void)scomm_world_progress(w);
        }
        if (now - w->last_hb >= hb_ns / 2) {
            w->last_hb = now;
            for (i = 0; i < w->ntl; i++) {
                w->tls[i]->heartbeat(w->tl_ctx[i], now);
            }
        }
        if (now - last_check >= DIRECT_CHECK_NS) {
            last_check = now;
            for (i = 0; i < w->ntl; i++) {
                w->tls[i]->check_peers(w->tl_ctx[i]);
            }
            if (w->peers[comm->ranks[q]].closed &&
                (atomic_load(&w->fault.status) == 0)) {
                scomm_world_fail(w, SCOMM_ERR_PEER_LOST, comm->ranks[q],
                                 "%s (op #%llu): rank %d destroyed its "
                                 "communicator and exited while this rank "
                                 "waited for it in the direct algorithm",
                                 comm->cur_op,
                                 (unsigned long long)comm->op_seq, q);
            }
            continue;
        }
        if (now - start >= timeout_ns) {
            q = direct_lagging(c, x, want, only);
            if (q < 0) {
                return SCOMM_OK;
            }
            return direct_timed_out(c, x, want, q);
        }
        if ((now - start < DIRECT_PURE_SPIN_NS) && !w->spin_yield) {
            /* No PAUSE: under KVM pause-loop exiting deschedules a vCPU
             * that spins on it (see progress.c). */
            __asm__ __volatile__("" ::: "memory");
        } else if (now - start < spin_ns) {
            sched_yield();
        } else {
            direct_sleep(c, x, want, only,
                         SCOMM_MIN(sleep_ns, timeout_ns - (now - start)));
            sleep_ns = SCOMM_MIN(2 * sleep_ns, DIRECT_SLEEP_MAX_NS);
        }
        q = direct_lagging(c, x, want, only);
        if (q < 0) {
            return SCOMM_OK;
        }
    }
}

/* Wait until counter x of every other rank (or of rank only) >= want. */
static inline scomm_status_t direct_wait(direct_call_t *c, int x,
                                         uint64_t want, int only)
{
    int q = direct_lagging(c, x, want, only);

    if (SCOMM_LIKELY(q < 0)) {
        return SCOMM_OK;
    }
    return direct_wait_slow(c, x, want, only, q);
}

/* ---- calls --------------------------------------------------------------- */

/* Fall back (arena unavailable): run the default algorithm, and say so. */
static scomm_status_t direct_fallback(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a,
                                      const char *why)
{
    scomm_coll_record_t *rec = &comm->last_sel;
    char forced[sizeof(rec->algo)];
    const char *alt;
    scomm_coll_fn_t fn;

    switch (a->op) {
    case SCOMM_COLL_ALLGATHER:
        alt = "ring";
        fn  = scomm_allgather_ring;
        break;
    case SCOMM_COLL_REDUCESCATTER:
        alt = "ring";
        fn  = scomm_reducescatter_ring;
        break;
    case SCOMM_COLL_BROADCAST:
        alt = "binomial";
        fn  = scomm_bcast_binomial;
        break;
    default:
        alt = "ring";
        fn  = scomm_allreduce_ring;
        break;
    }
    memcpy(forced, rec->algo, sizeof(forced));
    snprintf(rec->algo, sizeof(rec->algo), "%s", alt);
    snprintf(rec->rule_id, sizeof(rec->rule_id), "fallback:shm_direct");
    snprintf(rec->reason, sizeof(rec->reason), "%s falls back: %s; %s",
             forced, why, alt);
    return fn(comm, a);
}

/*
 * Start a call: the state (or fall back), my descriptor. send/sspan: the
 * data the others read from this rank (NULL: none), recv/rspan: the
 * result the others read from this rank's recvbuf (all_reduce only).
 * Returns SCOMM_OK, SCOMM_ERR_UNSUPPORTED (run the fallback), or an error.
 */
static scomm_status_t direct_begin(direct_call_t *c, scomm_comm_t *comm,
                                   const scomm_coll_args_t *a,
                                   const void *send, size_t sspan,
                                   const void *recv, size_t rspan)
{
    scomm_shmem_set_t *set;
    scomm_status_t status;
    size_t off;

    memset(c, 0, sizeof(*c));
    c->comm = comm;
    c->a    = a;
    c->p    = comm->size;
    c->me   = comm->rank;
    status  = direct_state_get(comm, &c->d);
    if (status != SCOMM_OK) {
        return status;
    }
    c->k0              = c->d->k;
    c->desc.seq        = ++c->d->seq;
    c->desc.count      = a->count;
    c->desc.op         = (int32_t)a->op;
    c->desc.dtype      = (int32_t)a->dtype;
    c->desc.redop      = ((a->op == SCOMM_COLL_ALLREDUCE) ||
                          (a->op == SCOMM_COLL_REDUCESCATTER)) ?
                         (int32_t)a->redop : -1;
    c->desc.root       = (a->op == SCOMM_COLL_BROADCAST) ? a->root : -1;
    c->desc.send_set   = DIRECT_AT_ARENA;
    c->desc.recv_set   = DIRECT_AT_ARENA;
    if ((send != NULL) &&
        ((set = scomm_shmem_find(comm, send, sspan, &off)) != NULL)) {
        c->desc.send_set = (int64_t)set->id;
        c->desc.send_off = off;
    }
    if ((recv != NULL) &&
        ((set = scomm_shmem_find(comm, recv, rspan, &off)) != NULL)) {
        c->desc.recv_set = (int64_t)set->id;
        c->desc.recv_off = off;
    }
    return SCOMM_OK;
}

static void direct_put_desc(direct_call_t *c)
{
    c->d->ctrl[c->me]->desc[c->k0 & 1] = c->desc;
}

/* Rank q's buffer in set id at off, span bytes, mapped here; or NULL and
 * the world failed. */
static const char *direct_peer_ptr(direct_call_t *c, int q, int64_t id,
                                   uint64_t off, size_t span)
{
    scomm_comm_t *comm = c->comm;
    scomm_shmem_set_t *set = scomm_shmem_by_id(comm, (uint64_t)id);

    if ((set == NULL) || (set->base[q] == NULL) || (off > set->len[q]) ||
        (span > set->len[q] - off)) {
        scomm_world_fail(comm->world, SCOMM_ERR_INVALID_USAGE, comm->ranks[q],
                         "%s (op #%llu): rank %d passes scomm_mem_alloc "
                         "memory (allocation #%lld, offset %llu, %zu bytes) "
                         "that rank %d does not have: allocations and frees "
                         "must be collective", comm->cur_op,
                         (unsigned long long)comm->op_seq, q, (long long)id,
                         (unsigned long long)off, span, c->me);
        return NULL;
    }
    return (const char *)set->base[q] + off;
}

/*
 * After the first ready wait: check the descriptors of the ranks in
 * [0, p) (or of rank only), and find their in-place buffers.
 */
static scomm_status_t direct_read_descs(direct_call_t *c, size_t sspan,
                                        size_t rspan, int only)
{
    scomm_comm_t *comm = c->comm;
    const direct_desc_t *m = &c->desc;
    const char *what = NULL;
    long long mine = 0, theirs = 0;
    int q;

    for (q = 0; q < c->p; q++) {
        const direct_desc_t *t;

        if ((q == c->me) || ((only >= 0) && (q != only))) {
            continue;
        }
        t = &c->d->ctrl[q]->desc[c->k0 & 1];
        if ((t->seq != m->seq) || (t->op != m->op)) {
            what   = "collective call (op, sequence number)";
            mine   = (long long)m->seq;
            theirs = (long long)t->seq;
        } else if (t->count != m->count) {
            what   = "count";
            mine   = (long long)m->count;
            theirs = (long long)t->count;
        } else if (t->dtype != m->dtype) {
            what   = "dtype";
            mine   = m->dtype;
            theirs = t->dtype;
        } else if (t->redop != m->redop) {
            what   = "op";
            mine   = m->redop;
            theirs = t->redop;
        } else if (t->root != m->root) {
            what   = "root";
            mine   = m->root;
            theirs = t->root;
        }
        if (what != NULL) {
            scomm_world_fail(comm->world, SCOMM_ERR_MISMATCH, comm->ranks[q],
                             "%s (op #%llu): argument mismatch in the "
                             "direct algorithm: rank %d passed %s %lld, "
                             "rank %d passed %lld", comm->cur_op,
                             (unsigned long long)comm->op_seq, q, what,
                             theirs, c->me, mine);
            return direct_fault(comm);
        }
        if ((sspan > 0) && (t->send_set >= 0)) {
            c->psend[q] = direct_peer_ptr(c, q, t->send_set, t->send_off,
                                          sspan);
            if (c->psend[q] == NULL) {
                return direct_fault(comm);
            }
        } else if ((sspan > 0) && (t->send_set == DIRECT_AT_CMA)) {
            c->csend[q] = t->send_off;
        }
        if ((rspan > 0) && (t->recv_set >= 0)) {
            c->precv[q] = direct_peer_ptr(c, q, t->recv_set, t->recv_off,
                                          rspan);
            if (c->precv[q] == NULL) {
                return direct_fault(comm);
            }
        } else if ((rspan > 0) && (t->recv_set == DIRECT_AT_CMA)) {
            c->crecv[q] = t->recv_off;
        }
    }
    return SCOMM_OK;
}

/* len bytes at addr in rank q's memory into dst, by process_vm_readv. */
static scomm_status_t direct_cma_read(direct_call_t *c, int q, void *dst,
                                      uint64_t addr, size_t len)
{
    scomm_comm_t *comm = c->comm;
    struct iovec l, r;
    ssize_t n;
    int err;

    while (len > 0) {
        l.iov_base = dst;
        l.iov_len  = len;
        r.iov_base = (void *)(uintptr_t)addr;
        r.iov_len  = len;
        n = process_vm_readv(c->d->pid[q], &l, 1, &r, 1, 0);
        if (n > 0) {
            dst = (char *)dst + n;
            addr += (uint64_t)n;
            len -= (size_t)n;
            continue;
        }
        err = (n < 0) ? errno : EFAULT;
        if (err == EINTR) {
            continue;
        }
        scomm_world_fail(comm->world,
                         (err == ESRCH) ? SCOMM_ERR_PEER_LOST :
                                          SCOMM_ERR_SYSTEM,
                         comm->ranks[q], "%s (op #%llu): reading rank %d's "
                         "buffer with process_vm_readv: %s", comm->cur_op,
                         (unsigned long long)comm->op_seq, q, strerror(err));
        return direct_fault(comm);
    }
    return SCOMM_OK;
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

static scomm_status_t direct_allreduce_small(direct_call_t *c)
{
    const scomm_coll_args_t *a = c->a;
    const void *srcs[DIRECT_MAX_RANKS];
    uint64_t k = c->k0;
    scomm_status_t status;
    int q;

    /* Staged always, even from scomm_mem_alloc memory: in place, this
     * rank overwrites sendbuf while the others may still read it. */
    c->desc.send_set = DIRECT_AT_ARENA;
    c->desc.recv_set = DIRECT_AT_ARENA;
    status = direct_wait_free(c, k);
    if (status != SCOMM_OK) {
        return status;
    }
    direct_copy(direct_buf(c, c->me, k), a->sendbuf, a->bytes, 0);
    direct_put_desc(c);
    direct_publish(c, DIRECT_READY, k + 1);
    status = direct_wait(c, DIRECT_READY, k + 1, -1);
    if (status == SCOMM_OK) {
        status = direct_read_descs(c, 0, 0, -1);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    for (q = 0; q < c->p; q++) {
        srcs[q] = (q == c->me) ? a->sendbuf : direct_buf(c, q, k);
    }
    scomm_reduce_n(a->recvbuf, srcs, c->p, a->count, a->dtype, a->redop,
                   c->p);
    direct_set(c, DIRECT_REDUCED, k + 1);
    direct_publish(c, DIRECT_DONE, k + 1);
    c->d->k = k + 1;
    return SCOMM_OK;
}

/*
 * Tiny all_reduce (<= 48 bytes, once the state exists): call s writes its
 * arguments and data into this rank's line TINY0 + s % 2 and publishes s
 * there; every rank reduces all lines in rank order. One cache line per
 * peer crosses, against five or more on the small path. Safe to rewrite
 * line s % 2 at call s + 2: this rank got there only after every peer
 * published s + 1, which each did only after finishing call s.
 */
static scomm_status_t direct_allreduce_tiny(scomm_comm_t *comm,
                                            const scomm_coll_args_t *a,
                                            direct_state_t *d)
{
    const void *srcs[DIRECT_MAX_RANKS];
    direct_call_t c;
    direct_line_t *mine;
    uint64_t s, meta;
    scomm_status_t status;
    int x, q;

    c.comm = comm;
    c.a    = a;
    c.d    = d;
    c.p    = comm->size;
    c.me   = comm->rank;
    c.k0   = d->k;
    s      = ++d->tseq;
    x      = DIRECT_TINY0 + (int)(s & 1);
    meta   = (uint64_t)a->count | ((uint64_t)a->dtype << 40) |
             ((uint64_t)a->redop << 48);
    mine   = &d->ctrl[c.me]->ctr[x];
    mine->meta = meta;
    memcpy(mine->data, a->sendbuf, a->bytes);
    direct_publish(&c, x, s);
    status = direct_wait(&c, x, s, -1);
    if (status != SCOMM_OK) {
        return status;
    }
    for (q = 0; q < c.p; q++) {
        const direct_line_t *l = &d->ctrl[q]->ctr[x];

        if (l->meta != meta) {
            return scomm_set_error(comm, SCOMM_ERR_MISMATCH,
                                   "%s (op #%llu): argument mismatch: rank "
                                   "%d passed count %llu dtype %d op %d, "
                                   "rank %d count %zu dtype %d op %d",
                                   comm->cur_op,
                                   (unsigned long long)comm->op_seq, q,
                                   (unsigned long long)(l->meta &
                                                        0xffffffffffull),
                                   (int)((l->meta >> 40) & 0xff),
                                   (int)(l->meta >> 48), c.me, a->count,
                                   (int)a->dtype, (int)a->redop);
        }
        srcs[q] = l->data;
    }
    scomm_reduce_n(a->recvbuf, srcs, c.p, a->count, a->dtype, a->redop,
                   c.p);
    return SCOMM_OK;
}

static scomm_status_t direct_allreduce(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    direct_call_t c;
    const void *srcs[DIRECT_MAX_RANKS];
    const char *send = a->sendbuf, *src;
    char *recv = a->recvbuf, *mine, *dst;
    size_t C, off, nb, lo, hi, qlo, qhi, es = a->esize;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int q, t, stage, zrecv;

    status = direct_begin(&c, comm, a, send, a->bytes, recv, a->bytes);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    if (a->bytes <= DIRECT_SMALL_BYTES) {
        return direct_allreduce_small(&c);
    }
    C       = c.d->chunk;
    nchunks = (a->bytes + C - 1) / C;
    c.nt    = (a->bytes >= DIRECT_NT_BYTES);
    if (c.nt) {
        /* Large: results go through the arena, which stays in the caches,
         * and reach recvbuf by non-temporal stores; reducing straight into
         * recvbuf would read every line of it from memory first (write
         * allocate). */
        c.desc.recv_set = DIRECT_AT_ARENA;
    }
    if (c.d->cma && (a->bytes >= DIRECT_CMA_BYTES) && !c.nt) {
        /* The others read ordinary memory where it is. */
        if (c.desc.send_set == DIRECT_AT_ARENA) {
            c.desc.send_set = DIRECT_AT_CMA;
            c.desc.send_off = (uint64_t)(uintptr_t)send;
        }
        if (c.desc.recv_set == DIRECT_AT_ARENA) {
            c.desc.recv_set = DIRECT_AT_CMA;
            c.desc.recv_off = (uint64_t)(uintptr_t)recv;
        }
    }
    stage   = (c.desc.send_set == DIRECT_AT_ARENA);
    zrecv   = (c.desc.recv_set != DIRECT_AT_ARENA);
    for (i = 0; i < nchunks; i++) {
        k    = c.k0 + i;
        off  = (size_t)i * C;
        nb   = SCOMM_MIN(C, a->bytes - off);
        mine = direct_buf(&c, c.me, k);
        direct_slice(nb, c.p, c.me, &lo, &hi);
        /* 1. my buffer k%2 (and on the first chunk my descriptor slot)
         *    is free again */
        if ((i == 0) || stage || !zrecv) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        /* 2. stage all but my own slice, which only I read */
        if (stage) {
            direct_copy(mine, send + off, lo, 0);
            direct_copy(mine + hi, send + off + hi, nb - hi, 0);
        }
        if (i == 0) {
            direct_put_desc(&c);
        }
        direct_publish(&c, DIRECT_READY, k + 1);
        /* 3. everybody's input of chunk k is there */
        status = direct_wait(&c, DIRECT_READY, k + 1, -1);
        if ((status == SCOMM_OK) && (i == 0)) {
            status = direct_read_descs(&c, a->bytes, a->bytes, -1);
        }
        if (status != SCOMM_OK) {
            return status;
        }
        /* 4. reduce my slice, rank 0 first */
        if (hi > lo) {
            for (q = 0; q < c.p; q++) {
                if (q == c.me) {
                    srcs[q] = send + off + lo;
                } else if (c.psend[q] != NULL) {
                    srcs[q] = c.psend[q] + off + lo;
                } else if (c.csend[q] != 0) {
                    srcs[q] = c.d->scratch + (size_t)q * c.d->slot;
                    status  = direct_cma_read(&c, q, c.d->scratch +
                                              (size_t)q * c.d->slot,
                                              c.csend[q] + off + lo, hi - lo);
                    if (status != SCOMM_OK) {
                        return status;
                    }
                } else {
                    srcs[q] = direct_buf(&c, q, k) + lo;
                }
            }
            dst = zrecv ? recv + off + lo : mine + lo;
            scomm_reduce_n(dst, srcs, c.p, (hi - lo) / es, a->dtype,
                           a->redop, c.p);
        }
        direct_publish(&c, DIRECT_REDUCED, k + 1);
        /* 5. everybody's result slice of chunk k is there: copy out */
        status = direct_wait(&c, DIRECT_REDUCED, k + 1, -1);
        if (status != SCOMM_OK) {
            return status;
        }
        for (t = 1; t <= c.p; t++) {
            q = (c.me + t) % c.p;
            direct_slice(nb, c.p, q, &qlo, &qhi);
            if (q == c.me) {
                src = zrecv ? NULL : mine + qlo;
            } else if (c.precv[q] != NULL) {
                src = c.precv[q] + off + qlo;
            } else if (c.crecv[q] != 0) {
                src    = NULL;
                status = direct_cma_read(&c, q, recv + off + qlo,
                                         c.crecv[q] + off + qlo, qhi - qlo);
                if (status != SCOMM_OK) {
                    return status;
                }
            } else {
                src = direct_buf(&c, q, k) + qlo;
            }
            if (src != NULL) {
                direct_copy(recv + off + qlo, src, qhi - qlo, c.nt);
            }
        }
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (zrecv) {
        /* The others read my recvbuf in place: hand it back only when
         * they are through. */
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

static scomm_status_t direct_allgather(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    direct_call_t c;
    const char *send = a->sendbuf, *src;
    char *recv = a->recvbuf;
    size_t C, off, nb, bytes = a->bytes;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int q, t, stage;

    status = direct_begin(&c, comm, a, send, bytes, NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    C       = c.d->chunk;
    nchunks = (bytes + C - 1) / C;
    stage   = (c.desc.send_set == DIRECT_AT_ARENA);
    c.nt    = (bytes * (size_t)c.p >= DIRECT_NT_BYTES);
    for (i = 0; i < nchunks; i++) {
        k   = c.k0 + i;
        off = (size_t)i * C;
        nb  = SCOMM_MIN(C, bytes - off);
        if ((i == 0) || stage) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        if (stage) {
            direct_copy(direct_buf(&c, c.me, k), send + off, nb, 0);
        }
        if (i == 0) {
            direct_put_desc(&c);
        }
        direct_publish(&c, DIRECT_READY, k + 1);
        status = direct_wait(&c, DIRECT_READY, k + 1, -1);
        if ((status == SCOMM_OK) && (i == 0)) {
            status = direct_read_descs(&c, bytes, 0, -1);
        }
        if (status != SCOMM_OK) {
            return status;
        }
        for (t = 0; t < c.p; t++) {
            q = (c.me + t) % c.p;
            if (q == c.me) {
                src = a->inplace ? NULL : send + off;
            } else if (c.psend[q] != NULL) {
                src = c.psend[q] + off;
            } else {
                src = direct_buf(&c, q, k);
            }
            if (src != NULL) {
                direct_copy(recv + (size_t)q * bytes + off, src, nb, c.nt);
            }
        }
        direct_set(&c, DIRECT_REDUCED, k + 1);
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (!stage) {
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

static scomm_status_t direct_bcast(scomm_comm_t *comm,
                                   const scomm_coll_args_t *a)
{
    direct_call_t c;
    char *buf = a->recvbuf;
    const char *src;
    size_t C, off, nb, bytes = a->bytes;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int root = a->root, is_root = (comm->rank == a->root), stage;

    status = direct_begin(&c, comm, a, is_root ? buf : NULL, bytes, NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    C       = c.d->chunk;
    nchunks = (bytes + C - 1) / C;
    stage   = is_root && (c.desc.send_set == DIRECT_AT_ARENA);
    c.nt    = (bytes >= DIRECT_NT_BYTES);
    for (i = 0; i < nchunks; i++) {
        k   = c.k0 + i;
        off = (size_t)i * C;
        nb  = SCOMM_MIN(C, bytes - off);
        if ((i == 0) || stage) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        if (stage) {
            direct_copy(direct_buf(&c, root, k), buf + off, nb, 0);
        }
        if (i == 0) {
            direct_put_desc(&c);
        }
        direct_set(&c, DIRECT_REDUCED, k + 1);
        direct_publish(&c, DIRECT_READY, k + 1);
        if (!is_root) {
            status = direct_wait(&c, DIRECT_READY, k + 1, root);
            if ((status == SCOMM_OK) && (i == 0)) {
                status = direct_read_descs(&c, bytes, 0, root);
            }
            if (status != SCOMM_OK) {
                return status;
            }
            src = (c.psend[root] != NULL) ? c.psend[root] + off :
                                            direct_buf(&c, root, k);
            direct_copy(buf + off, src, nb, c.nt);
        }
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (is_root && !stage) {
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

static scomm_status_t direct_reducescatter(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a)
{
    direct_call_t c;
    const void *srcs[DIRECT_MAX_RANKS];
    const char *send = a->sendbuf;
    char *recv = a->recvbuf, *mine;
    size_t Cb, off, nb, bytes = a->bytes, es = a->esize;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int q, stage;

    status = direct_begin(&c, comm, a, send, bytes * (size_t)comm->size,
                          NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    /* Chunk i holds bytes [i*Cb, (i+1)*Cb) of every block, block q at
     * q*Cb in the buffer. */
    Cb      = (c.d->chunk / (size_t)c.p) & ~(size_t)63;
    nchunks = (bytes + Cb - 1) / Cb;
    stage   = (c.desc.send_set == DIRECT_AT_ARENA);
    for (i = 0; i < nchunks; i++) {
        k    = c.k0 + i;
        off  = (size_t)i * Cb;
        nb   = SCOMM_MIN(Cb, bytes - off);
        mine = direct_buf(&c, c.me, k);
        if ((i == 0) || stage) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        if (stage) {
            for (q = 0; q < c.p; q++) {
                if (q != c.me) {
                    direct_copy(mine + (size_t)q * Cb,
                                send + (size_t)q * bytes + off, nb, 0);
                }
            }
        }
        if (i == 0) {
            direct_put_desc(&c);
        }
        direct_publish(&c, DIRECT_READY, k + 1);
        status = direct_wait(&c, DIRECT_READY, k + 1, -1);
        if ((status == SCOMM_OK) && (i == 0)) {
            status = direct_read_descs(&c, bytes * (size_t)c.p, 0, -1);
        }
        if (status != SCOMM_OK) {
            return status;
        }
        for (q = 0; q < c.p; q++) {
            if (q == c.me) {
                srcs[q] = send + (size_t)c.me * bytes + off;
            } else if (c.psend[q] != NULL) {
                srcs[q] = c.psend[q] + (size_t)c.me * bytes + off;
            } else {
                srcs[q] = direct_buf(&c, q, k) + (size_t)c.me * Cb;
            }
        }
        scomm_reduce_n(recv + off, srcs, c.p, nb / es, a->dtype, a->redop,
                       c.p);
        direct_set(&c, DIRECT_REDUCED, k + 1);
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (!stage) {
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

/* ---- entry points (algorithm table) -------------------------------------- */

scomm_status_t scomm_allreduce_direct(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a)
{
    direct_state_t *d = (comm->shmem != NULL) ? comm->shmem->coll : NULL;

    if ((a->bytes <= DIRECT_TINY_BYTES) && (d != NULL) && !d->unusable) {
        return direct_allreduce_tiny(comm, a, d);
    }
    return direct_allreduce(comm, a);
}

scomm_status_t scomm_allgather_direct(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a)
{
    return direct_allgather(comm, a);
}

scomm_status_t scomm_bcast_direct(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a)
{
    return direct_bcast(comm, a);
}

scomm_status_t scomm_reducescatter_shm_direct(scomm_comm_t *comm,
                                              const scomm_coll_args_t *a)
{
    return direct_reducescatter(comm, a);
}
