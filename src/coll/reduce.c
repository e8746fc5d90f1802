/*
 * reduce.c - element-wise reduction kernels of the collectives.
 *
 * Layout of this file. The first part (below) holds the scalar element
 * helpers, the conversions, the dispatch and the public functions. The
 * second part, at the end, is a template of the kernels: this file includes
 * itself three times with SCOMM_REDUCE_PASS set to 1 (portable C), 2 (AVX2 +
 * F16C) and 3 (AVX-512 F + BW), and each pass compiles the same kernels with
 * its own GCC target attribute and its own vector primitives. The choice
 * between the passes is made once, at first use, with
 * __builtin_cpu_supports().
 *
 * Determinism. Every path performs, element by element, the same IEEE 754
 * operations in the same order, so they agree bit for bit:
 *  - the code has no multiply-add pattern, so FMA contraction cannot change
 *    a result whatever -ffp-contract says, and -ffast-math is refused;
 *  - x86 picks the NaN of a two-NaN addition by operand position, and
 *    compilers swap the operands of commutative operations freely, so every
 *    float operation fixes the result explicitly to the first NaN operand,
 *    made quiet (see s_addf());
 *  - the public entry points put the SSE control register (MXCSR) in its
 *    default state (round to nearest even, no flush-to-zero, no
 *    denormals-are-zero, exceptions masked) for the duration of the call and
 *    restore the caller's afterwards, so a thread running with FTZ/DAZ or
 *    another rounding mode gets the same bits as any other;
 *  - the conversions match the F16C instructions exactly, NaN included:
 *    the public scalar ones with integer arithmetic only, the kernels'
 *    with exact float tricks that vectorise (see k_f16_f32()).
 *
 * Speed notes: float32, float64 and the integers run at memory bandwidth
 * from L2 outwards; float16 is nearly as fast thanks to F16C; bfloat16 and
 * above all fp8 are bound by the arithmetic of their conversions. Operands
 * that are float32 subnormals are slow on Intel CPUs (microcode assists);
 * flushing them would change results, so they are kept.
 */
#ifndef SCOMM_REDUCE_PASS

#include "reduce.h"

#include <float.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#if defined(__FAST_MATH__)
#error "reduce.c must not be built with -ffast-math: results would depend on the SIMD path"
#endif

/* x87 excess precision (FLT_EVAL_METHOD 2) would change low-order bits. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != -1
#error "reduce.c needs FLT_EVAL_METHOD == 0 (e.g. -mfpmath=sse on 32-bit x86)"
#endif

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
/* A vectorisation hint that cannot apply (e.g. under sanitizers) is fine. */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SCOMM_REDUCE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SCOMM_REDUCE_X86 0
#endif

#define SCOMM_ALWAYS_INLINE inline __attribute__((always_inline))

/*
 * For the kernel entry points: the vector passes call the portable kernel
 * for their last few elements, and must not get a copy of it inlined (and
 * vectorised again) into each of their loops.
 */
#if defined(__clang__)
#define SCOMM_NOINLINE __attribute__((noinline))
#else
#define SCOMM_NOINLINE __attribute__((noinline, noclone))
#endif

/*
 * Element pointers that need no alignment and may alias anything: user
 * buffers arrive as void * and may sit at any byte address.
 */
typedef float f32u_t __attribute__((aligned(1), may_alias));
typedef double f64u_t __attribute__((aligned(1), may_alias));
typedef int8_t i8u_t __attribute__((aligned(1), may_alias));
typedef uint8_t u8u_t __attribute__((aligned(1), may_alias));
typedef int32_t i32u_t __attribute__((aligned(1), may_alias));
typedef uint32_t u32u_t __attribute__((aligned(1), may_alias));
typedef int64_t i64u_t __attribute__((aligned(1), may_alias));
typedef uint64_t u64u_t __attribute__((aligned(1), may_alias));
typedef uint16_t u16u_t __attribute__((aligned(1), may_alias));

/*
 * Loops whose output may be exactly one of their inputs. Without a hint the
 * vectoriser guards them with an overlap test that fails for dst == src and
 * falls back to scalar code; the hint is correct here because an element
 * only depends on the inputs at its own index.
 */
#if defined(__clang__)
#define SCOMM_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define SCOMM_IVDEP _Pragma("GCC ivdep")
#else
#define SCOMM_IVDEP
#endif

/* Pseudo-op of the kernels: take the first operand (conversions, division). */
#define OP_COPY 5

/* Shapes of the low-precision kernels: what a and out hold. */
enum {
    SHAPE_T_T = 0,     /* out (type) = a (type) op b (type) */
    SHAPE_T_F32 = 1,   /* out (f32)  = a (type) op b (type) */
    SHAPE_F32_F32 = 2, /* out (f32)  = a (f32)  op b (type) */
    SHAPE_F32_T = 3    /* out (type) = a (f32)  op b (type) */
};

/* ------------------------------------------------------------------------ */
/* Bit helpers                                                               */
/* ------------------------------------------------------------------------ */

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static inline double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

#define F32_ABS 0x7fffffffu
#define F32_INF 0x7f800000u
#define F32_QUIET 0x00400000u
#define F64_ABS 0x7fffffffffffffffull
#define F64_INF 0x7ff0000000000000ull
#define F64_QUIET 0x0008000000000000ull

/* ------------------------------------------------------------------------ */
/* Scalar float operations (the reference semantics of every path)           */
/* ------------------------------------------------------------------------ */

/*
 * The helpers below choose between values with masks rather than with ?:.
 * Under GCC's default -ftrapping-math a float operation may not be
 * evaluated where the C code would not evaluate it, so "c ? x : a + b" is
 * compiled as a branch around the addition and the loop is not vectorised;
 * with every operand computed unconditionally and combined with masks, the
 * loops vectorise.
 */

/* m is all ones or zero: m ? a : b. */
static inline uint32_t sel32(uint32_t m, uint32_t a, uint32_t b)
{
    return (a & m) | (b & ~m);
}

static inline uint64_t sel64(uint64_t m, uint64_t a, uint64_t b)
{
    return (a & m) | (b & ~m);
}

/* All ones if c, else zero. */
static inline uint32_t mask32(int c)
{
    return (uint32_t)0 - (uint32_t)(c != 0);
}

static inline uint64_t mask64(int c)
{
    return (uint64_t)0 - (uint64_t)(c != 0);
}

static inline uint32_t nan32(uint32_t u)
{
    return mask32((u & F32_ABS) > F32_INF);
}

static inline uint64_t nan64(uint64_t u)
{
    return mask64((u & F64_ABS) > F64_INF);
}

/*
 * a + b, except that a NaN a gives a quiet a. When only b is NaN the
 * hardware already returns quiet b, and when neither is NaN it returns the
 * sum or the default NaN: only the two-NaN case needs the fix.
 */
static inline float s_addf(float a, float b)
{
    uint32_t ua = f2u(a);

    return u2f(sel32(nan32(ua), ua | F32_QUIET, f2u(a + b)));
}

static inline float s_mulf(float a, float b)
{
    uint32_t ua = f2u(a);

    return u2f(sel32(nan32(ua), ua | F32_QUIET, f2u(a * b)));
}

/*
 * IEEE 754-2019 maximum: NaN propagates (a first, then b, made quiet), and
 * for equal operands the bitwise AND picks +0 over -0.
 */
static inline float s_maxf(float a, float b)
{
    uint32_t ua = f2u(a);
    uint32_t ub = f2u(b);
    uint32_t r = sel32(mask32(a > b), ua, ub);

    r = sel32(mask32(a == b), ua & ub, r);
    r = sel32(nan32(ub), ub | F32_QUIET, r);
    return u2f(sel32(nan32(ua), ua | F32_QUIET, r));
}

/* IEEE 754-2019 minimum: as s_maxf(), the bitwise OR picks -0 over +0. */
static inline float s_minf(float a, float b)
{
    uint32_t ua = f2u(a);
    uint32_t ub = f2u(b);
    uint32_t r = sel32(mask32(a < b), ua, ub);

    r = sel32(mask32(a == b), ua | ub, r);
    r = sel32(nan32(ub), ub | F32_QUIET, r);
    return u2f(sel32(nan32(ua), ua | F32_QUIET, r));
}

static SCOMM_ALWAYS_INLINE float s_opf(const int op, float a, float b)
{
    switch (op) {
    case SCOMM_SUM:
        return s_addf(a, b);
    case SCOMM_PROD:
        return s_mulf(a, b);
    case SCOMM_MAX:
        return s_maxf(a, b);
    case SCOMM_MIN:
        return s_minf(a, b);
    default:
        return a;
    }
}

static inline double s_addd(double a, double b)
{
    uint64_t ua = d2u(a);

    return u2d(sel64(nan64(ua), ua | F64_QUIET, d2u(a + b)));
}

