/*
 * ipc.c - CUDA IPC between the ranks of one host (ipc.h): the data-moving
 * collectives on device buffers copy straight out of the peers' device
 * memory, on the communicator's internal stream.
 *
 *   collective: caller's stream done (host waits ev_in)
 *     --> exchange records {handle of my source's allocation, offset, ok}
 *     --> open the peers' handles (cached) --> exchange "opened"
 *     --> device-to-device copies, each rank into its own output
 *     --> host waits ev_out --> exchange "done" --> caller's stream waits
 *
 * A send (scomm_send, scomm_isend, an isend inside a group) of CUDA
 * device memory to a rank of this host, larger than its transport's eager
 * limit, is an offer instead (core/p2p.c "IPC offers": the match keeps
 * its place on (peer, tag)); a blocking one runs:
 *
 *   sender: caller's stream done (host waits ev_in) --> post the receive
 *     of the reply --> offer {handle, offset, length, seq} on tag -1 - T
 *   receiver (its progress, when a receive for T matched the offer):
 *     device buffer, can open the handle --> copy device-to-device out of
 *     the sender's buffer on the internal stream, after the caller's
 *     stream (the job's order) --> host waits the copy --> reply "done"
 *     otherwise --> post the receive again on SCOMM_TAG_IPC_DATA + seq
 *     --> reply "declined" (or "truncated", as a message too long)
 *   sender: "done" --> return (the receiver no longer reads its buffer);
 *     "declined" --> the bytes staged as any send, on the data tag.
 *
 * Only above the eager limit: such a send already waits for its receiver
 * (a rendezvous), so waiting for the reply changes no program's
 * behaviour, whereas an eager send returns at once and programs may rely
 * on it (send, send, then receive). Every receive, blocking or not, takes
 * offers. Opened handles go in a cache of their own (p2p_cache, world
 * lock), not the collectives' (stage lock), so neither evicts what the
 * other is copying from; CUDA counts a handle opened twice.
 *
 * A non-blocking send (scomm_isend) makes the same offer at the call and
 * returns its request; the progress (scomm_world_progress, whoever runs
 * it: scomm_wait, scomm_test, any blocking call) takes it from there:
 *
 *   call: caller's stream done (host waits ev_in, bounded, as a staged
 *     isend waits for its copy to host) --> take a pinned slot (a job of
 *     stage.c) --> post the receive of the reply --> offer --> return
 *   progress, each turn, never waiting:
 *     "done" --> the request completes (metrics: isend, algo cuda_ipc)
 *     "truncated", "failed", no reply (fault, deadline) --> it completes
 *       with the error, naming the peer
 *     "declined" --> enqueue the copy into the slot on the internal
 *       stream --> poll its event (bounded by comm's timeout; a wait naps
 *       50 us meanwhile, core/progress.c) --> send the slot's bytes on
 *       SCOMM_TAG_IPC_DATA + seq --> it completes when that send did
 *       (metrics: isend, algo p2p)
 *
 * Why the progress and not scomm_wait/scomm_test alone: a program may
 * wait for something else first (rank 0 isends to rank 1, then receives
 * rank 1's answer, which rank 1 sends once it has the bytes); declined
 * bytes must go out from inside that receive, as a host isend's would.
 * Why the slot is taken at the call: the progress holds the world lock,
 * and taking pinned memory may allocate it (cudaHostAlloc) or free a
 * smaller one (cudaFreeHost synchronises the device); the progress only
 * enqueues a copy, records and queries an event. Why the host waits for
 * the caller's stream in the call: the offer must go at the call to keep
 * its place among (peer, tag)'s messages (a host isend after it would
 * overtake it), and the receiver copies as soon as it has it.
 *
 * Why the host waits at both ends instead of cross-process events
 * (cudaIpcGetEventHandle): the exchanges already block the host (a native
 * collective runs on host threads, as in stage.c), the copies are the
 * whole call, and a host wait behaves the same on every runtime and on
 * the fake device; an IPC event would save the caller's stream one host
 * round trip per call, no bandwidth.
 *
 * all_reduce and reduce_scatter need a reduction kernel on the device,
 * which scomm does not have (no build-time CUDA): they stay staged.
 *
 * Invariants: ipc.h's, and
 *  1. Every exchange of a collective happens on every rank whatever it
 *     found (a rank that cannot go on still says so), so a "no" never
 *     leaves a peer waiting; only a failed wire (a dead peer) ends one
 *     early, with the world's fault.
 *  2. A rank writes only its own output; it reads a peer's source only
 *     between the "records" and "done" exchanges, while the peer is held
 *     in the call.
 *  3. A send's offer goes at the call, in the order of the sender's
 *     messages to that peer. A send returns, or an isend's request
 *     completes, only after its receiver's reply, sent only once the
 *     receiver's copy ran ("done"), or once the declined bytes went out
 *     staged (read from the sender's buffer by the copy to host, which
 *     ran before they went); after that scomm never reads the buffer.
 *  4. An isend's steps run under the world lock and never wait for the
 *     device: they enqueue a copy, record and query an event. Each of its
 *     waits is bounded by comm's timeout: the reply's and the staged
 *     send's by the request wait's deadline, the copy's by a deadline of
 *     its own (so scomm_test alone cannot poll it forever).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../telemetry/tm.h"
#include "backend.h"
#include "ipc.h"

#define IPC_REC_MAGIC 0x43504953u /* "SIPC" */

enum { IPC_KNOB_AUTO = 0, IPC_KNOB_OFF = 1, IPC_KNOB_ON = 2 };

/* Why a rank said no (in its record), for the log. */
enum {
    IPC_WHY_NONE = 0,
    IPC_WHY_LOCAL,   /* SCOMM_DEVICE_IPC=0 or no IPC calls: s->why */
    IPC_WHY_FORCED,  /* an algorithm was forced */
    IPC_WHY_INPLACE, /* in-place all_to_all */
    IPC_WHY_HANDLE,  /* no handle for the buffer */
    IPC_WHY_ERROR    /* the call failed on this rank (its stream) */
};

static const char *const ipc_why_text[] = {
    "", "cannot use CUDA IPC", "an algorithm is forced",
    "in-place all_to_all", "no IPC handle for its buffer",
    "the call failed there"};

struct scomm_dev_ipc {
    const scomm_devrt_t *rt;
    int                  knob;     /* SCOMM_DEVICE_IPC */
    int                  local_ok; /* knob not 0 and the runtime can */
    char                 why[192]; /* when not local_ok */
    int                  agreed;   /* collectives: 0 not yet, 1 on, 2 off */
    scomm_ipc_cache_t    cache;    /* evicts: every call waits for its
                                      copies, so none uses an old entry */
    /* point-to-point (world lock): the receives' opened handles (each
     * take waits for its copy, so evicting is safe) and the sends' seq */
    scomm_ipc_cache_t    p2p_cache;
    uint32_t             p2p_seq;
};

