/*
 * ring.c - pipelined ring algorithms: all_reduce (reduce-scatter ring then
 * all-gather ring), all_gather and reduce_scatter.
 *
 * The vector is cut into p chunks (chunk c: elements off(c) .. off(c) +
 * len(c) - 1, lengths differing by at most one element), and each chunk
 * into segments of at most SCOMM_COLL_SEG_BYTES. Rank r sends to r+1 and
 * receives from r-1. Messages of a phase are numbered k = s * nseg + j
 * (step s, segment j); both sides number them the same way, so message k
 * from the left is the k-th receive posted for the left.
 *
 *   reduce-scatter, step s (0 .. p-2): send chunk r-s-1, receive chunk
 *     r-s-2 and combine it with this rank's input; after step p-2 rank r
 *     holds chunk r fully reduced.
 *   all-gather, step s (0 .. p-2): send chunk r-s, receive chunk r-s-1.
 *
 * Pipelining: segment j of step s+1 is sent as soon as segment j of step s
 * has been combined (or, in the all-gather, has arrived), so a large
 * message keeps every link busy while reductions run.
 *
 * Invariants:
 *  1. Receives of the reduce-scatter land in a window of W slots; the
 *     receive for message k+W is posted into slot k % W only after
 *     message k has been combined, so scratch memory is W segments
 *     whatever the message size.
 *  2. all_reduce keeps partial sums in recvbuf (their final place), so the
 *     reduce-scatter never waits on a send. reduce_scatter has no room for
 *     partials in the caller's buffers: they go to a one-chunk stage, and
 *     segment j of the stage is rewritten only after the send that read it
 *     completed. Every wait is on a neighbour that is strictly behind in
 *     message order, so the ring cannot deadlock.
 *  3. Each chunk is reduced by exactly one chain of ranks and then copied
 *     around, so all_reduce results are bit-identical on every rank.
 *  4. Sends of the reduce-scatter complete before the all-gather posts
 *     receives into recvbuf, whose chunks those sends read.
 */
#include <stdlib.h>
#include <string.h>

#include "coll.h"

typedef struct scomm_ring {
    scomm_comm_t *comm;
    int           p;
    int           r;
    int           left;
    int           right;
    size_t        es;
    size_t        base;  /* count / p */
    size_t        extra; /* count % p: chunks 0..extra-1 get one more */
    size_t        seg;   /* elements per segment */
    size_t        nseg;  /* segments per chunk (of the largest chunk) */
    size_t        nmsg;  /* messages per phase: (p - 1) * nseg */
} scomm_ring_t;

static int scomm_ring_mod(int x, int p)
{
    x %= p;
    return (x < 0) ? x + p : x;
}

static void scomm_ring_init(scomm_ring_t *g, scomm_comm_t *comm, size_t count,
                            size_t es, size_t seg)
{
    size_t maxchunk;

    g->comm  = comm;
    g->p     = comm->size;
    g->r     = comm->rank;
    g->left  = scomm_ring_mod(g->r - 1, g->p);
    g->right = scomm_ring_mod(g->r + 1, g->p);
    g->es    = es;
    g->base  = count / (size_t)g->p;
    g->extra = count % (size_t)g->p;
    maxchunk = g->base + ((g->extra > 0) ? 1 : 0);
    g->seg   = SCOMM_MIN(seg, SCOMM_MAX(maxchunk, (size_t)1));
    g->nseg  = (maxchunk + g->seg - 1) / g->seg;
    g->nmsg  = (size_t)(g->p - 1) * g->nseg;
}

static size_t scomm_ring_off(const scomm_ring_t *g, int c)
{
    return ((size_t)c * g->base) + SCOMM_MIN((size_t)c, g->extra);
}

static size_t scomm_ring_len(const scomm_ring_t *g, int c)
{
    return g->base + (((size_t)c < g->extra) ? 1 : 0);
}

