/*
 * call.c - the stream-ordered call path of the vendor backends: map the
 * arguments, enqueue the vendor call on the communicator's stream, record
 * a completion event in the event ring, return. Also the waits that users
 * ask for (scomm_comm_synchronize, requests of non-blocking calls) and the
 * vendors' group calls.
 *
 *   call --> enter (IDLE -> BUSY) --> capturing? --> adapter enqueues
 *        --> INPROGRESS? settle (NCCL non-blocking: the call is taken)
 *        --> not captured: sequence + event in the ring (or, in a group,
 *            noted until scomm_group_end launches the group)
 *        --> leave (BUSY -> IDLE; abort now if KILL was asked) --> return
 *
 * Invariants:
 *  1. No call waits for the device: the host cost is the vendor's enqueue,
 *     one capture-status query and one event record. Nothing is allocated
 *     once a ring slot's event exists.
 *  2. A call on a capturing stream is captured: no event, no query, no
 *     sequence number; the watchdog sees nothing of its replays.
 *  3. In a group (scomm_group_start .. end on this thread), every vendor
 *     communicator touched stays BUSY until the group ends, the vendor's
 *     group is opened once per library at the first call and closed at the
 *     end (one launch), and the events are recorded after that launch.
 *  4. A wait (synchronize, scomm_wait, scomm_test) polls the ring itself,
 *     and ends with the world's fault when the watchdog (or anything else)
 *     fails the world: the deadline is the watchdog's, not the waiter's.
 *     A guard of timeout + 10 s stands in for a watchdog that never fires.
 */
#include "backend.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SCOMM_VGROUP_MAX   64      /* communicator x stream pairs a group */
#define SCOMM_VWAIT_SPIN   50000ull /* ns of yielding before sleeping */
#define SCOMM_VWAIT_GUARD  10000ull /* ms past the timeout (invariant 4) */

/* ---- the vendor's state (invariant 4 of backend.h) ---------------------- */

static void scomm_vendor_do_abort(scomm_vendor_t *v)
{
    pthread_mutex_lock(&v->poll_lock);
    v->ops->abort(v);
    pthread_mutex_unlock(&v->poll_lock);
}

void scomm_vendor_kill(scomm_vendor_t *v)
{
    int s = atomic_load(&v->state);

    for (;;) {
        if (s == SCOMM_VENDOR_IDLE) {
            if (atomic_compare_exchange_weak(&v->state, &s,
                                             SCOMM_VENDOR_DEAD)) {
                scomm_vendor_do_abort(v);
                return;
            }
        } else if (s == SCOMM_VENDOR_BUSY) {
            if (atomic_compare_exchange_weak(&v->state, &s,
                                             SCOMM_VENDOR_KILL)) {
                return; /* the caller inside aborts when it leaves */
            }
        } else {
            return;
        }
    }
}

static scomm_status_t scomm_vendor_enter(scomm_comm_t *comm, const char *name)
{
    scomm_vendor_t *v = comm->vendor;
    int s = SCOMM_VENDOR_IDLE, fault;

    if (atomic_compare_exchange_strong(&v->state, &s, SCOMM_VENDOR_BUSY)) {
        return SCOMM_OK;
    }
    if (s == SCOMM_VENDOR_BUSY) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE,
                               "%s: the %s communicator is in use by a call "
                               "of another thread, or by a group open on "
                               "another thread (a vendor communicator takes "
                               "one thread's calls at a time)", name,
                               v->ops->name);
    }
    fault = atomic_load(&comm->world->fault.status);
    if (fault != 0) {
        return scomm_set_error(comm, (scomm_status_t)fault,
                               "%s: the %s communicator was aborted: %s",
                               name, v->ops->name, comm->world->fault.msg);
    }
    return scomm_set_error(comm, SCOMM_ERR_ABORTED,
                           "%s: the %s communicator was aborted", name,
                           v->ops->name);
}

static void scomm_vendor_leave(scomm_vendor_t *v)
{
    int s = SCOMM_VENDOR_BUSY;

    if (!atomic_compare_exchange_strong(&v->state, &s, SCOMM_VENDOR_IDLE) &&
        (s == SCOMM_VENDOR_KILL) &&
        atomic_compare_exchange_strong(&v->state, &s, SCOMM_VENDOR_DEAD)) {
        scomm_vendor_do_abort(v);
    }
}

/* A failure after the vendor got the call: the message names the
 * operation; a failure of the communicator itself fails the world, so
 * peers stop at once, and aborts the vendor's communicator. */
static scomm_status_t scomm_vendor_failed(scomm_comm_t *comm,
                                          const char *name,
                                          scomm_status_t status)
{
    scomm_vendor_t *v = comm->vendor;

    scomm_set_error(comm, status, "%s: backend %s: %s", name, v->ops->name,
                    v->err);
    if ((status == SCOMM_ERR_TIMED_OUT) || (status == SCOMM_ERR_PEER_LOST) ||
        (status == SCOMM_ERR_SYSTEM) || (status == SCOMM_ERR_INTERNAL)) {
        scomm_world_fail(comm->world, status, comm->world->rank, "%s",
                         comm->last_error);
        scomm_vendor_kill(v);
    }
    return status;
}

