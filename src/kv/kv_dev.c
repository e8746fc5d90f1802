/*
 * kv_dev.c - the KV channel on device regions (CUDA, ROCm device memory):
 * the kind of a region (scomm_kv_register_mem), the sender's staging of
 * each chunk device -> pinned host memory on an internal stream, the
 * receiver's pinned bounce image copied host -> device, layer waits
 * enqueued on a caller's stream (scomm_kv_wait_layer_stream), and
 * same-host CUDA IPC between two device regions (the sender copies into
 * the receiver's region, no staging; in one process the same copies
 * without an open). Through the runtime devrt.c binds
 * with dlopen (no build-time CUDA), the one memkind.c found
 * (scomm_memkind_rt).
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
 *  6. CUDA IPC (both regions device memory, one host): the receiver
 *     offers its region's handle in BEGIN_OK, the sender opens it once
 *     (cache per endpoint, never evicted while the endpoint lives) and
 *     writes each chunk device to device at the planned offsets, then
 *     sends DESC once the copies are done (the chunk counts on DESC, so
 *     invariant 3 holds). Only the rows of the moved heads are written
 *     (invariant 4). A chunk is copied over IPC at most once: a re-send
 *     goes staged as DATA, which the receiver drops when it stored the
 *     chunk already, so the sender never writes into a region whose
 *     transfer the receiver may have finished with.
 *  7. Any refusal (SCOMM_KV_IPC=0, no IPC calls, no handle, another host,
 *     a layout the copies cannot regroup, an encoding, an open that
 *     fails) leaves the transfer staged, logged at debug level (a warning
 *     under SCOMM_KV_IPC=1), never an error.
 *  8. Both endpoints in one process (the offer's pid is ours): a handle
 *     does not open in its own process (cudaIpcOpenMemHandle refuses it),
 *     and need not: the receiver's region is valid here as it is. Each
 *     offer records its allocation's handle and base in a table of the
 *     process (kv_local_put, before the offer leaves); the sender takes
 *     the base from there, never a pointer from the wire, checks it as
 *     an opened one (the allocation's base, the region inside it) and
 *     copies device to device with the same ordering, events and DESC as
 *     invariant 6. An offer naming our pid that no receiver here made is
 *     refused (staged).
 *
 *   sender                                 receiver
 *   BEGIN (zero_copy | ZC_IPC) --------->  kv_on_begin:
 *                                          scomm_kv_dev_ipc_offer
 *   scomm_kv_dev_ipc_take  <------------  BEGIN_OK (aux | OK_IPC, offer)
 *   per chunk: kv_ipc_dst (opens once),
 *   device -> peer device copies, event,
 *   wait, DESC (flags IPC) ------------->  kv_on_chunk: counts it
 *                          <------------  ACK
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/devrt.h"
#include "backend/ipc.h"
#include "core/config.h"
#include "kv_int.h"
#include "telemetry/tm.h"

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

/* Runs of bytes to copy on a stream, joined while both sides stay
 * contiguous. */
typedef struct {
    const scomm_devrt_t *rt;
    void                *stream;
    char                *why;
    size_t               whylen;
    uint8_t             *dst;      /* the pending run */
    const uint8_t       *src;
    size_t               len;
    int                  rc;
} kv_cp_t;

static void kv_cp_flush(kv_cp_t *k)
{
    char err[200];

    if ((k->len == 0) || (k->rc != 0)) {
        k->len = 0;
        return;
    }
    if (scomm_devrt_copy_async(k->rt, k->dst, k->src, k->len, k->stream,
                               err, sizeof(err)) != 0) {
        k->rc = kv_dev_fail(k->why, k->whylen, "device copy", err);
    }
    k->len = 0;
}

static void kv_cp_add(kv_cp_t *k, uint8_t *dst, const uint8_t *src,
                      size_t len)
{
    if ((k->len > 0) && (k->dst + k->len == dst) &&
        (k->src + k->len == src)) {
        k->len += len;
        return;
    }
    kv_cp_flush(k);
    k->dst = dst;
    k->src = src;
    k->len = len;
}

