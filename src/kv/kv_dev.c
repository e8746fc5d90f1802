/*
 * kv_dev.c - the KV channel on device regions (CUDA, ROCm device memory):
 * the kind of a region (scomm_kv_register_mem), the sender's staging of
 * each chunk device -> pinned host memory on an internal stream, the
 * receiver's pinned bounce image copied host -> device, and layer waits
 * enqueued on a caller's stream (scomm_kv_wait_layer_stream). Through the
 * runtime devrt.c binds with dlopen (no build-time CUDA), the one
 * memkind.c found (scomm_memkind_rt).
 *
 *   sender:   caller's stream --ev_in (submit)--> internal stream:
 *             chunk i+1 device -> pinned[b^1] while chunk i (pinned[b])
 *             is CRC'd, encoded and on the wire
 *   receiver: wire -> host staging, CRC32C checked on the host bytes,
 *             decoded / regrouped into a pinned image of the destination
 *             blocks -> internal stream: the written runs pinned -> device
 *             -> event -> the chunk counts (ACK, layer counters)
 *
 * Invariants:
 *  1. No host code reads or writes device memory: every byte of a device
 *     region moves by an asynchronous copy on an internal stream.
 *  2. The host touches a pinned buffer only after the event recorded after
 *     the last copy that used it; every such wait is a poll bounded by the
 *     endpoint's timeout (never a cudaEventSynchronize).
 *  3. A receiver chunk counts (ACK, layer counter) only after its copies
 *     to the device are done: a layer that scomm_kv_wait_layer reports is
 *     in device memory, so a caller's stream may use it at once.
 *  4. Only the bytes a chunk writes go to the device (whole blocks, or the
 *     runs of the moved tokens and heads): the rest of the destination
 *     blocks, which other endpoints (other prefill ranks' heads) may be
 *     writing, is never copied over.
 *  5. A layer wait on a caller's stream never outlives its endpoint: close
 *     detaches those not yet run and waits for those running, which end at
 *     once on a closing endpoint.
 *
 * Same-host CUDA IPC between two caches (device-to-device, no staging) is
 * not built: it would plug in where kv_on_begin decides rx->cma (a BEGIN
 * whose zero_copy asks for IPC and carries the sender's cudaIpcMemHandle;
 * see scomm_kv_dev_ipc_ok), with the sender's chunks then sent as DESC.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/devrt.h"
#include "kv_int.h"

extern _Atomic(const void *) scomm_memkind_rt; /* memkind.c */
void scomm_memkind_probe(void);

/* Lock order: ctl->lock before ep->lock (kv_dw_run), never the reverse;
 * refs is atomic so that a wait is counted under ep->lock alone. */
typedef struct kv_dwctl {
    pthread_mutex_t lock; /* ep */
    scomm_kv_ep_t  *ep;   /* NULL once the endpoint closed */
    _Atomic int     refs; /* the endpoint's, and one per enqueued wait */
} kv_dwctl_t;

static const scomm_devrt_t *kv_rt(void)
{
    return (const scomm_devrt_t *)atomic_load(&scomm_memkind_rt);
}

/* The hook for same-host CUDA IPC between two caches (not built). */
int scomm_kv_dev_ipc_ok(const scomm_kv_ep_t *ep);
int scomm_kv_dev_ipc_ok(const scomm_kv_ep_t *ep)
{
    (void)ep;
    return 0;
}

scomm_status_t scomm_kv_dev_kind(const void *base, int hint, int *dev,
                                 char *why, size_t whylen)
{
    scomm_mem_kind_t k = (scomm_mem_kind_t)hint;

    *dev = 0;
    if ((hint < 0) || (hint >= SCOMM_MEM_KIND_COUNT)) {
        snprintf(why, whylen, "kind %d is not a scomm_mem_kind_t", hint);
        return SCOMM_ERR_INVALID_ARG;
    }
    if (k == SCOMM_MEM_AUTO) {
        if (scomm_mem_kind(base, &k) != SCOMM_OK) {
            snprintf(why, whylen, "the kind of region %p: %s", base,
                     scomm_last_error());
            return SCOMM_ERR_SYSTEM;
        }
    }
    if ((k == SCOMM_MEM_ASCEND) || (k == SCOMM_MEM_MLU) ||
        (k == SCOMM_MEM_XPU)) {
        snprintf(why, whylen, "%s device memory is not supported by the KV "
                 "channel (only CUDA and ROCm device memory is staged)",
                 scomm_mem_kind_name(k));
        return SCOMM_ERR_UNSUPPORTED;
    }
    if ((k != SCOMM_MEM_CUDA) && (k != SCOMM_MEM_ROCM)) {
        return SCOMM_OK; /* host, pinned, managed: host-accessible */
    }
    scomm_memkind_probe();
    if (!scomm_devrt_has_mem(kv_rt())) {
        snprintf(why, whylen, "%s device region needs its runtime "
                 "(libcudart.so / libamdhip64.so) in the process or named "
                 "by SCOMM_CUDART_LIBRARY / SCOMM_HIPRT_LIBRARY; none "
                 "found", scomm_mem_kind_name(k));
        return SCOMM_ERR_UNSUPPORTED;
    }
    *dev = 1;
    return SCOMM_OK;
}

