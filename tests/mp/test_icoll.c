/*
 * test_icoll.c - the non-blocking collectives (src/overlap) against an
 * independent reference, over real processes (SCOMM_TRANSPORTS picks shm
 * or tcp; SCOMM_PROGRESS thread or inline).
 *
 * Reference: every rank can compute every rank's input from (seed, rank,
 * index), so each rank computes the expected output itself, in int64 or
 * double arithmetic, without the library's kernels. Inputs are small
 * integers (1..5) so every float result is exact and compared bit for bit.
 *
 * Sections:
 *  - reductions: all_reduce (in place and not), reduce_scatter (both),
 *    reduce (every root) over int8, int32, uint64, float32, float64,
 *    bfloat16 x sum/prod/max/min/avg x counts 0, 1, 7, 1021, 65539, all
 *    issued as i-forms at once (dozens in flight) interleaved with
 *    isend/irecv around the ring, completed with scomm_wait_all in one
 *    call, some with scomm_test loops;
 *  - data movement: all_gather, broadcast, all_to_all, all_to_allv (arrays
 *    freed right after the call), gather, scatter, barrier, in place and
 *    not, uint8/int32/float64, every root;
 *  - order: a blocking collective issued between non-blocking ones;
 *  - groups and fusion: 200 small all_reduces (two dtypes, so two kinds of
 *    batch) and a deferred blocking all_reduce inside a group; stats;
 *    1 op per group;
 *  - the chunked all_reduce with produce/consume callbacks;
 *  - argument errors name the argument and leave no request;
 *  - idle CPU of a communicator with a progress thread (< 2 % of a core);
 *  - ST_BUF=device|mixed (tests/harness/st_dev.h): every case's buffers
 *    are fake device memory (all ranks, or even ranks), staged by
 *    src/backend/stage.c; the ring traffic stays on host memory, so one
 *    scomm_wait_all mixes staged and host requests;
 *  - `--abort`: scomm_comm_abort from another thread ends a wait on a
 *    collective the peer never joins within 1 s; `--lost`: a peer exits
 *    with operations queued, the survivor's wait names it; `--destroy`:
 *    destroy with queued operations finishes them and never hangs.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "scomm.h"
#include "st_dev.h"
#include "st_test.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Input of rank r at index i: 1..5. */
static int64_t val(uint64_t seed, int r, size_t i)
{
    return 1 + (int64_t)(mix64(seed ^ mix64(((uint64_t)r << 40) ^ i)) % 5);
}

/* Data-movement pattern of rank r at index i (32 bits). */
static uint32_t pat(uint64_t seed, int r, size_t i)
{
    return (uint32_t)mix64(seed * 31 + mix64(((uint64_t)r << 40) ^ i));
}

/* ---- typed access (independent of the library) ------------------------- */

static size_t esz(scomm_dtype_t dt)
{
    switch (dt) {
    case SCOMM_INT8:
    case SCOMM_UINT8:
        return 1;
    case SCOMM_BFLOAT16:
        return 2;
    case SCOMM_INT32:
    case SCOMM_FLOAT32:
        return 4;
    default:
        return 8;
    }
}

static int is_float(scomm_dtype_t dt)
{
    return (dt == SCOMM_FLOAT32) || (dt == SCOMM_FLOAT64) ||
           (dt == SCOMM_BFLOAT16);
}

/* Store x (an integer or an exact double) as dtype. */
static void put(void *buf, scomm_dtype_t dt, size_t i, double x)
{
    float f = (float)x;
    uint32_t b;

    switch (dt) {
    case SCOMM_INT8:
        ((uint8_t *)buf)[i] = (uint8_t)((int64_t)x & 0xff);
        break;
    case SCOMM_UINT8:
        ((uint8_t *)buf)[i] = (uint8_t)((int64_t)x & 0xff);
        break;
    case SCOMM_INT32:
        ((int32_t *)buf)[i] = (int32_t)(int64_t)x;
        break;
    case SCOMM_UINT64:
        ((uint64_t *)buf)[i] = (uint64_t)(int64_t)x;
        break;
    case SCOMM_FLOAT32:
        ((float *)buf)[i] = f;
        break;
    case SCOMM_FLOAT64:
        ((double *)buf)[i] = x;
        break;
    case SCOMM_BFLOAT16:
        memcpy(&b, &f, 4);
        ((uint16_t *)buf)[i] = (uint16_t)(b >> 16); /* exact: small ints */
        break;
    default:
        ST_ASSERT(0);
    }
}

/* ---- cases --------------------------------------------------------------- */

enum { K_AR, K_RS, K_RED, K_AG, K_BC, K_A2A, K_A2AV, K_GA, K_SC, K_BAR };

typedef struct icase {
    int           kind;
    scomm_dtype_t dt;
    scomm_redop_t op;
    size_t        count;
    int           root;
    int           inplace;
    uint64_t      seed;
    void         *send;
    void         *recv;
    size_t        sbytes;
    size_t        rbytes;
    size_t        rc[64];   /* all_to_allv receive counts / displs */
    size_t        rd[64];
    scomm_req_t  *req;
    int           dv_on;    /* ST_BUF: on device copies (st_dev.h) */
    st_dev_call_t dv;
} icase_t;

typedef struct {
    scomm_comm_t *comm;
    int           rank;
    int           size;
} tctx_t;