typedef struct scomm_dev_ipc ipc_t;

/* A rank's record: its source's allocation, or why not. */
typedef struct {
    uint32_t                 magic;
    int32_t                  ok;
    int32_t                  why;
    int32_t                  pid;
    int32_t                  pad;
    uint64_t                 off;   /* of the source in its allocation */
    uint64_t                 bytes; /* block bytes */
    uint64_t                 seq;   /* op << 16 | root */
    scomm_devrt_ipc_handle_t h;
} ipc_rec_t;

/* ---- state ---- */

static ipc_t *ipc_state(scomm_comm_t *comm, const scomm_ipc_ctx_t *x)
{
    ipc_t *s = comm->dev_ipc;
    scomm_pval_t pv;

    if (s != NULL) {
        return s;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return NULL;
    }
    s->rt = x->rt;
    scomm_ipc_cache_init(&s->cache, x->rt, 1);
    scomm_ipc_cache_init(&s->p2p_cache, x->rt, 1);
    scomm_param_get_or_warn("SCOMM_DEVICE_IPC", &pv);
    s->knob = (int)pv.i;
    if (s->knob == IPC_KNOB_OFF) {
        snprintf(s->why, sizeof(s->why), "SCOMM_DEVICE_IPC=0");
    } else {
        s->local_ok = scomm_devrt_has_ipc(x->rt, s->why, sizeof(s->why));
    }
    comm->dev_ipc = s;
    return s;
}

void scomm_ipc_free(scomm_comm_t *comm)
{
    ipc_t *s = comm->dev_ipc;

    if (s == NULL) {
        return;
    }
    comm->dev_ipc = NULL;
    scomm_ipc_cache_fini(&s->cache);
    scomm_ipc_cache_fini(&s->p2p_cache);
    free(s);
}

/* Why IPC did not run: a warning when SCOMM_DEVICE_IPC=1 asked for it. */
static void ipc_declined(const ipc_t *s, const char *name, const char *fmt,
                         int a, const char *b)
{
    char why[256];

    snprintf(why, sizeof(why), fmt, a, b);
    if (s->knob == IPC_KNOB_ON) {
        scomm_warn(SCOMM_SUB_COLL, "%s: CUDA IPC not used (SCOMM_DEVICE_IPC"
                   "=1): %s; staged instead", name, why);
    } else {
        scomm_debug(SCOMM_SUB_COLL, "%s: CUDA IPC not used: %s; staged",
                    name, why);
    }
}

/* ---- the runtime ---- */

int scomm_ipc_export(const scomm_devrt_t *rt, const void *p, size_t n,
                     scomm_devrt_ipc_handle_t *h, uint64_t *off, char *err,
                     size_t len)
{
    void *base;
    size_t bytes;

    if (scomm_devrt_mem_range(rt, p, &base, &bytes, err, len) != 0) {
        return -1;
    }
    if ((const char *)p + n > (const char *)base + bytes) {
        snprintf(err, len, "[%p, +%zu) runs past its allocation [%p, "
                 "+%zu)", p, n, base, bytes);
        return -1;
    }
    if (scomm_devrt_ipc_get(rt, h, base, err, len) != 0) {
        return -1;
    }
    *off = (uint64_t)((const char *)p - (const char *)base);
    return 0;
}

/* A record for [p, p + n): the handle of its allocation and its offset. */
static void ipc_rec_make(const ipc_t *s, const void *p, size_t n,
                         ipc_rec_t *r)
{
    char err[256];

    r->ok = 0;
    if (scomm_ipc_export(s->rt, p, n, &r->h, &r->off, err,
                         sizeof(err)) != 0) {
        scomm_debug(SCOMM_SUB_COLL, "CUDA IPC: no handle for %p (%zu "
                    "bytes): %s", p, n, err);
        r->why = IPC_WHY_HANDLE;
        return;
    }
    r->ok = 1;
}

/* ---- opened peer allocations (invariant 4 of ipc.h) ---- */

void scomm_ipc_cache_init(scomm_ipc_cache_t *c, const scomm_devrt_t *rt,
                          int evict)
{
    memset(c, 0, sizeof(*c));
    c->rt    = rt;
    c->evict = evict;
}

int scomm_ipc_cache_open(scomm_ipc_cache_t *c, int peer,
                         const scomm_devrt_ipc_handle_t *h, char **p,
                         char *err, size_t len)
{
    scomm_ipc_open_t *e;
    int i, old = 0;

    for (i = 0; i < c->n; i++) {
        e = &c->e[i];
        if ((e->peer == peer) && (memcmp(&e->h, h, sizeof(*h)) == 0)) {
            e->used = ++c->clock;
            *p      = e->p;
            return 0;
        }
    }
    if ((c->n == SCOMM_IPC_CACHE_MAX) && !c->evict) {
        snprintf(err, len, "%d peer allocations open already",
                 SCOMM_IPC_CACHE_MAX);
        return -1;
    }
    if (c->n == SCOMM_IPC_CACHE_MAX) {
        /* full: close the least recently used (the owner says no copy
         * uses it) */
        for (i = 1; i < c->n; i++) {
            if (c->e[i].used < c->e[old].used) {
                old = i;
            }
        }
        scomm_devrt_ipc_close(c->rt, c->e[old].p);
        c->e[old] = c->e[--c->n];
    }
    e = &c->e[c->n];
    if (scomm_devrt_ipc_open(c->rt, &e->p, h, err, len) != 0) {
        return -1;
    }
    e->peer = peer;
    e->h    = *h;
    e->used = ++c->clock;
    c->n++;
    *p = e->p;
    return 0;
}

void scomm_ipc_cache_fini(scomm_ipc_cache_t *c)
{
    int i;

    for (i = 0; i < c->n; i++) {
        scomm_devrt_ipc_close(c->rt, c->e[i].p);
    }
    c->n = 0;
}

static scomm_status_t ipc_rt_fail(scomm_comm_t *comm, const char *op,
                                  const char *err)
{
    return scomm_set_error(comm, SCOMM_ERR_SYSTEM, "%s: CUDA IPC: %s", op,
                           err);
}

/* The host waits for everything on the caller's stream so far. */
static scomm_status_t ipc_caller_done(scomm_comm_t *comm, const char *op,
                                      const scomm_ipc_ctx_t *x)
{
    char err[256];

    if (scomm_devrt_event_record(x->rt, x->ev_in, comm->dev_stream, err,
                                 sizeof(err)) != 0) {
        return ipc_rt_fail(comm, op, err);
    }
    return scomm_dev_wait(comm, x->rt, x->ev_in, op,
                          "the caller's stream before the IPC copies");
}

