/*
 * tm.h - telemetry inside the library: the per-operation hooks that the
 * collective and point-to-point entry points call, counters other modules
 * add to (KV transfer, fusion, overlap, retries), step markers, and the
 * entry points of the exposition (expo.c), trace (trace.c) and control
 * (control.c) files.
 *
 * Cost model. An 8-byte all_reduce over shared memory takes ~0.3 us, so
 * the hook must cost a few ns. A TSC read costs ~12 ns on this class of
 * VM, two per timed operation ~25 ns: too much to time every short
 * operation. So:
 *   - every operation is counted (count, bytes) exactly;
 *   - an operation is timed (latency histogram, sum) when its kind's last
 *     timed instance took >= SCOMM_TM_EVERY_NS (the clock is then < 1 %
 *     of it), and otherwise one in scomm_tm_sample (default 64, control
 *     key "latency_sample"; 1 times all);
 *   - an untimed operation adds its kind's last timed duration to its
 *     series' time_ns (scomm_op_seconds_total, busbw, and the
 *     communication share of step time).
 * Untimed path: begin = a flag load and a countdown; end = inline, three
 * relaxed load+store pairs. Timed path: two TSC reads, a multiply to ns, a
 * count-leading-zeros for the bucket. No allocation (except once per
 * communicator, at its first operation), no formatting, no lock, no
 * syscall. Tracing (when on) times every operation.
 *
 * Design notes (invariants):
 *  1. The per-operation series of a communicator (scomm_tm_comm_t::ser)
 *     are written only by the thread that holds the world lock, so a
 *     relaxed load + store is an exact increment. They are _Atomic so that
 *     the scraper's concurrent relaxed loads are not data races (TSan);
 *     on x86-64 both compile to plain moves.
 *  2. Counters that modules add to from any thread (scomm_tm_add) use
 *     atomic fetch-add; they are never on the 8-byte all_reduce path.
 *  3. Every scomm_tm_comm_t is in the registry (tm.c) from its creation,
 *     under the world lock, until scomm_tm_comm_release() at destroy. The
 *     registry mutex is taken after the world lock, never before; the
 *     scraper takes only the registry mutex, so a scrape never waits for
 *     a collective.
 *  4. scomm_tm_flags is 0 until the first scomm_init has read the
 *     environment and calibrated the clock: before that, hooks do nothing.
 *  5. Hooks run with the world lock held (begin right after taking it,
 *     end right before releasing it), so the per-op sampling state
 *     (scomm_tm_opstate_t) is plain data owned by the lock holder.
 */
#ifndef SCOMM_TM_H
#define SCOMM_TM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "../core/dtype.h"
#include "../core/scomm_int.h"

/* Operations with their own series. 0..8 are scomm_coll_op_t. */
#define SCOMM_TM_OP_BARRIER  9
#define SCOMM_TM_OP_SEND     10
#define SCOMM_TM_OP_RECV     11
#define SCOMM_TM_OP_ISEND    12
#define SCOMM_TM_OP_IRECV    13
#define SCOMM_TM_NOPS        14

/* Algorithms seen per operation; a ninth distinct one counts as "other". */
#define SCOMM_TM_ALGO_SLOTS  8
/*
 * Latency buckets: bucket i (0..SCOMM_TM_NBUCKETS-2) holds durations d
 * with d <= 2^(i + SCOMM_TM_BUCKET_MIN_LOG2) ns, i.e. 256 ns, 512 ns, ...
 * 2^34 ns = 17.2 s; the last bucket is +Inf.
 */
#define SCOMM_TM_BUCKET_MIN_LOG2 8
#define SCOMM_TM_NBUCKETS    28
/* Error statuses counted per operation: -status in 1..SCOMM_TM_NSTATUS-1. */
#define SCOMM_TM_NSTATUS     32

/* Flags in scomm_tm_flags. */
#define SCOMM_TM_F_METRICS   1u
#define SCOMM_TM_F_TRACE     2u

/* An operation kind whose last timed instance took this long is timed
 * every time. */
#define SCOMM_TM_EVERY_NS    4000u
#define SCOMM_TM_SAMPLE_DEFAULT 64u