static inline double s_muld(double a, double b)
{
    uint64_t ua = d2u(a);

    return u2d(sel64(nan64(ua), ua | F64_QUIET, d2u(a * b)));
}

static inline double s_maxd(double a, double b)
{
    uint64_t ua = d2u(a);
    uint64_t ub = d2u(b);
    uint64_t r = sel64(mask64(a > b), ua, ub);

    r = sel64(mask64(a == b), ua & ub, r);
    r = sel64(nan64(ub), ub | F64_QUIET, r);
    return u2d(sel64(nan64(ua), ua | F64_QUIET, r));
}

static inline double s_mind(double a, double b)
{
    uint64_t ua = d2u(a);
    uint64_t ub = d2u(b);
    uint64_t r = sel64(mask64(a < b), ua, ub);

    r = sel64(mask64(a == b), ua | ub, r);
    r = sel64(nan64(ub), ub | F64_QUIET, r);
    return u2d(sel64(nan64(ua), ua | F64_QUIET, r));
}

/* ------------------------------------------------------------------------ */
/* Scalar conversions                                                        */
/* ------------------------------------------------------------------------ */

/*
 * m / 2^sh rounded to nearest, ties to even, for sh >= 1. Shifts of 32 and
 * more are clamped to 31, which gives 0 since every caller has m < 2^24.
 */
static inline uint32_t rne_shift(uint32_t m, uint32_t sh)
{
    uint32_t q;
    uint32_t rem;
    uint32_t half;

    sh = sh > 31u ? 31u : sh;
    q = m >> sh;
    rem = m & ((1u << sh) - 1u);
    half = 1u << (sh - 1u);
    return q + (rem > half || (rem == half && (q & 1u)));
}

/*
 * float32 -> float16. Normal results: add the rounding bias (half an ulp
 * minus one, plus the lowest kept bit for ties to even), drop 13 bits and
 * rebias the exponent from 127 to 15 (a carry out of the mantissa bumps the
 * exponent, up to infinity). Below 2^-14 the significand with its implicit
 * bit is shifted down to units of 2^-24 with ties to even.
 */
