/*
 * test_mock_coll.c - every collective algorithm's failure path, without a
 * network: 4 ranks as threads on the mock backend, one algorithm forced at
 * a time, rank 2 killed by fault injection at its first message. Rank 2 gets
 * SCOMM_ERR_ABORTED. A survivor either finishes the operation (it needed
 * nothing more from rank 2: e.g. recursive doubling, where rank 2's data
 * reached it through another rank before the kill) or fails with
 * SCOMM_ERR_PEER_LOST naming rank 2; at least one survivor fails in the
 * operation itself, and the next call (a barrier) fails on every survivor
 * naming rank 2. Nothing may hang (5 s timeout). A healthy run of the same
 * algorithm first proves the case really runs it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll/coll.h"
#include "scomm.h"
#include "st_test.h"
#include "transport/mock.h"

#define NR 4

/* The root is chosen so that the victim (rank 2) must send: it is the
 * root of broadcast and scatter, and a contributor to reduce and gather. */
typedef struct {
    scomm_coll_op_t op;
    const char     *algo;
    size_t          count;
    int             root;
} case_t;

static const case_t cases[] = {
    {SCOMM_COLL_ALLREDUCE, "ring", 4096, 0},
    {SCOMM_COLL_ALLREDUCE, "recursive_doubling", 64, 0},
    {SCOMM_COLL_ALLREDUCE, "rabenseifner", 4096, 0},
    {SCOMM_COLL_ALLGATHER, "ring", 1024, 0},
    {SCOMM_COLL_ALLGATHER, "recursive_doubling", 64, 0},
    {SCOMM_COLL_REDUCESCATTER, "ring", 1024, 0},
    {SCOMM_COLL_REDUCESCATTER, "direct", 64, 0},
    {SCOMM_COLL_BROADCAST, "binomial", 1024, 2},
    {SCOMM_COLL_BROADCAST, "chain", 1 << 20, 2},
    {SCOMM_COLL_REDUCE, "binomial", 1024, 1},
    {SCOMM_COLL_ALLTOALL, "pairwise", 256, 0},
    {SCOMM_COLL_GATHER, "linear", 256, 1},
    {SCOMM_COLL_SCATTER, "linear", 256, 2},
};

typedef struct {
    int             rank;
    int             port;
    const case_t   *c;
    int             faulty;
    scomm_status_t  status;
    scomm_status_t  after;    /* a barrier after the operation */
    char            msg[512];
    char            after_msg[512];
    char            algo[32];
} job_t;

static scomm_status_t run_op(scomm_comm_t *comm, const case_t *c, float *a,
                             float *b)
{
    switch (c->op) {
    case SCOMM_COLL_ALLREDUCE:
        return scomm_all_reduce(a, b, c->count, SCOMM_FLOAT32, SCOMM_SUM,
                                comm);
    case SCOMM_COLL_ALLGATHER:
        return scomm_all_gather(a, b, c->count, SCOMM_FLOAT32, comm);
    case SCOMM_COLL_REDUCESCATTER:
        return scomm_reduce_scatter(a, b, c->count, SCOMM_FLOAT32, SCOMM_SUM,
                                    comm);
    case SCOMM_COLL_BROADCAST:
        return scomm_broadcast(a, c->count, SCOMM_FLOAT32, c->root, comm);
    case SCOMM_COLL_REDUCE:
        return scomm_reduce(a, b, c->count, SCOMM_FLOAT32, SCOMM_SUM,
                            c->root, comm);
    case SCOMM_COLL_ALLTOALL:
        return scomm_all_to_all(a, b, c->count, SCOMM_FLOAT32, comm);
    case SCOMM_COLL_GATHER:
        return scomm_gather(a, b, c->count, SCOMM_FLOAT32, c->root, comm);
    case SCOMM_COLL_SCATTER:
        return scomm_scatter(a, b, c->count, SCOMM_FLOAT32, c->root, comm);
    default:
        return SCOMM_ERR_INTERNAL;
    }
}

