/*
 * tune.c - `scomm tune`: measure every applicable algorithm of all_reduce,
 * all_gather, reduce_scatter, broadcast and all_to_all at a few sizes on
 * this machine and rank layout, and write the selector policy that picks
 * the fastest of each size band into the per-machine cache that scomm_init
 * loads (src/coll/tuned.c: rank 0 reads it, every rank gets it).
 *
 *   scomm launch -n 2 -- scomm tune [--quick] [-e MAX] [--out PATH]
 *
 * Per operation and size S (8 B, 256 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB,
 * 256 MiB; up to -e), each algorithm of the table is forced in turn
 * (scomm_coll_force_algo, every rank alike). The first call is checked
 * against the known result (a wrong answer fails the run) and tells
 * whether the algorithm applies: one the selector replaced by a fallback
 * is left out. Then `trials` rounds of n calls between barriers; a rank's
 * time is its best round's mean, the algorithm's the slowest rank's
 * (all_reduce MAX), so every rank holds the same numbers and picks alike.
 *
 * Bands: in the bytes the selector's rules look at (the whole vector;
 * all_gather and reduce_scatter: the gathered total; all_to_all: one
 * peer's block), the boundary between two measured sizes is their
 * geometric mean; neighbouring bands with the same winner merge into one
 * rule "tune.<op>.<i>" limited to this rank count and locality.
 *
 * Invariants:
 *  1. Options go through opts.h: a bad value is one line, exit 2.
 *  2. Every rank runs the same calls in the same order (choices depend on
 *     shared numbers only); only rank 0 prints and writes.
 *  3. The file is written whole or not at all (a temporary file renamed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "coll/coll.h"
#include "core/config.h"
#include "opts.h"
#include "scomm.h"

#define TUNE_NSIZES 7
#define TUNE_MAX_ALGOS 8

static const size_t tune_sizes[TUNE_NSIZES] = {
    8, 256, 4u << 10, 64u << 10, 1u << 20, 16u << 20, 256u << 20
};

static const scomm_coll_op_t tune_ops[] = {
    SCOMM_COLL_ALLREDUCE, SCOMM_COLL_ALLGATHER, SCOMM_COLL_REDUCESCATTER,
    SCOMM_COLL_BROADCAST, SCOMM_COLL_ALLTOALL
};
#define TUNE_NOPS ((int)(sizeof(tune_ops) / sizeof(tune_ops[0])))

typedef struct tune_opts {
    int         quick;
    size_t      maxb;
    const char *out;
} tune_opts_t;

typedef struct tune_ctx {
    scomm_comm_t *comm;
    int           rank, p;
    char         *a, *b;    /* send, receive: maxb * 2 bytes each */
    size_t        cap;
    int           quick;
} tune_ctx_t;

/* One operation at one size: counts and buffers. */
typedef struct tune_call {
    scomm_coll_op_t op;
    size_t          count;  /* the call's count argument */
    size_t          rbytes; /* the bytes the selector's rules see */
} tune_call_t;

static void tune_usage(FILE *f)
{
    fprintf(f,
            "usage: scomm tune [--quick] [-e MAX] [--out PATH]   (under "
            "scomm launch -n N)\n"
            "  measure every algorithm of all_reduce, all_gather, "
            "reduce_scatter,\n"
            "  broadcast and all_to_all from 8 B to MAX and write the "
            "fastest per size\n"
            "  band as the selector policy scomm_init loads on this "
            "machine and layout\n"
            "  -e, --max-size SIZE  largest size measured (8..256m; "
            "default 256m)\n"
            "  --quick              sizes up to 64k, few calls "
            "(a smoke run: seconds)\n"
            "  --out PATH           write PATH instead of the cache file "
            "(- : stdout)\n");
}

static int tune_fail(const tune_ctx_t *c, scomm_status_t s, const char *what)
{
    fprintf(stderr, "scomm tune: rank %d: %s: %s: %s\n", c->rank, what,
            scomm_status_name(s), scomm_comm_last_error(c->comm));
    return 1;
}

