/*
 * kv_send.c - the sending half of a KV endpoint: each stream's queue of
 * control frames (scomm_kv_ctl_push: replies the RX thread queues, so it
 * never writes), the chunk scheduler (kv_sx_pick), packing a chunk from the
 * registered region (kv_send_chunk: zero copy, CMA descriptor, or
 * converted and compressed into staging; kv_send_ipc_desc: a chunk
 * kv_dev.c already copied into the receiver's device region over CUDA
 * IPC), the BEGIN (kv_send_begin), the TX
 * thread, and the replies that move our transfers on (scomm_kv_on_reply,
 * run by the RX thread that read them).
 *
 * Design notes (invariants):
 *  1. The TX thread is its socket's only writer. It writes, first found
 *     first: a queued control frame, a BEGIN that waits, the next chunk if
 *     fewer than prefetch_depth are unanswered on the stream, a heartbeat
 *     after KV_HB_MS idle. On close it still writes the queued frames (the
 *     last ACKs), then BYE.
 *  2. The next chunk comes from the highest-priority running transfer
 *     (ties: submission order), its re-sends first, then chunks in order
 *     (layers in order).
 *  3. A chunk is never kept: a NACKed chunk, or one unanswered on a stream
 *     that broke, goes back to its transfer's re-send list and is packed
 *     again from the source region. Native uncompressed chunks of all the
 *     source's heads go to the socket straight from the region (writev);
 *     converted or compressed ones, and those of a head range (only its
 *     heads are packed: pack_heads), use the stream's staging (tbuf, ftx).
 *     Over ofi (sx->rma) the same bytes go by RMA writes instead of the
 *     socket (kv_send_rma), then an RDATA header; a chunk that needs a
 *     landing slot holds it (kv_sx_pick) until its reply.
 *  4. Replies come in order on each stream: a reply that is not for the
 *     oldest unanswered chunk (the head of st->inf) breaks the stream.
 *  5. A chunk NACKed more than KV_MAX_NACKS times fails its transfer with
 *     SCOMM_ERR_CHECKSUM.
 *  6. Nothing enters st->inf once the stream is dead (st->alive 0, lock
 *     held): scomm_kv_stream_dead requeues st->inf once, and
 *     kv_stream_revive empties it, so a chunk put there after the loss is
 *     never sent again nor acknowledged (its transfer waits forever). The
 *     race this closes: the TX thread stages chunk i of a device source
 *     outside the lock (kv_tx_chunk) while the RX thread sees the stream
 *     close and runs scomm_kv_stream_dead, which puts i back on its
 *     re-send list; kv_tx_prefetch then staged the next chunk ahead,
 *     often i itself, into the dead stream's st->inf. It checks st->alive
 *     as the TX loop does (test: mp.kv.dev.ipc.reconnect.prefetch).
 *
 * Sender transfer states (sx->state, lock held):
 *
 *                          scomm_kv_tx_main
 *   scomm_kv_submit      (sends the BEGIN)     scomm_kv_on_reply (BEGIN_OK)
 *   ------> BEGIN_WAIT ----------------------> BEGIN_SENT ----------> RUN
 *               ^                                  |                   |
 *               +----------------------------------+                   |
 *                 kv_send_begin failed, or its stream                  |
 *                 was lost (scomm_kv_stream_dead)                      |
 *                                                                      v
 *                                  DONE <--- scomm_kv_on_reply (last ACK)
 *
 *   BEGIN_WAIT, BEGIN_SENT, RUN --scomm_kv_sx_fail--> FAILED, on BEGIN_ERR
 *   or too many NACKs (scomm_kv_on_reply), the endpoint's fault
 *   (scomm_kv_ep_fault) or a cancel (scomm_kv_xfer_free).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_int.h"
#include "telemetry/tm.h"

int scomm_kv_ctl_push_bin(kv_stream_t *st, const scomm_kv_hdr_t *h,
                          const void *pl, uint32_t plen)
{
    kv_ctl_t *c;

    if ((plen > SCOMM_KV_ERRTEXT_MAX) || (scomm_kv_ctl_push(st, h,
                                                            NULL) != 0)) {
        return -1;
    }
    c = &st->ctl[(st->ctl_head + st->ctl_n - 1) % st->ctl_cap];
    memcpy(c->text, pl, plen);
    c->plen = plen;
    return 0;
}

void scomm_kv_rma_slot_put(kv_sx_t *sx, int slot)
{
    if ((slot >= 0) && (sx->rma != NULL) &&
        ((uint32_t)slot < sx->rma->nslots)) {
        sx->rma->busy[slot] = 0;
    }
}

int scomm_kv_ctl_push(kv_stream_t *st, const scomm_kv_hdr_t *h,
                      const char *text)
{
    kv_ctl_t *nc;
    size_t i, cap = st->ctl_cap;

    if (st->ctl_n == st->ctl_cap) {
        nc = malloc(((cap == 0) ? 16 : 2 * cap) * sizeof(*nc));
        if (nc == NULL) {
            return -1;
        }
        for (i = 0; i < st->ctl_n; i++) {
            nc[i] = st->ctl[(st->ctl_head + i) % cap];
        }
        free(st->ctl);
        st->ctl      = nc;
        st->ctl_head = 0;
        st->ctl_cap  = (cap == 0) ? 16 : 2 * cap;
    }
    i = (st->ctl_head + st->ctl_n) % st->ctl_cap;
    st->ctl[i].h = *h;
    st->ctl[i].plen = 0;
    st->ctl[i].text[0] = '\0';
    if (text != NULL) {
        snprintf(st->ctl[i].text, sizeof(st->ctl[i].text), "%s", text);
    }
    st->ctl_n++;
    pthread_cond_broadcast(&st->ep->tx_cond);
    return 0;
}

void scomm_kv_sx_fail(kv_sx_t *sx, scomm_status_t status, const char *msg)
{
    if ((sx->state == SX_DONE) || (sx->state == SX_FAILED)) {
        return;
    }
    sx->state  = SX_FAILED;
    sx->status = status;
    snprintf(sx->msg, sizeof(sx->msg), "%s", msg);
    scomm_tm_add(NULL, SCOMM_TM_KV_ERRORS, 1);
}

void scomm_kv_sx_free(kv_sx_t *sx)
{
    scomm_kv_dev_sx_free(sx);
    if (sx->rma != NULL) {
        free(sx->rma->busy);
        free(sx->rma);
    }
    free(sx->tbl);
    free(sx->acked_map);
    free(sx->nacks);
    free(sx->resend);
    free(sx);
}

/* Drop one reference; frees the transfer when nothing holds it. */
void scomm_kv_sx_unref(scomm_kv_ep_t *ep, kv_sx_t *sx)
{
    kv_sx_t **pp;

    sx->refs--;
    if ((sx->refs > 0) || !sx->user_freed) {
        return;
    }
    for (pp = &ep->sx_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == sx) {
            *pp = sx->next;
            break;
        }
    }
    scomm_kv_sx_free(sx);
}

