/*
 * kv_simd.c - the inner loops of the lossy KV encodings (kv_conv.c): the
 * largest |x| of a group, x *= s, and int4 encode/decode, each in a scalar
 * form and an AVX2 form chosen once at run time (__builtin_cpu_supports).
 *
 * Design notes:
 *  1. The scalar form is the reference: both forms give the same bits for
 *     every finite input (tests/unit/test_kv_conv.c compares them on whole
 *     blocks). That holds because each form does the same IEEE operations
 *     per element: max of |x| is exact, x * s is one rounded product, and
 *     the int4 rounding uses the current rounding mode in both (nearbyintf,
 *     _MM_FROUND_CUR_DIRECTION). Non-finite inputs are not supported by the
 *     lossy encodings (docs/kv.md), so NaN ordering in the max is moot.
 *  2. int4 codes are two per byte, element 2j in the low nibble, 2j+1 in the
 *     high one, two's complement in [-7, 7]; an odd tail leaves the last high
 *     nibble 0.
 *  3. fp8 e4m3 decoding (scomm_kv_fp8_decode) writes the destination dtype
 *     straight from the codes: an e4m3 code c placed in a float16 as
 *     sign << 15 | (c & 0x7f) << 7 is c's value times 2^-8, normals and
 *     subnormals alike (the method of src/coll/reduce.c), so F16C widens it,
 *     x 256 makes it exact and x scale is the one rounded product of the
 *     scalar form; float16 results round with F16C's round to nearest even,
 *     bfloat16 with the integer round-to-nearest-even of reduce.c. A group
 *     holding a NaN code (never produced by the encoder) goes to the scalar
 *     form.
 *  4. scomm_kv_simd_force() exists for the tests: it pins the scalar forms
 *     (0) or returns to the automatic choice (-1).
 */
#include "kv.h"

#include <math.h>
#include <string.h>

#include "coll/reduce.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* -1: not chosen yet; 0: scalar; 1: AVX2; 2: AVX2 and F16C. */
static _Atomic int kv_simd_level = -1;

#if defined(__x86_64__)
#include <cpuid.h>

/* F16C: CPUID leaf 1, ECX bit 29 (its registers are the AVX state, whose
 * OS support the avx2 check has covered). */
static int cpu_has_f16c(void)
{
    unsigned int eax, ebx, ecx, edx;

    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return (int)((ecx >> 29) & 1u);
}
#endif

static int simd_level(void)
{
    int lv = kv_simd_level;

    if (lv < 0) {
        lv = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        lv = __builtin_cpu_supports("avx2") ? 1 : 0;
        if ((lv == 1) && cpu_has_f16c()) {
            lv = 2;
        }
#endif
        kv_simd_level = lv;
    }
    return lv;
}

void scomm_kv_simd_force(int level)
{
    kv_simd_level = (level < 0) ? -1 : level;
}

int scomm_kv_simd_active(void)
{
    return simd_level();
}

/* ---- scalar forms (the reference) ---- */

static float absmax_scalar(const float *x, size_t n)
{
    float amax = 0.0f;
    size_t i;

    for (i = 0; i < n; i++) {
        float a = fabsf(x[i]);

        amax = (a > amax) ? a : amax;
    }
    return amax;
}

static void scale_scalar(float *x, size_t n, float s)
{
    size_t i;

    for (i = 0; i < n; i++) {
        x[i] *= s;
    }
}

static void int4_enc_scalar(uint8_t *codes, const float *x, size_t n,
                            float inv)
{
    size_t i;
    float q;

    memset(codes, 0, (n + 1) / 2);
    for (i = 0; i < n; i++) {
        q = nearbyintf(x[i] * inv);
        q = (q > 7.0f) ? 7.0f : ((q < -7.0f) ? -7.0f : q);
        codes[i / 2] |= (uint8_t)(((int)q & 0xf) << (4 * (i & 1)));
    }
}

static void int4_dec_scalar(float *dst, const uint8_t *codes, size_t n,
                            float scale)
{
    size_t i;
    int v;

    for (i = 0; i < n; i++) {
        v = (codes[i / 2] >> (4 * (i & 1))) & 0xf;
        v = (v >= 8) ? v - 16 : v;
        dst[i] = (float)v * scale;
    }
}

