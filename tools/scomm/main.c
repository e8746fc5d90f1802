/*
 * main.c - the scomm command-line tool: one table of subcommands, each
 * called with argv[0] its own name.
 *
 * Exit codes: 0 success, 1 failure, 2 usage error (and launch's own codes).
 * A usage error is one line on stderr (opts.h); `scomm --help`, `scomm help
 * [COMMAND]` and `scomm COMMAND --help` print usage on stdout, exit 0.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "launch.h"
#include "opts.h"
#include "scomm.h"

static void scomm_cli_usage(FILE *f)
{
    fprintf(f,
            "scomm %s - communication library for distributed LLM inference\n"
            "\n"
            "usage: scomm <command> [options]\n"
            "\n"
            "commands:\n"
            "  launch -n N [--tag-output] [--timeout SEC] [--master-port P]\n"
            "         [--bind-to core|none] [--] prog args...\n"
            "                 start N local ranks of prog\n"
            "  info [-c [--markdown]]\n"
            "                 version, transports, features; -c: every "
            "configuration\n"
            "                 variable (--markdown: as docs/env.md)\n"
            "  demo           run under launch: barrier, ping-pong, ring "
            "send/recv and\n"
            "                 every collective, verified, with a results "
            "table\n"
            "  bench p2p [-b MIN] [-e MAX] [-f FACTOR] [-w WARMUP] [-n ITERS]"
            "\n"
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
            "                 barrier)\n"
            "  bench --overlap [--fusion] ...\n"
            "                 communication/computation overlap, op fusion\n"
            "  kv-bench [--shape 8b|1b] [--tokens N] [--transport shm|tcp] "
            "[--ttft] ...\n"
            "                 KV-cache transfer between two processes\n"
            "  probe [--json] [--world]\n"
            "                 topology of this host (--world: of every "
            "rank, under\n"
            "                 launch), link matrix, recommended preset\n"
            "  tune [--quick] [-e MAX] [--out PATH]\n"
            "                 run under launch: measure every algorithm per "
            "op and size\n"
            "                 band, write the selector policy this machine "
            "and layout\n"
            "                 load at init (${XDG_CACHE_HOME:-~/.cache}/"
            "scomm/)\n"
            "  presets list | show NAME | validate FILE\n"
            "                 transport presets "
            "(config/kv_transport_presets.yaml)\n"
            "  version        print the version\n"
            "  help [COMMAND] this text, or the command's (scomm COMMAND "
            "--help)\n"
            "\n"
            "Exit status: 0 success, 1 failure, 2 usage error (one line on "
            "stderr).\n",
            scomm_version_string());
}

static void scomm_cli_version_usage(FILE *f)
{
    fprintf(f, "usage: scomm version\n"
               "print the version of scomm and of its wire protocol\n");
}

static int scomm_cli_version(int argc, char **argv)
{
    const scomm_cli_cmd_t cmd = {"version", scomm_cli_version_usage, NULL,
                                 0, 0, 0};
    int rc, first;

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    printf("scomm %s (protocol %d)\n", scomm_version_string(),
           SCOMM_PROTOCOL_VERSION);
    return 0;
}

static int scomm_cli_help(int argc, char **argv);

static const struct {
    const char *name;
    int       (*run)(int argc, char **argv);
} scomm_cli_commands[] = {
    {"launch", scomm_cli_launch},     {"info", scomm_cli_info},
    {"demo", scomm_cli_demo},         {"bench", scomm_cli_bench},
    {"kv-bench", scomm_cli_kv_bench}, {"probe", scomm_cli_probe},
    {"presets", scomm_cli_presets},   {"tune", scomm_cli_tune},
    {"version", scomm_cli_version},
    {"help", scomm_cli_help},
};

#define SCOMM_CLI_NCOMMANDS \
    (sizeof(scomm_cli_commands) / sizeof(scomm_cli_commands[0]))

static int scomm_cli_find(const char *name)
{
    size_t i;

    for (i = 0; i < SCOMM_CLI_NCOMMANDS; i++) {
        if (strcmp(name, scomm_cli_commands[i].name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void scomm_cli_help_usage(FILE *f)
{
    fprintf(f, "usage: scomm help [COMMAND]\n"
               "the list of commands, or COMMAND's usage\n");
}

/* `scomm help [COMMAND]`: COMMAND's own --help. */
static int scomm_cli_help(int argc, char **argv)
{
    const scomm_cli_cmd_t cmd = {"help", scomm_cli_help_usage, NULL, 0, 0,
                                 1};
    char help[] = "--help", *args[3];
    int rc, first, k;

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    if (first >= argc) {
        scomm_cli_usage(stdout);
        return 0;
    }
    k = scomm_cli_find(argv[first]);
    if (k < 0) {
        return scomm_cli_usage_quoted(NULL, "unknown command", argv[first],
                                      "");
    }
    args[0] = argv[first];
    args[1] = help;
    args[2] = NULL;
    return scomm_cli_commands[k].run(2, args);
}

int main(int argc, char **argv)
{
    int k;

    if (argc < 2) {
        return scomm_cli_usage_error(NULL, "missing the command");
    }
    if ((strcmp(argv[1], "-h") == 0) || (strcmp(argv[1], "--help") == 0)) {
        scomm_cli_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return scomm_cli_version(1, argv + 1);
    }
    k = scomm_cli_find(argv[1]);
    if (k < 0) {
        return scomm_cli_usage_quoted(NULL, "unknown command", argv[1], "");
    }
    return scomm_cli_commands[k].run(argc - 1, argv + 1);
}
