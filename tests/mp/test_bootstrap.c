/*
 * test_bootstrap.c - the rendezvous's failure paths, with real processes:
 *   missing: world of 3, rank 2 never starts: ranks 0 and 1 get
 *            SCOMM_ERR_TIMED_OUT naming rank 2, within the timeout + grace;
 *   token:   an intruder with a wrong job token claims rank 1 before the
 *            real rank 1: it gets SCOMM_ERR_ACCESS_DENIED, the job goes on;
 *   version: an intruder speaking protocol version 99 claims rank 1: it
 *            gets SCOMM_ERR_PROTOCOL naming both versions, the job goes on.
 * Run with -n 3 (the third process plays the missing rank or the intruder).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int missing(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    scomm_status_t s;
    double t0;

    (void)size;
    (void)arg;
    if (rank == 2) {
        return 0; /* the rank that never shows up */
    }
    setenv("SCOMM_TIMEOUT_MS", "1500", 1);
    t0 = now_s();
    s  = scomm_init_from_env(&comm);
    ST_ASSERT_STATUS(s, SCOMM_ERR_TIMED_OUT);
    ST_ASSERT(comm == NULL);
    fprintf(stderr, "rank %d: %s\n", rank, scomm_last_error());
    ST_ASSERT(strstr(scomm_last_error(), "missing rank(s) 2") != NULL);
    ST_ASSERT(now_s() - t0 < 1.5 + 4.0);
    return 0;
}

static int intruder(int rank, int size, void *arg)
{
    const char *kind = arg;
    scomm_comm_t *comm = NULL;
    scomm_status_t s;

    (void)size;
    setenv("SCOMM_WORLD_SIZE", "2", 1);
    setenv("SCOMM_TIMEOUT_MS", "10000", 1);
    if (rank == 2) {
        setenv("SCOMM_RANK", "1", 1);
        if (strcmp(kind, "token") == 0) {
            setenv("SCOMM_JOB_TOKEN", "not-the-job-token", 1);
        } else {
            setenv("SCOMM_TEST_PROTOCOL_VERSION", "99", 1);
        }
        s = scomm_init_from_env(&comm);
        fprintf(stderr, "intruder: %s\n", scomm_last_error());
        if (strcmp(kind, "token") == 0) {
            ST_ASSERT_STATUS(s, SCOMM_ERR_ACCESS_DENIED);
            ST_ASSERT(strstr(scomm_last_error(), "token") != NULL);
        } else {
            ST_ASSERT_STATUS(s, SCOMM_ERR_PROTOCOL);
            ST_ASSERT(strstr(scomm_last_error(), "version 99") != NULL);
        }
        return 0;
    }
    if (rank == 1) {
        usleep(500000); /* let the intruder knock first */
    }
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_EQ(scomm_size(comm), 2);
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    (void)argc;
    (void)argv;
    rc = st_run_ranks(3, missing, NULL, 30);
    if (rc != 0) {
        fprintf(stderr, "missing-rank case failed\n");
        return rc;
    }
    rc = st_run_ranks(3, intruder, "token", 30);
    if (rc != 0) {
        fprintf(stderr, "wrong-token case failed\n");
        return rc;
    }
    rc = st_run_ranks(3, intruder, "version", 30);
    if (rc != 0) {
        fprintf(stderr, "wrong-version case failed\n");
        return rc;
    }
    printf("3 passed, 0 failed\n");
    return 0;
}
