/*
 * test_reduce.c - unit test of the reduction kernels (src/coll/reduce.c).
 *
 * Everything is checked against a reference written independently here:
 *  - low-precision formats are decoded with ldexp() from their fields, and
 *    encoded by searching the sorted table of all their finite values for
 *    the nearest one (ties to the even code), not by bit manipulation;
 *  - float arithmetic is done in double and rounded once (to float32 for
 *    each step of a float32 accumulation, to the dtype at the end);
 *  - integer arithmetic is done in 128 bits and wrapped to the dtype.
 * Every available implementation (scalar, AVX2, AVX-512) must match the
 * reference bit for bit, NaN payloads included.
 *
 * Build: gcc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc
 *        tests/unit/test_reduce.c src/coll/reduce.c -lm
 */
#include "coll/reduce.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define TEST_X86 1
#else
#define TEST_X86 0
#endif

static long g_pass;
static long g_fail;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            g_pass++;                                                      \
        } else {                                                           \
            g_fail++;                                                      \
            if (g_fail <= 40) {                                            \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);       \
                fprintf(stderr, __VA_ARGS__);                              \
                fputc('\n', stderr);                                       \
            }                                                              \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

/* splitmix64: deterministic, so failures reproduce. */
static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t fbits(float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;

    memcpy(&f, &u, 4);
    return f;
}

static uint64_t dbits(double d)
{
    uint64_t u;

    memcpy(&u, &d, 8);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;

    memcpy(&d, &u, 8);
    return d;
}

static size_t esize(int dt)
{
    static const size_t sz[SCOMM_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};

    return sz[dt];
}

static int is_int(int dt)
{
    return dt <= SCOMM_UINT64;
}

static int is_signed_int(int dt)
{
    return dt == SCOMM_INT8 || dt == SCOMM_INT32 || dt == SCOMM_INT64;
}

static int is_lowp(int dt)
{
    return dt == SCOMM_FLOAT16 || dt == SCOMM_BFLOAT16 || dt == SCOMM_FP8_E4M3 ||
           dt == SCOMM_FP8_E5M2;
}

static uint64_t get_el(int dt, const void *buf, size_t i)
{
    const unsigned char *p = (const unsigned char *)buf + i * esize(dt);
    uint64_t v = 0;

    memcpy(&v, p, esize(dt)); /* little endian */
    return v;
}

static void set_el(int dt, void *buf, size_t i, uint64_t v)
{
    memcpy((unsigned char *)buf + i * esize(dt), &v, esize(dt));
}

static const char *dt_name(int dt)
{
    static const char *n[SCOMM_DTYPE_COUNT] = {"int8", "uint8", "int32", "uint32", "int64",
                                               "uint64", "float16", "float32", "float64",
                                               "bfloat16", "e4m3", "e5m2"};

    return n[dt];
}

static const char *op_name(int op)
{
    static const char *n[SCOMM_REDOP_COUNT] = {"sum", "prod", "max", "min", "avg"};

    return n[op];
}

/* ------------------------------------------------------------------------ */
/* Reference low-precision formats                                           */
/* ------------------------------------------------------------------------ */

/* A double NaN with the given sign and payload bits, quiet. */
static double mk_nan(int neg, uint64_t payload)
{
    return bitsd((neg ? 0x8000000000000000ull : 0) | 0x7ff8000000000000ull | payload);
}

/* Decode a low-precision code to its exact value (NaN: quiet, payload kept). */
static double ref_dec(int dt, uint32_t c)
{
    int neg;
    int e;
    int m;
    double v;

    switch (dt) {
    case SCOMM_FLOAT16:
        neg = (c >> 15) & 1;
        e = (c >> 10) & 31;
        m = c & 1023;
        if (e == 31) {
            return m == 0 ? (neg ? -INFINITY : INFINITY) : mk_nan(neg, (uint64_t)m << 42);
        }
        v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
        break;
    case SCOMM_BFLOAT16:
        neg = (c >> 15) & 1;
        e = (c >> 7) & 255;
        m = c & 127;
        if (e == 255) {
            return m == 0 ? (neg ? -INFINITY : INFINITY) : mk_nan(neg, (uint64_t)m << 45);
        }
        v = e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
        break;
    case SCOMM_FP8_E4M3:
        neg = (c >> 7) & 1;
        e = (c >> 3) & 15;
        m = c & 7;
        if (e == 15 && m == 7) {
            return mk_nan(neg, 0);
        }
        v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
        break;
    default: /* e5m2 */
        neg = (c >> 7) & 1;
        e = (c >> 2) & 31;
        m = c & 3;
        if (e == 31) {
            return m == 0 ? (neg ? -INFINITY : INFINITY) : mk_nan(neg, (uint64_t)m << 50);
        }
        v = e == 0 ? ldexp(m, -16) : ldexp(4 + m, e - 17);
        break;
    }
    return neg ? -v : v;
}

/*
 * Sorted positive finite values of each format, indexed by code; one extra
 * entry past the largest finite holds 2^(emax+1) with the infinity code (for
 * the formats that have one), so that overflow rounds like any other value.
 */
typedef struct {
    int n;          /* entries, pseudo-infinity included */
    int saturate;   /* e4m3: no infinity, clamp to the last entry */
    uint32_t sign;  /* sign bit of a code */
    double *val;
} fmt_table_t;

static fmt_table_t g_tab[SCOMM_DTYPE_COUNT];

static void build_tables(void)
{
    struct {
        int dt;
        int maxcode;
        int inf;
        uint32_t sign;
        double next;
    } f[4] = {
        {SCOMM_FLOAT16, 0x7bff, 1, 0x8000, 65536.0},
        {SCOMM_BFLOAT16, 0x7f7f, 1, 0x8000, 0x1p128},
        {SCOMM_FP8_E4M3, 0x7e, 0, 0x80, 0},
        {SCOMM_FP8_E5M2, 0x7b, 1, 0x80, 65536.0},
    };

    for (int k = 0; k < 4; k++) {
        fmt_table_t *t = &g_tab[f[k].dt];

        t->n = f[k].maxcode + 1 + f[k].inf;
        t->saturate = !f[k].inf;
        t->sign = f[k].sign;
        t->val = malloc(sizeof(double) * (size_t)t->n);
        for (int c = 0; c <= f[k].maxcode; c++) {
            t->val[c] = ref_dec(f[k].dt, (uint32_t)c);
            if (c > 0 && !(t->val[c] > t->val[c - 1])) {
                fprintf(stderr, "table of %s not increasing at %d\n", dt_name(f[k].dt), c);
                exit(2);
            }
        }
        if (f[k].inf) {
            t->val[f[k].maxcode + 1] = f[k].next;
        }
    }
}

