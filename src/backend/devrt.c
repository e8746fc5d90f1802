/*
 * devrt.c - the device runtimes of the vendor backends (see devrt.h): one
 * row per runtime naming its library, variable and the calls scomm makes,
 * the discovery steps, and the few calls themselves.
 *
 * The declarations are written from the vendors' documentation:
 *   CUDA runtime API (11 to 13): cudaEventCreateWithFlags(cudaEvent_t *,
 *     unsigned) with cudaEventDisableTiming = 0x2, cudaEventRecord(event,
 *     stream), cudaEventQuery(event) -> cudaSuccess 0 / cudaErrorNotReady
 *     600, cudaEventDestroy, cudaStreamIsCapturing(stream,
 *     enum cudaStreamCaptureStatus *) (None 0, Active 1, Invalidated 2),
 *     cudaThreadExchangeStreamCaptureMode(enum cudaStreamCaptureMode *)
 *     (Global 0, ThreadLocal 1, Relaxed 2), cudaGetErrorString,
 *     cudaRuntimeGetVersion(int *) (1000 * major + 10 * minor);
 *   CUDA IPC: cudaIpcGetMemHandle(cudaIpcMemHandle_t *, void *) of the
 *     base of a cudaMalloc allocation, cudaIpcOpenMemHandle(void **,
 *     cudaIpcMemHandle_t (64 bytes, by value), unsigned) with
 *     cudaIpcMemLazyEnablePeerAccess = 1, cudaIpcCloseMemHandle(void *);
 *     the base from the driver API, cuMemGetAddressRange_v2(CUdeviceptr *,
 *     size_t *, CUdeviceptr) in libcuda.so.1 (the runtime API documents
 *     no call that returns an allocation's base; HIP's is
 *     hipMemGetAddressRange);
 *   HIP: the same calls and codes under hip*, hipRuntimeGetVersion
 *     (major * 10^7 + minor * 10^5 + patch);
 *   ACL (CANN 7/8): aclrtCreateEvent(aclrtEvent *), aclrtRecordEvent(event,
 *     stream), aclrtQueryEventStatus(event, aclrtEventRecordedStatus *)
 *     (NOT_READY 0, COMPLETE 1), aclrtDestroyEvent, aclmdlRICaptureGetInfo
 *     (stream, aclmdlRICaptureStatus *, aclmdlRI *) (NONE 0; CANN >= 8.0,
 *     optional), aclmdlRICaptureThreadExchangeMode(aclmdlRICaptureMode *)
 *     (GLOBAL 0, THREAD_LOCAL 1, RELAXED 2; optional),
 *     aclrtGetVersion(int32_t *, int32_t *, int32_t *),
 *     aclGetRecentErrMsg(void);
 *   CNRT (Neuware 3.x): cnrtNotifierCreate(cnrtNotifier_t *),
 *     cnrtPlaceNotifier(notifier, queue), cnrtQueryNotifier(notifier) ->
 *     cnrtSuccess 0 / cnrtErrorNotReady 1 (older: cnrtErrorBusy 632014),
 *     cnrtNotifierDestroy, cnrtQueueIsCapturing(queue,
 *     cnrtQueueCaptureStatus *) (None 0), cnrtThreadExchangeQueueCaptureMode
 *     (cnrtQueueCaptureMode *) (Global 0, ThreadLocal 1, Relaxed 2; the
 *     numbers follow CUDA's, as torch_mlu's use does), cnrtGetLibVersion(
 *     int *, int *, int *), cnrtGetErrorStr;
 *   XRE (Kunlunxin): xpu_event_create(XPUEvent *), xpu_event_record(event,
 *     stream), xpu_event_query(event) -> XPU_SUCCESS 0 when done,
 *     xpu_event_destroy. XRE documents no "not ready" code apart from
 *     errors: any other answer counts as not ready (to verify on hardware).
 *     XRE has no stream capture: a bkcl call is never captured.
 *
 * Invariants: devrt.h's.
 */
#include "devrt.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../core/config.h"
#include "../core/log.h"
#include "../core/util.h"

#define DEVRT_CUDA_NOT_READY  600
#define DEVRT_CNRT_NOT_READY  1
#define DEVRT_CNRT_BUSY       632014
#define DEVRT_DISABLE_TIMING  0x2
#define DEVRT_CAPTURE_RELAXED 2

typedef struct {
    const char        *name;    /* "CUDA runtime" */
    const char        *env;     /* its library variable */
    const char        *prefix;  /* file names start so: "libcudart.so" */
    const char *const *sonames; /* newest first, NULL-terminated */
    const char        *p;       /* call prefix: "cuda", "hip", ... */
} devrt_desc_t;

