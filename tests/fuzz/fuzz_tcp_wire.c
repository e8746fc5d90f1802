/*
 * fuzz_tcp_wire.c - fuzz target for the tcp transport's wire checks
 * (src/transport/wire.h): the 40-byte message header and the 276-byte
 * HELLO an accepted connection sends first.
 *
 * Input: byte 0 picks the check, the rest is its input.
 *   0  scomm_tcp_hdr_check: byte 1 = socket index + 1 (mod 18, so -1..16),
 *      bytes 2..9 = eager limit (little endian), bytes 10..49 = header,
 *      the rest = payload (read as an ABORT's text is)
 *   1  scomm_tcp_hello_decode into a SCOMM_TOKEN_MAX token, as tcp.c does;
 *      the rest is the HELLO (any length)
 *   2  the same into a token buffer of byte 1 (mod SCOMM_TOKEN_MAX + 1)
 *      bytes; the rest is the HELLO
 *
 * Invariants: a refused input leaves a reason; an accepted header has a
 * known type and satisfies each type's limit; the check is deterministic;
 * a decoded token is NUL-terminated inside its buffer; a decoded HELLO
 * re-encodes to the same bytes and decodes to the same values.
 */
#include "fuzz_common.h"

#include "core/scomm_int.h"
#include "transport/wire.h"

#define WHY_LEN 128

/* Message types, as in tcp.c: part of the wire protocol. */
enum {
    T_EAGER = 1, T_RTS, T_CTS, T_DATA, T_ABORT, T_BYE, T_HEARTBEAT
};

static void fuzz_hdr(const uint8_t *data, size_t size)
{
    char why[WHY_LEN], why2[WHY_LEN];
    uint64_t eager_max, len;
    uint8_t *hdr;
    char *stage;
    int idx, rc;

    if (size < 1 + 8 + SCOMM_TCP_HDR_SIZE) {
        return;
    }
    idx       = (int)(data[0] % 18) - 1;
    eager_max = fuzz_get64(data + 1);
    hdr       = fuzz_dup(data + 9, SCOMM_TCP_HDR_SIZE);
    len       = fuzz_get64(hdr + 16);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    rc = scomm_tcp_hdr_check(hdr, idx, eager_max, why, sizeof(why));
    FUZZ_CHECK(scomm_tcp_hdr_check(hdr, idx, eager_max, why2,
                                   sizeof(why2)) == rc);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        fuzz_check_why(why, sizeof(why));
        FUZZ_CHECK(strcmp(why, why2) == 0);
        free(hdr);
        return;
    }
    FUZZ_CHECK((hdr[0] >= T_EAGER) && (hdr[0] <= T_HEARTBEAT));
    switch (hdr[0]) {
    case T_EAGER:
        FUZZ_CHECK((idx == 0) && (len <= eager_max));
        break;
    case T_RTS:
        FUZZ_CHECK(idx == 0);
        break;
    case T_ABORT:
        /* What tcp_on_header and tcp_on_payload_done do with it. */
        FUZZ_CHECK(len <= SCOMM_TCP_ABORT_MAX);
        stage = malloc(len + 1);
        FUZZ_CHECK(stage != NULL);
        size -= 9 + SCOMM_TCP_HDR_SIZE;
        memcpy(stage, data + 9 + SCOMM_TCP_HDR_SIZE,
               (size < len) ? size : len);
        stage[len] = '\0';
        free(stage);
        break;
    default:
        break;
    }
    free(hdr);
}

static void fuzz_hello(const uint8_t *data, size_t size, size_t toklen)
{
    uint8_t buf[SCOMM_TCP_HELLO_SIZE];
    char why[WHY_LEN], *token, tok2[SCOMM_TOKEN_MAX];
    uint8_t *in = fuzz_dup(data, size);
    int rank, idx, rank2, idx2;
    uint32_t tlen;
    size_t n;

    /* Exactly toklen bytes, so a write past it is caught. */
    token = malloc((toklen > 0) ? toklen : 1);
    FUZZ_CHECK(token != NULL);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_tcp_hello_decode(in, size, &rank, &idx, token, toklen, why,
                               sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        goto out;
    }
    FUZZ_CHECK(size == SCOMM_TCP_HELLO_SIZE);
    fuzz_check_str(token, toklen);
    tlen = fuzz_get32(in + 16);
    n    = strlen(token);
    FUZZ_CHECK((tlen < toklen) && (tlen < SCOMM_TOKEN_MAX) && (n <= tlen));
    FUZZ_CHECK(memcmp(token, in + 20, n) == 0);
    FUZZ_CHECK(rank == (int)fuzz_get32(in + 8));
    FUZZ_CHECK(idx == (int)fuzz_get32(in + 12));
    /* Round trip: what this process would send for the same values. */
    scomm_tcp_hello_encode(buf, rank, idx, token);
    if (n == tlen) {
        FUZZ_CHECK(memcmp(buf, in, 20 + n) == 0);
    }
    FUZZ_CHECK(scomm_tcp_hello_decode(buf, sizeof(buf), &rank2, &idx2, tok2,
                                      sizeof(tok2), why, sizeof(why)) == 0);
    FUZZ_CHECK((rank2 == rank) && (idx2 == idx));
    FUZZ_CHECK(strcmp(tok2, token) == 0);
out:
    free(token);
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
        fuzz_hello(data + 1, size - 1, SCOMM_TOKEN_MAX);
        break;
    default:
        if (size >= 2) {
            fuzz_hello(data + 2, size - 2,
                       (size_t)(data[1] % (SCOMM_TOKEN_MAX + 1)));
        }
        break;
    }
    return 0;
}
