/*
 * modules.c - the one list of scomm's modules (core/module.h). It sits at
 * the top of the library, so it may name every module; core reads it
 * through scomm_modules[] and never includes a module above it.
 *
 * Each descriptor lives next to its module's code. The order is the layer
 * order of docs/design.md, bottom first; it is the order of `scomm info
 * -c`, and it matters:
 *  1. Set-up hooks run top to bottom of this list, teardown hooks bottom
 *     to top, so overlap (whose progress thread runs collectives,
 *     natively or on a vendor communicator) stops before the backends and
 *     the collectives, and core's shared memory is released last.
 *  2. Transports are started in this order and the first one that
 *     reaches a peer carries its messages: shm, then ofi (only when
 *     SCOMM_TRANSPORTS names it: a fabric's NIC), then tcp.
 *  3. Adding a transport is one file filling a scomm_tl_ops_t and one
 *     scomm_module_t row here.
 */
#include "../core/module.h"
#include "../core/util.h"

extern const scomm_module_t scomm_module_core;      /* core/config.c */
extern const scomm_module_t scomm_module_launcher;  /* core/env.c */
extern const scomm_module_t scomm_module_log;       /* core/log.c */
extern const scomm_module_t scomm_module_shm;       /* transport/shm.c */
extern const scomm_module_t scomm_module_ofi;       /* transport/ofi.c */
extern const scomm_module_t scomm_module_tcp;       /* transport/tcp.c */
extern const scomm_module_t scomm_module_mock;      /* transport/mock.c */
extern const scomm_module_t scomm_module_topo;      /* topo/discover.c */
extern const scomm_module_t scomm_module_presets;   /* topo/preset.c */
extern const scomm_module_t scomm_module_telemetry; /* telemetry/tm.c */
extern const scomm_module_t scomm_module_coll;      /* coll/select.c */
extern const scomm_module_t scomm_module_backend;   /* backend/backend.c */
extern const scomm_module_t scomm_module_overlap;   /* overlap/overlap.c */
extern const scomm_module_t scomm_module_kv;        /* kv/kv_params.c */
extern const scomm_module_t scomm_module_python;    /* api/outside.c */
extern const scomm_module_t scomm_module_test;      /* api/outside.c */

const scomm_module_t *const scomm_modules[] = {
    &scomm_module_core,     &scomm_module_launcher, &scomm_module_log,
    &scomm_module_shm,      &scomm_module_ofi,      &scomm_module_tcp,
    &scomm_module_mock,
    &scomm_module_topo,     &scomm_module_presets,  &scomm_module_telemetry,
    &scomm_module_coll,     &scomm_module_backend,  &scomm_module_overlap,
    &scomm_module_kv,       &scomm_module_python,   &scomm_module_test,
};

const size_t scomm_nmodules = SCOMM_ARRAY_SIZE(scomm_modules);
