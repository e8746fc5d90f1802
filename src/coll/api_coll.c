/*
 * api_coll.c - the public collective calls: argument checks, the optional
 * cross-rank argument comparison (SCOMM_CHECK=1), the trivial cases, and
 * the hand-off to the selected algorithm.
 *
 * Each entry point checks, in order: the communicator, dtype, op (and the
 * dtype/op pair), count x element size (x ranks) overflow, root, NULL
 * buffers, then aliasing; a failure names the argument and nothing has
 * been written or sent. Then scomm_coll_run() takes the world lock and:
 *
 *   SCOMM_CHECK? -> compare arguments (ring all-gather of a descriptor)
 *   count == 0   -> record "none", done
 *   1 rank       -> copy locally, record "local", done
 *   otherwise    -> select (select.c), run; on a failure after data moved,
 *                   fail the world so that every rank stops at once.
 *
 * Invariants:
 *  1. An argument error returns before the lock is taken: the call leaves
 *     no trace but the error message.
 *  2. A mismatch found by SCOMM_CHECK is seen identically by every rank
 *     (all compare the same gathered descriptors), so all return
 *     SCOMM_ERR_MISMATCH and the communicator stays usable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "../telemetry/tm.h"
#include "../overlap/overlap.h"
#include "../backend/backend.h"

/* ---- argument checks ---------------------------------------------------- */

static scomm_status_t scomm_coll_chk_dtype(scomm_comm_t *comm,
                                           const char *name,
                                           scomm_dtype_t dtype, size_t *es)
{
    *es = scomm_dtype_size(dtype);
    if (*es == 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: dtype %d is not a scomm_dtype_t", name,
                               (int)dtype);
    }
    return SCOMM_OK;
}

static scomm_status_t scomm_coll_chk_op(scomm_comm_t *comm, const char *name,
                                        scomm_dtype_t dtype, scomm_redop_t op)
{
    char why[128];

    if (((int)op < 0) || (op >= SCOMM_REDOP_COUNT)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: op %d is not a scomm_redop_t", name,
                               (int)op);
    }
    if (scomm_reduce_check(dtype, op, why, sizeof(why)) != 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: op %s on dtype %s: %s", name,
                               scomm_redop_name(op), scomm_dtype_name(dtype),
                               why);
    }
    return SCOMM_OK;
}

/* count * es (-> *bytes) and that times mult (-> *total) must fit. */
static scomm_status_t scomm_coll_chk_count(scomm_comm_t *comm,
                                           const char *name, const char *arg,
                                           size_t count, scomm_dtype_t dtype,
                                           size_t mult, size_t *bytes,
                                           size_t *total)
{
    size_t es = scomm_dtype_size(dtype), t = 0;

    if (scomm_mul_overflow(count, es, bytes) ||
        scomm_mul_overflow(*bytes, mult, &t) || (t > (size_t)INT64_MAX)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: %s %zu x %zu-byte %s%s overflows", name,
                               arg, count, es, scomm_dtype_name(dtype),
                               (mult > 1) ? " x ranks" : "");
    }
    if (total != NULL) {
        *total = t;
    }
    return SCOMM_OK;
}

static scomm_status_t scomm_coll_chk_root(scomm_comm_t *comm,
                                          const char *name, int32_t root)
{
    if ((root < 0) || (root >= comm->size)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: root %d is out of range 0..%d", name,
                               (int)root, comm->size - 1);
    }
    return SCOMM_OK;
}

static scomm_status_t scomm_coll_chk_null(scomm_comm_t *comm,
                                          const char *name, const char *arg,
                                          const void *buf, size_t count)
{
    if ((buf == NULL) && (count > 0)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "%s: %s is NULL with count %zu", name, arg,
                               count);
    }
    return SCOMM_OK;
}

/* 1 if [a, a+alen) and [b, b+blen) share a byte. */
static int scomm_coll_overlap(const void *a, size_t alen, const void *b,
                              size_t blen)
{
    uintptr_t ua = (uintptr_t)a, ub = (uintptr_t)b;

    if ((alen == 0) || (blen == 0)) {
        return 0;
    }
    return (ua < ub + blen) && (ub < ua + alen);
}

static scomm_status_t scomm_coll_bad_overlap(scomm_comm_t *comm,
                                             const char *name,
                                             const char *hint)
{
    return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                           "%s: sendbuf and recvbuf overlap without being "
                           "the in-place form (%s)", name, hint);
}

static void scomm_coll_args_init(scomm_coll_args_t *a, scomm_coll_op_t op,
                                 const void *sendbuf, void *recvbuf,
                                 size_t count, scomm_dtype_t dtype,
                                 size_t bytes)
{
    memset(a, 0, sizeof(*a));
    a->op      = op;
    a->sendbuf = sendbuf;
    a->recvbuf = recvbuf;
    a->count   = count;
    a->esize   = scomm_dtype_size(dtype);
    a->bytes   = bytes;
    a->dtype   = dtype;
    a->redop   = SCOMM_SUM;
}