static inline uint16_t cvt_f32_f16(uint32_t u)
{
    uint32_t s = (u >> 16) & 0x8000u;
    uint32_t a = u & F32_ABS;
    uint32_t r;

    if (a > F32_INF) {
        return (uint16_t)(s | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a >= 0x38800000u) {
        r = ((a + 0xfffu + ((a >> 13) & 1u)) >> 13) - (112u << 10);
        return (uint16_t)(s | (r > 0x7c00u ? 0x7c00u : r));
    }
    /* The value in units of 2^-24 is M * 2^(e - 126). */
    r = rne_shift((a & 0x7fffffu) | 0x800000u, 126u - (a >> 23));
    return (uint16_t)(s | r);
}

/* float16 -> float32, exact; a NaN is made quiet, as F16C does. */
static inline uint32_t cvt_f16_f32(uint32_t h)
{
    uint32_t s = (h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;

    if (e == 0x1fu) {
        return s | F32_INF | (m != 0 ? F32_QUIET | (m << 13) : 0u);
    }
    if (e == 0) {
        if (m == 0) {
            return s;
        }
        /* Subnormal m * 2^-24: normalise so that bit 10 is the leading one. */
        e = 113u;
        while ((m & 0x400u) == 0) {
            m <<= 1;
            e--;
        }
        return s | (e << 23) | ((m & 0x3ffu) << 13);
    }
    return s | ((e + 112u) << 23) | (m << 13);
}

/* float32 -> bfloat16: the upper half, rounded to nearest even. */
static inline uint16_t cvt_f32_bf16(uint32_t u)
{
    if ((u & F32_ABS) > F32_INF) {
        return (uint16_t)((u >> 16) | 0x40u);
    }
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/*
 * float32 -> e4m3fn (bias 7, no infinities). Normal results start at 2^-6,
 * the largest finite is 0x7e = 448, and everything above, infinities
 * included, saturates there. Subnormals are multiples of 2^-9.
 */
static inline uint8_t cvt_f32_e4m3(uint32_t u)
{
    uint32_t s = (u >> 24) & 0x80u;
    uint32_t a = u & F32_ABS;
    uint32_t r;

    if (a > F32_INF) {
        return (uint8_t)(s | 0x7fu);
    }
    if (a >= 0x3c800000u) {
        r = ((a + 0x7ffffu + ((a >> 20) & 1u)) >> 20) - (120u << 3);
        return (uint8_t)(s | (r > 0x7eu ? 0x7eu : r));
    }
    /* The value in units of 2^-9 is M * 2^(e - 141). */
    r = rne_shift((a & 0x7fffffu) | 0x800000u, 141u - (a >> 23));
    return (uint8_t)(s | r);
}

/*
 * float32 -> e5m2 (bias 15, IEEE-like): the top byte of a float16, rounded
 * directly from float32 (rounding through float16 would round twice).
 * Overflow gives infinity; subnormals are multiples of 2^-16.
 */
static inline uint8_t cvt_f32_e5m2(uint32_t u)
{
    uint32_t s = (u >> 24) & 0x80u;
    uint32_t a = u & F32_ABS;
    uint32_t r;

    if (a > F32_INF) {
        return (uint8_t)(s | 0x7eu | ((a >> 21) & 1u));
    }
    if (a >= 0x38800000u) {
        r = ((a + 0xfffffu + ((a >> 21) & 1u)) >> 21) - (112u << 2);
        return (uint8_t)(s | (r > 0x7cu ? 0x7cu : r));
    }
    /* The value in units of 2^-16 is M * 2^(e - 134). */
    r = rne_shift((a & 0x7fffffu) | 0x800000u, 134u - (a >> 23));
    return (uint8_t)(s | r);
}

/* e5m2 -> float32: e5m2 is the top byte of a float16. */
static inline uint32_t cvt_e5m2_f32(uint32_t v)
{
    return cvt_f16_f32(v << 8);
}

/*
 * e4m3 -> float32. Placed in a float16 as sign | magnitude << 7, the e4m3
 * exponent and mantissa fields read as a float16 worth exactly 2^-8 of the
 * e4m3 value, for normals and subnormals alike; the float32 exponent is
 * then raised by 8. The vector paths do the same with F16C.
 */
static inline uint32_t cvt_e4m3_f32(uint32_t v)
{
    uint32_t r;

    if ((v & 0x7fu) == 0x7fu) {
        return ((v & 0x80u) << 24) | F32_INF | F32_QUIET;
    }
    r = cvt_f16_f32(((v & 0x80u) << 8) | ((v & 0x7fu) << 7));
    return (r & F32_ABS) != 0 ? r + (8u << 23) : r;
}

float scomm_f16_to_f32(uint16_t h)
{
    return u2f(cvt_f16_f32(h));
}

uint16_t scomm_f32_to_f16(float f)
{
    return cvt_f32_f16(f2u(f));
}

float scomm_bf16_to_f32(uint16_t h)
{
    return u2f((uint32_t)h << 16);
}

uint16_t scomm_f32_to_bf16(float f)
{
    return cvt_f32_bf16(f2u(f));
}

float scomm_e4m3_to_f32(uint8_t v)
{
    return u2f(cvt_e4m3_f32(v));
}

uint8_t scomm_f32_to_e4m3(float f)
{
    return cvt_f32_e4m3(f2u(f));
}

float scomm_e5m2_to_f32(uint8_t v)
{
    return u2f(cvt_e5m2_f32(v));
}

uint8_t scomm_f32_to_e5m2(float f)
{
    return cvt_f32_e5m2(f2u(f));
}

/*
 * Conversions inside the kernels. The kernels run with MXCSR in its default
 * state (see fpenv_enter()), which lets them use exact float tricks that
 * are branch-free and vectorise: a float16 or fp8 magnitude placed in a
 * float32 and scaled by a power of two widens exactly, even from a float32
 * subnormal; and adding 2^k to a value below 2^(k-23+p) rounds it, to
 * nearest even, to a multiple of the target format's subnormal step. They
 * give the same bits as the integer versions above, which the public scalar
 * functions use because they cannot rely on the caller's MXCSR. Other
 * architectures keep the integer versions, as their flush-to-zero state
 * cannot be pinned portably.
 */
#if SCOMM_REDUCE_X86
static inline uint32_t k_f16_f32(uint32_t h)
{
    uint32_t s = (h & 0x8000u) << 16;
    uint32_t m = (h & 0x7fffu) << 13;
    uint32_t r = f2u(u2f(m) * 0x1p112f);
    uint32_t special = m | F32_INF | (F32_QUIET & mask32(m > 0x0f800000u));

    return s | sel32(mask32(m >= 0x0f800000u), special, r);
}

static inline uint32_t k_e4m3_f32(uint32_t v)
{
    uint32_t s = (v & 0x80u) << 24;
    uint32_t m = (v & 0x7fu) << 20;
    uint32_t r = f2u(u2f(m) * 0x1p120f);

    return s | sel32(mask32(m == (0x7fu << 20)), F32_INF | F32_QUIET, r);
}

static inline uint32_t k_e5m2_f32(uint32_t v)
{
    return k_f16_f32(v << 8);
}

static inline uint16_t k_f32_f16(uint32_t u)
{
    uint32_t s = (u >> 16) & 0x8000u;
    uint32_t a = u & F32_ABS;
    uint32_t rn = ((a + 0xfffu + ((a >> 13) & 1u)) >> 13) - (112u << 10);
    uint32_t rs = f2u(u2f(a) + 0x1p-1f) - 0x3f000000u;
    uint32_t r;

    rn = rn > 0x7c00u ? 0x7c00u : rn;
    r = sel32(mask32(a < 0x38800000u), rs, rn);
    r = sel32(mask32(a > F32_INF), 0x7e00u | ((a >> 13) & 0x3ffu), r);
    return (uint16_t)(s | r);
}

static inline uint8_t k_f32_e4m3(uint32_t u)
{
    uint32_t s = (u >> 24) & 0x80u;
    uint32_t a = u & F32_ABS;
    uint32_t rn = ((a + 0x7ffffu + ((a >> 20) & 1u)) >> 20) - (120u << 3);
    uint32_t rs = f2u(u2f(a) + 0x1p14f) - 0x46800000u;
    uint32_t r;

    rn = rn > 0x7eu ? 0x7eu : rn;
    r = sel32(mask32(a < 0x3c800000u), rs, rn);
    r = sel32(mask32(a > F32_INF), 0x7fu, r);
    return (uint8_t)(s | r);
}

static inline uint8_t k_f32_e5m2(uint32_t u)
{
    uint32_t s = (u >> 24) & 0x80u;
    uint32_t a = u & F32_ABS;
    uint32_t rn = ((a + 0xfffffu + ((a >> 21) & 1u)) >> 21) - (112u << 2);
    uint32_t rs = f2u(u2f(a) + 0x1p7f) - 0x43000000u;
    uint32_t r;

    rn = rn > 0x7cu ? 0x7cu : rn;
    r = sel32(mask32(a < 0x38800000u), rs, rn);
    r = sel32(mask32(a > F32_INF), 0x7eu | ((a >> 21) & 1u), r);
    return (uint8_t)(s | r);
}
#else
#define k_f16_f32 cvt_f16_f32
#define k_e4m3_f32 cvt_e4m3_f32
#define k_e5m2_f32 cvt_e5m2_f32
#define k_f32_f16 cvt_f32_f16
#define k_f32_e4m3 cvt_f32_e4m3
#define k_f32_e5m2 cvt_f32_e5m2
#endif

/* Load element i of a low-precision (or float32) buffer as float32. */
static SCOMM_ALWAYS_INLINE float s_ld(const int t, const void *p, size_t i)
{
    switch (t) {
    case SCOMM_FLOAT16:
        return u2f(k_f16_f32(((const u16u_t *)p)[i]));
    case SCOMM_BFLOAT16:
        return u2f((uint32_t)((const u16u_t *)p)[i] << 16);
    case SCOMM_FP8_E4M3:
        return u2f(k_e4m3_f32(((const u8u_t *)p)[i]));
    case SCOMM_FP8_E5M2:
        return u2f(k_e5m2_f32(((const u8u_t *)p)[i]));
    default:
        return ((const f32u_t *)p)[i];
    }
}

/* Store a float32 as element i of a low-precision (or float32) buffer. */
static SCOMM_ALWAYS_INLINE void s_st(const int t, void *p, size_t i, float v)
{
    switch (t) {
    case SCOMM_FLOAT16:
        ((u16u_t *)p)[i] = k_f32_f16(f2u(v));
        break;
    case SCOMM_BFLOAT16:
        ((u16u_t *)p)[i] = cvt_f32_bf16(f2u(v));
        break;
    case SCOMM_FP8_E4M3:
        ((u8u_t *)p)[i] = k_f32_e4m3(f2u(v));
        break;
    case SCOMM_FP8_E5M2:
        ((u8u_t *)p)[i] = k_f32_e5m2(f2u(v));
        break;
    default:
        ((f32u_t *)p)[i] = v;
        break;
    }
}

/*
 * Integer operations in the unsigned type U of T: SUM and PROD wrap modulo
 * 2^bits without undefined behaviour (the conversion back to a signed T is
 * modular in GCC and clang). MAX and MIN compare in T itself.
 */
#define INT_OP(T, U, op, x, y)                                             \
    ((op) == SCOMM_SUM    ? (T)(U)((U)(x) + (U)(y))                        \
     : (op) == SCOMM_PROD ? (T)(U)((U)(x) * (U)(y))                        \
     : (op) == SCOMM_MAX  ? ((x) > (y) ? (x) : (y))                        \
                          : ((x) < (y) ? (x) : (y)))

/* ------------------------------------------------------------------------ */
/* The kernel passes                                                         */
/* ------------------------------------------------------------------------ */

#define SCOMM_PASTE2(a, b) a##b
#define SCOMM_PASTE(a, b) SCOMM_PASTE2(a, b)

/* Pass 1: portable C, no target attribute. */
#define SCOMM_REDUCE_PASS 1
#include "reduce.c"
#undef SCOMM_REDUCE_PASS

#if SCOMM_REDUCE_X86
/* Pass 2: AVX2 + F16C. */
#define SCOMM_REDUCE_PASS 2
#include "reduce.c"
#undef SCOMM_REDUCE_PASS

/* Pass 3: AVX-512 F + BW. */
#define SCOMM_REDUCE_PASS 3
#include "reduce.c"
#undef SCOMM_REDUCE_PASS
#endif

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    scomm_reduce_impl_t id;
    /* Low-precision and float32 kernels (shape, OP_COPY, division). */
    void (*lp)(int t, int op, int shape, void *out, const void *a,
               const void *b, size_t n, int dv, float d);
    /* out = a op b for the integer types and float64. */
    void (*nat)(int t, int op, void *out, const void *a, const void *b,
                size_t n);
    /* buf /= d for the integer types and float64. */
    void (*natdiv)(int t, void *buf, size_t n, int d);
    /* out (type to) = a (type ti) x m, for the float dtypes. */
    void (*xcvt)(int ti, int to, void *out, const void *a, size_t n, float m);
} reduce_impl_t;

static const reduce_impl_t g_impl_scalar = {
    SCOMM_REDUCE_IMPL_SCALAR, lp_run_scalar, nat_run_scalar, nat_div_scalar,
    xcvt_run_scalar
};
#if SCOMM_REDUCE_X86
static const reduce_impl_t g_impl_avx2 = {
    SCOMM_REDUCE_IMPL_AVX2, lp_run_avx2, nat_run_avx2, nat_div_avx2,
    xcvt_run_avx2
};
static const reduce_impl_t g_impl_avx512 = {
    SCOMM_REDUCE_IMPL_AVX512, lp_run_avx512, nat_run_avx512, nat_div_avx512,
    xcvt_run_avx512
};
#endif

static const reduce_impl_t *_Atomic g_impl;

#if SCOMM_REDUCE_X86
/*
 * F16C, from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports()
 * does not know it. Its registers are the AVX state, whose OS support
 * __builtin_cpu_supports("avx2") has already checked.
 */
static int cpu_has_f16c(void)
{
    unsigned int eax, ebx, ecx, edx;

    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return (ecx >> 29) & 1u;
}
#endif

static const reduce_impl_t *impl_for(scomm_reduce_impl_t id)
{
#if SCOMM_REDUCE_X86
    __builtin_cpu_init();
    if (id == SCOMM_REDUCE_IMPL_AUTO) {
        id = (__builtin_cpu_supports("avx512f") &&
              __builtin_cpu_supports("avx512bw"))
                 ? SCOMM_REDUCE_IMPL_AVX512
             : (__builtin_cpu_supports("avx2") &&
                cpu_has_f16c())
                 ? SCOMM_REDUCE_IMPL_AVX2
                 : SCOMM_REDUCE_IMPL_SCALAR;
    }
    switch (id) {
    case SCOMM_REDUCE_IMPL_SCALAR:
        return &g_impl_scalar;
    case SCOMM_REDUCE_IMPL_AVX2:
        if (__builtin_cpu_supports("avx2") && cpu_has_f16c()) {
            return &g_impl_avx2;
        }
        return NULL;
    case SCOMM_REDUCE_IMPL_AVX512:
        if (__builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("avx512bw")) {
            return &g_impl_avx512;
        }
        return NULL;
    default:
        return NULL;
    }
#else
    return (id == SCOMM_REDUCE_IMPL_AUTO || id == SCOMM_REDUCE_IMPL_SCALAR)
               ? &g_impl_scalar
               : NULL;
#endif
}

/*
 * The implementation in use, chosen on first use. Threads racing here all
 * compute the same choice; the exchange keeps one made meanwhile by
 * scomm_reduce_set_impl().
 */
static const reduce_impl_t *get_impl(void)
{
    const reduce_impl_t *impl =
        atomic_load_explicit(&g_impl, memory_order_acquire);

    if (impl == NULL) {
        const reduce_impl_t *expected = NULL;

        impl = impl_for(SCOMM_REDUCE_IMPL_AUTO);
        if (!atomic_compare_exchange_strong(&g_impl, &expected, impl)) {
            impl = expected;
        }
    }
    return impl;
}

int scomm_reduce_set_impl(scomm_reduce_impl_t impl)
{
    const reduce_impl_t *p = impl_for(impl);

    if (p == NULL) {
        return -1;
    }
    atomic_store_explicit(&g_impl, p, memory_order_release);
    return 0;
}

scomm_reduce_impl_t scomm_reduce_get_impl(void)
{
    return get_impl()->id;
}

const char *scomm_reduce_impl_name(scomm_reduce_impl_t impl)
{
    switch (impl) {
    case SCOMM_REDUCE_IMPL_AUTO:
        return "auto";
    case SCOMM_REDUCE_IMPL_SCALAR:
        return "scalar";
    case SCOMM_REDUCE_IMPL_AVX2:
        return "avx2";
    case SCOMM_REDUCE_IMPL_AVX512:
        return "avx512";
    default:
        return "invalid";
    }
}

/* ------------------------------------------------------------------------ */
/* Floating-point environment                                                */
/* ------------------------------------------------------------------------ */

/*
 * MXCSR bits: flush-to-zero (15), rounding control (13-14), denormals-are-
 * zero (6), exception masks (7-12). The kernels want round to nearest even,
 * no FTZ/DAZ and all exceptions masked; the sticky flags (0-5) are left as
 * they are. Changing MXCSR costs a few cycles, so it is only done when the
 * caller's differs.
 */
#if SCOMM_REDUCE_X86
typedef unsigned int fpenv_t;

static inline fpenv_t fpenv_enter(void)
{
    fpenv_t csr = _mm_getcsr();
    fpenv_t want = (csr & ~0xe040u) | 0x1f80u;

    if (want != csr) {
        _mm_setcsr(want);
    }
    return csr;
}

static inline void fpenv_leave(fpenv_t csr)
{
    if (((csr & ~0xe040u) | 0x1f80u) != csr) {
        _mm_setcsr(csr);
    }
}
#else
typedef int fpenv_t;

static inline fpenv_t fpenv_enter(void)
{
    return 0;
}

static inline void fpenv_leave(fpenv_t csr)
{
    (void)csr;
}
#endif

/* ------------------------------------------------------------------------ */
/* Public kernels                                                            */
/* ------------------------------------------------------------------------ */

static size_t dtype_size(scomm_dtype_t dtype)
{
    switch (dtype) {
    case SCOMM_INT8:
    case SCOMM_UINT8:
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2:
        return 1;
    case SCOMM_FLOAT16:
    case SCOMM_BFLOAT16:
        return 2;
    case SCOMM_INT32:
    case SCOMM_UINT32:
    case SCOMM_FLOAT32:
        return 4;
    case SCOMM_INT64:
    case SCOMM_UINT64:
    case SCOMM_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* Types reduced through float32 by the lp kernels (float32 included). */
static int is_lp(scomm_dtype_t dtype)
{
    return dtype == SCOMM_FLOAT16 || dtype == SCOMM_BFLOAT16 ||
           dtype == SCOMM_FP8_E4M3 || dtype == SCOMM_FP8_E5M2 ||
           dtype == SCOMM_FLOAT32;
}

int scomm_reduce_check(scomm_dtype_t dtype, scomm_redop_t op, char *why,
                       size_t whylen)
{
    const char *msg = NULL;
    char buf[96];

    if ((unsigned)dtype >= (unsigned)SCOMM_DTYPE_COUNT) {
        snprintf(buf, sizeof(buf), "invalid dtype %d (valid: 0..%d)",
                 (int)dtype, (int)SCOMM_DTYPE_COUNT - 1);
        msg = buf;
    } else if ((unsigned)op >= (unsigned)SCOMM_REDOP_COUNT) {
        snprintf(buf, sizeof(buf), "invalid reduction op %d (valid: 0..%d)",
                 (int)op, (int)SCOMM_REDOP_COUNT - 1);
        msg = buf;
    }
    if (msg == NULL) {
        return 0;
    }
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen, "%s", msg);
    }
    return -1;
}

static int valid(scomm_dtype_t dtype, scomm_redop_t op)
{
    return (unsigned)dtype < (unsigned)SCOMM_DTYPE_COUNT &&
           (unsigned)op < (unsigned)SCOMM_REDOP_COUNT;
}

void scomm_reduce2_out(void *dst, const void *a, const void *b, size_t count,
                       scomm_dtype_t dtype, scomm_redop_t op)
{
    const reduce_impl_t *impl;
    fpenv_t env;

    if (count == 0 || !valid(dtype, op)) {
        return;
    }
    /* Pairwise AVG is a SUM: the caller divides once at the end. */
    if (op == SCOMM_AVG) {
        op = SCOMM_SUM;
    }
    impl = get_impl();
    env = fpenv_enter();
    if (is_lp(dtype)) {
        impl->lp((int)dtype, (int)op, SHAPE_T_T, dst, a, b, count, 0, 1.0f);
    } else {
        impl->nat((int)dtype, (int)op, dst, a, b, count);
    }
    fpenv_leave(env);
}

void scomm_reduce2(void *dst, const void *src, size_t count,
                   scomm_dtype_t dtype, scomm_redop_t op)
{
    scomm_reduce2_out(dst, dst, src, count, dtype, op);
}

/* Bytes of the accumulator block of scomm_reduce_n(): it stays in L1. */
#define ACC_BYTES 8192

/*
 * scomm_reduce_n() for the float types of the lp kernels. float32
 * accumulates in its own type; the low-precision types accumulate in a
 * float32 block and are rounded when the last source is added. Blocks also
 * make aliasing safe: a block of dst is only written once every source has
 * been read for it.
 */
static void reduce_n_lp(const reduce_impl_t *impl, int t, void *dst,
                        const void *const *srcs, int n, size_t count, int op,
                        int dv, float d)
{
    int f32 = t == SCOMM_FLOAT32;
    int first = f32 ? SHAPE_T_T : SHAPE_T_F32;
    int mid = f32 ? SHAPE_T_T : SHAPE_F32_F32;
    int last = f32 ? SHAPE_T_T : SHAPE_F32_T;
    size_t esz = dtype_size((scomm_dtype_t)t);
    size_t blk = ACC_BYTES / sizeof(float);
    float acc[ACC_BYTES / sizeof(float)];

    if (n == 1) {
        impl->lp(t, OP_COPY, SHAPE_T_T, dst, srcs[0], NULL, count, dv, d);
        return;
    }
    if (n == 2) {
        impl->lp(t, op, SHAPE_T_T, dst, srcs[0], srcs[1], count, dv, d);
        return;
    }
    for (size_t i = 0; i < count; i += blk) {
        size_t m = count - i < blk ? count - i : blk;
        size_t off = i * esz;

        impl->lp(t, op, first, acc, (const char *)srcs[0] + off,
                 (const char *)srcs[1] + off, m, 0, 1.0f);
        for (int k = 2; k < n - 1; k++) {
            impl->lp(t, op, mid, acc, acc, (const char *)srcs[k] + off, m, 0,
                     1.0f);
        }
        impl->lp(t, op, last, (char *)dst + off, acc,
                 (const char *)srcs[n - 1] + off, m, dv, d);
    }
}

/* scomm_reduce_n() for the integer types and float64, in their own type. */
static void reduce_n_nat(const reduce_impl_t *impl, int t, void *dst,
                         const void *const *srcs, int n, size_t count, int op,
                         int dv, int d)
{
    size_t esz = dtype_size((scomm_dtype_t)t);
    size_t blk = ACC_BYTES / esz;
    uint64_t acc[ACC_BYTES / sizeof(uint64_t)];

    if (n <= 2) {
        if (n == 2) {
            impl->nat(t, op, dst, srcs[0], srcs[1], count);
        } else if (dst != srcs[0]) {
            memmove(dst, srcs[0], count * esz);
        }
        if (dv) {
            impl->natdiv(t, dst, count, d);
        }
        return;
    }
    for (size_t i = 0; i < count; i += blk) {
        size_t m = count - i < blk ? count - i : blk;
        size_t off = i * esz;
        char *out = (char *)dst + off;

        impl->nat(t, op, acc, (const char *)srcs[0] + off,
                  (const char *)srcs[1] + off, m);
        for (int k = 2; k < n - 1; k++) {
            impl->nat(t, op, acc, acc, (const char *)srcs[k] + off, m);
        }
        impl->nat(t, op, out, acc, (const char *)srcs[n - 1] + off, m);
        if (dv) {
            impl->natdiv(t, out, m, d);
        }
    }
}

void scomm_reduce_n(void *dst, const void *const *srcs, int n, size_t count,
                    scomm_dtype_t dtype, scomm_redop_t op, int divisor)
{
    const reduce_impl_t *impl;
    fpenv_t env;
    int dv = 0;
    int d = 1;

    if (count == 0 || n < 1 || !valid(dtype, op)) {
        return;
    }
    if (op == SCOMM_AVG) {
        op = SCOMM_SUM;
        dv = 1;
        d = divisor < 1 ? 1 : divisor;
    }
    if (n == 1 && !dv) {
        if (dst != srcs[0]) {
            memmove(dst, srcs[0], count * dtype_size(dtype));
        }
        return;
    }
    impl = get_impl();
    env = fpenv_enter();
    if (is_lp(dtype)) {
        reduce_n_lp(impl, (int)dtype, dst, srcs, n, count, (int)op, dv,
                    (float)d);
    } else {
        reduce_n_nat(impl, (int)dtype, dst, srcs, n, count, (int)op, dv, d);
    }
    fpenv_leave(env);
}

void scomm_reduce_div(void *buf, size_t count, scomm_dtype_t dtype,
                      int divisor)
{
    const reduce_impl_t *impl;
    fpenv_t env;

    if (count == 0 || divisor < 1 || dtype_size(dtype) == 0) {
        return;
    }
    impl = get_impl();
    env = fpenv_enter();
    if (is_lp(dtype)) {
        impl->lp((int)dtype, OP_COPY, SHAPE_T_T, buf, buf, NULL, count, 1,
                 (float)divisor);
    } else {
        impl->natdiv((int)dtype, buf, count, divisor);
    }
    fpenv_leave(env);
}

/*
 * Integer and float64 bulk conversions. They are kept out of line so that
 * the compiler cannot move their float conversions across the MXCSR
 * changes of the caller.
 */
#define CVT_FROM_F32_INT(T, LO, HI_EXCL, LO_VAL, HI_VAL)                   \
    do {                                                                   \
        T *o = (T *)dst;                                                   \
        for (size_t i = 0; i < count; i++) {                               \
            float x = src[i];                                              \
            o[i] = x != x            ? (T)0                                \
                   : x <= (LO)       ? (T)(LO_VAL)                         \
                   : x >= (HI_EXCL)  ? (T)(HI_VAL)                         \
                                     : (T)x;                               \
        }                                                                  \
    } while (0)

__attribute__((noinline)) static void cvt_to_f32_other(float *dst,
                                                       const void *src,
                                                       size_t count,
                                                       scomm_dtype_t dtype)
{
    for (size_t i = 0; i < count; i++) {
        float v;

        switch (dtype) {
        case SCOMM_INT8:
            v = (float)((const i8u_t *)src)[i];
            break;
        case SCOMM_UINT8:
            v = (float)((const u8u_t *)src)[i];
            break;
        case SCOMM_INT32:
            v = (float)((const i32u_t *)src)[i];
            break;
        case SCOMM_UINT32:
            v = (float)((const u32u_t *)src)[i];
            break;
        case SCOMM_INT64:
            v = (float)((const i64u_t *)src)[i];
            break;
        case SCOMM_UINT64:
            v = (float)((const u64u_t *)src)[i];
            break;
        default:
            v = (float)((const f64u_t *)src)[i];
            break;
        }
        ((f32u_t *)dst)[i] = v;
    }
}

__attribute__((noinline)) static void cvt_from_f32_other(void *dst,
                                                         const f32u_t *src,
                                                         size_t count,
                                                         scomm_dtype_t dtype)
{
    switch (dtype) {
    case SCOMM_INT8:
        CVT_FROM_F32_INT(i8u_t, -128.0f, 128.0f, INT8_MIN, INT8_MAX);
        break;
    case SCOMM_UINT8:
        CVT_FROM_F32_INT(u8u_t, 0.0f, 256.0f, 0, UINT8_MAX);
        break;
    case SCOMM_INT32:
        CVT_FROM_F32_INT(i32u_t, -2147483648.0f, 2147483648.0f, INT32_MIN,
                         INT32_MAX);
        break;
    case SCOMM_UINT32:
        CVT_FROM_F32_INT(u32u_t, 0.0f, 4294967296.0f, 0, UINT32_MAX);
        break;
    case SCOMM_INT64:
        CVT_FROM_F32_INT(i64u_t, -9223372036854775808.0f,
                         9223372036854775808.0f, INT64_MIN, INT64_MAX);
        break;
    case SCOMM_UINT64:
        CVT_FROM_F32_INT(u64u_t, 0.0f, 18446744073709551616.0f, 0,
                         UINT64_MAX);
        break;
    default:
        for (size_t i = 0; i < count; i++) {
            ((f64u_t *)dst)[i] = (double)src[i];
        }
        break;
    }
}

void scomm_cvt_to_f32(float *dst, const void *src, size_t count,
                      scomm_dtype_t dtype)
{
    fpenv_t env;

    if (count == 0 || dtype_size(dtype) == 0) {
        return;
    }
    if (dtype == SCOMM_FLOAT32) {
        if ((const void *)dst != src) {
            memmove(dst, src, count * sizeof(float));
        }
        return;
    }
    env = fpenv_enter();
    if (is_lp(dtype)) {
        get_impl()->lp((int)dtype, OP_COPY, SHAPE_T_F32, dst, src, NULL,
                       count, 0, 1.0f);
    } else {
        cvt_to_f32_other(dst, src, count, dtype);
    }
    fpenv_leave(env);
}

void scomm_cvt_from_f32(void *dst, const float *src, size_t count,
                        scomm_dtype_t dtype)
{
    fpenv_t env;

    if (count == 0 || dtype_size(dtype) == 0) {
        return;
    }
    if (dtype == SCOMM_FLOAT32) {
        if (dst != (const void *)src) {
            memmove(dst, src, count * sizeof(float));
        }
        return;
    }
    env = fpenv_enter();
    if (is_lp(dtype)) {
        get_impl()->lp((int)dtype, OP_COPY, SHAPE_F32_T, dst, src, NULL,
                       count, 0, 1.0f);
    } else {
        cvt_from_f32_other(dst, (const f32u_t *)src, count, dtype);
    }
    fpenv_leave(env);
}

void scomm_cvt_scaled(void *dst, scomm_dtype_t dst_dtype, const void *src,
                      scomm_dtype_t src_dtype, size_t count, float mul)
{
    fpenv_t env;

    if ((count == 0) || !is_lp(dst_dtype) || !is_lp(src_dtype)) {
        return;
    }
    env = fpenv_enter();
    get_impl()->xcvt((int)src_dtype, (int)dst_dtype, dst, src, count, mul);
    fpenv_leave(env);
}

#else /* SCOMM_REDUCE_PASS: the kernel template, compiled once per pass */

/* ------------------------------------------------------------------------ */
/* Pass settings                                                             */
/* ------------------------------------------------------------------------ */

#if SCOMM_REDUCE_PASS == 1
#define SFX _scalar
#define TGT
#define VW 1
#elif SCOMM_REDUCE_PASS == 2
#define SFX _avx2
#define TGT __attribute__((target("avx2,f16c")))
#define VW 8
#elif SCOMM_REDUCE_PASS == 3
#define SFX _avx512
#if defined(__clang__)
#define TGT __attribute__((target("avx512f,avx512bw")))
#else
#define TGT __attribute__((target("avx512f,avx512bw,prefer-vector-width=512")))
#endif
#define VW 16
#endif

#define V(name) SCOMM_PASTE(name, SFX)
#define VINL static SCOMM_ALWAYS_INLINE TGT

/* ------------------------------------------------------------------------ */
/* AVX2 + F16C primitives: 8 floats per vector                               */
/* ------------------------------------------------------------------------ */

#if SCOMM_REDUCE_PASS == 2
typedef __m256 vf_t_avx2;

VINL __m256 vset1_avx2(float x)
{
    return _mm256_set1_ps(x);
}

/* Blend in a quiet copy of x where x is NaN (see s_addf()). */
VINL __m256 nanfix_avx2(__m256 r, __m256 x)
{
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 q = _mm256_or_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(F32_QUIET)));

    return _mm256_blendv_ps(r, q, isnan);
}

