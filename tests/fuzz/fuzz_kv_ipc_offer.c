/*
 * fuzz_kv_ipc_offer.c - fuzz target for the KV channel's CUDA IPC offer
 * (scomm_kv_ipc_offer_decode, src/kv/kv_wire.c): the BEGIN_OK payload in
 * which a receiver offers its device region to the sender, decoded by the
 * sender from an untrusted peer before it opens (or, in one process,
 * writes into) the region it names.
 *
 * Input: the payload itself, any length (an exact-size copy, so a read
 * past it is a sanitizer error).
 *
 * Invariants: a refused input leaves a reason and decodes the same way
 * twice; an accepted one is exactly SCOMM_KV_IPC_OFFER_SIZE bytes with
 * the magic, a pid above 0, a layout scomm_kv_layout_check accepts, a
 * region at least as large as its layout (layers x blocks x block bytes,
 * no overflow) whose end does not wrap, a NUL-terminated host inside its
 * field, and re-encodes to the same bytes except the pad word and the
 * host's bytes after its NUL (which the decoder does not keep).
 */
#include "fuzz_common.h"

#include "kv/kv.h"

#define WHY_LEN 160

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[WHY_LEN], why2[WHY_LEN];
    scomm_kv_ipc_offer_t o, o2;
    uint8_t *in = fuzz_dup(data, size), re[SCOMM_KV_IPC_OFFER_SIZE];
    uint64_t need;
    size_t hl;
    int rc;

    memset(why, FUZZ_WHY_FILL, sizeof(why));
    rc = scomm_kv_ipc_offer_decode(in, size, &o, why, sizeof(why));
    FUZZ_CHECK(scomm_kv_ipc_offer_decode(in, size, &o2, why2,
                                         sizeof(why2)) == rc);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        fuzz_check_why(why, sizeof(why));
        FUZZ_CHECK(strcmp(why, why2) == 0);
        free(in);
        return 0;
    }
    FUZZ_CHECK(memcmp(&o, &o2, sizeof(o)) == 0);
    FUZZ_CHECK(size == SCOMM_KV_IPC_OFFER_SIZE);
    FUZZ_CHECK(fuzz_get32(in) == SCOMM_KV_IPC_MAGIC);
    FUZZ_CHECK(o.pid > 0);
    FUZZ_CHECK(scomm_kv_layout_check(&o.l, why2, sizeof(why2)) == 0);
    FUZZ_CHECK(!__builtin_mul_overflow((uint64_t)o.l.num_layers,
                                       (uint64_t)o.l.num_blocks, &need));
    FUZZ_CHECK(!__builtin_mul_overflow(need, scomm_kv_block_bytes(&o.l),
                                       &need));
    FUZZ_CHECK(o.bytes >= need);
    FUZZ_CHECK(o.off + o.bytes >= o.off);
    fuzz_check_str(o.host, sizeof(o.host));
    scomm_kv_ipc_offer_encode(&o, re);
    /* bytes 0..51 (magic, pid, off, bytes, layout) and the handle as they
     * came; the pad word is written 0; the host up to its NUL */
    FUZZ_CHECK(memcmp(re, in, 52) == 0);
    FUZZ_CHECK(fuzz_get32(re + 52) == 0);
    hl = strlen(o.host);
    FUZZ_CHECK(hl < SCOMM_KV_IPC_HOST_MAX);
    FUZZ_CHECK(memcmp(re + 56, in + 56, hl) == 0);
    FUZZ_CHECK(re[56 + hl] == 0);
    FUZZ_CHECK(memcmp(re + 96, in + 96, 64) == 0);
    free(in);
    return 0;
}