/* Expected reduction of element i (over ranks) as a double/int. */
static double expect_red(const icase_t *c, int p, size_t i)
{
    int64_t acc = val(c->seed, 0, i), v;
    int r;

    for (r = 1; r < p; r++) {
        v = val(c->seed, r, i);
        switch (c->op) {
        case SCOMM_SUM:
        case SCOMM_AVG:
            acc += v;
            break;
        case SCOMM_PROD:
            acc *= v;
            break;
        case SCOMM_MAX:
            acc = (v > acc) ? v : acc;
            break;
        default:
            acc = (v < acc) ? v : acc;
            break;
        }
    }
    if (c->op == SCOMM_AVG) {
        if (is_float(c->dt)) {
            return (double)acc / p;
        }
        return (double)(acc / p);
    }
    return (double)acc;
}

static void fill_garbage(void *buf, size_t bytes)
{
    memset(buf, 0xab, bytes);
}

/* Compare element i of buf with x stored as dtype, bit for bit. */
static void check_elem(const tctx_t *t, const icase_t *c, const void *buf,
                       size_t i, double x, const char *what)
{
    unsigned char want[8];
    size_t es = esz(c->dt);

    put(want, c->dt, 0, x);
    if (memcmp((const char *)buf + i * es, want, es) != 0) {
        double got = 0;

        if (c->dt == SCOMM_FLOAT32) {
            got = ((const float *)buf)[i];
        } else if (c->dt == SCOMM_FLOAT64) {
            got = ((const double *)buf)[i];
        } else if (c->dt == SCOMM_INT32) {
            got = ((const int32_t *)buf)[i];
        }
        fprintf(stderr, "rank %d: %s kind %d dt %d op %d count %zu root %d "
                "inplace %d: element %zu: got %g expected %g\n", t->rank,
                what, c->kind, (int)c->dt, (int)c->op, c->count, c->root,
                c->inplace, i, got, x);
        ST_ASSERT(0);
    }
}

/* Issue case c as a non-blocking call (or blocking when req_p NULL). */
/* ST_BUF: the case's buffers to device copies, sl and rl bytes of them;
 * the call carries the device hint in device mode (st_dev.h). */
static void dv_begin(const tctx_t *t, icase_t *c, size_t sl, size_t rl)
{
    c->dv_on = st_dev_on(t->comm);
    if (!c->dv_on) {
        return;
    }
    st_dev_begin(&c->dv, c->send, sl, c->recv, rl);
    if (st_dev.mode == 1) {
        ST_ASSERT_OK(scomm_mem_kind_hint(t->comm, SCOMM_MEM_CUDA));
    }
}

#define SB(c) ((c)->dv_on ? (void *)(c)->dv.ds : (c)->send)
#define RB(c) ((c)->dv_on ? (void *)(c)->dv.dr : (c)->recv)

static scomm_status_t issue_(const tctx_t *t, icase_t *c, int blocking);

static scomm_status_t issue(const tctx_t *t, icase_t *c, int blocking)
{
    scomm_status_t s = issue_(t, c, blocking);

    if (c->dv_on) {
        ST_ASSERT_OK(scomm_mem_kind_hint(t->comm, SCOMM_MEM_AUTO));
    }
    return s;
}

