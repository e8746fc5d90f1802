/*
 * direct_single.c - single-copy collectives for communicators whose ranks
 * all share this host ("single_copy" in the algorithm table): broadcast,
 * all_gather and all_to_all where every rank reads the data it needs where
 * it lies, in the owner's buffer, so each byte crosses once: with
 * process_vm_readv (one kernel copy) from ordinary memory, or with a plain
 * copy out of the mapping of the owner's scomm_mem_alloc memory. Nothing
 * goes through the staging arena of direct.c, whose control block,
 * descriptors, counters and waits these algorithms share (direct.h).
 *
 * Also here: the cache-line paths for tiny broadcast, all_to_all and
 * all_gather (the
 * idea of the tiny all_reduce in direct_ops.c): the data and the call's
 * arguments travel in one cache line per rank.
 *
 * One call uses one chunk number k (the state's k, as the staged
 * algorithms count chunks), so the counters keep their meaning across
 * algorithms:
 *   1. a rank whose data the others read: wait all done >= k-1 (its
 *      descriptor slot k%2 is free), write its descriptor (where the data
 *      is: a set id and offset, or its address for process_vm_readv);
 *      every rank: publish ready = k+1
 *   2. wait for the ready of the ranks it reads (broadcast: the root;
 *      the others: everybody), check their descriptors (same call, count,
 *      dtype, root), read straight into recvbuf
 *   3. publish done = k+1; a rank whose buffer was read waits all
 *      done >= k+1 before it returns, so the caller may reuse it at once
 * all_to_all in place reads a private copy of the send buffer (the owner
 * overwrites its buffer while the others still read it otherwise).
 * Where process_vm_readv is refused (SCOMM_SHM_CMA=0, ptrace rules: the
 * probe's verdict, the same on every rank) the call falls back: broadcast
 * and all_gather to the staged "direct", all_to_all to "pairwise", and the
 * record says so.
 *
 * Tiny paths (state made by an earlier call; vector, all_to_all send
 * buffer or all_gather output <= 48 bytes): call s of the kind uses line
 * TINYB + s % 8 (broadcast) or TINYA + s % 2 (all_to_all, all_gather).
 *   broadcast: the root waits until every rank said it finished call s-8
 *     (its TINYB_DONE line, written every 4th call; eight calls may be in
 *     flight, so a root that calls in a loop rarely waits), writes
 *     arguments and data into its line and publishes s; the others wait
 *     for it, check the arguments and copy.
 *   all_to_all, all_gather: every rank writes its send blocks into its line,
 *     publishes s, waits for everybody's s and copies its block out of
 *     each line. Rewriting line s % 2 at call s + 2 is safe: a rank gets
 *     there only after every peer published s + 1, which each did after
 *     finishing call s.
 *
 * Invariants:
 *  1. A rank writes only its own recvbuf, descriptor slot, counters and
 *     tiny lines; the others' buffers are only read.
 *  2. A rank whose buffer the others read returns only after every rank
 *     published done for the call (invariant 4 of direct.c).
 *  3. A mismatch of arguments fails the world naming both ranks; a dead
 *     peer fails the read (ESRCH) or the wait, naming it; every wait ends
 *     at the communicator's deadline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "direct.h"

/* ---- tiny paths ---------------------------------------------------------- */

/* Fail the world over a tiny line whose arguments differ from mine. */
static scomm_status_t tiny_mismatch(direct_call_t *c, int q, uint64_t theirs,
                                    uint64_t mine)
{
    scomm_comm_t *comm = c->comm;

    scomm_world_fail(comm->world, SCOMM_ERR_MISMATCH, comm->ranks[q],
                     "%s (op #%llu): argument mismatch: rank %d passed "
                     "count %llu dtype %d root %d, rank %d count %llu dtype "
                     "%d root %d", comm->cur_op,
                     (unsigned long long)comm->op_seq, q,
                     (unsigned long long)(theirs & 0xffffffffffull),
                     (int)((theirs >> 40) & 0xff),
                     (int)((theirs >> 48) & 0xff) - 1, c->me,
                     (unsigned long long)(mine & 0xffffffffffull),
                     (int)((mine >> 40) & 0xff),
                     (int)((mine >> 48) & 0xff) - 1);
    return scomm_direct_fault(comm);
}