static const char *const devrt_cuda_sonames[] = {
    "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0",
    "libcudart.so", NULL};
static const char *const devrt_hip_sonames[] = {
    "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5",
    "libamdhip64.so", NULL};
static const char *const devrt_acl_sonames[] = {"libascendcl.so", NULL};
static const char *const devrt_cnrt_sonames[] = {"libcnrt.so", NULL};
static const char *const devrt_xpu_sonames[] = {"libxpurt.so", NULL};

static const devrt_desc_t devrt_descs[SCOMM_RT_KINDS] = {
    [SCOMM_RT_CUDA] = {"CUDA runtime", "SCOMM_CUDART_LIBRARY",
                       "libcudart.so", devrt_cuda_sonames, "cuda"},
    [SCOMM_RT_HIP]  = {"HIP runtime", "SCOMM_HIPRT_LIBRARY",
                       "libamdhip64.so", devrt_hip_sonames, "hip"},
    [SCOMM_RT_ACL]  = {"Ascend ACL runtime", "SCOMM_ACLRT_LIBRARY",
                       "libascendcl.so", devrt_acl_sonames, "aclrt"},
    [SCOMM_RT_CNRT] = {"Cambricon CNRT", "SCOMM_CNRT_LIBRARY", "libcnrt.so",
                       devrt_cnrt_sonames, "cnrt"},
    [SCOMM_RT_XPU]  = {"Kunlunxin XRE", "SCOMM_XPURT_LIBRARY", "libxpurt.so",
                       devrt_xpu_sonames, "xpu"},
};

struct scomm_devrt {
    scomm_rt_kind_t     kind;
    const devrt_desc_t *d;
    void               *dl;
    char                path[256];
    char                how[96];
    char                version[32];
    /* CUDA, HIP */
    int (*create_flags)(void **ev, unsigned flags);
    int (*exchange_mode)(int *mode); /* and ACL's, CNRT's */
    const char *(*errstr)(int code); /* and CNRT's */
    /* ACL, CNRT, XRE */
    int (*create)(void **ev);
    int (*query_status)(void *ev, int *status);            /* ACL */
    int (*capture_info)(void *stream, int *st, void **ri); /* ACL */
    const char *(*recent_msg)(void);                       /* ACL */
    /* all */
    int (*record)(void *ev, void *stream);
    int (*query)(void *ev);
    int (*destroy)(void *ev);
    int (*is_capturing)(void *stream, int *status); /* CUDA, HIP, CNRT */
    /* device memory (CUDA, HIP; optional) */
    int (*ptr_attr)(void *attr, const void *p);
    int (*host_alloc)(void **p, size_t n, unsigned flags);
    int (*host_free)(void *p);
    int (*memcpy_async)(void *d, const void *s, size_t n, int kind,
                        void *stream);
    int (*stream_create)(void **s, unsigned flags);
    int (*stream_destroy)(void *s);
    int (*stream_wait)(void *s, void *ev, unsigned flags);
    int (*last_error)(void);
    int (*host_func)(void *s, void (*fn)(void *), void *arg); /* optional */
    /* IPC (CUDA, HIP; optional) */
    int (*ipc_get)(scomm_devrt_ipc_handle_t *h, void *p);
    int (*ipc_open)(void **p, scomm_devrt_ipc_handle_t h, unsigned flags);
    int (*ipc_close)(void *p);
};

static pthread_mutex_t devrt_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_devrt_t devrt_rt[SCOMM_RT_KINDS];
static int devrt_state[SCOMM_RT_KINDS]; /* 0 not looked, 1 found, 2 none */
static char devrt_none[SCOMM_RT_KINDS][256];

/* ---- discovery ---- */

/* The file name of the object dl is. */
static void devrt_path(void *dl, char *buf, size_t len)
{
    struct link_map *lm = NULL;

    if ((dlinfo(dl, RTLD_DI_LINKMAP, &lm) == 0) && (lm != NULL) &&
        (lm->l_name != NULL) && (lm->l_name[0] != '\0')) {
        snprintf(buf, len, "%s", lm->l_name);
    }
}

static const char *devrt_base(const char *path)
{
    const char *s = strrchr(path, '/');

    return (s != NULL) ? s + 1 : path;
}

