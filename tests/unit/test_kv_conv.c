/*
 * test_kv_conv.c - single-process tests of the KV channel's pieces:
 * CRC32C (known vectors, hardware path == table path), the wire checks
 * (headers, HELLO, BEGIN round trip and rejections), layout checks, the
 * documented error bounds of the fp8 e4m3 and int4 encodings, and the
 * vector (AVX2) encoders/decoders against the scalar reference, bit for
 * bit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_test.h"
#include "coll/reduce.h"
#include "kv/kv.h"

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_crc(void)
{
    uint8_t buf[4096 + 16];
    uint32_t a, b;
    size_t i, off, len;

    ST_ASSERT_EQ(scomm_kv_crc32c(0, "123456789", 9), 0xe3069283u);
    ST_ASSERT_EQ(scomm_kv_crc32c_sw(0, "123456789", 9), 0xe3069283u);
    memset(buf, 0, 32);
    ST_ASSERT_EQ(scomm_kv_crc32c(0, buf, 32), 0x8a9136aau);
    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)next();
    }
    for (off = 0; off < 9; off++) {
        for (len = 0; len < 4096; len += 1 + (next() % 97)) {
            a = scomm_kv_crc32c(0, buf + off, len);
            b = scomm_kv_crc32c_sw(0, buf + off, len);
            ST_ASSERT_EQ(a, b);
            /* Incremental == one shot. */
            ST_ASSERT_EQ(scomm_kv_crc32c(scomm_kv_crc32c(0, buf + off,
                                                         len / 3),
                                         buf + off + len / 3,
                                         len - len / 3), a);
        }
    }
    {
        /* Large buffers take the three-lane path. */
        static const size_t big[] = { 12288, 12289, 65541, 1 << 20,
                                      (1 << 20) + 13 };
        uint8_t *m = malloc((1 << 20) + 32);

        for (i = 0; i < (1 << 20) + 32; i++) {
            m[i] = (uint8_t)next();
        }
        for (i = 0; i < 5; i++) {
            ST_ASSERT_EQ(scomm_kv_crc32c(0, m + 3, big[i]),
                         scomm_kv_crc32c_sw(0, m + 3, big[i]));
            ST_ASSERT_EQ(scomm_kv_crc32c(0x12345678u, m, big[i]),
                         scomm_kv_crc32c_sw(0x12345678u, m, big[i]));
        }
        free(m);
    }
    printf("crc32c: hardware path %s, equal to the table path\n",
           scomm_kv_crc32c_hw() ? "used" : "not available");
}

