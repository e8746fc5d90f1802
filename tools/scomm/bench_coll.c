/*
 * bench_coll.c - `scomm bench <op|all>`: the collectives measured the way
 * nccl-tests and ../shared/anchors/mpi_coll_bench.c measure them, so the
 * numbers compare one to one.
 *
 * Sizes (nccl-tests): all_reduce, broadcast, reduce: the buffer;
 * all_gather, gather: the total output; reduce_scatter, scatter: the total
 * input; all_to_all: the total input of one rank. A requested size is
 * rounded down to a whole number of elements per rank (at least one).
 *
 * Timing, per size: warmup calls, then either -n calls or, by default, a
 * calibration batch grown until it lasts >= min(target/5, 50 ms) and then
 * about --target seconds of calls (rank 0 decides, every rank follows).
 * Every call is timestamped on every rank; the per-call time is the
 * maximum over ranks (reduced to rank 0 after the size), and
 *   t_mean   = the slowest rank's total / iterations (nccl-tests "time"),
 *   t_median, t_min, t_max of the per-call maxima,
 *   algbw    = bytes / t_mean (1 GB = 1e9 B),
 *   busbw    = algbw * factor: all_reduce 2(n-1)/n; all_gather,
 *              reduce_scatter, all_to_all, gather, scatter (n-1)/n;
 *              broadcast, reduce 1.
 * Without --check the calls run back to back. With --check every timed
 * call's output is first poisoned (alternating two byte patterns), the
 * ranks meet in a barrier, the call alone is timed, and every element of
 * the output is compared with a reference computed locally: inputs are a
 * function of (rank, index, seed), and reductions use small integers (or
 * powers of two for prod) chosen per dtype and rank count so that every
 * partial result is exact and the result is bit-exact whatever the order
 * of combination.
 *
 * Output (rank 0): a table on stdout, a progress line on stderr when it is
 * a terminal, and per operation <op>_ws<N>_<YYYYmmdd_HHMMSS>.{json,csv,md}
 * in --out; --csv/--json/--md FILE also write every record of the run to
 * one file; --plot renders busbw and latency curves with gnuplot, with the
 * peers of --peer-csv files (the anchors' CSV format) overlaid.
 */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_coll.h"
#include "cli.h"
#include "coll/coll.h"
#include "scomm.h"

extern char **environ;

#define BC_MAX_SIZES   64
#define BC_MAX_PEERS   16
#define BC_MAX_ITERS   1000000L
#define BC_MIN_ITERS   5
#define BC_SEED        0x5c0ffee5eedull
#define BC_POISON_A    0xa5
#define BC_POISON_B    0x5a

/* ---- operations ---------------------------------------------------------- */

typedef enum {
    BC_ALLREDUCE = 0,
    BC_ALLGATHER,
    BC_REDUCESCATTER,
    BC_BROADCAST,
    BC_REDUCE,
    BC_ALLTOALL,
    BC_GATHER,
    BC_SCATTER,
    BC_BARRIER,
    BC_NOPS
} bc_op_t;

/* Where the size of an op's buffers comes from (see bc_geometry). */
enum { BC_GEO_VECTOR, BC_GEO_OUT_TOTAL, BC_GEO_IN_TOTAL, BC_GEO_NONE };

static const struct bc_opinfo {
    const char *name;   /* "all_reduce": ours, and the CSV op_type */
    const char *alias;  /* the anchors' name, or NULL */
    int         coll;   /* scomm_coll_op_t, or -1 (barrier) */
    int         reduces;
    int         rooted;
    int         geo;
} bc_ops[BC_NOPS] = {
    [BC_ALLREDUCE]     = {"all_reduce", "allreduce", SCOMM_COLL_ALLREDUCE,
                          1, 0, BC_GEO_VECTOR},
    [BC_ALLGATHER]     = {"all_gather", "allgather", SCOMM_COLL_ALLGATHER,
                          0, 0, BC_GEO_OUT_TOTAL},
    [BC_REDUCESCATTER] = {"reduce_scatter", "reducescatter",
                          SCOMM_COLL_REDUCESCATTER, 1, 0, BC_GEO_IN_TOTAL},
    [BC_BROADCAST]     = {"broadcast", "bcast", SCOMM_COLL_BROADCAST,
                          0, 1, BC_GEO_VECTOR},
    [BC_REDUCE]        = {"reduce", NULL, SCOMM_COLL_REDUCE, 1, 1,
                          BC_GEO_VECTOR},
    [BC_ALLTOALL]      = {"all_to_all", "alltoall", SCOMM_COLL_ALLTOALL,
                          0, 0, BC_GEO_IN_TOTAL},
    [BC_GATHER]        = {"gather", NULL, SCOMM_COLL_GATHER, 0, 1,
                          BC_GEO_OUT_TOTAL},
    [BC_SCATTER]       = {"scatter", NULL, SCOMM_COLL_SCATTER, 0, 1,
                          BC_GEO_IN_TOTAL},
    [BC_BARRIER]       = {"barrier", NULL, -1, 0, 0, BC_GEO_NONE},
};

/* SCOMM_COLL_<OP>_ALGO of an op, or NULL. */
static const char *bc_algo_env(int op)
{
    static const char *const env[BC_NOPS] = {
        [BC_ALLREDUCE]     = "SCOMM_COLL_ALLREDUCE_ALGO",
        [BC_ALLGATHER]     = "SCOMM_COLL_ALLGATHER_ALGO",
        [BC_REDUCESCATTER] = "SCOMM_COLL_REDUCESCATTER_ALGO",
        [BC_BROADCAST]     = "SCOMM_COLL_BROADCAST_ALGO",
        [BC_REDUCE]        = "SCOMM_COLL_REDUCE_ALGO",
        [BC_ALLTOALL]      = "SCOMM_COLL_ALLTOALL_ALGO",
        [BC_GATHER]        = "SCOMM_COLL_GATHER_ALGO",
        [BC_SCATTER]       = "SCOMM_COLL_SCATTER_ALGO",
        [BC_BARRIER]       = NULL,
    };

    return env[op];
}

/* Our op index for a name or an anchors' alias ("allreduce"), or -1. */
static int bc_op_find(const char *name, size_t len)
{
    int i;

    for (i = 0; i < BC_NOPS; i++) {
        if (((strlen(bc_ops[i].name) == len) &&
             (strncmp(bc_ops[i].name, name, len) == 0)) ||
            ((bc_ops[i].alias != NULL) && (strlen(bc_ops[i].alias) == len) &&
             (strncmp(bc_ops[i].alias, name, len) == 0))) {
            return i;
        }
    }
    return -1;
}

static double bc_busfactor(int op, int n)
{
    double p = (double)n;

    switch (op) {
    case BC_ALLREDUCE:
        return 2.0 * (p - 1.0) / p;
    case BC_ALLGATHER:
    case BC_REDUCESCATTER:
    case BC_ALLTOALL:
    case BC_GATHER:
    case BC_SCATTER:
        return (p - 1.0) / p;
    case BC_BARRIER:
        return 0.0;
    default:
        return 1.0;
    }
}

/* ---- options and records ------------------------------------------------- */

typedef struct bc_opts {
    int            ops[BC_NOPS];
    int            nops;
    size_t         sizes[BC_MAX_SIZES];
    int            nsizes;
    scomm_dtype_t  dtype;
    scomm_redop_t  redop;
    int            root;
    int            warmup;      /* -1: default (5, 2 from 64 MiB) */
    long           iters;       /* 0: calibrate to target */
    double         target;
    int            check;
    const char    *algo;
    const char    *out;         /* NULL: no per-op files */
    const char    *csv, *json, *md;
    int            plot;
    const char    *peer_csv[BC_MAX_PEERS];
    int            npeer;
    int            quiet;
} bc_opts_t;

typedef struct bc_result {
    int                 op;
    size_t              bytes, count;
    long                iters;
    int                 warmup;
    double              t_mean, t_med, t_min, t_max; /* seconds */
    double              algbw, busbw;                /* GB/s */
    long long           wrong;                       /* -1: not checked */
    scomm_coll_record_t sel;
    char                timestamp[32];
} bc_result_t;

typedef struct bc_ctx {
    scomm_comm_t    *comm;
    int              rank, size;
    const bc_opts_t *o;
    size_t           esize;
    const char      *transport;
    unsigned char   *sbuf, *rbuf, *ref;
    double          *tl, *tmax;
    long             tcap;
    int              tty;
    int              file_err;  /* rank 0: a file could not be written */
    bc_result_t     *res;       /* rank 0: every record of the run */
    int              nres, capres;
    char             stamp[32]; /* YYYYmmdd_HHMMSS of the run */
} bc_ctx_t;

/* ---- deterministic inputs ------------------------------------------------ */

static uint64_t bc_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Seed of rank r's data for one (op, size). */
static uint64_t bc_seed(int op, size_t bytes, int r)
{
    return bc_mix(BC_SEED ^ ((uint64_t)op << 56) ^ ((uint64_t)bytes << 8) ^
                  (uint64_t)(r + 1) * 0xd1b54a32d192ed03ull);
}

/*
 * Bytes off .. off+len-1 of the byte stream of seed: byte g is byte g % 8
 * (least significant first) of bc_mix(seed + g / 8). Any slice can be
 * regenerated on its own, which is how references of moved blocks are made.
 */