static scomm_status_t issue_(const tctx_t *t, icase_t *c, int blocking)
{
    int p = t->size, r = t->rank, q;
    size_t es = esz(c->dt), n = c->count, i, off;
    size_t *sc, *sd, *rc, *rd;
    scomm_req_t **rq = blocking ? NULL : &c->req;
    scomm_status_t s;

    c->req = NULL;
    switch (c->kind) {
    case K_AR:
        c->rbytes = n * es;
        c->recv   = malloc(c->rbytes + 1);
        c->send   = c->inplace ? c->recv : malloc(c->rbytes + 1);
        for (i = 0; i < n; i++) {
            put(c->send, c->dt, i, (double)val(c->seed, r, i));
        }
        if (!c->inplace) {
            fill_garbage(c->recv, c->rbytes);
        }
        dv_begin(t, c, c->rbytes, c->rbytes);
        return blocking ? scomm_all_reduce(SB(c), RB(c), n, c->dt, c->op,
                                           t->comm)
                        : scomm_iall_reduce(SB(c), RB(c), n, c->dt,
                                            c->op, t->comm, rq);
    case K_RS:
        c->sbytes = n * es * (size_t)p;
        c->send   = malloc(c->sbytes + 1);
        for (i = 0; i < n * (size_t)p; i++) {
            put(c->send, c->dt, i, (double)val(c->seed, r, i));
        }
        if (c->inplace) {
            c->recv = (char *)c->send + (size_t)r * n * es;
        } else {
            c->recv = malloc(n * es + 1);
            fill_garbage(c->recv, n * es);
        }
        dv_begin(t, c, n * es * (size_t)p, n * es);
        return blocking ? scomm_reduce_scatter(SB(c), RB(c), n, c->dt,
                                               c->op, t->comm)
                        : scomm_ireduce_scatter(SB(c), RB(c), n, c->dt,
                                                c->op, t->comm, rq);
    case K_RED:
        c->send = malloc(n * es + 1);
        for (i = 0; i < n; i++) {
            put(c->send, c->dt, i, (double)val(c->seed, r, i));
        }
        c->recv = NULL;
        if (r == c->root) {
            c->recv = c->inplace ? c->send : malloc(n * es + 1);
            if (!c->inplace) {
                fill_garbage(c->recv, n * es);
            }
        }
        dv_begin(t, c, n * es, n * es);
        return blocking ? scomm_reduce(SB(c), RB(c), n, c->dt, c->op,
                                       c->root, t->comm)
                        : scomm_ireduce(SB(c), RB(c), n, c->dt, c->op,
                                        c->root, t->comm, rq);
    case K_AG:
        c->recv = malloc(n * es * (size_t)p + 1);
        fill_garbage(c->recv, n * es * (size_t)p);
        c->send = c->inplace ? (char *)c->recv + (size_t)r * n * es
                             : malloc(n * es + 1);
        for (i = 0; i < n; i++) {
            put(c->send, c->dt, i, (double)(pat(c->seed, r, i) & 0x7f));
        }
        dv_begin(t, c, n * es, n * es * (size_t)p);
        return blocking ? scomm_all_gather(SB(c), RB(c), n, c->dt,
                                           t->comm)
                        : scomm_iall_gather(SB(c), RB(c), n, c->dt,
                                            t->comm, rq);
    case K_BC:
        c->send = malloc(n * es + 1);
        c->recv = c->send;
        fill_garbage(c->send, n * es);
        if (r == c->root) {
            for (i = 0; i < n; i++) {
                put(c->send, c->dt, i, (double)(pat(c->seed, r, i) & 0x7f));
            }
        }
        dv_begin(t, c, n * es, n * es);
        return blocking ? scomm_broadcast(RB(c), n, c->dt, c->root,
                                          t->comm)
                        : scomm_ibroadcast(RB(c), n, c->dt, c->root,
                                           t->comm, rq);
    case K_A2A:
        c->recv = malloc(n * es * (size_t)p + 1);
        c->send = c->inplace ? c->recv : malloc(n * es * (size_t)p + 1);
        if (!c->inplace) {
            fill_garbage(c->recv, n * es * (size_t)p);
        }
        for (i = 0; i < n * (size_t)p; i++) {
            put(c->send, c->dt, i, (double)(pat(c->seed, r, i) & 0x7f));
        }
        dv_begin(t, c, n * es * (size_t)p, n * es * (size_t)p);
        return blocking ? scomm_all_to_all(SB(c), RB(c), n, c->dt,
                                           t->comm)
                        : scomm_iall_to_all(SB(c), RB(c), n, c->dt,
                                            t->comm, rq);
    case K_A2AV:
        sc = malloc((size_t)p * sizeof(size_t));
        sd = malloc((size_t)p * sizeof(size_t));
        rc = malloc((size_t)p * sizeof(size_t));
        rd = malloc((size_t)p * sizeof(size_t));
        ST_ASSERT((sc != NULL) && (sd != NULL) && (rc != NULL) &&
                  (rd != NULL));
        for (q = 0, off = 0; q < p; q++) {
            sc[q] = n + 2 * (size_t)q + (size_t)r;
            sd[q] = off;
            off += sc[q] + 1; /* gaps between blocks */
        }
        c->sbytes = off * es;
        c->send   = malloc(off * es + 1);
        for (q = 0; q < p; q++) {
            for (i = 0; i < sc[q]; i++) {
                put(c->send, c->dt, sd[q] + i,
                    (double)(pat(c->seed, r, (size_t)q * 100000 + i) &
                             0x7f));
            }
        }
        for (q = 0, off = 0; q < p; q++) {
            rc[q] = n + 2 * (size_t)r + (size_t)q;
            rd[q] = off;
            off += rc[q] + 2;
            c->rc[q] = rc[q];
            c->rd[q] = rd[q];
        }
        c->rbytes = off * es;
        c->recv   = malloc(c->rbytes + 1);
        fill_garbage(c->recv, c->rbytes);
        dv_begin(t, c, c->sbytes, c->rbytes);
        s = blocking ? scomm_all_to_allv(SB(c), sc, sd, RB(c), rc, rd,
                                         c->dt, t->comm)
                     : scomm_iall_to_allv(SB(c), sc, sd, RB(c), rc, rd,
                                          c->dt, t->comm, rq);
        /* The arrays may go at once: the library copied them. */
        memset(sc, 0xff, (size_t)p * sizeof(size_t));
        memset(rc, 0xff, (size_t)p * sizeof(size_t));
        free(sc);
        free(sd);
        free(rc);
        free(rd);
        return s;
    case K_GA:
        c->send = malloc(n * es + 1);
        for (i = 0; i < n; i++) {
            put(c->send, c->dt, i, (double)(pat(c->seed, r, i) & 0x7f));
        }
        c->recv = NULL;
        if (r == c->root) {
            c->recv = malloc(n * es * (size_t)p + 1);
            fill_garbage(c->recv, n * es * (size_t)p);
            if (c->inplace) {
                memcpy((char *)c->recv + (size_t)r * n * es, c->send,
                       n * es);
                free(c->send);
                c->send = (char *)c->recv + (size_t)r * n * es;
            }
        }
        dv_begin(t, c, n * es, n * es * (size_t)p);
        return blocking ? scomm_gather(SB(c), RB(c), n, c->dt, c->root,
                                       t->comm)
                        : scomm_igather(SB(c), RB(c), n, c->dt, c->root,
                                        t->comm, rq);
    case K_SC:
        c->send = NULL;
        if (r == c->root) {
            c->send = malloc(n * es * (size_t)p + 1);
            for (i = 0; i < n * (size_t)p; i++) {
                put(c->send, c->dt, i, (double)(pat(c->seed, r, i) & 0x7f));
            }
        }
        if ((r == c->root) && c->inplace) {
            c->recv = (char *)c->send + (size_t)r * n * es;
        } else {
            c->recv = malloc(n * es + 1);
            fill_garbage(c->recv, n * es);
        }
        dv_begin(t, c, n * es * (size_t)p, n * es);
        return blocking ? scomm_scatter(SB(c), RB(c), n, c->dt, c->root,
                                        t->comm)
                        : scomm_iscatter(SB(c), RB(c), n, c->dt,
                                         c->root, t->comm, rq);
    default:
        c->send = NULL;
        c->recv = NULL;
        return blocking ? scomm_barrier(t->comm)
                        : scomm_ibarrier(t->comm, rq);
    }
}

