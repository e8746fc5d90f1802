/*
 * overlap.c - the progress engine of non-blocking collectives: a FIFO of
 * queued operations per communicator, executed one at a time by a worker
 * thread (SCOMM_PROGRESS=thread, default) or by the thread that waits
 * (SCOMM_PROGRESS=inline); groups (scomm_group_start/end) and the fusion
 * of small all_reduces; the collective request's test/wait; stats.
 *
 * An operation's life:
 *
 *   scomm_iX() --validate--> scomm_ovl_post()
 *       |  in a group: appended to the thread's group list
 *       |              --scomm_group_end()--> fused / queued
 *       v
 *   queued (ovl->head..tail) --executor pops--> running (scomm_coll_run)
 *       --scomm_ovl_finish()--> req->done = 1 --scomm_test/wait--> freed
 *
 * Design notes (threads, locks, ordering):
 *  1. ovl->lock guards the queue, the executing flag, every op's abandoned
 *     flag and the stats. It is never held while the world lock is taken
 *     or while an op runs (lock order: ovl->lock is innermost).
 *  2. At most one executor per communicator (ovl->executing), so ops run
 *     in queue order, which is issue order; a blocking call finding the
 *     queue empty and nobody executing runs in its own thread, as the
 *     executor, without a hand-off.
 *  3. A request is completed by storing req->done with release order after
 *     req->status and op->msg are written; scomm_test reads done with
 *     acquire order and never takes a lock that a running collective holds.
 *  4. Ownership: an op and its request are freed together, by the waiter
 *     once done, or by the executor when the waiter gave up earlier
 *     (op->abandoned, set under ovl->lock). A fused batch is freed by the
 *     executor after it completed its members.
 *  5. Before running an op the executor looks at the world's fault: once
 *     the world failed, every later op completes at once with the fault's
 *     status and message. A running op ends at once too, since every wait
 *     of the core returns on a fault; so abort unblocks waiters at once.
 *  6. Waits sleep on ovl->done_cv in slices of at most 20 ms, checking the
 *     fault, so scomm_comm_abort() from any thread ends them in one slice.
 *  7. The worker spins SCOMM_OVL_SPIN_NS after each op, yielding the CPU,
 *     then sleeps on ovl->work_cv without a timeout: idle costs nothing.
 *  8. Fusion happens only at scomm_group_end(), over the ops of one group,
 *     in issue order, by a rule that depends only on the arguments every
 *     rank passes, so every rank forms the same batches.
 *  9. An op's hooks (overlap.h: the staging of device buffers) never change
 *     what goes on the wire: ready/done run on the executor with no lock
 *     held, around the op (around the whole batch for fused members), reap
 *     in the waiter; release runs when the op is freed, possibly under
 *     ovl->lock (an abandoned op), so it takes only locks of its own.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "overlap.h"
#include "../core/module.h"
#include "../telemetry/control.h"
#include "../telemetry/tm.h"

#define SCOMM_OVL_COLL     0
#define SCOMM_OVL_BARRIER  1
#define SCOMM_OVL_FUSED    2

#define SCOMM_OVL_SPIN_NS      50000ull    /* worker spin after an op */
#define SCOMM_OVL_WAIT_SPIN_NS 20000ull    /* waiter spin before sleeping */
#define SCOMM_OVL_SLICE_NS     20000000ull /* longest sleep of a waiter */
#define SCOMM_OVL_FAULT_GRACE  1000000000ull
#define SCOMM_OVL_GROUP_MAX    1024

typedef struct scomm_ovl_op scomm_ovl_op_t;

struct scomm_ovl_op {
    scomm_ovl_op_t   *next;     /* queue or group list */
    int               kind;
    const char       *name;
    scomm_coll_args_t a;
    size_t           *varr;     /* copies of all_to_allv's arrays */
    scomm_req_t      *req;      /* NULL for a fused batch */
    int               abandoned;
    int               queued;   /* reached the engine's queue */
    int               deferred; /* a blocking call inside a group */
    const scomm_ovl_hook_t *hook; /* overlap.h; NULL: none */
    void             *job;
    scomm_ovl_op_t  **members;  /* fused batch */
    int               nmembers;
    char              msg[SCOMM_ERRMSG_MAX];
};

struct scomm_overlap {
    scomm_comm_t          *comm;
    pthread_mutex_t        lock;
    pthread_cond_t         work_cv;
    pthread_cond_t         done_cv;
    scomm_ovl_op_t        *head;
    scomm_ovl_op_t        *tail;
    _Atomic int            nqueued;
    _Atomic int            stop;
    int                    executing;
    int                    inline_mode;
    int                    have_thread;
    pthread_t              thread;
    size_t                 fusion_bytes;
    void                  *fbuf;      /* executor only */
    size_t                 fbuf_cap;
    scomm_overlap_stats_t  st;
};

_Atomic int scomm_ovl_groups_live;

/* The thread's open group: depth and the ops issued inside it. */
typedef struct scomm_ovl_group {
    int             depth;
    scomm_ovl_op_t *head;
    scomm_ovl_op_t *tail;
} scomm_ovl_group_t;

