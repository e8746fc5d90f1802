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
    c->sbuf = bc_alloc(smax);
    c->rbuf = bc_alloc(rmax);
    c->ref  = c->o->check ? bc_alloc(rmax) : NULL;
    if ((c->sbuf == NULL) || (c->rbuf == NULL) ||
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
        "  -b MIN, -e MAX    smallest and largest size (default 8 and 64M; "
        "K, M, G suffixes)\n"
        "  -f FACTOR         size multiplier (default 2; MAX is always "
        "included)\n"
        "  --sizes LIST      explicit sizes instead, e.g. "
        "8,64,256,1K,4K,...,256M\n"
        "  -d DTYPE          float32 (default), float16, bfloat16, float64, "
        "int8, uint8,\n"
        "                    int32, uint32, int64, uint64, fp8_e4m3, "
        "fp8_e5m2\n"
        "  -o REDOP          sum (default), prod, max, min, avg\n"
        "  -r ROOT           root of broadcast, reduce, gather, scatter "
        "(default 0)\n"
        "  -w WARMUP         warmup calls per size (default 5; 2 from 64 "
        "MiB)\n"
        "  -n ITERS          timed calls per size (default: calibrated to "
        "--target)\n"
        "  --target SEC      seconds of timed calls per size (default 0.3)\n"
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
        "repeatable\n"
        "  --quiet           no progress line, no file notes\n"
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

static int bc_parse_dtype(const char *s, scomm_dtype_t *dt)
{
    static const struct {
        const char   *name;
        scomm_dtype_t dt;
    } alias[] = {
        {"float", SCOMM_FLOAT32}, {"f32", SCOMM_FLOAT32},
        {"half", SCOMM_FLOAT16},  {"f16", SCOMM_FLOAT16},
        {"bf16", SCOMM_BFLOAT16}, {"double", SCOMM_FLOAT64},
        {"f64", SCOMM_FLOAT64},   {"int", SCOMM_INT32},
        {"e4m3", SCOMM_FP8_E4M3}, {"e5m2", SCOMM_FP8_E5M2},
    };
    size_t i;
    int d;

    for (d = 0; d < SCOMM_DTYPE_COUNT; d++) {
        if (strcmp(s, scomm_dtype_name((scomm_dtype_t)d)) == 0) {
            *dt = (scomm_dtype_t)d;
            return 0;
        }
    }
    for (i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
        if (strcmp(s, alias[i].name) == 0) {
            *dt = alias[i].dt;
            return 0;
        }
    }
    return -1;
}

static int bc_parse_redop(const char *s, scomm_redop_t *op)
{
    int i;

    for (i = 0; i < SCOMM_REDOP_COUNT; i++) {
        if (strcmp(s, scomm_redop_name((scomm_redop_t)i)) == 0) {
            *op = (scomm_redop_t)i;
            return 0;
        }
    }
    return -1;
}

static int bc_parse_ops(const char *s, bc_opts_t *o)
{
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
            fprintf(stderr, "scomm bench: unknown operation '%.*s'\n",
                    (int)(e - p), p);
            return -1;
        }
        for (i = 0, dup = 0; i < o->nops; i++) {
            dup |= (o->ops[i] == op);
        }
        if (!dup) {
            o->ops[o->nops++] = op;
        }
        p = (*e == ',') ? e + 1 : e;
    }
    return (o->nops > 0) ? 0 : -1;
}

static int bc_parse_sizes(const char *s, bc_opts_t *o)
{
    char buf[1024], *tok, *save = NULL;

    snprintf(buf, sizeof(buf), "%s", s);
    o->nsizes = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if ((o->nsizes == BC_MAX_SIZES) ||
            (scomm_cli_parse_size(tok, &o->sizes[o->nsizes]) != 0)) {
            fprintf(stderr, "scomm bench: bad size list '%s'\n", s);
            return -1;
        }
        o->nsizes++;
    }
    return (o->nsizes > 0) ? 0 : -1;
}

/* -b MIN, -b*f, ... and MAX itself (as `scomm bench p2p` does). */
static int bc_sweep(size_t minb, size_t maxb, long factor, bc_opts_t *o)
{
    size_t b = (minb > 0) ? minb : 1;

    o->nsizes = 0;
    for (;;) {
        if (o->nsizes == BC_MAX_SIZES) {
            fprintf(stderr, "scomm bench: more than %d sizes\n",
                    BC_MAX_SIZES);
            return -1;
        }
        o->sizes[o->nsizes++] = b;
        if (b >= maxb) {
            break;
        }
        b = (b > maxb / (size_t)factor) ? maxb : b * (size_t)factor;
    }
    return 0;
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
            fprintf(stderr, "scomm bench: '%s' is not a %s algorithm; "
                    "valid: %s\n", o->algo, bc_ops[op].name, names);
            return -1;
        }
    }
    if (hits == 0) {
        fprintf(stderr, "scomm bench: no operation of this run has an "
                "algorithm called '%s'\n", o->algo);
        return -1;
    }
    return 0;
}

