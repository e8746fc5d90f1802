/*
 * kv_conn.c - KV endpoints set up and torn down: the listener
 * (scomm_kv_listen, scomm_kv_accept), the dialler (scomm_kv_connect), the
 * communicator form (scomm_kv_connect_comm), the HELLO handshake, the
 * same-host probe, starting the stream threads and the keeper
 * (kv_ep_start), and scomm_kv_ep_close.
 *
 * Design notes (invariants):
 *  1. The first frame on every stream is HELLO (dialler to listener),
 *     answered by HELLO_OK or HELLO_NO; the token is compared in constant
 *     time (scomm_secret_equal) before anything else in the HELLO is used.
 *  2. scomm_kv_accept groups streams by session, a new session replacing
 *     an incomplete one; it refuses a RESUME HELLO: re-dials go to the
 *     endpoint's own port (kv_redial.c), never to a listener.
 *  3. A stream's threads start only when every stream is handshaken
 *     (kv_ep_start); the keeper starts last, after all it reads is set.
 *  4. Zero copy needs proof, not a guess: each side reads the other's
 *     random probe value with process_vm_readv (kv_cma_probe), and only a
 *     side that could is offered DESC chunks.
 *  5. scomm_kv_ep_close joins the keeper first (after it nobody starts or
 *     joins a thread), then each stream's TX thread (it flushes the queued
 *     replies and sends BYE), then shuts the socket down and joins the RX
 *     thread. Transfers whose handle the user still holds become orphans
 *     that report their last state; the rest are freed.
 *
 * An endpoint's life:
 *
 *   scomm_kv_accept,               kv_ep_start
 *   scomm_kv_connect  -> handshake -------------> running (threads)
 *                          |                         |
 *          HELLO_NO, bad   |                         | scomm_kv_ep_close:
 *          reply, timeout  v                         v scomm_kv_ep_fault
 *                      kv_ep_free               closing (ABORTED) -> threads
 *                      (error returned)         joined -> kv_ep_free
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kv_int.h"
#include "core/sock.h"

static scomm_kv_ep_t *kv_ep_new(const kv_cfg_t *c)
{
    scomm_kv_ep_t *ep = calloc(1, sizeof(*ep));
    int i;

    if (ep == NULL) {
        return NULL;
    }
    pthread_mutex_init(&ep->lock, NULL);
    pthread_cond_init(&ep->tx_cond, NULL);
    pthread_cond_init(&ep->done_cond, NULL);
    pthread_cond_init(&ep->keep_cond, NULL);
    ep->lfd         = -1;
    ep->pidfd       = -1;
    ep->chunk_size  = c->chunk_size;
    ep->depth       = c->depth;
    ep->zero_copy   = c->zero_copy;
    ep->compression = c->compression;
    ep->level       = c->level;
    ep->wire_dtype  = c->wire_dtype;
    ep->transport   = c->transport;
    ep->timeout_ms  = c->timeout_ms;
    scomm_random_bytes(&ep->probe_val, sizeof(ep->probe_val));
    for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
        ep->st[i].fd  = -1;
        ep->st[i].idx = i;
        ep->st[i].ep  = ep;
    }
    return ep;
}

static void kv_ep_free(scomm_kv_ep_t *ep)
{
    kv_rx_t *rx;
    int i;

    scomm_kv_dev_ep_free(ep); /* before the streams its copies ran on */
    for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
        kv_stream_t *st = &ep->st[i];

        if (st->fd >= 0) {
            close(st->fd);
        }
        free(st->ctl);
        free(st->inf);
        free(st->tbuf[0]);
        free(st->tbuf[1]);
        free(st->rbuf[0]);
        free(st->rbuf[1]);
        free(st->ftmp);
        free(st->ftx);
        scomm_kv_codec_free(st);
        scomm_kv_dev_stream_free(st);
    }
    while ((rx = ep->rx_head) != NULL) {
        ep->rx_head = rx->next;
        scomm_kv_rx_free(rx);
    }
    scomm_kv_ofi_close(ep); /* after the landing slots it registered */
    if (ep->lfd >= 0) {
        close(ep->lfd);
    }
    if (ep->pidfd >= 0) {
        close(ep->pidfd);
    }
    pthread_mutex_destroy(&ep->lock);
    pthread_cond_destroy(&ep->tx_cond);
    pthread_cond_destroy(&ep->done_cond);
    pthread_cond_destroy(&ep->keep_cond);
    free(ep);
}