/* A free landing slot of sx, or -1 (none needed: -2). Lock held. */
static int kv_sx_slot(const kv_sx_t *sx)
{
    uint32_t i;

    if ((sx->rma == NULL) || sx->rma->direct) {
        return -2;
    }
    for (i = 0; i < sx->rma->nslots; i++) {
        if (!sx->rma->busy[i]) {
            return (int)i;
        }
    }
    return -1;
}

static kv_sx_t *kv_sx_pick(scomm_kv_ep_t *ep, uint32_t *seq, int *slot)
{
    kv_sx_t *sx, *best = NULL;

    for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
        if ((sx->state != SX_RUN) ||
            ((sx->nresend == 0) && (sx->next_seq >= sx->nchunks)) ||
            (kv_sx_slot(sx) == -1)) {
            continue;
        }
        if ((best == NULL) || (sx->priority > best->priority) ||
            ((sx->priority == best->priority) && (sx->order < best->order))) {
            best = sx;
        }
    }
    if (best == NULL) {
        return NULL;
    }
    if (best->nresend > 0) {
        *seq = best->resend[--best->nresend];
    } else {
        *seq = (uint32_t)best->next_seq++;
    }
    *slot = kv_sx_slot(best);
    if (*slot >= 0) {
        best->rma->busy[*slot] = 1;
    } else {
        *slot = -1;
    }
    return best;
}

/* Count chunk h (nb blocks) in the endpoint's stats (sign 1), before it
 * is written: the receiver may complete the transfer, and its owner read
 * the stats, before this thread runs again. Sign -1 takes back a chunk
 * whose write failed. */
static void kv_send_count(scomm_kv_ep_t *ep, const kv_sx_t *sx,
                          const scomm_kv_hdr_t *h, uint32_t nb, int sign)
{
    uint64_t raw = (uint64_t)nb * sx->sbb;

    pthread_mutex_lock(&ep->lock);
    if (sign > 0) {
        ep->stats.chunks_sent++;
        ep->stats.bytes_raw  += raw;
        ep->stats.bytes_wire += h->len;
        ep->stats.bytes_zero_copy += (h->type == SCOMM_KV_T_DESC) ? raw : 0;
    } else {
        ep->stats.chunks_sent--;
        ep->stats.bytes_raw  -= raw;
        ep->stats.bytes_wire -= h->len;
        ep->stats.bytes_zero_copy -= (h->type == SCOMM_KV_T_DESC) ? raw : 0;
    }
    pthread_mutex_unlock(&ep->lock);
}

/* Block i of a chunk starting at block i0: in the region, or in the
 * pinned copy of a device region's chunk (pin, blocks in chunk order). */
