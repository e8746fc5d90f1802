/*
 * stage.c - collectives and point-to-point calls on device buffers of a
 * native communicator (stage.h), through page-locked host memory. A
 * blocking collective runs here, start to end:
 *
 *   caller's stream --ev_in--> internal stream: copies device -> pinned
 *   --ev_ready--> host: the native collective on the pinned copies (wire)
 *   --> internal stream: copies pinned -> device --ev_out--> caller's stream
 *
 * On a communicator hinted device (scomm_mem_kind_hint: every rank's
 * buffers are device memory), a fixed-size collective (all but
 * all_to_allv) whose per-rank block (a->bytes) is larger than one chunk
 * (SCOMM_DEVICE_CHUNK) is pipelined over two pinned buffers
 * (stage_chunked): chunk j is the same collective on bytes
 * [j * cb, j * cb + n) of every block, its pieces packed in pinned memory
 * (stage_lay: 1 or p blocks a side; in-place forms keep their form), and
 * the copy in of chunk i+1 and the copies back of chunk i-1 run on the
 * internal stream while chunk i is on the wire. Every rank splits alike
 * because the split depends only on the hint, the op, a->bytes and the
 * chunk, never on this rank's buffer kinds; without the hint a rank with
 * host buffers would run one call of the whole count, so the call is
 * staged whole (stage_whole), as are all_to_allv (its blocks have no
 * common stride) and point-to-point calls (a message stays one message,
 * so a receiver with host buffers still matches it). Each chunk is one
 * scomm_coll_run: telemetry counts it as a call, and the selection
 * record is the last chunk's.
 *
 * A non-blocking or grouped collective, and every send and receive, is a
 * job instead (stage.h invariants 4-6): set up and its copies in enqueued
 * when the call is made, its wire run by the progress engine (src/overlap,
 * through the hooks api/coll.c gives it) or the transports, its copies
 * back enqueued after the wire, and handed to the caller's stream by
 * scomm_wait/scomm_test.
 * Between the ranks of one host, under the hint SCOMM_MEM_CUDA, blocking
 * all_gather, broadcast and all_to_all go to ipc.c first (CUDA IPC:
 * device-to-device copies); what it declines is staged here. So does a
 * send, blocking or not, of CUDA memory above the eager limit to a rank
 * of this host (ipc.c offers it; a declined one is staged: a blocking one
 * as any send, an isend through the slot it took at the call, its copy
 * enqueued and polled by the progress), and a
 * receive into CUDA memory takes such offers with scomm_stage_p2p_take:
 * the copy out of the sender's memory goes straight into its device
 * buffer on the internal stream, and no copy back follows.
 *
 * Where the call returns: after the copies back are enqueued, without
 * waiting for them (the caller's stream waits for ev_out). It cannot
 * return before its input reached the host: a native collective runs on
 * host threads, and a host function enqueued on the stream would need a
 * proxy thread per communicator to run the wire (not built).
 *
 * Invariants: stage.h's, and
 *  1. The host touches a pinned buffer only after an event recorded on the
 *     internal stream after every copy that used it, so a copy back of the
 *     previous call is never overwritten.
 *  2. Every wait for the device is a poll bounded by the communicator's
 *     timeout (SCOMM_ERR_TIMED_OUT naming the copy), never a
 *     cudaEventSynchronize.
 *  3. A failed call copies nothing back: the caller's output is untouched
 *     unless the wire failed half-way through a pipelined call (then, as
 *     on host buffers, the output is undefined and the world failed).
 *  4. A pipelined call moves every side through pinned memory, on the
 *     internal stream only: under the hint every buffer is taken for
 *     device memory, and each chunk's pieces are packed by copies.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/util.h"
#include "backend.h"
#include "ipc.h"

/* The staging memory and events of one non-blocking call (a slot): its
 * own, so calls in flight never share pinned memory. */
typedef struct stage_slot {
    struct stage_slot *next;      /* in the free pool */
    char              *pin;       /* page-locked */
    size_t             pin_len;
    void              *ev_in;     /* recorded on the caller's stream */
    void              *ev_ready;  /* copies in done */
    void              *ev_out;    /* copies back done */
    void              *busy;      /* an event to pass before reuse */
} stage_slot_t;

struct scomm_dev_stage {
    pthread_mutex_t      lock;
    pthread_mutex_t      pool_lock;  /* pool, npool */
    stage_slot_t        *pool;
    int                  npool;
    const scomm_devrt_t *rt;
    void                *stream;      /* internal, non-blocking */
    void                *ev_in;       /* recorded on the caller's stream */
    void                *ev_ready[2]; /* on the internal stream */
    void                *ev_out;      /* on the internal stream */
    char                *pin;         /* page-locked */
    size_t               pin_len;
    size_t               chunk;       /* SCOMM_DEVICE_CHUNK */
};

typedef struct scomm_dev_stage stage_t;

/* ---- set-up ---- */

static scomm_status_t stage_rt_fail(scomm_comm_t *comm, const char *op,
                                    const char *err)
{
    return scomm_set_error(comm, SCOMM_ERR_SYSTEM, "%s: device buffers: %s",
                           op, err);
}

