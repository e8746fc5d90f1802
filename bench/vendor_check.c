/*
 * vendor_check.c - the stream-ordered NCCL path checked and timed on one
 * device: scripts/gpu-check.sh runs it on a GPU, ctest (bench.vendor_check)
 * on the fake NCCL and the fake CUDA runtime of tests/backend. World size
 * 1 (NCCL refuses two ranks on one device); the CUDA runtime and libnccl
 * are loaded with dlopen, from SCOMM_CUDART_LIBRARY / SCOMM_NCCL_LIBRARY
 * or their sonames: no CUDA header or nvcc is needed.
 *
 * Usage: vendor_check [-n CALLS] [-c COUNT] CHECK...
 *   correct   all_reduce (in and out of place), all_gather, broadcast on
 *             device buffers give the right result
 *   async     an all_reduce issued behind a 200 ms kernel returns to the
 *             host in under 1 ms (SCOMM_TEST_ASYNC_MS; a spin kernel: PTX
 *             through the driver API on a GPU, fkd_spin on the fake); the
 *             result is right after scomm_comm_synchronize
 *   graph     an all_reduce captured into a CUDA graph; 100 replays, each
 *             on fresh input, each output checked
 *   watchdog  a stream blocked for 3 s with a timeout of 1 s: the
 *             synchronize returns SCOMM_ERR_TIMED_OUT within 2 s, naming
 *             the operation
 *   cost      host cost of CALLS back-to-back scomm_all_reduce calls
 *             (COUNT floats) against raw ncclAllReduce on a communicator
 *             of its own (numbers only: the < 10 us target is reported,
 *             never failed on)
 * Each check prints "CHECK <name> PASS|FAIL <detail>"; numbers print as
 * "NUMBER <name> <value> <unit>" (gpu-check.sh builds its report from
 * them). Exit status: the number of failed checks.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scomm.h"

/* ---- the CUDA runtime and driver, as documented (no headers) ---- */

typedef struct {
    int (*set_device)(int);
    int (*malloc_)(void **, size_t);
    int (*malloc_host)(void **, size_t);
    int (*free_)(void *);
    int (*memcpy_)(void *, const void *, size_t, int);
    int (*memcpy_async)(void *, const void *, size_t, int, void *);
    int (*stream_create)(void **);
    int (*stream_sync)(void *);
    int (*begin_capture)(void *, int);
    int (*end_capture)(void *, void **);
    int (*instantiate)(void **, void *, unsigned long long);
    int (*graph_launch)(void *, void *);
    int (*exec_destroy)(void *);
    int (*graph_destroy)(void *);
    const char *(*errstr)(int);
    /* the spin kernel: the driver's, or the fake device's */
    int (*fkd_spin)(void *, int);
    void *cu_fn; /* CUfunction of the PTX spin */
    int (*cu_launch)(void *, unsigned, unsigned, unsigned, unsigned,
                     unsigned, unsigned, unsigned, void *, void **, void **);
} rt_t;

static rt_t rt;
static int failures;

enum { H2D = 1, D2H = 2 };

/* A kernel that spins until %globaltimer moved by ns (PTX ISA 7.0, any
 * GPU from sm_70; the driver compiles it for the device at load). */
static const char spin_ptx[] =
    ".version 7.0\n"
    ".target sm_70\n"
    ".address_size 64\n"
    ".visible .entry scomm_spin(.param .u64 ns)\n"
    "{\n"
    "  .reg .u64 %t0, %t1, %d, %lim;\n"
    "  .reg .pred %p;\n"
    "  ld.param.u64 %lim, [ns];\n"
    "  mov.u64 %t0, %globaltimer;\n"
    "LOOP:\n"
    "  mov.u64 %t1, %globaltimer;\n"
    "  sub.u64 %d, %t1, %t0;\n"
    "  setp.lt.u64 %p, %d, %lim;\n"
    "  @%p bra LOOP;\n"
    "  ret;\n"
    "}\n";

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sym(void *dl, const char *name, int optional)
{
    void *fn = dlsym(dl, name);

    if ((fn == NULL) && !optional) {
        fprintf(stderr, "vendor_check: the CUDA runtime has no %s\n", name);
        exit(100);
    }
    return fn;
}

