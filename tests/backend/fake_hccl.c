/*
 * fake_hccl.c - a stand-in libhccl.so for the tests: the HCCL C API subset
 * scomm's adapter uses (HcclGetRootInfo, HcclCommInitRootInfo, the
 * collectives, HcclSend/HcclRecv, HcclGetCommAsyncError,
 * HcclCommDestroy), on the fake device by fake_engine.c, with HCCL's own
 * enum numbering (HcclDataType, HcclReduceOp, HcclResult) so a wrong
 * mapping is caught. It links the fake libascendcl.so, the runtime whose
 * events scomm records on HCCL's streams.
 *
 * Knobs: FAKE_HCCL_FAIL="call:code" (that call returns code),
 * FAKE_HCCL_ASYNC="call:code" (its kernel sets HcclGetCommAsyncError's
 * answer), FAKE_HCCL_HANG=call (its kernel never ends before the
 * communicator is destroyed), FAKE_HCCL_LOG (one line per init and
 * destroy).
 *
 * Invariants:
 *  1. The 4108-byte root info starts with the engine's segment name.
 *  2. HCCL has no group call: each HcclSend/HcclRecv is its own launch,
 *     so a send and the matching receive must not wait behind each other
 *     on one stream (as with HCCL).
 *  3. HCCL has no public abort: HcclCommDestroy of a communicator with a
 *     stuck kernel ends that kernel (the fake's stand-in for what
 *     destroying does on the device).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

enum { OK = 0, PARA = 1, INTERNAL = 4, NOT_SUPPORT = 5, TIMEOUT = 9,
       REMOTE = 21 };

static const fkv_codes_t fake_codes = {
    .ok = OK, .inval = PARA, .usage = PARA, .remote = REMOTE,
    .internal = INTERNAL, .inprogress = -1};

static int dt(int d)
{
    static const int map[12] = {FK_I8, -1, FK_I32, FK_F16, FK_F32, FK_I64,
                                FK_U64, FK_U8, -1, FK_U32, FK_F64, FK_BF16};

    return ((d >= 0) && (d < 12)) ? map[d] : -1;
}

static int op(int o)
{
    return ((o >= 0) && (o <= 3)) ? o : -1; /* sum, prod, max, min */
}

static int call(fkv_comm_t *c, const char *name, int kind, const void *s,
                void *r, uint64_t n, int d, int o, int root, int peer,
                void *stream)
{
    fkv_op_t x = {kind, s, r, (size_t)n, dt(d), o, root, peer};
    int rc;

    if (c == NULL) {
        return PARA;
    }
    rc = fkv_submit(c, name, &x, stream);
    return (rc < 0) ? PARA : rc;
}

API int HcclGetRootInfo(void *root_info)
{
    memset(root_info, 0, 4108);
    fk_make_name(root_info);
    return OK;
}

API int HcclCommInitRootInfo(uint32_t n, const void *root_info,
                             uint32_t rank, fkv_comm_t **comm)
{
    return fkv_init(comm, "FAKE_HCCL", &fake_codes, "HcclCommInitRootInfo",
                    root_info, (int)n, (int)rank, 0);
}

API int HcclAllReduce(void *s, void *r, uint64_t n, int d, int o,
                      fkv_comm_t *c, void *stream)
{
    return call(c, "HcclAllReduce", FKV_ALLREDUCE, s, r, n, d, op(o), 0, 0,
                stream);
}

API int HcclBroadcast(void *buf, uint64_t n, int d, uint32_t root,
                      fkv_comm_t *c, void *stream)
{
    return call(c, "HcclBroadcast", FKV_BCAST, buf, buf, n, d, FK_SUM,
                (int)root, 0, stream);
}

API int HcclReduce(void *s, void *r, uint64_t n, int d, int o, uint32_t root,
                   fkv_comm_t *c, void *stream)
{
    return call(c, "HcclReduce", FKV_REDUCE, s, r, n, d, op(o), (int)root, 0,
                stream);
}

API int HcclAllGather(void *s, void *r, uint64_t n, int d, fkv_comm_t *c,
                      void *stream)
{
    return call(c, "HcclAllGather", FKV_ALLGATHER, s, r, n, d, FK_SUM, 0, 0,
                stream);
}

API int HcclReduceScatter(void *s, void *r, uint64_t n, int d, int o,
                          fkv_comm_t *c, void *stream)
{
    return call(c, "HcclReduceScatter", FKV_REDUCESCATTER, s, r, n, d,
                op(o), 0, 0, stream);
}

API int HcclAlltoAll(const void *s, uint64_t sn, int sd, const void *r,
                     uint64_t rn, int rd, fkv_comm_t *c, void *stream)
{
    if ((sn != rn) || (sd != rd)) {
        return PARA;
    }
    return call(c, "HcclAlltoAll", FKV_ALLTOALL, s, (void *)r, sn, sd,
                FK_SUM, 0, 0, stream);
}

API int HcclSend(void *s, uint64_t n, int d, uint32_t dst, fkv_comm_t *c,
                 void *stream)
{
    return call(c, "HcclSend", FKV_SEND, s, NULL, n, d, FK_SUM, 0, (int)dst,
                stream);
}

API int HcclRecv(void *r, uint64_t n, int d, uint32_t src, fkv_comm_t *c,
                 void *stream)
{
    return call(c, "HcclRecv", FKV_RECV, NULL, r, n, d, FK_SUM, 0, (int)src,
                stream);
}

API int HcclGetCommAsyncError(fkv_comm_t *c, int *err)
{
    if ((c == NULL) || (err == NULL)) {
        return PARA;
    }
    *err = fkv_async(c);
    return OK;
}

API const char *HcclGetErrorString(int code)
{
    return (code == REMOTE) ? "fake: error cqe from a remote rank"
                            : "fake hccl error";
}

API int HcclCommDestroy(fkv_comm_t *c)
{
    if (c != NULL) {
        fkv_abort(c); /* invariant 3 */
    }
    return OK;
}