static inline uint8_t *kv_src_block(uint8_t *lbase, const uint8_t *pin,
                                    const kv_sx_t *sx, size_t bb, uint32_t i,
                                    uint32_t i0)
{
    return (pin != NULL) ? (uint8_t *)pin + (size_t)(i - i0) * bb
                         : lbase + (size_t)sx->tbl[i] * bb;
}

/* Write chunk seq of sx by RMA (docs/kv.md, "Over libfabric RMA"), then
 * its RDATA header h (crc, len and raw_len set) on the stream: from buf (the
 * staging, buflen bytes) or, buf NULL, from the source blocks [i0, i1) of
 * layer lbase; to the destination blocks (direct) or to landing slot
 * slot. 0 or -1 (stream broken, the reason in why_tx). */
static int kv_send_rma(kv_stream_t *st, kv_sx_t *sx, uint32_t seq, int slot,
                       scomm_kv_hdr_t *h, const uint8_t *buf, size_t buflen,
                       const uint8_t *lbase, uint32_t i0, uint32_t i1,
                       size_t wbb)
{
    const kv_rma_t *m = sx->rma;
    const kv_region_t *r = &st->ep->regions[sx->plan.src_region];
    const int32_t *dtbl = sx->tbl + sx->plan.num_src_blocks;
    uint64_t layer = (uint64_t)h->aux, soff;
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    kv_piece_t *pc;
    uint32_t nb = i1 - i0, k, nw = 0;
    int n = 0, rc;

    if ((m->direct && (wbb != m->block_bytes)) ||
        (!m->direct && ((slot < 0) || ((uint32_t)slot >= m->nslots) ||
                        (buflen > m->slot_bytes) ||
                        ((uint64_t)nb * wbb > m->slot_bytes)))) {
        snprintf(st->why_tx, sizeof(st->why_tx), "chunk %u of %zu bytes does "
                 "not fit the receiver's offer (slot %d of %u, %llu bytes)",
                 seq, (buf != NULL) ? buflen : (size_t)nb * wbb, slot,
                 m->nslots, (unsigned long long)(m->direct ? m->block_bytes
                                                           : m->slot_bytes));
        return -1;
    }
    pc = malloc(sizeof(*pc) * (nb + 1));
    if (pc == NULL) {
        snprintf(st->why_tx, sizeof(st->why_tx), "out of memory");
        return -1;
    }
    soff = m->direct ? 0 : (uint64_t)slot * m->slot_bytes;
    if (sx->compression != SCOMM_KV_COMPRESS_NONE) {
        pc[n].src = buf;
        pc[n].len = buflen;
        pc[n].off = soff;
        n++;
    } else {
        for (k = 0; k < nb; k++, n++) {
            pc[n].src = (buf != NULL) ? buf + (size_t)k * wbb
                                      : lbase + (size_t)sx->tbl[i0 + k] *
                                                    r->bb;
            pc[n].len = wbb;
            pc[n].off = m->direct
                            ? (layer * m->blocks_per_layer +
                               (uint64_t)dtbl[i0 + k]) * m->block_bytes
                            : soff + (uint64_t)k * wbb;
        }
    }
    h->type  = SCOMM_KV_T_RDATA;
    rc = scomm_kv_ofi_put(st, sx, seq, pc, n, &nw);
    free(pc);
    if (rc != 0) {
        return -1;
    }
    h->aux   = nw;
    h->flags = m->direct ? UINT32_MAX : (uint32_t)slot;
    scomm_kv_hdr_encode(h, hb);
    return scomm_kv_io(st, hb, sizeof(hb), 1);
}

/* The header fields every frame of chunk seq of sx carries (type, len,
 * crc and flags are the caller's); *i0 := its first block, unless NULL.
 * Its number of blocks. */
static uint32_t kv_chunk_hdr(const kv_sx_t *sx, uint32_t seq,
                             scomm_kv_hdr_t *h, uint32_t *i0)
{
    uint32_t first = (seq % sx->cpl) * sx->bpc, nb;

    nb = SCOMM_MIN(first + sx->bpc, sx->plan.num_src_blocks) - first;
    if (i0 != NULL) {
        *i0 = first;
    }
    memset(h, 0, sizeof(*h));
    h->magic   = SCOMM_KV_MAGIC;
    h->version = SCOMM_KV_VERSION;
    h->xfer_id = sx->plan.xfer_id;
    h->seq     = seq;
    h->aux     = (uint32_t)(sx->plan.first_layer + (int)(seq / sx->cpl));
    h->raw_len = (uint64_t)nb * scomm_kv_wire_block_bytes(&sx->sl,
                                                          sx->wire_dtype);
    return nb;
}

/* Pack and write chunk seq of sx (by RMA into landing slot slot, or -1;
 * a device source: from its pinned copy pin). 0 or -1 (stream broken). */
