/*
 * select.c - the algorithm table and the selector: which algorithm runs a
 * collective, and a record of why (scomm_last_selection()).
 *
 * Precedence, first match wins:
 *   1. the test hook scomm_coll_force_algo()            rule "forced.hook"
 *   2. SCOMM_COLL_<OP>_ALGO (read once per process)     rule "env.op"
 *   3. SCOMM_ALGO (the world's config), when it names an algorithm of this
 *      op; a name valid for other ops only is ignored   rule "env.global"
 *   4. the first matching rule of the policy file SCOMM_SELECTOR_CONFIG
 *      (policy.c; read once per process)                rule "policy:<id>"
 *   5. the first matching rule of the world's tuned policy (tuned.c: the
 *      file `scomm tune` wrote for this machine and rank layout, read by
 *      rank 0 at scomm_init and sent to the others)      rule "policy:<id>"
 *   6. the default rules below, by op, bytes, rank count and whether the
 *      rank count is a power of two.
 * The record's reason says which policy file's rule decided.
 * A forced algorithm that cannot run the case (Rabenseifner with fewer
 * elements than ranks, recursive doubling all_gather on a non-power-of-two
 * size) falls back to the default rule; the reason says so. A name that
 * is no algorithm at all is SCOMM_ERR_INVALID_ARG listing the valid names.
 *
 * Default rules (thresholds are starting points, to be tuned with
 * `scomm bench`). "All local over shm" below means: 2..16 ranks, every one
 * on this host, every peer reached over shm (scomm_coll_direct_default).
 *   all_reduce      all local over shm: direct, at every size (2 ranks,
 *                   8 B .. 256 MiB f32: faster than recursive doubling and
 *                   Rabenseifner everywhere, as fast as ring from 128 KiB
 *                   to 4 MiB, 1.5x ring from 16 MiB on); otherwise:
 *                   <= 64 KiB: recursive_doubling (log2 p rounds);
 *                   <= 1 MiB (4 MiB when p is a power of two):
 *                   rabenseifner (bandwidth-optimal, 2 log2 p rounds), or
 *                   recursive_doubling if count < p';
 *                   larger: ring (bandwidth-optimal, pipelined)
 *   all_gather      all local over shm and total <= 48 B (one cache
 *                   line per rank) or >= 8 MiB: direct
 *                   (staged by non-temporal stores); >= 256 KiB: direct
 *                   when the cores are near (the direct set-up's probe:
 *                   a cache line crosses in <= 120 ns), else single_copy;
 *                   >= 2 hosts, some with >= 2 ranks, total >= 64 KiB:
 *                   hierarchical; total <= 64 KiB and p a power of two:
 *                   recursive_doubling; else ring
 *   reduce_scatter  all local over shm and total <= 48 B (one cache line
 *                   per rank) or >= 4 MiB: shm_direct;
 *                   >= 2 hosts, some with >= 2 ranks, total >= 64 KiB:
 *                   hierarchical; total <= 64 KiB: direct; else ring
 *   broadcast       all local over shm: <= 48 B direct (its one cache
 *                   line path), >= 8 MiB direct (staged by non-temporal
 *                   stores), >= 256 KiB direct when the cores are near,
 *                   else single_copy;
 *                   <= 256 KiB or p == 2: binomial; else chain
 *   reduce          binomial
 *   all_to_all      all local over shm and a rank's send buffer <= 48 B
 *                   (one cache line) or >= 256 KiB: single_copy;
 *                   else pairwise
 *   all_to_allv     pairwise;  gather, scatter: linear
 * (the single-copy and tiny thresholds are starting points: `scomm tune`
 * measures them per machine, see below)
 *
 * The choice and its record are cached per communicator and op, keyed by
 * (count, bytes, in place) and a process-wide generation that the test
 * hooks bump: a loop of one call costs a compare and a copy of the record,
 * not the rules and a snprintf of the reason (0.4 us of an 8-byte
 * all_reduce otherwise).
 *
 * Invariants:
 *  1. The choice depends only on arguments every rank shares (op, count,
 *     dtype, p) and on configuration, so every rank picks the same one.
 *  2. comm->last_sel is written for every call that gets past argument
 *     checks, under the world lock.
 *  3. A cached entry is used only while its generation is current and
 *     nothing the rules read has changed (scomm_coll_select_invalidate).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/module.h"
#include "coll.h"
#include "../core/module.h"

#define SCOMM_COLL_SMALL_BYTES      (64u << 10)
#define SCOMM_COLL_MID_BYTES        (1u << 20)
#define SCOMM_COLL_MID_BYTES_POW2   (4u << 20)
#define SCOMM_COLL_BCAST_TREE_BYTES (256u << 10)
/* From this size (total bytes) shm_direct runs reduce_scatter when all
 * ranks are local. */
#define SCOMM_COLL_SHM_MOVE_BYTES   (4u << 20)
/* From this size (all_gather: total; all_to_all: a rank's send buffer)
 * broadcast, all_gather and all_to_all read each other's buffers where
 * they lie (single_copy) when all ranks are local; up to the tiny size,
 * broadcast and all_to_all go through one cache line. */
