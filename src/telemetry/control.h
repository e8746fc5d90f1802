/*
 * control.h - the run-time control table: values that scomm_control_set()
 * (or the environment) sets and that other modules read with the getters
 * below, lock-free, at points of their choosing (start of an operation,
 * creation of a channel).
 *
 * Keys and their getters:
 *   "chunk_size"  scomm_control_chunk_size()  bytes, 0 = not set (module
 *                 default or its own variable, e.g. SCOMM_COLL_SHM_CHUNK)
 *   "channels"    scomm_control_channels()    1..64, 0 = not set
 *   "fusion"      scomm_control_fusion()      1 on, 0 off, -1 not set
 *   "metrics", "trace", "trace_path"          act on telemetry directly
 *
 * Invariants:
 *  1. Each value is one atomic word; a reader sees the old or the new
 *     value, never a mix. scomm_control_gen() grows on every change, so a
 *     module can cache what it derived from the table and recompute when
 *     the generation moves.
 *  2. The table is process-wide: scomm_control_set()'s comm argument only
 *     receives the error message (it may be NULL).
 */
#ifndef SCOMM_CONTROL_H
#define SCOMM_CONTROL_H

#include <stdint.h>

int64_t scomm_control_chunk_size(void);
int32_t scomm_control_channels(void);
int32_t scomm_control_fusion(void);
uint64_t scomm_control_gen(void);

/* Called once per process at the first scomm_init (tm.c). */
void scomm_control_init_env(void);

#endif /* SCOMM_CONTROL_H */
