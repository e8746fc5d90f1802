/*
 * test_backend.c - the vendor adapters and the stream-ordered call path
 * (src/backend) against the fake vendor libraries and the fake device of
 * tests/backend, across real processes. Every buffer handed to a vendor
 * communicator is fake device memory: its address is PROT_NONE, so scomm
 * touching it on the host crashes the test; the test reads results through
 * the fake's writable alias, after scomm_comm_synchronize() (or a wait),
 * so a synchronize that does not wait is caught.
 *
 * BE_NAME names the backend (nccl, rccl, hccl, cncl, bkcl; SCOMM_BACKEND
 * is set to it), BE_RT_LIB the fake runtime library (the test's handle on
 * the fake device), BE_MODE the check:
 *   map       every dtype x op x collective: results equal an independent
 *             reference (exact small integers, our own encoders); what the
 *             vendor lacks is SCOMM_ERR_UNSUPPORTED naming the backend and
 *             the dtype or op; scomm_last_selection names the backend;
 *             scomm_backend_probe finds the library, version and runtime
 *   async     with the stream busy for 300 ms, all_reduce returns at once
 *             (< 50 ms), the output is untouched until the stream gets
 *             there, right after scomm_comm_synchronize (>= 280 ms later);
 *             an iall_gather's request is not done, then waits
 *   watchdog  the last rank skips op #3 (timeout 1 s): every rank gets
 *             SCOMM_ERR_TIMED_OUT within timeout + 1 s, naming
 *             scomm_all_reduce, op #3 and the rank that never reached it
 *   hang      BE_HANG_ENV=BE_HANG_CALL makes every rank's kernel hang: the
 *             watchdog fires, "every rank reached it", the vendor's abort
 *             ran (fake log), later calls fail fast, destroy is clean
 *   capture   calls on a capturing stream record no event and leave the
 *             capture valid (with the watchdog polling an older event all
 *             along); 10 replays of a captured in-place all_reduce give
 *             p^10 and record nothing; synchronize inside a capture is
 *             refused, after the replays it waits for them
 *   group     four all_reduces and a ring exchange in a group are one
 *             vendor launch with one event; waiting inside the group is
 *             refused
 *   p2p       send/recv on the vendor (ring exchange in a group where the
 *             vendor has groups, odd/even pairs without), isend/irecv
 *             requests, 1 MiB (larger than the fake's ring)
 *   requests  a non-blocking call's request: not done while the stream is
 *             busy, done after, scomm_test and scomm_wait
 *   ring      1500 calls behind a busy stream overfill the 1024-slot event
 *             ring: no call waits, the newest slot is extended, the last
 *             call's request and synchronize still end right
 *   errors    vendor status codes become scomm's (invalid usage / argument
 *             keep the communicator usable; a host pointer is refused);
 *             an asynchronous remote error fails the communicator at the
 *             next synchronize
 *   initfail  one rank's vendor init fails: every rank's scomm_init fails
 *             with the same status, naming that rank
 *   missing   the library path is wrong: SCOMM_ERR_UNSUPPORTED naming it
 *             and how to install
 *   split     a split of a vendor communicator is a vendor communicator
 *   nort      SCOMM_CUDART_LIBRARY=none: calls still work, synchronize
 *             returns at once, probe says there is no runtime
 *   discover  the library through LD_LIBRARY_PATH, its runtime through its
 *             own dependencies (BE_WANT_RT, BE_WANT_HOW in probe's answer)
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scomm.h"
#include "st_test.h"

#define N 37

static const char *be_name;

/* ---- the fake device, through the fake runtime library ---- */

static struct {
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int (*memcpy_)(void *d, const void *s, size_t n, int dd, int sd,
                   void *st, int async);
    int (*translate)(const void *p, size_t n, void **w, int *kind);
    int (*stream_create)(void **s);
    int (*stream_destroy)(void *s);
    int (*spin)(void *s, int ms);
    int (*capture_begin)(void *s, int mode);
    int (*capture_end)(void *s, void **g);
    int (*graph_instantiate)(void **x, void *g);
    int (*graph_launch)(void *x, void *s);
    int (*graph_destroy)(void *g);
    int64_t (*stat)(const char *name);
} dev;

static void dev_load(void)
{
    const char *path = getenv("BE_RT_LIB");
    void *dl, *fn;

    ST_ASSERT(path != NULL);
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "%s: %s\n", path, dlerror());
        ST_ASSERT(0);
    }
#define DEV_SYM(_f, _n)                                                     \
    do {                                                                    \
        fn = dlsym(dl, _n);                                                 \
        ST_ASSERT(fn != NULL);                                              \
        memcpy(&dev._f, &fn, sizeof(fn));                                   \
    } while (0)
    DEV_SYM(malloc_, "fkd_malloc");
    DEV_SYM(free_, "fkd_free");
    DEV_SYM(memcpy_, "fkd_memcpy");
    DEV_SYM(translate, "fkd_translate");
    DEV_SYM(stream_create, "fkd_stream_create");
    DEV_SYM(stream_destroy, "fkd_stream_destroy");
    DEV_SYM(spin, "fkd_spin");
    DEV_SYM(capture_begin, "fkd_capture_begin");
    DEV_SYM(capture_end, "fkd_capture_end");
    DEV_SYM(graph_instantiate, "fkd_graph_instantiate");
    DEV_SYM(graph_launch, "fkd_graph_launch");
    DEV_SYM(graph_destroy, "fkd_graph_destroy");
    DEV_SYM(stat, "fkd_stat");
#undef DEV_SYM
}

static void *dev_alloc(size_t n)
{
    void *p = NULL;

    ST_ASSERT_EQ(dev.malloc_(&p, n), 0);
    return p;
}

/* Host to device, waiting for the device first (cudaMemcpy's way). */
static void dev_put(void *d, const void *h, size_t n)
{
    ST_ASSERT_EQ(dev.memcpy_(d, h, n, 1, 0, NULL, 0), 0);
}

/* What the device memory holds now: no wait, no ordering (the test's
 * window onto the fake's writable alias). */
static void dev_peek(void *h, const void *d, size_t n)
{
    void *w = NULL;
    int kind = 0;

    ST_ASSERT_EQ(dev.translate(d, n, &w, &kind), 0);
    ST_ASSERT_EQ(kind, 1);
    memcpy(h, w, n);
}

/* The result of what was enqueued on comm: synchronize, then peek. */
static void dev_get(scomm_comm_t *comm, void *h, const void *d, size_t n)
{
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    dev_peek(h, d, n);
}

