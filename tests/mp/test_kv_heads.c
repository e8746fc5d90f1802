/*
 * test_kv_heads.c - KV transfers between prefill and decode at different
 * tensor-parallel degrees (head ranges, docs/kv.md "Head ranges"), with
 * real processes: P prefill ranks and Q decode ranks, one endpoint per
 * (prefill, decode) pair whose head ranges overlap, each prefill rank
 * holding heads [p H/P, (p+1) H/P) of H and each decode rank receiving
 * exactly its heads [q H/Q, (q+1) H/Q) from the prefill ranks that own
 * them, with different block sizes, orders (and dtypes, widening) on the
 * two sides, a layer range (pipeline parallelism) and fp8 on the wire.
 *
 * Usage: test_kv_heads tp|bad [tcp|cma]   (cma: same-host copy allowed)
 *
 * Checks: every element of every decode rank against kv_ref_val() of the
 * global head (never the sender's buffer); tokens past the sequence, blocks and
 * layers outside the plan untouched; bytes: the sender's bytes_wire per
 * pair is exactly the moved heads' bytes, and the decode process's own
 * read count (/proc/self/io rchar, the kernel's, not the library's) grows
 * by those bytes plus frame headers, well below what all heads would be.
 * bad: a head range into some heads of a larger region (the others
 * untouched), a range that does not fit the receiver (SCOMM_ERR_MISMATCH
 * on both sides naming both ranges, nothing written), ranges refused at
 * submit (SCOMM_ERR_INVALID_ARG).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "st_test.h"
#include "scomm.h"
#include "coll/reduce.h"
#include "core/util.h"
#include "kv/kv.h"
#include "kv_ref.h"
#include "kv_dev.h"

#define SENTINEL 0x5a
#define H_ALL    8
#define MAXR     4

static int g_cma;
static int g_ipc; /* path ipc: same-host CUDA IPC allowed */
static int g_ofi; /* transport ofi: chunks by RMA writes */


typedef struct tp {
    const char *name;
    int P, Q;
    int sbt, sorder, dbt, dorder;
    scomm_dtype_t sdt, ddt;
    int first_layer, num_layers;
    int wire;
} tp_t;

#define LAYERS 4
#define DIM    32
#define NTOK   150
#define NBLK   24

/* Must c go over CUDA IPC (path ipc)? Device regions on both sides, the
 * native encoding, the same dtype, order and block size. */
static int ipc_expected(const tp_t *c)
{
    return g_ipc && kv_dev.send && kv_dev.recv && (c->wire == 0) &&
           (c->sdt == c->ddt) && (c->sorder == c->dorder) &&
           (c->sbt == c->dbt);
}

static scomm_kv_layout_t lay(int heads, int bt, int order, scomm_dtype_t dt)
{
    scomm_kv_layout_t l;

    memset(&l, 0, sizeof(l));
    l.num_layers = LAYERS;
    l.num_kv_heads = heads;
    l.head_dim = DIM;
    l.block_tokens = bt;
    l.num_blocks = NBLK;
    l.dtype = dt;
    l.order = order;
    return l;
}

static size_t region_bytes(const scomm_kv_layout_t *l)
{
    return (size_t)l->num_layers * l->num_blocks * scomm_kv_block_bytes(l);
}

static uint32_t nblocks(int bt)
{
    return (uint32_t)((NTOK + bt - 1) / bt);
}