static void scomm_vendor_nap(uint64_t t0, long *ns)
{
    struct timespec ts = {0, *ns};

    if (scomm_now_ns() - t0 < SCOMM_VWAIT_SPIN) {
        sched_yield();
        return;
    }
    nanosleep(&ts, NULL);
    if (*ns < 500000) {
        *ns *= 2;
    }
}

scomm_status_t scomm_vendor_settle(scomm_comm_t *comm, scomm_vendor_t *v,
                                   const char *what, int locked)
{
    scomm_world_t *w  = comm->world;
    uint64_t deadline = scomm_comm_deadline(comm);
    uint64_t t0       = scomm_now_ns();
    const char *call  = (v->cur_call != NULL) ? v->cur_call : what;
    long ns           = 1000;
    scomm_status_t status;
    int fault;

    for (;;) {
        status = v->ops->async(v, call, v->err, sizeof(v->err));
        if (status != SCOMM_INPROGRESS) {
            return status;
        }
        fault = atomic_load(&w->fault.status);
        if (fault != 0) {
            return scomm_vendor_error(v, (scomm_status_t)fault,
                                      "%s stopped: %s", call,
                                      w->fault.msg);
        }
        if (atomic_load(&v->state) == SCOMM_VENDOR_KILL) {
            return scomm_vendor_error(v, SCOMM_ERR_ABORTED, "%s stopped: "
                                      "the communicator is being aborted",
                                      call);
        }
        if (scomm_now_ns() >= deadline) {
            return scomm_vendor_error(
                v, SCOMM_ERR_TIMED_OUT, "%s: %s was not taken within %lld "
                "ms (waited %.0f ms); the %s communicator was aborted",
                what, call, (long long)comm->timeout_ms,
                (double)(scomm_now_ns() - t0) / 1e6, v->ops->name);
        }
        if (locked && (w->ntl > 0)) {
            scomm_world_progress(w); /* peers' abort notices */
        }
        scomm_vendor_nap(t0, &ns);
    }
}

scomm_status_t scomm_vendor_async_failed(scomm_comm_t *comm,
                                         scomm_vendor_t *v,
                                         scomm_status_t status,
                                         const char *fmt, ...)
{
    scomm_world_t *w = comm->world;
    struct timespec ts = {0, 5000000};
    char why[SCOMM_ERRMSG_MAX];
    const char *last = atomic_load(&v->last_what);
    va_list ap;
    int i;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    /* A peer that aborted for a reason of its own told us before it
     * aborted: take its notice first (first fault wins, invariant 5). */
    for (i = 0; (i < 20) && (atomic_load(&w->fault.status) == 0); i++) {
        if ((w->ntl > 0) && (pthread_mutex_trylock(&w->lock) == 0)) {
            scomm_world_progress(w);
            pthread_mutex_unlock(&w->lock);
        }
        if (atomic_load(&w->fault.status) == 0) {
            nanosleep(&ts, NULL);
        }
    }
    scomm_world_fail(w, status, w->rank, "%s (%s op #%llu was the last "
                     "enqueued): %s; the %s communicator was aborted",
                     (last != NULL) ? last : "a vendor call", v->ops->name,
                     (unsigned long long)atomic_load(&v->enq), why,
                     v->ops->name);
    scomm_vendor_kill(v);
    return (scomm_status_t)atomic_load(&w->fault.status);
}

/* The vendor's asynchronous error after a wait reached its target: the
 * wait returns it (and the world fails), or SCOMM_OK. */
static scomm_status_t scomm_vendor_async_check(scomm_comm_t *comm,
                                               scomm_vendor_t *v,
                                               const char *name)
{
    char err[SCOMM_VENDOR_ERR_MAX];
    const char *last = atomic_load(&v->last_what);
    scomm_status_t st = SCOMM_OK;
    int fault = atomic_load(&comm->world->fault.status);

    if (fault != 0) {
        /* An abort ends the stream's work, so its events read as done:
         * after the world failed (the watchdog fails it before it aborts
         * the vendor), "reached" is not success. */
        return scomm_set_error(comm, (scomm_status_t)fault, "%s: %s", name,
                               comm->world->fault.msg);
    }
    pthread_mutex_lock(&v->poll_lock);
    if (atomic_load(&v->state) != SCOMM_VENDOR_DEAD) {
        st = v->ops->async(v, (last != NULL) ? last : name, err,
                           sizeof(err));
    }
    pthread_mutex_unlock(&v->poll_lock);
    if ((st == SCOMM_OK) || (st == SCOMM_INPROGRESS)) {
        return SCOMM_OK;
    }
    st = scomm_vendor_async_failed(comm, v, st, "%s", err);
    return scomm_set_error(comm, st, "%s: %s", name, comm->world->fault.msg);
}

