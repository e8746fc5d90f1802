/*
 * test_mock.c - the mock backend: ranks as threads of this process.
 *
 * Each case is a fresh job (its own master port) of N threads that each
 * call scomm_init with backend "mock": barrier, ring exchanges of 0 B, 1 B,
 * 64 KiB and 1 MiB verified, per-pair ordering, split; then the injected
 * faults, each in its own job: drop (the receiver times out), corrupt
 * (exactly one byte differs), delay (late but in order), kill (the victim
 * gets ABORTED, every other rank PEER_LOST naming it, within a second),
 * fail_connect (scomm_init fails on that rank), join errors (duplicate
 * rank, size mismatch, timeout naming the missing rank) and bad fault
 * specs; and the ops table's memory-registration slot (the mock fakes a
 * fabric's registrations and counts them). Every communicator is
 * destroyed at the end, after errors too.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"
#include "transport/mock.h"

#define NRANKS   4
#define MAX_RANK 8
#define BASE_PORT 41000

typedef struct tcase tcase_t;
typedef void (*body_fn)(tcase_t *t, int rank, scomm_status_t init_status,
                        scomm_comm_t *comm);

struct tcase {
    int               port;
    int               size;
    int64_t           timeout_ms;  /* scomm_init timeout */
    body_fn           body;
    pthread_barrier_t sync;        /* test-level: keeps ranks alive */
    /* Per-rank results, read by main after the threads joined. */
    scomm_status_t    st[MAX_RANK];
    char              msg[MAX_RANK][512];
    uint64_t          t_ns[MAX_RANK];
    int               iter[MAX_RANK];
};

typedef struct {
    tcase_t *t;
    int      rank;
} targ_t;

static int passed;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ull) + (uint64_t)ts.tv_nsec;
}

static scomm_status_t mock_init_rank(int rank, int size, int port,
                                     int64_t timeout_ms, scomm_comm_t **comm)
{
    scomm_init_opts_t o;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_MASTER_ADDR |
                   SCOMM_INIT_FIELD_MASTER_PORT | SCOMM_INIT_FIELD_BACKEND |
                   SCOMM_INIT_FIELD_JOB_TOKEN | SCOMM_INIT_FIELD_TIMEOUT;
    o.rank        = rank;
    o.world_size  = size;
    o.master_addr = "127.0.0.1";
    o.master_port = port;
    o.backend     = "mock";
    o.job_token   = "test-mock-token";
    o.timeout_ms  = timeout_ms;
    return scomm_init(&o, comm);
}

static void *rank_main(void *varg)
{
    targ_t *a          = varg;
    tcase_t *t         = a->t;
    scomm_comm_t *comm = NULL;
    scomm_status_t st;

    st = mock_init_rank(a->rank, t->size, t->port, t->timeout_ms, &comm);
    if (st != SCOMM_OK) {
        comm = NULL;
    }
    t->body(t, a->rank, st, comm);
    return NULL;
}

/* Run one job of t->size threads to completion. */
static void run(tcase_t *t)
{
    pthread_t th[MAX_RANK];
    targ_t args[MAX_RANK];
    int i;

    ST_ASSERT(t->size <= MAX_RANK);
    if (t->timeout_ms == 0) {
        t->timeout_ms = 20000;
    }
    pthread_barrier_init(&t->sync, NULL, (unsigned)t->size);
    for (i = 0; i < t->size; i++) {
        args[i].t    = t;
        args[i].rank = i;
        ST_ASSERT_EQ(pthread_create(&th[i], NULL, rank_main, &args[i]), 0);
    }
    for (i = 0; i < t->size; i++) {
        ST_ASSERT_EQ(pthread_join(th[i], NULL), 0);
    }
    pthread_barrier_destroy(&t->sync);
}

static void sync_and_destroy(tcase_t *t, scomm_comm_t *comm)
{
    pthread_barrier_wait(&t->sync);
    if (comm != NULL) {
        ST_ASSERT_OK(scomm_comm_destroy(comm));
    }
}

static void add_fault(const char *spec)
{
    char err[256] = "";

    if (scomm_mock_fault_add(spec, err, sizeof(err)) != 0) {
        fprintf(stderr, "fault '%s' refused: %s\n", spec, err);
        ST_ASSERT(0);
    }
}