static scomm_status_t stage_get(scomm_comm_t *comm, const char *op,
                                stage_t **st_p)
{
    const scomm_devrt_t *rt = atomic_load(&scomm_memkind_rt);
    stage_t *st = comm->dev_stage;
    scomm_pval_t pv;
    char err[256];
    int i, rc;

    if (st != NULL) {
        *st_p = st;
        return SCOMM_OK;
    }
    if (rt == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: device buffers need a CUDA or HIP "
                               "runtime with the memory calls in the "
                               "process (or SCOMM_CUDART_LIBRARY); none "
                               "found", op);
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: no memory for the staging state", op);
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->pool_lock, NULL);
    st->rt = rt;
    scomm_param_get_or_warn("SCOMM_DEVICE_CHUNK", &pv);
    st->chunk = (size_t)pv.u;
    rc = scomm_devrt_stream_create(rt, &st->stream, err, sizeof(err));
    if (rc == 0) {
        rc = scomm_devrt_event_create(rt, &st->ev_in, err, sizeof(err));
    }
    for (i = 0; (i < 2) && (rc == 0); i++) {
        rc = scomm_devrt_event_create(rt, &st->ev_ready[i], err,
                                      sizeof(err));
    }
    if (rc == 0) {
        rc = scomm_devrt_event_create(rt, &st->ev_out, err, sizeof(err));
    }
    comm->dev_stage = st;
    if (rc != 0) {
        scomm_dev_stage_free(comm);
        return stage_rt_fail(comm, op, err);
    }
    *st_p = st;
    return SCOMM_OK;
}

static void stage_slot_free(stage_t *st, stage_slot_t *sl)
{
    scomm_devrt_host_free(st->rt, sl->pin); /* synchronises */
    scomm_devrt_event_destroy(st->rt, sl->ev_in);
    scomm_devrt_event_destroy(st->rt, sl->ev_ready);
    scomm_devrt_event_destroy(st->rt, sl->ev_out);
    free(sl);
}

void scomm_dev_stage_free(scomm_comm_t *comm)
{
    stage_t *st = comm->dev_stage;
    int i;

    scomm_ipc_free(comm); /* closes the peers' memory it opened */
    if (st == NULL) {
        return;
    }
    comm->dev_stage = NULL;
    /* cudaFreeHost synchronises the device first: no copy is left using
     * the pinned buffer when it goes */
    scomm_devrt_host_free(st->rt, st->pin);
    while (st->pool != NULL) {
        stage_slot_t *sl = st->pool;

        st->pool = sl->next;
        stage_slot_free(st, sl);
    }
    pthread_mutex_destroy(&st->pool_lock);
    scomm_devrt_event_destroy(st->rt, st->ev_in);
    for (i = 0; i < 2; i++) {
        scomm_devrt_event_destroy(st->rt, st->ev_ready[i]);
    }
    scomm_devrt_event_destroy(st->rt, st->ev_out);
    scomm_devrt_stream_destroy(st->rt, st->stream);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* ---- waiting (invariant 2) ---- */

static scomm_status_t stage_wait(scomm_comm_t *comm, stage_t *st, void *ev,
                                 const char *op, const char *what)
{
    return scomm_dev_wait(comm, st->rt, ev, op, what);
}

scomm_status_t scomm_dev_wait(scomm_comm_t *comm, const scomm_devrt_t *rt,
                              void *ev, const char *op, const char *what)
{
    uint64_t deadline = scomm_deadline_ms(
        (comm->timeout_ms > 0) ? comm->timeout_ms : 600000);
    struct timespec nap = {0, 20000};
    char err[256];
    int spins = 0, r;

    for (;;) {
        r = scomm_devrt_event_query(rt, ev, err, sizeof(err));
        if (r == SCOMM_RT_DONE) {
            return SCOMM_OK;
        }
        if (r == SCOMM_RT_ERROR) {
            return stage_rt_fail(comm, op, err);
        }
        if (scomm_now_ns() >= deadline) {
            return scomm_set_error(comm, SCOMM_ERR_TIMED_OUT,
                                   "%s: device buffers: %s not done after "
                                   "%lld ms (the caller's stream never got "
                                   "there?)", op, what,
                                   (long long)comm->timeout_ms);
        }
        if (++spins < 64) {
            scomm_cpu_relax();
        } else {
            nanosleep(&nap, NULL);
        }
    }
}

/* Pinned memory of at least n bytes; waits for every copy of the last
 * call first when it must grow. */
static scomm_status_t stage_pin(scomm_comm_t *comm, stage_t *st, size_t n,
                                const char *op)
{
    char err[256];
    size_t len;

    if (n <= st->pin_len) {
        return SCOMM_OK;
    }
    len = SCOMM_ALIGN_UP(n, (size_t)(1u << 20));
    scomm_devrt_host_free(st->rt, st->pin); /* synchronises */
    st->pin     = NULL;
    st->pin_len = 0;
    if (scomm_devrt_host_alloc(st->rt, (void **)&st->pin, len, err,
                               sizeof(err)) != 0) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: device buffers: %zu bytes of pinned "
                               "staging memory: %s", op, len, err);
    }
    st->pin_len = len;
    return SCOMM_OK;
}

/* Work enqueued on stream `to` from now on waits for what is on `from`:
 * ev recorded on from, to waits for it. */
static scomm_status_t stage_order(scomm_comm_t *comm, stage_t *st, void *ev,
                                  void *from, void *to, const char *op)
{
    char err[256];

    if ((scomm_devrt_event_record(st->rt, ev, from, err, sizeof(err)) != 0) ||
        (scomm_devrt_stream_wait(st->rt, to, ev, err, sizeof(err)) != 0)) {
        return stage_rt_fail(comm, op, err);
    }
    return SCOMM_OK;
}