/* 1 if we can read probe_val at addr in pid. */
static int kv_cma_probe(int pid, uint64_t addr, uint64_t val)
{
    uint64_t got = 0;
    struct iovec l = { &got, sizeof(got) };
    struct iovec r = { (void *)(uintptr_t)addr, sizeof(got) };

    if ((pid <= 0) || (pid == getpid())) {
        return (pid == getpid()) && (addr != 0) &&
               (*(const uint64_t *)(uintptr_t)addr == val);
    }
    if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)sizeof(got)) {
        return 0;
    }
    return got == val;
}

/* Start the threads of an endpoint whose nstreams fds are set. */
static scomm_status_t kv_ep_start(scomm_kv_ep_t *ep)
{
    int i;

    /* Set before any stream thread can lose its stream. */
    ep->reconnect_on = (ep->redial_ms > 0);
    for (i = 0; i < ep->nstreams; i++) {
        kv_stream_t *st = &ep->st[i];

        st->inf = calloc((size_t)ep->depth, sizeof(*st->inf));
        if (st->inf == NULL) {
            return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv: out of memory");
        }
        scomm_set_nonblock(st->fd);
        scomm_sock_tune(st->fd, 0);
        st->alive   = 1;
        st->running = 2;
        st->last_rx = st->last_tx = scomm_now_ns();
    }
    ep->alive = ep->nstreams;
    ep->stats.streams = ep->nstreams;
    ep->stats.same_host = ep->cma_read_ok;
    for (i = 0; i < ep->nstreams; i++) {
        if (pthread_create(&ep->st[i].rx, NULL, scomm_kv_rx_main,
                           &ep->st[i]) != 0) {
            return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv: pthread_create failed");
        }
        ep->st[i].rx_started = 1;
        if (pthread_create(&ep->st[i].tx, NULL, scomm_kv_tx_main,
                           &ep->st[i]) != 0) {
            return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv: pthread_create failed");
        }
        ep->st[i].tx_started = 1;
    }
    if (ep->reconnect_on) {
        /* Same host and pid namespace (the probe read the peer's memory):
         * the peer's exit is seen at once, so the accepting side need not
         * wait out the window for a re-dial that cannot come. (The
         * dialler needs no such help: a dead peer's port refuses.) */
        if (ep->cma_read_ok && !ep->dialer) {
            ep->pidfd = scomm_pidfd_open((pid_t)ep->peer_pid);
        }
        /* Last: the keeper reads what the loop above wrote. */
        if (pthread_create(&ep->keeper, NULL, scomm_kv_keeper_main, ep) == 0) {
            ep->keeper_started = 1;
        } else {
            scomm_warn(SCOMM_SUB_KV, "kv: no reconnect thread: lost streams "
                       "stay lost");
            pthread_mutex_lock(&ep->lock);
            ep->reconnect_on = 0;
            for (i = 0; i < ep->nstreams; i++) {
                if (ep->st[i].pending) {
                    scomm_kv_stream_give_up(ep, &ep->st[i], "no reconnect "
                                            "thread");
                }
            }
            pthread_mutex_unlock(&ep->lock);
        }
    }
    return SCOMM_OK;
}

/* epoch 0: a first connection; else a re-dial (HELLO) or the answer to
 * one (HELLO_OK). The dialler names its re-dial window, the accepting side
 * the port that takes re-dials. */
