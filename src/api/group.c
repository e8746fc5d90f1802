/*
 * group.c - scomm_group_start/end: one group on the calling thread, for
 * both halves that group calls: the overlap engine (native communicators:
 * queue, fuse, launch at the end; src/overlap) and the vendor backends
 * (each vendor's own group call, one launch at the end; src/backend).
 *
 * Invariants:
 *  1. The two halves nest together: the backend's depth follows the
 *     engine's, which alone refuses a group too deep.
 *  2. At the end the vendors' groups launch first (nothing in them waits),
 *     then the engine runs and waits for its deferred blocking calls; the
 *     first error of the two is returned.
 */
#include "../backend/backend.h"
#include "../overlap/overlap.h"

scomm_status_t scomm_group_start(void)
{
    scomm_status_t status = scomm_ovl_group_start();

    if (status == SCOMM_OK) {
        scomm_backend_group_start();
    }
    return status;
}

scomm_status_t scomm_group_end(void)
{
    scomm_status_t vendor = scomm_backend_group_end();
    scomm_status_t status = scomm_ovl_group_end();

    return (vendor != SCOMM_OK) ? vendor : status;
}
