/*
 * bench.c - `scomm bench`: measured the way nccl-tests and
 * ../shared/anchors measure (time per iteration, slowest rank counts).
 *
 *   scomm bench p2p   ping-pong one-way time (RTT/2) and windowed streaming
 *                     bandwidth between ranks 0 and 1, sizes -b..-e by -f.
 *   scomm bench <op|all>
 *                     the collectives (bench_coll.c).
 *   scomm bench --overlap [--fusion]
 *                     overlap and fusion (bench_overlap.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_coll.h"
#include "cli.h"
#include "opts.h"
#include "scomm.h"

typedef struct bench_opts {
    size_t minb, maxb;
    int    factor;
    int    warmup;
    int    iters;    /* 0: by size */
    const char *csv;
} bench_opts_t;

static int bench_fail(scomm_status_t s, const char *what)
{
    fprintf(stderr, "scomm bench: %s: %s: %s\n", what, scomm_status_name(s),
            scomm_last_error());
    return 1;
}

static int bench_pingpong_once(scomm_comm_t *comm, char *buf, size_t bytes,
                               int rank)
{
    scomm_status_t s;

    if (rank == 0) {
        s = scomm_send(buf, bytes, SCOMM_UINT8, 1, 0, comm);
        if (s == SCOMM_OK) {
            s = scomm_recv(buf, bytes, SCOMM_UINT8, 1, 0, comm);
        }
    } else if (rank == 1) {
        s = scomm_recv(buf, bytes, SCOMM_UINT8, 0, 0, comm);
        if (s == SCOMM_OK) {
            s = scomm_send(buf, bytes, SCOMM_UINT8, 0, 0, comm);
        }
    } else {
        return 0;
    }
    return (s == SCOMM_OK) ? 0 : bench_fail(s, "pingpong");
}

/* Window of isends answered by a 1-byte ack, as the anchors' p2p_bw. */
static int bench_stream_once(scomm_comm_t *comm, char *buf, size_t bytes,
                             int rank, int window)
{
    scomm_req_t *reqs[64];
    scomm_status_t s = SCOMM_OK;
    char ack         = 0;
    int i;

    if (rank > 1) {
        return 0;
    }
    for (i = 0; (i < window) && (s == SCOMM_OK); i++) {
        s = (rank == 0)
                ? scomm_isend(buf, bytes, SCOMM_UINT8, 1, 1, comm, &reqs[i])
                : scomm_irecv(buf, bytes, SCOMM_UINT8, 0, 1, comm, &reqs[i]);
    }
    if (s == SCOMM_OK) {
        s = scomm_wait_all((size_t)window, reqs);
    }
    if (s == SCOMM_OK) {
        s = (rank == 0) ? scomm_recv(&ack, 1, SCOMM_UINT8, 1, 2, comm)
                        : scomm_send(&ack, 1, SCOMM_UINT8, 0, 2, comm);
    }
    return (s == SCOMM_OK) ? 0 : bench_fail(s, "stream");
}

static int bench_p2p(scomm_comm_t *comm, const bench_opts_t *o)
{
    double *samples = NULL, t1, t_med;
    int rank = scomm_rank(comm);
    char *buf;
    size_t bytes;
    double t0, t_pp, t_bw;
    int i, n, window, rc = 0;
    FILE *csv = NULL;
    char sz[32];

    if (scomm_size(comm) < 2) {
        fprintf(stderr, "scomm bench p2p: needs 2 ranks (scomm launch -n 2 "
                "-- scomm bench p2p)\n");
        return 1;
    }
    buf = malloc(o->maxb > 0 ? o->maxb : 1);
    if (buf == NULL) {
        fprintf(stderr, "scomm bench p2p: cannot allocate %zu bytes\n",
                o->maxb);
        scomm_comm_abort(comm); /* the peer stops now, not at timeout */
        return 1;
    }
    memset(buf, 1, o->maxb);
    if ((rank == 0) && (o->csv != NULL)) {
        csv = fopen(o->csv, "w");
        if (csv != NULL) {
            fprintf(csv, "op,bytes,t_mean_us,t_median_us,busbw_gbps,"
                    "transport\n");
        } else {
            fprintf(stderr, "scomm bench p2p: cannot write %s: %s\n",
                    o->csv, strerror(errno));
            rc = 1;
        }
    }
    if (rank == 0) {
        printf("# scomm bench p2p: ranks 0<->1 over %s\n",
               scomm_peer_transport(comm, 1));
        printf("%12s %8s %12s %12s %12s %14s %12s\n", "bytes", "iters",
               "pp_mean_us", "pp_med_us", "pp_GB/s", "stream_us",
               "stream_GB/s");
    }
    /* -b, -b*f, ... and -e itself, as `scomm bench <op>` sweeps. */
    for (bytes = o->minb;; bytes = (bytes == 0) ? 1
                                : (bytes > o->maxb / (size_t)o->factor)
                                ? o->maxb : bytes * (size_t)o->factor) {
        n = o->iters;
        if (n == 0) {
            n = (bytes >= (64u << 20)) ? 5 : (bytes >= (1u << 20)) ? 50
                                                                  : 2000;
        }
        for (i = 0; i < o->warmup; i++) {
            if (bench_pingpong_once(comm, buf, bytes, rank) != 0) {
                return 1;
            }
        }
        scomm_barrier(comm);
        free(samples);
        samples = calloc((size_t)n, sizeof(double));
        if (samples == NULL) {
            fprintf(stderr, "scomm bench p2p: out of memory for %d "
                    "samples\n", n);
            scomm_comm_abort(comm);
            return 1;
        }
        t0 = scomm_cli_now();
        for (i = 0; i < n; i++) {
            t1 = scomm_cli_now();
            if (bench_pingpong_once(comm, buf, bytes, rank) != 0) {
                return 1;
            }
            samples[i] = (scomm_cli_now() - t1) / 2.0;
        }
        t_pp = (scomm_cli_now() - t0) / (2.0 * n);
        qsort(samples, (size_t)n, sizeof(double), scomm_cli_cmp_double);
        t_med = samples[n / 2];
        window = (int)((8u << 20) / (bytes > 0 ? bytes : 1));
        window = (window < 1) ? 1 : (window > 64) ? 64 : window;
        if (bench_stream_once(comm, buf, bytes, rank, window) != 0) {
            return 1;
        }
        scomm_barrier(comm);
        t0 = scomm_cli_now();
        for (i = 0; i < n; i++) {
            if (bench_stream_once(comm, buf, bytes, rank, window) != 0) {
                return 1;
            }
        }
        t_bw = (scomm_cli_now() - t0) / ((double)n * window);
        if (rank == 0) {
            scomm_cli_fmt_size(sz, sizeof(sz), bytes);
            printf("%12s %8d %12.3f %12.3f %12.3f %14.3f %12.3f\n", sz, n,
                   t_pp * 1e6, t_med * 1e6, (double)bytes / t_med / 1e9,
                   t_bw * 1e6, (double)bytes / t_bw / 1e9);
            fflush(stdout);
            if (csv != NULL) {
                fprintf(csv, "pingpong,%zu,%.4f,%.4f,%.4f,%s\n", bytes,
                        t_pp * 1e6, t_med * 1e6, (double)bytes / t_pp / 1e9,
                        scomm_peer_transport(comm, 1));
                fprintf(csv, "p2p_bw,%zu,%.4f,%.4f,%.4f,%s\n", bytes,
                        t_bw * 1e6, t_bw * 1e6, (double)bytes / t_bw / 1e9,
                        scomm_peer_transport(comm, 1));
            }
        }
        if (bytes >= o->maxb) {
            break;
        }
    }
    if ((csv != NULL) && (fclose(csv) != 0)) {
        fprintf(stderr, "scomm bench p2p: error writing %s\n", o->csv);
        rc = 1;
    }
    free(samples);
    free(buf);
    return rc;
}

