/*
 * barrier.c - the barrier: dissemination, ceil(log2 n) rounds of zero-byte
 * messages on SCOMM_TAG_BARRIER. The public scomm_barrier (src/api/p2p.c)
 * runs it here or, to keep issue order behind queued non-blocking work,
 * through the overlap engine, whose thread calls it too.
 *
 * Invariants:
 *  1. Round k sends to rank + 2^k and receives from rank - 2^k, so after
 *     ceil(log2 n) rounds every rank has heard, indirectly, from all.
 *  2. It counts as a collective: op_seq advances and last_sel records
 *     "dissemination", as for any other.
 */
#include <stdio.h>

#include "../telemetry/tm.h"
#include "coll.h"

/* World lock not held; takes it. */
scomm_status_t scomm_barrier_run(scomm_comm_t *comm)
{
    scomm_status_t status = SCOMM_OK;
    int k;
    uint64_t tm_t0; /* telemetry (src/telemetry) */

    pthread_mutex_lock(&comm->world->lock);
    tm_t0 = scomm_tm_begin(comm, SCOMM_TM_OP_BARRIER);
    comm->cur_op = "scomm_barrier";
    comm->op_seq++;
    snprintf(comm->last_sel.algo, sizeof(comm->last_sel.algo),
             "dissemination");
    snprintf(comm->last_sel.rule_id, sizeof(comm->last_sel.rule_id),
             "barrier.dissemination");
    snprintf(comm->last_sel.reason, sizeof(comm->last_sel.reason),
             "the only barrier: ceil(log2 %d) rounds of zero-byte messages",
             comm->size);
    for (k = 1; (k < comm->size) && (status == SCOMM_OK); k <<= 1) {
        status = scomm_p2p_sendrecv(comm, NULL, 0, (comm->rank + k) % comm->size,
                                    NULL, 0,
                                    (comm->rank - k + comm->size) % comm->size,
                                    SCOMM_TAG_BARRIER);
    }
    scomm_tm_op_end(comm, SCOMM_TM_OP_BARRIER, "dissemination", 0, -1,
                    status, tm_t0);
    pthread_mutex_unlock(&comm->world->lock);
    return status;
}