/* What this rank does, for the fault messages of the world (the vendor's
 * sequence number, not the communicator's count of native calls). */
static void scomm_vendor_doing(scomm_comm_t *comm, const char *name,
                               uint64_t seq)
{
    atomic_store_explicit(&comm->world->cur_op, name, memory_order_relaxed);
    atomic_store_explicit(&comm->world->cur_seq, seq, memory_order_relaxed);
}

/* ---- the event ring (invariant 3 of backend.h) ------------------------- */

scomm_status_t scomm_vendor_poll(scomm_vendor_t *v,
                                 scomm_vendor_slot_t **oldest)
{
    uint64_t t = atomic_load_explicit(&v->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&v->head, memory_order_acquire);
    scomm_vendor_slot_t *s;
    uint64_t hi;
    int r;

    if (oldest != NULL) {
        *oldest = NULL;
    }
    while (t < h) {
        s = &v->ring[t % SCOMM_VENDOR_RING];
        /* hi before the query: a record that extends the slot stores hi
         * after it re-records the event (call.c, scomm_vendor_record). */
        hi = atomic_load(&s->seq_hi);
        r  = scomm_devrt_event_query(v->rt, s->ev, v->poll_err,
                                     sizeof(v->poll_err));
        if (r == SCOMM_RT_NOT_READY) {
            if (oldest != NULL) {
                *oldest = s;
            }
            break;
        }
        if (r != SCOMM_RT_DONE) {
            atomic_store_explicit(&v->tail, t, memory_order_release);
            return SCOMM_ERR_SYSTEM;
        }
        if (hi > atomic_load(&v->done)) {
            atomic_store(&v->done, hi);
        }
        t++;
    }
    atomic_store_explicit(&v->tail, t, memory_order_release);
    return SCOMM_OK;
}

/* When the ring is full: retire what is done; if nothing is, extend the
 * newest slot (same stream) instead of waiting. 1: extended, 0: room now,
 * -1: wait (a full ring of another stream's calls). */
static int scomm_vendor_ring_full(scomm_comm_t *comm, scomm_vendor_t *v,
                                  void *stream, uint64_t hi, uint64_t h)
{
    scomm_vendor_slot_t *s;
    char err[SCOMM_VENDOR_ERR_MAX];
    int rc = 0;

    pthread_mutex_lock(&v->poll_lock);
    (void)scomm_vendor_poll(v, NULL);
    if (h - atomic_load(&v->tail) >= SCOMM_VENDOR_RING) {
        s  = &v->ring[(h - 1) % SCOMM_VENDOR_RING];
        rc = -1;
        if ((s->stream == stream) &&
            (scomm_devrt_event_record(v->rt, s->ev, stream, err,
                                      sizeof(err)) == 0)) {
            atomic_store(&s->seq_hi, hi);
            s->t_ns     = scomm_now_ns();
            s->deadline = s->t_ns + (uint64_t)comm->timeout_ms * 1000000ull;
            rc          = 1;
        }
    }
    pthread_mutex_unlock(&v->poll_lock);
    return rc;
}

/* Record the event of calls lo..hi on stream; world lock held. */
static scomm_status_t scomm_vendor_record(scomm_comm_t *comm,
                                          scomm_vendor_t *v, void *stream,
                                          uint64_t lo, uint64_t hi,
                                          const char *what, const char *call)
{
    uint64_t h = atomic_load_explicit(&v->head, memory_order_relaxed);
    uint64_t t0 = scomm_now_ns();
    scomm_vendor_slot_t *s;
    long ns = 1000;
    int full;

    while (h - atomic_load_explicit(&v->tail, memory_order_acquire) >=
           SCOMM_VENDOR_RING) {
        full = scomm_vendor_ring_full(comm, v, stream, hi, h);
        if (full >= 0) {
            if (full == 1) {
                return SCOMM_OK;
            }
            break;
        }
        if (atomic_load(&comm->world->fault.status) != 0) {
            return scomm_vendor_error(v, (scomm_status_t)atomic_load(
                                             &comm->world->fault.status),
                                      "%s: %s", what,
                                      comm->world->fault.msg);
        }
        scomm_vendor_nap(t0, &ns);
    }
    s = &v->ring[h % SCOMM_VENDOR_RING];
    if ((s->ev == NULL) &&
        (scomm_devrt_event_create(v->rt, &s->ev, v->err, sizeof(v->err)) !=
         0)) {
        return SCOMM_ERR_SYSTEM;
    }
    s->stream   = stream;
    s->seq_lo   = lo;
    atomic_store(&s->seq_hi, hi);
    s->t_ns     = scomm_now_ns();
    s->deadline = s->t_ns + (uint64_t)comm->timeout_ms * 1000000ull;
    s->what     = what;
    s->call     = (call != NULL) ? call : what;
    if (scomm_devrt_event_record(v->rt, s->ev, stream, v->err,
                                 sizeof(v->err)) != 0) {
        return SCOMM_ERR_SYSTEM;
    }
    atomic_store_explicit(&v->head, h + 1, memory_order_release);
    return SCOMM_OK;
}