/* ---- SCOMM_CHECK: compare arguments across ranks ----------------------- */

typedef struct scomm_coll_desc {
    uint32_t op;
    int32_t  dtype;
    int32_t  redop;  /* -1 where the op does not reduce */
    int32_t  root;   /* -1 where the op has no root */
    uint64_t count;  /* 0 for all_to_allv */
    uint64_t seq;
} scomm_coll_desc_t;

typedef struct scomm_coll_vdesc {
    int32_t  bad_peer; /* -1: every recvcount matched its sender */
    int32_t  pad;
    uint64_t expect;
    uint64_t sent;
} scomm_coll_vdesc_t;

static int scomm_coll_is_reduction(scomm_coll_op_t op)
{
    return (op == SCOMM_COLL_ALLREDUCE) || (op == SCOMM_COLL_REDUCESCATTER) ||
           (op == SCOMM_COLL_REDUCE);
}

static int scomm_coll_is_rooted(scomm_coll_op_t op)
{
    return (op == SCOMM_COLL_BROADCAST) || (op == SCOMM_COLL_REDUCE) ||
           (op == SCOMM_COLL_GATHER) || (op == SCOMM_COLL_SCATTER);
}

static scomm_status_t scomm_coll_mismatch(scomm_comm_t *comm, int q,
                                          const scomm_coll_desc_t *d,
                                          const scomm_coll_desc_t *d0)
{
    const char *what = "sequence number";
    long long v = (long long)d->seq, v0 = (long long)d0->seq;

    if (d->op != d0->op) {
        return scomm_set_error(comm, SCOMM_ERR_MISMATCH,
                               "%s: argument mismatch: rank %d called %s, "
                               "rank 0 called %s", comm->cur_op, q,
                               scomm_coll_op_name((scomm_coll_op_t)d->op),
                               scomm_coll_op_name((scomm_coll_op_t)d0->op));
    }
    if (d->count != d0->count) {
        what = "count";
        v    = (long long)d->count;
        v0   = (long long)d0->count;
    } else if (d->dtype != d0->dtype) {
        what = "dtype";
        v    = d->dtype;
        v0   = d0->dtype;
    } else if (d->redop != d0->redop) {
        what = "op";
        v    = d->redop;
        v0   = d0->redop;
    } else if (d->root != d0->root) {
        what = "root";
        v    = d->root;
        v0   = d0->root;
    }
    return scomm_set_error(comm, SCOMM_ERR_MISMATCH,
                           "%s: argument mismatch: rank %d passed %s %lld, "
                           "rank 0 passed %lld", comm->cur_op, q, what, v,
                           v0);
}

/* all_to_allv: sendcounts[q] here must equal recvcounts[me] on rank q. */
static scomm_status_t scomm_coll_check_v(scomm_comm_t *comm,
                                         const scomm_coll_args_t *a)
{
    int p = comm->size, r = comm->rank, s, q;
    scomm_coll_vdesc_t *all, mine = {-1, 0, 0, 0};
    uint64_t out, in;
    scomm_status_t status = SCOMM_OK;

    for (s = 1; (s < p) && (status == SCOMM_OK); s++) {
        int dst = (r + s) % p, src = (r - s + p) % p;

        out    = a->scounts[dst];
        in     = 0;
        status = scomm_p2p_sendrecv(comm, &out, sizeof(out), dst, &in,
                                    sizeof(in), src, SCOMM_TAG_COLL);
        if ((status == SCOMM_OK) && (mine.bad_peer < 0) &&
            (in != a->rcounts[src])) {
            mine.bad_peer = src;
            mine.expect   = a->rcounts[src];
            mine.sent     = in;
        }
    }
    if ((status == SCOMM_OK) && (mine.bad_peer < 0) &&
        (a->scounts[r] != a->rcounts[r])) {
        mine.bad_peer = r;
        mine.expect   = a->rcounts[r];
        mine.sent     = a->scounts[r];
    }
    if (status != SCOMM_OK) {
        return scomm_coll_abandon(comm, status, NULL, 0);
    }
    all = scomm_coll_malloc(comm, (size_t)p * sizeof(*all), "check");
    if (all == NULL) {
        return scomm_coll_abandon(comm, SCOMM_ERR_NO_MEMORY, NULL, 0);
    }
    all[r] = mine;
    status = scomm_coll_ring_allgather_bytes(comm, all, sizeof(*all));
    for (q = 0; (q < p) && (status == SCOMM_OK); q++) {
        if (all[q].bad_peer >= 0) {
            status = scomm_set_error(
                comm, SCOMM_ERR_MISMATCH,
                "%s: argument mismatch: rank %d expects recvcounts[%d] = "
                "%llu, but rank %d sends %llu", comm->cur_op, q,
                (int)all[q].bad_peer, (unsigned long long)all[q].expect,
                (int)all[q].bad_peer, (unsigned long long)all[q].sent);
        }
    }
    free(all);
    return status;
}