static int kv_send_chunk(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                         int slot, const uint8_t *pin)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_region_t *r = &ep->regions[sx->plan.src_region];
    uint32_t i0, i1, i, nb;
    int layer = sx->plan.first_layer + (int)(seq / sx->cpl);
    uint8_t *lbase = r->base + (size_t)layer * r->l.num_blocks * r->bb;
    size_t wbb = scomm_kv_wire_block_bytes(&sx->sl, sx->wire_dtype);
    int h0 = sx->plan.src_head_off, hn = sx->plan.src_head_cnt;
    struct iovec iov[KV_IOV_BATCH + 1];
    scomm_kv_hdr_t h;
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    uint8_t *raw, *out;
    size_t rawlen, outlen, bound;
    uint32_t crc = 0;
    int rc, k;

    nb     = kv_chunk_hdr(sx, seq, &h, &i0);
    i1     = i0 + nb;
    rawlen = (size_t)h.raw_len;
    if ((sx->wire_dtype == SCOMM_KV_WIRE_NATIVE) &&
        (sx->compression == SCOMM_KV_COMPRESS_NONE) && !sx->part) {
        for (i = i0; i < i1; i++) {
            crc = scomm_kv_crc32c(crc, kv_src_block(lbase, pin, sx, r->bb, i, i0),
                                  r->bb);
        }
        h.crc = crc;
        if (sx->rma != NULL) {
            h.len = rawlen;
            kv_send_count(ep, sx, &h, nb, 1);
            rc = kv_send_rma(st, sx, seq, slot, &h, NULL, 0, lbase, i0, i1,
                             wbb);
            goto out;
        }
        if (sx->cma) {
            h.type = SCOMM_KV_T_DESC;
            h.len  = 0;
            scomm_kv_hdr_encode(&h, hb);
            kv_send_count(ep, sx, &h, nb, 1);
            rc = scomm_kv_io(st, hb, sizeof(hb), 1);
            goto out;
        }
        h.type = SCOMM_KV_T_DATA;
        h.len  = rawlen;
        scomm_kv_hdr_encode(&h, hb);
        /* Zero copy from the registered region: the kernel reads it. The
         * header leads the first writev, so it never goes out as a
         * segment of its own (TCP_NODELAY). */
        iov[0].iov_base = hb;
        iov[0].iov_len  = sizeof(hb);
        kv_send_count(ep, sx, &h, nb, 1);
        rc = 0;
        for (i = i0, k = 1; (rc == 0) && (i < i1); k = 0) {
            for (; (i < i1) && (k < KV_IOV_BATCH + 1); i++, k++) {
                iov[k].iov_base = kv_src_block(lbase, pin, sx, r->bb, i, i0);
                iov[k].iov_len  = r->bb;
            }
            rc = scomm_kv_iov_io(st, iov, k, 1);
        }
        goto out;
    }
    /* Converted, compressed or some heads only: pack into staging. */
    if (scomm_kv_ensure_buf(&st->tbuf[0], &st->tcap[0], rawlen) != 0) {
        snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
        return -1;
    }
    raw = st->tbuf[0];
    if (sx->wire_dtype == SCOMM_KV_WIRE_NATIVE) {
        for (i = i0; i < i1; i++) {
            if (sx->part) {
                scomm_kv_pack_heads(&r->l, kv_src_block(lbase, pin, sx, r->bb, i, i0),
                                    h0, hn, raw + (size_t)(i - i0) * wbb);
            } else {
                memcpy(raw + (size_t)(i - i0) * wbb,
                       kv_src_block(lbase, pin, sx, r->bb, i, i0), r->bb);
            }
        }
    } else {
        if ((scomm_kv_ensure_f(&st->ftx, &st->ftxcap,
                               (size_t)r->l.block_tokens *
                                   r->l.head_dim) != 0) ||
            (sx->part && (scomm_kv_ensure_buf(&st->tbuf[1], &st->tcap[1],
                                              sx->sbb) != 0))) {
            snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
            return -1;
        }
        for (i = i0; i < i1; i++) {
            const uint8_t *blk = kv_src_block(lbase, pin, sx, r->bb, i, i0);

            if (sx->part) { /* tbuf[1] is free until compression */
                scomm_kv_pack_heads(&r->l, blk, h0, hn, st->tbuf[1]);
                blk = st->tbuf[1];
            }
            scomm_kv_quant_block(&sx->sl, blk, sx->wire_dtype,
                                 raw + (size_t)(i - i0) * wbb, st->ftx);
        }
    }
    out    = raw;
    outlen = rawlen;
    if (sx->compression != SCOMM_KV_COMPRESS_NONE) {
        bound = scomm_kv_compress_bound(sx->compression, rawlen);
        if (scomm_kv_ensure_buf(&st->tbuf[1], &st->tcap[1], bound) != 0) {
            snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
            return -1;
        }
        outlen = scomm_kv_compress(st, sx->compression, sx->level, raw,
                                   rawlen, st->tbuf[1], bound);
        if (outlen == 0) {
            return -1; /* the reason is in why_tx */
        }
        out = st->tbuf[1];
    }
    if (outlen > SCOMM_KV_CHUNK_MAX) {
        snprintf(st->why_tx, sizeof(st->why_tx), "compression failed");
        return -1;
    }
    h.type = SCOMM_KV_T_DATA;
    h.crc  = scomm_kv_crc32c(0, out, outlen);
    h.len  = outlen;
    if (sx->rma != NULL) {
        kv_send_count(ep, sx, &h, nb, 1);
        rc = kv_send_rma(st, sx, seq, slot, &h, out, outlen, lbase, i0, i1,
                         wbb);
        goto out;
    }
    scomm_kv_hdr_encode(&h, hb);
    iov[0].iov_base = hb;
    iov[0].iov_len  = sizeof(hb);
    iov[1].iov_base = out;
    iov[1].iov_len  = outlen;
    kv_send_count(ep, sx, &h, nb, 1);
    rc = scomm_kv_iov_io(st, iov, 2, 1);