/*
 * Encode a double to a low-precision code by nearest search (ties to the
 * even code). NaN follows the documented rule, applied to the float32 NaN:
 * keep the sign, set the quiet bit, keep the leading payload bits.
 */
static uint32_t ref_enc(int dt, double x)
{
    const fmt_table_t *t = &g_tab[dt];
    uint32_t s;
    double ax;
    int lo;
    int hi;
    uint32_t code;

    if (isnan(x)) {
        uint32_t u = fbits((float)x);

        switch (dt) {
        case SCOMM_FLOAT16:
            return ((u >> 16) & 0x8000) | 0x7e00 | ((u >> 13) & 0x3ff);
        case SCOMM_BFLOAT16:
            return (u >> 16) | 0x40;
        case SCOMM_FP8_E4M3:
            return ((u >> 24) & 0x80) | 0x7f;
        default:
            return ((u >> 24) & 0x80) | 0x7e | ((u >> 21) & 1);
        }
    }
    s = signbit(x) ? t->sign : 0;
    ax = fabs(x);
    if (ax >= t->val[t->n - 1]) {
        return s | (uint32_t)(t->n - 1);
    }
    /* Largest lo with val[lo] <= ax. */
    lo = 0;
    hi = t->n - 1;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;

        if (t->val[mid] <= ax) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if (t->val[lo] == ax) {
        code = (uint32_t)lo;
    } else {
        double mid = (t->val[lo] + t->val[hi]) / 2; /* exact */

        if (ax < mid) {
            code = (uint32_t)lo;
        } else if (ax > mid) {
            code = (uint32_t)hi;
        } else {
            code = (lo & 1) ? (uint32_t)hi : (uint32_t)lo;
        }
    }
    return s | code;
}

/* Reference float32 bits of a low-precision code. */
static uint32_t ref_widen(int dt, uint32_t c)
{
    if (dt == SCOMM_BFLOAT16) {
        return c << 16; /* exact, a signalling NaN stays signalling */
    }
    return fbits((float)ref_dec(dt, c));
}

static uint32_t lp_to_f32_api(int dt, uint32_t c)
{
    switch (dt) {
    case SCOMM_FLOAT16:
        return fbits(scomm_f16_to_f32((uint16_t)c));
    case SCOMM_BFLOAT16:
        return fbits(scomm_bf16_to_f32((uint16_t)c));
    case SCOMM_FP8_E4M3:
        return fbits(scomm_e4m3_to_f32((uint8_t)c));
    default:
        return fbits(scomm_e5m2_to_f32((uint8_t)c));
    }
}

static uint32_t f32_to_lp_api(int dt, float f)
{
    switch (dt) {
    case SCOMM_FLOAT16:
        return scomm_f32_to_f16(f);
    case SCOMM_BFLOAT16:
        return scomm_f32_to_bf16(f);
    case SCOMM_FP8_E4M3:
        return scomm_f32_to_e4m3(f);
    default:
        return scomm_f32_to_e5m2(f);
    }
}

/* ------------------------------------------------------------------------ */
/* Reference arithmetic                                                      */
/* ------------------------------------------------------------------------ */

static double quiet_d(double x)
{
    return bitsd(dbits(x) | 0x0008000000000000ull);
}

/* One float operation in double with the documented NaN and zero rules. */
static double ref_fop(int op, double x, double y)
{
    if (isnan(x)) {
        return quiet_d(x);
    }
    if (isnan(y)) {
        return quiet_d(y);
    }
    switch (op) {
    case SCOMM_SUM:
        return x + y;
    case SCOMM_PROD:
        return x * y;
    case SCOMM_MAX:
        if (x == y) {
            return signbit(x) ? y : x;
        }
        return x > y ? x : y;
    default:
        if (x == y) {
            return signbit(x) ? x : y;
        }
        return x < y ? x : y;
    }
}

typedef __int128 i128;

static i128 int_dec(int dt, uint64_t v)
{
    switch (dt) {
    case SCOMM_INT8:
        return (int8_t)(uint8_t)v;
    case SCOMM_UINT8:
        return (uint8_t)v;
    case SCOMM_INT32:
        return (int32_t)(uint32_t)v;
    case SCOMM_UINT32:
        return (uint32_t)v;
    case SCOMM_INT64:
        return (int64_t)v;
    default:
        return (i128)v;
    }
}

/* Wrap an exact integer to the dtype (modulo 2^bits, two's complement). */
static i128 int_wrap(int dt, i128 v)
{
    int bits = (int)esize(dt) * 8;
    unsigned __int128 m = ((unsigned __int128)1 << bits) - 1;
    unsigned __int128 u = (unsigned __int128)v & m;

    if (is_signed_int(dt) && (u >> (bits - 1)) != 0) {
        return (i128)u - ((i128)1 << bits);
    }
    return (i128)u;
}

static uint64_t int_enc(int dt, i128 v)
{
    return (uint64_t)((unsigned __int128)int_wrap(dt, v) & 0xffffffffffffffffull);
}

static i128 ref_iop(int dt, int op, i128 x, i128 y)
{
    switch (op) {
    case SCOMM_SUM:
        return int_wrap(dt, x + y);
    case SCOMM_PROD:
        /* |x*y| < 2^128 for 64-bit operands: compute unsigned, then wrap. */
        return int_wrap(dt, (i128)((unsigned __int128)x * (unsigned __int128)y));
    case SCOMM_MAX:
        return x > y ? x : y;
    default:
        return x < y ? x : y;
    }
}

/* Pairwise reduce2 reference: double arithmetic, one rounding to dtype. */
static uint64_t ref_pair(int dt, int op, uint64_t a, uint64_t b)
{
    if (op == SCOMM_AVG) {
        op = SCOMM_SUM;
    }
    if (is_int(dt)) {
        return int_enc(dt, ref_iop(dt, op, int_dec(dt, a), int_dec(dt, b)));
    }
    if (dt == SCOMM_FLOAT32) {
        return fbits((float)ref_fop(op, bitsf((uint32_t)a), bitsf((uint32_t)b)));
    }
    if (dt == SCOMM_FLOAT64) {
        return dbits(ref_fop(op, bitsd(a), bitsd(b)));
    }
    return ref_enc(dt, ref_fop(op, ref_dec(dt, (uint32_t)a), ref_dec(dt, (uint32_t)b)));
}

