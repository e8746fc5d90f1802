/*
 * fuzz_bootstrap.c - fuzz target for the rendezvous decoders of
 * src/core/bootstrap_wire.c (the bytes a process accepts from anyone who
 * connects to rank 0, and the bytes rank 0 answers with).
 *
 * Input: byte 0 picks the decoder, the rest is its input.
 *   0  scomm_boot_decode_hdr    (16 bytes; shorter inputs are skipped)
 *   1  scomm_boot_decode_hello  (the whole rest is the body)
 *   2  scomm_boot_decode_table  (byte 1: expected world size, signed;
 *                                the rest is the body)
 *   3  scomm_boot_decode_info   (the whole rest)
 *   4  a message as it arrives: header, then a body of the header's
 *      length, decoded as the header's type says
 *
 * Invariants: failures leave a reason; decoded strings end inside their
 * fields; decoded values are in range; encode(decode(x)) decodes to the
 * same values (decode -> encode -> decode round trip).
 */
#include "fuzz_common.h"

#include "core/bootstrap.h"

#define WHY_LEN 256

static void check_info(const scomm_rankinfo_t *info)
{
    fuzz_check_str(info->hostname, sizeof(info->hostname));
    fuzz_check_str(info->boot_id, sizeof(info->boot_id));
    fuzz_check_str(info->tcp_addr, sizeof(info->tcp_addr));
    fuzz_check_str(info->shm_name, sizeof(info->shm_name));
}

static void check_info_equal(const scomm_rankinfo_t *a,
                             const scomm_rankinfo_t *b)
{
    FUZZ_CHECK(a->rank == b->rank);
    FUZZ_CHECK(a->pid == b->pid);
    FUZZ_CHECK(a->tcp_port == b->tcp_port);
    FUZZ_CHECK(a->flags == b->flags);
    FUZZ_CHECK(a->shm_size == b->shm_size);
    FUZZ_CHECK(strcmp(a->hostname, b->hostname) == 0);
    FUZZ_CHECK(strcmp(a->boot_id, b->boot_id) == 0);
    FUZZ_CHECK(strcmp(a->tcp_addr, b->tcp_addr) == 0);
    FUZZ_CHECK(strcmp(a->shm_name, b->shm_name) == 0);
    FUZZ_CHECK(a->tl_blob_len <= SCOMM_TL_BLOB_MAX);
    FUZZ_CHECK(a->tl_blob_len == b->tl_blob_len);
    FUZZ_CHECK(memcmp(a->tl_blob, b->tl_blob, a->tl_blob_len) == 0);
}

/* Re-encode a decoded record and decode it again. */
static void roundtrip_info(const scomm_rankinfo_t *info)
{
    uint8_t buf[SCOMM_BOOT_INFO_SIZE];
    scomm_rankinfo_t again;

    FUZZ_CHECK(scomm_boot_encode_info(buf, info) == SCOMM_BOOT_INFO_SIZE);
    FUZZ_CHECK(scomm_boot_decode_info(buf, sizeof(buf), &again) == 0);
    check_info_equal(info, &again);
}

static void fuzz_hdr(const uint8_t *data, size_t size)
{
    scomm_boot_hdr_t hdr, again;
    uint8_t buf[SCOMM_BOOT_HDR_SIZE];
    char why[WHY_LEN];
    uint8_t *in;

    if (size < SCOMM_BOOT_HDR_SIZE) {
        return;
    }
    in = fuzz_dup(data, SCOMM_BOOT_HDR_SIZE);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_boot_decode_hdr(in, &hdr, why, sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        free(in);
        return;
    }
    FUZZ_CHECK(hdr.magic == SCOMM_BOOT_MAGIC);
    FUZZ_CHECK(hdr.len <= SCOMM_BOOT_BODY_MAX);
    FUZZ_CHECK((hdr.type >= SCOMM_BOOT_HELLO) &&
               (hdr.type <= SCOMM_BOOT_FAILED));
    /* The encoder writes this process's version: all else is the input. */
    scomm_boot_encode_hdr(buf, hdr.type, hdr.len);
    FUZZ_CHECK(memcmp(buf, in, 4) == 0);
    FUZZ_CHECK(memcmp(buf + 8, in + 8, 8) == 0);
    FUZZ_CHECK(scomm_boot_decode_hdr(buf, &again, why, sizeof(why)) == 0);
    FUZZ_CHECK((again.type == hdr.type) && (again.len == hdr.len) &&
               (again.version == scomm_boot_proto_version));
    free(in);
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
    uint8_t buf[12 + SCOMM_TOKEN_MAX + SCOMM_BOOT_INFO_SIZE];
    scomm_boot_hello_t h, again;
    char why[WHY_LEN];
    uint8_t *in = fuzz_dup(data, size);
    size_t n;

    /* A FAILED body's hello part: within the input, and a whole hello. */
    n = scomm_boot_hello_len(in, size);
    FUZZ_CHECK(n <= size);
    FUZZ_CHECK((n == 0) || (n >= 12 + SCOMM_BOOT_INFO_SIZE));
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_boot_decode_hello(in, size, &h, why, sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        free(in);
        return;
    }
    fuzz_check_str(h.token, sizeof(h.token));
    check_info(&h.info);
    FUZZ_CHECK((h.world_size >= 1) && (h.world_size <= SCOMM_WORLD_MAX));
    FUZZ_CHECK((h.rank >= 0) && (h.rank < h.world_size));
    FUZZ_CHECK(h.info.rank == h.rank);
    FUZZ_CHECK(size >= 12 + strlen(h.token) + SCOMM_BOOT_INFO_SIZE);
    FUZZ_CHECK(size <= sizeof(buf) - 1);
    n = scomm_boot_encode_hello(buf, sizeof(buf), &h);
    FUZZ_CHECK(n == 12 + strlen(h.token) + SCOMM_BOOT_INFO_SIZE);
    FUZZ_CHECK(scomm_boot_encode_hello(buf, n - 1, &h) == 0);
    FUZZ_CHECK(scomm_boot_decode_hello(buf, n, &again, why,
                                       sizeof(why)) == 0);
    FUZZ_CHECK((again.rank == h.rank) && (again.world_size == h.world_size));
    FUZZ_CHECK(strcmp(again.token, h.token) == 0);
    check_info_equal(&again.info, &h.info);
    free(in);
}

