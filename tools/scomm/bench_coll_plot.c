/*
 * bench_coll_plot.c - `scomm bench --plot`: for every op of the run,
 * <out>/<op>_ws<N>_<stamp>_busbw.png and _latency.png drawn by gnuplot,
 * scomm's curve and the peers' of --peer-csv files overlaid.
 *
 * A peer file is the anchors' CSV (label,op,nranks,bytes,...,t_mean_us,
 * t_median_us,...,busbw_GBps,...,check) or scomm bench's own records
 * (bench_coll_report.c); each curve is the median per size over repeated
 * rows (rounds).
 *
 * Invariants:
 *  1. gnuplot runs as a child (posix_spawnp) on a script and data files in
 *     a private mkdtemp directory, removed afterwards; a missing gnuplot is
 *     one note and no plots, not a failure.
 *  2. A peer row of another rank count, an unknown op, or a check column
 *     saying UNSUPPORTED is dropped, never plotted as ours.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_coll.h"
#include "cli.h"

extern char **environ;

typedef struct bc_point {
    char   label[64];
    int    op;
    size_t bytes;
    double t_mean_us, t_med_us, busbw;
} bc_point_t;

typedef struct bc_points {
    bc_point_t *p;
    int         n, cap;
} bc_points_t;

static int bc_points_add(bc_points_t *ps, const bc_point_t *pt)
{
    bc_point_t *np;

    if (ps->n == ps->cap) {
        ps->cap = (ps->cap == 0) ? 256 : 2 * ps->cap;
        np      = realloc(ps->p, sizeof(*np) * (size_t)ps->cap);
        if (np == NULL) {
            return -1;
        }
        ps->p = np;
    }
    ps->p[ps->n++] = *pt;
    return 0;
}

/* Split a CSV line in place (RFC 4180 quotes); returns the field count. */
static int bc_csv_split(char *line, char **fld, int max)
{
    char *r = line, *w;
    int n = 0;

    while (n < max) {
        fld[n++] = w = r;
        if (*r == '"') {
            r++;
            while (*r != '\0') {
                if ((r[0] == '"') && (r[1] == '"')) {
                    *w++ = '"';
                    r += 2;
                } else if (*r == '"') {
                    r++;
                    break;
                } else {
                    *w++ = *r++;
                }
            }
        }
        while ((*r != '\0') && (*r != ',') && (*r != '\n') && (*r != '\r')) {
            *w++ = *r++;
        }
        if (*r != ',') {
            *w = '\0';
            break;
        }
        r++;
        *w = '\0';
    }
    return n;
}

static int bc_col(char **hdr, int nh, const char *a, const char *b)
{
    int i;

    for (i = 0; i < nh; i++) {
        if ((strcmp(hdr[i], a) == 0) ||
            ((b != NULL) && (strcmp(hdr[i], b) == 0))) {
            return i;
        }
    }
    return -1;
}

/*
 * Read a peer CSV: the anchors' format (label,op,nranks,bytes,...,t_mean_us,
 * t_median_us,...,busbw_GBps,...,check) or scomm bench's own (op_type,
 * world_size, latency_ms, t_median_ms, busbw_gbps; labelled by the file
 * name). Header lines may repeat; '#' lines are skipped. Rows of another
 * rank count, or whose check column says UNSUPPORTED, are dropped.
 */
