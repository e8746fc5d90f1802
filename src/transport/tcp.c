/*
 * tcp.c - the TCP transport, for peers on other hosts (or all peers when
 * SCOMM_TRANSPORTS=tcp).
 *
 * Each pair of ranks shares SCOMM_TCP_NSOCKS non-blocking TCP_NODELAY
 * sockets; the lower rank connects, the higher accepts. Socket 0 carries
 * every ordered message (EAGER, RTS, CTS, ABORT); DATA stripes of large
 * messages are spread over all sockets.
 *
 *   small (<= SCOMM_TCP_EAGER_MAX):  EAGER hdr + payload on socket 0
 *   large:  sender  RTS(id, len) ------------------------> receiver
 *           sender <-------------------- CTS(id, rreq id)  (once matched)
 *           sender  DATA(rreq id, off, len) x nsocks ---->  read straight
 *                                                           into the buffer
 *
 * Every message starts with a 40-byte header (tcp_hdr_t). A new connection
 * first sends a fixed 276-byte HELLO (magic, version, rank, socket index,
 * token); the acceptor checks the token in constant time, that the rank is a
 * lower rank of this job whose address matches the rank table, and that the
 * (rank, socket) slot is free, or closes the connection. What a header or
 * HELLO must satisfy on its own is checked by the pure functions of wire.h
 * (scomm_tcp_hdr_check, scomm_tcp_hello_decode), which tests/fuzz drives.
 *
 * Invariants:
 *  1. A socket's receive state machine reads a whole header, validates it,
 *     then exactly len payload bytes: into the matched receive buffer, into a
 *     staging buffer (unexpected eager) or a discard sink (stale DATA).
 *  2. DATA offsets and lengths are checked against the receive's message
 *     length before a byte is written.
 *  3. EOF or an error on any socket fails the world naming the peer, at once.
 *  4. Sends never block; progress writes until EAGAIN, with MSG_NOSIGNAL
 *     (a vanished peer is an error, never a SIGPIPE).
 *  5. A peer that fails first tells us why (ABORT on socket 0) and then
 *     leaves: the cause it names wins over its own leaving. Before any
 *     other socket's EOF or error blames the peer, socket 0 is read; and
 *     a rank leaving after a fault half-closes and drains like a clean
 *     close (tcp_linger), so its peers get FINs after the ABORT, not a
 *     reset that would drop the ABORT unread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../core/module.h"
#include "../core/scomm_int.h"
#include "../core/sock.h"
#include "wire.h"

/* tcp_fini: how long a clean close waits for the peers to close too. */
#define TCP_LINGER_MS 200
#define TCP_MAGIC        0x53435450u /* "SCTP" */
#define TCP_HELLO_SIZE   SCOMM_TCP_HELLO_SIZE
#define TCP_STRIPE_MIN   (256u << 10)
#define TCP_MAX_EVENTS   64
#define TCP_DISCARD_SIZE (64u << 10)
/* Bytes per writev/recv call: larger calls hold the socket lock longer
 * and did not move data faster. */
#define SCOMM_TCP_IO_MAX ((uint64_t)256 << 10)

enum {
    TCP_EAGER = 1,
    TCP_RTS   = 2,
    TCP_CTS   = 3,
    TCP_DATA  = 4,
    TCP_ABORT = 5,
    TCP_BYE   = 6,
    TCP_HEARTBEAT = 7
};

typedef struct tcp_hdr {
    uint8_t  type;
    uint8_t  pad[3];
    uint32_t ctx;
    int32_t  tag;
    uint32_t aux32;
    uint64_t len;
    uint64_t id;
    uint64_t aux;
} tcp_hdr_t;

_Static_assert(sizeof(tcp_hdr_t) == SCOMM_TCP_HDR_SIZE,
               "tcp header layout is part of the wire protocol");
_Static_assert(20 + SCOMM_TOKEN_MAX - 1 <= TCP_HELLO_SIZE,
               "the longest token must fit the HELLO");

typedef struct tcp_sitem {
    scomm_list_t list;
    tcp_hdr_t    hdr;
    const char  *payload;
    uint64_t     plen;
    uint64_t     sent;     /* bytes of hdr + payload written */
    uint64_t     req_id;   /* completes (a stripe of) this send, or 0 */
    char        *owned;    /* payload copy to free (abort message) */
} tcp_sitem_t;

typedef struct tcp_sock {
    int           fd;
    int           peer;
    int           idx;
    scomm_list_t  sendq;
    /* receive state */
    tcp_hdr_t     hdr;
    size_t        hdr_got;
    int           in_payload;
    char         *dst;       /* where the payload goes */
    uint64_t      need;      /* payload bytes still to read */
    uint64_t      got;
    char         *stage;     /* eager staging (owned) */
    uint64_t      rreq_id;   /* DATA target */
    scomm_rx_t    rx;        /* EAGER match */
    int           discard;
} tcp_sock_t;

typedef struct tcp_peer {
    int          rank;
    int          nsocks;
    tcp_sock_t  *socks;
    int          connected;
    uint64_t     last_heard;  /* CLOCK_MONOTONIC ns of the last bytes read */
} tcp_peer_t;

