/*
 * rdma_fsm.c - the RC queue pair state machine (diagram and invariants in
 * rdma_fsm.h). Pure code, compiled in every build.
 */
#include <stdio.h>
#include <string.h>

#include "rdma_fsm.h"

static const char *const fsm_state_names[SCOMM_RDMA_QP_NSTATES] = {
    [SCOMM_RDMA_QP_RESET]  = "RESET",
    [SCOMM_RDMA_QP_INIT]   = "INIT",
    [SCOMM_RDMA_QP_RTR]    = "RTR",
    [SCOMM_RDMA_QP_RTS]    = "RTS",
    [SCOMM_RDMA_QP_ERROR]  = "ERROR",
    [SCOMM_RDMA_QP_CLOSED] = "CLOSED",
};

static const char *const fsm_event_names[SCOMM_RDMA_EV_NEVENTS] = {
    [SCOMM_RDMA_EV_TO_INIT] = "to_init",
    [SCOMM_RDMA_EV_TO_RTR]  = "to_rtr",
    [SCOMM_RDMA_EV_TO_RTS]  = "to_rts",
    [SCOMM_RDMA_EV_ERROR]   = "error",
    [SCOMM_RDMA_EV_RESET]   = "reset",
    [SCOMM_RDMA_EV_CLOSE]   = "close",
};

const char *scomm_rdma_fsm_state_name(int state)
{
    if ((state < 0) || (state >= SCOMM_RDMA_QP_NSTATES)) {
        return "?";
    }
    return fsm_state_names[state];
}

const char *scomm_rdma_fsm_event_name(int ev)
{
    if ((ev < 0) || (ev >= SCOMM_RDMA_EV_NEVENTS)) {
        return "?";
    }
    return fsm_event_names[ev];
}

void scomm_rdma_fsm_init(scomm_rdma_fsm_t *f, int peer)
{
    memset(f, 0, sizeof(*f));
    f->state = SCOMM_RDMA_QP_RESET;
    f->peer  = peer;
}

static int fsm_illegal(const scomm_rdma_fsm_t *f, int ev, char *why,
                       size_t whylen)
{
    if (whylen > 0) {
        snprintf(why, whylen, "queue pair to rank %d: %s is not allowed "
                 "in state %s", f->peer, scomm_rdma_fsm_event_name(ev),
                 scomm_rdma_fsm_state_name(f->state));
    }
    return -1;
}

int scomm_rdma_fsm_next(const scomm_rdma_fsm_t *f, int ev,
                        const scomm_rdma_qpinfo_t *remote, char *why,
                        size_t whylen)
{
    char r[96];

    if ((f->state < 0) || (f->state >= SCOMM_RDMA_QP_NSTATES) ||
        (ev < 0) || (ev >= SCOMM_RDMA_EV_NEVENTS)) {
        return fsm_illegal(f, ev, why, whylen);
    }
    if (f->state == SCOMM_RDMA_QP_CLOSED) {
        return fsm_illegal(f, ev, why, whylen);
    }
    switch (ev) {
    case SCOMM_RDMA_EV_TO_INIT:
        return (f->state == SCOMM_RDMA_QP_RESET)
                   ? SCOMM_RDMA_QP_INIT
                   : fsm_illegal(f, ev, why, whylen);
    case SCOMM_RDMA_EV_TO_RTR:
        if (f->state != SCOMM_RDMA_QP_INIT) {
            return fsm_illegal(f, ev, why, whylen);
        }
        if (remote == NULL) {
            if (whylen > 0) {
                snprintf(why, whylen, "queue pair to rank %d: to_rtr "
                         "without the peer's description", f->peer);
            }
            return -1;
        }
        if (scomm_rdma_qpinfo_check(remote, r, sizeof(r)) != 0) {
            if (whylen > 0) {
                snprintf(why, whylen, "queue pair to rank %d: %s", f->peer,
                         r);
            }
            return -1;
        }
        return SCOMM_RDMA_QP_RTR;
    case SCOMM_RDMA_EV_TO_RTS:
        return (f->state == SCOMM_RDMA_QP_RTR)
                   ? SCOMM_RDMA_QP_RTS
                   : fsm_illegal(f, ev, why, whylen);
    case SCOMM_RDMA_EV_ERROR:
        return SCOMM_RDMA_QP_ERROR;
    case SCOMM_RDMA_EV_RESET:
        return (f->state != SCOMM_RDMA_QP_RESET)
                   ? SCOMM_RDMA_QP_RESET
                   : fsm_illegal(f, ev, why, whylen);
    case SCOMM_RDMA_EV_CLOSE:
        return SCOMM_RDMA_QP_CLOSED;
    default:
        return fsm_illegal(f, ev, why, whylen);
    }
}

int scomm_rdma_fsm_apply(scomm_rdma_fsm_t *f, int ev,
                         const scomm_rdma_qpinfo_t *remote,
                         const char *detail, char *why, size_t whylen)
{
    int next = scomm_rdma_fsm_next(f, ev, remote, why, whylen);

    if (next < 0) {
        return -1;
    }
    switch (ev) {
    case SCOMM_RDMA_EV_TO_RTR:
        f->remote      = *remote;
        f->have_remote = 1;
        break;
    case SCOMM_RDMA_EV_ERROR:
        f->nerrors++;
        if ((f->state != SCOMM_RDMA_QP_ERROR) || (f->err[0] == '\0')) {
            snprintf(f->err, sizeof(f->err), "%s",
                     (detail != NULL) ? detail : "queue pair error");
        }
        break;
    case SCOMM_RDMA_EV_RESET:
        f->have_remote = 0;
        f->err[0]      = '\0';
        break;
    default:
        break;
    }
    f->state = next;
    return next;
}

int scomm_rdma_fsm_can_send(const scomm_rdma_fsm_t *f)
{
    return f->state == SCOMM_RDMA_QP_RTS;
}

int scomm_rdma_fsm_can_post_recv(const scomm_rdma_fsm_t *f)
{
    return (f->state == SCOMM_RDMA_QP_INIT) ||
           (f->state == SCOMM_RDMA_QP_RTR) ||
           (f->state == SCOMM_RDMA_QP_RTS);
}
