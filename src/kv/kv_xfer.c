/*
 * kv_xfer.c - the KV transfer API: regions (scomm_kv_register,
 * scomm_kv_deregister), sending (scomm_kv_submit, scomm_kv_xfer_wait,
 * _test, _free), receiving (scomm_kv_wait_layer, scomm_kv_wait_xfer),
 * statistics (scomm_kv_ep_stats) and the test hooks declared in kv.h.
 *
 * Design notes (invariants):
 *  1. A plan is checked whole against the source region (token count,
 *     table sizes, every source block, the layer range, the head range),
 *     and the endpoint's compression against the codecs built in, before
 *     anything is queued; a submit on a failed endpoint returns the
 *     endpoint's fault.
 *  2. A transfer id is unique among the endpoint's unfinished transfers.
 *  3. Every wait has a deadline (its timeout, else the endpoint's) and
 *     wakes at least every 100 ms (scomm_kv_abs_deadline); the endpoint's
 *     fault ends every wait with its status and reason.
 *  4. The user's handle is one reference of its transfer:
 *     scomm_kv_xfer_free drops it, cancelling an unfinished transfer. After
 *     scomm_kv_ep_close a handle (an orphan) still answers wait, test and
 *     free with the transfer's last state.
 *  5. A receiver transfer that failed (BEGIN_ERR) is reported by every
 *     wait on it; scomm_kv_wait_xfer then frees its record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/devrt.h"
#include "core/util.h"
#include "kv_int.h"

extern _Atomic(const void *) scomm_memkind_rt; /* memkind.c */

scomm_status_t scomm_kv_register(scomm_kv_ep_t *ep,
                                 const scomm_kv_layout_t *layout, void *base,
                                 uint64_t bytes, int32_t *id_p)
{
    return scomm_kv_register_mem(ep, layout, base, bytes, SCOMM_MEM_AUTO,
                                 id_p);
}

scomm_status_t scomm_kv_register_mem(scomm_kv_ep_t *ep,
                                     const scomm_kv_layout_t *layout,
                                     void *base, uint64_t bytes,
                                     scomm_mem_kind_t kind, int32_t *id_p)
{
    scomm_status_t status;
    char why[256];
    uint64_t need;
    int id, dev;

    if ((ep == NULL) || (base == NULL) || (id_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_register: NULL "
                             "argument");
    }
    if (scomm_kv_layout_check(layout, why, sizeof(why)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_register: %s", why);
    }
    if (__builtin_mul_overflow((uint64_t)layout->num_layers,
                               (uint64_t)layout->num_blocks, &need) ||
        __builtin_mul_overflow(need, scomm_kv_block_bytes(layout), &need) ||
        (bytes < need)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_register: region of "
                             "%llu bytes, layout needs %llu",
                             (unsigned long long)bytes,
                             (unsigned long long)need);
    }
    status = scomm_kv_dev_kind(base, (int)kind, &dev, why, sizeof(why));
    if (status != SCOMM_OK) {
        return scomm_kv_fail(status, "kv_register: %s", why);
    }
    if (dev) {
        scomm_kv_dev_ipc_init(ep);
    }
    pthread_mutex_lock(&ep->lock);
    for (id = 0; id < SCOMM_KV_MAX_REGIONS; id++) {
        if (!ep->regions[id].used) {
            break;
        }
    }
    if (id == SCOMM_KV_MAX_REGIONS) {
        pthread_mutex_unlock(&ep->lock);
        return scomm_kv_fail(SCOMM_ERR_NO_RESOURCE, "kv_register: %d regions "
                             "already", SCOMM_KV_MAX_REGIONS);
    }
    ep->regions[id].used  = 1;
    ep->regions[id].l     = *layout;
    ep->regions[id].base  = base;
    ep->regions[id].bytes = bytes;
    ep->regions[id].bb    = (size_t)scomm_kv_block_bytes(layout);
    ep->regions[id].dev   = dev;
    ep->regions[id].ipc   = 0; /* its IPC handle: made when first asked */
    status = scomm_kv_ofi_reg(ep, id);
    if (status != SCOMM_OK) {
        ep->regions[id].used = 0;
        pthread_mutex_unlock(&ep->lock);
        return status; /* the reason is set */
    }
    pthread_cond_broadcast(&ep->done_cond); /* a BEGIN may wait for it */
    pthread_mutex_unlock(&ep->lock);
    *id_p = id;
    return SCOMM_OK;
}

