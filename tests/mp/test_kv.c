/*
 * test_kv.c - KV-cache transfer between two real processes (fork): exact
 * data for every layout / block size / dtype / encoding / compression pair,
 * injected corruption repaired by re-sending, a killed peer reported as
 * SCOMM_ERR_PEER_LOST within 5 s, priorities, a broken stream survived,
 * metadata mismatch, a compression not built in (refused on either side as
 * SCOMM_ERR_UNSUPPORTED, the endpoint unharmed), a wrong token, the
 * sender's memory bound, and the communicator form; over ofi (RMA) the
 * same cases, and an ofi sender refused by a tcp receiver (mixed); lost
 * streams re-established (reconnect.*): the only stream cut mid-transfer
 * on either side, every stream cut repeatedly, a peer killed while a
 * stream is down, stray and replayed re-dials refused.
 *
 * Usage: test_kv CASE [tcp|cma|ofi|ipc]   (cma: same-host copy allowed;
 *        ofi: chunks by libfabric RMA, SCOMM_KV_TRANSPORT_OFI on both
 *        sides; ipc: device regions may use same-host CUDA IPC, which
 *        the other paths turn off with SCOMM_KV_IPC=0 unless it is set)
 *
 * The receiver checks every element against an independently computed
 * expectation (kv_ref_val(), kv_ref.h), never against the sender's
 * buffer, and checks that destination blocks outside the plan were not
 * written.
 */
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "st_test.h"
#include "scomm.h"
#include "coll/reduce.h"
#include "core/util.h"
#include "kv/kv.h"
#include "kv_ref.h"
#include "kv_dev.h"

#define SENTINEL 0x5a

static int g_cma; /* 1: allow the same-host path */
static int g_ofi; /* 1: transport ofi (RMA writes) on both sides */
static int g_ipc; /* 1: same-host CUDA IPC allowed (SCOMM_KV_IPC auto) */
static int g_lst_closed; /* the parent closed the listener itself */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


typedef struct cfg {
    scomm_kv_layout_t sl, dl;
    uint64_t ntok;
    int wire, comp, streams, depth;
    uint64_t chunk;
    int first_layer, num_layers;
} cfg_t;

static size_t region_bytes(const scomm_kv_layout_t *l)
{
    return (size_t)l->num_layers * l->num_blocks * scomm_kv_block_bytes(l);
}


/* Block tables: a permutation of the region's blocks, seeded. */
static void table(int32_t *t, uint32_t n, int nblocks, uint64_t seed)
{
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)nblocks);
    int i, j, tmp;

    for (i = 0; i < nblocks; i++) {
        perm[i] = i;
    }
    for (i = nblocks - 1; i > 0; i--) {
        j = (int)(kv_ref_mix(seed + (uint64_t)i) % (uint64_t)(i + 1));
        tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (i = 0; i < (int)n; i++) {
        t[i] = perm[i];
    }
    free(perm);
}

static void fill_src(const cfg_t *c, uint8_t *base, const int32_t *stbl,
                     uint32_t nsrc)
{
    const scomm_kv_layout_t *l = &c->sl;
    size_t es = scomm_dtype_size(l->dtype), bb = scomm_kv_block_bytes(l);
    float row[1024];
    int layer, kv, h, t, d;
    uint32_t i;

    memset(base, 0x33, region_bytes(l));
    for (layer = 0; layer < l->num_layers; layer++) {
        for (i = 0; i < nsrc; i++) {
            uint8_t *blk = base + ((size_t)layer * l->num_blocks + stbl[i]) *
                                      bb;
            for (t = 0; t < l->block_tokens; t++) {
                uint64_t g = (uint64_t)i * l->block_tokens + t;
                for (kv = 0; kv < 2; kv++) {
                    for (h = 0; h < l->num_kv_heads; h++) {
                        for (d = 0; d < l->head_dim; d++) {
                            row[d] = kv_ref_val(layer, g, kv, h, d);
                        }
                        scomm_cvt_from_f32(blk + scomm_kv_row_off(l, kv, h,
                                                                  t) * es,
                                           row, (size_t)l->head_dim,
                                           l->dtype);
                    }
                }
            }
        }
    }
}

/* amax of (src block i, kv, h) over all its tokens, as the sender sees. */
static float group_amax(const cfg_t *c, int layer, uint64_t i, int kv, int h)
{
    float a = 0.0f, v;
    int t, d;

    for (t = 0; t < c->sl.block_tokens; t++) {
        for (d = 0; d < c->sl.head_dim; d++) {
            v = fabsf(kv_ref_val(layer, i * (uint64_t)c->sl.block_tokens +
                                     (uint64_t)t, kv, h, d));
            a = (v > a) ? v : a;
        }
    }
    return a;
}

/* Compare the destination with the expectation; returns the number of
 * bad elements (prints the first few). */
static long check_dst(const cfg_t *c, const uint8_t *base,
                      const int32_t *dtbl, uint32_t ndst)
{
    const scomm_kv_layout_t *l = &c->dl;
    size_t es = scomm_dtype_size(l->dtype), bb = scomm_kv_block_bytes(l);
    uint8_t *used = calloc((size_t)l->num_blocks, 1);
    float got, exp, amax = 0.0f, bound, fin;
    long bad = 0;
    uint64_t g, ntok = c->ntok;
    int layer, kv, h, d, b;
    uint32_t i;
    size_t k;

    if (c->sl.block_tokens == c->dl.block_tokens) {
        ntok = (uint64_t)ndst * (uint64_t)l->block_tokens; /* whole blocks */
    }
    fin = (l->dtype == SCOMM_BFLOAT16) ? 1.0f / 256.0f
          : (l->dtype == SCOMM_FLOAT16) ? 1.0f / 2048.0f : 0.0f;
    for (i = 0; i < ndst; i++) {
        used[dtbl[i]] = 1;
    }
    for (layer = 0; layer < l->num_layers; layer++) {
        int in = (layer >= c->first_layer) &&
                 (layer < c->first_layer + c->num_layers);
        for (b = 0; b < l->num_blocks; b++) {
            if (in && used[b]) {
                continue;
            }
            const uint8_t *p = base + ((size_t)layer * l->num_blocks + b) *
                                          bb;
            for (k = 0; k < bb; k++) {
                if (p[k] != SENTINEL) {
                    if (bad++ < 5) {
                        fprintf(stderr, "layer %d block %d byte %zu written "
                                "outside the plan\n", layer, b, k);
                    }
                    break;
                }
            }
        }
        if (!in) {
            continue;
        }
        for (g = 0; g < ntok; g++) {
            const uint8_t *blk = base + ((size_t)layer * l->num_blocks +
                                         dtbl[g / l->block_tokens]) * bb;
            int t = (int)(g % l->block_tokens);
            for (kv = 0; kv < 2; kv++) {
                for (h = 0; h < l->num_kv_heads; h++) {
                    float row[1024];

                    scomm_cvt_to_f32(row, blk + scomm_kv_row_off(l, kv, h, t)
                                                    * es,
                                     (size_t)l->head_dim, l->dtype);
                    if (c->wire != 0) {
                        amax = group_amax(c, layer,
                                          g / c->sl.block_tokens, kv, h);
                    }
                    for (d = 0; d < l->head_dim; d++) {
                        exp = kv_ref_val(layer, g, kv, h, d);
                        got = row[d];
                        if (c->wire == SCOMM_KV_WIRE_FP8_E4M3) {
                            bound = fabsf(exp) / 16.0f + amax / 262144.0f +
                                    fin * fabsf(got);
                        } else if (c->wire == SCOMM_KV_WIRE_INT4) {
                            bound = amax / 14.0f + fin * fabsf(got);
                        } else {
                            bound = 0.0f;
                        }
                        if (fabsf(got - exp) > bound * 1.0001f) {
                            if (bad++ < 5) {
                                fprintf(stderr, "layer %d token %llu kv %d "
                                        "head %d d %d: got %g expected %g "
                                        "(bound %g)\n", layer,
                                        (unsigned long long)g, kv, h, d, got,
                                        exp, bound);
                            }
                        }
                    }
                }
            }
        }
    }
    free(used);
    return bad;
}

static scomm_kv_opts_t opts_of(const cfg_t *c)
{
    scomm_kv_opts_t o;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_KV_FIELD_CHUNK_SIZE | SCOMM_KV_FIELD_STREAMS |
                   SCOMM_KV_FIELD_PREFETCH_DEPTH | SCOMM_KV_FIELD_WIRE_DTYPE |
                   SCOMM_KV_FIELD_COMPRESSION | SCOMM_KV_FIELD_TOKEN |
                   SCOMM_KV_FIELD_TIMEOUT | SCOMM_KV_FIELD_ZERO_COPY;
    o.chunk_size     = c->chunk;
    o.streams        = c->streams;
    o.prefetch_depth = c->depth;
    o.wire_dtype     = c->wire;
    o.compression    = c->comp;
    o.token          = "kv-test-token";
    o.timeout_ms     = 20000;
    o.zero_copy      = g_cma;
    if (g_ofi) {
        o.field_mask |= SCOMM_KV_FIELD_TRANSPORT;
        o.transport   = SCOMM_KV_TRANSPORT_OFI;
    }
    return o;
}

/* Fork: the child runs child(port, arg) and exits with its result; the
 * parent runs parent(listener, arg, pid). Returns the parent's result,
 * and fails if the child failed. */
typedef int (*child_fn)(int port, void *arg);
typedef int (*parent_fn)(scomm_kv_listener_t *l, void *arg, pid_t pid);

static int run_pair(const scomm_kv_opts_t *lo, child_fn child,
                    parent_fn parent, void *arg, int expect_child)
{
    scomm_kv_listener_t *l;
    pid_t pid;
    int ws, rc;

    ST_ASSERT_OK(scomm_kv_listen("127.0.0.1", 0, lo, &l));
    fflush(NULL);
    pid = fork();
    ST_ASSERT(pid >= 0);
    if (pid == 0) {
        int port = scomm_kv_listener_port(l);

        alarm(55);
        scomm_kv_listener_close(l);
        port = child(port, arg);
        fflush(NULL);
        _exit(port);
    }
    g_lst_closed = 0;
    if (kv_dev.mode != 0) {
        /* Device regions: this process stays off the device (kv_dev.h,
         * invariant 2); the parent's side runs in a second child. */
        pid_t p2 = fork();

        ST_ASSERT(p2 >= 0);
        if (p2 == 0) {
            alarm(55);
            rc = parent(l, arg, pid);
            fflush(NULL);
            _exit(rc);
        }
        scomm_kv_listener_close(l);
        ST_ASSERT(waitpid(p2, &ws, 0) == p2);
        rc = (WIFEXITED(ws) && (WEXITSTATUS(ws) == 0)) ? 0 : 1;
        if (rc != 0) {
            fprintf(stderr, "parent's side ended with status 0x%x\n", ws);
        }
    } else {
        rc = parent(l, arg, pid);
        if (!g_lst_closed) {
            scomm_kv_listener_close(l);
        }
    }
    ST_ASSERT(waitpid(pid, &ws, 0) == pid);
    if (expect_child >= 0) {
        if (!WIFEXITED(ws) || (WEXITSTATUS(ws) != expect_child)) {
            fprintf(stderr, "child ended with status 0x%x\n", ws);
            return 1;
        }
    }
    return rc;
}