/* Check the output of a completed case, then free its buffers. */
static void verify(const tctx_t *t, icase_t *c)
{
    int p = t->size, r = t->rank, q;
    size_t n = c->count, i;
    int own_send = 1, own_recv = 1;

    if (c->dv_on) {
        st_dev_end(&c->dv); /* the output back to the test's buffer */
        c->dv_on = 0;
    }

    switch (c->kind) {
    case K_AR:
        for (i = 0; i < n; i++) {
            check_elem(t, c, c->recv, i, expect_red(c, p, i), "all_reduce");
        }
        own_send = !c->inplace;
        break;
    case K_RS: {
        icase_t full = *c;

        for (i = 0; i < n; i++) {
            check_elem(t, c, c->recv, i,
                       expect_red(&full, p, (size_t)r * n + i),
                       "reduce_scatter");
        }
        own_recv = !c->inplace;
        break;
    }
    case K_RED:
        if (r == c->root) {
            for (i = 0; i < n; i++) {
                check_elem(t, c, c->recv, i, expect_red(c, p, i), "reduce");
            }
        }
        own_recv = (r == c->root) && !c->inplace;
        break;
    case K_AG:
        for (q = 0; q < p; q++) {
            for (i = 0; i < n; i++) {
                check_elem(t, c, c->recv, (size_t)q * n + i,
                           (double)(pat(c->seed, q, i) & 0x7f),
                           "all_gather");
            }
        }
        own_send = !c->inplace;
        break;
    case K_BC:
        for (i = 0; i < n; i++) {
            check_elem(t, c, c->recv, i,
                       (double)(pat(c->seed, c->root, i) & 0x7f),
                       "broadcast");
        }
        own_recv = 0;
        break;
    case K_A2A:
        for (q = 0; q < p; q++) {
            for (i = 0; i < n; i++) {
                check_elem(t, c, c->recv, (size_t)q * n + i,
                           (double)(pat(c->seed, q, (size_t)r * n + i) &
                                    0x7f), "all_to_all");
            }
        }
        own_send = !c->inplace;
        break;
    case K_A2AV:
        for (q = 0; q < p; q++) {
            for (i = 0; i < c->rc[q]; i++) {
                check_elem(t, c, c->recv, c->rd[q] + i,
                           (double)(pat(c->seed, q,
                                        (size_t)r * 100000 + i) & 0x7f),
                           "all_to_allv");
            }
        }
        break;
    case K_GA:
        if (r == c->root) {
            for (q = 0; q < p; q++) {
                for (i = 0; i < n; i++) {
                    check_elem(t, c, c->recv, (size_t)q * n + i,
                               (double)(pat(c->seed, q, i) & 0x7f),
                               "gather");
                }
            }
        }
        own_send = !((r == c->root) && c->inplace);
        break;
    case K_SC:
        for (i = 0; i < n; i++) {
            check_elem(t, c, c->recv, i,
                       (double)(pat(c->seed, c->root, (size_t)r * n + i) &
                                0x7f), "scatter");
        }
        own_recv = !((r == c->root) && c->inplace);
        break;
    default:
        break;
    }
    if (own_send) {
        free(c->send);
    }
    if (own_recv) {
        free(c->recv);
    }
    c->send = NULL;
    c->recv = NULL;
}

/* ---- sections ------------------------------------------------------------ */

static const size_t counts[] = {0, 1, 7, 1021, 65539};
#define NCOUNTS (sizeof(counts) / sizeof(counts[0]))

/* Ring p2p traffic interleaved with the collectives: tag k, 8 words. */
typedef struct {
    uint64_t     out[8];
    uint64_t     in[8];
    scomm_req_t *rs;
    scomm_req_t *rr;
} ring_t;

static void ring_post(const tctx_t *t, ring_t *g, int k)
{
    int right = (t->rank + 1) % t->size;
    int left  = (t->rank - 1 + t->size) % t->size;
    int i;

    for (i = 0; i < 8; i++) {
        g->out[i] = ((uint64_t)t->rank << 32) | ((uint64_t)k << 8) |
                    (uint64_t)i;
        g->in[i] = 0;
    }
    ST_ASSERT_OK(scomm_irecv(g->in, 8, SCOMM_UINT64, left, k, t->comm,
                             &g->rr));
    ST_ASSERT_OK(scomm_isend(g->out, 8, SCOMM_UINT64, right, k, t->comm,
                             &g->rs));
}