typedef struct tcp_ctx {
    scomm_world_t *w;
    int            lfd;
    int            epfd;
    int            nsocks;
    uint64_t       eager_max;
    tcp_peer_t   **by_rank;
    int            failing;   /* inside tcp_fail_sock (note 5) */
    tcp_peer_t    *peers;
    int            npeers;
    char          *discard;
    int            nsending;  /* sockets with a non-empty send queue */
} tcp_ctx_t;

/* Knobs (registry rows, core/config.h), read into w->cfg at scomm_init;
 * SCOMM_PRESET may set the last two (topo/preset.c). */
static const scomm_param_t tcp_params[] = {
    {.name = "SCOMM_TCP_IFNAME", .defval = "", .type = SCOMM_PARAM_STRING,
     SCOMM_PARAM_FIELD(tcp_ifname),
     .help = "network interface for TCP; default: the route to the "
             "master address"},
    {.name = "SCOMM_TCP_SOCKBUF", .defval = "4m", .type = SCOMM_PARAM_SIZE,
     .min = 0, .max = 1 << 30, SCOMM_PARAM_FIELD(tcp_sockbuf),
     .help = "SO_SNDBUF/SO_RCVBUF of TCP sockets (0: kernel default)"},
    {.name = "SCOMM_TCP_NSOCKS", .defval = "2", .type = SCOMM_PARAM_INT,
     .min = 1, .max = 16, SCOMM_PARAM_FIELD(tcp_nsocks),
     .help = "TCP sockets per peer; large messages are striped over all "
             "of them"},
    {.name = "SCOMM_TCP_EAGER_MAX", .defval = "64k", .type = SCOMM_PARAM_SIZE,
     .min = 0, .max = 16 << 20, SCOMM_PARAM_FIELD(tcp_eager_max),
     .help = "largest TCP message sent without a rendezvous"},
};

/* ---- addresses ----------------------------------------------------------- */

static scomm_status_t tcp_init(scomm_world_t *w, void **ctx_p)
{
    struct sockaddr_storage ss;
    tcp_ctx_t *c;
    socklen_t len;
    char err[256];
    int port;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    c->w         = w;
    c->lfd       = -1;
    c->epfd      = -1;
    c->nsocks    = (int)w->cfg.tcp_nsocks;
    c->eager_max = w->cfg.tcp_eager_max;
    *ctx_p       = c;
    if (w->size == 1) {
        return SCOMM_OK;
    }
    if (scomm_sock_pick_local(w->cfg.tcp_ifname, "SCOMM_TCP_IFNAME",
                              w->master_addr, w->master_port, &ss, &len,
                              err, sizeof(err)) != 0) {
        scomm_world_fail(w, SCOMM_ERR_BAD_CONFIG, -1, "tcp: %s", err);
        return SCOMM_ERR_BAD_CONFIG;
    }
    c->lfd = scomm_sock_listen(&ss, len, err, sizeof(err));
    if (c->lfd < 0) {
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1, "tcp: %s", err);
        return SCOMM_ERR_SYSTEM;
    }
    scomm_sock_addr_str(&ss, w->info[w->rank].tcp_addr, SCOMM_ADDR_MAX,
                        NULL);
    port = scomm_sock_local_port(c->lfd);
    w->info[w->rank].tcp_port = (uint16_t)port;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->discard = malloc(TCP_DISCARD_SIZE);
    if ((c->epfd < 0) || (c->discard == NULL)) {
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1, "tcp: epoll_create1: %s",
                         strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    scomm_debug(SCOMM_SUB_TCP, "listening on %s:%d",
                w->info[w->rank].tcp_addr, port);
    return SCOMM_OK;
}

static int tcp_can_reach(void *vctx, int peer)
{
    tcp_ctx_t *c = vctx;

    return (c->lfd >= 0) && (c->w->info[peer].tcp_port != 0);
}

/* ---- connection setup ---------------------------------------------------- */

static void tcp_put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* same-endian peers: checked through the magic */
}

static uint32_t tcp_get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

void scomm_tcp_hello_encode(uint8_t *buf, int rank, int idx,
                            const char *token)
{
    size_t tlen = strnlen(token, SCOMM_TOKEN_MAX - 1);

    memset(buf, 0, TCP_HELLO_SIZE);
    tcp_put32(buf, TCP_MAGIC);
    tcp_put32(buf + 4, SCOMM_PROTOCOL_VERSION);
    tcp_put32(buf + 8, (uint32_t)rank);
    tcp_put32(buf + 12, (uint32_t)idx);
    tcp_put32(buf + 16, (uint32_t)tlen);
    memcpy(buf + 20, token, tlen);
}

static void tcp_encode_hello(tcp_ctx_t *c, uint8_t *buf, int idx)
{
    scomm_tcp_hello_encode(buf, c->w->rank, idx, c->w->token);
}