/* ---- one transfer, checked ---- */

typedef struct xcase {
    cfg_t c;
    int   corrupt;       /* receiver corrupts this many chunks */
    int   break_stream;  /* sender breaks stream 0 mid-way */
    int   break_rounds;  /* sender breaks every stream, this many times */
    int   break_recv;    /* receiver breaks stream 0 after layer 2 */
    int   stray;         /* receiver sends stray re-dials first */
    int   sync[2];       /* stray: child -> parent "strays done" pipe */
    int   stream_wait;   /* device regions: the receiver waits for every
                            layer on a stream, the sender fills its region
                            on a stream and submits after it */
    char *env_recv;      /* putenv'd by the receiver's process, or NULL */
    char *env_send;      /* ... by the sender's */
    int   no_ipc;        /* path ipc: this case must fall back (staged) */
    int   cut_prefetch;  /* sender cuts its stream once mid-transfer, just
                            before a chunk is staged ahead (device) */
    int   done[2];       /* reconnect cases: child -> parent "streams
                            seen back", before the sender closes */
    int   done_sync;     /* done[] is a pipe */
} xcase_t;

/* Must x's transfer go over CUDA IPC (path ipc)? Both regions on the
 * device, native and uncompressed, the same dtype, order and block size
 * (the copies cannot convert or regroup), no refusal asked for. */
static int ipc_expected(const xcase_t *x)
{
    const cfg_t *c = &x->c;

    return g_ipc && !x->no_ipc && kv_dev.send && kv_dev.recv &&
           (c->wire == 0) && (c->comp == 0) &&
           (c->sl.dtype == c->dl.dtype) && (c->sl.order == c->dl.order) &&
           (c->sl.block_tokens == c->dl.block_tokens);
}

static int strays(scomm_kv_ep_t *ep);

/* A process-wide counter of the public metrics (key: its name and "{"). */
static uint64_t process_metric(const char *key)
{
    char *t, *p;
    size_t n;
    uint64_t v = 0;

    ST_ASSERT_OK(scomm_metrics_text(&t, &n));
    for (p = strstr(t, key); p != NULL; p = strstr(p + 1, key)) {
        if ((p == t) || (p[-1] == '\n')) {
            if (strstr(p, "comm=\"process\"} ") != NULL) {
                v = strtoull(strchr(p, '}') + 2, NULL, 10);
            }
            break;
        }
    }
    scomm_metrics_free(t);
    return v;
}

/* The process's scomm_kv_streams_reconnected_total. */
static uint64_t reconnects(void)
{
    return process_metric("scomm_kv_streams_reconnected_total{");
}

/* The process's scomm_kv_ipc_bytes_total: each side runs in a process of
 * its own, so the bytes this sender wrote over CUDA IPC. */
static uint64_t ipc_metric(void)
{
    return process_metric("scomm_kv_ipc_bytes_total{");
}

/* Wait until the endpoint has n streams alive again; 0 or -1. */
static int wait_streams(scomm_kv_ep_t *ep, int n, double secs)
{
    scomm_kv_stats_t s;
    double t0 = now_s();

    do {
        ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
        if (s.streams == n) {
            return 0;
        }
        usleep(2000);
    } while (now_s() - t0 < secs);
    fprintf(stderr, "%d streams alive after %.1f s, expected %d\n",
            s.streams, secs, n);
    return -1;
}

/* stream_wait, receiver: every layer's wait enqueued on a stream without
 * blocking (the sender submits 100 ms later, after 300 ms of work on its stream), then a copy of the region
 * on that stream, which must see every layer landed. */
static int sw_recv(scomm_kv_ep_t *ep, const xcase_t *x, uint8_t *base,
                   void *reg, int32_t *dtbl, uint32_t ndst)
{
    const cfg_t *c = &x->c;
    int last = c->first_layer + c->num_layers - 1, l;
    void *s;
    double t0, dt;
    long bad;

    ST_ASSERT(kv_dev.recv);
    ST_ASSERT_EQ(kv_dev.stream_create(&s), 0);
    t0 = now_s();
    for (l = c->first_layer; l <= last; l++) {
        ST_ASSERT_OK(scomm_kv_wait_layer_stream(ep, 42, l, s, 20000));
    }
    dt = now_s() - t0;
    /* the host did not block: nothing has landed yet */
    ST_ASSERT_STATUS(scomm_kv_wait_layer(ep, 42, c->first_layer, 1),
                     SCOMM_ERR_TIMED_OUT);
    ST_ASSERT(dt < 0.2);
    ST_ASSERT_EQ(kv_dev.memcpy_async(base, reg, region_bytes(&c->dl), 4, s),
                 0);
    ST_ASSERT_EQ(kv_dev.stream_sync(s), 0);
    t0 = now_s() - t0;
    bad = check_dst(c, base, dtbl, ndst);
    if (bad != 0) {
        fprintf(stderr, "%ld bad elements: the stream went on before the "
                "layers landed\n", bad);
        return 1;
    }
    /* a layer already landed: nothing to enqueue */
    ST_ASSERT_OK(scomm_kv_wait_layer_stream(ep, 42, last, s, 20000));
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 42, 20000));
    printf("stream_wait: %d layer waits enqueued in %.1f ms, the stream's "
           "copy saw them all after %.0f ms\n", c->num_layers, dt * 1e3,
           t0 * 1e3);
    ST_ASSERT_EQ(kv_dev.stream_destroy(s), 0);
    scomm_kv_ep_close(ep);
    ST_ASSERT_EQ(kv_dev.free_(reg), 0);
    free(base);
    free(dtbl);
    return 0;
}

static int xfer_child_recv(int port, void *arg)
{
    xcase_t *x = arg;
    cfg_t *c = &x->c;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;
    scomm_kv_stats_t s;
    uint32_t ndst = (uint32_t)((c->ntok + c->dl.block_tokens - 1) /
                               c->dl.block_tokens);
    int32_t *dtbl = malloc(4 * ndst), id;
    uint8_t *base = malloc(region_bytes(&c->dl));
    void *reg;
    long bad;
    int l;

    if (x->env_recv != NULL) {
        putenv(x->env_recv);
    }
    memset(base, SENTINEL, region_bytes(&c->dl));
    reg = kv_dev_region(kv_dev.recv, base, region_bytes(&c->dl));
    table(dtbl, ndst, c->dl.num_blocks, 777);
    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    if (!g_cma) {
        scomm_kv_debug_no_cma(ep, 1);
    }
    /* a device region by hint here, found by the runtime on the sender */
    ST_ASSERT_OK(scomm_kv_register_mem(ep, &c->dl, reg, region_bytes(&c->dl),
                                       kv_dev.recv ? SCOMM_MEM_CUDA
                                                   : SCOMM_MEM_AUTO, &id));
    ST_ASSERT_EQ(id, 0);
    if (x->stray) {
        char one = 1;

        if (strays(ep) != 0) {
            return 1;
        }
        /* Only now may the sender move data and close: a BYE before the
         * replayed re-dial would refuse it as "endpoint closed", not as
         * stale. */
        ST_ASSERT(write(x->sync[1], &one, 1) == 1);
    }
    scomm_kv_debug_corrupt(ep, x->corrupt);
    if (x->stream_wait) {
        return sw_recv(ep, x, base, reg, dtbl, ndst);
    }
    /* The plan's destination table travels with BEGIN; the receiver only
     * needs the same seed here to check. Layers arrive in order. */
    for (l = c->first_layer; l < c->first_layer + c->num_layers; l++) {
        ST_ASSERT_OK(scomm_kv_wait_layer(ep, 42, l, 20000));
        if (x->break_recv && (l == c->first_layer + 2)) {
            /* Mid-transfer: the last layer has not landed yet. */
            ST_ASSERT_STATUS(scomm_kv_wait_layer(ep, 42, c->first_layer +
                                                 c->num_layers - 1, 1),
                             SCOMM_ERR_TIMED_OUT);
            scomm_kv_debug_break_stream(ep, 0);
        }
    }
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 42, 20000));
    ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
    if (x->break_recv || x->break_rounds || x->cut_prefetch) {
        /* This side re-dialled: the stream came back, data is exact. */
        ST_ASSERT(s.streams_lost >= 1);
        ST_ASSERT(reconnects() >= 1);
        /* The last acknowledgements may have been lost with a stream: stay
         * until the streams are back and the sender's re-sends answered
         * (an endpoint closed at once would leave the sender without
         * them, docs/kv.md). */
        ST_ASSERT_OK(wait_streams(ep, c->streams, 5.0));
        usleep(300000);
        if (x->done_sync) {
            /* the sender closes (BYE: no stream comes back) only now */
            char one = 1;

            ST_ASSERT(write(x->done[1], &one, 1) == 1);
        }
        printf("receiver: %llu streams lost, %llu re-established, %llu "
               "chunks stored\n", (unsigned long long)s.streams_lost,
               (unsigned long long)reconnects(),
               (unsigned long long)s.chunks_recv);
    }
    kv_dev_back(kv_dev.recv, base, reg, region_bytes(&c->dl));
    bad = check_dst(c, base, dtbl, ndst);
    if (bad != 0) {
        fprintf(stderr, "%ld bad elements (%s)\n", bad, kv_dev_name());
        return 1;
    }
    if (x->corrupt > 0) {
        ST_ASSERT_EQ(s.crc_errors, (uint64_t)x->corrupt);
    }
    if (x->stray) {
        /* Not s.streams: the sender may have closed by now (a BYE is a
         * clean close, not a loss). */
        ST_ASSERT_EQ(s.streams_lost, 1);
    }
    if (g_ofi && !kv_dev.send && !kv_dev.recv) {
        /* Every chunk stored came by RMA (re-sent ones counted again). */
        ST_ASSERT_EQ(scomm_kv_debug_rma_chunks(ep), s.chunks_recv);
        ST_ASSERT(s.chunks_recv > 0);
    } else if (g_ofi) {
        /* a device region on either side: over the streams, staged */
        ST_ASSERT_EQ(scomm_kv_debug_rma_chunks(ep), 0);
    }
    if (g_cma && (c->wire == 0) && (c->comp == 0) && !kv_dev.send &&
        !kv_dev.recv) {
        ST_ASSERT(s.same_host == 1);
        ST_ASSERT(s.bytes_zero_copy > 0);
    } else if (ipc_expected(x) && !x->break_recv && !x->break_rounds &&
               !x->cut_prefetch) {
        /* the record: every chunk stored came over CUDA IPC */
        ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep), s.chunks_recv);
        ST_ASSERT(s.chunks_recv > 0);
        ST_ASSERT(s.bytes_zero_copy > 0);
    } else if (ipc_expected(x)) {
        /* re-sends after a lost stream go staged */
        ST_ASSERT(scomm_kv_debug_ipc_chunks(ep) > 0);
    } else {
        ST_ASSERT_EQ(s.bytes_zero_copy, 0);
        ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep), 0);
    }
    /* Closing flushes the last acknowledgements to the sender. */
    scomm_kv_ep_close(ep);
    free(base);
    free(dtbl);
    return 0;
}

