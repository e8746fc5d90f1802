/*
 * direct_ops.c - the direct shared-memory collectives themselves:
 * all_reduce (tiny, small and chunked paths), all_gather, broadcast and
 * reduce_scatter ("shm_direct"), each a loop of stage / publish / wait /
 * read over the arena that direct.c sets up. The protocol, the choice of
 * path by size and the invariants are in direct.c's header comment.
 */
#include <stdio.h>
#include <string.h>

#include "direct.h"

static scomm_status_t direct_allreduce_small(direct_call_t *c)
{
    const scomm_coll_args_t *a = c->a;
    const void *srcs[DIRECT_MAX_RANKS];
    uint64_t k = c->k0;
    scomm_status_t status;
    int q;

    /* Staged always, even from scomm_mem_alloc memory: in place, this
     * rank overwrites sendbuf while the others may still read it. */
    c->desc.send_set = DIRECT_AT_ARENA;
    c->desc.recv_set = DIRECT_AT_ARENA;
    status = direct_wait_free(c, k);
    if (status != SCOMM_OK) {
        return status;
    }
    scomm_direct_copy(direct_buf(c, c->me, k), a->sendbuf, a->bytes, 0);
    scomm_direct_put_desc(c);
    direct_publish(c, DIRECT_READY, k + 1);
    status = direct_wait(c, DIRECT_READY, k + 1, -1);
    if (status == SCOMM_OK) {
        status = scomm_direct_read_descs(c, 0, 0, -1);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    for (q = 0; q < c->p; q++) {
        srcs[q] = (q == c->me) ? a->sendbuf : direct_buf(c, q, k);
    }
    scomm_reduce_n(a->recvbuf, srcs, c->p, a->count, a->dtype, a->redop,
                   c->p);
    direct_set(c, DIRECT_REDUCED, k + 1);
    direct_publish(c, DIRECT_DONE, k + 1);
    c->d->k = k + 1;
    return SCOMM_OK;
}

/*
 * Tiny all_reduce and reduce_scatter (the whole input <= 48 bytes, once
 * the state exists): call s writes its arguments and input into this
 * rank's line TINY0 + s % 2 and publishes s there; every rank reduces all
 * lines in rank order -- the whole vector (all_reduce) or its own block
 * (reduce_scatter). One cache line per peer crosses, against five or
 * more on the small path. Safe to rewrite line s % 2 at call s + 2: this
 * rank got there only after every peer published s + 1, which each did
 * only after finishing call s. The two ops share the lines and their
 * count; bit 56 of the meta tells them apart, so a rank that calls one
 * while a peer calls the other gets a mismatch, not a wrong result.
 */
#define DIRECT_TINY_RS_BIT (1ull << 56)

static scomm_status_t direct_reduce_tiny(scomm_comm_t *comm,
                                         const scomm_coll_args_t *a,
                                         direct_state_t *d, int rs)
{
    const void *srcs[DIRECT_MAX_RANKS];
    direct_call_t c;
    direct_line_t *mine;
    size_t nb = rs ? a->bytes * (size_t)comm->size : a->bytes;
    size_t off;
    uint64_t s, meta;
    scomm_status_t status;
    int x, q;

    c.comm = comm;
    c.a    = a;
    c.d    = d;
    c.p    = comm->size;
    c.me   = comm->rank;
    c.k0   = d->k;
    s      = ++d->tseq;
    x      = DIRECT_TINY0 + (int)(s & 1);
    off    = rs ? (size_t)c.me * a->bytes : 0;
    meta   = (uint64_t)(nb / a->esize) | ((uint64_t)a->dtype << 40) |
             ((uint64_t)a->redop << 48) | (rs ? DIRECT_TINY_RS_BIT : 0);
    mine   = &d->ctrl[c.me]->ctr[x];
    mine->meta = meta;
    /* In place (reduce_scatter's recvbuf is inside sendbuf): the line
     * holds the input before recvbuf is written below. */
    memcpy(mine->data, a->sendbuf, nb);
    direct_publish(&c, x, s);
    status = direct_wait(&c, x, s, -1);
    if (status != SCOMM_OK) {
        return status;
    }
    for (q = 0; q < c.p; q++) {
        const direct_line_t *l = &d->ctrl[q]->ctr[x];

        if (q == c.me) {
            /* My input from sendbuf, not from my line: a load of the line
             * the peers are polling waits for it to come back (2x the
             * time of the call on a host whose cores are far apart). */
            srcs[q] = (const char *)a->sendbuf + off;
            continue;
        }
        if (l->meta != meta) {
            return scomm_set_error(comm, SCOMM_ERR_MISMATCH,
                                   "%s (op #%llu): argument mismatch: rank "
                                   "%d passed %s count %llu dtype %d op %d, "
                                   "rank %d %s count %zu dtype %d op %d",
                                   comm->cur_op,
                                   (unsigned long long)comm->op_seq, q,
                                   (l->meta & DIRECT_TINY_RS_BIT)
                                       ? "reduce_scatter" : "all_reduce",
                                   (unsigned long long)(l->meta &
                                                        0xffffffffffull),
                                   (int)((l->meta >> 40) & 0xff),
                                   (int)((l->meta >> 48) & 0xff), c.me,
                                   rs ? "reduce_scatter" : "all_reduce",
                                   nb / a->esize, (int)a->dtype,
                                   (int)a->redop);
        }
        srcs[q] = l->data + off;
    }
    scomm_reduce_n(a->recvbuf, srcs, c.p, a->count, a->dtype, a->redop,
                   c.p);
    /* The next call's line, for writing: every peer is done with it. */
    direct_prefetch_w(&d->ctrl[c.me]->ctr[DIRECT_TINY0 + (int)((s + 1) & 1)]);
    return SCOMM_OK;
}

/*
 * Reduce nb bytes of slices (srcs, rank order) into an L1-sized block and
 * store it twice with non-temporal stores: into recvbuf (dst) and into my
 * arena (pub) for the others. The stores bypass the caches, so the others
 * read the result from memory, not out of this core's cache.
 */
static void direct_reduce_nt2(const direct_call_t *c, char *dst, char *pub,
                              const void *const *srcs, size_t nb)
{
    const scomm_coll_args_t *a = c->a;
    const void *s[DIRECT_MAX_RANKS];
    char blk[DIRECT_NT_PIECE] __attribute__((aligned(64)));
    size_t po, pn;
    int q;

    for (po = 0; po < nb; po += pn) {
        pn = SCOMM_MIN((size_t)DIRECT_NT_PIECE, nb - po);
        for (q = 0; q < c->p; q++) {
            s[q] = (const char *)srcs[q] + po;
        }
        scomm_reduce_n(blk, s, c->p, pn / a->esize, a->dtype, a->redop,
                       c->p);
        scomm_direct_copy(dst + po, blk, pn, 1);
        scomm_direct_copy(pub + po, blk, pn, 1);
    }
}

static scomm_status_t direct_allreduce(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    direct_call_t c;
    const void *srcs[DIRECT_MAX_RANKS];
    const char *send = a->sendbuf, *src;
    char *recv = a->recvbuf, *mine, *dst;
    size_t C, off, nb, lo, hi, qlo, qhi, es = a->esize;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int q, t, stage, zrecv, ntx;

    status = scomm_direct_begin(&c, comm, a, send, a->bytes, recv, a->bytes);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return scomm_direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    if (a->bytes <= DIRECT_SMALL_BYTES) {
        return direct_allreduce_small(&c);
    }
    C       = c.d->chunk;
    nchunks = (a->bytes + C - 1) / C;
    c.nt    = (a->bytes >= DIRECT_NT_BYTES);
    if (c.nt) {
        /* Large: results go through the arena, which stays in the caches,
         * and reach recvbuf by non-temporal stores; reducing straight into
         * recvbuf would read every line of it from memory first (write
         * allocate). */
        c.desc.recv_set = DIRECT_AT_ARENA;
    }
    if (c.d->cma && !c.d->near && (a->bytes >= DIRECT_CMA_BYTES) &&
        !c.nt) {
        /* The others read ordinary memory where it is. Not when the cores
         * are near (the set-up's probe, the same verdict on every rank):
         * staging through the cache they share is then about twice as
         * fast as the kernel's copy, which pins every page. */
        if (c.desc.send_set == DIRECT_AT_ARENA) {
            c.desc.send_set = DIRECT_AT_CMA;
            c.desc.send_off = (uint64_t)(uintptr_t)send;
        }
        if (c.desc.recv_set == DIRECT_AT_ARENA) {
            c.desc.recv_set = DIRECT_AT_CMA;
            c.desc.recv_off = (uint64_t)(uintptr_t)recv;
        }
    }
    stage   = (c.desc.send_set == DIRECT_AT_ARENA);
    zrecv   = (c.desc.recv_set != DIRECT_AT_ARENA);
    /* Large, from ordinary memory: what the others read from my arena
     * (staged input, my result slice) goes there by non-temporal stores,
     * so it crosses through memory, not from this core's cache. */
    ntx     = c.nt && stage && !zrecv;
    for (i = 0; i < nchunks; i++) {
        k    = c.k0 + i;
        off  = (size_t)i * C;
        nb   = SCOMM_MIN(C, a->bytes - off);
        mine = direct_buf(&c, c.me, k);
        scomm_direct_slice(nb, c.p, c.me, &lo, &hi);
        /* 1. my buffer k%2 (and on the first chunk my descriptor slot)
         *    is free again */
        if ((i == 0) || stage || !zrecv) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        /* 2. stage all but my own slice, which only I read */
        if (stage) {
            scomm_direct_copy(mine, send + off, lo, ntx);
            scomm_direct_copy(mine + hi, send + off + hi, nb - hi, ntx);
        }
        if (i == 0) {
            scomm_direct_put_desc(&c);
        }
        direct_publish(&c, DIRECT_READY, k + 1);
        /* 3. everybody's input of chunk k is there */
        status = direct_wait(&c, DIRECT_READY, k + 1, -1);
        if ((status == SCOMM_OK) && (i == 0)) {
            status = scomm_direct_read_descs(&c, a->bytes, a->bytes, -1);
        }
        if (status != SCOMM_OK) {
            return status;
        }
        /* 4. reduce my slice, rank 0 first */
        if (hi > lo) {
            for (q = 0; q < c.p; q++) {
                if (q == c.me) {
                    srcs[q] = send + off + lo;
                } else if (c.psend[q] != NULL) {
                    srcs[q] = c.psend[q] + off + lo;
                } else if (c.csend[q] != 0) {
                    srcs[q] = c.d->scratch + (size_t)q * c.d->slot;
                    status  = scomm_direct_cma_read(
                        &c, q, c.d->scratch + (size_t)q * c.d->slot,
                        c.csend[q] + off + lo, hi - lo);
                    if (status != SCOMM_OK) {
                        return status;
                    }
                } else {
                    srcs[q] = direct_buf(&c, q, k) + lo;
                }
            }
            dst = zrecv ? recv + off + lo : mine + lo;
            if (ntx) {
                direct_reduce_nt2(&c, recv + off + lo, mine + lo, srcs,
                                  hi - lo);
            } else {
                scomm_reduce_n(dst, srcs, c.p, (hi - lo) / es, a->dtype,
                               a->redop, c.p);
            }
        }
        direct_publish(&c, DIRECT_REDUCED, k + 1);
        /* 5. everybody's result slice of chunk k is there: copy out */
        status = direct_wait(&c, DIRECT_REDUCED, k + 1, -1);
        if (status != SCOMM_OK) {
            return status;
        }
        for (t = 1; t <= c.p; t++) {
            q = (c.me + t) % c.p;
            scomm_direct_slice(nb, c.p, q, &qlo, &qhi);
            if (q == c.me) {
                src = (zrecv || ntx) ? NULL : mine + qlo;
            } else if (c.precv[q] != NULL) {
                src = c.precv[q] + off + qlo;
            } else if (c.crecv[q] != 0) {
                src    = NULL;
                status = scomm_direct_cma_read(&c, q, recv + off + qlo,
                                               c.crecv[q] + off + qlo,
                                               qhi - qlo);
                if (status != SCOMM_OK) {
                    return status;
                }
            } else {
                src = direct_buf(&c, q, k) + qlo;
            }
            if (src != NULL) {
                scomm_direct_copy(recv + off + qlo, src, qhi - qlo, c.nt);
            }
        }
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (zrecv) {
        /* The others read my recvbuf in place: hand it back only when
         * they are through. */
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

static scomm_status_t direct_allgather(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    direct_call_t c;
    const char *send = a->sendbuf, *src;
    char *recv = a->recvbuf;
    size_t C, off, nb, bytes = a->bytes;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int q, t, stage;

    status = scomm_direct_begin(&c, comm, a, send, bytes, NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return scomm_direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    C       = c.d->chunk;
    nchunks = (bytes + C - 1) / C;
    stage   = (c.desc.send_set == DIRECT_AT_ARENA);
    c.nt    = (bytes * (size_t)c.p >= DIRECT_NT_BYTES);
    for (i = 0; i < nchunks; i++) {
        k   = c.k0 + i;
        off = (size_t)i * C;
        nb  = SCOMM_MIN(C, bytes - off);
        if ((i == 0) || stage) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        if (stage) {
            scomm_direct_copy(direct_buf(&c, c.me, k), send + off, nb,
                              c.nt);
        }
        if (i == 0) {
            scomm_direct_put_desc(&c);
        }
        direct_publish(&c, DIRECT_READY, k + 1);
        status = direct_wait(&c, DIRECT_READY, k + 1, -1);
        if ((status == SCOMM_OK) && (i == 0)) {
            status = scomm_direct_read_descs(&c, bytes, 0, -1);
        }
        if (status != SCOMM_OK) {
            return status;
        }
        for (t = 0; t < c.p; t++) {
            q = (c.me + t) % c.p;
            if (q == c.me) {
                src = a->inplace ? NULL : send + off;
            } else if (c.psend[q] != NULL) {
                src = c.psend[q] + off;
            } else {
                src = direct_buf(&c, q, k);
            }
            if (src != NULL) {
                scomm_direct_copy(recv + (size_t)q * bytes + off, src, nb,
                                  c.nt);
            }
        }
        direct_set(&c, DIRECT_REDUCED, k + 1);
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (!stage) {
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

static scomm_status_t direct_bcast(scomm_comm_t *comm,
                                   const scomm_coll_args_t *a)
{
    direct_call_t c;
    char *buf = a->recvbuf;
    const char *src;
    size_t C, off, nb, bytes = a->bytes;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int root = a->root, is_root = (comm->rank == a->root), stage;

    status = scomm_direct_begin(&c, comm, a, is_root ? buf : NULL, bytes,
                                NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return scomm_direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    C       = c.d->chunk;
    nchunks = (bytes + C - 1) / C;
    stage   = is_root && (c.desc.send_set == DIRECT_AT_ARENA);
    c.nt    = (bytes >= DIRECT_NT_BYTES);
    for (i = 0; i < nchunks; i++) {
        k   = c.k0 + i;
        off = (size_t)i * C;
        nb  = SCOMM_MIN(C, bytes - off);
        if ((i == 0) || stage) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        if (stage) {
            scomm_direct_copy(direct_buf(&c, root, k), buf + off, nb,
                              c.nt);
        }
        if (i == 0) {
            scomm_direct_put_desc(&c);
        }
        direct_set(&c, DIRECT_REDUCED, k + 1);
        direct_publish(&c, DIRECT_READY, k + 1);
        if (!is_root) {
            status = direct_wait(&c, DIRECT_READY, k + 1, root);
            if ((status == SCOMM_OK) && (i == 0)) {
                status = scomm_direct_read_descs(&c, bytes, 0, root);
            }
            if (status != SCOMM_OK) {
                return status;
            }
            src = (c.psend[root] != NULL) ? c.psend[root] + off :
                                            direct_buf(&c, root, k);
            scomm_direct_copy(buf + off, src, nb, c.nt);
        }
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (is_root && !stage) {
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

static scomm_status_t direct_reducescatter(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a)
{
    direct_call_t c;
    const void *srcs[DIRECT_MAX_RANKS];
    const char *send = a->sendbuf;
    char *recv = a->recvbuf, *mine;
    size_t Cb, off, nb, bytes = a->bytes, es = a->esize;
    uint64_t i, k, nchunks;
    scomm_status_t status;
    int q, stage, xnt;

    status = scomm_direct_begin(&c, comm, a, send, bytes * (size_t)comm->size,
                                NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return scomm_direct_fallback(comm, a, c.d->why);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    /* Chunk i holds bytes [i*Cb, (i+1)*Cb) of every block, block q at
     * q*Cb in the buffer. */
    Cb      = (c.d->chunk / (size_t)c.p) & ~(size_t)63;
    nchunks = (bytes + Cb - 1) / Cb;
    stage   = (c.desc.send_set == DIRECT_AT_ARENA);
    /* Large: the staged blocks go out by non-temporal stores, so the
     * others read them from memory, not out of this core's cache. */
    xnt     = (bytes * (size_t)c.p >= DIRECT_NT_BYTES);
    for (i = 0; i < nchunks; i++) {
        k    = c.k0 + i;
        off  = (size_t)i * Cb;
        nb   = SCOMM_MIN(Cb, bytes - off);
        mine = direct_buf(&c, c.me, k);
        if ((i == 0) || stage) {
            status = direct_wait_free(&c, k);
            if (status != SCOMM_OK) {
                return status;
            }
        }
        if (stage) {
            for (q = 0; q < c.p; q++) {
                if (q != c.me) {
                    scomm_direct_copy(mine + (size_t)q * Cb,
                                      send + (size_t)q * bytes + off, nb,
                                      xnt);
                }
            }
        }
        if (i == 0) {
            scomm_direct_put_desc(&c);
        }
        direct_publish(&c, DIRECT_READY, k + 1);
        status = direct_wait(&c, DIRECT_READY, k + 1, -1);
        if ((status == SCOMM_OK) && (i == 0)) {
            status = scomm_direct_read_descs(&c, bytes * (size_t)c.p, 0, -1);
        }
        if (status != SCOMM_OK) {
            return status;
        }
        for (q = 0; q < c.p; q++) {
            if (q == c.me) {
                srcs[q] = send + (size_t)c.me * bytes + off;
            } else if (c.psend[q] != NULL) {
                srcs[q] = c.psend[q] + (size_t)c.me * bytes + off;
            } else {
                srcs[q] = direct_buf(&c, q, k) + (size_t)c.me * Cb;
            }
        }
        scomm_reduce_n(recv + off, srcs, c.p, nb / es, a->dtype, a->redop,
                       c.p);
        direct_set(&c, DIRECT_REDUCED, k + 1);
        direct_publish(&c, DIRECT_DONE, k + 1);
    }
    c.d->k = c.k0 + nchunks;
    if (!stage) {
        return direct_wait(&c, DIRECT_DONE, c.k0 + nchunks, -1);
    }
    return SCOMM_OK;
}

/* ---- entry points (algorithm table) -------------------------------------- */

scomm_status_t scomm_allreduce_direct(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a)
{
    direct_state_t *d = direct_state_peek(comm);

    if ((a->bytes <= DIRECT_TINY_BYTES) && (d != NULL)) {
        return direct_reduce_tiny(comm, a, d, 0);
    }
    return direct_allreduce(comm, a);
}

scomm_status_t scomm_allgather_direct(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a)
{
    direct_state_t *d = direct_state_peek(comm);

    if ((a->bytes * (size_t)comm->size <= DIRECT_TINY_BYTES) && (d != NULL)) {
        return scomm_direct_allgather_tiny(comm, a, d);
    }
    return direct_allgather(comm, a);
}

scomm_status_t scomm_bcast_direct(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a)
{
    return scomm_direct_bcast_tiny_or(comm, a, direct_bcast);
}

scomm_status_t scomm_reducescatter_shm_direct(scomm_comm_t *comm,
                                              const scomm_coll_args_t *a)
{
    direct_state_t *d = direct_state_peek(comm);

    if ((a->bytes * (size_t)comm->size <= DIRECT_TINY_BYTES) && (d != NULL)) {
        return direct_reduce_tiny(comm, a, d, 1);
    }
    return direct_reducescatter(comm, a);
}
