/*
 * bench_coll_report.c - what `scomm bench` reports: the table on stdout,
 * and the records of a run as JSON, CSV and Markdown files, per op in
 * --out (<op>_ws<N>_<YYYYmmdd_HHMMSS>.{json,csv,md}) and every record of
 * the run in one file with --csv/--json/--md FILE.
 *
 * Invariants:
 *  1. The CSV header and the JSON keys are a format (bench_coll.h note 3):
 *     the anchors' fields first, ours after, in this order; the CSV is
 *     RFC 4180 (fields with , " or a line break are quoted).
 *  2. Every JSON number is finite or null, every string escaped: the files
 *     parse whatever the selection reason says.
 *  3. A file that cannot be written is named on stderr and counted
 *     (the exit code is 1), never silently skipped.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_coll.h"

/* mkdir -p; 0 on success. */
int bc_mkdirs(const char *path)
{
    char buf[4096];
    size_t i, n = strlen(path);

    if (n == 0 || n >= sizeof(buf)) {
        return (n == 0) ? 0 : -1;
    }
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if ((buf[i] == '/') || (buf[i] == '\0')) {
            buf[i] = '\0';
            if ((mkdir(buf, 0777) != 0) && (errno != EEXIST)) {
                return -1;
            }
            buf[i] = (i == n) ? '\0' : '/';
        }
    }
    return 0;
}

/* ---- the table on stdout ------------------------------------------------- */

static const char *bc_redop_of(const bc_ctx_t *c, int op)
{
    return bc_ops[op].reduces ? scomm_redop_name(c->o->redop) : "none";
}

static const char *bc_dtype_of(const bc_ctx_t *c, int op)
{
    return (op == BC_BARRIER) ? "none" : scomm_dtype_name(c->o->dtype);
}

static int bc_root_of(const bc_ctx_t *c, int op)
{
    return bc_ops[op].rooted ? c->o->root : -1;
}

void bc_print_header(const bc_ctx_t *c, int op)
{
    const bc_opts_t *o = c->o;
    char mode[64];

    if (o->iters > 0) {
        snprintf(mode, sizeof(mode), "%ld iterations", o->iters);
    } else {
        snprintf(mode, sizeof(mode), "about %.2f s per size", o->target);
    }
    printf("#\n# scomm bench %s: %d ranks over %s, %s", bc_ops[op].name,
           c->size, c->transport, bc_dtype_of(c, op));
    if (bc_ops[op].reduces) {
        printf(" %s", scomm_redop_name(o->redop));
    }
    if (bc_ops[op].rooted) {
        printf(", root %d", o->root);
    }
    printf(", %s%s\n", mode,
           o->check ? ", --check (each call timed alone, between barriers)"
                    : "");
    printf("#%11s %11s %8s %6s %5s %20s %8s %10s %10s %8s %8s %7s\n", "size",
           "count", "type", "redop", "root", "algo", "iters", "time",
           "median", "algbw", "busbw", "#wrong");
    printf("#%11s %11s %8s %6s %5s %20s %8s %10s %10s %8s %8s %7s\n", "(B)",
           "(elements)", "", "", "", "", "", "(us)", "(us)", "(GB/s)",
           "(GB/s)", "");
}

void bc_print_row(const bc_ctx_t *c, const bc_result_t *r)
{
    char wrong[24];

    if (r->wrong >= 0) {
        snprintf(wrong, sizeof(wrong), "%lld", r->wrong);
    } else {
        snprintf(wrong, sizeof(wrong), "N/A");
    }
    printf("%12zu %11zu %8s %6s %5d %20s %8ld %10.2f %10.2f %8.3f %8.3f "
           "%7s\n", r->bytes, r->count, bc_dtype_of(c, r->op),
           bc_redop_of(c, r->op), bc_root_of(c, r->op), r->sel.algo,
           r->iters, r->t_mean * 1e6, r->t_med * 1e6, r->algbw, r->busbw,
           wrong);
    fflush(stdout);
}

/* ---- output files -------------------------------------------------------- */