/* Submit c's transfer xfer_id: c's layers, source blocks stbl (region
 * src_region) to destination blocks dtbl (the receiver's region 0). */
static scomm_kv_xfer_t *submit_cfg_on(scomm_kv_ep_t *ep, const cfg_t *c,
                                      uint64_t xfer_id, int32_t src_region,
                                      int32_t *stbl, uint32_t nsrc,
                                      int32_t *dtbl, uint32_t ndst,
                                      void *stream)
{
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t p;

    memset(&p, 0, sizeof(p));
    p.xfer_id = xfer_id;
    p.src_region = src_region;
    p.dst_region = 0;
    p.first_layer = c->first_layer;
    p.num_layers = c->num_layers;
    p.num_tokens = c->ntok;
    p.src_blocks = stbl;
    p.num_src_blocks = nsrc;
    p.dst_blocks = dtbl;
    p.num_dst_blocks = ndst;
    ST_ASSERT_OK(scomm_kv_submit_stream(ep, &p, 0, stream, &xf));
    return xf;
}

static scomm_kv_xfer_t *submit_cfg(scomm_kv_ep_t *ep, const cfg_t *c,
                                   uint64_t xfer_id, int32_t src_region,
                                   int32_t *stbl, uint32_t nsrc,
                                   int32_t *dtbl, uint32_t ndst)
{
    return submit_cfg_on(ep, c, xfer_id, src_region, stbl, nsrc, dtbl, ndst,
                         NULL);
}

/* Once chunks move, cut all `streams` streams, up to `rounds` times while
 * xf still runs; each cut seen and every stream back before the next.
 * Returns how many rounds landed mid-transfer. */
static int cut_rounds(scomm_kv_ep_t *ep, scomm_kv_xfer_t *xf, int streams,
                      int rounds)
{
    scomm_kv_stats_t s;
    int32_t done = 0;
    uint64_t lost;
    int r, i;

    do {
        ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
        usleep(500);
    } while (s.chunks_sent < 20);
    for (r = 0; r < rounds; r++) {
        ST_ASSERT_OK(scomm_kv_xfer_test(xf, &done));
        if (done) {
            break;
        }
        ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
        lost = s.streams_lost;
        for (i = 0; i < streams; i++) {
            scomm_kv_debug_break_stream(ep, i);
        }
        do {
            usleep(1000);
            ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
        } while (s.streams_lost < lost + (uint64_t)streams);
        ST_ASSERT_OK(wait_streams(ep, streams, 5.0));
        usleep(2000);
    }
    return r;
}

static int xfer_parent_send(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    xcase_t *x = arg;
    cfg_t *c = &x->c;
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_stats_t s;
    uint32_t nsrc = (uint32_t)((c->ntok + c->sl.block_tokens - 1) /
                               c->sl.block_tokens);
    uint32_t ndst = (uint32_t)((c->ntok + c->dl.block_tokens - 1) /
                               c->dl.block_tokens);
    int32_t *stbl = malloc(4 * nsrc), *dtbl = malloc(4 * ndst), id;
    uint8_t *base = malloc(region_bytes(&c->sl));
    struct pollfd p_wait;
    void *reg, *sstream = NULL;
    char one;

    (void)pid;
    if (x->env_send != NULL) {
        putenv(x->env_send);
    }
    table(stbl, nsrc, c->sl.num_blocks, 123);
    table(dtbl, ndst, c->dl.num_blocks, 777);
    fill_src(c, base, stbl, nsrc);
    if (x->stream_wait) {
        /* filled on a stream after the submit returned: the transfer must
         * read it after that copy (scomm_kv_submit_stream) */
        ST_ASSERT_EQ(kv_dev.malloc_(&reg, region_bytes(&c->sl)), 0);
        ST_ASSERT_EQ(kv_dev.stream_create(&sstream), 0);
    } else {
        reg = kv_dev_region(kv_dev.send, base, region_bytes(&c->sl));
    }
    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, region_bytes(&c->sl),
                                   &id));
    if (x->stray) {
        double t0 = now_s();

        /* The user's listener is not needed for re-dials. */
        scomm_kv_listener_close(lst);
        g_lst_closed = 1;
        /* Send once the peer's one real re-dial came back. */
        do {
            ST_ASSERT(now_s() - t0 < 10.0);
            usleep(2000);
            ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
        } while ((s.streams_lost < 1) || (s.streams != 1));
        p_wait.fd = x->sync[0];
        p_wait.events = POLLIN;
        p_wait.revents = 0;
        ST_ASSERT(poll(&p_wait, 1, 10000) == 1);
        ST_ASSERT(read(x->sync[0], &one, 1) == 1);
    }
    if (x->stream_wait) {
        usleep(100000); /* the receiver's stream waits meanwhile */
        /* 300 ms of "kernel" first: a transfer not ordered after the
         * stream would read the region before the copy fills it (a real
         * runtime has no such kernel: the copy alone orders it there) */
        if (kv_dev.spin != NULL) {
            ST_ASSERT_EQ(kv_dev.spin(sstream, 300), 0);
        }
        ST_ASSERT_EQ(kv_dev.memcpy_async(reg, base, region_bytes(&c->sl), 4,
                                         sstream), 0);
        xf = submit_cfg_on(ep, c, 42, id, stbl, nsrc, dtbl, ndst, sstream);
    } else {
        xf = submit_cfg(ep, c, 42, id, stbl, nsrc, dtbl, ndst);
    }
    if (x->break_stream) {
        usleep(20000);
        scomm_kv_debug_break_stream(ep, 0);
    }
    if (x->break_rounds > 0) {
        int r = cut_rounds(ep, xf, c->streams, x->break_rounds);

        printf("sender: %d rounds of breaks landed mid-transfer\n", r);
        ST_ASSERT(r >= ((x->break_rounds < 2) ? x->break_rounds : 2));
    }
    if (x->cut_prefetch) {
        /* mid-transfer: the hook fires in the TX thread at the next chunk
         * (a transfer lost a chunk to the race hangs in the wait below) */
        do {
            ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
            usleep(500);
        } while (s.chunks_sent < 20);
        scomm_kv_debug_cut_before_prefetch(ep, 1);
    }
    ST_ASSERT_OK(scomm_kv_xfer_wait(xf, 20000));
    scomm_kv_xfer_free(xf);
    ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
    if ((x->break_rounds > 0) || x->break_recv || x->cut_prefetch) {
        ST_ASSERT_OK(wait_streams(ep, c->streams, 5.0));
        ST_ASSERT(s.streams_lost >= (uint64_t)(x->break_rounds *
                                               c->streams));
        ST_ASSERT(reconnects() >= s.streams_lost);
        printf("sender: %llu streams lost, %llu re-established, %llu "
               "chunks re-sent\n", (unsigned long long)s.streams_lost,
               (unsigned long long)reconnects(),
               (unsigned long long)s.chunks_resent);
    }
    if (x->corrupt > 0) {
        ST_ASSERT(s.chunks_resent >= (uint64_t)x->corrupt);
    }
    if (x->break_stream) {
        ST_ASSERT(s.streams_lost >= 1);
    }
    if (x->stray) {
        ST_ASSERT_EQ(s.streams_lost, 1);
        ST_ASSERT_EQ(reconnects(), 1);
    }
    if (x->cut_prefetch) {
        ST_ASSERT(s.streams_lost >= 1); /* the hook fired */
    }
    if (x->done_sync) {
        /* A close right after our last ACK can beat the receiver's look
         * at its re-established streams (under load): wait for it. */
        struct pollfd pd = { x->done[0], POLLIN, 0 };
        char one;

        ST_ASSERT(poll(&pd, 1, 10000) == 1);
        ST_ASSERT(read(x->done[0], &one, 1) == 1);
    }
    if (ipc_expected(x) && !x->break_stream && !x->break_rounds &&
        !x->break_recv && !x->cut_prefetch) {
        /* every chunk written device to device, once */
        ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep), s.chunks_sent);
        ST_ASSERT_EQ(ipc_metric(), s.bytes_raw);
    } else if (!ipc_expected(x)) {
        ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep), 0);
    }
    scomm_kv_ep_close(ep);
    if (sstream != NULL) {
        ST_ASSERT_EQ(kv_dev.stream_destroy(sstream), 0);
    }
    kv_dev_back(kv_dev.send, base, reg, region_bytes(&c->sl));
    free(base);
    free(stbl);
    free(dtbl);
    return 0;
}

static cfg_t base_cfg(void)
{
    cfg_t c;

    memset(&c, 0, sizeof(c));
    c.sl.num_layers = 3;
    c.sl.num_kv_heads = 2;
    c.sl.head_dim = 64;
    c.sl.block_tokens = 16;
    c.sl.num_blocks = 24;
    c.sl.dtype = SCOMM_FLOAT16;
    c.sl.order = SCOMM_KV_ORDER_HEAD_MAJOR;
    c.dl = c.sl;
    c.ntok = 150;
    c.streams = 2;
    c.depth = 2;
    c.chunk = 8192;
    c.first_layer = 0;
    c.num_layers = 3;
    return c;
}

static int run_xcase(xcase_t *x)
{
    scomm_kv_opts_t lo = opts_of(&x->c);

    return run_pair(&lo, xfer_child_recv, xfer_parent_send, x, 0);
}

static const char *dn(scomm_dtype_t d)
{
    return scomm_dtype_name(d);
}

static int case_layouts(void)
{
    static const int bts[][2] = { { 16, 16 }, { 16, 32 }, { 32, 16 },
                                  { 16, 24 } };
    static const scomm_dtype_t dts[][2] = {
        { SCOMM_FLOAT16, SCOMM_FLOAT16 }, { SCOMM_BFLOAT16, SCOMM_BFLOAT16 },
        { SCOMM_FLOAT16, SCOMM_FLOAT32 }, { SCOMM_BFLOAT16, SCOMM_FLOAT16 },
        { SCOMM_FLOAT32, SCOMM_FLOAT32 }
    };
    xcase_t x;
    int so, dord, b, d, n = 0, ran = 0;

    for (so = 0; so < 2; so++) {
        for (dord = 0; dord < 2; dord++) {
            for (b = 0; b < 4; b++) {
                for (d = 0; d < 5; d++) {
                    memset(&x, 0, sizeof(x));
                    x.c = base_cfg();
                    x.c.sl.order = so;
                    x.c.dl.order = dord;
                    x.c.sl.block_tokens = bts[b][0];
                    x.c.dl.block_tokens = bts[b][1];
                    x.c.sl.dtype = dts[d][0];
                    x.c.dl.dtype = dts[d][1];
                    x.c.first_layer = (n % 3 == 0) ? 1 : 0;
                    x.c.num_layers = (n % 3 == 0) ? 2 : 3;
                    x.c.streams = 1 + (n % 3);
                    if (g_ofi && (n % 7 != 0)) {
                        /* ofi: every 7th pair (all orders, block sizes and
                         * dtypes appear): an endpoint costs the provider
                         * ~0.3 s to open. */
                        n++;
                        continue;
                    }
                    if (g_ipc && !ipc_expected(&x) && (n % 10 != 0)) {
                        /* ipc: the pairs it takes, and every 10th other
                         * (staged: mp.kv.dev.device.layouts has them) */
                        n++;
                        continue;
                    }
                    kv_dev_sides(n);
                    ran++;
                    if (run_xcase(&x) != 0) {
                        fprintf(stderr, "FAILED: order %d->%d block %d->%d "
                                "%s->%s\n", so, dord, bts[b][0], bts[b][1],
                                dn(dts[d][0]), dn(dts[d][1]));
                        return 1;
                    }
                    n++;
                }
            }
        }
    }
    printf("layouts: %d pairs exact%s (regions: %s)\n",
           ran,
           g_ofi ? " (ofi: every 7th)"
                 : g_ipc ? " (ipc: those it takes, every 10th other)" : "",
           (kv_dev.mode == 0) ? "host" : (kv_dev.mode == 1) ? "device"
                                       : "mixed");
    return 0;
}

