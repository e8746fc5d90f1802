/*
 * p2p.c - requests, the matching engine and the point-to-point API.
 *
 * Matching: a message from world rank P on context C with tag T completes
 * the oldest receive posted for (P, C, T); receives posted for (P, C, T)
 * take arrivals in arrival order. Transports deliver in send order per
 * peer, so messages are non-overtaking per (peer, ctx, tag), as in MPI.
 *
 * Arrival kinds:
 *   eager  - the payload comes with the header; copied into the matched
 *            buffer, or into a malloc'd unexpected record;
 *   rts    - rendezvous: only (len, cookie) comes; when a receive matches,
 *            the transport's rndv_start moves the bytes straight into it.
 *
 * A message longer than the receive buffer fails the receive with
 * SCOMM_ERR_TRUNCATED and never writes into the buffer.
 *
 * IPC offers (a send, blocking or not, of CUDA device memory to a rank
 * of this host, backend/ipc.c): the sender sends, instead of the bytes,
 * an offer
 * (scomm_p2p_offer_t: an IPC handle of its buffer) on tag -1 - T. A
 * receive for T matches it as it would the message, in the same order
 * (offers and messages share the per-peer queues), but its buffer is not
 * written: the receive is parked on w->ipc_offers, and the progress
 * (scomm_p2p_offers_progress, outside the transports' callbacks) asks the
 * receive's hook (req->ipc_take, set for device memory by backend/stage.c)
 * to copy the bytes out of the sender's memory. The receiver then replies
 * on SCOMM_TAG_IPC_REPLY + seq: done (the receive completes), declined
 * (no hook: host memory, or the hook could not: the receive is posted
 * again on SCOMM_TAG_IPC_DATA + seq, where the sender sends the bytes),
 * truncated (the same error as a message too long), or failed. An offer
 * is never copied into a buffer, so a receiver that knows nothing of IPC
 * still gets the bytes. On the sender's side, an isend's request sits on
 * w->ipc_sends until it is over, and the same progress runs its step
 * (req->ipc_step, backend/ipc.c: reads the reply, or after a decline polls
 * the copy to host and posts the staged bytes; never waits).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm_int.h"

/* ---- request table ---------------------------------------------------- */

static int scomm_req_table_grow(scomm_world_t *w)
{
    uint32_t ncap = (w->req_cap == 0) ? 64 : w->req_cap * 2;
    scomm_req_t **slots;
    uint32_t *gen, *fr;
    uint32_t i;

    slots = realloc(w->req_slots, ncap * sizeof(*slots));
    if (slots == NULL) {
        return -1;
    }
    w->req_slots = slots;
    gen          = realloc(w->req_gen, ncap * sizeof(*gen));
    if (gen == NULL) {
        return -1;
    }
    w->req_gen = gen;
    fr         = realloc(w->req_free, ncap * sizeof(*fr));
    if (fr == NULL) {
        return -1;
    }
    w->req_free = fr;
    for (i = w->req_cap; i < ncap; i++) {
        w->req_slots[i]              = NULL;
        w->req_gen[i]                = 1;
        w->req_free[w->req_nfree++] = ncap - 1 - (i - w->req_cap);
    }
    w->req_cap = ncap;
    return 0;
}

scomm_req_t *scomm_req_new(scomm_world_t *w, scomm_comm_t *comm, int type)
{
    scomm_req_t *req;
    uint32_t slot;

    if ((w->req_nfree == 0) && (scomm_req_table_grow(w) != 0)) {
        return NULL;
    }
    req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    slot               = w->req_free[--w->req_nfree];
    w->req_slots[slot] = req;
    req->id            = ((uint64_t)w->req_gen[slot] << 32) | slot;
    req->world         = w;
    req->comm          = comm;
    req->type          = type;
    req->status        = SCOMM_INPROGRESS;
    scomm_list_init(&req->list);
    return req;
}