/*
 * reduce_n reference: left to right; float32 and low precision accumulate
 * in float32 (each step rounded to float32), AVG divides the accumulator
 * (integers truncating toward zero), low precision rounds once at the end.
 */
static uint64_t ref_n(int dt, int op, const uint64_t *x, int n, int divisor)
{
    int avg = op == SCOMM_AVG;
    int d = divisor < 1 ? 1 : divisor;

    if (avg) {
        op = SCOMM_SUM;
    }
    if (n == 1 && !avg) {
        return x[0];
    }
    if (is_int(dt)) {
        i128 acc = int_dec(dt, x[0]);

        for (int k = 1; k < n; k++) {
            acc = ref_iop(dt, op, acc, int_dec(dt, x[k]));
        }
        if (avg) {
            acc = acc / d; /* C division truncates toward zero */
        }
        return int_enc(dt, acc);
    }
    if (dt == SCOMM_FLOAT64) {
        double acc = bitsd(x[0]);

        for (int k = 1; k < n; k++) {
            acc = ref_fop(op, acc, bitsd(x[k]));
        }
        if (avg) {
            acc = isnan(acc) ? quiet_d(acc) : acc / d;
        }
        return dbits(acc);
    } else {
        float acc;

        if (dt == SCOMM_FLOAT32) {
            acc = (float)(double)bitsf((uint32_t)x[0]);
        } else {
            acc = (float)ref_dec(dt, (uint32_t)x[0]);
        }
        for (int k = 1; k < n; k++) {
            double y = dt == SCOMM_FLOAT32 ? (double)bitsf((uint32_t)x[k])
                                           : ref_dec(dt, (uint32_t)x[k]);

            acc = (float)ref_fop(op, acc, y);
        }
        if (avg) {
            acc = (float)((double)acc / d);
        }
        return dt == SCOMM_FLOAT32 ? fbits(acc) : ref_enc(dt, acc);
    }
}

static uint64_t ref_div(int dt, uint64_t x, int d)
{
    if (d < 1) {
        return x;
    }
    if (is_int(dt)) {
        return int_enc(dt, int_dec(dt, x) / d);
    }
    if (dt == SCOMM_FLOAT64) {
        return dbits(bitsd(x) / d);
    }
    if (dt == SCOMM_FLOAT32) {
        return fbits((float)((double)bitsf((uint32_t)x) / d));
    }
    return ref_enc(dt, (float)(ref_dec(dt, (uint32_t)x) / d));
}

/* ------------------------------------------------------------------------ */
/* Random inputs                                                             */
/* ------------------------------------------------------------------------ */

static const uint32_t g_f32_special[] = {
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000,
    0x7fc12345, 0x7f800001, 0xff912345, 0x00000001, 0x807fffff, 0x00400000,
    0x7f7fffff, 0xff7fffff, 0x00800000, 0x7e967699, 0x3f800000, 0xbf800000,
};

static const uint64_t g_f64_special[] = {
    0x0000000000000000ull, 0x8000000000000000ull, 0x7ff0000000000000ull,
    0xfff0000000000000ull, 0x7ff8000000000000ull, 0xfff8000000000abcull,
    0x7ff0000000000001ull, 0x7ff4000000000000ull, 0x0000000000000001ull,
    0x800fffffffffffffull, 0x7fefffffffffffffull, 0x0010000000000000ull,
    0x3ff0000000000000ull,
};

static uint64_t gen_el(int dt)
{
    uint64_t r = rnd();
    int special = (r & 15) < 2; /* one in eight */

    r = rnd();
    switch (dt) {
    case SCOMM_INT8:
    case SCOMM_UINT8:
    case SCOMM_INT32:
    case SCOMM_UINT32:
    case SCOMM_INT64:
    case SCOMM_UINT64:
        if (special) {
            return int_enc(dt, (i128)(int)(r % 41) - 20);
        }
        return r;
    case SCOMM_FLOAT32:
        if (special) {
            return g_f32_special[r % (sizeof(g_f32_special) / sizeof(g_f32_special[0]))];
        }
        return fbits(ldexpf((float)((r >> 40) & 0xffffff) / 16777216.0f + 0.5f,
                            (int)(r % 41) - 20) *
                     ((r >> 39) & 1 ? -1.0f : 1.0f));
    case SCOMM_FLOAT64:
        if (special) {
            return g_f64_special[r % (sizeof(g_f64_special) / sizeof(g_f64_special[0]))];
        }
        return dbits(ldexp((double)(r >> 11) / 9007199254740992.0 + 0.5,
                           (int)(r % 41) - 20) *
                     ((r >> 10) & 1 ? -1.0 : 1.0));
    case SCOMM_FLOAT16:
    case SCOMM_BFLOAT16:
        if (!special) {
            /* Finite, exponent not all ones. */
            uint32_t c = (uint32_t)r & 0xffff;
            uint32_t emask = dt == SCOMM_FLOAT16 ? 0x7c00 : 0x7f80;

            if ((c & emask) == emask) {
                c &= ~0x4000u;
            }
            return c;
        }
        return r & 0xffff;
    case SCOMM_FP8_E4M3:
        if (!special && (r & 0x7f) == 0x7f) {
            return r & 0xbf;
        }
        return r & 0xff;
    default:
        if (!special && (r & 0x7c) == 0x7c) {
            return r & 0xbf;
        }
        return r & 0xff;
    }
}

static void fill(int dt, void *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        set_el(dt, buf, i, gen_el(dt));
    }
}

/* ------------------------------------------------------------------------ */
/* Conversion tests                                                          */
/* ------------------------------------------------------------------------ */

static int g_impls[4];
static int g_nimpls;