VINL __m256 vop_avx2(const int op, __m256 a, __m256 b)
{
    __m256 r;

    switch (op) {
    case SCOMM_SUM:
        return nanfix_avx2(_mm256_add_ps(a, b), a);
    case SCOMM_PROD:
        return nanfix_avx2(_mm256_mul_ps(a, b), a);
    case SCOMM_MAX:
        r = _mm256_max_ps(a, b);
        r = _mm256_blendv_ps(r, _mm256_and_ps(a, b),
                             _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
        return nanfix_avx2(nanfix_avx2(r, b), a);
    case SCOMM_MIN:
        r = _mm256_min_ps(a, b);
        r = _mm256_blendv_ps(r, _mm256_or_ps(a, b),
                             _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
        return nanfix_avx2(nanfix_avx2(r, b), a);
    default:
        return a;
    }
}

VINL __m256 vdiv_avx2(__m256 a, __m256 d)
{
    return _mm256_div_ps(a, d);
}

/*
 * float32 -> 8-bit float (e4m3 when e4m3 is set, else e5m2), 8 lanes, the
 * algorithm of k_f32_e4m3() / k_f32_e5m2().
 */
VINL __m256i fp8_round_avx2(__m256i u, const int e4m3)
{
    const int shift = e4m3 ? 20 : 21;
    const __m256i one = _mm256_set1_epi32(1);
    __m256i a = _mm256_and_si256(u, _mm256_set1_epi32((int)F32_ABS));
    __m256i s = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, shift), one);
    __m256i bias = _mm256_set1_epi32((1 << (shift - 1)) - 1);
    __m256i rn = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(a, bias), lsb), shift);
    const int magic = e4m3 ? 0x46800000 : 0x43000000;
    __m256i q, r, sub, nan;

    rn = _mm256_sub_epi32(rn, _mm256_set1_epi32(e4m3 ? 120 << 3 : 112 << 2));
    rn = _mm256_min_epi32(rn, _mm256_set1_epi32(e4m3 ? 0x7e : 0x7c));
    /* Subnormal results; lanes where they do not apply are blended away. */
    q = _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a),
                                          _mm256_castsi256_ps(_mm256_set1_epi32(magic))));
    q = _mm256_sub_epi32(q, _mm256_set1_epi32(magic));
    sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(e4m3 ? 0x3c800000 : 0x38800000), a);
    r = _mm256_blendv_epi8(rn, q, sub);
    nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32((int)F32_INF));
    if (e4m3) {
        r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7f), nan);
    } else {
        __m256i qn = _mm256_or_si256(_mm256_set1_epi32(0x7e),
                                     _mm256_and_si256(_mm256_srli_epi32(a, 21), one));

        r = _mm256_blendv_epi8(r, qn, nan);
    }
    return _mm256_or_si256(r, s);
}