/* Counters other modules add to (scomm_tm_add). */
typedef enum {
    SCOMM_TM_RETRIES = 0,          /* operations retried */
    SCOMM_TM_RESENT_CHUNKS,        /* chunks sent again */
    SCOMM_TM_FUSION_HITS,          /* tensors that went into a fused op */
    SCOMM_TM_FUSED_OPS,            /* fused operations issued */
    SCOMM_TM_OVERLAP_COMM_NS,      /* ns of non-blocking communication */
    SCOMM_TM_OVERLAP_HIDDEN_NS,    /* ... of which overlapped compute */
    SCOMM_TM_KV_BYTES,             /* KV payload bytes moved */
    SCOMM_TM_KV_CHUNKS,            /* KV chunks moved */
    SCOMM_TM_KV_RESENT,            /* KV chunks sent again */
    SCOMM_TM_KV_CHECKSUM_FAILURES, /* KV chunks whose checksum failed */
    SCOMM_TM_KV_TRANSFERS,         /* KV transfers completed */
    SCOMM_TM_KV_ERRORS,            /* KV transfers that failed */
    SCOMM_TM_KV_RECONNECTS,        /* KV streams re-established */
    SCOMM_TM_KV_IPC_BYTES,         /* KV bytes written over CUDA IPC */
    SCOMM_TM_COUNTER_COUNT
} scomm_tm_counter_t;

/* One (operation, algorithm) series of a communicator. */
typedef struct scomm_tm_series {
    _Atomic(const char *) algo;    /* NULL: slot free */
    _Atomic uint64_t count;
    _Atomic uint64_t bytes;
    _Atomic uint64_t sum_ns;       /* timed operations only */
    _Atomic uint64_t time_ns;      /* all: timed + estimated */
    _Atomic uint64_t bucket[SCOMM_TM_NBUCKETS];
} scomm_tm_series_t;

#define SCOMM_TM_MAX_PEERS 64

/* Sampling state of one operation kind; world lock holder only. */
typedef struct scomm_tm_opstate {
    uint32_t left;   /* untimed operations before the next timed one */
    uint32_t every;  /* 1: time every operation */
    uint64_t est_ns; /* last timed duration */
} scomm_tm_opstate_t;

typedef struct scomm_tm_comm {
    scomm_list_t      list;        /* in the registry */
    const void       *world;       /* identity only, never dereferenced */
    int               wrank;       /* world rank of this process */
    int               rank;        /* rank in the communicator */
    int               size;
    uint32_t          ctx;
    char              transport[8]; /* "shm", "tcp", "mixed", "self" */
    int               npeers;       /* world ranks kept in peers[] */
    int               peers[SCOMM_TM_MAX_PEERS];
    scomm_tm_series_t ser[SCOMM_TM_NOPS][SCOMM_TM_ALGO_SLOTS];
    _Atomic uint64_t  err[SCOMM_TM_NOPS][SCOMM_TM_NSTATUS];
    scomm_tm_opstate_t ops[SCOMM_TM_NOPS];
    _Atomic uint64_t  ctr[SCOMM_TM_COUNTER_COUNT];
    /* Step markers (scomm_step_begin/end), caller's thread. */
    uint64_t          step_t0;     /* ticks; 0 outside a step */
    uint64_t          step_busy0;
    _Atomic uint64_t  steps;
    _Atomic uint64_t  step_ns;
    _Atomic uint64_t  step_comm_ns;
    _Atomic uint64_t  last_share_bits; /* double */
} scomm_tm_comm_t;

extern _Atomic unsigned scomm_tm_flags;
extern _Atomic uint32_t scomm_tm_sample;

#define SCOMM_TM_ADD(_x, _v)                                                \
    atomic_store_explicit(&(_x),                                            \
                          atomic_load_explicit(&(_x),                       \
                                               memory_order_relaxed) +      \
                              (_v),                                         \
                          memory_order_relaxed)

/* ---- clock (tm.c) ---- */
static inline uint64_t scomm_tm_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return scomm_now_ns();
#endif
}

/* ns per tick << 32 (calibrated once against CLOCK_MONOTONIC). */
extern uint64_t scomm_tm_mult;

static inline uint64_t scomm_tm_ticks_to_ns(uint64_t dt)
{
    return (uint64_t)(((unsigned __int128)dt * scomm_tm_mult) >> 32);
}

/* CLOCK_MONOTONIC ns of a tick value (trace timestamps). */
uint64_t scomm_tm_ticks_to_mono(uint64_t ticks);

/* ---- hooks ---- */

/*
 * Start of an operation of kind op on comm, world lock held. Returns 0
 * when telemetry is off (end then does nothing), 1 to count without
 * timing, else the TSC.
 */
static inline uint64_t scomm_tm_begin(scomm_comm_t *comm, int op)
{
    unsigned f = atomic_load_explicit(&scomm_tm_flags, memory_order_relaxed);
    scomm_tm_comm_t *tm = comm->tm;
    scomm_tm_opstate_t *st;

    if (SCOMM_UNLIKELY(f == 0)) {
        return 0;
    }
    if (SCOMM_LIKELY((tm != NULL) && (f == SCOMM_TM_F_METRICS))) {
        st = &tm->ops[op];
        if (SCOMM_LIKELY((st->every == 0) && (--st->left != 0))) {
            return 1;
        }
        st->left = atomic_load_explicit(&scomm_tm_sample,
                                        memory_order_relaxed);
    }
    return scomm_tm_ticks();
}

