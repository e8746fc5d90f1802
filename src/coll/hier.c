/*
 * hier.c - hierarchical collectives for communicators that span hosts:
 * shared memory inside a host, the network between hosts.
 *
 * all_reduce of n elements on H hosts with L ranks each:
 *
 *   1. intra-host reduce_scatter (local comm, shm): local rank j gets the
 *      host's sum of slice j (n / L elements)
 *   2. inter-host all_reduce of slice j among the H ranks with local index
 *      j (cross comm, tcp): all L local ranks of a host do this at once,
 *      each on its own slice, so every NIC stream carries 1/L of the data
 *   3. intra-host all_gather (local comm): every rank gets every slice
 *   the n % L elements left over: a flat all_reduce on the whole comm.
 * AVG runs as SUM in both reducing phases and divides once by p before
 * the all_gather. Each phase runs the algorithm the selector picks for
 * its own comm and size (direct over shm inside the host, ring or
 * recursive doubling across). Against a flat ring on 2 x 2 ranks, a host's link carries n
 * instead of 1.5 n bytes per call.
 *
 * broadcast: the root sends to local rank 0 of every other host (a
 * binomial tree over the host leaders), then each leader broadcasts inside
 * its host.
 *
 * The sub-communicators are "virtual": built here without communication
 * from the bootstrap's host identities (every rank knows every rank's
 * hostname and boot id), on context ids derived from the parent's, so no
 * split collective is needed inside a collective. The local comm gets its
 * own direct (shared-memory) state on first use; both are released with
 * the parent (scomm_coll_comm_release).
 *
 * Invariants:
 *  1. Usable only when every host holds the same number L >= 2 of the
 *     communicator's ranks and there are H >= 2 hosts; every rank computes
 *     the same answer from the same bootstrap table.
 *  2. Local comm: ranks of this host in parent-rank order. Cross comm j:
 *     local rank j of every host, hosts ordered by their lowest parent
 *     rank. So every rank builds the same sub-communicators.
 *  3. Phases run one after the other under the world lock; a sub-comm's
 *     failure fails the world, so the parent call fails on every rank.
 *  4. Every element of the result is reduced by the same ranks in the same
 *     order on every rank (reduce_scatter then cross all_reduce, then
 *     copies), so all ranks get the same bits; they may differ in the last
 *     bit from a flat algorithm's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/shmem.h"
#include "coll.h"
#include "reduce.h"

/* all_reduce from this many bytes goes hierarchical (below: recursive
 * doubling's log2 p rounds beat three phases). */
#define HIER_ALLREDUCE_BYTES (64u << 10)
#define HIER_BCAST_BYTES     (64u << 10)

struct scomm_coll_hier {
    int           usable;    /* invariant 1 */
    char          why[96];   /* why not, for the selector's reason */
    int           nhosts;
    int           per_host;
    int           host;      /* this rank's host index */
    int          *host_of;   /* parent rank -> host index */
    int          *lidx_of;   /* parent rank -> index inside its host */
    int          *leader;    /* host index -> parent rank of its local 0 */
    scomm_comm_t *local;     /* NULL until first used */
    scomm_comm_t *cross;
};

static int hier_same_host(const scomm_world_t *w, int a, int b)
{
    return (strcmp(w->info[a].hostname, w->info[b].hostname) == 0) &&
           (strcmp(w->info[a].boot_id, w->info[b].boot_id) == 0);
}

/* The host layout of comm, computed once (invariants 1 and 2). */
static struct scomm_coll_hier *hier_get(scomm_comm_t *comm)
{
    scomm_world_t *w = comm->world;
    struct scomm_coll_hier *h = comm->hier;
    int p = comm->size, q, r, nh = 0, *count;

