/*
 * bkcl.c - the BKCL adapter (Kunlunxin XPU, libbkcl.so of the XPU SDK,
 * also called XCCL).
 *
 * Declarations written from the XPU SDK's bkcl.h as documented for
 * PaddlePaddle's XPU build (BKCL 1.x): BKCLResult_t, BKCLDataType and
 * BKCLOp are C enums, BKCLUniqueId is BKCL_UNIQUE_ID_BYTES (512) opaque
 * bytes, BKCLContext_t and XPUStream are opaque pointers, and the context
 * comes first in every call. The numeric values of BKCLDataType and
 * BKCLOp below could not be checked against a header in this session:
 * docs/backends.md marks them "to verify on hardware".
 *
 * Invariants:
 *  1. BKCL has no asynchronous-error query: a call goes on the XPUStream
 *     it is given and returns; its end on the device is an XRE event
 *     (libxpurt, devrt.c) recorded by backend.c, which the watchdog holds
 *     to the deadline. A BKCL call that blocks inside the library itself
 *     cannot be interrupted.
 *  2. Release is bkcl_comm_abort (when the library has it) after a
 *     failure, bkcl_destroy_context otherwise.
 *  3. No avg, int8, uint32, uint64, fp8; gather, scatter and all_to_allv
 *     are built from grouped bkcl_send/bkcl_recv.
 */
#include "backend.h"

#include <stdio.h>
#include <string.h>

#define BKCL_ID_BYTES 512

typedef void *bkcl_ctx_t;

typedef struct {
    int (*get_unique_id)(void *uid);
    int (*init_rank)(bkcl_ctx_t *ctx, int rank, int nranks, void *uid);
    int (*destroy_context)(bkcl_ctx_t ctx);
    int (*comm_abort)(bkcl_ctx_t ctx); /* optional */
    int (*all_reduce)(bkcl_ctx_t ctx, const void *s, void *r, size_t count,
                      int dt, int op, void *stream);
    int (*broadcast)(bkcl_ctx_t ctx, const void *s, void *r, size_t count,
                     int dt, int root, void *stream);
    int (*reduce)(bkcl_ctx_t ctx, const void *s, void *r, size_t count,
                  int dt, int op, int root, void *stream);
    int (*all_gather)(bkcl_ctx_t ctx, const void *s, size_t sendcount,
                      void *r, int dt, void *stream);
    int (*reduce_scatter)(bkcl_ctx_t ctx, const void *s, void *r,
                          size_t recvcount, int dt, int op, void *stream);
    int (*all_to_all)(bkcl_ctx_t ctx, const void *s, size_t count, void *r,
                      int dt, void *stream); /* optional */
    int (*send)(bkcl_ctx_t ctx, const void *s, size_t count, int peer,
                int dt, void *stream);
    int (*recv)(bkcl_ctx_t ctx, void *r, size_t count, int peer, int dt,
                void *stream);
    int (*group_start)(void);
    int (*group_end)(void);
} bkcl_sym_t;

#define BKCL_SYM(_v) ((bkcl_sym_t *)(_v)->sym)

static const char *const bkcl_sonames[] = {"libbkcl.so", NULL};

static const struct {
    const char    *name;
    scomm_status_t status;
} bkcl_codes[] = {
    {"BKCL_SUCCESS", SCOMM_OK},
    {"BKCL_INVALID_ARGUMENT", SCOMM_ERR_INVALID_ARG},
    {"BKCL_RUNTIME_ERROR", SCOMM_ERR_SYSTEM},
    {"BKCL_SYSTEM_ERROR", SCOMM_ERR_SYSTEM},
    {"BKCL_INTERNAL_ERROR", SCOMM_ERR_INTERNAL},
};

static scomm_status_t bkcl_check(scomm_vendor_t *v, const char *call,
                                 int code)
{
    scomm_status_t status = SCOMM_ERR_INTERNAL;
    const char *name = "unknown BKCLResult_t";

    v->cur_call = call;
    if ((code >= 0) && (code < (int)SCOMM_ARRAY_SIZE(bkcl_codes))) {
        status = bkcl_codes[code].status;
        name   = bkcl_codes[code].name;
    }
    if (status == SCOMM_OK) {
        return status;
    }
    return scomm_vendor_error(v, status, "%s: %s (bkcl %d)", call, name,
                              code);
}