static void test_wire(void)
{
    scomm_kv_hdr_t h, g;
    uint8_t hb[SCOMM_KV_HDR_SIZE], *pl;
    char why[128];
    scomm_kv_begin_t b, d;
    int32_t st[5] = { 4, 3, 2, 1, 0 }, dt[3] = { 7, 8, 9 };
    size_t n;

    memset(&h, 0, sizeof(h));
    h.magic = SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.type = SCOMM_KV_T_DATA;
    h.xfer_id = 0x1122334455667788ull;
    h.seq = 7;
    h.len = 1000;
    h.raw_len = 1000;
    h.crc = 0xdeadbeef;
    scomm_kv_hdr_encode(&h, hb);
    scomm_kv_hdr_decode(hb, &g);
    ST_ASSERT(memcmp(&h, &g, sizeof(h)) == 0);
    ST_ASSERT_EQ(scomm_kv_hdr_check(&g, 4096, why, sizeof(why)), 0);
    g.len = 5000;
    ST_ASSERT_EQ(scomm_kv_hdr_check(&g, 4096, why, sizeof(why)), -1);
    g = h;
    g.magic ^= 1;
    ST_ASSERT_EQ(scomm_kv_hdr_check(&g, 4096, why, sizeof(why)), -1);
    g = h;
    g.version = 2;
    ST_ASSERT_EQ(scomm_kv_hdr_check(&g, 4096, why, sizeof(why)), -1);
    ST_ASSERT(strstr(why, "version") != NULL);
    g = h;
    g.type = 99;
    ST_ASSERT_EQ(scomm_kv_hdr_check(&g, 4096, why, sizeof(why)), -1);
    g = h;
    g.type = SCOMM_KV_T_ACK;
    g.len = 1;
    ST_ASSERT_EQ(scomm_kv_hdr_check(&g, 4096, why, sizeof(why)), -1);

    memset(&b, 0, sizeof(b));
    b.src_layers = 4;
    b.heads = 2;
    b.head_dim = 8;
    b.src_block_tokens = 16;
    b.src_num_blocks = 5;
    b.src_dtype = SCOMM_FLOAT16;
    b.first_layer = 1;
    b.num_layers = 3;
    b.blocks_per_chunk = 2;
    b.num_src_blocks = 5;
    b.num_dst_blocks = 3;
    b.num_tokens = 70;
    b.nchunks = 9;
    b.src_blocks = st;
    b.dst_blocks = dt;
    n = scomm_kv_begin_size(&b);
    pl = malloc(n);
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), 0);
    ST_ASSERT_EQ(d.num_tokens, 70);
    ST_ASSERT_EQ(d.src_blocks[0], 4);
    ST_ASSERT_EQ(d.dst_blocks[2], 9);
    scomm_kv_begin_free(&d);
    /* Truncated, wrong chunk count, block outside the region. */
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n - 4, &d, why, sizeof(why)), -1);
    b.nchunks = 8;
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), -1);
    b.nchunks = 9;
    st[1] = 5;
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), -1);
    ST_ASSERT(strstr(why, "outside") != NULL);
    free(pl);
    /* A head range travels after the tables, only when set. */
    st[1] = 3;
    b.has_heads = 1;
    b.src_head_off = 1;
    b.src_head_cnt = 1;
    b.dst_head_off = 6;
    b.dst_head_cnt = 1;
    ST_ASSERT_EQ(scomm_kv_begin_size(&b), n + SCOMM_KV_BEGIN_HEADS);
    n = scomm_kv_begin_size(&b);
    pl = malloc(n);
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), 0);
    ST_ASSERT(d.has_heads && (d.src_head_off == 1) && (d.src_head_cnt == 1)
              && (d.dst_head_off == 6) && (d.dst_head_cnt == 1));
    scomm_kv_begin_free(&d);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n - 4, &d, why, sizeof(why)), -1);
    b.src_head_cnt = 2; /* heads 1..2 of 2 */
    b.dst_head_cnt = 2;
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), -1);
    ST_ASSERT(strstr(why, "head range") != NULL);
    b.src_head_cnt = 1; /* counts differ */
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), -1);
    b.dst_head_cnt = 1;
    b.zero_copy = 1; /* a same-host copy of part of the heads */
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), -1);
    free(pl);
    b.has_heads = 0; /* without the range: all heads */
    b.zero_copy = 0;
    n = scomm_kv_begin_size(&b);
    pl = malloc(n);
    scomm_kv_begin_encode(&b, pl);
    ST_ASSERT_EQ(scomm_kv_begin_decode(pl, n, &d, why, sizeof(why)), 0);
    ST_ASSERT(!d.has_heads && (d.src_head_off == 0) &&
              (d.src_head_cnt == 2) && (d.dst_head_cnt == 0));
    scomm_kv_begin_free(&d);
    free(pl);
    printf("wire: header/BEGIN round trip and rejections ok\n");
}

