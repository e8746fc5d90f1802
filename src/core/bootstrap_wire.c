/*
 * bootstrap_wire.c - encoders and bounds-checked decoders of the rendezvous
 * messages (see bootstrap.h). Pure functions over bytes: no I/O, no
 * allocation, every length checked before use; the fuzz target
 * tests/fuzz/fuzz_bootstrap.c drives them.
 */
#include <stdio.h>
#include <string.h>

#include "bootstrap.h"

/* The version this process speaks; tests override it through
 * SCOMM_TEST_PROTOCOL_VERSION to exercise the mismatch path. */
uint32_t scomm_boot_proto_version = SCOMM_PROTOCOL_VERSION;

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* Copy a fixed-size string field, always NUL-terminating the result. */
static void get_str(char *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n - 1] = '\0';
}

void scomm_boot_encode_hdr(uint8_t *out, uint32_t type, uint32_t len)
{
    put32(out, SCOMM_BOOT_MAGIC);
    put32(out + 4, scomm_boot_proto_version);
    put32(out + 8, type);
    put32(out + 12, len);
}

int scomm_boot_decode_hdr(const uint8_t *in, scomm_boot_hdr_t *hdr,
                          char *err, size_t errlen)
{
    hdr->magic   = get32(in);
    hdr->version = get32(in + 4);
    hdr->type    = get32(in + 8);
    hdr->len     = get32(in + 12);
    if (hdr->magic != SCOMM_BOOT_MAGIC) {
        snprintf(err, errlen, "not a scomm bootstrap message (magic 0x%08x)",
                 hdr->magic);
        return -1;
    }
    if (hdr->len > SCOMM_BOOT_BODY_MAX) {
        snprintf(err, errlen, "bootstrap message body of %u bytes exceeds "
                 "the %u-byte limit", hdr->len, SCOMM_BOOT_BODY_MAX);
        return -1;
    }
    if ((hdr->type < SCOMM_BOOT_HELLO) || (hdr->type > SCOMM_BOOT_FAILED)) {
        snprintf(err, errlen, "unknown bootstrap message type %u",
                 hdr->type);
        return -1;
    }
    return 0;
}

size_t scomm_boot_encode_info(uint8_t *out, const scomm_rankinfo_t *info)
{
    uint8_t *p = out;

    memset(out, 0, SCOMM_BOOT_INFO_SIZE);
    put32(p, (uint32_t)info->rank);
    put32(p + 4, (uint32_t)info->pid);
    put32(p + 8, info->tcp_port);
    put32(p + 12, info->flags);
    put64(p + 16, info->shm_size);
    p += 24;
    memcpy(p, info->hostname, strnlen(info->hostname, SCOMM_HOST_MAX - 1));
    p += SCOMM_HOST_MAX;
    memcpy(p, info->boot_id, strnlen(info->boot_id, 39));
    p += 40;
    memcpy(p, info->tcp_addr, strnlen(info->tcp_addr, SCOMM_ADDR_MAX - 1));
    p += SCOMM_ADDR_MAX;
    memcpy(p, info->shm_name, strnlen(info->shm_name, SCOMM_SHMNAME_MAX - 1));
    p += SCOMM_SHMNAME_MAX;
    put32(p, SCOMM_MIN(info->tl_blob_len, SCOMM_TL_BLOB_MAX));
    p += 4;
    memcpy(p, info->tl_blob, SCOMM_MIN(info->tl_blob_len, SCOMM_TL_BLOB_MAX));
    p += SCOMM_TL_BLOB_MAX;
    return (size_t)(p - out);
}

int scomm_boot_decode_info(const uint8_t *in, size_t len,
                           scomm_rankinfo_t *info)
{
    const uint8_t *p = in;
    uint32_t port;

    if (len < SCOMM_BOOT_INFO_SIZE) {
        return -1;
    }
    memset(info, 0, sizeof(*info));
    info->rank     = (int32_t)get32(p);
    info->pid      = (int32_t)get32(p + 4);
    port           = get32(p + 8);
    info->flags    = get32(p + 12);
    info->shm_size = get64(p + 16);
    if (port > 65535) {
        return -1;
    }
    info->tcp_port = (uint16_t)port;
    p += 24;
    get_str(info->hostname, p, SCOMM_HOST_MAX);
    p += SCOMM_HOST_MAX;
    get_str(info->boot_id, p, 40);
    p += 40;
    get_str(info->tcp_addr, p, SCOMM_ADDR_MAX);
    p += SCOMM_ADDR_MAX;
    get_str(info->shm_name, p, SCOMM_SHMNAME_MAX);
    p += SCOMM_SHMNAME_MAX;
    info->tl_blob_len = get32(p);
    if (info->tl_blob_len > SCOMM_TL_BLOB_MAX) {
        return -1;
    }
    memcpy(info->tl_blob, p + 4, info->tl_blob_len);
    return 0;
}

