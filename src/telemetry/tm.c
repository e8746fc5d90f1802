/*
 * tm.c - telemetry state: the clock, each communicator's series (count,
 * bytes, latency histogram per operation and algorithm, errors by status),
 * the counters other modules add to, the step markers, and the registry
 * the exposition walks.
 *
 *   scomm_init ---------> scomm_tm_world_up()     env + clock, once;
 *   (world_up hook)                                HTTP server if asked
 *   first op on comm ---> scomm_tm_comm_create()  calloc, register
 *   every op -----------> scomm_tm_op_end_()      counters, histogram,
 *                                                  trace record if on
 *   scomm_comm_destroy -> scomm_tm_comm_release() trace flush, unregister,
 *   (comm_gone hook)                               free; server stops with
 *                                                  the last world
 *
 * Invariants: see tm.h (1-4). In addition:
 *  5. The environment (SCOMM_METRICS, SCOMM_METRICS_PORT/_ADDR,
 *     SCOMM_TRACE) is read once per process, at the first scomm_init;
 *     scomm_control_set() changes metrics and trace afterwards.
 *  6. The clock is calibrated once: ns per TSC tick from a ~2 ms interval
 *     of CLOCK_MONOTONIC, bracketing each TSC read between two clock
 *     reads. Histogram and sums use it; the error is below 1e-4.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/dtype.h"
#include "../core/module.h"
#include "control.h"
#include "tm.h"

_Static_assert(SCOMM_COLL_OP_COUNT == SCOMM_TM_OP_BARRIER,
               "telemetry op numbers follow scomm_coll_op_t");

_Atomic unsigned scomm_tm_flags;
_Atomic uint32_t scomm_tm_sample = SCOMM_TM_SAMPLE_DEFAULT;
const char scomm_tm_algo_none[]  = "none";
const char scomm_tm_algo_local[] = "local";
uint64_t scomm_tm_mult = 1ull << 32;

static uint64_t scomm_tm_tsc0;
static uint64_t scomm_tm_mono0;

/* Knobs (registry rows, core/config.h), read once per process. */
static const scomm_param_t scomm_tm_params[] = {
    {.name = "SCOMM_METRICS", .defval = "1", .type = SCOMM_PARAM_BOOL,
     .help = "count operations (off: the hooks cost one load and a "
             "branch); scomm_control_set metrics changes it"},
    {.name = "SCOMM_METRICS_PORT", .defval = "", .type = SCOMM_PARAM_INT,
     .min = 0, .max = 65535,
     .help = "serve http://ADDR:(PORT + local rank)/metrics; 0: a free "
             "port per rank; unset: no server"},
    {.name = "SCOMM_METRICS_ADDR", .defval = "127.0.0.1",
     .type = SCOMM_PARAM_STRING, .max = 63,
     .help = "numeric IPv4 or IPv6 address the metrics server binds"},
    {.name = "SCOMM_TRACE", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = 400,
     .help = "trace file per rank (%r: rank, %p: pid; else .rank<N>.json "
             "is added); 1: scomm_trace.json; 0 or unset: no trace"},
};

static pthread_once_t scomm_tm_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t scomm_tm_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_list_t scomm_tm_comms = {&scomm_tm_comms, &scomm_tm_comms};
static int scomm_tm_worlds;          /* worlds up; registry lock */
static _Atomic int scomm_tm_prank = -1;
static int scomm_tm_http_local_rank; /* first world's local rank */

static struct {
    _Atomic uint64_t ctr[SCOMM_TM_COUNTER_COUNT];
    _Atomic uint64_t kv_bucket[SCOMM_TM_NBUCKETS];
    _Atomic uint64_t kv_sum_ns;
} scomm_tm_global;

static const char *const scomm_tm_extra_ops[] = {
    [SCOMM_TM_OP_BARRIER - SCOMM_TM_OP_BARRIER] = "barrier",
    [SCOMM_TM_OP_SEND - SCOMM_TM_OP_BARRIER]    = "send",
    [SCOMM_TM_OP_RECV - SCOMM_TM_OP_BARRIER]    = "recv",
    [SCOMM_TM_OP_ISEND - SCOMM_TM_OP_BARRIER]   = "isend",
    [SCOMM_TM_OP_IRECV - SCOMM_TM_OP_BARRIER]   = "irecv",
};

