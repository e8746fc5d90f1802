/*
 * kv_crc.c - CRC32C (Castagnoli, reflected polynomial 0x82f63b78) for the
 * KV channel's per-chunk checks: the SSE4.2 crc32 instruction when the CPU
 * has it (chosen once at run time), else a slicing-by-8 table.
 *
 * Design notes:
 *  1. Both paths give the same value for every input (tested in
 *     tests/unit/test_kv_conv.c); crc is the running value, starting at 0.
 *  2. The tables are built once, thread-safely, by pthread_once.
 */
#include "kv.h"

#include <pthread.h>
#include <string.h>

static uint32_t       crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int            crc_use_hw;

static void kv_crc_init(void)
{
    uint32_t c;
    int i, j, k;

    for (i = 0; i < 256; i++) {
        c = (uint32_t)i;
        for (j = 0; j < 8; j++) {
            c = (c & 1u) ? ((c >> 1) ^ 0x82f63b78u) : (c >> 1);
        }
        crc_tab[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        c = crc_tab[0][i];
        for (k = 1; k < 8; k++) {
            c = crc_tab[0][c & 0xffu] ^ (c >> 8);
            crc_tab[k][i] = c;
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t scomm_kv_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t w;

    pthread_once(&crc_once, kv_crc_init);
    crc = ~crc;
    while ((len > 0) && (((uintptr_t)p & 7u) != 0)) {
        crc = crc_tab[0][(crc ^ *p++) & 0xffu] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^
              crc_tab[5][(w >> 16) & 0xff] ^ crc_tab[4][(w >> 24) & 0xff] ^
              crc_tab[3][(w >> 32) & 0xff] ^ crc_tab[2][(w >> 40) & 0xff] ^
              crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = crc_tab[0][(crc ^ *p++) & 0xffu] ^ (crc >> 8);
        len--;
    }
    return ~crc;
}

/*
 * crc(A || B) from crc(A), crc(B) and len(B): run crc(A) through len(B)
 * zero bytes, as a 32x32 matrix over GF(2) raised to the power by
 * squaring (the method of zlib's crc32_combine, written anew here).
 */
static uint32_t kv_gf2_times(const uint32_t *m, uint32_t v)
{
    uint32_t s = 0;

    for (; v != 0; v >>= 1, m++) {
        if (v & 1u) {
            s ^= *m;
        }
    }
    return s;
}

static void kv_gf2_square(uint32_t *sq, const uint32_t *m)
{
    int n;

    for (n = 0; n < 32; n++) {
        sq[n] = kv_gf2_times(m, m[n]);
    }
}

/* The operator "append len zero bytes" as a matrix, cached per thread for
 * the last length (chunks are made of equal blocks, so it rarely
 * changes): combining is then one matrix-vector product. */
static __thread size_t   op_len;
static __thread uint32_t op_mat[32];

static void kv_crc_op_build(size_t len)
{
    uint32_t sq[32], t[32], res[32];
    int n, first = 1;

    sq[0] = 0x82f63b78u;
    for (n = 1; n < 32; n++) {
        sq[n] = 1u << (n - 1);
    }
    kv_gf2_square(t, sq);  /* 2 bits */
    kv_gf2_square(sq, t);  /* 4 bits */
    kv_gf2_square(t, sq);  /* 1 byte */
    memcpy(sq, t, sizeof(sq));
    for (; len != 0; len >>= 1) {
        if (len & 1u) {
            if (first) {
                memcpy(res, sq, sizeof(res));
                first = 0;
            } else {
                for (n = 0; n < 32; n++) {
                    t[n] = kv_gf2_times(sq, res[n]);
                }
                memcpy(res, t, sizeof(res));
            }
        }
        kv_gf2_square(t, sq);
        memcpy(sq, t, sizeof(sq));
    }
    memcpy(op_mat, res, sizeof(op_mat));
}

static uint32_t kv_crc_combine_fast(uint32_t c1, uint32_t c2, size_t len2)
{
    if (op_len != len2) {
        kv_crc_op_build(len2);
        op_len = len2;
    }
    return kv_gf2_times(op_mat, c1) ^ c2;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t kv_crc_hw1(uint32_t crc, const void *buf, size_t len);

/* Three lanes in one loop hide the crc32 instruction's 3-cycle latency;
 * the lanes are joined with crc_combine. */
__attribute__((target("sse4.2")))
static uint32_t kv_crc_hw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t a, b, c, w0, w1, w2;
    size_t third, i;

    if (len < 12288) {
        return kv_crc_hw1(crc, buf, len);
    }
    third = (len / 3) & ~(size_t)7;
    a = ~crc;
    b = 0xffffffffu;
    c = 0xffffffffu;
    for (i = 0; i < third; i += 8) {
        memcpy(&w0, p + i, 8);
        memcpy(&w1, p + third + i, 8);
        memcpy(&w2, p + 2 * third + i, 8);
        a = __builtin_ia32_crc32di(a, w0);
        b = __builtin_ia32_crc32di(b, w1);
        c = __builtin_ia32_crc32di(c, w2);
    }
    /* Lanes b and c started from ~0 as a fresh CRC would. */
    crc = kv_crc_combine_fast(~(uint32_t)a, ~(uint32_t)b, third);
    crc = kv_crc_combine_fast(crc, ~(uint32_t)c, third);
    return kv_crc_hw1(crc, p + 3 * third, len - 3 * third);
}

__attribute__((target("sse4.2")))
static uint32_t kv_crc_hw1(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc, w;
    size_t i;

    while ((len > 0) && (((uintptr_t)p & 7u) != 0)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    p += i;
    len -= i;
    while (len > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    return ~(uint32_t)c;
}
#endif

uint32_t scomm_kv_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, kv_crc_init);
#if defined(__x86_64__)
    if (crc_use_hw) {
        return kv_crc_hw(crc, buf, len);
    }
#endif
    return scomm_kv_crc32c_sw(crc, buf, len);
}

int scomm_kv_crc32c_hw(void)
{
    pthread_once(&crc_once, kv_crc_init);
    return crc_use_hw;
}