/* The rows of tokens [t0, t1) x heads [0, hn) of one block: source heads
 * from sh, destination heads from dh. sl and dl have the same order,
 * dtype, head_dim and block size (their head counts may differ); rows go
 * in address order, so neighbours join into one copy. */
static void kv_cp_rows(kv_cp_t *k, const scomm_kv_layout_t *sl,
                       const uint8_t *sblk, int sh,
                       const scomm_kv_layout_t *dl, uint8_t *dblk, int dh,
                       int hn, int t0, int t1)
{
    size_t es = scomm_dtype_size(dl->dtype), rb = (size_t)dl->head_dim * es;
    int t, kv, h;

    if (dl->order == SCOMM_KV_ORDER_HEAD_MAJOR) {
        for (kv = 0; kv < 2; kv++) {
            for (h = 0; h < hn; h++) {
                for (t = t0; t < t1; t++) {
                    kv_cp_add(k, dblk + scomm_kv_row_off(dl, kv, dh + h, t) *
                                     es,
                              sblk + scomm_kv_row_off(sl, kv, sh + h, t) * es,
                              rb);
                }
            }
        }
        return;
    }
    for (t = t0; t < t1; t++) {
        for (kv = 0; kv < 2; kv++) {
            for (h = 0; h < hn; h++) {
                kv_cp_add(k, dblk + scomm_kv_row_off(dl, kv, dh + h, t) * es,
                          sblk + scomm_kv_row_off(sl, kv, sh + h, t) * es,
                          rb);
            }
        }
    }
}

enum { KV_IPC_AUTO = 0, KV_IPC_OFF = 1, KV_IPC_ON = 2 }; /* SCOMM_KV_IPC */
enum { KV_IPC_OFFERED = 0, KV_IPC_OPEN, KV_IPC_REFUSED }; /* sx->ipc */

typedef struct kv_ipc {
    pthread_mutex_t      lock;  /* cache, and every sx->ipc's state */
    const scomm_devrt_t *rt;
    int                  knob;
    int                  ok;    /* knob not 0 and the runtime can */
    char                 why[192];
    char                 host[SCOMM_KV_IPC_HOST_MAX];
    scomm_ipc_cache_t    cache; /* never evicts: a transfer may copy */
    int                  local_used; /* wrote into a region of this
                                        process (invariant 8) */
} kv_ipc_t;

/* A sender transfer's IPC state (lock: kv_ipc_t's). */
typedef struct kv_sx_ipc {
    int                  state;
    scomm_kv_ipc_offer_t o;
    uint8_t             *dst;   /* the receiver's region, opened here */
    uint8_t             *sent;  /* per chunk: copied over IPC once */
} kv_sx_ipc_t;

/* ---- sender ---- */

static uint8_t *kv_ipc_dst(kv_stream_t *st, kv_sx_t *sx, uint32_t seq);

/* The copies of chunk [i0, i1) of layer layer into the receiver's region
 * (opened at dst): whole blocks, or the rows of the moved heads. */
static void kv_ipc_copies(kv_cp_t *k, const kv_sx_t *sx,
                          const kv_region_t *r, const uint8_t *lbase,
                          uint8_t *dst, int layer, uint32_t i0, uint32_t i1)
{
    const scomm_kv_layout_t *dl = &sx->ipc->o.l;
    const int32_t *dtbl = sx->tbl + sx->plan.num_src_blocks;
    size_t dbb = (size_t)scomm_kv_block_bytes(dl);
    uint8_t *dlayer = dst + (size_t)layer * (size_t)dl->num_blocks * dbb;
    int hn = sx->sl.num_kv_heads, dh = sx->plan.dst_head_off;
    uint32_t i;

    for (i = i0; (i < i1) && (k->rc == 0); i++) {
        const uint8_t *sblk = lbase + (size_t)sx->tbl[i] * r->bb;
        uint8_t *dblk = dlayer + (size_t)dtbl[i] * dbb;

        if ((hn == r->l.num_kv_heads) && (hn == dl->num_kv_heads)) {
            kv_cp_add(k, dblk, sblk, r->bb); /* same layout: the block */
        } else {
            kv_cp_rows(k, &r->l, sblk, sx->plan.src_head_off, dl, dblk, dh,
                       hn, 0, dl->block_tokens);
        }
    }
}