/* ---- groups (invariant 3) ----------------------------------------------- */

typedef struct {
    scomm_vendor_t *v;
    void           *stream;
    uint64_t        lo, hi;
    const char     *what, *call;
} scomm_vgroup_ent_t;

static _Thread_local struct {
    int                       depth;
    int                       nlibs;
    const scomm_vendor_ops_t *libs[8];
    scomm_vendor_t           *lib_v[8];
    int                       nbusy;
    scomm_vendor_t           *busy[SCOMM_VGROUP_MAX];
    int                       nent;
    scomm_vgroup_ent_t        ent[SCOMM_VGROUP_MAX];
} scomm_vgroup;

static int scomm_vgroup_busy(const scomm_vendor_t *v)
{
    int i;

    for (i = 0; i < scomm_vgroup.nbusy; i++) {
        if (scomm_vgroup.busy[i] == v) {
            return 1;
        }
    }
    return 0;
}

/* v joins the thread's group: entered once, its library's group opened
 * once. */
static scomm_status_t scomm_vgroup_join(scomm_comm_t *comm, const char *name)
{
    scomm_vendor_t *v = comm->vendor;
    scomm_status_t status;
    int i;

    if (!scomm_vgroup_busy(v)) {
        if (scomm_vgroup.nbusy == SCOMM_VGROUP_MAX) {
            return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE,
                                   "%s: more than %d vendor communicators "
                                   "in one group", name, SCOMM_VGROUP_MAX);
        }
        status = scomm_vendor_enter(comm, name);
        if (status != SCOMM_OK) {
            return status;
        }
        scomm_vgroup.busy[scomm_vgroup.nbusy++] = v;
    }
    for (i = 0; i < scomm_vgroup.nlibs; i++) {
        if (scomm_vgroup.libs[i] == v->ops) {
            return SCOMM_OK;
        }
    }
    status = v->ops->group(v, 1);
    if (status != SCOMM_OK) {
        return scomm_set_error(comm, status, "%s: backend %s: %s", name,
                               v->ops->name, v->err);
    }
    scomm_vgroup.libs[scomm_vgroup.nlibs]    = v->ops;
    scomm_vgroup.lib_v[scomm_vgroup.nlibs++] = v;
    return SCOMM_OK;
}

/* Call seq of v on stream is in the group: its event comes at the end. */
static scomm_status_t scomm_vgroup_note(scomm_vendor_t *v, void *stream,
                                        uint64_t seq, const char *what)
{
    scomm_vgroup_ent_t *e;
    int i;

    for (i = 0; i < scomm_vgroup.nent; i++) {
        e = &scomm_vgroup.ent[i];
        if ((e->v == v) && (e->stream == stream)) {
            e->hi = seq;
            return SCOMM_OK;
        }
    }
    if (scomm_vgroup.nent == SCOMM_VGROUP_MAX) {
        return scomm_vendor_error(v, SCOMM_ERR_INVALID_USAGE,
                                  "more than %d communicator and stream "
                                  "pairs in one group", SCOMM_VGROUP_MAX);
    }
    e         = &scomm_vgroup.ent[scomm_vgroup.nent++];
    e->v      = v;
    e->stream = stream;
    e->lo     = seq;
    e->hi     = seq;
    e->what   = what;
    e->call   = v->cur_call;
    return SCOMM_OK;
}

void scomm_backend_group_start(void)
{
    scomm_vgroup.depth++;
}

scomm_status_t scomm_backend_group_end(void)
{
    scomm_status_t status = SCOMM_OK, st;
    scomm_vgroup_ent_t *e;
    scomm_vendor_t *v;
    int i, j;

    if ((scomm_vgroup.depth == 0) || (--scomm_vgroup.depth > 0)) {
        return SCOMM_OK;
    }
    /* One launch per library, then the calls it took settle. */
    for (i = 0; i < scomm_vgroup.nlibs; i++) {
        v  = scomm_vgroup.lib_v[i];
        st = scomm_vgroup.libs[i]->group(v, 0);
        for (j = 0; (j < scomm_vgroup.nbusy) && (st == SCOMM_INPROGRESS);
             j++) {
            if (scomm_vgroup.busy[j]->ops == scomm_vgroup.libs[i]) {
                st = scomm_vendor_settle(scomm_vgroup.busy[j]->comm,
                                         scomm_vgroup.busy[j],
                                         "scomm_group_end", 0);
                st = (st == SCOMM_OK) ? SCOMM_INPROGRESS : st;
            }
        }
        st = (st == SCOMM_INPROGRESS) ? SCOMM_OK : st;
        if (st != SCOMM_OK) {
            for (j = 0; j < scomm_vgroup.nbusy; j++) {
                if (scomm_vgroup.busy[j]->ops == scomm_vgroup.libs[i]) {
                    snprintf(scomm_vgroup.busy[j]->err,
                             sizeof(scomm_vgroup.busy[j]->err), "%s",
                             v->err);
                    (void)scomm_vendor_failed(scomm_vgroup.busy[j]->comm,
                                              "scomm_group_end", st);
                }
            }
            status = (status == SCOMM_OK) ? st : status;
        }
    }
    for (i = 0; (i < scomm_vgroup.nent) && (status == SCOMM_OK); i++) {
        e = &scomm_vgroup.ent[i];
        pthread_mutex_lock(&e->v->comm->world->lock);
        st = scomm_vendor_record(e->v->comm, e->v, e->stream, e->lo, e->hi,
                                 e->what, e->call);
        pthread_mutex_unlock(&e->v->comm->world->lock);
        if (st != SCOMM_OK) {
            status = scomm_vendor_failed(e->v->comm, "scomm_group_end", st);
        }
    }
    for (i = 0; i < scomm_vgroup.nbusy; i++) {
        scomm_vendor_leave(scomm_vgroup.busy[i]);
    }
    scomm_vgroup.nlibs = 0;
    scomm_vgroup.nbusy = 0;
    scomm_vgroup.nent  = 0;
    return status;
}