static scomm_status_t scomm_coll_check_args(scomm_comm_t *comm,
                                            const scomm_coll_args_t *a)
{
    int p = comm->size, q;
    scomm_coll_desc_t *all, mine;
    scomm_status_t status;

    memset(&mine, 0, sizeof(mine));
    mine.op    = (uint32_t)a->op;
    mine.dtype = (int32_t)a->dtype;
    mine.redop = scomm_coll_is_reduction(a->op) ? (int32_t)a->redop : -1;
    mine.root  = scomm_coll_is_rooted(a->op) ? a->root : -1;
    mine.count = (a->op == SCOMM_COLL_ALLTOALLV) ? 0 : a->count;
    mine.seq   = comm->op_seq;
    all        = scomm_coll_malloc(comm, (size_t)p * sizeof(*all), "check");
    if (all == NULL) {
        return scomm_coll_abandon(comm, SCOMM_ERR_NO_MEMORY, NULL, 0);
    }
    all[comm->rank] = mine;
    status = scomm_coll_ring_allgather_bytes(comm, all, sizeof(*all));
    for (q = 1; (q < p) && (status == SCOMM_OK); q++) {
        if (memcmp(&all[q], &all[0], sizeof(mine)) != 0) {
            status = scomm_coll_mismatch(comm, q, &all[q], &all[0]);
        }
    }
    free(all);
    if ((status == SCOMM_OK) && (a->op == SCOMM_COLL_ALLTOALLV)) {
        status = scomm_coll_check_v(comm, a);
    }
    return status;
}

/* ---- running ------------------------------------------------------------ */

