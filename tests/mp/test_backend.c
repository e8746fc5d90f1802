/*
 * test_backend.c - the vendor adapters (src/backend) against the fake
 * vendor libraries of tests/backend, across real processes.
 *
 * BE_NAME names the backend (nccl, rccl, hccl, cncl, bkcl; SCOMM_BACKEND
 * is set to it by ctest) and BE_MODE the check:
 *   map       every dtype x op x collective: results equal an independent
 *             reference (exact small integers, our own encoders); what the
 *             vendor lacks is SCOMM_ERR_UNSUPPORTED naming the backend and
 *             the dtype or op; scomm_last_selection names the backend;
 *             scomm_backend_probe finds the library and its version
 *   timeout   BE_HANG_ENV=BE_HANG_CALL makes the vendor call never
 *             complete: SCOMM_ERR_TIMED_OUT within the timeout (1 s) and
 *             well before 6 s, the message names scomm_all_reduce and the
 *             vendor call, the vendor's abort ran (fake log), later calls
 *             fail fast, destroy is clean
 *   rtstall   the stream runtime (fake libcudart) answers "not ready": the
 *             same timeout path, after a call that completed through it
 *   errors    vendor status codes become scomm's (invalid usage / argument
 *             keep the communicator usable; a remote async error fails it)
 *   initfail  one rank's vendor init fails: every rank's scomm_init fails
 *             with the same status, naming that rank
 *   missing   the library path is wrong: SCOMM_ERR_UNSUPPORTED naming it
 *             and how to install
 *   split     a split of a vendor communicator is a vendor communicator
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scomm.h"
#include "st_test.h"

#define N 37

static const char *be_name;

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

/* ---- map ---- */

static void map_reductions(scomm_comm_t *comm, scomm_dtype_t dt, char *s,
                           char *r)
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
            te_set(dt, s + i * es, val(op, me, i, p));
        }
        if ((op == SCOMM_AVG) && !be_has_avg()) {
            ST_ASSERT_STATUS(scomm_all_reduce(s, r, N, dt, op, comm),
                             SCOMM_ERR_UNSUPPORTED);
            assert_msg(comm, be_name, "avg");
            continue;
        }
        ST_ASSERT_OK(scomm_all_reduce(s, r, N, dt, op, comm));
        check_vec("all_reduce", dt, r, N, w_red, &x);
        assert_sel(comm);
        ST_ASSERT_OK(scomm_reduce_scatter(s, r, N, dt, op, comm));
        x.off = (size_t)me * N;
        check_vec("reduce_scatter", dt, r, N, w_red, &x);
        x.off = 0;
        memset(r, 0, N * es);
        ST_ASSERT_OK(scomm_reduce(s, r, N, dt, op, p - 1, comm));
        if (me == p - 1) {
            check_vec("reduce", dt, r, N, w_red, &x);
        }
        /* in place */
        for (i = 0; i < N; i++) {
            te_set(dt, r + i * es, val(op, me, i, p));
        }
        ST_ASSERT_OK(scomm_all_reduce(r, r, N, dt, op, comm));
        check_vec("all_reduce in place", dt, r, N, w_red, &x);
    }
}

static void map_moves(scomm_comm_t *comm, scomm_dtype_t dt, char *s, char *r)
{
    int p = scomm_size(comm), me = scomm_rank(comm), q;
    size_t es = scomm_dtype_size(dt), i;
    size_t sc[16], sd[16], rc[16], rd[16];
    ctx_t x;

    memset(&x, 0, sizeof(x));
    x.p    = p;
    x.rank = me;
    for (i = 0; i < N; i++) {
        te_set(dt, s + i * es, pat(me, 0, i));
    }
    ST_ASSERT_OK(scomm_all_gather(s, r, N, dt, comm));
    check_vec("all_gather", dt, r, N * (size_t)p, w_gather, NULL);
    assert_sel(comm);

    x.root = 1 % p;
    for (i = 0; i < N; i++) {
        te_set(dt, r + i * es, (me == x.root) ? pat(me, 0, i) : 0.0);
    }
    ST_ASSERT_OK(scomm_broadcast(r, N, dt, x.root, comm));
    check_vec("broadcast", dt, r, N, w_bcast, &x);

    for (q = 0; q < p; q++) {
        for (i = 0; i < N; i++) {
            te_set(dt, s + ((size_t)q * N + i) * es, pat(me, q, i));
        }
    }
    ST_ASSERT_OK(scomm_all_to_all(s, r, N, dt, comm));
    check_vec("all_to_all", dt, r, N * (size_t)p, w_a2a, &x);

    if (!be_has_group()) {
        ST_ASSERT_STATUS(scomm_gather(s, r, N, dt, 0, comm),
                         SCOMM_ERR_UNSUPPORTED);
        assert_msg(comm, be_name, "gather");
        return;
    }
    for (i = 0; i < N; i++) {
        te_set(dt, s + i * es, pat(me, 0, i));
    }
    memset(r, 0, N * (size_t)p * es);
    ST_ASSERT_OK(scomm_gather(s, r, N, dt, 0, comm));
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
    ST_ASSERT_OK(scomm_scatter(s, r, N, dt, x.root, comm));
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
    x.dsp = rd;
    ST_ASSERT_OK(scomm_all_to_allv(s, sc, sd, r, rc, rd, dt, comm));
    check_vec("all_to_allv", dt, r, rd[p - 1] + rc[p - 1], w_a2av, &x);
}