/* ---- shared helpers ---- */

static int kv_dev_fail(char *why, size_t len, const char *what,
                       const char *err)
{
    snprintf(why, len, "device region: %s: %.100s", what, err);
    return -1;
}

/* Pinned memory of at least n bytes in *p (cap *cap). */
static int kv_dev_pin(const scomm_devrt_t *rt, uint8_t **p, size_t *cap,
                      size_t n, char *why, size_t len)
{
    char err[200];

    if (n <= *cap) {
        return 0;
    }
    n = SCOMM_ALIGN_UP(n, (size_t)(1u << 16));
    scomm_devrt_host_free(rt, *p); /* synchronises: nothing uses it */
    *p   = NULL;
    *cap = 0;
    if (scomm_devrt_host_alloc(rt, (void **)p, n, err, sizeof(err)) != 0) {
        return kv_dev_fail(why, len, "pinned staging memory", err);
    }
    *cap = n;
    return 0;
}

/* Poll ev until done, at most timeout_ms (invariant 2). */
static int kv_dev_wait(const scomm_devrt_t *rt, void *ev, int64_t timeout_ms,
                       char *why, size_t len)
{
    uint64_t deadline = scomm_deadline_ms(timeout_ms);
    struct timespec nap = {0, 20000};
    char err[200];
    int spins = 0, r;

    for (;;) {
        r = scomm_devrt_event_query(rt, ev, err, sizeof(err));
        if (r == SCOMM_RT_DONE) {
            return 0;
        }
        if (r == SCOMM_RT_ERROR) {
            return kv_dev_fail(why, len, "waiting for the copies", err);
        }
        if (scomm_now_ns() >= deadline) {
            snprintf(why, len, "device region: copies not done after %lld "
                     "ms (the caller's stream never got there?)",
                     (long long)timeout_ms);
            return -1;
        }
        if (++spins < 64) {
            scomm_cpu_relax();
        } else {
            nanosleep(&nap, NULL);
        }
    }
}

/* An internal stream and n events, made once. */
static int kv_dev_streams(const scomm_devrt_t *rt, void **s, void **ev,
                          int n, char *why, size_t len)
{
    char err[200];
    int i;

    if ((*s == NULL) &&
        (scomm_devrt_stream_create(rt, s, err, sizeof(err)) != 0)) {
        *s = NULL;
        return kv_dev_fail(why, len, "an internal stream", err);
    }
    for (i = 0; i < n; i++) {
        if ((ev[i] == NULL) &&
            (scomm_devrt_event_create(rt, &ev[i], err, sizeof(err)) != 0)) {
            ev[i] = NULL;
            return kv_dev_fail(why, len, "an event", err);
        }
    }
    return 0;
}

/* ---- sender ---- */