/* Step 2: the DT_NEEDED entry of dl that starts with prefix. */
static int devrt_needed(void *dl, const char *prefix, char *out, size_t len)
{
    struct link_map *lm = NULL;
    const ElfW(Dyn) *d;
    const char *strtab = NULL;

    if ((dl == NULL) || (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0) ||
        (lm == NULL) || (lm->l_ld == NULL)) {
        return -1;
    }
    for (d = lm->l_ld; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_STRTAB) {
            strtab = (const char *)d->d_un.d_ptr;
        }
    }
    if (strtab == NULL) {
        return -1;
    }
    /* glibc relocates the dynamic section in place on most targets; where
     * it does not (read-only .dynamic), the entry is an offset. */
    if ((uintptr_t)strtab < (uintptr_t)lm->l_addr) {
        strtab += lm->l_addr;
    }
    for (d = lm->l_ld; d->d_tag != DT_NULL; d++) {
        if ((d->d_tag == DT_NEEDED) &&
            (strncmp(strtab + d->d_un.d_val, prefix, strlen(prefix)) == 0)) {
            snprintf(out, len, "%s", strtab + d->d_un.d_val);
            return 0;
        }
    }
    return -1;
}

typedef struct {
    const char *prefix;
    char        path[256];
} devrt_seek_t;

static int devrt_seek_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    devrt_seek_t *s = arg;

    (void)size;
    if ((info->dlpi_name != NULL) && (info->dlpi_name[0] != '\0') &&
        (strncmp(devrt_base(info->dlpi_name), s->prefix,
                 strlen(s->prefix)) == 0)) {
        snprintf(s->path, sizeof(s->path), "%s", info->dlpi_name);
        return 1;
    }
    return 0;
}

void *scomm_devrt_find(const char *const *sonames, void *vendor_dl,
                       char *used, size_t ulen, char *how, size_t hlen)
{
    char prefix[64], vpath[256] = "";
    devrt_seek_t seek;
    void *dl;
    char *dot;
    int i;

    /* the prefix: the first soname up to ".so" */
    snprintf(prefix, sizeof(prefix), "%s", sonames[0]);
    dot = strstr(prefix, ".so");
    if (dot != NULL) {
        dot[3] = '\0';
    }
    if (devrt_needed(vendor_dl, prefix, used, ulen) == 0) {
        dl = dlopen(used, RTLD_NOW | RTLD_NOLOAD);
        if (dl != NULL) {
            devrt_path(vendor_dl, vpath, sizeof(vpath));
            snprintf(how, hlen, "a dependency of %s", devrt_base(vpath));
            return dl;
        }
    }
    memset(&seek, 0, sizeof(seek));
    seek.prefix = prefix;
    if ((dl_iterate_phdr(devrt_seek_cb, &seek) != 0) &&
        ((dl = dlopen(seek.path, RTLD_NOW | RTLD_NOLOAD)) != NULL)) {
        snprintf(used, ulen, "%s", devrt_base(seek.path));
        snprintf(how, hlen, "already loaded in the process");
        return dl;
    }
    for (i = 0; sonames[i] != NULL; i++) {
        dl = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (dl != NULL) {
            snprintf(used, ulen, "%s", sonames[i]);
            snprintf(how, hlen, "by soname");
            return dl;
        }
    }
    return NULL;
}

/* ---- binding ---- */

/* One call scomm binds: where its pointer goes, its name (after the
 * runtime's prefix for CUDA and HIP), whether it may be missing. */
typedef struct {
    size_t      off;
    const char *name;
    int         optional;
} devrt_sym_t;

#define DEVRT_F(_f) offsetof(scomm_devrt_t, _f)

static const devrt_sym_t devrt_cuda_syms[] = { /* CUDA and HIP */
    {DEVRT_F(create_flags), "EventCreateWithFlags", 0},
    {DEVRT_F(record), "EventRecord", 0},
    {DEVRT_F(query), "EventQuery", 0},
    {DEVRT_F(destroy), "EventDestroy", 0},
    {DEVRT_F(is_capturing), "StreamIsCapturing", 0},
    {DEVRT_F(exchange_mode), "ThreadExchangeStreamCaptureMode", 1},
    {DEVRT_F(errstr), "GetErrorString", 1},
    {DEVRT_F(ptr_attr), "PointerGetAttributes", 1},
    {DEVRT_F(host_free), "FreeHost", 1},
    {DEVRT_F(memcpy_async), "MemcpyAsync", 1},
    {DEVRT_F(stream_create), "StreamCreateWithFlags", 1},
    {DEVRT_F(stream_destroy), "StreamDestroy", 1},
    {DEVRT_F(stream_wait), "StreamWaitEvent", 1},
    {DEVRT_F(last_error), "GetLastError", 1},
    {DEVRT_F(host_func), "LaunchHostFunc", 1},
    {DEVRT_F(ipc_get), "IpcGetMemHandle", 1},
    {DEVRT_F(ipc_open), "IpcOpenMemHandle", 1},
    {DEVRT_F(ipc_close), "IpcCloseMemHandle", 1},
    {0, NULL, 0}};
