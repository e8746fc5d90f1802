/*
 * alltoall.c - pairwise-exchange all_to_all and all_to_allv.
 *
 * Out of place: step s = 1 .. p-1, rank r sends its block for r+s and
 * receives the block of r-s, one sendrecv per step, so each rank has one
 * message in each direction in flight and no link carries two at once.
 *
 * In place (sendbuf == recvbuf): a block can only be overwritten once it
 * has been sent, so the ranks meet in pairs, each pair exchanging the two
 * blocks that name each other through a one-block scratch. The pairs of
 * each round come from the round-robin ("circle") schedule on P = p
 * (p even) or p + 1 (p odd, one rank idle per round) players:
 *
 *   round k = 0 .. P-2:  partner(r) = (k - r) mod (P-1), or P-1 when that
 *                        is r itself; partner(P-1) = k * P/2 mod (P-1).
 *
 * Invariants:
 *  1. Both sides of every pair compute the same round for their exchange,
 *     so messages match in order.
 *  2. In place, block q of the buffer is read (into the scratch) before
 *     the receive into it is posted.
 */
#include <stdlib.h>
#include <string.h>

#include "coll.h"

/* Partner of r in round k of the circle schedule on P players (P even). */
static int scomm_a2a_partner(int r, int k, int P)
{
    int m = P - 1, d;

    if (r == m) {
        return (int)(((long long)k * (P / 2)) % m);
    }
    d = ((k - r) % m + m) % m;
    return (d == r) ? m : d;
}

static size_t scomm_a2a_count(const scomm_coll_args_t *a, const size_t *v,
                              int q)
{
    return (v != NULL) ? v[q] : a->count;
}

static size_t scomm_a2a_displ(const scomm_coll_args_t *a, const size_t *v,
                              int q)
{
    return (v != NULL) ? v[q] : (size_t)q * a->count;
}

/* Address of a block, NULL for an empty one (its buffer may be NULL). */
static char *scomm_a2a_block(const void *base, size_t displ, size_t count,
                             size_t es)
{
    return (count == 0) ? NULL : (char *)base + displ * es;
}

/* Shared body; counts/displs NULL means the regular all_to_all layout. */
static scomm_status_t scomm_a2a_run(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a,
                                    const size_t *sc, const size_t *sd,
                                    const size_t *rc, const size_t *rd)
{
    int p = comm->size, r = comm->rank, s, dst, src, k, P, q;
    const size_t es = a->esize;
    const char *send = a->sendbuf;
    char *recv = a->recvbuf, *tmp;
    size_t maxb = 0, b;
    scomm_status_t status = SCOMM_OK;

    if (!a->inplace) {
        b = scomm_a2a_count(a, sc, r) * es;
        if (b > 0) {
            memcpy(recv + scomm_a2a_displ(a, rd, r) * es,
                   send + scomm_a2a_displ(a, sd, r) * es, b);
        }
        for (s = 1; (s < p) && (status == SCOMM_OK); s++) {
            size_t sn, rn;

            dst    = (r + s) % p;
            src    = (r - s + p) % p;
            sn     = scomm_a2a_count(a, sc, dst);
            rn     = scomm_a2a_count(a, rc, src);
            status = scomm_p2p_sendrecv(
                comm, scomm_a2a_block(send, scomm_a2a_displ(a, sd, dst), sn,
                                      es),
                sn * es, dst,
                scomm_a2a_block(recv, scomm_a2a_displ(a, rd, src), rn, es),
                rn * es, src, SCOMM_TAG_COLL);
        }
        return status;
    }
    for (q = 0; q < p; q++) {
        if (q != r) {
            maxb = SCOMM_MAX(maxb, scomm_a2a_count(a, rc, q) * es);
        }
    }
    tmp = scomm_coll_malloc(comm, maxb, "in-place all_to_all scratch");
    if (tmp == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    P = ((p % 2) == 0) ? p : p + 1;
    for (k = 0; (k < P - 1) && (status == SCOMM_OK); k++) {
        char *blk;
        size_t n;

        q = scomm_a2a_partner(r, k, P);
        if (q >= p) {
            continue; /* idle this round */
        }
        n   = scomm_a2a_count(a, rc, q);
        b   = n * es;
        blk = scomm_a2a_block(recv, scomm_a2a_displ(a, rd, q), n, es);
        if (b > 0) {
            memcpy(tmp, blk, b);
        }
        status = scomm_p2p_sendrecv(comm, tmp, b, q, blk, b, q,
                                    SCOMM_TAG_COLL);
    }
    free(tmp);
    return status;
}

scomm_status_t scomm_alltoall_pairwise(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    return scomm_a2a_run(comm, a, NULL, NULL, NULL, NULL);
}

scomm_status_t scomm_alltoallv_pairwise(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a)
{
    return scomm_a2a_run(comm, a, a->scounts, a->sdispls, a->rcounts,
                         a->rdispls);
}