int scomm_kv_dev_tx_stage(kv_stream_t *st, kv_sx_t *sx, uint32_t seq, int b)
{
    const scomm_devrt_t *rt = kv_rt();
    scomm_kv_ep_t *ep = st->ep;
    kv_region_t *r = &ep->regions[sx->plan.src_region];
    uint32_t li = seq / sx->cpl, c = seq % sx->cpl, i0, i1, i;
    const uint8_t *lbase = r->base + (size_t)(sx->plan.first_layer +
                                              (int)li) *
                                         r->l.num_blocks * r->bb;
    char err[200];

    i0 = c * sx->bpc;
    i1 = SCOMM_MIN(i0 + sx->bpc, sx->plan.num_src_blocks);
    if ((kv_dev_streams(rt, &st->dstream, st->dev_ev, 2, st->why_tx,
                        sizeof(st->why_tx)) != 0) ||
        (kv_dev_pin(rt, &st->dpin[b], &st->dpcap[b], (size_t)(i1 - i0) *
                    r->bb, st->why_tx, sizeof(st->why_tx)) != 0)) {
        return -1;
    }
    if ((sx->ev_in != NULL) &&
        (scomm_devrt_stream_wait(rt, st->dstream, sx->ev_in, err,
                                 sizeof(err)) != 0)) {
        return kv_dev_fail(st->why_tx, sizeof(st->why_tx),
                           "ordering after the caller's stream", err);
    }
    for (i = i0; i < i1; i++) {
        /* runs of consecutive source blocks go as one copy */
        uint32_t j = i + 1;

        while ((j < i1) && (sx->tbl[j] == sx->tbl[j - 1] + 1)) {
            j++;
        }
        if (scomm_devrt_copy_async(rt, st->dpin[b] + (size_t)(i - i0) *
                                                         r->bb,
                                   lbase + (size_t)sx->tbl[i] * r->bb,
                                   (size_t)(j - i) * r->bb, st->dstream, err,
                                   sizeof(err)) != 0) {
            return kv_dev_fail(st->why_tx, sizeof(st->why_tx),
                               "copy to host", err);
        }
        i = j - 1;
    }
    if (scomm_devrt_event_record(rt, st->dev_ev[b], st->dstream, err,
                                 sizeof(err)) != 0) {
        return kv_dev_fail(st->why_tx, sizeof(st->why_tx), "event", err);
    }
    return 0;
}

int scomm_kv_dev_tx_wait(kv_stream_t *st, int b)
{
    return kv_dev_wait(kv_rt(), st->dev_ev[b], st->ep->timeout_ms,
                       st->why_tx, sizeof(st->why_tx));
}

void scomm_kv_dev_sx_free(kv_sx_t *sx)
{
    if (sx->ev_in != NULL) {
        scomm_devrt_event_destroy(kv_rt(), sx->ev_in);
        sx->ev_in = NULL;
    }
}

/* ---- receiver ---- */

uint8_t *scomm_kv_dev_rx_image(kv_stream_t *st, size_t n)
{
    if ((kv_dev_streams(kv_rt(), &st->rstream, &st->rev, 1, st->why,
                        sizeof(st->why)) != 0) ||
        (kv_dev_pin(kv_rt(), &st->rpin, &st->rpcap, n, st->why,
                    sizeof(st->why)) != 0)) {
        return NULL;
    }
    return st->rpin;
}

int32_t *scomm_kv_dev_rx_map(kv_stream_t *st, uint32_t n, uint32_t jlo,
                             uint32_t jhi)
{
    uint32_t j;

    if (n > st->rmapcap) {
        int32_t *m = realloc(st->rmap, sizeof(int32_t) * n);

        if (m == NULL) {
            snprintf(st->why, sizeof(st->why), "no memory for a block map");
            return NULL;
        }
        st->rmap    = m;
        st->rmapcap = n;
    }
    for (j = 0; j < n; j++) {
        st->rmap[j] = ((j >= jlo) && (j <= jhi)) ? (int32_t)(j - jlo) : 0;
    }
    return st->rmap;
}

typedef struct {
    const scomm_devrt_t *rt;
    kv_stream_t         *st;
    uint8_t             *dst;   /* device block */
    const uint8_t       *src;   /* its image */
    size_t               off, len; /* the pending run */
    int                  rc;
} kv_runs_t;

static void kv_run_flush(kv_runs_t *k)
{
    char err[200];

    if ((k->len == 0) || (k->rc != 0)) {
        k->len = 0;
        return;
    }
    if (scomm_devrt_copy_async(k->rt, k->dst + k->off, k->src + k->off,
                               k->len, k->st->rstream, err,
                               sizeof(err)) != 0) {
        k->rc = kv_dev_fail(k->st->why, sizeof(k->st->why), "copy to the "
                            "device", err);
    }
    k->len = 0;
}

/* One row of len bytes at off: joined to the pending run if adjacent. */
static void kv_run_add(kv_runs_t *k, size_t off, size_t len)
{
    if ((k->len > 0) && (k->off + k->len == off)) {
        k->len += len;
        return;
    }
    kv_run_flush(k);
    k->off = off;
    k->len = len;
}