/* A block table: distinct blocks, a seeded permutation. */
static void table(int32_t *t, uint32_t n, uint64_t seed)
{
    int32_t perm[NBLK];
    int i, j, tmp;

    for (i = 0; i < NBLK; i++) {
        perm[i] = i;
    }
    for (i = NBLK - 1; i > 0; i--) {
        j = (int)(kv_ref_mix(seed + (uint64_t)i) % (uint64_t)(i + 1));
        tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    memcpy(t, perm, 4 * (size_t)n);
}

/* Fill the table's blocks with heads h0.. (global) of every token of
 * each block, the tail past NTOK included. */
static void fill(const scomm_kv_layout_t *l, uint8_t *base, const int32_t *tbl,
                 uint32_t n, int h0)
{
    size_t es = scomm_dtype_size(l->dtype), bb = scomm_kv_block_bytes(l);
    float row[DIM];
    int layer, kv, h, t, d;
    uint32_t i;

    memset(base, 0x33, region_bytes(l));
    for (layer = 0; layer < l->num_layers; layer++) {
        for (i = 0; i < n; i++) {
            uint8_t *blk = base + ((size_t)layer * l->num_blocks + tbl[i]) *
                                      bb;
            for (t = 0; t < l->block_tokens; t++) {
                uint64_t g = (uint64_t)i * l->block_tokens + t;

                for (kv = 0; kv < 2; kv++) {
                    for (h = 0; h < l->num_kv_heads; h++) {
                        for (d = 0; d < DIM; d++) {
                            row[d] = kv_ref_val(layer, g, kv, h0 + h, d);
                        }
                        scomm_cvt_from_f32(blk + scomm_kv_row_off(l, kv, h, t)
                                                     * es,
                                           row, DIM, l->dtype);
                    }
                }
            }
        }
    }
}

/* max |x| of the sender's (block i, kv, global head h) group of sbt
 * tokens: the fp8 scale's base. */
static float group_amax(int layer, uint64_t i, int sbt, int kv, int h)
{
    float a = 0.0f, v;
    int t, d;

    for (t = 0; t < sbt; t++) {
        for (d = 0; d < DIM; d++) {
            v = fabsf(kv_ref_val(layer, i * (uint64_t)sbt + (uint64_t)t,
                                 kv, h, d));
            a = (v > a) ? v : a;
        }
    }
    return a;
}

/* Bad elements of the destination: heads [hw0, hw0 + hwn) (local) of
 * tokens < NTOK (with the sender's block size sbt equal to ours: all
 * tokens of the blocks, whole blocks move) in layers [l0, l0 + ln) of the
 * table's blocks hold head gh0 + (h - hw0); every other byte is still
 * SENTINEL. */
static long check(const scomm_kv_layout_t *l, const uint8_t *base,
                  const int32_t *tbl, uint32_t n, int l0, int ln, int hw0,
                  int hwn, int gh0, int wire, int sbt)
{
    size_t es = scomm_dtype_size(l->dtype), bb = scomm_kv_block_bytes(l);
    size_t D = DIM, k;
    uint8_t used[NBLK] = { 0 };
    float row[DIM], exp, bound, amax = 0.0f;
    float fin = (l->dtype == SCOMM_FLOAT16) ? 1.0f / 2048.0f : 0.0f;
    long bad = 0;
    int layer, b, t, kv, h, d, in, written;
    uint32_t i;

    fin = (l->dtype == SCOMM_BFLOAT16) ? 1.0f / 256.0f : fin;
    for (i = 0; i < n; i++) {
        used[tbl[i]] = 1 + (uint8_t)i; /* n <= NBLK < 255 */
    }
    for (layer = 0; layer < l->num_layers; layer++) {
        in = (layer >= l0) && (layer < l0 + ln);
        for (b = 0; b < l->num_blocks; b++) {
            const uint8_t *blk = base + ((size_t)layer * l->num_blocks + b) *
                                            bb;
            for (t = 0; t < l->block_tokens; t++) {
                uint64_t g = (uint64_t)(used[b] - 1) * l->block_tokens + t;

                for (kv = 0; kv < 2; kv++) {
                    for (h = 0; h < l->num_kv_heads; h++) {
                        const uint8_t *p = blk + scomm_kv_row_off(l, kv, h, t)
                                                     * es;

                        written = in && used[b] &&
                                  ((g < NTOK) || (sbt == l->block_tokens)) &&
                                  (h >= hw0) && (h < hw0 + hwn);
                        if (!written) {
                            for (k = 0; k < D * es; k++) {
                                if (p[k] != SENTINEL) {
                                    if (bad++ < 5) {
                                        fprintf(stderr, "layer %d block %d "
                                                "token %d kv %d head %d "
                                                "written outside the plan\n",
                                                layer, b, t, kv, h);
                                    }
                                    break;
                                }
                            }
                            continue;
                        }
                        scomm_cvt_to_f32(row, p, D, l->dtype);
                        if (wire != 0) {
                            amax = group_amax(layer, g / (uint64_t)sbt, sbt,
                                              kv, gh0 + h - hw0);
                        }
                        for (d = 0; d < DIM; d++) {
                            exp = kv_ref_val(layer, g, kv, gh0 + h - hw0, d);
                            bound = (wire == 0) ? 0.0f
                                    : fabsf(exp) / 16.0f + amax / 262144.0f +
                                      fin * fabsf(row[d]);
                            if (fabsf(row[d] - exp) > bound * 1.0001f) {
                                if (bad++ < 5) {
                                    fprintf(stderr, "layer %d token %llu kv "
                                            "%d head %d d %d: got %g "
                                            "expected %g\n", layer,
                                            (unsigned long long)g, kv, h, d,
                                            row[d], exp);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return bad;
}

/* This process's rchar (bytes its read calls returned, sockets included),
 * or -1 where the kernel does not count them. */
static long long rchar(void)
{
    char line[128];
    long long v = -1;
    FILE *f = fopen("/proc/self/io", "r");

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "rchar: %lld", &v) == 1) {
            break;
        }
    }
    fclose(f);
    return v;
}

static scomm_kv_opts_t opts(int wire)
{
    scomm_kv_opts_t o;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_KV_FIELD_CHUNK_SIZE | SCOMM_KV_FIELD_STREAMS |
                   SCOMM_KV_FIELD_WIRE_DTYPE | SCOMM_KV_FIELD_TOKEN |
                   SCOMM_KV_FIELD_TIMEOUT | SCOMM_KV_FIELD_ZERO_COPY;
    o.chunk_size = 8192;
    o.streams    = 2;
    o.wire_dtype = wire;
    o.token      = "kv-heads-token";
    o.timeout_ms = 20000;
    o.zero_copy  = g_cma;
    if (g_ofi) {
        o.field_mask |= SCOMM_KV_FIELD_TRANSPORT;
        o.transport   = SCOMM_KV_TRANSPORT_OFI;
    }
    return o;
}

/* Overlap of prefill rank p's heads and decode rank q's (global), or 0. */
static int overlap(const tp_t *c, int p, int q, int *lo, int *hi)
{
    int hp = H_ALL / c->P, hq = H_ALL / c->Q;

    *lo = SCOMM_MAX(p * hp, q * hq);
    *hi = SCOMM_MIN((p + 1) * hp, (q + 1) * hq);
    return *lo < *hi;
}

/* Bytes of the moved heads [lo, hi) of one pair on the wire (native). */
static uint64_t pair_bytes(const tp_t *c, int lo, int hi)
{
    return (uint64_t)nblocks(c->sbt) * (uint64_t)c->num_layers * 2 *
           (uint64_t)(hi - lo) * (uint64_t)c->sbt * DIM *
           scomm_dtype_size(c->sdt);
}

static scomm_kv_listener_t *g_lst[MAXR][MAXR];

static void close_listeners(const tp_t *c)
{
    int p, q;

    for (p = 0; p < c->P; p++) {
        for (q = 0; q < c->Q; q++) {
            scomm_kv_listener_close(g_lst[p][q]);
            g_lst[p][q] = NULL;
        }
    }
}

static int prefill_rank(const tp_t *c, int p)
{
    scomm_kv_opts_t o = opts(c->wire);
    scomm_kv_layout_t sl = lay(H_ALL / c->P, c->sbt, c->sorder, c->sdt);
    scomm_kv_layout_t dl = lay(H_ALL / c->Q, c->dbt, c->dorder, c->ddt);
    uint32_t ns = nblocks(c->sbt), nd = nblocks(c->dbt);
    int32_t stbl[NBLK], dtbl[NBLK], id;
    uint8_t *base = malloc(region_bytes(&sl));
    scomm_kv_ep_t *ep[MAXR] = { NULL };
    scomm_kv_xfer_t *xf[MAXR] = { NULL };
    scomm_kv_plan_t pl;
    scomm_kv_stats_t s;
    int port[MAXR], q, lo, hi;
    void *reg;

    for (q = 0; q < c->Q; q++) {
        port[q] = scomm_kv_listener_port(g_lst[p][q]);
    }
    close_listeners(c);
    table(stbl, ns, 100 + (uint64_t)p);
    fill(&sl, base, stbl, ns, p * sl.num_kv_heads);
    reg = kv_dev_region(kv_dev.send, base, region_bytes(&sl));
    for (q = 0; q < c->Q; q++) {
        if (!overlap(c, p, q, &lo, &hi)) {
            continue;
        }
        ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port[q], &o, &ep[q]));
        if (!g_cma) {
            scomm_kv_debug_no_cma(ep[q], 1);
        }
        ST_ASSERT_OK(scomm_kv_register(ep[q], &sl, reg, region_bytes(&sl),
                                       &id));
        table(dtbl, nd, 200 + (uint64_t)q); /* the decode rank's table */
        memset(&pl, 0, sizeof(pl));
        pl.xfer_id        = 1000 + (uint64_t)p;
        pl.src_region     = id;
        pl.dst_region     = 0;
        pl.first_layer    = c->first_layer;
        pl.num_layers     = c->num_layers;
        pl.num_tokens     = NTOK;
        pl.src_blocks     = stbl;
        pl.num_src_blocks = ns;
        pl.dst_blocks     = dtbl;
        pl.num_dst_blocks = nd;
        pl.src_head_off   = lo - p * sl.num_kv_heads;
        pl.src_head_cnt   = hi - lo;
        pl.dst_head_off   = lo - q * dl.num_kv_heads;
        pl.dst_head_cnt   = hi - lo;
        ST_ASSERT_OK(scomm_kv_submit(ep[q], &pl, 0, &xf[q]));
    }
    for (q = 0; q < c->Q; q++) {
        if (ep[q] == NULL) {
            continue;
        }
        (void)overlap(c, p, q, &lo, &hi);
        ST_ASSERT_OK(scomm_kv_xfer_wait(xf[q], 20000));
        ST_ASSERT_OK(scomm_kv_ep_stats(ep[q], &s));
        /* Only heads lo..hi-1 left this process for decode rank q. */
        ST_ASSERT_EQ(s.bytes_raw, pair_bytes(c, lo, hi));
        if (c->wire == 0) {
            ST_ASSERT_EQ(s.bytes_wire + s.bytes_zero_copy,
                         pair_bytes(c, lo, hi));
        }
        if (!g_cma) {
            ST_ASSERT_EQ(s.bytes_zero_copy, 0);
        }
        if (ipc_expected(c)) {
            /* heads lo..hi-1 written device to device, every chunk */
            ST_ASSERT_EQ(s.bytes_zero_copy, pair_bytes(c, lo, hi));
            ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep[q]), s.chunks_sent);
        } else {
            ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep[q]), 0);
        }
        scomm_kv_xfer_free(xf[q]);
        scomm_kv_ep_close(ep[q]);
    }
    kv_dev_back(kv_dev.send, base, reg, region_bytes(&sl));
    free(base);
    return 0;
}

