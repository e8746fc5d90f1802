/*
 * test_bootstrap.c - the rendezvous's failure paths, with real processes:
 *   missing: world of 3, rank 2 never starts: ranks 0 and 1 get
 *            SCOMM_ERR_TIMED_OUT naming rank 2, within the timeout + grace;
 *   token:   an intruder with a wrong job token claims rank 1 before the
 *            real rank 1: it gets SCOMM_ERR_ACCESS_DENIED, the job goes on;
 *   version: an intruder speaking protocol version 99 claims rank 1: it
 *            gets SCOMM_ERR_PROTOCOL naming both versions, the job goes on;
 *   failed:  rank 1, then rank 0, cannot join (its tcp transport fails to
 *            open: SCOMM_TCP_IFNAME names no interface): the others, one of them arriving after the
 *            failure, get SCOMM_ERR_PEER_LOST naming that rank and its
 *            reason within seconds, not at their 30 s deadline.
 * Run with -n 3 (the third process plays the missing rank or the intruder).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

/* Strays knock on rank 0's store while the job forms: one sends garbage,
 * one connects and says nothing, one sends a huge length. The job must
 * form anyway and the strays must be dropped. */
static int stray_conn(int port, const void *data, size_t len)
{
    struct sockaddr_in sa;
    int fd, i;

    for (i = 0; i < 200; i++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family      = AF_INET;
        sa.sin_port        = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            if (len > 0) {
                (void)!write(fd, data, len);
            }
            return fd;
        }
        close(fd);
        usleep(10000);
    }
    return -1;
}

static int strays(int rank, int size, void *arg)
{
    static const unsigned char huge[16] = {'S', 'C', 'M', 'B', 1, 0, 0, 0,
                                           1, 0, 0, 0, 0xff, 0xff, 0xff,
                                           0x7f};
    scomm_comm_t *comm = NULL;
    int port = atoi(getenv("SCOMM_MASTER_PORT"));
    int fds[3];
    char junk[64];

    (void)size;
    (void)arg;
    setenv("SCOMM_WORLD_SIZE", "2", 1);
    setenv("SCOMM_TIMEOUT_MS", "10000", 1);
    if (rank == 2) {
        memset(junk, 'x', sizeof(junk));
        fds[0] = stray_conn(port, junk, sizeof(junk));
        fds[1] = stray_conn(port, NULL, 0);
        fds[2] = stray_conn(port, huge, sizeof(huge));
        ST_ASSERT((fds[0] >= 0) && (fds[1] >= 0) && (fds[2] >= 0));
        sleep(2); /* keep them open while the job forms */
        return 0;
    }
    if (rank == 1) {
        usleep(500000);
    }
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

/* arg: the rank that cannot join, as text. */
static int failed(int rank, int size, void *arg)
{
    int bad = atoi(arg);
    scomm_comm_t *comm = NULL;
    scomm_status_t s;
    char want[64];
    double t0;

    (void)size;
    setenv("SCOMM_TIMEOUT_MS", "30000", 1);
    if (rank == bad) {
        setenv("SCOMM_TRANSPORTS", "tcp", 1);
        setenv("SCOMM_TCP_IFNAME", "nosuch0", 1);
    } else if (rank == 2) {
        usleep(300000); /* arrives after the failure was reported */
    }
    t0 = now_s();
    s  = scomm_init_from_env(&comm);
    ST_ASSERT(comm == NULL);
    fprintf(stderr, "rank %d: %s after %.2f s: %s\n", rank,
            scomm_status_name(s), now_s() - t0, scomm_last_error());
    if (rank == bad) {
        ST_ASSERT(SCOMM_IS_ERR(s));
        ST_ASSERT(strstr(scomm_last_error(), "nosuch0") != NULL);
        return 0;
    }
    ST_ASSERT_STATUS(s, SCOMM_ERR_PEER_LOST);
    snprintf(want, sizeof(want), "rank %d failed to join", bad);
    ST_ASSERT(strstr(scomm_last_error(), want) != NULL);
    ST_ASSERT(strstr(scomm_last_error(), "nosuch0") != NULL);
    ST_ASSERT(now_s() - t0 < 8.0);
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
    rc = st_run_ranks(3, strays, NULL, 30);
    if (rc != 0) {
        fprintf(stderr, "stray-connection case failed\n");
        return rc;
    }
    rc = st_run_ranks(3, failed, "1", 30);
    if (rc != 0) {
        fprintf(stderr, "failed-peer case failed\n");
        return rc;
    }
    rc = st_run_ranks(3, failed, "0", 30);
    if (rc != 0) {
        fprintf(stderr, "failed-root case failed\n");
        return rc;
    }
    printf("6 passed, 0 failed\n");
    return 0;
}