/* The internal stream waits for what is on the caller's stream. */
static scomm_status_t stage_after_caller(scomm_comm_t *comm, stage_t *st,
                                         const char *op)
{
    return stage_order(comm, st, st->ev_in, comm->dev_stream, st->stream,
                       op);
}

/* The caller's stream waits for the copies back. */
static scomm_status_t stage_to_caller(scomm_comm_t *comm, stage_t *st,
                                      const char *op)
{
    return stage_order(comm, st, st->ev_out, st->stream, comm->dev_stream,
                       op);
}

static scomm_status_t stage_copy(scomm_comm_t *comm, stage_t *st, void *dst,
                                 const void *src, size_t n, const char *op)
{
    char err[256];

    if (scomm_devrt_copy_async(st->rt, dst, src, n, st->stream, err,
                               sizeof(err)) != 0) {
        return stage_rt_fail(comm, op, err);
    }
    return SCOMM_OK;
}

/* ev after everything on the internal stream so far. */
static scomm_status_t stage_mark(scomm_comm_t *comm, stage_t *st, void *ev,
                                 const char *op)
{
    char err[256];

    if (scomm_devrt_event_record(st->rt, ev, st->stream, err,
                                 sizeof(err)) != 0) {
        return stage_rt_fail(comm, op, err);
    }
    return SCOMM_OK;
}

/* Host ready: the copies in so far are enqueued. */
static scomm_status_t stage_sync_in(scomm_comm_t *comm, stage_t *st, int b,
                                    const char *op)
{
    return stage_mark(comm, st, st->ev_ready[b], op);
}

/* "path staged ...; " before the selector's reason. */
static void stage_record(scomm_comm_t *comm, const char *path)
{
    scomm_coll_record_t *r = &comm->last_sel;
    char reason[2 * sizeof(r->reason)];

    pthread_mutex_lock(&comm->world->lock);
    snprintf(reason, sizeof(reason), "path %s; %s", path, r->reason);
    reason[sizeof(r->reason) - 1] = '\0'; /* cut to the record's size */
    memcpy(r->reason, reason, sizeof(r->reason));
    pthread_mutex_unlock(&comm->world->lock);
}

/* ---- collectives ---- */

typedef struct {
    const char *p;   /* the caller's buffer */
    size_t      len; /* bytes the call reads or writes of it */
    int         dev;
} stage_side_t;

/* Bytes of a2av's vector: the end of its furthest block. */
static size_t stage_vlen(const size_t *counts, const size_t *displs, int p,
                         size_t es)
{
    size_t end = 0;
    int q;

    for (q = 0; q < p; q++) {
        if ((counts[q] > 0) && (displs[q] + counts[q] > end)) {
            end = displs[q] + counts[q];
        }
    }
    return end * es;
}

/* What a reads (in) and writes (out) on this rank. */
static void stage_extent(const scomm_comm_t *comm, const scomm_coll_args_t *a,
                         size_t *in, size_t *out)
{
    size_t b = a->bytes, pb = a->bytes * (size_t)comm->size;

    switch (a->op) {
    case SCOMM_COLL_ALLGATHER:
    case SCOMM_COLL_GATHER:
        *in  = b;
        *out = pb;
        break;
    case SCOMM_COLL_REDUCESCATTER:
    case SCOMM_COLL_SCATTER:
        *in  = pb;
        *out = b;
        break;
    case SCOMM_COLL_ALLTOALL:
        *in = *out = pb;
        break;
    case SCOMM_COLL_ALLTOALLV:
        *in  = stage_vlen(a->scounts, a->sdispls, comm->size, a->esize);
        *out = stage_vlen(a->rcounts, a->rdispls, comm->size, a->esize);
        break;
    default:
        *in = *out = b;
        break;
    }
}

static scomm_status_t stage_sides(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a,
                                  stage_side_t *in, stage_side_t *out)
{
    scomm_status_t status = SCOMM_OK;
    int k;

    stage_extent(comm, a, &in->len, &out->len);
    in->p   = a->sendbuf;
    out->p  = a->recvbuf;
    in->dev = out->dev = 0;
    if ((in->p != NULL) && (in->len > 0)) {
        status = scomm_memkind_of(comm, name, in->p, in->len, &k);
        in->dev = scomm_memkind_is_dev(k);
    }
    if ((status == SCOMM_OK) && (out->p != NULL) && (out->len > 0)) {
        status = scomm_memkind_of(comm, name, out->p, out->len, &k);
        out->dev = scomm_memkind_is_dev(k);
    }
    return status;
}

scomm_status_t scomm_stage_coll_kind(scomm_comm_t *comm, const char *name,
                                     const scomm_coll_args_t *a, int *dev)
{
    stage_side_t in, out;
    scomm_status_t status;

    *dev = 0;
    if ((comm->dev_hint == SCOMM_MEM_ASCEND) ||
        (comm->dev_hint == SCOMM_MEM_MLU) ||
        (comm->dev_hint == SCOMM_MEM_XPU)) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: %s device memory is not supported on a "
                               "native communicator", name,
                               scomm_mem_kind_name(
                                   (scomm_mem_kind_t)comm->dev_hint));
    }
    status = stage_sides(comm, name, a, &in, &out);
    *dev   = in.dev || out.dev;
    return status;
}

/* A side inside the other (the in-place forms): one staged region. */
static int stage_inside(const stage_side_t *s, const stage_side_t *in)
{
    return (s->p != NULL) && (in->p != NULL) && (s->p >= in->p) &&
           (s->p + s->len <= in->p + in->len);
}