/* The host waits for the copies; then the caller's stream is after them
 * too (free: they are done). */
static scomm_status_t ipc_copies_done(scomm_comm_t *comm, const char *op,
                                      const scomm_ipc_ctx_t *x)
{
    scomm_status_t status;
    char err[256];

    if (scomm_devrt_event_record(x->rt, x->ev_out, x->stream, err,
                                 sizeof(err)) != 0) {
        return ipc_rt_fail(comm, op, err);
    }
    status = scomm_dev_wait(comm, x->rt, x->ev_out, op, "the IPC copies");
    if ((status == SCOMM_OK) &&
        (scomm_devrt_stream_wait(x->rt, comm->dev_stream, x->ev_out, err,
                                 sizeof(err)) != 0)) {
        status = ipc_rt_fail(comm, op, err);
    }
    return status;
}

static scomm_status_t ipc_copy(scomm_comm_t *comm, const char *op,
                               const scomm_ipc_ctx_t *x, void *dst,
                               const void *src, size_t n)
{
    char err[256];

    if ((dst == src) ||
        (scomm_devrt_copy_async(x->rt, dst, src, n, x->stream, err,
                                sizeof(err)) == 0)) {
        return SCOMM_OK;
    }
    return ipc_rt_fail(comm, op, err);
}

/* ---- the wire ---- */

/* Every rank's each bytes at all + rank * each (invariant 1). */
static scomm_status_t ipc_exchange(scomm_comm_t *comm, const char *op,
                                   void *all, size_t each)
{
    scomm_status_t status;

    pthread_mutex_lock(&comm->world->lock);
    comm->cur_op = op;
    status = scomm_coll_ring_allgather_bytes(comm, all, each);
    pthread_mutex_unlock(&comm->world->lock);
    return status;
}

/* ---- collectives ---- */

/* Is IPC agreed on comm? The first eligible call asks every rank once:
 * whether it can (knob, runtime), and its pid (ranks of one process
 * cannot open each other's handles). -1 with *status when the wire
 * failed. */
static int ipc_agree(scomm_comm_t *comm, ipc_t *s, const char *op,
                     scomm_status_t *status)
{
    int32_t (*all)[2];
    int q, r, bad = -1, twin = -1;

    if (s->agreed != 0) {
        return s->agreed == 1;
    }
    all = calloc((size_t)comm->size, sizeof(*all));
    if (all == NULL) {
        *status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: no memory "
                                  "for the CUDA IPC agreement", op);
        return -1;
    }
    all[comm->rank][0] = s->local_ok;
    all[comm->rank][1] = (int32_t)getpid();
    *status = ipc_exchange(comm, op, all, sizeof(*all));
    for (q = 0; (q < comm->size) && (*status == SCOMM_OK); q++) {
        if ((all[q][0] == 0) && (bad < 0)) {
            bad = q;
        }
        for (r = q + 1; r < comm->size; r++) {
            if ((all[q][1] == all[r][1]) && (twin < 0)) {
                twin = q;
            }
        }
    }
    free(all);
    if (*status != SCOMM_OK) {
        return -1;
    }
    s->agreed = ((bad < 0) && (twin < 0)) ? 1 : 2;
    if (bad >= 0) {
        ipc_declined(s, op, "rank %d cannot use it (%s)", bad,
                     (bad == comm->rank) ? s->why : "see its log");
    } else if (twin >= 0) {
        ipc_declined(s, op, "rank %d shares its process with another "
                     "rank%s", twin, "");
    }
    return s->agreed == 1;
}

/* The source every peer reads of this rank, and its length. */
static void ipc_source(const scomm_comm_t *comm, const scomm_coll_args_t *a,
                       const void **p, size_t *n)
{
    *p = a->sendbuf;
    *n = (a->op == SCOMM_COLL_ALLTOALL) ? a->bytes * (size_t)comm->size
                                        : a->bytes;
    if ((a->op == SCOMM_COLL_BROADCAST) && (comm->rank != a->root)) {
        *p = NULL; /* nobody reads a non-root */
    }
}

/* Does this rank read q's source? */
static int ipc_reads(const scomm_comm_t *comm, const scomm_coll_args_t *a,
                     int q)
{
    if (q == comm->rank) {
        return 0;
    }
    return (a->op != SCOMM_COLL_BROADCAST) || (q == a->root);
}

/* This rank's record for a collective (its "no" too: invariant 1). */
static void ipc_coll_rec(scomm_comm_t *comm, const ipc_t *s,
                         const scomm_coll_args_t *a, ipc_rec_t *r)
{
    const scomm_coll_algo_t *algo = NULL;
    const char *rule;
    const void *p;
    size_t n;

    memset(r, 0, sizeof(*r));
    r->magic = IPC_REC_MAGIC;
    r->pid   = (int32_t)getpid();
    r->bytes = a->bytes; /* every rank checks the others' (a mismatch) */
    r->seq   = (uint64_t)(((uint32_t)a->op << 16) |
                          (uint32_t)(a->root & 0xffff));
    /* a forced algorithm (SCOMM_ALGO, a test hook) is run as asked */
    pthread_mutex_lock(&comm->world->lock);
    (void)scomm_coll_select(comm, a, &algo);
    rule = comm->last_sel.rule_id;
    if ((strncmp(rule, "forced", 6) == 0) ||
        (strncmp(rule, "fallback", 8) == 0)) {
        r->why = IPC_WHY_FORCED;
    }
    pthread_mutex_unlock(&comm->world->lock);
    if (r->why != IPC_WHY_NONE) {
        return;
    }
    if ((a->op == SCOMM_COLL_ALLTOALL) && a->inplace) {
        r->why = IPC_WHY_INPLACE; /* peers would read what it overwrites */
        return;
    }
    ipc_source(comm, a, &p, &n);
    if (p == NULL) {
        r->ok = 1;
        return;
    }
    ipc_rec_make(s, p, n, r);
}

/* Enqueue this rank's copies: each block of its output from its owner. */
static scomm_status_t ipc_coll_copies(scomm_comm_t *comm, const char *op,
                                      const scomm_ipc_ctx_t *x,
                                      const scomm_coll_args_t *a,
                                      char *const *peer)
{
    size_t b = a->bytes, me = (size_t)comm->rank;
    char *out = a->recvbuf;
    const char *in = a->sendbuf;
    scomm_status_t status = SCOMM_OK;
    int q;

    if (a->op == SCOMM_COLL_BROADCAST) {
        return (comm->rank == a->root) ? SCOMM_OK
                                       : ipc_copy(comm, op, x, out,
                                                  peer[a->root], b);
    }
    for (q = 0; (q < comm->size) && (status == SCOMM_OK); q++) {
        const char *src;

        if (a->op == SCOMM_COLL_ALLGATHER) {
            src = (q == comm->rank) ? in : peer[q];
        } else { /* all_to_all: block `me` of q's send buffer */
            src = ((q == comm->rank) ? in : peer[q]) + me * b;
        }
        status = ipc_copy(comm, op, x, out + (size_t)q * b, src, b);
    }
    return status;
}