/* ---- what each vendor has (the test's own table) ---- */

static int be_has_dtype(scomm_dtype_t dt)
{
    const char *ver = getenv("FAKE_NCCL_VERSION");
    int fp8 = (dt == SCOMM_FP8_E4M3) || (dt == SCOMM_FP8_E5M2);

    if (strcmp(be_name, "nccl") == 0) {
        return !fp8 || (ver == NULL) || (ver[0] == '\0') ||
               (atoi(ver) >= 22400);
    }
    if (strcmp(be_name, "rccl") == 0) {
        return !fp8;
    }
    if (strcmp(be_name, "hccl") == 0) {
        return !fp8;
    }
    if (strcmp(be_name, "cncl") == 0) {
        return !fp8 && (dt != SCOMM_FLOAT64);
    }
    return !fp8 && (dt != SCOMM_INT8) && (dt != SCOMM_UINT32) &&
           (dt != SCOMM_UINT64); /* bkcl */
}

static int be_has_avg(void)
{
    return (strcmp(be_name, "nccl") == 0) || (strcmp(be_name, "rccl") == 0);
}

/* gather, scatter, all_to_allv (built from grouped send/recv) */
static int be_has_group(void)
{
    return strcmp(be_name, "hccl") != 0;
}

/* ---- encoders, independent of the fakes' ---- */

static int te_fmt(scomm_dtype_t dt, int *eb, int *mb)
{
    switch (dt) {
    case SCOMM_FLOAT16:  *eb = 5; *mb = 10; return 1;
    case SCOMM_BFLOAT16: *eb = 8; *mb = 7; return 1;
    case SCOMM_FP8_E4M3: *eb = 4; *mb = 3; return 1;
    case SCOMM_FP8_E5M2: *eb = 5; *mb = 2; return 1;
    default: return 0;
    }
}

/* Exact encoding of a small non-negative integer value. */
static uint32_t te_enc(scomm_dtype_t dt, double v)
{
    int eb = 0, mb = 0, e, bias;
    double m;

    te_fmt(dt, &eb, &mb);
    if (v == 0.0) {
        return 0;
    }
    bias = (1 << (eb - 1)) - 1;
    frexp(v, &e);
    e -= 1;
    m = (v / ldexp(1.0, e) - 1.0) * (double)(1 << mb);
    ST_ASSERT(m == floor(m)); /* the test only uses exact values */
    return ((uint32_t)(e + bias) << mb) | (uint32_t)m;
}

static double te_dec(scomm_dtype_t dt, uint32_t bits)
{
    int eb = 0, mb = 0, bias;
    uint32_t field, mant;

    te_fmt(dt, &eb, &mb);
    bias  = (1 << (eb - 1)) - 1;
    field = (bits >> mb) & ((1u << eb) - 1);
    mant  = bits & ((1u << mb) - 1);
    if ((bits >> (eb + mb)) & 1u) {
        return -1e9; /* never produced by a right answer here */
    }
    if (field == 0) {
        return ldexp((double)mant, 1 - bias - mb);
    }
    return ldexp(1.0 + (double)mant / (double)(1 << mb), (int)field - bias);
}

static void te_set(scomm_dtype_t dt, void *p, double v)
{
    size_t es = scomm_dtype_size(dt);
    int64_t i = (int64_t)v;
    uint32_t b;
    float f = (float)v;

    if (dt == SCOMM_FLOAT32) {
        memcpy(p, &f, 4);
    } else if (dt == SCOMM_FLOAT64) {
        memcpy(p, &v, 8);
    } else if (te_fmt(dt, &(int){0}, &(int){0})) {
        b = te_enc(dt, v);
        memcpy(p, &b, es); /* little-endian */
    } else {
        memcpy(p, &i, es);
    }
}

static double te_get(scomm_dtype_t dt, const void *p)
{
    size_t es = scomm_dtype_size(dt);
    uint32_t b = 0;
    int64_t i  = 0;
    float f;
    double d;

    if (dt == SCOMM_FLOAT32) {
        memcpy(&f, p, 4);
        return f;
    }
    if (dt == SCOMM_FLOAT64) {
        memcpy(&d, p, 8);
        return d;
    }
    if (te_fmt(dt, &(int){0}, &(int){0})) {
        memcpy(&b, p, es);
        return te_dec(dt, b);
    }
    memcpy(&i, p, es);
    if (dt == SCOMM_INT8) {
        return (int8_t)i;
    }
    if (dt == SCOMM_INT32) {
        return (int32_t)i;
    }
    return (double)i; /* small non-negative values */
}

/* ---- data ---- */

static double val(scomm_redop_t op, int r, size_t i, int p)
{
    if (op == SCOMM_PROD) {
        return 1.0 + (double)((i + (size_t)r) % 2);
    }
    if ((op == SCOMM_MAX) || (op == SCOMM_MIN)) {
        return (double)((i + 3u * (size_t)r) % 7);
    }
    /* sum and avg: the mean is the exact base, the sum p * base */
    return (double)((p - 1) + 2 * (int)(i % 2) + 2 * r - (p - 1));
}

static double expect(scomm_redop_t op, size_t i, int p)
{
    double acc = val(op, 0, i, p), v;
    int r;

    for (r = 1; r < p; r++) {
        v = val(op, r, i, p);
        acc = (op == SCOMM_PROD) ? acc * v
            : (op == SCOMM_MAX)  ? fmax(acc, v)
            : (op == SCOMM_MIN)  ? fmin(acc, v)
                                 : acc + v;
    }
    return (op == SCOMM_AVG) ? acc / p : acc;
}

static double pat(int a, int b, size_t i)
{
    return (double)(((size_t)a * 3u + (size_t)b * 5u + i) % 8u);
}

static void check_vec(const char *what, scomm_dtype_t dt, const char *buf,
                      size_t n, double (*want)(size_t, void *), void *ctx)
{
    size_t es = scomm_dtype_size(dt), i;

    for (i = 0; i < n; i++) {
        double got = te_get(dt, buf + i * es), w = want(i, ctx);

        if (got != w) {
            fprintf(stderr, "%s %s: element %zu is %g, expected %g\n",
                    what, scomm_dtype_name(dt), i, got, w);
            ST_ASSERT(got == w);
        }
    }
}

typedef struct {
    scomm_redop_t op;
    int           p, rank, root;
    size_t        off;
    const size_t *cnt;
    const size_t *dsp;
} ctx_t;