#define BIND(_f, _dl, _n, _opt)                                             \
    do {                                                                    \
        void *p_ = sym((_dl), (_n), (_opt));                                \
        memcpy(&rt._f, &p_, sizeof(p_));                                    \
    } while (0)

static void *open_first(const char *env, const char *const *names)
{
    const char *path = getenv(env);
    void *dl;
    int i;

    if ((path != NULL) && (path[0] != '\0') && (strcmp(path, "none") != 0)) {
        dl = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        if (dl == NULL) {
            fprintf(stderr, "vendor_check: %s=%s: %s\n", env, path,
                    dlerror());
        }
        return dl;
    }
    for (i = 0; names[i] != NULL; i++) {
        if ((dl = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL)) != NULL) {
            return dl;
        }
    }
    return NULL;
}

/* The driver API's spin kernel, when there is a driver. */
static void load_spin(void *rtdl)
{
    static const char *const cuda[] = {"libcuda.so.1", "libcuda.so", NULL};
    int (*init)(unsigned), (*load)(void **, const void *);
    int (*get)(void **, void *, const char *);
    void *dl, *mod = NULL, *fn;

    BIND(fkd_spin, rtdl, "fkd_spin", 1);
    if (rt.fkd_spin != NULL) {
        return; /* the fake device */
    }
    dl = open_first("SCOMM_TEST_LIBCUDA", cuda);
    if (dl == NULL) {
        return;
    }
    fn = dlsym(dl, "cuInit");
    memcpy(&init, &fn, sizeof(fn));
    fn = dlsym(dl, "cuModuleLoadData");
    memcpy(&load, &fn, sizeof(fn));
    fn = dlsym(dl, "cuModuleGetFunction");
    memcpy(&get, &fn, sizeof(fn));
    fn = dlsym(dl, "cuLaunchKernel");
    memcpy(&rt.cu_launch, &fn, sizeof(fn));
    if ((init == NULL) || (load == NULL) || (get == NULL) ||
        (rt.cu_launch == NULL) || (init(0) != 0) ||
        (load(&mod, spin_ptx) != 0) ||
        (get(&rt.cu_fn, mod, "scomm_spin") != 0)) {
        fprintf(stderr, "vendor_check: the PTX spin kernel did not load\n");
        rt.cu_fn = NULL;
    }
}

static int spin(void *stream, int ms)
{
    unsigned long long ns = (unsigned long long)ms * 1000000ull;
    void *args[1] = {&ns};

    if (rt.fkd_spin != NULL) {
        return rt.fkd_spin(stream, ms);
    }
    if (rt.cu_fn == NULL) {
        return -1;
    }
    return rt.cu_launch(rt.cu_fn, 1, 1, 1, 1, 1, 1, 0, stream, args, NULL);
}

static void load_rt(void)
{
    static const char *const names[] = {"libcudart.so.13", "libcudart.so.12",
                                        "libcudart.so.11.0", "libcudart.so",
                                        NULL};
    void *dl = open_first("SCOMM_CUDART_LIBRARY", names);

    if (dl == NULL) {
        fprintf(stderr, "vendor_check: no CUDA runtime (set "
                "SCOMM_CUDART_LIBRARY)\n");
        exit(100);
    }
    BIND(set_device, dl, "cudaSetDevice", 0);
    BIND(malloc_, dl, "cudaMalloc", 0);
    BIND(malloc_host, dl, "cudaMallocHost", 0);
    BIND(free_, dl, "cudaFree", 0);
    BIND(memcpy_, dl, "cudaMemcpy", 0);
    BIND(memcpy_async, dl, "cudaMemcpyAsync", 0);
    BIND(stream_create, dl, "cudaStreamCreate", 0);
    BIND(stream_sync, dl, "cudaStreamSynchronize", 0);
    BIND(begin_capture, dl, "cudaStreamBeginCapture", 0);
    BIND(end_capture, dl, "cudaStreamEndCapture", 0);
    BIND(instantiate, dl, "cudaGraphInstantiate", 0);
    BIND(graph_launch, dl, "cudaGraphLaunch", 0);
    BIND(exec_destroy, dl, "cudaGraphExecDestroy", 0);
    BIND(graph_destroy, dl, "cudaGraphDestroy", 0);
    BIND(errstr, dl, "cudaGetErrorString", 0);
    if (rt.set_device(0) != 0) {
        fprintf(stderr, "vendor_check: cudaSetDevice(0) failed\n");
        exit(100);
    }
    load_spin(dl);
}

