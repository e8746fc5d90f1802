/*
 * launch.h - the `scomm launch` subcommand: start this host's ranks of a
 * program (N local ranks, or with --nnodes one host's share of a multi-host
 * job) with the SCOMM_* and torchrun environment, supervise them, and turn
 * their exit statuses into one exit code.
 */
#ifndef SCOMM_TOOLS_LAUNCH_H
#define SCOMM_TOOLS_LAUNCH_H

/*
 * Run `scomm launch`. argv[0] is "launch" and the rest are its arguments:
 *
 *     launch -n N [--tag-output] [--timeout SEC] [--master-port P]
 *            [--bind-to core|numa|none] [--] prog args...
 *     launch --nnodes N --node-rank R --master-addr A --master-port P
 *            --nproc-per-node M [...] [--] prog args...
 *
 * Returns the process exit code: 0 when every rank exited 0, 1 when the
 * first failing rank exited non-zero (or the launcher itself failed),
 * 128+S when the first failing rank was killed by signal S, 124 on
 * --timeout, 2 on a usage error. The usage text printed by `launch --help`
 * says the same.
 */
int scomm_cli_launch(int argc, char **argv);

#endif /* SCOMM_TOOLS_LAUNCH_H */