static void ring_check(const tctx_t *t, const ring_t *g, int k)
{
    int left = (t->rank - 1 + t->size) % t->size;
    int i;

    for (i = 0; i < 8; i++) {
        ST_ASSERT_EQ(g->in[i], ((uint64_t)left << 32) | ((uint64_t)k << 8) |
                                   (uint64_t)i);
    }
}

/* Issue all cases non-blocking with ring traffic between them, complete
 * them all in one scomm_wait_all (every 3rd with a scomm_test loop). */
static void run_batch(const tctx_t *t, icase_t *cs, int n)
{
    scomm_req_t **reqs = calloc((size_t)(3 * n), sizeof(*reqs));
    ring_t *rings      = calloc((size_t)n, sizeof(*rings));
    int i, nr = 0;
    int32_t done;

    ST_ASSERT((reqs != NULL) && (rings != NULL));
    for (i = 0; i < n; i++) {
        ST_ASSERT_OK(issue(t, &cs[i], 0));
        ST_ASSERT(cs[i].req != NULL);
        ring_post(t, &rings[i], i % 1000);
    }
    for (i = 0; i < n; i++) {
        if (i % 3 == 0) {
            do {
                ST_ASSERT_OK(scomm_test(cs[i].req, &done));
            } while (!done);
            cs[i].req = NULL;
        } else {
            reqs[nr++] = cs[i].req;
        }
        reqs[nr++] = rings[i].rs;
        reqs[nr++] = rings[i].rr;
    }
    ST_ASSERT_OK(scomm_wait_all((size_t)nr, reqs));
    for (i = 0; i < n; i++) {
        ring_check(t, &rings[i], i % 1000);
        verify(t, &cs[i]);
    }
    free(reqs);
    free(rings);
}

static void sec_reductions(const tctx_t *t)
{
    static const scomm_dtype_t dts[] = {SCOMM_INT8, SCOMM_INT32,
                                        SCOMM_UINT64, SCOMM_FLOAT32,
                                        SCOMM_FLOAT64, SCOMM_BFLOAT16};
    icase_t *cs = calloc(NCOUNTS * 5 * 5, sizeof(*cs));
    size_t d, k;
    int o, n, kind;
    double t0 = now_s();

    ST_ASSERT(cs != NULL);
    for (d = 0; d < sizeof(dts) / sizeof(dts[0]); d++) {
        n = 0;
        for (o = 0; o < SCOMM_REDOP_COUNT; o++) {
            if ((dts[d] == SCOMM_BFLOAT16) &&
                ((o == SCOMM_PROD) || (o == SCOMM_AVG))) {
                continue; /* not exact in bfloat16 */
            }
            for (k = 0; k < NCOUNTS; k++) {
                for (kind = 0; kind < 4; kind++) {
                    icase_t *c = &cs[n++];

                    memset(c, 0, sizeof(*c));
                    c->kind    = (kind < 2) ? K_AR : (kind == 2) ? K_RS
                                                                 : K_RED;
                    c->inplace = (kind == 1) || ((kind >= 2) && (k % 2));
                    c->dt      = dts[d];
                    c->op      = (scomm_redop_t)o;
                    c->count   = counts[k];
                    c->root    = (int)(k + (size_t)o) % t->size;
                    c->seed    = 1000 * d + 100 * (size_t)o + 10 * k +
                              (size_t)kind;
                    if ((c->kind == K_RS) && (c->count > 4096)) {
                        c->count = 4099;
                    }
                }
            }
        }
        run_batch(t, cs, n);
    }
    free(cs);
    if (t->rank == 0) {
        printf("  reductions (6 dtypes x ops x counts, in flight) %.2f s\n",
               now_s() - t0);
    }
}

static void sec_movement(const tctx_t *t)
{
    static const scomm_dtype_t dts[] = {SCOMM_UINT8, SCOMM_INT32,
                                        SCOMM_FLOAT64};
    static const int kinds[] = {K_AG, K_BC, K_A2A, K_A2AV, K_GA, K_SC,
                                K_BAR};
    icase_t cs[3 * 7 * NCOUNTS * 2];
    size_t d, k, m;
    int n = 0, ip;
    double t0 = now_s();

    for (d = 0; d < 3; d++) {
        n = 0;
        for (m = 0; m < sizeof(kinds) / sizeof(kinds[0]); m++) {
            for (k = 0; k < NCOUNTS; k++) {
                for (ip = 0; ip < 2; ip++) {
                    icase_t *c = &cs[n++];

                    memset(c, 0, sizeof(*c));
                    c->kind    = kinds[m];
                    c->dt      = dts[d];
                    c->count   = counts[k];
                    c->inplace = ip && (c->kind != K_A2AV) &&
                                 (c->kind != K_BC);
                    c->root    = (int)(k + m + (size_t)ip) % t->size;
                    c->seed    = 7 + 1000 * d + 100 * m + 10 * k +
                              (size_t)ip;
                    if (c->count > 4096) {
                        c->count = 4099; /* keep all_to_all(v) small */
                    }
                }
            }
        }
        run_batch(t, cs, n);
    }
    if (t->rank == 0) {
        printf("  data movement (7 ops x 3 dtypes, in flight) %.2f s\n",
               now_s() - t0);
    }
}

