/*
 * fake_nccl.c - a stand-in libnccl.so.2 (and librccl.so.1) for the tests:
 * NCCL's C API (the documented subset scomm's adapter uses) implemented on
 * host memory across processes by fake_engine.c. Not NCCL: no device, no
 * streams; every call completes before it returns, except where a test
 * asks otherwise.
 *
 * Knobs (environment, read at each call):
 *   FAKE_NCCL_VERSION   code returned by ncclGetVersion (default 22703)
 *   FAKE_NCCL_HANG      name of a call ("ncclAllReduce") that returns
 *                       ncclInProgress and never completes: the async
 *                       error stays ncclInProgress until ncclCommAbort
 *   FAKE_NCCL_FAIL      "call:code": that call returns code at once
 *   FAKE_NCCL_ASYNC     "call:code": that call succeeds, then
 *                       ncclCommGetAsyncError reports code
 *   FAKE_NCCL_LOG       file that gets one line per init, abort, destroy
 *
 * Invariants:
 *  1. The unique id carries the engine's segment name; the ranks meet there.
 *  2. Data types and ops are decoded with NCCL's own numbering, so an
 *     adapter that sends another vendor's code gets ncclInvalidArgument or
 *     a wrong result.
 *  3. A non-blocking communicator (config.blocking = 0) is created as real
 *     NCCL does it: ncclCommInitRankConfig returns ncclInProgress and
 *     ncclCommGetAsyncError says ncclInProgress until every rank joined,
 *     so a rank that never comes leaves the others polling (under scomm's
 *     deadline), not blocked in the library.
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

typedef struct fake_nccl_comm {
    fk_comm_t *fk;
    int        async;     /* what ncclCommGetAsyncError reports */
    int        pending;   /* in-progress polls left before success */
    int        hung;
    int        blocking;
    char       last[128];
} *ncclComm_t;

enum { OK = 0, SYS = 2, INTERNAL = 3, INVAL = 4, USAGE = 5, REMOTE = 6,
       INPROG = 7 };

static int fake_version(void)
{
    const char *v = getenv("FAKE_NCCL_VERSION");

    return ((v != NULL) && (v[0] != '\0')) ? atoi(v) : 22703;
}

/* Code to return for call from "call:code" in env, or -1. */
static int fake_knob(const char *env, const char *call)
{
    const char *v = getenv(env);
    size_t n = strlen(call);

    if ((v != NULL) && (strncmp(v, call, n) == 0) && (v[n] == ':')) {
        return atoi(v + n + 1);
    }
    return -1;
}

static int fake_hang(const char *call)
{
    const char *v = getenv("FAKE_NCCL_HANG");

    return (v != NULL) && (strcmp(v, call) == 0);
}

