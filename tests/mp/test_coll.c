/*
 * test_coll.c - every collective against an independent reference, over
 * real processes (SCOMM_TRANSPORTS, set by ctest, picks shm or tcp).
 *
 * Reference: every rank can generate every other rank's input from (rank,
 * index, seed), so each rank computes the expected result locally, with
 * its own arithmetic (doubles, 64-bit integers, its own float16/bfloat16/
 * fp8 codecs), without communication and without the library's kernels.
 * Float inputs are chosen so that every partial result is exact (small
 * integers, powers of two), which makes the expected bits independent of
 * the order of combination: results are compared bit for bit. Random
 * floats are checked separately against a tolerance, with bit equality
 * across ranks (hashes passed around the ring).
 *
 * Coverage: all_reduce and reduce_scatter over every dtype x op x
 * algorithm x count {0, 1, size-1, 7, 13, 1021, 65539}, in place and not;
 * reduce, broadcast, all_gather, all_to_all(v), gather, scatter over roots,
 * counts, algorithms and in-place forms; 1 Mi elements for a few
 * combinations and 64 Mi + 7 for all_reduce float32 sum; the selection
 * record, forced algorithms and their fallbacks, SCOMM_COLL_*_ALGO and
 * SCOMM_ALGO, argument errors (buffers untouched), SCOMM_CHECK mismatches,
 * and sub-communicators. The shared-memory "direct" algorithms run in every
 * algorithm loop (forced over tcp too); scomm_mem_alloc memory is checked
 * for arguments, collective frees, and every direct collective reading it
 * in place (both buffers, one, in place, ranks that differ; counts up to
 * 1 Mi + 5 and 64 Mi + 7), and on a copy of the communicator with
 * process_vm_readv off. `test_coll --direct-fault absent|stop|kill [NP]`
 * runs the direct algorithm's fault cases, each in a world of its own.
 *
 * Scope (TEST_COLL_SCOPE, tests/CMakeLists.txt says which run has which):
 *   full    (default) all of the above;
 *   full16  all, the large all_reduces at 16 Mi + 7 (64 MiB): past every
 *           size band and chunk boundary of the algorithms (the largest
 *           is 8 MiB, DIRECT_NT_BYTES) as 64 Mi + 7 is, in a quarter of
 *           the time and memory (TSan builds always use it);
 *   nohuge  all but the 64 Mi + 7 all_reduces (1 Mi sizes still run);
 *   wire    nohuge, and the exact reductions on one dtype per element
 *           width (fp8 e4m3, bfloat16, float32, int64) with every op,
 *           algorithm, count and in-place form; scomm_mem_alloc's
 *           arguments, sizes and collective frees, not its sweep of the
 *           direct algorithms (shared memory whatever the transport). The
 *           reduction kernels are the same code on every transport; what
 *           a transport changes (framing, segmenting, element boundaries
 *           on the wire) depends on the element width, not the type. Each
 *           transport keeps one full run, and shm every rank count.
 */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scomm.h"
#include "st_dev.h"
#include "st_test.h"
#include "coll/coll.h"

#define NDT SCOMM_DTYPE_COUNT
#define NOP SCOMM_REDOP_COUNT

/* TEST_COLL_SCOPE (see the header): the 64 Mi + 7 runs (their size in
 * Mi), all dtypes. */
static int scope_huge = 1;
static int scope_huge_mi = 64;
static int scope_all_dtypes = 1;

static void scope_init(void)
{
    const char *v = getenv("TEST_COLL_SCOPE");

    if ((v == NULL) || (*v == '\0') || (strcmp(v, "full") == 0)) {
        return;
    }
    if (strcmp(v, "full16") == 0) {
        scope_huge_mi = 16;
    } else if (strcmp(v, "nohuge") == 0) {
        scope_huge = 0;
    } else if (strcmp(v, "wire") == 0) {
        scope_huge       = 0;
        scope_all_dtypes = 0;
    } else {
        fprintf(stderr, "test_coll: TEST_COLL_SCOPE='%s': expected full, "
                "full16, nohuge or wire\n", v);
        exit(2);
    }
}

/* 1 if the exact reductions run dtype dt in this scope. */
static int dtype_in_scope(int dt)
{
    return scope_all_dtypes || (dt == SCOMM_FP8_E4M3) ||
           (dt == SCOMM_BFLOAT16) || (dt == SCOMM_FLOAT32) ||
           (dt == SCOMM_INT64);
}

typedef struct {
    scomm_comm_t *comm;
    int           rank;
    int           size;
} tctx_t;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void section_done(const tctx_t *t, const char *what, double t0)
{
    if (t->rank == 0) {
        printf("  %-34s %7.2f s\n", what, now_s() - t0);
        fflush(stdout);
    }
}

/* ---- deterministic inputs -------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t seed, int rank, size_t idx)
{
    return mix64(seed ^ mix64(((uint64_t)rank << 40) ^ (uint64_t)idx));
}

/* ---- an independent float16 / bfloat16 / fp8 codec --------------------- */

typedef struct {
    int ebits, mbits, bias, fn; /* fn: e4m3 "fn" (no infinities) */
} fmt_t;

static const fmt_t FMT_F16 = {5, 10, 15, 0};
static const fmt_t FMT_BF16 = {8, 7, 127, 0};
static const fmt_t FMT_E4M3 = {4, 3, 7, 1};
static const fmt_t FMT_E5M2 = {5, 2, 15, 0};

static int lp_isnan(uint32_t bits, fmt_t f)
{
    uint32_t emax = (1u << f.ebits) - 1;
    uint32_t e = (bits >> f.mbits) & emax, m = bits & ((1u << f.mbits) - 1);

    if (f.fn) {
        return (e == emax) && (m == (1u << f.mbits) - 1);
    }
    return (e == emax) && (m != 0);
}

static double lp_decode(uint32_t bits, fmt_t f)
{
    uint32_t emax = (1u << f.ebits) - 1;
    uint32_t s = (bits >> (f.ebits + f.mbits)) & 1;
    uint32_t e = (bits >> f.mbits) & emax, m = bits & ((1u << f.mbits) - 1);
    double v;

    if (lp_isnan(bits, f)) {
        return NAN;
    }
    if ((e == emax) && !f.fn) {
        v = INFINITY;
    } else if (e == 0) {
        v = ldexp((double)m, 1 - f.bias - f.mbits);
    } else {
        v = ldexp((double)(m + (1u << f.mbits)), (int)e - f.bias - f.mbits);
    }
    return s ? -v : v;
}

/* Round-to-nearest-even encoding of a finite value within range. */
static uint32_t lp_encode(double v, fmt_t f)
{
    uint32_t sign = signbit(v) ? (1u << (f.ebits + f.mbits)) : 0;
    double a = fabs(v), q, m;
    int e, E;

    if (isnan(v)) {
        /* Quiet NaN: all-ones exponent, top mantissa bit (e4m3fn: the one
         * NaN pattern per sign). */
        return sign | (((1u << f.ebits) - 1) << f.mbits) |
               (f.fn ? ((1u << f.mbits) - 1) : (1u << (f.mbits - 1)));
    }
    if (isinf(v) && !f.fn) {
        return sign | (((1u << f.ebits) - 1) << f.mbits);
    }
    if (a == 0.0) {
        return sign;
    }
    (void)frexp(a, &e);
    E = e - 1;
    if (E < 1 - f.bias) {
        q = ldexp(a, f.bias - 1 + f.mbits);
        m = rint(q);
        return sign | (uint32_t)m; /* a carry makes the smallest normal */
    }
    q = ldexp(a, f.mbits - E);
    m = rint(q);
    if (m >= ldexp(1.0, f.mbits + 1)) {
        m = ldexp(1.0, f.mbits);
        E++;
    }
    return sign | ((uint32_t)(E + f.bias) << f.mbits) |
           ((uint32_t)m - (1u << f.mbits));
}

/* ---- dtype model -------------------------------------------------------- */

enum { K_SINT, K_UINT, K_F32, K_F64, K_LP };

typedef struct {
    int    kind;
    int    bits;  /* integer width */
    fmt_t  fmt;   /* K_LP */
    int    range; /* |value| for exact sums of small integers */
} dt_t;

static dt_t dt_info(scomm_dtype_t d)
{
    dt_t i;

    memset(&i, 0, sizeof(i));
    switch (d) {
    case SCOMM_INT8: i.kind = K_SINT; i.bits = 8; break;
    case SCOMM_UINT8: i.kind = K_UINT; i.bits = 8; break;
    case SCOMM_INT32: i.kind = K_SINT; i.bits = 32; break;
    case SCOMM_UINT32: i.kind = K_UINT; i.bits = 32; break;
    case SCOMM_INT64: i.kind = K_SINT; i.bits = 64; break;
    case SCOMM_UINT64: i.kind = K_UINT; i.bits = 64; break;
    case SCOMM_FLOAT32: i.kind = K_F32; i.range = 1000; break;
    case SCOMM_FLOAT64: i.kind = K_F64; i.range = 1000; break;
    case SCOMM_FLOAT16: i.kind = K_LP; i.fmt = FMT_F16; i.range = 200; break;
    case SCOMM_BFLOAT16: i.kind = K_LP; i.fmt = FMT_BF16; i.range = 40; break;
    case SCOMM_FP8_E4M3: i.kind = K_LP; i.fmt = FMT_E4M3; i.range = 3; break;
    case SCOMM_FP8_E5M2: i.kind = K_LP; i.fmt = FMT_E5M2; i.range = 1; break;
    default: ST_ASSERT(0);
    }
    return i;
}

static uint64_t raw_get(const void *buf, size_t i, size_t es)
{
    uint64_t v = 0;

    memcpy(&v, (const char *)buf + i * es, es); /* little-endian host */
    return v;
}

static void raw_set(void *buf, size_t i, size_t es, uint64_t v)
{
    memcpy((char *)buf + i * es, &v, es);
}

static double f_decode(const dt_t *d, uint64_t raw)
{
    float f;
    double x;

    switch (d->kind) {
    case K_F32:
        memcpy(&f, &raw, 4);
        return f;
    case K_F64:
        memcpy(&x, &raw, 8);
        return x;
    default:
        return lp_decode((uint32_t)raw, d->fmt);
    }
}

static uint64_t f_encode(const dt_t *d, double v)
{
    uint64_t raw = 0;
    float f;

    switch (d->kind) {
    case K_F32:
        f = (float)v;
        memcpy(&raw, &f, 4);
        return raw;
    case K_F64:
        memcpy(&raw, &v, 8);
        return raw;
    default:
        return lp_encode(v, d->fmt);
    }
}

static int f_isnan_raw(const dt_t *d, uint64_t raw)
{
    if (d->kind == K_LP) {
        return lp_isnan((uint32_t)raw, d->fmt);
    }
    return isnan(f_decode(d, raw));
}

/* Input element idx of rank for (dtype, op), as raw bits. */
static uint64_t gen(scomm_dtype_t dtype, scomm_redop_t op, uint64_t seed,
                    int rank, size_t idx)
{
    static const double prod_vals[6] = {-2.0, -1.0, -0.5, 0.5, 1.0, 2.0};
    dt_t d = dt_info(dtype);
    uint64_t r = rnd(seed, rank, idx);
    uint64_t raw;
    double v;
    int k;

    if ((d.kind == K_SINT) || (d.kind == K_UINT)) {
        return (d.bits == 64) ? r : (r & ((1ull << d.bits) - 1));
    }
    switch (op) {
    case SCOMM_SUM:
    case SCOMM_AVG:
        v = (double)((int64_t)(r % (uint64_t)(2 * d.range + 1)) - d.range);
        if (d.kind != K_LP) {
            v /= 8.0;
        }
        return f_encode(&d, v);
    case SCOMM_PROD:
        if ((r % 13) == 0) {
            return f_encode(&d, 0.0);
        }
        return f_encode(&d, prod_vals[(r >> 8) % 6]);
    default:
        /* min/max: any non-NaN bit pattern, and signed zeros often. */
        if ((r % 7) == 0) {
            return f_encode(&d, ((r >> 7) & 1) ? -0.0 : 0.0);
        }
        for (k = 0;; k++) {
            size_t es = scomm_dtype_size(dtype);

            raw = mix64(r + (uint64_t)k);
            if (es < 8) {
                raw &= (1ull << (8 * es)) - 1;
            }
            if (!f_isnan_raw(&d, raw)) {
                return raw;
            }
        }
    }
}

static double fmax_ieee(double a, double b)
{
    if ((a == 0.0) && (b == 0.0)) {
        return (signbit(a) && signbit(b)) ? -0.0 : 0.0;
    }
    return (a > b) ? a : b;
}

static double fmin_ieee(double a, double b)
{
    if ((a == 0.0) && (b == 0.0)) {
        return (signbit(a) || signbit(b)) ? -0.0 : 0.0;
    }
    return (a < b) ? a : b;
}

/* Expected raw result at element idx of a reduction over p ranks. */
static uint64_t ref_elem(scomm_dtype_t dtype, scomm_redop_t op, uint64_t seed,
                         int p, size_t idx)
{
    dt_t d = dt_info(dtype);
    int q;

    if ((d.kind == K_SINT) || (d.kind == K_UINT)) {
        uint64_t mask = (d.bits == 64) ? ~0ull : ((1ull << d.bits) - 1);
        uint64_t acc = gen(dtype, op, seed, 0, idx);
        int64_t sacc;

        for (q = 1; q < p; q++) {
            uint64_t x = gen(dtype, op, seed, q, idx);
            int64_t sa, sx;

            switch (op) {
            case SCOMM_SUM:
            case SCOMM_AVG:
                acc = (acc + x) & mask;
                break;
            case SCOMM_PROD:
                acc = (acc * x) & mask;
                break;
            default:
                if (d.kind == K_UINT) {
                    acc = (op == SCOMM_MAX) ? ((x > acc) ? x : acc) :
                                              ((x < acc) ? x : acc);
                } else {
                    int sh = 64 - d.bits;

                    sa  = (int64_t)(acc << sh) >> sh;
                    sx  = (int64_t)(x << sh) >> sh;
                    acc = ((op == SCOMM_MAX) ? ((sx > sa) ? x : acc) :
                                               ((sx < sa) ? x : acc));
                }
                break;
            }
        }
        if (op != SCOMM_AVG) {
            return acc;
        }
        if (d.kind == K_UINT) {
            return (acc / (uint64_t)p) & mask;
        }
        sacc = (int64_t)(acc << (64 - d.bits)) >> (64 - d.bits);
        return (uint64_t)(sacc / p) & mask;
    } else {
        double acc = f_decode(&d, gen(dtype, op, seed, 0, idx));

        for (q = 1; q < p; q++) {
            double x = f_decode(&d, gen(dtype, op, seed, q, idx));

            switch (op) {
            case SCOMM_SUM:
            case SCOMM_AVG:
                acc += x;
                break;
            case SCOMM_PROD:
                acc *= x;
                break;
            case SCOMM_MAX:
                acc = fmax_ieee(acc, x);
                break;
            default:
                acc = fmin_ieee(acc, x);
                break;
            }
        }
        if (op == SCOMM_AVG) {
            if (d.kind == K_F64) {
                acc = acc / (double)p;
            } else {
                float qf = (float)acc / (float)p;

                acc = qf;
            }
        }
        return f_encode(&d, acc);
    }
}