/* A blocking collective between non-blocking ones keeps issue order. */
static void sec_order(const tctx_t *t)
{
    icase_t a, b, c;
    int rep;

    for (rep = 0; rep < 20; rep++) {
        memset(&a, 0, sizeof(a));
        a.kind  = K_AR;
        a.dt    = SCOMM_INT32;
        a.op    = SCOMM_SUM;
        a.count = (rep % 2) ? 65539 : 7;
        a.seed  = 500 + (uint64_t)rep;
        b       = a;
        b.seed += 1000;
        b.kind  = (rep % 3 == 0) ? K_BAR : K_AR;
        c       = a;
        c.seed += 2000;
        c.kind  = K_BC;
        c.root  = rep % t->size;
        ST_ASSERT_OK(issue(t, &a, 0));
        ST_ASSERT_OK(issue(t, &b, 1)); /* blocking, behind a */
        ST_ASSERT_OK(issue(t, &c, 0));
        ST_ASSERT_OK(scomm_wait(c.req));
        ST_ASSERT_OK(scomm_wait(a.req));
        verify(t, &a);
        verify(t, &b);
        verify(t, &c);
    }
}

static void sec_groups(const tctx_t *t)
{
    enum { N = 200 };
    static icase_t cs[N];
    icase_t blk, one;
    scomm_overlap_stats_t st0, st1;
    scomm_req_t *reqs[N];
    int i, nr = 0;

    ST_ASSERT_OK(scomm_overlap_stats(t->comm, &st0));
    ST_ASSERT_OK(scomm_group_start());
    ST_ASSERT_OK(scomm_group_start()); /* nested: only the outer acts */
    for (i = 0; i < N; i++) {
        memset(&cs[i], 0, sizeof(cs[i]));
        cs[i].kind    = K_AR;
        cs[i].dt      = (i < N / 2) ? SCOMM_FLOAT32 : SCOMM_INT32;
        cs[i].op      = (i % 7 == 0) ? SCOMM_MAX : SCOMM_SUM;
        cs[i].count   = 1 + (size_t)(i * 37) % 1024;
        cs[i].inplace = (i % 5 == 0);
        cs[i].seed    = 9000 + (uint64_t)i;
        ST_ASSERT_OK(issue(t, &cs[i], 0));
        if (i == N / 2) {
            int32_t done = 1;

            /* Inside its group a request is not started. */
            ST_ASSERT_OK(scomm_test(cs[i].req, &done));
            ST_ASSERT_EQ(done, 0);
        }
    }
    memset(&blk, 0, sizeof(blk));
    blk.kind  = K_AR;
    blk.dt    = SCOMM_FLOAT64;
    blk.op    = SCOMM_SUM;
    blk.count = 333;
    blk.seed  = 777;
    ST_ASSERT_OK(issue(t, &blk, 1)); /* deferred to group_end */
    ST_ASSERT_OK(scomm_group_end());
    ST_ASSERT_OK(scomm_group_end());
    ST_ASSERT_STATUS(scomm_group_end(), SCOMM_ERR_INVALID_USAGE);
    verify(t, &blk);
    for (i = 0; i < N; i++) {
        reqs[nr++] = cs[i].req;
    }
    ST_ASSERT_OK(scomm_wait_all((size_t)nr, reqs));
    for (i = 0; i < N; i++) {
        verify(t, &cs[i]);
    }
    ST_ASSERT_OK(scomm_overlap_stats(t->comm, &st1));
    ST_ASSERT_EQ(st1.ops_submitted - st0.ops_submitted, N + 1);
    ST_ASSERT(st1.fused_batches - st0.fused_batches >= 2);
    ST_ASSERT(st1.ops_fused - st0.ops_fused >= N / 2);
    ST_ASSERT(st1.groups > st0.groups);
    ST_ASSERT_EQ(st1.ops_completed, st1.ops_submitted);

    /* One op alone in a group, blocking: runs, nothing fused. */
    memset(&one, 0, sizeof(one));
    one.kind  = K_AR;
    one.dt    = SCOMM_INT32;
    one.op    = SCOMM_PROD;
    one.count = 5;
    one.seed  = 31337;
    ST_ASSERT_OK(scomm_group_start());
    ST_ASSERT_OK(issue(t, &one, 1));
    ST_ASSERT_OK(scomm_group_end());
    verify(t, &one);

    /* Fusion turned off at run time (every rank alike): the same kind of
     * group runs op by op, results still right, nothing fused. */
    ST_ASSERT_OK(scomm_control_set(t->comm, "fusion", "off"));
    ST_ASSERT_OK(scomm_overlap_stats(t->comm, &st0));
    ST_ASSERT_OK(scomm_group_start());
    for (i = 0; i < 20; i++) {
        ST_ASSERT_OK(issue(t, &cs[i], 0));
    }
    ST_ASSERT_OK(scomm_group_end());
    for (i = 0; i < 20; i++) {
        reqs[i] = cs[i].req;
    }
    ST_ASSERT_OK(scomm_wait_all(20, reqs));
    for (i = 0; i < 20; i++) {
        verify(t, &cs[i]);
    }
    ST_ASSERT_OK(scomm_overlap_stats(t->comm, &st1));
    ST_ASSERT_EQ(st1.ops_fused, st0.ops_fused);
    ST_ASSERT_OK(scomm_control_set(t->comm, "fusion", "on"));
}