/* ---- one call ----------------------------------------------------------- */

enum { SCOMM_VJOB_COLL, SCOMM_VJOB_EMUL, SCOMM_VJOB_P2P };

typedef struct {
    int                      kind;
    const scomm_coll_args_t *a;
    int                      vdt, vop;
    int                      is_send;
    void                    *buf;
    size_t                   count;
    int                      peer;
} scomm_vjob_t;

/* The sequence number of this thread's last call (0: captured, or none). */
static _Thread_local uint64_t scomm_vendor_last_seq;

/* all_to_all(v), gather, scatter as one group of send/recv. */
static scomm_status_t scomm_vendor_emulate(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a,
                                           int vdt, void *st)
{
    scomm_vendor_t *v = comm->vendor;
    const char *s     = a->sendbuf;
    char *r           = a->recvbuf;
    size_t es = a->esize, n = a->count;
    scomm_status_t status, st2;
    int p, me = comm->rank, root = a->root;

    status = v->ops->group(v, 1);
    for (p = 0; (p < comm->size) && (status == SCOMM_OK); p++) {
        switch (a->op) {
        case SCOMM_COLL_ALLTOALL:
            status = v->ops->p2p(v, 1, (void *)(s + p * n * es), n, vdt, p,
                                 st);
            if (status == SCOMM_OK) {
                status = v->ops->p2p(v, 0, r + p * n * es, n, vdt, p, st);
            }
            break;
        case SCOMM_COLL_ALLTOALLV:
            if (a->scounts[p] > 0) {
                status = v->ops->p2p(v, 1, (void *)(s + a->sdispls[p] * es),
                                     a->scounts[p], vdt, p, st);
            }
            if ((status == SCOMM_OK) && (a->rcounts[p] > 0)) {
                status = v->ops->p2p(v, 0, r + a->rdispls[p] * es,
                                     a->rcounts[p], vdt, p, st);
            }
            break;
        case SCOMM_COLL_GATHER:
            if ((p == root) && !((me == root) && a->inplace)) {
                status = v->ops->p2p(v, 1, (void *)s, n, vdt, root, st);
            }
            if ((status == SCOMM_OK) && (me == root) &&
                !((p == root) && a->inplace)) {
                status = v->ops->p2p(v, 0, r + p * n * es, n, vdt, p, st);
            }
            break;
        case SCOMM_COLL_SCATTER:
            if ((me == root) && !((p == root) && a->inplace)) {
                status = v->ops->p2p(v, 1, (void *)(s + p * n * es), n, vdt,
                                     p, st);
            }
            if ((status == SCOMM_OK) && (p == root) &&
                !((me == root) && a->inplace)) {
                status = v->ops->p2p(v, 0, r, n, vdt, root, st);
            }
            break;
        default:
            status = scomm_vendor_error(v, SCOMM_ERR_INTERNAL,
                                        "no emulation of this operation");
            break;
        }
    }
    st2 = v->ops->group(v, 0);
    return (status != SCOMM_OK) ? status : st2;
}