/* The record of a collective that ran here. */
static void ipc_coll_record(scomm_comm_t *comm, const scomm_coll_args_t *a)
{
    char reason[160];
    int peers = (a->op == SCOMM_COLL_BROADCAST)
                    ? (comm->rank != a->root)
                    : comm->size - 1;

    snprintf(reason, sizeof(reason), "path cuda_ipc; device-to-device "
             "copies out of %d peer%s device memory (CUDA IPC, one host)",
             peers, (peers == 1) ? "'s" : "s'");
    pthread_mutex_lock(&comm->world->lock);
    comm->op_seq++;
    scomm_coll_record_special(comm, "cuda_ipc", "device.cuda_ipc", reason);
    pthread_mutex_unlock(&comm->world->lock);
}

/* After the records: open what this rank reads, agree, copy, agree. */
static int ipc_coll_run(scomm_comm_t *comm, ipc_t *s, const char *name,
                        const scomm_coll_args_t *a, const scomm_ipc_ctx_t *x,
                        const ipc_rec_t *recs, scomm_status_t *status)
{
    char **peer, err[256] = "";
    int32_t *votes;
    int q, bad = -1;

    peer  = calloc((size_t)comm->size, sizeof(*peer));
    votes = calloc((size_t)comm->size, sizeof(*votes));
    if ((peer == NULL) || (votes == NULL)) {
        free(peer);
        free(votes);
        *status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: no "
                                  "memory for CUDA IPC", name);
        return 1; /* the others time out in the exchange */
    }
    for (q = 0; q < comm->size; q++) {
        if (ipc_reads(comm, a, q) &&
            (scomm_ipc_cache_open(&s->cache, q, &recs[q].h, &peer[q], err,
                                  sizeof(err)) != 0)) {
            votes[comm->rank] = 1;
            scomm_debug(SCOMM_SUB_COLL, "%s: CUDA IPC: rank %d's handle: "
                        "%s", name, q, err);
            break;
        }
        if (peer[q] != NULL) {
            peer[q] += recs[q].off;
        }
    }
    *status = ipc_exchange(comm, name, votes, sizeof(*votes));
    for (q = 0; (q < comm->size) && (*status == SCOMM_OK); q++) {
        if ((votes[q] != 0) && (bad < 0)) {
            bad = q;
        }
    }
    if ((*status != SCOMM_OK) || (bad >= 0)) {
        free(peer);
        free(votes);
        if (bad >= 0) {
            ipc_declined(s, name, "rank %d could not open a peer's handle"
                         "%s", bad, "");
        }
        return (*status != SCOMM_OK); /* no: stage it (invariant 2) */
    }
    /* copy, wait, then tell the others this rank is done reading */
    *status = ipc_coll_copies(comm, name, x, a, peer);
    if (*status == SCOMM_OK) {
        *status = ipc_copies_done(comm, name, x);
    }
    memset(votes, 0, (size_t)comm->size * sizeof(*votes));
    votes[comm->rank] = (int32_t)*status;
    if (ipc_exchange(comm, name, votes, sizeof(*votes)) != SCOMM_OK) {
        *status = (*status != SCOMM_OK) ? *status : SCOMM_ERR_ABORTED;
    }
    free(peer);
    free(votes);
    if (*status == SCOMM_OK) {
        ipc_coll_record(comm, a);
    }
    return 1;
}

int scomm_ipc_coll(scomm_comm_t *comm, const char *name,
                   const scomm_coll_args_t *a, const scomm_ipc_ctx_t *x,
                   scomm_status_t *status)
{
    ipc_rec_t *recs;
    ipc_t *s;
    int q, on, ran;

    *status = SCOMM_OK;
    if (((a->op != SCOMM_COLL_ALLGATHER) &&
         (a->op != SCOMM_COLL_BROADCAST) &&
         (a->op != SCOMM_COLL_ALLTOALL)) ||
        (comm->dev_hint != SCOMM_MEM_CUDA) || (comm->size < 2) ||
        (comm->local_size != comm->size) || (a->bytes == 0)) {
        return 0; /* the same on every rank (invariant 1 of ipc.h) */
    }
    if ((s = ipc_state(comm, x)) == NULL) {
        *status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: no memory "
                                  "for the CUDA IPC state", name);
        return 1;
    }
    if ((on = ipc_agree(comm, s, name, status)) <= 0) {
        return on < 0;
    }
    recs = calloc((size_t)comm->size, sizeof(*recs));
    if (recs == NULL) {
        *status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: no memory "
                                  "for CUDA IPC records", name);
        return 1;
    }
    /* the peers read this rank's source only once it is there */
    *status = ipc_caller_done(comm, name, x);
    ipc_coll_rec(comm, s, a, &recs[comm->rank]);
    if (*status != SCOMM_OK) {
        recs[comm->rank].ok  = 0; /* still say so (invariant 1) */
        recs[comm->rank].why = IPC_WHY_ERROR;
    }
    if (ipc_exchange(comm, name, recs, sizeof(*recs)) != SCOMM_OK) {
        *status = (*status != SCOMM_OK) ? *status : SCOMM_ERR_ABORTED;
        free(recs);
        return 1;
    }
    if (*status != SCOMM_OK) {
        free(recs);
        return 1;
    }
    for (q = 0; q < comm->size; q++) {
        if (recs[q].why == IPC_WHY_ERROR) {
            *status = scomm_set_error(comm, SCOMM_ERR_ABORTED, "%s: rank %d "
                                      "failed before the CUDA IPC copies "
                                      "(see its error)", name, q);
            free(recs);
            return 1;
        }
        /* the others' counts and roots: what this rank would read of
         * theirs must be what they have (SCOMM_CHECK's check, free here) */
        if ((recs[q].bytes != a->bytes) ||
            (recs[q].seq != recs[comm->rank].seq)) {
            *status = scomm_set_error(comm, SCOMM_ERR_MISMATCH, "%s: "
                                      "argument mismatch: rank %d has %llu "
                                      "bytes per block (or another root), "
                                      "rank %d %zu", name, q,
                                      (unsigned long long)recs[q].bytes,
                                      comm->rank, a->bytes);
            free(recs);
            return 1;
        }
    }
    for (q = 0; q < comm->size; q++) {
        if (!recs[q].ok) {
            if (recs[q].why != IPC_WHY_FORCED) {
                ipc_declined(s, name, "rank %d: %s", q,
                             ipc_why_text[recs[q].why]);
            }
            free(recs);
            return 0;
        }
    }
    ran = ipc_coll_run(comm, s, name, a, x, recs, status);
    free(recs);
    return ran;
}