static tune_call_t tune_call_of(const tune_ctx_t *c, scomm_coll_op_t op,
                                size_t S)
{
    tune_call_t t = {op, 0, 0};
    size_t per = SCOMM_MAX(S / (size_t)c->p, (size_t)1);

    switch (op) {
    case SCOMM_COLL_ALLREDUCE:
        t.count  = SCOMM_MAX(S / 4, (size_t)1);
        t.rbytes = t.count * 4;
        break;
    case SCOMM_COLL_REDUCESCATTER:
        t.count  = SCOMM_MAX(per / 4, (size_t)1);
        t.rbytes = t.count * 4 * (size_t)c->p;
        break;
    case SCOMM_COLL_ALLGATHER:
        t.count  = per;
        t.rbytes = per * (size_t)c->p;
        break;
    case SCOMM_COLL_ALLTOALL:
        t.count  = per;
        t.rbytes = per;
        break;
    default: /* broadcast */
        t.count  = S;
        t.rbytes = S;
        break;
    }
    return t;
}

static scomm_status_t tune_run(const tune_ctx_t *c, const tune_call_t *t)
{
    switch (t->op) {
    case SCOMM_COLL_ALLREDUCE:
        return scomm_all_reduce(c->a, c->b, t->count, SCOMM_FLOAT32,
                                SCOMM_SUM, c->comm);
    case SCOMM_COLL_REDUCESCATTER:
        return scomm_reduce_scatter(c->a, c->b, t->count, SCOMM_FLOAT32,
                                    SCOMM_SUM, c->comm);
    case SCOMM_COLL_ALLGATHER:
        return scomm_all_gather(c->a, c->b, t->count, SCOMM_UINT8, c->comm);
    case SCOMM_COLL_ALLTOALL:
        return scomm_all_to_all(c->a, c->b, t->count, SCOMM_UINT8, c->comm);
    default:
        return scomm_broadcast((c->rank == 0) ? c->a : c->b, t->count,
                               SCOMM_UINT8, 0, c->comm);
    }
}

/* Inputs of t: floats rank + 1; bytes by rank (and peer). */
static void tune_fill(const tune_ctx_t *c, const tune_call_t *t)
{
    float *f = (float *)(void *)c->a;
    size_t i, n, q;

    switch (t->op) {
    case SCOMM_COLL_ALLREDUCE:
    case SCOMM_COLL_REDUCESCATTER:
        n = t->count * ((t->op == SCOMM_COLL_REDUCESCATTER) ?
                        (size_t)c->p : 1);
        for (i = 0; i < n; i++) {
            f[i] = (float)(c->rank + 1);
        }
        break;
    case SCOMM_COLL_ALLTOALL:
        for (q = 0; q < (size_t)c->p; q++) {
            memset(c->a + q * t->count, (c->rank * 16 + (int)q + 1) & 0xff,
                   t->count);
        }
        break;
    default:
        memset(c->a, (c->rank + 1) & 0xff, t->count);
        break;
    }
    memset(c->b, 0xee, c->cap);
}

/* 1 if the result of t in c->b (rank 0's broadcast: c->a) is right at the
 * first, middle and last element of every block. */
static int tune_check(const tune_ctx_t *c, const tune_call_t *t)
{
    const float *f = (const float *)(const void *)c->b;
    const unsigned char *u = (const unsigned char *)c->b;
    size_t n = t->count, pos[3] = {0, n / 2, n - 1}, q, k;
    float sum = (float)c->p * (float)(c->p + 1) / 2;
    int ok = 1;

    for (k = 0; k < 3; k++) {
        switch (t->op) {
        case SCOMM_COLL_ALLREDUCE:
        case SCOMM_COLL_REDUCESCATTER:
            ok = ok && (f[pos[k]] == sum);
            break;
        case SCOMM_COLL_ALLGATHER:
            for (q = 0; q < (size_t)c->p; q++) {
                ok = ok && (u[q * n + pos[k]] == ((q + 1) & 0xff));
            }
            break;
        case SCOMM_COLL_ALLTOALL:
            for (q = 0; q < (size_t)c->p; q++) {
                ok = ok && (u[q * n + pos[k]] ==
                            ((q * 16 + (size_t)c->rank + 1) & 0xff));
            }
            break;
        default:
            ok = ok && ((c->rank == 0) || (u[pos[k]] == 1));
            break;
        }
    }
    return ok;
}

/* Calls per round and rounds, by size. */
static void tune_reps(const tune_ctx_t *c, size_t S, int *n, int *trials)
{
    *n      = (S <= (4u << 10)) ? 200 : (S <= (64u << 10)) ? 100 :
              (S <= (1u << 20)) ? 20 : (S <= (16u << 20)) ? 5 : 2;
    *trials = (S >= (256u << 20)) ? 2 : 3;
    if (c->quick) {
        *n      = 5;
        *trials = 1;
    }
}