static void fill_input(void *buf, scomm_dtype_t dtype, scomm_redop_t op,
                       uint64_t seed, int rank, size_t first, size_t count)
{
    size_t es = scomm_dtype_size(dtype), i;

    for (i = 0; i < count; i++) {
        raw_set(buf, i, es, gen(dtype, op, seed, rank, first + i));
    }
}

static void fill_ref(void *buf, scomm_dtype_t dtype, scomm_redop_t op,
                     uint64_t seed, int p, size_t first, size_t count)
{
    size_t es = scomm_dtype_size(dtype), i;

    for (i = 0; i < count; i++) {
        raw_set(buf, i, es, ref_elem(dtype, op, seed, p, first + i));
    }
}

/* What the current check reduced, to print the inputs of a mismatch. */
static uint64_t dbg_seed;
static int dbg_op = -1;
static size_t dbg_first;

static void expect_same(const tctx_t *t, const char *what, const void *got,
                        const void *want, size_t count, scomm_dtype_t dtype,
                        const char *algo, int inplace)
{
    size_t es = scomm_dtype_size(dtype), i;

    if ((count == 0) || (memcmp(got, want, count * es) == 0)) {
        return;
    }
    for (i = 0; i < count; i++) {
        if (raw_get(got, i, es) != raw_get(want, i, es)) {
            break;
        }
    }
    fprintf(stderr, "rank %d: op %s %s count %zu algo %s %s: element %zu is "
            "0x%" PRIx64 ", expected 0x%" PRIx64 "\n", t->rank, what,
            scomm_dtype_name(dtype), count, algo ? algo : "auto",
            inplace ? "in-place" : "out-of-place", i, raw_get(got, i, es),
            raw_get(want, i, es));
    if (dbg_op >= 0) {
        int q;

        for (q = 0; q < t->size; q++) {
            fprintf(stderr, "  input of rank %d: 0x%" PRIx64 "\n", q,
                    gen(dtype, (scomm_redop_t)dbg_op, dbg_seed, q,
                        dbg_first + i));
        }
    }
    ST_ASSERT(0);
}