/* Segment j of chunk c: its element offset in the vector, and length. */
static size_t scomm_ring_seg(const scomm_ring_t *g, int c, size_t j,
                             size_t *off)
{
    size_t len   = scomm_ring_len(g, c);
    size_t start = j * g->seg;

    *off = scomm_ring_off(g, c) + start;
    if (start >= len) {
        return 0;
    }
    return SCOMM_MIN(g->seg, len - start);
}

/* Chunks of the reduce-scatter: sent and received at step s. */
static int scomm_ring_rs_send(const scomm_ring_t *g, size_t s)
{
    return scomm_ring_mod(g->r - (int)s - 1, g->p);
}

static int scomm_ring_rs_recv(const scomm_ring_t *g, size_t s)
{
    return scomm_ring_mod(g->r - (int)s - 2, g->p);
}

/*
 * Reduce-scatter phase. own: this rank's input (whole vector). acc: where
 * partials of chunk c go (acc + off(c)), or NULL to use stage (one chunk,
 * reduce_scatter). fin: the place of the finished chunk r. slots: W
 * segments. rr: W receive requests; ss: nmsg send requests.
 */
static scomm_status_t scomm_ring_rs(const scomm_ring_t *g, const char *own,
                                    char *acc, char *stage, char *fin,
                                    char *slots, size_t nslots,
                                    scomm_dtype_t dtype, scomm_redop_t op,
                                    scomm_req_t **rr, scomm_req_t **ss)
{
    scomm_comm_t *comm = g->comm;
    const size_t es    = g->es;
    const size_t slot_bytes = g->seg * es;
    size_t w = SCOMM_MIN(nslots, g->nmsg);
    scomm_status_t status;
    size_t k, s, j, off, len, fin_off;
    char *dst;
    int c;

    fin_off = scomm_ring_off(g, g->r);
    for (k = 0; k < w; k++) {
        s   = k / g->nseg;
        j   = k % g->nseg;
        len = scomm_ring_seg(g, scomm_ring_rs_recv(g, s), j, &off);
        if (len > 0) {
            status = scomm_p2p_irecv(comm, g->left, SCOMM_TAG_COLL,
                                     slots + (k % w) * slot_bytes, len * es,
                                     &rr[k % w]);
            if (status != SCOMM_OK) {
                return status;
            }
        }
    }
    for (j = 0; j < g->nseg; j++) {
        len = scomm_ring_seg(g, scomm_ring_rs_send(g, 0), j, &off);
        if (len > 0) {
            status = scomm_p2p_isend(comm, g->right, SCOMM_TAG_COLL,
                                     own + off * es, len * es, &ss[j]);
            if (status != SCOMM_OK) {
                return status;
            }
        }
    }
    for (k = 0; k < g->nmsg; k++) {
        s   = k / g->nseg;
        j   = k % g->nseg;
        c   = scomm_ring_rs_recv(g, s);
        len = scomm_ring_seg(g, c, j, &off);
        dst = NULL;
        if (len > 0) {
            status = scomm_coll_wait1(comm, &rr[k % w]);
            if (status != SCOMM_OK) {
                return status;
            }
            if (s == (size_t)(g->p - 2)) {
                dst = fin + (off - fin_off) * es;
            } else if (acc != NULL) {
                dst = acc + off * es;
            } else {
                /* From step 1 on, the stage's segment j was last read by
                 * send k (it forwarded step s-1's partial). */
                dst = stage + (off - scomm_ring_off(g, c)) * es;
                if (s > 0) {
                    status = scomm_coll_wait1(comm, &ss[k]);
                    if (status != SCOMM_OK) {
                        return status;
                    }
                }
            }
            scomm_reduce2_out(dst, slots + (k % w) * slot_bytes,
                              own + off * es, len, dtype, op);
        }
        if (k + w < g->nmsg) {
            size_t k2 = k + w, off2, len2;

            len2 = scomm_ring_seg(g, scomm_ring_rs_recv(g, k2 / g->nseg),
                                  k2 % g->nseg, &off2);
            if (len2 > 0) {
                status = scomm_p2p_irecv(comm, g->left, SCOMM_TAG_COLL,
                                         slots + (k2 % w) * slot_bytes,
                                         len2 * es, &rr[k2 % w]);
                if (status != SCOMM_OK) {
                    return status;
                }
            }
        }
        if ((k + g->nseg < g->nmsg) && (len > 0)) {
            /* Step s+1 sends the chunk just combined. */
            status = scomm_p2p_isend(comm, g->right, SCOMM_TAG_COLL, dst,
                                     len * es, &ss[k + g->nseg]);
            if (status != SCOMM_OK) {
                return status;
            }
        }
    }
    return SCOMM_OK;
}

