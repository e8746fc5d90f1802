/*
 * devrt.h - the device runtimes the vendor backends record completion
 * events with (internal): the CUDA runtime (nccl), HIP (rccl), Ascend ACL
 * (hccl), Cambricon CNRT (cncl) and Kunlunxin XRE (bkcl), each loaded
 * with dlopen at run time and declared from its vendor's documentation.
 *
 * Finding a runtime, first that answers:
 *   1. the variable (SCOMM_CUDART_LIBRARY, ...): a path, or "none";
 *   2. the runtime the vendor library itself links (its DT_NEEDED entries,
 *      read from its dynamic section once it is loaded);
 *   3. a runtime already loaded in the process (e.g. torch's libcudart);
 *   4. the sonames, newest first (libcudart.so.13, .12, .11.0, .so).
 *
 * Invariants:
 *  1. One runtime per kind per process, found once and never closed.
 *  2. Every call that can fail says which vendor call failed and the
 *     runtime's own message; an event query answers DONE, NOT_READY or an
 *     error, never anything else.
 *  3. No call here synchronises or blocks: only create, record, query,
 *     destroy and the capture-status query; and, for the device-memory
 *     paths (CUDA and HIP only: stage.c, memkind.c), pointer attributes,
 *     pinned host memory, asynchronous copies, internal streams and
 *     stream-waits-event, none of which waits for the device either.
 *  4. The memory calls are optional symbols: a runtime without them still
 *     serves the vendor backends; scomm_devrt_has_mem() says whether they
 *     are all there.
 *  5. The IPC calls (ipc.c) are optional too, and the driver library
 *     (libcuda.so.1) is looked for only when an IPC path first asks.
 */
#ifndef SCOMM_DEVRT_H
#define SCOMM_DEVRT_H

#include <stddef.h>

typedef enum {
    SCOMM_RT_CUDA = 0,
    SCOMM_RT_HIP  = 1,
    SCOMM_RT_ACL  = 2,
    SCOMM_RT_CNRT = 3,
    SCOMM_RT_XPU  = 4,
    SCOMM_RT_KINDS
} scomm_rt_kind_t;

/* Answers of an event query. */
enum { SCOMM_RT_DONE = 0, SCOMM_RT_NOT_READY = 1, SCOMM_RT_ERROR = -1 };

typedef struct scomm_devrt scomm_devrt_t;

/* The runtime of kind, found once (vendor_dl: the vendor library, for
 * step 2; may be NULL); NULL when there is none, with why in err ("none"
 * chosen, or not found, naming what was tried). */
const scomm_devrt_t *scomm_devrt_get(scomm_rt_kind_t kind, void *vendor_dl,
                                     char *err, size_t len);

/* Discovery alone (for the tests and scomm_devrt_get): dlopen the runtime
 * found by steps 2 to 4 for these sonames; *how gets the step ("a
 * dependency of libnccl.so.2", "already loaded", "by soname"). NULL when
 * none. */
void *scomm_devrt_find(const char *const *sonames, void *vendor_dl,
                       char *used, size_t ulen, char *how, size_t hlen);

/* "libcudart.so.13 (CUDA runtime 13.0; a dependency of libnccl.so.2):
 * /path/libcudart.so.13". */
void scomm_devrt_describe(const scomm_devrt_t *rt, char *buf, size_t len);
const char *scomm_devrt_name(const scomm_devrt_t *rt); /* "CUDA runtime" */

/* Events: 0, or -1 with err naming the call. */
int scomm_devrt_event_create(const scomm_devrt_t *rt, void **ev, char *err,
                             size_t len);
int scomm_devrt_event_record(const scomm_devrt_t *rt, void *ev, void *stream,
                             char *err, size_t len);
int scomm_devrt_event_query(const scomm_devrt_t *rt, void *ev, char *err,
                            size_t len);
void scomm_devrt_event_destroy(const scomm_devrt_t *rt, void *ev);

/* 1 while stream captures (into a CUDA graph, an ACL model, a CNRT task
 * topo), 0 when not or when the runtime cannot capture, -1 with err. */
int scomm_devrt_capturing(const scomm_devrt_t *rt, void *stream, char *err,
                          size_t len);

