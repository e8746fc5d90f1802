/*
 * shm.c - the shared-memory transport for ranks on one host.
 *
 * Each rank owns one POSIX shared-memory segment (0600, random name, unlinked
 * as soon as every local peer mapped it) holding a control block and one
 * receive ring per local sender. A sender writes messages into the ring
 * its receiver owns; only the receiver reads it.
 *
 *   segment := ctrl | ring[0] | ring[1] | ... (ring i: from local rank i)
 *   ring    := head (receiver's consumed position, own cache line)
 *              | cells[ncells] of 64 bytes
 *
 * A message occupies consecutive cells and never wraps (a SKIP message fills
 * the end of the ring instead). Its first cell starts with a header whose
 * flag word is written last, with release order: flag == position + 1 says
 * "this cell holds a complete message". A small message is one cache line:
 * the receiver polls exactly the line that carries the data.
 *
 * Large messages (> SCOMM_SHM_EAGER_MAX) use a rendezvous: the sender posts
 * RTS(addr, len, id); when a receive matches, the receiver copies the bytes
 * once with process_vm_readv straight into the user buffer, in chunks, and
 * answers FIN(id). Where the kernel refuses CMA, the receiver answers CTS and
 * the sender streams FRAG messages through the ring (two copies).
 *
 * Sleeping: a receiver about to sleep raises ctrl.sleeping, then re-checks
 * its rings; a sender, after publishing a message, reads the flag (a full
 * fence sits between) and writes the receiver's eventfd, which it holds
 * through pidfd_getfd. The other way round: a sender that goes to sleep
 * with messages queued for a full ring raises that ring's tx_blocked, and
 * the receiver, after consuming, writes the sender's eventfd. Death: each rank holds a pidfd per local peer; it
 * becomes readable when the peer exits, even as a zombie.
 *
 * Invariants:
 *  1. Only the owner reads its rings; only sender i writes ring i.
 *  2. Messages to one peer leave in order: a send queues behind any message
 *     already waiting for ring space.
 *  3. Ids from the wire are looked up in the request table; a stale or
 *     forged id is ignored, an out-of-range offset or length fails the world.
 *  4. No message is acted on before scomm_shm_msg_check (wire.h, fuzzed by
 *     tests/fuzz) accepted its type and length against the ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../core/module.h"
#include "../core/scomm_int.h"
#include "wire.h"


#define SHM_MAGIC        0x53434f4d4d53484dull /* "SCOMMSHM" */
#define SHM_CELL         SCOMM_SHM_CELL
#define SHM_HDR_BYTES    SCOMM_SHM_HDR_BYTES
#define SHM_CMA_CHUNK    (4u << 20)
#define SHM_MAX_BATCH    64

enum {
    SHM_EAGER = 1,
    SHM_RTS   = 2,
    SHM_FIN   = 3,
    SHM_CTS   = 4,
    SHM_FRAG  = 5,
    SHM_SKIP  = 6
};

typedef struct shm_msg {
    _Atomic uint32_t flag;
    uint8_t          type;
    uint8_t          pad;
    uint16_t         spare;
    uint32_t         ctx;
    int32_t          tag;
    uint64_t         len;    /* payload bytes following the header */
    /* payload starts here (offset 24) */
} shm_msg_t;

_Static_assert(sizeof(shm_msg_t) == SHM_HDR_BYTES,
               "shm message header layout is part of the wire protocol");

typedef struct shm_ctrl {
    uint64_t         magic;
    uint32_t         nrings;
    int32_t          pid;
    uint64_t         ring_bytes;
    int32_t          wake_fd;
    _Atomic uint32_t ready;
    _Atomic uint32_t mapped;
    _Atomic uint32_t closed;   /* owner destroyed its world cleanly */
    char             pad0[SCOMM_CACHELINE - 36];
    _Atomic uint32_t sleeping;
    char             pad1[SCOMM_CACHELINE - 4];
    _Atomic uint64_t heartbeat;  /* owner's last sign of life (CLOCK_MONOTONIC ns) */
    char             pad3[SCOMM_CACHELINE - 8];
    _Atomic int32_t  abort_status;
    int32_t          abort_rank;
    char             abort_msg[200];
    char             pad2[SCOMM_CACHELINE - ((208) % SCOMM_CACHELINE)];
} shm_ctrl_t;

typedef struct shm_ring {
    _Atomic uint64_t head;       /* receiver: consumed position */
    char             pad[SCOMM_CACHELINE - 8];
    _Atomic uint32_t tx_blocked; /* sender: asleep with messages queued */
    char             pad2[SCOMM_CACHELINE - 4];
    /* cells follow */
} shm_ring_t;

/* A message waiting for ring space, or a FRAG stream in progress. */
typedef struct shm_pending {
    scomm_list_t list;
    uint8_t      type;
    uint32_t     ctx;
    int32_t      tag;
    uint64_t     len;
    uint64_t     req_id;     /* send request (EAGER/RTS/FRAG stream) */
    uint64_t     a, b;       /* control payload words */
    uint64_t     offset;     /* FRAG stream progress */
    uint64_t     rreq_id;    /* FRAG stream target */
} shm_pending_t;

/* One rendezvous read in progress (receiver side). */
typedef struct shm_rndv {
    scomm_list_t list;
    int          peer;
    uint64_t     rreq_id;
    uint64_t     sreq_id;
    uint64_t     raddr;
    uint64_t     len;
    uint64_t     done;
} shm_rndv_t;