static void test_widen_exhaustive(int dt)
{
    uint32_t ncodes = esize(dt) == 2 ? 65536u : 256u;
    /* Quiet bit of the format (e4m3 has a single NaN per sign). */
    uint32_t quiet = dt == SCOMM_FLOAT16    ? 0x200
                     : dt == SCOMM_BFLOAT16 ? 0x40
                     : dt == SCOMM_FP8_E5M2 ? 0x2
                                            : 0;
    long bad_widen = 0;
    long bad_round = 0;
    unsigned char *codes = malloc(ncodes * esize(dt) + 1);
    float *f = malloc((ncodes + 1) * sizeof(float));
    unsigned char *back = malloc(ncodes * esize(dt) + 1);

    for (uint32_t c = 0; c < ncodes; c++) {
        uint32_t w = lp_to_f32_api(dt, c);
        uint32_t expect_w = ref_widen(dt, c);
        int nan = isnan(bitsf(w));
        uint32_t expect_c = nan ? (dt == SCOMM_FP8_E4M3 ? c : c | quiet) : c;

        if (w != expect_w) {
            if (bad_widen++ < 5) {
                fprintf(stderr, "%s widen 0x%x: got %08x want %08x\n", dt_name(dt), c, w, expect_w);
            }
        }
        if (f32_to_lp_api(dt, bitsf(w)) != expect_c) {
            if (bad_round++ < 5) {
                fprintf(stderr, "%s round trip 0x%x: got 0x%x want 0x%x\n", dt_name(dt), c,
                        f32_to_lp_api(dt, bitsf(w)), expect_c);
            }
        }
        set_el(dt, codes + 1, c, c);
    }
    CHECK(bad_widen == 0, "%s: %ld widening mismatches", dt_name(dt), bad_widen);
    CHECK(bad_round == 0, "%s: %ld round-trip mismatches", dt_name(dt), bad_round);

    /* Bulk conversions, on a misaligned buffer, with every implementation. */
    for (int k = 0; k < g_nimpls; k++) {
        long bad = 0;

        scomm_reduce_set_impl(g_impls[k]);
        scomm_cvt_to_f32(f + 1, codes + 1, ncodes, dt);
        scomm_cvt_from_f32(back + 1, f + 1, ncodes, dt);
        for (uint32_t c = 0; c < ncodes; c++) {
            uint32_t w = fbits(f[c + 1]);

            if (w != lp_to_f32_api(dt, c) ||
                get_el(dt, back + 1, c) != f32_to_lp_api(dt, bitsf(w))) {
                if (bad++ < 5) {
                    fprintf(stderr, "%s bulk %s code 0x%x: %08x / 0x%llx\n", dt_name(dt),
                            scomm_reduce_impl_name(g_impls[k]), c, w,
                            (unsigned long long)get_el(dt, back + 1, c));
                }
            }
        }
        CHECK(bad == 0, "%s bulk conversions (%s): %ld mismatches", dt_name(dt),
              scomm_reduce_impl_name(g_impls[k]), bad);
    }
    free(codes);
    free(f);
    free(back);
}

/* Add x and the float32 values around it to the list. */
static size_t add_around(float *v, size_t n, float x)
{
    v[n++] = x;
    v[n++] = nextafterf(x, INFINITY);
    v[n++] = nextafterf(x, -INFINITY);
    v[n++] = -x;
    return n;
}

static void test_narrow(int dt)
{
    const fmt_table_t *t = &g_tab[dt];
    size_t cap = 4 * (size_t)t->n * 2 + 3000000;
    float *v = malloc(cap * sizeof(float));
    unsigned char *out = malloc(cap * esize(dt) + 1);
    size_t n = 0;
    long bad = 0;

    /* Every finite value, every midpoint between neighbours, and +-1 ulp. */
    for (int c = 0; c < t->n; c++) {
        if (!isinf((float)t->val[c])) {
            n = add_around(v, n, (float)t->val[c]);
        }
        if (c + 1 < t->n) {
            n = add_around(v, n, (float)((t->val[c] + t->val[c + 1]) / 2));
        }
    }
    /* Specials. */
    for (size_t k = 0; k < sizeof(g_f32_special) / sizeof(g_f32_special[0]); k++) {
        n = add_around(v, n, bitsf(g_f32_special[k]));
    }
    n = add_around(v, n, 464.0f);
    n = add_around(v, n, 480.0f);
    n = add_around(v, n, 65520.0f);
    n = add_around(v, n, 61440.0f);
    n = add_around(v, n, FLT_MAX);
    n = add_around(v, n, FLT_MIN);
    /* Random bit patterns, and random values near the format's range. */
    for (int k = 0; k < 1000000; k++) {
        uint64_t r = rnd();

        v[n++] = bitsf((uint32_t)r);
        if (dt == SCOMM_BFLOAT16) {
            v[n++] = bitsf((uint32_t)(r >> 32));
        } else {
            int emin = dt == SCOMM_FLOAT16 ? -28 : dt == SCOMM_FP8_E4M3 ? -12 : -20;
            int emax = dt == SCOMM_FLOAT16 ? 18 : dt == SCOMM_FP8_E4M3 ? 10 : 18;
            int e = emin + (int)((r >> 32) % (uint64_t)(emax - emin + 1));

            v[n++] = ldexpf(1.0f + (float)(r & 0x7fffff) / 8388608.0f, e) *
                     ((r >> 63) ? -1.0f : 1.0f);
        }
        if (n + 8 > cap) {
            break;
        }
    }

    for (size_t i = 0; i < n; i++) {
        uint32_t want = ref_enc(dt, (double)v[i]);
        uint32_t got = f32_to_lp_api(dt, v[i]);

        if (got != want && bad++ < 5) {
            fprintf(stderr, "%s narrow %08x (%.9g): got 0x%x want 0x%x\n", dt_name(dt),
                    fbits(v[i]), (double)v[i], got, want);
        }
    }
    CHECK(bad == 0, "%s: %ld of %zu narrowing mismatches", dt_name(dt), bad, n);

    for (int k = 0; k < g_nimpls; k++) {
        bad = 0;
        scomm_reduce_set_impl(g_impls[k]);
        scomm_cvt_from_f32(out + 1, v, n, dt);
        for (size_t i = 0; i < n; i++) {
            if (get_el(dt, out + 1, i) != ref_enc(dt, (double)v[i]) && bad++ < 5) {
                fprintf(stderr, "%s bulk narrow (%s) %08x: got 0x%llx\n", dt_name(dt),
                        scomm_reduce_impl_name(g_impls[k]), fbits(v[i]),
                        (unsigned long long)get_el(dt, out + 1, i));
            }
        }
        CHECK(bad == 0, "%s bulk narrowing (%s): %ld mismatches", dt_name(dt),
              scomm_reduce_impl_name(g_impls[k]), bad);
    }
    free(v);
    free(out);
}