static int decode_rank(const tp_t *c, int q)
{
    scomm_kv_layout_t dl = lay(H_ALL / c->Q, c->dbt, c->dorder, c->ddt);
    uint32_t nd = nblocks(c->dbt);
    int32_t dtbl[NBLK], id;
    uint8_t *base = malloc(region_bytes(&dl));
    scomm_kv_ep_t *ep[MAXR] = { NULL };
    scomm_kv_stats_t s;
    uint64_t want = 0, all = 0, chunks = 0;
    long long r0, r1;
    long bad;
    int p, lo, hi, zc = 0;
    void *reg;

    memset(base, SENTINEL, region_bytes(&dl));
    reg = kv_dev_region(kv_dev.recv, base, region_bytes(&dl));
    table(dtbl, nd, 200 + (uint64_t)q);
    for (p = 0; p < c->P; p++) {
        if (overlap(c, p, q, &lo, &hi)) {
            ST_ASSERT_OK(scomm_kv_accept(g_lst[p][q], 20000, &ep[p]));
            if (!g_cma) {
                scomm_kv_debug_no_cma(ep[p], 1);
            }
            want += pair_bytes(c, lo, hi);
            all  += pair_bytes(c, p * (H_ALL / c->P), (p + 1) * (H_ALL / c->P));
        }
    }
    close_listeners(c);
    /* No chunk moves before the region is registered (BEGIN_OK). */
    r0 = rchar();
    for (p = 0; p < c->P; p++) {
        if (ep[p] != NULL) {
            ST_ASSERT_OK(scomm_kv_register(ep[p], &dl, reg,
                                           region_bytes(&dl), &id));
            ST_ASSERT_EQ(id, 0);
        }
    }
    for (p = 0; p < c->P; p++) {
        if (ep[p] != NULL) {
            ST_ASSERT_OK(scomm_kv_wait_xfer(ep[p], 1000 + (uint64_t)p,
                                            20000));
        }
    }
    r1 = rchar();
    for (p = 0; p < c->P; p++) {
        if (ep[p] != NULL) {
            ST_ASSERT_OK(scomm_kv_ep_stats(ep[p], &s));
            chunks += s.chunks_recv;
            zc += (s.bytes_zero_copy > 0);
            ST_ASSERT_EQ(scomm_kv_debug_ipc_chunks(ep[p]),
                         ipc_expected(c) ? s.chunks_recv : 0);
            if (g_ofi) { /* by RMA, unless a device region is in it */
                ST_ASSERT_EQ(scomm_kv_debug_rma_chunks(ep[p]),
                             (!kv_dev.send && !kv_dev.recv) ? s.chunks_recv
                                                            : 0);
            }
            scomm_kv_ep_close(ep[p]);
        }
    }
    kv_dev_back(kv_dev.recv, base, reg, region_bytes(&dl));
    bad = check(&dl, base, dtbl, nd, c->first_layer, c->num_layers, 0,
                dl.num_kv_heads, q * dl.num_kv_heads, c->wire, c->sbt);
    if (bad != 0) {
        fprintf(stderr, "%s decode rank %d: %ld bad elements (%s)\n",
                c->name, q, bad, kv_dev_name());
        return 1;
    }
    if (!g_cma && !g_ofi && (c->wire == 0) && (r0 >= 0)) {
        /* The kernel's count: the moved heads, their frame headers and a
         * BEGIN or heartbeat or two; all heads would be `all`. */
        printf("%s decode rank %d: read %lld bytes for %llu bytes of its "
               "heads in %llu chunks (all heads: %llu)\n", c->name, q,
               r1 - r0, (unsigned long long)want,
               (unsigned long long)chunks, (unsigned long long)all);
        ST_ASSERT(r1 - r0 >= (long long)want);
        ST_ASSERT(r1 - r0 <= (long long)(want + 64 * chunks + 16384));
    }
    if (g_cma && (c->wire == 0) && !kv_dev.send && !kv_dev.recv) {
        /* All of a prefill rank's heads: copied from its memory; only some
         * of them: they come packed over the socket. */
        ST_ASSERT_EQ(zc, (c->P < c->Q) ? 0 : c->P / c->Q);
    }
    free(base);
    return 0;
}

