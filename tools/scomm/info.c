/*
 * info.c - `scomm info`: version, transports, and with -c every
 * configuration knob with its default and help (the same table the library
 * reads, so this is always in sync).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/config.h"
#include "scomm.h"

int scomm_cli_info(int argc, char **argv)
{
    size_t i;

    printf("scomm %s, protocol %d\n", scomm_version_string(),
           SCOMM_PROTOCOL_VERSION);
    printf("transports: shm (POSIX shared memory, process_vm_readv), tcp\n");
    printf("backends:   native\n");
    if ((argc > 1) && (strcmp(argv[1], "-c") == 0)) {
        printf("\nconfiguration (environment variable, default, meaning):\n");
        for (i = 0; i < scomm_nparams; i++) {
            printf("  SCOMM_%-18s %-9s %s\n", scomm_params[i].name,
                   (scomm_params[i].defval[0] != '\0')
                       ? scomm_params[i].defval : "\"\"",
                   scomm_params[i].help);
        }
        printf("  %-24s %-9s %s\n", "SCOMM_LOG_LEVEL", "warn",
               "none, error, warn, info, debug, trace");
        printf("  %-24s %-9s %s\n", "SCOMM_LOG_SUBSYS", "all",
               "comma list of subsystems, ^ excludes");
        printf("  %-24s %-9s %s\n", "SCOMM_LOG_FILE", "\"\"",
               "log to this file (%h host, %p pid) instead of stderr");
        printf("  %-24s %-9s %s\n", "SCOMM_CONF_FILE", "\"\"",
               "file of SCOMM_NAME=value lines (below the environment)");
        printf("  %-24s %-9s %s\n", "SCOMM_JOB_TOKEN", "\"\"",
               "shared secret every rank must present at bootstrap");
    }
    return 0;
}