static void bc_pattern(unsigned char *dst, uint64_t seed, size_t off,
                       size_t len)
{
    size_t g = off, end = off + len;
    uint64_t w;
    int k;

    while ((g < end) && ((g & 7) != 0)) {
        w      = bc_mix(seed + (g >> 3));
        *dst++ = (unsigned char)(w >> (8 * (g & 7)));
        g++;
    }
    while (g + 8 <= end) {
        w = bc_mix(seed + (g >> 3));
        for (k = 0; k < 8; k++) {
            dst[k] = (unsigned char)(w >> (8 * k));
        }
        dst += 8;
        g += 8;
    }
    while (g < end) {
        w      = bc_mix(seed + (g >> 3));
        *dst++ = (unsigned char)(w >> (8 * (g & 7)));
        g++;
    }
}

/* How a reduction's inputs are drawn so that its result is exact. */
typedef struct bc_vals {
    scomm_dtype_t dt;
    scomm_redop_t op;
    int           n;
    int           is_float, is_signed, bits;
    int64_t       m;         /* sum/max/min: values 0..m */
    int           zero_from; /* sum/max/min: ranks from here give 0 */
    int           pow_ranks; /* prod: ranks below give 1 or 2, others 1 */
    int64_t       b;         /* avg: common base 0..b */
    uint64_t      seed;
} bc_vals_t;

static void bc_vals_init(bc_vals_t *v, scomm_dtype_t dt, scomm_redop_t op,
                         int n, uint64_t seed)
{
    int64_t limit = 0; /* every integer 0..limit is exact in dt */
    int pw = 30;       /* 2^pw is finite and exact in dt */

    memset(v, 0, sizeof(*v));
    v->dt   = dt;
    v->op   = op;
    v->n    = n;
    v->seed = seed;
    v->bits = (int)(8 * scomm_dtype_size(dt));
    switch (dt) {
    case SCOMM_FLOAT16:
        limit = 2048;
        pw    = 15;
        break;
    case SCOMM_BFLOAT16:
        limit = 256;
        break;
    case SCOMM_FLOAT32:
        limit = 1 << 24;
        break;
    case SCOMM_FLOAT64:
        limit = (int64_t)1 << 53;
        break;
    case SCOMM_FP8_E4M3:
        limit = 16;
        pw    = 8;
        break;
    case SCOMM_FP8_E5M2:
        limit = 8;
        pw    = 15;
        break;
    case SCOMM_INT8:
    case SCOMM_INT32:
    case SCOMM_INT64:
        v->is_signed = 1;
        break;
    default:
        break;
    }
    v->is_float = (limit > 0);
    if (!v->is_float) {
        return;
    }
    v->m         = limit / n;
    v->zero_from = n;
    if (v->m == 0) {
        v->m         = 1;
        v->zero_from = (int)limit;
    }
    if (v->m > 7) {
        v->m = 7;
    }
    v->pow_ranks = pw;
    v->b         = limit / (2 * (int64_t)n);
    if (v->b > 7) {
        v->b = 7;
    }
}

/* Input element idx of rank r (an integer, exact in the dtype). */
static int64_t bc_val(const bc_vals_t *v, int r, uint64_t idx)
{
    uint64_t h = bc_mix(v->seed + (uint64_t)r * 0x9e3779b97f4a7c15ull + idx);
    int64_t base, d;

    if (!v->is_float) {
        return v->is_signed ? (int64_t)(h % 16) - 8 : (int64_t)(h % 16);
    }
    switch (v->op) {
    case SCOMM_PROD:
        return (r < v->pow_ranks) ? 1 + (int64_t)(h & 1) : 1;
    case SCOMM_AVG:
        /* A common base, +d on even ranks with a partner, -d on odd ones:
         * the sum is n * base exactly and every partial sum lies in
         * 0 .. 2 n b. */
        base = (int64_t)(bc_mix(v->seed ^ 0xa11ull ^ idx) %
                         (uint64_t)(v->b + 1));
        d = (int64_t)(bc_mix(v->seed ^ 0xd00ull ^ (idx << 1)) %
                      (uint64_t)(base + 1));
        if ((r & 1) != 0) {
            return base - d;
        }
        return (r + 1 < v->n) ? base + d : base;
    default:
        return (r < v->zero_from) ? (int64_t)(h % (uint64_t)(v->m + 1)) : 0;
    }
}

/* The integer of the dtype's width holding u, sign-extended if signed. */
static int64_t bc_wrap(const bc_vals_t *v, uint64_t u)
{
    uint64_t mask;

    if (v->bits >= 64) {
        return (int64_t)u;
    }
    mask = (1ull << v->bits) - 1;
    u &= mask;
    if (v->is_signed && ((u >> (v->bits - 1)) & 1)) {
        u |= ~mask;
    }
    return (int64_t)u;
}

/* Element idx of the reduction over all ranks, as the library defines it. */
static int64_t bc_ref_elem(const bc_vals_t *v, uint64_t idx)
{
    int64_t acc = bc_val(v, 0, idx), x;
    uint64_t u  = (uint64_t)acc;
    int r;

    for (r = 1; r < v->n; r++) {
        x = bc_val(v, r, idx);
        switch (v->op) {
        case SCOMM_SUM:
        case SCOMM_AVG:
            u += (uint64_t)x;
            break;
        case SCOMM_PROD:
            u *= (uint64_t)x;
            break;
        case SCOMM_MAX:
            acc = (x > acc) ? x : acc;
            break;
        default:
            acc = (x < acc) ? x : acc;
            break;
        }
    }
    switch (v->op) {
    case SCOMM_SUM:
    case SCOMM_PROD:
        return v->is_float ? (int64_t)u : bc_wrap(v, u);
    case SCOMM_AVG:
        if (v->is_float) {
            return (int64_t)u / v->n;
        }
        acc = bc_wrap(v, u);
        if (v->is_signed) {
            return acc / v->n;
        }
        return (int64_t)((uint64_t)acc / (uint64_t)v->n);
    default:
        return acc;
    }
}

/* Exact small integer x as a minifloat (ebits, mbits, bias). */
static uint32_t bc_minifloat(int64_t x, int ebits, int mbits, int bias)
{
    uint32_t sign = 0;
    uint64_t a;
    int e;

    if (x == 0) {
        return 0;
    }
    if (x < 0) {
        sign = 1u << (ebits + mbits);
        x    = -x;
    }
    a = (uint64_t)x;
    e = 63 - __builtin_clzll(a);
    return sign | ((uint32_t)(e + bias) << mbits) |
           (uint32_t)(((a << mbits) >> e) & ((1u << mbits) - 1));
}

/* Store integer x (exact in dt, or truncated for integer types). */
static void bc_store(unsigned char *dst, scomm_dtype_t dt, int64_t x)
{
    uint64_t u = (uint64_t)x;
    uint32_t w;
    uint16_t h;
    uint8_t b;
    float f;
    double d;

    switch (dt) {
    case SCOMM_INT8:
    case SCOMM_UINT8:
        b = (uint8_t)u;
        memcpy(dst, &b, 1);
        break;
    case SCOMM_INT32:
    case SCOMM_UINT32:
        w = (uint32_t)u;
        memcpy(dst, &w, 4);
        break;
    case SCOMM_INT64:
    case SCOMM_UINT64:
        memcpy(dst, &u, 8);
        break;
    case SCOMM_FLOAT16:
        h = (uint16_t)bc_minifloat(x, 5, 10, 15);
        memcpy(dst, &h, 2);
        break;
    case SCOMM_FLOAT32:
        f = (float)x;
        memcpy(dst, &f, 4);
        break;
    case SCOMM_FLOAT64:
        d = (double)x;
        memcpy(dst, &d, 8);
        break;
    case SCOMM_BFLOAT16:
        f = (float)x;
        memcpy(&w, &f, 4);
        h = (uint16_t)(w >> 16);
        memcpy(dst, &h, 2);
        break;
    case SCOMM_FP8_E4M3:
        b = (uint8_t)bc_minifloat(x, 4, 3, 7);
        memcpy(dst, &b, 1);
        break;
    case SCOMM_FP8_E5M2:
        b = (uint8_t)bc_minifloat(x, 5, 2, 15);
        memcpy(dst, &b, 1);
        break;
    default:
        break;
    }
}

/* ---- small helpers --------------------------------------------------------- */

static int bc_fail(scomm_comm_t *comm, scomm_status_t s, const char *what)
{
    fprintf(stderr, "scomm bench: %s: %s: %s\n", what, scomm_status_name(s),
            (comm != NULL) ? scomm_comm_last_error(comm)
                           : scomm_last_error());
    return 1;
}

static int bc_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x < y) ? -1 : (x > y);
}

static double bc_median_sorted(const double *v, long n)
{
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void *bc_alloc(size_t bytes)
{
    void *p = NULL;

    if (posix_memalign(&p, 4096, bytes > 0 ? bytes : 1) != 0) {
        return NULL;
    }
    memset(p, 0, bytes > 0 ? bytes : 1);
    return p;
}

/* mkdir -p; 0 on success. */
static int bc_mkdirs(const char *path)
{
    char buf[4096];
    size_t i, n = strlen(path);

    if (n == 0 || n >= sizeof(buf)) {
        return (n == 0) ? 0 : -1;
    }
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if ((buf[i] == '/') || (buf[i] == '\0')) {
            buf[i] = '\0';
            if ((mkdir(buf, 0777) != 0) && (errno != EEXIST)) {
                return -1;
            }
            buf[i] = (i == n) ? '\0' : '/';
        }
    }
    return 0;
}

/* ---- geometry and one call ------------------------------------------------- */

typedef struct bc_geo {
    size_t count;   /* the count argument of the call */
    size_t bytes;   /* nccl-tests size */
    size_t sbytes;  /* this rank's send buffer */
    size_t rbytes;  /* this rank's receive buffer */
    size_t blk;     /* bytes one rank contributes per block */
} bc_geo_t;

