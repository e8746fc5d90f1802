/*
 * kv_redial.c - a KV stream's loss and its return. A lost stream (EOF,
 * reset, error, no progress) comes back when the peer process is still
 * there. The side that dialled re-dials; the accepting side takes re-dials
 * on a listening socket of its own, opened on the address the streams came
 * in on when the endpoint is accepted, whose port travels in HELLO_OK. So
 * re-dials do not depend on the user's listener, which may be closed
 * (scomm_kv_connect_comm closes it at once), and they never mix with new
 * endpoints. One keeper thread per endpoint does it. Here too: the
 * endpoint's fault (scomm_kv_ep_fault), which every waiter returns.
 *
 * Design notes (invariants):
 *  1. Only the keeper starts or joins a stream's threads after kv_ep_start,
 *     and it reuses a stream slot only once both old threads have ended
 *     and been joined; scomm_kv_ep_close joins the keeper first.
 *  2. A re-dial carries the token (compared in constant time), the
 *     session (random, 64 bits, compared in constant time), the stream
 *     index and an epoch larger than any the stream had: a stray or a
 *     replayed HELLO_OK-ed re-dial is refused with HELLO_NO and touches
 *     nothing. A valid re-dial for a stream that still looks alive here
 *     replaces it (the dialler saw it break first).
 *  3. Replies queued for the old connection are dropped with it: the
 *     sender re-sends every chunk unanswered on it and re-begins every
 *     transfer whose BEGIN went out on it, and the receiver answers a
 *     duplicate chunk or BEGIN as it did the first time, counting nothing
 *     twice. Receiver transfer state belongs to the endpoint, not to the
 *     stream, so it survives.
 *  4. The dialler re-dials for redial_ms from the loss with backoff; a
 *     refused connection (the peer's socket is gone: it exited or closed
 *     the endpoint) or a final HELLO_NO ends it at once. The accepting side
 *     waits redial_ms + KV_REDIAL_SLACK, or less when it sees the peer
 *     process exit (pidfd, same host only).
 *  5. The endpoint fails (SCOMM_ERR_PEER_LOST) only when no stream is alive
 *     and none is pending (kv_lost_check).
 *
 * A stream (lock held):
 *
 *                scomm_kv_stream_dead              kv_keeper_dial (dialler)
 *                (EOF, error, stall,               or kv_take_redial
 *                 replaced by a re-dial)           (accepting side), then
 *     alive ------------------------> pending ---- kv_stream_revive ---> alive
 *       |                                |
 *       |                                | scomm_kv_stream_give_up (keeper:
 *       |                                | window over, refused, the peer
 *       |                                v exited or closed; no keeper)
 *       +-----------------------------> gone (the last one: kv_lost_check
 *         scomm_kv_stream_dead with          -> scomm_kv_ep_fault,
 *         reconnection off, after BYE        SCOMM_ERR_PEER_LOST)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kv_int.h"
#include "core/sock.h"
#include "telemetry/tm.h"

/* The endpoint fails (lock held): the first fault's status and reason
 * stay, every unfinished transfer fails with them, and every thread that
 * waits on the endpoint wakes to see it. */
void scomm_kv_ep_fault(scomm_kv_ep_t *ep, scomm_status_t status,
                       const char *msg)
{
    kv_sx_t *sx;

    if (ep->fault == SCOMM_OK) {
        ep->fault = status;
        snprintf(ep->fault_msg, sizeof(ep->fault_msg), "%s", msg);
        if (!ep->closing) {
            /* The peer's close (BYE) with none of our transfers in flight
             * is its normal teardown. */
            if (ep->peer_bye && (ep->sx_head == NULL)) {
                scomm_info(SCOMM_SUB_KV, "kv endpoint ended: %s", msg);
            } else {
                scomm_warn(SCOMM_SUB_KV, "kv endpoint failed: %s", msg);
            }
        }
    }
    for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
        scomm_kv_sx_fail(sx, status, msg);
    }
    pthread_cond_broadcast(&ep->done_cond);
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_cond_broadcast(&ep->keep_cond);
}