static void bc_json_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', f);
    for (; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else {
                fputc(*p, f);
            }
            break;
        }
    }
    fputc('"', f);
}

static void bc_json_num(FILE *f, double x)
{
    if (isfinite(x)) {
        fprintf(f, "%.6g", x);
    } else {
        fputs("null", f);
    }
}

static void bc_csv_str(FILE *f, const char *s)
{
    const char *p;

    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (p = s; *p != '\0'; p++) {
        if (*p == '"') {
            fputc('"', f);
        }
        fputc(*p, f);
    }
    fputc('"', f);
}

static const char bc_csv_header[] =
    "bytes,latency_ms,bandwidth_gbps,busbw_gbps,algo_id,backend_kind,"
    "topology_source,world_size,op_type,data_type,warmup_iters,"
    "benchmark_iters,selection_rule_id,selection_reason,timestamp,"
    "t_median_ms,t_min_ms,t_max_ms,transport,wrong,count,redop,root\n";

void bc_write_csv(FILE *f, const bc_ctx_t *c, const bc_result_t *r, int n)
{
    int i;

    fputs(bc_csv_header, f);
    for (i = 0; i < n; i++, r++) {
        fprintf(f, "%zu,%.6g,%.6g,%.6g,", r->bytes, r->t_mean * 1e3,
                r->algbw, r->busbw);
        bc_csv_str(f, r->sel.algo);
        fprintf(f, ",native,env,%d,%s,%s,%d,%ld,", c->size,
                bc_ops[r->op].name, bc_dtype_of(c, r->op), r->warmup,
                r->iters);
        bc_csv_str(f, r->sel.rule_id);
        fputc(',', f);
        bc_csv_str(f, r->sel.reason);
        fprintf(f, ",%s,%.6g,%.6g,%.6g,%s,", r->timestamp, r->t_med * 1e3,
                r->t_min * 1e3, r->t_max * 1e3, c->transport);
        if (r->wrong >= 0) {
            fprintf(f, "%lld", r->wrong);
        }
        fprintf(f, ",%zu,%s,%d\n", r->count, bc_redop_of(c, r->op),
                bc_root_of(c, r->op));
    }
}

void bc_write_json(FILE *f, const bc_ctx_t *c, const bc_result_t *r, int n)
{
    int i;

    fputs("[\n", f);
    for (i = 0; i < n; i++, r++) {
        fprintf(f, "  {\"bytes\": %zu, \"latency_ms\": ", r->bytes);
        bc_json_num(f, r->t_mean * 1e3);
        fputs(", \"bandwidth_gbps\": ", f);
        bc_json_num(f, r->algbw);
        fputs(", \"busbw_gbps\": ", f);
        bc_json_num(f, r->busbw);
        fputs(", \"algo_id\": ", f);
        bc_json_str(f, r->sel.algo);
        fprintf(f, ", \"backend_kind\": \"native\", \"topology_source\": "
                "\"env\", \"world_size\": %d, \"op_type\": ", c->size);
        bc_json_str(f, bc_ops[r->op].name);
        fputs(", \"data_type\": ", f);
        bc_json_str(f, bc_dtype_of(c, r->op));
        fprintf(f, ", \"warmup_iters\": %d, \"benchmark_iters\": %ld, "
                "\"selection_rule_id\": ", r->warmup, r->iters);
        bc_json_str(f, r->sel.rule_id);
        fputs(", \"selection_reason\": ", f);
        bc_json_str(f, r->sel.reason);
        fputs(", \"timestamp\": ", f);
        bc_json_str(f, r->timestamp);
        fputs(", \"t_median_ms\": ", f);
        bc_json_num(f, r->t_med * 1e3);
        fputs(", \"t_min_ms\": ", f);
        bc_json_num(f, r->t_min * 1e3);
        fputs(", \"t_max_ms\": ", f);
        bc_json_num(f, r->t_max * 1e3);
        fputs(", \"transport\": ", f);
        bc_json_str(f, c->transport);
        fputs(", \"wrong\": ", f);
        if (r->wrong >= 0) {
            fprintf(f, "%lld", r->wrong);
        } else {
            fputs("null", f);
        }
        fprintf(f, ", \"count\": %zu, \"redop\": ", r->count);
        bc_json_str(f, bc_redop_of(c, r->op));
        fprintf(f, ", \"root\": %d}%s\n", bc_root_of(c, r->op),
                (i + 1 < n) ? "," : "");
    }
    fputs("]\n", f);
}

