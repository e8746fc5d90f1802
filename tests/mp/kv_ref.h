/*
 * kv_ref.h - the reference values of the KV multi-process tests
 * (test_kv.c, test_kv_heads.c): each element of a KV cache is a function
 * of its (layer, token, K|V, head, d) alone, so a receiver checks what
 * landed without the sender's buffer; and the check both make before
 * running over ofi (kv_ofi_missing).
 */
#ifndef SCOMM_TEST_KV_REF_H
#define SCOMM_TEST_KV_REF_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "scomm.h"

/* 1 (and a SKIP line) if this build refuses transport ofi, the KV
 * channel over libfabric RMA: the ofi variants then skip (exit 77). */
static inline int kv_ofi_missing(void)
{
    scomm_kv_opts_t o;
    scomm_kv_listener_t *l = NULL;
    scomm_status_t st;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_KV_FIELD_TRANSPORT;
    o.transport  = SCOMM_KV_TRANSPORT_OFI;
    st = scomm_kv_listen("127.0.0.1", 0, &o, &l);
    scomm_kv_listener_close(l);
    if (st == SCOMM_ERR_UNSUPPORTED) {
        printf("SKIP: %s\n", scomm_last_error());
        return 1;
    }
    return 0;
}

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
