/*
 * fuzz_rdma_wire.c - fuzz target for the RDMA transport's wire checks
 * (src/transport/rdma_wire.h): the 40-byte message header as a receive
 * completion delivers it, the 304-byte side-channel HELLO, the 16-byte
 * side-channel control header and the rendezvous immediate.
 *
 * Input: byte 0 picks the check, the rest is its input.
 *   0  scomm_rdma_hdr_check: bytes 1..8 = eager limit (little endian),
 *      bytes 9..10 = credit limit, the rest = the received message (its
 *      length is the completion's byte count)
 *   1  scomm_rdma_hello_decode into a SCOMM_RDMA_TOKEN_MAX token, as rdma.c
 *      does; the rest is the HELLO (any length)
 *   2  the same into a token buffer of byte 1 (mod SCOMM_RDMA_TOKEN_MAX
 *      + 1) bytes; the rest is the HELLO
 *   3  scomm_rdma_ctl_check on bytes 1..16, then scomm_rdma_imm_decode of
 *      bytes 17..20 against a table of bytes 21..24 slots
 *
 * Invariants: a refused input leaves a reason; the checks are
 * deterministic; an accepted header has a known type, carries exactly its
 * payload and at most the credit limit, and a granting CTS names a range
 * that does not wrap; a decoded HELLO's QP description is in range, its
 * token is NUL-terminated inside its buffer, and it re-encodes to the same
 * bytes; an accepted control header carries at most SCOMM_RDMA_ABORT_MAX
 * bytes; a decoded immediate names a slot inside the table.
 */
#include "fuzz_common.h"

#include "transport/rdma_wire.h"

#define WHY_LEN 128

static void fuzz_hdr(const uint8_t *data, size_t size)
{
    char why[WHY_LEN], why2[WHY_LEN];
    scomm_rdma_hdr_t h;
    uint64_t eager_max;
    uint32_t max_credits;
    uint8_t *msg;
    size_t got;
    int rc;

    if (size < 10) {
        return;
    }
    eager_max   = fuzz_get64(data) % (1u << 21);
    max_credits = fuzz_get16(data + 8);
    got         = size - 10;
    msg         = fuzz_dup(data + 10, got);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    rc = scomm_rdma_hdr_check(msg, got, eager_max, max_credits, why,
                              sizeof(why));
    FUZZ_CHECK(scomm_rdma_hdr_check(msg, got, eager_max, max_credits, why2,
                                    sizeof(why2)) == rc);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        fuzz_check_why(why, sizeof(why));
        FUZZ_CHECK(strcmp(why, why2) == 0);
        free(msg);
        return;
    }
    FUZZ_CHECK(got >= SCOMM_RDMA_HDR_SIZE);
    memcpy(&h, msg, sizeof(h));
    FUZZ_CHECK(h.credits <= max_credits);
    switch (h.type) {
    case SCOMM_RDMA_EAGER:
        FUZZ_CHECK(h.len <= eager_max);
        FUZZ_CHECK(h.len == got - SCOMM_RDMA_HDR_SIZE);
        break;
    case SCOMM_RDMA_CTS:
        FUZZ_CHECK(got == SCOMM_RDMA_HDR_SIZE);
        if (h.len > 0) {
            FUZZ_CHECK((h.aux != 0) && (h.aux + h.len >= h.aux));
        }
        break;
    case SCOMM_RDMA_RTS:
    case SCOMM_RDMA_CREDIT:
        FUZZ_CHECK(got == SCOMM_RDMA_HDR_SIZE);
        break;
    default:
        FUZZ_CHECK(0);
    }
    free(msg);
}