static const devrt_sym_t devrt_acl_syms[] = {
    {DEVRT_F(create), "aclrtCreateEvent", 0},
    {DEVRT_F(record), "aclrtRecordEvent", 0},
    {DEVRT_F(query_status), "aclrtQueryEventStatus", 0},
    {DEVRT_F(destroy), "aclrtDestroyEvent", 0},
    {DEVRT_F(capture_info), "aclmdlRICaptureGetInfo", 1},
    {DEVRT_F(exchange_mode), "aclmdlRICaptureThreadExchangeMode", 1},
    {DEVRT_F(recent_msg), "aclGetRecentErrMsg", 1},
    {0, NULL, 0}};
static const devrt_sym_t devrt_cnrt_syms[] = {
    {DEVRT_F(create), "cnrtNotifierCreate", 0},
    {DEVRT_F(record), "cnrtPlaceNotifier", 0},
    {DEVRT_F(query), "cnrtQueryNotifier", 0},
    {DEVRT_F(destroy), "cnrtNotifierDestroy", 0},
    {DEVRT_F(is_capturing), "cnrtQueueIsCapturing", 1},
    {DEVRT_F(exchange_mode), "cnrtThreadExchangeQueueCaptureMode", 1},
    {DEVRT_F(errstr), "cnrtGetErrorStr", 1},
    {0, NULL, 0}};
static const devrt_sym_t devrt_xpu_syms[] = {
    {DEVRT_F(create), "xpu_event_create", 0},
    {DEVRT_F(record), "xpu_event_record", 0},
    {DEVRT_F(query), "xpu_event_query", 0},
    {DEVRT_F(destroy), "xpu_event_destroy", 0},
    {0, NULL, 0}};

static void devrt_version(scomm_devrt_t *rt)
{
    int (*v1)(int *);
    int (*v3)(int *, int *, int *);
    int v = 0, a = 0, b = 0, c = 0;
    void *fn;

    snprintf(rt->version, sizeof(rt->version), "version unknown");
    switch (rt->kind) {
    case SCOMM_RT_CUDA:
    case SCOMM_RT_HIP:
        fn = dlsym(rt->dl, (rt->kind == SCOMM_RT_CUDA)
                               ? "cudaRuntimeGetVersion"
                               : "hipRuntimeGetVersion");
        memcpy(&v1, &fn, sizeof(fn));
        if ((fn != NULL) && (v1(&v) == 0) && (v > 0)) {
            if (rt->kind == SCOMM_RT_CUDA) {
                snprintf(rt->version, sizeof(rt->version), "%d.%d",
                         v / 1000, (v % 1000) / 10);
            } else {
                snprintf(rt->version, sizeof(rt->version), "%d.%d",
                         v / 10000000, (v / 100000) % 100);
            }
        }
        break;
    case SCOMM_RT_ACL:
    case SCOMM_RT_CNRT:
        fn = dlsym(rt->dl, (rt->kind == SCOMM_RT_ACL) ? "aclrtGetVersion"
                                                      : "cnrtGetLibVersion");
        memcpy(&v3, &fn, sizeof(fn));
        if ((fn != NULL) && (v3(&a, &b, &c) == 0)) {
            snprintf(rt->version, sizeof(rt->version), "%d.%d.%d", a, b, c);
        }
        break;
    default:
        break;
    }
}

static int devrt_bind(scomm_devrt_t *rt, char *err, size_t len)
{
    static const devrt_sym_t *const tables[SCOMM_RT_KINDS] = {
        devrt_cuda_syms, devrt_cuda_syms, devrt_acl_syms, devrt_cnrt_syms,
        devrt_xpu_syms};
    const devrt_sym_t *t;
    char sym[80];
    void *fn;

    for (t = tables[rt->kind]; t->name != NULL; t++) {
        snprintf(sym, sizeof(sym), "%s%s",
                 (rt->kind <= SCOMM_RT_HIP) ? rt->d->p : "", t->name);
        fn = dlsym(rt->dl, sym);
        if ((fn == NULL) && !t->optional) {
            snprintf(err, len, "%s has no %s (not a %s)", rt->path, sym,
                     rt->d->name);
            return -1;
        }
        /* a function pointer field of rt, by its offset */
        memcpy((char *)rt + t->off, &fn, sizeof(fn));
    }
    if (rt->kind <= SCOMM_RT_HIP) {
        /* page-locked memory: cudaHostAlloc / hipHostMalloc (p, n, flags);
         * hipHostFree is HIP's name for cudaFreeHost */
        fn = dlsym(rt->dl, (rt->kind == SCOMM_RT_CUDA) ? "cudaHostAlloc"
                                                       : "hipHostMalloc");
        memcpy(&rt->host_alloc, &fn, sizeof(fn));
        if (rt->kind == SCOMM_RT_HIP) {
            fn = dlsym(rt->dl, "hipHostFree");
            memcpy(&rt->host_free, &fn, sizeof(fn));
        }
    }
    devrt_version(rt);
    return 0;
}

