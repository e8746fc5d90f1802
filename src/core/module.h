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
 *  4. Set-up hooks run in list order, teardown hooks in reverse, so a
 *     module may rely on every module before it in the list being set up
 *     (a transport before the collectives, the collectives before the
 *     overlap engine that runs them) and still there at its teardown.
 */
#ifndef SCOMM_MODULE_H
#define SCOMM_MODULE_H

#include <stddef.h>

#include "config.h"
#include "scomm_int.h"

typedef struct scomm_module {
    const char          *name;    /* "core", "shm", "tcp", "kv", ... */
    const scomm_param_t *params;  /* this module's knobs, or NULL */
    size_t               nparams;

    /* A transport: its ops table (transport/tl.h). scomm_init starts every
     * transport SCOMM_TRANSPORTS allows, in list order (the first that
     * reaches a peer carries its messages); one with
     * SCOMM_TL_CAP_OWN_BOOTSTRAP only when the backend names it, alone. */
    const scomm_tl_ops_t *tl;
    /* The i-th name (from 0) this module answers to as scomm_init's
     * backend (opts.backend, SCOMM_BACKEND), NULL past the last; NULL:
     * none. */
    const char *(*backend_name)(size_t i);

    /* ---- lifecycle hooks (core/comm.c runs them) ---- */

    /* scomm_init, once the configuration is loaded and before any
     * transport starts: adjust w->cfg (presets). An error fails
     * scomm_init; its message is in scomm_last_error(). */
    scomm_status_t (*world_config)(scomm_world_t *w);
    /* scomm_init, once the world communicator exists (collective over it):
     * start what the module keeps per world or per process. An error
     * fails scomm_init with the message in comm's last error. */
    scomm_status_t (*world_up)(scomm_comm_t *comm);
    /* scomm_comm_split made child from parent (collective over child's
     * ranks; world lock held). On an error the child is released again
     * (comm_release of the modules before this one). */
    scomm_status_t (*comm_split)(scomm_comm_t *parent, scomm_comm_t *child);
    /* scomm_comm_destroy, before the world lock is taken: stop and join
     * threads, finish what may still wait on the communicator. */
    void (*comm_stop)(scomm_comm_t *comm);
    /* scomm_comm_destroy, world lock held: free what the module keeps on
     * the communicator. */
    void (*comm_release)(scomm_comm_t *comm);
    /* scomm_comm_destroy, after the lock: last says the world goes too. */
    void (*comm_gone)(scomm_comm_t *comm, int last);
    /* scomm_comm_abort, from any thread, no lock held. */
    void (*comm_abort)(scomm_comm_t *comm);
} scomm_module_t;

/* The one list, defined in src/api/modules.c. */
extern const scomm_module_t *const scomm_modules[];
extern const size_t scomm_nmodules;

#endif /* SCOMM_MODULE_H */