static int case_codecs(void)
{
    static const int wires[] = { SCOMM_KV_WIRE_NATIVE, SCOMM_KV_WIRE_FP8_E4M3,
                                 SCOMM_KV_WIRE_INT4 };
    static const scomm_dtype_t dts[] = { SCOMM_FLOAT16, SCOMM_BFLOAT16,
                                         SCOMM_FLOAT32 };
    xcase_t x;
    int w, cp, d, so, n = 0, skipped = 0;

    for (w = 0; w < 3; w++) {
        for (cp = 0; cp < 3; cp++) {
            if (!scomm_kv_codec_built(cp)) {
                skipped += 6; /* the `nocodec` case checks the refusal */
                continue;
            }
            for (d = 0; d < 3; d++) {
                for (so = 0; so < 2; so++) {
                    memset(&x, 0, sizeof(x));
                    x.c = base_cfg();
                    x.c.wire = wires[w];
                    x.c.comp = cp;
                    x.c.sl.dtype = dts[d];
                    x.c.dl.dtype = dts[(d + so) % 3];
                    x.c.sl.order = so;
                    x.c.dl.block_tokens = so ? 32 : 16;
                    if (g_ofi && ((d != (w + cp) % 3) ||
                                  (so != (w + cp) % 2))) {
                        continue; /* ofi: one dtype pair per encoding */
                    }
                    kv_dev_sides(n);
                    if (run_xcase(&x) != 0) {
                        fprintf(stderr, "FAILED: wire %d compression %d "
                                "%s->%s order %d\n", wires[w], cp,
                                dn(x.c.sl.dtype), dn(x.c.dl.dtype), so);
                        return 1;
                    }
                    n++;
                }
            }
        }
    }
    printf("codecs: %d encoding/compression/dtype pairs within bounds", n);
    if (skipped > 0) {
        printf(" (%d skipped: a compression not built in)", skipped);
    }
    printf("\n");
    return 0;
}

static int case_corrupt(void)
{
    xcase_t x;

    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    x.c.ntok = 400;
    x.c.sl.num_blocks = x.c.dl.num_blocks = 32;
    x.corrupt = 5;
    if (run_xcase(&x) != 0) {
        return 1;
    }
    x.c.dl.block_tokens = 32; /* staging path */
    x.c.comp = SCOMM_KV_COMPRESS_LZ4;
    if (!scomm_kv_codec_built(x.c.comp)) {
        x.c.comp = SCOMM_KV_COMPRESS_NONE;
        printf("corrupt: lz4 not built in: staging path uncompressed\n");
    }
    if (run_xcase(&x) != 0) {
        return 1;
    }
    printf("corrupt: 5 damaged chunks detected and re-sent, data exact\n");
    return 0;
}

static int case_stream_wait(void)
{
    xcase_t x;

    if (!kv_dev.send || !kv_dev.recv) {
        fprintf(stderr, "stream_wait: needs ST_BUF=device\n");
        return 77;
    }
    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    x.c.streams = 1;
    x.stream_wait = 1;
    return run_xcase(&x);
}

/* Same-host CUDA IPC refused, each way: the transfer falls back to the
 * staged path silently, exact, nothing counted as IPC (path ipc). */
static int case_ipc_refused(void)
{
    static const struct {
        const char *what;
        char *env_recv, *env_send;
        int wire, recv_host;
    } rs[] = {
        { "receiver's SCOMM_KV_IPC=0", "SCOMM_KV_IPC=0", NULL, 0, 0 },
        { "sender's SCOMM_KV_IPC=0", NULL, "SCOMM_KV_IPC=0", 0, 0 },
        { "the sender cannot open the handle", NULL, "FAKE_IPC_OPEN_FAIL=1",
          0, 0 },
        { "different hosts", "SCOMM_HOST_ID=host-a", "SCOMM_HOST_ID=host-b",
          0, 0 },
        { "fp8 on the wire", NULL, NULL, SCOMM_KV_WIRE_FP8_E4M3, 0 },
        { "a host receiver", NULL, NULL, 0, 1 },
    };
    xcase_t x;
    size_t k;

    if (!g_ipc || !kv_dev.send || !kv_dev.recv) {
        fprintf(stderr, "ipc_refused: needs path ipc and ST_BUF=device\n");
        return 77;
    }
    for (k = 0; k < SCOMM_ARRAY_SIZE(rs); k++) {
        memset(&x, 0, sizeof(x));
        x.c = base_cfg();
        x.c.wire = rs[k].wire;
        x.env_recv = rs[k].env_recv;
        x.env_send = rs[k].env_send;
        x.no_ipc = 1;
        kv_dev.recv = !rs[k].recv_host;
        if (run_xcase(&x) != 0) {
            fprintf(stderr, "FAILED: %s\n", rs[k].what);
            return 1;
        }
        kv_dev.recv = 1;
        printf("ipc_refused: %s: staged, exact\n", rs[k].what);
    }
    /* and the same pair with nothing refused does go over IPC */
    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    return run_xcase(&x);
}

static int case_break(void)
{
    xcase_t x;

    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    x.c.sl.num_layers = x.c.dl.num_layers = 32;
    x.c.sl.num_blocks = x.c.dl.num_blocks = 256;
    x.c.sl.num_kv_heads = x.c.dl.num_kv_heads = 8;
    x.c.ntok = 4000;
    x.c.first_layer = 0;
    x.c.num_layers = 32;
    x.c.streams = 3;
    x.c.depth = 4;
    x.c.chunk = 64 << 10;
    x.break_stream = 1;
    if (kv_dev.mode != 0) {
        /* device regions: 64 MiB, not 256 (the fake's copies are slow) */
        x.c.sl.num_layers = x.c.dl.num_layers = x.c.num_layers = 8;
    }
    if (run_xcase(&x) != 0) {
        return 1;
    }
    printf("break: one of 3 streams cut mid-transfer, data exact\n");
    return 0;
}

/* ---- peer killed ---- */

static cfg_t big_cfg(int layers, int blocks)
{
    cfg_t c = base_cfg();

    c.sl.num_layers = c.dl.num_layers = layers;
    c.sl.num_kv_heads = c.dl.num_kv_heads = 8;
    c.sl.head_dim = c.dl.head_dim = 128;
    c.sl.num_blocks = c.dl.num_blocks = blocks;
    c.ntok = (uint64_t)blocks * 16;
    c.num_layers = layers;
    c.chunk = 1 << 20;
    c.streams = 2;
    c.depth = 4;
    return c;
}

/* Sender that repeats a large transfer forever (until killed). */
static int kill_child_send(int port, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t p;
    uint32_t n = (uint32_t)(c->ntok / 16), i;
    int32_t *tbl = malloc(4 * n), id;
    uint8_t *base = calloc(1, region_bytes(&c->sl));
    void *reg = kv_dev_region(kv_dev.send, base, region_bytes(&c->sl));
    uint64_t k;

    for (i = 0; i < n; i++) {
        tbl[i] = (int32_t)i;
    }
    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, region_bytes(&c->sl),
                                   &id));
    memset(&p, 0, sizeof(p));
    p.src_region = id;
    p.num_layers = c->num_layers;
    p.num_tokens = c->ntok;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = n;
    for (k = 1;; k++) {
        p.xfer_id = k;
        ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &xf));
        if (scomm_kv_xfer_wait(xf, 20000) != SCOMM_OK) {
            return 3;
        }
        scomm_kv_xfer_free(xf);
    }
    return 0;
}

static int kill_parent_recv(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    uint8_t *base = calloc(1, region_bytes(&c->dl));
    void *reg = kv_dev_region(kv_dev.recv, base, region_bytes(&c->dl));
    scomm_status_t st;
    double t0, dt;
    int32_t id;

    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->dl, reg, region_bytes(&c->dl),
                                   &id));
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 1, 20000));
    ST_ASSERT_OK(scomm_kv_wait_layer(ep, 2, 0, 20000));
    kill(pid, SIGKILL);
    t0 = now_s();
    st = scomm_kv_wait_xfer(ep, 2, 20000);
    if (st == SCOMM_OK) {
        st = scomm_kv_wait_xfer(ep, 3, 20000);
    }
    dt = now_s() - t0;
    printf("receiver: sender killed, wait returned %s after %.3f s: %s\n",
           scomm_status_name(st), dt, scomm_last_error());
    ST_ASSERT_EQ(st, SCOMM_ERR_PEER_LOST);
    ST_ASSERT(dt < 5.0);
    scomm_kv_ep_close(ep);
    kv_dev_back(kv_dev.recv, base, reg, region_bytes(&c->dl));
    free(base);
    return 0;
}

/* Receiver (dialler) with the first layer of transfer 1 landed. */
static scomm_kv_ep_t *recv_first_layer(int port, cfg_t *c)
{
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;
    uint8_t *base = calloc(1, region_bytes(&c->dl));
    void *reg = kv_dev_region(kv_dev.recv, base, region_bytes(&c->dl));
    int32_t id;

    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->dl, reg, region_bytes(&c->dl),
                                   &id));
    ST_ASSERT_OK(scomm_kv_wait_layer(ep, 1, 0, 20000));
    return ep;
}

/* Receiver that dies after the first layer of transfer 1. */
static int kill_child_recv(int port, void *arg)
{
    (void)recv_first_layer(port, arg);
    pause();
    return 0;
}

