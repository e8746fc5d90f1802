/*
 * bench_coll.c - `scomm bench <op|all>`: the options, the run over the ops
 * and sizes, and the entry point (bench_coll.h says which file does what).
 *
 * Output (rank 0): a table on stdout, a progress line on stderr when it is
 * a terminal, and per operation <op>_ws<N>_<YYYYmmdd_HHMMSS>.{json,csv,md}
 * in --out; --csv/--json/--md FILE also write every record of the run to
 * one file; --plot renders busbw and latency curves with gnuplot, with the
 * peers of --peer-csv files (the anchors' CSV format) overlaid.
 *
 * Invariants:
 *  1. The options are checked before scomm_init: a usage error is one line
 *     and exit 2 on every rank, with no communicator made.
 *  2. The buffers of an op are sized for its largest size once, before its
 *     first size; a failed allocation aborts the communicator so the peers
 *     stop at once instead of at their timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_coll.h"
#include "cli.h"
#include "coll/coll.h"
#include "opts.h"
#include "scomm.h"

/* ---- operations ---------------------------------------------------------- */

const bc_opinfo_t bc_ops[BC_NOPS] = {
    [BC_ALLREDUCE]     = {"all_reduce", "allreduce", SCOMM_COLL_ALLREDUCE,
                          1, 0, BC_GEO_VECTOR},
    [BC_ALLGATHER]     = {"all_gather", "allgather", SCOMM_COLL_ALLGATHER,
                          0, 0, BC_GEO_OUT_TOTAL},
    [BC_REDUCESCATTER] = {"reduce_scatter", "reducescatter",
                          SCOMM_COLL_REDUCESCATTER, 1, 0, BC_GEO_IN_TOTAL},
    [BC_BROADCAST]     = {"broadcast", "bcast", SCOMM_COLL_BROADCAST,
                          0, 1, BC_GEO_VECTOR},
    [BC_REDUCE]        = {"reduce", NULL, SCOMM_COLL_REDUCE, 1, 1,
                          BC_GEO_VECTOR},
    [BC_ALLTOALL]      = {"all_to_all", "alltoall", SCOMM_COLL_ALLTOALL,
                          0, 0, BC_GEO_IN_TOTAL},
    [BC_GATHER]        = {"gather", NULL, SCOMM_COLL_GATHER, 0, 1,
                          BC_GEO_OUT_TOTAL},
    [BC_SCATTER]       = {"scatter", NULL, SCOMM_COLL_SCATTER, 0, 1,
                          BC_GEO_IN_TOTAL},
    [BC_BARRIER]       = {"barrier", NULL, -1, 0, 0, BC_GEO_NONE},
};

/* SCOMM_COLL_<OP>_ALGO of an op, or NULL. */
static const char *bc_algo_env(int op)
{
    static const char *const env[BC_NOPS] = {
        [BC_ALLREDUCE]     = "SCOMM_COLL_ALLREDUCE_ALGO",
        [BC_ALLGATHER]     = "SCOMM_COLL_ALLGATHER_ALGO",
        [BC_REDUCESCATTER] = "SCOMM_COLL_REDUCESCATTER_ALGO",
        [BC_BROADCAST]     = "SCOMM_COLL_BROADCAST_ALGO",
        [BC_REDUCE]        = "SCOMM_COLL_REDUCE_ALGO",
        [BC_ALLTOALL]      = "SCOMM_COLL_ALLTOALL_ALGO",
        [BC_GATHER]        = "SCOMM_COLL_GATHER_ALGO",
        [BC_SCATTER]       = "SCOMM_COLL_SCATTER_ALGO",
        [BC_BARRIER]       = NULL,
    };

    return env[op];
}

/* Our op index for a name or an anchors' alias ("allreduce"), or -1. */
int bc_op_find(const char *name, size_t len)
{
    int i;

    for (i = 0; i < BC_NOPS; i++) {
        if (((strlen(bc_ops[i].name) == len) &&
             (strncmp(bc_ops[i].name, name, len) == 0)) ||
            ((bc_ops[i].alias != NULL) && (strlen(bc_ops[i].alias) == len) &&
             (strncmp(bc_ops[i].alias, name, len) == 0))) {
            return i;
        }
    }
    return -1;
}

/* ---- small helpers ------------------------------------------------------- */