#define SCOMM_COLL_SHM_SINGLE_BYTES (256u << 10)
/* From this size (all_gather: total) broadcast and all_gather go back to
 * the staged "direct": it stages with non-temporal stores from 8 MiB on
 * (direct.c), so each byte crosses through memory at memory speed, where
 * process_vm_readv pins every 4 KiB page and copies it in the kernel
 * (2026-12-07, the AMD EPYC VM, 2 ranks: broadcast 256 MiB 11-16 against
 * 3.5-7.7 GB/s, all_gather 11 against 5-8). */
#define SCOMM_COLL_SHM_STAGED_BYTES (8u << 20)
#define SCOMM_COLL_TINY_BYTES       48u
#define SCOMM_COLL_NAME_MAX         32

static const scomm_coll_algo_t scomm_coll_algos[] = {
    {"ring", SCOMM_COLL_ALLREDUCE, NULL, scomm_allreduce_ring},
    {"recursive_doubling", SCOMM_COLL_ALLREDUCE, NULL, scomm_allreduce_rd},
    {"rabenseifner", SCOMM_COLL_ALLREDUCE,
     scomm_allreduce_rabenseifner_supports, scomm_allreduce_rabenseifner},
    {"direct", SCOMM_COLL_ALLREDUCE, scomm_coll_direct_supports,
     scomm_allreduce_direct},
    {"hierarchical", SCOMM_COLL_ALLREDUCE, scomm_coll_hier_supports,
     scomm_allreduce_hier},
    {"ring", SCOMM_COLL_ALLGATHER, NULL, scomm_allgather_ring},
    {"recursive_doubling", SCOMM_COLL_ALLGATHER, scomm_allgather_rd_supports,
     scomm_allgather_rd},
    {"direct", SCOMM_COLL_ALLGATHER, scomm_coll_direct_supports,
     scomm_allgather_direct},
    {"single_copy", SCOMM_COLL_ALLGATHER, scomm_coll_direct_supports,
     scomm_allgather_single_copy},
    {"hierarchical", SCOMM_COLL_ALLGATHER, scomm_coll_hier_move_supports,
     scomm_allgather_hier},
    {"ring", SCOMM_COLL_REDUCESCATTER, NULL, scomm_reducescatter_ring},
    {"direct", SCOMM_COLL_REDUCESCATTER, NULL, scomm_reducescatter_direct},
    {"shm_direct", SCOMM_COLL_REDUCESCATTER, scomm_coll_direct_supports,
     scomm_reducescatter_shm_direct},
    {"hierarchical", SCOMM_COLL_REDUCESCATTER, scomm_coll_hier_move_supports,
     scomm_reducescatter_hier},
    {"binomial", SCOMM_COLL_BROADCAST, NULL, scomm_bcast_binomial},
    {"chain", SCOMM_COLL_BROADCAST, NULL, scomm_bcast_chain},
    {"direct", SCOMM_COLL_BROADCAST, scomm_coll_direct_supports,
     scomm_bcast_direct},
    {"single_copy", SCOMM_COLL_BROADCAST, scomm_coll_direct_supports,
     scomm_bcast_single_copy},
    {"hierarchical", SCOMM_COLL_BROADCAST, scomm_coll_hier_supports,
     scomm_bcast_hier},
    {"binomial", SCOMM_COLL_REDUCE, NULL, scomm_reduce_binomial},
    {"pairwise", SCOMM_COLL_ALLTOALL, NULL, scomm_alltoall_pairwise},
    {"single_copy", SCOMM_COLL_ALLTOALL, scomm_coll_direct_supports,
     scomm_alltoall_single_copy},
    {"pairwise", SCOMM_COLL_ALLTOALLV, NULL, scomm_alltoallv_pairwise},
    {"linear", SCOMM_COLL_GATHER, NULL, scomm_gather_linear},
    {"linear", SCOMM_COLL_SCATTER, NULL, scomm_scatter_linear},
};

/* The variable that forces each operation's algorithm. */
static const char *const scomm_coll_op_env[SCOMM_COLL_OP_COUNT] = {
    [SCOMM_COLL_ALLREDUCE]     = "SCOMM_COLL_ALLREDUCE_ALGO",
    [SCOMM_COLL_ALLGATHER]     = "SCOMM_COLL_ALLGATHER_ALGO",
    [SCOMM_COLL_REDUCESCATTER] = "SCOMM_COLL_REDUCESCATTER_ALGO",
    [SCOMM_COLL_BROADCAST]     = "SCOMM_COLL_BROADCAST_ALGO",
    [SCOMM_COLL_REDUCE]        = "SCOMM_COLL_REDUCE_ALGO",
    [SCOMM_COLL_ALLTOALL]      = "SCOMM_COLL_ALLTOALL_ALGO",
    [SCOMM_COLL_ALLTOALLV]     = "SCOMM_COLL_ALLTOALLV_ALGO",
    [SCOMM_COLL_GATHER]        = "SCOMM_COLL_GATHER_ALGO",
    [SCOMM_COLL_SCATTER]       = "SCOMM_COLL_SCATTER_ALGO",
};

/* One SCOMM_COLL_<OP>_ALGO row: the words are op's algorithms in the order
 * of scomm_coll_algos (the ENUM index is scomm_coll_algo_name's; a unit
 * test keeps the two equal). */
