/*
 * nccl.c - the NCCL adapter (NVIDIA), also serving RCCL (AMD, and Hygon
 * DCU, whose stack ships RCCL): RCCL implements NCCL's C API under the
 * same names in librccl.so.1, so one adapter fills two ops tables that
 * differ in the library, the stream runtime and fp8.
 *
 * The declarations below are written from NCCL's documented C API (the
 * NCCL User Guide, "API" chapter, NCCL 2.14 to 2.23; fp8 types from
 * 2.24): ncclResult_t, ncclDataType_t and ncclRedOp_t are C enums (int
 * sized), ncclUniqueId is 128 opaque bytes passed by value, ncclConfig_t
 * is used in its 2.14 layout (size, magic, version, blocking), which
 * later versions accept by its version field.
 *
 * Invariants:
 *  1. The communicator is non-blocking (config.blocking = 0): every call
 *     may return ncclInProgress and its end is read with
 *     ncclCommGetAsyncError, so no NCCL call can hold the caller past
 *     scomm's deadline; on expiry backend.c calls ncclCommAbort.
 *  2. Every call goes on the stream it is given and returns; completion on
 *     the device is backend.c's business (events of the CUDA or HIP
 *     runtime, devrt.c), never a query of the stream here.
 *  3. Every status NCCL returns is translated by one table (nccl_status).
 */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- NCCL's C ABI, declared from its documentation ---- */

enum {
    NCCL_SUCCESS          = 0, /* ncclSuccess */
    NCCL_UNHANDLED_CUDA   = 1, /* ncclUnhandledCudaError */
    NCCL_SYSTEM_ERROR     = 2, /* ncclSystemError */
    NCCL_INTERNAL_ERROR   = 3, /* ncclInternalError */
    NCCL_INVALID_ARGUMENT = 4, /* ncclInvalidArgument */
    NCCL_INVALID_USAGE    = 5, /* ncclInvalidUsage */
    NCCL_REMOTE_ERROR     = 6, /* ncclRemoteError (2.12) */
    NCCL_IN_PROGRESS      = 7  /* ncclInProgress (2.14) */
};

#define NCCL_ID_BYTES     128
#define NCCL_CONFIG_MAGIC 0xcafebeefu
#define NCCL_FP8_VERSION  22400 /* ncclFloat8e4m3/e5m2 from NCCL 2.24 */

typedef struct {
    char internal[NCCL_ID_BYTES];
} nccl_id_t;

typedef struct {
    size_t       size;
    unsigned int magic;
    unsigned int version;
    int          blocking;
} nccl_config_t;

typedef void *nccl_comm_t;

typedef struct {
    int (*get_version)(int *version);
    int (*get_unique_id)(nccl_id_t *id);
    int (*comm_init_rank_config)(nccl_comm_t *comm, int nranks, nccl_id_t id,
                                 int rank, nccl_config_t *config);
    int (*comm_get_async_error)(nccl_comm_t comm, int *async_error);
    int (*comm_abort)(nccl_comm_t comm);
    int (*comm_destroy)(nccl_comm_t comm);
    int (*comm_finalize)(nccl_comm_t comm); /* optional (2.14) */
    const char *(*get_error_string)(int result);
    const char *(*get_last_error)(nccl_comm_t comm); /* optional */
    int (*all_reduce)(const void *s, void *r, size_t count, int dt, int op,
                      nccl_comm_t comm, void *stream);
    int (*broadcast)(const void *s, void *r, size_t count, int dt, int root,
                     nccl_comm_t comm, void *stream);
    int (*reduce)(const void *s, void *r, size_t count, int dt, int op,
                  int root, nccl_comm_t comm, void *stream);
    int (*all_gather)(const void *s, void *r, size_t sendcount, int dt,
                      nccl_comm_t comm, void *stream);
    int (*reduce_scatter)(const void *s, void *r, size_t recvcount, int dt,
                          int op, nccl_comm_t comm, void *stream);
    int (*send)(const void *s, size_t count, int dt, int peer,
                nccl_comm_t comm, void *stream);
    int (*recv)(void *r, size_t count, int dt, int peer, nccl_comm_t comm,
                void *stream);
    int (*group_start)(void);
    int (*group_end)(void);
    int is_rccl;
} nccl_sym_t;