const scomm_devrt_t *scomm_devrt_get(scomm_rt_kind_t kind, void *vendor_dl,
                                     char *err, size_t len)
{
    const devrt_desc_t *d;
    scomm_devrt_t *rt;
    char why[256] = "", used[128] = "";
    scomm_pval_t pv;
    const char *why_dl;

    if ((kind < 0) || (kind >= SCOMM_RT_KINDS)) {
        snprintf(err, len, "no such runtime");
        return NULL;
    }
    d  = &devrt_descs[kind];
    rt = &devrt_rt[kind];
    pthread_mutex_lock(&devrt_lock);
    if (devrt_state[kind] != 0) {
        goto out;
    }
    memset(rt, 0, sizeof(*rt));
    rt->kind = kind;
    rt->d    = d;
    if (scomm_param_get(d->env, NULL, &pv, why, sizeof(why)) != SCOMM_OK) {
        snprintf(devrt_none[kind], sizeof(devrt_none[kind]), "%s", why);
    } else if (strcmp(pv.text, "none") == 0) {
        snprintf(devrt_none[kind], sizeof(devrt_none[kind]),
                 "%s=none: no %s", d->env, d->name);
    } else if (pv.text[0] != '\0') {
        rt->dl = dlopen(pv.text, RTLD_NOW | RTLD_LOCAL);
        if (rt->dl == NULL) {
            why_dl = dlerror();
            snprintf(devrt_none[kind], sizeof(devrt_none[kind]),
                     "%s=%s cannot be loaded: %s", d->env, pv.text,
                     (why_dl != NULL) ? why_dl : "unknown error");
        } else {
            snprintf(used, sizeof(used), "%s", devrt_base(pv.text));
            snprintf(rt->how, sizeof(rt->how), "%s", d->env);
        }
    } else {
        rt->dl = scomm_devrt_find(d->sonames, vendor_dl, used, sizeof(used),
                                  rt->how, sizeof(rt->how));
        if (rt->dl == NULL) {
            snprintf(devrt_none[kind], sizeof(devrt_none[kind]),
                     "no %s found (tried the vendor library's dependencies, "
                     "the process, and %s ...; set %s)", d->name,
                     d->sonames[0], d->env);
        }
    }
    if (rt->dl != NULL) {
        snprintf(rt->path, sizeof(rt->path), "%s", used);
        devrt_path(rt->dl, rt->path, sizeof(rt->path));
        if (devrt_bind(rt, why, sizeof(why)) != 0) {
            snprintf(devrt_none[kind], sizeof(devrt_none[kind]), "%s", why);
            rt->dl = NULL; /* stays loaded (invariant 1) */
        } else {
            scomm_info(SCOMM_SUB_INIT, "%s %s (%s): %s", d->name,
                       rt->version, rt->how, rt->path);
        }
    }
    devrt_state[kind] = (rt->dl != NULL) ? 1 : 2;
out:
    if (devrt_state[kind] == 2) {
        snprintf(err, len, "%s", devrt_none[kind]);
    }
    pthread_mutex_unlock(&devrt_lock);
    return (devrt_state[kind] == 1) ? rt : NULL;
}

const char *scomm_devrt_name(const scomm_devrt_t *rt)
{
    return rt->d->name;
}

void scomm_devrt_describe(const scomm_devrt_t *rt, char *buf, size_t len)
{
    snprintf(buf, len, "%s (%s %s; %s): %s", devrt_base(rt->path),
             rt->d->name, rt->version, rt->how, rt->path);
}

/* ---- calls ---- */

/* The runtime's words for code. */
static const char *devrt_msg(const scomm_devrt_t *rt, int code)
{
    const char *m = NULL;

    if (rt->errstr != NULL) {
        m = rt->errstr(code);
    } else if (rt->recent_msg != NULL) {
        m = rt->recent_msg();
    }
    return ((m != NULL) && (m[0] != '\0')) ? m : "no message";
}

static int devrt_fail(const scomm_devrt_t *rt, const char *call, int code,
                      char *err, size_t len)
{
    snprintf(err, len, "%s%s: %s (error %d)",
             (rt->kind <= SCOMM_RT_HIP) ? rt->d->p : "", call,
             devrt_msg(rt, code), code);
    return -1;
}

