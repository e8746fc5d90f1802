/*
 * coll.h - the collectives layer (internal): the argument block every
 * algorithm receives, the algorithm table, the selector, and helpers shared
 * by the algorithm files.
 *
 * Layering: the public entry points (src/api/coll.c) validate arguments
 * with scomm_coll_prep_* (check.c) and call the executor, scomm_coll_run()
 * (exec.c), directly or through the overlap engine; the executor takes the
 * world lock, the selector (select.c) picks one algorithm of the table,
 * and the algorithm moves data with the core's point-to-point calls
 * (scomm_p2p_*) on tag SCOMM_TAG_COLL and combines it with the kernels of
 * reduce.h. No algorithm knows which transport carries its messages, and
 * none waits other than through the core (scomm_p2p_waitall,
 * scomm_world_wait_until).
 *
 * Rules every algorithm follows:
 *  1. All collective traffic uses tag SCOMM_TAG_COLL. Matching is in order
 *     per (peer, ctx, tag) and every rank runs the same algorithm with the
 *     same arguments, so the k-th message one rank sends to a peer is the
 *     k-th receive that peer posts for it. A message of zero elements is
 *     skipped only when both sides can tell it is empty from arguments
 *     that all ranks share.
 *  2. An algorithm returns only after every request it posted completed or
 *     was released (scomm_coll_abandon on errors).
 *  3. The caller's output buffers are written only by the algorithm; input
 *     buffers are never written (except in-place, where they are the
 *     output).
 *  4. Reductions on all_reduce give bit-identical results on every rank:
 *     each element is reduced by exactly one rank and then copied, or both
 *     partners of an exchange combine in the same operand order (lower rank
 *     first).
 */
#ifndef SCOMM_COLL_H
#define SCOMM_COLL_H

#include <stddef.h>
#include <stdint.h>

#include "../core/dtype.h"
#include "../core/scomm_int.h"
#include "reduce.h"

/* Segment size of the pipelined algorithms (ring, chain), in bytes. */
#define SCOMM_COLL_SEG_BYTES   (512u << 10)
/* Receive slots of SCOMM_COLL_SEG_BYTES each in the ring reduce-scatter. */
#define SCOMM_COLL_RING_WINDOW 8

/*
 * Arguments of one collective, validated. count means: all_reduce,
 * broadcast, reduce: elements of the vector; all_gather, gather: elements
 * each rank contributes; reduce_scatter, scatter: elements each rank
 * receives; all_to_all: elements per peer; all_to_allv: unused.
 */
typedef struct scomm_coll_args {
    scomm_coll_op_t op;
    const void     *sendbuf;
    void           *recvbuf;
    size_t          count;
    size_t          esize;
    size_t          bytes;   /* count * esize */
    scomm_dtype_t   dtype;
    scomm_redop_t   redop;   /* reductions only */
    int             root;    /* rooted operations only */
    int             inplace; /* the op's in-place form was used */
    const size_t   *scounts; /* all_to_allv only */
    const size_t   *sdispls;
    const size_t   *rcounts;
    const size_t   *rdispls;
} scomm_coll_args_t;

typedef scomm_status_t (*scomm_coll_fn_t)(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a);
/* 1 if the algorithm handles this case; else 0 and why (a phrase). */
typedef int (*scomm_coll_supports_fn_t)(const scomm_comm_t *comm,
                                        const scomm_coll_args_t *a,
                                        char *why, size_t whylen);

typedef struct scomm_coll_algo {
    const char              *name;
    scomm_coll_op_t          op;
    scomm_coll_supports_fn_t supports; /* NULL: every case */
    scomm_coll_fn_t          run;
} scomm_coll_algo_t;

/* ---- selector (select.c) ---- */

/*
 * Choose the algorithm for a (validated) call and fill comm->last_sel.
 * Returns SCOMM_ERR_INVALID_ARG when SCOMM_ALGO or SCOMM_COLL_<OP>_ALGO
 * names no algorithm (the message lists the valid names).
 */
