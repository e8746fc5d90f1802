/*
 * test_fake_device.c - the fake device (fake_device.c, through the fake
 * libcudart.so.13's CUDA-named calls) behaves as the CUDA runtime
 * documents, so the backend tests built on it mean something:
 *
 *   later     a kernel runs after its launch returned, kernels run in
 *             order, FAKE_STREAM_DELAY_MS holds each one back
 *   events    cudaEventQuery is cudaErrorNotReady (600) until the stream
 *             passed the record, cudaSuccess after; never recorded: done
 *   capture   launches on a capturing stream do not run; the graph replays
 *             them once per cudaGraphLaunch; the legacy stream cannot
 *             capture; a query from a thread in global mode invalidates a
 *             global capture (cudaErrorStreamCaptureUnsupported, then
 *             cudaErrorStreamCaptureInvalidated at the end), one in
 *             relaxed mode does not
 *   memory    device memory copied in and out through cudaMemcpy is
 *             intact; a host read of it kills the process (SIGSEGV); a
 *             copy with the wrong direction or past the allocation fails
 *   ipc       a handle of an allocation's base opens in another process
 *             (a forked child) as device memory with the owner's bytes,
 *             counted and closed once; an inner pointer has no handle;
 *             the owner cannot open its own (201); FAKE_IPC_OPEN_FAIL
 *             makes an open fail (205)
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_device.h"
#include "st_test.h"

/* The CUDA-named calls of the fake runtime (fake_rt_api.c). */
int cudaStreamCreate(void **s);
int cudaStreamDestroy(void *s);
int cudaStreamSynchronize(void *s);
int cudaStreamBeginCapture(void *s, int mode);
int cudaStreamEndCapture(void *s, void **g);
int cudaStreamIsCapturing(void *s, int *st);
int cudaThreadExchangeStreamCaptureMode(int *mode);
int cudaGraphInstantiate(void **x, void *g, unsigned long long f);
int cudaGraphLaunch(void *x, void *s);
int cudaGraphExecDestroy(void *x);
int cudaGraphDestroy(void *g);
int cudaEventCreateWithFlags(void **e, unsigned f);
int cudaEventRecord(void *e, void *s);
int cudaEventQuery(void *e);
int cudaEventDestroy(void *e);
int cudaMalloc(void **p, size_t n);
int cudaFree(void *p);
int cudaMemcpy(void *d, const void *s, size_t n, int kind);
int cudaIpcGetMemHandle(fkd_ipc_handle_t *h, void *p);
int cudaIpcOpenMemHandle(void **p, fkd_ipc_handle_t h, unsigned flags);
int cudaIpcCloseMemHandle(void *p);
int cudaPointerGetAttributes(void *attr, const void *p);

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- later ---- */

static _Atomic int order[8];
static _Atomic int norder;

typedef struct {
    int id;
    int ms;
} k_arg_t;

static void k_run(void *arg)
{
    k_arg_t *k = arg;
    struct timespec ts = {0, (long)k->ms * 1000000L};

    nanosleep(&ts, NULL);
    order[atomic_fetch_add(&norder, 1)] = k->id;
}

static void test_later(void)
{
    static k_arg_t k[3] = {{1, 50}, {2, 0}, {3, 10}};
    void *s = NULL;
    double t0;
    int i;

    ST_ASSERT_EQ(cudaStreamCreate(&s), 0);
    t0 = now_ms();
    for (i = 0; i < 3; i++) {
        ST_ASSERT_EQ(fkd_launch(s, k_run, NULL, &k[i]), FKD_OK);
    }
    ST_ASSERT(now_ms() - t0 < 40.0); /* returned before the 50 ms kernel */
    ST_ASSERT_EQ(atomic_load(&norder), 0);
    ST_ASSERT_EQ(cudaStreamSynchronize(s), 0);
    ST_ASSERT_EQ(atomic_load(&norder), 3);
    for (i = 0; i < 3; i++) {
        ST_ASSERT_EQ(order[i], i + 1);
    }
    ST_ASSERT_EQ(cudaStreamDestroy(s), 0);
}

