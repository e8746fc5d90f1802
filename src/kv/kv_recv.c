/*
 * kv_recv.c - the receiving half of a KV endpoint: the RX thread, its
 * socket's only reader, and what it does with each frame: a BEGIN checked
 * against the destination region and the codecs built in (kv_on_begin:
 * BEGIN_ERR says MISMATCH or UNSUPPORTED in its aux; a BEGIN that asks for
 * RMA is answered with the offer, kv_ofi.c), a DATA, DESC or RDATA chunk
 * stored into the destination blocks (kv_on_chunk: in place, regrouped,
 * dequantised or decompressed; DESC chunks copied from the sender's memory
 * with process_vm_readv, or already written into a device region by the
 * sender over CUDA IPC (kv_dev.c: a BEGIN that asks is answered with the
 * region's IPC offer); RDATA chunks already written by the sender, in
 * place or into a landing slot, once all their writes landed), a reply
 * to one of our own transfers (scomm_kv_on_reply, kv_send.c), BYE and
 * heartbeats.
 *
 * Design notes (invariants):
 *  1. The RX thread never writes a socket: every answer (ACK, NACK,
 *     BEGIN_OK, BEGIN_ERR) is queued for the stream's TX thread
 *     (scomm_kv_ctl_push).
 *  2. A header is checked (scomm_kv_hdr_check) before any of its payload
 *     is read or allocated; a chunk's lengths are checked against its
 *     transfer before a byte of it lands.
 *  3. A chunk counts only after its CRC32C matched; a mismatch answers
 *     NACK and leaves the chunk MISSING for the re-sent copy.
 *  4. Each (transfer, seq) is counted once. A chunk of an unknown or
 *     failed transfer, or one already stored, is read and dropped, and
 *     still answered: the sender waits for its reply.
 *  5. One stream at a time stores a given chunk (STORING): a copy re-sent
 *     after a stream broke that arrives meanwhile waits, and stores only if
 *     that store failed, so a damaged copy never lands over a checked one.
 *  6. A receiver transfer (kv_rx_t) belongs to the endpoint, not to a
 *     stream, so it survives a stream's loss; a BEGIN repeated after one is
 *     answered as the first was.
 *  7. A BEGIN's head range must fit the destination region (its heads
 *     dst_head_off.. within the region's, as many as the sender moves), or
 *     the transfer is refused (BEGIN_ERR, metadata mismatch naming both
 *     sides' ranges); chunks then hold only those heads and are scattered
 *     from dst_head_off on, never in place.
 *
 * A chunk on the receiver (rx->got[seq], lock held; all in kv_on_chunk):
 *
 *              taken by one stream            CRC ok, ACK queued
 *   MISSING ----------------------> STORING ----------------------> STORED
 *      ^                               |
 *      +-------------------------------+
 *        CRC failed (NACK), bad length, read or copy failed
 *
 * A receiver transfer: kv_on_begin creates it, running (BEGIN_OK) or
 * failed (BEGIN_ERR, the record kept so the receiver's waits report why);
 * each layer's counter reaches zero when all its chunks are STORED
 * (scomm_kv_wait_layer); scomm_kv_wait_xfer unlinks and frees it once no
 * store holds it (rx->refs == 0).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "kv_int.h"
#include "telemetry/tm.h"

kv_rx_t *scomm_kv_rx_find(scomm_kv_ep_t *ep, uint64_t id)
{
    kv_rx_t *rx;

    for (rx = ep->rx_head; rx != NULL; rx = rx->next) {
        if (rx->id == id) {
            return rx;
        }
    }
    return NULL;
}

void scomm_kv_rx_free(kv_rx_t *rx)
{
    scomm_kv_ofi_rx_free(rx);
    free(rx->offer);
    scomm_kv_begin_free(&rx->b);
    free(rx->layer_left);
    free(rx->got);
    free(rx);
}

/* Check a BEGIN against the destination region; 0 or -1 with a reason. */
static int kv_rx_validate(scomm_kv_ep_t *ep, const scomm_kv_begin_t *b,
                          const scomm_kv_layout_t *sl, char *why, size_t whylen)
{
    const kv_region_t *r;
    uint64_t need;
    uint32_t i;
    int32_t dh, dcnt;

    if ((b->dst_region < 0) || (b->dst_region >= SCOMM_KV_MAX_REGIONS) ||
        !ep->regions[b->dst_region].used) {
        snprintf(why, whylen, "destination region %d is not registered",
                 b->dst_region);
        return -1;
    }
    r = &ep->regions[b->dst_region];
    dh = r->l.num_kv_heads;
    dcnt = (b->dst_head_cnt != 0) ? b->dst_head_cnt : dh - b->dst_head_off;
    if (!b->has_heads &&
        ((dh != b->heads) || (r->l.head_dim != b->head_dim))) {
        snprintf(why, whylen, "metadata mismatch: sender has %d kv heads x "
                 "dim %d, receiver region %d has %d x %d", b->heads,
                 b->head_dim, b->dst_region, dh, r->l.head_dim);
        return -1;
    }
    if ((r->l.head_dim != b->head_dim) || (dcnt != b->src_head_cnt) ||
        (b->dst_head_off > dh - b->src_head_cnt)) {
        snprintf(why, whylen, "metadata mismatch: sender moves kv heads "
                 "%d..%d of its %d x dim %d to heads %d..%d%s, receiver "
                 "region %d has %d kv heads x dim %d",
                 b->src_head_off, b->src_head_off + b->src_head_cnt - 1,
                 b->heads, b->head_dim, b->dst_head_off,
                 b->dst_head_off + b->src_head_cnt - 1,
                 (b->dst_head_cnt != 0) ? "" : " (to the last)",
                 b->dst_region, dh, r->l.head_dim);
        return -1;
    }
    if (b->first_layer + b->num_layers > r->l.num_layers) {
        snprintf(why, whylen, "metadata mismatch: layers %d..%d but the "
                 "receiver has %d", b->first_layer,
                 b->first_layer + b->num_layers - 1, r->l.num_layers);
        return -1;
    }
    need = (b->num_tokens + (uint64_t)r->l.block_tokens - 1) /
           (uint64_t)r->l.block_tokens;
    if (b->num_dst_blocks != need) {
        snprintf(why, whylen, "metadata mismatch: %u destination blocks for "
                 "%llu tokens of %d", b->num_dst_blocks,
                 (unsigned long long)b->num_tokens, r->l.block_tokens);
        return -1;
    }
    for (i = 0; i < b->num_dst_blocks; i++) {
        if ((b->dst_blocks[i] < 0) ||
            (b->dst_blocks[i] >= r->l.num_blocks)) {
            snprintf(why, whylen, "destination block %d outside region %d "
                     "(%d blocks)", b->dst_blocks[i], b->dst_region,
                     r->l.num_blocks);
            return -1;
        }
    }
    if ((uint64_t)b->blocks_per_chunk *
            scomm_kv_wire_block_bytes(sl, b->wire_dtype) >
        SCOMM_KV_CHUNK_MAX) {
        snprintf(why, whylen, "chunks of %u blocks exceed the limit",
                 b->blocks_per_chunk);
        return -1;
    }
    return 0;
}

