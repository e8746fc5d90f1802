/*
 * fake_nccl.c - a stand-in libnccl.so.2 (and librccl.so.1) for the tests:
 * the documented subset of NCCL's C API that scomm's adapter uses, on the
 * fake device (fake_device.h) across processes, by fake_engine.c. It links
 * the fake CUDA (HIP) runtime the way a vendor library links its runtime,
 * so scomm can find that runtime through its dependencies.
 *
 * Knobs (environment, read at each call):
 *   FAKE_NCCL_VERSION   code returned by ncclGetVersion (default 22703)
 *   FAKE_NCCL_HANG      name of a call ("ncclAllReduce") whose kernel never
 *                       ends: the stream stays busy until ncclCommAbort
 *   FAKE_NCCL_FAIL      "call:code": that call returns code at once
 *   FAKE_NCCL_ASYNC     "call:code": that call's kernel sets the
 *                       communicator's asynchronous error to code
 *   FAKE_NCCL_LOG       file that gets one line per init, abort, destroy
 *
 * Invariants:
 *  1. The unique id carries the engine's segment name; the ranks meet there.
 *  2. Data types and ops are decoded with NCCL's own numbering, so an
 *     adapter that sends another vendor's code gets ncclInvalidArgument or
 *     a wrong result.
 *  3. As NCCL's: a collective or send/recv enqueues a kernel on its stream
 *     and returns ncclSuccess; ncclGroupStart/End make the calls between
 *     them one launch; failures inside a kernel are read with
 *     ncclCommGetAsyncError; ncclCommAbort ends a kernel that is stuck.
 *  4. A non-blocking communicator (config.blocking = 0) is created as real
 *     NCCL does it: ncclCommInitRankConfig returns ncclInProgress and
 *     ncclCommGetAsyncError says ncclInProgress until every rank joined.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

typedef struct {
    char internal[128];
} fake_id_t;

typedef struct {
    size_t       size;
    unsigned int magic;
    unsigned int version;
    int          blocking;
} fake_config_t;

typedef fkv_comm_t *ncclComm_t;

enum { OK = 0, SYS = 2, INTERNAL = 3, INVAL = 4, USAGE = 5, REMOTE = 6,
       INPROG = 7 };

static const fkv_codes_t fake_codes = {
    .ok = OK, .inval = INVAL, .usage = USAGE, .remote = REMOTE,
    .internal = INTERNAL, .inprogress = INPROG};

static int fake_version(void)
{
    const char *v = getenv("FAKE_NCCL_VERSION");

    return ((v != NULL) && (v[0] != '\0')) ? atoi(v) : 22703;
}

/* NCCL data types -> engine (invariant 2). */
static int fake_dt(int dt)
{
    static const int map[] = {FK_I8, FK_U8, FK_I32, FK_U32, FK_I64, FK_U64,
                              FK_F16, FK_F32, FK_F64, FK_BF16, FK_E4M3,
                              FK_E5M2};

    if ((dt < 0) || (dt > 11) || ((dt >= 10) && (fake_version() < 22400))) {
        return -1;
    }
    return map[dt];
}

static int fake_op(int op)
{
    return ((op >= 0) && (op <= 4)) ? op : -1; /* sum prod max min avg */
}

static int fake_call(ncclComm_t c, const char *call, int kind, const void *s,
                     void *r, size_t n, int dt, int op, int root, int peer,
                     void *stream)
{
    fkv_op_t o = {kind, s, r, n, fake_dt(dt), op, root, peer};
    int rc;

    if (c == NULL) {
        return INVAL;
    }
    rc = fkv_submit(c, call, &o, stream);
    return (rc < 0) ? INVAL : rc;
}

API int ncclGetVersion(int *version)
{
    *version = fake_version();
    return OK;
}

API int ncclGetUniqueId(fake_id_t *id)
{
    int code = fk_knob("FAKE_NCCL_FAIL", "ncclGetUniqueId");

    if (code >= 0) {
        return code;
    }
    memset(id, 0, sizeof(*id));
    fk_make_name(id->internal);
    return OK;
}