/* 1 if a stream lost now may come back (lock held). */
static int kv_may_reconnect(const scomm_kv_ep_t *ep)
{
    return ep->reconnect_on && !ep->closing &&
           !ep->peer_bye && (ep->fault == SCOMM_OK);
}

static int kv_any_pending(const scomm_kv_ep_t *ep)
{
    int i;

    for (i = 0; i < ep->nstreams; i++) {
        if (ep->st[i].pending) {
            return 1;
        }
    }
    return 0;
}

/* No stream alive and none coming back: the endpoint fails (lock held). */
static void kv_lost_check(scomm_kv_ep_t *ep, const kv_stream_t *st,
                          const char *how)
{
    char msg[SCOMM_KV_ERRTEXT_MAX];

    if ((ep->alive > 0) || kv_any_pending(ep) || ep->closing) {
        return;
    }
    snprintf(msg, sizeof(msg), "kv: peer lost%s (pid %d): stream %d: %s%s%s",
             ep->peer_bye ? " (it closed the endpoint)" : "", ep->peer_pid,
             st->idx, st->lost_why, (how != NULL) ? "; " : "",
             (how != NULL) ? how : "");
    scomm_kv_ep_fault(ep, SCOMM_ERR_PEER_LOST, msg);
}

/* A stream broke: requeue its unanswered chunks; the last one fails the
 * endpoint. */
void scomm_kv_stream_dead(kv_stream_t *st, const char *why)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_inf_t *e;
    kv_sx_t *sx;

    pthread_mutex_lock(&ep->lock);
    if (!st->alive) {
        pthread_mutex_unlock(&ep->lock);
        return;
    }
    __atomic_store_n(&st->alive, 0, __ATOMIC_RELEASE);
    shutdown(st->fd, SHUT_RDWR);
    ep->alive--;
    ep->stats.streams = ep->alive;
    while (st->inf_n > 0) {
        e = &st->inf[st->inf_head];
        st->inf_head = (st->inf_head + 1) % ep->depth;
        st->inf_n--;
        scomm_kv_rma_slot_put(e->sx, e->slot);
        if ((e->sx->state == SX_RUN) && !e->sx->acked_map[e->seq]) {
            e->sx->resend[e->sx->nresend++] = e->seq;
            ep->stats.chunks_resent++;
            scomm_tm_add(NULL, SCOMM_TM_KV_RESENT, 1);
        }
        scomm_kv_sx_unref(ep, e->sx);
    }
    if (!ep->closing) {
        if (!ep->peer_bye) {
            /* After the peer's BYE a stream closing is its clean close. */
            ep->stats.streams_lost++;
        }
        snprintf(st->lost_why, sizeof(st->lost_why), "%s", why);
        st->down_since = scomm_now_ns();
        if (kv_may_reconnect(ep)) {
            /* The keeper thread re-dials it (or takes the peer's re-dial)
             * within the window; until then its chunks move on the others,
             * or wait if it was the last. */
            st->pending    = 1;
            st->next_try   = st->down_since;
            st->backoff_ms = 0;
            scomm_warn(SCOMM_SUB_KV, "kv stream %d dropped (%s); %d left, "
                       "%s for up to %lld ms", st->idx, why, ep->alive,
                       ep->dialer ? "re-dialling it" : "awaiting its re-dial",
                       (long long)ep->redial_ms);
        } else {
            st->gone = 1;
            if (ep->peer_bye) {
                scomm_info(SCOMM_SUB_KV, "kv stream %d closed after the "
                           "peer's BYE (%s); %d left", st->idx, why,
                           ep->alive);
            } else if (ep->alive > 0) {
                scomm_warn(SCOMM_SUB_KV, "kv stream %d dropped (%s); %d "
                           "left, its chunks move on the others", st->idx,
                           why, ep->alive);
            }
        }
        kv_lost_check(ep, st, NULL);
        /* A transfer whose BEGIN went out on this stream may never see its
         * reply: send the BEGIN again on another stream (the receiver
         * answers a repeated BEGIN of a transfer it has with BEGIN_OK). */
        for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
            if ((sx->state == SX_BEGIN_SENT) &&
                (sx->begin_stream == st->idx)) {
                sx->state = SX_BEGIN_WAIT;
            }
        }
    }
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_cond_broadcast(&ep->done_cond);
    pthread_cond_broadcast(&ep->keep_cond);
    pthread_mutex_unlock(&ep->lock);
}