static _Thread_local scomm_ovl_group_t scomm_ovl_group;

/* ---- engine creation ---------------------------------------------------- */

static void *scomm_ovl_worker(void *arg);

/* Knobs (registry rows, core/config.h), read when comm's engine is made. */
static const scomm_param_t scomm_ovl_params[] = {
    /* Words in the order of inline_mode's values. */
    {.name = "SCOMM_PROGRESS", .defval = "thread", .type = SCOMM_PARAM_ENUM,
     .values = "thread,inline",
     .help = "who runs nonblocking collectives: a progress thread per "
             "communicator, or the caller's test/wait calls"},
    {.name = "SCOMM_FUSION_BYTES", .defval = "64k", .type = SCOMM_PARAM_SIZE,
     .min = 0, .max = 1 << 30,
     .help = "largest fused all_reduce of a group (0: no fusion; the "
             "default is measured, docs/overlap.md)"},
};

static scomm_status_t scomm_ovl_config(scomm_comm_t *comm,
                                       scomm_overlap_t *ovl)
{
    char err[SCOMM_ERRMSG_MAX];
    scomm_pval_t v;

    if (scomm_param_get("SCOMM_PROGRESS", NULL, &v, err, sizeof(err)) !=
        SCOMM_OK) {
        return scomm_set_error(comm, SCOMM_ERR_BAD_CONFIG, "%s", err);
    }
    ovl->inline_mode = (int)v.i;
    if (scomm_param_get("SCOMM_FUSION_BYTES", NULL, &v, err, sizeof(err)) !=
        SCOMM_OK) {
        return scomm_set_error(comm, SCOMM_ERR_BAD_CONFIG, "%s", err);
    }
    ovl->fusion_bytes = (size_t)v.u;
    return SCOMM_OK;
}

/* comm's engine, made on first use (by the thread using comm). */
static scomm_status_t scomm_ovl_get(scomm_comm_t *comm,
                                    scomm_overlap_t **ovl_p)
{
    scomm_overlap_t *ovl = comm->overlap;
    scomm_status_t status;
    int ret;

    if (ovl != NULL) {
        *ovl_p = ovl;
        return SCOMM_OK;
    }
    ovl = calloc(1, sizeof(*ovl));
    if (ovl == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for the progress engine",
                               comm->cur_op);
    }
    ovl->comm = comm;
    status    = scomm_ovl_config(comm, ovl);
    if (status != SCOMM_OK) {
        free(ovl);
        return status;
    }
    pthread_mutex_init(&ovl->lock, NULL);
    pthread_cond_init(&ovl->work_cv, NULL);
    pthread_cond_init(&ovl->done_cv, NULL);
    ovl->st.fusion_bytes = ovl->fusion_bytes;
    if (!ovl->inline_mode) {
        ret = pthread_create(&ovl->thread, NULL, scomm_ovl_worker, ovl);
        if (ret != 0) {
            pthread_cond_destroy(&ovl->done_cv);
            pthread_cond_destroy(&ovl->work_cv);
            pthread_mutex_destroy(&ovl->lock);
            free(ovl);
            return scomm_set_error(comm, SCOMM_ERR_SYSTEM,
                                   "progress thread: pthread_create: %s",
                                   strerror(ret));
        }
        ovl->have_thread        = 1;
        ovl->st.progress_thread = 1;
    }
    comm->overlap = ovl;
    *ovl_p        = ovl;
    return SCOMM_OK;
}

/* ---- ops and requests ---------------------------------------------------- */

static void scomm_ovl_op_free(scomm_ovl_op_t *op)
{
    if ((op->hook != NULL) && (op->hook->release != NULL)) {
        op->hook->release(op->req->comm, op->job);
    }
    free(op->varr);
    free(op->members);
    free(op->req);
    free(op);
}

static scomm_ovl_op_t *scomm_ovl_op_new(scomm_comm_t *comm, int kind,
                                        const char *name,
                                        const scomm_coll_args_t *a)
{
    scomm_ovl_op_t *op = calloc(1, sizeof(*op));
    size_t p           = (size_t)comm->size;

    if (op == NULL) {
        return NULL;
    }
    op->kind = kind;
    op->name = name;
    if (a != NULL) {
        op->a = *a;
    }
    if ((a != NULL) && (a->op == SCOMM_COLL_ALLTOALLV)) {
        op->varr = malloc(4 * p * sizeof(size_t));
        if (op->varr == NULL) {
            free(op);
            return NULL;
        }
        memcpy(op->varr, a->scounts, p * sizeof(size_t));
        memcpy(op->varr + p, a->sdispls, p * sizeof(size_t));
        memcpy(op->varr + 2 * p, a->rcounts, p * sizeof(size_t));
        memcpy(op->varr + 3 * p, a->rdispls, p * sizeof(size_t));
        op->a.scounts = op->varr;
        op->a.sdispls = op->varr + p;
        op->a.rcounts = op->varr + 2 * p;
        op->a.rdispls = op->varr + 3 * p;
    }
    op->req = calloc(1, sizeof(*op->req));
    if (op->req == NULL) {
        free(op->varr);
        free(op);
        return NULL;
    }
    scomm_list_init(&op->req->list);
    op->req->world     = comm->world;
    op->req->comm      = comm;
    op->req->type      = SCOMM_REQ_COLL;
    op->req->status    = SCOMM_INPROGRESS;
    op->req->len       = op->a.bytes;
    op->req->tl_ptr[0] = op;
    return op;
}

