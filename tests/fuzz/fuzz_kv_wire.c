/*
 * fuzz_kv_wire.c - fuzz target for the KV channel's wire checks
 * (src/kv/kv_wire.c): the 48-byte frame header, the HELLO and the BEGIN
 * (transfer plan) a receiver decodes from an untrusted peer.
 *
 * Input: byte 0 picks the check, the rest is its input.
 *   0  scomm_kv_hdr_check: bytes 1..8 = chunk limit (little endian),
 *      bytes 9..56 = the header
 *   1  scomm_kv_hello_decode of the rest (any length)
 *   2  scomm_kv_begin_decode of the rest (any length)
 *
 * Invariants: a refused input leaves a reason; checks are deterministic;
 * an accepted header has a known type and a length within its type's
 * bound; an accepted HELLO has 1..16 streams, its index below the count,
 * a NUL-terminated token, only known flags, an epoch exactly when it is a
 * re-dial (RESUME), a re-dial window within its bound, and re-encodes to
 * the same bytes; an
 * accepted BEGIN fills its payload exactly, has its source blocks inside
 * the source region, its chunk count consistent, its head range inside
 * the source's heads with equal counts (no same-host copy of part of the
 * heads), and re-encodes to the same bytes.
 */
#include "fuzz_common.h"

#include "kv/kv.h"

#define WHY_LEN 160

static void fuzz_hdr(const uint8_t *data, size_t size)
{
    char why[WHY_LEN], why2[WHY_LEN];
    scomm_kv_hdr_t h;
    uint8_t re[SCOMM_KV_HDR_SIZE];
    uint64_t limit;
    int rc;

    if (size < 8 + SCOMM_KV_HDR_SIZE) {
        return;
    }
    limit = fuzz_get64(data);
    scomm_kv_hdr_decode(data + 8, &h);
    scomm_kv_hdr_encode(&h, re);
    FUZZ_CHECK(memcmp(re, data + 8, SCOMM_KV_HDR_SIZE) == 0);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    rc = scomm_kv_hdr_check(&h, limit, why, sizeof(why));
    FUZZ_CHECK(scomm_kv_hdr_check(&h, limit, why2, sizeof(why2)) == rc);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        fuzz_check_why(why, sizeof(why));
        FUZZ_CHECK(strcmp(why, why2) == 0);
        return;
    }
    FUZZ_CHECK(h.magic == SCOMM_KV_MAGIC);
    FUZZ_CHECK((h.type >= SCOMM_KV_T_HELLO) && (h.type < SCOMM_KV_T_MAX));
    if (h.type == SCOMM_KV_T_DATA) {
        FUZZ_CHECK(h.len <= limit);
        FUZZ_CHECK(h.len <= SCOMM_KV_CHUNK_MAX);
        FUZZ_CHECK(h.raw_len <= SCOMM_KV_CHUNK_MAX);
    } else if ((h.type == SCOMM_KV_T_HELLO) ||
               (h.type == SCOMM_KV_T_HELLO_OK)) {
        FUZZ_CHECK(h.len == SCOMM_KV_HELLO_SIZE);
    } else if (h.type == SCOMM_KV_T_BEGIN) {
        FUZZ_CHECK(h.len <= SCOMM_KV_BEGIN_FIXED + 8ull * SCOMM_KV_PLAN_MAX);
    } else {
        FUZZ_CHECK(h.len <= SCOMM_KV_ERRTEXT_MAX);
    }
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
    char why[WHY_LEN];
    scomm_kv_hello_t h;
    uint8_t *in = fuzz_dup(data, size), re[SCOMM_KV_HELLO_SIZE];

    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_kv_hello_decode(in, size, &h, why, sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        free(in);
        return;
    }
    FUZZ_CHECK(size == SCOMM_KV_HELLO_SIZE);
    fuzz_check_str(h.token, sizeof(h.token));
    FUZZ_CHECK((h.nstreams >= 1) && (h.nstreams <= SCOMM_KV_MAX_STREAMS));
    FUZZ_CHECK(h.stream < h.nstreams);
    FUZZ_CHECK((h.flags & ~SCOMM_KV_HELLO_RESUME) == 0);
    FUZZ_CHECK(((h.flags & SCOMM_KV_HELLO_RESUME) != 0) == (h.epoch != 0));
    FUZZ_CHECK(h.redial_ms <= SCOMM_KV_REDIAL_MAX_MS);
    scomm_kv_hello_encode(&h, re);
    /* The token's bytes after its NUL are not kept; the rest is. */
    FUZZ_CHECK(memcmp(re + SCOMM_KV_TOKEN_MAX, in + SCOMM_KV_TOKEN_MAX,
                      SCOMM_KV_HELLO_SIZE - SCOMM_KV_TOKEN_MAX) == 0);
    free(in);
}

static void fuzz_begin(const uint8_t *data, size_t size)
{
    char why[WHY_LEN];
    scomm_kv_begin_t b;
    uint8_t *in = fuzz_dup(data, size), *re;
    uint64_t cpl;
    uint32_t i;

    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_kv_begin_decode(in, size, &b, why, sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        FUZZ_CHECK(b.src_blocks == NULL);
        free(in);
        return;
    }
    FUZZ_CHECK(scomm_kv_begin_size(&b) == size);
    for (i = 0; i < b.num_src_blocks; i++) {
        FUZZ_CHECK((b.src_blocks[i] >= 0) &&
                   (b.src_blocks[i] < b.src_num_blocks));
    }
    FUZZ_CHECK(b.num_layers >= 1);
    FUZZ_CHECK(b.first_layer + b.num_layers <= b.src_layers);
    FUZZ_CHECK((b.blocks_per_chunk >= 1) &&
               (b.blocks_per_chunk <= b.num_src_blocks));
    cpl = (b.num_src_blocks + b.blocks_per_chunk - 1) / b.blocks_per_chunk;
    FUZZ_CHECK(b.nchunks == cpl * (uint64_t)b.num_layers);
    /* A head range lies inside the source's heads, both counts agree, and
     * a same-host copy moves whole blocks only. */
    FUZZ_CHECK((b.src_head_off >= 0) && (b.src_head_cnt >= 1) &&
               (b.src_head_off + b.src_head_cnt <= b.heads));
    FUZZ_CHECK((b.dst_head_off >= 0) &&
               ((b.dst_head_cnt == 0) || (b.dst_head_cnt == b.src_head_cnt)));
    /* (RMA and CUDA IPC may move a head range: they write rows) */
    FUZZ_CHECK(!(b.zero_copy & SCOMM_KV_BEGIN_ZC_CMA) ||
               (b.src_head_cnt == b.heads));
    FUZZ_CHECK(b.has_heads || ((b.src_head_off == 0) &&
                               (b.src_head_cnt == b.heads) &&
                               (b.dst_head_off == 0)));
    re = malloc(size);
    FUZZ_CHECK(re != NULL);
    scomm_kv_begin_encode(&b, re);
    FUZZ_CHECK(memcmp(re, in, size) == 0);
    free(re);
    scomm_kv_begin_free(&b);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_hdr(data + 1, size - 1);
        break;
    case 1:
        fuzz_hello(data + 1, size - 1);
        break;
    default:
        fuzz_begin(data + 1, size - 1);
        break;
    }
    return 0;
}
