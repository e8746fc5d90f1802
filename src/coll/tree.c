/*
 * tree.c - rooted collectives: binomial-tree broadcast and reduce, the
 * pipelined chain broadcast, linear gather and scatter.
 *
 * Ranks are renumbered relative to the root, v = (rank - root) mod p, so
 * the root is v = 0. Binomial tree: the parent of v is v with its lowest
 * set bit cleared; the children of v are v + m for every power of two m
 * below v's lowest set bit (below p for the root) with v + m < p.
 *
 *   p = 6:   0 -> 4 -> 5          broadcast: data flows down,
 *            0 -> 2 -> 3          largest subtree first;
 *            0 -> 1               reduce: data flows up, smallest first.
 *
 * Chain: v sends to v+1. The message is cut into segments and segment j
 * is forwarded as soon as it arrives, so p-1 hops cost one message time
 * plus p-2 segment times.
 *
 * Invariants:
 *  1. A reduce combines at each node in a fixed order (its own data, then
 *     children by increasing distance), so the root's result does not
 *     depend on timing.
 *  2. Non-root ranks never touch recvbuf of reduce/gather, nor sendbuf of
 *     scatter (they may be NULL).
 */
#include <stdlib.h>
#include <string.h>

#include "coll.h"

static int scomm_tree_real(int v, int root, int p)
{
    return (v + root) % p;
}

scomm_status_t scomm_bcast_binomial(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    int p = comm->size, root = a->root;
    int v = (comm->rank - root + p) % p, mask = 1, n = 0;
    scomm_req_t *reqs[32];
    scomm_req_t *req = NULL;
    scomm_status_t status = SCOMM_OK;

    while (mask < p) {
        if (v & mask) {
            status = scomm_p2p_irecv(comm, scomm_tree_real(v - mask, root, p),
                                     SCOMM_TAG_COLL, a->recvbuf, a->bytes,
                                     &req);
            if (status == SCOMM_OK) {
                status = scomm_coll_wait1(comm, &req);
            }
            break;
        }
        mask <<= 1;
    }
    mask >>= 1;
    while ((mask > 0) && (status == SCOMM_OK)) {
        if (v + mask < p) {
            reqs[n] = NULL;
            status  = scomm_p2p_isend(comm,
                                      scomm_tree_real(v + mask, root, p),
                                      SCOMM_TAG_COLL, a->recvbuf, a->bytes,
                                      &reqs[n]);
            n++;
        }
        mask >>= 1;
    }
    if (status == SCOMM_OK) {
        return scomm_coll_waitn(comm, reqs, (size_t)n);
    }
    return scomm_coll_abandon(comm, status, reqs, (size_t)n);
}

scomm_status_t scomm_bcast_chain(scomm_comm_t *comm,
                                 const scomm_coll_args_t *a)
{
    int p = comm->size, root = a->root;
    int v = (comm->rank - root + p) % p;
    int prev = scomm_tree_real(v + p - 1, root, p);
    int next = (v + 1 < p) ? scomm_tree_real(v + 1, root, p) : -1;
    char *buf = a->recvbuf;
    size_t seg, nseg, j, off, len;
    scomm_req_t **reqs, **rr, **ss;
    scomm_status_t status = SCOMM_OK;

    /* At least 8 segments when the message allows, 64 KiB .. 512 KiB. */
    seg = SCOMM_MIN((size_t)SCOMM_COLL_SEG_BYTES,
                    SCOMM_MAX(a->bytes / 8, (size_t)(64u << 10)));
    seg = SCOMM_MAX(seg / a->esize, (size_t)1) * a->esize;
    nseg = (a->bytes + seg - 1) / seg;
    reqs = calloc(2 * nseg, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for requests",
                               comm->cur_op);
    }
    rr = reqs;
    ss = reqs + nseg;
    for (j = 0; (j < nseg) && (v > 0) && (status == SCOMM_OK); j++) {
        off    = j * seg;
        len    = SCOMM_MIN(seg, a->bytes - off);
        status = scomm_p2p_irecv(comm, prev, SCOMM_TAG_COLL, buf + off, len,
                                 &rr[j]);
    }
    for (j = 0; (j < nseg) && (status == SCOMM_OK); j++) {
        off = j * seg;
        len = SCOMM_MIN(seg, a->bytes - off);
        if (v > 0) {
            status = scomm_coll_wait1(comm, &rr[j]);
        }
        if ((status == SCOMM_OK) && (next >= 0)) {
            status = scomm_p2p_isend(comm, next, SCOMM_TAG_COLL, buf + off,
                                     len, &ss[j]);
        }
    }
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, ss, nseg);
    }
    if (status != SCOMM_OK) {
        status = scomm_coll_abandon(comm, status, reqs, 2 * nseg);
    }
    free(reqs);
    return status;
}

