/*
 * ofi.c - the libfabric ("ofi") transport: one reliable-datagram (FI_EP_RDM)
 * endpoint per world, reaching every fabric libfabric has a provider for
 * (verbs, efa, cxi, opx, psm3; tcp here, as tcp;ofi_rxm).
 *
 *   small (<= SCOMM_OFI_EAGER_MAX):  tagged send of header + payload from a
 *                                    registered slot to a pre-posted
 *                                    receive slot of the peer
 *   large:  sender  RTS(id, len) ---------------------------> receiver
 *           sender <-------- CTS(id, rreq id, addr, key, chunk)  (matched;
 *                                    the receive buffer is registered)
 *           sender  RMA writes of chunk bytes, each carrying remote CQ
 *                   data naming the receive ------------------> counted
 *                   per chunk; the last one completes the receive
 *
 * Every message (tagged, tag 0, received with every tag bit ignored: the
 * core's matching engine matches, not the provider) starts with a 72-byte
 * header (ofi_hdr_t) holding the sender's rank, a per-pair sequence number
 * and a 64-bit key derived from the job token. Ranks find each other's
 * endpoint address in the bootstrap's rank table (the rank record's
 * transport blob: provider name + fi_getname address), then exchange a
 * HELLO each, so scomm_init fails at once if a peer cannot be reached.
 *
 * Invariants:
 *  1. A header is checked before anything acts on it (ofi_hdr_check): its
 *     job key, a sender rank this context serves, a known type, and a
 *     length that matches the bytes received; a stranger's message (wrong
 *     key) is dropped with a warning, a malformed one from a peer fails
 *     the world naming it (PROTOCOL).
 *  2. Messages from a peer are handed to the core in its sequence order:
 *     one that a provider completes early is held until its turn, so the
 *     core's non-overtaking rule holds without relying on the provider's
 *     completion order.
 *  3. Nothing blocks: a send that finds no free slot waits, in order, in
 *     the deferred queue; one the provider refuses with -FI_EAGAIN waits in
 *     its peer's queue (a peer whose connection is down holds up no other);
 *     progress retries both. Eager sends complete once copied into a slot
 *     (buffered). At most one HEARTBEAT per peer is in flight.
 *  4. Every chunk of a rendezvous write carries the completion data, and
 *     the receiver counts chunks: no assumption about the provider's write
 *     ordering (FI_ORDER_WAW) is needed.
 *  5. A registration made for one message is closed when that message
 *     completes, at a world fault (so no late write lands), and at fini;
 *     ranges scomm_mem_register'ed go through the registration cache
 *     (mem_reg) and are reused (tl.h, the mem_reg slot).
 *  6. A completion error names the peer of its operation and fails the
 *     world PEER_LOST (unless that peer already said BYE); a local peer's
 *     death is seen at once through its pidfd; a silent remote peer of the
 *     tcp provider is probed at its listening address (ofi_probe: refused
 *     = gone); a stopped one is named by the core's suspects check through
 *     last_heard, fed by HEARTBEATs.
 *  7. Device memory: the hook is ofi_hmem_iface(); until scomm knows the
 *     memory kind of a pointer (the device-memory work), every buffer is
 *     FI_HMEM_SYSTEM and device buffers are staged by the layers above.
 */
#include "ofi.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/features.h"
#include "../core/module.h"
#include "../core/scomm_int.h"

/* Knobs (registry rows, core/config.h), read into w->cfg at scomm_init. */
static const scomm_param_t ofi_params[] = {
    {.name = "SCOMM_OFI_PROVIDER", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = 31, SCOMM_PARAM_FIELD(ofi_provider),
     .help = "libfabric provider for the ofi transport (verbs, efa, cxi, "
             "opx, psm3, tcp, or a full name like 'tcp;ofi_rxm'); default: "
             "the first of those found, in that order"},
    {.name = "SCOMM_OFI_DOMAIN", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = 63, SCOMM_PARAM_FIELD(ofi_domain),
     .help = "libfabric domain (NIC) for the ofi transport, e.g. mlx5_0 "
             "or eth0; default: the provider's first (tcp: the interface "
             "of the route to the master address)"},
    {.name = "SCOMM_OFI_EAGER_MAX", .defval = "16k", .type = SCOMM_PARAM_SIZE,
     .min = 256, .max = 1 << 20, SCOMM_PARAM_FIELD(ofi_eager_max),
     .help = "largest ofi message sent without a rendezvous"},
    {.name = "SCOMM_OFI_DEPTH", .defval = "64", .type = SCOMM_PARAM_INT,
     .min = 4, .max = 4096, SCOMM_PARAM_FIELD(ofi_depth),
     .help = "ofi receive buffers posted, and send slots, per world"},
    {.name = "SCOMM_OFI_RMA_CHUNK", .defval = "4m", .type = SCOMM_PARAM_SIZE,
     .min = 4096, .max = 1 << 30, SCOMM_PARAM_FIELD(ofi_rma_chunk),
     .help = "bytes per RMA write of an ofi rendezvous"},
    {.name = "SCOMM_OFI_RCACHE_MAX", .defval = "1g", .type = SCOMM_PARAM_SIZE,
     .min = 1 << 20, .max = INT64_MAX, SCOMM_PARAM_FIELD(ofi_rcache_max),
     .help = "bytes the ofi registration cache may keep registered"},
};

#ifdef SCOMM_HAVE_OFI

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>

#include "../core/sock.h"
#include "regcache.h"

#define OFI_API         FI_VERSION(1, 9)
#define OFI_PROV_LEN    16   /* provider name at the head of the blob */
#define OFI_ADDR_MAX    (SCOMM_TL_BLOB_MAX - OFI_PROV_LEN)
#define OFI_ABORT_MAX   512
#define OFI_CQ_BATCH    16
#define OFI_LINGER_MS   200
#define OFI_BIND_TRIES  4    /* endpoints opened on EADDRINUSE */
#define OFI_STASH_MAX   4096 /* out-of-order messages held per peer */
#define OFI_RNDV_MAGIC  0x4f46524e44565258ull /* tl_u64[2] of a receive */

enum {
    OFI_HELLO     = 1,
    OFI_EAGER     = 2,
    OFI_RTS       = 3,
    OFI_CTS       = 4,
    OFI_HEARTBEAT = 5,
    OFI_ABORT     = 6,
    OFI_BYE       = 7
};

typedef struct ofi_hdr {
    uint8_t  type;
    uint8_t  pad[3];
    int32_t  src;     /* sender's world rank */
    uint32_t ctx;
    int32_t  tag;     /* EAGER/RTS: the message's; ABORT: the status */
    uint32_t seq;     /* per (sender, receiver) */
    uint32_t aux32;   /* CTS: chunk bytes; ABORT: the failed rank */
    uint64_t jobkey;
    uint64_t len;     /* EAGER/ABORT: payload bytes; RTS: message bytes */
    uint64_t id;      /* RTS, CTS: the sender's request */
    uint64_t aux;     /* CTS: the receive's request (0: refused) */
    uint64_t raddr;   /* CTS: where to write */
    uint64_t rkey;    /* CTS: the key to write with */
} ofi_hdr_t;

_Static_assert(sizeof(ofi_hdr_t) == 72, "ofi header layout is wire format");

enum { OFI_OP_TX = 1, OFI_OP_RX = 2, OFI_OP_WRITE = 3 };

/* The context of every operation posted: the provider's fi_context2
 * first (FI_CONTEXT/FI_CONTEXT2 modes), then ours. */
typedef struct ofi_op {
    struct fi_context2 fctx;
    scomm_list_t       list;  /* free slots, or the post queue */
    int                kind;
    int                peer;  /* world rank, -1 for RX */
    int                hb;    /* TX: a HEARTBEAT (one in flight per peer) */
    char              *buf;   /* TX, RX: the slot */
    size_t             len;   /* TX: bytes to send; WRITE: chunk bytes */
    /* WRITE */
    uint64_t           req_id;
    const char        *src;
    void              *desc;
    uint64_t           raddr;
    uint64_t           rkey;
    uint64_t           data;
} ofi_op_t;

/* A message waiting for a free send slot, in order. */
typedef struct ofi_defer {
    scomm_list_t list;
    int          peer;
    ofi_hdr_t    hdr;
    const void  *payload;
    size_t       plen;
    uint64_t     req_id;  /* an eager send completed once copied, or 0 */
    char        *owned;   /* abort text */
} ofi_defer_t;

/* A message a provider completed before its turn (invariant 2). */
typedef struct ofi_stash {
    scomm_list_t list;
    uint32_t     seq;
    size_t       len;
    char         data[];
} ofi_stash_t;

/* A per-message registration (invariant 5). */
typedef struct ofi_mr {
    scomm_list_t   list;
    struct fid_mr *mr;
} ofi_mr_t;

/* A range scomm_mem_register'ed: a cache region held until mem_dereg. */
typedef struct ofi_reg {
    scomm_list_t           list;
    uintptr_t              start;
    uintptr_t              end;
    scomm_rcache_region_t *region;
} ofi_reg_t;

typedef struct ofi_peer {
    int          rank;
    fi_addr_t    addr;
    int          hello;      /* its HELLO arrived */
    uint32_t     tx_seq;
    uint32_t     rx_seq;
    scomm_list_t stash;
    int          nstash;
    int          pidfd;      /* same host: its death, at once; else -1 */
    int          hb_inflight;
    int          probe_fd;   /* a liveness probe connecting, or -1 */
    uint64_t     probe_at;   /* when the last probe started */
    uint64_t     last_heard;
    scomm_list_t postq;      /* sends and writes refused with -FI_EAGAIN,
                              * in order: per peer, so a peer whose
                              * connection is down holds up no other */
    char         addr_str[64];
} ofi_peer_t;