static void test_delay(void)
{
    static k_arg_t k = {9, 0};
    void *s = NULL;
    double t0;

    setenv("FAKE_STREAM_DELAY_MS", "80", 1);
    ST_ASSERT_EQ(cudaStreamCreate(&s), 0);
    unsetenv("FAKE_STREAM_DELAY_MS");
    atomic_store(&norder, 0);
    t0 = now_ms();
    ST_ASSERT_EQ(fkd_launch(s, k_run, NULL, &k), FKD_OK);
    ST_ASSERT_EQ(cudaStreamSynchronize(s), 0);
    ST_ASSERT(now_ms() - t0 >= 79.0);
    ST_ASSERT_EQ(atomic_load(&norder), 1);
    ST_ASSERT_EQ(cudaStreamDestroy(s), 0);
}

/* ---- events ---- */

static void test_events(void)
{
    void *s = NULL, *e = NULL, *never = NULL;

    ST_ASSERT_EQ(cudaStreamCreate(&s), 0);
    ST_ASSERT_EQ(cudaEventCreateWithFlags(&e, 2), 0);
    ST_ASSERT_EQ(cudaEventCreateWithFlags(&never, 2), 0);
    ST_ASSERT_EQ(cudaEventQuery(never), 0);
    ST_ASSERT_EQ(fkd_spin(s, 200), FKD_OK);
    ST_ASSERT_EQ(cudaEventRecord(e, s), 0);
    ST_ASSERT_EQ(cudaEventQuery(e), 600);
    ST_ASSERT_EQ(cudaStreamSynchronize(s), 0);
    ST_ASSERT_EQ(cudaEventQuery(e), 0);
    /* recorded again: not ready again until passed */
    ST_ASSERT_EQ(fkd_spin(s, 50), FKD_OK);
    ST_ASSERT_EQ(cudaEventRecord(e, s), 0);
    ST_ASSERT_EQ(cudaEventQuery(e), 600);
    ST_ASSERT_EQ(cudaStreamSynchronize(s), 0);
    ST_ASSERT_EQ(cudaEventQuery(e), 0);
    ST_ASSERT_EQ(cudaEventDestroy(e), 0);
    ST_ASSERT_EQ(cudaEventDestroy(never), 0);
    ST_ASSERT_EQ(cudaStreamDestroy(s), 0);
}

/* ---- capture ---- */

static _Atomic int runs;

static void k_count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&runs, 1);
}

static void test_capture(void)
{
    void *s = NULL, *g = NULL, *x = NULL, *e = NULL;
    int st = -1;
    int64_t rec0 = fkd_stat("event_records"), cap0 = fkd_stat("captured");

    ST_ASSERT_EQ(cudaStreamCreate(&s), 0);
    ST_ASSERT_EQ(cudaEventCreateWithFlags(&e, 2), 0);
    ST_ASSERT_EQ(cudaStreamBeginCapture(NULL, 0), 401); /* legacy stream */
    ST_ASSERT_EQ(cudaStreamBeginCapture(s, 0), 0);
    ST_ASSERT_EQ(cudaStreamIsCapturing(s, &st), 0);
    ST_ASSERT_EQ(st, 1);
    ST_ASSERT_EQ(fkd_launch(s, k_count, NULL, NULL), FKD_OK);
    ST_ASSERT_EQ(fkd_launch(s, k_count, NULL, NULL), FKD_OK);
    ST_ASSERT_EQ(cudaEventRecord(e, s), 0);
    ST_ASSERT_EQ(cudaStreamEndCapture(s, &g), 0);
    ST_ASSERT(g != NULL);
    ST_ASSERT_EQ(cudaStreamIsCapturing(s, &st), 0);
    ST_ASSERT_EQ(st, 0);
    ST_ASSERT_EQ(fkd_stat("captured") - cap0, 3);
    ST_ASSERT_EQ(fkd_stat("event_records") - rec0, 1);
    ST_ASSERT_EQ(cudaStreamSynchronize(s), 0);
    ST_ASSERT_EQ(atomic_load(&runs), 0); /* captured, not run */
    ST_ASSERT_EQ(cudaGraphInstantiate(&x, g, 0), 0);
    ST_ASSERT_EQ(cudaGraphDestroy(g), 0); /* the executable keeps it */
    ST_ASSERT_EQ(cudaGraphLaunch(x, s), 0);
    ST_ASSERT_EQ(cudaGraphLaunch(x, s), 0);
    ST_ASSERT_EQ(cudaGraphLaunch(x, s), 0);
    ST_ASSERT_EQ(cudaStreamSynchronize(s), 0);
    ST_ASSERT_EQ(atomic_load(&runs), 6);
    ST_ASSERT_EQ(cudaGraphExecDestroy(x), 0);
    ST_ASSERT_EQ(cudaEventDestroy(e), 0);
    ST_ASSERT_EQ(cudaStreamDestroy(s), 0);
}