int scomm_tcp_hello_decode(const uint8_t *buf, size_t len, int *rank,
                           int *idx, char *token, size_t toklen, char *why,
                           size_t whylen)
{
    uint32_t tlen;

    if (len != TCP_HELLO_SIZE) {
        snprintf(why, whylen, "hello of %zu bytes, expected %d", len,
                 TCP_HELLO_SIZE);
        return -1;
    }
    if (tcp_get32(buf) != TCP_MAGIC) {
        snprintf(why, whylen, "not a scomm connection");
        return -1;
    }
    if (tcp_get32(buf + 4) != SCOMM_PROTOCOL_VERSION) {
        snprintf(why, whylen, "protocol version %u, expected %d",
                 tcp_get32(buf + 4), SCOMM_PROTOCOL_VERSION);
        return -1;
    }
    *rank = (int)tcp_get32(buf + 8);
    *idx  = (int)tcp_get32(buf + 12);
    tlen  = tcp_get32(buf + 16);
    if ((tlen >= SCOMM_TOKEN_MAX) || ((size_t)tlen >= toklen) ||
        ((size_t)tlen > len - 20)) {
        snprintf(why, whylen, "token length %u out of range", tlen);
        return -1;
    }
    memcpy(token, buf + 20, tlen);
    token[tlen] = '\0';
    return 0;
}

/* Check an accepted connection's HELLO; returns the peer rank and socket
 * index, or -1 with a reason. */
static int tcp_check_hello(tcp_ctx_t *c, int fd, const uint8_t *buf,
                           int *idx_p, char *why, size_t whylen)
{
    scomm_world_t *w = c->w;
    char token[SCOMM_TOKEN_MAX];
    int rank, idx;

    if (scomm_tcp_hello_decode(buf, TCP_HELLO_SIZE, &rank, &idx, token,
                               sizeof(token), why, whylen) != 0) {
        return -1;
    }
    if (!scomm_secret_equal(token, w->token)) {
        snprintf(why, whylen, "wrong job token");
        return -1;
    }
    if ((rank < 0) || (rank >= w->rank) || (c->by_rank[rank] == NULL) ||
        (idx < 0) || (idx >= c->nsocks)) {
        snprintf(why, whylen, "claims rank %d socket %d, not expected here",
                 rank, idx);
        return -1;
    }
    if (c->by_rank[rank]->socks[idx].fd >= 0) {
        snprintf(why, whylen, "rank %d socket %d is already connected", rank,
                 idx);
        return -1;
    }
    if (scomm_sock_peer_is(fd, w->info[rank].tcp_addr, rank, why,
                           whylen) != 0) {
        return -1;
    }
    *idx_p = idx;
    return rank;
}

