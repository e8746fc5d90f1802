/*
 * kv_bench.c - `scomm kv-bench`: KV-cache transfer throughput between two
 * processes for real model shapes, and the disaggregation emulation
 * (--ttft: time to first token with transfer after prefill versus
 * layer-wise streaming).
 *
 * Modes:
 *   scomm kv-bench [opts]                   fork: parent receives, child
 *                                           sends, over 127.0.0.1
 *   scomm kv-bench --serve HOST:PORT [opts] receiver only (e.g. in one
 *                                           network namespace)
 *   scomm kv-bench --connect HOST:PORT [opts]  sender only
 * Both sides of a split run must be given the same shape options.
 *
 * The numbers: seconds from submit to the last acknowledgement (median of
 * --iters), GB/s = KV bytes in the sender's dtype / seconds (10^9 bytes),
 * one line per run, also as JSON with --json.
 *
 * Device regions (--src-mem / --dst-mem device, --device for both): the
 * regions come from cudaMalloc of the runtime `scomm bench --device` loads
 * (SCOMM_CUDART_LIBRARY, else libcudart.so; bench_coll_dev.c), each
 * process its own after the fork. The source is filled on the host and
 * copied in; after the timed transfers the receiver copies its region
 * back and compares it with the pattern made again on the host (an
 * independent reference, not the sender's memory): a difference fails the
 * run. The path printed: "ipc" when every byte went device to device
 * (CUDA IPC, the KV stats' bytes_zero_copy), "staged" when none did.
 * --memcpy times a plain cudaMemcpy device to device of the same bytes
 * instead (one process, no transfer): the rate the IPC path compares to.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_coll.h"
#include "cli.h"
#include "opts.h"
#include "scomm.h"

#define KVB_MAX_LAYERS      256  /* ttft_send's transfers, one a layer */
#define KVB_MAX_HEAD_VALUES 8192 /* heads x dim: prefill_layer's acc[] */

typedef struct kvb {
    int      layers, heads, dim, block;
    uint64_t tokens;
    int      wire, comp, streams, depth, iters, ttft, json, hidden;
    int      tcp;       /* --transport: 0 shm, 1 tcp, 2 ofi */
    int      thp;
    int      src_dev, dst_dev; /* --src-mem / --dst-mem device */
    int      dtype_id;  /* index in kvb_dtypes */
    int      memcpy_only;
    size_t   chunk;
    char     host[64];
    int      port;
    int      serve, connect;
    int      shape_id;  /* index in kvb_shapes */
    const char *shape;
    const char *preset;
} kvb_t;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scomm kv-bench [options]          a forked pair over "
        "127.0.0.1\n"
        "       scomm kv-bench --serve HOST:PORT [options]    receiver "
        "only\n"
        "       scomm kv-bench --connect HOST:PORT [options]  sender only\n"
        "Both sides of a split run must be given the same shape options.\n"
        "\n"
        "  --shape 8b|1b        8b: Llama-3-8B (32 layers, 8 KV heads, dim "
        "128, fp16;\n"
        "                       default); 1b: Llama-3.2-1B (16 layers, 8 "
        "KV heads, dim 64)\n"
        "  --tokens N           tokens moved, 1..16M (default 4096; k, m "
        "suffixes)\n"
        "  --layers N           1..256      } instead of the shape's;\n"
        "  --heads N            1..4096     } heads x dim at most 8192\n"
        "  --dim N              1..65536    }\n"
        "  --block N            tokens per block, 1..65536 (default 16)\n"
        "  --dtype fp16|bf16|fp32  the cache's values (default fp16)\n"
        "  --src-mem host|device  the sender's region: host (default) or "
        "CUDA device\n"
        "                       memory (cudaMalloc of SCOMM_CUDART_LIBRARY "
        "or libcudart.so)\n"
        "  --dst-mem host|device  the receiver's region, the same\n"
        "  --device             both regions in device memory; a device "
        "region is\n"
        "                       checked after the run (--tokens a multiple "
        "of --block);\n"
        "                       path ipc (device to device, one host) or "
        "staged\n"
        "                       (SCOMM_KV_IPC=0 forces staging)\n"
        "  --memcpy             with --device: no transfer, time one "
        "cudaMemcpy device\n"
        "                       to device of the same bytes (the reference "
        "rate)\n"
        "  --transport shm|tcp|ofi  shm (default): same-host copy from "
        "the sender's\n"
        "                       region; tcp: through the sockets even on "
        "one host; ofi:\n"
        "                       libfabric RMA writes into the receiver's "
        "region\n"
        "                       (SCOMM_OFI_PROVIDER; needs libfabric-dev "
        "at build)\n"
        "  --wire native|fp8|int4    values on the wire (default: the "
        "preset's)\n"
        "  --compress none|lz4|zstd  lossless compression of each chunk\n"
        "  --streams N          connections, 1..16\n"
        "  --chunk SIZE         bytes per chunk, 4k..256m\n"
        "  --depth N            prefetch depth, 1..1024\n"
        "  --iters N            timed transfers after one warm-up, 1..1000 "
        "(default 3)\n"
        "  --preset NAME        a transport preset (scomm presets list)\n"
        "  --thp on|off         on (default): the regions ask for "
        "transparent huge pages\n"
        "                       (madvise); both are written before the "
        "first transfer\n"
        "  --ttft [--hidden N]  prefill computes layer by layer (X[T,hidden] "
        "x W,\n"
        "                       hidden 1..65536, default 8), decode waits "
        "for the KV and\n"
        "                       reads it: TTFT after-prefill vs streaming\n"
        "  --json               one JSON object per result\n"
        "  -h, --help           this text\n");
}

