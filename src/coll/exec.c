/*
 * exec.c - the collective executor: every collective, blocking or run by
 * the overlap engine's thread, goes through scomm_coll_run(), which takes
 * the world lock and:
 *
 *   SCOMM_CHECK? -> compare arguments (ring all-gather of a descriptor)
 *   offloaded    -> comm->coll_offload (a vendor library, src/backend)
 *   count == 0   -> record "none", done
 *   1 rank       -> copy locally, record "local", done
 *   otherwise    -> select (select.c), run; on a failure after data moved,
 *                   fail the world so that every rank stops at once.
 *
 * Around it the telemetry hooks count and time the call.
 *
 * Invariant: a mismatch found by SCOMM_CHECK is seen identically by every
 * rank (all compare the same gathered descriptors), so all return
 * SCOMM_ERR_MISMATCH and the communicator stays usable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../telemetry/tm.h"
#include "coll.h"

/* ---- SCOMM_CHECK: compare arguments across ranks ------------------------ */

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

/* ---- telemetry ----------------------------------------------------------- */

/*
 * Bytes of a collective as nccl-tests counts its size: all_reduce,
 * broadcast, reduce: the buffer; all_gather, gather: total output;
 * reduce_scatter, scatter: total input; all_to_all(v): total input.
 */
static uint64_t scomm_coll_tm_bytes(const scomm_coll_args_t *a, int size)
{
    uint64_t bytes = 0;
    int q;

    switch (a->op) {
    case SCOMM_COLL_ALLREDUCE:
    case SCOMM_COLL_BROADCAST:
    case SCOMM_COLL_REDUCE:
        return a->bytes;
    case SCOMM_COLL_ALLTOALLV:
        for (q = 0; q < size; q++) {
            bytes += (uint64_t)a->scounts[q] * a->esize;
        }
        return bytes;
    default:
        return (uint64_t)a->bytes * (uint64_t)size;
    }
}

/*
 * End of a collective (scomm_coll_run), world lock held. algo is the
 * algorithm's name (a string that lives as long as the library), NULL
 * when none ran ("none" / "local").
 */
static void scomm_coll_tm_end(scomm_comm_t *comm, const scomm_coll_args_t *a,
                              const char *algo, scomm_status_t status,
                              uint64_t t0)
{
    if (t0 == 0) {
        return;
    }
    if (algo == NULL) {
        algo = ((comm->size == 1) && (status == SCOMM_OK) &&
                ((a->count > 0) || (a->op == SCOMM_COLL_ALLTOALLV)))
                   ? scomm_tm_algo_local : scomm_tm_algo_none;
    }
    scomm_tm_op_end(comm, (int)a->op, algo,
                    scomm_coll_tm_bytes(a, comm->size), -1, status, t0);
}

/* ---- running ------------------------------------------------------------- */

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
    } else if (comm->coll_offload != NULL) {
        status = comm->coll_offload(comm, name, a); /* a vendor library */
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
    scomm_coll_tm_end(comm, a, (algo != NULL) ? algo->name : NULL, status,
                      tm_t0);
    pthread_mutex_unlock(&w->lock);
    return status;
}