static int kill_parent_send(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t p;
    uint32_t n = (uint32_t)(c->ntok / 16), i;
    int32_t *tbl = malloc(4 * n), id;
    uint8_t *base = calloc(1, region_bytes(&c->sl));
    void *reg = kv_dev_region(kv_dev.send, base, region_bytes(&c->sl));
    scomm_status_t st;
    int32_t done = 0;
    double t0, dt;

    for (i = 0; i < n; i++) {
        tbl[i] = (int32_t)i;
    }
    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, region_bytes(&c->sl),
                                   &id));
    memset(&p, 0, sizeof(p));
    p.xfer_id = 1;
    p.num_layers = c->num_layers;
    p.num_tokens = c->ntok;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = n;
    /* Slow it down: one stream's worth of chunks in flight, small chunks. */
    ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &xf));
    while (done == 0) {
        ST_ASSERT_OK(scomm_kv_xfer_test(xf, &done));
        if (done) {
            break;
        }
        /* Kill as soon as the receiver has something; its own wait on
         * layer 0 returns first. */
        usleep(2000);
        break;
    }
    usleep(50000);
    kill(pid, SIGKILL);
    t0 = now_s();
    st = scomm_kv_xfer_wait(xf, 20000);
    dt = now_s() - t0;
    printf("sender: receiver killed, wait returned %s after %.3f s: %s\n",
           scomm_status_name(st), dt, scomm_last_error());
    /* It may have finished before the kill; then submit another. */
    if (st == SCOMM_OK) {
        scomm_kv_xfer_free(xf);
        p.xfer_id = 2;
        t0 = now_s();
        ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &xf));
        st = scomm_kv_xfer_wait(xf, 20000);
        dt = now_s() - t0;
    }
    ST_ASSERT_EQ(st, SCOMM_ERR_PEER_LOST);
    ST_ASSERT(dt < 5.0);
    scomm_kv_xfer_free(xf);
    scomm_kv_ep_close(ep);
    kv_dev_back(kv_dev.send, base, reg, region_bytes(&c->sl));
    free(base);
    free(tbl);
    return 0;
}

/* Sizes of the big cases: smaller on device regions (the fake device's
 * copies are memcpy on its stream threads), still mid-transfer when it
 * matters. */
static int dev_size(int host, int dev)
{
    return (kv_dev.mode != 0) ? dev : host;
}

static int case_kill(void)
{
    /* 32 x 128 x 64 KiB = 256 MiB; device regions 2 layers, 16 MiB */
    cfg_t c = big_cfg(dev_size(32, 2), 128);
    scomm_kv_opts_t lo = opts_of(&c);

    if (run_pair(&lo, kill_child_send, kill_parent_recv, &c, -1) != 0) {
        return 1;
    }
    if (run_pair(&lo, kill_child_recv, kill_parent_send, &c, -1) != 0) {
        return 1;
    }
    printf("kill: peer-lost reported on both sides within 5 s\n");
    return 0;
}

/* ---- priority ---- */

static int prio_child_recv(int port, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;
    uint8_t *base = calloc(1, region_bytes(&c->dl));
    void *reg = kv_dev_region(kv_dev.recv, base, region_bytes(&c->dl));
    int32_t id;

    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->dl, reg, region_bytes(&c->dl),
                                   &id));
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 2, 30000));
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 1, 30000));
    sleep(1);
    scomm_kv_ep_close(ep);
    if (kv_dev.recv) {
        /* the device copy holds the sender's bytes (1s) in every block */
        size_t k, nb = region_bytes(&c->dl);

        kv_dev_back(1, base, reg, nb);
        for (k = 0; k < nb; k++) {
            ST_ASSERT_EQ(base[k], 1);
        }
    }
    free(base);
    return 0;
}

static int prio_parent_send(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *big, *hi;
    scomm_kv_plan_t p;
    uint32_t n = (uint32_t)(c->ntok / 16), i;
    int32_t *tbl = malloc(4 * n), *small = malloc(4 * 64), id, d1 = 0,
            d2 = 0;
    uint8_t *base = malloc(region_bytes(&c->sl));
    double t0, tbig = 0, thi = 0;
    void *reg;

    (void)pid;
    memset(base, 1, region_bytes(&c->sl));
    reg = kv_dev_region(kv_dev.send, base, region_bytes(&c->sl));
    for (i = 0; i < n; i++) {
        tbl[i] = (int32_t)i;
    }
    for (i = 0; i < 64; i++) {
        small[i] = (int32_t)(n - 1 - i);
    }
    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, region_bytes(&c->sl),
                                   &id));
    memset(&p, 0, sizeof(p));
    p.xfer_id = 1;
    p.num_layers = c->num_layers;
    p.num_tokens = c->ntok;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = n;
    t0 = now_s();
    ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &big));
    usleep(30000);
    p.xfer_id = 2;
    p.num_tokens = 64 * 16;
    p.src_blocks = p.dst_blocks = small;
    p.num_src_blocks = p.num_dst_blocks = 64;
    ST_ASSERT_OK(scomm_kv_submit(ep, &p, 10, &hi));
    while (!d1 || !d2) {
        if (!d1) {
            ST_ASSERT_OK(scomm_kv_xfer_test(big, &d1));
            tbig = d1 ? now_s() - t0 : 0;
        }
        if (!d2) {
            ST_ASSERT_OK(scomm_kv_xfer_test(hi, &d2));
            thi = d2 ? now_s() - t0 : 0;
            if (d2) {
                ST_ASSERT(!d1); /* the 1 GiB one is still running */
            }
        }
        ST_ASSERT(now_s() - t0 < 40);
        usleep(200);
    }
    printf("priority: %zu MiB transfer done at %.3f s; the %llu MiB "
           "high-priority one submitted at 0.030 s done at %.3f s "
           "(regions: %s)\n", region_bytes(&c->sl) >> 20, tbig,
           (unsigned long long)(64ull * c->num_layers *
                                scomm_kv_block_bytes(&c->sl) >> 20), thi,
           kv_dev_name());
    ST_ASSERT(thi < tbig);
    scomm_kv_xfer_free(big);
    scomm_kv_xfer_free(hi);
    scomm_kv_ep_close(ep);
    kv_dev_back(kv_dev.send, base, reg, region_bytes(&c->sl));
    free(base);
    free(tbl);
    free(small);
    return 0;
}

static int case_priority(void)
{
    /* 32 x 512 x 64 KiB = 1 GiB; device regions 8 x 256 blocks, 128 MiB
     * (and 32 MiB of high priority) */
    cfg_t c = big_cfg(dev_size(32, 8), dev_size(512, 256));
    scomm_kv_opts_t lo = opts_of(&c);

    return run_pair(&lo, prio_child_recv, prio_parent_send, &c, 0);
}

/* ---- metadata mismatch ---- */

/* Receiver of a transfer the two sides must refuse: region dl, options
 * o; its layer wait must return want. */
static int refused_recv(int port, const scomm_kv_opts_t *o,
                        const scomm_kv_layout_t *dl, scomm_status_t want)
{
    scomm_kv_ep_t *ep;
    uint8_t *base = calloc(1, region_bytes(dl));
    int32_t id;

    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, o, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, dl, base, region_bytes(dl), &id));
    ST_ASSERT_STATUS(scomm_kv_wait_layer(ep, 42, 0, 20000), want);
    printf("receiver: %s\n", scomm_last_error());
    sleep(1);
    scomm_kv_ep_close(ep);
    free(base);
    return 0;
}

/* Its sender: 10 blocks of layer 0 from region c->sl; the wait must
 * return want. */
static int refused_send(scomm_kv_listener_t *lst, const cfg_t *c,
                        scomm_status_t want)
{
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t p;
    int32_t tbl[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, id;
    uint8_t *base = calloc(1, region_bytes(&c->sl));

    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, base, region_bytes(&c->sl),
                                   &id));
    memset(&p, 0, sizeof(p));
    p.xfer_id = 42;
    p.num_layers = 1;
    p.num_tokens = 160;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = 10;
    ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &xf));
    ST_ASSERT_STATUS(scomm_kv_xfer_wait(xf, 20000), want);
    printf("sender: %s\n", scomm_last_error());
    scomm_kv_xfer_free(xf);
    scomm_kv_ep_close(ep);
    free(base);
    return 0;
}

static int mm_child_recv(int port, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_layout_t dl = c->dl;

    dl.head_dim = 32; /* the sender has 64 */
    return refused_recv(port, &o, &dl, SCOMM_ERR_MISMATCH);
}

static int mm_parent_send(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    (void)pid;
    return refused_send(lst, arg, SCOMM_ERR_MISMATCH);
}

static int case_mismatch(void)
{
    cfg_t c = base_cfg();
    scomm_kv_opts_t lo = opts_of(&c);

    return run_pair(&lo, mm_child_recv, mm_parent_send, &c, 0);
}

/* ---- ofi sender, tcp receiver: refused as unsupported ---- */

static int mx_child_recv(int port, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);

    o.transport = SCOMM_KV_TRANSPORT_TCP; /* the sender's is ofi */
    if (refused_recv(port, &o, &c->dl, SCOMM_ERR_UNSUPPORTED) != 0) {
        return 1;
    }
    ST_ASSERT(strstr(scomm_last_error(), "transport is tcp") != NULL);
    return 0;
}

static int mx_parent_send(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    (void)pid;
    return refused_send(lst, arg, SCOMM_ERR_UNSUPPORTED);
}

/* The sender writes by RMA, the receiver has no libfabric endpoint: the
 * transfer is refused on both sides, naming why. */
static int case_mixed(void)
{
    cfg_t c = base_cfg();
    scomm_kv_opts_t lo = opts_of(&c);

    if (!g_ofi) {
        printf("SKIP: mixed is an ofi case (test_kv mixed ofi)\n");
        return 77;
    }
    return run_pair(&lo, mx_child_recv, mx_parent_send, &c, 0);
}

/* ---- a compression that is not built in ---- */

/* 1 if the thread's last error names codec, the package and "not built
 * in". */
static int names_package(const char *codec, const char *pkg)
{
    const char *e = scomm_last_error();

    if ((strstr(e, codec) == NULL) || (strstr(e, pkg) == NULL) ||
        (strstr(e, "not built into") == NULL)) {
        fprintf(stderr, "error does not name %s and %s: %s\n", codec, pkg,
                e);
        return 0;
    }
    return 1;
}

/* The two sides' regions: 0 the destination (sentinel), 1 the source. */
typedef struct nc_side {
    uint32_t nsrc, ndst;
    int32_t *stbl, *dtbl, src_id;
    uint8_t *dst, *src;
} nc_side_t;

static void nc_regions(scomm_kv_ep_t *ep, const cfg_t *c, nc_side_t *s)
{
    int32_t id;

    s->nsrc = (uint32_t)((c->ntok + c->sl.block_tokens - 1) /
                         c->sl.block_tokens);
    s->ndst = (uint32_t)((c->ntok + c->dl.block_tokens - 1) /
                         c->dl.block_tokens);
    s->stbl = malloc(4 * s->nsrc);
    s->dtbl = malloc(4 * s->ndst);
    s->dst  = malloc(region_bytes(&c->dl));
    s->src  = malloc(region_bytes(&c->sl));
    table(s->stbl, s->nsrc, c->sl.num_blocks, 123);
    table(s->dtbl, s->ndst, c->dl.num_blocks, 777);
    memset(s->dst, SENTINEL, region_bytes(&c->dl));
    fill_src(c, s->src, s->stbl, s->nsrc);
    ST_ASSERT_OK(scomm_kv_register(ep, &c->dl, s->dst, region_bytes(&c->dl),
                                   &id));
    ST_ASSERT_EQ(id, 0);
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, s->src, region_bytes(&c->sl),
                                   &s->src_id));
}

static void nc_free(nc_side_t *s)
{
    free(s->stbl);
    free(s->dtbl);
    free(s->dst);
    free(s->src);
}

