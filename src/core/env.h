/*
 * env.h - what the launcher told us: rank, world size, local rank/size and
 * the rendezvous address, from SCOMM_*, torchrun, Open MPI, MPICH/PMI or
 * Slurm variables, in that order.
 */
#ifndef SCOMM_ENV_H
#define SCOMM_ENV_H

#include <stddef.h>

typedef struct scomm_env {
    int         rank;        /* -1 when unknown */
    int         size;        /* -1 when unknown */
    int         local_rank;  /* -1 when unknown */
    int         local_size;  /* -1 when unknown */
    const char *master_addr; /* NULL when unknown */
    int         master_port; /* -1 when unknown */
    const char *source;      /* "SCOMM", "torchrun", "Open MPI", ... */
} scomm_env_t;

/* Returns 0, or -1 with a message when a variable holds no valid number. */
int scomm_env_detect(scomm_env_t *env, char *err, size_t errlen);

#endif /* SCOMM_ENV_H */
