/*
 * test_faults.c - the fault suite, with real processes and real signals.
 *
 *   kill9    4 ranks loop all_reduce (16 and 256 Ki floats); rank 2 SIGKILLs itself
 *            at iteration 50. Ranks 0, 1, 3 must return SCOMM_ERR_PEER_LOST
 *            naming rank 2 within 5 s of the kill.
 *   kill9-hosts, sigstop-hosts  the same with every rank a host of its
 *            own (SCOMM_HOST_ID): no pidfd watches a peer, so the transport
 *            itself must tell a dead peer (tcp: EOF; ofi: its endpoint
 *            refuses connections) from a stopped one.
 *   sigstop  the same with a 3000 ms timeout and rank 2 SIGSTOPping
 *            itself: the others return SCOMM_ERR_TIMED_OUT naming rank 2
 *            within 4 s of the stop.
 *   abort    rank 0's second thread calls scomm_comm_abort while the main
 *            threads of all ranks are blocked in receives that no one
 *            will ever satisfy: every blocked call returns (rank 0:
 *            SCOMM_ERR_ABORTED; others: the propagated abort) within 1 s.
 * The transport comes from SCOMM_TRANSPORTS (ctest runs shm, tcp, ofi). The
 * moment of the fault is written into a page shared by all ranks.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"

#define VICTIM 2

typedef struct {
    _Atomic long long fault_ns;   /* when the fault was injected */
} shared_t;

static shared_t *g_shared;

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Loop all_reduce (small and large, so several algorithms run) until an
 * error; the victim injects its fault at iteration 50. */
static scomm_status_t loop_until_error(scomm_comm_t *comm, int rank,
                                       int size, int sig)
{
    enum { BIG = 1 << 18 };
    float *in  = malloc(BIG * sizeof(float));
    float *out = malloc(BIG * sizeof(float));
    scomm_status_t s = SCOMM_OK;
    size_t count, i;
    int it;

    ST_ASSERT((in != NULL) && (out != NULL));
    for (i = 0; i < BIG; i++) {
        in[i] = (float)(rank + 1);
    }
    for (it = 0; (it < 100000) && (s == SCOMM_OK); it++) {
        if ((rank == VICTIM) && (it == 50)) {
            atomic_store(&g_shared->fault_ns, now_ns());
            raise(sig);
        }
        count = (it % 2) ? BIG : 16;
        s     = scomm_all_reduce(in, out, count, SCOMM_FLOAT32, SCOMM_SUM,
                                 comm);
        if (s == SCOMM_OK) {
            /* 1 + 2 + ... + size */
            ST_ASSERT(out[count - 1] == (float)(size * (size + 1) / 2));
        }
    }
    free(in);
    free(out);
    return s;
}

static int fault_rank(int rank, int size, void *arg)
{
    const char *kind = arg;
    int sig = (strncmp(kind, "kill9", 5) == 0) ? SIGKILL : SIGSTOP;
    char host[32];
    scomm_status_t expect = (sig == SIGKILL) ? SCOMM_ERR_PEER_LOST
                                             : SCOMM_ERR_TIMED_OUT;
    double limit = (sig == SIGKILL) ? 5.0 : 4.0;
    scomm_comm_t *comm = NULL;
    scomm_status_t s;
    double took;

    if (strstr(kind, "-hosts") != NULL) {
        snprintf(host, sizeof(host), "fault-host-%d", rank);
        setenv("SCOMM_HOST_ID", host, 1);
    }
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    if (sig == SIGSTOP) {
        /* After start-up: the deadline under test is the stop's (ofi's
         * provider start-up alone takes about a second per rank on a
         * loaded machine). */
        ST_ASSERT_OK(scomm_comm_set_timeout(comm, 3000));
    }
    s    = loop_until_error(comm, rank, size, sig);
    took = (double)(now_ns() - atomic_load(&g_shared->fault_ns)) / 1e9;
    fprintf(stderr, "rank %d: %s after %.3f s: %s\n", rank,
            scomm_status_name(s), took, scomm_comm_last_error(comm));
    ST_ASSERT_STATUS(s, expect);
    ST_ASSERT(strstr(scomm_comm_last_error(comm), "rank 2") != NULL);
    ST_ASSERT(took < limit);
    /* After an error, destroy is always safe. */
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

static void *aborter(void *arg)
{
    usleep(500000);
    atomic_store(&g_shared->fault_ns, now_ns());
    scomm_comm_abort((scomm_comm_t *)arg);
    return NULL;
}

static int abort_rank(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    pthread_t th;
    scomm_status_t s;
    int32_t v;
    double took;

    (void)size;
    (void)arg;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    if (rank == 0) {
        ST_ASSERT_EQ(pthread_create(&th, NULL, aborter, comm), 0);
    }
    /* Nobody ever sends tag 99: only the abort can end this. */
    s    = scomm_recv(&v, 1, SCOMM_INT32, (rank + 1) % size, 99, comm);
    took = (double)(now_ns() - atomic_load(&g_shared->fault_ns)) / 1e9;
    fprintf(stderr, "rank %d: %s after %.3f s: %s\n", rank,
            scomm_status_name(s), took, scomm_comm_last_error(comm));
    ST_ASSERT_STATUS(s, SCOMM_ERR_ABORTED);
    ST_ASSERT(strstr(scomm_comm_last_error(comm), "aborted by rank 0") !=
              NULL);
    ST_ASSERT(took < 1.0);
    if (rank == 0) {
        pthread_join(th, NULL);
    }
    /* Later calls fail at once with the same cause. */
    ST_ASSERT_STATUS(scomm_barrier(comm), SCOMM_ERR_ABORTED);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

int main(int argc, char **argv)
{
    const char *kind = (argc > 1) ? argv[1] : "kill9";
    int rc;

    g_shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_shared == MAP_FAILED) {
        return 1;
    }
    if (strcmp(kind, "abort") == 0) {
        rc = st_run_ranks(4, abort_rank, NULL, 60);
    } else {
        rc = st_run_ranks_victim(4, fault_rank, (void *)kind, 60, VICTIM);
    }
    if (rc == 0) {
        printf("1 passed, 0 failed\n");
    }
    return rc;
}
