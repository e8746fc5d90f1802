/*
 * fake_rt_api.c - the vendor-named calls of the fake device runtimes
 * (fake_device.c): the CUDA runtime's and HIP's (libcudart.so.13/12/11.0,
 * libamdhip64.so.6), Ascend ACL's (libascendcl.so), Cambricon CNRT's
 * (libcnrt.so) and Kunlunxin XRE's (libxpurt.so) stream, event, capture,
 * graph and memory calls, with each vendor's own argument order and
 * result codes. One source builds every runtime library; the CUDA runtime
 * version it reports is FAKE_RT_CUDA_VERSION (a compile definition).
 *
 * Declarations follow the vendors' documentation: the CUDA Runtime API
 * (cudaError_t as int: cudaErrorInvalidValue 1, cudaErrorMemoryAllocation
 * 2, cudaErrorInvalidResourceHandle 400, cudaErrorIllegalState 401,
 * cudaErrorNotReady 600, cudaErrorStreamCaptureUnsupported 900,
 * cudaErrorStreamCaptureInvalidated 901; enums as int), HIP (the same
 * codes), ACL (aclrtEventRecordedStatus: NOT_READY 0, COMPLETE 1;
 * aclmdlRICaptureStatus: NONE 0), CNRT (cnrtSuccess 0, cnrtErrorNotReady
 * 1) and XRE (XPU_SUCCESS 0).
 *
 * Invariants:
 *  1. Each call is a thin mapping onto fkd_*: the behaviour (streams that
 *     run later, events, capture) is fake_device.c's, the same for every
 *     vendor.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fake_device.h"

#ifndef FAKE_RT_CUDA_VERSION
#define FAKE_RT_CUDA_VERSION 13000
#endif

/* ---- CUDA and HIP: the same shapes, the same codes ---- */

static int fkr_cuda(int rc)
{
    switch (rc) {
    case FKD_OK:           return 0;
    case FKD_NOT_READY:    return 600;
    case FKD_EINVAL:       return 1;
    case FKD_ECAPTURE:     return 900;
    case FKD_EINVALIDATED: return 901;
    case FKD_ENOMEM:       return 2;
    case FKD_ECONTEXT:     return 201;
    case FKD_EMAP:         return 205;
    case FKD_EHANDLE:      return 400;
    default:               return 401;
    }
}

static const char *fkr_cuda_string(int code)
{
    switch (code) {
    case 0:   return "no error";
    case 1:   return "invalid argument";
    case 2:   return "out of memory";
    case 101: return "invalid device ordinal";
    case 201: return "invalid device context";
    case 205: return "mapping of buffer object failed";
    case 400: return "invalid resource handle";
    case 401: return "the operation is not permitted in this state";
    case 600: return "device not ready";
    case 900: return "operation not permitted when stream is capturing";
    case 901: return "operation failed due to a previous error during "
                     "capture";
    default:  return "unknown error";
    }
}

/* cudaMemcpyKind / hipMemcpyKind: which side must be device memory. */
static void fkr_kind(int kind, int *dst_dev, int *src_dev)
{
    static const int dst[5] = {0, 1, 0, 1, -1};
    static const int src[5] = {0, 0, 1, 1, -1};

    if ((kind < 0) || (kind > 4)) {
        kind = 4;
    }
    *dst_dev = dst[kind];
    *src_dev = src[kind];
}

typedef struct {
    int   type;   /* cudaMemoryType: 0 unregistered, 1 host, 2 device */
    int   device;
    void *device_pointer;
    void *host_pointer;
} fkr_ptr_attr_t;

/* One definition, two names: cuda<Name> and hip<Name>. */
#define FKR_BOTH(_ret, _name, _params, ...)                                 \
    FKD_API _ret cuda##_name _params __VA_ARGS__                           \
    FKD_API _ret hip##_name _params __VA_ARGS__

FKR_BOTH(int, StreamCreate, (void **s),
         { return fkr_cuda(fkd_stream_create(s)); })
