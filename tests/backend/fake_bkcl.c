/*
 * fake_bkcl.c - a stand-in libbkcl.so for the tests: the BKCL C API subset
 * scomm's adapter uses (context first in every call), on host memory by
 * fake_engine.c, with the BKCLDataType / BKCLOp numbering scomm's adapter
 * assumes (see src/backend/bkcl.c: to verify on hardware).
 *
 * Knobs: FAKE_BKCL_FAIL="call:code", FAKE_BKCL_LOG (init, abort, destroy).
 *
 * Invariants:
 *  1. The 512-byte unique id starts with the engine's segment name.
 *  2. bkcl_send/bkcl_recv work inside bkcl_group_start/end only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

enum { OK = 0, INVALID = 1, RUNTIME = 2, SYSTEM = 3, INTERNAL = 4 };

typedef struct {
    fk_comm_t *fk;
} fake_ctx_t;

static int rc(int fk)
{
    return (fk == FK_OK) ? OK : (fk == FK_ETIMEOUT) ? SYSTEM
                              : (fk == FK_ESYS) ? INTERNAL : INVALID;
}

static int dt(int d)
{
    static const int map[7] = {FK_F32, FK_U8, FK_F16, FK_I32, FK_I64,
                               FK_BF16, FK_F64};

    return ((d >= 0) && (d < 7)) ? map[d] : -1;
}

static int op(int o)
{
    static const int map[4] = {FK_SUM, FK_PROD, FK_MIN, FK_MAX};

    return ((o >= 0) && (o < 4)) ? map[o] : -1;
}

static int enter(fake_ctx_t *c, const char *call, int d, int o)
{
    int code = fk_knob("FAKE_BKCL_FAIL", call);

    if (c == NULL) {
        return INVALID;
    }
    if (code >= 0) {
        return code;
    }
    return ((dt(d) < 0) || (op(o) < 0)) ? INVALID : -1;
}

API int bkcl_get_unique_id(void *uid)
{
    memset(uid, 0, 512);
    fk_make_name(uid);
    return OK;
}

API int bkcl_init_rank(fake_ctx_t **ctx, int rank, int nranks, void *uid)
{
    fake_ctx_t *c;
    int code = fk_knob("FAKE_BKCL_FAIL", "bkcl_init_rank"), r;

    if (code >= 0) {
        return code;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return INTERNAL;
    }
    r = fk_init(&c->fk, uid, nranks, rank);
    if (r != FK_OK) {
        free(c);
        return rc(r);
    }
    fk_log("FAKE_BKCL_LOG", "init rank %d of %d", rank, nranks);
    *ctx = c;
    return OK;
}

API int bkcl_destroy_context(fake_ctx_t *c)
{
    if (c != NULL) {
        fk_log("FAKE_BKCL_LOG", "destroy rank %d", fk_rank(c->fk));
        fk_destroy(c->fk);
        free(c);
    }
    return OK;
}

API int bkcl_comm_abort(fake_ctx_t *c)
{
    if (c != NULL) {
        fk_log("FAKE_BKCL_LOG", "abort rank %d", fk_rank(c->fk));
        fk_abort(c->fk);
        free(c);
    }
    return OK;
}

API int bkcl_all_reduce(fake_ctx_t *c, const void *s, void *r, size_t n,
                        int d, int o, void *st)
{
    int e = enter(c, "bkcl_all_reduce", d, o);

    (void)st;
    return (e >= 0) ? e : rc(fk_allreduce(c->fk, s, r, n, dt(d), op(o)));
}

API int bkcl_broadcast(fake_ctx_t *c, const void *s, void *r, size_t n,
                       int d, int root, void *st)
{
    int e = enter(c, "bkcl_broadcast", d, 0);

    (void)st;
    return (e >= 0) ? e : rc(fk_bcast(c->fk, s, r, n, dt(d), root));
}

API int bkcl_reduce(fake_ctx_t *c, const void *s, void *r, size_t n, int d,
                    int o, int root, void *st)
{
    int e = enter(c, "bkcl_reduce", d, o);

    (void)st;
    return (e >= 0) ? e : rc(fk_reduce(c->fk, s, r, n, dt(d), op(o), root));
}

API int bkcl_all_gather(fake_ctx_t *c, const void *s, size_t n, void *r,
                        int d, void *st)
{
    int e = enter(c, "bkcl_all_gather", d, 0);

    (void)st;
    return (e >= 0) ? e : rc(fk_allgather(c->fk, s, r, n, dt(d)));
}

API int bkcl_reduce_scatter(fake_ctx_t *c, const void *s, void *r, size_t n,
                            int d, int o, void *st)
{
    int e = enter(c, "bkcl_reduce_scatter", d, o);

    (void)st;
    return (e >= 0) ? e
                    : rc(fk_reducescatter(c->fk, s, r, n, dt(d), op(o)));
}

API int bkcl_all_to_all(fake_ctx_t *c, const void *s, size_t n, void *r,
                        int d, void *st)
{
    int e = enter(c, "bkcl_all_to_all", d, 0);

    (void)st;
    return (e >= 0) ? e : rc(fk_alltoall(c->fk, s, r, n, dt(d)));
}

API int bkcl_send(fake_ctx_t *c, const void *s, size_t n, int peer, int d,
                  void *st)
{
    int e = enter(c, "bkcl_send", d, 0);

    (void)st;
    return (e >= 0) ? e : rc(fk_group_add(c->fk, 1, s,
                                          n * fk_dtsize(dt(d)), peer));
}

API int bkcl_recv(fake_ctx_t *c, void *r, size_t n, int peer, int d,
                  void *st)
{
    int e = enter(c, "bkcl_recv", d, 0);

    (void)st;
    return (e >= 0) ? e : rc(fk_group_add(c->fk, 0, r,
                                          n * fk_dtsize(dt(d)), peer));
}

API int bkcl_group_start(void)
{
    fk_group_start();
    return OK;
}

API int bkcl_group_end(void)
{
    return rc(fk_group_end());
}