const char *scomm_tm_op_name(int op)
{
    if ((op >= 0) && (op < SCOMM_TM_OP_BARRIER)) {
        return scomm_coll_op_name((scomm_coll_op_t)op);
    }
    if ((op >= SCOMM_TM_OP_BARRIER) && (op < SCOMM_TM_NOPS)) {
        return scomm_tm_extra_ops[op - SCOMM_TM_OP_BARRIER];
    }
    return "unknown";
}

double scomm_tm_bus_factor(int op, int size)
{
    double n = (double)size;

    if (size <= 1) {
        return (op >= SCOMM_TM_OP_BARRIER) ? 1.0 : 0.0;
    }
    switch (op) {
    case SCOMM_COLL_ALLREDUCE:
        return 2.0 * (n - 1.0) / n;
    case SCOMM_COLL_ALLGATHER:
    case SCOMM_COLL_REDUCESCATTER:
    case SCOMM_COLL_ALLTOALL:
    case SCOMM_COLL_ALLTOALLV:
    case SCOMM_COLL_GATHER:
    case SCOMM_COLL_SCATTER:
        return (n - 1.0) / n;
    default:
        return 1.0;
    }
}

/* ---- clock -------------------------------------------------------------- */

static void scomm_tm_calibrate(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint64_t a0, b0, a1, b1, t0, t1, m0, m1;
    struct timespec ts = {0, 2000000};
    double ns_per_tick;

    a0 = scomm_now_ns();
    t0 = scomm_tm_ticks();
    b0 = scomm_now_ns();
    nanosleep(&ts, NULL);
    a1 = scomm_now_ns();
    t1 = scomm_tm_ticks();
    b1 = scomm_now_ns();
    m0 = a0 + (b0 - a0) / 2;
    m1 = a1 + (b1 - a1) / 2;
    if ((t1 > t0) && (m1 > m0)) {
        ns_per_tick   = (double)(m1 - m0) / (double)(t1 - t0);
        scomm_tm_mult = (uint64_t)llround(ns_per_tick * 4294967296.0);
    }
    scomm_tm_tsc0  = t1;
    scomm_tm_mono0 = m1;
#else
    scomm_tm_tsc0  = scomm_now_ns();
    scomm_tm_mono0 = scomm_tm_tsc0;
#endif
}

uint64_t scomm_tm_ticks_to_mono(uint64_t ticks)
{
    if (ticks >= scomm_tm_tsc0) {
        return scomm_tm_mono0 + scomm_tm_ticks_to_ns(ticks - scomm_tm_tsc0);
    }
    return scomm_tm_mono0 - scomm_tm_ticks_to_ns(scomm_tm_tsc0 - ticks);
}

/* ---- environment, once -------------------------------------------------- */

static void scomm_tm_env_once(void)
{
    scomm_pval_t v;

    scomm_tm_calibrate();
    scomm_param_get_or_warn("SCOMM_METRICS", &v);
    if (v.i != 0) {
        atomic_fetch_or(&scomm_tm_flags, SCOMM_TM_F_METRICS);
    }
    scomm_trace_init_env(atomic_load(&scomm_tm_prank));
    scomm_control_init_env();
}

scomm_status_t scomm_tm_world_up(scomm_world_t *w)
{
    int first;

    pthread_mutex_lock(&scomm_tm_lock);
    first = (scomm_tm_worlds++ == 0);
    if (atomic_load(&scomm_tm_prank) < 0) {
        atomic_store(&scomm_tm_prank, w->rank);
        scomm_tm_http_local_rank = w->local_rank;
    }
    pthread_mutex_unlock(&scomm_tm_lock);
    pthread_once(&scomm_tm_once, scomm_tm_env_once);
    return first ? scomm_tm_http_start(scomm_tm_http_local_rank) : SCOMM_OK;
}

