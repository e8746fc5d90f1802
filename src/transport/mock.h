/*
 * mock.h - fault injection of the mock transport (internal; for tests).
 *
 * The mock backend (scomm_init with backend "mock") runs the ranks of a job
 * as threads of one process and moves messages through in-process inboxes.
 * Faults are described by a spec string, the same syntax as the
 * SCOMM_MOCK_FAULTS environment variable:
 *
 *   spec  := fault (';' fault)*
 *   fault := type (':' field '=' value)*
 *
 *   drop         src, dst, msg     discard the message; the send completes
 *   delay        ms (required),    deliver no earlier than ms after the send
 *                src, dst, msg
 *   corrupt      src, dst, msg     flip one byte (the middle one) of the
 *                                  payload; a 0-byte message is unchanged
 *   kill         rank, msg         rank dies when it sends its msg-th
 *                (both required)   message (all destinations counted)
 *   fail_connect rank (required)   rank's connect fails with PEER_LOST
 *
 * src, dst and msg left out mean "any": msg=k selects the k-th message
 * (counting from 1, every tag) of each matching (src, dst) pair, so the
 * same program hits the same messages on every run.
 *
 * A job (the ranks sharing master address, port and job token) takes a copy
 * of the faults added here and of SCOMM_MOCK_FAULTS when its first rank
 * joins; later changes do not affect a job already formed.
 */
#ifndef SCOMM_MOCK_H
#define SCOMM_MOCK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse spec and add its faults to the process-wide list. All or nothing:
 * on error nothing is added.
 * @return 0, or -1 with a reason naming the bad type or field in err.
 */
int scomm_mock_fault_add(const char *spec, char *err, size_t errlen);

/* Remove every fault from the process-wide list. */
void scomm_mock_fault_clear(void);

/*
 * Fake memory registrations (the ops table's mem_reg slot), process-wide:
 * live = registered and not yet released, total = ever made, leaked =
 * still held at a transport's fini or released twice (0 when the core
 * keeps its promise of tl.h).
 */
void scomm_mock_mr_stats(uint64_t *live, uint64_t *total, uint64_t *leaked);

#endif /* SCOMM_MOCK_H */
