/*
 * test_p2p.c - point-to-point over real processes: every ordered pair at
 * 0 B, 1 B, 4 KiB, 1 MiB, 64 MiB (+ odd sizes), data verified; ordering per
 * tag; unexpected arrivals; many requests in flight; truncation refused
 * without touching the buffer; communication inside split sub-groups.
 * Runs over the transport named by SCOMM_TRANSPORTS (set by ctest).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm.h"
#include "st_dev.h"
#include "st_test.h"

static const size_t sizes[] = {0, 1, 7, 4096, 65537, 1u << 20, 64u << 20};

static void pairs(scomm_comm_t *comm, char *sbuf, char *rbuf)
{
    int rank = scomm_rank(comm), size = scomm_size(comm);
    int src, dst;
    size_t k, bad;

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        for (src = 0; src < size; src++) {
            for (dst = 0; dst < size; dst++) {
                uint64_t seed = (uint64_t)(src * 131 + dst * 7 + (int)k);

                if (src == dst) {
                    continue;
                }
                if (rank == src) {
                    st_fill_pattern(sbuf, sizes[k], seed);
                    ST_ASSERT_OK(st_send(sbuf, sizes[k], SCOMM_UINT8, dst,
                                            (int32_t)k, comm));
                } else if (rank == dst) {
                    memset(rbuf, 0xee, sizes[k] + 1);
                    ST_ASSERT_OK(st_recv(rbuf, sizes[k], SCOMM_UINT8, src,
                                            (int32_t)k, comm));
                    bad = st_check_pattern(rbuf, sizes[k], seed);
                    if (bad != SIZE_MAX) {
                        fprintf(stderr, "rank %d: %zu bytes from %d: first "
                                "bad byte at %zu\n", rank, sizes[k], src,
                                bad);
                    }
                    ST_ASSERT_EQ(bad, SIZE_MAX);
                    /* Nothing written past the message. */
                    ST_ASSERT_EQ((unsigned char)rbuf[sizes[k]], 0xee);
                }
            }
        }
    }
}

/* Rank 0 sends N messages on two tags before rank 1 posts anything; rank 1
 * receives tag B first, then tag A: order within a tag must hold. */
static void ordering(scomm_comm_t *comm)
{
    int rank = scomm_rank(comm);
    int32_t v, i;
    const int n = 50;

    if (rank == 0) {
        for (i = 0; i < n; i++) {
            ST_ASSERT_OK(st_send(&i, 1, SCOMM_INT32, 1, 100, comm));
            v = 1000 + i;
            ST_ASSERT_OK(st_send(&v, 1, SCOMM_INT32, 1, 101, comm));
        }
    } else if (rank == 1) {
        for (i = 0; i < n; i++) {
            ST_ASSERT_OK(st_recv(&v, 1, SCOMM_INT32, 0, 101, comm));
            ST_ASSERT_EQ(v, 1000 + i);
        }
        for (i = 0; i < n; i++) {
            ST_ASSERT_OK(st_recv(&v, 1, SCOMM_INT32, 0, 100, comm));
            ST_ASSERT_EQ(v, i);
        }
    }
}