static int run_tp(const tp_t *c)
{
    scomm_kv_opts_t o = opts(c->wire);
    pid_t pid[2 * MAXR];
    int p, q, n = 0, ws, fail = 0, k;

    for (p = 0; p < c->P; p++) {
        for (q = 0; q < c->Q; q++) {
            ST_ASSERT_OK(scomm_kv_listen("127.0.0.1", 0, &o, &g_lst[p][q]));
        }
    }
    fflush(NULL);
    for (k = 0; k < c->P + c->Q; k++) {
        pid[n] = fork();
        ST_ASSERT(pid[n] >= 0);
        if (pid[n] == 0) {
            alarm(50);
            ws = (k < c->P) ? prefill_rank(c, k) : decode_rank(c, k - c->P);
            fflush(NULL);
            _exit(ws);
        }
        n++;
    }
    close_listeners(c);
    for (k = 0; k < n; k++) {
        ST_ASSERT(waitpid(pid[k], &ws, 0) == pid[k]);
        if (!WIFEXITED(ws) || (WEXITSTATUS(ws) != 0)) {
            fprintf(stderr, "%s: %s rank %d ended with status 0x%x\n",
                    c->name, (k < c->P) ? "prefill" : "decode",
                    (k < c->P) ? k : k - c->P, ws);
            fail = 1;
        }
    }
    if (!fail) {
        printf("%s: exact on %d decode ranks\n", c->name, c->Q);
    }
    return fail;
}

