/*
 * bench_coll.h - `scomm bench <op|all>`: nccl-tests-style benchmark of the
 * collectives (time per call with the slowest rank counting, algbw, busbw),
 * with per-call verification, JSON/CSV/Markdown records and gnuplot plots.
 */
#ifndef SCOMM_TOOLS_BENCH_COLL_H
#define SCOMM_TOOLS_BENCH_COLL_H

#include <stdio.h>

/*
 * Run the collectives benchmark. argv[0] is "bench", argv[1] the operation
 * (a name, a comma list, or "all"), the rest options. Returns the exit
 * code: 0 success, 1 failure or wrong results under --check, 2 usage.
 */
int scomm_cli_bench_coll(int argc, char **argv);

/* Print the collectives benchmark's usage text. */
void scomm_cli_bench_coll_usage(FILE *f);

#endif /* SCOMM_TOOLS_BENCH_COLL_H */
