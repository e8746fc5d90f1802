/*
 * st_dev.h - the buffer-kind switch of the multi-process tests (test_coll,
 * test_p2p): ST_BUF=host (default), device or mixed. In device mode each
 * wrapped call copies its host buffers into fake device memory (the
 * strict fake: a PROT_NONE mapping the host cannot touch, through the
 * runtime named by SCOMM_CUDART_LIBRARY), calls scomm on the device
 * pointers, and copies the result back, so every reference check of the
 * test applies unchanged; mixed: even ranks device, odd ranks host.
 *
 * Invariants:
 *  1. Host mode calls scomm directly: the test is what it was.
 *  2. The test's own host buffers are copied whole both ways (input and
 *     output region), so bytes the call must not write come back as they
 *     were and the test's "untouched" checks still bite.
 *  3. A buffer inside another (the in-place forms) shares one device
 *     allocation at the same offset.
 *  4. In device mode each call carries the hint SCOMM_MEM_CUDA (every
 *     rank's buffers are device memory: collectives may pipeline), and
 *     AUTO again after it; in mixed mode the kinds are found (AUTO).
 */
#ifndef ST_DEV_H
#define ST_DEV_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm.h"
#include "st_test.h"

typedef struct {
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int (*memcpy_)(void *d, const void *s, size_t n, int kind);
    int mode; /* 0 host, 1 device, 2 mixed */
} st_dev_rt_t;

static st_dev_rt_t st_dev;

/* Read ST_BUF; load the runtime in device and mixed modes. */
static inline void st_dev_init(void)
{
    const char *m = getenv("ST_BUF"), *lib;
    void *dl;

    st_dev.mode = (m == NULL) ? 0 : (strcmp(m, "device") == 0) ? 1
                                  : (strcmp(m, "mixed") == 0)  ? 2 : 0;
    if (st_dev.mode == 0) {
        return;
    }
    lib = getenv("SCOMM_CUDART_LIBRARY");
    dl  = (lib != NULL) ? dlopen(lib, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (dl == NULL) {
        fprintf(stderr, "st_dev: ST_BUF=%s needs SCOMM_CUDART_LIBRARY "
                "(the fake runtime): %s\n", m, dlerror());
        exit(2);
    }
    *(void **)&st_dev.malloc_ = dlsym(dl, "cudaMalloc");
    *(void **)&st_dev.free_   = dlsym(dl, "cudaFree");
    *(void **)&st_dev.memcpy_ = dlsym(dl, "cudaMemcpy");
    ST_ASSERT((st_dev.malloc_ != NULL) && (st_dev.free_ != NULL) &&
              (st_dev.memcpy_ != NULL));
}

/* Device buffers for this rank's calls? */
static inline int st_dev_on(const scomm_comm_t *comm)
{
    return (st_dev.mode == 1) ||
           ((st_dev.mode == 2) && (scomm_rank(comm) % 2 == 0));
}

static inline const char *st_dev_mode_name(void)
{
    return (st_dev.mode == 1) ? "device" : (st_dev.mode == 2) ? "mixed"
                                                              : "host";
}

/* One call's buffers on the device (invariants 2, 3). */
typedef struct {
    char  *hs, *hr;   /* the test's buffers */
    size_t sl, rl;
    char  *ds, *dr;   /* their device copies */
    char  *da, *db;   /* allocations */
} st_dev_call_t;

static inline char *st_dev_put(const char *h, size_t n)
{
    void *d = NULL;

    ST_ASSERT(st_dev.malloc_(&d, (n > 0) ? n : 1) == 0);
    if (n > 0) {
        ST_ASSERT(st_dev.memcpy_(d, h, n, 1) == 0); /* host to device */
    }
    return d;
}

static inline void st_dev_begin(st_dev_call_t *c, const void *s, size_t sl, void *r,
                         size_t rl)
{
    memset(c, 0, sizeof(*c));
    c->hs = (char *)s;
    c->hr = r;
    c->sl = (s != NULL) ? sl : 0;
    c->rl = (r != NULL) ? rl : 0;
    if ((s != NULL) && (r != NULL) && (c->hs >= c->hr) &&
        (c->hs + c->sl <= c->hr + c->rl)) {
        c->da = st_dev_put(c->hr, c->rl);
        c->dr = c->da;
        c->ds = c->da + (c->hs - c->hr);
        c->hs = NULL; /* one region: copied back through hr */
        return;
    }
    if ((s != NULL) && (r != NULL) && (c->hr >= c->hs) &&
        (c->hr + c->rl <= c->hs + c->sl)) {
        c->da = st_dev_put(c->hs, c->sl);
        c->ds = c->da;
        c->dr = c->da + (c->hr - c->hs);
        c->hr = c->hs; /* copied back whole, over the test's region */
        c->rl = c->sl;
        c->hs = NULL;
        return;
    }
    if (s != NULL) {
        c->da = c->ds = st_dev_put(s, c->sl);
    }
    if (r != NULL) {
        c->db = c->dr = st_dev_put(r, c->rl);
    }
}

static inline void st_dev_end(st_dev_call_t *c)
{
    if ((c->hr != NULL) && (c->rl > 0)) {
        /* the region holding the output, from its start */
        ST_ASSERT(st_dev.memcpy_(c->hr, (c->db != NULL) ? c->db : c->da,
                                 c->rl, 2) == 0); /* device to host */
    }
    st_dev.free_(c->da);
    st_dev.free_(c->db);
}

/* ---- wrappers: the scomm calls' own signatures ---- */

#define ST_DEV_CALL(_comm, _s, _sl, _r, _rl, _expr)                         \
    do {                                                                   \
        st_dev_call_t c_;                                                  \
        scomm_status_t s_;                                                 \
        const void *sd_ __attribute__((unused));                           \
        void *rd_ __attribute__((unused));                                 \
        if (!st_dev_on(_comm)) {                                           \
            sd_ = (_s);                                                    \
            rd_ = (_r);                                                    \
            return (_expr);                                                \
        }                                                                  \
        st_dev_begin(&c_, (_s), (_sl), (_r), (_rl));                       \
        sd_ = c_.ds;                                                       \
        rd_ = c_.dr;                                                       \
        if (st_dev.mode == 1) { /* all ranks device: say so, per call */  \
            ST_ASSERT_OK(scomm_mem_kind_hint((_comm), SCOMM_MEM_CUDA));    \
        }                                                                  \
        s_ = (_expr);                                                      \
        ST_ASSERT_OK(scomm_mem_kind_hint((_comm), SCOMM_MEM_AUTO));        \
        st_dev_end(&c_);                                                   \
        return s_;                                                         \
    } while (0)

static inline size_t st_dev_b(size_t count, scomm_dtype_t dt)
{
    return count * scomm_dtype_size(dt);
}

static inline scomm_status_t st_all_reduce(const void *s, void *r, size_t n,
                                           scomm_dtype_t dt, scomm_redop_t op,
                                           scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, s, st_dev_b(n, dt), r, st_dev_b(n, dt),
                scomm_all_reduce(sd_, rd_, n, dt, op, comm));
}