/* ---- point-to-point (see the top of the file) ---- */

int scomm_ipc_p2p_eligible(const scomm_comm_t *comm, int peer, size_t bytes)
{
    const scomm_world_t *w = comm->world;
    int wpeer              = comm->ranks[peer];
    const scomm_peer_t *p  = &w->peers[wpeer];

    return (p->tl != NULL) && p->local &&
           (bytes > w->tl_attr[p->tl_idx].eager_max) &&
           (w->info[wpeer].pid != (int32_t)getpid());
}

void scomm_ipc_p2p_ready(scomm_comm_t *comm, const scomm_ipc_ctx_t *x)
{
    (void)ipc_state(comm, x); /* NULL (no memory): its receives decline */
}

/* Why a send went staged: a warning under SCOMM_DEVICE_IPC=1. */
static void ipc_p2p_declined(const ipc_t *s, const char *op, int peer,
                             const char *why)
{
    if ((s != NULL) && (s->knob == IPC_KNOB_ON)) {
        scomm_warn(SCOMM_SUB_P2P, "%s to rank %d: CUDA IPC not used "
                   "(SCOMM_DEVICE_IPC=1): %s; staged instead", op, peer,
                   why);
    } else {
        scomm_debug(SCOMM_SUB_P2P, "%s to rank %d: CUDA IPC not used: %s; "
                    "staged", op, peer, why);
    }
}

/* The bytes of buf staged, as a send on wire tag `tag`, waited for. */
static scomm_status_t ipc_p2p_staged(scomm_comm_t *comm, const char *op,
                                     const void *buf, size_t bytes, int peer,
                                     int32_t tag)
{
    scomm_stage_job_t *job = NULL;
    scomm_req_t *req       = NULL;
    scomm_status_t status;
    void *pin = NULL;

    status = scomm_stage_p2p_post(comm, op, 1, (void *)buf, bytes, &pin,
                                  &job);
    if (status != SCOMM_OK) {
        return status;
    }
    pthread_mutex_lock(&comm->world->lock);
    comm->cur_op = op;
    status       = scomm_p2p_isend(comm, peer, tag, pin, bytes, &req);
    if (status != SCOMM_OK) {
        scomm_stage_job_release(comm, job);
    } else {
        req->stage_job = job;
        req->stage_end = scomm_stage_p2p_end;
        status         = scomm_p2p_waitall(comm, &req, 1);
    }
    pthread_mutex_unlock(&comm->world->lock);
    return status;
}

/* The offer of buf (its handle), once the caller's stream has written
 * it; 1 with o filled, 0 to stage (why), -1 on an error (*status). */
static int ipc_p2p_offer(scomm_comm_t *comm, const char *op, const void *buf,
                         size_t bytes, ipc_t **s_p, scomm_p2p_offer_t *o,
                         char *why, size_t len, scomm_status_t *status)
{
    scomm_devrt_ipc_handle_t h;
    scomm_ipc_ctx_t x;
    char err[256];
    ipc_t *s;
    int rc = 0;

    if ((*status = scomm_stage_ipc_begin(comm, op, &x)) != SCOMM_OK) {
        return -1;
    }
    if ((s = *s_p = ipc_state(comm, &x)) == NULL) {
        snprintf(why, len, "no memory for the CUDA IPC state");
    } else if (!s->local_ok) {
        snprintf(why, len, "%s", s->why);
    } else if (scomm_ipc_export(x.rt, buf, bytes, &h, &o->off, err,
                                sizeof(err)) != 0) {
        snprintf(why, len, "no IPC handle for its buffer: %s", err);
    } else if ((*status = ipc_caller_done(comm, op, &x)) != SCOMM_OK) {
        rc = -1; /* the peer reads only what the caller's stream wrote */
    } else {
        memcpy(o->handle, &h, sizeof(o->handle));
        rc = 1;
    }
    scomm_stage_ipc_end(comm);
    return rc;
}

static const char *const ipc_p2p_why[] = {
    "", "its buffer is host memory", "it cannot use CUDA IPC",
    "it is this process", "it could not open the handle",
    "it could not use the handle"};

scomm_status_t scomm_ipc_p2p_send(scomm_comm_t *comm, const char *op,
                                  const void *buf, size_t bytes, int peer,
                                  int32_t tag, int *path)
{
    scomm_p2p_offer_t o;
    scomm_p2p_reply_t rep;
    scomm_req_t *reqs[2] = {NULL, NULL};
    scomm_status_t status = SCOMM_OK;
    ipc_t *s = NULL;
    char why[320];
    uint32_t seq;
    int rc;

    *path = SCOMM_P2P_PATH_WIRE;
    memset(&o, 0, sizeof(o));
    memset(&rep, 0, sizeof(rep));
    rc = ipc_p2p_offer(comm, op, buf, bytes, &s, &o, why, sizeof(why),
                       &status);
    if (rc < 0) {
        return status;
    }
    if (rc == 0) {
        ipc_p2p_declined(s, op, peer, why);
        return ipc_p2p_staged(comm, op, buf, bytes, peer, tag);
    }
    pthread_mutex_lock(&comm->world->lock);
    comm->cur_op = op;
    seq          = s->p2p_seq++ & SCOMM_IPC_SEQ_MASK;
    o.magic      = SCOMM_IPC_OFFER_MAGIC;
    o.seq        = seq;
    o.pid        = (int32_t)getpid();
    o.len        = bytes;
    /* the reply's receive first: it cannot arrive before the offer went,
     * but nothing then waits unmatched */
    status = scomm_p2p_irecv(comm, peer,
                             (int32_t)(SCOMM_TAG_IPC_REPLY + seq), &rep,
                             sizeof(rep), &reqs[0]);
    if (status == SCOMM_OK) {
        status = scomm_p2p_isend(comm, peer, scomm_tag_offer(tag), &o,
                                 sizeof(o), &reqs[1]);
        if (status != SCOMM_OK) {
            scomm_list_del(&reqs[0]->list);
            scomm_req_release(reqs[0]);
        }
    }
    if (status == SCOMM_OK) {
        /* bounded by comm's timeout; names the peer when it runs out */
        status = scomm_p2p_waitall(comm, reqs, 2);
    }
    pthread_mutex_unlock(&comm->world->lock);
    if (status != SCOMM_OK) {
        return status;
    }
    if ((rep.magic != SCOMM_IPC_REPLY_MAGIC) || (rep.seq != seq)) {
        return scomm_set_error(comm, SCOMM_ERR_PROTOCOL, "%s to rank %d: "
                               "a malformed reply to its CUDA IPC offer",
                               op, peer);
    }
    switch (rep.verdict) {
    case SCOMM_IPC_DONE:
        *path = SCOMM_P2P_PATH_IPC;
        scomm_debug(SCOMM_SUB_P2P, "%s to rank %d tag %d: %zu bytes over "
                    "CUDA IPC", op, peer, (int)tag, bytes);
        return SCOMM_OK;
    case SCOMM_IPC_TRUNCATED:
        return scomm_set_error(comm, SCOMM_ERR_TRUNCATED, "%s: rank %d's "
                               "receive buffer is smaller than the %zu-byte "
                               "message", op, peer, bytes);
    case SCOMM_IPC_FAILED:
        return scomm_set_error(comm, scomm_status_from_peer(rep.why),
                               "%s: rank %d failed to copy the %zu-byte "
                               "message over CUDA IPC (its error says why)",
                               op, peer, bytes);
    case SCOMM_IPC_DECLINED:
        *path = SCOMM_P2P_PATH_DECLINED;
        snprintf(why, sizeof(why), "rank %d declined: %s", peer,
                 ((rep.why > 0) && (rep.why <= SCOMM_IPC_WHY_OTHER))
                     ? ipc_p2p_why[rep.why]
                     : "no reason given");
        scomm_debug(SCOMM_SUB_P2P, "%s to rank %d tag %d: %s; %zu bytes "
                    "staged", op, peer, (int)tag, why, bytes);
        return ipc_p2p_staged(comm, op, buf, bytes, peer,
                              (int32_t)(SCOMM_TAG_IPC_DATA + seq));
    default:
        return scomm_set_error(comm, SCOMM_ERR_PROTOCOL, "%s to rank %d: "
                               "an unknown answer %d to its CUDA IPC offer",
                               op, peer, (int)rep.verdict);
    }
}