    if (h != NULL) {
        return h;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->host_of = calloc((size_t)p, sizeof(int));
    h->lidx_of = calloc((size_t)p, sizeof(int));
    h->leader  = calloc((size_t)p, sizeof(int));
    count      = calloc((size_t)p, sizeof(int));
    if ((h->host_of == NULL) || (h->lidx_of == NULL) ||
        (h->leader == NULL) || (count == NULL)) {
        free(h->host_of);
        free(h->lidx_of);
        free(h->leader);
        free(count);
        free(h);
        return NULL;
    }
    for (q = 0; q < p; q++) {
        h->host_of[q] = -1;
        for (r = 0; (r < q) && (h->host_of[q] < 0); r++) {
            if (hier_same_host(w, comm->ranks[q], comm->ranks[r])) {
                h->host_of[q] = h->host_of[r];
            }
        }
        if (h->host_of[q] < 0) {
            h->leader[nh]  = q;
            h->host_of[q] = nh++;
        }
        h->lidx_of[q] = count[h->host_of[q]]++;
    }
    h->nhosts   = nh;
    h->per_host = count[0];
    h->host     = h->host_of[comm->rank];
    h->usable   = (nh >= 2) && (h->per_host >= 2);
    for (q = 1; (q < nh) && h->usable; q++) {
        h->usable = (count[q] == h->per_host);
    }
    if (nh < 2) {
        snprintf(h->why, sizeof(h->why), "all %d ranks on one host", p);
    } else if (!h->usable) {
        snprintf(h->why, sizeof(h->why), "%d hosts with %s", nh,
                 (h->per_host < 2) ? "one rank each" :
                                     "different rank counts");
    }
    free(count);
    comm->hier = h;
    return h;
}

/* A virtual sub-communicator of comm: members[i] are parent ranks. */
static scomm_comm_t *hier_sub(scomm_comm_t *comm, const int *members, int n,
                              uint64_t salt)
{
    /* Context ids 0 and 1 are reserved; split's are hashes | 2. */
    uint32_t ctx = (uint32_t)scomm_hash64(&comm->ctx, sizeof(comm->ctx),
                                          salt) | 2u;
    scomm_comm_t *c = scomm_comm_new(comm->world, -1, n, ctx);
    int i;

    if (c == NULL) {
        return NULL;
    }
    c->cur_op     = comm->cur_op;
    c->timeout_ms = comm->timeout_ms;
    for (i = 0; i < n; i++) {
        c->ranks[i] = comm->ranks[members[i]];
        if (members[i] == comm->rank) {
            c->rank = i;
        }
    }
    for (i = 0; i < n; i++) {
        if (comm->world->peers[c->ranks[i]].local) {
            c->local_rank += (i < c->rank);
            c->local_size++;
        }
    }
    return c;
}

static void hier_sub_free(scomm_comm_t *c)
{
    if (c == NULL) {
        return;
    }
    /* The selector may have computed a host layout for the sub-comm too. */
    scomm_coll_comm_release(c);
    scomm_shmem_comm_release(c);
    free(c->sel_cache);
    free(c->ranks);
    free(c);
}

/* Build the local and cross comms on first use. */
static scomm_status_t hier_subs(scomm_comm_t *comm,
                                struct scomm_coll_hier *h)
{
    int *m, n = 0, q;

    if (h->local != NULL) {
        return SCOMM_OK;
    }
    m = calloc((size_t)comm->size, sizeof(int));
    if (m == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory", comm->cur_op);
    }
    for (q = 0; q < comm->size; q++) {
        if (h->host_of[q] == h->host) {
            m[n++] = q;
        }
    }
    h->local = hier_sub(comm, m, n, 0x6c6f63616cull); /* "local" */
    for (q = 0, n = 0; q < comm->size; q++) {
        if (h->lidx_of[q] == h->lidx_of[comm->rank]) {
            m[n++] = q;
        }
    }
    h->cross = hier_sub(comm, m, n,
                        0x63726f7373ull + (uint64_t)h->lidx_of[comm->rank]);
    free(m);
    if ((h->local == NULL) || (h->cross == NULL)) {
        hier_sub_free(h->local);
        hier_sub_free(h->cross);
        h->local = h->cross = NULL;
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                               "%s: out of memory", comm->cur_op);
    }
    return SCOMM_OK;
}

void scomm_coll_comm_release(scomm_comm_t *comm)
{
    struct scomm_coll_hier *h = comm->hier;

    if (h == NULL) {
        return;
    }
    hier_sub_free(h->local);
    hier_sub_free(h->cross);
    free(h->host_of);
    free(h->lidx_of);
    free(h->leader);
    free(h);
    comm->hier = NULL;
}

int scomm_coll_hier_supports(const scomm_comm_t *comm,
                             const scomm_coll_args_t *a, char *why,
                             size_t whylen)
{
    struct scomm_coll_hier *h = hier_get((scomm_comm_t *)comm);

    (void)a;
    if (h == NULL) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    if (!h->usable) {
        snprintf(why, whylen, "%s", h->why);
        return 0;
    }
    return 1;
}

int scomm_coll_hier_default(const scomm_comm_t *comm,
                            const scomm_coll_args_t *a, int *nhosts,
                            int *per_host)
{
    struct scomm_coll_hier *h;
    size_t min = (a->op == SCOMM_COLL_BROADCAST) ? HIER_BCAST_BYTES :
                                                   HIER_ALLREDUCE_BYTES;
    char why[96];

    if ((comm->local_size == comm->size) || (a->bytes < min) ||
        !scomm_coll_hier_supports(comm, a, why, sizeof(why))) {
        return 0;
    }
    h         = comm->hier;
    *nhosts   = h->nhosts;
    *per_host = h->per_host;
    return 1;
}

/* One phase on a sub-communicator: select and run, lock held; a failure
 * is reported on the parent, with the sub-communicator's message. */
