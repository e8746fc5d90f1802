/*
 * test_rdma_unavailable.c - on a machine without an RDMA device (or a
 * build without libibverbs), SCOMM_TRANSPORTS=rdma alone makes scomm_init
 * fail at once with SCOMM_ERR_UNSUPPORTED and a message naming the missing
 * device, before any network use (no hang, no crash); and rdma listed with
 * another transport is skipped, so that one is used. Skips (exit 77) with
 * a visible message where /sys/class/infiniband lists a device: there the
 * multi-rank tests are the ones to run (docs/rdma.md).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scomm.h"
#include "st_test.h"

static int rdma_devices_present(char *name, size_t len)
{
    DIR *d = opendir("/sys/class/infiniband");
    struct dirent *e;
    int n = 0;

    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            snprintf(name, len, "%s", e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    scomm_init_opts_t o;
    scomm_comm_t *comm = NULL;
    const char *err;
    char dev[256], msg[320];
    double t0;

    if (rdma_devices_present(dev, sizeof(dev)) > 0) {
        snprintf(msg, sizeof(msg), "RDMA device %s present: the "
                 "unavailable path cannot be tested here", dev);
        ST_SKIP(msg);
    }
    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_MASTER_ADDR |
                   SCOMM_INIT_FIELD_MASTER_PORT | SCOMM_INIT_FIELD_TIMEOUT |
                   SCOMM_INIT_FIELD_JOB_TOKEN;
    o.rank        = 0;
    o.world_size  = 2;
    o.master_addr = "127.0.0.1";
    o.master_port = 1; /* never reached: init fails before bootstrap */
    o.timeout_ms  = 20000;
    o.job_token   = "rdma-unavailable-test";

    /* 1. rdma alone: unsupported, naming the device, at once. */
    setenv("SCOMM_TRANSPORTS", "rdma", 1);
    t0 = now_s();
    ST_ASSERT_STATUS(scomm_init(&o, &comm), SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(now_s() - t0 < 5.0);
    ST_ASSERT(comm == NULL);
    err = scomm_last_error();
    ST_ASSERT(err != NULL);
    printf("scomm_init with SCOMM_TRANSPORTS=rdma: %s\n", err);
    ST_ASSERT(strstr(err, "rdma") != NULL);
    ST_ASSERT(strstr(err, "device") != NULL);

    /* 2. The same through the environment-only entry point. */
    setenv("SCOMM_RANK", "1", 1);
    setenv("SCOMM_WORLD_SIZE", "2", 1);
    setenv("SCOMM_MASTER_ADDR", "127.0.0.1", 1);
    setenv("SCOMM_MASTER_PORT", "1", 1);
    ST_ASSERT_STATUS(scomm_init_from_env(&comm), SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(strstr(scomm_last_error(), "device") != NULL);

    /* 3. rdma next to tcp: skipped, tcp carries a world of one. */
    setenv("SCOMM_TRANSPORTS", "rdma,tcp", 1);
    o.world_size  = 1;
    o.master_port = 0;
    o.field_mask &= ~(uint64_t)SCOMM_INIT_FIELD_MASTER_PORT;
    unsetenv("SCOMM_MASTER_PORT");
    ST_ASSERT_OK(scomm_init(&o, &comm));
    ST_ASSERT(comm != NULL);
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    printf("test_rdma_unavailable: all passed\n");
    return 0;
}
