/*
 * fake_device.h - a stand-in accelerator for the tests: streams that run
 * their work later on a thread of their own, events, stream capture into
 * graphs and their replay, and "device memory" the host cannot touch.
 * The vendor-named runtime calls (fake_rt_api.c: cudaEventRecord,
 * hipEventQuery, aclrtRecordEvent, cnrtPlaceNotifier, xpu_event_record,
 * ...) and the fake vendor libraries (fake_engine.c) are built on this.
 *
 * Invariants:
 *  1. A stream is a worker thread that runs what was enqueued on it in
 *     order, after the call that enqueued it returned; FAKE_STREAM_DELAY_MS
 *     (read when a stream is made) holds every kernel that long first, and
 *     fkd_spin() enqueues a kernel that only takes time. So code that
 *     assumes a call finished when it returned reads stale data.
 *  2. An event is done once the stream passed the place it was recorded at
 *     (query: FKD_NOT_READY before); an event never recorded is done.
 *  3. On a capturing stream nothing runs: work becomes a node of the graph
 *     being captured; a launch of the instantiated graph replays the nodes
 *     on a stream, in order, as often as it is launched. While a stream
 *     captures in global mode, a query or synchronisation from a thread
 *     whose capture mode is not relaxed fails (FKD_ECAPTURE) and
 *     invalidates the capture, as CUDA documents.
 *  4. Device memory is a memfd mapped twice: the address handed out is
 *     PROT_NONE (a host read or write of it crashes at once), the other
 *     mapping is writable and only the stream threads use it, through
 *     fkd_translate(). Freeing device memory waits for every stream first
 *     (cudaFree synchronises), and its addresses stay reserved for later
 *     device allocations: a host allocation never lands where device
 *     memory was, as under CUDA's unified addressing.
 *  5. Every counter a test asserts on (launches, event records, event
 *     queries, captured nodes, graph launches) is read with fkd_stat().
 *  6. An IPC handle (fkd_ipc_get) names the memfd of one device
 *     allocation: the owner's pid, the fd number, the size and a random
 *     tag that is also in the memfd's name. Another process opens it
 *     (fkd_ipc_open) with pidfd_getfd, or /proc/PID/fd/N, checks the tag,
 *     and maps it twice as for its own device memory, so its copies work
 *     on it; opening a handle of the same process is FKD_ECONTEXT, and
 *     FAKE_IPC_OPEN_FAIL=1 (read at each open) makes every open
 *     FKD_EMAP, as a failed mapping would be.
 */
#ifndef FAKE_DEVICE_H
#define FAKE_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#define FKD_API __attribute__((visibility("default")))

/* Results (each vendor-named wrapper maps them to its own codes). */
enum {
    FKD_OK          = 0,
    FKD_NOT_READY   = 1, /* event or stream still has work before it */
    FKD_EINVAL      = 2, /* a bad handle, pointer or size */
    FKD_ECAPTURE    = 3, /* not allowed while a stream captures */
    FKD_EINVALIDATED = 4, /* the capture was invalidated */
    FKD_ENOMEM      = 5,
    FKD_EILLEGAL    = 6, /* e.g. end capture on a stream that does not */
    FKD_ECONTEXT    = 7, /* an IPC handle of this very process */
    FKD_EMAP        = 8, /* an IPC handle that cannot be mapped here */
    FKD_EHANDLE     = 9  /* not an IPC handle, or one of freed memory */
};

/* Kinds of memory fkd_translate() finds. */
enum { FKD_MEM_HOST = 0, FKD_MEM_DEVICE = 1, FKD_MEM_PINNED = 2 };

/* Capture modes and states, numbered as CUDA's. */
enum { FKD_CAPTURE_GLOBAL = 0, FKD_CAPTURE_THREAD = 1,
       FKD_CAPTURE_RELAXED = 2 };
enum { FKD_CAPTURE_NONE = 0, FKD_CAPTURE_ACTIVE = 1,
       FKD_CAPTURE_INVALID = 2 };

/* A kernel: run(arg) on the stream's thread; fini(arg) (may be NULL) once
 * it will never run again (after the run, or when its graph goes). */
typedef void (*fkd_run_t)(void *arg);
typedef void (*fkd_fini_t)(void *arg);

/* Streams. NULL, (void *)1 and (void *)2 are the default stream. */
FKD_API int fkd_stream_create(void **s);
FKD_API int fkd_stream_destroy(void *s);
FKD_API int fkd_stream_sync(void *s);
FKD_API int fkd_stream_query(void *s);
FKD_API int fkd_launch(void *s, fkd_run_t run, fkd_fini_t fini, void *arg);
FKD_API int fkd_spin(void *s, int ms);
FKD_API int fkd_device_sync(void);

/* Events. */
FKD_API int fkd_event_create(void **e);
FKD_API int fkd_event_destroy(void *e);
FKD_API int fkd_event_record(void *e, void *s);
FKD_API int fkd_event_query(void *e);
FKD_API int fkd_event_sync(void *e);
FKD_API int fkd_stream_wait_event(void *s, void *e);

/* Capture and graphs. */
FKD_API int fkd_capture_begin(void *s, int mode);
FKD_API int fkd_capture_end(void *s, void **graph);
FKD_API int fkd_capture_status(void *s, int *status);
FKD_API int fkd_thread_capture_mode(int *mode); /* exchange */
FKD_API int fkd_graph_instantiate(void **exec, void *graph);
FKD_API int fkd_graph_launch(void *exec, void *s);
FKD_API int fkd_graph_destroy(void *graph);

/* Memory. */
FKD_API int fkd_malloc(void **p, size_t n);
FKD_API int fkd_malloc_host(void **p, size_t n);
FKD_API int fkd_free(void *p);
/* Kind of [p, p + n); *w = the address the stream threads may use. A
 * range that starts in device memory and runs past its end: FKD_EINVAL. */
FKD_API int fkd_translate(const void *p, size_t n, void **w, int *kind);
/* dst_dev / src_dev: 1 the side must be device memory, 0 must not be,
 * -1 either. s == NULL with sync: the default stream, then wait. */
FKD_API int fkd_memcpy(void *dst, const void *src, size_t n, int dst_dev,
                       int src_dev, void *s, int async);
FKD_API int fkd_memset(void *dst, int v, size_t n, void *s, int async);

/* IPC (invariant 6): a handle of the base of a device allocation; the
 * 64 bytes of cudaIpcMemHandle_t. */
typedef struct {
    char reserved[64];
} fkd_ipc_handle_t;
FKD_API int fkd_ipc_get(fkd_ipc_handle_t *h, void *p);
FKD_API int fkd_ipc_open(void **p, const fkd_ipc_handle_t *h);
FKD_API int fkd_ipc_close(void *p);
/* The device allocation holding p (own or opened): base and size. */
FKD_API int fkd_range(const void *p, void **base, size_t *n);

/* Counters (invariant 5): "launches", "event_records", "event_queries",
 * "captured", "graph_launches", "capture_violations", "ipc_opens" (new
 * mappings of another process's memory); -1 unknown. */
FKD_API int64_t fkd_stat(const char *name);
FKD_API void fkd_stat_reset(void);

#endif /* FAKE_DEVICE_H */