scomm_status_t scomm_coll_select(scomm_comm_t *comm,
                                 const scomm_coll_args_t *a,
                                 const scomm_coll_algo_t **algo_p);

/*
 * Test hook: force op's algorithm in this process (all communicators), or
 * go back to the environment and the default rules with name == NULL.
 * Takes precedence over the environment. An unknown name is
 * SCOMM_ERR_INVALID_ARG, with the valid names in scomm_last_error().
 */
scomm_status_t scomm_coll_force_algo(scomm_coll_op_t op, const char *name);

/* Test hook: read SCOMM_COLL_<OP>_ALGO again (normally read once). */
void scomm_coll_env_reload(void);

/* Fill comm->last_sel for a call that needs no algorithm (p == 1, empty). */
void scomm_coll_record_special(scomm_comm_t *comm, const char *algo,
                               const char *rule, const char *reason);

/* Number of algorithms for op, and the i-th one's name (tests, bench). */
int scomm_coll_algo_count(scomm_coll_op_t op);
const char *scomm_coll_algo_name(scomm_coll_op_t op, int i);

/* Index of op's algorithm called name in the table, or -1. */
int scomm_coll_algo_index(scomm_coll_op_t op, const char *name);

/* Forget comm's cached choices (after something the rules look at
 * changed, e.g. the direct algorithms became unusable). */
void scomm_coll_select_invalidate(scomm_comm_t *comm);

/* ---- hierarchical collectives (hier.c) ---- */

scomm_status_t scomm_allreduce_hier(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a);
scomm_status_t scomm_bcast_hier(scomm_comm_t *comm,
                                const scomm_coll_args_t *a);
scomm_status_t scomm_allgather_hier(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a);
scomm_status_t scomm_reducescatter_hier(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a);
/* 1 if comm spans >= 2 hosts with the same number (>= 2) of ranks each. */
int scomm_coll_hier_supports(const scomm_comm_t *comm,
                             const scomm_coll_args_t *a, char *why,
                             size_t whylen);
/* all_gather and reduce_scatter: 1 if comm spans >= 2 hosts, whatever
 * their rank counts and however the ranks are placed. */
int scomm_coll_hier_move_supports(const scomm_comm_t *comm,
                                  const scomm_coll_args_t *a, char *why,
                                  size_t whylen);
/* 1 if the default rules should go hierarchical for a call of bytes (the
 * rules' measure); layout then says "2 hosts x 2 ranks". */
int scomm_coll_hier_default(const scomm_comm_t *comm,
                            const scomm_coll_args_t *a, size_t bytes,
                            char *layout, size_t len);
/* Free comm's collective state (the selector's cache, hierarchical
 * sub-communicators); world lock held: the coll module's comm_release
 * hook. */
void scomm_coll_comm_release(scomm_comm_t *comm);

/* ---- the selector's policy file (policy.c, SCOMM_SELECTOR_CONFIG) ---- */

enum {
    SCOMM_COLL_POLICY_TL_ANY = 0,
    SCOMM_COLL_POLICY_TL_SHM,
    SCOMM_COLL_POLICY_TL_TCP,
    SCOMM_COLL_POLICY_TL_MOCK
};

typedef struct scomm_coll_policy_rule {
    char     id[40];
    int      op;         /* scomm_coll_op_t, or -1: any */
    char     algo[32];
    uint64_t min_bytes;  /* inclusive */
    uint64_t max_bytes;
    int      min_ranks;
    int      max_ranks;
    int      pow2;       /* -1 any, 0, 1 */
    int      all_local;  /* -1 any, 0, 1 */
    int      transport;  /* SCOMM_COLL_POLICY_TL_* */
} scomm_coll_policy_rule_t;

/* What a tuned policy was measured on (its "machine" block; tuned.c). */
typedef struct scomm_coll_tune_key {
    char cpu[128];        /* /proc/cpuinfo's model name */
    int  world_size;
    int  local_size;      /* ranks on rank 0's host */
    char transports[64];  /* that reach rank 0's peers: "shm", "shm+tcp" */
    char version[32];     /* scomm's */
} scomm_coll_tune_key_t;

