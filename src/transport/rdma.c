/*
 * rdma.c - the RDMA verbs transport (libibverbs from rdma-core): one RC
 * queue pair per peer, for peers on other hosts that publish RDMA in the
 * rank table (SCOMM_TRANSPORTS=...,rdma,...). docs/rdma.md has the design.
 *
 * Built with SCOMM_HAVE_IBVERBS (CMake finds libibverbs); without it this
 * file compiles to a transport whose init fails with SCOMM_ERR_UNSUPPORTED.
 * With it, init looks for a device at run time and fails the same way,
 * naming the missing device, when there is none (the core then uses the
 * other transports allowed, or fails scomm_init if rdma was the only one).
 *
 * Connection setup (the bootstrap wire format is unchanged): each rank
 * listens on a TCP "side channel" and publishes its port in the low 16 bits
 * of rankinfo.flags with SCOMM_RANKINFO_RDMA set (its address is the
 * rank's tcp_addr, filled here when tcp is not in use). The lower rank of
 * a pair connects; both sides send a HELLO (token, rank, qpn, psn, lid,
 * gid, mtu, receive depth), check the other's, move the QP
 * RESET -> INIT -> RTR -> RTS (rdma_fsm.h) and trade one READY byte. The
 * socket then stays open for BYE, ABORT and HEARTBEAT, and its EOF is how
 * a dead peer process is seen at once.
 *
 *   small (<= SCOMM_RDMA_EAGER_MAX): SEND of header + payload from a bounce
 *                                    buffer into a pre-posted receive
 *   large:  sender  RTS(id, len) ------------------------------> receiver
 *           sender <---------- CTS(id, addr, rkey, imm, len)   (matched,
 *                                                    buffer registered)
 *           sender  RDMA WRITE ... WRITE_WITH_IMM(imm) -------> straight
 *                                                    into the buffer; the
 *                                                    immediate completes it
 *
 * Invariants:
 *  1. Credits: a SEND or WRITE_WITH_IMM is posted only while the peer has a
 *     receive buffer for it (credits); data needs two, so the last one is
 *     always left for a CREDIT message; reposted receives are returned in
 *     every header and by CREDIT once half the queue is owed.
 *  2. Messages to a peer leave in queue order (one FIFO per peer), so
 *     matching stays non-overtaking per (peer, ctx, tag).
 *  3. Every received header passes scomm_rdma_hdr_check before use; a
 *     CTS's length must equal the send's; an immediate must name a live
 *     rendezvous slot of the right generation.
 *  4. A completion with an error status, an async QP error or the side
 *     channel's EOF fails the world with SCOMM_ERR_PEER_LOST naming the
 *     rank (unless it said BYE first).
 *  5. Buffers are registered through the registration cache
 *     (rdma_regcache.h); a range the cache cannot take is registered
 *     privately for that message.
 *  6. Nothing waits without a deadline: connect uses the caller's, fini
 *     drains for at most RDMA_LINGER_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/scomm_int.h"
#include "rdma_fsm.h"
#include "rdma_regcache.h"
#include "rdma_wire.h"

#ifndef SCOMM_HAVE_IBVERBS

/* ---- built without libibverbs ------------------------------------------- */

static scomm_status_t rdma_init(scomm_world_t *w, void **ctx_p)
{
    (void)w;
    *ctx_p = NULL;
    scomm_set_thread_error("unavailable: this build has no RDMA "
                           "device support (libibverbs was not found when "
                           "scomm was configured)");
    return SCOMM_ERR_UNSUPPORTED;
}

static int rdma_can_reach(void *vctx, int peer)
{
    (void)vctx;
    (void)peer;
    return 0;
}

static scomm_status_t rdma_connect(void *vctx, const int *peers, int npeers,
                                   uint64_t deadline)
{
    (void)vctx;
    (void)peers;
    (void)deadline;
    return (npeers == 0) ? SCOMM_OK : SCOMM_ERR_UNSUPPORTED;
}

static scomm_status_t rdma_send(void *vctx, scomm_req_t *req)
{
    (void)vctx;
    (void)req;
    return SCOMM_ERR_UNSUPPORTED;
}

static scomm_status_t rdma_rndv_start(void *vctx, int peer,
                                      scomm_req_t *rreq,
                                      const scomm_tl_cookie_t *cookie,
                                      scomm_status_t reject)
{
    (void)vctx;
    (void)peer;
    (void)rreq;
    (void)cookie;
    (void)reject;
    return SCOMM_ERR_UNSUPPORTED;
}

static int rdma_progress(void *vctx)
{
    (void)vctx;
    return 0;
}

static int rdma_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    (void)vctx;
    (void)fds;
    (void)max;
    return 0;
}

static void rdma_noop(void *vctx)
{
    (void)vctx;
}

static void rdma_heartbeat(void *vctx, uint64_t now)
{
    (void)vctx;
    (void)now;
}

static int rdma_suspects(void *vctx, uint64_t now, uint64_t stale_ns,
                         int *ranks, int max)
{
    (void)vctx;
    (void)now;
    (void)stale_ns;
    (void)ranks;
    (void)max;
    return 0;
}

static void rdma_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    (void)vctx;
    (void)info;
}

void scomm_tl_rdma_invalidate(scomm_world_t *w, const void *addr,
                              size_t len)
{
    (void)w;
    (void)addr;
    (void)len;
}

void scomm_tl_rdma_mem_known(scomm_world_t *w, const void *addr, size_t len)
{
    (void)w;
    (void)addr;
    (void)len;
}

#define rdma_sleep_begin rdma_noop
#define rdma_sleep_end   rdma_noop
#define rdma_fini        rdma_noop

#else /* SCOMM_HAVE_IBVERBS */

#include <arpa/inet.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/sock.h"

#define RDMA_LINGER_MS   200
#define RDMA_SQ_DEPTH    128
#define RDMA_CQ_BATCH    32
#define RDMA_WRITE_CHUNK ((uint64_t)1 << 30)
#define RDMA_RSLOTS_MAX  65536u
#define RDMA_MAX_EVENTS  32
#define RDMA_READY_BYTE  'R'

/* wr_id of a receive: odd, (peer index << 32) | (slot << 1) | 1; of a
 * send-side work request: the (even) address of its rdma_sitem_t. */
#define RDMA_WRID_RECV(_p, _s) \
    (((uint64_t)(_p) << 32) | ((uint64_t)(_s) << 1) | 1u)

typedef enum {
    RDMA_SI_MSG   = 1, /* SEND of a header (+ eager payload) */
    RDMA_SI_WRITE = 2  /* rendezvous WRITEs, the last with immediate */
} rdma_si_kind_t;

/* A registration: from the cache, or private to one message. */
typedef struct rdma_reg {
    scomm_rcache_region_t *cached;
    struct ibv_mr         *mr;
} rdma_reg_t;

typedef struct rdma_sitem {
    scomm_list_t     list;     /* peer's sendq, then its inflight list */
    int              kind;
    int              pidx;     /* index of the peer in ctx->peers */
    scomm_rdma_hdr_t hdr;
    const void      *payload;  /* EAGER payload (copied when posted) */
    uint64_t         req_id;   /* send request completed at the end, or 0 */
    uint32_t         sslot;    /* bounce slot of a posted MSG */
    uint32_t         wr_pending;
    int              posted_all;
    /* WRITE */
    const char      *src;
    uint64_t         raddr;
    uint32_t         rkey;
    uint32_t         imm;
    uint64_t         len;
    uint64_t         off;      /* bytes posted so far */
    rdma_reg_t       reg;
} rdma_sitem_t;

/* A rendezvous receive waiting for its WRITE_WITH_IMM. */
typedef struct rdma_rslot {
    uint64_t   rreq_id;   /* 0: free */
    uint16_t   gen;
    rdma_reg_t reg;
} rdma_rslot_t;

typedef struct rdma_peer {
    int              rank;
    int              idx;
    struct ibv_qp   *qp;
    scomm_rdma_fsm_t fsm;
    scomm_rdma_qpinfo_t local;
    int              sfd;          /* side channel */
    uint8_t          ctl[SCOMM_RDMA_CTL_SIZE + SCOMM_RDMA_ABORT_MAX + 1];
    size_t           ctl_got;
    int              bye;
    /* buffers: rq_depth receive slots, then nsslots bounce slots */
    char            *slab;
    struct ibv_mr   *slab_mr;
    uint32_t         rq_depth;
    uint32_t        *sfree;
    uint32_t         nsfree;
    uint32_t         sq_used;
    uint32_t         credits;      /* receives the peer has for us */
    uint32_t         credits_max;
    uint32_t         owed;         /* reposted receives not yet told */
    int              credit_queued;
    scomm_list_t     sendq;
    scomm_list_t     inflight;
    rdma_rslot_t    *rslots;
    uint32_t         nrslots;
    uint32_t        *rfree;
    uint32_t         nrfree;
    uint64_t         last_heard;
} rdma_peer_t;

