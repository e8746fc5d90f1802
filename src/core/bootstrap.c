/*
 * bootstrap.c - the rendezvous: rank 0 hosts a TCP store on
 * MASTER_ADDR:MASTER_PORT, every other rank sends it a HELLO (rank, world
 * size, job token, protocol version, its rank record: host identity, pid,
 * listen address, shared-memory segment), and once all have joined rank 0
 * sends everyone the full table.
 *
 *   rank r > 0:  connect (retry with backoff) -> HELLO -> wait TABLE|REJECT
 *   rank 0:      listen -> accept/read HELLOs (poll loop, per-connection
 *                buffers) -> validate -> TABLE to all | REJECT on timeout
 *
 * Invariants:
 *  1. A HELLO with a wrong token, protocol version or world size, or for a
 *     rank already joined, gets a REJECT naming the reason and is closed;
 *     the store goes on waiting for the right process.
 *  2. Lengths from the wire are bounded (bootstrap_wire.c) before any
 *     allocation; a connection that sends garbage is dropped.
 *  3. At the deadline rank 0 names the ranks that never joined, to the
 *     caller and to every rank that did join.
 *  4. The token is compared in constant time.
 *  5. A rank that cannot join (its transports failed to open, say) sends
 *     FAILED (a hello and the reason) instead of HELLO; rank 0 then
 *     REJECTs everyone, those waiting and those still to come, with
 *     "rank R failed to join: REASON", the first such report, and gives
 *     up itself. Failing rank 0 keeps its store up to refuse every hello
 *     the same way. Both are bounded by SCOMM_BOOT_REPORT_MS: the others
 *     fail within moments, naming the rank, not at their deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bootstrap.h"
#include "sock.h"

#define SCOMM_BOOT_GRACE_MS  3000
#define SCOMM_BOOT_REPORT_MS 10000

typedef struct scomm_boot_conn {
    int      fd;
    size_t   got;
    uint8_t  hdr[SCOMM_BOOT_HDR_SIZE];
    uint8_t *body;
    uint32_t body_len;
    int      rank;  /* joined as, or -1 */
} scomm_boot_conn_t;

static int scomm_boot_send(int fd, uint32_t type, const void *body,
                           uint32_t len, uint64_t deadline)
{
    uint8_t hdr[SCOMM_BOOT_HDR_SIZE];
    int rc;

    scomm_boot_encode_hdr(hdr, type, len);
    rc = scomm_sock_write_all(fd, hdr, sizeof(hdr), deadline);
    if ((rc == SCOMM_SOCK_OK) && (len > 0)) {
        rc = scomm_sock_write_all(fd, body, len, deadline);
    }
    return rc;
}

static void scomm_boot_reject(int fd, scomm_status_t status, const char *msg)
{
    uint8_t body[4 + SCOMM_ERRMSG_MAX];
    size_t n = strnlen(msg, SCOMM_ERRMSG_MAX - 1);
    int32_t s = (int32_t)status;

    body[0] = (uint8_t)s;
    body[1] = (uint8_t)(s >> 8);
    body[2] = (uint8_t)(s >> 16);
    body[3] = (uint8_t)(s >> 24);
    memcpy(body + 4, msg, n);
    (void)scomm_boot_send(fd, SCOMM_BOOT_REJECT, body, (uint32_t)(4 + n),
                          scomm_deadline_ms(500));
}

static void scomm_boot_conn_close(scomm_boot_conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->body);
    memset(c, 0, sizeof(*c));
    c->fd   = -1;
    c->rank = -1;
}

/* Validate a complete HELLO on connection c; returns the rank it joins as,
 * or -1 after rejecting it. */
