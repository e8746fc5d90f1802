/*
 * progress.c - the wait loop every blocking call ends in.
 *
 * A wait polls its transports for SCOMM_SPIN_US, then sleeps in poll() on
 * the world's wake eventfd, the transports' fds (TCP sockets, pidfds of
 * shared-memory peers) and nothing else. A shared-memory sender that finds
 * the receiver's "sleeping" flag raised writes the receiver's eventfd, so a
 * sleeping rank costs no CPU and wakes in one syscall.
 *
 * Invariants:
 *  1. No wait outlives its deadline: the poll timeout is the time left,
 *     capped at 100 ms so liveness checks run while sleeping.
 *  2. A world fault ends every wait at once with the fault's status.
 *  3. When ranks outnumber cores, or any peer is reached over TCP, spinning
 *     yields the core each turn: oversubscribed ranks never starve the peer
 *     they wait for, and the kernel's loopback/softirq work that delivers
 *     TCP data gets the CPU (without the yield an 8-byte TCP ping-pong took
 *     the whole spin time, ~200 us, instead of ~5 us).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "scomm_int.h"

#define SCOMM_POLL_MAX     256
#define SCOMM_PURE_SPIN_NS 5000ull

int scomm_world_progress(scomm_world_t *w)
{
    int i, n = 0;

    for (i = 0; i < w->ntl; i++) {
        n += w->tls[i]->progress(w->tl_ctx[i]);
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

/* A request whose peer left cleanly can never finish. */
static int scomm_reqs_orphaned(scomm_world_t *w, scomm_comm_t *comm,
                               scomm_req_t **reqs, int n)
{
    int i, peer;

    for (i = 0; i < n; i++) {
        if ((reqs[i] == NULL) || atomic_load(&reqs[i]->done)) {
            continue;
        }
        peer = reqs[i]->peer;
        if (w->peers[peer].closed) {
            /* What the peer sent before it left may still sit in a ring or
             * a socket buffer: drain before calling the request orphaned. */
            while (scomm_world_progress(w) > 0) {
            }
            if (atomic_load(&reqs[i]->done)) {
                continue;
            }
            scomm_world_fail(w, SCOMM_ERR_PEER_LOST, peer,
                             "%s (op #%llu): rank %d destroyed its "
                             "communicator and exited while this rank "
                             "waited for it",
                             comm->cur_op, (unsigned long long)comm->op_seq,
                             peer);
            return 1;
        }
    }
    return 0;
}

static int scomm_reqs_done(scomm_req_t **reqs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if ((reqs[i] != NULL) &&
            !atomic_load_explicit(&reqs[i]->done, memory_order_acquire)) {
            return 0;
        }
    }
    return 1;
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

static scomm_status_t scomm_wait_timed_out(scomm_world_t *w,
                                           scomm_comm_t *comm,
                                           scomm_req_t **reqs, int n)
{
    int sus[16];
    int nsus = 0, t, k;
    uint64_t now = scomm_now_ns();
    uint64_t stale = 2 * scomm_hb_interval_ns(w, comm->timeout_ms);
    char peers[128];
    size_t o = 0;
    int i, first = -1;

    /* A rank that shows no sign of life is the culprit, whoever this rank
     * happened to wait for: name it, so every survivor names the same. */
    for (t = 0; (t < w->ntl) && (nsus < 16); t++) {
        nsus += w->tls[t]->suspects(w->tl_ctx[t], now, stale, sus + nsus,
                                    16 - nsus);
    }
    if (nsus > 0) {
        for (k = 0; (k < nsus) && (o + 16 < sizeof(peers)); k++) {
            o += (size_t)snprintf(peers + o, sizeof(peers) - o, "%s%d",
                                  (k == 0) ? "" : ",",
                                  scomm_comm_rank_of(comm, sus[k]));
        }
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, sus[0],
                         "%s (op #%llu): timed out after %lld ms: rank %s "
                         "shows no sign of life (stopped or hung)",
                         comm->cur_op, (unsigned long long)comm->op_seq,
                         (long long)comm->timeout_ms, peers);
        return SCOMM_ERR_TIMED_OUT;
    }

    peers[0] = '\0';
    for (i = 0; i < n; i++) {
        if ((reqs[i] == NULL) || atomic_load(&reqs[i]->done)) {
            continue;
        }
        if (first < 0) {
            first = reqs[i]->peer;
        }
        if (o + 16 < sizeof(peers)) {
            o += (size_t)snprintf(peers + o, sizeof(peers) - o, "%s%d",
                                  (o == 0) ? "" : ",",
                                  scomm_comm_rank_of(comm, reqs[i]->peer));
        }
    }
    scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, first,
                     "%s (op #%llu): timed out after %lld ms waiting for "
                     "rank %s",
                     comm->cur_op, (unsigned long long)comm->op_seq,
                     (long long)comm->timeout_ms, peers);
    return SCOMM_ERR_TIMED_OUT;
}