int scomm_tm_process_rank(void)
{
    return atomic_load(&scomm_tm_prank);
}

/* ---- registry ----------------------------------------------------------- */

void scomm_tm_registry_lock(void)
{
    pthread_mutex_lock(&scomm_tm_lock);
}

void scomm_tm_registry_unlock(void)
{
    pthread_mutex_unlock(&scomm_tm_lock);
}

scomm_list_t *scomm_tm_registry(void)
{
    return &scomm_tm_comms;
}

/* World lock held. */
static scomm_tm_comm_t *scomm_tm_comm_create(scomm_comm_t *comm)
{
    scomm_world_t *w = comm->world;
    scomm_tm_comm_t *tm = calloc(1, sizeof(*tm));
    const char *tl = NULL, *name;
    int q;

    if (tm == NULL) {
        return NULL;
    }
    tm->world = w;
    tm->wrank = w->rank;
    tm->rank  = comm->rank;
    tm->size  = comm->size;
    tm->ctx   = comm->ctx;
    for (q = 0; q < comm->size; q++) {
        const scomm_peer_t *p = &w->peers[comm->ranks[q]];

        if (q < SCOMM_TM_MAX_PEERS) {
            tm->peers[q] = comm->ranks[q];
        }
        if (p->tl == NULL) {
            continue;
        }
        name = p->tl->name;
        tl   = ((tl == NULL) || (strcmp(tl, name) == 0)) ? name : "mixed";
    }
    tm->npeers = SCOMM_MIN(comm->size, SCOMM_TM_MAX_PEERS);
    for (q = 0; q < SCOMM_TM_NOPS; q++) {
        tm->ops[q].left = 1;
    }
    snprintf(tm->transport, sizeof(tm->transport), "%s",
             (tl == NULL) ? "self" : tl);
    pthread_mutex_lock(&scomm_tm_lock);
    scomm_list_push_back(&scomm_tm_comms, &tm->list);
    pthread_mutex_unlock(&scomm_tm_lock);
    /* Release: scomm_tm_add() may read comm->tm from another thread. */
    __atomic_store_n(&comm->tm, tm, __ATOMIC_RELEASE);
    return tm;
}

void scomm_tm_comm_release(scomm_comm_t *comm, int world_gone)
{
    scomm_tm_comm_t *tm = comm->tm;
    int stop = 0;

    if (tm != NULL) {
        /* Trace records point at tm: write them out before it goes. */
        scomm_trace_flush();
        pthread_mutex_lock(&scomm_tm_lock);
        scomm_list_del(&tm->list);
        pthread_mutex_unlock(&scomm_tm_lock);
        comm->tm = NULL;
        free(tm);
    }
    if (world_gone) {
        pthread_mutex_lock(&scomm_tm_lock);
        stop = (--scomm_tm_worlds == 0);
        pthread_mutex_unlock(&scomm_tm_lock);
    }
    if (stop) {
        scomm_trace_flush();
        scomm_tm_http_stop();
    }
}

/* ---- hooks -------------------------------------------------------------- */

static scomm_tm_series_t *scomm_tm_series_find(scomm_tm_comm_t *tm, int op,
                                               const char *algo)
{
    scomm_tm_series_t *s = tm->ser[op];
    const char *cur;
    int i;

    for (i = 0; i < SCOMM_TM_ALGO_SLOTS - 1; i++) {
        cur = atomic_load_explicit(&s[i].algo, memory_order_relaxed);
        if (cur == algo) {
            return &s[i];
        }
        if (cur == NULL) {
            atomic_store_explicit(&s[i].algo, algo, memory_order_release);
            return &s[i];
        }
        if (strcmp(cur, algo) == 0) {
            return &s[i];
        }
    }
    cur = atomic_load_explicit(&s[i].algo, memory_order_relaxed);
    if (cur == NULL) {
        atomic_store_explicit(&s[i].algo, "other", memory_order_release);
    }
    return &s[i];
}