out:
    if (rc != 0) {
        kv_send_count(ep, sx, &h, nb, -1); /* it did not go */
    } else {
        scomm_tm_add(NULL, SCOMM_TM_KV_CHUNKS, 1);
        scomm_tm_add(NULL, SCOMM_TM_KV_BYTES, (uint64_t)nb * sx->sbb);
    }
    return rc;
}

/* Chunk seq of sx was written into the receiver's region over CUDA IPC
 * (kv_dev.c) and its copies are done: say so with a DESC. 0 or -1. */
static int kv_send_ipc_desc(kv_stream_t *st, kv_sx_t *sx, uint32_t seq)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    scomm_kv_hdr_t h;
    uint32_t nb = kv_chunk_hdr(sx, seq, &h, NULL);
    int rc;

    h.type  = SCOMM_KV_T_DESC;
    h.flags = SCOMM_KV_DESC_IPC;
    scomm_kv_hdr_encode(&h, hb);
    /* counted before the write, as kv_send_count says why */
    kv_send_count(st->ep, sx, &h, nb, 1);
    pthread_mutex_lock(&st->ep->lock);
    st->ep->ipc_chunks++;
    pthread_mutex_unlock(&st->ep->lock);
    scomm_tm_add(NULL, SCOMM_TM_KV_IPC_BYTES, (uint64_t)nb * sx->sbb);
    rc = scomm_kv_io(st, hb, sizeof(hb), 1);
    if (rc != 0) {
        kv_send_count(st->ep, sx, &h, nb, -1);
        pthread_mutex_lock(&st->ep->lock);
        st->ep->ipc_chunks--;
        pthread_mutex_unlock(&st->ep->lock);
        /* modulo 2^64: takes the bytes back */
        scomm_tm_add(NULL, SCOMM_TM_KV_IPC_BYTES,
                     (uint64_t)0 - (uint64_t)nb * sx->sbb);
        return rc;
    }
    scomm_tm_add(NULL, SCOMM_TM_KV_CHUNKS, 1);
    scomm_tm_add(NULL, SCOMM_TM_KV_BYTES, (uint64_t)nb * sx->sbb);
    return 0;
}