typedef struct rdma_ctx {
    scomm_world_t            *w;
    struct ibv_context       *dev;
    struct ibv_pd            *pd;
    struct ibv_comp_channel  *chan;
    struct ibv_cq            *cq;
    struct ibv_port_attr      port_attr;
    char                      devname[64];
    int                       port;
    int                       gid_index;  /* -1: no GRH (InfiniBand) */
    union ibv_gid             gid;
    uint64_t                  eager_max;
    uint32_t                  rq_depth;
    uint32_t                  nsslots;
    size_t                    slot_size;
    uint64_t                  max_msg;
    int                       lfd;
    int                       epfd;
    int                       armed;
    int                       use_cache;  /* SCOMM_RDMA_REGCACHE: 0, 1, 2 */
    /* Ranges whose end scomm sees (scomm_mem_register, scomm_mem_alloc):
     * with use_cache 1 only these are cached, see rdma_reg_get. */
    struct {
        uintptr_t start;
        size_t    len;
    }                        *known;
    int                       nknown;
    int                       known_cap;
    scomm_rcache_t            rcache;
    int                       rcache_ok;
    rdma_peer_t              *peers;
    rdma_peer_t             **by_rank;
    int                       npeers;
    int                       nsending;   /* peers with a non-empty sendq */
} rdma_ctx_t;

/* ---- failures ------------------------------------------------------------ */

static void rdma_peer_lost(rdma_ctx_t *c, rdma_peer_t *p, const char *what,
                           int err)
{
    scomm_world_t *w = c->w;
    char detail[160];

    snprintf(detail, sizeof(detail), "%s%s%s", what, (err != 0) ? ": " : "",
             (err != 0) ? strerror(err) : "");
    if (p->fsm.state != SCOMM_RDMA_QP_CLOSED) {
        (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_ERROR, NULL, detail,
                                   NULL, 0);
    }
    scomm_world_fail(w, SCOMM_ERR_PEER_LOST, p->rank,
                     "rank %d (rdma %s port %d, side channel %s:%u) lost: %s",
                     p->rank, c->devname, c->port, w->info[p->rank].tcp_addr,
                     w->info[p->rank].flags & SCOMM_RANKINFO_PORT_MASK,
                     detail);
}

static void rdma_bad(rdma_ctx_t *c, rdma_peer_t *p, const char *what)
{
    scomm_world_fail(c->w, SCOMM_ERR_PROTOCOL, p->rank,
                     "rdma: malformed message from rank %d: %s", p->rank,
                     what);
}

/* ---- registrations ------------------------------------------------------- */

