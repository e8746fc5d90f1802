/*
 * bench_overlap.c - `scomm bench --overlap`: how much of a non-blocking
 * all_reduce hides behind real compute on the caller's thread, and
 * `scomm bench --overlap --fusion`: many small all_reduces in a group
 * (fused) against the same calls made one by one.
 *
 * Overlap, per (comm_bytes, compute ratio):
 *   comm alone      t_comm    = iall_reduce + wait (median)
 *   compute alone   t_comp    = a small float GEMM (64x64) repeated, sized
 *                               to ratio x t_comm (median)
 *   overlapped      submit (comm_submit_ms), compute (compute_ms),
 *                   wait (comm_wait_ms), total (total_ms)
 *   theoretical_sequential_ms = t_comm + t_comp
 *   theoretical_overlap_ms    = max(t_comm, t_comp)
 *   overlap_efficiency = clip((sequential - total) /
 *                             (sequential - theoretical_overlap), 0, 1)
 *   overlap_ratio      = clip((sequential - total) / t_comm, 0, 1): the
 *                        share of the communication hidden
 * Every time is the slowest rank's (max over ranks) median of the
 * iterations. Results go to .benchmarks/overlap/overlap_<stamp>.{json,csv}
 * (fusion: fusion_<stamp>.{json,csv}).
 *
 * Design notes:
 *  1. Ranks run the same sequence of calls (sizes, iterations), decided
 *     from arguments only, and a barrier starts each measurement.
 *  2. The compute loop's result is kept in a volatile sink, so the
 *     compiler cannot drop it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "opts.h"
#include "scomm.h"

#define BO_MAX_SIZES 16
#define BO_MAX_RATIO 8
#define BO_MAX_BYTES (1u << 30) /* largest --sizes item */
#define BO_GEMM_N    64

typedef struct bo_opts {
    size_t      sizes[BO_MAX_SIZES];
    int         nsizes;
    double      ratios[BO_MAX_RATIO];
    int         nratios;
    int         iters;
    int         fusion;
    int         nsmall;
    size_t      small_bytes;
    const char *out;
} bo_opts_t;

static volatile float bo_sink;

/* One 64x64x64 float GEMM: C += A * B (about 0.5 Mflop). */
static void bo_gemm(float *c, const float *a, const float *b)
{
    int i, j, k;

    for (i = 0; i < BO_GEMM_N; i++) {
        for (k = 0; k < BO_GEMM_N; k++) {
            float aik = a[i * BO_GEMM_N + k];

            for (j = 0; j < BO_GEMM_N; j++) {
                c[i * BO_GEMM_N + j] += aik * b[k * BO_GEMM_N + j];
            }
        }
    }
}

static float bo_a[BO_GEMM_N * BO_GEMM_N], bo_b[BO_GEMM_N * BO_GEMM_N],
    bo_c[BO_GEMM_N * BO_GEMM_N];

static void bo_compute(long reps)
{
    long r;

    for (r = 0; r < reps; r++) {
        bo_gemm(bo_c, bo_a, bo_b);
    }
    bo_sink = bo_c[r % (BO_GEMM_N * BO_GEMM_N)];
}

static int bo_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return (a > b) - (a < b);
}

static double bo_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), bo_cmp);
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double bo_clip(double x)
{
    return (x < 0) ? 0 : (x > 1) ? 1 : x;
}

static int bo_fail(scomm_status_t s, const char *what)
{
    fprintf(stderr, "scomm bench --overlap: %s: %s: %s\n", what,
            scomm_status_name(s), scomm_last_error());
    return 1;
}

static int bo_mkdirs(const char *path)
{
    char buf[512];
    size_t i;

    snprintf(buf, sizeof(buf), "%s", path);
    for (i = 1; buf[i] != '\0'; i++) {
        if (buf[i] == '/') {
            buf[i] = '\0';
            if ((mkdir(buf, 0755) != 0) && (errno != EEXIST)) {
                return -1;
            }
            buf[i] = '/';
        }
    }
    return ((mkdir(buf, 0755) != 0) && (errno != EEXIST)) ? -1 : 0;
}