static int bkcl_dtype(const scomm_vendor_t *v, scomm_dtype_t dt, char *why,
                      size_t len)
{
    (void)v;
    switch (dt) {
    case SCOMM_FLOAT32:  return 0; /* BKCL_FLOAT */
    case SCOMM_UINT8:    return 1; /* BKCL_UINT8 */
    case SCOMM_FLOAT16:  return 2; /* BKCL_FLOAT16 */
    case SCOMM_INT32:    return 3; /* BKCL_INT32 */
    case SCOMM_INT64:    return 4; /* BKCL_INT64 */
    case SCOMM_BFLOAT16: return 5; /* BKCL_BFLOAT16 */
    case SCOMM_FLOAT64:  return 6; /* BKCL_FLOAT64 */
    case SCOMM_INT8:
    case SCOMM_UINT32:
    case SCOMM_UINT64:
    case SCOMM_FP8_E4M3:
    case SCOMM_FP8_E5M2:
        snprintf(why, len, "BKCLDataType has no %s",
                 scomm_dtype_name(dt));
        return -1;
    default:
        snprintf(why, len, "not a dtype");
        return -1;
    }
}

static int bkcl_redop(const scomm_vendor_t *v, scomm_redop_t op, char *why,
                      size_t len)
{
    (void)v;
    switch (op) {
    case SCOMM_SUM:  return 0; /* BKCL_ADD */
    case SCOMM_PROD: return 1; /* BKCL_PRODUCT */
    case SCOMM_MIN:  return 2; /* BKCL_MIN */
    case SCOMM_MAX:  return 3; /* BKCL_MAX */
    case SCOMM_AVG:
        snprintf(why, len, "BKCLOp has no average");
        return -1;
    default:
        snprintf(why, len, "not an op");
        return -1;
    }
}

#define BKCL_BIND(_field, _name, _opt)                                      \
    do {                                                                    \
        void *fn_;                                                          \
        if (scomm_backend_sym(dl, (_name), &fn_, (_opt), err, len) != 0) {  \
            return -1;                                                      \
        }                                                                   \
        memcpy(&s->_field, &fn_, sizeof(fn_));                              \
    } while (0)

static int bkcl_bind(scomm_vendor_t *v, void *dl, char *err, size_t len)
{
    bkcl_sym_t *s = BKCL_SYM(v);

    BKCL_BIND(get_unique_id, "bkcl_get_unique_id", 0);
    BKCL_BIND(init_rank, "bkcl_init_rank", 0);
    BKCL_BIND(destroy_context, "bkcl_destroy_context", 0);
    BKCL_BIND(comm_abort, "bkcl_comm_abort", 1);
    BKCL_BIND(all_reduce, "bkcl_all_reduce", 0);
    BKCL_BIND(broadcast, "bkcl_broadcast", 0);
    BKCL_BIND(reduce, "bkcl_reduce", 0);
    BKCL_BIND(all_gather, "bkcl_all_gather", 0);
    BKCL_BIND(reduce_scatter, "bkcl_reduce_scatter", 0);
    BKCL_BIND(all_to_all, "bkcl_all_to_all", 1);
    BKCL_BIND(send, "bkcl_send", 0);
    BKCL_BIND(recv, "bkcl_recv", 0);
    BKCL_BIND(group_start, "bkcl_group_start", 0);
    BKCL_BIND(group_end, "bkcl_group_end", 0);
    v->version = 0; /* no documented version call */
    return 0;
}

static void bkcl_version_text(const scomm_vendor_t *v, char *buf, size_t len)
{
    (void)v;
    snprintf(buf, len, "unknown");
}

static scomm_status_t bkcl_get_id(scomm_vendor_t *v, void *id)
{
    return bkcl_check(v, "bkcl_get_unique_id",
                      BKCL_SYM(v)->get_unique_id(id));
}

static scomm_status_t bkcl_comm_init(scomm_vendor_t *v, const void *id)
{
    unsigned char uid[BKCL_ID_BYTES];
    bkcl_ctx_t c = NULL;
    int code;

    memcpy(uid, id, sizeof(uid));
    code = BKCL_SYM(v)->init_rank(&c, v->rank, v->size, uid);
    v->vcomm = (code == 0) ? c : NULL;
    return bkcl_check(v, "bkcl_init_rank", code);
}

