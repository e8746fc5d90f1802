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
 * all_gather and reduce_scatter (further down): one rank per host
 * "carries" each remote block across the host boundary (all_gather) or
 * sends the host's partial of it (reduce_scatter), the local ranks sharing
 * the remote blocks out between them; shm does the rest. Pipelined in
 * segments, no sub-communicators, any layout of >= 2 hosts. Per host, the
 * link carries (p - L) blocks in each direction where a flat ring carries
 * p - 1 (contiguous placement), and L streams carry them at once.
 *
 * The sub-communicators are "virtual": built here without communication
 * from the bootstrap's host identities (every rank knows every rank's
 * hostname and boot id), on context ids derived from the parent's, so no
 * split collective is needed inside a collective. The local comm gets its
 * own direct (shared-memory) state on first use; both are released with
 * the parent (scomm_coll_comm_release).
 *
 * Invariants:
 *  1. all_reduce and broadcast are usable only when every host holds the
 *     same number L >= 2 of the communicator's ranks and there are H >= 2
 *     hosts; all_gather and reduce_scatter whenever H >= 2. Every rank
 *     computes the same answer from the same bootstrap table.
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
/* all_gather / reduce_scatter from this many bytes of the whole gathered
 * (scattered) vector go hierarchical: below, the flat algorithms' fewer,
 * larger messages win. */
#define HIER_MOVE_BYTES      (64u << 10)
/* Segment of the pipelined all_gather / reduce_scatter: a block is moved
 * in segments so that the shm hop of segment k overlaps the network hop
 * of segment k + 1. */
#define HIER_SEG_BYTES       (1u << 20)

struct scomm_coll_hier {
    int           usable;    /* invariant 1 */
    char          why[96];   /* why not, for the selector's reason */
    int           nhosts;
    int           per_host;
    int           host;      /* this rank's host index */
    int          *host_of;   /* parent rank -> host index */
    int          *lidx_of;   /* parent rank -> index inside its host */
    int          *leader;    /* host index -> parent rank of its local 0 */
    int          *first;     /* host index -> offset in by_host; [nhosts]: p */
    int          *by_host;   /* parent ranks grouped by host, each group in
                              * parent-rank order (invariant 2) */
    int           max_local; /* most ranks on one host */
    scomm_comm_t *local;     /* NULL until first used */
    scomm_comm_t *cross;
};

static int hier_same_host(const scomm_world_t *w, int a, int b)
{
    return (strcmp(w->info[a].hostname, w->info[b].hostname) == 0) &&
           (strcmp(w->info[a].boot_id, w->info[b].boot_id) == 0);
}