/* Slowest rank's value of each of n numbers. */
static scomm_status_t bo_max(scomm_comm_t *comm, double *v, int n)
{
    return scomm_all_reduce(v, v, (size_t)n, SCOMM_FLOAT64, SCOMM_MAX, comm);
}

typedef struct bo_row {
    size_t bytes;
    double ratio, comm_ms, comp_ms, submit_ms, wait_ms, ocomp_ms, total_ms;
    double seq_ms, ovl_ms, eff, oratio;
} bo_row_t;

/* Time one iall_reduce + wait of n floats (ms). */
static scomm_status_t bo_comm_once(scomm_comm_t *comm, float *buf, size_t n,
                                   double *ms)
{
    scomm_req_t *req;
    scomm_status_t s;
    double t0 = scomm_cli_now();

    s = scomm_iall_reduce(buf, buf, n, SCOMM_FLOAT32, SCOMM_SUM, comm, &req);
    if (s == SCOMM_OK) {
        s = scomm_wait(req);
    }
    *ms = (scomm_cli_now() - t0) * 1e3;
    return s;
}

static int bo_run_point(scomm_comm_t *comm, const bo_opts_t *o, float *buf,
                        size_t bytes, double ratio, long *reps_cache,
                        bo_row_t *row)
{
    size_t n = bytes / sizeof(float);
    int it, iters = o->iters;
    double *t = calloc((size_t)iters * 4, sizeof(double));
    double v[6], t0, t1, t2, per_rep;
    scomm_req_t *req;
    scomm_status_t s;
    long reps;

    if (t == NULL) {
        return 1;
    }
    /* Communication alone (warm-up first). */
    for (it = -2; it < iters; it++) {
        double ms;

        if (((s = scomm_barrier(comm)) != SCOMM_OK) ||
            ((s = bo_comm_once(comm, buf, n, &ms)) != SCOMM_OK)) {
            free(t);
            return bo_fail(s, "all_reduce");
        }
        if (it >= 0) {
            t[it] = ms;
        }
    }
    v[0] = bo_median(t, iters);
    if ((s = bo_max(comm, v, 1)) != SCOMM_OK) {
        free(t);
        return bo_fail(s, "max");
    }
    row->comm_ms = v[0];
    /* Compute sized to ratio x comm, same repetitions on every rank. */
    if (*reps_cache == 0) {
        t0 = scomm_cli_now();
        bo_compute(200);
        v[0] = (scomm_cli_now() - t0) * 1e3 / 200;
        if ((s = bo_max(comm, v, 1)) != SCOMM_OK) {
            free(t);
            return bo_fail(s, "max");
        }
        *reps_cache = (long)(v[0] * 1e6); /* ns per rep, stored */
    }
    per_rep = (double)*reps_cache * 1e-6;
    reps    = (long)ceil(ratio * row->comm_ms / per_rep);
    reps    = (reps < 1) ? 1 : reps;
    for (it = -1; it < iters; it++) {
        if ((s = scomm_barrier(comm)) != SCOMM_OK) {
            free(t);
            return bo_fail(s, "barrier");
        }
        t0 = scomm_cli_now();
        bo_compute(reps);
        if (it >= 0) {
            t[it] = (scomm_cli_now() - t0) * 1e3;
        }
    }
    v[0] = bo_median(t, iters);
    if ((s = bo_max(comm, v, 1)) != SCOMM_OK) {
        free(t);
        return bo_fail(s, "max");
    }
    row->comp_ms = v[0];
    /* Overlapped. */
    for (it = -1; it < iters; it++) {
        if ((s = scomm_barrier(comm)) != SCOMM_OK) {
            free(t);
            return bo_fail(s, "barrier");
        }
        t0 = scomm_cli_now();
        s  = scomm_iall_reduce(buf, buf, n, SCOMM_FLOAT32, SCOMM_SUM, comm,
                               &req);
        if (s != SCOMM_OK) {
            free(t);
            return bo_fail(s, "iall_reduce");
        }
        t1 = scomm_cli_now();
        bo_compute(reps);
        t2 = scomm_cli_now();
        if ((s = scomm_wait(req)) != SCOMM_OK) {
            free(t);
            return bo_fail(s, "wait");
        }
        if (it >= 0) {
            t[it]             = (t1 - t0) * 1e3;
            t[iters + it]     = (t2 - t1) * 1e3;
            t[2 * iters + it] = (scomm_cli_now() - t2) * 1e3;
            t[3 * iters + it] = (scomm_cli_now() - t0) * 1e3;
        }
    }
    v[0] = bo_median(t, iters);
    v[1] = bo_median(t + iters, iters);
    v[2] = bo_median(t + 2 * iters, iters);
    v[3] = bo_median(t + 3 * iters, iters);
    free(t);
    if ((s = bo_max(comm, v, 4)) != SCOMM_OK) {
        return bo_fail(s, "max");
    }
    row->bytes     = bytes;
    row->ratio     = ratio;
    row->submit_ms = v[0];
    row->ocomp_ms  = v[1];
    row->wait_ms   = v[2];
    row->total_ms  = v[3];
    row->seq_ms    = row->comm_ms + row->comp_ms;
    row->ovl_ms    = (row->comm_ms > row->comp_ms) ? row->comm_ms
                                                   : row->comp_ms;
    row->eff    = (row->seq_ms - row->ovl_ms > 0)
                      ? bo_clip((row->seq_ms - row->total_ms) /
                                (row->seq_ms - row->ovl_ms))
                      : 0;
    row->oratio = bo_clip((row->seq_ms - row->total_ms) / row->comm_ms);
    return 0;
}