void scomm_req_release(scomm_req_t *req)
{
    scomm_world_t *w = req->world;
    uint32_t slot    = (uint32_t)req->id;

    if (req->stage_end != NULL) {
        req->stage_end(req); /* copy back or give the staging back */
    }
    if (req->ipc_pull != NULL) {
        free(req->ipc_pull->buf); /* a late packet finds no live id */
        scomm_req_release(req->ipc_pull);
    }
    free(req->ipc_offer);
    w->req_slots[slot] = NULL;
    w->req_gen[slot]++;
    w->req_free[w->req_nfree++] = slot;
    free(req);
}

scomm_req_t *scomm_req_lookup(scomm_world_t *w, uint64_t id)
{
    uint32_t slot = (uint32_t)id;

    if ((slot >= w->req_cap) || (w->req_slots[slot] == NULL) ||
        (w->req_gen[slot] != (uint32_t)(id >> 32))) {
        return NULL;
    }
    return w->req_slots[slot];
}

void scomm_req_complete(scomm_req_t *req, scomm_status_t status)
{
    req->status = status;
    atomic_store_explicit(&req->done, 1, memory_order_release);
}

void scomm_req_truncated(scomm_req_t *req, int peer)
{
    scomm_set_error(req->comm, SCOMM_ERR_TRUNCATED,
                    "%s: rank %d's receive buffer is smaller than the "
                    "%zu-byte message",
                    (req->comm != NULL) ? req->comm->cur_op : "send", peer,
                    req->len);
    scomm_req_complete(req, SCOMM_ERR_TRUNCATED);
}

/* ---- matching --------------------------------------------------------- */

/* The tag a receive posts for a message tagged tag (an offer's: its
 * user tag). */
static inline int32_t scomm_p2p_match_tag(int32_t tag)
{
    return (tag < 0) ? -1 - tag : tag;
}

static scomm_req_t *scomm_p2p_match_posted(scomm_peer_t *p, uint32_t ctx,
                                           int32_t tag)
{
    scomm_list_t *e, *t;
    scomm_req_t *r;

    tag = scomm_p2p_match_tag(tag);
    scomm_list_for_each_safe(e, t, &p->posted) {
        r = scomm_container_of(e, scomm_req_t, list);
        if ((r->ctx == ctx) && (r->tag == tag)) {
            scomm_list_del(&r->list);
            return r;
        }
    }
    return NULL;
}

static void scomm_p2p_truncated_error(scomm_req_t *r, size_t len)
{
    char msg[160];

    snprintf(msg, sizeof(msg),
             "receive from world rank %d tag %d: message of %zu bytes is "
             "longer than the %zu-byte buffer",
             r->peer, (int)r->tag, len, r->len);
    scomm_set_error(r->comm, SCOMM_ERR_TRUNCATED, "%s", msg);
}

static void scomm_p2p_truncated(scomm_req_t *r, size_t len)
{
    scomm_p2p_truncated_error(r, len);
    scomm_req_complete(r, SCOMM_ERR_TRUNCATED);
}

/* ---- IPC offers (see the top of the file) ----------------------------- */

static scomm_status_t scomm_p2p_post_recv(scomm_world_t *w, scomm_req_t *r);

/* Receive r matched the offer in ux (whose bytes it takes): park it for
 * the progress. */
static void scomm_p2p_offered(scomm_world_t *w, scomm_req_t *r,
                              scomm_unexp_t *ux)
{
    r->ipc_offer     = ux->data;
    r->ipc_offer_len = ux->len;
    ux->data         = NULL;
    scomm_list_push_back(&w->ipc_offers, &r->list);
}

/* Receive r matched an offer sent as a rendezvous (a transport whose
 * eager limit is below an offer's size): pull its bytes into a request of
 * its own, then park r. */