/*
 * Time algorithm name of t->op at size S into *sec (the slowest rank's
 * best round mean, before the MAX: this rank's), or *sec = -1 when the
 * selector ran another algorithm (not applicable). Returns 0, or 1 after
 * printing an error.
 */
static int tune_measure(const tune_ctx_t *c, const tune_call_t *t,
                        const char *name, size_t S, double *sec)
{
    scomm_coll_record_t rec;
    scomm_status_t s;
    double t0, best = -1;
    int i, r, n, trials;

    tune_fill(c, t);
    s = scomm_coll_force_algo(t->op, name);
    if (s == SCOMM_OK) {
        s = tune_run(c, t);
    }
    if (s != SCOMM_OK) {
        return tune_fail(c, s, name);
    }
    if ((scomm_last_selection(c->comm, &rec) != SCOMM_OK) ||
        (strcmp(rec.algo, name) != 0)) {
        *sec = -1;
        return 0;
    }
    if (!tune_check(c, t)) {
        fprintf(stderr, "scomm tune: rank %d: %s %s of %zu B gave a wrong "
                "result\n", c->rank, scomm_coll_op_name(t->op), name, S);
        scomm_comm_abort(c->comm);
        return 1;
    }
    tune_reps(c, S, &n, &trials);
    for (r = 0; r < trials; r++) {
        s = scomm_barrier(c->comm);
        t0 = scomm_cli_now();
        for (i = 0; (i < n) && (s == SCOMM_OK); i++) {
            s = tune_run(c, t);
        }
        if (s != SCOMM_OK) {
            return tune_fail(c, s, name);
        }
        t0 = (scomm_cli_now() - t0) / n;
        best = ((best < 0) || (t0 < best)) ? t0 : best;
    }
    *sec = best;
    return 0;
}

/* ---- the policy ---------------------------------------------------------- */

typedef struct tune_result {
    int    nalgo;
    double sec[TUNE_NSIZES][TUNE_MAX_ALGOS]; /* < 0: not applicable */
    size_t rbytes[TUNE_NSIZES];
    int    best[TUNE_NSIZES];                /* -1: none */
} tune_result_t;