/* count | dtype << 40 | (root + 1) << 48 (root -1: none). */
static uint64_t tiny_meta(const scomm_coll_args_t *a, int root)
{
    return (uint64_t)a->count | ((uint64_t)a->dtype << 40) |
           ((uint64_t)(root + 1) << 48);
}

/*
 * Tiny broadcast (<= 48 bytes, once the state exists). Call s of the kind
 * uses line x = TINYB0 + s % 8: the root writes its arguments and data
 * into its own line x and publishes s there; the others wait for that,
 * check the arguments and copy the data out. The root may run up to 8
 * calls ahead: before it rewrites line x it needs every other rank done
 * with call s - 8. Every rank says how far it got on its TINYB_DONE line,
 * but only at every 4th call, and a root reads the others' lines only
 * when the least value it saw last (d->bdone) is too old, so those lines
 * cross once per 4 calls, not every call. No deadlock: a rank at call s
 * has said s - 4 or more, so the rank furthest behind is never stopped
 * by the others' lines, and a root it waits for can always write.
 */
#define DIRECT_TINYB_EVERY 4u

/* Ask now for the line call s will use when the root stays the same: a
 * reader for the root's line (written already when the root runs ahead),
 * the root for its own line, once every other rank is done with it. */
static void direct_bcast_tiny_ahead(const direct_call_t *c, uint64_t s)
{
    int x = DIRECT_TINYB0 + (int)(s % DIRECT_TINYB_N), root = c->a->root;

    if (c->me != root) {
        direct_prefetch_r(&c->d->ctrl[root]->ctr[x]);
    } else if ((s <= DIRECT_TINYB_N) || (c->d->bdone >= s - DIRECT_TINYB_N)) {
        direct_prefetch_w(&c->d->ctrl[c->me]->ctr[x]);
    }
}

/* Root of call s: every other rank is done with call s - 8. */
static scomm_status_t direct_bcast_tiny_room(direct_call_t *c, uint64_t s)
{
    direct_state_t *d = c->d;
    uint64_t least = UINT64_MAX, v;
    scomm_status_t status;
    int q;

    if ((s <= DIRECT_TINYB_N) || (d->bdone >= s - DIRECT_TINYB_N)) {
        return SCOMM_OK;
    }
    status = direct_wait(c, DIRECT_TINYB_DONE, s - DIRECT_TINYB_N, -1);
    if (status != SCOMM_OK) {
        return status;
    }
    for (q = 0; q < c->p; q++) {
        if (q != c->me) {
            v     = direct_ctr(c, q, DIRECT_TINYB_DONE);
            least = SCOMM_MIN(least, v);
        }
    }
    d->bdone = least;
    return SCOMM_OK;
}

static scomm_status_t direct_bcast_tiny(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a,
                                        direct_state_t *d)
{
    direct_call_t c;
    direct_line_t *l;
    uint64_t s, meta = tiny_meta(a, a->root);
    scomm_status_t status;
    int x, root = a->root;

    direct_call_tiny(&c, comm, a, d);
    s = ++d->bseq;
    x = DIRECT_TINYB0 + (int)(s % DIRECT_TINYB_N);
    if (c.me == root) {
        status = direct_bcast_tiny_room(&c, s);
        if (status != SCOMM_OK) {
            return status;
        }
        l       = &d->ctrl[c.me]->ctr[x];
        l->meta = meta;
        memcpy(l->data, a->recvbuf, a->bytes);
        direct_publish(&c, x, s);
    } else {
        status = direct_wait(&c, x, s, root);
        if (status != SCOMM_OK) {
            return status;
        }
        l = &d->ctrl[root]->ctr[x];
        if (l->meta != meta) {
            return tiny_mismatch(&c, root, l->meta, meta);
        }
        memcpy(a->recvbuf, l->data, a->bytes);
    }
    if ((s % DIRECT_TINYB_EVERY) == 0) {
        direct_publish(&c, DIRECT_TINYB_DONE, s);
    }
    direct_bcast_tiny_ahead(&c, s + 1);
    return SCOMM_OK;
}