static void scomm_p2p_offer_pull(scomm_world_t *w, int peer, scomm_req_t *r,
                                 size_t len, const scomm_tl_cookie_t *cookie)
{
    scomm_peer_t *p = &w->peers[peer];
    scomm_req_t *s  = NULL;

    if (len <= 4096) {
        s = scomm_req_new(w, r->comm, SCOMM_REQ_RECV);
    }
    if ((s == NULL) || ((s->buf = malloc(len > 0 ? len : 1)) == NULL)) {
        if (s != NULL) {
            scomm_req_release(s);
        }
        p->tl->rndv_start(w->tl_ctx[p->tl_idx], peer, NULL, cookie,
                          SCOMM_ERR_NO_MEMORY);
        scomm_world_fail(w, (len <= 4096) ? SCOMM_ERR_NO_MEMORY
                                          : SCOMM_ERR_PROTOCOL, peer,
                         "receive from rank %d tag %d: %s a %zu-byte CUDA "
                         "IPC offer", peer, (int)r->tag,
                         (len <= 4096) ? "out of memory for" : "refused",
                         len);
        return;
    }
    s->peer     = peer;
    s->ctx      = r->ctx;
    s->tag      = r->tag;
    s->len      = len;
    s->xfer     = len;
    r->ipc_pull = s;
    scomm_list_push_back(&w->ipc_offers, &r->list);
    p->tl->rndv_start(w->tl_ctx[p->tl_idx], peer, s, cookie, SCOMM_OK);
}

/* The reply to an offer, sent from a request of its own that the
 * progress releases once it went. A receive the offer completes (done,
 * truncated, failed: status) completes only then, so nobody leaves while
 * its sender still waits for the reply (a rendezvous, under a small eager
 * limit, needs the receiver's progress); a declined one (status
 * SCOMM_INPROGRESS) waits for its bytes anyway. */
/* The reply could not go: fail the world naming the sender, and end a
 * receive the offer completed with that error. */
static void scomm_p2p_reply_failed(scomm_world_t *w, scomm_req_t *r,
                                   scomm_status_t status,
                                   scomm_status_t err, const char *what)
{
    scomm_world_fail(w, err, r->peer, "receive from rank %d: %s the reply "
                     "to a CUDA IPC offer", r->peer, what);
    if (status != SCOMM_INPROGRESS) {
        scomm_req_complete(r, err);
    }
}

static void scomm_p2p_offer_reply(scomm_world_t *w, scomm_req_t *r,
                                  uint32_t seq, int verdict, int why,
                                  scomm_status_t status)
{
    scomm_peer_t *p = &w->peers[r->peer];
    scomm_req_t *q  = scomm_req_new(w, r->comm, SCOMM_REQ_SEND);

    if (q == NULL) {
        scomm_p2p_reply_failed(w, r, status, SCOMM_ERR_NO_MEMORY,
                               "out of memory for");
        return;
    }
    q->peer      = r->peer;
    q->ctx       = r->ctx;
    q->tag       = (int32_t)(SCOMM_TAG_IPC_REPLY + (seq & SCOMM_IPC_SEQ_MASK));
    q->ipc_reply = (scomm_p2p_reply_t){SCOMM_IPC_REPLY_MAGIC, seq, verdict,
                                       why};
    q->buf       = &q->ipc_reply;
    q->len       = sizeof(q->ipc_reply);
    q->ipc_owner  = (status != SCOMM_INPROGRESS) ? r->id : 0;
    q->ipc_result = status;
    if (p->tl->send(w->tl_ctx[p->tl_idx], q) != SCOMM_OK) {
        scomm_req_release(q);
        scomm_p2p_reply_failed(w, r, status, SCOMM_ERR_PEER_LOST,
                               "could not send");
        return;
    }
    scomm_list_push_back(&w->ipc_replies, &q->ipc_link);
}

static const char *const scomm_ipc_why_text[] = {
    "", "its buffer is host memory", "it cannot use CUDA IPC",
    "it is the sender's process", "it could not open the handle",
    "it could not use the handle"};