static double w_red(size_t i, void *c)
{
    ctx_t *x = c;

    return expect(x->op, x->off + i, x->p);
}

static double w_gather(size_t i, void *c)
{
    (void)c;
    return pat((int)(i / N), 0, i % N);
}

static double w_bcast(size_t i, void *c)
{
    return pat(((ctx_t *)c)->root, 0, i);
}

static double w_a2a(size_t i, void *c)
{
    return pat((int)(i / N), ((ctx_t *)c)->rank, i % N);
}

static double w_scatter(size_t i, void *c)
{
    return pat(((ctx_t *)c)->root, ((ctx_t *)c)->rank, i);
}

static double w_a2av(size_t i, void *c)
{
    ctx_t *x = c;
    int q = 0;

    while ((q + 1 < x->p) && (i >= x->dsp[q + 1])) {
        q++;
    }
    return pat(q, x->rank, i - x->dsp[q]);
}

static void assert_msg(scomm_comm_t *comm, const char *a, const char *b)
{
    const char *m = (comm != NULL) ? scomm_comm_last_error(comm)
                                   : scomm_last_error();

    if ((strstr(m, a) == NULL) || ((b != NULL) && (strstr(m, b) == NULL))) {
        fprintf(stderr, "message '%s' lacks '%s' / '%s'\n", m, a,
                (b != NULL) ? b : "");
        ST_ASSERT(0);
    }
}

static void assert_sel(scomm_comm_t *comm)
{
    scomm_coll_record_t rec;

    ST_ASSERT_OK(scomm_last_selection(comm, &rec));
    ST_ASSERT(strcmp(rec.algo, be_name) == 0);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static scomm_comm_t *be_init(void)
{
    scomm_comm_t *comm = NULL;

    ST_ASSERT_OK(scomm_init(NULL, &comm));
    ST_ASSERT(strcmp(scomm_comm_backend(comm), be_name) == 0);
    return comm;
}

static void *be_stream(scomm_comm_t *comm)
{
    void *s = NULL;

    ST_ASSERT_EQ(dev.stream_create(&s), 0);
    ST_ASSERT_OK(scomm_comm_set_stream(comm, s));
    return s;
}

/* ---- map ---- */

/* Device and host halves of the map's two buffers. */
typedef struct {
    char *hs, *hr; /* host */
    void *ds, *dr; /* device */
    size_t bytes;
} bufs_t;

static void map_reductions(scomm_comm_t *comm, scomm_dtype_t dt, bufs_t *b)
{
    int p = scomm_size(comm), me = scomm_rank(comm), o;
    size_t es = scomm_dtype_size(dt), i;
    ctx_t x;

    for (o = 0; o < SCOMM_REDOP_COUNT; o++) {
        scomm_redop_t op = (scomm_redop_t)o;

        memset(&x, 0, sizeof(x));
        x.op = op;
        x.p  = p;
        for (i = 0; i < N * (size_t)p; i++) {
            te_set(dt, b->hs + i * es, val(op, me, i, p));
        }
        dev_put(b->ds, b->hs, N * (size_t)p * es);
        if ((op == SCOMM_AVG) && !be_has_avg()) {
            ST_ASSERT_STATUS(scomm_all_reduce(b->ds, b->dr, N, dt, op, comm),
                             SCOMM_ERR_UNSUPPORTED);
            assert_msg(comm, be_name, "avg");
            continue;
        }
        ST_ASSERT_OK(scomm_all_reduce(b->ds, b->dr, N, dt, op, comm));
        dev_get(comm, b->hr, b->dr, N * es);
        check_vec("all_reduce", dt, b->hr, N, w_red, &x);
        assert_sel(comm);
        ST_ASSERT_OK(scomm_reduce_scatter(b->ds, b->dr, N, dt, op, comm));
        dev_get(comm, b->hr, b->dr, N * es);
        x.off = (size_t)me * N;
        check_vec("reduce_scatter", dt, b->hr, N, w_red, &x);
        x.off = 0;
        memset(b->hr, 0, N * es);
        dev_put(b->dr, b->hr, N * es);
        ST_ASSERT_OK(scomm_reduce(b->ds, b->dr, N, dt, op, p - 1, comm));
        dev_get(comm, b->hr, b->dr, N * es);
        if (me == p - 1) {
            check_vec("reduce", dt, b->hr, N, w_red, &x);
        }
        /* in place */
        for (i = 0; i < N; i++) {
            te_set(dt, b->hr + i * es, val(op, me, i, p));
        }
        dev_put(b->dr, b->hr, N * es);
        ST_ASSERT_OK(scomm_all_reduce(b->dr, b->dr, N, dt, op, comm));
        dev_get(comm, b->hr, b->dr, N * es);
        check_vec("all_reduce in place", dt, b->hr, N, w_red, &x);
    }
}

static void map_moves(scomm_comm_t *comm, scomm_dtype_t dt, bufs_t *b)
{
    int p = scomm_size(comm), me = scomm_rank(comm), q;
    size_t es = scomm_dtype_size(dt), i, all = N * (size_t)p * es;
    size_t sc[16], sd[16], rc[16], rd[16];
    char *s = b->hs, *r = b->hr;
    ctx_t x;

    memset(&x, 0, sizeof(x));
    x.p    = p;
    x.rank = me;
    for (i = 0; i < N; i++) {
        te_set(dt, s + i * es, pat(me, 0, i));
    }
    dev_put(b->ds, s, N * es);
    ST_ASSERT_OK(scomm_all_gather(b->ds, b->dr, N, dt, comm));
    dev_get(comm, r, b->dr, all);
    check_vec("all_gather", dt, r, N * (size_t)p, w_gather, NULL);
    assert_sel(comm);

    x.root = 1 % p;
    for (i = 0; i < N; i++) {
        te_set(dt, r + i * es, (me == x.root) ? pat(me, 0, i) : 0.0);
    }
    dev_put(b->dr, r, N * es);
    ST_ASSERT_OK(scomm_broadcast(b->dr, N, dt, x.root, comm));
    dev_get(comm, r, b->dr, N * es);
    check_vec("broadcast", dt, r, N, w_bcast, &x);

    for (q = 0; q < p; q++) {
        for (i = 0; i < N; i++) {
            te_set(dt, s + ((size_t)q * N + i) * es, pat(me, q, i));
        }
    }
    dev_put(b->ds, s, all);
    ST_ASSERT_OK(scomm_all_to_all(b->ds, b->dr, N, dt, comm));
    dev_get(comm, r, b->dr, all);
    check_vec("all_to_all", dt, r, N * (size_t)p, w_a2a, &x);

    if (!be_has_group()) {
        ST_ASSERT_STATUS(scomm_gather(b->ds, b->dr, N, dt, 0, comm),
                         SCOMM_ERR_UNSUPPORTED);
        assert_msg(comm, be_name, "gather");
        return;
    }
    for (i = 0; i < N; i++) {
        te_set(dt, s + i * es, pat(me, 0, i));
    }
    dev_put(b->ds, s, N * es);
    memset(r, 0, all);
    dev_put(b->dr, r, all);
    ST_ASSERT_OK(scomm_gather(b->ds, b->dr, N, dt, 0, comm));
    dev_get(comm, r, b->dr, all);
    if (me == 0) {
        check_vec("gather", dt, r, N * (size_t)p, w_gather, NULL);
    }
    assert_sel(comm);

    x.root = p - 1;
    for (q = 0; q < p; q++) {
        for (i = 0; i < N; i++) {
            te_set(dt, s + ((size_t)q * N + i) * es, pat(me, q, i));
        }
    }
    dev_put(b->ds, s, all);
    ST_ASSERT_OK(scomm_scatter(b->ds, b->dr, N, dt, x.root, comm));
    dev_get(comm, r, b->dr, N * es);
    check_vec("scatter", dt, r, N, w_scatter, &x);

    for (q = 0; q < p; q++) {
        sc[q] = (size_t)((me + q) % 3 + 1);
        rc[q] = (size_t)((q + me) % 3 + 1);
        sd[q] = (q == 0) ? 0 : sd[q - 1] + sc[q - 1];
        rd[q] = (q == 0) ? 0 : rd[q - 1] + rc[q - 1];
        for (i = 0; i < sc[q]; i++) {
            te_set(dt, s + (sd[q] + i) * es, pat(me, q, i));
        }
    }
    dev_put(b->ds, s, (sd[p - 1] + sc[p - 1]) * es);
    x.dsp = rd;
    ST_ASSERT_OK(scomm_all_to_allv(b->ds, sc, sd, b->dr, rc, rd, dt, comm));
    dev_get(comm, r, b->dr, (rd[p - 1] + rc[p - 1]) * es);
    check_vec("all_to_allv", dt, r, rd[p - 1] + rc[p - 1], w_a2av, &x);
}

static void probe_self(const char *want_rt, const char *want_how)
{
    scomm_backend_info_t info;
    int i, found = 0;

    ST_ASSERT_EQ(scomm_backend_count(), 5);
    for (i = 0; i < scomm_backend_count(); i++) {
        ST_ASSERT_OK(scomm_backend_probe(i, &info));
        if (strcmp(info.name, be_name) != 0) {
            continue;
        }
        ST_ASSERT_EQ(info.found, 1);
        found = 1;
        if (strcmp(be_name, "nccl") == 0) {
            const char *v = getenv("FAKE_NCCL_VERSION");
            int old = (v != NULL) && (v[0] != '\0');

            ST_ASSERT(strcmp(info.version, old ? "2.21.0" : "2.27.3") == 0);
        } else if (strcmp(be_name, "cncl") == 0) {
            ST_ASSERT(strcmp(info.version, "1.25.0") == 0);
        }
        if ((strstr(info.runtime, want_rt) == NULL) ||
            ((want_how != NULL) && (strstr(info.runtime, want_how) == NULL))) {
            fprintf(stderr, "runtime '%s' lacks '%s' / '%s'\n", info.runtime,
                    want_rt, (want_how != NULL) ? want_how : "");
            ST_ASSERT(0);
        }
    }
    ST_ASSERT(found);
    ST_ASSERT_STATUS(scomm_backend_probe(99, &info), SCOMM_ERR_INVALID_ARG);
}

/* The runtime each vendor's fake links (and scomm finds through it). */
static const char *be_rt_soname(void)
{
    static const char *const names[][2] = {
        {"nccl", "libcudart.so.13"}, {"rccl", "libamdhip64.so.6"},
        {"hccl", "libascendcl.so"},  {"cncl", "libcnrt.so"},
        {"bkcl", "libxpurt.so"}};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(names[i][0], be_name) == 0) {
            return names[i][1];
        }
    }
    return "?";
}