typedef struct ofi_ctx {
    scomm_world_t      *w;
    struct fi_info     *info;
    struct fid_fabric  *fabric;
    struct fid_domain  *domain;
    struct fid_cq      *cq;
    struct fid_av      *av;
    struct fid_ep      *ep;
    int                 cq_fd;      /* FI_WAIT_FD, or -1: polling */
    int                 mr_local;   /* FI_MR_LOCAL: local buffers need desc */
    int                 virt_addr;  /* FI_MR_VIRT_ADDR */
    int                 prov_key;   /* FI_MR_PROV_KEY */
    int                 kernel;     /* bytes move through the kernel (tcp) */
    size_t              cq_data_size;
    uint64_t            next_key;
    uint64_t            jobkey;
    uint64_t            eager_max;
    uint64_t            chunk;
    size_t              slot_size;
    int                 depth;
    char               *tx_slab;
    char               *rx_slab;
    struct fid_mr      *tx_mr;
    struct fid_mr      *rx_mr;
    ofi_op_t           *tx_ops;
    ofi_op_t           *rx_ops;
    scomm_list_t        tx_free;
    int                 nposting;   /* peers with a non-empty postq */
    scomm_list_t        deferq;     /* waiting for a send slot, in order */
    scomm_list_t        repost;     /* receive slots to post again */
    scomm_list_t        msg_mrs;
    scomm_list_t        regs;
    scomm_rcache_t      rcache;
    int                 rcache_on;
    int                 mrs_closed; /* after a fault */
    ofi_peer_t         *peers;
    ofi_peer_t        **by_rank;
    int                 npeers;
    char                prov[OFI_PROV_LEN];
} ofi_ctx_t;

/* Provider preference when SCOMM_OFI_PROVIDER is unset: the fabrics first,
 * tcp last (scomm's own tcp transport is the better TCP). */
static const char *const ofi_pref[] = {"verbs", "efa", "cxi", "opx", "psm3",
                                       "tcp"};

/* ---- device memory hook (invariant 7) ----------------------------------- */

static enum fi_hmem_iface ofi_hmem_iface(const void *ptr)
{
    (void)ptr;
    return FI_HMEM_SYSTEM;
}

/* ---- providers ----------------------------------------------------------- */

/* The core provider of "tcp;ofi_rxm": "tcp". */
static void ofi_core_name(const char *prov, char *out, size_t len)
{
    size_t n = strcspn(prov, ";");

    n = SCOMM_MIN(n, len - 1);
    memcpy(out, prov, n);
    out[n] = '\0';
}

struct fi_info *scomm_ofi_hints(const char *prov, uint64_t caps,
                                uint64_t mode)
{
    struct fi_info *h = fi_allocinfo();

    if (h == NULL) {
        return NULL;
    }
    h->caps                  = caps;
    h->mode                  = mode;
    h->ep_attr->type         = FI_EP_RDM;
    h->tx_attr->msg_order    = FI_ORDER_SAS;
    h->rx_attr->msg_order    = FI_ORDER_SAS;
    h->domain_attr->mr_mode  = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
                               FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    h->domain_attr->threading = FI_THREAD_DOMAIN;
    if ((prov != NULL) && (prov[0] != '\0')) {
        h->fabric_attr->prov_name = strdup(prov);
    }
    return h;
}

static struct fi_info *ofi_hints(const char *prov)
{
    return scomm_ofi_hints(prov, FI_TAGGED | FI_RMA,
                           FI_CONTEXT | FI_CONTEXT2 | FI_RX_CQ_DATA);
}

/* Does info fit: provider as asked (full or core name), domain as asked,
 * room for our completion data and address. */
static int ofi_info_fits(const struct fi_info *i, const char *prov,
                         const char *domain)
{
    char core[OFI_PROV_LEN];

    if ((i->domain_attr->cq_data_size < 4) ||
        (i->src_addrlen > OFI_ADDR_MAX)) {
        return 0;
    }
    ofi_core_name(i->fabric_attr->prov_name, core, sizeof(core));
    if ((prov != NULL) && (prov[0] != '\0') &&
        (strcmp(prov, core) != 0) &&
        (strcmp(prov, i->fabric_attr->prov_name) != 0)) {
        return 0;
    }
    if ((domain != NULL) && (domain[0] != '\0') &&
        (strcmp(domain, i->domain_attr->name) != 0)) {
        return 0;
    }
    return 1;
}

/* The entry of list to use: SCOMM_OFI_PROVIDER's, else by preference. */
static struct fi_info *ofi_choose(struct fi_info *list, const char *prov,
                                  const char *domain)
{
    struct fi_info *i;
    size_t k;

    if ((prov != NULL) && (prov[0] != '\0')) {
        for (i = list; i != NULL; i = i->next) {
            if (ofi_info_fits(i, prov, domain)) {
                return i;
            }
        }
        return NULL;
    }
    for (k = 0; k < SCOMM_ARRAY_SIZE(ofi_pref); k++) {
        for (i = list; i != NULL; i = i->next) {
            if (ofi_info_fits(i, ofi_pref[k], domain)) {
                return i;
            }
        }
    }
    return NULL;
}

int scomm_ofi_list_providers(char *out, size_t len)
{
    struct fi_info *hints, *list = NULL, *i, *j, *pick;
    size_t off = 0;
    int rc, n = 0;

    out[0] = '\0';
    hints  = ofi_hints(NULL);
    if (hints == NULL) {
        snprintf(out, len, "out of memory\n");
        return 0;
    }
    rc = fi_getinfo(OFI_API, NULL, NULL, 0, hints, &list);
    fi_freeinfo(hints);
    if (rc != 0) {
        snprintf(out, len, "none (fi_getinfo: %s)\n", fi_strerror(-rc));
        return 0;
    }
    pick = ofi_choose(list, NULL, NULL);
    for (i = list; (i != NULL) && (off < len); i = i->next) {
        for (j = list; j != i; j = j->next) { /* one line per triple */
            if ((strcmp(j->fabric_attr->prov_name,
                        i->fabric_attr->prov_name) == 0) &&
                (strcmp(j->domain_attr->name, i->domain_attr->name) == 0) &&
                (strcmp(j->fabric_attr->name, i->fabric_attr->name) == 0)) {
                break;
            }
        }
        if ((j != i) && (i != pick)) {
            continue;
        }
        off += (size_t)snprintf(out + off, len - off, "%s %-16s %-12s %s\n",
                                (i == pick) ? "*" : " ",
                                i->fabric_attr->prov_name,
                                i->domain_attr->name, i->fabric_attr->name);
        n++;
    }
    fi_freeinfo(list);
    return n;
}

/* ---- helpers ------------------------------------------------------------- */

static int ofi_dead(const ofi_ctx_t *c)
{
    return atomic_load_explicit(&c->w->fault.status,
                                memory_order_acquire) != 0;
}

static void ofi_fail_call(ofi_ctx_t *c, int peer, const char *what, int rc)
{
    if (peer >= 0) {
        scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, peer,
                         "rank %d (ofi %s %s) lost: %s: %s", peer, c->prov,
                         c->by_rank[peer]->addr_str, what, fi_strerror(-rc));
    } else {
        scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, -1, "ofi %s: %s: %s",
                         c->prov, what, fi_strerror(-rc));
    }
}

/* Register [addr, addr + len) with access; 0 or a negative fi error. */
static int ofi_mr_reg(ofi_ctx_t *c, const void *addr, size_t len,
                      uint64_t access, struct fid_mr **mr)
{
    struct fi_mr_attr a;
    struct iovec iov;

    memset(&a, 0, sizeof(a));
    iov.iov_base      = (void *)addr;
    iov.iov_len       = len;
    a.mr_iov          = &iov;
    a.iov_count       = 1;
    a.access          = access;
    a.requested_key   = c->prov_key ? 0 : ++c->next_key;
    a.iface           = ofi_hmem_iface(addr);
    return fi_mr_regattr(c->domain, &a, 0, mr);
}

/* Registration cache registrar (regcache.h). */
static int ofi_rc_reg(void *arg, void *addr, size_t len, void **handle,
                      void **desc, uint64_t *key)
{
    ofi_ctx_t *c = arg;
    struct fid_mr *mr;

    if (ofi_mr_reg(c, addr, len,
                   FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ |
                       FI_REMOTE_WRITE, &mr) != 0) {
        return -1;
    }
    *handle = mr;
    *desc   = fi_mr_desc(mr);
    *key    = fi_mr_key(mr);
    return 0;
}

static void ofi_rc_dereg(void *arg, void *handle)
{
    (void)arg;
    fi_close(&((struct fid_mr *)handle)->fid);
}

/* A registration covering [addr, addr + len): a mem_reg'ed range's, or a
 * new one for this message only (*owned set, closed by ofi_mr_release). */
static int ofi_mr_for(ofi_ctx_t *c, const void *addr, size_t len,
                      uint64_t access, void **desc, uint64_t *key,
                      uint64_t *raddr, ofi_mr_t **owned)
{
    uintptr_t a = (uintptr_t)addr;
    scomm_list_t *e, *t;
    ofi_mr_t *m;
    int rc;

    *owned = NULL;
    scomm_list_for_each_safe(e, t, &c->regs) {
        ofi_reg_t *r = scomm_container_of(e, ofi_reg_t, list);

        if ((a >= r->region->start) && (a + len <= r->region->end)) {
            *desc  = r->region->desc;
            *key   = r->region->key;
            *raddr = c->virt_addr ? a : a - r->region->start;
            return 0;
        }
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -FI_ENOMEM;
    }
    rc = ofi_mr_reg(c, addr, len, access, &m->mr);
    if (rc != 0) {
        free(m);
        return rc;
    }
    scomm_list_push_back(&c->msg_mrs, &m->list);
    *desc  = fi_mr_desc(m->mr);
    *key   = fi_mr_key(m->mr);
    *raddr = c->virt_addr ? a : 0;
    *owned = m;
    return 0;
}