static void hier_layout_free(struct scomm_coll_hier *h)
{
    free(h->host_of);
    free(h->lidx_of);
    free(h->leader);
    free(h->first);
    free(h->by_host);
    free(h);
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
    h->first   = calloc((size_t)p + 1, sizeof(int));
    h->by_host = calloc((size_t)p, sizeof(int));
    count      = calloc((size_t)p, sizeof(int));
    if ((h->host_of == NULL) || (h->lidx_of == NULL) ||
        (h->leader == NULL) || (h->first == NULL) || (h->by_host == NULL) ||
        (count == NULL)) {
        hier_layout_free(h);
        free(count);
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
    for (q = 0; q < nh; q++) {
        h->first[q + 1] = h->first[q] + count[q];
        h->max_local    = SCOMM_MAX(h->max_local, count[q]);
    }
    for (q = 0; q < p; q++) {
        h->by_host[h->first[h->host_of[q]] + h->lidx_of[q]] = q;
    }
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

    free(comm->sel_cache); /* the selector's cached choices */
    comm->sel_cache = NULL;
    if (h == NULL) {
        return;
    }
    hier_sub_free(h->local);
    hier_sub_free(h->cross);
    hier_layout_free(h);
    comm->hier = NULL;
}

/* 1 if comm's layout suits the hierarchical algorithms: >= 2 hosts and,
 * with equal set, the same number (>= 2) of ranks on each. */
static int hier_layout_ok(const scomm_comm_t *comm, int equal, char *why,
                          size_t whylen)
{
    struct scomm_coll_hier *h = hier_get((scomm_comm_t *)comm);

    if (h == NULL) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    if ((h->nhosts < 2) || (equal && !h->usable)) {
        snprintf(why, whylen, "%s", h->why);
        return 0;
    }
    return 1;
}

int scomm_coll_hier_supports(const scomm_comm_t *comm,
                             const scomm_coll_args_t *a, char *why,
                             size_t whylen)
{
    (void)a;
    return hier_layout_ok(comm, 1, why, whylen);
}

int scomm_coll_hier_move_supports(const scomm_comm_t *comm,
                                  const scomm_coll_args_t *a, char *why,
                                  size_t whylen)
{
    (void)a;
    return hier_layout_ok(comm, 0, why, whylen);
}

int scomm_coll_hier_default(const scomm_comm_t *comm,
                            const scomm_coll_args_t *a, size_t bytes,
                            char *layout, size_t len)
{
    struct scomm_coll_hier *h;
    int move = (a->op == SCOMM_COLL_ALLGATHER) ||
               (a->op == SCOMM_COLL_REDUCESCATTER);
    size_t min = (a->op == SCOMM_COLL_BROADCAST) ? HIER_BCAST_BYTES :
                 move ? HIER_MOVE_BYTES : HIER_ALLREDUCE_BYTES;
    char why[96];

    if ((comm->local_size == comm->size) || (bytes < min)) {
        return 0;
    }
    if (move ? !scomm_coll_hier_move_supports(comm, a, why, sizeof(why)) :
               !scomm_coll_hier_supports(comm, a, why, sizeof(why))) {
        return 0;
    }
    h = comm->hier;
    /* Some host must hold two ranks, or there is nothing to share. */
    if (h->max_local < 2) {
        return 0;
    }
    if (h->max_local * h->nhosts == comm->size) {
        snprintf(layout, len, "%d hosts x %d ranks", h->nhosts,
                 h->max_local);
    } else {
        snprintf(layout, len, "%d hosts, up to %d ranks each", h->nhosts,
                 h->max_local);
    }
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
    char *mine;

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
    /* Slice j lives in its final place from the start: the three phases
     * run in recvbuf, with no scratch to allocate and fault in. */
    mine   = (char *)a->recvbuf + (size_t)h->lidx_of[comm->rank] * slice * es;
    if (slice > 0) {
        /* 1. intra-host reduce_scatter: slice j of the host's sum (AVG:
         *    sums in both phases, one division by p at the end, so that
         *    integers truncate once, as the flat algorithms do). In place
         *    when the call is: recvbuf + j * slice is then the in-place
         *    form of a reduce_scatter over sendbuf. */
        b          = *a;
        b.redop    = (a->redop == SCOMM_AVG) ? SCOMM_SUM : a->redop;
        b.op       = SCOMM_COLL_REDUCESCATTER;
        b.count    = slice;
        b.bytes    = slice * es;
        b.recvbuf  = mine;
        status     = hier_phase(comm, h->local, &b);
        /* 2. inter-host all_reduce of that slice, in place. */
        if (status == SCOMM_OK) {
            b          = *a;
            b.count    = slice;
            b.bytes    = slice * es;
            b.sendbuf  = mine;
            b.recvbuf  = mine;
            b.inplace  = 1;
            b.redop    = (a->redop == SCOMM_AVG) ? SCOMM_SUM : a->redop;
            status     = hier_phase(comm, h->cross, &b);
        }
        if ((status == SCOMM_OK) && (a->redop == SCOMM_AVG)) {
            scomm_reduce_div(mine, slice, a->dtype, comm->size);
        }
        /* 3. intra-host all_gather of the slices, in place. */
        if (status == SCOMM_OK) {
            b          = *a;
            b.op       = SCOMM_COLL_ALLGATHER;
            b.count    = slice;
            b.bytes    = slice * es;
            b.sendbuf  = mine;
            b.inplace  = 1;
            status     = hier_phase(comm, h->local, &b);
        }
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

/*
 * ---- all_gather and reduce_scatter: each block crosses a host boundary
 * once per remote host ----
 *
 * Both work on any layout of >= 2 hosts (uneven rank counts, ranks of a
 * host anywhere in the parent's order), with no sub-communicator: they
 * talk to parent ranks directly. On host g with L_g ranks, the "carrier"
 * of a remote rank q is local rank lidx(q) mod L_g (hier_agent): it alone
 * moves q's block (all_gather) or the host's partial of q's block
 * (reduce_scatter) across g's boundary, so every local rank's link works
 * on a share of the remote blocks at once.
 *
 *   all_gather: q sends its block to its carrier on every other host; a
 *     carrier forwards each block it receives to the other ranks of its
 *     host (shm); every rank also sends its own block to its local peers.
 *   reduce_scatter: every rank sends block q of its input to q (q on this
 *     host) or to q's carrier here; the carrier reduces the host's
 *     contributions and sends that partial to q across the boundary; q
 *     adds its host's sum and one partial per remote host.
 *
 * Blocks move in segments of HIER_SEG_BYTES, so the shm hop of segment k
 * runs while segment k + 1 is on the network. Message order per peer
 * (coll.h rule 1): a rank sends to a local peer, per segment, its own
 * block first and then the blocks it carries in ascending rank order
 * (all_gather), or the blocks that peer reduces in ascending rank order
 * (reduce_scatter); the receiver posts its receives in the same order.
 */

static int hier_nlocal(const struct scomm_coll_hier *h, int g)
{
    return h->first[g + 1] - h->first[g];
}

/* The rank of host g that carries remote rank q's block into g. */
static int hier_agent(const struct scomm_coll_hier *h, int g, int q)
{
    return h->by_host[h->first[g] + (h->lidx_of[q] % hier_nlocal(h, g))];
}

/* The remote ranks whose blocks rank r carries into its host, ascending,
 * with r itself too when self is set; returns how many (<= p). */
static int hier_carried(const struct scomm_coll_hier *h, int p, int r,
                        int self, int *out)
{
    int g = h->host_of[r], q, n = 0;

    for (q = 0; q < p; q++) {
        if (((q == r) && self) ||
            ((h->host_of[q] != g) && (hier_agent(h, g, q) == r))) {
            out[n++] = q;
        }
    }
    return n;
}

scomm_status_t scomm_allgather_hier(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    struct scomm_coll_hier *h = hier_get(comm);
    int p = comm->size, me = comm->rank, g0, L, j, k, g, i, nc, x;
    int *carry = NULL, *ncar = NULL;
    size_t b = a->bytes, nseg, s, n, off, nper, nreq, ri = 0;
    char *recv = a->recvbuf;
    scomm_req_t **reqs = NULL;
    scomm_status_t status = SCOMM_OK;

    if ((h == NULL) || (h->nhosts < 2)) {
        return scomm_allgather_ring(comm, a);
    }
    if (!a->inplace) {
        memcpy(recv + (size_t)me * b, a->sendbuf, b);
    }
    if (b == 0) {
        return SCOMM_OK;
    }
    g0 = h->host_of[me];
    L  = hier_nlocal(h, g0);
    j  = h->lidx_of[me];
    /* carry[k * p ..]: the blocks local rank k carries; ncar[k]: how many. */
    carry = calloc((size_t)L * (size_t)p, sizeof(int));
    ncar  = calloc((size_t)L, sizeof(int));
    if ((carry == NULL) || (ncar == NULL)) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                 "%s: out of memory", comm->cur_op);
        goto out;
    }
    for (k = 0; k < L; k++) {
        ncar[k] = hier_carried(h, p, h->by_host[h->first[g0] + k], 0,
                               carry + (size_t)k * (size_t)p);
    }
    nc   = ncar[j];
    nseg = (b + HIER_SEG_BYTES - 1) / HIER_SEG_BYTES;
    /* Per segment: nc carried receives (first, so that they can be waited
     * for in order), h->nhosts - 1 sends across, (L - 1) * (1 + nc) sends
     * inside, and from the local peers their own and carried blocks. */
    nper = (size_t)nc + (size_t)(h->nhosts - 1) +
           (size_t)(L - 1) * (size_t)(1 + nc) + (size_t)(L - 1) +
           (size_t)(p - L - nc);
    nreq = nseg * nper;
    reqs = calloc(nreq, sizeof(*reqs));
    if (reqs == NULL) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                 "%s: out of memory for requests",
                                 comm->cur_op);
        goto out;
    }
    /* Every receive and every send across hosts is posted first: blocks
     * land in place, and nothing waits for a buffer. */
    ri = nseg * (size_t)nc;
    for (s = 0; (s < nseg) && (status == SCOMM_OK); s++) {
        off = s * HIER_SEG_BYTES;
        n   = SCOMM_MIN((size_t)HIER_SEG_BYTES, b - off);
        for (i = 0; (i < nc) && (status == SCOMM_OK); i++) {
            x      = carry[(size_t)j * (size_t)p + (size_t)i];
            status = scomm_p2p_irecv(comm, x, SCOMM_TAG_COLL,
                                     recv + (size_t)x * b + off, n,
                                     &reqs[s * (size_t)nc + (size_t)i]);
        }
        for (k = 0; (k < L) && (status == SCOMM_OK); k++) {
            int from = h->by_host[h->first[g0] + k];

            if (k == j) {
                continue;
            }
            status = scomm_p2p_irecv(comm, from, SCOMM_TAG_COLL,
                                     recv + (size_t)from * b + off, n,
                                     &reqs[ri++]);
            for (i = 0; (i < ncar[k]) && (status == SCOMM_OK); i++) {
                x      = carry[(size_t)k * (size_t)p + (size_t)i];
                status = scomm_p2p_irecv(comm, from, SCOMM_TAG_COLL,
                                         recv + (size_t)x * b + off, n,
                                         &reqs[ri++]);
            }
        }
        for (g = 0; (g < h->nhosts) && (status == SCOMM_OK); g++) {
            if (g != g0) {
                status = scomm_p2p_isend(comm, hier_agent(h, g, me),
                                         SCOMM_TAG_COLL,
                                         recv + (size_t)me * b + off, n,
                                         &reqs[ri++]);
            }
        }
    }
    /* Inside the host, segment by segment: this rank's own, then each
     * carried block as it arrives. */
    for (s = 0; (s < nseg) && (status == SCOMM_OK); s++) {
        off = s * HIER_SEG_BYTES;
        n   = SCOMM_MIN((size_t)HIER_SEG_BYTES, b - off);
        for (i = -1; (i < nc) && (status == SCOMM_OK); i++) {
            x = (i < 0) ? me : carry[(size_t)j * (size_t)p + (size_t)i];
            if (i >= 0) {
                status = scomm_coll_wait1(comm,
                                          &reqs[s * (size_t)nc + (size_t)i]);
            }
            for (k = 0; (k < L) && (status == SCOMM_OK); k++) {
                if (k != j) {
                    status = scomm_p2p_isend(
                        comm, h->by_host[h->first[g0] + k], SCOMM_TAG_COLL,
                        recv + (size_t)x * b + off, n, &reqs[ri++]);
                }
            }
        }
    }
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, reqs, nreq);
    }
    if (status != SCOMM_OK) {
        status = scomm_coll_abandon(comm, status, reqs, nreq);
    }