/* Receive from the left neighbour and send to the right one. */
static scomm_status_t ring_xchg(scomm_comm_t *comm, const void *sbuf,
                                void *rbuf, size_t len, int32_t tag)
{
    int rank = scomm_rank(comm), size = scomm_size(comm);
    scomm_req_t *reqs[2] = {NULL, NULL};
    scomm_status_t st;

    st = scomm_irecv(rbuf, len, SCOMM_UINT8, (rank + size - 1) % size, tag,
                     comm, &reqs[0]);
    if (st != SCOMM_OK) {
        return st;
    }
    st = scomm_isend(sbuf, len, SCOMM_UINT8, (rank + 1) % size, tag, comm,
                     &reqs[1]);
    if (st != SCOMM_OK) {
        scomm_wait(reqs[0]);
        return st;
    }
    return scomm_wait_all(2, reqs);
}

/* ---- healthy job --------------------------------------------------------- */

static void body_basic(tcase_t *t, int rank, scomm_status_t init_status,
                       scomm_comm_t *comm)
{
    static const size_t sizes[] = {0, 1, 64u << 10, 1u << 20};
    int size = t->size, left = (rank + size - 1) % size;
    scomm_comm_t *sub = NULL;
    unsigned char *sbuf, *rbuf;
    int32_t v, i, peer;
    size_t k;

    ST_ASSERT_OK(init_status);
    ST_ASSERT_EQ(scomm_rank(comm), rank);
    ST_ASSERT_EQ(scomm_size(comm), size);
    ST_ASSERT_EQ(scomm_local_size(comm), size);
    ST_ASSERT(strcmp(scomm_peer_transport(comm, (rank + 1) % size),
                     "mock") == 0);
    ST_ASSERT(strcmp(scomm_peer_transport(comm, rank), "self") == 0);
    ST_ASSERT_OK(scomm_barrier(comm));

    sbuf = malloc((1u << 20) + 1);
    rbuf = malloc((1u << 20) + 1);
    ST_ASSERT((sbuf != NULL) && (rbuf != NULL));
    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        st_fill_pattern(sbuf, sizes[k], (uint64_t)(rank * 1000 + (int)k));
        memset(rbuf, 0xee, sizes[k] + 1);
        ST_ASSERT_OK(ring_xchg(comm, sbuf, rbuf, sizes[k], (int32_t)k));
        ST_ASSERT_EQ(st_check_pattern(rbuf, sizes[k],
                                      (uint64_t)(left * 1000 + (int)k)),
                     SIZE_MAX);
        ST_ASSERT_EQ(rbuf[sizes[k]], 0xee);
    }
    free(sbuf);
    free(rbuf);

    /* Per-pair order on one tag, with everything sent before any receive
     * is posted (all arrive unexpected). */
    for (i = 0; i < 200; i++) {
        ST_ASSERT_OK(scomm_send(&i, 1, SCOMM_INT32, (rank + 1) % size, 77,
                                comm));
    }
    for (i = 0; i < 200; i++) {
        ST_ASSERT_OK(scomm_recv(&v, 1, SCOMM_INT32, left, 77, comm));
        ST_ASSERT_EQ(v, i);
    }

    /* Split by parity, reversed order: world 2 is rank 0 of {2, 0}. */
    ST_ASSERT_OK(scomm_comm_split(comm, rank % 2, -rank, &sub));
    ST_ASSERT(sub != NULL);
    ST_ASSERT_EQ(scomm_size(sub), size / 2);
    ST_ASSERT_EQ(scomm_rank(sub), (size / 2 - 1) - rank / 2);
    ST_ASSERT_OK(scomm_barrier(sub));
    v    = rank;
    peer = 1 - scomm_rank(sub);
    {
        scomm_req_t *reqs[2];
        int32_t got = -1;

        ST_ASSERT_OK(scomm_irecv(&got, 1, SCOMM_INT32, peer, 5, sub,
                                 &reqs[0]));
        ST_ASSERT_OK(scomm_isend(&v, 1, SCOMM_INT32, peer, 5, sub,
                                 &reqs[1]));
        ST_ASSERT_OK(scomm_wait_all(2, reqs));
        ST_ASSERT_EQ(got, (rank + 2) % size);
    }
    ST_ASSERT_OK(scomm_comm_destroy(sub));
    ST_ASSERT_OK(scomm_barrier(comm));
    sync_and_destroy(t, comm);
}

