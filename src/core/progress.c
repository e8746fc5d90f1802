/*
 * progress.c - the wait loop every blocking call ends in, and the one
 * check that names a silent peer.
 *
 * A wait polls its transports for SCOMM_SPIN_US, then sleeps in ppoll() on
 * the world's wake eventfd, the transports' fds (TCP sockets, pidfds of
 * shared-memory peers) and nothing else. A shared-memory sender that finds
 * the receiver's "sleeping" flag raised writes the receiver's eventfd, so a
 * sleeping rank costs no CPU and wakes in one syscall. The same loop waits
 * for requests (scomm_world_wait) and for a caller's condition
 * (scomm_world_wait_until: the direct collectives' counters in shared
 * memory), so algorithms never talk to transports themselves.
 *
 * Invariants:
 *  1. No wait outlives its deadline: the sleep is the time left, capped
 *     (100 ms for requests) so liveness checks run while sleeping.
 *  2. A world fault ends every wait at once with the fault's status.
 *  3. When ranks outnumber cores, or any peer is reached over a transport
 *     whose bytes the kernel moves (SCOMM_TL_CAP_KERNEL_COPY: tcp),
 *     spinning yields the core each turn: oversubscribed ranks never
 *     starve the peer they wait for, and the kernel's loopback/softirq work
 *     that delivers TCP data gets the CPU (without the yield an 8-byte TCP
 *     ping-pong took the whole spin time, ~200 us, instead of ~5 us).
 *  4. At the deadline, a member of the communicator that shows no sign of
 *     life (every transport's last_heard) is named rather than whoever
 *     this rank waited for, so every survivor blames the same rank.
 *  5. While an isend offered over CUDA IPC polls a device event (its copy
 *     to host after a decline, backend/ipc.c; w->ipc_dev_polls), a sleep
 *     lasts at most 50 us: no fd wakes the wait when the copy is done,
 *     and a 100 ms sleep would be the message's latency.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "scomm_int.h"

#define SCOMM_POLL_MAX     256
#define SCOMM_PURE_SPIN_NS 5000ull
/* A sleep's cap while the progress polls a device event (invariant 5). */
#define SCOMM_DEV_NAP_NS   50000ull

int scomm_world_progress(scomm_world_t *w)
{
    int i, n = 0;

    for (i = 0; i < w->ntl; i++) {
        n += w->tls[i]->progress(w->tl_ctx[i]);
    }
    if (SCOMM_UNLIKELY(!scomm_list_empty(&w->ipc_offers) ||
                       !scomm_list_empty(&w->ipc_replies) ||
                       !scomm_list_empty(&w->ipc_sends))) {
        n += scomm_p2p_offers_progress(w); /* CUDA IPC offers (p2p.c) */
    }
    return n;
}

void scomm_world_wake(scomm_world_t *w)
{
    uint64_t one = 1;

    if (w->wake_fd >= 0) {
        if (write(w->wake_fd, &one, sizeof(one)) < 0) {
            /* Counter overflow is impossible at one write per fault. */
        }
    }
}

void scomm_world_peer_closed(scomm_world_t *w, int peer)
{
    if ((peer >= 0) && (peer < w->size) && !w->peers[peer].closed) {
        w->peers[peer].closed = 1;
        scomm_debug(SCOMM_SUB_PROG, "rank %d closed its communicator", peer);
    }
}

int scomm_comm_rank_of(const scomm_comm_t *comm, int wrank)
{
    int i;

    for (i = 0; i < comm->size; i++) {
        if (comm->ranks[i] == wrank) {
            return i;
        }
    }
    return -1;
}

int scomm_comm_peers_have(const scomm_comm_t *comm, uint64_t caps)
{
    int q;

    for (q = 0; q < comm->size; q++) {
        if ((q != comm->rank) &&
            ((scomm_peer_caps(comm->world, comm->ranks[q]) & caps) != caps)) {
            return 0;
        }
    }
    return 1;
}