scomm_status_t scomm_kv_deregister(scomm_kv_ep_t *ep, int32_t id)
{
    if ((ep == NULL) || (id < 0) || (id >= SCOMM_KV_MAX_REGIONS) ||
        !ep->regions[id].used) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_deregister: region %d "
                             "is not registered", id);
    }
    pthread_mutex_lock(&ep->lock);
    ep->regions[id].used = 0;
    scomm_kv_ofi_dereg(ep, id);
    pthread_mutex_unlock(&ep->lock);
    return SCOMM_OK;
}

scomm_status_t scomm_kv_submit(scomm_kv_ep_t *ep, const scomm_kv_plan_t *plan,
                               int32_t priority, scomm_kv_xfer_t **xfer_p)
{
    return scomm_kv_submit_stream(ep, plan, priority, NULL, xfer_p);
}

/* A device source's order after the caller's stream: an event recorded on
 * it now, which the internal stream waits for before each copy. */
static scomm_status_t kv_submit_event(kv_sx_t *sx, void *stream)
{
    const scomm_devrt_t *rt = atomic_load(&scomm_memkind_rt);
    char err[200];

    if (scomm_devrt_event_create(rt, &sx->ev_in, err, sizeof(err)) != 0) {
        sx->ev_in = NULL;
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv_submit: device region: "
                             "%s", err);
    }
    if (scomm_devrt_event_record(rt, sx->ev_in, stream, err,
                                 sizeof(err)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv_submit: device region: "
                             "%s", err);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_kv_submit_stream(scomm_kv_ep_t *ep,
                                      const scomm_kv_plan_t *plan,
                                      int32_t priority, void *stream,
                                      scomm_kv_xfer_t **xfer_p)
{
    scomm_status_t status;
    kv_region_t *r;
    kv_sx_t *sx, *o;
    uint64_t nsrc;
    uint32_t i;
    int32_t hcnt;
    size_t wbb;
    char why[SCOMM_KV_ERRTEXT_MAX];

    if ((ep == NULL) || (plan == NULL) || (xfer_p == NULL) ||
        (plan->src_blocks == NULL) || (plan->dst_blocks == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: NULL argument");
    }
    if (scomm_kv_codec_missing(ep, ep->compression, why, sizeof(why))) {
        return scomm_kv_fail(SCOMM_ERR_UNSUPPORTED, "kv_submit: %s", why);
    }
    if ((plan->src_region < 0) || (plan->src_region >= SCOMM_KV_MAX_REGIONS)
        || !ep->regions[plan->src_region].used) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: source region "
                             "%d is not registered", plan->src_region);
    }
    r = &ep->regions[plan->src_region];
    nsrc = (plan->num_tokens + (uint64_t)r->l.block_tokens - 1) /
           (uint64_t)r->l.block_tokens;
    if ((plan->num_tokens < 1) || (plan->num_src_blocks != nsrc) ||
        (nsrc > SCOMM_KV_PLAN_MAX) ||
        (plan->num_dst_blocks > SCOMM_KV_PLAN_MAX) ||
        (plan->num_layers < 1) || (plan->first_layer < 0) ||
        (plan->first_layer > r->l.num_layers - plan->num_layers)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: plan of %llu "
                             "tokens with %u source blocks (need %llu) and "
                             "layers %d+%d does not fit source region %d (%d "
                             "layers)", (unsigned long long)plan->num_tokens,
                             plan->num_src_blocks, (unsigned long long)nsrc,
                             plan->first_layer, plan->num_layers,
                             plan->src_region, r->l.num_layers);
    }
    hcnt = (plan->src_head_cnt != 0) ? plan->src_head_cnt
                                     : r->l.num_kv_heads - plan->src_head_off;
    if ((plan->src_head_off < 0) || (hcnt < 1) ||
        (plan->src_head_off > r->l.num_kv_heads - hcnt) ||
        (plan->dst_head_off < 0) || (plan->dst_head_off > 4096) ||
        (plan->dst_head_cnt < 0) ||
        ((plan->dst_head_cnt != 0) && (plan->dst_head_cnt != hcnt))) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: head range "
                             "%d+%d of source region %d (%d kv heads) to "
                             "destination heads %d+%d: the source range must "
                             "lie inside the region and both counts be "
                             "equal (0: to the last head)",
                             plan->src_head_off, plan->src_head_cnt,
                             plan->src_region, r->l.num_kv_heads,
                             plan->dst_head_off, plan->dst_head_cnt);
    }
    for (i = 0; i < plan->num_src_blocks; i++) {
        if ((plan->src_blocks[i] < 0) ||
            (plan->src_blocks[i] >= r->l.num_blocks)) {
            return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: source "
                                 "block %d outside region %d (%d blocks)",
                                 plan->src_blocks[i], plan->src_region,
                                 r->l.num_blocks);
        }
    }
    sx = calloc(1, sizeof(*sx));
    if (sx == NULL) {
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_submit: out of memory");
    }
    sx->ep          = ep;
    sx->plan        = *plan;
    sx->t_submit    = scomm_now_ns();
    sx->priority    = priority;
    sx->wire_dtype  = ep->wire_dtype;
    sx->compression = ep->compression;
    sx->level       = ep->level;
    sx->plan.src_head_cnt = hcnt;
    sx->sl = r->l;
    sx->sl.num_kv_heads = hcnt;
    sx->sbb  = (size_t)scomm_kv_block_bytes(&sx->sl);
    sx->part = (hcnt != r->l.num_kv_heads);
    wbb = scomm_kv_wire_block_bytes(&sx->sl, sx->wire_dtype);
    sx->bpc = (uint32_t)SCOMM_MAX((size_t)1, ep->chunk_size /
                                  SCOMM_MAX(sx->sbb, wbb));
    sx->bpc = SCOMM_MIN(sx->bpc, plan->num_src_blocks);
    sx->cpl = (plan->num_src_blocks + sx->bpc - 1) / sx->bpc;
    sx->nchunks = (uint64_t)sx->cpl * (uint64_t)plan->num_layers;
    sx->tbl = malloc(4 * ((size_t)plan->num_src_blocks +
                          plan->num_dst_blocks + 1));
    sx->acked_map = calloc(sx->nchunks, 1);
    sx->nacks = calloc(sx->nchunks, 1);
    sx->resend = malloc(sizeof(uint32_t) * (sx->nchunks + 1));
    if ((sx->tbl == NULL) || (sx->acked_map == NULL) || (sx->nacks == NULL)
        || (sx->resend == NULL) || (sx->nchunks > UINT32_MAX)) {
        scomm_kv_sx_free(sx);
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_submit: out of memory");
    }
    if (r->dev &&
        ((status = kv_submit_event(sx, stream)) != SCOMM_OK)) {
        scomm_kv_sx_free(sx);
        return status;
    }
    memcpy(sx->tbl, plan->src_blocks, 4 * (size_t)plan->num_src_blocks);
    memcpy(sx->tbl + plan->num_src_blocks, plan->dst_blocks,
           4 * (size_t)plan->num_dst_blocks);
    sx->plan.src_blocks = sx->tbl;
    sx->plan.dst_blocks = sx->tbl + plan->num_src_blocks;
    pthread_mutex_lock(&ep->lock);
    if (ep->fault != SCOMM_OK) {
        scomm_status_t st = ep->fault;

        pthread_mutex_unlock(&ep->lock);
        scomm_kv_sx_free(sx);
        return scomm_kv_fail(st, "kv_submit: %s", ep->fault_msg);
    }
    for (o = ep->sx_head; o != NULL; o = o->next) {
        if ((o->plan.xfer_id == plan->xfer_id) && (o->state != SX_DONE) &&
            (o->state != SX_FAILED)) {
            pthread_mutex_unlock(&ep->lock);
            scomm_kv_sx_free(sx);
            return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: transfer "
                                 "id %llu is in use",
                                 (unsigned long long)plan->xfer_id);
        }
    }
    sx->order = ep->sx_order++;
    sx->state = SX_BEGIN_WAIT;
    sx->next  = ep->sx_head;
    ep->sx_head = sx;
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_mutex_unlock(&ep->lock);
    *xfer_p = sx;
    return SCOMM_OK;
}

