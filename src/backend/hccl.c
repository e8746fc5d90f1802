/*
 * hccl.c - the HCCL adapter (Huawei Ascend, libhccl.so of CANN).
 *
 * Declarations written from the CANN documentation of hccl.h /
 * hccl_types.h (CANN 7.0 to 8.0, "HCCL API (C)"): HcclResult, HcclDataType
 * and HcclReduceOp are C enums, HcclRootInfo is 4108 opaque bytes,
 * HcclComm and aclrtStream are opaque pointers, counts are uint64_t and
 * ranks uint32_t.
 *
 * Invariants:
 *  1. HCCL enqueues on an aclrtStream and returns; its communicator
 *     creation (HcclCommInitRootInfo) blocks inside HCCL with HCCL's own
 *     timeout (HCCL_CONNECT_TIMEOUT), which scomm cannot shorten.
 *  2. A call goes on the aclrtStream it is given and returns; its end on
 *     the device is an ACL event (libascendcl, devrt.c) recorded by
 *     backend.c; HCCL's own failures are HcclGetCommAsyncError's (CANN >=
 *     8.0; without it, only the events and the deadline tell).
 *  3. HCCL has no public abort: a failed or timed-out communicator is
 *     released with HcclCommDestroy.
 *  4. No avg, no fp8 (the fp8 codes of CANN 8.x cannot be gated on a
 *     version call, HCCL has none), no group call: gather, scatter and
 *     all_to_allv are SCOMM_ERR_UNSUPPORTED, and each HcclSend/HcclRecv is
 *     its own launch (a send and its receive must not queue behind each
 *     other on one stream).
 */
#include "backend.h"

#include <stdio.h>
#include <string.h>

#define HCCL_ROOT_INFO_BYTES 4108

typedef void *hccl_comm_t;

typedef struct {
    int (*get_root_info)(void *root_info);
    int (*comm_init_root_info)(uint32_t nranks, const void *root_info,
                               uint32_t rank, hccl_comm_t *comm);
    int (*all_reduce)(void *s, void *r, uint64_t count, int dt, int op,
                      hccl_comm_t comm, void *stream);
    int (*broadcast)(void *buf, uint64_t count, int dt, uint32_t root,
                     hccl_comm_t comm, void *stream);
    int (*reduce)(void *s, void *r, uint64_t count, int dt, int op,
                  uint32_t root, hccl_comm_t comm, void *stream);
    int (*all_gather)(void *s, void *r, uint64_t sendcount, int dt,
                      hccl_comm_t comm, void *stream);
    int (*reduce_scatter)(void *s, void *r, uint64_t recvcount, int dt,
                          int op, hccl_comm_t comm, void *stream);
    int (*all_to_all)(const void *s, uint64_t sendcount, int sdt,
                      const void *r, uint64_t recvcount, int rdt,
                      hccl_comm_t comm, void *stream); /* optional */
    int (*send)(void *s, uint64_t count, int dt, uint32_t dst,
                hccl_comm_t comm, void *stream);
    int (*recv)(void *r, uint64_t count, int dt, uint32_t src,
                hccl_comm_t comm, void *stream);
    int (*comm_destroy)(hccl_comm_t comm);
    int (*get_async_error)(hccl_comm_t comm, int *err);  /* optional */
    const char *(*get_error_string)(int code);           /* optional */
} hccl_sym_t;

#define HCCL_SYM(_v) ((hccl_sym_t *)(_v)->sym)

static const char *const hccl_sonames[] = {"libhccl.so", NULL};