/* floor(sqrt(x * y)) for x <= y, at least x: a band's upper bound. */
static uint64_t tune_geomean(uint64_t x, uint64_t y)
{
    uint64_t lo = x, hi = y, mid;

    while (lo < hi) {
        mid = lo + (hi - lo + 1) / 2;
        if (mid <= (x * y) / mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

/* The rules for one operation into f (first: no rule written yet). */
static void tune_rules(FILE *f, scomm_coll_op_t op, const tune_result_t *r,
                       int nsizes, int p, int local, int *first)
{
    uint64_t lo = 0, hi;
    int i, j = 0, k;

    for (i = 0; i < nsizes; i = k) {
        if (r->best[i] < 0) {
            k = i + 1;
            continue;
        }
        for (k = i + 1; (k < nsizes) && (r->best[k] == r->best[i]); k++) {
        }
        fprintf(f, "%s    {\"id\": \"tune.%s.%d\", \"op\": \"%s\", "
                "\"algo\": \"%s\", \"min_bytes\": %llu", *first ? "" : ",\n",
                scomm_coll_op_name(op), j++, scomm_coll_op_name(op),
                scomm_coll_algo_name(op, r->best[i]),
                (unsigned long long)lo);
        if (k < nsizes) {
            hi = tune_geomean(r->rbytes[k - 1], r->rbytes[k]);
            fprintf(f, ", \"max_bytes\": %llu", (unsigned long long)hi);
            lo = hi + 1;
        }
        fprintf(f, ", \"min_ranks\": %d, \"max_ranks\": %d, "
                "\"all_local\": %s}", p, p, local ? "true" : "false");
        *first = 0;
    }
}

static int tune_write(const char *path, const scomm_coll_tune_key_t *k,
                      const tune_result_t *res, int nsizes, int p, int local)
{
    char machine[512], tmp[600], dir[520], *slash;
    FILE *f;
    int i, first = 1;

    if (scomm_coll_tune_machine_json(k, machine, sizeof(machine)) != 0) {
        fprintf(stderr, "scomm tune: the machine description is too long\n");
        return 1;
    }
    if (strcmp(path, "-") == 0) {
        f = stdout;
    } else {
        /* mkdir -p of the directory (the cache's may not exist yet). */
        snprintf(dir, sizeof(dir), "%s", path);
        slash = strrchr(dir, '/');
        if (slash != NULL) {
            *slash = '\0';
            for (slash = dir + 1; *slash != '\0'; slash++) {
                if (*slash == '/') {
                    *slash = '\0';
                    (void)mkdir(dir, 0755);
                    *slash = '/';
                }
            }
            (void)mkdir(dir, 0755);
        }
        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
        f = fopen(tmp, "w");
        if (f == NULL) {
            fprintf(stderr, "scomm tune: cannot write %s: %s\n", tmp,
                    strerror(errno));
            return 1;
        }
    }
    fprintf(f, "{\n  \"version\": 1,\n  \"machine\": %s,\n  \"rules\": [\n",
            machine);
    for (i = 0; i < TUNE_NOPS; i++) {
        tune_rules(f, tune_ops[i], &res[i], nsizes, p, local, &first);
    }
    fprintf(f, "\n  ]\n}\n");
    if (f == stdout) {
        return (fflush(f) == 0) ? 0 : 1;
    }
    if ((fclose(f) != 0) || (rename(tmp, path) != 0)) {
        fprintf(stderr, "scomm tune: cannot write %s: %s\n", path,
                strerror(errno));
        unlink(tmp);
        return 1;
    }
    return 0;
}

/* ---- the command --------------------------------------------------------- */

static void tune_print(scomm_coll_op_t op, const tune_result_t *r,
                       int nsizes)
{
    char sz[32];
    int i, j;

    printf("\n%s (bytes as the rules count them)\n%10s",
           scomm_coll_op_name(op), "bytes");
    for (j = 0; j < r->nalgo; j++) {
        printf(" %18s", scomm_coll_algo_name(op, j));
    }
    printf("  best\n");
    for (i = 0; i < nsizes; i++) {
        scomm_cli_fmt_size(sz, sizeof(sz), r->rbytes[i]);
        printf("%10s", sz);
        for (j = 0; j < r->nalgo; j++) {
            if (r->sec[i][j] < 0) {
                printf(" %18s", "-");
            } else {
                printf(" %15.2f us", r->sec[i][j] * 1e6);
            }
        }
        printf("  %s\n", (r->best[i] >= 0) ?
                         scomm_coll_algo_name(op, r->best[i]) : "-");
    }
}

/* Measure op at every size into r (every rank gets the same numbers). */
static int tune_op(tune_ctx_t *c, scomm_coll_op_t op, int nsizes,
                   tune_result_t *r)
{
    double mine[TUNE_NSIZES * TUNE_MAX_ALGOS];
    scomm_status_t s;
    tune_call_t t;
    int i, j, n = 0;

    r->nalgo = SCOMM_MIN(scomm_coll_algo_count(op), TUNE_MAX_ALGOS);
    for (i = 0; i < nsizes; i++) {
        t            = tune_call_of(c, op, tune_sizes[i]);
        r->rbytes[i] = t.rbytes;
        for (j = 0; j < r->nalgo; j++) {
            if (tune_measure(c, &t, scomm_coll_algo_name(op, j),
                             tune_sizes[i], &mine[n++]) != 0) {
                return 1;
            }
        }
    }
    s = scomm_coll_force_algo(op, NULL);
    if (s == SCOMM_OK) {
        s = scomm_all_reduce(mine, mine, (size_t)n, SCOMM_FLOAT64, SCOMM_MAX,
                             c->comm);
    }
    if (s != SCOMM_OK) {
        return tune_fail(c, s, "collecting the times");
    }
    for (i = 0, n = 0; i < nsizes; i++) {
        r->best[i] = -1;
        for (j = 0; j < r->nalgo; j++, n++) {
            r->sec[i][j] = mine[n];
            if ((mine[n] >= 0) &&
                ((r->best[i] < 0) || (mine[n] < r->sec[i][r->best[i]]))) {
                r->best[i] = j;
            }
        }
    }
    return 0;
}

int scomm_cli_tune(int argc, char **argv)
{
    tune_opts_t o = {0, 256u << 20, NULL};
    const scomm_cli_opt_t opts[] = {
        CLI_FLAG("quick", 0, &o.quick),
        CLI_SIZE("max-size", 'e', &o.maxb, 8, 256u << 20),
        CLI_STR("out", 0, &o.out),
    };
    const scomm_cli_cmd_t cmd = {"tune", tune_usage, opts, CLI_NOPTS(opts),
                                 0, 0};
    tune_result_t res[TUNE_NOPS];
    scomm_coll_tune_key_t key;
    scomm_pval_t sel;
    char path[512], why[320];
    tune_ctx_t c;
    scomm_status_t s;
    int rc, first, i, nsizes, local;
    double t0;

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    if ((o.out != NULL) && (o.out[0] == '\0')) {
        return scomm_cli_bad_value("tune", "--out", o.out, "expected a path "
                                   "or -");
    }
    if (o.quick) {
        o.maxb = SCOMM_MIN(o.maxb, (size_t)(64u << 10));
    }
    for (nsizes = 0; (nsizes < TUNE_NSIZES) && (tune_sizes[nsizes] <= o.maxb);
         nsizes++) {
    }
    memset(&c, 0, sizeof(c));
    s = scomm_init_from_env(&c.comm);
    if (s != SCOMM_OK) {
        fprintf(stderr, "scomm tune: scomm_init: %s: %s\n",
                scomm_status_name(s), scomm_last_error());
        return 1;
    }
    c.rank  = scomm_rank(c.comm);
    c.p     = scomm_size(c.comm);
    c.quick = o.quick;
    local   = (scomm_local_size(c.comm) == c.p);
    if (c.p < 2) {
        fprintf(stderr, "scomm tune: needs 2 or more ranks: scomm launch "
                "-n 2 -- scomm tune\n");
        scomm_comm_destroy(c.comm);
        return 1;
    }
    scomm_coll_tune_key_of(c.comm, &key);
    rc = 0;
    if (o.out != NULL) {
        snprintf(path, sizeof(path), "%s", o.out);
    } else if ((rc = scomm_coll_tune_path(&key, path, sizeof(path), why,
                                          sizeof(why))) != 0) {
        if (c.rank == 0) {
            fprintf(stderr, "scomm tune: nowhere to write the policy: %s; "
                    "use --out PATH\n", why);
        }
        scomm_comm_destroy(c.comm);
        return 1;
    }
    /* Room for every op: all_to_all and all_gather move S bytes per rank
     * (per-peer blocks of S / p, at least 1 byte each). */
    c.cap = tune_sizes[nsizes - 1] + 64 * (size_t)c.p;
    c.a   = malloc(c.cap);
    c.b   = malloc(c.cap);
    if ((c.a == NULL) || (c.b == NULL)) {
        fprintf(stderr, "scomm tune: rank %d: cannot allocate 2 x %zu "
                "bytes\n", c.rank, c.cap);
        scomm_comm_abort(c.comm);
        free(c.a);
        free(c.b);
        return 1;
    }
    if (c.rank == 0) {
        printf("# scomm tune: %d ranks (%d on this host), %s, cpu '%s', "
               "scomm %s, 8 B .. %zu B%s\n", c.p, scomm_local_size(c.comm),
               key.transports, key.cpu, key.version, tune_sizes[nsizes - 1],
               o.quick ? " (quick)" : "");
        fflush(stdout);
    }
    t0 = scomm_cli_now();
    for (i = 0; (i < TUNE_NOPS) && (rc == 0); i++) {
        rc = tune_op(&c, tune_ops[i], nsizes, &res[i]);
        if ((rc == 0) && (c.rank == 0)) {
            tune_print(tune_ops[i], &res[i], nsizes);
            fflush(stdout);
        }
    }
    if ((rc == 0) && (c.rank == 0)) {
        rc = tune_write(path, &key, res, nsizes, c.p, local);
        if ((rc == 0) && (strcmp(path, "-") != 0)) {
            printf("\nwrote %s in %.1f s\n", path, scomm_cli_now() - t0);
            if ((scomm_param_get("SCOMM_SELECTOR_CONFIG", NULL, &sel, why,
                                 sizeof(why)) == SCOMM_OK) &&
                (sel.text[0] != '\0')) {
                printf("note: SCOMM_SELECTOR_CONFIG is set; runs use that "
                       "policy, not this one, until it is unset\n");
            }
        }
    }
    free(c.a);
    free(c.b);
    if (rc != 0) {
        scomm_comm_abort(c.comm);
        return rc;
    }
    s = scomm_comm_destroy(c.comm);
    return (s == SCOMM_OK) ? 0 : 1;
}
