/*
 * cncl.c - the CNCL adapter (Cambricon MLU, libcncl.so of the Cambricon
 * Neuware SDK).
 *
 * Declarations written from the documentation of cncl.h (CNCL 1.x, the
 * "CNCL Developer Guide", API of CNCL 1.25): cnclResult_t, cnclDataType_t
 * and cnclReduceOp_t are C enums with the hexadecimal values listed
 * below, cnclCliqueId is 128 bytes of data followed by a 64-bit hash
 * (136 bytes), cnclComm_t and cnrtQueue_t are opaque pointers.
 *
 * Invariants:
 *  1. One communicator per process: cnclInitComms(&comm, 1, &device,
 *     &rank, nranks, &clique_id), device = the rank's local rank.
 *  2. A call goes on the cnrtQueue_t it is given and returns; its end on
 *     the device is a CNRT notifier (libcnrt, devrt.c) recorded by
 *     backend.c; CNCL's own failures are cnclGetCommAsyncError's
 *     (CNCL_RET_ASYNC_IN_PROGRESS: a call still being taken).
 *  3. No avg, no float64, no fp8; gather, scatter and all_to_allv are
 *     built from grouped cnclSend/cnclRecv.
 */
#include "backend.h"

#include <stdio.h>
#include <string.h>

#define CNCL_CLIQUE_BYTES (128 + 8)

enum {
    CNCL_SUCCESS           = 0x00,
    CNCL_ASYNC_IN_PROGRESS = 0x06
};

typedef void *cncl_comm_t;

typedef struct {
    int (*get_clique_id)(void *clique);
    int (*init_comms)(cncl_comm_t *comms, int ncomm, const int *devs,
                      const int *ranks, int nrank, const void *clique);
    int (*free_comm)(cncl_comm_t comm);
    int (*abort_comm)(cncl_comm_t comm);
    int (*all_reduce)(const void *s, void *r, size_t count, int dt, int op,
                      cncl_comm_t comm, void *queue);
    int (*broadcast)(const void *s, void *r, size_t count, int dt, int root,
                     cncl_comm_t comm, void *queue);
    int (*reduce)(const void *s, void *r, size_t count, int dt, int op,
                  int root, cncl_comm_t comm, void *queue);
    int (*all_gather)(const void *s, void *r, size_t count, int dt,
                      cncl_comm_t comm, void *queue);
    int (*reduce_scatter)(const void *s, void *r, size_t count, int dt,
                          int op, cncl_comm_t comm, void *queue);
    int (*all_to_all)(const void *s, void *r, size_t count, int dt,
                      cncl_comm_t comm, void *queue);
    int (*send)(void *buf, size_t count, int dt, int dst, cncl_comm_t comm,
                void *queue);
    int (*recv)(void *buf, size_t count, int dt, int src, cncl_comm_t comm,
                void *queue);
    int (*group_start)(void);
    int (*group_end)(void);
    int (*get_async_error)(cncl_comm_t comm);
    const char *(*get_error_str)(int code);
    int (*get_lib_version)(int *major, int *minor, int *patch);
} cncl_sym_t;

#define CNCL_SYM(_v) ((cncl_sym_t *)(_v)->sym)

static const char *const cncl_sonames[] = {"libcncl.so", NULL};