API int ncclCommInitRankConfig(ncclComm_t *comm, int nranks, fake_id_t id,
                               int rank, fake_config_t *config)
{
    if ((config == NULL) || (config->magic != 0xcafebeefu) ||
        (config->size < sizeof(*config)) || (config->version < 21400)) {
        return INVAL;
    }
    return fkv_init(comm, "FAKE_NCCL", &fake_codes,
                    "ncclCommInitRankConfig", id.internal, nranks, rank,
                    config->blocking == 0);
}

API int ncclCommGetAsyncError(ncclComm_t c, int *err)
{
    if ((c == NULL) || (err == NULL)) {
        return INVAL;
    }
    *err = fkv_async(c);
    return OK;
}

API int ncclCommAbort(ncclComm_t c)
{
    if (c != NULL) {
        fkv_abort(c);
    }
    return OK;
}

API int ncclCommFinalize(ncclComm_t c)
{
    if (c != NULL) {
        fkv_log(c, "finalize");
    }
    return OK;
}

API int ncclCommDestroy(ncclComm_t c)
{
    if (c != NULL) {
        fkv_destroy(c);
    }
    return OK;
}

API const char *ncclGetErrorString(int code)
{
    static const char *const s[] = {
        "no error", "unhandled cuda error", "unhandled system error",
        "internal error", "invalid argument", "invalid usage",
        "remote process exited or there was a network error",
        "NCCL operation in progress"};

    return ((code >= 0) && (code < 8)) ? s[code] : "unknown result code";
}

API const char *ncclGetLastError(ncclComm_t c)
{
    return (c != NULL) ? fkv_last(c) : "";
}

API int ncclAllReduce(const void *s, void *r, size_t n, int dt, int op,
                      ncclComm_t c, void *stream)
{
    return fake_call(c, "ncclAllReduce", FKV_ALLREDUCE, s, r, n, dt,
                     fake_op(op), 0, 0, stream);
}

API int ncclBroadcast(const void *s, void *r, size_t n, int dt, int root,
                      ncclComm_t c, void *stream)
{
    return fake_call(c, "ncclBroadcast", FKV_BCAST, s, r, n, dt, FK_SUM,
                     root, 0, stream);
}

API int ncclReduce(const void *s, void *r, size_t n, int dt, int op,
                   int root, ncclComm_t c, void *stream)
{
    return fake_call(c, "ncclReduce", FKV_REDUCE, s, r, n, dt, fake_op(op),
                     root, 0, stream);
}

API int ncclAllGather(const void *s, void *r, size_t n, int dt,
                      ncclComm_t c, void *stream)
{
    return fake_call(c, "ncclAllGather", FKV_ALLGATHER, s, r, n, dt, FK_SUM,
                     0, 0, stream);
}

API int ncclReduceScatter(const void *s, void *r, size_t n, int dt, int op,
                          ncclComm_t c, void *stream)
{
    return fake_call(c, "ncclReduceScatter", FKV_REDUCESCATTER, s, r, n, dt,
                     fake_op(op), 0, 0, stream);
}

API int ncclSend(const void *s, size_t n, int dt, int peer, ncclComm_t c,
                 void *stream)
{
    return fake_call(c, "ncclSend", FKV_SEND, s, NULL, n, dt, FK_SUM, 0,
                     peer, stream);
}

API int ncclRecv(void *r, size_t n, int dt, int peer, ncclComm_t c,
                 void *stream)
{
    return fake_call(c, "ncclRecv", FKV_RECV, NULL, r, n, dt, FK_SUM, 0,
                     peer, stream);
}

API int ncclGroupStart(void)
{
    fkv_group_start();
    return OK;
}

API int ncclGroupEnd(void)
{
    int rc = fkv_group_end();

    return (rc < 0) ? USAGE : rc;
}