/* Bytes an op moves from this rank's point of view (for the stats). */
static uint64_t scomm_ovl_op_bytes(const scomm_ovl_op_t *op)
{
    return (op->kind == SCOMM_OVL_BARRIER) ? 0 : (uint64_t)op->a.bytes;
}

/* Complete op with status; ovl->lock held. Frees it if abandoned. */
static void scomm_ovl_finish(scomm_overlap_t *ovl, scomm_ovl_op_t *op,
                             scomm_status_t status, const char *msg)
{
    ovl->st.ops_completed++;
    if (status != SCOMM_OK) {
        ovl->st.ops_failed++;
        snprintf(op->msg, sizeof(op->msg), "%s", msg);
    }
    if (op->abandoned) {
        scomm_ovl_op_free(op);
        return;
    }
    op->req->status = status;
    atomic_store_explicit(&op->req->done, 1, memory_order_release);
}

/* Append to the queue; ovl->lock held. */
static void scomm_ovl_enqueue(scomm_overlap_t *ovl, scomm_ovl_op_t *op)
{
    int n;

    op->queued = 1;
    op->next   = NULL;
    if (ovl->tail == NULL) {
        ovl->head = op;
    } else {
        ovl->tail->next = op;
    }
    ovl->tail = op;
    n = atomic_fetch_add(&ovl->nqueued, 1) + 1;
    if ((uint64_t)n > ovl->st.queue_max) {
        ovl->st.queue_max = (uint64_t)n;
    }
}

static scomm_ovl_op_t *scomm_ovl_dequeue(scomm_overlap_t *ovl)
{
    scomm_ovl_op_t *op = ovl->head;

    if (op != NULL) {
        ovl->head = op->next;
        if (ovl->head == NULL) {
            ovl->tail = NULL;
        }
        atomic_fetch_sub(&ovl->nqueued, 1);
    }
    return op;
}

/* ---- execution ----------------------------------------------------------- */

static scomm_status_t scomm_ovl_hook_ready(scomm_comm_t *comm,
                                           scomm_ovl_op_t *op)
{
    return ((op->hook != NULL) && (op->hook->ready != NULL))
               ? op->hook->ready(comm, op->job)
               : SCOMM_OK;
}

static scomm_status_t scomm_ovl_hook_done(scomm_comm_t *comm,
                                          scomm_ovl_op_t *op)
{
    return ((op->hook != NULL) && (op->hook->done != NULL))
               ? op->hook->done(comm, op->job)
               : SCOMM_OK;
}

/* Run a fused batch: pack, one all_reduce in place, unpack; the members'
 * hooks before and after (their buffers may be staging copies). */
static scomm_status_t scomm_ovl_run_fused(scomm_overlap_t *ovl,
                                          scomm_ovl_op_t *b)
{
    scomm_comm_t *comm = ovl->comm;
    scomm_coll_args_t a;
    size_t off = 0, total = 0;
    scomm_status_t status;
    char *buf;
    int i;

    for (i = 0; i < b->nmembers; i++) {
        total += b->members[i]->a.bytes;
        status = scomm_ovl_hook_ready(comm, b->members[i]);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    if (ovl->fbuf_cap < total) {
        free(ovl->fbuf);
        ovl->fbuf_cap = 0;
        ovl->fbuf     = malloc(total);
        if (ovl->fbuf == NULL) {
            return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                   "scomm_group_end: out of memory for a "
                                   "%zu-byte fusion buffer", total);
        }
        ovl->fbuf_cap = total;
    }
    buf = ovl->fbuf;
    for (i = 0; i < b->nmembers; i++) {
        memcpy(buf + off, b->members[i]->a.sendbuf, b->members[i]->a.bytes);
        off += b->members[i]->a.bytes;
    }
    a         = b->members[0]->a;
    a.sendbuf = buf;
    a.recvbuf = buf;
    a.bytes   = total;
    a.count   = total / a.esize;
    a.inplace = 1;
    status    = scomm_coll_run(comm, "scomm_group_end (fused all_reduce)",
                               &a);
    for (i = 0, off = 0; (i < b->nmembers) && (status == SCOMM_OK); i++) {
        memcpy(b->members[i]->a.recvbuf, buf + off, b->members[i]->a.bytes);
        off += b->members[i]->a.bytes;
        status = scomm_ovl_hook_done(comm, b->members[i]);
    }
    return status;
}

