/*
 * reduce_pass.h - the reduction kernels as a template, not a header:
 * reduce.c includes it three times, with SCOMM_REDUCE_PASS set to 1
 * (portable C), 2 (AVX2 + F16C) and 3 (AVX-512 F + BW), after its scalar
 * element helpers and conversions, and each inclusion compiles the same
 * kernels with that pass's target attribute, vector width and vector
 * primitives, named with the pass's suffix (_scalar, _avx2, _avx512). The
 * determinism rules every kernel keeps are in reduce.c's header comment.
 *
 * No include guard: it is meant to be included once per pass, and only by
 * reduce.c.
 */
#ifndef SCOMM_REDUCE_PASS
#error "reduce_pass.h is the kernel template of reduce.c; include it only there, with SCOMM_REDUCE_PASS set"
#endif

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