static void fuzz_hello(const uint8_t *data, size_t size, size_t toklen)
{
    uint8_t buf[SCOMM_RDMA_HELLO_SIZE];
    char why[WHY_LEN], *token, tok2[SCOMM_RDMA_TOKEN_MAX];
    scomm_rdma_qpinfo_t qi, qi2;
    uint8_t *in = fuzz_dup(data, size);
    int rank, rank2;
    uint32_t tlen;
    size_t n;

    token = malloc((toklen > 0) ? toklen : 1);
    FUZZ_CHECK(token != NULL);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_rdma_hello_decode(in, size, 1, &rank, &qi, token, toklen, why,
                                sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        goto out;
    }
    FUZZ_CHECK(size == SCOMM_RDMA_HELLO_SIZE);
    FUZZ_CHECK(scomm_rdma_qpinfo_check(&qi, why, sizeof(why)) == 0);
    FUZZ_CHECK((qi.qpn >= 1) && (qi.qpn <= SCOMM_RDMA_QPN_MAX));
    FUZZ_CHECK((qi.mtu >= 1) && (qi.mtu <= 5));
    FUZZ_CHECK((qi.rq_depth >= 2) && (qi.rq_depth <= SCOMM_RDMA_RQ_MAX));
    fuzz_check_str(token, toklen);
    tlen = fuzz_get32(in + 44);
    n    = strlen(token);
    FUZZ_CHECK((tlen < toklen) && (tlen < SCOMM_RDMA_TOKEN_MAX) &&
               (n <= tlen));
    FUZZ_CHECK(rank == (int)fuzz_get32(in + 8));
    scomm_rdma_hello_encode(buf, 1, rank, &qi, token);
    if (n == tlen) {
        FUZZ_CHECK(memcmp(buf, in, 48 + n) == 0);
    }
    FUZZ_CHECK(scomm_rdma_hello_decode(buf, sizeof(buf), 1, &rank2, &qi2,
                                       tok2, sizeof(tok2), why,
                                       sizeof(why)) == 0);
    FUZZ_CHECK(rank2 == rank);
    FUZZ_CHECK(memcmp(&qi, &qi2, sizeof(qi)) == 0);
    FUZZ_CHECK(strcmp(tok2, token) == 0);
out:
    free(token);
    free(in);
}

static void fuzz_ctl_imm(const uint8_t *data, size_t size)
{
    char why[WHY_LEN];
    uint32_t imm, nslots, slot, gen;
    scomm_rdma_ctl_t m;
    uint8_t *ctl;

    if (size < SCOMM_RDMA_CTL_SIZE) {
        return;
    }
    ctl = fuzz_dup(data, SCOMM_RDMA_CTL_SIZE);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_rdma_ctl_check(ctl, why, sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
    } else {
        memcpy(&m, ctl, sizeof(m));
        FUZZ_CHECK((m.type >= SCOMM_RDMA_CTL_BYE) &&
                   (m.type <= SCOMM_RDMA_CTL_HEARTBEAT));
        FUZZ_CHECK(m.len <= SCOMM_RDMA_ABORT_MAX);
        FUZZ_CHECK((m.type == SCOMM_RDMA_CTL_ABORT) || (m.len == 0));
    }
    free(ctl);
    if (size < SCOMM_RDMA_CTL_SIZE + 8) {
        return;
    }
    imm    = fuzz_get32(data + SCOMM_RDMA_CTL_SIZE);
    nslots = fuzz_get32(data + SCOMM_RDMA_CTL_SIZE + 4);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_rdma_imm_decode(imm, nslots, &slot, &gen, why,
                              sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        return;
    }
    FUZZ_CHECK((slot < nslots) && (nslots <= 65536));
    FUZZ_CHECK(scomm_rdma_imm_make(slot, gen) == imm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_hdr(data + 1, size - 1);
        break;
    case 1:
        fuzz_hello(data + 1, size - 1, SCOMM_RDMA_TOKEN_MAX);
        break;
    case 2:
        if (size >= 2) {
            fuzz_hello(data + 2, size - 2,
                       (size_t)(data[1] % (SCOMM_RDMA_TOKEN_MAX + 1)));
        }
        break;
    default:
        fuzz_ctl_imm(data + 1, size - 1);
        break;
    }
    return 0;
}