static int rdma_rc_reg(void *arg, void *addr, size_t len, void **handle,
                       uint32_t *lkey, uint32_t *rkey)
{
    rdma_ctx_t *c = arg;
    struct ibv_mr *mr;

    mr = ibv_reg_mr(c->pd, addr, len,
                    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (mr == NULL) {
        return -1;
    }
    *handle = mr;
    *lkey   = mr->lkey;
    *rkey   = mr->rkey;
    return 0;
}

static void rdma_rc_dereg(void *arg, void *handle)
{
    (void)arg;
    (void)ibv_dereg_mr(handle);
}

/* Whether [buf, buf + len) lies in one range scomm will see the end of.
 * A registration of any other memory may outlive its pages: scomm does
 * not interpose free/munmap, so the allocator could map new pages at the
 * same address while the cache still holds the old ones. */
static int rdma_known(const rdma_ctx_t *c, const void *buf, uint64_t len)
{
    uintptr_t p = (uintptr_t)buf;
    int i;

    for (i = 0; i < c->nknown; i++) {
        if ((p >= c->known[i].start) &&
            (p - c->known[i].start <= c->known[i].len) &&
            (len <= c->known[i].len - (p - c->known[i].start))) {
            return 1;
        }
    }
    return 0;
}

/* Register [buf, buf + len) for a local read (remote_write == 0: a send
 * source, maybe read-only) or a remote write (a receive buffer). */
static int rdma_reg_get(rdma_ctx_t *c, const void *buf, uint64_t len,
                        int remote_write, rdma_reg_t *reg)
{
    int rc = SCOMM_RCACHE_INVAL;

    memset(reg, 0, sizeof(*reg));
    if (c->rcache_ok &&
        ((c->use_cache >= 2) ||
         ((c->use_cache == 1) && rdma_known(c, buf, len)))) {
        rc = scomm_rcache_get(&c->rcache, buf, (size_t)len, &reg->cached);
        if (rc == SCOMM_RCACHE_OK) {
            return 0;
        }
    }
    /* Not cacheable now (limit held by regions in use, too big, caching
     * off, or read-only memory): a private registration. */
    reg->cached = NULL;
    reg->mr     = ibv_reg_mr(c->pd, (void *)buf, (size_t)SCOMM_MAX(len, 1),
                             remote_write ? (IBV_ACCESS_LOCAL_WRITE |
                                             IBV_ACCESS_REMOTE_WRITE)
                                          : 0);
    if (reg->mr == NULL) {
        scomm_debug(SCOMM_SUB_RDMA, "ibv_reg_mr of %llu bytes: %s (cache: "
                    "%s)", (unsigned long long)len, strerror(errno),
                    scomm_rcache_strerror(rc));
        return -1;
    }
    return 0;
}

static void rdma_reg_put(rdma_ctx_t *c, rdma_reg_t *reg)
{
    if (reg->cached != NULL) {
        scomm_rcache_put(&c->rcache, reg->cached);
    }
    if (reg->mr != NULL) {
        (void)ibv_dereg_mr(reg->mr);
    }
    memset(reg, 0, sizeof(*reg));
}

static uint32_t rdma_reg_lkey(const rdma_reg_t *r)
{
    return (r->cached != NULL) ? r->cached->lkey : r->mr->lkey;
}

static uint32_t rdma_reg_rkey(const rdma_reg_t *r)
{
    return (r->cached != NULL) ? r->cached->rkey : r->mr->rkey;
}

void scomm_tl_rdma_invalidate(scomm_world_t *w, const void *addr,
                              size_t len)
{
    uintptr_t a = (uintptr_t)addr;
    rdma_ctx_t *c;
    int t, i;

    for (t = 0; t < w->ntl; t++) {
        if ((w->tls[t] != &scomm_tl_rdma_ops) || (w->tl_ctx[t] == NULL)) {
            continue;
        }
        c = w->tl_ctx[t];
        if (c->rcache_ok) {
            (void)scomm_rcache_invalidate(&c->rcache, addr, len);
        }
        for (i = 0; i < c->nknown;) {
            if ((c->known[i].start < a + len) &&
                (a < c->known[i].start + c->known[i].len)) {
                c->known[i] = c->known[--c->nknown];
            } else {
                i++;
            }
        }
    }
}

void scomm_tl_rdma_mem_known(scomm_world_t *w, const void *addr, size_t len)
{
    rdma_ctx_t *c;
    void *grown;
    int t, cap;

    for (t = 0; t < w->ntl; t++) {
        if ((w->tls[t] != &scomm_tl_rdma_ops) || (w->tl_ctx[t] == NULL)) {
            continue;
        }
        c = w->tl_ctx[t];
        if (c->nknown == c->known_cap) {
            cap   = (c->known_cap == 0) ? 16 : 2 * c->known_cap;
            grown = realloc(c->known, (size_t)cap * sizeof(*c->known));
            if (grown == NULL) {
                continue; /* not cached: registered per message instead */
            }
            c->known     = grown;
            c->known_cap = cap;
        }
        c->known[c->nknown].start = (uintptr_t)addr;
        c->known[c->nknown].len   = len;
        c->nknown++;
    }
}

/* ---- init: device, port, address ---------------------------------------- */

static int rdma_open_port(rdma_ctx_t *c, struct ibv_device *d, char *why,
                          size_t whylen)
{
    scomm_world_t *w = c->w;

    c->dev = ibv_open_device(d);
    if (c->dev == NULL) {
        snprintf(why, whylen, "cannot open RDMA device %s: %s",
                 ibv_get_device_name(d), strerror(errno));
        return -1;
    }
    if (ibv_query_port(c->dev, (uint8_t)c->port, &c->port_attr) != 0) {
        snprintf(why, whylen, "RDMA device %s has no port %d",
                 ibv_get_device_name(d), c->port);
        goto err_close;
    }
    if (c->port_attr.state != IBV_PORT_ACTIVE) {
        snprintf(why, whylen, "RDMA device %s port %d is not active",
                 ibv_get_device_name(d), c->port);
        goto err_close;
    }
    c->gid_index = (int)w->cfg.rdma_gid_index;
    if ((c->gid_index < 0) &&
        (c->port_attr.link_layer == IBV_LINK_LAYER_ETHERNET)) {
        c->gid_index = 0; /* RoCE needs a GRH */
    }
    memset(&c->gid, 0, sizeof(c->gid));
    if ((c->gid_index >= 0) &&
        (ibv_query_gid(c->dev, (uint8_t)c->port, c->gid_index, &c->gid) !=
         0)) {
        snprintf(why, whylen, "RDMA device %s port %d has no GID index %d",
                 ibv_get_device_name(d), c->port, c->gid_index);
        goto err_close;
    }
    snprintf(c->devname, sizeof(c->devname), "%s", ibv_get_device_name(d));
    return 0;
err_close:
    ibv_close_device(c->dev);
    c->dev = NULL;
    return -1;
}

static int rdma_pick_device(rdma_ctx_t *c, char *why, size_t whylen)
{
    const char *want = c->w->cfg.rdma_device;
    struct ibv_device **list;
    char names[160] = "";
    int n = 0, i, found = 0;
    size_t used = 0;

    list = ibv_get_device_list(&n);
    if ((list == NULL) || (n <= 0)) {
        snprintf(why, whylen, "no RDMA device found (ibv_get_device_list "
                 "returned none%s%s); for Soft-RoCE: rdma link add rxe0 "
                 "type rxe netdev <if>", (list == NULL) ? ": " : "",
                 (list == NULL) ? strerror(errno) : "");
        if (list != NULL) {
            ibv_free_device_list(list);
        }
        return -1;
    }
    for (i = 0; i < n; i++) {
        const char *name = ibv_get_device_name(list[i]);

        if (used + 1 < sizeof(names)) {
            used += (size_t)snprintf(names + used, sizeof(names) - used,
                                     "%s%s", (i > 0) ? ", " : "", name);
            used = SCOMM_MIN(used, sizeof(names) - 1);
        }
        if ((want[0] != '\0') && (strcmp(want, name) != 0)) {
            continue;
        }
        found = 1;
        if (rdma_open_port(c, list[i], why, whylen) == 0) {
            ibv_free_device_list(list);
            return 0;
        }
        if (want[0] != '\0') {
            break;
        }
    }
    ibv_free_device_list(list);
    if (!found) {
        snprintf(why, whylen, "RDMA device '%s' (SCOMM_RDMA_DEVICE) not "
                 "found; devices: %s", want, names);
    } else if (want[0] == '\0') {
        snprintf(why, whylen, "no RDMA device with an active port %d "
                 "(devices: %s)", c->port, names);
    }
    return -1;
}

/* Side-channel listener: any address of the family of the route to the
 * master; the address published is tcp_addr (filled here if empty). */
static int rdma_listen(rdma_ctx_t *c, char *why, size_t whylen)
{
    scomm_world_t *w = c->w;
    struct sockaddr_storage ms, ss;
    socklen_t mlen, len;
    int fd, port;

    if (scomm_sock_resolve(w->master_addr, w->master_port, &ms, &mlen, why,
                           whylen) != 0) {
        return -1;
    }
    if (w->info[w->rank].tcp_addr[0] == '\0') {
        fd = socket(ms.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if ((fd < 0) || (connect(fd, (struct sockaddr *)&ms, mlen) != 0)) {
            snprintf(why, whylen, "no route to master %s: %s",
                     w->master_addr, strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        len = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &len);
        close(fd);
        scomm_sock_addr_str(&ss, w->info[w->rank].tcp_addr, SCOMM_ADDR_MAX,
                            NULL);
    }
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = ms.ss_family;
    len = (ms.ss_family == AF_INET) ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6);
    c->lfd = scomm_sock_listen(&ss, len, why, whylen);
    if (c->lfd < 0) {
        return -1;
    }
    port = scomm_sock_local_port(c->lfd);
    w->info[w->rank].flags = (w->info[w->rank].flags &
                              ~(SCOMM_RANKINFO_RDMA |
                                SCOMM_RANKINFO_PORT_MASK)) |
                             SCOMM_RANKINFO_RDMA |
                             ((uint32_t)port & SCOMM_RANKINFO_PORT_MASK);
    return 0;
}

static void rdma_fini(void *vctx);

static scomm_status_t rdma_init(scomm_world_t *w, void **ctx_p)
{
    static const scomm_rcache_ops_t rc_ops = {rdma_rc_reg, rdma_rc_dereg};
    rdma_ctx_t *c;
    char why[256];

    *ctx_p = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    c->w         = w;
    c->lfd       = -1;
    c->epfd      = -1;
    c->port      = (int)w->cfg.rdma_port;
    c->eager_max = SCOMM_MIN(w->cfg.rdma_eager_max, (uint64_t)1 << 20);
    c->rq_depth  = (uint32_t)SCOMM_MAX(2, SCOMM_MIN(w->cfg.rdma_rq_depth,
                                                    SCOMM_RDMA_RQ_MAX));
    c->nsslots   = c->rq_depth;
    c->slot_size = SCOMM_ALIGN_UP(SCOMM_RDMA_HDR_SIZE + c->eager_max, 64);
    c->use_cache = (int)SCOMM_MAX(0, SCOMM_MIN(w->cfg.rdma_regcache, 2));
    (void)ibv_fork_init(); /* registered pages survive the ranks' forks */
    if (rdma_pick_device(c, why, sizeof(why)) != 0) {
        goto err_unsupported;
    }
    c->max_msg = SCOMM_MIN((uint64_t)c->port_attr.max_msg_sz,
                           RDMA_WRITE_CHUNK);
    if (c->max_msg == 0) {
        c->max_msg = RDMA_WRITE_CHUNK;
    }
    c->pd   = ibv_alloc_pd(c->dev);
    c->chan = (c->pd != NULL) ? ibv_create_comp_channel(c->dev) : NULL;
    if (c->chan == NULL) {
        snprintf(why, sizeof(why), "RDMA device %s: cannot allocate a "
                 "protection domain or completion channel: %s", c->devname,
                 strerror(errno));
        goto err_unsupported;
    }
    (void)scomm_set_nonblock(c->chan->fd);
    (void)scomm_set_nonblock(c->dev->async_fd);
    if (scomm_rcache_init(&c->rcache, &rc_ops, c, w->cfg.rdma_pin_max, 4096,
                          (size_t)sysconf(_SC_PAGESIZE)) ==
        SCOMM_RCACHE_OK) {
        c->rcache_ok = 1;
    }
    if (w->size > 1) {
        if (rdma_listen(c, why, sizeof(why)) != 0) {
            goto err_unsupported;
        }
        c->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (c->epfd < 0) {
            snprintf(why, sizeof(why), "epoll_create1: %s", strerror(errno));
            goto err_unsupported;
        }
    }
    scomm_info(SCOMM_SUB_RDMA, "device %s port %d (%s), gid index %d, "
               "eager max %llu", c->devname, c->port,
               (c->port_attr.link_layer == IBV_LINK_LAYER_ETHERNET)
                   ? "RoCE"
                   : "InfiniBand",
               c->gid_index, (unsigned long long)c->eager_max);
    *ctx_p = c;
    return SCOMM_OK;
err_unsupported:
    rdma_fini(c);
    scomm_set_thread_error("unavailable: %s", why);
    return SCOMM_ERR_UNSUPPORTED;
}

static int rdma_can_reach(void *vctx, int peer)
{
    rdma_ctx_t *c = vctx;
    uint32_t f    = c->w->info[peer].flags;

    return (c->lfd >= 0) && ((f & SCOMM_RANKINFO_RDMA) != 0) &&
           ((f & SCOMM_RANKINFO_PORT_MASK) != 0) &&
           (c->w->info[peer].tcp_addr[0] != '\0');
}

/* ---- queue pairs --------------------------------------------------------- */

static int rdma_post_recv(rdma_ctx_t *c, rdma_peer_t *p, uint32_t slot)
{
    struct ibv_recv_wr wr, *bad = NULL;
    struct ibv_sge sge;

    sge.addr   = (uintptr_t)(p->slab + (size_t)slot * c->slot_size);
    sge.length = (uint32_t)c->slot_size;
    sge.lkey   = p->slab_mr->lkey;
    memset(&wr, 0, sizeof(wr));
    wr.wr_id   = RDMA_WRID_RECV(p->idx, slot);
    wr.sg_list = &sge;
    wr.num_sge = 1;
    return ibv_post_recv(p->qp, &wr, &bad);
}

/* Create the QP, move it to INIT and post every receive buffer. */
static int rdma_qp_create(rdma_ctx_t *c, rdma_peer_t *p, char *why,
                          size_t whylen)
{
    struct ibv_qp_init_attr ia;
    struct ibv_qp_attr a;
    size_t bytes;
    uint32_t i;

    bytes = c->slot_size * (size_t)(c->rq_depth + c->nsslots);
    if (posix_memalign((void **)&p->slab, 4096, bytes) != 0) {
        snprintf(why, whylen, "out of memory for buffers");
        return -1;
    }
    p->slab_mr = ibv_reg_mr(c->pd, p->slab, bytes, IBV_ACCESS_LOCAL_WRITE);
    p->sfree   = calloc(c->nsslots, sizeof(*p->sfree));
    if ((p->slab_mr == NULL) || (p->sfree == NULL)) {
        snprintf(why, whylen, "cannot register %zu bytes of buffers: %s",
                 bytes, strerror(errno));
        return -1;
    }
    for (i = 0; i < c->nsslots; i++) {
        p->sfree[p->nsfree++] = c->nsslots - 1 - i;
    }
    memset(&ia, 0, sizeof(ia));
    ia.send_cq          = c->cq;
    ia.recv_cq          = c->cq;
    ia.qp_type          = IBV_QPT_RC;
    ia.sq_sig_all       = 1;
    ia.cap.max_send_wr  = RDMA_SQ_DEPTH;
    ia.cap.max_recv_wr  = c->rq_depth;
    ia.cap.max_send_sge = 1;
    ia.cap.max_recv_sge = 1;
    p->qp = ibv_create_qp(c->pd, &ia);
    if (p->qp == NULL) {
        snprintf(why, whylen, "ibv_create_qp: %s", strerror(errno));
        return -1;
    }
    if (scomm_rdma_fsm_next(&p->fsm, SCOMM_RDMA_EV_TO_INIT, NULL, why,
                            whylen) < 0) {
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.qp_state        = IBV_QPS_INIT;
    a.pkey_index      = 0;
    a.port_num        = (uint8_t)c->port;
    a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
    if (ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
                                     IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) != 0) {
        snprintf(why, whylen, "queue pair to INIT: %s", strerror(errno));
        (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_ERROR, NULL, why,
                                   NULL, 0);
        return -1;
    }
    (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_TO_INIT, NULL, NULL,
                               NULL, 0);
    for (i = 0; i < c->rq_depth; i++) {
        if (rdma_post_recv(c, p, i) != 0) {
            snprintf(why, whylen, "ibv_post_recv: %s", strerror(errno));
            return -1;
        }
    }
    memset(&p->local, 0, sizeof(p->local));
    p->local.qpn      = p->qp->qp_num;
    p->local.psn      = (uint32_t)(scomm_now_ns() ^ (uint64_t)p->rank) &
                        SCOMM_RDMA_PSN_MAX;
    p->local.lid      = c->port_attr.lid;
    p->local.mtu      = (uint8_t)c->port_attr.active_mtu;
    p->local.port     = (uint8_t)c->port;
    p->local.rq_depth = c->rq_depth;
    memcpy(p->local.gid, c->gid.raw, 16);
    return 0;
}

/* INIT -> RTR -> RTS with the peer's description (checked by the FSM). */
static int rdma_qp_ready(rdma_ctx_t *c, rdma_peer_t *p,
                         const scomm_rdma_qpinfo_t *r, char *why,
                         size_t whylen)
{
    struct ibv_qp_attr a;

    if (scomm_rdma_fsm_next(&p->fsm, SCOMM_RDMA_EV_TO_RTR, r, why, whylen) <
        0) {
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.qp_state           = IBV_QPS_RTR;
    a.path_mtu           = (enum ibv_mtu)SCOMM_MIN(p->local.mtu, r->mtu);
    a.dest_qp_num        = r->qpn;
    a.rq_psn             = r->psn;
    a.max_dest_rd_atomic = 1;
    a.min_rnr_timer      = 12;
    a.ah_attr.dlid       = r->lid;
    a.ah_attr.sl         = 0;
    a.ah_attr.port_num   = (uint8_t)c->port;
    if (c->gid_index >= 0) {
        a.ah_attr.is_global      = 1;
        a.ah_attr.grh.hop_limit  = 64;
        a.ah_attr.grh.sgid_index = (uint8_t)c->gid_index;
        memcpy(a.ah_attr.grh.dgid.raw, r->gid, 16);
    }
    if (ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
                                     IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                     IBV_QP_MAX_DEST_RD_ATOMIC |
                                     IBV_QP_MIN_RNR_TIMER) != 0) {
        snprintf(why, whylen, "queue pair to RTR: %s", strerror(errno));
        (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_ERROR, NULL, why,
                                   NULL, 0);
        return -1;
    }
    (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_TO_RTR, r, NULL, NULL,
                               0);
    memset(&a, 0, sizeof(a));
    a.qp_state      = IBV_QPS_RTS;
    a.timeout       = 14;
    a.retry_cnt     = 7;
    a.rnr_retry     = 7;
    a.sq_psn        = p->local.psn;
    a.max_rd_atomic = 1;
    if (ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
                                     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                                     IBV_QP_SQ_PSN |
                                     IBV_QP_MAX_QP_RD_ATOMIC) != 0) {
        snprintf(why, whylen, "queue pair to RTS: %s", strerror(errno));
        (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_ERROR, NULL, why,
                                   NULL, 0);
        return -1;
    }
    (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_TO_RTS, NULL, NULL,
                               NULL, 0);
    p->credits     = r->rq_depth;
    p->credits_max = r->rq_depth;
    return 0;
}

/* ---- connection setup ---------------------------------------------------- */

/* Check a HELLO from a peer: token, expected rank, not yet connected, and
 * (accepted connections) that it comes from that rank's address. */
static int rdma_check_hello(rdma_ctx_t *c, int fd, const uint8_t *buf,
                            int expect_rank, scomm_rdma_qpinfo_t *qi,
                            char *why, size_t whylen)
{
    scomm_world_t *w = c->w;
    char token[SCOMM_RDMA_TOKEN_MAX];
    int rank;

    if (scomm_rdma_hello_decode(buf, SCOMM_RDMA_HELLO_SIZE,
                                SCOMM_PROTOCOL_VERSION, &rank, qi, token,
                                sizeof(token), why, whylen) != 0) {
        return -1;
    }
    if (!scomm_secret_equal(token, w->token)) {
        snprintf(why, whylen, "wrong job token");
        return -1;
    }
    if (expect_rank >= 0) {
        if (rank != expect_rank) {
            snprintf(why, whylen, "rank %d answered as rank %d",
                     expect_rank, rank);
            return -1;
        }
        return rank;
    }
    if ((rank < 0) || (rank >= w->rank) || (c->by_rank[rank] == NULL)) {
        snprintf(why, whylen, "claims rank %d, not expected here", rank);
        return -1;
    }
    if (c->by_rank[rank]->sfd >= 0) {
        snprintf(why, whylen, "rank %d is already connected", rank);
        return -1;
    }
    if (scomm_sock_peer_is(fd, w->info[rank].tcp_addr, rank, why,
                           whylen) != 0) {
        return -1;
    }
    return rank;
}

static scomm_status_t rdma_setup_fail(rdma_ctx_t *c, scomm_status_t status,
                                      int rank, const char *why)
{
    scomm_world_fail(c->w, status, rank, "rdma: connecting to rank %d: %s",
                     rank, why);
    return status;
}

typedef struct rdma_accept {
    rdma_ctx_t    *c;
    uint64_t       deadline;
    scomm_status_t status;
} rdma_accept_t;

/* scomm_sock_accept_hellos callback: a checked lower rank gets our HELLO
 * back and its QP brought up. */
static int rdma_on_hello(void *arg, int fd, const uint8_t *buf)
{
    rdma_accept_t *acc = arg;
    rdma_ctx_t *c      = acc->c;
    scomm_world_t *w   = c->w;
    uint8_t hello[SCOMM_RDMA_HELLO_SIZE];
    scomm_rdma_qpinfo_t qi[1];
    rdma_peer_t *p;
    char why[256];
    int rank;

    rank = rdma_check_hello(c, fd, buf, -1, qi, why, sizeof(why));
    if (rank < 0) {
        scomm_warn(SCOMM_SUB_RDMA, "refused a connection: %s", why);
        return 0;
    }
    p      = c->by_rank[rank];
    p->sfd = fd;
    scomm_rdma_hello_encode(hello, SCOMM_PROTOCOL_VERSION, w->rank,
                            &p->local, w->token);
    if (scomm_sock_write_all(p->sfd, hello, sizeof(hello), acc->deadline) !=
        SCOMM_SOCK_OK) {
        acc->status = rdma_setup_fail(c, SCOMM_ERR_PEER_LOST, rank,
                                      "side channel write failed");
        return -1;
    }
    if (rdma_qp_ready(c, p, qi, why, sizeof(why)) != 0) {
        acc->status = rdma_setup_fail(c, SCOMM_ERR_SYSTEM, rank, why);
        return -1;
    }
    return 1;
}

static scomm_status_t rdma_connect(void *vctx, const int *peers, int npeers,
                                   uint64_t deadline)
{
    rdma_ctx_t *c     = vctx;
    scomm_world_t *w  = c->w;
    rdma_accept_t acc;
    struct sockaddr_storage ss;
    struct epoll_event ev;
    scomm_rdma_qpinfo_t qi[1];
    uint8_t hello[SCOMM_RDMA_HELLO_SIZE];
    socklen_t sslen;
    char why[256];
    int i, rc, fd, expect = 0, got, cqe;
    char ready;

    if (npeers == 0) {
        return SCOMM_OK;
    }
    c->by_rank = calloc((size_t)w->size, sizeof(*c->by_rank));
    c->peers   = calloc((size_t)npeers, sizeof(*c->peers));
    if ((c->by_rank == NULL) || (c->peers == NULL)) {
        return SCOMM_ERR_NO_MEMORY;
    }
    cqe = npeers * (RDMA_SQ_DEPTH + (int)c->rq_depth) + 16;
    c->cq = ibv_create_cq(c->dev, cqe, NULL, c->chan, 0);
    if (c->cq == NULL) {
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1, "rdma: ibv_create_cq of "
                         "%d entries on %s: %s", cqe, c->devname,
                         strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    for (i = 0; i < npeers; i++) {
        rdma_peer_t *p = &c->peers[i];

        p->rank = peers[i];
        p->idx  = i;
        p->sfd  = -1;
        scomm_list_init(&p->sendq);
        scomm_list_init(&p->inflight);
        scomm_rdma_fsm_init(&p->fsm, peers[i]);
        c->by_rank[peers[i]] = p;
        c->npeers++;
        if (rdma_qp_create(c, p, why, sizeof(why)) != 0) {
            return rdma_setup_fail(c, SCOMM_ERR_SYSTEM, p->rank, why);
        }
        if (peers[i] < w->rank) {
            expect++;
        }
    }
    /* 1. To every higher rank: connect, send our HELLO (fits the fresh
     *    socket's buffer, so this never waits on the peer). */
    for (i = 0; i < npeers; i++) {
        rdma_peer_t *p = &c->peers[i];

        if (p->rank < w->rank) {
            continue;
        }
        if (scomm_sock_resolve(w->info[p->rank].tcp_addr,
                               (int)(w->info[p->rank].flags &
                                     SCOMM_RANKINFO_PORT_MASK),
                               &ss, &sslen, why, sizeof(why)) != 0) {
            return rdma_setup_fail(c, SCOMM_ERR_SYSTEM, p->rank, why);
        }
        rc = scomm_sock_connect(&ss, sslen, deadline, 1, &fd);
        if (rc == SCOMM_SOCK_OK) {
            p->sfd = fd;
            scomm_rdma_hello_encode(hello, SCOMM_PROTOCOL_VERSION, w->rank,
                                    &p->local, w->token);
            rc = scomm_sock_write_all(fd, hello, sizeof(hello), deadline);
        }
        if (rc != SCOMM_SOCK_OK) {
            snprintf(why, sizeof(why), "side channel %s:%u: %s",
                     w->info[p->rank].tcp_addr,
                     w->info[p->rank].flags & SCOMM_RANKINFO_PORT_MASK,
                     (rc == SCOMM_SOCK_TIMEOUT) ? "timed out"
                                                : strerror(errno));
            return rdma_setup_fail(c, (rc == SCOMM_SOCK_TIMEOUT)
                                          ? SCOMM_ERR_TIMED_OUT
                                          : SCOMM_ERR_PEER_LOST,
                                   p->rank, why);
        }
    }
    /* 2. From every lower rank: accept, check its HELLO, answer ours,
     *    bring the QP up. */
    acc.c        = c;
    acc.deadline = deadline;
    acc.status   = SCOMM_OK;
    got = scomm_sock_accept_hellos(c->lfd, SCOMM_RDMA_HELLO_SIZE, expect,
                                   deadline, rdma_on_hello, &acc);
    if (got < 0) {
        return acc.status;
    }
    if (got < expect) {
        scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, -1,
                         "rdma: timed out waiting for %d of %d incoming "
                         "connections", expect - got, expect);
        return SCOMM_ERR_TIMED_OUT;
    }
    close(c->lfd);
    c->lfd = -1;
    /* 3. The higher ranks' answers. */
    for (i = 0; i < npeers; i++) {
        rdma_peer_t *p = &c->peers[i];

        if (p->rank < w->rank) {
            continue;
        }
        rc = scomm_sock_read_all(p->sfd, hello, sizeof(hello), deadline);
        if (rc != SCOMM_SOCK_OK) {
            return rdma_setup_fail(c, (rc == SCOMM_SOCK_TIMEOUT)
                                          ? SCOMM_ERR_TIMED_OUT
                                          : SCOMM_ERR_PEER_LOST,
                                   p->rank, "no HELLO answer");
        }
        if ((rdma_check_hello(c, p->sfd, hello, p->rank, qi, why,
                              sizeof(why)) < 0) ||
            (rdma_qp_ready(c, p, qi, why, sizeof(why)) != 0)) {
            return rdma_setup_fail(c, SCOMM_ERR_PROTOCOL, p->rank, why);
        }
    }
    /* 4. READY both ways: neither side sends before the other's QP can
     *    receive. Then the socket carries control messages only. */
    ready = RDMA_READY_BYTE;
    for (i = 0; i < npeers; i++) {
        if (scomm_sock_write_all(c->peers[i].sfd, &ready, 1, deadline) !=
            SCOMM_SOCK_OK) {
            return rdma_setup_fail(c, SCOMM_ERR_PEER_LOST, c->peers[i].rank,
                                   "side channel write failed");
        }
    }
    for (i = 0; i < npeers; i++) {
        rdma_peer_t *p = &c->peers[i];

        rc = scomm_sock_read_all(p->sfd, &ready, 1, deadline);
        if ((rc != SCOMM_SOCK_OK) || (ready != RDMA_READY_BYTE)) {
            return rdma_setup_fail(c, (rc == SCOMM_SOCK_TIMEOUT)
                                          ? SCOMM_ERR_TIMED_OUT
                                          : SCOMM_ERR_PEER_LOST,
                                   p->rank, "no READY from the peer");
        }
        (void)scomm_set_nonblock(p->sfd);
        p->last_heard = scomm_now_ns();
        memset(&ev, 0, sizeof(ev));
        ev.events   = EPOLLIN;
        ev.data.ptr = p;
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, p->sfd, &ev);
    }
    memset(&ev, 0, sizeof(ev));
    ev.events   = EPOLLIN;
    ev.data.ptr = NULL; /* the device's async events */
    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->dev->async_fd, &ev);
    return SCOMM_OK;
}