static void tcp_sock_attach(tcp_ctx_t *c, tcp_peer_t *p, int idx, int fd)
{
    tcp_sock_t *s = &p->socks[idx];
    struct epoll_event ev;

    s->fd = fd;
    p->last_heard = scomm_now_ns();
    scomm_sock_tune(fd, c->w->cfg.tcp_sockbuf);
    memset(&ev, 0, sizeof(ev));
    ev.events   = EPOLLIN;
    ev.data.ptr = s;
    epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* scomm_sock_accept_hellos callback: attach a checked incoming socket. */
static int tcp_on_hello(void *arg, int fd, const uint8_t *hello)
{
    tcp_ctx_t *c = arg;
    char why[200];
    int rank, idx;

    rank = tcp_check_hello(c, fd, hello, &idx, why, sizeof(why));
    if (rank < 0) {
        scomm_warn(SCOMM_SUB_TCP, "refused a connection: %s", why);
        return 0;
    }
    tcp_sock_attach(c, c->by_rank[rank], idx, fd);
    return 1;
}

static scomm_status_t tcp_connect(void *vctx, const int *peers, int npeers,
                                  uint64_t deadline)
{
    tcp_ctx_t *c     = vctx;
    scomm_world_t *w = c->w;
    struct sockaddr_storage ss;
    uint8_t hello[TCP_HELLO_SIZE];
    socklen_t sslen;
    char err[256];
    int expect = 0, got, i, j, fd, rc;

    c->by_rank = calloc((size_t)w->size, sizeof(*c->by_rank));
    c->peers   = calloc((size_t)(npeers > 0 ? npeers : 1), sizeof(*c->peers));
    if ((c->by_rank == NULL) || (c->peers == NULL)) {
        return SCOMM_ERR_NO_MEMORY;
    }
    for (i = 0; i < npeers; i++) {
        tcp_peer_t *p = &c->peers[i];

        p->rank   = peers[i];
        p->nsocks = c->nsocks;
        p->socks  = calloc((size_t)c->nsocks, sizeof(*p->socks));
        if (p->socks == NULL) {
            return SCOMM_ERR_NO_MEMORY;
        }
        for (j = 0; j < c->nsocks; j++) {
            p->socks[j].fd   = -1;
            p->socks[j].peer = peers[i];
            p->socks[j].idx  = j;
            scomm_list_init(&p->socks[j].sendq);
        }
        c->by_rank[peers[i]] = p;
        c->npeers++;
        if (peers[i] < w->rank) {
            expect += c->nsocks;
        }
    }
    /* Outgoing: the kernel completes handshakes into the peer's backlog,
     * so connecting to all higher ranks first cannot deadlock. */
    for (i = 0; i < npeers; i++) {
        tcp_peer_t *p = &c->peers[i];

        if (p->rank < w->rank) {
            continue;
        }
        if (scomm_sock_resolve(w->info[p->rank].tcp_addr,
                               w->info[p->rank].tcp_port, &ss, &sslen, err,
                               sizeof(err)) != 0) {
            scomm_world_fail(w, SCOMM_ERR_SYSTEM, p->rank,
                             "tcp: address of rank %d: %s", p->rank, err);
            return SCOMM_ERR_SYSTEM;
        }
        for (j = 0; j < c->nsocks; j++) {
            rc = scomm_sock_connect(&ss, sslen, deadline, 1, &fd);
            if (rc == SCOMM_SOCK_OK) {
                tcp_encode_hello(c, hello, j);
                rc = scomm_sock_write_all(fd, hello, sizeof(hello),
                                          deadline);
            }
            if (rc != SCOMM_SOCK_OK) {
                scomm_world_fail(w, (rc == SCOMM_SOCK_TIMEOUT)
                                        ? SCOMM_ERR_TIMED_OUT
                                        : SCOMM_ERR_PEER_LOST,
                                 p->rank, "tcp: cannot connect to rank %d at "
                                 "%s:%d: %s", p->rank,
                                 w->info[p->rank].tcp_addr,
                                 (int)w->info[p->rank].tcp_port,
                                 (rc == SCOMM_SOCK_TIMEOUT) ? "timed out"
                                                            : strerror(errno));
                return (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                                  : SCOMM_ERR_PEER_LOST;
            }
            tcp_sock_attach(c, p, j, fd);
        }
    }
    /* Incoming: accept and check HELLOs until every lower rank's sockets
     * are in; strays are closed and the wait goes on. */
    got = scomm_sock_accept_hellos(c->lfd, TCP_HELLO_SIZE, expect, deadline,
                                   tcp_on_hello, c);
    if (got < expect) {
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, -1,
                         "tcp: timed out waiting for %d of %d incoming "
                         "connections", expect - got, expect);
        return SCOMM_ERR_TIMED_OUT;
    }
    /* Every peer is connected: strays from now on are refused by the
     * kernel, as nothing listens any more. */
    close(c->lfd);
    c->lfd = -1;
    return SCOMM_OK;
}

/* ---- sending ------------------------------------------------------------- */

static tcp_sitem_t *tcp_item_new(uint8_t type)
{
    tcp_sitem_t *it = calloc(1, sizeof(*it));

    if (it != NULL) {
        it->hdr.type = type;
    }
    return it;
}

static void tcp_queue(tcp_ctx_t *c, tcp_sock_t *s, tcp_sitem_t *it)
{
    if (scomm_list_empty(&s->sendq)) {
        c->nsending++;
    }
    scomm_list_push_back(&s->sendq, &it->list);
}

static void tcp_item_done(tcp_ctx_t *c, tcp_sitem_t *it)
{
    scomm_req_t *r;

    if (it->req_id != 0) {
        r = scomm_req_lookup(c->w, it->req_id);
        if ((r != NULL) && (r->tl_u64[0] > 0) && (--r->tl_u64[0] == 0)) {
            r->xfer = r->len;
            scomm_req_complete(r, SCOMM_OK);
        }
    }
    free(it->owned);
    free(it);
}

static int tcp_read(tcp_ctx_t *c, tcp_sock_t *s);

static int tcp_fail_sock(tcp_ctx_t *c, tcp_sock_t *s, const char *what,
                         int err)
{
    scomm_world_t *w = c->w;
    tcp_peer_t *p    = c->by_rank[s->peer];

    /* Socket 0 first: an ABORT the peer sent before it left names the
     * first cause, which then wins over its leaving (note 5). */
    if (!c->failing && (p != NULL) && (p->socks != NULL) &&
        (p->socks[0].fd >= 0) && (p->socks[0].fd != s->fd)) {
        c->failing = 1;
        (void)tcp_read(c, &p->socks[0]);
        c->failing = 0;
    }

    scomm_world_fail(w, SCOMM_ERR_PEER_LOST, s->peer,
                     "rank %d (tcp %s:%d) lost: %s%s%s", s->peer,
                     w->info[s->peer].tcp_addr,
                     (int)w->info[s->peer].tcp_port, what,
                     (err != 0) ? ": " : "", (err != 0) ? strerror(err) : "");
    return 0;
}

/* Write as much of the socket's queue as the kernel takes. */
static int tcp_flush(tcp_ctx_t *c, tcp_sock_t *s)
{
    struct iovec iov[2];
    struct msghdr msg;
    tcp_sitem_t *it;
    ssize_t n;
    int events = 0, cnt;
    uint64_t hl = sizeof(tcp_hdr_t);

    while (!scomm_list_empty(&s->sendq)) {
        it  = scomm_container_of(s->sendq.next, tcp_sitem_t, list);
        cnt = 0;
        if (it->sent < hl) {
            iov[cnt].iov_base = (char *)&it->hdr + it->sent;
            iov[cnt].iov_len  = hl - it->sent;
            cnt++;
        }
        if (it->plen > 0) {
            uint64_t off = (it->sent > hl) ? it->sent - hl : 0;

            iov[cnt].iov_base = (char *)it->payload + off;
            iov[cnt].iov_len  = (size_t)SCOMM_MIN(it->plen - off,
                                                  SCOMM_TCP_IO_MAX);
            cnt++;
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov    = iov;
        msg.msg_iovlen = (size_t)cnt;
        /* Never SIGPIPE the application when a peer is gone. */
        n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if ((errno == EAGAIN) || (errno == EINTR)) {
                break;
            }
            return tcp_fail_sock(c, s, "send failed", errno);
        }
        it->sent += (uint64_t)n;
        if (it->sent < hl + it->plen) {
            continue;
        }
        scomm_list_del(&it->list);
        tcp_item_done(c, it);
        events++;
        if (scomm_list_empty(&s->sendq)) {
            c->nsending--;
        }
    }
    return events;
}

static scomm_status_t tcp_send(void *vctx, scomm_req_t *req)
{
    tcp_ctx_t *c  = vctx;
    tcp_peer_t *p = c->by_rank[req->peer];
    tcp_sitem_t *it;

    it = tcp_item_new((req->len <= c->eager_max) ? TCP_EAGER : TCP_RTS);
    if (it == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    it->hdr.ctx = req->ctx;
    it->hdr.tag = req->tag;
    it->hdr.len = req->len;
    it->hdr.id  = req->id;
    if (it->hdr.type == TCP_EAGER) {
        it->payload      = req->buf;
        it->plen         = req->len;
        it->req_id       = req->id;
        req->tl_u64[0]   = 1;
    }
    tcp_queue(c, &p->socks[0], it);
    tcp_flush(c, &p->socks[0]);
    return SCOMM_OK;
}

/* The receiver matched our RTS: stripe the payload over the sockets. */
static void tcp_on_cts(tcp_ctx_t *c, tcp_peer_t *p, const tcp_hdr_t *h)
{
    scomm_req_t *r = scomm_req_lookup(c->w, h->id);
    uint64_t stripes, stripe, off = 0, len;
    tcp_sitem_t *it;
    int i;

    if ((r == NULL) || (r->type != SCOMM_REQ_SEND)) {
        return;
    }
    if (h->aux == 0) {
        scomm_req_truncated(r, p->rank);
        return;
    }
    stripes = SCOMM_MIN((uint64_t)p->nsocks,
                        (r->len + TCP_STRIPE_MIN - 1) / TCP_STRIPE_MIN);
    stripes = SCOMM_MAX(stripes, 1);
    stripe  = SCOMM_ALIGN_UP((r->len + stripes - 1) / stripes, 4096);
    r->tl_u64[0] = 0;
    for (i = 0; (uint64_t)i < stripes && off < r->len; i++) {
        r->tl_u64[0]++;
        off += SCOMM_MIN(stripe, r->len - off);
    }
    off = 0;
    for (i = 0; (uint64_t)i < stripes && off < r->len; i++) {
        len = SCOMM_MIN(stripe, r->len - off);
        it  = tcp_item_new(TCP_DATA);
        if (it == NULL) {
            scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, p->rank,
                             "tcp: out of memory");
            return;
        }
        it->hdr.id   = h->aux;
        it->hdr.aux  = off;
        it->hdr.len  = len;
        it->payload  = (const char *)r->buf + off;
        it->plen     = len;
        it->req_id   = r->id;
        tcp_queue(c, &p->socks[i], it);
        tcp_flush(c, &p->socks[i]);
        off += len;
    }
}

static scomm_status_t tcp_rndv_start(void *vctx, int peer, scomm_req_t *rreq,
                                     const scomm_tl_cookie_t *cookie,
                                     scomm_status_t reject)
{
    tcp_ctx_t *c  = vctx;
    tcp_peer_t *p = c->by_rank[peer];
    tcp_sitem_t *it;

    (void)reject;
    it = tcp_item_new(TCP_CTS);
    if (it == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    it->hdr.id  = cookie->u64[0];
    it->hdr.aux = (rreq != NULL) ? rreq->id : 0;
    if (rreq != NULL) {
        rreq->tl_u64[1] = 0; /* bytes received */
        if (rreq->xfer == 0) {
            scomm_req_complete(rreq, SCOMM_OK);
        }
    }
    tcp_queue(c, &p->socks[0], it);
    tcp_flush(c, &p->socks[0]);
    return SCOMM_OK;
}

/* ---- receiving ----------------------------------------------------------- */

static int tcp_bad(tcp_ctx_t *c, tcp_sock_t *s, const char *what)
{
    scomm_world_fail(c->w, SCOMM_ERR_PROTOCOL, s->peer,
                     "tcp: malformed message from rank %d: %s", s->peer,
                     what);
    return -1;
}

int scomm_tcp_hdr_check(const void *hdr40, int sock_idx, uint64_t eager_max,
                        char *why, size_t whylen)
{
    tcp_hdr_t h;

    memcpy(&h, hdr40, sizeof(h));
    switch (h.type) {
    case TCP_EAGER:
        if ((sock_idx != 0) || (h.len > eager_max)) {
            snprintf(why, whylen, "eager message too long or off socket 0");
            return -1;
        }
        return 0;
    case TCP_RTS:
        if (sock_idx != 0) {
            snprintf(why, whylen, "RTS off socket 0");
            return -1;
        }
        return 0;
    case TCP_CTS:
    case TCP_DATA:
    case TCP_BYE:
    case TCP_HEARTBEAT:
        return 0;
    case TCP_ABORT:
        if (h.len > SCOMM_TCP_ABORT_MAX) {
            snprintf(why, whylen, "abort message too long");
            return -1;
        }
        return 0;
    default:
        snprintf(why, whylen, "unknown message type");
        return -1;
    }
}

static void tcp_on_payload_done(tcp_ctx_t *c, tcp_sock_t *s);

/* A whole header arrived: decide where its payload goes. */
static int tcp_on_header(tcp_ctx_t *c, tcp_sock_t *s)
{
    tcp_hdr_t *h = &s->hdr;
    scomm_tl_cookie_t cookie;
    scomm_req_t *r;
    char *dst, why[64];

    s->in_payload = 0;
    s->need       = 0;
    s->got        = 0;
    s->discard    = 0;
    s->dst        = NULL;
    if (scomm_tcp_hdr_check(h, s->idx, c->eager_max, why, sizeof(why)) != 0) {
        return tcp_bad(c, s, why);
    }
    switch (h->type) {
    case TCP_EAGER:
        dst = scomm_p2p_eager_begin(c->w, s->peer, h->ctx, h->tag,
                                    (size_t)h->len, &s->rx);
        if ((dst == NULL) && (h->len > 0)) {
            scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, s->peer,
                             "tcp: out of memory for a message from rank %d",
                             s->peer);
            return -1;
        }
        if (s->rx.req != NULL) {
            s->rx.req->xfer = (size_t)h->len;
        }
        s->dst        = dst;
        s->need       = h->len;
        s->in_payload = 1;
        if (h->len == 0) {
            s->in_payload = 0;
            scomm_p2p_eager_end(c->w, s->peer, &s->rx);
        }
        return 1;
    case TCP_RTS:
        memset(&cookie, 0, sizeof(cookie));
        cookie.u64[0] = h->id;
        cookie.u64[2] = h->len;
        scomm_p2p_rts(c->w, s->peer, h->ctx, h->tag, (size_t)h->len, &cookie);
        return 1;
    case TCP_CTS:
        tcp_on_cts(c, c->by_rank[s->peer], h);
        return 1;
    case TCP_DATA:
        r = scomm_req_lookup(c->w, h->id);
        s->need       = h->len;
        s->in_payload = (h->len > 0);
        s->rreq_id    = h->id;
        if ((r == NULL) || (r->type != SCOMM_REQ_RECV)) {
            s->discard = 1; /* the receive was released: drain */
            return 1;
        }
        if ((h->aux > r->xfer) || (h->len > r->xfer - h->aux)) {
            return tcp_bad(c, s, "data stripe outside the message");
        }
        s->dst = (char *)r->buf + h->aux;
        return 1;
    case TCP_BYE:
        scomm_world_peer_closed(c->w, s->peer);
        return 1;
    case TCP_HEARTBEAT:
        return 1; /* tcp_read already noted the sign of life */
    case TCP_ABORT:
        s->stage = malloc(h->len + 1);
        if (s->stage == NULL) {
            return -1;
        }
        s->dst        = s->stage;
        s->need       = h->len;
        s->in_payload = 1;
        if (h->len == 0) {
            /* No text follows: reading 0 bytes would look like EOF. */
            tcp_on_payload_done(c, s);
        }
        return 1;
    default:
        return tcp_bad(c, s, "unknown message type");
    }
}

static void tcp_on_payload_done(tcp_ctx_t *c, tcp_sock_t *s)
{
    scomm_req_t *r;

    s->in_payload = 0;
    switch (s->hdr.type) {
    case TCP_EAGER:
        scomm_p2p_eager_end(c->w, s->peer, &s->rx);
        break;
    case TCP_DATA:
        if (s->discard) {
            break;
        }
        r = scomm_req_lookup(c->w, s->rreq_id);
        if (r != NULL) {
            r->tl_u64[1] += s->hdr.len;
            if (r->tl_u64[1] >= r->xfer) {
                scomm_req_complete(r, SCOMM_OK);
            }
        }
        break;
    case TCP_ABORT:
        s->stage[s->hdr.len] = '\0';
        scomm_world_fail(c->w, scomm_status_from_peer(s->hdr.tag),
                         (int)(int32_t)s->hdr.aux32, "%s", s->stage);
        free(s->stage);
        s->stage = NULL;
        break;
    }
}

/* Read what the socket has; returns events, or -1 after a failure. */
static int tcp_read(tcp_ctx_t *c, tcp_sock_t *s)
{
    int events = 0;
    ssize_t n;
    size_t want;

    c->by_rank[s->peer]->last_heard = scomm_now_ns();
    for (;;) {
        if (!s->in_payload) {
            n = recv(s->fd, (char *)&s->hdr + s->hdr_got,
                     sizeof(tcp_hdr_t) - s->hdr_got, 0);
            if (n <= 0) {
                break;
            }
            s->hdr_got += (size_t)n;
            if (s->hdr_got < sizeof(tcp_hdr_t)) {
                continue;
            }
            s->hdr_got = 0;
            if (tcp_on_header(c, s) < 0) {
                return -1;
            }
            events++;
            continue;
        }
        want = (size_t)SCOMM_MIN(s->need - s->got, SCOMM_TCP_IO_MAX);
        if (s->discard) {
            want = SCOMM_MIN(want, (size_t)TCP_DISCARD_SIZE);
            n    = recv(s->fd, c->discard, want, 0);
        } else {
            n = recv(s->fd, s->dst + s->got, want, 0);
        }
        if (n <= 0) {
            break;
        }
        s->got += (uint64_t)n;
        if (s->got == s->need) {
            tcp_on_payload_done(c, s);
            events++;
        }
    }
    if ((n == 0) && c->w->peers[s->peer].closed) {
        /* Orderly close after BYE: stop watching this socket. */
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        return events;
    }
    if ((n == 0) && (s->idx != 0) && !s->in_payload && (s->hdr_got == 0)) {
        /* A peer closing cleanly queues its BYE on socket 0 and then
         * half-closes every socket (tcp_linger), so the FIN of this socket
         * can overtake a BYE still on its way on socket 0. Between
         * messages an EOF here decides nothing: socket 0 does (BYE then
         * EOF is a clean close; EOF without a BYE, a loss). A peer that
         * dies closes socket 0 too; a cut of this socket alone fails the
         * next send on it. */
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        return events;
    }
    if (n == 0) {
        return tcp_fail_sock(c, s, "connection closed by peer", 0) - 1;
    }
    if ((errno != EAGAIN) && (errno != EINTR)) {
        return tcp_fail_sock(c, s, "receive failed", errno) - 1;
    }
    return events;
}

static int tcp_progress(void *vctx)
{
    tcp_ctx_t *c = vctx;
    struct epoll_event evs[TCP_MAX_EVENTS];
    int i, j, k, n, events = 0, r;

    if (c->npeers == 0) {
        return 0;
    }
    if (c->nsending > 0) {
        for (i = 0; i < c->npeers; i++) {
            for (j = 0; j < c->peers[i].nsocks; j++) {
                if (!scomm_list_empty(&c->peers[i].socks[j].sendq)) {
                    events += tcp_flush(c, &c->peers[i].socks[j]);
                }
            }
        }
    }
    n = epoll_wait(c->epfd, evs, TCP_MAX_EVENTS, 0);
    for (k = 0; k < n; k++) {
        r = tcp_read(c, (tcp_sock_t *)evs[k].data.ptr);
        if (r < 0) {
            break;
        }
        events += r;
    }
    return events;
}

static int tcp_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    tcp_ctx_t *c = vctx;
    int i, j, n = 0;

    if ((c->epfd < 0) || (max < 1)) {
        return 0;
    }
    fds[n].fd      = c->epfd;
    fds[n].events  = POLLIN;
    fds[n].revents = 0;
    n++;
    for (i = 0; (i < c->npeers) && (c->nsending > 0); i++) {
        for (j = 0; (j < c->peers[i].nsocks) && (n < max); j++) {
            if (!scomm_list_empty(&c->peers[i].socks[j].sendq)) {
                fds[n].fd      = c->peers[i].socks[j].fd;
                fds[n].events  = POLLOUT;
                fds[n].revents = 0;
                n++;
            }
        }
    }
    return n;
}