static const char *const   kvb_dtypes[]    = {"fp16", "bf16", "fp32", NULL};
static const scomm_dtype_t kvb_dtype_val[] = {SCOMM_FLOAT16, SCOMM_BFLOAT16,
                                              SCOMM_FLOAT32};

static scomm_kv_layout_t layout_of(const kvb_t *b)
{
    scomm_kv_layout_t l;

    memset(&l, 0, sizeof(l));
    l.num_layers   = b->layers;
    l.num_kv_heads = b->heads;
    l.head_dim     = b->dim;
    l.block_tokens = b->block;
    l.num_blocks   = (int)((b->tokens + (uint64_t)b->block - 1) /
                           (uint64_t)b->block);
    l.dtype        = kvb_dtype_val[b->dtype_id];
    l.order        = SCOMM_KV_ORDER_HEAD_MAJOR;
    return l;
}

static scomm_kv_opts_t opts_of(const kvb_t *b)
{
    scomm_kv_opts_t o;

    memset(&o, 0, sizeof(o));
    if (b->preset != NULL) {
        o.field_mask |= SCOMM_KV_FIELD_PRESET;
        o.preset = b->preset;
    }
    o.field_mask |= SCOMM_KV_FIELD_TOKEN | SCOMM_KV_FIELD_TIMEOUT;
    o.token = "kv-bench";
    o.timeout_ms = 120000;
    if (b->chunk > 0) {
        o.field_mask |= SCOMM_KV_FIELD_CHUNK_SIZE;
        o.chunk_size = b->chunk;
    }
    if (b->streams > 0) {
        o.field_mask |= SCOMM_KV_FIELD_STREAMS;
        o.streams = b->streams;
    }
    if (b->depth > 0) {
        o.field_mask |= SCOMM_KV_FIELD_PREFETCH_DEPTH;
        o.prefetch_depth = b->depth;
    }
    if (b->wire >= 0) {
        o.field_mask |= SCOMM_KV_FIELD_WIRE_DTYPE;
        o.wire_dtype = b->wire;
    }
    if (b->comp >= 0) {
        o.field_mask |= SCOMM_KV_FIELD_COMPRESSION;
        o.compression = b->comp;
    }
    o.field_mask |= SCOMM_KV_FIELD_ZERO_COPY;
    o.zero_copy = (b->tcp == 0);
    /* --transport decides, as it does zero copy (not SCOMM_KV_TRANSPORT
     * or the preset), so the path printed is the one taken. */
    o.field_mask |= SCOMM_KV_FIELD_TRANSPORT;
    o.transport = (b->tcp == 2) ? SCOMM_KV_TRANSPORT_OFI
                                : SCOMM_KV_TRANSPORT_TCP;
    return o;
}

static size_t region_bytes(const scomm_kv_layout_t *l)
{
    return (size_t)l->num_layers * (size_t)l->num_blocks *
           (size_t)scomm_kv_block_bytes(l);
}

/* KV-like fp16 values: smooth, mildly compressible like real caches. One
 * xorshift step makes four values (filling 4 GiB takes a few seconds). */
static void fill_kv(uint8_t *base, size_t bytes, uint64_t seed)
{
    uint16_t *p = (uint16_t *)base;
    size_t i, k, n = bytes / 2;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

    for (i = 0; i < n; i += 4) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        for (k = 0; (k < 4) && (i + k < n); k++) {
            uint16_t v = (uint16_t)(s >> (16 * k));

            /* exponent around 2^-2..2^1, random mantissa and sign */
            p[i + k] = (uint16_t)((v & 0x83ffu) |
                                  (0x3400u + ((v >> 10) & 3u) * 0x400u));
        }
    }
}

/* ---- device regions ---- */

#define KVB_DEV_STAGE ((size_t)64 << 20) /* host bounce of the checks */
#define KVB_MIN(a, b) (((a) < (b)) ? (a) : (b))

static double median_of(const double *v, int n);

enum { KVB_H2D = 1, KVB_D2H = 2, KVB_D2D = 3 }; /* cudaMemcpyKind */

static int kvb_verify(const kvb_t *b)
{
    return (b->src_dev || b->dst_dev) && (b->wire <= 0);
}

static const char *mem_name(int dev)
{
    return dev ? "device" : "host";
}

/* A device region of bytes: the sender's holds the pattern (made on the
 * host, copied in), the receiver's zeros. */