static scomm_status_t bkcl_coll(scomm_vendor_t *v, const scomm_coll_args_t *a,
                                int vdt, int vop, void *st)
{
    bkcl_sym_t *s = BKCL_SYM(v);
    bkcl_ctx_t c  = (bkcl_ctx_t)v->vcomm;

    switch (a->op) {
    case SCOMM_COLL_ALLREDUCE:
        return bkcl_check(v, "bkcl_all_reduce",
                          s->all_reduce(c, a->sendbuf, a->recvbuf, a->count,
                                        vdt, vop, st));
    case SCOMM_COLL_ALLGATHER:
        return bkcl_check(v, "bkcl_all_gather",
                          s->all_gather(c, a->sendbuf, a->count, a->recvbuf,
                                        vdt, st));
    case SCOMM_COLL_REDUCESCATTER:
        return bkcl_check(v, "bkcl_reduce_scatter",
                          s->reduce_scatter(c, a->sendbuf, a->recvbuf,
                                            a->count, vdt, vop, st));
    case SCOMM_COLL_BROADCAST:
        return bkcl_check(v, "bkcl_broadcast",
                          s->broadcast(c, a->recvbuf, a->recvbuf, a->count,
                                       vdt, a->root, st));
    case SCOMM_COLL_REDUCE:
        return bkcl_check(v, "bkcl_reduce",
                          s->reduce(c, a->sendbuf, a->recvbuf, a->count, vdt,
                                    vop, a->root, st));
    case SCOMM_COLL_ALLTOALL:
        if (s->all_to_all == NULL) {
            return scomm_vendor_error(v, SCOMM_ERR_UNSUPPORTED,
                                      "this libbkcl.so has no "
                                      "bkcl_all_to_all");
        }
        return bkcl_check(v, "bkcl_all_to_all",
                          s->all_to_all(c, a->sendbuf, a->count, a->recvbuf,
                                        vdt, st));
    default:
        return scomm_vendor_error(v, SCOMM_ERR_INTERNAL, "no BKCL call for "
                                  "%s", scomm_coll_op_name(a->op));
    }
}

static scomm_status_t bkcl_p2p(scomm_vendor_t *v, int is_send, void *buf,
                               size_t count, int vdt, int peer, void *st)
{
    bkcl_sym_t *s = BKCL_SYM(v);
    bkcl_ctx_t c  = (bkcl_ctx_t)v->vcomm;

    if (is_send) {
        return bkcl_check(v, "bkcl_send",
                          s->send(c, buf, count, peer, vdt, st));
    }
    return bkcl_check(v, "bkcl_recv",
                      s->recv(c, buf, count, peer, vdt, st));
}

static scomm_status_t bkcl_group(scomm_vendor_t *v, int start)
{
    bkcl_sym_t *s = BKCL_SYM(v);

    return start ? bkcl_check(v, "bkcl_group_start", s->group_start())
                 : bkcl_check(v, "bkcl_group_end", s->group_end());
}

static scomm_status_t bkcl_async(scomm_vendor_t *v, const char *what,
                                 char *err, size_t len)
{
    (void)v;
    (void)what;
    (void)err;
    (void)len;
    return SCOMM_OK; /* invariant 1 */
}

static void bkcl_abort(scomm_vendor_t *v)
{
    bkcl_sym_t *s = BKCL_SYM(v);

    if (v->vcomm != NULL) {
        if (s->comm_abort != NULL) {
            s->comm_abort((bkcl_ctx_t)v->vcomm);
        } else {
            s->destroy_context((bkcl_ctx_t)v->vcomm);
        }
        v->vcomm = NULL;
    }
}

static void bkcl_destroy(scomm_vendor_t *v)
{
    if (v->vcomm != NULL) {
        BKCL_SYM(v)->destroy_context((bkcl_ctx_t)v->vcomm);
        v->vcomm = NULL;
    }
}

const scomm_vendor_ops_t scomm_vendor_bkcl_ops = {
    .name         = "bkcl",
    .lib_env      = "SCOMM_BKCL_LIBRARY",
    .sonames      = bkcl_sonames,
    .install      = "install the Kunlunxin XPU SDK (XRE and BKCL/XCCL) and "
                    "add its so/ directory to LD_LIBRARY_PATH",
    .rt_kind      = SCOMM_RT_XPU,
    .id_bytes     = BKCL_ID_BYTES,
    .sym_bytes    = sizeof(bkcl_sym_t),
    .colls        = SCOMM_VENDOR_OP(SCOMM_COLL_ALLREDUCE) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_ALLGATHER) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_REDUCESCATTER) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_BROADCAST) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_REDUCE) |
                    SCOMM_VENDOR_OP(SCOMM_COLL_ALLTOALL),
    .bind         = bkcl_bind,
    .version_text = bkcl_version_text,
    .dtype        = bkcl_dtype,
    .redop        = bkcl_redop,
    .get_id       = bkcl_get_id,
    .comm_init    = bkcl_comm_init,
    .coll         = bkcl_coll,
    .p2p          = bkcl_p2p,
    .group        = bkcl_group,
    .async        = bkcl_async,
    .abort        = bkcl_abort,
    .destroy      = bkcl_destroy,
};