static FILE *bo_open(const bo_opts_t *o, const char *kind, const char *stamp,
                     const char *ext)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/%s_%s.%s", o->out, kind, stamp, ext);
    return fopen(path, "w");
}

static int bo_overlap(scomm_comm_t *comm, const bo_opts_t *o,
                      const char *stamp, int rank, int size,
                      const char *tl)
{
    bo_row_t rows[BO_MAX_SIZES * BO_MAX_RATIO];
    size_t maxb = 0;
    long reps_cache = 0;
    int i, j, nr = 0;
    float *buf;
    FILE *fj, *fc;

    for (i = 0; i < o->nsizes; i++) {
        maxb = (o->sizes[i] > maxb) ? o->sizes[i] : maxb;
    }
    for (i = 0; i < BO_GEMM_N * BO_GEMM_N; i++) {
        bo_a[i] = (float)(i % 7) * 0.01f;
        bo_b[i] = (float)(i % 5) * 0.01f;
    }
    buf = calloc(maxb / sizeof(float) + 1, sizeof(float));
    if (buf == NULL) {
        fprintf(stderr, "scomm bench --overlap: out of memory\n");
        return 1;
    }
    if (rank == 0) {
        printf("# scomm bench --overlap: %d ranks over %s, float32 sum, "
               "compute = 64x64 GEMM on the caller's thread, progress "
               "thread for the communication\n", size, tl);
        printf("%10s %5s %9s %9s %9s %9s %9s %9s %9s %7s %7s\n", "bytes",
               "ratio", "comm_ms", "comp_ms", "submit", "ovl_comp", "wait",
               "total", "t_ovl", "ratio%", "eff");
    }
    for (i = 0; i < o->nsizes; i++) {
        for (j = 0; j < o->nratios; j++) {
            bo_row_t *r = &rows[nr];

            if (bo_run_point(comm, o, buf, o->sizes[i], o->ratios[j],
                             &reps_cache, r) != 0) {
                free(buf);
                return 1;
            }
            nr++;
            if (rank == 0) {
                printf("%10zu %5.2f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f "
                       "%9.3f %7.1f %7.3f\n", r->bytes, r->ratio, r->comm_ms,
                       r->comp_ms, r->submit_ms, r->ocomp_ms, r->wait_ms,
                       r->total_ms, r->ovl_ms, 100 * r->oratio, r->eff);
                fflush(stdout);
            }
        }
    }
    free(buf);
    if ((rank != 0) || (o->out == NULL)) {
        return 0;
    }
    if (bo_mkdirs(o->out) != 0) {
        fprintf(stderr, "scomm bench --overlap: cannot create %s\n", o->out);
        return 1;
    }
    fj = bo_open(o, "overlap", stamp, "json");
    fc = bo_open(o, "overlap", stamp, "csv");
    if ((fj == NULL) || (fc == NULL)) {
        fprintf(stderr, "scomm bench --overlap: cannot write in %s\n",
                o->out);
        if (fj != NULL) {
            fclose(fj);
        }
        if (fc != NULL) {
            fclose(fc);
        }
        return 1;
    }
    fprintf(fc, "comm_bytes,compute_duration_ms,comm_submit_ms,comm_wait_ms,"
            "compute_ms,total_ms,overlap_ratio,overlap_efficiency,"
            "theoretical_sequential_ms,theoretical_overlap_ms,comm_alone_ms,"
            "compute_ratio,world_size,transport,op_type,data_type,"
            "benchmark_iters,timestamp\n");
    fprintf(fj, "[\n");
    for (i = 0; i < nr; i++) {
        bo_row_t *r = &rows[i];

        fprintf(fc, "%zu,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,"
                "%.3f,%d,%s,all_reduce,float32,%d,%s\n", r->bytes,
                r->comp_ms, r->submit_ms, r->wait_ms, r->ocomp_ms,
                r->total_ms, r->oratio, r->eff, r->seq_ms, r->ovl_ms,
                r->comm_ms, r->ratio, size, tl, o->iters, stamp);
        fprintf(fj, "  {\"comm_bytes\": %zu, \"compute_duration_ms\": %.6f, "
                "\"comm_submit_ms\": %.6f, \"comm_wait_ms\": %.6f, "
                "\"compute_ms\": %.6f, \"total_ms\": %.6f, "
                "\"overlap_ratio\": %.6f, \"overlap_efficiency\": %.6f, "
                "\"theoretical_sequential_ms\": %.6f, "
                "\"theoretical_overlap_ms\": %.6f, \"comm_alone_ms\": %.6f, "
                "\"compute_ratio\": %.3f, \"world_size\": %d, "
                "\"transport\": \"%s\", \"op_type\": \"all_reduce\", "
                "\"data_type\": \"float32\", \"benchmark_iters\": %d, "
                "\"timestamp\": \"%s\"}%s\n", r->bytes, r->comp_ms,
                r->submit_ms, r->wait_ms, r->ocomp_ms, r->total_ms,
                r->oratio, r->eff, r->seq_ms, r->ovl_ms, r->comm_ms,
                r->ratio, size, tl, o->iters, stamp,
                (i + 1 < nr) ? "," : "");
    }
    fprintf(fj, "]\n");
    fclose(fj);
    fclose(fc);
    printf("# wrote %s/overlap_%s.{json,csv}\n", o->out, stamp);
    return 0;
}