/* Load 8 elements of type t at element i as float32. */
VINL __m256 ldv_avx2(const int t, const void *p, size_t i)
{
    switch (t) {
    case SCOMM_FLOAT16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const char *)p + 2 * i)));
    case SCOMM_BFLOAT16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const char *)p + 2 * i));

        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case SCOMM_FP8_E4M3: {
        __m128i x = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)((const char *)p + i)));
        __m128i sgn = _mm_slli_epi16(_mm_and_si128(x, _mm_set1_epi16(0x80)), 8);
        __m128i mag = _mm_and_si128(x, _mm_set1_epi16(0x7f));
        __m128i h = _mm_or_si128(sgn, _mm_slli_epi16(mag, 7));
        __m128i nan = _mm_cmpeq_epi16(mag, _mm_set1_epi16(0x7f));

        h = _mm_blendv_epi8(h, _mm_or_si128(sgn, _mm_set1_epi16(0x7e00)), nan);
        return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
    }
    case SCOMM_FP8_E5M2: {
        __m128i x = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)((const char *)p + i)));

        return _mm256_cvtph_ps(_mm_slli_epi16(x, 8));
    }
    default:
        return _mm256_loadu_ps((const float *)((const char *)p + 4 * i));
    }
}

/* Store 8 float32 as elements i.. of type t, rounding to nearest even. */
VINL void stv_avx2(const int t, void *p, size_t i, __m256 v)
{
    switch (t) {
    case SCOMM_FLOAT16:
        _mm_storeu_si128((__m128i *)((char *)p + 2 * i),
                         _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        break;
    case SCOMM_BFLOAT16: {
        const __m256i one = _mm256_set1_epi32(1);
        __m256i u = _mm256_castps_si256(v);
        __m256i hi = _mm256_srli_epi32(u, 16);
        __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                                         _mm256_and_si256(hi, one)));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32((int)F32_ABS)),
                                         _mm256_set1_epi32((int)F32_INF));

        r = _mm256_srli_epi32(r, 16);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
        _mm_storeu_si128((__m128i *)((char *)p + 2 * i),
                         _mm_packus_epi32(_mm256_castsi256_si128(r),
                                          _mm256_extracti128_si256(r, 1)));
        break;
    }
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2: {
        __m256i r = fp8_round_avx2(_mm256_castps_si256(v), t == SCOMM_FP8_E4M3);
        __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(r),
                                     _mm256_extracti128_si256(r, 1));

        _mm_storel_epi64((__m128i *)((char *)p + i), _mm_packus_epi16(w, w));
        break;
    }
    default:
        _mm256_storeu_ps((float *)((char *)p + 4 * i), v);
        break;
    }
}
#endif /* SCOMM_REDUCE_PASS == 2 */