static inline scomm_status_t st_reduce_scatter(const void *s, void *r,
                                               size_t n, scomm_dtype_t dt,
                                               scomm_redop_t op,
                                               scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, s, st_dev_b(n, dt) * (size_t)scomm_size(comm), r,
                st_dev_b(n, dt),
                scomm_reduce_scatter(sd_, rd_, n, dt, op, comm));
}

static inline scomm_status_t st_all_gather(const void *s, void *r, size_t n,
                                           scomm_dtype_t dt,
                                           scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, s, st_dev_b(n, dt), r,
                st_dev_b(n, dt) * (size_t)scomm_size(comm),
                scomm_all_gather(sd_, rd_, n, dt, comm));
}

static inline scomm_status_t st_broadcast(void *b, size_t n, scomm_dtype_t dt,
                                          int32_t root, scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, b, st_dev_b(n, dt), b, st_dev_b(n, dt),
                scomm_broadcast(rd_, n, dt, root, comm));
}

static inline scomm_status_t st_reduce(const void *s, void *r, size_t n,
                                       scomm_dtype_t dt, scomm_redop_t op,
                                       int32_t root, scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, s, st_dev_b(n, dt),
                (scomm_rank(comm) == root) ? r : NULL, st_dev_b(n, dt),
                scomm_reduce(sd_, (scomm_rank(comm) == root) ? rd_ : r, n,
                             dt, op, root, comm));
}

static inline scomm_status_t st_all_to_all(const void *s, void *r, size_t n,
                                           scomm_dtype_t dt,
                                           scomm_comm_t *comm)
{
    size_t t = st_dev_b(n, dt) * (size_t)scomm_size(comm);

    ST_DEV_CALL(comm, s, t, r, t, scomm_all_to_all(sd_, rd_, n, dt, comm));
}

static inline size_t st_dev_vlen(const size_t *c, const size_t *d, int p,
                                 scomm_dtype_t dt)
{
    size_t end = 0;
    int q;

    for (q = 0; q < p; q++) {
        if ((c[q] > 0) && (d[q] + c[q] > end)) {
            end = d[q] + c[q];
        }
    }
    return st_dev_b(end, dt);
}

static inline scomm_status_t st_all_to_allv(const void *s, const size_t *sc,
                                            const size_t *sdp, void *r,
                                            const size_t *rc,
                                            const size_t *rdp,
                                            scomm_dtype_t dt,
                                            scomm_comm_t *comm)
{
    int p = scomm_size(comm);

    ST_DEV_CALL(comm, s, st_dev_vlen(sc, sdp, p, dt), r,
                st_dev_vlen(rc, rdp, p, dt),
                scomm_all_to_allv(sd_, sc, sdp, rd_, rc, rdp, dt, comm));
}

static inline scomm_status_t st_gather(const void *s, void *r, size_t n,
                                       scomm_dtype_t dt, int32_t root,
                                       scomm_comm_t *comm)
{
    int me = (scomm_rank(comm) == root);

    ST_DEV_CALL(comm, s, st_dev_b(n, dt), me ? r : NULL,
                st_dev_b(n, dt) * (size_t)scomm_size(comm),
                scomm_gather(sd_, me ? rd_ : r, n, dt, root, comm));
}

static inline scomm_status_t st_scatter(const void *s, void *r, size_t n,
                                        scomm_dtype_t dt, int32_t root,
                                        scomm_comm_t *comm)
{
    int me = (scomm_rank(comm) == root);

    ST_DEV_CALL(comm, me ? s : NULL,
                st_dev_b(n, dt) * (size_t)scomm_size(comm), r,
                st_dev_b(n, dt),
                scomm_scatter(me ? sd_ : s, rd_, n, dt, root, comm));
}

static inline scomm_status_t st_send(const void *b, size_t n,
                                     scomm_dtype_t dt, int32_t peer,
                                     int32_t tag, scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, b, st_dev_b(n, dt), NULL, 0,
                scomm_send(sd_, n, dt, peer, tag, comm));
}

static inline scomm_status_t st_recv(void *b, size_t n, scomm_dtype_t dt,
                                     int32_t peer, int32_t tag,
                                     scomm_comm_t *comm)
{
    ST_DEV_CALL(comm, NULL, 0, b, st_dev_b(n, dt),
                scomm_recv(rd_, n, dt, peer, tag, comm));
}

#endif /* ST_DEV_H */