/* Enqueue one call and record its event; world lock held (invariant 1). */
static scomm_status_t scomm_vendor_issue(scomm_comm_t *comm, const char *name,
                                         const scomm_vjob_t *j)
{
    scomm_vendor_t *v = comm->vendor;
    void *stream      = atomic_load(&v->stream);
    int grouped       = (scomm_vgroup.depth > 0) && (v->ops->group != NULL);
    scomm_status_t status;
    uint64_t seq = 0;
    int cap = 0;

    scomm_vendor_last_seq = 0;
    if (v->rt != NULL) {
        cap = scomm_devrt_capturing(v->rt, stream, v->err, sizeof(v->err));
        if (cap < 0) {
            return scomm_set_error(comm, SCOMM_ERR_SYSTEM, "%s: backend %s: "
                                   "%s", name, v->ops->name, v->err);
        }
    }
    status = grouped ? scomm_vgroup_join(comm, name)
                     : scomm_vendor_enter(comm, name);
    if (status != SCOMM_OK) {
        return status;
    }
    v->cur_call = NULL;
    switch (j->kind) {
    case SCOMM_VJOB_COLL:
        status = v->ops->coll(v, j->a, j->vdt, j->vop, stream);
        break;
    case SCOMM_VJOB_EMUL:
        status = scomm_vendor_emulate(comm, j->a, j->vdt, stream);
        break;
    default:
        status = v->ops->p2p(v, j->is_send, j->buf, j->count, j->vdt,
                             j->peer, stream);
        break;
    }
    if (status == SCOMM_INPROGRESS) {
        status = scomm_vendor_settle(comm, v, name, 1);
    }
    if ((status == SCOMM_OK) && cap) {
        atomic_fetch_add(&v->captured, 1); /* invariant 2 */
    } else if (status == SCOMM_OK) {
        seq = atomic_fetch_add(&v->enq, 1) + 1;
        atomic_store(&v->last_what, name);
        scomm_vendor_doing(comm, name, seq);
        if (v->rt == NULL) {
            atomic_store(&v->done, seq);
        } else if (grouped) {
            status = scomm_vgroup_note(v, stream, seq, name);
        } else {
            status = scomm_vendor_record(comm, v, stream, seq, seq, name,
                                         v->cur_call);
        }
    }
    if (!grouped) {
        scomm_vendor_leave(v);
    }
    if (status != SCOMM_OK) {
        return scomm_vendor_failed(comm, name, status);
    }
    scomm_vendor_last_seq = seq;
    return SCOMM_OK;
}

/* The dtype and op of a, mapped; or ERR_UNSUPPORTED naming the vendor. */
static scomm_status_t scomm_vendor_map(scomm_comm_t *comm, const char *name,
                                       scomm_dtype_t dtype,
                                       const scomm_redop_t *redop, int *vdt,
                                       int *vop)
{
    scomm_vendor_t *v = comm->vendor;
    char why[160] = "";

    *vop = 0;
    *vdt = v->ops->dtype(v, dtype, why, sizeof(why));
    if (*vdt < 0) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s has no dtype %s: %s", name,
                               v->ops->name, scomm_dtype_name(dtype), why);
    }
    if (redop != NULL) {
        *vop = v->ops->redop(v, *redop, why, sizeof(why));
        if (*vop < 0) {
            return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                                   "%s: backend %s has no op %s: %s", name,
                                   v->ops->name, scomm_redop_name(*redop),
                                   why);
        }
    }
    return SCOMM_OK;
}

/* comm->last_sel, formatted only when it changes (the call path). */
static void scomm_vendor_select(scomm_comm_t *comm, int native)
{
    const char *rule = native ? "backend.vendor" : "backend.vendor_p2p";

    if ((strcmp(comm->last_sel.rule_id, rule) == 0) &&
        (strcmp(comm->last_sel.algo, comm->vendor->ops->name) == 0)) {
        return;
    }
    scomm_coll_record_special(comm, comm->vendor->ops->name, rule,
                              native ? "vendor communicator: the vendor's "
                                       "own collective, on its stream"
                                     : "vendor communicator: built from the "
                                       "vendor's grouped send/recv");
}

scomm_status_t scomm_backend_coll(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a)
{
    scomm_vendor_t *v = comm->vendor;
    const char *opname = scomm_coll_op_name(a->op);
    int reduces = (a->op == SCOMM_COLL_ALLREDUCE) ||
                  (a->op == SCOMM_COLL_REDUCESCATTER) ||
                  (a->op == SCOMM_COLL_REDUCE);
    int native  = (v->ops->colls & SCOMM_VENDOR_OP(a->op)) != 0;
    scomm_vjob_t j;
    scomm_status_t status;

    memset(&j, 0, sizeof(j));
    scomm_vendor_last_seq = 0;
    status = scomm_vendor_map(comm, name, a->dtype,
                              reduces ? &a->redop : NULL, &j.vdt, &j.vop);
    if (status != SCOMM_OK) {
        return status;
    }
    if (!native && ((v->ops->p2p == NULL) || (v->ops->group == NULL))) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s has no %s and no grouped "
                               "send/recv to build it from", name,
                               v->ops->name, opname);
    }
    if (!native && a->inplace && ((a->op == SCOMM_COLL_ALLTOALL) ||
                                  (a->op == SCOMM_COLL_ALLTOALLV))) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s: in-place %s is not "
                               "supported (it is built from send/recv, "
                               "which may not overlap)", name, v->ops->name,
                               opname);
    }
    j.kind = native ? SCOMM_VJOB_COLL : SCOMM_VJOB_EMUL;
    j.a    = a;
    status = scomm_vendor_issue(comm, name, &j);
    if (status == SCOMM_OK) {
        scomm_vendor_select(comm, native);
    }
    return status;
}

/* ---- requests and waits (invariant 4) ----------------------------------- */