static void fuzz_table(const uint8_t *data, size_t size, int world_size)
{
    scomm_rankinfo_t *infos, *again;
    char why[WHY_LEN];
    uint8_t *in = fuzz_dup(data, size), *buf;
    size_t n;
    int i;

    /* Exactly world_size records: the caller's w->info array. */
    n     = (world_size > 0) ? (size_t)world_size : 1;
    infos = calloc(n, sizeof(*infos));
    again = calloc(n, sizeof(*again));
    FUZZ_CHECK((infos != NULL) && (again != NULL));
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_boot_decode_table(in, size, world_size, infos, why,
                                sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        goto out;
    }
    FUZZ_CHECK(world_size >= 0);
    FUZZ_CHECK(size == 4 + (size_t)world_size * SCOMM_BOOT_INFO_SIZE);
    buf = malloc(size);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, in, 4);
    for (i = 0; i < world_size; i++) {
        FUZZ_CHECK(infos[i].rank == i);
        check_info(&infos[i]);
        roundtrip_info(&infos[i]);
        scomm_boot_encode_info(buf + 4 + (size_t)i * SCOMM_BOOT_INFO_SIZE,
                               &infos[i]);
    }
    FUZZ_CHECK(scomm_boot_decode_table(buf, size, world_size, again, why,
                                       sizeof(why)) == 0);
    for (i = 0; i < world_size; i++) {
        check_info_equal(&infos[i], &again[i]);
    }
    free(buf);
out:
    free(again);
    free(infos);
    free(in);
}

static void fuzz_info(const uint8_t *data, size_t size)
{
    scomm_rankinfo_t info;
    uint8_t *in = fuzz_dup(data, size);

    if (scomm_boot_decode_info(in, size, &info) == 0) {
        FUZZ_CHECK(size >= SCOMM_BOOT_INFO_SIZE);
        check_info(&info);
        roundtrip_info(&info);
    }
    free(in);
}

/* A header and the body it announces, handled as bootstrap.c does. */
static void fuzz_message(const uint8_t *data, size_t size)
{
    scomm_boot_hdr_t hdr;
    char why[WHY_LEN];

    if (size < SCOMM_BOOT_HDR_SIZE) {
        return;
    }
    if (scomm_boot_decode_hdr(data, &hdr, why, sizeof(why)) != 0) {
        return;
    }
    if (hdr.len > size - SCOMM_BOOT_HDR_SIZE) {
        return; /* the socket would still be waiting for the body */
    }
    data += SCOMM_BOOT_HDR_SIZE;
    switch (hdr.type) {
    case SCOMM_BOOT_HELLO:
        fuzz_hello(data, hdr.len);
        break;
    case SCOMM_BOOT_TABLE:
        /* A rank expects a table of its own world size. */
        fuzz_table(data, hdr.len,
                   (hdr.len >= 4)
                       ? (int)((hdr.len - 4) / SCOMM_BOOT_INFO_SIZE)
                       : 1);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 5) {
    case 0:
        fuzz_hdr(data + 1, size - 1);
        break;
    case 1:
        fuzz_hello(data + 1, size - 1);
        break;
    case 2:
        if (size >= 2) {
            fuzz_table(data + 2, size - 2, (int)(int8_t)data[1]);
        }
        break;
    case 3:
        fuzz_info(data + 1, size - 1);
        break;
    default:
        fuzz_message(data + 1, size - 1);
        break;
    }
    return 0;
}