/* ------------------------------------------------------------------------ */
/* AVX-512 primitives: 16 floats per vector                                  */
/* ------------------------------------------------------------------------ */

#if SCOMM_REDUCE_PASS == 3
typedef __m512 vf_t_avx512;

VINL __m512 vset1_avx512(float x)
{
    return _mm512_set1_ps(x);
}

/* Put a quiet copy of x where x is NaN (see s_addf()). */
VINL __m512 nanfix_avx512(__m512 r, __m512 x)
{
    __mmask16 isnan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);

    return _mm512_castsi512_ps(_mm512_mask_or_epi32(_mm512_castps_si512(r), isnan,
                                                    _mm512_castps_si512(x),
                                                    _mm512_set1_epi32(F32_QUIET)));
}

VINL __m512 vop_avx512(const int op, __m512 a, __m512 b)
{
    __m512i r;
    __mmask16 eq;

    switch (op) {
    case SCOMM_SUM:
        return nanfix_avx512(_mm512_add_ps(a, b), a);
    case SCOMM_PROD:
        return nanfix_avx512(_mm512_mul_ps(a, b), a);
    case SCOMM_MAX:
        eq = _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ);
        r = _mm512_castps_si512(_mm512_max_ps(a, b));
        r = _mm512_mask_and_epi32(r, eq, _mm512_castps_si512(a), _mm512_castps_si512(b));
        return nanfix_avx512(nanfix_avx512(_mm512_castsi512_ps(r), b), a);
    case SCOMM_MIN:
        eq = _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ);
        r = _mm512_castps_si512(_mm512_min_ps(a, b));
        r = _mm512_mask_or_epi32(r, eq, _mm512_castps_si512(a), _mm512_castps_si512(b));
        return nanfix_avx512(nanfix_avx512(_mm512_castsi512_ps(r), b), a);
    default:
        return a;
    }
}

VINL __m512 vdiv_avx512(__m512 a, __m512 d)
{
    return _mm512_div_ps(a, d);
}

/* float32 -> 8-bit float, 16 lanes; see fp8_round_avx2(). */
VINL __m512i fp8_round_avx512(__m512i u, const int e4m3)
{
    const int shift = e4m3 ? 20 : 21;
    const __m512i one = _mm512_set1_epi32(1);
    __m512i a = _mm512_and_si512(u, _mm512_set1_epi32((int)F32_ABS));
    __m512i s = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, shift), one);
    __m512i bias = _mm512_set1_epi32((1 << (shift - 1)) - 1);
    __m512i rn = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(a, bias), lsb), shift);
    const int magic = e4m3 ? 0x46800000 : 0x43000000;
    __m512i q;
    __mmask16 sub, nan;

    rn = _mm512_sub_epi32(rn, _mm512_set1_epi32(e4m3 ? 120 << 3 : 112 << 2));
    rn = _mm512_min_epi32(rn, _mm512_set1_epi32(e4m3 ? 0x7e : 0x7c));
    q = _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a),
                                          _mm512_castsi512_ps(_mm512_set1_epi32(magic))));
    q = _mm512_sub_epi32(q, _mm512_set1_epi32(magic));
    sub = _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(e4m3 ? 0x3c800000 : 0x38800000), a);
    rn = _mm512_mask_mov_epi32(rn, sub, q);
    nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32((int)F32_INF));
    if (e4m3) {
        rn = _mm512_mask_mov_epi32(rn, nan, _mm512_set1_epi32(0x7f));
    } else {
        __m512i qn = _mm512_or_si512(_mm512_set1_epi32(0x7e),
                                     _mm512_and_si512(_mm512_srli_epi32(a, 21), one));

        rn = _mm512_mask_mov_epi32(rn, nan, qn);
    }
    return _mm512_or_si512(rn, s);
}