/*
 * All-gather phase, in place in buf (whole vector; chunk r is present).
 * rs_sends: sends of a preceding reduce-scatter that still read buf, or
 * NULL. ar, as: nmsg receive and send requests.
 */
static scomm_status_t scomm_ring_ag(const scomm_ring_t *g, char *buf,
                                    scomm_req_t **rs_sends,
                                    scomm_req_t **ar, scomm_req_t **as)
{
    scomm_comm_t *comm = g->comm;
    const size_t es    = g->es;
    scomm_status_t status;
    size_t k, s, j, off, len;

    for (j = 0; j < g->nseg; j++) {
        len = scomm_ring_seg(g, g->r, j, &off);
        if (len > 0) {
            status = scomm_p2p_isend(comm, g->right, SCOMM_TAG_COLL,
                                     buf + off * es, len * es, &as[j]);
            if (status != SCOMM_OK) {
                return status;
            }
        }
    }
    if (rs_sends != NULL) {
        status = scomm_coll_waitn(comm, rs_sends, g->nmsg);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    for (k = 0; k < g->nmsg; k++) {
        s   = k / g->nseg;
        j   = k % g->nseg;
        len = scomm_ring_seg(g, scomm_ring_mod(g->r - (int)s - 1, g->p), j,
                             &off);
        if (len > 0) {
            status = scomm_p2p_irecv(comm, g->left, SCOMM_TAG_COLL,
                                     buf + off * es, len * es, &ar[k]);
            if (status != SCOMM_OK) {
                return status;
            }
        }
    }
    for (k = 0; k < g->nmsg; k++) {
        s   = k / g->nseg;
        j   = k % g->nseg;
        len = scomm_ring_seg(g, scomm_ring_mod(g->r - (int)s - 1, g->p), j,
                             &off);
        if (len == 0) {
            continue;
        }
        status = scomm_coll_wait1(comm, &ar[k]);
        if (status != SCOMM_OK) {
            return status;
        }
        if (k + g->nseg < g->nmsg) {
            /* Step s+1 forwards the chunk that just arrived. */
            status = scomm_p2p_isend(comm, g->right, SCOMM_TAG_COLL,
                                     buf + off * es, len * es,
                                     &as[k + g->nseg]);
            if (status != SCOMM_OK) {
                return status;
            }
        }
    }
    return scomm_coll_waitn(comm, as, g->nmsg);
}

scomm_status_t scomm_allreduce_ring(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    scomm_ring_t g;
    scomm_req_t **reqs;
    size_t nreq, w;
    char *slots, *recv = a->recvbuf, *fin;
    scomm_status_t status;

    scomm_ring_init(&g, comm, a->count, a->esize,
                    scomm_coll_seg_elems(a->esize));
    w     = SCOMM_MIN((size_t)SCOMM_COLL_RING_WINDOW, g.nmsg);
    nreq  = w + 3 * g.nmsg;
    reqs  = calloc(nreq, sizeof(*reqs));
    slots = scomm_coll_malloc(comm, w * g.seg * g.es, "ring receive slots");
    if ((reqs == NULL) || (slots == NULL)) {
        free(reqs);
        free(slots);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for the ring's scratch",
                               comm->cur_op);
    }
    fin    = recv + scomm_ring_off(&g, g.r) * g.es;
    status = scomm_ring_rs(&g, a->sendbuf, recv, NULL, fin, slots, w,
                           a->dtype, a->redop, reqs, reqs + w);
    if ((status == SCOMM_OK) && (a->redop == SCOMM_AVG)) {
        scomm_reduce_div(fin, scomm_ring_len(&g, g.r), a->dtype, g.p);
    }
    if (status == SCOMM_OK) {
        status = scomm_ring_ag(&g, recv, reqs + w, reqs + w + g.nmsg,
                               reqs + w + 2 * g.nmsg);
    }
    if (status != SCOMM_OK) {
        status = scomm_coll_abandon(comm, status, reqs, nreq);
    }
    free(slots);
    free(reqs);
    return status;
}