static int case_tp(void)
{
    static const tp_t cs[] = {
        { "tp1->2", 1, 2, 16, SCOMM_KV_ORDER_HEAD_MAJOR, 24,
          SCOMM_KV_ORDER_TOKEN_MAJOR, SCOMM_FLOAT16, SCOMM_FLOAT16, 0,
          LAYERS, 0 },
        { "tp2->1", 2, 1, 32, SCOMM_KV_ORDER_TOKEN_MAJOR, 16,
          SCOMM_KV_ORDER_HEAD_MAJOR, SCOMM_BFLOAT16, SCOMM_BFLOAT16, 0,
          LAYERS, 0 },
        { "tp4->2", 4, 2, 16, SCOMM_KV_ORDER_HEAD_MAJOR, 8,
          SCOMM_KV_ORDER_TOKEN_MAJOR, SCOMM_FLOAT32, SCOMM_FLOAT32, 1, 2,
          0 },
        { "tp2->4", 2, 4, 24, SCOMM_KV_ORDER_TOKEN_MAJOR, 16,
          SCOMM_KV_ORDER_HEAD_MAJOR, SCOMM_FLOAT16, SCOMM_FLOAT32, 0,
          LAYERS, 0 },
        { "tp1->4", 1, 4, 16, SCOMM_KV_ORDER_HEAD_MAJOR, 32,
          SCOMM_KV_ORDER_HEAD_MAJOR, SCOMM_FLOAT16, SCOMM_FLOAT16, 0,
          LAYERS, 0 },
        { "tp2->4.fp8", 2, 4, 16, SCOMM_KV_ORDER_TOKEN_MAJOR, 16,
          SCOMM_KV_ORDER_HEAD_MAJOR, SCOMM_FLOAT16, SCOMM_FLOAT16, 0,
          LAYERS, SCOMM_KV_WIRE_FP8_E4M3 },
    };

    /* ipc: the copies take blocks as they are, so the same layout on both
     * sides; parts of the heads into parts of the heads, a layer range */
    static const tp_t ipc[] = {
        { "ipc tp1->2", 1, 2, 16, SCOMM_KV_ORDER_HEAD_MAJOR, 16,
          SCOMM_KV_ORDER_HEAD_MAJOR, SCOMM_FLOAT16, SCOMM_FLOAT16, 0,
          LAYERS, 0 },
        { "ipc tp2->1", 2, 1, 32, SCOMM_KV_ORDER_TOKEN_MAJOR, 32,
          SCOMM_KV_ORDER_TOKEN_MAJOR, SCOMM_BFLOAT16, SCOMM_BFLOAT16, 0,
          LAYERS, 0 },
        { "ipc tp4->2", 4, 2, 8, SCOMM_KV_ORDER_TOKEN_MAJOR, 8,
          SCOMM_KV_ORDER_TOKEN_MAJOR, SCOMM_FLOAT32, SCOMM_FLOAT32, 1, 2,
          0 },
        { "ipc tp2->4", 2, 4, 16, SCOMM_KV_ORDER_HEAD_MAJOR, 16,
          SCOMM_KV_ORDER_HEAD_MAJOR, SCOMM_FLOAT16, SCOMM_FLOAT16, 0,
          LAYERS, 0 },
    };
    size_t k;
    int fail = 0;

    for (k = 0; g_ipc && (k < SCOMM_ARRAY_SIZE(ipc)); k++) {
        fail |= run_tp(&ipc[k]);
    }
    for (k = 0; k < SCOMM_ARRAY_SIZE(cs); k++) {
        if (g_ofi && (k != 0) && (k != 2) && (k != 3)) {
            continue; /* ofi: 1->2, 4->2, 2->4 (endpoints cost ~0.3 s) */
        }
        if (g_ipc) {
            break; /* staged: mp.kv.dev.device.heads (and ipc_refused) */
        }
        kv_dev_sides((int)k);
        fail |= run_tp(&cs[k]);
    }
    return fail;
}