/* ---- sending ------------------------------------------------------------- */

static rdma_sitem_t *rdma_item_new(int kind, uint8_t type)
{
    rdma_sitem_t *it = calloc(1, sizeof(*it));

    if (it != NULL) {
        it->kind     = kind;
        it->hdr.type = type;
    }
    return it;
}

static void rdma_queue(rdma_ctx_t *c, rdma_peer_t *p, rdma_sitem_t *it)
{
    if (scomm_list_empty(&p->sendq)) {
        c->nsending++;
    }
    it->pidx = p->idx;
    scomm_list_push_back(&p->sendq, &it->list);
}

/* Post one MSG item; 1 if posted, 0 if it must wait for resources. */
static int rdma_post_msg(rdma_ctx_t *c, rdma_peer_t *p, rdma_sitem_t *it)
{
    struct ibv_send_wr wr, *bad = NULL;
    struct ibv_sge sge;
    uint32_t need = (it->hdr.type == SCOMM_RDMA_CREDIT) ? 1 : 2;
    uint64_t plen = (it->hdr.type == SCOMM_RDMA_EAGER) ? it->hdr.len : 0;
    char *slot;

    if ((p->credits < need) || (p->nsfree == 0) ||
        (p->sq_used >= RDMA_SQ_DEPTH)) {
        return 0;
    }
    it->sslot = p->sfree[--p->nsfree];
    slot      = p->slab + (size_t)(c->rq_depth + it->sslot) * c->slot_size;
    it->hdr.credits = (uint16_t)SCOMM_MIN(p->owed, 0xffffu);
    p->owed -= it->hdr.credits;
    if (it->hdr.type == SCOMM_RDMA_CREDIT) {
        p->credit_queued = 0;
    }
    memcpy(slot, &it->hdr, SCOMM_RDMA_HDR_SIZE);
    if (plen > 0) {
        memcpy(slot + SCOMM_RDMA_HDR_SIZE, it->payload, (size_t)plen);
    }
    sge.addr   = (uintptr_t)slot;
    sge.length = (uint32_t)(SCOMM_RDMA_HDR_SIZE + plen);
    sge.lkey   = p->slab_mr->lkey;
    memset(&wr, 0, sizeof(wr));
    wr.wr_id      = (uintptr_t)it;
    wr.sg_list    = &sge;
    wr.num_sge    = 1;
    wr.opcode     = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    if (ibv_post_send(p->qp, &wr, &bad) != 0) {
        rdma_peer_lost(c, p, "ibv_post_send", errno);
        return -1;
    }
    p->credits--;
    p->sq_used++;
    it->wr_pending = 1;
    it->posted_all = 1;
    return 1;
}