static int scomm_boot_admit(scomm_world_t *w, scomm_boot_conn_t *c,
                            const scomm_boot_hdr_t *hdr, const int *joined)
{
    scomm_boot_hello_t h;
    char err[SCOMM_ERRMSG_MAX];

    if (hdr->version != SCOMM_PROTOCOL_VERSION) {
        snprintf(err, sizeof(err), "protocol version mismatch: this rank "
                 "speaks version %u, rank 0 speaks version %d "
                 "(mixed scomm builds in one job)",
                 hdr->version, SCOMM_PROTOCOL_VERSION);
        scomm_warn(SCOMM_SUB_BOOT, "refused a peer: %s", err);
        scomm_boot_reject(c->fd, SCOMM_ERR_PROTOCOL, err);
        return -1;
    }
    if ((hdr->type != SCOMM_BOOT_HELLO) && (hdr->type != SCOMM_BOOT_FAILED)) {
        scomm_warn(SCOMM_SUB_BOOT, "dropped a connection that sent message "
                   "type %u before HELLO", hdr->type);
        return -1;
    }
    if (scomm_boot_decode_hello(c->body,
                                (hdr->type == SCOMM_BOOT_FAILED) ?
                                scomm_boot_hello_len(c->body, c->body_len) :
                                c->body_len,
                                &h, err, sizeof(err)) != 0) {
        scomm_warn(SCOMM_SUB_BOOT, "refused a malformed hello: %s", err);
        scomm_boot_reject(c->fd, SCOMM_ERR_PROTOCOL, err);
        return -1;
    }
    if (!scomm_secret_equal(h.token, w->token)) {
        snprintf(err, sizeof(err), "job token mismatch for rank %d: the "
                 "process is not part of this job (check SCOMM_JOB_TOKEN)",
                 (int)h.rank);
        scomm_warn(SCOMM_SUB_BOOT, "refused a peer: %s", err);
        scomm_boot_reject(c->fd, SCOMM_ERR_ACCESS_DENIED, err);
        return -1;
    }
    if (h.world_size != w->size) {
        snprintf(err, sizeof(err), "world size mismatch: rank %d says %d, "
                 "rank 0 says %d", (int)h.rank, (int)h.world_size, w->size);
        scomm_warn(SCOMM_SUB_BOOT, "refused a peer: %s", err);
        scomm_boot_reject(c->fd, SCOMM_ERR_MISMATCH, err);
        return -1;
    }
    if ((h.rank == 0) || joined[h.rank]) {
        snprintf(err, sizeof(err), "rank %d joined twice", (int)h.rank);
        scomm_warn(SCOMM_SUB_BOOT, "refused a peer: %s", err);
        scomm_boot_reject(c->fd, SCOMM_ERR_MISMATCH, err);
        return -1;
    }
    if (hdr->type == SCOMM_BOOT_HELLO) {
        w->info[h.rank] = h.info;
    }
    return h.rank;
}

/* Rank `rank` reported it cannot join (FAILED): the message every other
 * rank gets, with the reason made printable. */
static void scomm_boot_failed_msg(char *out, size_t outlen, int rank,
                                  const scomm_boot_conn_t *c)
{
    size_t hlen = scomm_boot_hello_len(c->body, c->body_len);
    size_t o, k;

    o = (size_t)snprintf(out, outlen, "rank %d failed to join: ", rank);
    for (k = hlen; (k < c->body_len) && (o + 1 < outlen); k++) {
        unsigned char ch = c->body[k];

        out[o++] = ((ch < 0x20) || (ch == 0x7f)) ? '?' : (char)ch;
    }
    if (k == hlen) {
        o += (size_t)snprintf(out + o, outlen - o, "no reason given");
    }
    out[SCOMM_MIN(o, outlen - 1)] = '\0';
}

/* The store (rank 0). refuse: rank 0's own reason not to join (note 5),
 * or NULL. */