typedef struct {
    const tctx_t *t;
    float        *send;
    float        *recv;
    size_t        next_prod;
    size_t        next_cons;
} chunk_ctx_t;

static void chunk_produce(void *user, size_t chunk, size_t off, size_t cnt)
{
    chunk_ctx_t *x = user;
    size_t i;

    ST_ASSERT_EQ(chunk, x->next_prod);
    x->next_prod++;
    for (i = off; i < off + cnt; i++) {
        x->send[i] = (float)val(42, x->t->rank, i);
    }
}

static void chunk_consume(void *user, size_t chunk, size_t off, size_t cnt)
{
    chunk_ctx_t *x = user;
    size_t i;
    int64_t s;
    int r;

    ST_ASSERT_EQ(chunk, x->next_cons);
    ST_ASSERT(x->next_prod > chunk);
    x->next_cons++;
    for (i = off; i < off + cnt; i++) {
        for (r = 0, s = 0; r < x->t->size; r++) {
            s += val(42, r, i);
        }
        ST_ASSERT_EQ((int64_t)x->recv[i], s);
    }
}

static void sec_chunked(const tctx_t *t)
{
    size_t n = 100003, chunk = 8192;
    chunk_ctx_t x;

    memset(&x, 0, sizeof(x));
    x.t    = t;
    x.send = calloc(n, sizeof(float));
    x.recv = calloc(n, sizeof(float));
    ST_ASSERT((x.send != NULL) && (x.recv != NULL));
    ST_ASSERT_OK(scomm_all_reduce_chunked(x.send, x.recv, n, SCOMM_FLOAT32,
                                          SCOMM_SUM, chunk, chunk_produce,
                                          chunk_consume, &x, t->comm));
    ST_ASSERT_EQ(x.next_prod, (n + chunk - 1) / chunk);
    ST_ASSERT_EQ(x.next_cons, (n + chunk - 1) / chunk);
    ST_ASSERT_STATUS(scomm_all_reduce_chunked(x.send, x.recv, n,
                                              SCOMM_FLOAT32, SCOMM_SUM, 0,
                                              NULL, NULL, NULL, t->comm),
                     SCOMM_ERR_INVALID_ARG);
    free(x.send);
    free(x.recv);
}

static void sec_errors(const tctx_t *t)
{
    float buf[4] = {0};
    scomm_req_t *req = (scomm_req_t *)&buf; /* must stay untouched */
    scomm_req_t *r0  = req;

    ST_ASSERT_STATUS(scomm_iall_reduce(buf, buf, 4, SCOMM_FLOAT32,
                                       SCOMM_SUM, t->comm, NULL),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_last_error(), "req_p") != NULL);
    ST_ASSERT_STATUS(scomm_iall_reduce(NULL, buf, 4, SCOMM_FLOAT32,
                                       SCOMM_SUM, t->comm, &req),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_last_error(), "scomm_iall_reduce") != NULL);
    ST_ASSERT(strstr(scomm_last_error(), "sendbuf") != NULL);
    ST_ASSERT(req == r0);
    ST_ASSERT_STATUS(scomm_ibroadcast(buf, 4, SCOMM_FLOAT32, t->size,
                                      t->comm, &req),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_last_error(), "root") != NULL);
    ST_ASSERT_STATUS(scomm_iall_reduce(buf, buf, 4, (scomm_dtype_t)99,
                                       SCOMM_SUM, t->comm, &req),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_ibarrier(t->comm, NULL), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_iall_to_allv(buf, NULL, NULL, buf, NULL, NULL,
                                        SCOMM_FLOAT32, t->comm, &req),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(req == r0);
    ST_ASSERT_STATUS(scomm_overlap_stats(t->comm, NULL),
                     SCOMM_ERR_INVALID_ARG);
}

/* CPU time of this process (all threads) while the engine idles. */
static void sec_idle(const tctx_t *t)
{
    struct rusage a, b;
    double cpu, wall = 2.0, t0;
    scomm_overlap_stats_t st;

    ST_ASSERT_OK(scomm_overlap_stats(t->comm, &st));
    if (!st.progress_thread) {
        return; /* inline mode: no thread to measure */
    }
    ST_ASSERT_OK(scomm_barrier(t->comm));
    getrusage(RUSAGE_SELF, &a);
    t0 = now_s();
    usleep((useconds_t)(wall * 1e6));
    wall = now_s() - t0;
    getrusage(RUSAGE_SELF, &b);
    cpu = (double)(b.ru_utime.tv_sec - a.ru_utime.tv_sec) +
          (double)(b.ru_stime.tv_sec - a.ru_stime.tv_sec) +
          (double)(b.ru_utime.tv_usec - a.ru_utime.tv_usec) * 1e-6 +
          (double)(b.ru_stime.tv_usec - a.ru_stime.tv_usec) * 1e-6;
    printf("  rank %d idle: %.3f%% of a core over %.1f s\n", t->rank,
           100.0 * cpu / wall, wall);
    ST_ASSERT(cpu / wall < 0.02);
    ST_ASSERT_OK(scomm_barrier(t->comm));
}