int scomm_kv_dev_rx_store(kv_stream_t *st, const kv_region_t *r,
                          uint8_t *dlayer, const int32_t *dtbl, int whole,
                          uint32_t i0, uint32_t nb, uint64_t g0, uint64_t g1,
                          int dho, int hn)
{
    const scomm_kv_layout_t *dl = &r->l;
    size_t es = scomm_dtype_size(dl->dtype), D = (size_t)dl->head_dim;
    uint64_t bt = (uint64_t)dl->block_tokens, j, jlo, jhi;
    kv_runs_t k;
    char err[200];
    int t, t0, t1, kv, h;

    memset(&k, 0, sizeof(k));
    k.rt = kv_rt();
    k.st = st;
    if (whole) {
        uint32_t i;

        for (i = 0; (i < nb) && (k.rc == 0); i++) {
            k.dst = dlayer + (size_t)dtbl[i0 + i] * r->bb;
            k.src = st->rpin + (size_t)i * r->bb;
            kv_run_add(&k, 0, r->bb);
            kv_run_flush(&k);
        }
    } else {
        jlo = g0 / bt;
        jhi = (g1 - 1) / bt;
        for (j = jlo; (j <= jhi) && (k.rc == 0); j++) {
            t0    = (int)((SCOMM_MAX(g0, j * bt)) - j * bt);
            t1    = (int)((SCOMM_MIN(g1, (j + 1) * bt)) - j * bt);
            k.dst = dlayer + (size_t)dtbl[j] * r->bb;
            k.src = st->rpin + (size_t)(j - jlo) * r->bb;
            /* rows in address order, so neighbours join into one copy */
            if (dl->order == SCOMM_KV_ORDER_HEAD_MAJOR) {
                for (kv = 0; kv < 2; kv++) {
                    for (h = dho; h < dho + hn; h++) {
                        for (t = t0; t < t1; t++) {
                            kv_run_add(&k, scomm_kv_row_off(dl, kv, h, t) *
                                               es, D * es);
                        }
                    }
                }
            } else {
                for (t = t0; t < t1; t++) {
                    for (kv = 0; kv < 2; kv++) {
                        for (h = dho; h < dho + hn; h++) {
                            kv_run_add(&k, scomm_kv_row_off(dl, kv, h, t) *
                                               es, D * es);
                        }
                    }
                }
            }
            kv_run_flush(&k);
        }
    }
    if (k.rc != 0) {
        return -1;
    }
    if (scomm_devrt_event_record(k.rt, st->rev, st->rstream, err,
                                 sizeof(err)) != 0) {
        return kv_dev_fail(st->why, sizeof(st->why), "event", err);
    }
    return kv_dev_wait(k.rt, st->rev, st->ep->timeout_ms, st->why,
                       sizeof(st->why));
}

void scomm_kv_dev_stream_free(kv_stream_t *st)
{
    const scomm_devrt_t *rt = kv_rt();
    int b;

    if (rt == NULL) {
        return;
    }
    /* cudaFreeHost synchronises the device: no copy still uses them */
    for (b = 0; b < 2; b++) {
        scomm_devrt_host_free(rt, st->dpin[b]);
        st->dpin[b] = NULL;
        st->dpcap[b] = 0;
        if (st->dev_ev[b] != NULL) {
            scomm_devrt_event_destroy(rt, st->dev_ev[b]);
            st->dev_ev[b] = NULL;
        }
    }
    scomm_devrt_host_free(rt, st->rpin);
    st->rpin  = NULL;
    st->rpcap = 0;
    if (st->rev != NULL) {
        scomm_devrt_event_destroy(rt, st->rev);
        st->rev = NULL;
    }
    scomm_devrt_stream_destroy(rt, st->dstream);
    scomm_devrt_stream_destroy(rt, st->rstream);
    st->dstream = st->rstream = NULL;
    free(st->rmap);
    st->rmap    = NULL;
    st->rmapcap = 0;
}

/* ---- layer waits on a caller's stream (invariant 5) ---- */

typedef struct {
    kv_dwctl_t *ctl;
    uint64_t    id;
    int32_t     layer;
    int64_t     timeout_ms;
} kv_dw_t;

static void kv_dwctl_unref(kv_dwctl_t *ctl)
{
    if (atomic_fetch_sub(&ctl->refs, 1) == 1) {
        pthread_mutex_destroy(&ctl->lock);
        free(ctl);
    }
}

/* Run on the runtime's host thread when the caller's stream gets here:
 * hold the stream until the layer landed (or failed, or the timeout). */