FKR_BOTH(int, StreamCreateWithFlags, (void **s, unsigned f),
         { (void)f; return fkr_cuda(fkd_stream_create(s)); })
FKR_BOTH(int, StreamDestroy, (void *s),
         { return fkr_cuda(fkd_stream_destroy(s)); })
FKR_BOTH(int, StreamSynchronize, (void *s),
         { return fkr_cuda(fkd_stream_sync(s)); })
FKR_BOTH(int, StreamQuery, (void *s), { return fkr_cuda(fkd_stream_query(s)); })
FKR_BOTH(int, StreamWaitEvent, (void *s, void *e, unsigned f),
         { (void)f; return fkr_cuda(fkd_stream_wait_event(s, e)); })
FKR_BOTH(int, StreamIsCapturing, (void *s, int *st),
         { return fkr_cuda(fkd_capture_status(s, st)); })
FKR_BOTH(int, StreamBeginCapture, (void *s, int mode),
         { return fkr_cuda(fkd_capture_begin(s, mode)); })
FKR_BOTH(int, StreamEndCapture, (void *s, void **g),
         { return fkr_cuda(fkd_capture_end(s, g)); })
FKR_BOTH(int, ThreadExchangeStreamCaptureMode, (int *mode),
         { return fkr_cuda(fkd_thread_capture_mode(mode)); })
FKR_BOTH(int, GraphInstantiateWithFlags, (void **x, void *g,
                                          unsigned long long f),
         { (void)f; return fkr_cuda(fkd_graph_instantiate(x, g)); })
FKR_BOTH(int, GraphLaunch, (void *x, void *s),
         { return fkr_cuda(fkd_graph_launch(x, s)); })
FKR_BOTH(int, GraphExecDestroy, (void *x),
         { return fkr_cuda(fkd_graph_destroy(x)); })
FKR_BOTH(int, GraphDestroy, (void *g),
         { return fkr_cuda(fkd_graph_destroy(g)); })
FKR_BOTH(int, EventCreate, (void **e),
         { return fkr_cuda(fkd_event_create(e)); })
FKR_BOTH(int, EventCreateWithFlags, (void **e, unsigned f),
         { (void)f; return fkr_cuda(fkd_event_create(e)); })
FKR_BOTH(int, EventRecord, (void *e, void *s),
         { return fkr_cuda(fkd_event_record(e, s)); })
FKR_BOTH(int, EventQuery, (void *e), { return fkr_cuda(fkd_event_query(e)); })
FKR_BOTH(int, EventSynchronize, (void *e),
         { return fkr_cuda(fkd_event_sync(e)); })
FKR_BOTH(int, EventDestroy, (void *e),
         { return fkr_cuda(fkd_event_destroy(e)); })
/* Host functions run on the stream's thread, in order, like kernels. */
FKR_BOTH(int, LaunchHostFunc, (void *s, void (*fn)(void *), void *arg),
         { return fkr_cuda(fkd_launch(s, fn, NULL, arg)); })
FKR_BOTH(int, Malloc, (void **p, size_t n),
         { return fkr_cuda(fkd_malloc(p, n)); })
FKR_BOTH(int, Free, (void *p), { return fkr_cuda(fkd_free(p)); })
FKR_BOTH(int, Memset, (void *p, int v, size_t n),
         { return fkr_cuda(fkd_memset(p, v, n, NULL, 0)); })
FKR_BOTH(int, MemsetAsync, (void *p, int v, size_t n, void *s),
         { return fkr_cuda(fkd_memset(p, v, n, s, 1)); })
FKR_BOTH(int, DeviceSynchronize, (void),
         { return fkr_cuda(fkd_device_sync()); })
FKR_BOTH(int, SetDevice, (int d), { return (d == 0) ? 0 : 101; })
FKR_BOTH(int, GetDevice, (int *d), { *d = 0; return 0; })
FKR_BOTH(int, GetDeviceCount, (int *n), { *n = 1; return 0; })
FKR_BOTH(int, GetLastError, (void), { return 0; })
FKR_BOTH(int, PeekAtLastError, (void), { return 0; })
FKR_BOTH(const char *, GetErrorString, (int code),
         { return fkr_cuda_string(code); })