/* ---- drop ---------------------------------------------------------------- */

static void body_drop(tcase_t *t, int rank, scomm_status_t init_status,
                      scomm_comm_t *comm)
{
    int32_t v = 0;
    uint64_t t0;

    ST_ASSERT_OK(init_status);
    if (rank == 0) {
        v = 1;
        ST_ASSERT_OK(scomm_send(&v, 1, SCOMM_INT32, 1, 9, comm));
        v = 2; /* message 3 of the pair 0->1: dropped, yet it completes */
        ST_ASSERT_OK(scomm_send(&v, 1, SCOMM_INT32, 1, 9, comm));
    } else if (rank == 1) {
        ST_ASSERT_OK(scomm_comm_set_timeout(comm, 500));
        ST_ASSERT_OK(scomm_recv(&v, 1, SCOMM_INT32, 0, 9, comm));
        ST_ASSERT_EQ(v, 1);
        t0        = now_ns();
        t->st[1]  = scomm_recv(&v, 1, SCOMM_INT32, 0, 9, comm);
        t->t_ns[1] = now_ns() - t0;
        snprintf(t->msg[1], sizeof(t->msg[1]), "%s",
                 scomm_comm_last_error(comm));
    }
    sync_and_destroy(t, comm);
}

/* ---- corrupt ------------------------------------------------------------- */

static void body_corrupt(tcase_t *t, int rank, scomm_status_t init_status,
                         scomm_comm_t *comm)
{
    unsigned char buf[4096];
    size_t i;
    int diff = 0;

    ST_ASSERT_OK(init_status);
    if (rank == 0) {
        st_fill_pattern(buf, sizeof(buf), 42);
        ST_ASSERT_OK(scomm_send(buf, sizeof(buf), SCOMM_UINT8, 1, 3, comm));
        ST_ASSERT_OK(scomm_send(buf, sizeof(buf), SCOMM_UINT8, 1, 3, comm));
    } else if (rank == 1) {
        unsigned char ref[4096];

        st_fill_pattern(ref, sizeof(ref), 42);
        ST_ASSERT_OK(scomm_recv(buf, sizeof(buf), SCOMM_UINT8, 0, 3, comm));
        for (i = 0; i < sizeof(buf); i++) {
            diff += (buf[i] != ref[i]);
        }
        ST_ASSERT_EQ(diff, 1);
        /* Only the selected message is hit. */
        ST_ASSERT_OK(scomm_recv(buf, sizeof(buf), SCOMM_UINT8, 0, 3, comm));
        ST_ASSERT_EQ(st_check_pattern(buf, sizeof(buf), 42), SIZE_MAX);
    }
    sync_and_destroy(t, comm);
}

/* ---- delay --------------------------------------------------------------- */

static void body_delay(tcase_t *t, int rank, scomm_status_t init_status,
                       scomm_comm_t *comm)
{
    uint64_t stamp[2], got;

    ST_ASSERT_OK(init_status);
    if (rank == 0) {
        /* Message 2 (tag 1) is delayed 50 ms; message 3 (tag 2) is not,
         * but must not overtake it. */
        stamp[0] = now_ns();
        ST_ASSERT_OK(scomm_send(&stamp[0], 1, SCOMM_UINT64, 1, 1, comm));
        /* Message 3 is timed from message 2's send too: its 50 ms hold
         * starts there, not after the first send returned (a slow send,
         * under ASan, made "held 50 ms" read 49.9). */
        stamp[1] = stamp[0];
        ST_ASSERT_OK(scomm_send(&stamp[1], 1, SCOMM_UINT64, 1, 2, comm));
    } else if (rank == 1) {
        ST_ASSERT_OK(scomm_recv(&got, 1, SCOMM_UINT64, 0, 2, comm));
        t->t_ns[1] = now_ns() - got;
        ST_ASSERT_OK(scomm_recv(&got, 1, SCOMM_UINT64, 0, 1, comm));
        t->t_ns[0] = now_ns() - got;
        t->st[1]   = SCOMM_OK;
    } else if (rank == 2) {
        /* An undelayed pair is unaffected. */
        stamp[0] = now_ns();
        ST_ASSERT_OK(scomm_send(&stamp[0], 1, SCOMM_UINT64, 3, 1, comm));
    } else if (rank == 3) {
        ST_ASSERT_OK(scomm_recv(&got, 1, SCOMM_UINT64, 2, 1, comm));
        t->t_ns[3] = now_ns() - got;
    }
    sync_and_destroy(t, comm);
}