static void bc_geometry(const bc_ctx_t *c, int op, size_t req, bc_geo_t *g)
{
    size_t n = (size_t)c->size, es = c->esize;

    memset(g, 0, sizeof(*g));
    switch (bc_ops[op].geo) {
    case BC_GEO_VECTOR:
        g->count = (req / es > 0) ? req / es : 1;
        g->bytes = g->count * es;
        g->sbytes = g->rbytes = g->blk = g->bytes;
        break;
    case BC_GEO_OUT_TOTAL:
    case BC_GEO_IN_TOTAL:
        g->count = (req / (es * n) > 0) ? req / (es * n) : 1;
        g->blk   = g->count * es;
        g->bytes = g->blk * n;
        if (op == BC_ALLTOALL) {
            g->sbytes = g->rbytes = g->bytes;
        } else if (bc_ops[op].geo == BC_GEO_OUT_TOTAL) {
            g->sbytes = g->blk;
            g->rbytes = g->bytes;
        } else {
            g->sbytes = g->bytes;
            g->rbytes = g->blk;
        }
        break;
    default:
        break;
    }
}

static scomm_status_t bc_call(bc_ctx_t *c, int op, size_t count)
{
    const bc_opts_t *o = c->o;
    int root = (c->rank == o->root);

    switch (op) {
    case BC_ALLREDUCE:
        return scomm_all_reduce(c->sbuf, c->rbuf, count, o->dtype, o->redop,
                                c->comm);
    case BC_ALLGATHER:
        return scomm_all_gather(c->sbuf, c->rbuf, count, o->dtype, c->comm);
    case BC_REDUCESCATTER:
        return scomm_reduce_scatter(c->sbuf, c->rbuf, count, o->dtype,
                                    o->redop, c->comm);
    case BC_BROADCAST:
        return scomm_broadcast(c->rbuf, count, o->dtype, o->root, c->comm);
    case BC_REDUCE:
        return scomm_reduce(c->sbuf, root ? c->rbuf : NULL, count, o->dtype,
                            o->redop, o->root, c->comm);
    case BC_ALLTOALL:
        return scomm_all_to_all(c->sbuf, c->rbuf, count, o->dtype, c->comm);
    case BC_GATHER:
        return scomm_gather(c->sbuf, root ? c->rbuf : NULL, count, o->dtype,
                            o->root, c->comm);
    case BC_SCATTER:
        return scomm_scatter(root ? c->sbuf : NULL, c->rbuf, count, o->dtype,
                             o->root, c->comm);
    default:
        return scomm_barrier(c->comm);
    }
}

/*
 * Fill this rank's inputs for (op, size) and, with --check, the reference
 * of what it must receive. Returns the number of receive bytes to verify
 * (0: nothing on this rank) and sets *poison to whether they are to be
 * poisoned before each call (not the broadcast root's input).
 */
static size_t bc_prepare(bc_ctx_t *c, int op, const bc_geo_t *g, int *poison)
{
    const bc_opts_t *o = c->o;
    size_t es = c->esize, i, nel;
    int r = c->rank, n = c->size, j, root = (r == o->root);
    bc_vals_t v;

    *poison = 1;
    if (bc_ops[op].reduces) {
        bc_vals_init(&v, o->dtype, o->redop, n, bc_seed(op, g->bytes, -1));
        nel = g->sbytes / es;
        for (i = 0; i < nel; i++) {
            bc_store(c->sbuf + i * es, o->dtype, bc_val(&v, r, i));
        }
        if (!o->check || ((op == BC_REDUCE) && !root)) {
            return 0;
        }
        nel = g->rbytes / es;
        for (i = 0; i < nel; i++) {
            uint64_t idx = (op == BC_REDUCESCATTER)
                               ? (uint64_t)r * g->count + i : i;

            bc_store(c->ref + i * es, o->dtype, bc_ref_elem(&v, idx));
        }
        return g->rbytes;
    }
    switch (op) {
    case BC_ALLGATHER:
    case BC_GATHER:
        bc_pattern(c->sbuf, bc_seed(op, g->bytes, r), 0, g->blk);
        if (!o->check || ((op == BC_GATHER) && !root)) {
            return 0;
        }
        for (j = 0; j < n; j++) {
            bc_pattern(c->ref + (size_t)j * g->blk, bc_seed(op, g->bytes, j),
                       0, g->blk);
        }
        return g->rbytes;
    case BC_ALLTOALL:
        bc_pattern(c->sbuf, bc_seed(op, g->bytes, r), 0, g->bytes);
        if (!o->check) {
            return 0;
        }
        for (j = 0; j < n; j++) {
            bc_pattern(c->ref + (size_t)j * g->blk, bc_seed(op, g->bytes, j),
                       (size_t)r * g->blk, g->blk);
        }
        return g->rbytes;
    case BC_SCATTER:
        if (root) {
            bc_pattern(c->sbuf, bc_seed(op, g->bytes, o->root), 0, g->bytes);
        }
        if (!o->check) {
            return 0;
        }
        bc_pattern(c->ref, bc_seed(op, g->bytes, o->root),
                   (size_t)r * g->blk, g->blk);
        return g->rbytes;
    case BC_BROADCAST:
        if (root) {
            bc_pattern(c->rbuf, bc_seed(op, g->bytes, o->root), 0, g->bytes);
            *poison = 0;
        }
        if (!o->check) {
            return 0;
        }
        bc_pattern(c->ref, bc_seed(op, g->bytes, o->root), 0, g->bytes);
        return g->rbytes;
    default:
        return 0;
    }
}

/* Elements of got that differ from ref (bitwise). */
static long long bc_count_wrong(const unsigned char *got,
                                const unsigned char *ref, size_t bytes,
                                size_t es)
{
    long long wrong = 0;
    size_t i;

    if (memcmp(got, ref, bytes) == 0) {
        return 0;
    }
    for (i = 0; i + es <= bytes; i += es) {
        wrong += (memcmp(got + i, ref + i, es) != 0);
    }
    return wrong;
}

/* ---- measuring one size -------------------------------------------------- */

static int bc_grow_times(bc_ctx_t *c, long n)
{
    if (n <= c->tcap) {
        return 0;
    }
    free(c->tl);
    free(c->tmax);
    c->tl   = malloc(sizeof(double) * (size_t)n);
    c->tmax = malloc(sizeof(double) * (size_t)n);
    c->tcap = (c->tl != NULL && c->tmax != NULL) ? n : 0;
    return (c->tcap == n) ? 0 : -1;
}

/* Iterations for about --target seconds (the same on every rank). */
static int bc_calibrate(bc_ctx_t *c, int op, size_t count, size_t bytes,
                        long *iters)
{
    double calib = (c->o->target / 5 < 0.05) ? c->o->target / 5 : 0.05;
    double msg[2], t0, grow, est;
    scomm_status_t s;
    long nb = 1, b, it;

    for (;;) {
        s = scomm_barrier(c->comm);
        t0 = scomm_cli_now();
        for (b = 0; (b < nb) && (s == SCOMM_OK); b++) {
            s = bc_call(c, op, count);
        }
        if (s != SCOMM_OK) {
            return bc_fail(c->comm, s, bc_ops[op].name);
        }
        msg[0] = scomm_cli_now() - t0;
        msg[1] = ((msg[0] >= calib) || (nb >= BC_MAX_ITERS)) ? 1.0 : 0.0;
        s = scomm_broadcast(msg, 2, SCOMM_FLOAT64, 0, c->comm);
        if (s != SCOMM_OK) {
            return bc_fail(c->comm, s, "calibration broadcast");
        }
        if (msg[1] != 0.0) {
            est = msg[0] / (double)nb;
            break;
        }
        grow = (msg[0] > 0) ? 1.5 * calib / msg[0] : 64;
        grow = (grow < 2) ? 2 : (grow > 64) ? 64 : grow;
        nb   = (long)((double)nb * grow);
        nb   = (nb > BC_MAX_ITERS) ? BC_MAX_ITERS : nb;
    }
    it = (long)(c->o->target / (est > 1e-9 ? est : 1e-9));
    if (it < BC_MIN_ITERS) {
        it = BC_MIN_ITERS;
    }
    if ((bytes >= (64u << 20)) && (it < 3)) {
        it = 3;
    }
    *iters = (it > BC_MAX_ITERS) ? BC_MAX_ITERS : it;
    return 0;
}