typedef struct scomm_coll_policy {
    int                       n;
    scomm_coll_policy_rule_t *rules;
    char                      path[256];
    int                       has_machine;
    scomm_coll_tune_key_t     machine;
} scomm_coll_policy_t;

/* Parse len bytes of JSON (path: for messages). 0, or a negative status
 * and err says what and where (path:line:column for syntax): BAD_CONFIG,
 * or UNSUPPORTED in a build without jansson. pol is empty on error. */
int scomm_coll_policy_parse(const char *text, size_t len, const char *path,
                            scomm_coll_policy_t *pol, char *err,
                            size_t errlen);
int scomm_coll_policy_load(const char *path, scomm_coll_policy_t *pol,
                           char *err, size_t errlen);
void scomm_coll_policy_free(scomm_coll_policy_t *pol);
/* "" if k and the file's machine block agree, else what differs (one
 * phrase: "world_size 4 (this run: 2)"). */
void scomm_coll_tune_key_diff(const scomm_coll_tune_key_t *file,
                              const scomm_coll_tune_key_t *k, char *out,
                              size_t len);
/* The first rule matching the call, or NULL. */
const scomm_coll_policy_rule_t *
scomm_coll_policy_match(const scomm_coll_policy_t *pol, scomm_coll_op_t op,
                        uint64_t bytes, int p, int all_local, int tl);

/* ---- the tuned policy (tuned.c, `scomm tune`) ---- */

/* Rank 0 sends the tuned policy to the others at scomm_init on this tag. */
#define SCOMM_TAG_TUNE 0x40000011

/* This machine's CPU model (/proc/cpuinfo), or its architecture. */
void scomm_coll_tune_cpu(char *out, size_t len);
/* The key of a run on comm as this rank sees it (rank 0's counts). */
void scomm_coll_tune_key_of(const scomm_comm_t *comm,
                            scomm_coll_tune_key_t *k);
/* ${XDG_CACHE_HOME:-$HOME/.cache}/scomm; -1 (and why in out) if neither
 * is set. */
int scomm_coll_tune_dir(char *out, size_t len);
/* "policy-<cpu>-w<N>-l<L>-<transports>-v<version>.json"; 0, or -1. */
int scomm_coll_tune_file_name(const scomm_coll_tune_key_t *k, char *out,
                              size_t len);
/* The file for key k: SCOMM_TUNE_CACHE's path, or the cache directory's
 * file; 0 and path, 1 when turned off, -1 on an error; why says. */
int scomm_coll_tune_path(const scomm_coll_tune_key_t *k, char *path,
                         size_t len, char *why, size_t wlen);
/* k as the JSON object of a policy file's "machine" block; 0, or -1. */
int scomm_coll_tune_machine_json(const scomm_coll_tune_key_t *k, char *out,
                                 size_t len);
/* The coll module's world_up hook: rank 0 reads, every rank gets it. */
scomm_status_t scomm_coll_tune_world_up(scomm_comm_t *comm);
/* The coll module's comm_gone hook: the world's policy goes with it. */
void scomm_coll_tune_comm_gone(scomm_comm_t *comm, int last);
/* Which policy a run here would use, in words (`scomm info`). */
void scomm_coll_tune_describe(char *out, size_t len);

/* ---- the argument checks (check.c) ---- */

/*
 * Validate one call of the operation and fill *a. name is the public
 * call's ("scomm_iall_reduce") for messages. SCOMM_OK, or
 * SCOMM_ERR_INVALID_ARG (or the communicator's error) naming the bad
 * argument, with nothing written, sent or locked.
 */