static void test_conversion_spots(void)
{
    /* A few values worked out by hand. */
    CHECK(scomm_f32_to_f16(65504.0f) == 0x7bff, "f16 max");
    CHECK(scomm_f32_to_f16(65519.99f) == 0x7bff, "f16 below overflow threshold");
    CHECK(scomm_f32_to_f16(65520.0f) == 0x7c00, "f16 overflow to inf");
    CHECK(scomm_f32_to_f16(-1e9f) == 0xfc00, "f16 -inf");
    CHECK(scomm_f32_to_f16(0x1p-25f) == 0x0000, "f16 half of min subnormal ties to 0");
    CHECK(scomm_f32_to_f16(0x1.8p-24f) == 0x0002, "f16 1.5 min subnormal ties to 2");
    CHECK(scomm_f32_to_f16(-0.0f) == 0x8000, "f16 -0");
    CHECK(scomm_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even down");
    CHECK(scomm_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even up");
    CHECK(scomm_f32_to_bf16(bitsf(0x7f7fffff)) == 0x7f80, "bf16 overflow to inf");
    CHECK(scomm_f32_to_e4m3(448.0f) == 0x7e, "e4m3 max");
    CHECK(scomm_f32_to_e4m3(1e6f) == 0x7e, "e4m3 saturates");
    CHECK(scomm_f32_to_e4m3(-INFINITY) == 0xfe, "e4m3 -inf saturates");
    CHECK(scomm_f32_to_e4m3(NAN) == 0x7f, "e4m3 NaN");
    CHECK(scomm_f32_to_e4m3(0x1p-10f) == 0x00, "e4m3 half min subnormal ties to 0");
    CHECK(scomm_f32_to_e4m3(0x1.8p-9f) == 0x02, "e4m3 1.5 min subnormal ties to 2");
    CHECK(scomm_e4m3_to_f32(0x7e) == 448.0f, "e4m3 0x7e");
    CHECK(scomm_e4m3_to_f32(0x01) == 0x1p-9f, "e4m3 min subnormal");
    CHECK(isnan(scomm_e4m3_to_f32(0xff)) && signbit(scomm_e4m3_to_f32(0xff)), "e4m3 -NaN");
    CHECK(scomm_f32_to_e5m2(57344.0f) == 0x7b, "e5m2 max");
    CHECK(scomm_f32_to_e5m2(61440.0f) == 0x7c, "e5m2 overflow tie to inf");
    CHECK(scomm_f32_to_e5m2(61439.0f) == 0x7b, "e5m2 below overflow");
    CHECK(scomm_e5m2_to_f32(0x01) == 0x1p-16f, "e5m2 min subnormal");
    CHECK(fbits(scomm_f16_to_f32(0x7c01)) == 0x7fc02000, "f16 sNaN quieted with payload");
    CHECK(fbits(scomm_bf16_to_f32(0x7f81)) == 0x7f810000, "bf16 sNaN widened exactly");
    CHECK(scomm_f32_to_f16(bitsf(0x7f800001)) == 0x7e00, "f32 sNaN -> f16 quiet NaN");
    CHECK(scomm_f32_to_bf16(bitsf(0xff800001)) == 0xffc0, "f32 -sNaN -> bf16 quiet NaN");
}

static void test_cvt_other(void)
{
    const float src[6] = {-3.7f, 2.9f, NAN, 1e20f, -1e20f, -0.5f};
    int8_t i8[6];
    uint8_t u8[6];
    int64_t i64[6];
    double f64[6];
    float back[6];
    int32_t i32[3] = {INT32_MIN, -5, 16777217};

    scomm_cvt_from_f32(i8, src, 6, SCOMM_INT8);
    CHECK(i8[0] == -3 && i8[1] == 2 && i8[2] == 0 && i8[3] == 127 && i8[4] == -128 && i8[5] == 0,
          "cvt_from_f32 int8");
    scomm_cvt_from_f32(u8, src, 6, SCOMM_UINT8);
    CHECK(u8[0] == 0 && u8[1] == 2 && u8[2] == 0 && u8[3] == 255 && u8[4] == 0 && u8[5] == 0,
          "cvt_from_f32 uint8");
    scomm_cvt_from_f32(i64, src, 6, SCOMM_INT64);
    CHECK(i64[0] == -3 && i64[3] == INT64_MAX && i64[4] == INT64_MIN, "cvt_from_f32 int64");
    scomm_cvt_from_f32(f64, src, 6, SCOMM_FLOAT64);
    CHECK(f64[0] == (double)-3.7f && isnan(f64[2]), "cvt_from_f32 float64");
    scomm_cvt_to_f32(back, f64, 6, SCOMM_FLOAT64);
    CHECK(memcmp(back, src, sizeof(float) * 2) == 0 && isnan(back[2]), "cvt_to_f32 float64");
    scomm_cvt_to_f32(back, i32, 3, SCOMM_INT32);
    CHECK(back[0] == -2147483648.0f && back[1] == -5.0f && back[2] == 16777216.0f,
          "cvt_to_f32 int32 (16777217 rounds to even)");
}

/* ------------------------------------------------------------------------ */
/* Reduction tests                                                           */
/* ------------------------------------------------------------------------ */

static const size_t g_counts[] = {0, 1, 7, 31, 64, 1000, 4099};
#define NCOUNTS (sizeof(g_counts) / sizeof(g_counts[0]))
#define MAXN 5

/* Compare count elements of got against want; report the first mismatch. */
static int same(int dt, const void *got, const void *want, size_t count, const char *what,
                int impl, int op, int n)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t g = get_el(dt, got, i);
        uint64_t w = get_el(dt, want, i);

        if (g != w) {
            if (g_fail < 40) {
                fprintf(stderr,
                        "  %s %s %s %s n=%d count=%zu: element %zu got 0x%llx want 0x%llx\n",
                        what, scomm_reduce_impl_name(impl), dt_name(dt), op_name(op), n,
                        count, i, (unsigned long long)g, (unsigned long long)w);
            }
            return 0;
        }
    }
    return 1;
}