/* Heartbeat interval and staleness threshold, scaled down for short
 * timeouts so a stopped rank is told apart from a waiting one before the
 * deadline. */
uint64_t scomm_hb_interval_ns(const scomm_world_t *w, int64_t timeout)
{
    uint64_t hb = (uint64_t)w->cfg.heartbeat_ms * 1000000ull;
    uint64_t q  = (timeout > 0) ? (uint64_t)timeout * 1000000ull / 4
                                : UINT64_MAX;

    return SCOMM_MAX(SCOMM_MIN(hb, q), 10000000ull);
}

/* ---- pieces of the wait ------------------------------------------------- */

static void scomm_world_heartbeat(scomm_world_t *w, uint64_t now)
{
    int i;

    w->last_hb = now;
    for (i = 0; i < w->ntl; i++) {
        w->tls[i]->heartbeat(w->tl_ctx[i], now);
    }
}

static void scomm_world_check_peers(scomm_world_t *w)
{
    int i;

    for (i = 0; i < w->ntl; i++) {
        w->tls[i]->check_peers(w->tl_ctx[i]);
    }
}

static scomm_status_t scomm_wait_fault(scomm_world_t *w, scomm_comm_t *comm,
                                       int fault)
{
    scomm_world_notify(w);
    return scomm_set_error(comm, (scomm_status_t)fault, "%s", w->fault.msg);
}

/*
 * The members of comm with no sign of life for stale_ns, as comm ranks
 * (at most max): the one suspects check, over every transport's
 * last_heard. A peer that closed cleanly is no suspect.
 */
static int scomm_comm_suspects(const scomm_comm_t *comm, uint64_t now,
                               uint64_t stale_ns, int *ranks, int max)
{
    const scomm_world_t *w = comm->world;
    int q, wr, n = 0;
    uint64_t hb;

    for (q = 0; (q < comm->size) && (n < max); q++) {
        wr = comm->ranks[q];
        if ((q == comm->rank) || (w->peers[wr].tl_idx < 0) ||
            w->peers[wr].closed) {
            continue;
        }
        hb = w->peers[wr].tl->last_heard(w->tl_ctx[w->peers[wr].tl_idx], wr);
        if ((hb != 0) && (now > hb) && (now - hb > stale_ns)) {
            ranks[n++] = q;
        }
    }
    return n;
}

/* "1,3" from comm ranks, into out. */
static void scomm_rank_list(const int *ranks, int n, char *out, size_t len)
{
    size_t o = 0;
    int k;

    out[0] = '\0';
    for (k = 0; (k < n) && (o + 16 < len); k++) {
        o += (size_t)snprintf(out + o, len - o, "%s%d", (k == 0) ? "" : ",",
                              ranks[k]);
    }
}

#define SCOMM_WAIT_NAMED 16 /* ranks named in one timeout message */

/*
 * The deadline passed: fail the world naming the culprit. A member that
 * shows no sign of life is the culprit, whoever this rank happened to
 * wait for: name it, so every survivor names the same. Otherwise name the
 * ranks the wait still needs.
 */