static void tcp_query(void *vctx, scomm_tl_attr_t *attr)
{
    tcp_ctx_t *c = vctx;

    attr->caps      = scomm_tl_tcp_ops.caps;
    attr->eager_max = c->eager_max;
}

/* Queue a header-only message on every peer's socket 0 and push the
 * queues out within a short deadline (nobody progresses a closing or
 * failed world). */
static void tcp_broadcast_push(tcp_ctx_t *c, uint8_t type, int32_t tag,
                               int32_t rank, const char *msg, int skip)
{
    uint64_t deadline = scomm_deadline_ms(200);
    size_t len        = (msg != NULL) ? strlen(msg) : 0;
    tcp_sitem_t *it;
    tcp_sock_t *s;
    int i;

    for (i = 0; i < c->npeers; i++) {
        s = &c->peers[i].socks[0];
        if ((s->fd < 0) || (c->peers[i].rank == skip) ||
            c->w->peers[c->peers[i].rank].closed) {
            continue;
        }
        it = tcp_item_new(type);
        if (it == NULL) {
            continue;
        }
        if (len > 0) {
            it->owned = malloc(len);
            if (it->owned == NULL) {
                free(it);
                continue;
            }
            memcpy(it->owned, msg, len);
        }
        it->payload   = it->owned;
        it->plen      = len;
        it->hdr.len   = len;
        it->hdr.tag   = tag;
        it->hdr.aux32 = (uint32_t)rank;
        tcp_queue(c, s, it);
    }
    for (i = 0; i < c->npeers; i++) {
        s = &c->peers[i].socks[0];
        while ((s->fd >= 0) && !scomm_list_empty(&s->sendq) &&
               (scomm_now_ns() < deadline)) {
            struct pollfd pfd = {s->fd, POLLOUT, 0};

            if (tcp_flush(c, s) < 0) {
                break;
            }
            if (!scomm_list_empty(&s->sendq)) {
                (void)poll(&pfd, 1, 10);
            }
        }
    }
}