scomm_status_t scomm_kv_xfer_wait(scomm_kv_xfer_t *sx, int64_t timeout_ms)
{
    scomm_kv_ep_t *ep;
    struct timespec ts;
    uint64_t deadline, acked;
    scomm_status_t st;

    if (sx == NULL) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_xfer_wait: NULL xfer");
    }
    if (sx->orphan) {
        return (sx->state == SX_DONE)
                   ? SCOMM_OK : scomm_kv_fail(sx->status, "%s", sx->msg);
    }
    ep = sx->ep;
    deadline = scomm_deadline_ms((timeout_ms > 0) ? timeout_ms
                                                  : ep->timeout_ms);
    pthread_mutex_lock(&ep->lock);
    while ((sx->state != SX_DONE) && (sx->state != SX_FAILED)) {
        if (scomm_now_ns() >= deadline) {
            acked = sx->acked; /* RX threads count on: read it locked */
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(SCOMM_ERR_TIMED_OUT, "kv transfer %llu: timed "
                                 "out with %llu of %llu chunks acknowledged",
                                 (unsigned long long)sx->plan.xfer_id,
                                 (unsigned long long)acked,
                                 (unsigned long long)sx->nchunks);
        }
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->done_cond, &ep->lock, &ts);
    }
    st = sx->status;
    pthread_mutex_unlock(&ep->lock);
    if (st != SCOMM_OK) {
        return scomm_kv_fail(st, "%s", sx->msg);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_kv_xfer_test(scomm_kv_xfer_t *sx, int32_t *done)
{
    scomm_kv_ep_t *ep;
    scomm_status_t st;
    int d;

    if ((sx == NULL) || (done == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_xfer_test: NULL "
                             "argument");
    }
    if (sx->orphan) {
        *done = 1;
        return sx->status;
    }
    ep = sx->ep;
    pthread_mutex_lock(&ep->lock);
    d  = (sx->state == SX_DONE) || (sx->state == SX_FAILED);
    st = d ? sx->status : SCOMM_INPROGRESS;
    pthread_mutex_unlock(&ep->lock);
    *done = d;
    return (st == SCOMM_INPROGRESS) ? SCOMM_OK : st;
}

void scomm_kv_xfer_free(scomm_kv_xfer_t *sx)
{
    scomm_kv_ep_t *ep;

    if (sx == NULL) {
        return;
    }
    if (sx->orphan) {
        scomm_kv_sx_free(sx);
        return;
    }
    ep = sx->ep;
    pthread_mutex_lock(&ep->lock);
    scomm_kv_sx_fail(sx, SCOMM_ERR_ABORTED, "kv transfer cancelled");
    sx->user_freed = 1;
    sx->refs++;
    scomm_kv_sx_unref(ep, sx);
    pthread_mutex_unlock(&ep->lock);
}

/* Wait on the receiver until pred holds for the transfer. */
static scomm_status_t kv_rx_wait(scomm_kv_ep_t *ep, uint64_t id, int32_t layer,
                                 int64_t timeout_ms, int release)
{
    struct timespec ts;
    uint64_t deadline;
    kv_rx_t *rx, **pp;
    scomm_status_t st;
    char msg[SCOMM_KV_ERRTEXT_MAX];
    int li;

    if (ep == NULL) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv wait: NULL endpoint");
    }
    deadline = scomm_deadline_ms((timeout_ms > 0) ? timeout_ms
                                                  : ep->timeout_ms);
    pthread_mutex_lock(&ep->lock);
    for (;;) {
        rx = scomm_kv_rx_find(ep, id);
        if ((rx != NULL) && (rx->status != SCOMM_OK)) {
            st = rx->status;
            snprintf(msg, sizeof(msg), "%s", rx->msg);
            if (release) {
                for (pp = &ep->rx_head; *pp != rx; pp = &(*pp)->next) {
                }
                *pp = rx->next;
                scomm_kv_rx_free(rx);
            }
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(st, "%s", msg);
        }
        if (rx != NULL) {
            if (!release) {
                li = layer - rx->b.first_layer;
                if ((li < 0) || (li >= rx->b.num_layers)) {
                    /* Copied under the lock: another waiter may free rx. */
                    snprintf(msg, sizeof(msg), "kv_wait_layer: layer %d not "
                             "in transfer %llu (%d+%d)", layer,
                             (unsigned long long)id, rx->b.first_layer,
                             rx->b.num_layers);
                    pthread_mutex_unlock(&ep->lock);
                    return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "%s", msg);
                }
                if (rx->layer_left[li] == 0) {
                    pthread_mutex_unlock(&ep->lock);
                    return SCOMM_OK;
                }
            } else if ((rx->ndone == rx->b.nchunks) && (rx->refs == 0)) {
                for (pp = &ep->rx_head; *pp != rx; pp = &(*pp)->next) {
                }
                *pp = rx->next;
                scomm_kv_rx_free(rx);
                pthread_mutex_unlock(&ep->lock);
                return SCOMM_OK;
            }
        }
        if (ep->fault != SCOMM_OK) {
            st = ep->fault;
            snprintf(msg, sizeof(msg), "%s", ep->fault_msg);
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(st, "%s", msg);
        }
        if (scomm_now_ns() >= deadline) {
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(SCOMM_ERR_TIMED_OUT, "kv transfer %llu: timed "
                                 "out waiting for %s%d", (unsigned long long)id,
                                 release ? "all layers" : "layer ",
                                 release ? 0 : layer);
        }
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->done_cond, &ep->lock, &ts);
    }
}