/* HcclResult, in order from HCCL_SUCCESS (0). */
static const struct {
    const char    *name;
    scomm_status_t status;
} hccl_codes[] = {
    {"HCCL_SUCCESS", SCOMM_OK},
    {"HCCL_E_PARA", SCOMM_ERR_INVALID_ARG},
    {"HCCL_E_PTR", SCOMM_ERR_INVALID_ARG},
    {"HCCL_E_MEMORY", SCOMM_ERR_NO_MEMORY},
    {"HCCL_E_INTERNAL", SCOMM_ERR_INTERNAL},
    {"HCCL_E_NOT_SUPPORT", SCOMM_ERR_UNSUPPORTED},
    {"HCCL_E_NOT_FOUND", SCOMM_ERR_INTERNAL},
    {"HCCL_E_UNAVAIL", SCOMM_ERR_NO_RESOURCE},
    {"HCCL_E_SYSCALL", SCOMM_ERR_SYSTEM},
    {"HCCL_E_TIMEOUT", SCOMM_ERR_TIMED_OUT},
    {"HCCL_E_OPEN_FILE_FAILURE", SCOMM_ERR_SYSTEM},
    {"HCCL_E_TCP_CONNECT", SCOMM_ERR_PEER_LOST},
    {"HCCL_E_ROCE_CONNECT", SCOMM_ERR_PEER_LOST},
    {"HCCL_E_TCP_TRANSFER", SCOMM_ERR_PEER_LOST},
    {"HCCL_E_ROCE_TRANSFER", SCOMM_ERR_PEER_LOST},
    {"HCCL_E_RUNTIME", SCOMM_ERR_SYSTEM},
    {"HCCL_E_DRV", SCOMM_ERR_SYSTEM},
    {"HCCL_E_PROFILING", SCOMM_ERR_INTERNAL},
    {"HCCL_E_CCE", SCOMM_ERR_SYSTEM},
    {"HCCL_E_NETWORK", SCOMM_ERR_PEER_LOST},
    {"HCCL_E_AGAIN", SCOMM_INPROGRESS},
    {"HCCL_E_REMOTE", SCOMM_ERR_PEER_LOST},
    {"HCCL_E_SUSPENDING", SCOMM_ERR_ABORTED},
};

static scomm_status_t hccl_describe(const scomm_vendor_t *v,
                                    const char *call, int code, char *err,
                                    size_t len)
{
    hccl_sym_t *s = HCCL_SYM(v);
    scomm_status_t status = SCOMM_ERR_INTERNAL;
    const char *name = "unknown HcclResult";

    if ((code >= 0) && (code < (int)SCOMM_ARRAY_SIZE(hccl_codes))) {
        status = hccl_codes[code].status;
        name   = hccl_codes[code].name;
    }
    if ((status == SCOMM_OK) || (status == SCOMM_INPROGRESS)) {
        return status;
    }
    if (s->get_error_string != NULL) {
        name = s->get_error_string(code);
    }
    snprintf(err, len, "%s: %s (hccl %d)", call, name, code);
    return status;
}

static scomm_status_t hccl_check(scomm_vendor_t *v, const char *call,
                                 int code)
{
    v->cur_call = call;
    return hccl_describe(v, call, code, v->err, sizeof(v->err));
}

static int hccl_dtype(const scomm_vendor_t *v, scomm_dtype_t dt, char *why,
                      size_t len)
{
    (void)v;
    switch (dt) {
    case SCOMM_INT8:     return 0;  /* HCCL_DATA_TYPE_INT8 */
    case SCOMM_INT32:    return 2;  /* HCCL_DATA_TYPE_INT32 */
    case SCOMM_FLOAT16:  return 3;  /* HCCL_DATA_TYPE_FP16 */
    case SCOMM_FLOAT32:  return 4;  /* HCCL_DATA_TYPE_FP32 */
    case SCOMM_INT64:    return 5;  /* HCCL_DATA_TYPE_INT64 */
    case SCOMM_UINT64:   return 6;  /* HCCL_DATA_TYPE_UINT64 */
    case SCOMM_UINT8:    return 7;  /* HCCL_DATA_TYPE_UINT8 */
    case SCOMM_UINT32:   return 9;  /* HCCL_DATA_TYPE_UINT32 */
    case SCOMM_FLOAT64:  return 10; /* HCCL_DATA_TYPE_FP64 */
    case SCOMM_BFLOAT16: return 11; /* HCCL_DATA_TYPE_BFP16 */
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2:
        snprintf(why, len, "fp8 is only in recent CANN and HCCL has no "
                 "version call to check for it");
        return -1;
    default:
        snprintf(why, len, "not a dtype");
        return -1;
    }
}

