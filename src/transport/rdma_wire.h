/*
 * rdma_wire.h - the RDMA verbs transport's wire formats and their pure,
 * bounds-checked validators (the counterpart of wire.h for tcp and shm).
 *
 * The functions here do no I/O, allocate nothing, need no RDMA device and
 * read only the bytes they are given, so they are compiled in every build
 * and driven by tests/fuzz/fuzz_rdma_wire.c. Checks that need connection
 * state (the job token, the rank table, the request an id names) stay in
 * rdma.c.
 *
 * Layouts (same-endian peers; the HELLO's magic catches a mismatch):
 *
 *   side-channel HELLO, 304 bytes, over TCP before the QP exists:
 *     magic u32 "SCRD" | version u32 | rank u32 | qpn u32 | psn u32
 *     | lid u16 | mtu u8 | port u8 | gid[16] | rq_depth u32
 *     | token length u32 | token bytes (zero padded to 256)
 *   side-channel control, 16 bytes (+ ABORT text), over the same socket:
 *     type u32 | status i32 | rank i32 | len u32 | text[len]
 *   message header, 40 bytes, first bytes of every SEND on the QP:
 *     type u8 | pad u8 | credits u16 | ctx u32 | tag i32 | aux32 u32
 *     | len u64 | id u64 | aux u64
 *   immediate data of the RDMA WRITE that ends a rendezvous, 32 bits:
 *     generation u16 << 16 | rendezvous slot u16
 *
 * Invariants:
 *  1. Every function returns 0 when the input is acceptable, or -1 with a
 *     non-empty NUL-terminated reason in why (when whylen > 0).
 *  2. A header is accepted only if the bytes received are exactly what its
 *     type and length say: no message is read past its receive buffer.
 *  3. Every value a caller later uses as an index or a length (qpn, psn,
 *     MTU, queue depth, token length, slot) is range-checked here.
 */
#ifndef SCOMM_RDMA_WIRE_H
#define SCOMM_RDMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SCOMM_RDMA_MAGIC       0x53435244u /* "SCRD" */
#define SCOMM_RDMA_HELLO_SIZE  304
#define SCOMM_RDMA_TOKEN_MAX   256
#define SCOMM_RDMA_HDR_SIZE    40
#define SCOMM_RDMA_CTL_SIZE    16
#define SCOMM_RDMA_ABORT_MAX   512
#define SCOMM_RDMA_RQ_MAX      1024 /* receive buffers per QP, at most */
#define SCOMM_RDMA_QPN_MAX     0xffffffu
#define SCOMM_RDMA_PSN_MAX     0xffffffu

/* Message types on the QP (SEND/RECV). */
enum {
    SCOMM_RDMA_EAGER  = 1, /* header + len payload bytes */
    SCOMM_RDMA_RTS    = 2, /* id: sender request, len: message length */
    SCOMM_RDMA_CTS    = 3, /* id: sender request, aux: target address,
                            * aux32: rkey, ctx: immediate to send,
                            * len: bytes granted (0: rejected) */
    SCOMM_RDMA_CREDIT = 4  /* header only: returns credits */
};

/* Control messages on the side-channel socket. */
enum {
    SCOMM_RDMA_CTL_BYE       = 1,
    SCOMM_RDMA_CTL_ABORT     = 2, /* len bytes of text follow */
    SCOMM_RDMA_CTL_HEARTBEAT = 3
};

typedef struct scomm_rdma_hdr {
    uint8_t  type;
    uint8_t  pad;
    uint16_t credits;
    uint32_t ctx;
    int32_t  tag;
    uint32_t aux32;
    uint64_t len;
    uint64_t id;
    uint64_t aux;
} scomm_rdma_hdr_t;

_Static_assert(sizeof(scomm_rdma_hdr_t) == SCOMM_RDMA_HDR_SIZE,
               "rdma header layout is part of the wire protocol");

typedef struct scomm_rdma_ctl {
    uint32_t type;
    int32_t  status;
    int32_t  rank;
    uint32_t len;
} scomm_rdma_ctl_t;

_Static_assert(sizeof(scomm_rdma_ctl_t) == SCOMM_RDMA_CTL_SIZE,
               "rdma control layout is part of the wire protocol");

/* What a rank tells a peer about its end of the queue pair. */
typedef struct scomm_rdma_qpinfo {
    uint32_t qpn;
    uint32_t psn;
    uint16_t lid;
    uint8_t  mtu;      /* enum ibv_mtu: 1 (256) .. 5 (4096) */
    uint8_t  port;
    uint8_t  gid[16];
    uint32_t rq_depth; /* receive buffers it posted: the sender's credits */
} scomm_rdma_qpinfo_t;

/* Range checks of a peer's QP description: qpn in 1..2^24-1, psn below
 * 2^24, mtu 1..5, port >= 1, rq_depth 2..SCOMM_RDMA_RQ_MAX. */
int scomm_rdma_qpinfo_check(const scomm_rdma_qpinfo_t *qi, char *why,
                            size_t whylen);

/* Write a SCOMM_RDMA_HELLO_SIZE-byte HELLO (the token is cut to
 * SCOMM_RDMA_TOKEN_MAX - 1 bytes). */
void scomm_rdma_hello_encode(uint8_t *buf, uint32_t version, int rank,
                             const scomm_rdma_qpinfo_t *qi,
                             const char *token);

/* Decode a HELLO of len bytes (anything but SCOMM_RDMA_HELLO_SIZE is
 * refused): magic, version == expected version, the claimed rank (returned
 * as sent, unchecked), the QP description (scomm_rdma_qpinfo_check) and
 * the token, copied NUL-terminated into token[toklen]. */
int scomm_rdma_hello_decode(const uint8_t *buf, size_t len, uint32_t version,
                            int *rank, scomm_rdma_qpinfo_t *qi, char *token,
                            size_t toklen, char *why, size_t whylen);

/* Check a message that arrived in a receive completion of got bytes:
 * the type is known; EAGER carries exactly len <= eager_max payload bytes;
 * the others are exactly a header; credits <= max_credits; a granting CTS
 * names a non-zero address whose range does not wrap. */
int scomm_rdma_hdr_check(const void *buf, size_t got, uint64_t eager_max,
                         uint32_t max_credits, char *why, size_t whylen);

/* Check a 16-byte control header: the type is known and an ABORT's text
 * is at most SCOMM_RDMA_ABORT_MAX bytes (the others carry none). */
int scomm_rdma_ctl_check(const void *buf16, char *why, size_t whylen);

/* The immediate of a rendezvous WRITE, and its decoding against a table
 * of nslots slots (nslots <= 65536). */
static inline uint32_t scomm_rdma_imm_make(uint32_t slot, uint32_t gen)
{
    return ((gen & 0xffffu) << 16) | (slot & 0xffffu);
}

int scomm_rdma_imm_decode(uint32_t imm, uint32_t nslots, uint32_t *slot,
                          uint32_t *gen, char *why, size_t whylen);

#endif /* SCOMM_RDMA_WIRE_H */