static void kv_fill_hello(scomm_kv_ep_t *ep, const char *token,
                          uint64_t session, int idx, int n, uint32_t epoch,
                          uint8_t *out)
{
    scomm_kv_hello_t h;

    memset(&h, 0, sizeof(h));
    snprintf(h.token, sizeof(h.token), "%s", token);
    h.session    = session;
    h.stream     = (uint32_t)idx;
    h.nstreams   = (uint32_t)n;
    h.pid        = (int32_t)getpid();
    h.flags      = (epoch != 0) ? SCOMM_KV_HELLO_RESUME : 0;
    h.port       = ep->dialer ? 0 : (uint16_t)ep->rport;
    h.probe_addr = (uint64_t)(uintptr_t)&ep->probe_val;
    h.probe_val  = ep->probe_val;
    h.epoch      = epoch;
    h.redial_ms  = ep->dialer ? (uint32_t)ep->redial_ms : 0;
    scomm_kv_hello_encode(&h, out);
}

/* Read and check the HELLO that opens a connection: 1 if it is one. */
int scomm_kv_hs_read_hello(int fd, uint64_t deadline, scomm_kv_hello_t *hello,
                           char *why, size_t whylen)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    scomm_kv_hdr_t h;

    why[0] = '\0';
    if (scomm_kv_hs_io(fd, hb, sizeof(hb), 0, deadline) != 0) {
        return 0;
    }
    scomm_kv_hdr_decode(hb, &h);
    return (scomm_kv_hdr_check(&h, 0, why, whylen) == 0) &&
           (h.type == SCOMM_KV_T_HELLO) &&
           (scomm_kv_hs_io(fd, pl, sizeof(pl), 0, deadline) == 0) &&
           (scomm_kv_hello_decode(pl, sizeof(pl), hello, why, whylen) == 0);
}

/* Send stream idx's HELLO (dialler, with the token) or HELLO_OK
 * (accepting side); epoch 0 on a first connection. 1 if it went out. */
int scomm_kv_hs_send_hello(scomm_kv_ep_t *ep, int fd, int type, int idx,
                           uint32_t epoch, uint64_t deadline)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    scomm_kv_hdr_t h;

    memset(&h, 0, sizeof(h));
    h.magic   = SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.type    = (uint16_t)type;
    h.len     = SCOMM_KV_HELLO_SIZE;
    h.aux     = (type == SCOMM_KV_T_HELLO_OK) ? (uint32_t)ep->cma_read_ok
                                               : 0;
    scomm_kv_hdr_encode(&h, hb);
    kv_fill_hello(ep, (type == SCOMM_KV_T_HELLO) ? ep->token : "", ep->session,
                  idx, ep->nstreams, epoch, pl);
    return (scomm_kv_hs_io(fd, hb, sizeof(hb), 1, deadline) == 0) &&
           (scomm_kv_hs_io(fd, pl, sizeof(pl), 1, deadline) == 0);
}

/* Answer a handshake with HELLO_NO and a reason, then close it. aux 1
 * tells a re-dialler the refusal is transient (try again). */
void scomm_kv_hs_refuse(int fd, const char *why, int transient,
                        uint64_t deadline)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    scomm_kv_hdr_t h;

    memset(&h, 0, sizeof(h));
    h.magic   = SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.type    = SCOMM_KV_T_HELLO_NO;
    h.len     = strlen(why) + 1;
    h.aux     = (uint32_t)(transient != 0);
    scomm_kv_hdr_encode(&h, hb);
    if (scomm_kv_hs_io(fd, hb, sizeof(hb), 1, deadline) == 0) {
        (void)scomm_kv_hs_io(fd, (void *)why, h.len, 1, deadline);
    }
    close(fd);
}