/* nsmall all_reduces of small_bytes: one by one, then in one group, on a
 * fresh sub-communicator per SCOMM_FUSION_BYTES value in fb[]. */
static int bo_fusion(scomm_comm_t *comm, const bo_opts_t *o,
                     const char *stamp, int rank, int size, const char *tl)
{
    static const char *fb[] = {"0", "64k", "256k", "1m", "4m"};
    size_t n = o->small_bytes / sizeof(float), k;
    int nb = (int)(sizeof(fb) / sizeof(fb[0])), f, i, it;
    double t_block[8], t_group[8], v[2], res[8][2], t0;
    scomm_overlap_stats_t st;
    scomm_comm_t *sub;
    scomm_status_t s;
    float *bufs;
    FILE *fj = NULL, *fc = NULL;

    bufs = calloc((size_t)o->nsmall * n + 1, sizeof(float));
    if (bufs == NULL) {
        return 1;
    }
    if (rank == 0) {
        printf("# scomm bench --overlap --fusion: %d x %zu-byte float32 "
               "all_reduce, %d ranks over %s\n", o->nsmall, o->small_bytes,
               size, tl);
        printf("%14s %12s %12s %8s %8s\n", "FUSION_BYTES", "blocking_ms",
               "group_ms", "speedup", "batches");
    }
    for (f = 0; f < nb; f++) {
        setenv("SCOMM_FUSION_BYTES", fb[f], 1); /* read by the new comm */
        if ((s = scomm_comm_split(comm, 0, rank, &sub)) != SCOMM_OK) {
            free(bufs);
            return bo_fail(s, "split");
        }
        for (it = 0; it < 4; it++) {
            scomm_barrier(sub);
            t0 = scomm_cli_now();
            for (i = 0; i < o->nsmall; i++) {
                s = scomm_all_reduce(bufs + (size_t)i * n,
                                     bufs + (size_t)i * n, n, SCOMM_FLOAT32,
                                     SCOMM_SUM, sub);
                if (s != SCOMM_OK) {
                    free(bufs);
                    return bo_fail(s, "all_reduce");
                }
            }
            t_block[it] = (scomm_cli_now() - t0) * 1e3;
            scomm_barrier(sub);
            t0 = scomm_cli_now();
            scomm_group_start();
            for (i = 0; i < o->nsmall; i++) {
                scomm_all_reduce(bufs + (size_t)i * n, bufs + (size_t)i * n,
                                 n, SCOMM_FLOAT32, SCOMM_SUM, sub);
            }
            if ((s = scomm_group_end()) != SCOMM_OK) {
                free(bufs);
                return bo_fail(s, "group_end");
            }
            t_group[it] = (scomm_cli_now() - t0) * 1e3;
        }
        v[0] = bo_median(t_block + 1, 3);
        v[1] = bo_median(t_group + 1, 3);
        if ((s = bo_max(sub, v, 2)) != SCOMM_OK) {
            free(bufs);
            return bo_fail(s, "max");
        }
        scomm_overlap_stats(sub, &st);
        res[f][0] = v[0];
        res[f][1] = v[1];
        if (rank == 0) {
            printf("%14s %12.3f %12.3f %8.2f %8llu\n", fb[f], v[0], v[1],
                   v[0] / v[1], (unsigned long long)st.fused_batches);
            fflush(stdout);
        }
        scomm_comm_destroy(sub);
    }
    free(bufs);
    unsetenv("SCOMM_FUSION_BYTES");
    if ((rank != 0) || (o->out == NULL)) {
        return 0;
    }
    if ((bo_mkdirs(o->out) != 0) ||
        ((fj = bo_open(o, "fusion", stamp, "json")) == NULL) ||
        ((fc = bo_open(o, "fusion", stamp, "csv")) == NULL)) {
        fprintf(stderr, "scomm bench --overlap: cannot write in %s\n",
                o->out);
        if (fj != NULL) {
            fclose(fj);
        }
        return 1;
    }
    fprintf(fc, "fusion_bytes,ops,op_bytes,blocking_ms,group_ms,speedup,"
            "world_size,transport,timestamp\n");
    fprintf(fj, "[\n");
    for (k = 0; k < (size_t)nb; k++) {
        fprintf(fc, "%s,%d,%zu,%.6f,%.6f,%.4f,%d,%s,%s\n", fb[k], o->nsmall,
                o->small_bytes, res[k][0], res[k][1], res[k][0] / res[k][1],
                size, tl, stamp);
        fprintf(fj, "  {\"fusion_bytes\": \"%s\", \"ops\": %d, "
                "\"op_bytes\": %zu, \"blocking_ms\": %.6f, "
                "\"group_ms\": %.6f, \"speedup\": %.4f, \"world_size\": %d, "
                "\"transport\": \"%s\", \"timestamp\": \"%s\"}%s\n", fb[k],
                o->nsmall, o->small_bytes, res[k][0], res[k][1],
                res[k][0] / res[k][1], size, tl, stamp,
                (k + 1 < (size_t)nb) ? "," : "");
    }
    fprintf(fj, "]\n");
    fclose(fj);
    fclose(fc);
    printf("# wrote %s/fusion_%s.{json,csv}\n", o->out, stamp);
    return 0;
}