#define SCOMM_COLL_ALGO_ROW(_name, _op, _values)                           \
    {.name = _name, .defval = "", .type = SCOMM_PARAM_ENUM,                \
     .values = _values,                                                    \
     .help = "run every " _op " with this algorithm (rule env.op)"}

/* Knobs (registry rows, core/config.h). */
static const scomm_param_t scomm_coll_params[] = {
    {.name = "SCOMM_ALGO", .defval = "", .type = SCOMM_PARAM_STRING,
     SCOMM_PARAM_FIELD(algo),
     .help = "run every collective that has an algorithm of this name "
             "with it (rule env.global; see SCOMM_COLL_<OP>_ALGO)"},
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_ALLREDUCE_ALGO", "all_reduce",
                        "ring,recursive_doubling,rabenseifner,direct,"
                        "hierarchical"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_ALLGATHER_ALGO", "all_gather",
                        "ring,recursive_doubling,direct,single_copy,"
                        "hierarchical"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_REDUCESCATTER_ALGO", "reduce_scatter",
                        "ring,direct,shm_direct,hierarchical"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_BROADCAST_ALGO", "broadcast",
                        "binomial,chain,direct,single_copy,hierarchical"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_REDUCE_ALGO", "reduce", "binomial"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_ALLTOALL_ALGO", "all_to_all",
                        "pairwise,single_copy"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_ALLTOALLV_ALGO", "all_to_allv",
                        "pairwise"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_GATHER_ALGO", "gather", "linear"),
    SCOMM_COLL_ALGO_ROW("SCOMM_COLL_SCATTER_ALGO", "scatter", "linear"),
    {.name = "SCOMM_SELECTOR_CONFIG", .defval = "",
     .type = SCOMM_PARAM_STRING,
     .help = "JSON policy file of selection rules (docs/design.md), read "
             "once per process"},
    {.name = "SCOMM_TUNE_CACHE", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = 255,
     .help = "the tuned selector policy (scomm tune) that scomm_init loads: "
             "unset, the file of this CPU, rank layout and version in "
             "${XDG_CACHE_HOME:-~/.cache}/scomm/; a path: that file; off: "
             "none. Rank 0's value and file count; SCOMM_SELECTOR_CONFIG "
             "wins over it"},
    {.name = "SCOMM_COLL_SHM_NEAR", .defval = "auto", .type = SCOMM_PARAM_ENUM,
     .values = "auto,yes,no",
     .help = "whether the ranks' cores share a cache, for the default "
             "rules of broadcast and all_gather from 256 KiB to 8 MiB "
             "(yes: staged, no: single copy); auto measures it when the "
             "shared-memory collectives start (<= 120 ns one way is near)"},
    {.name = "SCOMM_COLL_SHM_CHUNK", .defval = "1m", .type = SCOMM_PARAM_SIZE,
     .min = 64 << 10, .max = 64 << 20,
     .help = "bytes of each of the two staging buffers per rank of the "
             "shared-memory (direct) collectives; scomm_control_set "
             "chunk_size changes it at run time"},
};

/* SCOMM_COLL_<OP>_ALGO, read once (scomm_coll_env_reload for tests): the
 * algorithm's name, or why the value was refused. */
static pthread_once_t scomm_coll_env_once = PTHREAD_ONCE_INIT;
static char scomm_coll_env[SCOMM_COLL_OP_COUNT][SCOMM_COLL_NAME_MAX + 1];
static char scomm_coll_env_err[SCOMM_COLL_OP_COUNT][320];

/* Test hook: 1 + index into scomm_coll_algos, or 0 for none. */
static int scomm_coll_forced[SCOMM_COLL_OP_COUNT];

/* Bumped whenever a hook changes the configuration: older cache entries
 * are stale. Starts at 1 so that a zeroed entry never matches. */
static _Atomic uint64_t scomm_coll_sel_gen = 1;

struct scomm_coll_sel_cache {
    uint64_t            gen;
    size_t              count;
    size_t              bytes;
    int                 inplace;
    int                 algo;     /* index into scomm_coll_algos */
    char                cfg_algo[32]; /* the world's SCOMM_ALGO then */
    scomm_coll_record_t rec;
};

/* SCOMM_SELECTOR_CONFIG, loaded once (again by scomm_coll_env_reload). */
static scomm_coll_policy_t scomm_coll_pol;
static char scomm_coll_pol_err[320];
static int scomm_coll_pol_status; /* of the load: BAD_CONFIG, UNSUPPORTED */

static void scomm_coll_policy_env(void)
{
    scomm_pval_t path;

    scomm_coll_policy_free(&scomm_coll_pol);
    scomm_coll_pol_err[0] = '\0';
    scomm_coll_pol_status = SCOMM_OK;
    if (scomm_param_get("SCOMM_SELECTOR_CONFIG", NULL, &path,
                        scomm_coll_pol_err,
                        sizeof(scomm_coll_pol_err)) != SCOMM_OK) {
        scomm_coll_pol_status = SCOMM_ERR_BAD_CONFIG;
        scomm_error(SCOMM_SUB_COLL, "%s", scomm_coll_pol_err);
    } else if (path.text[0] != '\0') {
        scomm_coll_pol_status = scomm_coll_policy_load(
            path.text, &scomm_coll_pol, scomm_coll_pol_err,
            sizeof(scomm_coll_pol_err));
        if (scomm_coll_pol_status != SCOMM_OK) {
            scomm_error(SCOMM_SUB_COLL, "SCOMM_SELECTOR_CONFIG: %s",
                        scomm_coll_pol_err);
        }
    }
}

