/*
 * test_kv_conv.c - single-process tests of the KV channel's pieces:
 * CRC32C (known vectors, hardware path == table path), the wire checks
 * (headers, HELLO, BEGIN round trip and rejections), layout checks, and
 * the documented error bounds of the fp8 e4m3 and int4 encodings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    test_crc();
    test_wire();
    test_layout();
    test_quant(SCOMM_KV_WIRE_FP8_E4M3, SCOMM_FLOAT16, 10.0f);
    test_quant(SCOMM_KV_WIRE_FP8_E4M3, SCOMM_BFLOAT16, 1000.0f);
    test_quant(SCOMM_KV_WIRE_FP8_E4M3, SCOMM_FLOAT32, 1e-3f);
    test_quant(SCOMM_KV_WIRE_INT4, SCOMM_FLOAT16, 10.0f);
    test_quant(SCOMM_KV_WIRE_INT4, SCOMM_FLOAT32, 300.0f);
    printf("test_kv_conv: ok\n");
    return 0;
}