int scomm_ipc_p2p_take(scomm_comm_t *comm, const scomm_ipc_ctx_t *x,
                       void *dst, int wpeer, const scomm_p2p_offer_t *o,
                       scomm_status_t *status, int *why)
{
    ipc_t *s = comm->dev_ipc;
    scomm_devrt_ipc_handle_t h;
    char err[256], what[96], *src = NULL;
    void *base = NULL;
    size_t n   = 0;
    int rank   = scomm_comm_rank_of(comm, wpeer);

    *why = SCOMM_IPC_WHY_OTHER;
    if ((s == NULL) || !s->local_ok) {
        *why = SCOMM_IPC_WHY_OFF;
        return SCOMM_IPC_DECLINED;
    }
    if (o->pid == (int32_t)getpid()) {
        *why = SCOMM_IPC_WHY_PROCESS;
        return SCOMM_IPC_DECLINED;
    }
    memcpy(&h, o->handle, sizeof(h));
    if (scomm_ipc_cache_open(&s->p2p_cache, wpeer, &h, &src, err,
                             sizeof(err)) != 0) {
        scomm_debug(SCOMM_SUB_P2P, "receive from rank %d: its handle: %s",
                    rank, err);
        *why = SCOMM_IPC_WHY_OPEN;
        return SCOMM_IPC_DECLINED;
    }
    src += o->off;
    /* the offer's bytes must lie in the allocation it names */
    if ((scomm_devrt_mem_range(x->rt, src, &base, &n, err,
                               sizeof(err)) != 0) ||
        (src + o->len > (char *)base + n)) {
        scomm_debug(SCOMM_SUB_P2P, "receive from rank %d: %llu bytes at "
                    "offset %llu do not fit its allocation", rank,
                    (unsigned long long)o->len, (unsigned long long)o->off);
        return SCOMM_IPC_DECLINED;
    }
    if ((scomm_devrt_copy_async(x->rt, dst, src, (size_t)o->len, x->stream,
                                err, sizeof(err)) != 0) ||
        (scomm_devrt_event_record(x->rt, x->ev_out, x->stream, err,
                                  sizeof(err)) != 0)) {
        *status = scomm_set_error(comm, SCOMM_ERR_SYSTEM, "receive from "
                                  "rank %d: CUDA IPC: %s", rank, err);
        return SCOMM_IPC_FAILED;
    }
    /* the sender reuses its buffer once told: wait for the copy */
    snprintf(what, sizeof(what), "the CUDA IPC copy of %llu bytes from "
             "rank %d", (unsigned long long)o->len, rank);
    *status = scomm_dev_wait(comm, x->rt, x->ev_out, "receive", what);
    return (*status == SCOMM_OK) ? SCOMM_IPC_DONE : SCOMM_IPC_FAILED;
}

/* ---- non-blocking sends over CUDA IPC (see the top of the file) ---- */

enum { ISEND_OFFERED, ISEND_COPYING, ISEND_STAGED, ISEND_OVER };

typedef struct {
    scomm_p2p_offer_t  o;        /* the offer's bytes (the request O) */
    scomm_p2p_reply_t  rep;      /* the reply lands here (Q) */
    scomm_req_t       *offer;    /* O: the offer, on tag -1 - T */
    scomm_req_t       *reply;    /* Q: the receive of the reply */
    scomm_req_t       *data;     /* D: declined, the bytes staged */
    scomm_stage_job_t *job;      /* the pinned slot, until D owns it */
    void              *pin;
    const char        *op;
    int                rank;     /* the peer, a rank of comm */
    int32_t            tag;      /* the user's */
    uint32_t           seq;
    int                state;    /* ISEND_* */
    int                polling;  /* counted in w->ipc_dev_polls */
    uint64_t           deadline; /* of the copy to host */
    uint64_t           tm_t0;
    int                counted;  /* in the metrics */
    char               err[256]; /* the request's error, for the waiter */
} ipc_isend_t;

static const char *ipc_isend_algo(const scomm_req_t *r)
{
    return (r->ipc_path == SCOMM_P2P_PATH_IPC) ? "cuda_ipc" : "p2p";
}

/* The isend's series: counted once, when it is over (or released). */
static void ipc_isend_count(scomm_req_t *r, ipc_isend_t *is,
                            scomm_status_t status)
{
    if (!is->counted && (r->comm != NULL) &&
        (r->comm->magic == SCOMM_COMM_MAGIC)) {
        scomm_tm_op_end(r->comm, SCOMM_TM_OP_ISEND, ipc_isend_algo(r),
                        r->len, is->rank, status, is->tm_t0);
    }
    is->counted = 1;
}