out:
    free(reqs);
    free(carry);
    free(ncar);
    return status;
}

scomm_status_t scomm_reducescatter_hier(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a)
{
    struct scomm_coll_hier *h = hier_get(comm);
    int p = comm->size, me = comm->rank, g0, L, j, H, nt, k, g, ti, q, t;
    int *mine = NULL;
    size_t c = a->count, es = a->esize, b = a->bytes, S, nr, rk, off, n;
    size_t nlr, nper, sbytes, ri;
    const char *send = a->sendbuf;
    char *out = a->recvbuf, *scratch = NULL, *ls, *acc, *xs;
    const void **srcs = NULL;
    scomm_redop_t op = (a->redop == SCOMM_AVG) ? SCOMM_SUM : a->redop;
    scomm_req_t **reqs = NULL, **R;
    scomm_status_t status = SCOMM_OK;

    if ((h == NULL) || (h->nhosts < 2)) {
        return scomm_reducescatter_ring(comm, a);
    }
    if (c == 0) {
        return SCOMM_OK;
    }
    g0 = h->host_of[me];
    L  = hier_nlocal(h, g0);
    j  = h->lidx_of[me];
    H  = h->nhosts;
    S  = SCOMM_MAX((size_t)HIER_SEG_BYTES / es, (size_t)1);
    nr = (c + S - 1) / S;
    S  = SCOMM_MIN(S, c);
    mine = calloc((size_t)p, sizeof(int));
    srcs = calloc((size_t)L, sizeof(*srcs));
    if ((mine == NULL) || (srcs == NULL)) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                 "%s: out of memory", comm->cur_op);
        goto out;
    }
    /* The blocks this rank reduces for its host: its own and the ones it
     * carries, ascending. */
    nt = hier_carried(h, p, me, 1, mine);
    /* Two sets of scratch and requests, for segments k and k + 1: the
     * local contributions (nt x (L - 1) segments), the partials sent
     * across (nt), the partials received from the other hosts (H - 1). */
    nlr    = (size_t)nt * (size_t)(L - 1);
    nper   = nlr + (size_t)(H - 1) + (size_t)p + (size_t)nt;
    sbytes = (nlr + (size_t)nt + (size_t)(H - 1)) * S * es;
    scratch = scomm_coll_malloc(comm, 2 * sbytes, "hierarchical segments");
    reqs    = calloc(2 * nper, sizeof(*reqs));
    if ((scratch == NULL) || (reqs == NULL)) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                 "%s: out of memory", comm->cur_op);
        goto out;
    }
    for (rk = 0; (rk <= nr) && (status == SCOMM_OK); rk++) {
        if (rk < nr) {
            R   = reqs + (rk & 1) * nper;
            ls  = scratch + (rk & 1) * sbytes;
            acc = ls + nlr * S * es;
            xs  = acc + (size_t)nt * S * es;
            off = rk * S;
            n   = SCOMM_MIN(S, c - off);
            /* Segment rk - 2 used this set: its sends must be done. */
            status = scomm_coll_waitn(comm, R, nper);
            ri     = nlr + (size_t)(H - 1);
            for (ti = 0; (ti < nt) && (status == SCOMM_OK); ti++) {
                int pi = 0;

                for (k = 0; (k < L) && (status == SCOMM_OK); k++) {
                    if (k == j) {
                        continue;
                    }
                    status = scomm_p2p_irecv(
                        comm, h->by_host[h->first[g0] + k], SCOMM_TAG_COLL,
                        ls + ((size_t)ti * (size_t)(L - 1) + (size_t)pi) *
                                 S * es,
                        n * es, &R[(size_t)ti * (size_t)(L - 1) +
                                   (size_t)pi]);
                    pi++;
                }
            }
            for (g = 0, k = 0; (g < H) && (status == SCOMM_OK); g++) {
                if (g != g0) {
                    status = scomm_p2p_irecv(comm, hier_agent(h, g, me),
                                             SCOMM_TAG_COLL,
                                             xs + (size_t)k * S * es, n * es,
                                             &R[nlr + (size_t)k]);
                    k++;
                }
            }
            /* Block q of the input to whoever reduces it on this host. */
            for (q = 0; (q < p) && (status == SCOMM_OK); q++) {
                t = (h->host_of[q] == g0) ? q : hier_agent(h, g0, q);
                if (t != me) {
                    status = scomm_p2p_isend(comm, t, SCOMM_TAG_COLL,
                                             send + (size_t)q * b + off * es,
                                             n * es, &R[ri++]);
                }
            }
            /* The host's sum of each block this rank reduces, in local
             * rank order; a carried one goes across at once. */
            for (ti = 0; (ti < nt) && (status == SCOMM_OK); ti++) {
                int pi = 0;
                char *dst;

                q      = mine[ti];
                status = scomm_coll_waitn(
                    comm, &R[(size_t)ti * (size_t)(L - 1)], (size_t)(L - 1));
                for (k = 0; k < L; k++) {
                    if (k == j) {
                        srcs[k] = send + (size_t)q * b + off * es;
                    } else {
                        srcs[k] = ls + ((size_t)ti * (size_t)(L - 1) +
                                        (size_t)pi++) * S * es;
                    }
                }
                dst = (q == me) ? out + off * es : acc + (size_t)ti * S * es;
                if (status != SCOMM_OK) {
                    break;
                }
                if ((L > 1) || (dst != srcs[0])) {
                    scomm_reduce_n(dst, srcs, L, n, a->dtype, op, 1);
                }
                if (q != me) {
                    status = scomm_p2p_isend(comm, q, SCOMM_TAG_COLL, dst,
                                             n * es, &R[ri++]);
                }
            }
        }
        if ((rk >= 1) && (status == SCOMM_OK)) {
            /* Segment rk - 1: add the other hosts' partials, host order. */
            size_t pk = rk - 1;

            R   = reqs + (pk & 1) * nper;
            xs  = scratch + (pk & 1) * sbytes + (nlr + (size_t)nt) * S * es;
            off = pk * S;
            n   = SCOMM_MIN(S, c - off);
            for (k = 0; (k < H - 1) && (status == SCOMM_OK); k++) {
                status = scomm_coll_wait1(comm, &R[nlr + (size_t)k]);
                if (status == SCOMM_OK) {
                    scomm_reduce2(out + off * es, xs + (size_t)k * S * es, n,
                                  a->dtype, op);
                }
            }
            if ((status == SCOMM_OK) && (a->redop == SCOMM_AVG)) {
                scomm_reduce_div(out + off * es, n, a->dtype, comm->size);
            }
        }
    }
    if (status == SCOMM_OK) {
        status = scomm_coll_waitn(comm, reqs, 2 * nper);
    }
    if (status != SCOMM_OK) {
        status = scomm_coll_abandon(comm, status, reqs, 2 * nper);
    }
out:
    free(reqs);
    free(scratch);
    free(srcs);
    free(mine);
    return status;
}