static void mode_map(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), d;
    bufs_t b;
    char dep[64];

    b.bytes = N * (size_t)p * 8;
    b.hs    = calloc(1, b.bytes);
    b.hr    = calloc(1, b.bytes);
    b.ds    = dev_alloc(b.bytes);
    b.dr    = dev_alloc(b.bytes);
    ST_ASSERT((b.hs != NULL) && (b.hr != NULL));
    /* The test's encoders against the standard bit patterns of 1.0. */
    ST_ASSERT_EQ(te_enc(SCOMM_FLOAT16, 1.0), 0x3c00);
    ST_ASSERT_EQ(te_enc(SCOMM_BFLOAT16, 1.0), 0x3f80);
    ST_ASSERT_EQ(te_enc(SCOMM_FP8_E4M3, 1.0), 0x38);
    ST_ASSERT_EQ(te_enc(SCOMM_FP8_E5M2, 1.0), 0x3c);
    ST_ASSERT_EQ(te_enc(SCOMM_FP8_E4M3, 20.0), 0x5a);
    if (scomm_rank(comm) == 0) {
        snprintf(dep, sizeof(dep), "a dependency of lib%s.so", be_name);
        probe_self(be_rt_soname(), dep);
    }
    (void)be_stream(comm);
    for (d = 0; d < SCOMM_DTYPE_COUNT; d++) {
        scomm_dtype_t dt = (scomm_dtype_t)d;

        if (!be_has_dtype(dt)) {
            ST_ASSERT_STATUS(scomm_all_reduce(b.ds, b.dr, N, dt, SCOMM_SUM,
                                              comm), SCOMM_ERR_UNSUPPORTED);
            assert_msg(comm, be_name, scomm_dtype_name(dt));
            ST_ASSERT_STATUS(scomm_all_gather(b.ds, b.dr, N, dt, comm),
                             SCOMM_ERR_UNSUPPORTED);
            continue;
        }
        map_reductions(comm, dt, &b);
        map_moves(comm, dt, &b);
    }
    /* count 0 goes to the vendor as well and moves nothing */
    ST_ASSERT_OK(scomm_all_reduce(b.ds, b.dr, 0, SCOMM_FLOAT32, SCOMM_SUM,
                                  comm));
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    ST_ASSERT_EQ(dev.free_(b.ds), 0);
    ST_ASSERT_EQ(dev.free_(b.dr), 0);
    free(b.hs);
    free(b.hr);
}

