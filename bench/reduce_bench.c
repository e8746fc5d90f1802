/*
 * reduce_bench.c - micro-benchmark of the SUM reduction kernel.
 *
 * Measures scomm_reduce2(dst, src, count, dtype, SCOMM_SUM) in place, the
 * kernel of a ring all-reduce, for float32, float16, bfloat16 and both fp8
 * formats, with every implementation this CPU has, next to memcpy() of the
 * same buffer size. Throughput is memory traffic: the reduction reads two
 * buffers and writes one (3 x size per call), memcpy reads one and writes
 * one (2 x size). The size is that of one operand buffer. Each figure is
 * the best of five timed runs of at least min_seconds each. Time is the
 * thread's CPU time, so that other processes sharing the CPUs do not count
 * (their pressure on caches and memory still does).
 *
 * Build: gcc -std=c11 -O3 -D_GNU_SOURCE -Iinclude -Isrc
 *        bench/reduce_bench.c src/coll/reduce.c -o reduce_bench
 * Run:   ./reduce_bench [min_seconds_per_run]
 *
 * Measured on this machine: Intel Xeon, Ice Lake server (family 6 model
 * 106) at 2.8 GHz under KVM, 2 vCPUs, 48 MiB L3, shared with other jobs
 * (load average 6 during the run, so expect +-30% noise); gcc 12.2 -O3;
 * GB/s of memory traffic as defined above:
 *
 *   size     dtype    scalar     avx2   avx512   memcpy
 *   4 KiB    f32        50.4    103.0    114.1    340.3
 *   4 KiB    f16         2.4     44.1     64.0    340.3
 *   4 KiB    bf16        6.9     19.4     35.0    340.3
 *   4 KiB    e4m3        1.6      3.4      6.0    340.3
 *   4 KiB    e5m2        1.3      4.8      9.6    340.3
 *   256 KiB  f32        51.3     82.3     68.5    133.7
 *   256 KiB  f16         2.3     44.1     49.3    133.7
 *   256 KiB  bf16        6.9     19.6     34.8    133.7
 *   256 KiB  e4m3        1.6      3.4      6.0    133.7
 *   256 KiB  e5m2        1.3      4.9     10.0    133.7
 *   16 MiB   f32        19.3     24.6     28.1     55.5
 *   16 MiB   f16         2.4     18.8     19.6     55.5
 *   16 MiB   bf16        6.4     13.0     17.9     55.5
 *   16 MiB   e4m3        1.6      3.3      5.8     55.5
 *   16 MiB   e5m2        1.3      4.6      8.6     55.5
 *   256 MiB  f32        18.0     19.5     20.9     47.3
 *   256 MiB  f16         2.4     17.9     19.3     47.3
 *   256 MiB  bf16        6.5     14.3     17.4     47.3
 *   256 MiB  e4m3        1.6      3.3      5.7     47.3
 *   256 MiB  e5m2        1.1      4.3      8.4     47.3
 */
#include "coll/reduce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double g_min_seconds = 0.05;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keep the compiler from dropping or merging calls on the buffers. */
static void clobber(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

static size_t dsize(scomm_dtype_t dt)
{
    switch (dt) {
    case SCOMM_FLOAT32:
        return 4;
    case SCOMM_FLOAT16:
    case SCOMM_BFLOAT16:
        return 2;
    default:
        return 1;
    }
}

/* Best time per call over five runs of at least g_min_seconds. */
static double best_time(int kind, void *dst, const void *src, size_t bytes, scomm_dtype_t dt)
{
    double best = 1e30;
    size_t count = bytes / dsize(dt);
    /* Calls between clock reads: reading the thread CPU clock is a system call. */
    long batch = bytes >= (1u << 20) ? 1 : (long)((1u << 20) / bytes);

    for (int run = 0; run < 5; run++) {
        long iters = 0;
        double t0 = now();
        double t;

        do {
            for (long k = 0; k < batch; k++) {
                if (kind == 0) {
                    memcpy(dst, src, bytes);
                } else {
                    scomm_reduce2(dst, src, count, dt, SCOMM_SUM);
                }
                clobber(dst);
            }
            iters += batch;
            t = now() - t0;
        } while (t < g_min_seconds || iters < 3);
        if (t / (double)iters < best) {
            best = t / (double)iters;
        }
    }
    return best;
}

/* Small finite values of mixed sign, so that repeated sums stay finite. */
static void fill(void *buf, size_t bytes, scomm_dtype_t dt)
{
    size_t n = bytes / dsize(dt);
    float *tmp = malloc(n * sizeof(float));

    for (size_t i = 0; i < n; i++) {
        tmp[i] = (float)((int)(i % 17) - 8) * 0.125f;
    }
    scomm_cvt_from_f32(buf, tmp, n, dt);
    free(tmp);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {4u << 10, 256u << 10, 16u << 20, 256u << 20};
    static const char *size_names[] = {"4 KiB", "256 KiB", "16 MiB", "256 MiB"};
    static const scomm_dtype_t dts[] = {SCOMM_FLOAT32, SCOMM_FLOAT16, SCOMM_BFLOAT16,
                                        SCOMM_FP8_E4M3, SCOMM_FP8_E5M2};
    static const char *dt_names[] = {"f32", "f16", "bf16", "e4m3", "e5m2"};
    size_t maxbytes = sizes[sizeof(sizes) / sizeof(sizes[0]) - 1];
    int impls[3];
    int nimpls = 0;
    unsigned char *dst;
    unsigned char *src;

    if (argc > 1) {
        g_min_seconds = atof(argv[1]);
    }
    for (int i = SCOMM_REDUCE_IMPL_SCALAR; i <= SCOMM_REDUCE_IMPL_AVX512; i++) {
        if (scomm_reduce_set_impl((scomm_reduce_impl_t)i) == 0) {
            impls[nimpls++] = i;
        }
    }
    dst = malloc(maxbytes);
    src = malloc(maxbytes);
    if (dst == NULL || src == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(dst, 0, maxbytes);
    memset(src, 0, maxbytes);

    printf("SUM reduce2 in place vs memcpy, GB/s of memory traffic "
           "(reduce: 3 x size, memcpy: 2 x size)\n");
    printf("%-8s %-6s", "size", "dtype");
    for (int k = 0; k < nimpls; k++) {
        printf(" %8s", scomm_reduce_impl_name((scomm_reduce_impl_t)impls[k]));
    }
    printf(" %8s\n", "memcpy");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t bytes = sizes[s];
        double tcopy = best_time(0, dst, src, bytes, SCOMM_UINT8);
        double gcopy = 2.0 * (double)bytes / tcopy * 1e-9;

        for (size_t d = 0; d < sizeof(dts) / sizeof(dts[0]); d++) {
            printf("%-8s %-6s", size_names[s], dt_names[d]);
            fill(src, bytes, dts[d]);
            for (int k = 0; k < nimpls; k++) {
                double t;

                fill(dst, bytes, dts[d]);
                scomm_reduce_set_impl((scomm_reduce_impl_t)impls[k]);
                t = best_time(1, dst, src, bytes, dts[d]);
                printf(" %8.1f", 3.0 * (double)bytes / t * 1e-9);
                fflush(stdout);
            }
            printf(" %8.1f\n", gcopy);
        }
    }
    scomm_reduce_set_impl(SCOMM_REDUCE_IMPL_AUTO);
    free(dst);
    free(src);
    return 0;
}