static void fp8_dec_scalar(void *dst, scomm_dtype_t dt, const uint8_t *codes,
                           size_t n, float scale)
{
    float tmp[256];
    size_t es = scomm_dtype_size(dt), i, m;

    for (i = 0; i < n; i += m) {
        m = n - i;
        m = (m > 256) ? 256 : m;
        scomm_cvt_to_f32(tmp, codes + i, m, SCOMM_FP8_E4M3);
        scale_scalar(tmp, m, scale);
        scomm_cvt_from_f32((uint8_t *)dst + i * es, tmp, m, dt);
    }
}

/* ---- AVX2 forms ---- */

#if defined(__x86_64__)
#define KV_AVX2 __attribute__((target("avx2")))

KV_AVX2 static float absmax_avx2(const float *x, size_t n)
{
    const __m256 mag = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    __m128 h;
    float amax;
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_and_ps(_mm256_loadu_ps(x + i), mag));
        m1 = _mm256_max_ps(m1, _mm256_and_ps(_mm256_loadu_ps(x + i + 8),
                                             mag));
    }
    m0 = _mm256_max_ps(m0, m1);
    h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    amax = _mm_cvtss_f32(h);
    if (i < n) {
        float t = absmax_scalar(x + i, n - i);

        amax = (t > amax) ? t : amax;
    }
    return amax;
}

KV_AVX2 static void scale_avx2(float *x, size_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    }
    scale_scalar(x + i, n - i, s);
}

/* 8 floats -> 8 int32 in [-7, 7]: round in the current mode, clamp. */
KV_AVX2 static inline __m256i int4_q8(const float *x, __m256 vinv)
{
    const __m256 lo = _mm256_set1_ps(-7.0f), hi = _mm256_set1_ps(7.0f);
    __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), vinv),
                               _MM_FROUND_CUR_DIRECTION);

    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    return _mm256_cvtps_epi32(q);
}

KV_AVX2 static void int4_enc_avx2(uint8_t *codes, const float *x, size_t n,
                                  float inv)
{
    const __m256 vinv = _mm256_set1_ps(inv);
    /* In each 128-bit lane, byte 0 of every dword to bytes 0..3. */
    const __m256i pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i lanes = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
    const __m256i nib = _mm256_set1_epi32(0xf);
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        /* 16 values as int16 in element order, then pairs per dword. */
        __m256i w = _mm256_packs_epi32(int4_q8(x + i, vinv),
                                       int4_q8(x + i + 8, vinv));

        w = _mm256_permute4x64_epi64(w, 0xd8);
        w = _mm256_or_si256(_mm256_and_si256(w, nib),
                            _mm256_slli_epi32(
                                _mm256_and_si256(_mm256_srli_epi32(w, 16),
                                                 nib), 4));
        w = _mm256_shuffle_epi8(w, pick);
        w = _mm256_permutevar8x32_epi32(w, lanes);
        _mm_storel_epi64((__m128i *)(codes + i / 2),
                         _mm256_castsi256_si128(w));
    }
    if (i < n) {
        int4_enc_scalar(codes + i / 2, x + i, n - i, inv);
    }
}

KV_AVX2 static void int4_dec_avx2(float *dst, const uint8_t *codes, size_t n,
                                  float scale)
{
    const __m128i low = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    const __m256 vs = _mm256_set1_ps(scale);
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(codes + i / 2));
        __m128i v = _mm_unpacklo_epi8(_mm_and_si128(b, low),
                                      _mm_and_si128(_mm_srli_epi16(b, 4),
                                                    low));

        /* Sign-extend the nibbles: (v ^ 8) - 8. */
        v = _mm_sub_epi8(_mm_xor_si128(v, eight), eight);
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), vs));
        _mm256_storeu_ps(dst + i + 8, _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))),
            vs));
    }
    if (i < n) {
        int4_dec_scalar(dst + i, codes + i / 2, n - i, scale);
    }
}