/* Last act of a stream's TX or RX thread: the keeper may join it. */
void scomm_kv_stream_thread_end(kv_stream_t *st)
{
    scomm_kv_ep_t *ep = st->ep;

    pthread_mutex_lock(&ep->lock);
    st->running--;
    pthread_cond_broadcast(&ep->keep_cond);
    pthread_mutex_unlock(&ep->lock);
}

/* Accepting side: open the endpoint's re-dial socket on the address its
 * first stream came in on. Without one the endpoint takes no re-dials. */
void scomm_kv_redial_listen(scomm_kv_ep_t *ep)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char err[256];

    ep->lfd = -1;
    if ((getsockname(ep->st[0].fd, (struct sockaddr *)&ss, &len) != 0) ||
        (scomm_sock_set_port(&ss, 0) != 0)) {
        snprintf(err, sizeof(err), "getsockname: %s", strerror(errno));
    } else {
        ep->lfd = scomm_sock_listen(&ss, len, err, sizeof(err));
    }
    if (ep->lfd < 0) {
        scomm_info(SCOMM_SUB_KV, "kv: no re-dial socket (%s): lost streams "
                   "stay lost", err);
        ep->redial_ms = 0;
        return;
    }
    scomm_set_nonblock(ep->lfd);
    ep->rport = scomm_sock_local_port(ep->lfd);
}

/* 1 if the peer process is known to have exited. */
static int kv_peer_exited(const scomm_kv_ep_t *ep)
{
    struct pollfd p;

    if (ep->pidfd < 0) {
        return 0;
    }
    p.fd      = ep->pidfd;
    p.events  = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) > 0;
}

/* Stop waiting for st (lock held). */
void scomm_kv_stream_give_up(scomm_kv_ep_t *ep, kv_stream_t *st,
                             const char *how)
{
    st->pending = 0;
    st->gone    = 1;
    if (ep->alive > 0) {
        scomm_warn(SCOMM_SUB_KV, "kv stream %d not re-established: %s; %d "
                   "left", st->idx, how, ep->alive);
    }
    kv_lost_check(ep, st, how);
}

/* Join the ended threads of stream st (lock held, dropped inside). */
static void kv_stream_reap(scomm_kv_ep_t *ep, kv_stream_t *st)
{
    int tx = st->tx_started, rx = st->rx_started;

    if (st->alive || (st->running > 0) || (!tx && !rx)) {
        return;
    }
    st->tx_started = 0;
    st->rx_started = 0;
    pthread_mutex_unlock(&ep->lock);
    if (tx) {
        pthread_join(st->tx, NULL);
    }
    if (rx) {
        pthread_join(st->rx, NULL);
    }
    pthread_mutex_lock(&ep->lock);
}

/* Put connection fd (handshake done) under stream st, whose old threads
 * are joined, and start its threads (lock held, dropped inside). */