static void ipc_isend_unpoll(scomm_req_t *r, ipc_isend_t *is)
{
    if (is->polling) {
        is->polling = 0;
        r->world->ipc_dev_polls--;
    }
}

/* Release the reply's and the offer's requests once done (all: every
 * sub-request, done or not, D too: a receive not done leaves its posted
 * queue; transports know requests only by id, so a late packet finds
 * none). D and the slot go only with the request (all), in the caller's
 * scomm_wait/scomm_test: giving a slot back may free pinned memory
 * (cudaFreeHost synchronises), which the progress never does. */
static void ipc_isend_drop(ipc_isend_t *is, int all)
{
    scomm_req_t **sub[3] = {&is->reply, &is->offer, &is->data};
    int i;

    for (i = 0; i < (all ? 3 : 2); i++) {
        scomm_req_t *q = *sub[i];

        if ((q == NULL) ||
            (!all && !atomic_load_explicit(&q->done, memory_order_acquire))) {
            continue;
        }
        if ((q->type == SCOMM_REQ_RECV) && !atomic_load(&q->done)) {
            scomm_list_del(&q->list);
        }
        scomm_req_release(q); /* D's gives its job back */
        *sub[i] = NULL;
    }
}

/* The isend is over: complete it with status (an error: fmt says why,
 * naming the peer) and leave the progress. Returns 1 (it moved on). */