scomm_status_t scomm_direct_bcast_tiny_or(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a,
                                          scomm_coll_fn_t fn)
{
    direct_state_t *d = direct_state_peek(comm);

    if ((a->bytes <= DIRECT_TINY_BYTES) && (d != NULL)) {
        return direct_bcast_tiny(comm, a, d);
    }
    return fn(comm, a);
}

/*
 * Tiny all_to_all and all_gather (the whole send buffer of a rank, or the
 * whole output, <= 48 bytes): call s of either writes the arguments and
 * this rank's send blocks (all_to_all: one per peer; all_gather: its one
 * block) into its line TINYA0 + s % 2 and publishes s there; each rank
 * then copies its block out of every line (all_to_all: block me of each;
 * all_gather: the one block). The two ops share the lines and the call
 * count; bit 56 of the arguments word tells them apart.
 */
#define DIRECT_TINY_AG_BIT (1ull << 56)

static scomm_status_t direct_xchg_tiny(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a,
                                       direct_state_t *d, int ag)
{
    direct_call_t c;
    direct_line_t *mine;
    uint64_t s, meta = tiny_meta(a, -1) | (ag ? DIRECT_TINY_AG_BIT : 0);
    size_t b = a->bytes, from;
    scomm_status_t status;
    int x, q;

    direct_call_tiny(&c, comm, a, d);
    s          = ++d->aseq;
    x          = DIRECT_TINYA0 + (int)(s & 1);
    from       = ag ? 0 : (size_t)c.me * b;
    mine       = &d->ctrl[c.me]->ctr[x];
    mine->meta = meta;
    /* In place too: the line holds my send blocks before recvbuf (the
     * same buffer) is written below. */
    memcpy(mine->data, a->sendbuf, ag ? b : b * (size_t)c.p);
    direct_publish(&c, x, s);
    status = direct_wait(&c, x, s, -1);
    if (status != SCOMM_OK) {
        return status;
    }
    for (q = 0; q < c.p; q++) {
        const direct_line_t *l = &d->ctrl[q]->ctr[x];
        char *dst = (char *)a->recvbuf + (size_t)q * b;

        if (q == c.me) {
            /* My block from sendbuf, not from my line (which the peers
             * poll: see direct_reduce_tiny); in place it is there. */
            if (dst != (const char *)a->sendbuf + from) {
                memcpy(dst, (const char *)a->sendbuf + from, b);
            }
            continue;
        }
        if (l->meta != meta) {
            return tiny_mismatch(&c, q, l->meta, meta);
        }
        memcpy(dst, l->data + from, b);
    }
    /* The next call's line, for writing: every peer is done with it. */
    direct_prefetch_w(&d->ctrl[c.me]->ctr[DIRECT_TINYA0 + (int)((s + 1) & 1)]);
    return SCOMM_OK;
}

scomm_status_t scomm_direct_allgather_tiny(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a,
                                           direct_state_t *d)
{
    return direct_xchg_tiny(comm, a, d, 1);
}

/* ---- single-copy calls --------------------------------------------------- */

/*
 * Set up a call whose readable data is span bytes at send on this rank
 * (NULL: the others read nothing here). Returns SCOMM_OK, an error, or
 * SCOMM_ERR_UNSUPPORTED with *why saying why not (fall back).
 */