static uint64_t hash_bytes(const void *buf, size_t n)
{
    const unsigned char *b = buf;
    uint64_t h = 1469598103934665603ull, w;
    size_t i;

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 1099511628211ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

/* All ranks hold the same hash: pass it around the ring with p2p. */
static void expect_hash_equal(const tctx_t *t, uint64_t h)
{
    scomm_req_t *r[2];
    uint64_t left = 0;

    if (t->size == 1) {
        return;
    }
    ST_ASSERT_OK(scomm_irecv(&left, 1, SCOMM_UINT64,
                             (t->rank + t->size - 1) % t->size, 4242, t->comm,
                             &r[0]));
    ST_ASSERT_OK(scomm_isend(&h, 1, SCOMM_UINT64, (t->rank + 1) % t->size,
                             4242, t->comm, &r[1]));
    ST_ASSERT_OK(scomm_wait_all(2, r));
    if (left != h) {
        fprintf(stderr, "rank %d: result hash %016" PRIx64 " differs from "
                "left neighbour's %016" PRIx64 "\n", t->rank, h, left);
    }
    ST_ASSERT_EQ(left, h);
}

static void expect_algo(const tctx_t *t, scomm_coll_op_t op,
                        const char *forced, size_t count)
{
    scomm_coll_record_t rec;

    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    if (count == 0 && op != SCOMM_COLL_ALLTOALLV) {
        ST_ASSERT(strcmp(rec.algo, "none") == 0);
        return;
    }
    if (t->size == 1) {
        ST_ASSERT(strcmp(rec.algo, "local") == 0);
        return;
    }
    if (forced == NULL) {
        ST_ASSERT(strncmp(rec.rule_id, "forced", 6) != 0);
        return;
    }
    /* The hierarchical all_gather and reduce_scatter run on every layout
     * that spans hosts (uneven, interleaved): no fallback there. */
    if ((strcmp(forced, "hierarchical") == 0) &&
        (scomm_local_size(t->comm) < t->size) &&
        ((op == SCOMM_COLL_ALLGATHER) || (op == SCOMM_COLL_REDUCESCATTER))) {
        ST_ASSERT(strcmp(rec.algo, "hierarchical") == 0);
    }
    if (strcmp(rec.algo, forced) != 0) {
        /* Only a documented fallback may replace a forced algorithm. */
        if (strncmp(rec.rule_id, "fallback", 8) != 0) {
            fprintf(stderr, "rank %d: %s forced %s ran %s (%s: %s)\n",
                    t->rank, scomm_coll_op_name(op), forced, rec.algo,
                    rec.rule_id, rec.reason);
        }
        ST_ASSERT(strncmp(rec.rule_id, "fallback", 8) == 0);
        ST_ASSERT(strstr(rec.reason, "falls back") != NULL);
        ST_ASSERT(strstr(rec.reason, forced) != NULL);
    } else {
        ST_ASSERT(strcmp(rec.rule_id, "forced.hook") == 0);
    }
}

static int nalgos(scomm_coll_op_t op)
{
    return scomm_coll_algo_count(op) + 1; /* + auto */
}

/* Algorithm a of op: 0 is "auto" (NULL), then the table's. */
static const char *force(scomm_coll_op_t op, int a)
{
    const char *name = (a == 0) ? NULL : scomm_coll_algo_name(op, a - 1);

    ST_ASSERT_OK(scomm_coll_force_algo(op, name));
    return name;
}

/* 1 if the default rules pick the shared-memory "direct" all_reduce: 2..16
 * ranks of one host (all of them, in these tests), every peer over shm. */
/* 1 if the comm spans >= 2 hosts with the same number (>= 2) of ranks
 * each: the hierarchical algorithms apply (collective: all_gather). */
static int hier_layout(const tctx_t *t)
{
    int32_t mine = scomm_local_size(t->comm), *all;
    int q, ok;

    all = calloc((size_t)t->size, sizeof(*all));
    ST_ASSERT(all != NULL);
    ST_ASSERT_OK(scomm_all_gather(&mine, all, 1, SCOMM_INT32, t->comm));
    ok = (mine >= 2) && (mine < t->size);
    for (q = 0; q < t->size; q++) {
        ok = ok && (all[q] == mine);
    }
    free(all);
    return ok;
}

static int direct_default(const tctx_t *t)
{
    int q;

    if ((t->size < 2) || (t->size > 16)) {
        return 0;
    }
    for (q = 0; q < t->size; q++) {
        if ((q != t->rank) &&
            (strcmp(scomm_peer_transport(t->comm, q), "shm") != 0)) {
            return 0;
        }
    }
    return 1;
}

/* ---- all_reduce / reduce_scatter / reduce: exact references ------------ */

static void test_allreduce_exact(const tctx_t *t, const size_t *counts,
                                 int ncounts)
{
    size_t maxc = 0, es, c;
    char *send, *recv, *ref;
    int dt, op, k, a, inplace;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    send = malloc(maxc * 8 + 1);
    recv = malloc(maxc * 8 + 1);
    ref  = malloc(maxc * 8 + 1);
    ST_ASSERT((send != NULL) && (recv != NULL) && (ref != NULL));
    for (dt = 0; dt < NDT; dt++) {
        if (!dtype_in_scope(dt)) {
            continue;
        }
        es = scomm_dtype_size((scomm_dtype_t)dt);
        for (op = 0; op < NOP; op++) {
            for (k = 0; k < ncounts; k++) {
                uint64_t seed = 1000u + (uint64_t)(dt * 100 + op * 10 + k);

                c = counts[k];
                fill_ref(ref, (scomm_dtype_t)dt, (scomm_redop_t)op, seed,
                         t->size, 0, c);
                dbg_seed  = seed;
                dbg_op    = op;
                dbg_first = 0;
                for (a = 0; a < nalgos(SCOMM_COLL_ALLREDUCE); a++) {
                    const char *name = force(SCOMM_COLL_ALLREDUCE, a);

                    for (inplace = 0; inplace < 2; inplace++) {
                        /* The largest count: one form per algorithm. */
                        if ((c > 2000) && (inplace != (a + op) % 2)) {
                            continue;
                        }
                        fill_input(send, (scomm_dtype_t)dt,
                                   (scomm_redop_t)op, seed, t->rank, 0, c);
                        send[c * es] = 0x5a;
                        memset(recv, 0xa5, c * es + 1);
                        ST_ASSERT_OK(st_all_reduce(
                            send, inplace ? send : recv, c,
                            (scomm_dtype_t)dt, (scomm_redop_t)op, t->comm));
                        expect_algo(t, SCOMM_COLL_ALLREDUCE, name, c);
                        expect_same(t, scomm_redop_name((scomm_redop_t)op),
                                    inplace ? send : recv, ref, c,
                                    (scomm_dtype_t)dt, name, inplace);
                        if (!inplace) {
                            /* The input is left alone, nothing past the
                             * output is written. */
                            ST_ASSERT_EQ((unsigned char)recv[c * es], 0xa5);
                            memcpy(recv, send, c * es);
                            fill_input(send, (scomm_dtype_t)dt,
                                       (scomm_redop_t)op, seed, t->rank, 0,
                                       c);
                            ST_ASSERT_EQ(memcmp(recv, send, c * es), 0);
                        } else {
                            ST_ASSERT_EQ((unsigned char)send[c * es], 0x5a);
                        }
                    }
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    free(send);
    free(recv);
    free(ref);
}

static void test_reduce_scatter_exact(const tctx_t *t, const size_t *counts,
                                      int ncounts)
{
    size_t maxc = 0, es, c, blk;
    char *send, *recv, *ref;
    int dt, op, k, a, inplace, p = t->size, r = t->rank;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    send = malloc(maxc * 8 * (size_t)p + 1);
    recv = malloc(maxc * 8 + 1);
    ref  = malloc(maxc * 8 + 1);
    ST_ASSERT((send != NULL) && (recv != NULL) && (ref != NULL));
    for (dt = 0; dt < NDT; dt++) {
        if (!dtype_in_scope(dt)) {
            continue;
        }
        es = scomm_dtype_size((scomm_dtype_t)dt);
        for (op = 0; op < NOP; op++) {
            for (k = 0; k < ncounts; k++) {
                uint64_t seed = 5000u + (uint64_t)(dt * 100 + op * 10 + k);

                c   = counts[k];
                blk = c * es;
                fill_ref(ref, (scomm_dtype_t)dt, (scomm_redop_t)op, seed, p,
                         (size_t)r * c, c);
                dbg_seed  = seed;
                dbg_op    = op;
                dbg_first = (size_t)r * c;
                for (a = 0; a < nalgos(SCOMM_COLL_REDUCESCATTER); a++) {
                    const char *name = force(SCOMM_COLL_REDUCESCATTER, a);

                    for (inplace = 0; inplace < 2; inplace++) {
                        char *out;

                        if ((c > 2000) && (inplace != (a + op) % 2)) {
                            continue;
                        }
                        fill_input(send, (scomm_dtype_t)dt,
                                   (scomm_redop_t)op, seed, r, 0,
                                   c * (size_t)p);
                        memset(recv, 0xa5, blk + 1);
                        out = inplace ? send + (size_t)r * blk : recv;
                        ST_ASSERT_OK(st_reduce_scatter(
                            send, out, c, (scomm_dtype_t)dt,
                            (scomm_redop_t)op, t->comm));
                        expect_algo(t, SCOMM_COLL_REDUCESCATTER, name, c);
                        expect_same(t, scomm_redop_name((scomm_redop_t)op),
                                    out, ref, c, (scomm_dtype_t)dt, name,
                                    inplace);
                        if (!inplace) {
                            ST_ASSERT_EQ((unsigned char)recv[blk], 0xa5);
                        }
                    }
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_REDUCESCATTER, NULL));
    free(send);
    free(recv);
    free(ref);
}

static void test_reduce_exact(const tctx_t *t, const size_t *counts,
                              int ncounts)
{
    size_t maxc = 0, es, c;
    char *send, *recv, *ref;
    int dt, op, k, root, inplace;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    send = malloc(maxc * 8 + 1);
    recv = malloc(maxc * 8 + 1);
    ref  = malloc(maxc * 8 + 1);
    ST_ASSERT((send != NULL) && (recv != NULL) && (ref != NULL));
    for (dt = 0; dt < NDT; dt++) {
        if (!dtype_in_scope(dt)) {
            continue;
        }
        es = scomm_dtype_size((scomm_dtype_t)dt);
        for (op = 0; op < NOP; op++) {
            for (k = 0; k < ncounts; k++) {
                uint64_t seed = 9000u + (uint64_t)(dt * 100 + op * 10 + k);

                c = counts[k];
                fill_ref(ref, (scomm_dtype_t)dt, (scomm_redop_t)op, seed,
                         t->size, 0, c);
                dbg_seed  = seed;
                dbg_op    = op;
                dbg_first = 0;
                /* Every root for one op, a rotating root otherwise. */
                for (root = 0; root < t->size; root++) {
                    int is_root = (root == t->rank);

                    if ((op != SCOMM_SUM) && (root != (k + dt) % t->size)) {
                        continue;
                    }
                    inplace = (k + root) % 2;
                    fill_input(send, (scomm_dtype_t)dt, (scomm_redop_t)op,
                               seed, t->rank, 0, c);
                    memset(recv, 0xa5, c * es + 1);
                    ST_ASSERT_OK(st_reduce(
                        send,
                        is_root ? (inplace ? send : recv) : NULL, c,
                        (scomm_dtype_t)dt, (scomm_redop_t)op, root,
                        t->comm));
                    expect_algo(t, SCOMM_COLL_REDUCE, NULL, c);
                    if (is_root) {
                        expect_same(t, scomm_redop_name((scomm_redop_t)op),
                                    inplace ? send : recv, ref, c,
                                    (scomm_dtype_t)dt, NULL, inplace);
                    } else {
                        /* Non-root input untouched. */
                        memcpy(recv, send, c * es);
                        fill_input(send, (scomm_dtype_t)dt,
                                   (scomm_redop_t)op, seed, t->rank, 0, c);
                        ST_ASSERT_EQ(memcmp(recv, send, c * es), 0);
                    }
                }
            }
        }
    }
    free(send);
    free(recv);
    free(ref);
}

/* ---- data movement: patterns ------------------------------------------ */

static const scomm_dtype_t move_dtypes[] = {SCOMM_UINT8, SCOMM_FLOAT16,
                                            SCOMM_FLOAT32, SCOMM_FLOAT64};

static uint64_t blk_seed(int from, int to, size_t k)
{
    return (uint64_t)from * 1000003u + (uint64_t)to * 1009u + k;
}

static void test_all_gather(const tctx_t *t, const size_t *counts,
                            int ncounts)
{
    size_t maxc = 0, es, c, b;
    char *send, *recv;
    int d, k, a, q, inplace, p = t->size;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    send = malloc(maxc * 8 + 1);
    recv = malloc(maxc * 8 * (size_t)p + 1);
    ST_ASSERT((send != NULL) && (recv != NULL));
    for (d = 0; d < (int)SCOMM_ARRAY_SIZE(move_dtypes); d++) {
        es = scomm_dtype_size(move_dtypes[d]);
        for (k = 0; k < ncounts; k++) {
            c = counts[k];
            b = c * es;
            for (a = 0; a < nalgos(SCOMM_COLL_ALLGATHER); a++) {
                const char *name = force(SCOMM_COLL_ALLGATHER, a);

                for (inplace = 0; inplace < 2; inplace++) {
                    char *mine = inplace ? recv + (size_t)t->rank * b : send;

                    memset(recv, 0xa5, b * (size_t)p + 1);
                    st_fill_pattern(mine, b, blk_seed(t->rank, 0, k));
                    ST_ASSERT_OK(st_all_gather(mine, recv, c,
                                                  move_dtypes[d], t->comm));
                    expect_algo(t, SCOMM_COLL_ALLGATHER, name, c);
                    for (q = 0; q < p; q++) {
                        ST_ASSERT_EQ(st_check_pattern(recv + (size_t)q * b, b,
                                                      blk_seed(q, 0, k)),
                                     SIZE_MAX);
                    }
                    ST_ASSERT_EQ((unsigned char)recv[b * (size_t)p], 0xa5);
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, NULL));
    free(send);
    free(recv);
}

/* The hierarchical reduce_scatter and all_gather move blocks in 1 MiB
 * segments: blocks of several segments and an odd tail, every op on a
 * few dtypes (16 B .. 1 B elements), in place and not. */
static void test_hier_segments(const tctx_t *t)
{
    static const scomm_dtype_t dts[] = {SCOMM_FLOAT64, SCOMM_INT32,
                                        SCOMM_BFLOAT16, SCOMM_UINT8};
    size_t c, es, q, p = (size_t)t->size, r = (size_t)t->rank;
    char *send, *recv, *ref;
    int d, op, inplace;

    if (scomm_local_size(t->comm) == t->size) {
        return; /* one host: hierarchical falls back, tested elsewhere */
    }
    c    = 300001; /* 3, 2, 1 and 1 segments */
    send = malloc(c * 8 * p);
    recv = malloc(c * 8 * p + 1);
    ref  = malloc(c * 8);
    ST_ASSERT((send != NULL) && (recv != NULL) && (ref != NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_REDUCESCATTER,
                                       "hierarchical"));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, "hierarchical"));
    for (d = 0; d < (int)SCOMM_ARRAY_SIZE(dts); d++) {
        es = scomm_dtype_size(dts[d]);
        for (op = 0; op < NOP; op++) {
            uint64_t seed = 7700u + (uint64_t)(d * 10 + op);
            char *out;

            inplace = (d + op) % 2;
            fill_ref(ref, dts[d], (scomm_redop_t)op, seed, t->size, r * c,
                     c);
            fill_input(send, dts[d], (scomm_redop_t)op, seed, t->rank, 0,
                       c * p);
            memset(recv, 0xa5, c * es + 1);
            out = inplace ? send + r * c * es : recv;
            dbg_seed  = seed;
            dbg_op    = op;
            dbg_first = r * c;
            ST_ASSERT_OK(st_reduce_scatter(send, out, c, dts[d],
                                              (scomm_redop_t)op, t->comm));
            expect_algo(t, SCOMM_COLL_REDUCESCATTER, "hierarchical", c);
            expect_same(t, scomm_redop_name((scomm_redop_t)op), out, ref, c,
                        dts[d], "hierarchical", inplace);
            ST_ASSERT(inplace || ((unsigned char)recv[c * es] == 0xa5));
        }
        /* all_gather of the same size, own block in place or not. */
        inplace = d % 2;
        memset(recv, 0xa5, c * es * p + 1);
        st_fill_pattern(inplace ? recv + r * c * es : send, c * es,
                        blk_seed(t->rank, d, 77));
        ST_ASSERT_OK(st_all_gather(inplace ? recv + r * c * es : send,
                                      recv, c, dts[d], t->comm));
        expect_algo(t, SCOMM_COLL_ALLGATHER, "hierarchical", c);
        for (q = 0; q < p; q++) {
            ST_ASSERT_EQ(st_check_pattern(recv + q * c * es, c * es,
                                          blk_seed((int)q, d, 77)),
                         SIZE_MAX);
        }
        ST_ASSERT_EQ((unsigned char)recv[c * es * p], 0xa5);
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_REDUCESCATTER, NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, NULL));
    free(send);
    free(recv);
    free(ref);
}

static void test_broadcast(const tctx_t *t, const size_t *counts,
                           int ncounts)
{
    static const scomm_dtype_t dts[] = {SCOMM_UINT8, SCOMM_INT32};
    size_t maxc = 0, es, c, b;
    char *buf;
    int d, k, a, root;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    buf = malloc(maxc * 4 + 1);
    ST_ASSERT(buf != NULL);
    for (d = 0; d < 2; d++) {
        es = scomm_dtype_size(dts[d]);
        for (k = 0; k < ncounts; k++) {
            c = counts[k];
            b = c * es;
            for (a = 0; a < nalgos(SCOMM_COLL_BROADCAST); a++) {
                const char *name = force(SCOMM_COLL_BROADCAST, a);

                for (root = 0; root < t->size; root++) {
                    memset(buf, 0xa5, b + 1);
                    if (t->rank == root) {
                        st_fill_pattern(buf, b, blk_seed(root, d, k));
                    }
                    ST_ASSERT_OK(st_broadcast(buf, c, dts[d], root,
                                                 t->comm));
                    expect_algo(t, SCOMM_COLL_BROADCAST, name, c);
                    ST_ASSERT_EQ(st_check_pattern(buf, b,
                                                  blk_seed(root, d, k)),
                                 SIZE_MAX);
                    ST_ASSERT_EQ((unsigned char)buf[b], 0xa5);
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, NULL));
    free(buf);
}

static void test_all_to_all(const tctx_t *t, const size_t *counts,
                            int ncounts)
{
    static const scomm_dtype_t dts[] = {SCOMM_UINT8, SCOMM_INT64};
    size_t maxc = 0, es, c, b;
    char *send, *recv;
    int d, k, q, a, inplace, p = t->size, r = t->rank;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    send = malloc(maxc * 8 * (size_t)p + 1);
    recv = malloc(maxc * 8 * (size_t)p + 1);
    ST_ASSERT((send != NULL) && (recv != NULL));
    for (d = 0; d < 2; d++) {
        es = scomm_dtype_size(dts[d]);
        for (k = 0; k < ncounts; k++) {
            c = counts[k];
            b = c * es;
            for (a = 0; a < 2 * nalgos(SCOMM_COLL_ALLTOALL); a++) {
                const char *name = force(SCOMM_COLL_ALLTOALL, a / 2);
                char *out;

                inplace = a % 2;
                out     = inplace ? send : recv;
                for (q = 0; q < p; q++) {
                    st_fill_pattern(send + (size_t)q * b, b,
                                    blk_seed(r, q, k));
                }
                memset(recv, 0xa5, b * (size_t)p + 1);
                if (inplace) {
                    send[b * (size_t)p] = (char)0xa5;
                }
                ST_ASSERT_OK(st_all_to_all(send, out, c, dts[d], t->comm));
                expect_algo(t, SCOMM_COLL_ALLTOALL, name, c);
                for (q = 0; q < p; q++) {
                    ST_ASSERT_EQ(st_check_pattern(out + (size_t)q * b, b,
                                                  blk_seed(q, r, k)),
                                 SIZE_MAX);
                }
                ST_ASSERT_EQ((unsigned char)out[b * (size_t)p], 0xa5);
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLTOALL, NULL));
    free(send);
    free(recv);
}

/*
 * Tiny reduce_scatter, through every algorithm, with an all_reduce after
 * each (the two share the shared-memory path's cache lines): new data
 * every call, every other call in place; a stale line or a block reduced
 * from the wrong offset shows up as a wrong sum.
 */
static void test_tiny_reduce(const tctx_t *t)
{
    uint64_t v[6], out, x, want;
    int a, i, q, p = t->size, r = t->rank;

    for (a = 0; a < nalgos(SCOMM_COLL_REDUCESCATTER); a++) {
        const char *name = force(SCOMM_COLL_REDUCESCATTER, a);

        for (i = 0; i < 40; i++) {
            for (q = 0; q < p; q++) {
                v[q] = blk_seed(r, q, (size_t)(i + 64 * a));
            }
            if (i & 1) {
                ST_ASSERT_OK(scomm_reduce_scatter(v, v + r, 1, SCOMM_UINT64,
                                                  SCOMM_SUM, t->comm));
                out = v[r];
            } else {
                ST_ASSERT_OK(scomm_reduce_scatter(v, &out, 1, SCOMM_UINT64,
                                                  SCOMM_SUM, t->comm));
            }
            expect_algo(t, SCOMM_COLL_REDUCESCATTER, name, 1);
            for (want = 0, q = 0; q < p; q++) {
                want += blk_seed(q, r, (size_t)(i + 64 * a));
            }
            ST_ASSERT_EQ(out, want);
            v[0] = blk_seed(r, r, (size_t)i);
            ST_ASSERT_OK(scomm_all_reduce(v, &out, 1, SCOMM_UINT64,
                                          SCOMM_MAX, t->comm));
            for (want = 0, q = 0; q < p; q++) {
                x    = blk_seed(q, q, (size_t)i);
                want = (x > want) ? x : want;
            }
            ST_ASSERT_EQ(out, want);
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_REDUCESCATTER, NULL));
}

/*
 * Runs of tiny broadcasts (one root, then the next) and all_to_alls with
 * new data every call, through every algorithm: a root that runs ahead of
 * its readers (the tiny broadcast's eight lines) or a reader of a stale
 * line shows up as an old value.
 */
static void test_tiny_streams(const tctx_t *t)
{
    uint64_t v[6], want;
    int a, i, q, root, p = t->size, r = t->rank;

    ST_ASSERT(p <= 6);
    for (a = 0; a < nalgos(SCOMM_COLL_BROADCAST); a++) {
        const char *name = force(SCOMM_COLL_BROADCAST, a);

        for (root = 0; root < p; root++) {
            for (i = 0; i < 40; i++) {
                want = blk_seed(root, i, a);
                v[0] = (r == root) ? want : 0;
                ST_ASSERT_OK(scomm_broadcast(v, 1, SCOMM_UINT64, root,
                                             t->comm));
                expect_algo(t, SCOMM_COLL_BROADCAST, name, 1);
                ST_ASSERT_EQ(v[0], want);
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, NULL));
    for (a = 0; a < nalgos(SCOMM_COLL_ALLTOALL); a++) {
        const char *name = force(SCOMM_COLL_ALLTOALL, a);

        for (i = 0; i < 40; i++) {
            for (q = 0; q < p; q++) {
                v[q] = blk_seed(r, q, i);
            }
            ST_ASSERT_OK(scomm_all_to_all(v, v, 1, SCOMM_UINT64, t->comm));
            expect_algo(t, SCOMM_COLL_ALLTOALL, name, 1);
            for (q = 0; q < p; q++) {
                ST_ASSERT_EQ(v[q], blk_seed(q, r, i));
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLTOALL, NULL));
    /* Tiny all_gathers (in place every other call) with an all_to_all
     * after each: the two share the one-line path's lines and count. */
    for (a = 0; a < nalgos(SCOMM_COLL_ALLGATHER); a++) {
        const char *name = force(SCOMM_COLL_ALLGATHER, a);

        for (i = 0; i < 40; i++) {
            uint64_t g[6], mine = blk_seed(r, a, i);

            if (i & 1) {
                g[r] = mine;
                ST_ASSERT_OK(scomm_all_gather(g + r, g, 1, SCOMM_UINT64,
                                              t->comm));
            } else {
                ST_ASSERT_OK(scomm_all_gather(&mine, g, 1, SCOMM_UINT64,
                                              t->comm));
            }
            expect_algo(t, SCOMM_COLL_ALLGATHER, name, 1);
            for (q = 0; q < p; q++) {
                ST_ASSERT_EQ(g[q], blk_seed(q, a, i));
            }
            for (q = 0; q < p; q++) {
                v[q] = blk_seed(r, q, i + 1000);
            }
            ST_ASSERT_OK(scomm_all_to_all(v, v, 1, SCOMM_UINT64, t->comm));
            for (q = 0; q < p; q++) {
                ST_ASSERT_EQ(v[q], blk_seed(q, r, i + 1000));
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, NULL));
    test_tiny_reduce(t);
}

/* Elements rank i sends to rank j; symmetric so in-place works too. */
static size_t v_count(int i, int j, int variant)
{
    size_t n = (size_t)((i * 7 + j * 7 + i * j * 3 + variant) % 11);

    return (n == 4) ? 0 : n * (size_t)(1 + variant * 97);
}

static void test_all_to_allv(const tctx_t *t)
{
    int p = t->size, r = t->rank, q, variant, inplace;
    size_t sc[64], sd[64], rc[64], rd[64], stot = 0, rtot = 0, es = 4;
    char *send, *recv;

    ST_ASSERT(p <= 64);
    for (variant = 0; variant < 3; variant++) {
        stot = rtot = 0;
        for (q = 0; q < p; q++) {
            /* Gaps of q elements between blocks, reversed order on the
             * receive side. */
            sc[q] = v_count(r, q, variant);
            rc[q] = v_count(q, r, variant);
            stot += sc[q] + (size_t)q;
        }
        for (q = p - 1; q >= 0; q--) {
            rd[q] = rtot;
            rtot += rc[q] + 1;
        }
        stot = 0;
        for (q = 0; q < p; q++) {
            sd[q] = stot;
            stot += sc[q] + (size_t)q;
        }
        for (inplace = 0; inplace < 2; inplace++) {
            size_t tot = SCOMM_MAX(stot, rtot) + 1;

            send = malloc(tot * es);
            recv = malloc(tot * es);
            ST_ASSERT((send != NULL) && (recv != NULL));
            if (inplace) {
                /* sendcounts == recvcounts (v_count is symmetric) and the
                 * same displacements on both sides. */
                memcpy(rd, sd, sizeof(sd));
                for (q = 0; q < p; q++) {
                    ST_ASSERT_EQ(sc[q], rc[q]);
                }
            }
            for (q = 0; q < p; q++) {
                st_fill_pattern(send + sd[q] * es, sc[q] * es,
                                blk_seed(r, q, (size_t)variant));
            }
            memset(recv, 0xa5, tot * es);
            ST_ASSERT_OK(st_all_to_allv(send, sc, sd,
                                           inplace ? send : recv, rc, rd,
                                           SCOMM_FLOAT32, t->comm));
            for (q = 0; q < p; q++) {
                ST_ASSERT_EQ(st_check_pattern((inplace ? send : recv) +
                                                  rd[q] * es,
                                              rc[q] * es,
                                              blk_seed(q, r,
                                                       (size_t)variant)),
                             SIZE_MAX);
            }
            free(send);
            free(recv);
        }
    }
}

static void test_gather_scatter(const tctx_t *t, const size_t *counts,
                                int ncounts)
{
    size_t maxc = 0, c, b;
    char *mine, *big;
    int k, q, root, inplace, p = t->size, r = t->rank;

    for (k = 0; k < ncounts; k++) {
        maxc = SCOMM_MAX(maxc, counts[k]);
    }
    mine = malloc(maxc * 2 + 1);
    big  = malloc(maxc * 2 * (size_t)p + 1);
    ST_ASSERT((mine != NULL) && (big != NULL));
    for (k = 0; k < ncounts; k++) {
        c = counts[k];
        b = c * 2;
        for (root = 0; root < p; root++) {
            for (inplace = 0; inplace < 2; inplace++) {
                int ip = inplace && (r == root);
                char *src = ip ? big + (size_t)r * b : mine;

                /* gather */
                memset(big, 0xa5, b * (size_t)p + 1);
                st_fill_pattern(src, b, blk_seed(r, root, k));
                ST_ASSERT_OK(st_gather(src, (r == root) ? big : NULL, c,
                                          SCOMM_BFLOAT16, root, t->comm));
                expect_algo(t, SCOMM_COLL_GATHER, NULL, c);
                if (r == root) {
                    for (q = 0; q < p; q++) {
                        ST_ASSERT_EQ(st_check_pattern(big + (size_t)q * b, b,
                                                      blk_seed(q, root, k)),
                                     SIZE_MAX);
                    }
                    ST_ASSERT_EQ((unsigned char)big[b * (size_t)p], 0xa5);
                }
                /* scatter */
                if (r == root) {
                    for (q = 0; q < p; q++) {
                        st_fill_pattern(big + (size_t)q * b, b,
                                        blk_seed(root, q, k + 77));
                    }
                }
                memset(mine, 0xa5, b + 1);
                ST_ASSERT_OK(st_scatter((r == root) ? big : NULL,
                                           ip ? big + (size_t)r * b : mine,
                                           c, SCOMM_BFLOAT16, root, t->comm));
                expect_algo(t, SCOMM_COLL_SCATTER, NULL, c);
                ST_ASSERT_EQ(st_check_pattern(ip ? big + (size_t)r * b : mine,
                                              b, blk_seed(root, r, k + 77)),
                             SIZE_MAX);
                if (!ip) {
                    ST_ASSERT_EQ((unsigned char)mine[b], 0xa5);
                }
            }
        }
    }
    free(mine);
    free(big);
}

/* ---- random floats: tolerance, NaN, equality across ranks -------------- */

static void test_allreduce_random(const tctx_t *t)
{
    static const scomm_dtype_t dts[] = {SCOMM_FLOAT32, SCOMM_BFLOAT16,
                                        SCOMM_FLOAT16, SCOMM_FLOAT64};
    static const size_t cnts[] = {1021, 65539};
    double eps[] = {0x1p-23, 0x1p-7, 0x1p-10, 0x1p-52};
    int d, k, a, q, op, p = t->size;
    size_t c, i, es;
    char *buf;

    buf = malloc(65539 * 8);
    ST_ASSERT(buf != NULL);
    for (d = 0; d < 4; d++) {
        dt_t info = dt_info(dts[d]);

        es = scomm_dtype_size(dts[d]);
        for (k = 0; k < 2; k++) {
            c = cnts[k];
            for (op = SCOMM_SUM; op <= SCOMM_AVG; op += SCOMM_AVG) {
                for (a = 0; a < nalgos(SCOMM_COLL_ALLREDUCE); a++) {
                    uint64_t seed = 777u + (uint64_t)(d * 10 + k);

                    (void)force(SCOMM_COLL_ALLREDUCE, a);
                    for (i = 0; i < c; i++) {
                        double x = (double)(rnd(seed, t->rank, i) >> 11) *
                                   0x1p-53 * 2.0 - 1.0;

                        raw_set(buf, i, es, f_encode(&info, x));
                    }
                    /* A NaN from the last rank at element 3. */
                    if (t->rank == p - 1) {
                        raw_set(buf, 3, es, f_encode(&info, NAN));
                    }
                    ST_ASSERT_OK(st_all_reduce(buf, buf, c, dts[d],
                                                  (scomm_redop_t)op,
                                                  t->comm));
                    for (i = 0; i < c; i++) {
                        double got = f_decode(&info, raw_get(buf, i, es));
                        double sum = 0.0, mag = 0.0, tol;

                        if (i == 3) {
                            ST_ASSERT(isnan(got));
                            continue;
                        }
                        for (q = 0; q < p; q++) {
                            double x = (double)(rnd(seed, q, i) >> 11) *
                                       0x1p-53 * 2.0 - 1.0;

                            x = f_decode(&info, f_encode(&info, x));
                            sum += x;
                            mag += fabs(x);
                        }
                        if (op == SCOMM_AVG) {
                            sum /= p;
                            mag /= p;
                        }
                        tol = 2.0 * p * eps[d] * (mag + 1e-30);
                        if (fabs(got - sum) > tol) {
                            fprintf(stderr, "rank %d: %s %s count %zu "
                                    "element %zu: %.9g vs %.9g (tol %.3g)\n",
                                    t->rank, scomm_dtype_name(dts[d]),
                                    scomm_redop_name((scomm_redop_t)op), c,
                                    i, got, sum, tol);
                        }
                        ST_ASSERT(fabs(got - sum) <= tol);
                    }
                    expect_hash_equal(t, hash_bytes(buf, c * es));
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    free(buf);
}

/* ---- large messages ---------------------------------------------------- */

/* gen(SCOMM_FLOAT32, SCOMM_SUM, ...) without the table lookups, for the
 * 64 Mi case (checked against gen() on a prefix). */
static double f32sum_val(uint64_t seed, int rank, size_t idx)
{
    return (double)((int64_t)(rnd(seed, rank, idx) % 2001) - 1000) / 8.0;
}

static void fill_f32_sum(float *buf, size_t c, uint64_t seed, int rank)
{
    size_t i;

    for (i = 0; i < c; i++) {
        buf[i] = (float)f32sum_val(seed, rank, i);
    }
}

/* Check elements [lo, hi) of an all_reduce f32 sum against the reference
 * (all ranks' inputs regenerated). */
static void check_f32_sum_range(const tctx_t *t, const float *buf, size_t c,
                                uint64_t seed, size_t lo, size_t hi)
{
    size_t i;
    int q;

    for (i = 0; i < SCOMM_MIN(c, (size_t)1000); i++) {
        uint64_t want = ref_elem(SCOMM_FLOAT32, SCOMM_SUM, seed, t->size, i);
        float f = (float)f32sum_val(seed, t->rank, i);
        uint32_t bits;

        memcpy(&bits, &f, 4);
        ST_ASSERT_EQ(bits, gen(SCOMM_FLOAT32, SCOMM_SUM, seed, t->rank, i));
        f = 0;
        for (q = 0; q < t->size; q++) {
            f = (float)(f + f32sum_val(seed, q, i));
        }
        memcpy(&bits, &f, 4);
        ST_ASSERT_EQ(bits, want);
    }
    for (i = lo; i < hi; i++) {
        double want = 0.0;

        for (q = 0; q < t->size; q++) {
            want += f32sum_val(seed, q, i);
        }
        if (buf[i] != (float)want) {
            fprintf(stderr, "rank %d: f32 sum count %zu element %zu: %.9g "
                    "expected %.9g\n", t->rank, c, i, (double)buf[i], want);
            ST_ASSERT(0);
        }
    }
}

static void check_f32_sum(const tctx_t *t, const float *buf, size_t c,
                          uint64_t seed)
{
    check_f32_sum_range(t, buf, c, seed, 0, c);
}

static void test_large(const tctx_t *t, int huge)
{
    const size_t mi = 1u << 20;
    size_t c, i, q;
    float *buf, *src;
    char *big, *send, what[128];
    uint64_t hsrc;
    int a, hier = hier_layout(t);
    double t0;

    /* all_reduce f32 sum, 1 Mi, every algorithm. */
    buf = malloc(mi * sizeof(float));
    ST_ASSERT(buf != NULL);
    for (a = 0; a < nalgos(SCOMM_COLL_ALLREDUCE); a++) {
        const char *name = force(SCOMM_COLL_ALLREDUCE, a);

        fill_input(buf, SCOMM_FLOAT32, SCOMM_SUM, 42, t->rank, 0, mi);
        ST_ASSERT_OK(st_all_reduce(buf, buf, mi, SCOMM_FLOAT32, SCOMM_SUM,
                                      t->comm));
        expect_algo(t, SCOMM_COLL_ALLREDUCE, name, mi);
        check_f32_sum(t, buf, mi, 42);
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    free(buf);

    /* broadcast (2 Mi + 3) x 4 B with every algorithm, root 1 % p: past
     * 8 MiB, where the staged paths store with non-temporal stores, and
     * with a tail that is not a whole cache line. */
    c   = 2 * mi + 3;
    big = malloc(4 * c);
    ST_ASSERT(big != NULL);
    for (a = 0; a < nalgos(SCOMM_COLL_BROADCAST); a++) {
        const char *name = force(SCOMM_COLL_BROADCAST, a);
        int root = 1 % t->size;

        if (t->rank == root) {
            st_fill_pattern(big, 4 * c, 99);
        } else {
            memset(big, 0, 4 * c);
        }
        ST_ASSERT_OK(st_broadcast(big, c, SCOMM_FLOAT32, root, t->comm));
        expect_algo(t, SCOMM_COLL_BROADCAST, name, c);
        ST_ASSERT_EQ(st_check_pattern(big, 4 * c, 99), SIZE_MAX);
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, NULL));
    free(big);

    /* all_gather 1 Mi floats per rank; reduce_scatter 1 Mi per rank. */
    big  = malloc(4 * mi * (size_t)t->size);
    send = malloc(4 * mi * (size_t)t->size);
    ST_ASSERT((big != NULL) && (send != NULL));
    st_fill_pattern(send, 4 * mi, blk_seed(t->rank, 7, 7));
    ST_ASSERT_OK(st_all_gather(send, big, mi, SCOMM_FLOAT32, t->comm));
    for (q = 0; q < (size_t)t->size; q++) {
        ST_ASSERT_EQ(st_check_pattern(big + q * 4 * mi, 4 * mi,
                                      blk_seed((int)q, 7, 7)),
                     SIZE_MAX);
    }
    fill_input(send, SCOMM_FLOAT32, SCOMM_SUM, 43, t->rank, 0,
               mi * (size_t)t->size);
    ST_ASSERT_OK(st_reduce_scatter(send, big, mi, SCOMM_FLOAT32,
                                      SCOMM_SUM, t->comm));
    for (i = 0; i < mi; i++) {
        uint64_t want = ref_elem(SCOMM_FLOAT32, SCOMM_SUM, 43, t->size,
                                 (size_t)t->rank * mi + i);

        ST_ASSERT_EQ(raw_get(big, i, 4), want);
    }
    /* all_to_all 256 Ki floats per peer. */
    for (q = 0; q < (size_t)t->size; q++) {
        st_fill_pattern(send + q * mi, mi, blk_seed(t->rank, (int)q, 5));
    }
    ST_ASSERT_OK(st_all_to_all(send, big, mi / 4, SCOMM_FLOAT32,
                                  t->comm));
    for (q = 0; q < (size_t)t->size; q++) {
        ST_ASSERT_EQ(st_check_pattern(big + q * mi, mi,
                                      blk_seed((int)q, t->rank, 5)),
                     SIZE_MAX);
    }
    free(big);
    free(send);

    if (!huge) {
        return;
    }
    /* all_reduce f32 sum, 64 Mi + 7 elements (256 MiB): the default
     * (direct over shm, else ring) and the others forced, in place and
     * not, "direct" also from scomm_mem_alloc memory (zero copy); bits
     * equal to the reference and across ranks. */
    t0  = now_s();
    c   = ((size_t)scope_huge_mi << 20) + 7;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer's shadow memory makes each rank of the 256 MiB case
     * ~7 GiB: 4 and 5 ranks do not fit in 24 GiB (the OOM killer took
     * one). The sizes in between still cross every chunk boundary. */
    c   = (16u << 20) + 7;
#endif
    src = malloc(c * sizeof(float));
    buf = malloc(c * sizeof(float));
    ST_ASSERT((src != NULL) && (buf != NULL));
    fill_f32_sum(src, c, 64, t->rank);
    hsrc = hash_bytes(src, c * sizeof(float));
    snprintf(what, sizeof(what), "  (%zu Mi + 7: fill)", c >> 20);
    section_done(t, what, t0);
    for (a = 0; a < 5; a++) {
        static const char *const algos[5] = {NULL, "rabenseifner",
                                             "recursive_doubling", "direct",
                                             "direct"};
        int inplace = (a != 1) && (a != 4), zc = (a == 4);
        float *in = src, *out = buf;
        void *zs = NULL, *zr = NULL;

        if (zc) {
            /* Sizes differ per rank: only the vector must agree. */
            ST_ASSERT_OK(scomm_mem_alloc(t->comm, c * sizeof(float) +
                                         (size_t)t->rank * 4096, &zs));
            ST_ASSERT_OK(scomm_mem_alloc(t->comm, c * sizeof(float), &zr));
            memcpy(zs, src, c * sizeof(float));
            in  = zs;
            out = zr;
        }
        ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, algos[a]));
        if (inplace) {
            memcpy(buf, src, c * sizeof(float));
        }
        t0 = now_s();
        ST_ASSERT_OK(st_all_reduce(inplace ? out : in, out, c,
                                      SCOMM_FLOAT32, SCOMM_SUM, t->comm));
        if (t->size > 1) {
            scomm_coll_record_t rec;
            const char *dflt = direct_default(t) ? "direct" :
                               hier ? "hierarchical" : "ring";
            const char *drule = direct_default(t) ? "allreduce.shm_direct" :
                                hier ? "allreduce.hier" : "allreduce.large";
            int fell = (a > 0) && (strcmp(algos[a], "direct") == 0) &&
                       (scomm_local_size(t->comm) < t->size);

            ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
            /* Forced "direct" across hosts falls back to the default. */
            ST_ASSERT(strcmp(rec.algo, ((a == 0) || fell) ? dflt :
                                                            algos[a]) == 0);
            if ((a == 0) || fell) {
                ST_ASSERT(strstr(rec.rule_id, drule) != NULL);
            }
            snprintf(what, sizeof(what), "  (%zu Mi + 7: %s%s)", c >> 20,
                     rec.algo,
                     zc ? ", mem_alloc" : (inplace ? ", in place" : ""));
        } else {
            snprintf(what, sizeof(what), "  (%zu Mi + 7: local)", c >> 20);
        }
        section_done(t, what, t0);
        /* Each rank checks a stripe against the reference; equal hashes
         * extend every stripe's verdict to every rank. */
        check_f32_sum_range(t, out, c, 64,
                            c / (size_t)t->size * (size_t)t->rank,
                            (t->rank == t->size - 1) ?
                                c :
                                c / (size_t)t->size * (size_t)(t->rank + 1));
        expect_hash_equal(t, hash_bytes(out, c * sizeof(float)));
        if (!inplace) {
            ST_ASSERT_EQ(hash_bytes(in, c * sizeof(float)), hsrc);
        }
        if (zc) {
            ST_ASSERT_OK(scomm_mem_free(t->comm, zs));
            ST_ASSERT_OK(scomm_mem_free(t->comm, zr));
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    free(buf);
    free(src);
}

/* Ranks enter at different times: messages arrive before receives. */
static void test_skew(const tctx_t *t)
{
    const size_t n = (1u << 20) + 5;
    float *buf = malloc(n * sizeof(float));
    int a;

    ST_ASSERT(buf != NULL);
    for (a = 0; a < nalgos(SCOMM_COLL_ALLREDUCE); a++) {
        (void)force(SCOMM_COLL_ALLREDUCE, a);
        fill_f32_sum(buf, n, 11 + (uint64_t)a, t->rank);
        usleep((useconds_t)(((t->rank + a) % t->size) * 20000));
        ST_ASSERT_OK(scomm_all_reduce(buf, buf, n, SCOMM_FLOAT32, SCOMM_SUM,
                                      t->comm));
        check_f32_sum(t, buf, n, 11 + (uint64_t)a);
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    free(buf);
}

/*
 * The last rank dies between collectives: every other rank's next
 * collective fails within seconds (not at the deadline), naming a rank,
 * later calls fail at once, and the communicator can still be destroyed.
 * Runs last: the world is failed afterwards.
 */
static void test_peer_loss(const tctx_t *t)
{
    const size_t n = 1u << 20;
    float *buf;
    scomm_status_t s;
    double t0;

    if (t->size < 2) {
        return;
    }
    buf = calloc(n, sizeof(float));
    ST_ASSERT(buf != NULL);
    ST_ASSERT_OK(scomm_barrier(t->comm));
    if (t->rank == t->size - 1) {
        /* Let the others leave the barrier first, then vanish. */
        usleep(200000);
        fflush(NULL);
        _exit(0);
    }
    t0 = now_s();
    s  = scomm_all_reduce(buf, buf, n, SCOMM_FLOAT32, SCOMM_SUM, t->comm);
    ST_ASSERT(SCOMM_IS_ERR(s));
    ST_ASSERT(now_s() - t0 < 20.0);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "rank") != NULL);
    t0 = now_s();
    s  = scomm_broadcast(buf, n, SCOMM_FLOAT32, 0, t->comm);
    ST_ASSERT(SCOMM_IS_ERR(s));
    ST_ASSERT(now_s() - t0 < 1.0);
    free(buf);
}

/* ---- scomm_mem_alloc and the direct algorithms in place --------------- */

/* The memory calls' argument checks; nothing is touched on error. */
static void test_mem_args(const tctx_t *t)
{
    void *p = (void *)&p, *q = NULL;
    char local[64];

    ST_ASSERT_STATUS(scomm_mem_alloc(NULL, 8, &q), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_mem_alloc(t->comm, 8, NULL),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "ptr_p") != NULL);
    ST_ASSERT_STATUS(scomm_mem_alloc(t->comm, SIZE_MAX, &p),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(p == (void *)&p);
    ST_ASSERT_STATUS(scomm_mem_free(t->comm, local), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "scomm_mem_alloc") !=
              NULL);
    ST_ASSERT_OK(scomm_mem_free(t->comm, NULL));
    ST_ASSERT_STATUS(scomm_mem_free(NULL, local), SCOMM_ERR_INVALID_ARG);

    ST_ASSERT_STATUS(scomm_mem_register(t->comm, NULL, 8),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_mem_register(t->comm, local, 0),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_mem_register(t->comm, local, SIZE_MAX),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_OK(scomm_mem_register(t->comm, local, sizeof(local)));
    ST_ASSERT_STATUS(scomm_mem_register(t->comm, local, 8),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "already") != NULL);
    ST_ASSERT_OK(scomm_mem_deregister(t->comm, local));
    ST_ASSERT_STATUS(scomm_mem_deregister(t->comm, local),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_mem_deregister(NULL, local),
                     SCOMM_ERR_INVALID_ARG);
}

/*
 * all_reduce forced to "direct" with scomm_mem_alloc buffers, every
 * combination: both in shared memory, in place, only one of the two, and
 * ranks that differ (odd ranks pass malloc memory). Counts not divisible
 * by the rank count, on both sides of the small-vector path and of the
 * staging chunk.
 */
static void test_mem_allreduce(const tctx_t *t, char *zs, char *zr,
                               size_t zbytes)
{
    static const scomm_dtype_t dts[] = {SCOMM_FLOAT32, SCOMM_BFLOAT16,
                                        SCOMM_INT64, SCOMM_FP8_E4M3};
    static const size_t counts[] = {1, 7, 13, 1021, 4099, 65539,
                                    (1u << 20) + 5};
    size_t maxb = ((1u << 20) + 5) * 8 + 64, es, c;
    char *ms = malloc(maxb), *mr = malloc(maxb), *ref = malloc(maxb);
    int d, op, k, mode;

    ST_ASSERT((ms != NULL) && (mr != NULL) && (ref != NULL));
    ST_ASSERT(zbytes >= maxb);
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, "direct"));
    for (d = 0; d < (int)SCOMM_ARRAY_SIZE(dts); d++) {
        es = scomm_dtype_size(dts[d]);
        for (op = 0; op < NOP; op++) {
            for (k = 0; k < (int)SCOMM_ARRAY_SIZE(counts); k++) {
                uint64_t seed = 31000u + (uint64_t)(d * 100 + op * 10 + k);

                c = counts[k];
                if ((c > 100000) && ((op != SCOMM_SUM) || (d != 0))) {
                    continue;
                }
                fill_ref(ref, dts[d], (scomm_redop_t)op, seed, t->size, 0,
                         c);
                dbg_seed  = seed;
                dbg_op    = op;
                dbg_first = 0;
                for (mode = 0; mode < 5; mode++) {
                    /* 0: both shared, 1: in place in shared memory,
                     * 2: sendbuf shared, 3: recvbuf shared, 4: odd ranks
                     * pass malloc memory. The shared buffers start at an
                     * odd element offset on odd ranks. */
                    int odd = (t->rank % 2 == 1);
                    size_t sh = odd ? 3 * es : 0;
                    char *in  = ((mode <= 2) && !(mode == 4 && odd)) ?
                                zs + sh : ms;
                    char *out = ((mode == 0) || (mode == 3)) ? zr + sh : mr;

                    if (mode == 1) {
                        out = in;
                    } else if (mode == 4) {
                        in  = odd ? ms : zs + sh;
                        out = odd ? mr : zr + sh;
                    }
                    fill_input(in, dts[d], (scomm_redop_t)op, seed, t->rank,
                               0, c);
                    if (out != in) {
                        memset(out, 0xa5, c * es + 1);
                    } else {
                        out[c * es] = 0x5a;
                    }
                    ST_ASSERT_OK(scomm_all_reduce(in, out, c, dts[d],
                                                  (scomm_redop_t)op,
                                                  t->comm));
                    expect_algo(t, SCOMM_COLL_ALLREDUCE, "direct", c);
                    expect_same(t, scomm_redop_name((scomm_redop_t)op), out,
                                ref, c, dts[d], "direct/mem_alloc",
                                mode == 1);
                    ST_ASSERT_EQ((unsigned char)out[c * es],
                                 (out != in) ? 0xa5 : 0x5a);
                    if (out != in) {
                        memcpy(out, in, c * es);
                        fill_input(in, dts[d], (scomm_redop_t)op, seed,
                                   t->rank, 0, c);
                        ST_ASSERT_EQ(memcmp(out, in, c * es), 0);
                    }
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    free(ms);
    free(mr);
    free(ref);
}

/* all_gather, broadcast and reduce_scatter read scomm_mem_alloc memory in
 * place too. */
static void test_mem_moves(const tctx_t *t, char *zs, char *zr,
                           size_t zbytes)
{
    static const char *const mem_algos[] = {"direct", "single_copy"};
    static const size_t counts[] = {1, 1021, 65539, (1u << 18) + 3};
    int p = t->size, r = t->rank, k, mode, root, q;
    size_t c, b, i;
    char *m = malloc(2 * zbytes), *ref = malloc(((1u << 18) + 3) * 4);

    ST_ASSERT((m != NULL) && (ref != NULL));
    for (k = 0; k < (int)SCOMM_ARRAY_SIZE(counts); k++) {
        c = counts[k];
        b = c * 4;
        ST_ASSERT(b * (size_t)p + 1 <= zbytes);
        /* all_gather: 0 send shared, 1 in place in shared memory, 2 send
         * shared on even ranks only; staged ("direct") and single_copy. */
        for (mode = 0; mode < 6; mode++) {
            const char *algo = mem_algos[mode / 3];
            int m3 = mode % 3;
            char *out = (m3 == 1) ? zr : m;
            char *in  = (m3 == 1) ? zr + (size_t)r * b :
                        ((m3 == 2) && (r % 2 == 1)) ? m + b * (size_t)p + 64
                                                    : zs;

            ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, algo));
            memset(out, 0xa5, b * (size_t)p + 1);
            st_fill_pattern(in, b, blk_seed(r, 1, k));
            ST_ASSERT_OK(scomm_all_gather(in, out, c, SCOMM_FLOAT32,
                                          t->comm));
            expect_algo(t, SCOMM_COLL_ALLGATHER, algo, c);
            for (q = 0; q < p; q++) {
                ST_ASSERT_EQ(st_check_pattern(out + (size_t)q * b, b,
                                              blk_seed(q, 1, k)),
                             SIZE_MAX);
            }
            ST_ASSERT_EQ((unsigned char)out[b * (size_t)p], 0xa5);
        }
        /* broadcast from shared memory, every root; odd ranks receive
         * into malloc memory. */
        for (root = 0; root < 2 * p; root++) {
            const char *algo = mem_algos[root % 2];
            char *buf = ((r % 2 == 1) && (r != root / 2)) ? m : zs;

            ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, algo));
            memset(buf, 0xa5, b + 1);
            if (r == root / 2) {
                st_fill_pattern(buf, b, blk_seed(root / 2, 2, k));
            }
            ST_ASSERT_OK(scomm_broadcast(buf, c, SCOMM_FLOAT32, root / 2,
                                         t->comm));
            expect_algo(t, SCOMM_COLL_BROADCAST, algo, c);
            ST_ASSERT_EQ(st_check_pattern(buf, b, blk_seed(root / 2, 2, k)),
                         SIZE_MAX);
            ST_ASSERT_EQ((unsigned char)buf[b], 0xa5);
        }
        /* all_to_all single_copy: 0 send shared, 1 in place in shared
         * memory, 2 send shared on even ranks only. */
        ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLTOALL,
                                           "single_copy"));
        for (mode = 0; mode < 3; mode++) {
            char *in  = (mode == 1) ? zr :
                        ((mode == 2) && (r % 2 == 1)) ? m + b * (size_t)p + 64
                                                      : zs;
            char *out = (mode == 1) ? zr : m;

            for (q = 0; q < p; q++) {
                st_fill_pattern(in + (size_t)q * b, b, blk_seed(r, q, k));
            }
            if (mode != 1) {
                memset(out, 0xa5, b * (size_t)p + 1);
            }
            ST_ASSERT_OK(scomm_all_to_all(in, out, c, SCOMM_FLOAT32,
                                          t->comm));
            expect_algo(t, SCOMM_COLL_ALLTOALL, "single_copy", c);
            for (q = 0; q < p; q++) {
                ST_ASSERT_EQ(st_check_pattern(out + (size_t)q * b, b,
                                              blk_seed(q, r, k)),
                             SIZE_MAX);
            }
            if (mode != 1) {
                ST_ASSERT_EQ((unsigned char)out[b * (size_t)p], 0xa5);
            }
        }
        ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLTOALL, NULL));
        /* reduce_scatter: 0 send shared, 1 in place in shared memory. */
        ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_REDUCESCATTER,
                                           "shm_direct"));
        fill_ref(ref, SCOMM_FLOAT32, SCOMM_SUM, 77 + k, p, (size_t)r * c, c);
        for (mode = 0; mode < 2; mode++) {
            char *in  = (mode == 1) ? zr : zs;
            char *out = (mode == 1) ? zr + (size_t)r * b : m;

            fill_input(in, SCOMM_FLOAT32, SCOMM_SUM, 77 + k, r, 0,
                       c * (size_t)p);
            if (mode == 0) {
                memset(out, 0xa5, b + 1);
            }
            ST_ASSERT_OK(scomm_reduce_scatter(in, out, c, SCOMM_FLOAT32,
                                              SCOMM_SUM, t->comm));
            expect_algo(t, SCOMM_COLL_REDUCESCATTER, "shm_direct", c);
            for (i = 0; i < c; i++) {
                ST_ASSERT_EQ(raw_get(out, i, 4), raw_get(ref, i, 4));
            }
            if (mode == 0) {
                ST_ASSERT_EQ((unsigned char)out[b], 0xa5);
            }
        }
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_REDUCESCATTER, NULL));
    free(m);
    free(ref);
}

/* single_copy where process_vm_readv is off: broadcast and all_gather
 * fall back to the staged "direct", all_to_all to "pairwise"; the data
 * is right and the record says so. (On a communicator across hosts the
 * selector falls back before: expect_algo's rule.) */
static void expect_no_cma(const tctx_t *t, scomm_coll_op_t op,
                          const char *alt)
{
    scomm_coll_record_t rec;

    if (scomm_local_size(t->comm) < t->size) {
        expect_algo(t, op, "single_copy", 1);
        return;
    }
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    ST_ASSERT(strcmp(rec.algo, alt) == 0);
    ST_ASSERT(strcmp(rec.rule_id, "fallback:single_copy") == 0);
    ST_ASSERT(strstr(rec.reason, "process_vm_readv") != NULL);
}

static void test_single_no_cma(const tctx_t *t)
{
    const size_t c = 1021;
    int p = t->size, r = t->rank, q;
    char *in = malloc(c * (size_t)p), *out = malloc(c * (size_t)p + 1);

    ST_ASSERT((in != NULL) && (out != NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, "single_copy"));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, "single_copy"));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLTOALL, "single_copy"));
    memset(out, 0xa5, c + 1);
    if (r == p - 1) {
        st_fill_pattern(out, c, blk_seed(p - 1, 5, 0));
    }
    ST_ASSERT_OK(scomm_broadcast(out, c, SCOMM_UINT8, p - 1, t->comm));
    ST_ASSERT_EQ(st_check_pattern(out, c, blk_seed(p - 1, 5, 0)), SIZE_MAX);
    ST_ASSERT_EQ((unsigned char)out[c], 0xa5);
    expect_no_cma(t, SCOMM_COLL_BROADCAST, "direct");

    st_fill_pattern(in, c, blk_seed(r, 6, 0));
    memset(out, 0xa5, c * (size_t)p + 1);
    ST_ASSERT_OK(scomm_all_gather(in, out, c, SCOMM_UINT8, t->comm));
    for (q = 0; q < p; q++) {
        ST_ASSERT_EQ(st_check_pattern(out + (size_t)q * c, c,
                                      blk_seed(q, 6, 0)), SIZE_MAX);
    }
    expect_no_cma(t, SCOMM_COLL_ALLGATHER, "direct");

    for (q = 0; q < p; q++) {
        st_fill_pattern(in + (size_t)q * (c / (size_t)p),
                        c / (size_t)p, blk_seed(r, q, 7));
    }
    ST_ASSERT_OK(scomm_all_to_all(in, out, c / (size_t)p, SCOMM_UINT8,
                                  t->comm));
    for (q = 0; q < p; q++) {
        ST_ASSERT_EQ(st_check_pattern(out + (size_t)q * (c / (size_t)p),
                                      c / (size_t)p, blk_seed(q, r, 7)),
                     SIZE_MAX);
    }
    expect_no_cma(t, SCOMM_COLL_ALLTOALL, "pairwise");
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_BROADCAST, NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, NULL));
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLTOALL, NULL));
    free(in);
    free(out);
}

