/*
 * bootstrap.h - the rendezvous wire format, kept apart from the socket code
 * so the decoders can be fuzzed on raw bytes.
 *
 * Every message: a 16-byte header {magic "SCMB", protocol version, type,
 * body length} (little endian) and a body of at most SCOMM_BOOT_BODY_MAX.
 */
#ifndef SCOMM_BOOTSTRAP_H
#define SCOMM_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "scomm_int.h"

#define SCOMM_BOOT_MAGIC     0x424d4353u /* "SCMB" */
#define SCOMM_BOOT_HDR_SIZE  16
#define SCOMM_BOOT_INFO_SIZE (224 + 4 + SCOMM_TL_BLOB_MAX)
#define SCOMM_BOOT_BODY_MAX  (16u + SCOMM_TOKEN_MAX + \
                              SCOMM_WORLD_MAX * SCOMM_BOOT_INFO_SIZE)

enum {
    SCOMM_BOOT_HELLO  = 1,
    SCOMM_BOOT_TABLE  = 2,
    SCOMM_BOOT_REJECT = 3,
    SCOMM_BOOT_FAILED = 4  /* a hello, then why the rank cannot join */
};

typedef struct scomm_boot_hdr {
    uint32_t magic;
    uint32_t version;
    uint32_t type;
    uint32_t len;
} scomm_boot_hdr_t;

typedef struct scomm_boot_hello {
    int32_t          rank;
    int32_t          world_size;
    char             token[SCOMM_TOKEN_MAX];
    scomm_rankinfo_t info;
} scomm_boot_hello_t;

extern uint32_t scomm_boot_proto_version;
void scomm_boot_encode_hdr(uint8_t *out, uint32_t type, uint32_t len);
/* Returns 0, or -1 with a reason (bad magic, body too long). The version is
 * returned, not checked: the caller answers a mismatch with a REJECT. */
int scomm_boot_decode_hdr(const uint8_t *in, scomm_boot_hdr_t *hdr,
                          char *err, size_t errlen);
size_t scomm_boot_encode_info(uint8_t *out, const scomm_rankinfo_t *info);
int scomm_boot_decode_info(const uint8_t *in, size_t len,
                           scomm_rankinfo_t *info);
size_t scomm_boot_encode_hello(uint8_t *out, size_t cap,
                               const scomm_boot_hello_t *h);
int scomm_boot_decode_hello(const uint8_t *in, size_t len,
                            scomm_boot_hello_t *h, char *err, size_t errlen);
/* FAILED: the hello's bytes, then the reason (not terminated); the
 * length of the hello part, 0 if len cannot hold one. */
size_t scomm_boot_hello_len(const uint8_t *in, size_t len);
/* Table: world_size then one info per rank; entry i must have rank i. */
int scomm_boot_decode_table(const uint8_t *in, size_t len, int world_size,
                            scomm_rankinfo_t *infos, char *err,
                            size_t errlen);

#endif /* SCOMM_BOOTSTRAP_H */