static void scomm_coll_env_load(void)
{
    const char *name;
    scomm_pval_t v;
    int op;

    for (op = 0; op < SCOMM_COLL_OP_COUNT; op++) {
        scomm_coll_env[op][0]     = '\0';
        scomm_coll_env_err[op][0] = '\0';
        if ((scomm_param_get(scomm_coll_op_env[op], NULL, &v,
                             scomm_coll_env_err[op],
                             sizeof(scomm_coll_env_err[op])) == SCOMM_OK) &&
            (v.src != SCOMM_PARAM_SRC_DEFAULT)) {
            name = scomm_coll_algo_name((scomm_coll_op_t)op, (int)v.i);
            snprintf(scomm_coll_env[op], sizeof(scomm_coll_env[op]), "%s",
                     (name != NULL) ? name : "?");
        }
    }
    scomm_coll_policy_env();
}

void scomm_coll_env_reload(void)
{
    pthread_once(&scomm_coll_env_once, scomm_coll_env_load);
    scomm_coll_env_load();
    atomic_fetch_add(&scomm_coll_sel_gen, 1);
}

void scomm_coll_select_invalidate(scomm_comm_t *comm)
{
    if (comm->sel_cache != NULL) {
        memset(comm->sel_cache, 0,
               SCOMM_COLL_OP_COUNT * sizeof(*comm->sel_cache));
    }
}

int scomm_coll_algo_count(scomm_coll_op_t op)
{
    size_t i;
    int n = 0;

    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_coll_algos); i++) {
        n += (scomm_coll_algos[i].op == op);
    }
    return n;
}

const char *scomm_coll_algo_name(scomm_coll_op_t op, int idx)
{
    size_t i;
    int n = 0;

    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_coll_algos); i++) {
        if ((scomm_coll_algos[i].op == op) && (n++ == idx)) {
            return scomm_coll_algos[i].name;
        }
    }
    return NULL;
}

static int scomm_coll_find(scomm_coll_op_t op, const char *name);

int scomm_coll_algo_index(scomm_coll_op_t op, const char *name)
{
    return scomm_coll_find(op, name);
}

/* Index of op's algorithm called name, or -1. */
static int scomm_coll_find(scomm_coll_op_t op, const char *name)
{
    size_t i;

    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_coll_algos); i++) {
        if ((scomm_coll_algos[i].op == op) &&
            (strcmp(scomm_coll_algos[i].name, name) == 0)) {
            return (int)i;
        }
    }
    return -1;
}

/* "ring, recursive_doubling, ..." for op, or of all ops (op < 0). */
static void scomm_coll_list_names(int op, char *out, size_t len)
{
    size_t i, j, o = 0;
    int dup;

    out[0] = '\0';
    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_coll_algos); i++) {
        if ((op >= 0) && ((int)scomm_coll_algos[i].op != op)) {
            continue;
        }
        for (j = 0, dup = 0; (j < i) && !dup; j++) {
            dup = (((op < 0) || ((int)scomm_coll_algos[j].op == op)) &&
                   (strcmp(scomm_coll_algos[j].name,
                           scomm_coll_algos[i].name) == 0));
        }
        if (!dup && (o < len)) {
            o += (size_t)snprintf(out + o, len - o, "%s%s",
                                  (o == 0) ? "" : ", ",
                                  scomm_coll_algos[i].name);
        }
    }
}

scomm_status_t scomm_coll_force_algo(scomm_coll_op_t op, const char *name)
{
    char names[256];
    int idx;

    if (((int)op < 0) || (op >= SCOMM_COLL_OP_COUNT)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_coll_force_algo: op %d is not a "
                               "collective", (int)op);
    }
    atomic_fetch_add(&scomm_coll_sel_gen, 1);
    if (name == NULL) {
        scomm_coll_forced[op] = 0;
        return SCOMM_OK;
    }
    idx = scomm_coll_find(op, name);
    if (idx < 0) {
        scomm_coll_list_names((int)op, names, sizeof(names));
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_coll_force_algo: '%s' is not a %s "
                               "algorithm; valid: %s", name,
                               scomm_coll_op_name(op), names);
    }
    scomm_coll_forced[op] = idx + 1;
    atomic_fetch_add(&scomm_coll_sel_gen, 1);
    return SCOMM_OK;
}