/* Run one collective op with its hooks (overlap.h). */
static scomm_status_t scomm_ovl_run_coll(scomm_overlap_t *ovl,
                                         scomm_ovl_op_t *op)
{
    scomm_status_t status;

    if ((op->hook != NULL) && (op->hook->run != NULL)) {
        return op->hook->run(ovl->comm, op->name, &op->a);
    }
    status = scomm_ovl_hook_ready(ovl->comm, op);
    if (status == SCOMM_OK) {
        status = scomm_coll_run(ovl->comm, op->name, &op->a);
    }
    if (status == SCOMM_OK) {
        status = scomm_ovl_hook_done(ovl->comm, op);
    }
    return status;
}

/* Run one op (no lock held) and complete it (and its members). */
static void scomm_ovl_execute(scomm_overlap_t *ovl, scomm_ovl_op_t *op)
{
    scomm_world_t *w = ovl->comm->world;
    scomm_status_t status;
    char msg[SCOMM_ERRMSG_MAX] = "";
    int fault, i;

    fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);
    if (fault != 0) {
        status = (scomm_status_t)fault;
        snprintf(msg, sizeof(msg), "%s: communicator failed earlier: %.400s",
                 op->name, w->fault.msg);
    } else {
        if (op->kind == SCOMM_OVL_BARRIER) {
            status = scomm_barrier_run(ovl->comm);
        } else if (op->kind == SCOMM_OVL_FUSED) {
            status = scomm_ovl_run_fused(ovl, op);
        } else {
            status = scomm_ovl_run_coll(ovl, op);
        }
        if (status != SCOMM_OK) {
            snprintf(msg, sizeof(msg), "%s", scomm_last_error());
        }
    }
    pthread_mutex_lock(&ovl->lock);
    if (op->kind == SCOMM_OVL_FUSED) {
        for (i = 0; i < op->nmembers; i++) {
            scomm_ovl_finish(ovl, op->members[i], status, msg);
        }
        scomm_ovl_op_free(op);
    } else {
        scomm_ovl_finish(ovl, op, status, msg);
    }
    pthread_cond_broadcast(&ovl->done_cv);
    pthread_mutex_unlock(&ovl->lock);
}

static void *scomm_ovl_worker(void *arg)
{
    scomm_overlap_t *ovl = arg;
    scomm_ovl_op_t *op;
    uint64_t t0;

    pthread_mutex_lock(&ovl->lock);
    for (;;) {
        if ((ovl->head == NULL) || ovl->executing) {
            if (atomic_load(&ovl->stop) && (ovl->head == NULL)) {
                break;
            }
            /* Note 7: a short polite spin catches the next op of a burst
             * without a futex wake; then sleep until signalled. */
            pthread_mutex_unlock(&ovl->lock);
            t0 = scomm_now_ns();
            while ((atomic_load_explicit(&ovl->nqueued,
                                         memory_order_relaxed) == 0) &&
                   !atomic_load(&ovl->stop) &&
                   (scomm_now_ns() - t0 < SCOMM_OVL_SPIN_NS)) {
                sched_yield();
            }
            pthread_mutex_lock(&ovl->lock);
            while (((ovl->head == NULL) || ovl->executing) &&
                   !(atomic_load(&ovl->stop) && (ovl->head == NULL))) {
                ovl->st.worker_sleeps++;
                pthread_cond_wait(&ovl->work_cv, &ovl->lock);
            }
            continue;
        }
        op             = scomm_ovl_dequeue(ovl);
        ovl->executing = 1;
        pthread_mutex_unlock(&ovl->lock);
        scomm_ovl_execute(ovl, op);
        pthread_mutex_lock(&ovl->lock);
        ovl->executing = 0;
    }
    pthread_mutex_unlock(&ovl->lock);
    return NULL;
}

/*
 * Inline mode (and destroy without a thread): run queued ops in this
 * thread until target is done (NULL: until the queue is empty), or until
 * deadline. ovl->lock held on entry and exit.
 */
static void scomm_ovl_run_inline(scomm_overlap_t *ovl, scomm_ovl_op_t *target)
{
    scomm_ovl_op_t *op;

    while ((ovl->head != NULL) && !ovl->executing &&
           ((target == NULL) ||
            !atomic_load_explicit(&target->req->done,
                                  memory_order_acquire))) {
        op             = scomm_ovl_dequeue(ovl);
        ovl->executing = 1;
        pthread_mutex_unlock(&ovl->lock);
        scomm_ovl_execute(ovl, op);
        pthread_mutex_lock(&ovl->lock);
        ovl->executing = 0;
        pthread_cond_broadcast(&ovl->done_cv);
    }
}

/* ---- submission ---------------------------------------------------------- */

scomm_status_t scomm_ovl_null_req(scomm_comm_t *comm, const char *name)
{
    scomm_status_t status = scomm_comm_check(comm, name);

    if (status != SCOMM_OK) {
        return status;
    }
    return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG, "%s: req_p is NULL",
                           name);
}

static scomm_status_t scomm_ovl_wait_op(scomm_overlap_t *ovl,
                                        scomm_ovl_op_t *op);

