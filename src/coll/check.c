/*
 * check.c - the argument checks of the collectives: one scomm_coll_prep_*
 * per operation validates a call's arguments and fills the argument block
 * the executor (exec.c) and the algorithms receive. The public entry
 * points (src/api/coll.c) call them before anything else.
 *
 * Each prep checks, in order: the communicator, dtype, op (and the
 * dtype/op pair), count x element size (x ranks) overflow, root, NULL
 * buffers, then aliasing; a failure names the argument and nothing has
 * been written or sent.
 *
 * Invariant: an argument error returns before the world lock is taken:
 * the call leaves no trace but the error message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"

/* ---- helpers ------------------------------------------------------------- */

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

/* ---- one prep per operation ---------------------------------------------- */

scomm_status_t scomm_coll_prep_all_reduce(scomm_coll_args_t *a,
                                          const char *name,
                                          const void *sendbuf, void *recvbuf,
                                          size_t count, scomm_dtype_t dtype,
                                          scomm_redop_t op, scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_ALLREDUCE, sendbuf, recvbuf, count,
                         dtype, bytes);
    a->redop   = op;
    a->inplace = (sendbuf == recvbuf);
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_all_gather(scomm_coll_args_t *a,
                                          const char *name,
                                          const void *sendbuf, void *recvbuf,
                                          size_t sendcount,
                                          scomm_dtype_t dtype,
                                          scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_ALLGATHER, sendbuf, recvbuf,
                         sendcount, dtype, bytes);
    a->inplace = inplace;
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_reduce_scatter(scomm_coll_args_t *a,
                                              const char *name,
                                              const void *sendbuf,
                                              void *recvbuf, size_t recvcount,
                                              scomm_dtype_t dtype,
                                              scomm_redop_t op,
                                              scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_REDUCESCATTER, sendbuf, recvbuf,
                         recvcount, dtype, bytes);
    a->redop   = op;
    a->inplace = inplace;
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_broadcast(scomm_coll_args_t *a,
                                         const char *name, void *buf,
                                         size_t count, scomm_dtype_t dtype,
                                         int32_t root, scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_BROADCAST, buf, buf, count, dtype,
                         bytes);
    a->root    = root;
    a->inplace = 1;
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_reduce(scomm_coll_args_t *a, const char *name,
                                      const void *sendbuf, void *recvbuf,
                                      size_t count, scomm_dtype_t dtype,
                                      scomm_redop_t op, int32_t root,
                                      scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_REDUCE, sendbuf,
                         is_root ? recvbuf : NULL, count, dtype, bytes);
    a->redop   = op;
    a->root    = root;
    a->inplace = is_root && (sendbuf == recvbuf);
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_all_to_all(scomm_coll_args_t *a,
                                          const char *name,
                                          const void *sendbuf, void *recvbuf,
                                          size_t count_per_peer,
                                          scomm_dtype_t dtype,
                                          scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_ALLTOALL, sendbuf, recvbuf,
                         count_per_peer, dtype, bytes);
    a->inplace = (sendbuf == recvbuf);
    return SCOMM_OK;
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

scomm_status_t scomm_coll_prep_all_to_allv(scomm_coll_args_t *a,
                                           const char *name,
                                           const void *sendbuf,
                                           const size_t *sendcounts,
                                           const size_t *sdispls,
                                           void *recvbuf,
                                           const size_t *recvcounts,
                                           const size_t *rdispls,
                                           scomm_dtype_t dtype,
                                           scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_ALLTOALLV, sendbuf, recvbuf, 0,
                         dtype, 0);
    a->inplace = inplace;
    a->scounts = sendcounts;
    a->sdispls = sdispls;
    a->rcounts = recvcounts;
    a->rdispls = rdispls;
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_gather(scomm_coll_args_t *a, const char *name,
                                      const void *sendbuf, void *recvbuf,
                                      size_t sendcount, scomm_dtype_t dtype,
                                      int32_t root, scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_GATHER, sendbuf,
                         (comm->rank == root) ? recvbuf : NULL, sendcount,
                         dtype, bytes);
    a->root    = root;
    a->inplace = inplace;
    return SCOMM_OK;
}

scomm_status_t scomm_coll_prep_scatter(scomm_coll_args_t *a, const char *name,
                                       const void *sendbuf, void *recvbuf,
                                       size_t recvcount, scomm_dtype_t dtype,
                                       int32_t root, scomm_comm_t *comm)
{
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
    scomm_coll_args_init(a, SCOMM_COLL_SCATTER,
                         (comm->rank == root) ? sendbuf : NULL, recvbuf,
                         recvcount, dtype, bytes);
    a->root    = root;
    a->inplace = inplace;
    return SCOMM_OK;
}
