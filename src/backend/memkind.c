/*
 * memkind.c - the kind of memory a buffer is in (stage.h): host, CUDA or
 * HIP device, page-locked or managed, asked of the device runtime
 * (cudaPointerGetAttributes / hipPointerGetAttributes through devrt.c, so
 * no build-time CUDA) and cached per device range; plus the per-
 * communicator hint (scomm_mem_kind_hint) for callers that know.
 *
 * The cache holds device ranges only: [p, p + n) of each buffer the
 * runtime called device memory, merged where they overlap, sorted, looked
 * up by binary search under a read lock. What it cannot know: a cudaFree
 * (or a caching allocator's reuse) happens outside scomm. Why that is
 * safe: under unified addressing a device range stays device address
 * space for the life of the context (host allocations never land there),
 * so a cached "device" is never wrong about a device range; and every copy
 * scomm makes is cudaMemcpyDefault, which copies correctly whatever the
 * sides are, so even a stale entry over memory that became host memory
 * costs a needless staging copy, never a wrong result. Host pointers are
 * never cached (a host range has no bounds to key on): with a runtime
 * present each costs one attribute query, with none (or a host hint) none.
 *
 * Invariants:
 *  1. The probe never loads a runtime: only one already in the process, or
 *     one the user named in SCOMM_CUDART_LIBRARY / SCOMM_HIPRT_LIBRARY.
 *  2. A runtime without the memory calls (devrt invariant 4) is no
 *     runtime here: every buffer is host memory, as before this file.
 *  3. The cache is bounded (SCOMM_MK_CACHE_MAX ranges): full, it starts
 *     over (a cold query is always correct).
 *  4. A runtime that answers "no device" (no driver, too old a driver, no
 *     GPU: a CPU node with a CUDA build of torch) has handed out no device
 *     memory: every buffer is host memory and it is not asked again.
 */
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/config.h"
#include "backend.h"

#define SCOMM_MK_CACHE_MAX 1024

_Atomic(const void *) scomm_memkind_rt;
static int mk_rt_is_hip; /* set once, before scomm_memkind_rt */
static atomic_int mk_nodev; /* invariant 4 */

typedef struct {
    uintptr_t lo, hi; /* [lo, hi) */
    int       kind;
} mk_range_t;

static pthread_rwlock_t mk_lock = PTHREAD_RWLOCK_INITIALIZER;
static mk_range_t mk_cache[SCOMM_MK_CACHE_MAX];
static size_t mk_n;

/* ---- finding the runtime (invariant 1) ---- */

static int mk_seek_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    const char *prefix = arg, *base;

    (void)size;
    if ((info->dlpi_name == NULL) || (info->dlpi_name[0] == '\0')) {
        return 0;
    }
    base = strrchr(info->dlpi_name, '/');
    base = (base != NULL) ? base + 1 : info->dlpi_name;
    return strncmp(base, prefix, strlen(prefix)) == 0;
}

/* 1 if the user named a library for kind's variable, or one of its
 * files is loaded. */
static int mk_present(const char *env, const char *prefix)
{
    scomm_pval_t pv;
    char why[256];

    if ((scomm_param_get(env, NULL, &pv, why, sizeof(why)) == SCOMM_OK) &&
        (pv.text[0] != '\0')) {
        return strcmp(pv.text, "none") != 0;
    }
    return dl_iterate_phdr(mk_seek_cb, (void *)prefix) != 0;
}

void scomm_memkind_probe(void)
{
    static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
    const scomm_devrt_t *rt = NULL;
    char err[256];

    if (atomic_load(&scomm_memkind_rt) != NULL) {
        return;
    }
    pthread_mutex_lock(&once);
    if (atomic_load(&scomm_memkind_rt) == NULL) {
        if (mk_present("SCOMM_CUDART_LIBRARY", "libcudart.so")) {
            rt = scomm_devrt_get(SCOMM_RT_CUDA, NULL, err, sizeof(err));
        }
        if (!scomm_devrt_has_mem(rt) &&
            mk_present("SCOMM_HIPRT_LIBRARY", "libamdhip64.so")) {
            rt           = scomm_devrt_get(SCOMM_RT_HIP, NULL, err,
                                           sizeof(err));
            mk_rt_is_hip = 1;
        }
        if (scomm_devrt_has_mem(rt)) { /* invariant 2 */
            scomm_info(SCOMM_SUB_INIT, "device buffers: kinds from %s",
                       scomm_devrt_name(rt));
            atomic_store(&scomm_memkind_rt, (const void *)rt);
        }
    }
    pthread_mutex_unlock(&once);
}

/* ---- the cache (invariant 3) ---- */

