/*
 * rd.c - latency-oriented algorithms on the hypercube: recursive doubling
 * all_reduce, Rabenseifner's all_reduce (recursive-halving reduce-scatter,
 * then recursive-doubling all-gather), recursive doubling all_gather, and
 * the direct reduce_scatter for small messages.
 *
 * Non-power-of-two sizes (all_reduce): with p' the largest power of two
 * <= p and rem = p - p', ranks 0 .. 2*rem-1 pair up first ("fold"): each
 * even rank hands its whole vector to the odd rank above it and waits; the
 * odd rank combines and takes part as newrank r/2; ranks >= 2*rem take
 * part as newrank r - rem. At the end the odd ranks hand the result back.
 *
 *   newrank nr -> rank:  nr < rem ? 2*nr + 1 : nr + rem
 *
 * Invariants:
 *  1. Both partners of an exchange combine in the same operand order, the
 *     lower newrank's data first, so they hold bit-identical vectors after
 *     every step, and all_reduce gives the same bits on every rank.
 *  2. In Rabenseifner's algorithm each element is combined by exactly one
 *     rank per level; the all-gather copies finished elements only.
 *  3. avg divides once, after the last combining step, by p.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"

static int scomm_rd_real(int nr, int rem)
{
    return (nr < rem) ? (2 * nr + 1) : (nr + rem);
}

static scomm_status_t scomm_rd_send(scomm_comm_t *comm, int peer,
                                    const void *buf, size_t len)
{
    scomm_req_t *req = NULL;
    scomm_status_t status;

    status = scomm_p2p_isend(comm, peer, SCOMM_TAG_COLL, buf, len, &req);
    if (status != SCOMM_OK) {
        return status;
    }
    return scomm_coll_wait1(comm, &req);
}

static scomm_status_t scomm_rd_recv(scomm_comm_t *comm, int peer, void *buf,
                                    size_t len)
{
    scomm_req_t *req = NULL;
    scomm_status_t status;

    status = scomm_p2p_irecv(comm, peer, SCOMM_TAG_COLL, buf, len, &req);
    if (status != SCOMM_OK) {
        return status;
    }
    return scomm_coll_wait1(comm, &req);
}

/* acc = lower (op) higher, where mine is acc and theirs is tmp. */
static void scomm_rd_combine(char *acc, const char *tmp, size_t count,
                             int mine_lower, const scomm_coll_args_t *a)
{
    if (mine_lower) {
        scomm_reduce2_out(acc, acc, tmp, count, a->dtype, a->redop);
    } else {
        scomm_reduce2_out(acc, tmp, acc, count, a->dtype, a->redop);
    }
}

/*
 * Fold: on return *newrank is this rank's place in the power-of-two core,
 * or -1 for an even rank that handed its data over. acc holds this rank's
 * vector (combined with its partner's for the odd ranks).
 */
static scomm_status_t scomm_rd_fold(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a, char *acc,
                                    char *tmp, int rem, int *newrank)
{
    int r = comm->rank;
    scomm_status_t status;

    if (r >= 2 * rem) {
        *newrank = r - rem;
        if (!a->inplace) {
            memcpy(acc, a->sendbuf, a->bytes);
        }
        return SCOMM_OK;
    }
    if ((r % 2) == 0) {
        *newrank = -1;
        return scomm_rd_send(comm, r + 1, a->sendbuf, a->bytes);
    }
    *newrank = r / 2;
    status   = scomm_rd_recv(comm, r - 1, tmp, a->bytes);
    if (status != SCOMM_OK) {
        return status;
    }
    /* The partner r-1 is the lower rank: its data first. */
    scomm_reduce2_out(acc, tmp, a->sendbuf, a->count, a->dtype, a->redop);
    return SCOMM_OK;
}

static scomm_status_t scomm_rd_unfold(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a, char *acc,
                                      int rem)
{
    int r = comm->rank;

    if (r >= 2 * rem) {
        return SCOMM_OK;
    }
    if ((r % 2) == 1) {
        return scomm_rd_send(comm, r - 1, acc, a->bytes);
    }
    return scomm_rd_recv(comm, r + 1, acc, a->bytes);
}