scomm_status_t scomm_kv_wait_layer(scomm_kv_ep_t *ep, uint64_t xfer_id,
                                   int32_t layer, int64_t timeout_ms)
{
    return kv_rx_wait(ep, xfer_id, layer, timeout_ms, 0);
}

scomm_status_t scomm_kv_wait_xfer(scomm_kv_ep_t *ep, uint64_t xfer_id,
                                  int64_t timeout_ms)
{
    return kv_rx_wait(ep, xfer_id, 0, timeout_ms, 1);
}

scomm_status_t scomm_kv_ep_stats(scomm_kv_ep_t *ep, scomm_kv_stats_t *out)
{
    if ((ep == NULL) || (out == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_ep_stats: NULL "
                             "argument");
    }
    pthread_mutex_lock(&ep->lock);
    *out = ep->stats;
    pthread_mutex_unlock(&ep->lock);
    return SCOMM_OK;
}

void scomm_kv_debug_corrupt(scomm_kv_ep_t *ep, int n)
{
    atomic_store(&ep->corrupt_n, n);
}

void scomm_kv_debug_cut_before_prefetch(scomm_kv_ep_t *ep, int n)
{
    atomic_store(&ep->cut_pre_n, n);
}

void scomm_kv_debug_break_stream(scomm_kv_ep_t *ep, int idx)
{
    if ((idx < 0) || (idx >= ep->nstreams)) {
        return;
    }
    /* Under the lock: the keeper may be putting a new socket in place. */
    pthread_mutex_lock(&ep->lock);
    if (ep->st[idx].alive && (ep->st[idx].fd >= 0)) {
        shutdown(ep->st[idx].fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&ep->lock);
}

void scomm_kv_debug_hold_reconnect(scomm_kv_ep_t *ep, int on)
{
    pthread_mutex_lock(&ep->lock);
    ep->hold = on;
    pthread_cond_broadcast(&ep->keep_cond);
    pthread_mutex_unlock(&ep->lock);
}

int scomm_kv_debug_redial_port(scomm_kv_ep_t *ep, uint64_t *session)
{
    if (session != NULL) {
        *session = ep->session;
    }
    return (ep->redial_ms > 0) ? ep->rport : 0;
}

void scomm_kv_debug_no_cma(scomm_kv_ep_t *ep, int on)
{
    pthread_mutex_lock(&ep->lock);
    ep->no_cma = on;
    pthread_mutex_unlock(&ep->lock);
}

void scomm_kv_debug_no_codecs(scomm_kv_ep_t *ep, int on)
{
    __atomic_store_n(&ep->no_codecs, on, __ATOMIC_RELAXED);
}

uint64_t scomm_kv_debug_rma_chunks(scomm_kv_ep_t *ep)
{
    uint64_t n;

    pthread_mutex_lock(&ep->lock);
    n = ep->rma_chunks;
    pthread_mutex_unlock(&ep->lock);
    return n;
}
