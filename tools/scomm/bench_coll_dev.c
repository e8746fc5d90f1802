/*
 * bench_coll_dev.c - `scomm bench --device`: the benchmark's buffers in
 * device memory, through the CUDA runtime (the one SCOMM_CUDART_LIBRARY
 * names, such as the fake of tests/backend; else libcudart.so), so a
 * native communicator stages every call (src/backend/stage.c) and the
 * table compares with the host-buffer one of the same sizes.
 *
 * What a device call is timed as: the call plus a cudaStreamSynchronize of
 * the caller's stream (the default stream), so the copies back, which a
 * staged call only enqueues, are inside the time. Inputs are made on the
 * host as for host buffers (bench_coll_check.c) and copied in before the
 * warmup; under --check the poisoned output goes in before each call and
 * comes back after it, outside the timed interval.
 *
 * Invariants:
 *  1. The runtime is loaded before scomm_init, so the library finds it
 *     already in the process (it never loads one itself).
 *  2. Each device call carries the hint SCOMM_MEM_CUDA (every rank's
 *     buffers are device memory: collectives may pipeline) and AUTO after
 *     it: the benchmark's own calls on host memory (times, verdicts) are
 *     never taken for device memory.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_coll.h"
#include "core/config.h"

enum { BC_H2D = 1, BC_D2H = 2 };

struct bc_dev {
    void *dl;
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int (*memcpy_)(void *d, const void *s, size_t n, int kind);
    int (*sync_)(void *stream);
    const char *(*errstr_)(int rc);
    const char *lib;
};

static struct bc_dev bc_dev;
/* What the messages name (kv-bench sets its own). */
static const char *bc_dev_who = "scomm bench: --device";

static const char *bc_dev_err(int rc)
{
    static char buf[32];

    if (bc_dev.errstr_ != NULL) {
        return bc_dev.errstr_(rc);
    }
    snprintf(buf, sizeof(buf), "error %d", rc);
    return buf;
}

int bc_dev_open(void)
{
    static const char *const names[] = {"libcudart.so", "libcudart.so.13",
                                        "libcudart.so.12",
                                        "libcudart.so.11.0"};
    const char *lib = NULL;
    scomm_pval_t pv;
    char why[256];
    size_t i;

    if (scomm_param_get("SCOMM_CUDART_LIBRARY", NULL, &pv, why,
                        sizeof(why)) != SCOMM_OK) {
        fprintf(stderr, "%s: %s\n", bc_dev_who, why);
        return 1;
    }
    if (strcmp(pv.text, "none") == 0) {
        fprintf(stderr, "%s needs the CUDA runtime, and "
                "SCOMM_CUDART_LIBRARY=none says there is none\n", bc_dev_who);
        return 1;
    }
    if (pv.text[0] != '\0') {
        lib        = pv.text;
        bc_dev.dl  = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
        bc_dev.lib = lib;
    }
    for (i = 0; (bc_dev.dl == NULL) && (lib == NULL) &&
                (i < sizeof(names) / sizeof(names[0]));
         i++) {
        bc_dev.dl  = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
        bc_dev.lib = names[i];
    }
    if (bc_dev.dl == NULL) {
        fprintf(stderr, "%s needs the CUDA runtime "
                "(libcudart.so, or SCOMM_CUDART_LIBRARY): %s\n", bc_dev_who,
                dlerror());
        return 1;
    }
    *(void **)&bc_dev.malloc_ = dlsym(bc_dev.dl, "cudaMalloc");
    *(void **)&bc_dev.free_   = dlsym(bc_dev.dl, "cudaFree");
    *(void **)&bc_dev.memcpy_ = dlsym(bc_dev.dl, "cudaMemcpy");
    *(void **)&bc_dev.sync_   = dlsym(bc_dev.dl, "cudaStreamSynchronize");
    *(void **)&bc_dev.errstr_ = dlsym(bc_dev.dl, "cudaGetErrorString");
    if ((bc_dev.malloc_ == NULL) || (bc_dev.free_ == NULL) ||
        (bc_dev.memcpy_ == NULL) || (bc_dev.sync_ == NULL)) {
        fprintf(stderr, "%s: %s lacks cudaMalloc, "
                "cudaFree, cudaMemcpy or cudaStreamSynchronize\n",
                bc_dev_who, bc_dev.lib);
        return 1;
    }
    return 0;
}

void *bc_dev_alloc(size_t n)
{
    void *p = NULL;
    int rc  = bc_dev.malloc_(&p, (n > 0) ? n : 1);

    if (rc != 0) {
        fprintf(stderr, "%s: cudaMalloc of %zu bytes: %s\n", bc_dev_who,
                n, bc_dev_err(rc));
        return NULL;
    }
    return p;
}

void bc_dev_free(void *p)
{
    if ((p != NULL) && (bc_dev.free_ != NULL)) {
        (void)bc_dev.free_(p);
    }
}

void bc_dev_name(const char *who)
{
    bc_dev_who = who;
}

int bc_dev_memcpy(void *d, const void *s, size_t n, int kind)
{
    int rc;

    if (n == 0) {
        return 0;
    }
    rc = bc_dev.memcpy_(d, s, n, kind);
    if (rc == 0) {
        rc = bc_dev.sync_(NULL); /* a device-to-device one may return
                                    before it is done */
    }
    if (rc != 0) {
        fprintf(stderr, "%s: cudaMemcpy (kind %d) of %zu bytes: %s\n",
                bc_dev_who, kind, n, bc_dev_err(rc));
        return 1;
    }
    return 0;
}

/* n bytes between host h and device d (dir BC_H2D or BC_D2H). */
static int bc_dev_copy(void *d, void *h, size_t n, int dir)
{
    int rc;

    if (n == 0) {
        return 0;
    }
    rc = (dir == BC_H2D) ? bc_dev.memcpy_(d, h, n, BC_H2D)
                         : bc_dev.memcpy_(h, d, n, BC_D2H);
    if (rc != 0) {
        fprintf(stderr, "scomm bench: --device: cudaMemcpy of %zu bytes: "
                "%s\n", n, bc_dev_err(rc));
        return 1;
    }
    return 0;
}

int bc_dev_put(bc_ctx_t *c, size_t sbytes, size_t rbytes)
{
    return bc_dev_copy(c->dsbuf, c->sbuf, sbytes, BC_H2D) |
           bc_dev_copy(c->drbuf, c->rbuf, rbytes, BC_H2D);
}

int bc_dev_get(bc_ctx_t *c, size_t rbytes)
{
    return bc_dev_copy(c->drbuf, c->rbuf, rbytes, BC_D2H);
}

/* Around one device call (invariant 2; the sync: the file's comment). */
scomm_status_t bc_dev_begin(bc_ctx_t *c)
{
    return scomm_mem_kind_hint(c->comm, SCOMM_MEM_CUDA);
}

scomm_status_t bc_dev_end(bc_ctx_t *c, scomm_status_t s)
{
    scomm_status_t h = scomm_mem_kind_hint(c->comm, SCOMM_MEM_AUTO);
    int rc;

    if (s != SCOMM_OK) {
        return s;
    }
    rc = bc_dev.sync_(NULL);
    if (rc != 0) {
        fprintf(stderr, "scomm bench: --device: cudaStreamSynchronize: "
                "%s\n", bc_dev_err(rc));
        return SCOMM_ERR_SYSTEM;
    }
    return h;
}