int scomm_devrt_event_create(const scomm_devrt_t *rt, void **ev, char *err,
                             size_t len)
{
    int rc;

    *ev = NULL;
    switch (rt->kind) {
    case SCOMM_RT_CUDA:
    case SCOMM_RT_HIP:
        rc = rt->create_flags(ev, DEVRT_DISABLE_TIMING);
        return (rc == 0) ? 0 : devrt_fail(rt, "EventCreateWithFlags", rc,
                                          err, len);
    case SCOMM_RT_ACL:
        rc = rt->create(ev);
        return (rc == 0) ? 0 : devrt_fail(rt, "aclrtCreateEvent", rc, err,
                                          len);
    case SCOMM_RT_CNRT:
        rc = rt->create(ev);
        return (rc == 0) ? 0 : devrt_fail(rt, "cnrtNotifierCreate", rc, err,
                                          len);
    default:
        rc = rt->create(ev);
        return (rc == 0) ? 0 : devrt_fail(rt, "xpu_event_create", rc, err,
                                          len);
    }
}

int scomm_devrt_event_record(const scomm_devrt_t *rt, void *ev, void *stream,
                             char *err, size_t len)
{
    static const char *const calls[SCOMM_RT_KINDS] = {
        "EventRecord", "EventRecord", "aclrtRecordEvent",
        "cnrtPlaceNotifier", "xpu_event_record"};
    int rc = rt->record(ev, stream);

    return (rc == 0) ? 0 : devrt_fail(rt, calls[rt->kind], rc, err, len);
}

int scomm_devrt_event_query(const scomm_devrt_t *rt, void *ev, char *err,
                            size_t len)
{
    int rc, st = 0;

    switch (rt->kind) {
    case SCOMM_RT_CUDA:
    case SCOMM_RT_HIP:
        rc = rt->query(ev);
        if (rc == 0) {
            return SCOMM_RT_DONE;
        }
        if (rc == DEVRT_CUDA_NOT_READY) {
            return SCOMM_RT_NOT_READY;
        }
        return devrt_fail(rt, "EventQuery", rc, err, len);
    case SCOMM_RT_ACL:
        rc = rt->query_status(ev, &st);
        if (rc != 0) {
            return devrt_fail(rt, "aclrtQueryEventStatus", rc, err, len);
        }
        return (st == 1) ? SCOMM_RT_DONE : SCOMM_RT_NOT_READY;
    case SCOMM_RT_CNRT:
        rc = rt->query(ev);
        if (rc == 0) {
            return SCOMM_RT_DONE;
        }
        if ((rc == DEVRT_CNRT_NOT_READY) || (rc == DEVRT_CNRT_BUSY)) {
            return SCOMM_RT_NOT_READY;
        }
        return devrt_fail(rt, "cnrtQueryNotifier", rc, err, len);
    default:
        return (rt->query(ev) == 0) ? SCOMM_RT_DONE : SCOMM_RT_NOT_READY;
    }
}

void scomm_devrt_event_destroy(const scomm_devrt_t *rt, void *ev)
{
    if (ev != NULL) {
        (void)rt->destroy(ev);
    }
}

int scomm_devrt_capturing(const scomm_devrt_t *rt, void *stream, char *err,
                          size_t len)
{
    void *ri = NULL;
    int rc, st = 0;

    if (rt->is_capturing != NULL) {
        rc = rt->is_capturing(stream, &st);
        if (rc != 0) {
            return devrt_fail(rt, (rt->kind == SCOMM_RT_CNRT)
                                      ? "cnrtQueueIsCapturing"
                                      : "StreamIsCapturing",
                              rc, err, len);
        }
        return st != 0; /* active, or invalidated: either way captured */
    }
    if (rt->capture_info != NULL) {
        /* Experimental in CANN: an error means "this stream cannot
         * capture", not a failure of the call being made. */
        rc = rt->capture_info(stream, &st, &ri);
        return (rc == 0) && (st != 0);
    }
    return 0;
}

void scomm_devrt_relax_thread(const scomm_devrt_t *rt)
{
    int mode = DEVRT_CAPTURE_RELAXED;

    if (rt->exchange_mode != NULL) {
        (void)rt->exchange_mode(&mode);
    }
}

/* ---- device memory (CUDA, HIP) ---- */

#define DEVRT_MEMCPY_DEFAULT     4 /* cudaMemcpyDefault, hipMemcpyDefault */
#define DEVRT_STREAM_NONBLOCKING 1 /* cudaStreamNonBlocking */