/* Receive r holds the whole offer: take it, or decline it. */
static void scomm_p2p_offer_handle(scomm_world_t *w, scomm_req_t *r)
{
    scomm_p2p_offer_t o;
    scomm_status_t status = SCOMM_OK;
    int verdict = SCOMM_IPC_DECLINED, why = SCOMM_IPC_WHY_HOST;

    if ((r->ipc_offer_len != sizeof(o)) ||
        (memcpy(&o, r->ipc_offer, sizeof(o)),
         o.magic != SCOMM_IPC_OFFER_MAGIC)) {
        /* not one of ours: nobody to answer (the world's fault ends the
         * sender's wait) */
        scomm_world_fail(w, SCOMM_ERR_PROTOCOL, r->peer, "receive from "
                         "rank %d tag %d: a malformed CUDA IPC offer (%zu "
                         "bytes)", r->peer, (int)r->tag, r->ipc_offer_len);
        scomm_req_complete(r, SCOMM_ERR_PROTOCOL);
        return;
    }
    free(r->ipc_offer);
    r->ipc_offer = NULL;
    if (o.len > r->len) {
        scomm_p2p_truncated_error(r, (size_t)o.len);
        scomm_p2p_offer_reply(w, r, o.seq, SCOMM_IPC_TRUNCATED, 0,
                              SCOMM_ERR_TRUNCATED);
        return;
    }
    if ((r->ipc_take != NULL) && (r->comm != NULL) &&
        (r->comm->magic == SCOMM_COMM_MAGIC)) {
        verdict = r->ipc_take(r, &o, &status, &why);
    }
    if (verdict == SCOMM_IPC_DONE) {
        r->xfer     = (size_t)o.len;
        r->ipc_path = SCOMM_P2P_PATH_IPC;
        scomm_debug(SCOMM_SUB_P2P, "receive from rank %d tag %d: %llu "
                    "bytes over CUDA IPC", r->peer, (int)r->tag,
                    (unsigned long long)o.len);
        scomm_p2p_offer_reply(w, r, o.seq, SCOMM_IPC_DONE, 0, SCOMM_OK);
        return;
    }
    if (verdict == SCOMM_IPC_FAILED) {
        if (status == SCOMM_OK) {
            status = SCOMM_ERR_INTERNAL;
        }
        scomm_p2p_offer_reply(w, r, o.seq, SCOMM_IPC_FAILED, (int)status,
                              status);
        return;
    }
    if ((why < SCOMM_IPC_WHY_HOST) || (why > SCOMM_IPC_WHY_OTHER)) {
        why = SCOMM_IPC_WHY_OTHER;
    }
    scomm_debug(SCOMM_SUB_P2P, "receive from rank %d tag %d: CUDA IPC "
                "offer of %llu bytes declined (%s); staged", r->peer,
                (int)r->tag, (unsigned long long)o.len,
                scomm_ipc_why_text[why]);
    /* the bytes come on a tag of their own: the receive keeps its place */
    r->ipc_path = SCOMM_P2P_PATH_DECLINED;
    r->tag      = (int32_t)(SCOMM_TAG_IPC_DATA + (o.seq & SCOMM_IPC_SEQ_MASK));
    scomm_p2p_post_recv(w, r);
    scomm_p2p_offer_reply(w, r, o.seq, SCOMM_IPC_DECLINED, why,
                          SCOMM_INPROGRESS);
}

int scomm_p2p_offers_progress(scomm_world_t *w)
{
    scomm_list_t *e, *t;
    scomm_req_t *r, *s;
    int n = 0;

    scomm_list_for_each_safe(e, t, &w->ipc_replies) {
        r = scomm_container_of(e, scomm_req_t, ipc_link);
        if (!atomic_load_explicit(&r->done, memory_order_acquire)) {
            continue;
        }
        scomm_list_del(&r->ipc_link);
        /* the receive it answered, if still there (ids are checked) */
        s = (r->ipc_owner != 0) ? scomm_req_lookup(w, r->ipc_owner) : NULL;
        if (s != NULL) {
            scomm_req_complete(s, (r->status == SCOMM_OK) ? r->ipc_result
                                                          : r->status);
            n++;
        }
        scomm_req_release(r);
    }
    scomm_list_for_each_safe(e, t, &w->ipc_offers) {
        r = scomm_container_of(e, scomm_req_t, list);
        s = r->ipc_pull;
        if (s != NULL) {
            if (!atomic_load_explicit(&s->done, memory_order_acquire)) {
                continue;
            }
            r->ipc_pull      = NULL;
            r->ipc_offer     = s->buf;
            r->ipc_offer_len = s->xfer;
            s->buf           = NULL;
            if (s->status != SCOMM_OK) {
                scomm_status_t failed = s->status;

                scomm_list_del(&r->list);
                scomm_req_release(s);
                scomm_req_complete(r, failed);
                n++;
                continue;
            }
            scomm_req_release(s);
        }
        scomm_list_del(&r->list);
        scomm_p2p_offer_handle(w, r);
        n++;
    }
    /* isends offered over CUDA IPC: each step only looks at its own
     * requests, polls an event or posts a send (backend/ipc.c) */
    scomm_list_for_each_safe(e, t, &w->ipc_sends) {
        r = scomm_container_of(e, scomm_req_t, ipc_link);
        n += r->ipc_step(r);
    }
    return n;
}