static void test_reduce_case(int impl, int dt, int op, size_t count)
{
    size_t es = esize(dt);
    size_t bytes = (count + 2) * es;
    unsigned char *src[MAXN];
    unsigned char *in[MAXN];
    unsigned char *dst = malloc(bytes);
    unsigned char *want = malloc(bytes);
    unsigned char *work[MAXN];
    uint64_t x[MAXN];

    for (int k = 0; k < MAXN; k++) {
        src[k] = malloc(bytes);
        work[k] = malloc(bytes);
        /* Offset by one element: misaligned for every vector width. */
        in[k] = src[k] + es;
        fill(dt, in[k], count);
    }

    /* reduce2: dst = dst op src, with separate buffers. */
    memcpy(work[0], src[0], bytes);
    for (size_t i = 0; i < count; i++) {
        set_el(dt, want, i, ref_pair(dt, op, get_el(dt, in[0], i), get_el(dt, in[1], i)));
    }
    scomm_reduce2(work[0] + es, in[1], count, dt, op);
    CHECK(same(dt, work[0] + es, want, count, "reduce2", impl, op, 2), "reduce2");

    /* reduce2 with dst == src. */
    memcpy(work[0], src[0], bytes);
    for (size_t i = 0; i < count; i++) {
        set_el(dt, want, i, ref_pair(dt, op, get_el(dt, in[0], i), get_el(dt, in[0], i)));
    }
    scomm_reduce2(work[0] + es, work[0] + es, count, dt, op);
    CHECK(same(dt, work[0] + es, want, count, "reduce2 alias", impl, op, 2), "reduce2 alias");

    /* reduce2_out: separate dst, dst == a, dst == b. */
    for (size_t i = 0; i < count; i++) {
        set_el(dt, want, i, ref_pair(dt, op, get_el(dt, in[0], i), get_el(dt, in[1], i)));
    }
    memset(dst, 0xa5, bytes);
    scomm_reduce2_out(dst + es, in[0], in[1], count, dt, op);
    CHECK(same(dt, dst + es, want, count, "reduce2_out", impl, op, 2), "reduce2_out");
    {
        static const unsigned char guard[8] = {0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5};

        CHECK(memcmp(dst, guard, es) == 0 && memcmp(dst + es * (count + 1), guard, es) == 0,
              "reduce2_out wrote outside [0, count) (%s %s)", dt_name(dt), op_name(op));
    }
    memcpy(work[0], src[0], bytes);
    scomm_reduce2_out(work[0] + es, work[0] + es, in[1], count, dt, op);
    CHECK(same(dt, work[0] + es, want, count, "reduce2_out dst=a", impl, op, 2), "dst=a");
    memcpy(work[1], src[1], bytes);
    scomm_reduce2_out(work[1] + es, in[0], work[1] + es, count, dt, op);
    CHECK(same(dt, work[1] + es, want, count, "reduce2_out dst=b", impl, op, 2), "dst=b");

    /* reduce_n for n = 1..5: separate dst, then dst aliasing each source. */
    for (int n = 1; n <= MAXN; n++) {
        const void *srcs[MAXN];

        for (size_t i = 0; i < count; i++) {
            for (int k = 0; k < n; k++) {
                x[k] = get_el(dt, in[k], i);
            }
            set_el(dt, want, i, ref_n(dt, op, x, n, n));
        }
        for (int k = 0; k < n; k++) {
            srcs[k] = in[k];
        }
        scomm_reduce_n(dst + es, srcs, n, count, dt, op, n);
        CHECK(same(dt, dst + es, want, count, "reduce_n", impl, op, n), "reduce_n");
        for (int alias = 0; alias < n; alias++) {
            for (int k = 0; k < n; k++) {
                memcpy(work[k], src[k], bytes);
                srcs[k] = work[k] + es;
            }
            scomm_reduce_n(work[alias] + es, srcs, n, count, dt, op, n);
            CHECK(same(dt, work[alias] + es, want, count, "reduce_n alias", impl, op, n),
                  "reduce_n dst=srcs[%d]", alias);
        }
    }

    /* AVG with a divisor other than n, and with an invalid divisor (1). */
    if (op == SCOMM_AVG) {
        const void *srcs[MAXN] = {in[0], in[1], in[2], in[3], in[4]};

        for (size_t i = 0; i < count; i++) {
            for (int k = 0; k < 3; k++) {
                x[k] = get_el(dt, in[k], i);
            }
            set_el(dt, want, i, ref_n(dt, op, x, 3, 7));
        }
        scomm_reduce_n(dst + es, srcs, 3, count, dt, op, 7);
        CHECK(same(dt, dst + es, want, count, "reduce_n avg/7", impl, op, 3), "avg/7");
        for (size_t i = 0; i < count; i++) {
            x[0] = get_el(dt, in[0], i);
            x[1] = get_el(dt, in[1], i);
            set_el(dt, want, i, ref_n(dt, op, x, 2, 0));
        }
        scomm_reduce_n(dst + es, srcs, 2, count, dt, op, 0);
        CHECK(same(dt, dst + es, want, count, "reduce_n avg/0", impl, op, 2), "avg/0");
    }

    /* reduce_div, in place, divisor 3. */
    if (op == SCOMM_SUM) {
        memcpy(work[0], src[0], bytes);
        for (size_t i = 0; i < count; i++) {
            set_el(dt, want, i, ref_div(dt, get_el(dt, in[0], i), 3));
        }
        scomm_reduce_div(work[0] + es, count, dt, 3);
        CHECK(same(dt, work[0] + es, want, count, "reduce_div", impl, op, 1), "reduce_div");
        memcpy(work[0], src[0], bytes);
        scomm_reduce_div(work[0] + es, count, dt, 0);
        CHECK(memcmp(work[0], src[0], bytes) == 0, "reduce_div by 0 must not touch the buffer");
    }

    for (int k = 0; k < MAXN; k++) {
        free(src[k]);
        free(work[k]);
    }
    free(dst);
    free(want);
}

/* A larger reduce_n crossing several accumulator blocks. */
static void test_reduce_blocks(int impl, int dt, int op)
{
    size_t count = 20011;
    size_t es = esize(dt);
    unsigned char *in[3];
    unsigned char *dst = malloc(count * es);
    unsigned char *want = malloc(count * es);
    const void *srcs[3];
    uint64_t x[3];

    for (int k = 0; k < 3; k++) {
        in[k] = malloc(count * es);
        fill(dt, in[k], count);
        srcs[k] = in[k];
    }
    for (size_t i = 0; i < count; i++) {
        for (int k = 0; k < 3; k++) {
            x[k] = get_el(dt, in[k], i);
        }
        set_el(dt, want, i, ref_n(dt, op, x, 3, 3));
    }
    scomm_reduce_n(dst, srcs, 3, count, dt, op, 3);
    CHECK(same(dt, dst, want, count, "reduce_n blocks", impl, op, 3), "reduce_n blocks");
    scomm_reduce_n(in[1], srcs, 3, count, dt, op, 3);
    CHECK(same(dt, in[1], want, count, "reduce_n blocks alias", impl, op, 3),
          "reduce_n blocks alias");
    for (int k = 0; k < 3; k++) {
        free(in[k]);
    }
    free(dst);
    free(want);
}

/* ------------------------------------------------------------------------ */
/* Documented rules, spelled out                                             */
/* ------------------------------------------------------------------------ */