/* cnclResult_t: the low nibble is the family, the high one the detail. */
static scomm_status_t cncl_status(int code)
{
    switch (code) {
    case 0x00: return SCOMM_OK;
    case 0x06: return SCOMM_INPROGRESS;      /* ASYNC_IN_PROGRESS */
    case 0x11: return SCOMM_ERR_UNSUPPORTED; /* ERR_UNSUPPORTED */
    case 0x21: return SCOMM_ERR_INVALID_ARG; /* ERR_NULL_POINTER */
    case 0x61: return SCOMM_ERR_INVALID_USAGE; /* ERR_NOT_INIT */
    case 0x71: return SCOMM_ERR_INVALID_USAGE; /* ERR_REINIT */
    case 0x12: return SCOMM_ERR_NO_MEMORY;   /* ERR_SYS_MALLOC */
    case 0x22: return SCOMM_ERR_PEER_LOST;   /* ERR_SYS_SOCKET */
    case 0x32: return SCOMM_ERR_PEER_LOST;   /* ERR_SYS_IBV */
    case 0x33: return SCOMM_ERR_NO_MEMORY;   /* ERR_CNRT_MALLOC */
    case 0x07: return SCOMM_ERR_INVALID_ARG; /* ERR_ARGUMENTS */
    case 0x08: return SCOMM_ERR_NO_MEMORY;   /* ERR_MLU_ALLOCATE */
    case 0x18: return SCOMM_ERR_NO_MEMORY;   /* ERR_MLU_DEALLOCATE */
    case 0x09: return SCOMM_ERR_NO_RESOURCE; /* IB_RECV_NOTREADY */
    default:
        break;
    }
    switch (code & 0x0f) {
    case 0x01: return SCOMM_ERR_INTERNAL; /* internal family */
    case 0x02: return SCOMM_ERR_SYSTEM;   /* system family */
    case 0x03: return SCOMM_ERR_SYSTEM;   /* CNRT family */
    case 0x04: return SCOMM_ERR_SYSTEM;   /* CNDev family */
    case 0x05: return SCOMM_ERR_SYSTEM;   /* in-network compute family */
    case 0x06: return SCOMM_ERR_SYSTEM;   /* ASYNC_ERROR, ASYNC_UNKNOWN */
    default:   return SCOMM_ERR_INTERNAL;
    }
}

static scomm_status_t cncl_describe(const scomm_vendor_t *v,
                                    const char *call, int code, char *err,
                                    size_t len)
{
    scomm_status_t status = cncl_status(code);

    if ((status == SCOMM_OK) || (status == SCOMM_INPROGRESS)) {
        return status;
    }
    snprintf(err, len, "%s: %s (cncl %#x)", call,
             CNCL_SYM(v)->get_error_str(code), code);
    return status;
}

static scomm_status_t cncl_check(scomm_vendor_t *v, const char *call,
                                 int code)
{
    v->cur_call = call;
    return cncl_describe(v, call, code, v->err, sizeof(v->err));
}

static int cncl_dtype(const scomm_vendor_t *v, scomm_dtype_t dt, char *why,
                      size_t len)
{
    (void)v;
    switch (dt) {
    case SCOMM_FLOAT16:  return 0x10; /* cnclFloat16 */
    case SCOMM_BFLOAT16: return 0x11; /* cnclBfloat16 */
    case SCOMM_FLOAT32:  return 0x12; /* cnclFloat32 */
    case SCOMM_INT8:     return 0x20; /* cnclInt8 */
    case SCOMM_INT32:    return 0x22; /* cnclInt32 */
    case SCOMM_INT64:    return 0x23; /* cnclInt64 */
    case SCOMM_UINT8:    return 0x30; /* cnclUint8 */
    case SCOMM_UINT32:   return 0x32; /* cnclUint32 */
    case SCOMM_UINT64:   return 0x33; /* cnclUint64 */
    case SCOMM_FLOAT64:
        snprintf(why, len, "cnclDataType_t has no 64-bit float");
        return -1;
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2:
        snprintf(why, len, "cnclDataType_t has no fp8");
        return -1;
    default:
        snprintf(why, len, "not a dtype");
        return -1;
    }
}

static int cncl_redop(const scomm_vendor_t *v, scomm_redop_t op, char *why,
                      size_t len)
{
    (void)v;
    switch (op) {
    case SCOMM_SUM:  return 0; /* cnclSum */
    case SCOMM_PROD: return 1; /* cnclProd */
    case SCOMM_MAX:  return 2; /* cnclMax */
    case SCOMM_MIN:  return 3; /* cnclMin */
    case SCOMM_AVG:
        snprintf(why, len, "cnclReduceOp_t has no average");
        return -1;
    default:
        snprintf(why, len, "not an op");
        return -1;
    }
}