/* Make the calling thread's capture mode relaxed (CUDA, HIP), so its event
 * queries never invalidate another thread's capture. */
void scomm_devrt_relax_thread(const scomm_devrt_t *rt);

/* ---- device memory (CUDA, HIP; invariants 3 and 4) ---- */

/* Kind of a pointer as the runtime sees it. */
enum {
    SCOMM_RT_MEM_HOST    = 0, /* unregistered host memory */
    SCOMM_RT_MEM_PINNED  = 1, /* page-locked host memory of the runtime */
    SCOMM_RT_MEM_DEVICE  = 2,
    SCOMM_RT_MEM_MANAGED = 3
};

/* 1 if rt has every call below (CUDA or HIP with the memory API). */
int scomm_devrt_has_mem(const scomm_devrt_t *rt);
/* *kind of p (cudaPointerGetAttributes / hipPointerGetAttributes); an
 * error of the runtime for a plain host pointer (old runtimes) is HOST.
 * 0; 1 (HOST, err says why) when the runtime has no usable device (no
 * driver, too old a driver, no device); -1 with err. */
int scomm_devrt_ptr_kind(const scomm_devrt_t *rt, const void *p, int *kind,
                         char *err, size_t len);
/* Page-locked host memory (cudaHostAlloc / hipHostMalloc, default flags). */
int scomm_devrt_host_alloc(const scomm_devrt_t *rt, void **p, size_t n,
                           char *err, size_t len);
void scomm_devrt_host_free(const scomm_devrt_t *rt, void *p);
/* An asynchronous copy of n bytes on stream, kind "default" (the runtime
 * tells the sides apart: unified addressing). */
int scomm_devrt_copy_async(const scomm_devrt_t *rt, void *dst,
                           const void *src, size_t n, void *stream,
                           char *err, size_t len);
/* A non-blocking stream of scomm's own (cudaStreamNonBlocking). */
int scomm_devrt_stream_create(const scomm_devrt_t *rt, void **s, char *err,
                              size_t len);
void scomm_devrt_stream_destroy(const scomm_devrt_t *rt, void *s);
/* Work enqueued on stream after this waits for ev (cudaStreamWaitEvent). */
int scomm_devrt_stream_wait(const scomm_devrt_t *rt, void *stream, void *ev,
                            char *err, size_t len);

/* Enqueue fn(arg) on stream, run on the runtime's host thread when the
 * stream gets there (cudaLaunchHostFunc / hipLaunchHostFunc; optional:
 * -1 with err naming it when the runtime lacks it). The KV channel's
 * layer waits on a caller's stream (kv_dev.c); fn must not call the
 * runtime. */
int scomm_devrt_host_func(const scomm_devrt_t *rt, void *stream,
                          void (*fn)(void *), void *arg, char *err,
                          size_t len);
/* ---- IPC between processes of one host (CUDA, HIP; ipc.c) ---- */

/* cudaIpcMemHandle_t / hipIpcMemHandle_t: 64 opaque bytes, by value. */
typedef struct {
    char reserved[64];
} scomm_devrt_ipc_handle_t;

/* 1 if rt has the IPC calls and a way to the base of an allocation (CUDA:
 * the driver's cuMemGetAddressRange_v2 from libcuda.so.1, loaded on the
 * first call; HIP: hipMemGetAddressRange); 0 with why. */
int scomm_devrt_has_ipc(const scomm_devrt_t *rt, char *why, size_t len);
/* The allocation holding p: its base and size. */
int scomm_devrt_mem_range(const scomm_devrt_t *rt, const void *p,
                          void **base, size_t *n, char *err, size_t len);
/* cudaIpcGetMemHandle of an allocation's base. */
int scomm_devrt_ipc_get(const scomm_devrt_t *rt, scomm_devrt_ipc_handle_t *h,
                        void *base, char *err, size_t len);
/* cudaIpcOpenMemHandle(..., cudaIpcMemLazyEnablePeerAccess). */
int scomm_devrt_ipc_open(const scomm_devrt_t *rt, void **p,
                         const scomm_devrt_ipc_handle_t *h, char *err,
                         size_t len);
void scomm_devrt_ipc_close(const scomm_devrt_t *rt, void *p);

#endif /* SCOMM_DEVRT_H */