/* ---- bad and partial ranges, one pair ---- */

static int bad_recv(int port)
{
    scomm_kv_opts_t o = opts(0);
    scomm_kv_layout_t dl = lay(H_ALL, 24, SCOMM_KV_ORDER_TOKEN_MAJOR,
                               SCOMM_FLOAT16);
    uint32_t nd = nblocks(24);
    int32_t dtbl[NBLK], id;
    uint8_t *base = malloc(region_bytes(&dl));
    scomm_kv_ep_t *ep;
    const char *e;

    memset(base, SENTINEL, region_bytes(&dl));
    table(dtbl, nd, 300);
    ST_ASSERT_OK(scomm_kv_connect("127.0.0.1", port, &o, &ep));
    ST_ASSERT_OK(scomm_kv_register(ep, &dl, base, region_bytes(&dl), &id));
    /* 1: source heads 1..2 into heads 7..8 of 8: refused before a byte
     * lands. */
    ST_ASSERT_STATUS(scomm_kv_wait_xfer(ep, 1, 20000), SCOMM_ERR_MISMATCH);
    e = scomm_last_error();
    printf("receiver: %s\n", e);
    ST_ASSERT(strstr(e, "heads 7..8") != NULL);
    ST_ASSERT(strstr(e, "has 8 kv heads") != NULL);
    /* 2: source heads 2..4 of 4 into heads 5..7: the others untouched. */
    ST_ASSERT_OK(scomm_kv_wait_xfer(ep, 2, 20000));
    if (check(&dl, base, dtbl, nd, 0, LAYERS, 5, 2, 2, 0, 16) != 0) {
        return 1;
    }
    scomm_kv_ep_close(ep);
    free(base);
    return 0;
}