void *scomm_p2p_eager_begin(scomm_world_t *w, int peer, uint32_t ctx,
                            int32_t tag, size_t len, scomm_rx_t *rx)
{
    scomm_peer_t *p = &w->peers[peer];
    /* an offer is never written into a receive's buffer: it lands in an
     * unexpected record, which eager_end hands to its receive */
    scomm_req_t *r  = (tag < 0) ? NULL : scomm_p2p_match_posted(p, ctx, tag);
    scomm_unexp_t *ux;

    memset(rx, 0, sizeof(*rx));
    if (r != NULL) {
        rx->req = r;
        if (len > r->len) {
            rx->scratch = malloc(len > 0 ? len : 1);
            return rx->scratch;
        }
        return r->buf;
    }
    ux = calloc(1, sizeof(*ux));
    if (ux == NULL) {
        return NULL;
    }
    ux->ctx  = ctx;
    ux->tag  = tag;
    ux->len  = len;
    ux->data = malloc(len > 0 ? len : 1);
    if (ux->data == NULL) {
        free(ux);
        return NULL;
    }
    rx->ux = ux;
    return ux->data;
}

void scomm_p2p_eager_end(scomm_world_t *w, int peer, scomm_rx_t *rx)
{
    scomm_req_t *r = rx->req;

    if (r != NULL) {
        if (rx->scratch != NULL) {
            free(rx->scratch);
            rx->scratch = NULL;
            scomm_p2p_truncated(r, r->xfer);
        } else {
            scomm_req_complete(r, SCOMM_OK);
        }
    } else if (rx->ux != NULL) {
        /* A transport that streams the payload (tcp) may have let the user
         * post a matching receive while the bytes were arriving: this
         * message is older than anything else unmatched for (ctx, tag), so
         * that receive takes it now. */
        scomm_unexp_t *ux = rx->ux;

        r = scomm_p2p_match_posted(&w->peers[peer], ux->ctx, ux->tag);
        if (r == NULL) {
            scomm_list_push_back(&w->peers[peer].unexp, &ux->list);
            return;
        }
        if (ux->tag < 0) {
            scomm_p2p_offered(w, r, ux);
        } else if (ux->len > r->len) {
            scomm_p2p_truncated(r, ux->len);
        } else {
            if (ux->len > 0) {
                memcpy(r->buf, ux->data, ux->len);
            }
            r->xfer = ux->len;
            scomm_req_complete(r, SCOMM_OK);
        }
        free(ux->data);
        free(ux);
    }
}

void scomm_p2p_eager_copy(scomm_world_t *w, int peer, uint32_t ctx,
                                 int32_t tag, const void *data, size_t len)
{
    scomm_rx_t rx;
    void *dst = scomm_p2p_eager_begin(w, peer, ctx, tag, len, &rx);

    if ((dst == NULL) && (len > 0)) {
        scomm_world_fail(w, SCOMM_ERR_NO_MEMORY, peer,
                         "out of memory buffering a %zu-byte message from "
                         "rank %d",
                         len, peer);
        return;
    }
    if (rx.req != NULL) {
        rx.req->xfer = len;
    }
    if ((len > 0) && (rx.scratch == NULL)) {
        memcpy(dst, data, len);
    }
    if ((rx.req != NULL) && (rx.scratch != NULL)) {
        free(rx.scratch);
        rx.scratch = NULL;
        scomm_p2p_truncated(rx.req, len);
        return;
    }
    scomm_p2p_eager_end(w, peer, &rx);
}