static scomm_status_t single_begin(direct_call_t *c, scomm_comm_t *comm,
                                   const scomm_coll_args_t *a,
                                   const void *send, size_t span,
                                   const char **why)
{
    scomm_status_t status;

    status = scomm_direct_begin(c, comm, a, send, span, NULL, 0);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        *why = c->d->why;
        return status;
    }
    if (status != SCOMM_OK) {
        return status;
    }
    if (!c->d->cma) {
        *why = "process_vm_readv is refused between these ranks "
               "(SCOMM_SHM_CMA=0 or ptrace rules)";
        return SCOMM_ERR_UNSUPPORTED;
    }
    if ((send != NULL) && (c->desc.send_set == DIRECT_AT_ARENA)) {
        c->desc.send_set = DIRECT_AT_CMA;
        c->desc.send_off = (uint64_t)(uintptr_t)send;
    }
    return SCOMM_OK;
}

/* No CMA: the staged algorithm (staged), or without an arena the
 * point-to-point one. */
static scomm_status_t single_fallback(const direct_call_t *c,
                                      const scomm_coll_args_t *a,
                                      const char *why, scomm_coll_fn_t staged)
{
    if ((c->d != NULL) && !c->d->unusable) {
        return scomm_direct_fallback_to(c->comm, a, why, "direct", staged);
    }
    return scomm_direct_fallback(c->comm, a, why);
}

/* Steps 1: descriptor (if the others read this rank) and ready. */
static scomm_status_t single_publish(direct_call_t *c, int readable)
{
    uint64_t k = c->k0;
    scomm_status_t status;

    if (readable) {
        status = direct_wait_free(c, k);
        if (status != SCOMM_OK) {
            return status;
        }
        scomm_direct_put_desc(c);
    }
    direct_set(c, DIRECT_REDUCED, k + 1);
    direct_publish(c, DIRECT_READY, k + 1);
    return SCOMM_OK;
}

/* len bytes at off in rank q's readable data into dst. */
static scomm_status_t single_read(direct_call_t *c, int q, void *dst,
                                  size_t off, size_t len, int nt)
{
    if (len == 0) {
        return SCOMM_OK;
    }
    if (c->psend[q] != NULL) {
        scomm_direct_copy(dst, c->psend[q] + off, len, nt);
        return SCOMM_OK;
    }
    return scomm_direct_cma_read(c, q, dst, c->csend[q] + off, len);
}

/* Step 3: done; wait for everybody's when this rank was read. */
static scomm_status_t single_finish(direct_call_t *c, int readable)
{
    uint64_t k = c->k0;

    direct_publish(c, DIRECT_DONE, k + 1);
    c->d->k = k + 1;
    return readable ? direct_wait(c, DIRECT_DONE, k + 1, -1) : SCOMM_OK;
}

static scomm_status_t single_bcast(scomm_comm_t *comm,
                                   const scomm_coll_args_t *a)
{
    direct_call_t c;
    const char *why = NULL;
    int root = a->root, is_root = (comm->rank == root);
    scomm_status_t status;

    status = single_begin(&c, comm, a, is_root ? a->recvbuf : NULL, a->bytes,
                          &why);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return single_fallback(&c, a, why, scomm_bcast_direct);
    }
    if (status == SCOMM_OK) {
        status = single_publish(&c, is_root);
    }
    if ((status != SCOMM_OK) || is_root) {
        return (status != SCOMM_OK) ? status : single_finish(&c, 1);
    }
    status = direct_wait(&c, DIRECT_READY, c.k0 + 1, root);
    if (status == SCOMM_OK) {
        status = scomm_direct_read_descs(&c, a->bytes, 0, root);
    }
    if (status == SCOMM_OK) {
        status = single_read(&c, root, a->recvbuf, 0, a->bytes,
                             a->bytes >= DIRECT_NT_BYTES);
    }
    return (status != SCOMM_OK) ? status : single_finish(&c, 0);
}