static const char *codec_pkg(int comp, const char **codec)
{
    *codec = (comp == SCOMM_KV_COMPRESS_LZ4) ? "lz4" : "zstd";
    return (comp == SCOMM_KV_COMPRESS_LZ4) ? "liblz4-dev" : "libzstd-dev";
}

/* Receiver of the compressed transfer 42 (its codecs switched off by the
 * test hook, or not built in), then sender of the native transfer 43. */
static int nc_child(int port, void *arg)
{
    const cfg_t *pc = arg;
    cfg_t c = *pc;
    scomm_kv_opts_t o;
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    nc_side_t s;
    const char *codec, *pkg = codec_pkg(pc->comp, &codec);
    size_t k;

    c.comp = SCOMM_KV_COMPRESS_NONE;
    o = opts_of(&c);
    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    if (!g_cma) {
        scomm_kv_debug_no_cma(ep, 1);
    }
    /* Before the regions: the sender's BEGIN waits for region 0. */
    scomm_kv_debug_no_codecs(ep, 1);
    nc_regions(ep, &c, &s);
    if (scomm_kv_codec_built(pc->comp)) {
        ST_ASSERT_STATUS(scomm_kv_wait_xfer(ep, 42, 20000),
                         SCOMM_ERR_UNSUPPORTED);
        ST_ASSERT(names_package(codec, pkg));
        printf("receiver: %s\n", scomm_last_error());
        for (k = 0; k < region_bytes(&c.dl); k++) {
            ST_ASSERT_EQ(s.dst[k], SENTINEL); /* nothing of it landed */
        }
    }
    /* The endpoint goes on: a native transfer the other way. */
    xf = submit_cfg(ep, &c, 43, s.src_id, s.stbl, s.nsrc, s.dtbl, s.ndst);
    ST_ASSERT_OK(scomm_kv_xfer_wait(xf, 20000));
    scomm_kv_xfer_free(xf);
    scomm_kv_ep_close(ep);
    nc_free(&s);
    return 0;
}

/* Sender with compression c->comp: refused at submit when this library
 * lacks it, refused by the receiver when that one does; then receiver of
 * the native transfer 43, checked. */
static int nc_parent(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    const cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf = NULL;
    nc_side_t s;
    const char *codec, *pkg = codec_pkg(c->comp, &codec);
    long bad;

    (void)pid;
    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    nc_regions(ep, c, &s);
    scomm_kv_debug_no_codecs(ep, 1);
    ST_ASSERT_STATUS(scomm_kv_submit(ep, &(scomm_kv_plan_t){
                         .xfer_id = 41, .src_region = s.src_id,
                         .num_layers = c->num_layers, .num_tokens = c->ntok,
                         .src_blocks = s.stbl, .num_src_blocks = s.nsrc,
                         .dst_blocks = s.dtbl, .num_dst_blocks = s.ndst },
                         0, &xf), SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(xf == NULL);
    ST_ASSERT(names_package(codec, pkg));
    printf("sender: %s\n", scomm_last_error());
    scomm_kv_debug_no_codecs(ep, 0);
    if (scomm_kv_codec_built(c->comp)) {
        xf = submit_cfg(ep, c, 42, s.src_id, s.stbl, s.nsrc, s.dtbl, s.ndst);
        ST_ASSERT_STATUS(scomm_kv_xfer_wait(xf, 20000),
                         SCOMM_ERR_UNSUPPORTED);
        ST_ASSERT(names_package(codec, pkg));
        ST_ASSERT(strstr(scomm_last_error(), "by the receiver") != NULL);
        printf("sender: %s\n", scomm_last_error());
        scomm_kv_xfer_free(xf);
    } else {
        printf("sender: %s not built in: refused at submit only\n", codec);
    }
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 43, 20000));
    bad = check_dst(c, s.dst, s.dtbl, s.ndst);
    if (bad != 0) {
        fprintf(stderr, "%ld bad elements\n", bad);
        return 1;
    }
    scomm_kv_ep_close(ep);
    nc_free(&s);
    return 0;
}

static int case_nocodec(void)
{
    static const int comps[] = { SCOMM_KV_COMPRESS_LZ4,
                                 SCOMM_KV_COMPRESS_ZSTD };
    scomm_kv_opts_t lo;
    cfg_t c;
    int i;

    for (i = 0; i < 2; i++) {
        c = base_cfg();
        c.comp = comps[i];
        lo = opts_of(&c);
        if (run_pair(&lo, nc_child, nc_parent, &c, 0) != 0) {
            return 1;
        }
    }
    printf("nocodec: lz4 and zstd refused as unsupported (at submit, and "
           "by the receiver where the sender has them), naming the package; "
           "the endpoints went on\n");
    return 0;
}

/* ---- wrong token ---- */

static int tok_child(int port, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;

    o.token = "not-the-token";
    ST_ASSERT_STATUS(scomm_kv_connect("127.0.0.1", port, &o, &ep),
                     SCOMM_ERR_ACCESS_DENIED);
    return 0;
}

static int tok_parent(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    scomm_kv_ep_t *ep;

    (void)arg;
    (void)pid;
    ST_ASSERT_STATUS(scomm_kv_accept(lst, 1500, &ep), SCOMM_ERR_TIMED_OUT);
    return 0;
}

static int case_token(void)
{
    cfg_t c = base_cfg();
    scomm_kv_opts_t lo = opts_of(&c);

    return run_pair(&lo, tok_child, tok_parent, &c, 0);
}

/* ---- sender memory bound ---- */

static long status_kb(const char *key)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while ((f != NULL) && (fgets(line, sizeof(line), f) != NULL)) {
        if (strncmp(line, key, strlen(key)) == 0) {
            v = atol(line + strlen(key) + 1);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

static int rss_child_send(int port, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t p;
    uint32_t n = (uint32_t)(c->ntok / 16), i;
    int32_t *tbl = malloc(4 * n), id;
    size_t rb = region_bytes(&c->sl);
    uint8_t *base = malloc(rb);
    void *reg;
    long before, peak, extra, bound;
    float *f;
    size_t k;

    for (i = 0; i < n; i++) {
        tbl[i] = (int32_t)i;
    }
    /* Compressible-ish but non-trivial values (float16). */
    f = malloc(4096 * sizeof(float));
    for (k = 0; k < 4096; k++) {
        f[k] = kv_ref_val(0, k, 0, 0, 0);
    }
    for (k = 0; k + 8192 <= rb; k += 8192) {
        scomm_cvt_from_f32(base + k, f, 4096, SCOMM_FLOAT16);
    }
    free(f);
    /* a device region: its fake memory and the host image are in the RSS
     * before; the pinned staging chunks come after and must fit */
    reg = kv_dev_region(kv_dev.send, base, rb);
    before = status_kb("VmRSS:");
    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    scomm_kv_debug_no_cma(ep, 1);
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, rb, &id));
    memset(&p, 0, sizeof(p));
    p.num_layers = c->num_layers;
    p.num_tokens = c->ntok;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = n;
    p.xfer_id = 1;
    ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &xf));
    ST_ASSERT_OK(scomm_kv_xfer_wait(xf, 30000));
    scomm_kv_xfer_free(xf);
    peak  = status_kb("VmHWM:");
    extra = peak - before;
    bound = (long)(c->chunk * (uint64_t)c->depth * (uint64_t)c->streams /
                   1024) + 8192;
    printf("rss: region %zu MiB (%s), wire %d, compression %d: sender peak "
           "RSS above the region %ld KiB, bound chunk x depth x streams + 8 "
           "MiB = %ld KiB\n", rb >> 20, kv_dev.send ? "device" : "host",
           c->wire, c->comp, extra, bound);
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    /* A sanitizer's shadow memory and allocator counts in VmHWM: the bound
     * is checked in the normal build only. */
    printf("rss: sanitizer build: bound not checked\n");
#else
    ST_ASSERT(extra <= bound);
#endif
    scomm_kv_ep_close(ep);
    return 0;
}

static int rss_parent_recv(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    uint8_t *base = calloc(1, region_bytes(&c->dl));
    void *reg = kv_dev_region(kv_dev.recv, base, region_bytes(&c->dl));
    int32_t id;

    (void)pid;
    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->dl, reg, region_bytes(&c->dl),
                                   &id));
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 1, 30000));
    sleep(1);
    scomm_kv_ep_close(ep);
    kv_dev_back(kv_dev.recv, base, reg, region_bytes(&c->dl));
    free(base);
    return 0;
}