static uint8_t *dev_region(size_t bytes, int sender)
{
    uint8_t *d = bc_dev_alloc(bytes), *h;
    size_t off, n;
    int rc = 0;

    if (d == NULL) {
        return NULL;
    }
    if (sender) {
        h = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h == MAP_FAILED) {
            bc_dev_free(d);
            return NULL;
        }
        fill_kv(h, bytes, 1);
        rc = bc_dev_memcpy(d, h, bytes, KVB_H2D);
        munmap(h, bytes);
    } else {
        h = calloc(1, KVB_MIN(bytes, KVB_DEV_STAGE));
        for (off = 0; (h != NULL) && (rc == 0) && (off < bytes); off += n) {
            n = KVB_MIN(bytes - off, KVB_DEV_STAGE);
            rc = bc_dev_memcpy(d + off, h, n, KVB_H2D);
        }
        rc |= (h == NULL);
        free(h);
    }
    if (rc != 0) {
        bc_dev_free(d);
        return NULL;
    }
    return d;
}

/* The receiver's region (device: copied back in pieces) against the
 * pattern made again here: 0, or 1 naming the first byte that differs. */
static int check_region(const kvb_t *b, const uint8_t *reg, size_t bytes)
{
    uint8_t *ref, *bounce = NULL;
    size_t off, n, i;
    int rc = 0;

    ref = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ref == MAP_FAILED) {
        fprintf(stderr, "kv-bench: check: cannot allocate %zu bytes\n",
                bytes);
        return 1;
    }
    fill_kv(ref, bytes, 1);
    if (b->dst_dev &&
        ((bounce = malloc(KVB_MIN(bytes, KVB_DEV_STAGE))) == NULL)) {
        munmap(ref, bytes);
        return 1;
    }
    for (off = 0; (rc == 0) && (off < bytes); off += n) {
        const uint8_t *got = reg + off;

        n = KVB_MIN(bytes - off, KVB_DEV_STAGE);
        if (b->dst_dev) {
            if (bc_dev_memcpy(bounce, reg + off, n, KVB_D2H) != 0) {
                rc = 1;
                break;
            }
            got = bounce;
        }
        if (memcmp(got, ref + off, n) != 0) {
            for (i = 0; got[i] == ref[off + i]; i++) {
            }
            fprintf(stderr, "kv-bench: check FAILED: the receiver's %s "
                    "region differs from the pattern at byte %zu of %zu "
                    "(0x%02x, expected 0x%02x)\n", mem_name(b->dst_dev),
                    off + i, bytes, got[i], ref[off + i]);
            rc = 1;
        }
    }
    if (rc == 0) {
        fprintf(stderr, "kv-bench: check: the receiver's %s region matches "
                "the pattern (%zu bytes)\n", mem_name(b->dst_dev), bytes);
    }
    free(bounce);
    munmap(ref, bytes);
    return rc;
}

/* --memcpy: one cudaMemcpy device to device of the region's bytes, timed
 * like a transfer (median of --iters after one warm-up), then checked. */
static int bench_memcpy(const kvb_t *b)
{
    scomm_kv_layout_t l = layout_of(b);
    size_t bytes = region_bytes(&l);
    uint8_t *src = dev_region(bytes, 1), *dst = dev_region(bytes, 0);
    double *sec = calloc((size_t)b->iters + 1, sizeof(double)), t0, med;
    int it, rc = 1;

    if ((src == NULL) || (dst == NULL) || (sec == NULL)) {
        fprintf(stderr, "kv-bench --memcpy: cannot set up two device "
                "regions of %zu bytes\n", bytes);
        goto out;
    }
    for (it = 0; it <= b->iters; it++) {
        t0 = scomm_cli_now();
        if (bc_dev_memcpy(dst, src, bytes, KVB_D2D) != 0) {
            goto out;
        }
        sec[it] = scomm_cli_now() - t0;
    }
    if (check_region(b, dst, bytes) != 0) {
        goto out;
    }
    med = median_of(sec + 1, b->iters);
    if (b->json) {
        printf("{\"bench\":\"kv_memcpy\",\"shape\":\"%s\",\"tokens\":%llu,"
               "\"bytes\":%zu,\"path\":\"memcpy_d2d\",\"seconds\":%.6f,"
               "\"gbps\":%.4f}\n", b->shape, (unsigned long long)b->tokens,
               bytes, med, (double)bytes / med / 1e9);
    } else {
        printf("kv-bench %-3s %7llu tokens %6.0f MiB cudaMemcpy device to "
               "device: %8.4f s %7.3f GB/s\n", b->shape,
               (unsigned long long)b->tokens, (double)bytes / 1048576.0, med,
               (double)bytes / med / 1e9);
    }
    rc = 0;
out:
    bc_dev_free(src);
    bc_dev_free(dst);
    free(sec);
    return rc;
}

/* ---- throughput ---- */

static int bench_recv(const kvb_t *b, scomm_kv_ep_t *ep, uint8_t *base)
{
    scomm_kv_layout_t l = layout_of(b);
    int32_t id;
    int it;

    if (scomm_kv_register_mem(ep, &l, base, region_bytes(&l),
                              b->dst_dev ? SCOMM_MEM_CUDA : SCOMM_MEM_AUTO,
                              &id) != SCOMM_OK) {
        fprintf(stderr, "kv-bench: register: %s\n", scomm_last_error());
        return 1;
    }
    for (it = 0; it <= b->iters; it++) {
        if (scomm_kv_wait_xfer(ep, (uint64_t)it + 1, 120000) != SCOMM_OK) {
            fprintf(stderr, "kv-bench: receive %d: %s\n", it,
                    scomm_last_error());
            return 1;
        }
    }
    if (kvb_verify(b) && (check_region(b, base, region_bytes(&l)) != 0)) {
        return 1;
    }
    /* The sender reports; give it time to read its acknowledgements. */
    usleep(300000);
    return 0;
}