void scomm_tm_op_end_(scomm_comm_t *comm, int op, const char *algo,
                      uint64_t bytes, int peer, scomm_status_t status,
                      uint64_t t0)
{
    uint64_t t1 = scomm_tm_ticks(), ns;
    unsigned flags = atomic_load_explicit(&scomm_tm_flags,
                                          memory_order_relaxed);
    scomm_tm_comm_t *tm = comm->tm;
    scomm_tm_opstate_t *st;
    scomm_tm_series_t *s;
    int e;

    if (SCOMM_UNLIKELY(tm == NULL)) {
        tm = scomm_tm_comm_create(comm);
        if (tm == NULL) {
            return;
        }
    }
    st = &tm->ops[op];
    if (SCOMM_LIKELY(flags & SCOMM_TM_F_METRICS)) {
        s = &tm->ser[op][0];
        if (SCOMM_UNLIKELY(atomic_load_explicit(&s->algo,
                                                memory_order_relaxed) !=
                           algo)) {
            s = scomm_tm_series_find(tm, op, algo);
        }
        SCOMM_TM_ADD(s->count, 1);
        SCOMM_TM_ADD(s->bytes, bytes);
        if (t0 == 1) {
            /* Counted, not timed (tm.h, cost model). */
            SCOMM_TM_ADD(s->time_ns, st->est_ns);
        } else {
            ns         = scomm_tm_ticks_to_ns(t1 - t0);
            st->est_ns = ns;
            st->every  = (ns >= SCOMM_TM_EVERY_NS);
            SCOMM_TM_ADD(s->sum_ns, ns);
            SCOMM_TM_ADD(s->bucket[scomm_tm_bucket(ns)], 1);
            SCOMM_TM_ADD(s->time_ns, ns);
        }
        if (SCOMM_UNLIKELY(status < 0)) {
            e = -(int)status;
            e = (e < SCOMM_TM_NSTATUS) ? e : 0;
            atomic_fetch_add_explicit(&tm->err[op][e], 1,
                                      memory_order_relaxed);
        }
    }
    if (SCOMM_UNLIKELY((flags & SCOMM_TM_F_TRACE) && (t0 != 1))) {
        scomm_trace_add(tm, op, algo, bytes,
                        ((peer >= 0) && (peer < comm->size))
                            ? comm->ranks[peer] : -1,
                        status, t0, t1);
    }
}

/* ---- counters of other modules ------------------------------------------ */