static int bc_measure(bc_ctx_t *c, int op, size_t req, bc_result_t *res)
{
    const bc_opts_t *o = c->o;
    scomm_status_t s = SCOMM_OK;
    long long wrong = 0, wrong_all = 0;
    double t0, prev, tt, total;
    size_t vbytes;
    long iters, it;
    int i, warmup, poison;
    bc_geo_t g;
    time_t now;

    bc_geometry(c, op, req, &g);
    vbytes = bc_prepare(c, op, &g, &poison);
    warmup = o->warmup;
    if (warmup < 0) {
        warmup = (g.bytes >= (64u << 20)) ? 2 : 5;
    }
    for (i = 0; (i < warmup) && (s == SCOMM_OK); i++) {
        s = bc_call(c, op, g.count);
    }
    if (s != SCOMM_OK) {
        return bc_fail(c->comm, s, bc_ops[op].name);
    }
    iters = o->iters;
    if ((iters <= 0) && (bc_calibrate(c, op, g.count, g.bytes, &iters) != 0)) {
        return 1;
    }
    if (bc_grow_times(c, iters + 1) != 0) {
        fprintf(stderr, "scomm bench: out of memory for %ld samples\n", iters);
        scomm_comm_abort(c->comm);
        return 1;
    }
    if (!o->check) {
        s = scomm_barrier(c->comm);
        t0 = prev = scomm_cli_now();
        for (it = 0; (it < iters) && (s == SCOMM_OK); it++) {
            s = bc_call(c, op, g.count);
            tt = scomm_cli_now();
            c->tl[it] = tt - prev;
            prev = tt;
        }
        total = prev - t0;
    } else {
        total = 0;
        for (it = 0; (it < iters) && (s == SCOMM_OK); it++) {
            if (poison && (vbytes > 0)) {
                memset(c->rbuf, (it & 1) ? BC_POISON_B : BC_POISON_A, vbytes);
            }
            s = scomm_barrier(c->comm);
            if (s != SCOMM_OK) {
                break;
            }
            t0 = scomm_cli_now();
            s = bc_call(c, op, g.count);
            c->tl[it] = scomm_cli_now() - t0;
            total += c->tl[it];
            if (vbytes > 0) {
                wrong += bc_count_wrong(c->rbuf, c->ref, vbytes, c->esize);
            }
        }
    }
    if (s != SCOMM_OK) {
        return bc_fail(c->comm, s, bc_ops[op].name);
    }
    /* Read the selection before the reductions below overwrite it. */
    if (op == BC_BARRIER) {
        memset(&res->sel, 0, sizeof(res->sel));
        snprintf(res->sel.algo, sizeof(res->sel.algo), "dissemination");
        snprintf(res->sel.rule_id, sizeof(res->sel.rule_id),
                 "barrier.dissemination");
        snprintf(res->sel.reason, sizeof(res->sel.reason),
                 "scomm_barrier has one algorithm (ceil(log2 %d) rounds of "
                 "zero-byte messages) and records no selection", c->size);
    } else {
        s = scomm_last_selection(c->comm, &res->sel);
        if (s != SCOMM_OK) {
            return bc_fail(c->comm, s, "scomm_last_selection");
        }
    }
    c->tl[iters] = total;
    s = scomm_reduce(c->tl, (c->rank == 0) ? c->tmax : NULL,
                     (size_t)iters + 1, SCOMM_FLOAT64, SCOMM_MAX, 0, c->comm);
    if (s == SCOMM_OK) {
        s = scomm_reduce(&wrong, &wrong_all, 1, SCOMM_INT64, SCOMM_SUM, 0,
                         c->comm);
    }
    if (s != SCOMM_OK) {
        return bc_fail(c->comm, s, "gathering the times");
    }
    res->op     = op;
    res->bytes  = g.bytes;
    res->count  = g.count;
    res->iters  = iters;
    res->warmup = warmup;
    res->wrong  = o->check ? wrong_all : -1;
    now = time(NULL);
    strftime(res->timestamp, sizeof(res->timestamp), "%Y-%m-%dT%H:%M:%SZ",
             gmtime(&now));
    if (c->rank == 0) {
        res->t_mean = c->tmax[iters] / (double)iters;
        qsort(c->tmax, (size_t)iters, sizeof(double), bc_cmp_double);
        res->t_med = bc_median_sorted(c->tmax, iters);
        res->t_min = c->tmax[0];
        res->t_max = c->tmax[iters - 1];
        res->algbw = (res->t_mean > 0) ? (double)g.bytes / res->t_mean / 1e9
                                       : 0.0;
        res->busbw = res->algbw * bc_busfactor(op, c->size);
    }
    return 0;
}

/* ---- output files --------------------------------------------------------- */

static void bc_json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', f);
    for (; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else {
                fputc(*p, f);
            }
            break;
        }
    }
    fputc('"', f);
}

static void bc_json_num(FILE *f, double x)
{
    if (isfinite(x)) {
        fprintf(f, "%.6g", x);
    } else {
        fputs("null", f);
    }
}

static void bc_csv_str(FILE *f, const char *s)
{
    const char *p;

    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (p = s; *p != '\0'; p++) {
        if (*p == '"') {
            fputc('"', f);
        }
        fputc(*p, f);
    }
    fputc('"', f);
}

static const char *bc_redop_of(const bc_ctx_t *c, int op)
{
    return bc_ops[op].reduces ? scomm_redop_name(c->o->redop) : "none";
}

static const char *bc_dtype_of(const bc_ctx_t *c, int op)
{
    return (op == BC_BARRIER) ? "none" : scomm_dtype_name(c->o->dtype);
}

static int bc_root_of(const bc_ctx_t *c, int op)
{
    return bc_ops[op].rooted ? c->o->root : -1;
}

static const char bc_csv_header[] =
    "bytes,latency_ms,bandwidth_gbps,busbw_gbps,algo_id,backend_kind,"
    "topology_source,world_size,op_type,data_type,warmup_iters,"
    "benchmark_iters,selection_rule_id,selection_reason,timestamp,"
    "t_median_ms,t_min_ms,t_max_ms,transport,wrong,count,redop,root\n";

static void bc_write_csv(FILE *f, const bc_ctx_t *c, const bc_result_t *r,
                         int n)
{
    int i;

    fputs(bc_csv_header, f);
    for (i = 0; i < n; i++, r++) {
        fprintf(f, "%zu,%.6g,%.6g,%.6g,", r->bytes, r->t_mean * 1e3,
                r->algbw, r->busbw);
        bc_csv_str(f, r->sel.algo);
        fprintf(f, ",native,env,%d,%s,%s,%d,%ld,", c->size,
                bc_ops[r->op].name, bc_dtype_of(c, r->op), r->warmup,
                r->iters);
        bc_csv_str(f, r->sel.rule_id);
        fputc(',', f);
        bc_csv_str(f, r->sel.reason);
        fprintf(f, ",%s,%.6g,%.6g,%.6g,%s,", r->timestamp, r->t_med * 1e3,
                r->t_min * 1e3, r->t_max * 1e3, c->transport);
        if (r->wrong >= 0) {
            fprintf(f, "%lld", r->wrong);
        }
        fprintf(f, ",%zu,%s,%d\n", r->count, bc_redop_of(c, r->op),
                bc_root_of(c, r->op));
    }
}

static void bc_write_json(FILE *f, const bc_ctx_t *c, const bc_result_t *r,
                          int n)
{
    int i;

    fputs("[\n", f);
    for (i = 0; i < n; i++, r++) {
        fprintf(f, "  {\"bytes\": %zu, \"latency_ms\": ", r->bytes);
        bc_json_num(f, r->t_mean * 1e3);
        fputs(", \"bandwidth_gbps\": ", f);
        bc_json_num(f, r->algbw);
        fputs(", \"busbw_gbps\": ", f);
        bc_json_num(f, r->busbw);
        fputs(", \"algo_id\": ", f);
        bc_json_str(f, r->sel.algo);
        fprintf(f, ", \"backend_kind\": \"native\", \"topology_source\": "
                "\"env\", \"world_size\": %d, \"op_type\": ", c->size);
        bc_json_str(f, bc_ops[r->op].name);
        fputs(", \"data_type\": ", f);
        bc_json_str(f, bc_dtype_of(c, r->op));
        fprintf(f, ", \"warmup_iters\": %d, \"benchmark_iters\": %ld, "
                "\"selection_rule_id\": ", r->warmup, r->iters);
        bc_json_str(f, r->sel.rule_id);
        fputs(", \"selection_reason\": ", f);
        bc_json_str(f, r->sel.reason);
        fputs(", \"timestamp\": ", f);
        bc_json_str(f, r->timestamp);
        fputs(", \"t_median_ms\": ", f);
        bc_json_num(f, r->t_med * 1e3);
        fputs(", \"t_min_ms\": ", f);
        bc_json_num(f, r->t_min * 1e3);
        fputs(", \"t_max_ms\": ", f);
        bc_json_num(f, r->t_max * 1e3);
        fputs(", \"transport\": ", f);
        bc_json_str(f, c->transport);
        fputs(", \"wrong\": ", f);
        if (r->wrong >= 0) {
            fprintf(f, "%lld", r->wrong);
        } else {
            fputs("null", f);
        }
        fprintf(f, ", \"count\": %zu, \"redop\": ", r->count);
        bc_json_str(f, bc_redop_of(c, r->op));
        fprintf(f, ", \"root\": %d}%s\n", bc_root_of(c, r->op),
                (i + 1 < n) ? "," : "");
    }
    fputs("]\n", f);
}

/* Markdown table; '|' in the reason is escaped. */
static void bc_write_md(FILE *f, const bc_ctx_t *c, const bc_result_t *r,
                        int n)
{
    const char *p;
    int i, last = -1;

    for (i = 0; i < n; i++, r++) {
        if (r->op != last) {
            fprintf(f, "%s## %s: %d ranks over %s, %s%s%s\n\n",
                    (last < 0) ? "" : "\n", bc_ops[r->op].name, c->size,
                    c->transport, bc_dtype_of(c, r->op),
                    bc_ops[r->op].reduces ? " " : "",
                    bc_ops[r->op].reduces ? scomm_redop_name(c->o->redop)
                                          : "");
            fputs("| bytes | count | algo | iters | t_mean us | t_median us "
                  "| t_min us | t_max us | algbw GB/s | busbw GB/s | wrong | "
                  "rule | reason |\n", f);
            fputs("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
                  "---|---|\n", f);
            last = r->op;
        }
        fprintf(f, "| %zu | %zu | %s | %ld | %.3f | %.3f | %.3f | %.3f | "
                "%.3f | %.3f | ", r->bytes, r->count, r->sel.algo, r->iters,
                r->t_mean * 1e6, r->t_med * 1e6, r->t_min * 1e6,
                r->t_max * 1e6, r->algbw, r->busbw);
        if (r->wrong >= 0) {
            fprintf(f, "%lld", r->wrong);
        } else {
            fputs("n/a", f);
        }
        fprintf(f, " | %s | ", r->sel.rule_id);
        for (p = r->sel.reason; *p != '\0'; p++) {
            if (*p == '|') {
                fputc('\\', f);
            }
            fputc(*p, f);
        }
        fputs(" |\n", f);
    }
}