/* Where a call staged whole puts its sides in pinned memory. */
typedef struct {
    size_t need;     /* pinned bytes */
    char  *hin;      /* the host copies (NULL: that side is host) */
    char  *hout;
} stage_plan_t;

/* Plan the call at pin (NULL: only size it) and, with pin, enqueue its
 * copies in on the internal stream. */
static scomm_status_t stage_plan(scomm_comm_t *comm, stage_t *st,
                                 const char *name, const scomm_coll_args_t *a,
                                 const stage_side_t *in,
                                 const stage_side_t *out, char *pin,
                                 stage_plan_t *pl)
{
    const stage_side_t *reg = NULL; /* one region holding both sides */
    scomm_status_t status   = SCOMM_OK;

    if (in->dev && out->dev && stage_inside(in, out)) {
        reg = out;
    } else if (in->dev && out->dev && stage_inside(out, in)) {
        reg = in;
    }
    pl->need = (reg != NULL) ? reg->len
                             : (in->dev ? in->len : 0) +
                                   (out->dev ? out->len : 0);
    pl->hin = pl->hout = NULL;
    if (pin == NULL) {
        return SCOMM_OK;
    }
    if (reg != NULL) {
        pl->hin  = pin + (in->p - reg->p);
        pl->hout = pin + (out->p - reg->p);
        return stage_copy(comm, st, pin, reg->p, reg->len, name);
    }
    if (in->dev) {
        pl->hin = pin;
        status  = stage_copy(comm, st, pin, in->p, in->len, name);
    }
    if (out->dev) {
        pl->hout = pin + (in->dev ? in->len : 0);
        /* all_to_allv writes blocks, not the whole vector: keep its gaps
         * by bringing them along */
        if ((status == SCOMM_OK) && (a->op == SCOMM_COLL_ALLTOALLV)) {
            status = stage_copy(comm, st, pl->hout, out->p, out->len, name);
        }
    }
    return status;
}

static scomm_status_t stage_whole(scomm_comm_t *comm, stage_t *st,
                                  const char *name,
                                  const scomm_coll_args_t *a,
                                  const stage_side_t *in,
                                  const stage_side_t *out)
{
    scomm_status_t status;
    scomm_coll_args_t c = *a;
    stage_plan_t pl;

    (void)stage_plan(comm, st, name, a, in, out, NULL, &pl);
    if (((status = stage_pin(comm, st, pl.need + 64, name)) != SCOMM_OK) ||
        ((status = stage_after_caller(comm, st, name)) != SCOMM_OK) ||
        ((status = stage_plan(comm, st, name, a, in, out, st->pin,
                              &pl)) != SCOMM_OK) ||
        ((status = stage_sync_in(comm, st, 0, name)) != SCOMM_OK) ||
        ((status = stage_wait(comm, st, st->ev_ready[0], name,
                              "the copy to host")) != SCOMM_OK)) {
        return status;
    }
    if (in->dev) {
        c.sendbuf = pl.hin;
    }
    if (out->dev) {
        c.recvbuf = pl.hout;
    }
    status = scomm_coll_run(comm, name, &c);
    if ((status == SCOMM_OK) && out->dev) {
        status = stage_copy(comm, st, (void *)out->p, pl.hout, out->len,
                            name);
    }
    if (status == SCOMM_OK) {
        status = stage_to_caller(comm, st, name);
    }
    return status;
}

/* ---- the pipeline: blocking calls under a device hint ---- */

/*
 * A fixed-size collective seen in blocks of a->bytes (every side holds one
 * block or one per rank, at a stride of a->bytes), and where chunk j of
 * each block (bytes [j * cb, j * cb + n)) sits in one of the two pinned
 * buffers: the chunk is the same collective on n bytes per block, its
 * pieces packed (piece r at r * n).
 *
 *   all_reduce, broadcast, reduce   1 block in, 1 out (elementwise)
 *   all_gather, gather              1 in, p out
 *   reduce_scatter, scatter         p in, 1 out
 *   all_to_all                      p in, p out
 */
typedef struct {
    size_t blk;     /* a->bytes: a block, and the stride between blocks */
    size_t cb;      /* chunk bytes: SCOMM_DEVICE_CHUNK in whole elements */
    size_t half;    /* bytes of one of the two pinned buffers */
    int    nin;     /* blocks of the input: 1 or p */
    int    nout;    /* ... of the output */
    int    rd;      /* this rank's input is read (copied in) */
    int    wr;      /* this rank's output is written (copied back) */
    int    has_in;  /* there is an input (NULL: none), through pinned */
    int    has_out; /* ... an output */
    int    merged;  /* one pinned area holds both sides (in place) */
    int    skip;    /* an output block not copied back, or -1 */
} stage_lay_t;