scomm_status_t scomm_kv_listen(const char *host, int32_t port,
                               const scomm_kv_opts_t *opts,
                               scomm_kv_listener_t **lst_p)
{
    struct sockaddr_storage ss;
    socklen_t len;
    scomm_kv_listener_t *l;
    kv_cfg_t c;
    char err[256];
    scomm_status_t status;
    int fd;

    if ((host == NULL) || (port < 0) || (port > 65535) || (lst_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_listen: NULL host or "
                             "lst_p, or port %d outside 0..65535", port);
    }
    status = scomm_kv_cfg_resolve(opts, &c);
    if (status != SCOMM_OK) {
        return status;
    }
    if (scomm_sock_resolve(host, port, &ss, &len, err, sizeof(err)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_listen: %s", err);
    }
    fd = scomm_sock_listen(&ss, len, err, sizeof(err));
    if (fd < 0) {
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv_listen on %s:%d: %s", host,
                             port, err);
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_listen: out of memory");
    }
    l->fd   = fd;
    l->port = scomm_sock_local_port(fd);
    /* Keep the resolved values (the preset name need not outlive us).
     * Nothing is copied from *opts as a whole: a caller built before a
     * field was appended has a shorter struct (field_mask rule). */
    l->opts.field_mask = SCOMM_KV_FIELD_CHUNK_SIZE | SCOMM_KV_FIELD_STREAMS |
        SCOMM_KV_FIELD_PREFETCH_DEPTH | SCOMM_KV_FIELD_ZERO_COPY |
        SCOMM_KV_FIELD_COMPRESSION | SCOMM_KV_FIELD_COMPRESS_LEVEL |
        SCOMM_KV_FIELD_WIRE_DTYPE | SCOMM_KV_FIELD_TIMEOUT |
        SCOMM_KV_FIELD_RECONNECT_MS | SCOMM_KV_FIELD_TRANSPORT;
    l->opts.reconnect_ms = c.reconnect_ms;
    l->opts.transport = c.transport;
    l->opts.chunk_size = c.chunk_size;
    l->opts.streams = c.streams;
    l->opts.prefetch_depth = c.depth;
    l->opts.zero_copy = c.zero_copy;
    l->opts.compression = c.compression;
    l->opts.compression_level = c.level;
    l->opts.wire_dtype = c.wire_dtype;
    l->opts.timeout_ms = c.timeout_ms;
    snprintf(l->token, sizeof(l->token), "%s", c.token);
    l->timeout_ms = c.timeout_ms;
    *lst_p = l;
    return SCOMM_OK;
}

int32_t scomm_kv_listener_port(const scomm_kv_listener_t *lst)
{
    return (lst == NULL) ? -1 : lst->port;
}

void scomm_kv_listener_close(scomm_kv_listener_t *lst)
{
    if (lst != NULL) {
        close(lst->fd);
        free(lst);
    }
}