/* Blocking call with nothing ahead of it: run here, as the executor. */
static int scomm_ovl_try_direct(scomm_overlap_t *ovl)
{
    int ok;

    pthread_mutex_lock(&ovl->lock);
    ok = (ovl->head == NULL) && !ovl->executing;
    if (ok) {
        ovl->executing = 1;
    }
    pthread_mutex_unlock(&ovl->lock);
    return ok;
}

static void scomm_ovl_direct_done(scomm_overlap_t *ovl)
{
    pthread_mutex_lock(&ovl->lock);
    ovl->executing = 0;
    if (ovl->head != NULL) {
        pthread_cond_signal(&ovl->work_cv);
    }
    pthread_cond_broadcast(&ovl->done_cv);
    pthread_mutex_unlock(&ovl->lock);
}

/* A blocking call run now, in the caller (note 2). */
static scomm_status_t scomm_ovl_run_now(scomm_comm_t *comm, int kind,
                                        const char *name,
                                        const scomm_coll_args_t *a,
                                        const scomm_ovl_hook_t *hook)
{
    if (kind == SCOMM_OVL_BARRIER) {
        return scomm_barrier_run(comm);
    }
    return ((hook != NULL) && (hook->run != NULL))
               ? hook->run(comm, name, a)
               : scomm_coll_run(comm, name, a);
}

static scomm_status_t scomm_ovl_submit(scomm_comm_t *comm, int kind,
                                       const char *name,
                                       const scomm_coll_args_t *a,
                                       scomm_req_t **req_p,
                                       const scomm_ovl_hook_t *hook,
                                       void *job)
{
    scomm_overlap_t *ovl = comm->overlap;
    scomm_ovl_group_t *g = &scomm_ovl_group;
    scomm_ovl_op_t *op;
    scomm_status_t status;

    if ((req_p == NULL) && (g->depth == 0) && (job == NULL)) {
        /* A blocking call: runs now when no engine exists, or when its
         * engine has nothing queued or running (note 2). */
        if (ovl == NULL) {
            return scomm_ovl_run_now(comm, kind, name, a, hook);
        }
        if (scomm_ovl_try_direct(ovl)) {
            status = scomm_ovl_run_now(comm, kind, name, a, hook);
            scomm_ovl_direct_done(ovl);
            return status;
        }
    }
    status = scomm_ovl_get(comm, &ovl);
    op     = (status == SCOMM_OK) ? scomm_ovl_op_new(comm, kind, name, a)
                                  : NULL;
    if (op == NULL) {
        if ((hook != NULL) && (hook->release != NULL)) {
            hook->release(comm, job);
        }
        return (status != SCOMM_OK)
                   ? status
                   : scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                     "%s: out of memory for a request",
                                     name);
    }
    op->hook     = hook;
    op->job      = job;
    op->deferred = (req_p == NULL);
    pthread_mutex_lock(&ovl->lock);
    ovl->st.ops_submitted++;
    ovl->st.bytes_submitted += scomm_ovl_op_bytes(op);
    if (req_p == NULL) {
        ovl->st.blocking_routed++;
    }
    if (g->depth > 0) {
        pthread_mutex_unlock(&ovl->lock);
        op->next = NULL;
        if (g->tail == NULL) {
            g->head = op;
        } else {
            g->tail->next = op;
        }
        g->tail = op;
        if (req_p != NULL) {
            *req_p = op->req;
        }
        return SCOMM_OK;
    }
    scomm_ovl_enqueue(ovl, op);
    pthread_cond_signal(&ovl->work_cv);
    pthread_mutex_unlock(&ovl->lock);
    if (req_p != NULL) {
        *req_p = op->req;
        return SCOMM_OK;
    }
    return scomm_ovl_wait_op(ovl, op);
}

scomm_status_t scomm_ovl_post(scomm_comm_t *comm, const char *name,
                              const scomm_coll_args_t *a,
                              scomm_req_t **req_p)
{
    return scomm_ovl_submit(comm, SCOMM_OVL_COLL, name, a, req_p, NULL,
                            NULL);
}

scomm_status_t scomm_ovl_post_hooked(scomm_comm_t *comm, const char *name,
                                     const scomm_coll_args_t *a,
                                     scomm_req_t **req_p,
                                     const scomm_ovl_hook_t *hook, void *job)
{
    return scomm_ovl_submit(comm, SCOMM_OVL_COLL, name, a, req_p, hook,
                            job);
}

int scomm_ovl_in_group(void)
{
    return scomm_ovl_group.depth > 0;
}

scomm_status_t scomm_ovl_barrier(scomm_comm_t *comm, scomm_req_t **req_p)
{
    return scomm_ovl_submit(comm, SCOMM_OVL_BARRIER,
                            (req_p != NULL) ? "scomm_ibarrier"
                                            : "scomm_barrier",
                            NULL, req_p, NULL, NULL);
}

/* ---- test and wait ------------------------------------------------------- */

/* Take a finished op's result and free it (op->req->done is set). */
static scomm_status_t scomm_ovl_reap(scomm_comm_t *comm, scomm_ovl_op_t *op)
{
    scomm_status_t status = op->req->status;

    if (status != SCOMM_OK) {
        scomm_set_error(comm, status, "%s", op->msg);
    } else if ((op->hook != NULL) && (op->hook->reap != NULL)) {
        status = op->hook->reap(comm, op->job);
    }
    scomm_ovl_op_free(op);
    return status;
}