/* One HEARTBEAT to every peer (the wait loop calls this at most every half
 * interval); any bytes a peer sends count as a sign of life too. */
static void tcp_heartbeat(void *vctx, uint64_t now)
{
    tcp_ctx_t *c = vctx;
    tcp_sitem_t *it;
    tcp_sock_t *s;
    int i;

    (void)now; /* the wait loop paces the calls */
    for (i = 0; i < c->npeers; i++) {
        s = &c->peers[i].socks[0];
        if ((s->fd < 0) || c->w->peers[c->peers[i].rank].closed) {
            continue;
        }
        it = tcp_item_new(TCP_HEARTBEAT);
        if (it != NULL) {
            tcp_queue(c, s, it);
            tcp_flush(c, s);
        }
    }
}

static uint64_t tcp_last_heard(void *vctx, int peer)
{
    tcp_ctx_t *c = vctx;

    if ((c->by_rank == NULL) || (c->by_rank[peer] == NULL)) {
        return 0;
    }
    return c->by_rank[peer]->last_heard;
}

static void tcp_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    tcp_ctx_t *c = vctx;

    if (c->peers == NULL) {
        return;
    }
    tcp_broadcast_push(c, TCP_ABORT, info->status, info->failed_rank,
                       info->msg, info->failed_rank);
}