size_t scomm_boot_encode_hello(uint8_t *out, size_t cap,
                               const scomm_boot_hello_t *h)
{
    size_t tlen = strnlen(h->token, SCOMM_TOKEN_MAX - 1);
    size_t need = 12 + tlen + SCOMM_BOOT_INFO_SIZE;

    if (cap < need) {
        return 0;
    }
    put32(out, (uint32_t)h->rank);
    put32(out + 4, (uint32_t)h->world_size);
    put32(out + 8, (uint32_t)tlen);
    memcpy(out + 12, h->token, tlen);
    scomm_boot_encode_info(out + 12 + tlen, &h->info);
    return need;
}

size_t scomm_boot_hello_len(const uint8_t *in, size_t len)
{
    size_t need;

    if (len < 12) {
        return 0;
    }
    need = 12 + (size_t)get32(in + 8) + SCOMM_BOOT_INFO_SIZE;
    return (need <= len) ? need : 0;
}

int scomm_boot_decode_hello(const uint8_t *in, size_t len,
                            scomm_boot_hello_t *h, char *err, size_t errlen)
{
    uint32_t tlen;

    memset(h, 0, sizeof(*h));
    if (len < 12) {
        snprintf(err, errlen, "hello of %zu bytes is too short", len);
        return -1;
    }
    h->rank       = (int32_t)get32(in);
    h->world_size = (int32_t)get32(in + 4);
    tlen          = get32(in + 8);
    if (tlen >= SCOMM_TOKEN_MAX) {
        snprintf(err, errlen, "hello carries a %u-byte token (limit %d)",
                 tlen, SCOMM_TOKEN_MAX - 1);
        return -1;
    }
    if (len != 12 + (size_t)tlen + SCOMM_BOOT_INFO_SIZE) {
        snprintf(err, errlen, "hello of %zu bytes, expected %zu", len,
                 12 + (size_t)tlen + SCOMM_BOOT_INFO_SIZE);
        return -1;
    }
    memcpy(h->token, in + 12, tlen);
    h->token[tlen] = '\0';
    if (scomm_boot_decode_info(in + 12 + tlen, SCOMM_BOOT_INFO_SIZE,
                               &h->info) != 0) {
        snprintf(err, errlen, "hello carries a malformed rank record");
        return -1;
    }
    if ((h->world_size < 1) || (h->world_size > SCOMM_WORLD_MAX) ||
        (h->rank < 0) || (h->rank >= h->world_size) ||
        (h->info.rank != h->rank)) {
        snprintf(err, errlen, "hello claims rank %d of world size %d",
                 (int)h->rank, (int)h->world_size);
        return -1;
    }
    return 0;
}

int scomm_boot_decode_table(const uint8_t *in, size_t len, int world_size,
                            scomm_rankinfo_t *infos, char *err,
                            size_t errlen)
{
    int32_t n;
    int i;

    if (len < 4) {
        snprintf(err, errlen, "rank table of %zu bytes is too short", len);
        return -1;
    }
    n = (int32_t)get32(in);
    if ((n != world_size) ||
        (len != 4 + (size_t)n * SCOMM_BOOT_INFO_SIZE)) {
        snprintf(err, errlen, "rank table for %d ranks in %zu bytes, "
                 "expected %d ranks", (int)n, len, world_size);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if ((scomm_boot_decode_info(in + 4 + (size_t)i * SCOMM_BOOT_INFO_SIZE,
                                    SCOMM_BOOT_INFO_SIZE, &infos[i]) != 0) ||
            (infos[i].rank != i)) {
            snprintf(err, errlen, "rank table entry %d is malformed", i);
            return -1;
        }
    }
    return 0;
}