/* Give up on op (fault or deadline); ovl->lock held. The executor frees
 * it when it completes (note 4). */
static void scomm_ovl_abandon(scomm_comm_t *comm, scomm_ovl_op_t *op,
                              scomm_status_t status, const char *msg)
{
    op->abandoned = 1;
    scomm_set_error(comm, status, "%s", msg);
}

static scomm_status_t scomm_ovl_wait_op(scomm_overlap_t *ovl,
                                        scomm_ovl_op_t *op)
{
    scomm_comm_t *comm = ovl->comm;
    scomm_world_t *w   = comm->world;
    uint64_t t0 = scomm_now_ns(), now, fault_at = 0, limit;
    struct timespec ts;
    char msg[SCOMM_ERRMSG_MAX];
    int fault;

    if (!op->queued) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE,
                               "%s: waited for inside the group that issued "
                               "it; call scomm_group_end() first", op->name);
    }
    /* The engine's ops end by their own deadlines (each wait inside the
     * algorithms has one); this limit only guards against a stuck engine. */
    limit = (uint64_t)comm->timeout_ms * 4000000ull + 10000000000ull;
    while (!ovl->inline_mode &&
           !atomic_load_explicit(&op->req->done, memory_order_acquire) &&
           (scomm_now_ns() - t0 < SCOMM_OVL_WAIT_SPIN_NS)) {
        sched_yield();
    }
    pthread_mutex_lock(&ovl->lock);
    for (;;) {
        if (ovl->inline_mode) {
            scomm_ovl_run_inline(ovl, op);
        }
        if (atomic_load_explicit(&op->req->done, memory_order_acquire)) {
            pthread_mutex_unlock(&ovl->lock);
            return scomm_ovl_reap(comm, op);
        }
        now   = scomm_now_ns();
        fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);
        if ((fault != 0) && (fault_at == 0)) {
            fault_at = now;
        }
        if ((fault != 0) && (now - fault_at > SCOMM_OVL_FAULT_GRACE)) {
            snprintf(msg, sizeof(msg), "%s: %.400s", op->name, w->fault.msg);
            scomm_ovl_abandon(comm, op, (scomm_status_t)fault, msg);
            pthread_mutex_unlock(&ovl->lock);
            return (scomm_status_t)fault;
        }
        if (now - t0 > limit) {
            snprintf(msg, sizeof(msg), "%s: timed out after %llu ms: the "
                     "progress engine did not finish the operation",
                     op->name, (unsigned long long)((now - t0) / 1000000));
            scomm_ovl_abandon(comm, op, SCOMM_ERR_TIMED_OUT, msg);
            pthread_mutex_unlock(&ovl->lock);
            return SCOMM_ERR_TIMED_OUT;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)SCOMM_OVL_SLICE_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&ovl->done_cv, &ovl->lock, &ts);
    }
}

scomm_status_t scomm_ovl_wait(scomm_req_t *req)
{
    scomm_ovl_op_t *op = req->tl_ptr[0];

    return scomm_ovl_wait_op(req->comm->overlap, op);
}

scomm_status_t scomm_ovl_test(scomm_req_t *req, int32_t *done)
{
    scomm_ovl_op_t *op   = req->tl_ptr[0];
    scomm_comm_t *comm   = req->comm;
    scomm_overlap_t *ovl = comm->overlap;
    scomm_world_t *w     = req->world;
    int fault;

    if (!op->queued) {
        *done = 0;
        return SCOMM_OK; /* its group has not ended yet */
    }
    if (ovl->inline_mode &&
        !atomic_load_explicit(&req->done, memory_order_acquire)) {
        pthread_mutex_lock(&ovl->lock);
        scomm_ovl_run_inline(ovl, op);
        pthread_mutex_unlock(&ovl->lock);
    }
    if (atomic_load_explicit(&req->done, memory_order_acquire)) {
        *done = 1;
        return scomm_ovl_reap(comm, op);
    }
    fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);
    if (fault != 0) {
        /* The engine completes it at once (note 5): wait that short
         * while rather than leave the request behind. */
        *done = 1;
        return scomm_ovl_wait_op(ovl, op);
    }
    *done = 0;
    return SCOMM_OK;
}

/* ---- groups and fusion --------------------------------------------------- */

scomm_status_t scomm_ovl_group_start(void)
{
    scomm_ovl_group_t *g = &scomm_ovl_group;

    if (g->depth >= SCOMM_OVL_GROUP_MAX) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "scomm_group_start: more than %d nested "
                               "groups", SCOMM_OVL_GROUP_MAX);
    }
    if (g->depth++ == 0) {
        atomic_fetch_add(&scomm_ovl_groups_live, 1);
    }
    return SCOMM_OK;
}