static void ofi_mr_release(ofi_mr_t *m)
{
    if (m != NULL) {
        scomm_list_del(&m->list);
        fi_close(&m->mr->fid);
        free(m);
    }
}

/* Invariant 5: after a fault no registration of a message stays open. */
static void ofi_close_msg_mrs(ofi_ctx_t *c)
{
    scomm_list_t *e;

    while ((e = scomm_list_pop_front(&c->msg_mrs)) != NULL) {
        ofi_mr_t *m = scomm_container_of(e, ofi_mr_t, list);

        fi_close(&m->mr->fid);
        free(m);
    }
    c->mrs_closed = 1;
}

/* ---- posting ------------------------------------------------------------- */

/* Post op; -FI_EAGAIN queues it (in order: its peer's postq, or the
 * receive slots' repost list) for progress to retry. queued: op is the
 * head of its queue being retried. Returns 2 when a retried op went out,
 * 1 when posted or (still) queued, 0 after a failure (the world is
 * failed). */
static int ofi_post(ofi_ctx_t *c, ofi_op_t *op, int queued)
{
    ofi_peer_t *p = (op->peer >= 0) ? c->by_rank[op->peer] : NULL;
    ssize_t rc;

    if ((p != NULL) && !queued && !scomm_list_empty(&p->postq)) {
        scomm_list_push_back(&p->postq, &op->list);
        return 1;
    }
    switch (op->kind) {
    case OFI_OP_TX:
        rc = fi_tsend(c->ep, op->buf, op->len,
                      c->mr_local ? fi_mr_desc(c->tx_mr) : NULL, p->addr, 0,
                      &op->fctx);
        break;
    case OFI_OP_WRITE:
        rc = fi_writedata(c->ep, op->src, op->len, op->desc, op->data,
                          p->addr, op->raddr, op->rkey, &op->fctx);
        break;
    default:
        rc = fi_trecv(c->ep, op->buf, c->slot_size,
                      c->mr_local ? fi_mr_desc(c->rx_mr) : NULL,
                      FI_ADDR_UNSPEC, 0, ~(uint64_t)0, &op->fctx);
        break;
    }
    if (rc == -FI_EAGAIN) {
        if (!queued && (p != NULL)) {
            if (scomm_list_empty(&p->postq)) {
                c->nposting++;
            }
            scomm_list_push_back(&p->postq, &op->list);
        } else if (!queued) {
            scomm_list_push_back(&c->repost, &op->list);
        }
        return 1;
    }
    if (rc != 0) {
        ofi_fail_call(c, (p != NULL) ? op->peer : -1,
                      (op->kind == OFI_OP_RX) ? "fi_trecv" :
                      (op->kind == OFI_OP_TX) ? "fi_tsend" : "fi_writedata",
                      (int)rc);
        return 0;
    }
    return (queued) ? 2 : 1;
}

/* Retry the head of a queue until the provider refuses again; returns
 * the ops that went out. */
static int ofi_retry(ofi_ctx_t *c, scomm_list_t *q)
{
    int events = 0;

    while (!scomm_list_empty(q)) {
        ofi_op_t *op = scomm_container_of(q->next, ofi_op_t, list);

        if (ofi_post(c, op, 1) != 2) {
            break; /* still refused, or failed */
        }
        scomm_list_del(&op->list);
        events++;
    }
    return events;
}

/* Copy a message into a free send slot and post it; 0 when no slot is
 * free. */
static int ofi_emit(ofi_ctx_t *c, ofi_defer_t *d)
{
    ofi_peer_t *p = c->by_rank[d->peer];
    scomm_list_t *e;
    scomm_req_t *r;
    ofi_op_t *op;

    e = scomm_list_pop_front(&c->tx_free);
    if (e == NULL) {
        return 0;
    }
    op          = scomm_container_of(e, ofi_op_t, list);
    op->peer    = d->peer;
    op->hb      = (d->hdr.type == OFI_HEARTBEAT);
    d->hdr.seq  = p->tx_seq++;
    memcpy(op->buf, &d->hdr, sizeof(d->hdr));
    if (d->plen > 0) {
        memcpy(op->buf + sizeof(d->hdr), d->payload, d->plen);
    }
    op->len = sizeof(d->hdr) + d->plen;
    if (d->req_id != 0) {
        r = scomm_req_lookup(c->w, d->req_id);
        if (r != NULL) {
            r->xfer = r->len;
            scomm_req_complete(r, SCOMM_OK);
        }
    }
    (void)ofi_post(c, op, 0);
    return 1;
}

/* Send a header (and payload) to peer: now, or after the messages already
 * waiting for a slot. Returns SCOMM_OK or NO_MEMORY. */
static scomm_status_t ofi_queue(ofi_ctx_t *c, int peer, ofi_hdr_t *h,
                                const void *payload, size_t plen,
                                uint64_t req_id, const char *copy)
{
    ofi_defer_t d, *dp;

    h->src    = c->w->rank;
    h->jobkey = c->jobkey;
    memset(&d, 0, sizeof(d));
    d.peer    = peer;
    d.hdr     = *h;
    d.payload = payload;
    d.plen    = plen;
    d.req_id  = req_id;
    if (scomm_list_empty(&c->deferq) && ofi_emit(c, &d)) {
        return SCOMM_OK;
    }
    dp = malloc(sizeof(*dp));
    if (dp == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    *dp = d;
    if (copy != NULL) {
        dp->owned = malloc(plen + 1);
        if (dp->owned == NULL) {
            free(dp);
            return SCOMM_ERR_NO_MEMORY;
        }
        memcpy(dp->owned, copy, plen);
        dp->payload = dp->owned;
    }
    scomm_list_push_back(&c->deferq, &dp->list);
    return SCOMM_OK;
}

/* Retry what the provider refused, then fill free slots; returns events. */
static int ofi_flush(ofi_ctx_t *c)
{
    scomm_list_t *e;
    int events = 0, i;

    for (i = 0; (i < c->npeers) && (c->nposting > 0); i++) {
        if (!scomm_list_empty(&c->peers[i].postq)) {
            events += ofi_retry(c, &c->peers[i].postq);
            if (scomm_list_empty(&c->peers[i].postq)) {
                c->nposting--;
            }
        }
    }
    (void)ofi_retry(c, &c->repost);
    while (!scomm_list_empty(&c->deferq) && !scomm_list_empty(&c->tx_free)) {
        ofi_defer_t *d = scomm_container_of(c->deferq.next, ofi_defer_t,
                                            list);

        e = &d->list;
        scomm_list_del(e);
        (void)ofi_emit(c, d);
        free(d->owned);
        free(d);
        events++;
    }
    return events;
}

/* ---- sending ------------------------------------------------------------- */

static scomm_status_t ofi_send(void *vctx, scomm_req_t *req)
{
    ofi_ctx_t *c = vctx;
    ofi_hdr_t h;

    memset(&h, 0, sizeof(h));
    h.ctx = req->ctx;
    h.tag = req->tag;
    h.len = req->len;
    h.id  = req->id;
    if (req->len <= c->eager_max) {
        h.type = OFI_EAGER;
        return ofi_queue(c, req->peer, &h, req->buf, req->len, req->id,
                         NULL);
    }
    h.type = OFI_RTS;
    return ofi_queue(c, req->peer, &h, NULL, 0, 0, NULL);
}

/* The receiver matched our RTS: write the payload into its buffer. */
static void ofi_on_cts(ofi_ctx_t *c, int peer, const ofi_hdr_t *h)
{
    scomm_req_t *r = scomm_req_lookup(c->w, h->id);
    uint64_t off, n, nchunks, raddr;
    ofi_mr_t *owned = NULL;
    void *desc = NULL;
    ofi_op_t *op;
    uint64_t key;
    int rc;

    if ((r == NULL) || (r->type != SCOMM_REQ_SEND) || (r->peer != peer)) {
        return; /* released meanwhile (a fault): nothing to send */
    }
    if (h->aux == 0) {
        scomm_req_truncated(r, peer);
        return;
    }
    if (c->mr_local) {
        rc = ofi_mr_for(c, r->buf, r->len, FI_WRITE | FI_SEND, &desc, &key,
                        &raddr, &owned);
        if (rc != 0) {
            scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, peer,
                             "ofi %s: cannot register the %zu-byte send "
                             "buffer for rank %d: %s", c->prov, r->len, peer,
                             fi_strerror(-rc));
            return;
        }
    }
    nchunks        = (r->len + h->aux32 - 1) / h->aux32;
    r->tl_u64[0]   = nchunks;
    r->tl_ptr[0]   = owned;
    for (off = 0; off < r->len; off += n) {
        n  = SCOMM_MIN((uint64_t)h->aux32, r->len - off);
        op = calloc(1, sizeof(*op));
        if (op == NULL) {
            scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, peer,
                             "ofi: out of memory for a write to rank %d",
                             peer);
            return;
        }
        op->kind   = OFI_OP_WRITE;
        op->peer   = peer;
        op->req_id = r->id;
        op->src    = (const char *)r->buf + off;
        op->len    = (size_t)n;
        op->desc   = desc;
        op->raddr  = h->raddr + off;
        op->rkey   = h->rkey;
        op->data   = h->aux;
        if (!ofi_post(c, op, 0)) {
            free(op);
            return;
        }
    }
}