void scomm_p2p_rts(scomm_world_t *w, int peer, uint32_t ctx, int32_t tag,
                   size_t len, const scomm_tl_cookie_t *cookie)
{
    scomm_peer_t *p = &w->peers[peer];
    scomm_req_t *r  = scomm_p2p_match_posted(p, ctx, tag);
    scomm_unexp_t *ux;

    if ((r != NULL) && (tag < 0)) {
        scomm_p2p_offer_pull(w, peer, r, len, cookie);
        return;
    }
    if (r != NULL) {
        if (len > r->len) {
            p->tl->rndv_start(w->tl_ctx[p->tl_idx], peer, NULL, cookie,
                              SCOMM_ERR_TRUNCATED);
            scomm_p2p_truncated(r, len);
            return;
        }
        r->xfer = len;
        p->tl->rndv_start(w->tl_ctx[p->tl_idx], peer, r, cookie, SCOMM_OK);
        return;
    }
    ux = calloc(1, sizeof(*ux));
    if (ux == NULL) {
        scomm_world_fail(w, SCOMM_ERR_NO_MEMORY, peer,
                         "out of memory queueing a message from rank %d",
                         peer);
        return;
    }
    ux->ctx    = ctx;
    ux->tag    = tag;
    ux->len    = len;
    ux->rndv   = 1;
    ux->cookie = *cookie;
    scomm_list_push_back(&p->unexp, &ux->list);
}

/* ---- posting ---------------------------------------------------------- */

static scomm_status_t scomm_p2p_post_recv(scomm_world_t *w, scomm_req_t *r)
{
    scomm_peer_t *p = &w->peers[r->peer];
    scomm_list_t *e, *t;
    scomm_unexp_t *ux;

    scomm_list_for_each_safe(e, t, &p->unexp) {
        ux = scomm_container_of(e, scomm_unexp_t, list);
        if ((ux->ctx != r->ctx) ||
            (scomm_p2p_match_tag(ux->tag) != r->tag)) {
            continue;
        }
        scomm_list_del(&ux->list);
        if ((ux->tag < 0) && ux->rndv) {
            scomm_p2p_offer_pull(w, r->peer, r, ux->len, &ux->cookie);
        } else if (ux->tag < 0) {
            scomm_p2p_offered(w, r, ux);
        } else if (ux->rndv) {
            if (ux->len > r->len) {
                p->tl->rndv_start(w->tl_ctx[p->tl_idx], r->peer, NULL,
                                  &ux->cookie, SCOMM_ERR_TRUNCATED);
                scomm_p2p_truncated(r, ux->len);
            } else {
                r->xfer = ux->len;
                p->tl->rndv_start(w->tl_ctx[p->tl_idx], r->peer, r,
                                  &ux->cookie, SCOMM_OK);
            }
        } else if (ux->len > r->len) {
            scomm_p2p_truncated(r, ux->len);
        } else {
            if (ux->len > 0) {
                memcpy(r->buf, ux->data, ux->len);
            }
            r->xfer = ux->len;
            scomm_req_complete(r, SCOMM_OK);
        }
        free(ux->data);
        free(ux);
        return SCOMM_OK;
    }
    scomm_list_push_back(&p->posted, &r->list);
    return SCOMM_OK;
}