static scomm_status_t single_allgather(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    direct_call_t c;
    const char *why = NULL;
    char *recv = a->recvbuf;
    size_t b = a->bytes;
    scomm_status_t status;
    int t, q;

    status = single_begin(&c, comm, a, a->sendbuf, b, &why);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        return single_fallback(&c, a, why, scomm_allgather_direct);
    }
    if (status == SCOMM_OK) {
        status = single_publish(&c, 1);
    }
    if (status == SCOMM_OK) {
        status = direct_wait(&c, DIRECT_READY, c.k0 + 1, -1);
    }
    if (status == SCOMM_OK) {
        status = scomm_direct_read_descs(&c, b, 0, -1);
    }
    if (status != SCOMM_OK) {
        return status;
    }
    c.nt = (b * (size_t)c.p >= DIRECT_NT_BYTES);
    if (!a->inplace) {
        scomm_direct_copy(recv + (size_t)c.me * b, a->sendbuf, b, c.nt);
    }
    /* Start at the next rank: the ranks do not all read rank 0 first. */
    for (t = 1; (t < c.p) && (status == SCOMM_OK); t++) {
        q      = (c.me + t) % c.p;
        status = single_read(&c, q, recv + (size_t)q * b, 0, b, c.nt);
    }
    return (status != SCOMM_OK) ? status : single_finish(&c, 1);
}

static scomm_status_t single_alltoall(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a)
{
    direct_call_t c;
    const char *why = NULL, *send = a->sendbuf;
    char *recv = a->recvbuf, *copy = NULL;
    size_t b = a->bytes, total = a->bytes * (size_t)comm->size;
    scomm_status_t status;
    int t, q;

    if (a->inplace) {
        /* The others read my blocks while I overwrite the buffer. */
        copy = scomm_coll_malloc(comm, total, "the in-place all_to_all's "
                                 "copy of the send buffer");
        if (copy == NULL) {
            return SCOMM_ERR_NO_MEMORY;
        }
        memcpy(copy, send, total);
        send = copy;
    }
    status = single_begin(&c, comm, a, send, total, &why);
    if (status == SCOMM_ERR_UNSUPPORTED) {
        free(copy);
        return scomm_direct_fallback_to(comm, a, why, "pairwise",
                                        scomm_alltoall_pairwise);
    }
    if (status == SCOMM_OK) {
        status = single_publish(&c, 1);
    }
    if (status == SCOMM_OK) {
        status = direct_wait(&c, DIRECT_READY, c.k0 + 1, -1);
    }
    if (status == SCOMM_OK) {
        status = scomm_direct_read_descs(&c, total, 0, -1);
    }
    if (status == SCOMM_OK) {
        c.nt = (total >= DIRECT_NT_BYTES);
        scomm_direct_copy(recv + (size_t)c.me * b, send + (size_t)c.me * b,
                          b, c.nt);
    }
    for (t = 1; (t < c.p) && (status == SCOMM_OK); t++) {
        q      = (c.me + t) % c.p;
        status = single_read(&c, q, recv + (size_t)q * b,
                             (size_t)c.me * b, b, c.nt);
    }
    if (status == SCOMM_OK) {
        status = single_finish(&c, 1);
    }
    /* On an error the world failed: nobody reads the copy any more. */
    free(copy);
    return status;
}

/* ---- entry points (algorithm table) -------------------------------------- */

scomm_status_t scomm_bcast_single_copy(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a)
{
    return scomm_direct_bcast_tiny_or(comm, a, single_bcast);
}

scomm_status_t scomm_allgather_single_copy(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a)
{
    return single_allgather(comm, a);
}

scomm_status_t scomm_alltoall_single_copy(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a)
{
    direct_state_t *d = direct_state_peek(comm);

    if ((a->bytes * (size_t)comm->size <= DIRECT_TINY_BYTES) && (d != NULL)) {
        return direct_xchg_tiny(comm, a, d, 0);
    }
    return single_alltoall(comm, a);
}