/* Markdown table; '|' in the reason is escaped. */
void bc_write_md(FILE *f, const bc_ctx_t *c, const bc_result_t *r, int n)
{
    const char *p;
    int i, last = -1;

    for (i = 0; i < n; i++, r++) {
        if (r->op != last) {
            fprintf(f, "%s## %s: %d ranks over %s, %s%s%s\n\n",
                    (last < 0) ? "" : "\n", bc_ops[r->op].name, c->size,
                    c->transport, bc_dtype_of(c, r->op),
                    bc_ops[r->op].reduces ? " " : "",
                    bc_ops[r->op].reduces ? scomm_redop_name(c->o->redop)
                                          : "");
            fputs("| bytes | count | algo | iters | t_mean us | t_median us "
                  "| t_min us | t_max us | algbw GB/s | busbw GB/s | wrong | "
                  "rule | reason |\n", f);
            fputs("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
                  "---|---|\n", f);
            last = r->op;
        }
        fprintf(f, "| %zu | %zu | %s | %ld | %.3f | %.3f | %.3f | %.3f | "
                "%.3f | %.3f | ", r->bytes, r->count, r->sel.algo, r->iters,
                r->t_mean * 1e6, r->t_med * 1e6, r->t_min * 1e6,
                r->t_max * 1e6, r->algbw, r->busbw);
        if (r->wrong >= 0) {
            fprintf(f, "%lld", r->wrong);
        } else {
            fputs("n/a", f);
        }
        fprintf(f, " | %s | ", r->sel.rule_id);
        for (p = r->sel.reason; *p != '\0'; p++) {
            if (*p == '|') {
                fputc('\\', f);
            }
            fputc(*p, f);
        }
        fputs(" |\n", f);
    }
}

int bc_write_file(const char *path, bc_writer_t w, const bc_ctx_t *c,
                  const bc_result_t *r, int n)
{
    FILE *f = fopen(path, "w");
    int bad;

    if (f == NULL) {
        fprintf(stderr, "scomm bench: cannot write %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    w(f, c, r, n);
    bad = ferror(f);
    bad |= (fclose(f) != 0);
    if (bad) {
        fprintf(stderr, "scomm bench: error writing %s\n", path);
    }
    return bad ? 1 : 0;
}

/* Per-op files <out>/<op>_ws<N>_<stamp>.{json,csv,md}. */
int bc_write_op_files(const bc_ctx_t *c, const bc_result_t *r, int n)
{
    char path[4200];
    int rc = 0;

    if ((c->o->out == NULL) || (n == 0)) {
        return 0;
    }
    if (bc_mkdirs(c->o->out) != 0) {
        fprintf(stderr, "scomm bench: cannot create %s: %s\n", c->o->out,
                strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s_ws%d_%s.json", c->o->out,
             bc_ops[r->op].name, c->size, c->stamp);
    rc |= bc_write_file(path, bc_write_json, c, r, n);
    snprintf(path, sizeof(path), "%s/%s_ws%d_%s.csv", c->o->out,
             bc_ops[r->op].name, c->size, c->stamp);
    rc |= bc_write_file(path, bc_write_csv, c, r, n);
    snprintf(path, sizeof(path), "%s/%s_ws%d_%s.md", c->o->out,
             bc_ops[r->op].name, c->size, c->stamp);
    rc |= bc_write_file(path, bc_write_md, c, r, n);
    if ((rc == 0) && !c->o->quiet) {
        printf("# wrote %s/%s_ws%d_%s.{json,csv,md}\n", c->o->out,
               bc_ops[r->op].name, c->size, c->stamp);
    }
    return rc;
}