static void kv_stream_revive(scomm_kv_ep_t *ep, kv_stream_t *st, int fd,
                             uint32_t epoch)
{
    scomm_set_nonblock(fd);
    scomm_sock_tune(fd, 0);
    if (st->fd >= 0) {
        close(st->fd);
    }
    st->fd       = fd;
    st->ctl_n    = 0;       /* replies meant for the old connection */
    st->ctl_head = 0;
    st->inf_n    = 0;
    st->inf_head = 0;
    st->why[0]   = '\0';
    st->why_tx[0] = '\0';
    st->last_rx  = st->last_tx = scomm_now_ns();
    st->epoch    = epoch;
    st->pending  = 0;
    st->running  = 2;
    __atomic_store_n(&st->alive, 1, __ATOMIC_RELEASE);
    ep->alive++;
    ep->stats.streams = ep->alive;
    scomm_tm_add(NULL, SCOMM_TM_KV_RECONNECTS, 1);
    scomm_info(SCOMM_SUB_KV, "kv stream %d re-established (connection %u) "
               "after %.0f ms", st->idx, epoch,
               (double)(scomm_now_ns() - st->down_since) / 1e6);
    if (pthread_create(&st->rx, NULL, scomm_kv_rx_main, st) != 0) {
        st->running = 0;
    } else {
        st->rx_started = 1;
        if (pthread_create(&st->tx, NULL, scomm_kv_tx_main, st) != 0) {
            st->running = 1;
        } else {
            st->tx_started = 1;
        }
    }
    pthread_cond_broadcast(&ep->tx_cond);
    if (!st->tx_started) {
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_stream_dead(st, "pthread_create failed");
        pthread_mutex_lock(&ep->lock);
        if (st->pending) {
            scomm_kv_stream_give_up(ep, st, "no thread for it");
        }
    }
}

/* Dialler: one re-dial of stream idx. 0: fd is handshaken; 1: try again
 * later; -1: the peer refused, stop. */
static int kv_redial(scomm_kv_ep_t *ep, int idx, uint32_t epoch,
                     uint64_t deadline, int *fd_p, char *why, size_t whylen)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    char text[SCOMM_KV_ERRTEXT_MAX + 1];
    scomm_kv_hello_t peer;
    scomm_kv_hdr_t h;
    int fd, rc, e;

    rc = scomm_sock_connect(&ep->peer_ss, ep->peer_sslen, deadline, 0, &fd);
    if (rc != SCOMM_SOCK_OK) {
        e = errno;
        if (rc == SCOMM_SOCK_TIMEOUT) {
            snprintf(why, whylen, "re-dial timed out");
            return 1;
        }
        snprintf(why, whylen, "re-dial: %s", strerror(e));
        /* Nothing listens there any more: the process or the endpoint is
         * gone, and waiting does not bring it back. */
        return (e == ECONNREFUSED) ? -1 : 1;
    }
    if (!scomm_kv_hs_send_hello(ep, fd, SCOMM_KV_T_HELLO, idx, epoch,
                                deadline) ||
        (scomm_kv_hs_io(fd, hb, sizeof(hb), 0, deadline) != 0)) {
        snprintf(why, whylen, "re-dial handshake: no answer");
        close(fd);
        return 1;
    }
    scomm_kv_hdr_decode(hb, &h);
    if (scomm_kv_hdr_check(&h, 0, why, whylen) != 0) {
        close(fd);
        return -1;
    }
    if (h.type == SCOMM_KV_T_HELLO_NO) {
        memset(text, 0, sizeof(text));
        (void)scomm_kv_hs_io(fd, text, h.len, 0, deadline);
        snprintf(why, whylen, "re-dial refused: %.160s", text);
        close(fd);
        return (h.aux & 1u) ? 1 : -1;
    }
    if ((h.type != SCOMM_KV_T_HELLO_OK) ||
        (scomm_kv_hs_io(fd, pl, sizeof(pl), 0, deadline) != 0) ||
        (scomm_kv_hello_decode(pl, sizeof(pl), &peer, why, whylen) != 0) ||
        (peer.session != ep->session) || (peer.stream != (uint32_t)idx) ||
        (peer.epoch != epoch)) {
        snprintf(why, whylen, "re-dial: bad handshake reply");
        close(fd);
        return -1;
    }
    *fd_p = fd;
    return 0;
}