static void stage_lay(const scomm_comm_t *comm, const scomm_coll_args_t *a,
                      const stage_side_t *in, const stage_side_t *out,
                      size_t cb, stage_lay_t *L)
{
    int p = comm->size, bc = (a->op == SCOMM_COLL_BROADCAST);

    L->blk  = a->bytes;
    L->cb   = cb;
    L->nin  = ((a->op == SCOMM_COLL_REDUCESCATTER) ||
               (a->op == SCOMM_COLL_SCATTER) ||
               (a->op == SCOMM_COLL_ALLTOALL)) ? p : 1;
    L->nout = ((a->op == SCOMM_COLL_ALLGATHER) ||
               (a->op == SCOMM_COLL_GATHER) ||
               (a->op == SCOMM_COLL_ALLTOALL)) ? p : 1;
    /* broadcast's one buffer is the root's input, the others' output; a
     * non-root reduce or gather has no output, a non-root scatter no
     * input (NULL) */
    L->rd = (in->p != NULL) && !(bc && (comm->rank != a->root));
    L->wr = (out->p != NULL) && !(bc && (comm->rank == a->root));
    /* every side there goes through pinned memory: under the hint every
     * buffer is taken for device memory (scomm_memkind_of answers the
     * hint), and a copy is cudaMemcpyDefault, right whatever the memory */
    L->has_in  = (in->p != NULL);
    L->has_out = (out->p != NULL);
    /* the in-place forms keep their form on the chunk (the smaller side
     * is the rank's own piece of the larger); an elementwise call runs
     * in place on its chunk, as the whole call staged would (one region,
     * half the pinned memory) */
    L->merged = L->has_in && L->has_out &&
                (a->inplace || ((L->nin == 1) && (L->nout == 1)));
    /* an in-place all_gather's (gather's) own block is its input, as it
     * was: not copied back */
    L->skip = (L->merged && (L->nout > L->nin)) ? comm->rank : -1;
    L->half = L->merged ? (size_t)SCOMM_MAX(L->nin, L->nout) * cb
                        : (L->has_in ? (size_t)L->nin * cb : 0) +
                              (L->has_out ? (size_t)L->nout * cb : 0);
}

/* Where a chunk of n bytes per block sits in pinned buffer base. */
static void stage_lay_at(const stage_lay_t *L, int rank, char *base,
                         size_t n, char **hin, char **hout)
{
    *hin  = base;
    *hout = base + (L->has_in ? (size_t)L->nin * L->cb : 0);
    if (L->merged) {
        *hout = base;
        if (L->nin > L->nout) {
            *hout = base + (size_t)rank * n; /* in-place reduce_scatter */
        } else if (L->nout > L->nin) {
            *hin = base + (size_t)rank * n;  /* in-place all_gather */
        }
    }
}

/* Enqueue the copies of a chunk's pieces between side s (block r's at
 * s->p + r * blk + off) and pinned memory h (piece r at h + r * n), to_pin
 * or back, but block skip. */
static scomm_status_t stage_pieces(scomm_comm_t *comm, stage_t *st,
                                   const stage_lay_t *L,
                                   const stage_side_t *s, int nblk, char *h,
                                   size_t off, size_t n, int to_pin,
                                   int skip, const char *name)
{
    scomm_status_t status = SCOMM_OK;
    int r;

    for (r = 0; (r < nblk) && (status == SCOMM_OK); r++) {
        char *u = (char *)s->p + (size_t)r * L->blk + off;
        char *v = h + (size_t)r * n;

        if (r != skip) {
            status = stage_copy(comm, st, to_pin ? v : u, to_pin ? u : v, n,
                                name);
        }
    }
    return status;
}

/* Bytes of chunk i of a block. */
static size_t stage_chunk_len(const stage_lay_t *L, size_t i)
{
    size_t off = i * L->cb;

    return (L->blk - off < L->cb) ? L->blk - off : L->cb;
}

/* Enqueue chunk i's copies in, into pinned buffer i % 2, then its
 * ev_ready. */
static scomm_status_t stage_chunk_in(scomm_comm_t *comm, stage_t *st,
                                     const stage_lay_t *L,
                                     const stage_side_t *in, size_t i,
                                     const char *name)
{
    size_t n = stage_chunk_len(L, i);
    scomm_status_t status = SCOMM_OK;
    char *hin, *hout;

    stage_lay_at(L, comm->rank, st->pin + (i % 2) * L->half, n, &hin,
                 &hout);
    if (L->rd) {
        status = stage_pieces(comm, st, L, in, L->nin, hin, i * L->cb, n, 1,
                              -1, name);
    }
    if (status == SCOMM_OK) {
        status = stage_sync_in(comm, st, (int)(i % 2), name);
    }
    return status;
}

/* A fixed-size collective over two pinned buffers, chunk by chunk (see
 * the file's comment): chunk i is on the wire while the copies back of
 * chunk i-1 and in of chunk i+1 run on the internal stream. */
static scomm_status_t stage_chunked(scomm_comm_t *comm, stage_t *st,
                                    const char *name,
                                    const scomm_coll_args_t *a,
                                    const stage_side_t *in,
                                    const stage_side_t *out)
{
    size_t cb = st->chunk / a->esize * a->esize;
    size_t nchunks = (a->bytes + cb - 1) / cb, i;
    scomm_status_t status;
    scomm_coll_args_t c;
    stage_lay_t L;

    stage_lay(comm, a, in, out, cb, &L);
    if (((status = stage_pin(comm, st, 2 * L.half, name)) != SCOMM_OK) ||
        ((status = stage_after_caller(comm, st, name)) != SCOMM_OK)) {
        return status;
    }
    for (i = 0; (i < 2) && (i < nchunks) && (status == SCOMM_OK); i++) {
        status = stage_chunk_in(comm, st, &L, in, i, name);
    }
    for (i = 0; (i < nchunks) && (status == SCOMM_OK); i++) {
        size_t off = i * cb, n = stage_chunk_len(&L, i);
        char *hin, *hout;

        stage_lay_at(&L, comm->rank, st->pin + (i % 2) * L.half, n, &hin,
                     &hout);
        status = stage_wait(comm, st, st->ev_ready[i % 2], name,
                            "the copy to host");
        if (status != SCOMM_OK) {
            break;
        }
        c         = *a;
        c.count   = n / a->esize;
        c.bytes   = n;
        c.sendbuf = L.has_in ? hin : NULL;
        c.recvbuf = L.has_out ? hout : NULL;
        c.inplace = L.merged;
        status    = scomm_coll_run(comm, name, &c);
        if ((status == SCOMM_OK) && L.wr) {
            status = stage_pieces(comm, st, &L, out, L.nout, hout, off, n, 0,
                                  L.skip, name);
        }
        if ((status == SCOMM_OK) && (i + 2 < nchunks)) {
            status = stage_chunk_in(comm, st, &L, in, i + 2, name);
        }
    }
    if (status == SCOMM_OK) {
        status = stage_to_caller(comm, st, name);
    }
    return status;
}

