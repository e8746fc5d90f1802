/*
 * p2p.c - the public point-to-point and request calls, and the barrier's
 * entry points.
 *
 * Each entry validates (comm, buffer, count x size overflow, dtype, peer,
 * tag) and names the bad argument before anything is queued, then runs
 * under the world lock. Requests of non-blocking collectives belong to
 * the overlap engine (src/overlap); the barrier itself is coll's
 * (coll/barrier.c). On a vendor communicator, point-to-point calls go to
 * the vendor's stream (src/backend) and their requests are the backend's
 * (SCOMM_REQ_VENDOR).
 */
#include <stdio.h>
#include <string.h>

#include "../backend/backend.h"
#include "../backend/ipc.h"
#include "../coll/coll.h"
#include "../core/scomm_int.h"
#include "../overlap/overlap.h"
#include "../telemetry/tm.h"

/* Validate a p2p call; on success *bytes_p is count * dtype size. */
static scomm_status_t scomm_p2p_check(scomm_comm_t *comm, const char *op,
                                      const void *buf, size_t count,
                                      scomm_dtype_t dtype, int32_t peer,
                                      int32_t tag, size_t *bytes_p)
{
    scomm_status_t status = scomm_comm_check(comm, op);
    size_t esize;

    if (status != SCOMM_OK) {
        return status;
    }
    esize = scomm_dtype_size(dtype);
    if (esize == 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: dtype %d is not a scomm_dtype_t", op,
                               (int)dtype);
    }
    if (scomm_mul_overflow(count, esize, bytes_p) ||
        (*bytes_p > (size_t)INT64_MAX)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: count %zu x %zu-byte %s overflows", op,
                               count, esize, scomm_dtype_name(dtype));
    }
    if ((buf == NULL) && (count > 0)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: buf is NULL with count %zu", op, count);
    }
    if ((peer < 0) || (peer >= comm->size)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: peer %d is out of range 0..%d", op,
                               (int)peer, comm->size - 1);
    }
    if ((tag < 0) || (tag > SCOMM_TAG_MAX)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: tag %d is out of range 0..%d", op,
                               (int)tag, SCOMM_TAG_MAX);
    }
    return SCOMM_OK;
}

/* *kind: buf's memory kind when it is device memory scomm stages
 * (src/backend/stage.c), else SCOMM_MEM_HOST. */
static scomm_status_t scomm_p2p_dev(scomm_comm_t *comm, const char *op,
                                    const void *buf, size_t bytes, int *kind)
{
    scomm_status_t status;

    *kind = SCOMM_MEM_HOST;
    if ((comm->dev_hint == SCOMM_MEM_ASCEND) ||
        (comm->dev_hint == SCOMM_MEM_MLU) || (comm->dev_hint == SCOMM_MEM_XPU)) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: %s device memory is not supported on a "
                               "native communicator", op,
                               scomm_mem_kind_name(
                                   (scomm_mem_kind_t)comm->dev_hint));
    }
    if ((buf == NULL) || (bytes == 0)) {
        return SCOMM_OK;
    }
    status = scomm_memkind_of(comm, op, buf, bytes, kind);
    if (!scomm_memkind_is_dev(*kind)) {
        *kind = SCOMM_MEM_HOST;
    }
    return status;
}

/* A send or receive of device memory is staged (a job; *wbuf_p the pinned
 * copy to post instead); host memory is posted as it is. A receive of
 * CUDA memory readies the CUDA IPC state its offers need. */
static scomm_status_t api_p2p_stage(scomm_comm_t *comm, const char *op,
                                    int is_send, const void *buf,
                                    size_t bytes, int kind, void **wbuf_p,
                                    scomm_stage_job_t **job_p)
{
    scomm_status_t status = SCOMM_OK;

    if (kind != SCOMM_MEM_HOST) {
        status = scomm_stage_p2p_post(comm, op, is_send, (void *)buf, bytes,
                                      wbuf_p, job_p);
    }
    if ((status == SCOMM_OK) && !is_send && (kind == SCOMM_MEM_CUDA)) {
        scomm_stage_p2p_ipc_ready(comm, op);
    }
    return status;
}

/* A staged call's job goes with its request (released with it, under the
 * world lock: src/backend/stage.c), or back if posting failed. A receive
 * of CUDA memory takes CUDA IPC offers (src/core/p2p.c). */