static const char *const nccl_sonames[] = {"libnccl.so.2", "libnccl.so",
                                           NULL};
static const char *const rccl_sonames[] = {"librccl.so.1", "librccl.so",
                                           NULL};

#define NCCL_SYM(_v) ((nccl_sym_t *)(_v)->sym)

/* ---- translation tables ---- */

static scomm_status_t nccl_status(int code)
{
    switch (code) {
    case NCCL_SUCCESS:          return SCOMM_OK;
    case NCCL_IN_PROGRESS:      return SCOMM_INPROGRESS;
    case NCCL_UNHANDLED_CUDA:   return SCOMM_ERR_SYSTEM;
    case NCCL_SYSTEM_ERROR:     return SCOMM_ERR_SYSTEM;
    case NCCL_INTERNAL_ERROR:   return SCOMM_ERR_INTERNAL;
    case NCCL_INVALID_ARGUMENT: return SCOMM_ERR_INVALID_ARG;
    case NCCL_INVALID_USAGE:    return SCOMM_ERR_INVALID_USAGE;
    case NCCL_REMOTE_ERROR:     return SCOMM_ERR_PEER_LOST;
    default:                    return SCOMM_ERR_INTERNAL;
    }
}

/* "call: <NCCL's words> (nccl N): <ncclGetLastError>" into err. */
static scomm_status_t nccl_describe(const scomm_vendor_t *v,
                                    const char *call, int code, char *err,
                                    size_t len)
{
    nccl_sym_t *s = NCCL_SYM(v);
    scomm_status_t status = nccl_status(code);
    const char *last = NULL;

    if ((status == SCOMM_OK) || (status == SCOMM_INPROGRESS)) {
        return status;
    }
    if ((s->get_last_error != NULL) && (v->vcomm != NULL)) {
        last = s->get_last_error((nccl_comm_t)v->vcomm);
    }
    snprintf(err, len, "%s: %s (%s %d)%s%s", call, s->get_error_string(code),
             s->is_rccl ? "rccl" : "nccl", code,
             ((last != NULL) && (last[0] != '\0')) ? ": " : "",
             (last != NULL) ? last : "");
    return status;
}

/* Status of a call: OK/INPROGRESS pass; an error names the call. */
static scomm_status_t nccl_check(scomm_vendor_t *v, const char *call,
                                 int code)
{
    v->cur_call = call;
    return nccl_describe(v, call, code, v->err, sizeof(v->err));
}

static int nccl_dtype(const scomm_vendor_t *v, scomm_dtype_t dt, char *why,
                      size_t len)
{
    nccl_sym_t *s = NCCL_SYM(v);

    switch (dt) {
    case SCOMM_INT8:     return 0;  /* ncclInt8 */
    case SCOMM_UINT8:    return 1;  /* ncclUint8 */
    case SCOMM_INT32:    return 2;  /* ncclInt32 */
    case SCOMM_UINT32:   return 3;  /* ncclUint32 */
    case SCOMM_INT64:    return 4;  /* ncclInt64 */
    case SCOMM_UINT64:   return 5;  /* ncclUint64 */
    case SCOMM_FLOAT16:  return 6;  /* ncclFloat16 */
    case SCOMM_FLOAT32:  return 7;  /* ncclFloat32 */
    case SCOMM_FLOAT64:  return 8;  /* ncclFloat64 */
    case SCOMM_BFLOAT16: return 9;  /* ncclBfloat16 */
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2:
        if (s->is_rccl) {
            snprintf(why, len, "RCCL's fp8 types follow the device's fp8 "
                     "format (FNUZ on MI300), not OCP e4m3/e5m2");
            return -1;
        }
        if (v->version < NCCL_FP8_VERSION) {
            snprintf(why, len, "fp8 needs NCCL >= 2.24, this is %d.%d.%d",
                     v->version / 10000, (v->version / 100) % 100,
                     v->version % 100);
            return -1;
        }
        return (dt == SCOMM_FP8_E4M3) ? 10 : 11; /* ncclFloat8e4m3/e5m2 */
    default:
        snprintf(why, len, "not a dtype");
        return -1;
    }
}

