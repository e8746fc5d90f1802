/*
 * env.c - launcher environment detection (see env.h).
 *
 * The first family that provides both a rank and a world size wins; local
 * rank/size come from the same family when it has them (the library also
 * derives them from host identities at bootstrap, which is authoritative).
 * The master address and port come from SCOMM_MASTER_ADDR/PORT, then
 * MASTER_ADDR/MASTER_PORT, whatever the family, then default to
 * 127.0.0.1:29500.
 */
#include "env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Parse an env var as a non-negative int: 1 found, 0 absent, -1 bad. */
static int scomm_env_int(const char *name, int *out, char *err,
                         size_t errlen)
{
    const char *v = getenv(name);
    char *end     = NULL;
    long val;

    if ((v == NULL) || (*v == '\0')) {
        return 0;
    }
    errno = 0;
    val   = strtol(v, &end, 10);
    if ((errno != 0) || (*end != '\0') || (val < 0) || (val > 1 << 30)) {
        snprintf(err, errlen, "environment variable %s='%s' is not a valid "
                 "non-negative integer", name, v);
        return -1;
    }
    *out = (int)val;
    return 1;
}

int scomm_env_detect(scomm_env_t *env, char *err, size_t errlen)
{
    const scomm_env_family_t *f;
    const char *v;
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

    v = getenv("SCOMM_MASTER_ADDR");
    if ((v == NULL) || (*v == '\0')) {
        v = getenv("MASTER_ADDR");
    }
    env->master_addr = ((v != NULL) && (*v != '\0')) ? v : NULL;
    rc1 = scomm_env_int("SCOMM_MASTER_PORT", &port, err, errlen);
    if (rc1 == 0) {
        rc1 = scomm_env_int("MASTER_PORT", &port, err, errlen);
    }
    if (rc1 < 0) {
        return -1;
    }
    if (rc1 > 0) {
        if ((port < 1) || (port > 65535)) {
            snprintf(err, errlen, "master port %d is out of range 1..65535",
                     port);
            return -1;
        }
        env->master_port = port;
    }
    return 0;
}