/* Median of n values (v itself stays in order); the mean of the middle
 * two when n is even, so two iterations do not report the slower one. */
static double median_of(const double *v, int n)
{
    double *s = malloc(sizeof(double) * (size_t)n), m;

    if (s == NULL) {
        return v[n / 2];
    }
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), scomm_cli_cmp_double);
    m = scomm_cli_median_sorted(s, (size_t)n);
    free(s);
    return m;
}

static const char *wire_name(int w)
{
    return (w == 1) ? "fp8" : (w == 2) ? "int4" : "native";
}

static const char *comp_name(int c)
{
    return (c == 1) ? "lz4" : (c == 2) ? "zstd" : "none";
}

static int bench_send(const kvb_t *b, scomm_kv_ep_t *ep, uint8_t *base)
{
    scomm_kv_layout_t l = layout_of(b);
    scomm_kv_xfer_t *xf;
    scomm_kv_stats_t s0, s1;
    scomm_kv_plan_t p;
    int32_t *tbl, id;
    double t0, *sec;
    size_t bytes = region_bytes(&l);
    int it, i;

    if (scomm_kv_register_mem(ep, &l, base, bytes,
                              b->src_dev ? SCOMM_MEM_CUDA : SCOMM_MEM_AUTO,
                              &id) != SCOMM_OK) {
        fprintf(stderr, "kv-bench: register: %s\n", scomm_last_error());
        return 1;
    }
    tbl = malloc(sizeof(int32_t) * (size_t)l.num_blocks);
    sec = calloc((size_t)b->iters + 1, sizeof(double));
    if ((tbl == NULL) || (sec == NULL)) {
        fprintf(stderr, "kv-bench: out of memory\n");
        free(tbl);
        free(sec);
        return 1;
    }
    for (i = 0; i < l.num_blocks; i++) {
        tbl[i] = i;
    }
    memset(&p, 0, sizeof(p));
    p.src_region = id;
    p.num_layers = l.num_layers;
    p.num_tokens = b->tokens;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = (uint32_t)l.num_blocks;
    scomm_kv_ep_stats(ep, &s0);
    for (it = 0; it <= b->iters; it++) {
        p.xfer_id = (uint64_t)it + 1;
        if (it == 1) {
            scomm_kv_ep_stats(ep, &s0); /* after the warm-up */
        }
        t0 = scomm_cli_now();
        if ((scomm_kv_submit(ep, &p, 0, &xf) != SCOMM_OK) ||
            (scomm_kv_xfer_wait(xf, 120000) != SCOMM_OK)) {
            fprintf(stderr, "kv-bench: transfer %d: %s\n", it,
                    scomm_last_error());
            return 1;
        }
        sec[it] = scomm_cli_now() - t0;
        scomm_kv_xfer_free(xf);
    }
    scomm_kv_ep_stats(ep, &s1);
    {
        double med = median_of(sec + 1, b->iters);
        double gbs = (double)bytes / med / 1e9;
        double ratio = (s1.bytes_wire > s0.bytes_wire)
            ? (double)(s1.bytes_raw - s0.bytes_raw) /
                  (double)(s1.bytes_wire - s0.bytes_wire) : 0.0;
        uint64_t zc  = s1.bytes_zero_copy - s0.bytes_zero_copy;
        uint64_t raw = s1.bytes_raw - s0.bytes_raw;
        const char *path = (b->tcp == 2) ? "ofi"
                           : (zc > 0) ? "shm" : "tcp";

        if (b->src_dev || b->dst_dev) {
            /* a device region never takes the process_vm_readv copy: the
             * zero-copy bytes of a device source went over CUDA IPC */
            path = (zc == 0) ? "staged"
                   : (zc < raw) ? "mixed" : b->src_dev ? "ipc" : "shm";
        }

        if (b->json) {
            printf("{\"bench\":\"kv\",\"shape\":\"%s\",\"tokens\":%llu,"
                   "\"bytes\":%zu,\"path\":\"%s\",\"wire\":\"%s\","
                   "\"compression\":\"%s\",\"streams\":%d,\"chunk\":%zu,"
                   "\"thp\":%d,\"seconds\":%.6f,\"gbps\":%.4f,"
                   "\"wire_ratio\":%.3f,\"resent\":%llu,\"dtype\":\"%s\","
                   "\"src_mem\":\"%s\",\"dst_mem\":\"%s\","
                   "\"zero_copy_bytes\":%llu,\"iters_s\":[",
                   b->shape,
                   (unsigned long long)b->tokens, bytes, path,
                   wire_name(b->wire < 0 ? 0 : b->wire),
                   comp_name(b->comp < 0 ? 0 : b->comp), s1.streams,
                   b->chunk, b->thp, med, gbs, ratio,
                   (unsigned long long)(s1.chunks_resent - s0.chunks_resent),
                   kvb_dtypes[b->dtype_id], mem_name(b->src_dev),
                   mem_name(b->dst_dev), (unsigned long long)zc);
            for (it = 1; it <= b->iters; it++) {
                printf("%s%.6f", (it > 1) ? "," : "", sec[it]);
            }
            printf("]}\n");
        } else {
            printf("kv-bench %-3s %7llu tokens %6.0f MiB path %-3s wire %-6s "
                   "comp %-4s streams %d: %8.4f s %7.3f GB/s (raw/wire "
                   "%.2f)", b->shape, (unsigned long long)b->tokens,
                   (double)bytes / 1048576.0, path,
                   wire_name(b->wire < 0 ? 0 : b->wire),
                   comp_name(b->comp < 0 ? 0 : b->comp), s1.streams, med,
                   gbs, ratio);
            if (b->src_dev || b->dst_dev) {
                printf(" %s %s -> %s", kvb_dtypes[b->dtype_id],
                       mem_name(b->src_dev), mem_name(b->dst_dev));
            }
            printf("\n");
        }
    }
    free(tbl);
    free(sec);
    return 0;
}