/* One rank: the result is the input, moved to its place. */
static void scomm_coll_local(const scomm_coll_args_t *a)
{
    const char *src = a->sendbuf;
    char *dst       = a->recvbuf;
    size_t n        = a->bytes;

    if (a->inplace || (a->op == SCOMM_COLL_BROADCAST)) {
        return;
    }
    if (a->op == SCOMM_COLL_ALLTOALLV) {
        n   = a->scounts[0] * a->esize;
        src = (n > 0) ? src + a->sdispls[0] * a->esize : src;
        dst = (n > 0) ? dst + a->rdispls[0] * a->esize : dst;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
}

scomm_status_t scomm_coll_run(scomm_comm_t *comm, const char *name,
                              const scomm_coll_args_t *a)
{
    scomm_world_t *w = comm->world;
    const scomm_coll_algo_t *algo = NULL;
    scomm_status_t status = SCOMM_OK;
    uint64_t tm_t0; /* telemetry (src/telemetry) */

    pthread_mutex_lock(&w->lock);
    tm_t0 = scomm_tm_begin(comm, (int)a->op);
    comm->cur_op = name;
    comm->op_seq++;
    if ((w->cfg.check != 0) && (comm->size > 1)) {
        status = scomm_coll_check_args(comm, a);
    }
    if (status != SCOMM_OK) {
        /* Mismatch, or already failed the world. */
    } else if (comm->vendor != NULL) {
        status = scomm_backend_coll(comm, name, a); /* src/backend */
    } else if ((a->count == 0) && (a->op != SCOMM_COLL_ALLTOALLV)) {
        scomm_coll_record_special(comm, "none", "empty",
                                  "count is 0: nothing to move");
    } else if (comm->size == 1) {
        scomm_coll_local(a);
        scomm_coll_record_special(comm, "local", "single_rank",
                                  "one rank: the result is the input, "
                                  "copied locally");
    } else {
        status = scomm_coll_select(comm, a, &algo);
        if (status == SCOMM_OK) {
            status = algo->run(comm, a);
            if (status != SCOMM_OK) {
                status = scomm_coll_abandon(comm, status, NULL, 0);
            }
        }
    }
    scomm_tm_coll_end(comm, a, (algo != NULL) ? algo->name : NULL, status,
                      tm_t0);
    pthread_mutex_unlock(&w->lock);
    return status;
}

/* ---- entry points ------------------------------------------------------- */

/* Run a validated call now, or hand it to the overlap engine (src/overlap)
 * when it is non-blocking, inside a group, or the communicator has
 * non-blocking operations that must keep their place in the order; a
 * vendor communicator's call goes to its stream (src/backend). */
static scomm_status_t scomm_coll_post(scomm_comm_t *comm, const char *name,
                                      const scomm_coll_args_t *a,
                                      scomm_req_t **req_p)
{
    if (comm->vendor != NULL) {
        /* stream-ordered: blocking, non-blocking and grouped calls alike
         * are enqueued now (src/backend) */
        return scomm_backend_post(comm, name, a, req_p);
    }
    if (SCOMM_UNLIKELY((req_p != NULL) || scomm_ovl_route(comm))) {
        return scomm_ovl_post(comm, name, a, req_p);
    }
    return scomm_coll_run(comm, name, a);
}

static scomm_status_t scomm_coll_all_reduce(const void *sendbuf, void *recvbuf,
                                            size_t count, scomm_dtype_t dtype,
                                            scomm_redop_t op,
                                            scomm_comm_t *comm,
                                            scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_all_reduce"
                                       : "scomm_iall_reduce";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_op(comm, name, dtype, op)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "count", count, dtype, 1,
                                        &bytes, NULL)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "sendbuf", sendbuf,
                                       count)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "recvbuf", recvbuf,
                                       count)) != SCOMM_OK)) {
        return status;
    }
    if ((sendbuf != recvbuf) &&
        scomm_coll_overlap(sendbuf, bytes, recvbuf, bytes)) {
        return scomm_coll_bad_overlap(comm, name, "sendbuf == recvbuf");
    }
    scomm_coll_args_init(&a, SCOMM_COLL_ALLREDUCE, sendbuf, recvbuf, count,
                         dtype, bytes);
    a.redop   = op;
    a.inplace = (sendbuf == recvbuf);
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_all_gather(const void *sendbuf, void *recvbuf,
                                            size_t sendcount,
                                            scomm_dtype_t dtype,
                                            scomm_comm_t *comm,
                                            scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_all_gather"
                                       : "scomm_iall_gather";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0, total = 0;
    int inplace;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "sendcount", sendcount,
                                        dtype, (size_t)comm->size, &bytes,
                                        &total)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "sendbuf", sendbuf,
                                       sendcount)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "recvbuf", recvbuf,
                                       sendcount)) != SCOMM_OK)) {
        return status;
    }
    inplace = (recvbuf != NULL) &&
              ((const char *)sendbuf ==
               (const char *)recvbuf + (size_t)comm->rank * bytes);
    if (!inplace && scomm_coll_overlap(sendbuf, bytes, recvbuf, total)) {
        return scomm_coll_bad_overlap(comm, name,
                                      "sendbuf == recvbuf + rank * sendcount "
                                      "* dtype size");
    }
    scomm_coll_args_init(&a, SCOMM_COLL_ALLGATHER, sendbuf, recvbuf,
                         sendcount, dtype, bytes);
    a.inplace = inplace;
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_reduce_scatter(const void *sendbuf,
                                                void *recvbuf, size_t recvcount,
                                                scomm_dtype_t dtype,
                                                scomm_redop_t op,
                                                scomm_comm_t *comm,
                                                scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_reduce_scatter"
                                       : "scomm_ireduce_scatter";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0, total = 0;
    int inplace;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_op(comm, name, dtype, op)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "recvcount", recvcount,
                                        dtype, (size_t)comm->size, &bytes,
                                        &total)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "sendbuf", sendbuf,
                                       recvcount)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "recvbuf", recvbuf,
                                       recvcount)) != SCOMM_OK)) {
        return status;
    }
    inplace = (sendbuf != NULL) &&
              ((char *)recvbuf ==
               (const char *)sendbuf + (size_t)comm->rank * bytes);
    if (!inplace && scomm_coll_overlap(sendbuf, total, recvbuf, bytes)) {
        return scomm_coll_bad_overlap(comm, name,
                                      "recvbuf == sendbuf + rank * recvcount "
                                      "* dtype size");
    }
    scomm_coll_args_init(&a, SCOMM_COLL_REDUCESCATTER, sendbuf, recvbuf,
                         recvcount, dtype, bytes);
    a.redop   = op;
    a.inplace = inplace;
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_broadcast(void *buf, size_t count,
                                           scomm_dtype_t dtype, int32_t root,
                                           scomm_comm_t *comm,
                                           scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_broadcast"
                                       : "scomm_ibroadcast";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "count", count, dtype, 1,
                                        &bytes, NULL)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_root(comm, name, root)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "buf", buf, count)) !=
         SCOMM_OK)) {
        return status;
    }
    scomm_coll_args_init(&a, SCOMM_COLL_BROADCAST, buf, buf, count, dtype,
                         bytes);
    a.root    = root;
    a.inplace = 1;
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_reduce(const void *sendbuf, void *recvbuf,
                                        size_t count, scomm_dtype_t dtype,
                                        scomm_redop_t op, int32_t root,
                                        scomm_comm_t *comm, scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_reduce"
                                       : "scomm_ireduce";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0;
    int is_root;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_op(comm, name, dtype, op)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "count", count, dtype, 1,
                                        &bytes, NULL)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_root(comm, name, root)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "sendbuf", sendbuf,
                                       count)) != SCOMM_OK)) {
        return status;
    }
    is_root = (comm->rank == root);
    if (is_root) {
        if (recvbuf == NULL && count > 0) {
            return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                   "%s: recvbuf is NULL on the root (rank "
                                   "%d) with count %zu", name, (int)root,
                                   count);
        }
        if ((sendbuf != recvbuf) &&
            scomm_coll_overlap(sendbuf, bytes, recvbuf, bytes)) {
            return scomm_coll_bad_overlap(comm, name, "sendbuf == recvbuf");
        }
    }
    scomm_coll_args_init(&a, SCOMM_COLL_REDUCE, sendbuf,
                         is_root ? recvbuf : NULL, count, dtype, bytes);
    a.redop   = op;
    a.root    = root;
    a.inplace = is_root && (sendbuf == recvbuf);
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_all_to_all(const void *sendbuf, void *recvbuf,
                                            size_t count_per_peer,
                                            scomm_dtype_t dtype,
                                            scomm_comm_t *comm,
                                            scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_all_to_all"
                                       : "scomm_iall_to_all";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0, total = 0;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "count_per_peer",
                                        count_per_peer, dtype,
                                        (size_t)comm->size, &bytes,
                                        &total)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "sendbuf", sendbuf,
                                       count_per_peer)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "recvbuf", recvbuf,
                                       count_per_peer)) != SCOMM_OK)) {
        return status;
    }
    if ((sendbuf != recvbuf) &&
        scomm_coll_overlap(sendbuf, total, recvbuf, total)) {
        return scomm_coll_bad_overlap(comm, name, "sendbuf == recvbuf");
    }
    scomm_coll_args_init(&a, SCOMM_COLL_ALLTOALL, sendbuf, recvbuf,
                         count_per_peer, dtype, bytes);
    a.inplace = (sendbuf == recvbuf);
    return scomm_coll_post(comm, name, &a, req_p);
}

