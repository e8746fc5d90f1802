/*
 * test_env.c - launcher environment detection and the world's knobs:
 * precedence SCOMM_* > torchrun > Open MPI > PMI > Slurm, bad numbers
 * refused with the variable's name, config file errors with file:line, and
 * scomm_init's argument checks before any network use. The registry itself
 * is test_config.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/env.h"
#include "scomm.h"
#include "st_test.h"

static const char *vars[] = {
    "SCOMM_RANK", "SCOMM_WORLD_SIZE", "SCOMM_LOCAL_RANK", "SCOMM_LOCAL_SIZE",
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_RANK",
    "PMI_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
    "SCOMM_MASTER_ADDR", "SCOMM_MASTER_PORT", "MASTER_ADDR", "MASTER_PORT",
    "SCOMM_CONF_FILE", "SCOMM_TIMEOUT_MS", NULL
};

static void clear(void)
{
    int i;

    for (i = 0; vars[i] != NULL; i++) {
        unsetenv(vars[i]);
    }
}

static void detect(scomm_env_t *e)
{
    char err[256];

    ST_ASSERT_EQ(scomm_env_detect(e, err, sizeof(err)), 0);
}

int main(void)
{
    char err[512], path[] = "/tmp/scomm-conf-XXXXXX";
    scomm_config_t cfg;
    scomm_comm_t *comm = NULL;
    scomm_init_opts_t o;
    scomm_env_t e;
    FILE *f;
    int fd, passed = 0;

    clear();
    detect(&e);
    ST_ASSERT_EQ(e.rank, -1);
    passed++;

    setenv("SLURM_PROCID", "3", 1);
    setenv("SLURM_NTASKS", "8", 1);
    setenv("SLURM_LOCALID", "1", 1);
    detect(&e);
    ST_ASSERT((e.rank == 3) && (e.size == 8) && (e.local_rank == 1));
    ST_ASSERT(strcmp(e.source, "Slurm") == 0);
    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "4", 1);
    detect(&e);
    ST_ASSERT((e.rank == 2) && (e.size == 4));
    ST_ASSERT(strcmp(e.source, "MPICH/PMI") == 0);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    detect(&e);
    ST_ASSERT((e.rank == 1) && (e.size == 2) && (e.local_size == 2));
    ST_ASSERT(strcmp(e.source, "Open MPI") == 0);
    setenv("RANK", "5", 1);
    setenv("WORLD_SIZE", "6", 1);
    setenv("LOCAL_WORLD_SIZE", "3", 1);
    setenv("MASTER_ADDR", "10.0.0.1", 1);
    setenv("MASTER_PORT", "1234", 1);
    detect(&e);
    ST_ASSERT((e.rank == 5) && (e.size == 6) && (e.local_size == 3));
    ST_ASSERT((e.local_rank == -1) && (e.master_port == 1234));
    ST_ASSERT(strcmp(e.master_addr, "10.0.0.1") == 0);
    ST_ASSERT(strcmp(e.source, "torchrun") == 0);
    setenv("SCOMM_RANK", "0", 1);
    setenv("SCOMM_WORLD_SIZE", "1", 1);
    setenv("SCOMM_MASTER_PORT", "4321", 1);
    detect(&e);
    ST_ASSERT((e.rank == 0) && (e.size == 1) && (e.master_port == 4321));
    ST_ASSERT(strcmp(e.source, "SCOMM") == 0);
    passed++;

    setenv("SCOMM_RANK", "x1", 1);
    ST_ASSERT_EQ(scomm_env_detect(&e, err, sizeof(err)), -1);
    ST_ASSERT(strstr(err, "SCOMM_RANK") != NULL);
    setenv("SCOMM_RANK", "0", 1);
    setenv("SCOMM_MASTER_PORT", "70000", 1);
    ST_ASSERT_EQ(scomm_env_detect(&e, err, sizeof(err)), -1);
    ST_ASSERT(strstr(err, "70000") != NULL);
    passed++;

    clear();
    ST_ASSERT_EQ(scomm_config_load(&cfg, err, sizeof(err)), SCOMM_OK);
    ST_ASSERT_EQ(cfg.timeout_ms, 300000);
    setenv("SCOMM_TIMEOUT_MS", "soon", 1);
    ST_ASSERT_EQ(scomm_config_load(&cfg, err, sizeof(err)),
                 SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(err, "SCOMM_TIMEOUT_MS='soon'") != NULL);
    unsetenv("SCOMM_TIMEOUT_MS");
    fd = mkstemp(path);
    ST_ASSERT(fd >= 0);
    f = fdopen(fd, "w");
    fprintf(f, "# comment\nSCOMM_TCP_NSOCKS=3\n\nSCOMM_NO_SUCH=1\n");
    fclose(f);
    setenv("SCOMM_CONF_FILE", path, 1);
    ST_ASSERT_EQ(scomm_config_load(&cfg, err, sizeof(err)),
                 SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(err, ":4:") != NULL);
    ST_ASSERT(strstr(err, "SCOMM_NO_SUCH") != NULL);
    f = fopen(path, "w");
    fprintf(f, "SCOMM_TCP_NSOCKS=3\nSCOMM_SPIN_US=7\n");
    fclose(f);
    setenv("SCOMM_SPIN_US", "9", 1);
    ST_ASSERT_EQ(scomm_config_load(&cfg, err, sizeof(err)), SCOMM_OK);
    ST_ASSERT_EQ(cfg.tcp_nsocks, 3);  /* from the file */
    ST_ASSERT_EQ(cfg.spin_us, 9);     /* environment beats the file */
    unsetenv("SCOMM_SPIN_US");
    unlink(path);
    clear();
    passed++;

    /* scomm_init argument checks: no network is touched. */
    ST_ASSERT_STATUS(scomm_init(NULL, NULL), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_init(NULL, &comm), SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(scomm_last_error(), "no rank") != NULL);
    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE;
    o.rank       = 4;
    o.world_size = 4;
    ST_ASSERT_STATUS(scomm_init(&o, &comm), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_last_error(), "rank 4") != NULL);
    o.rank       = 0;
    o.world_size = 0;
    ST_ASSERT_STATUS(scomm_init(&o, &comm), SCOMM_ERR_INVALID_ARG);
    o.world_size  = 1;
    o.field_mask |= SCOMM_INIT_FIELD_TIMEOUT;
    o.timeout_ms  = -5;
    ST_ASSERT_STATUS(scomm_init(&o, &comm), SCOMM_ERR_INVALID_ARG);
    o.field_mask &= ~(uint64_t)SCOMM_INIT_FIELD_TIMEOUT;
    o.field_mask |= SCOMM_INIT_FIELD_BACKEND;
    /* A vendor backend whose library is missing: unsupported, naming it
     * (pinned to a path that cannot exist: a machine may have libnccl). */
    setenv("SCOMM_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
    o.backend     = "nccl";
    ST_ASSERT_STATUS(scomm_init(&o, &comm), SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(strstr(scomm_last_error(), "/nonexistent/libnccl.so.2") !=
              NULL);
    ST_ASSERT(comm == NULL);
    unsetenv("SCOMM_NCCL_LIBRARY");
    o.backend     = "nosuchbackend";
    ST_ASSERT(SCOMM_IS_ERR(scomm_init(&o, &comm)));
    ST_ASSERT(strstr(scomm_last_error(), "nosuchbackend") != NULL);
    ST_ASSERT(comm == NULL);
    /* World of one: no rendezvous at all. */
    o.field_mask &= ~(uint64_t)SCOMM_INIT_FIELD_BACKEND;
    ST_ASSERT_OK(scomm_init(&o, &comm));
    ST_ASSERT_EQ(scomm_size(comm), 1);
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    ST_ASSERT_STATUS(scomm_comm_destroy(comm), SCOMM_ERR_INVALID_USAGE);
    passed++;

    printf("%d passed, 0 failed\n", passed);
    return 0;
}