static scomm_status_t scomm_vendor_req(scomm_comm_t *comm, uint64_t seq,
                                       const char *name, scomm_req_t **req_p)
{
    scomm_req_t *req;

    pthread_mutex_lock(&comm->world->lock);
    req = scomm_req_new(comm->world, comm, SCOMM_REQ_VENDOR);
    pthread_mutex_unlock(&comm->world->lock);
    if (req == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for a request", name);
    }
    req->tl_u64[0] = seq; /* 0: captured, complete for the host */
    req->tl_ptr[0] = (void *)name;
    *req_p         = req;
    return SCOMM_OK;
}

scomm_status_t scomm_backend_post(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a,
                                  scomm_req_t **req_p)
{
    scomm_status_t status = scomm_coll_run(comm, name, a);

    if ((status != SCOMM_OK) || (req_p == NULL)) {
        return status;
    }
    return scomm_vendor_req(comm, scomm_vendor_last_seq, name, req_p);
}

scomm_status_t scomm_backend_p2p(scomm_comm_t *comm, const char *name,
                                 int is_send, void *buf, size_t count,
                                 scomm_dtype_t dtype, int peer,
                                 scomm_req_t **req_p)
{
    scomm_vendor_t *v = comm->vendor;
    scomm_vjob_t j;
    scomm_status_t status;
    uint64_t seq;

    if (v->ops->p2p == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s has no point-to-point calls",
                               name, v->ops->name);
    }
    memset(&j, 0, sizeof(j));
    status = scomm_vendor_map(comm, name, dtype, NULL, &j.vdt, &j.vop);
    if (status != SCOMM_OK) {
        return status;
    }
    j.kind    = SCOMM_VJOB_P2P;
    j.is_send = is_send;
    j.buf     = buf;
    j.count   = count;
    j.peer    = peer;
    pthread_mutex_lock(&comm->world->lock);
    comm->cur_op = name;
    status       = scomm_vendor_issue(comm, name, &j);
    seq          = scomm_vendor_last_seq;
    pthread_mutex_unlock(&comm->world->lock);
    if ((status != SCOMM_OK) || (req_p == NULL)) {
        return status;
    }
    return scomm_vendor_req(comm, seq, name, req_p);
}

/* 1 when the ring reached what the waiter wants: seq done (seq > 0), or
 * every slot before pos retired (pos > 0). */
static int scomm_vendor_reached(scomm_vendor_t *v, uint64_t seq,
                                uint64_t pos)
{
    if ((seq > 0) && (atomic_load(&v->done) < seq)) {
        return 0;
    }
    return (pos == 0) || (atomic_load(&v->tail) >= pos);
}

static scomm_status_t scomm_vendor_wait(scomm_comm_t *comm, const char *name,
                                        uint64_t seq, uint64_t pos)
{
    scomm_vendor_t *v = comm->vendor;
    scomm_world_t *w  = comm->world;
    uint64_t t0       = scomm_now_ns();
    uint64_t guard    = t0 + ((uint64_t)comm->timeout_ms +
                              SCOMM_VWAIT_GUARD) * 1000000ull;
    scomm_status_t st;
    long ns = 1000;
    int fault;

    scomm_vendor_doing(comm, name, (seq > 0) ? seq : atomic_load(&v->enq));

    for (;;) {
        if (scomm_vendor_reached(v, seq, pos)) {
            return scomm_vendor_async_check(comm, v, name);
        }
        fault = atomic_load(&w->fault.status);
        if (fault != 0) {
            return scomm_set_error(comm, (scomm_status_t)fault, "%s: %s",
                                   name, w->fault.msg);
        }
        if (pthread_mutex_trylock(&v->poll_lock) == 0) {
            st = scomm_vendor_poll(v, NULL);
            if (st != SCOMM_OK) {
                snprintf(v->err, sizeof(v->err), "%s", v->poll_err);
            }
            pthread_mutex_unlock(&v->poll_lock);
            if (st != SCOMM_OK) {
                return scomm_vendor_failed(comm, name, st);
            }
            if (scomm_vendor_reached(v, seq, pos)) {
                return scomm_vendor_async_check(comm, v, name);
            }
        }
        if (scomm_now_ns() > guard) {
            return scomm_set_error(comm, SCOMM_ERR_TIMED_OUT,
                                   "%s: the %s communicator's work did not "
                                   "complete within %lld ms and the "
                                   "watchdog did not fail it (a bug)", name,
                                   v->ops->name, (long long)comm->timeout_ms);
        }
        scomm_vendor_nap(t0, &ns);
    }
}

/* 0 when req can be waited for; the error when its call is still in the
 * open group of this thread (its event comes at scomm_group_end: waiting
 * would never end). The request is given back either way. */
static scomm_status_t scomm_vendor_req_check(scomm_req_t *req,
                                             const char *op)
{
    scomm_vendor_t *v = req->comm->vendor;
    uint64_t seq      = req->tl_u64[0];
    int i;

    for (i = 0; i < scomm_vgroup.nent; i++) {
        if ((scomm_vgroup.ent[i].v == v) && (seq >= scomm_vgroup.ent[i].lo) &&
            (seq <= scomm_vgroup.ent[i].hi)) {
            return scomm_set_error(req->comm, SCOMM_ERR_INVALID_USAGE,
                                   "%s: %s was issued inside a group that "
                                   "is still open; call scomm_group_end() "
                                   "first", op,
                                   (const char *)req->tl_ptr[0]);
        }
    }
    return SCOMM_OK;
}