FKR_BOTH(int, Memcpy, (void *d, const void *s, size_t n, int kind), {
    int dd, sd;

    fkr_kind(kind, &dd, &sd);
    return fkr_cuda(fkd_memcpy(d, s, n, dd, sd, NULL, 0));
})

FKR_BOTH(int, MemcpyAsync, (void *d, const void *s, size_t n, int kind,
                            void *st), {
    int dd, sd;

    fkr_kind(kind, &dd, &sd);
    return fkr_cuda(fkd_memcpy(d, s, n, dd, sd, st, 1));
})

/* IPC: cudaIpcGetMemHandle(cudaIpcMemHandle_t *, void *devPtr) for the
 * base of a cudaMalloc allocation (the handle names the whole of it);
 * cudaIpcOpenMemHandle(void **, cudaIpcMemHandle_t by value, unsigned
 * flags), flags must be cudaIpcMemLazyEnablePeerAccess (1); opening a
 * handle twice returns the same pointer, counted;
 * cudaIpcCloseMemHandle(void *). hipIpc* the same. */
FKR_BOTH(int, IpcGetMemHandle, (fkd_ipc_handle_t *h, void *p),
         { return fkr_cuda(fkd_ipc_get(h, p)); })
FKR_BOTH(int, IpcOpenMemHandle, (void **p, fkd_ipc_handle_t h,
                                 unsigned flags), {
    if (flags != 1) {
        return 1;
    }
    return fkr_cuda(fkd_ipc_open(p, &h));
})
FKR_BOTH(int, IpcCloseMemHandle, (void *p),
         { return fkr_cuda(fkd_ipc_close(p)); })

/* cudaDeviceCanAccessPeer(int *, device, peerDevice): one device here, so
 * no peer; a device that does not exist is cudaErrorInvalidDevice. */
FKR_BOTH(int, DeviceCanAccessPeer, (int *can, int dev, int peer), {
    if (can == NULL) {
        return 1;
    }
    *can = 0;
    return ((dev == 0) && (peer == 0)) ? 0 : 101;
})

/* hipMemGetAddressRange(hipDeviceptr_t *base, size_t *size, ptr): HIP's
 * public form of the driver's cuMemGetAddressRange. */
FKD_API int hipMemGetAddressRange(void **base, size_t *n, void *p)
{
    return fkr_cuda(fkd_range(p, base, n));
}

/* CUDA 12 and 13: cudaGraphInstantiate(exec, graph, flags). */
FKD_API int cudaGraphInstantiate(void **x, void *g, unsigned long long f)
{
    (void)f;
    return fkr_cuda(fkd_graph_instantiate(x, g));
}

/* HIP keeps the older form: (exec, graph, error node, log, log size). */
FKD_API int hipGraphInstantiate(void **x, void *g, void **err_node,
                                char *log, size_t log_size)
{
    (void)err_node;
    if ((log != NULL) && (log_size > 0)) {
        log[0] = '\0';
    }
    return fkr_cuda(fkd_graph_instantiate(x, g));
}

FKD_API int cudaMallocHost(void **p, size_t n)
{
    return fkr_cuda(fkd_malloc_host(p, n));
}

/* cudaHostAlloc(p, n, flags): the flags (portable, mapped, write
 * combined) change nothing here. */
FKD_API int cudaHostAlloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    return fkr_cuda(fkd_malloc_host(p, n));
}

FKD_API int cudaFreeHost(void *p)
{
    return fkr_cuda(fkd_free(p));
}

FKD_API int hipHostMalloc(void **p, size_t n, unsigned flags)
{
    (void)flags;
    return fkr_cuda(fkd_malloc_host(p, n));
}

FKD_API int hipHostFree(void *p)
{
    return fkr_cuda(fkd_free(p));
}

