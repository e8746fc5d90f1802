/*
 * env.c - launcher environment detection (see env.h), and the launcher
 * protocol's variables as a table of the registry (core/config.h).
 *
 * The first family that provides both a rank and a world size wins; local
 * rank/size come from the same family when it has them (the library also
 * derives them from host identities at bootstrap, which is authoritative).
 * The master address and port come from SCOMM_MASTER_ADDR/PORT, then
 * MASTER_ADDR/MASTER_PORT, whatever the family, then default to
 * 127.0.0.1:29500.
 */
#include "env.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "module.h"
#include "scomm_int.h"
#include "util.h"

typedef struct scomm_env_family {
    const char *source;
    const char *rank;
    const char *size;
    const char *local_rank;
    const char *local_size;
} scomm_env_family_t;

static const scomm_env_family_t scomm_env_families[] = {
    {"SCOMM", "SCOMM_RANK", "SCOMM_WORLD_SIZE", "SCOMM_LOCAL_RANK",
     "SCOMM_LOCAL_SIZE"},
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
     "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"MPICH/PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID",
     "MPI_LOCALNRANKS"},
    {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
     "SLURM_NTASKS_PER_NODE"},
};

/* One rank-like row: a per-process integer from the launcher. */
#define SCOMM_ENV_INT_ROW(_name, _help)                                    \
    {.name = _name, .defval = "", .type = SCOMM_PARAM_INT, .min = 0,       \
     .max = 1 << 30, .flags = SCOMM_PARAM_F_ENV_ONLY, .help = _help}

static const scomm_param_t scomm_launcher_params[] = {
    SCOMM_ENV_INT_ROW("SCOMM_RANK", "this process's rank (scomm launch); "
                      "first of the families SCOMM, torchrun, Open MPI, "
                      "MPICH/PMI, Slurm that gives a rank and a size"),
    SCOMM_ENV_INT_ROW("SCOMM_WORLD_SIZE", "number of ranks (scomm launch)"),
    SCOMM_ENV_INT_ROW("SCOMM_LOCAL_RANK", "rank on this host (scomm "
                      "launch); bootstrap's host grouping is authoritative"),
    SCOMM_ENV_INT_ROW("SCOMM_LOCAL_SIZE", "ranks on this host (scomm "
                      "launch)"),
    {.name = "SCOMM_MASTER_ADDR", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = SCOMM_ADDR_MAX + 15, /* w->master_addr */
     .help = "address of rank 0's rendezvous; then MASTER_ADDR, then "
             "127.0.0.1"},
    {.name = "SCOMM_MASTER_PORT", .defval = "", .type = SCOMM_PARAM_INT,
     .min = 1, .max = 65535,
     .help = "port of rank 0's rendezvous; then MASTER_PORT, then 29500"},
    {.name = "SCOMM_JOB_TOKEN", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = SCOMM_TOKEN_MAX - 1,
     .help = "shared secret every rank must present at bootstrap"},
    SCOMM_ENV_INT_ROW("RANK", "torchrun: rank"),
    SCOMM_ENV_INT_ROW("WORLD_SIZE", "torchrun: number of ranks"),
    SCOMM_ENV_INT_ROW("LOCAL_RANK", "torchrun: rank on this host"),
    SCOMM_ENV_INT_ROW("LOCAL_WORLD_SIZE", "torchrun: ranks on this host"),
    {.name = "MASTER_ADDR", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = SCOMM_ADDR_MAX + 15, .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "torchrun: address of the rendezvous"},
    {.name = "MASTER_PORT", .defval = "", .type = SCOMM_PARAM_INT,
     .min = 1, .max = 65535, .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "torchrun: port of the rendezvous"},
    SCOMM_ENV_INT_ROW("OMPI_COMM_WORLD_RANK", "Open MPI: rank"),
    SCOMM_ENV_INT_ROW("OMPI_COMM_WORLD_SIZE", "Open MPI: number of ranks"),
    SCOMM_ENV_INT_ROW("OMPI_COMM_WORLD_LOCAL_RANK",
                      "Open MPI: rank on this host"),
    SCOMM_ENV_INT_ROW("OMPI_COMM_WORLD_LOCAL_SIZE",
                      "Open MPI: ranks on this host"),
    SCOMM_ENV_INT_ROW("PMI_RANK", "MPICH/PMI: rank"),
    SCOMM_ENV_INT_ROW("PMI_SIZE", "MPICH/PMI: number of ranks"),
    SCOMM_ENV_INT_ROW("MPI_LOCALRANKID", "MPICH/PMI: rank on this host"),
    SCOMM_ENV_INT_ROW("MPI_LOCALNRANKS", "MPICH/PMI: ranks on this host"),
    SCOMM_ENV_INT_ROW("SLURM_PROCID", "Slurm: rank"),
    SCOMM_ENV_INT_ROW("SLURM_NTASKS", "Slurm: number of ranks"),
    SCOMM_ENV_INT_ROW("SLURM_LOCALID", "Slurm: rank on this host"),
    SCOMM_ENV_INT_ROW("SLURM_NTASKS_PER_NODE", "Slurm: ranks on this host"),
};

