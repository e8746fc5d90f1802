/*
 * kv_conv.c - layout, block-size and dtype conversion of paged KV blocks,
 * and the opt-in lossy wire encodings (fp8 e4m3, int4) with one fp32 scale
 * per (block, K|V, head) group.
 *
 * Design notes:
 *  1. Every block is a set of rows of head_dim contiguous elements, one row
 *     per (K|V, head, token), in both orders; all conversions move rows, so
 *     any source order, block size and dtype maps onto any destination.
 *  2. Lossless conversions are exact: equal dtypes copy bits; a dtype
 *     change goes through float32 with round-to-nearest-even
 *     (src/coll/reduce.h), exact when widening.
 *  3. Lossy bounds (docs/kv.md), per group with amax = largest |x|:
 *     fp8 e4m3: |x' - x| <= 2^-4 |x| + 2^-18 amax, plus the rounding of x'
 *     to the destination dtype (2^-11 |x'| for float16, 2^-8 for bfloat16);
 *     int4: |x' - x| <= amax / 14, plus the same final rounding.
 *     Non-finite inputs are not supported by the lossy encodings.
 *  4. A head range moves as a block of only those heads (pack_heads, in the
 *     source's order) and lands at a head offset of the destination
 *     (scatter_rows' dho); no other head of the destination is written.
 */
#include "kv.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "coll/reduce.h"

int scomm_kv_layout_check(const scomm_kv_layout_t *l, char *why,
                          size_t whylen)
{
    if (l == NULL) {
        snprintf(why, whylen, "NULL layout");
        return -1;
    }
    if ((l->num_layers < 1) || (l->num_kv_heads < 1) || (l->head_dim < 1) ||
        (l->block_tokens < 1) || (l->num_blocks < 1) ||
        (l->num_kv_heads > 4096) || (l->head_dim > 65536) ||
        (l->block_tokens > 65536)) {
        snprintf(why, whylen, "layout has %d layers, %d kv heads, head_dim "
                 "%d, %d tokens per block, %d blocks: each must be >= 1 "
                 "(heads <= 4096, head_dim and block <= 65536)",
                 l->num_layers, l->num_kv_heads, l->head_dim,
                 l->block_tokens, l->num_blocks);
        return -1;
    }
    if ((l->dtype != SCOMM_FLOAT16) && (l->dtype != SCOMM_BFLOAT16) &&
        (l->dtype != SCOMM_FLOAT32)) {
        snprintf(why, whylen, "layout dtype %s: float16, bfloat16 or "
                 "float32 expected", scomm_dtype_name(l->dtype));
        return -1;
    }
    if ((l->order != SCOMM_KV_ORDER_HEAD_MAJOR) &&
        (l->order != SCOMM_KV_ORDER_TOKEN_MAJOR)) {
        snprintf(why, whylen, "layout order %d unknown", l->order);
        return -1;
    }
    if (scomm_kv_block_bytes(l) > SCOMM_KV_CHUNK_MAX) {
        snprintf(why, whylen, "one block is over %llu bytes",
                 (unsigned long long)SCOMM_KV_CHUNK_MAX);
        return -1;
    }
    return 0;
}

uint64_t scomm_kv_block_bytes(const scomm_kv_layout_t *l)
{
    size_t es;

    if (l == NULL) {
        return 0;
    }
    es = scomm_dtype_size(l->dtype);
    if ((es == 0) || (l->num_kv_heads < 1) || (l->block_tokens < 1) ||
        (l->head_dim < 1)) {
        return 0;
    }
    return 2ull * (uint64_t)l->num_kv_heads * (uint64_t)l->block_tokens *
           (uint64_t)l->head_dim * es;
}

size_t scomm_kv_row_off(const scomm_kv_layout_t *l, int kv, int head,
                        int token)
{
    size_t H = (size_t)l->num_kv_heads, D = (size_t)l->head_dim;

    if (l->order == SCOMM_KV_ORDER_TOKEN_MAJOR) {
        return (((size_t)token * 2 + (size_t)kv) * H + (size_t)head) * D;
    }
    return (((size_t)kv * H + (size_t)head) * (size_t)l->block_tokens +
            (size_t)token) * D;
}

static size_t kv_group_codes(const scomm_kv_layout_t *l, int wire_dtype)
{
    size_t n = (size_t)l->block_tokens * (size_t)l->head_dim;

    return (wire_dtype == SCOMM_KV_WIRE_INT4) ? (n + 1) / 2 : n;
}

