/*
 * rdma_fsm.h - the connection state machine of one RC queue pair, as pure
 * functions over a small struct, so every transition (legal or not) is
 * unit-tested without an RDMA device (tests/unit/test_rdma_fsm.c).
 *
 *            to_init          to_rtr(remote)        to_rts
 *   RESET ------------> INIT --------------> RTR ----------> RTS
 *     ^                  |                    |               |
 *     |     reset        |       error        |     error     |
 *     +------------------+----> ERROR <-------+---------------+
 *     |                            |   (a failed modify, a completion
 *     +------------ reset ---------+    with an error status, an async
 *                                       QP event: the peer is lost)
 *   any state but CLOSED ---- close ----> CLOSED (terminal)
 *
 * rdma.c asks scomm_rdma_fsm_next() whether a transition is legal, calls
 * ibv_modify_qp() with the attributes of that step, then commits with
 * scomm_rdma_fsm_apply(); a failed modify applies ERROR instead.
 *
 * Invariants:
 *  1. An illegal event leaves the struct unchanged and returns -1 with a
 *     reason naming the state and the event.
 *  2. to_rtr is legal only with a remote description that passes
 *     scomm_rdma_qpinfo_check(); it is stored for the later steps.
 *  3. Only RTS may post sends; INIT, RTR and RTS may post receives (the
 *     receive queue is filled before the peer can send).
 *  4. ERROR is absorbing for data: from ERROR only reset and close are
 *     legal (error again is accepted and counted, as completions of a
 *     broken QP keep arriving with errors).
 */
#ifndef SCOMM_RDMA_FSM_H
#define SCOMM_RDMA_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "rdma_wire.h"

typedef enum {
    SCOMM_RDMA_QP_RESET  = 0,
    SCOMM_RDMA_QP_INIT   = 1,
    SCOMM_RDMA_QP_RTR    = 2,
    SCOMM_RDMA_QP_RTS    = 3,
    SCOMM_RDMA_QP_ERROR  = 4,
    SCOMM_RDMA_QP_CLOSED = 5,
    SCOMM_RDMA_QP_NSTATES
} scomm_rdma_qp_state_t;

typedef enum {
    SCOMM_RDMA_EV_TO_INIT = 0,
    SCOMM_RDMA_EV_TO_RTR  = 1,
    SCOMM_RDMA_EV_TO_RTS  = 2,
    SCOMM_RDMA_EV_ERROR   = 3,
    SCOMM_RDMA_EV_RESET   = 4,
    SCOMM_RDMA_EV_CLOSE   = 5,
    SCOMM_RDMA_EV_NEVENTS
} scomm_rdma_qp_event_t;

typedef struct scomm_rdma_fsm {
    int                 state;      /* scomm_rdma_qp_state_t */
    int                 peer;       /* world rank, for messages */
    int                 have_remote;
    scomm_rdma_qpinfo_t remote;     /* valid once have_remote */
    uint32_t            nerrors;    /* ERROR events seen */
    char                err[160];   /* why it entered ERROR */
} scomm_rdma_fsm_t;

void scomm_rdma_fsm_init(scomm_rdma_fsm_t *f, int peer);

/* The state ev leads to from f's state, or -1 (illegal, reason in why).
 * remote is needed (and checked) for SCOMM_RDMA_EV_TO_RTR only. */
int scomm_rdma_fsm_next(const scomm_rdma_fsm_t *f, int ev,
                        const scomm_rdma_qpinfo_t *remote, char *why,
                        size_t whylen);

/* scomm_rdma_fsm_next, then commit. For ERROR, detail (may be NULL) is
 * kept as the reason the QP failed. Returns the new state or -1. */
int scomm_rdma_fsm_apply(scomm_rdma_fsm_t *f, int ev,
                         const scomm_rdma_qpinfo_t *remote,
                         const char *detail, char *why, size_t whylen);

int scomm_rdma_fsm_can_send(const scomm_rdma_fsm_t *f);
int scomm_rdma_fsm_can_post_recv(const scomm_rdma_fsm_t *f);
const char *scomm_rdma_fsm_state_name(int state);
const char *scomm_rdma_fsm_event_name(int ev);

#endif /* SCOMM_RDMA_FSM_H */