static int bad_send(scomm_kv_listener_t *lst)
{
    scomm_kv_layout_t sl = lay(4, 16, SCOMM_KV_ORDER_HEAD_MAJOR,
                               SCOMM_FLOAT16);
    uint32_t ns = nblocks(16), nd = nblocks(24);
    int32_t stbl[NBLK], dtbl[NBLK], id;
    uint8_t *base = malloc(region_bytes(&sl));
    scomm_kv_ep_t *ep;
    scomm_kv_xfer_t *xf;
    scomm_kv_plan_t pl;
    const char *e;

    table(stbl, ns, 301);
    table(dtbl, nd, 300);
    fill(&sl, base, stbl, ns, 0);
    ST_ASSERT_OK(scomm_kv_accept(lst, 20000, &ep));
    scomm_kv_debug_no_cma(ep, !g_cma);
    ST_ASSERT_OK(scomm_kv_register(ep, &sl, base, region_bytes(&sl), &id));
    memset(&pl, 0, sizeof(pl));
    pl.xfer_id = 1;
    pl.num_layers = LAYERS;
    pl.num_tokens = NTOK;
    pl.src_blocks = stbl;
    pl.num_src_blocks = ns;
    pl.dst_blocks = dtbl;
    pl.num_dst_blocks = nd;
    /* Refused here: outside the source, counts that differ. */
    pl.src_head_off = 3;
    pl.src_head_cnt = 2;
    ST_ASSERT_STATUS(scomm_kv_submit(ep, &pl, 0, &xf), SCOMM_ERR_INVALID_ARG);
    pl.src_head_off = -1;
    pl.src_head_cnt = 1;
    ST_ASSERT_STATUS(scomm_kv_submit(ep, &pl, 0, &xf), SCOMM_ERR_INVALID_ARG);
    pl.src_head_off = 1;
    pl.src_head_cnt = 2;
    pl.dst_head_cnt = 3;
    ST_ASSERT_STATUS(scomm_kv_submit(ep, &pl, 0, &xf), SCOMM_ERR_INVALID_ARG);
    e = scomm_last_error();
    ST_ASSERT(strstr(e, "head range 1+2") != NULL);
    /* Refused by the receiver: heads 7..8 of its 8. */
    pl.dst_head_off = 7;
    pl.dst_head_cnt = 0;
    ST_ASSERT_OK(scomm_kv_submit(ep, &pl, 0, &xf));
    ST_ASSERT_STATUS(scomm_kv_xfer_wait(xf, 20000), SCOMM_ERR_MISMATCH);
    e = scomm_last_error();
    printf("sender: %s\n", e);
    ST_ASSERT(strstr(e, "kv heads 1..2 of its 4") != NULL);
    scomm_kv_xfer_free(xf);
    /* Accepted: heads 2..3 (count 0: to the last) into 5..6 of 8. */
    pl.xfer_id = 2;
    pl.src_head_off = 2;
    pl.src_head_cnt = 0;
    pl.dst_head_off = 5;
    pl.dst_head_cnt = 2;
    ST_ASSERT_OK(scomm_kv_submit(ep, &pl, 0, &xf));
    ST_ASSERT_OK(scomm_kv_xfer_wait(xf, 20000));
    scomm_kv_xfer_free(xf);
    scomm_kv_ep_close(ep);
    free(base);
    return 0;
}