static void test_mem(const tctx_t *t)
{
    size_t zbytes = ((1u << 20) + 5) * 8 + 64;
    char *zs = NULL, *zr = NULL, *x = NULL, *y = NULL;
    size_t i, mine = (size_t)t->rank * 4096 + (size_t)t->rank + 1;
    scomm_status_t s;

    test_mem_args(t);

    /* Sizes differ per rank; memory is page-aligned, zeroed, usable. */
    ST_ASSERT_OK(scomm_mem_alloc(t->comm, mine, (void **)&x));
    ST_ASSERT(((uintptr_t)x % 4096) == 0);
    for (i = 0; i < mine; i++) {
        ST_ASSERT_EQ((unsigned char)x[i], 0);
    }
    memset(x, 0x11, mine);
    ST_ASSERT_OK(scomm_mem_alloc(t->comm, 0, (void **)&y));
    ST_ASSERT((y != NULL) && (y != x));

    /* Frees are collective: ranks that free different allocations all
     * get a mismatch, and nothing is freed. Allocations belong to the
     * ranks of one host (the others cannot map them), so on a communicator
     * that spans hosts only rank 0's host would notice: checked on one
     * host only. */
    if ((t->size > 1) && (scomm_local_size(t->comm) == t->size)) {
        s = scomm_mem_free(t->comm, (t->rank == 0) ? y : x);
        ST_ASSERT_STATUS(s, SCOMM_ERR_MISMATCH);
        ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "rank") != NULL);
        ST_ASSERT_EQ((unsigned char)x[mine - 1], 0x11);
    }
    ST_ASSERT_OK(scomm_mem_free(t->comm, x));
    ST_ASSERT_OK(scomm_mem_free(t->comm, y));
    ST_ASSERT_STATUS(scomm_mem_free(t->comm, x), SCOMM_ERR_INVALID_ARG);

    if (!scope_all_dtypes) {
        /* wire: the direct algorithms read shared memory whatever the
         * transport; the full runs sweep them (test_coll.c header). */
        return;
    }
    ST_ASSERT_OK(scomm_mem_alloc(t->comm, zbytes, (void **)&zs));
    ST_ASSERT_OK(scomm_mem_alloc(t->comm, zbytes, (void **)&zr));
    test_mem_allreduce(t, zs, zr, zbytes);
    test_mem_moves(t, zs, zr, zbytes);

    /* A copy of the communicator whose direct state is made with
     * process_vm_readv off (SCOMM_SHM_CMA=0): the buffers are ordinary
     * memory there (allocations belong to t->comm), so every size takes
     * the staged path. */
    if (t->size > 1) {
        scomm_world_t *w = t->comm->world;
        int64_t cma = w->cfg.shm_cma;
        tctx_t sub = *t;

        ST_ASSERT_OK(scomm_comm_split(t->comm, 0, t->rank, &sub.comm));
        w->cfg.shm_cma = 0;
        test_mem_allreduce(&sub, zs, zr, zbytes);
        test_single_no_cma(&sub);
        w->cfg.shm_cma = cma;
        ST_ASSERT_OK(scomm_comm_destroy(sub.comm));
    }
    ST_ASSERT_OK(scomm_mem_free(t->comm, zs));
    ST_ASSERT_OK(scomm_mem_free(t->comm, zr));
}