/* The completion data naming a receive, as the provider can carry it. */
static uint64_t ofi_cq_data_of(const ofi_ctx_t *c, uint64_t id)
{
    return (c->cq_data_size >= 8) ? id : (uint32_t)id;
}

static scomm_req_t *ofi_req_of_data(ofi_ctx_t *c, uint64_t data)
{
    scomm_world_t *w = c->w;
    uint32_t slot    = (uint32_t)data;

    if (c->cq_data_size >= 8) {
        return scomm_req_lookup(w, data);
    }
    if (slot >= w->req_cap) {
        return NULL;
    }
    return scomm_req_lookup(w, ((uint64_t)w->req_gen[slot] << 32) | slot);
}

static scomm_status_t ofi_rndv_start(void *vctx, int peer, scomm_req_t *rreq,
                                     const scomm_tl_cookie_t *cookie,
                                     scomm_status_t reject)
{
    ofi_ctx_t *c = vctx;
    ofi_mr_t *owned = NULL;
    void *desc;
    ofi_hdr_t h;
    int rc;

    (void)reject;
    memset(&h, 0, sizeof(h));
    h.type = OFI_CTS;
    h.id   = cookie->u64[0];
    if (rreq != NULL) {
        rc = ofi_mr_for(c, rreq->buf, rreq->xfer, FI_REMOTE_WRITE | FI_RECV,
                        &desc, &h.rkey, &h.raddr, &owned);
        if (rc != 0) {
            scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, peer,
                             "ofi %s: cannot register the %zu-byte receive "
                             "buffer for rank %d's message: %s", c->prov,
                             rreq->xfer, peer, fi_strerror(-rc));
            return SCOMM_ERR_SYSTEM;
        }
        h.aux           = ofi_cq_data_of(c, rreq->id);
        h.aux32         = (uint32_t)c->chunk;
        rreq->tl_u64[2] = OFI_RNDV_MAGIC;
        rreq->tl_u64[3] = (rreq->xfer + c->chunk - 1) / c->chunk;
        rreq->tl_u64[4] = (uint64_t)peer;
        rreq->tl_ptr[0] = owned;
    }
    return ofi_queue(c, peer, &h, NULL, 0, 0, NULL);
}

/* A chunk of a rendezvous write landed in one of our receives. */
static void ofi_on_remote_write(ofi_ctx_t *c, uint64_t data)
{
    scomm_req_t *r = ofi_req_of_data(c, data);

    if ((r == NULL) || (r->type != SCOMM_REQ_RECV) ||
        (r->tl_u64[2] != OFI_RNDV_MAGIC) || (r->tl_u64[3] == 0)) {
        return; /* released (a fault); its registration is closed */
    }
    c->by_rank[r->tl_u64[4]]->last_heard = scomm_now_ns();
    if (--r->tl_u64[3] == 0) {
        r->tl_u64[2] = 0;
        ofi_mr_release(r->tl_ptr[0]);
        r->tl_ptr[0] = NULL;
        scomm_req_complete(r, SCOMM_OK);
    }
}

/* ---- receiving ----------------------------------------------------------- */

/*
 * Invariant 1: is the message of got bytes at buf acceptable? Returns 1
 * (act on it), 0 (a stranger's: drop it) or -1 (malformed: fail the
 * world naming the sender, done here).
 */
static int ofi_hdr_check(ofi_ctx_t *c, const char *buf, size_t got,
                         ofi_hdr_t *h)
{
    const char *why = NULL;
    uint64_t plen;

    if (got < sizeof(*h)) {
        scomm_warn(SCOMM_SUB_RDMA, "ofi: dropped a %zu-byte message: "
                   "shorter than a header", got);
        return 0;
    }
    memcpy(h, buf, sizeof(*h));
    if (h->jobkey != c->jobkey) {
        scomm_warn(SCOMM_SUB_RDMA, "ofi: dropped a message with another "
                   "job's key (a stranger, or a rank of another job)");
        return 0;
    }
    if ((h->src < 0) || (h->src >= c->w->size) ||
        (c->by_rank[h->src] == NULL)) {
        scomm_warn(SCOMM_SUB_RDMA, "ofi: dropped a message claiming rank "
                   "%d, not a peer of this transport", (int)h->src);
        return 0;
    }
    plen = got - sizeof(*h);
    switch (h->type) {
    case OFI_EAGER:
        if ((h->len != plen) || (h->len > c->eager_max)) {
            why = "eager length does not match the bytes received";
        }
        break;
    case OFI_ABORT:
        if ((h->len != plen) || (h->len > OFI_ABORT_MAX)) {
            why = "abort text length does not match the bytes received";
        }
        break;
    case OFI_RTS:
        if ((plen != 0) || (h->len <= c->eager_max)) {
            why = "rendezvous of an eager-sized message";
        }
        break;
    case OFI_CTS:
        if ((plen != 0) || ((h->aux != 0) && (h->aux32 == 0))) {
            why = "clear-to-send with a zero chunk size";
        }
        break;
    case OFI_HELLO:
    case OFI_HEARTBEAT:
    case OFI_BYE:
        if (plen != 0) {
            why = "control message with a payload";
        }
        break;
    default:
        why = "unknown message type";
        break;
    }
    if (why != NULL) {
        scomm_world_fail(c->w, SCOMM_ERR_PROTOCOL, h->src,
                         "ofi: malformed message from rank %d: %s",
                         (int)h->src, why);
        return -1;
    }
    return 1;
}

/* Act on a checked message that is next in its sender's order. */
static void ofi_deliver(ofi_ctx_t *c, const ofi_hdr_t *h, const char *payload)
{
    scomm_tl_cookie_t cookie;
    char text[OFI_ABORT_MAX + 1];

    switch (h->type) {
    case OFI_HELLO:
        c->by_rank[h->src]->hello = 1;
        break;
    case OFI_EAGER:
        scomm_p2p_eager_copy(c->w, h->src, h->ctx, h->tag, payload,
                             (size_t)h->len);
        break;
    case OFI_RTS:
        memset(&cookie, 0, sizeof(cookie));
        cookie.u64[0] = h->id;
        cookie.u64[2] = h->len;
        scomm_p2p_rts(c->w, h->src, h->ctx, h->tag, (size_t)h->len, &cookie);
        break;
    case OFI_CTS:
        ofi_on_cts(c, h->src, h);
        break;
    case OFI_BYE:
        scomm_world_peer_closed(c->w, h->src);
        break;
    case OFI_ABORT:
        memcpy(text, payload, (size_t)h->len);
        text[h->len] = '\0';
        scomm_world_fail(c->w, scomm_status_from_peer(h->tag),
                         (int)(int32_t)h->aux32, "%s", text);
        break;
    default: /* HEARTBEAT: the sign of life is noted already */
        break;
    }
}

/* A receive slot completed with got bytes. */
static void ofi_on_recv(ofi_ctx_t *c, const char *buf, size_t got)
{
    ofi_peer_t *p;
    ofi_stash_t *s;
    scomm_list_t *e, *t;
    ofi_hdr_t h;
    int found;

    if (ofi_hdr_check(c, buf, got, &h) <= 0) {
        return;
    }
    p             = c->by_rank[h.src];
    p->last_heard = scomm_now_ns();
    if (h.seq != p->rx_seq) {
        /* Early (invariant 2): hold a copy until its turn. */
        if (((uint32_t)(h.seq - p->rx_seq) > (1u << 30)) ||
            (p->nstash >= OFI_STASH_MAX)) {
            scomm_world_fail(c->w, SCOMM_ERR_PROTOCOL, h.src,
                             "ofi: message %u from rank %d out of order "
                             "(expected %u)", h.seq, (int)h.src, p->rx_seq);
            return;
        }
        s = malloc(sizeof(*s) + got);
        if (s == NULL) {
            scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, h.src,
                             "ofi: out of memory holding a message of "
                             "rank %d", (int)h.src);
            return;
        }
        s->seq = h.seq;
        s->len = got;
        memcpy(s->data, buf, got);
        scomm_list_push_back(&p->stash, &s->list);
        p->nstash++;
        return;
    }
    p->rx_seq++;
    ofi_deliver(c, &h, buf + sizeof(h));
    do {
        found = 0;
        scomm_list_for_each_safe(e, t, &p->stash) {
            s = scomm_container_of(e, ofi_stash_t, list);
            if (s->seq == p->rx_seq) {
                scomm_list_del(&s->list);
                p->nstash--;
                p->rx_seq++;
                memcpy(&h, s->data, sizeof(h));
                ofi_deliver(c, &h, s->data + sizeof(h));
                free(s);
                found = 1;
                break;
            }
        }
    } while (found && !ofi_dead(c));
}

/* ---- completions --------------------------------------------------------- */

static void ofi_op_done(ofi_ctx_t *c, ofi_op_t *op, int ok)
{
    scomm_req_t *r;

    switch (op->kind) {
    case OFI_OP_TX:
        if (op->hb && (c->by_rank[op->peer] != NULL)) {
            c->by_rank[op->peer]->hb_inflight = 0;
        }
        scomm_list_push_back(&c->tx_free, &op->list);
        break;
    case OFI_OP_RX:
        if (ok && !ofi_dead(c)) {
            (void)ofi_post(c, op, 0);
        }
        break;
    case OFI_OP_WRITE:
        r = scomm_req_lookup(c->w, op->req_id);
        if (ok && (r != NULL) && (r->tl_u64[0] > 0) &&
            (--r->tl_u64[0] == 0)) {
            ofi_mr_release(r->tl_ptr[0]);
            r->tl_ptr[0] = NULL;
            r->xfer      = r->len;
            scomm_req_complete(r, SCOMM_OK);
        }
        free(op);
        break;
    }
}