static void test_rules(void)
{
    /* Integer AVG: wrapping sum in the type, then truncation toward zero. */
    {
        int8_t a[2] = {100, 100};
        int8_t b[2] = {100, -7};
        int8_t d[2];
        const void *s[2] = {a, b};

        scomm_reduce_n(d, s, 2, 2, SCOMM_INT8, SCOMM_AVG, 2);
        CHECK(d[0] == -28 && d[1] == 46, "int8 avg: (int8)200/2 = -28, 93/2 = 46, got %d %d",
              d[0], d[1]);
    }
    {
        uint8_t a[1] = {200};
        uint8_t b[1] = {100};
        uint8_t d[1];
        const void *s[2] = {a, b};

        scomm_reduce_n(d, s, 2, 1, SCOMM_UINT8, SCOMM_AVG, 2);
        CHECK(d[0] == 22, "uint8 avg: (uint8)300/2 = 22, got %d", d[0]);
    }
    {
        int32_t a[2] = {-7, 7};
        int32_t b[2] = {0, 0};
        int32_t d[2];
        const void *s[2] = {a, b};

        scomm_reduce_n(d, s, 2, 2, SCOMM_INT32, SCOMM_AVG, 2);
        CHECK(d[0] == -3 && d[1] == 3, "int32 avg truncates toward zero, got %d %d", d[0], d[1]);
    }
    {
        int64_t a[1] = {INT64_MAX};
        int64_t b[1] = {1};
        int64_t d[1];
        const void *s[2] = {a, b};

        scomm_reduce_n(d, s, 2, 1, SCOMM_INT64, SCOMM_AVG, 2);
        CHECK(d[0] == INT64_MIN / 2, "int64 avg wraps then divides");
    }
    /* Pairwise AVG is SUM. */
    {
        float a[3] = {1.0f, 2.0f, 3.0f};
        float b[3] = {4.0f, 5.0f, 6.0f};

        scomm_reduce2(a, b, 3, SCOMM_FLOAT32, SCOMM_AVG);
        CHECK(a[0] == 5.0f && a[1] == 7.0f && a[2] == 9.0f, "reduce2 AVG acts as SUM");
        scomm_reduce_div(a, 3, SCOMM_FLOAT32, 2);
        CHECK(a[0] == 2.5f && a[1] == 3.5f && a[2] == 4.5f, "reduce_div finishes AVG");
    }
    /* NaN: the first NaN operand wins, made quiet, whatever the path. */
    for (int k = 0; k < g_nimpls; k++) {
        float a[40];
        float b[40];
        float c[40];

        scomm_reduce_set_impl(g_impls[k]);
        for (int i = 0; i < 40; i++) {
            a[i] = bitsf(0x7fa00001); /* signalling */
            b[i] = bitsf(0xffc00002);
        }
        memcpy(c, a, sizeof(c));
        scomm_reduce2(c, b, 40, SCOMM_FLOAT32, SCOMM_SUM);
        CHECK(fbits(c[0]) == 0x7fe00001 && fbits(c[39]) == 0x7fe00001,
              "NaN + NaN keeps the first, quiet (%s): %08x", scomm_reduce_impl_name(g_impls[k]),
              fbits(c[0]));
        memcpy(c, b, sizeof(c));
        scomm_reduce2(c, a, 40, SCOMM_FLOAT32, SCOMM_MAX);
        CHECK(fbits(c[0]) == 0xffc00002 && fbits(c[39]) == 0xffc00002,
              "max(NaN, NaN) keeps the first (%s)", scomm_reduce_impl_name(g_impls[k]));
        for (int i = 0; i < 40; i++) {
            a[i] = 1.0f;
        }
        memcpy(c, a, sizeof(c));
        scomm_reduce2(c, b, 40, SCOMM_FLOAT32, SCOMM_MIN);
        CHECK(fbits(c[0]) == 0xffc00002 && fbits(c[39]) == 0xffc00002,
              "min(1, NaN) is NaN (%s)", scomm_reduce_impl_name(g_impls[k]));
        /* Signed zeros. */
        for (int i = 0; i < 40; i++) {
            a[i] = (i & 1) ? -0.0f : 0.0f;
            b[i] = (i & 1) ? 0.0f : -0.0f;
        }
        memcpy(c, a, sizeof(c));
        scomm_reduce2(c, b, 40, SCOMM_FLOAT32, SCOMM_MAX);
        CHECK(fbits(c[0]) == 0 && fbits(c[1]) == 0 && fbits(c[38]) == 0 && fbits(c[39]) == 0,
              "max(+-0, -+0) = +0 (%s)", scomm_reduce_impl_name(g_impls[k]));
        memcpy(c, a, sizeof(c));
        scomm_reduce2(c, b, 40, SCOMM_FLOAT32, SCOMM_MIN);
        CHECK(fbits(c[0]) == 0x80000000 && fbits(c[1]) == 0x80000000 &&
                  fbits(c[39]) == 0x80000000,
              "min(+-0, -+0) = -0 (%s)", scomm_reduce_impl_name(g_impls[k]));
    }
    /* Low precision rounds once: three halves of a float16 ulp. */
    {
        uint16_t a[1] = {0x3c00}; /* 1.0 */
        uint16_t b[1] = {0x1000}; /* 2^-11, half an ulp of 1.0 */
        uint16_t d[1];
        const void *s[3] = {a, b, b};

        scomm_reduce_n(d, s, 3, 1, SCOMM_FLOAT16, SCOMM_SUM, 3);
        CHECK(d[0] == 0x3c01, "f16 1 + h + h rounds once to 1 + ulp, got 0x%x", d[0]);
        scomm_reduce2(a, b, 1, SCOMM_FLOAT16, SCOMM_SUM);
        scomm_reduce2(a, b, 1, SCOMM_FLOAT16, SCOMM_SUM);
        CHECK(a[0] == 0x3c00, "f16 pairwise rounds at each step (ties to even), got 0x%x",
              a[0]);
    }
}