static void test_quant(int wire, scomm_dtype_t dt, float range)
{
    scomm_kv_layout_t l = { 1, 4, 64, 16, 1, dt, 0 };
    size_t n = 2 * 4 * 16 * 64, es = scomm_dtype_size(dt), i;
    float *x = malloc(n * 4), *y = malloc(n * 4), *tmp = malloc(16 * 64 * 4);
    uint8_t *blk = malloc(n * es), *enc;
    float amax, bound, err, worst = 0;
    int g;

    enc = malloc(scomm_kv_wire_block_bytes(&l, wire));
    for (i = 0; i < n; i++) {
        /* Mixed magnitudes: some tiny, some near the range. */
        double u = (double)(next() % 2000001) / 1000000.0 - 1.0;
        x[i] = (float)(u * range * ((i % 7 == 0) ? 1e-3 : 1.0));
    }
    scomm_cvt_from_f32(blk, x, n, dt);
    scomm_cvt_to_f32(x, blk, n, dt); /* the exact source values */
    scomm_kv_quant_block(&l, blk, wire, enc, tmp);
    scomm_kv_dequant_block(&l, enc, wire, y);
    /* Head-major order: group g is elements [g*1024, (g+1)*1024). */
    for (g = 0; g < 8; g++) {
        amax = 0;
        for (i = 0; i < 1024; i++) {
            amax = fmaxf(amax, fabsf(x[g * 1024 + i]));
        }
        for (i = 0; i < 1024; i++) {
            float a = x[g * 1024 + i], b = y[g * 1024 + i];

            bound = (wire == SCOMM_KV_WIRE_INT4)
                        ? amax / 14.0f
                        : fabsf(a) / 16.0f + amax / 262144.0f;
            err = fabsf(a - b);
            ST_ASSERT(err <= bound * 1.0001f);
            worst = fmaxf(worst, (amax > 0) ? err / amax : 0);
        }
    }
    printf("quant %s from %s, range %g: worst error %.5f x amax\n",
           (wire == SCOMM_KV_WIRE_INT4) ? "int4" : "fp8e4m3",
           scomm_dtype_name(dt), (double)range, (double)worst);
    free(x);
    free(y);
    free(tmp);
    free(blk);
    free(enc);
}

/* Encode one block, decode it and scatter it into a destination block with
 * the current kernels; enc gets the wire bytes, dst the stored block, fused
 * the block decoded by scomm_kv_decode_block_into where it applies (else a
 * copy of dst). */
static void codec_run(const scomm_kv_layout_t *l, const void *blk, int wire,
                      uint8_t *enc, uint8_t *dst, uint8_t *fused)
{
    size_t n = (size_t)l->block_tokens * l->head_dim;
    size_t all = 2 * (size_t)l->num_kv_heads * n;
    float *tmp = malloc(n * 4), *f = malloc(all * 4 + 4 * l->head_dim);
    int32_t tbl[1] = { 0 };

    scomm_kv_quant_block(l, blk, wire, enc, tmp);
    scomm_kv_dequant_block(l, enc, wire, f + l->head_dim);
    scomm_kv_scatter_rows(l, NULL, f + l->head_dim, 0, 0, l->block_tokens,
                          l, 0, dst, tbl, f);
    if (scomm_kv_decode_block_into(l, enc, wire, l, fused) != 0) {
        memcpy(fused, dst, (size_t)scomm_kv_block_bytes(l));
    }
    free(tmp);
    free(f);
}

/* Pin (1) or release (0) the scalar forms of both the KV kernels and the
 * conversions of src/coll/reduce.c. */
static void force_scalar(int on)
{
    scomm_kv_simd_force(on ? 0 : -1);
    ST_ASSERT_EQ(scomm_reduce_set_impl(on ? SCOMM_REDUCE_IMPL_SCALAR
                                          : SCOMM_REDUCE_IMPL_AUTO), 0);
}

/* scomm_cvt_scaled gives the bits of widen, multiply, round, for every
 * pair of the KV encodings, finite and special values alike. */
static void test_cvt_scaled(void)
{
    static const scomm_dtype_t p[][2] = {
        { SCOMM_FLOAT16, SCOMM_FP8_E4M3 }, { SCOMM_BFLOAT16, SCOMM_FP8_E4M3 },
        { SCOMM_FLOAT32, SCOMM_FP8_E4M3 }, { SCOMM_FP8_E4M3, SCOMM_FLOAT16 },
        { SCOMM_FP8_E4M3, SCOMM_BFLOAT16 }, { SCOMM_FP8_E4M3, SCOMM_FLOAT32 },
        { SCOMM_FLOAT16, SCOMM_BFLOAT16 } };
    static const float muls[] = { 1.0f, 0.0123f, 448.0f / 3.1f, 1e-30f };
    size_t n = 1000, i, k, m;
    float *f = malloc(n * 4);
    uint8_t *src = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4);

    for (k = 0; k < sizeof(p) / sizeof(p[0]); k++) {
        size_t os = scomm_dtype_size(p[k][1]);

        for (i = 0; i < n * 4; i++) {
            src[i] = (uint8_t)next();
        }
        if (p[k][0] == SCOMM_FLOAT32) {
            for (i = 0; i < n; i++) {
                ((float *)src)[i] = (float)((double)(int64_t)next() * 1e-17);
            }
        }
        for (m = 0; m < 4; m++) {
            scomm_cvt_scaled(a, p[k][1], src, p[k][0], n, muls[m]);
            scomm_cvt_to_f32(f, src, n, p[k][0]);
            for (i = 0; i < n; i++) {
                f[i] *= muls[m];
            }
            scomm_cvt_from_f32(b, f, n, p[k][1]);
            for (i = 0; i < n * os; i++) {
                /* NaNs may differ only in payload; compare the rest. */
                if (a[i] != b[i]) {
                    scomm_cvt_to_f32(f, a + (i / os) * os, 1, p[k][1]);
                    ST_ASSERT(isnan(f[0]));
                }
            }
        }
    }
    printf("cvt_scaled: equal to widen x multiply x round\n");
    free(f);
    free(src);
    free(a);
    free(b);
}