static void bo_usage(FILE *f)
{
    fprintf(f,
            "usage: scomm bench --overlap [--sizes S1,S2,..] [--ratios "
            "R1,R2,..] [-n ITERS]\n"
            "                             [--out DIR|none]\n"
            "       scomm bench --overlap --fusion [--ops N] [--op-bytes "
            "SIZE] [--out DIR|none]\n"
            "  overlap: iall_reduce of each size while a GEMM runs on the "
            "caller's thread\n"
            "           for ratio x the communication time (defaults: "
            "4m,16m; 0.5,1,1.5; 10)\n"
            "           sizes: at most 16, 4..1G; ratios: at most 8, > 0 "
            "and <= 100;\n"
            "           ITERS 1..1000\n"
            "  fusion:  N all_reduces of SIZE (default 1000 x 4k; N "
            "1..100000, SIZE 4..64m)\n"
            "           one by one vs in a group, for SCOMM_FUSION_BYTES 0, "
            "64k, 256k, 1m, 4m\n"
            "  run under `scomm launch -n 2 --`; results in "
            ".benchmarks/overlap/\n");
}

int scomm_cli_bench_overlap(int argc, char **argv)
{
    bo_opts_t o;
    const scomm_cli_opt_t opts[] = {
        CLI_FLAG("fusion", 0, &o.fusion),
        CLI_SIZES("sizes", 0, o.sizes, &o.nsizes, sizeof(float),
                  BO_MAX_BYTES),
        CLI_DOUBLES_GT("ratios", 0, o.ratios, &o.nratios, 0.0, 100.0),
        CLI_INT(NULL, 'n', &o.iters, 1, 1000),
        CLI_INT("ops", 0, &o.nsmall, 1, 100000),
        CLI_SIZE("op-bytes", 0, &o.small_bytes, sizeof(float), 64u << 20),
        CLI_STR("out", 0, &o.out),
    };
    const scomm_cli_cmd_t cmd = {"bench --overlap", bo_usage, opts,
                                 CLI_NOPTS(opts), 0, 0};
    scomm_comm_t *comm;
    scomm_status_t s;
    char stamp[32];
    int64_t now;
    int rc, rank, size, first;
    const char *tl;

    memset(&o, 0, sizeof(o));
    o.sizes[0] = 4u << 20;
    o.sizes[1] = 16u << 20;
    o.nsizes   = 2;
    o.ratios[0] = 0.5;
    o.ratios[1] = 1.0;
    o.ratios[2] = 1.5;
    o.nratios   = 3;
    o.iters     = 10;
    o.nsmall    = 1000;
    o.small_bytes = 4096;
    o.out       = ".benchmarks/overlap";
    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    if ((o.out != NULL) && (strcmp(o.out, "none") == 0)) {
        o.out = NULL;
    }
    s = scomm_init_from_env(&comm);
    if (s != SCOMM_OK) {
        return bo_fail(s, "init");
    }
    rank = scomm_rank(comm);
    size = scomm_size(comm);
    tl   = (size > 1) ? scomm_peer_transport(comm, (rank + 1) % size)
                      : "self";
    now  = (int64_t)time(NULL);
    s    = scomm_broadcast(&now, 1, SCOMM_INT64, 0, comm);
    if (s != SCOMM_OK) {
        scomm_comm_destroy(comm);
        return bo_fail(s, "broadcast");
    }
    {
        time_t tt = (time_t)now;

        strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", localtime(&tt));
    }
    rc = o.fusion ? bo_fusion(comm, &o, stamp, rank, size, tl)
                  : bo_overlap(comm, &o, stamp, rank, size, tl);
    scomm_comm_destroy(comm);
    return rc;
}