typedef struct shm_peer {
    int           rank;       /* world rank */
    int           lidx;       /* local index */
    shm_ctrl_t   *ctrl;       /* its segment */
    size_t        map_len;
    shm_ring_t   *tx;         /* my ring inside its segment */
    uint64_t      tx_pos;     /* next cell to write */
    uint64_t      tx_head;    /* cached consumer position */
    int           wake_fd;    /* its eventfd, dup'd here; -1 if none */
    int           pidfd;      /* -1 if unavailable */
    pid_t         pid;
    int           cma;        /* process_vm_readv allowed */
    scomm_list_t  pending;    /* messages waiting for ring space */
    shm_ring_t   *rx;         /* its ring inside my segment */
    uint64_t      rx_pos;
} shm_peer_t;

typedef struct shm_ctx {
    scomm_world_t *w;
    char           name[SCOMM_SHMNAME_MAX];
    shm_ctrl_t    *ctrl;      /* my segment */
    size_t         map_len;
    int            created;
    int            unlinked;
    uint64_t       ring_bytes;
    uint64_t       ncells;
    uint64_t       eager_max;
    uint64_t       frag_max;
    shm_peer_t   **by_rank;   /* world rank -> peer, NULL if not shm */
    shm_peer_t    *peers;
    int            npeers;
    int            all_wake;  /* every peer can wake us */
    scomm_list_t   rndv;      /* rendezvous reads in progress */
} shm_ctx_t;

/* Knobs (registry rows, core/config.h), read into w->cfg at scomm_init. */
static const scomm_param_t shm_params[] = {
    {.name = "SCOMM_SHM_RING_SIZE", .defval = "256k", .type = SCOMM_PARAM_SIZE,
     .min = 16384, .max = 1 << 30, SCOMM_PARAM_FIELD(shm_ring_size),
     .help = "bytes of each shared-memory ring (one per sender and "
             "receiver pair)"},
    {.name = "SCOMM_SHM_EAGER_MAX", .defval = "16k", .type = SCOMM_PARAM_SIZE,
     .min = 0, .max = 1 << 30, SCOMM_PARAM_FIELD(shm_eager_max),
     .help = "largest shm message copied through the ring (at most a "
             "quarter of it); larger ones are read once with "
             "process_vm_readv"},
    {.name = "SCOMM_SHM_CMA", .defval = "1", .type = SCOMM_PARAM_BOOL,
     SCOMM_PARAM_FIELD(shm_cma),
     .help = "use process_vm_readv single-copy for large shm messages "
             "(falls back to ring fragments when denied)"},
};

/* ---- segment helpers ----------------------------------------------------- */

static size_t shm_ctrl_bytes(void)
{
    return SCOMM_ALIGN_UP(sizeof(shm_ctrl_t), 4096);
}

static size_t shm_ring_stride(uint64_t ring_bytes)
{
    return SCOMM_ALIGN_UP(sizeof(shm_ring_t) + ring_bytes, 4096);
}

static shm_ring_t *shm_ring_at(shm_ctrl_t *ctrl, uint64_t ring_bytes, int i)
{
    return (shm_ring_t *)((char *)ctrl + shm_ctrl_bytes() +
                          (size_t)i * shm_ring_stride(ring_bytes));
}

static char *shm_cells(shm_ring_t *r)
{
    return (char *)r + sizeof(shm_ring_t);
}

/* ---- sending ------------------------------------------------------------- */

static void shm_wake_peer(shm_peer_t *p)
{
    uint64_t one = 1;

    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&p->ctrl->sleeping, memory_order_relaxed) &&
        (p->wake_fd >= 0)) {
        if (write(p->wake_fd, &one, sizeof(one)) < 0) {
            /* EAGAIN means the counter is already non-zero: it will wake. */
        }
    }
}

/* Reserve ncells contiguous cells in p's ring; returns the first cell or
 * NULL when the ring is full. Emits a SKIP message at the ring's end when
 * the message would wrap. */
static shm_msg_t *shm_reserve(shm_ctx_t *c, shm_peer_t *p, uint64_t ncells)
{
    uint64_t idx   = p->tx_pos % c->ncells;
    uint64_t tail  = c->ncells - idx;
    uint64_t need  = ncells + ((tail < ncells) ? tail : 0);
    shm_msg_t *m;

    if (c->ncells - (p->tx_pos - p->tx_head) < need) {
        p->tx_head = atomic_load_explicit(&p->tx->head, memory_order_acquire);
        if (c->ncells - (p->tx_pos - p->tx_head) < need) {
            return NULL;
        }
    }
    if (tail < ncells) {
        m        = (shm_msg_t *)(shm_cells(p->tx) + idx * SHM_CELL);
        m->type  = SHM_SKIP;
        m->len   = (tail * SHM_CELL) - SHM_HDR_BYTES;
        atomic_store_explicit(&m->flag, (uint32_t)(p->tx_pos + 1),
                              memory_order_release);
        p->tx_pos += tail;
        idx = 0;
    }
    return (shm_msg_t *)(shm_cells(p->tx) + idx * SHM_CELL);
}

static uint64_t shm_ncells(uint64_t payload)
{
    return (SHM_HDR_BYTES + payload + SHM_CELL - 1) / SHM_CELL;
}

