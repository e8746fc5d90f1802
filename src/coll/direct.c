/*
 * direct.c - collectives for communicators whose ranks all share this host
 * ("direct"): every rank reads the others' data straight out of shared
 * memory instead of passing it along a ring. all_reduce, all_gather and
 * broadcast are "direct" in the algorithm table; reduce_scatter is
 * "shm_direct" there, because "direct" already names rd.c's one-round
 * point-to-point reduce_scatter.
 *
 * Files: this one holds the machinery (the arena and its set-up, the CMA
 * probe, copies, counters, waits, call set-up and descriptors); the four
 * staged algorithms are in direct_ops.c, the single-copy broadcast,
 * all_gather and all_to_all ("single_copy": each rank reads the others'
 * buffers where they lie) and the tiny broadcast and all_to_all in
 * direct_single.c; what they share is in direct.h.
 *
 * Per communicator, at the first call (direct_state_get), every rank
 * creates a staging arena in shared memory (core/shmem.c: random name,
 * 0600, unlinked once mapped), maps everybody else's, and the ranks find
 * out together whether each may read the others' memory with
 * process_vm_readv (direct_probe_cma; "CMA"):
 *
 *   arena := ctrl (4 KiB: three counters, the tiny paths' lines and a
 *            sleeping flag on their own cache lines, two call
 *            descriptors) | buffer 0 | buffer 1
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
 *                   always through the arena, and into recvbuf by
 *                   non-temporal stores: reducing straight into recvbuf
 *                   would first read every line of it from memory (write
 *                   allocate). From ordinary memory, what the others read
 *                   in my arena (staged input, my result slice: reduced
 *                   into an L1 block, then stored to recvbuf and arena)
 *                   goes there by non-temporal stores too, so it crosses
 *                   through main memory: on the AMD EPYC VM of
 *                   PERFORMANCE.md one core reads lines another core's
 *                   cache holds at 5-6 GB/s (c2c latency bound), the same
 *                   lines from memory at 25-33 GB/s. Per rank: input read
 *                   once, N/2 staged, N/2 of the peer's read, result half
 *                   written twice, the peer's half read and written (4 x N
 *                   of memory traffic for 2 ranks, none between caches).
 * With both buffers from scomm_mem_alloc nothing is staged: per rank, own
 * half + peer half read, result half written, the peer's result half read
 * and written (2.5 x N for 2 ranks).
 *
 * all_gather: each rank stages its own block's chunk (mem_alloc: read in
 * place), then copies every rank's chunk out. broadcast: the root stages,
 * the others copy out. reduce_scatter: each rank stages the blocks of the
 * others (chunks of chunk/p bytes per block), then reduces its own block
 * from everybody's. All three stage with non-temporal stores from 8 MiB
 * (all_gather, reduce_scatter: total) on, for the reason above.
 *
 * Waits (direct_wait) go through the core's wait loop
 * (scomm_world_wait_until, core/progress.c) with the peers' counters as
 * the condition: spin purely for 5 us (not at all when ranks outnumber
 * cores), then with sched_yield() until SCOMM_SPIN_US, then sleep in
 * ppoll() on the world's wake eventfd and the transports' fds, from 50 us
 * doubling to 2 ms. A sleeper raises its sleeping flag first and looks
 * once more; a rank that publishes a counter, after a full fence, writes
 * the eventfd (dup'd through pidfd_getfd) of every peer whose flag is up,
 * so a sleeping wait ends within a wake-up, not at its timer. Meanwhile
 * the transports progress every 50 us (abort notices), heartbeats go out,
 * dead peers are looked for every 10 ms, and the comm's timeout bounds
 * each wait: then the world fails with SCOMM_ERR_TIMED_OUT naming a rank
 * that shows no sign of life, or else the rank waited for.
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
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../telemetry/control.h"
#include "direct.h"


#define DIRECT_CHUNK_DEFAULT (1u << 20)
#define DIRECT_CHUNK_MIN     (64u << 10)
#define DIRECT_CHUNK_MAX     (64u << 20)
#define DIRECT_PROGRESS_NS   50000ull
#define DIRECT_CHECK_NS      10000000ull
#define DIRECT_SLEEP_MIN_NS  50000ull
#define DIRECT_SLEEP_MAX_NS  2000000ull

static const char *const direct_ctr_what[DIRECT_NCTR] = {
    "publish its input of", "publish its result of", "finish reading",
    "publish its input of tiny call", "publish its input of tiny call",
    "publish tiny broadcast", "publish tiny broadcast",
    "publish tiny broadcast", "publish tiny broadcast",
    "publish tiny broadcast", "publish tiny broadcast",
    "publish tiny broadcast", "publish tiny broadcast",
    "publish its input of tiny call", "publish its input of tiny call",
    "finish tiny broadcast", "answer the latency probe at"
};

/* ---- knobs and copies ---------------------------------------------------- */