/* ---- kill ---------------------------------------------------------------- */

static void body_kill(tcase_t *t, int rank, scomm_status_t init_status,
                      scomm_comm_t *comm)
{
    unsigned char sbuf[256], rbuf[256];
    scomm_status_t st = SCOMM_OK;
    int it;

    ST_ASSERT_OK(init_status);
    memset(sbuf, rank, sizeof(sbuf));
    for (it = 0; it < 100; it++) {
        st = ring_xchg(comm, sbuf, rbuf, sizeof(sbuf), 11);
        if (st != SCOMM_OK) {
            break;
        }
    }
    t->t_ns[rank] = now_ns();
    t->st[rank]   = st;
    t->iter[rank] = it;
    snprintf(t->msg[rank], sizeof(t->msg[rank]), "%s",
             scomm_comm_last_error(comm));
    /* The fault is final: later calls report it too. */
    ST_ASSERT_EQ(scomm_comm_async_error(comm), st);
    ST_ASSERT_EQ(scomm_barrier(comm), st);
    sync_and_destroy(t, comm);
}

/* ---- fail_connect -------------------------------------------------------- */

static void body_fail_connect(tcase_t *t, int rank,
                              scomm_status_t init_status, scomm_comm_t *comm)
{
    uint64_t t0 = now_ns();

    if (rank == 3) {
        t->st[3] = init_status;
        snprintf(t->msg[3], sizeof(t->msg[3]), "%s", scomm_last_error());
        ST_ASSERT(comm == NULL);
    } else {
        /* The others come up, then learn rank 3 is gone: at once, when
         * the notice came while scomm_init waited (for rank 0's tuned
         * policy header, coll/tuned.c), else in the barrier. */
        ST_ASSERT_OK(init_status);
        t->st[rank] = scomm_comm_set_timeout(comm, 10000);
        if (t->st[rank] == SCOMM_OK) {
            t->st[rank] = scomm_barrier(comm);
        }
        t->t_ns[rank] = now_ns() - t0;
        snprintf(t->msg[rank], sizeof(t->msg[rank]), "%s",
                 scomm_comm_last_error(comm));
    }
    sync_and_destroy(t, comm);
}

/* ---- join errors --------------------------------------------------------- */

static void body_join_wait(tcase_t *t, int rank, scomm_status_t init_status,
                           scomm_comm_t *comm)
{
    t->st[rank] = init_status;
    snprintf(t->msg[rank], sizeof(t->msg[rank]), "%s", scomm_last_error());
    if (comm != NULL) {
        ST_ASSERT_OK(scomm_comm_destroy(comm));
    }
}

static void body_pingpong(tcase_t *t, int rank, scomm_status_t init_status,
                          scomm_comm_t *comm)
{
    int32_t v = 7;

    t->st[rank] = init_status;
    snprintf(t->msg[rank], sizeof(t->msg[rank]), "%s", scomm_last_error());
    if (init_status == SCOMM_OK) {
        if (rank == 0) {
            ST_ASSERT_OK(scomm_send(&v, 1, SCOMM_INT32, 1, 1, comm));
        } else {
            v = 0;
            ST_ASSERT_OK(scomm_recv(&v, 1, SCOMM_INT32, 0, 1, comm));
            ST_ASSERT_EQ(v, 7);
        }
    }
    sync_and_destroy(t, comm);
}