size_t scomm_kv_wire_block_bytes(const scomm_kv_layout_t *l, int wire_dtype)
{
    if (wire_dtype == SCOMM_KV_WIRE_NATIVE) {
        return (size_t)scomm_kv_block_bytes(l);
    }
    return 2 * (size_t)l->num_kv_heads * (4 + kv_group_codes(l, wire_dtype));
}

/*
 * Rows (kv, head, t) of one group, t = 0..Bt-1, follow each other in a
 * head-major block: the group is one run of Bt * D elements there.
 */
static int kv_group_contiguous(const scomm_kv_layout_t *l)
{
    return (l->order == SCOMM_KV_ORDER_HEAD_MAJOR) || (l->block_tokens == 1);
}

/* Pointer to row (kv, head, t) of a block. */
static const uint8_t *kv_row_at(const scomm_kv_layout_t *l, const void *blk,
                                int kv, int h, int t)
{
    return (const uint8_t *)blk +
           scomm_kv_row_off(l, kv, h, t) * scomm_dtype_size(l->dtype);
}

/*
 * Per group: amax read in the source dtype, then fp8 codes in one pass
 * (scomm_cvt_scaled: widen, x inv, round), or int4 from the group widened
 * to float32 in tmp. A head-major group is one run (one call); a
 * token-major one is block_tokens rows.
 */
void scomm_kv_quant_block(const scomm_kv_layout_t *l, const void *blk,
                          int wire_dtype, uint8_t *out, float *tmp)
{
    size_t D = (size_t)l->head_dim, n = (size_t)l->block_tokens * D;
    size_t run = kv_group_contiguous(l) ? n : D;
    int kv, h, t, nrun = kv_group_contiguous(l) ? 1 : l->block_tokens;
    float amax, a, scale, inv;

    for (kv = 0; kv < 2; kv++) {
        for (h = 0; h < l->num_kv_heads; h++) {
            amax = 0.0f;
            for (t = 0; t < nrun; t++) {
                a = scomm_kv_absmax(kv_row_at(l, blk, kv, h, t), l->dtype, run);
                amax = (a > amax) ? a : amax;
            }
            scale = 0.0f;
            inv   = 0.0f;
            if (amax > 0.0f) {
                scale = amax / ((wire_dtype == SCOMM_KV_WIRE_INT4) ? 7.0f
                                                                   : 448.0f);
                inv = 1.0f / scale;
            }
            memcpy(out, &scale, 4);
            for (t = 0; t < nrun; t++) {
                if (wire_dtype == SCOMM_KV_WIRE_INT4) {
                    scomm_cvt_to_f32(tmp + (size_t)t * run,
                                     kv_row_at(l, blk, kv, h, t), run,
                                     l->dtype);
                } else {
                    scomm_cvt_scaled(out + 4 + (size_t)t * run,
                                     SCOMM_FP8_E4M3,
                                     kv_row_at(l, blk, kv, h, t), l->dtype,
                                     run, inv);
                }
            }
            if (wire_dtype == SCOMM_KV_WIRE_INT4) {
                scomm_kv_int4_encode(out + 4, tmp, n, inv);
                out += 4 + (n + 1) / 2;
            } else {
                out += 4 + n;
            }
        }
    }
}

void scomm_kv_dequant_block(const scomm_kv_layout_t *l, const uint8_t *in,
                            int wire_dtype, float *dst)
{
    size_t n = (size_t)l->block_tokens * (size_t)l->head_dim;
    int g, ngroups = 2 * l->num_kv_heads;
    float scale;

    for (g = 0; g < ngroups; g++, dst += n) {
        memcpy(&scale, in, 4);
        in += 4;
        if (wire_dtype == SCOMM_KV_WIRE_INT4) {
            scomm_kv_int4_decode(dst, in, n, scale);
            in += (n + 1) / 2;
        } else {
            scomm_cvt_scaled(dst, SCOMM_FLOAT32, in, SCOMM_FP8_E4M3, n,
                             scale);
            in += n;
        }
    }
}

int scomm_kv_decode_block_into(const scomm_kv_layout_t *sl, const uint8_t *in,
                               int wire_dtype, const scomm_kv_layout_t *dl,
                               uint8_t *dblk)
{
    size_t n = (size_t)sl->block_tokens * (size_t)sl->head_dim;
    size_t des = scomm_dtype_size(dl->dtype);
    int kv, h;
    float scale;

    if ((wire_dtype != SCOMM_KV_WIRE_FP8_E4M3) ||
        (sl->block_tokens != dl->block_tokens) ||
        (sl->head_dim != dl->head_dim) ||
        (sl->num_kv_heads != dl->num_kv_heads) || !kv_group_contiguous(dl)) {
        return -1;
    }
    for (kv = 0; kv < 2; kv++) {
        for (h = 0; h < sl->num_kv_heads; h++) {
            memcpy(&scale, in, 4);
            scomm_cvt_scaled(dblk + scomm_kv_row_off(dl, kv, h, 0) * des,
                             dl->dtype, in + 4, SCOMM_FP8_E4M3, n, scale);
            in += 4 + n;
        }
    }
    return 0;
}