#define CNCL_BIND(_field, _name)                                            \
    do {                                                                    \
        void *fn_;                                                          \
        if (scomm_backend_sym(dl, (_name), &fn_, 0, err, len) != 0) {       \
            return -1;                                                      \
        }                                                                   \
        memcpy(&s->_field, &fn_, sizeof(fn_));                              \
    } while (0)

static int cncl_bind(scomm_vendor_t *v, void *dl, char *err, size_t len)
{
    cncl_sym_t *s = CNCL_SYM(v);
    int maj = 0, min = 0, pat = 0;

    CNCL_BIND(get_clique_id, "cnclGetCliqueId");
    CNCL_BIND(init_comms, "cnclInitComms");
    CNCL_BIND(free_comm, "cnclFreeComm");
    CNCL_BIND(abort_comm, "cnclAbortComm");
    CNCL_BIND(all_reduce, "cnclAllReduce");
    CNCL_BIND(broadcast, "cnclBroadcast");
    CNCL_BIND(reduce, "cnclReduce");
    CNCL_BIND(all_gather, "cnclAllGather");
    CNCL_BIND(reduce_scatter, "cnclReduceScatter");
    CNCL_BIND(all_to_all, "cnclAlltoAll");
    CNCL_BIND(send, "cnclSend");
    CNCL_BIND(recv, "cnclRecv");
    CNCL_BIND(group_start, "cnclGroupStart");
    CNCL_BIND(group_end, "cnclGroupEnd");
    CNCL_BIND(get_async_error, "cnclGetCommAsyncError");
    CNCL_BIND(get_error_str, "cnclGetErrorStr");
    CNCL_BIND(get_lib_version, "cnclGetLibVersion");
    v->version = 0;
    if (s->get_lib_version(&maj, &min, &pat) == CNCL_SUCCESS) {
        v->version = maj * 10000 + min * 100 + pat;
    }
    return 0;
}

static void cncl_version_text(const scomm_vendor_t *v, char *buf, size_t len)
{
    if (v->version <= 0) {
        snprintf(buf, len, "unknown");
    } else {
        snprintf(buf, len, "%d.%d.%d", v->version / 10000,
                 (v->version / 100) % 100, v->version % 100);
    }
}

static scomm_status_t cncl_get_id(scomm_vendor_t *v, void *id)
{
    return cncl_check(v, "cnclGetCliqueId", CNCL_SYM(v)->get_clique_id(id));
}

static scomm_status_t cncl_comm_init(scomm_vendor_t *v, const void *id)
{
    cncl_comm_t c = NULL;
    int code;

    code = CNCL_SYM(v)->init_comms(&c, 1, &v->device, &v->rank, v->size, id);
    v->vcomm = (code == CNCL_SUCCESS) ? c : NULL;
    return cncl_check(v, "cnclInitComms", code);
}