typedef void (*bc_writer_t)(FILE *, const bc_ctx_t *, const bc_result_t *,
                            int);

static int bc_write_file(const char *path, bc_writer_t w, const bc_ctx_t *c,
                         const bc_result_t *r, int n)
{
    FILE *f = fopen(path, "w");
    int bad;

    if (f == NULL) {
        fprintf(stderr, "scomm bench: cannot write %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    w(f, c, r, n);
    bad = ferror(f);
    bad |= (fclose(f) != 0);
    if (bad) {
        fprintf(stderr, "scomm bench: error writing %s\n", path);
    }
    return bad ? 1 : 0;
}

/* Per-op files <out>/<op>_ws<N>_<stamp>.{json,csv,md}. */
static int bc_write_op_files(const bc_ctx_t *c, const bc_result_t *r, int n)
{
    char path[4200];
    int rc = 0;

    if ((c->o->out == NULL) || (n == 0)) {
        return 0;
    }
    if (bc_mkdirs(c->o->out) != 0) {
        fprintf(stderr, "scomm bench: cannot create %s: %s\n", c->o->out,
                strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s_ws%d_%s.json", c->o->out,
             bc_ops[r->op].name, c->size, c->stamp);
    rc |= bc_write_file(path, bc_write_json, c, r, n);
    snprintf(path, sizeof(path), "%s/%s_ws%d_%s.csv", c->o->out,
             bc_ops[r->op].name, c->size, c->stamp);
    rc |= bc_write_file(path, bc_write_csv, c, r, n);
    snprintf(path, sizeof(path), "%s/%s_ws%d_%s.md", c->o->out,
             bc_ops[r->op].name, c->size, c->stamp);
    rc |= bc_write_file(path, bc_write_md, c, r, n);
    if ((rc == 0) && !c->o->quiet) {
        printf("# wrote %s/%s_ws%d_%s.{json,csv,md}\n", c->o->out,
               bc_ops[r->op].name, c->size, c->stamp);
    }
    return rc;
}

/* ---- plots ----------------------------------------------------------------- */

typedef struct bc_point {
    char   label[64];
    int    op;
    size_t bytes;
    double t_mean_us, t_med_us, busbw;
} bc_point_t;

typedef struct bc_points {
    bc_point_t *p;
    int         n, cap;
} bc_points_t;

static int bc_points_add(bc_points_t *ps, const bc_point_t *pt)
{
    bc_point_t *np;

    if (ps->n == ps->cap) {
        ps->cap = (ps->cap == 0) ? 256 : 2 * ps->cap;
        np      = realloc(ps->p, sizeof(*np) * (size_t)ps->cap);
        if (np == NULL) {
            return -1;
        }
        ps->p = np;
    }
    ps->p[ps->n++] = *pt;
    return 0;
}

/* Split a CSV line in place (RFC 4180 quotes); returns the field count. */
static int bc_csv_split(char *line, char **fld, int max)
{
    char *r = line, *w;
    int n = 0;

    while (n < max) {
        fld[n++] = w = r;
        if (*r == '"') {
            r++;
            while (*r != '\0') {
                if ((r[0] == '"') && (r[1] == '"')) {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
        }
        while ((*r != '\0') && (*r != ',') && (*r != '\n') && (*r != '\r')) {
            *w++ = *r++;
        }
        if (*r != ',') {
            *w = '\0';
            break;
        }
        r++;
        *w = '\0';
    }
    return n;
}

static int bc_col(char **hdr, int nh, const char *a, const char *b)
{
    int i;

    for (i = 0; i < nh; i++) {
        if ((strcmp(hdr[i], a) == 0) || ((b != NULL) && (strcmp(hdr[i], b) == 0))) {
            return i;
        }
    }
    return -1;
}

/*
 * Read a peer CSV: the anchors' format (label,op,nranks,bytes,...,t_mean_us,
 * t_median_us,...,busbw_GBps,...,check) or scomm bench's own (op_type,
 * world_size, latency_ms, t_median_ms, busbw_gbps; labelled by the file
 * name). Header lines may repeat; '#' lines are skipped. Rows of another
 * rank count, or whose check column says UNSUPPORTED, are dropped.
 */
static int bc_read_peer(const char *path, int nranks, bc_points_t *ps)
{
    char line[4096], hline[4096], *hdr[64], *fld[64], fname[64];
    int nh = 0, nf, ci_label = -1, ci_op = -1, ci_n = -1, ci_b = -1;
    int ci_mean = -1, ci_med = -1, ci_bus = -1, ci_chk = -1, ms = 0, op;
    const char *base = strrchr(path, '/');
    FILE *f = fopen(path, "r");
    bc_point_t pt;
    char *dot;

    if (f == NULL) {
        fprintf(stderr, "scomm bench: cannot read peer CSV %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    snprintf(fname, sizeof(fname), "%s", (base != NULL) ? base + 1 : path);
    dot = strrchr(fname, '.');
    if (dot != NULL) {
        *dot = '\0';
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if ((line[0] == '#') || (line[0] == '\n')) {
            continue;
        }
        if ((strncmp(line, "label,", 6) == 0) ||
            (strstr(line, "op_type") != NULL)) {
            memcpy(hline, line, sizeof(hline));
            nh       = bc_csv_split(hline, hdr, 64);
            ci_label = bc_col(hdr, nh, "label", NULL);
            ci_op    = bc_col(hdr, nh, "op", "op_type");
            ci_n     = bc_col(hdr, nh, "nranks", "world_size");
            ci_b     = bc_col(hdr, nh, "bytes", NULL);
            ci_mean  = bc_col(hdr, nh, "t_mean_us", NULL);
            ci_med   = bc_col(hdr, nh, "t_median_us", NULL);
            ci_bus   = bc_col(hdr, nh, "busbw_GBps", "busbw_gbps");
            ci_chk   = bc_col(hdr, nh, "check", NULL);
            ms       = 0;
            if (ci_mean < 0) {
                ci_mean = bc_col(hdr, nh, "latency_ms", NULL);
                ci_med  = bc_col(hdr, nh, "t_median_ms", NULL);
                ms      = 1;
            }
            continue;
        }
        if ((nh == 0) || (ci_op < 0) || (ci_b < 0) || (ci_mean < 0) ||
            (ci_bus < 0)) {
            continue;
        }
        nf = bc_csv_split(line, fld, 64);
        if ((ci_op >= nf) || (ci_b >= nf) || (ci_mean >= nf) ||
            (ci_bus >= nf) || (fld[ci_mean][0] == '\0')) {
            continue;
        }
        if ((ci_chk >= 0) && (ci_chk < nf) &&
            (strcmp(fld[ci_chk], "UNSUPPORTED") == 0)) {
            continue;
        }
        if ((ci_n >= 0) && (ci_n < nf) && (atoi(fld[ci_n]) != nranks)) {
            continue;
        }
        op = bc_op_find(fld[ci_op], strlen(fld[ci_op]));
        if (op < 0) {
            continue;
        }
        memset(&pt, 0, sizeof(pt));
        snprintf(pt.label, sizeof(pt.label), "%s",
                 ((ci_label >= 0) && (ci_label < nf)) ? fld[ci_label] : fname);
        pt.op        = op;
        pt.bytes     = (size_t)strtoull(fld[ci_b], NULL, 10);
        pt.t_mean_us = atof(fld[ci_mean]) * (ms ? 1e3 : 1.0);
        pt.t_med_us  = ((ci_med >= 0) && (ci_med < nf))
                           ? atof(fld[ci_med]) * (ms ? 1e3 : 1.0)
                           : pt.t_mean_us;
        pt.busbw     = atof(fld[ci_bus]);
        if (bc_points_add(ps, &pt) != 0) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int bc_cmp_point(const void *a, const void *b)
{
    const bc_point_t *x = a, *y = b;
    int k = strcmp(x->label, y->label);

    if (k != 0) {
        return k;
    }
    if (x->op != y->op) {
        return x->op - y->op;
    }
    return (x->bytes < y->bytes) ? -1 : (x->bytes > y->bytes);
}

/* Write "bytes t_mean_us t_median_us busbw" rows of one label and op,
 * the median over repeated rows (rounds); returns the row count. */
static int bc_write_dat(const char *path, const bc_points_t *ps,
                        const char *label, int op)
{
    double *v = malloc(sizeof(double) * 3 * (size_t)(ps->n + 1));
    int i, j, k, m, rows = 0;
    FILE *f;

    if (v == NULL) {
        return -1;
    }
    f = fopen(path, "w");
    if (f == NULL) {
        free(v);
        return -1;
    }
    for (i = 0; i < ps->n; i = j) {
        for (j = i; (j < ps->n) && (strcmp(ps->p[j].label, ps->p[i].label) == 0) &&
                    (ps->p[j].op == ps->p[i].op) &&
                    (ps->p[j].bytes == ps->p[i].bytes); j++) {
        }
        if ((strcmp(ps->p[i].label, label) != 0) || (ps->p[i].op != op)) {
            continue;
        }
        m = j - i;
        for (k = 0; k < m; k++) {
            v[k]         = ps->p[i + k].t_mean_us;
            v[m + k]     = ps->p[i + k].t_med_us;
            v[2 * m + k] = ps->p[i + k].busbw;
        }
        qsort(v, (size_t)m, sizeof(double), bc_cmp_double);
        qsort(v + m, (size_t)m, sizeof(double), bc_cmp_double);
        qsort(v + 2 * m, (size_t)m, sizeof(double), bc_cmp_double);
        fprintf(f, "%zu %.6g %.6g %.6g\n", ps->p[i].bytes,
                bc_median_sorted(v, m), bc_median_sorted(v + m, m),
                bc_median_sorted(v + 2 * m, m));
        rows++;
    }
    fclose(f);
    free(v);
    return rows;
}

/* Run gnuplot on script; 0 ok, 1 failed, 2 gnuplot missing. */
static int bc_run_gnuplot(const char *script)
{
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int st, e;

    e = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (e != 0) {
        return (e == ENOENT) ? 2 : 1;
    }
    if (waitpid(pid, &st, 0) < 0) {
        return 1;
    }
    if (WIFEXITED(st) && (WEXITSTATUS(st) == 127)) {
        return 2;
    }
    return (WIFEXITED(st) && (WEXITSTATUS(st) == 0)) ? 0 : 1;
}

/*
 * For every op of the run: <out>/<op>_ws<N>_<stamp>_busbw.png and
 * _latency.png, scomm and the peers (median per size over repeated rows).
 */
static int bc_plot(const bc_ctx_t *c)
{
    char tmpl[] = "/tmp/scomm_plot_XXXXXX", path[4400], gp[4400];
    const char *outdir = (c->o->out != NULL) ? c->o->out : ".";
    bc_points_t ps = {NULL, 0, 0};
    char labels[BC_MAX_PEERS * 8 + 1][64];
    int nl = 0, i, k, op, rc = 0, grc = 0, have[BC_MAX_PEERS * 8 + 1];
    bc_point_t pt;
    FILE *f;

    for (i = 0; i < c->o->npeer; i++) {
        if (bc_read_peer(c->o->peer_csv[i], c->size, &ps) != 0) {
            rc = 1;
        }
    }
    for (i = 0; i < c->nres; i++) {
        memset(&pt, 0, sizeof(pt));
        snprintf(pt.label, sizeof(pt.label), "scomm");
        pt.op        = c->res[i].op;
        pt.bytes     = c->res[i].bytes;
        pt.t_mean_us = c->res[i].t_mean * 1e6;
        pt.t_med_us  = c->res[i].t_med * 1e6;
        pt.busbw     = c->res[i].busbw;
        if (bc_points_add(&ps, &pt) != 0) {
            free(ps.p);
            return 1;
        }
    }
    qsort(ps.p, (size_t)ps.n, sizeof(bc_point_t), bc_cmp_point);
    /* Labels in first-seen order of the sorted list, scomm first. */
    snprintf(labels[nl++], sizeof(labels[0]), "scomm");
    for (i = 0; i < ps.n; i++) {
        for (k = 0; (k < nl) && (strcmp(labels[k], ps.p[i].label) != 0); k++) {
        }
        if ((k == nl) && (nl < (int)(sizeof(labels) / sizeof(labels[0])))) {
            snprintf(labels[nl++], sizeof(labels[0]), "%s", ps.p[i].label);
        }
    }
    if (mkdtemp(tmpl) == NULL) {
        free(ps.p);
        return 1;
    }
    if (bc_mkdirs(outdir) != 0) {
        fprintf(stderr, "scomm bench: cannot create %s\n", outdir);
        free(ps.p);
        rmdir(tmpl);
        return 1;
    }
    for (i = 0; (i < c->o->nops) && (grc != 2); i++) {
        op = c->o->ops[i];
        if (op == BC_BARRIER) {
            continue;
        }
        for (k = 0; k < nl; k++) {
            snprintf(path, sizeof(path), "%s/%d.dat", tmpl, k);
            have[k] = bc_write_dat(path, &ps, labels[k], op) > 0;
        }
        snprintf(gp, sizeof(gp), "%s/plot.gp", tmpl);
        f = fopen(gp, "w");
        if (f == NULL) {
            grc = 1;
            break;
        }
        fprintf(f, "set terminal pngcairo size 1000,650 noenhanced\n"
                "set datafile separator whitespace\n"
                "set logscale x 2\nset format x '%%.0b%%B'\n"
                "set xlabel 'size (bytes; %s)'\nset grid\n"
                "set key top left\n",
                (bc_ops[op].geo == BC_GEO_OUT_TOTAL) ? "total output" :
                (bc_ops[op].geo == BC_GEO_IN_TOTAL) ? "total input" :
                "buffer");
        fprintf(f, "set output '%s/%s_ws%d_%s_busbw.png'\n", outdir,
                bc_ops[op].name, c->size, c->stamp);
        fprintf(f, "set title '%s, %d ranks, busbw (nccl-tests), scomm over "
                "%s'\nset ylabel 'busbw (GB/s)'\nplot ", bc_ops[op].name,
                c->size, c->transport);
        for (k = 0; k < nl; k++) {
            if (have[k]) {
                fprintf(f, "%s'%s/%d.dat' using 1:4 with linespoints lw 2 "
                        "title '%s'", (k == 0) ? "" : ", ", tmpl, k,
                        labels[k]);
            }
        }
        fprintf(f, "\nset output '%s/%s_ws%d_%s_latency.png'\n", outdir,
                bc_ops[op].name, c->size, c->stamp);
        fprintf(f, "set title '%s, %d ranks, time per call (mean; dashed: "
                "median), scomm over %s'\nset logscale y 10\n"
                "set ylabel 'time (us)'\nplot ", bc_ops[op].name, c->size,
                c->transport);
        for (k = 0; k < nl; k++) {
            if (have[k]) {
                fprintf(f, "%s'%s/%d.dat' using 1:2 with linespoints lw 2 "
                        "lc %d title '%s', '%s/%d.dat' using 1:3 with lines "
                        "dt 2 lc %d notitle", (k == 0) ? "" : ", ", tmpl, k,
                        k + 1, labels[k], tmpl, k, k + 1);
            }
        }
        fputs("\n", f);
        fclose(f);
        if (!have[0]) {
            continue;
        }
        grc = bc_run_gnuplot(gp);
        if (grc == 2) {
            fprintf(stderr, "scomm bench: --plot: gnuplot is not installed "
                    "(apt-get install gnuplot-nox, or scripts/install-deps.sh "
                    "--bench); plots skipped\n");
        } else if (grc != 0) {
            fprintf(stderr, "scomm bench: --plot: gnuplot failed for %s\n",
                    bc_ops[op].name);
            rc = 1;
        } else if (!c->o->quiet) {
            printf("# plot %s/%s_ws%d_%s_{busbw,latency}.png\n", outdir,
                   bc_ops[op].name, c->size, c->stamp);
        }
    }
    for (k = 0; k < nl; k++) {
        snprintf(path, sizeof(path), "%s/%d.dat", tmpl, k);
        unlink(path);
    }
    snprintf(gp, sizeof(gp), "%s/plot.gp", tmpl);
    unlink(gp);
    rmdir(tmpl);
    free(ps.p);
    return rc;
}

/* ---- the run --------------------------------------------------------------- */

static int bc_keep(bc_ctx_t *c, const bc_result_t *r)
{
    bc_result_t *nr;

    if (c->nres == c->capres) {
        c->capres = (c->capres == 0) ? 64 : 2 * c->capres;
        nr        = realloc(c->res, sizeof(*nr) * (size_t)c->capres);
        if (nr == NULL) {
            return -1;
        }
        c->res = nr;
    }
    c->res[c->nres++] = *r;
    return 0;
}

static void bc_progress(const bc_ctx_t *c, int op, size_t bytes, int k,
                        int n)
{
    char sz[32];

    if (c->tty) {
        scomm_cli_fmt_size(sz, sizeof(sz), bytes);
        fprintf(stderr, "\r\033[K[%s] size %s (%d/%d)", bc_ops[op].name, sz,
                k, n);
        fflush(stderr);
    }
}

static void bc_progress_clear(const bc_ctx_t *c)
{
    if (c->tty) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static void bc_print_header(const bc_ctx_t *c, int op)
{
    const bc_opts_t *o = c->o;
    char mode[64];

    if (o->iters > 0) {
        snprintf(mode, sizeof(mode), "%ld iterations", o->iters);
    } else {
        snprintf(mode, sizeof(mode), "about %.2f s per size", o->target);
    }
    printf("#\n# scomm bench %s: %d ranks over %s, %s", bc_ops[op].name,
           c->size, c->transport, bc_dtype_of(c, op));
    if (bc_ops[op].reduces) {
        printf(" %s", scomm_redop_name(o->redop));
    }
    if (bc_ops[op].rooted) {
        printf(", root %d", o->root);
    }
    printf(", %s%s\n", mode,
           o->check ? ", --check (each call timed alone, between barriers)"
                    : "");
    printf("#%11s %11s %8s %6s %5s %20s %8s %10s %10s %8s %8s %7s\n", "size",
           "count", "type", "redop", "root", "algo", "iters", "time",
           "median", "algbw", "busbw", "#wrong");
    printf("#%11s %11s %8s %6s %5s %20s %8s %10s %10s %8s %8s %7s\n", "(B)",
           "(elements)", "", "", "", "", "", "(us)", "(us)", "(GB/s)",
           "(GB/s)", "");
}

static void bc_print_row(const bc_ctx_t *c, const bc_result_t *r)
{
    char wrong[24];

    if (r->wrong >= 0) {
        snprintf(wrong, sizeof(wrong), "%lld", r->wrong);
    } else {
        snprintf(wrong, sizeof(wrong), "N/A");
    }
    printf("%12zu %11zu %8s %6s %5d %20s %8ld %10.2f %10.2f %8.3f %8.3f "
           "%7s\n", r->bytes, r->count, bc_dtype_of(c, r->op),
           bc_redop_of(c, r->op), bc_root_of(c, r->op), r->sel.algo,
           r->iters, r->t_mean * 1e6, r->t_med * 1e6, r->algbw, r->busbw,
           wrong);
    fflush(stdout);
}

/* Allocate the buffers for the largest size of op. */
static int bc_buffers(bc_ctx_t *c, int op)
{
    size_t smax = 0, rmax = 0;
    bc_geo_t g;
    int i;

    for (i = 0; i < c->o->nsizes; i++) {
        bc_geometry(c, op, c->o->sizes[i], &g);
        smax = (g.sbytes > smax) ? g.sbytes : smax;
        rmax = (g.rbytes > rmax) ? g.rbytes : rmax;
    }
    free(c->sbuf);
    free(c->rbuf);
    free(c->ref);
    c->sbuf = bc_alloc(smax);
    c->rbuf = bc_alloc(rmax);
    c->ref  = c->o->check ? bc_alloc(rmax) : NULL;
    if ((c->sbuf == NULL) || (c->rbuf == NULL) ||
        (c->o->check && (c->ref == NULL))) {
        fprintf(stderr, "scomm bench: cannot allocate %zu + %zu bytes for "
                "%s\n", smax, rmax, bc_ops[op].name);
        scomm_comm_abort(c->comm); /* the peers stop now, not at timeout */
        return 1;
    }
    return 0;
}

static int bc_run_op(bc_ctx_t *c, int op, long long *wrong_total)
{
    const bc_opts_t *o = c->o;
    int nsz = (op == BC_BARRIER) ? 1 : o->nsizes, i, first = c->nres;
    double bus_sum = 0;
    long long wrong = 0;
    bc_result_t r;

    if (bc_buffers(c, op) != 0) {
        return 1;
    }
    if (c->rank == 0) {
        bc_print_header(c, op);
    }
    for (i = 0; i < nsz; i++) {
        size_t req = (op == BC_BARRIER) ? 0 : o->sizes[i];

        if (c->rank == 0) {
            bc_progress(c, op, req, i + 1, nsz);
        }
        memset(&r, 0, sizeof(r));
        if (bc_measure(c, op, req, &r) != 0) {
            if (c->rank == 0) {
                bc_progress_clear(c);
            }
            return 1;
        }
        if (c->rank == 0) {
            bc_progress_clear(c);
            bc_print_row(c, &r);
            if (bc_keep(c, &r) != 0) {
                fprintf(stderr, "scomm bench: out of memory for records\n");
                c->file_err = 1;
            }
            bus_sum += r.busbw;
            wrong += (r.wrong > 0) ? r.wrong : 0;
        }
    }
    if (c->rank != 0) {
        return 0;
    }
    if (op != BC_BARRIER) {
        printf("# %s: avg busbw %.3f GB/s over %d sizes\n", bc_ops[op].name,
               bus_sum / nsz, nsz);
    }
    if (o->check) {
        printf("# %s: %lld wrong elements%s\n", bc_ops[op].name, wrong,
               (wrong == 0) ? " (every timed call verified)" : "  <-- FAILED");
    }
    *wrong_total += wrong;
    c->file_err |= bc_write_op_files(c, c->res + first, c->nres - first);
    fflush(stdout);
    return 0;
}

/* ---- options ---------------------------------------------------------------- */

void scomm_cli_bench_coll_usage(FILE *f)
{
    fprintf(f,
        "usage: scomm bench <op|op,op,...|all> [options]   (run under "
        "scomm launch -n N)\n"
        "\n"
        "ops: all_reduce all_gather reduce_scatter broadcast reduce "
        "all_to_all gather\n"
        "     scatter barrier (also the anchors' names allreduce, allgather, "
        "alltoall)\n"
        "\n"
        "  -b MIN, -e MAX    smallest and largest size (default 8 and 64M; "
        "K, M, G suffixes)\n"
        "  -f FACTOR         size multiplier (default 2; MAX is always "
        "included)\n"
        "  --sizes LIST      explicit sizes instead, e.g. "
        "8,64,256,1K,4K,...,256M\n"
        "  -d DTYPE          float32 (default), float16, bfloat16, float64, "
        "int8, uint8,\n"
        "                    int32, uint32, int64, uint64, fp8_e4m3, "
        "fp8_e5m2\n"
        "  -o REDOP          sum (default), prod, max, min, avg\n"
        "  -r ROOT           root of broadcast, reduce, gather, scatter "
        "(default 0)\n"
        "  -w WARMUP         warmup calls per size (default 5; 2 from 64 "
        "MiB)\n"
        "  -n ITERS          timed calls per size (default: calibrated to "
        "--target)\n"
        "  --target SEC      seconds of timed calls per size (default 0.3)\n"
        "  --check           verify every element of every timed call; any "
        "wrong one\n"
        "                    makes the exit code 1 (each call is then timed "
        "alone)\n"
        "  --algo NAME       force an algorithm (sets SCOMM_COLL_<OP>_ALGO "
        "for the\n"
        "                    ops that have NAME)\n"
        "  --out DIR         per-op <op>_ws<N>_<YYYYmmdd_HHMMSS>.{json,csv,"
        "md}\n"
        "                    (default .benchmarks/collective; 'none': no "
        "files)\n"
        "  --csv FILE, --json FILE, --md FILE\n"
        "                    also every record of the run in one file\n"
        "  --plot            busbw and latency PNGs per op with gnuplot, "
        "into --out\n"
        "  --peer-csv FILE   overlay a peer's results (anchors' CSV); "
        "repeatable\n"
        "  --quiet           no progress line, no file notes\n"
        "\n"
        "size: all_reduce, broadcast, reduce: the buffer; all_gather, "
        "gather: total\n"
        "output; reduce_scatter, scatter: total input; all_to_all: total "
        "input per rank.\n"
        "time: per call, slowest rank; algbw = size/time; busbw = algbw * "
        "2(n-1)/n\n"
        "(all_reduce), (n-1)/n (all_gather, reduce_scatter, all_to_all, "
        "gather,\n"
        "scatter), 1 (broadcast, reduce). 1 GB = 1e9 B.\n");
}

static int bc_parse_dtype(const char *s, scomm_dtype_t *dt)
{
    static const struct {
        const char   *name;
        scomm_dtype_t dt;
    } alias[] = {
        {"float", SCOMM_FLOAT32}, {"f32", SCOMM_FLOAT32},
        {"half", SCOMM_FLOAT16},  {"f16", SCOMM_FLOAT16},
        {"bf16", SCOMM_BFLOAT16}, {"double", SCOMM_FLOAT64},
        {"f64", SCOMM_FLOAT64},   {"int", SCOMM_INT32},
        {"e4m3", SCOMM_FP8_E4M3}, {"e5m2", SCOMM_FP8_E5M2},
    };
    size_t i;
    int d;

    for (d = 0; d < SCOMM_DTYPE_COUNT; d++) {
        if (strcmp(s, scomm_dtype_name((scomm_dtype_t)d)) == 0) {
            *dt = (scomm_dtype_t)d;
            return 0;
        }
    }
    for (i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
        if (strcmp(s, alias[i].name) == 0) {
            *dt = alias[i].dt;
            return 0;
        }
    }
    return -1;
}

static int bc_parse_redop(const char *s, scomm_redop_t *op)
{
    int i;

    for (i = 0; i < SCOMM_REDOP_COUNT; i++) {
        if (strcmp(s, scomm_redop_name((scomm_redop_t)i)) == 0) {
            *op = (scomm_redop_t)i;
            return 0;
        }
    }
    return -1;
}

static int bc_parse_ops(const char *s, bc_opts_t *o)
{
    const char *p = s, *e;
    int op, i, dup;

    if (strcmp(s, "all") == 0) {
        for (i = 0; i < BC_NOPS; i++) {
            o->ops[i] = i;
        }
        o->nops = BC_NOPS;
        return 0;
    }
    while (*p != '\0') {
        e  = strchr(p, ',');
        e  = (e != NULL) ? e : p + strlen(p);
        op = bc_op_find(p, (size_t)(e - p));
        if (op < 0) {
            fprintf(stderr, "scomm bench: unknown operation '%.*s'\n",
                    (int)(e - p), p);
            return -1;
        }
        for (i = 0, dup = 0; i < o->nops; i++) {
            dup |= (o->ops[i] == op);
        }
        if (!dup) {
            o->ops[o->nops++] = op;
        }
        p = (*e == ',') ? e + 1 : e;
    }
    return (o->nops > 0) ? 0 : -1;
}

static int bc_parse_sizes(const char *s, bc_opts_t *o)
{
    char buf[1024], *tok, *save = NULL;

    snprintf(buf, sizeof(buf), "%s", s);
    o->nsizes = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if ((o->nsizes == BC_MAX_SIZES) ||
            (scomm_cli_parse_size(tok, &o->sizes[o->nsizes]) != 0)) {
            fprintf(stderr, "scomm bench: bad size list '%s'\n", s);
            return -1;
        }
        o->nsizes++;
    }
    return (o->nsizes > 0) ? 0 : -1;
}

/* -b MIN, -b*f, ... and MAX itself (as `scomm bench p2p` does). */
static int bc_sweep(size_t minb, size_t maxb, long factor, bc_opts_t *o)
{
    size_t b = (minb > 0) ? minb : 1;

    o->nsizes = 0;
    for (;;) {
        if (o->nsizes == BC_MAX_SIZES) {
            fprintf(stderr, "scomm bench: more than %d sizes\n",
                    BC_MAX_SIZES);
            return -1;
        }
        o->sizes[o->nsizes++] = b;
        if (b >= maxb) {
            break;
        }
        b = (b > maxb / (size_t)factor) ? maxb : b * (size_t)factor;
    }
    return 0;
}

/*
 * Set SCOMM_COLL_<OP>_ALGO=name for the ops of the run that have an
 * algorithm called name (before scomm_init: the library reads it once).
 */
static int bc_set_algo(const bc_opts_t *o)
{
    int i, k, n, op, hits = 0, coll;
    char names[256];
    size_t len;

    for (i = 0; i < o->nops; i++) {
        op   = o->ops[i];
        coll = bc_ops[op].coll;
        if (coll < 0) {
            continue;
        }
        n = scomm_coll_algo_count((scomm_coll_op_t)coll);
        for (k = 0; k < n; k++) {
            if (strcmp(scomm_coll_algo_name((scomm_coll_op_t)coll, k),
                       o->algo) == 0) {
                setenv(bc_algo_env(op), o->algo, 1);
                hits++;
                break;
            }
        }
        if ((k == n) && (o->nops == 1)) {
            names[0] = '\0';
            for (k = 0, len = 0; (k < n) && (len < sizeof(names)); k++) {
                len += (size_t)snprintf(names + len, sizeof(names) - len,
                                        "%s%s", (k > 0) ? ", " : "",
                                        scomm_coll_algo_name(
                                            (scomm_coll_op_t)coll, k));
            }
            fprintf(stderr, "scomm bench: '%s' is not a %s algorithm; "
                    "valid: %s\n", o->algo, bc_ops[op].name, names);
            return -1;
        }
    }
    if (hits == 0) {
        fprintf(stderr, "scomm bench: no operation of this run has an "
                "algorithm called '%s'\n", o->algo);
        return -1;
    }
    return 0;
}

static int bc_parse(int argc, char **argv, bc_opts_t *o)
{
    size_t minb = 8, maxb = 64u << 20;
    long factor = 2;
    const char *sizes = NULL;
    char *end;
    int i;

    memset(o, 0, sizeof(*o));
    o->dtype  = SCOMM_FLOAT32;
    o->redop  = SCOMM_SUM;
    o->warmup = -1;
    o->target = 0.3;
    o->out    = ".benchmarks/collective";
    if (bc_parse_ops(argv[1], o) != 0) {
        return -1;
    }
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        int takes = 1;

        if (strcmp(a, "--check") == 0) {
            o->check = 1;
            takes    = 0;
        } else if (strcmp(a, "--plot") == 0) {
            o->plot = 1;
            takes   = 0;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            takes    = 0;
        } else if ((strcmp(a, "-h") == 0) || (strcmp(a, "--help") == 0)) {
            return 1;
        } else if (v == NULL) {
            fprintf(stderr, "scomm bench: option '%s' needs a value (or is "
                    "unknown)\n", a);
            return -1;
        } else if (strcmp(a, "-b") == 0) {
            if (scomm_cli_parse_size(v, &minb) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-e") == 0) {
            if (scomm_cli_parse_size(v, &maxb) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-f") == 0) {
            factor = strtol(v, &end, 10);
            if ((*end != '\0') || (factor < 2)) {
                goto bad;
            }
        } else if (strcmp(a, "--sizes") == 0) {
            sizes = v;
        } else if (strcmp(a, "-d") == 0) {
            if (bc_parse_dtype(v, &o->dtype) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-o") == 0) {
            if (bc_parse_redop(v, &o->redop) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-r") == 0) {
            o->root = (int)strtol(v, &end, 10);
            if ((*end != '\0') || (o->root < 0)) {
                goto bad;
            }
        } else if (strcmp(a, "-w") == 0) {
            o->warmup = (int)strtol(v, &end, 10);
            if ((*end != '\0') || (o->warmup < 0)) {
                goto bad;
            }
        } else if (strcmp(a, "-n") == 0) {
            o->iters = strtol(v, &end, 10);
            if ((*end != '\0') || (o->iters < 1) ||
                (o->iters > BC_MAX_ITERS)) {
                goto bad;
            }
        } else if (strcmp(a, "--target") == 0) {
            o->target = strtod(v, &end);
            if ((*end != '\0') || !(o->target > 0) || (o->target > 3600)) {
                goto bad;
            }
        } else if (strcmp(a, "--algo") == 0) {
            o->algo = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = (strcmp(v, "none") == 0) ? NULL : v;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = v;
        } else if (strcmp(a, "--json") == 0) {
            o->json = v;
        } else if (strcmp(a, "--md") == 0) {
            o->md = v;
        } else if (strcmp(a, "--peer-csv") == 0) {
            if (o->npeer == BC_MAX_PEERS) {
                fprintf(stderr, "scomm bench: at most %d --peer-csv files\n",
                        BC_MAX_PEERS);
                return -1;
            }
            o->peer_csv[o->npeer++] = v;
        } else {
            fprintf(stderr, "scomm bench: unknown option '%s'\n", a);
            return -1;
        }
        i += takes;
        continue;
bad:
        fprintf(stderr, "scomm bench: bad value '%s' for %s\n", v, a);
        return -1;
    }
    if (sizes != NULL) {
        return bc_parse_sizes(sizes, o);
    }
    if (minb > maxb) {
        fprintf(stderr, "scomm bench: need -b <= -e\n");
        return -1;
    }
    return bc_sweep(minb, maxb, factor, o);
}

int scomm_cli_bench_coll(int argc, char **argv)
{
    bc_opts_t o;
    bc_ctx_t c;
    scomm_status_t s;
    long long wrong = 0;
    time_t now;
    int i, rc = 0, prc;

    if (argc < 2) {
        scomm_cli_bench_coll_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--overlap") == 0) {
        return scomm_cli_bench_overlap(argc, argv); /* bench_overlap.c */
    }
    if ((strcmp(argv[1], "-h") == 0) || (strcmp(argv[1], "--help") == 0)) {
        scomm_cli_bench_coll_usage(stdout);
        return 0;
    }
    prc = bc_parse(argc, argv, &o);
    if (prc > 0) {
        scomm_cli_bench_coll_usage(stdout);
        return 0;
    }
    if (prc < 0) {
        fprintf(stderr, "scomm bench: see `scomm bench --help`\n");
        return 2;
    }
    if ((o.algo != NULL) && (bc_set_algo(&o) != 0)) {
        return 2;
    }
    memset(&c, 0, sizeof(c));
    c.o     = &o;
    c.esize = scomm_dtype_size(o.dtype);
    s = scomm_init_from_env(&c.comm);
    if (s != SCOMM_OK) {
        return bc_fail(NULL, s, "init");
    }
    c.rank      = scomm_rank(c.comm);
    c.size      = scomm_size(c.comm);
    c.transport = (c.size > 1) ? scomm_peer_transport(c.comm, 1) : "self";
    c.tty       = !o.quiet && isatty(STDERR_FILENO);
    if (o.root >= c.size) {
        if (c.rank == 0) {
            fprintf(stderr, "scomm bench: root %d >= %d ranks\n", o.root,
                    c.size);
        }
        scomm_comm_destroy(c.comm);
        return 2;
    }
    now = time(NULL);
    strftime(c.stamp, sizeof(c.stamp), "%Y%m%d_%H%M%S", localtime(&now));
    /* Every rank writes its files under rank 0's time stamp. */
    {
        int64_t t = (int64_t)now;

        s = scomm_broadcast(&t, 1, SCOMM_INT64, 0, c.comm);
        if (s != SCOMM_OK) {
            rc = bc_fail(c.comm, s, "broadcast");
            scomm_comm_destroy(c.comm);
            return rc;
        }
        now = (time_t)t;
        strftime(c.stamp, sizeof(c.stamp), "%Y%m%d_%H%M%S", localtime(&now));
    }
    if (c.rank == 0) {
        printf("# scomm %s bench: %d ranks, transport to rank 1: %s, "
               "sizes %zu..%zu B (%d)\n", scomm_version_string(), c.size,
               c.transport, o.sizes[0], o.sizes[o.nsizes - 1], o.nsizes);
    }
    for (i = 0; (i < o.nops) && (rc == 0); i++) {
        rc = bc_run_op(&c, o.ops[i], &wrong);
    }
    if (rc == 0) {
        int64_t msg[2] = {wrong, 0};

        if ((c.rank == 0) && (c.nres > 0)) {
            if (o.csv != NULL) {
                c.file_err |= bc_write_file(o.csv, bc_write_csv, &c, c.res,
                                            c.nres);
            }
            if (o.json != NULL) {
                c.file_err |= bc_write_file(o.json, bc_write_json, &c, c.res,
                                            c.nres);
            }
            if (o.md != NULL) {
                c.file_err |= bc_write_file(o.md, bc_write_md, &c, c.res,
                                            c.nres);
            }
            if (o.plot) {
                c.file_err |= bc_plot(&c);
            }
        }
        /* Every rank learns rank 0's verdict, so every exit code agrees. */
        msg[1] = c.file_err;
        s = scomm_broadcast(msg, 2, SCOMM_INT64, 0, c.comm);
        if (s != SCOMM_OK) {
            rc = bc_fail(c.comm, s, "broadcast");
        } else if ((msg[0] != 0) || (msg[1] != 0)) {
            if ((c.rank == 0) && (msg[0] != 0)) {
                fprintf(stderr, "scomm bench: %lld wrong elements\n",
                        (long long)msg[0]);
            }
            rc = 1;
        }
    }
    scomm_comm_destroy(c.comm);
    free(c.sbuf);
    free(c.rbuf);
    free(c.ref);
    free(c.tl);
    free(c.tmax);
    free(c.res);
    return rc;
}