static scomm_status_t scomm_wait_timed_out(scomm_world_t *w,
                                           scomm_comm_t *comm,
                                           const scomm_wait_cond_t *c)
{
    uint64_t stale = 2 * scomm_hb_interval_ns(w, comm->timeout_ms);
    int ranks[SCOMM_WAIT_NAMED], wr[SCOMM_WAIT_NAMED], n, k;
    char list[128], what[96] = "";

    n = scomm_comm_suspects(comm, scomm_now_ns(), stale, ranks,
                            SCOMM_WAIT_NAMED);
    if (n > 0) {
        scomm_rank_list(ranks, n, list, sizeof(list));
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, comm->ranks[ranks[0]],
                         "%s (op #%llu): timed out after %lld ms%s: rank %s "
                         "shows no sign of life (stopped or hung)",
                         comm->cur_op, (unsigned long long)comm->op_seq,
                         (long long)comm->timeout_ms, c->where, list);
    } else {
        n = c->pending(c->arg, wr, SCOMM_WAIT_NAMED, what, sizeof(what));
        for (k = 0; k < n; k++) {
            ranks[k] = scomm_comm_rank_of(comm, wr[k]);
        }
        scomm_rank_list(ranks, n, list, sizeof(list));
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, (n > 0) ? wr[0] : -1,
                         "%s (op #%llu): timed out after %lld ms%s waiting "
                         "for rank %s%s", comm->cur_op,
                         (unsigned long long)comm->op_seq,
                         (long long)comm->timeout_ms, c->where, list, what);
    }
    return scomm_set_error(comm, SCOMM_ERR_TIMED_OUT, "%s", w->fault.msg);
}

/*
 * A rank the wait needs left cleanly: it can never answer. What it sent
 * before it left may still sit in a ring or a socket buffer, so drain
 * first. Fails the world (PEER_LOST) and returns 1, or returns 0.
 */
static int scomm_wait_orphaned(scomm_world_t *w, scomm_comm_t *comm,
                               int (*done)(void *), void *arg,
                               const scomm_wait_cond_t *c)
{
    int wr[SCOMM_WAIT_NAMED], n, k, drained = 0;

    for (;;) {
        n = c->pending(c->arg, wr, SCOMM_WAIT_NAMED, NULL, 0);
        for (k = 0; (k < n) && !w->peers[wr[k]].closed; k++) {
        }
        if (k == n) {
            return 0;
        }
        if (drained) {
            break;
        }
        while (scomm_world_progress(w) > 0) {
        }
        if (done(arg)) {
            return 0;
        }
        drained = 1;
    }
    scomm_world_fail(w, SCOMM_ERR_PEER_LOST, wr[k],
                     "%s (op #%llu): rank %d destroyed its communicator and "
                     "exited while this rank waited for it%s", comm->cur_op,
                     (unsigned long long)comm->op_seq,
                     scomm_comm_rank_of(comm, wr[k]), c->where);
    return 1;
}

/*
 * Sleep up to ns in ppoll() on the world's wake eventfd and the
 * transports' fds, the world lock released meanwhile. The transports'
 * sleeping flags (shm) and the condition's own are raised first and the
 * condition looked at once more, so whoever ends the wait either sees a
 * flag (and writes our eventfd) or we see its work. Returns the number of
 * fds ready, 0 at the timeout, -1 when it did not sleep.
 */