typedef struct {
    void *ev;
    int   mode;
    int   rc;
} q_arg_t;

static void *query_thread(void *arg)
{
    q_arg_t *q = arg;
    int mode = q->mode;

    ST_ASSERT_EQ(cudaThreadExchangeStreamCaptureMode(&mode), 0);
    q->rc = cudaEventQuery(q->ev);
    return NULL;
}

/* A query from another thread during a global capture: mode decides. */
static int capture_with_query(int mode, int *end_rc)
{
    void *s = NULL, *e = NULL, *g = NULL;
    q_arg_t q;
    pthread_t t;

    ST_ASSERT_EQ(cudaStreamCreate(&s), 0);
    ST_ASSERT_EQ(cudaEventCreateWithFlags(&e, 2), 0);
    ST_ASSERT_EQ(cudaStreamBeginCapture(s, 0), 0);
    q.ev   = e;
    q.mode = mode;
    q.rc   = -1;
    ST_ASSERT_EQ(pthread_create(&t, NULL, query_thread, &q), 0);
    ST_ASSERT_EQ(pthread_join(t, NULL), 0);
    *end_rc = cudaStreamEndCapture(s, &g);
    if (g != NULL) {
        ST_ASSERT_EQ(cudaGraphDestroy(g), 0);
    }
    ST_ASSERT_EQ(cudaEventDestroy(e), 0);
    ST_ASSERT_EQ(cudaStreamDestroy(s), 0);
    return q.rc;
}

static void test_capture_modes(void)
{
    int end_rc;

    ST_ASSERT_EQ(capture_with_query(0, &end_rc), 900);
    ST_ASSERT_EQ(end_rc, 901);
    ST_ASSERT_EQ(capture_with_query(2, &end_rc), 0);
    ST_ASSERT_EQ(end_rc, 0);
}

/* ---- memory ---- */

/* Freed device addresses stay device address space: host mappings made
 * after the free never land there, a later device allocation may. */
static void test_memory_reserved(void)
{
    enum { N = 64, LEN = 1 << 20 };
    void *d = NULL, *h[N], *again = NULL;
    uintptr_t lo, hi;
    int i;

    ST_ASSERT_EQ(cudaMalloc(&d, LEN), 0);
    lo = (uintptr_t)d;
    hi = lo + LEN;
    ST_ASSERT_EQ(cudaFree(d), 0);
    for (i = 0; i < N; i++) {
        h[i] = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ST_ASSERT(h[i] != MAP_FAILED);
        ST_ASSERT(((uintptr_t)h[i] + LEN <= lo) || ((uintptr_t)h[i] >= hi));
    }
    ST_ASSERT_EQ(cudaMalloc(&again, LEN), 0);
    ST_ASSERT_EQ((uintptr_t)again, lo); /* the reserved range, reused */
    ST_ASSERT_EQ(cudaFree(again), 0);
    for (i = 0; i < N; i++) {
        munmap(h[i], LEN);
    }
}