static pthread_once_t direct_once = PTHREAD_ONCE_INIT;
static size_t direct_chunk_env = DIRECT_CHUNK_DEFAULT;
static int direct_isa; /* 2: AVX-512F, 1: AVX2, 0: memcpy only */

int scomm_direct_prefetchw_ok;
static int direct_near_env; /* SCOMM_COLL_SHM_NEAR: 0 auto, 1 yes, 2 no */

static void direct_init_once(void)
{
    scomm_pval_t v;

    /* SCOMM_COLL_SHM_CHUNK (coll's table in select.c: 64k..64m): bytes of
     * each of the two staging buffers per rank, once per process. */
    scomm_param_get_or_warn("SCOMM_COLL_SHM_CHUNK", &v);
    direct_chunk_env = (size_t)v.u & ~(size_t)4095;
    scomm_param_get_or_warn("SCOMM_COLL_SHM_NEAR", &v);
    direct_near_env = (int)v.i; /* auto, yes, no */
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        direct_isa = 2;
    } else if (__builtin_cpu_supports("avx2")) {
        direct_isa = 1;
    }
    {
        unsigned eax, ebx, ecx = 0, edx;

        /* CPUID 0x80000001 ECX bit 8: PREFETCHW (3DNowPrefetch). */
        if (__get_cpuid(0x80000001u, &eax, &ebx, &ecx, &edx)) {
            scomm_direct_prefetchw_ok = (ecx >> 8) & 1u;
        }
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
void scomm_direct_copy(void *dst, const void *src, size_t n, int nt)
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
void scomm_direct_slice(size_t nb, int p, int j, size_t *lo, size_t *hi)
{
    size_t units = (nb + 63) / 64;

    *lo = SCOMM_MIN(units * (size_t)j / (size_t)p * 64, nb);
    *hi = SCOMM_MIN(units * (size_t)(j + 1) / (size_t)p * 64, nb);
}

/* ---- state --------------------------------------------------------------- */


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
 * How near the ranks' cores are: rank 0 bounces a counter off each other
 * rank in turn, DIRECT_PROBE_TRIPS round trips a batch, and keeps the
 * quickest batch of each peer after a first that warms up (a preempted
 * batch only looks slower); the slowest peer's one-way time decides, and
 * rank 0 hands its verdict to every rank on its probe line, so all agree.
 * About 10 us on cores that share a cache, 50 us on cores 300 ns apart.
 * The peers are not woken: a peer asleep in a wait sees the counter when
 * its timer ends the sleep (the first batch, which only warms up).
 */
#define DIRECT_NEAR_NS       120u
#define DIRECT_PROBE_TRIPS   16
#define DIRECT_PROBE_BATCHES 9 /* the first only warms up */

static scomm_status_t direct_probe_near(scomm_comm_t *comm, direct_state_t *d)
{
    direct_call_t c;
    direct_line_t *l;
    uint64_t v = 0, t0, dt, best, worst = 0;
    scomm_status_t status = SCOMM_OK;
    int q, b, i;

    memset(&c, 0, sizeof(c));
    c.comm = comm;
    c.d    = d;
    c.p    = d->p;
    c.me   = comm->rank;
    for (q = 1; q < c.p; q++) {
        best = UINT64_MAX;
        for (b = 0; b < DIRECT_PROBE_BATCHES; b++) {
            t0 = scomm_now_ns();
            for (i = 0; (i < DIRECT_PROBE_TRIPS) && (status == SCOMM_OK);
                 i++) {
                v++;
                if (c.me == 0) {
                    direct_set(&c, DIRECT_PROBE, v);
                    status = direct_wait(&c, DIRECT_PROBE, v, q);
                } else if (c.me == q) {
                    status = direct_wait(&c, DIRECT_PROBE, v, 0);
                    direct_set(&c, DIRECT_PROBE, v);
                }
            }
            if (status != SCOMM_OK) {
                return status;
            }
            dt   = (scomm_now_ns() - t0) / (2 * DIRECT_PROBE_TRIPS);
            best = (b > 0) ? SCOMM_MIN(best, dt) : best;
        }
        worst = SCOMM_MAX(worst, best);
    }
    l = &d->ctrl[0]->ctr[DIRECT_PROBE];
    if (c.me == 0) {
        l->meta = worst;
        direct_publish(&c, DIRECT_PROBE, v + 1);
    } else {
        status = direct_wait(&c, DIRECT_PROBE, v + 1, 0);
        if (status != SCOMM_OK) {
            return status;
        }
        worst = l->meta;
    }
    d->near_ns = (uint32_t)SCOMM_MIN(worst, (uint64_t)UINT32_MAX);
    d->near    = (direct_near_env == 1) ||
                 ((direct_near_env == 0) && (worst <= DIRECT_NEAR_NS));
    scomm_debug(SCOMM_SUB_COLL, "direct: cores %s (a cache line crosses in "
                "%u ns one way%s)", d->near ? "near" : "far", d->near_ns,
                (direct_near_env != 0) ? ", SCOMM_COLL_SHM_NEAR decided" : "");
    scomm_coll_select_invalidate(comm);
    return SCOMM_OK;
}

int scomm_coll_shm_near(const scomm_comm_t *comm, uint32_t *ns)
{
    const direct_state_t *d = direct_state_peek(comm);

    if ((d == NULL) || !d->near) {
        return 0;
    }
    *ns = d->near_ns;
    return 1;
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
    atomic_store_explicit(&d->ctrl[comm->rank]->mb,
                          scomm_membarrier_register(), memory_order_release);
    d->wake_fence = 1;
    status = direct_probe_cma(comm, d);
    if (status == SCOMM_OK) {
        /* Every rank wrote its mb before the probe's messages: decided
         * once here, not looked at again on every publish. */
        d->wake_fence = 0;
        for (q = 0; q < d->p; q++) {
            d->wake_fence |= !atomic_load_explicit(&d->ctrl[q]->mb,
                                                   memory_order_acquire);
        }
        status = direct_probe_near(comm, d);
    }
    if (status != SCOMM_OK) {
        return scomm_direct_fault(comm);
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

    if (!scomm_coll_direct_supports(comm, a, why, sizeof(why))) {
        return 0;
    }
    return scomm_comm_peers_have(comm, SCOMM_TL_CAP_SHARED_MEM);
}

/* ---- waiting ------------------------------------------------------------- */


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

/*
 * After publishing a counter: write the eventfd of every peer that sleeps.
 * The store and the look at the flags must not pass each other (a sleeper
 * raises its flag, then looks at the counters). A fence here would wait
 * for the store's cache line to reach this core -- most of the time of a
 * tiny call, since the peer polls that line. Where every rank is
 * registered for membarrier(2) (decided at set-up), the sleepers issue a
 * global barrier after raising their flag instead (scomm_wait_sleep),
 * which orders this side too; otherwise, a fence.
 */
void scomm_direct_wake(const direct_call_t *c)
{
    uint64_t one = 1;
    int q, fd;

    if (SCOMM_UNLIKELY(c->d->wake_fence)) {
        atomic_thread_fence(memory_order_seq_cst);
    } else {
        atomic_signal_fence(memory_order_seq_cst); /* the compiler only */
    }
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




scomm_status_t scomm_direct_fault(scomm_comm_t *comm)
{
    scomm_world_t *w = comm->world;
    int fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);

    scomm_world_notify(w);
    return scomm_set_error(comm, (scomm_status_t)fault, "%s", w->fault.msg);
}

/* One wait: counter x of every other rank (or of rank only) >= want. */
typedef struct direct_wait_arg {
    direct_call_t *c;
    int            x;
    uint64_t       want;
    int            only;
} direct_wait_arg_t;

static int direct_wait_done(void *arg)
{
    const direct_wait_arg_t *wa = arg;

    return direct_lagging(wa->c, wa->x, wa->want, wa->only) < 0;
}

static int direct_wait_pending(void *arg, int *wranks, int max, char *what,
                               size_t len)
{
    const direct_wait_arg_t *wa = arg;
    int q = direct_lagging(wa->c, wa->x, wa->want, wa->only);

    if ((q < 0) || (max < 1)) {
        return 0;
    }
    wranks[0] = wa->c->comm->ranks[q];
    if (what != NULL) {
        /* Chunks are counted from the call's first; tiny calls by number. */
        snprintf(what, len, " to %s %llu", direct_ctr_what[wa->x],
                 (unsigned long long)((wa->x >= DIRECT_TINY0) ?
                                      wa->want : wa->want - 1 - wa->c->k0));
    }
    return 1;
}

/*
 * The slow path of a wait, through the core's wait loop: the peers'
 * counters are polled every turn, the transports every 50 us (abort
 * notices), dead peers looked for every 10 ms; sleeps start at 50 us and
 * double to 2 ms, with this rank's sleeping flag up so that a rank that
 * publishes a counter writes our eventfd (scomm_direct_wake).
 */
scomm_status_t scomm_direct_wait_slow(direct_call_t *c, int x,
                                      uint64_t want, int only)
{
    direct_wait_arg_t wa = {c, x, want, only};
    const scomm_wait_cond_t cond = {
        .done         = direct_wait_done,
        .pending      = direct_wait_pending,
        .arg          = &wa,
        .sleeping     = &c->d->ctrl[c->me]->sleeping,
        .where        = " in the direct shared-memory algorithm",
        .progress_ns  = DIRECT_PROGRESS_NS,
        .sleep_min_ns = DIRECT_SLEEP_MIN_NS,
        .sleep_max_ns = DIRECT_SLEEP_MAX_NS,
        .check_ns     = DIRECT_CHECK_NS,
        .asym_fence   = 1,
    };

    return scomm_world_wait_until(c->comm, &cond,
                                  scomm_comm_deadline(c->comm));
}


/* ---- calls --------------------------------------------------------------- */

/* Run alt (fn) instead of the forced algorithm, and say why. */
scomm_status_t scomm_direct_fallback_to(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a,
                                        const char *why, const char *alt,
                                        scomm_coll_fn_t fn)
{
    scomm_coll_record_t *rec = &comm->last_sel;
    char forced[sizeof(rec->algo)];

    memcpy(forced, rec->algo, sizeof(forced));
    snprintf(rec->algo, sizeof(rec->algo), "%s", alt);
    snprintf(rec->rule_id, sizeof(rec->rule_id), "fallback:%s", forced);
    snprintf(rec->reason, sizeof(rec->reason), "%s falls back: %s; %s",
             forced, why, alt);
    return fn(comm, a);
}

/* Fall back (arena unavailable): run the default algorithm, and say so. */
scomm_status_t scomm_direct_fallback(scomm_comm_t *comm,
                                     const scomm_coll_args_t *a,
                                     const char *why)
{
    switch (a->op) {
    case SCOMM_COLL_ALLGATHER:
        return scomm_direct_fallback_to(comm, a, why, "ring",
                                        scomm_allgather_ring);
    case SCOMM_COLL_REDUCESCATTER:
        return scomm_direct_fallback_to(comm, a, why, "ring",
                                        scomm_reducescatter_ring);
    case SCOMM_COLL_BROADCAST:
        return scomm_direct_fallback_to(comm, a, why, "binomial",
                                        scomm_bcast_binomial);
    case SCOMM_COLL_ALLTOALL:
        return scomm_direct_fallback_to(comm, a, why, "pairwise",
                                        scomm_alltoall_pairwise);
    default:
        return scomm_direct_fallback_to(comm, a, why, "ring",
                                        scomm_allreduce_ring);
    }
}

/*
 * Start a call: the state (or fall back), my descriptor. send/sspan: the
 * data the others read from this rank (NULL: none), recv/rspan: the
 * result the others read from this rank's recvbuf (all_reduce only).
 * Returns SCOMM_OK, SCOMM_ERR_UNSUPPORTED (run the fallback), or an error.
 */
scomm_status_t scomm_direct_begin(direct_call_t *c, scomm_comm_t *comm,
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

void scomm_direct_put_desc(direct_call_t *c)
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
scomm_status_t scomm_direct_read_descs(direct_call_t *c, size_t sspan,
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
            return scomm_direct_fault(comm);
        }
        if ((sspan > 0) && (t->send_set >= 0)) {
            c->psend[q] = direct_peer_ptr(c, q, t->send_set, t->send_off,
                                          sspan);
            if (c->psend[q] == NULL) {
                return scomm_direct_fault(comm);
            }
        } else if ((sspan > 0) && (t->send_set == DIRECT_AT_CMA)) {
            c->csend[q] = t->send_off;
        }
        if ((rspan > 0) && (t->recv_set >= 0)) {
            c->precv[q] = direct_peer_ptr(c, q, t->recv_set, t->recv_off,
                                          rspan);
            if (c->precv[q] == NULL) {
                return scomm_direct_fault(comm);
            }
        } else if ((rspan > 0) && (t->recv_set == DIRECT_AT_CMA)) {
            c->crecv[q] = t->recv_off;
        }
    }
    return SCOMM_OK;
}

/* len bytes at addr in rank q's memory into dst, by process_vm_readv. */
scomm_status_t scomm_direct_cma_read(direct_call_t *c, int q, void *dst,
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
        return scomm_direct_fault(comm);
    }
    return SCOMM_OK;
}