static void ofi_on_cq_error(ofi_ctx_t *c)
{
    struct fi_cq_err_entry err;
    char pbuf[160];
    const char *perr;
    ofi_op_t *op;

    memset(&err, 0, sizeof(err));
    if (fi_cq_readerr(c->cq, &err, 0) != 1) {
        return;
    }
    op = err.op_context;
    if ((op != NULL) && (op->kind == OFI_OP_RX) && (err.err == FI_ETRUNC)) {
        scomm_warn(SCOMM_SUB_RDMA, "ofi: dropped a message longer than a "
                   "receive slot (%zu bytes): not from a rank of this job",
                   c->slot_size);
        ofi_op_done(c, op, 1);
        return;
    }
    if ((op == NULL) || (err.err == FI_ECANCELED)) {
        if (op != NULL) {
            ofi_op_done(c, op, 0);
        }
        return;
    }
    perr = fi_cq_strerror(c->cq, err.prov_errno, err.err_data, pbuf,
                          sizeof(pbuf));
    if ((op->peer >= 0) && !c->w->peers[op->peer].closed) {
        scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, op->peer,
                         "rank %d (ofi %s %s) lost: %s (%s)", op->peer,
                         c->prov, c->by_rank[op->peer]->addr_str,
                         fi_strerror(err.err), (perr != NULL) ? perr : "");
    } else if (op->peer < 0) {
        scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, -1,
                         "ofi %s: a receive failed: %s (%s)", c->prov,
                         fi_strerror(err.err), (perr != NULL) ? perr : "");
    }
    ofi_op_done(c, op, 0);
}

static int ofi_progress(void *vctx)
{
    ofi_ctx_t *c = vctx;
    struct fi_cq_data_entry ents[OFI_CQ_BATCH];
    ssize_t n, i;
    int events = 0;

    if (c->ep == NULL) {
        return 0;
    }
    if (SCOMM_UNLIKELY(ofi_dead(c)) && !c->mrs_closed) {
        ofi_close_msg_mrs(c);
    }
    for (;;) {
        n = fi_cq_read(c->cq, ents, OFI_CQ_BATCH);
        if (n == -FI_EAVAIL) {
            ofi_on_cq_error(c);
            events++;
            continue;
        }
        if (n <= 0) {
            break;
        }
        for (i = 0; i < n; i++) {
            ofi_op_t *op = ents[i].op_context;

            events++;
            if (ents[i].flags & FI_REMOTE_WRITE) {
                if (ents[i].flags & FI_REMOTE_CQ_DATA) {
                    ofi_on_remote_write(c, ents[i].data);
                }
                if ((op != NULL) && (op->kind == OFI_OP_RX)) {
                    ofi_op_done(c, op, 1); /* FI_RX_CQ_DATA: repost */
                }
                continue;
            }
            if (op == NULL) {
                continue;
            }
            if (op->kind == OFI_OP_RX) {
                ofi_on_recv(c, op->buf, ents[i].len);
            }
            ofi_op_done(c, op, 1);
        }
        if (n < OFI_CQ_BATCH) {
            break;
        }
    }
    if ((c->nposting > 0) || !scomm_list_empty(&c->deferq) ||
        !scomm_list_empty(&c->repost)) {
        events += ofi_flush(c);
    }
    return events;
}

/* ---- waiting and liveness ------------------------------------------------ */

static int ofi_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    ofi_ctx_t *c = vctx;
    struct fid *f;
    int i, n = 0;

    if ((c->ep == NULL) || (max < 1)) {
        return 0;
    }
    f = &c->cq->fid;
    if ((c->cq_fd < 0) || (fi_trywait(c->fabric, &f, 1) != FI_SUCCESS) ||
        (c->nposting > 0) || !scomm_list_empty(&c->repost)) {
        /* Work pending, or nothing to sleep on: no sleep this turn. */
        scomm_world_wake(c->w);
    } else {
        n = scomm_pollfd_add(fds, n, max, c->cq_fd, POLLIN);
    }
    for (i = 0; i < c->npeers; i++) {
        if ((c->peers[i].pidfd >= 0) && !c->w->peers[c->peers[i].rank].closed) {
            n = scomm_pollfd_add(fds, n, max, c->peers[i].pidfd, POLLIN);
        }
    }
    return n;
}

/*
 * A remote peer of the tcp provider silent for two heartbeat intervals
 * (the world's default timeout's, as the core's suspects check counts):
 * is its process still there? tcp;ofi_rxm reports no error for messages
 * to a dead peer (it retries the connection and keeps them queued), but
 * the peer's endpoint address is its provider's listening socket: a
 * connect there is refused once the process is gone, and accepted by the
 * kernel while it is merely stopped or busy. One probe at a time, never
 * blocking; refused is PEER_LOST naming it, anything else decides nothing
 * (a stopped peer is named by the core's suspects check at the deadline).
 */
static void ofi_probe(ofi_ctx_t *c, ofi_peer_t *p, uint64_t now)
{
    const scomm_rankinfo_t *pin = &c->w->info[p->rank];
    uint64_t stale = 2 * scomm_hb_interval_ns(c->w, c->w->cfg.timeout_ms);
    struct sockaddr_storage ss;
    socklen_t len, elen;
    int err = 0;

    if (p->probe_fd >= 0) {
        if (!scomm_fd_ready(p->probe_fd, POLLOUT)) {
            if (now - p->probe_at > stale) {
                close(p->probe_fd); /* unanswered: decides nothing */
                p->probe_fd = -1;
            }
            return;
        }
        elen = sizeof(err);
        (void)getsockopt(p->probe_fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        close(p->probe_fd);
        p->probe_fd = -1;
    } else {
        len = (socklen_t)(pin->tl_blob_len - OFI_PROV_LEN);
        if ((now - p->last_heard < stale) || (now - p->probe_at < stale) ||
            (len > sizeof(ss))) {
            return;
        }
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, pin->tl_blob + OFI_PROV_LEN, len);
        if ((ss.ss_family != AF_INET) && (ss.ss_family != AF_INET6)) {
            return;
        }
        p->probe_at = now;
        p->probe_fd = socket(ss.ss_family,
                             SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->probe_fd < 0) {
            return;
        }
        if (connect(p->probe_fd, (struct sockaddr *)&ss, len) == 0) {
            close(p->probe_fd);
            p->probe_fd = -1;
            return;
        }
        err = errno;
        if (err == EINPROGRESS) {
            return;
        }
        close(p->probe_fd);
        p->probe_fd = -1;
    }
    if ((err == ECONNREFUSED) && !c->w->peers[p->rank].closed) {
        scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, p->rank,
                         "rank %d (ofi %s %s) lost: silent for %llu ms and "
                         "its endpoint refuses connections (the process is "
                         "gone)", p->rank, c->prov, p->addr_str,
                         (unsigned long long)((now - p->last_heard) /
                                              1000000ull));
    }
}

/* Local peers: a pidfd that turned readable is a dead process (what it
 * sent before, a BYE, is drained first). Remote peers of the tcp
 * provider: ofi_probe. */
static void ofi_check_peers(void *vctx)
{
    ofi_ctx_t *c = vctx;
    uint64_t now = scomm_now_ns();
    ofi_peer_t *p;
    int i;

    for (i = 0; i < c->npeers; i++) {
        p = &c->peers[i];
        if (c->w->peers[p->rank].closed) {
            continue;
        }
        if (p->pidfd < 0) {
            if (c->kernel && (strcmp(c->prov, "tcp") == 0)) {
                ofi_probe(c, p, now);
                if (ofi_dead(c)) {
                    return;
                }
            }
            continue;
        }
        if (!scomm_fd_ready(p->pidfd, POLLIN)) {
            continue;
        }
        while (ofi_progress(c) > 0) {
        }
        if (!c->w->peers[p->rank].closed) {
            scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, p->rank,
                             "rank %d (ofi %s %s, pid %d on this host) "
                             "lost: the process exited", p->rank, c->prov,
                             p->addr_str, (int)c->w->info[p->rank].pid);
            return;
        }
    }
}

/* A header-only message (or abort text) to every peer still there. */
static void ofi_broadcast(ofi_ctx_t *c, uint8_t type, int32_t tag,
                          int32_t rank, const char *msg, int skip)
{
    size_t len = (msg != NULL) ? strnlen(msg, OFI_ABORT_MAX) : 0;
    ofi_hdr_t h;
    int i;

    for (i = 0; i < c->npeers; i++) {
        if ((c->peers[i].rank == skip) ||
            c->w->peers[c->peers[i].rank].closed) {
            continue;
        }
        memset(&h, 0, sizeof(h));
        h.type  = type;
        h.tag   = tag;
        h.aux32 = (uint32_t)rank;
        h.len   = len;
        (void)ofi_queue(c, c->peers[i].rank, &h, msg, len, 0, msg);
    }
}

/* Progress until every send slot is back and nothing waits, or for at
 * most ms (nobody progresses a closing or failed world). */
static void ofi_push(ofi_ctx_t *c, int ms)
{
    uint64_t deadline = scomm_deadline_ms(ms);
    scomm_list_t *e, *t;
    int free_n;

    do {
        (void)ofi_progress(c);
        free_n = 0;
        scomm_list_for_each_safe(e, t, &c->tx_free) {
            free_n++;
        }
        if ((free_n == c->depth) && scomm_list_empty(&c->deferq) &&
            (c->nposting == 0)) {
            return;
        }
        usleep(100);
    } while (scomm_now_ns() < deadline);
}