/* Many sends and receives of mixed sizes in flight at once, all peers. */
static void inflight(scomm_comm_t *comm)
{
    enum { NMSG = 8 };
    int rank = scomm_rank(comm), size = scomm_size(comm);
    size_t len[NMSG] = {3, 100, 4000, 20000, 70000, 300000, 1u << 20, 11};
    scomm_req_t **reqs;
    char **sb, **rb;
    int p, m, n = 0;

    reqs = calloc((size_t)(2 * size * NMSG), sizeof(*reqs));
    sb   = calloc((size_t)(size * NMSG), sizeof(*sb));
    rb   = calloc((size_t)(size * NMSG), sizeof(*rb));
    ST_ASSERT((reqs != NULL) && (sb != NULL) && (rb != NULL));
    /* ST_BUF=device|mixed: the same on device copies (st_dev.h), which
     * live until the waits are done */
    char **db = calloc((size_t)(2 * size * NMSG), sizeof(*db));
    int dev = st_dev_on(comm), k;

    ST_ASSERT(db != NULL);
    for (p = 0; p < size; p++) {
        for (m = 0; (m < NMSG) && (p != rank); m++) {
            k                = p * NMSG + m;
            rb[k]            = malloc(len[m]);
            memset(rb[k], 0xee, len[m]);
            db[2 * k]        = dev ? st_dev_put(rb[k], len[m]) : rb[k];
            ST_ASSERT_OK(scomm_irecv(db[2 * k], len[m], SCOMM_UINT8, p,
                                     m % 3, comm, &reqs[n++]));
        }
    }
    for (p = 0; p < size; p++) {
        for (m = 0; (m < NMSG) && (p != rank); m++) {
            k     = p * NMSG + m;
            sb[k] = malloc(len[m]);
            st_fill_pattern(sb[k], len[m],
                            (uint64_t)(rank * 1000 + p * 10 + m));
            db[2 * k + 1] = dev ? st_dev_put(sb[k], len[m]) : sb[k];
            ST_ASSERT_OK(scomm_isend(db[2 * k + 1], len[m], SCOMM_UINT8, p,
                                     m % 3, comm, &reqs[n++]));
        }
    }
    /* every 5th by a scomm_test loop, the rest in one scomm_wait_all */
    for (k = 0; k < n; k += 5) {
        int32_t done = 0;

        while (!done) {
            ST_ASSERT_OK(scomm_test(reqs[k], &done));
        }
        reqs[k] = NULL;
    }
    ST_ASSERT_OK(scomm_wait_all((size_t)n, reqs));
    for (k = 0; dev && (k < size * NMSG); k++) {
        if (db[2 * k] != NULL) {
            ST_ASSERT(st_dev.memcpy_(rb[k], db[2 * k], len[k % NMSG], 2) ==
                      0);
            st_dev.free_(db[2 * k]);
            st_dev.free_(db[2 * k + 1]);
        }
    }
    free(db);
    for (p = 0; p < size; p++) {
        for (m = 0; (m < NMSG) && (p != rank); m++) {
            ST_ASSERT_EQ(st_check_pattern(rb[p * NMSG + m], len[m],
                                          (uint64_t)(p * 1000 + rank * 10 +
                                                     m)),
                         SIZE_MAX);
            free(rb[p * NMSG + m]);
            free(sb[p * NMSG + m]);
        }
    }
    free(reqs);
    free(sb);
    free(rb);
}

/* A message longer than the receive buffer: error, buffer untouched. The
 * world is still usable afterwards for this pair only if the error is
 * local, so this runs last. */
static void truncation(scomm_comm_t *comm)
{
    int rank = scomm_rank(comm);
    char big[100], small[10], guard[10];
    scomm_status_t s;

    memset(big, 5, sizeof(big));
    memset(small, 9, sizeof(small));
    memset(guard, 9, sizeof(guard));
    if (rank == 0) {
        s = scomm_send(big, sizeof(big), SCOMM_UINT8, 1, 7, comm);
        ST_ASSERT((s == SCOMM_OK) || (s == SCOMM_ERR_TRUNCATED));
    } else if (rank == 1) {
        s = scomm_recv(small, sizeof(small), SCOMM_UINT8, 0, 7, comm);
        ST_ASSERT_STATUS(s, SCOMM_ERR_TRUNCATED);
        ST_ASSERT(strstr(scomm_comm_last_error(comm), "longer") != NULL);
        ST_ASSERT_EQ(memcmp(small, guard, sizeof(small)), 0);
    }
}