#define CUDA(_call)                                                         \
    do {                                                                    \
        int rc_ = (_call);                                                  \
        if (rc_ != 0) {                                                     \
            fprintf(stderr, "%s:%d: %s: %s (%d)\n", __FILE__, __LINE__,     \
                    #_call, rt.errstr(rc_), rc_);                           \
            exit(101);                                                      \
        }                                                                   \
    } while (0)

#define SC(_call)                                                           \
    do {                                                                    \
        scomm_status_t st_ = (_call);                                       \
        if (st_ != SCOMM_OK) {                                              \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__,      \
                    #_call, scomm_status_name(st_), scomm_last_error());    \
            exit(102);                                                      \
        }                                                                   \
    } while (0)

static void check(const char *name, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(const char *name, int ok, const char *fmt, ...)
{
    va_list ap;

    printf("CHECK %s %s ", name, ok ? "PASS" : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    failures += !ok;
}

static scomm_comm_t *comm_new(void *stream)
{
    scomm_init_opts_t o;
    scomm_comm_t *comm = NULL;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_BACKEND;
    o.backend    = "nccl";
    if ((getenv("SCOMM_RANK") == NULL) && (getenv("RANK") == NULL)) {
        /* one process: world size 1 (NCCL takes one rank per device) */
        o.field_mask |= SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                        SCOMM_INIT_FIELD_MASTER_ADDR |
                        SCOMM_INIT_FIELD_MASTER_PORT;
        o.rank        = 0;
        o.world_size  = 1;
        o.master_addr = "127.0.0.1";
        o.master_port = 29500 + (int32_t)(getpid() % 20000);
    }
    SC(scomm_init(&o, &comm));
    SC(scomm_comm_set_stream(comm, stream));
    return comm;
}

/* ---- the checks ---- */

static int vec_is(const float *h, size_t n, float want)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (h[i] != want) {
            return 0;
        }
    }
    return 1;
}

static void check_correct(scomm_comm_t *comm, size_t n)
{
    int p = scomm_size(comm), me = scomm_rank(comm), ok;
    size_t bytes = n * sizeof(float), i;
    float *h = malloc(bytes * (size_t)p), *g = malloc(bytes * (size_t)p);
    void *a = NULL, *b = NULL;

    CUDA(rt.malloc_(&a, bytes * (size_t)p));
    CUDA(rt.malloc_(&b, bytes * (size_t)p));
    for (i = 0; i < n; i++) {
        h[i] = (float)(me + 1);
    }
    CUDA(rt.memcpy_(a, h, bytes, H2D));
    SC(scomm_all_reduce(a, b, n, SCOMM_FLOAT32, SCOMM_SUM, comm));
    SC(scomm_comm_synchronize(comm));
    CUDA(rt.memcpy_(g, b, bytes, D2H));
    ok = vec_is(g, n, (float)(p * (p + 1) / 2));
    SC(scomm_all_reduce(a, a, n, SCOMM_FLOAT32, SCOMM_MAX, comm));
    SC(scomm_comm_synchronize(comm));
    CUDA(rt.memcpy_(g, a, bytes, D2H));
    ok = ok && vec_is(g, n, (float)p);
    check("all_reduce", ok, "sum out of place and max in place, %zu floats, "
          "%d rank(s)", n, p);

    for (i = 0; i < n; i++) {
        h[i] = (float)(me * 1000 + (int)(i % 1000));
    }
    CUDA(rt.memcpy_(a, h, bytes, H2D));
    SC(scomm_all_gather(a, b, n, SCOMM_FLOAT32, comm));
    SC(scomm_comm_synchronize(comm));
    CUDA(rt.memcpy_(g, b, bytes * (size_t)p, D2H));
    for (i = 0, ok = 1; ok && (i < n * (size_t)p); i++) {
        ok = (g[i] == (float)((int)(i / n) * 1000 + (int)(i % n % 1000)));
    }
    check("all_gather", ok, "%zu floats per rank", n);

    for (i = 0; i < n; i++) {
        h[i] = (me == 0) ? (float)(i % 777) : -1.0f;
    }
    CUDA(rt.memcpy_(a, h, bytes, H2D));
    SC(scomm_broadcast(a, n, SCOMM_FLOAT32, 0, comm));
    SC(scomm_comm_synchronize(comm));
    CUDA(rt.memcpy_(g, a, bytes, D2H));
    for (i = 0, ok = 1; ok && (i < n); i++) {
        ok = (g[i] == (float)(i % 777));
    }
    check("broadcast", ok, "root 0, %zu floats", n);
    CUDA(rt.free_(a));
    CUDA(rt.free_(b));
    free(h);
    free(g);
}

static void check_async(scomm_comm_t *comm, void *stream, size_t n)
{
    size_t bytes = n * sizeof(float);
    float *h = malloc(bytes);
    void *a = NULL;
    const char *lim = getenv("SCOMM_TEST_ASYNC_MS");
    double t0, t_call, t_sync, limit_ms = (lim != NULL) ? atof(lim) : 1.0;
    int p = scomm_size(comm), ok;

    CUDA(rt.malloc_(&a, bytes));
    for (size_t i = 0; i < n; i++) {
        h[i] = 1.0f;
    }
    CUDA(rt.memcpy_(a, h, bytes, H2D));
    SC(scomm_comm_synchronize(comm));
    if (spin(stream, 200) != 0) {
        check("async", 0, "no spin kernel (no CUDA driver API?)");
        return;
    }
    t0 = now_s();
    SC(scomm_all_reduce(a, a, n, SCOMM_FLOAT32, SCOMM_SUM, comm));
    t_call = now_s() - t0;
    SC(scomm_comm_synchronize(comm));
    t_sync = now_s() - t0;
    CUDA(rt.memcpy_(h, a, bytes, D2H));
    ok = vec_is(h, n, (float)p) && (t_call * 1e3 < limit_ms) &&
         (t_sync > 0.150);
    printf("NUMBER async_call_return_ms %.4f ms\n", t_call * 1e3);
    printf("NUMBER async_synchronize_ms %.1f ms\n", t_sync * 1e3);
    check("async", ok, "all_reduce behind a 200 ms kernel returned in "
          "%.4f ms (< %g ms wanted), synchronize after %.1f ms, result %s",
          t_call * 1e3, limit_ms, t_sync * 1e3,
          vec_is(h, n, (float)p) ? "right" : "WRONG");
    CUDA(rt.free_(a));
    free(h);
}

static void check_graph(scomm_comm_t *comm, void *stream, size_t n)
{
    const int reps = 100;
    size_t bytes = n * sizeof(float);
    float *hin = NULL, *hout = NULL;
    void *a = NULL, *b = NULL, *g = NULL, *x = NULL;
    int p = scomm_size(comm), k, ok = 1, bad = -1;
    double t0;

    CUDA(rt.malloc_(&a, bytes));
    CUDA(rt.malloc_(&b, bytes));
    CUDA(rt.malloc_host((void **)&hin, bytes * (size_t)reps));
    CUDA(rt.malloc_host((void **)&hout, bytes * (size_t)reps));
    SC(scomm_comm_synchronize(comm));
    CUDA(rt.begin_capture(stream, 0)); /* global mode */
    SC(scomm_all_reduce(a, b, n, SCOMM_FLOAT32, SCOMM_SUM, comm));
    CUDA(rt.end_capture(stream, &g));
    CUDA(rt.instantiate(&x, g, 0));
    for (k = 0; k < reps; k++) {
        for (size_t i = 0; i < n; i++) {
            hin[(size_t)k * n + i] = (float)(k + 1);
        }
    }
    t0 = now_s();
    for (k = 0; k < reps; k++) {
        CUDA(rt.memcpy_async(a, hin + (size_t)k * n, bytes, H2D, stream));
        CUDA(rt.graph_launch(x, stream));
        CUDA(rt.memcpy_async(hout + (size_t)k * n, b, bytes, D2H, stream));
    }
    SC(scomm_comm_synchronize(comm)); /* the fence covers the replays */
    printf("NUMBER graph_100_replays_ms %.2f ms\n", (now_s() - t0) * 1e3);
    for (k = 0; (k < reps) && ok; k++) {
        ok = vec_is(hout + (size_t)k * n, n, (float)(p * (k + 1)));
        bad = ok ? -1 : k;
    }
    if (ok) {
        check("graph", 1, "%d replays of a captured all_reduce, each on "
              "fresh input, all right", reps);
    } else {
        check("graph", 0, "%d replays of a captured all_reduce: replay %d "
              "gave a wrong result", reps, bad);
    }
    CUDA(rt.exec_destroy(x));
    CUDA(rt.graph_destroy(g));
    CUDA(rt.free_(a));
    CUDA(rt.free_(b));
}

static void check_watchdog(void *stream, size_t n)
{
    scomm_comm_t *comm = comm_new(stream);
    void *a = NULL;
    scomm_status_t st;
    const char *msg;
    double t0, dt;
    int ok;

    CUDA(rt.malloc_(&a, n * sizeof(float)));
    SC(scomm_comm_set_timeout(comm, 1000));
    if (spin(stream, 3000) != 0) {
        check("watchdog", 0, "no spin kernel (no CUDA driver API?)");
        return;
    }
    t0 = now_s();
    SC(scomm_all_reduce(a, a, n, SCOMM_FLOAT32, SCOMM_SUM, comm));
    st  = scomm_comm_synchronize(comm);
    dt  = now_s() - t0;
    msg = scomm_comm_last_error(comm);
    ok  = (st == SCOMM_ERR_TIMED_OUT) && (dt >= 0.95) && (dt <= 2.0) &&
         (strstr(msg, "scomm_all_reduce") != NULL);
    printf("NUMBER watchdog_fired_after_s %.3f s\n", dt);
    check("watchdog", ok, "stream blocked 3 s, timeout 1 s: %s after %.3f s: "
          "%s", scomm_status_name(st), dt, msg);
    scomm_comm_destroy(comm);
    CUDA(rt.stream_sync(stream)); /* the spin runs out */
    CUDA(rt.free_(a));
}

/* ---- host cost against raw NCCL ---- */

/* NCCL's documented ABI: ncclUniqueId (128 bytes, by value), ncclConfig_t
 * in its 2.14 layout, ncclFloat32 = 7, ncclSum = 0. */
typedef struct {
    char internal[128];
} nccl_id_t;

typedef struct {
    size_t       size;
    unsigned int magic, version;
    int          blocking;
} nccl_config_t;

static double raw_nccl_cost(void *stream, void *buf, size_t n, int calls)
{
    static const char *const names[] = {"libnccl.so.2", "libnccl.so", NULL};
    nccl_config_t cfg = {sizeof(cfg), 0xcafebeefu, 21400, 1};
    int (*get_id)(nccl_id_t *);
    int (*init)(void **, int, nccl_id_t, int, nccl_config_t *);
    int (*ar)(const void *, void *, size_t, int, int, void *, void *);
    int (*destroy)(void *);
    void *dl = open_first("SCOMM_NCCL_LIBRARY", names), *c = NULL, *fn;
    nccl_id_t id;
    double t0, t;
    int i;

    if (dl == NULL) {
        return -1.0;
    }
    fn = dlsym(dl, "ncclGetUniqueId");
    memcpy(&get_id, &fn, sizeof(fn));
    fn = dlsym(dl, "ncclCommInitRankConfig");
    memcpy(&init, &fn, sizeof(fn));
    fn = dlsym(dl, "ncclAllReduce");
    memcpy(&ar, &fn, sizeof(fn));
    fn = dlsym(dl, "ncclCommDestroy");
    memcpy(&destroy, &fn, sizeof(fn));
    if ((get_id == NULL) || (init == NULL) || (ar == NULL) ||
        (destroy == NULL) || (get_id(&id) != 0) ||
        (init(&c, 1, id, 0, &cfg) != 0)) {
        return -1.0;
    }
    for (i = 0; i < 100; i++) { /* warm up */
        (void)ar(buf, buf, n, 7, 0, c, stream);
    }
    CUDA(rt.stream_sync(stream));
    t0 = now_s();
    for (i = 0; i < calls; i++) {
        (void)ar(buf, buf, n, 7, 0, c, stream);
    }
    t = (now_s() - t0) / calls;
    CUDA(rt.stream_sync(stream));
    destroy(c);
    return t;
}

static void check_cost(scomm_comm_t *comm, void *stream, size_t n,
                       int calls)
{
    void *a = NULL;
    double t0, t_scomm, t_done, t_raw;
    int i;

    CUDA(rt.malloc_(&a, n * sizeof(float)));
    for (i = 0; i < 100; i++) {
        SC(scomm_all_reduce(a, a, n, SCOMM_FLOAT32, SCOMM_SUM, comm));
    }
    SC(scomm_comm_synchronize(comm));
    t0 = now_s();
    for (i = 0; i < calls; i++) {
        SC(scomm_all_reduce(a, a, n, SCOMM_FLOAT32, SCOMM_SUM, comm));
    }
    t_scomm = (now_s() - t0) / calls;
    SC(scomm_comm_synchronize(comm));
    t_done = now_s() - t0;
    t_raw  = raw_nccl_cost(stream, a, n, calls);
    printf("NUMBER scomm_host_us_per_call %.3f us\n", t_scomm * 1e6);
    printf("NUMBER scomm_calls_total_ms %.1f ms\n", t_done * 1e3);
    if (t_raw > 0) {
        printf("NUMBER raw_nccl_host_us_per_call %.3f us\n", t_raw * 1e6);
        printf("NUMBER scomm_overhead_us_per_call %.3f us\n",
               (t_scomm - t_raw) * 1e6);
    }
    /* a measurement, not a pass mark: the target is the report's */
    check("cost", 1, "%d scomm_all_reduce calls of %zu floats: %.3f us each "
          "on the host (target < 10 us: %s; raw ncclAllReduce: %s%.3f us)",
          calls, n, t_scomm * 1e6, (t_scomm < 10e-6) ? "met" : "NOT met",
          (t_raw > 0) ? "" : "n/a, ", (t_raw > 0) ? t_raw * 1e6 : 0.0);
    CUDA(rt.free_(a));
}

int main(int argc, char **argv)
{
    size_t count = 1024;
    int calls = 10000, i;
    scomm_comm_t *comm;
    void *stream = NULL;

    for (i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-n") == 0) && (i + 1 < argc)) {
            calls = atoi(argv[++i]);
        } else if ((strcmp(argv[i], "-c") == 0) && (i + 1 < argc)) {
            count = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: vendor_check [-n CALLS] [-c COUNT] "
                    "correct|async|graph|watchdog|cost...\n");
            return 100;
        } else {
            break;
        }
    }
    if ((calls < 1) || (count < 1) || (i == argc)) {
        fprintf(stderr, "usage: vendor_check [-n CALLS] [-c COUNT] "
                "correct|async|graph|watchdog|cost...\n");
        return 100;
    }
    load_rt();
    CUDA(rt.stream_create(&stream));
    comm = comm_new(stream);
    for (; i < argc; i++) {
        if (strcmp(argv[i], "correct") == 0) {
            check_correct(comm, count);
        } else if (strcmp(argv[i], "async") == 0) {
            check_async(comm, stream, count);
        } else if (strcmp(argv[i], "graph") == 0) {
            check_graph(comm, stream, count);
        } else if (strcmp(argv[i], "cost") == 0) {
            check_cost(comm, stream, count, calls);
        } else if (strcmp(argv[i], "watchdog") == 0) {
            check_watchdog(stream, count); /* its own communicator */
        } else {
            fprintf(stderr, "vendor_check: unknown check %s\n", argv[i]);
            return 100;
        }
    }
    SC(scomm_comm_destroy(comm));
    return failures;
}
