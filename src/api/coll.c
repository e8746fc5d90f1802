/*
 * coll.c - the public collective calls (scomm.h): each checks its
 * arguments (coll/check.c: scomm_coll_prep_*), then runs the call on this
 * thread through the collective executor (coll/exec.c) or, when it is
 * non-blocking, inside a group, or must keep its place behind queued
 * non-blocking work, hands it to the overlap engine (src/overlap), whose
 * thread runs it through the same executor. So a blocking call goes
 * api -> coll, a non-blocking one api -> overlap -> coll: always down.
 *
 * Invariants:
 *  1. Blocking and non-blocking forms run the same checks, so errors and
 *     messages are the same, naming the call that was made.
 *  2. An argument error returns before anything is queued or locked; a
 *     non-blocking form with req_p NULL fails before the checks.
 */
#include <stdio.h>
#include <string.h>

#include "../backend/backend.h"
#include "../coll/coll.h"
#include "../overlap/overlap.h"

/* Device buffers on a native communicator (src/backend/stage.c): a
 * non-blocking or grouped call is staged by a job whose hooks the engine
 * runs; a blocking call through the engine runs staged whole (and
 * pipelined), keeping its place in the order. */
static const scomm_ovl_hook_t api_stage_job_hook = {
    .ready   = scomm_stage_job_ready,
    .done    = scomm_stage_job_done,
    .reap    = scomm_stage_job_reap,
    .release = scomm_stage_job_release,
};

static const scomm_ovl_hook_t api_stage_run_hook = {
    .run = scomm_stage_coll,
};

static scomm_status_t api_coll_staged(scomm_comm_t *comm, const char *name,
                                      const scomm_coll_args_t *a,
                                      scomm_req_t **req_p)
{
    scomm_stage_job_t *job;
    scomm_coll_args_t c;
    scomm_status_t status;

    if ((req_p == NULL) && !scomm_ovl_in_group()) {
        return scomm_ovl_route(comm)
                   ? scomm_ovl_post_hooked(comm, name, a, NULL,
                                           &api_stage_run_hook, NULL)
                   : scomm_stage_coll(comm, name, a);
    }
    status = scomm_stage_coll_post(comm, name, a, &c, &job);
    if (status != SCOMM_OK) {
        return status;
    }
    return scomm_ovl_post_hooked(comm, name, &c, req_p, &api_stage_job_hook,
                                 job);
}

/* Run a validated call now, or hand it to the overlap engine (src/overlap)
 * when it is non-blocking, inside a group, or the communicator has
 * non-blocking operations that must keep their place in the order; a
 * vendor communicator's call goes to its stream (src/backend). */
static scomm_status_t api_coll_post(scomm_comm_t *comm, const char *name,
                                    const scomm_coll_args_t *a,
                                    scomm_req_t **req_p)
{
    scomm_status_t status;
    int dev = 0;

    if (comm->vendor != NULL) {
        /* stream-ordered: blocking, non-blocking and grouped calls alike
         * are enqueued now (src/backend) */
        return scomm_backend_post(comm, name, a, req_p);
    }
    if (SCOMM_UNLIKELY(scomm_dev_maybe(comm))) {
        /* device buffers (src/backend/stage.c) */
        status = scomm_stage_coll_kind(comm, name, a, &dev);
        if (status != SCOMM_OK) {
            return status;
        }
        if (dev) {
            return api_coll_staged(comm, name, a, req_p);
        }
    }
    if (SCOMM_UNLIKELY((req_p != NULL) || scomm_ovl_route(comm))) {
        return scomm_ovl_post(comm, name, a, req_p);
    }
    return scomm_coll_run(comm, name, a);
}

/* ---- blocking and non-blocking forms ------------------------------------- */

