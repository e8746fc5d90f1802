/*
 * fake_cncl.c - a stand-in libcncl.so for the tests: the CNCL 1.x C API
 * subset scomm's adapter uses, on the fake device by fake_engine.c, with
 * CNCL's own numbering (cnclDataType_t 0x10.., cnclResult_t 0x..). It
 * links the fake libcnrt.so, the runtime of its queues and notifiers.
 *
 * Knobs: FAKE_CNCL_FAIL="call:code" (that call returns code),
 * FAKE_CNCL_ASYNC="call:code" (its kernel sets cnclGetCommAsyncError's
 * answer), FAKE_CNCL_HANG=call (its kernel never ends before
 * cnclAbortComm), FAKE_CNCL_LOG (one line per init, abort, free).
 *
 * Invariants:
 *  1. The clique id (128 bytes + 64-bit hash) starts with the engine's
 *     segment name; cnclInitComms takes exactly one communicator.
 *  2. cnclGroupStart/End make the calls between them one launch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

enum { OK = 0x00, INTERNAL = 0x01, UNSUPPORTED = 0x11, SOCKET = 0x22,
       INPROG = 0x06, ARGS = 0x07, NOT_INIT = 0x61 };

static const fkv_codes_t fake_codes = {
    .ok = OK, .inval = ARGS, .usage = NOT_INIT, .remote = SOCKET,
    .internal = INTERNAL, .inprogress = INPROG};

static int dt(int d)
{
    switch (d) {
    case 0x10: return FK_F16;
    case 0x11: return FK_BF16;
    case 0x12: return FK_F32;
    case 0x20: return FK_I8;
    case 0x22: return FK_I32;
    case 0x23: return FK_I64;
    case 0x30: return FK_U8;
    case 0x32: return FK_U32;
    case 0x33: return FK_U64;
    default:   return -1;
    }
}

static int call(fkv_comm_t *c, const char *name, int kind, const void *s,
                void *r, size_t n, int d, int o, int root, int peer,
                void *q)
{
    fkv_op_t x = {kind, s, r, n, dt(d), ((o >= 0) && (o <= 3)) ? o : -1,
                  root, peer};
    int rc;

    if (c == NULL) {
        return ARGS;
    }
    if (dt(d) < 0) {
        return UNSUPPORTED;
    }
    rc = fkv_submit(c, name, &x, q);
    return (rc < 0) ? ARGS : rc;
}

API int cnclGetCliqueId(void *clique)
{
    memset(clique, 0, 136);
    fk_make_name(clique);
    return OK;
}

API int cnclInitComms(fkv_comm_t **comms, int ncomm, const int *devs,
                      const int *ranks, int nrank, const void *clique)
{
    if ((ncomm != 1) || (devs == NULL) || (ranks == NULL) ||
        (clique == NULL)) {
        return ARGS;
    }
    return fkv_init(comms, "FAKE_CNCL", &fake_codes, "cnclInitComms",
                    clique, nrank, ranks[0], 0);
}

API int cnclFreeComm(fkv_comm_t *c)
{
    if (c != NULL) {
        fkv_destroy(c);
    }
    return OK;
}

API int cnclAbortComm(fkv_comm_t *c)
{
    if (c != NULL) {
        fkv_abort(c);
    }
    return OK;
}

API int cnclAllReduce(const void *s, void *r, size_t n, int d, int o,
                      fkv_comm_t *c, void *q)
{
    return call(c, "cnclAllReduce", FKV_ALLREDUCE, s, r, n, d, o, 0, 0, q);
}

API int cnclBroadcast(const void *s, void *r, size_t n, int d, int root,
                      fkv_comm_t *c, void *q)
{
    return call(c, "cnclBroadcast", FKV_BCAST, s, r, n, d, FK_SUM, root, 0,
                q);
}

API int cnclReduce(const void *s, void *r, size_t n, int d, int o, int root,
                   fkv_comm_t *c, void *q)
{
    return call(c, "cnclReduce", FKV_REDUCE, s, r, n, d, o, root, 0, q);
}

API int cnclAllGather(const void *s, void *r, size_t n, int d,
                      fkv_comm_t *c, void *q)
{
    return call(c, "cnclAllGather", FKV_ALLGATHER, s, r, n, d, FK_SUM, 0, 0,
                q);
}

API int cnclReduceScatter(const void *s, void *r, size_t n, int d, int o,
                          fkv_comm_t *c, void *q)
{
    return call(c, "cnclReduceScatter", FKV_REDUCESCATTER, s, r, n, d, o, 0,
                0, q);
}

API int cnclAlltoAll(const void *s, void *r, size_t n, int d,
                     fkv_comm_t *c, void *q)
{
    return call(c, "cnclAlltoAll", FKV_ALLTOALL, s, r, n, d, FK_SUM, 0, 0,
                q);
}

API int cnclSend(void *buf, size_t n, int d, int peer, fkv_comm_t *c,
                 void *q)
{
    return call(c, "cnclSend", FKV_SEND, buf, NULL, n, d, FK_SUM, 0, peer,
                q);
}

API int cnclRecv(void *buf, size_t n, int d, int peer, fkv_comm_t *c,
                 void *q)
{
    return call(c, "cnclRecv", FKV_RECV, NULL, buf, n, d, FK_SUM, 0, peer,
                q);
}

API int cnclGroupStart(void)
{
    fkv_group_start();
    return OK;
}

API int cnclGroupEnd(void)
{
    int rc = fkv_group_end();

    return (rc < 0) ? NOT_INIT : rc;
}

API int cnclGetCommAsyncError(fkv_comm_t *c)
{
    return (c == NULL) ? ARGS : fkv_async(c);
}

API const char *cnclGetErrorStr(int code)
{
    return (code == UNSUPPORTED) ? "fake cncl: unsupported"
                                 : "fake cncl error";
}

API int cnclGetLibVersion(int *major, int *minor, int *patch)
{
    *major = 1;
    *minor = 25;
    *patch = 0;
    return OK;
}