static int case_rss(void)
{
    static const int modes[][2] = {
        { SCOMM_KV_WIRE_NATIVE, SCOMM_KV_COMPRESS_NONE },
        { SCOMM_KV_WIRE_FP8_E4M3, SCOMM_KV_COMPRESS_ZSTD },
        { SCOMM_KV_WIRE_NATIVE, SCOMM_KV_COMPRESS_LZ4 }
    };
    cfg_t c = big_cfg(dev_size(32, 2), 128); /* 256 MiB; device 16 */
    scomm_kv_opts_t lo;
    int m;

    for (m = 0; m < 3; m++) {
        c.wire = modes[m][0];
        c.comp = modes[m][1];
        if (!scomm_kv_codec_built(c.comp)) {
            printf("rss: compression %d not built in: skipped\n", c.comp);
            continue;
        }
        c.chunk = 2 << 20;
        c.depth = 2;
        c.streams = 2;
        lo = opts_of(&c);
        if (run_pair(&lo, rss_child_send, rss_parent_recv, &c, 0) != 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- reconnection ---- */

/* A transfer of 32 layers x 250 blocks of 32 KiB, a block per chunk, one
 * unacknowledged chunk per stream: long enough (thousands of round trips)
 * for breaks to land mid-transfer. */
static cfg_t rc_cfg(int streams)
{
    cfg_t c = base_cfg();

    c.sl.num_layers = c.dl.num_layers = dev_size(32, 2);
    c.sl.num_blocks = c.dl.num_blocks = 256;
    c.sl.num_kv_heads = c.dl.num_kv_heads = 8;
    c.ntok = 4000;
    c.num_layers = c.sl.num_layers;
    c.streams = streams;
    c.depth = 1;
    c.chunk = 32 << 10;
    return c;
}

/* rc_cfg(streams) with breaks: rounds of every stream cut by the sender
 * (accepting side), or (rounds 0) one cut by the receiver (dialler). */
static int rc_case(int streams, int rounds, const char *what)
{
    xcase_t x;

    memset(&x, 0, sizeof(x));
    x.c = rc_cfg(streams);
    x.break_rounds = rounds;
    x.break_recv = (rounds == 0);
    ST_ASSERT(pipe(x.done) == 0);
    x.done_sync = 1;
    if (run_xcase(&x) != 0) {
        return 1;
    }
    printf("%s, re-dialled, data exact\n", what);
    return 0;
}

/* Pair with the roles swapped: the child listens and accepts, the parent
 * connects (to test the dialler's side of a killed peer). */
typedef int (*rchild_fn)(scomm_kv_listener_t *l, void *arg);
typedef int (*rparent_fn)(int port, void *arg, pid_t pid);

static int run_pair_rev(const scomm_kv_opts_t *lo, rchild_fn child,
                        rparent_fn parent, void *arg)
{
    scomm_kv_listener_t *l;
    int pfd[2], port = 0, ws, rc;
    pid_t pid;

    ST_ASSERT(pipe(pfd) == 0);
    fflush(NULL);
    pid = fork();
    ST_ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(55);
        close(pfd[0]);
        ST_ASSERT_OK(scomm_kv_listen("127.0.0.1", 0, lo, &l));
        port = scomm_kv_listener_port(l);
        ST_ASSERT(write(pfd[1], &port, sizeof(port)) == sizeof(port));
        rc = child(l, arg);
        fflush(NULL);
        _exit(rc);
    }
    close(pfd[1]);
    ST_ASSERT(read(pfd[0], &port, sizeof(port)) == sizeof(port));
    close(pfd[0]);
    if (kv_dev.mode != 0) {
        /* this process stays off the device (kv_dev.h, invariant 2) */
        pid_t p2 = fork();

        ST_ASSERT(p2 >= 0);
        if (p2 == 0) {
            alarm(55);
            rc = parent(port, arg, pid);
            fflush(NULL);
            _exit(rc);
        }
        ST_ASSERT(waitpid(p2, &ws, 0) == p2);
        rc = (WIFEXITED(ws) && (WEXITSTATUS(ws) == 0)) ? 0 : 1;
    } else {
        rc = parent(port, arg, pid);
    }
    ST_ASSERT(waitpid(pid, &ws, 0) == pid);
    return rc;
}

/* Receiver (dialler) that cuts its only stream after layer 0, never
 * re-dials it, and waits to be killed. */
static int rk_child_recv(int port, void *arg)
{
    scomm_kv_ep_t *ep = recv_first_layer(port, arg);

    scomm_kv_debug_hold_reconnect(ep, 1);
    scomm_kv_debug_break_stream(ep, 0);
    pause();
    return 0;
}

/* Submit transfer 1 of c on ep; returns the request. */
static scomm_kv_xfer_t *rk_submit(scomm_kv_ep_t *ep, cfg_t *c, int32_t *tbl)
{
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t p;
    uint32_t n = (uint32_t)(c->ntok / 16), i;

    for (i = 0; i < n; i++) {
        tbl[i] = (int32_t)i;
    }
    memset(&p, 0, sizeof(p));
    p.xfer_id = 1;
    p.num_layers = c->num_layers;
    p.num_tokens = c->ntok;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = n;
    ST_ASSERT_OK(scomm_kv_submit(ep, &p, 0, &xf));
    return xf;
}

/* The only stream is down and being waited for: the transfer waits (does
 * not fail) for a while, then the peer is killed: PEER_LOST within 5 s. */
static int rk_down_then_kill(scomm_kv_ep_t *ep, scomm_kv_xfer_t *xf,
                             pid_t pid, const char *who)
{
    scomm_status_t st;
    int32_t done = 0;
    double t0, dt;

    ST_ASSERT_OK(wait_streams(ep, 0, 5.0));
    usleep(300000);
    ST_ASSERT_OK(scomm_kv_xfer_test(xf, &done));
    ST_ASSERT(!done);
    kill(pid, SIGKILL);
    t0 = now_s();
    st = scomm_kv_xfer_wait(xf, 20000);
    dt = now_s() - t0;
    printf("%s: peer killed while its stream was down, wait returned %s "
           "after %.3f s: %s\n", who, scomm_status_name(st), dt,
           scomm_last_error());
    ST_ASSERT_EQ(st, SCOMM_ERR_PEER_LOST);
    ST_ASSERT(dt < 5.0);
    return 0;
}

static int rk_parent_send(scomm_kv_listener_t *lst, void *arg, pid_t pid)
{
    cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    int32_t *tbl = malloc(4 * (c->ntok / 16)), id;
    uint8_t *base = calloc(1, region_bytes(&c->sl));
    void *reg = kv_dev_region(kv_dev.send, base, region_bytes(&c->sl));

    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, region_bytes(&c->sl),
                                   &id));
    xf = rk_submit(ep, c, tbl);
    ST_ASSERT_OK(rk_down_then_kill(ep, xf, pid, "accepting sender"));
    scomm_kv_xfer_free(xf);
    scomm_kv_ep_close(ep);
    kv_dev_back(kv_dev.send, base, reg, region_bytes(&c->sl));
    free(base);
    free(tbl);
    return 0;
}

/* Accepting receiver for the swapped pair: waits to be killed. */
static int rk_child_accept(scomm_kv_listener_t *lst, void *arg)
{
    cfg_t *c = arg;
    scomm_kv_ep_t *ep;
    uint8_t *base = calloc(1, region_bytes(&c->dl));
    void *reg = kv_dev_region(kv_dev.recv, base, region_bytes(&c->dl));
    int32_t id;

    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    scomm_kv_listener_close(lst);
    ST_ASSERT_OK(scomm_kv_register(ep, &c->dl, reg, region_bytes(&c->dl),
                                   &id));
    pause();
    return 0;
}

/* Dialling sender: cuts its stream and holds the re-dial, the peer is
 * killed, then the re-dial is let go and finds nobody. */
static int rk_parent_dial(int port, void *arg, pid_t pid)
{
    cfg_t *c = arg;
    scomm_kv_opts_t o = opts_of(c);
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_stats_t s;
    scomm_status_t st;
    int32_t *tbl = malloc(4 * (c->ntok / 16)), id, done = 0;
    uint8_t *base = calloc(1, region_bytes(&c->sl));
    void *reg = kv_dev_region(kv_dev.send, base, region_bytes(&c->sl));
    double t0, dt;

    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &c->sl, reg, region_bytes(&c->sl),
                                   &id));
    xf = rk_submit(ep, c, tbl);
    do {
        ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
        usleep(500);
    } while (s.chunks_sent < 20);
    scomm_kv_debug_hold_reconnect(ep, 1);
    scomm_kv_debug_break_stream(ep, 0);
    ST_ASSERT_OK(wait_streams(ep, 0, 5.0));
    usleep(300000);
    ST_ASSERT_OK(scomm_kv_xfer_test(xf, &done));
    ST_ASSERT(!done);
    kill(pid, SIGKILL);
    t0 = now_s();
    usleep(50000);
    scomm_kv_debug_hold_reconnect(ep, 0);
    st = scomm_kv_xfer_wait(xf, 20000);
    dt = now_s() - t0;
    printf("dialling sender: peer killed while its stream was down, wait "
           "returned %s after %.3f s: %s\n", scomm_status_name(st), dt,
           scomm_last_error());
    ST_ASSERT_EQ(st, SCOMM_ERR_PEER_LOST);
    ST_ASSERT(dt < 5.0);
    scomm_kv_xfer_free(xf);
    scomm_kv_ep_close(ep);
    kv_dev_back(kv_dev.send, base, reg, region_bytes(&c->sl));
    free(base);
    free(tbl);
    return 0;
}

static int case_reconnect_kill(void)
{
    cfg_t c = rc_cfg(1);
    scomm_kv_opts_t lo = opts_of(&c);

    if (run_pair(&lo, rk_child_recv, rk_parent_send, &c, -1) != 0) {
        return 1;
    }
    if (run_pair_rev(&lo, rk_child_accept, rk_parent_dial, &c) != 0) {
        return 1;
    }
    printf("reconnect.kill: peer killed during the reconnect window, "
           "peer-lost within 5 s on either side\n");
    return 0;
}

/* One hand-made re-dial to 127.0.0.1:port; the reply's frame type, or 0
 * if the connection was closed without one. */
static int stray(int port, const char *token, uint64_t session,
                 uint32_t stream, uint32_t nstreams, uint32_t epoch,
                 int garbage)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    struct sockaddr_in a;
    scomm_kv_hello_t hello;
    scomm_kv_hdr_t h;
    struct pollfd p;
    size_t got = 0;
    ssize_t r;
    int fd;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    ST_ASSERT(fd >= 0);
    ST_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    memset(&h, 0, sizeof(h));
    h.magic = garbage ? 0x12345678u : SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.type = SCOMM_KV_T_HELLO;
    h.len = SCOMM_KV_HELLO_SIZE;
    scomm_kv_hdr_encode(&h, hb);
    memset(&hello, 0, sizeof(hello));
    snprintf(hello.token, sizeof(hello.token), "%s", token);
    hello.session = session;
    hello.stream = stream;
    hello.nstreams = nstreams;
    hello.pid = (int32_t)getpid();
    hello.flags = (epoch != 0) ? SCOMM_KV_HELLO_RESUME : 0;
    hello.epoch = epoch;
    scomm_kv_hello_encode(&hello, pl);
    /* The far side may close as soon as it read a bad header. */
    if ((write(fd, hb, sizeof(hb)) != (ssize_t)sizeof(hb)) ||
        (write(fd, pl, sizeof(pl)) != (ssize_t)sizeof(pl))) {
        close(fd);
        return 0;
    }
    while (got < sizeof(hb)) {
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        ST_ASSERT(poll(&p, 1, 5000) == 1);
        r = read(fd, hb + got, sizeof(hb) - got);
        if (r <= 0) {
            close(fd);
            return 0;
        }
        got += (size_t)r;
    }
    close(fd);
    scomm_kv_hdr_decode(hb, &h);
    return h.type;
}

/* Receiver side of reconnect.stray, on a fresh endpoint: stray re-dials
 * (each refused, none disturbs the endpoint), then one real loss, taken
 * back, whose re-dial replayed is refused as stale. */
static int strays(scomm_kv_ep_t *ep)
{
    const char *tok = "kv-test-token";
    scomm_kv_stats_t s;
    uint64_t session;
    double t0;
    int rport;

    rport = scomm_kv_debug_redial_port(ep, &session);
    ST_ASSERT(rport > 0);
    ST_ASSERT_EQ(stray(rport, "wrong-token", session, 0, 1, 1, 0),
                 SCOMM_KV_T_HELLO_NO);
    ST_ASSERT_EQ(stray(rport, tok, session ^ 0x10000ull, 0, 1, 1, 0),
                 SCOMM_KV_T_HELLO_NO);
    ST_ASSERT_EQ(stray(rport, tok, session, 0, 1, 0, 0),
                 SCOMM_KV_T_HELLO_NO);
    ST_ASSERT_EQ(stray(rport, tok, session, 0, 2, 1, 0),
                 SCOMM_KV_T_HELLO_NO);
    ST_ASSERT_EQ(stray(rport, tok, session, 0, 1, 1, 1), 0);
    ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
    ST_ASSERT_EQ(s.streams_lost, 0);
    ST_ASSERT_EQ(s.streams, 1);
    scomm_kv_debug_break_stream(ep, 0);
    t0 = now_s();
    while (reconnects() < 1) {
        ST_ASSERT(now_s() - t0 < 5.0);
        usleep(2000);
    }
    ST_ASSERT_OK(wait_streams(ep, 1, 5.0));
    ST_ASSERT_EQ(stray(rport, tok, session, 0, 1, 1, 0),
                 SCOMM_KV_T_HELLO_NO);
    printf("reconnect.stray: wrong token, wrong session, not a re-dial, "
           "wrong stream count, garbage and a replayed re-dial refused; "
           "one real re-dial taken\n");
    return 0;
}

