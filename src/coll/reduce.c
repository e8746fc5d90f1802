/*
 * reduce.c - element-wise reduction kernels of the collectives.
 *
 * Layout. This file holds the scalar element helpers, the conversions,
 * the dispatch and the public functions. The kernels are a template,
 * reduce_pass.h, which this file includes three times with
 * SCOMM_REDUCE_PASS set to 1 (portable C), 2 (AVX2 + F16C) and 3 (AVX-512
 * F + BW); each pass compiles the same kernels with its own GCC target
 * attribute and its own vector primitives, using the scalar helpers
 * defined here before the includes. The choice between the passes is made
 * once, at first use, with __builtin_cpu_supports().
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
#include "reduce_pass.h"
#undef SCOMM_REDUCE_PASS

#if SCOMM_REDUCE_X86
/* Pass 2: AVX2 + F16C. */
#define SCOMM_REDUCE_PASS 2
#include "reduce_pass.h"
#undef SCOMM_REDUCE_PASS

/* Pass 3: AVX-512 F + BW. */
#define SCOMM_REDUCE_PASS 3
#include "reduce_pass.h"
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