/* struct cudaPointerAttributes of CUDA >= 11. */
FKD_API int cudaPointerGetAttributes(fkr_ptr_attr_t *a, const void *p)
{
    void *w;
    int kind;

    if (a == NULL) {
        return 1;
    }
    memset(a, 0, sizeof(*a));
    if (fkd_translate(p, 0, &w, &kind) != FKD_OK) {
        return 1;
    }
    a->type = (kind == FKD_MEM_DEVICE) ? 2 : (kind == FKD_MEM_PINNED) ? 1
                                                                      : 0;
    if (kind != FKD_MEM_HOST) {
        a->device_pointer = (void *)p;
        a->host_pointer   = (kind == FKD_MEM_PINNED) ? (void *)p : NULL;
    }
    return 0;
}

FKD_API int cudaRuntimeGetVersion(int *v)
{
    *v = FAKE_RT_CUDA_VERSION;
    return 0;
}

FKD_API int cudaDriverGetVersion(int *v)
{
    *v = FAKE_RT_CUDA_VERSION;
    return 0;
}

FKD_API int hipRuntimeGetVersion(int *v)
{
    *v = 60200000; /* HIP 6.2: MAJOR * 10^7 + MINOR * 10^5 + PATCH */
    return 0;
}

/* ---- Ascend ACL ---- */

static int fkr_acl(int rc)
{
    switch (rc) {
    case FKD_OK:     return 0;      /* ACL_SUCCESS */
    case FKD_EINVAL: return 100000; /* ACL_ERROR_INVALID_PARAM */
    case FKD_ENOMEM: return 207001; /* ACL_ERROR_RT_MEMORY_ALLOCATION */
    default:         return 507899; /* ACL_ERROR_RT_INTERNAL_ERROR */
    }
}

FKD_API int aclrtCreateStream(void **s)
{
    return fkr_acl(fkd_stream_create(s));
}

FKD_API int aclrtDestroyStream(void *s)
{
    return fkr_acl(fkd_stream_destroy(s));
}

FKD_API int aclrtSynchronizeStream(void *s)
{
    return fkr_acl(fkd_stream_sync(s));
}

FKD_API int aclrtCreateEvent(void **e)
{
    return fkr_acl(fkd_event_create(e));
}

FKD_API int aclrtDestroyEvent(void *e)
{
    return fkr_acl(fkd_event_destroy(e));
}

FKD_API int aclrtRecordEvent(void *e, void *s)
{
    return fkr_acl(fkd_event_record(e, s));
}

/* aclrtEventRecordedStatus: ACL_EVENT_RECORDED_STATUS_NOT_READY 0,
 * ACL_EVENT_RECORDED_STATUS_COMPLETE 1. */
FKD_API int aclrtQueryEventStatus(void *e, int *status)
{
    int rc = fkd_event_query(e);

    if (status == NULL) {
        return fkr_acl(FKD_EINVAL);
    }
    *status = (rc == FKD_OK) ? 1 : 0;
    return ((rc == FKD_OK) || (rc == FKD_NOT_READY)) ? 0 : fkr_acl(rc);
}

FKD_API int aclrtSynchronizeEvent(void *e)
{
    return fkr_acl(fkd_event_sync(e));
}

FKD_API int aclrtStreamWaitEvent(void *s, void *e)
{
    return fkr_acl(fkd_stream_wait_event(s, e));
}

FKD_API int aclrtMalloc(void **p, size_t n, int policy)
{
    (void)policy;
    return fkr_acl(fkd_malloc(p, n));
}

FKD_API int aclrtFree(void *p)
{
    return fkr_acl(fkd_free(p));
}

FKD_API int aclrtMallocHost(void **p, size_t n)
{
    return fkr_acl(fkd_malloc_host(p, n));
}

FKD_API int aclrtFreeHost(void *p)
{
    return fkr_acl(fkd_free(p));
}

/* aclrtMemcpyKind: HOST_TO_HOST 0, HOST_TO_DEVICE 1, DEVICE_TO_HOST 2,
 * DEVICE_TO_DEVICE 3. */
