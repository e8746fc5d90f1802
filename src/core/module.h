/*
 * module.h - how the modules above core plug into it without core calling
 * up (docs/design.md, "Layers").
 *
 * Every module (each transport, topo, telemetry, coll, overlap, backend, kv)
 * describes itself once in a scomm_module_t: its name, the table of its
 * configuration knobs, and the hooks core runs at set-up and teardown. The
 * one list of modules is scomm_modules[] in src/api/modules.c, the top of
 * the library: core walks it (set-up in list order, teardown in reverse)
 * and never names a module above it.
 *
 * Invariants:
 *  1. Core includes no header of a module above it; it reaches them only
 *     through scomm_modules[] and the function pointers in this struct.
 *  2. Every SCOMM_* variable the library reads is a row of some module's
 *     params table (config registry); nothing else calls getenv("SCOMM_...").
 *  3. A NULL hook or table means the module has nothing to do there.
 */
#ifndef SCOMM_MODULE_H
#define SCOMM_MODULE_H

#include <stddef.h>

#include "config.h"

typedef struct scomm_module {
    const char          *name;    /* "core", "shm", "tcp", "kv", ... */
    const scomm_param_t *params;  /* this module's knobs, or NULL */
    size_t               nparams;
    /* Lifecycle hooks (world and communicator set-up and teardown) are
     * added here by the layering work: see docs/design.md. */
} scomm_module_t;

/* The one list, defined in src/api/modules.c. */
extern const scomm_module_t *const scomm_modules[];
extern const size_t scomm_nmodules;

#endif /* SCOMM_MODULE_H */