static void kv_on_begin(kv_stream_t *st, const scomm_kv_hdr_t *hh, uint8_t *pl)
{
    scomm_kv_ep_t *ep = st->ep;
    char why[SCOMM_KV_ERRTEXT_MAX] = "";
    scomm_kv_hdr_t h;
    kv_rx_t *rx, *old;
    const kv_region_t *r;
    struct timespec ts;
    uint64_t deadline;
    scomm_status_t refuse = SCOMM_ERR_MISMATCH;
    uint32_t i;
    int bad;

    rx = calloc(1, sizeof(*rx));
    if (rx == NULL) {
        return;
    }
    rx->id = hh->xfer_id;
    bad = scomm_kv_begin_decode(pl, hh->len, &rx->b, why, sizeof(why));
    rx->sl.num_layers   = rx->b.src_layers;
    rx->sl.num_kv_heads = rx->b.src_head_cnt; /* heads on the wire */
    rx->sl.head_dim     = rx->b.head_dim;
    rx->sl.block_tokens = rx->b.src_block_tokens;
    rx->sl.num_blocks   = rx->b.src_num_blocks;
    rx->sl.dtype        = (scomm_dtype_t)rx->b.src_dtype;
    rx->sl.order        = rx->b.src_order;
    pthread_mutex_lock(&ep->lock);
    /* The receiver may register its region after the sender submitted:
     * wait for it, under the endpoint's timeout. */
    deadline = scomm_deadline_ms(ep->timeout_ms);
    while ((bad == 0) && (rx->b.dst_region >= 0) &&
           (rx->b.dst_region < SCOMM_KV_MAX_REGIONS) &&
           !ep->regions[rx->b.dst_region].used && !ep->closing &&
           st->alive && (scomm_now_ns() < deadline)) {
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->done_cond, &ep->lock, &ts);
    }
    if (!st->alive) {
        /* The stream broke meanwhile: no reply can go out on it, and the
         * sender sends this BEGIN again on a live (or re-dialled) one. */
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_rx_free(rx);
        return;
    }
    if ((bad == 0) && scomm_kv_codec_missing(ep, rx->b.compression, why,
                                             sizeof(why))) {
        /* Refused the same way when repeated: before the record check. */
        refuse = SCOMM_ERR_UNSUPPORTED;
        bad = -1;
    }
    old = scomm_kv_rx_find(ep, rx->id);
    if ((bad == 0) && (old != NULL) && (old->status == SCOMM_OK)) {
        /* A BEGIN repeated after a stream broke: answer it again. */
        memset(&h, 0, sizeof(h));
        h.xfer_id = rx->id;
        h.type    = SCOMM_KV_T_BEGIN_OK;
        h.aux     = (uint32_t)old->cma |
                    (old->ipc ? SCOMM_KV_BEGIN_OK_IPC : 0u);
        if (old->offer != NULL) {
            scomm_kv_ctl_push_bin(st, &h, old->offer,
                                  (uint32_t)old->offer_len);
        } else {
            scomm_kv_ctl_push(st, &h, NULL);
        }
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_rx_free(rx);
        return;
    }
    if ((bad == 0) && (old != NULL)) {
        snprintf(why, sizeof(why), "transfer id %llu is in use",
                 (unsigned long long)rx->id);
        bad = -1;
    }
    if (bad == 0) {
        bad = kv_rx_validate(ep, &rx->b, &rx->sl, why, sizeof(why));
    }
    if (bad == 0) {
        r = &ep->regions[rx->b.dst_region];
        rx->region = rx->b.dst_region;
        rx->direct = (rx->b.wire_dtype == 0) && (rx->b.compression == 0) &&
                     (r->l.dtype == rx->sl.dtype) &&
                     (r->l.order == rx->sl.order) &&
                     (r->l.block_tokens == rx->sl.block_tokens) &&
                     (r->l.num_kv_heads == rx->sl.num_kv_heads);
        /* process_vm_readv cannot write a device region */
        rx->cma = (rx->b.zero_copy & SCOMM_KV_BEGIN_ZC_CMA) &&
                  ep->cma_read_ok && !ep->no_cma && !r->dev;
        rx->layer_left = calloc((size_t)rx->b.num_layers, sizeof(uint32_t));
        rx->got = calloc(rx->b.nchunks + 1, 1);
        if ((rx->layer_left == NULL) || (rx->got == NULL)) {
            snprintf(why, sizeof(why), "receiver out of memory");
            bad = -1;
        } else {
            for (i = 0; i < (uint32_t)rx->b.num_layers; i++) {
                rx->layer_left[i] = (uint32_t)(rx->b.nchunks /
                                               (uint64_t)rx->b.num_layers);
            }
        }
    }
    if ((bad == 0) && (rx->b.zero_copy & SCOMM_KV_BEGIN_ZC_RMA) &&
        !ep->regions[rx->region].dev) {
        /* (a device region: no offer, the sender uses the streams) */
        /* The sender writes: offer the region, or landing slots. */
        rx->offer = malloc(SCOMM_KV_OFFER_FIXED + SCOMM_KV_OFFER_ADDRMAX);
        rx->offer_len = (rx->offer != NULL)
                            ? scomm_kv_ofi_offer(ep, rx, rx->offer, why,
                                                 sizeof(why))
                            : 0;
        if (rx->offer_len == 0) {
            refuse = SCOMM_ERR_UNSUPPORTED;
            bad = -1;
        }
    }
    if ((bad == 0) && (rx->b.zero_copy & SCOMM_KV_BEGIN_ZC_IPC) &&
        (rx->offer == NULL) &&
        ((rx->offer = malloc(SCOMM_KV_IPC_OFFER_SIZE)) != NULL)) {
        /* Same-host CUDA IPC: the sender writes into our device region
         * (kv_dev.c); no offer means staged, never a refusal. */
        rx->offer_len = scomm_kv_dev_ipc_offer(ep, rx, rx->offer);
        if (rx->offer_len == 0) {
            free(rx->offer);
            rx->offer = NULL;
        }
    }
    memset(&h, 0, sizeof(h));
    h.xfer_id = rx->id;
    if (bad != 0) {
        /* Keep a failed record so the receiver's waits report it. */
        rx->status = refuse;
        snprintf(rx->msg, sizeof(rx->msg), "kv transfer %llu refused: %s",
                 (unsigned long long)rx->id, why);
        scomm_warn(SCOMM_SUB_KV, "%s", rx->msg);
        h.type = SCOMM_KV_T_BEGIN_ERR;
        h.aux  = (refuse == SCOMM_ERR_UNSUPPORTED)
                     ? SCOMM_KV_BEGIN_ERR_UNSUPPORTED
                     : SCOMM_KV_BEGIN_ERR_MISMATCH;
        scomm_kv_ctl_push(st, &h, why);
        if (scomm_kv_rx_find(ep, rx->id) == NULL) {
            rx->next = ep->rx_head;
            ep->rx_head = rx;
        } else {
            scomm_kv_rx_free(rx);
        }
    } else {
        h.type = SCOMM_KV_T_BEGIN_OK;
        h.aux  = (uint32_t)rx->cma | (rx->ipc ? SCOMM_KV_BEGIN_OK_IPC : 0u);
        if (rx->offer != NULL) {
            scomm_kv_ctl_push_bin(st, &h, rx->offer, (uint32_t)rx->offer_len);
        } else {
            scomm_kv_ctl_push(st, &h, NULL);
        }
        rx->next = ep->rx_head;
        ep->rx_head = rx;
    }
    pthread_cond_broadcast(&ep->done_cond);
    pthread_mutex_unlock(&ep->lock);
}