/* One HEARTBEAT to every peer that has none in flight: a peer that takes
 * none (dead, stopped) holds one send slot, not all of them, and the
 * others still hear from us. */
static void ofi_heartbeat(void *vctx, uint64_t now)
{
    ofi_ctx_t *c = vctx;
    ofi_hdr_t h;
    int i;

    (void)now; /* the wait loop paces the calls */
    for (i = 0; (c->ep != NULL) && (i < c->npeers); i++) {
        ofi_peer_t *p = &c->peers[i];

        if (p->hb_inflight || c->w->peers[p->rank].closed) {
            continue;
        }
        memset(&h, 0, sizeof(h));
        h.type = OFI_HEARTBEAT;
        if (ofi_queue(c, p->rank, &h, NULL, 0, 0, NULL) == SCOMM_OK) {
            p->hb_inflight = 1;
        }
    }
}

static uint64_t ofi_last_heard(void *vctx, int peer)
{
    ofi_ctx_t *c = vctx;

    if ((c->by_rank == NULL) || (c->by_rank[peer] == NULL)) {
        return 0;
    }
    return c->by_rank[peer]->last_heard;
}

static void ofi_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    ofi_ctx_t *c = vctx;

    if ((c->ep == NULL) || (c->peers == NULL)) {
        return;
    }
    ofi_broadcast(c, OFI_ABORT, info->status, info->failed_rank, info->msg,
                  info->failed_rank);
    ofi_push(c, OFI_LINGER_MS);
}

/* ---- set-up -------------------------------------------------------------- */

static void ofi_fini(void *vctx);

static int ofi_unsupported(ofi_ctx_t *c, const char *fmt, const char *a,
                           const char *b)
{
    char msg[256];

    snprintf(msg, sizeof(msg), fmt, a, b);
    scomm_set_thread_error("ofi: %s (SCOMM_OFI_PROVIDER='%s', "
                           "SCOMM_OFI_DOMAIN='%s')", msg,
                           c->w->cfg.ofi_provider, c->w->cfg.ofi_domain);
    return SCOMM_ERR_UNSUPPORTED;
}

/* fi_getinfo, then the entry to use (c->info owns the copy). */
static scomm_status_t ofi_getinfo(ofi_ctx_t *c)
{
    scomm_world_t *w = c->w;
    struct fi_info *hints, *list = NULL, *pick, *again = NULL;
    struct sockaddr_storage ss;
    char core[OFI_PROV_LEN], host[SCOMM_ADDR_MAX], err[200];
    socklen_t sslen;
    int rc;

    hints = ofi_hints(NULL);
    if (hints == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    rc = fi_getinfo(OFI_API, NULL, NULL, 0, hints, &list);
    fi_freeinfo(hints);
    if (rc != 0) {
        return ofi_unsupported(c, "no libfabric provider offers RDM "
                               "endpoints with tagged messages and RMA "
                               "(fi_getinfo: %s)%s", fi_strerror(-rc), "");
    }
    pick = ofi_choose(list, w->cfg.ofi_provider, w->cfg.ofi_domain);
    if (pick == NULL) {
        fi_freeinfo(list);
        return ofi_unsupported(c, "no libfabric provider fits%s%s (`scomm "
                               "probe` lists those found)", "", "");
    }
    ofi_core_name(pick->fabric_attr->prov_name, core, sizeof(core));
    if ((strcmp(core, "tcp") == 0) && (w->cfg.ofi_domain[0] == '\0')) {
        /* The tcp provider: its endpoint on the interface of the route to
         * the master, as scomm's tcp transport does. */
        if (scomm_sock_pick_local(w->cfg.tcp_ifname, "SCOMM_TCP_IFNAME",
                                  w->master_addr, w->master_port, &ss,
                                  &sslen, err, sizeof(err)) != 0) {
            fi_freeinfo(list);
            scomm_world_fail(w, SCOMM_ERR_BAD_CONFIG, -1, "ofi: %s", err);
            return SCOMM_ERR_BAD_CONFIG;
        }
        scomm_sock_addr_str(&ss, host, sizeof(host), NULL);
        hints = ofi_hints(pick->fabric_attr->prov_name);
        if (hints == NULL) {
            fi_freeinfo(list);
            return SCOMM_ERR_NO_MEMORY;
        }
        rc = fi_getinfo(OFI_API, host, NULL, FI_SOURCE, hints, &again);
        fi_freeinfo(hints);
        if ((rc == 0) && (ofi_choose(again, core, NULL) != NULL)) {
            c->info = fi_dupinfo(ofi_choose(again, core, NULL));
        }
        if (again != NULL) {
            fi_freeinfo(again);
        }
    }
    if (c->info == NULL) {
        c->info = fi_dupinfo(pick);
    }
    fi_freeinfo(list);
    return (c->info != NULL) ? SCOMM_OK : SCOMM_ERR_NO_MEMORY;
}

static void ofi_close_fid(struct fid *fid)
{
    if (fid != NULL) {
        fi_close(fid);
    }
}

static int ofi_rdm_open_once(struct fi_info *info, size_t cq_size,
                             size_t av_count, const scomm_ofi_rdm_t *r,
                             const char **step)
{
    struct fi_cq_attr cqa;
    struct fi_av_attr ava;
    int rc;

    *r->cq_fd = -1;
    *step = "fi_fabric";
    rc    = fi_fabric(info->fabric_attr, r->fabric, NULL);
    if (rc == 0) {
        *step = "fi_domain";
        rc    = fi_domain(*r->fabric, info, r->domain, NULL);
    }
    if (rc == 0) {
        memset(&cqa, 0, sizeof(cqa));
        cqa.format   = FI_CQ_FORMAT_DATA;
        cqa.wait_obj = FI_WAIT_FD;
        cqa.size     = cq_size;
        *step        = "fi_cq_open";
        rc           = fi_cq_open(*r->domain, &cqa, r->cq, NULL);
        if (rc != 0) {
            cqa.wait_obj = FI_WAIT_NONE; /* polled, then */
            rc = fi_cq_open(*r->domain, &cqa, r->cq, NULL);
        } else if (fi_control(&(*r->cq)->fid, FI_GETWAIT, r->cq_fd) != 0) {
            *r->cq_fd = -1;
        }
    }
    if (rc == 0) {
        memset(&ava, 0, sizeof(ava));
        ava.type  = FI_AV_TABLE;
        ava.count = av_count;
        *step     = "fi_av_open";
        rc        = fi_av_open(*r->domain, &ava, r->av, NULL);
    }
    if (rc == 0) {
        *step = "fi_endpoint";
        rc    = fi_endpoint(*r->domain, info, r->ep, NULL);
    }
    if (rc == 0) {
        *step = "fi_ep_bind";
        rc    = fi_ep_bind(*r->ep, &(*r->cq)->fid, FI_TRANSMIT | FI_RECV);
    }
    if (rc == 0) {
        rc = fi_ep_bind(*r->ep, &(*r->av)->fid, 0);
    }
    if (rc == 0) {
        *step = "fi_enable";
        rc    = fi_enable(*r->ep);
    }
    return rc;
}

int scomm_ofi_rdm_open(struct fi_info *info, size_t cq_size,
                       size_t av_count, const scomm_ofi_rdm_t *r,
                       const char **step)
{
    int rc, tries;

    for (tries = 1;; tries++) {
        rc = ofi_rdm_open_once(info, cq_size, av_count, r, step);
        if ((rc != -FI_EADDRINUSE) || (tries == OFI_BIND_TRIES)) {
            return rc;
        }
        /* The port the kernel gave the provider's listening socket (port
         * 0) was taken before its listen() by a socket bound to it
         * explicitly with SO_REUSEADDR: fresh objects get a fresh port.
         * All of them: tcp;ofi_rxm leaves the completion queue unusable
         * (a crash in fi_trywait) once an endpoint bound to it failed to
         * enable. Children before parents. */
        scomm_debug(SCOMM_SUB_RDMA, "ofi %s: %s: %s, opening the endpoint "
                    "again (%d of %d)", info->fabric_attr->prov_name,
                    *step, fi_strerror(-rc), tries + 1, OFI_BIND_TRIES);
        ofi_close_fid(*r->ep ? &(*r->ep)->fid : NULL);
        ofi_close_fid(*r->av ? &(*r->av)->fid : NULL);
        ofi_close_fid(*r->cq ? &(*r->cq)->fid : NULL);
        ofi_close_fid(*r->domain ? &(*r->domain)->fid : NULL);
        ofi_close_fid(*r->fabric ? &(*r->fabric)->fid : NULL);
        *r->ep     = NULL;
        *r->av     = NULL;
        *r->cq     = NULL;
        *r->domain = NULL;
        *r->fabric = NULL;
    }
}

static scomm_status_t ofi_slabs(ofi_ctx_t *c)
{
    size_t bytes;
    int i, rc;

    c->depth     = (int)SCOMM_MIN((size_t)c->w->cfg.ofi_depth,
                                  SCOMM_MIN(c->info->tx_attr->size,
                                            c->info->rx_attr->size));
    c->depth     = SCOMM_MAX(c->depth, 4);
    c->slot_size = sizeof(ofi_hdr_t) +
                   SCOMM_MAX((size_t)c->eager_max, (size_t)OFI_ABORT_MAX);
    c->slot_size = SCOMM_ALIGN_UP(c->slot_size, 64);
    bytes        = c->slot_size * (size_t)c->depth;
    c->tx_slab   = aligned_alloc(4096, SCOMM_ALIGN_UP(bytes, 4096));
    c->rx_slab   = aligned_alloc(4096, SCOMM_ALIGN_UP(bytes, 4096));
    c->tx_ops    = calloc((size_t)c->depth, sizeof(*c->tx_ops));
    c->rx_ops    = calloc((size_t)c->depth, sizeof(*c->rx_ops));
    if ((c->tx_slab == NULL) || (c->rx_slab == NULL) || (c->tx_ops == NULL) ||
        (c->rx_ops == NULL)) {
        return SCOMM_ERR_NO_MEMORY;
    }
    if (c->mr_local) {
        rc = ofi_mr_reg(c, c->tx_slab, bytes, FI_SEND, &c->tx_mr);
        if (rc == 0) {
            rc = ofi_mr_reg(c, c->rx_slab, bytes, FI_RECV, &c->rx_mr);
        }
        if (rc != 0) {
            scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, -1, "ofi %s: cannot "
                             "register %zu bytes of message buffers: %s",
                             c->prov, 2 * bytes, fi_strerror(-rc));
            return SCOMM_ERR_SYSTEM;
        }
    }
    for (i = 0; i < c->depth; i++) {
        c->tx_ops[i].kind = OFI_OP_TX;
        c->tx_ops[i].buf  = c->tx_slab + (size_t)i * c->slot_size;
        scomm_list_push_back(&c->tx_free, &c->tx_ops[i].list);
        c->rx_ops[i].kind = OFI_OP_RX;
        c->rx_ops[i].peer = -1;
        c->rx_ops[i].buf  = c->rx_slab + (size_t)i * c->slot_size;
    }
    return SCOMM_OK;
}