static int nccl_redop(const scomm_vendor_t *v, scomm_redop_t op, char *why,
                      size_t len)
{
    (void)v;
    switch (op) {
    case SCOMM_SUM:  return 0; /* ncclSum */
    case SCOMM_PROD: return 1; /* ncclProd */
    case SCOMM_MAX:  return 2; /* ncclMax */
    case SCOMM_MIN:  return 3; /* ncclMin */
    case SCOMM_AVG:  return 4; /* ncclAvg (2.10) */
    default:
        snprintf(why, len, "not an op");
        return -1;
    }
}

/* ---- loading ---- */

#define NCCL_BIND(_field, _name, _opt)                                      \
    do {                                                                    \
        void *fn_;                                                          \
        if (scomm_backend_sym(dl, (_name), &fn_, (_opt), err, len) != 0) {  \
            return -1;                                                      \
        }                                                                   \
        memcpy(&s->_field, &fn_, sizeof(fn_));                              \
    } while (0)

static int nccl_bind_common(scomm_vendor_t *v, void *dl, char *err,
                            size_t len, int is_rccl)
{
    nccl_sym_t *s = NCCL_SYM(v);
    int code = 0;

    NCCL_BIND(get_version, "ncclGetVersion", 0);
    NCCL_BIND(get_unique_id, "ncclGetUniqueId", 0);
    NCCL_BIND(comm_init_rank_config, "ncclCommInitRankConfig", 0);
    NCCL_BIND(comm_get_async_error, "ncclCommGetAsyncError", 0);
    NCCL_BIND(comm_abort, "ncclCommAbort", 0);
    NCCL_BIND(comm_destroy, "ncclCommDestroy", 0);
    NCCL_BIND(comm_finalize, "ncclCommFinalize", 1);
    NCCL_BIND(get_error_string, "ncclGetErrorString", 0);
    NCCL_BIND(get_last_error, "ncclGetLastError", 1);
    NCCL_BIND(all_reduce, "ncclAllReduce", 0);
    NCCL_BIND(broadcast, "ncclBroadcast", 0);
    NCCL_BIND(reduce, "ncclReduce", 0);
    NCCL_BIND(all_gather, "ncclAllGather", 0);
    NCCL_BIND(reduce_scatter, "ncclReduceScatter", 0);
    NCCL_BIND(send, "ncclSend", 0);
    NCCL_BIND(recv, "ncclRecv", 0);
    NCCL_BIND(group_start, "ncclGroupStart", 0);
    NCCL_BIND(group_end, "ncclGroupEnd", 0);
    s->is_rccl = is_rccl;
    if (s->get_version(&code) != NCCL_SUCCESS) {
        code = 0;
    }
    /* Before 2.9 the code was MAJOR*1000 + MINOR*100 + PATCH. */
    if ((code > 0) && (code < 10000)) {
        code = (code / 1000) * 10000 + ((code % 1000) / 100) * 100 +
               code % 100;
    }
    v->version = code;
    return 0;
}

static int nccl_bind(scomm_vendor_t *v, void *dl, char *err, size_t len)
{
    return nccl_bind_common(v, dl, err, len, 0);
}

static int rccl_bind(scomm_vendor_t *v, void *dl, char *err, size_t len)
{
    return nccl_bind_common(v, dl, err, len, 1);
}

static void nccl_version_text(const scomm_vendor_t *v, char *buf, size_t len)
{
    if (v->version <= 0) {
        snprintf(buf, len, "unknown");
    } else {
        snprintf(buf, len, "%d.%d.%d", v->version / 10000,
                 (v->version / 100) % 100, v->version % 100);
    }
}

/* ---- operations ---- */

