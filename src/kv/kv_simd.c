/*
 * kv_simd.c - the inner loops of the lossy KV encodings (kv_conv.c) that
 * src/coll/reduce.c does not provide: the largest |x| of a group (read in
 * its own dtype) and int4 encode/decode, each in a scalar form and an AVX2
 * form chosen once at run time (__builtin_cpu_supports). The fp8 scaling
 * and rounding is scomm_cvt_scaled (reduce.c: AVX-512, AVX2 + F16C or
 * scalar, one pass).
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
 *  3. scomm_kv_simd_force() exists for the tests: it pins the scalar forms
 *     (0) or returns to the automatic choice (-1).
 */
#include "kv.h"

#include <math.h>
#include <string.h>

#include "coll/reduce.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* -1: not chosen yet; 0: scalar; 1: AVX2. */
static _Atomic int kv_simd_level = -1;

static int kv_simd_get_level(void)
{
    int lv = kv_simd_level;

    if (lv < 0) {
        lv = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        lv = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
        kv_simd_level = lv;
    }
    return lv;
}

void scomm_kv_simd_force(int level)
{
    kv_simd_level = (level < 0) ? -1 : ((level > 0) ? 1 : 0);
}

int scomm_kv_simd_active(void)
{
    return kv_simd_get_level();
}

/* ---- scalar forms (the reference) ---- */

static float kv_absmax_scalar(const void *src, scomm_dtype_t dt, size_t n)
{
    float amax = 0.0f, a;
    size_t i;

    for (i = 0; i < n; i++) {
        if (dt == SCOMM_FLOAT16) {
            a = fabsf(scomm_f16_to_f32(((const uint16_t *)src)[i]));
        } else if (dt == SCOMM_BFLOAT16) {
            a = fabsf(scomm_bf16_to_f32(((const uint16_t *)src)[i]));
        } else {
            a = fabsf(((const float *)src)[i]);
        }
        amax = (a > amax) ? a : amax;
    }
    return amax;
}

static void kv_int4_enc_scalar(uint8_t *codes, const float *x, size_t n,
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

static void kv_int4_dec_scalar(float *dst, const uint8_t *codes, size_t n,
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

/* ---- AVX2 forms ---- */

#if defined(__x86_64__)
#define KV_AVX2 __attribute__((target("avx2")))

/*
 * |x| of float16/bfloat16 is its bits & 0x7fff, and for finite values (and
 * infinities) the integer order of those bits is the order of |x|: the max
 * is taken on the bits and widened once. float32 takes the float max.
 */
KV_AVX2 static float kv_absmax_avx2(const void *src, scomm_dtype_t dt, size_t n)
{
    size_t i = 0;
    float amax, t;

    if (dt == SCOMM_FLOAT32) {
        const float *x = src;
        const __m256 mag =
            _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 m = _mm256_setzero_ps();
        __m128 h;

        for (; i + 8 <= n; i += 8) {
            m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), mag));
        }
        h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        amax = _mm_cvtss_f32(h);
    } else {
        const uint16_t *x = src;
        const __m256i mag = _mm256_set1_epi16(0x7fff);
        __m256i m = _mm256_setzero_si256();
        __m128i h;
        uint16_t top;

        for (; i + 16 <= n; i += 16) {
            m = _mm256_max_epu16(m, _mm256_and_si256(
                _mm256_loadu_si256((const __m256i *)(x + i)), mag));
        }
        h = _mm_max_epu16(_mm256_castsi256_si128(m),
                          _mm256_extracti128_si256(m, 1));
        h = _mm_max_epu16(h, _mm_srli_si128(h, 8));
        h = _mm_max_epu16(h, _mm_srli_si128(h, 4));
        h = _mm_max_epu16(h, _mm_srli_si128(h, 2));
        top = (uint16_t)_mm_extract_epi16(h, 0);
        amax = (dt == SCOMM_FLOAT16) ? scomm_f16_to_f32(top)
                                     : scomm_bf16_to_f32(top);
    }
    if (i < n) {
        t = kv_absmax_scalar((const uint8_t *)src +
                                 i * scomm_dtype_size(dt),
                             dt, n - i);
        amax = (t > amax) ? t : amax;
    }
    return amax;
}

/* 8 floats -> 8 int32 in [-7, 7]: round in the current mode, clamp. */
KV_AVX2 static inline __m256i kv_int4_q8(const float *x, __m256 vinv)
{
    const __m256 lo = _mm256_set1_ps(-7.0f), hi = _mm256_set1_ps(7.0f);
    __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), vinv),
                               _MM_FROUND_CUR_DIRECTION);

    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    return _mm256_cvtps_epi32(q);
}

KV_AVX2 static void kv_int4_enc_avx2(uint8_t *codes, const float *x,
                                     size_t n, float inv)
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
        __m256i w = _mm256_packs_epi32(kv_int4_q8(x + i, vinv),
                                       kv_int4_q8(x + i + 8, vinv));

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
        kv_int4_enc_scalar(codes + i / 2, x + i, n - i, inv);
    }
}

KV_AVX2 static void kv_int4_dec_avx2(float *dst, const uint8_t *codes,
                                     size_t n, float scale)
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
        kv_int4_dec_scalar(dst + i, codes + i / 2, n - i, scale);
    }
}
#endif /* __x86_64__ */

/* ---- dispatch ---- */

float scomm_kv_absmax(const void *src, scomm_dtype_t dt, size_t n)
{
#if defined(__x86_64__)
    if (kv_simd_get_level() > 0) {
        return kv_absmax_avx2(src, dt, n);
    }
#endif
    return kv_absmax_scalar(src, dt, n);
}

void scomm_kv_int4_encode(uint8_t *codes, const float *x, size_t n,
                          float inv)
{
#if defined(__x86_64__)
    if (kv_simd_get_level() > 0) {
        kv_int4_enc_avx2(codes, x, n, inv);
        return;
    }
#endif
    kv_int4_enc_scalar(codes, x, n, inv);
}

void scomm_kv_int4_decode(float *dst, const uint8_t *codes, size_t n,
                          float scale)
{
#if defined(__x86_64__)
    if (kv_simd_get_level() > 0) {
        kv_int4_dec_avx2(dst, codes, n, scale);
        return;
    }
#endif
    kv_int4_dec_scalar(dst, codes, n, scale);
}