/* The AVX2 forms give the scalar forms' bits: every dtype, both orders,
 * odd sizes (vector tails), all-zero groups, both encodings. */
static void test_simd_equal(void)
{
    static const int shapes[][3] = { { 8, 16, 128 }, { 2, 3, 12 },
                                     { 1, 5, 7 }, { 4, 16, 64 } };
    static const scomm_dtype_t dts[] = { SCOMM_FLOAT16, SCOMM_BFLOAT16,
                                         SCOMM_FLOAT32 };
    int si, di, order, wire, cases = 0;

    if (!scomm_kv_simd_active()) {
        printf("simd: AVX2 not available, scalar only\n");
        return;
    }
    for (si = 0; si < 4; si++) {
        for (di = 0; di < 3; di++) {
            for (order = 0; order < 2; order++) {
                for (wire = 1; wire <= 2; wire++) {
                    scomm_kv_layout_t l = { 1, shapes[si][0], shapes[si][2],
                                            shapes[si][1], 1, dts[di],
                                            order };
                    size_t bb = (size_t)scomm_kv_block_bytes(&l);
                    size_t n = bb / scomm_dtype_size(dts[di]), i;
                    size_t wb = scomm_kv_wire_block_bytes(&l, wire);
                    float *x = malloc(n * 4);
                    uint8_t *blk = malloc(bb), *e0 = malloc(wb);
                    uint8_t *e1 = malloc(wb), *d0 = calloc(1, bb);
                    uint8_t *d1 = calloc(1, bb), *f0 = calloc(1, bb);
                    uint8_t *f1 = calloc(1, bb);

                    for (i = 0; i < n; i++) {
                        double u = (double)(next() % 2000001) / 1e6 - 1.0;

                        /* wide magnitudes, exact ties, and a zero group */
                        x[i] = (float)(u * ((i % 5 == 0) ? 1e-4 : 3.0));
                        if (i % 11 == 0) {
                            x[i] = (float)((int)(u * 8)) * 0.5f;
                        }
                        if (i < (size_t)l.block_tokens * l.head_dim) {
                            x[i] = (order == 0) ? 0.0f : x[i];
                        }
                    }
                    scomm_cvt_from_f32(blk, x, n, dts[di]);
                    force_scalar(1);
                    codec_run(&l, blk, wire, e0, d0, f0);
                    force_scalar(0);
                    codec_run(&l, blk, wire, e1, d1, f1);
                    ST_ASSERT(memcmp(e0, e1, wb) == 0);
                    ST_ASSERT(memcmp(d0, d1, bb) == 0);
                    ST_ASSERT(memcmp(d0, f0, bb) == 0);
                    ST_ASSERT(memcmp(d0, f1, bb) == 0);
                    cases++;
                    free(x);
                    free(blk);
                    free(e0);
                    free(e1);
                    free(d0);
                    free(d1);
                    free(f0);
                    free(f1);
                }
            }
        }
    }
    printf("simd: %d block encodings equal to the scalar reference\n",
           cases);
}

/* NaN codes (never produced by the encoder, possible from a peer) decode
 * as the scalar form decodes them. */