static scomm_status_t ofi_open(ofi_ctx_t *c);

static scomm_status_t ofi_init(scomm_world_t *w, void **ctx_p)
{
    ofi_ctx_t *c;
    int rc;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    c->w     = w;
    c->cq_fd = -1;
    scomm_list_init(&c->tx_free);
    scomm_list_init(&c->deferq);
    scomm_list_init(&c->repost);
    scomm_list_init(&c->msg_mrs);
    scomm_list_init(&c->regs);
    c->jobkey = scomm_hash64(w->token, strlen(w->token), 0x6f6669u) | 1;
    *ctx_p    = c;
    if (w->size == 1) {
        return SCOMM_OK;
    }
    rc = (int)ofi_getinfo(c);
    if (rc == SCOMM_OK) {
        rc = (int)ofi_open(c);
    }
    if (rc != SCOMM_OK) {
        /* The core forgets a transport whose init fails (another may
         * carry on after UNSUPPORTED) and calls no fini: release
         * everything here. */
        ofi_fini(c);
        *ctx_p = NULL;
    }
    return (scomm_status_t)rc;
}

/* The endpoint, its address in this rank's record, the slots. */
static scomm_status_t ofi_open(ofi_ctx_t *c)
{
    scomm_world_t *w = c->w;
    const char *step;
    size_t alen;
    int rc;

    ofi_core_name(c->info->fabric_attr->prov_name, c->prov, sizeof(c->prov));
    c->mr_local     = (c->info->domain_attr->mr_mode & FI_MR_LOCAL) != 0;
    c->virt_addr    = (c->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != 0;
    c->prov_key     = (c->info->domain_attr->mr_mode & FI_MR_PROV_KEY) != 0;
    c->kernel       = (strcmp(c->prov, "tcp") == 0) ||
                      (strcmp(c->prov, "sockets") == 0) ||
                      (strcmp(c->prov, "udp") == 0);
    c->cq_data_size = c->info->domain_attr->cq_data_size;
    c->eager_max    = SCOMM_MIN(w->cfg.ofi_eager_max,
                                c->info->ep_attr->max_msg_size -
                                    sizeof(ofi_hdr_t));
    c->chunk        = SCOMM_MIN(w->cfg.ofi_rma_chunk,
                                SCOMM_MIN(c->info->ep_attr->max_msg_size,
                                          (uint64_t)UINT32_MAX & ~4095ull));
    rc = scomm_ofi_rdm_open(c->info, (size_t)w->cfg.ofi_depth * 4,
                            (size_t)w->size,
                            &(scomm_ofi_rdm_t){&c->fabric, &c->domain,
                                               &c->cq, &c->cq_fd, &c->av,
                                               &c->ep}, &step);
    if (rc == 0) {
        step = "fi_getname";
        alen = OFI_ADDR_MAX;
        rc   = fi_getname(&c->ep->fid, w->info[w->rank].tl_blob + OFI_PROV_LEN,
                          &alen);
    }
    if (rc != 0) {
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1, "ofi %s (%s): %s: %s",
                         c->info->fabric_attr->prov_name,
                         c->info->domain_attr->name, step, fi_strerror(-rc));
        return SCOMM_ERR_SYSTEM;
    }
    memcpy(w->info[w->rank].tl_blob, c->prov, OFI_PROV_LEN);
    w->info[w->rank].tl_blob_len = (uint32_t)(OFI_PROV_LEN + alen);
    if (scomm_rcache_init(&c->rcache,
                          &(scomm_rcache_ops_t){ofi_rc_reg, ofi_rc_dereg}, c,
                          w->cfg.ofi_rcache_max, 1024,
                          (size_t)sysconf(_SC_PAGESIZE)) == 0) {
        c->rcache_on = 1;
    }
    rc = (int)ofi_slabs(c);
    if (rc != SCOMM_OK) {
        return (scomm_status_t)rc;
    }
    scomm_debug(SCOMM_SUB_RDMA, "ofi: provider %s, domain %s, fabric %s, "
                "eager %llu, depth %d, wait %s",
                c->info->fabric_attr->prov_name, c->info->domain_attr->name,
                c->info->fabric_attr->name,
                (unsigned long long)c->eager_max, c->depth,
                (c->cq_fd >= 0) ? "fd" : "polling");
    return SCOMM_OK;
}

static void ofi_query(void *vctx, scomm_tl_attr_t *attr)
{
    ofi_ctx_t *c = vctx;

    attr->caps = scomm_tl_ofi_ops.caps;
    if (!c->kernel) {
        attr->caps &= ~SCOMM_TL_CAP_KERNEL_COPY;
    }
    if (!c->rcache_on) {
        attr->caps &= ~SCOMM_TL_CAP_MEM_REG;
    }
    attr->eager_max = c->eager_max;
}

static int ofi_can_reach(void *vctx, int peer)
{
    ofi_ctx_t *c                = vctx;
    const scomm_rankinfo_t *pin = &c->w->info[peer];

    return (c->ep != NULL) && (pin->tl_blob_len > OFI_PROV_LEN) &&
           (strncmp((const char *)pin->tl_blob, c->prov, OFI_PROV_LEN) == 0);
}

static scomm_status_t ofi_connect(void *vctx, const int *peers, int npeers,
                                  uint64_t deadline)
{
    ofi_ctx_t *c     = vctx;
    scomm_world_t *w = c->w;
    size_t slen;
    ofi_hdr_t h;
    int i, rc, missing;

    c->by_rank = calloc((size_t)w->size, sizeof(*c->by_rank));
    c->peers   = calloc((size_t)(npeers > 0 ? npeers : 1), sizeof(*c->peers));
    if ((c->by_rank == NULL) || (c->peers == NULL)) {
        return SCOMM_ERR_NO_MEMORY;
    }
    for (i = 0; i < npeers; i++) {
        ofi_peer_t *p = &c->peers[i];
        const scomm_rankinfo_t *pin = &w->info[peers[i]];

        p->rank     = peers[i];
        p->pidfd    = -1;
        p->probe_fd = -1;
        scomm_list_init(&p->stash);
        scomm_list_init(&p->postq);
        c->by_rank[peers[i]] = p;
        c->npeers++;
        rc = fi_av_insert(c->av, pin->tl_blob + OFI_PROV_LEN, 1, &p->addr, 0,
                          NULL);
        if (rc != 1) {
            scomm_world_fail(w, SCOMM_ERR_PEER_LOST, p->rank,
                             "ofi %s: rank %d's address (%u bytes) was "
                             "refused by fi_av_insert", c->prov, p->rank,
                             pin->tl_blob_len - OFI_PROV_LEN);
            return SCOMM_ERR_PEER_LOST;
        }
        slen = sizeof(p->addr_str);
        if (fi_av_straddr(c->av, pin->tl_blob + OFI_PROV_LEN, p->addr_str,
                          &slen) == NULL) {
            snprintf(p->addr_str, sizeof(p->addr_str), "?");
        }
        if (w->peers[p->rank].local) {
            p->pidfd = scomm_pidfd_open((pid_t)pin->pid);
        }
        p->last_heard = scomm_now_ns();
    }
    if (npeers == 0) {
        return SCOMM_OK;
    }
    for (i = 0; i < c->depth; i++) {
        if (!ofi_post(c, &c->rx_ops[i], 0)) {
            return SCOMM_ERR_SYSTEM;
        }
    }
    /* A HELLO each way: a peer that cannot be reached fails scomm_init
     * here, naming it, rather than the first collective. */
    for (i = 0; i < npeers; i++) {
        memset(&h, 0, sizeof(h));
        h.type = OFI_HELLO;
        if (ofi_queue(c, peers[i], &h, NULL, 0, 0, NULL) != SCOMM_OK) {
            return SCOMM_ERR_NO_MEMORY;
        }
    }
    for (;;) {
        (void)ofi_progress(c);
        if (ofi_dead(c)) {
            return (scomm_status_t)atomic_load(&w->fault.status);
        }
        for (i = 0, missing = -1; (i < npeers) && (missing < 0); i++) {
            if (!c->peers[i].hello) {
                missing = c->peers[i].rank;
            }
        }
        if (missing < 0) {
            return SCOMM_OK;
        }
        if (scomm_now_ns() >= deadline) {
            scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, missing,
                             "ofi %s: timed out waiting for rank %d's hello "
                             "(at %s)", c->prov, missing,
                             c->by_rank[missing]->addr_str);
            return SCOMM_ERR_TIMED_OUT;
        }
        usleep(50);
    }
}