/* ---- async: the call does not wait for the device ---- */

static void mode_async(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), me = scomm_rank(comm), i;
    int32_t hs[N], hr[N * 4], zero[N * 4];
    void *ds = dev_alloc(sizeof(hr)), *dr = dev_alloc(sizeof(hr)), *st;
    scomm_req_t *req = NULL;
    int32_t done = -1;
    double t0, t_call, t_sync;

    ST_ASSERT(p <= 4);
    for (i = 0; i < N; i++) {
        hs[i] = me * 1000 + i;
    }
    memset(zero, 0, sizeof(zero));
    dev_put(ds, hs, sizeof(hs));
    dev_put(dr, zero, sizeof(zero));
    st = be_stream(comm);
    ST_ASSERT_OK(scomm_barrier(comm));
    t0 = now_s();
    ST_ASSERT_EQ(dev.spin(st, 300), 0); /* a kernel of 300 ms */
    ST_ASSERT_OK(scomm_all_reduce(ds, dr, N, SCOMM_INT32, SCOMM_SUM, comm));
    t_call = now_s() - t0;
    printf("rank %d: %s all_reduce behind a 300 ms kernel returned after "
           "%.3f ms\n", me, be_name, t_call * 1e3);
    ST_ASSERT(t_call < 0.050);
    dev_peek(hr, dr, sizeof(hs));
    ST_ASSERT(memcmp(hr, zero, sizeof(hs)) == 0); /* not yet run */
    ST_ASSERT_OK(scomm_iall_gather(ds, dr, N, SCOMM_INT32, comm, &req));
    ST_ASSERT_OK(scomm_test(req, &done));
    ST_ASSERT_EQ(done, 0);
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    t_sync = now_s() - t0;
    ST_ASSERT(t_sync >= 0.280);
    ST_ASSERT_OK(scomm_wait(req)); /* done by now */
    dev_peek(hr, dr, N * (size_t)p * sizeof(int32_t));
    for (i = 0; i < N * p; i++) {
        ST_ASSERT_EQ(hr[i], (i / N) * 1000 + i % N); /* the all_gather */
    }
    /* and the all_reduce before it, by itself */
    ST_ASSERT_OK(scomm_all_reduce(ds, dr, N, SCOMM_INT32, SCOMM_SUM, comm));
    dev_get(comm, hr, dr, sizeof(hs));
    for (i = 0; i < N; i++) {
        ST_ASSERT_EQ(hr[i], 1000 * p * (p - 1) / 2 + p * i);
    }
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    ST_ASSERT_EQ(dev.stream_destroy(st), 0);
}

/* ---- the watchdog ---- */

static void mode_watchdog(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), me = scomm_rank(comm), skip = p - 1, i;
    int32_t h[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    void *d = dev_alloc(sizeof(h));
    char want[64];
    scomm_status_t st = SCOMM_OK;
    double t0, dt;

    (void)be_stream(comm);
    dev_put(d, h, sizeof(h));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 1000));
    for (i = 0; i < 2; i++) { /* ops #1 and #2 */
        ST_ASSERT_OK(scomm_all_reduce(d, d, 8, SCOMM_INT32, SCOMM_MAX,
                                      comm));
    }
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    t0 = now_s();
    if (me != skip) {
        /* op #3, which the last rank never enters */
        ST_ASSERT_OK(scomm_all_reduce(d, d, 8, SCOMM_INT32, SCOMM_SUM,
                                      comm));
        ST_ASSERT(now_s() - t0 < 0.5); /* the call itself does not wait */
        st = scomm_comm_synchronize(comm);
    } else {
        /* nothing pending here: the failure comes from the peers */
        while ((st == SCOMM_OK) && (now_s() - t0 < 5.0)) {
            struct timespec ts = {0, 10000000};

            nanosleep(&ts, NULL);
            st = scomm_comm_synchronize(comm);
        }
    }
    dt = now_s() - t0;
    printf("rank %d: %s after %.3f s: %s\n", me, scomm_status_name(st), dt,
           scomm_comm_last_error(comm));
    ST_ASSERT_STATUS(st, SCOMM_ERR_TIMED_OUT);
    ST_ASSERT((me == skip) || (dt >= 0.95));
    ST_ASSERT(dt <= 2.0); /* timeout + 1 s, on every rank */
    snprintf(want, sizeof(want), "rank %d never reached it", skip);
    assert_msg(comm, "scomm_all_reduce", "op #3");
    assert_msg(comm, want, "aborted");
    /* later calls fail at once */
    t0 = now_s();
    ST_ASSERT(scomm_all_reduce(d, d, 8, SCOMM_INT32, SCOMM_SUM, comm) !=
              SCOMM_OK);
    ST_ASSERT(now_s() - t0 < 1.0);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

static int log_has(const char *needle)
{
    const char *env = getenv("BE_LOG_ENV");
    const char *path = (env != NULL) ? getenv(env) : NULL;
    char line[256];
    FILE *f;
    int hit = 0;

    if (path == NULL) {
        return 0;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (!hit && (fgets(line, sizeof(line), f) != NULL)) {
        hit = (strstr(line, needle) != NULL);
    }
    fclose(f);
    return hit;
}

static void mode_hang(void)
{
    scomm_comm_t *comm = be_init();
    const char *env = getenv("BE_HANG_ENV"), *call = getenv("BE_HANG_CALL");
    float h[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    void *d = dev_alloc(sizeof(h));
    int me = scomm_rank(comm);
    char want[64];
    double t0, dt;

    ST_ASSERT((env != NULL) && (call != NULL));
    (void)be_stream(comm);
    dev_put(d, h, sizeof(h));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 1000));
    setenv(env, call, 1);
    t0 = now_s();
    ST_ASSERT_OK(scomm_all_reduce(d, d, 8, SCOMM_FLOAT32, SCOMM_SUM, comm));
    ST_ASSERT_STATUS(scomm_comm_synchronize(comm), SCOMM_ERR_TIMED_OUT);
    dt = now_s() - t0;
    if ((dt < 0.95) || (dt > 2.0)) {
        fprintf(stderr, "timed out after %.3f s, timeout 1 s\n", dt);
        ST_ASSERT(0);
    }
    assert_msg(comm, "scomm_all_reduce", call);
    assert_msg(comm, "every rank reached it", "aborted");
    t0 = now_s();
    ST_ASSERT(scomm_all_reduce(d, d, 8, SCOMM_FLOAT32, SCOMM_SUM, comm) !=
              SCOMM_OK);
    ST_ASSERT(now_s() - t0 < 1.0);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    snprintf(want, sizeof(want), "abort rank %d", me);
    ST_ASSERT(log_has(want));
}

