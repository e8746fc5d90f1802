/*
 * kv_dev.h - device regions for the KV tests (test_kv, test_kv_heads) on
 * the strict fake device: ST_BUF=device puts both sides' caches in fake
 * device memory (a PROT_NONE mapping the host cannot touch, through the
 * runtime named by SCOMM_CUDART_LIBRARY), ST_BUF=mixed one side only
 * (kv_dev_sides picks which, alternating per case). The test fills and
 * checks its host image as before; the helpers copy it to and from the
 * device on a stream of their own.
 *
 * Invariants:
 *  1. Without ST_BUF the tests are what they were (no runtime loaded).
 *  2. The process that forks the two sides never touches the device (a
 *     forked child inherits no stream threads): with ST_BUF set, both
 *     sides run in children (kv_dev_fork_parent).
 *  3. Copies use a stream made and destroyed per copy, never the default
 *     stream, so nothing of one side's runtime state outlives a case.
 */
#ifndef KV_DEV_H
#define KV_DEV_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm.h"
#include "st_dev.h"
#include "st_test.h"

typedef struct {
    int (*memcpy_async)(void *d, const void *s, size_t n, int kind,
                        void *st);
    int (*stream_create)(void **s);
    int (*stream_sync)(void *s);
    int (*stream_destroy)(void *s);
    int (*spin)(void *s, int ms); /* the fake's kernel that takes time;
                                   * NULL on a real runtime */
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int mode;         /* 0 host, 1 device (both sides), 2 mixed */
    int send, recv;   /* this case: the sender's / receiver's region */
} kv_dev_rt_t;

static kv_dev_rt_t kv_dev;

/* ST_BUF and the runtime as st_dev.h reads and loads them, plus the
 * stream calls. */
static inline void kv_dev_init(void)
{
    void *dl;

    st_dev_init();
    kv_dev.mode = st_dev.mode;
    kv_dev.send = kv_dev.recv = (kv_dev.mode == 1);
    if (kv_dev.mode == 0) {
        return;
    }
    dl = dlopen(getenv("SCOMM_CUDART_LIBRARY"), RTLD_NOW | RTLD_NOLOAD);
    ST_ASSERT(dl != NULL);
    kv_dev.malloc_ = st_dev.malloc_;
    kv_dev.free_   = st_dev.free_;
    *(void **)&kv_dev.memcpy_async   = dlsym(dl, "cudaMemcpyAsync");
    *(void **)&kv_dev.stream_create  = dlsym(dl, "cudaStreamCreate");
    *(void **)&kv_dev.stream_sync    = dlsym(dl, "cudaStreamSynchronize");
    *(void **)&kv_dev.stream_destroy = dlsym(dl, "cudaStreamDestroy");
    *(void **)&kv_dev.spin           = dlsym(dl, "fkd_spin");
    ST_ASSERT((kv_dev.memcpy_async != NULL) &&
              (kv_dev.stream_create != NULL) &&
              (kv_dev.stream_sync != NULL) &&
              (kv_dev.stream_destroy != NULL));
    /* The fake runtime must have its kernel: only there may it be NULL
     * (scripts/gpu-check.sh runs these tests on a real libcudart). */
    ST_ASSERT((kv_dev.spin != NULL) ||
              (dlsym(dl, "fkd_device_sync") == NULL));
}

/* Mixed mode: case n has the sender's region on the device when n is
 * even, the receiver's when odd. */
static inline void kv_dev_sides(int n)
{
    if (kv_dev.mode == 2) {
        kv_dev.send = (n % 2 == 0);
        kv_dev.recv = !kv_dev.send;
    }
}

static inline const char *kv_dev_name(void)
{
    return (kv_dev.mode == 0) ? "host"
           : (kv_dev.send && kv_dev.recv) ? "device -> device"
           : kv_dev.send ? "device -> host" : "host -> device";
}

/* n bytes from src to dst (either side device), synchronously. */
static inline void kv_dev_copy(void *dst, const void *src, size_t n)
{
    void *s;

    ST_ASSERT_EQ(kv_dev.stream_create(&s), 0);
    ST_ASSERT_EQ(kv_dev.memcpy_async(dst, src, n, 4, s), 0);
    ST_ASSERT_EQ(kv_dev.stream_sync(s), 0);
    ST_ASSERT_EQ(kv_dev.stream_destroy(s), 0);
}

/* The region to register: host itself, or (on) a device copy of it. */
static inline void *kv_dev_region(int on, void *host, size_t n)
{
    void *d;

    if (!on) {
        return host;
    }
    ST_ASSERT_EQ(kv_dev.malloc_(&d, n), 0);
    kv_dev_copy(d, host, n);
    return d;
}

/* Bring a device region back into its host image, and free it. */
static inline void kv_dev_back(int on, void *host, void *reg, size_t n)
{
    if (on) {
        kv_dev_copy(host, reg, n);
        ST_ASSERT_EQ(kv_dev.free_(reg), 0);
    }
}

#endif /* KV_DEV_H */