scomm_status_t scomm_all_reduce(const void *sendbuf, void *recvbuf,
                                size_t count, scomm_dtype_t dtype,
                                scomm_redop_t op, scomm_comm_t *comm)
{
    static const char name[] = "scomm_all_reduce";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_all_reduce(&a, name, sendbuf, recvbuf, count,
                                        dtype, op, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_iall_reduce(const void *sendbuf, void *recvbuf,
                                 size_t count, scomm_dtype_t dtype,
                                 scomm_redop_t op, scomm_comm_t *comm,
                                 scomm_req_t **req_p)
{
    static const char name[] = "scomm_iall_reduce";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_all_reduce(&a, name, sendbuf, recvbuf, count,
                                        dtype, op, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_all_gather(const void *sendbuf, void *recvbuf,
                                size_t sendcount, scomm_dtype_t dtype,
                                scomm_comm_t *comm)
{
    static const char name[] = "scomm_all_gather";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_all_gather(&a, name, sendbuf, recvbuf, sendcount,
                                        dtype, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_iall_gather(const void *sendbuf, void *recvbuf,
                                 size_t sendcount, scomm_dtype_t dtype,
                                 scomm_comm_t *comm, scomm_req_t **req_p)
{
    static const char name[] = "scomm_iall_gather";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_all_gather(&a, name, sendbuf, recvbuf, sendcount,
                                        dtype, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_reduce_scatter(const void *sendbuf, void *recvbuf,
                                    size_t recvcount, scomm_dtype_t dtype,
                                    scomm_redop_t op, scomm_comm_t *comm)
{
    static const char name[] = "scomm_reduce_scatter";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_reduce_scatter(&a, name, sendbuf, recvbuf,
                                            recvcount, dtype, op, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_ireduce_scatter(const void *sendbuf, void *recvbuf,
                                     size_t recvcount, scomm_dtype_t dtype,
                                     scomm_redop_t op, scomm_comm_t *comm,
                                     scomm_req_t **req_p)
{
    static const char name[] = "scomm_ireduce_scatter";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_reduce_scatter(&a, name, sendbuf, recvbuf,
                                            recvcount, dtype, op, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_broadcast(void *buf, size_t count, scomm_dtype_t dtype,
                               int32_t root, scomm_comm_t *comm)
{
    static const char name[] = "scomm_broadcast";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_broadcast(&a, name, buf, count, dtype, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_ibroadcast(void *buf, size_t count, scomm_dtype_t dtype,
                                int32_t root, scomm_comm_t *comm,
                                scomm_req_t **req_p)
{
    static const char name[] = "scomm_ibroadcast";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_broadcast(&a, name, buf, count, dtype, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_reduce(const void *sendbuf, void *recvbuf, size_t count,
                            scomm_dtype_t dtype, scomm_redop_t op, int32_t root,
                            scomm_comm_t *comm)
{
    static const char name[] = "scomm_reduce";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_reduce(&a, name, sendbuf, recvbuf, count, dtype,
                                    op, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_ireduce(const void *sendbuf, void *recvbuf, size_t count,
                             scomm_dtype_t dtype, scomm_redop_t op,
                             int32_t root, scomm_comm_t *comm,
                             scomm_req_t **req_p)
{
    static const char name[] = "scomm_ireduce";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_reduce(&a, name, sendbuf, recvbuf, count, dtype,
                                    op, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_all_to_all(const void *sendbuf, void *recvbuf,
                                size_t count_per_peer, scomm_dtype_t dtype,
                                scomm_comm_t *comm)
{
    static const char name[] = "scomm_all_to_all";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_all_to_all(&a, name, sendbuf, recvbuf,
                                        count_per_peer, dtype, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_iall_to_all(const void *sendbuf, void *recvbuf,
                                 size_t count_per_peer, scomm_dtype_t dtype,
                                 scomm_comm_t *comm, scomm_req_t **req_p)
{
    static const char name[] = "scomm_iall_to_all";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_all_to_all(&a, name, sendbuf, recvbuf,
                                        count_per_peer, dtype, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_all_to_allv(const void *sendbuf, const size_t *sendcounts,
                                 const size_t *sdispls, void *recvbuf,
                                 const size_t *recvcounts,
                                 const size_t *rdispls, scomm_dtype_t dtype,
                                 scomm_comm_t *comm)
{
    static const char name[] = "scomm_all_to_allv";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_all_to_allv(&a, name, sendbuf, sendcounts,
                                         sdispls, recvbuf, recvcounts,
                                         rdispls, dtype, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_iall_to_allv(const void *sendbuf, const size_t *sendcounts,
                                  const size_t *sdispls, void *recvbuf,
                                  const size_t *recvcounts,
                                  const size_t *rdispls, scomm_dtype_t dtype,
                                  scomm_comm_t *comm, scomm_req_t **req_p)
{
    static const char name[] = "scomm_iall_to_allv";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_all_to_allv(&a, name, sendbuf, sendcounts,
                                         sdispls, recvbuf, recvcounts,
                                         rdispls, dtype, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_gather(const void *sendbuf, void *recvbuf,
                            size_t sendcount, scomm_dtype_t dtype, int32_t root,
                            scomm_comm_t *comm)
{
    static const char name[] = "scomm_gather";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_gather(&a, name, sendbuf, recvbuf, sendcount,
                                    dtype, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_igather(const void *sendbuf, void *recvbuf,
                             size_t sendcount, scomm_dtype_t dtype,
                             int32_t root, scomm_comm_t *comm,
                             scomm_req_t **req_p)
{
    static const char name[] = "scomm_igather";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_gather(&a, name, sendbuf, recvbuf, sendcount,
                                    dtype, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_scatter(const void *sendbuf, void *recvbuf,
                             size_t recvcount, scomm_dtype_t dtype,
                             int32_t root, scomm_comm_t *comm)
{
    static const char name[] = "scomm_scatter";
    scomm_coll_args_t a;
    scomm_status_t status;

    status = scomm_coll_prep_scatter(&a, name, sendbuf, recvbuf, recvcount,
                                     dtype, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, NULL);
}

scomm_status_t scomm_iscatter(const void *sendbuf, void *recvbuf,
                              size_t recvcount, scomm_dtype_t dtype,
                              int32_t root, scomm_comm_t *comm,
                              scomm_req_t **req_p)
{
    static const char name[] = "scomm_iscatter";
    scomm_coll_args_t a;
    scomm_status_t status;

    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, name);
    }
    status = scomm_coll_prep_scatter(&a, name, sendbuf, recvbuf, recvcount,
                                     dtype, root, comm);
    return (status != SCOMM_OK) ? status
                                : api_coll_post(comm, name, &a, req_p);
}

scomm_status_t scomm_last_selection(const scomm_comm_t *comm,
                                    scomm_coll_record_t *out)
{
    scomm_comm_t *c = (scomm_comm_t *)comm;

    if ((c != NULL) && (c->magic == SCOMM_COMM_DEAD)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "scomm_last_selection: the communicator was "
                               "destroyed");
    }
    if ((c == NULL) || (c->magic != SCOMM_COMM_MAGIC)) {
        return scomm_comm_check(c, "scomm_last_selection");
    }
    if (out == NULL) {
        return scomm_set_error(c, SCOMM_ERR_INVALID_ARG,
                               "scomm_last_selection: out is NULL");
    }
    pthread_mutex_lock(&c->world->lock);
    if (c->last_sel.algo[0] == '\0') {
        memset(out, 0, sizeof(*out));
        snprintf(out->algo, sizeof(out->algo), "none");
        snprintf(out->rule_id, sizeof(out->rule_id), "none");
        snprintf(out->reason, sizeof(out->reason),
                 "no collective has run on this communicator");
    } else {
        *out = c->last_sel;
    }
    pthread_mutex_unlock(&c->world->lock);
    return SCOMM_OK;
}