/* ---- capture ---- */

static void mode_capture(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), i, k;
    int64_t h[N], pk = 1;
    void *d = dev_alloc(sizeof(h)), *busy = dev_alloc(sizeof(h));
    void *st, *g = NULL, *x = NULL;
    int64_t rec0, cap0;

    st = be_stream(comm);
    for (i = 0; i < N; i++) {
        h[i] = 1;
    }
    dev_put(d, h, sizeof(h));
    /* an event pending all through the capture: the watchdog polls it */
    ST_ASSERT_EQ(dev.spin(st, 200), 0);
    ST_ASSERT_OK(scomm_all_reduce(busy, busy, N, SCOMM_INT64, SCOMM_SUM,
                                  comm));
    ST_ASSERT_EQ(dev.capture_begin(st, 0), 0); /* global mode */
    rec0 = dev.stat("event_records");
    cap0 = dev.stat("captured");
    ST_ASSERT_OK(scomm_all_reduce(d, d, N, SCOMM_INT64, SCOMM_SUM, comm));
    ST_ASSERT_EQ(dev.stat("event_records"), rec0); /* no event */
    ST_ASSERT_EQ(dev.stat("captured") - cap0, 1);
    ST_ASSERT_STATUS(scomm_comm_synchronize(comm), SCOMM_ERR_INVALID_USAGE);
    {
        struct timespec ts = {0, 100000000}; /* watchdog ticks meanwhile */

        nanosleep(&ts, NULL);
    }
    ST_ASSERT_EQ(dev.capture_end(st, &g), 0); /* still valid */
    ST_ASSERT_EQ(dev.graph_instantiate(&x, g), 0);
    ST_ASSERT_OK(scomm_comm_synchronize(comm)); /* the busy one */
    dev_peek(h, d, sizeof(h));
    ST_ASSERT_EQ(h[0], 1); /* captured, not run */
    rec0 = dev.stat("event_records");
    for (k = 0; k < 10; k++) {
        ST_ASSERT_EQ(dev.graph_launch(x, st), 0);
        pk *= p;
    }
    ST_ASSERT_EQ(dev.stat("event_records"), rec0); /* replays: none */
    dev_get(comm, h, d, sizeof(h)); /* synchronize waits for replays */
    for (i = 0; i < N; i++) {
        ST_ASSERT_EQ(h[i], pk);
    }
    ST_ASSERT_EQ(dev.graph_destroy(x), 0);
    ST_ASSERT_EQ(dev.graph_destroy(g), 0);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

/* ---- groups ---- */

static void mode_group(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), me = scomm_rank(comm), i, k;
    int32_t h[4][N], hin[N], hout[N];
    void *d[4], *sin = dev_alloc(sizeof(hin)), *sout = dev_alloc(sizeof(hin));
    scomm_req_t *req = NULL;
    int64_t l0, r0;

    (void)be_stream(comm);
    for (k = 0; k < 4; k++) {
        for (i = 0; i < N; i++) {
            h[k][i] = k * 100 + me + i;
        }
        d[k] = dev_alloc(sizeof(h[k]));
        dev_put(d[k], h[k], sizeof(h[k]));
    }
    for (i = 0; i < N; i++) {
        hin[i] = me * 7 + i;
    }
    dev_put(sin, hin, sizeof(hin));
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    l0 = dev.stat("launches");
    r0 = dev.stat("event_records");
    ST_ASSERT_OK(scomm_group_start());
    for (k = 0; k < 4; k++) {
        ST_ASSERT_OK(scomm_all_reduce(d[k], d[k], N, SCOMM_INT32, SCOMM_SUM,
                                      comm));
    }
    ST_ASSERT_OK(scomm_isend(sin, N, SCOMM_INT32, (me + 1) % p, 0, comm,
                             &req));
    ST_ASSERT_OK(scomm_recv(sout, N, SCOMM_INT32, (me + p - 1) % p, 0,
                            comm));
    ST_ASSERT_STATUS(scomm_wait(req), SCOMM_ERR_INVALID_USAGE);
    assert_msg(comm, "scomm_group_end", "scomm_isend");
    ST_ASSERT_EQ(dev.stat("launches"), l0); /* nothing launched yet */
    ST_ASSERT_OK(scomm_group_end());
    ST_ASSERT_EQ(dev.stat("launches") - l0, 1);
    ST_ASSERT_EQ(dev.stat("event_records") - r0, 1);
    for (k = 0; k < 4; k++) {
        dev_get(comm, h[k], d[k], sizeof(h[k]));
        for (i = 0; i < N; i++) {
            ST_ASSERT_EQ(h[k][i], p * (k * 100 + i) + p * (p - 1) / 2);
        }
    }
    dev_get(comm, hout, sout, sizeof(hout));
    for (i = 0; i < N; i++) {
        ST_ASSERT_EQ(hout[i], ((me + p - 1) % p) * 7 + i);
    }
    printf("rank %d: %s group of 4 all_reduces and a send/recv: 1 launch, "
           "1 event\n", me, be_name);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

/* ---- point-to-point on the vendor ---- */

#define P2P_N (256 * 1024) /* int32: 1 MiB, more than the fake's ring */

static void p2p_fill(int32_t *h, int from, int round)
{
    int i;

    for (i = 0; i < P2P_N; i++) {
        h[i] = from * 1000003 + round * 7 + i;
    }
}

static void p2p_check(const int32_t *h, int from, int round)
{
    int i;

    for (i = 0; i < P2P_N; i++) {
        if (h[i] != from * 1000003 + round * 7 + i) {
            fprintf(stderr, "p2p round %d from %d: element %d is %d\n",
                    round, from, i, h[i]);
            ST_ASSERT(0);
        }
    }
}