static int hccl_redop(const scomm_vendor_t *v, scomm_redop_t op, char *why,
                      size_t len)
{
    (void)v;
    switch (op) {
    case SCOMM_SUM:  return 0; /* HCCL_REDUCE_SUM */
    case SCOMM_PROD: return 1; /* HCCL_REDUCE_PROD */
    case SCOMM_MAX:  return 2; /* HCCL_REDUCE_MAX */
    case SCOMM_MIN:  return 3; /* HCCL_REDUCE_MIN */
    case SCOMM_AVG:
        snprintf(why, len, "HcclReduceOp has no average (use sum and "
                 "divide)");
        return -1;
    default:
        snprintf(why, len, "not an op");
        return -1;
    }
}

#define HCCL_BIND(_field, _name, _opt)                                      \
    do {                                                                    \
        void *fn_;                                                          \
        if (scomm_backend_sym(dl, (_name), &fn_, (_opt), err, len) != 0) {  \
            return -1;                                                      \
        }                                                                   \
        memcpy(&s->_field, &fn_, sizeof(fn_));                              \
    } while (0)

static int hccl_bind(scomm_vendor_t *v, void *dl, char *err, size_t len)
{
    hccl_sym_t *s = HCCL_SYM(v);

    HCCL_BIND(get_root_info, "HcclGetRootInfo", 0);
    HCCL_BIND(comm_init_root_info, "HcclCommInitRootInfo", 0);
    HCCL_BIND(all_reduce, "HcclAllReduce", 0);
    HCCL_BIND(broadcast, "HcclBroadcast", 0);
    HCCL_BIND(reduce, "HcclReduce", 0);
    HCCL_BIND(all_gather, "HcclAllGather", 0);
    HCCL_BIND(reduce_scatter, "HcclReduceScatter", 0);
    HCCL_BIND(all_to_all, "HcclAlltoAll", 1);
    HCCL_BIND(send, "HcclSend", 0);
    HCCL_BIND(recv, "HcclRecv", 0);
    HCCL_BIND(comm_destroy, "HcclCommDestroy", 0);
    HCCL_BIND(get_async_error, "HcclGetCommAsyncError", 1);
    HCCL_BIND(get_error_string, "HcclGetErrorString", 1);
    v->version = 0; /* HCCL has no version call */
    return 0;
}

static void hccl_version_text(const scomm_vendor_t *v, char *buf, size_t len)
{
    (void)v;
    snprintf(buf, len, "unknown");
}

static scomm_status_t hccl_get_id(scomm_vendor_t *v, void *id)
{
    return hccl_check(v, "HcclGetRootInfo", HCCL_SYM(v)->get_root_info(id));
}

static scomm_status_t hccl_comm_init(scomm_vendor_t *v, const void *id)
{
    hccl_comm_t c = NULL;
    int code;

    code = HCCL_SYM(v)->comm_init_root_info((uint32_t)v->size, id,
                                            (uint32_t)v->rank, &c);
    v->vcomm = (code == 0) ? c : NULL;
    return hccl_check(v, "HcclCommInitRootInfo", code);
}