int bc_fail(scomm_comm_t *comm, scomm_status_t s, const char *what)
{
    fprintf(stderr, "scomm bench: %s: %s: %s\n", what, scomm_status_name(s),
            (comm != NULL) ? scomm_comm_last_error(comm)
                           : scomm_last_error());
    return 1;
}

static void *bc_alloc(size_t bytes)
{
    void *p = NULL;

    if (posix_memalign(&p, 4096, bytes > 0 ? bytes : 1) != 0) {
        return NULL;
    }
    memset(p, 0, bytes > 0 ? bytes : 1);
    return p;
}

/* ---- the run ------------------------------------------------------------- */

static int bc_keep(bc_ctx_t *c, const bc_result_t *r)
{
    bc_result_t *nr;

    if (c->nres == c->capres) {
        c->capres = (c->capres == 0) ? 64 : 2 * c->capres;
        nr        = realloc(c->res, sizeof(*nr) * (size_t)c->capres);
        if (nr == NULL) {
            return -1;
        }
        c->res = nr;
    }
    c->res[c->nres++] = *r;
    return 0;
}

static void bc_progress(const bc_ctx_t *c, int op, size_t bytes, int k,
                        int n)
{
    char sz[32];

    if (c->tty) {
        scomm_cli_fmt_size(sz, sizeof(sz), bytes);
        fprintf(stderr, "\r\033[K[%s] size %s (%d/%d)", bc_ops[op].name, sz,
                k, n);
        fflush(stderr);
    }
}