/* Load 16 elements of type t at element i as float32. */
VINL __m512 ldv_avx512(const int t, const void *p, size_t i)
{
    switch (t) {
    case SCOMM_FLOAT16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const char *)p + 2 * i)));
    case SCOMM_BFLOAT16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const char *)p + 2 * i));

        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case SCOMM_FP8_E4M3: {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((const char *)p + i)));
        __m256i sgn = _mm256_slli_epi16(_mm256_and_si256(x, _mm256_set1_epi16(0x80)), 8);
        __m256i mag = _mm256_and_si256(x, _mm256_set1_epi16(0x7f));
        __m256i h = _mm256_or_si256(sgn, _mm256_slli_epi16(mag, 7));
        __m256i nan = _mm256_cmpeq_epi16(mag, _mm256_set1_epi16(0x7f));

        h = _mm256_blendv_epi8(h, _mm256_or_si256(sgn, _mm256_set1_epi16(0x7e00)), nan);
        return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
    }
    case SCOMM_FP8_E5M2: {
        __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)((const char *)p + i)));

        return _mm512_cvtph_ps(_mm256_slli_epi16(x, 8));
    }
    default:
        return _mm512_loadu_ps((const char *)p + 4 * i);
    }
}

/* Store 16 float32 as elements i.. of type t, rounding to nearest even. */
VINL void stv_avx512(const int t, void *p, size_t i, __m512 v)
{
    switch (t) {
    case SCOMM_FLOAT16:
        _mm256_storeu_si256((__m256i *)((char *)p + 2 * i),
                            _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        break;
    case SCOMM_BFLOAT16: {
        const __m512i one = _mm512_set1_epi32(1);
        __m512i u = _mm512_castps_si512(v);
        __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                         _mm512_and_si512(hi, one)));
        __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32((int)F32_ABS));
        __mmask16 nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32((int)F32_INF));

        r = _mm512_srli_epi32(r, 16);
        r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
        _mm256_storeu_si256((__m256i *)((char *)p + 2 * i), _mm512_cvtepi32_epi16(r));
        break;
    }
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2: {
        __m512i r = fp8_round_avx512(_mm512_castps_si512(v), t == SCOMM_FP8_E4M3);

        _mm_storeu_si128((__m128i *)((char *)p + i), _mm512_cvtepi32_epi8(r));
        break;
    }
    default:
        _mm512_storeu_ps((char *)p + 4 * i, v);
        break;
    }
}
#endif /* SCOMM_REDUCE_PASS == 3 */

/* ------------------------------------------------------------------------ */
/* Low-precision and float32 kernels                                         */
/* ------------------------------------------------------------------------ */

/*
 * The one loop of the float kernels. t, op, af32, of32 and dv are constants
 * at every call, so each instance is specialised. a is float32 when af32 is
 * set, else of type t; b is always of type t; out is float32 when of32 is
 * set. With dv the result is divided by d before it is stored. The vector
 * loop and the scalar tail perform the same operations element by element.
 * dv must stay a constant: clang turns a run-time "if (dv) r = r / d" into
 * r / (dv ? d : 1), and x / 1 makes a signalling NaN quiet.
 */
VINL void V(lp_loop)(const int t, const int op, const int af32, const int of32,
                     const int dv, void *out, const void *a, const void *b,
                     size_t n, float d)
{
    size_t i = 0;

#if VW > 1
    const V(vf_t) vd = V(vset1)(d);

    for (; i + VW <= n; i += VW) {
        V(vf_t) r = V(ldv)(af32 ? SCOMM_FLOAT32 : t, a, i);

        if (op != OP_COPY) {
            r = V(vop)(op, r, V(ldv)(t, b, i));
        }
        if (dv) {
            r = V(vdiv)(r, vd);
        }
        V(stv)(of32 ? SCOMM_FLOAT32 : t, out, i, r);
    }
    if (i < n) {
        /* The tail goes to the portable kernel, which gives the same bits. */
        size_t ts = t == SCOMM_FLOAT32 ? 4 : t == SCOMM_FLOAT16 || t == SCOMM_BFLOAT16 ? 2 : 1;
        size_t as = af32 ? 4 : ts;
        size_t os = of32 ? 4 : ts;
        int shape = af32 ? (of32 ? SHAPE_F32_F32 : SHAPE_F32_T)
                         : (of32 ? SHAPE_T_F32 : SHAPE_T_T);

        lp_run_scalar(t, op, shape, (char *)out + i * os,
                      (const char *)a + i * as,
                      b != NULL ? (const char *)b + i * ts : NULL, n - i, dv, d);
    }
#else
    SCOMM_IVDEP
    for (; i < n; i++) {
        float r = s_ld(af32 ? SCOMM_FLOAT32 : t, a, i);

        if (op != OP_COPY) {
            r = s_opf(op, r, s_ld(t, b, i));
        }
        if (dv) {
            r = r / d;
        }
        s_st(of32 ? SCOMM_FLOAT32 : t, out, i, r);
    }
#endif
}

/*
 * Division only ever follows SUM (the end of an AVG) or COPY (scomm_reduce_
 * div), and only into the dtype itself, so only those loops get a dividing
 * instance.
 */
#define LP_DV(OP) (dv && ((OP) == SCOMM_SUM || (OP) == OP_COPY))

#define LP_SHAPES(T, OP)                                                   \
    do {                                                                   \
        switch (shape) {                                                   \
        case SHAPE_T_T:                                                    \
            if (LP_DV(OP)) {                                               \
                V(lp_loop)(T, OP, 0, 0, 1, out, a, b, n, d);               \
            } else {                                                       \
                V(lp_loop)(T, OP, 0, 0, 0, out, a, b, n, d);               \
            }                                                              \
            break;                                                         \
        case SHAPE_T_F32:                                                  \
            V(lp_loop)(T, OP, 0, 1, 0, out, a, b, n, d);                   \
            break;                                                         \
        case SHAPE_F32_F32:                                                \
            V(lp_loop)(T, OP, 1, 1, 0, out, a, b, n, d);                   \
            break;                                                         \
        default:                                                           \
            if (LP_DV(OP)) {                                               \
                V(lp_loop)(T, OP, 1, 0, 1, out, a, b, n, d);               \
            } else {                                                       \
                V(lp_loop)(T, OP, 1, 0, 0, out, a, b, n, d);               \
            }                                                              \
            break;                                                         \
        }                                                                  \
    } while (0)

#define LP_OPS(T, SHAPES)                                                  \
    do {                                                                   \
        switch (op) {                                                      \
        case SCOMM_SUM:                                                    \
            SHAPES(T, SCOMM_SUM);                                          \
            break;                                                         \
        case SCOMM_PROD:                                                   \
            SHAPES(T, SCOMM_PROD);                                         \
            break;                                                         \
        case SCOMM_MAX:                                                    \
            SHAPES(T, SCOMM_MAX);                                          \
            break;                                                         \
        case SCOMM_MIN:                                                    \
            SHAPES(T, SCOMM_MIN);                                          \
            break;                                                         \
        default:                                                           \
            SHAPES(T, OP_COPY);                                            \
            break;                                                         \
        }                                                                  \
    } while (0)

/* float32 has a single shape: a, b and out are all float32. */
#define LP_ONE_SHAPE(T, OP)                                                \
    do {                                                                   \
        if (LP_DV(OP)) {                                                   \
            V(lp_loop)(T, OP, 0, 0, 1, out, a, b, n, d);                   \
        } else {                                                           \
            V(lp_loop)(T, OP, 0, 0, 0, out, a, b, n, d);                   \
        }                                                                  \
    } while (0)

SCOMM_NOINLINE static TGT void V(lp_run)(int t, int op, int shape, void *out,
                                         const void *a, const void *b,
                                         size_t n, int dv, float d)
{
    switch (t) {
    case SCOMM_FLOAT16:
        LP_OPS(SCOMM_FLOAT16, LP_SHAPES);
        break;
    case SCOMM_BFLOAT16:
        LP_OPS(SCOMM_BFLOAT16, LP_SHAPES);
        break;
    case SCOMM_FP8_E4M3:
        LP_OPS(SCOMM_FP8_E4M3, LP_SHAPES);
        break;
    case SCOMM_FP8_E5M2:
        LP_OPS(SCOMM_FP8_E5M2, LP_SHAPES);
        break;
    case SCOMM_FLOAT32:
        LP_OPS(SCOMM_FLOAT32, LP_ONE_SHAPE);
        break;
    default:
        break;
    }
}

