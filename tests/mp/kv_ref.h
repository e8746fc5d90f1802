/*
 * kv_ref.h - the reference values of the KV multi-process tests
 * (test_kv.c, test_kv_heads.c): each element of a KV cache is a function
 * of its (layer, token, K|V, head, d) alone, so a receiver checks what
 * landed without the sender's buffer.
 */
#ifndef SCOMM_TEST_KV_REF_H
#define SCOMM_TEST_KV_REF_H

#include <stdint.h>

static inline uint64_t kv_ref_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Value of (layer, token, kv, head, d): k/8 with |k| <= 127, exact in
 * float16, bfloat16 and float32. */
static inline float kv_ref_val(int layer, uint64_t tok, int kv, int h, int d)
{
    uint64_t k = kv_ref_mix(((uint64_t)layer << 48) ^ (tok << 20) ^
                            ((uint64_t)kv << 19) ^ ((uint64_t)h << 12) ^
                            (uint64_t)d);

    return (float)((int)(k % 255) - 127) / 8.0f;
}

#endif /* SCOMM_TEST_KV_REF_H */