static void probe_self(void)
{
    scomm_backend_info_t info;
    int i, found = 0;

    ST_ASSERT_EQ(scomm_backend_count(), 5);
    for (i = 0; i < scomm_backend_count(); i++) {
        ST_ASSERT_OK(scomm_backend_probe(i, &info));
        if (strcmp(info.name, be_name) == 0) {
            ST_ASSERT_EQ(info.found, 1);
            found = 1;
            if (strcmp(be_name, "nccl") == 0) {
                const char *v = getenv("FAKE_NCCL_VERSION");

                int old = (v != NULL) && (v[0] != '\0');

                ST_ASSERT(strcmp(info.version, old ? "2.21.0" : "2.27.3") ==
                          0);
            } else if (strcmp(be_name, "cncl") == 0) {
                ST_ASSERT(strcmp(info.version, "1.25.0") == 0);
            }
        }
    }
    ST_ASSERT(found);
    ST_ASSERT_STATUS(scomm_backend_probe(99, &info), SCOMM_ERR_INVALID_ARG);
}

static void mode_map(void)
{
    scomm_comm_t *comm = be_init();
    int p = scomm_size(comm), d;
    char *s = calloc(N * (size_t)p, 8), *r = calloc(N * (size_t)p, 8);

    ST_ASSERT((s != NULL) && (r != NULL));
    /* The test's encoders against the standard bit patterns of 1.0. */
    ST_ASSERT_EQ(te_enc(SCOMM_FLOAT16, 1.0), 0x3c00);
    ST_ASSERT_EQ(te_enc(SCOMM_BFLOAT16, 1.0), 0x3f80);
    ST_ASSERT_EQ(te_enc(SCOMM_FP8_E4M3, 1.0), 0x38);
    ST_ASSERT_EQ(te_enc(SCOMM_FP8_E5M2, 1.0), 0x3c);
    ST_ASSERT_EQ(te_enc(SCOMM_FP8_E4M3, 20.0), 0x5a);
    if (scomm_rank(comm) == 0) {
        probe_self();
    }
    for (d = 0; d < SCOMM_DTYPE_COUNT; d++) {
        scomm_dtype_t dt = (scomm_dtype_t)d;

        if (!be_has_dtype(dt)) {
            ST_ASSERT_STATUS(scomm_all_reduce(s, r, N, dt, SCOMM_SUM, comm),
                             SCOMM_ERR_UNSUPPORTED);
            assert_msg(comm, be_name, scomm_dtype_name(dt));
            ST_ASSERT_STATUS(scomm_all_gather(s, r, N, dt, comm),
                             SCOMM_ERR_UNSUPPORTED);
            continue;
        }
        map_reductions(comm, dt, s, r);
        map_moves(comm, dt, s, r);
    }
    /* count 0 goes to the vendor as well and moves nothing */
    ST_ASSERT_OK(scomm_all_reduce(s, r, 0, SCOMM_FLOAT32, SCOMM_SUM, comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    free(s);
    free(r);
}

/* ---- timeout, errors ---- */

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

static void hang_and_check(scomm_comm_t *comm, const char *call)
{
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
    double t0 = now_s(), dt;
    char want[64];
    int me = scomm_rank(comm);

    ST_ASSERT_STATUS(scomm_all_reduce(a, b, 8, SCOMM_FLOAT32, SCOMM_SUM,
                                      comm), SCOMM_ERR_TIMED_OUT);
    dt = now_s() - t0;
    if ((dt < 0.95) || (dt > 6.0)) {
        fprintf(stderr, "timed out after %.3f s, timeout 1 s\n", dt);
        ST_ASSERT(0);
    }
    assert_msg(comm, "scomm_all_reduce", call);
    assert_msg(comm, "aborted", NULL);
    /* The communicator failed: the next call errs at once. */
    t0 = now_s();
    ST_ASSERT(scomm_all_reduce(a, b, 8, SCOMM_FLOAT32, SCOMM_SUM, comm) !=
              SCOMM_OK);
    ST_ASSERT(now_s() - t0 < 2.0);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    snprintf(want, sizeof(want), "abort rank %d", me);
    ST_ASSERT(log_has(want));
}

static void mode_timeout(void)
{
    scomm_comm_t *comm = be_init();
    const char *env = getenv("BE_HANG_ENV"), *call = getenv("BE_HANG_CALL");

    ST_ASSERT((env != NULL) && (call != NULL));
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 1000));
    setenv(env, call, 1);
    hang_and_check(comm, call);
}