static int kv_send_begin(kv_stream_t *st, kv_sx_t *sx)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_region_t *r = &ep->regions[sx->plan.src_region];
    scomm_kv_begin_t b;
    scomm_kv_hdr_t h;
    uint8_t *pl;
    size_t len;
    int rc;

    memset(&b, 0, sizeof(b));
    b.src_layers       = r->l.num_layers;
    b.heads            = r->l.num_kv_heads;
    b.head_dim         = r->l.head_dim;
    b.src_block_tokens = r->l.block_tokens;
    b.src_num_blocks   = r->l.num_blocks;
    b.src_dtype        = (int32_t)r->l.dtype;
    b.src_order        = r->l.order;
    b.wire_dtype       = sx->wire_dtype;
    b.compression      = sx->compression;
    b.first_layer      = sx->plan.first_layer;
    b.num_layers       = sx->plan.num_layers;
    b.dst_region       = sx->plan.dst_region;
    b.blocks_per_chunk = sx->bpc;
    b.num_src_blocks   = sx->plan.num_src_blocks;
    b.num_dst_blocks   = sx->plan.num_dst_blocks;
    /* RMA (transport ofi) replaces the same-host copy: we write; a
     * device region cannot be read with process_vm_readv */
    b.zero_copy        = ((ep->ofi != NULL) && !r->dev)
                             ? SCOMM_KV_BEGIN_ZC_RMA
                             : (uint32_t)(ep->zero_copy && !r->dev &&
                                          (sx->wire_dtype == 0) &&
                                          (sx->compression == 0) &&
                                          !sx->part);
    /* a device region: it may write into the receiver's over CUDA IPC */
    b.zero_copy       |= scomm_kv_dev_ipc_ask(ep, sx);
    b.num_tokens       = sx->plan.num_tokens;
    b.src_base         = (uint64_t)(uintptr_t)r->base;
    b.src_bytes        = r->bytes;
    b.nchunks          = sx->nchunks;
    b.src_blocks       = sx->tbl;
    b.dst_blocks       = sx->tbl + sx->plan.num_src_blocks;
    /* A plan with a head range says so; one without sends the BEGIN of
     * before head ranges, which every peer understands. */
    b.has_heads        = (sx->plan.src_head_off != 0) || sx->part ||
                         (sx->plan.dst_head_off != 0) ||
                         (sx->plan.dst_head_cnt != 0);
    b.src_head_off     = sx->plan.src_head_off;
    b.src_head_cnt     = sx->plan.src_head_cnt;
    b.dst_head_off     = sx->plan.dst_head_off;
    b.dst_head_cnt     = sx->plan.dst_head_cnt;
    len = scomm_kv_begin_size(&b);
    pl  = malloc(len);
    if (pl == NULL) {
        snprintf(st->why_tx, sizeof(st->why_tx), "out of memory for a BEGIN");
        return -1;
    }
    scomm_kv_begin_encode(&b, pl);
    memset(&h, 0, sizeof(h));
    h.type    = SCOMM_KV_T_BEGIN;
    h.xfer_id = sx->plan.xfer_id;
    rc = scomm_kv_send_hdr(st, &h, pl, len);
    free(pl);
    return rc;
}

/* Chunk seq of sx goes in flight on st (lock held): one reference for
 * the in-flight entry (dropped when the reply comes, possibly before
 * kv_send_chunk returns: with CMA the receiver pulls and ACKs at once),
 * one for the TX thread's own use of sx. */
static void kv_tx_inflight(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                           int lslot)
{
    int slot = (st->inf_head + st->inf_n) % st->ep->depth;

    st->inf[slot].sx   = sx;
    st->inf[slot].seq  = seq;
    st->inf[slot].slot = lslot; /* landing slot (ofi), or -1 */
    st->inf_n++;
    sx->refs += 2;
}

/* Stage the next chunk ahead, if one may go in flight and its source is
 * device memory: its copy to host runs while this one is on the wire. */
static void kv_tx_prefetch(kv_stream_t *st, int b)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_sx_t *nx;
    uint32_t nseq;
    int lslot;

    pthread_mutex_lock(&ep->lock);
    /* not on a dead stream: its st->inf was already requeued (inv. 6) */
    if (!st->alive || (st->pre_sx != NULL) || (st->inf_n >= ep->depth) ||
        ep->closing || ((nx = kv_sx_pick(ep, &nseq, &lslot)) == NULL)) {
        pthread_mutex_unlock(&ep->lock);
        return;
    }
    kv_tx_inflight(st, nx, nseq, lslot);
    st->pre_sx   = nx;
    st->pre_seq  = nseq;
    st->pre_slot = lslot;
    st->pre_buf  = -1;
    pthread_mutex_unlock(&ep->lock);
    if (ep->regions[nx->plan.src_region].dev &&
        (scomm_kv_dev_tx_stage(st, nx, nseq, b) == 0)) {
        st->pre_buf = b;
    }
    /* a staging that failed is tried again when the chunk's turn comes */
}

/* Test hook (scomm_kv_debug_cut_before_prefetch): cut the stream before
 * the next chunk is staged ahead and wait (up to 2 s) until the RX thread
 * handled the loss (scomm_kv_stream_dead), the race of invariant 6. */
static void kv_tx_cut_hook(kv_stream_t *st)
{
    int i;

    if ((atomic_load(&st->ep->cut_pre_n) <= 0) ||
        (atomic_fetch_sub(&st->ep->cut_pre_n, 1) <= 0)) {
        return;
    }
    shutdown(st->fd, SHUT_RDWR); /* the TX thread owns fd while alive */
    for (i = 0; (i < 2000) && __atomic_load_n(&st->alive, __ATOMIC_ACQUIRE);
         i++) {
        usleep(1000);
    }
}

/* Write chunk seq of sx; a device source is staged first (into pinned
 * chunk b when >= 0 it already is), the next chunk staged meanwhile. */