/* Index of the first range with hi > u. */
static size_t mk_find(uintptr_t u)
{
    size_t lo = 0, hi = mk_n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (mk_cache[mid].hi <= u) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int mk_lookup(uintptr_t u, size_t n, int *kind)
{
    size_t i;
    int hit = 0;

    pthread_rwlock_rdlock(&mk_lock);
    i = mk_find(u);
    if ((i < mk_n) && (mk_cache[i].lo <= u) && (n <= mk_cache[i].hi - u)) {
        *kind = mk_cache[i].kind;
        hit   = 1;
    }
    pthread_rwlock_unlock(&mk_lock);
    return hit;
}

static void mk_insert(uintptr_t lo, uintptr_t hi, int kind)
{
    size_t i, j;

    pthread_rwlock_wrlock(&mk_lock);
    i = mk_find(lo);
    /* merge every range overlapping [lo, hi] (one runtime: one kind) */
    for (j = i; (j < mk_n) && (mk_cache[j].lo <= hi); j++) {
        lo = (mk_cache[j].lo < lo) ? mk_cache[j].lo : lo;
        hi = (mk_cache[j].hi > hi) ? mk_cache[j].hi : hi;
    }
    if ((j == i) && (mk_n == SCOMM_MK_CACHE_MAX)) {
        mk_n = 0; /* full: start over */
        i = j = 0;
    }
    memmove(&mk_cache[i + 1], &mk_cache[j], (mk_n - j) * sizeof(*mk_cache));
    mk_n             = mk_n + 1 - (j - i);
    mk_cache[i].lo   = lo;
    mk_cache[i].hi   = hi;
    mk_cache[i].kind = kind;
    pthread_rwlock_unlock(&mk_lock);
}

/* ---- kinds ---- */

static scomm_status_t mk_query(const void *p, size_t n, int *kind, char *err,
                               size_t len)
{
    const scomm_devrt_t *rt = atomic_load(&scomm_memkind_rt);
    uintptr_t u = (uintptr_t)p;
    int rk;

    *kind = SCOMM_MEM_HOST;
    if ((rt == NULL) || (p == NULL) || atomic_load(&mk_nodev)) {
        return SCOMM_OK;
    }
    if (mk_lookup(u, n, kind)) {
        return SCOMM_OK;
    }
    switch (scomm_devrt_ptr_kind(rt, p, &rk, err, len)) {
    case 0:
        break;
    case 1: /* invariant 4 */
        if (atomic_exchange(&mk_nodev, 1) == 0) {
            scomm_info(SCOMM_SUB_INIT, "device buffers: none (%s)", err);
        }
        return SCOMM_OK;
    default:
        return SCOMM_ERR_SYSTEM;
    }
    switch (rk) {
    case SCOMM_RT_MEM_DEVICE:
        *kind = mk_rt_is_hip ? SCOMM_MEM_ROCM : SCOMM_MEM_CUDA;
        mk_insert(u, u + ((n > 0) ? n : 1), *kind);
        break;
    case SCOMM_RT_MEM_PINNED:
        *kind = mk_rt_is_hip ? SCOMM_MEM_HOST : SCOMM_MEM_CUDA_PINNED;
        break;
    case SCOMM_RT_MEM_MANAGED:
        *kind = mk_rt_is_hip ? SCOMM_MEM_HOST : SCOMM_MEM_CUDA_MANAGED;
        break;
    default:
        break;
    }
    return SCOMM_OK;
}

scomm_status_t scomm_memkind_of(scomm_comm_t *comm, const char *op,
                                const void *p, size_t n, int *kind)
{
    scomm_status_t status;
    char err[256];

    if (comm->dev_hint != SCOMM_MEM_AUTO) {
        *kind = comm->dev_hint;
        return SCOMM_OK;
    }
    status = mk_query(p, n, kind, err, sizeof(err));
    if (status != SCOMM_OK) {
        return scomm_set_error(comm, status, "%s: the kind of buffer %p: %s",
                               op, p, err);
    }
    return SCOMM_OK;
}

/* ---- public calls ---- */

const char *scomm_mem_kind_name(scomm_mem_kind_t kind)
{
    static const char *const names[SCOMM_MEM_KIND_COUNT] = {
        "auto", "host", "cuda", "cuda_pinned", "cuda_managed", "rocm",
        "ascend", "mlu", "xpu"};

    return (((int)kind >= 0) && (kind < SCOMM_MEM_KIND_COUNT)) ? names[kind]
                                                               : "invalid";
}

scomm_status_t scomm_mem_kind(const void *p, scomm_mem_kind_t *kind)
{
    scomm_status_t status;
    char err[256];
    int k;

    if (kind == NULL) {
        scomm_set_thread_error("scomm_mem_kind: kind is NULL");
        return SCOMM_ERR_INVALID_ARG;
    }
    scomm_memkind_probe();
    status = mk_query(p, 0, &k, err, sizeof(err));
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_mem_kind: %s", err);
        return status;
    }
    *kind = (scomm_mem_kind_t)k;
    return SCOMM_OK;
}

scomm_status_t scomm_mem_kind_hint(scomm_comm_t *comm, scomm_mem_kind_t kind)
{
    static const char name[] = "scomm_mem_kind_hint";
    scomm_status_t status = scomm_comm_check(comm, name);
    const scomm_devrt_t *rt;

    if (status != SCOMM_OK) {
        return status;
    }
    if (((int)kind < 0) || (kind >= SCOMM_MEM_KIND_COUNT)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: kind %d is not a scomm_mem_kind_t", name,
                               (int)kind);
    }
    if ((kind == SCOMM_MEM_ASCEND) || (kind == SCOMM_MEM_MLU) ||
        (kind == SCOMM_MEM_XPU)) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: %s device memory on a native "
                               "communicator is not supported (only CUDA "
                               "and ROCm device memory is staged; use the "
                               "vendor backend for it)", name,
                               scomm_mem_kind_name(kind));
    }
    if (scomm_memkind_is_dev(kind)) {
        scomm_memkind_probe();
        rt = atomic_load(&scomm_memkind_rt);
        if ((rt == NULL) || ((kind == SCOMM_MEM_ROCM) != mk_rt_is_hip)) {
            return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                                   "%s: %s device memory needs its runtime "
                                   "(%s) in the process or named by %s, "
                                   "with the memory calls; none found",
                                   name, scomm_mem_kind_name(kind),
                                   (kind == SCOMM_MEM_ROCM)
                                       ? "libamdhip64.so" : "libcudart.so",
                                   (kind == SCOMM_MEM_ROCM)
                                       ? "SCOMM_HIPRT_LIBRARY"
                                       : "SCOMM_CUDART_LIBRARY");
        }
    }
    comm->dev_hint = (int)kind;
    return SCOMM_OK;
}