static void bench_p2p_usage(FILE *f)
{
    fprintf(f,
            "usage: scomm bench p2p [options]   (run under scomm launch -n "
            "2)\n"
            "ranks 0 and 1: ping-pong one-way time (RTT/2) and windowed "
            "streaming bandwidth\n"
            "\n"
            "  -b MIN, -e MAX    smallest and largest size, 0..64G (default "
            "8 and 64M;\n"
            "                    k, m, g suffixes)\n"
            "  -f FACTOR         size multiplier, 2..1G (default 2; MAX is "
            "always included)\n"
            "  -w WARMUP         warmup ping-pongs per size, 0..1000000 "
            "(default 20)\n"
            "  -n ITERS          timed ping-pongs and windows per size, "
            "1..1000000\n"
            "                    (default 2000; 50 from 1 MiB, 5 from 64 "
            "MiB)\n"
            "  --csv FILE        also write the results as CSV\n"
            "  -h, --help        this text\n");
}

static int bench_p2p_main(int argc, char **argv)
{
    bench_opts_t o = {8, 64u << 20, 2, 20, 0, NULL};
    const scomm_cli_opt_t opts[] = {
        CLI_SIZE(NULL, 'b', &o.minb, 0, BC_MAX_BYTES),
        CLI_SIZE(NULL, 'e', &o.maxb, 0, BC_MAX_BYTES),
        CLI_INT(NULL, 'f', &o.factor, 2, 1 << 30),
        CLI_INT(NULL, 'w', &o.warmup, 0, 1000000),
        CLI_INT(NULL, 'n', &o.iters, 1, 1000000),
        CLI_STR("csv", 0, &o.csv),
    };
    const scomm_cli_cmd_t cmd = {"bench p2p", bench_p2p_usage, opts,
                                 CLI_NOPTS(opts), 0, 0};
    char b[32], e[32];
    scomm_comm_t *comm;
    scomm_status_t s;
    int rc, first;

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    if (o.minb > o.maxb) {
        scomm_cli_fmt_size(b, sizeof(b), o.minb);
        scomm_cli_fmt_size(e, sizeof(e), o.maxb);
        return scomm_cli_usage_error("bench p2p", "-b %s is larger than -e "
                                     "%s", b, e);
    }
    s = scomm_init_from_env(&comm);
    if (s != SCOMM_OK) {
        return bench_fail(s, "init");
    }
    rc = bench_p2p(comm, &o);
    scomm_comm_destroy(comm);
    return rc;
}

static void bench_usage(FILE *f)
{
    scomm_cli_bench_coll_usage(f);
    fprintf(f, "\npoint-to-point (ranks 0 and 1: ping-pong one-way time, "
            "windowed streaming):\n"
            "  scomm bench p2p [-b MIN] [-e MAX] [-f FACTOR] [-w WARMUP] "
            "[-n ITERS] [--csv FILE]\n"
            "overlap and fusion: scomm bench --overlap --help\n");
}

int scomm_cli_bench(int argc, char **argv)
{
    if (argc < 2) {
        return scomm_cli_usage_error("bench", "missing the operation (p2p, "
                                     "an op, op,op or all, or --overlap)");
    }
    if ((strcmp(argv[1], "-h") == 0) || (strcmp(argv[1], "--help") == 0)) {
        bench_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "p2p") == 0) {
        return bench_p2p_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "--overlap") == 0) {
        return scomm_cli_bench_overlap(argc - 1, argv + 1);
    }
    return scomm_cli_bench_coll(argc, argv);
}