scomm_status_t scomm_kv_accept(scomm_kv_listener_t *lst, int64_t timeout_ms,
                               scomm_kv_ep_t **ep_p)
{
    int fds[SCOMM_KV_MAX_STREAMS];
    char why[160];
    scomm_kv_hello_t hello, first;
    scomm_kv_ep_t *ep;
    kv_cfg_t c;
    uint64_t deadline, hs_deadline, session = 0;
    struct pollfd pfd;
    int have = 0, want = 0, fd, i, ok;
    scomm_status_t status;

    if ((lst == NULL) || (ep_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_accept: NULL argument");
    }
    deadline = scomm_deadline_ms((timeout_ms > 0) ? timeout_ms
                                                  : lst->timeout_ms);
    memset(fds, -1, sizeof(fds));
    memset(&first, 0, sizeof(first));
    while ((want == 0) || (have < want)) {
        pfd.fd = lst->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (scomm_now_ns() >= deadline) {
            for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
                if (fds[i] >= 0) {
                    close(fds[i]);
                }
            }
            return scomm_kv_fail(SCOMM_ERR_TIMED_OUT, "kv_accept on port %d: "
                                 "timed out with %d of %d streams", lst->port,
                                 have, want);
        }
        if (poll(&pfd, 1, scomm_ms_left(deadline, KV_POLL_MS)) <= 0) {
            continue;
        }
        fd = accept4(lst->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            continue;
        }
        hs_deadline = SCOMM_MIN(deadline, scomm_deadline_ms(5000));
        ok = scomm_kv_hs_read_hello(fd, hs_deadline, &hello, why, sizeof(why));
        if (ok && !scomm_secret_equal(hello.token, lst->token)) {
            scomm_kv_hs_refuse(fd, "wrong token", 0, hs_deadline);
            scomm_warn(SCOMM_SUB_KV, "kv_accept: refused a connection with "
                       "a wrong token");
            continue;
        }
        if (ok && (hello.flags & SCOMM_KV_HELLO_RESUME)) {
            /* Re-dials go to the endpoint's own port, never here. */
            scomm_kv_hs_refuse(fd, "re-dial sent to a listener", 0,
                               hs_deadline);
            continue;
        }
        if (!ok) {
            close(fd);
            continue;
        }
        if ((want == 0) || (hello.session != session)) {
            /* A new session replaces an incomplete one. */
            for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
                if (fds[i] >= 0) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            }
            session = hello.session;
            want = (int)hello.nstreams;
            have = 0;
            first = hello;
        }
        if ((int)hello.nstreams != want) {
            close(fd);
            continue;
        }
        if (fds[hello.stream] >= 0) {
            close(fds[hello.stream]);
            have--;
        }
        fds[hello.stream] = fd;
        have++;
    }
    status = scomm_kv_cfg_resolve(&lst->opts, &c);
    ep = (status == SCOMM_OK) ? kv_ep_new(&c) : NULL;
    if (ep == NULL) {
        for (i = 0; i < want; i++) {
            close(fds[i]);
        }
        return (status != SCOMM_OK)
                   ? status
                   : scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_accept: out of "
                                   "memory");
    }
    ep->nstreams = want;
    ep->peer_pid = first.pid;
    ep->cma_read_ok = kv_cma_probe(first.pid, first.probe_addr,
                                   first.probe_val);
    for (i = 0; i < want; i++) {
        ep->st[i].fd = fds[i];
    }
    snprintf(ep->token, sizeof(ep->token), "%s", lst->token);
    ep->session = session;
    if ((c.reconnect_ms > 0) && (first.redial_ms > 0)) {
        ep->redial_ms = first.redial_ms;
        scomm_kv_redial_listen(ep);
    }
    if ((ep->transport == SCOMM_KV_TRANSPORT_OFI) &&
        ((status = scomm_kv_ofi_open(ep, fds[0])) != SCOMM_OK)) {
        kv_ep_free(ep);
        return status;
    }
    for (i = 0; i < want; i++) {
        if (!scomm_kv_hs_send_hello(ep, fds[i], SCOMM_KV_T_HELLO_OK, i, 0,
                                    deadline)) {
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_PEER_LOST, "kv_accept: peer went "
                                 "away during the handshake");
        }
    }
    status = kv_ep_start(ep);
    if (status != SCOMM_OK) {
        scomm_kv_ep_close(ep);
        return status;
    }
    scomm_info(SCOMM_SUB_KV, "kv endpoint accepted: %d streams, peer pid %d, "
               "same-host copy %s", want, first.pid,
               ep->cma_read_ok ? "yes" : "no");
    *ep_p = ep;
    return SCOMM_OK;
}

