/*
 * overlap.h - non-blocking collectives, the progress engine, groups and
 * fusion (internal interface of src/overlap, see docs/overlap.md).
 *
 * The public i-forms (api_coll.c) validate their arguments exactly like the
 * blocking calls and hand a copy of the validated scomm_coll_args_t to
 * scomm_ovl_post(). The engine of the communicator (comm->overlap, made on
 * first use) runs queued operations one at a time, in issue order, by
 * calling scomm_coll_run() -- the same path the blocking calls take -- on a
 * worker thread (SCOMM_PROGRESS=thread, the default) or inside
 * scomm_test/scomm_wait (SCOMM_PROGRESS=inline).
 *
 * Design notes (threads, locks, ordering):
 *  1. One executor at a time per communicator: ops run in the order they
 *     were queued, so issue order is match order on every rank.
 *  2. Lock order: the engine's lock (ovl->lock) is never held while the
 *     world lock is taken; scomm_coll_run() takes the world lock with the
 *     engine lock released.
 *  3. A blocking collective on a communicator that has an engine goes
 *     through the queue (or runs at once in the caller when nothing is
 *     queued or running), so blocking and non-blocking calls keep issue
 *     order. Without an engine the blocking path costs one pointer check
 *     and one load of a global counter (open groups).
 *  4. Every wait has a deadline, and a world fault completes every queued
 *     op with the fault's status and message (naming the rank).
 */
#ifndef SCOMM_OVERLAP_H
#define SCOMM_OVERLAP_H

#include "../coll/coll.h"

typedef struct scomm_overlap scomm_overlap_t;

/* Groups open in any thread; the blocking path looks at it (note 3). */
extern _Atomic int scomm_ovl_groups_live;

/* 1 when a collective on comm must go through the engine. */
static inline int scomm_ovl_route(const scomm_comm_t *comm)
{
    return (comm->overlap != NULL) ||
           (atomic_load_explicit(&scomm_ovl_groups_live,
                                 memory_order_relaxed) != 0);
}

/*
 * Queue a validated collective (a is copied, all_to_allv arrays too).
 * req_p != NULL: non-blocking, *req_p set on success. req_p == NULL: a
 * blocking call that keeps issue order (deferred inside a group).
 */
scomm_status_t scomm_ovl_post(scomm_comm_t *comm, const char *name,
                              const scomm_coll_args_t *a,
                              scomm_req_t **req_p);

/*
 * What an op of the engine runs besides (or instead of) scomm_coll_run:
 * the staging of device buffers (src/backend/stage.c), which this layer
 * knows only through these calls (api/coll.c fills them in). Every hook
 * may be NULL.
 *  run:     instead of scomm_coll_run (a blocking call run whole);
 *  ready:   on the executor, before the op runs (its input is there);
 *  done:    on the executor, after it ran without error;
 *  reap:    in scomm_wait/scomm_test, when the request is reaped without
 *           error (hand the result over);
 *  release: once, when the op is freed, whatever happened.
 */
typedef struct scomm_ovl_hook {
    scomm_status_t (*run)(scomm_comm_t *comm, const char *name,
                          const scomm_coll_args_t *a);
    scomm_status_t (*ready)(scomm_comm_t *comm, void *job);
    scomm_status_t (*done)(scomm_comm_t *comm, void *job);
    scomm_status_t (*reap)(scomm_comm_t *comm, void *job);
    void           (*release)(scomm_comm_t *comm, void *job);
} scomm_ovl_hook_t;

/* scomm_ovl_post with hooks; takes job (released on every failure too). */
scomm_status_t scomm_ovl_post_hooked(scomm_comm_t *comm, const char *name,
                                     const scomm_coll_args_t *a,
                                     scomm_req_t **req_p,
                                     const scomm_ovl_hook_t *hook, void *job);

/* 1 inside a group on this thread. */
int scomm_ovl_in_group(void);

/* req_p of an i-form is NULL: the error, naming the call. */
scomm_status_t scomm_ovl_null_req(scomm_comm_t *comm, const char *name);

/* The same for a barrier (run with scomm_barrier_run). */
scomm_status_t scomm_ovl_barrier(scomm_comm_t *comm, scomm_req_t **req_p);

/* scomm_test / scomm_wait of a SCOMM_REQ_COLL request (checked already). */
scomm_status_t scomm_ovl_test(scomm_req_t *req, int32_t *done);
scomm_status_t scomm_ovl_wait(scomm_req_t *req);

/* scomm_group_start/end's half for the engine (api/group.c calls them):
 * open a group on this thread; close it (fuse, queue, wait for the
 * deferred blocking calls). */
scomm_status_t scomm_ovl_group_start(void);
scomm_status_t scomm_ovl_group_end(void);

/* Stop and join the engine of comm, finishing (or failing, after a fault)
 * what is queued: the overlap module's comm_stop hook, which
 * scomm_comm_destroy runs before the backends' and the collectives'. */
void scomm_ovl_comm_destroy(scomm_comm_t *comm);

#endif /* SCOMM_OVERLAP_H */