static void scomm_coll_record(scomm_comm_t *comm, const char *algo,
                              const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void scomm_coll_record(scomm_comm_t *comm, const char *algo,
                              const char *rule, const char *fmt, ...)
{
    scomm_coll_record_t *rec = &comm->last_sel;
    va_list ap;

    snprintf(rec->algo, sizeof(rec->algo), "%s", algo);
    snprintf(rec->rule_id, sizeof(rec->rule_id), "%s", rule);
    va_start(ap, fmt);
    vsnprintf(rec->reason, sizeof(rec->reason), fmt, ap);
    va_end(ap);
}

/* Total bytes the op moves per rank's buffer, for the rules. */
static size_t scomm_coll_rule_bytes(const scomm_comm_t *comm,
                                    const scomm_coll_args_t *a)
{
    switch (a->op) {
    case SCOMM_COLL_ALLGATHER:
    case SCOMM_COLL_REDUCESCATTER:
        return a->bytes * (size_t)comm->size;
    default:
        return a->bytes;
    }
}

/* The default rules: an index into scomm_coll_algos, rule id, reason. */
static int scomm_coll_default(const scomm_comm_t *comm,
                              const scomm_coll_args_t *a, const char **rule,
                              char *reason, size_t rlen)
{
    int p = comm->size, pof2 = scomm_coll_pow2_floor(p);
    int pow2 = scomm_coll_is_pow2(p);
    size_t bytes = scomm_coll_rule_bytes(comm, a);
    size_t mid = pow2 ? SCOMM_COLL_MID_BYTES_POW2 : SCOMM_COLL_MID_BYTES;
    char layout[40];
    uint32_t near_ns = 0;

    switch (a->op) {
    case SCOMM_COLL_ALLREDUCE:
        if (scomm_coll_direct_default(comm, a)) {
            *rule = "allreduce.shm_direct";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B: direct shared-memory "
                     "reduce, no ring hops", p, comm->local_size, bytes);
            return scomm_coll_find(a->op, "direct");
        }
        if (scomm_coll_hier_default(comm, a, bytes, layout, sizeof(layout))) {
            *rule = "allreduce.hier";
            snprintf(reason, rlen, "%s, %zu B >= 64 KiB: reduce_scatter "
                     "in each host, all_reduce of slices across, "
                     "all_gather in each host", layout, bytes);
            return scomm_coll_find(a->op, "hierarchical");
        }
        if (bytes <= SCOMM_COLL_SMALL_BYTES) {
            *rule = "allreduce.small";
            snprintf(reason, rlen, "%zu B <= 64 KiB is latency-bound: "
                     "recursive doubling takes %d rounds on %d ranks",
                     bytes, scomm_coll_log2_ceil(p), p);
            return scomm_coll_find(a->op, "recursive_doubling");
        }
        if (bytes <= mid) {
            if (a->count < (size_t)pof2) {
                *rule = "allreduce.mid_few_elems";
                snprintf(reason, rlen, "%zu B, but count %zu < %d ranks to "
                         "halve over: recursive doubling", bytes, a->count,
                         pof2);
                return scomm_coll_find(a->op, "recursive_doubling");
            }
            *rule = "allreduce.mid";
            snprintf(reason, rlen, "64 KiB < %zu B <= %zu KiB on %d ranks "
                     "(%spower of two): Rabenseifner halving/doubling",
                     bytes, mid >> 10, p, pow2 ? "" : "not a ");
            return scomm_coll_find(a->op, "rabenseifner");
        }
        *rule = "allreduce.large";
        snprintf(reason, rlen, "%zu B > %zu KiB on %d ranks is "
                 "bandwidth-bound: pipelined ring", bytes, mid >> 10, p);
        return scomm_coll_find(a->op, "ring");
    case SCOMM_COLL_ALLGATHER:
        if ((bytes <= SCOMM_COLL_TINY_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "allgather.shm_tiny";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B total <= 48 B: one "
                     "cache line per rank", p, comm->local_size, bytes);
            return scomm_coll_find(a->op, "direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_STAGED_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "allgather.shm_staged";
            snprintf(reason, rlen, "all %d ranks on this host, every "
                     "peer over shm, %zu B total >= 8 MiB: blocks staged "
                     "by non-temporal stores", p, bytes);
            return scomm_coll_find(a->op, "direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_SINGLE_BYTES) &&
            scomm_coll_direct_default(comm, a) &&
            scomm_coll_shm_near(comm, &near_ns)) {
            *rule = "allgather.shm_near";
            snprintf(reason, rlen, "%d ranks on this host over shm, %zu B "
                     "total >= 256 KiB, cores near (%u ns one way): staged "
                     "through the cache", p, bytes, near_ns);
            return scomm_coll_find(a->op, "direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_SINGLE_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "allgather.single_copy";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B total >= 256 KiB: "
                     "each rank reads every block where it lies",
                     p, comm->local_size, bytes);
            return scomm_coll_find(a->op, "single_copy");
        }
        if (scomm_coll_hier_default(comm, a, bytes, layout, sizeof(layout))) {
            *rule = "allgather.hier";
            snprintf(reason, rlen, "%s, %zu B total >= 64 KiB: each block "
                     "crosses to one rank per host, which forwards it over "
                     "shm", layout, bytes);
            return scomm_coll_find(a->op, "hierarchical");
        }
        if ((bytes <= SCOMM_COLL_SMALL_BYTES) && pow2) {
            *rule = "allgather.small_pow2";
            snprintf(reason, rlen, "%zu B total <= 64 KiB and %d ranks is a "
                     "power of two: recursive doubling", bytes, p);
            return scomm_coll_find(a->op, "recursive_doubling");
        }
        *rule = "allgather.ring";
        snprintf(reason, rlen, "%zu B total on %d ranks (%s): ring", bytes,
                 p, pow2 ? "above 64 KiB" : "not a power of two");
        return scomm_coll_find(a->op, "ring");
    case SCOMM_COLL_REDUCESCATTER:
        if ((bytes <= SCOMM_COLL_TINY_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "reducescatter.shm_tiny";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B total <= 48 B: one "
                     "cache line per rank", p, comm->local_size, bytes);
            return scomm_coll_find(a->op, "shm_direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_MOVE_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "reducescatter.shm_direct";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B total >= 4 MiB: each "
                     "rank reduces its block in shared memory", p,
                     comm->local_size, bytes);
            return scomm_coll_find(a->op, "shm_direct");
        }
        if (scomm_coll_hier_default(comm, a, bytes, layout, sizeof(layout))) {
            *rule = "reducescatter.hier";
            snprintf(reason, rlen, "%s, %zu B total >= 64 KiB: each host "
                     "sums a block over shm, one rank sends that partial "
                     "across", layout, bytes);
            return scomm_coll_find(a->op, "hierarchical");
        }
        if (bytes <= SCOMM_COLL_SMALL_BYTES) {
            *rule = "reducescatter.small";
            snprintf(reason, rlen, "%zu B total <= 64 KiB: direct, one "
                     "round on %d ranks", bytes, p);
            return scomm_coll_find(a->op, "direct");
        }
        *rule = "reducescatter.ring";
        snprintf(reason, rlen, "%zu B total > 64 KiB on %d ranks: "
                 "pipelined ring", bytes, p);
        return scomm_coll_find(a->op, "ring");
    case SCOMM_COLL_BROADCAST:
        if ((bytes <= SCOMM_COLL_TINY_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "broadcast.shm_tiny";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B <= 48 B: one cache "
                     "line from the root", p, comm->local_size, bytes);
            return scomm_coll_find(a->op, "direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_STAGED_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "broadcast.shm_staged";
            snprintf(reason, rlen, "all %d ranks on this host, every "
                     "peer over shm, %zu B >= 8 MiB: the root stages by "
                     "non-temporal stores", p, bytes);
            return scomm_coll_find(a->op, "direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_SINGLE_BYTES) &&
            scomm_coll_direct_default(comm, a) &&
            scomm_coll_shm_near(comm, &near_ns)) {
            *rule = "broadcast.shm_near";
            snprintf(reason, rlen, "%d ranks on this host over shm, %zu B "
                     ">= 256 KiB, cores near (%u ns one way): staged through "
                     "the cache", p, bytes, near_ns);
            return scomm_coll_find(a->op, "direct");
        }
        if ((bytes >= SCOMM_COLL_SHM_SINGLE_BYTES) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "broadcast.single_copy";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B >= 256 KiB: every "
                     "rank reads the root's buffer where it lies", p,
                     comm->local_size, bytes);
            return scomm_coll_find(a->op, "single_copy");
        }
        if (scomm_coll_hier_default(comm, a, bytes, layout, sizeof(layout))) {
            *rule = "broadcast.hier";
            snprintf(reason, rlen, "%s, %zu B >= 64 KiB: root to one rank "
                     "per host, then inside each host", layout, bytes);
            return scomm_coll_find(a->op, "hierarchical");
        }
        if ((bytes <= SCOMM_COLL_BCAST_TREE_BYTES) || (p <= 2)) {
            *rule = "broadcast.tree";
            snprintf(reason, rlen, "%zu B on %d ranks (%s): binomial tree, "
                     "%d rounds", bytes, p,
                     (p <= 2) ? "two ranks" : "<= 256 KiB",
                     scomm_coll_log2_ceil(p));
            return scomm_coll_find(a->op, "binomial");
        }
        *rule = "broadcast.chain";
        snprintf(reason, rlen, "%zu B > 256 KiB on %d ranks: pipelined "
                 "chain", bytes, p);
        return scomm_coll_find(a->op, "chain");
    case SCOMM_COLL_REDUCE:
        *rule = "reduce.tree";
        snprintf(reason, rlen, "%zu B on %d ranks: binomial tree (the only "
                 "reduce algorithm)", bytes, p);
        return scomm_coll_find(a->op, "binomial");
    case SCOMM_COLL_ALLTOALL:
        if (((bytes * (size_t)p <= SCOMM_COLL_TINY_BYTES) ||
             (bytes * (size_t)p >= SCOMM_COLL_SHM_SINGLE_BYTES)) &&
            scomm_coll_direct_default(comm, a)) {
            *rule = "alltoall.single_copy";
            snprintf(reason, rlen, "all %d ranks on this host (local_size "
                     "%d), every peer over shm, %zu B per rank %s: %s", p,
                     comm->local_size, bytes * (size_t)p,
                     (bytes * (size_t)p <= SCOMM_COLL_TINY_BYTES) ?
                     "<= 48 B" : ">= 256 KiB",
                     (bytes * (size_t)p <= SCOMM_COLL_TINY_BYTES) ?
                     "one cache line per rank" :
                     "each rank reads its blocks where they lie");
            return scomm_coll_find(a->op, "single_copy");
        }
        /* fall through */
    case SCOMM_COLL_ALLTOALLV:
        *rule = "alltoall.pairwise";
        snprintf(reason, rlen, "%d ranks: pairwise exchange, %d steps%s", p,
                 p - 1, a->inplace ? " (in place: round-robin pairs)" : "");
        return scomm_coll_find(a->op, "pairwise");
    case SCOMM_COLL_GATHER:
    case SCOMM_COLL_SCATTER:
        *rule = (a->op == SCOMM_COLL_GATHER) ? "gather.linear" :
                                               "scatter.linear";
        snprintf(reason, rlen, "%zu B per rank on %d ranks: linear, root "
                 "talks to every rank at once", bytes, p);
        return scomm_coll_find(a->op, "linear");
    default:
        break;
    }
    *rule = "none";
    snprintf(reason, rlen, "no rule");
    return -1;
}

/* Which transport class reaches comm's peers, for policy rules. */
static int scomm_coll_comm_tl(const scomm_comm_t *comm)
{
    int q, tl = SCOMM_COLL_POLICY_TL_SHM;

    for (q = 0; q < comm->size; q++) {
        const scomm_peer_t *pr = &comm->world->peers[comm->ranks[q]];

        if ((q == comm->rank) || (pr->tl == NULL)) {
            continue;
        }
        if (strcmp(pr->tl->name, "mock") == 0) {
            return SCOMM_COLL_POLICY_TL_MOCK;
        }
        if (strcmp(pr->tl->name, "shm") != 0) {
            tl = SCOMM_COLL_POLICY_TL_TCP;
        }
    }
    return tl;
}

static const char *const scomm_coll_tl_names[] = {"any", "shm", "tcp",
                                                  "mock"};

/* The first rule of pol matching the call: op's algorithm index, the
 * record's rule "policy:<id>" and the words for its reason (label: which
 * policy, "SCOMM_SELECTOR_CONFIG" or "tuned <file>"); -1 if none. */
static int scomm_coll_policy_pick(const scomm_comm_t *comm,
                                  const scomm_coll_args_t *a,
                                  const scomm_coll_policy_t *pol,
                                  const char *label, char *rule,
                                  size_t rlen, char *how, size_t hlen)
{
    const scomm_coll_policy_rule_t *r;
    uint64_t bytes = scomm_coll_rule_bytes(comm, a);
    int local = (comm->local_size == comm->size);
    int tl;

    if (pol->n == 0) {
        return -1;
    }
    tl = scomm_coll_comm_tl(comm);
    r  = scomm_coll_policy_match(pol, a->op, bytes, comm->size, local, tl);
    if (r == NULL) {
        return -1;
    }
    snprintf(rule, rlen, "policy:%s", r->id);
    snprintf(how, hlen, "%s rule '%s' (%llu B in [%llu, %llu], %d ranks, "
             "%s%s)", label, r->id, (unsigned long long)bytes,
             (unsigned long long)r->min_bytes,
             (unsigned long long)r->max_bytes, comm->size,
             scomm_coll_tl_names[tl], local ? ", all local" : "");
    return scomm_coll_find(a->op, r->algo);
}

/* The rules, uncached. */
static scomm_status_t scomm_coll_select_slow(scomm_comm_t *comm,
                                             const scomm_coll_args_t *a,
                                             const scomm_coll_algo_t **algo_p)
{
    const char *opname = scomm_coll_op_name(a->op);
    const char *cfg    = comm->world->cfg.algo;
    const char *rule   = NULL, *how = NULL, *src_rule = NULL;
    char reason[160], why[96], names[256], how_buf[160], pol_rule[48];
    int want = -1, def;

    if (scomm_coll_pol_err[0] != '\0') {
        return scomm_set_error(comm, scomm_coll_pol_status,
                               "%s: SCOMM_SELECTOR_CONFIG: %s", comm->cur_op,
                               scomm_coll_pol_err);
    }
    if (scomm_coll_forced[a->op] > 0) {
        want     = scomm_coll_forced[a->op] - 1;
        src_rule = "forced.hook";
        how      = "forced by test hook";
    } else if (scomm_coll_env_err[a->op][0] != '\0') {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG, "%s: %s",
                               comm->cur_op, scomm_coll_env_err[a->op]);
    } else if (scomm_coll_env[a->op][0] != '\0') {
        want     = scomm_coll_find(a->op, scomm_coll_env[a->op]);
        src_rule = "env.op";
        snprintf(how_buf, sizeof(how_buf), "%s",
                 scomm_coll_op_env[a->op]);
        how = how_buf;
    } else if (cfg[0] != '\0') {
        want = scomm_coll_find(a->op, cfg);
        if (want < 0) {
            int op, known = 0;

            for (op = 0; (op < SCOMM_COLL_OP_COUNT) && !known; op++) {
                known = (scomm_coll_find((scomm_coll_op_t)op, cfg) >= 0);
            }
            if (!known) {
                scomm_coll_list_names(-1, names, sizeof(names));
                return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                                       "%s: SCOMM_ALGO=%s names no "
                                       "collective algorithm; valid: %s",
                                       comm->cur_op, cfg, names);
            }
        } else {
            src_rule = "env.global";
            how      = "SCOMM_ALGO";
        }
    }
    if (want < 0) {
        want = scomm_coll_policy_pick(comm, a, &scomm_coll_pol,
                                      "SCOMM_SELECTOR_CONFIG", pol_rule,
                                      sizeof(pol_rule), how_buf,
                                      sizeof(how_buf));
    }
    if ((want < 0) && (comm->world->coll_tuned != NULL)) {
        const char *base = strrchr(comm->world->coll_tuned->path, '/');
        char label[96];

        snprintf(label, sizeof(label), "tuned %.88s",
                 (base != NULL) ? base + 1 : comm->world->coll_tuned->path);
        want = scomm_coll_policy_pick(comm, a, comm->world->coll_tuned,
                                      label, pol_rule, sizeof(pol_rule),
                                      how_buf, sizeof(how_buf));
    }
    if ((want >= 0) && (src_rule == NULL)) {
        src_rule = pol_rule;
        how      = how_buf;
    }
    def = scomm_coll_default(comm, a, &rule, reason, sizeof(reason));
    if (def < 0) {
        return scomm_set_error(comm, SCOMM_ERR_INTERNAL,
                               "%s: no algorithm for %s", comm->cur_op,
                               opname);
    }
    if (want >= 0) {
        const scomm_coll_algo_t *w = &scomm_coll_algos[want];

        if ((w->supports != NULL) && !w->supports(comm, a, why, sizeof(why))) {
            char fb[512], fb_rule[64];

            snprintf(fb, sizeof(fb), "%s (%s) falls back: %s; %s", w->name,
                     how, why, reason);
            snprintf(fb_rule, sizeof(fb_rule), "fallback:%s", rule);
            scomm_coll_record(comm, scomm_coll_algos[def].name, fb_rule, "%s",
                              fb);
            *algo_p = &scomm_coll_algos[def];
            return SCOMM_OK;
        }
        scomm_coll_record(comm, w->name, src_rule,
                          "%s chose %s for %zu B on %d ranks", how, w->name,
                          scomm_coll_rule_bytes(comm, a), comm->size);
        *algo_p = w;
        return SCOMM_OK;
    }
    if ((cfg[0] != '\0') && (scomm_coll_env[a->op][0] == '\0')) {
        /* SCOMM_ALGO names an algorithm of another op only. */
        char r2[512];

        snprintf(r2, sizeof(r2), "SCOMM_ALGO=%s is not a %s algorithm, "
                 "ignored; %s", cfg, opname, reason);
        scomm_coll_record(comm, scomm_coll_algos[def].name, rule, "%s", r2);
        *algo_p = &scomm_coll_algos[def];
        return SCOMM_OK;
    }
    scomm_coll_record(comm, scomm_coll_algos[def].name, rule, "%s", reason);
    *algo_p = &scomm_coll_algos[def];
    return SCOMM_OK;
}

scomm_status_t scomm_coll_select(scomm_comm_t *comm,
                                 const scomm_coll_args_t *a,
                                 const scomm_coll_algo_t **algo_p)
{
    struct scomm_coll_sel_cache *e;
    uint64_t gen = atomic_load_explicit(&scomm_coll_sel_gen,
                                        memory_order_acquire);
    scomm_status_t status;

    pthread_once(&scomm_coll_env_once, scomm_coll_env_load);
    if (comm->sel_cache == NULL) {
        comm->sel_cache = calloc(SCOMM_COLL_OP_COUNT,
                                 sizeof(*comm->sel_cache));
    }
    e = (comm->sel_cache != NULL) ? &comm->sel_cache[a->op] : NULL;
    if ((e != NULL) && (e->gen == gen) && (e->count == a->count) &&
        (e->bytes == a->bytes) && (e->inplace == a->inplace) &&
        (((e->cfg_algo[0] == '\0') && (comm->world->cfg.algo[0] == '\0')) ||
         (strcmp(e->cfg_algo, comm->world->cfg.algo) == 0))) {
        comm->last_sel = e->rec;
        *algo_p        = &scomm_coll_algos[e->algo];
        return SCOMM_OK;
    }
    status = scomm_coll_select_slow(comm, a, algo_p);
    if ((status == SCOMM_OK) && (e != NULL)) {
        e->gen     = gen;
        e->count   = a->count;
        e->bytes   = a->bytes;
        e->inplace = a->inplace;
        e->algo    = (int)(*algo_p - scomm_coll_algos);
        snprintf(e->cfg_algo, sizeof(e->cfg_algo), "%s",
                 comm->world->cfg.algo);
        e->rec     = comm->last_sel;
    }
    return status;
}

void scomm_coll_record_special(scomm_comm_t *comm, const char *algo,
                               const char *rule, const char *reason)
{
    scomm_coll_record(comm, algo, rule, "%s", reason);
}

/* ---- the coll module (core/module.h) ------------------------------------- */

const scomm_module_t scomm_module_coll = {
    .name         = "coll",
    .params       = scomm_coll_params,
    .nparams      = SCOMM_ARRAY_SIZE(scomm_coll_params),
    .world_up     = scomm_coll_tune_world_up,
    .comm_release = scomm_coll_comm_release,
    .comm_gone    = scomm_coll_tune_comm_gone,
};
