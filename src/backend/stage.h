/*
 * stage.h - device buffers on native communicators (internal): the kind of
 * each buffer (memkind.c) and the staging of collectives and blocking
 * point-to-point calls through page-locked host memory (stage.c). The API
 * layer (src/api/coll.c, p2p.c) asks scomm_dev_any() first; only a call
 * with a device buffer goes further.
 *
 * Invariants:
 *  1. With no device runtime in the process and no hint, scomm_dev_any()
 *     is one atomic load: host buffers cost nothing more.
 *  2. A kind scomm cannot copy (Ascend, MLU, XPU by hint; a runtime
 *     without the memory calls) is SCOMM_ERR_UNSUPPORTED naming it, before
 *     anything moved.
 *  3. Staged calls are stream-ordered: the internal stream waits for an
 *     event recorded on the caller's stream before its first copy, and the
 *     caller's stream waits for an event after the last copy back; the
 *     host waits only for input it must put on the wire (a native
 *     collective runs on host threads), never for the copies back.
 *  4. A non-blocking or grouped call (and every point-to-point call but a
 *     blocking send offered over CUDA IPC, ipc.c) owns a job: a slot of
 *     pinned memory and events of its own, taken when the call is made,
 *     its copies in enqueued then. A send waits there for
 *     its copy in (the wire takes it at once); a collective's executor
 *     waits for it (scomm_stage_job_ready), never the caller. An isend
 *     offered over CUDA IPC takes its slot at the call too, but enqueues
 *     its copy in only if declined, from the progress, and polls it
 *     there (scomm_stage_p2p_copy_query), never waits.
 *  5. The copies back run only after the wire succeeded: a collective's
 *     on the executor (scomm_stage_job_done), a receive's when its request
 *     is released (scomm_stage_p2p_end, in scomm_wait/scomm_test), only the
 *     bytes received; the caller's stream waits for them then
 *     (scomm_stage_job_reap), the stream the call was made on.
 *  6. A slot goes back to its pool once its job is released, and is used
 *     again only after the last event recorded after a copy through it.
 */
#ifndef SCOMM_STAGE_H
#define SCOMM_STAGE_H

#include <stdatomic.h>
#include <stddef.h>

#include "../coll/coll.h"
#include "../core/scomm_int.h"

/* A runtime that can tell device memory apart (set by the probe). */
extern _Atomic(const void *) scomm_memkind_rt;

/* Look for a CUDA or HIP runtime already in the process (or named by
 * SCOMM_CUDART_LIBRARY / SCOMM_HIPRT_LIBRARY), never loading one by soname:
 * scomm_init, scomm_comm_set_stream and scomm_mem_kind_hint call it. */
void scomm_memkind_probe(void);

/* The kind of [p, p + n) (scomm_mem_kind_t) under comm's hint; cached per
 * device range. SCOMM_OK, or ERR_SYSTEM from the runtime (set on comm). */
scomm_status_t scomm_memkind_of(scomm_comm_t *comm, const char *op,
                                const void *p, size_t n, int *kind);

/* 1 if the kind is device memory scomm stages (CUDA, ROCm). */
static inline int scomm_memkind_is_dev(int kind)
{
    return (kind == SCOMM_MEM_CUDA) || (kind == SCOMM_MEM_ROCM);
}

/* 1 when comm's calls may see device buffers (a hint naming a device, or
 * a runtime found and no host hint): invariant 1. */
static inline int scomm_dev_maybe(const scomm_comm_t *comm)
{
    if (comm->dev_hint == SCOMM_MEM_AUTO) {
        return atomic_load_explicit(&scomm_memkind_rt,
                                    memory_order_relaxed) != NULL;
    }
    return (comm->dev_hint != SCOMM_MEM_HOST) &&
           (comm->dev_hint != SCOMM_MEM_CUDA_PINNED) &&
           (comm->dev_hint != SCOMM_MEM_CUDA_MANAGED);
}

/* Does validated call a touch device memory? *dev = 1 if so; errors per
 * invariant 2. */
scomm_status_t scomm_stage_coll_kind(scomm_comm_t *comm, const char *name,
                                     const scomm_coll_args_t *a, int *dev);