static int kv_tx_chunk(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                       int lslot, int b)
{
    if (!st->ep->regions[sx->plan.src_region].dev) {
        return kv_send_chunk(st, sx, seq, lslot, NULL);
    }
    if (b < 0) {
        b = st->dnext;
        if (scomm_kv_dev_tx_stage(st, sx, seq, b) != 0) {
            return -1;
        }
    }
    st->dnext = b ^ 1;
    kv_tx_cut_hook(st);
    kv_tx_prefetch(st, b ^ 1);
    if (scomm_kv_dev_tx_wait(st, b) != 0) {
        return -1;
    }
    if (st->dipc[b]) { /* already in the receiver's region */
        return kv_send_ipc_desc(st, sx, seq);
    }
    return kv_send_chunk(st, sx, seq, lslot, st->dpin[b]);
}

/* The TX thread ends (lock held): a chunk staged ahead is in st->inf
 * (re-sent from there); drop the thread's own reference, once its copy is
 * done (the pinned chunk outlives the thread). */
static void kv_tx_drop_pre(kv_stream_t *st)
{
    kv_sx_t *sx = st->pre_sx;

    if (sx == NULL) {
        return;
    }
    st->pre_sx = NULL;
    if (st->pre_buf >= 0) {
        pthread_mutex_unlock(&st->ep->lock);
        (void)scomm_kv_dev_tx_wait(st, st->pre_buf);
        pthread_mutex_lock(&st->ep->lock);
    }
    scomm_kv_sx_unref(st->ep, sx);
}