static void split(scomm_comm_t *comm)
{
    int rank = scomm_rank(comm), size = scomm_size(comm);
    scomm_comm_t *sub = NULL, *none = NULL;
    int32_t v, expect;
    int srank, ssize, i;

    /* Even and odd ranks, ordered by descending world rank. */
    ST_ASSERT_OK(scomm_comm_split(comm, rank % 2, -rank, &sub));
    ST_ASSERT(sub != NULL);
    srank = scomm_rank(sub);
    ssize = scomm_size(sub);
    ST_ASSERT_EQ(ssize, (size - (rank % 2) + 1) / 2);
    ST_ASSERT_EQ(srank, (ssize - 1) - (rank / 2));
    /* Ring inside the sub-group carrying world ranks. */
    if (ssize > 1) {
        v = rank;
        for (i = 0; i < 3; i++) {
            scomm_req_t *r[2];
            int32_t got = -1;

            ST_ASSERT_OK(scomm_irecv(&got, 1, SCOMM_INT32,
                                     (srank - 1 + ssize) % ssize, 0, sub,
                                     &r[0]));
            ST_ASSERT_OK(scomm_isend(&v, 1, SCOMM_INT32, (srank + 1) % ssize,
                                     0, sub, &r[1]));
            ST_ASSERT_OK(scomm_wait_all(2, r));
            /* Left neighbour in the sub-group has world rank rank + 2
             * (descending order), wrapping to the lowest of this parity. */
            expect = (srank == 0) ? (rank % 2) : rank + 2;
            ST_ASSERT_EQ(got, expect);
        }
    }
    ST_ASSERT_OK(scomm_barrier(sub));
    /* Same tags on parent and child do not mix. */
    ST_ASSERT_OK(scomm_barrier(comm));
    /* Opting out. */
    ST_ASSERT_OK(scomm_comm_split(comm, (rank == 0) ? SCOMM_SPLIT_NOCOLOR : 1,
                                  0, &none));
    ST_ASSERT((rank == 0) ? (none == NULL) : (none != NULL));
    if (none != NULL) {
        ST_ASSERT_EQ(scomm_size(none), size - 1);
        ST_ASSERT_OK(scomm_barrier(none));
        ST_ASSERT_OK(scomm_comm_destroy(none));
    }
    ST_ASSERT_OK(scomm_comm_destroy(sub));
}