/* Receive blocks must not overlap: sort them by displacement. */
typedef struct scomm_coll_blk {
    size_t displ;
    size_t count;
    int    peer;
} scomm_coll_blk_t;

static int scomm_coll_cmp_blk(const void *x, const void *y)
{
    const scomm_coll_blk_t *a = x, *b = y;

    return (a->displ > b->displ) - (a->displ < b->displ);
}

static scomm_status_t scomm_coll_chk_rblocks(scomm_comm_t *comm,
                                             const char *name,
                                             const size_t *counts,
                                             const size_t *displs)
{
    scomm_coll_blk_t *blk;
    size_t n = 0, i;
    int q;

    blk = malloc((size_t)comm->size * sizeof(*blk));
    if (blk == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory checking rdispls", name);
    }
    for (q = 0; q < comm->size; q++) {
        if (counts[q] > 0) {
            blk[n].displ = displs[q];
            blk[n].count = counts[q];
            blk[n].peer  = q;
            n++;
        }
    }
    qsort(blk, n, sizeof(*blk), scomm_coll_cmp_blk);
    for (i = 1; i < n; i++) {
        if (blk[i - 1].displ + blk[i - 1].count > blk[i].displ) {
            int a = blk[i - 1].peer, b = blk[i].peer;

            free(blk);
            return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                   "%s: receive blocks of ranks %d and %d "
                                   "overlap (rdispls/recvcounts)", name,
                                   SCOMM_MIN(a, b), SCOMM_MAX(a, b));
        }
    }
    free(blk);
    return SCOMM_OK;
}

/*
 * Check one side of all_to_allv: every block's end (displ + count) times
 * the element size fits, and [lo, hi) bytes spans the non-empty blocks.
 */
static scomm_status_t scomm_coll_chk_v(scomm_comm_t *comm, const char *name,
                                       const char *side, const void *buf,
                                       const size_t *counts,
                                       const size_t *displs, size_t es,
                                       size_t *lo, size_t *hi)
{
    size_t end, bytes;
    int q;

    *lo = SIZE_MAX;
    *hi = 0;
    for (q = 0; q < comm->size; q++) {
        if (__builtin_add_overflow(displs[q], counts[q], &end) ||
            scomm_mul_overflow(end, es, &bytes) ||
            (bytes > (size_t)INT64_MAX)) {
            return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                   "%s: %scounts[%d] %zu + %sdispls[%d] %zu "
                                   "overflows", name, side, q, counts[q],
                                   side, q, displs[q]);
        }
        if (counts[q] == 0) {
            continue;
        }
        if (buf == NULL) {
            return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                   "%s: %sbuf is NULL with %scounts[%d] %zu",
                                   name, side, side, q, counts[q]);
        }
        *lo = SCOMM_MIN(*lo, displs[q] * es);
        *hi = SCOMM_MAX(*hi, bytes);
    }
    if (*lo == SIZE_MAX) {
        *lo = 0;
    }
    return SCOMM_OK;
}