/* ---- TTFT emulation ---- */

/* "Prefill" of one layer: K|V = X[T, hidden] x W[hidden, 2*H*D], written
 * as fp16 into the layer's blocks (head-major). Real FLOPs, no shortcuts. */
static void prefill_layer(const kvb_t *b, uint8_t *lbase, int layer,
                          const float *x, const float *w)
{
    scomm_kv_layout_t l = layout_of(b);
    size_t bb = (size_t)scomm_kv_block_bytes(&l);
    int H = b->heads, D = b->dim, Bt = b->block, hd = b->hidden;
    int out = 2 * H * D, k, j;
    float acc[2 * KVB_MAX_HEAD_VALUES];
    uint64_t t;

    (void)layer;
    for (t = 0; t < b->tokens; t++) {
        const float *xr = x + t * (uint64_t)hd;
        uint8_t *blk = lbase + (size_t)(t / (uint64_t)Bt) * bb;
        int tt = (int)(t % (uint64_t)Bt);

        for (j = 0; j < out; j++) {
            float s = 0.0f;

            for (k = 0; k < hd; k++) {
                s += xr[k] * w[(size_t)k * out + j];
            }
            acc[j] = s;
        }
        for (j = 0; j < 2 * H; j++) {
            /* row (kv, head) = j; head-major: ((kv*H+h)*Bt + t)*D */
            uint16_t *dst = (uint16_t *)blk + ((size_t)j * Bt + tt) * D;
            int d;

            for (d = 0; d < D; d++) {
                union { float f; uint32_t u; } v = { acc[j * D + d] };
                dst[d] = (uint16_t)((v.u >> 16) & 0xffffu); /* bf16-ish */
            }
        }
    }
}

/* "Decode" of one layer: q . K over every token of the layer. */
static double decode_layer(const kvb_t *b, const uint8_t *lbase)
{
    scomm_kv_layout_t l = layout_of(b);
    size_t n = (size_t)l.num_blocks * scomm_kv_block_bytes(&l) / 2, i;
    const uint16_t *p = (const uint16_t *)lbase;
    double s = 0;

    for (i = 0; i < n; i++) {
        s += (double)(p[i] & 0xff) * 0.001;
    }
    return s;
}