scomm_status_t scomm_kv_connect(const char *host, int32_t port,
                                const scomm_kv_opts_t *opts,
                                scomm_kv_ep_t **ep_p)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    char err[256], text[SCOMM_KV_ERRTEXT_MAX + 1];
    scomm_kv_hello_t peer;
    scomm_kv_hdr_t h;
    scomm_kv_ep_t *ep;
    kv_cfg_t c;
    uint64_t deadline, session;
    scomm_status_t status;
    int i, rc, fd;

    if ((host == NULL) || (port <= 0) || (port > 65535) || (ep_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_connect: NULL host or "
                             "ep_p, or port %d outside 1..65535", port);
    }
    status = scomm_kv_cfg_resolve(opts, &c);
    if (status != SCOMM_OK) {
        return status;
    }
    if (scomm_sock_resolve(host, port, &ss, &len, err, sizeof(err)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_connect: %s", err);
    }
    ep = kv_ep_new(&c);
    if (ep == NULL) {
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_connect: out of memory");
    }
    deadline = scomm_deadline_ms(c.timeout_ms);
    scomm_random_bytes(&session, sizeof(session));
    ep->nstreams  = c.streams;
    ep->session   = session;
    ep->dialer    = 1;
    ep->redial_ms = c.reconnect_ms;
    snprintf(ep->token, sizeof(ep->token), "%s", c.token);
    for (i = 0; i < c.streams; i++) {
        rc = scomm_sock_connect(&ss, len, deadline, 1, &fd);
        if (rc != SCOMM_SOCK_OK) {
            status = (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                                : SCOMM_ERR_SYSTEM;
            goto fail;
        }
        ep->st[i].fd = fd;
        if (!scomm_kv_hs_send_hello(ep, fd, SCOMM_KV_T_HELLO, i, 0, deadline)) {
            status = SCOMM_ERR_PEER_LOST;
            goto fail;
        }
    }
    for (i = 0; i < c.streams; i++) {
        rc = scomm_kv_hs_io(ep->st[i].fd, hb, sizeof(hb), 0, deadline);
        if (rc != 0) {
            status = (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                                : SCOMM_ERR_PEER_LOST;
            goto fail;
        }
        scomm_kv_hdr_decode(hb, &h);
        if (scomm_kv_hdr_check(&h, 0, err, sizeof(err)) != 0) {
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_PROTOCOL, "kv_connect to %s:%d: %s",
                                 host, port, err);
        }
        if (h.type == SCOMM_KV_T_HELLO_NO) {
            memset(text, 0, sizeof(text));
            (void)scomm_kv_hs_io(ep->st[i].fd, text, h.len, 0, deadline);
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_ACCESS_DENIED, "kv_connect to "
                                 "%s:%d: refused: %s", host, port, text);
        }
        if ((h.type != SCOMM_KV_T_HELLO_OK) ||
            (h.len != SCOMM_KV_HELLO_SIZE) ||
            (scomm_kv_hs_io(ep->st[i].fd, pl, sizeof(pl), 0, deadline) != 0) ||
            (scomm_kv_hello_decode(pl, sizeof(pl), &peer, err,
                                   sizeof(err)) != 0)) {
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_PROTOCOL, "kv_connect to %s:%d: bad "
                                 "handshake reply", host, port);
        }
        if (i == 0) {
            ep->peer_pid = peer.pid;
            ep->cma_read_ok = kv_cma_probe(peer.pid, peer.probe_addr,
                                           peer.probe_val);
            /* Re-dials go to the address this stream reached, at the port
             * the peer named (0: it takes none). */
            ep->rport = peer.port;
            ep->peer_sslen = sizeof(ep->peer_ss);
            if ((ep->rport == 0) ||
                (getpeername(ep->st[0].fd, (struct sockaddr *)&ep->peer_ss,
                             &ep->peer_sslen) != 0) ||
                (scomm_sock_set_port(&ep->peer_ss, ep->rport) != 0)) {
                ep->redial_ms = 0;
            }
        }
    }
    if ((ep->transport == SCOMM_KV_TRANSPORT_OFI) &&
        ((status = scomm_kv_ofi_open(ep, ep->st[0].fd)) != SCOMM_OK)) {
        kv_ep_free(ep);
        return status;
    }
    status = kv_ep_start(ep);
    if (status != SCOMM_OK) {
        scomm_kv_ep_close(ep);
        return status;
    }
    *ep_p = ep;
    return SCOMM_OK;
fail:
    kv_ep_free(ep);
    return scomm_kv_fail(status, "kv_connect to %s:%d: %s", host, port,
                         (status == SCOMM_ERR_TIMED_OUT)
                             ? "timed out" : "connection failed");
}