scomm_status_t scomm_allreduce_rd(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a)
{
    int p = comm->size, pof2 = scomm_coll_pow2_floor(p), rem = p - pof2;
    int newrank = -1, mask, pn, peer;
    char *acc = a->recvbuf, *tmp;
    scomm_status_t status;

    tmp = scomm_coll_malloc(comm, a->bytes, "recursive doubling scratch");
    if (tmp == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    status = scomm_rd_fold(comm, a, acc, tmp, rem, &newrank);
    for (mask = 1; (status == SCOMM_OK) && (newrank >= 0) && (mask < pof2);
         mask <<= 1) {
        pn     = newrank ^ mask;
        peer   = scomm_rd_real(pn, rem);
        status = scomm_p2p_sendrecv(comm, acc, a->bytes, peer, tmp, a->bytes,
                                    peer, SCOMM_TAG_COLL);
        if (status == SCOMM_OK) {
            scomm_rd_combine(acc, tmp, a->count, newrank < pn, a);
        }
    }
    if ((status == SCOMM_OK) && (newrank >= 0) && (a->redop == SCOMM_AVG)) {
        scomm_reduce_div(acc, a->count, a->dtype, p);
    }
    if (status == SCOMM_OK) {
        status = scomm_rd_unfold(comm, a, acc, rem);
    }
    free(tmp);
    return status;
}

int scomm_allreduce_rabenseifner_supports(const scomm_comm_t *comm,
                                          const scomm_coll_args_t *a,
                                          char *why, size_t whylen)
{
    int pof2 = scomm_coll_pow2_floor(comm->size);

    if (a->count < (size_t)pof2) {
        snprintf(why, whylen, "count %zu < %d, the ranks that halve the "
                 "vector", a->count, pof2);
        return 0;
    }
    return 1;
}

scomm_status_t scomm_allreduce_rabenseifner(scomm_comm_t *comm,
                                            const scomm_coll_args_t *a)
{
    int p = comm->size, pof2 = scomm_coll_pow2_floor(p), rem = p - pof2;
    int r = comm->rank, newrank = -1, mask, pn, peer, depth = 0;
    size_t lo = 0, hi = a->count, mid, klo, khi, glo, ghi, olo, ohi;
    size_t los[32], his[32];
    const size_t es = a->esize;
    char *acc = a->recvbuf, *tmp;
    size_t tmp_bytes;
    scomm_status_t status;

    /* An odd folding rank receives a whole vector; halving needs half. */
    tmp_bytes = ((r < 2 * rem) && ((r % 2) == 1)) ?
                a->bytes : (a->count - a->count / 2) * es;
    tmp = scomm_coll_malloc(comm, tmp_bytes, "Rabenseifner scratch");
    if (tmp == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    status = scomm_rd_fold(comm, a, acc, tmp, rem, &newrank);
    if ((status == SCOMM_OK) && (newrank >= 0)) {
        /* Recursive halving: keep the lower half when the mask bit is 0. */
        for (mask = pof2 >> 1; (status == SCOMM_OK) && (mask > 0);
             mask >>= 1) {
            pn   = newrank ^ mask;
            peer = scomm_rd_real(pn, rem);
            mid  = lo + (hi - lo) / 2;
            if ((newrank & mask) == 0) {
                klo = lo;
                khi = mid;
                glo = mid;
                ghi = hi;
            } else {
                klo = mid;
                khi = hi;
                glo = lo;
                ghi = mid;
            }
            status = scomm_p2p_sendrecv(comm, acc + glo * es,
                                        (ghi - glo) * es, peer, tmp,
                                        (khi - klo) * es, peer,
                                        SCOMM_TAG_COLL);
            if (status == SCOMM_OK) {
                scomm_rd_combine(acc + klo * es, tmp, khi - klo, newrank < pn,
                                 a);
                los[depth] = lo;
                his[depth] = hi;
                depth++;
                lo = klo;
                hi = khi;
            }
        }
        if ((status == SCOMM_OK) && (a->redop == SCOMM_AVG)) {
            scomm_reduce_div(acc + lo * es, hi - lo, a->dtype, p);
        }
        /* Recursive doubling all-gather retraces the halving upwards. */
        for (mask = 1; (status == SCOMM_OK) && (mask < pof2); mask <<= 1) {
            pn = newrank ^ mask;
            peer = scomm_rd_real(pn, rem);
            depth--;
            if (lo == los[depth]) {
                olo = hi;
                ohi = his[depth];
            } else {
                olo = los[depth];
                ohi = lo;
            }
            status = scomm_p2p_sendrecv(comm, acc + lo * es, (hi - lo) * es,
                                        peer, acc + olo * es,
                                        (ohi - olo) * es, peer,
                                        SCOMM_TAG_COLL);
            lo = los[depth];
            hi = his[depth];
        }
    }
    if (status == SCOMM_OK) {
        status = scomm_rd_unfold(comm, a, acc, rem);
    }
    free(tmp);
    return status;
}

int scomm_allgather_rd_supports(const scomm_comm_t *comm,
                                const scomm_coll_args_t *a, char *why,
                                size_t whylen)
{
    (void)a;
    if (!scomm_coll_is_pow2(comm->size)) {
        snprintf(why, whylen, "%d ranks is not a power of two", comm->size);
        return 0;
    }
    return 1;
}

scomm_status_t scomm_allgather_rd(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a)
{
    int r = comm->rank, mask, partner;
    char *recv = a->recvbuf;
    size_t b = a->bytes;
    scomm_status_t status = SCOMM_OK;

    if (!a->inplace) {
        memcpy(recv + (size_t)r * b, a->sendbuf, b);
    }
    /* After the step with mask m this rank holds the m*2 blocks of its
     * aligned group, contiguous in recvbuf. */
    for (mask = 1; (status == SCOMM_OK) && (mask < comm->size); mask <<= 1) {
        size_t mine   = (size_t)(r & ~(mask - 1));
        size_t theirs = mine ^ (size_t)mask;

        partner = r ^ mask;
        status  = scomm_p2p_sendrecv(comm, recv + mine * b, (size_t)mask * b,
                                     partner, recv + theirs * b,
                                     (size_t)mask * b, partner,
                                     SCOMM_TAG_COLL);
    }
    return status;
}

/*
 * Direct reduce_scatter: every rank sends block q to rank q at once and
 * combines the p blocks it receives in rank order with one reduce_n (so
 * low-precision floats round once). Scratch: p-1 blocks.
 */
scomm_status_t scomm_reducescatter_direct(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a)
{
    int p = comm->size, r = comm->rank, q, n = 0;
    const char *send = a->sendbuf;
    size_t b = a->bytes;
    scomm_req_t **reqs;
    const void **srcs;
    char *tmp;
    scomm_status_t status = SCOMM_OK;

    reqs = calloc(2 * (size_t)p, sizeof(*reqs));
    srcs = calloc((size_t)p, sizeof(*srcs));
    tmp  = scomm_coll_malloc(comm, (size_t)(p - 1) * b, "direct scratch");
    if ((reqs == NULL) || (srcs == NULL) || (tmp == NULL)) {
        free(reqs);
        free(srcs);
        free(tmp);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for the direct scratch",
                               comm->cur_op);
    }
    for (q = 0; (q < p) && (status == SCOMM_OK); q++) {
        if (q == r) {
            srcs[q] = send + (size_t)r * b;
            continue;
        }
        srcs[q] = tmp + (size_t)((q < r) ? q : q - 1) * b;
        status  = scomm_p2p_irecv(comm, q, SCOMM_TAG_COLL, (void *)srcs[q], b,
                                  &reqs[n++]);
    }
    for (q = 1; (q < p) && (status == SCOMM_OK); q++) {
        int dst = (r + q) % p;

        status = scomm_p2p_isend(comm, dst, SCOMM_TAG_COLL,
                                 send + (size_t)dst * b, b, &reqs[n++]);
    }
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, reqs, (size_t)n);
    }
    if (status == SCOMM_OK) {
        scomm_reduce_n(a->recvbuf, srcs, p, a->count, a->dtype, a->redop, p);
    } else {
        status = scomm_coll_abandon(comm, status, reqs, (size_t)n);
    }
    free(tmp);
    free(srcs);
    free(reqs);
    return status;
}