static void mode_p2p(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), me = scomm_rank(comm);
    int right = (me + 1) % p, left = (me + p - 1) % p, peer;
    size_t bytes = P2P_N * sizeof(int32_t);
    int32_t *h = malloc(bytes);
    void *ds = dev_alloc(bytes), *dr = dev_alloc(bytes);
    scomm_req_t *reqs[2];
    int64_t l0;

    ST_ASSERT(h != NULL);
    (void)be_stream(comm);
    l0 = dev.stat("launches");
    /* round 1: odd/even pairs, blocking calls, no group (HCCL's way) */
    peer = me ^ 1;
    if (peer < p) {
        p2p_fill(h, me, 1);
        dev_put(ds, h, bytes);
        if ((me % 2) == 0) {
            ST_ASSERT_OK(scomm_send(ds, P2P_N, SCOMM_INT32, peer, 5, comm));
            ST_ASSERT_OK(scomm_recv(dr, P2P_N, SCOMM_INT32, peer, 5, comm));
        } else {
            ST_ASSERT_OK(scomm_recv(dr, P2P_N, SCOMM_INT32, peer, 5, comm));
            ST_ASSERT_OK(scomm_send(ds, P2P_N, SCOMM_INT32, peer, 5, comm));
        }
        dev_get(comm, h, dr, bytes);
        p2p_check(h, peer, 1);
    }
    ST_ASSERT(dev.stat("launches") > l0); /* the vendor moved it */
    /* round 2: a ring with requests, in a group where there is one */
    p2p_fill(h, me, 2);
    dev_put(ds, h, bytes);
    if (be_has_group()) {
        ST_ASSERT_OK(scomm_group_start());
        ST_ASSERT_OK(scomm_isend(ds, P2P_N, SCOMM_INT32, right, 1, comm,
                                 &reqs[0]));
        ST_ASSERT_OK(scomm_irecv(dr, P2P_N, SCOMM_INT32, left, 1, comm,
                                 &reqs[1]));
        ST_ASSERT_OK(scomm_group_end());
        ST_ASSERT_OK(scomm_wait_all(2, reqs));
        dev_peek(h, dr, bytes); /* the wait is enough */
        p2p_check(h, left, 2);
    }
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    free(h);
}

/* ---- requests ---- */

static void mode_requests(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), i;
    int32_t h[N];
    void *d = dev_alloc(sizeof(h)), *st;
    scomm_req_t *req = NULL;
    int32_t done = -1;

    st = be_stream(comm);
    for (i = 0; i < N; i++) {
        h[i] = i;
    }
    dev_put(d, h, sizeof(h));
    ST_ASSERT_EQ(dev.spin(st, 200), 0);
    ST_ASSERT_OK(scomm_iall_reduce(d, d, N, SCOMM_INT32, SCOMM_SUM, comm,
                                   &req));
    ST_ASSERT_OK(scomm_test(req, &done));
    ST_ASSERT_EQ(done, 0);
    while (done == 0) {
        ST_ASSERT_OK(scomm_test(req, &done));
    }
    dev_peek(h, d, sizeof(h));
    for (i = 0; i < N; i++) {
        ST_ASSERT_EQ(h[i], p * i);
    }
    ST_ASSERT_OK(scomm_iall_reduce(d, d, N, SCOMM_INT32, SCOMM_SUM, comm,
                                   &req));
    ST_ASSERT_OK(scomm_wait(req));
    dev_peek(h, d, sizeof(h));
    ST_ASSERT_EQ(h[N - 1], p * p * (N - 1));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

/* ---- a full event ring (1024 calls in flight) ---- */

static void mode_ring(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), me = scomm_rank(comm), i;
    int32_t h[4] = {me + 1, me + 1, me + 1, me + 1};
    void *d = dev_alloc(sizeof(h)), *st;
    scomm_req_t *req = NULL;
    int64_t rec0;
    double t0;

    st = be_stream(comm);
    dev_put(d, h, sizeof(h));
    ST_ASSERT_EQ(dev.spin(st, 300), 0); /* nothing completes meanwhile */
    rec0 = dev.stat("event_records");
    t0   = now_s();
    for (i = 0; i < 1500; i++) {
        ST_ASSERT_OK(scomm_all_reduce(d, d, 4, SCOMM_INT32, SCOMM_MAX,
                                      comm));
    }
    ST_ASSERT(now_s() - t0 < 0.280); /* the full ring did not wait */
    ST_ASSERT_EQ(dev.stat("event_records") - rec0, 1500);
    ST_ASSERT_OK(scomm_iall_reduce(d, d, 4, SCOMM_INT32, SCOMM_MAX, comm,
                                   &req));
    ST_ASSERT_OK(scomm_wait(req)); /* the last one, in an extended slot */
    dev_peek(h, d, sizeof(h));
    ST_ASSERT_EQ(h[3], p);
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

/* ---- errors ---- */