/* Fused all_reduce candidates (note 8): same rule on every rank. */
static int scomm_ovl_fusible(const scomm_overlap_t *ovl,
                             const scomm_ovl_op_t *op)
{
    /* scomm_control_set(.., "fusion", "off") turns fusion off at run
     * time; like SCOMM_FUSION_BYTES, every rank must set it alike. */
    return (op->kind == SCOMM_OVL_COLL) &&
           (op->a.op == SCOMM_COLL_ALLREDUCE) && (op->a.count > 0) &&
           (scomm_control_fusion() != 0) &&
           (op->a.bytes <= ovl->fusion_bytes / 2);
}

/* The batch being filled for one communicator during scomm_group_end. */
typedef struct scomm_ovl_open {
    scomm_overlap_t *ovl;
    scomm_ovl_op_t **ops;
    int              n;
    int              cap;
    size_t           bytes;
    int              touched;
} scomm_ovl_open_t;

/* Queue what the open batch holds: one op as it is, several fused. */
static scomm_status_t scomm_ovl_flush(scomm_ovl_open_t *o)
{
    scomm_overlap_t *ovl = o->ovl;
    scomm_ovl_op_t *b;
    int i;

    if (o->n == 0) {
        return SCOMM_OK;
    }
    pthread_mutex_lock(&ovl->lock);
    if (o->n == 1) {
        scomm_ovl_enqueue(ovl, o->ops[0]);
    } else {
        b = calloc(1, sizeof(*b));
        if (b != NULL) {
            b->members = malloc((size_t)o->n * sizeof(*b->members));
        }
        if ((b == NULL) || (b->members == NULL)) {
            /* Out of memory: other ranks run this batch fused, so running
             * its parts one by one would not match theirs; fail them (the
             * peers then time out, naming this rank). */
            free(b);
            for (i = 0; i < o->n; i++) {
                o->ops[i]->queued = 1;
                scomm_ovl_finish(ovl, o->ops[i], SCOMM_ERR_NO_MEMORY,
                                 "scomm_group_end: out of memory for a "
                                 "fused batch");
            }
            pthread_cond_broadcast(&ovl->done_cv);
            pthread_mutex_unlock(&ovl->lock);
            o->n     = 0;
            o->bytes = 0;
            return SCOMM_ERR_NO_MEMORY;
        }
        b->kind     = SCOMM_OVL_FUSED;
        b->name     = "scomm_group_end (fused all_reduce)";
        b->nmembers = o->n;
        for (i = 0; i < o->n; i++) {
            b->members[i]     = o->ops[i];
            o->ops[i]->queued = 1;
        }
        ovl->st.ops_fused += (uint64_t)o->n;
        ovl->st.fused_batches++;
        ovl->st.bytes_fused += o->bytes;
        scomm_tm_add(ovl->comm, SCOMM_TM_FUSION_HITS, (uint64_t)o->n);
        scomm_tm_add(ovl->comm, SCOMM_TM_FUSED_OPS, 1);
        scomm_ovl_enqueue(ovl, b);
    }
    pthread_cond_signal(&ovl->work_cv);
    pthread_mutex_unlock(&ovl->lock);
    o->n     = 0;
    o->bytes = 0;
    return SCOMM_OK;
}

static scomm_ovl_open_t *scomm_ovl_open_of(scomm_ovl_open_t **tab, int *n,
                                           scomm_overlap_t *ovl)
{
    scomm_ovl_open_t *t;
    int i;

    for (i = 0; i < *n; i++) {
        if ((*tab)[i].ovl == ovl) {
            return &(*tab)[i];
        }
    }
    t = realloc(*tab, (size_t)(*n + 1) * sizeof(**tab));
    if (t == NULL) {
        return NULL;
    }
    *tab = t;
    memset(&t[*n], 0, sizeof(t[*n]));
    t[*n].ovl = ovl;
    return &t[(*n)++];
}

static int scomm_ovl_add(scomm_ovl_open_t *o, scomm_ovl_op_t *op)
{
    scomm_ovl_op_t **ops;

    if (o->n == o->cap) {
        ops = realloc(o->ops, (size_t)(o->cap * 2 + 16) * sizeof(*ops));
        if (ops == NULL) {
            return -1;
        }
        o->ops = ops;
        o->cap = o->cap * 2 + 16;
    }
    o->ops[o->n++] = op;
    o->bytes += op->a.bytes;
    return 0;
}