scomm_status_t scomm_coll_prep_all_reduce(scomm_coll_args_t *a,
                                          const char *name,
                                          const void *sendbuf, void *recvbuf,
                                          size_t count, scomm_dtype_t dtype,
                                          scomm_redop_t op, scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_all_gather(scomm_coll_args_t *a,
                                          const char *name,
                                          const void *sendbuf, void *recvbuf,
                                          size_t sendcount,
                                          scomm_dtype_t dtype,
                                          scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_reduce_scatter(scomm_coll_args_t *a,
                                              const char *name,
                                              const void *sendbuf,
                                              void *recvbuf, size_t recvcount,
                                              scomm_dtype_t dtype,
                                              scomm_redop_t op,
                                              scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_broadcast(scomm_coll_args_t *a,
                                         const char *name, void *buf,
                                         size_t count, scomm_dtype_t dtype,
                                         int32_t root, scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_reduce(scomm_coll_args_t *a, const char *name,
                                      const void *sendbuf, void *recvbuf,
                                      size_t count, scomm_dtype_t dtype,
                                      scomm_redop_t op, int32_t root,
                                      scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_all_to_all(scomm_coll_args_t *a,
                                          const char *name,
                                          const void *sendbuf, void *recvbuf,
                                          size_t count_per_peer,
                                          scomm_dtype_t dtype,
                                          scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_all_to_allv(scomm_coll_args_t *a,
                                           const char *name,
                                           const void *sendbuf,
                                           const size_t *sendcounts,
                                           const size_t *sdispls,
                                           void *recvbuf,
                                           const size_t *recvcounts,
                                           const size_t *rdispls,
                                           scomm_dtype_t dtype,
                                           scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_gather(scomm_coll_args_t *a, const char *name,
                                      const void *sendbuf, void *recvbuf,
                                      size_t sendcount, scomm_dtype_t dtype,
                                      int32_t root, scomm_comm_t *comm);
scomm_status_t scomm_coll_prep_scatter(scomm_coll_args_t *a, const char *name,
                                       const void *sendbuf, void *recvbuf,
                                       size_t recvcount, scomm_dtype_t dtype,
                                       int32_t root, scomm_comm_t *comm);

/* ---- the executor (exec.c) ---- */

/*
 * A library that runs a communicator's collectives in place of the
 * algorithms here (src/backend: a vendor communicator). The backend sets
 * comm->coll_offload when it attaches one; the executor hands it each
 * validated call, world lock held; it records comm->last_sel.
 */
typedef scomm_status_t (*scomm_coll_offload_fn)(scomm_comm_t *comm,
                                                const char *name,
                                                const scomm_coll_args_t *a);

/* Run a validated call (SCOMM_CHECK, offload, selection, the algorithm);
 * takes the world lock. */
scomm_status_t scomm_coll_run(scomm_comm_t *comm, const char *name,
                              const scomm_coll_args_t *a);

/* The dissemination barrier (barrier.c); takes the world lock. */
scomm_status_t scomm_barrier_run(scomm_comm_t *comm);

/* ---- helpers shared by the algorithm files (coll_util.c) ---- */

/*
 * An error happened after communication started: fail the world (so every
 * peer stops at once instead of at its deadline, and no later collective
 * reads stale messages), then release the n requests (NULL entries
 * skipped). Keeps the original error message. Returns status.
 */
scomm_status_t scomm_coll_abandon(scomm_comm_t *comm, scomm_status_t status,
                                  scomm_req_t **reqs, size_t n);

/* Wait for and release one request (NULL: nothing to do). */
scomm_status_t scomm_coll_wait1(scomm_comm_t *comm, scomm_req_t **req);

/* Wait for and release n requests (n may exceed INT_MAX). */
scomm_status_t scomm_coll_waitn(scomm_comm_t *comm, scomm_req_t **reqs,
                                size_t n);

/* malloc that records SCOMM_ERR_NO_MEMORY with the operation's name. */
void *scomm_coll_malloc(scomm_comm_t *comm, size_t bytes, const char *what);

/* 1 if n is a power of two (n >= 1). */
static inline int scomm_coll_is_pow2(int n)
{
    return (n > 0) && ((n & (n - 1)) == 0);
}

/* Largest power of two <= n (n >= 1). */
static inline int scomm_coll_pow2_floor(int n)
{
    int p = 1;

    while ((p << 1) <= n) {
        p <<= 1;
    }
    return p;
}

/* Ceil(log2(n)) for n >= 1. */
static inline int scomm_coll_log2_ceil(int n)
{
    int k = 0;

    while ((1 << k) < n) {
        k++;
    }
    return k;
}

/* Elements per pipeline segment for elements of esize bytes (>= 1). */
static inline size_t scomm_coll_seg_elems(size_t esize)
{
    size_t n = SCOMM_COLL_SEG_BYTES / esize;

    return (n > 0) ? n : 1;
}

/* ---- algorithms ---- */

/* ring.c */
scomm_status_t scomm_allreduce_ring(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a);
scomm_status_t scomm_allgather_ring(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a);
scomm_status_t scomm_reducescatter_ring(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a);
/* Ring all-gather of n equal blocks of bytes each, in place in buf. */
scomm_status_t scomm_coll_ring_allgather_bytes(scomm_comm_t *comm, void *buf,
                                               size_t block_bytes);

/* rd.c: recursive doubling / halving */
scomm_status_t scomm_allreduce_rd(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a);
scomm_status_t scomm_allreduce_rabenseifner(scomm_comm_t *comm,
                                            const scomm_coll_args_t *a);
int scomm_allreduce_rabenseifner_supports(const scomm_comm_t *comm,
                                          const scomm_coll_args_t *a,
                                          char *why, size_t whylen);
scomm_status_t scomm_allgather_rd(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a);
int scomm_allgather_rd_supports(const scomm_comm_t *comm,
                                const scomm_coll_args_t *a, char *why,
                                size_t whylen);
scomm_status_t scomm_reducescatter_direct(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a);

/* tree.c: rooted operations */
scomm_status_t scomm_bcast_binomial(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a);
scomm_status_t scomm_bcast_chain(scomm_comm_t *comm,
                                 const scomm_coll_args_t *a);
scomm_status_t scomm_reduce_binomial(scomm_comm_t *comm,
                                     const scomm_coll_args_t *a);
scomm_status_t scomm_gather_linear(scomm_comm_t *comm,
                                   const scomm_coll_args_t *a);
scomm_status_t scomm_scatter_linear(scomm_comm_t *comm,
                                    const scomm_coll_args_t *a);

/* direct.c: ranks of one host read each other's data in shared memory */
scomm_status_t scomm_allreduce_direct(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a);
scomm_status_t scomm_allgather_direct(scomm_comm_t *comm,
                                      const scomm_coll_args_t *a);
scomm_status_t scomm_bcast_direct(scomm_comm_t *comm,
                                  const scomm_coll_args_t *a);
scomm_status_t scomm_reducescatter_shm_direct(scomm_comm_t *comm,
                                              const scomm_coll_args_t *a);
/* direct_single.c: every rank reads what it needs where it lies
 * (process_vm_readv, scomm_mem_alloc memory): "single_copy". */
scomm_status_t scomm_bcast_single_copy(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a);
scomm_status_t scomm_allgather_single_copy(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a);
scomm_status_t scomm_alltoall_single_copy(scomm_comm_t *comm,
                                          const scomm_coll_args_t *a);
/* 2..16 ranks, all on this host, and no earlier set-up failure. */
int scomm_coll_direct_supports(const scomm_comm_t *comm,
                               const scomm_coll_args_t *a, char *why,
                               size_t whylen);
/* 1 when the direct state exists and its set-up found the ranks' cores
 * near (a cache line crosses in at most 120 ns one way; knob
 * SCOMM_COLL_SHM_NEAR), with that time in *ns; 0 otherwise. The same on
 * every rank of comm. */
int scomm_coll_shm_near(const scomm_comm_t *comm, uint32_t *ns);
/* Supported, and every peer is reached over shm: the default rules may
 * choose the direct algorithms. */
int scomm_coll_direct_default(const scomm_comm_t *comm,
                              const scomm_coll_args_t *a);

/* alltoall.c */
scomm_status_t scomm_alltoall_pairwise(scomm_comm_t *comm,
                                       const scomm_coll_args_t *a);
scomm_status_t scomm_alltoallv_pairwise(scomm_comm_t *comm,
                                        const scomm_coll_args_t *a);

#endif /* SCOMM_COLL_H */
