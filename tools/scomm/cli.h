/*
 * cli.h - subcommands of the scomm command-line tool.
 */
#ifndef SCOMM_TOOLS_CLI_H
#define SCOMM_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>

int scomm_cli_info(int argc, char **argv);
int scomm_cli_demo(int argc, char **argv);
int scomm_cli_bench(int argc, char **argv);
/* `scomm bench --overlap [--fusion]` (bench_overlap.c). */
int scomm_cli_bench_overlap(int argc, char **argv);
int scomm_cli_kv_bench(int argc, char **argv);
int scomm_cli_probe(int argc, char **argv);
int scomm_cli_presets(int argc, char **argv);
/* `scomm tune` (tune.c). */
int scomm_cli_tune(int argc, char **argv);

/* Shared helpers. */
double scomm_cli_now(void);
void scomm_cli_fmt_size(char *out, size_t outlen, size_t bytes);
/* qsort comparator of doubles, ascending. */
int scomm_cli_cmp_double(const void *a, const void *b);
/* Median of n > 0 sorted values: the mean of the middle two when n is even. */
double scomm_cli_median_sorted(const double *v, size_t n);
/* Deterministic pattern for verifying transfers. */
void scomm_cli_fill(void *buf, size_t bytes, uint64_t seed);
size_t scomm_cli_check(const void *buf, size_t bytes, uint64_t seed);

#endif /* SCOMM_TOOLS_CLI_H */