/* What ipc.c borrows (ipc.h): the stream and the outer events. */
static void stage_ipc_ctx(const stage_t *st, scomm_ipc_ctx_t *x)
{
    x->rt     = st->rt;
    x->stream = st->stream;
    x->ev_in  = st->ev_in;
    x->ev_out = st->ev_out;
}

scomm_status_t scomm_stage_coll(scomm_comm_t *comm, const char *name,
                                const scomm_coll_args_t *a)
{
    scomm_ipc_ctx_t x;
    stage_side_t in, out;
    scomm_status_t status;
    char path[96];
    stage_t *st;

    if (((status = stage_sides(comm, name, a, &in, &out)) != SCOMM_OK) ||
        ((status = stage_get(comm, name, &st)) != SCOMM_OK)) {
        return status;
    }
    pthread_mutex_lock(&st->lock);
    stage_ipc_ctx(st, &x);
    if (scomm_ipc_coll(comm, name, a, &x, &status)) {
        pthread_mutex_unlock(&st->lock); /* ran over CUDA IPC (ipc.c) */
        return status;
    }
    /* The pipeline splits the call into chunk-sized calls of the same
     * collective, which every rank must do alike: only under a device
     * hint, the caller's promise that every rank's buffers are device
     * memory (a rank with host buffers would run one call of the whole
     * count), and only on what every rank knows alike (the op, a->bytes,
     * SCOMM_DEVICE_CHUNK), never on this rank's buffer kinds. */
    if ((a->op != SCOMM_COLL_ALLTOALLV) && (a->bytes > st->chunk) &&
        (st->chunk >= a->esize) && scomm_memkind_is_dev(comm->dev_hint)) {
        status = stage_chunked(comm, st, name, a, &in, &out);
        snprintf(path, sizeof(path), "staged (pinned host, 2 x %zu KiB "
                 "chunks)", st->chunk >> 10);
    } else {
        status = stage_whole(comm, st, name, a, &in, &out);
        snprintf(path, sizeof(path), "staged (pinned host)");
    }
    pthread_mutex_unlock(&st->lock);
    if (status == SCOMM_OK) {
        stage_record(comm, path);
    }
    return status;
}

/* ---- non-blocking and grouped calls, point-to-point (invariants 4-6) ---- */

#define STAGE_POOL_MAX 16 /* free slots kept per communicator */

enum { STAGE_JOB_COLL, STAGE_JOB_SEND, STAGE_JOB_RECV };

struct scomm_stage_job {
    stage_t      *st;
    stage_slot_t *slot;
    void         *stream;    /* the caller's, when the call was made */
    const char   *name;
    int           kind;
    char         *back_dst;  /* device memory the result goes back to */
    const char   *back_src;  /* from the slot's pinned memory */
    size_t        back_len;
    int           in_rec;    /* ev_ready recorded */
    int           out_rec;   /* ev_out recorded */
};

/* A free slot of at least n pinned bytes: from the pool when one has
 * passed its busy event (invariant 1), else a new one. */
static scomm_status_t stage_slot_get(scomm_comm_t *comm, stage_t *st,
                                     size_t n, const char *op,
                                     stage_slot_t **sl_p)
{
    stage_slot_t *sl = NULL, **pp;
    char err[256];
    int rc = 0;

    pthread_mutex_lock(&st->pool_lock);
    for (pp = &st->pool; *pp != NULL; pp = &(*pp)->next) {
        if (((*pp)->busy == NULL) ||
            (scomm_devrt_event_query(st->rt, (*pp)->busy, err,
                                     sizeof(err)) == SCOMM_RT_DONE)) {
            sl  = *pp;
            *pp = sl->next;
            st->npool--;
            break;
        }
    }
    pthread_mutex_unlock(&st->pool_lock);
    if (sl == NULL) {
        sl = calloc(1, sizeof(*sl));
        if (sl == NULL) {
            return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                   "%s: no memory for a staging slot", op);
        }
        rc = scomm_devrt_event_create(st->rt, &sl->ev_in, err, sizeof(err));
        if (rc == 0) {
            rc = scomm_devrt_event_create(st->rt, &sl->ev_ready, err,
                                          sizeof(err));
        }
        if (rc == 0) {
            rc = scomm_devrt_event_create(st->rt, &sl->ev_out, err,
                                          sizeof(err));
        }
        if (rc != 0) {
            stage_slot_free(st, sl);
            return stage_rt_fail(comm, op, err);
        }
    }
    sl->busy = NULL;
    sl->next = NULL;
    if (sl->pin_len < n) {
        size_t len = SCOMM_ALIGN_UP(n, (size_t)(64u << 10));

        scomm_devrt_host_free(st->rt, sl->pin); /* idle: nothing waits */
        sl->pin_len = 0;
        if (scomm_devrt_host_alloc(st->rt, (void **)&sl->pin, len, err,
                                   sizeof(err)) != 0) {
            stage_slot_free(st, sl);
            return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                   "%s: device buffers: %zu bytes of pinned "
                                   "staging memory: %s", op, len, err);
        }
        sl->pin_len = len;
    }
    *sl_p = sl;
    return SCOMM_OK;
}