/* Write one message if it fits; returns 1 when written. */
static int shm_put(shm_ctx_t *c, shm_peer_t *p, uint8_t type, uint32_t ctx,
                   int32_t tag, const void *payload, uint64_t len,
                   const void *payload2, uint64_t len2)
{
    uint64_t ncells = shm_ncells(len + len2);
    shm_msg_t *m    = shm_reserve(c, p, ncells);

    if (m == NULL) {
        return 0;
    }
    m->type = type;
    m->ctx  = ctx;
    m->tag  = tag;
    m->len  = len + len2;
    if (len > 0) {
        memcpy((char *)m + SHM_HDR_BYTES, payload, len);
    }
    if (len2 > 0) {
        memcpy((char *)m + SHM_HDR_BYTES + len, payload2, len2);
    }
    atomic_store_explicit(&m->flag, (uint32_t)(p->tx_pos + 1),
                          memory_order_release);
    p->tx_pos += ncells;
    shm_wake_peer(p);
    return 1;
}

/* Try to send one pending item; returns 1 when it is fully out. */
static int shm_pending_try(shm_ctx_t *c, shm_peer_t *p, shm_pending_t *q)
{
    scomm_world_t *w = c->w;
    scomm_req_t *r;
    uint64_t words[3], chunk;

    switch (q->type) {
    case SHM_EAGER:
        r = scomm_req_lookup(w, q->req_id);
        if (r == NULL) {
            return 1; /* released after a fault: drop */
        }
        if (!shm_put(c, p, SHM_EAGER, q->ctx, q->tag, r->buf, r->len, NULL,
                     0)) {
            return 0;
        }
        r->xfer = r->len;
        scomm_req_complete(r, SCOMM_OK);
        return 1;
    case SHM_RTS:
        r = scomm_req_lookup(w, q->req_id);
        if (r == NULL) {
            return 1;
        }
        words[0] = q->req_id;
        words[1] = (uint64_t)(uintptr_t)r->buf;
        words[2] = r->len;
        return shm_put(c, p, SHM_RTS, q->ctx, q->tag, words, sizeof(words),
                       NULL, 0);
    case SHM_FIN:
    case SHM_CTS:
        words[0] = q->a;
        words[1] = q->b;
        return shm_put(c, p, q->type, 0, 0, words, 2 * sizeof(uint64_t),
                       NULL, 0);
    case SHM_FRAG:
        r = scomm_req_lookup(w, q->req_id);
        if (r == NULL) {
            return 1;
        }
        while (q->offset < r->len) {
            chunk    = SCOMM_MIN(c->frag_max, r->len - q->offset);
            words[0] = q->rreq_id;
            words[1] = q->offset;
            if (!shm_put(c, p, SHM_FRAG, 0, 0, words, 2 * sizeof(uint64_t),
                         (char *)r->buf + q->offset, chunk)) {
                return 0;
            }
            q->offset += chunk;
        }
        r->xfer = r->len;
        scomm_req_complete(r, SCOMM_OK);
        return 1;
    }
    return 1;
}

static int shm_flush_pending(shm_ctx_t *c, shm_peer_t *p)
{
    scomm_list_t *e;
    shm_pending_t *q;
    int n = 0;

    while (!scomm_list_empty(&p->pending)) {
        e = p->pending.next;
        q = scomm_container_of(e, shm_pending_t, list);
        if (!shm_pending_try(c, p, q)) {
            break;
        }
        scomm_list_del(e);
        free(q);
        n++;
    }
    return n;
}

static scomm_status_t shm_enqueue(shm_ctx_t *c, shm_peer_t *p,
                                  const shm_pending_t *tmpl)
{
    shm_pending_t *q;

    /* Fast path: nothing queued ahead, try to write it now. */
    if (scomm_list_empty(&p->pending)) {
        shm_pending_t tmp = *tmpl;

        if (shm_pending_try(c, p, &tmp)) {
            return SCOMM_OK;
        }
        tmpl = &tmp;
        q    = malloc(sizeof(*q));
        if (q == NULL) {
            return SCOMM_ERR_NO_MEMORY;
        }
        *q = tmp;
    } else {
        q = malloc(sizeof(*q));
        if (q == NULL) {
            return SCOMM_ERR_NO_MEMORY;
        }
        *q = *tmpl;
    }
    scomm_list_push_back(&p->pending, &q->list);
    return SCOMM_OK;
}

static scomm_status_t shm_send(void *vctx, scomm_req_t *req)
{
    shm_ctx_t *c  = vctx;
    shm_peer_t *p = c->by_rank[req->peer];
    shm_pending_t q;

    memset(&q, 0, sizeof(q));
    q.ctx    = req->ctx;
    q.tag    = req->tag;
    q.len    = req->len;
    q.req_id = req->id;
    q.type   = (req->len <= c->eager_max) ? SHM_EAGER : SHM_RTS;
    return shm_enqueue(c, p, &q);
}

static void shm_send_ctrl(shm_ctx_t *c, shm_peer_t *p, uint8_t type,
                          uint64_t a, uint64_t b)
{
    shm_pending_t q;

    memset(&q, 0, sizeof(q));
    q.type = type;
    q.a    = a;
    q.b    = b;
    if (shm_enqueue(c, p, &q) != SCOMM_OK) {
        scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, p->rank,
                         "shm: out of memory queueing a control message to "
                         "rank %d", p->rank);
    }
}

/* ---- rendezvous (receiver side) ------------------------------------------ */

