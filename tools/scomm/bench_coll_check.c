/*
 * bench_coll_check.c - the inputs of `scomm bench` and the references that
 * --check compares every output element with.
 *
 * Inputs are a function of (op, size, rank, index, seed), so any rank can
 * regenerate any other rank's data: the reference of a moved block
 * (all_gather, all_to_all, gather, scatter, broadcast) is the sender's
 * pattern, made again on the receiver. Reductions use small integers (or
 * powers of two for prod) chosen per dtype and rank count, so that every
 * partial result is exact and the result is bit-exact whatever the order
 * of combination; the reference is the reduction computed locally.
 *
 * Invariants:
 *  1. Every value stored in a floating dtype is an integer that dtype
 *     holds exactly, and so is every partial sum, product, max, min or
 *     average of them (bc_vals_init picks the ranges).
 *  2. Integer dtypes wrap as the library's reductions do (bc_wrap): the
 *     reference is computed in 64 bits and cut to the dtype's width.
 *  3. A wrong element is counted once, bitwise, whatever its dtype.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_coll.h"

#define BC_SEED 0x5c0ffee5eedull

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

/* ---- one rank's inputs and reference ------------------------------------- */

/*
 * Fill this rank's inputs for (op, size) and, with --check, the reference
 * of what it must receive. Returns the number of receive bytes to verify
 * (0: nothing on this rank) and sets *poison to whether they are to be
 * poisoned before each call (not the broadcast root's input).
 */
size_t bc_prepare(bc_ctx_t *c, int op, const bc_geo_t *g, int *poison)
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
long long bc_count_wrong(const unsigned char *got, const unsigned char *ref,
                         size_t bytes, size_t es)
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