static scomm_status_t scomm_coll_all_to_allv(const void *sendbuf,
                                             const size_t *sendcounts,
                                             const size_t *sdispls,
                                             void *recvbuf,
                                             const size_t *recvcounts,
                                             const size_t *rdispls,
                                             scomm_dtype_t dtype,
                                             scomm_comm_t *comm,
                                             scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_all_to_allv"
                                       : "scomm_iall_to_allv";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, slo, shi, rlo, rhi;
    int inplace, q;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK)) {
        return status;
    }
    if ((sendcounts == NULL) || (sdispls == NULL) || (recvcounts == NULL) ||
        (rdispls == NULL)) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG, "%s: %s is NULL",
                               name,
                               (sendcounts == NULL) ? "sendcounts" :
                               (sdispls == NULL)    ? "sdispls" :
                               (recvcounts == NULL) ? "recvcounts" :
                                                      "rdispls");
    }
    if (((status = scomm_coll_chk_v(comm, name, "send", sendbuf, sendcounts,
                                    sdispls, es, &slo, &shi)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_v(comm, name, "recv", recvbuf, recvcounts,
                                    rdispls, es, &rlo, &rhi)) != SCOMM_OK)) {
        return status;
    }
    inplace = (sendbuf == recvbuf) && (sendbuf != NULL);
    if (inplace) {
        for (q = 0; q < comm->size; q++) {
            if ((sendcounts[q] != recvcounts[q]) ||
                ((sendcounts[q] > 0) && (sdispls[q] != rdispls[q]))) {
                return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                       "%s: in place (sendbuf == recvbuf) "
                                       "needs sendcounts == recvcounts and "
                                       "sdispls == rdispls; they differ at "
                                       "peer %d", name, q);
            }
        }
    } else if ((shi > slo) && (rhi > rlo) &&
               scomm_coll_overlap((const char *)sendbuf + slo, shi - slo,
                                  (const char *)recvbuf + rlo, rhi - rlo)) {
        return scomm_coll_bad_overlap(comm, name, "sendbuf == recvbuf with "
                                      "equal counts and displacements");
    }
    status = scomm_coll_chk_rblocks(comm, name, recvcounts, rdispls);
    if (status != SCOMM_OK) {
        return status;
    }
    scomm_coll_args_init(&a, SCOMM_COLL_ALLTOALLV, sendbuf, recvbuf, 0,
                         dtype, 0);
    a.inplace = inplace;
    a.scounts = sendcounts;
    a.sdispls = sdispls;
    a.rcounts = recvcounts;
    a.rdispls = rdispls;
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_gather(const void *sendbuf, void *recvbuf,
                                        size_t sendcount, scomm_dtype_t dtype,
                                        int32_t root, scomm_comm_t *comm,
                                        scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_gather"
                                       : "scomm_igather";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0, total = 0;
    int inplace = 0;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "sendcount", sendcount,
                                        dtype, (size_t)comm->size, &bytes,
                                        &total)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_root(comm, name, root)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "sendbuf", sendbuf,
                                       sendcount)) != SCOMM_OK)) {
        return status;
    }
    if (comm->rank == root) {
        if ((status = scomm_coll_chk_null(comm, name, "recvbuf (on the root)",
                                          recvbuf, sendcount)) != SCOMM_OK) {
            return status;
        }
        inplace = (recvbuf != NULL) &&
                  ((const char *)sendbuf ==
                   (const char *)recvbuf + (size_t)root * bytes);
        if (!inplace && scomm_coll_overlap(sendbuf, bytes, recvbuf, total)) {
            return scomm_coll_bad_overlap(comm, name,
                                          "sendbuf == recvbuf + root * "
                                          "sendcount * dtype size");
        }
    }
    scomm_coll_args_init(&a, SCOMM_COLL_GATHER, sendbuf,
                         (comm->rank == root) ? recvbuf : NULL, sendcount,
                         dtype, bytes);
    a.root    = root;
    a.inplace = inplace;
    return scomm_coll_post(comm, name, &a, req_p);
}

