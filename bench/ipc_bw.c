/*
 * ipc_bw.c - the CUDA IPC path (src/backend/ipc.c) timed: two processes on
 * one GPU, a scomm_broadcast of N bytes of device memory from rank 0
 * under the hint SCOMM_MEM_CUDA (rank 1 copies out of rank 0's memory:
 * one device-to-device copy of N), against a plain device-to-device cudaMemcpy of the same N on
 * the receiver, at each size of IPC_BW_SIZES (default "64m,1g").
 *
 * Run by scripts/gpu-check.sh on a GPU (acceptance: IPC at least
 * IPC_BW_MIN_RATIO, default 0.8, of the copy rate) and by ctest
 * (bench.ipc_bw) on the fake device at small sizes with no ratio, so it
 * stays built and right. The runtime is SCOMM_CUDART_LIBRARY, else
 * libcudart.so.13/.12.
 *
 * Prints, from the receiver: "NUMBER ipc_bw_<size> <GB/s>", "NUMBER
 * d2d_bw_<size> <GB/s>", "NUMBER ipc_ratio_<size> <x>", and "CHECK ..."
 * lines; exit 0 when the data arrived right, the collectives' record
 * said cuda_ipc, and every ratio met the bound.
 *
 * Invariants:
 *  1. Each timed iteration starts behind a barrier, so the receiver's
 *     clock covers one whole transfer (handshake, copy, reply).
 *  2. The parent never touches the GPU: each rank process loads the
 *     runtime itself (a forked CUDA context is unusable).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scomm.h"
#include "st_test.h"

static struct {
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int (*memcpy_)(void *d, const void *s, size_t n, int kind);
    int (*memset_)(void *p, int v, size_t n);
    int (*sync)(void);
} rt;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void load(void)
{
    static const char *const names[] = {"libcudart.so.13", "libcudart.so.12",
                                        "libcudart.so"};
    const char *lib = getenv("SCOMM_CUDART_LIBRARY");
    void *dl = NULL, *probe = NULL;
    size_t i;

    if ((lib != NULL) && (lib[0] != '\0')) {
        dl = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    }
    for (i = 0; (dl == NULL) && (i < sizeof(names) / sizeof(names[0]));
         i++) {
        dl = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    }
    if (dl == NULL) {
        ST_SKIP("no CUDA runtime (set SCOMM_CUDART_LIBRARY)");
    }
    *(void **)&rt.malloc_ = dlsym(dl, "cudaMalloc");
    *(void **)&rt.free_   = dlsym(dl, "cudaFree");
    *(void **)&rt.memcpy_ = dlsym(dl, "cudaMemcpy");
    *(void **)&rt.memset_ = dlsym(dl, "cudaMemset");
    *(void **)&rt.sync    = dlsym(dl, "cudaDeviceSynchronize");
    ST_ASSERT((rt.malloc_ != NULL) && (rt.free_ != NULL) &&
              (rt.memcpy_ != NULL) && (rt.memset_ != NULL) &&
              (rt.sync != NULL));
    if (rt.malloc_(&probe, 1) != 0) {
        ST_SKIP("the CUDA runtime has no usable device");
    }
    rt.free_(probe);
}

/* "64m" -> bytes; 0 when not a size. */
static size_t parse_size(const char *s, char **end)
{
    size_t v = (size_t)strtoull(s, end, 10);

    switch (**end) {
    case 'k': v <<= 10; (*end)++; break;
    case 'm': v <<= 20; (*end)++; break;
    case 'g': v <<= 30; (*end)++; break;
    default: break;
    }
    return v;
}

static void name_of(size_t n, char *buf, size_t len)
{
    if ((n >= (1u << 30)) && (n % (1u << 30) == 0)) {
        snprintf(buf, len, "%zuGiB", n >> 30);
    } else if ((n >= (1u << 20)) && (n % (1u << 20) == 0)) {
        snprintf(buf, len, "%zuMiB", n >> 20);
    } else {
        snprintf(buf, len, "%zuB", n);
    }
}

/* The all_gather's record names the IPC path (rank 1 says). */
static int path_is_ipc(scomm_comm_t *comm)
{
    scomm_coll_record_t rec;
    char *d = NULL;
    int ok;

    ST_ASSERT(rt.malloc_((void **)&d, 8192) == 0);
    ST_ASSERT_OK(scomm_all_gather(d + 4096 * (size_t)scomm_rank(comm), d,
                                  4096, SCOMM_UINT8, comm));
    ST_ASSERT_OK(scomm_last_selection(comm, &rec));
    ok = (strncmp(rec.reason, "path cuda_ipc", 13) == 0);
    if (scomm_rank(comm) == 1) {
        printf("CHECK ipc-path %s all_gather record: %s\n",
               ok ? "PASS" : "FAIL", rec.reason);
    }
    rt.free_(d);
    return ok;
}