static void bc_progress_clear(const bc_ctx_t *c)
{
    if (c->tty) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* Allocate the buffers for the largest size of op. */
static int bc_buffers(bc_ctx_t *c, int op)
{
    size_t smax = 0, rmax = 0;
    bc_geo_t g;
    int i;

    for (i = 0; i < c->o->nsizes; i++) {
        bc_geometry(c, op, c->o->sizes[i], &g);
        smax = (g.sbytes > smax) ? g.sbytes : smax;
        rmax = (g.rbytes > rmax) ? g.rbytes : rmax;
    }
    free(c->sbuf);
    free(c->rbuf);
    free(c->ref);
    bc_dev_free(c->dsbuf);
    bc_dev_free(c->drbuf);
    c->dsbuf = c->drbuf = NULL;
    c->sbuf = bc_alloc(smax);
    c->rbuf = bc_alloc(rmax);
    c->ref  = c->o->check ? bc_alloc(rmax) : NULL;
    if (c->o->device) {
        c->dsbuf = bc_dev_alloc(smax);
        c->drbuf = bc_dev_alloc(rmax);
    }
    if ((c->sbuf == NULL) || (c->rbuf == NULL) ||
        (c->o->device && ((c->dsbuf == NULL) || (c->drbuf == NULL))) ||
        (c->o->check && (c->ref == NULL))) {
        fprintf(stderr, "scomm bench: cannot allocate %zu + %zu bytes for "
                "%s\n", smax, rmax, bc_ops[op].name);
        scomm_comm_abort(c->comm); /* the peers stop now, not at timeout */
        return 1;
    }
    return 0;
}

static int bc_run_op(bc_ctx_t *c, int op, long long *wrong_total)
{
    const bc_opts_t *o = c->o;
    int nsz = (op == BC_BARRIER) ? 1 : o->nsizes, i, first = c->nres;
    double bus_sum = 0;
    long long wrong = 0;
    bc_result_t r;

    if (bc_buffers(c, op) != 0) {
        return 1;
    }
    if (c->rank == 0) {
        bc_print_header(c, op);
    }
    for (i = 0; i < nsz; i++) {
        size_t req = (op == BC_BARRIER) ? 0 : o->sizes[i];

        if (c->rank == 0) {
            bc_progress(c, op, req, i + 1, nsz);
        }
        memset(&r, 0, sizeof(r));
        if (bc_measure(c, op, req, &r) != 0) {
            if (c->rank == 0) {
                bc_progress_clear(c);
            }
            return 1;
        }
        if (c->rank == 0) {
            bc_progress_clear(c);
            bc_print_row(c, &r);
            if (bc_keep(c, &r) != 0) {
                fprintf(stderr, "scomm bench: out of memory for records\n");
                c->file_err = 1;
            }
            bus_sum += r.busbw;
            wrong += (r.wrong > 0) ? r.wrong : 0;
        }
    }
    if (c->rank != 0) {
        return 0;
    }
    if (op != BC_BARRIER) {
        printf("# %s: avg busbw %.3f GB/s over %d sizes\n", bc_ops[op].name,
               bus_sum / nsz, nsz);
    }
    if (o->check) {
        printf("# %s: %lld wrong elements%s\n", bc_ops[op].name, wrong,
               (wrong == 0) ? " (every timed call verified)" : "  <-- FAILED");
    }
    *wrong_total += wrong;
    c->file_err |= bc_write_op_files(c, c->res + first, c->nres - first);
    fflush(stdout);
    return 0;
}

/* ---- options ------------------------------------------------------------- */

void scomm_cli_bench_coll_usage(FILE *f)
{
    fprintf(f,
        "usage: scomm bench <op|op,op,...|all> [options]   (run under "
        "scomm launch -n N)\n"
        "\n"
        "ops: all_reduce all_gather reduce_scatter broadcast reduce "
        "all_to_all gather\n"
        "     scatter barrier (also the anchors' names allreduce, allgather, "
        "alltoall)\n"
        "\n"
        "  -b MIN, -e MAX    smallest and largest size, 0..64G (default 8 "
        "and 64M;\n"
        "                    k, m, g suffixes)\n"
        "  -f FACTOR         size multiplier, 2..1G (default 2; MAX is "
        "always included)\n"
        "  --sizes LIST      explicit sizes instead (at most 64), e.g. "
        "8,64,256,1K,4K,256M\n"
        "  -d DTYPE          float32 (default), float16, bfloat16, float64, "
        "int8, uint8,\n"
        "                    int32, uint32, int64, uint64, fp8_e4m3, "
        "fp8_e5m2\n"
        "  -o REDOP          sum (default), prod, max, min, avg\n"
        "  -r ROOT           root of broadcast, reduce, gather, scatter "
        "(default 0)\n"
        "  -w WARMUP         warmup calls per size, 0..1000000 (default 5; "
        "2 from 64 MiB)\n"
        "  -n ITERS          timed calls per size, 1..1000000 (default: "
        "calibrated to\n"
        "                    --target)\n"
        "  --target SEC      seconds of timed calls per size, > 0 and <= "
        "3600 (default 0.3)\n"
        "  --check           verify every element of every timed call; any "
        "wrong one\n"
        "                    makes the exit code 1 (each call is then timed "
        "alone)\n"
        "  --algo NAME       force an algorithm (sets SCOMM_COLL_<OP>_ALGO "
        "for the\n"
        "                    ops that have NAME)\n"
        "  --out DIR         per-op <op>_ws<N>_<YYYYmmdd_HHMMSS>.{json,csv,"
        "md}\n"
        "                    (default .benchmarks/collective; 'none': no "
        "files)\n"
        "  --csv FILE, --json FILE, --md FILE\n"
        "                    also every record of the run in one file\n"
        "  --plot            busbw and latency PNGs per op with gnuplot, "
        "into --out\n"
        "  --peer-csv FILE   overlay a peer's results (anchors' CSV); "
        "repeatable, 16 at most\n"
        "  --quiet           no progress line, no file notes\n"
        "  --device          buffers in CUDA device memory (the runtime of "
        "SCOMM_CUDART_LIBRARY,\n"
        "                    else libcudart.so); each call is timed with a "
        "stream sync\n"
        "\n"
        "size: all_reduce, broadcast, reduce: the buffer; all_gather, "
        "gather: total\n"
        "output; reduce_scatter, scatter: total input; all_to_all: total "
        "input per rank.\n"
        "time: per call, slowest rank; algbw = size/time; busbw = algbw * "
        "2(n-1)/n\n"
        "(all_reduce), (n-1)/n (all_gather, reduce_scatter, all_to_all, "
        "gather,\n"
        "scatter), 1 (broadcast, reduce). 1 GB = 1e9 B.\n");
}

/* Names the parse of -d accepts besides scomm_dtype_name's. */
static const struct {
    const char   *name;
    scomm_dtype_t dt;
} bc_dtype_alias[] = {
    {"float", SCOMM_FLOAT32}, {"f32", SCOMM_FLOAT32},
    {"half", SCOMM_FLOAT16},  {"f16", SCOMM_FLOAT16},
    {"bf16", SCOMM_BFLOAT16}, {"double", SCOMM_FLOAT64},
    {"f64", SCOMM_FLOAT64},   {"int", SCOMM_INT32},
    {"e4m3", SCOMM_FP8_E4M3}, {"e5m2", SCOMM_FP8_E5M2},
};

static const char *bc_dtype_name(const void *ctx, int i)
{
    (void)ctx;
    return scomm_dtype_name((scomm_dtype_t)i);
}

static const char *bc_redop_name(const void *ctx, int i)
{
    (void)ctx;
    return scomm_redop_name((scomm_redop_t)i);
}

static const char *bc_op_name(const void *ctx, int i)
{
    (void)ctx;
    return bc_ops[i].name;
}

/* -d: a dtype name or an alias. */
static int bc_opt_dtype(const char *s, void *dst, char *want, size_t len)
{
    size_t i;
    int d;

    for (d = 0; d < SCOMM_DTYPE_COUNT; d++) {
        if (strcmp(s, scomm_dtype_name((scomm_dtype_t)d)) == 0) {
            *(scomm_dtype_t *)dst = (scomm_dtype_t)d;
            return 0;
        }
    }
    for (i = 0; i < sizeof(bc_dtype_alias) / sizeof(bc_dtype_alias[0]);
         i++) {
        if (strcmp(s, bc_dtype_alias[i].name) == 0) {
            *(scomm_dtype_t *)dst = bc_dtype_alias[i].dt;
            return 0;
        }
    }
    scomm_cli_want_list(want, len, "expected one of", SCOMM_DTYPE_COUNT,
                        bc_dtype_name, NULL);
    return -1;
}

/* -o: a reduction. */
static int bc_opt_redop(const char *s, void *dst, char *want, size_t len)
{
    int i;

    for (i = 0; i < SCOMM_REDOP_COUNT; i++) {
        if (strcmp(s, scomm_redop_name((scomm_redop_t)i)) == 0) {
            *(scomm_redop_t *)dst = (scomm_redop_t)i;
            return 0;
        }
    }
    scomm_cli_want_list(want, len, "expected one of", SCOMM_REDOP_COUNT,
                        bc_redop_name, NULL);
    return -1;
}

/* --peer-csv: one more file. */
static int bc_opt_peer(const char *s, void *dst, char *want, size_t len)
{
    bc_opts_t *o = dst;

    if (o->npeer == BC_MAX_PEERS) {
        snprintf(want, len, "at most %d --peer-csv files", BC_MAX_PEERS);
        return -1;
    }
    o->peer_csv[o->npeer++] = s;
    return 0;
}

/* The operations of argv[0]: a name, a comma list, or "all". */
static int bc_parse_ops(const char *s, bc_opts_t *o)
{
    char want[512];
    const char *p = s, *e;
    int op, i, dup;

    if (strcmp(s, "all") == 0) {
        for (i = 0; i < BC_NOPS; i++) {
            o->ops[i] = i;
        }
        o->nops = BC_NOPS;
        return 0;
    }
    while (*p != '\0') {
        e  = strchr(p, ',');
        e  = (e != NULL) ? e : p + strlen(p);
        op = bc_op_find(p, (size_t)(e - p));
        if (op < 0) {
            o->nops = 0;
            break;
        }
        for (i = 0, dup = 0; i < o->nops; i++) {
            dup |= (o->ops[i] == op);
        }
        if (!dup) {
            o->ops[o->nops++] = op;
        }
        p = (*e == ',') ? e + 1 : e;
    }
    if (o->nops > 0) {
        return 0;
    }
    scomm_cli_want_list(want, sizeof(want), "expected p2p, --overlap, all "
                        "or a comma list of:", BC_NOPS, bc_op_name, NULL);
    return scomm_cli_bad_value("bench", "operation", s, "%s", want);
}

/* -b MIN, -b*f, ... and MAX itself (as `scomm bench p2p` does). */
static int bc_sweep(size_t minb, size_t maxb, long factor, bc_opts_t *o)
{
    char lo[32], hi[32];
    size_t b = (minb > 0) ? minb : 1;

    o->nsizes = 0;
    for (;;) {
        if (o->nsizes == BC_MAX_SIZES) {
            scomm_cli_fmt_size(lo, sizeof(lo), minb);
            scomm_cli_fmt_size(hi, sizeof(hi), maxb);
            return scomm_cli_usage_error("bench", "-b %s to -e %s by -f %ld "
                                         "is more than %d sizes", lo, hi,
                                         factor, BC_MAX_SIZES);
        }
        o->sizes[o->nsizes++] = b;
        if (b >= maxb) {
            break;
        }
        b = (b > maxb / (size_t)factor) ? maxb : b * (size_t)factor;
    }
    return -1;
}

/*
 * Set SCOMM_COLL_<OP>_ALGO=name for the ops of the run that have an
 * algorithm called name (before scomm_init: the library reads it once).
 */
static int bc_set_algo(const bc_opts_t *o)
{
    int i, k, n, op, hits = 0, coll;
    char names[256];
    size_t len;

    for (i = 0; i < o->nops; i++) {
        op   = o->ops[i];
        coll = bc_ops[op].coll;
        if (coll < 0) {
            continue;
        }
        n = scomm_coll_algo_count((scomm_coll_op_t)coll);
        for (k = 0; k < n; k++) {
            if (strcmp(scomm_coll_algo_name((scomm_coll_op_t)coll, k),
                       o->algo) == 0) {
                setenv(bc_algo_env(op), o->algo, 1);
                hits++;
                break;
            }
        }
        if ((k == n) && (o->nops == 1)) {
            names[0] = '\0';
            for (k = 0, len = 0; (k < n) && (len < sizeof(names)); k++) {
                len += (size_t)snprintf(names + len, sizeof(names) - len,
                                        "%s%s", (k > 0) ? ", " : "",
                                        scomm_coll_algo_name(
                                            (scomm_coll_op_t)coll, k));
            }
            return scomm_cli_bad_value("bench", "--algo", o->algo,
                                       "expected one of %s (the %s "
                                       "algorithms)", names,
                                       bc_ops[op].name);
        }
    }
    if (hits == 0) {
        return scomm_cli_bad_value("bench", "--algo", o->algo, "no "
                                   "operation of this run has an algorithm "
                                   "of that name");
    }
    return -1;
}

/* Returns -1 to run, or the exit code (0 after --help, 2 on an error). */
static int bc_parse(int argc, char **argv, bc_opts_t *o)
{
    size_t minb = 8, maxb = 64u << 20;
    long factor = 2;
    char lo[32], hi[32];
    const scomm_cli_opt_t opts[] = {
        CLI_SIZE(NULL, 'b', &minb, 0, BC_MAX_BYTES),
        CLI_SIZE(NULL, 'e', &maxb, 0, BC_MAX_BYTES),
        CLI_INT(NULL, 'f', &factor, 2, 1 << 30),
        CLI_SIZES("sizes", 0, o->sizes, &o->nsizes, 0, BC_MAX_BYTES),
        CLI_FUNC(NULL, 'd', &o->dtype, bc_opt_dtype),
        CLI_FUNC(NULL, 'o', &o->redop, bc_opt_redop),
        CLI_INT(NULL, 'r', &o->root, 0, 65535),
        CLI_INT(NULL, 'w', &o->warmup, 0, 1000000),
        CLI_INT(NULL, 'n', &o->iters, 1, BC_MAX_ITERS),
        CLI_DOUBLE_GT("target", 0, &o->target, 0, 3600),
        CLI_FLAG("check", 0, &o->check),
        CLI_STR("algo", 0, &o->algo),
        CLI_STR("out", 0, &o->out),
        CLI_STR("csv", 0, &o->csv),
        CLI_STR("json", 0, &o->json),
        CLI_STR("md", 0, &o->md),
        CLI_FLAG("plot", 0, &o->plot),
        CLI_FUNC("peer-csv", 0, o, bc_opt_peer),
        CLI_FLAG("quiet", 0, &o->quiet),
        CLI_FLAG("device", 0, &o->device),
    };
    const scomm_cli_cmd_t cmd = {"bench", scomm_cli_bench_coll_usage, opts,
                                 CLI_NOPTS(opts), 0, 0};
    int rc, first;

    memset(o, 0, sizeof(*o));
    o->dtype  = SCOMM_FLOAT32;
    o->redop  = SCOMM_SUM;
    o->warmup = -1;
    o->target = 0.3;
    o->out    = ".benchmarks/collective";
    if (argv[1][0] == '-') {
        return scomm_cli_usage_error("bench", "the operation comes first: "
                                     "scomm bench <op|all|p2p> [options]");
    }
    if (bc_parse_ops(argv[1], o) != 0) {
        return 2;
    }
    rc = scomm_cli_parse(&cmd, argc - 1, argv + 1, &first);
    if (rc >= 0) {
        return rc;
    }
    if ((o->out != NULL) && (strcmp(o->out, "none") == 0)) {
        o->out = NULL;
    }
    if ((o->algo != NULL) && ((rc = bc_set_algo(o)) >= 0)) {
        return rc;
    }
    if (o->nsizes > 0) {
        return -1; /* --sizes */
    }
    if (minb > maxb) {
        scomm_cli_fmt_size(lo, sizeof(lo), minb);
        scomm_cli_fmt_size(hi, sizeof(hi), maxb);
        return scomm_cli_usage_error("bench", "-b %s is larger than -e %s",
                                     lo, hi);
    }
    return bc_sweep(minb, maxb, factor, o);
}

int scomm_cli_bench_coll(int argc, char **argv)
{
    bc_opts_t o;
    bc_ctx_t c;
    scomm_status_t s;
    long long wrong = 0;
    time_t now;
    int i, rc = 0, prc;

    prc = bc_parse(argc, argv, &o);
    if (prc >= 0) {
        return prc;
    }
    memset(&c, 0, sizeof(c));
    c.o     = &o;
    c.esize = scomm_dtype_size(o.dtype);
    if (o.device && (bc_dev_open() != 0)) { /* before scomm_init */
        return 1;
    }
    s = scomm_init_from_env(&c.comm);
    if (s != SCOMM_OK) {
        return bc_fail(NULL, s, "init");
    }
    c.rank      = scomm_rank(c.comm);
    c.size      = scomm_size(c.comm);
    c.transport = (c.size > 1) ? scomm_peer_transport(c.comm, 1) : "self";
    c.tty       = !o.quiet && isatty(STDERR_FILENO);
    if (o.root >= c.size) {
        if (c.rank == 0) {
            fprintf(stderr, "scomm bench: -r '%d': expected a rank below "
                    "%d (the number of ranks)\n", o.root, c.size);
        }
        scomm_comm_destroy(c.comm);
        return 2;
    }
    now = time(NULL);
    strftime(c.stamp, sizeof(c.stamp), "%Y%m%d_%H%M%S", localtime(&now));
    /* Every rank writes its files under rank 0's time stamp. */
    {
        int64_t t = (int64_t)now;

        s = scomm_broadcast(&t, 1, SCOMM_INT64, 0, c.comm);
        if (s != SCOMM_OK) {
            rc = bc_fail(c.comm, s, "broadcast");
            scomm_comm_destroy(c.comm);
            return rc;
        }
        now = (time_t)t;
        strftime(c.stamp, sizeof(c.stamp), "%Y%m%d_%H%M%S", localtime(&now));
    }
    if (c.rank == 0) {
        printf("# scomm %s bench: %d ranks, transport to rank 1: %s, "
               "sizes %zu..%zu B (%d)%s\n", scomm_version_string(), c.size,
               c.transport, o.sizes[0], o.sizes[o.nsizes - 1], o.nsizes,
               o.device ? ", device buffers" : "");
    }
    for (i = 0; (i < o.nops) && (rc == 0); i++) {
        rc = bc_run_op(&c, o.ops[i], &wrong);
    }
    if (rc == 0) {
        int64_t msg[2] = {wrong, 0};

        if ((c.rank == 0) && (c.nres > 0)) {
            if (o.csv != NULL) {
                c.file_err |= bc_write_file(o.csv, bc_write_csv, &c, c.res,
                                            c.nres);
            }
            if (o.json != NULL) {
                c.file_err |= bc_write_file(o.json, bc_write_json, &c, c.res,
                                            c.nres);
            }
            if (o.md != NULL) {
                c.file_err |= bc_write_file(o.md, bc_write_md, &c, c.res,
                                            c.nres);
            }
            if (o.plot) {
                c.file_err |= bc_plot(&c);
            }
        }
        /* Every rank learns rank 0's verdict, so every exit code agrees. */
        msg[1] = c.file_err;
        s = scomm_broadcast(msg, 2, SCOMM_INT64, 0, c.comm);
        if (s != SCOMM_OK) {
            rc = bc_fail(c.comm, s, "broadcast");
        } else if ((msg[0] != 0) || (msg[1] != 0)) {
            if ((c.rank == 0) && (msg[0] != 0)) {
                fprintf(stderr, "scomm bench: %lld wrong elements\n",
                        (long long)msg[0]);
            }
            rc = 1;
        }
    }
    scomm_comm_destroy(c.comm);
    bc_dev_free(c.dsbuf);
    bc_dev_free(c.drbuf);
    free(c.sbuf);
    free(c.rbuf);
    free(c.ref);
    free(c.tl);
    free(c.tmax);
    free(c.res);
    return rc;
}