scomm_status_t scomm_reduce_binomial(scomm_comm_t *comm,
                                     const scomm_coll_args_t *a)
{
    int p = comm->size, root = a->root;
    int v = (comm->rank - root + p) % p, mask;
    char *acc = NULL, *tmp = NULL;
    scomm_req_t *req = NULL;
    scomm_status_t status = SCOMM_OK;

    if (((v & 1) != 0) || (v + 1 >= p)) {
        /* A leaf: send the input straight to the parent. */
        status = scomm_p2p_isend(comm,
                                 scomm_tree_real(v - (v & -v), root, p),
                                 SCOMM_TAG_COLL, a->sendbuf, a->bytes, &req);
        if (status == SCOMM_OK) {
            status = scomm_coll_wait1(comm, &req);
        }
        return status;
    }
    acc = (v == 0) ? (char *)a->recvbuf :
                     scomm_coll_malloc(comm, a->bytes, "reduce partials");
    tmp = scomm_coll_malloc(comm, a->bytes, "reduce scratch");
    if ((acc == NULL) || (tmp == NULL)) {
        if (v != 0) {
            free(acc);
        }
        free(tmp);
        return SCOMM_ERR_NO_MEMORY;
    }
    if (acc != a->sendbuf) {
        memcpy(acc, a->sendbuf, a->bytes);
    }
    for (mask = 1; (mask < p) && (status == SCOMM_OK); mask <<= 1) {
        if (v & mask) {
            status = scomm_p2p_isend(comm,
                                     scomm_tree_real(v - mask, root, p),
                                     SCOMM_TAG_COLL, acc, a->bytes, &req);
            if (status == SCOMM_OK) {
                status = scomm_coll_wait1(comm, &req);
            }
            break;
        }
        if (v + mask < p) {
            status = scomm_p2p_irecv(comm,
                                     scomm_tree_real(v + mask, root, p),
                                     SCOMM_TAG_COLL, tmp, a->bytes, &req);
            if (status == SCOMM_OK) {
                status = scomm_coll_wait1(comm, &req);
            }
            if (status == SCOMM_OK) {
                /* This node's partial (lower v) first. */
                scomm_reduce2_out(acc, acc, tmp, a->count, a->dtype,
                                  a->redop);
            }
        }
    }
    if ((status == SCOMM_OK) && (v == 0) && (a->redop == SCOMM_AVG)) {
        scomm_reduce_div(acc, a->count, a->dtype, p);
    }
    if (v != 0) {
        free(acc);
    }
    free(tmp);
    return status;
}

scomm_status_t scomm_gather_linear(scomm_comm_t *comm,
                                   const scomm_coll_args_t *a)
{
    int p = comm->size, r = comm->rank, q, n = 0;
    char *recv = a->recvbuf;
    scomm_req_t **reqs;
    scomm_req_t *req = NULL;
    scomm_status_t status = SCOMM_OK;

    if (r != a->root) {
        status = scomm_p2p_isend(comm, a->root, SCOMM_TAG_COLL, a->sendbuf,
                                 a->bytes, &req);
        if (status == SCOMM_OK) {
            status = scomm_coll_wait1(comm, &req);
        }
        return status;
    }
    reqs = calloc((size_t)p, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for requests",
                               comm->cur_op);
    }
    for (q = 0; (q < p) && (status == SCOMM_OK); q++) {
        if (q != r) {
            status = scomm_p2p_irecv(comm, q, SCOMM_TAG_COLL,
                                     recv + (size_t)q * a->bytes, a->bytes,
                                     &reqs[n++]);
        }
    }
    if ((status == SCOMM_OK) && !a->inplace) {
        memcpy(recv + (size_t)r * a->bytes, a->sendbuf, a->bytes);
    }
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, reqs, (size_t)n);
    } else {
        status = scomm_coll_abandon(comm, status, reqs, (size_t)n);
    }
    free(reqs);
    return status;
}

scomm_status_t scomm_scatter_linear(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    int p = comm->size, r = comm->rank, q, n = 0;
    const char *send = a->sendbuf;
    scomm_req_t **reqs;
    scomm_req_t *req = NULL;
    scomm_status_t status = SCOMM_OK;

    if (r != a->root) {
        status = scomm_p2p_irecv(comm, a->root, SCOMM_TAG_COLL, a->recvbuf,
                                 a->bytes, &req);
        if (status == SCOMM_OK) {
            status = scomm_coll_wait1(comm, &req);
        }
        return status;
    }
    reqs = calloc((size_t)p, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for requests",
                               comm->cur_op);
    }
    /* Start with the next rank so that ranks are served in a ring. */
    for (q = 1; (q < p) && (status == SCOMM_OK); q++) {
        int dst = (r + q) % p;

        status = scomm_p2p_isend(comm, dst, SCOMM_TAG_COLL,
                                 send + (size_t)dst * a->bytes, a->bytes,
                                 &reqs[n++]);
    }
    if ((status == SCOMM_OK) && !a->inplace) {
        memcpy(a->recvbuf, send + (size_t)r * a->bytes, a->bytes);
    }
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, reqs, (size_t)n);
    } else {
        status = scomm_coll_abandon(comm, status, reqs, (size_t)n);
    }
    free(reqs);
    return status;
}