int scomm_kv_dev_tx_stage(kv_stream_t *st, kv_sx_t *sx, uint32_t seq, int b)
{
    const scomm_devrt_t *rt = kv_rt();
    scomm_kv_ep_t *ep = st->ep;
    kv_region_t *r = &ep->regions[sx->plan.src_region];
    uint32_t li = seq / sx->cpl, c = seq % sx->cpl, i0, i1, i;
    int layer = sx->plan.first_layer + (int)li;
    const uint8_t *lbase = r->base + (size_t)layer * r->l.num_blocks * r->bb;
    uint8_t *peer;
    kv_cp_t k;
    char err[200];

    i0 = c * sx->bpc;
    i1 = SCOMM_MIN(i0 + sx->bpc, sx->plan.num_src_blocks);
    if (kv_dev_streams(rt, &st->dstream, st->dev_ev, 2, st->why_tx,
                       sizeof(st->why_tx)) != 0) {
        return -1;
    }
    peer = kv_ipc_dst(st, sx, seq);
    st->dipc[b] = (peer != NULL);
    if ((peer == NULL) &&
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
    memset(&k, 0, sizeof(k));
    k.rt     = rt;
    k.stream = st->dstream;
    k.why    = st->why_tx;
    k.whylen = sizeof(st->why_tx);
    if (peer != NULL) {
        kv_ipc_copies(&k, sx, r, lbase, peer, layer, i0, i1);
    } else {
        /* runs of consecutive source blocks join into one copy */
        for (i = i0; i < i1; i++) {
            kv_cp_add(&k, st->dpin[b] + (size_t)(i - i0) * r->bb,
                      lbase + (size_t)sx->tbl[i] * r->bb, r->bb);
        }
    }
    kv_cp_flush(&k);
    if (k.rc != 0) {
        return -1;
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
    if (sx->ipc != NULL) {
        free(sx->ipc->sent);
        free(sx->ipc);
        sx->ipc = NULL;
    }
}

/* ---- same-host CUDA IPC (invariants 6 and 7) ---- */

/* Why IPC is not used for transfer id: a warning under SCOMM_KV_IPC=1. */
static void kv_ipc_declined(const kv_ipc_t *x, uint64_t id, const char *side,
                            const char *why)
{
    if ((x != NULL) && (x->knob == KV_IPC_ON)) {
        scomm_warn(SCOMM_SUB_KV, "kv transfer %llu: CUDA IPC not used "
                   "(SCOMM_KV_IPC=1, %s): %s; staged instead",
                   (unsigned long long)id, side, why);
    } else {
        scomm_debug(SCOMM_SUB_KV, "kv transfer %llu: CUDA IPC not used "
                    "(%s): %s; staged", (unsigned long long)id, side, why);
    }
}

/* ---- one process: the receivers' regions, for senders of this process
 * (invariant 8) ---- */

/* An allocation a receiver of this process offered: its handle as sent,
 * and its base here. Refreshed by every offer, before the offer leaves,
 * so a sender always finds the base the receiver just exported. */
#define KV_LOCAL_MAX 64
typedef struct {
    uint8_t  h[64];
    uint8_t *base;
} kv_local_t;

static pthread_mutex_t kv_local_lock = PTHREAD_MUTEX_INITIALIZER;
static kv_local_t      kv_local[KV_LOCAL_MAX];
static unsigned        kv_local_n, kv_local_next;

static void kv_local_put(const uint8_t *h, uint8_t *base)
{
    unsigned i;

    pthread_mutex_lock(&kv_local_lock);
    for (i = 0; i < kv_local_n; i++) {
        if (memcmp(kv_local[i].h, h, sizeof(kv_local[i].h)) == 0) {
            break;
        }
    }
    if (i == kv_local_n) {
        if (kv_local_n < KV_LOCAL_MAX) {
            kv_local_n++;
        } else {
            i = kv_local_next; /* full: the oldest goes (round robin) */
            kv_local_next = (kv_local_next + 1) % KV_LOCAL_MAX;
        }
        memcpy(kv_local[i].h, h, sizeof(kv_local[i].h));
    }
    kv_local[i].base = base;
    pthread_mutex_unlock(&kv_local_lock);
}

/* The base in this process of the allocation handle h names, or NULL
 * when no receiver of this process offered it. */
static uint8_t *kv_local_get(const uint8_t *h)
{
    uint8_t *base = NULL;
    unsigned i;

    pthread_mutex_lock(&kv_local_lock);
    for (i = 0; i < kv_local_n; i++) {
        if (memcmp(kv_local[i].h, h, sizeof(kv_local[i].h)) == 0) {
            base = kv_local[i].base;
            break;
        }
    }
    pthread_mutex_unlock(&kv_local_lock);
    return base;
}

/* This host's identity: its boot id, or "id:" SCOMM_HOST_ID (tests tell
 * processes of one machine apart as hosts with it, as comm.c does). */
static void kv_ipc_host(char *out, size_t len)
{
    scomm_pval_t pv;
    FILE *f;

    scomm_param_get_or_warn("SCOMM_HOST_ID", &pv);
    if (pv.text[0] != '\0') {
        snprintf(out, len, "id:%.35s", pv.text);
        return;
    }
    out[0] = '\0';
    f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f != NULL) {
        if (fgets(out, (int)len, f) == NULL) {
            out[0] = '\0';
        }
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

void scomm_kv_dev_ipc_init(scomm_kv_ep_t *ep)
{
    kv_ipc_t *x;
    scomm_pval_t pv;
    int have;

    pthread_mutex_lock(&ep->lock);
    have = (ep->ipc != NULL); /* set once, under the lock */
    pthread_mutex_unlock(&ep->lock);
    if (have) {
        return;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return; /* no IPC: staged */
    }
    pthread_mutex_init(&x->lock, NULL);
    x->rt = kv_rt();
    scomm_ipc_cache_init(&x->cache, x->rt, 0);
    scomm_param_get_or_warn("SCOMM_KV_IPC", &pv);
    x->knob = (int)pv.i;
    if (x->knob == KV_IPC_OFF) {
        snprintf(x->why, sizeof(x->why), "SCOMM_KV_IPC=0");
    } else {
        x->ok = scomm_devrt_has_ipc(x->rt, x->why, sizeof(x->why));
    }
    kv_ipc_host(x->host, sizeof(x->host));
    if (x->host[0] == '\0') {
        x->ok = 0;
        snprintf(x->why, sizeof(x->why), "no host identity (boot id)");
    }
    pthread_mutex_lock(&ep->lock);
    if (ep->ipc == NULL) {
        ep->ipc = x;
        x = NULL;
    }
    pthread_mutex_unlock(&ep->lock);
    if (x != NULL) {
        pthread_mutex_destroy(&x->lock);
        free(x);
    }
}

uint32_t scomm_kv_dev_ipc_ask(scomm_kv_ep_t *ep, const kv_sx_t *sx)
{
    const char *why = NULL;

    if (!ep->regions[sx->plan.src_region].dev) {
        return 0; /* a host source: nothing to ask */
    }
    if ((ep->ipc == NULL) || !ep->ipc->ok) {
        why = (ep->ipc != NULL) ? ep->ipc->why : "no IPC state";
    } else if ((sx->wire_dtype != SCOMM_KV_WIRE_NATIVE) ||
               (sx->compression != SCOMM_KV_COMPRESS_NONE)) {
        why = "the transfer is converted or compressed (host staging "
              "runs the codecs)";
    }
    if (why != NULL) {
        kv_ipc_declined(ep->ipc, sx->plan.xfer_id, "sender", why);
        return 0;
    }
    return SCOMM_KV_BEGIN_ZC_IPC;
}

size_t scomm_kv_dev_ipc_offer(scomm_kv_ep_t *ep, kv_rx_t *rx, uint8_t *out)
{
    kv_region_t *r = &ep->regions[rx->region];
    const kv_ipc_t *x = ep->ipc;
    scomm_kv_ipc_offer_t o;
    char why[256] = "";

    if (!(rx->b.zero_copy & SCOMM_KV_BEGIN_ZC_IPC)) {
        return 0; /* not asked (the sender said why, if it is device) */
    }
    if (!r->dev) {
        snprintf(why, sizeof(why), "destination region %d is host memory",
                 rx->region);
    } else if ((x == NULL) || !x->ok) {
        snprintf(why, sizeof(why), "%s",
                 (x != NULL) ? x->why : "no IPC state");
    } else if ((rx->b.wire_dtype != 0) || (rx->b.compression != 0) ||
               (r->l.dtype != rx->sl.dtype) ||
               (r->l.order != rx->sl.order) ||
               (r->l.block_tokens != rx->sl.block_tokens) ||
               (r->l.head_dim != rx->sl.head_dim)) {
        snprintf(why, sizeof(why), "the layouts differ in dtype, order or "
                 "block size, or the transfer is encoded (the host staging "
                 "regroups and converts)");
    } else if (r->ipc == 0) {
        scomm_devrt_ipc_handle_t h;
        char err[200];

        /* once per region (lock held: a quick runtime call) */
        r->ipc = -1;
        if (scomm_ipc_export(x->rt, r->base, r->bytes, &h, &r->ipc_off, err,
                             sizeof(err)) == 0) {
            memcpy(r->ipc_h, h.reserved, sizeof(r->ipc_h));
            r->ipc = 1;
        } else {
            snprintf(why, sizeof(why), "no IPC handle for region %d: %s",
                     rx->region, err);
        }
    } else if (r->ipc < 0) {
        snprintf(why, sizeof(why), "no IPC handle for region %d",
                 rx->region);
    }
    if (r->ipc != 1) {
        kv_ipc_declined(x, rx->id, "receiver", why);
        return 0;
    }
    /* a sender of this process writes through the base itself */
    kv_local_put(r->ipc_h, r->base - r->ipc_off);
    memset(&o, 0, sizeof(o));
    o.pid   = (int32_t)getpid();
    o.off   = r->ipc_off;
    o.bytes = r->bytes;
    o.l     = r->l;
    snprintf(o.host, sizeof(o.host), "%s", x->host);
    memcpy(o.handle, r->ipc_h, sizeof(o.handle));
    scomm_kv_ipc_offer_encode(&o, out);
    rx->ipc = 1;
    return SCOMM_KV_IPC_OFFER_SIZE;
}

/* Can the sender write sx's chunks into the region o describes? */
static int kv_ipc_fits(const scomm_kv_ep_t *ep, const kv_sx_t *sx,
                       const scomm_kv_ipc_offer_t *o, char *why, size_t len)
{
    const scomm_kv_layout_t *sl = &ep->regions[sx->plan.src_region].l;
    const int32_t *dtbl = sx->tbl + sx->plan.num_src_blocks;
    uint32_t i;

    if (strcmp(o->host, ep->ipc->host) != 0) {
        snprintf(why, len, "the receiver is on another host (%.40s, here "
                 "%.40s)", o->host, ep->ipc->host);
        return 0;
    }
    if ((o->pid == (int32_t)getpid()) && (kv_local_get(o->handle) == NULL)) {
        snprintf(why, len, "the receiver claims to be this process, but no "
                 "receiver here offered that allocation");
        return 0;
    }
    if ((o->l.dtype != sl->dtype) || (o->l.order != sl->order) ||
        (o->l.block_tokens != sl->block_tokens) ||
        (o->l.head_dim != sl->head_dim) ||
        (sx->plan.num_dst_blocks != sx->plan.num_src_blocks) ||
        (sx->plan.dst_head_off + sx->sl.num_kv_heads > o->l.num_kv_heads) ||
        (sx->plan.first_layer + sx->plan.num_layers > o->l.num_layers)) {
        snprintf(why, len, "the receiver's region (%d layers x %d heads, "
                 "dtype %d, order %d, %d-token blocks) does not take the "
                 "plan's blocks as they are", o->l.num_layers,
                 o->l.num_kv_heads, (int)o->l.dtype, o->l.order,
                 o->l.block_tokens);
        return 0;
    }
    for (i = 0; i < sx->plan.num_dst_blocks; i++) {
        if ((dtbl[i] < 0) || (dtbl[i] >= o->l.num_blocks)) {
            snprintf(why, len, "destination block %d outside the receiver's "
                     "%d", dtbl[i], o->l.num_blocks);
            return 0;
        }
    }
    return 1;
}

void scomm_kv_dev_ipc_take(scomm_kv_ep_t *ep, kv_sx_t *sx,
                           const scomm_kv_hdr_t *h, const uint8_t *pl)
{
    kv_sx_ipc_t *p;
    char why[256];

    if ((sx->ipc != NULL) || !(h->aux & SCOMM_KV_BEGIN_OK_IPC)) {
        if ((sx->ipc == NULL) && ep->regions[sx->plan.src_region].dev &&
            (ep->ipc != NULL) && ep->ipc->ok &&
            (sx->wire_dtype == SCOMM_KV_WIRE_NATIVE) &&
            (sx->compression == SCOMM_KV_COMPRESS_NONE)) {
            kv_ipc_declined(ep->ipc, sx->plan.xfer_id, "sender", "the "
                            "receiver offered none (its log says why)");
        }
        return; /* a repeated BEGIN_OK keeps the first offer */
    }
    p = calloc(1, sizeof(*p));
    if ((p == NULL) ||
        ((p->sent = calloc(sx->nchunks + 1, 1)) == NULL)) {
        free(p);
        return;
    }
    if ((scomm_kv_ipc_offer_decode(pl, (size_t)h->len, &p->o, why,
                                   sizeof(why)) != 0) ||
        (ep->ipc == NULL) ||
        !kv_ipc_fits(ep, sx, &p->o, why, sizeof(why))) {
        kv_ipc_declined(ep->ipc, sx->plan.xfer_id, "sender",
                        (ep->ipc == NULL) ? "no IPC state" : why);
        p->state = KV_IPC_REFUSED;
    }
    sx->ipc = p;
}

/* Where chunk seq of sx goes over IPC (the receiver's region, opened on
 * first use), or NULL: stage it (refused, or sent once already). TX
 * thread, lock not held. */
static uint8_t *kv_ipc_dst(kv_stream_t *st, kv_sx_t *sx, uint32_t seq)
{
    kv_ipc_t *x = st->ep->ipc;
    kv_sx_ipc_t *p = sx->ipc;
    uint8_t *dst = NULL;
    char err[200], why[300];
    char *base = NULL;
    void *b0;
    size_t n;
    int local;

    if ((p == NULL) || (x == NULL) || (seq >= sx->nchunks)) {
        return NULL;
    }
    pthread_mutex_lock(&x->lock);
    if (p->state == KV_IPC_OFFERED) {
        scomm_devrt_ipc_handle_t h;

        memcpy(h.reserved, p->o.handle, sizeof(h.reserved));
        p->state = KV_IPC_REFUSED;
        local = (p->o.pid == (int32_t)getpid());
        if (local) {
            /* one process: the receiver's pointer as it is (invariant 8) */
            base = (char *)kv_local_get(p->o.handle);
            x->local_used |= (base != NULL);
        }
        if (local && (base == NULL)) {
            snprintf(why, sizeof(why), "no receiver of this process "
                     "offered the allocation named");
        } else if (!local &&
                   (scomm_ipc_cache_open(&x->cache, p->o.pid, &h, &base, err,
                                         sizeof(err)) != 0)) {
            snprintf(why, sizeof(why), "opening the receiver's handle: %s",
                     err);
        } else if ((scomm_devrt_mem_range(x->rt, base, &b0, &n, err,
                                          sizeof(err)) != 0) ||
                   ((char *)b0 != base) || (p->o.off > n) ||
                   (p->o.bytes > n - p->o.off)) {
            snprintf(why, sizeof(why), "the receiver's region (%llu bytes "
                     "at %llu) is not inside the allocation it names",
                     (unsigned long long)p->o.bytes,
                     (unsigned long long)p->o.off);
        } else {
            p->dst   = (uint8_t *)base + p->o.off;
            p->state = KV_IPC_OPEN;
            if (local) {
                scomm_info(SCOMM_SUB_KV, "kv transfer %llu: receiver in this "
                           "process: device-to-device copies into its "
                           "region (no IPC open, no host staging)",
                           (unsigned long long)sx->plan.xfer_id);
            } else {
                scomm_info(SCOMM_SUB_KV, "kv transfer %llu: CUDA IPC, "
                           "device-to-device copies into pid %d's region "
                           "(no host staging)",
                           (unsigned long long)sx->plan.xfer_id,
                           (int)p->o.pid);
            }
        }
        if (p->state != KV_IPC_OPEN) {
            kv_ipc_declined(x, sx->plan.xfer_id, "sender", why);
        }
    }
    if ((p->state == KV_IPC_OPEN) && !p->sent[seq]) {
        p->sent[seq] = 1; /* a re-send goes staged (invariant 6) */
        dst = p->dst;
    }
    pthread_mutex_unlock(&x->lock);
    return dst;
}

void scomm_kv_dev_ep_free(scomm_kv_ep_t *ep)
{
    kv_ipc_t *x = ep->ipc;
    int i;

    if (x == NULL) {
        return;
    }
    ep->ipc = NULL;
    /* a copy enqueued by a chunk whose stream failed may still run: wait
     * (bounded) before unmapping what it writes, or, in one process,
     * before the receiver's region may be freed */
    for (i = 0; ((x->cache.n > 0) || x->local_used) && (i < ep->nstreams);
         i++) {
        kv_stream_t *st = &ep->st[i];

        if ((st->dstream != NULL) && (st->dev_ev[0] != NULL) &&
            (scomm_devrt_event_record(x->rt, st->dev_ev[0], st->dstream,
                                      st->why_tx,
                                      sizeof(st->why_tx)) == 0)) {
            (void)kv_dev_wait(x->rt, st->dev_ev[0], ep->timeout_ms,
                              st->why_tx, sizeof(st->why_tx));
        }
    }
    scomm_ipc_cache_fini(&x->cache);
    pthread_mutex_destroy(&x->lock);
    free(x);
}

uint64_t scomm_kv_debug_ipc_chunks(scomm_kv_ep_t *ep)
{
    uint64_t n;

    pthread_mutex_lock(&ep->lock);
    n = ep->ipc_chunks;
    pthread_mutex_unlock(&ep->lock);
    return n;
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

int scomm_kv_dev_rx_store(kv_stream_t *st, const kv_region_t *r,
                          uint8_t *dlayer, const int32_t *dtbl, int whole,
                          uint32_t i0, uint32_t nb, uint64_t g0, uint64_t g1,
                          int dho, int hn)
{
    uint64_t bt = (uint64_t)r->l.block_tokens, j, jlo, jhi;
    kv_cp_t k;
    char err[200];
    int t0, t1;

    memset(&k, 0, sizeof(k));
    k.rt     = kv_rt();
    k.stream = st->rstream;
    k.why    = st->why;
    k.whylen = sizeof(st->why);
    if (whole) {
        uint32_t i;

        for (i = 0; (i < nb) && (k.rc == 0); i++) {
            kv_cp_add(&k, dlayer + (size_t)dtbl[i0 + i] * r->bb,
                      st->rpin + (size_t)i * r->bb, r->bb);
        }
    } else {
        jlo = g0 / bt;
        jhi = (g1 - 1) / bt;
        for (j = jlo; (j <= jhi) && (k.rc == 0); j++) {
            t0 = (int)((SCOMM_MAX(g0, j * bt)) - j * bt);
            t1 = (int)((SCOMM_MIN(g1, (j + 1) * bt)) - j * bt);
            kv_cp_rows(&k, &r->l, st->rpin + (size_t)(j - jlo) * r->bb, dho,
                       &r->l, dlayer + (size_t)dtbl[j] * r->bb, dho, hn, t0,
                       t1);
        }
    }
    kv_cp_flush(&k);
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