/* One size: IPC broadcast and the local copy; 1 if within the bound. */
static int one_size(scomm_comm_t *comm, size_t n, int iters, double min)
{
    int r = scomm_rank(comm), it, ok = 1;
    unsigned char head = 0, tail = 0;
    double t0, t_ipc = 0, t_d2d = 0, bw_ipc, bw_d2d;
    char *s = NULL, *d = NULL, nm[32];
    int v = 0x40 + (int)(n % 61);

    ST_ASSERT(rt.malloc_((void **)&s, n) == 0);
    ST_ASSERT(rt.malloc_((void **)&d, n) == 0);
    ST_ASSERT(rt.memset_(s, (r == 0) ? v : 0, n) == 0);
    ST_ASSERT(rt.memset_(d, 0, n) == 0);
    ST_ASSERT(rt.sync() == 0);
    for (it = -1; it < iters; it++) { /* -1: warm-up (opens the handle) */
        ST_ASSERT_OK(scomm_barrier(comm));
        t0 = now_s();
        ST_ASSERT_OK(scomm_broadcast((r == 0) ? s : d, n, SCOMM_UINT8, 0,
                                     comm));
        if (it >= 0) {
            t_ipc += now_s() - t0;
        }
    }
    name_of(n, nm, sizeof(nm));
    if (r == 1) {
        ST_ASSERT(rt.memcpy_(&head, d, 1, 2) == 0);
        ST_ASSERT(rt.memcpy_(&tail, d + n - 1, 1, 2) == 0);
        if ((head != v) || (tail != v)) {
            printf("CHECK ipc-data-%s FAIL bytes %#x..%#x, want %#x\n", nm,
                   head, tail, v);
            ok = 0;
        }
        for (it = -1; it < iters; it++) {
            t0 = now_s();
            ST_ASSERT(rt.memcpy_(s, d, n, 3) == 0); /* device to device */
            ST_ASSERT(rt.sync() == 0);
            if (it >= 0) {
                t_d2d += now_s() - t0;
            }
        }
        bw_ipc = (double)n * iters / t_ipc / 1e9;
        bw_d2d = (double)n * iters / t_d2d / 1e9;
        printf("NUMBER ipc_bw_%s %.1f GB/s\n", nm, bw_ipc);
        printf("NUMBER d2d_bw_%s %.1f GB/s\n", nm, bw_d2d);
        printf("NUMBER ipc_ratio_%s %.2f\n", nm, bw_ipc / bw_d2d);
        if (bw_ipc < min * bw_d2d) {
            ok = 0;
        }
        printf("CHECK ipc-bw-%s %s IPC %.1f GB/s = %.0f %% of a "
               "device-to-device copy (%.1f GB/s; bound %.0f %%)\n", nm,
               (bw_ipc >= min * bw_d2d) ? "PASS" : "FAIL", bw_ipc,
               100.0 * bw_ipc / bw_d2d, bw_d2d, 100.0 * min);
        fflush(stdout);
    }
    ST_ASSERT_OK(scomm_barrier(comm));
    rt.free_(s);
    rt.free_(d);
    return ok;
}

static int run(int rank, int size, void *arg)
{
    const char *sz = getenv("IPC_BW_SIZES");
    const char *mr = getenv("IPC_BW_MIN_RATIO");
    const char *ni = getenv("IPC_BW_ITERS");
    scomm_comm_t *comm = NULL;
    char *p, *end;
    int ok = 1, iters;
    double min;
    size_t n;

    (void)rank;
    (void)arg;
    if (size != 2) {
        ST_SKIP("two ranks");
    }
    load();
    min   = (mr != NULL) ? atof(mr) : 0.8;
    iters = (ni != NULL) ? atoi(ni) : 5;
    iters = (iters > 0) ? iters : 1;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_mem_kind_hint(comm, SCOMM_MEM_CUDA));
    ok = path_is_ipc(comm);
    for (p = (char *)((sz != NULL) ? sz : "64m,1g"); *p != '\0'; p = end) {
        n = parse_size(p, &end);
        if (n > 0) {
            ok &= one_size(comm, n, iters, min);
        }
        while ((*end != '\0') && (*end != ',')) {
            end++;
        }
        if (*end == ',') {
            end++;
        }
    }
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    return st_main_ranks(argc, argv, run, NULL);
}