scomm_status_t scomm_world_wait(scomm_world_t *w, scomm_comm_t *comm,
                                scomm_req_t **reqs, int n, uint64_t deadline)
{
    struct pollfd fds[SCOMM_POLL_MAX];
    uint64_t spin_ns = (uint64_t)w->cfg.spin_us * 1000ull;
    int i;
    uint64_t now, idle_since = 0, last_check = 0;
    uint64_t hb_ns = scomm_hb_interval_ns(w, comm->timeout_ms);
    int yield = w->spin_yield;

    atomic_store_explicit(&w->cur_op, comm->cur_op, memory_order_relaxed);
    atomic_store_explicit(&w->cur_seq, comm->op_seq, memory_order_relaxed);

    /* Waiting on a large TCP transfer: sleep at once. The kernel moves
     * those bytes, and on few cores a spinning waiter takes the CPU its
     * softirq work needs (64 MiB: 1.2 GB/s spinning, 2.4 GB/s sleeping). */
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
    int fault, nfds, timeout, nready;
    uint64_t drain;

    for (;;) {
        if (scomm_reqs_done(reqs, n)) {
            return SCOMM_OK;
        }
        fault = atomic_load_explicit(&w->fault.status, memory_order_acquire);
        if (SCOMM_UNLIKELY(fault != 0)) {
            scomm_world_notify(w);
            return scomm_set_error(comm, (scomm_status_t)fault, "%s",
                                   w->fault.msg);
        }
        if (scomm_world_progress(w) > 0) {
            idle_since = 0;
            continue;
        }
        now = scomm_now_ns();
        if (idle_since == 0) {
            idle_since = now;
        }
        /* Signs of life at most every half interval, world-wide: short
         * waits cost nothing, long ones keep peers informed. */
        if (now - w->last_hb >= hb_ns / 2) {
            w->last_hb = now;
            for (i = 0; i < w->ntl; i++) {
                w->tls[i]->heartbeat(w->tl_ctx[i], now);
            }
        }
        if (now >= deadline) {
            if (scomm_world_progress(w) > 0 || scomm_reqs_done(reqs, n)) {
                continue;
            }
            return scomm_set_error(comm,
                                   scomm_wait_timed_out(w, comm, reqs, n),
                                   "%s", w->fault.msg);
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

        /* Sleep. Raise the flags first, then look once more, so a sender
         * either sees the flag or we see its message. */
        for (i = 0; i < w->ntl; i++) {
            w->tls[i]->sleep_begin(w->tl_ctx[i]);
        }
        if ((scomm_world_progress(w) > 0) || scomm_reqs_done(reqs, n)) {
            for (i = 0; i < w->ntl; i++) {
                w->tls[i]->sleep_end(w->tl_ctx[i]);
            }
            idle_since = 0;
            continue;
        }
        nfds = 0;
        fds[nfds].fd      = w->wake_fd;
        fds[nfds].events  = POLLIN;
        fds[nfds].revents = 0;
        nfds++;
        for (i = 0; i < w->ntl; i++) {
            nfds += w->tls[i]->poll_fds(w->tl_ctx[i], fds + nfds,
                                        SCOMM_POLL_MAX - nfds);
        }
        timeout = scomm_ms_left(deadline, 100);
        pthread_mutex_unlock(&w->lock);
        nready = poll(fds, (nfds_t)nfds, timeout);
        pthread_mutex_lock(&w->lock);
        for (i = 0; i < w->ntl; i++) {
            w->tls[i]->sleep_end(w->tl_ctx[i]);
        }
        if (fds[0].revents & POLLIN) {
            if (read(w->wake_fd, &drain, sizeof(drain)) < 0) {
                /* EAGAIN: another thread drained it first. */
            }
        }
        now = scomm_now_ns();
        if ((nready > 0) || (now - last_check > 100000000ull)) {
            last_check = now;
            for (i = 0; i < w->ntl; i++) {
                w->tls[i]->check_peers(w->tl_ctx[i]);
            }
            (void)scomm_reqs_orphaned(w, comm, reqs, n);
        }
    }
}