static int bc_read_peer(const char *path, int nranks, bc_points_t *ps)
{
    char line[4096], hline[4096], *hdr[64], *fld[64], fname[64];
    int nh = 0, nf, ci_label = -1, ci_op = -1, ci_n = -1, ci_b = -1;
    int ci_mean = -1, ci_med = -1, ci_bus = -1, ci_chk = -1, ms = 0, op;
    const char *base = strrchr(path, '/');
    FILE *f = fopen(path, "r");
    bc_point_t pt;
    char *dot;

    if (f == NULL) {
        fprintf(stderr, "scomm bench: cannot read peer CSV %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    snprintf(fname, sizeof(fname), "%s", (base != NULL) ? base + 1 : path);
    dot = strrchr(fname, '.');
    if (dot != NULL) {
        *dot = '\0';
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if ((line[0] == '#') || (line[0] == '\n')) {
            continue;
        }
        if ((strncmp(line, "label,", 6) == 0) ||
            (strstr(line, "op_type") != NULL)) {
            memcpy(hline, line, sizeof(hline));
            nh       = bc_csv_split(hline, hdr, 64);
            ci_label = bc_col(hdr, nh, "label", NULL);
            ci_op    = bc_col(hdr, nh, "op", "op_type");
            ci_n     = bc_col(hdr, nh, "nranks", "world_size");
            ci_b     = bc_col(hdr, nh, "bytes", NULL);
            ci_mean  = bc_col(hdr, nh, "t_mean_us", NULL);
            ci_med   = bc_col(hdr, nh, "t_median_us", NULL);
            ci_bus   = bc_col(hdr, nh, "busbw_GBps", "busbw_gbps");
            ci_chk   = bc_col(hdr, nh, "check", NULL);
            ms       = 0;
            if (ci_mean < 0) {
                ci_mean = bc_col(hdr, nh, "latency_ms", NULL);
                ci_med  = bc_col(hdr, nh, "t_median_ms", NULL);
                ms      = 1;
            }
            continue;
        }
        if ((nh == 0) || (ci_op < 0) || (ci_b < 0) || (ci_mean < 0) ||
            (ci_bus < 0)) {
            continue;
        }
        nf = bc_csv_split(line, fld, 64);
        if ((ci_op >= nf) || (ci_b >= nf) || (ci_mean >= nf) ||
            (ci_bus >= nf) || (fld[ci_mean][0] == '\0')) {
            continue;
        }
        if ((ci_chk >= 0) && (ci_chk < nf) &&
            (strcmp(fld[ci_chk], "UNSUPPORTED") == 0)) {
            continue;
        }
        if ((ci_n >= 0) && (ci_n < nf) && (atoi(fld[ci_n]) != nranks)) {
            continue;
        }
        op = bc_op_find(fld[ci_op], strlen(fld[ci_op]));
        if (op < 0) {
            continue;
        }
        memset(&pt, 0, sizeof(pt));
        snprintf(pt.label, sizeof(pt.label), "%s",
                 ((ci_label >= 0) && (ci_label < nf)) ? fld[ci_label] : fname);
        pt.op        = op;
        pt.bytes     = (size_t)strtoull(fld[ci_b], NULL, 10);
        pt.t_mean_us = atof(fld[ci_mean]) * (ms ? 1e3 : 1.0);
        pt.t_med_us  = ((ci_med >= 0) && (ci_med < nf))
                           ? atof(fld[ci_med]) * (ms ? 1e3 : 1.0)
                           : pt.t_mean_us;
        pt.busbw     = atof(fld[ci_bus]);
        if (bc_points_add(ps, &pt) != 0) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int bc_cmp_point(const void *a, const void *b)
{
    const bc_point_t *x = a, *y = b;
    int k = strcmp(x->label, y->label);

    if (k != 0) {
        return k;
    }
    if (x->op != y->op) {
        return x->op - y->op;
    }
    return (x->bytes < y->bytes) ? -1 : (x->bytes > y->bytes);
}

/* Write "bytes t_mean_us t_median_us busbw" rows of one label and op,
 * the median over repeated rows (rounds); returns the row count. */
static int bc_write_dat(const char *path, const bc_points_t *ps,
                        const char *label, int op)
{
    double *v = malloc(sizeof(double) * 3 * (size_t)(ps->n + 1));
    int i, j, k, m, rows = 0;
    FILE *f;

    if (v == NULL) {
        return -1;
    }
    f = fopen(path, "w");
    if (f == NULL) {
        free(v);
        return -1;
    }
    for (i = 0; i < ps->n; i = j) {
        for (j = i; (j < ps->n) &&
                    (strcmp(ps->p[j].label, ps->p[i].label) == 0) &&
                    (ps->p[j].op == ps->p[i].op) &&
                    (ps->p[j].bytes == ps->p[i].bytes); j++) {
        }
        if ((strcmp(ps->p[i].label, label) != 0) || (ps->p[i].op != op)) {
            continue;
        }
        m = j - i;
        for (k = 0; k < m; k++) {
            v[k]         = ps->p[i + k].t_mean_us;
            v[m + k]     = ps->p[i + k].t_med_us;
            v[2 * m + k] = ps->p[i + k].busbw;
        }
        qsort(v, (size_t)m, sizeof(double), scomm_cli_cmp_double);
        qsort(v + m, (size_t)m, sizeof(double), scomm_cli_cmp_double);
        qsort(v + 2 * m, (size_t)m, sizeof(double), scomm_cli_cmp_double);
        fprintf(f, "%zu %.6g %.6g %.6g\n", ps->p[i].bytes,
                scomm_cli_median_sorted(v, (size_t)m),
                scomm_cli_median_sorted(v + m, (size_t)m),
                scomm_cli_median_sorted(v + 2 * m, (size_t)m));
        rows++;
    }
    fclose(f);
    free(v);
    return rows;
}

/* Run gnuplot on script; 0 ok, 1 failed, 2 gnuplot missing. */
static int bc_run_gnuplot(const char *script)
{
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int st, e;

    e = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (e != 0) {
        return (e == ENOENT) ? 2 : 1;
    }
    if (waitpid(pid, &st, 0) < 0) {
        return 1;
    }
    if (WIFEXITED(st) && (WEXITSTATUS(st) == 127)) {
        return 2;
    }
    return (WIFEXITED(st) && (WEXITSTATUS(st) == 0)) ? 0 : 1;
}

/*
 * For every op of the run: <out>/<op>_ws<N>_<stamp>_busbw.png and
 * _latency.png, scomm and the peers (median per size over repeated rows).
 */
int bc_plot(const bc_ctx_t *c)
{
    char tmpl[] = "/tmp/scomm_plot_XXXXXX", path[4400], gp[4400];
    const char *outdir = (c->o->out != NULL) ? c->o->out : ".";
    bc_points_t ps = {NULL, 0, 0};
    char labels[BC_MAX_PEERS * 8 + 1][64];
    int nl = 0, i, k, op, rc = 0, grc = 0, have[BC_MAX_PEERS * 8 + 1];
    bc_point_t pt;
    FILE *f;

    for (i = 0; i < c->o->npeer; i++) {
        if (bc_read_peer(c->o->peer_csv[i], c->size, &ps) != 0) {
            rc = 1;
        }
    }
    for (i = 0; i < c->nres; i++) {
        memset(&pt, 0, sizeof(pt));
        snprintf(pt.label, sizeof(pt.label), "scomm");
        pt.op        = c->res[i].op;
        pt.bytes     = c->res[i].bytes;
        pt.t_mean_us = c->res[i].t_mean * 1e6;
        pt.t_med_us  = c->res[i].t_med * 1e6;
        pt.busbw     = c->res[i].busbw;
        if (bc_points_add(&ps, &pt) != 0) {
            free(ps.p);
            return 1;
        }
    }
    qsort(ps.p, (size_t)ps.n, sizeof(bc_point_t), bc_cmp_point);
    /* Labels in first-seen order of the sorted list, scomm first. */
    snprintf(labels[nl++], sizeof(labels[0]), "scomm");
    for (i = 0; i < ps.n; i++) {
        for (k = 0; (k < nl) && (strcmp(labels[k], ps.p[i].label) != 0); k++) {
        }
        if ((k == nl) && (nl < (int)(sizeof(labels) / sizeof(labels[0])))) {
            snprintf(labels[nl++], sizeof(labels[0]), "%s", ps.p[i].label);
        }
    }
    if (mkdtemp(tmpl) == NULL) {
        free(ps.p);
        return 1;
    }
    if (bc_mkdirs(outdir) != 0) {
        fprintf(stderr, "scomm bench: cannot create %s\n", outdir);
        free(ps.p);
        rmdir(tmpl);
        return 1;
    }
    for (i = 0; (i < c->o->nops) && (grc != 2); i++) {
        op = c->o->ops[i];
        if (op == BC_BARRIER) {
            continue;
        }
        for (k = 0; k < nl; k++) {
            snprintf(path, sizeof(path), "%s/%d.dat", tmpl, k);
            have[k] = bc_write_dat(path, &ps, labels[k], op) > 0;
        }
        snprintf(gp, sizeof(gp), "%s/plot.gp", tmpl);
        f = fopen(gp, "w");
        if (f == NULL) {
            grc = 1;
            break;
        }
        fprintf(f, "set terminal pngcairo size 1000,650 noenhanced\n"
                "set datafile separator whitespace\n"
                "set logscale x 2\nset format x '%%.0b%%B'\n"
                "set xlabel 'size (bytes; %s)'\nset grid\n"
                "set key top left\n",
                (bc_ops[op].geo == BC_GEO_OUT_TOTAL) ? "total output" :
                (bc_ops[op].geo == BC_GEO_IN_TOTAL) ? "total input" :
                "buffer");
        fprintf(f, "set output '%s/%s_ws%d_%s_busbw.png'\n", outdir,
                bc_ops[op].name, c->size, c->stamp);
        fprintf(f, "set title '%s, %d ranks, busbw (nccl-tests), scomm over "
                "%s'\nset ylabel 'busbw (GB/s)'\nplot ", bc_ops[op].name,
                c->size, c->transport);
        for (k = 0; k < nl; k++) {
            if (have[k]) {
                fprintf(f, "%s'%s/%d.dat' using 1:4 with linespoints lw 2 "
                        "title '%s'", (k == 0) ? "" : ", ", tmpl, k,
                        labels[k]);
            }
        }
        fprintf(f, "\nset output '%s/%s_ws%d_%s_latency.png'\n", outdir,
                bc_ops[op].name, c->size, c->stamp);
        fprintf(f, "set title '%s, %d ranks, time per call (mean; dashed: "
                "median), scomm over %s'\nset logscale y 10\n"
                "set ylabel 'time (us)'\nplot ", bc_ops[op].name, c->size,
                c->transport);
        for (k = 0; k < nl; k++) {
            if (have[k]) {
                fprintf(f, "%s'%s/%d.dat' using 1:2 with linespoints lw 2 "
                        "lc %d title '%s', '%s/%d.dat' using 1:3 with lines "
                        "dt 2 lc %d notitle", (k == 0) ? "" : ", ", tmpl, k,
                        k + 1, labels[k], tmpl, k, k + 1);
            }
        }
        fputs("\n", f);
        fclose(f);
        if (!have[0]) {
            continue;
        }
        grc = bc_run_gnuplot(gp);
        if (grc == 2) {
            fprintf(stderr, "scomm bench: --plot: gnuplot is not installed "
                    "(apt-get install gnuplot-nox, or scripts/install-deps.sh "
                    "--bench); plots skipped\n");
        } else if (grc != 0) {
            fprintf(stderr, "scomm bench: --plot: gnuplot failed for %s\n",
                    bc_ops[op].name);
            rc = 1;
        } else if (!c->o->quiet) {
            printf("# plot %s/%s_ws%d_%s_{busbw,latency}.png\n", outdir,
                   bc_ops[op].name, c->size, c->stamp);
        }
    }
    for (k = 0; k < nl; k++) {
        snprintf(path, sizeof(path), "%s/%d.dat", tmpl, k);
        unlink(path);
    }
    snprintf(gp, sizeof(gp), "%s/plot.gp", tmpl);
    unlink(gp);
    rmdir(tmpl);
    free(ps.p);
    return rc;
}