#undef LP_DV
#undef LP_SHAPES
#undef LP_OPS
#undef LP_ONE_SHAPE

/* ------------------------------------------------------------------------ */
/* Integer and float64 kernels (plain C, vectorised by the compiler)         */
/* ------------------------------------------------------------------------ */

#define NAT_INT_LOOP(PT, T, U)                                             \
    do {                                                                   \
        PT *o = (PT *)out;                                                 \
        const PT *x = (const PT *)a;                                       \
        const PT *y = (const PT *)b;                                       \
        SCOMM_IVDEP                                                        \
        for (size_t i = 0; i < n; i++) {                                   \
            T xi = x[i];                                                   \
            T yi = y[i];                                                   \
            o[i] = INT_OP(T, U, op, xi, yi);                               \
        }                                                                  \
    } while (0)

VINL void V(nat_loop)(const int t, const int op, void *out, const void *a,
                      const void *b, size_t n)
{
    switch (t) {
    case SCOMM_INT8:
        NAT_INT_LOOP(i8u_t, int8_t, uint8_t);
        break;
    case SCOMM_UINT8:
        NAT_INT_LOOP(u8u_t, uint8_t, uint8_t);
        break;
    case SCOMM_INT32:
        NAT_INT_LOOP(i32u_t, int32_t, uint32_t);
        break;
    case SCOMM_UINT32:
        NAT_INT_LOOP(u32u_t, uint32_t, uint32_t);
        break;
    case SCOMM_INT64:
        NAT_INT_LOOP(i64u_t, int64_t, uint64_t);
        break;
    case SCOMM_UINT64:
        NAT_INT_LOOP(u64u_t, uint64_t, uint64_t);
        break;
    case SCOMM_FLOAT64: {
        f64u_t *o = (f64u_t *)out;
        const f64u_t *x = (const f64u_t *)a;
        const f64u_t *y = (const f64u_t *)b;

        SCOMM_IVDEP
        for (size_t i = 0; i < n; i++) {
            double xi = x[i];
            double yi = y[i];

            o[i] = op == SCOMM_SUM    ? s_addd(xi, yi)
                   : op == SCOMM_PROD ? s_muld(xi, yi)
                   : op == SCOMM_MAX  ? s_maxd(xi, yi)
                                      : s_mind(xi, yi);
        }
        break;
    }
    default:
        break;
    }
}

#define NAT_OPS(T)                                                         \
    do {                                                                   \
        switch (op) {                                                      \
        case SCOMM_SUM:                                                    \
            V(nat_loop)(T, SCOMM_SUM, out, a, b, n);                       \
            break;                                                         \
        case SCOMM_PROD:                                                   \
            V(nat_loop)(T, SCOMM_PROD, out, a, b, n);                      \
            break;                                                         \
        case SCOMM_MAX:                                                    \
            V(nat_loop)(T, SCOMM_MAX, out, a, b, n);                       \
            break;                                                         \
        default:                                                           \
            V(nat_loop)(T, SCOMM_MIN, out, a, b, n);                       \
            break;                                                         \
        }                                                                  \
    } while (0)

SCOMM_NOINLINE static TGT void V(nat_run)(int t, int op, void *out,
                                          const void *a, const void *b,
                                          size_t n)
{
    switch (t) {
    case SCOMM_INT8:
        NAT_OPS(SCOMM_INT8);
        break;
    case SCOMM_UINT8:
        NAT_OPS(SCOMM_UINT8);
        break;
    case SCOMM_INT32:
        NAT_OPS(SCOMM_INT32);
        break;
    case SCOMM_UINT32:
        NAT_OPS(SCOMM_UINT32);
        break;
    case SCOMM_INT64:
        NAT_OPS(SCOMM_INT64);
        break;
    case SCOMM_UINT64:
        NAT_OPS(SCOMM_UINT64);
        break;
    case SCOMM_FLOAT64:
        NAT_OPS(SCOMM_FLOAT64);
        break;
    default:
        break;
    }
}

#undef NAT_OPS

/*
 * Division by d >= 1, truncating toward zero for integers. Types of up to
 * 32 bits go through double, which is exact here and vectorises: with
 * x = q*d + r (0 <= r < d), x/d lies in [q, q + 1 - 1/d], and since
 * d*(|q| + 1) <= |x| + d < 2^53 the gap 1/d to the next integer exceeds half
 * an ulp of x/d, so the correctly rounded quotient never reaches q + 1 and
 * truncating it gives q (signs are symmetric). 64-bit integers use C
 * division.
 */
#define NAT_DIV_DBL(PT)                                                    \
    do {                                                                   \
        PT *o = (PT *)buf;                                                 \
        for (size_t i = 0; i < n; i++) {                                   \
            o[i] = (PT)((double)o[i] / dd);                                \
        }                                                                  \
    } while (0)

SCOMM_NOINLINE static TGT void V(nat_div)(int t, void *buf, size_t n, int d)
{
    const double dd = (double)d;

    switch (t) {
    case SCOMM_INT8:
        NAT_DIV_DBL(i8u_t);
        break;
    case SCOMM_UINT8:
        NAT_DIV_DBL(u8u_t);
        break;
    case SCOMM_INT32:
        NAT_DIV_DBL(i32u_t);
        break;
    case SCOMM_UINT32:
        NAT_DIV_DBL(u32u_t);
        break;
    case SCOMM_INT64: {
        i64u_t *o = (i64u_t *)buf;

        for (size_t i = 0; i < n; i++) {
            o[i] = o[i] / (int64_t)d;
        }
        break;
    }
    case SCOMM_UINT64: {
        u64u_t *o = (u64u_t *)buf;

        for (size_t i = 0; i < n; i++) {
            o[i] = o[i] / (uint64_t)d;
        }
        break;
    }
    case SCOMM_FLOAT64:
        NAT_DIV_DBL(f64u_t);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Scaled conversion (the KV encodings of src/kv)                            */
/* ------------------------------------------------------------------------ */

/*
 * out (type to) = a (type ti) widened exactly to float32, times m (one
 * rounded product, NaN as SCOMM_PROD treats it), rounded once to `to`. ti
 * and to are constants at every call. The vector loop and the scalar tail
 * perform the same operations element by element.
 */
VINL void V(xcvt_loop)(const int ti, const int to, void *out, const void *a,
                       size_t n, float m)
{
    size_t i = 0;

#if VW > 1
    const V(vf_t) vm = V(vset1)(m);

    for (; i + VW <= n; i += VW) {
        V(stv)(to, out, i, V(vop)(SCOMM_PROD, V(ldv)(ti, a, i), vm));
    }
    if (i < n) {
        size_t is = ti == SCOMM_FLOAT32 ? 4 : ti == SCOMM_FP8_E4M3 || ti == SCOMM_FP8_E5M2 ? 1 : 2;
        size_t os = to == SCOMM_FLOAT32 ? 4 : to == SCOMM_FP8_E4M3 || to == SCOMM_FP8_E5M2 ? 1 : 2;

        xcvt_run_scalar(ti, to, (char *)out + i * os, (const char *)a + i * is, n - i, m);
    }
#else
    SCOMM_IVDEP
    for (; i < n; i++) {
        s_st(to, out, i, s_opf(SCOMM_PROD, s_ld(ti, a, i), m));
    }
#endif
}

#define XCVT_PAIR(TI, TO)                                                  \
    if ((ti == (TI)) && (to == (TO))) {                                    \
        V(xcvt_loop)(TI, TO, out, a, n, m);                                \
        return;                                                            \
    }

/* The pairs the KV encodings use get their own loop; any other pair of
 * float dtypes goes element by element through the portable code. */
SCOMM_NOINLINE static TGT void V(xcvt_run)(int ti, int to, void *out,
                                           const void *a, size_t n, float m)
{
    XCVT_PAIR(SCOMM_FLOAT16, SCOMM_FP8_E4M3)
    XCVT_PAIR(SCOMM_BFLOAT16, SCOMM_FP8_E4M3)
    XCVT_PAIR(SCOMM_FLOAT32, SCOMM_FP8_E4M3)
    XCVT_PAIR(SCOMM_FP8_E4M3, SCOMM_FLOAT16)
    XCVT_PAIR(SCOMM_FP8_E4M3, SCOMM_BFLOAT16)
    XCVT_PAIR(SCOMM_FP8_E4M3, SCOMM_FLOAT32)
    for (size_t i = 0; i < n; i++) {
        s_st(to, out, i, s_opf(SCOMM_PROD, s_ld(ti, a, i), m));
    }
}

#undef XCVT_PAIR

#undef NAT_DIV_DBL
#undef SFX
#undef TGT
#undef VW
#undef V
#undef VINL

#endif /* SCOMM_REDUCE_PASS */