static void test_join_errors(int port)
{
    tcase_t t;
    pthread_t th;
    targ_t a;
    scomm_comm_t *comm = NULL;
    scomm_status_t st;

    /* Rank 0 of a 2-rank job waits alone; meanwhile a second rank 0 and a
     * rank with another world size are refused. */
    memset(&t, 0, sizeof(t));
    t.port       = port;
    t.size       = 2;
    t.timeout_ms = 1500;
    t.body       = body_join_wait;
    a.t          = &t;
    a.rank       = 0;
    ST_ASSERT_EQ(pthread_create(&th, NULL, rank_main, &a), 0);
    usleep(300 * 1000);
    st = mock_init_rank(0, 2, port, 1000, &comm);
    ST_ASSERT_STATUS(st, SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_last_error(), "twice") != NULL);
    st = mock_init_rank(1, 3, port, 1000, &comm);
    ST_ASSERT_STATUS(st, SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_last_error(), "world size 3") != NULL);
    ST_ASSERT(comm == NULL);
    ST_ASSERT_EQ(pthread_join(th, NULL), 0);
    ST_ASSERT_STATUS(t.st[0], SCOMM_ERR_TIMED_OUT);
    if (strstr(t.msg[0], "waiting for rank 1 ") == NULL) {
        fprintf(stderr, "timeout message: %s\n", t.msg[0]);
        ST_ASSERT(0);
    }

    /* The timed-out job is gone: the same key forms a new job. */
    memset(&t, 0, sizeof(t));
    t.port = port;
    t.size = 2;
    t.body = body_pingpong;
    run(&t);
    ST_ASSERT_OK(t.st[0]);
    ST_ASSERT_OK(t.st[1]);
    passed++;
}

/* ---- fault specs --------------------------------------------------------- */

static void expect_bad_spec(const char *spec, const char *needle)
{
    char err[256] = "";

    ST_ASSERT_EQ(scomm_mock_fault_add(spec, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "spec '%s': message '%s' does not name '%s'\n", spec,
                err, needle);
        ST_ASSERT(0);
    }
}

static void test_bad_specs(int port)
{
    char err[256] = "";
    tcase_t t;

    scomm_mock_fault_clear();
    expect_bad_spec("explode:src=1", "'explode'");
    expect_bad_spec("drop:src=x", "'src'");
    expect_bad_spec("drop:src=-1", "'src'");
    expect_bad_spec("drop:dst=70000", "'dst'");
    expect_bad_spec("drop:msg=0", "'msg'");
    expect_bad_spec("drop:rank=1", "'rank'");
    expect_bad_spec("drop:src", "'src'");
    expect_bad_spec("drop:src=1:src=2", "twice");
    expect_bad_spec("delay:src=1", "'ms'");
    expect_bad_spec("kill:rank=1", "'msg'");
    expect_bad_spec("kill:msg=3", "'rank'");
    expect_bad_spec("fail_connect", "'rank'");
    expect_bad_spec("corrupt:msg=2:bytes=3", "'bytes'");
    /* All or nothing: the valid first entry is not added either. */
    expect_bad_spec("drop:src=0;bogus", "'bogus'");
    ST_ASSERT_EQ(scomm_mock_fault_add(" ; ", err, sizeof(err)), 0);

    /* Nothing was added: a message goes through. */
    memset(&t, 0, sizeof(t));
    t.port = port;
    t.size = 2;
    t.body = body_pingpong;
    run(&t);
    ST_ASSERT_OK(t.st[0]);
    ST_ASSERT_OK(t.st[1]);

    /* A bad SCOMM_MOCK_FAULTS fails the job's creation. */
    setenv("SCOMM_MOCK_FAULTS", "kill:rank=1", 1);
    memset(&t, 0, sizeof(t));
    t.port = port + 1;
    t.size = 2;
    t.body = body_pingpong;
    run(&t);
    unsetenv("SCOMM_MOCK_FAULTS");
    ST_ASSERT_STATUS(t.st[0], SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT_STATUS(t.st[1], SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(t.msg[0], "SCOMM_MOCK_FAULTS") != NULL);
    ST_ASSERT(strstr(t.msg[0], "'msg'") != NULL);
    passed++;
}

/* ---- one rank ------------------------------------------------------------ */

static void test_single(int port)
{
    scomm_comm_t *comm = NULL;
    int32_t v = 5, got = 0;

    ST_ASSERT_OK(mock_init_rank(0, 1, port, 5000, &comm));
    ST_ASSERT_EQ(scomm_size(comm), 1);
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_send(&v, 1, SCOMM_INT32, 0, 1, comm));
    ST_ASSERT_OK(scomm_recv(&got, 1, SCOMM_INT32, 0, 1, comm));
    ST_ASSERT_EQ(got, 5);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    passed++;
}

/* ---- main ---------------------------------------------------------------- */