void scomm_tm_op_end_(scomm_comm_t *comm, int op, const char *algo,
                      uint64_t bytes, int peer, scomm_status_t status,
                      uint64_t t0);

/* Algorithm labels of collectives that ran none (one copy per process:
 * series are matched by pointer). */
extern const char scomm_tm_algo_none[];
extern const char scomm_tm_algo_local[];

/* End of a point-to-point call or barrier, world lock held; peer is a
 * rank of comm or -1. */
static inline void scomm_tm_op_end(scomm_comm_t *comm, int op,
                                   const char *algo, uint64_t bytes,
                                   int peer, scomm_status_t status,
                                   uint64_t t0)
{
    scomm_tm_comm_t *tm = comm->tm;
    scomm_tm_series_t *s;

    if (t0 == 0) {
        return;
    }
    if (SCOMM_LIKELY((t0 == 1) && (status == SCOMM_OK))) {
        /* Counted, not timed: tm exists (begin saw it). */
        s = &tm->ser[op][0];
        if (SCOMM_LIKELY(atomic_load_explicit(&s->algo,
                                              memory_order_relaxed) ==
                         algo)) {
            SCOMM_TM_ADD(s->count, 1);
            SCOMM_TM_ADD(s->bytes, bytes);
            SCOMM_TM_ADD(s->time_ns, tm->ops[op].est_ns);
            return;
        }
    }
    scomm_tm_op_end_(comm, op, algo, bytes, peer, status, t0);
}

/*
 * Add v to a counter of comm, or of the process when comm is NULL (KV
 * endpoints are no communicators) or has run no operation yet (its
 * series do not exist before). Any thread, any lock held or none.
 */
void scomm_tm_add(scomm_comm_t *comm, int counter, uint64_t v);

/* One KV transfer's latency, into the process-wide histogram. */
void scomm_tm_kv_latency(uint64_t ns);

/* ---- lifecycle (the telemetry module's hooks, core/module.h) ---- */

/* A world came up (end of scomm_init): read the environment and calibrate
 * once per process, start the HTTP server if SCOMM_METRICS_PORT is set.
 * Fails (SCOMM_ERR_UNSUPPORTED, the thread error says why) only when the
 * port asks for a server this build has no library for; the world counts
 * as up either way, so the caller releases it as usual. */
scomm_status_t scomm_tm_world_up(scomm_world_t *w);
/* comm is being destroyed; world_gone when it was its world's last one
 * (the server stops when no world is left). */
void scomm_tm_comm_release(scomm_comm_t *comm, int world_gone);

/* ---- internal, between the telemetry files ---- */

/* Registry lock and list (tm.c). */
void scomm_tm_registry_lock(void);
void scomm_tm_registry_unlock(void);
scomm_list_t *scomm_tm_registry(void);
/* Process-wide counters and the KV latency histogram. */
uint64_t scomm_tm_global_ctr(int counter);
void scomm_tm_global_kv_hist(uint64_t bucket[SCOMM_TM_NBUCKETS],
                             uint64_t *sum_ns);
/* World rank for process-wide series (first world's rank, or -1). */
int scomm_tm_process_rank(void);
/* Name of a telemetry op ("all_reduce", "send", ...). */
const char *scomm_tm_op_name(int op);
/* Bus-bandwidth factor of op on size ranks (nccl-tests' definition). */
double scomm_tm_bus_factor(int op, int size);
/* Bucket index of a duration. */
static inline int scomm_tm_bucket(uint64_t ns)
{
    uint64_t v = (ns > 0) ? ns - 1 : 0;
    int b      = 64 - __builtin_clzll(v | 1) - SCOMM_TM_BUCKET_MIN_LOG2;

    b = (b < 0) ? 0 : b;
    return (b > SCOMM_TM_NBUCKETS - 1) ? SCOMM_TM_NBUCKETS - 1 : b;
}

/* Trace (trace.c). */
void scomm_trace_add(const scomm_tm_comm_t *tm, int op, const char *algo,
                     uint64_t bytes, int peer, scomm_status_t status,
                     uint64_t t0, uint64_t t1);
/* Write buffered records to the file (kept valid JSON after each flush). */
void scomm_trace_flush(void);
/* Start/stop recording; path NULL keeps the current one. */
scomm_status_t scomm_trace_enable(int on, const char *path);
int scomm_trace_is_on(void);
const char *scomm_trace_path(void);
/* Called once at environment read. */
void scomm_trace_init_env(int rank);

/* HTTP server (expo.c): SCOMM_OK when started, not asked for, or failed
 * with a warning (port in use); SCOMM_ERR_UNSUPPORTED without
 * libmicrohttpd. */
scomm_status_t scomm_tm_http_start(int local_rank);
void scomm_tm_http_stop(void);

#endif /* SCOMM_TM_H */
