/*
 * fuzz_shm_wire.c - fuzz target for the shm transport's per-message check
 * (scomm_shm_msg_check in src/transport/wire.h): what a local peer wrote
 * into the ring this rank reads.
 *
 * Input: byte 0 picks the mode, the rest is its input.
 *   0  raw: bytes 1..8 cell index, 9..16 ring bytes, 17..24 eager limit
 *      (little endian), 25..48 the message header; any values, to check
 *      the arithmetic cannot wrap
 *   1  in a ring: bytes 1..2 ring size in cells - 1 (mod 1024), 3..4 cell
 *      index (mod the cell count), 5..8 eager limit; the rest is written
 *      into an exact-size ring at that cell, and an accepted message is
 *      then read the way shm_handle reads it
 *
 * Invariants: a refused message leaves a reason; an accepted one has a
 * known type, its payload ends inside the ring (so it never wraps), and
 * its length suits its type.
 */
#include "fuzz_common.h"

#include "transport/wire.h"

#define WHY_LEN 128

/* Message types, as in shm.c: part of the wire protocol. */
enum {
    S_EAGER = 1, S_RTS, S_FIN, S_CTS, S_FRAG, S_SKIP
};

/* Check what an accepted header promises; returns the payload length. */
static uint64_t check_accepted(const uint8_t *cell, uint64_t cell_idx,
                               uint64_t ring_bytes, uint64_t eager_max)
{
    uint8_t type = cell[4];
    uint64_t len = fuzz_get64(cell + 16);

    FUZZ_CHECK((type >= S_EAGER) && (type <= S_SKIP));
    FUZZ_CHECK(ring_bytes >= SCOMM_SHM_HDR_BYTES);
    FUZZ_CHECK(cell_idx <= (ring_bytes - SCOMM_SHM_HDR_BYTES) /
                               SCOMM_SHM_CELL);
    if (type == S_SKIP) {
        return 0;
    }
    FUZZ_CHECK(len <= ring_bytes - SCOMM_SHM_HDR_BYTES -
                          cell_idx * SCOMM_SHM_CELL);
    switch (type) {
    case S_EAGER:
        FUZZ_CHECK(len <= eager_max);
        break;
    case S_RTS:
        FUZZ_CHECK(len == 24);
        break;
    case S_FIN:
    case S_CTS:
        FUZZ_CHECK(len == 16);
        break;
    case S_FRAG:
        FUZZ_CHECK(len >= 16);
        break;
    }
    return len;
}

static void fuzz_raw(const uint8_t *data, size_t size)
{
    uint64_t cell_idx, ring_bytes, eager_max;
    char why[WHY_LEN];
    uint8_t *cell;

    if (size < 24 + SCOMM_SHM_HDR_BYTES) {
        return;
    }
    cell_idx   = fuzz_get64(data);
    ring_bytes = fuzz_get64(data + 8);
    eager_max  = fuzz_get64(data + 16);
    cell       = fuzz_dup(data + 24, SCOMM_SHM_HDR_BYTES);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_shm_msg_check(cell, cell_idx, ring_bytes, eager_max, why,
                            sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
    } else {
        (void)check_accepted(cell, cell_idx, ring_bytes, eager_max);
    }
    free(cell);
}

static void fuzz_ring(const uint8_t *data, size_t size)
{
    uint64_t ncells, ring_bytes, cell_idx, eager_max, len, ctl[3], i;
    volatile uint8_t sum = 0;
    char why[WHY_LEN];
    uint8_t *ring, *cell;
    size_t room;

    if (size < 8) {
        return;
    }
    ncells     = 1 + (fuzz_get16(data) % 1024);
    ring_bytes = ncells * SCOMM_SHM_CELL;
    cell_idx   = fuzz_get16(data + 2) % ncells;
    eager_max  = fuzz_get32(data + 4);
    data += 8;
    size -= 8;
    ring = calloc(1, ring_bytes);
    FUZZ_CHECK(ring != NULL);
    cell = ring + cell_idx * SCOMM_SHM_CELL;
    room = (size_t)(ring_bytes - cell_idx * SCOMM_SHM_CELL);
    memcpy(cell, data, (size < room) ? size : room);
    memset(why, FUZZ_WHY_FILL, sizeof(why));
    if (scomm_shm_msg_check(cell, cell_idx, ring_bytes, eager_max, why,
                            sizeof(why)) != 0) {
        fuzz_check_why(why, sizeof(why));
        free(ring);
        return;
    }
    len = check_accepted(cell, cell_idx, ring_bytes, eager_max);
    /* The message's cells end inside the ring: it never wraps. */
    FUZZ_CHECK(cell_idx + (SCOMM_SHM_HDR_BYTES + len + SCOMM_SHM_CELL - 1) /
                              SCOMM_SHM_CELL <= ncells);
    /* Read the payload as shm_handle does; the ring is exactly
     * ring_bytes long, so AddressSanitizer flags any byte outside. */
    switch (cell[4]) {
    case S_RTS:
        memcpy(ctl, cell + SCOMM_SHM_HDR_BYTES, 3 * sizeof(uint64_t));
        sum = (uint8_t)(sum + ctl[2]);
        break;
    case S_FIN:
    case S_CTS:
    case S_FRAG:
        memcpy(ctl, cell + SCOMM_SHM_HDR_BYTES, 2 * sizeof(uint64_t));
        sum = (uint8_t)(sum + ctl[1]);
        break;
    default:
        break;
    }
    for (i = 0; i < len; i++) {
        sum = (uint8_t)(sum + cell[SCOMM_SHM_HDR_BYTES + i]);
    }
    (void)sum;
    free(ring);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        fuzz_raw(data + 1, size - 1);
    } else {
        fuzz_ring(data + 1, size - 1);
    }
    return 0;
}