static int scomm_wait_sleep(scomm_world_t *w, int (*done)(void *), void *arg,
                            const scomm_wait_cond_t *c, uint64_t ns)
{
    struct pollfd fds[SCOMM_POLL_MAX];
    struct timespec ts;
    uint64_t drain;
    int i, nfds = 0, nready = -1;

    for (i = 0; i < w->ntl; i++) {
        w->tls[i]->sleep_begin(w->tl_ctx[i]);
    }
    if (c->sleeping != NULL) {
        atomic_store(c->sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (c->asym_fence) {
            scomm_membarrier_global();
        }
    }
    if ((scomm_world_progress(w) == 0) && !done(arg)) {
        fds[nfds].fd      = w->wake_fd;
        fds[nfds].events  = POLLIN;
        fds[nfds].revents = 0;
        nfds++;
        for (i = 0; i < w->ntl; i++) {
            nfds += w->tls[i]->poll_fds(w->tl_ctx[i], fds + nfds,
                                        SCOMM_POLL_MAX - nfds);
        }
        ts.tv_sec  = (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_mutex_unlock(&w->lock);
        nready = ppoll(fds, (nfds_t)nfds, &ts, NULL);
        pthread_mutex_lock(&w->lock);
        if ((nready > 0) && (fds[0].revents & POLLIN)) {
            if (read(w->wake_fd, &drain, sizeof(drain)) < 0) {
                /* EAGAIN: another thread drained it first. */
            }
        }
        nready = SCOMM_MAX(nready, 0);
    }
    if (c->sleeping != NULL) {
        atomic_store_explicit(c->sleeping, 0, memory_order_relaxed);
    }
    for (i = 0; i < w->ntl; i++) {
        w->tls[i]->sleep_end(w->tl_ctx[i]);
    }
    return nready;
}

/*
 * The one wait loop. Each turn: the condition, the world's fault, the
 * transports' progress (every turn, or every c->progress_ns), heartbeats,
 * liveness checks, the deadline; then spin for spin_ns (purely for the
 * first 5 us unless spinning must yield) and sleep after that. Inlined
 * into both callers, so the request wait pays no indirect call per turn.
 */
static inline __attribute__((always_inline)) scomm_status_t
scomm_wait_loop(scomm_world_t *w, scomm_comm_t *comm, int (*done)(void *),
                void *arg, const scomm_wait_cond_t *c, uint64_t spin_ns,
                uint64_t deadline)
{
    uint64_t hb_ns = scomm_hb_interval_ns(w, comm->timeout_ms);
    uint64_t now, idle_since = 0, last_prog = 0, last_check = 0;
    uint64_t sleep_ns = c->sleep_min_ns;
    int yield = w->spin_yield, checked = 0, fault, nready;

    atomic_store_explicit(&w->cur_op, comm->cur_op, memory_order_relaxed);
    atomic_store_explicit(&w->cur_seq, comm->op_seq, memory_order_relaxed);
    for (;;) {
        if (done(arg)) {
            return SCOMM_OK;
        }
        fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);
        if (SCOMM_UNLIKELY(fault != 0)) {
            return scomm_wait_fault(w, comm, fault);
        }
        if (c->progress_ns == 0) {
            if (scomm_world_progress(w) > 0) {
                idle_since = 0;
                continue;
            }
            now = scomm_now_ns();
        } else {
            now       = scomm_now_ns();
            last_prog = (last_prog == 0) ? now : last_prog;
            if (now - last_prog >= c->progress_ns) {
                /* Abort notices and other ranks' messages still flow. */
                last_prog = now;
                if (scomm_world_progress(w) > 0) {
                    idle_since = 0;
                    continue;
                }
            }
        }
        if (idle_since == 0) {
            idle_since = now;
        }
        if (last_check == 0) {
            last_check = now; /* the first idle turn: no clock before */
        }
        /* Signs of life at most every half interval, world-wide: short
         * waits cost nothing, long ones keep peers informed. */
        if (now - w->last_hb >= hb_ns / 2) {
            scomm_world_heartbeat(w, now);
        }
        if (now - last_check >= c->check_ns) {
            last_check = now;
            checked    = 1;
            scomm_world_check_peers(w);
            (void)scomm_wait_orphaned(w, comm, done, arg, c);
            continue;
        }
        if (now >= deadline) {
            if ((scomm_world_progress(w) > 0) || done(arg)) {
                continue;
            }
            return scomm_wait_timed_out(w, comm, c);
        }
        if (now - idle_since < spin_ns) {
            /* Spin purely for a few microseconds, then yield each turn:
             * when the scheduler has put the peer on this very CPU, a pure
             * spinner would hold the CPU the peer needs for the whole spin
             * (a 200 us ping-pong instead of 0.3 us). */
            if (yield || (now - idle_since > SCOMM_PURE_SPIN_NS)) {
                sched_yield();
            } else {
                /* No PAUSE here: under KVM, pause-loop exiting deschedules
                 * a vCPU that spins on PAUSE, and an 8-byte ping-pong then
                 * took ~200 us instead of ~1 us. */
                __asm__ __volatile__("" ::: "memory");
            }
            continue;
        }
        nready = scomm_wait_sleep(w, done, arg, c,
                                  SCOMM_MIN(SCOMM_MIN(sleep_ns,
                                                      deadline - now),
                                            (w->ipc_dev_polls > 0)
                                                ? SCOMM_DEV_NAP_NS
                                                : UINT64_MAX));
        if (nready < 0) {
            idle_since = 0; /* something happened: spin again */
            continue;
        }
        sleep_ns = SCOMM_MIN(2 * sleep_ns, c->sleep_max_ns);
        if ((nready > 0) || !checked) {
            last_check = scomm_now_ns();
            checked    = 1;
            scomm_world_check_peers(w);
            (void)scomm_wait_orphaned(w, comm, done, arg, c);
        }
    }
}

/* ---- waiting for requests ----------------------------------------------- */

typedef struct scomm_reqs_wait {
    scomm_req_t **reqs;
    int           n;
} scomm_reqs_wait_t;

static int scomm_reqs_done(void *arg)
{
    const scomm_reqs_wait_t *rw = arg;
    int i;

    for (i = 0; i < rw->n; i++) {
        if ((rw->reqs[i] != NULL) &&
            !atomic_load_explicit(&rw->reqs[i]->done, memory_order_acquire)) {
            return 0;
        }
    }
    return 1;
}

/* The peers of the requests not done yet, each once. */
static int scomm_reqs_pending(void *arg, int *wranks, int max, char *what,
                              size_t len)
{
    const scomm_reqs_wait_t *rw = arg;
    int i, k, n = 0;

    (void)what;
    (void)len;
    for (i = 0; (i < rw->n) && (n < max); i++) {
        if ((rw->reqs[i] == NULL) || atomic_load(&rw->reqs[i]->done)) {
            continue;
        }
        for (k = 0; (k < n) && (wranks[k] != rw->reqs[i]->peer); k++) {
        }
        if (k == n) {
            wranks[n++] = rw->reqs[i]->peer;
        }
    }
    return n;
}

scomm_status_t scomm_world_wait(scomm_world_t *w, scomm_comm_t *comm,
                                scomm_req_t **reqs, int n, uint64_t deadline)
{
    scomm_reqs_wait_t rw = {reqs, n};
    const scomm_wait_cond_t cond = {
        .done         = scomm_reqs_done,
        .pending      = scomm_reqs_pending,
        .arg          = &rw,
        .where        = "",
        .progress_ns  = 0,          /* progress is what completes them */
        .sleep_min_ns = 100000000ull,
        .sleep_max_ns = 100000000ull,
        .check_ns     = 100000000ull,
    };
    uint64_t spin_ns = (uint64_t)SCOMM_MAX(w->cfg.spin_us, 0) * 1000ull;
    int i;

    /* Waiting on a large transfer the kernel moves (tcp): sleep at once.
     * On few cores a spinning waiter takes the CPU its softirq work needs
     * (64 MiB: 1.2 GB/s spinning, 2.4 GB/s sleeping). */
    for (i = 0; i < n; i++) {
        const scomm_peer_t *pr;

        if (reqs[i] == NULL) {
            continue;
        }
        pr = &w->peers[reqs[i]->peer];
        if ((pr->tl_idx >= 0) &&
            (w->tl_attr[pr->tl_idx].caps & SCOMM_TL_CAP_KERNEL_COPY) &&
            (reqs[i]->len > w->tl_attr[pr->tl_idx].eager_max)) {
            spin_ns = 0;
        }
    }
    return scomm_wait_loop(w, comm, scomm_reqs_done, &rw, &cond, spin_ns,
                           deadline);
}

scomm_status_t scomm_world_wait_until(scomm_comm_t *comm,
                                      const scomm_wait_cond_t *cond,
                                      uint64_t deadline)
{
    scomm_world_t *w = comm->world;

    return scomm_wait_loop(w, comm, cond->done, cond->arg, cond,
                           (uint64_t)SCOMM_MAX(w->cfg.spin_us, 0) * 1000ull,
                           deadline);
}