static scomm_status_t scomm_coll_scatter(const void *sendbuf, void *recvbuf,
                                         size_t recvcount, scomm_dtype_t dtype,
                                         int32_t root, scomm_comm_t *comm,
                                         scomm_req_t **req_p)
{
    const char *name = (req_p == NULL) ? "scomm_scatter"
                                       : "scomm_iscatter";
    scomm_coll_args_t a;
    scomm_status_t status;
    size_t es, bytes = 0, total = 0;
    int inplace = 0;

    if (((status = scomm_comm_check(comm, name)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_dtype(comm, name, dtype, &es)) !=
         SCOMM_OK) ||
        ((status = scomm_coll_chk_count(comm, name, "recvcount", recvcount,
                                        dtype, (size_t)comm->size, &bytes,
                                        &total)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_root(comm, name, root)) != SCOMM_OK) ||
        ((status = scomm_coll_chk_null(comm, name, "recvbuf", recvbuf,
                                       recvcount)) != SCOMM_OK)) {
        return status;
    }
    if (comm->rank == root) {
        if ((status = scomm_coll_chk_null(comm, name, "sendbuf (on the root)",
                                          sendbuf, recvcount)) != SCOMM_OK) {
            return status;
        }
        inplace = (sendbuf != NULL) &&
                  ((char *)recvbuf ==
                   (const char *)sendbuf + (size_t)root * bytes);
        if (!inplace && scomm_coll_overlap(sendbuf, total, recvbuf, bytes)) {
            return scomm_coll_bad_overlap(comm, name,
                                          "recvbuf == sendbuf + root * "
                                          "recvcount * dtype size");
        }
    }
    scomm_coll_args_init(&a, SCOMM_COLL_SCATTER,
                         (comm->rank == root) ? sendbuf : NULL, recvbuf,
                         recvcount, dtype, bytes);
    a.root    = root;
    a.inplace = inplace;
    return scomm_coll_post(comm, name, &a, req_p);
}

/* ---- public blocking and non-blocking forms ---------------------------- */
scomm_status_t scomm_all_reduce(const void *sendbuf, void *recvbuf,
                                size_t count, scomm_dtype_t dtype,
                                scomm_redop_t op, scomm_comm_t *comm)
{
    return scomm_coll_all_reduce(sendbuf, recvbuf, count, dtype, op, comm,
                                 NULL);
}

scomm_status_t scomm_iall_reduce(const void *sendbuf, void *recvbuf,
                                 size_t count, scomm_dtype_t dtype,
                                 scomm_redop_t op, scomm_comm_t *comm,
                                 scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_iall_reduce");
    }
    return scomm_coll_all_reduce(sendbuf, recvbuf, count, dtype, op, comm,
                                 req_p);
}

scomm_status_t scomm_all_gather(const void *sendbuf, void *recvbuf,
                                size_t sendcount, scomm_dtype_t dtype,
                                scomm_comm_t *comm)
{
    return scomm_coll_all_gather(sendbuf, recvbuf, sendcount, dtype, comm,
                                 NULL);
}

scomm_status_t scomm_iall_gather(const void *sendbuf, void *recvbuf,
                                 size_t sendcount, scomm_dtype_t dtype,
                                 scomm_comm_t *comm, scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_iall_gather");
    }
    return scomm_coll_all_gather(sendbuf, recvbuf, sendcount, dtype, comm,
                                 req_p);
}

scomm_status_t scomm_reduce_scatter(const void *sendbuf, void *recvbuf,
                                    size_t recvcount, scomm_dtype_t dtype,
                                    scomm_redop_t op, scomm_comm_t *comm)
{
    return scomm_coll_reduce_scatter(sendbuf, recvbuf, recvcount, dtype, op,
                                     comm, NULL);
}

scomm_status_t scomm_ireduce_scatter(const void *sendbuf, void *recvbuf,
                                     size_t recvcount, scomm_dtype_t dtype,
                                     scomm_redop_t op, scomm_comm_t *comm,
                                     scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_ireduce_scatter");
    }
    return scomm_coll_reduce_scatter(sendbuf, recvbuf, recvcount, dtype, op,
                                     comm, req_p);
}

scomm_status_t scomm_broadcast(void *buf, size_t count, scomm_dtype_t dtype,
                               int32_t root, scomm_comm_t *comm)
{
    return scomm_coll_broadcast(buf, count, dtype, root, comm, NULL);
}

scomm_status_t scomm_ibroadcast(void *buf, size_t count, scomm_dtype_t dtype,
                                int32_t root, scomm_comm_t *comm,
                                scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_ibroadcast");
    }
    return scomm_coll_broadcast(buf, count, dtype, root, comm, req_p);
}

scomm_status_t scomm_reduce(const void *sendbuf, void *recvbuf, size_t count,
                            scomm_dtype_t dtype, scomm_redop_t op, int32_t root,
                            scomm_comm_t *comm)
{
    return scomm_coll_reduce(sendbuf, recvbuf, count, dtype, op, root, comm,
                             NULL);
}