scomm_status_t scomm_ovl_group_end(void)
{
    scomm_ovl_group_t *g = &scomm_ovl_group;
    scomm_ovl_open_t *tab = NULL, *o;
    scomm_ovl_op_t *op, *next, **deferred = NULL, *first;
    scomm_status_t status = SCOMM_OK, s;
    int ntab = 0, ndef = 0, i, same;
    size_t nops = 0;

    if (g->depth == 0) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "scomm_group_end: no group is open on this "
                               "thread");
    }
    if (--g->depth > 0) {
        return SCOMM_OK;
    }
    atomic_fetch_sub(&scomm_ovl_groups_live, 1);
    for (op = g->head; op != NULL; op = op->next) {
        nops++;
    }
    if (nops > 0) {
        deferred = malloc(nops * sizeof(*deferred));
    }
    for (op = g->head; op != NULL; op = next) {
        next = op->next;
        if ((deferred != NULL) && op->deferred) {
            deferred[ndef++] = op;
        }
        o = scomm_ovl_open_of(&tab, &ntab, op->req->comm->overlap);
        if ((o == NULL) || (deferred == NULL)) {
            /* Out of memory mid-way: no fusion, queue in order. */
            pthread_mutex_lock(&op->req->comm->overlap->lock);
            scomm_ovl_enqueue(op->req->comm->overlap, op);
            pthread_cond_signal(&op->req->comm->overlap->work_cv);
            pthread_mutex_unlock(&op->req->comm->overlap->lock);
            continue;
        }
        o->touched = 1;
        if (!scomm_ovl_fusible(o->ovl, op)) {
            (void)scomm_ovl_flush(o);
            pthread_mutex_lock(&o->ovl->lock);
            scomm_ovl_enqueue(o->ovl, op);
            pthread_cond_signal(&o->ovl->work_cv);
            pthread_mutex_unlock(&o->ovl->lock);
            continue;
        }
        first = (o->n > 0) ? o->ops[0] : NULL;
        same  = (first != NULL) && (first->a.dtype == op->a.dtype) &&
               (first->a.redop == op->a.redop) &&
               (o->bytes + op->a.bytes <= o->ovl->fusion_bytes);
        if (!same) {
            (void)scomm_ovl_flush(o);
        }
        if (scomm_ovl_add(o, op) != 0) {
            (void)scomm_ovl_flush(o);
            pthread_mutex_lock(&o->ovl->lock);
            scomm_ovl_enqueue(o->ovl, op);
            pthread_cond_signal(&o->ovl->work_cv);
            pthread_mutex_unlock(&o->ovl->lock);
        }
    }
    g->head = NULL;
    g->tail = NULL;
    for (i = 0; i < ntab; i++) {
        (void)scomm_ovl_flush(&tab[i]);
        pthread_mutex_lock(&tab[i].ovl->lock);
        tab[i].ovl->st.groups += (uint64_t)tab[i].touched;
        pthread_mutex_unlock(&tab[i].ovl->lock);
        free(tab[i].ops);
    }
    free(tab);
    for (i = 0; i < ndef; i++) {
        s = scomm_ovl_wait_op(deferred[i]->req->comm->overlap, deferred[i]);
        if (status == SCOMM_OK) {
            status = s;
        }
    }
    free(deferred);
    return status;
}

/* ---- destroy and stats --------------------------------------------------- */

void scomm_ovl_comm_destroy(scomm_comm_t *comm)
{
    scomm_overlap_t *ovl = comm->overlap;
    scomm_ovl_op_t *op;

    if (ovl == NULL) {
        return;
    }
    pthread_mutex_lock(&ovl->lock);
    atomic_store(&ovl->stop, 1);
    pthread_cond_signal(&ovl->work_cv);
    if (!ovl->have_thread) {
        scomm_ovl_run_inline(ovl, NULL); /* finish (or fail) the queue */
    }
    pthread_mutex_unlock(&ovl->lock);
    if (ovl->have_thread) {
        pthread_join(ovl->thread, NULL);
    }
    /* Nothing is left but, defensively, fail what might be. */
    while ((op = scomm_ovl_dequeue(ovl)) != NULL) {
        scomm_ovl_finish(ovl, op, SCOMM_ERR_ABORTED,
                         "the communicator was destroyed");
    }
    free(ovl->fbuf);
    pthread_cond_destroy(&ovl->done_cv);
    pthread_cond_destroy(&ovl->work_cv);
    pthread_mutex_destroy(&ovl->lock);
    comm->overlap = NULL;
    free(ovl);
}

scomm_status_t scomm_overlap_stats(scomm_comm_t *comm,
                                   scomm_overlap_stats_t *out)
{
    scomm_overlap_t *ovl;

    if ((comm != NULL) && (comm->magic == SCOMM_COMM_DEAD)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "scomm_overlap_stats: the communicator was "
                               "destroyed");
    }
    if ((comm == NULL) || (comm->magic != SCOMM_COMM_MAGIC)) {
        return scomm_comm_check(comm, "scomm_overlap_stats");
    }
    if (out == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_overlap_stats: out is NULL");
    }
    ovl = comm->overlap;
    if (ovl == NULL) {
        memset(out, 0, sizeof(*out));
        return SCOMM_OK;
    }
    pthread_mutex_lock(&ovl->lock);
    *out = ovl->st;
    pthread_mutex_unlock(&ovl->lock);
    return SCOMM_OK;
}

/* ---- the overlap module (core/module.h) ---------------------------------- */

/* Listed after the collectives and the vendor backends it runs on, so its
 * comm_stop (joining the progress thread) comes before theirs. */
const scomm_module_t scomm_module_overlap = {
    .name      = "overlap",
    .params    = scomm_ovl_params,
    .nparams   = SCOMM_ARRAY_SIZE(scomm_ovl_params),
    .comm_stop = scomm_ovl_comm_destroy,
};
