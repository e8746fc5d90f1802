/*
 * fake_hccl.c - a stand-in libhccl.so for the tests: the HCCL C API subset
 * scomm's adapter uses (HcclGetRootInfo, HcclCommInitRootInfo, the
 * collectives, HcclGetCommAsyncError, HcclCommDestroy), on host memory by
 * fake_engine.c, with HCCL's own enum numbering (HcclDataType,
 * HcclReduceOp, HcclResult) so a wrong mapping is caught.
 *
 * Knobs: FAKE_HCCL_FAIL="call:code" (that call returns code),
 * FAKE_HCCL_ASYNC="call:code" (HcclGetCommAsyncError reports code after
 * it), FAKE_HCCL_LOG (one line per init and destroy).
 *
 * Invariants:
 *  1. The 4108-byte root info starts with the engine's segment name.
 *  2. HcclSend/HcclRecv are not grouped in HCCL; the fake does not
 *     implement them (HCCL_E_NOT_SUPPORT), scomm does not call them for
 *     collectives.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

enum { OK = 0, PARA = 1, INTERNAL = 4, NOT_SUPPORT = 5, TIMEOUT = 9,
       REMOTE = 21 };

typedef struct {
    fk_comm_t *fk;
    int        async;
} fake_comm_t;

static int rc(int fk)
{
    return (fk == FK_OK) ? OK : (fk == FK_ETIMEOUT) ? TIMEOUT
                              : (fk == FK_ESYS) ? INTERNAL : PARA;
}

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

/* -1: go on; else the code to return. */
static int enter(fake_comm_t *c, const char *call, int d, int o)
{
    int code = fk_knob("FAKE_HCCL_FAIL", call);

    if (c == NULL) {
        return PARA;
    }
    if (code >= 0) {
        return code;
    }
    return ((dt(d) < 0) || (op(o) < 0)) ? PARA : -1;
}

static int leave(fake_comm_t *c, const char *call, int r)
{
    int code = fk_knob("FAKE_HCCL_ASYNC", call);

    if ((r == OK) && (code >= 0)) {
        c->async = code;
    }
    return r;
}

API int HcclGetRootInfo(void *root_info)
{
    memset(root_info, 0, 4108);
    fk_make_name(root_info);
    return OK;
}

API int HcclCommInitRootInfo(uint32_t n, const void *root_info,
                             uint32_t rank, void **comm)
{
    fake_comm_t *c = calloc(1, sizeof(*c));
    int code = fk_knob("FAKE_HCCL_FAIL", "HcclCommInitRootInfo"), r;

    if (c == NULL) {
        return INTERNAL;
    }
    if (code >= 0) {
        free(c);
        return code;
    }
    r = fk_init(&c->fk, root_info, (int)n, (int)rank);
    if (r != FK_OK) {
        free(c);
        return rc(r);
    }
    fk_log("FAKE_HCCL_LOG", "init rank %u of %u", rank, n);
    *comm = c;
    return OK;
}

API int HcclAllReduce(void *s, void *r, uint64_t n, int d, int o,
                      fake_comm_t *c, void *stream)
{
    int e = enter(c, "HcclAllReduce", d, o);

    (void)stream;
    return (e >= 0) ? e : leave(c, "HcclAllReduce",
                                rc(fk_allreduce(c->fk, s, r, n, dt(d), o)));
}

API int HcclBroadcast(void *buf, uint64_t n, int d, uint32_t root,
                      fake_comm_t *c, void *stream)
{
    int e = enter(c, "HcclBroadcast", d, 0);

    (void)stream;
    return (e >= 0) ? e : leave(c, "HcclBroadcast",
                                rc(fk_bcast(c->fk, buf, buf, n, dt(d),
                                            (int)root)));
}

API int HcclReduce(void *s, void *r, uint64_t n, int d, int o, uint32_t root,
                   fake_comm_t *c, void *stream)
{
    int e = enter(c, "HcclReduce", d, o);

    (void)stream;
    return (e >= 0) ? e : leave(c, "HcclReduce",
                                rc(fk_reduce(c->fk, s, r, n, dt(d), o,
                                             (int)root)));
}

API int HcclAllGather(void *s, void *r, uint64_t n, int d, fake_comm_t *c,
                      void *stream)
{
    int e = enter(c, "HcclAllGather", d, 0);

    (void)stream;
    return (e >= 0) ? e : leave(c, "HcclAllGather",
                                rc(fk_allgather(c->fk, s, r, n, dt(d))));
}

API int HcclReduceScatter(void *s, void *r, uint64_t n, int d, int o,
                          fake_comm_t *c, void *stream)
{
    int e = enter(c, "HcclReduceScatter", d, o);

    (void)stream;
    return (e >= 0) ? e
                    : leave(c, "HcclReduceScatter",
                            rc(fk_reducescatter(c->fk, s, r, n, dt(d), o)));
}

API int HcclAlltoAll(const void *s, uint64_t sn, int sd, const void *r,
                     uint64_t rn, int rd, fake_comm_t *c, void *stream)
{
    int e = enter(c, "HcclAlltoAll", sd, 0);

    (void)stream;
    if ((e < 0) && ((sn != rn) || (sd != rd))) {
        e = PARA;
    }
    return (e >= 0) ? e : leave(c, "HcclAlltoAll",
                                rc(fk_alltoall(c->fk, s, (void *)r, sn,
                                               dt(sd))));
}

API int HcclSend(void *s, uint64_t n, int d, uint32_t dst, fake_comm_t *c,
                 void *stream)
{
    (void)s; (void)n; (void)d; (void)dst; (void)c; (void)stream;
    return NOT_SUPPORT;
}

API int HcclRecv(void *r, uint64_t n, int d, uint32_t src, fake_comm_t *c,
                 void *stream)
{
    (void)r; (void)n; (void)d; (void)src; (void)c; (void)stream;
    return NOT_SUPPORT;
}

API int HcclGetCommAsyncError(fake_comm_t *c, int *err)
{
    if (c == NULL) {
        return PARA;
    }
    *err = c->async;
    return OK;
}

API const char *HcclGetErrorString(int code)
{
    return (code == REMOTE) ? "fake: error cqe from a remote rank"
                            : "fake hccl error";
}

API int HcclCommDestroy(fake_comm_t *c)
{
    if (c != NULL) {
        fk_log("FAKE_HCCL_LOG", "destroy rank %d", fk_rank(c->fk));
        fk_destroy(c->fk);
        free(c);
    }
    return OK;
}
