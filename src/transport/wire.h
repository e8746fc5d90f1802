/*
 * wire.h - the pure, bounds-checked validators of the transports' wire
 * formats: what a peer's bytes must satisfy before tcp.c or shm.c acts on
 * them.
 *
 * These functions do no I/O, allocate nothing and read only the bytes they
 * are given; they decide whether a message is well formed on its own. The
 * checks that need the connection's state (the job token, the rank table,
 * the request a DATA stripe or FRAG targets) stay in the transports. The
 * fuzz targets tests/fuzz/fuzz_tcp_wire.c and fuzz_shm_wire.c drive them.
 *
 * Layouts (same-endian peers; the HELLO's magic catches a mismatch):
 *
 *   tcp header, 40 bytes:  type u8 | pad[3] | ctx u32 | tag i32 | aux32 u32
 *                          | len u64 | id u64 | aux u64
 *   tcp HELLO, 276 bytes:  magic u32 "SCTP" | version u32 | rank u32
 *                          | socket index u32 | token length u32
 *                          | token bytes (zero padded)
 *   shm message, in cells of 64 bytes, header 24 bytes:
 *                          flag u32 | type u8 | pad u8 | spare u16
 *                          | ctx u32 | tag i32 | len u64 | payload
 *
 * All functions return 0 when the input is acceptable, or -1 with a
 * NUL-terminated reason in why (when whylen > 0).
 */
#ifndef SCOMM_WIRE_H
#define SCOMM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SCOMM_TCP_HDR_SIZE   40
#define SCOMM_TCP_HELLO_SIZE 276
#define SCOMM_TCP_ABORT_MAX  512
#define SCOMM_SHM_CELL       64
#define SCOMM_SHM_HDR_BYTES  24

/* Check a whole 40-byte tcp header received on socket sock_idx of a peer:
 * the type is known, EAGER is at most eager_max bytes and, like RTS, comes
 * on socket 0, ABORT carries at most SCOMM_TCP_ABORT_MAX bytes. */
int scomm_tcp_hdr_check(const void *hdr40, int sock_idx, uint64_t eager_max,
                        char *why, size_t whylen);

/* Decode a tcp HELLO of len bytes (anything but SCOMM_TCP_HELLO_SIZE is
 * refused): magic, protocol version, then the claimed rank and socket index
 * (returned as sent, unchecked) and the token, copied NUL-terminated into
 * token[toklen]. */
int scomm_tcp_hello_decode(const uint8_t *buf, size_t len, int *rank,
                           int *idx, char *token, size_t toklen, char *why,
                           size_t whylen);

/* Write a SCOMM_TCP_HELLO_SIZE-byte HELLO into buf (the token is cut to
 * SCOMM_TOKEN_MAX - 1 bytes). */
void scomm_tcp_hello_encode(uint8_t *buf, int rank, int idx,
                            const char *token);

/* Check the message whose first cell is cell, at cell index cell_idx of a
 * ring of ring_bytes bytes: the type is known, the payload ends inside the
 * ring, EAGER is at most eager_max bytes, RTS/FIN/CTS have their fixed
 * sizes and FRAG carries its two control words. Reads the 24-byte header
 * only. A SKIP, written by the sender to fill the ring's end, is accepted
 * as is. */
int scomm_shm_msg_check(const void *cell, uint64_t cell_idx,
                        uint64_t ring_bytes, uint64_t eager_max, char *why,
                        size_t whylen);

#endif /* SCOMM_WIRE_H */