scomm_status_t scomm_kv_connect_comm(scomm_comm_t *comm, int32_t peer,
                                     const scomm_kv_opts_t *opts,
                                     scomm_kv_ep_t **ep_p)
{
    scomm_kv_opts_t o;
    scomm_kv_listener_t *l = NULL;
    scomm_world_t *w;
    char msg[128], tok[33];
    scomm_status_t status;
    int me, port;

    if ((comm == NULL) || (ep_p == NULL) || (peer < 0) ||
        (peer >= scomm_size(comm)) || (peer == scomm_rank(comm))) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_connect_comm: NULL "
                             "argument or bad peer %d", peer);
    }
    w  = comm->world;
    me = scomm_rank(comm);
    memset(&o, 0, sizeof(o));
    if (opts != NULL) {
        /* Fields appended later exist only where their bit is set. */
        memcpy(&o, opts, offsetof(scomm_kv_opts_t, reconnect_ms));
        if (opts->field_mask & SCOMM_KV_FIELD_RECONNECT_MS) {
            o.reconnect_ms = opts->reconnect_ms;
        }
    }
    if (me < peer) {
        scomm_random_hex(tok, 16);
        o.field_mask |= SCOMM_KV_FIELD_TOKEN;
        o.token = tok;
        status = scomm_kv_listen(w->info[w->rank].tcp_addr, 0, &o, &l);
        if (status != SCOMM_OK) {
            return status;
        }
        memset(msg, 0, sizeof(msg));
        snprintf(msg, sizeof(msg), "%d %s", scomm_kv_listener_port(l), tok);
        status = scomm_send(msg, sizeof(msg), SCOMM_UINT8, peer,
                            SCOMM_KV_COMM_TAG, comm);
        if (status == SCOMM_OK) {
            status = scomm_kv_accept(l, 0, ep_p);
        }
        scomm_kv_listener_close(l);
        return status;
    }
    status = scomm_recv(msg, sizeof(msg), SCOMM_UINT8, peer,
                        SCOMM_KV_COMM_TAG, comm);
    if (status != SCOMM_OK) {
        return status;
    }
    msg[sizeof(msg) - 1] = '\0';
    if (sscanf(msg, "%d %32s", &port, tok) != 2) {
        return scomm_kv_fail(SCOMM_ERR_PROTOCOL, "kv_connect_comm: bad address "
                             "from rank %d", peer);
    }
    o.field_mask |= SCOMM_KV_FIELD_TOKEN;
    o.token = tok;
    return scomm_kv_connect(w->info[comm->ranks[peer]].tcp_addr, port, &o,
                            ep_p);
}

void scomm_kv_ep_close(scomm_kv_ep_t *ep)
{
    kv_sx_t *sx, *next;
    int i;

    if (ep == NULL) {
        return;
    }
    pthread_mutex_lock(&ep->lock);
    __atomic_store_n(&ep->closing, 1, __ATOMIC_RELEASE);
    scomm_kv_ep_fault(ep, SCOMM_ERR_ABORTED, "kv endpoint closed");
    pthread_mutex_unlock(&ep->lock);
    /* The keeper first: after it no thread is started or joined by
     * anyone else, and nothing takes re-dials. */
    if (ep->keeper_started) {
        pthread_join(ep->keeper, NULL);
    }
    for (i = 0; i < ep->nstreams; i++) {
        if (ep->st[i].tx_started) {
            pthread_join(ep->st[i].tx, NULL);
        }
        if (ep->st[i].fd >= 0) {
            shutdown(ep->st[i].fd, SHUT_RDWR);
        }
        if (ep->st[i].rx_started) {
            pthread_join(ep->st[i].rx, NULL);
        }
    }
    for (i = 0; i < ep->nstreams; i++) {
        kv_stream_t *st = &ep->st[i];

        while (st->inf_n > 0) {
            st->inf[st->inf_head].sx->refs--;
            st->inf_head = (st->inf_head + 1) % ep->depth;
            st->inf_n--;
        }
    }
    for (sx = ep->sx_head; sx != NULL; sx = next) {
        next = sx->next;
        if (sx->user_freed) {
            scomm_kv_sx_free(sx);
        } else {
            sx->orphan = 1;
            sx->ep = NULL;
        }
    }
    scomm_kv_dev_ep_close(ep);
    kv_ep_free(ep);
}
