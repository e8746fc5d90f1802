/*
 * rdma_wire.c - encoders and validators of the RDMA transport's wire
 * formats (layouts in rdma_wire.h). Pure code: compiled in every build,
 * with or without libibverbs, and fuzzed by tests/fuzz/fuzz_rdma_wire.c.
 *
 * Invariants:
 *  1. Nothing is read outside the buffer given (fixed offsets are checked
 *     against the length first).
 *  2. A refused input always leaves a reason; an accepted one satisfies
 *     every limit rdma_wire.h lists for it.
 */
#include <stdio.h>
#include <string.h>

#include "rdma_wire.h"

#define RW_WHY(...)                                                        \
    do {                                                                   \
        if (whylen > 0) {                                                  \
            snprintf(why, whylen, __VA_ARGS__);                            \
        }                                                                  \
    } while (0)

static void rw_put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t rw_get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

int scomm_rdma_qpinfo_check(const scomm_rdma_qpinfo_t *qi, char *why,
                            size_t whylen)
{
    if ((qi->qpn == 0) || (qi->qpn > SCOMM_RDMA_QPN_MAX)) {
        RW_WHY("queue pair number %u out of range", qi->qpn);
        return -1;
    }
    if (qi->psn > SCOMM_RDMA_PSN_MAX) {
        RW_WHY("packet sequence number %u out of range", qi->psn);
        return -1;
    }
    if ((qi->mtu < 1) || (qi->mtu > 5)) {
        RW_WHY("path MTU code %u out of range", (unsigned)qi->mtu);
        return -1;
    }
    if (qi->port == 0) {
        RW_WHY("port number 0");
        return -1;
    }
    if ((qi->rq_depth < 2) || (qi->rq_depth > SCOMM_RDMA_RQ_MAX)) {
        RW_WHY("receive queue depth %u out of range", qi->rq_depth);
        return -1;
    }
    return 0;
}

void scomm_rdma_hello_encode(uint8_t *buf, uint32_t version, int rank,
                             const scomm_rdma_qpinfo_t *qi,
                             const char *token)
{
    size_t tlen = strnlen(token, SCOMM_RDMA_TOKEN_MAX - 1);

    memset(buf, 0, SCOMM_RDMA_HELLO_SIZE);
    rw_put32(buf, SCOMM_RDMA_MAGIC);
    rw_put32(buf + 4, version);
    rw_put32(buf + 8, (uint32_t)rank);
    rw_put32(buf + 12, qi->qpn);
    rw_put32(buf + 16, qi->psn);
    memcpy(buf + 20, &qi->lid, 2);
    buf[22] = qi->mtu;
    buf[23] = qi->port;
    memcpy(buf + 24, qi->gid, 16);
    rw_put32(buf + 40, qi->rq_depth);
    rw_put32(buf + 44, (uint32_t)tlen);
    memcpy(buf + 48, token, tlen);
}

int scomm_rdma_hello_decode(const uint8_t *buf, size_t len, uint32_t version,
                            int *rank, scomm_rdma_qpinfo_t *qi, char *token,
                            size_t toklen, char *why, size_t whylen)
{
    scomm_rdma_qpinfo_t q;
    uint32_t tlen;

    if (len != SCOMM_RDMA_HELLO_SIZE) {
        RW_WHY("rdma hello of %zu bytes, expected %d", len,
               SCOMM_RDMA_HELLO_SIZE);
        return -1;
    }
    if (rw_get32(buf) != SCOMM_RDMA_MAGIC) {
        RW_WHY("not a scomm rdma connection");
        return -1;
    }
    if (rw_get32(buf + 4) != version) {
        RW_WHY("protocol version %u, expected %u", rw_get32(buf + 4),
               version);
        return -1;
    }
    memset(&q, 0, sizeof(q));
    q.qpn = rw_get32(buf + 12);
    q.psn = rw_get32(buf + 16);
    memcpy(&q.lid, buf + 20, 2);
    q.mtu  = buf[22];
    q.port = buf[23];
    memcpy(q.gid, buf + 24, 16);
    q.rq_depth = rw_get32(buf + 40);
    if (scomm_rdma_qpinfo_check(&q, why, whylen) != 0) {
        return -1;
    }
    tlen = rw_get32(buf + 44);
    if ((tlen >= SCOMM_RDMA_TOKEN_MAX) || ((size_t)tlen >= toklen)) {
        RW_WHY("token length %u out of range", tlen);
        return -1;
    }
    memcpy(token, buf + 48, tlen);
    token[tlen] = '\0';
    *rank = (int)rw_get32(buf + 8);
    *qi   = q;
    return 0;
}

int scomm_rdma_hdr_check(const void *buf, size_t got, uint64_t eager_max,
                         uint32_t max_credits, char *why, size_t whylen)
{
    scomm_rdma_hdr_t h;

    if (got < SCOMM_RDMA_HDR_SIZE) {
        RW_WHY("message of %zu bytes is shorter than its header", got);
        return -1;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.credits > max_credits) {
        RW_WHY("returns %u credits, more than the %u possible",
               (unsigned)h.credits, max_credits);
        return -1;
    }
    switch (h.type) {
    case SCOMM_RDMA_EAGER:
        if ((h.len > eager_max) ||
            (h.len != (uint64_t)(got - SCOMM_RDMA_HDR_SIZE))) {
            RW_WHY("eager message says %llu bytes, carries %zu (limit "
                   "%llu)", (unsigned long long)h.len,
                   got - SCOMM_RDMA_HDR_SIZE, (unsigned long long)eager_max);
            return -1;
        }
        return 0;
    case SCOMM_RDMA_RTS:
    case SCOMM_RDMA_CREDIT:
        break;
    case SCOMM_RDMA_CTS:
        if ((h.len > 0) &&
            ((h.aux == 0) || (h.aux > UINT64_MAX - h.len))) {
            RW_WHY("clear-to-send names a bad target range");
            return -1;
        }
        break;
    default:
        RW_WHY("unknown message type %u", (unsigned)h.type);
        return -1;
    }
    if (got != SCOMM_RDMA_HDR_SIZE) {
        RW_WHY("control message of %zu bytes, expected %d", got,
               SCOMM_RDMA_HDR_SIZE);
        return -1;
    }
    return 0;
}

int scomm_rdma_ctl_check(const void *buf16, char *why, size_t whylen)
{
    scomm_rdma_ctl_t m;

    memcpy(&m, buf16, sizeof(m));
    switch (m.type) {
    case SCOMM_RDMA_CTL_BYE:
    case SCOMM_RDMA_CTL_HEARTBEAT:
        if (m.len != 0) {
            RW_WHY("control message type %u carries %u bytes", m.type,
                   m.len);
            return -1;
        }
        return 0;
    case SCOMM_RDMA_CTL_ABORT:
        if (m.len > SCOMM_RDMA_ABORT_MAX) {
            RW_WHY("abort message of %u bytes is too long", m.len);
            return -1;
        }
        return 0;
    default:
        RW_WHY("unknown control message type %u", m.type);
        return -1;
    }
}

int scomm_rdma_imm_decode(uint32_t imm, uint32_t nslots, uint32_t *slot,
                          uint32_t *gen, char *why, size_t whylen)
{
    uint32_t s = imm & 0xffffu;

    if ((nslots > 65536) || (s >= nslots)) {
        RW_WHY("immediate names rendezvous slot %u of %u", s, nslots);
        return -1;
    }
    *slot = s;
    *gen  = imm >> 16;
    return 0;
}