/* ---- selection, configuration, errors ---------------------------------- */

static void test_selection(const tctx_t *t)
{
    scomm_coll_record_t rec;
    scomm_world_t *w = t->comm->world;
    float x[4] = {1, 2, 3, 4}, y[4];
    int p = t->size;

    /* Defaults. */
    ST_ASSERT_OK(scomm_all_reduce(x, y, 1, SCOMM_FLOAT32, SCOMM_SUM,
                                  t->comm));
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    if ((p > 1) && direct_default(t)) {
        ST_ASSERT(strcmp(rec.algo, "direct") == 0);
        ST_ASSERT(strcmp(rec.rule_id, "allreduce.shm_direct") == 0);
        ST_ASSERT(strstr(rec.reason, "4 B") != NULL);
        ST_ASSERT(strstr(rec.reason, "shm") != NULL);
    } else if (p > 1) {
        ST_ASSERT(strcmp(rec.algo, "recursive_doubling") == 0);
        ST_ASSERT(strcmp(rec.rule_id, "allreduce.small") == 0);
        ST_ASSERT(strstr(rec.reason, "4 B") != NULL);
    } else {
        ST_ASSERT(strcmp(rec.algo, "local") == 0);
    }
    ST_ASSERT_OK(scomm_all_reduce(x, y, 0, SCOMM_FLOAT32, SCOMM_SUM,
                                  t->comm));
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    ST_ASSERT(strcmp(rec.algo, "none") == 0);
    ST_ASSERT_STATUS(scomm_last_selection(t->comm, NULL),
                     SCOMM_ERR_INVALID_ARG);

    /* Forcing an unknown name fails and lists the valid ones. */
    ST_ASSERT_STATUS(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, "bogus"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_last_error(), "rabenseifner") != NULL);

    /* A forced algorithm that cannot run the case falls back. */
    if (p > 1) {
        ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE,
                                           "rabenseifner"));
        ST_ASSERT_OK(scomm_all_reduce(x, y, 1, SCOMM_FLOAT32, SCOMM_SUM,
                                      t->comm));
        ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
        ST_ASSERT(strcmp(rec.algo, direct_default(t) ? "direct" :
                                   "recursive_doubling") == 0);
        ST_ASSERT(strncmp(rec.rule_id, "fallback", 8) == 0);
        ST_ASSERT(strstr(rec.reason, "count 1") != NULL);
        ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    }

    /* SCOMM_COLL_ALLREDUCE_ALGO: invalid name, then a valid one. */
    setenv("SCOMM_COLL_ALLREDUCE_ALGO", "bogus", 1);
    scomm_coll_env_reload();
    memset(y, 0x5a, sizeof(y));
    ST_ASSERT_STATUS(scomm_all_reduce(x, y, 4, SCOMM_FLOAT32, SCOMM_SUM,
                                      t->comm),
                     p > 1 ? SCOMM_ERR_INVALID_ARG : SCOMM_OK);
    if (p > 1) {
        const char *e = scomm_comm_last_error(t->comm);

        ST_ASSERT(strstr(e, "SCOMM_COLL_ALLREDUCE_ALGO='bogus'") != NULL);
        ST_ASSERT(strstr(e, "recursive_doubling") != NULL);
        ST_ASSERT_EQ(((unsigned char *)y)[0], 0x5a);
    }
    setenv("SCOMM_COLL_ALLREDUCE_ALGO", "ring", 1);
    scomm_coll_env_reload();
    ST_ASSERT_OK(scomm_all_reduce(x, y, 4, SCOMM_FLOAT32, SCOMM_SUM,
                                  t->comm));
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    if (p > 1) {
        ST_ASSERT(strcmp(rec.algo, "ring") == 0);
        ST_ASSERT(strcmp(rec.rule_id, "env.op") == 0);
        ST_ASSERT(strstr(rec.reason, "SCOMM_COLL_ALLREDUCE_ALGO") != NULL);
    }
    ST_ASSERT_EQ(y[3], 4.0 * p);
    unsetenv("SCOMM_COLL_ALLREDUCE_ALGO");
    scomm_coll_env_reload();

    /* SCOMM_ALGO (world configuration): applies where the name exists. */
    snprintf(w->cfg.algo, sizeof(w->cfg.algo), "chain");
    ST_ASSERT_OK(scomm_broadcast(x, 4, SCOMM_FLOAT32, 0, t->comm));
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    if (p > 1) {
        ST_ASSERT(strcmp(rec.algo, "chain") == 0);
        ST_ASSERT(strcmp(rec.rule_id, "env.global") == 0);
    }
    ST_ASSERT_OK(scomm_all_reduce(x, y, 4, SCOMM_FLOAT32, SCOMM_SUM,
                                  t->comm));
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    if (p > 1) {
        ST_ASSERT(strstr(rec.reason, "ignored") != NULL);
    }
    snprintf(w->cfg.algo, sizeof(w->cfg.algo), "nosuch");
    ST_ASSERT_STATUS(scomm_all_reduce(x, y, 4, SCOMM_FLOAT32, SCOMM_SUM,
                                      t->comm),
                     p > 1 ? SCOMM_ERR_INVALID_ARG : SCOMM_OK);
    if (p > 1) {
        ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "pairwise") != NULL);
    }
    w->cfg.algo[0] = '\0';

    /* Rules by size and power-of-two-ness. */
    if (p > 1) {
        size_t n = (256u << 10) + 3; /* 1 MiB + 12 B: mid or large */
        float *v = calloc(n, sizeof(float));

        ST_ASSERT(v != NULL);
        ST_ASSERT_OK(scomm_all_reduce(v, v, n, SCOMM_FLOAT32, SCOMM_SUM,
                                      t->comm));
        ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
        ST_ASSERT(strcmp(rec.algo, direct_default(t) ? "direct" :
                                   hier_layout(t) ? "hierarchical" :
                                   ((p & (p - 1)) == 0) ? "rabenseifner" :
                                                          "ring") == 0);
        ST_ASSERT_OK(scomm_all_gather(v, v + (size_t)t->rank * 8, 8,
                                      SCOMM_FLOAT32, t->comm));
        ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
        ST_ASSERT(strcmp(rec.algo, ((p & (p - 1)) == 0) ?
                                       "recursive_doubling" : "ring") == 0);
        free(v);
    }
}