static void test_memory(void)
{
    unsigned char in[4096], out[4096];
    void *d = NULL, *w = NULL;
    int kind, status;
    pid_t pid;
    size_t i;

    for (i = 0; i < sizeof(in); i++) {
        in[i] = (unsigned char)(i * 7 + 3);
    }
    ST_ASSERT_EQ(cudaMalloc(&d, 3000), 0);
    ST_ASSERT(d != NULL);
    ST_ASSERT_EQ(fkd_translate(d, 3000, &w, &kind), FKD_OK);
    ST_ASSERT_EQ(kind, FKD_MEM_DEVICE);
    ST_ASSERT(w != d);
    ST_ASSERT_EQ(fkd_translate((char *)d + 100, 2901, &w, &kind),
                 FKD_EINVAL);
    ST_ASSERT_EQ(cudaMemcpy(d, in, 3000, 1), 0);          /* H2D */
    ST_ASSERT_EQ(cudaMemcpy(out, d, 3000, 2), 0);         /* D2H */
    ST_ASSERT(memcmp(in, out, 3000) == 0);
    ST_ASSERT_EQ(cudaMemcpy(out, d, 3000, 1), 1);         /* wrong way */
    ST_ASSERT_EQ(cudaMemcpy(out, d, 4000, 2), 1);         /* too long */
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        volatile unsigned char c = *(volatile unsigned char *)d;
        (void)c;
        _exit(0); /* not reached */
    }
    ST_ASSERT(pid > 0);
    ST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    /* killed by SIGSEGV (or, under ASan, reported and ended non-zero) */
    ST_ASSERT((WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV)) ||
              (WIFEXITED(status) && (WEXITSTATUS(status) != 0)));
    ST_ASSERT_EQ(cudaFree(d), 0);
    ST_ASSERT_EQ(cudaFree(d), 1); /* twice */
    test_memory_reserved();
}

/* In a forked child: open the parent's handle, read, close; exit 0 if
 * all went as documented. */
static int ipc_child(fkd_ipc_handle_t h, const unsigned char *want)
{
    struct {
        int   type;
        int   device;
        void *dp;
        void *hp;
        char  more[64];
    } attr;
    unsigned char out[256];
    void *p = NULL, *p2 = NULL;

    if ((cudaIpcOpenMemHandle(&p, h, 0) != 1) ||  /* flags must be 1 */
        (cudaIpcOpenMemHandle(&p, h, 1) != 0) ||
        (cudaIpcOpenMemHandle(&p2, h, 1) != 0) || (p2 != p) ||
        (cudaPointerGetAttributes(&attr, (char *)p + 10) != 0) ||
        (attr.type != 2) ||
        (cudaMemcpy(out, (char *)p + 100, 256, 2) != 0) ||
        (memcmp(out, want + 100, 256) != 0) ||
        (cudaFree(p) != 1) ||                     /* not its own memory */
        (cudaIpcCloseMemHandle(p) != 0) ||
        (cudaIpcCloseMemHandle(p) != 0) ||        /* the second open */
        (cudaIpcCloseMemHandle(p) != 1)) {        /* gone */
        return 1;
    }
    setenv("FAKE_IPC_OPEN_FAIL", "1", 1);
    return (cudaIpcOpenMemHandle(&p, h, 1) == 205) ? 0 : 2;
}

static void test_ipc(void)
{
    unsigned char in[4096];
    fkd_ipc_handle_t h;
    void *d = NULL, *self = NULL;
    int status, i;
    pid_t pid;

    for (i = 0; i < (int)sizeof(in); i++) {
        in[i] = (unsigned char)(i * 7 + 3);
    }
    ST_ASSERT_EQ(cudaMalloc(&d, sizeof(in)), 0);
    ST_ASSERT_EQ(cudaMemcpy(d, in, sizeof(in), 1), 0);
    ST_ASSERT_EQ(cudaIpcGetMemHandle(&h, (char *)d + 100), 1); /* inner */
    ST_ASSERT_EQ(cudaIpcGetMemHandle(&h, in), 1);              /* host */
    ST_ASSERT_EQ(cudaIpcGetMemHandle(&h, d), 0);
    ST_ASSERT_EQ(cudaIpcOpenMemHandle(&self, h, 1), 201);      /* own */
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        _exit(ipc_child(h, in));
    }
    ST_ASSERT(pid > 0);
    ST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ST_ASSERT(WIFEXITED(status));
    ST_ASSERT_EQ(WEXITSTATUS(status), 0);
    ST_ASSERT_EQ(cudaFree(d), 0);
}

int main(void)
{
    test_later();
    test_delay();
    test_events();
    test_capture();
    test_capture_modes();
    test_memory();
    test_ipc();
    printf("fake device: later, delay, events, capture, modes, memory, "
           "ipc ok\n");
    return 0;
}