static scomm_status_t hccl_coll(scomm_vendor_t *v, const scomm_coll_args_t *a,
                                int vdt, int vop, void *st)
{
    hccl_sym_t *s = HCCL_SYM(v);
    hccl_comm_t c = (hccl_comm_t)v->vcomm;
    void *sb = (void *)a->sendbuf;

    switch (a->op) {
    case SCOMM_COLL_ALLREDUCE:
        return hccl_check(v, "HcclAllReduce",
                          s->all_reduce(sb, a->recvbuf, a->count, vdt, vop, c,
                                        st));
    case SCOMM_COLL_ALLGATHER:
        return hccl_check(v, "HcclAllGather",
                          s->all_gather(sb, a->recvbuf, a->count, vdt, c,
                                        st));
    case SCOMM_COLL_REDUCESCATTER:
        return hccl_check(v, "HcclReduceScatter",
                          s->reduce_scatter(sb, a->recvbuf, a->count, vdt,
                                            vop, c, st));
    case SCOMM_COLL_BROADCAST:
        return hccl_check(v, "HcclBroadcast",
                          s->broadcast(a->recvbuf, a->count, vdt,
                                       (uint32_t)a->root, c, st));
    case SCOMM_COLL_REDUCE:
        return hccl_check(v, "HcclReduce",
                          s->reduce(sb, a->recvbuf, a->count, vdt, vop,
                                    (uint32_t)a->root, c, st));
    case SCOMM_COLL_ALLTOALL:
        if (s->all_to_all == NULL) {
            return scomm_vendor_error(v, SCOMM_ERR_UNSUPPORTED,
                                      "this libhccl.so has no "
                                      "HcclAlltoAll");
        }
        return hccl_check(v, "HcclAlltoAll",
                          s->all_to_all(sb, a->count, vdt, a->recvbuf,
                                        a->count, vdt, c, st));
    default:
        return scomm_vendor_error(v, SCOMM_ERR_INTERNAL, "no HCCL call for "
                                  "%s", scomm_coll_op_name(a->op));
    }
}

static scomm_status_t hccl_p2p(scomm_vendor_t *v, int is_send, void *buf,
                               size_t count, int vdt, int peer, void *st)
{
    hccl_sym_t *s = HCCL_SYM(v);
    hccl_comm_t c = (hccl_comm_t)v->vcomm;

    if (is_send) {
        return hccl_check(v, "HcclSend", s->send(buf, count, vdt,
                                                 (uint32_t)peer, c,
                                                 st));
    }
    return hccl_check(v, "HcclRecv", s->recv(buf, count, vdt, (uint32_t)peer,
                                             c, st));
}

static scomm_status_t hccl_async(scomm_vendor_t *v, const char *what,
                                 char *err, size_t len)
{
    hccl_sym_t *s = HCCL_SYM(v);
    int async = 0, code;

    if ((s->get_async_error == NULL) || (v->vcomm == NULL)) {
        return SCOMM_OK;
    }
    code = s->get_async_error((hccl_comm_t)v->vcomm, &async);
    if (code != 0) {
        return hccl_describe(v, "HcclGetCommAsyncError", code, err, len);
    }
    return hccl_describe(v, what, async, err, len);
}

static void hccl_release(scomm_vendor_t *v)
{
    if (v->vcomm != NULL) {
        HCCL_SYM(v)->comm_destroy((hccl_comm_t)v->vcomm);
        v->vcomm = NULL;
    }
}

const scomm_vendor_ops_t scomm_vendor_hccl_ops = {
    .name         = "hccl",
    .lib_env      = "SCOMM_HCCL_LIBRARY",
    .sonames      = hccl_sonames,
    .install      = "install the Ascend CANN toolkit and source its "
                    "set_env.sh (it puts libhccl.so on LD_LIBRARY_PATH)",
    .rt_kind      = SCOMM_RT_ACL,
    .id_bytes     = HCCL_ROOT_INFO_BYTES,
    .sym_bytes    = sizeof(hccl_sym_t),
    .colls        = SCOMM_VENDOR_OP(SCOMM_COLL_ALLREDUCE) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_ALLGATHER) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_REDUCESCATTER) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_BROADCAST) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_REDUCE) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_ALLTOALL),
    .bind         = hccl_bind,
    .version_text = hccl_version_text,
    .dtype        = hccl_dtype,
    .redop        = hccl_redop,
    .get_id       = hccl_get_id,
    .comm_init    = hccl_comm_init,
    .coll         = hccl_coll,
    .p2p          = hccl_p2p,
    .group        = NULL,
    .async        = hccl_async,
    .abort        = hccl_release,
    .destroy      = hccl_release,
};