/* Post as many WRITE chunks of the item as the send queue takes; 1 once
 * the last (with immediate) is posted. */
static int rdma_post_write(rdma_ctx_t *c, rdma_peer_t *p, rdma_sitem_t *it)
{
    struct ibv_send_wr wr, *bad = NULL;
    struct ibv_sge sge;
    uint64_t n;
    int last;

    while (it->off < it->len) {
        n    = SCOMM_MIN(c->max_msg, it->len - it->off);
        last = (it->off + n == it->len);
        if ((p->sq_used >= RDMA_SQ_DEPTH) || (last && (p->credits < 2))) {
            return 0;
        }
        sge.addr   = (uintptr_t)(it->src + it->off);
        sge.length = (uint32_t)n;
        sge.lkey   = rdma_reg_lkey(&it->reg);
        memset(&wr, 0, sizeof(wr));
        wr.wr_id               = (uintptr_t)it;
        wr.sg_list             = &sge;
        wr.num_sge             = 1;
        wr.opcode              = last ? IBV_WR_RDMA_WRITE_WITH_IMM
                                      : IBV_WR_RDMA_WRITE;
        wr.send_flags          = IBV_SEND_SIGNALED;
        wr.imm_data            = htonl(it->imm);
        wr.wr.rdma.remote_addr = it->raddr + it->off;
        wr.wr.rdma.rkey        = it->rkey;
        if (ibv_post_send(p->qp, &wr, &bad) != 0) {
            rdma_peer_lost(c, p, "ibv_post_send (RDMA write)", errno);
            return -1;
        }
        p->sq_used++;
        it->wr_pending++;
        it->off += n;
        if (last) {
            p->credits--;
        }
    }
    it->posted_all = 1;
    return 1;
}