static int case_bad(void)
{
    scomm_kv_opts_t o = opts(0);
    scomm_kv_listener_t *lst;
    pid_t pid;
    int ws, rc, port;

    ST_ASSERT_OK(scomm_kv_listen("127.0.0.1", 0, &o, &lst));
    port = scomm_kv_listener_port(lst);
    fflush(NULL);
    pid = fork();
    ST_ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(50);
        scomm_kv_listener_close(lst);
        rc = bad_recv(port);
        fflush(NULL);
        _exit(rc);
    }
    rc = bad_send(lst);
    scomm_kv_listener_close(lst);
    ST_ASSERT(waitpid(pid, &ws, 0) == pid);
    if (!WIFEXITED(ws) || (WEXITSTATUS(ws) != 0)) {
        fprintf(stderr, "receiver ended with status 0x%x\n", ws);
        return 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *which = (argc > 1) ? argv[1] : "tp";

    g_cma = (argc > 2) && (strcmp(argv[2], "cma") == 0);
    g_ipc = (argc > 2) && (strcmp(argv[2], "ipc") == 0);
    g_cma |= g_ipc;
    if (!g_ipc) {
        setenv("SCOMM_KV_IPC", "0", 0); /* these cases test staging */
    }
    kv_dev_init();
    g_ofi = (argc > 2) && (strcmp(argv[2], "ofi") == 0);
    signal(SIGPIPE, SIG_IGN);
    if (g_ofi && kv_ofi_missing()) {
        return 77;
    }
    if (strcmp(which, "tp") == 0) {
        return case_tp();
    }
    if (strcmp(which, "bad") == 0) {
        return case_bad();
    }
    fprintf(stderr, "unknown case %s\n", which);
    return 2;
}