static int kv_discard(kv_stream_t *st, uint64_t len)
{
    uint8_t junk[16384];
    size_t n;

    while (len > 0) {
        n = (size_t)SCOMM_MIN(len, (uint64_t)sizeof(junk));
        if (scomm_kv_io(st, junk, n, 0) != 0) {
            return -1;
        }
        len -= n;
    }
    return 0;
}

static uint32_t kv_crc_iov(const struct iovec *iov, int n)
{
    uint32_t crc = 0;
    int i;

    for (i = 0; i < n; i++) {
        crc = scomm_kv_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    }
    return crc;
}

/* Store one DATA or DESC chunk. 0, or -1 when the stream must go. */
static int kv_on_chunk(kv_stream_t *st, const scomm_kv_hdr_t *hh)
{
    scomm_kv_ep_t *ep = st->ep;
    scomm_kv_hdr_t h;
    kv_rx_t *rx;
    kv_region_t *r;
    uint32_t li, c, i0, i1, i, nb, cpl;
    size_t sbb, wbb, rawlen, n;
    uint8_t *dlayer, *raw = NULL;
    struct iovec *liov = NULL, *riov = NULL;
    uint64_t sbase, g0 = 0, g1 = 0;
    uint8_t *img = NULL;          /* device region: pinned image */
    const int32_t *dtbl;
    uint32_t jlo = 0, jhi = 0;
    uint32_t crc;
    int ok = 1, store = 1, rc = 0, k;

    pthread_mutex_lock(&ep->lock);
    rx = scomm_kv_rx_find(ep, hh->xfer_id);
    while ((rx != NULL) && (rx->status == SCOMM_OK) &&
           (hh->seq < rx->b.nchunks) &&
           (rx->got[hh->seq] == KV_CHUNK_STORING) && !ep->closing &&
           (ep->fault == SCOMM_OK)) {
        /* Its other copy is being stored: take this one only if that
         * store fails. The storer always reaches release below. */
        pthread_cond_wait(&ep->done_cond, &ep->lock);
        rx = scomm_kv_rx_find(ep, hh->xfer_id);
    }
    if ((rx == NULL) || (rx->status != SCOMM_OK) ||
        (hh->seq >= rx->b.nchunks) ||
        (rx->got[hh->seq] != KV_CHUNK_MISSING)) {
        store = 0;
    } else {
        rx->refs++;
        rx->got[hh->seq] = KV_CHUNK_STORING;
    }
    pthread_mutex_unlock(&ep->lock);
    if (!store) {
        /* Unknown, finished or duplicate: drop it, still answer. */
        if ((hh->type == SCOMM_KV_T_DATA) && (kv_discard(st, hh->len) != 0)) {
            return -1;
        }
        goto reply;
    }
    r      = &ep->regions[rx->region];
    cpl    = (uint32_t)(rx->b.nchunks / (uint64_t)rx->b.num_layers);
    li     = hh->seq / cpl;
    c      = hh->seq % cpl;
    i0     = c * rx->b.blocks_per_chunk;
    i1     = SCOMM_MIN(i0 + rx->b.blocks_per_chunk, rx->b.num_src_blocks);
    nb     = i1 - i0;
    sbb    = (size_t)scomm_kv_block_bytes(&rx->sl);
    wbb    = scomm_kv_wire_block_bytes(&rx->sl, rx->b.wire_dtype);
    rawlen = (size_t)nb * wbb;
    dlayer = r->base + (size_t)(rx->b.first_layer + (int)li) *
                           r->l.num_blocks * r->bb;
    if ((hh->raw_len != rawlen) ||
        ((hh->type != SCOMM_KV_T_DESC) && (rx->b.compression == 0) &&
         (hh->len != rawlen)) ||
        ((hh->type == SCOMM_KV_T_DESC) &&
         !(rx->cma ? (hh->flags == 0)
                   : (rx->ipc && (hh->flags == SCOMM_KV_DESC_IPC)))) ||
        ((hh->type == SCOMM_KV_T_RDATA) &&
         (!rx->rma || (rx->direct ? (hh->flags != UINT32_MAX)
                                  : ((hh->flags >= rx->nslots) ||
                                     (hh->len > rx->slot_bytes))))) ||
        ((hh->type != SCOMM_KV_T_RDATA) && rx->rma)) {
        snprintf(st->why, sizeof(st->why), "chunk %u of transfer %llu: %llu "
                 "bytes (%llu raw), expected %zu", hh->seq,
                 (unsigned long long)hh->xfer_id,
                 (unsigned long long)hh->len,
                 (unsigned long long)hh->raw_len, rawlen);
        rc = -1;
        goto release;
    }
    if ((hh->type == SCOMM_KV_T_DESC) && rx->ipc) {
        /* The sender's copies into our region are done: no bytes on the
         * wire, nothing to check on the host (docs/kv.md, "CUDA IPC"). */
        pthread_mutex_lock(&ep->lock);
        ep->stats.bytes_zero_copy += rawlen;
        ep->ipc_chunks++;
        pthread_mutex_unlock(&ep->lock);
        st->last_rx = scomm_now_ns();
        goto release;
    }
    dtbl = rx->b.dst_blocks;
    if (r->dev) {
        /* Device region: everything lands in a pinned image first (its
         * CRC is checked there), then goes to the device (kv_dev.c). */
        uint64_t sbt = (uint64_t)rx->sl.block_tokens;
        uint64_t dbt = (uint64_t)r->l.block_tokens;

        g0 = (uint64_t)i0 * sbt;
        g1 = (uint64_t)i1 * sbt;
        if (sbt != dbt) {
            g1 = SCOMM_MIN(g1, rx->b.num_tokens);
        }
        jlo = (uint32_t)(g0 / dbt);
        jhi = (uint32_t)((g1 - 1) / dbt);
        img = scomm_kv_dev_rx_image(st, rx->direct
                                            ? (size_t)nb * r->bb
                                            : (size_t)(jhi - jlo + 1) *
                                                  r->bb);
        if ((img == NULL) ||
            (!rx->direct &&
             ((dtbl = scomm_kv_dev_rx_map(st, rx->b.num_dst_blocks, jlo,
                                          jhi)) == NULL))) {
            rc = -1;
            goto release;
        }
    }
    if (rx->direct) {
        liov = malloc(sizeof(*liov) * nb);
        if (liov == NULL) {
            rc = -1;
            goto release;
        }
        for (i = i0; i < i1; i++) {
            liov[i - i0].iov_base = (img != NULL)
                                        ? img + (size_t)(i - i0) * r->bb
                                        : dlayer + (size_t)dtbl[i] * r->bb;
            liov[i - i0].iov_len  = r->bb;
        }
    } else {
        if (scomm_kv_ensure_buf(&st->rbuf[0], &st->rcap[0],
                                hh->len + rawlen) != 0) {
            rc = -1;
            goto release;
        }
        raw = st->rbuf[0];
    }
    if (hh->type == SCOMM_KV_T_DESC) {
        /* Same host: copy straight out of the sender's region. */
        struct iovec one;

        riov = malloc(sizeof(*riov) * nb);
        if (riov == NULL) {
            rc = -1;
            goto release;
        }
        sbase = rx->b.src_base + (uint64_t)(rx->b.first_layer + (int)li) *
                                     (uint64_t)rx->b.src_num_blocks * sbb;
        for (i = i0; i < i1; i++) {
            riov[i - i0].iov_base = (void *)(uintptr_t)(
                sbase + (uint64_t)rx->b.src_blocks[i] * sbb);
            riov[i - i0].iov_len = sbb;
        }
        one.iov_base = raw;
        one.iov_len  = rawlen;
        for (k = 0; k < (int)nb; k += KV_IOV_BATCH) {
            int cnt = SCOMM_MIN((int)nb - k, KV_IOV_BATCH);
            ssize_t want = (ssize_t)((size_t)cnt * sbb), got;

            if (rx->direct) {
                got = process_vm_readv(ep->peer_pid, liov + k,
                                       (unsigned long)cnt, riov + k,
                                       (unsigned long)cnt, 0);
            } else {
                struct iovec part = { (uint8_t *)one.iov_base +
                                      (size_t)k * sbb, (size_t)want };
                got = process_vm_readv(ep->peer_pid, &part, 1, riov + k,
                                       (unsigned long)cnt, 0);
            }
            if (got != want) {
                snprintf(st->why, sizeof(st->why), "process_vm_readv from "
                         "pid %d: %s", ep->peer_pid,
                         (got < 0) ? strerror(errno) : "short read");
                rc = -1;
                goto release;
            }
        }
        st->last_rx = scomm_now_ns();
        pthread_mutex_lock(&ep->lock);
        ep->stats.bytes_zero_copy += rawlen;
        pthread_mutex_unlock(&ep->lock);
    } else if (hh->type == SCOMM_KV_T_RDATA) {
        /* Written by the sender (kv_ofi.c): wait for all its writes. */
        if (scomm_kv_ofi_landed(st, rx, hh->seq, hh->aux) != 0) {
            ok = 0;
            scomm_info(SCOMM_SUB_KV, "chunk %u of transfer %llu: %u RMA "
                       "writes did not land in %d ms: asking again",
                       hh->seq, (unsigned long long)hh->xfer_id, hh->aux,
                       KV_STALL_MS);
            goto release;
        }
        if (!rx->direct) {
            raw = rx->bounce + (size_t)hh->flags * rx->slot_bytes;
        }
    } else if (rx->direct) {
        if (scomm_kv_iov_io(st, liov, (int)nb, 0) != 0) {
            rc = -1;
            goto release;
        }
        for (i = i0; i < i1; i++) { /* scomm_kv_iov_io consumed the iovec */
            liov[i - i0].iov_base = (img != NULL)
                                        ? img + (size_t)(i - i0) * r->bb
                                        : dlayer + (size_t)dtbl[i] * r->bb;
            liov[i - i0].iov_len  = r->bb;
        }
    } else if (scomm_kv_io(st, raw, hh->len, 0) != 0) {
        rc = -1;
        goto release;
    }
    if (atomic_load(&ep->corrupt_n) > 0) {
        if (atomic_fetch_sub(&ep->corrupt_n, 1) > 0) {
            uint8_t *p = rx->direct ? (uint8_t *)liov[0].iov_base : raw;

            p[(rx->direct ? r->bb : ((hh->type == SCOMM_KV_T_DESC)
                                         ? rawlen : hh->len)) / 2] ^= 0x40;
        }
    }
    if (rx->direct) {
        crc = kv_crc_iov(liov, (int)nb);
    } else {
        crc = scomm_kv_crc32c(0, raw,
                              (hh->type == SCOMM_KV_T_DESC) ? rawlen : hh->len);
    }
    if (crc != hh->crc) {
        ok = 0;
        pthread_mutex_lock(&ep->lock);
        ep->stats.crc_errors++;
        scomm_tm_add(NULL, SCOMM_TM_KV_CHECKSUM_FAILURES, 1);
        pthread_mutex_unlock(&ep->lock);
        scomm_info(SCOMM_SUB_KV, "chunk %u of transfer %llu failed CRC32C "
                   "(0x%08x, sender 0x%08x): asking again", hh->seq,
                   (unsigned long long)hh->xfer_id, crc, hh->crc);
        goto release;
    }
    if (!rx->direct) {
        if ((hh->type != SCOMM_KV_T_DESC) && (rx->b.compression != 0)) {
            /* A landing slot is not followed by room: staging then. */
            uint8_t *dst = (hh->type == SCOMM_KV_T_RDATA) ? st->rbuf[0]
                                                          : raw + hh->len;

            k = scomm_kv_decompress(st, rx->b.compression, raw, hh->len, dst,
                                    rawlen);
            if (k != 0) {
                snprintf(st->why, sizeof(st->why), "chunk %u: %s", hh->seq,
                         (k == -2) ? "no memory for a zstd context"
                                   : "bad compressed data");
                rc = -1;
                goto release;
            }
            raw = dst;
        }
        n = (size_t)r->l.head_dim;
        if (rx->b.wire_dtype != 0) {
            n = 2 * (size_t)rx->sl.num_kv_heads * rx->sl.block_tokens *
                rx->sl.head_dim + n;
        }
        if (scomm_kv_ensure_f(&st->ftmp, &st->fcap, n) != 0) {
            rc = -1;
            goto release;
        }
        for (i = i0; i < i1; i++) {
            uint64_t gbase = (uint64_t)i * (uint64_t)rx->sl.block_tokens;
            int t1 = rx->sl.block_tokens;
            const uint8_t *sblk = raw + (size_t)(i - i0) * wbb;
            float *fr = NULL;

            if (rx->sl.block_tokens != r->l.block_tokens) {
                t1 = (int)SCOMM_MIN((uint64_t)t1, rx->b.num_tokens - gbase);
            } else if ((rx->b.wire_dtype != 0) &&
                       (scomm_kv_decode_block_into(
                            &rx->sl, sblk, rx->b.wire_dtype, &r->l,
                            ((img != NULL) ? img : dlayer) +
                                (size_t)dtbl[i] * r->bb) ==
                        0)) {
                continue; /* decoded straight into its block */
            }
            if (rx->b.wire_dtype != 0) {
                fr = st->ftmp + r->l.head_dim;
                scomm_kv_dequant_block(&rx->sl, sblk, rx->b.wire_dtype, fr);
            }
            scomm_kv_scatter_rows(&rx->sl, sblk, fr, gbase, 0, t1, &r->l,
                                  rx->b.dst_head_off,
                                  (img != NULL) ? img : dlayer, dtbl,
                                  st->ftmp);
        }
    }
    if ((img != NULL) &&
        (scomm_kv_dev_rx_store(st, r, dlayer, rx->b.dst_blocks,
                               rx->direct, i0, nb, g0, g1,
                               rx->b.dst_head_off, rx->sl.num_kv_heads) !=
         0)) {
        rc = -1;
        goto release;
    }
release:
    pthread_mutex_lock(&ep->lock);
    if (rc == 0) {
        /* Queue the reply before a waiter can see the chunk stored: it may
         * close the endpoint at once, and the close flushes only what is
         * queued. */
        memset(&h, 0, sizeof(h));
        h.type    = ok ? SCOMM_KV_T_ACK : SCOMM_KV_T_NACK;
        h.xfer_id = hh->xfer_id;
        h.seq     = hh->seq;
        if (scomm_kv_ctl_push(st, &h, NULL) != 0) {
            rc = -1;
        }
    }
    if ((rc == 0) && ok) {
        rx->got[hh->seq] = KV_CHUNK_STORED;
        rx->ndone++;
        ep->rma_chunks += (hh->type == SCOMM_KV_T_RDATA);
        ep->stats.chunks_recv++;
        --rx->layer_left[li];
    } else {
        rx->got[hh->seq] = KV_CHUNK_MISSING; /* a later copy may store it */
    }
    rx->refs--;
    /* Layer waiters, kv_rx_wait's wait for refs, and a copy of this chunk
     * waiting on another stream. */
    pthread_cond_broadcast(&ep->done_cond);
    pthread_mutex_unlock(&ep->lock);
    free(liov);
    free(riov);
    return rc;
reply:
    memset(&h, 0, sizeof(h));
    h.type    = ok ? SCOMM_KV_T_ACK : SCOMM_KV_T_NACK;
    h.xfer_id = hh->xfer_id;
    h.seq     = hh->seq;
    pthread_mutex_lock(&ep->lock);
    rc = scomm_kv_ctl_push(st, &h, NULL);
    pthread_mutex_unlock(&ep->lock);
    return rc;
}