static void test_errors(const tctx_t *t)
{
    char a[64], b[64], guard[64];
    size_t cnt[8] = {0}, dsp[8] = {0};
    const char *e;
    int p = t->size;

    memset(a, 1, sizeof(a));
    memset(b, 7, sizeof(b));
    memset(guard, 7, sizeof(guard));
#define EXPECT_BAD(_call, _word)                                            \
    do {                                                                    \
        ST_ASSERT_STATUS((_call), SCOMM_ERR_INVALID_ARG);                   \
        e = scomm_last_error();                                             \
        if (strstr(e, (_word)) == NULL) {                                   \
            fprintf(stderr, "message '%s' lacks '%s'\n", e, (_word));      \
        }                                                                   \
        ST_ASSERT(strstr(e, (_word)) != NULL);                              \
        ST_ASSERT_EQ(memcmp(b, guard, sizeof(b)), 0);                       \
    } while (0)

    EXPECT_BAD(scomm_all_reduce(NULL, b, 4, SCOMM_INT32, SCOMM_SUM, t->comm),
               "sendbuf");
    EXPECT_BAD(scomm_all_reduce(a, NULL, 4, SCOMM_INT32, SCOMM_SUM, t->comm),
               "recvbuf");
    EXPECT_BAD(scomm_all_reduce(a, b, 4, (scomm_dtype_t)99, SCOMM_SUM,
                                t->comm),
               "dtype");
    EXPECT_BAD(scomm_all_reduce(a, b, 4, SCOMM_INT32, (scomm_redop_t)-1,
                                t->comm),
               "op");
    EXPECT_BAD(scomm_all_reduce(a, b, SIZE_MAX / 2, SCOMM_INT32, SCOMM_SUM,
                                t->comm),
               "overflow");
    EXPECT_BAD(scomm_all_reduce(b + 4, b, 4, SCOMM_INT32, SCOMM_SUM,
                                t->comm),
               "overlap");
    EXPECT_BAD(scomm_all_gather(a, b, SIZE_MAX / 4, SCOMM_INT32, t->comm),
               "overflow");
    if (p > 1) {
        /* sendbuf == recvbuf is in place only on rank 0. */
        if (t->rank != 0) {
            EXPECT_BAD(scomm_all_gather(b, b, 2, SCOMM_INT32, t->comm),
                       "overlap");
        }
        EXPECT_BAD(scomm_reduce_scatter(b, b + 4, 2, SCOMM_INT32, SCOMM_MAX,
                                        t->comm),
                   "overlap");
    }
    EXPECT_BAD(scomm_broadcast(b, 4, SCOMM_INT32, p, t->comm), "root");
    EXPECT_BAD(scomm_broadcast(b, 4, SCOMM_INT32, -1, t->comm), "root");
    EXPECT_BAD(scomm_broadcast(NULL, 4, SCOMM_INT32, 0, t->comm), "buf");
    EXPECT_BAD(scomm_reduce(a, NULL, 4, SCOMM_INT32, SCOMM_SUM, t->rank,
                            t->comm),
               "recvbuf");
    EXPECT_BAD(scomm_reduce(a, b, 4, SCOMM_FLOAT32, (scomm_redop_t)17, 0,
                            t->comm),
               "op");
    EXPECT_BAD(scomm_all_to_all(b, b + 1, 2, SCOMM_UINT8, t->comm),
               "overlap");
    EXPECT_BAD(scomm_all_to_allv(a, NULL, dsp, b, cnt, dsp, SCOMM_UINT8,
                                 t->comm),
               "sendcounts");
    cnt[0] = SIZE_MAX;
    EXPECT_BAD(scomm_all_to_allv(a, cnt, dsp, b, cnt, dsp, SCOMM_UINT8,
                                 t->comm),
               "overflows");
    cnt[0] = 0;
    if (p > 1) {
        size_t rc2[8] = {4, 4, 4, 4, 4, 4, 4, 4};
        size_t rd2[8] = {0, 2, 8, 12, 16, 20, 24, 28};

        EXPECT_BAD(scomm_all_to_allv(a, cnt, dsp, b, rc2, rd2, SCOMM_UINT8,
                                     t->comm),
                   "overlap");
    }
    EXPECT_BAD(scomm_gather(a, NULL, 4, SCOMM_UINT8, t->rank, t->comm),
               "recvbuf");
    EXPECT_BAD(scomm_scatter(NULL, b, 4, SCOMM_UINT8, t->rank, t->comm),
               "sendbuf");
    EXPECT_BAD(scomm_gather(a, b, 4, SCOMM_UINT8, p + 3, t->comm), "root");
#undef EXPECT_BAD
    /* Nothing moved: the communicator still works. */
    ST_ASSERT_OK(scomm_all_reduce(a, b, 16, SCOMM_INT32, SCOMM_SUM, t->comm));
    ST_ASSERT_EQ(((int32_t *)b)[15], 0x01010101 * p);
}