static scomm_status_t shm_rndv_start(void *vctx, int peer, scomm_req_t *rreq,
                                     const scomm_tl_cookie_t *cookie,
                                     scomm_status_t reject)
{
    shm_ctx_t *c  = vctx;
    shm_peer_t *p = c->by_rank[peer];
    shm_rndv_t *d;

    if (rreq == NULL) {
        shm_send_ctrl(c, p, SHM_FIN, cookie->u64[0], (uint64_t)(-reject));
        return SCOMM_OK;
    }
    if (!p->cma) {
        shm_send_ctrl(c, p, SHM_CTS, cookie->u64[0], rreq->id);
        rreq->xfer = 0;
        rreq->tl_u64[0] = cookie->u64[2];
        return SCOMM_OK;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    d->peer    = peer;
    d->rreq_id = rreq->id;
    d->sreq_id = cookie->u64[0];
    d->raddr   = cookie->u64[1];
    d->len     = cookie->u64[2];
    scomm_list_push_back(&c->rndv, &d->list);
    return SCOMM_OK;
}

/* Advance rendezvous reads by one chunk each; returns events. */
static int shm_rndv_progress(shm_ctx_t *c)
{
    scomm_list_t *e, *t;
    struct iovec liov, riov;
    scomm_req_t *r;
    shm_rndv_t *d;
    shm_peer_t *p;
    ssize_t n;
    size_t chunk;
    int events = 0;

    scomm_list_for_each_safe(e, t, &c->rndv) {
        d = scomm_container_of(e, shm_rndv_t, list);
        p = c->by_rank[d->peer];
        r = scomm_req_lookup(c->w, d->rreq_id);
        if (r == NULL) {
            scomm_list_del(&d->list);
            free(d);
            continue;
        }
        chunk         = (size_t)SCOMM_MIN(d->len - d->done, SHM_CMA_CHUNK);
        liov.iov_base = (char *)r->buf + d->done;
        liov.iov_len  = chunk;
        riov.iov_base = (void *)(uintptr_t)(d->raddr + d->done);
        riov.iov_len  = chunk;
        n = (chunk == 0) ? 0 : process_vm_readv(p->pid, &liov, 1, &riov, 1,
                                                0);
        if (n < 0) {
            if ((errno == EPERM) || (errno == ENOSYS) || (errno == EACCES)) {
                /* Not allowed here: switch this peer to ring fragments. */
                scomm_info(SCOMM_SUB_SHM, "process_vm_readv from rank %d "
                           "denied (%s); using ring copies", d->peer,
                           strerror(errno));
                p->cma = 0;
                shm_send_ctrl(c, p, SHM_CTS, d->sreq_id, d->rreq_id);
                r->tl_u64[0] = d->len;
                r->xfer      = 0;
                scomm_list_del(&d->list);
                free(d);
                continue;
            }
            if (errno == ESRCH) {
                scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, d->peer,
                                 "%s: rank %d (pid %d) died during a "
                                 "%llu-byte transfer",
                                 (r->comm != NULL) ? r->comm->cur_op : "shm",
                                 d->peer, (int)p->pid,
                                 (unsigned long long)d->len);
            } else {
                scomm_world_fail(c->w, SCOMM_ERR_SYSTEM, d->peer,
                                 "shm: process_vm_readv from rank %d: %s",
                                 d->peer, strerror(errno));
            }
            return events;
        }
        d->done += (uint64_t)n;
        events++;
        if (d->done >= d->len) {
            r->xfer = d->len;
            scomm_req_complete(r, SCOMM_OK);
            shm_send_ctrl(c, p, SHM_FIN, d->sreq_id, 0);
            scomm_list_del(&d->list);
            free(d);
        }
    }
    return events;
}

/* ---- receiving ----------------------------------------------------------- */

static int shm_bad(shm_ctx_t *c, shm_peer_t *p, const char *what)
{
    scomm_world_fail(c->w, SCOMM_ERR_PROTOCOL, p->rank,
                     "shm: malformed message from rank %d: %s", p->rank,
                     what);
    return 0;
}

int scomm_shm_msg_check(const void *cell, uint64_t cell_idx,
                        uint64_t ring_bytes, uint64_t eager_max, char *why,
                        size_t whylen)
{
    const char *b = cell;
    uint64_t len;
    uint8_t type;

    memcpy(&type, b + offsetof(shm_msg_t, type), sizeof(type));
    memcpy(&len, b + offsetof(shm_msg_t, len), sizeof(len));
    /* Never true for the transport's own rings; keeps the subtraction
     * below from wrapping for any other caller. */
    if ((ring_bytes < SHM_HDR_BYTES) ||
        (cell_idx > (ring_bytes - SHM_HDR_BYTES) / SHM_CELL)) {
        snprintf(why, whylen, "cell index outside the ring");
        return -1;
    }
    if ((type != SHM_SKIP) &&
        (len > ring_bytes - cell_idx * SHM_CELL - SHM_HDR_BYTES)) {
        snprintf(why, whylen, "message longer than the ring");
        return -1;
    }
    switch (type) {
    case SHM_EAGER:
        if (len > eager_max) {
            snprintf(why, whylen,
                     "eager message longer than the eager limit");
            return -1;
        }
        return 0;
    case SHM_RTS:
        if (len != 3 * sizeof(uint64_t)) {
            snprintf(why, whylen, "RTS of the wrong size");
            return -1;
        }
        return 0;
    case SHM_FIN:
    case SHM_CTS:
        if (len != 2 * sizeof(uint64_t)) {
            snprintf(why, whylen, "control message of the wrong size");
            return -1;
        }
        return 0;
    case SHM_FRAG:
        if (len < 2 * sizeof(uint64_t)) {
            snprintf(why, whylen, "fragment too short");
            return -1;
        }
        return 0;
    case SHM_SKIP:
        /* A SKIP pads exactly to the end of the ring; any other length
         * would move the read position somewhere no sender writes. */
        if (len != ring_bytes - cell_idx * SHM_CELL - SHM_HDR_BYTES) {
            snprintf(why, whylen, "SKIP that does not end at the ring's end");
            return -1;
        }
        return 0;
    default:
        snprintf(why, whylen, "unknown message type");
        return -1;
    }
}