/*
 * A clean close without resets: closing a socket that still holds unread
 * bytes makes the kernel send RST instead of FIN, and the peer may then
 * lose what it had not read yet from us (our last messages and the BYE)
 * and report us lost. So: half-close every socket (FIN after the BYE),
 * then read and drop whatever arrives until each peer closes too, or for
 * at most TCP_LINGER_MS in all.
 */
static void tcp_linger(tcp_ctx_t *c)
{
    uint64_t deadline = scomm_deadline_ms(TCP_LINGER_MS);
    struct pollfd pfd[64];
    char buf[4096];
    int i, j, n, open_n;
    ssize_t r;

    for (i = 0; i < c->npeers; i++) {
        for (j = 0; (c->peers[i].socks != NULL) && (j < c->nsocks); j++) {
            if (c->peers[i].socks[j].fd >= 0) {
                (void)shutdown(c->peers[i].socks[j].fd, SHUT_WR);
            }
        }
    }
    do {
        open_n = 0;
        n      = 0;
        for (i = 0; i < c->npeers; i++) {
            for (j = 0; (c->peers[i].socks != NULL) && (j < c->nsocks);
                 j++) {
                tcp_sock_t *s = &c->peers[i].socks[j];

                if (s->fd < 0) {
                    continue;
                }
                while ((r = recv(s->fd, buf, sizeof(buf), 0)) > 0) {
                }
                if ((r == 0) || ((errno != EAGAIN) && (errno != EINTR))) {
                    close(s->fd); /* peer closed (or failed): done */
                    s->fd = -1;
                    continue;
                }
                open_n++;
                if (n < 64) {
                    pfd[n].fd      = s->fd;
                    pfd[n].events  = POLLIN;
                    pfd[n].revents = 0;
                    n++;
                }
            }
        }
        if ((open_n > 0) && (scomm_now_ns() < deadline)) {
            (void)poll(pfd, (nfds_t)n, 5);
        }
    } while ((open_n > 0) && (scomm_now_ns() < deadline));
}