static scomm_status_t nccl_get_id(scomm_vendor_t *v, void *id)
{
    return nccl_check(v, "ncclGetUniqueId",
                      NCCL_SYM(v)->get_unique_id((nccl_id_t *)id));
}

static scomm_status_t nccl_comm_init(scomm_vendor_t *v, const void *id)
{
    nccl_sym_t *s = NCCL_SYM(v);
    nccl_config_t cfg;
    nccl_comm_t c = NULL;
    nccl_id_t uid;
    int code;

    memcpy(&uid, id, sizeof(uid));
    memset(&cfg, 0, sizeof(cfg));
    cfg.size     = sizeof(cfg);
    cfg.magic    = NCCL_CONFIG_MAGIC;
    cfg.version  = 21400; /* the 2.14 layout above */
    cfg.blocking = 0;
    code = s->comm_init_rank_config(&c, v->size, uid, v->rank, &cfg);
    v->vcomm = c;
    if ((code != NCCL_SUCCESS) && (code != NCCL_IN_PROGRESS)) {
        v->vcomm = NULL; /* nothing to abort */
    }
    return nccl_check(v, "ncclCommInitRankConfig", code);
}

static scomm_status_t nccl_coll(scomm_vendor_t *v, const scomm_coll_args_t *a,
                                int vdt, int vop, void *st)
{
    nccl_sym_t *s = NCCL_SYM(v);
    nccl_comm_t c = (nccl_comm_t)v->vcomm;

    switch (a->op) {
    case SCOMM_COLL_ALLREDUCE:
        return nccl_check(v, "ncclAllReduce",
                          s->all_reduce(a->sendbuf, a->recvbuf, a->count,
                                        vdt, vop, c, st));
    case SCOMM_COLL_ALLGATHER:
        return nccl_check(v, "ncclAllGather",
                          s->all_gather(a->sendbuf, a->recvbuf, a->count,
                                        vdt, c, st));
    case SCOMM_COLL_REDUCESCATTER:
        return nccl_check(v, "ncclReduceScatter",
                          s->reduce_scatter(a->sendbuf, a->recvbuf, a->count,
                                            vdt, vop, c, st));
    case SCOMM_COLL_BROADCAST:
        return nccl_check(v, "ncclBroadcast",
                          s->broadcast(a->recvbuf, a->recvbuf, a->count, vdt,
                                       a->root, c, st));
    case SCOMM_COLL_REDUCE:
        return nccl_check(v, "ncclReduce",
                          s->reduce(a->sendbuf, a->recvbuf, a->count, vdt,
                                    vop, a->root, c, st));
    default:
        return scomm_vendor_error(v, SCOMM_ERR_INTERNAL, "no NCCL call for "
                                  "%s", scomm_coll_op_name(a->op));
    }
}

static scomm_status_t nccl_p2p(scomm_vendor_t *v, int is_send, void *buf,
                               size_t count, int vdt, int peer, void *st)
{
    nccl_sym_t *s = NCCL_SYM(v);
    nccl_comm_t c = (nccl_comm_t)v->vcomm;

    if (is_send) {
        return nccl_check(v, "ncclSend",
                          s->send(buf, count, vdt, peer, c, st));
    }
    return nccl_check(v, "ncclRecv",
                      s->recv(buf, count, vdt, peer, c, st));
}

static scomm_status_t nccl_group(scomm_vendor_t *v, int start)
{
    nccl_sym_t *s = NCCL_SYM(v);

    if (start) {
        return nccl_check(v, "ncclGroupStart", s->group_start());
    }
    return nccl_check(v, "ncclGroupEnd", s->group_end());
}

static scomm_status_t nccl_async(scomm_vendor_t *v, const char *what,
                                 char *err, size_t len)
{
    nccl_sym_t *s = NCCL_SYM(v);
    int async = NCCL_SUCCESS, code;

    code = s->comm_get_async_error((nccl_comm_t)v->vcomm, &async);
    if (code != NCCL_SUCCESS) {
        return nccl_describe(v, "ncclCommGetAsyncError", code, err, len);
    }
    return nccl_describe(v, what, async, err, len);
}