/* Act on one message that scomm_shm_msg_check accepted. h is a private
 * copy of its header: the peer shares the ring, so fields read from the
 * ring after the check could have changed (a check-then-use race). */
static int shm_handle(shm_ctx_t *c, shm_peer_t *p, const shm_msg_t *m,
                      const char *payload)
{
    uint64_t words[3];
    scomm_tl_cookie_t cookie;
    scomm_req_t *r;
    scomm_rx_t rx;
    void *dst;

    switch (m->type) {
    case SHM_EAGER:
        dst = scomm_p2p_eager_begin(c->w, p->rank, m->ctx, m->tag, m->len,
                                    &rx);
        if ((dst == NULL) && (m->len > 0)) {
            scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, p->rank,
                             "shm: out of memory for a message from rank %d",
                             p->rank);
            return 0;
        }
        if (m->len > 0) {
            memcpy(dst, payload, m->len);
        }
        if (rx.req != NULL) {
            rx.req->xfer = m->len;
        }
        scomm_p2p_eager_end(c->w, p->rank, &rx);
        return 1;
    case SHM_RTS:
        memcpy(words, payload, sizeof(words));
        memset(&cookie, 0, sizeof(cookie));
        cookie.u64[0] = words[0];
        cookie.u64[1] = words[1];
        cookie.u64[2] = words[2];
        scomm_p2p_rts(c->w, p->rank, m->ctx, m->tag, (size_t)words[2],
                      &cookie);
        return 1;
    case SHM_FIN:
    case SHM_CTS:
        memcpy(words, payload, 2 * sizeof(uint64_t));
        r = scomm_req_lookup(c->w, words[0]);
        if ((r == NULL) || (r->type != SCOMM_REQ_SEND)) {
            return 1; /* stale: the send was released */
        }
        if (m->type == SHM_FIN) {
            if (words[1] != 0) {
                scomm_req_truncated(r, p->rank);
            } else {
                r->xfer = r->len;
                scomm_req_complete(r, SCOMM_OK);
            }
        } else {
            shm_pending_t q;

            memset(&q, 0, sizeof(q));
            q.type    = SHM_FRAG;
            q.req_id  = words[0];
            q.rreq_id = words[1];
            if (shm_enqueue(c, p, &q) != SCOMM_OK) {
                scomm_world_fail(c->w, SCOMM_ERR_NO_MEMORY, p->rank,
                                 "shm: out of memory");
            }
        }
        return 1;
    case SHM_FRAG:
        memcpy(words, payload, 2 * sizeof(uint64_t));
        r = scomm_req_lookup(c->w, words[0]);
        if ((r == NULL) || (r->type != SCOMM_REQ_RECV)) {
            return 1;
        }
        if ((words[1] > r->len) ||
            (m->len - 2 * sizeof(uint64_t) > r->len - words[1])) {
            return shm_bad(c, p, "fragment outside the receive buffer");
        }
        memcpy((char *)r->buf + words[1], payload + 2 * sizeof(uint64_t),
               m->len - 2 * sizeof(uint64_t));
        r->tl_u64[1] += m->len - 2 * sizeof(uint64_t);
        if (r->tl_u64[1] >= r->tl_u64[0]) {
            r->xfer = r->tl_u64[0];
            scomm_req_complete(r, SCOMM_OK);
        }
        return 1;
    case SHM_SKIP:
        return 0;
    default:
        return shm_bad(c, p, "unknown message type");
    }
}

static int shm_poll_ring(shm_ctx_t *c, shm_peer_t *p)
{
    char *cells = shm_cells(p->rx);
    uint64_t idx, ncells;
    shm_msg_t *m, h;
    char why[64];
    int n = 0;

    while (n < SHM_MAX_BATCH) {
        idx = p->rx_pos % c->ncells;
        m   = (shm_msg_t *)(cells + idx * SHM_CELL);
        if (atomic_load_explicit(&m->flag, memory_order_acquire) !=
            (uint32_t)(p->rx_pos + 1)) {
            break;
        }
        memcpy(&h, m, SHM_HDR_BYTES);
        if (scomm_shm_msg_check(&h, idx, c->ring_bytes, c->eager_max, why,
                                sizeof(why)) != 0) {
            shm_bad(c, p, why);
            break;
        }
        ncells = shm_ncells(h.len);
        n += shm_handle(c, p, &h, (const char *)m + SHM_HDR_BYTES);
        p->rx_pos += ncells;
        atomic_store_explicit(&p->rx->head, p->rx_pos, memory_order_release);
        if (atomic_load_explicit(&c->w->fault.status, memory_order_relaxed)) {
            break;
        }
    }
    if (n > 0) {
        /* A sender that found the ring full and went to sleep holds
         * messages we may be waiting for: wake it now that there is room
         * (pairs with the fence in shm_sleep_begin). */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&p->rx->tx_blocked, memory_order_relaxed) &&
            atomic_exchange(&p->rx->tx_blocked, 0) && (p->wake_fd >= 0)) {
            uint64_t one = 1;

            if (write(p->wake_fd, &one, sizeof(one)) < 0) {
                /* EAGAIN: its counter is already non-zero. */
            }
        }
    }
    return n;
}