FKD_API int aclrtMemcpy(void *d, size_t dmax, const void *s, size_t n,
                        int kind)
{
    int dd, sd;

    if (n > dmax) {
        return fkr_acl(FKD_EINVAL);
    }
    fkr_kind(kind, &dd, &sd);
    return fkr_acl(fkd_memcpy(d, s, n, dd, sd, NULL, 0));
}

FKD_API int aclrtMemcpyAsync(void *d, size_t dmax, const void *s, size_t n,
                             int kind, void *st)
{
    int dd, sd;

    if (n > dmax) {
        return fkr_acl(FKD_EINVAL);
    }
    fkr_kind(kind, &dd, &sd);
    return fkr_acl(fkd_memcpy(d, s, n, dd, sd, st, 1));
}

FKD_API int aclmdlRICaptureBegin(void *s, int mode)
{
    return fkr_acl(fkd_capture_begin(s, mode));
}

FKD_API int aclmdlRICaptureGetInfo(void *s, int *status, void **ri)
{
    if (ri != NULL) {
        *ri = NULL;
    }
    return fkr_acl(fkd_capture_status(s, status));
}

FKD_API int aclmdlRICaptureEnd(void *s, void **ri)
{
    return fkr_acl(fkd_capture_end(s, ri));
}

FKD_API int aclmdlRIExecuteAsync(void *ri, void *s)
{
    return fkr_acl(fkd_graph_launch(ri, s));
}

FKD_API int aclmdlRIDestroy(void *ri)
{
    return fkr_acl(fkd_graph_destroy(ri));
}

FKD_API int aclmdlRICaptureThreadExchangeMode(int *mode)
{
    return fkr_acl(fkd_thread_capture_mode(mode));
}

FKD_API int aclrtGetVersion(int32_t *major, int32_t *minor, int32_t *patch)
{
    *major = 1;
    *minor = 16;
    *patch = 0;
    return 0;
}

FKD_API const char *aclGetRecentErrMsg(void)
{
    return "fake ascendcl error";
}

/* ---- Cambricon CNRT ---- */

static int fkr_cnrt(int rc)
{
    switch (rc) {
    case FKD_OK:        return 0;      /* cnrtSuccess */
    case FKD_NOT_READY: return 1;      /* cnrtErrorNotReady */
    case FKD_EINVAL:    return 632009; /* cnrtErrorArgsInvalid */
    default:            return 632000; /* a cnrtError* */
    }
}

FKD_API int cnrtQueueCreate(void **q)
{
    return fkr_cnrt(fkd_stream_create(q));
}

FKD_API int cnrtQueueDestroy(void *q)
{
    return fkr_cnrt(fkd_stream_destroy(q));
}

FKD_API int cnrtQueueSync(void *q)
{
    return fkr_cnrt(fkd_stream_sync(q));
}

FKD_API int cnrtNotifierCreate(void **n)
{
    return fkr_cnrt(fkd_event_create(n));
}

FKD_API int cnrtNotifierDestroy(void *n)
{
    return fkr_cnrt(fkd_event_destroy(n));
}

FKD_API int cnrtPlaceNotifier(void *n, void *q)
{
    return fkr_cnrt(fkd_event_record(n, q));
}

FKD_API int cnrtQueryNotifier(void *n)
{
    return fkr_cnrt(fkd_event_query(n));
}

FKD_API int cnrtWaitNotifier(void *n)
{
    return fkr_cnrt(fkd_event_sync(n));
}

FKD_API int cnrtQueueWaitNotifier(void *n, void *q, unsigned flag)
{
    (void)flag;
    return fkr_cnrt(fkd_stream_wait_event(q, n));
}

FKD_API int cnrtQueueIsCapturing(void *q, int *status)
{
    return fkr_cnrt(fkd_capture_status(q, status));
}

FKD_API int cnrtThreadExchangeQueueCaptureMode(int *mode)
{
    return fkr_cnrt(fkd_thread_capture_mode(mode));
}

FKD_API int cnrtQueueBeginCapture(void *q, int mode)
{
    return fkr_cnrt(fkd_capture_begin(q, mode));
}