static void *rank_main(void *arg)
{
    job_t *j = arg;
    scomm_init_opts_t o;
    scomm_comm_t *comm = NULL;
    scomm_coll_record_t rec;
    size_t n = j->c->count * NR;
    float *a = calloc(n, sizeof(float)), *b = calloc(n, sizeof(float));

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_BACKEND | SCOMM_INIT_FIELD_MASTER_PORT |
                   SCOMM_INIT_FIELD_TIMEOUT;
    o.rank        = j->rank;
    o.world_size  = NR;
    o.backend     = "mock";
    o.master_port = j->port;
    o.timeout_ms  = 5000;
    j->status = scomm_init(&o, &comm);
    if (j->status == SCOMM_OK) {
        j->status = run_op(comm, j->c, a, b);
        snprintf(j->msg, sizeof(j->msg), "%s", scomm_comm_last_error(comm));
        if (scomm_last_selection(comm, &rec) == SCOMM_OK) {
            snprintf(j->algo, sizeof(j->algo), "%s", rec.algo);
        }
        j->after = scomm_barrier(comm);
        snprintf(j->after_msg, sizeof(j->after_msg), "%s",
                 scomm_comm_last_error(comm));
        scomm_comm_destroy(comm);
    }
    free(a);
    free(b);
    return NULL;
}

static void run_case(const case_t *c, int port, int faulty, job_t *jobs)
{
    pthread_t th[NR];
    char err[200];
    int r;

    scomm_mock_fault_clear();
    if (faulty) {
        ST_ASSERT_EQ(scomm_mock_fault_add("kill:rank=2:msg=1", err,
                                          sizeof(err)), 0);
    }
    ST_ASSERT_OK(scomm_coll_force_algo(c->op, c->algo));
    for (r = 0; r < NR; r++) {
        memset(&jobs[r], 0, sizeof(jobs[r]));
        jobs[r].rank   = r;
        jobs[r].port   = port;
        jobs[r].c      = c;
        jobs[r].faulty = faulty;
        ST_ASSERT_EQ(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (r = 0; r < NR; r++) {
        pthread_join(th[r], NULL);
    }
}

int main(void)
{
    job_t jobs[NR];
    size_t k;
    int r, passed = 0, port = 41000, failed_in_op;

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const case_t *c = &cases[k];

        run_case(c, port++, 0, jobs);
        for (r = 0; r < NR; r++) {
            ST_ASSERT_OK(jobs[r].status);
            ST_ASSERT(strcmp(jobs[r].algo, c->algo) == 0);
        }
        run_case(c, port++, 1, jobs);
        for (r = 0, failed_in_op = 0; r < NR; r++) {
            if (r == 2) {
                ST_ASSERT_STATUS(jobs[r].status, SCOMM_ERR_ABORTED);
                continue;
            }
            if (!((jobs[r].status == SCOMM_OK) ||
                  ((jobs[r].status == SCOMM_ERR_PEER_LOST) &&
                   (strstr(jobs[r].msg, "rank 2") != NULL))) ||
                (jobs[r].after != SCOMM_ERR_PEER_LOST) ||
                (strstr(jobs[r].after_msg, "rank 2") == NULL)) {
                fprintf(stderr, "%s/%s rank %d: op %s: %s; barrier %s: %s\n",
                        scomm_coll_op_name(c->op), c->algo, r,
                        scomm_status_name(jobs[r].status), jobs[r].msg,
                        scomm_status_name(jobs[r].after), jobs[r].after_msg);
                ST_ASSERT(0);
            }
            failed_in_op += (jobs[r].status == SCOMM_ERR_PEER_LOST);
        }
        ST_ASSERT(failed_in_op > 0);
        printf("ok: %s/%s fails cleanly when rank 2 dies\n",
               scomm_coll_op_name(c->op), c->algo);
        passed++;
    }
    scomm_mock_fault_clear();
    printf("%d passed, 0 failed\n", passed);
    return 0;
}