void scomm_tm_add(scomm_comm_t *comm, int counter, uint64_t v)
{
    scomm_tm_comm_t *tm = NULL;
    _Atomic uint64_t *c;

    if ((counter < 0) || (counter >= SCOMM_TM_COUNTER_COUNT)) {
        return;
    }
    if (comm != NULL) {
        tm = __atomic_load_n(&comm->tm, __ATOMIC_ACQUIRE);
    }
    if (tm != NULL) {
        c = &tm->ctr[counter];
    } else {
        c = &scomm_tm_global.ctr[counter];
    }
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void scomm_tm_kv_latency(uint64_t ns)
{
    atomic_fetch_add_explicit(&scomm_tm_global.kv_bucket[scomm_tm_bucket(ns)],
                              1, memory_order_relaxed);
    atomic_fetch_add_explicit(&scomm_tm_global.kv_sum_ns, ns,
                              memory_order_relaxed);
}

uint64_t scomm_tm_global_ctr(int counter)
{
    return atomic_load_explicit(&scomm_tm_global.ctr[counter],
                                memory_order_relaxed);
}

void scomm_tm_global_kv_hist(uint64_t bucket[SCOMM_TM_NBUCKETS],
                             uint64_t *sum_ns)
{
    int i;

    for (i = 0; i < SCOMM_TM_NBUCKETS; i++) {
        bucket[i] = atomic_load_explicit(&scomm_tm_global.kv_bucket[i],
                                         memory_order_relaxed);
    }
    *sum_ns = atomic_load_explicit(&scomm_tm_global.kv_sum_ns,
                                   memory_order_relaxed);
}

/* ---- step markers ------------------------------------------------------- */

/* Operation time so far of every communicator of tm's world. */
static uint64_t scomm_tm_world_busy(const scomm_tm_comm_t *tm)
{
    scomm_tm_comm_t *o;
    scomm_list_t *e;
    uint64_t sum = 0;
    int op, i;

    pthread_mutex_lock(&scomm_tm_lock);
    for (e = scomm_tm_comms.next; e != &scomm_tm_comms; e = e->next) {
        o = scomm_container_of(e, scomm_tm_comm_t, list);
        if (o->world != tm->world) {
            continue;
        }
        for (op = 0; op < SCOMM_TM_NOPS; op++) {
            for (i = 0; i < SCOMM_TM_ALGO_SLOTS; i++) {
                sum += atomic_load_explicit(&o->ser[op][i].time_ns,
                                            memory_order_relaxed);
            }
        }
    }
    pthread_mutex_unlock(&scomm_tm_lock);
    return sum;
}

static scomm_status_t scomm_tm_step_comm(scomm_comm_t *comm, const char *fn,
                                         scomm_tm_comm_t **tm_p)
{
    scomm_status_t status = scomm_comm_check(comm, fn);

    if (status != SCOMM_OK) {
        return status;
    }
    pthread_mutex_lock(&comm->world->lock);
    if (comm->tm == NULL) {
        scomm_tm_comm_create(comm);
    }
    *tm_p = comm->tm;
    pthread_mutex_unlock(&comm->world->lock);
    if (*tm_p == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory", fn);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_step_begin(scomm_comm_t *comm)
{
    scomm_tm_comm_t *tm;
    scomm_status_t status = scomm_tm_step_comm(comm, "scomm_step_begin",
                                               &tm);

    if (status != SCOMM_OK) {
        return status;
    }
    tm->step_busy0 = scomm_tm_world_busy(tm);
    tm->step_t0    = scomm_tm_ticks();
    return SCOMM_OK;
}

scomm_status_t scomm_step_end(scomm_comm_t *comm, double *share_p)
{
    scomm_tm_comm_t *tm;
    scomm_status_t status = scomm_tm_step_comm(comm, "scomm_step_end", &tm);
    uint64_t t1, ns, busy;
    double share;

    if (status != SCOMM_OK) {
        return status;
    }
    t1 = scomm_tm_ticks();
    if (tm->step_t0 == 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE,
                               "scomm_step_end: no scomm_step_begin before "
                               "it on this communicator");
    }
    busy  = scomm_tm_world_busy(tm) - tm->step_busy0;
    ns    = scomm_tm_ticks_to_ns(t1 - tm->step_t0);
    busy  = SCOMM_MIN(busy, ns);
    share = (ns > 0) ? (double)busy / (double)ns : 0.0;
    atomic_fetch_add_explicit(&tm->steps, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tm->step_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&tm->step_comm_ns, busy, memory_order_relaxed);
    {
        uint64_t bits;

        memcpy(&bits, &share, sizeof(bits));
        atomic_store_explicit(&tm->last_share_bits, bits,
                              memory_order_relaxed);
    }
    if (atomic_load_explicit(&scomm_tm_flags, memory_order_relaxed) &
        SCOMM_TM_F_TRACE) {
        scomm_trace_add(tm, -1, "step", busy, -1, SCOMM_OK, tm->step_t0,
                        t1);
    }
    tm->step_t0 = 0;
    if (share_p != NULL) {
        *share_p = share;
    }
    return SCOMM_OK;
}

/* ---- the telemetry module (core/module.h) -------------------------------- */

static scomm_status_t scomm_tm_module_world_up(scomm_comm_t *comm)
{
    scomm_status_t status = scomm_tm_world_up(comm->world);

    if (status != SCOMM_OK) {
        snprintf(comm->last_error, sizeof(comm->last_error), "%s",
                 scomm_last_error());
    }
    return status;
}

const scomm_module_t scomm_module_telemetry = {
    .name      = "telemetry",
    .params    = scomm_tm_params,
    .nparams   = SCOMM_ARRAY_SIZE(scomm_tm_params),
    .world_up  = scomm_tm_module_world_up,
    .comm_gone = scomm_tm_comm_release,
};