static int ttft_send(const kvb_t *b, scomm_kv_ep_t *ep, uint8_t *base,
                     int wfd)
{
    scomm_kv_layout_t l = layout_of(b);
    size_t lb = (size_t)l.num_blocks * scomm_kv_block_bytes(&l);
    scomm_kv_xfer_t *xf[KVB_MAX_LAYERS];
    scomm_kv_plan_t p;
    int32_t *tbl, id;
    size_t nx = (size_t)b->tokens * (size_t)b->hidden, i;
    size_t nw = (size_t)b->hidden * 2 * (size_t)b->heads * (size_t)b->dim;
    float *x, *w;
    double t0, tc;
    int mode, layer;

    if (scomm_kv_register(ep, &l, base, region_bytes(&l), &id) != SCOMM_OK) {
        fprintf(stderr, "kv-bench: register: %s\n", scomm_last_error());
        return 1;
    }
    tbl = malloc(sizeof(int32_t) * (size_t)l.num_blocks);
    x = malloc(sizeof(float) * nx);
    w = malloc(sizeof(float) * nw);
    if ((tbl == NULL) || (x == NULL) || (w == NULL)) {
        fprintf(stderr, "kv-bench ttft: cannot allocate the prefill "
                "inputs (%zu x %d floats)\n", (size_t)b->tokens, b->hidden);
        free(tbl);
        free(x);
        free(w);
        return 1;
    }
    for (i = 0; i < (size_t)l.num_blocks; i++) {
        tbl[i] = (int32_t)i;
    }
    for (i = 0; i < nx; i++) {
        x[i] = (float)((i * 7919) % 1000) / 1000.0f;
    }
    for (i = 0; i < nw; i++) {
        w[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    }
    memset(&p, 0, sizeof(p));
    p.src_region = id;
    p.num_tokens = b->tokens;
    p.src_blocks = p.dst_blocks = tbl;
    p.num_src_blocks = p.num_dst_blocks = (uint32_t)l.num_blocks;
    for (mode = 0; mode < 2; mode++) {
        /* Tell the decode side when prefill starts (same clock). */
        sleep(1);
        t0 = scomm_cli_now();
        if (write(wfd, &t0, sizeof(t0)) != (ssize_t)sizeof(t0)) {
            return 1;
        }
        tc = 0;
        for (layer = 0; layer < b->layers; layer++) {
            double c0 = scomm_cli_now();

            prefill_layer(b, base + (size_t)layer * lb, layer, x, w);
            tc += scomm_cli_now() - c0;
            if (mode == 1) {
                p.xfer_id = 1000 * (uint64_t)(mode + 1) + (uint64_t)layer;
                p.first_layer = layer;
                p.num_layers = 1;
                if (scomm_kv_submit(ep, &p, b->layers - layer,
                                    &xf[layer]) != SCOMM_OK) {
                    return 1;
                }
            }
        }
        if (mode == 0) {
            p.xfer_id = 1000;
            p.first_layer = 0;
            p.num_layers = b->layers;
            if ((scomm_kv_submit(ep, &p, 0, &xf[0]) != SCOMM_OK) ||
                (scomm_kv_xfer_wait(xf[0], 120000) != SCOMM_OK)) {
                return 1;
            }
            scomm_kv_xfer_free(xf[0]);
        } else {
            for (layer = 0; layer < b->layers; layer++) {
                if (scomm_kv_xfer_wait(xf[layer], 120000) != SCOMM_OK) {
                    return 1;
                }
                scomm_kv_xfer_free(xf[layer]);
            }
        }
        fprintf(stderr, "kv-bench ttft: prefill compute %.3f s (%.1f ms per "
                "layer)\n", tc, 1000.0 * tc / b->layers);
    }
    free(x);
    free(w);
    free(tbl);
    return 0;
}

static int ttft_recv(const kvb_t *b, scomm_kv_ep_t *ep, uint8_t *base,
                     int rfd)
{
    scomm_kv_layout_t l = layout_of(b);
    size_t lb = (size_t)l.num_blocks * scomm_kv_block_bytes(&l);
    double t0, ttft[2], sink = 0;
    int32_t id;
    int mode, layer;

    if (scomm_kv_register(ep, &l, base, region_bytes(&l), &id) != SCOMM_OK) {
        fprintf(stderr, "kv-bench: register: %s\n", scomm_last_error());
        return 1;
    }
    for (mode = 0; mode < 2; mode++) {
        if (read(rfd, &t0, sizeof(t0)) != (ssize_t)sizeof(t0)) {
            return 1;
        }
        for (layer = 0; layer < b->layers; layer++) {
            uint64_t xid = (mode == 0) ? 1000
                                       : 2000 + (uint64_t)layer;
            scomm_status_t st = (mode == 0)
                ? scomm_kv_wait_layer(ep, xid, layer, 120000)
                : scomm_kv_wait_xfer(ep, xid, 120000);

            if (st != SCOMM_OK) {
                fprintf(stderr, "kv-bench ttft: %s\n", scomm_last_error());
                return 1;
            }
            sink += decode_layer(b, base + (size_t)layer * lb);
        }
        if (mode == 0) {
            (void)scomm_kv_wait_xfer(ep, 1000, 120000);
        }
        ttft[mode] = scomm_cli_now() - t0;
    }
    if (b->json) {
        printf("{\"bench\":\"kv_ttft\",\"shape\":\"%s\",\"tokens\":%llu,"
               "\"ttft_after_s\":%.6f,\"ttft_stream_s\":%.6f,"
               "\"improvement\":%.4f}\n", b->shape,
               (unsigned long long)b->tokens, ttft[0], ttft[1],
               1.0 - ttft[1] / ttft[0]);
    } else {
        printf("kv-bench ttft %s %llu tokens: transfer after prefill %.4f s,"
               " layer-wise streaming %.4f s: %.1f%% faster (sink %.0f)\n",
               b->shape, (unsigned long long)b->tokens, ttft[0], ttft[1],
               100.0 * (1.0 - ttft[1] / ttft[0]), sink);
    }
    return 0;
}

/* ---- driver ---- */

static const char *const kvb_shapes[]     = {"8b", "1b", NULL};
static const char *const kvb_transports[] = {"shm", "tcp", "ofi", NULL};
/* Indexed by scomm_kv_wire_dtype_t and scomm_kv_compress_t. */
static const char *const kvb_wires[]      = {"native", "fp8", "int4", NULL};
static const char *const kvb_comps[]      = {"none", "lz4", "zstd", NULL};
static const char *const kvb_onoff[]      = {"on", "off", NULL};
static const char *const kvb_mems[]       = {"host", "device", NULL};
static const int         kvb_onoff_val[]  = {1, 0};

/* HOST:PORT of --serve or --connect into b. */
static int kvb_endpoint(const char *text, kvb_t *b, char *want, size_t len)
{
    const char *c = strrchr(text, ':');
    long long port;

    if ((c == NULL) || (c == text) ||
        ((size_t)(c - text) >= sizeof(b->host)) ||
        (scomm_cli_parse_ll(c + 1, &port) != 0) || (port < 1) ||
        (port > 65535)) {
        snprintf(want, len, "expected HOST:PORT (a host of at most %zu "
                 "bytes, a port from 1 to 65535)", sizeof(b->host) - 1);
        return -1;
    }
    snprintf(b->host, sizeof(b->host), "%.*s", (int)(c - text), text);
    b->port = (int)port;
    return 0;
}

static int kvb_serve(const char *text, void *dst, char *want, size_t len)
{
    ((kvb_t *)dst)->serve = 1;
    return kvb_endpoint(text, dst, want, len);
}

static int kvb_connect(const char *text, void *dst, char *want, size_t len)
{
    ((kvb_t *)dst)->connect = 1;
    return kvb_endpoint(text, dst, want, len);
}

/* Returns -1 to run, or the exit code (0 after --help, 2 on an error). */
static int parse(int argc, char **argv, kvb_t *b)
{
    int device = 0;
    const scomm_cli_opt_t opts[] = {
        CLI_ENUM("shape", 0, &b->shape_id, kvb_shapes),
        CLI_SIZE("tokens", 0, &b->tokens, 1, 16u << 20),
        CLI_INT("layers", 0, &b->layers, 1, KVB_MAX_LAYERS),
        CLI_INT("heads", 0, &b->heads, 1, 4096),
        CLI_INT("dim", 0, &b->dim, 1, 65536),
        CLI_INT("block", 0, &b->block, 1, 65536),
        CLI_INT("hidden", 0, &b->hidden, 1, 65536),
        CLI_ENUM("transport", 0, &b->tcp, kvb_transports),
        CLI_ENUM("wire", 0, &b->wire, kvb_wires),
        CLI_ENUM("compress", 0, &b->comp, kvb_comps),
        CLI_INT("streams", 0, &b->streams, 1, 16),
        CLI_INT("depth", 0, &b->depth, 1, 1024),
        CLI_INT("iters", 0, &b->iters, 1, 1000),
        CLI_SIZE("chunk", 0, &b->chunk, 4096, 256u << 20),
        CLI_STR("preset", 0, &b->preset),
        CLI_ENUMV("thp", 0, &b->thp, kvb_onoff, kvb_onoff_val),
        CLI_FLAG("ttft", 0, &b->ttft),
        CLI_ENUM("dtype", 0, &b->dtype_id, kvb_dtypes),
        CLI_ENUM("src-mem", 0, &b->src_dev, kvb_mems),
        CLI_ENUM("dst-mem", 0, &b->dst_dev, kvb_mems),
        CLI_FLAG("device", 0, &device),
        CLI_FLAG("memcpy", 0, &b->memcpy_only),
        CLI_FLAG("json", 0, &b->json),
        CLI_FUNC("serve", 0, b, kvb_serve),
        CLI_FUNC("connect", 0, b, kvb_connect),
    };
    const scomm_cli_cmd_t cmd = {"kv-bench", usage, opts, CLI_NOPTS(opts),
                                 0, 0};
    int rc, first;

    memset(b, 0, sizeof(*b));
    b->tokens = 4096;
    b->block = 16;
    b->wire = -1;
    b->comp = -1;
    b->iters = 3;
    b->hidden = 8;
    b->thp = 1;
    snprintf(b->host, sizeof(b->host), "127.0.0.1");
    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    b->shape = kvb_shapes[b->shape_id];
    if (b->serve && b->connect) {
        return scomm_cli_usage_error("kv-bench", "--serve and --connect "
                                     "exclude each other");
    }
    if ((b->serve || b->connect) && b->ttft) {
        return scomm_cli_usage_error("kv-bench", "--ttft runs both sides "
                                     "here (no --serve or --connect)");
    }
    if (b->shape_id == 1) {
        b->layers = b->layers ? b->layers : 16;
        b->heads = b->heads ? b->heads : 8;
        b->dim = b->dim ? b->dim : 64;
    } else {
        b->layers = b->layers ? b->layers : 32;
        b->heads = b->heads ? b->heads : 8;
        b->dim = b->dim ? b->dim : 128;
    }
    if (device) {
        b->src_dev = b->dst_dev = 1;
    }
    if ((b->src_dev || b->dst_dev) && b->ttft) {
        return scomm_cli_usage_error("kv-bench", "--ttft computes on host "
                                     "regions (no --device, --src-mem or "
                                     "--dst-mem device)");
    }
    if (b->memcpy_only && (!b->src_dev || !b->dst_dev || b->serve ||
                           b->connect)) {
        return scomm_cli_usage_error("kv-bench", "--memcpy copies device to "
                                     "device in this process: give it "
                                     "--device, no --serve or --connect");
    }
    if ((b->src_dev || b->dst_dev) && (b->wire < 0)) {
        b->wire = SCOMM_KV_WIRE_NATIVE; /* exact, so it can be checked */
    }
    if ((b->src_dev || b->dst_dev) && (b->tokens % (uint64_t)b->block != 0)) {
        return scomm_cli_usage_error("kv-bench", "a device region is checked "
                                     "whole blocks at a time: --tokens %llu "
                                     "must be a multiple of --block %d",
                                     (unsigned long long)b->tokens,
                                     b->block);
    }
    if (b->heads * b->dim > KVB_MAX_HEAD_VALUES) {
        return scomm_cli_usage_error("kv-bench", "--heads %d x --dim %d = "
                                     "%d values per token: at most %d",
                                     b->heads, b->dim, b->heads * b->dim,
                                     KVB_MAX_HEAD_VALUES);
    }
    return -1;
}

/*
 * A paged KV cache is allocated and written long before it is transferred,
 * so both regions are faulted in here, outside the timed transfers: the
 * sender's by filling it, the receiver's by zeroing it. The memory comes
 * from mmap, not malloc, because the compiler may turn malloc + memset(0)
 * into calloc, which leaves the pages untouched. With --thp on the regions
 * ask for transparent huge pages first (the gloo baseline does the same
 * with its tensors, bench/kv_gloo_baseline.py --thp).
 */
static uint8_t *region_alloc(const kvb_t *b, size_t bytes, int sender)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return NULL;
    }
    if (b->thp && (madvise(p, bytes, MADV_HUGEPAGE) != 0)) {
        fprintf(stderr, "kv-bench: madvise(MADV_HUGEPAGE): %s\n",
                strerror(errno));
    }
    if (sender) {
        fill_kv(p, bytes, 1);
    } else {
        memset(p, 0, bytes);
    }
    return p;
}