static void shm_check_abort(shm_ctx_t *c)
{
    int32_t st = atomic_load_explicit(&c->ctrl->abort_status,
                                      memory_order_acquire);

    if (SCOMM_UNLIKELY(st != 0) &&
        (atomic_load(&c->w->fault.status) == 0)) {
        c->ctrl->abort_msg[sizeof(c->ctrl->abort_msg) - 1] = '\0';
        scomm_world_fail(c->w, scomm_status_from_peer(st),
                         c->ctrl->abort_rank, "%s", c->ctrl->abort_msg);
    }
}

static int shm_progress(void *vctx)
{
    shm_ctx_t *c = vctx;
    shm_peer_t *p;
    int i, n = 0;

    if (c->npeers == 0) {
        return 0;
    }
    for (i = 0; i < c->npeers; i++) {
        p = &c->peers[i];
        n += shm_poll_ring(c, p);
        if (!scomm_list_empty(&p->pending)) {
            n += shm_flush_pending(c, p);
        }
    }
    if (!scomm_list_empty(&c->rndv)) {
        n += shm_rndv_progress(c);
    }
    shm_check_abort(c);
    return n;
}

/* ---- setup --------------------------------------------------------------- */

static scomm_status_t shm_init(scomm_world_t *w, void **ctx_p)
{
    shm_ctx_t *c = calloc(1, sizeof(*c));
    char hex[33];

    if (c == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    c->w          = w;
    c->ring_bytes = SCOMM_ALIGN_UP(w->cfg.shm_ring_size, SHM_CELL);
    c->ncells     = c->ring_bytes / SHM_CELL;
    c->eager_max  = w->cfg.shm_eager_max;
    /* A fragment, header included, fits a quarter of the ring. */
    c->frag_max   = c->ring_bytes / 4 - SHM_HDR_BYTES - 16;
    scomm_list_init(&c->rndv);
    scomm_random_hex(hex, 16);
    snprintf(c->name, sizeof(c->name), "/scomm-%d-%s", (int)getpid(), hex);
    snprintf(w->info[w->rank].shm_name, SCOMM_SHMNAME_MAX, "%s", c->name);
    *ctx_p = c;
    return SCOMM_OK;
}

static int shm_can_reach(void *vctx, int peer)
{
    shm_ctx_t *c = vctx;

    return c->w->peers[peer].local && (c->w->info[peer].shm_name[0] == '/');
}

static scomm_status_t shm_create_segment(shm_ctx_t *c, int nrings)
{
    scomm_world_t *w = c->w;
    int fd;

    c->map_len = shm_ctrl_bytes() +
                 (size_t)nrings * shm_ring_stride(c->ring_bytes);
    fd = shm_open(c->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1, "shm: shm_open %s: %s",
                         c->name, strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    c->created = 1;
    if (ftruncate(fd, (off_t)c->map_len) != 0) {
        close(fd);
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1,
                         "shm: ftruncate %s to %zu bytes: %s", c->name,
                         c->map_len, strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    c->ctrl = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   0);
    close(fd);
    if (c->ctrl == MAP_FAILED) {
        c->ctrl = NULL;
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, -1, "shm: mmap %s: %s",
                         c->name, strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    c->ctrl->nrings     = (uint32_t)nrings;
    c->ctrl->pid        = (int32_t)getpid();
    c->ctrl->ring_bytes = c->ring_bytes;
    c->ctrl->wake_fd    = w->wake_fd;
    atomic_store(&c->ctrl->heartbeat, scomm_now_ns());
    c->ctrl->magic      = SHM_MAGIC;
    atomic_store_explicit(&c->ctrl->ready, 1, memory_order_release);
    return SCOMM_OK;
}

/* Map a peer's segment once it exists and is initialised. */
static scomm_status_t shm_map_peer(shm_ctx_t *c, shm_peer_t *p,
                                   uint64_t deadline)
{
    scomm_world_t *w = c->w;
    const char *name = w->info[p->rank].shm_name;
    struct stat st;
    int fd;

    for (;;) {
        fd = shm_open(name, O_RDWR | O_CLOEXEC, 0600);
        if ((fd >= 0) && (fstat(fd, &st) == 0) &&
            ((size_t)st.st_size >= c->map_len)) {
            break;
        }
        if (fd >= 0) {
            close(fd);
        } else if (errno != ENOENT) {
            scomm_world_fail(w, SCOMM_ERR_SYSTEM, p->rank,
                             "shm: cannot open rank %d's segment %s: %s",
                             p->rank, name, strerror(errno));
            return SCOMM_ERR_SYSTEM;
        }
        if (scomm_now_ns() >= deadline) {
            scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, p->rank,
                             "shm: timed out waiting for rank %d's segment",
                             p->rank);
            return SCOMM_ERR_TIMED_OUT;
        }
        usleep(1000);
    }
    p->map_len = c->map_len;
    p->ctrl = mmap(NULL, p->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                   0);
    close(fd);
    if (p->ctrl == MAP_FAILED) {
        p->ctrl = NULL;
        scomm_world_fail(w, SCOMM_ERR_SYSTEM, p->rank,
                         "shm: mmap of rank %d's segment: %s", p->rank,
                         strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    while (!atomic_load_explicit(&p->ctrl->ready, memory_order_acquire)) {
        if (scomm_now_ns() >= deadline) {
            scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, p->rank,
                             "shm: rank %d's segment never became ready",
                             p->rank);
            return SCOMM_ERR_TIMED_OUT;
        }
        usleep(100);
    }
    if ((p->ctrl->magic != SHM_MAGIC) ||
        (p->ctrl->pid != w->info[p->rank].pid) ||
        (p->ctrl->ring_bytes != c->ring_bytes) ||
        (p->ctrl->nrings != (uint32_t)w->local_size)) {
        scomm_world_fail(w, SCOMM_ERR_MISMATCH, p->rank,
                         "shm: rank %d's segment does not match ours "
                         "(ring size %llu vs %llu: set SCOMM_SHM_RING_SIZE "
                         "alike on every rank)", p->rank,
                         (unsigned long long)p->ctrl->ring_bytes,
                         (unsigned long long)c->ring_bytes);
        return SCOMM_ERR_MISMATCH;
    }
    p->pid = (pid_t)p->ctrl->pid;
    p->tx  = shm_ring_at(p->ctrl, c->ring_bytes, w->local_rank);
    p->rx  = shm_ring_at(c->ctrl, c->ring_bytes, p->lidx);
    p->pidfd = scomm_pidfd_open(p->pid);
    p->wake_fd = -1;
    if (p->pidfd >= 0) {
        p->wake_fd = scomm_pidfd_getfd(p->pidfd, p->ctrl->wake_fd);
    }
    if (p->wake_fd < 0) {
        scomm_info(SCOMM_SUB_SHM, "cannot take rank %d's eventfd (%s): "
                   "sleeping waits poll every millisecond", p->rank,
                   strerror(errno));
        c->all_wake = 0;
    }
    atomic_fetch_add(&p->ctrl->mapped, 1);
    return SCOMM_OK;
}

static scomm_status_t shm_connect(void *vctx, const int *peers, int npeers,
                                  uint64_t deadline)
{
    shm_ctx_t *c     = vctx;
    scomm_world_t *w = c->w;
    scomm_status_t status;
    int i, j;

    c->by_rank = calloc((size_t)w->size, sizeof(*c->by_rank));
    c->peers   = calloc((size_t)(npeers > 0 ? npeers : 1), sizeof(*c->peers));
    if ((c->by_rank == NULL) || (c->peers == NULL)) {
        return SCOMM_ERR_NO_MEMORY;
    }
    c->all_wake = 1;
    if (npeers == 0) {
        return SCOMM_OK; /* no local peers: no segment needed */
    }
    status = shm_create_segment(c, w->local_size);
    if (status != SCOMM_OK) {
        return status;
    }
    for (i = 0; i < npeers; i++) {
        shm_peer_t *p = &c->peers[i];

        p->rank    = peers[i];
        p->pidfd   = -1;
        p->wake_fd = -1;
        p->cma     = (int)w->cfg.shm_cma;
        scomm_list_init(&p->pending);
        for (j = 0; j < w->local_size; j++) {
            if (w->local_ranks[j] == peers[i]) {
                p->lidx = j;
            }
        }
        c->by_rank[peers[i]] = p;
        c->npeers++;
        status = shm_map_peer(c, p, deadline);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    /* Unlink once every local peer mapped us: from then on no other
     * process can open the segment. */
    while (atomic_load(&c->ctrl->mapped) < (uint32_t)npeers) {
        if (scomm_now_ns() >= deadline) {
            scomm_world_fail(w, SCOMM_ERR_TIMED_OUT, -1,
                             "shm: timed out waiting for local peers to map "
                             "this rank's segment");
            return SCOMM_ERR_TIMED_OUT;
        }
        for (i = 0; i < npeers; i++) {
            if ((c->peers[i].pidfd >= 0) &&
                (kill(c->peers[i].pid, 0) != 0) && (errno == ESRCH)) {
                scomm_world_fail(w, SCOMM_ERR_PEER_LOST, c->peers[i].rank,
                                 "shm: rank %d died during connection setup",
                                 c->peers[i].rank);
                return SCOMM_ERR_PEER_LOST;
            }
        }
        usleep(200);
    }
    shm_unlink(c->name);
    c->unlinked = 1;
    scomm_debug(SCOMM_SUB_SHM, "segment %s (%zu bytes) mapped by %d peers",
                c->name, c->map_len, npeers);
    return SCOMM_OK;
}

static int shm_poll_fds(void *vctx, struct pollfd *fds, int max)
{
    shm_ctx_t *c = vctx;
    int i, n = 0;

    for (i = 0; i < c->npeers; i++) {
        if ((c->peers[i].pidfd >= 0) && !c->w->peers[c->peers[i].rank].closed) {
            n = scomm_pollfd_add(fds, n, max, c->peers[i].pidfd, POLLIN);
        }
    }
    return n;
}

static void shm_sleep_begin(void *vctx)
{
    shm_ctx_t *c = vctx;
    int i;

    if ((c->ctrl != NULL) && c->all_wake) {
        atomic_store(&c->ctrl->sleeping, 1);
        /* Messages still queued for a full ring: ask that receiver to wake
         * us when it frees space (it checks after consuming). The wait
         * loop polls once more after this, closing the race. */
        for (i = 0; i < c->npeers; i++) {
            if (!scomm_list_empty(&c->peers[i].pending)) {
                atomic_store(&c->peers[i].tx->tx_blocked, 1);
            }
        }
        atomic_thread_fence(memory_order_seq_cst);
    }
}

static void shm_sleep_end(void *vctx)
{
    shm_ctx_t *c = vctx;

    if (c->ctrl != NULL) {
        atomic_store_explicit(&c->ctrl->sleeping, 0, memory_order_relaxed);
    }
}

static void shm_check_peers(void *vctx)
{
    shm_ctx_t *c = vctx;
    shm_peer_t *p;
    int i, dead;

    for (i = 0; i < c->npeers; i++) {
        p    = &c->peers[i];
        dead = 0;
        if (c->w->peers[p->rank].closed) {
            continue;
        }
        if (p->pidfd >= 0) {
            dead = scomm_fd_ready(p->pidfd, POLLIN);
        } else if ((kill(p->pid, 0) != 0) && (errno == ESRCH)) {
            dead = 1;
        }
        if (dead && atomic_load(&p->ctrl->closed)) {
            scomm_world_peer_closed(c->w, p->rank);
            continue;
        }
        if (dead) {
            scomm_world_fail(c->w, SCOMM_ERR_PEER_LOST, p->rank,
                             "rank %d (pid %d, shm) died: process exited",
                             p->rank, (int)p->pid);
            return;
        }
    }
}

static void shm_query(void *vctx, scomm_tl_attr_t *attr)
{
    shm_ctx_t *c = vctx;

    attr->caps      = scomm_tl_shm_ops.caps;
    attr->eager_max = c->eager_max;
}

static void shm_heartbeat(void *vctx, uint64_t now)
{
    shm_ctx_t *c = vctx;

    if (c->ctrl != NULL) {
        atomic_store_explicit(&c->ctrl->heartbeat, now, memory_order_relaxed);
    }
}

/* CLOCK_MONOTONIC is one clock for the whole host, so a peer's timestamp
 * compares with ours. */
static uint64_t shm_last_heard(void *vctx, int peer)
{
    shm_ctx_t *c  = vctx;
    shm_peer_t *p = (c->by_rank != NULL) ? c->by_rank[peer] : NULL;

    if ((p == NULL) || (p->ctrl == NULL)) {
        return 0;
    }
    return atomic_load_explicit(&p->ctrl->heartbeat, memory_order_relaxed);
}

static void shm_send_abort(void *vctx, const scomm_tl_abort_t *info)
{
    shm_ctx_t *c = vctx;
    shm_peer_t *p;
    int32_t zero;
    uint64_t one = 1;
    int i;

    for (i = 0; i < c->npeers; i++) {
        p    = &c->peers[i];
        zero = 0;
        if ((p->ctrl == NULL) || (info->failed_rank == p->rank)) {
            continue;
        }
        /* First abort into a segment wins; the message is written before
         * the status is published. */
        if (atomic_load(&p->ctrl->abort_status) != 0) {
            continue;
        }
        p->ctrl->abort_rank = info->failed_rank;
        snprintf(p->ctrl->abort_msg, sizeof(p->ctrl->abort_msg), "%s",
                 info->msg);
        atomic_compare_exchange_strong(&p->ctrl->abort_status, &zero,
                                       info->status);
        if (p->wake_fd >= 0) {
            if (write(p->wake_fd, &one, sizeof(one)) < 0) {
                /* Best effort. */
            }
        }
    }
}

static void shm_fini(void *vctx)
{
    shm_ctx_t *c = vctx;
    scomm_list_t *e;
    int i;

    if (c == NULL) {
        return;
    }
    if (c->ctrl != NULL) {
        /* Tell the local peers this exit is a clean one. */
        atomic_store(&c->ctrl->closed, 1);
    }
    for (i = 0; i < c->npeers; i++) {
        shm_peer_t *p = &c->peers[i];

        while ((e = scomm_list_pop_front(&p->pending)) != NULL) {
            free(scomm_container_of(e, shm_pending_t, list));
        }
        if (p->ctrl != NULL) {
            munmap(p->ctrl, p->map_len);
        }
        if (p->wake_fd >= 0) {
            close(p->wake_fd);
        }
        if (p->pidfd >= 0) {
            close(p->pidfd);
        }
    }
    while ((e = scomm_list_pop_front(&c->rndv)) != NULL) {
        free(scomm_container_of(e, shm_rndv_t, list));
    }
    if (c->created && !c->unlinked) {
        shm_unlink(c->name);
    }
    if (c->ctrl != NULL) {
        munmap(c->ctrl, c->map_len);
    }
    free(c->peers);
    free(c->by_rank);
    free(c);
}

const scomm_tl_ops_t scomm_tl_shm_ops = {
    .name        = "shm",
    .caps        = SCOMM_TL_CAP_SHARED_MEM,
    .init        = shm_init,
    .query       = shm_query,
    .can_reach   = shm_can_reach,
    .connect     = shm_connect,
    .send        = shm_send,
    .rndv_start  = shm_rndv_start,
    .progress    = shm_progress,
    .poll_fds    = shm_poll_fds,
    .sleep_begin = shm_sleep_begin,
    .sleep_end   = shm_sleep_end,
    .check_peers = shm_check_peers,
    .heartbeat   = shm_heartbeat,
    .last_heard  = shm_last_heard,
    .send_abort  = shm_send_abort,
    .mem_reg     = scomm_tl_mem_reg_unsupported,
    .mem_dereg   = scomm_tl_mem_dereg_none,
    .fini        = shm_fini,
};

const scomm_module_t scomm_module_shm = {
    .name    = "shm",
    .params  = shm_params,
    .nparams = SCOMM_ARRAY_SIZE(shm_params),
    .tl      = &scomm_tl_shm_ops,
};