static void api_p2p_attach(scomm_stage_job_t *job, scomm_req_t *req,
                           int kind)
{
    if (job == NULL) {
        return;
    }
    if (req == NULL) {
        scomm_stage_job_release(NULL, job);
        return;
    }
    req->stage_job = job;
    req->stage_end = scomm_stage_p2p_end;
    if ((req->type == SCOMM_REQ_RECV) && (kind == SCOMM_MEM_CUDA)) {
        req->ipc_take = scomm_stage_p2p_take;
    }
}

/* The telemetry's algorithm of a point-to-point call: which way its bytes
 * went (docs/device.md). */
static const char *api_p2p_algo(int path)
{
    return (path == SCOMM_P2P_PATH_IPC) ? "cuda_ipc" : "p2p";
}

static scomm_status_t scomm_p2p_post(const void *buf, size_t count,
                                     scomm_dtype_t dtype, int32_t peer,
                                     int32_t tag, scomm_comm_t *comm,
                                     scomm_req_t **req_p, int is_send,
                                     const char *op)
{
    scomm_stage_job_t *job = NULL;
    void *wbuf = (void *)buf; /* what goes on the wire */
    scomm_status_t status;
    size_t bytes = 0;
    uint64_t tm_t0; /* telemetry (src/telemetry) */
    int kind = SCOMM_MEM_HOST;

    status = scomm_p2p_check(comm, op, buf, count, dtype, peer, tag, &bytes);
    if (status != SCOMM_OK) {
        return status;
    }
    if (req_p == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG, "%s: req_p is "
                               "NULL", op);
    }
    if (comm->vendor != NULL) {
        return scomm_backend_p2p(comm, op, is_send, (void *)buf, count,
                                 dtype, peer, req_p);
    }
    if (SCOMM_UNLIKELY(scomm_dev_maybe(comm))) {
        /* staged; a receive of CUDA memory takes offers too; an isend of
         * CUDA memory to a rank of this host above the eager limit is an
         * offer over CUDA IPC, counted in the metrics when it is over
         * (src/backend/ipc.c), or staged if none could be made */
        status = scomm_p2p_dev(comm, op, buf, bytes, &kind);
        if ((status == SCOMM_OK) && is_send && (kind == SCOMM_MEM_CUDA) &&
            scomm_ipc_p2p_eligible(comm, peer, bytes)) {
            status = scomm_ipc_p2p_isend(comm, op, buf, bytes, peer, tag,
                                         req_p);
            if ((status != SCOMM_OK) || (*req_p != NULL)) {
                return status;
            }
        }
        if (status == SCOMM_OK) {
            status = api_p2p_stage(comm, op, is_send, buf, bytes, kind,
                                   &wbuf, &job);
        }
        if (status != SCOMM_OK) {
            return status;
        }
    }
    pthread_mutex_lock(&comm->world->lock);
    tm_t0 = scomm_tm_begin(comm, is_send ? SCOMM_TM_OP_ISEND
                                         : SCOMM_TM_OP_IRECV);
    comm->cur_op = op;
    if (is_send) {
        status = scomm_p2p_isend(comm, peer, tag, wbuf, bytes, req_p);
    } else {
        status = scomm_p2p_irecv(comm, peer, tag, wbuf, bytes, req_p);
    }
    scomm_tm_op_end(comm, is_send ? SCOMM_TM_OP_ISEND : SCOMM_TM_OP_IRECV,
                    "p2p", bytes, peer, status, tm_t0);
    api_p2p_attach(job, (status == SCOMM_OK) ? *req_p : NULL, kind);
    pthread_mutex_unlock(&comm->world->lock);
    return status;
}

scomm_status_t scomm_isend(const void *buf, size_t count, scomm_dtype_t dtype,
                           int32_t peer, int32_t tag, scomm_comm_t *comm,
                           scomm_req_t **req_p)
{
    return scomm_p2p_post(buf, count, dtype, peer, tag, comm, req_p, 1,
                          "scomm_isend");
}