/* Dialler's turn of the keeper (lock held, dropped inside). */
static void kv_keeper_dial(scomm_kv_ep_t *ep)
{
    char why[SCOMM_KV_ERRTEXT_MAX];
    kv_stream_t *st = NULL;
    struct timespec ts;
    uint64_t now = scomm_now_ns(), wake = now + 100000000ull, deadline, end;
    uint32_t epoch;
    int i, rc, fd = -1;

    for (i = 0; (i < ep->nstreams) && !ep->hold; i++) {
        kv_stream_t *s = &ep->st[i];

        if (!s->pending || s->tx_started || s->rx_started) {
            continue;
        }
        if (s->next_try <= now) {
            st = s;
            break;
        }
        wake = SCOMM_MIN(wake, s->next_try);
    }
    if (st == NULL) {
        scomm_kv_abs_deadline(&ts, wake);
        pthread_cond_timedwait(&ep->keep_cond, &ep->lock, &ts);
        return;
    }
    /* Every attempt gets a new epoch: one the peer took but we gave up on
     * (no answer in time) must not make the next look like a replay. */
    epoch = ++st->epoch;
    end = st->down_since + (uint64_t)ep->redial_ms * 1000000ull;
    deadline = SCOMM_MIN(end, now + (uint64_t)KV_REDIAL_TRY_MS * 1000000ull);
    pthread_mutex_unlock(&ep->lock);
    rc = kv_redial(ep, st->idx, epoch, deadline, &fd, why, sizeof(why));
    pthread_mutex_lock(&ep->lock);
    if (rc == 0) {
        if (ep->closing || (ep->fault != SCOMM_OK) || !st->pending) {
            close(fd);
            return;
        }
        kv_stream_revive(ep, st, fd, epoch);
    } else if (rc < 0) {
        if (st->pending) {
            scomm_kv_stream_give_up(ep, st, why);
        }
    } else {
        st->backoff_ms = (st->backoff_ms == 0)
                             ? 25 : SCOMM_MIN(2 * st->backoff_ms,
                                              (uint32_t)KV_BACKOFF_MAX_MS);
        st->next_try = scomm_now_ns() + (uint64_t)st->backoff_ms * 1000000ull;
        scomm_debug(SCOMM_SUB_KV, "kv stream %d: %s; again in %u ms",
                    st->idx, why, st->backoff_ms);
    }
}

/* Accepting side: handshake of one connection on the re-dial socket (lock
 * held, dropped inside). */
static void kv_take_redial(scomm_kv_ep_t *ep, int fd)
{
    char why[160];
    const char *no = NULL;
    int again = 0;
    scomm_kv_hello_t hello;
    kv_stream_t *st;
    struct timespec ts;
    uint64_t deadline = scomm_deadline_ms(KV_REDIAL_TRY_MS);
    int ok;

    pthread_mutex_unlock(&ep->lock);
    ok = scomm_kv_hs_read_hello(fd, deadline, &hello, why, sizeof(why));
    if (!ok) {
        scomm_info(SCOMM_SUB_KV, "kv: dropped a bad re-dial%s%s",
                   why[0] ? ": " : "", why);
        close(fd);
        pthread_mutex_lock(&ep->lock);
        return;
    }
    if (!scomm_secret_equal(hello.token, ep->token)) {
        no = "wrong token";
    } else if (!(hello.flags & SCOMM_KV_HELLO_RESUME)) {
        no = "not a re-dial";
    } else if (!scomm_ct_equal(&hello.session, &ep->session,
                               sizeof(ep->session))) {
        no = "unknown session";
    } else if (hello.nstreams != (uint32_t)ep->nstreams) {
        no = "stream count differs";
    }
    pthread_mutex_lock(&ep->lock);
    st = (no == NULL) ? &ep->st[hello.stream] : NULL;
    if (st != NULL) {
        if (ep->closing || (ep->fault != SCOMM_OK)) {
            no = "endpoint closed";
        } else if (st->gone) {
            no = "stream given up";
        } else if (hello.epoch <= st->epoch) {
            no = "stale re-dial";  /* a replay, or an attempt overtaken */
            again = 1;
        }
    }
    if ((no == NULL) && st->alive) {
        /* The dialler saw it break first; the new connection wins. */
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_stream_dead(st, "replaced by a re-dial");
        pthread_mutex_lock(&ep->lock);
    }
    while ((no == NULL) && (st->running > 0)) {
        if (scomm_now_ns() >= deadline) {
            no = "stream busy";
            again = 1;
            break;
        }
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->keep_cond, &ep->lock, &ts);
    }
    if (no == NULL) {
        kv_stream_reap(ep, st);
        if (!st->pending || (hello.epoch <= st->epoch) || ep->closing) {
            no = "stream changed";
            again = 1;
        }
    }
    if (no != NULL) {
        pthread_mutex_unlock(&ep->lock);
        scomm_warn(SCOMM_SUB_KV, "kv: refused a re-dial (stream %u, epoch "
                   "%u): %s", hello.stream, hello.epoch, no);
        scomm_kv_hs_refuse(fd, no, again, deadline);
        pthread_mutex_lock(&ep->lock);
        return;
    }
    st->epoch = hello.epoch;
    pthread_mutex_unlock(&ep->lock);
    ok = scomm_kv_hs_send_hello(ep, fd, SCOMM_KV_T_HELLO_OK, st->idx,
                                hello.epoch, deadline);
    pthread_mutex_lock(&ep->lock);
    if (!ok || !st->pending || ep->closing) {
        close(fd);     /* still pending: the dialler tries again */
        return;
    }
    kv_stream_revive(ep, st, fd, hello.epoch);
}