#if TEST_X86
/* Results must not depend on the caller's MXCSR, which must be restored. */
static void test_fpenv(void)
{
    size_t count = 1000;
    float *a = malloc(count * sizeof(float));
    float *b = malloc(count * sizeof(float));
    float *c1 = malloc(count * sizeof(float));
    float *c2 = malloc(count * sizeof(float));
    uint16_t *h1 = malloc(count * 2);
    uint16_t *h2 = malloc(count * 2);
    unsigned int saved = _mm_getcsr();
    unsigned int odd = (saved & ~0x7f80u) | 0x8040u | 0x2000u; /* FTZ, DAZ, round down */
    unsigned int seen;

    for (size_t i = 0; i < count; i++) {
        a[i] = bitsf((uint32_t)(rnd() & 0x807fffff)); /* subnormals */
        b[i] = bitsf((uint32_t)(rnd() & 0x80ffffff)); /* subnormal or tiny normal */
    }
    memcpy(c1, a, count * sizeof(float));
    scomm_reduce2(c1, b, count, SCOMM_FLOAT32, SCOMM_SUM);
    scomm_cvt_from_f32(h1, c1, count, SCOMM_FLOAT16);
    memcpy(c2, a, count * sizeof(float));
    _mm_setcsr(odd);
    scomm_reduce2(c2, b, count, SCOMM_FLOAT32, SCOMM_SUM);
    scomm_cvt_from_f32(h2, c2, count, SCOMM_FLOAT16);
    seen = _mm_getcsr();
    _mm_setcsr(saved);
    CHECK(memcmp(c1, c2, count * sizeof(float)) == 0, "results depend on MXCSR (FTZ/DAZ/RC)");
    CHECK(memcmp(h1, h2, count * 2) == 0, "conversions depend on MXCSR");
    CHECK((seen & ~0x3fu) == (odd & ~0x3fu), "MXCSR not restored: %08x vs %08x", seen, odd);
    free(a);
    free(b);
    free(c1);
    free(c2);
    free(h1);
    free(h2);
}
#endif

static void test_check(void)
{
    char why[128];
    int bad = 0;

    for (int dt = 0; dt < SCOMM_DTYPE_COUNT; dt++) {
        for (int op = 0; op < SCOMM_REDOP_COUNT; op++) {
            why[0] = 'x';
            why[1] = 0;
            if (scomm_reduce_check((scomm_dtype_t)dt, (scomm_redop_t)op, why, sizeof(why)) != 0) {
                bad++;
            }
        }
    }
    CHECK(bad == 0, "reduce_check rejected %d valid pairs", bad);
    why[0] = 0;
    CHECK(scomm_reduce_check((scomm_dtype_t)SCOMM_DTYPE_COUNT, SCOMM_SUM, why, sizeof(why)) == -1 &&
              strstr(why, "dtype") != NULL,
          "invalid dtype accepted or no message: '%s'", why);
    why[0] = 0;
    CHECK(scomm_reduce_check((scomm_dtype_t)-1, SCOMM_SUM, why, sizeof(why)) == -1 &&
              strstr(why, "-1") != NULL,
          "negative dtype: '%s'", why);
    why[0] = 0;
    CHECK(scomm_reduce_check(SCOMM_FLOAT32, (scomm_redop_t)SCOMM_REDOP_COUNT, why,
                             sizeof(why)) == -1 &&
              strstr(why, "op") != NULL,
          "invalid op accepted or no message: '%s'", why);
    CHECK(scomm_reduce_check(SCOMM_FLOAT32, (scomm_redop_t)-3, NULL, 0) == -1, "why NULL");
    memset(why, 'z', sizeof(why));
    CHECK(scomm_reduce_check((scomm_dtype_t)99, SCOMM_SUM, why, 8) == -1 && strlen(why) == 7,
          "message truncated to whylen");
    /* Invalid pairs are ignored by the kernels, not crashed on. */
    {
        float a[2] = {1.0f, 2.0f};
        float b[2] = {3.0f, 4.0f};

        scomm_reduce2(a, b, 2, (scomm_dtype_t)42, SCOMM_SUM);
        scomm_reduce2(a, b, 2, SCOMM_FLOAT32, (scomm_redop_t)9);
        CHECK(a[0] == 1.0f && a[1] == 2.0f, "invalid dtype/op must do nothing");
    }
}

static void test_impls(void)
{
    CHECK(scomm_reduce_set_impl(SCOMM_REDUCE_IMPL_SCALAR) == 0, "scalar always available");
    CHECK(scomm_reduce_get_impl() == SCOMM_REDUCE_IMPL_SCALAR, "get_impl");
    CHECK(scomm_reduce_set_impl((scomm_reduce_impl_t)17) == -1, "bogus impl rejected");
    CHECK(strcmp(scomm_reduce_impl_name(SCOMM_REDUCE_IMPL_AVX512), "avx512") == 0, "impl name");
    CHECK(scomm_reduce_set_impl(SCOMM_REDUCE_IMPL_AUTO) == 0, "auto");
}

int main(void)
{
    scomm_reduce_impl_t best;

    build_tables();
    g_nimpls = 0;
    best = scomm_reduce_get_impl();
    for (int i = SCOMM_REDUCE_IMPL_SCALAR; i <= SCOMM_REDUCE_IMPL_AVX512; i++) {
        if (scomm_reduce_set_impl((scomm_reduce_impl_t)i) == 0) {
            g_impls[g_nimpls++] = i;
        }
    }
    printf("default implementation: %s; testing:", scomm_reduce_impl_name(best));
    for (int k = 0; k < g_nimpls; k++) {
        printf(" %s", scomm_reduce_impl_name(g_impls[k]));
    }
    printf("\n");

    test_conversion_spots();
    for (int dt = SCOMM_FLOAT16; dt <= SCOMM_FP8_E5M2; dt++) {
        if (is_lowp(dt)) {
            test_widen_exhaustive(dt);
            test_narrow(dt);
        }
    }
    test_cvt_other();

    for (int k = 0; k < g_nimpls; k++) {
        long before = g_fail;

        scomm_reduce_set_impl(g_impls[k]);
        for (int dt = 0; dt < SCOMM_DTYPE_COUNT; dt++) {
            for (int op = 0; op < SCOMM_REDOP_COUNT; op++) {
                for (size_t c = 0; c < NCOUNTS; c++) {
                    test_reduce_case(g_impls[k], dt, op, g_counts[c]);
                }
                test_reduce_blocks(g_impls[k], dt, op);
            }
        }
        printf("reductions (%s): %s\n", scomm_reduce_impl_name(g_impls[k]),
               g_fail == before ? "ok" : "FAILED");
    }
    scomm_reduce_set_impl(SCOMM_REDUCE_IMPL_AUTO);

    test_rules();
#if TEST_X86
    test_fpenv();
#endif
    test_check();
    test_impls();

    for (int dt = 0; dt < SCOMM_DTYPE_COUNT; dt++) {
        free(g_tab[dt].val);
    }
    printf("%ld passed, %ld failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