void *scomm_kv_rx_main(void *arg)
{
    kv_stream_t *st = arg;
    scomm_kv_ep_t *ep = st->ep;
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    char text[SCOMM_KV_ERRTEXT_MAX + 1];
    scomm_kv_hdr_t h;
    uint8_t *pl;

    for (;;) {
        if (scomm_kv_io(st, hb, sizeof(hb), 0) != 0) {
            break;
        }
        scomm_kv_hdr_decode(hb, &h);
        if (scomm_kv_hdr_check(&h, SCOMM_KV_CHUNK_MAX, st->why,
                               sizeof(st->why)) != 0) {
            break;
        }
        switch (h.type) {
        case SCOMM_KV_T_BEGIN:
            pl = malloc(h.len + 1);
            if ((pl == NULL) || (scomm_kv_io(st, pl, h.len, 0) != 0)) {
                free(pl);
                goto out;
            }
            kv_on_begin(st, &h, pl);
            free(pl);
            break;
        case SCOMM_KV_T_DATA:
        case SCOMM_KV_T_DESC:
        case SCOMM_KV_T_RDATA:
            if (kv_on_chunk(st, &h) != 0) {
                goto out;
            }
            break;
        case SCOMM_KV_T_BEGIN_ERR:
        case SCOMM_KV_T_BEGIN_OK:
        case SCOMM_KV_T_ACK:
        case SCOMM_KV_T_NACK:
            text[0] = '\0';
            if ((h.len > 0) && (scomm_kv_io(st, text, h.len, 0) != 0)) {
                goto out;
            }
            text[h.len] = '\0';
            if (scomm_kv_on_reply(st, &h, text) != 0) {
                goto out;
            }
            break;
        case SCOMM_KV_T_BYE:
            pthread_mutex_lock(&ep->lock);
            ep->peer_bye = 1;
            pthread_mutex_unlock(&ep->lock);
            break;
        case SCOMM_KV_T_HEARTBEAT:
            break;
        default:
            snprintf(st->why, sizeof(st->why), "unexpected frame type %u",
                     (unsigned)h.type);
            goto out;
        }
    }
out:
    scomm_kv_stream_dead(st, st->why[0] ? st->why : "read failed");
    scomm_kv_stream_thread_end(st);
    return NULL;
}
