/*
 * coll_util.c - request and memory helpers shared by the collective
 * algorithms.
 *
 * Invariants:
 *  1. Every helper that waits releases what it waited for and clears the
 *     caller's pointer, so an array of requests can be handed to
 *     scomm_coll_abandon() at any point and only live entries are touched.
 *  2. scomm_coll_abandon() fails the world before waiting: a wait on a
 *     faulted world returns at once, so abandoning never blocks.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"

scomm_status_t scomm_coll_wait1(scomm_comm_t *comm, scomm_req_t **req)
{
    if (*req == NULL) {
        return SCOMM_OK;
    }
    return scomm_p2p_waitall(comm, req, 1);
}

scomm_status_t scomm_coll_waitn(scomm_comm_t *comm, scomm_req_t **reqs,
                                size_t n)
{
    scomm_status_t status = SCOMM_OK, s;
    size_t done = 0, k;

    while (done < n) {
        k = SCOMM_MIN(n - done, (size_t)INT_MAX);
        s = scomm_p2p_waitall(comm, reqs + done, (int)k);
        if (status == SCOMM_OK) {
            status = s;
        }
        done += k;
    }
    return status;
}

scomm_status_t scomm_coll_abandon(scomm_comm_t *comm, scomm_status_t status,
                                  scomm_req_t **reqs, size_t n)
{
    char msg[SCOMM_ERRMSG_MAX];
    scomm_world_t *w = comm->world;

    memcpy(msg, comm->last_error, sizeof(msg));
    msg[sizeof(msg) - 1] = '\0';
    if (atomic_load(&w->fault.status) == 0) {
        scomm_world_fail(w, status, w->rank,
                         "%s (op #%llu) failed on rank %d: %s", comm->cur_op,
                         (unsigned long long)comm->op_seq, comm->rank, msg);
    }
    if ((reqs != NULL) && (n > 0)) {
        (void)scomm_coll_waitn(comm, reqs, n);
    }
    return scomm_set_error(comm, status, "%s", msg);
}

void *scomm_coll_malloc(scomm_comm_t *comm, size_t bytes, const char *what)
{
    void *p = malloc((bytes > 0) ? bytes : 1);

    if (p == NULL) {
        scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                        "%s: out of memory for %zu bytes of %s", comm->cur_op,
                        bytes, what);
    }
    return p;
}
