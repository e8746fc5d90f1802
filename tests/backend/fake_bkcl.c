/*
 * fake_bkcl.c - a stand-in libbkcl.so for the tests: the BKCL C API subset
 * scomm's adapter uses (context first in every call), on the fake device
 * by fake_engine.c, with the BKCLDataType / BKCLOp numbering scomm's
 * adapter assumes (see src/backend/bkcl.c: to verify on hardware). It
 * links the fake libxpurt.so, the runtime of its streams and events.
 *
 * Knobs: FAKE_BKCL_FAIL="call:code", FAKE_BKCL_HANG=call (its kernel never
 * ends before bkcl_comm_abort), FAKE_BKCL_LOG (init, abort, destroy).
 *
 * Invariants:
 *  1. The 512-byte unique id starts with the engine's segment name.
 *  2. bkcl_group_start/end make the calls between them one launch.
 *  3. BKCL has no asynchronous-error query: a failed kernel is seen only
 *     as a stream that finished (or never does).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_engine.h"

#define API __attribute__((visibility("default")))

enum { OK = 0, INVALID = 1, RUNTIME = 2, SYSTEM = 3, INTERNAL = 4 };

static const fkv_codes_t fake_codes = {
    .ok = OK, .inval = INVALID, .usage = INVALID, .remote = SYSTEM,
    .internal = INTERNAL, .inprogress = -1};

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

static int call(fkv_comm_t *c, const char *name, int kind, const void *s,
                void *r, size_t n, int d, int o, int root, int peer,
                void *st)
{
    fkv_op_t x = {kind, s, r, n, dt(d), o, root, peer};
    int rc;

    if (c == NULL) {
        return INVALID;
    }
    rc = fkv_submit(c, name, &x, st);
    return (rc < 0) ? INVALID : rc;
}

API int bkcl_get_unique_id(void *uid)
{
    memset(uid, 0, 512);
    fk_make_name(uid);
    return OK;
}

API int bkcl_init_rank(fkv_comm_t **ctx, int rank, int nranks, void *uid)
{
    return fkv_init(ctx, "FAKE_BKCL", &fake_codes, "bkcl_init_rank", uid,
                    nranks, rank, 0);
}

API int bkcl_destroy_context(fkv_comm_t *c)
{
    if (c != NULL) {
        fkv_destroy(c);
    }
    return OK;
}

API int bkcl_comm_abort(fkv_comm_t *c)
{
    if (c != NULL) {
        fkv_abort(c);
    }
    return OK;
}

API int bkcl_all_reduce(fkv_comm_t *c, const void *s, void *r, size_t n,
                        int d, int o, void *st)
{
    return call(c, "bkcl_all_reduce", FKV_ALLREDUCE, s, r, n, d, op(o), 0, 0,
                st);
}

API int bkcl_broadcast(fkv_comm_t *c, const void *s, void *r, size_t n,
                       int d, int root, void *st)
{
    return call(c, "bkcl_broadcast", FKV_BCAST, s, r, n, d, FK_SUM, root, 0,
                st);
}

API int bkcl_reduce(fkv_comm_t *c, const void *s, void *r, size_t n, int d,
                    int o, int root, void *st)
{
    return call(c, "bkcl_reduce", FKV_REDUCE, s, r, n, d, op(o), root, 0,
                st);
}

API int bkcl_all_gather(fkv_comm_t *c, const void *s, size_t n, void *r,
                        int d, void *st)
{
    return call(c, "bkcl_all_gather", FKV_ALLGATHER, s, r, n, d, FK_SUM, 0,
                0, st);
}

API int bkcl_reduce_scatter(fkv_comm_t *c, const void *s, void *r, size_t n,
                            int d, int o, void *st)
{
    return call(c, "bkcl_reduce_scatter", FKV_REDUCESCATTER, s, r, n, d,
                op(o), 0, 0, st);
}

API int bkcl_all_to_all(fkv_comm_t *c, const void *s, size_t n, void *r,
                        int d, void *st)
{
    return call(c, "bkcl_all_to_all", FKV_ALLTOALL, s, r, n, d, FK_SUM, 0, 0,
                st);
}

API int bkcl_send(fkv_comm_t *c, const void *s, size_t n, int peer, int d,
                  void *st)
{
    return call(c, "bkcl_send", FKV_SEND, s, NULL, n, d, FK_SUM, 0, peer,
                st);
}

API int bkcl_recv(fkv_comm_t *c, void *r, size_t n, int peer, int d,
                  void *st)
{
    return call(c, "bkcl_recv", FKV_RECV, NULL, r, n, d, FK_SUM, 0, peer,
                st);
}

API int bkcl_group_start(void)
{
    fkv_group_start();
    return OK;
}

API int bkcl_group_end(void)
{
    int rc = fkv_group_end();

    return (rc < 0) ? INVALID : rc;
}