FKD_API int cnrtQueueEndCapture(void *q, void **topo)
{
    return fkr_cnrt(fkd_capture_end(q, topo));
}

FKD_API int cnrtTaskTopoInstantiate(void **entity, void *topo,
                                    void **err_node, char *log,
                                    size_t log_size)
{
    (void)err_node;
    if ((log != NULL) && (log_size > 0)) {
        log[0] = '\0';
    }
    return fkr_cnrt(fkd_graph_instantiate(entity, topo));
}

FKD_API int cnrtTaskTopoEntityInvoke(void *entity, void *q)
{
    return fkr_cnrt(fkd_graph_launch(entity, q));
}

FKD_API int cnrtTaskTopoEntityDestroy(void *entity)
{
    return fkr_cnrt(fkd_graph_destroy(entity));
}

FKD_API int cnrtTaskTopoDestroy(void *topo)
{
    return fkr_cnrt(fkd_graph_destroy(topo));
}

FKD_API int cnrtMalloc(void **p, size_t n)
{
    return fkr_cnrt(fkd_malloc(p, n));
}

FKD_API int cnrtFree(void *p)
{
    return fkr_cnrt(fkd_free(p));
}

FKD_API int cnrtMemcpy(void *d, void *s, size_t n, int dir)
{
    (void)dir;
    return fkr_cnrt(fkd_memcpy(d, s, n, -1, -1, NULL, 0));
}

FKD_API int cnrtMemcpyAsync(void *d, void *s, size_t n, void *q, int dir)
{
    (void)dir;
    return fkr_cnrt(fkd_memcpy(d, s, n, -1, -1, q, 1));
}

FKD_API int cnrtGetLibVersion(int *major, int *minor, int *patch)
{
    *major = 6;
    *minor = 2;
    *patch = 0;
    return 0;
}

FKD_API const char *cnrtGetErrorStr(int code)
{
    return (code == 0) ? "no error" : "fake cnrt error";
}

/* ---- Kunlunxin XRE ---- */

static int fkr_xpu(int rc)
{
    return (rc == FKD_OK) ? 0 : 100 + rc; /* XPU_SUCCESS, or an error */
}

FKD_API int xpu_stream_create(void **s)
{
    return fkr_xpu(fkd_stream_create(s));
}

FKD_API int xpu_stream_destroy(void *s)
{
    return fkr_xpu(fkd_stream_destroy(s));
}

FKD_API int xpu_wait(void *s)
{
    return fkr_xpu(fkd_stream_sync(s));
}

FKD_API int xpu_event_create(void **e)
{
    return fkr_xpu(fkd_event_create(e));
}

FKD_API int xpu_event_destroy(void *e)
{
    return fkr_xpu(fkd_event_destroy(e));
}

FKD_API int xpu_event_record(void *e, void *s)
{
    return fkr_xpu(fkd_event_record(e, s));
}

FKD_API int xpu_event_query(void *e)
{
    return fkr_xpu(fkd_event_query(e));
}

FKD_API int xpu_event_wait(void *e)
{
    return fkr_xpu(fkd_event_sync(e));
}

FKD_API int xpu_stream_wait_event(void *s, void *e)
{
    return fkr_xpu(fkd_stream_wait_event(s, e));
}

FKD_API int xpu_malloc(void **p, uint64_t n, int kind)
{
    (void)kind;
    return fkr_xpu(fkd_malloc(p, (size_t)n));
}

FKD_API int xpu_free(void *p)
{
    return fkr_xpu(fkd_free(p));
}

FKD_API int xpu_memcpy(void *d, const void *s, uint64_t n, int kind)
{
    (void)kind;
    return fkr_xpu(fkd_memcpy(d, s, (size_t)n, -1, -1, NULL, 0));
}

FKD_API int xpu_memcpy_async(void *d, const void *s, uint64_t n, int kind,
                             void *st)
{
    (void)kind;
    return fkr_xpu(fkd_memcpy(d, s, (size_t)n, -1, -1, st, 1));
}