/* Accepting side's turn of the keeper (lock held, dropped inside). */
static void kv_keeper_accept(scomm_kv_ep_t *ep)
{
    struct pollfd p;
    int fd, hold = ep->hold;

    pthread_mutex_unlock(&ep->lock);
    if (hold) {
        usleep(20000);
        pthread_mutex_lock(&ep->lock);
        return;
    }
    p.fd      = ep->lfd;
    p.events  = POLLIN;
    p.revents = 0;
    fd = -1;
    if (poll(&p, 1, 100) > 0) {
        fd = accept4(ep->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    }
    pthread_mutex_lock(&ep->lock);
    if (fd >= 0) {
        kv_take_redial(ep, fd);
    }
}

void *scomm_kv_keeper_main(void *arg)
{
    scomm_kv_ep_t *ep = arg;
    uint64_t window = (uint64_t)(ep->redial_ms +
                                 (ep->dialer ? 0 : KV_REDIAL_SLACK)) *
                      1000000ull;
    char how[96];
    uint64_t now;
    int i;

    snprintf(how, sizeof(how), "not re-established within %lld ms",
             (long long)(window / 1000000ull));
    pthread_mutex_lock(&ep->lock);
    while (!ep->closing && (ep->fault == SCOMM_OK)) {
        for (i = 0; i < ep->nstreams; i++) {
            kv_stream_t *st = &ep->st[i];

            /* Read the clock here: kv_stream_reap drops the lock, and a
             * stream lost meanwhile has a down_since later than an older
             * "now". */
            now = scomm_now_ns();
            if (st->pending && (now >= st->down_since) &&
                (now - st->down_since >= window)) {
                scomm_kv_stream_give_up(ep, st, how);
            } else if (st->pending && ep->peer_bye) {
                scomm_kv_stream_give_up(ep, st, "the peer closed the endpoint");
            } else if (st->pending && kv_peer_exited(ep)) {
                scomm_kv_stream_give_up(ep, st, "the peer process exited");
            }
            if (ep->fault != SCOMM_OK) {
                break;
            }
            kv_stream_reap(ep, st);
        }
        if (ep->closing || (ep->fault != SCOMM_OK)) {
            break;
        }
        if (ep->dialer) {
            kv_keeper_dial(ep);
        } else {
            kv_keeper_accept(ep);
        }
    }
    pthread_mutex_unlock(&ep->lock);
    return NULL;
}