/* struct cudaPointerAttributes (CUDA >= 10): type, device, devicePointer,
 * hostPointer. HIP's hipPointerAttribute_t starts the same way (type,
 * device, devicePointer, hostPointer, then fields scomm leaves alone), so
 * a larger buffer serves both. cudaMemoryType: Unregistered 0, Host 1,
 * Device 2, Managed 3; hipMemoryType (ROCm >= 6): the same numbers. */
typedef struct {
    int   type;
    int   device;
    void *device_pointer;
    void *host_pointer;
    char  more[64];
} devrt_ptr_attr_t;

int scomm_devrt_has_mem(const scomm_devrt_t *rt)
{
    return (rt != NULL) && (rt->ptr_attr != NULL) &&
           (rt->host_alloc != NULL) && (rt->host_free != NULL) &&
           (rt->memcpy_async != NULL) && (rt->stream_create != NULL) &&
           (rt->stream_destroy != NULL) && (rt->stream_wait != NULL);
}

int scomm_devrt_ptr_kind(const scomm_devrt_t *rt, const void *p, int *kind,
                         char *err, size_t len)
{
    devrt_ptr_attr_t a;
    int rc;

    memset(&a, 0, sizeof(a));
    *kind = SCOMM_RT_MEM_HOST;
    rc    = rt->ptr_attr(&a, p);
    if (rc == 1) {
        /* cudaErrorInvalidValue: CUDA < 11 for a pointer it does not
         * know, i.e. plain host memory; clear the sticky last error */
        if (rt->last_error != NULL) {
            (void)rt->last_error();
        }
        return 0;
    }
    if ((rc == 3) || (rc == 34) || (rc == 35) || (rc == 100)) {
        /* initialization error, stub library, insufficient driver, no
         * device (the same numbers in CUDA and HIP): a runtime that has
         * no device has handed out no device memory */
        devrt_fail(rt, "PointerGetAttributes", rc, err, len);
        if (rt->last_error != NULL) {
            (void)rt->last_error();
        }
        return 1;
    }
    if (rc != 0) {
        return devrt_fail(rt, "PointerGetAttributes", rc, err, len);
    }
    switch (a.type) {
    case 1:  *kind = SCOMM_RT_MEM_PINNED; break;
    case 2:  *kind = SCOMM_RT_MEM_DEVICE; break;
    case 3:  *kind = SCOMM_RT_MEM_MANAGED; break;
    default: *kind = SCOMM_RT_MEM_HOST; break;
    }
    return 0;
}

int scomm_devrt_host_alloc(const scomm_devrt_t *rt, void **p, size_t n,
                           char *err, size_t len)
{
    int rc = rt->host_alloc(p, n, 0);

    if (rc != 0) {
        *p = NULL;
        return devrt_fail(rt, (rt->kind == SCOMM_RT_CUDA) ? "HostAlloc"
                                                          : "HostMalloc",
                          rc, err, len);
    }
    return 0;
}

void scomm_devrt_host_free(const scomm_devrt_t *rt, void *p)
{
    if (p != NULL) {
        (void)rt->host_free(p);
    }
}

int scomm_devrt_copy_async(const scomm_devrt_t *rt, void *dst,
                           const void *src, size_t n, void *stream,
                           char *err, size_t len)
{
    int rc;

    if (n == 0) {
        return 0;
    }
    rc = rt->memcpy_async(dst, src, n, DEVRT_MEMCPY_DEFAULT, stream);
    return (rc == 0) ? 0 : devrt_fail(rt, "MemcpyAsync", rc, err, len);
}

int scomm_devrt_stream_create(const scomm_devrt_t *rt, void **s, char *err,
                              size_t len)
{
    int rc = rt->stream_create(s, DEVRT_STREAM_NONBLOCKING);

    return (rc == 0) ? 0 : devrt_fail(rt, "StreamCreateWithFlags", rc, err,
                                      len);
}

void scomm_devrt_stream_destroy(const scomm_devrt_t *rt, void *s)
{
    if (s != NULL) {
        (void)rt->stream_destroy(s);
    }
}

int scomm_devrt_stream_wait(const scomm_devrt_t *rt, void *stream, void *ev,
                            char *err, size_t len)
{
    int rc = rt->stream_wait(stream, ev, 0);

    return (rc == 0) ? 0 : devrt_fail(rt, "StreamWaitEvent", rc, err, len);
}

int scomm_devrt_host_func(const scomm_devrt_t *rt, void *stream,
                          void (*fn)(void *), void *arg, char *err,
                          size_t len)
{
    int rc;

    if (rt->host_func == NULL) {
        snprintf(err, len, "%s has no %sLaunchHostFunc", rt->path, rt->d->p);
        return -1;
    }
    rc = rt->host_func(stream, fn, arg);
    return (rc == 0) ? 0 : devrt_fail(rt, "LaunchHostFunc", rc, err, len);
}