static void test_check_mode(const tctx_t *t)
{
    scomm_world_t *w = t->comm->world;
    int32_t v[16], out[16];
    size_t sc[64], sd[64], rc[64], rd[64];
    int q, p = t->size;

    if (p < 2) {
        return;
    }
    for (q = 0; q < 16; q++) {
        v[q] = 1;
    }
    w->cfg.check = 1;
    /* Rank 1 passes a different count: every rank sees the mismatch. */
    ST_ASSERT_STATUS(scomm_all_reduce(v, out, (t->rank == 1) ? 8 : 7,
                                      SCOMM_INT32, SCOMM_SUM, t->comm),
                     SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "rank 1") != NULL);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "count") != NULL);
    /* A different root on the last rank. */
    ST_ASSERT_STATUS(scomm_broadcast(v, 8, SCOMM_INT32,
                                     (t->rank == p - 1) ? 1 : 0, t->comm),
                     SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "root") != NULL);
    /* all_to_allv: rank 0 expects one element too many from rank 1. */
    for (q = 0; q < p; q++) {
        sc[q] = 1;
        rc[q] = (t->rank == 0 && q == 1) ? 2 : 1;
        sd[q] = rd[q] = (size_t)q * 2;
    }
    ST_ASSERT_STATUS(scomm_all_to_allv(v, sc, sd, out, rc, rd, SCOMM_INT32,
                                       t->comm),
                     SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_comm_last_error(t->comm), "recvcounts[1]") !=
              NULL);
    /* Matching arguments pass, data intact. */
    ST_ASSERT_OK(scomm_all_reduce(v, out, 8, SCOMM_INT32, SCOMM_SUM,
                                  t->comm));
    ST_ASSERT_EQ(out[7], p);
    rc[1] = 1;
    ST_ASSERT_OK(scomm_all_to_allv(v, sc, sd, out, sc, sd, SCOMM_INT32,
                                   t->comm));
    w->cfg.check = 0;
}

static void test_split(const tctx_t *t)
{
    scomm_comm_t *sub = NULL;
    int64_t v[5], want;
    int i, a, ssize;

    ST_ASSERT_OK(scomm_comm_split(t->comm, t->rank % 2, t->rank, &sub));
    ST_ASSERT(sub != NULL);
    ssize = scomm_size(sub);
    for (a = 0; a < nalgos(SCOMM_COLL_ALLREDUCE); a++) {
        (void)force(SCOMM_COLL_ALLREDUCE, a);
        for (i = 0; i < 5; i++) {
            v[i] = t->rank * 10 + i;
        }
        ST_ASSERT_OK(scomm_all_reduce(v, v, 5, SCOMM_INT64, SCOMM_SUM, sub));
        /* Ranks of this parity: rank%2, rank%2 + 2, ... */
        want = 0;
        for (i = t->rank % 2; i < t->size; i += 2) {
            want += i * 10 + 4;
        }
        ST_ASSERT_EQ(v[4], want);
        (void)ssize;
    }
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLREDUCE, NULL));
    ST_ASSERT_OK(scomm_comm_destroy(sub));
}

/*
 * TEST_COLL_HOSTS="0,1,0,1": rank r plays host <entry r> (SCOMM_HOST_ID),
 * so one machine emulates a multi-host layout: shm between ranks of one
 * host, tcp over loopback between hosts. Any placement and any rank
 * counts per host can be written down.
 */
static void fake_host(int rank)
{
    const char *v = getenv("TEST_COLL_HOSTS");
    char id[32];
    int r = 0;

    if ((v == NULL) || (*v == '\0')) {
        return;
    }
    while ((r < rank) && (v != NULL)) {
        v = strchr(v, ',');
        v = (v != NULL) ? v + 1 : NULL;
        r++;
    }
    ST_ASSERT(v != NULL); /* one entry per rank */
    snprintf(id, sizeof(id), "fakehost%d", atoi(v));
    ST_ASSERT(setenv("SCOMM_HOST_ID", id, 1) == 0);
}

/*
 * The pipelined staging of every fixed-size collective under the device
 * hint (ST_BUF=device, src/backend/stage.c): per-rank blocks of 3 chunks
 * and 5 elements, of exactly 2 chunks, and of 1 chunk and 1 element
 * (SCOMM_DEVICE_CHUNK, 64k in ctest), 1- and 8-byte elements, in place and
 * not, every root, every algorithm forced at the first size (so all_gather,
 * broadcast and all_to_all go around CUDA IPC, which takes them under the
 * hint on one host otherwise), checked against the test's own reference
 * and patterns, bytes past the output untouched; the selection record
 * names the chunks. The counts of the sections above stop at 1021
 * elements for reduce and reduce_scatter, below one chunk.
 */
static size_t dev_chunk_bytes(void)
{
    const char *v = getenv("SCOMM_DEVICE_CHUNK");
    char *end;
    size_t n;

    if ((v == NULL) || (*v == '\0')) {
        return 4u << 20;
    }
    n = (size_t)strtoull(v, &end, 10);
    n <<= (*end == 'k') ? 10 : (*end == 'm') ? 20 : (*end == 'g') ? 30 : 0;
    return n;
}

typedef struct {
    scomm_coll_op_t op;
    int             root;    /* rooted ops */
    int             inplace;
    int             algo;    /* 0: auto, else the table's a - 1 */
    scomm_dtype_t   dt;
    size_t          c;       /* count (per rank for the block ops) */
    uint64_t        seed;
} chunk_case_t;

/* Run one case on fresh buffers and check it. */
static void chunk_case(const tctx_t *t, const chunk_case_t *k, size_t cb)
{
    size_t es = scomm_dtype_size(k->dt), b = k->c * es, q;
    size_t p = (size_t)t->size, r = (size_t)t->rank, pb = b * p;
    scomm_redop_t rop = (k->dt == SCOMM_UINT8) ? SCOMM_SUM : SCOMM_MAX;
    char *send = malloc(pb + 1), *recv = malloc(pb + 1);
    char *ref = malloc(pb + 1), *out = recv, want[96];
    const char *name = force(k->op, k->algo);
    int me = (k->root == t->rank);
    scomm_coll_record_t rec;
    scomm_status_t s = SCOMM_OK;

    ST_ASSERT((send != NULL) && (recv != NULL) && (ref != NULL));
    memset(recv, 0xa5, pb + 1);
    memset(send, 0x5a, pb + 1);
    dbg_seed  = k->seed;
    dbg_op    = (int)rop;
    dbg_first = 0;
    switch (k->op) {
    case SCOMM_COLL_ALLREDUCE:
    case SCOMM_COLL_REDUCE:
        fill_input(send, k->dt, rop, k->seed, t->rank, 0, k->c);
        fill_ref(ref, k->dt, rop, k->seed, t->size, 0, k->c);
        out = k->inplace ? send : recv;
        if (k->op == SCOMM_COLL_ALLREDUCE) {
            s = st_all_reduce(send, out, k->c, k->dt, rop, t->comm);
        } else {
            s = st_reduce(send, me ? out : NULL, k->c, k->dt, rop, k->root,
                          t->comm);
        }
        if ((k->op == SCOMM_COLL_ALLREDUCE) || me) {
            expect_same(t, "chunked", out, ref, k->c, k->dt, name,
                        k->inplace);
        } else { /* a non-root's input stays */
            memcpy(ref, send, b);
            fill_input(send, k->dt, rop, k->seed, t->rank, 0, k->c);
            ST_ASSERT_EQ(memcmp(ref, send, b), 0);
        }
        break;
    case SCOMM_COLL_REDUCESCATTER:
        fill_input(send, k->dt, rop, k->seed, t->rank, 0, k->c * p);
        fill_ref(ref, k->dt, rop, k->seed, t->size, r * k->c, k->c);
        dbg_first = r * k->c;
        out = k->inplace ? send + r * b : recv;
        s = st_reduce_scatter(send, out, k->c, k->dt, rop, t->comm);
        expect_same(t, "chunked", out, ref, k->c, k->dt, name, k->inplace);
        break;
    case SCOMM_COLL_BROADCAST:
        out = send;
        if (me) {
            st_fill_pattern(send, b, blk_seed(k->root, 1, k->seed));
        }
        s = st_broadcast(send, k->c, k->dt, k->root, t->comm);
        ST_ASSERT_EQ(st_check_pattern(send, b, blk_seed(k->root, 1, k->seed)),
                     SIZE_MAX);
        break;
    case SCOMM_COLL_ALLGATHER:
    case SCOMM_COLL_GATHER: {
        int ip = k->inplace && ((k->op == SCOMM_COLL_ALLGATHER) || me);
        char *src = ip ? recv + r * b : send;

        st_fill_pattern(src, b, blk_seed(t->rank, 2, k->seed));
        if (k->op == SCOMM_COLL_ALLGATHER) {
            s = st_all_gather(src, recv, k->c, k->dt, t->comm);
        } else {
            s = st_gather(src, me ? recv : NULL, k->c, k->dt, k->root,
                          t->comm);
        }
        for (q = 0; (q < p) && ((k->op == SCOMM_COLL_ALLGATHER) || me); q++) {
            ST_ASSERT_EQ(st_check_pattern(recv + q * b, b,
                                          blk_seed((int)q, 2, k->seed)),
                         SIZE_MAX);
        }
        break;
    }
    case SCOMM_COLL_SCATTER: {
        int ip = k->inplace && me;

        for (q = 0; q < p; q++) {
            st_fill_pattern(send + q * b, b, blk_seed(t->rank, (int)q,
                                                      k->seed));
        }
        out = ip ? send + r * b : recv;
        s   = st_scatter(me ? send : NULL, out, k->c, k->dt, k->root,
                         t->comm);
        ST_ASSERT_EQ(st_check_pattern(out, b, blk_seed(k->root, t->rank,
                                                       k->seed)),
                     SIZE_MAX);
        break;
    }
    case SCOMM_COLL_ALLTOALL:
        for (q = 0; q < p; q++) {
            st_fill_pattern(send + q * b, b, blk_seed(t->rank, (int)q,
                                                      k->seed));
        }
        out = k->inplace ? send : recv;
        s   = st_all_to_all(send, out, k->c, k->dt, t->comm);
        for (q = 0; q < p; q++) {
            ST_ASSERT_EQ(st_check_pattern(out + q * b, b,
                                          blk_seed((int)q, t->rank, k->seed)),
                         SIZE_MAX);
        }
        break;
    default:
        ST_ASSERT(0);
    }
    ST_ASSERT_OK(s);
    /* nothing past the output (the block ops' p blocks, the others' one) */
    if (out == recv) {
        ST_ASSERT_EQ((unsigned char)recv[(k->op == SCOMM_COLL_ALLGATHER) ||
                                         (k->op == SCOMM_COLL_GATHER) ||
                                         (k->op == SCOMM_COLL_ALLTOALL)
                                             ? pb : b],
                     0xa5);
    }
    expect_algo(t, k->op, name, k->c);
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    snprintf(want, sizeof(want), "path staged (pinned host, 2 x %zu KiB "
             "chunks)", cb >> 10);
    if ((strncmp(rec.reason, want, strlen(want)) != 0) &&
        ((name != NULL) || (strncmp(rec.reason, "path cuda_ipc", 13) != 0))) {
        fprintf(stderr, "rank %d: %s count %zu: record \"%s\", expected "
                "\"%s\"\n", t->rank, scomm_coll_op_name(k->op), k->c,
                rec.reason, want);
        ST_ASSERT(0);
    }
    ST_ASSERT_OK(scomm_coll_force_algo(k->op, NULL));
    free(send);
    free(recv);
    free(ref);
}

static void test_dev_chunks(const tctx_t *t)
{
    static const scomm_coll_op_t ops[] = {
        SCOMM_COLL_ALLREDUCE, SCOMM_COLL_BROADCAST, SCOMM_COLL_REDUCE,
        SCOMM_COLL_ALLGATHER, SCOMM_COLL_REDUCESCATTER, SCOMM_COLL_ALLTOALL,
        SCOMM_COLL_GATHER, SCOMM_COLL_SCATTER};
    static const scomm_dtype_t dts[] = {SCOMM_UINT8, SCOMM_FLOAT64};
    size_t cb = dev_chunk_bytes(), o;
    chunk_case_t k;
    int d, z, a, root, ip;

    if ((st_dev.mode != 1) || (cb > (1u << 20))) {
        return; /* no hint, or chunks too large to span here */
    }
    memset(&k, 0, sizeof(k));
    for (o = 0; o < SCOMM_ARRAY_SIZE(ops); o++) {
        int rooted = (ops[o] == SCOMM_COLL_BROADCAST) ||
                     (ops[o] == SCOMM_COLL_REDUCE) ||
                     (ops[o] == SCOMM_COLL_GATHER) ||
                     (ops[o] == SCOMM_COLL_SCATTER);

        k.op = ops[o];
        for (d = 0; d < (int)SCOMM_ARRAY_SIZE(dts); d++) {
            size_t es = scomm_dtype_size(dts[d]);

            k.dt = dts[d];
            for (z = 0; z < 3; z++) {
                k.c = (z == 0) ? 3 * cb / es + 5
                      : (z == 1) ? 2 * cb / es : cb / es + 1;
                for (a = 0; a < ((z == 0) ? nalgos(k.op) : 1); a++) {
                    for (root = 0; root < (rooted ? t->size : 1); root++) {
                        for (ip = 0; ip < 2; ip++) {
                            k.algo    = a;
                            k.root    = root;
                            k.inplace = ip;
                            k.seed    = 31000u + o * 1000u + (uint64_t)d * 100u +
                                        (uint64_t)z * 10u + (uint64_t)ip;
                            chunk_case(t, &k, cb);
                        }
                    }
                }
            }
        }
    }
}