static int case_reconnect_stray(void)
{
    xcase_t x;
    scomm_kv_opts_t lo;

    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    x.c.streams = 1;
    x.stray = 1;
    ST_ASSERT(pipe(x.sync) == 0);
    lo = opts_of(&x.c);
    if (run_pair(&lo, xfer_child_recv, xfer_parent_send, &x, 0) != 0) {
        return 1;
    }
    printf("reconnect.stray: the endpoint undisturbed, data exact\n");
    return 0;
}

/* ---- the communicator form ---- */

/* Four ranks of one communicator: pairs (0,1) and (2,3) each make an
 * endpoint with scomm_kv_connect_comm (the lower rank listens on its
 * bootstrap address with a fresh token). Rank 0 sends to 1, rank 3 to 2
 * (so both the listening and the dialling side send), and rank 3 cuts
 * every stream once mid-transfer: the dialler re-dials, data exact. */
static int comm_rank(int rank, int size, void *arg)
{
    cfg_t c = rc_cfg(2);
    scomm_kv_opts_t o = opts_of(&c);
    scomm_comm_t *comm = NULL;
    scomm_kv_ep_t *ep = NULL;
    scomm_kv_xfer_t *xf;
    scomm_kv_stats_t s;
    int peer = rank ^ 1, sender = (rank == 0) || (rank == 3);
    uint32_t nsrc = (uint32_t)((c.ntok + c.sl.block_tokens - 1) /
                               c.sl.block_tokens);
    uint32_t ndst = (uint32_t)((c.ntok + c.dl.block_tokens - 1) /
                               c.dl.block_tokens);
    int32_t *stbl = malloc(4 * nsrc), *dtbl = malloc(4 * ndst), id;
    size_t rb = region_bytes(sender ? &c.sl : &c.dl);
    uint8_t *base = malloc(rb);
    int l, cut = 0;

    (void)arg;
    ST_ASSERT((stbl != NULL) && (dtbl != NULL) && (base != NULL));
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_EQ(scomm_size(comm), size);
    ST_ASSERT_STATUS(scomm_kv_connect_comm(comm, rank, &o, &ep),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_kv_connect_comm(comm, size, &o, &ep),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_kv_connect_comm(NULL, peer, &o, &ep),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_OK(scomm_kv_connect_comm(comm, peer, &o, &ep));
    if (!g_cma) {
        scomm_kv_debug_no_cma(ep, 1);
    }
    table(stbl, nsrc, c.sl.num_blocks, 123);
    table(dtbl, ndst, c.dl.num_blocks, 777);
    if (sender) {
        fill_src(&c, base, stbl, nsrc);
        ST_ASSERT_OK(scomm_kv_register(ep, &c.sl, base, rb, &id));
    } else {
        memset(base, SENTINEL, rb);
        ST_ASSERT_OK(scomm_kv_register(ep, &c.dl, base, rb, &id));
    }
    /* Both regions registered before any data moves. */
    ST_ASSERT_OK(scomm_barrier(comm));
    if (sender) {
        xf = submit_cfg(ep, &c, 7, id, stbl, nsrc, dtbl, ndst);
        if (rank == 3) {
            cut = cut_rounds(ep, xf, c.streams, 1);
        }
        ST_ASSERT_OK(scomm_kv_xfer_wait(xf, 20000));
        scomm_kv_xfer_free(xf);
    } else {
        for (l = c.first_layer; l < c.first_layer + c.num_layers; l++) {
            ST_ASSERT_OK(scomm_kv_wait_layer(ep, 7, l, 20000));
        }
        ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 7, 20000));
        ST_ASSERT_EQ(check_dst(&c, base, dtbl, ndst), 0);
    }
    ST_ASSERT_OK(scomm_kv_ep_stats(ep, &s));
    /* 250 MiB in 32 KiB chunks, one in flight per stream: still moving
     * after 20 chunks. */
    ST_ASSERT(cut || (rank != 3));
    if (cut) {
        ST_ASSERT(reconnects() >= (uint64_t)c.streams);
        printf("rank 3: every stream cut mid-transfer, re-dialled over the "
               "communicator's addresses\n");
    } else if (!sender) {
        ST_ASSERT(s.chunks_recv > 0);
    }
    /* The receiver's acknowledgements are in before anyone closes. */
    ST_ASSERT_OK(scomm_barrier(comm));
    scomm_kv_ep_close(ep);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    free(base);
    free(stbl);
    free(dtbl);
    return 0;
}

static int case_comm(void)
{
    if (st_run_ranks(4, comm_rank, NULL, 60) != 0) {
        return 1;
    }
    printf("comm: two pairs over scomm_kv_connect_comm, both directions, "
           "one with every stream cut, data exact\n");
    return 0;
}

static int case_reconnect_one(void)
{
    return rc_case(1, 1, "reconnect.one: the only stream cut by the "
                   "accepting side mid-transfer");
}

/* The only stream cut (and its loss handled) just before the TX thread
 * stages the next chunk ahead: a device source only (kv_send.c
 * invariant 6). Before the fix a chunk went into the dead stream's
 * in-flight list and was never re-sent: a 20 s timeout, 1 chunk short. */
static int case_reconnect_prefetch(void)
{
    xcase_t x;

    if (!kv_dev.send) {
        fprintf(stderr, "reconnect.prefetch: needs ST_BUF=device\n");
        return 77;
    }
    memset(&x, 0, sizeof(x));
    x.c = rc_cfg(1);
    x.cut_prefetch = 1;
    ST_ASSERT(pipe(x.done) == 0);
    x.done_sync = 1;
    if (run_xcase(&x) != 0) {
        return 1;
    }
    printf("reconnect.prefetch: the stream cut before a chunk was staged "
           "ahead, re-dialled, data exact\n");
    return 0;
}

static int case_reconnect_dialer(void)
{
    return rc_case(1, 0, "reconnect.dialer: the only stream cut by the "
                   "dialling side mid-transfer");
}

static int case_reconnect_all(void)
{
    return rc_case(3, 4, "reconnect.all: all 3 streams cut 4 times "
                   "mid-transfer");
}

/* ---- both endpoints in one process (path ipc, ST_BUF=device) ---- */

typedef struct {
    xcase_t *x;
    int      port;
    int      rc;
} op_arg_t;

static void *op_recv(void *arg)
{
    op_arg_t *a = arg;

    a->rc = xfer_child_recv(a->port, a->x);
    return NULL;
}

/* x with the receiver on a thread of this process and the sender on this
 * one: the checks of xfer_child_recv / xfer_parent_send, among them that
 * every chunk went device to device (ipc_expected) and none staged. */
static int op_pair(xcase_t *x)
{
    scomm_kv_opts_t lo = opts_of(&x->c);
    scomm_kv_listener_t *l;
    pthread_t t;
    op_arg_t a;
    int rc;

    ST_ASSERT_OK(scomm_kv_listen("127.0.0.1", 0, &lo, &l));
    a.x    = x;
    a.port = scomm_kv_listener_port(l);
    a.rc   = -1;
    ST_ASSERT_EQ(pthread_create(&t, NULL, op_recv, &a), 0);
    rc = xfer_parent_send(l, x, getpid());
    ST_ASSERT_EQ(pthread_join(t, NULL), 0);
    scomm_kv_listener_close(l);
    return (rc != 0) || (a.rc != 0);
}

/* Each configuration in a child of its own (kv_dev.h invariant 2; and the
 * process's IPC byte counter then holds this transfer's bytes alone). */
static int op_run(xcase_t *x, const char *what)
{
    pid_t pid;
    int ws;

    fflush(NULL);
    pid = fork();
    ST_ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(50);
        ws = op_pair(x);
        fflush(NULL);
        _exit(ws);
    }
    ST_ASSERT(waitpid(pid, &ws, 0) == pid);
    if (!WIFEXITED(ws) || (WEXITSTATUS(ws) != 0)) {
        fprintf(stderr, "one_process: %s: status 0x%x\n", what, ws);
        return 1;
    }
    printf("one_process: %s: device to device in one process, exact\n",
           what);
    return 0;
}

/* one_process: sender and receiver endpoints in one process on device
 * regions: the chunks go device to device without an IPC open (kv_dev.c
 * invariant 8), counted as IPC on both sides, never staged. */
static int case_one_process(void)
{
    xcase_t x;

    if (!g_ipc || !kv_dev.send || !kv_dev.recv) {
        fprintf(stderr, "one_process: needs path ipc and ST_BUF=device\n");
        return 77;
    }
    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    if (op_run(&x, "fp16 head-major, 2 streams") != 0) {
        return 1;
    }
    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    x.c.sl.dtype = x.c.dl.dtype = SCOMM_BFLOAT16;
    x.c.sl.order = x.c.dl.order = SCOMM_KV_ORDER_TOKEN_MAJOR;
    x.c.dl.num_blocks = 40;
    x.c.first_layer = 1;
    x.c.num_layers = 2;
    x.c.streams = 3;
    if (op_run(&x, "bf16 token-major, layers 1-2 into a larger cache, 3 "
               "streams") != 0) {
        return 1;
    }
    memset(&x, 0, sizeof(x));
    x.c = base_cfg();
    x.c.streams = 1;
    x.stream_wait = 1;
    return op_run(&x, "submit after a stream, layer waits on a stream");
}

static const struct {
    const char *name;
    int (*fn)(void);
} cases[] = {
    { "layouts", case_layouts },
    { "codecs", case_codecs },
    { "corrupt", case_corrupt },
    { "break", case_break },
    { "stream_wait", case_stream_wait },
    { "ipc_refused", case_ipc_refused },
    { "one_process", case_one_process },
    { "kill", case_kill },
    { "mixed", case_mixed },
    { "priority", case_priority },
    { "mismatch", case_mismatch },
    { "nocodec", case_nocodec },
    { "token", case_token },
    { "rss", case_rss },
    { "reconnect.one", case_reconnect_one },
    { "reconnect.prefetch", case_reconnect_prefetch },
    { "reconnect.dialer", case_reconnect_dialer },
    { "reconnect.all", case_reconnect_all },
    { "reconnect.kill", case_reconnect_kill },
    { "reconnect.stray", case_reconnect_stray },
    { "comm", case_comm },
};

int main(int argc, char **argv)
{
    const char *which = (argc > 1) ? argv[1] : "layouts";
    size_t k;

    g_cma = (argc > 2) && (strcmp(argv[2], "cma") == 0);
    g_ofi = (argc > 2) && (strcmp(argv[2], "ofi") == 0);
    g_ipc = (argc > 2) && (strcmp(argv[2], "ipc") == 0);
    g_cma |= g_ipc; /* ipc: the same-host paths all allowed */
    if (!g_ipc) {
        /* the staged path stays what these cases test */
        setenv("SCOMM_KV_IPC", "0", 0);
    }
    signal(SIGPIPE, SIG_IGN);
    if (g_ofi && kv_ofi_missing()) {
        return 77;
    }
    kv_dev_init();
    for (k = 0; k < SCOMM_ARRAY_SIZE(cases); k++) {
        if (strcmp(which, cases[k].name) == 0) {
            return cases[k].fn();
        }
    }
    fprintf(stderr, "unknown case %s\n", which);
    return 2;
}