static scomm_status_t hier_phase(scomm_comm_t *comm, scomm_comm_t *sub,
                                 const scomm_coll_args_t *a)
{
    const scomm_coll_algo_t *algo;
    scomm_status_t status;

    sub->cur_op = comm->cur_op;
    sub->op_seq++;
    if ((a->count == 0) || (sub->size == 1)) {
        if ((sub->size == 1) && !a->inplace && (a->bytes > 0) &&
            (a->op != SCOMM_COLL_BROADCAST)) {
            memcpy(a->recvbuf, a->sendbuf, a->bytes);
        }
        return SCOMM_OK;
    }
    status = scomm_coll_select(sub, a, &algo);
    if (status == SCOMM_OK) {
        status = algo->run(sub, a);
    }
    if (status != SCOMM_OK) {
        scomm_set_error(comm, status, "%s", sub->last_error);
    }
    return status;
}

scomm_status_t scomm_allreduce_hier(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    struct scomm_coll_hier *h = hier_get(comm);
    size_t L, slice, main_n, es = a->esize;
    scomm_coll_args_t b;
    scomm_status_t status;
    char *tmp;

    if ((h == NULL) || !h->usable) {
        return scomm_allreduce_ring(comm, a);
    }
    status = hier_subs(comm, h);
    if (status != SCOMM_OK) {
        return status;
    }
    L      = (size_t)h->per_host;
    slice  = a->count / L;
    main_n = slice * L;
    if (slice > 0) {
        tmp = scomm_coll_malloc(comm, slice * es, "hierarchical slice");
        if (tmp == NULL) {
            return SCOMM_ERR_NO_MEMORY;
        }
        /* 1. intra-host reduce_scatter: slice j of the host's sum (AVG:
         *    sums in both phases, one division by p at the end, so that
         *    integers truncate once, as the flat algorithms do). */
        b          = *a;
        b.redop    = (a->redop == SCOMM_AVG) ? SCOMM_SUM : a->redop;
        b.op       = SCOMM_COLL_REDUCESCATTER;
        b.count    = slice;
        b.bytes    = slice * es;
        b.recvbuf  = tmp;
        b.inplace  = 0;
        status     = hier_phase(comm, h->local, &b);
        /* 2. inter-host all_reduce of that slice, in place. */
        if (status == SCOMM_OK) {
            b          = *a;
            b.count    = slice;
            b.bytes    = slice * es;
            b.sendbuf  = tmp;
            b.recvbuf  = tmp;
            b.inplace  = 1;
            b.redop    = (a->redop == SCOMM_AVG) ? SCOMM_SUM : a->redop;
            status     = hier_phase(comm, h->cross, &b);
        }
        if ((status == SCOMM_OK) && (a->redop == SCOMM_AVG)) {
            scomm_reduce_div(tmp, slice, a->dtype, comm->size);
        }
        /* 3. intra-host all_gather of the slices into recvbuf. */
        if (status == SCOMM_OK) {
            b          = *a;
            b.op       = SCOMM_COLL_ALLGATHER;
            b.count    = slice;
            b.bytes    = slice * es;
            b.sendbuf  = tmp;
            b.inplace  = 0;
            status     = hier_phase(comm, h->local, &b);
        }
        free(tmp);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    if (main_n < a->count) {
        /* The n % L left over: flat, on the whole communicator. */
        b         = *a;
        b.count   = a->count - main_n;
        b.bytes   = b.count * es;
        b.sendbuf = (const char *)a->sendbuf + main_n * es;
        b.recvbuf = (char *)a->recvbuf + main_n * es;
        status    = scomm_allreduce_rd(comm, &b);
    }
    return status;
}

scomm_status_t scomm_bcast_hier(scomm_comm_t *comm,
                                const scomm_coll_args_t *a)
{
    struct scomm_coll_hier *h = hier_get(comm);
    scomm_coll_args_t b;
    scomm_status_t status = SCOMM_OK;
    int rh, *lead, q;
    scomm_comm_t *leaders;

    if ((h == NULL) || !h->usable) {
        return scomm_bcast_binomial(comm, a);
    }
    status = hier_subs(comm, h);
    if (status != SCOMM_OK) {
        return status;
    }
    rh = h->host_of[a->root];
    /* 1. across hosts: the root and, on every other host, its local 0
     *    (binomial over these "leaders", the root standing for its host). */
    lead = calloc((size_t)h->nhosts, sizeof(int));
    if (lead == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_NO_MEMORY, "%s: out of memory",
                               comm->cur_op);
    }
    for (q = 0; q < h->nhosts; q++) {
        lead[q] = (q == rh) ? a->root : h->leader[q];
    }
    leaders = NULL;
    for (q = 0; q < h->nhosts; q++) {
        if (lead[q] == comm->rank) {
            leaders = hier_sub(comm, lead, h->nhosts,
                               0x6c65616465ull + (uint64_t)a->root);
            break;
        }
    }
    free(lead);
    if (leaders != NULL) {
        b      = *a;
        b.root = rh;
        status = hier_phase(comm, leaders, &b);
        hier_sub_free(leaders);
    }
    /* 2. inside each host, from the rank that has it. */
    if (status == SCOMM_OK) {
        b      = *a;
        b.root = h->lidx_of[(h->host == rh) ? a->root : h->leader[h->host]];
        status = hier_phase(comm, h->local, &b);
    }
    return status;
}