static void new_case(tcase_t *t, int port, body_fn body)
{
    memset(t, 0, sizeof(*t));
    t->port = port;
    t->size = NRANKS;
    t->body = body;
}

/* ---- memory registration through the ops table ------------------------ */

/* Live fake registrations, read between barriers by rank 0. */
static uint64_t memreg_live[4];

static void mr_live_now(uint64_t *live)
{
    uint64_t total, leaked;

    scomm_mock_mr_stats(live, &total, &leaked);
}

/* scomm_mem_register / scomm_mem_alloc reach the transport's mem_reg slot
 * once per range, and every registration is released: by
 * scomm_mem_deregister, scomm_mem_free, or the communicator's release. */
static void body_memreg(tcase_t *t, int rank, scomm_status_t init_status,
                        scomm_comm_t *comm)
{
    size_t len = 1u << 20;
    char *a = malloc(len), *b = malloc(len), *rbuf = malloc(len);
    void *shared = NULL;

    ST_ASSERT_OK(init_status);
    ST_ASSERT((a != NULL) && (b != NULL) && (rbuf != NULL));
    ST_ASSERT_OK(scomm_mem_register(comm, a, len));
    ST_ASSERT_OK(scomm_mem_register(comm, b, len));
    ST_ASSERT_STATUS(scomm_mem_register(comm, a, len),
                     SCOMM_ERR_INVALID_ARG);
    pthread_barrier_wait(&t->sync);
    if (rank == 0) {
        mr_live_now(&memreg_live[0]); /* 2 per rank */
    }
    pthread_barrier_wait(&t->sync);
    /* Registered memory moves as any other. */
    st_fill_pattern(a, len, (uint64_t)rank);
    ST_ASSERT_OK(ring_xchg(comm, a, rbuf, len, 9));
    ST_ASSERT_EQ(st_check_pattern(rbuf, len,
                                  (uint64_t)((rank + t->size - 1) % t->size)),
                 SIZE_MAX);
    ST_ASSERT_OK(scomm_mem_deregister(comm, a));
    ST_ASSERT_OK(scomm_mem_alloc(comm, 64u << 10, &shared));
    pthread_barrier_wait(&t->sync);
    if (rank == 0) {
        mr_live_now(&memreg_live[1]); /* b and the allocation per rank */
    }
    pthread_barrier_wait(&t->sync);
    ST_ASSERT_OK(scomm_mem_free(comm, shared));
    pthread_barrier_wait(&t->sync);
    if (rank == 0) {
        mr_live_now(&memreg_live[2]); /* b per rank */
    }
    /* b stays registered: the communicator's release takes it back. */
    sync_and_destroy(t, comm);
    free(a);
    free(b);
    free(rbuf);
}

static void test_memreg(int port)
{
    uint64_t live0, total0, leaked0, live, total, leaked;
    uint64_t n = NRANKS;
    tcase_t t;

    scomm_mock_mr_stats(&live0, &total0, &leaked0);
    new_case(&t, port, body_memreg);
    run(&t);
    scomm_mock_mr_stats(&live, &total, &leaked);
    ST_ASSERT_EQ(memreg_live[0] - live0, 2 * n);
    ST_ASSERT_EQ(memreg_live[1] - live0, 2 * n);
    ST_ASSERT_EQ(memreg_live[2] - live0, n);
    ST_ASSERT_EQ(live, live0);
    ST_ASSERT_EQ(total - total0, 3 * n);
    ST_ASSERT_EQ(leaked, leaked0);
    passed++;
}