/* 8 e4m3 codes -> 8 floats (exact) times scale, rounded once. */
__attribute__((target("avx2,f16c")))
static inline __m256 fp8_dec8(const uint8_t *c, __m256 v256, __m256 vs)
{
    __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)c));
    __m128i h = _mm_or_si128(
        _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8),
        _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7f)), 7));

    return _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtph_ps(h), v256), vs);
}

/* 1 if any of the n codes is a NaN (0x7f or 0xff). */
KV_AVX2 static int fp8_has_nan(const uint8_t *c, size_t n)
{
    const __m256i m = _mm256_set1_epi8(0x7f);
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;

    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_and_si256(
            _mm256_loadu_si256((const __m256i *)(c + i)), m);

        acc = _mm256_or_si256(acc, _mm256_cmpeq_epi8(v, m));
    }
    for (; i < n; i++) {
        if ((c[i] & 0x7f) == 0x7f) {
            return 1;
        }
    }
    return !_mm256_testz_si256(acc, acc);
}

__attribute__((target("avx2,f16c")))
static void fp8_dec_avx2(void *dst, scomm_dtype_t dt, const uint8_t *codes,
                         size_t n, float scale)
{
    const __m256 v256 = _mm256_set1_ps(256.0f), vs = _mm256_set1_ps(scale);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i bias = _mm256_set1_epi32(0x7fff);
    size_t es = scomm_dtype_size(dt), i = 0;
    uint8_t *d = dst;

    if (fp8_has_nan(codes, n)) {
        fp8_dec_scalar(dst, dt, codes, n, scale);
        return;
    }
    for (; i + 8 <= n; i += 8) {
        __m256 f = fp8_dec8(codes + i, v256, vs);

        if (dt == SCOMM_FLOAT16) {
            _mm_storeu_si128((__m128i *)(d + 2 * i),
                             _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT |
                                                    _MM_FROUND_NO_EXC));
        } else if (dt == SCOMM_BFLOAT16) {
            /* Round to nearest even on the bits (finite values). */
            __m256i u = _mm256_castps_si256(f);

            u = _mm256_add_epi32(u, _mm256_add_epi32(
                bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
            u = _mm256_srli_epi32(u, 16);
            u = _mm256_packus_epi32(u, u);
            u = _mm256_permute4x64_epi64(u, 0x08);
            _mm_storeu_si128((__m128i *)(d + 2 * i),
                             _mm256_castsi256_si128(u));
        } else {
            _mm256_storeu_ps((float *)(d + 4 * i), f);
        }
    }
    if (i < n) {
        fp8_dec_scalar(d + i * es, dt, codes + i, n - i, scale);
    }
}
#endif /* __x86_64__ */

/* ---- dispatch (level 1 or more: AVX2) ---- */

float scomm_kv_absmax(const float *x, size_t n)
{
#if defined(__x86_64__)
    if (simd_level() > 0) {
        return absmax_avx2(x, n);
    }
#endif
    return absmax_scalar(x, n);
}

void scomm_kv_scale(float *x, size_t n, float s)
{
#if defined(__x86_64__)
    if (simd_level() > 0) {
        scale_avx2(x, n, s);
        return;
    }
#endif
    scale_scalar(x, n, s);
}

void scomm_kv_int4_encode(uint8_t *codes, const float *x, size_t n,
                          float inv)
{
#if defined(__x86_64__)
    if (simd_level() > 0) {
        int4_enc_avx2(codes, x, n, inv);
        return;
    }
#endif
    int4_enc_scalar(codes, x, n, inv);
}

void scomm_kv_fp8_decode(void *dst, scomm_dtype_t dt, const uint8_t *codes,
                         size_t n, float scale)
{
#if defined(__x86_64__)
    if (simd_level() > 1) {
        fp8_dec_avx2(dst, dt, codes, n, scale);
        return;
    }
#endif
    fp8_dec_scalar(dst, dt, codes, n, scale);
}

void scomm_kv_int4_decode(float *dst, const uint8_t *codes, size_t n,
                          float scale)
{
#if defined(__x86_64__)
    if (simd_level() > 0) {
        int4_dec_avx2(dst, codes, n, scale);
        return;
    }
#endif
    int4_dec_scalar(dst, codes, n, scale);
}