static int ipc_isend_over(scomm_req_t *r, scomm_status_t status,
                          const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ipc_isend_over(scomm_req_t *r, scomm_status_t status,
                          const char *fmt, ...)
{
    ipc_isend_t *is = r->ipc_send;
    va_list ap;

    if (status != SCOMM_OK) {
        va_start(ap, fmt);
        vsnprintf(is->err, sizeof(is->err), fmt, ap);
        va_end(ap);
        scomm_set_error(r->comm, status, "%s", is->err);
    }
    is->state = ISEND_OVER;
    ipc_isend_unpoll(r, is);
    scomm_list_del(&r->ipc_link);
    ipc_isend_count(r, is, status);
    ipc_isend_drop(is, 0);
    scomm_req_complete(r, status);
    return 1;
}

/* The reply came: done, truncated, failed, or declined (the copy to host
 * enqueued, polled from now on). */
static int ipc_isend_replied(scomm_req_t *r, ipc_isend_t *is)
{
    const scomm_p2p_reply_t *rep = &is->rep;
    scomm_comm_t *comm           = r->comm;
    scomm_status_t status;

    if ((is->reply->status != SCOMM_OK) || (is->reply->xfer != sizeof(*rep)) ||
        (rep->magic != SCOMM_IPC_REPLY_MAGIC) || (rep->seq != is->seq)) {
        status = (is->reply->status != SCOMM_OK) ? is->reply->status
                                                 : SCOMM_ERR_PROTOCOL;
        return ipc_isend_over(r, status, "%s to rank %d: %s the reply to "
                              "its CUDA IPC offer", is->op, is->rank,
                              (status == SCOMM_ERR_PROTOCOL) ? "a malformed"
                                                             : "no");
    }
    switch (rep->verdict) {
    case SCOMM_IPC_DONE:
        r->ipc_path = SCOMM_P2P_PATH_IPC;
        r->xfer     = r->len;
        scomm_debug(SCOMM_SUB_P2P, "%s to rank %d tag %d: %zu bytes over "
                    "CUDA IPC", is->op, is->rank, (int)is->tag, r->len);
        return ipc_isend_over(r, SCOMM_OK, NULL);
    case SCOMM_IPC_TRUNCATED:
        return ipc_isend_over(r, SCOMM_ERR_TRUNCATED, "%s: rank %d's "
                              "receive buffer is smaller than the %zu-byte "
                              "message", is->op, is->rank, r->len);
    case SCOMM_IPC_FAILED:
        return ipc_isend_over(r, scomm_status_from_peer(rep->why), "%s: "
                              "rank %d failed to copy the %zu-byte message "
                              "over CUDA IPC (its error says why)", is->op,
                              is->rank, r->len);
    case SCOMM_IPC_DECLINED:
        break;
    default:
        return ipc_isend_over(r, SCOMM_ERR_PROTOCOL, "%s to rank %d: an "
                              "unknown answer %d to its CUDA IPC offer",
                              is->op, is->rank, (int)rep->verdict);
    }
    r->ipc_path = SCOMM_P2P_PATH_DECLINED;
    scomm_debug(SCOMM_SUB_P2P, "%s to rank %d tag %d: rank %d declined "
                "(%s); %zu bytes staged", is->op, is->rank, (int)is->tag,
                is->rank,
                ((rep->why > 0) && (rep->why <= SCOMM_IPC_WHY_OTHER))
                    ? ipc_p2p_why[rep->why]
                    : "no reason given",
                r->len);
    /* enqueued on the internal stream after the caller's (the job's
     * ev_in, recorded at the call); never waited for here */
    status = scomm_stage_p2p_copy_in(comm, is->job, r->buf, r->len);
    if (status != SCOMM_OK) {
        return ipc_isend_over(r, status, "%s to rank %d: the copy to host "
                              "of a declined message: %s", is->op, is->rank,
                              scomm_last_error());
    }
    is->state    = ISEND_COPYING;
    is->polling  = 1;
    is->deadline = scomm_deadline_ms((comm->timeout_ms > 0)
                                         ? comm->timeout_ms : 600000);
    r->world->ipc_dev_polls++;
    return 1;
}

/* The copy to host ran: the bytes go on SCOMM_TAG_IPC_DATA + seq, where
 * the receive waits for them. */
static int ipc_isend_copied(scomm_req_t *r, ipc_isend_t *is)
{
    scomm_comm_t *comm = r->comm;
    const char *cur_op = comm->cur_op;
    scomm_status_t status;
    char err[256];
    int q;

    q = scomm_stage_p2p_copy_query(is->job, err, sizeof(err));
    if (q == SCOMM_RT_NOT_READY) {
        if (scomm_now_ns() < is->deadline) {
            return 0;
        }
        return ipc_isend_over(r, SCOMM_ERR_TIMED_OUT, "%s to rank %d: the "
                              "copy to host of the %zu-byte message it "
                              "declined not done after %lld ms", is->op,
                              is->rank, r->len, (long long)comm->timeout_ms);
    }
    if (q != SCOMM_RT_DONE) {
        return ipc_isend_over(r, SCOMM_ERR_SYSTEM, "%s to rank %d: the copy "
                              "to host of a declined message: %s", is->op,
                              is->rank, err);
    }
    ipc_isend_unpoll(r, is);
    comm->cur_op = is->op; /* errors name the isend, not the wait */
    status = scomm_p2p_isend(comm, is->rank,
                             (int32_t)(SCOMM_TAG_IPC_DATA + is->seq),
                             is->pin, r->len, &is->data);
    comm->cur_op = cur_op;
    if (status != SCOMM_OK) {
        return ipc_isend_over(r, status, "%s to rank %d: could not send the "
                              "bytes it declined", is->op, is->rank);
    }
    is->data->stage_job = is->job; /* released with D, after the wire */
    is->data->stage_end = scomm_stage_p2p_end;
    is->job             = NULL;
    is->state           = ISEND_STAGED;
    return 1;
}

/* The progress's step (r->ipc_step), world lock held: never waits. */
static int ipc_isend_step(scomm_req_t *r)
{
    ipc_isend_t *is = r->ipc_send;
    scomm_req_t *q;

    switch (is->state) {
    case ISEND_OFFERED:
        q = is->offer;
        if (atomic_load_explicit(&q->done, memory_order_acquire) &&
            (q->status != SCOMM_OK)) {
            return ipc_isend_over(r, q->status, "%s to rank %d: could not "
                                  "send its CUDA IPC offer", is->op,
                                  is->rank);
        }
        if (!atomic_load_explicit(&is->reply->done, memory_order_acquire)) {
            return 0;
        }
        return ipc_isend_replied(r, is);
    case ISEND_COPYING:
        return ipc_isend_copied(r, is);
    case ISEND_STAGED:
        q = is->data;
        if (!atomic_load_explicit(&q->done, memory_order_acquire)) {
            return 0;
        }
        if (q->status != SCOMM_OK) {
            return ipc_isend_over(r, q->status, "%s to rank %d: the bytes "
                                  "it declined did not go", is->op,
                                  is->rank);
        }
        r->xfer = r->len;
        return ipc_isend_over(r, SCOMM_OK, NULL);
    default:
        return 0;
    }
}

/* The request's end (stage_end, in scomm_req_release, world lock held):
 * its sub-requests, its slot, and its error again for the thread that
 * took its status (the progress may have run on another). */
static void ipc_isend_end(scomm_req_t *r)
{
    ipc_isend_t *is = r->ipc_send;
    int done        = atomic_load_explicit(&r->done, memory_order_acquire);

    r->stage_end = NULL;
    r->ipc_send  = NULL;
    r->ipc_step  = NULL;
    if (is->state != ISEND_OVER) {
        /* released before it was over: a fault or a deadline */
        int fault = atomic_load(&r->world->fault.status);

        scomm_list_del(&r->ipc_link);
        ipc_isend_unpoll(r, is);
        ipc_isend_count(r, is, (fault != 0) ? (scomm_status_t)fault
                                            : SCOMM_ERR_ABORTED);
    }
    if (done && (r->status != SCOMM_OK) && (is->err[0] != '\0')) {
        scomm_set_error(r->comm, r->status, "%s", is->err);
    }
    ipc_isend_drop(is, 1);
    if (is->job != NULL) {
        /* its slot is used again only after the copy (if any) ran */
        scomm_stage_job_release(r->comm, is->job);
    }
    free(is);
}

scomm_status_t scomm_ipc_p2p_isend(scomm_comm_t *comm, const char *op,
                                   const void *buf, size_t bytes, int peer,
                                   int32_t tag, scomm_req_t **req_p)
{
    scomm_stage_job_t *job = NULL;
    scomm_world_t *w       = comm->world;
    scomm_status_t status  = SCOMM_OK;
    ipc_isend_t *is;
    scomm_req_t *r;
    ipc_t *s = NULL;
    char why[320];
    void *pin = NULL;
    int rc;

    *req_p = NULL;
    if ((is = calloc(1, sizeof(*is))) == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: out of "
                               "memory for a request", op);
    }
    /* the caller's stream has written buf (the host waits, bounded, as a
     * staged isend waits for its copy), and its handle */
    rc = ipc_p2p_offer(comm, op, buf, bytes, &s, &is->o, why, sizeof(why),
                       &status);
    if (rc <= 0) {
        free(is);
        if (rc == 0) {
            ipc_p2p_declined(s, op, peer, why); /* the caller stages it */
        }
        return status;
    }
    /* the slot a decline needs, taken here so the progress never
     * allocates pinned memory */
    status = scomm_stage_p2p_reserve(comm, op, bytes, &pin, &job);
    if (status != SCOMM_OK) {
        free(is);
        return status;
    }
    is->job  = job;
    is->pin  = pin;
    is->op   = op;
    is->rank = peer;
    is->tag  = tag;
    pthread_mutex_lock(&w->lock);
    comm->cur_op = op;
    is->tm_t0    = scomm_tm_begin(comm, SCOMM_TM_OP_ISEND);
    is->seq      = s->p2p_seq++ & SCOMM_IPC_SEQ_MASK;
    is->o.magic  = SCOMM_IPC_OFFER_MAGIC;
    is->o.seq    = is->seq;
    is->o.pid    = (int32_t)getpid();
    is->o.len    = bytes;
    r = scomm_req_new(w, comm, SCOMM_REQ_SEND);
    if (r == NULL) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: out of "
                                 "memory for a request", op);
    } else {
        r->peer = comm->ranks[peer];
        r->ctx  = comm->ctx;
        r->tag  = tag;
        r->buf  = (void *)buf;
        r->len  = bytes;
        scomm_list_init(&r->ipc_link);
        /* the reply's receive first, then the offer: in the order of
         * this peer's messages on tag, as the bytes would have been */
        status = scomm_p2p_irecv(comm, peer,
                                 (int32_t)(SCOMM_TAG_IPC_REPLY + is->seq),
                                 &is->rep, sizeof(is->rep), &is->reply);
    }
    if (status == SCOMM_OK) {
        status = scomm_p2p_isend(comm, peer, scomm_tag_offer(tag), &is->o,
                                 sizeof(is->o), &is->offer);
    }
    if (status != SCOMM_OK) {
        if (is->reply != NULL) {
            scomm_list_del(&is->reply->list);
            scomm_req_release(is->reply);
        }
        if (r != NULL) {
            scomm_req_release(r);
        }
        scomm_stage_job_release(comm, job);
        free(is);
        pthread_mutex_unlock(&w->lock);
        return status;
    }
    r->ipc_send  = is;
    r->ipc_step  = ipc_isend_step;
    r->stage_end = ipc_isend_end;
    is->state    = ISEND_OFFERED;
    scomm_list_push_back(&w->ipc_sends, &r->ipc_link);
    pthread_mutex_unlock(&w->lock);
    *req_p = r;
    return SCOMM_OK;
}