static int run_side(const kvb_t *b, int sender, scomm_kv_ep_t *ep, int fd)
{
    scomm_kv_layout_t l = layout_of(b);
    size_t bytes = region_bytes(&l);
    int dev = sender ? b->src_dev : b->dst_dev;
    uint8_t *base = dev ? dev_region(bytes, sender)
                        : region_alloc(b, bytes, sender);
    int rc;

    if (base == NULL) {
        fprintf(stderr, "kv-bench: cannot allocate %zu bytes\n", bytes);
        return 1;
    }
    if (b->ttft) {
        rc = sender ? ttft_send(b, ep, base, fd) : ttft_recv(b, ep, base, fd);
    } else {
        rc = sender ? bench_send(b, ep, base) : bench_recv(b, ep, base);
    }
    scomm_kv_ep_close(ep);
    if (dev) {
        bc_dev_free(base);
    } else {
        munmap(base, bytes);
    }
    return rc;
}

int scomm_cli_kv_bench(int argc, char **argv)
{
    scomm_kv_listener_t *lst;
    scomm_kv_opts_t o;
    scomm_kv_ep_t *ep;
    kvb_t b;
    int pfd[2], port, ws, rc;
    pid_t pid;

    rc = parse(argc, argv, &b);
    if (rc >= 0) {
        return rc;
    }
    if (b.src_dev || b.dst_dev) {
        /* loaded before the library looks for it, and before the fork: a
         * dlopen, no CUDA call (each process makes its own context) */
        bc_dev_name("kv-bench: device regions");
        if (bc_dev_open() != 0) {
            return 1;
        }
    }
    if (b.memcpy_only) {
        return bench_memcpy(&b);
    }
    o = opts_of(&b);
    signal(SIGPIPE, SIG_IGN);
    if (b.connect) {
        if (scomm_kv_connect(b.host, b.port, &o, &ep) != SCOMM_OK) {
            fprintf(stderr, "kv-bench: %s\n", scomm_last_error());
            return 1;
        }
        return run_side(&b, 1, ep, -1);
    }
    if (scomm_kv_listen(b.host, b.port, &o, &lst) != SCOMM_OK) {
        fprintf(stderr, "kv-bench: %s\n", scomm_last_error());
        return 1;
    }
    if (b.serve) {
        rc = scomm_kv_accept(lst, 120000, &ep);
        scomm_kv_listener_close(lst);
        if (rc != SCOMM_OK) {
            fprintf(stderr, "kv-bench: %s\n", scomm_last_error());
            return 1;
        }
        return run_side(&b, 0, ep, -1);
    }
    port = scomm_kv_listener_port(lst);
    if (pipe(pfd) != 0) {
        return 1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        scomm_kv_listener_close(lst);
        if (scomm_kv_connect("127.0.0.1", port, &o, &ep) != SCOMM_OK) {
            fprintf(stderr, "kv-bench: %s\n", scomm_last_error());
            _exit(1);
        }
        rc = run_side(&b, 1, ep, pfd[1]);
        fflush(NULL);
        _exit(rc);
    }
    close(pfd[1]);
    rc = scomm_kv_accept(lst, 120000, &ep);
    scomm_kv_listener_close(lst);
    if (rc != SCOMM_OK) {
        fprintf(stderr, "kv-bench: %s\n", scomm_last_error());
        kill(pid, SIGKILL);
        waitpid(pid, &ws, 0);
        return 1;
    }
    rc = run_side(&b, 0, ep, pfd[0]);
    if (waitpid(pid, &ws, 0) != pid) {
        return 1;
    }
    return (rc != 0) || !WIFEXITED(ws) || (WEXITSTATUS(ws) != 0);
}
