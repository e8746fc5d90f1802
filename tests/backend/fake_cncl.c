/*
 * fake_cncl.c - a stand-in libcncl.so for the tests: the CNCL 1.x C API
 * subset scomm's adapter uses, on host memory by fake_engine.c, with
 * CNCL's own numbering (cnclDataType_t 0x10.., cnclResult_t 0x..).
 *
 * Knobs: FAKE_CNCL_FAIL="call:code" (that call returns code),
 * FAKE_CNCL_HANG=call (the call is accepted, then cnclGetCommAsyncError
 * answers CNCL_RET_ASYNC_IN_PROGRESS until cnclAbortComm), FAKE_CNCL_LOG
 * (one line per init, abort, free).
 *
 * Invariants:
 *  1. The clique id (128 bytes + 64-bit hash) starts with the engine's
 *     segment name; cnclInitComms takes exactly one communicator.
 *  2. cnclSend/cnclRecv work inside cnclGroupStart/End only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

enum { OK = 0x00, INTERNAL = 0x01, UNSUPPORTED = 0x11, SOCKET = 0x22,
       INPROG = 0x06, ARGS = 0x07 };

typedef struct {
    fk_comm_t *fk;
    int        async;
    int        hung;
} fake_comm_t;

static int rc(int fk)
{
    return (fk == FK_OK) ? OK : (fk == FK_ETIMEOUT) ? SOCKET
                              : (fk == FK_ESYS) ? INTERNAL : ARGS;
}

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

static int enter(fake_comm_t *c, const char *call, int d, int o)
{
    int code = fk_knob("FAKE_CNCL_FAIL", call);
    const char *h = getenv("FAKE_CNCL_HANG");

    if (c == NULL) {
        return ARGS;
    }
    if (code >= 0) {
        return code;
    }
    if ((dt(d) < 0) || (o < 0) || (o > 3)) {
        return (dt(d) < 0) ? UNSUPPORTED : ARGS;
    }
    if ((h != NULL) && (strcmp(h, call) == 0)) {
        c->hung  = 1;
        c->async = INPROG;
        return OK; /* accepted, never completes */
    }
    return -1;
}

API int cnclGetCliqueId(void *clique)
{
    memset(clique, 0, 136);
    fk_make_name(clique);
    return OK;
}

API int cnclInitComms(fake_comm_t **comms, int ncomm, const int *devs,
                      const int *ranks, int nrank, const void *clique)
{
    fake_comm_t *c;
    int code = fk_knob("FAKE_CNCL_FAIL", "cnclInitComms"), r;

    if ((ncomm != 1) || (devs == NULL) || (ranks == NULL) ||
        (clique == NULL)) {
        return ARGS;
    }
    if (code >= 0) {
        return code;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return INTERNAL;
    }
    r = fk_init(&c->fk, clique, nrank, ranks[0]);
    if (r != FK_OK) {
        free(c);
        return rc(r);
    }
    fk_log("FAKE_CNCL_LOG", "init rank %d of %d dev %d", ranks[0], nrank,
           devs[0]);
    comms[0] = c;
    return OK;
}

API int cnclFreeComm(fake_comm_t *c)
{
    if (c != NULL) {
        fk_log("FAKE_CNCL_LOG", "free rank %d", fk_rank(c->fk));
        fk_destroy(c->fk);
        free(c);
    }
    return OK;
}

API int cnclAbortComm(fake_comm_t *c)
{
    if (c != NULL) {
        fk_log("FAKE_CNCL_LOG", "abort rank %d hung=%d", fk_rank(c->fk),
               c->hung);
        fk_abort(c->fk);
        free(c);
    }
    return OK;
}

API int cnclAllReduce(const void *s, void *r, size_t n, int d, int o,
                      fake_comm_t *c, void *q)
{
    int e = enter(c, "cnclAllReduce", d, o);

    (void)q;
    return (e >= 0) ? e : rc(fk_allreduce(c->fk, s, r, n, dt(d), o));
}

API int cnclBroadcast(const void *s, void *r, size_t n, int d, int root,
                      fake_comm_t *c, void *q)
{
    int e = enter(c, "cnclBroadcast", d, 0);

    (void)q;
    return (e >= 0) ? e : rc(fk_bcast(c->fk, s, r, n, dt(d), root));
}

API int cnclReduce(const void *s, void *r, size_t n, int d, int o, int root,
                   fake_comm_t *c, void *q)
{
    int e = enter(c, "cnclReduce", d, o);

    (void)q;
    return (e >= 0) ? e : rc(fk_reduce(c->fk, s, r, n, dt(d), o, root));
}

API int cnclAllGather(const void *s, void *r, size_t n, int d,
                      fake_comm_t *c, void *q)
{
    int e = enter(c, "cnclAllGather", d, 0);

    (void)q;
    return (e >= 0) ? e : rc(fk_allgather(c->fk, s, r, n, dt(d)));
}

API int cnclReduceScatter(const void *s, void *r, size_t n, int d, int o,
                          fake_comm_t *c, void *q)
{
    int e = enter(c, "cnclReduceScatter", d, o);

    (void)q;
    return (e >= 0) ? e : rc(fk_reducescatter(c->fk, s, r, n, dt(d), o));
}

API int cnclAlltoAll(const void *s, void *r, size_t n, int d,
                     fake_comm_t *c, void *q)
{
    int e = enter(c, "cnclAlltoAll", d, 0);

    (void)q;
    return (e >= 0) ? e : rc(fk_alltoall(c->fk, s, r, n, dt(d)));
}

API int cnclSend(void *buf, size_t n, int d, int peer, fake_comm_t *c,
                 void *q)
{
    int e = enter(c, "cnclSend", d, 0);

    (void)q;
    return (e >= 0) ? e : rc(fk_group_add(c->fk, 1, buf,
                                          n * fk_dtsize(dt(d)), peer));
}

API int cnclRecv(void *buf, size_t n, int d, int peer, fake_comm_t *c,
                 void *q)
{
    int e = enter(c, "cnclRecv", d, 0);

    (void)q;
    return (e >= 0) ? e : rc(fk_group_add(c->fk, 0, buf,
                                          n * fk_dtsize(dt(d)), peer));
}

API int cnclGroupStart(void)
{
    fk_group_start();
    return OK;
}

API int cnclGroupEnd(void)
{
    return rc(fk_group_end());
}

API int cnclGetCommAsyncError(fake_comm_t *c)
{
    return (c == NULL) ? ARGS : c->async;
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
