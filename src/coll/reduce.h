/*
 * reduce.h - element-wise reduction kernels of the collectives (internal).
 *
 * Every kernel here is deterministic: the result of a call depends only on
 * its inputs, never on the SIMD path chosen at run time, the alignment of
 * the buffers, or the floating-point environment of the calling thread.
 * The vector paths (AVX2 + F16C, AVX-512) and the portable scalar path give
 * bit-identical results, NaN payloads included.
 *
 * Semantics shared by all kernels:
 *  - Integers: SUM and PROD wrap modulo 2^bits (computed in unsigned
 *    arithmetic, so there is no undefined behaviour). MAX and MIN compare
 *    as signed or unsigned according to the dtype.
 *  - Integer AVG: the sum is formed with the same wrapping arithmetic, in the
 *    dtype itself, and is then divided by the divisor with truncation toward
 *    zero (C division). For example int8 {100, 100} averages to
 *    (int8)200 / 2 = -56 / 2 = -28, and int32 -7 / 2 = -3.
 *  - Floats: IEEE 754 arithmetic in round-to-nearest-even, without FMA
 *    contraction and without reassociation. A NaN operand propagates: the
 *    result is the first NaN operand in reduction order, made quiet (its
 *    sign and payload kept). An invalid operation on non-NaN operands
 *    (inf - inf, 0 * inf) gives the default NaN of the machine.
 *  - Float MAX and MIN follow IEEE 754-2019 maximum and minimum: NaN
 *    propagates as above (it is never ignored), and -0 orders below +0, so
 *    max(-0, +0) = +0 and min(-0, +0) = -0 in either operand order.
 *  - Low-precision floats (float16, bfloat16, fp8 e4m3, fp8 e5m2) are
 *    widened exactly to float32, combined in float32, and rounded to the
 *    dtype once, with round-to-nearest-even.
 *  - Buffers need no alignment at all. An output may be the very same
 *    pointer as an input (exact aliasing), but must not partially overlap
 *    one.
 *
 * Conversions: round-to-nearest-even. A NaN stays a NaN of the same sign; it
 * is made quiet and keeps as many leading payload bits as the narrower
 * format holds (this is what the F16C instructions do). Overflow gives
 * infinity for float16, bfloat16 and e5m2. The e4m3 format is the "fn"
 * variant without infinities (largest finite 448, NaN 0x7f and 0xff): it
 * saturates, so overflow and infinities give +-448, and NaN gives 0x7f or
 * 0xff by sign. Widening is exact, except that a signalling NaN of float16
 * or e5m2 is made quiet.
 */
#ifndef SCOMM_COLL_REDUCE_H
#define SCOMM_COLL_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#include "scomm.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * dst[i] = dst[i] (op) src[i] for i < count. Low-precision types are rounded
 * once per call. SCOMM_AVG behaves exactly like SCOMM_SUM here: the caller
 * divides once at the end with scomm_reduce_div().
 */
void scomm_reduce2(void *dst, const void *src, size_t count,
                   scomm_dtype_t dtype, scomm_redop_t op);

/* dst[i] = a[i] (op) b[i]; dst may be a or b. SCOMM_AVG acts as SCOMM_SUM. */
void scomm_reduce2_out(void *dst, const void *a, const void *b, size_t count,
                       scomm_dtype_t dtype, scomm_redop_t op);

/*
 * dst[i] = srcs[0][i] (op) srcs[1][i] (op) ... (op) srcs[n-1][i], reduced in
 * that fixed order (left to right). Low-precision floats are accumulated in
 * float32 and rounded once at the end. For SCOMM_AVG the accumulated sum is
 * divided by divisor (pass n normally) before that single rounding: in the
 * dtype for float32, float64 and integers (integers truncate toward zero),
 * in float32 for the low-precision types. A divisor below 1 counts as 1.
 * For other ops divisor is ignored. n >= 1 (n < 1 does nothing). dst may be
 * any of the srcs. With n == 1 and an op other than AVG, src is copied.
 */
