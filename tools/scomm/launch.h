/*
 * launch.h - the `scomm launch` subcommand: start N local ranks of a program
 * with the SCOMM_* and torchrun environment, supervise them, and turn their
 * exit statuses into one exit code.
 */
#ifndef SCOMM_TOOLS_LAUNCH_H
#define SCOMM_TOOLS_LAUNCH_H

/*
 * Run `scomm launch`. argv[0] is "launch" and the rest are its arguments:
 *
 *     launch -n N [--tag-output] [--timeout SEC] [--master-port P] [--]
 *            prog args...
 *
 * Returns the process exit code: 0 when every rank exited 0, 1 when the
 * first failing rank exited non-zero (or the launcher itself failed),
 * 128+S when the first failing rank was killed by signal S, 124 on
 * --timeout, 2 on a usage error. The usage text printed by `launch --help`
 * says the same.
 */
int scomm_cli_launch(int argc, char **argv);

#endif /* SCOMM_TOOLS_LAUNCH_H */