static scomm_status_t stage_job_new(scomm_comm_t *comm, const char *name,
                                    int kind, size_t n,
                                    scomm_stage_job_t **job_p)
{
    scomm_stage_job_t *job;
    scomm_status_t status;
    stage_t *st;

    if ((status = stage_get(comm, name, &st)) != SCOMM_OK) {
        return status;
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: no memory for a staged request", name);
    }
    job->st     = st;
    job->name   = name;
    job->kind   = kind;
    job->stream = comm->dev_stream; /* read once per call, like the hint */
    status = stage_slot_get(comm, st, n + 64, name, &job->slot);
    if (status == SCOMM_OK) {
        /* the internal stream waits for the caller's stream */
        status = stage_order(comm, st, job->slot->ev_in, job->stream,
                             st->stream, name);
    }
    if (status != SCOMM_OK) {
        scomm_stage_job_release(comm, job);
        return status;
    }
    *job_p = job;
    return SCOMM_OK;
}

/* The copies in are enqueued: an event after them. */
static scomm_status_t stage_job_sync_in(scomm_comm_t *comm,
                                        scomm_stage_job_t *job)
{
    scomm_status_t status = stage_mark(comm, job->st, job->slot->ev_ready,
                                       job->name);

    job->in_rec = (status == SCOMM_OK);
    return status;
}

void scomm_stage_job_release(scomm_comm_t *comm, void *arg)
{
    scomm_stage_job_t *job = arg;
    stage_slot_t *sl;
    stage_t *st;

    (void)comm;
    if (job == NULL) {
        return;
    }
    st = job->st;
    sl = job->slot;
    if (sl != NULL) {
        /* a copy may still use it: the last event recorded after one */
        sl->busy = job->out_rec  ? sl->ev_out
                   : job->in_rec ? sl->ev_ready
                                 : sl->ev_in;
        pthread_mutex_lock(&st->pool_lock);
        if (st->npool < STAGE_POOL_MAX) {
            sl->next = st->pool;
            st->pool = sl;
            st->npool++;
            sl = NULL;
        }
        pthread_mutex_unlock(&st->pool_lock);
        if (sl != NULL) {
            stage_slot_free(st, sl); /* synchronises */
        }
    }
    free(job);
}

scomm_status_t scomm_stage_coll_post(scomm_comm_t *comm, const char *name,
                                     const scomm_coll_args_t *a,
                                     scomm_coll_args_t *c,
                                     scomm_stage_job_t **job_p)
{
    scomm_stage_job_t *job = NULL;
    stage_side_t in, out;
    scomm_status_t status;
    stage_plan_t pl;

    *c     = *a;
    *job_p = NULL;
    if ((status = stage_sides(comm, name, a, &in, &out)) != SCOMM_OK) {
        return status;
    }
    if (comm->dev_stage != NULL) {
        (void)stage_plan(comm, comm->dev_stage, name, a, &in, &out, NULL,
                         &pl);
    } else {
        pl.need = in.len + out.len; /* at most; sized once the state is */
    }
    status = stage_job_new(comm, name, STAGE_JOB_COLL, pl.need, &job);
    if (status == SCOMM_OK) {
        status = stage_plan(comm, job->st, name, a, &in, &out,
                            job->slot->pin, &pl);
    }
    if (status == SCOMM_OK) {
        status = stage_job_sync_in(comm, job);
    }
    if (status != SCOMM_OK) {
        scomm_stage_job_release(comm, job);
        return status;
    }
    if (in.dev) {
        c->sendbuf = pl.hin;
    }
    if (out.dev) {
        c->recvbuf      = pl.hout;
        job->back_dst = (char *)out.p;
        job->back_src = pl.hout;
        job->back_len = out.len;
    }
    *job_p = job;
    return SCOMM_OK;
}

scomm_status_t scomm_stage_job_ready(scomm_comm_t *comm, void *arg)
{
    scomm_stage_job_t *job = arg;

    return stage_wait(comm, job->st, job->slot->ev_ready, job->name,
                      "the copy to host");
}

/* The wire is done: the copy back and the event after it (invariant 5).
 * n bytes of the result (a receive may get less than it can hold). */
static scomm_status_t stage_job_back(scomm_comm_t *comm,
                                     scomm_stage_job_t *job, size_t n)
{
    scomm_status_t status = SCOMM_OK;

    if ((job->back_len > 0) && (n > 0)) {
        status = stage_copy(comm, job->st, job->back_dst, job->back_src,
                            (n < job->back_len) ? n : job->back_len,
                            job->name);
    }
    if (status == SCOMM_OK) {
        status       = stage_mark(comm, job->st, job->slot->ev_out,
                                  job->name);
        job->out_rec = (status == SCOMM_OK);
    }
    return status;
}

scomm_status_t scomm_stage_job_done(scomm_comm_t *comm, void *arg)
{
    scomm_stage_job_t *job = arg;

    return stage_job_back(comm, job, job->back_len);
}