static int bc_parse(int argc, char **argv, bc_opts_t *o)
{
    size_t minb = 8, maxb = 64u << 20;
    long factor = 2;
    const char *sizes = NULL;
    char *end;
    int i;

    memset(o, 0, sizeof(*o));
    o->dtype  = SCOMM_FLOAT32;
    o->redop  = SCOMM_SUM;
    o->warmup = -1;
    o->target = 0.3;
    o->out    = ".benchmarks/collective";
    if (bc_parse_ops(argv[1], o) != 0) {
        return -1;
    }
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        int takes = 1;

        if (strcmp(a, "--check") == 0) {
            o->check = 1;
            takes    = 0;
        } else if (strcmp(a, "--plot") == 0) {
            o->plot = 1;
            takes   = 0;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            takes    = 0;
        } else if ((strcmp(a, "-h") == 0) || (strcmp(a, "--help") == 0)) {
            return 1;
        } else if (v == NULL) {
            fprintf(stderr, "scomm bench: option '%s' needs a value (or is "
                    "unknown)\n", a);
            return -1;
        } else if (strcmp(a, "-b") == 0) {
            if (scomm_cli_parse_size(v, &minb) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-e") == 0) {
            if (scomm_cli_parse_size(v, &maxb) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-f") == 0) {
            factor = strtol(v, &end, 10);
            if ((*end != '\0') || (factor < 2)) {
                goto bad;
            }
        } else if (strcmp(a, "--sizes") == 0) {
            sizes = v;
        } else if (strcmp(a, "-d") == 0) {
            if (bc_parse_dtype(v, &o->dtype) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-o") == 0) {
            if (bc_parse_redop(v, &o->redop) != 0) {
                goto bad;
            }
        } else if (strcmp(a, "-r") == 0) {
            o->root = (int)strtol(v, &end, 10);
            if ((*end != '\0') || (o->root < 0)) {
                goto bad;
            }
        } else if (strcmp(a, "-w") == 0) {
            o->warmup = (int)strtol(v, &end, 10);
            if ((*end != '\0') || (o->warmup < 0)) {
                goto bad;
            }
        } else if (strcmp(a, "-n") == 0) {
            o->iters = strtol(v, &end, 10);
            if ((*end != '\0') || (o->iters < 1) ||
                (o->iters > BC_MAX_ITERS)) {
                goto bad;
            }
        } else if (strcmp(a, "--target") == 0) {
            o->target = strtod(v, &end);
            if ((*end != '\0') || !(o->target > 0) || (o->target > 3600)) {
                goto bad;
            }
        } else if (strcmp(a, "--algo") == 0) {
            o->algo = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = (strcmp(v, "none") == 0) ? NULL : v;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = v;
        } else if (strcmp(a, "--json") == 0) {
            o->json = v;
        } else if (strcmp(a, "--md") == 0) {
            o->md = v;
        } else if (strcmp(a, "--peer-csv") == 0) {
            if (o->npeer == BC_MAX_PEERS) {
                fprintf(stderr, "scomm bench: at most %d --peer-csv files\n",
                        BC_MAX_PEERS);
                return -1;
            }
            o->peer_csv[o->npeer++] = v;
        } else {
            fprintf(stderr, "scomm bench: unknown option '%s'\n", a);
            return -1;
        }
        i += takes;
        continue;
bad:
        fprintf(stderr, "scomm bench: bad value '%s' for %s\n", v, a);
        return -1;
    }
    if (sizes != NULL) {
        return bc_parse_sizes(sizes, o);
    }
    if (minb > maxb) {
        fprintf(stderr, "scomm bench: need -b <= -e\n");
        return -1;
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

    if (argc < 2) {
        scomm_cli_bench_coll_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--overlap") == 0) {
        return scomm_cli_bench_overlap(argc, argv); /* bench_overlap.c */
    }
    if ((strcmp(argv[1], "-h") == 0) || (strcmp(argv[1], "--help") == 0)) {
        scomm_cli_bench_coll_usage(stdout);
        return 0;
    }
    prc = bc_parse(argc, argv, &o);
    if (prc > 0) {
        scomm_cli_bench_coll_usage(stdout);
        return 0;
    }
    if (prc < 0) {
        fprintf(stderr, "scomm bench: see `scomm bench --help`\n");
        return 2;
    }
    if ((o.algo != NULL) && (bc_set_algo(&o) != 0)) {
        return 2;
    }
    memset(&c, 0, sizeof(c));
    c.o     = &o;
    c.esize = scomm_dtype_size(o.dtype);
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
            fprintf(stderr, "scomm bench: root %d >= %d ranks\n", o.root,
                    c.size);
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
               "sizes %zu..%zu B (%d)\n", scomm_version_string(), c.size,
               c.transport, o.sizes[0], o.sizes[o.nsizes - 1], o.nsizes);
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
    free(c.sbuf);
    free(c.rbuf);
    free(c.ref);
    free(c.tl);
    free(c.tmax);
    free(c.res);
    return rc;
}