void scomm_reduce_n(void *dst, const void *const *srcs, int n, size_t count,
                    scomm_dtype_t dtype, scomm_redop_t op, int divisor);

/*
 * In place: buf[i] = buf[i] / divisor, the AVG finalisation after a SUM.
 * Integers truncate toward zero; low-precision floats divide in float32 and
 * round once. A divisor below 1 leaves buf untouched.
 */
void scomm_reduce_div(void *buf, size_t count, scomm_dtype_t dtype,
                      int divisor);

/*
 * Validate a dtype/op pair: 0 if supported (all 12 x 5 valid pairs are),
 * else -1 with a reason written into why (NUL-terminated, truncated to
 * whylen; why may be NULL).
 */
int scomm_reduce_check(scomm_dtype_t dtype, scomm_redop_t op, char *why,
                       size_t whylen);

/* Scalar conversions (see the rules at the top of this file). */
float scomm_f16_to_f32(uint16_t h);
uint16_t scomm_f32_to_f16(float f);
float scomm_bf16_to_f32(uint16_t h);
uint16_t scomm_f32_to_bf16(float f);
float scomm_e4m3_to_f32(uint8_t v);
uint8_t scomm_f32_to_e4m3(float f);
float scomm_e5m2_to_f32(uint8_t v);
uint8_t scomm_f32_to_e5m2(float f);

/*
 * Bulk conversions, vectorised, bit-identical to the scalar ones. Float
 * dtypes convert as above (float64 rounds to nearest even, float32 copies).
 * Integer dtypes: to float32 rounds to nearest even; from float32
 * truncates toward zero, saturates to the type's range, and maps NaN to 0.
 * An invalid dtype does nothing.
 */
void scomm_cvt_to_f32(float *dst, const void *src, size_t count,
                      scomm_dtype_t dtype);
void scomm_cvt_from_f32(void *dst, const float *src, size_t count,
                        scomm_dtype_t dtype);

/*
 * dst[i] = src[i] x mul in one pass, for float16, bfloat16, fp8 e4m3/e5m2
 * and float32 on either side: src widened exactly to float32, one rounded
 * float32 product, then rounded once to dst_dtype (as scomm_cvt_from_f32).
 * The same bits as scomm_cvt_to_f32, a float32 multiply and
 * scomm_cvt_from_f32 (the quantiser of src/kv relies on it). Other dtypes do
 * nothing.
 */
void scomm_cvt_scaled(void *dst, scomm_dtype_t dst_dtype, const void *src,
                      scomm_dtype_t src_dtype, size_t count, float mul);

/*
 * Implementation selection, for tests and benchmarks. By default the best
 * path the CPU supports is chosen once, on first use. Forcing a path changes
 * speed only, never results. Not meant to be called while other threads
 * reduce.
 */
typedef enum {
    SCOMM_REDUCE_IMPL_AUTO   = 0,
    SCOMM_REDUCE_IMPL_SCALAR = 1, /* portable C (auto-vectorised by gcc) */
    SCOMM_REDUCE_IMPL_AVX2   = 2, /* x86 AVX2 + F16C */
    SCOMM_REDUCE_IMPL_AVX512 = 3  /* x86 AVX-512 F + BW */
} scomm_reduce_impl_t;

/* Select an implementation: 0 on success, -1 if this CPU or build lacks it. */
int scomm_reduce_set_impl(scomm_reduce_impl_t impl);
/* The implementation in use (never AUTO). */
scomm_reduce_impl_t scomm_reduce_get_impl(void);
/* Its name: "scalar", "avx2", "avx512". */
const char *scomm_reduce_impl_name(scomm_reduce_impl_t impl);

#ifdef __cplusplus
}
#endif

#endif /* SCOMM_COLL_REDUCE_H */