static void mode_errors(void)
{
    scomm_comm_t *comm = be_init();
    int32_t a[4] = {1, 2, 3, 4}, b[4];
    void *d = dev_alloc(sizeof(a)), *e = dev_alloc(64 * sizeof(a));
    int p = scomm_size(comm);

    (void)be_stream(comm);
    dev_put(d, a, sizeof(a));
    setenv("FAKE_NCCL_FAIL", "ncclAllReduce:5", 1);
    ST_ASSERT_STATUS(scomm_all_reduce(d, d, 4, SCOMM_INT32, SCOMM_SUM, comm),
                     SCOMM_ERR_INVALID_USAGE);
    assert_msg(comm, "ncclAllReduce", "invalid usage");
    setenv("FAKE_NCCL_FAIL", "ncclAllReduce:4", 1);
    ST_ASSERT_STATUS(scomm_all_reduce(d, d, 4, SCOMM_INT32, SCOMM_SUM, comm),
                     SCOMM_ERR_INVALID_ARG);
    assert_msg(comm, "scomm_all_reduce", "invalid argument");
    unsetenv("FAKE_NCCL_FAIL");
    /* host memory is not what NCCL takes */
    ST_ASSERT_STATUS(scomm_all_reduce(a, b, 4, SCOMM_INT32, SCOMM_SUM, comm),
                     SCOMM_ERR_INVALID_ARG);
    assert_msg(comm, "ncclAllReduce", "not device memory");
    ST_ASSERT_OK(scomm_all_reduce(d, d, 4, SCOMM_INT32, SCOMM_SUM, comm));
    dev_get(comm, b, d, sizeof(b));
    ST_ASSERT_EQ(b[0], p);
    /* an asynchronous remote error fails the communicator */
    setenv("FAKE_NCCL_ASYNC", "ncclAllGather:6", 1);
    ST_ASSERT_OK(scomm_all_gather(d, e, 1, SCOMM_INT32, comm)); /* taken */
    ST_ASSERT_STATUS(scomm_comm_synchronize(comm), SCOMM_ERR_PEER_LOST);
    assert_msg(comm, "ncclAllGather", "remote");
    unsetenv("FAKE_NCCL_ASYNC");
    ST_ASSERT(scomm_all_reduce(d, d, 4, SCOMM_INT32, SCOMM_SUM, comm) !=
              SCOMM_OK);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

static void mode_initfail(int rank)
{
    scomm_comm_t *comm = NULL;
    char want[32];

    if (rank == 1) {
        setenv("FAKE_NCCL_FAIL", "ncclCommInitRankConfig:2", 1);
    }
    ST_ASSERT_STATUS(scomm_init(NULL, &comm), SCOMM_ERR_SYSTEM);
    ST_ASSERT(comm == NULL);
    if (rank != 1) {
        snprintf(want, sizeof(want), "rank 1");
        assert_msg(NULL, want, "nccl");
    } else {
        assert_msg(NULL, "ncclCommInitRankConfig", "system error");
    }
}

static void mode_missing(void)
{
    scomm_comm_t *comm = NULL;
    scomm_backend_info_t info;
    char env[64];
    int i;

    snprintf(env, sizeof(env), "SCOMM_%c%c%c%c_LIBRARY", be_name[0] - 32,
             be_name[1] - 32, be_name[2] - 32, be_name[3] - 32);
    setenv(env, "/nonexistent/libvendor.so", 1);
    ST_ASSERT_STATUS(scomm_init(NULL, &comm), SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(comm == NULL);
    assert_msg(NULL, "/nonexistent/libvendor.so", "install");
    for (i = 0; i < scomm_backend_count(); i++) {
        ST_ASSERT_OK(scomm_backend_probe(i, &info));
        if (strcmp(info.name, be_name) == 0) {
            ST_ASSERT_EQ(info.found, 0);
            ST_ASSERT(strstr(info.detail, "install") != NULL);
        }
    }
}

static void mode_split(void)
{
    scomm_comm_t *comm = be_init(), *sub = NULL;
    int me = scomm_rank(comm), p = scomm_size(comm), q, n = 0;
    int32_t a[3], b[3];
    void *d = dev_alloc(sizeof(a)), *e = dev_alloc(sizeof(a));

    (void)be_stream(comm);
    ST_ASSERT_OK(scomm_comm_split(comm, me % 2, me, &sub));
    ST_ASSERT(sub != NULL);
    ST_ASSERT(strcmp(scomm_comm_backend(sub), be_name) == 0);
    a[0] = a[1] = a[2] = me + 1;
    dev_put(d, a, sizeof(a));
    ST_ASSERT_OK(scomm_all_reduce(d, e, 3, SCOMM_INT32, SCOMM_SUM, sub));
    dev_get(sub, b, e, sizeof(b));
    for (q = me % 2; q < p; q += 2) {
        n += q + 1;
    }
    ST_ASSERT_EQ(b[2], n);
    assert_sel(sub);
    ST_ASSERT_OK(scomm_all_reduce(d, e, 3, SCOMM_INT32, SCOMM_MAX, comm));
    dev_get(comm, b, e, sizeof(b));
    ST_ASSERT_EQ(b[0], p);
    ST_ASSERT_OK(scomm_comm_destroy(sub));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

/* No runtime: calls complete for scomm when enqueued. */
static void mode_nort(void)
{
    scomm_comm_t *comm = be_init();
    int32_t a[3] = {1, 2, 3}, b[3];
    void *d = dev_alloc(sizeof(a)), *st;
    double t0;

    if (scomm_rank(comm) == 0) {
        probe_self("none", "SCOMM_CUDART_LIBRARY=none");
    }
    st = be_stream(comm);
    dev_put(d, a, sizeof(a));
    ST_ASSERT_EQ(dev.spin(st, 200), 0);
    ST_ASSERT_OK(scomm_all_reduce(d, d, 3, SCOMM_INT32, SCOMM_SUM, comm));
    t0 = now_s();
    ST_ASSERT_OK(scomm_comm_synchronize(comm));
    ST_ASSERT(now_s() - t0 < 0.1); /* nothing to wait with */
    ST_ASSERT_EQ(dev.memcpy_(b, d, sizeof(b), 0, 1, NULL, 0), 0);
    ST_ASSERT_EQ(b[2], 3 * scomm_size(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

/* The library by LD_LIBRARY_PATH, its runtime by its dependencies. */
static void mode_discover(void)
{
    probe_self(getenv("BE_WANT_RT"), getenv("BE_WANT_HOW"));
    mode_split();
}

static int rank_fn(int rank, int size, void *arg)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } modes[] = {
        {"map", mode_map},         {"async", mode_async},
        {"watchdog", mode_watchdog}, {"hang", mode_hang},
        {"capture", mode_capture}, {"group", mode_group},
        {"p2p", mode_p2p},         {"requests", mode_requests},
        {"ring", mode_ring},
        {"errors", mode_errors},   {"missing", mode_missing},
        {"split", mode_split},     {"nort", mode_nort},
        {"discover", mode_discover},
    };
    const char *mode = getenv("BE_MODE");
    size_t i;

    (void)size;
    (void)arg;
    dev_load();
    if (strcmp(mode, "initfail") == 0) {
        mode_initfail(rank);
        return 0;
    }
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            modes[i].fn();
            return 0;
        }
    }
    fprintf(stderr, "unknown BE_MODE %s\n", mode);
    return 2;
}

int main(int argc, char **argv)
{
    const char *log_env = getenv("BE_LOG_ENV");
    char path[128];
    int rc;

    be_name = getenv("BE_NAME");
    if ((be_name == NULL) || (getenv("BE_MODE") == NULL)) {
        fprintf(stderr, "set BE_NAME and BE_MODE\n");
        return 2;
    }
    setenv("SCOMM_BACKEND", be_name, 1);
    if (log_env != NULL) {
        snprintf(path, sizeof(path), "/tmp/scomm-test-backend-%d.log",
                 (int)getpid());
        unlink(path);
        setenv(log_env, path, 1);
    }
    rc = st_main_ranks(argc, argv, rank_fn, NULL);
    if (log_env != NULL) {
        unlink(path);
    }
    return rc;
}