/* Post the peer's queue in order while resources last. */
static int rdma_flush(rdma_ctx_t *c, rdma_peer_t *p)
{
    rdma_sitem_t *it;
    int r, events = 0;

    if (!scomm_rdma_fsm_can_send(&p->fsm)) {
        return 0;
    }
    while (!scomm_list_empty(&p->sendq)) {
        it = scomm_container_of(p->sendq.next, rdma_sitem_t, list);
        r  = (it->kind == RDMA_SI_MSG) ? rdma_post_msg(c, p, it)
                                       : rdma_post_write(c, p, it);
        if (r <= 0) {
            break;
        }
        scomm_list_del(&it->list);
        scomm_list_push_back(&p->inflight, &it->list);
        events++;
        if (scomm_list_empty(&p->sendq)) {
            c->nsending--;
        }
    }
    return events;
}

static void rdma_queue_credit(rdma_ctx_t *c, rdma_peer_t *p)
{
    rdma_sitem_t *it;

    if (p->credit_queued || (p->owed < SCOMM_MAX(p->rq_depth / 2, 1)) ||
        !scomm_list_empty(&p->sendq)) {
        return; /* a queued message will carry them */
    }
    it = rdma_item_new(RDMA_SI_MSG, SCOMM_RDMA_CREDIT);
    if (it == NULL) {
        return;
    }
    p->credit_queued = 1;
    rdma_queue(c, p, it);
}

static scomm_status_t rdma_send(void *vctx, scomm_req_t *req)
{
    rdma_ctx_t *c  = vctx;
    rdma_peer_t *p = c->by_rank[req->peer];
    rdma_sitem_t *it;

    it = rdma_item_new(RDMA_SI_MSG, (req->len <= c->eager_max)
                                        ? SCOMM_RDMA_EAGER
                                        : SCOMM_RDMA_RTS);
    if (it == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    it->hdr.ctx = req->ctx;
    it->hdr.tag = req->tag;
    it->hdr.len = req->len;
    it->hdr.id  = req->id;
    if (it->hdr.type == SCOMM_RDMA_EAGER) {
        it->payload = req->buf;
        it->req_id  = req->id; /* completes when the SEND completes */
    }
    rdma_queue(c, p, it);
    rdma_flush(c, p);
    return SCOMM_OK;
}

/* The receiver matched our RTS: write the payload into its buffer. */
static void rdma_on_cts(rdma_ctx_t *c, rdma_peer_t *p,
                        const scomm_rdma_hdr_t *h)
{
    scomm_req_t *r = scomm_req_lookup(c->w, h->id);
    rdma_sitem_t *it;

    if ((r == NULL) || (r->type != SCOMM_REQ_SEND)) {
        return; /* released after a fault */
    }
    if (h->len == 0) {
        scomm_req_truncated(r, p->rank);
        return;
    }
    if (h->len != (uint64_t)r->len) {
        rdma_bad(c, p, "clear-to-send length differs from the message");
        return;
    }
    it = rdma_item_new(RDMA_SI_WRITE, 0);
    if (it == NULL) {
        scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, p->rank,
                         "rdma: out of memory");
        return;
    }
    if (rdma_reg_get(c, r->buf, r->len, 0, &it->reg) != 0) {
        free(it);
        scomm_world_fail(c->w, SCOMM_ERR_NO_RESOURCE, p->rank,
                         "rdma: cannot register a %zu-byte send buffer for "
                         "rank %d: %s", r->len, p->rank, strerror(errno));
        return;
    }
    it->src    = r->buf;
    it->len    = r->len;
    it->raddr  = h->aux;
    it->rkey   = h->aux32;
    it->imm    = h->ctx;
    it->req_id = r->id;
    rdma_queue(c, p, it);
}

/* A rendezvous slot for rreq; UINT32_MAX when the table is full. */
static uint32_t rdma_rslot_get(rdma_peer_t *p)
{
    rdma_rslot_t *ns;
    uint32_t *nf, ncap, i;

    if (p->nrfree == 0) {
        ncap = (p->nrslots == 0) ? 64 : p->nrslots * 2;
        if (ncap > RDMA_RSLOTS_MAX) {
            return UINT32_MAX;
        }
        ns = realloc(p->rslots, ncap * sizeof(*ns));
        if (ns == NULL) {
            return UINT32_MAX;
        }
        p->rslots = ns;
        nf = realloc(p->rfree, ncap * sizeof(*nf));
        if (nf == NULL) {
            return UINT32_MAX;
        }
        p->rfree = nf;
        for (i = p->nrslots; i < ncap; i++) {
            memset(&p->rslots[i], 0, sizeof(p->rslots[i]));
            p->rfree[p->nrfree++] = ncap - 1 - (i - p->nrslots);
        }
        p->nrslots = ncap;
    }
    return p->rfree[--p->nrfree];
}

static scomm_status_t rdma_rndv_start(void *vctx, int peer,
                                      scomm_req_t *rreq,
                                      const scomm_tl_cookie_t *cookie,
                                      scomm_status_t reject)
{
    rdma_ctx_t *c  = vctx;
    rdma_peer_t *p = c->by_rank[peer];
    rdma_sitem_t *it;
    rdma_rslot_t *s;
    uint32_t slot;

    (void)reject;
    it = rdma_item_new(RDMA_SI_MSG, SCOMM_RDMA_CTS);
    if (it == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    it->hdr.id = cookie->u64[0];
    if ((rreq != NULL) && (rreq->xfer == 0)) {
        scomm_req_complete(rreq, SCOMM_OK);
        rreq = NULL; /* nothing to write: answered like a rejection */
    }
    if (rreq != NULL) {
        slot = rdma_rslot_get(p);
        if (slot == UINT32_MAX) {
            free(it);
            scomm_world_fail(c->w, SCOMM_ERR_NO_RESOURCE, peer,
                             "rdma: too many rendezvous receives from rank "
                             "%d in flight", peer);
            return SCOMM_ERR_NO_RESOURCE;
        }
        s = &p->rslots[slot];
        if (rdma_reg_get(c, rreq->buf, rreq->xfer, 1, &s->reg) != 0) {
            p->rfree[p->nrfree++] = slot;
            free(it);
            scomm_world_fail(c->w, SCOMM_ERR_NO_RESOURCE, peer,
                             "rdma: cannot register a %zu-byte receive "
                             "buffer: %s", rreq->xfer, strerror(errno));
            return SCOMM_ERR_NO_RESOURCE;
        }
        s->rreq_id    = rreq->id;
        it->hdr.len   = rreq->xfer;
        it->hdr.aux   = (uintptr_t)rreq->buf;
        it->hdr.aux32 = rdma_reg_rkey(&s->reg);
        it->hdr.ctx   = scomm_rdma_imm_make(slot, s->gen);
    }
    rdma_queue(c, p, it);
    rdma_flush(c, p);
    return SCOMM_OK;
}

/* ---- completions --------------------------------------------------------- */

static void rdma_on_imm(rdma_ctx_t *c, rdma_peer_t *p, uint32_t imm)
{
    uint32_t slot, gen;
    rdma_rslot_t *s;
    scomm_req_t *r;
    char why[96];

    if (scomm_rdma_imm_decode(imm, p->nrslots, &slot, &gen, why,
                              sizeof(why)) != 0) {
        rdma_bad(c, p, why);
        return;
    }
    s = &p->rslots[slot];
    if ((s->rreq_id == 0) || (s->gen != (uint16_t)gen)) {
        rdma_bad(c, p, "write completion for no rendezvous in flight");
        return;
    }
    r = scomm_req_lookup(c->w, s->rreq_id);
    rdma_reg_put(c, &s->reg);
    s->rreq_id = 0;
    s->gen++;
    p->rfree[p->nrfree++] = slot;
    if (r != NULL) {
        scomm_req_complete(r, SCOMM_OK);
    }
}

static void rdma_on_recv(rdma_ctx_t *c, rdma_peer_t *p, uint32_t slot,
                         const struct ibv_wc *wc)
{
    const char *buf = p->slab + (size_t)slot * c->slot_size;
    scomm_tl_cookie_t cookie;
    scomm_rdma_hdr_t h;
    scomm_rx_t rx;
    char why[128];
    void *dst;

    p->last_heard = scomm_now_ns();
    if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
        rdma_on_imm(c, p, ntohl(wc->imm_data));
    } else if (scomm_rdma_hdr_check(buf, wc->byte_len, c->eager_max,
                                    p->credits_max, why,
                                    sizeof(why)) != 0) {
        rdma_bad(c, p, why);
        return;
    } else {
        memcpy(&h, buf, sizeof(h));
        p->credits = SCOMM_MIN(p->credits + h.credits, p->credits_max);
        switch (h.type) {
        case SCOMM_RDMA_EAGER:
            dst = scomm_p2p_eager_begin(c->w, p->rank, h.ctx, h.tag,
                                        (size_t)h.len, &rx);
            if ((dst == NULL) && (h.len > 0)) {
                scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, p->rank,
                                 "rdma: out of memory for a message from "
                                 "rank %d", p->rank);
                return;
            }
            if (rx.req != NULL) {
                rx.req->xfer = (size_t)h.len;
            }
            if (h.len > 0) {
                memcpy(dst, buf + SCOMM_RDMA_HDR_SIZE, (size_t)h.len);
            }
            scomm_p2p_eager_end(c->w, p->rank, &rx);
            break;
        case SCOMM_RDMA_RTS:
            if (h.len <= c->eager_max) {
                rdma_bad(c, p, "rendezvous for an eager-sized message");
                return;
            }
            memset(&cookie, 0, sizeof(cookie));
            cookie.u64[0] = h.id;
            cookie.u64[2] = h.len;
            scomm_p2p_rts(c->w, p->rank, h.ctx, h.tag, (size_t)h.len,
                          &cookie);
            break;
        case SCOMM_RDMA_CTS:
            rdma_on_cts(c, p, &h);
            break;
        default:
            break; /* CREDIT: counted above */
        }
    }
    if (rdma_post_recv(c, p, slot) != 0) {
        rdma_peer_lost(c, p, "ibv_post_recv", errno);
        return;
    }
    p->owed++;
    rdma_queue_credit(c, p);
}