static void kv_dw_run(void *arg)
{
    kv_dw_t *w = arg;
    scomm_kv_ep_t *ep;

    pthread_mutex_lock(&w->ctl->lock);
    ep = w->ctl->ep;
    if (ep != NULL) {
        pthread_mutex_lock(&ep->lock);
        ep->dw_running++;
        pthread_mutex_unlock(&ep->lock);
    }
    pthread_mutex_unlock(&w->ctl->lock);
    if (ep != NULL) {
        /* The result is the blocking wait's to report; the stream goes on
         * either way (a host function cannot fail a stream). */
        (void)scomm_kv_wait_layer(ep, w->id, w->layer, w->timeout_ms);
        pthread_mutex_lock(&ep->lock);
        ep->dw_running--;
        pthread_cond_broadcast(&ep->done_cond);
        pthread_mutex_unlock(&ep->lock);
    }
    kv_dwctl_unref(w->ctl);
    free(w);
}

scomm_status_t scomm_kv_wait_layer_stream(scomm_kv_ep_t *ep,
                                          uint64_t xfer_id, int32_t layer,
                                          void *stream, int64_t timeout_ms)
{
    const scomm_devrt_t *rt;
    kv_dwctl_t *ctl;
    kv_rx_t *rx;
    kv_dw_t *w;
    char err[200];
    int landed = 0;

    if (ep == NULL) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_wait_layer_stream: "
                             "NULL endpoint");
    }
    scomm_memkind_probe();
    rt = kv_rt();
    if (!scomm_devrt_has_mem(rt)) {
        return scomm_kv_fail(SCOMM_ERR_UNSUPPORTED, "kv_wait_layer_stream: "
                             "no CUDA or HIP runtime in the process (or "
                             "SCOMM_CUDART_LIBRARY)");
    }
    pthread_mutex_lock(&ep->lock);
    if (ep->fault != SCOMM_OK) {
        scomm_status_t f = ep->fault;

        char msg[SCOMM_KV_ERRTEXT_MAX];

        snprintf(msg, sizeof(msg), "%s", ep->fault_msg);
        pthread_mutex_unlock(&ep->lock);
        return scomm_kv_fail(f, "kv_wait_layer_stream: %s", msg);
    }
    rx = scomm_kv_rx_find(ep, xfer_id);
    if ((rx != NULL) && (rx->status == SCOMM_OK) &&
        (layer >= rx->b.first_layer) &&
        (layer < rx->b.first_layer + rx->b.num_layers) &&
        (rx->layer_left[layer - rx->b.first_layer] == 0)) {
        landed = 1; /* in device memory already (invariant 3) */
    }
    if (!landed && (ep->dwctl == NULL)) {
        ep->dwctl = calloc(1, sizeof(*ep->dwctl));
        if (ep->dwctl != NULL) {
            pthread_mutex_init(&ep->dwctl->lock, NULL);
            ep->dwctl->ep = ep;
            atomic_init(&ep->dwctl->refs, 1);
        }
    }
    ctl = ep->dwctl;
    if (!landed && (ctl != NULL)) {
        atomic_fetch_add(&ctl->refs, 1); /* ep->lock held: not ctl->lock */
    }
    pthread_mutex_unlock(&ep->lock);
    if (landed) {
        return SCOMM_OK;
    }
    w = (ctl != NULL) ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL) {
        if (ctl != NULL) {
            kv_dwctl_unref(ctl);
        }
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_wait_layer_stream: "
                             "out of memory");
    }
    w->ctl        = ctl;
    w->id         = xfer_id;
    w->layer      = layer;
    w->timeout_ms = (timeout_ms > 0) ? timeout_ms : ep->timeout_ms;
    if (scomm_devrt_host_func(rt, stream, kv_dw_run, w, err,
                              sizeof(err)) != 0) {
        kv_dwctl_unref(ctl);
        free(w);
        return scomm_kv_fail(SCOMM_ERR_UNSUPPORTED, "kv_wait_layer_stream: "
                             "%s", err);
    }
    return SCOMM_OK;
}

void scomm_kv_dev_ep_close(scomm_kv_ep_t *ep)
{
    kv_dwctl_t *ctl = ep->dwctl;

    if (ctl == NULL) {
        return;
    }
    /* Those not yet run find no endpoint; those running see it closing
     * (their wait returns ABORTED at once) and are waited for. */
    pthread_mutex_lock(&ctl->lock);
    ctl->ep = NULL;
    pthread_mutex_unlock(&ctl->lock);
    pthread_mutex_lock(&ep->lock);
    while (ep->dw_running > 0) {
        pthread_cond_wait(&ep->done_cond, &ep->lock);
    }
    pthread_mutex_unlock(&ep->lock);
    ep->dwctl = NULL;
    kv_dwctl_unref(ctl);
}