/* Opt-in (SCOMM_TEST_HUGE=1): one message above 4 GiB, rank 0 -> 1. */
static int huge(int rank, int size, void *arg)
{
    const size_t n = (4ull << 30) + 4096 + 1;
    scomm_comm_t *comm = NULL;
    char *buf;

    (void)size;
    (void)arg;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    buf = malloc(n);
    ST_ASSERT(buf != NULL);
    if (rank == 0) {
        st_fill_pattern(buf, n, 4242);
        ST_ASSERT_OK(scomm_send(buf, n, SCOMM_UINT8, 1, 0, comm));
    } else if (rank == 1) {
        memset(buf, 0, n);
        ST_ASSERT_OK(scomm_recv(buf, n, SCOMM_UINT8, 0, 0, comm));
        ST_ASSERT_EQ(st_check_pattern(buf, n, 4242), SIZE_MAX);
        printf("received and verified %zu bytes over %s\n", n,
               scomm_peer_transport(comm, 0));
    }
    free(buf);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

/* ST_BUF=device|mixed: pairs, ordering and the requests in flight ran on
 * device buffers (st_dev.h); here the kinds and hints, and a message
 * shorter than its (device) receive buffer: only its bytes come back. */
static void device_only(scomm_comm_t *comm)
{
    scomm_req_t *req = NULL;
    int32_t v = 7;
    void *d = NULL;

    scomm_mem_kind_t k = SCOMM_MEM_AUTO;

    /* kinds, as the runtime says and through the cache (second ask) */
    ST_ASSERT_OK(scomm_mem_kind(&v, &k));
    ST_ASSERT_EQ(k, SCOMM_MEM_HOST);
    ST_ASSERT(st_dev.malloc_(&d, 4096) == 0);
    ST_ASSERT_OK(scomm_mem_kind((char *)d + 100, &k));
    ST_ASSERT_EQ(k, SCOMM_MEM_CUDA);
    ST_ASSERT_OK(scomm_mem_kind((char *)d + 200, &k));
    ST_ASSERT_EQ(k, SCOMM_MEM_CUDA);
    ST_ASSERT(strcmp(scomm_mem_kind_name(k), "cuda") == 0);
    st_dev.free_(d);
    d = NULL;
    ST_ASSERT_STATUS(scomm_mem_kind(&v, NULL), SCOMM_ERR_INVALID_ARG);
    /* hints: out of range, a kind scomm cannot copy (named), back to auto */
    ST_ASSERT_STATUS(scomm_mem_kind_hint(comm, (scomm_mem_kind_t)99),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_mem_kind_hint(comm, SCOMM_MEM_ASCEND),
                     SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(strstr(scomm_last_error(), "ascend") != NULL);
    ST_ASSERT_STATUS(scomm_mem_kind_hint(comm, SCOMM_MEM_ROCM),
                     SCOMM_ERR_UNSUPPORTED);
    ST_ASSERT(strstr(scomm_last_error(), "SCOMM_HIPRT_LIBRARY") != NULL);
    ST_ASSERT_OK(scomm_mem_kind_hint(comm, SCOMM_MEM_HOST));
    ST_ASSERT_OK(scomm_mem_kind_hint(comm, SCOMM_MEM_AUTO));
    {
        int me = scomm_rank(comm), p = scomm_size(comm), i;
        char out[60], in[100], *dout, *din;
        scomm_req_t *rr = NULL;

        st_fill_pattern(out, sizeof(out), (uint64_t)me);
        memset(in, 0xee, sizeof(in));
        dout = st_dev_on(comm) ? st_dev_put(out, sizeof(out)) : out;
        din  = st_dev_on(comm) ? st_dev_put(in, sizeof(in)) : in;
        ST_ASSERT_OK(scomm_irecv(din, sizeof(in), SCOMM_UINT8,
                                 (me + p - 1) % p, 5, comm, &rr));
        ST_ASSERT_OK(scomm_isend(dout, sizeof(out), SCOMM_UINT8,
                                 (me + 1) % p, 5, comm, &req));
        ST_ASSERT_OK(scomm_wait(req));
        ST_ASSERT_OK(scomm_wait(rr));
        if (st_dev_on(comm)) {
            ST_ASSERT(st_dev.memcpy_(in, din, sizeof(in), 2) == 0);
            st_dev.free_(din);
            st_dev.free_(dout);
        }
        ST_ASSERT_EQ(st_check_pattern(in, sizeof(out),
                                      (uint64_t)((me + p - 1) % p)),
                     SIZE_MAX);
        for (i = (int)sizeof(out); i < (int)sizeof(in); i++) {
            ST_ASSERT_EQ((unsigned char)in[i], 0xee);
        }
    }
    ST_ASSERT_OK(scomm_all_reduce(&v, &v, 1, SCOMM_INT32, SCOMM_SUM, comm));
    ST_ASSERT_EQ(v, 7 * scomm_size(comm));
}

static int run(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    char *sbuf, *rbuf;

    (void)arg;
    st_dev_init();
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_EQ(scomm_rank(comm), rank);
    ST_ASSERT_EQ(scomm_size(comm), size);
    ST_ASSERT_EQ(scomm_local_size(comm), size);
    sbuf = malloc((64u << 20) + 1);
    rbuf = malloc((64u << 20) + 1);
    ST_ASSERT((sbuf != NULL) && (rbuf != NULL));
    pairs(comm, sbuf, rbuf);
    ordering(comm);
    inflight(comm);
    if (st_dev.mode != 0) {
        device_only(comm);
        free(sbuf);
        free(rbuf);
        ST_ASSERT_OK(scomm_comm_destroy(comm));
        return 0;
    }
    split(comm);
    ST_ASSERT_OK(scomm_barrier(comm));
    truncation(comm);
    free(sbuf);
    free(rbuf);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    ST_ASSERT_STATUS(scomm_barrier(comm), SCOMM_ERR_INVALID_USAGE);
    return 0;
}

int main(int argc, char **argv)
{
    if ((argc > 1) && (strcmp(argv[1], "--huge") == 0)) {
        if (getenv("SCOMM_TEST_HUGE") == NULL) {
            printf("SKIP: set SCOMM_TEST_HUGE=1 to send 4 GiB + 4097 B "
                   "(needs ~9 GiB of memory)\n");
            return ST_EXIT_SKIP;
        }
        return st_run_ranks(2, huge, NULL, 600);
    }
    return st_main_ranks(argc, argv, run, NULL);
}