static int rank_main(int rank, int size, void *arg)
{
    tctx_t t;
    double t0 = now_s();

    (void)arg;
    t.rank = rank;
    t.size = size;
    st_dev_init();
    ST_ASSERT_OK(scomm_init_from_env(&t.comm));
    sec_errors(&t);
    sec_reductions(&t);
    sec_movement(&t);
    sec_order(&t);
    sec_groups(&t);
    sec_chunked(&t);
    sec_idle(&t);
    ST_ASSERT_OK(scomm_comm_destroy(t.comm));
    if (rank == 0) {
        printf("  total %.2f s\n", now_s() - t0);
    }
    return 0;
}

/* ---- fault modes --------------------------------------------------------- */

typedef struct {
    scomm_comm_t *comm;
    double        delay;
} abort_arg_t;

static void *abort_thread(void *p)
{
    abort_arg_t *a = p;

    usleep((useconds_t)(a->delay * 1e6));
    scomm_comm_abort(a->comm);
    return NULL;
}

/* Rank 0 waits on an all_reduce rank 1 never joins; another thread aborts
 * after 0.3 s: the wait must end with SCOMM_ERR_ABORTED within 1 s. */
static int rank_abort(int rank, int size, void *arg)
{
    scomm_comm_t *comm;
    scomm_req_t *req;
    pthread_t th;
    abort_arg_t a;
    float x[16] = {0};
    double t0, dt;
    scomm_status_t s;

    (void)size;
    (void)arg;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 20000));
    if (rank == 0) {
        ST_ASSERT_OK(scomm_iall_reduce(x, x, 16, SCOMM_FLOAT32, SCOMM_SUM,
                                       comm, &req));
        a.comm  = comm;
        a.delay = 0.3;
        pthread_create(&th, NULL, abort_thread, &a);
        t0 = now_s();
        s  = scomm_wait(req);
        dt = now_s() - t0;
        pthread_join(th, NULL);
        printf("  abort: wait returned %s after %.3f s: %s\n",
               scomm_status_name(s), dt, scomm_comm_last_error(comm));
        ST_ASSERT_STATUS(s, SCOMM_ERR_ABORTED);
        ST_ASSERT(dt < 1.3);
        /* Later calls fail at once, queued or not. */
        ST_ASSERT(scomm_iall_reduce(x, x, 16, SCOMM_FLOAT32, SCOMM_SUM,
                                    comm, &req) != SCOMM_OK);
    } else {
        /* Told by rank 0's abort: a blocking call fails, never hangs. */
        t0 = now_s();
        s  = scomm_barrier(comm);
        ST_ASSERT(s != SCOMM_OK);
        ST_ASSERT(now_s() - t0 < 5.0);
    }
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

/* The victim (last rank) exits with operations queued; the survivors'
 * waits fail naming it, well before the 20 s timeout. */
static int rank_lost(int rank, int size, void *arg)
{
    scomm_comm_t *comm;
    scomm_req_t *req[4];
    static float x[4][65536];
    double t0;
    scomm_status_t s;
    int i;

    (void)arg;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 20000));
    ST_ASSERT_OK(scomm_barrier(comm));
    if (rank == size - 1) {
        usleep(200000);
        _exit(0); /* gone without a goodbye */
    }
    for (i = 0; i < 4; i++) {
        ST_ASSERT_OK(scomm_iall_reduce(x[i], x[i], 65536, SCOMM_FLOAT32,
                                       SCOMM_SUM, comm, &req[i]));
    }
    t0 = now_s();
    s  = scomm_wait_all(4, req);
    printf("  rank %d lost: %s after %.2f s: %s\n", rank,
           scomm_status_name(s), now_s() - t0, scomm_comm_last_error(comm));
    ST_ASSERT(s != SCOMM_OK);
    ST_ASSERT(now_s() - t0 < 15.0);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

/* Destroy with operations queued: they are finished, nothing hangs. */
static int rank_destroy(int rank, int size, void *arg)
{
    scomm_comm_t *comm, *sub;
    scomm_req_t *req;
    static int32_t x[8][1000];
    double t0;
    int i;

    (void)rank;
    (void)size;
    (void)arg;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_comm_split(comm, 0, 0, &sub));
    for (i = 0; i < 8; i++) {
        ST_ASSERT_OK(scomm_iall_reduce(x[i], x[i], 1000, SCOMM_INT32,
                                       SCOMM_SUM, sub, &req));
        (void)req; /* dropped on purpose */
    }
    t0 = now_s();
    ST_ASSERT_OK(scomm_comm_destroy(sub));
    ST_ASSERT(now_s() - t0 < 10.0);
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

int main(int argc, char **argv)
{
    int np = 2;

    if ((argc >= 2) && (argv[1][0] == '-') && (argv[1][1] == '-')) {
        if (argc >= 3) {
            np = atoi(argv[2]);
        }
        if (strcmp(argv[1], "--abort") == 0) {
            return st_run_ranks(np, rank_abort, NULL, 60);
        }
        if (strcmp(argv[1], "--lost") == 0) {
            return st_run_ranks_victim(np, rank_lost, NULL, 60, np - 1);
        }
        if (strcmp(argv[1], "--destroy") == 0) {
            return st_run_ranks(np, rank_destroy, NULL, 60);
        }
        fprintf(stderr, "usage: test_icoll [-n N] [-t SEC] | --abort|--lost|"
                "--destroy [N]\n");
        return 2;
    }
    return st_main_ranks(argc, argv, rank_main, NULL);
}