static void mode_rtstall(void)
{
    scomm_comm_t *comm = be_init();
    int32_t a[4] = {1, 2, 3, 4}, b[4];
    int p = scomm_size(comm);

    ST_ASSERT_OK(scomm_comm_set_stream(comm, (void *)0x1234));
    ST_ASSERT_OK(scomm_all_reduce(a, b, 4, SCOMM_INT32, SCOMM_SUM, comm));
    ST_ASSERT_EQ(b[3], 4 * p);
    ST_ASSERT_OK(scomm_comm_set_timeout(comm, 1000));
    setenv("FAKE_RT_NOTREADY", "1", 1);
    hang_and_check(comm, "ncclAllReduce");
}

static void mode_errors(void)
{
    scomm_comm_t *comm = be_init();
    int32_t a[4] = {1, 2, 3, 4}, b[4];
    int p = scomm_size(comm);

    setenv("FAKE_NCCL_FAIL", "ncclAllReduce:5", 1);
    ST_ASSERT_STATUS(scomm_all_reduce(a, b, 4, SCOMM_INT32, SCOMM_SUM, comm),
                     SCOMM_ERR_INVALID_USAGE);
    assert_msg(comm, "ncclAllReduce", "invalid usage");
    setenv("FAKE_NCCL_FAIL", "ncclAllReduce:4", 1);
    ST_ASSERT_STATUS(scomm_all_reduce(a, b, 4, SCOMM_INT32, SCOMM_SUM, comm),
                     SCOMM_ERR_INVALID_ARG);
    assert_msg(comm, "scomm_all_reduce", "invalid argument");
    unsetenv("FAKE_NCCL_FAIL");
    ST_ASSERT_OK(scomm_all_reduce(a, b, 4, SCOMM_INT32, SCOMM_SUM, comm));
    ST_ASSERT_EQ(b[0], p);
    /* not a NULL stream on a native-only call */
    ST_ASSERT_OK(scomm_comm_set_stream(comm, NULL));
    setenv("FAKE_NCCL_ASYNC", "ncclAllGather:6", 1);
    ST_ASSERT_STATUS(scomm_all_gather(a, b, 1, SCOMM_INT32, comm),
                     SCOMM_ERR_PEER_LOST);
    assert_msg(comm, "ncclAllGather", "remote");
    unsetenv("FAKE_NCCL_ASYNC");
    ST_ASSERT(scomm_all_reduce(a, b, 4, SCOMM_INT32, SCOMM_SUM, comm) !=
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

    ST_ASSERT_OK(scomm_comm_split(comm, me % 2, me, &sub));
    ST_ASSERT(sub != NULL);
    ST_ASSERT(strcmp(scomm_comm_backend(sub), be_name) == 0);
    a[0] = a[1] = a[2] = me + 1;
    ST_ASSERT_OK(scomm_all_reduce(a, b, 3, SCOMM_INT32, SCOMM_SUM, sub));
    for (q = me % 2; q < p; q += 2) {
        n += q + 1;
    }
    ST_ASSERT_EQ(b[2], n);
    assert_sel(sub);
    ST_ASSERT_OK(scomm_all_reduce(a, b, 3, SCOMM_INT32, SCOMM_MAX, comm));
    ST_ASSERT_EQ(b[0], p);
    ST_ASSERT_OK(scomm_comm_destroy(sub));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
}

static int rank_fn(int rank, int size, void *arg)
{
    const char *mode = getenv("BE_MODE");

    (void)size;
    (void)arg;
    if (strcmp(mode, "map") == 0) {
        mode_map();
    } else if (strcmp(mode, "timeout") == 0) {
        mode_timeout();
    } else if (strcmp(mode, "rtstall") == 0) {
        mode_rtstall();
    } else if (strcmp(mode, "errors") == 0) {
        mode_errors();
    } else if (strcmp(mode, "initfail") == 0) {
        mode_initfail(rank);
    } else if (strcmp(mode, "missing") == 0) {
        mode_missing();
    } else if (strcmp(mode, "split") == 0) {
        mode_split();
    } else {
        fprintf(stderr, "unknown BE_MODE %s\n", mode);
        return 2;
    }
    return 0;
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