scomm_status_t scomm_p2p_isend(scomm_comm_t *comm, int peer, int32_t tag,
                               const void *buf, size_t len,
                               scomm_req_t **req_p)
{
    scomm_world_t *w = comm->world;
    int wpeer        = comm->ranks[peer];
    scomm_peer_t *p  = &w->peers[wpeer];
    scomm_status_t status;
    scomm_req_t *r;

    r = scomm_req_new(w, comm, SCOMM_REQ_SEND);
    if (r == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for a request",
                               comm->cur_op);
    }
    r->peer = wpeer;
    r->ctx  = comm->ctx;
    r->tag  = tag;
    r->buf  = (void *)buf;
    r->len  = len;
    if (p->tl == NULL) {
        /* Self: deliver straight into the matching engine. */
        scomm_p2p_eager_copy(w, wpeer, r->ctx, tag, buf, len);
        r->xfer = len;
        scomm_req_complete(r, SCOMM_OK);
        *req_p = r;
        return SCOMM_OK;
    }
    status = p->tl->send(w->tl_ctx[p->tl_idx], r);
    if (status != SCOMM_OK) {
        scomm_req_release(r);
        return scomm_set_error(comm, status, "%s: send to rank %d failed",
                               comm->cur_op, peer);
    }
    *req_p = r;
    return SCOMM_OK;
}

scomm_status_t scomm_p2p_irecv(scomm_comm_t *comm, int peer, int32_t tag,
                               void *buf, size_t len, scomm_req_t **req_p)
{
    scomm_world_t *w = comm->world;
    scomm_req_t *r;

    r = scomm_req_new(w, comm, SCOMM_REQ_RECV);
    if (r == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for a request",
                               comm->cur_op);
    }
    r->peer = comm->ranks[peer];
    r->ctx  = comm->ctx;
    r->tag  = tag;
    r->buf  = buf;
    r->len  = len;
    scomm_p2p_post_recv(w, r);
    *req_p = r;
    return SCOMM_OK;
}

static scomm_status_t scomm_p2p_wait_reqs(scomm_comm_t *comm,
                                          scomm_req_t **reqs, int n,
                                          int *path)
{
    scomm_status_t status;
    int i;

    status = scomm_world_wait(comm->world, comm, reqs, n,
                              scomm_comm_deadline(comm));
    if ((path != NULL) && (n == 1) && (reqs[0] != NULL)) {
        *path = reqs[0]->ipc_path;
    }
    for (i = 0; i < n; i++) {
        if (reqs[i] == NULL) {
            continue;
        }
        if ((status == SCOMM_OK) && (reqs[i]->status != SCOMM_OK)) {
            status = reqs[i]->status;
        }
        /* A request that did not finish (fault or deadline) may still sit
         * in a posted queue; transports know requests only by id, so once
         * released a late packet finds no live id and is dropped. */
        if (!atomic_load(&reqs[i]->done) &&
            (reqs[i]->type == SCOMM_REQ_RECV)) {
            scomm_list_del(&reqs[i]->list);
        }
        scomm_req_release(reqs[i]);
        reqs[i] = NULL;
    }
    return status;
}

scomm_status_t scomm_p2p_waitall(scomm_comm_t *comm, scomm_req_t **reqs,
                                 int n)
{
    return scomm_p2p_wait_reqs(comm, reqs, n, NULL);
}

scomm_status_t scomm_p2p_wait_path(scomm_comm_t *comm, scomm_req_t *req,
                                   int *path)
{
    *path = SCOMM_P2P_PATH_WIRE;
    return scomm_p2p_wait_reqs(comm, &req, 1, path);
}

scomm_status_t scomm_p2p_sendrecv(scomm_comm_t *comm, const void *sbuf,
                                  size_t slen, int dst, void *rbuf,
                                  size_t rlen, int src, int32_t tag)
{
    scomm_req_t *reqs[2] = {NULL, NULL};
    scomm_status_t status;

    status = scomm_p2p_irecv(comm, src, tag, rbuf, rlen, &reqs[0]);
    if (status == SCOMM_OK) {
        status = scomm_p2p_isend(comm, dst, tag, sbuf, slen, &reqs[1]);
    }
    if (status != SCOMM_OK) {
        if (reqs[0] != NULL) {
            scomm_list_del(&reqs[0]->list);
            scomm_req_release(reqs[0]);
        }
        return status;
    }
    return scomm_p2p_waitall(comm, reqs, 2);
}