scomm_status_t scomm_ireduce(const void *sendbuf, void *recvbuf, size_t count,
                             scomm_dtype_t dtype, scomm_redop_t op,
                             int32_t root, scomm_comm_t *comm,
                             scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_ireduce");
    }
    return scomm_coll_reduce(sendbuf, recvbuf, count, dtype, op, root, comm,
                             req_p);
}

scomm_status_t scomm_all_to_all(const void *sendbuf, void *recvbuf,
                                size_t count_per_peer, scomm_dtype_t dtype,
                                scomm_comm_t *comm)
{
    return scomm_coll_all_to_all(sendbuf, recvbuf, count_per_peer, dtype, comm,
                                 NULL);
}

scomm_status_t scomm_iall_to_all(const void *sendbuf, void *recvbuf,
                                 size_t count_per_peer, scomm_dtype_t dtype,
                                 scomm_comm_t *comm, scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_iall_to_all");
    }
    return scomm_coll_all_to_all(sendbuf, recvbuf, count_per_peer, dtype, comm,
                                 req_p);
}

scomm_status_t scomm_all_to_allv(const void *sendbuf, const size_t *sendcounts,
                                 const size_t *sdispls, void *recvbuf,
                                 const size_t *recvcounts,
                                 const size_t *rdispls, scomm_dtype_t dtype,
                                 scomm_comm_t *comm)
{
    return scomm_coll_all_to_allv(sendbuf, sendcounts, sdispls, recvbuf,
                                  recvcounts, rdispls, dtype, comm, NULL);
}

scomm_status_t scomm_iall_to_allv(const void *sendbuf, const size_t *sendcounts,
                                  const size_t *sdispls, void *recvbuf,
                                  const size_t *recvcounts,
                                  const size_t *rdispls, scomm_dtype_t dtype,
                                  scomm_comm_t *comm, scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_iall_to_allv");
    }
    return scomm_coll_all_to_allv(sendbuf, sendcounts, sdispls, recvbuf,
                                  recvcounts, rdispls, dtype, comm, req_p);
}

scomm_status_t scomm_gather(const void *sendbuf, void *recvbuf,
                            size_t sendcount, scomm_dtype_t dtype, int32_t root,
                            scomm_comm_t *comm)
{
    return scomm_coll_gather(sendbuf, recvbuf, sendcount, dtype, root, comm,
                             NULL);
}

scomm_status_t scomm_igather(const void *sendbuf, void *recvbuf,
                             size_t sendcount, scomm_dtype_t dtype,
                             int32_t root, scomm_comm_t *comm,
                             scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_igather");
    }
    return scomm_coll_gather(sendbuf, recvbuf, sendcount, dtype, root, comm,
                             req_p);
}

scomm_status_t scomm_scatter(const void *sendbuf, void *recvbuf,
                             size_t recvcount, scomm_dtype_t dtype,
                             int32_t root, scomm_comm_t *comm)
{
    return scomm_coll_scatter(sendbuf, recvbuf, recvcount, dtype, root, comm,
                              NULL);
}

scomm_status_t scomm_iscatter(const void *sendbuf, void *recvbuf,
                              size_t recvcount, scomm_dtype_t dtype,
                              int32_t root, scomm_comm_t *comm,
                              scomm_req_t **req_p)
{
    if (req_p == NULL) {
        return scomm_ovl_null_req(comm, "scomm_iscatter");
    }
    return scomm_coll_scatter(sendbuf, recvbuf, recvcount, dtype, root, comm,
                              req_p);
}

scomm_status_t scomm_last_selection(const scomm_comm_t *comm,
                                    scomm_coll_record_t *out)
{
    scomm_comm_t *c = (scomm_comm_t *)comm;

    if ((c != NULL) && (c->magic == SCOMM_COMM_DEAD)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "scomm_last_selection: the communicator was "
                               "destroyed");
    }
    if ((c == NULL) || (c->magic != SCOMM_COMM_MAGIC)) {
        return scomm_comm_check(c, "scomm_last_selection");
    }
    if (out == NULL) {
        return scomm_set_error(c, SCOMM_ERR_INVALID_ARG,
                               "scomm_last_selection: out is NULL");
    }
    pthread_mutex_lock(&c->world->lock);
    if (c->last_sel.algo[0] == '\0') {
        memset(out, 0, sizeof(*out));
        snprintf(out->algo, sizeof(out->algo), "none");
        snprintf(out->rule_id, sizeof(out->rule_id), "none");
        snprintf(out->reason, sizeof(out->reason),
                 "no collective has run on this communicator");
    } else {
        *out = c->last_sel;
    }
    pthread_mutex_unlock(&c->world->lock);
    return SCOMM_OK;
}