static void nccl_abort(scomm_vendor_t *v)
{
    if (v->vcomm != NULL) {
        NCCL_SYM(v)->comm_abort((nccl_comm_t)v->vcomm);
        v->vcomm = NULL;
    }
}

static void nccl_destroy(scomm_vendor_t *v)
{
    nccl_sym_t *s = NCCL_SYM(v);
    nccl_comm_t c = (nccl_comm_t)v->vcomm;
    int async = NCCL_SUCCESS, spins = 0;

    if (c == NULL) {
        return;
    }
    /* Finalize flushes outstanding work; on a non-blocking communicator
     * it may be in progress: poll briefly, then abort instead of hanging
     * in destroy. */
    if ((s->comm_finalize != NULL) &&
        (s->comm_finalize(c) == NCCL_IN_PROGRESS)) {
        while ((s->comm_get_async_error(c, &async) == NCCL_SUCCESS) &&
               (async == NCCL_IN_PROGRESS) && (spins++ < 10000)) {
            struct timespec ts = {0, 100000};

            nanosleep(&ts, NULL);
        }
        if (async != NCCL_SUCCESS) {
            s->comm_abort(c);
            v->vcomm = NULL;
            return;
        }
    }
    s->comm_destroy(c);
    v->vcomm = NULL;
}

#define NCCL_COLLS                                                          \
    (SCOMM_VENDOR_OP(SCOMM_COLL_ALLREDUCE) |                                \
     SCOMM_VENDOR_OP(SCOMM_COLL_ALLGATHER) |                                \
     SCOMM_VENDOR_OP(SCOMM_COLL_REDUCESCATTER) |                            \
     SCOMM_VENDOR_OP(SCOMM_COLL_BROADCAST) |                                \
     SCOMM_VENDOR_OP(SCOMM_COLL_REDUCE))

const scomm_vendor_ops_t scomm_vendor_nccl_ops = {
    .name         = "nccl",
    .lib_env      = "SCOMM_NCCL_LIBRARY",
    .sonames      = nccl_sonames,
    .install      = "install NCCL >= 2.14 (e.g. apt install libnccl2, or "
                    "pip install nvidia-nccl-cu13 (or -cu12) and add its lib "
                    "directory to LD_LIBRARY_PATH)",
    .rt_kind      = SCOMM_RT_CUDA,
    .id_bytes     = NCCL_ID_BYTES,
    .sym_bytes    = sizeof(nccl_sym_t),
    .colls        = NCCL_COLLS,
    .bind         = nccl_bind,
    .version_text = nccl_version_text,
    .dtype        = nccl_dtype,
    .redop        = nccl_redop,
    .get_id       = nccl_get_id,
    .comm_init    = nccl_comm_init,
    .coll         = nccl_coll,
    .p2p          = nccl_p2p,
    .group        = nccl_group,
    .async        = nccl_async,
    .abort        = nccl_abort,
    .destroy      = nccl_destroy,
};

const scomm_vendor_ops_t scomm_vendor_rccl_ops = {
    .name         = "rccl",
    .lib_env      = "SCOMM_RCCL_LIBRARY",
    .sonames      = rccl_sonames,
    .install      = "install ROCm's RCCL (e.g. apt install rccl, or the "
                    "Hygon DTK) and add its lib directory to "
                    "LD_LIBRARY_PATH",
    .rt_kind      = SCOMM_RT_HIP,
    .id_bytes     = NCCL_ID_BYTES,
    .sym_bytes    = sizeof(nccl_sym_t),
    .colls        = NCCL_COLLS,
    .bind         = rccl_bind,
    .version_text = nccl_version_text,
    .dtype        = nccl_dtype,
    .redop        = nccl_redop,
    .get_id       = nccl_get_id,
    .comm_init    = nccl_comm_init,
    .coll         = nccl_coll,
    .p2p          = nccl_p2p,
    .group        = nccl_group,
    .async        = nccl_async,
    .abort        = nccl_abort,
    .destroy      = nccl_destroy,
};