const scomm_module_t scomm_module_launcher = {
    .name    = "launcher",
    .params  = scomm_launcher_params,
    .nparams = SCOMM_ARRAY_SIZE(scomm_launcher_params),
};

/* The launcher's integer name: 1 found, 0 absent, -1 bad (err says). */
static int scomm_env_int(const char *name, int *out, char *err,
                         size_t errlen)
{
    scomm_pval_t v;

    if (scomm_param_get(name, NULL, &v, err, errlen) != SCOMM_OK) {
        return -1;
    }
    if (v.src == SCOMM_PARAM_SRC_DEFAULT) {
        return 0;
    }
    *out = (int)v.i;
    return 1;
}

int scomm_env_detect(scomm_env_t *env, char *err, size_t errlen)
{
    const scomm_env_family_t *f;
    scomm_pval_t addr;
    size_t i;
    int r, s, rc1, rc2, port;

    env->rank        = -1;
    env->size        = -1;
    env->local_rank  = -1;
    env->local_size  = -1;
    env->master_addr = NULL;
    env->master_port = -1;
    env->source      = "none";

    for (i = 0; i < sizeof(scomm_env_families) /
                        sizeof(scomm_env_families[0]); i++) {
        f   = &scomm_env_families[i];
        rc1 = scomm_env_int(f->rank, &r, err, errlen);
        rc2 = scomm_env_int(f->size, &s, err, errlen);
        if ((rc1 < 0) || (rc2 < 0)) {
            return -1;
        }
        if ((rc1 == 0) || (rc2 == 0)) {
            continue;
        }
        env->rank   = r;
        env->size   = s;
        env->source = f->source;
        if ((scomm_env_int(f->local_rank, &env->local_rank, err,
                           errlen) < 0) ||
            (scomm_env_int(f->local_size, &env->local_size, err,
                           errlen) < 0)) {
            return -1;
        }
        break;
    }

    if ((scomm_param_get("SCOMM_MASTER_ADDR", NULL, &addr, err, errlen) !=
         SCOMM_OK) ||
        ((addr.src == SCOMM_PARAM_SRC_DEFAULT) &&
         (scomm_param_get("MASTER_ADDR", NULL, &addr, err, errlen) !=
          SCOMM_OK))) {
        return -1;
    }
    env->master_addr = (addr.text[0] != '\0') ? addr.text : NULL;
    rc1 = scomm_env_int("SCOMM_MASTER_PORT", &port, err, errlen);
    if (rc1 == 0) {
        rc1 = scomm_env_int("MASTER_PORT", &port, err, errlen);
    }
    if (rc1 < 0) {
        return -1;
    }
    if (rc1 > 0) {
        env->master_port = port;
    }
    return 0;
}