static void tcp_fini(void *vctx)
{
    tcp_ctx_t *c = vctx;
    scomm_list_t *e;
    int i, j;

    if (c == NULL) {
        return;
    }
    if (c->peers != NULL) {
        /* After a fault no BYE (we are not leaving cleanly), but the same
         * half-close and drain (note 5). */
        if (atomic_load(&c->w->fault.status) == 0) {
            tcp_broadcast_push(c, TCP_BYE, 0, c->w->rank, NULL, -1);
        }
        tcp_linger(c);
    }
    for (i = 0; i < c->npeers; i++) {
        for (j = 0; (c->peers[i].socks != NULL) && (j < c->nsocks); j++) {
            tcp_sock_t *s = &c->peers[i].socks[j];

            while ((e = scomm_list_pop_front(&s->sendq)) != NULL) {
                tcp_sitem_t *it = scomm_container_of(e, tcp_sitem_t, list);

                free(it->owned);
                free(it);
            }
            free(s->stage);
            if ((s->in_payload) && (s->hdr.type == TCP_EAGER) &&
                (s->rx.ux != NULL)) {
                free(s->rx.ux->data);
                free(s->rx.ux);
            }
            free(s->rx.scratch);
            if (s->fd >= 0) {
                close(s->fd);
            }
        }
        free(c->peers[i].socks);
    }
    if (c->lfd >= 0) {
        close(c->lfd);
    }
    if (c->epfd >= 0) {
        close(c->epfd);
    }
    free(c->discard);
    free(c->peers);
    free(c->by_rank);
    free(c);
}

const scomm_tl_ops_t scomm_tl_tcp_ops = {
    .name        = "tcp",
    .caps        = SCOMM_TL_CAP_KERNEL_COPY,
    .init        = tcp_init,
    .query       = tcp_query,
    .can_reach   = tcp_can_reach,
    .connect     = tcp_connect,
    .send        = tcp_send,
    .rndv_start  = tcp_rndv_start,
    .progress    = tcp_progress,
    .poll_fds    = tcp_poll_fds,
    .sleep_begin = scomm_tl_noop,
    .sleep_end   = scomm_tl_noop,
    .check_peers = scomm_tl_noop,
    .heartbeat   = tcp_heartbeat,
    .last_heard  = tcp_last_heard,
    .send_abort  = tcp_send_abort,
    .mem_reg     = scomm_tl_mem_reg_unsupported,
    .mem_dereg   = scomm_tl_mem_dereg_none,
    .fini        = tcp_fini,
};

const scomm_module_t scomm_module_tcp = {
    .name    = "tcp",
    .params  = tcp_params,
    .nparams = SCOMM_ARRAY_SIZE(tcp_params),
    .tl      = &scomm_tl_tcp_ops,
};