static int fake_rc(int fk)
{
    switch (fk) {
    case FK_OK:       return OK;
    case FK_EINVAL:   return INVAL;
    case FK_ETIMEOUT: return REMOTE;
    case FK_ESIZE:    return INVAL;
    default:          return SYS;
    }
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

/* Common prologue of a data call: knobs first. Returns -1 to go on. */
static int fake_enter(ncclComm_t c, const char *call)
{
    int code = fake_knob("FAKE_NCCL_FAIL", call);

    if (c == NULL) {
        return INVAL;
    }
    if (code >= 0) {
        snprintf(c->last, sizeof(c->last), "fake failure of %s", call);
        return code;
    }
    if (fake_hang(call)) {
        c->hung  = 1;
        c->async = INPROG;
        return INPROG;
    }
    return -1;
}

static int fake_leave(ncclComm_t c, const char *call, int rc)
{
    int code = fake_knob("FAKE_NCCL_ASYNC", call);

    if ((rc == OK) && (code >= 0)) {
        c->async = code;
        snprintf(c->last, sizeof(c->last), "fake async error after %s",
                 call);
    }
    return rc;
}

API int ncclGetVersion(int *version)
{
    *version = fake_version();
    return OK;
}

API int ncclGetUniqueId(fake_id_t *id)
{
    int code = fake_knob("FAKE_NCCL_FAIL", "ncclGetUniqueId");

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
    ncclComm_t c;
    int code = fake_knob("FAKE_NCCL_FAIL", "ncclCommInitRankConfig"), rc;

    if ((config == NULL) || (config->magic != 0xcafebeefu) ||
        (config->size < sizeof(*config)) || (config->version < 21400)) {
        return INVAL;
    }
    if (code >= 0) {
        return code;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return SYS;
    }
    /* Non-blocking: join now, completion through ncclCommGetAsyncError
     * (invariant 3); blocking: wait here. */
    rc = (config->blocking == 0)
             ? fk_init_start(&c->fk, id.internal, nranks, rank)
             : fk_init(&c->fk, id.internal, nranks, rank);
    if (rc != FK_OK) {
        free(c);
        return fake_rc(rc);
    }
    c->blocking = config->blocking;
    fk_log("FAKE_NCCL_LOG", "init rank %d of %d blocking=%d", rank, nranks,
           config->blocking);
    c->async   = OK;
    c->pending = (config->blocking == 0) ? 1 : 0;
    *comm      = c;
    return (config->blocking == 0) ? INPROG : OK;
}

API int ncclCommGetAsyncError(ncclComm_t c, int *err)
{
    if (c == NULL) {
        return INVAL;
    }
    if (c->pending > 0) {
        if (fk_init_ready(c->fk)) {
            c->pending = 0;
        }
        *err = INPROG; /* at least one in-progress answer */
        return OK;
    }
    *err = c->async;
    return OK;
}

API int ncclCommAbort(ncclComm_t c)
{
    if (c != NULL) {
        fk_log("FAKE_NCCL_LOG", "abort rank %d hung=%d", fk_rank(c->fk),
               c->hung);
        fk_abort(c->fk);
        free(c);
    }
    return OK;
}

API int ncclCommFinalize(ncclComm_t c)
{
    if (c != NULL) {
        fk_log("FAKE_NCCL_LOG", "finalize rank %d", fk_rank(c->fk));
    }
    return OK;
}

API int ncclCommDestroy(ncclComm_t c)
{
    if (c != NULL) {
        fk_log("FAKE_NCCL_LOG", "destroy rank %d", fk_rank(c->fk));
        fk_destroy(c->fk);
        free(c);
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
    return (c != NULL) ? c->last : "";
}

API int ncclAllReduce(const void *s, void *r, size_t n, int dt, int op,
                      ncclComm_t c, void *stream)
{
    int rc = fake_enter(c, "ncclAllReduce"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if ((fdt < 0) || (op < 0) || (op > 4)) {
        return INVAL;
    }
    return fake_leave(c, "ncclAllReduce",
                      fake_rc(fk_allreduce(c->fk, s, r, n, fdt, op)));
}

API int ncclBroadcast(const void *s, void *r, size_t n, int dt, int root,
                      ncclComm_t c, void *stream)
{
    int rc = fake_enter(c, "ncclBroadcast"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if (fdt < 0) {
        return INVAL;
    }
    return fake_leave(c, "ncclBroadcast",
                      fake_rc(fk_bcast(c->fk, s, r, n, fdt, root)));
}

API int ncclReduce(const void *s, void *r, size_t n, int dt, int op,
                   int root, ncclComm_t c, void *stream)
{
    int rc = fake_enter(c, "ncclReduce"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if ((fdt < 0) || (op < 0) || (op > 4)) {
        return INVAL;
    }
    return fake_leave(c, "ncclReduce",
                      fake_rc(fk_reduce(c->fk, s, r, n, fdt, op, root)));
}

API int ncclAllGather(const void *s, void *r, size_t n, int dt,
                      ncclComm_t c, void *stream)
{
    int rc = fake_enter(c, "ncclAllGather"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if (fdt < 0) {
        return INVAL;
    }
    return fake_leave(c, "ncclAllGather",
                      fake_rc(fk_allgather(c->fk, s, r, n, fdt)));
}

API int ncclReduceScatter(const void *s, void *r, size_t n, int dt, int op,
                          ncclComm_t c, void *stream)
{
    int rc = fake_enter(c, "ncclReduceScatter"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if ((fdt < 0) || (op < 0) || (op > 4)) {
        return INVAL;
    }
    return fake_leave(c, "ncclReduceScatter",
                      fake_rc(fk_reducescatter(c->fk, s, r, n, fdt, op)));
}

API int ncclSend(const void *s, size_t n, int dt, int peer, ncclComm_t c,
                 void *stream)
{
    int rc = fake_enter(c, "ncclSend"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if ((fdt < 0) || (fk_group_depth() == 0)) {
        return (fdt < 0) ? INVAL : USAGE; /* the fake needs a group */
    }
    return fake_rc(fk_group_add(c->fk, 1, s, n * fk_dtsize(fdt), peer));
}

API int ncclRecv(void *r, size_t n, int dt, int peer, ncclComm_t c,
                 void *stream)
{
    int rc = fake_enter(c, "ncclRecv"), fdt = fake_dt(dt);

    (void)stream;
    if (rc >= 0) {
        return rc;
    }
    if ((fdt < 0) || (fk_group_depth() == 0)) {
        return (fdt < 0) ? INVAL : USAGE;
    }
    return fake_rc(fk_group_add(c->fk, 0, r, n * fk_dtsize(fdt), peer));
}

API int ncclGroupStart(void)
{
    fk_group_start();
    return OK;
}

API int ncclGroupEnd(void)
{
    return fake_rc(fk_group_end());
}