int main(void)
{
    tcase_t t;
    int r;

    unsetenv("SCOMM_MOCK_FAULTS");
    scomm_mock_fault_clear();

    /* A one-rank job first, on this thread: no peers at all. It also does
     * the library's once-per-process setup before threads race for it. */
    test_single(BASE_PORT);
    printf("ok: one-rank job\n");

    new_case(&t, BASE_PORT + 1, body_basic);
    run(&t);
    passed++;
    printf("ok: barrier, ring 0 B..1 MiB, ordering, split\n");

    /* Counting messages from 0 to 1: message 1 is scomm_init's (rank 0
     * sends every rank the tuned selector policy's header, coll/tuned.c),
     * the bodies' sends follow. */
    scomm_mock_fault_clear();
    add_fault("drop:src=0:dst=1:msg=3");
    new_case(&t, BASE_PORT + 2, body_drop);
    run(&t);
    ST_ASSERT_STATUS(t.st[1], SCOMM_ERR_TIMED_OUT);
    ST_ASSERT(t.t_ns[1] >= 450000000ull);
    ST_ASSERT(t.t_ns[1] < 3000000000ull);
    ST_ASSERT(strstr(t.msg[1], "timed out") != NULL);
    passed++;
    printf("ok: drop -> receiver timed out after %llu ms\n",
           (unsigned long long)(t.t_ns[1] / 1000000));

    /* Through the environment this time. */
    scomm_mock_fault_clear();
    setenv("SCOMM_MOCK_FAULTS", "corrupt:src=0:dst=1:msg=2", 1);
    new_case(&t, BASE_PORT + 3, body_corrupt);
    run(&t);
    unsetenv("SCOMM_MOCK_FAULTS");
    passed++;
    printf("ok: corrupt -> one byte differs\n");

    scomm_mock_fault_clear();
    add_fault("delay:src=0:dst=1:msg=2:ms=50");
    new_case(&t, BASE_PORT + 4, body_delay);
    run(&t);
    ST_ASSERT_OK(t.st[1]);
    ST_ASSERT(t.t_ns[0] >= 50000000ull);
    ST_ASSERT(t.t_ns[1] >= 50000000ull); /* held behind message 2 */
    ST_ASSERT(t.t_ns[0] < 2000000000ull);
    passed++;
    printf("ok: delay -> arrived after %llu ms, in order (undelayed pair: "
           "%llu us)\n", (unsigned long long)(t.t_ns[0] / 1000000),
           (unsigned long long)(t.t_ns[3] / 1000));

    scomm_mock_fault_clear();
    add_fault("kill:rank=2:msg=3");
    new_case(&t, BASE_PORT + 5, body_kill);
    run(&t);
    {
        uint64_t lo = UINT64_MAX, hi = 0;

        for (r = 0; r < NRANKS; r++) {
            if (r == 2) {
                ST_ASSERT_STATUS(t.st[r], SCOMM_ERR_ABORTED);
                ST_ASSERT(strstr(t.msg[r], "killed by fault injection") !=
                          NULL);
                ST_ASSERT_EQ(t.iter[r], 2); /* its third message */
            } else {
                ST_ASSERT_STATUS(t.st[r], SCOMM_ERR_PEER_LOST);
                if (strstr(t.msg[r], "rank 2") == NULL) {
                    fprintf(stderr, "rank %d: %s\n", r, t.msg[r]);
                    ST_ASSERT(0);
                }
            }
            lo = (t.t_ns[r] < lo) ? t.t_ns[r] : lo;
            hi = (t.t_ns[r] > hi) ? t.t_ns[r] : hi;
        }
        ST_ASSERT(hi - lo < 1000000000ull);
        printf("ok: kill -> rank 2 aborted, others lost it within %llu ms "
               "(rank 0: %s)\n", (unsigned long long)((hi - lo) / 1000000),
               t.msg[0]);
    }
    passed++;

    scomm_mock_fault_clear();
    add_fault("fail_connect:rank=3");
    new_case(&t, BASE_PORT + 6, body_fail_connect);
    run(&t);
    ST_ASSERT_STATUS(t.st[3], SCOMM_ERR_PEER_LOST);
    ST_ASSERT(strstr(t.msg[3], "cannot connect") != NULL);
    for (r = 0; r < 3; r++) {
        ST_ASSERT_STATUS(t.st[r], SCOMM_ERR_PEER_LOST);
        ST_ASSERT(t.t_ns[r] < 5000000000ull);
    }
    passed++;
    printf("ok: fail_connect -> scomm_init on rank 3: %s\n", t.msg[3]);

    scomm_mock_fault_clear();
    test_join_errors(BASE_PORT + 7);
    printf("ok: duplicate rank, size mismatch, join timeout\n");

    test_bad_specs(BASE_PORT + 8);
    printf("ok: bad fault specs refused\n");
    scomm_mock_fault_clear();

    test_memreg(BASE_PORT + 20);
    printf("ok: mem_register, mem_alloc reach the registration slot; every "
           "registration released\n");

    printf("%d passed, 0 failed\n", passed);
    return 0;
}