/* Run a (blocking) collective with device buffers, staged. */
scomm_status_t scomm_stage_coll(scomm_comm_t *comm, const char *name,
                                const scomm_coll_args_t *a);

/* ---- jobs (invariants 4-6) ---- */
typedef struct scomm_stage_job scomm_stage_job_t;

/* Stage validated call a for the progress engine: *c is a on the pinned
 * copies, whose copies in are enqueued. */
scomm_status_t scomm_stage_coll_post(scomm_comm_t *comm, const char *name,
                                     const scomm_coll_args_t *a,
                                     scomm_coll_args_t *c,
                                     scomm_stage_job_t **job_p);
/* The engine's hooks of a job (src/overlap, scomm_ovl_hook_t): wait for
 * the input; after the wire, the copy back; when reaped, hand the result
 * to the caller's stream; free (always, once). */
scomm_status_t scomm_stage_job_ready(scomm_comm_t *comm, void *job);
scomm_status_t scomm_stage_job_done(scomm_comm_t *comm, void *job);
scomm_status_t scomm_stage_job_reap(scomm_comm_t *comm, void *job);
void scomm_stage_job_release(scomm_comm_t *comm, void *job);

/* A send or receive of bytes at buf (device memory): *pin_p is the host
 * memory to post instead (a send's, filled). Attach the job to the request
 * (stage_end = scomm_stage_p2p_end), or release it if posting fails. */
scomm_status_t scomm_stage_p2p_post(scomm_comm_t *comm, const char *name,
                                    int is_send, void *buf, size_t bytes,
                                    void **pin_p, scomm_stage_job_t **job_p);
void scomm_stage_p2p_end(scomm_req_t *req);
/* A send's job whose copy waits (an isend offered over CUDA IPC, ipc.c):
 * the slot is taken now, in the caller's thread, and *pin_p is its pinned
 * memory; the copy to it is enqueued only if the receiver declines
 * (scomm_stage_p2p_copy_in, world lock held: it never waits), and
 * scomm_stage_p2p_copy_query polls its event (SCOMM_RT_DONE,
 * SCOMM_RT_NOT_READY, SCOMM_RT_ERROR with err). */
scomm_status_t scomm_stage_p2p_reserve(scomm_comm_t *comm, const char *name,
                                       size_t bytes, void **pin_p,
                                       scomm_stage_job_t **job_p);
scomm_status_t scomm_stage_p2p_copy_in(scomm_comm_t *comm,
                                       scomm_stage_job_t *job,
                                       const void *buf, size_t bytes);
int scomm_stage_p2p_copy_query(const scomm_stage_job_t *job, char *err,
                               size_t len);
/* CUDA IPC of point-to-point messages (ipc.c): a receive of CUDA device
 * memory readies comm's IPC state first (not under the world lock), and
 * its request takes offers with scomm_stage_p2p_take (req->ipc_take):
 * device-to-device into its buffer, on the job's stream order. */
void scomm_stage_p2p_ipc_ready(scomm_comm_t *comm, const char *op);
int scomm_stage_p2p_take(scomm_req_t *req, const scomm_p2p_offer_t *o,
                         scomm_status_t *status, int *why);
/* comm's staging state locked (stage_get first), and what ipc.c borrows of
 * it; scomm_stage_ipc_end unlocks. */
struct scomm_ipc_ctx;
scomm_status_t scomm_stage_ipc_begin(scomm_comm_t *comm, const char *op,
                                     struct scomm_ipc_ctx *x);
void scomm_stage_ipc_end(scomm_comm_t *comm);
/* Poll event ev of rt until done, bounded by comm's timeout
 * (SCOMM_ERR_TIMED_OUT naming what was waited for); stage.c and ipc.c. */
struct scomm_devrt;
scomm_status_t scomm_dev_wait(scomm_comm_t *comm,
                              const struct scomm_devrt *rt, void *ev,
                              const char *op, const char *what);
/* Free comm's staging state (comm_stop hook). */
void scomm_dev_stage_free(scomm_comm_t *comm);

#endif /* SCOMM_STAGE_H */