void scomm_kv_pack_heads(const scomm_kv_layout_t *l, const void *blk, int h0,
                         int n, uint8_t *out)
{
    scomm_kv_layout_t o = *l;
    size_t es = scomm_dtype_size(l->dtype), D = (size_t)l->head_dim;
    int kv, t;

    o.num_kv_heads = n;
    /* Head-major: the range is one run per K|V; token-major: one run per
     * (token, K|V). */
    for (kv = 0; kv < 2; kv++) {
        if (l->order == SCOMM_KV_ORDER_HEAD_MAJOR) {
            memcpy(out + scomm_kv_row_off(&o, kv, 0, 0) * es,
                   kv_row_at(l, blk, kv, h0, 0),
                   (size_t)n * (size_t)l->block_tokens * D * es);
            continue;
        }
        for (t = 0; t < l->block_tokens; t++) {
            memcpy(out + scomm_kv_row_off(&o, kv, 0, t) * es,
                   kv_row_at(l, blk, kv, h0, t), (size_t)n * D * es);
        }
    }
}

void scomm_kv_scatter_rows(const scomm_kv_layout_t *sl, const void *sblk,
                           const float *srcf, uint64_t gbase, int t0, int t1,
                           const scomm_kv_layout_t *dl, int dho,
                           uint8_t *dst_layer, const int32_t *dst_tbl,
                           float *tmp)
{
    size_t ses = scomm_dtype_size(sl->dtype);
    size_t des = scomm_dtype_size(dl->dtype);
    size_t D = (size_t)dl->head_dim, dbb = (size_t)scomm_kv_block_bytes(dl);
    size_t Bs = (size_t)sl->block_tokens, H = (size_t)sl->num_kv_heads;
    uint64_t g;
    uint8_t *dblk;
    const float *fr;
    int t, kv, h, dt;

    /* Dequantised rows of a whole block into a head-major block of the
     * same size: each (kv, head) group is one run on both sides, so it is
     * converted with one call instead of one per row (same bits). */
    if ((srcf != NULL) && (t0 == 0) && (t1 == sl->block_tokens) &&
        (sl->block_tokens == dl->block_tokens) &&
        (gbase % (uint64_t)dl->block_tokens == 0) &&
        kv_group_contiguous(dl)) {
        size_t n = Bs * D;

        dblk = dst_layer +
               (size_t)dst_tbl[gbase / (uint64_t)dl->block_tokens] * dbb;
        for (kv = 0; kv < 2; kv++) {
            for (h = 0; h < (int)H; h++) {
                size_t gi = (size_t)kv * H + (size_t)h;

                scomm_cvt_from_f32(dblk + scomm_kv_row_off(dl, kv, dho + h,
                                                           0) * des,
                                   srcf + gi * n, n, dl->dtype);
            }
        }
        return;
    }
    for (t = t0; t < t1; t++) {
        g    = gbase + (uint64_t)t;
        dblk = dst_layer + (size_t)dst_tbl[g / (uint64_t)dl->block_tokens] *
                               dbb;
        dt   = (int)(g % (uint64_t)dl->block_tokens);
        for (kv = 0; kv < 2; kv++) {
            for (h = 0; h < (int)H; h++) {
                uint8_t *drow = dblk +
                                scomm_kv_row_off(dl, kv, dho + h, dt) * des;

                if (srcf != NULL) {
                    fr = srcf + (((size_t)kv * H + (size_t)h) * Bs +
                                 (size_t)t) * D;
                    scomm_cvt_from_f32(drow, fr, D, dl->dtype);
                    continue;
                }
                const uint8_t *srow = (const uint8_t *)sblk +
                                      scomm_kv_row_off(sl, kv, h, t) * ses;
                if (sl->dtype == dl->dtype) {
                    memcpy(drow, srow, D * des);
                } else {
                    scomm_cvt_to_f32(tmp, srow, D, sl->dtype);
                    scomm_cvt_from_f32(drow, tmp, D, dl->dtype);
                }
            }
        }
    }
}