static void rdma_on_send_done(rdma_ctx_t *c, rdma_peer_t *p,
                              rdma_sitem_t *it)
{
    scomm_req_t *r;

    p->sq_used--;
    if ((--it->wr_pending > 0) || !it->posted_all) {
        return;
    }
    if (it->kind == RDMA_SI_MSG) {
        p->sfree[p->nsfree++] = it->sslot;
    } else {
        rdma_reg_put(c, &it->reg);
    }
    if (it->req_id != 0) {
        r = scomm_req_lookup(c->w, it->req_id);
        if ((r != NULL) && (r->type == SCOMM_REQ_SEND)) {
            r->xfer = r->len;
            scomm_req_complete(r, SCOMM_OK);
        }
    }
    scomm_list_del(&it->list);
    free(it);
}

static int rdma_poll_cq(rdma_ctx_t *c)
{
    struct ibv_wc wc[RDMA_CQ_BATCH];
    rdma_peer_t *p;
    rdma_sitem_t *it;
    uint32_t pidx;
    int n, i, events = 0;

    if (c->cq == NULL) {
        return 0;
    }
    do {
        n = ibv_poll_cq(c->cq, RDMA_CQ_BATCH, wc);
        for (i = 0; i < n; i++) {
            if (wc[i].wr_id & 1u) {
                pidx = (uint32_t)(wc[i].wr_id >> 32);
                if (pidx >= (uint32_t)c->npeers) {
                    continue;
                }
                p  = &c->peers[pidx];
                it = NULL;
            } else {
                it = (rdma_sitem_t *)(uintptr_t)wc[i].wr_id;
                p  = &c->peers[it->pidx];
            }
            events++;
            if (wc[i].status != IBV_WC_SUCCESS) {
                if (!c->w->peers[p->rank].closed &&
                    (atomic_load(&c->w->fault.status) == 0)) {
                    char what[96];

                    snprintf(what, sizeof(what), "work completion error: "
                             "%s", ibv_wc_status_str(wc[i].status));
                    rdma_peer_lost(c, p, what, 0);
                }
                if (it != NULL) {
                    p->sq_used--;
                    it->wr_pending--;
                }
                continue;
            }
            if (it == NULL) {
                rdma_on_recv(c, p,
                             (uint32_t)(wc[i].wr_id >> 1) & 0x7fffffffu,
                             &wc[i]);
            } else {
                rdma_on_send_done(c, p, it);
            }
        }
    } while (n == RDMA_CQ_BATCH);
    if (n < 0) {
        scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, -1,
                         "rdma: ibv_poll_cq failed on %s", c->devname);
    }
    return events;
}

/* ---- side channel -------------------------------------------------------- */

static void rdma_ctl_send(rdma_peer_t *p, uint32_t type, int32_t status,
                          int32_t rank, const char *text, uint64_t deadline)
{
    uint8_t buf[SCOMM_RDMA_CTL_SIZE + SCOMM_RDMA_ABORT_MAX];
    scomm_rdma_ctl_t m;
    size_t len = (text != NULL) ? strnlen(text, SCOMM_RDMA_ABORT_MAX) : 0;

    if (p->sfd < 0) {
        return;
    }
    m.type   = type;
    m.status = status;
    m.rank   = rank;
    m.len    = (uint32_t)len;
    memcpy(buf, &m, sizeof(m));
    if (len > 0) {
        memcpy(buf + sizeof(m), text, len);
    }
    (void)scomm_sock_write_all(p->sfd, buf, sizeof(m) + len, deadline);
}

static int rdma_side_read(rdma_ctx_t *c, rdma_peer_t *p)
{
    scomm_rdma_ctl_t m;
    char why[96];
    size_t want;
    ssize_t n;
    int events = 0;

    p->last_heard = scomm_now_ns();
    for (;;) {
        want = SCOMM_RDMA_CTL_SIZE;
        if (p->ctl_got >= SCOMM_RDMA_CTL_SIZE) {
            memcpy(&m, p->ctl, sizeof(m));
            want += m.len;
        }
        n = recv(p->sfd, p->ctl + p->ctl_got, want - p->ctl_got, 0);
        if (n <= 0) {
            break;
        }
        p->ctl_got += (size_t)n;
        if (p->ctl_got == SCOMM_RDMA_CTL_SIZE) {
            if (scomm_rdma_ctl_check(p->ctl, why, sizeof(why)) != 0) {
                rdma_bad(c, p, why);
                return -1;
            }
            memcpy(&m, p->ctl, sizeof(m));
        }
        memcpy(&m, p->ctl, sizeof(m));
        if (p->ctl_got < SCOMM_RDMA_CTL_SIZE + m.len) {
            continue;
        }
        p->ctl_got = 0;
        events++;
        switch (m.type) {
        case SCOMM_RDMA_CTL_BYE:
            p->bye = 1;
            scomm_world_peer_closed(c->w, p->rank);
            break;
        case SCOMM_RDMA_CTL_ABORT:
            p->ctl[SCOMM_RDMA_CTL_SIZE + m.len] = '\0';
            scomm_world_fail(c->w, scomm_status_from_peer(m.status), m.rank,
                             "%s", (char *)p->ctl + SCOMM_RDMA_CTL_SIZE);
            return -1;
        default:
            break; /* HEARTBEAT: last_heard is set */
        }
    }
    if ((n == 0) && (p->bye || c->w->peers[p->rank].closed)) {
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, p->sfd, NULL);
        return events;
    }
    if (n == 0) {
        rdma_peer_lost(c, p, "side channel closed by peer", 0);
        return -1;
    }
    if ((errno != EAGAIN) && (errno != EINTR)) {
        rdma_peer_lost(c, p, "side channel receive failed", errno);
        return -1;
    }
    return events;
}

static void rdma_async_events(rdma_ctx_t *c)
{
    struct ibv_async_event ev;
    int i;

    while (ibv_get_async_event(c->dev, &ev) == 0) {
        switch (ev.event_type) {
        case IBV_EVENT_QP_FATAL:
        case IBV_EVENT_QP_REQ_ERR:
        case IBV_EVENT_QP_ACCESS_ERR:
            for (i = 0; i < c->npeers; i++) {
                if (c->peers[i].qp == ev.element.qp) {
                    rdma_peer_lost(c, &c->peers[i], ibv_event_type_str(
                                                        ev.event_type), 0);
                }
            }
            break;
        case IBV_EVENT_DEVICE_FATAL:
        case IBV_EVENT_PORT_ERR:
            scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, -1, "rdma: device %s: "
                             "%s", c->devname,
                             ibv_event_type_str(ev.event_type));
            break;
        default:
            break;
        }
        ibv_ack_async_event(&ev);
    }
}