static void test_fp8_nan_codes(void)
{
    scomm_kv_layout_t l = { 1, 1, 16, 4, 1, SCOMM_FLOAT16, 0 };
    size_t wb = scomm_kv_wire_block_bytes(&l, SCOMM_KV_WIRE_FP8_E4M3);
    uint8_t enc[2 * (4 + 64)], d0[256], d1[256];
    float s = 0.5f;
    size_t i;

    ST_ASSERT_EQ(wb, sizeof(enc));
    for (i = 0; i < wb; i++) {
        enc[i] = (uint8_t)(next() & 0xff);
    }
    memcpy(enc, &s, 4);
    memcpy(enc + 68, &s, 4);
    enc[4 + 9] = 0x7f;
    enc[68 + 20] = 0xff;
    force_scalar(1);
    ST_ASSERT_EQ(scomm_kv_decode_block_into(&l, enc, SCOMM_KV_WIRE_FP8_E4M3,
                                            &l, d0), 0);
    force_scalar(0);
    ST_ASSERT_EQ(scomm_kv_decode_block_into(&l, enc, SCOMM_KV_WIRE_FP8_E4M3,
                                            &l, d1), 0);
    ST_ASSERT(memcmp(d0, d1, sizeof(d0)) == 0);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Informational: source GB/s of quantise and dequantise+store, one core,
 * Llama-3-8B blocks (64 KiB float16), scalar and automatic. */
static void speed_quant(void)
{
    scomm_kv_layout_t l = { 1, 8, 128, 16, 1, SCOMM_FLOAT16, 0 };
    size_t bb = (size_t)scomm_kv_block_bytes(&l), nblk = 64, i;
    size_t wb = scomm_kv_wire_block_bytes(&l, SCOMM_KV_WIRE_FP8_E4M3);
    uint8_t *src = malloc(bb * nblk), *enc = malloc(wb * nblk);
    uint8_t *dst = malloc(bb * nblk);
    float *tmp = malloc(16 * 128 * 4), *f = malloc(bb * 2 + 512);
    int32_t tbl[64];
    double t0, tq, td;
    int lv, r;

    for (i = 0; i < bb * nblk / 2; i++) {
        ((uint16_t *)src)[i] = (uint16_t)(0x3400u + (next() & 0x83ffu));
    }
    for (i = 0; i < nblk; i++) {
        tbl[i] = (int32_t)i;
    }
    for (lv = 1; lv >= 0; lv--) {
        force_scalar(lv);
        t0 = now_s();
        for (r = 0; r < 8; r++) {
            for (i = 0; i < nblk; i++) {
                scomm_kv_quant_block(&l, src + i * bb, SCOMM_KV_WIRE_FP8_E4M3,
                                     enc + i * wb, tmp);
            }
        }
        tq = now_s() - t0;
        t0 = now_s();
        for (r = 0; r < 8; r++) {
            for (i = 0; i < nblk; i++) {
                if (scomm_kv_decode_block_into(&l, enc + i * wb,
                                               SCOMM_KV_WIRE_FP8_E4M3, &l,
                                               dst + i * bb) != 0) {
                    scomm_kv_dequant_block(&l, enc + i * wb,
                                           SCOMM_KV_WIRE_FP8_E4M3, f + 128);
                    scomm_kv_scatter_rows(&l, NULL, f + 128, i * 16, 0, 16,
                                          &l, 0, dst, tbl, f);
                }
            }
        }
        td = now_s() - t0;
        printf("fp8 speed (%s): quantise %.2f GB/s, dequantise+store "
               "%.2f GB/s\n", lv ? "scalar" : "auto",
               8.0 * bb * nblk / tq / 1e9, 8.0 * bb * nblk / td / 1e9);
    }
    free(src);
    free(enc);
    free(dst);
    free(tmp);
    free(f);
}

static void test_layout(void)
{
    scomm_kv_layout_t l = { 32, 8, 128, 16, 10, SCOMM_FLOAT16, 0 };
    char why[256];

    ST_ASSERT_EQ(scomm_kv_layout_check(&l, why, sizeof(why)), 0);
    ST_ASSERT_EQ(scomm_kv_block_bytes(&l), 65536);
    ST_ASSERT_EQ(scomm_kv_row_off(&l, 1, 2, 3), ((8 + 2) * 16 + 3) * 128);
    l.order = SCOMM_KV_ORDER_TOKEN_MAJOR;
    ST_ASSERT_EQ(scomm_kv_row_off(&l, 1, 2, 3), ((3 * 2 + 1) * 8 + 2) * 128);
    l.dtype = SCOMM_INT32;
    ST_ASSERT_EQ(scomm_kv_layout_check(&l, why, sizeof(why)), -1);
    l.dtype = SCOMM_FLOAT16;
    l.head_dim = 0;
    ST_ASSERT_EQ(scomm_kv_layout_check(&l, why, sizeof(why)), -1);
    ST_ASSERT_EQ(scomm_kv_block_bytes(NULL), 0);
}

/*
 * pack_heads then scatter_rows with a head offset: heads 1..2 of a 4-head
 * block land as heads 3..4 of a 6-head block of the other order and a
 * different block size; every element read back by its (kv, head, token)
 * index, the destination's other heads untouched.
 */
static void test_heads(void)
{
    scomm_kv_layout_t sl = { 1, 4, 3, 4, 1, SCOMM_FLOAT32, 0 }, pl, dl;
    float src[2 * 4 * 4 * 3], pk[2 * 2 * 4 * 3], dst[2][2 * 6 * 2 * 3];
    int32_t tbl[2] = { 1, 0 };
    int order, kv, h, t, d;

    for (order = 0; order < 2; order++) {
        sl.order = order;
        pl = sl;
        pl.num_kv_heads = 2;
        dl = (scomm_kv_layout_t){ 1, 6, 3, 2, 2, SCOMM_FLOAT32, 1 - order };
        for (kv = 0; kv < 2; kv++) {
            for (h = 0; h < 4; h++) {
                for (t = 0; t < 4; t++) {
                    for (d = 0; d < 3; d++) {
                        src[scomm_kv_row_off(&sl, kv, h, t) + d] =
                            (float)(kv * 1000 + h * 100 + t * 10 + d);
                    }
                }
            }
        }
        memset(dst, 0, sizeof(dst));
        scomm_kv_pack_heads(&sl, src, 1, 2, (uint8_t *)pk);
        scomm_kv_scatter_rows(&pl, pk, NULL, 0, 0, 4, &dl, 3,
                              (uint8_t *)dst, tbl, NULL);
        for (kv = 0; kv < 2; kv++) {
            for (h = 0; h < 2; h++) {
                for (t = 0; t < 4; t++) {
                    for (d = 0; d < 3; d++) {
                        ST_ASSERT_EQ(pk[scomm_kv_row_off(&pl, kv, h, t) + d],
                                     kv * 1000 + (h + 1) * 100 + t * 10 + d);
                    }
                }
            }
            for (h = 0; h < 6; h++) {
                for (t = 0; t < 4; t++) {
                    float got = dst[tbl[t / 2]][scomm_kv_row_off(&dl, kv, h,
                                                                 t % 2)];

                    ST_ASSERT_EQ(got, ((h == 3) || (h == 4))
                                          ? kv * 1000 + (h - 2) * 100 + t * 10
                                          : 0);
                }
            }
        }
    }
    printf("heads: pack and scatter at a head offset ok\n");
}

int main(void)
{
    test_crc();
    test_wire();
    test_layout();
    test_heads();
    test_quant(SCOMM_KV_WIRE_FP8_E4M3, SCOMM_FLOAT16, 10.0f);
    test_quant(SCOMM_KV_WIRE_FP8_E4M3, SCOMM_BFLOAT16, 1000.0f);
    test_quant(SCOMM_KV_WIRE_FP8_E4M3, SCOMM_FLOAT32, 1e-3f);
    test_quant(SCOMM_KV_WIRE_INT4, SCOMM_FLOAT16, 10.0f);
    test_quant(SCOMM_KV_WIRE_INT4, SCOMM_FLOAT32, 300.0f);
    test_cvt_scaled();
    test_simd_equal();
    test_fp8_nan_codes();
    speed_quant();
    printf("test_kv_conv: ok\n");
    return 0;
}