static void scomm_vendor_req_free(scomm_req_t *req)
{
    scomm_world_t *w = req->world;

    pthread_mutex_lock(&w->lock);
    scomm_req_release(req);
    pthread_mutex_unlock(&w->lock);
}

scomm_status_t scomm_backend_req_test(scomm_req_t *req, int32_t *done)
{
    scomm_comm_t *comm = req->comm;
    scomm_vendor_t *v  = comm->vendor;
    uint64_t seq       = req->tl_u64[0];
    scomm_status_t status = SCOMM_OK;
    int fault;

    *done = 0;
    if (v == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE, "scomm_test: "
                               "the request's vendor communicator is gone");
    }
    if ((seq > 0) && (atomic_load(&v->done) < seq) &&
        (pthread_mutex_trylock(&v->poll_lock) == 0)) {
        status = scomm_vendor_poll(v, NULL);
        if (status != SCOMM_OK) {
            snprintf(v->err, sizeof(v->err), "%s", v->poll_err);
        }
        pthread_mutex_unlock(&v->poll_lock);
        if (status != SCOMM_OK) {
            status = scomm_vendor_failed(comm, "scomm_test", status);
        }
    }
    fault = atomic_load(&comm->world->fault.status);
    if ((status == SCOMM_OK) && (fault != 0) &&
        !scomm_vendor_reached(v, seq, 0)) {
        status = scomm_set_error(comm, (scomm_status_t)fault, "scomm_test: "
                                 "%s: %s", (const char *)req->tl_ptr[0],
                                 comm->world->fault.msg);
    }
    if ((status == SCOMM_OK) && scomm_vendor_reached(v, seq, 0)) {
        status = scomm_vendor_async_check(comm, v, "scomm_test");
        *done  = 1;
    }
    if (status != SCOMM_OK) {
        *done = 1;
    }
    if (*done) {
        scomm_vendor_req_free(req);
    }
    return status;
}

scomm_status_t scomm_backend_req_wait(scomm_req_t *req)
{
    scomm_comm_t *comm = req->comm;
    scomm_status_t status;

    if (comm->vendor == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE, "scomm_wait: "
                               "the request's vendor communicator is gone");
    }
    status = scomm_vendor_req_check(req, "scomm_wait");
    if (status == SCOMM_OK) {
        status = scomm_vendor_wait(comm, (const char *)req->tl_ptr[0],
                                   req->tl_u64[0], 0);
    }
    scomm_vendor_req_free(req);
    return status;
}

/* ---- public API --------------------------------------------------------- */

scomm_status_t scomm_comm_synchronize(scomm_comm_t *comm)
{
    static const char name[] = "scomm_comm_synchronize";
    scomm_status_t status = scomm_comm_check(comm, name);
    scomm_vendor_t *v;
    uint64_t pos;
    void *stream;
    int cap;

    if ((status != SCOMM_OK) || (comm->vendor == NULL) ||
        (comm->vendor->rt == NULL)) {
        return status; /* native calls and no-runtime calls are done */
    }
    v = comm->vendor;
    if (scomm_vgroup_busy(v)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE, "%s: inside "
                               "a group that uses the communicator; call "
                               "scomm_group_end() first", name);
    }
    pthread_mutex_lock(&comm->world->lock);
    stream = atomic_load(&v->stream);
    cap    = scomm_devrt_capturing(v->rt, stream, v->err, sizeof(v->err));
    if (cap != 0) {
        pthread_mutex_unlock(&comm->world->lock);
        return scomm_set_error(comm, (cap < 0) ? SCOMM_ERR_SYSTEM
                                               : SCOMM_ERR_INVALID_USAGE,
                               "%s: %s", name,
                               (cap < 0) ? v->err
                                         : "the communicator's stream is "
                                           "capturing (a graph): "
                                           "synchronize after the capture "
                                           "ends");
    }
    status = scomm_vendor_enter(comm, name);
    if (status == SCOMM_OK) {
        /* A fence: an event after everything on the stream so far, so
         * graph replays and other work on it are waited for (and watched)
         * too. It completes no numbered call of its own. */
        status = scomm_vendor_record(comm, v, stream, atomic_load(&v->enq),
                                     atomic_load(&v->enq), name,
                                     "the stream's work (a fence)");
        scomm_vendor_leave(v);
        if (status != SCOMM_OK) {
            status = scomm_vendor_failed(comm, name, status);
        }
    }
    pos = atomic_load(&v->head);
    pthread_mutex_unlock(&comm->world->lock);
    if (status != SCOMM_OK) {
        return status;
    }
    return scomm_vendor_wait(comm, name, 0, pos);
}