static int rdma_progress(void *vctx)
{
    rdma_ctx_t *c = vctx;
    struct epoll_event evs[RDMA_MAX_EVENTS];
    int i, n, events;

    if (c->npeers == 0) {
        return 0;
    }
    events = rdma_poll_cq(c);
    if (c->nsending > 0) {
        for (i = 0; i < c->npeers; i++) {
            if (!scomm_list_empty(&c->peers[i].sendq)) {
                events += rdma_flush(c, &c->peers[i]);
            }
        }
    }
    n = epoll_wait(c->epfd, evs, RDMA_MAX_EVENTS, 0);
    for (i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            rdma_async_events(c);
        } else if (rdma_side_read(c, evs[i].data.ptr) < 0) {
            break;
        } else {
            events++;
        }
    }
    return events;
}

static int rdma_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    rdma_ctx_t *c = vctx;
    int n = 0;

    if ((c->npeers == 0) || (max < 2)) {
        return 0;
    }
    fds[n].fd      = c->epfd;
    fds[n].events  = POLLIN;
    fds[n].revents = 0;
    n++;
    fds[n].fd      = c->chan->fd;
    fds[n].events  = POLLIN;
    fds[n].revents = 0;
    n++;
    return n;
}

/* Arm the completion channel; completions that came before the arming
 * would not raise it, so poll once more and wake the wait if any did. */
static void rdma_sleep_begin(void *vctx)
{
    rdma_ctx_t *c = vctx;

    if ((c->cq == NULL) || c->armed) {
        return;
    }
    if (ibv_req_notify_cq(c->cq, 0) == 0) {
        c->armed = 1;
    }
    if (rdma_poll_cq(c) > 0) {
        scomm_world_wake(c->w);
    }
}

static void rdma_sleep_end(void *vctx)
{
    rdma_ctx_t *c = vctx;
    struct ibv_cq *cq;
    void *cq_ctx;

    if (c->chan == NULL) {
        return;
    }
    while (ibv_get_cq_event(c->chan, &cq, &cq_ctx) == 0) {
        ibv_ack_cq_events(cq, 1);
        c->armed = 0;
    }
}

static void rdma_noop(void *vctx)
{
    (void)vctx;
}

static void rdma_heartbeat(void *vctx, uint64_t now)
{
    rdma_ctx_t *c = vctx;
    scomm_rdma_ctl_t m;
    int i;

    (void)now;
    memset(&m, 0, sizeof(m));
    m.type = SCOMM_RDMA_CTL_HEARTBEAT;
    for (i = 0; i < c->npeers; i++) {
        if ((c->peers[i].sfd >= 0) && !c->w->peers[c->peers[i].rank].closed) {
            /* Best effort: a full socket buffer means the peer is not
             * reading, which suspects() will notice. */
            (void)send(c->peers[i].sfd, &m, sizeof(m),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    }
}

static int rdma_suspects(void *vctx, uint64_t now, uint64_t stale_ns,
                         int *ranks, int max)
{
    rdma_ctx_t *c = vctx;
    int i, n = 0;

    for (i = 0; (i < c->npeers) && (n < max); i++) {
        if (c->w->peers[c->peers[i].rank].closed) {
            continue;
        }
        if ((c->peers[i].last_heard != 0) &&
            (now - c->peers[i].last_heard > stale_ns)) {
            ranks[n++] = c->peers[i].rank;
        }
    }
    return n;
}

static void rdma_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    rdma_ctx_t *c     = vctx;
    uint64_t deadline = scomm_deadline_ms(200);
    int i;

    for (i = 0; i < c->npeers; i++) {
        if ((c->peers[i].rank == info->failed_rank) ||
            c->w->peers[c->peers[i].rank].closed) {
            continue;
        }
        rdma_ctl_send(&c->peers[i], SCOMM_RDMA_CTL_ABORT, info->status,
                      info->failed_rank, info->msg, deadline);
    }
}

/* Clean close: post what is queued and wait for the sends in flight (the
 * peer's HCA has them once they complete), then BYE, half-close and drain
 * the side channel until the peer closes it; RDMA_LINGER_MS in all. */
static void rdma_linger(rdma_ctx_t *c)
{
    uint64_t deadline = scomm_deadline_ms(RDMA_LINGER_MS);
    char buf[256];
    int i, busy;
    ssize_t r;

    do {
        rdma_progress(c);
        busy = 0;
        for (i = 0; i < c->npeers; i++) {
            busy += !scomm_list_empty(&c->peers[i].sendq) ||
                    (c->peers[i].sq_used > 0);
        }
    } while ((busy > 0) && (scomm_now_ns() < deadline) &&
             (atomic_load(&c->w->fault.status) == 0));
    for (i = 0; i < c->npeers; i++) {
        rdma_ctl_send(&c->peers[i], SCOMM_RDMA_CTL_BYE, 0, c->w->rank, NULL,
                      deadline);
        if (c->peers[i].sfd >= 0) {
            (void)shutdown(c->peers[i].sfd, SHUT_WR);
        }
    }
    do {
        busy = 0;
        for (i = 0; i < c->npeers; i++) {
            rdma_peer_t *p = &c->peers[i];

            if (p->sfd < 0) {
                continue;
            }
            while ((r = recv(p->sfd, buf, sizeof(buf), 0)) > 0) {
            }
            if ((r == 0) || ((errno != EAGAIN) && (errno != EINTR))) {
                close(p->sfd);
                p->sfd = -1;
                continue;
            }
            busy++;
        }
        if (busy > 0) {
            (void)poll(NULL, 0, 2);
        }
    } while ((busy > 0) && (scomm_now_ns() < deadline));
}

static void rdma_free_list(rdma_ctx_t *c, scomm_list_t *l)
{
    scomm_list_t *e;

    while ((e = scomm_list_pop_front(l)) != NULL) {
        rdma_sitem_t *it = scomm_container_of(e, rdma_sitem_t, list);

        if (it->kind == RDMA_SI_WRITE) {
            rdma_reg_put(c, &it->reg);
        }
        free(it);
    }
}

static void rdma_fini(void *vctx)
{
    rdma_ctx_t *c = vctx;
    uint32_t s;
    int i;

    if (c == NULL) {
        return;
    }
    if ((c->npeers > 0) && (atomic_load(&c->w->fault.status) == 0)) {
        rdma_linger(c);
    }
    for (i = 0; i < c->npeers; i++) {
        rdma_peer_t *p = &c->peers[i];

        if (p->qp != NULL) {
            (void)ibv_destroy_qp(p->qp);
        }
        (void)scomm_rdma_fsm_apply(&p->fsm, SCOMM_RDMA_EV_CLOSE, NULL, NULL,
                                   NULL, 0);
        rdma_free_list(c, &p->sendq);
        rdma_free_list(c, &p->inflight);
        for (s = 0; s < p->nrslots; s++) {
            if (p->rslots[s].rreq_id != 0) {
                rdma_reg_put(c, &p->rslots[s].reg);
            }
        }
        if (p->slab_mr != NULL) {
            (void)ibv_dereg_mr(p->slab_mr);
        }
        if (p->sfd >= 0) {
            close(p->sfd);
        }
        free(p->slab);
        free(p->sfree);
        free(p->rslots);
        free(p->rfree);
    }
    if (c->rcache_ok) {
        scomm_rcache_fini(&c->rcache);
    }
    free(c->known);
    if (c->cq != NULL) {
        (void)ibv_destroy_cq(c->cq);
    }
    if (c->chan != NULL) {
        (void)ibv_destroy_comp_channel(c->chan);
    }
    if (c->pd != NULL) {
        (void)ibv_dealloc_pd(c->pd);
    }
    if (c->dev != NULL) {
        (void)ibv_close_device(c->dev);
    }
    if (c->lfd >= 0) {
        close(c->lfd);
    }
    if (c->epfd >= 0) {
        close(c->epfd);
    }
    free(c->peers);
    free(c->by_rank);
    free(c);
}

#endif /* SCOMM_HAVE_IBVERBS */

const scomm_tl_ops_t scomm_tl_rdma_ops = {
    .name        = "rdma",
    .init        = rdma_init,
    .can_reach   = rdma_can_reach,
    .connect     = rdma_connect,
    .send        = rdma_send,
    .rndv_start  = rdma_rndv_start,
    .progress    = rdma_progress,
    .poll_fds    = rdma_poll_fds,
    .sleep_begin = rdma_sleep_begin,
    .sleep_end   = rdma_sleep_end,
    .check_peers = rdma_noop,
    .heartbeat   = rdma_heartbeat,
    .suspects    = rdma_suspects,
    .send_abort  = rdma_send_abort,
    .fini        = rdma_fini,
};