static scomm_status_t scomm_boot_root(scomm_world_t *w, uint64_t deadline,
                                      const char *refuse, char *err,
                                      size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    scomm_boot_conn_t *conns = NULL;
    struct pollfd *pfds      = NULL;
    int *joined              = NULL;
    uint8_t *table           = NULL;
    size_t table_len, o;
    int nconn_max, njoined = 1, lfd = -1, i, j, n, fd, rank, ntold = 0;
    scomm_status_t status = SCOMM_OK;
    scomm_boot_hdr_t hdr;
    char herr[256];
    char failed[SCOMM_ERRMSG_MAX] = ""; /* note 5: why nobody joins */
    ssize_t r;

    if (refuse != NULL) {
        snprintf(failed, sizeof(failed), "rank 0 failed to join: %s",
                 refuse);
    }
    if (scomm_sock_resolve(w->master_addr, w->master_port, &ss, &sslen, herr,
                           sizeof(herr)) != 0) {
        snprintf(err, errlen, "bootstrap: master address %s: %s",
                 w->master_addr, herr);
        return SCOMM_ERR_BAD_CONFIG;
    }
    lfd = scomm_sock_listen(&ss, sslen, herr, sizeof(herr));
    if (lfd < 0) {
        snprintf(err, errlen, "bootstrap: rank 0 cannot listen on %s:%d: %s",
                 w->master_addr, w->master_port, herr);
        return SCOMM_ERR_SYSTEM;
    }
    /* Room for every rank plus strays that connect and say nothing. */
    nconn_max = w->size + 64;
    conns     = calloc((size_t)nconn_max, sizeof(*conns));
    pfds      = calloc((size_t)nconn_max + 1, sizeof(*pfds));
    joined    = calloc((size_t)w->size, sizeof(*joined));
    if ((conns == NULL) || (pfds == NULL) || (joined == NULL)) {
        status = SCOMM_ERR_NO_MEMORY;
        snprintf(err, errlen, "bootstrap: out of memory");
        goto out;
    }
    for (i = 0; i < nconn_max; i++) {
        conns[i].fd   = -1;
        conns[i].rank = -1;
    }
    joined[0] = 1;

    /* Until all have joined, or, once one failed, all have been told. */
    while ((failed[0] == '\0') ? (njoined < w->size)
                               : (ntold < w->size - 1)) {
        if (scomm_now_ns() >= deadline) {
            break;
        }
        pfds[0].fd     = lfd;
        pfds[0].events = POLLIN;
        for (i = 0; i < nconn_max; i++) {
            pfds[i + 1].fd     = (conns[i].rank < 0) ? conns[i].fd : -1;
            pfds[i + 1].events = POLLIN;
        }
        n = poll(pfds, (nfds_t)nconn_max + 1, scomm_ms_left(deadline, 200));
        if (n <= 0) {
            continue;
        }
        if (pfds[0].revents & POLLIN) {
            for (;;) {
                fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) {
                    break;
                }
                for (i = 0; (i < nconn_max) && (conns[i].fd >= 0); i++) {
                }
                if (i == nconn_max) {
                    close(fd); /* full of silent strays: drop newcomers */
                    continue;
                }
                conns[i].fd = fd;
            }
        }
        for (i = 0; i < nconn_max; i++) {
            scomm_boot_conn_t *c = &conns[i];

            if ((c->fd < 0) || (c->rank >= 0) ||
                !(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            if (c->got < SCOMM_BOOT_HDR_SIZE) {
                r = recv(c->fd, c->hdr + c->got, SCOMM_BOOT_HDR_SIZE - c->got,
                         0);
                if ((r == 0) || ((r < 0) && (errno != EAGAIN) &&
                                 (errno != EINTR))) {
                    scomm_boot_conn_close(c);
                    continue;
                }
                if (r > 0) {
                    c->got += (size_t)r;
                }
                if (c->got < SCOMM_BOOT_HDR_SIZE) {
                    continue;
                }
                if (scomm_boot_decode_hdr(c->hdr, &hdr, herr,
                                          sizeof(herr)) != 0) {
                    scomm_warn(SCOMM_SUB_BOOT, "dropped a connection: %s",
                               herr);
                    scomm_boot_conn_close(c);
                    continue;
                }
                c->body_len = hdr.len;
                c->body     = malloc(hdr.len > 0 ? hdr.len : 1);
                if (c->body == NULL) {
                    scomm_boot_conn_close(c);
                    continue;
                }
            }
            if (c->got < SCOMM_BOOT_HDR_SIZE + c->body_len) {
                r = recv(c->fd, c->body + (c->got - SCOMM_BOOT_HDR_SIZE),
                         SCOMM_BOOT_HDR_SIZE + c->body_len - c->got, 0);
                if ((r == 0) || ((r < 0) && (errno != EAGAIN) &&
                                 (errno != EINTR))) {
                    scomm_boot_conn_close(c);
                    continue;
                }
                if (r > 0) {
                    c->got += (size_t)r;
                }
            }
            if (c->got < SCOMM_BOOT_HDR_SIZE + c->body_len) {
                continue;
            }
            (void)scomm_boot_decode_hdr(c->hdr, &hdr, herr, sizeof(herr));
            rank = scomm_boot_admit(w, c, &hdr, joined);
            if (rank < 0) {
                scomm_boot_conn_close(c);
                continue;
            }
            if (hdr.type == SCOMM_BOOT_FAILED) {
                /* Note 5: the first report is the one everybody gets. */
                joined[rank] = 1;
                ntold++;
                if (failed[0] == '\0') {
                    scomm_boot_failed_msg(failed, sizeof(failed), rank, c);
                    scomm_warn(SCOMM_SUB_BOOT, "%s", failed);
                    for (j = 0; j < nconn_max; j++) {
                        if (conns[j].rank > 0) {
                            scomm_boot_reject(conns[j].fd,
                                              SCOMM_ERR_PEER_LOST, failed);
                            scomm_boot_conn_close(&conns[j]);
                            ntold++;
                        }
                    }
                }
                scomm_boot_conn_close(c);
                continue;
            }
            if (failed[0] != '\0') {
                joined[rank] = 1;
                scomm_boot_reject(c->fd, SCOMM_ERR_PEER_LOST, failed);
                scomm_boot_conn_close(c);
                ntold++;
                continue;
            }
            c->rank      = rank;
            joined[rank] = 1;
            njoined++;
            scomm_debug(SCOMM_SUB_BOOT, "rank %d joined (%d of %d)", rank,
                        njoined, w->size);
        }
    }

    if (failed[0] != '\0') {
        snprintf(err, errlen, "bootstrap: %s", failed);
        status = SCOMM_ERR_PEER_LOST;
        goto out;
    }
    if (njoined < w->size) {
        o = (size_t)snprintf(err, errlen,
                             "bootstrap: timed out after %lld ms: %d of %d "
                             "ranks joined rank 0 at %s:%d; missing rank(s) ",
                             (long long)w->cfg.timeout_ms, njoined, w->size,
                             w->master_addr, w->master_port);
        for (i = 0, n = 0; (i < w->size) && (o + 16 < errlen); i++) {
            if (!joined[i]) {
                o += (size_t)snprintf(err + o, errlen - o, "%s%d",
                                      (n++ == 0) ? "" : ",", i);
                if (n == 32) {
                    o += (size_t)snprintf(err + o, errlen - o, ",...");
                    break;
                }
            }
        }
        for (i = 0; i < nconn_max; i++) {
            if (conns[i].rank > 0) {
                scomm_boot_reject(conns[i].fd, SCOMM_ERR_TIMED_OUT, err);
            }
        }
        status = SCOMM_ERR_TIMED_OUT;
        goto out;
    }

    table_len = 4 + (size_t)w->size * SCOMM_BOOT_INFO_SIZE;
    table     = malloc(table_len);
    if (table == NULL) {
        status = SCOMM_ERR_NO_MEMORY;
        snprintf(err, errlen, "bootstrap: out of memory for the rank table");
        goto out;
    }
    table[0] = (uint8_t)w->size;
    table[1] = (uint8_t)(w->size >> 8);
    table[2] = (uint8_t)(w->size >> 16);
    table[3] = (uint8_t)(w->size >> 24);
    for (i = 0; i < w->size; i++) {
        scomm_boot_encode_info(table + 4 + (size_t)i * SCOMM_BOOT_INFO_SIZE,
                               &w->info[i]);
    }
    for (i = 0; i < nconn_max; i++) {
        if ((conns[i].rank > 0) &&
            (scomm_boot_send(conns[i].fd, SCOMM_BOOT_TABLE, table,
                             (uint32_t)table_len,
                             deadline + SCOMM_BOOT_GRACE_MS * 1000000ull) !=
             SCOMM_SOCK_OK)) {
            snprintf(err, errlen, "bootstrap: rank %d left before it got the "
                     "rank table", conns[i].rank);
            status = SCOMM_ERR_PEER_LOST;
        }
    }

out:
    if (conns != NULL) {
        for (i = 0; i < nconn_max; i++) {
            scomm_boot_conn_close(&conns[i]);
        }
    }
    free(conns);
    free(pfds);
    free(joined);
    free(table);
    if (lfd >= 0) {
        close(lfd);
    }
    return status;
}

static scomm_status_t scomm_boot_peer(scomm_world_t *w, uint64_t deadline,
                                      char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    scomm_boot_hello_t hello;
    scomm_boot_hdr_t hdr;
    uint8_t hbuf[SCOMM_BOOT_HDR_SIZE];
    uint8_t *body = NULL;
    size_t len;
    scomm_status_t status = SCOMM_OK;
    uint64_t reply_deadline;
    char herr[256] = "unexpected message type";
    int fd = -1, rc;
    int32_t rs;

    if (scomm_sock_resolve(w->master_addr, w->master_port, &ss, &sslen, herr,
                           sizeof(herr)) != 0) {
        snprintf(err, errlen, "bootstrap: master address %s: %s",
                 w->master_addr, herr);
        return SCOMM_ERR_BAD_CONFIG;
    }
    rc = scomm_sock_connect(&ss, sslen, deadline, 1, &fd);
    if (rc != SCOMM_SOCK_OK) {
        snprintf(err, errlen, "bootstrap: rank %d could not reach rank 0 at "
                 "%s:%d within %lld ms: %s",
                 w->rank, w->master_addr, w->master_port,
                 (long long)w->cfg.timeout_ms,
                 (rc == SCOMM_SOCK_TIMEOUT) ? "timed out" : strerror(errno));
        return (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                          : SCOMM_ERR_SYSTEM;
    }
    memset(&hello, 0, sizeof(hello));
    hello.rank       = w->rank;
    hello.world_size = w->size;
    snprintf(hello.token, sizeof(hello.token), "%s", w->token);
    hello.info = w->info[w->rank];
    body       = malloc(12 + SCOMM_TOKEN_MAX + SCOMM_BOOT_INFO_SIZE);
    if (body == NULL) {
        close(fd);
        snprintf(err, errlen, "bootstrap: out of memory");
        return SCOMM_ERR_NO_MEMORY;
    }
    len = scomm_boot_encode_hello(body, 12 + SCOMM_TOKEN_MAX +
                                            SCOMM_BOOT_INFO_SIZE, &hello);
    rc  = scomm_boot_send(fd, SCOMM_BOOT_HELLO, body, (uint32_t)len,
                          deadline);
    free(body);
    body = NULL;
    if (rc != SCOMM_SOCK_OK) {
        snprintf(err, errlen, "bootstrap: rank %d could not send its hello to "
                 "rank 0 at %s:%d: %s", w->rank, w->master_addr,
                 w->master_port, strerror(errno));
        close(fd);
        return SCOMM_ERR_PEER_LOST;
    }
    /* Rank 0 reports missing ranks at its own deadline: wait a little past
     * ours so that the report, which names them, arrives. */
    reply_deadline = deadline + SCOMM_BOOT_GRACE_MS * 1000000ull;
    rc = scomm_sock_read_all(fd, hbuf, sizeof(hbuf), reply_deadline);
    if ((rc == SCOMM_SOCK_OK) &&
        (scomm_boot_decode_hdr(hbuf, &hdr, herr, sizeof(herr)) != 0)) {
        snprintf(err, errlen, "bootstrap: bad reply from rank 0: %s", herr);
        status = SCOMM_ERR_PROTOCOL;
        goto out;
    }
    if (rc == SCOMM_SOCK_OK) {
        body = malloc(hdr.len + 1);
        if (body == NULL) {
            snprintf(err, errlen, "bootstrap: out of memory");
            status = SCOMM_ERR_NO_MEMORY;
            goto out;
        }
        rc = scomm_sock_read_all(fd, body, hdr.len, reply_deadline);
    }
    if (rc != SCOMM_SOCK_OK) {
        snprintf(err, errlen, "bootstrap: rank %d got no rank table from rank "
                 "0 at %s:%d: %s", w->rank, w->master_addr, w->master_port,
                 (rc == SCOMM_SOCK_TIMEOUT) ? "timed out"
                 : (rc == SCOMM_SOCK_EOF)   ? "connection closed"
                                            : strerror(errno));
        status = (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                            : SCOMM_ERR_PEER_LOST;
        goto out;
    }
    if (hdr.type == SCOMM_BOOT_REJECT) {
        rs = 0;
        if (hdr.len >= 4) {
            rs = (int32_t)((uint32_t)body[0] | ((uint32_t)body[1] << 8) |
                           ((uint32_t)body[2] << 16) |
                           ((uint32_t)body[3] << 24));
        }
        body[hdr.len] = '\0';
        snprintf(err, errlen, "bootstrap: rank 0 at %s:%d refused rank %d: "
                 "%s", w->master_addr, w->master_port, w->rank,
                 (hdr.len > 4) ? (char *)body + 4 : "no reason given");
        status = ((rs < 0) && (rs >= SCOMM_ERR_CHECKSUM))
                     ? (scomm_status_t)rs : SCOMM_ERR_PROTOCOL;
        goto out;
    }
    if ((hdr.type != SCOMM_BOOT_TABLE) ||
        (scomm_boot_decode_table(body, hdr.len, w->size, w->info, herr,
                                 sizeof(herr)) != 0)) {
        snprintf(err, errlen, "bootstrap: bad rank table from rank 0: %s",
                 herr);
        status = SCOMM_ERR_PROTOCOL;
        goto out;
    }

out:
    free(body);
    close(fd);
    return status;
}

scomm_status_t scomm_bootstrap_exchange(scomm_world_t *w, uint64_t deadline,
                                        char *err, size_t errlen)
{
    if (w->size == 1) {
        return SCOMM_OK;
    }
    if (w->rank == 0) {
        return scomm_boot_root(w, deadline, NULL, err, errlen);
    }
    return scomm_boot_peer(w, deadline, err, errlen);
}

void scomm_bootstrap_fail(scomm_world_t *w, uint64_t deadline,
                          const char *why)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    scomm_boot_hello_t hello;
    uint8_t *body;
    size_t len, wlen = strnlen(why, SCOMM_ERRMSG_MAX - 1);
    char err[SCOMM_ERRMSG_MAX];
    int fd = -1;

    if (w->size == 1) {
        return;
    }
    deadline = SCOMM_MIN(deadline, scomm_deadline_ms(SCOMM_BOOT_REPORT_MS));
    if (w->rank == 0) {
        (void)scomm_boot_root(w, deadline, why, err, sizeof(err));
        return;
    }
    if ((scomm_sock_resolve(w->master_addr, w->master_port, &ss, &sslen, err,
                            sizeof(err)) != 0) ||
        (scomm_sock_connect(&ss, sslen, deadline, 1, &fd) != SCOMM_SOCK_OK)) {
        return; /* best effort: the others time out as before */
    }
    memset(&hello, 0, sizeof(hello));
    hello.rank       = w->rank;
    hello.world_size = w->size;
    snprintf(hello.token, sizeof(hello.token), "%s", w->token);
    hello.info = w->info[w->rank];
    body       = malloc(12 + SCOMM_TOKEN_MAX + SCOMM_BOOT_INFO_SIZE + wlen);
    if (body != NULL) {
        len = scomm_boot_encode_hello(body, 12 + SCOMM_TOKEN_MAX +
                                                SCOMM_BOOT_INFO_SIZE, &hello);
        memcpy(body + len, why, wlen);
        (void)scomm_boot_send(fd, SCOMM_BOOT_FAILED, body,
                              (uint32_t)(len + wlen), deadline);
        free(body);
    }
    close(fd);
}