scomm_status_t scomm_stage_job_reap(scomm_comm_t *comm, void *arg)
{
    scomm_stage_job_t *job = arg;
    char err[256];

    if (job->out_rec &&
        (scomm_devrt_stream_wait(job->st->rt, job->stream,
                                 job->slot->ev_out, err, sizeof(err)) != 0)) {
        return stage_rt_fail(comm, job->name, err);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_stage_p2p_post(scomm_comm_t *comm, const char *name,
                                    int is_send, void *buf, size_t bytes,
                                    void **pin_p, scomm_stage_job_t **job_p)
{
    scomm_stage_job_t *job = NULL;
    scomm_status_t status;

    *job_p = NULL;
    status = stage_job_new(comm, name, is_send ? STAGE_JOB_SEND
                                               : STAGE_JOB_RECV,
                           bytes, &job);
    if ((status == SCOMM_OK) && is_send) {
        /* the wire takes host memory: wait for the copy (invariant 4) */
        status = stage_copy(comm, job->st, job->slot->pin, buf, bytes, name);
        if (status == SCOMM_OK) {
            status = stage_job_sync_in(comm, job);
        }
        if (status == SCOMM_OK) {
            status = scomm_stage_job_ready(comm, job);
        }
    }
    if (status != SCOMM_OK) {
        scomm_stage_job_release(comm, job);
        return status;
    }
    if (!is_send) {
        job->back_dst = buf;
        job->back_src = job->slot->pin;
        job->back_len = bytes;
    }
    *pin_p = job->slot->pin;
    *job_p = job;
    return SCOMM_OK;
}

scomm_status_t scomm_stage_p2p_reserve(scomm_comm_t *comm, const char *name,
                                       size_t bytes, void **pin_p,
                                       scomm_stage_job_t **job_p)
{
    scomm_stage_job_t *job = NULL;
    scomm_status_t status;

    *job_p = NULL;
    status = stage_job_new(comm, name, STAGE_JOB_SEND, bytes, &job);
    if (status != SCOMM_OK) {
        return status;
    }
    *pin_p = job->slot->pin;
    *job_p = job;
    return SCOMM_OK;
}

scomm_status_t scomm_stage_p2p_copy_in(scomm_comm_t *comm,
                                       scomm_stage_job_t *job,
                                       const void *buf, size_t bytes)
{
    /* after the caller's stream (the job's ev_in); only enqueued */
    scomm_status_t status = stage_copy(comm, job->st, job->slot->pin, buf,
                                       bytes, job->name);

    if (status == SCOMM_OK) {
        status = stage_job_sync_in(comm, job);
    }
    return status;
}

int scomm_stage_p2p_copy_query(const scomm_stage_job_t *job, char *err,
                               size_t len)
{
    return scomm_devrt_event_query(job->st->rt, job->slot->ev_ready, err,
                                   len);
}

/* ---- CUDA IPC of point-to-point messages (ipc.c) ---- */

scomm_status_t scomm_stage_ipc_begin(scomm_comm_t *comm, const char *op,
                                     scomm_ipc_ctx_t *x)
{
    scomm_status_t status;
    stage_t *st = NULL;

    if ((status = stage_get(comm, op, &st)) != SCOMM_OK) {
        return status;
    }
    pthread_mutex_lock(&st->lock);
    stage_ipc_ctx(st, x);
    return SCOMM_OK;
}

void scomm_stage_ipc_end(scomm_comm_t *comm)
{
    pthread_mutex_unlock(&comm->dev_stage->lock);
}

void scomm_stage_p2p_ipc_ready(scomm_comm_t *comm, const char *op)
{
    scomm_ipc_ctx_t x;

    if (scomm_stage_ipc_begin(comm, op, &x) == SCOMM_OK) {
        scomm_ipc_p2p_ready(comm, &x);
        scomm_stage_ipc_end(comm);
    }
}

int scomm_stage_p2p_take(scomm_req_t *req, const scomm_p2p_offer_t *o,
                         scomm_status_t *status, int *why)
{
    scomm_stage_job_t *job = req->stage_job;
    scomm_ipc_ctx_t x;
    int verdict;

    if ((job == NULL) || (job->kind != STAGE_JOB_RECV)) {
        *why = SCOMM_IPC_WHY_HOST;
        return SCOMM_IPC_DECLINED;
    }
    /* the job's own stream order: its ev_in put the internal stream after
     * the caller's when the receive was posted */
    x.rt     = job->st->rt;
    x.stream = job->st->stream;
    x.ev_in  = NULL;
    x.ev_out = job->slot->ev_out;
    verdict  = scomm_ipc_p2p_take(req->comm, &x, job->back_dst, req->peer,
                                  o, status, why);
    job->out_rec = (verdict != SCOMM_IPC_DECLINED);
    if (verdict == SCOMM_IPC_DONE) {
        job->back_len = 0; /* the bytes are there: no copy back */
    }
    return verdict;
}

void scomm_stage_p2p_end(scomm_req_t *req)
{
    scomm_stage_job_t *job = req->stage_job;
    scomm_status_t status;

    req->stage_end = NULL;
    req->stage_job = NULL;
    if ((job->kind == STAGE_JOB_RECV) &&
        atomic_load_explicit(&req->done, memory_order_acquire) &&
        (req->status == SCOMM_OK)) {
        status = stage_job_back(req->comm, job, req->xfer);
        if (status == SCOMM_OK) {
            status = scomm_stage_job_reap(req->comm, job);
        }
        if (status != SCOMM_OK) {
            /* the request's status was taken already: say it loudly */
            scomm_error(SCOMM_SUB_P2P, "%s", scomm_last_error());
        }
    }
    scomm_stage_job_release(req->comm, job);
}