scomm_status_t scomm_allgather_ring(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    char *recv = a->recvbuf;

    if (!a->inplace) {
        memcpy(recv + (size_t)comm->rank * a->bytes, a->sendbuf, a->bytes);
    }
    return scomm_coll_ring_allgather_bytes(comm, recv, a->bytes);
}

scomm_status_t scomm_coll_ring_allgather_bytes(scomm_comm_t *comm, void *buf,
                                               size_t block_bytes)
{
    scomm_ring_t g;
    scomm_req_t **reqs;
    scomm_status_t status;

    if ((block_bytes == 0) || (comm->size == 1)) {
        return SCOMM_OK;
    }
    /* Blocks of equal size: chunk c is block c, in bytes. */
    scomm_ring_init(&g, comm, block_bytes * (size_t)comm->size, 1,
                    SCOMM_COLL_SEG_BYTES);
    reqs = calloc(2 * g.nmsg, sizeof(*reqs));
    if (reqs == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for requests",
                               comm->cur_op);
    }
    status = scomm_ring_ag(&g, buf, NULL, reqs, reqs + g.nmsg);
    if (status != SCOMM_OK) {
        status = scomm_coll_abandon(comm, status, reqs, 2 * g.nmsg);
    }
    free(reqs);
    return status;
}

scomm_status_t scomm_reducescatter_ring(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a)
{
    scomm_ring_t g;
    scomm_req_t **reqs;
    size_t nreq, w;
    char *slots, *stage = NULL;
    scomm_status_t status;

    scomm_ring_init(&g, comm, a->count * (size_t)comm->size, a->esize,
                    scomm_coll_seg_elems(a->esize));
    w     = SCOMM_MIN((size_t)SCOMM_COLL_RING_WINDOW, g.nmsg);
    nreq  = w + g.nmsg;
    reqs  = calloc(nreq, sizeof(*reqs));
    slots = scomm_coll_malloc(comm, w * g.seg * g.es, "ring receive slots");
    if (comm->size > 2) {
        stage = scomm_coll_malloc(comm, a->bytes, "ring stage");
    }
    if ((reqs == NULL) || (slots == NULL) ||
        ((comm->size > 2) && (stage == NULL))) {
        free(reqs);
        free(slots);
        free(stage);
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory for the ring's scratch",
                               comm->cur_op);
    }
    status = scomm_ring_rs(&g, a->sendbuf, NULL, stage, a->recvbuf, slots, w,
                           a->dtype, a->redop, reqs, reqs + w);
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, reqs + w, g.nmsg);
    }
    if (status != SCOMM_OK) {
        status = scomm_coll_abandon(comm, status, reqs, nreq);
    } else if (a->redop == SCOMM_AVG) {
        scomm_reduce_div(a->recvbuf, a->count, a->dtype, comm->size);
    }
    free(stage);
    free(slots);
    free(reqs);
    return status;
}