void *scomm_kv_tx_main(void *arg)
{
    kv_stream_t *st = arg;
    scomm_kv_ep_t *ep = st->ep;
    scomm_kv_hdr_t h;
    kv_ctl_t c;
    kv_sx_t *sx;
    uint32_t seq;
    struct timespec ts;
    int rc, lslot;

    pthread_mutex_lock(&ep->lock);
    /* On close, replies already queued (the last ACKs) still go out. */
    while (st->alive && (!ep->closing || (st->ctl_n > 0))) {
        if (st->ctl_n > 0) {
            c = st->ctl[st->ctl_head];
            st->ctl_head = (st->ctl_head + 1) % st->ctl_cap;
            st->ctl_n--;
            pthread_mutex_unlock(&ep->lock);
            rc = scomm_kv_send_hdr(st, &c.h, c.text,
                                   (c.plen > 0) ? c.plen
                                   : (c.text[0] != '\0') ? strlen(c.text) + 1
                                                         : 0);
            pthread_mutex_lock(&ep->lock);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if (ep->closing) {
            break;
        }
        for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
            if (sx->state == SX_BEGIN_WAIT) {
                break;
            }
        }
        if (sx != NULL) {
            sx->state = SX_BEGIN_SENT;
            sx->begin_stream = st->idx;
            sx->refs++;
            pthread_mutex_unlock(&ep->lock);
            rc = kv_send_begin(st, sx);
            pthread_mutex_lock(&ep->lock);
            if ((rc != 0) && (sx->state == SX_BEGIN_SENT)) {
                sx->state = SX_BEGIN_WAIT;
            }
            scomm_kv_sx_unref(ep, sx);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if (st->pre_sx != NULL) {
            /* staged ahead (device source): already in flight */
            sx = st->pre_sx;
            seq = st->pre_seq;
            st->pre_sx = NULL;
            pthread_mutex_unlock(&ep->lock);
            rc = kv_tx_chunk(st, sx, seq, st->pre_slot, st->pre_buf);
            pthread_mutex_lock(&ep->lock);
            scomm_kv_sx_unref(ep, sx);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if ((st->inf_n < ep->depth) &&
            ((sx = kv_sx_pick(ep, &seq, &lslot)) != NULL)) {
            kv_tx_inflight(st, sx, seq, lslot);
            pthread_mutex_unlock(&ep->lock);
            rc = kv_tx_chunk(st, sx, seq, lslot, -1);
            pthread_mutex_lock(&ep->lock);
            scomm_kv_sx_unref(ep, sx);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if (scomm_now_ns() - st->last_tx > (uint64_t)KV_HB_MS * 1000000ull) {
            pthread_mutex_unlock(&ep->lock);
            memset(&h, 0, sizeof(h));
            h.type = SCOMM_KV_T_HEARTBEAT;
            rc = scomm_kv_send_hdr(st, &h, NULL, 0);
            pthread_mutex_lock(&ep->lock);
            if (rc != 0) {
                break;
            }
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ep->tx_cond, &ep->lock, &ts);
    }
    kv_tx_drop_pre(st);
    if (ep->closing && st->alive) {
        pthread_mutex_unlock(&ep->lock);
        memset(&h, 0, sizeof(h));
        h.type = SCOMM_KV_T_BYE;
        (void)scomm_kv_send_hdr(st, &h, NULL, 0);
        scomm_kv_stream_thread_end(st);
        return NULL;
    }
    pthread_mutex_unlock(&ep->lock);
    scomm_kv_stream_dead(st, st->why_tx[0] ? st->why_tx : "write failed");
    scomm_kv_stream_thread_end(st);
    return NULL;
}

/* ACK/NACK/BEGIN_OK/BEGIN_ERR for our transfers. */
int scomm_kv_on_reply(kv_stream_t *st, const scomm_kv_hdr_t *h,
                      const char *text)
{
    scomm_kv_ep_t *ep = st->ep;
    char msg[SCOMM_KV_ERRTEXT_MAX], why[160];
    kv_sx_t *sx;
    kv_inf_t *e;
    int rc = 0;

    pthread_mutex_lock(&ep->lock);
    if ((h->type == SCOMM_KV_T_BEGIN_OK) ||
        (h->type == SCOMM_KV_T_BEGIN_ERR)) {
        for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
            if ((sx->plan.xfer_id == h->xfer_id) &&
                (sx->state == SX_BEGIN_SENT)) {
                break;
            }
        }
        if (sx != NULL) {
            /* no offer (h->len 0): a device region, by the streams;
             * its payload may be a CUDA IPC offer instead */
            if (h->type == SCOMM_KV_T_BEGIN_OK) {
                scomm_kv_dev_ipc_take(ep, sx, h, (const uint8_t *)text);
            }
            if ((h->type == SCOMM_KV_T_BEGIN_OK) && (ep->ofi != NULL) &&
                (h->len > 0) && !(h->aux & SCOMM_KV_BEGIN_OK_IPC) &&
                (scomm_kv_ofi_take_offer(ep, sx, (const uint8_t *)text,
                                         (size_t)h->len, why,
                                         sizeof(why)) != 0)) {
                snprintf(msg, sizeof(msg), "kv transfer %llu: the "
                         "receiver's RMA offer: %s",
                         (unsigned long long)h->xfer_id, why);
                scomm_kv_sx_fail(sx, SCOMM_ERR_PROTOCOL, msg);
            } else if (h->type == SCOMM_KV_T_BEGIN_OK) {
                sx->state = SX_RUN;
                sx->cma   = (int)(h->aux & SCOMM_KV_BEGIN_OK_CMA);
            } else {
                snprintf(msg, sizeof(msg), "kv transfer %llu refused by the "
                         "receiver: %s", (unsigned long long)h->xfer_id,
                         text);
                scomm_kv_sx_fail(sx, (h->aux == SCOMM_KV_BEGIN_ERR_UNSUPPORTED)
                                         ? SCOMM_ERR_UNSUPPORTED
                                         : SCOMM_ERR_MISMATCH, msg);
            }
            pthread_cond_broadcast(&ep->tx_cond);
            pthread_cond_broadcast(&ep->done_cond);
        }
        pthread_mutex_unlock(&ep->lock);
        return 0;
    }
    if (st->inf_n == 0) {
        snprintf(st->why, sizeof(st->why), "reply to chunk %u with none in "
                 "flight", h->seq);
        pthread_mutex_unlock(&ep->lock);
        return -1;
    }
    e = &st->inf[st->inf_head];
    if ((e->sx->plan.xfer_id != h->xfer_id) || (e->seq != h->seq)) {
        snprintf(st->why, sizeof(st->why), "reply to chunk %u of %llu, "
                 "expected %u of %llu", h->seq,
                 (unsigned long long)h->xfer_id, e->seq,
                 (unsigned long long)e->sx->plan.xfer_id);
        pthread_mutex_unlock(&ep->lock);
        return -1;
    }
    sx = e->sx;
    scomm_kv_rma_slot_put(sx, e->slot);
    st->inf_head = (st->inf_head + 1) % ep->depth;
    st->inf_n--;
    if (sx->state == SX_RUN) {
        if (h->type == SCOMM_KV_T_ACK) {
            if (!sx->acked_map[h->seq]) {
                sx->acked_map[h->seq] = 1;
                if (++sx->acked == sx->nchunks) {
                    sx->state  = SX_DONE;
                    sx->status = SCOMM_OK;
                    scomm_tm_add(NULL, SCOMM_TM_KV_TRANSFERS, 1);
                    scomm_tm_kv_latency(scomm_now_ns() - sx->t_submit);
                    pthread_cond_broadcast(&ep->done_cond);
                }
            }
        } else if (++sx->nacks[h->seq] > KV_MAX_NACKS) {
            snprintf(msg, sizeof(msg), "kv transfer %llu: chunk %u failed "
                     "its CRC32C check %d times", (unsigned long long)
                     sx->plan.xfer_id, h->seq, KV_MAX_NACKS);
            scomm_kv_sx_fail(sx, SCOMM_ERR_CHECKSUM, msg);
            pthread_cond_broadcast(&ep->done_cond);
        } else {
            sx->resend[sx->nresend++] = h->seq;
            ep->stats.chunks_resent++;
            scomm_tm_add(NULL, SCOMM_TM_KV_RESENT, 1);
        }
    }
    scomm_kv_sx_unref(ep, sx);
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_mutex_unlock(&ep->lock);
    return rc;
}