/* ST_BUF=device|mixed (st_dev.h): the data sections on device buffers of
 * the strict fake, every algorithm forced in turn as on host buffers, and
 * the selection record naming the staged path. Errors, SCOMM_CHECK,
 * scomm_mem_alloc, skew and peer loss are about host-side machinery the
 * staging does not change: they run in host mode only. */
static void run_device(const tctx_t *t, const size_t *counts, int n)
{
    scomm_coll_record_t rec;
    double t0 = now_s();
    float x[4] = {1, 2, 3, 4}, y[4];

    ST_ASSERT_OK(st_all_reduce(x, y, 4, SCOMM_FLOAT32, SCOMM_SUM, t->comm));
    ST_ASSERT_EQ(y[3], 4.0f * (float)t->size);
    ST_ASSERT_OK(scomm_last_selection(t->comm, &rec));
    if (st_dev_on(t->comm)) {
        ST_ASSERT(strncmp(rec.reason, "path staged", 11) == 0);
    } else {
        ST_ASSERT(strncmp(rec.reason, "path staged", 11) != 0);
    }
    test_allreduce_exact(t, counts, n);
    section_done(t, "device: all_reduce dtype x op x algo", t0);
    t0 = now_s();
    test_reduce_scatter_exact(t, counts, n - 1);
    test_reduce_exact(t, counts, n - 1);
    section_done(t, "device: reduce_scatter, reduce", t0);
    t0 = now_s();
    test_all_gather(t, counts, n);
    test_broadcast(t, counts, n);
    test_all_to_all(t, counts, n);
    test_all_to_allv(t);
    test_gather_scatter(t, counts, n);
    section_done(t, "device: data movement", t0);
    t0 = now_s();
    test_allreduce_random(t);
    test_large(t, getenv("ST_DEV_HUGE") != NULL);
    section_done(t, "device: random, 1 Mi (64 Mi + 7 with ST_DEV_HUGE)", t0);
    t0 = now_s();
    test_dev_chunks(t);
    section_done(t, "device: every collective over chunks (hint)", t0);
}

static int run(int rank, int size, void *arg)
{
    tctx_t t;
    scomm_coll_record_t rec;
    double t0, tall = now_s();
    size_t counts[8];
    int n = 0;

    (void)arg;
    memset(&t, 0, sizeof(t));
    st_dev_init();
    fake_host(rank);
    ST_ASSERT_OK(scomm_init_from_env(&t.comm));
    t.rank = rank;
    t.size = size;
    ST_ASSERT_OK(scomm_last_selection(t.comm, &rec));
    ST_ASSERT(strcmp(rec.algo, "none") == 0);

    counts[n++] = 0;
    counts[n++] = 1;
    if (size - 1 > 1) {
        counts[n++] = (size_t)size - 1;
    }
    counts[n++] = 7;
    counts[n++] = 13;
    counts[n++] = 1021;
    counts[n++] = 65536 + 3;

    if (rank == 0) {
        printf("test_coll: %d ranks over %s, %s buffers, scope %s\n", size,
               st_getenv_default("SCOMM_TRANSPORTS", "default"),
               st_dev_mode_name(),
               st_getenv_default("TEST_COLL_SCOPE", "full"));
    }
    if (st_dev.mode != 0) {
        run_device(&t, counts, n);
        ST_ASSERT_OK(scomm_comm_destroy(t.comm));
        section_done(&t, "total", tall);
        return 0;
    }
    t0 = now_s();
    test_selection(&t);
    test_errors(&t);
    test_check_mode(&t);
    test_split(&t);
    section_done(&t, "selection, errors, check, split", t0);
    t0 = now_s();
    test_mem(&t);
    section_done(&t, "mem_alloc, direct in place", t0);
    t0 = now_s();
    test_allreduce_exact(&t, counts, n);
    section_done(&t, "all_reduce dtype x op x algo", t0);
    t0 = now_s();
    test_reduce_scatter_exact(&t, counts, n - 1);
    section_done(&t, "reduce_scatter dtype x op x algo", t0);
    t0 = now_s();
    test_hier_segments(&t);
    section_done(&t, "hierarchical segments", t0);
    t0 = now_s();
    test_reduce_exact(&t, counts, n - 1);
    section_done(&t, "reduce dtype x op x root", t0);
    t0 = now_s();
    test_all_gather(&t, counts, n);
    test_broadcast(&t, counts, n);
    test_all_to_all(&t, counts, n);
    test_tiny_streams(&t);
    test_all_to_allv(&t);
    test_gather_scatter(&t, counts, n);
    section_done(&t, "data movement", t0);
    t0 = now_s();
    test_allreduce_random(&t);
    section_done(&t, "random floats, NaN, cross-rank bits", t0);
    t0 = now_s();
    test_large(&t, scope_huge);
    section_done(&t, scope_huge ? "1 Mi and the large all_reduces" : "1 Mi",
                 t0);
    t0 = now_s();
    test_skew(&t);
    section_done(&t, "skewed arrival", t0);
    t0 = now_s();
    test_peer_loss(&t);
    section_done(&t, "peer loss", t0);
    ST_ASSERT_OK(scomm_comm_destroy(t.comm));
    section_done(&t, "total", tall);
    return 0;
}

/*
 * Faults inside the direct algorithm, each in a world of its own (`test_coll
 * --direct-fault KIND [NP [OP]]`; the fault fails the world). The last
 * rank, instead of joining a forced "direct" all_reduce of 4 MiB (OP
 * broadcast, all_gather, all_to_all: a forced "single_copy" one of 4 MiB
 * in all),
 *   absent  sleeps 4 s, past the others' 2 s timeout,
 *   stop    SIGSTOPs itself,
 *   kill    SIGKILLs itself,
 * while the others wait inside the algorithm. They must return
 * SCOMM_ERR_TIMED_OUT (absent, stop: within about the timeout) or
 * SCOMM_ERR_PEER_LOST (kill: within 1 s), naming that rank, never hang.
 */
typedef struct fault_arg {
    const char     *kind;
    scomm_coll_op_t op;
} fault_arg_t;

/* The faulted call: op over n floats of buf (4 MiB in all); the last
 * rank is the broadcast's root. */
static scomm_status_t fault_call(scomm_coll_op_t op, float *buf, size_t n,
                                 scomm_comm_t *comm)
{
    size_t per = n / (size_t)scomm_size(comm);

    switch (op) {
    case SCOMM_COLL_BROADCAST:
        /* From the victim: every other rank waits for it. */
        return scomm_broadcast(buf, n, SCOMM_FLOAT32, scomm_size(comm) - 1,
                               comm);
    case SCOMM_COLL_ALLGATHER:
        return scomm_all_gather(buf + (size_t)scomm_rank(comm) * per,
                                buf, per, SCOMM_FLOAT32, comm);
    case SCOMM_COLL_ALLTOALL:
        return scomm_all_to_all(buf, buf, per, SCOMM_FLOAT32, comm);
    default:
        return scomm_all_reduce(buf, buf, n, SCOMM_FLOAT32, SCOMM_SUM,
                                comm);
    }
}

static int direct_fault_rank(int rank, int size, void *arg)
{
    const fault_arg_t *fa = arg;
    const char *kind = fa->kind;
    const size_t n = 1u << 20;
    int victim = size - 1;
    scomm_comm_t *comm = NULL;
    scomm_status_t s, want;
    char name[32];
    float *buf;
    double t0, took, limit;

    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 2000));
    ST_ASSERT_OK(scomm_coll_force_algo(fa->op,
                                       (fa->op == SCOMM_COLL_ALLREDUCE) ?
                                       "direct" : "single_copy"));
    buf = calloc(n, sizeof(float));
    ST_ASSERT(buf != NULL);
    /* Once healthy: the arena exists, every rank went through it. */
    ST_ASSERT_OK(fault_call(fa->op, buf, n, comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    if (rank == victim) {
        /* Leaving the barrier first does not mean the others have: give
         * them time to enter the all_reduce. */
        usleep(200000);
        fflush(NULL);
        if (strcmp(kind, "stop") == 0) {
            raise(SIGSTOP);
        } else if (strcmp(kind, "kill") == 0) {
            raise(SIGKILL);
        }
        usleep(3800000);
        /* The others gave up and told us: fail at once, not hang. */
        t0 = now_s();
        s  = fault_call(fa->op, buf, n, comm);
        ST_ASSERT(SCOMM_IS_ERR(s));
        ST_ASSERT(now_s() - t0 < 3.0);
        ST_ASSERT_OK(scomm_comm_destroy(comm));
        free(buf);
        return 0;
    }
    want  = (strcmp(kind, "kill") == 0) ? SCOMM_ERR_PEER_LOST :
                                          SCOMM_ERR_TIMED_OUT;
    limit = (strcmp(kind, "kill") == 0) ? 1.5 : 3.5;
    t0    = now_s();
    s     = fault_call(fa->op, buf, n, comm);
    took  = now_s() - t0;
    fprintf(stderr, "rank %d: %s after %.3f s: %s\n", rank,
            scomm_status_name(s), took, scomm_comm_last_error(comm));
    ST_ASSERT_STATUS(s, want);
    snprintf(name, sizeof(name), "rank %d", victim);
    ST_ASSERT(strstr(scomm_comm_last_error(comm), name) != NULL);
    ST_ASSERT(took < limit);
    /* Later calls fail at once; destroy is always safe. */
    t0 = now_s();
    ST_ASSERT(SCOMM_IS_ERR(fault_call(fa->op, buf, n, comm)));
    ST_ASSERT(now_s() - t0 < 0.5);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    free(buf);
    return 0;
}

/*
 * --tiny-mismatch reduce|gather (a world of its own, 3 ranks, no
 * SCOMM_CHECK): once the direct state exists, rank 1 calls all_reduce
 * where the others call reduce_scatter of the same total (reduce), or
 * all_to_all where the others call all_gather (gather). The one-line
 * paths share their lines between the two ops; every rank must get
 * SCOMM_ERR_MISMATCH naming the disagreement within the timeout, not a
 * wrong result and not a hang.
 */
static int tiny_mismatch_rank(int rank, int size, void *arg)
{
    const char *kind = arg;
    scomm_comm_t *comm = NULL;
    uint64_t in[3] = {1, 2, 3}, out[3] = {0, 0, 0};
    float *big;
    scomm_status_t s;
    double t0;

    (void)size;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 5000));
    big = calloc(1u << 18, sizeof(float));
    ST_ASSERT(big != NULL);
    /* A direct all_reduce of 1 MiB makes the state; one healthy tiny
     * call of each kind follows. */
    ST_ASSERT_OK(scomm_all_reduce(big, big, 1u << 18, SCOMM_FLOAT32,
                                  SCOMM_SUM, comm));
    ST_ASSERT_OK(scomm_reduce_scatter(in, out, 1, SCOMM_UINT64, SCOMM_SUM,
                                      comm));
    ST_ASSERT_EQ(out[0], (uint64_t)(3 * in[rank]));
    ST_ASSERT_OK(scomm_all_gather(in + rank, out, 1, SCOMM_UINT64, comm));
    ST_ASSERT_EQ(out[2], in[2]);
    t0 = now_s();
    if (strcmp(kind, "reduce") == 0) {
        s = (rank == 1) ? scomm_all_reduce(in, out, 3, SCOMM_UINT64,
                                           SCOMM_SUM, comm)
                        : scomm_reduce_scatter(in, out, 1, SCOMM_UINT64,
                                               SCOMM_SUM, comm);
    } else {
        s = (rank == 1) ? scomm_all_to_all(in, out, 1, SCOMM_UINT64, comm)
                        : scomm_all_gather(in + rank, out, 1, SCOMM_UINT64,
                                           comm);
    }
    ST_ASSERT_STATUS(s, SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_comm_last_error(comm), "mismatch") != NULL);
    ST_ASSERT(now_s() - t0 < 4.0);
    /* Stay until the others have seen the mismatch too: a rank that
     * exits at once is a dead peer to one still reading the lines. */
    usleep(500000);
    (void)scomm_comm_abort(comm);
    free(big);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc == 3) && (strcmp(argv[1], "--tiny-mismatch") == 0)) {
        if ((strcmp(argv[2], "reduce") != 0) &&
            (strcmp(argv[2], "gather") != 0)) {
            fprintf(stderr, "usage: %s --tiny-mismatch reduce|gather\n",
                    argv[0]);
            return 2;
        }
        return st_run_ranks(3, tiny_mismatch_rank, argv[2], 60) == 0 ?
               (printf("1 passed, 0 failed\n"), 0) : 1;
    }
    if ((argc >= 3) && (strcmp(argv[1], "--direct-fault") == 0)) {
        int np = (argc >= 4) ? atoi(argv[3]) : 3;
        fault_arg_t fa = {argv[2], SCOMM_COLL_ALLREDUCE};
        int rc;

        if ((argc >= 5) && (strcmp(argv[4], "broadcast") == 0)) {
            fa.op = SCOMM_COLL_BROADCAST;
        } else if ((argc >= 5) && (strcmp(argv[4], "all_gather") == 0)) {
            fa.op = SCOMM_COLL_ALLGATHER;
        } else if ((argc >= 5) && (strcmp(argv[4], "all_to_all") == 0)) {
            fa.op = SCOMM_COLL_ALLTOALL;
        } else if ((argc >= 5) && (strcmp(argv[4], "all_reduce") != 0)) {
            np = 0;
        }
        if ((np < 2) || (np > 16)) {
            fprintf(stderr, "usage: %s --direct-fault absent|stop|kill "
                    "[NP 2..16 [all_reduce|broadcast|all_gather|"
                    "all_to_all]]\n", argv[0]);
            return 2;
        }
        rc = st_run_ranks_victim(np, direct_fault_rank, &fa, 60, np - 1);
        if (rc == 0) {
            printf("1 passed, 0 failed\n");
        }
        return rc;
    }
    scope_init();
    return st_main_ranks(argc, argv, run, NULL);
}