/* ---- IPC (CUDA, HIP; invariant 5) ---- */

#define DEVRT_IPC_LAZY_PEER 1 /* cudaIpcMemLazyEnablePeerAccess */

/* cuMemGetAddressRange_v2 (CUdeviceptr as unsigned long long) or
 * hipMemGetAddressRange (pointers): the same three arguments. */
typedef int (*devrt_range_fn_t)(void *base, size_t *n, const void *p);

static devrt_range_fn_t devrt_range[SCOMM_RT_KINDS];
static int devrt_range_state[SCOMM_RT_KINDS]; /* 0 not looked, 1, 2 none */
static char devrt_range_why[SCOMM_RT_KINDS][160];

static devrt_range_fn_t devrt_range_get(const scomm_devrt_t *rt, char *why,
                                        size_t len)
{
    void *dl, *fn = NULL;
    int k = (int)rt->kind;

    pthread_mutex_lock(&devrt_lock);
    if (devrt_range_state[k] == 0) {
        if (rt->kind == SCOMM_RT_HIP) {
            fn = dlsym(rt->dl, "hipMemGetAddressRange");
        } else {
            /* the runtime has loaded the driver already; never a second
             * copy of it from elsewhere */
            dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
            if (dl == NULL) {
                dl = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
            }
            fn = (dl != NULL) ? dlsym(dl, "cuMemGetAddressRange_v2") : NULL;
        }
        memcpy(&devrt_range[k], &fn, sizeof(fn));
        devrt_range_state[k] = (fn != NULL) ? 1 : 2;
        snprintf(devrt_range_why[k], sizeof(devrt_range_why[k]), "%s",
                 (rt->kind == SCOMM_RT_HIP)
                     ? "the HIP runtime has no hipMemGetAddressRange"
                     : "no cuMemGetAddressRange_v2 (libcuda.so.1, the CUDA "
                       "driver, not found)");
    }
    pthread_mutex_unlock(&devrt_lock);
    if (devrt_range_state[k] != 1) {
        snprintf(why, len, "%s", devrt_range_why[k]);
        return NULL;
    }
    return devrt_range[k];
}

int scomm_devrt_has_ipc(const scomm_devrt_t *rt, char *why, size_t len)
{
    if ((rt == NULL) || (rt->kind > SCOMM_RT_HIP)) {
        snprintf(why, len, "no CUDA or HIP runtime");
        return 0;
    }
    if ((rt->ipc_get == NULL) || (rt->ipc_open == NULL) ||
        (rt->ipc_close == NULL)) {
        snprintf(why, len, "%s has no %sIpcGetMemHandle/OpenMemHandle/"
                 "CloseMemHandle", rt->path, rt->d->p);
        return 0;
    }
    return devrt_range_get(rt, why, len) != NULL;
}

int scomm_devrt_mem_range(const scomm_devrt_t *rt, const void *p,
                          void **base, size_t *n, char *err, size_t len)
{
    devrt_range_fn_t fn = devrt_range_get(rt, err, len);
    unsigned long long b = 0;
    int rc;

    *base = NULL;
    *n    = 0;
    if (fn == NULL) {
        return -1;
    }
    /* CUdeviceptr and hipDeviceptr_t are both one 64-bit word here */
    rc = fn(&b, n, p);
    if (rc != 0) {
        snprintf(err, len, "%s: error %d for %p",
                 (rt->kind == SCOMM_RT_HIP) ? "hipMemGetAddressRange"
                                            : "cuMemGetAddressRange_v2",
                 rc, p);
        return -1;
    }
    *base = (void *)(uintptr_t)b;
    return 0;
}

int scomm_devrt_ipc_get(const scomm_devrt_t *rt, scomm_devrt_ipc_handle_t *h,
                        void *base, char *err, size_t len)
{
    int rc = rt->ipc_get(h, base);

    return (rc == 0) ? 0 : devrt_fail(rt, "IpcGetMemHandle", rc, err, len);
}

int scomm_devrt_ipc_open(const scomm_devrt_t *rt, void **p,
                         const scomm_devrt_ipc_handle_t *h, char *err,
                         size_t len)
{
    int rc = rt->ipc_open(p, *h, DEVRT_IPC_LAZY_PEER);

    if (rc != 0) {
        *p = NULL;
        return devrt_fail(rt, "IpcOpenMemHandle", rc, err, len);
    }
    return 0;
}

void scomm_devrt_ipc_close(const scomm_devrt_t *rt, void *p)
{
    if (p != NULL) {
        (void)rt->ipc_close(p);
    }
}