scomm_status_t scomm_irecv(void *buf, size_t count, scomm_dtype_t dtype,
                           int32_t peer, int32_t tag, scomm_comm_t *comm,
                           scomm_req_t **req_p)
{
    return scomm_p2p_post(buf, count, dtype, peer, tag, comm, req_p, 0,
                          "scomm_irecv");
}

static scomm_status_t scomm_p2p_blocking(const void *buf, size_t count,
                                         scomm_dtype_t dtype, int32_t peer,
                                         int32_t tag, scomm_comm_t *comm,
                                         int is_send, const char *op)
{
    scomm_stage_job_t *job = NULL;
    void *wbuf = (void *)buf; /* what goes on the wire */
    scomm_req_t *req = NULL;
    scomm_status_t status;
    size_t bytes = 0;
    uint64_t tm_t0; /* telemetry (src/telemetry) */
    int kind = SCOMM_MEM_HOST, path = SCOMM_P2P_PATH_WIRE;

    status = scomm_p2p_check(comm, op, buf, count, dtype, peer, tag, &bytes);
    if (status != SCOMM_OK) {
        return status;
    }
    if (comm->vendor != NULL) {
        return scomm_backend_p2p(comm, op, is_send, (void *)buf, count,
                                 dtype, peer, NULL);
    }
    if (SCOMM_UNLIKELY(scomm_dev_maybe(comm))) {
        status = scomm_p2p_dev(comm, op, buf, bytes, &kind);
        if (status != SCOMM_OK) {
            return status;
        }
        if (is_send && (kind == SCOMM_MEM_CUDA) &&
            scomm_ipc_p2p_eligible(comm, peer, bytes)) {
            /* to a rank of this host: offered over CUDA IPC, staged if
             * declined (src/backend/ipc.c) */
            pthread_mutex_lock(&comm->world->lock);
            tm_t0 = scomm_tm_begin(comm, SCOMM_TM_OP_SEND);
            pthread_mutex_unlock(&comm->world->lock);
            status = scomm_ipc_p2p_send(comm, op, buf, bytes, peer, tag,
                                        &path);
            pthread_mutex_lock(&comm->world->lock);
            scomm_tm_op_end(comm, SCOMM_TM_OP_SEND, api_p2p_algo(path),
                            bytes, peer, status, tm_t0);
            pthread_mutex_unlock(&comm->world->lock);
            return status;
        }
        /* staged like scomm_isend/irecv, then waited for */
        status = api_p2p_stage(comm, op, is_send, buf, bytes, kind, &wbuf,
                               &job);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    pthread_mutex_lock(&comm->world->lock);
    tm_t0 = scomm_tm_begin(comm, is_send ? SCOMM_TM_OP_SEND
                                         : SCOMM_TM_OP_RECV);
    comm->cur_op = op;
    if (is_send) {
        status = scomm_p2p_isend(comm, peer, tag, wbuf, bytes, &req);
    } else {
        status = scomm_p2p_irecv(comm, peer, tag, wbuf, bytes, &req);
    }
    api_p2p_attach(job, (status == SCOMM_OK) ? req : NULL, kind);
    if (status == SCOMM_OK) {
        status = scomm_p2p_wait_path(comm, req, &path);
    }
    scomm_tm_op_end(comm, is_send ? SCOMM_TM_OP_SEND : SCOMM_TM_OP_RECV,
                    api_p2p_algo(path), bytes, peer, status, tm_t0);
    pthread_mutex_unlock(&comm->world->lock);
    return status;
}

scomm_status_t scomm_send(const void *buf, size_t count, scomm_dtype_t dtype,
                          int32_t peer, int32_t tag, scomm_comm_t *comm)
{
    return scomm_p2p_blocking(buf, count, dtype, peer, tag, comm, 1,
                              "scomm_send");
}

scomm_status_t scomm_recv(void *buf, size_t count, scomm_dtype_t dtype,
                          int32_t peer, int32_t tag, scomm_comm_t *comm)
{
    return scomm_p2p_blocking(buf, count, dtype, peer, tag, comm, 0,
                              "scomm_recv");
}

static scomm_status_t scomm_req_check(scomm_req_t *req, const char *op)
{
    if (req == NULL) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG, "%s: req is NULL",
                               op);
    }
    if ((req->comm == NULL) || (req->comm->magic != SCOMM_COMM_MAGIC)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "%s: the request's communicator was destroyed",
                               op);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_test(scomm_req_t *req, int32_t *done)
{
    scomm_status_t status = scomm_req_check(req, "scomm_test");
    scomm_world_t *w;
    int fault;

    if (status != SCOMM_OK) {
        return status;
    }
    if (done == NULL) {
        return scomm_set_error(req->comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_test: done is NULL");
    }
    if (req->type == SCOMM_REQ_COLL) {
        return scomm_ovl_test(req, done); /* never takes the world lock */
    }
    if (req->type == SCOMM_REQ_VENDOR) {
        return scomm_backend_req_test(req, done); /* src/backend */
    }
    w = req->world;
    pthread_mutex_lock(&w->lock);
    if (!atomic_load(&req->done)) {
        scomm_world_progress(w);
    }
    if (atomic_load(&req->done)) {
        status = req->status;
        scomm_req_release(req);
        *done = 1;
    } else {
        fault = atomic_load(&w->fault.status);
        if (fault != 0) {
            status = scomm_set_error(req->comm, (scomm_status_t)fault, "%s",
                                     w->fault.msg);
            if (req->type == SCOMM_REQ_RECV) {
                scomm_list_del(&req->list);
            }
            scomm_req_release(req);
            *done = 1;
        } else {
            *done  = 0;
            status = SCOMM_OK;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return status;
}

scomm_status_t scomm_wait(scomm_req_t *req)
{
    if (req == NULL) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_wait: req is NULL");
    }
    return scomm_wait_all(1, &req);
}

scomm_status_t scomm_wait_all(size_t n, scomm_req_t **reqs)
{
    scomm_comm_t *comm = NULL;
    scomm_status_t status, cstatus = SCOMM_OK;
    size_t i;

    if ((reqs == NULL) && (n > 0)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_wait_all: reqs is NULL");
    }
    if (n > INT32_MAX) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_wait_all: n %zu is too large", n);
    }
    for (i = 0; i < n; i++) {
        if (reqs[i] == NULL) {
            continue;
        }
        status = scomm_req_check(reqs[i], "scomm_wait");
        if (status != SCOMM_OK) {
            return status;
        }
        if (comm == NULL) {
            comm = reqs[i]->comm;
        } else if (reqs[i]->world != comm->world) {
            return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE,
                                   "scomm_wait_all: requests of unrelated "
                                   "communicators");
        }
    }
    if (comm == NULL) {
        return SCOMM_OK;
    }
    /* Collective requests first (src/overlap), without the world lock;
     * what the progress thread does also progresses the p2p requests. */
    for (i = 0; i < n; i++) {
        if ((reqs[i] != NULL) && (reqs[i]->type == SCOMM_REQ_VENDOR)) {
            status  = scomm_backend_req_wait(reqs[i]); /* releases it */
            reqs[i] = NULL;
            if (cstatus == SCOMM_OK) {
                cstatus = status;
            }
            continue;
        }
        if ((reqs[i] != NULL) && (reqs[i]->type == SCOMM_REQ_COLL)) {
            status  = scomm_ovl_wait(reqs[i]);
            reqs[i] = NULL;
            if (cstatus == SCOMM_OK) {
                cstatus = status;
            }
        }
    }
    pthread_mutex_lock(&comm->world->lock);
    comm->cur_op = "scomm_wait";
    status       = scomm_p2p_waitall(comm, reqs, (int)n);
    pthread_mutex_unlock(&comm->world->lock);
    return (cstatus != SCOMM_OK) ? cstatus : status;
}

scomm_status_t scomm_barrier(scomm_comm_t *comm)
{
    scomm_status_t status = scomm_comm_check(comm, "scomm_barrier");

    if (status != SCOMM_OK) {
        return status;
    }
    if (SCOMM_UNLIKELY(scomm_ovl_route(comm))) {
        return scomm_ovl_barrier(comm, NULL); /* keeps issue order */
    }
    return scomm_barrier_run(comm);
}

scomm_status_t scomm_ibarrier(scomm_comm_t *comm, scomm_req_t **req_p)
{
    scomm_status_t status = scomm_comm_check(comm, "scomm_ibarrier");

    if (status != SCOMM_OK) {
        return status;
    }
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_ibarrier");
    }
    return scomm_ovl_barrier(comm, req_p);
}
