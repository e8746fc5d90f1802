/*
 * main.c - the scomm command-line tool: launch, info, demo, bench.
 *
 * Exit codes: 0 success, 1 failure, 2 usage error (and launch's own codes).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "launch.h"
#include "scomm.h"

static void scomm_cli_usage(FILE *f)
{
    fprintf(f,
            "scomm %s - communication library for distributed LLM inference\n"
            "\n"
            "usage: scomm <command> [options]\n"
            "\n"
            "commands:\n"
            "  launch -n N [--tag-output] [--timeout SEC] [--] prog args...\n"
            "                 start N local ranks of prog (see launch --help)\n"
            "  info [-c]      version, transports; -c: every configuration "
            "knob\n"
            "  demo [--sizes LIST]\n"
            "                 run under launch: barrier, ping-pong, ring "
            "send/recv,\n"
            "                 verified, with a results table\n"
            "  bench p2p [-b MIN] [-e MAX] [-f FACTOR] [-w WARMUP] [-n ITERS]\n"
            "                 point-to-point latency and bandwidth between "
            "ranks 0 and 1\n"
            "  bench <op|op,op|all> [-b MIN] [-e MAX] [-f FACTOR] [-d DTYPE] "
            "[-o REDOP]\n"
            "        [-w WARMUP] [-n ITERS] [--target SEC] [--check] "
            "[--algo NAME]\n"
            "        [--out DIR] [--csv|--json|--md FILE] [--plot] "
            "[--peer-csv FILE]...\n"
            "                 collectives, nccl-tests style (ops: all_reduce "
            "all_gather\n"
            "                 reduce_scatter broadcast reduce all_to_all "
            "gather scatter\n"
            "                 barrier); see `scomm bench --help`\n"
            "  kv-bench [--shape 8b|1b] [--tokens N] [--transport shm|tcp] "
            "[--ttft] ...\n"
            "                 KV-cache transfer between two processes; "
            "see --help\n"
            "  probe [--json] [--world]\n"
            "                 topology of this host (--world: of every "
            "rank, under\n"
            "                 launch), link matrix, recommended preset\n"
            "  presets list | show NAME | validate FILE\n"
            "                 transport presets "
            "(config/kv_transport_presets.yaml)\n"
            "  version        print the version\n",
            scomm_version_string());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        scomm_cli_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "launch") == 0) {
        return scomm_cli_launch(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "info") == 0) {
        return scomm_cli_info(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "demo") == 0) {
        return scomm_cli_demo(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "bench") == 0) {
        return scomm_cli_bench(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "kv-bench") == 0) {
        return scomm_cli_kv_bench(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "probe") == 0) {
        return scomm_cli_probe(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "presets") == 0) {
        return scomm_cli_presets(argc - 1, argv + 1);
    }
    if ((strcmp(argv[1], "version") == 0) ||
        (strcmp(argv[1], "--version") == 0)) {
        printf("scomm %s (protocol %d)\n", scomm_version_string(),
               SCOMM_PROTOCOL_VERSION);
        return 0;
    }
    if ((strcmp(argv[1], "help") == 0) || (strcmp(argv[1], "-h") == 0) ||
        (strcmp(argv[1], "--help") == 0)) {
        scomm_cli_usage(stdout);
        return 0;
    }
    fprintf(stderr, "scomm: unknown command '%s'\n\n", argv[1]);
    scomm_cli_usage(stderr);
    return 2;
}