/* ---- registration slot (tl.h) -------------------------------------------- */

static scomm_status_t ofi_mem_reg(void *vctx, void *addr, size_t len,
                                  unsigned access, scomm_tl_mr_t *mr)
{
    ofi_ctx_t *c = vctx;
    scomm_rcache_region_t *region;
    ofi_reg_t *r;

    (void)access; /* the cache registers for every access */
    if (!c->rcache_on || (c->domain == NULL)) {
        return SCOMM_ERR_UNSUPPORTED;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    if (scomm_rcache_get(&c->rcache, addr, len, &region) != SCOMM_RCACHE_OK) {
        free(r);
        return SCOMM_ERR_UNSUPPORTED; /* registered per message, then */
    }
    scomm_debug(SCOMM_SUB_RDMA, "ofi: %zu bytes at %p registered for reuse "
                "(cache: %llu hits, %llu misses)", len, addr,
                (unsigned long long)c->rcache.hits,
                (unsigned long long)c->rcache.misses);
    r->region = region;
    r->start  = (uintptr_t)addr;
    r->end    = (uintptr_t)addr + len;
    scomm_list_push_back(&c->regs, &r->list);
    mr->handle = r;
    mr->desc   = region->desc;
    mr->key    = region->key;
    mr->raddr  = c->virt_addr ? (uint64_t)(uintptr_t)addr
                              : (uint64_t)((uintptr_t)addr - region->start);
    return SCOMM_OK;
}

static void ofi_mem_dereg(void *vctx, scomm_tl_mr_t *mr)
{
    ofi_ctx_t *c = vctx;
    ofi_reg_t *r = mr->handle;

    if (r == NULL) {
        return;
    }
    scomm_list_del(&r->list);
    scomm_rcache_put(&c->rcache, r->region);
    scomm_rcache_invalidate(&c->rcache, (void *)r->start, r->end - r->start);
    free(r);
    mr->handle = NULL;
}

/* ---- teardown ------------------------------------------------------------ */

static void ofi_fini(void *vctx)
{
    ofi_ctx_t *c = vctx;
    struct fid *fids[6];
    scomm_list_t *e;
    int i;

    if (c == NULL) {
        return;
    }
    if ((c->ep != NULL) && (c->peers != NULL) && !ofi_dead(c)) {
        ofi_broadcast(c, OFI_BYE, 0, c->w->rank, NULL, -1);
        ofi_push(c, OFI_LINGER_MS);
    }
    if (c->ep != NULL) {
        fi_close(&c->ep->fid);
    }
    /* Writes still queued are freed; slots are the slabs'. */
    for (i = 0; i < c->npeers; i++) {
        while ((e = scomm_list_pop_front(&c->peers[i].postq)) != NULL) {
            ofi_op_t *op = scomm_container_of(e, ofi_op_t, list);

            if (op->kind == OFI_OP_WRITE) {
                free(op);
            }
        }
    }
    while ((e = scomm_list_pop_front(&c->deferq)) != NULL) {
        ofi_defer_t *d = scomm_container_of(e, ofi_defer_t, list);

        free(d->owned);
        free(d);
    }
    ofi_close_msg_mrs(c);
    while ((e = scomm_list_pop_front(&c->regs)) != NULL) {
        free(scomm_container_of(e, ofi_reg_t, list));
    }
    if (c->rcache_on) {
        scomm_rcache_fini(&c->rcache);
    }
    for (i = 0; i < c->npeers; i++) {
        while ((e = scomm_list_pop_front(&c->peers[i].stash)) != NULL) {
            free(scomm_container_of(e, ofi_stash_t, list));
        }
        if (c->peers[i].pidfd >= 0) {
            close(c->peers[i].pidfd);
        }
        if (c->peers[i].probe_fd >= 0) {
            close(c->peers[i].probe_fd);
        }
    }
    /* Children before parents: the slots' registrations, the address
     * vector and the completion queue, then the domain and the fabric. */
    fids[0] = (c->tx_mr != NULL) ? &c->tx_mr->fid : NULL;
    fids[1] = (c->rx_mr != NULL) ? &c->rx_mr->fid : NULL;
    fids[2] = (c->av != NULL) ? &c->av->fid : NULL;
    fids[3] = (c->cq != NULL) ? &c->cq->fid : NULL;
    fids[4] = (c->domain != NULL) ? &c->domain->fid : NULL;
    fids[5] = (c->fabric != NULL) ? &c->fabric->fid : NULL;
    for (i = 0; i < (int)SCOMM_ARRAY_SIZE(fids); i++) {
        if (fids[i] != NULL) {
            fi_close(fids[i]);
        }
    }
    if (c->info != NULL) {
        fi_freeinfo(c->info);
    }
    free(c->tx_slab);
    free(c->rx_slab);
    free(c->tx_ops);
    free(c->rx_ops);
    free(c->peers);
    free(c->by_rank);
    free(c);
}

/* What the one ops table below takes from this build. */
#define OFI_CAPS        (SCOMM_TL_CAP_MEM_REG | SCOMM_TL_CAP_KERNEL_COPY)
#define OFI_CHECK_PEERS ofi_check_peers
#define OFI_MEM_REG     ofi_mem_reg
#define OFI_MEM_DEREG   ofi_mem_dereg

#else /* !SCOMM_HAVE_OFI: the transport is known, and says what it needs */

int scomm_ofi_list_providers(char *out, size_t len)
{
    char err[256];

    scomm_feature_missing(SCOMM_FEATURE_OFI, err, sizeof(err),
                          "listing libfabric providers");
    snprintf(out, len, "%s\n", err);
    return -1;
}

static scomm_status_t ofi_init(scomm_world_t *w, void **ctx_p)
{
    char err[256];

    (void)w;
    *ctx_p = NULL;
    scomm_feature_missing(SCOMM_FEATURE_OFI, err, sizeof(err),
                          "SCOMM_TRANSPORTS=ofi");
    scomm_set_thread_error("%s", err);
    return SCOMM_ERR_UNSUPPORTED;
}

/* The other slots are never reached (init refuses, so the core starts no
 * context); they are filled all the same (tl.h, rule 5) and do nothing. */
static void ofi_query(void *vctx, scomm_tl_attr_t *attr)
{
    (void)vctx;
    attr->caps      = 0;
    attr->eager_max = 0;
}

static int ofi_can_reach(void *vctx, int peer)
{
    (void)vctx;
    (void)peer;
    return 0;
}

static scomm_status_t ofi_connect(void *vctx, const int *peers, int npeers,
                                  uint64_t deadline)
{
    (void)vctx;
    (void)peers;
    (void)npeers;
    (void)deadline;
    return SCOMM_ERR_UNSUPPORTED;
}

static scomm_status_t ofi_send(void *vctx, scomm_req_t *req)
{
    (void)vctx;
    (void)req;
    return SCOMM_ERR_UNSUPPORTED;
}

static scomm_status_t ofi_rndv_start(void *vctx, int peer, scomm_req_t *rreq,
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

static int ofi_progress(void *vctx)
{
    (void)vctx;
    return 0;
}

static int ofi_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    (void)vctx;
    (void)fds;
    (void)max;
    return 0;
}

static void ofi_heartbeat(void *vctx, uint64_t now)
{
    (void)vctx;
    (void)now;
}

static uint64_t ofi_last_heard(void *vctx, int peer)
{
    (void)vctx;
    (void)peer;
    return 0;
}

static void ofi_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    (void)vctx;
    (void)info;
}

static void ofi_fini(void *vctx)
{
    (void)vctx;
}

#define OFI_CAPS        0
#define OFI_CHECK_PEERS scomm_tl_noop
#define OFI_MEM_REG     scomm_tl_mem_reg_unsupported
#define OFI_MEM_DEREG   scomm_tl_mem_dereg_none

#endif /* SCOMM_HAVE_OFI */

const scomm_tl_ops_t scomm_tl_ofi_ops = {
    .name        = "ofi",
    .caps        = OFI_CAPS,
    .init        = ofi_init,
    .query       = ofi_query,
    .can_reach   = ofi_can_reach,
    .connect     = ofi_connect,
    .send        = ofi_send,
    .rndv_start  = ofi_rndv_start,
    .progress    = ofi_progress,
    .poll_fds    = ofi_poll_fds,
    .sleep_begin = scomm_tl_noop,
    .sleep_end   = scomm_tl_noop,
    .check_peers = OFI_CHECK_PEERS,
    .heartbeat   = ofi_heartbeat,
    .last_heard  = ofi_last_heard,
    .send_abort  = ofi_send_abort,
    .mem_reg     = OFI_MEM_REG,
    .mem_dereg   = OFI_MEM_DEREG,
    .fini        = ofi_fini,
};

const scomm_module_t scomm_module_ofi = {
    .name    = "ofi",
    .params  = ofi_params,
    .nparams = SCOMM_ARRAY_SIZE(ofi_params),
    .tl      = &scomm_tl_ofi_ops,
};