static scomm_status_t cncl_coll(scomm_vendor_t *v, const scomm_coll_args_t *a,
                                int vdt, int vop, void *st)
{
    cncl_sym_t *s = CNCL_SYM(v);
    cncl_comm_t c = (cncl_comm_t)v->vcomm;

    switch (a->op) {
    case SCOMM_COLL_ALLREDUCE:
        return cncl_check(v, "cnclAllReduce",
                          s->all_reduce(a->sendbuf, a->recvbuf, a->count,
                                        vdt, vop, c, st));
    case SCOMM_COLL_ALLGATHER:
        return cncl_check(v, "cnclAllGather",
                          s->all_gather(a->sendbuf, a->recvbuf, a->count,
                                        vdt, c, st));
    case SCOMM_COLL_REDUCESCATTER:
        return cncl_check(v, "cnclReduceScatter",
                          s->reduce_scatter(a->sendbuf, a->recvbuf, a->count,
                                            vdt, vop, c, st));
    case SCOMM_COLL_BROADCAST:
        return cncl_check(v, "cnclBroadcast",
                          s->broadcast(a->recvbuf, a->recvbuf, a->count, vdt,
                                       a->root, c, st));
    case SCOMM_COLL_REDUCE:
        return cncl_check(v, "cnclReduce",
                          s->reduce(a->sendbuf, a->recvbuf, a->count, vdt,
                                    vop, a->root, c, st));
    case SCOMM_COLL_ALLTOALL:
        return cncl_check(v, "cnclAlltoAll",
                          s->all_to_all(a->sendbuf, a->recvbuf, a->count,
                                        vdt, c, st));
    default:
        return scomm_vendor_error(v, SCOMM_ERR_INTERNAL, "no CNCL call for "
                                  "%s", scomm_coll_op_name(a->op));
    }
}

static scomm_status_t cncl_p2p(scomm_vendor_t *v, int is_send, void *buf,
                               size_t count, int vdt, int peer, void *st)
{
    cncl_sym_t *s = CNCL_SYM(v);
    cncl_comm_t c = (cncl_comm_t)v->vcomm;

    if (is_send) {
        return cncl_check(v, "cnclSend",
                          s->send(buf, count, vdt, peer, c, st));
    }
    return cncl_check(v, "cnclRecv",
                      s->recv(buf, count, vdt, peer, c, st));
}

static scomm_status_t cncl_group(scomm_vendor_t *v, int start)
{
    cncl_sym_t *s = CNCL_SYM(v);

    return start ? cncl_check(v, "cnclGroupStart", s->group_start())
                 : cncl_check(v, "cnclGroupEnd", s->group_end());
}

static scomm_status_t cncl_async(scomm_vendor_t *v, const char *what,
                                 char *err, size_t len)
{
    if (v->vcomm == NULL) {
        return SCOMM_OK;
    }
    return cncl_describe(v, what,
                         CNCL_SYM(v)->get_async_error((cncl_comm_t)v->vcomm),
                         err, len);
}

static void cncl_abort(scomm_vendor_t *v)
{
    if (v->vcomm != NULL) {
        CNCL_SYM(v)->abort_comm((cncl_comm_t)v->vcomm);
        v->vcomm = NULL;
    }
}

static void cncl_destroy(scomm_vendor_t *v)
{
    if (v->vcomm != NULL) {
        CNCL_SYM(v)->free_comm((cncl_comm_t)v->vcomm);
        v->vcomm = NULL;
    }
}

const scomm_vendor_ops_t scomm_vendor_cncl_ops = {
    .name         = "cncl",
    .lib_env      = "SCOMM_CNCL_LIBRARY",
    .sonames      = cncl_sonames,
    .install      = "install Cambricon Neuware (CNToolkit and CNCL) and add "
                    "$NEUWARE_HOME/lib64 to LD_LIBRARY_PATH",
    .rt_kind      = SCOMM_RT_CNRT,
    .id_bytes     = CNCL_CLIQUE_BYTES,
    .sym_bytes    = sizeof(cncl_sym_t),
    .colls        = SCOMM_VENDOR_OP(SCOMM_COLL_ALLREDUCE) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_ALLGATHER) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_REDUCESCATTER) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_BROADCAST) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_REDUCE) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_ALLTOALL),
    .bind         = cncl_bind,
    .version_text = cncl_version_text,
    .dtype        = cncl_dtype,
    .redop        = cncl_redop,
    .get_id       = cncl_get_id,
    .comm_init    = cncl_comm_init,
    .coll         = cncl_coll,
    .p2p          = cncl_p2p,
    .group        = cncl_group,
    .async        = cncl_async,
    .abort        = cncl_abort,
    .destroy      = cncl_destroy,
};
